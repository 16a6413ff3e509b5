"""The planner's rules for 3-D depthwise convs: which backends "auto" considers, what settles a
CPU choice without timing, what a timing compares, and the fixed priority where nothing may be
timed. The same interface as ``cpu_rules`` (``rule``, ``candidates``, ``fallback``,
``torch_is_naive_loop``), which the planner reads for 2-D problems.

Measured on CPU, one thread, fp32 (docs/conv3d.md; the figures below are from those runs):
- PyTorch's own CPU backward of a depthwise conv3d is a slow loop in both layouts, 6 to 150
  times its forward (1x32x32^3 with 21^3: 0.4 s forward, 32 s backward NCDHW, 61 s
  channels_last_3d), while the direct route runs each backward pass as a forward conv. So on CPU
  the backward passes never run on PyTorch's own path where direct can run them, and PyTorch's
  whole step is never timed (it would take seconds to minutes).
- The forward is timed: PyTorch's own call in the caller's layout, direct (channels_last_3d,
  copies included) and, from ``FFT_MIN_TAPS``, fft.
- fft's cost per voxel hardly grows with the kernel: below ``FFT_MIN_TAPS`` taps reaching the map
  the direct route won every pass (7^3 at 1x48x32^3: fft's backward 88 ms against 35 ms); from
  ``FFT_BACKWARD_MIN_TAPS`` fft's shared backward wins by rule (11^3: 0.9x ... 13^3: 2.6x, 21^3:
  6.8x against direct's pair). Between the two the backward passes are timed.
- Kernels up to ``CPP_MAX_TAPS`` taps: every pass is timed between the compiled kernels (cpp)
  and direct (PyTorch's own call too for the forward).
On CUDA every candidate (torch, direct through cuDNN, fft through cuFFT) is measured.
"""
from __future__ import annotations

from typing import List, Optional, Tuple

# 9^3 = 729 taps: fft's passes still lost to direct's at 1x48x32^3; from 10^3 a measurement decides.
FFT_MIN_TAPS = 1000
# The compiled kernels (cpp) against oneDNN's routes, one thread: at 1x32x64^3 3^3 (NCDHW) the
# forward 31 ms against 64 (direct, with its layout copies) and 150 ms (PyTorch's own), the weight
# gradient 21 to 29 ms against 80 ms; at 1x64x32^3 5^3 the forward 12.9 against 13.9 ms, the weight
# gradient 22 against 16 ms (so timed); at 1x48x32^3 7^3 the weight gradient 40 against 18 ms.
CPP_MAX_TAPS = 125
# 13^3 = 2197 taps: fft's shared backward 133 ms against direct's 350 ms at 1x48x32^3
FFT_BACKWARD_MIN_TAPS = 2197
Rule = Optional[Tuple[str, str]]


def not_timed(problem, name: str) -> str:
    """Why ``candidates`` leaves ``name`` out of a timing."""
    return "PyTorch's CPU conv3d backward is a slow loop (6 to 150 times its forward): not timed"


def auto_rejection(backend: str, problem) -> Optional[str]:
    """Why "auto" leaves a 3-D ``problem`` that ``backend`` can run to the others, or None."""
    if backend == "cpp" and (problem.reach_taps() > CPP_MAX_TAPS or problem.device_type != "cpu"):
        return (f"available, but \"auto\" leaves 3-D kernels over {CPP_MAX_TAPS} taps to the oneDNN routes, faster "
                "there")
    if backend == "fft" and problem.reach_taps() < FFT_MIN_TAPS:
        return (f"available, but \"auto\" leaves 3-D kernels reaching fewer than {FFT_MIN_TAPS} taps of the map "
                f"(got {problem.reach_taps()}) to the direct routes: there they cost less than the transforms")
    return None


def torch_is_naive_loop(problem, pass_name: str) -> bool:
    """Whether PyTorch's own CPU call for this pass is too slow to time: its conv3d backward is,
    and so its whole step (the forward alone is timed, not through this)."""
    return True


def rule(problem, pass_name: str, names: List[str]) -> Rule:
    """The rule that settles this CPU choice among ``names``, if one does."""
    if pass_name == "fwd":
        return None  # timed: PyTorch's call, direct and fft all win somewhere
    if "fft" in names and problem.reach_taps() >= FFT_BACKWARD_MIN_TAPS:
        return "fft", (f"a 3-D kernel reaching at least {FFT_BACKWARD_MIN_TAPS} taps of the map: fft's backward "
                       "(both passes sharing their transforms) beats the direct route's forward convs")
    if "direct" in names and "fft" not in names and "cpp" not in names:
        return "direct", ("PyTorch's CPU conv3d backward is a slow loop (6 to 150 times its forward); direct runs "
                          "this pass as a forward conv")
    return None


def candidates(problem, pass_name: str, names: List[str]) -> List[str]:
    """The candidates a timing compares: PyTorch's slow backward is never timed."""
    if pass_name != "fwd" and "direct" in names:
        return [name for name in names if name != "torch"]
    return names


def fallback(problem, names: List[str]) -> str:
    """Without a measurement: fft for its backward from FFT_BACKWARD_MIN_TAPS (the rule covers it),
    else direct, except a channels_last_3d forward, which is PyTorch's own oneDNN call without copies."""
    if "torch" in names and (problem.layout == "channels_last" or "direct" not in names):
        return "torch"
    return "direct" if "direct" in names else names[0]


__all__ = ["not_timed", "CPP_MAX_TAPS", "FFT_MIN_TAPS", "FFT_BACKWARD_MIN_TAPS", "auto_rejection", "torch_is_naive_loop", "rule",
           "candidates", "fallback"]
