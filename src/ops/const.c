/* const.c: the const op. Its value is op->val (the proto's `val`
 * attribute); its one output has the value's type. */
#include "op.h"

static const milk_param const_params[] = {{0}};

static milk_status const_infer(milk_infer *ic)
{
    const milk_value *v = ic->op->val;
    if (!v || v->kind != MILK_VALUE_TENSOR)
        return milk_op_fail(ic->ctx, ic->op, NULL, "const without a tensor value");
    MILK_TRY(milk_infer_outputs(ic, 1));
    ic->out[0] = v->type;
    return MILK_OK;
}

/* const: no inputs; its value is the `val` attribute.
 * Output: the value's type. */
const milk_op_info milk_op_const_ = {
    .name = "const",
    .params = const_params,
    .min_opset = MILK_TARGET_IOS15,
    .infer = const_infer,
};
