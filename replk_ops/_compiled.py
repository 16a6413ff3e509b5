"""The one loader of the package's compiled modules: ``replk_ops._C`` (the CUDA extension) and
``replk_ops._cpu`` (the compiled CPU kernels).

A compiled module is used only once a child process has loaded it and called its ops (_probe.py):
a library that crashes or returns garbage there is never loaded here, and the import warns in one
line. The package never fails to import because of a compiled module: a missing build, a build
against another torch, a checkout that shadows the installed package all leave ``loaded`` False
with a reason that ``replk_ops.explain`` reports, and the other backends run the calls.

pip hides setup.py's messages unless run with -v, so what the build decided (why it left a module
out, which compiler it used and why) is read back from the build-info file it installs beside the
modules.
"""
from __future__ import annotations

import dataclasses
import glob
import importlib
import importlib.util
import json
import os
import warnings
from types import ModuleType
from typing import Callable, Optional
from urllib.parse import unquote, urlparse

import torch

from . import _probe

PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__))
BUILD_INFO = os.path.join(PACKAGE_DIR, "_build_info.json")
REINSTALL = "`pip install --no-build-isolation -e .` from the checkout"  # the one reinstall message


@dataclasses.dataclass(frozen=True)
class CompiledModule:
    name: str                                # "replk_ops._C"
    kind: str                                # the child's check: one of _probe.KINDS
    title: str                               # how messages name it
    skipped_key: str                         # the build-info entry that says why the build left it out
    built_with: Callable[[ModuleType], str]  # the torch version it was built against
    disable_env: str = ""                    # set to 1: never loaded


CUDA_EXTENSION = CompiledModule("replk_ops._C", "_C", "the CUDA extension replk_ops._C", "skipped",
                                lambda module: torch.ops.replk_ops_C.build_torch_version(),
                                "REPLK_OPS_DISABLE_CUDA_EXTENSION")
CPU_KERNELS = CompiledModule("replk_ops._cpu", "_cpu", "the CPU kernel library replk_ops._cpu", "cpu_skipped",
                             lambda module: module.build_torch_version())


@dataclasses.dataclass
class ModuleStatus:
    loaded: bool
    reason: str
    module: Optional[ModuleType] = None
    built_with_torch: str = ""
    compiler: str = ""    # what the build recorded about its compiler, "" if nothing
    check: str = ""       # the child's verdict (_probe.run), "" where loading stopped before it
    unsafe: bool = False  # a library that crashed or returned garbage when checked: never loaded, warned
    shadowed: bool = False  # a source checkout imported instead of the installed package

    def note(self, title: str) -> str:
        """One line for explain about how the module was built and checked, "" if not loaded."""
        if not self.loaded:
            return ""
        built = f" ({self.compiler})" if self.compiler else ""
        checked = f"checked in a child process: {self.check[len(_probe.OK) + 2:]}" if self.check.startswith(
            _probe.OK) else f"not checked ({self.check})"
        return f"{title}{built}: {checked}"


def build_info(path: str = BUILD_INFO) -> dict:
    """What setup.py recorded about the build of a package directory ({} if nothing)."""
    return _probe.read_info(path)


def _has_built(directory: str, spec: CompiledModule) -> bool:
    stem = spec.name.rpartition(".")[2]
    return bool(glob.glob(os.path.join(directory, f"{stem}.*so")) or glob.glob(os.path.join(directory, f"{stem}*.pyd")))


def _installed_package_dir() -> Optional[str]:
    """Where pip installed replk_ops (for an editable install, the checkout's package), or None."""
    try:
        from importlib import metadata

        dist = metadata.distribution("replk_ops")
    except Exception:  # not installed, or broken metadata: nothing to compare with
        return None
    try:
        direct = json.loads(dist.read_text("direct_url.json") or "{}")
    except ValueError:
        direct = {}
    if direct.get("dir_info", {}).get("editable") and direct.get("url", "").startswith("file:"):
        return os.path.join(unquote(urlparse(direct["url"]).path), "replk_ops")
    for entry in dist.files or []:
        if entry.parts[:1] == ("replk_ops",) and entry.name == "__init__.py" and len(entry.parts) == 2:
            return os.path.dirname(os.path.abspath(str(dist.locate_file(entry))))
    return None


def _is_source_tree(directory: str) -> bool:
    return os.path.isfile(os.path.join(os.path.dirname(directory), "setup.py"))


def missing(spec: CompiledModule, package_dir: str = PACKAGE_DIR, installed_dir: Optional[str] = None,
            info: Optional[dict] = None) -> ModuleStatus:
    """The status when ``spec``'s library is absent from ``package_dir``: why, with the fix."""
    installed_dir = _installed_package_dir() if installed_dir is None else installed_dir
    if installed_dir and os.path.realpath(installed_dir) != os.path.realpath(package_dir):
        built = f" (with {spec.name} built)" if _has_built(installed_dir, spec) else ""
        return ModuleStatus(False, f"Python imported replk_ops from the source tree {package_dir}, not the "
                            f"installed package at {installed_dir}{built}: run Python outside the checkout, or "
                            f"install this checkout with {REINSTALL}", shadowed=True)
    info = build_info(os.path.join(package_dir, "_build_info.json")) if info is None else info
    if info.get(spec.skipped_key):
        return ModuleStatus(False, f"{spec.title} was not built: {info[spec.skipped_key]}",
                            unsafe=spec.kind in info.get("rejected", ()))
    if _is_source_tree(package_dir):
        state = "was installed in place without a build of" if installed_dir else "was never installed, so it has no"
        return ModuleStatus(False, f"the source tree {package_dir} {state} {spec.name}: build it with {REINSTALL}")
    return ModuleStatus(False, f"{spec.title} is not part of this installation (its build records no reason)")


def _first_line(text: str, limit: int = 300) -> str:
    return text.splitlines()[0][:limit] if text else ""


def rejection(spec: CompiledModule, verdict: str, compiler: str = "") -> ModuleStatus:
    """The status of a library whose check in a child process failed: never loaded."""
    if "undefined symbol" in verdict or "built against torch" in verdict:
        return ModuleStatus(False, f"{spec.title} was built against another torch than {torch.__version__} "
                            f"({verdict}); reinstall with {REINSTALL}", check=verdict)
    built = f", built {compiler}" if compiler else ""
    gcc = _probe.gcc_major(torch.__config__.show())
    fix = f"CXX=g++-{gcc} CC=gcc-{gcc}, a GCC {gcc} that links libstdc++ as a shared library" if gcc else \
        "the compiler torch was built with"
    reason = (f"{spec.title} is not used: checked in a child process, it {verdict}{built}. The other backends run "
              f"its calls. To use it, rebuild it with {fix}: {REINSTALL}")
    return ModuleStatus(False, reason, check=verdict, compiler=compiler, unsafe=True)


def load(spec: CompiledModule, package_dir: str = PACKAGE_DIR) -> ModuleStatus:
    """Check ``spec``'s library (once per build and torch: the verdict is recorded beside it), then
    import it if the check passed."""
    if spec.disable_env and os.environ.get(spec.disable_env) == "1":
        return ModuleStatus(False, f"disabled by {spec.disable_env}=1")
    try:
        found = importlib.util.find_spec(spec.name)
    except (ImportError, ValueError) as exc:
        return ModuleStatus(False, f"{spec.title} failed to load: {_first_line(str(exc))}")
    if found is None or not found.origin or not os.path.isfile(found.origin):
        return missing(spec, package_dir)
    library = found.origin
    info_path = os.path.join(os.path.dirname(library), "_build_info.json")
    info = build_info(info_path)
    compiler = info.get("compiler", "")
    verdict = _probe.recorded(spec.kind, library, info, torch.__version__)
    if verdict is None:
        verdict, unrecorded = _probe.check_and_record(spec.kind, library, info_path, torch.__version__)
        if unrecorded:
            verdict += f" (not recorded: {unrecorded})"
    if not _probe.usable(verdict):
        return rejection(spec, verdict, compiler)
    try:
        module = importlib.import_module(spec.name)
        built_with = spec.built_with(module)
    except ImportError as exc:
        text = _first_line(str(exc))
        if "undefined symbol" in text:
            return ModuleStatus(False, f"{spec.title} was built against another torch than {torch.__version__} "
                                f"({text[:200]}); reinstall with {REINSTALL}")
        return ModuleStatus(False, f"{spec.title} failed to load: {text}")
    except Exception as exc:  # a stale or foreign build: the package must import regardless
        return ModuleStatus(False, f"{spec.title} is unusable ({type(exc).__name__}: {_first_line(str(exc))}); "
                            f"reinstall with {REINSTALL}")
    if built_with.split("+")[0] != torch.__version__.split("+")[0]:
        return ModuleStatus(False, f"{spec.title} was built against torch {built_with}, but torch "
                            f"{torch.__version__} is running; reinstall with {REINSTALL}", built_with_torch=built_with)
    return ModuleStatus(True, "loaded", module, built_with, compiler, verdict)


def warn_at_import(status: ModuleStatus, shadowed_too: bool = True) -> None:
    """One line at import for what users must act on even if they never call explain: a library
    that crashed or returned garbage when checked, or a checkout shadowing the installed package
    (said once, by the CUDA extension's loader: ``shadowed_too``)."""
    if status.unsafe or (shadowed_too and status.shadowed):
        warnings.warn(f"replk_ops: {status.reason}", RuntimeWarning, stacklevel=3)
