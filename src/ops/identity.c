/* identity.c: the identity op, after coremltools' identity (ops/defs,
 * tensor_operation in recent releases, control_flow in older ones): x
 * unchanged, of the same type. coremltools uses it for renaming; milk's
 * converter uses it where a model output is not computed by an op of its
 * own (a constant, a graph input passed through, or the tensor of another
 * output), because every output of a Core ML program is the output of an
 * op. coremltools takes any tensor or scalar; milk takes every dtype the
 * interpreter stores (the layout set: fp16, fp32, int32, bool; iOS17 adds
 * int8, uint8, int16, uint16), any rank, unknown dims included. */
#include "layout.h"

static milk_status identity_infer(milk_infer *ic)
{
    MILK_TRY(milk_op_check_dtype(ic->ctx, ic->op, "x", milk_dt_layout(ic->opset)));
    MILK_TRY(milk_infer_outputs(ic, 1));
    ic->out[0] = *milk_op_in_type(ic->op, "x");
    return MILK_OK;
}

/* identity: x unchanged.
 *   x  R  layout dtypes, any rank (a scalar too)
 * Output: x's type and elements. */
static const milk_param identity_params[] = {
    {"x", MILK_P_REQ, 0},
    {0},
};

/* out = x, element for element: [count]. */
static milk_status identity_eval(milk_eval *ec)
{
    return milk_layout_copy_all(ec, "x");
}

const milk_op_info milk_op_identity = {
    .name = "identity",
    .params = identity_params,
    .min_opset = MILK_TARGET_IOS15,
    .infer = identity_infer,
    .eval = identity_eval,
};
