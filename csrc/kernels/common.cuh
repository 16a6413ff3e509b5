// Small device helpers shared by the kernels: dtype conversion and strided 64-bit addressing.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include "../dwconv.h"

namespace replk_ops {

__device__ __forceinline__ float to_float(float v) { return v; }
__device__ __forceinline__ float to_float(__half v) { return __half2float(v); }
__device__ __forceinline__ float to_float(__nv_bfloat16 v) { return __bfloat162float(v); }

template <typename T> __device__ __forceinline__ T from_float(float v);
template <> __device__ __forceinline__ float from_float<float>(float v) { return v; }
template <> __device__ __forceinline__ __half from_float<__half>(float v) { return __float2half_rn(v); }
template <> __device__ __forceinline__ __nv_bfloat16 from_float<__nv_bfloat16>(float v) {
  return __float2bfloat16_rn(v);
}

// Offset of element (n, c, h, w) for element strides s; 64-bit so tensors past 2^31 elements work.
__device__ __forceinline__ int64_t offset4(const int64_t* s, int64_t n, int64_t c, int64_t h, int64_t w) {
  return n * s[0] + c * s[1] + h * s[2] + w * s[3];
}

// Weight w[c, 0, i, j], or of the kernel rotated by 180 degrees when `flip` (input gradient).
template <typename T>
__device__ __forceinline__ float weight_at(const T* w, int64_t c, int i, int j, int kh, int kw, bool flip) {
  if (flip) {
    i = kh - 1 - i;
    j = kw - 1 - j;
  }
  return to_float(w[(c * kh + i) * kw + j]);
}

// Dynamic shared memory above the default 48 KiB needs an explicit opt-in per kernel.
template <typename Kernel>
inline cudaError_t allow_shared_memory(Kernel kernel, size_t bytes) {
  if (bytes <= 48 * 1024) return cudaSuccess;
  return cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(bytes));
}

}  // namespace replk_ops
