"""The Triton backend: tensor-core kernels for CUDA, also runnable through the Triton
interpreter on CPU tensors (how they are tested without a GPU)."""
from __future__ import annotations

import functools
import importlib
import os

from ..base import PassRunner, require_undilated


@functools.lru_cache(maxsize=None)
def launch_module():
    """(module, None) or (None, why Triton cannot be used)."""
    try:
        return importlib.import_module("replk_ops.backends.triton.kernels.launch"), None
    except ImportError as exc:
        return None, f"Triton is not importable ({str(exc).splitlines()[0][:120]})"


class TritonRunner(PassRunner):
    takes_dilation = False  # undilated kernels: the catalogue wraps it in space-to-batch

    def unavailable_reason(self, problem):
        launch, why = launch_module()
        if launch is None:
            return why
        if problem.device_type == "cpu" and os.environ.get("TRITON_INTERPRET") != "1":
            return ("runs on CUDA GPUs; CPU tensors only under Triton's interpreter, a slow test tool "
                    "(TRITON_INTERPRET=1), so never for real work")
        return None

    def fwd(self, x, weight, bias, ph, pw, dilation=(1, 1)):
        require_undilated(self, dilation)
        return launch_module()[0].fwd(x, weight, bias, ph, pw)

    def bwd_input(self, grad_out, weight, ph, pw, dilation=(1, 1)):
        require_undilated(self, dilation)
        return launch_module()[0].bwd_input(grad_out, weight, ph, pw)

    def bwd_weight(self, grad_out, x, kh, kw, ph, pw, dilation=(1, 1)):
        require_undilated(self, dilation)
        return launch_module()[0].bwd_weight(grad_out, x, kh, kw, ph, pw)
