"""PyTorch's own 3-D convolution, in the caller's layout and dtype: exactly what ``nn.Conv3d``
runs (its CPU backward is the slow path the other 3-D routes replace; it stays a candidate so
that a plan is never slower than ``nn.Conv3d``)."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from ..._checks import input_sizes
from ..._layout import memory_format_of
from ..base3d import PassRunner3d
from .runner import _convolution_backward, _no_tf32


class TorchNative3d(PassRunner3d):
    def fwd(self, x, weight, bias, padding, dilation=(1, 1, 1)):
        with _no_tf32(x):
            return F.conv3d(x, weight, bias, 1, tuple(padding), tuple(dilation), x.shape[1])

    def bwd_input(self, grad_out, weight, padding, dilation=(1, 1, 1)):
        n, c = grad_out.shape[0], grad_out.shape[1]
        size = input_sizes(grad_out.shape[2:], weight.shape[2:], padding, dilation)
        # only the input's shape and layout matter to the input gradient
        like_x = torch.empty((n, c) + size, dtype=grad_out.dtype, device=grad_out.device,
                             memory_format=memory_format_of(grad_out))
        with _no_tf32(grad_out):
            return _convolution_backward(grad_out, like_x, weight, None, [1, 1, 1], list(padding), list(dilation),
                                         False, [0, 0, 0], c, [True, False, False])[0]

    def bwd_weight(self, grad_out, x, kernel, padding, dilation=(1, 1, 1)):
        c = x.shape[1]
        like_weight = x.new_empty((c, 1) + tuple(kernel))
        with _no_tf32(x):
            _, grad_weight, grad_bias = _convolution_backward(
                grad_out, x, like_weight, [c], [1, 1, 1], list(padding), list(dilation), False, [0, 0, 0], c,
                [False, True, True])
        return grad_weight, grad_bias
