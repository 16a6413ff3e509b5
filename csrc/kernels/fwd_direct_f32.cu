// Instantiation: direct forward / input-gradient kernel for float.
#include "fwd_direct.cuh"

namespace replk_ops {
cudaError_t fwd_direct_f32(const ConvParams& p, const DeviceInfo& d, cudaStream_t s, bool unrolled) {
  return launch_fwd_direct<float>(p, d, s, unrolled);
}
}  // namespace replk_ops
