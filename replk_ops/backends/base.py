"""The interface every backend implements.

A backend computes the three passes on tensors that have already been validated, in the layout
and dtype it was given (the ops restore the caller's layout). Whether it can run a problem at all
is data in the catalogue (devices, dtypes, kernel sizes); ``unavailable_reason`` adds what only
the running process knows (an extension that did not load, Triton missing).
"""
from __future__ import annotations

from typing import Optional, Tuple

import torch


class Backend:
    def unavailable_reason(self, problem) -> Optional[str]:
        """None if this backend can run ``problem`` (a ``planner.Problem``) here, else why not."""
        return None

    def fwd(self, x, weight, bias: Optional[torch.Tensor], ph: int, pw: int) -> torch.Tensor:
        raise NotImplementedError

    def bwd_input(self, grad_out, weight, ph: int, pw: int) -> torch.Tensor:
        raise NotImplementedError

    def bwd_weight(self, grad_out, x, kh: int, kw: int, ph: int, pw: int) -> Tuple[torch.Tensor, torch.Tensor]:
        """Returns (grad_weight of shape (C, 1, kh, kw), grad_bias of shape (C,))."""
        raise NotImplementedError

    def backward(self, grad_out, x, weight, ph: int, pw: int):
        """(grad_input, grad_weight, grad_bias) at once, for a backend whose two gradients share
        work (the fft backend transforms grad_out once); by default the two passes."""
        grad_weight, grad_bias = self.bwd_weight(grad_out, x, weight.shape[2], weight.shape[3], ph, pw)
        return self.bwd_input(grad_out, weight, ph, pw), grad_weight, grad_bias


class NoTF32:
    """cuDNN convolutions in true fp32 (PyTorch allows TF32 for them by default) while active;
    ``active=False`` makes it free where no cuDNN runs."""

    def __init__(self, active: bool = True):
        self.active = active

    def __enter__(self):
        if self.active:
            self.saved = torch.backends.cudnn.allow_tf32
            torch.backends.cudnn.allow_tf32 = False

    def __exit__(self, *exc):
        if self.active:
            torch.backends.cudnn.allow_tf32 = self.saved
