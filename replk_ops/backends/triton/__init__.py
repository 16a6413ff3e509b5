"""``backend="triton"``: Triton tensor-core kernels (``kernels/``) for CUDA, also runnable through
the Triton interpreter on CPU tensors (how they are tested without a GPU)."""
from typing import Tuple

from ..implementation import Implementation
from .kernels import DTYPES, MAX_KERNEL
from .runner import TritonRunner

NAME = "triton"  # the ``backend=`` value that selects it


def entries() -> Tuple[Implementation, ...]:
    return (Implementation(
        NAME, NAME, TritonRunner(), ("cpu", "cuda"), DTYPES, ("cuda",), max_kernel=MAX_KERNEL,
        description="Triton tensor-core kernels (CPU tensors only through the Triton interpreter, for tests)"),)


__all__ = ["NAME", "TritonRunner", "entries"]
