// Small device helpers shared by the kernels: dtype conversion and strided 64-bit addressing.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include "../dwconv.h"

// The block's dynamic shared memory as an array of `type`. The tests' host emulation, which runs
// the CUDA-core kernels on the CPU, defines it (and launch_with_smem) itself.
#ifndef REPLK_DYNAMIC_SHARED
#define REPLK_DYNAMIC_SHARED(type, name, align) extern __shared__ __align__(align) type name[]
#endif

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

// Copies a rows x width window of one plane, whose top-left element is (h0, w0) (it may lie in
// the padding: zeros there), into shared memory as float with row length `stride`. Threads
// tid = 0..nthreads-1 take elements tid, tid + nthreads, ...; each keeps four loads in flight and
// advances its (row, column) without a division per element. SKEW_PERIOD > 0 shifts every row r
// with (r / SKEW_PERIOD) odd four floats to the right (see skewed_row_offset).
template <typename T, int SKEW_PERIOD = 0>
__device__ __forceinline__ void stage_window(float* dst, int stride, const T* plane, int64_t sh, int64_t sw,
                                             int64_t h0, int64_t w0, int64_t H, int64_t W, int rows, int width,
                                             int tid, int nthreads) {
  const int total = rows * width;
  const int step_r = nthreads / width, step_q = nthreads % width;
  int r = tid / width, q = tid % width;
  for (int base = tid; base < total; base += 4 * nthreads) {
    float v[4];
    int at[4];
#pragma unroll
    for (int u = 0; u < 4; ++u) {
      const int64_t hi = h0 + r, wi = w0 + q;
      const bool inside = base + u * nthreads < total && hi >= 0 && hi < H && wi >= 0 && wi < W;
      v[u] = inside ? to_float(plane[hi * sh + wi * sw]) : 0.f;
      at[u] = r * stride + q + (SKEW_PERIOD > 0 ? 4 * ((r / SKEW_PERIOD) & 1) : 0);
      r += step_r;
      q += step_q;
      if (q >= width) {
        q -= width;
        ++r;
      }
    }
#pragma unroll
    for (int u = 0; u < 4; ++u) {
      if (base + u * nthreads < total) dst[at[u]] = v[u];
    }
  }
}

// Where row r of a window staged with stage_window<T, SKEW_PERIOD> starts.
template <int SKEW_PERIOD>
__device__ __forceinline__ int skewed_row_offset(int r, int stride) {
  return r * stride + 4 * ((r / SKEW_PERIOD) & 1);
}

#ifndef REPLK_OPS_HOST_EMULATION
// Dynamic shared memory above the default 48 KiB needs an explicit opt-in per kernel.
template <typename Kernel>
inline cudaError_t allow_shared_memory(Kernel kernel, size_t bytes) {
  if (bytes <= 48 * 1024) return cudaSuccess;
  return cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(bytes));
}

// Launches `kernel` on `blocks` blocks with `smem` bytes of dynamic shared memory (opting in
// above 48 KiB); returns the launch error, if any.
template <typename Kernel, typename... Args>
inline cudaError_t launch_with_smem(Kernel kernel, int64_t blocks, int threads, size_t smem, cudaStream_t stream,
                                    const Args&... args) {
  if (blocks > 0x7fffffffLL) return cudaErrorInvalidConfiguration;
  cudaError_t err = allow_shared_memory(kernel, smem);
  if (err != cudaSuccess) return err;
  kernel<<<static_cast<unsigned>(blocks), threads, smem, stream>>>(args...);
  return cudaGetLastError();
}
#endif  // REPLK_OPS_HOST_EMULATION

}  // namespace replk_ops
