"""Where "auto" considers the fft implementation, and which CPU candidates it is measured against.

A direct conv costs 2 taps per output pixel and tap; the transforms cost about the same per pixel
for any kernel. Below ``MIN_TAPS`` taps that reach the map the direct routes always won when
measured (docs/design.md, "FFT"), so "auto" does not spend a measurement on fft there. Above it,
on CPU, a measurement between the direct routes and fft decides the forward (``cpu_rules``), and
from ``BACKWARD_MIN_TAPS`` on a rule gives both backward passes to fft (``cpu_rule``).
"""
from __future__ import annotations

from typing import List, Optional, Tuple

# Measured on CPU (one thread, 1x128x56x56, benchmarks/fft_vs_direct.py, crossover): below 11x11
# no pass of fft beat the fastest direct route (9x9: at best 0.85x, its weight gradient); from
# 11x11 its weight gradient alone can (1.08x NCHW), so from 121 taps a measurement decides.
MIN_TAPS = 121
# fft's shared backward (both gradients, dy transformed once) against the best direct pair: 1.05x
# (channels_last) and 1.63x (NCHW) at 17x17, 1.14x and 1.93x at 21x21, 2.0x and 3.3x at 31x31.
# From 21x21 a rule gives it both backward passes; timing each pass alone would not see the
# sharing (fft's input gradient alone loses up to 31x31 in channels_last).
BACKWARD_MIN_TAPS = 441


def reach_taps(problem) -> int:
    """Taps of the kernel that can touch the map: a kernel wider than the map reaches at most the
    map's own width of input pixels from any output."""
    return min(problem.kh, problem.height) * min(problem.kw, problem.width)


def auto_rejection(problem) -> Optional[str]:
    taps = reach_taps(problem)
    if taps < MIN_TAPS:
        return (f"available, but \"auto\" leaves it to kernels reaching at least {MIN_TAPS} taps of the map "
                f"(got {taps}): below that a direct conv costs less than the transforms")
    return None


def cpu_rule(problem, pass_name: str, names: List[str]) -> Optional[Tuple[str, str]]:
    """On CPU the backward passes go to fft by rule from BACKWARD_MIN_TAPS on: there its shared
    backward beat the fastest direct pair in both layouts."""
    if pass_name != "fwd" and "fft" in names and reach_taps(problem) >= BACKWARD_MIN_TAPS:
        return "fft", (f"a kernel reaching at least {BACKWARD_MIN_TAPS} taps of the map: fft's backward (both "
                       "passes sharing their transforms) beats the direct routes")
    return None
