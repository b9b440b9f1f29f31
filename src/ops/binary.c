/* binary.c: element-wise binary ops with NumPy broadcasting: add, sub, mul,
 * real_div, pow, maximum, minimum (coremltools' ops/defs/iOS15/
 * elementwise_binary.py; no later opset changes them). */
#include "infer.h"
#include "../run/run.h"

#include <math.h>

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
/* ---- reference kernels ------------------------------------------------- */

static double f_add(double a, double b) { return a + b; }
static double f_sub(double a, double b) { return a - b; }
static double f_mul(double a, double b) { return a * b; }
static double f_real_div(double a, double b) { return a / b; }
static double f_pow(double a, double b) { return pow(a, b); }
static double f_maximum(double a, double b) { return a > b || isnan(a) ? a : b; }
static double f_minimum(double a, double b) { return a < b || isnan(a) ? a : b; }

/* int32 arithmetic: computed in int64 and wrapped to 32 bits as the
 * hardware does; division truncates toward zero (by zero: 0); pow through
 * double. */
static int32_t int_op(double (*f)(double, double), int32_t a, int32_t b)
{
    int64_t r;
    if (f == f_add) r = (int64_t)a + b;
    else if (f == f_sub) r = (int64_t)a - b;
    else if (f == f_mul) r = (int64_t)a * b;
    else if (f == f_real_div) r = b == 0 ? 0 : (int64_t)a / b;
    else r = (int64_t)f(a, b);
    return (int32_t)(uint32_t)r;
}

/* out = f(x, y) with broadcasting; float math in double, rounded once. */
static milk_status binary_eval(milk_eval *ec, double (*f)(double, double))
{
    const milk_rt *x = milk_eval_in(ec, "x"), *y = milk_eval_in(ec, "y");
    milk_rt *o = &ec->out[0];
    milk_bcast it;
    milk_bcast_init(&it, &o->type, &x->type, &y->type);
    bool ints = o->store == MILK_DTYPE_INT32;
    for (int64_t i = 0; i < o->count; i++, milk_bcast_next(&it)) {
        if (ints)
            milk_rt_i32(o)[i] = int_op(f, milk_rt_i32(x)[it.ia], milk_rt_i32(y)[it.ib]);
        else
            milk_rt_f32(o)[i] = (float)f(milk_rt_f32(x)[it.ia], milk_rt_f32(y)[it.ib]);
    }
    return MILK_OK;
}

#define BINARY(id)                                                          \
    static milk_status id##_eval(milk_eval *ec) { return binary_eval(ec, f_##id); } \
    const milk_op_info milk_op_##id = {                                     \
        .name = #id,                                                        \
        .params = binary_params,                                            \
        .min_opset = MILK_TARGET_IOS15,                                     \
        .infer = binary_infer,                                              \
        .eval = id##_eval,                                                  \
    };
BINARY(add)
BINARY(sub)
BINARY(mul)
BINARY(real_div)
BINARY(pow)
BINARY(maximum)
BINARY(minimum)
