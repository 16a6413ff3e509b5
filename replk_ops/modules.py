"""``LargeKernelDWConv2d``, a drop-in ``nn.Conv2d`` for depthwise convs; ``convert`` and its inverse,
``revert``."""
from __future__ import annotations

from torch import nn

from ._checks import PaddingArg, dilation_pair, kernel_size_pair, padding_pair, span
from ._eligibility import plain_conv, share_parameters
from .catalog import check_backend_name
from .drop_in import DropInConv
from .eager import prepare_call, run_eager
from .modules3d import LargeKernelDWConv3d


class LargeKernelDWConv2d(DropInConv, nn.Conv2d):
    """A depthwise ``nn.Conv2d`` (groups == in == out channels, stride 1, any dilation) that runs on
    replk_ops. Its parameters, state_dict keys and shapes are exactly those of the equivalent
    ``nn.Conv2d``, so checkpoints load both ways."""

    plain_type = nn.Conv2d
    _run_eager = staticmethod(run_eager)
    _prepare_call = staticmethod(prepare_call)

    def __init__(
        self,
        channels: int,
        kernel_size,
        bias: bool = True,
        padding: PaddingArg = "same",
        backend: str = "auto",
        device=None,
        dtype=None,
        dilation=1,
    ):
        if isinstance(channels, bool) or not isinstance(channels, int) or channels < 1:
            raise ValueError(f"channels: expected a positive int, got {channels!r}")
        kernel = kernel_size_pair(kernel_size)
        dil = dilation_pair(dilation)
        pad = padding_pair(padding, kernel, dilation=dil)
        self.backend = check_backend_name(backend)
        super().__init__(
            channels, channels, kernel, stride=1, padding=pad, dilation=dil, groups=channels,
            bias=bias, padding_mode="zeros", device=device, dtype=dtype,
        )

    def to_conv2d(self) -> nn.Conv2d:
        """The equivalent plain ``nn.Conv2d``, sharing this module's parameters."""
        return plain_conv(self, nn.Conv2d)

    @classmethod
    def from_conv(cls, conv: nn.Conv2d, backend: str = "auto") -> "LargeKernelDWConv2d":
        return cls.from_conv2d(conv, backend)

    @classmethod
    def from_conv2d(cls, conv: nn.Conv2d, backend: str = "auto") -> "LargeKernelDWConv2d":
        """A LargeKernelDWConv2d that shares ``conv``'s parameters (so optimizers keep working)."""
        why = cls.ineligibility(conv)
        if why is not None:
            raise ValueError(f"conv: expected an eligible depthwise nn.Conv2d, got one that is {why}: {conv}")
        padding = conv.padding if isinstance(conv.padding, str) else tuple(conv.padding)
        new = cls(
            conv.in_channels, tuple(conv.kernel_size), bias=conv.bias is not None, padding=padding,
            backend=backend, device="meta", dtype=conv.weight.dtype, dilation=tuple(conv.dilation),
        )
        return share_parameters(new, conv)


def _drop_in(child: nn.Module):
    """The replk_ops module class that can replace ``child``, or None."""
    for cls in (LargeKernelDWConv2d, LargeKernelDWConv3d):
        if not isinstance(child, cls) and cls.ineligibility(child) is None:
            return cls
    return None


def convert(model: nn.Module, min_kernel_size: int = 7, backend: str = "auto") -> int:
    """Replace, in place, every eligible depthwise ``nn.Conv2d`` (``nn.Conv3d``) in ``model`` whose
    kernel spans at least ``min_kernel_size`` on any side by a ``LargeKernelDWConv2d``
    (``LargeKernelDWConv3d``) sharing its parameters. Returns how many were replaced; other
    modules are left alone. (PyTorch's CPU conv3d backward is slow at every kernel size: pass
    ``min_kernel_size=3`` for MedNeXt's 3x3x3 convs.)

    A dilated kernel counts by its span (k - 1) * dilation + 1, not its tap count: what makes
    PyTorch's own path slow is the span (its dilated backward is a slow loop whatever the taps), so
    UniRepLKNet's 3x3 branches with dilation 3 to 5 (spans 7 to 11) are converted by default."""
    if not isinstance(model, nn.Module):
        raise TypeError(f"model: expected an nn.Module, got {type(model).__name__}")
    if isinstance(min_kernel_size, bool) or not isinstance(min_kernel_size, int) or min_kernel_size < 1:
        raise ValueError(f"min_kernel_size: expected a positive int, got {min_kernel_size!r}")
    check_backend_name(backend)
    replaced = 0
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            cls = _drop_in(child)
            if cls is None or max(span(k, d) for k, d in zip(child.kernel_size, child.dilation)) < min_kernel_size:
                continue
            setattr(parent, name, cls.from_conv(child, backend=backend))
            replaced += 1
    return replaced


def revert(model: nn.Module) -> int:
    """The inverse of ``convert``: replace, in place, every ``LargeKernelDWConv2d`` and
    ``LargeKernelDWConv3d`` in ``model`` (compat modules included) by the equivalent plain
    ``nn.Conv2d`` (``nn.Conv3d``) sharing its parameters, so the
    model runs, pickles and loads without replk_ops. Returns how many were replaced."""
    if not isinstance(model, nn.Module):
        raise TypeError(f"model: expected an nn.Module, got {type(model).__name__}")
    if isinstance(model, (LargeKernelDWConv2d, LargeKernelDWConv3d)):
        kind = type(model).__name__
        raise TypeError(f"model: expected a model holding {kind} modules, got a {kind} itself, which cannot be "
                        f"replaced in place; use its {'to_conv3d' if model.weight.dim() == 5 else 'to_conv2d'}()")
    replaced = 0
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if isinstance(child, LargeKernelDWConv2d):
                setattr(parent, name, child.to_conv2d())
                replaced += 1
            elif isinstance(child, LargeKernelDWConv3d):
                setattr(parent, name, child.to_conv3d())
                replaced += 1
    return replaced
