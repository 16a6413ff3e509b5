"""The CUDA extension ``replk_ops._C``, loaded through the package's one checked loader
(_compiled.py): ``STATUS`` says whether it is usable and why not, and the first CUDA call on a GPU
machine without it warns once with that reason."""
from __future__ import annotations

import warnings

import torch

from ..._compiled import CUDA_EXTENSION, ModuleStatus, load, warn_at_import

CPU_NOTE = "CPU tensors never use replk_ops._C"  # said in every message about the CUDA extension


def _archs(status: ModuleStatus) -> str:
    return torch.ops.replk_ops_C.build_cuda_archs() if status.loaded else ""


def note() -> str:
    """One line for explain about the extension's build and check, "" when it is not loaded."""
    line = STATUS.note("replk_ops._C")
    return f"{line}; {CPU_NOTE}" if line else ""


_warned_missing = False


def warn_once_if_missing() -> None:
    """For the first CUDA call: where the extension is not loaded but a GPU is present, warn once
    with the reason (users never see pip's build log, so this is where they learn it)."""
    global _warned_missing
    if _warned_missing or STATUS.loaded or STATUS.shadowed or STATUS.unsafe or not torch.cuda.is_available():
        return  # a shadowing checkout or a rejected build was already reported at import
    _warned_missing = True
    warnings.warn(f"replk_ops: the CUDA backend is unavailable, other backends run CUDA calls ({CPU_NOTE}): "
                  f"{STATUS.reason}", RuntimeWarning, stacklevel=3)


STATUS = load(CUDA_EXTENSION)
CUDA_ARCHS = _archs(STATUS)
warn_at_import(STATUS)
