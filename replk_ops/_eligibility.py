"""Which plain convolution modules ``convert`` may swap (depthwise, stride 1, zero padding), and
the parameter sharing between them and replk_ops' modules: one rule for ``nn.Conv2d`` and
``nn.Conv3d``."""
from __future__ import annotations

from typing import Optional, Type

from torch import nn

from ._checks import span


def ineligibility(conv: nn.Module, conv_type: Type[nn.Module]) -> Optional[str]:
    """Why ``conv`` is not a depthwise ``conv_type`` replk_ops can run, or None if it is."""
    if not isinstance(conv, conv_type) or type(conv).forward is not conv_type.forward:
        return f"not a plain nn.{conv_type.__name__}"
    if conv.transposed:
        return "transposed convolution"
    if not (conv.groups == conv.in_channels == conv.out_channels):
        return (f"not depthwise (groups={conv.groups}, in_channels={conv.in_channels}, "
                f"out_channels={conv.out_channels})")
    if any(s != 1 for s in conv.stride):
        return f"stride {tuple(conv.stride)} is not 1"
    if conv.padding_mode != "zeros":
        return f"padding_mode {conv.padding_mode!r} is not 'zeros'"
    if isinstance(conv.padding, str) and conv.padding == "same":
        spans = tuple(span(k, d) for k, d in zip(conv.kernel_size, conv.dilation))
        if any(s % 2 == 0 for s in spans):
            return (f"padding 'same' with an even kernel span {spans} (kernel {tuple(conv.kernel_size)}, "
                    f"dilation {tuple(conv.dilation)}) pads asymmetrically")
    return None


def share_parameters(dst: nn.Module, src: nn.Module) -> nn.Module:
    """``dst`` with ``src``'s weight, bias and training mode (so optimizers keep working)."""
    dst.weight = src.weight
    dst.bias = src.bias
    dst.train(src.training)
    return dst


def plain_conv(module: nn.Module, conv_type: Type[nn.Module]) -> nn.Module:
    """The plain ``conv_type`` equivalent to the depthwise ``module``, sharing its parameters."""
    conv = conv_type(module.in_channels, module.out_channels, tuple(module.kernel_size), stride=1,
                     padding=tuple(module.padding), dilation=tuple(module.dilation), groups=module.groups,
                     bias=module.bias is not None, device="meta", dtype=module.weight.dtype)
    return share_parameters(conv, module)
