"""The compiled CPU kernels' 3-D passes for small kernels (csrc/cpu/dwconv3d_cpu.cpp): the forward
and the input gradient (the forward with the flipped kernel) on NCDHW tensors
(``replk_ops_cpu3d::forward``; channels_last_3d ones take direct's oneDNN convs, fast there), and
the weight gradient (``replk_ops_cpu3d::weight_grad``).

oneDNN's NCDHW depthwise kernel is slow for small kernels and its channels_last_3d one costs two
layout copies (1x32x64^3 3^3: 150 ms, or 33 ms plus 2 x 34 ms of copies).

oneDNN computes the weight gradient as a depthwise conv with the output gradient as a kernel as
large as the map; for a 3x3x3 kernel that runs at a fraction of its forward speed (1x32x64^3: 80 ms
against 33 ms for the forward), while the compiled loop takes 21 to 29 ms, with its sums in double.
"""
from __future__ import annotations

from typing import Optional

import torch

from . import loader
from ..base3d import PassRunner3d
from ..base import compute_dtype
from ..direct import Direct3d, input_grad_as_forward3d

_DIRECT = Direct3d()


class Cpp3d(PassRunner3d):
    def unavailable_reason(self, problem) -> Optional[str]:
        return loader.UNAVAILABLE

    def fwd(self, x, weight, bias, padding, dilation=(1, 1, 1)):
        if not x.is_contiguous() or x.numel() == 0:
            return _DIRECT.fwd(x, weight, bias, padding, dilation)
        cdt = compute_dtype(x.dtype)
        b = None if bias is None else bias.to(cdt)
        out = torch.ops.replk_ops_cpu3d.forward(x.to(cdt), weight.to(cdt).contiguous(), b, list(padding),
                                                list(dilation))
        return out.to(x.dtype)

    def bwd_input(self, grad_out, weight, padding, dilation=(1, 1, 1)):
        if not grad_out.is_contiguous() or grad_out.numel() == 0:
            return _DIRECT.bwd_input(grad_out, weight, padding, dilation)
        dy, q = input_grad_as_forward3d(grad_out, weight.shape[2:], padding, dilation)
        return self.fwd(dy.contiguous(), weight.flip(2, 3, 4), None, q, dilation)

    def bwd_weight(self, grad_out, x, kernel, padding, dilation=(1, 1, 1)):
        cdt = compute_dtype(x.dtype)
        sums = torch.ops.replk_ops_cpu3d.weight_grad(x.to(cdt), grad_out.to(cdt), list(kernel), list(padding),
                                                     list(dilation))
        grad_bias = grad_out.sum(dim=(0, 2, 3, 4), dtype=cdt)
        return sums.view((x.shape[1], 1) + tuple(kernel)).to(x.dtype), grad_bias.to(x.dtype)
