// The extension's CUDA algos in one table, the "auto" choice among them, name checks and the
// workspace each needs. Torch-free: the extension and the tests' CPU emulation of the kernels
// (tests/host_emulation) link the same unit, so the choice is tested without a GPU. See
// docs/design.md, "Planner".
#pragma once

#include <cstddef>
#include <string>

#include "dwconv.h"

namespace replk_ops {

enum Dtype : int { kFloat32 = 0, kFloat16 = 1, kBFloat16 = 2 };
constexpr int kDtypes = 3;

// fwd and bwd_input run the same kernels (the input gradient is the forward with the rotated
// kernel) and share one list of algos; bwd_weight has its own.
enum class Pass : int { kFwd = 0, kBwdInput = 1, kBwdWeight = 2 };

template <typename Params>
struct KernelFunctions {  // one dtype's instantiation (REPLK_KERNEL_FUNCTIONS)
  cudaError_t (*launch)(const Params&, const DeviceInfo&, cudaStream_t, int variant);
  int (*plan)(const Params&, const DeviceInfo&);
};

template <typename Params>
struct Algo {
  const char* name;
  KernelFunctions<Params> by_dtype[kDtypes];  // launch == nullptr: the dtype is not supported
  int variant;              // passed to the launcher: which form of the kernel this name selects
  int min_cc;               // compute capability, major * 10 + minor
  bool verified_on_gpu;     // has passed the GPU tests on a GPU
  bool in_auto;             // "auto" may pick it: only verified algos
  int auto_min_side;        // ... and only for outputs whose smaller side exceeds this
  const char* description;
};
using ConvAlgo = Algo<ConvParams>;
using WeightAlgo = Algo<BwdWeightParams>;

template <typename T>
struct Table {
  const T* first;
  size_t size;
  const T* begin() const { return first; }
  const T* end() const { return first + size; }
};

Table<ConvAlgo> conv_algos();      // fwd and bwd_input, in "auto"'s order of preference
Table<WeightAlgo> weight_algos();  // bwd_weight, likewise

// What runs: the algo and the partial-sum splits its workspace needs (weight gradient), or an
// error message (then algo is null).
template <typename Params>
struct Plan {
  const Algo<Params>* algo;
  int splits;
  std::string error;
};

// "" when `name` is "auto" or one of the pass's algos, else the message listing the valid names.
std::string check_algo_name(Pass pass, const std::string& name);

// Resolves `name` ("auto" or an algo) for this problem on this device.
Plan<ConvParams> plan_conv(const ConvParams& p, Dtype dtype, const DeviceInfo& d, const std::string& name);
Plan<BwdWeightParams> plan_weight(const BwdWeightParams& p, Dtype dtype, const DeviceInfo& d,
                                  const std::string& name);

// Runs a plan without error (p.splits set from it for the weight gradient).
cudaError_t launch(const Plan<ConvParams>& plan, const ConvParams& p, Dtype dtype, const DeviceInfo& d,
                   cudaStream_t stream);
cudaError_t launch(const Plan<BwdWeightParams>& plan, const BwdWeightParams& p, Dtype dtype, const DeviceInfo& d,
                   cudaStream_t stream);

const char* dtype_name(Dtype dtype);  // as torch names it: float32, float16, bfloat16

// The table as JSON: a list of {"pass", "algo", "dtypes", "min_cc", "verified_on_gpu", "auto",
// "auto_min_side", "max_kernel", "description"}, one per (pass, algo).
std::string algo_table_json();

}  // namespace replk_ops
