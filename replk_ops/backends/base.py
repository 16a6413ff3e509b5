"""The interface every backend implements.

A backend computes the three passes on tensors that have already been validated. It says
whether it can run a call (``unavailable_reason``) so that the dispatcher can explain its choice.
"""
from __future__ import annotations

from typing import Optional, Tuple

import torch


class Backend:
    name: str = ""
    auto_device_types = ("cpu", "cuda")  # where "auto" may pick this backend

    def unavailable_reason(self, x: torch.Tensor, weight: torch.Tensor) -> Optional[str]:
        """None if this backend can run a call on tensors like these, else why not."""
        raise NotImplementedError

    def fwd(self, x, weight, bias: Optional[torch.Tensor], ph: int, pw: int) -> torch.Tensor:
        raise NotImplementedError

    def bwd_input(self, grad_out, weight, ph: int, pw: int) -> torch.Tensor:
        raise NotImplementedError

    def bwd_weight(self, grad_out, x, kh: int, kw: int, ph: int, pw: int) -> Tuple[torch.Tensor, torch.Tensor]:
        """Returns (grad_weight of shape (C, 1, kh, kw), grad_bias of shape (C,))."""
        raise NotImplementedError
