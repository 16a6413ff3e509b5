"""``backend="triton"``: the Triton tensor-core kernels (``kernels/``)."""
from .runner import TritonBackend

__all__ = ["TritonBackend"]
