#include "bwd_weight.cuh"
#include "instantiate.cuh"

REPLK_INSTANTIATE(bwd_weight, bf16, BwdWeightParams)
