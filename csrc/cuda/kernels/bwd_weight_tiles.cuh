// What the two CUDA-core weight-gradient kernels (bwd_weight.cuh, 8 taps per strip and thread;
// bwd_weight_wide.cuh, two strips per thread) share: the size of a block's shared memory, which
// tiles a block sums, staging one tile, the sliding 8-column step that multiplies it, and the
// fixed-order sums the block writes.
#pragma once

#include "common.cuh"

namespace replk_ops {

// Sets the shared-memory fields of a weight-gradient layout `l` (BwdWeightLayout,
// BwdWeightWideLayout) whose tiling is set: the x tile's rows (th + kh - 1) and row length
// `stride` (room for `width` columns, = 4 (mod 32) so that float4 loads of consecutive rows fall
// in distinct bank groups), and smem_bytes for the x and dy tiles or, after the last tile, for
// `sums` floats of the groups' taps and one bias partial per thread of the 256
// (write_block_partials), whichever is larger.
template <typename Layout>
inline void size_weight_smem(Layout& l, const BwdWeightParams& p, int width, size_t sums) {
  const BwdWeightTiling& t = l.tiling;
  l.stride = static_cast<int>(round_up(width - 4, 32) + 4);
  l.rows = t.th + p.kh - 1;
  const size_t tiles = static_cast<size_t>(l.rows) * l.stride + static_cast<size_t>(t.th) * t.tw;
  const size_t reduce = sums + 256;
  l.smem_bytes = (tiles > reduce ? tiles : reduce) * sizeof(float);
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

// A thread's taps along one tile row: STRIPS adjacent strips of 8 taps of one kernel row, whose x
// values for 8 consecutive output columns are a window of 8 * STRIPS + 8 values that slides by 8.
// Per 8-column step: 8 dy values (the same for the thread's whole group: a broadcast) and 8 new x
// values, as float4s, for 64 * STRIPS FMAs. xr: the staged x row at the first tap's column for
// output column 0; dr: the staged dy row. STEPS > 0: the row's step count, the loop unrolled so the
// window slides without moves; 0: width / 8 steps counted at run time.
template <int STRIPS, int STEPS>
__device__ __forceinline__ void accumulate_tile_row(const float* xr, const float* dr, int width,
                                                    float (&acc)[STRIPS][8]) {
  constexpr int kOld = 8 * STRIPS;  // window values carried from the previous step
  float b[kOld + 8];
#pragma unroll
  for (int v = 0; v < kOld; v += 4) *reinterpret_cast<float4*>(b + v) = *reinterpret_cast<const float4*>(xr + v);
  auto step = [&](int col) {
    float d[8];
    *reinterpret_cast<float4*>(d) = *reinterpret_cast<const float4*>(dr + col);
    *reinterpret_cast<float4*>(d + 4) = *reinterpret_cast<const float4*>(dr + col + 4);
    *reinterpret_cast<float4*>(b + kOld) = *reinterpret_cast<const float4*>(xr + col + kOld);
    *reinterpret_cast<float4*>(b + kOld + 4) = *reinterpret_cast<const float4*>(xr + col + kOld + 4);
#pragma unroll
    for (int u = 0; u < 8; ++u) {
#pragma unroll
      for (int k = 0; k < 8; ++k) {
#pragma unroll
        for (int s = 0; s < STRIPS; ++s) acc[s][k] = fmaf(d[u], b[u + k + 8 * s], acc[s][k]);
      }
    }
#pragma unroll
    for (int k = 0; k < kOld; ++k) b[k] = b[k + 8];
  };
  const int steps = STEPS > 0 ? STEPS : width / 8;
#pragma unroll  // completely where the count is a constant, else not at all
  for (int s = 0; s < steps; ++s) step(8 * s);
}

// After the block's last tile: sums the thread groups' taps in a fixed order and writes the
// block's partial weights and bias. A thread holds SLOTS units of 8 * STRIPS taps: acc[q] belongs
// to unit unit_of[q] of its group (none where negative); unit_taps(u) gives unit u's kernel row
// and first column. The tiles' shared memory is reused for the sums.
template <int STRIPS, int SLOTS, typename UnitTaps>
__device__ __forceinline__ void write_block_partials(const BwdWeightParams& p, float* smem, int groups, int units,
                                                     int group, const float (&acc)[SLOTS][STRIPS][8],
                                                     const int (&unit_of)[SLOTS], float bias_sum, int64_t split,
                                                     int64_t c, UnitTaps unit_taps) {
  constexpr int kTaps = 8 * STRIPS;
  __syncthreads();  // every thread is done with the last tile
  float* reduce = smem;
  float* bias_part = smem + static_cast<size_t>(groups) * units * kTaps;
#pragma unroll
  for (int q = 0; q < SLOTS; ++q) {
    if (unit_of[q] < 0) continue;
#pragma unroll
    for (int k = 0; k < kTaps; ++k)
      reduce[(static_cast<size_t>(group) * units + unit_of[q]) * kTaps + k] = acc[q][k / 8][k % 8];
  }
  bias_part[threadIdx.x] = bias_sum;
  __syncthreads();
  write_weight_partial<kTaps>(p, reduce, groups, units, split, c, unit_taps);
  write_bias_partial(p, bias_part, split, c);
}

}  // namespace replk_ops
