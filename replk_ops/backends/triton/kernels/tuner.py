"""Choosing a Triton variant for a call: the fastest of a short list (tuning.MAX_TUNED at most),
timed once per tuning key and remembered in memory and in the tuning cache on disk
(replk_ops.cache), so that a later process on the same machine and software never tunes again.

The listed variants are compiled before any is timed: in parallel where Triton offers
asynchronous compiles (``AsyncCompileMode``: Triton 3.6 has it, 3.0 does not), one after another
elsewhere. Then each runs a few times under CUDA events. This replaces ``triton.autotune``: the
key, the short list, the timing and where results are kept are all this package's own, on every
Triton version it supports.
"""
from __future__ import annotations

import concurrent.futures
import dataclasses
import functools
import os
import threading
from pathlib import Path
from typing import Callable, Dict, Optional, Sequence, Tuple

from .... import cache
from ....measure import time_cuda

SECTION = "triton"
# Compiles at once: each is a Python front end, LLVM and ptxas; more threads than variants or
# cores only queue.
PARALLEL_COMPILES = max(1, min(8, os.cpu_count() or 1))

_CHOSEN: Dict[Tuple, object] = {}
_LOCK = threading.Lock()


@functools.lru_cache(maxsize=None)
def source_hash() -> str:
    """The Triton kernels' source (this folder): an edit to a kernel or the catalogue tunes again."""
    return cache.source_hash(Path(__file__).resolve().parent.glob("*.py"))


def describe(variant) -> dict:
    return {"type": type(variant).__name__, **dataclasses.asdict(variant)}


def _async_compile_mode():
    """Triton's AsyncCompileMode, or None where this Triton has none (compiles then run serially)."""
    try:
        from triton.runtime._async_compile import AsyncCompileMode
    except ImportError:
        return None
    return AsyncCompileMode


def compile_all(warm: Callable[[object], None], variants: Sequence) -> None:
    """``warm(v)`` (compile v for this call without launching it) for every variant, in parallel
    where Triton allows it. A variant that fails to compile is skipped here: timing it fails too,
    and it is not chosen."""
    mode = _async_compile_mode()
    if mode is None or len(variants) < 2:
        for variant in variants:
            try:
                warm(variant)
            except Exception:  # noqa: BLE001 - reported by the timing run, which leaves it out
                pass
        return
    with concurrent.futures.ThreadPoolExecutor(max_workers=min(len(variants), PARALLEL_COMPILES)) as pool:
        with mode(pool, ignore_errors=True):
            for variant in variants:
                warm(variant)


def choose(key: Tuple, variants: Sequence, run: Callable[[object, bool], None], device) -> object:
    """The fastest of ``variants`` for ``key`` (which names the kernel and everything the choice
    depends on): ``run(v, warmup)`` launches the call with variant v, or with ``warmup`` only
    compiles it. One variant, or a key seen before (in this process or, on this machine and
    software, an earlier one), times nothing."""
    if len(variants) == 1:
        return variants[0]
    listed = [describe(v) for v in variants]
    memo = (key, tuple(map(str, listed)))
    chosen = _CHOSEN.get(memo)
    if chosen is not None:
        return chosen
    with _LOCK:
        chosen = _CHOSEN.get(memo)
        if chosen is None:
            chosen = _recalled(key, listed, variants, str(device)) or _tune(key, listed, variants, run, str(device))
            _CHOSEN[memo] = chosen
    return chosen


def _problem(key, listed):
    return {"key": list(key), "variants": listed}


def _recalled(key, listed, variants, device) -> Optional[object]:
    value = cache.load(SECTION, device, source_hash(), _problem(key, listed))
    try:
        index = int(value["index"])
    except (TypeError, KeyError, ValueError):
        return None
    return variants[index] if 0 <= index < len(variants) else None


def _tune(key, listed, variants, run, device) -> object:
    compile_all(lambda v: run(v, True), variants)
    times = {}
    for index, variant in enumerate(variants):
        try:
            times[index] = time_cuda(lambda: run(variant, False))
        except Exception:  # noqa: BLE001 - out of resources on this GPU, say: not chosen
            continue
    if not times:  # every variant failed: the call itself then raises with the reason
        return variants[0]
    best = min(times, key=times.get)
    cache.store(SECTION, device, source_hash(), _problem(key, listed),
                {"index": best, "milliseconds": [times.get(i) for i in range(len(variants))]})
    return variants[best]


def forget() -> None:
    """Drop the choices held in memory (tests; the disk cache is ``replk_ops.cache``'s)."""
    with _LOCK:
        _CHOSEN.clear()


__all__ = ["choose", "compile_all", "describe", "forget", "source_hash", "SECTION", "PARALLEL_COMPILES"]
