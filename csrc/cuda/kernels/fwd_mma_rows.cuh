// Forward (and input gradient) for fp16/bf16 on tensor cores with register-resident accumulators:
// the row-Toeplitz product with strided M rows (mma.sync m16n8k16, ldmatrix; docs/design.md,
// "Row-Toeplitz products").
//
// A block owns a (16 R) x (32 warps) output tile of one (image, channel). The 16 rows of an MMA
// are the output rows h0 + R m + r (m = 0..15) for a phase r < R, and every warp keeps all R
// phases x 4 column blocks of 8 as accumulators. Input row offset rho then feeds the same 16 MMA
// rows for every phase (kernel row i = rho - r), so each A fragment loaded from shared memory is
// used by R x (about 3) MMAs per column block, where the warp-per-16x16-tile WMMA kernel loads
// one A and one B fragment per MMA.
//
// B (the banded Toeplitz block for kernel row i and column offset d = 16 kk - 8 q) is never
// stored: B[k][n] = w[i, d + k - n], and a thread's four values are two adjacent pairs of one
// zero-padded weight row, read as two 32-bit words from one of two copies of the row (shifted by
// one element, so every pair is aligned).
//
// The staged input tile is chunk-swizzled (16-byte chunk c of row s is stored at c ^ (s / R) % 8),
// so the eight rows R apart that one ldmatrix phase reads fall in distinct banks.
#pragma once

#include "mma_sm80.cuh"

namespace replk_ops {

struct MmaRowsTiling {
  int r;               // phases: the block's output rows are h0 + R m + r, 16 R rows in all
  int warps;           // 32-column strips per block
  int ka;              // 16-column input blocks one warp reads, floor((30 + kw) / 16) + 1
  int ddh;             // Toeplitz blocks of a kernel row: offsets d = 8 dd, dd = -1 .. ddh = (kw + 6) / 8
  int rows, cols, ldx; // staged input tile (ldx a multiple of 64 elements for the swizzle)
  int wrow_words;      // 32-bit words per zero-padded weight row copy
  int wplane_words;    // words per copy (16 mod 32: the two copies use disjoint banks)
  int64_t tiles_h, tiles_w, tiles_per_image, tiles_per_channel, tiles_per_block;
  int splits;          // blocks per channel
  size_t weight_bytes, smem_bytes;
};

// Compile-time accumulator phases and input blocks of the kernel that runs a tiling.
inline int mma_rows_phases(int64_t Ho) { return Ho > 32 ? 4 : Ho > 16 ? 2 : 1; }
// The input blocks a warp reads follow from the Toeplitz offsets: (ddh + 3) / 2 + 1 = t.ka for
// every kw from 1 to 63.
REPLK_HOST_DEVICE constexpr int mma_rows_input_blocks(int ddh) { return (ddh + 3) / 2 + 1; }

inline MmaRowsTiling mma_rows_tiling(const ConvParams& p, const DeviceInfo& d) {
  MmaRowsTiling t;
  t.r = mma_rows_phases(p.Ho);
  t.warps = static_cast<int>(min(int64_t(4), ceil_div(p.Wo, 32)));
  t.ka = (30 + p.kw) / 16 + 1;
  t.ddh = (p.kw + 6) / 8;
  t.rows = 16 * t.r + p.kh - 1;
  t.cols = 32 * (t.warps - 1) + 16 * t.ka;
  t.ldx = static_cast<int>(round_up(t.cols, 64));
  // pair (j, j + 1) of the padded row holds w[j - 16, j - 15]; the largest j read is kw + 36
  t.wrow_words = p.kw / 2 + 20;
  t.wplane_words = static_cast<int>(round_up(static_cast<int64_t>(p.kh) * t.wrow_words, 32)) + 16;
  t.weight_bytes = static_cast<size_t>(round_up(2LL * t.wplane_words * 4, 128));
  t.smem_bytes = t.weight_bytes + static_cast<size_t>(t.rows) * t.ldx * 2;
  t.tiles_h = ceil_div(p.Ho, 16 * t.r);
  t.tiles_w = ceil_div(p.Wo, 32 * t.warps);
  t.tiles_per_image = t.tiles_h * t.tiles_w;
  t.tiles_per_channel = p.N * t.tiles_per_image;
  // many small blocks: a block's setup (its weight copies) is cheap, and a fine grid keeps the
  // last wave short
  int64_t splits = ceil_div(32LL * d.sm_count, p.C);
  if (splits > t.tiles_per_channel) splits = t.tiles_per_channel;
  if (splits < 1) splits = 1;
  t.tiles_per_block = ceil_div(t.tiles_per_channel, splits);
  t.splits = static_cast<int>(ceil_div(t.tiles_per_channel, t.tiles_per_block));
  return t;
}

// (Compute capability 8.0+ is the algo table's min_cc, checked before any launch.)
inline bool mma_rows_fits(const ConvParams& p, const DeviceInfo& d) {
  return mma_rows_tiling(p, d).smem_bytes <= static_cast<size_t>(d.max_smem_per_block);
}

// -1 where the tiles do not fit in shared memory.
inline int fwd_mma_rows_plan(const ConvParams& p, const DeviceInfo& d) { return mma_rows_fits(p, d) ? 0 : -1; }

// R: accumulator phases (mma_rows_phases); DDH: the last Toeplitz offset index, (kw + 6) / 8.
// Every loop bound of the MMA part is a compile-time constant and no MMA is conditional on the
// warp: MMAs on input blocks that lie in the padding multiply staged zeros, and columns past the
// map are computed and not stored, so the MMAs need no per-warp guard (and no WARPSYNC). Kernels
// 50 to 63 wide hold six input blocks and get up to 168 registers instead of 128.
template <typename T, int R, int DDH>
__global__ void __launch_bounds__(128, DDH >= 7 ? 3 : 4)
    dwconv_fwd_mma_rows_kernel(const ConvParams p, const MmaRowsTiling t) {
#if !defined(__CUDA_ARCH__) || __CUDA_ARCH__ >= 800
  constexpr int Q = 4;  // 8-column output blocks per warp
  constexpr int KA = mma_rows_input_blocks(DDH);
  REPLK_DYNAMIC_SHARED(unsigned char, smem, 128);
  uint32_t* weights = reinterpret_cast<uint32_t*>(smem);
  T* tile_in = reinterpret_cast<T*>(smem + t.weight_bytes);
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int64_t c = blockIdx.x % p.C;
  const int64_t split = blockIdx.x / p.C;
  const T* x = static_cast<const T*>(p.x);
  const T* w = static_cast<const T*>(p.w);
  T* y = static_cast<T*>(p.y);

  // copy s, row i, word u holds padded elements (2u + s, 2u + s + 1), element j being w[i, j - 16]
  for (int e = threadIdx.x; e < 2 * t.wplane_words; e += blockDim.x) {
    const int s = e / t.wplane_words, rest = e % t.wplane_words;
    const int i = rest / t.wrow_words, u = rest % t.wrow_words;
    uint32_t word = 0;
    if (i < p.kh) {
      const int j0 = 2 * u + s - 16;
      const float lo = j0 >= 0 && j0 < p.kw ? weight_at(w, c, i, j0, p.kh, p.kw, p.flip) : 0.f;
      const float hi = j0 + 1 >= 0 && j0 + 1 < p.kw ? weight_at(w, c, i, j0 + 1, p.kh, p.kw, p.flip) : 0.f;
      word = bits16(from_float<T>(lo)) | (bits16(from_float<T>(hi)) << 16);
    }
    weights[e] = word;
  }
  // B fragment of lane: n = lane / 4, k = 2 (lane % 4) (+ 8); element d + k - n + 16 has the parity of n
  const int frag_n = lane / 4, frag_s = frag_n & 1;
  const uint32_t* lane_weights = weights + frag_s * t.wplane_words + (16 + 2 * (lane % 4) - frag_n - frag_s) / 2;
  // A fragment rows of lane (ldmatrix): MMA row lane % 16, 8-column half lane / 16
  const int a_row = lane & 15, a_half = lane >> 4;
  const float bias = p.bias ? to_float(static_cast<const T*>(p.bias)[c]) : 0.f;

  const int64_t first = split * t.tiles_per_block;
  const int64_t last = min(first + t.tiles_per_block, t.tiles_per_channel);
  for (int64_t tile = first; tile < last; ++tile) {
    const int64_t n = tile / t.tiles_per_image;
    const int64_t rest = tile % t.tiles_per_image;
    const int64_t h0 = (rest / t.tiles_w) * 16 * R, w0 = (rest % t.tiles_w) * 32 * t.warps;
    __syncthreads();  // the weight copies are built; the previous tile's input is consumed
    for (int rr = warp; rr < t.rows; rr += t.warps) {
      const int64_t hi = h0 - p.ph + rr;
      const bool row_in = hi >= 0 && hi < p.H;
      const int swz = (rr / R) & 7;
      T* dst = tile_in + static_cast<size_t>(rr) * t.ldx;
      const T* src = x + n * p.xs[0] + c * p.xs[1] + (row_in ? hi : 0) * p.xs[2];
      for (int q0 = lane; q0 < t.cols; q0 += 4 * 32) {  // up to four loads in flight per lane
        T v[4];
#pragma unroll
        for (int u = 0; u < 4; ++u) {
          const int64_t wi = w0 - p.pw + q0 + 32 * u;
          v[u] = row_in && q0 + 32 * u < t.cols && wi >= 0 && wi < p.W ? src[wi * p.xs[3]] : from_float<T>(0.f);
        }
#pragma unroll
        for (int u = 0; u < 4; ++u) {
          const int q = q0 + 32 * u;
          if (q < t.cols) dst[(((q >> 3) ^ swz) << 3) | (q & 7)] = v[u];
        }
      }
    }
    __syncthreads();

    const int64_t ws = w0 + 32 * warp;  // this warp's first output column
    if (ws >= p.Wo) continue;
    // input row offsets whose 16 rows (h0 - ph + R m + rho) meet [0, H)
    const int rho_lo = static_cast<int>(max(int64_t(0), p.ph - h0 - 15 * R));
    const int rho_hi = static_cast<int>(min(int64_t(R + p.kh - 1), p.H + p.ph - h0));

    float acc[R][Q][4];
    zero_accumulators(acc);

    for (int rho = rho_lo; rho < rho_hi; ++rho) {
      const int srow = a_row * R + rho;
      const int swz = (a_row + rho / R) & 7;
      const T* a_src = tile_in + static_cast<size_t>(srow) * t.ldx;
      uint32_t a[KA][4];
#pragma unroll
      for (int kk = 0; kk < KA; ++kk) ldmatrix_x4(a[kk], a_src + ((((4 * warp + 2 * kk + a_half)) ^ swz) << 3));
#pragma unroll
      for (int r = 0; r < R; ++r) {
        const int i = rho - r;  // the same for the whole block: a uniform branch
        if (i < 0 || i >= p.kh) continue;
        const uint32_t* wrow = lane_weights + i * t.wrow_words;
        // B for d = 8 dd is nonzero only for -15 <= d <= kw + 6
#pragma unroll
        for (int dd = -1; dd <= DDH; ++dd) {
          const uint32_t b0 = wrow[4 * dd], b1 = wrow[4 * dd + 4];
#pragma unroll
          for (int q = 0; q < Q; ++q) {
            const int kk = (dd + q) / 2;  // d = 16 kk - 8 q
            if (((dd + q) & 1) == 0 && kk >= 0 && kk < KA) mma_16816<T>(acc[r][q], a[kk], b0, b1);
          }
        }
      }
    }

    // accumulator e of (r, q): MMA row lane / 4 (+ 8 for e >= 2), column 2 (lane % 4) + e % 2
#pragma unroll
    for (int r = 0; r < R; ++r)
#pragma unroll
      for (int q = 0; q < Q; ++q)
#pragma unroll
        for (int e = 0; e < 4; ++e) {
          const int64_t oh = h0 + static_cast<int64_t>(lane / 4 + 8 * (e / 2)) * R + r;
          const int64_t ow = ws + 8 * q + 2 * (lane % 4) + (e % 2);
          if (oh < p.Ho && ow < p.Wo) y[offset4(p.ys, n, c, oh, ow)] = from_float<T>(acc[r][q][e] + bias);
        }
  }
#endif
}

template <typename T, int R, int DDH>
cudaError_t launch_fwd_mma_rows_as(const ConvParams& p, const MmaRowsTiling& t, cudaStream_t stream) {
  static_assert(mma_rows_input_blocks(DDH) <= 6, "at most six input blocks (kw <= 63)");
  return launch_with_smem(dwconv_fwd_mma_rows_kernel<T, R, DDH>, p.C * t.splits, 32 * t.warps, t.smem_bytes, stream,
                          p, t);
}

template <typename T, int R>
cudaError_t launch_fwd_mma_rows_phases(const ConvParams& p, const MmaRowsTiling& t, cudaStream_t stream) {
  switch (t.ddh) {  // kw 1, 2-9, 10-17, 18-25, 26-33, 34-41, 42-49, 50-57, 58-63
    case 0: return launch_fwd_mma_rows_as<T, R, 0>(p, t, stream);
    case 1: return launch_fwd_mma_rows_as<T, R, 1>(p, t, stream);
    case 2: return launch_fwd_mma_rows_as<T, R, 2>(p, t, stream);
    case 3: return launch_fwd_mma_rows_as<T, R, 3>(p, t, stream);
    case 4: return launch_fwd_mma_rows_as<T, R, 4>(p, t, stream);
    case 5: return launch_fwd_mma_rows_as<T, R, 5>(p, t, stream);
    case 6: return launch_fwd_mma_rows_as<T, R, 6>(p, t, stream);
    case 7: return launch_fwd_mma_rows_as<T, R, 7>(p, t, stream);
    default: return launch_fwd_mma_rows_as<T, R, 8>(p, t, stream);
  }
}

template <typename T>
cudaError_t launch_fwd_mma_rows(const ConvParams& p, const DeviceInfo& d, cudaStream_t stream, int /*variant*/) {
  if (p.N * p.C * p.Ho * p.Wo == 0) return cudaSuccess;
  if (!mma_rows_fits(p, d)) return cudaErrorInvalidConfiguration;
  const MmaRowsTiling t = mma_rows_tiling(p, d);
  switch (t.r) {
    case 1: return launch_fwd_mma_rows_phases<T, 1>(p, t, stream);
    case 2: return launch_fwd_mma_rows_phases<T, 2>(p, t, stream);
    default: return launch_fwd_mma_rows_phases<T, 4>(p, t, stream);
  }
}

}  // namespace replk_ops
