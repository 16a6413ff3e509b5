// Instantiation: direct forward / input-gradient kernel for __half.
#include "fwd_direct.cuh"

namespace replk_ops {
cudaError_t fwd_direct_f16(const ConvParams& p, const DeviceInfo& d, cudaStream_t s, bool unrolled) {
  return launch_fwd_direct<__half>(p, d, s, unrolled);
}
}  // namespace replk_ops
