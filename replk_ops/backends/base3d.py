"""The interface of a backend's 3-D passes: ``base.PassRunner``'s, with padding and dilation as
(d, h, w) triples and the kernel size as a triple."""
from __future__ import annotations

from typing import Optional, Tuple

import torch

from .base import PassRunner


class PassRunner3d(PassRunner):
    def fwd(self, x, weight, bias: Optional[torch.Tensor], padding, dilation=(1, 1, 1)) -> torch.Tensor:
        raise NotImplementedError

    def bwd_input(self, grad_out, weight, padding, dilation=(1, 1, 1)) -> torch.Tensor:
        raise NotImplementedError

    def bwd_weight(self, grad_out, x, kernel, padding, dilation=(1, 1, 1)) -> Tuple[torch.Tensor, torch.Tensor]:
        """Returns (grad_weight of shape (C, 1, kd, kh, kw), grad_bias of shape (C,))."""
        raise NotImplementedError

    def backward(self, grad_out, x, weight, padding, dilation=(1, 1, 1)):
        """(grad_input, grad_weight, grad_bias) at once; by default the two passes."""
        grad_weight, grad_bias = self.bwd_weight(grad_out, x, tuple(weight.shape[2:]), padding, dilation)
        return self.bwd_input(grad_out, weight, padding, dilation), grad_weight, grad_bias
