"""Every compiled module is checked before it is used (replk_ops/_probe.py, _compiled.py): a child
process loads the library and calls its ops that need no GPU; a library that crashes, returns
garbage or carries its own C++ runtime is never loaded, the build retries with another compiler,
and where none works the package installs without it and says why. The end-to-end test builds
the package with a compiler that links libstdc++ statically (as some distributions' default g++
does): the algo table of such a build came back cut off at its first number."""
import json
import os
import shutil
import subprocess
import sys
import warnings

import pytest
import torch

import replk_ops
from replk_ops import _compiled, _probe, catalog
from replk_ops.backends.cuda import loader as _extension
from replk_ops.backends import cpp
from replk_ops.problem import Problem
from conv_testing import HANG_GUARD_S

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
needs_extension = pytest.mark.skipif(not _extension.STATUS.loaded, reason=f"replk_ops._C: {_extension.STATUS.reason}")
needs_cpp = pytest.mark.skipif(cpp.UNAVAILABLE is not None, reason=str(cpp.UNAVAILABLE))
needs_gxx = pytest.mark.skipif(shutil.which("g++") is None or sys.platform != "linux", reason="needs g++ on Linux")
TORCH = torch.__version__


def _fake_library(tmp_path, name="_C.fake.so"):
    """Any file does where the child is replaced: only its fingerprint is recorded."""
    library = tmp_path / name
    library.write_bytes(b"not a library")
    return str(library)


def _child_that(monkeypatch, code: str):
    """Make the check's child process run ``code`` instead of the checks."""
    monkeypatch.setattr(_probe, "_BOOTSTRAP", code)


# --- the checks themselves -------------------------------------------------------------------------

def test_an_algo_table_cut_off_at_its_first_number_is_refused():
    whole = json.dumps([{"pass": name, "algo": "direct", "dtypes": ["float32"], "min_cc": 70,
                         "verified_on_gpu": True, "auto": True, "auto_min_side": 0, "max_kernel": 63,
                         "description": "d"} for name in _probe.PASSES])
    assert _probe.check_algo_table(whole) == "3 algos"
    cut = whole[:whole.index('"min_cc": ') + len('"min_cc": ')]  # what a static-libstdc++ build returned
    with pytest.raises(ValueError):
        _probe.check_algo_table(cut)
    rows = json.loads(whole)
    with pytest.raises(ValueError, match="no int 'min_cc'"):
        _probe.check_algo_table(json.dumps([dict(rows[0], min_cc="70")] + rows[1:]))
    with pytest.raises(ValueError, match="no algo for bwd_weight"):
        _probe.check_algo_table(json.dumps(rows[:2]))
    with pytest.raises(ValueError, match="not str"):
        _probe.check_algo_table(b"[]")


@needs_extension
def test_the_built_extension_passes_every_check_in_a_child_process():
    import replk_ops._C

    assert _probe.runtime_problem(replk_ops._C.__file__) is None
    assert "libstdc++.so.6" in _probe.needed_libraries(replk_ops._C.__file__)
    verdict = _probe.run("_C", replk_ops._C.__file__, timeout=HANG_GUARD_S)
    assert verdict.startswith("ok: ") and "C++ exceptions raise" in verdict, verdict
    with pytest.raises(RuntimeError, match="exception probe: this RuntimeError is expected"):
        torch.ops.replk_ops_C.exception_probe()


@needs_cpp
def test_the_built_cpu_kernels_pass_their_check_in_a_child_process():
    import replk_ops._cpu

    verdict = _probe.run("_cpu", replk_ops._cpu.__file__, timeout=HANG_GUARD_S)
    assert verdict.startswith("ok: a tiny forward and weight gradient match"), verdict


@needs_gxx
def test_a_library_with_its_own_cxx_runtime_is_named(tmp_path):
    source = tmp_path / "lib.cpp"
    source.write_text("#include <string>\nstd::string f(long n) { return std::to_string(n); }\n")
    for flags, problem in (([], False), (["-static-libstdc++"], True)):
        library = str(tmp_path / f"lib{len(flags)}.so")
        subprocess.run(["g++", "-shared", "-fPIC", str(source), "-o", library] + flags, check=True,
                       timeout=HANG_GUARD_S)
        assert ("libstdc++.so.6" not in _probe.needed_libraries(library)) == problem
        assert (_probe.runtime_problem(library) is not None) == problem
    assert _probe.needed_libraries(str(source)) is None  # not ELF: nothing to read


def test_a_crash_names_the_step_and_the_library_is_never_loaded(tmp_path, monkeypatch):
    library, info_path = _fake_library(tmp_path), str(tmp_path / "_build_info.json")
    _child_that(monkeypatch, "import os; print('step: load'); print('step: algo_table', flush=True); os.abort()")
    verdict, unrecorded = _probe.check_and_record("_C", library, info_path, TORCH, timeout=HANG_GUARD_S)
    assert (verdict, unrecorded) == ("crashes (signal 6) in algo_table", None)
    assert not _probe.usable(verdict)
    status = _compiled.rejection(_compiled.CUDA_EXTENSION, verdict, "with g++ (GCC 13)")
    assert not status.loaded and status.unsafe
    assert "the CUDA extension replk_ops._C is not used: checked in a child process, it crashes (signal 6) in " \
           "algo_table, built with g++ (GCC 13)" in status.reason
    assert "pip install --no-build-isolation -e ." in status.reason
    with pytest.warns(RuntimeWarning, match=r"replk_ops: the CUDA extension replk_ops._C is not used"):
        _compiled.warn_at_import(status)
    # recorded, for this library and this torch only
    info = json.loads(open(info_path).read())
    assert _probe.recorded("_C", library, info, TORCH) == verdict
    assert _probe.recorded("_C", library, info, "0.0.0") is None
    assert _probe.recorded("_cpu", library, info, TORCH) is None
    # CUDA calls go to the other backends, and explain says why
    monkeypatch.setattr(_extension, "STATUS", status)
    problem = Problem("cuda:0", torch.float32, "nchw", True, 4, 16, 16, 7, 7, 3, 3, False)
    assert catalog.by_name("cuda").rejection(problem, "fwd") == status.reason


def test_garbage_and_a_foreign_torch_are_told_apart(tmp_path, monkeypatch):
    library, info_path = _fake_library(tmp_path), str(tmp_path / "_build_info.json")
    _child_that(monkeypatch, "print('fails: JSONDecodeError: Expecting value: line 1 column 83'); raise SystemExit(5)")
    verdict, _ = _probe.check_and_record("_C", library, info_path, TORCH, timeout=HANG_GUARD_S)
    assert verdict == "fails: JSONDecodeError: Expecting value: line 1 column 83"
    assert _compiled.rejection(_compiled.CUDA_EXTENSION, verdict).unsafe
    foreign = "cannot load: ImportError: _C.so: undefined symbol: _ZN3c10"
    status = _compiled.rejection(_compiled.CPU_KERNELS, foreign)
    assert not status.unsafe and f"was built against another torch than {TORCH}" in status.reason


def test_a_check_that_cannot_run_is_not_recorded_and_does_not_block(tmp_path, monkeypatch):
    library, info_path = _fake_library(tmp_path), str(tmp_path / "_build_info.json")
    _child_that(monkeypatch, "raise SystemExit(7)")
    verdict, unrecorded = _probe.check_and_record("_C", library, info_path, TORCH, timeout=HANG_GUARD_S)
    assert verdict.startswith("not run: the child process exited with code 7") and unrecorded
    assert _probe.usable(verdict) and not os.path.exists(info_path)


def test_the_record_is_keyed_to_the_library(tmp_path):
    """A copy of the library (a wheel's install) keeps its record; a rebuilt one is checked again."""
    library = _fake_library(tmp_path)
    info = {_probe.KEY: {"_C": dict(_probe._fingerprint(library), torch=TORCH, result="ok: 15 algos")}}
    copy = tmp_path / "installed" / os.path.basename(library)
    copy.parent.mkdir()
    shutil.copy(library, copy)
    os.utime(copy, ns=(1, 1))
    assert _probe.recorded("_C", str(copy), info, TORCH) == "ok: 15 algos"
    copy.write_bytes(b"not a library, rebuilt")
    assert _probe.recorded("_C", str(copy), info, TORCH) is None
    assert _probe.recorded("_C", library, {}, TORCH) is None


@needs_extension
def test_explain_says_how_the_extension_was_checked():
    assert "checked in a child process: " in _extension.note() and _extension.CPU_NOTE in _extension.note()
    assert f"note: {_extension.note()}" in str(replk_ops.explain(torch.randn(1, 4, 16, 16), torch.randn(4, 1, 7, 7)))


def test_import_in_a_fresh_process_prints_no_warning():
    done = subprocess.run([sys.executable, "-c", "import replk_ops"], cwd=ROOT, capture_output=True, text=True,
                          timeout=HANG_GUARD_S)
    assert done.returncode == 0, done.stderr
    if _extension.STATUS.shadowed or _extension.STATUS.unsafe:
        pytest.skip(f"this machine has something to warn about: {_extension.STATUS.reason}")
    assert "replk_ops" not in done.stderr, done.stderr  # (torch's own import warnings, if any, are not ours)
