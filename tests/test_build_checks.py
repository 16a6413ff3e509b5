"""The build checks what it built (setup.py with replk_ops/_probe.py), end to end on a scratch copy
of the project: a compiler that links libstdc++ statically into the extensions (the default g++
of some images does; its replk_ops._C crashed or returned a cut-off algo table on first use) is
passed over before the build, a library that fails its check after the build is rebuilt with the
next compiler, and the package built that way imports, explains and computes."""
import json
import os
import shutil
import subprocess
import sys

import pytest
import torch

from replk_ops import _probe
from conv_testing import HANG_GUARD_S

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
pytestmark = pytest.mark.skipif(shutil.which("g++") is None or sys.platform != "linux", reason="needs g++ on Linux")
LIBRARIES = {"_C": "skipped", "_cpu": "cpu_skipped"}  # each module and where the build records why it left it out
# A user's first hour: import, explain and a call on CPU tensors, and the CUDA extension's table where it loaded.
FIRST_USE = """
import json, torch, torch.nn.functional as F, replk_ops
from replk_ops.backends.cuda import loader as _extension
x, w = torch.randn(1, 4, 16, 16), torch.randn(4, 1, 7, 7)
print(replk_ops.explain(x, w))
torch.testing.assert_close(replk_ops.dwconv2d(x, w), F.conv2d(x, w, None, 1, 3, 1, 4))
if _extension.STATUS.loaded:
    print(len(json.loads(torch.ops.replk_ops_C.algo_table())), "algos")
print("first use: ok")
"""


def _static_gxx(path, only_for: str = "") -> str:
    """A g++ that links libstdc++ into every shared library it links (whose output path contains
    ``only_for``, where given)."""
    path.mkdir(exist_ok=True)
    wrapper = path / f"static-g++{'-' + only_for.strip('_') if only_for else ''}"
    wrapper.write_text(f"""#!/bin/sh
case " $* " in *" -shared "*{only_for}*|*{only_for}*" -shared "*) exec g++ "$@" -static-libstdc++ ;; esac
exec g++ "$@"
""")
    wrapper.chmod(0o755)
    return str(wrapper)


def _project(tmp_path):
    """The project's sources in a scratch folder (no built libraries, no build record)."""
    project = tmp_path / "project"
    project.mkdir()
    for name in ("setup.py", "pyproject.toml", "README.md"):
        shutil.copy(os.path.join(ROOT, name), project / name)
    shutil.copytree(os.path.join(ROOT, "csrc"), project / "csrc")
    shutil.copytree(os.path.join(ROOT, "replk_ops"), project / "replk_ops",
                    ignore=shutil.ignore_patterns("*.so", "*.pyd", "_build_info.json", "__pycache__"))
    return project


def _build(project, **env):
    environment = dict(os.environ, MAX_JOBS="2", TORCH_CUDA_ARCH_LIST="8.0", **env)
    for switch in ("CC", "REPLK_OPS_SKIP_CPU_BUILD", "REPLK_OPS_SKIP_CUDA_BUILD"):
        if switch not in env:
            environment.pop(switch, None)
    done = subprocess.run([sys.executable, "setup.py", "build_ext", "--inplace"], cwd=project, env=environment,
                          capture_output=True, text=True, timeout=HANG_GUARD_S)
    assert done.returncode == 0, done.stderr[-3000:]
    info = json.loads((project / "replk_ops" / "_build_info.json").read_text())
    return done.stderr, info


def _library(project, kind):
    found = list((project / "replk_ops").glob(f"{kind}.*so"))
    return str(found[0]) if found else None


def _first_use(project):
    done = subprocess.run([sys.executable, "-c", FIRST_USE], cwd=project, capture_output=True, text=True,
                          timeout=HANG_GUARD_S)
    assert done.returncode == 0 and "Traceback" not in done.stderr, done.stderr[-3000:]
    assert "first use: ok" in done.stdout
    return done.stdout


def test_a_compiler_linking_libstdcxx_statically_is_passed_over_and_the_package_works(tmp_path):
    project = _project(tmp_path)
    wrapper = _static_gxx(tmp_path / "bin")
    stderr, info = _build(project, CXX=wrapper)
    assert f"not building with {wrapper}: its compiler linked the C++ runtime statically" in stderr
    assert f"not {wrapper}: its compiler linked the C++ runtime statically" in info["compiler"]
    for kind, skipped_key in LIBRARIES.items():
        library = _library(project, kind)
        if library is None:  # left out, and why is recorded (no toolkit, another CUDA major, ...)
            assert info.get(skipped_key), (kind, info)
            continue
        assert _probe.runtime_problem(library) is None, kind
        assert info["checks"][kind]["result"].startswith("ok: "), info["checks"][kind]
    if torch.version.cuda and _library(project, "_C"):
        assert "algos" in _first_use(project)
    else:
        _first_use(project)


def test_a_library_that_fails_its_check_is_rebuilt_with_the_next_compiler(tmp_path):
    project = _project(tmp_path)
    wrapper = _static_gxx(tmp_path / "bin", only_for="_cpu")  # passes the compiler test, not the library check
    stderr, info = _build(project, CXX=wrapper, REPLK_OPS_SKIP_CUDA_BUILD="1")
    assert "replk_ops._cpu is not usable: checked in a child process, it fails: its compiler linked the C++ " \
           "runtime statically" in stderr
    assert "rebuilding replk_ops._cpu with" in stderr
    library = _library(project, "_cpu")
    assert library is not None and _probe.runtime_problem(library) is None
    assert info["checks"]["_cpu"]["result"].startswith("ok: ")
    assert f"not {wrapper}, whose replk_ops._cpu checked in a child process, it fails" in info["compiler"]
    assert "cpu_skipped" not in info and "rejected" not in info
    assert "the compiled CPU kernels replk_ops._cpu run with" in _first_use(project)
