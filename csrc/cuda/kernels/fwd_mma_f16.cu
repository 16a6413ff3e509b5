#include "fwd_mma.cuh"
#include "instantiate.cuh"

REPLK_INSTANTIATE(fwd_mma, f16, ConvParams)
