"""What the Triton passes share: the tensor-core product, the aligned column window of a
batch-row tile, and the host-side facts every launcher needs (interpreter, precision flags,
vector widths). No `from __future__ import annotations` here: Triton's JIT reads the kernels'
annotations (tl.constexpr) as objects."""
import os

import torch
import triton
import triton.language as tl


def interpreting() -> bool:
    return os.environ.get("TRITON_INTERPRET") == "1"


def flags(x: torch.Tensor):
    """(UPCAST, IEEE) for a call on ``x``: the interpreter multiplies bf16 in fp32, and computes
    fp32 exactly; on the GPU fp32 takes the 3xTF32 split on tensor cores."""
    upcast = interpreting() and x.dtype == torch.bfloat16
    # fp32 via tensor cores needs the 3xTF32 split for fp32 accuracy; the interpreter is exact
    ieee = interpreting()
    return upcast, ieee


def vector_width(x: torch.Tensor) -> int:
    """The widest vector (elements, at most 16 bytes) a batch-row tile of ``x`` may load: unit
    column stride, and the width divides W, every other stride and the address."""
    if x.stride(3) != 1:
        return 1
    for width in (8, 4, 2):
        if width * x.element_size() <= 16 and x.shape[3] % width == 0 and \
                all(s % width == 0 for s in x.stride()[:3]) and x.data_ptr() % (width * x.element_size()) == 0:
            return width
    return 1


def aligned(bn: int, bk: int, kw: int, width: int) -> int:
    """The widest alignment <= width whose tile still fits in BK columns."""
    while width > 1 and bn + kw - 1 + width - 1 > bk:
        width //= 2
    return width


@triton.jit
def _dot(a, b, acc, UPCAST: tl.constexpr, IEEE: tl.constexpr):
    if UPCAST:  # the interpreter multiplies bf16 bit patterns in tl.dot; do that math in fp32
        a = a.to(tl.float32)
        b = b.to(tl.float32)
    if a.dtype == tl.float32:
        if IEEE:
            return tl.dot(a, b, acc, input_precision="ieee")
        return tl.dot(a, b, acc, input_precision="tf32x3")  # ~fp32 accuracy on tensor cores
    return tl.dot(a, b, acc)


@triton.jit
def _aligned_input_columns(w_first, a, W, ALIGN: tl.constexpr):
    """A batch-row tile's input columns w_in (column a of the tile), which start at the multiple of
    ALIGN at or below w_first; whether each is inside the map, judged per chunk of ALIGN columns
    (W is a multiple of ALIGN) so the mask is constant along each vector; and the shift
    w_first - (the tile's first column) by which the band or the diagonals move."""
    w_start = w_first - ((w_first % ALIGN) + ALIGN) % ALIGN  # floor to a multiple of ALIGN
    w_in = w_start + a
    if ALIGN > 1:
        w_in = tl.max_contiguous(tl.multiple_of(w_in, ALIGN), ALIGN)
    w_chunk = w_start + (a // ALIGN) * ALIGN
    return w_in, (w_chunk >= 0) & (w_chunk < W), w_first - w_start
