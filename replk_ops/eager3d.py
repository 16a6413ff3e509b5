"""``dwconv3d`` and its ``explain``: the eager path in front of the registered 3-D ops.

As ``dwconv2d`` (eager.py): per call signature the checked arguments and the planned
implementations are kept as one ready call; where the plan is PyTorch's own conv for every pass,
that call is ``F.conv3d`` itself. ``torch.compile`` and tensor subclasses go through the
registered ops (ops3d.py); tracers and exporters record ``F.conv3d`` (_tracing.py).
"""
from typing import Callable, NamedTuple, Optional, Tuple, Union

import torch
import torch.nn.functional as F

from . import measure, planner
from ._checks3d import PaddingArg3d, check_conv3d_args, dilation_triple, padding_triple
from ._tracing import _PLAIN_TENSOR_TYPES, records_standard_conv, standard_dwconv3d
from .catalog import Implementation, check_backend_name
from .eager import _CALLS, _MAX_CALLS, _any_autocast, _autocast, _is_dense  # one bounded cache of ready calls
from .passes import gradients
from .ops3d import (dwconv3d_fwd, gradients_through_ops, run_backward_on, run_bwd_input_on, run_bwd_weight_on,
                    run_fwd_on)
from .problem3d import Problem3d


class _PassPlan(NamedTuple):
    fwd: Implementation
    bwd_input: Implementation
    bwd_weight: Implementation
    backend: str  # the request, for double backward through the registered ops


class _EagerDWConv3d(torch.autograd.Function):
    """Eager training calls: the planned implementations in one autograd node; double backward
    (create_graph=True) goes through the registered ops."""

    @staticmethod
    def forward(ctx, x, weight, bias, padding, dilation, passes: _PassPlan):
        ctx.save_for_backward(x, weight)
        ctx.padding, ctx.dilation, ctx.passes, ctx.has_bias = padding, dilation, passes, bias is not None
        return run_fwd_on(passes.fwd, x, weight, bias, padding, dilation)

    @staticmethod
    def backward(ctx, grad_out):
        x, weight = ctx.saved_tensors
        padding, dilation, passes = ctx.padding, ctx.dilation, ctx.passes
        if torch.is_grad_enabled():  # create_graph=True: differentiate through the registered ops
            return gradients_through_ops(grad_out, x, weight, ctx.needs_input_grad, ctx.has_bias, padding, dilation,
                                         passes.backend) + (None,) * 3
        shared = passes.bwd_input is passes.bwd_weight  # one implementation may share work between both
        grads = gradients(
            grad_out, x, weight, ctx.needs_input_grad, ctx.has_bias,
            lambda dy, weight: run_bwd_input_on(passes.bwd_input, dy, weight, padding, dilation),
            lambda dy, x, weight: run_bwd_weight_on(passes.bwd_weight, dy, x, tuple(weight.shape[2:]), padding,
                                                    dilation),
            (lambda dy, x, weight: run_backward_on(passes.bwd_input, dy, x, weight, padding, dilation)) if shared
            else None)
        return grads + (None,) * 3


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
    if _any_autocast():
        x, weight, bias = _autocast(x, weight, bias)
    if torch.compiler.is_compiling():
        padding, dilation = _checked_args(x, weight, bias, padding, dilation, backend)
        return dwconv3d_fwd(x, weight, bias, list(padding), backend, list(dilation))
    try:
        key = ("3d", backend, padding if not isinstance(padding, list) else tuple(padding), dilation, type(x), type(weight),
               type(bias), x.dtype, x.device, x.shape, x.stride(), weight.shape, weight.dtype, weight.device,
               None if bias is None else (bias.shape, bias.dtype, bias.device),
               torch.is_grad_enabled() and (x.requires_grad or weight.requires_grad
                                            or (bias is not None and bias.requires_grad)),
               torch.are_deterministic_algorithms_enabled())
        hash(key)
        # a bool where an int belongs must reach the checks (True == 1 for a dict)
        if any(type(v) is bool for v in (dilation if isinstance(dilation, tuple) else (dilation,))):
            key = None
        call = _CALLS.get(key) if key is not None else None
    except (AttributeError, TypeError):  # not tensors, or an unhashable argument: the checks say
        key = call = None
    if call is None:
        call, lasting = _prepare_call(x, weight, bias, padding, dilation, backend)
        if key is not None and lasting:
            if len(_CALLS) >= _MAX_CALLS:
                _CALLS.clear()
            _CALLS[key] = call
    return call(x, weight, bias)


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


def _prepare_call(x, weight, bias, padding, dilation, backend) -> Tuple[Callable, bool]:
    """The ready call for this signature (checks done, passes planned), and whether it may be kept."""
    pad, dil = _checked_args(x, weight, bias, padding, dilation, backend)
    tensors = (x, weight) if bias is None else (x, weight, bias)
    if not all(type(t) in _PLAIN_TENSOR_TYPES for t in tensors):
        return (lambda x, w, b: dwconv3d_fwd(x, w, b, list(pad), backend, list(dil))), True
    kernel, channels = tuple(weight.shape[2:]), x.shape[1]
    problem = Problem3d.of(x, kernel, pad, dil)
    native_ok = _is_dense(x) and not (x.is_cuda and x.dtype == torch.float32)  # fp32 on CUDA: TF32 off

    def native(x, w, b):
        return F.conv3d(x, w, b, 1, pad, dil, channels)

    if not (torch.is_grad_enabled() and any(t.requires_grad for t in tensors)):
        choice = planner.plan_pass(problem, "fwd", backend, batch=x.shape[0])
        fwd = choice.implementation
        if fwd.name == "torch" and native_ok:
            return native, choice.final
        return (lambda x, w, b: run_fwd_on(fwd, x, w, b, pad, dil)), choice.final

    def planned_step(passes):
        return lambda x, w, b: _EagerDWConv3d.apply(x, w, b, pad, dil, passes)

    def time_steps(choices):
        measured = _PassPlan(*(choices[name].implementation for name in planner.PASSES), backend)
        return measure.time_steps(problem, x.shape[0], native, planned_step(measured))

    choices = planner.plan_training(problem, backend, x.shape[0], time_steps if native_ok else None)
    lasting = all(choice.final for choice in choices.values())
    impls = [choices[name].implementation for name in planner.PASSES]
    if all(impl.name == "torch" for impl in impls) and native_ok:
        return native, lasting
    return planned_step(_PassPlan(*impls, backend)), lasting


def explain3d(x, weight, padding: PaddingArg3d = "same", backend: str = "auto", *, bias=None,
              dilation: Union[int, Tuple[int, int, int]] = 1) -> planner.Plan:
    """``explain`` for a 3-D call (``replk_ops.explain`` sends 5-D inputs here)."""
    if _any_autocast():
        x, weight, bias = _autocast(x, weight, bias)
    pad, dil = _checked_args(x, weight, bias, padding, dilation, backend)
    return planner.plan(Problem3d.of(x, tuple(weight.shape[2:]), pad, dil), backend, may_measure=False)


__all__ = ["dwconv3d", "explain3d"]
