// Instantiation: weight-gradient kernel with 16 taps per thread, for __half.
#include "bwd_weight_wide.cuh"

namespace replk_ops {
cudaError_t bwd_weight_wide_f16(const BwdWeightParams& p, const DeviceInfo& d, cudaStream_t s) {
  return launch_bwd_weight_wide<__half>(p, d, s);
}
}  // namespace replk_ops
