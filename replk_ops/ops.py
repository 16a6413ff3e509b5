"""The three registered ops, their fake implementations and autograd.

``replk_ops::dwconv2d_fwd``, ``dwconv2d_bwd_input`` and ``dwconv2d_bwd_weight`` are functional
torch.library custom ops: they allocate their outputs and mutate nothing, so autograd,
``torch.compile`` and ``torch.library.opcheck`` treat them like built-in ops. Which implementation
runs each pass is the planner's answer (``planner.plan_pass``). ``dwconv2d`` (eager.py) reaches
them under ``torch.compile`` and for tensor subclasses; eager calls on plain tensors run the same
per-pass functions below without the dispatcher.
"""
# No `from __future__ import annotations` here: torch < 2.5 infers the ops' schemas from the
# annotations themselves and rejects them as strings.
from typing import Callable, Optional, Tuple

import torch

from . import planner
from ._checks import check_conv_args, input_size, output_size
from ._layout import in_layout, memory_format_of
from .catalog import Implementation
from .problem import Problem


def _empty(shape, like: torch.Tensor, memory_format) -> torch.Tensor:
    return torch.empty(shape, dtype=like.dtype, device=like.device, memory_format=memory_format)


def _implementation(x, kh, kw, ph, pw, pass_name, backend, input_hw=None, dilation=(1, 1)) -> Implementation:
    problem = Problem.of(x, kh, kw, ph, pw, input_hw, dilation)
    return planner.plan_pass(problem, pass_name, backend, batch=x.shape[0]).implementation


# The three passes on a planned implementation, shared by the registered ops, the eager autograd
# function and the eager inference path. Outputs keep the layout of the tensor they follow.
def run_fwd_on(impl: Implementation, x, weight, bias, ph, pw, dilation=(1, 1)):
    return in_layout(impl.runner.fwd(x, weight, bias, ph, pw, dilation), memory_format_of(x))


def run_bwd_input_on(impl: Implementation, grad_out, weight, ph, pw, dilation=(1, 1)):
    return in_layout(impl.runner.bwd_input(grad_out, weight, ph, pw, dilation), memory_format_of(grad_out))


def run_bwd_weight_on(impl: Implementation, grad_out, x, kh, kw, ph, pw, dilation=(1, 1)):
    grad_weight, grad_bias = impl.runner.bwd_weight(grad_out, x, kh, kw, ph, pw, dilation)
    return grad_weight.contiguous(), grad_bias.contiguous()


def run_backward_on(impl: Implementation, grad_out, x, weight, ph, pw, dilation=(1, 1)):
    """Both gradients on one implementation, which may share work between them (fft transforms
    grad_out once)."""
    grad_x, grad_weight, grad_bias = impl.runner.backward(grad_out, x, weight, ph, pw, dilation)
    return in_layout(grad_x, memory_format_of(grad_out)), grad_weight.contiguous(), grad_bias.contiguous()


def _input_hw(grad_out, kh, kw, ph, pw, dilation) -> Tuple[int, int]:
    return input_size(grad_out.shape[2], grad_out.shape[3], kh, kw, ph, pw, dilation)


def _run_fwd(x, weight, bias, ph, pw, backend, dilation):
    impl = _implementation(x, weight.shape[2], weight.shape[3], ph, pw, "fwd", backend, dilation=dilation)
    return run_fwd_on(impl, x, weight, bias, ph, pw, dilation)


def _run_bwd_input(grad_out, weight, ph, pw, backend, dilation):
    kh, kw = weight.shape[2], weight.shape[3]
    input_hw = _input_hw(grad_out, kh, kw, ph, pw, dilation)
    impl = _implementation(grad_out, kh, kw, ph, pw, "bwd_input", backend, input_hw, dilation)
    return run_bwd_input_on(impl, grad_out, weight, ph, pw, dilation)


def _run_bwd_weight(grad_out, x, kh, kw, ph, pw, backend, dilation):
    impl = _implementation(x, kh, kw, ph, pw, "bwd_weight", backend, dilation=dilation)
    return run_bwd_weight_on(impl, grad_out, x, kh, kw, ph, pw, dilation)


# The dilation (dh, dw) comes last, with default 1, so calls written before it existed still work.
@torch.library.custom_op("replk_ops::dwconv2d_fwd", mutates_args=())
def dwconv2d_fwd(
    x: torch.Tensor, weight: torch.Tensor, bias: Optional[torch.Tensor], ph: int, pw: int, backend: str,
    dh: int = 1, dw: int = 1,
) -> torch.Tensor:
    check_conv_args(x, weight, bias, (ph, pw), (dh, dw))
    return _run_fwd(x, weight, bias, ph, pw, backend, (dh, dw))


@dwconv2d_fwd.register_fake
def _(x, weight, bias, ph, pw, backend, dh=1, dw=1):
    out_h, out_w = output_size(x.shape[2], x.shape[3], weight.shape[2], weight.shape[3], ph, pw, (dh, dw))
    return _empty((x.shape[0], x.shape[1], out_h, out_w), x, memory_format_of(x))


@torch.library.custom_op("replk_ops::dwconv2d_bwd_input", mutates_args=())
def dwconv2d_bwd_input(grad_out: torch.Tensor, weight: torch.Tensor, ph: int, pw: int, backend: str,
                       dh: int = 1, dw: int = 1) -> torch.Tensor:
    return _run_bwd_input(grad_out, weight, ph, pw, backend, (dh, dw))


@dwconv2d_bwd_input.register_fake
def _(grad_out, weight, ph, pw, backend, dh=1, dw=1):
    input_hw = _input_hw(grad_out, weight.shape[2], weight.shape[3], ph, pw, (dh, dw))
    return _empty((grad_out.shape[0], grad_out.shape[1]) + input_hw, grad_out, memory_format_of(grad_out))


@torch.library.custom_op("replk_ops::dwconv2d_bwd_weight", mutates_args=())
def dwconv2d_bwd_weight(
    grad_out: torch.Tensor, x: torch.Tensor, kh: int, kw: int, ph: int, pw: int, backend: str,
    dh: int = 1, dw: int = 1,
) -> Tuple[torch.Tensor, torch.Tensor]:
    return _run_bwd_weight(grad_out, x, kh, kw, ph, pw, backend, (dh, dw))


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


def gradients(ctx, grad_out, bwd_input: Callable, bwd_weight: Callable, both: Optional[Callable] = None):
    """(grad_x, grad_weight, grad_bias) of a forward whose ``ctx`` saved (x, weight) and
    ``has_bias``: ``bwd_input(grad_out, weight)`` and ``bwd_weight(grad_out, x, weight)`` compute
    the passes, each only where an input needs it; ``both(grad_out, x, weight)``, where given,
    computes all three at once when the input and a parameter both need gradients."""
    x, weight = ctx.saved_tensors
    need_x, need_w, need_b = ctx.needs_input_grad[:3]
    grad_x = grad_weight = grad_bias = None
    if both is not None and need_x and (need_w or need_b):
        grad_x, grad_weight, grad_bias = both(grad_out, x, weight)
    # the weight gradient first: its temporaries are freed before the input gradient, as large as
    # the input, is allocated (a lower peak than the other order)
    if (need_w or need_b) and grad_weight is None:
        grad_weight, grad_bias = bwd_weight(grad_out, x, weight)
    if need_x and grad_x is None:
        grad_x = bwd_input(grad_out, weight)
    if need_w or need_b:
        grad_weight = grad_weight if need_w else None
        grad_bias = grad_bias if (need_b and ctx.has_bias) else None
    return grad_x, grad_weight, grad_bias


def _backward(ctx, grad_out):
    """Gradients of the forward, through the registered ops (which have autograd themselves:
    double backward)."""
    (ph, pw), (dh, dw), backend = ctx.padding, ctx.dilation, ctx.backend
    grads = gradients(
        ctx, grad_out,
        lambda dy, weight: dwconv2d_bwd_input(dy, weight, ph, pw, backend, dh, dw),
        lambda dy, x, weight: dwconv2d_bwd_weight(dy, x, weight.shape[2], weight.shape[3], ph, pw, backend, dh, dw))
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


__all__ = ["dwconv2d_fwd", "dwconv2d_bwd_input", "dwconv2d_bwd_weight", "gradients", "run_fwd_on",
           "run_bwd_input_on", "run_bwd_weight_on", "run_backward_on"]
