/* fast.c: which op kinds have a planned fast kernel (see fast.h). */
#include "fast.h"

milk_fast_prepare milk_fast_for(int kind)
{
    switch (kind) {
    case MILK_OP_conv: return milk_fast_conv;
    case MILK_OP_linear: return milk_fast_linear;
    case MILK_OP_relu: case MILK_OP_sigmoid: case MILK_OP_tanh:
    case MILK_OP_silu: case MILK_OP_erf: case MILK_OP_exp:
    case MILK_OP_relu6: case MILK_OP_clip: case MILK_OP_sigmoid_hard:
    case MILK_OP_leaky_relu: case MILK_OP_linear_activation:
    case MILK_OP_gelu:
        return milk_fast_unary;
    case MILK_OP_add: case MILK_OP_sub: case MILK_OP_mul:
    case MILK_OP_real_div: case MILK_OP_maximum: case MILK_OP_minimum:
        return milk_fast_binary;
    case MILK_OP_softmax: return milk_fast_softmax;
    case MILK_OP_layer_norm: return milk_fast_layer_norm;
    case MILK_OP_reduce_mean: case MILK_OP_reduce_sum: case MILK_OP_reduce_max:
        return milk_fast_reduce;
    case MILK_OP_max_pool: case MILK_OP_avg_pool: return milk_fast_pool;
    case MILK_OP_transpose: return milk_fast_transpose;
    case MILK_OP_concat: return milk_fast_concat;
    default: return NULL;
    }
}
