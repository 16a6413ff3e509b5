"""Memory layouts: which one a tensor has, and outputs that keep the caller's. A 5-D (3-D conv)
tensor's channels-innermost layout is ``torch.channels_last_3d``; it goes by the same name here."""
from __future__ import annotations

from typing import Tuple

import torch

CHANNELS_LAST = "channels_last"
NCHW = "nchw"


def _channels_last_format(t: torch.Tensor) -> torch.memory_format:
    return torch.channels_last_3d if t.dim() == 5 else torch.channels_last


def is_channels_last(t: torch.Tensor) -> bool:
    """Whether ``t`` is laid out channels-innermost; ambiguous layouts count as NCHW (NCDHW)."""
    if t.is_contiguous():
        return False
    if t.is_contiguous(memory_format=_channels_last_format(t)):
        return True
    # A strided view: follow the layout of its parent, judged by which stride is smallest.
    return t.stride(1) < t.stride(-1)


def layout_name(t: torch.Tensor) -> str:
    return CHANNELS_LAST if is_channels_last(t) else NCHW


def memory_format_of(t: torch.Tensor) -> torch.memory_format:
    return _channels_last_format(t) if is_channels_last(t) else torch.contiguous_format


def dense_strides(shape, memory_format: torch.memory_format) -> Tuple[int, ...]:
    # torch's own rule: a dimension of size 0 strides as if it had size 1.
    n, c, *spatial = (max(int(d), 1) for d in shape)
    if memory_format in (torch.channels_last, torch.channels_last_3d):
        inner = [c]  # strides of the spatial dims, innermost first, then the batch's
        for d in reversed(spatial):
            inner.append(inner[-1] * d)
        return (inner[-1], 1) + tuple(reversed(inner[:-1]))
    strides = [1]
    for d in reversed([c] + spatial):
        strides.append(strides[-1] * d)
    return tuple(reversed(strides))


def in_layout(t: torch.Tensor, memory_format: torch.memory_format) -> torch.Tensor:
    """``t`` with exactly the dense strides of ``memory_format`` (what the fake impls promise)."""
    if tuple(t.stride()) == dense_strides(t.shape, memory_format):
        return t
    out = torch.empty(t.shape, dtype=t.dtype, device=t.device, memory_format=memory_format)
    out.copy_(t)
    return out
