// The extension's ops: replk_ops_C::fwd, bwd_input and bwd_weight for CUDA tensors, algo_table and
// exception_probe.
// They check their arguments with REPLK_CHECK (TORCH_CHECK: a Python RuntimeError, never an
// abort), set the device guard, run on the current stream and take any workspace from the caching
// allocator; which kernel runs is algo_choice.cpp's choice. The Python layer
// (replk_ops/backends/cuda.py) calls them behind the package's own ops.
#include <cmath>
#include <cstdlib>
#include <mutex>
#include <string>
#include <vector>

#include <ATen/ATen.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <torch/library.h>

#include "algo_choice.h"

namespace replk_ops {
namespace {

// Messages are joined with std::string appends and std::to_string and handed to TORCH_CHECK as one C
// string, which it copies unformatted: TORCH_CHECK's own joining of several arguments streams
// them through std::ostringstream, and this library uses no iostreams (see algo_table.cpp).
std::string piece(const char* text) { return text; }
std::string piece(const std::string& text) { return text; }
std::string piece(int64_t value) { return std::to_string(value); }
std::string piece(at::ScalarType dtype) { return c10::toString(dtype); }
std::string piece(const c10::Device& device) { return device.str(); }
std::string piece(at::IntArrayRef sizes) {  // as torch prints sizes: [2, 3]
  std::string out = "[";
  for (size_t k = 0; k < sizes.size(); ++k) out += (k > 0 ? ", " : "") + std::to_string(sizes[k]);
  return out + "]";
}

template <typename... Parts>
std::string message(const Parts&... parts) {
  std::string out;
  ((out += piece(parts)), ...);
  return out;
}

#define REPLK_CHECK(cond, ...) TORCH_CHECK(cond, message(__VA_ARGS__).c_str())

constexpr const char* kProbeMessage = "replk_ops._C exception probe: this RuntimeError is expected";

DeviceInfo device_info(int device) {
  static std::mutex mutex;
  static std::vector<DeviceInfo> cache;
  static std::vector<bool> known;
  std::lock_guard<std::mutex> lock(mutex);
  if (static_cast<int>(cache.size()) <= device) {
    cache.resize(device + 1);
    known.resize(device + 1, false);
  }
  if (!known[device]) {
    DeviceInfo info{};
    C10_CUDA_CHECK(cudaDeviceGetAttribute(&info.sm_count, cudaDevAttrMultiProcessorCount, device));
    C10_CUDA_CHECK(cudaDeviceGetAttribute(&info.max_smem_per_block, cudaDevAttrMaxSharedMemoryPerBlockOptin, device));
    C10_CUDA_CHECK(cudaDeviceGetAttribute(&info.cc_major, cudaDevAttrComputeCapabilityMajor, device));
    C10_CUDA_CHECK(cudaDeviceGetAttribute(&info.cc_minor, cudaDevAttrComputeCapabilityMinor, device));
    cache[device] = info;
    known[device] = true;
  }
  return cache[device];
}

void check_input(const at::Tensor& t, const char* name) {
  REPLK_CHECK(t.is_cuda(), name, ": expected a CUDA tensor, got one on ", t.device());
  REPLK_CHECK(t.dim() == 4, name, ": expected 4 dimensions (N, C, H, W), got shape ", t.sizes());
  auto dtype = t.scalar_type();
  REPLK_CHECK(dtype == at::kFloat || dtype == at::kHalf || dtype == at::kBFloat16, name,
              ": expected float32, float16 or bfloat16, got ", dtype);
}

Dtype dtype_of(const at::Tensor& t) {
  return t.scalar_type() == at::kFloat ? kFloat32 : t.scalar_type() == at::kHalf ? kFloat16 : kBFloat16;
}

void check_kernel(int64_t kh, int64_t kw) {
  REPLK_CHECK(kh >= 1 && kw >= 1 && kh <= kMaxKernel && kw <= kMaxKernel, "kernel size: expected 1..",
              kMaxKernel, " in each dimension, got (", kh, ", ", kw, ")");
}

void check_weight(const at::Tensor& weight, const at::Tensor& x) {
  REPLK_CHECK(weight.dim() == 4 && weight.size(0) == x.size(1) && weight.size(1) == 1, "weight: expected shape (",
              x.size(1), ", 1, kh, kw), got ", weight.sizes());
  REPLK_CHECK(weight.device() == x.device(), "weight: expected device ", x.device(), ", got ", weight.device());
  REPLK_CHECK(weight.scalar_type() == x.scalar_type(), "weight: expected dtype ", x.scalar_type(), ", got ",
              weight.scalar_type());
  check_kernel(weight.size(2), weight.size(3));
}

at::MemoryFormat format_of(const at::Tensor& t) {
  return t.suggest_memory_format() == at::MemoryFormat::ChannelsLast ? at::MemoryFormat::ChannelsLast
                                                                     : at::MemoryFormat::Contiguous;
}

void fill_strides(int64_t* out, const at::Tensor& t) {
  for (int k = 0; k < 4; ++k) out[k] = t.stride(k);
}

// Tests set REPLK_OPS_POISON_OUTPUTS=1 so outputs and workspaces start as NaN: an element a kernel
// forgets to write then fails the comparison instead of passing by luck.
bool poison_outputs() {
  const char* value = std::getenv("REPLK_OPS_POISON_OUTPUTS");
  return value != nullptr && value[0] == '1';
}

void throw_on_error(cudaError_t err, const char* what) {
  REPLK_CHECK(err == cudaSuccess, "replk_ops CUDA ", what, " kernel failed to launch: ", cudaGetErrorString(err));
}

// Runs the forward correlation of `x` with `weight` (rotated when `flip`) into `y`.
void run_forward(const at::Tensor& x, const at::Tensor& weight, const c10::optional<at::Tensor>& bias,
                 int64_t ph, int64_t pw, bool flip, at::Tensor& y, const std::string& algo) {
  ConvParams p{};
  p.N = x.size(0); p.C = x.size(1); p.H = x.size(2); p.W = x.size(3);
  p.Ho = y.size(2); p.Wo = y.size(3);
  p.kh = static_cast<int>(weight.size(2)); p.kw = static_cast<int>(weight.size(3));
  p.ph = static_cast<int>(ph); p.pw = static_cast<int>(pw);
  fill_strides(p.xs, x);
  fill_strides(p.ys, y);
  p.flip = flip;
  p.x = x.data_ptr();
  p.w = weight.data_ptr();
  p.bias = bias.has_value() ? bias->data_ptr() : nullptr;
  p.y = y.data_ptr();
  if (y.numel() == 0) return;
  if (poison_outputs()) y.fill_(NAN);
  const DeviceInfo info = device_info(x.get_device());
  const Plan<ConvParams> plan = plan_conv(p, dtype_of(x), info, algo);
  REPLK_CHECK(plan.error.empty(), plan.error);
  cudaStream_t stream = c10::cuda::getCurrentCUDAStream(x.get_device()).stream();
  cudaError_t err = launch(plan, p, dtype_of(x), info, stream);
  throw_on_error(err, "forward");
}

void check_algo(Pass pass, const std::string& algo) {
  const std::string error = check_algo_name(pass, algo);
  REPLK_CHECK(error.empty(), error);
}

at::Tensor fwd(const at::Tensor& x, const at::Tensor& weight, const c10::optional<at::Tensor>& bias, int64_t ph,
               int64_t pw, const std::string& algo) {
  check_input(x, "x");
  check_weight(weight, x);
  check_algo(Pass::kFwd, algo);
  REPLK_CHECK(ph >= 0 && pw >= 0, "padding: expected non-negative values, got (", ph, ", ", pw, ")");
  if (bias.has_value()) {
    REPLK_CHECK(bias->dim() == 1 && bias->size(0) == x.size(1), "bias: expected shape (", x.size(1), "), got ",
                bias->sizes());
    REPLK_CHECK(bias->device() == x.device() && bias->scalar_type() == x.scalar_type(), "bias: expected ",
                x.scalar_type(), " on ", x.device(), ", got ", bias->scalar_type(), " on ", bias->device());
  }
  int64_t ho = x.size(2) + 2 * ph - weight.size(2) + 1, wo = x.size(3) + 2 * pw - weight.size(3) + 1;
  REPLK_CHECK(ho >= 1 && wo >= 1, "x: input (", x.size(2), ", ", x.size(3), ") with padding (", ph, ", ", pw,
              ") is smaller than the kernel (", weight.size(2), ", ", weight.size(3), ")");
  c10::cuda::CUDAGuard guard(x.device());
  at::Tensor w = weight.contiguous();
  c10::optional<at::Tensor> b = bias.has_value() ? c10::optional<at::Tensor>(bias->contiguous()) : c10::nullopt;
  at::Tensor y = at::empty({x.size(0), x.size(1), ho, wo}, x.options().memory_format(format_of(x)));
  run_forward(x, w, b, ph, pw, false, y, algo);
  return y;
}

at::Tensor bwd_input(const at::Tensor& grad_out, const at::Tensor& weight, int64_t ph, int64_t pw,
                     const std::string& algo) {
  check_input(grad_out, "grad_out");
  check_weight(weight, grad_out);
  check_algo(Pass::kBwdInput, algo);
  int64_t kh = weight.size(2), kw = weight.size(3);
  int64_t h = grad_out.size(2) - 2 * ph + kh - 1, w = grad_out.size(3) - 2 * pw + kw - 1;
  REPLK_CHECK(h >= 1 && w >= 1, "grad_out: shape ", grad_out.sizes(), " does not match any input for kernel (",
              kh, ", ", kw, ") and padding (", ph, ", ", pw, ")");
  c10::cuda::CUDAGuard guard(grad_out.device());
  at::Tensor wt = weight.contiguous();
  at::Tensor dx = at::empty({grad_out.size(0), grad_out.size(1), h, w},
                            grad_out.options().memory_format(format_of(grad_out)));
  // the correlation of dy with the rotated kernel and padding k - 1 - p (negative is fine: the
  // kernels bound every index against the input)
  run_forward(grad_out, wt, c10::nullopt, kh - 1 - ph, kw - 1 - pw, true, dx, algo);
  return dx;
}

std::tuple<at::Tensor, at::Tensor> bwd_weight(const at::Tensor& grad_out, const at::Tensor& x, int64_t kh,
                                              int64_t kw, int64_t ph, int64_t pw, bool deterministic,
                                              const std::string& algo) {
  // `deterministic` is accepted for the schema's sake: the kernels are always deterministic
  // (fixed-order partial sums, no atomics).
  (void)deterministic;
  check_algo(Pass::kBwdWeight, algo);
  check_input(grad_out, "grad_out");
  check_input(x, "x");
  check_kernel(kh, kw);
  REPLK_CHECK(grad_out.device() == x.device() && grad_out.scalar_type() == x.scalar_type(), "grad_out: expected ",
              x.scalar_type(), " on ", x.device(), ", got ", grad_out.scalar_type(), " on ", grad_out.device());
  int64_t ho = x.size(2) + 2 * ph - kh + 1, wo = x.size(3) + 2 * pw - kw + 1;
  REPLK_CHECK(grad_out.size(0) == x.size(0) && grad_out.size(1) == x.size(1) && grad_out.size(2) == ho &&
                  grad_out.size(3) == wo,
              "grad_out: expected shape (", x.size(0), ", ", x.size(1), ", ", ho, ", ", wo, "), got ",
              grad_out.sizes());
  c10::cuda::CUDAGuard guard(x.device());
  BwdWeightParams p{};
  p.N = x.size(0); p.C = x.size(1); p.H = x.size(2); p.W = x.size(3);
  p.Ho = ho; p.Wo = wo;
  p.kh = static_cast<int>(kh); p.kw = static_cast<int>(kw); p.ph = static_cast<int>(ph); p.pw = static_cast<int>(pw);
  fill_strides(p.xs, x);
  fill_strides(p.gs, grad_out);
  p.x = x.data_ptr();
  p.grad_out = grad_out.data_ptr();
  const DeviceInfo info = device_info(x.get_device());
  const Plan<BwdWeightParams> plan = plan_weight(p, dtype_of(x), info, algo);
  REPLK_CHECK(plan.error.empty(), plan.error);
  p.splits = plan.splits;
  auto f32 = x.options().dtype(at::kFloat).memory_format(at::MemoryFormat::Contiguous);
  at::Tensor partial_w = at::empty({p.splits, p.C, kh, kw}, f32);
  at::Tensor partial_b = at::empty({p.splits, p.C}, f32);
  if (poison_outputs()) {
    partial_w.fill_(NAN);
    partial_b.fill_(NAN);
  }
  p.partial_w = partial_w.data_ptr<float>();
  p.partial_b = partial_b.data_ptr<float>();
  if (p.C > 0) {
    cudaStream_t stream = c10::cuda::getCurrentCUDAStream(x.get_device()).stream();
    cudaError_t err = launch(plan, p, dtype_of(x), info, stream);
    throw_on_error(err, "weight-gradient");
  }
  // torch's reductions sum in a fixed order: the result is deterministic
  at::Tensor grad_weight = partial_w.sum(0).unsqueeze(1).to(x.scalar_type());
  at::Tensor grad_bias = partial_b.sum(0).to(x.scalar_type());
  return {grad_weight, grad_bias};
}

std::string algo_table() { return algo_table_json(); }

// Throws through the same path as every argument check (TORCH_CHECK with one C string).
// replk_ops/_extension.py calls it once per build in a child process: whether a C++ exception
// thrown by this library reaches Python as a RuntimeError or aborts the process depends on how the
// compiler's runtime pairs with torch's.
void exception_probe() { TORCH_CHECK(false, kProbeMessage); }

}  // namespace
}  // namespace replk_ops

TORCH_LIBRARY_FRAGMENT(replk_ops_C, m) {
  m.def("fwd(Tensor x, Tensor weight, Tensor? bias, int ph, int pw, str algo=\"auto\") -> Tensor");
  m.def("bwd_input(Tensor grad_out, Tensor weight, int ph, int pw, str algo=\"auto\") -> Tensor");
  m.def("bwd_weight(Tensor grad_out, Tensor x, int kh, int kw, int ph, int pw, bool deterministic, "
        "str algo=\"auto\") -> (Tensor, Tensor)");
  // a plain function: a catch-all kernel, callable without a GPU or any tensor
  m.def("algo_table() -> str", &replk_ops::algo_table);
  m.def("exception_probe() -> ()", &replk_ops::exception_probe);
}

TORCH_LIBRARY_IMPL(replk_ops_C, CUDA, m) {
  m.impl("fwd", &replk_ops::fwd);
  m.impl("bwd_input", &replk_ops::bwd_input);
  m.impl("bwd_weight", &replk_ops::bwd_weight);
}
