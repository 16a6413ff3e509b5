"""``DropInConv``: the call that ``LargeKernelDWConv2d`` and ``LargeKernelDWConv3d`` share.

TorchScript compiles ``nn.ConvNd``'s own call, and tracers and exporters record it (_tracing.py).
An eager call takes the rank's ready call (ready_calls.py); where that is PyTorch's own conv, the
module also keeps it beside the few facts its plan depends on, so that a converted layer which
PyTorch runs fastest costs no more than the ``nn.ConvNd`` it replaced. A steady-state call reads
the input's sizes, strides, dtype and device and whether autograd records, compares them with the
kept ones, and calls ``F.conv2d`` / ``F.conv3d``, which checks the weight and bias against the
input and honours deterministic mode itself, as in ``nn.ConvNd``, so only what chose the plan is
compared. The weight and bias come from the parameter dict rather than through
``nn.Module.__getattr__`` as in ``nn.ConvNd``, which pays for the comparison. Converting the
module's parameters (``.to``, ``.half``) drops the kept call, so that the checks see the next one.
"""
from __future__ import annotations

from typing import Callable, Optional

import torch
from torch import nn

from ._eligibility import ineligibility
from ._tracing import _PLAIN_TENSOR_TYPES, records_standard_conv
from .ready_calls import RESETS, Ready, any_autocast, ready_call

_is_compiling = torch.compiler.is_compiling
_grad_enabled = torch.is_grad_enabled
# jit.trace's state: asked only once dynamo is known not to be tracing (it cannot trace this call)
_jit_tracing_state = torch._C._get_tracing_state


class DropInConv:
    """Mixed into a depthwise ``nn.Conv2d`` / ``nn.Conv3d`` subclass, which sets the three class
    attributes below and ``self.backend``."""

    plain_type: type  # nn.Conv2d or nn.Conv3d
    _run_eager: Callable  # the rank's eager call: (x, weight, bias, padding, dilation, backend) -> y
    _prepare_call: Callable[..., Ready]  # the rank's checks and plan (ready_calls.ready_call)
    _kept_call = None  # (signature, F.convNd, padding, dilation, groups): see the module docstring
    __jit_ignored_attributes__ = ["_kept_call"]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if torch.jit.is_scripting():
            # TorchScript compiles nn.ConvNd's own call; the fast path below is never compiled.
            return self._conv_forward(x, self.weight, self.bias)
        return self._replk_forward(x)

    @torch.jit.unused
    def _replk_forward(self, x: torch.Tensor) -> torch.Tensor:
        if (type(x) not in _PLAIN_TENSOR_TYPES or _is_compiling() or any_autocast()
                or _jit_tracing_state() is not None):
            weight, bias = self.weight, self.bias
            if records_standard_conv(x):
                # jit.trace, FX and ONNX export record nn.ConvNd's call, with this module's sizes
                return self._conv_forward(x, weight, bias)
            return self._run_eager(x, weight, bias, self.padding, self.dilation, self.backend)
        params = self._parameters
        try:  # as attributes, through nn.Module.__getattr__, they cost about 1 us a call each
            weight, bias = params["weight"], params["bias"]
        except KeyError:  # a parametrization or weight_norm has moved them out of the parameter dict
            weight, bias = self.weight, self.bias
        # NCHW-contiguous is one cheap bool (F.convNd's output then has the input's layout, as a
        # native plan needs); other layouts compare their strides
        signature = (x.shape, x.is_contiguous() or x.stride(), x.dtype, x.device,
                     _grad_enabled() and (weight.requires_grad or x.requires_grad
                                          or (bias is not None and bias.requires_grad)),
                     self.padding, self.dilation, self.backend, RESETS[0])
        kept = self._kept_call
        if kept is not None and kept[0] == signature:
            return kept[1](x, weight, bias, 1, kept[2], kept[3], kept[4])  # NativeCall, without its frame
        ready = ready_call(self._prepare_call, x, weight, bias, self.padding, self.dilation, self.backend)
        if ready.native is not None and ready.lasting:
            self._kept_call = (signature,) + tuple(ready.native)
        return ready.call(x, weight, bias)

    def _apply(self, *args, **kwargs):
        self.__dict__.pop("_kept_call", None)
        return super()._apply(*args, **kwargs)

    def __getstate__(self):
        state = super().__getstate__()
        state.pop("_kept_call", None)  # a closure: pickles and copies plan again
        return state

    def extra_repr(self) -> str:
        return super().extra_repr() + f", backend={self.backend!r}"

    @classmethod
    def ineligibility(cls, conv: nn.Module) -> Optional[str]:
        """Why ``conv`` cannot be replaced by this class, or None if it can."""
        return ineligibility(conv, cls.plain_type)
