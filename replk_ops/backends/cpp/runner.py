"""The compiled CPU kernels (``replk_ops._cpu``, csrc/cpu): every pass as plain C++ loops over
zero-padded planes (NCHW) or images (channels_last, vectors along the channels), any dilation.

At the small maps where dilated depthwise convs live (UniRepLKNet's branches, 14x14 to 56x56),
oneDNN spends most of a call outside its multiply-adds and leaves its fast path once the padding
passes a width set by the instruction set (``direct.ONEDNN_DILATED_MAX_PAD``); these loops pad each
plane once into a buffer and run every tap as one contiguous loop (docs/design.md, "Dilation").
They need no CUDA toolkit, only a C++ compiler at install time; where they were not built, the
package runs the other backends and ``explain`` says why.

float16 and bfloat16 are computed in float32 and rounded once at the end, like ``direct``.
"""
from __future__ import annotations

from typing import Optional

import torch

from ..._checks import output_size
from ..base import PassRunner, compute_dtype
from ..direct import input_grad_as_forward
from . import loader
from .loader import _MODULE

_EMPTY = torch.empty(0)
CL = torch.channels_last


def _prepared(t: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    return (t if t.dtype == dtype else t.to(dtype)).contiguous()


def _as(t: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    return t if t.dtype == dtype else t.to(dtype)


def _channels_last(t: torch.Tensor) -> bool:
    """Whether ``t`` is laid out channels_last (and not also NCHW, as a one-channel tensor is)."""
    return t.is_contiguous(memory_format=CL) and not t.is_contiguous()


def _taps(weight: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """(C, 1, kh, kw) -> tap-major (kh * kw, C), for the channels_last kernels."""
    return _as(weight, dtype).reshape(weight.shape[0], -1).t().contiguous()


def _forward(x, weight, bias, ph, pw, dilation) -> torch.Tensor:
    """The conv in the compute dtype, in x's layout where that is channels_last, else NCHW."""
    cdt = compute_dtype(x.dtype)
    n, c, h, w = x.shape
    kh, kw = weight.shape[2], weight.shape[3]
    nhwc = _channels_last(x)
    out = torch.empty((n, c) + output_size(h, w, kh, kw, ph, pw, dilation), dtype=cdt,
                      memory_format=CL if nhwc else torch.contiguous_format)
    if not out.numel():
        return out
    b = _EMPTY if bias is None else _prepared(bias, cdt)
    if nhwc:
        _MODULE.forward_nhwc(_as(x, cdt), _taps(weight, cdt), b, out, kh, kw, ph, pw, dilation[0], dilation[1])
    else:
        _MODULE.forward(_prepared(x, cdt), _prepared(weight, cdt), b, out, ph, pw, dilation[0], dilation[1])
    return out


class CppRunner(PassRunner):
    def unavailable_reason(self, problem) -> Optional[str]:
        return loader.UNAVAILABLE  # read at call time: tests stand in a missing build

    def fwd(self, x, weight, bias, ph, pw, dilation=(1, 1)):
        return _as(_forward(x, weight, bias, ph, pw, tuple(dilation)), x.dtype)

    def bwd_input(self, grad_out, weight, ph, pw, dilation=(1, 1)):
        dy, qh, qw = input_grad_as_forward(grad_out, weight.shape[2], weight.shape[3], ph, pw, dilation)
        return _as(_forward(dy, weight.flip(2, 3), None, qh, qw, tuple(dilation)), grad_out.dtype)

    def bwd_weight(self, grad_out, x, kh, kw, ph, pw, dilation=(1, 1)):
        cdt = compute_dtype(x.dtype)
        c = x.shape[1]
        grad_bias = grad_out.sum(dim=(0, 2, 3), dtype=cdt)
        if not (grad_out.numel() and x.numel()):
            grad_weight = torch.zeros((c, 1, kh, kw), dtype=cdt)
        elif _channels_last(x) or _channels_last(grad_out):
            taps = torch.empty((kh * kw, c), dtype=cdt)
            _MODULE.weight_grad_nhwc(_as(grad_out, cdt).contiguous(memory_format=CL),
                                     _as(x, cdt).contiguous(memory_format=CL), taps, kh, kw, ph, pw, dilation[0],
                                     dilation[1])
            grad_weight = taps.t().reshape(c, 1, kh, kw)
        else:
            grad_weight = torch.empty((c, 1, kh, kw), dtype=cdt)
            _MODULE.weight_grad(_prepared(grad_out, cdt), _prepared(x, cdt), grad_weight, ph, pw, dilation[0],
                                dilation[1])
        return _as(grad_weight, x.dtype), _as(grad_bias, x.dtype)
