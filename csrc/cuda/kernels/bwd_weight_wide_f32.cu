#include "bwd_weight_wide.cuh"
#include "instantiate.cuh"

REPLK_INSTANTIATE(bwd_weight_wide, f32, BwdWeightParams)
