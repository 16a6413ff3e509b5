"""Argument validation shared by the functional API, the ops and the modules.

Every check raises before any kernel runs, with a message that names the argument, what was
expected and what was given.
"""
from __future__ import annotations

import os
from typing import Optional, Tuple, Union

import torch

PaddingArg = Union[str, int, Tuple[int, int]]

# What the GPU kernels compute (half precision accumulates in float32) ...
GPU_DTYPES = (torch.float32, torch.float16, torch.bfloat16)
# ... and what the package accepts: float64 too, on PyTorch's own paths.
SUPPORTED_DTYPES = GPU_DTYPES + (torch.float64,)


def _describe_tensor(t: torch.Tensor) -> str:
    return f"shape {tuple(t.shape)}, dtype {t.dtype}, device {t.device}"


def env_switch(name: str) -> bool:
    """A 0/1 environment variable that defaults to on; ValueError naming it for any other value."""
    value = os.environ.get(name, "").strip()
    if value not in ("", "0", "1"):
        raise ValueError(f"environment variable {name}: expected 0 or 1, got {value!r}")
    return value != "0"


def _int_pair(value, argument: str, expected: str) -> Tuple[int, int]:
    """An int or a pair of ints (bools excluded) as a pair; TypeError naming ``argument`` else."""
    is_int = lambda v: isinstance(v, int) and not isinstance(v, bool)  # noqa: E731
    if is_int(value):
        return (int(value), int(value))
    if isinstance(value, (tuple, list)) and len(value) == 2 and all(is_int(v) for v in value):
        return (int(value[0]), int(value[1]))
    raise TypeError(f"{argument}: expected {expected}, got {value!r}")


def kernel_size_pair(kernel_size, argument: str = "kernel_size") -> Tuple[int, int]:
    pair = _int_pair(kernel_size, argument, "an int or a pair of ints")
    if pair[0] < 1 or pair[1] < 1:
        raise ValueError(f"{argument}: expected sizes >= 1, got {pair}")
    return pair


def dilation_pair(dilation, argument: str = "dilation") -> Tuple[int, int]:
    pair = _int_pair(dilation, argument, "an int or a pair of ints")
    if pair[0] < 1 or pair[1] < 1:
        raise ValueError(f"{argument}: expected dilations >= 1, got {pair}")
    return pair


def span(kernel: int, dilation: int) -> int:
    """How many input rows (or columns) one output pixel reads: (k - 1) * d + 1."""
    return (kernel - 1) * dilation + 1


def padding_pair(padding: PaddingArg, kernel: Tuple[int, int], argument: str = "padding",
                 dilation: Tuple[int, int] = (1, 1)) -> Tuple[int, int]:
    """Turn "same", an int or (ph, pw) into (ph, pw) for a kernel of size ``kernel`` applied with
    ``dilation``."""
    sh, sw = span(kernel[0], dilation[0]), span(kernel[1], dilation[1])
    if isinstance(padding, str):
        if padding == "same":
            if sh % 2 == 0 or sw % 2 == 0:
                raise ValueError(
                    f"{argument}: \"same\" needs odd kernel sizes (odd spans (k - 1) * dilation + 1), got spans "
                    f"({sh}, {sw}) for "
                    f"kernel size {tuple(kernel)} and dilation {tuple(dilation)}; pass explicit padding instead"
                )
            return (sh // 2, sw // 2)
        if padding == "valid":
            return (0, 0)
        raise ValueError(f"{argument}: expected \"same\", \"valid\", an int or (ph, pw), got {padding!r}")
    pair = _int_pair(padding, argument, "\"same\", an int or (ph, pw)")
    if pair[0] < 0 or pair[1] < 0:
        raise ValueError(f"{argument}: expected non-negative padding, got {pair}")
    return pair


def check_dtype(t: torch.Tensor, argument: str) -> None:
    if t.dtype not in SUPPORTED_DTYPES:
        names = ", ".join(str(d) for d in SUPPORTED_DTYPES)
        raise TypeError(f"{argument}: expected a floating-point dtype ({names}), got {t.dtype}")


def check_conv_args(
    x: torch.Tensor, weight: torch.Tensor, bias: Optional[torch.Tensor], padding: Tuple[int, int],
    dilation: Tuple[int, int] = (1, 1),
) -> None:
    """Validate a depthwise conv call; ``padding`` and ``dilation`` must already be pairs."""
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"x: expected a torch.Tensor, got {type(x).__name__}")
    if not isinstance(weight, torch.Tensor):
        raise TypeError(f"weight: expected a torch.Tensor, got {type(weight).__name__}")
    if bias is not None and not isinstance(bias, torch.Tensor):
        raise TypeError(f"bias: expected a torch.Tensor or None, got {type(bias).__name__}")
    if x.dim() != 4:
        raise ValueError(f"x: expected a 4-D (N, C, H, W) tensor, got {_describe_tensor(x)}")
    check_dtype(x, "x")
    check_dtype(weight, "weight")
    if weight.dtype != x.dtype:
        raise TypeError(f"weight: expected dtype {x.dtype} (the dtype of x), got {weight.dtype}")
    channels = x.shape[1]
    if weight.dim() != 4 or weight.shape[0] != channels or weight.shape[1] != 1:
        raise ValueError(
            f"weight: expected shape ({channels}, 1, kh, kw) for x with {channels} channels, "
            f"got {tuple(weight.shape)}"
        )
    if weight.shape[2] < 1 or weight.shape[3] < 1:
        raise ValueError(f"weight: expected kernel sizes >= 1, got {tuple(weight.shape[2:])}")
    if bias is not None:
        check_dtype(bias, "bias")
        if bias.dtype != x.dtype:
            raise TypeError(f"bias: expected dtype {x.dtype} (the dtype of x), got {bias.dtype}")
        if bias.dim() != 1 or bias.shape[0] != channels:
            raise ValueError(f"bias: expected shape ({channels},), got {tuple(bias.shape)}")
    for name, t in (("weight", weight), ("bias", bias)):
        if t is not None and t.device != x.device:
            raise RuntimeError(f"{name}: expected a tensor on {x.device} (the device of x), got {t.device}")
    ph, pw = padding
    if ph < 0 or pw < 0:
        raise ValueError(f"padding: expected non-negative padding, got {padding}")
    dilation_pair(dilation)
    out_h, out_w = output_size(x.shape[2], x.shape[3], weight.shape[2], weight.shape[3], ph, pw, dilation)
    if out_h < 1 or out_w < 1:
        spans = tuple(span(k, d) for k, d in zip(weight.shape[2:], dilation))
        raise ValueError(
            f"padding: input {tuple(x.shape[2:])} with padding ({ph}, {pw}) is smaller than the kernel's span "
            f"{spans} (kernel {tuple(weight.shape[2:])}, dilation {tuple(dilation)}); the output would be "
            f"{out_h}x{out_w}"
        )


def output_size(h: int, w: int, kh: int, kw: int, ph: int, pw: int,
                dilation: Tuple[int, int] = (1, 1)) -> Tuple[int, int]:
    """The output map of a stride-1 conv: the padded input less the kernel's span, plus one."""
    return (h + 2 * ph - span(kh, dilation[0]) + 1, w + 2 * pw - span(kw, dilation[1]) + 1)


def input_size(out_h: int, out_w: int, kh: int, kw: int, ph: int, pw: int,
               dilation: Tuple[int, int] = (1, 1)) -> Tuple[int, int]:
    """The input map whose output is (out_h, out_w): the inverse of ``output_size`` (stride 1)."""
    return (out_h - 2 * ph + span(kh, dilation[0]) - 1, out_w - 2 * pw + span(kw, dilation[1]) - 1)
