"""Loads the compiled CPU kernels ``replk_ops._cpu`` and says why where it cannot: a build against
another torch release, a missing or unusable module."""
from __future__ import annotations

import importlib
from typing import Optional

import torch

from ..._extension import build_info


def _load():
    """(module, None) or (None, why it is not there). A build against another torch release is not
    used: its ABI may differ in ways the import does not catch."""
    try:
        module = importlib.import_module("replk_ops._cpu")
        built_with = module.build_torch_version()
        if built_with.split("+")[0] != torch.__version__.split("+")[0]:
            return None, (f"the compiled CPU kernels replk_ops._cpu were built against torch {built_with}, but torch "
                          f"{torch.__version__} is running; reinstall with `pip install --no-build-isolation -e .`")
        return module, None
    except ImportError as exc:
        skipped = build_info().get("cpu_skipped")
        if skipped:
            return None, f"the compiled CPU kernels replk_ops._cpu were not built: {skipped}"
        return None, (f"the compiled CPU kernels replk_ops._cpu did not load ({exc}); reinstall with "
                      "`pip install --no-build-isolation -e .` to build them against this torch")
    except Exception as exc:  # a stale or foreign build: the package must import regardless
        return None, (f"the compiled CPU kernels replk_ops._cpu are unusable ({type(exc).__name__}: {exc}); "
                      "reinstall with `pip install --no-build-isolation -e .`")


_MODULE, UNAVAILABLE = _load()


def instruction_set() -> Optional[str]:
    """What the kernels run with on this CPU ("avx2+fma", "baseline"), None without them."""
    return _MODULE.instruction_set() if _MODULE is not None else None


def note() -> str:
    """One line for explain on CPU: whether the compiled CPU kernels are there, and how they run."""
    if UNAVAILABLE is not None:
        return str(UNAVAILABLE)
    return f"the compiled CPU kernels replk_ops._cpu run with {instruction_set()} on this CPU"
