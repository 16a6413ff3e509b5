"""PyTorch's own convolution, in the caller's layout and dtype: exactly what ``nn.Conv2d`` runs.

It is a candidate for every pass on every device, so a plan can always be at least as fast as the
``nn.Conv2d`` it replaces (on CPU oneDNN is the fastest for small kernels, narrow ones like 51x5
and small maps; on CUDA PyTorch's depthwise kernel wins some small maps at batch 1). float32 on
CUDA runs with TF32 off, so it stays float32-accurate.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from ..._checks import input_size
from ..._layout import memory_format_of
from ..base import NoTF32, PassRunner

_convolution_backward = torch.ops.aten.convolution_backward.default


def _no_tf32(t: torch.Tensor) -> NoTF32:
    return NoTF32(t.is_cuda and t.dtype == torch.float32)


class TorchNativeRunner(PassRunner):
    def fwd(self, x, weight, bias, ph, pw, dilation=(1, 1)):
        with _no_tf32(x):
            return F.conv2d(x, weight, bias, 1, (ph, pw), dilation, x.shape[1])

    def bwd_input(self, grad_out, weight, ph, pw, dilation=(1, 1)):
        n, c, ho, wo = grad_out.shape
        kh, kw = weight.shape[2], weight.shape[3]
        # only the input's shape and layout matter to the input gradient
        like_x = torch.empty((n, c) + input_size(ho, wo, kh, kw, ph, pw, dilation), dtype=grad_out.dtype,
                             device=grad_out.device, memory_format=memory_format_of(grad_out))
        with _no_tf32(grad_out):
            return _convolution_backward(grad_out, like_x, weight, None, [1, 1], [ph, pw], list(dilation), False,
                                         [0, 0], c, [True, False, False])[0]

    def bwd_weight(self, grad_out, x, kh, kw, ph, pw, dilation=(1, 1)):
        c = x.shape[1]
        like_weight = x.new_empty((c, 1, kh, kw))
        with _no_tf32(x):
            _, grad_weight, grad_bias = _convolution_backward(
                grad_out, x, like_weight, [c], [1, 1], [ph, pw], list(dilation), False, [0, 0], c,
                [False, True, True])
        return grad_weight, grad_bias
