// A C interface to every CUDA kernel of csrc/ run on the CPU (cuda_on_cpu.h, warp_mma_on_cpu.h),
// for the tests: the extension's own launchers and tilings, called with the parameters
// csrc/dwconv_ops.cpp builds.
#include "warp_mma_on_cpu.h"

#include "../../csrc/kernels/bwd_weight.cuh"
#include "../../csrc/kernels/bwd_weight_mma.cuh"
#include "../../csrc/kernels/bwd_weight_wide.cuh"
#include "../../csrc/kernels/fwd_direct.cuh"
#include "../../csrc/kernels/fwd_direct_rows.cuh"
#include "../../csrc/kernels/fwd_mma.cuh"
#include "../../csrc/kernels/fwd_mma_rows.cuh"

namespace {

using replk_ops::BwdWeightParams;
using replk_ops::ConvParams;
using replk_ops::DeviceInfo;

// An H100 by default: the tilings size tiles and splits from these.
int emulated_sm_count = 132;

DeviceInfo emulated_device() {
  return DeviceInfo{emulated_sm_count, static_cast<int>(replk_emulation::kMaxDynamicShared), 9};
}

enum Dtype { kFloat32 = 0, kFloat16 = 1, kBFloat16 = 2 };
// The forward kernels by the extension's algo names: direct_generic, direct, direct_rows,
// mma_rows, mma (WMMA block tiles), mma_warp; the last three take fp16/bf16 only.
enum Forward { kGeneric = 0, kDirect = 1, kDirectRows = 2, kMmaRows = 3, kWmmaBlock = 4, kWmmaWarp = 5 };
enum WeightGradient { kWeightDirect = 0, kWeightMma = 1, kWeightWide = 2 };  // direct, mma, direct_wide

template <typename T>
cudaError_t launch_forward(const ConvParams& p, const DeviceInfo& d, int algo) {
  switch (algo) {
    case kGeneric: return replk_ops::launch_fwd_direct<T>(p, d, nullptr, false);
    case kDirect: return replk_ops::launch_fwd_direct<T>(p, d, nullptr, true);
    case kDirectRows: return replk_ops::launch_fwd_direct_rows<T>(p, d, nullptr);
    default:
      if constexpr (sizeof(T) == 2) {
        if (algo == kMmaRows) return replk_ops::launch_fwd_mma_rows<T>(p, d, nullptr);
        return replk_ops::launch_fwd_mma<T>(p, d, nullptr, algo == kWmmaBlock);
      } else {
        return cudaErrorInvalidValue;
      }
  }
}

template <typename T>
cudaError_t launch_weight_gradient(const BwdWeightParams& p, const DeviceInfo& d, int algo) {
  if (algo == kWeightDirect) return replk_ops::launch_bwd_weight<T>(p, d, nullptr);
  if (algo == kWeightWide) return replk_ops::launch_bwd_weight_wide<T>(p, d, nullptr);
  if constexpr (sizeof(T) == 2) {
    return replk_ops::launch_bwd_weight_mma<T>(p, d, nullptr);
  } else {
    return cudaErrorInvalidValue;
  }
}

template <typename Launch>
int by_dtype(int dtype, Launch launch) {
  switch (dtype) {
    case kFloat32: return launch(float{});
    case kFloat16: return launch(__half{});
    case kBFloat16: return launch(__nv_bfloat16{});
    default: return cudaErrorInvalidValue;
  }
}

BwdWeightParams weight_params(const void* grad_out, const void* x, const int64_t* sizes, const int64_t* xs,
                              const int64_t* gs, int kh, int kw, int ph, int pw) {
  BwdWeightParams p{};
  p.N = sizes[0]; p.C = sizes[1]; p.H = sizes[2]; p.W = sizes[3]; p.Ho = sizes[4]; p.Wo = sizes[5];
  p.kh = kh; p.kw = kw; p.ph = ph; p.pw = pw;
  for (int k = 0; k < 4; ++k) {
    p.xs[k] = xs[k];
    p.gs[k] = gs[k];
  }
  p.x = x; p.grad_out = grad_out;
  return p;
}

}  // namespace

extern "C" {

// Fewer SMs mean fewer splits, so each block sums more tiles.
void replk_emulated_set_sm_count(int sm_count) { emulated_sm_count = sm_count; }

// sizes: N, C, H, W, Ho, Wo; strides in elements; algo: see Forward. Returns a cudaError_t
// (cudaErrorInvalidConfiguration where a tensor-core kernel does not take the shape).
int replk_emulated_fwd(int dtype, const void* x, const void* w, const void* bias, void* y, const int64_t* sizes,
                       const int64_t* xs, const int64_t* ys, int kh, int kw, int ph, int pw, int flip, int algo) {
  ConvParams p{};
  p.N = sizes[0]; p.C = sizes[1]; p.H = sizes[2]; p.W = sizes[3]; p.Ho = sizes[4]; p.Wo = sizes[5];
  p.kh = kh; p.kw = kw; p.ph = ph; p.pw = pw;
  for (int k = 0; k < 4; ++k) {
    p.xs[k] = xs[k];
    p.ys[k] = ys[k];
  }
  p.flip = flip != 0;
  p.x = x; p.w = w; p.bias = bias; p.y = y;
  const DeviceInfo d = emulated_device();
  return by_dtype(dtype, [&](auto t) { return launch_forward<decltype(t)>(p, d, algo); });
}

// The partials' first dimension for algo (see WeightGradient), or -1 where it does not take the shape.
int replk_emulated_bwd_weight_splits(const int64_t* sizes, int kh, int kw, int ph, int pw, int algo) {
  const int64_t strides[4] = {0, 0, 0, 0};
  const BwdWeightParams p = weight_params(nullptr, nullptr, sizes, strides, strides, kh, kw, ph, pw);
  const DeviceInfo d = emulated_device();
  if (algo == kWeightMma) {
    return replk_ops::bwd_weight_mma_fits(p, d) ? replk_ops::bwd_weight_mma_tiling(p, d).splits : -1;
  }
  return replk_ops::bwd_weight_tiling(p, d).splits;
}

// partial_w: (splits, C, kh, kw) and partial_b: (splits, C), float32. Returns a cudaError_t.
int replk_emulated_bwd_weight(int dtype, const void* grad_out, const void* x, float* partial_w, float* partial_b,
                              const int64_t* sizes, const int64_t* xs, const int64_t* gs, int kh, int kw, int ph,
                              int pw, int splits, int algo) {
  BwdWeightParams p = weight_params(grad_out, x, sizes, xs, gs, kh, kw, ph, pw);
  p.partial_w = partial_w;
  p.partial_b = partial_b;
  p.splits = splits;
  const DeviceInfo d = emulated_device();
  return by_dtype(dtype, [&](auto t) { return launch_weight_gradient<decltype(t)>(p, d, algo); });
}

}  // extern "C"

namespace {

// The last thread writes shared word 0 before the barrier; after it every thread reads word 0 (the
// barrier must order them) and a word nobody wrote (the NaN poison must show).
__global__ void self_check_kernel(float* out) {
  REPLK_DYNAMIC_SHARED(float, smem, 16);
  if (threadIdx.x == blockDim.x - 1) smem[0] = 1.f + blockIdx.x;
  __syncthreads();
  float* mine = out + 2 * (blockIdx.x * blockDim.x + threadIdx.x);
  mine[0] = smem[0];
  mine[1] = smem[1 + threadIdx.x];
}

}  // namespace

extern "C" {

// out: (blocks, threads, 2) floats; see self_check_kernel.
int replk_emulated_self_check(float* out, int blocks, int threads) {
  return replk_ops::launch_with_smem(self_check_kernel, blocks, threads, (threads + 1) * sizeof(float), nullptr,
                                     out);
}

}  // extern "C"
