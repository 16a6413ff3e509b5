"""What ``pip install`` decides about the CUDA extension, run from a scratch copy of setup.py so
the checkout's own build state is never touched: a toolkit it cannot use leaves the extension
out (the rest installs) and records why, a compiler of another GCC version than torch's is
recorded too (whether the library it built works: tests/test_compiled_checks.py and
tests/test_build_checks.py), and the import and ``replk_ops.explain`` then report what was
recorded (pip shows none of setup.py's output without -v)."""
import glob
import importlib.util
import inspect
import json
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import warnings

import pytest
import torch

from replk_ops import _compiled
from replk_ops.backends.cuda import loader as _extension
from conv_testing import HANG_GUARD_S

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _setup_helpers():
    """setup.py as a module (it builds only when run as __main__), for its toolkit search."""
    spec = importlib.util.spec_from_file_location("replk_ops_setup", os.path.join(ROOT, "setup.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _fake_toolkit(path, release: str) -> str:
    """A CUDA_HOME whose nvcc reports ``release`` (enough for setup.py's checks)."""
    os.makedirs(os.path.join(path, "bin"))
    os.makedirs(os.path.join(path, "include"))
    open(os.path.join(path, "include", "cuda_runtime.h"), "w").close()
    nvcc = os.path.join(path, "bin", "nvcc")
    with open(nvcc, "w") as handle:
        handle.write(f"#!/bin/sh\necho 'Cuda compilation tools, release {release}, V{release}.0'\n")
    os.chmod(nvcc, 0o755)
    return str(path)


def _run_setup(tmp_path, **env):
    project = tmp_path / "project"
    (project / "replk_ops").mkdir(parents=True)
    shutil.copy(os.path.join(ROOT, "setup.py"), project / "setup.py")
    shutil.copy(os.path.join(ROOT, "replk_ops", "_probe.py"), project / "replk_ops" / "_probe.py")  # setup.py loads it
    environment = dict(os.environ, **env)
    for switch in ("REPLK_OPS_SKIP_CUDA_BUILD", "REPLK_OPS_SKIP_CPU_BUILD"):
        if switch not in env:
            environment.pop(switch, None)
    result = subprocess.run([sys.executable, "setup.py", "--name"], cwd=project, env=environment,
                            capture_output=True, text=True, timeout=HANG_GUARD_S)
    assert result.returncode == 0, result.stderr
    info = project / "replk_ops" / "_build_info.json"
    return result.stderr, json.loads(info.read_text()) if info.exists() else {}


@pytest.mark.skipif(torch.version.cuda is None,
                    reason="a CPU-only torch: setup.py leaves the extension out before it compares CUDA versions")
def test_toolkit_of_another_cuda_major_installs_without_the_extension(tmp_path):
    torch_major = int(torch.version.cuda.split(".")[0])
    other = f"{torch_major + 1}.0"
    home = _fake_toolkit(tmp_path / "cuda", other)
    stderr, info = _run_setup(tmp_path, CUDA_HOME=home)
    note = info.get("skipped")
    assert note is not None, stderr
    assert f"CUDA {other}" in note and f"built with CUDA {torch.version.cuda}" in note, note
    assert "installing without the CUDA extension" in stderr


def test_skip_switch_is_recorded(tmp_path):
    stderr, info = _run_setup(tmp_path, REPLK_OPS_SKIP_CUDA_BUILD="1")
    assert info["skipped"] == "REPLK_OPS_SKIP_CUDA_BUILD=1 was set at install time"


def test_cpu_kernels_skip_switch_is_recorded_and_explained(tmp_path, monkeypatch):
    stderr, info = _run_setup(tmp_path, REPLK_OPS_SKIP_CUDA_BUILD="1", REPLK_OPS_SKIP_CPU_BUILD="1")
    assert info["cpu_skipped"] == "REPLK_OPS_SKIP_CPU_BUILD=1 was set at install time"
    assert "installing without the compiled CPU kernels" in stderr
    # what the import says then: the recorded reason, where the module is missing
    status = _compiled.missing(_compiled.CPU_KERNELS, _compiled.PACKAGE_DIR, installed_dir=_compiled.PACKAGE_DIR,
                               info=info)
    assert not status.loaded and not status.unsafe
    assert status.reason == "the CPU kernel library replk_ops._cpu was not built: REPLK_OPS_SKIP_CPU_BUILD=1 was " \
                            "set at install time"


def _fake_gcc(path, major: int) -> str:
    """A compiler that answers --version and -dumpversion like GCC ``major``."""
    path.mkdir()
    cxx = path / "g++"
    cxx.write_text(f"#!/bin/sh\ncase \"$1\" in -dumpversion) echo {major};; *) echo 'g++ (GCC) {major}.1.0'; "
                   "echo 'Copyright (C) Free Software Foundation, Inc.';; esac\n")
    cxx.chmod(0o755)
    return str(cxx)


def test_a_compiler_that_cannot_build_is_passed_over_and_the_one_used_is_recorded(tmp_path):
    """The build picks its compiler by building a tiny shared library with each candidate (CXX
    first, then GCCs of torch's version, then the system's) and records which it used and why."""
    cxx = _fake_gcc(tmp_path / "bin", 13)  # answers like GCC but builds nothing
    stderr, info = _run_setup(tmp_path, CXX=cxx)
    if "compiler" not in info:
        pytest.skip(f"nothing to build here: {info}")
    assert f"not building with {cxx}: it cannot build a shared library" in stderr
    assert info["compiler"].startswith("with /") and f"not {cxx}: it cannot build a shared library" in info["compiler"]
    torch_gcc = re.search(r"GCC (\d+)", torch.__config__.show())
    if torch_gcc and f"(GCC {torch_gcc.group(1)})" not in info["compiler"]:
        assert f"torch's is GCC {torch_gcc.group(1)}" in info["compiler"]  # another GCC: said, not warned
    assert "warning" not in stderr


def test_explain_reports_why_the_install_left_the_extension_out():
    status = _compiled.missing(_compiled.CUDA_EXTENSION, _compiled.PACKAGE_DIR, installed_dir=_compiled.PACKAGE_DIR,
                               info={"skipped": "the CUDA toolkit at /x is CUDA 13.0"})
    assert not status.loaded and not status.shadowed
    assert status.reason == "the CUDA extension replk_ops._C was not built: the CUDA toolkit at /x is CUDA 13.0"


def _package(root, built: bool):
    """A package directory named replk_ops under ``root``, with or without a built _C."""
    package = root / "replk_ops"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("")
    if built:
        (package / "_C.cpython-311-x86_64-linux-gnu.so").write_bytes(b"")
    return str(package)


def test_a_checkout_shadowing_the_installed_package_is_named_with_the_fix(tmp_path):
    checkout = _package(tmp_path / "checkout", built=False)
    (tmp_path / "checkout" / "setup.py").write_text("")
    installed = _package(tmp_path / "site-packages", built=True)
    status = _compiled.missing(_compiled.CUDA_EXTENSION, checkout, installed_dir=installed, info={})
    assert status.shadowed and not status.loaded
    assert f"imported replk_ops from the source tree {checkout}, not the installed package at {installed} " \
           "(with replk_ops._C built)" in status.reason
    assert "run Python outside the checkout" in status.reason
    assert "pip install --no-build-isolation -e ." in status.reason


def test_a_checkout_without_a_build_says_how_to_build_it(tmp_path):
    checkout = _package(tmp_path / "checkout", built=False)
    (tmp_path / "checkout" / "setup.py").write_text("")
    never = _compiled.missing(_compiled.CUDA_EXTENSION, checkout, installed_dir="", info={})
    assert "was never installed" in never.reason and "pip install --no-build-isolation -e ." in never.reason
    in_place = _compiled.missing(_compiled.CUDA_EXTENSION, checkout, installed_dir=checkout, info={})
    assert not in_place.shadowed
    assert "installed in place without a build of replk_ops._C" in in_place.reason


def test_the_editable_install_is_found_from_its_metadata(monkeypatch, tmp_path):
    class Dist:
        files = []

        def read_text(self, name):
            return json.dumps({"url": f"file://{tmp_path}/my%20checkout", "dir_info": {"editable": True}})

    from importlib import metadata

    monkeypatch.setattr(metadata, "distribution", lambda name: Dist())
    assert _compiled._installed_package_dir() == os.path.join(str(tmp_path), "my checkout", "replk_ops")


def test_a_missing_extension_warns_once_on_a_gpu_machine(monkeypatch):
    monkeypatch.setattr(_extension, "STATUS", _compiled.ModuleStatus(False, "no CUDA toolkit (nvcc) was found"))
    monkeypatch.setattr(_extension, "_warned_missing", False)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    with pytest.warns(RuntimeWarning,
                      match="CUDA backend is unavailable.*CPU tensors never use replk_ops._C.*no CUDA toolkit"):
        _extension.warn_once_if_missing()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        _extension.warn_once_if_missing()  # only once


def test_no_warning_without_a_gpu(monkeypatch):
    monkeypatch.setattr(_extension, "STATUS", _compiled.ModuleStatus(False, "no CUDA toolkit (nvcc) was found"))
    monkeypatch.setattr(_extension, "_warned_missing", False)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        _extension.warn_once_if_missing()


@pytest.mark.skipif(_extension.STATUS.loaded, reason="replk_ops._C was built against this torch and loaded")
@pytest.mark.skipif(torch.version.cuda is None, reason="a CPU-only torch: the extension is never built against it")
def test_cpp_sources_compile_against_this_torch():
    """Where the install left the extension out (CI's oldest stack: torch 2.4's CUDA 12 against a
    CUDA 13 toolkit), its C++ sources must still compile against this torch's headers, so a user
    with a matching toolkit gets a build. The CUDA files include no torch header."""
    from torch.utils import cpp_extension

    cxx, cuda_home = shutil.which("g++"), _setup_helpers().find_cuda_home()
    if cxx is None or cuda_home is None:
        pytest.skip("needs g++ and a CUDA toolkit's headers")
    # the language standard torch's own extension builds use
    std = "c++20" if "-std=c++20" in inspect.getsource(cpp_extension) else "c++17"
    torch_include = os.path.join(os.path.dirname(torch.__file__), "include")
    flags = [f"-std={std}", "-fsyntax-only", f"-D_GLIBCXX_USE_CXX11_ABI={int(torch._C._GLIBCXX_USE_CXX11_ABI)}",
             "-DTORCH_EXTENSION_NAME=_C", '-DREPLK_OPS_CUDA_ARCHS="8.0"',
             f"-I{torch_include}", f"-I{os.path.join(torch_include, 'torch', 'csrc', 'api', 'include')}",
             f"-I{os.path.join(cuda_home, 'include')}", f"-I{sysconfig.get_paths()['include']}",
             f"-I{os.path.join(ROOT, 'csrc', 'cuda')}"]
    sources = sorted(glob.glob(os.path.join(ROOT, "csrc", "cuda", "*.cpp")))
    assert sources
    for source in sources:
        done = subprocess.run([cxx, *flags, source], capture_output=True, text=True, timeout=HANG_GUARD_S)
        where = f"{os.path.basename(source)} against torch {torch.__version__}"
        assert done.returncode == 0, f"{where}:\n{done.stderr[-3000:]}"
