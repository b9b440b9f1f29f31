/* unary.c: element-wise unary ops on fp16/fp32 tensors (abs also on
 * int32); the output has the input's type. rsqrt and log take an optional
 * constant scalar epsilon, of x's dtype before iOS17 and of either float
 * dtype from iOS17 on (coremltools' ops/defs/iOS15/elementwise_unary.py,
 * activation.py and iOS17/elementwise_unary.py). */
#include "infer.h"

static const milk_param unary_params[] = {
    {"x", MILK_P_REQ, 0},
    {0},
};

static const milk_param unary_eps_params[] = {
    {"x", MILK_P_REQ, 0},
    {"epsilon", MILK_P_CONST, 0},
    {0},
};

static milk_status same_as_x(milk_infer *ic, uint64_t dtypes)
{
    MILK_TRY(milk_op_check_dtype(ic->ctx, ic->op, "x", dtypes));
    MILK_TRY(milk_infer_outputs(ic, 1));
    ic->out[0] = *milk_op_in_type(ic->op, "x");
    return MILK_OK;
}

static milk_status unary_infer(milk_infer *ic)
{
    return same_as_x(ic, MILK_DT_FLOAT);
}

/* abs also takes int32 */
static milk_status unary_num_infer(milk_infer *ic)
{
    return same_as_x(ic, MILK_DT_NUM);
}

static milk_status unary_eps_infer(milk_infer *ic)
{
    static const char *const eps[] = {"epsilon", NULL};
    MILK_TRY(milk_op_check_dtype(ic->ctx, ic->op, "x", MILK_DT_FLOAT));
    MILK_TRY(milk_infer_params_dtype(ic, "x", eps, MILK_DT_FLOAT));
    const milk_tensor_type *e = milk_op_in_type(ic->op, "epsilon");
    if (e && milk_tensor_type_count(e) != 1)
        return milk_op_fail(ic->ctx, ic->op, "epsilon", "expected a scalar");
    return same_as_x(ic, MILK_DT_FLOAT);
}

#define UNARY(id, param_list, infer_fn)                                     \
    const milk_op_info milk_op_##id = {                                     \
        .name = #id,                                                        \
        .params = param_list,                                               \
        .min_opset = MILK_TARGET_IOS15,                                     \
        .infer = infer_fn,                                                  \
    };

/* relu, sigmoid, tanh, silu (x * sigmoid(x)), sqrt, exp, erf:
 *   x  R  fp16/fp32
 * Output: x's type. */
UNARY(relu, unary_params, unary_infer)
UNARY(sigmoid, unary_params, unary_infer)
UNARY(tanh, unary_params, unary_infer)
UNARY(silu, unary_params, unary_infer)
UNARY(sqrt, unary_params, unary_infer)
UNARY(exp, unary_params, unary_infer)
UNARY(erf, unary_params, unary_infer)

/* abs:
 *   x  R  fp16/fp32/int32
 * Output: x's type. */
UNARY(abs, unary_params, unary_num_infer)

/* rsqrt: 1 / sqrt(x + epsilon); log: log(x + epsilon).
 *   x        R    fp16/fp32
 *   epsilon  O C  scalar; default 1e-12 (rsqrt), 1e-45 (log); x's dtype
 *                 before iOS17, fp16 or fp32 from iOS17
 * Output: x's type. */
UNARY(rsqrt, unary_eps_params, unary_eps_infer)
UNARY(log, unary_eps_params, unary_eps_infer)
