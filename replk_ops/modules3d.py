"""``LargeKernelDWConv3d``, a drop-in ``nn.Conv3d`` for depthwise convs (``convert`` and ``revert``
in modules.py swap them)."""
from __future__ import annotations

from torch import nn

from ._checks3d import PaddingArg3d, dilation_triple, kernel_size_triple, padding_triple
from ._eligibility import plain_conv, share_parameters
from .catalog import check_backend_name
from .drop_in import DropInConv
from .eager3d import prepare_call3d, run_eager3d


class LargeKernelDWConv3d(DropInConv, nn.Conv3d):
    """A depthwise ``nn.Conv3d`` (groups == in == out channels, stride 1, any dilation) that runs on
    replk_ops. Its parameters, state_dict keys and shapes are exactly those of the equivalent
    ``nn.Conv3d``, so checkpoints load both ways."""

    plain_type = nn.Conv3d
    _run_eager = staticmethod(run_eager3d)
    _prepare_call = staticmethod(prepare_call3d)

    def __init__(self, channels: int, kernel_size, bias: bool = True, padding: PaddingArg3d = "same",
                 backend: str = "auto", device=None, dtype=None, dilation=1):
        if isinstance(channels, bool) or not isinstance(channels, int) or channels < 1:
            raise ValueError(f"channels: expected a positive int, got {channels!r}")
        kernel = kernel_size_triple(kernel_size)
        dil = dilation_triple(dilation)
        pad = padding_triple(padding, kernel, dil)
        self.backend = check_backend_name(backend)
        super().__init__(channels, channels, kernel, stride=1, padding=pad, dilation=dil, groups=channels,
                         bias=bias, padding_mode="zeros", device=device, dtype=dtype)

    def to_conv3d(self) -> nn.Conv3d:
        """The equivalent plain ``nn.Conv3d``, sharing this module's parameters."""
        return plain_conv(self, nn.Conv3d)

    @classmethod
    def from_conv(cls, conv: nn.Conv3d, backend: str = "auto") -> "LargeKernelDWConv3d":
        """A LargeKernelDWConv3d that shares ``conv``'s parameters (so optimizers keep working)."""
        why = cls.ineligibility(conv)
        if why is not None:
            raise ValueError(f"conv: expected an eligible depthwise nn.Conv3d, got one that is {why}: {conv}")
        padding = conv.padding if isinstance(conv.padding, str) else tuple(conv.padding)
        new = cls(conv.in_channels, tuple(conv.kernel_size), bias=conv.bias is not None, padding=padding,
                  backend=backend, device="meta", dtype=conv.weight.dtype, dilation=tuple(conv.dilation))
        return share_parameters(new, conv)

    from_conv3d = from_conv


__all__ = ["LargeKernelDWConv3d"]
