"""Depthwise conv as tensor-core GEMMs (see the design notes, sections 5.2, 5.3 and 5.5).

Forward (and the input gradient, which is the forward with the kernel rotated): for one channel
and kernel row i, a strip of BN output columns is

    Y[rows, w0 : w0+BN] += X_i[rows, w0-pw : w0-pw+BK] @ T_i,  T_i[a, b] = w[i, a-b] (0 <= a-b < kw)

where rows run over (n, h) of all images and X_i's row is input row h + i - ph. Kernel rows
that touch no input row of the tile are skipped.

Weight gradient: for kernel row i and a strip of BN output columns,

    P_i = dY[rows, w0 : w0+BN]^T @ X_i[rows, w0-pw : w0-pw+BK],  dw[i, j] += sum_b P_i[b, b+j]

with the rows (all N*Ho of them, or a split of them) as the GEMM's reduction dimension. Each
program writes its partial row of dw to a small workspace that is summed in a fixed order, so the
result is deterministic.

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
def dwconv_fwd_kernel(
    x_ptr, w_ptr, b_ptr, y_ptr,
    N, H, W, Ho, Wo, KH, KW, PH, PW,
    sxn, sxc, sxh, sxw, syn, syc, syh, syw,
    HAS_BIAS: tl.constexpr, BM: tl.constexpr, BN: tl.constexpr, BK: tl.constexpr,
    UPCAST: tl.constexpr, IEEE: tl.constexpr,
):
    pid_m = tl.program_id(0)
    pid_n = tl.program_id(1)
    c = tl.program_id(2).to(tl.int64)

    rows = pid_m * BM + tl.arange(0, BM)
    total_rows = N * Ho
    row_ok = rows < total_rows
    n = (rows // Ho).to(tl.int64)
    h = rows % Ho
    cols = pid_n * BN + tl.arange(0, BN)
    a = tl.arange(0, BK)
    w_in = pid_n * BN - PW + a
    w_in_ok = (w_in >= 0) & (w_in < W)
    x_rows = x_ptr + n * sxn + c * sxc
    x_cols = w_in.to(tl.int64) * sxw
    band = a[:, None] - tl.arange(0, BN)[None, :]
    band_ok = (band >= 0) & (band < KW)

    # kernel rows that reach an input row for some output row of this tile
    first = pid_m * BM
    last = tl.minimum(first + BM, total_rows) - 1
    same_image = (first // Ho) == (last // Ho)
    h_lo = tl.where(same_image, first % Ho, 0)
    h_hi = tl.where(same_image, last % Ho, Ho - 1)
    i_lo = tl.maximum(0, PH - h_hi)
    i_hi = tl.minimum(KH, H + PH - h_lo)

    acc = tl.zeros((BM, BN), dtype=tl.float32)
    for i in range(i_lo, i_hi):
        h_in = h + i - PH
        ok = row_ok & (h_in >= 0) & (h_in < H)
        tile = tl.load(x_rows[:, None] + h_in.to(tl.int64)[:, None] * sxh + x_cols[None, :],
                       mask=ok[:, None] & w_in_ok[None, :], other=0.0)
        toeplitz = tl.load(w_ptr + c * KH * KW + i * KW + band, mask=band_ok, other=0.0)
        acc = _dot(tile, toeplitz, acc, UPCAST, IEEE)

    if HAS_BIAS:
        acc += tl.load(b_ptr + c).to(tl.float32)
    y = y_ptr + n[:, None] * syn + c * syc + h.to(tl.int64)[:, None] * syh + cols.to(tl.int64)[None, :] * syw
    tl.store(y, acc.to(y_ptr.dtype.element_ty), mask=row_ok[:, None] & (cols < Wo)[None, :])


@triton.jit
def dwconv_bwd_weight_kernel(
    dy_ptr, x_ptr, part_ptr,
    N, C, H, W, Ho, Wo, KH, KW, PH, PW, ROWS_PER_SPLIT, SPLITS,
    sdn, sdc, sdh, sdw, sxn, sxc, sxh, sxw,
    BR: tl.constexpr, BN: tl.constexpr, BK: tl.constexpr, KWP: tl.constexpr,
    UPCAST: tl.constexpr, IEEE: tl.constexpr,
):
    pid = tl.program_id(0)
    strip = pid // SPLITS
    split = pid % SPLITS
    i = tl.program_id(1)
    c = tl.program_id(2).to(tl.int64)

    b = tl.arange(0, BN)
    a = tl.arange(0, BK)
    w_out = strip * BN + b
    w_out_ok = w_out < Wo
    w_in = strip * BN - PW + a
    w_in_ok = (w_in >= 0) & (w_in < W)
    total_rows = N * Ho
    row_start = split * ROWS_PER_SPLIT
    row_end = tl.minimum(row_start + ROWS_PER_SPLIT, total_rows)

    acc = tl.zeros((BN, BK), dtype=tl.float32)
    for r0 in range(row_start, row_end, BR):
        rows = r0 + tl.arange(0, BR)
        rows_ok = rows < row_end
        n = (rows // Ho).to(tl.int64)
        h = rows % Ho
        h_in = h + i - PH
        in_ok = rows_ok & (h_in >= 0) & (h_in < H)
        dy_t = tl.load(dy_ptr + n[None, :] * sdn + c * sdc + h.to(tl.int64)[None, :] * sdh
                       + w_out.to(tl.int64)[:, None] * sdw,
                       mask=w_out_ok[:, None] & rows_ok[None, :], other=0.0)
        tile = tl.load(x_ptr + n[:, None] * sxn + c * sxc + h_in.to(tl.int64)[:, None] * sxh
                       + w_in.to(tl.int64)[None, :] * sxw,
                       mask=in_ok[:, None] & w_in_ok[None, :], other=0.0)
        acc = _dot(dy_t, tile, acc, UPCAST, IEEE)

    # dw[i, j] = sum_b P[b, b + j]: the band of P, one diagonal per kernel column
    diagonal = a[None, :] - b[:, None]
    j_all = tl.arange(0, KWP)
    out = tl.zeros((KWP,), dtype=tl.float32)
    for j in range(0, KW):
        value = tl.sum(tl.sum(tl.where(diagonal == j, acc, 0.0), axis=1), axis=0)
        out = tl.where(j_all == j, value, out)
    part = part_ptr + ((pid.to(tl.int64) * C + c) * KH + i) * KW
    tl.store(part + j_all, out, mask=j_all < KW)
