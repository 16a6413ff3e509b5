"""The three registered ops, their fake implementations and autograd, and ``dwconv2d``.

``replk_ops::dwconv2d_fwd``, ``dwconv2d_bwd_input`` and ``dwconv2d_bwd_weight`` are functional
torch.library custom ops: they allocate their outputs and mutate nothing, so autograd,
``torch.compile`` and ``torch.library.opcheck`` treat them like built-in ops. Each call resolves
its backend at run time (``backends.select``).
"""
# No `from __future__ import annotations` here: torch < 2.5 infers the ops' schemas from the
# annotations themselves and rejects them as strings.
from typing import Optional, Tuple

import torch

from . import backends
from ._checks import (
    PaddingArg, check_backend_name, check_conv_args, in_layout, memory_format_of, output_size,
    padding_pair,
)
from ._tracing import records_standard_conv, standard_dwconv2d


def _empty(shape, like: torch.Tensor, memory_format) -> torch.Tensor:
    return torch.empty(shape, dtype=like.dtype, device=like.device, memory_format=memory_format)


# The three passes on the selected backend, shared by the registered ops, the eager autograd
# function and the eager inference path.
def _run_fwd(x, weight, bias, ph, pw, backend):
    impl = backends.select(x, weight, backend, "fwd", lambda b: b.fwd(x, weight, bias, ph, pw))
    return in_layout(impl.fwd(x, weight, bias, ph, pw), memory_format_of(x))


def _run_bwd_input(grad_out, weight, ph, pw, backend):
    impl = backends.select(grad_out, weight, backend, "bwd_input", lambda b: b.bwd_input(grad_out, weight, ph, pw))
    return in_layout(impl.bwd_input(grad_out, weight, ph, pw), memory_format_of(grad_out))


def _run_bwd_weight(grad_out, x, kh, kw, ph, pw, backend, weight_like=None):
    """``weight_like``: any (C, 1, kh, kw) tensor for choosing the backend (made if not given)."""
    if weight_like is None:
        weight_like = x.new_empty((x.shape[1], 1, kh, kw))
    impl = backends.select(x, weight_like, backend, "bwd_weight", lambda b: b.bwd_weight(grad_out, x, kh, kw, ph, pw))
    grad_weight, grad_bias = impl.bwd_weight(grad_out, x, kh, kw, ph, pw)
    return grad_weight.contiguous(), grad_bias.contiguous()


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
    kh, kw = weight.shape[2], weight.shape[3]
    shape = (grad_out.shape[0], grad_out.shape[1], grad_out.shape[2] - 2 * ph + kh - 1,
             grad_out.shape[3] - 2 * pw + kw - 1)
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


def _backward(ctx, grad_out, differentiable=True):
    """Gradients of the forward. ``differentiable``: through the registered ops, which have
    autograd themselves (double backward); otherwise straight on the backends (eager)."""
    x, weight = ctx.saved_tensors
    ph, pw = ctx.padding
    grad_x = grad_weight = grad_bias = None
    need_x, need_w, need_b = ctx.needs_input_grad[:3]
    if need_x:
        run = dwconv2d_bwd_input if differentiable else _run_bwd_input
        grad_x = run(grad_out, weight, ph, pw, ctx.backend)
    if need_w or need_b:
        kh, kw = weight.shape[2], weight.shape[3]
        if differentiable:
            grad_weight, grad_bias = dwconv2d_bwd_weight(grad_out, x, kh, kw, ph, pw, ctx.backend)
        else:
            grad_weight, grad_bias = _run_bwd_weight(grad_out, x, kh, kw, ph, pw, ctx.backend, weight)
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


class _EagerDWConv2d(torch.autograd.Function):
    """Eager training calls: the same backends and the same gradients as the registered ops, with
    one autograd node instead of three trips through the dispatcher (about 0.3 ms a layer saved,
    which is most of the time of a small layer at batch 1). torch.compile, tensor subclasses and
    double backward use the registered ops."""

    @staticmethod
    def forward(ctx, x, weight, bias, ph, pw, backend):
        _setup_context(ctx, (x, weight, bias, ph, pw, backend), None)
        return _run_fwd(x, weight, bias, ph, pw, backend)

    @staticmethod
    def backward(ctx, grad_out):
        # create_graph=True (grad mode on here) differentiates through the registered ops
        return _backward(ctx, grad_out, differentiable=torch.is_grad_enabled())


def _autocast_dtype(device_type: str) -> Optional[torch.dtype]:
    if device_type in ("cuda", "cpu") and torch.is_autocast_enabled(device_type):
        return torch.get_autocast_dtype(device_type)
    return None


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
    ``backend`` is "auto", "reference", "triton" or "cuda"; the environment variable
    ``REPLK_OPS_BACKEND`` overrides "auto". Under ``torch.autocast`` the op runs in the autocast
    dtype, like ``nn.Conv2d``.
    """
    check_backend_name(backend)
    # --- export: tracers and exporters record the standard conv (see _tracing.py) ---
    if records_standard_conv(x):
        return standard_dwconv2d(x, weight, bias, padding)
    # ---------------------------------------------------------------------------------
    if not isinstance(weight, torch.Tensor) or weight.dim() != 4:
        got = tuple(weight.shape) if isinstance(weight, torch.Tensor) else type(weight).__name__
        raise ValueError(f"weight: expected a 4-D (C, 1, kh, kw) tensor, got {got}")
    pad = padding_pair(padding, (weight.shape[2], weight.shape[3]))
    if isinstance(x, torch.Tensor):
        cast_to = _autocast_dtype(x.device.type)
        if cast_to is not None and x.is_floating_point() and x.dtype != torch.float64:
            x, weight = x.to(cast_to), weight.to(cast_to)
            bias = bias.to(cast_to) if isinstance(bias, torch.Tensor) else bias
    check_conv_args(x, weight, bias, pad)
    if _is_plain_eager_inference(x, weight, bias):
        # Same backend, same result, without the dispatcher's round trip through Python
        # (~60 us a call on CPU, which matters for small layers at batch 1).
        return _run_fwd(x, weight, bias, pad[0], pad[1], backend)
    if _is_plain_eager(x, weight, bias):
        return _EagerDWConv2d.apply(x, weight, bias, pad[0], pad[1], backend)
    return dwconv2d_fwd(x, weight, bias, pad[0], pad[1], backend)


_PLAIN_TENSOR_TYPES = (torch.Tensor, torch.nn.Parameter)


def _is_plain_eager(x, weight, bias) -> bool:
    """An eager call on plain tensors: torch.compile and tensor subclasses (fake tensors, DTensor)
    go through the registered op."""
    tensors = (x, weight) if bias is None else (x, weight, bias)
    return not torch.compiler.is_compiling() and all(type(t) in _PLAIN_TENSOR_TYPES for t in tensors)


def _is_plain_eager_inference(x, weight, bias) -> bool:
    """An eager call that neither autograd nor torch.compile has a stake in."""
    needs_grad = torch.is_grad_enabled() and any(t is not None and t.requires_grad for t in (x, weight, bias))
    return not needs_grad and _is_plain_eager(x, weight, bias)


def explain(x: torch.Tensor, weight: torch.Tensor, padding: PaddingArg = "same", backend: str = "auto"):
    """Which backend would run ``dwconv2d(x, weight, padding=padding, backend=backend)``, and why
    every other backend was rejected. Printing the result gives a readable report."""
    pad = padding_pair(padding, (weight.shape[2], weight.shape[3]))
    check_conv_args(x, weight, None, pad)
    return backends.explain_choice(x, weight, backend)


__all__ = ["dwconv2d", "explain"]
