"""The three registered 3-D ops, their fake implementations and autograd: ``ops``' counterparts
for (N, C, D, H, W) tensors.

``replk_ops::dwconv3d_fwd``, ``dwconv3d_bwd_input`` and ``dwconv3d_bwd_weight`` take padding,
dilation and the kernel size as int lists (d, h, w). Which implementation runs each pass is the
planner's answer for a ``Problem3d``; the backward ops are linear in each argument, so their own
gradients are the other passes (double backward).
"""
# No `from __future__ import annotations`: torch < 2.5 infers the ops' schemas from the annotations.
from typing import List, Optional, Tuple

import torch

from . import planner
from ._checks import input_sizes, output_sizes
from ._checks3d import check_conv3d_args
from ._layout import in_layout, memory_format_of
from .catalog import Implementation
from .passes import gradients
from .problem3d import Problem3d


def implementation(x, kernel, padding, dilation, pass_name, backend, input_size=None) -> Implementation:
    problem = Problem3d.of(x, kernel, padding, dilation, input_size)
    return planner.plan_pass(problem, pass_name, backend, batch=x.shape[0]).implementation


# The passes on a planned implementation, shared by the ops and the eager path; outputs keep the
# layout of the tensor they follow.
def run_fwd_on(impl: Implementation, x, weight, bias, padding, dilation):
    return in_layout(impl.runner3d.fwd(x, weight, bias, padding, dilation), memory_format_of(x))


def run_bwd_input_on(impl: Implementation, grad_out, weight, padding, dilation):
    return in_layout(impl.runner3d.bwd_input(grad_out, weight, padding, dilation), memory_format_of(grad_out))


def run_bwd_weight_on(impl: Implementation, grad_out, x, kernel, padding, dilation):
    grad_weight, grad_bias = impl.runner3d.bwd_weight(grad_out, x, kernel, padding, dilation)
    return grad_weight.contiguous(), grad_bias.contiguous()


def run_backward_on(impl: Implementation, grad_out, x, weight, padding, dilation):
    grad_x, grad_weight, grad_bias = impl.runner3d.backward(grad_out, x, weight, padding, dilation)
    return in_layout(grad_x, memory_format_of(grad_out)), grad_weight.contiguous(), grad_bias.contiguous()


def _input_size(grad_out, kernel, padding, dilation) -> Tuple[int, ...]:
    return input_sizes(grad_out.shape[2:], kernel, padding, dilation)


def _empty(shape, like: torch.Tensor) -> torch.Tensor:
    return torch.empty(shape, dtype=like.dtype, device=like.device, memory_format=memory_format_of(like))


@torch.library.custom_op("replk_ops::dwconv3d_fwd", mutates_args=())
def dwconv3d_fwd(x: torch.Tensor, weight: torch.Tensor, bias: Optional[torch.Tensor], padding: List[int],
                 backend: str, dilation: List[int]) -> torch.Tensor:
    padding, dilation = tuple(padding), tuple(dilation)
    check_conv3d_args(x, weight, bias, padding, dilation)
    impl = implementation(x, tuple(weight.shape[2:]), padding, dilation, "fwd", backend)
    return run_fwd_on(impl, x, weight, bias, padding, dilation)


@dwconv3d_fwd.register_fake
def _(x, weight, bias, padding, backend, dilation):
    return _empty((x.shape[0], x.shape[1]) + output_sizes(x.shape[2:], weight.shape[2:], padding, dilation), x)


@torch.library.custom_op("replk_ops::dwconv3d_bwd_input", mutates_args=())
def dwconv3d_bwd_input(grad_out: torch.Tensor, weight: torch.Tensor, padding: List[int], backend: str,
                       dilation: List[int]) -> torch.Tensor:
    padding, dilation, kernel = tuple(padding), tuple(dilation), tuple(weight.shape[2:])
    size = _input_size(grad_out, kernel, padding, dilation)
    impl = implementation(grad_out, kernel, padding, dilation, "bwd_input", backend, size)
    return run_bwd_input_on(impl, grad_out, weight, padding, dilation)


@dwconv3d_bwd_input.register_fake
def _(grad_out, weight, padding, backend, dilation):
    size = _input_size(grad_out, weight.shape[2:], padding, dilation)
    return _empty((grad_out.shape[0], grad_out.shape[1]) + size, grad_out)


@torch.library.custom_op("replk_ops::dwconv3d_bwd_weight", mutates_args=())
def dwconv3d_bwd_weight(grad_out: torch.Tensor, x: torch.Tensor, kernel: List[int], padding: List[int],
                        backend: str, dilation: List[int]) -> Tuple[torch.Tensor, torch.Tensor]:
    kernel, padding, dilation = tuple(kernel), tuple(padding), tuple(dilation)
    impl = implementation(x, kernel, padding, dilation, "bwd_weight", backend)
    return run_bwd_weight_on(impl, grad_out, x, kernel, padding, dilation)


@dwconv3d_bwd_weight.register_fake
def _(grad_out, x, kernel, padding, backend, dilation):
    return x.new_empty((x.shape[1], 1) + tuple(kernel)), x.new_empty((x.shape[1],))


def _setup_context(ctx, inputs, output):
    x, weight, bias, padding, backend, dilation = inputs
    ctx.save_for_backward(x, weight)
    ctx.padding, ctx.dilation, ctx.backend, ctx.has_bias = list(padding), list(dilation), backend, bias is not None


def gradients_through_ops(grad_out, x, weight, needs_input_grad, has_bias: bool, padding, dilation, backend: str):
    """Gradients of the forward through the registered ops (which have autograd themselves: double
    backward); the eager autograd function calls it too when the backward is differentiated."""
    padding, dilation = list(padding), list(dilation)
    return gradients(
        grad_out, x, weight, needs_input_grad, has_bias,
        lambda dy, weight: dwconv3d_bwd_input(dy, weight, padding, backend, dilation),
        lambda dy, x, weight: dwconv3d_bwd_weight(dy, x, list(weight.shape[2:]), padding, backend, dilation))


def _backward(ctx, grad_out):
    x, weight = ctx.saved_tensors
    return gradients_through_ops(grad_out, x, weight, ctx.needs_input_grad, ctx.has_bias, ctx.padding, ctx.dilation,
                                 ctx.backend) + (None, None, None)


dwconv3d_fwd.register_autograd(_backward, setup_context=_setup_context)


def _setup_bwd_input(ctx, inputs, output):
    grad_out, weight, padding, backend, dilation = inputs
    ctx.save_for_backward(grad_out, weight)
    ctx.padding, ctx.dilation, ctx.backend = list(padding), list(dilation), backend


def _backward_bwd_input(ctx, g):
    # <g, bwd_input(dy, w)> == <fwd(g, w), dy>
    grad_out, weight = ctx.saved_tensors
    d_grad_out = d_weight = None
    if ctx.needs_input_grad[0]:
        d_grad_out = dwconv3d_fwd(g, weight, None, ctx.padding, ctx.backend, ctx.dilation)
    if ctx.needs_input_grad[1]:
        d_weight = dwconv3d_bwd_weight(grad_out, g, list(weight.shape[2:]), ctx.padding, ctx.backend,
                                       ctx.dilation)[0]
    return d_grad_out, d_weight, None, None, None


def _setup_bwd_weight(ctx, inputs, output):
    grad_out, x, kernel, padding, backend, dilation = inputs
    ctx.save_for_backward(grad_out, x)
    ctx.padding, ctx.dilation, ctx.backend = list(padding), list(dilation), backend


def _backward_bwd_weight(ctx, g_weight, g_bias):
    # <g_w, dw(dy, x)> + <g_b, db(dy)> == <dy, fwd(x, g_w, g_b)>
    grad_out, x = ctx.saved_tensors
    d_grad_out = d_x = None
    if ctx.needs_input_grad[0]:
        d_grad_out = dwconv3d_fwd(x, g_weight, g_bias, ctx.padding, ctx.backend, ctx.dilation)
    if ctx.needs_input_grad[1]:
        d_x = dwconv3d_bwd_input(grad_out, g_weight, ctx.padding, ctx.backend, ctx.dilation)
    return d_grad_out, d_x, None, None, None, None


dwconv3d_bwd_input.register_autograd(_backward_bwd_input, setup_context=_setup_bwd_input)
dwconv3d_bwd_weight.register_autograd(_backward_bwd_weight, setup_context=_setup_bwd_weight)


__all__ = ["dwconv3d_fwd", "dwconv3d_bwd_input", "dwconv3d_bwd_weight", "run_fwd_on", "run_bwd_input_on",
           "run_bwd_weight_on", "run_backward_on", "implementation", "gradients_through_ops"]
