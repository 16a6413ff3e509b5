"""The planner's measurements in the tuning cache: on CUDA a measurement times compiled and
Triton kernels (and compiles them first), so it is kept across processes. CPU measurements cost
milliseconds and follow the machine's load, so they stay per process."""
from __future__ import annotations

from typing import Dict, Optional, Sequence, Tuple

from . import load, package_hash, store

SECTION = "planner"
PERSISTED_DEVICES = ("cuda",)


def _persisted(device: str) -> bool:
    return device.split(":", 1)[0] in PERSISTED_DEVICES


def recall(device: str, kind: Tuple, candidates: Sequence[str]) -> Optional[Tuple[str, Dict[str, float]]]:
    """(chosen, {name: ms}) measured for ``kind`` by an earlier process, if it chose one of
    ``candidates`` among exactly these candidates; else None."""
    if not _persisted(device):
        return None
    value = load(SECTION, device, package_hash(), list(kind))
    try:
        chosen, times = value["chosen"], {str(k): float(v) for k, v in value["milliseconds"].items()}
    except (TypeError, KeyError, ValueError, AttributeError):
        return None
    if chosen not in candidates or sorted(value.get("candidates", ())) != sorted(candidates):
        return None
    return chosen, times


def keep(device: str, kind: Tuple, candidates: Sequence[str], chosen: str, times: Dict[str, float]) -> None:
    if _persisted(device):
        store(SECTION, device, package_hash(), list(kind),
              {"chosen": chosen, "milliseconds": times, "candidates": sorted(candidates)})


__all__ = ["recall", "keep", "SECTION"]
