// Instantiation: weight- and bias-gradient kernel for __nv_bfloat16.
#include "bwd_weight.cuh"

namespace replk_ops {
cudaError_t bwd_weight_bf16(const BwdWeightParams& p, const DeviceInfo& d, cudaStream_t s) {
  return launch_bwd_weight<__nv_bfloat16>(p, d, s);
}
}  // namespace replk_ops
