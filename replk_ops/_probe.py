"""Does a C++ exception thrown inside replk_ops._C reach Python as a RuntimeError, or abort?

An extension built with another GCC than torch's can, with some compiler pairs, abort the process
where one of its argument checks throws. Rather than guess from the version numbers, the build (or
else the first import that finds no result for the library on disk) loads the library in a child
process and calls ``replk_ops_C::exception_probe``, which only throws; the outcome is recorded in
the build-info file beside the library, keyed to that library, so a rebuild probes again.

Standard library only: setup.py loads this file by path, before the package can be imported.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys
from typing import Optional

CPU_NOTE = "CPU tensors never use the extension"  # said in every message about the extension
KEY = "exception_probe"
RAISES = "raises"
TIMEOUT_S = 300  # a child that imports torch on a busy machine: generous
# The child loads the library with torch (not through the package, whose import would probe again)
# and calls the op. Exit 0: it raised a RuntimeError; 4: another exception; 2: it could not be
# called (a Python error before the call is no verdict on the library); 3: it returned. An
# exception that escapes C++ ends in std::terminate: the child dies of a signal.
CHILD = """
import sys
try:  # an abort is the expected failure: no core file in the caller's directory
    import resource
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
except (ImportError, ValueError, OSError):
    pass
try:
    import torch
    torch.ops.load_library(sys.argv[1])
except Exception as exc:
    print(f"{type(exc).__name__}: {str(exc).splitlines()[0][:300] if str(exc) else ''}")
    sys.exit(2)
if not hasattr(torch.ops.replk_ops_C, "exception_probe"):
    print("this build has no exception_probe op (it predates the check): rebuild it to check")
    sys.exit(2)
try:
    torch.ops.replk_ops_C.exception_probe()
except RuntimeError:
    sys.exit(0)
except Exception as exc:
    print(type(exc).__name__)
    sys.exit(4)
sys.exit(3)
"""


def gcc_major(torch_config: str) -> Optional[int]:
    """The GCC major version in ``torch.__config__.show()``'s text, or None."""
    match = re.search(r"GCC (\d+)", torch_config)
    return int(match.group(1)) if match else None


def _fingerprint(library: str, with_hash: bool = True) -> dict:
    stat = os.stat(library)
    found = {"library": os.path.basename(library), "size": stat.st_size, "mtime_ns": stat.st_mtime_ns}
    if with_hash:
        with open(library, "rb") as handle:
            found["sha256"] = hashlib.sha256(handle.read()).hexdigest()
    return found


def run(library: str, timeout: float = TIMEOUT_S) -> str:
    """Probe ``library`` in a child process: "raises" (also "raises TypeError, not RuntimeError"),
    "aborts (signal N)", "exits with code N instead of raising", "returns without raising" or
    "not run: why"."""
    try:
        done = subprocess.run([sys.executable, "-c", CHILD, library], capture_output=True, text=True,
                              timeout=timeout)
    except subprocess.TimeoutExpired:
        return f"not run: the child process took over {timeout:.0f} s"
    except OSError as exc:
        return f"not run: {exc}"
    if done.returncode == 0:
        return RAISES
    if done.returncode < 0:
        return f"aborts (signal {-done.returncode})"
    if done.returncode == 2:
        return f"not run: {done.stdout.strip() or 'the op could not be called'}"
    if done.returncode == 3:
        return "returns without raising"
    if done.returncode == 4:
        return f"{RAISES} {done.stdout.strip()}, not RuntimeError"
    return f"exits with code {done.returncode} instead of raising"


def failed(result: str) -> bool:
    """True for an outcome that shows exceptions do not reach Python (not for one never run)."""
    return not result.startswith((RAISES, "not run"))


def recorded(library: str, info: dict) -> Optional[str]:
    """The outcome recorded in ``info`` for this very library, or None."""
    entry = info.get(KEY)
    if not isinstance(entry, dict) or "result" not in entry:
        return None
    try:
        now = _fingerprint(library, with_hash=False)
        if any(entry.get(k) != now[k] for k in ("library", "size")):
            return None
        if entry.get("mtime_ns") != now["mtime_ns"] and entry.get("sha256") != _fingerprint(library)["sha256"]:
            return None  # a copy keeps the hash; a rebuild changes it
    except OSError:
        return None
    return entry["result"]


def probe_and_record(library: str, info_path: str, timeout: float = TIMEOUT_S) -> tuple:
    """(outcome, None) after probing ``library`` and recording the outcome in ``info_path``, or
    (outcome, why it could not be recorded). A timeout is not recorded: the next import retries."""
    result = run(library, timeout)
    if result.startswith("not run: the child process took"):
        return result, "timed out"
    try:
        with open(info_path) as handle:
            info = json.load(handle)
    except (OSError, ValueError):
        info = {}
    info = info if isinstance(info, dict) else {}
    try:
        info[KEY] = dict(_fingerprint(library), result=result)
        scratch = f"{info_path}.{os.getpid()}.tmp"
        with open(scratch, "w") as handle:
            json.dump(info, handle, indent=1)
        os.replace(scratch, info_path)  # atomic: concurrent first imports each write a whole file
    except OSError as exc:
        return result, str(exc)
    return result, None
