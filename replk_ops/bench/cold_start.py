"""What a bench run measures and tunes before its first row, and roughly how long that takes: the
line the bench prints at its start. The counts follow the planner's kinds (problem.Problem.kind)
and the Triton launchers' own tuning keys and short lists (forward_tuning, weight_grad_tuning),
so they are what a run from an empty tuning cache does; the seconds are rough (ROUGH_SECONDS)."""
from __future__ import annotations

import itertools
from typing import Dict, Iterable, List, Sequence, Tuple

import torch

from .. import cache
from ..cache import measurements
from .._checks import output_size
from ..problem import Problem
from .shapes import Shape

PLANNER_PASSES = ("fwd", "bwd_input", "bwd_weight")
# Rough seconds (not measured here): one planner measurement (every candidate of one pass, run a
# few times) and one Triton variant compiled one at a time (front end, LLVM, ptxas).
ROUGH_SECONDS = {"measurement": {"cuda": 0.5, "cpu": 0.3}, "compile": 1.5}


def _layouts(shape: Shape, dtype: torch.dtype) -> Iterable[Tuple[str, torch.Tensor, torch.Tensor]]:
    """(layout, x, grad_out) as meta tensors (no memory): the bench runs "auto" in both layouts."""
    ph, pw = shape.padding
    ho, wo = output_size(shape.h, shape.w, shape.kh, shape.kw, ph, pw, (shape.dilation, shape.dilation))
    for layout, fmt in (("nchw", torch.contiguous_format), ("channels_last", torch.channels_last)):
        x = torch.empty(shape.n, shape.c, shape.h, shape.w, dtype=dtype, device="meta").contiguous(memory_format=fmt)
        dy = torch.empty(shape.n, shape.c, ho, wo, dtype=dtype, device="meta").contiguous(memory_format=fmt)
        yield layout, x, dy


def planner_kinds(shapes: Sequence[Shape], dtypes: Sequence[torch.dtype], device: str) -> set:
    """The planner's measurement kinds the bench's "auto" rows can need (an upper bound: rules
    settle some on CPU, and a kind with a single candidate is not measured)."""
    kinds = set()
    for shape, dtype in itertools.product(shapes, dtypes):
        ph, pw = shape.padding
        for layout, _, _ in _layouts(shape, dtype):
            problem = Problem(device, dtype, layout, shape.n < 16, shape.c, shape.h, shape.w, shape.kh, shape.kw,
                              ph, pw, False, shape.dilation, shape.dilation)
            kinds.update(problem.kind(p) for p in PLANNER_PASSES)
    return kinds


def triton_tuning(shapes: Sequence[Shape], dtypes: Sequence[torch.dtype]) -> Dict[Tuple, tuple]:
    """Each Triton tuning key the bench's shapes reach, with its short list (the variants the
    tuner compiles and times for it). Dilated shapes are left out: "auto" does not pick Triton's
    space-to-batch path on CUDA yet."""
    from ..backends.triton.kernels.bwd_weight import weight_grad_tuning
    from ..backends.triton.kernels.common import vector_width
    from ..backends.triton.kernels.fwd import forward_tuning

    found: Dict[Tuple, tuple] = {}
    for shape, dtype in itertools.product(shapes, dtypes):
        if shape.dilation != 1:
            continue
        n, h, w, kh, kw = shape.n, shape.h, shape.w, shape.kh, shape.kw
        for _, x, dy in _layouts(shape, dtype):
            ho, wo = dy.shape[2], dy.shape[3]
            width = min(vector_width(x), vector_width(dy))
            tuned = [forward_tuning(n, h, w, kh, kw, ho, wo, dtype, vector_width(x)),        # fwd
                     forward_tuning(n, ho, wo, kh, kw, h, w, dtype, vector_width(dy)),       # bwd_input
                     weight_grad_tuning(n, ho, wo, kh, kw, dtype, width)]
            found.update(t for t in tuned if t is not None)
    return found


def compiled_variants(shapes: Sequence[Shape], dtypes: Sequence[torch.dtype]) -> int:
    """How many Triton variants the bench compiles and times from an empty cache (an upper bound:
    keys that share a compiled kernel compile it once)."""
    return sum(len(listed) for listed in triton_tuning(shapes, dtypes).values())


def start_line(shapes: Sequence[Shape], dtypes: Sequence[torch.dtype], device: torch.device,
               triton_runs: bool) -> str:
    kinds = len(planner_kinds(shapes, dtypes, str(device)))
    seconds = kinds * ROUGH_SECONDS["measurement"].get(device.type, 0.5)
    what = f"up to {kinds} planner measurements"
    if triton_runs:
        keys = triton_tuning(shapes, dtypes)
        variants = sum(len(listed) for listed in keys.values())
        seconds += variants * ROUGH_SECONDS["compile"]
        what += f" and {len(keys)} Triton tunings ({variants} variants compiled and timed)"
    if device.type not in measurements.PERSISTED_DEVICES and not triton_runs:
        return f"first use: {what}, roughly {seconds:.0f} s (on {device.type}, measured afresh by each process)"
    stored = sum(cache.entries().values()) if cache.enabled() else 0
    where = f"tuning cache {cache.directory()}: {stored} entries" if cache.enabled() else "tuning cache off"
    return (f"first use: {what}, roughly {seconds:.0f} s from an empty tuning cache, seconds once it holds "
            f"them ({where})")


__all__ = ["planner_kinds", "triton_tuning", "compiled_variants", "start_line", "ROUGH_SECONDS"]
