// Which algo runs a problem: "auto"'s choice from the algo table (algo_table.h) for this problem
// on this device, or the named algo if it takes the problem, with the workspace (partial-sum
// splits) it needs; and the launch of that plan. Torch-free, like the table.
#pragma once

#include <string>

#include "algo_table.h"

namespace replk_ops {

// What runs: the algo and the partial-sum splits its workspace needs (weight gradient), or an
// error message (then algo is null).
template <typename Params>
struct Plan {
  const Algo<Params>* algo;
  int splits;
  std::string error;
};

// Resolves `name` ("auto" or an algo) for this problem on this device.
Plan<ConvParams> plan_conv(const ConvParams& p, Dtype dtype, const DeviceInfo& d, const std::string& name);
Plan<BwdWeightParams> plan_weight(const BwdWeightParams& p, Dtype dtype, const DeviceInfo& d,
                                  const std::string& name);

// Runs a plan without error (p.splits set from it for the weight gradient).
cudaError_t launch(const Plan<ConvParams>& plan, const ConvParams& p, Dtype dtype, const DeviceInfo& d,
                   cudaStream_t stream);
cudaError_t launch(const Plan<BwdWeightParams>& plan, const BwdWeightParams& p, Dtype dtype, const DeviceInfo& d,
                   cudaStream_t stream);

}  // namespace replk_ops
