"""Ready calls: what the eager path keeps per call signature, for ``dwconv2d`` (eager.py) and
``dwconv3d`` (eager3d.py) alike.

A ready call is a call whose arguments were checked and whose passes were planned once, on the
first call of its signature (dtypes, devices, shapes, strides, padding, dilation, backend, whether
autograd records). A steady-state eager call is then one signature, one dictionary lookup and the
work itself. Where the plan is PyTorch's own convolution for every pass, the ready call is
``F.conv2d`` / ``F.conv3d`` with PyTorch's own backward ("native"); otherwise it runs the planned
implementations in one autograd node (``PlannedStep``), instead of three trips through the
dispatcher (about 0.3 ms a layer, most of the time of a small layer at batch 1).
"""
from __future__ import annotations

from typing import Callable, Dict, NamedTuple, Optional, Sequence

import torch

from . import measure, planner
from ._layout import dense_strides, memory_format_of
from ._tracing import _PLAIN_TENSOR_TYPES
from .backends.implementation import Implementation
from .passes import gradients


class Passes(NamedTuple):
    """One signature's planned passes, as calls on tensors (the rank's sizes already bound)."""

    fwd: Callable  # (x, weight, bias) -> y
    bwd_input: Callable  # (grad_out, weight) -> grad_x
    bwd_weight: Callable  # (grad_out, x, weight) -> (grad_weight, grad_bias)
    backward: Optional[Callable]  # (grad_out, x, weight) -> all three, where one implementation runs both
    through_ops: Callable  # (grad_out, x, weight, needs_input_grad, has_bias) -> all three, differentiable


class PlannedStep(torch.autograd.Function):
    """The planned passes of an eager training call as one autograd node; double backward
    (create_graph=True) goes through the registered ops."""

    @staticmethod
    def forward(ctx, x, weight, bias, passes: Passes):
        ctx.save_for_backward(x, weight)
        ctx.passes, ctx.has_bias = passes, bias is not None
        return passes.fwd(x, weight, bias)

    @staticmethod
    def backward(ctx, grad_out):
        x, weight = ctx.saved_tensors
        passes = ctx.passes
        if torch.is_grad_enabled():  # create_graph=True: differentiate through the registered ops
            return passes.through_ops(grad_out, x, weight, ctx.needs_input_grad, ctx.has_bias) + (None,)
        return gradients(grad_out, x, weight, ctx.needs_input_grad, ctx.has_bias, passes.bwd_input,
                         passes.bwd_weight, passes.backward) + (None,)


class NativeCall(NamedTuple):
    """PyTorch's own depthwise call, stride 1, with one signature's checked sizes."""

    conv: Callable  # F.conv2d or F.conv3d
    padding: tuple
    dilation: tuple
    groups: int

    def __call__(self, x, weight, bias):
        return self.conv(x, weight, bias, 1, self.padding, self.dilation, self.groups)


class Ready(NamedTuple):
    call: Callable  # (x, weight, bias) -> y
    native: Optional[NativeCall]  # the call, where it is PyTorch's own
    lasting: bool  # the plan is final (no measurement still to come), so the call may be kept


# --- autocast and layout ------------------------------------------------------------------------
# torch < 2.3 has no fast "any autocast on" query; then the per-device check runs every call.
any_autocast = getattr(torch._C, "_is_any_autocast_enabled", lambda: True)


def _autocast_dtype(device_type: str) -> Optional[torch.dtype]:
    if device_type in ("cuda", "cpu") and torch.is_autocast_enabled(device_type):
        return torch.get_autocast_dtype(device_type)
    return None


def autocast_args(x, weight, bias):
    """The arguments in the autocast dtype, as nn.Conv2d / nn.Conv3d would run them."""
    if not isinstance(x, torch.Tensor):
        return x, weight, bias
    cast_to = _autocast_dtype(x.device.type)
    if cast_to is not None and x.is_floating_point() and x.dtype != torch.float64:
        x = x.to(cast_to)
        weight = weight.to(cast_to) if isinstance(weight, torch.Tensor) else weight
        bias = bias.to(cast_to) if isinstance(bias, torch.Tensor) else bias
    return x, weight, bias


def is_dense(t: torch.Tensor) -> bool:
    """Whether ``t`` has the exact strides of its layout (PyTorch's own output then matches)."""
    return tuple(t.stride()) == dense_strides(t.shape, memory_format_of(t))


def native_allowed(x: torch.Tensor) -> bool:
    """Whether PyTorch's own call may stand for this one: its output already has the caller's
    layout, and it is not float32 on CUDA (that must run with TF32 off)."""
    return is_dense(x) and not (x.is_cuda and x.dtype == torch.float32)


# --- the table ----------------------------------------------------------------------------------
_CALLS: Dict[tuple, Ready] = {}
_MAX_CALLS = 4096  # every new shape adds one
# How many times planner.reset() ran: a module's kept call (drop_in.py) from before is stale.
RESETS = [0]


def _forget() -> None:
    _CALLS.clear()
    RESETS[0] += 1


planner.on_reset(_forget)


_SCALAR_KEYS = (int, str)


def _ints_key(value):
    """A tuple or list of exact ints as a key part; anything else (a bool, which equals 1 for a
    dict, must reach the checks) makes the call unkeyed (None)."""
    if type(value) is tuple or type(value) is list:
        for item in value:
            if type(item) is not int:
                return None
        return tuple(value)
    return None


def plain_tensors(x, weight, bias) -> bool:
    """Whether the call's tensors are plain eager tensors (not fake tensors, DTensor or FX proxies)."""
    return all(type(t) in _PLAIN_TENSOR_TYPES for t in ((x, weight) if bias is None else (x, weight, bias)))


def call_key(prepare: Callable, x, weight, bias, padding, dilation, backend) -> Optional[tuple]:
    """The signature of a call to ``prepare``'s rank, or None where it cannot be keyed (the checks
    then say why)."""
    # strings and ints, the common arguments, are their own key parts
    padding_part = padding if type(padding) in _SCALAR_KEYS else _ints_key(padding)
    dilation_part = dilation if type(dilation) in _SCALAR_KEYS else _ints_key(dilation)
    if padding_part is None or dilation_part is None or type(backend) is not str:
        return None
    try:
        return (prepare, backend, padding_part, dilation_part, type(x), type(weight), type(bias), x.dtype, x.device,
                x.shape, x.stride(), weight.shape, weight.dtype, weight.device,
                None if bias is None else (bias.shape, bias.dtype, bias.device),
                torch.is_grad_enabled() and (x.requires_grad or weight.requires_grad
                                             or (bias is not None and bias.requires_grad)),
                torch.are_deterministic_algorithms_enabled())
    except AttributeError:  # not tensors: the checks say
        return None


def ready_call(prepare: Callable[..., Ready], x, weight, bias, padding, dilation, backend: str) -> Ready:
    """The ready call for this signature, prepared by ``prepare`` (the rank's checks and plan) on
    its first use and kept where its plan is final."""
    key = call_key(prepare, x, weight, bias, padding, dilation, backend)
    ready = _CALLS.get(key) if key is not None else None
    if ready is None:
        ready = prepare(x, weight, bias, padding, dilation, backend)
        if key is not None and ready.lasting:
            if len(_CALLS) >= _MAX_CALLS:
                _CALLS.clear()
            _CALLS[key] = ready
    return ready


def plan_call(x, weight, bias, backend: str, problem, native: NativeCall,
              passes_for: Callable[[Implementation, Implementation, Implementation], Passes]) -> Ready:
    """The ready call of a checked signature on plain tensors: ``native`` (PyTorch's own call) where
    the plan is PyTorch's own convolution for every pass it runs, else the planned passes
    (``passes_for(fwd, bwd_input, bwd_weight)``). A training call's plan may time a whole step of
    each (planner.plan_training)."""
    tensors = (x, weight) if bias is None else (x, weight, bias)
    native_ok = native_allowed(x)
    if not (torch.is_grad_enabled() and any(t.requires_grad for t in tensors)):
        choice = planner.plan_pass(problem, "fwd", backend, batch=x.shape[0])
        fwd = choice.implementation
        if fwd.name == "torch" and native_ok:
            return Ready(native, native, choice.final)
        return Ready(passes_for(fwd, fwd, fwd).fwd, None, choice.final)

    def planned_step(passes: Passes) -> Callable:
        return lambda x, w, b: PlannedStep.apply(x, w, b, passes)

    def time_steps(choices) -> Dict[str, float]:
        measured = passes_for(*(choices[name].implementation for name in planner.PASSES))
        return measure.time_steps(problem, x.shape[0], native, planned_step(measured))

    choices = planner.plan_training(problem, backend, x.shape[0], time_steps if native_ok else None)
    lasting = all(choice.final for choice in choices.values())
    impls: Sequence[Implementation] = [choices[name].implementation for name in planner.PASSES]
    if all(impl.name == "torch" for impl in impls) and native_ok:
        return Ready(native, native, lasting)
    return Ready(planned_step(passes_for(*impls)), None, lasting)


def via_registered_op(op_call: Callable) -> Ready:
    """Tensor subclasses (fake tensors, DTensor) go through the registered op."""
    return Ready(op_call, None, True)

