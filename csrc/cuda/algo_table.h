// The extension's CUDA algos in one table: per pass, each algo's kernels per dtype, what it needs
// and whether "auto" may pick it; the valid names, and the table as JSON for the Python side.
// algo_choice.h resolves a name against it. Torch-free: the extension and the tests' CPU emulation
// of the kernels (tests/host_emulation) link the same units, so the table and the choice are
// tested without a GPU. See docs/design.md, "Planner".
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

const char* dtype_name(Dtype dtype);  // as torch names it: float32, float16, bfloat16

template <typename Params>
bool supports(const Algo<Params>& a, Dtype dtype) {
  return a.by_dtype[dtype].launch != nullptr;
}

// The dtypes the algo takes, by torch's names, joined by `separator`.
template <typename Params>
std::string dtype_list(const Algo<Params>& a, const char* separator) {
  std::string out;
  for (int t = 0; t < kDtypes; ++t) {
    if (!supports(a, static_cast<Dtype>(t))) continue;
    out += out.empty() ? "" : separator;
    out += dtype_name(static_cast<Dtype>(t));
  }
  return out;
}

// "" when `name` is "auto" or one of the pass's algos, else the message listing the valid names.
std::string check_algo_name(Pass pass, const std::string& name);

// The table as JSON: a list of {"pass", "algo", "dtypes", "min_cc", "verified_on_gpu", "auto",
// "auto_min_side", "max_kernel", "description"}, one per (pass, algo).
std::string algo_table_json();

}  // namespace replk_ops
