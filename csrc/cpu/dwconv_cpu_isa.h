// The kernels of dwconv_cpu_kernels.h built for two instruction sets, and the run-time choice
// between them, for each source file of replk_ops._cpu: a baseline build that runs on any CPU and,
// where GCC or Clang targets x86, an AVX2+FMA build taken when the CPU has both.
#pragma once

#include <cstdint>

#define REPLK_ISA baseline
#define REPLK_ISA_ATTR
#include "dwconv_cpu_kernels.h"
#undef REPLK_ISA
#undef REPLK_ISA_ATTR

#if (defined(__x86_64__) || defined(__i386__)) && defined(__GNUC__)
#define REPLK_HAVE_AVX2_BUILD 1
#define REPLK_ISA avx2
#define REPLK_ISA_ATTR __attribute__((target("avx2,fma")))
#include "dwconv_cpu_kernels.h"
#undef REPLK_ISA
#undef REPLK_ISA_ATTR
#endif

namespace {

inline bool use_avx2() {
#ifdef REPLK_HAVE_AVX2_BUILD
  static const bool yes = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  return yes;
#else
  return false;
#endif
}

template <typename T>
void forward_wide(const T* xpad, const T* w, const int64_t* shift, int64_t taps, T bias, T* out, int64_t n) {
#ifdef REPLK_HAVE_AVX2_BUILD
  if (use_avx2()) return avx2::forward_wide<T>(xpad, w, shift, taps, bias, out, n);
#endif
  baseline::forward_wide<T>(xpad, w, shift, taps, bias, out, n);
}

template <typename T>
T dot(const T* a, const T* b, int64_t n) {
#ifdef REPLK_HAVE_AVX2_BUILD
  if (use_avx2()) return avx2::dot<T>(a, b, n);
#endif
  return baseline::dot<T>(a, b, n);
}

}  // namespace
