"""Loads the compiled CPU kernels ``replk_ops._cpu`` through the package's one checked loader
(replk_ops/_compiled.py) and says why where it cannot."""
from __future__ import annotations

from typing import Optional

from ..._compiled import CPU_KERNELS, load, warn_at_import


def _load():
    """(module, None) or (None, why it is not there)."""
    status = load(CPU_KERNELS)
    warn_at_import(status, shadowed_too=False)  # a shadowing checkout is said once, for replk_ops._C
    return (status.module, None) if status.loaded else (None, status.reason)


_MODULE, UNAVAILABLE = _load()


def instruction_set() -> Optional[str]:
    """What the kernels run with on this CPU ("avx2+fma", "baseline"), None without them."""
    return _MODULE.instruction_set() if _MODULE is not None else None


def note() -> str:
    """One line for explain on CPU: whether the compiled CPU kernels are there, and how they run."""
    if UNAVAILABLE is not None:
        return str(UNAVAILABLE)
    return f"the compiled CPU kernels replk_ops._cpu run with {instruction_set()} on this CPU"
