// Forward (and, with the rotated kernel, input gradient) as a direct tiled convolution on CUDA
// cores, fp32 accumulation for every dtype.
//
// A block stages, for PB planes (n, c), a (TY + kh - 1) x (TW + KWP) input tile and the plane's
// kernel (rows zero-padded to KWP, a multiple of 8) in shared memory as float. Each thread owns a
// strip of 8 outputs along W and slides along its input row eight taps at a time: per 8 taps it
// reads 16 floats of input and 8 weights (broadcast) as float4s and issues 64 FMAs, so shared
// memory stays below the FMA rate. Kernel rows and 8-tap chunks that only touch padding are
// skipped, which matters when the map is smaller than the kernel.
#pragma once

#include "common.cuh"

namespace replk_ops {

struct DirectTiling {
  int tx, ty;        // threads per plane along W (8 outputs each) and along H
  int pb;            // planes per block
  int kwp;           // kw rounded up to 8
  int stride;        // shared row length in floats, = 4 (mod 32) so float4 rows avoid bank conflicts
  int rows;          // ty + kh - 1
  int64_t plane_groups, tiles_w, tiles;
  size_t slot_floats, smem_bytes;
};

inline DirectTiling direct_tiling(const ConvParams& p, const DeviceInfo& d) {
  DirectTiling t;
  t.kwp = static_cast<int>(round_up(p.kw, 8));
  t.tx = static_cast<int>(ceil_div(p.Wo, 8) < 4 ? ceil_div(p.Wo, 8) : 4);
  t.ty = static_cast<int>(p.Ho < 64 ? p.Ho : 64);
  for (;;) {
    t.rows = t.ty + p.kh - 1;
    int width = 8 * t.tx + t.kwp;
    t.stride = static_cast<int>(round_up(width - 4, 32) + 4);
    t.slot_floats = static_cast<size_t>(t.rows) * t.stride + static_cast<size_t>(p.kh) * t.kwp;
    if (t.slot_floats * sizeof(float) <= static_cast<size_t>(d.max_smem_per_block) || t.ty == 1) break;
    t.ty = (t.ty + 1) / 2;  // very large kernels on GPUs with less shared memory
  }
  int per_plane = t.tx * t.ty;
  int by_threads = 256 / per_plane;
  int by_smem = static_cast<int>((48 * 1024) / (t.slot_floats * sizeof(float)));
  t.pb = by_threads < by_smem ? by_threads : by_smem;
  if (t.pb < 1) t.pb = 1;
  t.plane_groups = ceil_div(p.N * p.C, t.pb);
  t.tiles_w = ceil_div(p.Wo, 8 * t.tx);
  t.tiles = ceil_div(p.Ho, t.ty) * t.tiles_w;
  t.smem_bytes = t.pb * t.slot_floats * sizeof(float);
  return t;
}

// One 8-tap chunk of a thread's strip: b holds the 8 input values at the chunk's first column and
// receives the next 8 (16 in all, from `row`), the chunk's 8 weights come from `wrow`; 64 FMAs,
// then b slides by 8 for the next chunk.
__device__ __forceinline__ void direct_chunk(float (&acc)[8], float (&b)[16], const float* row, const float* wrow,
                                             int j0) {
  float wv[8];
  *reinterpret_cast<float4*>(b + 8) = *reinterpret_cast<const float4*>(row + j0 + 8);
  *reinterpret_cast<float4*>(b + 12) = *reinterpret_cast<const float4*>(row + j0 + 12);
  *reinterpret_cast<float4*>(wv) = *reinterpret_cast<const float4*>(wrow + j0);
  *reinterpret_cast<float4*>(wv + 4) = *reinterpret_cast<const float4*>(wrow + j0 + 4);
#pragma unroll
  for (int u = 0; u < 8; ++u) {
#pragma unroll
    for (int k = 0; k < 8; ++k) acc[k] = fmaf(wv[u], b[k + u], acc[k]);
  }
#pragma unroll
  for (int k = 0; k < 8; ++k) b[k] = b[k + 8];
}

// Where a thread of a direct kernel works: plane slot `slot` of the block, strip (tx, ty) of that
// plane's tile (thread lt of per_plane), and the tile's first output row h0 and column w0, for
// tiles of rows_per_thread * t.ty output rows.
struct DirectPlace {
  int per_plane, slot, lt, tx, ty;
  int64_t h0, w0, n, c;
  bool active;  // the slot holds a plane (the last block may have fewer)
};

__device__ __forceinline__ DirectPlace direct_place(const ConvParams& p, const DirectTiling& t, int rows_per_thread) {
  DirectPlace d;
  d.per_plane = t.tx * t.ty;
  d.slot = threadIdx.x / d.per_plane;
  d.lt = threadIdx.x % d.per_plane;
  d.tx = d.lt % t.tx;
  d.ty = d.lt / t.tx;
  // adjacent blocks take adjacent channels of the same tile: with channels_last they share lines
  const int64_t group = blockIdx.x % t.plane_groups;
  const int64_t tile = blockIdx.x / t.plane_groups;
  d.h0 = (tile / t.tiles_w) * (rows_per_thread * t.ty);
  d.w0 = (tile % t.tiles_w) * 8 * t.tx;
  const int64_t plane = group * t.pb + d.slot;
  d.active = plane < p.N * p.C;
  d.n = plane / p.C;
  d.c = plane % p.C;
  return d;
}

// CHUNKS = kwp / 8 as a compile-time constant fully unrolls the tap loop, so the sliding window
// costs no moves; CHUNKS = 0 is the generic loop for any kwp.
template <typename T, int CHUNKS>
__global__ void __launch_bounds__(256) dwconv_fwd_direct_kernel(const ConvParams p, const DirectTiling t) {
  REPLK_DYNAMIC_SHARED(float, smem, 16);
  const DirectPlace place = direct_place(p, t, 1);
  const int per_plane = place.per_plane, slot = place.slot, lt = place.lt, tx = place.tx, ty = place.ty;
  const int64_t h0 = place.h0, w0 = place.w0, n = place.n, c = place.c;
  const bool active = place.active;
  const int kwp = CHUNKS > 0 ? CHUNKS * 8 : t.kwp;
  float* tile_in = smem + slot * t.slot_floats;
  float* tile_w = tile_in + static_cast<size_t>(t.rows) * t.stride;
  const T* x = static_cast<const T*>(p.x);
  const T* w = static_cast<const T*>(p.w);

  if (active) {
    for (int e = lt; e < p.kh * kwp; e += per_plane) {
      int i = e / kwp, j = e % kwp;
      tile_w[e] = j < p.kw ? weight_at(w, c, i, j, p.kh, p.kw, p.flip) : 0.f;
    }
    stage_window(tile_in, t.stride, x + n * p.xs[0] + c * p.xs[1], p.xs[2], p.xs[3], h0 - p.ph, w0 - p.pw, p.H,
                 p.W, t.rows, 8 * t.tx + kwp, lt, per_plane);
  }
  __syncthreads();
  const int64_t oh = h0 + ty, ow0 = w0 + 8 * tx;
  if (!active || oh >= p.Ho || ow0 >= p.Wo) return;

  float acc[8];
#pragma unroll
  for (int k = 0; k < 8; ++k) acc[k] = 0.f;
  // input row oh + i - ph must lie in [0, H); 8-tap chunk j0 reads input columns
  // ow0 + j0 - pw .. ow0 + j0 + 14 - pw, which must meet [0, W)
  const int i_lo = static_cast<int>(max(int64_t(0), p.ph - oh));
  const int i_hi = static_cast<int>(min(int64_t(p.kh), p.H + p.ph - oh));
  int64_t j_first = p.pw - ow0 - 14;
  const int j_lo = j_first <= 0 ? 0 : static_cast<int>(round_up(j_first, 8));
  const int64_t j_last = p.W - 1 + p.pw - ow0;
  const int j_hi = static_cast<int>(min(int64_t(kwp), j_last + 1));
  for (int i = i_lo; i < i_hi && j_lo < j_hi; ++i) {
    const float* row = tile_in + (ty + i) * t.stride + 8 * tx;
    const float* wrow = tile_w + i * kwp;
    float b[16];
    if (CHUNKS > 0) {  // all chunks, unrolled; chunks on padding multiply zeros
      *reinterpret_cast<float4*>(b) = *reinterpret_cast<const float4*>(row);
      *reinterpret_cast<float4*>(b + 4) = *reinterpret_cast<const float4*>(row + 4);
#pragma unroll
      for (int chunk = 0; chunk < (CHUNKS > 0 ? CHUNKS : 1); ++chunk) direct_chunk(acc, b, row, wrow, chunk * 8);
    } else {
      *reinterpret_cast<float4*>(b) = *reinterpret_cast<const float4*>(row + j_lo);
      *reinterpret_cast<float4*>(b + 4) = *reinterpret_cast<const float4*>(row + j_lo + 4);
      for (int j0 = j_lo; j0 < j_hi; j0 += 8) direct_chunk(acc, b, row, wrow, j0);
    }
  }
  const float bias = p.bias ? to_float(static_cast<const T*>(p.bias)[c]) : 0.f;
  T* y = static_cast<T*>(p.y);
#pragma unroll
  for (int k = 0; k < 8; ++k) {
    if (ow0 + k < p.Wo) y[offset4(p.ys, n, c, oh, ow0 + k)] = from_float<T>(acc[k] + bias);
  }
}

template <typename T, int CHUNKS>
cudaError_t launch_fwd_direct_as(const ConvParams& p, const DirectTiling& t, int64_t blocks, cudaStream_t stream) {
  return launch_with_smem(dwconv_fwd_direct_kernel<T, CHUNKS>, blocks, t.pb * t.tx * t.ty, t.smem_bytes, stream, p, t);
}

// Takes every shape.
inline int fwd_direct_plan(const ConvParams&, const DeviceInfo&) { return 0; }

// variant kUnrolledTaps: the compile-time specialization for kw's chunk count (every kw <= 64);
// else the generic loop.
template <typename T>
cudaError_t launch_fwd_direct(const ConvParams& p, const DeviceInfo& d, cudaStream_t stream, int variant) {
  const bool unrolled = variant == kUnrolledTaps;
  if (p.N * p.C * p.Ho * p.Wo == 0) return cudaSuccess;
  DirectTiling t = direct_tiling(p, d);
  int64_t blocks = t.plane_groups * t.tiles;
  switch (unrolled ? t.kwp / 8 : 0) {
    case 1: return launch_fwd_direct_as<T, 1>(p, t, blocks, stream);
    case 2: return launch_fwd_direct_as<T, 2>(p, t, blocks, stream);
    case 3: return launch_fwd_direct_as<T, 3>(p, t, blocks, stream);
    case 4: return launch_fwd_direct_as<T, 4>(p, t, blocks, stream);
    case 5: return launch_fwd_direct_as<T, 5>(p, t, blocks, stream);
    case 6: return launch_fwd_direct_as<T, 6>(p, t, blocks, stream);
    case 7: return launch_fwd_direct_as<T, 7>(p, t, blocks, stream);
    case 8: return launch_fwd_direct_as<T, 8>(p, t, blocks, stream);
    default: return launch_fwd_direct_as<T, 0>(p, t, blocks, stream);
  }
}

}  // namespace replk_ops
