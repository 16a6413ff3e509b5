"""The weight gradient as GEMMs plus diagonal sums, kernel and launcher (docs/design.md,
"Weight gradient as GEMM plus diagonal sums").

For kernel row i and a strip of BN output columns,

    P_i = dY[rows, w0 : w0+BN]^T @ X_i[rows, w0-pw : w0-pw+BK],  dw[i, j] += sum_b P_i[b, b+j]

with the rows (all N*Ho of them, or a split of them) as the GEMM's reduction dimension. A program
owns R kernel rows and pairs one gathered input tile with R grad_out tiles shifted by a row each.
Each program writes its partial rows of dw to a small workspace that is summed in a fixed order,
so the result is deterministic. The variants (tuning.WEIGHT_GRAD_VARIANTS): the product's
orientation, and group rows (consecutive loop rows) or batch rows (the same row of BR images,
with vector loads where the strides allow).

Layouts are handled through strides, offsets are 64-bit, and all accumulation is float32. No
`from __future__ import annotations` here: Triton's JIT reads the kernels' annotations
(tl.constexpr) as objects.
"""
import functools

import torch
import triton
import triton.language as tl

from . import tuner, tuning
from .common import _aligned_input_columns, _dot, flags, interpreting, vector_width


@triton.jit
def _diagonal_sums(acc, diagonal, j_all, KW):
    """dw[j] = sum_b P[b, b + j]: the band of P, one diagonal per kernel column."""
    out = tl.zeros(j_all.shape, dtype=tl.float32)
    for j in range(0, KW):
        value = tl.sum(tl.sum(tl.where(diagonal == j, acc, 0.0), axis=1), axis=0)
        out = tl.where(j_all == j, value, out)
    return out


@triton.jit
def _grad_rows(dy_chan, n, hs, ok, w_out, w_out_ok, sdn, sdh, sdw, TRANSPOSED: tl.constexpr):
    """grad_out rows hs of images n at columns w_out: (BR, BN) for the transposed product,
    else (BN, BR)."""
    # one return: the compiler checks every return statement's type, even in a constexpr branch
    if TRANSPOSED:
        rows = tl.load(dy_chan + n[:, None] * sdn + hs.to(tl.int64)[:, None] * sdh + w_out.to(tl.int64)[None, :] * sdw,
                       mask=ok[:, None] & w_out_ok[None, :], other=0.0)
    else:
        rows = tl.load(dy_chan + n[None, :] * sdn + hs.to(tl.int64)[None, :] * sdh + w_out.to(tl.int64)[:, None] * sdw,
                       mask=w_out_ok[:, None] & ok[None, :], other=0.0)
    return rows


@triton.jit
def _weight_product(dy, tile, acc, UPCAST: tl.constexpr, IEEE: tl.constexpr, TRANSPOSED: tl.constexpr):
    """acc += P (BN x BK) = dY^T X, or its transpose X^T dY (BK x BN), whose M = BK >= 64 suits
    Hopper's warpgroup MMAs where M = BN = 32 does not."""
    if TRANSPOSED:
        acc = _dot(tl.trans(tile), dy, acc, UPCAST, IEEE)
    else:
        acc = _dot(dy, tile, acc, UPCAST, IEEE)
    return acc


@triton.jit
def _bwd_weight_group_rows(
    dy_ptr, x_ptr, part_ptr, pid, strip, split, i0, c,
    N, C, H, W, Ho, Wo, KH, KW, PH, PW, ROWS_PER_SPLIT,
    sdn, sdc, sdh, sdw, sxn, sxc, sxh, sxw,
    R: tl.constexpr, BR: tl.constexpr, BN: tl.constexpr, BK: tl.constexpr, KWP: tl.constexpr,
    UPCAST: tl.constexpr, IEEE: tl.constexpr, TRANSPOSED: tl.constexpr,
):
    # A program owns kernel rows i0 .. i0 + R - 1. Loop row h (of Ho + R - 1 per image) pairs the
    # input row h + i0 - PH with grad_out row h - r for kernel row i0 + r, so each gathered input
    # tile serves R products; a row past either map loads as zeros.
    w_out, w_out_ok, w_in, w_in_ok, diagonal = _strip_columns(strip, W, Wo, PW, BN, BK, 1, 1, TRANSPOSED)
    rows_per_image = Ho + R - 1
    total_rows = N * rows_per_image
    row_start = split * ROWS_PER_SPLIT
    row_end = tl.minimum(row_start + ROWS_PER_SPLIT, total_rows)
    dy_chan = dy_ptr + c * sdc
    acc0, acc1, acc2, acc3 = _weight_accumulators(diagonal)
    for r0 in range(row_start, row_end, BR):
        rows = r0 + tl.arange(0, BR)
        rows_ok = rows < row_end
        n = (rows // rows_per_image).to(tl.int64)
        h = rows % rows_per_image
        h_in = h + i0 - PH
        in_ok = rows_ok & (h_in >= 0) & (h_in < H)
        tile = tl.load(x_ptr + n[:, None] * sxn + c * sxc + h_in.to(tl.int64)[:, None] * sxh
                       + w_in.to(tl.int64)[None, :] * sxw,
                       mask=in_ok[:, None] & w_in_ok[None, :], other=0.0)
        dy = _grad_rows(dy_chan, n, h, rows_ok & (h < Ho), w_out, w_out_ok, sdn, sdh, sdw, TRANSPOSED)
        acc0 = _weight_product(dy, tile, acc0, UPCAST, IEEE, TRANSPOSED)
        if R > 1:
            ok = rows_ok & (h >= 1) & (h - 1 < Ho) & (i0 + 1 < KH)
            dy = _grad_rows(dy_chan, n, h - 1, ok, w_out, w_out_ok, sdn, sdh, sdw, TRANSPOSED)
            acc1 = _weight_product(dy, tile, acc1, UPCAST, IEEE, TRANSPOSED)
        if R > 2:
            ok = rows_ok & (h >= 2) & (h - 2 < Ho) & (i0 + 2 < KH)
            dy = _grad_rows(dy_chan, n, h - 2, ok, w_out, w_out_ok, sdn, sdh, sdw, TRANSPOSED)
            acc2 = _weight_product(dy, tile, acc2, UPCAST, IEEE, TRANSPOSED)
            ok = rows_ok & (h >= 3) & (h - 3 < Ho) & (i0 + 3 < KH)
            dy = _grad_rows(dy_chan, n, h - 3, ok, w_out, w_out_ok, sdn, sdh, sdw, TRANSPOSED)
            acc3 = _weight_product(dy, tile, acc3, UPCAST, IEEE, TRANSPOSED)

    _store_weight_partials(part_ptr, pid, C, c, KH, KW, i0, acc0, acc1, acc2, acc3, diagonal, R, KWP)


@triton.jit
def _strip_columns(strip, W, Wo, PW, BN: tl.constexpr, BK: tl.constexpr, ALIGN: tl.constexpr,
                   DY_ALIGN: tl.constexpr, TRANSPOSED: tl.constexpr):
    """What both row kinds gather for output columns strip * BN .. + BN - 1: those columns w_out
    and whether each is inside the map (judged per chunk of DY_ALIGN columns, so the mask is
    constant along each vector: Wo is a multiple of DY_ALIGN); the tile's input columns w_in and
    whether each is inside the map (_aligned_input_columns; ALIGN 1 starts at the strip's first
    input column); and the kernel column of each element of a product in the orientation of
    TRANSPOSED (input column a, which is tile column a - shift past the strip's first input
    column, against output column b)."""
    b = tl.arange(0, BN)
    a = tl.arange(0, BK)
    w_out = strip * BN + b
    if DY_ALIGN > 1:
        w_out = tl.max_contiguous(tl.multiple_of(w_out, DY_ALIGN), DY_ALIGN)
    w_out_ok = (strip * BN + (b // DY_ALIGN) * DY_ALIGN) < Wo
    w_in, w_in_ok, shift = _aligned_input_columns(strip * BN - PW, a, W, ALIGN)
    if TRANSPOSED:  # P^T[a, b] = P[b, a]
        diagonal = a[:, None] - shift - b[None, :]
    else:
        diagonal = a[None, :] - shift - b[:, None]
    return w_out, w_out_ok, w_in, w_in_ok, diagonal


@triton.jit
def _weight_accumulators(diagonal):
    """Four zero products (one per phase), shaped like the products' kernel columns."""
    zero = tl.zeros(diagonal.shape, dtype=tl.float32)
    return zero, zero, zero, zero


@triton.jit
def _store_weight_partials(part_ptr, pid, C, c, KH, KW, i0, acc0, acc1, acc2, acc3, diagonal,
                           R: tl.constexpr, KWP: tl.constexpr):
    """This program's partial dw rows i0 .. i0 + R - 1 (the rows inside the kernel), from the
    products' diagonals."""
    j_all = tl.arange(0, KWP)
    part = part_ptr + ((pid.to(tl.int64) * C + c) * KH + i0) * KW + j_all
    tl.store(part, _diagonal_sums(acc0, diagonal, j_all, KW), mask=j_all < KW)
    if R > 1:
        tl.store(part + KW, _diagonal_sums(acc1, diagonal, j_all, KW), mask=(j_all < KW) & (i0 + 1 < KH))
    if R > 2:
        tl.store(part + 2 * KW, _diagonal_sums(acc2, diagonal, j_all, KW), mask=(j_all < KW) & (i0 + 2 < KH))
        tl.store(part + 3 * KW, _diagonal_sums(acc3, diagonal, j_all, KW), mask=(j_all < KW) & (i0 + 3 < KH))


@triton.jit
def _bwd_weight_batch_rows(
    dy_ptr, x_ptr, part_ptr, pid, strip, split, i0, c,
    N, C, H, W, Ho, Wo, KH, KW, PH, PW, SPLITS,
    sdn, sdc, sdh, sdw, sxn, sxc, sxh, sxw,
    R: tl.constexpr, BR: tl.constexpr, BN: tl.constexpr, BK: tl.constexpr, KWP: tl.constexpr,
    UPCAST: tl.constexpr, IEEE: tl.constexpr, TRANSPOSED: tl.constexpr, ALIGN: tl.constexpr,
    DY_ALIGN: tl.constexpr,
):
    # The reduction runs over loop rows hh (a SPLITS-th of 0 .. Ho + R - 2, only those whose input
    # row hh + i0 - PH is inside the map) and, within each, over BR images at a time. Input row
    # hh + i0 - PH pairs with grad_out row hh - r for kernel row i0 + r, so grad_out row hh serves
    # phase r at loop row hh + r: one new grad_out tile per loop row, the previous R - 1 carried.
    # ALIGN / DY_ALIGN > 1: vector loads, as in the batch-row forward (the launcher checks the
    # strides and addresses); the input tile starts at the aligned column below the strip's first
    # input column and the diagonals shift by the difference.
    w_out, w_out_ok, w_in, w_in_ok, diagonal = _strip_columns(strip, W, Wo, PW, BN, BK, ALIGN, DY_ALIGN,
                                                               TRANSPOSED)
    x_chan_offset = c * sxc
    dy_chan_offset = c * sdc

    loop_rows = Ho + R - 1
    per_split = tl.cdiv(loop_rows, SPLITS)
    hh_lo = tl.maximum(split * per_split, PH - i0)
    hh_hi = tl.minimum(tl.minimum(split * per_split + per_split, loop_rows), H + PH - i0)

    acc0, acc1, acc2, acc3 = _weight_accumulators(diagonal)
    for n0 in range(0, N, BR):
        n = n0 + tl.arange(0, BR)
        n_ok = n < N
        x_rows = n.to(tl.int64) * sxn
        dy_rows = n.to(tl.int64) * sdn
        if ALIGN > 1:
            x_rows = tl.multiple_of(x_rows, ALIGN)
        if DY_ALIGN > 1:
            dy_rows = tl.multiple_of(dy_rows, DY_ALIGN)
        x_offsets = x_rows[:, None] + w_in.to(tl.int64)[None, :] * sxw
        tile_ok = n_ok[:, None] & w_in_ok[None, :]
        if TRANSPOSED:
            dy_offsets = dy_rows[:, None] + w_out.to(tl.int64)[None, :] * sdw
            dy_ok = n_ok[:, None] & w_out_ok[None, :]
        else:
            dy_offsets = dy_rows[None, :] + w_out.to(tl.int64)[:, None] * sdw
            dy_ok = w_out_ok[:, None] & n_ok[None, :]
        dy1 = _grad_row(dy_ptr, dy_chan_offset, hh_lo - 1, Ho, sdh, dy_offsets, dy_ok, DY_ALIGN)
        dy2 = _grad_row(dy_ptr, dy_chan_offset, hh_lo - 2, Ho, sdh, dy_offsets, dy_ok, DY_ALIGN)
        dy3 = _grad_row(dy_ptr, dy_chan_offset, hh_lo - 3, Ho, sdh, dy_offsets, dy_ok, DY_ALIGN)
        for hh in range(hh_lo, hh_hi):
            row = (hh + i0 - PH).to(tl.int64) * sxh + x_chan_offset
            if ALIGN > 1:
                row = tl.multiple_of(row, ALIGN)
            tile = tl.load(x_ptr + row + x_offsets, mask=tile_ok, other=0.0)
            dy0 = _grad_row(dy_ptr, dy_chan_offset, hh, Ho, sdh, dy_offsets, dy_ok, DY_ALIGN)
            acc0 = _weight_product(dy0, tile, acc0, UPCAST, IEEE, TRANSPOSED)
            if R > 1:
                acc1 = _weight_product(dy1, tile, acc1, UPCAST, IEEE, TRANSPOSED)
            if R > 2:
                acc2 = _weight_product(dy2, tile, acc2, UPCAST, IEEE, TRANSPOSED)
                acc3 = _weight_product(dy3, tile, acc3, UPCAST, IEEE, TRANSPOSED)
            dy3 = dy2
            dy2 = dy1
            dy1 = dy0
    _store_weight_partials(part_ptr, pid, C, c, KH, KW, i0, acc0, acc1, acc2, acc3, diagonal, R, KWP)


@triton.jit
def _grad_row(dy_ptr, chan_offset, h, Ho, sdh, dy_offsets, dy_ok, DY_ALIGN: tl.constexpr):
    """grad_out row h of the tile's images (zeros for a row outside the map)."""
    row = tl.cast(h, tl.int64) * sdh + chan_offset  # h may be a plain int in the interpreter
    if DY_ALIGN > 1:
        row = tl.multiple_of(row, DY_ALIGN)
    return tl.load(dy_ptr + row + dy_offsets, mask=dy_ok & (h >= 0) & (h < Ho), other=0.0)


@triton.jit
def dwconv_bwd_weight_kernel(
    dy_ptr, x_ptr, part_ptr,
    N, C, H, W, Ho, Wo, KH, KW, PH, PW, ROWS_PER_SPLIT, SPLITS,
    sdn, sdc, sdh, sdw, sxn, sxc, sxh, sxw, TUNE_CLASS,
    R: tl.constexpr, BR: tl.constexpr, BN: tl.constexpr, BK: tl.constexpr, KWP: tl.constexpr,
    UPCAST: tl.constexpr, IEEE: tl.constexpr, TRANSPOSED: tl.constexpr, BATCH_ROWS: tl.constexpr = False,
    ALIGN: tl.constexpr = 1, DY_ALIGN: tl.constexpr = 1,
):
    """Partial weight gradients; grid (strips * SPLITS, cdiv(KH, R), C). Group rows split the
    N * (Ho + R - 1) loop rows into ROWS_PER_SPLIT; batch rows split each image's Ho + R - 1 loop
    rows SPLITS ways. TUNE_CLASS is not read (the tuner keys on it: weight_grad_tuning); callers pass 0."""
    pid = tl.program_id(0)
    strip = pid // SPLITS
    split = pid % SPLITS
    i0 = tl.program_id(1) * R
    c = tl.program_id(2).to(tl.int64)
    if BATCH_ROWS:
        _bwd_weight_batch_rows(dy_ptr, x_ptr, part_ptr, pid, strip, split, i0, c, N, C, H, W, Ho, Wo, KH, KW, PH, PW,
                               SPLITS, sdn, sdc, sdh, sdw, sxn, sxc, sxh, sxw, R, BR, BN, BK, KWP, UPCAST, IEEE,
                               TRANSPOSED, ALIGN, DY_ALIGN)
    else:
        _bwd_weight_group_rows(dy_ptr, x_ptr, part_ptr, pid, strip, split, i0, c, N, C, H, W, Ho, Wo, KH, KW, PH, PW,
                               ROWS_PER_SPLIT, sdn, sdc, sdh, sdw, sxn, sxc, sxh, sxw, R, BR, BN, BK, KWP, UPCAST,
                               IEEE, TRANSPOSED)


@functools.lru_cache(maxsize=None)
def _sm_count(device_index: int) -> int:
    return torch.cuda.get_device_properties(device_index).multi_processor_count


def weight_phases(kh: int, dtype: torch.dtype) -> int:
    """Kernel rows per weight-gradient program (R), which share each gathered input tile; fp32
    keeps 1 for the same reason as fwd.phases."""
    if dtype == torch.float32:
        return 1
    return 4 if kh >= 4 else 2 if kh >= 2 else 1


def weight_columns_block(kw: int) -> int:
    """The weight gradient's block of kernel columns: a power of two, and at least 2 because
    triton 3.0's interpreter ignores the mask of a one-element store (with kw = 1 it wrote the
    masked-off rows past the kernel's last one)."""
    return max(2, triton.next_power_of_2(kw))


def weight_grad_tuning(n: int, ho: int, wo: int, kh: int, kw: int, dtype: torch.dtype, width: int):
    """(key, short list) the tuner times for a weight gradient of n images with an ho x wo output
    whose tensors allow ``width``-element vectors."""
    return ("bwd_weight", ho, wo, kh, kw, str(dtype), tuning.tune_class_of(width, n)), tuning.weight_grad_shortlist(n)


def bwd_weight(grad_out, x, kh, kw, ph, pw, *, variant=None, workspace=torch.empty):
    """(grad weight, grad bias). ``variant`` (a tuning.WeightGradVariant) runs that variant; None
    the tuned one, or tuning.DEFAULT_WEIGHT_GRAD_VARIANT where nothing is tuned
    (tuning.fixed_tiles). ``workspace`` allocates the float32 partials, like torch.empty (tests
    fill them with NaN, so a partial a kernel forgets to write poisons the result)."""
    n, c, h, w = x.shape
    ho, wo = grad_out.shape[2], grad_out.shape[3]
    grad_bias = grad_out.sum(dim=(0, 2, 3), dtype=torch.float32).to(x.dtype)
    if n == 0:
        return torch.zeros((c, 1, kh, kw), dtype=x.dtype, device=x.device), grad_bias
    bn = 32
    bk = triton.next_power_of_2(bn + kw - 1)
    r = weight_phases(kh, x.dtype)
    row_groups = triton.cdiv(kh, r)
    total_rows = n * (ho + r - 1)  # each image's rows, plus R - 1 for the shifted grad_out rows
    br = 64 if total_rows >= 64 else 16
    strips = triton.cdiv(wo, bn)
    if interpreting() or x.device.type != "cuda":
        splits = 1
    else:  # enough programs to fill the GPU several times over
        want = 4 * _sm_count(x.device.index or 0)
        splits = max(1, min(triton.cdiv(want, strips * row_groups * c), triton.cdiv(total_rows, 4 * br)))
    rows_per_split = triton.cdiv(triton.cdiv(total_rows, splits), br) * br
    splits = triton.cdiv(total_rows, rows_per_split)
    partials = workspace((strips * splits, c, kh, kw), dtype=torch.float32, device=x.device)
    upcast, ieee = flags(x)
    grid = (strips * splits, row_groups, c)
    args = (grad_out, x, partials, n, c, h, w, ho, wo, kh, kw, ph, pw, rows_per_split, splits,
            *grad_out.stride(), *x.stride())
    meta = dict(R=r, BR=br, BN=bn, BK=bk, KWP=weight_columns_block(kw), UPCAST=upcast, IEEE=ieee)
    width = min(vector_width(x), vector_width(grad_out))

    def run(chosen, warmup=False):  # warmup: compile only (tuner.compile_all)
        kwargs = dict(chosen.meta(bn, bk, kw, width if chosen.batch_rows else 1), **meta, num_warps=chosen.warps)
        if warmup:
            dwconv_bwd_weight_kernel.warmup(*args, 0, grid=grid, **kwargs)
        else:  # TUNE_CLASS 0: the tuner keys on it (weight_grad_tuning), the kernel does not read it
            dwconv_bwd_weight_kernel[grid](*args, 0, **kwargs)

    if variant is None and not tuning.fixed_tiles():
        # every variant writes every partial it owns, so timing runs leave nothing behind
        key, shortlist = weight_grad_tuning(n, ho, wo, kh, kw, x.dtype, width)
        variant = tuner.choose(key, shortlist, run, x.device)
    run(variant or tuning.DEFAULT_WEIGHT_GRAD_VARIANT)
    # a fixed-order sum of the partials: deterministic, whatever the grid
    grad_weight = partials.sum(dim=0).unsqueeze(1).to(x.dtype)
    return grad_weight, grad_bias
