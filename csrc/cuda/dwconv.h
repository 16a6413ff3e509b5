// Plain-C++ interface between the op layer (dwconv_ops.cpp, which speaks torch; algo_table.cpp and
// algo_choice.cpp, which list the kernels and choose one) and the kernels (kernels/*.cu, which
// include no torch headers so each compiles in seconds).
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
  int cc_major, cc_minor;
};

// Launcher variants: one kernel file can serve two algo names (algo_table.cpp's table says which).
constexpr int kGenericTaps = 0, kUnrolledTaps = 1;  // fwd_direct.cuh
constexpr int kWarpTiles = 0, kBlockTiles = 1;      // fwd_mma.cuh

// What each instantiation file (kernels/<kernel>_<dtype>.cu, see kernels/instantiate.cuh) exports
// for the algo table: the launcher, which returns cudaSuccess or the launch error, and the plan:
// -1 where the kernel does not take the shape, else the partial-sum splits of the weight
// gradient's workspace (0 for the forward kernels).
#define REPLK_KERNEL_FUNCTIONS(KERNEL, SUFFIX, PARAMS)                                                    \
  cudaError_t KERNEL##_##SUFFIX(const PARAMS& p, const DeviceInfo& d, cudaStream_t s, int variant); \
  int KERNEL##_plan_##SUFFIX(const PARAMS& p, const DeviceInfo& d)

// The largest kernel side every algo takes (the algo table exports it as max_kernel).
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
  int64_t want = ceil_div(4LL * d.sm_count, p.C > 0 ? p.C : 1);  // fill the GPU about four times over
  if (want > t.tiles_per_channel) want = t.tiles_per_channel;
  t.splits = static_cast<int>(want < 1 ? 1 : want);
  return t;
}

}  // namespace replk_ops
