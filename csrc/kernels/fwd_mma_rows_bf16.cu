// Instantiation: tensor-core forward / input-gradient kernel with strided MMA rows, for __nv_bfloat16.
#include "fwd_mma_rows.cuh"

namespace replk_ops {
cudaError_t fwd_mma_rows_bf16(const ConvParams& p, const DeviceInfo& d, cudaStream_t s) {
  return launch_fwd_mma_rows<__nv_bfloat16>(p, d, s);
}
}  // namespace replk_ops
