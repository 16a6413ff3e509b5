// Instantiation: tensor-core weight-gradient kernel for __half.
#include "bwd_weight_mma.cuh"

namespace replk_ops {
cudaError_t bwd_weight_mma_f16(const BwdWeightParams& p, const DeviceInfo& d, cudaStream_t s) {
  return launch_bwd_weight_mma<__half>(p, d, s);
}
}  // namespace replk_ops

namespace replk_ops {
BwdWeightSplits bwd_weight_mma_splits(const BwdWeightParams& p, const DeviceInfo& d) {
  return {bwd_weight_mma_fits(p, d), bwd_weight_mma_tiling(p, d).splits};
}
}  // namespace replk_ops
