"""``backend="cuda"``: the compiled CUDA extension ``replk_ops._C``."""
from .runner import CudaBackend, algo_table, max_kernel

__all__ = ["CudaBackend", "algo_table", "max_kernel"]
