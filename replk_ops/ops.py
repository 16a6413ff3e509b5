"""The three registered ops, their fake implementations and autograd, and ``dwconv2d``.

``replk_ops::dwconv2d_fwd``, ``dwconv2d_bwd_input`` and ``dwconv2d_bwd_weight`` are functional
torch.library custom ops: they allocate their outputs and mutate nothing, so autograd,
``torch.compile`` and ``torch.library.opcheck`` treat them like built-in ops. Which implementation
runs each pass is the planner's answer (``planner.plan_pass``).

Eager calls on plain tensors skip the dispatcher: ``dwconv2d`` keeps, per call signature (dtypes,
devices, shapes, strides, padding, backend, whether autograd records), the checked arguments and
the planned implementations as one ready call, so a steady-state call is one dictionary lookup
and the work itself. Where the plan is PyTorch's own convolution for every pass, that call is
``F.conv2d`` with PyTorch's own backward: no slower than ``nn.Conv2d``.
"""
# No `from __future__ import annotations` here: torch < 2.5 infers the ops' schemas from the
# annotations themselves and rejects them as strings.
from typing import Callable, Dict, NamedTuple, Optional, Tuple

import torch
import torch.nn.functional as F

from . import planner
from ._checks import PaddingArg, check_conv_args, output_size, padding_pair
from ._layout import dense_strides, in_layout, memory_format_of
from .catalog import Implementation, check_backend_name
from .planner import Problem
from ._tracing import _PLAIN_TENSOR_TYPES, records_standard_conv, standard_dwconv2d


def _empty(shape, like: torch.Tensor, memory_format) -> torch.Tensor:
    return torch.empty(shape, dtype=like.dtype, device=like.device, memory_format=memory_format)


def _implementation(x, kh, kw, ph, pw, pass_name, backend, input_hw=None) -> Implementation:
    problem = Problem.of(x, kh, kw, ph, pw, input_hw)
    return planner.plan_pass(problem, pass_name, backend, batch=x.shape[0]).implementation


# The three passes on a planned implementation, shared by the registered ops, the eager autograd
# function and the eager inference path. Outputs keep the layout of the tensor they follow.
def _fwd_on(impl: Implementation, x, weight, bias, ph, pw):
    return in_layout(impl.runner.fwd(x, weight, bias, ph, pw), memory_format_of(x))


def _bwd_input_on(impl: Implementation, grad_out, weight, ph, pw):
    return in_layout(impl.runner.bwd_input(grad_out, weight, ph, pw), memory_format_of(grad_out))


def _bwd_weight_on(impl: Implementation, grad_out, x, kh, kw, ph, pw):
    grad_weight, grad_bias = impl.runner.bwd_weight(grad_out, x, kh, kw, ph, pw)
    return grad_weight.contiguous(), grad_bias.contiguous()


def _input_hw(grad_out, kh, kw, ph, pw) -> Tuple[int, int]:
    return (grad_out.shape[2] - 2 * ph + kh - 1, grad_out.shape[3] - 2 * pw + kw - 1)


def _run_fwd(x, weight, bias, ph, pw, backend):
    impl = _implementation(x, weight.shape[2], weight.shape[3], ph, pw, "fwd", backend)
    return _fwd_on(impl, x, weight, bias, ph, pw)


def _run_bwd_input(grad_out, weight, ph, pw, backend):
    kh, kw = weight.shape[2], weight.shape[3]
    impl = _implementation(grad_out, kh, kw, ph, pw, "bwd_input", backend, _input_hw(grad_out, kh, kw, ph, pw))
    return _bwd_input_on(impl, grad_out, weight, ph, pw)


def _run_bwd_weight(grad_out, x, kh, kw, ph, pw, backend):
    impl = _implementation(x, kh, kw, ph, pw, "bwd_weight", backend)
    return _bwd_weight_on(impl, grad_out, x, kh, kw, ph, pw)


@torch.library.custom_op("replk_ops::dwconv2d_fwd", mutates_args=())
def dwconv2d_fwd(
    x: torch.Tensor, weight: torch.Tensor, bias: Optional[torch.Tensor], ph: int, pw: int, backend: str
) -> torch.Tensor:
    check_conv_args(x, weight, bias, (ph, pw))
    return _run_fwd(x, weight, bias, ph, pw, backend)


@dwconv2d_fwd.register_fake
def _(x, weight, bias, ph, pw, backend):
    out_h, out_w = output_size(x.shape[2], x.shape[3], weight.shape[2], weight.shape[3], ph, pw)
    return _empty((x.shape[0], x.shape[1], out_h, out_w), x, memory_format_of(x))


@torch.library.custom_op("replk_ops::dwconv2d_bwd_input", mutates_args=())
def dwconv2d_bwd_input(grad_out: torch.Tensor, weight: torch.Tensor, ph: int, pw: int, backend: str) -> torch.Tensor:
    return _run_bwd_input(grad_out, weight, ph, pw, backend)


@dwconv2d_bwd_input.register_fake
def _(grad_out, weight, ph, pw, backend):
    shape = (grad_out.shape[0], grad_out.shape[1]) + _input_hw(grad_out, weight.shape[2], weight.shape[3], ph, pw)
    return _empty(shape, grad_out, memory_format_of(grad_out))


@torch.library.custom_op("replk_ops::dwconv2d_bwd_weight", mutates_args=())
def dwconv2d_bwd_weight(
    grad_out: torch.Tensor, x: torch.Tensor, kh: int, kw: int, ph: int, pw: int, backend: str
) -> Tuple[torch.Tensor, torch.Tensor]:
    return _run_bwd_weight(grad_out, x, kh, kw, ph, pw, backend)


@dwconv2d_bwd_weight.register_fake
def _(grad_out, x, kh, kw, ph, pw, backend):
    channels = x.shape[1]
    return x.new_empty((channels, 1, kh, kw)), x.new_empty((channels,))


def _setup_context(ctx, inputs, output):
    x, weight, bias, ph, pw, backend = inputs
    ctx.save_for_backward(x, weight)
    ctx.padding = (ph, pw)
    ctx.backend = backend
    ctx.has_bias = bias is not None


def _backward(ctx, grad_out):
    """Gradients of the forward, through the registered ops (which have autograd themselves:
    double backward)."""
    x, weight = ctx.saved_tensors
    ph, pw = ctx.padding
    grad_x = grad_weight = grad_bias = None
    need_x, need_w, need_b = ctx.needs_input_grad[:3]
    if need_x:
        grad_x = dwconv2d_bwd_input(grad_out, weight, ph, pw, ctx.backend)
    if need_w or need_b:
        grad_weight, grad_bias = dwconv2d_bwd_weight(grad_out, x, weight.shape[2], weight.shape[3], ph, pw,
                                                     ctx.backend)
        grad_weight = grad_weight if need_w else None
        grad_bias = grad_bias if (need_b and ctx.has_bias) else None
    return grad_x, grad_weight, grad_bias, None, None, None


dwconv2d_fwd.register_autograd(_backward, setup_context=_setup_context)


# The backward ops are linear in each argument, so their own gradients are the other passes
# (adjoint identities); this gives double backward, e.g. for gradient penalties.
def _setup_bwd_input(ctx, inputs, output):
    grad_out, weight, ph, pw, backend = inputs
    ctx.save_for_backward(grad_out, weight)
    ctx.padding, ctx.backend = (ph, pw), backend


def _backward_bwd_input(ctx, g):
    # <g, bwd_input(dy, w)> == <fwd(g, w), dy>
    grad_out, weight = ctx.saved_tensors
    ph, pw = ctx.padding
    d_grad_out = d_weight = None
    if ctx.needs_input_grad[0]:
        d_grad_out = dwconv2d_fwd(g, weight, None, ph, pw, ctx.backend)
    if ctx.needs_input_grad[1]:
        d_weight = dwconv2d_bwd_weight(grad_out, g, weight.shape[2], weight.shape[3], ph, pw, ctx.backend)[0]
    return d_grad_out, d_weight, None, None, None


def _setup_bwd_weight(ctx, inputs, output):
    grad_out, x, kh, kw, ph, pw, backend = inputs
    ctx.save_for_backward(grad_out, x)
    ctx.padding, ctx.backend = (ph, pw), backend


def _backward_bwd_weight(ctx, g_weight, g_bias):
    # <g_w, dw(dy, x)> + <g_b, db(dy)> == <dy, fwd(x, g_w, g_b)>
    grad_out, x = ctx.saved_tensors
    ph, pw = ctx.padding
    d_grad_out = d_x = None
    if ctx.needs_input_grad[0]:
        d_grad_out = dwconv2d_fwd(x, g_weight, g_bias, ph, pw, ctx.backend)
    if ctx.needs_input_grad[1]:
        d_x = dwconv2d_bwd_input(grad_out, g_weight, ph, pw, ctx.backend)
    return d_grad_out, d_x, None, None, None, None, None


dwconv2d_bwd_input.register_autograd(_backward_bwd_input, setup_context=_setup_bwd_input)
dwconv2d_bwd_weight.register_autograd(_backward_bwd_weight, setup_context=_setup_bwd_weight)


class _PassPlan(NamedTuple):
    """The implementations planned for the three passes of one eager call signature."""

    fwd: Implementation
    bwd_input: Implementation
    bwd_weight: Implementation
    backend: str  # the request, for double backward through the registered ops


class _EagerDWConv2d(torch.autograd.Function):
    """Eager training calls: the planned implementations, with one autograd node instead of three
    trips through the dispatcher (about 0.3 ms a layer saved, which is most of the time of a small
    layer at batch 1). torch.compile, tensor subclasses and double backward use the registered
    ops."""

    @staticmethod
    def forward(ctx, x, weight, bias, ph, pw, passes: _PassPlan):
        ctx.save_for_backward(x, weight)
        ctx.padding, ctx.passes, ctx.has_bias = (ph, pw), passes, bias is not None
        return _fwd_on(passes.fwd, x, weight, bias, ph, pw)

    @staticmethod
    def backward(ctx, grad_out):
        if torch.is_grad_enabled():  # create_graph=True: differentiate through the registered ops
            ctx.backend = ctx.passes.backend
            return _backward(ctx, grad_out)
        x, weight = ctx.saved_tensors
        (ph, pw), passes = ctx.padding, ctx.passes
        need_x, need_w, need_b = ctx.needs_input_grad[:3]
        grad_weight = grad_bias = None
        if need_x and (need_w or need_b) and passes.bwd_input is passes.bwd_weight:
            # one implementation for both gradients: it may share work between them
            grad_x, grad_weight, grad_bias = passes.bwd_input.runner.backward(grad_out, x, weight, ph, pw)
            grad_x = in_layout(grad_x, memory_format_of(grad_out))
            grad_weight, grad_bias = grad_weight.contiguous(), grad_bias.contiguous()
        else:
            grad_x = _bwd_input_on(passes.bwd_input, grad_out, weight, ph, pw) if need_x else None
        if (need_w or need_b) and grad_weight is None:
            grad_weight, grad_bias = _bwd_weight_on(passes.bwd_weight, grad_out, x, weight.shape[2],
                                                    weight.shape[3], ph, pw)
        grad_weight = grad_weight if need_w else None
        grad_bias = grad_bias if (need_b and ctx.has_bias) else None
        return grad_x, grad_weight, grad_bias, None, None, None


def _autocast_dtype(device_type: str) -> Optional[torch.dtype]:
    if device_type in ("cuda", "cpu") and torch.is_autocast_enabled(device_type):
        return torch.get_autocast_dtype(device_type)
    return None


def _autocast(x, weight, bias):
    """The arguments in the autocast dtype, as nn.Conv2d would run them."""
    if not isinstance(x, torch.Tensor):
        return x, weight, bias
    cast_to = _autocast_dtype(x.device.type)
    if cast_to is not None and x.is_floating_point() and x.dtype != torch.float64:
        x = x.to(cast_to)
        weight = weight.to(cast_to) if isinstance(weight, torch.Tensor) else weight
        bias = bias.to(cast_to) if isinstance(bias, torch.Tensor) else bias
    return x, weight, bias


# torch < 2.3 has no fast "any autocast on" query; then the per-device check runs every call.
_any_autocast = getattr(torch._C, "_is_any_autocast_enabled", lambda: True)
# Ready calls by signature; bounded, since every new shape adds one.
_CALLS: Dict[tuple, Callable] = {}
_MAX_CALLS = 4096
planner.on_reset(_CALLS.clear)


def dwconv2d(
    x: torch.Tensor,
    weight: torch.Tensor,
    bias: Optional[torch.Tensor] = None,
    padding: PaddingArg = "same",
    *,
    backend: str = "auto",
) -> torch.Tensor:
    """Depthwise 2-D cross-correlation, stride 1, dilation 1.

    Equal to ``F.conv2d(x, weight, bias, padding=padding, groups=x.shape[1])``. ``x`` is (N, C, H, W)
    in NCHW or channels_last layout (the output keeps it); ``weight`` is (C, 1, kh, kw) with any
    kh, kw >= 1; ``padding`` is "same" (odd kernel sizes), "valid", an int or (ph, pw).
    ``backend`` is "auto", "torch", "reference", "triton", "fft" or "cuda"; the environment variable
    ``REPLK_OPS_BACKEND`` overrides "auto". Under ``torch.autocast`` the op runs in the autocast
    dtype, like ``nn.Conv2d``.
    """
    if records_standard_conv(x):  # tracers and exporters record the standard conv (_tracing.py)
        check_backend_name(backend)
        return standard_dwconv2d(x, weight, bias, padding)
    if _any_autocast():
        x, weight, bias = _autocast(x, weight, bias)
    if torch.compiler.is_compiling():
        return _through_registered_op(x, weight, bias, padding, backend)
    try:
        key = (backend, padding, type(x), type(weight), type(bias), x.dtype, x.device, x.shape, x.stride(),
               weight.shape, weight.dtype, weight.device,
               None if bias is None else (bias.shape, bias.dtype, bias.device),
               torch.is_grad_enabled() and (x.requires_grad or weight.requires_grad
                                            or (bias is not None and bias.requires_grad)),
               torch.are_deterministic_algorithms_enabled())
        call = _CALLS.get(key)
    except (AttributeError, TypeError):  # not tensors, or an unhashable padding: the checks say
        key = call = None
    if call is None:
        call, lasting = _prepare_call(x, weight, bias, padding, backend)
        if key is not None and lasting:
            if len(_CALLS) >= _MAX_CALLS:
                _CALLS.clear()
            _CALLS[key] = call
    return call(x, weight, bias)


def _checked_padding(x, weight, bias, padding, backend) -> Tuple[int, int]:
    check_backend_name(backend)
    if not isinstance(weight, torch.Tensor) or weight.dim() != 4:
        got = tuple(weight.shape) if isinstance(weight, torch.Tensor) else type(weight).__name__
        raise ValueError(f"weight: expected a 4-D (C, 1, kh, kw) tensor, got {got}")
    pad = padding_pair(padding, (weight.shape[2], weight.shape[3]))
    check_conv_args(x, weight, bias, pad)
    return pad


def _through_registered_op(x, weight, bias, padding, backend):
    ph, pw = _checked_padding(x, weight, bias, padding, backend)
    return dwconv2d_fwd(x, weight, bias, ph, pw, backend)


def _is_dense(t: torch.Tensor) -> bool:
    """Whether ``t`` has the exact strides of its layout (PyTorch's own output then matches)."""
    return tuple(t.stride()) == dense_strides(t.shape, memory_format_of(t))


def _prepare_call(x, weight, bias, padding, backend) -> Tuple[Callable, bool]:
    """The ready call for this signature (checks done, passes planned), and whether it may be kept."""
    ph, pw = _checked_padding(x, weight, bias, padding, backend)
    tensors = (x, weight) if bias is None else (x, weight, bias)
    if not all(type(t) in _PLAIN_TENSOR_TYPES for t in tensors):
        # tensor subclasses (fake tensors, DTensor) go through the registered op
        return (lambda x, w, b: dwconv2d_fwd(x, w, b, ph, pw, backend)), True
    kh, kw, channels = weight.shape[2], weight.shape[3], x.shape[1]
    problem = Problem.of(x, kh, kw, ph, pw)
    # exactly nn.Conv2d's call, where its output already has the caller's layout (float32 on CUDA
    # excepted: it must run with TF32 off)
    native_ok = _is_dense(x) and not (x.is_cuda and x.dtype == torch.float32)

    def native(x, w, b):
        return F.conv2d(x, w, b, 1, (ph, pw), 1, channels)

    if not (torch.is_grad_enabled() and any(t.requires_grad for t in tensors)):
        choice = planner.plan_pass(problem, "fwd", backend, batch=x.shape[0])
        fwd = choice.implementation
        if fwd.name == "torch" and native_ok:
            return native, choice.final

        return (lambda x, w, b: _fwd_on(fwd, x, w, b, ph, pw)), choice.final

    def planned_step(passes):
        return lambda x, w, b: _EagerDWConv2d.apply(x, w, b, ph, pw, passes)

    def time_steps(choices):
        measured = _PassPlan(*(choices[name].implementation for name in planner.PASSES), backend)
        return planner.time_steps(problem, x.shape[0], native, planned_step(measured))

    choices = planner.plan_training(problem, backend, x.shape[0], time_steps if native_ok else None)
    lasting = all(choice.final for choice in choices.values())
    impls = [choices[name].implementation for name in planner.PASSES]
    if all(impl.name == "torch" for impl in impls) and native_ok:
        return native, lasting
    return planned_step(_PassPlan(*impls, backend)), lasting


def explain(x: torch.Tensor, weight: torch.Tensor, padding: PaddingArg = "same", backend: str = "auto",
            *, bias: Optional[torch.Tensor] = None) -> planner.Plan:
    """Which implementation runs each pass of ``dwconv2d(x, weight, padding=padding,
    backend=backend)`` here and now (autocast, deterministic mode and compile tracing included),
    how it was chosen, and why every other one was rejected. Printing the result gives a readable
    report. It never measures: before the first call of a kind it says what that call will time."""
    if _any_autocast():
        x, weight, bias = _autocast(x, weight, bias)
    ph, pw = _checked_padding(x, weight, bias, padding, backend)
    return planner.plan(Problem.of(x, weight.shape[2], weight.shape[3], ph, pw), backend, measure=False)


__all__ = ["dwconv2d", "explain"]
