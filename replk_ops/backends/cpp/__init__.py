"""``backend="cpp"``: the compiled CPU kernels ``replk_ops._cpu``."""
from .loader import UNAVAILABLE, instruction_set, note
from .runner import CppBackend

__all__ = ["UNAVAILABLE", "CppBackend", "instruction_set", "note"]
