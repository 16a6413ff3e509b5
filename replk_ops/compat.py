"""Drop-in replacement for the CUDA extension the RepLKNet, SLaK and UniRepLKNet code bases
import (``depthwise_conv2d_implicit_gemm``), so their unmodified code runs on replk_ops.

    import replk_ops.compat
    replk_ops.compat.install()
    from depthwise_conv2d_implicit_gemm import DepthWiseConv2dImplicitGEMM   # now replk_ops

The official RepLKNet ``merge_kernel`` asks its ``get_conv2d`` for the merged conv with the stride
as the tuple ``(1, 1)``, which that function compares with ``1``, so it builds a plain ``nn.Conv2d``
and the speedup would be lost after ``structural_reparam()``. ``install()`` also keeps the fast path
there: see ``_keep_fast_path_after_reparam``.
"""
from __future__ import annotations

import sys
import types

from typing import Optional

from torch import nn

from .modules import LargeKernelDWConv2d

MODULE_NAME = "depthwise_conv2d_implicit_gemm"


class DepthWiseConv2dImplicitGEMM(LargeKernelDWConv2d):
    """The original's constructor, ``(channels, kernel, bias=False)``, with its "same" padding;
    its parameters and state_dict are those of the original (an ``nn.Conv2d``). Unlike the
    original it also runs bf16, channels_last, CPU tensors and non-contiguous gradients."""

    def __init__(self, channels: int, kernel, bias: bool = False):
        super().__init__(channels, kernel, bias=bias, padding="same")


def _keep_fast_path_after_reparam(parent: nn.Module, name: str, submodule) -> Optional[nn.Module]:
    """A module registration hook: a plain depthwise ``nn.Conv2d`` registered under a new name into
    a module that holds a stand-in conv of the same channels and kernel size is the official
    reparam's merged conv; it is replaced by a ``LargeKernelDWConv2d`` sharing its parameters, before the official
    code copies the merged kernel into it (through the attribute, so into the replacement)."""
    if type(submodule) is not nn.Conv2d or LargeKernelDWConv2d.ineligibility(submodule) is not None:
        return None
    if name in parent._modules:
        return None  # a slot refilled on purpose (replk_ops.revert, a user's swap): not a merge
    for module in parent.modules():
        if (isinstance(module, DepthWiseConv2dImplicitGEMM) and module.in_channels == submodule.in_channels
                and tuple(module.kernel_size) == tuple(submodule.kernel_size)):
            return LargeKernelDWConv2d.from_conv2d(submodule, backend=module.backend)
    return None


_reparam_hook = None


def install() -> types.ModuleType:
    """Make ``import depthwise_conv2d_implicit_gemm`` resolve to replk_ops, and keep the fast path
    through the official code's ``structural_reparam()`` (idempotent)."""
    global _reparam_hook
    if _reparam_hook is None:
        _reparam_hook = nn.modules.module.register_module_module_registration_hook(_keep_fast_path_after_reparam)
    module = sys.modules.get(MODULE_NAME)
    if module is None or getattr(module, "__replk_ops__", False) is False:
        module = types.ModuleType(MODULE_NAME, "replk_ops stand-in for the implicit-GEMM depthwise extension")
        module.DepthWiseConv2dImplicitGEMM = DepthWiseConv2dImplicitGEMM
        module.__replk_ops__ = True
        sys.modules[MODULE_NAME] = module
    return module
