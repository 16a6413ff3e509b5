// Instantiation: weight- and bias-gradient kernel for float.
#include "bwd_weight.cuh"

namespace replk_ops {
cudaError_t bwd_weight_f32(const BwdWeightParams& p, const DeviceInfo& d, cudaStream_t s) {
  return launch_bwd_weight<float>(p, d, s);
}
}  // namespace replk_ops
