// Instantiation: tensor-core (row-Toeplitz WMMA) forward / input-gradient kernel for __nv_bfloat16.
#include "fwd_mma.cuh"

namespace replk_ops {
cudaError_t fwd_mma_bf16(const ConvParams& p, const DeviceInfo& d, cudaStream_t s, bool block_tiles) {
  return launch_fwd_mma<__nv_bfloat16>(p, d, s, block_tiles);
}
}  // namespace replk_ops
