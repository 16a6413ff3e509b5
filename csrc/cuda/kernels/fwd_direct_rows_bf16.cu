#include "fwd_direct_rows.cuh"
#include "instantiate.cuh"

REPLK_INSTANTIATE(fwd_direct_rows, bf16, ConvParams)
