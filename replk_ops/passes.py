"""The three passes on a planned implementation, and the gradients of a forward: what the
registered ops (ops.py) and the eager path (eager.py) both run.

Outputs keep the layout of the tensor they follow. ``gradients`` takes everything it needs as
arguments (no autograd context), so the ops' autograd and the eager autograd function share it.
"""
from __future__ import annotations

from typing import Callable, Optional, Sequence, Tuple

from . import planner
from ._checks import input_size
from ._layout import in_layout, memory_format_of
from .backends.implementation import Implementation
from .problem import Problem


def planned(x, kh, kw, ph, pw, pass_name, backend, input_hw=None, dilation=(1, 1)) -> Implementation:
    """The implementation the planner gives ``pass_name`` of a call on ``x``."""
    problem = Problem.of(x, kh, kw, ph, pw, input_hw, dilation)
    return planner.plan_pass(problem, pass_name, backend, batch=x.shape[0]).implementation


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


def input_hw(grad_out, kh, kw, ph, pw, dilation) -> Tuple[int, int]:
    """The input's map, from the output gradient's."""
    return input_size(grad_out.shape[2], grad_out.shape[3], kh, kw, ph, pw, dilation)


# The passes as the planner chooses them for ``backend``.
def run_fwd(x, weight, bias, ph, pw, backend, dilation):
    impl = planned(x, weight.shape[2], weight.shape[3], ph, pw, "fwd", backend, dilation=dilation)
    return run_fwd_on(impl, x, weight, bias, ph, pw, dilation)


def run_bwd_input(grad_out, weight, ph, pw, backend, dilation):
    kh, kw = weight.shape[2], weight.shape[3]
    impl = planned(grad_out, kh, kw, ph, pw, "bwd_input", backend, input_hw(grad_out, kh, kw, ph, pw, dilation),
                   dilation)
    return run_bwd_input_on(impl, grad_out, weight, ph, pw, dilation)


def run_bwd_weight(grad_out, x, kh, kw, ph, pw, backend, dilation):
    impl = planned(x, kh, kw, ph, pw, "bwd_weight", backend, dilation=dilation)
    return run_bwd_weight_on(impl, grad_out, x, kh, kw, ph, pw, dilation)


def gradients(grad_out, x, weight, needs_input_grad: Sequence[bool], has_bias: bool, bwd_input: Callable,
              bwd_weight: Callable, both: Optional[Callable] = None):
    """(grad_x, grad_weight, grad_bias) of a forward on (x, weight, bias): ``needs_input_grad`` says
    which of the three want one; ``bwd_input(grad_out, weight)`` and ``bwd_weight(grad_out, x,
    weight)`` compute the passes, each only where an input needs it; ``both(grad_out, x, weight)``,
    where given, computes all three at once when the input and a parameter both need gradients."""
    need_x, need_w, need_b = needs_input_grad[:3]
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
        grad_bias = grad_bias if (need_b and has_bias) else None
    return grad_x, grad_weight, grad_bias


__all__ = ["planned", "run_fwd_on", "run_bwd_input_on", "run_bwd_weight_on", "run_backward_on", "input_hw",
           "run_fwd", "run_bwd_input", "run_bwd_weight", "gradients"]
