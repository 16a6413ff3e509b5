// The algo table (see algo_table.h). Adding an algo: its kernel header (with launch_<kernel><T>
// and <kernel>_plan), one kernels/<kernel>_<dtype>.cu per dtype, and here one REPLK_DECLARE line
// and one table entry.
#include "algo_table.h"

namespace replk_ops {

#define REPLK_DECLARE(KERNEL, PARAMS)            \
  REPLK_KERNEL_FUNCTIONS(KERNEL, f32, PARAMS);   \
  REPLK_KERNEL_FUNCTIONS(KERNEL, f16, PARAMS);   \
  REPLK_KERNEL_FUNCTIONS(KERNEL, bf16, PARAMS);
REPLK_DECLARE(fwd_direct, ConvParams)
REPLK_DECLARE(fwd_direct_rows, ConvParams)
REPLK_DECLARE(fwd_mma, ConvParams)
REPLK_DECLARE(fwd_mma_rows, ConvParams)
REPLK_DECLARE(bwd_weight, BwdWeightParams)
REPLK_DECLARE(bwd_weight_wide, BwdWeightParams)
REPLK_DECLARE(bwd_weight_mma, BwdWeightParams)
#undef REPLK_DECLARE

#define REPLK_DTYPE(KERNEL, SUFFIX) {&KERNEL##_##SUFFIX, &KERNEL##_plan_##SUFFIX}
#define REPLK_ALL_DTYPES(KERNEL) {REPLK_DTYPE(KERNEL, f32), REPLK_DTYPE(KERNEL, f16), REPLK_DTYPE(KERNEL, bf16)}
#define REPLK_HALF_DTYPES(KERNEL) {{nullptr, nullptr}, REPLK_DTYPE(KERNEL, f16), REPLK_DTYPE(KERNEL, bf16)}

namespace {

// "auto" takes the first entry it may pick that supports the dtype and device, takes the shape
// and whose auto_min_side the output's smaller side exceeds. For fp16/bf16 (measured per kernel
// with benchmarks/cuda_algos.py): the strided-row MMA kernel once rows group by 2 or 4 and a
// warp's four 8-column blocks are mostly inside the map (both sides over 16); the WMMA tiles on
// mid-size maps; the direct kernel on maps of 8 and below, where MMA tiles are mostly padding.
// The MMA kernels: docs/design.md, "Row-Toeplitz products".
const ConvAlgo kConvAlgos[] = {
    {"mma_rows", REPLK_HALF_DTYPES(fwd_mma_rows), 0, 80, true, true, 16,
     "tensor cores (mma.sync): row-Toeplitz products, strided MMA rows, accumulators in registers"},
    {"mma", REPLK_HALF_DTYPES(fwd_mma), kBlockTiles, 80, true, true, 8,
     "tensor cores (WMMA): row-Toeplitz products in block tiles where the map allows, else warp tiles"},
    {"direct", REPLK_ALL_DTYPES(fwd_direct), kUnrolledTaps, 0, true, true, 0,
     "CUDA cores, fp32 accumulation: direct tiles, tap loop unrolled per kernel width"},
    {"direct_generic", REPLK_ALL_DTYPES(fwd_direct), kGenericTaps, 0, true, false, 0,
     "CUDA cores, fp32 accumulation: direct tiles, one tap loop for every kernel width"},
    {"direct_rows", REPLK_ALL_DTYPES(fwd_direct_rows), 0, 0, false, false, 0,
     "CUDA cores, fp32 accumulation: direct tiles, two output rows per thread"},
    {"mma_warp", REPLK_HALF_DTYPES(fwd_mma), kWarpTiles, 80, true, false, 0,
     "tensor cores (WMMA): row-Toeplitz products in warp tiles"},
};

// All deterministic: fp32 partial sums per (split, channel), reduced by the caller in a fixed order.
// docs/design.md: "Weight gradient as GEMM plus diagonal sums" (mma).
const WeightAlgo kWeightAlgos[] = {
    {"direct", REPLK_ALL_DTYPES(bwd_weight), 0, 0, true, true, 0,
     "CUDA cores, fp32 accumulation: 8 taps per thread"},
    {"direct_wide", REPLK_ALL_DTYPES(bwd_weight_wide), 0, 0, false, false, 0,
     "CUDA cores, fp32 accumulation: 16 taps per thread, column loop unrolled"},
    {"mma", REPLK_HALF_DTYPES(bwd_weight_mma), 0, 80, false, false, 0,
     "tensor cores (mma.sync): a GEMM over rows plus diagonal sums"},
};

#undef REPLK_HALF_DTYPES
#undef REPLK_ALL_DTYPES
#undef REPLK_DTYPE

// "" when `name` is "auto" or in the table, else the message listing the valid names.
template <typename Params>
std::string check_name_in(Table<Algo<Params>> table, const std::string& name) {
  if (name == "auto") return "";
  std::string valid = "\"auto\"";
  for (const Algo<Params>& a : table) {
    if (name == a.name) return "";
    valid += std::string(", \"") + a.name + "\"";
  }
  return "algo: expected one of " + valid + ", got \"" + name + "\"";
}

// The JSON is built with std::string appends and std::to_string, never with iostreams, and so is
// every message of the extension: one linked with its own static copy of libstdc++ crashed
// formatting a number through std::ostream (the locale facets it found were not its copy's), and
// the table came back cut off at its first number.
void append_json_string(std::string& out, const char* text) {
  out += '"';
  for (const char* c = text; *c; ++c) {
    if (*c == '"' || *c == '\\') out += '\\';
    out += *c;
  }
  out += '"';
}

const char* json_bool(bool value) { return value ? "true" : "false"; }

template <typename Params>
void append_json(std::string& out, Table<Algo<Params>> table, const char* pass, bool& first) {
  for (const Algo<Params>& a : table) {
    out += first ? "" : ",\n ";
    out += std::string("{\"pass\": \"") + pass + "\", \"algo\": ";
    first = false;
    append_json_string(out, a.name);
    out += ", \"dtypes\": [\"" + dtype_list(a, "\", \"") + "\"], \"min_cc\": " + std::to_string(a.min_cc) +
           ", \"verified_on_gpu\": " + json_bool(a.verified_on_gpu) + ", \"auto\": " + json_bool(a.in_auto) +
           ", \"auto_min_side\": " + std::to_string(a.auto_min_side) +
           ", \"max_kernel\": " + std::to_string(kMaxKernel) + ", \"description\": ";
    append_json_string(out, a.description);
    out += "}";
  }
}

}  // namespace

Table<ConvAlgo> conv_algos() { return {kConvAlgos, sizeof(kConvAlgos) / sizeof(kConvAlgos[0])}; }
Table<WeightAlgo> weight_algos() { return {kWeightAlgos, sizeof(kWeightAlgos) / sizeof(kWeightAlgos[0])}; }

const char* dtype_name(Dtype dtype) {
  static const char* const names[kDtypes] = {"float32", "float16", "bfloat16"};
  return names[dtype];
}

std::string check_algo_name(Pass pass, const std::string& name) {
  return pass == Pass::kBwdWeight ? check_name_in(weight_algos(), name) : check_name_in(conv_algos(), name);
}

std::string algo_table_json() {
  std::string out = "[";
  bool first = true;
  append_json(out, conv_algos(), "fwd", first);
  append_json(out, conv_algos(), "bwd_input", first);
  append_json(out, weight_algos(), "bwd_weight", first);
  out += "]";
  return out;
}

}  // namespace replk_ops
