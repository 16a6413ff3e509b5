// One kernel instantiated for one dtype: each kernels/<kernel>_<dtype>.cu is this macro on one
// line, so nvcc compiles the instantiations in parallel and the algo table (algo_table.cpp) links
// to the functions it defines (REPLK_KERNEL_FUNCTIONS in dwconv.h). KERNEL's header provides
// launch_<KERNEL><T>(params, device, stream, variant) and <KERNEL>_plan(params, device).
#pragma once

#include "common.cuh"

#define REPLK_TYPE_f32 float
#define REPLK_TYPE_f16 __half
#define REPLK_TYPE_bf16 __nv_bfloat16

#define REPLK_INSTANTIATE(KERNEL, SUFFIX, PARAMS)                                                 \
  namespace replk_ops {                                                                            \
  REPLK_KERNEL_FUNCTIONS(KERNEL, SUFFIX, PARAMS);                                                  \
  cudaError_t KERNEL##_##SUFFIX(const PARAMS& p, const DeviceInfo& d, cudaStream_t s, int variant) { \
    return launch_##KERNEL<REPLK_TYPE_##SUFFIX>(p, d, s, variant);                                 \
  }                                                                                                \
  int KERNEL##_plan_##SUFFIX(const PARAMS& p, const DeviceInfo& d) { return KERNEL##_plan(p, d); } \
  }
