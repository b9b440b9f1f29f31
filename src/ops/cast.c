/* cast.c: the cast op, after coremltools' ops/defs/iOS15/elementwise_unary.py
 * and iOS17/elementwise_unary.py. The target dtype is a string naming one
 * of the dtypes x itself may have. The conversions are NumPy's astype,
 * which coremltools' value inference uses (see the kernel). */
#include "elementwise.h"

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

/* One element converted to the storage of dtype `to`. */
static void convert(const milk_rt *x, int64_t i, milk_rt *y)
{
    milk_dtype to = y->type.dtype;
    if (y->store == MILK_DTYPE_BOOL) {
        milk_rt_bool(y)[i] = milk_rt_get(x, i) != 0; /* NaN is true */
    } else if (y->store == MILK_DTYPE_FP32) {
        milk_rt_f32(y)[i] = (float)milk_rt_get(x, i); /* fp16: runner rounds */
    } else if (x->store == MILK_DTYPE_FP32) {
        milk_rt_i32(y)[i] = milk_narrow_int(to, milk_f2i32(milk_rt_f32(x)[i]));
    } else {
        milk_rt_i32(y)[i] = milk_narrow_int(to, (int32_t)milk_rt_get(x, i));
    }
}

static milk_status cast_eval(milk_eval *ec)
{
    const milk_rt *x = milk_eval_in(ec, "x");
    for (int64_t i = 0; i < x->count; i++) /* [count] */
        convert(x, i, &ec->out[0]);
    return MILK_OK;
}

/* cast: converts x's elements to another dtype.
 *   x      R    fp16, fp32, int32, bool; iOS17 adds int8, uint8, int16,
 *               uint16
 *   dtype  R C  string naming the target, from the same set
 * Output: x's shape, the named dtype.
 * Conversions, as NumPy's astype (which coremltools' value inference
 * uses) does on x86:
 *   float -> integer: truncation toward zero to int32; NaN, +-inf and
 *     values outside int32's range give INT32_MIN; then, for int8, uint8,
 *     int16 and uint16, the low bits are kept (300.7 -> uint8 44,
 *     -1 -> uint8 255, 1e10 -> uint8 0)
 *   integer -> narrower integer: the low bits are kept
 *   integer -> float: rounded to nearest (to fp16 by the runner)
 *   anything -> bool: x != 0 (NaN is true); bool -> anything: 0 or 1
 *   fp32 <-> fp16: rounded to nearest even by the runner (in the fp32
 *     precision mode fp16 vars are not rounded at all). */
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
    .eval = cast_eval,
};
