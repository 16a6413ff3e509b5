"""Depthwise conv as tensor-core GEMMs (see the design notes, sections 5.2, 5.3 and 5.5).

Forward (and the input gradient, which is the forward with the kernel rotated): for one channel
and kernel row i, a strip of BN output columns is

    Y[rows, w0 : w0+BN] += X_i[rows, w0-pw : w0-pw+BK] @ T_i,  T_i[a, b] = w[i, a-b] (0 <= a-b < kw)

where rows run over (n, h) of all images and X_i's row is input row h + i - ph. Two ways to pick
a tile's GEMM rows, a compile-time switch of the one forward kernel so the autotuner can time both:

- group rows (any batch): groups of R consecutive output rows of one image, one accumulator per
  phase, so one gathered input tile serves R kernel rows at once. Input rows that touch no group
  of the tile are skipped.
- batch rows (batch >= 16): the same R output rows h0 .. h0+R-1 of BM images. Every tile row then
  reads the same input row, so the tile's rows need no bounds (the loop covers only input rows
  inside the map), its addresses are affine, and where the strides allow it the tile starts on an
  aligned column and loads as vectors. Each kernel row's band is gathered once and carried
  through the R iterations that use it.

Weight gradient: for kernel row i and a strip of BN output columns,

    P_i = dY[rows, w0 : w0+BN]^T @ X_i[rows, w0-pw : w0-pw+BK],  dw[i, j] += sum_b P_i[b, b+j]

with the rows (all N*Ho of them, or a split of them) as the GEMM's reduction dimension. A program
owns R kernel rows and pairs one gathered input tile with R grad_out tiles shifted by a row each.
Each program writes its partial rows of dw to a small workspace that is summed in a fixed order,
so the result is deterministic.

Layouts are handled through strides (NCHW, channels_last or any view), offsets are 64-bit, and
all accumulation is float32.
"""
import triton
import triton.language as tl


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
    a = tl.arange(0, BK)
    w_in = pid_n * BN - PW + a
    w_in_ok = (w_in >= 0) & (w_in < W)
    x_rows = x_ptr + n * sxn + c * sxc
    x_cols = w_in.to(tl.int64) * sxw
    band = a[:, None] - tl.arange(0, BN)[None, :]
    band_ok = (band >= 0) & (band < KW)
    w_chan = w_ptr + c * KH * KW  # a scalar: the band's offsets stay 32-bit, which saves registers

    # input row offsets that reach the image for some group of this tile
    first = pid_m * BM
    last = tl.minimum(first + BM, total_groups) - 1
    same_image = (first // groups_per_image) == (last // groups_per_image)
    h_lo = tl.where(same_image, (first % groups_per_image) * R, 0)
    h_hi = tl.where(same_image, (last % groups_per_image) * R, Ho - R)
    rho_lo = tl.maximum(0, PH - h_hi)
    rho_hi = tl.minimum(KH + R - 1, H + PH - h_lo)

    acc0 = tl.zeros((BM, BN), dtype=tl.float32)
    acc1 = tl.zeros((BM, BN), dtype=tl.float32)
    acc2 = tl.zeros((BM, BN), dtype=tl.float32)
    acc3 = tl.zeros((BM, BN), dtype=tl.float32)
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

    bias = 0.0
    if HAS_BIAS:
        bias = tl.load(b_ptr + c).to(tl.float32)
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
    a = tl.arange(0, BK)
    w_in, w_in_ok, shift = _aligned_input_columns(pid_n * BN - PW, a, W, ALIGN)
    row_offsets = n.to(tl.int64) * sxn
    if ALIGN > 1:
        row_offsets = tl.multiple_of(row_offsets, ALIGN)
    tile_ok = n_ok[:, None] & w_in_ok[None, :]
    offsets = row_offsets[:, None] + w_in.to(tl.int64)[None, :] * sxw
    band = a[:, None] - shift - tl.arange(0, BN)[None, :]
    band_ok = (band >= 0) & (band < KW)
    w_chan = w_ptr + c * KH * KW

    # only input rows inside the map: no tile row ever needs a bounds check
    rho_lo = tl.maximum(0, PH - h0)
    rho_hi = tl.minimum(KH + R - 1, H + PH - h0)
    acc0 = tl.zeros((BM, BN), dtype=tl.float32)
    acc1 = tl.zeros((BM, BN), dtype=tl.float32)
    acc2 = tl.zeros((BM, BN), dtype=tl.float32)
    acc3 = tl.zeros((BM, BN), dtype=tl.float32)
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

    bias = 0.0
    if HAS_BIAS:
        bias = tl.load(b_ptr + c).to(tl.float32)
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
    (C * cdiv(Ho, R), cdiv(Wo, BN), cdiv(N, BM)) with BATCH_ROWS. TUNE_CLASS is not read: it is
    part of the autotuning key (launch.tune_class)."""
    if BATCH_ROWS:
        _fwd_batch_rows(x_ptr, w_ptr, b_ptr, y_ptr, N, H, W, Ho, Wo, KH, KW, PH, PW,
                        sxn, sxc, sxh, sxw, syn, syc, syh, syw, HAS_BIAS, R, BM, BN, BK, UPCAST, IEEE, ALIGN)
    else:
        _fwd_group_rows(x_ptr, w_ptr, b_ptr, y_ptr, N, H, W, Ho, Wo, KH, KW, PH, PW,
                        sxn, sxc, sxh, sxw, syn, syc, syh, syw, HAS_BIAS, R, BM, BN, BK, UPCAST, IEEE, CARRY_BANDS)


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
    b = tl.arange(0, BN)
    a = tl.arange(0, BK)
    w_out = strip * BN + b
    w_out_ok = w_out < Wo
    w_in = strip * BN - PW + a
    w_in_ok = (w_in >= 0) & (w_in < W)
    rows_per_image = Ho + R - 1
    total_rows = N * rows_per_image
    row_start = split * ROWS_PER_SPLIT
    row_end = tl.minimum(row_start + ROWS_PER_SPLIT, total_rows)
    dy_chan = dy_ptr + c * sdc
    acc0, acc1, acc2, acc3, diagonal = _weight_accumulators(a, b, 0, BN, BK, TRANSPOSED)
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
def _weight_accumulators(a, b, shift, BN: tl.constexpr, BK: tl.constexpr, TRANSPOSED: tl.constexpr):
    """Four zero products (one per phase) in the orientation of TRANSPOSED, and the kernel
    column of each of their elements (input column a, which is tile column a - shift past the
    strip's first input column, against output column b)."""
    if TRANSPOSED:  # P^T[a, b] = P[b, a]
        diagonal = a[:, None] - shift - b[None, :]
    else:
        diagonal = a[None, :] - shift - b[:, None]
    zero = tl.zeros(diagonal.shape, dtype=tl.float32)
    return zero, zero, zero, zero, diagonal


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
    b = tl.arange(0, BN)
    a = tl.arange(0, BK)
    w_out = strip * BN + b
    if DY_ALIGN > 1:
        w_out = tl.max_contiguous(tl.multiple_of(w_out, DY_ALIGN), DY_ALIGN)
    w_out_ok = (strip * BN + (b // DY_ALIGN) * DY_ALIGN) < Wo  # per chunk (Wo is a multiple of DY_ALIGN)
    w_in, w_in_ok, shift = _aligned_input_columns(strip * BN - PW, a, W, ALIGN)
    x_chan_offset = c * sxc
    dy_chan_offset = c * sdc

    loop_rows = Ho + R - 1
    per_split = tl.cdiv(loop_rows, SPLITS)
    hh_lo = tl.maximum(split * per_split, PH - i0)
    hh_hi = tl.minimum(tl.minimum(split * per_split + per_split, loop_rows), H + PH - i0)

    acc0, acc1, acc2, acc3, diagonal = _weight_accumulators(a, b, shift, BN, BK, TRANSPOSED)
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
    rows SPLITS ways. TUNE_CLASS is not read: it is part of the autotuning key."""
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
