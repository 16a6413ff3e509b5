"""The compiled CUDA C++ backend (``replk_ops._C``), reached through its registered ops.

``algo`` names one of the extension's kernels for a pass ("auto": the extension's own choice by
map size); the extension's algo table (``algo_table``) lists them, with the dtypes each runs and
whether it has been verified on a GPU.
"""
from __future__ import annotations

import functools
import json
from typing import List, Optional

import torch

from . import loader
from ..base import PassRunner, require_undilated

@functools.lru_cache(maxsize=None)
def algo_table() -> List[dict]:
    """The extension's algo table (rows of pass, algo, dtypes, min_cc, verified_on_gpu, auto,
    max_kernel, description), or [] when the extension is not loaded or predates the table."""
    if not loader.STATUS.loaded or not hasattr(torch.ops.replk_ops_C, "algo_table"):
        return []
    return json.loads(torch.ops.replk_ops_C.algo_table())


def max_kernel() -> Optional[int]:
    """The extension's kernel limit, from its table (None without one: the extension then checks
    the size itself and raises before any launch)."""
    limits = [row["max_kernel"] for row in algo_table()]
    return min(limits) if limits else None


class CudaRunner(PassRunner):
    takes_dilation = False  # undilated kernels: the catalogue wraps it in space-to-batch

    def __init__(self, algo: str = "auto", min_cc: int = 0):
        self.algo = algo
        self.min_cc = min_cc

    def unavailable_reason(self, problem) -> Optional[str]:
        status = loader.STATUS
        if not status.loaded:
            return status.reason
        if not hasattr(torch.ops.replk_ops_C, "fwd"):
            return "replk_ops._C has no kernels in this build"
        if self.min_cc and problem.device_type == "cuda":
            major, minor = torch.cuda.get_device_capability(torch.device(problem.device))
            if major * 10 + minor < self.min_cc:
                return f"needs compute capability {self.min_cc / 10:.1f}, the GPU has {major}.{minor}"
        return None

    def fwd(self, x, weight, bias, ph, pw, dilation=(1, 1)):
        require_undilated(self, dilation)
        return torch.ops.replk_ops_C.fwd(x, weight, bias, ph, pw, self.algo)

    def bwd_input(self, grad_out, weight, ph, pw, dilation=(1, 1)):
        require_undilated(self, dilation)
        return torch.ops.replk_ops_C.bwd_input(grad_out, weight, ph, pw, self.algo)

    def bwd_weight(self, grad_out, x, kh, kw, ph, pw, dilation=(1, 1)):
        require_undilated(self, dilation)
        # always deterministic (fixed-order partial sums); the flag is part of the op's schema
        deterministic = torch.are_deterministic_algorithms_enabled()
        return torch.ops.replk_ops_C.bwd_weight(grad_out, x, kh, kw, ph, pw, deterministic, self.algo)
