"""Loads the compiled extension ``replk_ops._C`` if it is usable, and records why if it is not.

The package never fails to import because of the extension: a missing build, a build against
another torch (undefined symbols) or a CPU-only torch all leave ``STATUS.loaded`` False with a
reason that ``replk_ops.explain`` reports.
"""
from __future__ import annotations

import dataclasses
import importlib
import os

import torch


@dataclasses.dataclass
class ExtensionStatus:
    loaded: bool
    reason: str
    built_with_torch: str = ""
    cuda_archs: str = ""


def _skipped_at_install():
    """Why ``pip install`` left the extension out, as setup.py recorded it, or None."""
    try:
        with open(os.path.join(os.path.dirname(__file__), "_extension_skipped.txt")) as handle:
            return handle.read().strip() or None
    except OSError:
        return None


def _load() -> ExtensionStatus:
    if os.environ.get("REPLK_OPS_DISABLE_CUDA_EXTENSION") == "1":
        return ExtensionStatus(False, "disabled by REPLK_OPS_DISABLE_CUDA_EXTENSION=1")
    try:
        importlib.import_module("replk_ops._C")
    except ImportError as exc:
        text = str(exc)
        if "No module named" in text:
            why = _skipped_at_install() or "no CUDA toolkit or a CPU-only torch at install time"
            return ExtensionStatus(False, f"the CUDA extension replk_ops._C was not built ({why})")
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
    return ExtensionStatus(True, "loaded", built_with, archs)


STATUS = _load()
