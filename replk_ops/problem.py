"""A depthwise conv call as the planner sees it: a small value with no tensors.

``Problem`` is what a plan is cached for and what every implementation's ``rejection`` reads;
``Problem.kind`` is what a measurement is remembered for (docs/design.md, "Planner").
"""
from __future__ import annotations

import math
from typing import NamedTuple, Tuple

import torch

from ._checks import output_size
from ._layout import layout_name

# Batches below this are planned (and measured) apart from larger ones: at batch 1 the per-call
# costs weigh more than the arithmetic.
SMALL_BATCH = 16


class Problem(NamedTuple):
    """A depthwise conv call as the planner sees it: no tensors, only what decides the choice."""

    device: str
    dtype: torch.dtype
    layout: str          # "nchw" or "channels_last"
    small_batch: bool    # batch below SMALL_BATCH
    channels: int
    height: int          # the input's map
    width: int
    kh: int
    kw: int
    ph: int
    pw: int
    deterministic: bool
    dh: int = 1          # dilation
    dw: int = 1

    rank = 2  # spatial dimensions (problem3d.Problem3d has 3)

    @property
    def device_type(self) -> str:
        return self.device.split(":", 1)[0]

    @property
    def dilation(self) -> Tuple[int, int]:
        return (self.dh, self.dw)

    @property
    def dilated(self) -> bool:
        return self.dilation != (1, 1)

    @property
    def rank(self) -> int:
        """The convolution's rank (2-D): what an implementation's ``ranks`` is checked against."""
        return 2

    def map_words(self) -> str:
        return f"{self.height}x{self.width}"

    def padding_words(self) -> str:
        return f"({self.ph}, {self.pw})"

    def kernel_words(self) -> str:
        return f"a {self.kh}x{self.kw} kernel" + (f" with dilation ({self.dh}, {self.dw})" if self.dilated else "")

    @classmethod
    def of(cls, x: torch.Tensor, kh: int, kw: int, ph: int, pw: int, input_hw=None,
           dilation: Tuple[int, int] = (1, 1)) -> "Problem":
        """The problem of a call on ``x`` (the input, or for an input gradient the output gradient
        with ``input_hw`` the input's map)."""
        height, width = input_hw if input_hw is not None else (x.shape[2], x.shape[3])
        return cls(str(x.device), x.dtype, layout_name(x), x.shape[0] < SMALL_BATCH, x.shape[1], height, width,
                   kh, kw, ph, pw, torch.are_deterministic_algorithms_enabled(), dilation[0], dilation[1])

    def output_hw(self) -> Tuple[int, int]:
        return output_size(self.height, self.width, self.kh, self.kw, self.ph, self.pw, self.dilation)

    def kind(self, pass_name: str) -> Tuple:
        """What a measurement is remembered for: not the batch size (only whether it is below
        SMALL_BATCH) nor the channel count, and the map rounded up to a power of two, so a new
        batch size measures again at most once."""
        return (self.device, pass_name, self.dtype, self.layout, self.small_batch, _size_class(self.height),
                _size_class(self.width), self.kh, self.kw, self.ph, self.pw, self.deterministic, self.dh, self.dw)


def _size_class(size: int) -> int:
    return 1 << max(0, math.ceil(math.log2(max(size, 1))))


__all__ = ["Problem", "SMALL_BATCH"]
