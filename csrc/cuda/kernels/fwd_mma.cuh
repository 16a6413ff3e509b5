// Forward (and input gradient) for fp16/bf16 on tensor cores: the row-Toeplitz product
// (docs/design.md, "Row-Toeplitz products").
//
// For kernel row i, a 16 x 16 output tile is A_i @ T_i, where A_i is 16 input rows of BK columns
// (BK >= 16 + kw - 1, a multiple of 16) and T_i[a, b] = w[i, a - b] for 0 <= a - b < kw, else 0.
// A block owns one channel and builds all kh Toeplitz matrices in shared memory once; each warp
// then takes 16 x 16 output tiles of that channel (any image) in turn, stages its input rows in
// its own shared buffer and accumulates kh x BK/16 WMMA products in fp32. Kernel rows and column
// blocks that only see padding are skipped.
#pragma once

#include <mma.h>

#include "common.cuh"

namespace replk_ops {

struct MmaTiling {
  int bk;            // K of one kernel row's product
  int ldx;           // shared row length of a warp's input tile (a multiple of 16)
  int rows;          // 16 + kh - 1
  int warps;
  int64_t tiles_w, tiles_per_image, tiles_per_channel, tiles_per_block;
  int splits;        // blocks per channel
  size_t toeplitz_bytes, warp_bytes, smem_bytes;
};

inline MmaTiling mma_tiling(const ConvParams& p, const DeviceInfo& d) {
  MmaTiling t;
  t.bk = static_cast<int>(round_up(15 + p.kw, 16));
  t.ldx = (t.bk / 16) % 2 ? t.bk : t.bk + 16;  // an odd number of 32-byte units: fewer bank conflicts
  t.rows = 16 + p.kh - 1;
  t.toeplitz_bytes = static_cast<size_t>(p.kh) * t.bk * 16 * 2;
  t.warp_bytes = static_cast<size_t>(t.rows) * t.ldx * 2 + 16 * 16 * sizeof(float);
  t.warps = 8;
  while (t.warps > 1 && t.toeplitz_bytes + t.warps * t.warp_bytes > static_cast<size_t>(d.max_smem_per_block))
    --t.warps;
  t.smem_bytes = t.toeplitz_bytes + t.warps * t.warp_bytes;
  t.tiles_w = ceil_div(p.Wo, 16);
  t.tiles_per_image = ceil_div(p.Ho, 16) * t.tiles_w;
  t.tiles_per_channel = p.N * t.tiles_per_image;
  int64_t splits = ceil_div(4LL * d.sm_count, p.C);
  int64_t most = ceil_div(t.tiles_per_channel, t.warps);  // at least a tile per warp
  if (splits > most) splits = most;
  t.splits = static_cast<int>(splits < 1 ? 1 : splits);
  t.tiles_per_block = ceil_div(t.tiles_per_channel, t.splits);
  return t;
}

// (Compute capability 8.0+ is the algo table's min_cc, checked before any launch.)
inline bool mma_fits(const ConvParams& p, const DeviceInfo& d) {
  MmaTiling t = mma_tiling(p, d);
  return t.smem_bytes <= static_cast<size_t>(d.max_smem_per_block);
}

// The kh Toeplitz matrices of channel c, T_i[a, b] = w[i, a - b] (0 <= a - b < kw), bk x 16 each,
// built by the block's threads.
template <typename T>
__device__ __forceinline__ void build_toeplitz(T* toeplitz, const ConvParams& p, int bk, int64_t c) {
  const T* w = static_cast<const T*>(p.w);
  const int toeplitz_elems = p.kh * bk * 16;
  for (int e = threadIdx.x; e < toeplitz_elems; e += blockDim.x) {
    int i = e / (bk * 16), a = (e / 16) % bk, b = e % 16;
    int j = a - b;
    toeplitz[e] = from_float<T>(j >= 0 && j < p.kw ? weight_at(w, c, i, j, p.kh, p.kw, p.flip) : 0.f);
  }
}

// Stages rows x width input elements starting at input (hi0, wi0) of plane (n, c) into `tile`
// (row length ldx), zeros outside the image; threads tid = 0..nthreads-1, four loads in flight.
template <typename T>
__device__ __forceinline__ void stage_input(T* tile, int ldx, int rows, int width, const ConvParams& p, int64_t n,
                                            int64_t c, int64_t hi0, int64_t wi0, int tid, int nthreads) {
  const T* x = static_cast<const T*>(p.x);
  const int elems = rows * width;
  for (int base = 0; base < elems; base += nthreads * 4) {
    T v[4];
#pragma unroll
    for (int u = 0; u < 4; ++u) {
      int e = base + u * nthreads + tid;
      int rr = e / width, q = e % width;
      int64_t hi = hi0 + rr, wi = wi0 + q;
      bool inside = e < elems && hi >= 0 && hi < p.H && wi >= 0 && wi < p.W;
      v[u] = inside ? x[offset4(p.xs, n, c, hi, wi)] : from_float<T>(0.f);
    }
#pragma unroll
    for (int u = 0; u < 4; ++u) {
      int e = base + u * nthreads + tid;
      if (e < elems) tile[(e / width) * ldx + e % width] = v[u];
    }
  }
}

// One warp's 16 x 16 output tile at (h0, w0): the row-Toeplitz products over the kernel rows and
// column blocks that touch the image (`a_base`: the tile's input rows, row length ldx), then
// through `tile_out` (256 floats) to y with the bias.
template <typename T>
__device__ __forceinline__ void mma_tile_and_store(const T* a_base, int ldx, const T* toeplitz, int bk, float* tile_out,
                                                   const ConvParams& p, int64_t n, int64_t c, int64_t h0, int64_t w0,
                                                   float bias, int lane) {
  using namespace nvcuda;
  wmma::fragment<wmma::accumulator, 16, 16, 16, float> acc;
  wmma::fill_fragment(acc, 0.f);
  const int64_t last_row = min(int64_t(15), p.Ho - 1 - h0);
  const int i_lo = static_cast<int>(max(int64_t(0), p.ph - h0 - last_row));
  const int i_hi = static_cast<int>(min(int64_t(p.kh), p.H + p.ph - h0));
  // column block kk covers input columns w0 - pw + 16 kk .. + 15
  const int64_t k_first = p.pw - w0 - 15;
  const int k_lo = k_first <= 0 ? 0 : static_cast<int>(ceil_div(k_first, 16));
  const int k_hi = static_cast<int>(min(int64_t(bk / 16), (p.W - 1 + p.pw - w0) / 16 + 1));
  for (int i = i_lo; i < i_hi; ++i) {
    for (int kk = k_lo; kk < k_hi; ++kk) {
      wmma::fragment<wmma::matrix_a, 16, 16, 16, T, wmma::row_major> a;
      wmma::fragment<wmma::matrix_b, 16, 16, 16, T, wmma::row_major> b;
      wmma::load_matrix_sync(a, a_base + i * ldx + kk * 16, ldx);
      wmma::load_matrix_sync(b, toeplitz + (static_cast<size_t>(i) * bk + kk * 16) * 16, 16);
      wmma::mma_sync(acc, a, b, acc);
    }
  }
  wmma::store_matrix_sync(tile_out, acc, 16, wmma::mem_row_major);
  __syncwarp();
  T* y = static_cast<T*>(p.y);
  for (int e = lane; e < 256; e += 32) {
    int64_t oh = h0 + e / 16, ow = w0 + e % 16;
    if (oh < p.Ho && ow < p.Wo) y[offset4(p.ys, n, c, oh, ow)] = from_float<T>(tile_out[e] + bias);
  }
  __syncwarp();
}

template <typename T>
__global__ void __launch_bounds__(256) dwconv_fwd_mma_kernel(const ConvParams p, const MmaTiling t) {
#if !defined(__CUDA_ARCH__) || __CUDA_ARCH__ >= 800
  REPLK_DYNAMIC_SHARED(unsigned char, smem, 128);
  T* toeplitz = reinterpret_cast<T*>(smem);
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  unsigned char* mine = smem + t.toeplitz_bytes + warp * t.warp_bytes;
  T* tile_in = reinterpret_cast<T*>(mine);
  float* tile_out = reinterpret_cast<float*>(mine + static_cast<size_t>(t.rows) * t.ldx * 2);
  const int64_t c = blockIdx.x % p.C;
  const int64_t split = blockIdx.x / p.C;
  build_toeplitz(toeplitz, p, t.bk, c);
  __syncthreads();
  const float bias = p.bias ? to_float(static_cast<const T*>(p.bias)[c]) : 0.f;

  const int64_t first = split * t.tiles_per_block;
  const int64_t last = min(first + t.tiles_per_block, t.tiles_per_channel);
  for (int64_t tile = first + warp; tile < last; tile += t.warps) {
    const int64_t n = tile / t.tiles_per_image;
    const int64_t r = tile % t.tiles_per_image;
    const int64_t h0 = (r / t.tiles_w) * 16, w0 = (r % t.tiles_w) * 16;
    // input rows h0 - ph + 0 .. rows-1, columns w0 - pw + 0 .. bk-1
    stage_input(tile_in, t.ldx, t.rows, t.bk, p, n, c, h0 - p.ph, w0 - p.pw, lane, 32);
    __syncwarp();
    mma_tile_and_store(tile_in, t.ldx, toeplitz, t.bk, tile_out, p, n, c, h0, w0, bias, lane);
    // tile_in and tile_out are reused by the next tile (the store ends with a __syncwarp)
  }
#endif
}

// The same product for maps of 32 x 32 and up, with the block sharing its input tile: a block of
// wh x ww warps computes a (16 wh) x (16 ww) output tile, so the input rows and columns around it
// are loaded once for all its warps (about a third of the loads of one 16 x 16 tile per warp).
struct MmaBlockTiling {
  int bk, ldx, rows, cols, wh, ww;
  int64_t tiles_w, tiles_per_image, tiles_per_channel, tiles_per_block;
  int splits;
  size_t toeplitz_bytes, input_bytes, smem_bytes;
};

inline MmaBlockTiling mma_block_tiling(const ConvParams& p, const DeviceInfo& d) {
  MmaBlockTiling t;
  t.bk = static_cast<int>(round_up(15 + p.kw, 16));
  t.wh = static_cast<int>(min(int64_t(4), ceil_div(p.Ho, 16)));
  t.ww = static_cast<int>(min(int64_t(2), ceil_div(p.Wo, 16)));
  t.rows = 16 * t.wh + p.kh - 1;
  t.cols = 16 * (t.ww - 1) + t.bk;
  t.ldx = (t.cols / 16) % 2 ? t.cols : t.cols + 16;
  t.toeplitz_bytes = static_cast<size_t>(p.kh) * t.bk * 16 * 2;
  t.input_bytes = static_cast<size_t>(t.rows) * t.ldx * 2;
  t.smem_bytes = t.toeplitz_bytes + t.input_bytes + static_cast<size_t>(t.wh) * t.ww * 256 * sizeof(float);
  t.tiles_w = ceil_div(p.Wo, 16 * t.ww);
  t.tiles_per_image = ceil_div(p.Ho, 16 * t.wh) * t.tiles_w;
  t.tiles_per_channel = p.N * t.tiles_per_image;
  int64_t splits = ceil_div(4LL * d.sm_count, p.C);
  if (splits > t.tiles_per_channel) splits = t.tiles_per_channel;
  t.splits = static_cast<int>(splits < 1 ? 1 : splits);
  t.tiles_per_block = ceil_div(t.tiles_per_channel, t.splits);
  (void)d;
  return t;
}

// Block tiles pay off once a block has several warps to share them.
inline bool mma_block_preferred(const ConvParams& p, const DeviceInfo& d) {
  MmaBlockTiling t = mma_block_tiling(p, d);
  return t.wh * t.ww >= 4 && t.smem_bytes <= static_cast<size_t>(d.max_smem_per_block);
}

template <typename T>
__global__ void __launch_bounds__(256) dwconv_fwd_mma_block_kernel(const ConvParams p, const MmaBlockTiling t) {
#if !defined(__CUDA_ARCH__) || __CUDA_ARCH__ >= 800
  REPLK_DYNAMIC_SHARED(unsigned char, smem, 128);
  T* toeplitz = reinterpret_cast<T*>(smem);
  T* tile_in = reinterpret_cast<T*>(smem + t.toeplitz_bytes);
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int wr = warp / t.ww, wc = warp % t.ww;
  float* tile_out = reinterpret_cast<float*>(smem + t.toeplitz_bytes + t.input_bytes) + warp * 256;
  const int64_t c = blockIdx.x % p.C;
  const int64_t split = blockIdx.x / p.C;
  build_toeplitz(toeplitz, p, t.bk, c);
  const float bias = p.bias ? to_float(static_cast<const T*>(p.bias)[c]) : 0.f;

  const int64_t first = split * t.tiles_per_block;
  const int64_t last = min(first + t.tiles_per_block, t.tiles_per_channel);
  for (int64_t tile = first; tile < last; ++tile) {
    const int64_t n = tile / t.tiles_per_image;
    const int64_t r = tile % t.tiles_per_image;
    const int64_t bh0 = (r / t.tiles_w) * 16 * t.wh, bw0 = (r % t.tiles_w) * 16 * t.ww;
    __syncthreads();  // the Toeplitz matrices are built; the previous tile's input is consumed
    stage_input(tile_in, t.ldx, t.rows, t.cols, p, n, c, bh0 - p.ph, bw0 - p.pw, threadIdx.x, blockDim.x);
    __syncthreads();
    const int64_t h0 = bh0 + 16 * wr, w0 = bw0 + 16 * wc;
    if (h0 >= p.Ho || w0 >= p.Wo) continue;  // this warp's part of the tile is past the map
    mma_tile_and_store(tile_in + 16 * wr * t.ldx + 16 * wc, t.ldx, toeplitz, t.bk, tile_out, p, n, c, h0, w0, bias,
                       lane);
  }
#endif
}

// -1 where the tiles do not fit in shared memory.
inline int fwd_mma_plan(const ConvParams& p, const DeviceInfo& d) { return mma_fits(p, d) ? 0 : -1; }

// variant kBlockTiles: block tiles where mma_block_preferred; else warp tiles.
template <typename T>
cudaError_t launch_fwd_mma(const ConvParams& p, const DeviceInfo& d, cudaStream_t stream, int variant) {
  if (p.N * p.C * p.Ho * p.Wo == 0) return cudaSuccess;
  if (!mma_fits(p, d)) return cudaErrorInvalidConfiguration;
  if (variant == kBlockTiles && mma_block_preferred(p, d)) {
    MmaBlockTiling t = mma_block_tiling(p, d);
    return launch_with_smem(dwconv_fwd_mma_block_kernel<T>, p.C * t.splits, 32 * t.wh * t.ww, t.smem_bytes, stream,
                            p, t);
  }
  MmaTiling t = mma_tiling(p, d);
  return launch_with_smem(dwconv_fwd_mma_kernel<T>, p.C * t.splits, 32 * t.warps, t.smem_bytes, stream, p, t);
}

}  // namespace replk_ops
