// Weight and bias gradients for fp16/bf16 on tensor cores (mma.sync m16n8k16), deterministic:
// the GEMM over rows plus diagonal sums (docs/design.md, "Weight gradient as GEMM plus diagonal sums").
//
// For kernel row i and a strip of 16 output columns starting at w0,
//
//     P_i[b, a] = sum over rows (n, h) of dY[n, h, w0 + b] * X[n, h + i - ph, w0 - pw + a]
//     dw[i, j]  = sum_b P_i[b, b + j]                          (a < BK = 8 NB >= 15 + kw)
//
// so the rows are the MMA's K dimension: A = dY^T and B = X_i come from the staged tiles through
// transposing ldmatrix loads. Summing P_i over all strips and rows before taking the diagonals
// is the same sum, so each warp keeps P for its KR kernel rows in registers for its whole share
// of the channel and extracts the diagonals once, in a fixed order. The block's partial sums go
// to a workspace that the caller reduces in a fixed order too.
#pragma once

#include "mma_sm80.cuh"

namespace replk_ops {

struct BwdWeightMmaTiling {
  int kr;              // kernel rows per warp
  int nb;              // 8-column blocks of the input window: BK = 8 nb = round_up(15 + kw, 16)
  int warps;           // per block, each with its own kernel rows
  int row_groups;      // blocks per (channel, split) along the kernel rows
  int th;              // output rows per tile, a multiple of 16
  int x_rows;          // th + kh - 1
  int ldx, ldy;        // shared row lengths, 8 (mod 64) elements: conflict-free ldmatrix
  int64_t tiles_h, tiles_w, tiles_per_channel, tiles_per_block;
  int splits;          // blocks per (channel, row group), each summing a fixed range of tiles
  size_t x_bytes, dy_bytes, smem_bytes;
};

inline BwdWeightMmaTiling bwd_weight_mma_tiling(const BwdWeightParams& p, const DeviceInfo& d) {
  BwdWeightMmaTiling t;
  t.nb = static_cast<int>(round_up(15 + p.kw, 16) / 8);
  const int kr_max = t.nb <= 6 ? 4 : 2;  // at most 96 accumulator registers
  const int64_t per_warp = ceil_div(p.kh, 8);
  t.kr = per_warp <= 1 ? 1 : per_warp <= 2 ? 2 : 4;
  if (t.kr > kr_max) t.kr = kr_max;
  t.warps = static_cast<int>(min(int64_t(8), ceil_div(p.kh, t.kr)));
  t.row_groups = static_cast<int>(ceil_div(p.kh, static_cast<int64_t>(t.warps) * t.kr));
  t.th = static_cast<int>(min(int64_t(64), round_up(p.Ho, 16)));
  t.x_rows = t.th + p.kh - 1;
  t.ldx = static_cast<int>(round_up(8 * t.nb, 64) + 8);
  t.ldy = 24;
  t.tiles_h = ceil_div(p.Ho, t.th);
  t.tiles_w = ceil_div(p.Wo, 16);
  t.tiles_per_channel = p.N * t.tiles_h * t.tiles_w;
  int64_t splits = ceil_div(4LL * d.sm_count, p.C * t.row_groups);  // fill the GPU about four times over
  if (splits > t.tiles_per_channel) splits = t.tiles_per_channel;
  if (splits < 1) splits = 1;
  t.tiles_per_block = ceil_div(t.tiles_per_channel, splits);
  t.splits = static_cast<int>(ceil_div(t.tiles_per_channel, t.tiles_per_block));
  t.x_bytes = static_cast<size_t>(round_up(static_cast<int64_t>(t.x_rows) * t.ldx * 2, 128));
  t.dy_bytes = static_cast<size_t>(round_up(static_cast<int64_t>(t.th) * t.ldy * 2, 128));
  // the diagonal extraction (16 x BK floats a warp) reuses the tiles, and must fit in them
  const size_t scratch = static_cast<size_t>(t.warps) * 16 * 8 * t.nb * sizeof(float);
  const size_t bias = static_cast<size_t>(32 * t.warps) * sizeof(float);
  const size_t tiles = t.x_bytes + t.dy_bytes;
  t.smem_bytes = tiles > scratch + bias ? tiles : scratch + bias;
  return t;
}

// (Compute capability 8.0+ is the algo table's min_cc, checked before any launch.)
inline bool bwd_weight_mma_fits(const BwdWeightParams& p, const DeviceInfo& d) {
  return bwd_weight_mma_tiling(p, d).smem_bytes <= static_cast<size_t>(d.max_smem_per_block);
}

// The partial-sum splits the caller's workspace holds, or -1 where the tiles do not fit.
inline int bwd_weight_mma_plan(const BwdWeightParams& p, const DeviceInfo& d) {
  return bwd_weight_mma_fits(p, d) ? bwd_weight_mma_tiling(p, d).splits : -1;
}

// KR: kernel rows per warp; NB: 8-column blocks of the input window (both as in the tiling).
template <typename T, int KR, int NB>
__global__ void __launch_bounds__(256) dwconv_bwd_weight_mma_kernel(const BwdWeightParams p, const BwdWeightMmaTiling t) {
#if !defined(__CUDA_ARCH__) || __CUDA_ARCH__ >= 800
  REPLK_DYNAMIC_SHARED(unsigned char, smem, 128);
  T* tile_x = reinterpret_cast<T*>(smem);
  T* tile_dy = reinterpret_cast<T*>(smem + t.x_bytes);
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int64_t c = blockIdx.x % p.C;
  const int group = static_cast<int>((blockIdx.x / p.C) % t.row_groups);
  const int64_t split = blockIdx.x / p.C / t.row_groups;
  const int i_first = (group * t.warps + warp) * KR;  // this warp's kernel rows: i_first .. + KR - 1
  const int bk = 8 * NB;
  const T* x = static_cast<const T*>(p.x);
  const T* dy = static_cast<const T*>(p.grad_out);
  const T* plane_x = x + c * p.xs[1];
  const T* plane_dy = dy + c * p.gs[1];

  // ldmatrix lanes (matrix l / 8, row l % 8). A = dY^T from tile_dy[k][b]: matrix q covers rows
  // k = 8 (q / 2) .. and columns b = 8 (q % 2) ..; B = X_i from tile_x[k + i][a]: matrix q covers
  // rows k = 8 (q % 2) .. and columns a = 8 (q / 2) .. of a 16-column pair of 8-column blocks.
  const int mat = lane / 8, mrow = lane % 8;
  const int dy_lane = (8 * (mat >> 1) + mrow) * t.ldy + 8 * (mat & 1);
  const int x_lane_row = 8 * (mat & 1) + mrow, x_lane_col = 8 * (mat >> 1);

  float acc[KR][NB][4];
  zero_accumulators(acc);
  float bias_sum = 0.f;

  const int64_t first = split * t.tiles_per_block;
  const int64_t last = min(first + t.tiles_per_block, t.tiles_per_channel);
  for (int64_t tile = first; tile < last; ++tile) {
    const int64_t n = tile / (t.tiles_h * t.tiles_w);
    const int64_t rest = tile % (t.tiles_h * t.tiles_w);
    const int64_t h0 = (rest / t.tiles_w) * t.th, w0 = (rest % t.tiles_w) * 16;
    __syncthreads();  // the previous tile is consumed
    // x rows h0 - ph .. + x_rows - 1 and columns w0 - pw .. + bk - 1; grad_out rows h0 .. + th - 1
    // and columns w0 .. w0 + 15; zeros outside either map. Warps take rows, lanes columns.
    for (int rr = warp; rr < t.x_rows + t.th; rr += t.warps) {
      const bool is_x = rr < t.x_rows;
      const int row = is_x ? rr : rr - t.x_rows;
      const int64_t hi = is_x ? h0 - p.ph + row : h0 + row;
      const int64_t col0 = is_x ? w0 - p.pw : w0;
      const int64_t rows_in = is_x ? p.H : p.Ho, cols_in = is_x ? p.W : p.Wo;
      const int width = is_x ? bk : 16;
      const bool row_in = hi >= 0 && hi < rows_in;
      const T* src = is_x ? plane_x + n * p.xs[0] + (row_in ? hi : 0) * p.xs[2]
                          : plane_dy + n * p.gs[0] + (row_in ? hi : 0) * p.gs[2];
      const int64_t step = is_x ? p.xs[3] : p.gs[3];
      T* dst = is_x ? tile_x + static_cast<size_t>(row) * t.ldx : tile_dy + static_cast<size_t>(row) * t.ldy;
      for (int q0 = lane; q0 < width; q0 += 3 * 32) {  // up to three loads in flight per lane
        T v[3];
#pragma unroll
        for (int u = 0; u < 3; ++u) {
          const int64_t wi = col0 + q0 + 32 * u;
          v[u] = row_in && q0 + 32 * u < width && wi >= 0 && wi < cols_in ? src[wi * step] : from_float<T>(0.f);
        }
#pragma unroll
        for (int u = 0; u < 3; ++u) {
          if (q0 + 32 * u < width) dst[q0 + 32 * u] = v[u];
        }
      }
    }
    __syncthreads();
    for (int e = threadIdx.x; e < t.th * 16; e += blockDim.x) bias_sum += to_float(tile_dy[(e / 16) * t.ldy + e % 16]);

    const int steps = static_cast<int>(min(int64_t(t.th / 16), ceil_div(p.Ho - h0, 16)));  // past the map: zeros
    for (int s = 0; s < steps; ++s) {
      uint32_t a[4];
      ldmatrix_x4_trans(a, tile_dy + 16 * s * t.ldy + dy_lane);
#pragma unroll
      for (int r = 0; r < KR; ++r) {
        // a row past the kernel reads valid rows and its sums are never stored: no branch
        const int i = min(i_first + r, p.kh - 1);
        const T* x_rows = tile_x + static_cast<size_t>(16 * s + i + x_lane_row) * t.ldx + x_lane_col;
#pragma unroll
        for (int pair = 0; pair < NB / 2; ++pair) {
          uint32_t b[4];
          ldmatrix_x4_trans(b, x_rows + 16 * pair);
          mma_16816<T>(acc[r][2 * pair], a, b[0], b[1]);
          mma_16816<T>(acc[r][2 * pair + 1], a, b[2], b[3]);
        }
      }
    }
  }

  // dw[i, j] = sum_b P_i[b, b + j], b in a fixed order; P_i goes through this warp's scratch
  __syncthreads();  // the tiles are consumed: scratch reuses them
  float* scratch = reinterpret_cast<float*>(smem) + static_cast<size_t>(warp) * 16 * bk;
  float* out_w = p.partial_w + (split * p.C + c) * p.kh * p.kw;
#pragma unroll
  for (int r = 0; r < KR; ++r) {
#pragma unroll
    for (int q = 0; q < NB; ++q)
#pragma unroll
      for (int e = 0; e < 4; ++e)  // accumulator e: row b = lane / 4 (+ 8), column a = 8 q + 2 (lane % 4) (+ 1)
        scratch[(lane / 4 + 8 * (e / 2)) * bk + 8 * q + 2 * (lane % 4) + (e % 2)] = acc[r][q][e];
    __syncwarp();
    const int i = i_first + r;
    for (int j = lane; j < p.kw; j += 32) {
      float sum = 0.f;
      for (int b = 0; b < 16; ++b) sum += scratch[b * bk + b + j];
      if (i < p.kh) out_w[i * p.kw + j] = sum;
    }
    __syncwarp();
  }
  // the bias partial, in a fixed order; every row group computes it, the first one writes it
  float* bias_part = reinterpret_cast<float*>(smem) + static_cast<size_t>(t.warps) * 16 * bk;
  bias_part[threadIdx.x] = bias_sum;
  __syncthreads();
  if (threadIdx.x == 0 && group == 0) {
    float sum = 0.f;
    for (int k = 0; k < static_cast<int>(blockDim.x); ++k) sum += bias_part[k];
    p.partial_b[split * p.C + c] = sum;
  }
#endif
}

template <typename T, int KR, int NB>
cudaError_t launch_bwd_weight_mma_as(const BwdWeightParams& p, const BwdWeightMmaTiling& t, cudaStream_t stream) {
  return launch_with_smem(dwconv_bwd_weight_mma_kernel<T, KR, NB>, p.C * t.row_groups * static_cast<int64_t>(t.splits),
                          32 * t.warps, t.smem_bytes, stream, p, t);
}

template <typename T, int KR>
cudaError_t launch_bwd_weight_mma_rows(const BwdWeightParams& p, const BwdWeightMmaTiling& t, cudaStream_t stream) {
  switch (t.nb) {  // kw 1, 2-17, 18-33, 34-49, 50-63; the tiling keeps KR <= 2 from NB = 8 on
    case 2: return launch_bwd_weight_mma_as<T, KR, 2>(p, t, stream);
    case 4: return launch_bwd_weight_mma_as<T, KR, 4>(p, t, stream);
    case 6: return launch_bwd_weight_mma_as<T, KR, 6>(p, t, stream);
    default:
      if constexpr (KR <= 2) {
        return t.nb == 8 ? launch_bwd_weight_mma_as<T, KR, 8>(p, t, stream)
                         : launch_bwd_weight_mma_as<T, KR, 10>(p, t, stream);
      } else {
        return cudaErrorInvalidConfiguration;
      }
  }
}

template <typename T>
cudaError_t launch_bwd_weight_mma(const BwdWeightParams& p, const DeviceInfo& d, cudaStream_t stream,
                                  int /*variant*/) {
  if (p.C == 0) return cudaSuccess;
  if (!bwd_weight_mma_fits(p, d)) return cudaErrorInvalidConfiguration;
  const BwdWeightMmaTiling t = bwd_weight_mma_tiling(p, d);
  if (t.splits != p.splits) return cudaErrorInvalidValue;
  switch (t.kr) {
    case 1: return launch_bwd_weight_mma_rows<T, 1>(p, t, stream);
    case 2: return launch_bwd_weight_mma_rows<T, 2>(p, t, stream);
    default: return launch_bwd_weight_mma_rows<T, 4>(p, t, stream);
  }
}

}  // namespace replk_ops
