// A C interface to the CUDA-core kernels run on the CPU (cuda_on_cpu.h), for the tests: the same
// launchers and kernels as the extension, called with the parameters csrc/dwconv_ops.cpp builds.
#include "cuda_on_cpu.h"

#include "../../csrc/kernels/bwd_weight.cuh"
#include "../../csrc/kernels/fwd_direct.cuh"
#include "../../csrc/kernels/fwd_direct_rows.cuh"

namespace {

using replk_ops::BwdWeightParams;
using replk_ops::ConvParams;
using replk_ops::DeviceInfo;

// An H100 by default: the tiling functions size tiles and splits from these.
int emulated_sm_count = 132;

DeviceInfo emulated_device() {
  return DeviceInfo{emulated_sm_count, static_cast<int>(replk_emulation::kMaxDynamicShared), 9};
}

enum Dtype { kFloat32 = 0, kFloat16 = 1, kBFloat16 = 2 };
enum Variant { kGeneric = 0, kUnrolled = 1, kRows = 2 };  // algo direct_generic, direct, direct_rows

template <typename T>
cudaError_t launch_forward(const ConvParams& p, const DeviceInfo& d, int variant) {
  if (variant == kRows) return replk_ops::launch_fwd_direct_rows<T>(p, d, nullptr);
  return replk_ops::launch_fwd_direct<T>(p, d, nullptr, variant == kUnrolled);
}

}  // namespace

extern "C" {

// Fewer SMs mean fewer weight-gradient splits, so each block sums more tiles.
void replk_emulated_set_sm_count(int sm_count) { emulated_sm_count = sm_count; }

// sizes: N, C, H, W, Ho, Wo; strides in elements; variant: see Variant. Returns a cudaError_t.
int replk_emulated_fwd_direct(int dtype, const void* x, const void* w, const void* bias, void* y,
                              const int64_t* sizes, const int64_t* xs, const int64_t* ys, int kh, int kw, int ph,
                              int pw, int flip, int variant) {
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
  switch (dtype) {
    case kFloat32: return launch_forward<float>(p, d, variant);
    case kFloat16: return launch_forward<__half>(p, d, variant);
    case kBFloat16: return launch_forward<__nv_bfloat16>(p, d, variant);
    default: return cudaErrorInvalidValue;
  }
}

static BwdWeightParams bwd_weight_params(const void* grad_out, const void* x, const int64_t* sizes,
                                         const int64_t* xs, const int64_t* gs, int kh, int kw, int ph, int pw) {
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

// How many partial sums per channel the weight-gradient kernel writes (the workspace's first dim).
int replk_emulated_bwd_weight_splits(const int64_t* sizes, int kh, int kw, int ph, int pw) {
  const int64_t strides[4] = {0, 0, 0, 0};
  BwdWeightParams p = bwd_weight_params(nullptr, nullptr, sizes, strides, strides, kh, kw, ph, pw);
  return replk_ops::bwd_weight_tiling(p, emulated_device()).splits;
}

// partial_w: (splits, C, kh, kw) and partial_b: (splits, C), float32. Returns a cudaError_t.
int replk_emulated_bwd_weight(int dtype, const void* grad_out, const void* x, float* partial_w, float* partial_b,
                              const int64_t* sizes, const int64_t* xs, const int64_t* gs, int kh, int kw, int ph,
                              int pw, int splits) {
  BwdWeightParams p = bwd_weight_params(grad_out, x, sizes, xs, gs, kh, kw, ph, pw);
  p.partial_w = partial_w;
  p.partial_b = partial_b;
  p.splits = splits;
  const DeviceInfo d = emulated_device();
  switch (dtype) {
    case kFloat32: return replk_ops::launch_bwd_weight<float>(p, d, nullptr);
    case kFloat16: return replk_ops::launch_bwd_weight<__half>(p, d, nullptr);
    case kBFloat16: return replk_ops::launch_bwd_weight<__nv_bfloat16>(p, d, nullptr);
    default: return cudaErrorInvalidValue;
  }
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
