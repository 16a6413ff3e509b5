"""``LargeKernelDWConv2d``, a drop-in ``nn.Conv2d`` for depthwise convs, and ``convert``."""
from __future__ import annotations

from typing import Optional

import torch
from torch import nn

from ._checks import PaddingArg, kernel_size_pair, padding_pair
from .catalog import check_backend_name
from .ops import dwconv2d


class LargeKernelDWConv2d(nn.Conv2d):
    """A depthwise ``nn.Conv2d`` (groups == in == out channels, stride 1, dilation 1) that runs on
    replk_ops. Its parameters, state_dict keys and shapes are exactly those of the equivalent
    ``nn.Conv2d``, so checkpoints load both ways."""

    def __init__(
        self,
        channels: int,
        kernel_size,
        bias: bool = True,
        padding: PaddingArg = "same",
        backend: str = "auto",
        device=None,
        dtype=None,
    ):
        if isinstance(channels, bool) or not isinstance(channels, int) or channels < 1:
            raise ValueError(f"channels: expected a positive int, got {channels!r}")
        kernel = kernel_size_pair(kernel_size)
        pad = padding_pair(padding, kernel)
        self.backend = check_backend_name(backend)
        super().__init__(
            channels, channels, kernel, stride=1, padding=pad, dilation=1, groups=channels,
            bias=bias, padding_mode="zeros", device=device, dtype=dtype,
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return dwconv2d(x, self.weight, self.bias, self.padding, backend=self.backend)

    def extra_repr(self) -> str:
        return super().extra_repr() + f", backend={self.backend!r}"

    @staticmethod
    def ineligibility(conv: nn.Module) -> Optional[str]:
        """Why ``conv`` cannot be replaced by a LargeKernelDWConv2d, or None if it can."""
        if not isinstance(conv, nn.Conv2d) or type(conv).forward is not nn.Conv2d.forward:
            return "not a plain nn.Conv2d"
        if conv.transposed:
            return "transposed convolution"
        if not (conv.groups == conv.in_channels == conv.out_channels):
            return (f"not depthwise (groups={conv.groups}, in_channels={conv.in_channels}, "
                    f"out_channels={conv.out_channels})")
        if tuple(conv.stride) != (1, 1):
            return f"stride {tuple(conv.stride)} is not 1"
        if tuple(conv.dilation) != (1, 1):
            return f"dilation {tuple(conv.dilation)} is not 1"
        if conv.padding_mode != "zeros":
            return f"padding_mode {conv.padding_mode!r} is not 'zeros'"
        if isinstance(conv.padding, str):
            kh, kw = conv.kernel_size
            if conv.padding == "same" and (kh % 2 == 0 or kw % 2 == 0):
                return "padding 'same' with an even kernel pads asymmetrically"
        return None

    @classmethod
    def from_conv2d(cls, conv: nn.Conv2d, backend: str = "auto") -> "LargeKernelDWConv2d":
        """A LargeKernelDWConv2d that shares ``conv``'s parameters (so optimizers keep working)."""
        why = cls.ineligibility(conv)
        if why is not None:
            raise ValueError(f"conv: expected an eligible depthwise nn.Conv2d, got one that is {why}: {conv}")
        padding = conv.padding if isinstance(conv.padding, str) else tuple(conv.padding)
        new = cls(
            conv.in_channels, tuple(conv.kernel_size), bias=conv.bias is not None, padding=padding,
            backend=backend, device="meta", dtype=conv.weight.dtype,
        )
        new.weight = conv.weight
        new.bias = conv.bias
        new.train(conv.training)
        return new


def convert(model: nn.Module, min_kernel_size: int = 7, backend: str = "auto") -> int:
    """Replace, in place, every eligible depthwise ``nn.Conv2d`` in ``model`` whose kernel is at
    least ``min_kernel_size`` on either side by a ``LargeKernelDWConv2d`` sharing its parameters.
    Returns how many were replaced; other modules are left alone."""
    if not isinstance(model, nn.Module):
        raise TypeError(f"model: expected an nn.Module, got {type(model).__name__}")
    if isinstance(min_kernel_size, bool) or not isinstance(min_kernel_size, int) or min_kernel_size < 1:
        raise ValueError(f"min_kernel_size: expected a positive int, got {min_kernel_size!r}")
    check_backend_name(backend)
    replaced = 0
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if isinstance(child, LargeKernelDWConv2d) or LargeKernelDWConv2d.ineligibility(child) is not None:
                continue
            if max(child.kernel_size) < min_kernel_size:
                continue
            setattr(parent, name, LargeKernelDWConv2d.from_conv2d(child, backend=backend))
            replaced += 1
    return replaced
