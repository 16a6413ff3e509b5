"""What ``pip install`` decides about the CUDA extension, run from a scratch copy of setup.py so
the checkout's own build state is never touched: a toolkit it cannot use leaves the extension
out (the rest installs) and records why, and ``replk_ops.explain`` then reports that reason."""
import glob
import importlib.util
import inspect
import os
import shutil
import subprocess
import sys
import sysconfig

import pytest
import torch

from replk_ops import _extension

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
    environment = dict(os.environ, **env)
    if "REPLK_OPS_SKIP_CUDA_BUILD" not in env:
        environment.pop("REPLK_OPS_SKIP_CUDA_BUILD", None)
    result = subprocess.run([sys.executable, "setup.py", "--name"], cwd=project, env=environment,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    note = project / "replk_ops" / "_extension_skipped.txt"
    return result.stderr, note.read_text().strip() if note.exists() else None


@pytest.mark.skipif(torch.version.cuda is None,
                    reason="a CPU-only torch: setup.py leaves the extension out before it compares CUDA versions")
def test_toolkit_of_another_cuda_major_installs_without_the_extension(tmp_path):
    torch_major = int(torch.version.cuda.split(".")[0])
    other = f"{torch_major + 1}.0"
    home = _fake_toolkit(tmp_path / "cuda", other)
    stderr, note = _run_setup(tmp_path, CUDA_HOME=home)
    assert note is not None, stderr
    assert f"CUDA {other}" in note and f"built with CUDA {torch.version.cuda}" in note, note
    assert "installing without the CUDA extension" in stderr


def test_skip_switch_is_recorded(tmp_path):
    stderr, note = _run_setup(tmp_path, REPLK_OPS_SKIP_CUDA_BUILD="1")
    assert note == "REPLK_OPS_SKIP_CUDA_BUILD=1 was set at install time"


def test_explain_reports_why_the_install_left_the_extension_out(monkeypatch):
    def missing(name):
        raise ModuleNotFoundError(f"No module named '{name}'")

    monkeypatch.setattr(_extension.importlib, "import_module", missing)
    monkeypatch.setattr(_extension, "_skipped_at_install", lambda: "the CUDA toolkit at /x is CUDA 13.0, but ...")
    status = _extension._load()
    assert not status.loaded
    assert "was not built (the CUDA toolkit at /x is CUDA 13.0" in status.reason


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
             f"-I{os.path.join(ROOT, 'csrc')}"]
    sources = sorted(glob.glob(os.path.join(ROOT, "csrc", "*.cpp")))
    assert sources
    for source in sources:
        done = subprocess.run([cxx, *flags, source], capture_output=True, text=True, timeout=600)
        where = f"{os.path.basename(source)} against torch {torch.__version__}"
        assert done.returncode == 0, f"{where}:\n{done.stderr[-3000:]}"
