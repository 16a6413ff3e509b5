"""Argument validation for 3-D depthwise convs: the 2-D checks (``_checks``) over three spatial
axes, plus the 32-bit size limit of the libraries the 3-D routes run on.

Every check raises before any kernel runs, naming the argument, what was expected and what was given.
"""
from __future__ import annotations

from typing import Optional, Tuple, Union

import torch

from ._checks import check_conv_nd_args, int_tuple, output_sizes, padding_tuple

Triple = Tuple[int, int, int]
PaddingArg3d = Union[str, int, Triple]
DIMS = ("D", "H", "W")
# oneDNN and cuDNN take tensor sizes and offsets as 32-bit ints: a tensor with more elements than
# this is refused up front rather than failing (or overflowing) inside them.
MAX_ELEMENTS = 2**31 - 1


def _positive_triple(value, argument: str, what: str) -> Triple:
    triple = int_tuple(value, 3, argument, "an int or three ints")
    if min(triple) < 1:
        raise ValueError(f"{argument}: expected {what} >= 1, got {triple}")
    return triple


def kernel_size_triple(kernel_size, argument: str = "kernel_size") -> Triple:
    return _positive_triple(kernel_size, argument, "sizes")


def dilation_triple(dilation, argument: str = "dilation") -> Triple:
    return _positive_triple(dilation, argument, "dilations")


def padding_triple(padding: PaddingArg3d, kernel: Triple, dilation: Triple = (1, 1, 1),
                   argument: str = "padding") -> Triple:
    """"same" (odd spans), "valid", an int or (pd, ph, pw) as (pd, ph, pw)."""
    return padding_tuple(padding, kernel, argument, dilation, "(pd, ph, pw)")


def check_conv3d_args(x: torch.Tensor, weight: torch.Tensor, bias: Optional[torch.Tensor], padding: Triple,
                      dilation: Triple) -> None:
    """Validate a 3-D depthwise conv call; ``padding`` and ``dilation`` must already be triples."""
    check_conv_nd_args(x, weight, bias, padding, dilation, DIMS)
    out = (x.shape[0], x.shape[1]) + output_sizes(x.shape[2:], weight.shape[2:], padding, dilation)
    padded = (x.shape[0], x.shape[1]) + tuple(n + 2 * p for n, p in zip(x.shape[2:], padding))
    for name, shape in (("x", tuple(x.shape)), ("x padded", padded), ("the output", out)):
        elements = 1
        for d in shape:
            elements *= d
        if elements > MAX_ELEMENTS:
            raise ValueError(
                f"x: expected at most {MAX_ELEMENTS} elements in {name} (the 3-D routes run on libraries that "
                f"index with 32-bit integers), got {elements} for shape {shape}; split the batch")


__all__ = ["PaddingArg3d", "kernel_size_triple", "dilation_triple", "padding_triple", "check_conv3d_args",
           "MAX_ELEMENTS"]
