"""The Triton backend: tensor-core kernels for CUDA, also runnable through the Triton
interpreter on CPU tensors (how they are tested without a GPU)."""
from __future__ import annotations

import functools
import importlib
import os

import torch

from .base import Backend

TRITON_DTYPES = (torch.float32, torch.float16, torch.bfloat16)


@functools.lru_cache(maxsize=None)
def _launch_module():
    """(module, None) or (None, why Triton cannot be used)."""
    try:
        return importlib.import_module("replk_ops.triton_kernels.launch"), None
    except ImportError as exc:
        return None, f"Triton is not importable ({str(exc).splitlines()[0][:120]})"


class TritonBackend(Backend):
    name = "triton"
    auto_device_types = ("cuda",)  # on CPU the interpreter is for tests, never picked by "auto"

    def unavailable_reason(self, x, weight):
        launch, why = _launch_module()
        if launch is None:
            return why
        if x.device.type == "cpu":
            if os.environ.get("TRITON_INTERPRET") != "1":
                return "CPU tensors need the Triton interpreter (TRITON_INTERPRET=1 before triton is imported)"
        elif x.device.type != "cuda":
            return f"runs on CUDA tensors, got a tensor on {x.device}"
        if x.dtype not in TRITON_DTYPES:
            return f"supports {', '.join(map(str, TRITON_DTYPES))}, got {x.dtype}"
        kh, kw = weight.shape[2], weight.shape[3]
        if max(kh, kw) > launch.MAX_KERNEL:
            return f"supports kernels up to {launch.MAX_KERNEL}x{launch.MAX_KERNEL}, got {kh}x{kw}"
        return None

    def fwd(self, x, weight, bias, ph, pw):
        return _launch_module()[0].fwd(x, weight, bias, ph, pw)

    def bwd_input(self, grad_out, weight, ph, pw):
        return _launch_module()[0].bwd_input(grad_out, weight, ph, pw)

    def bwd_weight(self, grad_out, x, kh, kw, ph, pw):
        return _launch_module()[0].bwd_weight(grad_out, x, kh, kw, ph, pw)
