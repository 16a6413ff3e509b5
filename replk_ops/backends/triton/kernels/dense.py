"""The dense per-channel GEMM for kernels that cover the whole map (docs/design.md,
"Dense path").

When kh >= 2H - 1 and kw >= 2W - 1, every output pixel sees every input pixel, so per channel

    Y[n, q] = sum_p X[n, p] * T[p, q],   T[p, q] = w[c, hi(p) - ho(q) + ph, wi(p) - wo(q) + pw]

(p = (hi, wi) an input pixel, q = (ho, wo) an output pixel) is an (N x HW) @ (HW x HoWo) GEMM
that spends no multiply on a padded tap: at RepLKNet-31B stage 3 (14x14 maps, 27x27 kernels) 27%
of the nominal work. T is gathered from the kernel tile by tile and never stored. The kernel is
correct for any shape (out-of-range pairs are masked to zero); the launcher uses it only where it
saves work. The input gradient is the same product with the rotated kernel.
"""
import triton
import triton.language as tl

from .common import _dot

BK = 32  # input pixels per step of the reduction


@triton.jit
def dwconv_dense_fwd_kernel(
    x_ptr, w_ptr, b_ptr, y_ptr,
    N, H, W, Ho, Wo, KH, KW, PH, PW,
    sxn, sxc, sxh, sxw, syn, syc, syh, syw,
    HAS_BIAS: tl.constexpr, BM: tl.constexpr, BN: tl.constexpr, BK: tl.constexpr,
    UPCAST: tl.constexpr, IEEE: tl.constexpr,
):
    pid_m = tl.program_id(0)
    pid_n = tl.program_id(1)
    c = tl.program_id(2).to(tl.int64)

    n = pid_m * BM + tl.arange(0, BM)
    n_ok = n < N
    x_images = x_ptr + n.to(tl.int64)[:, None] * sxn + c * sxc
    q = pid_n * BN + tl.arange(0, BN)
    q_ok = q < Ho * Wo
    ho = q // Wo
    wo = q % Wo
    w_channel = w_ptr + c * KH * KW

    acc = tl.zeros((BM, BN), dtype=tl.float32)
    for k0 in range(0, H * W, BK):
        p = k0 + tl.arange(0, BK)
        p_ok = p < H * W
        hi = p // W
        wi = p % W
        x_tile = tl.load(x_images + hi.to(tl.int64)[None, :] * sxh + wi.to(tl.int64)[None, :] * sxw,
                         mask=n_ok[:, None] & p_ok[None, :], other=0.0)
        i = hi[:, None] - ho[None, :] + PH
        j = wi[:, None] - wo[None, :] + PW
        t_ok = p_ok[:, None] & q_ok[None, :] & (i >= 0) & (i < KH) & (j >= 0) & (j < KW)
        t_tile = tl.load(w_channel + i * KW + j, mask=t_ok, other=0.0)
        acc = _dot(x_tile, t_tile, acc, UPCAST, IEEE)

    if HAS_BIAS:
        acc += tl.load(b_ptr + c).to(tl.float32)
    y_ptrs = (y_ptr + n.to(tl.int64)[:, None] * syn + c * syc + ho.to(tl.int64)[None, :] * syh
              + wo.to(tl.int64)[None, :] * syw)
    tl.store(y_ptrs, acc.to(y_ptr.dtype.element_ty), mask=n_ok[:, None] & q_ok[None, :])


def covers_map(h: int, w: int, kh: int, kw: int) -> bool:
    """Every output sees every input pixel (and the map is small enough for one channel's GEMM)."""
    return kh >= 2 * h - 1 and kw >= 2 * w - 1 and h * w <= 1024


def tiles(n: int, out_pixels: int):
    """(BM images, BN output pixels) per program (tuning.dense_variant)."""
    bm = 16 if n <= 16 else (32 if n <= 32 else 64)
    bn = 64 if out_pixels > 32 else 32
    return bm, bn
