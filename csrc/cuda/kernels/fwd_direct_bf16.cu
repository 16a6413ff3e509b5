#include "fwd_direct.cuh"
#include "instantiate.cuh"

REPLK_INSTANTIATE(fwd_direct, bf16, ConvParams)
