"""``dwconv2d`` and ``explain``: the eager path in front of the registered ops.

Eager calls on plain tensors skip the dispatcher: each call signature gets one ready call
(ready_calls.py), checked and planned on its first use; where the plan is PyTorch's own
convolution for every pass, that call is ``F.conv2d`` with PyTorch's own backward, no slower than
``nn.Conv2d``. ``torch.compile`` and tensor subclasses go through the registered ops (ops.py),
which plan the same way.
"""
from typing import Optional, Tuple, Union

import torch
import torch.nn.functional as F

from . import planner
from ._checks import PaddingArg, check_conv_args, dilation_pair, padding_pair
from ._tracing import records_standard_conv, standard_dwconv2d
from .backends.implementation import Implementation
from .catalog import check_backend_name
from .ops import dwconv2d_fwd, gradients_through_ops
from .passes import run_backward_on, run_bwd_input_on, run_bwd_weight_on, run_fwd_on
from .problem import Problem
from .ready_calls import (NativeCall, Passes, Ready, any_autocast, autocast_args, plain_tensors, plan_call,
                          ready_call, via_registered_op)


def dwconv2d(
    x: torch.Tensor,
    weight: torch.Tensor,
    bias: Optional[torch.Tensor] = None,
    padding: PaddingArg = "same",
    dilation: Union[int, Tuple[int, int]] = 1,
    *,
    backend: str = "auto",
) -> torch.Tensor:
    """Depthwise 2-D cross-correlation, stride 1.

    Equal to ``F.conv2d(x, weight, bias, padding=padding, dilation=dilation, groups=x.shape[1])``.
    ``x`` is (N, C, H, W) in NCHW or channels_last layout (the output keeps it); ``weight`` is
    (C, 1, kh, kw) with any kh, kw >= 1; ``padding`` is "same" (odd spans (k - 1) * dilation + 1),
    "valid", an int or (ph, pw); ``dilation`` is an int or (dh, dw), each >= 1.
    ``backend`` is "auto", "torch", "direct", "cpp", "fft", "triton" or "cuda" ("reference" is the old
    name of "direct"); the environment variable ``REPLK_OPS_BACKEND`` overrides "auto". Under
    ``torch.autocast`` the op runs in the autocast dtype, like ``nn.Conv2d``.
    """
    if records_standard_conv(x):  # tracers and exporters record the standard conv (_tracing.py)
        check_backend_name(backend)
        return standard_dwconv2d(x, weight, bias, padding, dilation)
    return run_eager(x, weight, bias, padding, dilation, backend)


def run_eager(x, weight, bias, padding, dilation, backend: str) -> torch.Tensor:
    """``dwconv2d`` once it is known that no tracer records the call (``LargeKernelDWConv2d``
    checks that itself): the ready call for this signature, prepared on its first use."""
    if any_autocast():
        x, weight, bias = autocast_args(x, weight, bias)
    if torch.compiler.is_compiling():
        return _through_registered_op(x, weight, bias, padding, dilation, backend)
    return ready_call(prepare_call, x, weight, bias, padding, dilation, backend).call(x, weight, bias)


def _checked_args(x, weight, bias, padding, dilation, backend) -> Tuple[Tuple[int, int], Tuple[int, int]]:
    """(padding, dilation) as pairs, after every check."""
    check_backend_name(backend)
    dil = dilation_pair(dilation)
    if not isinstance(weight, torch.Tensor) or weight.dim() != 4:
        got = tuple(weight.shape) if isinstance(weight, torch.Tensor) else type(weight).__name__
        raise ValueError(f"weight: expected a 4-D (C, 1, kh, kw) tensor, got {got}")
    pad = padding_pair(padding, (weight.shape[2], weight.shape[3]), dilation=dil)
    check_conv_args(x, weight, bias, pad, dil)
    return pad, dil


def _through_registered_op(x, weight, bias, padding, dilation, backend):
    (ph, pw), (dh, dw) = _checked_args(x, weight, bias, padding, dilation, backend)
    return dwconv2d_fwd(x, weight, bias, ph, pw, backend, dh, dw)


def prepare_call(x, weight, bias, padding, dilation, backend: str) -> Ready:
    """The ready call for this signature: checks done, passes planned."""
    (ph, pw), dil = _checked_args(x, weight, bias, padding, dilation, backend)
    if not plain_tensors(x, weight, bias):  # tensor subclasses: the registered op
        return via_registered_op(lambda x, w, b: dwconv2d_fwd(x, w, b, ph, pw, backend, *dil))
    kh, kw, channels = weight.shape[2], weight.shape[3], x.shape[1]

    def passes_for(fwd: Implementation, bwd_input: Implementation, bwd_weight: Implementation) -> Passes:
        return Passes(
            fwd=lambda x, w, b: run_fwd_on(fwd, x, w, b, ph, pw, dil),
            bwd_input=lambda dy, w: run_bwd_input_on(bwd_input, dy, w, ph, pw, dil),
            bwd_weight=lambda dy, x, w: run_bwd_weight_on(bwd_weight, dy, x, kh, kw, ph, pw, dil),
            # one implementation for both gradients may share work between them
            backward=((lambda dy, x, w: run_backward_on(bwd_input, dy, x, w, ph, pw, dil))
                      if bwd_input is bwd_weight else None),
            through_ops=lambda dy, x, w, needs, has_bias: gradients_through_ops(
                dy, x, w, needs, has_bias, (ph, pw), dil, backend))

    problem = Problem.of(x, kh, kw, ph, pw, dilation=dil)
    return plan_call(x, weight, bias, backend, problem, NativeCall(F.conv2d, (ph, pw), dil, channels), passes_for)


def explain(x: torch.Tensor, weight: torch.Tensor, padding: PaddingArg = "same", backend: str = "auto",
            *, bias: Optional[torch.Tensor] = None, dilation: Union[int, Tuple[int, int]] = 1) -> planner.Plan:
    """Which implementation runs each pass of ``dwconv2d(x, weight, padding=padding,
    dilation=dilation, backend=backend)`` here and now (autocast, deterministic mode and compile tracing included),
    how it was chosen, and why every other one was rejected. Printing the result gives a readable
    report. It never measures: before the first call of a kind it says what that call will time."""
    if isinstance(x, torch.Tensor) and x.dim() == 5:  # a 3-D call: (N, C, D, H, W)
        from .eager3d import explain3d  # eager3d builds on this module
        return explain3d(x, weight, padding, backend, bias=bias, dilation=dilation)
    if any_autocast():
        x, weight, bias = autocast_args(x, weight, bias)
    (ph, pw), dil = _checked_args(x, weight, bias, padding, dilation, backend)
    problem = Problem.of(x, weight.shape[2], weight.shape[3], ph, pw, dilation=dil)
    return planner.plan(problem, backend, may_measure=False)


__all__ = ["dwconv2d", "explain", "run_eager"]
