// Instantiation: tensor-core weight-gradient kernel for __nv_bfloat16.
#include "bwd_weight_mma.cuh"

namespace replk_ops {
cudaError_t bwd_weight_mma_bf16(const BwdWeightParams& p, const DeviceInfo& d, cudaStream_t s) {
  return launch_bwd_weight_mma<__nv_bfloat16>(p, d, s);
}
}  // namespace replk_ops
