"""Loads the compiled extension ``replk_ops._C`` if it is usable, and records why if it is not.

The package never fails to import because of the extension: a missing build, a build against
another torch (undefined symbols) or a CPU-only torch all leave ``STATUS.loaded`` False with a
reason that ``replk_ops.explain`` reports.

pip hides setup.py's messages unless run with -v, so what the build decided (why it left the
extension out, a compiler mismatch, whether its C++ exceptions raise: _probe.py) is read back from
the build-info file it installs beside this module, and the import checks that it runs the
installed package rather than a source checkout that shadows it (Python run from the checkout's
root imports the checkout).
"""
from __future__ import annotations

import dataclasses
import glob
import importlib
import json
import os
import warnings
from typing import Optional
from urllib.parse import unquote, urlparse

import torch

from . import _probe

PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__))
BUILD_INFO = os.path.join(PACKAGE_DIR, "_build_info.json")
REINSTALL = "`pip install --no-build-isolation -e .` from the checkout"
CPU_NOTE = _probe.CPU_NOTE


@dataclasses.dataclass
class ExtensionStatus:
    loaded: bool
    reason: str
    built_with_torch: str = ""
    cuda_archs: str = ""
    # what the build recorded about its compiler (another GCC than torch's), "" if nothing
    compiler_mismatch: str = ""
    # the exception probe's outcome ("raises", "aborts (signal 6)", "not run: why"; _probe.py),
    # "" where loading stopped before it
    exception_probe: str = ""
    # a probe showed that a C++ exception aborts the process: not used, and the import warns
    unsafe: bool = False
    # a source checkout imported instead of the installed package (which may have the extension)
    shadowed: bool = False

    def note(self) -> str:
        """One line for explain about the extension's build, "" when there is nothing to say."""
        if not self.exception_probe:
            return ""
        if self.unsafe:
            return self.reason
        checked = ("C++ exceptions checked: they raise" if self.exception_probe.startswith(_probe.RAISES)
                   else f"C++ exceptions not checked ({self.exception_probe})")
        built = f"{self.compiler_mismatch}; " if self.compiler_mismatch else ""
        return f"replk_ops._C {built}{checked}; {CPU_NOTE}"


def build_info(path: str = BUILD_INFO) -> dict:
    """What setup.py recorded about the build of this package directory ({} if nothing)."""
    try:
        with open(path) as handle:
            info = json.load(handle)
    except (OSError, ValueError):
        return {}
    return info if isinstance(info, dict) else {}


def _has_built_extension(directory: str) -> bool:
    return bool(glob.glob(os.path.join(directory, "_C.*so")) or glob.glob(os.path.join(directory, "_C*.pyd")))


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


def missing(package_dir: str = PACKAGE_DIR, installed_dir: Optional[str] = None,
            info: Optional[dict] = None) -> ExtensionStatus:
    """The status when ``replk_ops._C`` is absent from ``package_dir``: why, with the fix."""
    installed_dir = _installed_package_dir() if installed_dir is None else installed_dir
    if installed_dir and os.path.realpath(installed_dir) != os.path.realpath(package_dir):
        built = " (with replk_ops._C built)" if _has_built_extension(installed_dir) else ""
        return ExtensionStatus(False, f"Python imported replk_ops from the source tree {package_dir}, not the "
                               f"installed package at {installed_dir}{built}: run Python outside the checkout, or "
                               f"install this checkout with {REINSTALL}", shadowed=True)
    return ExtensionStatus(False, _why_not_built(package_dir, installed_dir, info))


def _why_not_built(package_dir: str, installed_dir: Optional[str], info: Optional[dict]) -> str:
    info = build_info(os.path.join(package_dir, "_build_info.json")) if info is None else info
    if info.get("skipped"):
        return f"the CUDA extension replk_ops._C was not built: {info['skipped']}"
    if _is_source_tree(package_dir):
        state = "was installed in place without a build of" if installed_dir else "was never installed, so it has no"
        return f"the source tree {package_dir} {state} replk_ops._C: build it with {REINSTALL}"
    return "the CUDA extension replk_ops._C is not part of this installation (its build records no reason)"


def _load() -> ExtensionStatus:
    if os.environ.get("REPLK_OPS_DISABLE_CUDA_EXTENSION") == "1":
        return ExtensionStatus(False, "disabled by REPLK_OPS_DISABLE_CUDA_EXTENSION=1")
    try:
        module = importlib.import_module("replk_ops._C")
    except ImportError as exc:
        text = str(exc)
        if "No module named" in text:
            return missing()
        if "undefined symbol" in text:
            return ExtensionStatus(False, f"replk_ops._C was built against another torch than {torch.__version__} "
                                   f"({text.splitlines()[0][:200]}); reinstall with "
                                   "`pip install --no-build-isolation .`")
        return ExtensionStatus(False, f"replk_ops._C failed to load: {text.splitlines()[0][:300]}")
    except OSError as exc:  # e.g. a missing CUDA runtime library
        return ExtensionStatus(False, f"replk_ops._C failed to load: {str(exc).splitlines()[0][:300]}")
    try:
        built_with = torch.ops.replk_ops_C.build_torch_version()
        archs = torch.ops.replk_ops_C.build_cuda_archs()
    except (AttributeError, RuntimeError) as exc:
        return ExtensionStatus(False, f"replk_ops._C loaded but registered no ops ({exc})")
    if built_with.split("+")[0] != torch.__version__.split("+")[0]:
        return ExtensionStatus(False, f"replk_ops._C was built against torch {built_with}, but torch "
                               f"{torch.__version__} is running; reinstall with "
                               "`pip install --no-build-isolation .`", built_with, archs)
    library = os.path.abspath(module.__file__)
    return vetted(library, os.path.join(os.path.dirname(library), "_build_info.json"), built_with, archs)


def vetted(library: str, info_path: str, built_with: str = "", archs: str = "") -> ExtensionStatus:
    """The status of a library that loaded: usable unless its exception probe (recorded by the
    build, else run now and recorded beside it) shows that a C++ exception aborts the process."""
    info = build_info(info_path)
    mismatch = info.get("compiler_mismatch", "")
    result = _probe.recorded(library, info)
    if result is None:  # a build that predates the probe op records "not run: ..."
        result, unrecorded = _probe.probe_and_record(library, info_path)
        if unrecorded:
            result += f" (not recorded: {unrecorded})"
    if not _probe.failed(result):
        return ExtensionStatus(True, "loaded", built_with, archs, mismatch, result)
    built = f" ({mismatch})" if mismatch else ""
    gcc = _probe.gcc_major(torch.__config__.show())
    fix = f"GCC {gcc}, the compiler torch was built with (set CXX=g++-{gcc} CC=gcc-{gcc}, then run" if gcc else \
        "the compiler torch was built with (then run"
    reason = (f"replk_ops._C is not used: a C++ exception thrown inside it {result} instead of raising a "
              f"RuntimeError (checked in a child process){built}. CUDA calls run on the other backends; "
              f"{CPU_NOTE}. To use it, rebuild it with {fix} {REINSTALL})")
    return ExtensionStatus(False, reason, built_with, archs, mismatch, result, unsafe=True)


def warn_at_import(status: ExtensionStatus) -> None:
    """The import warns about what users must act on even if they never call explain: a build
    whose C++ exceptions abort the process, or a checkout shadowing the installed package."""
    if status.unsafe:
        warnings.warn(status.reason, RuntimeWarning, stacklevel=3)
    elif status.shadowed:
        warnings.warn(f"replk_ops: {status.reason}; {CPU_NOTE}", RuntimeWarning, stacklevel=3)


_warned_missing = False


def warn_once_if_missing() -> None:
    """For the first CUDA call: where the extension is not loaded but a GPU is present, warn once
    with the reason (users never see pip's build log, so this is where they learn it)."""
    global _warned_missing
    if _warned_missing or STATUS.loaded or STATUS.shadowed or not torch.cuda.is_available():
        return  # a shadowing checkout was already reported at import
    _warned_missing = True
    warnings.warn(f"replk_ops: the CUDA backend is unavailable, other backends run CUDA calls ({CPU_NOTE}): "
                  f"{STATUS.reason}", RuntimeWarning, stacklevel=3)


STATUS = _load()
warn_at_import(STATUS)
