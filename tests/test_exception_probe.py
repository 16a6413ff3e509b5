"""Whether a C++ exception thrown inside replk_ops._C raises or aborts is checked, not guessed: a
child process calls the extension's exception_probe op once per build (replk_ops/_probe.py), the
outcome is recorded beside the library, only an abort warns (and then the extension is not used),
and explain reports the outcome."""
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import warnings

import pytest
import torch

import replk_ops
from replk_ops import _extension, _probe, catalog
from replk_ops.planner import Problem
from conv_testing import HANG_GUARD_S

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
needs_probe_op = pytest.mark.skipif(
    not _extension.STATUS.loaded or not hasattr(torch.ops.replk_ops_C, "exception_probe"),
    reason=f"replk_ops._C with its exception_probe op is not loaded: {_extension.STATUS.reason}")
ABORT = "import os, resource; resource.setrlimit(resource.RLIMIT_CORE, (0, 0)); os.abort()"
RAISE = "raise SystemExit(0)"  # what the child reports when the op raised


def _library():
    import replk_ops._C

    return replk_ops._C.__file__


def _fake_library(tmp_path):
    """Any file does where the child's code is replaced: only its fingerprint is recorded."""
    library = tmp_path / "_C.fake.so"
    library.write_bytes(b"not a library")
    return str(library)


@needs_probe_op
def test_the_probe_op_raises_a_runtime_error_in_process():
    with pytest.raises(RuntimeError, match="exception probe: this RuntimeError is expected"):
        torch.ops.replk_ops_C.exception_probe()


@needs_probe_op
def test_the_child_process_probe_records_that_exceptions_raise(tmp_path):
    info_path = tmp_path / "_build_info.json"
    info_path.write_text(json.dumps({"compiler_mismatch": "built with GCC 12 (c++) vs torch's GCC 13"}))
    result, unrecorded = _probe.probe_and_record(_library(), str(info_path), timeout=HANG_GUARD_S)
    assert (result, unrecorded) == (_probe.RAISES, None)
    info = json.loads(info_path.read_text())
    assert info["compiler_mismatch"] == "built with GCC 12 (c++) vs torch's GCC 13"  # kept
    assert _probe.recorded(_library(), info) == _probe.RAISES


def test_the_record_is_keyed_to_the_library(tmp_path):
    """A copy of the library (a wheel's install) keeps its record; a rebuilt one is probed again."""
    library = _fake_library(tmp_path)
    info = {_probe.KEY: dict(_probe._fingerprint(library), result=_probe.RAISES)}
    copy = tmp_path / "installed" / os.path.basename(library)
    copy.parent.mkdir()
    shutil.copy(library, copy)
    os.utime(copy, ns=(1, 1))
    assert _probe.recorded(str(copy), info) == _probe.RAISES
    copy.write_bytes(b"not a library, rebuilt")
    assert _probe.recorded(str(copy), info) is None
    assert _probe.recorded(library, {}) is None


def test_a_probe_that_aborts_warns_and_the_extension_is_not_used(tmp_path, monkeypatch):
    library, info_path = _fake_library(tmp_path), str(tmp_path / "_build_info.json")
    monkeypatch.setattr(_probe, "CHILD", ABORT)
    status = _extension.vetted(library, info_path)
    assert not status.loaded and status.unsafe
    assert status.exception_probe == "aborts (signal 6)"
    assert "a C++ exception thrown inside it aborts (signal 6) instead of raising" in status.reason
    assert "CPU tensors never use the extension" in status.reason
    gcc = _probe.gcc_major(torch.__config__.show())
    if gcc is not None:
        assert f"CXX=g++-{gcc} CC=gcc-{gcc}" in status.reason
    # recorded: the next import does not probe again
    monkeypatch.setattr(_probe, "CHILD", RAISE)
    assert _extension.vetted(library, info_path).exception_probe == "aborts (signal 6)"
    with pytest.warns(RuntimeWarning, match=r"replk_ops._C is not used: .* aborts \(signal 6\)"):
        _extension.warn_at_import(status)
    # CUDA calls go to the other backends, and explain says why
    monkeypatch.setattr(_extension, "STATUS", status)
    problem = Problem("cuda:0", torch.float32, "nchw", True, 4, 16, 16, 7, 7, 3, 3, False)
    assert catalog.by_name("cuda").rejection(problem, "fwd") == status.reason
    assert f"note: {status.reason}" in str(replk_ops.explain(torch.randn(1, 4, 16, 16), torch.randn(4, 1, 7, 7)))


def test_a_compiler_mismatch_whose_exceptions_raise_is_a_note_not_a_warning(tmp_path, monkeypatch):
    library, info_path = _fake_library(tmp_path), tmp_path / "_build_info.json"
    info_path.write_text(json.dumps({"compiler_mismatch": "built with GCC 12 (c++) vs torch's GCC 13"}))
    monkeypatch.setattr(_probe, "CHILD", RAISE)
    status = _extension.vetted(library, str(info_path))
    assert status.loaded and not status.unsafe
    assert status.note() == ("replk_ops._C built with GCC 12 (c++) vs torch's GCC 13; C++ exceptions checked: "
                             "they raise; CPU tensors never use the extension")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        _extension.warn_at_import(status)


def test_a_probe_that_cannot_run_is_reported_without_a_warning(tmp_path, monkeypatch):
    monkeypatch.setattr(_probe, "CHILD", "print('AttributeError: no exception_probe'); raise SystemExit(2)")
    status = _extension.vetted(_fake_library(tmp_path), str(tmp_path / "_build_info.json"))
    assert status.loaded and status.exception_probe == "not run: AttributeError: no exception_probe"
    assert "C++ exceptions not checked (not run: AttributeError: no exception_probe)" in status.note()


def _setup_module():
    spec = importlib.util.spec_from_file_location("replk_ops_setup", os.path.join(ROOT, "setup.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("child,expected", [(RAISE, "C++ exceptions thrown inside replk_ops._C: raises"),
                                            (ABORT, "warning: a C++ exception thrown inside")])
def test_the_build_probes_what_it_built_and_records_it_beside_it(tmp_path, capsys, child, expected):
    setup = _setup_module()
    setup.probe.CHILD = child
    library = _fake_library(tmp_path)
    setup.report_probe(library)
    assert expected in capsys.readouterr().err
    info = json.loads((tmp_path / "_build_info.json").read_text())
    assert _probe.recorded(library, info) == ("raises" if child == RAISE else "aborts (signal 6)")


def test_import_in_a_fresh_process_prints_no_warning():
    done = subprocess.run([sys.executable, "-c", "import replk_ops"], cwd=ROOT, capture_output=True, text=True,
                          timeout=HANG_GUARD_S)
    assert done.returncode == 0, done.stderr
    if _extension.STATUS.shadowed or _extension.STATUS.unsafe:
        pytest.skip(f"this machine has something to warn about: {_extension.STATUS.reason}")
    assert "replk_ops" not in done.stderr, done.stderr  # (torch's own import warnings, if any, are not ours)
