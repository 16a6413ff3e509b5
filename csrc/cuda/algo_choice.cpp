// "auto"'s choice and the named algo's checks (see algo_choice.h).
#include "algo_choice.h"

#include <algorithm>

namespace replk_ops {
namespace {

// "major.minor". Messages are built with std::string appends, no iostreams (see algo_table.cpp).
std::string capability(int major, int minor) { return std::to_string(major) + "." + std::to_string(minor); }

template <typename Params>
std::string cannot_run(const Algo<Params>& a, const Params& p, Dtype dtype, const DeviceInfo& d) {
  std::string out = std::string("algo: \"") + a.name + "\" needs " + dtype_list(a, " or ");
  if (a.min_cc > 0) out += " on compute capability " + capability(a.min_cc / 10, a.min_cc % 10) + "+";
  out += std::string(" and tiles that fit in shared memory; got ") + dtype_name(dtype) + ", kernel (" +
         std::to_string(p.kh) + ", " + std::to_string(p.kw) + "), compute capability " +
         capability(d.cc_major, d.cc_minor);
  return out;
}

template <typename Params>
Plan<Params> plan_in(Table<Algo<Params>> table, Pass pass, const Params& p, Dtype dtype, const DeviceInfo& d,
                     const std::string& name) {
  std::string unknown = check_algo_name(pass, name);
  if (!unknown.empty()) return {nullptr, 0, unknown};
  const int cc = d.cc_major * 10 + d.cc_minor;
  const bool automatic = name == "auto";
  const int64_t side = std::min(p.Ho, p.Wo);
  for (const Algo<Params>& a : table) {
    if (automatic ? !a.in_auto || side <= a.auto_min_side : name != a.name) continue;
    const int splits = supports(a, dtype) && cc >= a.min_cc ? a.by_dtype[dtype].plan(p, d) : -1;
    if (splits >= 0) return {&a, splits, ""};
    if (!automatic) return {nullptr, 0, cannot_run(a, p, dtype, d)};
  }
  return {nullptr, 0, "no algo takes this problem"};  // not reached: "direct" takes every problem
}

}  // namespace

Plan<ConvParams> plan_conv(const ConvParams& p, Dtype dtype, const DeviceInfo& d, const std::string& name) {
  return plan_in(conv_algos(), Pass::kFwd, p, dtype, d, name);
}

Plan<BwdWeightParams> plan_weight(const BwdWeightParams& p, Dtype dtype, const DeviceInfo& d,
                                  const std::string& name) {
  return plan_in(weight_algos(), Pass::kBwdWeight, p, dtype, d, name);
}

cudaError_t launch(const Plan<ConvParams>& plan, const ConvParams& p, Dtype dtype, const DeviceInfo& d,
                   cudaStream_t stream) {
  return plan.algo->by_dtype[dtype].launch(p, d, stream, plan.algo->variant);
}

cudaError_t launch(const Plan<BwdWeightParams>& plan, const BwdWeightParams& p, Dtype dtype, const DeviceInfo& d,
                   cudaStream_t stream) {
  return plan.algo->by_dtype[dtype].launch(p, d, stream, plan.algo->variant);
}

}  // namespace replk_ops
