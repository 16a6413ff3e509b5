#include "fwd_mma_rows.cuh"
#include "instantiate.cuh"

REPLK_INSTANTIATE(fwd_mma_rows, f16, ConvParams)
