/* binary.c: element-wise binary ops with NumPy broadcasting: add, sub, mul,
 * real_div, pow, maximum, minimum (coremltools' ops/defs/iOS15/
 * elementwise_binary.py; no later opset changes them). */
#include "infer.h"

static const milk_param binary_params[] = {
    {"x", MILK_P_REQ, 0},
    {"y", MILK_P_REQ, 0},
    {0},
};

static milk_status binary_infer(milk_infer *ic)
{
    const milk_tensor_type *x = milk_op_in_type(ic->op, "x");
    const milk_tensor_type *y = milk_op_in_type(ic->op, "y");
    MILK_TRY(milk_op_check_dtype(ic->ctx, ic->op, "x", MILK_DT_NUM));
    if (x->dtype != y->dtype)
        return milk_op_fail(ic->ctx, ic->op, "y",
                            "dtype %s differs from x's %s",
                            milk_infer_dtype_name(y->dtype),
                            milk_infer_dtype_name(x->dtype));
    MILK_TRY(milk_infer_outputs(ic, 1));
    ic->out[0].dtype = x->dtype;
    return milk_op_broadcast(ic->ctx, ic->op, x, y, &ic->out[0]);
}

/* add, sub, mul, real_div (true division), pow (x^y), maximum, minimum:
 *   x  R  fp16/fp32/int32
 *   y  R  same dtype as x; either may be a constant
 * Output: x's dtype, the NumPy broadcast of the two shapes (an unknown dim
 * against 1 stays unknown, against a known size takes that size). */
#define BINARY(id)                                                          \
    const milk_op_info milk_op_##id = {                                     \
        .name = #id,                                                        \
        .params = binary_params,                                            \
        .min_opset = MILK_TARGET_IOS15,                                     \
        .infer = binary_infer,                                              \
    };
BINARY(add)
BINARY(sub)
BINARY(mul)
BINARY(real_div)
BINARY(pow)
BINARY(maximum)
BINARY(minimum)
