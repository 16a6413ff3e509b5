// Instantiation: tensor-core forward / input-gradient kernel with strided MMA rows, for __half.
#include "fwd_mma_rows.cuh"

namespace replk_ops {
cudaError_t fwd_mma_rows_f16(const ConvParams& p, const DeviceInfo& d, cudaStream_t s) {
  return launch_fwd_mma_rows<__half>(p, d, s);
}

bool fwd_mma_rows_fits(const ConvParams& p, const DeviceInfo& d) { return mma_rows_fits(p, d); }
}  // namespace replk_ops
