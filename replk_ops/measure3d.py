"""The planner's measurements of 3-D problems: tensors of the problem's shape and one call of
each pass (``measure`` times them, as for 2-D problems)."""
from __future__ import annotations

from typing import Callable

import torch

from ._layout import CHANNELS_LAST


def workload(problem, batch: int):
    """Random (x, weight, bias, grad_out) of a ``Problem3d``'s shape, layout and dtype."""
    fmt = torch.channels_last_3d if problem.layout == CHANNELS_LAST else torch.contiguous_format
    make = dict(dtype=problem.dtype, device=problem.device)
    x = torch.randn((batch, problem.channels) + problem.size, **make).contiguous(memory_format=fmt)
    weight = torch.randn((problem.channels, 1) + problem.kernel, **make)
    bias = torch.randn(problem.channels, **make)
    grad_out = torch.randn((batch, problem.channels) + problem.output_size(), **make).contiguous(memory_format=fmt)
    return x, weight, bias, grad_out


def pass_runner(problem, pass_name: str, impl, tensors) -> Callable[[], object]:
    """The pass as a call runs it, outputs in the caller's layout included."""
    from .ops3d import run_bwd_input_on, run_bwd_weight_on, run_fwd_on  # ops3d -> planner -> measure -> here

    x, weight, bias, grad_out = tensors
    padding, dilation = problem.padding, problem.dilation
    if pass_name == "fwd":
        return lambda: run_fwd_on(impl, x, weight, bias, padding, dilation)
    if pass_name == "bwd_input":
        return lambda: run_bwd_input_on(impl, grad_out, weight, padding, dilation)
    return lambda: run_bwd_weight_on(impl, grad_out, x, problem.kernel, padding, dilation)
