"""Memory layouts: which one a tensor has, and outputs that keep the caller's."""
from __future__ import annotations

from typing import Tuple

import torch

CHANNELS_LAST = "channels_last"
NCHW = "nchw"


def is_channels_last(t: torch.Tensor) -> bool:
    """Whether ``t`` is laid out channels-innermost; ambiguous layouts count as NCHW."""
    if t.is_contiguous():
        return False
    if t.is_contiguous(memory_format=torch.channels_last):
        return True
    # A strided view: follow the layout of its parent, judged by which stride is smallest.
    return t.stride(1) < t.stride(3)


def layout_name(t: torch.Tensor) -> str:
    return CHANNELS_LAST if is_channels_last(t) else NCHW


def memory_format_of(t: torch.Tensor) -> torch.memory_format:
    return torch.channels_last if is_channels_last(t) else torch.contiguous_format


def dense_strides(shape, memory_format: torch.memory_format) -> Tuple[int, ...]:
    # torch's own rule: a dimension of size 0 strides as if it had size 1.
    n, c, h, w = (max(int(d), 1) for d in shape)
    if memory_format == torch.channels_last:
        return (h * w * c, 1, w * c, c)
    return (c * h * w, h * w, w, 1)


def in_layout(t: torch.Tensor, memory_format: torch.memory_format) -> torch.Tensor:
    """``t`` with exactly the dense strides of ``memory_format`` (what the fake impls promise)."""
    if tuple(t.stride()) == dense_strides(t.shape, memory_format):
        return t
    out = torch.empty(t.shape, dtype=t.dtype, device=t.device, memory_format=memory_format)
    out.copy_(t)
    return out
