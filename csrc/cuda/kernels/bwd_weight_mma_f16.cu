#include "bwd_weight_mma.cuh"
#include "instantiate.cuh"

REPLK_INSTANTIATE(bwd_weight_mma, f16, BwdWeightParams)
