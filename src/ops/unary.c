/* unary.c: element-wise unary ops on fp16/fp32 tensors (abs also on
 * int32); the output has the input's type. rsqrt and log take an optional
 * constant scalar epsilon, of x's dtype before iOS17 and of either float
 * dtype from iOS17 on (coremltools' ops/defs/iOS15/elementwise_unary.py,
 * activation.py and iOS17/elementwise_unary.py). */
#include "infer.h"
#include "../run/run.h"

#include <math.h>

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

/* ---- reference kernels ------------------------------------------------- */

/* y[i] = f(x[i]) over fp32 storage (fp16 vars too: see run.h). */
static milk_status map_f32(milk_eval *ec, float (*f)(float))
{
    const milk_rt *x = milk_eval_in(ec, "x");
    for (int64_t i = 0; i < x->count; i++)
        milk_rt_f32(&ec->out[0])[i] = f(milk_rt_f32(x)[i]);
    return MILK_OK;
}

/* As map_f32 with the op's epsilon (default dflt) added to x first. */
static milk_status map_eps(milk_eval *ec, double (*f)(double), float dflt)
{
    const milk_rt *x = milk_eval_in(ec, "x");
    float eps;
    MILK_TRY(milk_eval_f32(ec, "epsilon", dflt, &eps));
    for (int64_t i = 0; i < x->count; i++)
        milk_rt_f32(&ec->out[0])[i] = (float)f((double)milk_rt_f32(x)[i] + eps);
    return MILK_OK;
}

static float f_relu(float x) { return x > 0 ? x : 0.0f * x; /* keeps NaN */ }
static float f_sigmoid(float x) { return (float)(1.0 / (1.0 + exp(-(double)x))); }
static float f_silu(float x) { return (float)((double)x / (1.0 + exp(-(double)x))); }
static double rsqrt(double x) { return 1.0 / sqrt(x); }

static milk_status relu_eval(milk_eval *ec) { return map_f32(ec, f_relu); }
static milk_status sigmoid_eval(milk_eval *ec) { return map_f32(ec, f_sigmoid); }
static milk_status tanh_eval(milk_eval *ec) { return map_f32(ec, tanhf); }
static milk_status silu_eval(milk_eval *ec) { return map_f32(ec, f_silu); }
static milk_status sqrt_eval(milk_eval *ec) { return map_f32(ec, sqrtf); }
static milk_status exp_eval(milk_eval *ec) { return map_f32(ec, expf); }
static milk_status erf_eval(milk_eval *ec) { return map_f32(ec, erff); }
static milk_status rsqrt_eval(milk_eval *ec) { return map_eps(ec, rsqrt, 1e-12f); }
static milk_status log_eval(milk_eval *ec) { return map_eps(ec, log, 1e-45f); }

static milk_status abs_eval(milk_eval *ec)
{
    const milk_rt *x = milk_eval_in(ec, "x");
    if (x->store == MILK_DTYPE_INT32) {
        for (int64_t i = 0; i < x->count; i++) {
            int32_t v = milk_rt_i32(x)[i];
            /* INT32_MIN has no absolute value in int32: wraps, as in C's
             * two's complement hardware */
            milk_rt_i32(&ec->out[0])[i] = v < 0 ? (int32_t)(0u - (uint32_t)v) : v;
        }
        return MILK_OK;
    }
    return map_f32(ec, fabsf);
}

#define UNARY(id, param_list, infer_fn)                                     \
    const milk_op_info milk_op_##id = {                                     \
        .name = #id,                                                        \
        .params = param_list,                                               \
        .min_opset = MILK_TARGET_IOS15,                                     \
        .infer = infer_fn,                                                  \
        .eval = id##_eval,                                                  \
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
