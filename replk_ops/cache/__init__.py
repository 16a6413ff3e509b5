"""The tuning cache on disk: what the planner measured and which Triton variant each kernel was
tuned to, so that a later process on the same machine and software never measures or tunes again
(docs/design.md, "Tuning cache").

Each entry is one small JSON file named by a hash of its whole key, and holds the key itself, so
a file is only ever used for exactly the key it was written for. The key is:

- the environment: the device's name, the driver's version, the torch, triton and CUDA versions;
- the source: a hash of the code whose speed was measured (``source_hash``);
- the problem: whatever the caller measured for (a planner kind, a Triton tuning key).

A change to any part is a different file, so a new driver, a new torch or an edited kernel
measures again; stale files are only disk space (``python -m replk_ops.cache clear``).
Writes go to a temporary file that is renamed into place, so concurrent processes (pytest-xdist
workers) never see half a file; a file that does not parse is treated as missing.

``REPLK_OPS_CACHE_DIR`` moves the cache (default: ``$XDG_CACHE_HOME/replk_ops``, else
``~/.cache/replk_ops``); ``REPLK_OPS_CACHE=0`` turns it off (nothing is read or written).
"""
from __future__ import annotations

import functools
import hashlib
import json
import os
import platform
import re
import tempfile
from pathlib import Path
from typing import Any, Dict, Iterable, Optional

import torch

from .._checks import env_switch

DIR_ENV = "REPLK_OPS_CACHE_DIR"
SWITCH_ENV = "REPLK_OPS_CACHE"
LAYOUT = "v1"  # the files' layout: a new one starts an empty directory beside the old


def directory() -> Path:
    """Where the entries live (read from the environment at each call: tests and tools move it)."""
    chosen = os.environ.get(DIR_ENV, "").strip()
    if chosen:
        return Path(chosen).expanduser() / LAYOUT
    base = os.environ.get("XDG_CACHE_HOME", "").strip() or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "replk_ops" / LAYOUT


def enabled() -> bool:
    return env_switch(SWITCH_ENV)


def _driver_version() -> str:
    """The NVIDIA driver's version ("580.159.04"), else the CUDA version the driver supports
    (cuDriverGetVersion), else "none"."""
    try:
        with open("/proc/driver/nvidia/version") as f:
            words = f.readline().split()
        return next(w for w in words if w[:1].isdigit() and "." in w)
    except (OSError, StopIteration):
        pass
    try:
        import ctypes

        version = ctypes.c_int()
        if ctypes.CDLL("libcuda.so.1").cuDriverGetVersion(ctypes.byref(version)) == 0:
            return f"cuda {version.value}"
    except (OSError, AttributeError):
        pass
    return "none"


def _triton_version() -> Optional[str]:
    try:
        import triton
    except ImportError:
        return None
    return triton.__version__


@functools.lru_cache(maxsize=None)
def environment(device: str) -> Dict[str, Any]:
    """What a measurement on ``device`` ("cuda:0", "cpu") depends on besides the code."""
    dev = torch.device(device)
    if dev.type == "cuda":
        name = torch.cuda.get_device_name(dev)
    else:
        name = f"{dev.type} {platform.machine()} {platform.processor()}".strip()
    return {"device": name, "driver": _driver_version() if dev.type == "cuda" else "none",
            "torch": torch.__version__, "cuda": torch.version.cuda, "triton": _triton_version()}


def source_hash(paths: Iterable[Path], binaries: Iterable[Path] = ()) -> str:
    """A hash of the source files' bytes, and of the compiled libraries' names, sizes and times
    (their sources are not installed; a rebuild changes size or time)."""
    digest = hashlib.sha256()
    for path in sorted(paths):
        digest.update(path.name.encode() + b"\0" + path.read_bytes())
    for path in sorted(binaries):
        stat = path.stat()
        digest.update(f"{path.name}\0{stat.st_size}\0{stat.st_mtime_ns}".encode())
    return digest.hexdigest()[:32]


PACKAGE = Path(__file__).resolve().parents[1]


@functools.lru_cache(maxsize=None)
def package_hash() -> str:
    """The hash of every module of the package and of its compiled libraries: the planner's
    measurements depend on all of them (an edit anywhere measures again)."""
    binaries = [p for pattern in ("*.so", "*.pyd") for p in PACKAGE.glob(pattern)]
    return source_hash(PACKAGE.rglob("*.py"), binaries)


def _entry_key(section: str, device: str, source: str, problem) -> Dict[str, Any]:
    return {"section": section, "environment": environment(device), "source": source, "problem": problem}


def _path(key: Dict[str, Any]) -> Path:
    text = json.dumps(key, sort_keys=True, default=str)
    return directory() / key["section"] / (hashlib.sha256(text.encode()).hexdigest()[:40] + ".json")


def _canonical(key):
    """The key as it reads back from JSON (tuples become lists), to compare with a stored one."""
    return json.loads(json.dumps(key, sort_keys=True, default=str))


def load(section: str, device: str, source: str, problem) -> Optional[Any]:
    """The value stored for this key, or None (missing, unreadable, or the cache is off)."""
    if not enabled():
        return None
    key = _entry_key(section, device, source, problem)
    try:
        with open(_path(key)) as f:
            entry = json.load(f)
    except (OSError, ValueError):
        return None
    if not isinstance(entry, dict) or entry.get("key") != _canonical(key):
        return None
    return entry.get("value")


def store(section: str, device: str, source: str, problem, value) -> None:
    """Write ``value`` for this key, atomically; a cache that cannot be written is skipped (the
    measurement is then kept for this process only)."""
    if not enabled():
        return
    key = _entry_key(section, device, source, problem)
    path = _path(key)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=".", suffix=".tmp")
        with os.fdopen(fd, "w") as f:
            json.dump({"key": _canonical(key), "value": value}, f, sort_keys=True, default=str)
        os.replace(temporary, path)
    except OSError:
        try:
            os.unlink(temporary)
        except (OSError, NameError):
            pass


def entries() -> Dict[str, int]:
    """The number of entries per section."""
    root = directory()
    if not root.is_dir():
        return {}
    return {d.name: len(list(d.glob("*.json"))) for d in sorted(root.iterdir()) if d.is_dir()}


def clear() -> int:
    """Remove every entry, of every layout (only the cache's own files: REPLK_OPS_CACHE_DIR may name
    a directory that holds other things); the number of files removed."""
    root = directory().parent
    removed = 0
    for layout in (d for d in (root.iterdir() if root.is_dir() else ()) if re.fullmatch(r"v[0-9]+", d.name)):
        for section in (d for d in layout.iterdir() if d.is_dir()):
            for path in list(section.glob("*.json")) + list(section.glob(".*.tmp")):
                path.unlink(missing_ok=True)
                removed += path.suffix == ".json"
            _remove_if_empty(section)
        _remove_if_empty(layout)
    return removed


def _remove_if_empty(path: Path) -> None:
    try:
        path.rmdir()
    except OSError:  # not empty: something else lives there
        pass


__all__ = ["DIR_ENV", "SWITCH_ENV", "directory", "enabled", "environment", "source_hash", "package_hash", "load", "store",
           "entries", "clear"]
