// Runs the package's CUDA kernels on the CPU (the CUDA-core ones, and with warp_mma_on_cpu.h those
// built on ldmatrix, mma.sync and WMMA), so that their real source, tiling and launch code are
// tested where no GPU is present.
//
// Every CUDA thread of a block is an OS thread; __syncthreads is a std::barrier over the block's
// threads and __syncwarp one over the warp's, so the kernels' shared-memory phases keep their real
// ordering. Blocks run one after another. Dynamic shared memory starts as NaN: a value read before
// any thread staged it poisons the result instead of passing by luck. Provided: 1-D grids,
// threadIdx.x, blockIdx.x, blockDim.x, __syncthreads, __syncwarp, and (warp_mma_on_cpu.h) the
// warp-collective ldmatrix, mma.sync and nvcuda::wmma of the tensor-core kernels.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <barrier>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <limits>
#include <memory>
#include <thread>
#include <vector>

#define REPLK_OPS_HOST_EMULATION 1

// The CUDA keywords the kernels use, as plain C++ (the CUDA headers define them as attributes a
// host compiler rejects or ignores).
#undef __global__
#undef __device__
#undef __forceinline__
#undef __launch_bounds__
#define __global__
#define __device__
#define __forceinline__ inline
#define __launch_bounds__(...)

namespace replk_emulation {

struct Index3 {
  unsigned x, y, z;
};

inline thread_local Index3 thread_index{0, 0, 0};
inline thread_local Index3 block_index{0, 0, 0};
inline thread_local Index3 block_dim{1, 1, 1};
inline thread_local std::barrier<>* block_barrier = nullptr;
inline thread_local void* dynamic_shared = nullptr;

// What a warp's lanes exchange in one warp-collective operation (warp_mma_on_cpu.h).
struct WarpExchange {
  const void* address[32];
  uint32_t a[32][4];
  uint32_t b[32][2];
};

struct Warp {
  explicit Warp(int lanes) : barrier(lanes) {}
  std::barrier<> barrier;
  WarpExchange exchange;
};

inline thread_local Warp* this_warp = nullptr;

// What the emulated GPU allows (an H100's opt-in limit; the kernels' launchers size against the
// DeviceInfo they are given, and a launch above this fails like it would on the GPU).
inline constexpr size_t kMaxDynamicShared = 227 * 1024;
inline constexpr int kMaxThreadsPerBlock = 1024;

}  // namespace replk_emulation

#define threadIdx (::replk_emulation::thread_index)
#define blockIdx (::replk_emulation::block_index)
#define blockDim (::replk_emulation::block_dim)
#define REPLK_DYNAMIC_SHARED(type, name, align) type* name = static_cast<type*>(::replk_emulation::dynamic_shared)

inline void __syncthreads() { replk_emulation::block_barrier->arrive_and_wait(); }
inline void __syncwarp(unsigned = 0xffffffffu) { replk_emulation::this_warp->barrier.arrive_and_wait(); }

// CUDA's min and max overloads are global functions.
using std::max;
using std::min;

namespace replk_ops {

// The emulated counterpart of common.cuh's launcher: same checks, then every block on the CPU.
template <typename Kernel, typename... Args>
inline cudaError_t launch_with_smem(Kernel kernel, int64_t blocks, int threads, size_t smem, cudaStream_t,
                                    const Args&... args) {
  if (blocks > 0x7fffffffLL || threads < 1 || threads > replk_emulation::kMaxThreadsPerBlock) {
    return cudaErrorInvalidConfiguration;
  }
  if (smem > replk_emulation::kMaxDynamicShared) return cudaErrorInvalidValue;
  const size_t words = (smem + 3) / 4 + 4;
  for (int64_t block = 0; block < blocks; ++block) {
    std::vector<float> shared(words, std::numeric_limits<float>::quiet_NaN());  // 16-byte aligned (malloc)
    std::barrier<> barrier(threads);
    std::vector<std::unique_ptr<replk_emulation::Warp>> warps;
    for (int first = 0; first < threads; first += 32) {
      warps.push_back(std::make_unique<replk_emulation::Warp>(std::min(32, threads - first)));
    }
    std::vector<std::thread> team;
    team.reserve(threads);
    for (int t = 0; t < threads; ++t) {
      team.emplace_back([&, t] {
        replk_emulation::thread_index = {static_cast<unsigned>(t), 0, 0};
        replk_emulation::block_index = {static_cast<unsigned>(block), 0, 0};
        replk_emulation::block_dim = {static_cast<unsigned>(threads), 1, 1};
        replk_emulation::block_barrier = &barrier;
        replk_emulation::this_warp = warps[t / 32].get();
        replk_emulation::dynamic_shared = shared.data();
        kernel(args...);
        // an exited thread no longer holds the others at a barrier
        barrier.arrive_and_drop();
        replk_emulation::this_warp->barrier.arrive_and_drop();
      });
    }
    for (std::thread& thread : team) thread.join();
  }
  return cudaSuccess;
}

}  // namespace replk_ops
