// Weight and bias gradients on CUDA cores, fp32 accumulation, deterministic.
//
// dw[c, i, j] = sum over (n, h, w) of dy[n, c, h, w] * x[n, c, h + i - ph, w + j - pw].
// A block owns one channel and a fixed range of (image, row-tile, column-tile) tiles. Per tile it
// stages dy (TH x TW) and the x rows and columns those outputs see in shared memory as float.
// Each thread owns strips of 8 taps (i, j0..j0+7); threads are split into groups that take
// different rows of the tile. Along a row a thread slides eight columns at a time: per step it
// reads 8 dy values (the same for its whole group: a broadcast) and 8 new x values as float4s for
// 64 FMAs. At the end the groups are summed in a fixed order and the block writes its partial
// sums, which the caller reduces over blocks in a fixed order too: the result does not depend on
// scheduling. The staging, the sliding step and the sums are shared with bwd_weight_wide.cuh
// (bwd_weight_tiles.cuh).
#pragma once

#include "bwd_weight_tiles.cuh"

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
  size_weight_smem(l, p, t.tw + t.kwp, static_cast<size_t>(l.groups) * l.strips * 8);
  return l;
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
  auto strip_of = [&](int q) { return l.groups > 1 ? tid % l.strips : tid + 256 * q; };
  int strip_i[2], strip_j0[2];
  bool has[2];
#pragma unroll
  for (int q = 0; q < 2; ++q) {
    const int s = strip_of(q);
    has[q] = group >= 0 && s < l.strips && (q == 0 || l.groups == 1);
    strip_i[q] = s / chunks;
    strip_j0[q] = (s % chunks) * 8;
  }
  float acc[2][1][8];
#pragma unroll
  for (int q = 0; q < 2; ++q)
#pragma unroll
    for (int k = 0; k < 8; ++k) acc[q][0][k] = 0.f;
  float bias_sum = 0.f;

  const WeightTileRange range = weight_tile_range(t, p.splits, split);
  for (int64_t tile = range.first; tile < range.last; ++tile) {
    const int64_t h0 =
        stage_weight_tile<T>(p, t, c, tile, tile_x, l.stride, l.rows, t.tw + t.kwp, tile_dy, bias_sum).h0;
    if (group < 0) continue;
    // a group takes whole rows and slides along them (accumulate_tile_row)
    for (int row = group; row < t.th; row += l.groups) {
      if (h0 + row >= p.Ho) break;  // all-zero dy from here on
#pragma unroll
      for (int q = 0; q < 2; ++q) {
        if (!has[q]) continue;
        const int64_t hi = h0 + row + strip_i[q] - p.ph;
        if (hi < 0 || hi >= p.H) continue;  // the x row is padding
        accumulate_tile_row<1, 0>(tile_x + (row + strip_i[q]) * l.stride + strip_j0[q], tile_dy + row * t.tw, t.tw,
                                  acc[q]);
      }
    }
  }
  const int strip[2] = {has[0] ? strip_of(0) : -1, has[1] ? strip_of(1) : -1};  // recomputed: fewer live registers
  write_block_partials(p, smem, l.groups, l.strips, group, acc, strip, bias_sum, split, c,
                       [chunks](int s) { return make_int2(s / chunks, (s % chunks) * 8); });
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
