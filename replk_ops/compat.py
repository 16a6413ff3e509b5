"""Drop-in replacement for the CUDA extension the RepLKNet, SLaK and UniRepLKNet code bases
import (``depthwise_conv2d_implicit_gemm``), so their unmodified code runs on replk_ops.

    import replk_ops.compat
    replk_ops.compat.install()
    from depthwise_conv2d_implicit_gemm import DepthWiseConv2dImplicitGEMM   # now replk_ops
"""
from __future__ import annotations

import sys
import types

from .modules import LargeKernelDWConv2d

MODULE_NAME = "depthwise_conv2d_implicit_gemm"


class DepthWiseConv2dImplicitGEMM(LargeKernelDWConv2d):
    """The original's constructor, ``(channels, kernel, bias=False)``, with its "same" padding;
    its parameters and state_dict are those of the original (an ``nn.Conv2d``). Unlike the
    original it also runs bf16, channels_last, CPU tensors and non-contiguous gradients."""

    def __init__(self, channels: int, kernel, bias: bool = False):
        super().__init__(channels, kernel, bias=bias, padding="same")


def install() -> types.ModuleType:
    """Make ``import depthwise_conv2d_implicit_gemm`` resolve to replk_ops (idempotent)."""
    module = sys.modules.get(MODULE_NAME)
    if module is None or getattr(module, "__replk_ops__", False) is False:
        module = types.ModuleType(MODULE_NAME, "replk_ops stand-in for the implicit-GEMM depthwise extension")
        module.DepthWiseConv2dImplicitGEMM = DepthWiseConv2dImplicitGEMM
        module.__replk_ops__ = True
        sys.modules[MODULE_NAME] = module
    return module
