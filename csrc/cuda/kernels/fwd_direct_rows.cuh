// Forward (and input gradient) on CUDA cores with two output rows per thread: the direct kernel of
// fwd_direct.cuh with half its shared-memory traffic per FMA, for fp32's FMA-bound shapes.
//
// As there, a block stages the input windows and kernels of PB planes in shared memory as float
// and each thread owns 8 outputs along W, but for RY = 2 adjacent output rows. Window row q feeds
// kernel row q of the first output row and kernel row q - 1 of the second, so per 8-tap step a
// thread loads 8 new input values once and 2 x 8 weights (broadcasts) for 128 FMAs, where the
// one-row kernel loads 8 and 8 for 64. The kernel is staged with a zero row above and below it, so
// the first and last window rows need no branch. Window rows are skewed (rows r with r / 2 odd sit
// four floats to the right) so the float4 loads of a quarter-warp, two thread rows of four
// threads, hit eight distinct bank groups for any row stride.
#pragma once

#include "fwd_direct.cuh"

namespace replk_ops {

constexpr int kDirectRows = 2;  // output rows per thread

inline DirectTiling direct_rows_tiling(const ConvParams& p, const DeviceInfo& d) {
  DirectTiling t;
  t.kwp = static_cast<int>(round_up(p.kw, 8));
  t.tx = static_cast<int>(ceil_div(p.Wo, 8) < 4 ? ceil_div(p.Wo, 8) : 4);
  const int64_t row_pairs = ceil_div(p.Ho, kDirectRows);
  t.ty = static_cast<int>(row_pairs < 32 ? row_pairs : 32);
  for (;;) {
    t.rows = kDirectRows * t.ty + p.kh - 1;
    t.stride = static_cast<int>(round_up(8 * t.tx + t.kwp + 4, 4));  // + 4: room for the skew
    t.slot_floats = static_cast<size_t>(t.rows) * t.stride + static_cast<size_t>(p.kh + 2) * t.kwp;
    if (t.slot_floats * sizeof(float) <= static_cast<size_t>(d.max_smem_per_block) || t.ty == 1) break;
    t.ty = (t.ty + 1) / 2;
  }
  // Planes per block: up to 256 threads within a quarter of the SM's shared memory (so four
  // blocks fit on an SM), as whole warps where the plane size allows.
  const int per_plane = t.tx * t.ty;
  const size_t budget = static_cast<size_t>(d.max_smem_per_block) / 4 > 48 * 1024
                            ? static_cast<size_t>(d.max_smem_per_block) / 4 : 48 * 1024;
  int pb = 256 / per_plane;
  const int by_smem = static_cast<int>(budget / (t.slot_floats * sizeof(float)));
  if (by_smem < pb) pb = by_smem;
  if (pb < 1) pb = 1;
  for (int whole = pb; whole >= 1; --whole) {
    if ((whole * per_plane) % 32 == 0) {
      pb = whole;
      break;
    }
  }
  t.pb = pb;
  t.plane_groups = ceil_div(p.N * p.C, t.pb);
  t.tiles_w = ceil_div(p.Wo, 8 * t.tx);
  t.tiles = ceil_div(p.Ho, kDirectRows * t.ty) * t.tiles_w;
  t.smem_bytes = t.pb * t.slot_floats * sizeof(float);
  return t;
}

template <typename T, int CHUNKS>
__global__ void __launch_bounds__(256) dwconv_fwd_direct_rows_kernel(const ConvParams p, const DirectTiling t) {
  constexpr int RY = kDirectRows;
  constexpr int kwp = CHUNKS * 8;
  REPLK_DYNAMIC_SHARED(float, smem, 16);
  const DirectPlace place = direct_place(p, t, RY);
  const int per_plane = place.per_plane, slot = place.slot, lt = place.lt, tx = place.tx, ty = place.ty;
  const int64_t h0 = place.h0, w0 = place.w0, n = place.n, c = place.c;
  const bool active = place.active;
  float* tile_in = smem + slot * t.slot_floats;
  // kernel row i is row i + 1 here; rows 0 and kh + 1 are zeros
  float* tile_w = tile_in + static_cast<size_t>(t.rows) * t.stride;
  const T* x = static_cast<const T*>(p.x);
  const T* w = static_cast<const T*>(p.w);

  if (active) {
    for (int e = lt; e < (p.kh + 2) * kwp; e += per_plane) {
      const int i = e / kwp - 1, j = e % kwp;
      tile_w[e] = i >= 0 && i < p.kh && j < p.kw ? weight_at(w, c, i, j, p.kh, p.kw, p.flip) : 0.f;
    }
    stage_window<T, RY>(tile_in, t.stride, x + n * p.xs[0] + c * p.xs[1], p.xs[2], p.xs[3], h0 - p.ph, w0 - p.pw,
                        p.H, p.W, t.rows, 8 * t.tx + kwp, lt, per_plane);
  }
  __syncthreads();
  const int64_t oh = h0 + RY * ty, ow0 = w0 + 8 * tx;
  if (!active || oh >= p.Ho || ow0 >= p.Wo) return;

  float acc[RY][8];
#pragma unroll
  for (int r = 0; r < RY; ++r)
#pragma unroll
    for (int k = 0; k < 8; ++k) acc[r][k] = 0.f;
  // window row q (input row oh + q - ph) feeds kernel row q - r of output row oh + r; rows outside
  // the input are skipped
  const int q_lo = static_cast<int>(max(int64_t(0), p.ph - oh));
  const int q_hi = static_cast<int>(min(int64_t(p.kh + RY - 1), p.H + p.ph - oh));
  for (int q = q_lo; q < q_hi; ++q) {
    const float* row = tile_in + skewed_row_offset<RY>(RY * ty + q, t.stride) + 8 * tx;
    const float* wrow = tile_w + (q + 1) * kwp;  // kernel row q; kernel row q - r is r rows up
    float b[16];
    *reinterpret_cast<float4*>(b) = *reinterpret_cast<const float4*>(row);
    *reinterpret_cast<float4*>(b + 4) = *reinterpret_cast<const float4*>(row + 4);
#pragma unroll
    for (int chunk = 0; chunk < CHUNKS; ++chunk) {
      const int j0 = chunk * 8;
      *reinterpret_cast<float4*>(b + 8) = *reinterpret_cast<const float4*>(row + j0 + 8);
      *reinterpret_cast<float4*>(b + 12) = *reinterpret_cast<const float4*>(row + j0 + 12);
#pragma unroll
      for (int r = 0; r < RY; ++r) {
        float wv[8];
        *reinterpret_cast<float4*>(wv) = *reinterpret_cast<const float4*>(wrow - r * kwp + j0);
        *reinterpret_cast<float4*>(wv + 4) = *reinterpret_cast<const float4*>(wrow - r * kwp + j0 + 4);
#pragma unroll
        for (int u = 0; u < 8; ++u) {
#pragma unroll
          for (int k = 0; k < 8; ++k) acc[r][k] = fmaf(wv[u], b[k + u], acc[r][k]);
        }
      }
#pragma unroll
      for (int k = 0; k < 8; ++k) b[k] = b[k + 8];
    }
  }
  const float bias = p.bias ? to_float(static_cast<const T*>(p.bias)[c]) : 0.f;
  T* y = static_cast<T*>(p.y);
#pragma unroll
  for (int r = 0; r < RY; ++r) {
    if (oh + r >= p.Ho) break;
#pragma unroll
    for (int k = 0; k < 8; ++k) {
      if (ow0 + k < p.Wo) y[offset4(p.ys, n, c, oh + r, ow0 + k)] = from_float<T>(acc[r][k] + bias);
    }
  }
}

template <typename T, int CHUNKS>
cudaError_t launch_fwd_direct_rows_as(const ConvParams& p, const DirectTiling& t, int64_t blocks,
                                      cudaStream_t stream) {
  return launch_with_smem(dwconv_fwd_direct_rows_kernel<T, CHUNKS>, blocks, t.pb * t.tx * t.ty, t.smem_bytes, stream,
                          p, t);
}

// Takes every shape.
inline int fwd_direct_rows_plan(const ConvParams&, const DeviceInfo&) { return 0; }

template <typename T>
cudaError_t launch_fwd_direct_rows(const ConvParams& p, const DeviceInfo& d, cudaStream_t stream, int /*variant*/) {
  if (p.N * p.C * p.Ho * p.Wo == 0) return cudaSuccess;
  DirectTiling t = direct_rows_tiling(p, d);
  int64_t blocks = t.plane_groups * t.tiles;
  switch (t.kwp / 8) {  // kw <= 64: always one of these
    case 1: return launch_fwd_direct_rows_as<T, 1>(p, t, blocks, stream);
    case 2: return launch_fwd_direct_rows_as<T, 2>(p, t, blocks, stream);
    case 3: return launch_fwd_direct_rows_as<T, 3>(p, t, blocks, stream);
    case 4: return launch_fwd_direct_rows_as<T, 4>(p, t, blocks, stream);
    case 5: return launch_fwd_direct_rows_as<T, 5>(p, t, blocks, stream);
    case 6: return launch_fwd_direct_rows_as<T, 6>(p, t, blocks, stream);
    case 7: return launch_fwd_direct_rows_as<T, 7>(p, t, blocks, stream);
    case 8: return launch_fwd_direct_rows_as<T, 8>(p, t, blocks, stream);
    default: return cudaErrorInvalidValue;
  }
}

}  // namespace replk_ops
