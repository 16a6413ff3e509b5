"""``dwconv3d`` and its ``explain``: the eager path in front of the registered 3-D ops.

As ``dwconv2d`` (eager.py): each call signature gets one ready call (ready_calls.py); where the
plan is PyTorch's own conv for every pass, that call is ``F.conv3d`` itself. ``torch.compile`` and
tensor subclasses go through the registered ops (ops3d.py); tracers and exporters record
``F.conv3d`` (_tracing.py).
"""
from typing import Optional, Tuple, Union

import torch
import torch.nn.functional as F

from . import planner
from ._checks3d import PaddingArg3d, check_conv3d_args, dilation_triple, padding_triple
from ._tracing import records_standard_conv, standard_dwconv3d
from .backends.implementation import Implementation
from .catalog import check_backend_name
from .ops3d import (dwconv3d_fwd, gradients_through_ops, run_backward_on, run_bwd_input_on, run_bwd_weight_on,
                    run_fwd_on)
from .problem3d import Problem3d
from .ready_calls import (NativeCall, Passes, Ready, any_autocast, autocast_args, plain_tensors, plan_call,
                          ready_call, via_registered_op)


def dwconv3d(
    x: torch.Tensor,
    weight: torch.Tensor,
    bias: Optional[torch.Tensor] = None,
    padding: PaddingArg3d = "same",
    dilation: Union[int, Tuple[int, int, int]] = 1,
    *,
    backend: str = "auto",
) -> torch.Tensor:
    """Depthwise 3-D cross-correlation, stride 1.

    Equal to ``F.conv3d(x, weight, bias, padding=padding, dilation=dilation, groups=x.shape[1])``.
    ``x`` is (N, C, D, H, W) in NCDHW or channels_last_3d layout (the output keeps it); ``weight``
    is (C, 1, kd, kh, kw) with any sizes >= 1; ``padding`` is "same" (odd spans), "valid", an int
    or (pd, ph, pw); ``dilation`` is an int or (dd, dh, dw). ``backend`` is "auto", "torch",
    "direct" or "fft" (the others run 2-D convs only and raise, saying so). Under
    ``torch.autocast`` the op runs in the autocast dtype, like ``nn.Conv3d``.
    """
    if records_standard_conv(x):
        check_backend_name(backend)
        return standard_dwconv3d(x, weight, bias, padding, dilation)
    return run_eager3d(x, weight, bias, padding, dilation, backend)


def run_eager3d(x, weight, bias, padding, dilation, backend: str) -> torch.Tensor:
    """``dwconv3d`` once it is known that no tracer records the call."""
    if any_autocast():
        x, weight, bias = autocast_args(x, weight, bias)
    if torch.compiler.is_compiling():
        padding, dilation = _checked_args(x, weight, bias, padding, dilation, backend)
        return dwconv3d_fwd(x, weight, bias, list(padding), backend, list(dilation))
    return ready_call(prepare_call3d, x, weight, bias, padding, dilation, backend).call(x, weight, bias)


def _checked_args(x, weight, bias, padding, dilation, backend):
    """(padding, dilation) as triples, after every check."""
    check_backend_name(backend)
    dil = dilation_triple(dilation)
    if not isinstance(weight, torch.Tensor) or weight.dim() != 5:
        got = tuple(weight.shape) if isinstance(weight, torch.Tensor) else type(weight).__name__
        raise ValueError(f"weight: expected a 5-D (C, 1, kd, kh, kw) tensor, got {got}")
    pad = padding_triple(padding, tuple(weight.shape[2:]), dil)
    check_conv3d_args(x, weight, bias, pad, dil)
    return pad, dil


def prepare_call3d(x, weight, bias, padding, dilation, backend: str) -> Ready:
    """The ready call for this signature: checks done, passes planned."""
    pad, dil = _checked_args(x, weight, bias, padding, dilation, backend)
    if not plain_tensors(x, weight, bias):  # tensor subclasses: the registered op
        return via_registered_op(lambda x, w, b: dwconv3d_fwd(x, w, b, list(pad), backend, list(dil)))
    kernel, channels = tuple(weight.shape[2:]), x.shape[1]

    def passes_for(fwd: Implementation, bwd_input: Implementation, bwd_weight: Implementation) -> Passes:
        return Passes(
            fwd=lambda x, w, b: run_fwd_on(fwd, x, w, b, pad, dil),
            bwd_input=lambda dy, w: run_bwd_input_on(bwd_input, dy, w, pad, dil),
            bwd_weight=lambda dy, x, w: run_bwd_weight_on(bwd_weight, dy, x, kernel, pad, dil),
            # one implementation for both gradients may share work between them
            backward=((lambda dy, x, w: run_backward_on(bwd_input, dy, x, w, pad, dil))
                      if bwd_input is bwd_weight else None),
            through_ops=lambda dy, x, w, needs, has_bias: gradients_through_ops(
                dy, x, w, needs, has_bias, pad, dil, backend))

    problem = Problem3d.of(x, kernel, pad, dil)
    return plan_call(x, weight, bias, backend, problem, NativeCall(F.conv3d, pad, dil, channels), passes_for)


def explain3d(x, weight, padding: PaddingArg3d = "same", backend: str = "auto", *, bias=None,
              dilation: Union[int, Tuple[int, int, int]] = 1) -> planner.Plan:
    """``explain`` for a 3-D call (``replk_ops.explain`` sends 5-D inputs here)."""
    if any_autocast():
        x, weight, bias = autocast_args(x, weight, bias)
    pad, dil = _checked_args(x, weight, bias, padding, dilation, backend)
    return planner.plan(Problem3d.of(x, tuple(weight.shape[2:]), pad, dil), backend, may_measure=False)


__all__ = ["dwconv3d", "explain3d", "run_eager3d"]
