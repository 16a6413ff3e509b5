"""Is a compiled module of this package safe to load? Checked in a child process, never guessed.

A library can load and still be unusable: built by a compiler that links its own copy of the C++
runtime (``-static-libstdc++``), replk_ops._C crashed in the number formatting of its first call,
and one built with another GCC than torch's can abort where a C++ exception should raise. So the
build, and the first import that finds no verdict for a library on disk, loads the library in a
child process and calls each of its ops that needs no GPU: the algo table must parse and list
every pass, the exception probe must raise a RuntimeError, the CPU kernels must match a
reference on a tiny call. A crash kills only the child. The verdict is recorded in the build-info
file beside the library, keyed to that library and to the torch it ran with, so a rebuild or
another torch checks again. ``needed_libraries`` reads an ELF file's dynamic section: the build
also requires a shared C++ runtime there.

Standard library only: setup.py loads this file by path before the package can be imported, and
the child process runs it by path so that it never imports the package it checks.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import struct
import subprocess
import sys
from typing import List, Optional

KEY = "checks"      # the build-info entry: {module kind: {fingerprint..., "torch": ..., "result": ...}}
OK = "ok"           # every result that lets the library be used starts with this
TIMEOUT_S = 300     # a child that imports torch on a busy machine: generous
SHARED_CXX_RUNTIMES = ("libstdc++.so", "libc++.so")
# What the catalogue reads from each row of the CUDA extension's algo table, and its passes.
ALGO_ROW_KEYS = {"pass": str, "algo": str, "dtypes": list, "min_cc": int, "verified_on_gpu": bool, "auto": bool,
                 "auto_min_side": int, "max_kernel": int, "description": str}
PASSES = ("fwd", "bwd_input", "bwd_weight")
# The child's exit codes besides 0 (every check passed) and death by a signal (a crash).
CANNOT_LOAD, CHECK_FAILED = 2, 5
KINDS = ("_C", "_cpu")


def gcc_major(torch_config: str) -> Optional[int]:
    """The GCC major version in ``torch.__config__.show()``'s text, or None."""
    match = re.search(r"GCC (\d+)", torch_config)
    return int(match.group(1)) if match else None


def needed_libraries(path: str) -> Optional[List[str]]:
    """The DT_NEEDED entries of the ELF shared library at ``path``, or None if it is not ELF."""
    try:
        with open(path, "rb") as handle:
            data = handle.read()
    except OSError:
        return None
    if data[:4] != b"\x7fELF" or data[4] not in (1, 2) or data[5] not in (1, 2):
        return None
    wide, order = data[4] == 2, "<" if data[5] == 1 else ">"
    try:
        if wide:
            shoff, = struct.unpack_from(order + "Q", data, 0x28)
            shentsize, shnum = struct.unpack_from(order + "HH", data, 0x3A)
            section, entry = order + "IIQQQQIIQQ", order + "qQ"
        else:
            shoff, = struct.unpack_from(order + "I", data, 0x20)
            shentsize, shnum = struct.unpack_from(order + "HH", data, 0x2E)
            section, entry = order + "IIIIIIIIII", order + "iI"
        sections = [struct.unpack_from(section, data, shoff + i * shentsize) for i in range(shnum)]
        needed = []
        for _, kind, _, _, offset, size, link, _, _, _ in sections:
            if kind != 6:  # SHT_DYNAMIC
                continue
            strings = sections[link][4]
            for at in range(offset, offset + size, struct.calcsize(entry)):
                tag, value = struct.unpack_from(entry, data, at)
                if tag == 0:  # DT_NULL
                    break
                if tag == 1:  # DT_NEEDED
                    end = data.index(b"\0", strings + value)
                    needed.append(data[strings + value:end].decode())
        return needed
    except (struct.error, IndexError, ValueError):
        return None


def runtime_problem(library: str) -> Optional[str]:
    """Why ``library`` must not be used for its C++ runtime, or None: a library that lists no
    shared C++ runtime carries its own copy, whose streams and locale are not the ones torch set up."""
    needed = needed_libraries(library)
    if needed is None or sys.platform != "linux":
        return None  # not an ELF file: nothing to read (the child's checks still run)
    if any(name.startswith(SHARED_CXX_RUNTIMES) for name in needed):
        return None
    return "its compiler linked the C++ runtime statically (the library lists no libstdc++.so.6 among its " \
           "dynamic dependencies)"


# --- the child process: python _probe.py KIND LIBRARY ---------------------------------------------

def check_algo_table(text) -> str:
    """A summary of the CUDA extension's algo table ``text``; ValueError for anything the catalogue
    could not read (cut off, a row without its keys, a pass without an algo)."""
    if not isinstance(text, str):
        raise ValueError(f"algo_table returned {type(text).__name__}, not str")
    rows = json.loads(text)  # json.JSONDecodeError is a ValueError
    if not isinstance(rows, list) or not rows:
        raise ValueError("the algo table is empty")
    for row in rows:
        if not isinstance(row, dict):
            raise ValueError(f"an algo table row is {type(row).__name__}, not an object")
        for key, kind in ALGO_ROW_KEYS.items():
            if not isinstance(row.get(key), kind):
                raise ValueError(f"algo table row {row.get('algo')!r} has no {kind.__name__} {key!r}")
    missing = [name for name in PASSES if not any(row["pass"] == name for row in rows)]
    if missing:
        raise ValueError(f"the algo table lists no algo for {', '.join(missing)}")
    return f"{len(rows)} algos"


def _step(name: str) -> None:
    print(f"step: {name}", flush=True)  # the last one names the check where a crash happened


def _check_cuda_extension(torch, library: str) -> str:
    torch.ops.load_library(library)
    ops = torch.ops.replk_ops_C
    _step("build_torch_version")
    built = ops.build_torch_version()
    if built.split("+")[0] != torch.__version__.split("+")[0]:
        raise ValueError(f"built against torch {built}, but torch {torch.__version__} is running")
    _step("algo_table")
    summary = check_algo_table(ops.algo_table())
    _step("exception_probe")
    try:
        ops.exception_probe()
    except RuntimeError:
        pass
    except Exception as exc:
        raise ValueError(f"a C++ exception raised {type(exc).__name__}, not RuntimeError") from None
    else:
        raise ValueError("the exception probe returned without raising")
    return f"{summary}, C++ exceptions raise"


def _check_cpu_kernels(torch, library: str) -> str:
    import importlib.util

    spec = importlib.util.spec_from_file_location("replk_ops._cpu", library)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    _step("build_torch_version")
    built = module.build_torch_version()
    if built.split("+")[0] != torch.__version__.split("+")[0]:
        raise ValueError(f"built against torch {built}, but torch {torch.__version__} is running")
    _step("forward")
    x = torch.linspace(-1, 1, 2 * 3 * 5 * 6, dtype=torch.float64).reshape(2, 3, 5, 6)
    weight = torch.linspace(1, -1, 3 * 3 * 3, dtype=torch.float64).reshape(3, 1, 3, 3)
    out = torch.full_like(x, float("nan"))
    want = torch.nn.functional.conv2d(x, weight, None, 1, 1, 1, 3)
    if not module.forward(x, weight, torch.empty(0, dtype=x.dtype), out, 1, 1, 1, 1) or \
            not torch.allclose(out, want, rtol=0, atol=1e-12):
        raise ValueError("a 3x3 forward on a 2x3x5x6 input does not match torch's conv2d")
    _step("weight_grad")
    grad_weight = torch.full_like(weight, float("nan"))
    want_weight = torch.nn.grad.conv2d_weight(x, weight.shape, want, 1, 1, 1, 3)
    if not module.weight_grad(want, x, grad_weight, 1, 1, 1, 1) or \
            not torch.allclose(grad_weight, want_weight, rtol=1e-12, atol=1e-12):
        raise ValueError("a 3x3 weight gradient does not match torch's")
    return f"a tiny forward and weight gradient match torch's, {module.instruction_set()}"


def _child(kind: str, library: str) -> int:
    try:  # a crash is a possible outcome: no core file in the caller's directory
        import resource

        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    except (ImportError, ValueError, OSError):
        pass
    try:
        import torch

        _step("load")
        check = _check_cuda_extension if kind == "_C" else _check_cpu_kernels
    except Exception as exc:
        print(f"cannot load: {type(exc).__name__}: {str(exc).splitlines()[0][:300] if str(exc) else ''}")
        return CANNOT_LOAD
    try:
        summary = check(torch, library)
    except (ImportError, OSError) as exc:
        print(f"cannot load: {type(exc).__name__}: {str(exc).splitlines()[0][:300] if str(exc) else ''}")
        return CANNOT_LOAD
    except Exception as exc:
        print(f"fails: {type(exc).__name__}: {str(exc).splitlines()[0][:300] if str(exc) else ''}")
        return CHECK_FAILED
    print(f"{OK}: {summary}")
    return 0


# --- the parent ------------------------------------------------------------------------------------

# Runs this file as the child without putting its folder (the package, whose modules would shadow
# top-level names) or the working directory on sys.path.
_BOOTSTRAP = "import runpy, sys; del sys.path[0]; sys.argv = sys.argv[1:]; runpy.run_path(sys.argv[0], run_name='__main__')"

def run(kind: str, library: str, timeout: float = TIMEOUT_S) -> str:
    """Check ``library`` (a module of ``kind``, "_C" or "_cpu") in a child process: "ok: what
    passed", "crashes (signal N) in STEP", "fails: why", "cannot load: why" or "not run: why"."""
    try:
        done = subprocess.run([sys.executable, "-c", _BOOTSTRAP, os.path.abspath(__file__), kind, library],
                              capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return f"not run: the child process took over {timeout:.0f} s"
    except OSError as exc:
        return f"not run: {exc}"
    lines = done.stdout.strip().splitlines()
    steps = [line[len("step: "):] for line in lines if line.startswith("step: ")]
    said = next((line for line in reversed(lines) if not line.startswith("step: ")), "")
    if done.returncode < 0:
        return f"crashes (signal {-done.returncode}) in {steps[-1] if steps else 'its start'}"
    if done.returncode in (0, CANNOT_LOAD, CHECK_FAILED) and said:
        return said
    return f"not run: the child process exited with code {done.returncode} ({said or done.stderr.strip()[-300:]})"


def usable(result: str) -> bool:
    """Whether a check's outcome lets the library be used (a check that never ran does too: the
    child could not start, which says nothing against the library)."""
    return result.startswith((OK, "not run"))


def read_info(path: str) -> dict:
    """A build-info file's contents ({} if there is none, or it is not a JSON object)."""
    try:
        with open(path) as handle:
            info = json.load(handle)
    except (OSError, ValueError):
        return {}
    return info if isinstance(info, dict) else {}


def _fingerprint(library: str, with_hash: bool = True) -> dict:
    stat = os.stat(library)
    found = {"library": os.path.basename(library), "size": stat.st_size, "mtime_ns": stat.st_mtime_ns}
    if with_hash:
        with open(library, "rb") as handle:
            found["sha256"] = hashlib.sha256(handle.read()).hexdigest()
    return found


def recorded(kind: str, library: str, info: dict, torch_version: str) -> Optional[str]:
    """The outcome recorded in ``info`` for this very library under this torch, or None."""
    entries = info.get(KEY)
    entry = entries.get(kind) if isinstance(entries, dict) else None
    if not isinstance(entry, dict) or "result" not in entry or entry.get("torch") != torch_version:
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


def check_and_record(kind: str, library: str, info_path: str, torch_version: str,
                     timeout: float = TIMEOUT_S) -> tuple:
    """(outcome, None) after checking ``library`` and recording the outcome in ``info_path``, or
    (outcome, why it was not recorded). A check that did not run is not recorded: the next import
    tries again."""
    result = runtime_problem(library)
    result = f"fails: {result}" if result else run(kind, library, timeout)
    if result.startswith("not run"):
        return result, "it did not run"
    info = read_info(info_path)
    entries = info.get(KEY) if isinstance(info.get(KEY), dict) else {}
    try:
        entries[kind] = dict(_fingerprint(library), torch=torch_version, result=result)
        info[KEY] = entries
        scratch = f"{info_path}.{os.getpid()}.tmp"
        with open(scratch, "w") as handle:
            json.dump(info, handle, indent=1)
        os.replace(scratch, info_path)  # atomic: concurrent first imports each write a whole file
    except OSError as exc:
        return result, str(exc)
    return result, None


if __name__ == "__main__":
    if len(sys.argv) != 3 or sys.argv[1] not in KINDS:
        sys.exit(f"usage: python {os.path.basename(__file__)} {{{','.join(KINDS)}}} LIBRARY")
    sys.exit(_child(sys.argv[1], sys.argv[2]))
