"""Every implementation replk_ops can run, in "auto"'s priority order.

Each backend package under ``backends/`` lists its own implementations (``entries()``: which
``backend=`` name selects each, its passes, devices, dtypes, ranks, kernel limit and "auto" rules;
``backends/implementation.py``); the CUDA extension contributes one per kernel ("algo") from its own
table. This module only puts the packages in order: adding a backend is one package under
``backends/`` and one entry in ``PRIORITY``. The planner (``planner.py``), ``explain``, the bench
and the tests all read this list.
"""
from __future__ import annotations

import functools
import warnings
from typing import List, Tuple

import torch

from .backends import cpp, cuda, direct, fft, torch_native, triton
from .backends.implementation import DTYPE_NAMES, PASSES, Implementation
from .problem import Problem

# "auto"'s priority where nothing else decides: the compiled kernels first, then Triton, then
# PyTorch's own paths, then fft.
PRIORITY = (cuda, triton, torch_native, direct, cpp, fft)

@functools.lru_cache(maxsize=None)
def implementations() -> Tuple[Implementation, ...]:
    """Every implementation, in "auto"'s priority order where nothing else decides."""
    return tuple(impl for package in PRIORITY for impl in package.entries())


# the ``backend=`` values, each package's NAME ("torch" for torch_native)
BACKEND_NAMES = ("auto",) + tuple(package.NAME for package in PRIORITY)
# Old names still accepted for one release, with a FutureWarning: the name each now has.
DEPRECATED_BACKEND_NAMES = {"reference": "direct"}


def check_backend_name(backend: str, argument: str = "backend") -> str:
    """``backend`` if it names a backend (a deprecated name: its new name, with a warning, once);
    ValueError naming ``argument`` else."""
    if isinstance(backend, str) and backend in DEPRECATED_BACKEND_NAMES:
        new = DEPRECATED_BACKEND_NAMES[backend]
        if backend not in _WARNED:
            _WARNED.add(backend)
            warnings.warn(f"{argument}: {backend!r} is now called {new!r}; the old name will be removed in a "
                          "future release", FutureWarning, stacklevel=3)
        return new
    if not isinstance(backend, str) or backend not in BACKEND_NAMES:
        raise ValueError(f"{argument}: expected one of {BACKEND_NAMES}, got {backend!r}")
    return backend


_WARNED = set()


def by_name(name: str, pass_name: str = "fwd") -> Implementation:
    """The implementation called ``name`` for ``pass_name`` (a CUDA algo's name is unique per pass:
    the forward's "cuda:mma" is not the weight gradient's)."""
    for impl in implementations():
        if impl.name == name and pass_name in impl.passes:
            return impl
    raise KeyError(f"{name} ({pass_name})")


def for_pass(pass_name: str) -> Tuple[Implementation, ...]:
    return tuple(impl for impl in implementations() if pass_name in impl.passes)


def backend_of(name: str) -> str:
    """The backend an implementation's name belongs to: "cuda:mma_rows" -> "cuda"."""
    return name.split(":", 1)[0]


def available_backends(device=None) -> List[str]:
    """Backend names that can run float32 calls on ``device`` (default: CUDA if present, else CPU)."""
    if device is None:
        device = "cuda" if torch.cuda.is_available() else "cpu"
    problem = Problem(str(torch.device(device)), torch.float32, "nchw", True, 1, 1, 1, 1, 1, 0, 0, False)
    runnable = [impl.backend for impl in implementations() if impl.rejection(problem, "fwd") is None]
    return list(dict.fromkeys(runnable))


__all__ = ["Implementation", "DTYPE_NAMES", "PRIORITY", "available_backends", "PASSES", "BACKEND_NAMES", "check_backend_name", "implementations",
           "by_name", "for_pass", "backend_of"]
