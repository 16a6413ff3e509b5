#include "fwd_direct.cuh"
#include "instantiate.cuh"

REPLK_INSTANTIATE(fwd_direct, f32, ConvParams)
