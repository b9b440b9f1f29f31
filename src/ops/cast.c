/* cast.c: the cast op, after coremltools' ops/defs/iOS15/elementwise_unary.py
 * and iOS17/elementwise_unary.py. The target dtype is a string naming one
 * of the dtypes x itself may have. */
#include "infer.h"

/* The dtypes cast takes and produces: fp16, fp32, int32, bool; from iOS17
 * also int8, uint8, int16, uint16. */
static uint64_t cast_dtypes(milk_target opset)
{
    uint64_t m = MILK_DT_NUM | MILK_DT_BOOL;
    return opset >= MILK_TARGET_IOS17 ? m | MILK_DT_SMALL_INT : m;
}

static milk_status cast_infer(milk_infer *ic)
{
    uint64_t allowed = cast_dtypes(ic->opset);
    const char *name;
    MILK_TRY(milk_op_check_dtype(ic->ctx, ic->op, "x", allowed));
    MILK_TRY(milk_op_str(ic->ctx, ic->op, "dtype", NULL, &name));
    milk_dtype to = name ? milk_dtype_from_name(name) : MILK_DTYPE_INVALID;
    if (to == MILK_DTYPE_INVALID || !(allowed & MILK_DT(to)))
        return milk_op_fail(ic->ctx, ic->op, "dtype",
                            "'%s' is not one of fp16, fp32, int32, bool%s",
                            name ? name : "",
                            ic->opset >= MILK_TARGET_IOS17
                                ? ", int8, uint8, int16, uint16"
                                : " (int8, uint8, int16 and uint16 from "
                                  "iOS17)");
    MILK_TRY(milk_infer_outputs(ic, 1));
    ic->out[0] = *milk_op_in_type(ic->op, "x");
    ic->out[0].dtype = to;
    return MILK_OK;
}

/* cast: converts x's elements to another dtype.
 *   x      R    fp16, fp32, int32, bool; iOS17 adds int8, uint8, int16,
 *               uint16
 *   dtype  R C  string naming the target, from the same set
 * Output: x's shape, the named dtype. */
static const milk_param cast_params[] = {
    {"x", MILK_P_REQ, 0},
    {"dtype", MILK_P_REQ | MILK_P_CONST, 0},
    {0},
};

const milk_op_info milk_op_cast = {
    .name = "cast",
    .params = cast_params,
    .min_opset = MILK_TARGET_IOS15,
    .infer = cast_infer,
};
