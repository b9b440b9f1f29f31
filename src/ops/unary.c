/* unary.c: element-wise unary ops, y = f(x) with x's type, after
 * coremltools' ops/defs/iOS15/elementwise_unary.py (and relu, sigmoid,
 * silu from iOS15/activation.py), with the iOS17 versions of rsqrt, log
 * and inverse (iOS17/elementwise_unary.py: epsilon's dtype of its own).
 *
 * The reference kernels compute in double and round once to the fp32
 * storage (fp16 vars are rounded by the runner afterwards). NaN goes
 * through every op as NumPy's functions let it through. */
#include "elementwise.h"

static const milk_param x_params[] = {
    {"x", MILK_P_REQ, 0},
    {0},
};

static const milk_param eps_params[] = {
    {"x", MILK_P_REQ, 0},
    {"epsilon", MILK_P_CONST, 0},
    {0},
};

static const milk_param threshold_params[] = {
    {"x", MILK_P_REQ, 0},
    {"alpha", MILK_P_REQ | MILK_P_CONST, 0},
    {0},
};

/* ---- type inference ------------------------------------------------------ */

static milk_status same_as_x(milk_infer *ic, uint64_t dtypes)
{
    MILK_TRY(milk_op_check_dtype(ic->ctx, ic->op, "x", dtypes));
    MILK_TRY(milk_infer_outputs(ic, 1));
    ic->out[0] = *milk_op_in_type(ic->op, "x");
    return MILK_OK;
}

static milk_status float_infer(milk_infer *ic)
{
    return same_as_x(ic, MILK_DT_FLOAT);
}

/* abs, sign, square and exp2 also take int32 */
static milk_status num_infer(milk_infer *ic)
{
    return same_as_x(ic, MILK_DT_NUM);
}

static milk_status scalar_param(milk_infer *ic, const char *param)
{
    const milk_tensor_type *t = milk_op_in_type(ic->op, param);
    if (t && milk_tensor_type_count(t) != 1)
        return milk_op_fail(ic->ctx, ic->op, param, "expected a scalar");
    return MILK_OK;
}

static milk_status eps_infer(milk_infer *ic)
{
    static const char *const eps[] = {"epsilon", NULL};
    MILK_TRY(milk_op_check_dtype(ic->ctx, ic->op, "x", MILK_DT_FLOAT));
    MILK_TRY(milk_infer_params_dtype(ic, "x", eps, MILK_DT_FLOAT));
    MILK_TRY(scalar_param(ic, "epsilon"));
    return same_as_x(ic, MILK_DT_FLOAT);
}

/* threshold's alpha has x's dtype in every opset (no iOS17 version) */
static milk_status threshold_infer(milk_infer *ic)
{
    static const char *const xa[] = {"x", "alpha", NULL};
    MILK_TRY(milk_infer_domain(ic, xa, MILK_DT_NUM));
    MILK_TRY(scalar_param(ic, "alpha"));
    return same_as_x(ic, MILK_DT_NUM);
}

/* ---- reference kernels --------------------------------------------------- */

/* y[i] = f(x[i]) over fp32 storage, in double, rounded once. */
static milk_status map_f(milk_eval *ec, double (*f)(double))
{
    const milk_rt *x = milk_eval_in(ec, "x");
    float *y = milk_rt_f32(&ec->out[0]);
    for (int64_t i = 0; i < x->count; i++) /* [count] */
        y[i] = (float)f(milk_rt_f32(x)[i]);
    return MILK_OK;
}

/* y[i] = g(x[i]) over int32 storage. */
static milk_status map_i(milk_eval *ec, int32_t (*g)(int32_t))
{
    const milk_rt *x = milk_eval_in(ec, "x");
    int32_t *y = milk_rt_i32(&ec->out[0]);
    for (int64_t i = 0; i < x->count; i++) /* [count] */
        y[i] = g(milk_rt_i32(x)[i]);
    return MILK_OK;
}

/* The op's epsilon, or its default as coremltools materializes it: a
 * constant of x's dtype (so 1e-12 and 1e-45 become 0 for fp16 x). */
static milk_status epsilon(milk_eval *ec, float dflt, double *eps)
{
    const milk_rt *x = milk_eval_in(ec, "x");
    if (x->type.dtype == MILK_DTYPE_FP16)
        dflt = milk_fp16_to_fp32(milk_fp32_to_fp16(dflt));
    float e;
    MILK_TRY(milk_eval_f32(ec, "epsilon", dflt, &e));
    *eps = e;
    return MILK_OK;
}

/* y = f(x + epsilon) */
static milk_status map_eps(milk_eval *ec, double (*f)(double), float dflt)
{
    const milk_rt *x = milk_eval_in(ec, "x");
    float *y = milk_rt_f32(&ec->out[0]);
    double eps;
    MILK_TRY(epsilon(ec, dflt, &eps));
    for (int64_t i = 0; i < x->count; i++) /* [count] */
        y[i] = (float)f(milk_rt_f32(x)[i] + eps);
    return MILK_OK;
}

static double d_relu(double x) { return x > 0 || isnan(x) ? x : 0.0; }
static double d_sigmoid(double x) { return 1.0 / (1.0 + exp(-x)); }
static double d_silu(double x) { return x / (1.0 + exp(-x)); }
static double d_rsqrt(double x) { return 1.0 / sqrt(x); }
static double d_inverse(double x) { return 1.0 / x; }
static double d_square(double x) { return x * x; }
static double d_sign(double x) { return x > 0 ? 1.0 : x < 0 ? -1.0 : x; }
/* NumPy's round: halves go to the even neighbour (0.5 -> 0, 1.5 -> 2) */
static double d_round(double x) { return nearbyint(x); }

static int32_t i_abs(int32_t x)
{
    /* INT32_MIN has no absolute value in int32: it wraps to itself */
    return x < 0 ? milk_wrap_i32(-(int64_t)x) : x;
}
static int32_t i_sign(int32_t x) { return (x > 0) - (x < 0); }
static int32_t i_square(int32_t x) { return milk_wrap_i32((int64_t)x * x); }
/* 2^x computed as a float and converted as cast does: 0 for x < 0,
 * INT32_MIN from x = 31 on (out of range) */
static int32_t i_exp2(int32_t x) { return milk_f2i32(exp2((double)x)); }

static milk_status relu_eval(milk_eval *ec) { return map_f(ec, d_relu); }
static milk_status sigmoid_eval(milk_eval *ec) { return map_f(ec, d_sigmoid); }
static milk_status silu_eval(milk_eval *ec) { return map_f(ec, d_silu); }
static milk_status tanh_eval(milk_eval *ec) { return map_f(ec, tanh); }
static milk_status sqrt_eval(milk_eval *ec) { return map_f(ec, sqrt); }
static milk_status exp_eval(milk_eval *ec) { return map_f(ec, exp); }
static milk_status erf_eval(milk_eval *ec) { return map_f(ec, erf); }
static milk_status floor_eval(milk_eval *ec) { return map_f(ec, floor); }
static milk_status ceil_eval(milk_eval *ec) { return map_f(ec, ceil); }
static milk_status round_eval(milk_eval *ec) { return map_f(ec, d_round); }
static milk_status sin_eval(milk_eval *ec) { return map_f(ec, sin); }
static milk_status cos_eval(milk_eval *ec) { return map_f(ec, cos); }
static milk_status tan_eval(milk_eval *ec) { return map_f(ec, tan); }
static milk_status asin_eval(milk_eval *ec) { return map_f(ec, asin); }
static milk_status acos_eval(milk_eval *ec) { return map_f(ec, acos); }
static milk_status atan_eval(milk_eval *ec) { return map_f(ec, atan); }
static milk_status sinh_eval(milk_eval *ec) { return map_f(ec, sinh); }
static milk_status cosh_eval(milk_eval *ec) { return map_f(ec, cosh); }
static milk_status atanh_eval(milk_eval *ec) { return map_f(ec, atanh); }

static milk_status rsqrt_eval(milk_eval *ec) { return map_eps(ec, d_rsqrt, 1e-12f); }
static milk_status log_eval(milk_eval *ec) { return map_eps(ec, log, 1e-45f); }
static milk_status inverse_eval(milk_eval *ec) { return map_eps(ec, d_inverse, 1e-4f); }

/* Ops on fp16/fp32/int32: the storage picks the kernel. */
static bool is_int(milk_eval *ec)
{
    return milk_eval_in(ec, "x")->store == MILK_DTYPE_INT32;
}
static milk_status abs_eval(milk_eval *ec)
{
    return is_int(ec) ? map_i(ec, i_abs) : map_f(ec, fabs);
}
static milk_status sign_eval(milk_eval *ec)
{
    return is_int(ec) ? map_i(ec, i_sign) : map_f(ec, d_sign);
}
static milk_status square_eval(milk_eval *ec)
{
    return is_int(ec) ? map_i(ec, i_square) : map_f(ec, d_square);
}
static milk_status exp2_eval(milk_eval *ec)
{
    return is_int(ec) ? map_i(ec, i_exp2) : map_f(ec, exp2);
}

/* threshold: max(x, alpha), NaN in x kept (np.maximum). alpha is read as
 * double, which holds any int32 exactly. */
static milk_status threshold_eval(milk_eval *ec)
{
    const milk_rt *x = milk_eval_in(ec, "x");
    milk_rt *y = &ec->out[0];
    double a = milk_rt_get(milk_eval_in(ec, "alpha"), 0);
    for (int64_t i = 0; i < x->count; i++) { /* [count] */
        double v = milk_rt_get(x, i);
        double r = v > a || isnan(v) ? v : a;
        if (y->store == MILK_DTYPE_INT32)
            milk_rt_i32(y)[i] = (int32_t)r;
        else
            milk_rt_f32(y)[i] = (float)r;
    }
    return MILK_OK;
}

#define UNARY(id, param_list, infer_fn)                                     \
    const milk_op_info milk_op_##id = {                                     \
        .name = #id,                                                        \
        .params = param_list,                                               \
        .min_opset = MILK_TARGET_IOS15,                                     \
        .infer = infer_fn,                                                  \
        .eval = id##_eval,                                                  \
    };

/* relu (max(x, 0)), sigmoid (1 / (1 + exp(-x))), tanh, silu
 * (x * sigmoid(x)), sqrt, exp, erf, floor, ceil, round (to nearest, halves
 * to even as np.round: 0.5 -> 0, 2.5 -> 2, -0.5 -> -0), sin, cos, tan,
 * asin, acos, atan, sinh, cosh, atanh:
 *   x  R  fp16/fp32
 * Output: x's type. Out-of-domain inputs (asin(2), sqrt(-1)) give NaN. */
UNARY(relu, x_params, float_infer)
UNARY(sigmoid, x_params, float_infer)
UNARY(tanh, x_params, float_infer)
UNARY(silu, x_params, float_infer)
UNARY(sqrt, x_params, float_infer)
UNARY(exp, x_params, float_infer)
UNARY(erf, x_params, float_infer)
UNARY(floor, x_params, float_infer)
UNARY(ceil, x_params, float_infer)
UNARY(round, x_params, float_infer)
UNARY(sin, x_params, float_infer)
UNARY(cos, x_params, float_infer)
UNARY(tan, x_params, float_infer)
UNARY(asin, x_params, float_infer)
UNARY(acos, x_params, float_infer)
UNARY(atan, x_params, float_infer)
UNARY(sinh, x_params, float_infer)
UNARY(cosh, x_params, float_infer)
UNARY(atanh, x_params, float_infer)

/* abs, sign (-1, 0 or 1; NaN stays NaN), square (x * x), exp2 (2^x):
 *   x  R  fp16/fp32/int32
 * Output: x's type. int32 arithmetic wraps (abs(INT32_MIN) and squares
 * beyond int32 wrap as in NumPy's int32); int32 exp2 is 2^x as a float
 * converted as cast converts (truncated: 0 for x < 0; INT32_MIN from
 * x = 31 on, out of range). */
UNARY(abs, x_params, num_infer)
UNARY(sign, x_params, num_infer)
UNARY(square, x_params, num_infer)
UNARY(exp2, x_params, num_infer)

/* rsqrt: 1 / sqrt(x + epsilon); log: log(x + epsilon); inverse:
 * 1 / (x + epsilon).
 *   x        R    fp16/fp32
 *   epsilon  O C  scalar; default 1e-12 (rsqrt), 1e-45 (log), 1e-4
 *                 (inverse), as a constant of x's dtype (so 0 for rsqrt and
 *                 log of fp16 x); x's dtype before iOS17, fp16 or fp32
 *                 from iOS17
 * Output: x's type. x + epsilon is added in double. */
UNARY(rsqrt, eps_params, eps_infer)
UNARY(log, eps_params, eps_infer)
UNARY(inverse, eps_params, eps_infer)

/* threshold: max(x, alpha) (NaN in x stays NaN, as np.maximum).
 *   x      R    fp16/fp32/int32
 *   alpha  R C  scalar of x's dtype (in every opset)
 * Output: x's type. */
UNARY(threshold, threshold_params, threshold_infer)
