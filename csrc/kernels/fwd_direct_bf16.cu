// Instantiation: direct forward / input-gradient kernel for __nv_bfloat16.
#include "fwd_direct.cuh"

namespace replk_ops {
cudaError_t fwd_direct_bf16(const ConvParams& p, const DeviceInfo& d, cudaStream_t s, bool unrolled) {
  return launch_fwd_direct<__nv_bfloat16>(p, d, s, unrolled);
}
}  // namespace replk_ops
