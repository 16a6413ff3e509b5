// Weight and bias gradients on CUDA cores with 16 taps per thread (algo "direct_wide"): the kernel
// of bwd_weight.cuh with half its shared-memory loads per FMA and its column loop unrolled.
//
// Same tiles, splits and fixed-order sums as there, but a thread owns two adjacent 8-tap strips of
// one kernel row, (i, j0 .. j0 + 15). Its x window along a tile row is 24 values that slide by 8:
// per 8-column step it loads 8 dy values (a broadcast) and 8 new x values for 128 FMAs, where the
// one-strip kernel loads the same for 64. The step count (tile width / 8) is a template parameter,
// so the sliding window costs no moves. Consecutive threads take consecutive kernel rows of one
// 16-tap pair, so their float4 loads fall in distinct bank groups (row stride 4 mod 32).
#pragma once

#include "bwd_weight_tiles.cuh"

namespace replk_ops {

struct BwdWeightWideLayout {
  BwdWeightTiling tiling;
  int pairs;         // 16-tap units per kernel row, ceil(kw / 16)
  int units;         // kh * pairs <= 252: the taps one thread group covers
  int groups;        // thread groups taking different rows of a tile
  int stride;        // shared row length of the x tile, = 4 (mod 32)
  int rows;          // th + kh - 1
  size_t smem_bytes;
};

inline BwdWeightWideLayout bwd_weight_wide_layout(const BwdWeightParams& p, const DeviceInfo& d) {
  BwdWeightWideLayout l;
  l.tiling = bwd_weight_tiling(p, d);
  const BwdWeightTiling& t = l.tiling;
  l.pairs = static_cast<int>(ceil_div(p.kw, 16));
  l.units = p.kh * l.pairs;
  l.groups = 256 / l.units;
  size_weight_smem(l, p, t.tw + 16 * l.pairs, static_cast<size_t>(l.groups) * l.units * 16);
  return l;
}

// STEPS: 8-column steps per tile row, tiling.tw / 8.
template <typename T, int STEPS>
__global__ void __launch_bounds__(256)
    dwconv_bwd_weight_wide_kernel(const BwdWeightParams p, const BwdWeightWideLayout l) {
  REPLK_DYNAMIC_SHARED(float, smem, 16);
  const BwdWeightTiling& t = l.tiling;
  float* tile_x = smem;
  float* tile_dy = smem + static_cast<size_t>(l.rows) * l.stride;
  const int64_t c = blockIdx.x % p.C;
  const int64_t split = blockIdx.x / p.C;
  const int tid = threadIdx.x;
  const int group = tid / l.units < l.groups ? tid / l.units : -1;
  const int unit = tid % l.units;
  const int i = unit % p.kh, j0 = 16 * (unit / p.kh);  // kernel row and first tap of this thread
  float acc[1][2][8];
#pragma unroll
  for (int s = 0; s < 2; ++s)
#pragma unroll
    for (int k = 0; k < 8; ++k) acc[0][s][k] = 0.f;
  float bias_sum = 0.f;

  const WeightTileRange range = weight_tile_range(t, p.splits, split);
  for (int64_t tile = range.first; tile < range.last; ++tile) {
    const int64_t h0 =
        stage_weight_tile<T>(p, t, c, tile, tile_x, l.stride, l.rows, t.tw + 16 * l.pairs, tile_dy, bias_sum).h0;
    if (group < 0) continue;
    for (int row = group; row < t.th; row += l.groups) {
      if (h0 + row >= p.Ho) break;  // all-zero dy from here on
      const int64_t hi = h0 + row + i - p.ph;
      if (hi < 0 || hi >= p.H) continue;  // the x row is padding
      accumulate_tile_row<2, STEPS>(tile_x + (row + i) * l.stride + j0, tile_dy + row * t.tw, t.tw, acc[0]);
    }
  }
  const int kh = p.kh;
  const int unit_of[1] = {group >= 0 ? unit : -1};
  write_block_partials(p, smem, l.groups, l.units, group, acc, unit_of, bias_sum, split, c,
                       [kh](int u) { return make_int2(u % kh, 16 * (u / kh)); });
}

template <typename T, int STEPS>
cudaError_t launch_bwd_weight_wide_as(const BwdWeightParams& p, const BwdWeightWideLayout& l, int64_t blocks,
                                      cudaStream_t stream) {
  return launch_with_smem(dwconv_bwd_weight_wide_kernel<T, STEPS>, blocks, 256, l.smem_bytes, stream, p, l);
}

// The same splits as bwd_weight.cuh; every shape fits.
inline int bwd_weight_wide_plan(const BwdWeightParams& p, const DeviceInfo& d) {
  return bwd_weight_tiling(p, d).splits;
}

template <typename T>
cudaError_t launch_bwd_weight_wide(const BwdWeightParams& p, const DeviceInfo& d, cudaStream_t stream,
                                   int /*variant*/) {
  const BwdWeightWideLayout l = bwd_weight_wide_layout(p, d);
  if (l.tiling.splits != p.splits) return cudaErrorInvalidValue;
  const int64_t blocks = p.C * p.splits;
  if (blocks == 0) return cudaSuccess;
  switch (l.tiling.tw / 8) {  // tiles are 8 to 64 columns wide
    case 1: return launch_bwd_weight_wide_as<T, 1>(p, l, blocks, stream);
    case 2: return launch_bwd_weight_wide_as<T, 2>(p, l, blocks, stream);
    case 3: return launch_bwd_weight_wide_as<T, 3>(p, l, blocks, stream);
    case 4: return launch_bwd_weight_wide_as<T, 4>(p, l, blocks, stream);
    case 5: return launch_bwd_weight_wide_as<T, 5>(p, l, blocks, stream);
    case 6: return launch_bwd_weight_wide_as<T, 6>(p, l, blocks, stream);
    case 7: return launch_bwd_weight_wide_as<T, 7>(p, l, blocks, stream);
    case 8: return launch_bwd_weight_wide_as<T, 8>(p, l, blocks, stream);
    default: return cudaErrorInvalidValue;
  }
}

}  // namespace replk_ops
