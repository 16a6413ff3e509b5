// The warp-collective tensor-core instructions of csrc/cuda/kernels/mma_sm80.cuh on the CPU, lane-exact:
// every lane deposits its operands, the warp meets at a barrier, each lane computes its own
// result registers from all lanes' operands following the PTX ISA's fragment layouts, and the warp
// meets again before the exchange is reused. Include after cuda_on_cpu.h, before the kernels.
#pragma once

#include <cstring>

#include "cuda_on_cpu.h"

namespace replk_emulation {

inline unsigned lane() { return threadIdx.x % 32; }

inline uint16_t half_of(uint32_t word, int upper) { return static_cast<uint16_t>(upper ? word >> 16 : word & 0xffff); }

inline uint16_t load16(const void* address, int element) {
  uint16_t v;
  std::memcpy(&v, static_cast<const unsigned char*>(address) + 2 * element, 2);
  return v;
}

template <typename T>
float value_of(uint16_t bits);
template <>
inline float value_of<__half>(uint16_t bits) {
  __half_raw raw;
  raw.x = bits;
  return __half2float(__half(raw));
}
template <>
inline float value_of<__nv_bfloat16>(uint16_t bits) {
  __nv_bfloat16_raw raw;
  raw.x = bits;
  return __bfloat162float(__nv_bfloat16(raw));
}

}  // namespace replk_emulation

namespace replk_ops {

// mma.sync.aligned.m16n8k16.row.col.f32.{f16,bf16}.{f16,bf16}.f32 with D = C: lane t (group
// g = t / 4, t % 4 = k2) holds A rows g and g + 8 at columns 2 k2, 2 k2 + 1 (+ 8) in a[0..3],
// B rows 2 k2, 2 k2 + 1 (+ 8) of column g in b0, b1, and C/D rows g (+ 8), columns 2 k2 (+ 1).
template <typename T>
inline void mma_16816(float (&acc)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1) {
  using namespace replk_emulation;
  WarpExchange& x = this_warp->exchange;
  const unsigned t = lane();
  for (int e = 0; e < 4; ++e) x.a[t][e] = a[e];
  x.b[t][0] = b0;
  x.b[t][1] = b1;
  this_warp->barrier.arrive_and_wait();
  auto A = [&](int row, int k) {
    return value_of<T>(half_of(x.a[(row % 8) * 4 + (k % 8) / 2][row / 8 + 2 * (k / 8)], k % 2));
  };
  auto B = [&](int k, int col) { return value_of<T>(half_of(x.b[col * 4 + (k % 8) / 2][k / 8], k % 2)); };
  float d[4];
  for (int e = 0; e < 4; ++e) {
    const int row = static_cast<int>(t / 4) + 8 * (e / 2), col = 2 * static_cast<int>(t % 4) + e % 2;
    float sum = acc[e];
    for (int k = 0; k < 16; ++k) sum += A(row, k) * B(k, col);  // products of 16-bit values are exact in fp32
    d[e] = sum;
  }
  this_warp->barrier.arrive_and_wait();  // every lane has read the exchange
  for (int e = 0; e < 4; ++e) acc[e] = d[e];
}

// ldmatrix.sync.aligned.m8n8.x4{.trans}.shared.b16: lane l gives the address of row l % 8 of
// matrix l / 8. Register q of lane t gets matrix q's row t / 4, columns 2 (t % 4) and 2 (t % 4) + 1;
// with .trans (the matrix read column-major), rows 2 (t % 4) and 2 (t % 4) + 1 of column t / 4.
inline void ldmatrix_x4_on_cpu(uint32_t (&a)[4], const void* shared, bool trans) {
  using namespace replk_emulation;
  WarpExchange& x = this_warp->exchange;
  const unsigned t = lane();
  x.address[t] = shared;
  this_warp->barrier.arrive_and_wait();
  for (int q = 0; q < 4; ++q) {
    const unsigned pair = 2 * (t % 4);
    const uint16_t lo = trans ? load16(x.address[8 * q + pair], t / 4) : load16(x.address[8 * q + t / 4], pair);
    const uint16_t hi = trans ? load16(x.address[8 * q + pair + 1], t / 4) : load16(x.address[8 * q + t / 4], pair + 1);
    a[q] = lo | (static_cast<uint32_t>(hi) << 16);
  }
  this_warp->barrier.arrive_and_wait();  // every lane has read the exchange
}

inline void ldmatrix_x4(uint32_t (&a)[4], const void* shared) { ldmatrix_x4_on_cpu(a, shared, false); }
inline void ldmatrix_x4_trans(uint32_t (&a)[4], const void* shared) { ldmatrix_x4_on_cpu(a, shared, true); }

}  // namespace replk_ops

// nvcuda::wmma for the 16 x 16 x 16 shapes the WMMA kernels use (fwd_mma.cuh). Fragments are
// opaque in CUDA, so any layout is faithful: here every lane holds the whole tile. Loads read the
// tile from memory the kernel has made visible; a store writes each element from one lane only,
// so a missing __syncwarp between a store and reads by other lanes shows as a race.
namespace nvcuda {
namespace wmma {

struct matrix_a {};
struct matrix_b {};
struct accumulator {};
struct row_major {};
enum layout_t { mem_row_major, mem_col_major };

template <typename Use, int M, int N, int K, typename T, typename Layout = void>
struct fragment {
  static_assert(M == 16 && N == 16 && K == 16, "the emulation covers m16n16k16");
  float v[16][16];
};

template <typename Use, typename T, typename Layout>
inline void fill_fragment(fragment<Use, 16, 16, 16, T, Layout>& f, float value) {
  for (auto& row : f.v)
    for (float& e : row) e = value;
}

// matrix_a and matrix_b, row-major in memory with leading dimension ld (elements).
template <typename Use, typename T>
inline void load_matrix_sync(fragment<Use, 16, 16, 16, T, row_major>& f, const T* p, unsigned ld) {
  for (int r = 0; r < 16; ++r)
    for (int c = 0; c < 16; ++c) f.v[r][c] = replk_emulation::value_of<T>(replk_emulation::load16(p + r * ld + c, 0));
}

template <typename T>
inline void mma_sync(fragment<accumulator, 16, 16, 16, float>& d, const fragment<matrix_a, 16, 16, 16, T, row_major>& a,
                     const fragment<matrix_b, 16, 16, 16, T, row_major>& b,
                     const fragment<accumulator, 16, 16, 16, float>& c) {
  float out[16][16];
  for (int r = 0; r < 16; ++r)
    for (int n = 0; n < 16; ++n) {
      float sum = c.v[r][n];
      for (int k = 0; k < 16; ++k) sum += a.v[r][k] * b.v[k][n];
      out[r][n] = sum;
    }
  for (int r = 0; r < 16; ++r)
    for (int n = 0; n < 16; ++n) d.v[r][n] = out[r][n];
}

inline void store_matrix_sync(float* p, const fragment<accumulator, 16, 16, 16, float>& f, unsigned ld,
                              layout_t layout) {
  for (int e = static_cast<int>(replk_emulation::lane()); e < 256; e += 32) {
    const int r = e / 16, c = e % 16;
    p[layout == mem_row_major ? r * ld + c : c * ld + r] = f.v[r][c];
  }
}

}  // namespace wmma
}  // namespace nvcuda
