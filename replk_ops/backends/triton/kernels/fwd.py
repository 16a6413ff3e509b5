"""The forward and the input gradient (the forward with the kernel rotated): row-Toeplitz
products on tensor cores, kernels and launchers (docs/design.md, "Row-Toeplitz products").

For one channel and kernel row i, a strip of BN output columns is

    Y[rows, w0 : w0+BN] += X_i[rows, w0-pw : w0-pw+BK] @ T_i,  T_i[a, b] = w[i, a-b] (0 <= a-b < kw)

where rows run over (n, h) of all images and X_i's row is input row h + i - ph. Two ways to pick
a tile's GEMM rows, a compile-time switch of the one forward kernel so the autotuner can time both
(tuning.FORWARD_VARIANTS):

- group rows (any batch): groups of R consecutive output rows of one image, one accumulator per
  phase, so one gathered input tile serves R kernel rows at once. Input rows that touch no group
  of the tile are skipped.
- batch rows (batch >= 16): the same R output rows h0 .. h0+R-1 of BM images. Every tile row then
  reads the same input row, so the tile's rows need no bounds (the loop covers only input rows
  inside the map), its addresses are affine, and where the strides allow it the tile starts on an
  aligned column and loads as vectors. Each kernel row's band is gathered once and carried
  through the R iterations that use it.

Kernels that cover the whole map take the dense per-channel GEMM instead (dense.py). Layouts are
handled through strides (NCHW, channels_last or any view), offsets are 64-bit, and all
accumulation is float32. No `from __future__ import annotations` here: Triton's JIT reads the
kernels' annotations (tl.constexpr) as objects.
"""
import torch
import triton
import triton.language as tl

from ...._checks import input_size
from ...._layout import memory_format_of
from . import dense, tuner, tuning
from .common import _aligned_input_columns, _dot, flags, vector_width


@triton.jit
def _fwd_group_rows(
    x_ptr, w_ptr, b_ptr, y_ptr,
    N, H, W, Ho, Wo, KH, KW, PH, PW,
    sxn, sxc, sxh, sxw, syn, syc, syh, syw,
    HAS_BIAS: tl.constexpr, R: tl.constexpr, BM: tl.constexpr, BN: tl.constexpr, BK: tl.constexpr,
    UPCAST: tl.constexpr, IEEE: tl.constexpr, CARRY_BANDS: tl.constexpr,
):
    # GEMM row m is the group of R output rows (n, R g + r), r < R (R divides Ho); the accumulator
    # of phase r holds output rows R g + r. Input row offset rho gives one tile X_rho (input row
    # R g + rho - PH of each group) that serves every phase, with kernel row i = rho - r: each
    # gathered input tile feeds R products.
    pid_m = tl.program_id(0)
    pid_n = tl.program_id(1)
    c = tl.program_id(2).to(tl.int64)

    groups_per_image = Ho // R
    total_groups = N * groups_per_image
    g = pid_m * BM + tl.arange(0, BM)
    g_ok = g < total_groups
    n = (g // groups_per_image).to(tl.int64)
    h_first = (g % groups_per_image) * R  # output row of phase 0
    cols = pid_n * BN + tl.arange(0, BN)
    w_in, w_in_ok, band, band_ok, w_chan = _strip_band(w_ptr, c, pid_n, W, KH, KW, PW, BN, BK, 1)
    x_rows = x_ptr + n * sxn + c * sxc
    x_cols = w_in.to(tl.int64) * sxw

    # input row offsets that reach the image for some group of this tile
    first = pid_m * BM
    last = tl.minimum(first + BM, total_groups) - 1
    same_image = (first // groups_per_image) == (last // groups_per_image)
    h_lo = tl.where(same_image, (first % groups_per_image) * R, 0)
    h_hi = tl.where(same_image, (last % groups_per_image) * R, Ho - R)
    rho_lo = tl.maximum(0, PH - h_hi)
    rho_hi = tl.minimum(KH + R - 1, H + PH - h_lo)

    acc0, acc1, acc2, acc3 = _zero_accumulators(BM, BN)
    # CARRY_BANDS: gather one band per iteration and carry the previous R - 1 (as the batch-row
    # tiles do); otherwise gather all R per iteration, which needs fewer registers.
    if CARRY_BANDS:
        band1, band2, band3 = _bands_before(w_chan, rho_lo, KH, KW, band, band_ok)
    for rho in range(rho_lo, rho_hi):
        h_in = h_first + rho - PH
        ok = g_ok & (h_in >= 0) & (h_in < H)
        tile = tl.load(x_rows[:, None] + h_in.to(tl.int64)[:, None] * sxh + x_cols[None, :],
                       mask=ok[:, None] & w_in_ok[None, :], other=0.0)
        # kernel row rho - r for phase r; rows outside the kernel load as zeros
        band0 = _band(w_chan, rho, KH, KW, band, band_ok)
        if CARRY_BANDS:
            acc0, acc1, acc2, acc3, band1, band2, band3 = _carried_products(
                tile, band0, band1, band2, band3, acc0, acc1, acc2, acc3, R, UPCAST, IEEE)
        else:
            acc0 = _dot(tile, band0, acc0, UPCAST, IEEE)
            if R > 1:
                acc1 = _dot(tile, _band(w_chan, rho - 1, KH, KW, band, band_ok), acc1, UPCAST, IEEE)
            if R > 2:
                acc2 = _dot(tile, _band(w_chan, rho - 2, KH, KW, band, band_ok), acc2, UPCAST, IEEE)
                acc3 = _dot(tile, _band(w_chan, rho - 3, KH, KW, band, band_ok), acc3, UPCAST, IEEE)

    bias = _bias(b_ptr, c, HAS_BIAS)
    y_rows = y_ptr + n * syn + c * syc
    y_cols = cols.to(tl.int64)[None, :] * syw
    out_ok = g_ok[:, None] & (cols < Wo)[None, :]
    dtype = y_ptr.dtype.element_ty
    tl.store(y_rows[:, None] + h_first.to(tl.int64)[:, None] * syh + y_cols, (acc0 + bias).to(dtype), mask=out_ok)
    if R > 1:
        tl.store(y_rows[:, None] + (h_first + 1).to(tl.int64)[:, None] * syh + y_cols, (acc1 + bias).to(dtype),
                 mask=out_ok)
    if R > 2:
        tl.store(y_rows[:, None] + (h_first + 2).to(tl.int64)[:, None] * syh + y_cols, (acc2 + bias).to(dtype),
                 mask=out_ok)
        tl.store(y_rows[:, None] + (h_first + 3).to(tl.int64)[:, None] * syh + y_cols, (acc3 + bias).to(dtype),
                 mask=out_ok)


@triton.jit
def _strip_band(w_ptr, c, pid_n, W, KH, KW, PW, BN: tl.constexpr, BK: tl.constexpr, ALIGN: tl.constexpr):
    """What both row kinds gather for output columns pid_n * BN .. + BN - 1 of channel c: the
    tile's input columns w_in and whether each is inside the map (_aligned_input_columns; ALIGN 1
    starts at the strip's first input column), the Toeplitz band's offsets into a kernel row
    (BK x BN, column a of the tile against output column b) and where they fall inside the kernel,
    and the channel's weights."""
    a = tl.arange(0, BK)
    w_in, w_in_ok, shift = _aligned_input_columns(pid_n * BN - PW, a, W, ALIGN)
    band = a[:, None] - shift - tl.arange(0, BN)[None, :]
    band_ok = (band >= 0) & (band < KW)
    w_chan = w_ptr + c * KH * KW  # a scalar: the band's offsets stay 32-bit, which saves registers
    return w_in, w_in_ok, band, band_ok, w_chan


@triton.jit
def _zero_accumulators(BM: tl.constexpr, BN: tl.constexpr):
    """One float32 accumulator per phase (four: R <= 4)."""
    zero = tl.zeros((BM, BN), dtype=tl.float32)
    return zero, zero, zero, zero


@triton.jit
def _bias(b_ptr, c, HAS_BIAS: tl.constexpr):
    """Channel c's bias as float32; 0 without one."""
    bias = 0.0
    if HAS_BIAS:
        bias = tl.load(b_ptr + c).to(tl.float32)
    return bias


@triton.jit
def _band(w_chan, i, KH, KW, band, band_ok):
    """The Toeplitz band of kernel row i (BK x BN); zeros for a row outside the kernel."""
    return tl.load(w_chan + i * KW + band, mask=band_ok & (i >= 0) & (i < KH), other=0.0)


@triton.jit
def _bands_before(w_chan, rho_lo, KH, KW, band, band_ok):
    """The bands of kernel rows rho_lo - 1, rho_lo - 2, rho_lo - 3: what phases 1 to 3 carry into
    the first iteration of a loop that starts at input row offset rho_lo."""
    return (_band(w_chan, rho_lo - 1, KH, KW, band, band_ok), _band(w_chan, rho_lo - 2, KH, KW, band, band_ok),
            _band(w_chan, rho_lo - 3, KH, KW, band, band_ok))


@triton.jit
def _carried_products(tile, band0, band1, band2, band3, acc0, acc1, acc2, acc3, R: tl.constexpr,
                      UPCAST: tl.constexpr, IEEE: tl.constexpr):
    """Phase r's product of one input tile with band r (kernel row rho - r), r < R; returns the
    accumulators and the bands shifted for the next iteration (band r becomes band r + 1)."""
    acc0 = _dot(tile, band0, acc0, UPCAST, IEEE)
    if R > 1:
        acc1 = _dot(tile, band1, acc1, UPCAST, IEEE)
    if R > 2:
        acc2 = _dot(tile, band2, acc2, UPCAST, IEEE)
        acc3 = _dot(tile, band3, acc3, UPCAST, IEEE)
    return acc0, acc1, acc2, acc3, band0, band1, band2


@triton.jit
def _fwd_batch_rows(
    x_ptr, w_ptr, b_ptr, y_ptr,
    N, H, W, Ho, Wo, KH, KW, PH, PW,
    sxn, sxc, sxh, sxw, syn, syc, syh, syw,
    HAS_BIAS: tl.constexpr, R: tl.constexpr, BM: tl.constexpr, BN: tl.constexpr, BK: tl.constexpr,
    UPCAST: tl.constexpr, IEEE: tl.constexpr, ALIGN: tl.constexpr,
):
    # Program (channel c, output rows h0 .. h0 + R - 1) x column strip x block of BM images. For
    # input row offset rho the tile is input row h0 + rho - PH of each image, shared by phase r
    # with kernel row rho - r. ALIGN > 1 (the launcher checks that sxw == 1 and that ALIGN divides
    # W, the other strides and the base address): the tile starts at the aligned column below the
    # strip's first input column, and the band shifts by the difference.
    pid_hc = tl.program_id(0)
    pid_n = tl.program_id(1)
    pid_m = tl.program_id(2)
    row_groups = tl.cdiv(Ho, R)
    c = (pid_hc // row_groups).to(tl.int64)
    h0 = (pid_hc % row_groups) * R

    n = pid_m * BM + tl.arange(0, BM)
    n_ok = n < N
    w_in, w_in_ok, band, band_ok, w_chan = _strip_band(w_ptr, c, pid_n, W, KH, KW, PW, BN, BK, ALIGN)
    row_offsets = n.to(tl.int64) * sxn
    if ALIGN > 1:
        row_offsets = tl.multiple_of(row_offsets, ALIGN)
    tile_ok = n_ok[:, None] & w_in_ok[None, :]
    offsets = row_offsets[:, None] + w_in.to(tl.int64)[None, :] * sxw

    # only input rows inside the map: no tile row ever needs a bounds check
    rho_lo = tl.maximum(0, PH - h0)
    rho_hi = tl.minimum(KH + R - 1, H + PH - h0)
    acc0, acc1, acc2, acc3 = _zero_accumulators(BM, BN)
    # phase r uses the band of kernel row rho - r: gather one new band per iteration and carry
    # the previous R - 1
    band1, band2, band3 = _bands_before(w_chan, rho_lo, KH, KW, band, band_ok)
    for rho in range(rho_lo, rho_hi):
        row = (h0 + rho - PH).to(tl.int64) * sxh + c * sxc
        if ALIGN > 1:
            row = tl.multiple_of(row, ALIGN)
        tile = tl.load(x_ptr + row + offsets, mask=tile_ok, other=0.0)
        band0 = _band(w_chan, rho, KH, KW, band, band_ok)
        acc0, acc1, acc2, acc3, band1, band2, band3 = _carried_products(
            tile, band0, band1, band2, band3, acc0, acc1, acc2, acc3, R, UPCAST, IEEE)

    bias = _bias(b_ptr, c, HAS_BIAS)
    cols = pid_n * BN + tl.arange(0, BN)
    y_tile = y_ptr + c * syc + n.to(tl.int64)[:, None] * syn + cols.to(tl.int64)[None, :] * syw
    out_ok = n_ok[:, None] & (cols < Wo)[None, :]
    dtype = y_ptr.dtype.element_ty
    tl.store(y_tile + h0.to(tl.int64) * syh, (acc0 + bias).to(dtype), mask=out_ok)  # h0 < Ho always
    if R > 1:
        tl.store(y_tile + (h0 + 1).to(tl.int64) * syh, (acc1 + bias).to(dtype), mask=out_ok & (h0 + 1 < Ho))
    if R > 2:
        tl.store(y_tile + (h0 + 2).to(tl.int64) * syh, (acc2 + bias).to(dtype), mask=out_ok & (h0 + 2 < Ho))
        tl.store(y_tile + (h0 + 3).to(tl.int64) * syh, (acc3 + bias).to(dtype), mask=out_ok & (h0 + 3 < Ho))


@triton.jit
def dwconv_fwd_kernel(
    x_ptr, w_ptr, b_ptr, y_ptr,
    N, H, W, Ho, Wo, KH, KW, PH, PW,
    sxn, sxc, sxh, sxw, syn, syc, syh, syw, TUNE_CLASS,
    HAS_BIAS: tl.constexpr, R: tl.constexpr, BM: tl.constexpr, BN: tl.constexpr, BK: tl.constexpr,
    UPCAST: tl.constexpr, IEEE: tl.constexpr, BATCH_ROWS: tl.constexpr = False, ALIGN: tl.constexpr = 1,
    CARRY_BANDS: tl.constexpr = False,
):
    """The forward; grid (cdiv(N * Ho / R, BM), cdiv(Wo, BN), C) with group rows, or
    (C * cdiv(Ho, R), cdiv(Wo, BN), cdiv(N, BM)) with BATCH_ROWS. TUNE_CLASS is not read (the
    tuner keys on it: forward_tuning); callers pass 0."""
    if BATCH_ROWS:
        _fwd_batch_rows(x_ptr, w_ptr, b_ptr, y_ptr, N, H, W, Ho, Wo, KH, KW, PH, PW,
                        sxn, sxc, sxh, sxw, syn, syc, syh, syw, HAS_BIAS, R, BM, BN, BK, UPCAST, IEEE, ALIGN)
    else:
        _fwd_group_rows(x_ptr, w_ptr, b_ptr, y_ptr, N, H, W, Ho, Wo, KH, KW, PH, PW,
                        sxn, sxc, sxh, sxw, syn, syc, syh, syw, HAS_BIAS, R, BM, BN, BK, UPCAST, IEEE, CARRY_BANDS)



def phases(ho: int, dtype: torch.dtype) -> int:
    """Output rows per GEMM row of the forward kernel (R): each gathered input tile then serves R
    kernel rows. R must divide Ho so that a group never straddles two images. fp32 keeps R = 1:
    the 3xTF32 split doubles the operands' registers, and with more accumulators it spills (AOT
    compiles for sm_80 and sm_90)."""
    if dtype == torch.float32:
        return 1
    return 4 if ho % 4 == 0 else 2 if ho % 2 == 0 else 1


def fwd_grid(n: int, c: int, ho: int, wo: int, r: int):
    """The forward's grid for a variant's meta-parameters (see dwconv_fwd_kernel)."""
    def grid(meta):
        if meta.get("BATCH_ROWS", False):
            return (c * triton.cdiv(ho, r), triton.cdiv(wo, meta["BN"]), triton.cdiv(n, meta["BM"]))
        return (triton.cdiv(n * ho // r, meta["BM"]), triton.cdiv(wo, meta["BN"]), c)
    return grid


def forward_tuning(n: int, h: int, w: int, kh: int, kw: int, ho: int, wo: int, dtype: torch.dtype, width: int):
    """(key, short list) the tuner times for a forward on n images of h x w into ho x wo whose
    tensors allow ``width``-element vectors; None where nothing is tuned (the dense GEMM)."""
    if dense.covers_map(h, w, kh, kw):
        return None
    shortlist = tuning.forward_shortlist(kw, dtype, n, n * ho // phases(ho, dtype))
    return ("fwd", ho, wo, kh, kw, str(dtype), tuning.tune_class_of(width, n)), shortlist


def planned_variant(x: torch.Tensor, kh: int, kw: int, ho: int, wo: int):
    """The variant `fwd` runs on ``x`` with a kh x kw kernel and an ho x wo output when the call
    names none: the dense GEMM where the kernel covers the map; None where the tuner picks among
    a short list of tuning.FORWARD_VARIANTS (forward_tuning); else the heuristic one
    (tuning.fixed_tiles)."""
    n, _, h, w = x.shape
    if dense.covers_map(h, w, kh, kw):
        return tuning.dense_variant(n, ho * wo)
    if not tuning.fixed_tiles():
        return None
    return tuning.default_forward_variant(n * ho // phases(ho, x.dtype))


def fwd(x, weight, bias, ph, pw, out_hw=None, out=None, *, variant=None):
    """The forward into ``out`` (a new tensor in x's memory format if None). ``variant`` (a
    tuning.ForwardVariant) runs that variant; None plans one (planned_variant)."""
    n, c, h, w = x.shape
    kh, kw = weight.shape[2], weight.shape[3]
    ho, wo = out_hw if out_hw is not None else (h + 2 * ph - kh + 1, w + 2 * pw - kw + 1)
    if out is None:
        out = torch.empty((n, c, ho, wo), dtype=x.dtype, device=x.device, memory_format=memory_format_of(x))
    if out.numel() == 0:
        return out
    weight = weight.contiguous()
    upcast, ieee = flags(x)
    # both forward kernels take the same arguments
    args = (x, weight, bias if bias is not None else weight, out, n, h, w, ho, wo, kh, kw, ph, pw,
            *x.stride(), *out.stride())
    flag_args = dict(HAS_BIAS=bias is not None, UPCAST=upcast, IEEE=ieee)
    if variant is None:
        variant = planned_variant(x, kh, kw, ho, wo)
    if variant is not None and variant.rows == tuning.DENSE:
        meta = variant.meta(kw)
        dense.dwconv_dense_fwd_kernel[(triton.cdiv(n, meta["BM"]), triton.cdiv(ho * wo, meta["BN"]), c)](
            *args, **meta, **flag_args, num_warps=variant.warps)
        return out
    r = phases(ho, x.dtype)
    grid = fwd_grid(n, c, ho, wo, r)

    def run(chosen, warmup=False):  # warmup: compile only (tuner.compile_all)
        meta = chosen.meta(kw, vector_width(x) if chosen.rows == tuning.BATCH_ROWS else 1)
        kwargs = dict(R=r, **meta, **flag_args, num_warps=chosen.warps)
        if warmup:
            dwconv_fwd_kernel.warmup(*args, 0, grid=grid(meta), **kwargs)
        else:  # TUNE_CLASS 0: the tuner keys on it (forward_tuning), the kernel does not read it
            dwconv_fwd_kernel[grid(meta)](*args, 0, **kwargs)

    if variant is None:
        key, shortlist = forward_tuning(n, h, w, kh, kw, ho, wo, x.dtype, vector_width(x))
        variant = tuner.choose(key, shortlist, run, x.device)
    run(variant)
    return out


def bwd_input(grad_out, weight, ph, pw, out=None, *, variant=None):
    """The input gradient: the correlation of grad_out with the rotated kernel and padding
    k - 1 - p (negative is fine: the kernel masks by index, so no cropping is needed), through the
    forward and its ``variant``."""
    kh, kw = weight.shape[2], weight.shape[3]
    in_hw = input_size(grad_out.shape[2], grad_out.shape[3], kh, kw, ph, pw)
    return fwd(grad_out, weight.flip(2, 3), None, kh - 1 - ph, kw - 1 - pw, out_hw=in_hw, out=out, variant=variant)
