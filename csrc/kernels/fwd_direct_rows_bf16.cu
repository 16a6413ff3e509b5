// Instantiation: direct forward / input-gradient kernel with two output rows per thread, for __nv_bfloat16.
#include "fwd_direct_rows.cuh"

namespace replk_ops {
cudaError_t fwd_direct_rows_bf16(const ConvParams& p, const DeviceInfo& d, cudaStream_t s) {
  return launch_fwd_direct_rows<__nv_bfloat16>(p, d, s);
}
}  // namespace replk_ops
