// Instantiation: weight-gradient kernel with 16 taps per thread, for __nv_bfloat16.
#include "bwd_weight_wide.cuh"

namespace replk_ops {
cudaError_t bwd_weight_wide_bf16(const BwdWeightParams& p, const DeviceInfo& d, cudaStream_t s) {
  return launch_bwd_weight_wide<__nv_bfloat16>(p, d, s);
}
}  // namespace replk_ops
