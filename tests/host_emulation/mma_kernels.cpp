// A C interface to the tensor-core kernels run on the CPU (cuda_on_cpu.h, warp_mma_on_cpu.h): the
// forwards (fwd_mma_rows.cuh; fwd_mma.cuh's WMMA warp and block tiles) and the weight gradient
// (bwd_weight_mma.cuh), through the extension's own launchers and tilings.
#include "warp_mma_on_cpu.h"

#include "../../csrc/kernels/bwd_weight_mma.cuh"
#include "../../csrc/kernels/fwd_mma.cuh"
#include "../../csrc/kernels/fwd_mma_rows.cuh"

namespace {

int mma_sm_count = 132;

replk_ops::DeviceInfo mma_device() {
  return replk_ops::DeviceInfo{mma_sm_count, static_cast<int>(replk_emulation::kMaxDynamicShared), 9};
}

enum MmaDtype { kMmaFloat16 = 1, kMmaBFloat16 = 2 };  // the codes of direct_kernels.cpp
enum MmaForward { kMmaRows = 0, kWmmaBlock = 1, kWmmaWarp = 2 };  // algo mma_rows, mma, mma_warp

template <typename T>
cudaError_t launch_mma_forward(const replk_ops::ConvParams& p, const replk_ops::DeviceInfo& d, int algo) {
  if (algo == kMmaRows) return replk_ops::launch_fwd_mma_rows<T>(p, d, nullptr);
  return replk_ops::launch_fwd_mma<T>(p, d, nullptr, algo == kWmmaBlock);
}

}  // namespace

extern "C" {

void replk_emulated_mma_set_sm_count(int sm_count) { mma_sm_count = sm_count; }

// As replk_emulated_fwd_direct (direct_kernels.cpp), for fp16/bf16 and algo MmaForward;
// cudaErrorInvalidConfiguration when the shape does not fit the kernel.
int replk_emulated_fwd_mma(int dtype, const void* x, const void* w, const void* bias, void* y, const int64_t* sizes,
                           const int64_t* xs, const int64_t* ys, int kh, int kw, int ph, int pw, int flip, int algo) {
  replk_ops::ConvParams p{};
  p.N = sizes[0]; p.C = sizes[1]; p.H = sizes[2]; p.W = sizes[3]; p.Ho = sizes[4]; p.Wo = sizes[5];
  p.kh = kh; p.kw = kw; p.ph = ph; p.pw = pw;
  for (int k = 0; k < 4; ++k) {
    p.xs[k] = xs[k];
    p.ys[k] = ys[k];
  }
  p.flip = flip != 0;
  p.x = x; p.w = w; p.bias = bias; p.y = y;
  const replk_ops::DeviceInfo d = mma_device();
  switch (dtype) {
    case kMmaFloat16: return launch_mma_forward<__half>(p, d, algo);
    case kMmaBFloat16: return launch_mma_forward<__nv_bfloat16>(p, d, algo);
    default: return cudaErrorInvalidValue;
  }
}

static replk_ops::BwdWeightParams mma_weight_params(const void* grad_out, const void* x, const int64_t* sizes,
                                         const int64_t* xs, const int64_t* gs, int kh, int kw, int ph, int pw) {
  replk_ops::BwdWeightParams p{};
  p.N = sizes[0]; p.C = sizes[1]; p.H = sizes[2]; p.W = sizes[3]; p.Ho = sizes[4]; p.Wo = sizes[5];
  p.kh = kh; p.kw = kw; p.ph = ph; p.pw = pw;
  for (int k = 0; k < 4; ++k) {
    p.xs[k] = xs[k];
    p.gs[k] = gs[k];
  }
  p.x = x; p.grad_out = grad_out;
  return p;
}

// The partials' first dimension, or -1 when the shape does not fit the kernel.
int replk_emulated_bwd_weight_mma_splits(const int64_t* sizes, int kh, int kw, int ph, int pw) {
  const int64_t strides[4] = {0, 0, 0, 0};
  replk_ops::BwdWeightParams p = mma_weight_params(nullptr, nullptr, sizes, strides, strides, kh, kw, ph, pw);
  const replk_ops::DeviceInfo d = mma_device();
  return replk_ops::bwd_weight_mma_fits(p, d) ? replk_ops::bwd_weight_mma_tiling(p, d).splits : -1;
}

int replk_emulated_bwd_weight_mma(int dtype, const void* grad_out, const void* x, float* partial_w, float* partial_b,
                                  const int64_t* sizes, const int64_t* xs, const int64_t* gs, int kh, int kw, int ph,
                                  int pw, int splits) {
  replk_ops::BwdWeightParams p = mma_weight_params(grad_out, x, sizes, xs, gs, kh, kw, ph, pw);
  p.partial_w = partial_w;
  p.partial_b = partial_b;
  p.splits = splits;
  const replk_ops::DeviceInfo d = mma_device();
  switch (dtype) {
    case kMmaFloat16: return replk_ops::launch_bwd_weight_mma<__half>(p, d, nullptr);
    case kMmaBFloat16: return replk_ops::launch_bwd_weight_mma<__nv_bfloat16>(p, d, nullptr);
    default: return cudaErrorInvalidValue;
  }
}

}  // extern "C"
