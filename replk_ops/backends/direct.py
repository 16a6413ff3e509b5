"""The direct backend: PyTorch's own convolutions, arranged to take PyTorch's fast paths.

It runs on any device and is the CPU implementation of the ops. On CPU, PyTorch sends an NCHW
depthwise conv with a large kernel through a naive loop (a few GFLOP/s), while the same conv on a
channels_last tensor reaches oneDNN. So on CPU every pass is written as a forward convolution on
channels_last data:

- forward: the conv itself;
- input gradient: the forward with the kernel rotated 180 degrees;
- weight gradient: a depthwise conv over N*C planes of the padded input with the output gradient
  as the (large) kernel, summed over the batch.

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

from .base import Backend, NoTF32

CL = torch.channels_last


def _compute_dtype(dtype: torch.dtype) -> torch.dtype:
    return torch.float32 if dtype in (torch.float16, torch.bfloat16) else dtype


def _in_compute_dtype(t: Optional[torch.Tensor]) -> Optional[torch.Tensor]:
    if t is None or t.dtype in (torch.float32, torch.float64):
        return t
    return t.to(torch.float32)


def _prepared(t: torch.Tensor) -> torch.Tensor:
    return _in_compute_dtype(t).contiguous(memory_format=CL)


def _conv_input(t: torch.Tensor) -> torch.Tensor:
    # On CUDA the caller's layout is kept; on CPU channels_last reaches oneDNN at any kernel size.
    if t.is_cuda:
        return _in_compute_dtype(t)
    return _prepared(t)


class DirectBackend(Backend):
    def fwd(self, x, weight, bias, ph, pw):
        with NoTF32(x.is_cuda):
            out = F.conv2d(
                _conv_input(x), _in_compute_dtype(weight),
                _in_compute_dtype(bias), padding=(ph, pw), groups=x.shape[1],
            )
        return out if out.dtype == x.dtype else out.to(x.dtype)

    def bwd_input(self, grad_out, weight, ph, pw):
        kh, kw = weight.shape[2], weight.shape[3]
        # dx is the correlation of dy with the rotated kernel and padding k - 1 - p; where that is
        # negative (padding wider than the kernel), crop dy instead of padding it.
        qh, qw = kh - 1 - ph, kw - 1 - pw
        dy = grad_out
        if qh < 0:
            dy = dy[:, :, -qh: dy.shape[2] + qh]
        if qw < 0:
            dy = dy[:, :, :, -qw: dy.shape[3] + qw]
        cdt = _compute_dtype(grad_out.dtype)
        with NoTF32(grad_out.is_cuda):
            dx = F.conv2d(_conv_input(dy), weight.to(cdt).flip(2, 3), padding=(max(qh, 0), max(qw, 0)),
                          groups=weight.shape[0])
        return dx.to(grad_out.dtype)

    def bwd_weight(self, grad_out, x, kh, kw, ph, pw):
        n, c = x.shape[0], x.shape[1]
        cdt = _compute_dtype(x.dtype)
        grad_bias = grad_out.sum(dim=(0, 2, 3), dtype=cdt)
        if n == 0:
            grad_weight = torch.zeros((c, 1, kh, kw), dtype=cdt, device=x.device)
        elif x.device.type == "cuda":
            with NoTF32(x.is_cuda):
                grad_weight = torch.ops.aten.convolution_backward(
                    _in_compute_dtype(grad_out), _in_compute_dtype(x),
                    torch.empty((c, 1, kh, kw), dtype=cdt, device=x.device),
                    None, [1, 1], [ph, pw], [1, 1], False, [0, 0], c, [False, True, False],
                )[1]
        else:
            grad_weight = self._bwd_weight_as_conv(grad_out, x, kh, kw, ph, pw, cdt)
        return grad_weight.to(x.dtype), grad_bias.to(x.dtype)

    @staticmethod
    def _bwd_weight_as_conv(grad_out, x, kh, kw, ph, pw, cdt):
        # dw[c, i, j] = sum_n sum_{h,w} dy[n, c, h, w] * x_pad[n, c, h + i, w + j]: for each (n, c)
        # plane, a "valid" correlation of the padded input with dy as the kernel. One depthwise conv
        # over the N*C planes computes all of them on oneDNN's fast path, then the batch is summed.
        n, c, ho, wo = grad_out.shape
        x_pad = F.pad(x.to(cdt), (pw, pw, ph, ph))
        planes = x_pad.reshape(1, n * c, x_pad.shape[2], x_pad.shape[3]).contiguous(memory_format=CL)
        kernels = grad_out.to(cdt).reshape(n * c, 1, ho, wo)
        per_plane = F.conv2d(planes, kernels, groups=n * c)
        return per_plane.reshape(n, c, kh, kw).sum(dim=0).unsqueeze(1)
