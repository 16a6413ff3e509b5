""""auto" between the GPU backends by measurement: the first call of each kind times every
candidate on that call's own tensors and remembers the fastest.

A kind is (device, pass, dtype, kernel size, layout, map-size class, whether the batch is below
SMALL_BATCH, deterministic mode). The batch size itself and the channel count are left out, so a
new batch size triggers a new measurement at most once, when it crosses SMALL_BATCH: a small batch
is where the fastest backend changes (at batch 1 the host's launch costs matter and PyTorch's own
kernel is the fastest for small maps; at batch 64 the tensor-core kernels win).
Measuring is skipped (static priority instead) while a CUDA graph is being captured, while
torch.compile traces, when ``REPLK_OPS_AUTOTUNE=0``, and under
``torch.use_deterministic_algorithms(True)``: a choice made by timing can differ from one process
to the next, and with it the last bits of the results.
"""
from __future__ import annotations

import dataclasses
import math
import threading
from typing import Callable, Dict, Optional, Sequence, Tuple

import torch

from .._checks import env_switch, memory_format_of

ENV_VAR = "REPLK_OPS_AUTOTUNE"
REPEATS = 3
SMALL_BATCH = 16


@dataclasses.dataclass(frozen=True)
class Measurement:
    chosen: str
    milliseconds: Dict[str, float]

    def __str__(self) -> str:
        times = ", ".join(f"{name} {ms:.3f} ms" for name, ms in sorted(self.milliseconds.items(), key=lambda kv: kv[1]))
        return f"measured on first use: {times}"


_CHOICES: Dict[Tuple, Measurement] = {}
_LOCK = threading.Lock()


def enabled() -> bool:
    """Whether "auto" may measure; raises ValueError naming the variable for a value other than 0 or 1."""
    return env_switch(ENV_VAR)


def _size_class(size: int) -> int:
    return 1 << max(0, math.ceil(math.log2(max(size, 1))))


def kind(op: str, x: torch.Tensor, weight: torch.Tensor) -> Tuple:
    fmt = "channels_last" if memory_format_of(x) == torch.channels_last else "nchw"
    return (str(x.device), op, x.dtype, tuple(weight.shape[2:]), fmt, _size_class(x.shape[2]),
            _size_class(x.shape[3]), x.shape[0] < SMALL_BATCH, torch.are_deterministic_algorithms_enabled())


def remembered(key: Tuple) -> Optional[Measurement]:
    return _CHOICES.get(key)


def forget() -> None:
    """Drop every remembered choice (tests, or after changing GPUs' clocks)."""
    with _LOCK:
        _CHOICES.clear()


def _capturing() -> bool:
    return torch.cuda.is_available() and torch.cuda.is_current_stream_capturing()


def _time(run: Callable[[], object]) -> float:
    run()  # warm-up: compiles Triton kernels, sets shared-memory attributes
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    times = []
    for _ in range(REPEATS):
        start.record()
        run()
        end.record()
        end.synchronize()
        times.append(start.elapsed_time(end))
    return sorted(times)[len(times) // 2]


def choose(key: Tuple, candidates: Sequence[str], run: Callable[[str], object]) -> Optional[str]:
    """The fastest of ``candidates`` for ``key``, measured once with ``run(name)``; None when
    measuring is not possible now (the caller falls back to the static priority)."""
    known = _CHOICES.get(key)
    if known is not None:
        return known.chosen
    if not enabled() or torch.are_deterministic_algorithms_enabled() or torch.compiler.is_compiling() or _capturing():
        return None
    with _LOCK:
        known = _CHOICES.get(key)
        if known is not None:
            return known.chosen
        times = {}
        with torch.no_grad():
            for name in candidates:
                try:
                    times[name] = _time(lambda: run(name))
                except Exception:  # noqa: BLE001 - a candidate that fails here (a launch or compile
                    continue       # error) is simply not chosen; a later direct call reports it
        if not times:
            return None
        best = min(times, key=times.get)
        _CHOICES[key] = Measurement(best, times)
        return best

