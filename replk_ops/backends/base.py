"""The interface every backend's runner implements, and what the runners share.

A ``PassRunner`` computes the three passes on tensors that have already been validated, in the
layout and dtype it was given (the ops restore the caller's layout). ``dilation`` is a (dh, dw)
pair; a runner whose kernels are undilated declares ``takes_dilation = False``, and its catalogue
entry wraps it in ``space_to_batch.SpaceToBatch`` (``implementation.Implementation``). Whether it
can run a problem at all is data in the catalogue (devices, dtypes, kernel sizes, ranks);
``unavailable_reason`` adds what only the running process knows (an extension that did not load, Triton missing).
"""
from __future__ import annotations

from typing import Optional, Tuple

import torch


def compute_dtype(dtype: torch.dtype) -> torch.dtype:
    """The dtype a pass computes in: float16 and bfloat16 in float32 (rounded once at the end)."""
    return torch.float32 if dtype in (torch.float16, torch.bfloat16) else dtype


def in_compute_dtype(t: Optional[torch.Tensor]) -> Optional[torch.Tensor]:
    """``t`` in its compute dtype (None stays None)."""
    if t is None or t.dtype == compute_dtype(t.dtype):
        return t
    return t.to(compute_dtype(t.dtype))


def require_undilated(runner: "PassRunner", dilation) -> None:
    """ValueError where a runner without dilation is called dilated (not through space-to-batch)."""
    if tuple(dilation) != (1, 1):
        raise ValueError(f"dilation: {type(runner).__name__} runs undilated kernels only (its catalogue entry "
                         f"wraps it in space-to-batch), expected (1, 1), got {tuple(dilation)}")


class PassRunner:
    """The three passes of one backend (or of one of its kernels, a CUDA algo)."""

    # False: the kernels are undilated, and the catalogue runs dilated calls through space-to-batch
    takes_dilation = True

    def unavailable_reason(self, problem) -> Optional[str]:
        """None if this backend can run ``problem`` (a ``problem.Problem``) here, else why not."""
        return None

    def fwd(self, x, weight, bias: Optional[torch.Tensor], ph: int, pw: int, dilation=(1, 1)) -> torch.Tensor:
        raise NotImplementedError

    def bwd_input(self, grad_out, weight, ph: int, pw: int, dilation=(1, 1)) -> torch.Tensor:
        raise NotImplementedError

    def bwd_weight(self, grad_out, x, kh: int, kw: int, ph: int, pw: int,
                   dilation=(1, 1)) -> Tuple[torch.Tensor, torch.Tensor]:
        """Returns (grad_weight of shape (C, 1, kh, kw), grad_bias of shape (C,))."""
        raise NotImplementedError

    def backward(self, grad_out, x, weight, ph: int, pw: int, dilation=(1, 1)):
        """(grad_input, grad_weight, grad_bias) at once, for a backend whose two gradients share
        work (the fft backend transforms grad_out once); by default the two passes."""
        grad_weight, grad_bias = self.bwd_weight(grad_out, x, weight.shape[2], weight.shape[3], ph, pw, dilation)
        return self.bwd_input(grad_out, weight, ph, pw, dilation), grad_weight, grad_bias


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
