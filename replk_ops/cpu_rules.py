"""The planner's CPU rules across backends: what settles a CPU choice without timing, which
candidates a timing compares, and the fixed priority where nothing may be timed (docs/design.md,
"Planner", "FFT", "Dilation"). Each backend's own thresholds live in its package; this module
orders them.

- Undilated, without fft in play: PyTorch's CPU conv reaches oneDNN's NCHW depthwise forward only
  while the kernel is at most ``torch_native.ONEDNN_NCHW_MAX_SIDE`` wide; wider, NCHW runs a naive
  loop, so the direct route (channels_last) runs. A channels_last fp32 forward is PyTorch's own
  oneDNN call.
- Where fft can win (``fft.thresholds``): its backward rule, else a timing against the direct
  routes with PyTorch's naive NCHW loop left out.
- Dilated: the backward passes run on the compiled CPU kernels (``cpp``) where they were built
  (PyTorch's dilated backward is a slow loop), and so does the forward where PyTorch's own call
  has lost oneDNN's fast path (padding over ``ONEDNN_DILATED_MAX_PAD``) or runs half precision.
  Where oneDNN keeps it, the forward times PyTorch's own call against ``cpp`` (PyTorch's kept
  unless 10% slower): ``cpp`` is 1.6 to 1.9 times faster at 3x3 kernels in NCHW and ties in
  channels_last, but oneDNN's AVX-512 kernel beat it at 7x7 with dilation 2 (0.15 against 0.21
  ms at 1x80x28x28), and a busy machine's misleading timing costs at most that ratio. Without the
  compiled kernels, both backward passes run on ``direct`` (2 to 20 times faster than PyTorch's),
  and the forward on PyTorch's own call while oneDNN keeps its fast path, else on ``direct``, which
  pads the input first. Timing the backward passes on a busy machine sent some of them back to
  PyTorch's slow backward, hence rules.
- Undilated: ``cpp`` runs NCHW forwards up to ``cpp.NCHW_FORWARD_MAX_SIDE`` by rule and joins the
  timed candidates for kernels up to ``cpp.MAX_UNDILATED_SIDE`` (``cpp.rules``).
"""
from __future__ import annotations

from typing import List, Optional, Tuple

import torch

from ._layout import CHANNELS_LAST, NCHW
from .backends import cpp, fft
from .backends.direct import ONEDNN_DILATED_MAX_PAD
from .backends.torch_native import ONEDNN_NCHW_MAX_SIDE, is_naive_loop as torch_is_naive_loop
from .problem import Problem

Rule = Optional[Tuple[str, str]]  # (implementation name, why), or None: no rule applies


def not_timed(problem: Problem, name: str) -> str:
    """Why ``candidates`` leaves ``name`` out of a timing."""
    if problem.dilated:
        return "dilated: PyTorch's own call and the compiled CPU kernels are timed (direct runs PyTorch's call)"
    return "PyTorch's NCHW path is a naive loop for this kernel"


def rule(problem: Problem, pass_name: str, names: List[str]) -> Rule:
    """The rule that settles this CPU choice among ``names``, if one does."""
    if "fft" in names:
        return fft.cpu_rule(problem, pass_name, names)
    if problem.dilated and "cpp" in names:
        if pass_name == "fwd" and _onednn_fast_dilated_forward(problem):
            return None  # timed
        return "cpp", "dilated: the compiled CPU kernels beat oneDNN's routes, and PyTorch's dilated backward is a slow loop"
    if not {"torch", "direct"} <= set(names):
        return None
    if problem.dilated:
        return _dilated_rule(problem, pass_name)
    full_precision = problem.dtype in (torch.float32, torch.float64)
    if pass_name == "fwd" and problem.layout == CHANNELS_LAST and full_precision:
        return "torch", "channels_last input: PyTorch's own call is the oneDNN route without copies"
    if problem.layout == NCHW and pass_name == "fwd":
        if "cpp" in names and max(problem.kh, problem.kw) <= cpp.NCHW_FORWARD_MAX_SIDE:
            return "cpp", (f"NCHW with a kernel at most {cpp.NCHW_FORWARD_MAX_SIDE} wide: the compiled CPU kernels "
                           "beat PyTorch's oneDNN call")
        # measured: 51x5 and 49x5 reach oneDNN's NCHW kernel, 5x51 and 15x15 a naive loop
        if problem.kw <= ONEDNN_NCHW_MAX_SIDE:
            return "torch", f"NCHW with a kernel at most {ONEDNN_NCHW_MAX_SIDE} wide: PyTorch reaches oneDNN"
        return "direct", f"PyTorch's NCHW path is a naive loop for kernels over {ONEDNN_NCHW_MAX_SIDE} wide"
    if torch_is_naive_loop(problem, pass_name):
        return "direct", f"PyTorch's NCHW path is a naive loop for kernels over {ONEDNN_NCHW_MAX_SIDE} on both sides"
    return None


def _onednn_fast_dilated_forward(problem: Problem) -> bool:
    """Whether PyTorch's own dilated forward keeps oneDNN's fast path here."""
    return (problem.dtype in (torch.float32, torch.float64)
            and max(problem.ph, problem.pw) <= ONEDNN_DILATED_MAX_PAD)


def _dilated_rule(problem: Problem, pass_name: str) -> Rule:
    if problem.dtype not in (torch.float32, torch.float64):
        return None  # half precision is measured
    if pass_name != "fwd":
        return "direct", "dilated: PyTorch's dilated backward is a slow loop; direct runs it as a forward conv"
    if _onednn_fast_dilated_forward(problem):
        return "torch", f"dilated, padding at most {ONEDNN_DILATED_MAX_PAD}: PyTorch's own call is oneDNN's fast path"
    return "direct", f"dilated, padding over {ONEDNN_DILATED_MAX_PAD}: oneDNN is fast only on an input padded first"


def candidates(problem: Problem, pass_name: str, names: List[str]) -> List[str]:
    """The candidates a timing compares: with fft in play, PyTorch's naive NCHW loop is left out; a
    dilated forward on oneDNN's fast path times PyTorch's own call against the compiled kernels
    only (``direct`` runs the same oneDNN call, and where the two tie a timing could send the call
    to direct's longer path)."""
    if "fft" in names and "torch" in names and "direct" in names and torch_is_naive_loop(problem, pass_name):
        return [name for name in names if name != "torch"]
    if problem.dilated and "cpp" in names and "torch" in names:
        return [name for name in names if name in ("torch", "cpp")]
    return names


def fallback(problem: Problem, names: List[str]) -> str:
    """Without a measurement: the compiled kernels for a dilated conv, else PyTorch's own path
    where oneDNN's NCHW kernel covers the kernel."""
    if problem.dilated and "cpp" in names:
        return "cpp"
    small = max(problem.kh, problem.kw) <= ONEDNN_NCHW_MAX_SIDE and not problem.dilated  # dilated: direct
    if "torch" in names and (small or "direct" not in names):
        return "torch"
    return "direct" if "direct" in names else names[0]


__all__ = ["torch_is_naive_loop", "rule", "candidates", "fallback"]
