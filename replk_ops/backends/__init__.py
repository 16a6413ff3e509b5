"""Backend registry and selection: which implementation runs a call, and why.

``backend="auto"`` (or the environment variable ``REPLK_OPS_BACKEND``) picks the first backend in
priority order that can run the call, except that on CUDA, when more than one of "cuda", "triton"
and "reference" can, it measures them on the first call of each kind and keeps the fastest
(``measured``). An explicitly named backend that cannot run the call raises with the reason. ``explain`` returns the decision,
the measurement behind it and every rejected backend's reason.
"""
from __future__ import annotations

import dataclasses
import os
from typing import Callable, Dict, List, Optional

import torch

from .._checks import BACKEND_NAMES, check_backend_name
from . import measured
from .base import Backend
from .cuda_ext import CudaExtensionBackend
from .reference import ReferenceBackend
from .triton_backend import TritonBackend

ENV_VAR = "REPLK_OPS_BACKEND"

_BACKENDS: Dict[str, Backend] = {}
# Priority for "auto": the first one that can run the call wins.
_AUTO_ORDER: List[str] = []
# Backends "auto" times against each other on CUDA when more than one of them can run a call
# (the reference there is PyTorch's own kernel, the fastest for some small maps).
MEASURED = ("cuda", "triton", "reference")


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
        measured.enabled()  # validates REPLK_OPS_AUTOTUNE on every "auto" call, GPU or not
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


def _auto_candidates(x: torch.Tensor, reasons: Dict[str, Optional[str]]) -> List[str]:
    return [name for name in _AUTO_ORDER if reasons.get(name) is None and _auto_rejects(_BACKENDS[name], x) is None]


def _racing(x: torch.Tensor, candidates: List[str]) -> List[str]:
    """The candidates "auto" times against each other (CUDA tensors only)."""
    return [name for name in candidates if name in MEASURED] if x.device.type == "cuda" else []


def explain_choice(x: torch.Tensor, weight: torch.Tensor, backend: str = "auto", op: str = "fwd") -> Explanation:
    requested = requested_backend(backend)
    reasons = _reasons(x, weight)
    note = ""
    measurement = None
    if requested == "auto":
        candidates = _auto_candidates(x, reasons)
        chosen = candidates[0]
        racing = _racing(x, candidates)
        if len(racing) > 1:
            measurement = measured.remembered(measured.kind(op, x, weight))
            if measurement is not None:
                chosen, note = measurement.chosen, f" ({measurement})"
            elif not measured.enabled():
                note = f" (by priority: measuring is off, {measured.ENV_VAR}=0)"
            elif torch.are_deterministic_algorithms_enabled():
                note = " (by priority: deterministic algorithms are on, and a choice by timing could differ between runs)"
            else:
                note = f" (by priority until the first {op} call of this kind times {', '.join(racing)})"
    else:
        chosen = requested
    described = {}
    for name, why in reasons.items():
        if name == chosen:
            described[name] = "chosen" + note if why is None else f"requested, but cannot run: {why}"
        elif why is None and requested == "auto" and _auto_rejects(_BACKENDS[name], x):
            described[name] = _auto_rejects(_BACKENDS[name], x)
        elif why is None and measurement is not None and name in measurement.milliseconds:
            described[name] = "available; slower in the measurement"
        elif why is None:
            described[name] = "available; not chosen" + (
                " (lower priority for auto)" if requested == "auto" else f" (backend {requested!r} was requested)"
            )
        else:
            described[name] = f"rejected: {why}"
    return Explanation(chosen, requested, described)


def select(
    x: torch.Tensor, weight: torch.Tensor, backend: str, op: str = "fwd",
    run: Optional[Callable[[Backend], object]] = None,
) -> Backend:
    """The backend that runs this call; raises RuntimeError if a requested one cannot. With
    ``run`` (the call itself, for a given backend), "auto" may time the GPU backends on it."""
    requested = requested_backend(backend)
    if requested == "auto":
        # lazily: a backend "auto" rejects for this device is never asked whether it could run
        candidates = [name for name in _AUTO_ORDER
                      if _auto_rejects(_BACKENDS[name], x) is None
                      and _BACKENDS[name].unavailable_reason(x, weight) is None]
        racing = _racing(x, candidates)
        if run is not None and len(racing) > 1:
            best = measured.choose(measured.kind(op, x, weight), racing, lambda name: run(_BACKENDS[name]))
            if best is not None:
                return _BACKENDS[best]
        return _BACKENDS[candidates[0]]
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
