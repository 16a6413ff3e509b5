"""Backend registry and selection: which implementation runs a call, and why.

``backend="auto"`` (or the environment variable ``REPLK_OPS_BACKEND``) picks the first backend in
priority order that can run the call; an explicitly named backend that cannot run it raises with
the reason. ``explain`` returns the decision and every rejected backend's reason.
"""
from __future__ import annotations

import dataclasses
import os
from typing import Dict, List, Optional

import torch

from .._checks import BACKEND_NAMES, check_backend_name
from .base import Backend
from .cuda_ext import CudaExtensionBackend
from .reference import ReferenceBackend
from .triton_backend import TritonBackend

ENV_VAR = "REPLK_OPS_BACKEND"

_BACKENDS: Dict[str, Backend] = {}
# Priority for "auto": the first one that can run the call wins.
_AUTO_ORDER: List[str] = []


def register(backend: Backend, auto_priority: Optional[int] = None) -> None:
    _BACKENDS[backend.name] = backend
    if auto_priority is not None and backend.name not in _AUTO_ORDER:
        _AUTO_ORDER.insert(auto_priority, backend.name)


register(CudaExtensionBackend(), auto_priority=0)
register(TritonBackend(), auto_priority=1)
register(ReferenceBackend(), auto_priority=2)


def get(name: str) -> Backend:
    return _BACKENDS[name]


def requested_backend(backend: str) -> str:
    """``backend`` with the environment override applied to "auto"."""
    check_backend_name(backend)
    if backend == "auto":
        env = os.environ.get(ENV_VAR, "").strip()
        if env:
            return check_backend_name(env, argument=f"environment variable {ENV_VAR}")
    return backend


def _auto_rejects(impl: Backend, x: torch.Tensor) -> Optional[str]:
    if x.device.type not in impl.auto_device_types:
        return f"available, but \"auto\" does not pick it for {x.device.type} tensors"
    return None


def _reasons(x: torch.Tensor, weight: torch.Tensor) -> Dict[str, Optional[str]]:
    reasons = {}
    for name in BACKEND_NAMES[1:]:
        impl = _BACKENDS.get(name)
        reasons[name] = "not part of this installation" if impl is None else impl.unavailable_reason(x, weight)
    return reasons


@dataclasses.dataclass
class Explanation:
    """Which backend runs a call and why each other one does not."""

    backend: str
    requested: str
    reasons: Dict[str, str]

    def __str__(self) -> str:
        lines = [f"replk_ops: backend {self.backend!r} (requested {self.requested!r})"]
        for name, why in self.reasons.items():
            lines.append(f"  {name:<10} {why}")
        return "\n".join(lines)


def explain_choice(x: torch.Tensor, weight: torch.Tensor, backend: str = "auto") -> Explanation:
    requested = requested_backend(backend)
    reasons = _reasons(x, weight)
    if requested == "auto":
        chosen = next(name for name in _AUTO_ORDER
                      if reasons.get(name) is None and _auto_rejects(_BACKENDS[name], x) is None)
    else:
        chosen = requested
    described = {}
    for name, why in reasons.items():
        if name == chosen:
            described[name] = "chosen" if why is None else f"requested, but cannot run: {why}"
        elif why is None and requested == "auto" and _auto_rejects(_BACKENDS[name], x):
            described[name] = _auto_rejects(_BACKENDS[name], x)
        elif why is None:
            described[name] = "available; not chosen" + (
                " (lower priority for auto)" if requested == "auto" else f" (backend {requested!r} was requested)"
            )
        else:
            described[name] = f"rejected: {why}"
    return Explanation(chosen, requested, described)


def select(x: torch.Tensor, weight: torch.Tensor, backend: str) -> Backend:
    """The backend that runs this call; raises RuntimeError if a requested one cannot."""
    requested = requested_backend(backend)
    if requested == "auto":
        for name in _AUTO_ORDER:
            impl = _BACKENDS[name]
            if _auto_rejects(impl, x) is None and impl.unavailable_reason(x, weight) is None:
                return impl
        raise AssertionError("the reference backend runs everywhere")
    impl = _BACKENDS.get(requested)
    why = "not part of this installation" if impl is None else impl.unavailable_reason(x, weight)
    if why is not None:
        raise RuntimeError(f"backend: {requested!r} cannot run this call: {why}")
    return impl


def available_backends(device=None) -> List[str]:
    """Backends that can run float32 calls on ``device`` (default: CUDA if present, else CPU)."""
    if device is None:
        device = "cuda" if torch.cuda.is_available() else "cpu"
    x = torch.empty((1, 1, 1, 1), dtype=torch.float32, device=device)
    return [name for name, why in _reasons(x, x).items() if why is None]
