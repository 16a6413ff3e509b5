// Instantiation: tensor-core (row-Toeplitz WMMA) forward / input-gradient kernel for __half.
#include "fwd_mma.cuh"

namespace replk_ops {
cudaError_t fwd_mma_f16(const ConvParams& p, const DeviceInfo& d, cudaStream_t s, bool block_tiles) {
  return launch_fwd_mma<__half>(p, d, s, block_tiles);
}
}  // namespace replk_ops

namespace replk_ops {
bool fwd_mma_fits(const ConvParams& p, const DeviceInfo& d) { return mma_fits(p, d); }
}  // namespace replk_ops
