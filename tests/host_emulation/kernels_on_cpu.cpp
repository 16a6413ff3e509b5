// A C interface to the extension's CUDA kernels run on the CPU (cuda_on_cpu.h, warp_mma_on_cpu.h),
// for the tests: the instantiation files of csrc/cuda/kernels, the algo table and the choice
// (csrc/cuda/algo_table.cpp, algo_choice.cpp: "auto"'s choice, workspace sizes), called by algo
// name with the parameters csrc/cuda/dwconv_ops.cpp builds. Why this layer exists:
// docs/design.md, "Test layers".
#include "warp_mma_on_cpu.h"

#include "kernel_sources.inc"  // every csrc/cuda/kernels/*.cu, listed by tests/cuda_on_cpu.py
#include "../../csrc/cuda/algo_table.cpp"
#include "../../csrc/cuda/algo_choice.cpp"

#include <string>

namespace {

using replk_ops::BwdWeightParams;
using replk_ops::ConvParams;
using replk_ops::DeviceInfo;
using replk_ops::Dtype;

// An H100 by default: the tilings size tiles and splits from these, the planner checks min_cc.
int emulated_sm_count = 132;
int emulated_cc[2] = {9, 0};
std::string last_error;

DeviceInfo emulated_device() {
  return DeviceInfo{emulated_sm_count, static_cast<int>(replk_emulation::kMaxDynamicShared), emulated_cc[0],
                    emulated_cc[1]};
}

// What a plan that cannot run returns, distinct from every cudaError_t.
constexpr int kNoPlan = -1;

ConvParams conv_params(const int64_t* sizes, int kh, int kw, int ph, int pw, int flip) {
  ConvParams p{};
  p.N = sizes[0]; p.C = sizes[1]; p.H = sizes[2]; p.W = sizes[3]; p.Ho = sizes[4]; p.Wo = sizes[5];
  p.kh = kh; p.kw = kw; p.ph = ph; p.pw = pw;
  p.flip = flip != 0;
  return p;
}

BwdWeightParams weight_params(const int64_t* sizes, int kh, int kw, int ph, int pw) {
  BwdWeightParams p{};
  p.N = sizes[0]; p.C = sizes[1]; p.H = sizes[2]; p.W = sizes[3]; p.Ho = sizes[4]; p.Wo = sizes[5];
  p.kh = kh; p.kw = kw; p.ph = ph; p.pw = pw;
  return p;
}

template <typename Params>
bool planned(const replk_ops::Plan<Params>& plan) {
  last_error = plan.error;
  return plan.error.empty();
}

}  // namespace

extern "C" {

// Fewer SMs mean fewer splits, so each block sums more tiles.
void replk_emulated_set_sm_count(int sm_count) { emulated_sm_count = sm_count; }

void replk_emulated_set_compute_capability(int major, int minor) {
  emulated_cc[0] = major;
  emulated_cc[1] = minor;
}

// The table as the extension's algo_table op returns it.
const char* replk_emulated_algo_table() {
  static const std::string json = replk_ops::algo_table_json();
  return json.c_str();
}

// Why the last call returned kNoPlan (or null).
const char* replk_emulated_last_error() { return last_error.c_str(); }

// The algo `algo` ("auto" or a name) resolves to for pass 0 (fwd), 1 (bwd_input) or 2
// (bwd_weight), or null. sizes: N, C, H, W, Ho, Wo of the pass's input and output.
const char* replk_emulated_choice(int pass, int dtype, const int64_t* sizes, int kh, int kw, int ph, int pw,
                                  const char* algo) {
  const DeviceInfo d = emulated_device();
  if (pass == static_cast<int>(replk_ops::Pass::kBwdWeight)) {
    const auto plan = replk_ops::plan_weight(weight_params(sizes, kh, kw, ph, pw), Dtype(dtype), d, algo);
    return planned(plan) ? plan.algo->name : nullptr;
  }
  const auto plan = replk_ops::plan_conv(conv_params(sizes, kh, kw, ph, pw, pass), Dtype(dtype), d, algo);
  return planned(plan) ? plan.algo->name : nullptr;
}

// sizes: N, C, H, W, Ho, Wo; strides in elements. Returns a cudaError_t, or kNoPlan.
int replk_emulated_fwd(int dtype, const void* x, const void* w, const void* bias, void* y, const int64_t* sizes,
                       const int64_t* xs, const int64_t* ys, int kh, int kw, int ph, int pw, int flip,
                       const char* algo) {
  ConvParams p = conv_params(sizes, kh, kw, ph, pw, flip);
  for (int k = 0; k < 4; ++k) {
    p.xs[k] = xs[k];
    p.ys[k] = ys[k];
  }
  p.x = x; p.w = w; p.bias = bias; p.y = y;
  const DeviceInfo d = emulated_device();
  const auto plan = replk_ops::plan_conv(p, Dtype(dtype), d, algo);
  return planned(plan) ? replk_ops::launch(plan, p, Dtype(dtype), d, nullptr) : kNoPlan;
}

// The partials' first dimension for algo, or kNoPlan.
int replk_emulated_bwd_weight_splits(int dtype, const int64_t* sizes, int kh, int kw, int ph, int pw,
                                     const char* algo) {
  const auto plan = replk_ops::plan_weight(weight_params(sizes, kh, kw, ph, pw), Dtype(dtype), emulated_device(),
                                           algo);
  return planned(plan) ? plan.splits : kNoPlan;
}

// partial_w: (splits, C, kh, kw) and partial_b: (splits, C), float32, splits as
// replk_emulated_bwd_weight_splits says. Returns a cudaError_t, or kNoPlan.
int replk_emulated_bwd_weight(int dtype, const void* grad_out, const void* x, float* partial_w, float* partial_b,
                              const int64_t* sizes, const int64_t* xs, const int64_t* gs, int kh, int kw, int ph,
                              int pw, const char* algo) {
  BwdWeightParams p = weight_params(sizes, kh, kw, ph, pw);
  for (int k = 0; k < 4; ++k) {
    p.xs[k] = xs[k];
    p.gs[k] = gs[k];
  }
  p.x = x; p.grad_out = grad_out;
  p.partial_w = partial_w;
  p.partial_b = partial_b;
  const DeviceInfo d = emulated_device();
  const auto plan = replk_ops::plan_weight(p, Dtype(dtype), d, algo);
  if (!planned(plan)) return kNoPlan;
  p.splits = plan.splits;
  return replk_ops::launch(plan, p, Dtype(dtype), d, nullptr);
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
