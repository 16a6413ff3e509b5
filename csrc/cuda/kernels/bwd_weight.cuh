// Weight and bias gradients on CUDA cores, fp32 accumulation, deterministic.
//
// dw[c, i, j] = sum over (n, h, w) of dy[n, c, h, w] * x[n, c, h + i - ph, w + j - pw].
// A block owns one channel and a fixed range of (image, row-tile, column-tile) tiles. Per tile it
// stages dy (TH x TW) and the x rows and columns those outputs see in shared memory as float.
// Each thread owns strips of 8 taps (i, j0..j0+7); threads are split into groups that take
// different rows of the tile. Along a row a thread slides eight columns at a time: per step it
// reads 8 dy values (the same for its whole group: a broadcast) and 8 new x values as float4s for
// 64 FMAs. At the end the groups are
// summed in a fixed order and the block writes its partial sums, which the caller reduces over
// blocks in a fixed order too: the result does not depend on scheduling.
#pragma once

#include "common.cuh"

namespace replk_ops {

struct BwdWeightLayout {
  BwdWeightTiling tiling;
  int strips;        // kh * kwp / 8 strips of 8 taps
  int groups;        // thread groups taking different items of a tile
  int stride;        // shared row length of the x tile, = 4 (mod 32)
  int rows;          // th + kh - 1
  size_t smem_bytes;
};

inline BwdWeightLayout bwd_weight_layout(const BwdWeightParams& p, const DeviceInfo& d) {
  BwdWeightLayout l;
  l.tiling = bwd_weight_tiling(p, d);
  const BwdWeightTiling& t = l.tiling;
  l.strips = p.kh * t.kwp / 8;
  l.groups = l.strips <= 256 ? 256 / l.strips : 1;
  l.stride = static_cast<int>(round_up(t.tw + t.kwp - 4, 32) + 4);
  l.rows = t.th + p.kh - 1;
  size_t tiles = static_cast<size_t>(l.rows) * l.stride + static_cast<size_t>(t.th) * t.tw;
  size_t reduce = static_cast<size_t>(l.groups) * l.strips * 8 + 256;
  l.smem_bytes = (tiles > reduce ? tiles : reduce) * sizeof(float);
  return l;
}

// The range of a channel's tiles that block `split` sums, in order.
struct WeightTileRange {
  int64_t first, last;
};

__device__ __forceinline__ WeightTileRange weight_tile_range(const BwdWeightTiling& t, int splits, int64_t split) {
  const int64_t per_block = ceil_div(t.tiles_per_channel, splits);
  const int64_t first = split * per_block;
  return {first, min(first + per_block, t.tiles_per_channel)};
}

// Where tile `tile` of a channel lies: its image and first output row and column.
struct WeightTile {
  int64_t n, h0, w0;
};

// Once the block has consumed the previous tile: stages tile `tile` of channel c for the direct
// weight-gradient kernels (x rows h0 - ph .. + rows - 1 and `width` columns from w0 - pw, row
// length `stride`; grad_out's th x tw tile, zeros past the map) and adds the thread's share of the
// tile's grad_out to bias_sum.
template <typename T>
__device__ __forceinline__ WeightTile stage_weight_tile(const BwdWeightParams& p, const BwdWeightTiling& t, int64_t c,
                                                        int64_t tile, float* tile_x, int stride, int rows, int width,
                                                        float* tile_dy, float& bias_sum) {
  const int64_t n = tile / (t.tiles_h * t.tiles_w);
  const int64_t r = tile % (t.tiles_h * t.tiles_w);
  const int64_t h0 = (r / t.tiles_w) * t.th, w0 = (r % t.tiles_w) * t.tw;
  const int tid = threadIdx.x;
  __syncthreads();  // the previous tile is consumed
  stage_window(tile_x, stride, static_cast<const T*>(p.x) + c * p.xs[1] + n * p.xs[0], p.xs[2], p.xs[3], h0 - p.ph,
               w0 - p.pw, p.H, p.W, rows, width, tid, blockDim.x);
  // dy past the map is staged as zeros (they add nothing to either gradient)
  stage_window(tile_dy, t.tw, static_cast<const T*>(p.grad_out) + c * p.gs[1] + n * p.gs[0], p.gs[2], p.gs[3], h0, w0,
               p.Ho, p.Wo, t.th, t.tw, tid, blockDim.x);
  __syncthreads();
  for (int e = tid; e < t.th * t.tw; e += blockDim.x) bias_sum += tile_dy[e];
  return {n, h0, w0};
}

// The block's partial weights: each unit's TAPS taps summed over the groups in a fixed order (group
// g's value of tap k of unit u at reduce[(g * units + u) * TAPS + k]); unit_taps(u) gives the
// kernel row and first column of unit u, and taps past the kernel's width are dropped.
template <int TAPS, typename UnitTaps>
__device__ __forceinline__ void write_weight_partial(const BwdWeightParams& p, const float* reduce, int groups,
                                                     int units, int64_t split, int64_t c, UnitTaps unit_taps) {
  float* out_w = p.partial_w + (split * p.C + c) * p.kh * p.kw;
  for (int e = threadIdx.x; e < units * TAPS; e += blockDim.x) {
    const int u = e / TAPS, k = e % TAPS;
    const int2 first = unit_taps(u);
    const int j = first.y + k;
    if (j >= p.kw) continue;
    float sum = 0.f;
    for (int g = 0; g < groups; ++g) sum += reduce[(static_cast<size_t>(g) * units + u) * TAPS + k];
    out_w[first.x * p.kw + j] = sum;
  }
}

// Thread 0 writes the block's bias partial: the threads' sums in bias_part, added in a fixed order.
__device__ __forceinline__ void write_bias_partial(const BwdWeightParams& p, const float* bias_part, int64_t split,
                                                   int64_t c) {
  if (threadIdx.x != 0) return;
  float sum = 0.f;
  for (int k = 0; k < static_cast<int>(blockDim.x); ++k) sum += bias_part[k];
  p.partial_b[split * p.C + c] = sum;
}

template <typename T>
__global__ void __launch_bounds__(256) dwconv_bwd_weight_kernel(const BwdWeightParams p, const BwdWeightLayout l) {
  REPLK_DYNAMIC_SHARED(float, smem, 16);
  const BwdWeightTiling& t = l.tiling;
  float* tile_x = smem;
  float* tile_dy = smem + static_cast<size_t>(l.rows) * l.stride;
  const int64_t c = blockIdx.x % p.C;
  const int64_t split = blockIdx.x / p.C;
  const int chunks = t.kwp / 8;
  const int tid = threadIdx.x;
  // strips t and t + 256 (only when there are more than 256 strips, then one group)
  const int group = tid / l.strips < l.groups ? tid / l.strips : -1;
  int strip_i[2], strip_j0[2];
  bool has[2];
#pragma unroll
  for (int q = 0; q < 2; ++q) {
    int s = l.groups > 1 ? tid % l.strips : tid + 256 * q;
    has[q] = group >= 0 && s < l.strips && (q == 0 || l.groups == 1);
    strip_i[q] = s / chunks;
    strip_j0[q] = (s % chunks) * 8;
  }
  float acc[2][8];
#pragma unroll
  for (int q = 0; q < 2; ++q)
#pragma unroll
    for (int k = 0; k < 8; ++k) acc[q][k] = 0.f;
  float bias_sum = 0.f;

  const WeightTileRange range = weight_tile_range(t, p.splits, split);
  for (int64_t tile = range.first; tile < range.last; ++tile) {
    const int64_t h0 =
        stage_weight_tile<T>(p, t, c, tile, tile_x, l.stride, l.rows, t.tw + t.kwp, tile_dy, bias_sum).h0;
    if (group < 0) continue;
    // a group takes whole rows and slides along them: the 16 x values of one 8-column step
    // overlap the next step's by 8, so each step loads 8 new x values and 8 dy values
    for (int row = group; row < t.th; row += l.groups) {
      if (h0 + row >= p.Ho) break;  // all-zero dy from here on
#pragma unroll
      for (int q = 0; q < 2; ++q) {
        if (!has[q]) continue;
        const int64_t hi = h0 + row + strip_i[q] - p.ph;
        if (hi < 0 || hi >= p.H) continue;  // the x row is padding
        const float* xr = tile_x + (row + strip_i[q]) * l.stride + strip_j0[q];
        const float* dr = tile_dy + row * t.tw;
        float b[16];
        *reinterpret_cast<float4*>(b) = *reinterpret_cast<const float4*>(xr);
        *reinterpret_cast<float4*>(b + 4) = *reinterpret_cast<const float4*>(xr + 4);
        for (int col = 0; col < t.tw; col += 8) {
          float d[8];
          *reinterpret_cast<float4*>(d) = *reinterpret_cast<const float4*>(dr + col);
          *reinterpret_cast<float4*>(d + 4) = *reinterpret_cast<const float4*>(dr + col + 4);
          *reinterpret_cast<float4*>(b + 8) = *reinterpret_cast<const float4*>(xr + col + 8);
          *reinterpret_cast<float4*>(b + 12) = *reinterpret_cast<const float4*>(xr + col + 12);
#pragma unroll
          for (int u = 0; u < 8; ++u) {
#pragma unroll
            for (int k = 0; k < 8; ++k) acc[q][k] = fmaf(d[u], b[u + k], acc[q][k]);
          }
#pragma unroll
          for (int k = 0; k < 8; ++k) b[k] = b[k + 8];
        }
      }
    }
  }
  __syncthreads();
  // sum the groups in a fixed order, then the block's bias partial in a fixed order
  float* reduce = smem;
  float* bias_part = smem + static_cast<size_t>(l.groups) * l.strips * 8;
  if (group >= 0) {
#pragma unroll
    for (int q = 0; q < 2; ++q) {
      if (!has[q]) continue;
      int s = l.groups > 1 ? tid % l.strips : tid + 256 * q;
#pragma unroll
      for (int k = 0; k < 8; ++k) reduce[(static_cast<size_t>(group) * l.strips + s) * 8 + k] = acc[q][k];
    }
  }
  bias_part[tid] = bias_sum;
  __syncthreads();
  write_weight_partial<8>(p, reduce, l.groups, l.strips, split, c,
                          [chunks](int s) { return make_int2(s / chunks, (s % chunks) * 8); });
  write_bias_partial(p, bias_part, split, c);
}

// The partial-sum splits the caller's workspace holds; every shape fits.
inline int bwd_weight_plan(const BwdWeightParams& p, const DeviceInfo& d) { return bwd_weight_tiling(p, d).splits; }

template <typename T>
cudaError_t launch_bwd_weight(const BwdWeightParams& p, const DeviceInfo& d, cudaStream_t stream, int /*variant*/) {
  BwdWeightLayout l = bwd_weight_layout(p, d);
  if (l.tiling.splits != p.splits || l.strips > 512) return cudaErrorInvalidValue;
  int64_t blocks = p.C * p.splits;
  if (blocks == 0) return cudaSuccess;
  return launch_with_smem(dwconv_bwd_weight_kernel<T>, blocks, 256, l.smem_bytes, stream, p, l);
}

}  // namespace replk_ops
