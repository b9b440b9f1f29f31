/* binary.c: element-wise binary ops with NumPy broadcasting: add, sub, mul,
 * real_div, pow, maximum, minimum. x and y share one dtype (fp16, fp32 or
 * int32); the output has that dtype and the broadcast shape. */
#include "op.h"

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
        return milk_op_fail(ic->ctx, ic->op, "y", "dtype %s differs from x's %s",
                            milk_dtype_name(y->dtype), milk_dtype_name(x->dtype));
    MILK_TRY(milk_infer_outputs(ic, 1));
    ic->out[0].dtype = x->dtype;
    return milk_op_broadcast(ic->ctx, ic->op, x, y, &ic->out[0]);
}

#define BINARY(id) \
    const milk_op_info milk_op_##id = {#id, binary_params, MILK_TARGET_IOS15, \
                                       binary_infer, NULL};
BINARY(add)
BINARY(sub)
BINARY(mul)
BINARY(real_div)
BINARY(pow)
BINARY(maximum)
BINARY(minimum)
