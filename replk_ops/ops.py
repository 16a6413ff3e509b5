"""The three registered ops, their fake implementations and autograd.

``replk_ops::dwconv2d_fwd``, ``dwconv2d_bwd_input`` and ``dwconv2d_bwd_weight`` are functional
torch.library custom ops: they allocate their outputs and mutate nothing, so autograd,
``torch.compile`` and ``torch.library.opcheck`` treat them like built-in ops. Which implementation
runs each pass is the planner's answer (``planner.plan_pass``), run by ``passes.py``. ``dwconv2d``
(eager.py) reaches them under ``torch.compile`` and for tensor subclasses; eager calls on plain
tensors run the same per-pass functions (passes.py) without the dispatcher.
"""
# No `from __future__ import annotations` here: torch < 2.5 infers the ops' schemas from the
# annotations themselves and rejects them as strings.
from typing import Optional, Sequence, Tuple

import torch

from . import passes
from ._checks import check_conv_args, output_size
from ._layout import memory_format_of


def _empty(shape, like: torch.Tensor, memory_format) -> torch.Tensor:
    return torch.empty(shape, dtype=like.dtype, device=like.device, memory_format=memory_format)


# The dilation (dh, dw) comes last, with default 1, so calls written before it existed still work.
@torch.library.custom_op("replk_ops::dwconv2d_fwd", mutates_args=())
def dwconv2d_fwd(
    x: torch.Tensor, weight: torch.Tensor, bias: Optional[torch.Tensor], ph: int, pw: int, backend: str,
    dh: int = 1, dw: int = 1,
) -> torch.Tensor:
    check_conv_args(x, weight, bias, (ph, pw), (dh, dw))
    return passes.run_fwd(x, weight, bias, ph, pw, backend, (dh, dw))


@dwconv2d_fwd.register_fake
def _(x, weight, bias, ph, pw, backend, dh=1, dw=1):
    out_h, out_w = output_size(x.shape[2], x.shape[3], weight.shape[2], weight.shape[3], ph, pw, (dh, dw))
    return _empty((x.shape[0], x.shape[1], out_h, out_w), x, memory_format_of(x))


@torch.library.custom_op("replk_ops::dwconv2d_bwd_input", mutates_args=())
def dwconv2d_bwd_input(grad_out: torch.Tensor, weight: torch.Tensor, ph: int, pw: int, backend: str,
                       dh: int = 1, dw: int = 1) -> torch.Tensor:
    return passes.run_bwd_input(grad_out, weight, ph, pw, backend, (dh, dw))


@dwconv2d_bwd_input.register_fake
def _(grad_out, weight, ph, pw, backend, dh=1, dw=1):
    input_hw = passes.input_hw(grad_out, weight.shape[2], weight.shape[3], ph, pw, (dh, dw))
    return _empty((grad_out.shape[0], grad_out.shape[1]) + input_hw, grad_out, memory_format_of(grad_out))


@torch.library.custom_op("replk_ops::dwconv2d_bwd_weight", mutates_args=())
def dwconv2d_bwd_weight(
    grad_out: torch.Tensor, x: torch.Tensor, kh: int, kw: int, ph: int, pw: int, backend: str,
    dh: int = 1, dw: int = 1,
) -> Tuple[torch.Tensor, torch.Tensor]:
    return passes.run_bwd_weight(grad_out, x, kh, kw, ph, pw, backend, (dh, dw))


@dwconv2d_bwd_weight.register_fake
def _(grad_out, x, kh, kw, ph, pw, backend, dh=1, dw=1):
    channels = x.shape[1]
    return x.new_empty((channels, 1, kh, kw)), x.new_empty((channels,))


def _setup_context(ctx, inputs, output):
    x, weight, bias, ph, pw, backend, dh, dw = inputs
    ctx.save_for_backward(x, weight)
    ctx.padding = (ph, pw)
    ctx.dilation = (dh, dw)
    ctx.backend = backend
    ctx.has_bias = bias is not None


def gradients_through_ops(grad_out, x, weight, needs_input_grad: Sequence[bool], has_bias: bool,
                          padding: Tuple[int, int], dilation: Tuple[int, int], backend: str):
    """Gradients of the forward through the registered ops (which have autograd themselves: double
    backward); the eager autograd function calls it too when the backward is differentiated."""
    (ph, pw), (dh, dw) = padding, dilation
    return passes.gradients(
        grad_out, x, weight, needs_input_grad, has_bias,
        lambda dy, weight: dwconv2d_bwd_input(dy, weight, ph, pw, backend, dh, dw),
        lambda dy, x, weight: dwconv2d_bwd_weight(dy, x, weight.shape[2], weight.shape[3], ph, pw, backend, dh, dw))


def _backward(ctx, grad_out):
    x, weight = ctx.saved_tensors
    grads = gradients_through_ops(grad_out, x, weight, ctx.needs_input_grad, ctx.has_bias, ctx.padding, ctx.dilation,
                                  ctx.backend)
    return grads + (None, None, None, None, None)


dwconv2d_fwd.register_autograd(_backward, setup_context=_setup_context)


# The backward ops are linear in each argument, so their own gradients are the other passes
# (adjoint identities); this gives double backward, e.g. for gradient penalties.
def _setup_bwd_input(ctx, inputs, output):
    grad_out, weight, ph, pw, backend, dh, dw = inputs
    ctx.save_for_backward(grad_out, weight)
    ctx.padding, ctx.dilation, ctx.backend = (ph, pw), (dh, dw), backend


def _backward_bwd_input(ctx, g):
    # <g, bwd_input(dy, w)> == <fwd(g, w), dy>
    grad_out, weight = ctx.saved_tensors
    (ph, pw), (dh, dw) = ctx.padding, ctx.dilation
    d_grad_out = d_weight = None
    if ctx.needs_input_grad[0]:
        d_grad_out = dwconv2d_fwd(g, weight, None, ph, pw, ctx.backend, dh, dw)
    if ctx.needs_input_grad[1]:
        d_weight = dwconv2d_bwd_weight(grad_out, g, weight.shape[2], weight.shape[3], ph, pw, ctx.backend, dh, dw)[0]
    return d_grad_out, d_weight, None, None, None, None, None


def _setup_bwd_weight(ctx, inputs, output):
    grad_out, x, kh, kw, ph, pw, backend, dh, dw = inputs
    ctx.save_for_backward(grad_out, x)
    ctx.padding, ctx.dilation, ctx.backend = (ph, pw), (dh, dw), backend


def _backward_bwd_weight(ctx, g_weight, g_bias):
    # <g_w, dw(dy, x)> + <g_b, db(dy)> == <dy, fwd(x, g_w, g_b)>
    grad_out, x = ctx.saved_tensors
    (ph, pw), (dh, dw) = ctx.padding, ctx.dilation
    d_grad_out = d_x = None
    if ctx.needs_input_grad[0]:
        d_grad_out = dwconv2d_fwd(x, g_weight, g_bias, ph, pw, ctx.backend, dh, dw)
    if ctx.needs_input_grad[1]:
        d_x = dwconv2d_bwd_input(grad_out, g_weight, ph, pw, ctx.backend, dh, dw)
    return d_grad_out, d_x, None, None, None, None, None, None, None


dwconv2d_bwd_input.register_autograd(_backward_bwd_input, setup_context=_setup_bwd_input)
dwconv2d_bwd_weight.register_autograd(_backward_bwd_weight, setup_context=_setup_bwd_weight)


__all__ = ["dwconv2d_fwd", "dwconv2d_bwd_input", "dwconv2d_bwd_weight", "gradients_through_ops"]
