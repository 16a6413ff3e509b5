// Instantiation: weight- and bias-gradient kernel for __half.
#include "bwd_weight.cuh"

namespace replk_ops {
cudaError_t bwd_weight_f16(const BwdWeightParams& p, const DeviceInfo& d, cudaStream_t s) {
  return launch_bwd_weight<__half>(p, d, s);
}
}  // namespace replk_ops
