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


def int_tuple(value, length: int, argument: str, expected: str) -> Tuple[int, ...]:
    """An int or ``length`` ints (bools excluded) as a tuple of ``length``; TypeError naming
    ``argument`` else."""
    is_int = lambda v: isinstance(v, int) and not isinstance(v, bool)  # noqa: E731
    if is_int(value):
        return (int(value),) * length
    if isinstance(value, (tuple, list)) and len(value) == length and all(is_int(v) for v in value):
        return tuple(int(v) for v in value)
    raise TypeError(f"{argument}: expected {expected}, got {value!r}")


def _int_pair(value, argument: str, expected: str) -> Tuple[int, int]:
    return int_tuple(value, 2, argument, expected)


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
    return padding_tuple(padding, kernel, argument, dilation, "(ph, pw)")


def padding_tuple(padding, kernel: Tuple[int, ...], argument: str, dilation: Tuple[int, ...],
                  form: str) -> Tuple[int, ...]:
    """Turn "same", "valid", an int or one int per axis (``form`` names them: "(ph, pw)") into one
    padding per axis of ``kernel`` applied with ``dilation``."""
    spans = tuple(span(k, d) for k, d in zip(kernel, dilation))
    if isinstance(padding, str):
        if padding == "same":
            if any(s % 2 == 0 for s in spans):
                raise ValueError(
                    f"{argument}: \"same\" needs odd kernel sizes (odd spans (k - 1) * dilation + 1), got spans "
                    f"{spans} for "
                    f"kernel size {tuple(kernel)} and dilation {tuple(dilation)}; pass explicit padding instead"
                )
            return tuple(s // 2 for s in spans)
        if padding == "valid":
            return (0,) * len(kernel)
        raise ValueError(f"{argument}: expected \"same\", \"valid\", an int or {form}, got {padding!r}")
    pads = int_tuple(padding, len(kernel), argument, f"\"same\", an int or {form}")
    if min(pads) < 0:
        raise ValueError(f"{argument}: expected non-negative padding, got {pads}")
    return pads


def check_dtype(t: torch.Tensor, argument: str) -> None:
    if t.dtype not in SUPPORTED_DTYPES:
        names = ", ".join(str(d) for d in SUPPORTED_DTYPES)
        raise TypeError(f"{argument}: expected a floating-point dtype ({names}), got {t.dtype}")


def check_conv_args(
    x: torch.Tensor, weight: torch.Tensor, bias: Optional[torch.Tensor], padding: Tuple[int, int],
    dilation: Tuple[int, int] = (1, 1),
) -> None:
    """Validate a depthwise conv call; ``padding`` and ``dilation`` must already be pairs."""
    check_conv_nd_args(x, weight, bias, padding, dilation, ("H", "W"))


def check_conv_nd_args(x, weight, bias, padding: Tuple[int, ...], dilation: Tuple[int, ...],
                       dims: Tuple[str, ...]) -> None:
    """Validate a depthwise conv call over the spatial ``dims`` (("H", "W") or ("D", "H", "W"));
    ``padding`` and ``dilation`` must already be tuples of len(dims)."""
    rank = len(dims)
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"x: expected a torch.Tensor, got {type(x).__name__}")
    if not isinstance(weight, torch.Tensor):
        raise TypeError(f"weight: expected a torch.Tensor, got {type(weight).__name__}")
    if bias is not None and not isinstance(bias, torch.Tensor):
        raise TypeError(f"bias: expected a torch.Tensor or None, got {type(bias).__name__}")
    if x.dim() != rank + 2:
        raise ValueError(f"x: expected a {rank + 2}-D (N, C, {', '.join(dims)}) tensor, got {_describe_tensor(x)}")
    check_dtype(x, "x")
    check_dtype(weight, "weight")
    if weight.dtype != x.dtype:
        raise TypeError(f"weight: expected dtype {x.dtype} (the dtype of x), got {weight.dtype}")
    channels = x.shape[1]
    if weight.dim() != rank + 2 or weight.shape[0] != channels or weight.shape[1] != 1:
        kernel = ", ".join("k" + d.lower() for d in dims)
        raise ValueError(
            f"weight: expected shape ({channels}, 1, {kernel}) for x with {channels} channels, "
            f"got {tuple(weight.shape)}"
        )
    if min(weight.shape[2:]) < 1:
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
    if min(padding) < 0:
        raise ValueError(f"padding: expected non-negative padding, got {tuple(padding)}")
    for d in dilation:
        if d < 1:
            raise ValueError(f"dilation: expected dilations >= 1, got {tuple(dilation)}")
    out = output_sizes(x.shape[2:], weight.shape[2:], padding, dilation)
    if min(out) < 1:
        spans = tuple(span(k, d) for k, d in zip(weight.shape[2:], dilation))
        raise ValueError(
            f"padding: input {tuple(x.shape[2:])} with padding {tuple(padding)} is smaller than the kernel's span "
            f"{spans} (kernel {tuple(weight.shape[2:])}, dilation {tuple(dilation)}); the output would be "
            f"{'x'.join(str(o) for o in out)}"
        )


def output_sizes(sizes, kernel, padding, dilation) -> Tuple[int, ...]:
    """The output map of a stride-1 conv along each axis: the padded input less the kernel's span, plus one."""
    return tuple(n + 2 * p - span(k, d) + 1 for n, k, p, d in zip(sizes, kernel, padding, dilation))


def input_sizes(out_sizes, kernel, padding, dilation) -> Tuple[int, ...]:
    """The input map whose output is ``out_sizes``: the inverse of ``output_sizes`` (stride 1)."""
    return tuple(o - 2 * p + span(k, d) - 1 for o, k, p, d in zip(out_sizes, kernel, padding, dilation))


def output_size(h: int, w: int, kh: int, kw: int, ph: int, pw: int,
                dilation: Tuple[int, int] = (1, 1)) -> Tuple[int, int]:
    """The output map of a stride-1 conv: the padded input less the kernel's span, plus one."""
    return output_sizes((h, w), (kh, kw), (ph, pw), dilation)


def input_size(out_h: int, out_w: int, kh: int, kw: int, ph: int, pw: int,
               dilation: Tuple[int, int] = (1, 1)) -> Tuple[int, int]:
    """The input map whose output is (out_h, out_w): the inverse of ``output_size`` (stride 1)."""
    return input_sizes((out_h, out_w), (kh, kw), (ph, pw), dilation)
