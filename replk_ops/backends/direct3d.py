"""The direct backend's 3-D passes: every pass as a forward ``conv3d`` on PyTorch's fast paths.

PyTorch's own depthwise conv3d backward on CPU costs 10 to 60 times its forward (measured, one
thread: 1x32x32^3 with 21^3, 0.4 s forward and 32 s backward); written as forward convs, each
pass costs about one forward (docs/conv3d.md):

- forward: the conv itself, on CPU in channels_last_3d (oneDNN's depthwise kernel: 1x32x64^3
  with 3^3, 37 ms against 185 ms in NCDHW);
- input gradient: the forward with the kernel flipped along all three axes;
- weight gradient: a depthwise conv over the N*C volumes of the padded input with the output
  gradient as the (large) kernel, strided by the dilation, then summed over the batch.

On CUDA the forward and input gradient are the same forward convs through cuDNN in the caller's
layout, the weight gradient cuDNN's own (TF32 off throughout). Half precision is computed in
float32 and rounded once.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from .._checks import span
from .base import NoTF32
from .base3d import Backend3d
from .direct import _compute_dtype, _in_compute_dtype

CL3D = torch.channels_last_3d


def _conv3d(t, weight, bias, padding, dilation):
    """``F.conv3d`` of ``t`` (in the compute dtype), depthwise; on CPU through channels_last_3d."""
    if not t.is_cuda:
        t = t.contiguous(memory_format=CL3D)
    with NoTF32(t.is_cuda):
        return F.conv3d(t, weight, bias, 1, tuple(padding), tuple(dilation), t.shape[1])


def input_grad_as_forward3d(grad_out, kernel, padding, dilation):
    """(dy, q): the input gradient is the forward conv of dy with the flipped kernel and padding
    q = span - 1 - p per axis; where that is negative (padding wider than the span), dy is cropped."""
    q = [span(k, d) - 1 - p for k, p, d in zip(kernel, padding, dilation)]
    dy = grad_out
    for axis, qa in enumerate(q, start=2):
        if qa < 0:
            dy = dy.narrow(axis, -qa, dy.shape[axis] + 2 * qa)
    return dy, tuple(max(qa, 0) for qa in q)


class Direct3d(Backend3d):
    def fwd(self, x, weight, bias, padding, dilation=(1, 1, 1)):
        out = _conv3d(_in_compute_dtype(x), _in_compute_dtype(weight), _in_compute_dtype(bias), padding, dilation)
        return out.to(x.dtype)

    def bwd_input(self, grad_out, weight, padding, dilation=(1, 1, 1)):
        dy, q = input_grad_as_forward3d(grad_out, weight.shape[2:], padding, dilation)
        flipped = weight.to(_compute_dtype(weight.dtype)).flip(2, 3, 4)
        return _conv3d(_in_compute_dtype(dy), flipped, None, q, dilation).to(grad_out.dtype)

    def bwd_weight(self, grad_out, x, kernel, padding, dilation=(1, 1, 1)):
        n, c = x.shape[0], x.shape[1]
        cdt = _compute_dtype(x.dtype)
        grad_bias = grad_out.sum(dim=(0, 2, 3, 4), dtype=cdt)
        if n == 0:
            grad_weight = torch.zeros((c, 1) + tuple(kernel), dtype=cdt, device=x.device)
        elif x.is_cuda:
            with NoTF32():
                grad_weight = torch.ops.aten.convolution_backward(
                    _in_compute_dtype(grad_out), _in_compute_dtype(x),
                    torch.empty((c, 1) + tuple(kernel), dtype=cdt, device=x.device), None, [1, 1, 1],
                    list(padding), list(dilation), False, [0, 0, 0], c, [False, True, False])[1]
        else:
            grad_weight = self._bwd_weight_as_conv(grad_out, x, kernel, padding, cdt, dilation)
        return grad_weight.to(x.dtype), grad_bias.to(x.dtype)

    @staticmethod
    def _bwd_weight_as_conv(grad_out, x, kernel, padding, cdt, dilation):
        # dw[c, t] = sum_n sum_o dy[n, c, o] * x_pad[n, c, o + t * dilation]: for each (n, c) volume a
        # "valid" correlation of the padded input with dy as the kernel, strided by the dilation;
        # one depthwise conv over the N*C volumes computes them all (NCDHW volumes: as fast as
        # channels_last_3d here, without the copy), then the batch is summed.
        n, c = grad_out.shape[0], grad_out.shape[1]
        pd, ph, pw = padding
        x_pad = F.pad(x.to(cdt).contiguous(), (pw, pw, ph, ph, pd, pd))
        volumes = x_pad.reshape((1, n * c) + x_pad.shape[2:])
        kernels = grad_out.to(cdt).reshape((n * c, 1) + grad_out.shape[2:])
        per_volume = F.conv3d(volumes, kernels, stride=tuple(dilation), groups=n * c)
        return per_volume.reshape((n, c) + tuple(kernel)).sum(dim=0).unsqueeze(1)
