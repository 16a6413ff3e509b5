// Plain-C++ interface between the op layer (dwconv_ops.cpp, which speaks torch) and the kernels
// (kernels/*.cu, which include no torch headers so each compiles in seconds).
#pragma once

#include <cstdint>

#include <cuda_runtime.h>

namespace replk_ops {

// One depthwise convolution, stride 1, dilation 1: y[n,c] = x[n,c] (*) w[c] with padding (ph, pw).
// Strides are in elements, so NCHW, channels_last and strided views take the same path.
// Padding may be negative: the input gradient is the forward with padding k - 1 - p.
struct ConvParams {
  int64_t N, C, H, W;    // input
  int64_t Ho, Wo;        // output
  int kh, kw, ph, pw;
  int64_t xs[4];         // input strides (n, c, h, w)
  int64_t ys[4];         // output strides
  bool flip;             // use the kernel rotated by 180 degrees (input gradient)
  const void* x;
  const void* w;         // contiguous (C, 1, kh, kw)
  const void* bias;      // (C,) or nullptr
  void* y;
};

// The weight gradient: partial sums per (split, channel), reduced by the caller in a fixed order.
struct BwdWeightParams {
  int64_t N, C, H, W;    // input x
  int64_t Ho, Wo;        // grad_out
  int kh, kw, ph, pw;
  int64_t xs[4];
  int64_t gs[4];         // grad_out strides
  const void* x;
  const void* grad_out;
  float* partial_w;      // (splits, C, kh, kw)
  float* partial_b;      // (splits, C)
  int splits;
};

struct DeviceInfo {
  int sm_count;
  int max_smem_per_block;  // with the opt-in attribute
  int cc_major;
};

// Each returns cudaSuccess or the launch error. The mma launchers return cudaErrorInvalidConfiguration
// without launching when the shape does not fit them (the caller then uses the direct kernel).
#define REPLK_DECLARE(SUFFIX)                                                                 \
  cudaError_t fwd_direct_##SUFFIX(const ConvParams& p, const DeviceInfo& d, cudaStream_t s, bool unrolled); \
  cudaError_t fwd_direct_rows_##SUFFIX(const ConvParams& p, const DeviceInfo& d, cudaStream_t s);           \
  cudaError_t bwd_weight_##SUFFIX(const BwdWeightParams& p, const DeviceInfo& d, cudaStream_t s);          \
  cudaError_t bwd_weight_wide_##SUFFIX(const BwdWeightParams& p, const DeviceInfo& d, cudaStream_t s);
REPLK_DECLARE(f32)
REPLK_DECLARE(f16)
REPLK_DECLARE(bf16)
#undef REPLK_DECLARE

cudaError_t fwd_mma_f16(const ConvParams& p, const DeviceInfo& d, cudaStream_t s, bool block_tiles);
cudaError_t fwd_mma_bf16(const ConvParams& p, const DeviceInfo& d, cudaStream_t s, bool block_tiles);
// Whether the tensor-core kernel can run this shape on this GPU (compute capability 8.0+, shared memory).
bool fwd_mma_fits(const ConvParams& p, const DeviceInfo& d);
// The tensor-core kernel with strided MMA rows and register-resident accumulators (fwd_mma_rows.cuh).
cudaError_t fwd_mma_rows_f16(const ConvParams& p, const DeviceInfo& d, cudaStream_t s);
cudaError_t fwd_mma_rows_bf16(const ConvParams& p, const DeviceInfo& d, cudaStream_t s);
bool fwd_mma_rows_fits(const ConvParams& p, const DeviceInfo& d);

// The tensor-core weight gradient for fp16/bf16 (bwd_weight_mma.cuh); the caller sizes the
// partials workspace from bwd_weight_mma_splits (which also says whether the shape fits).
struct BwdWeightSplits {
  bool fits;
  int splits;
};
cudaError_t bwd_weight_mma_f16(const BwdWeightParams& p, const DeviceInfo& d, cudaStream_t s);
cudaError_t bwd_weight_mma_bf16(const BwdWeightParams& p, const DeviceInfo& d, cudaStream_t s);
BwdWeightSplits bwd_weight_mma_splits(const BwdWeightParams& p, const DeviceInfo& d);

constexpr int kMaxKernel = 63;

#ifdef __CUDACC__
#define REPLK_HOST_DEVICE __host__ __device__
#else
#define REPLK_HOST_DEVICE
#endif

// For positive b; a may be negative (rounds toward +infinity only for a >= 0, which is all callers need).
REPLK_HOST_DEVICE inline int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }
REPLK_HOST_DEVICE inline int64_t round_up(int64_t a, int64_t b) { return ceil_div(a, b) * b; }

// Tiles of the weight-gradient kernel; the caller sizes the partials workspace from `splits`.
struct BwdWeightTiling {
  int th, tw, kwp;            // output rows and columns per tile; kw rounded up to 8
  int64_t tiles_h, tiles_w, tiles_per_channel;
  int splits;                 // blocks per channel, each summing a fixed range of tiles
};

inline BwdWeightTiling bwd_weight_tiling(const BwdWeightParams& p, const DeviceInfo& d) {
  BwdWeightTiling t;
  t.kwp = static_cast<int>(round_up(p.kw, 8));
  t.tw = static_cast<int>(round_up(p.Wo < 64 ? p.Wo : 64, 8));
  t.th = static_cast<int>(p.Ho < 32 ? p.Ho : 32);
  t.tiles_h = ceil_div(p.Ho, t.th);
  t.tiles_w = ceil_div(p.Wo, t.tw);
  t.tiles_per_channel = p.N * t.tiles_h * t.tiles_w;
  int64_t want = ceil_div(4LL * d.sm_count, p.C);  // fill the GPU about four times over
  if (want > t.tiles_per_channel) want = t.tiles_per_channel;
  t.splits = static_cast<int>(want < 1 ? 1 : want);
  return t;
}

}  // namespace replk_ops
