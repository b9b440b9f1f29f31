/* unary.c: element-wise unary ops on fp16/fp32 tensors; the output has the
 * input's type. rsqrt and log take an optional constant epsilon. */
#include "op.h"

static const milk_param unary_params[] = {
    {"x", MILK_P_REQ, 0},
    {0},
};

static const milk_param unary_eps_params[] = {
    {"x", MILK_P_REQ, 0},
    {"epsilon", MILK_P_CONST, 0},
    {0},
};

static milk_status unary_infer(milk_infer *ic)
{
    MILK_TRY(milk_op_check_dtype(ic->ctx, ic->op, "x", MILK_DT_FLOAT));
    MILK_TRY(milk_infer_outputs(ic, 1));
    ic->out[0] = *milk_op_in_type(ic->op, "x");
    return MILK_OK;
}

/* abs also takes int32 */
static milk_status unary_num_infer(milk_infer *ic)
{
    MILK_TRY(milk_op_check_dtype(ic->ctx, ic->op, "x", MILK_DT_NUM));
    MILK_TRY(milk_infer_outputs(ic, 1));
    ic->out[0] = *milk_op_in_type(ic->op, "x");
    return MILK_OK;
}

#define UNARY(id, params, infer) \
    const milk_op_info milk_op_##id = {#id, params, MILK_TARGET_IOS15, infer, NULL};
UNARY(relu, unary_params, unary_infer)
UNARY(sigmoid, unary_params, unary_infer)
UNARY(tanh, unary_params, unary_infer)
UNARY(silu, unary_params, unary_infer)
UNARY(sqrt, unary_params, unary_infer)
UNARY(exp, unary_params, unary_infer)
UNARY(erf, unary_params, unary_infer)
UNARY(abs, unary_params, unary_num_infer)
UNARY(rsqrt, unary_eps_params, unary_infer)
UNARY(log, unary_eps_params, unary_infer)
