"""``dwconv2d`` and ``explain``: the eager fast path in front of the registered ops.

Eager calls on plain tensors skip the dispatcher: ``dwconv2d`` keeps, per call signature (dtypes,
devices, shapes, strides, padding, backend, whether autograd records), the checked arguments and
the planned implementations as one ready call, so a steady-state call is one dictionary lookup
and the work itself. Where the plan is PyTorch's own convolution for every pass, that call is
``F.conv2d`` with PyTorch's own backward: no slower than ``nn.Conv2d``. ``torch.compile`` and
tensor subclasses go through the registered ops (ops.py), which plan the same way.
"""
from typing import Callable, Dict, NamedTuple, Optional, Tuple, Union

import torch
import torch.nn.functional as F

from . import measure, planner
from .backends.implementation import Implementation
from ._checks import PaddingArg, check_conv_args, dilation_pair, padding_pair
from ._layout import dense_strides, memory_format_of
from ._tracing import _PLAIN_TENSOR_TYPES, records_standard_conv, standard_dwconv2d
from .catalog import check_backend_name
from .ops import dwconv2d_fwd, gradients_through_ops
from .passes import gradients, run_backward_on, run_bwd_input_on, run_bwd_weight_on, run_fwd_on
from .problem import Problem


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
    def forward(ctx, x, weight, bias, ph, pw, dilation, passes: _PassPlan):
        ctx.save_for_backward(x, weight)
        ctx.padding, ctx.dilation, ctx.passes, ctx.has_bias = (ph, pw), dilation, passes, bias is not None
        return run_fwd_on(passes.fwd, x, weight, bias, ph, pw, dilation)

    @staticmethod
    def backward(ctx, grad_out):
        x, weight = ctx.saved_tensors
        (ph, pw), dilation, passes = ctx.padding, ctx.dilation, ctx.passes
        if torch.is_grad_enabled():  # create_graph=True: differentiate through the registered ops
            return gradients_through_ops(grad_out, x, weight, ctx.needs_input_grad, ctx.has_bias, (ph, pw), dilation,
                                         passes.backend) + (None,) * 4
        shared = passes.bwd_input is passes.bwd_weight  # one implementation may share work between both
        grads = gradients(
            grad_out, x, weight, ctx.needs_input_grad, ctx.has_bias,
            lambda dy, weight: run_bwd_input_on(passes.bwd_input, dy, weight, ph, pw, dilation),
            lambda dy, x, weight: run_bwd_weight_on(passes.bwd_weight, dy, x, weight.shape[2], weight.shape[3],
                                                    ph, pw, dilation),
            (lambda dy, x, weight: run_backward_on(passes.bwd_input, dy, x, weight, ph, pw, dilation)) if shared
            else None)
        return grads + (None,) * 4


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
    if _any_autocast():
        x, weight, bias = _autocast(x, weight, bias)
    if torch.compiler.is_compiling():
        return _through_registered_op(x, weight, bias, padding, dilation, backend)
    try:
        # only exact ints make a key (True == 1 for a dict; a bool dilation must reach the checks):
        # anything else, [], is unhashable and takes the checked path
        plain = type(dilation) is int or (type(dilation) is tuple and len(dilation) == 2
                                          and type(dilation[0]) is int and type(dilation[1]) is int)
        key = (backend, padding, dilation if plain else [], type(x), type(weight), type(bias), x.dtype, x.device,
               x.shape, x.stride(), weight.shape, weight.dtype, weight.device,
               None if bias is None else (bias.shape, bias.dtype, bias.device),
               torch.is_grad_enabled() and (x.requires_grad or weight.requires_grad
                                            or (bias is not None and bias.requires_grad)),
               torch.are_deterministic_algorithms_enabled())
        call = _CALLS.get(key)
    except (AttributeError, TypeError):  # not tensors, or an unhashable padding: the checks say
        key = call = None
    if call is None:
        call, lasting = _prepare_call(x, weight, bias, padding, dilation, backend)
        if key is not None and lasting:
            if len(_CALLS) >= _MAX_CALLS:
                _CALLS.clear()
            _CALLS[key] = call
    return call(x, weight, bias)


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


def _is_dense(t: torch.Tensor) -> bool:
    """Whether ``t`` has the exact strides of its layout (PyTorch's own output then matches)."""
    return tuple(t.stride()) == dense_strides(t.shape, memory_format_of(t))


def _prepare_call(x, weight, bias, padding, dilation, backend) -> Tuple[Callable, bool]:
    """The ready call for this signature (checks done, passes planned), and whether it may be kept."""
    (ph, pw), dil = _checked_args(x, weight, bias, padding, dilation, backend)
    tensors = (x, weight) if bias is None else (x, weight, bias)
    if not all(type(t) in _PLAIN_TENSOR_TYPES for t in tensors):
        # tensor subclasses (fake tensors, DTensor) go through the registered op
        return (lambda x, w, b: dwconv2d_fwd(x, w, b, ph, pw, backend, *dil)), True
    kh, kw, channels = weight.shape[2], weight.shape[3], x.shape[1]
    problem = Problem.of(x, kh, kw, ph, pw, dilation=dil)
    # exactly nn.Conv2d's call, where its output already has the caller's layout (float32 on CUDA
    # excepted: it must run with TF32 off)
    native_ok = _is_dense(x) and not (x.is_cuda and x.dtype == torch.float32)

    def native(x, w, b):
        return F.conv2d(x, w, b, 1, (ph, pw), dil, channels)

    if not (torch.is_grad_enabled() and any(t.requires_grad for t in tensors)):
        choice = planner.plan_pass(problem, "fwd", backend, batch=x.shape[0])
        fwd = choice.implementation
        if fwd.name == "torch" and native_ok:
            return native, choice.final

        return (lambda x, w, b: run_fwd_on(fwd, x, w, b, ph, pw, dil)), choice.final

    def planned_step(passes):
        return lambda x, w, b: _EagerDWConv2d.apply(x, w, b, ph, pw, dil, passes)

    def time_steps(choices):
        measured = _PassPlan(*(choices[name].implementation for name in planner.PASSES), backend)
        return measure.time_steps(problem, x.shape[0], native, planned_step(measured))

    choices = planner.plan_training(problem, backend, x.shape[0], time_steps if native_ok else None)
    lasting = all(choice.final for choice in choices.values())
    impls = [choices[name].implementation for name in planner.PASSES]
    if all(impl.name == "torch" for impl in impls) and native_ok:
        return native, lasting
    return planned_step(_PassPlan(*impls, backend)), lasting


def explain(x: torch.Tensor, weight: torch.Tensor, padding: PaddingArg = "same", backend: str = "auto",
            *, bias: Optional[torch.Tensor] = None, dilation: Union[int, Tuple[int, int]] = 1) -> planner.Plan:
    """Which implementation runs each pass of ``dwconv2d(x, weight, padding=padding,
    dilation=dilation, backend=backend)`` here and now (autocast, deterministic mode and compile tracing included),
    how it was chosen, and why every other one was rejected. Printing the result gives a readable
    report. It never measures: before the first call of a kind it says what that call will time."""
    if isinstance(x, torch.Tensor) and x.dim() == 5:  # a 3-D call: (N, C, D, H, W)
        from .eager3d import explain3d  # eager3d builds on this module
        return explain3d(x, weight, padding, backend, bias=bias, dilation=dilation)
    if _any_autocast():
        x, weight, bias = _autocast(x, weight, bias)
    (ph, pw), dil = _checked_args(x, weight, bias, padding, dilation, backend)
    problem = Problem.of(x, weight.shape[2], weight.shape[3], ph, pw, dilation=dil)
    return planner.plan(problem, backend, may_measure=False)


__all__ = ["dwconv2d", "explain", "run_eager"]
