"""The direct backend: PyTorch's own convolutions, arranged to take PyTorch's fast paths.

It runs on any device and is the CPU implementation of the ops. On CPU, PyTorch sends an NCHW
depthwise conv with a large kernel through a naive loop (a few GFLOP/s), while the same conv on a
channels_last tensor reaches oneDNN. So on CPU every pass is written as a forward convolution on
channels_last data:

- forward: the conv itself;
- input gradient: the forward with the kernel rotated 180 degrees;
- weight gradient: a depthwise conv over N*C planes of the padded input with the output gradient
  as the (large) kernel, summed over the batch.

Dilated kernels take the same routes, in the caller's layout (oneDNN's dilated depthwise kernels
are fast in NCHW too, and a layout copy each way cost more than they saved): the forward and input
gradient are dilated forward convs, the weight gradient a conv with stride = dilation over NCHW
planes (docs/design.md, "Dilation"). Where oneDNN leaves its fast path for the padding, it is
applied by ``F.pad`` beforehand (1x64x56x56 7x7 dilation 3, padding 9: 5.1 ms against 0.8 ms).

On CUDA it runs PyTorch's convolutions in the caller's layout (measured on an H200, PyTorch's
native NCHW depthwise kernel is 5 to 10 times faster than cuDNN's channels_last path at these
kernel sizes), with TF32 off so float32 stays float32-accurate. Where PyTorch's own path in the
caller's layout is faster (small kernels, narrow kernels, small maps), the planner picks the
``torch`` backend instead; see docs/design.md, "Planner".

Half-precision inputs are computed in float32 and rounded once at the end, so the only error
beyond float32 is the final rounding.
"""
from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F

from ..._checks import span
from ..base import NoTF32, PassRunner, compute_dtype, in_compute_dtype

CL = torch.channels_last
# oneDNN's dilated depthwise conv keeps its fast path with its own padding only up to a width its
# CPU kernel's register blocking covers, which depends on the instruction set. Measured on
# 1x80x28x28, one thread, every kernel 3 to 7 and dilation 2 to 6: with AVX-512 it is as fast as on a
# padded copy up to padding 6, with AVX2 up to 4, and 2 to 12 times slower beyond. Elsewhere
# (unmeasured) the padding is always applied first: that costs at most a copy of the input.
_ONEDNN_MAX_PAD_BY_CAPABILITY = {"AVX512": 6, "AVX2": 4}


def _cpu_capability() -> str:
    get = getattr(getattr(torch.backends, "cpu", None), "get_cpu_capability", None)
    return get() if get is not None else "DEFAULT"


ONEDNN_DILATED_MAX_PAD = _ONEDNN_MAX_PAD_BY_CAPABILITY.get(_cpu_capability(), 0)
# The weight gradient's strided conv keeps its own padding fast up to stride 3 (both instruction sets).
ONEDNN_STRIDED_MAX_STRIDE = 3


def _prepared(t: torch.Tensor) -> torch.Tensor:
    return in_compute_dtype(t).contiguous(memory_format=CL)


def _conv_input(t: torch.Tensor) -> torch.Tensor:
    # On CUDA the caller's layout is kept; on CPU channels_last reaches oneDNN at any kernel size.
    if t.is_cuda:
        return in_compute_dtype(t)
    return _prepared(t)


def _dilated_conv(t, weight, bias, ph, pw, dilation):
    """``F.conv2d`` of ``t`` (already in the compute dtype) with ``dilation``; on CPU a dilated conv
    runs in the caller's layout with its padding applied beforehand (module doc)."""
    if t.is_cuda or dilation == (1, 1):
        with NoTF32(t.is_cuda):
            return F.conv2d(_conv_input(t), weight, bias, 1, (ph, pw), dilation, t.shape[1])
    if max(ph, pw) > ONEDNN_DILATED_MAX_PAD:
        t, ph, pw = F.pad(t, (pw, pw, ph, ph)), 0, 0
    return F.conv2d(t, weight, bias, 1, (ph, pw), dilation, t.shape[1])


def input_grad_as_forward(grad_out, kh, kw, ph, pw, dilation):
    """(dy, qh, qw): the input gradient is the forward conv of dy with the kernel rotated 180 degrees
    and padding (qh, qw) = span - 1 - p; where that is negative (padding wider than the kernel's
    span), dy is cropped instead of padded."""
    qh, qw = span(kh, dilation[0]) - 1 - ph, span(kw, dilation[1]) - 1 - pw
    dy = grad_out
    if qh < 0:
        dy = dy[:, :, -qh: dy.shape[2] + qh]
    if qw < 0:
        dy = dy[:, :, :, -qw: dy.shape[3] + qw]
    return dy, max(qh, 0), max(qw, 0)


class ForwardConvRunner(PassRunner):
    """The ``direct`` backend (not the CUDA extension's CUDA-core algos, also called direct)."""

    def fwd(self, x, weight, bias, ph, pw, dilation=(1, 1)):
        out = _dilated_conv(in_compute_dtype(x), in_compute_dtype(weight), in_compute_dtype(bias), ph, pw,
                            tuple(dilation))
        return out if out.dtype == x.dtype else out.to(x.dtype)

    def bwd_input(self, grad_out, weight, ph, pw, dilation=(1, 1)):
        dy, qh, qw = input_grad_as_forward(grad_out, weight.shape[2], weight.shape[3], ph, pw, dilation)
        cdt = compute_dtype(grad_out.dtype)
        dx = _dilated_conv(in_compute_dtype(dy), weight.to(cdt).flip(2, 3), None, qh, qw, tuple(dilation))
        return dx.to(grad_out.dtype)

    def bwd_weight(self, grad_out, x, kh, kw, ph, pw, dilation=(1, 1)):
        n, c = x.shape[0], x.shape[1]
        cdt = compute_dtype(x.dtype)
        grad_bias = grad_out.sum(dim=(0, 2, 3), dtype=cdt)
        if n == 0:
            grad_weight = torch.zeros((c, 1, kh, kw), dtype=cdt, device=x.device)
        elif x.device.type == "cuda":
            with NoTF32(x.is_cuda):
                grad_weight = torch.ops.aten.convolution_backward(
                    in_compute_dtype(grad_out), in_compute_dtype(x),
                    torch.empty((c, 1, kh, kw), dtype=cdt, device=x.device),
                    None, [1, 1], [ph, pw], list(dilation), False, [0, 0], c, [False, True, False],
                )[1]
        else:
            grad_weight = self._bwd_weight_as_conv(grad_out, x, kh, kw, ph, pw, cdt, tuple(dilation))
        return grad_weight.to(x.dtype), grad_bias.to(x.dtype)

    @staticmethod
    def _bwd_weight_as_conv(grad_out, x, kh, kw, ph, pw, cdt, dilation):
        # dw[c, i, j] = sum_n sum_{h,w} dy[n, c, h, w] * x_pad[n, c, h + i*dh, w + j*dw]: for each
        # (n, c) plane, a "valid" correlation of the padded input with dy as the kernel, strided by
        # the dilation. One depthwise conv over the N*C planes computes all of them on oneDNN's fast
        # path, then the batch is summed.
        n, c, ho, wo = grad_out.shape
        kernels = grad_out.to(cdt).reshape(n * c, 1, ho, wo)
        own_padding_fast = max(dilation) <= ONEDNN_STRIDED_MAX_STRIDE and max(ph, pw) <= ONEDNN_DILATED_MAX_PAD
        if dilation != (1, 1) and own_padding_fast:
            # NCHW planes with the conv's own padding: measured 2x faster than a padded channels_last copy
            planes = x.to(cdt).reshape(1, n * c, x.shape[2], x.shape[3])
            per_plane = F.conv2d(planes, kernels, stride=dilation, padding=(ph, pw), groups=n * c)
            return per_plane.reshape(n, c, kh, kw).sum(dim=0).unsqueeze(1)
        x_pad = F.pad(x.to(cdt), (pw, pw, ph, ph))
        planes = x_pad.reshape(1, n * c, x_pad.shape[2], x_pad.shape[3])
        if dilation == (1, 1):  # dilated: NCHW planes, measured 2x faster (1x80x28x28, 7x7 dilation 2)
            planes = planes.contiguous(memory_format=CL)
        per_plane = F.conv2d(planes, kernels, stride=dilation, groups=n * c)
        return per_plane.reshape(n, c, kh, kw).sum(dim=0).unsqueeze(1)
