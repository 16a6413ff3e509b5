"""The compiled CUDA C++ backend (``replk_ops._C``), reached through its registered ops."""
from __future__ import annotations

import torch

from .. import _extension
from .base import Backend

CUDA_DTYPES = (torch.float32, torch.float16, torch.bfloat16)
MAX_KERNEL = 63


class CudaExtensionBackend(Backend):
    name = "cuda"

    def unavailable_reason(self, x, weight):
        status = _extension.STATUS
        if not status.loaded:
            return status.reason
        if x.device.type != "cuda":
            return f"runs on CUDA tensors only, got a tensor on {x.device}"
        if x.dtype not in CUDA_DTYPES:
            return f"supports {', '.join(map(str, CUDA_DTYPES))}, got {x.dtype}"
        if not hasattr(torch.ops.replk_ops_C, "fwd"):
            return "replk_ops._C has no kernels in this build"
        kh, kw = weight.shape[2], weight.shape[3]
        if max(kh, kw) > MAX_KERNEL:
            return f"supports kernels up to {MAX_KERNEL}x{MAX_KERNEL}, got {kh}x{kw}"
        return None

    def fwd(self, x, weight, bias, ph, pw):
        return torch.ops.replk_ops_C.fwd(x, weight, bias, ph, pw)

    def bwd_input(self, grad_out, weight, ph, pw):
        return torch.ops.replk_ops_C.bwd_input(grad_out, weight, ph, pw)

    def bwd_weight(self, grad_out, x, kh, kw, ph, pw):
        # always deterministic (fixed-order partial sums); the flag is part of the op's schema
        deterministic = torch.are_deterministic_algorithms_enabled()
        return torch.ops.replk_ops_C.bwd_weight(grad_out, x, kh, kw, ph, pw, deterministic)
