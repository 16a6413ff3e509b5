"""A 3-D depthwise conv call as the planner sees it: ``Problem``'s counterpart over (D, H, W).

It carries the names the planner and the catalogue read on every problem (device, dtype, layout,
channels, kh, kw, dilated, deterministic, ``kind``) plus ``rank = 3``; a backend that does not
declare rank 3 rejects it (``backends.implementation.Implementation.rejection``).
"""
from __future__ import annotations

from typing import NamedTuple, Tuple

import torch

from ._checks import output_sizes
from ._layout import layout_name
from .problem import SMALL_BATCH, _size_class

Triple = Tuple[int, int, int]


class Problem3d(NamedTuple):
    device: str
    dtype: torch.dtype
    layout: str          # "nchw" (NCDHW) or "channels_last" (channels_last_3d)
    small_batch: bool
    channels: int
    size: Triple         # the input's map (D, H, W)
    kernel: Triple       # (kd, kh, kw)
    padding: Triple
    deterministic: bool
    dilation: Triple = (1, 1, 1)

    rank = 3

    @property
    def device_type(self) -> str:
        return self.device.split(":", 1)[0]

    @property
    def dilated(self) -> bool:
        return self.dilation != (1, 1, 1)

    # the kernel's last two sides, under the names the 2-D catalogue checks read (kernel limits)
    @property
    def kh(self) -> int:
        return self.kernel[1]

    @property
    def kw(self) -> int:
        return self.kernel[2]

    def kernel_words(self) -> str:
        words = f"a {'x'.join(map(str, self.kernel))} kernel"
        return words + (f" with dilation {self.dilation}" if self.dilated else "")

    def map_words(self) -> str:
        return "x".join(map(str, self.size))

    def padding_words(self) -> str:
        return str(self.padding)

    @classmethod
    def of(cls, x: torch.Tensor, kernel: Triple, padding: Triple, dilation: Triple = (1, 1, 1),
           input_size=None) -> "Problem3d":
        """The problem of a call on ``x`` (the input, or for an input gradient the output gradient
        with ``input_size`` the input's map)."""
        size = tuple(input_size) if input_size is not None else tuple(x.shape[2:])
        return cls(str(x.device), x.dtype, layout_name(x), x.shape[0] < SMALL_BATCH, x.shape[1], size,
                   tuple(kernel), tuple(padding), torch.are_deterministic_algorithms_enabled(), tuple(dilation))

    def output_size(self) -> Triple:
        return output_sizes(self.size, self.kernel, self.padding, self.dilation)

    def reach_taps(self) -> int:
        """Taps of the kernel that can touch the map (a kernel wider than the map reaches the map's width)."""
        taps = 1
        for k, n in zip(self.kernel, self.size):
            taps *= min(k, n)
        return taps

    def kind(self, pass_name: str) -> Tuple:
        """What a measurement is remembered for: as ``Problem.kind``, the map rounded up to a power of two."""
        return (3, self.device, pass_name, self.dtype, self.layout, self.small_batch,
                tuple(_size_class(n) for n in self.size), self.kernel, self.padding, self.deterministic,
                self.dilation)


__all__ = ["Problem3d"]
