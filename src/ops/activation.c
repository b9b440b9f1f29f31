/* activation.c: activations, after coremltools' ops/defs/iOS15/
 * activation.py and iOS17/activation.py (clip: iOS15 and iOS17/
 * elementwise_unary.py). Every op keeps x's type (fp16/fp32). relu,
 * sigmoid and silu live with the unary ops (unary.c).
 *
 * Scalar parameters (alpha, beta) are compile-time constants of x's dtype
 * before iOS17; from iOS17 on they share one float dtype of their own.
 * clip's alpha and beta keep x's dtype in every opset. The reference
 * kernels compute in double and round once to the fp32 storage. */
#include "elementwise.h"

/* ---- type inference helpers --------------------------------------------- */

static milk_status same_as_x(milk_infer *ic)
{
    MILK_TRY(milk_infer_outputs(ic, 1));
    ic->out[0] = *milk_op_in_type(ic->op, "x");
    return MILK_OK;
}

static milk_status float_infer(milk_infer *ic)
{
    MILK_TRY(milk_op_check_dtype(ic->ctx, ic->op, "x", MILK_DT_FLOAT));
    return same_as_x(ic);
}

/* Each bound param of the NULL-terminated list is a scalar constant. */
static milk_status check_scalars(milk_infer *ic, const char *const *params)
{
    for (const char *const *p = params; *p; p++) {
        double v;
        MILK_TRY(milk_op_f64(ic->ctx, ic->op, *p, 0.0, &v));
    }
    return MILK_OK;
}

static const char *const alpha_beta[] = {"alpha", "beta", NULL};

/* x fp16/fp32; alpha (and beta) scalars, T before iOS17, U from iOS17. */
static milk_status alpha_infer(milk_infer *ic)
{
    MILK_TRY(milk_op_check_dtype(ic->ctx, ic->op, "x", MILK_DT_FLOAT));
    MILK_TRY(milk_infer_params_dtype(ic, "x", alpha_beta, MILK_DT_FLOAT));
    MILK_TRY(check_scalars(ic, alpha_beta));
    return same_as_x(ic);
}

/* A per-channel constant [C], C = x's dim 1. */
static milk_status check_channels(milk_infer *ic, const char *param,
                                  const milk_tensor_type *x)
{
    const milk_tensor_type *t = milk_op_in_type(ic->op, param);
    if (t->rank != 1 || (MILK_DIM_KNOWN(x->dims[1]) &&
                         MILK_DIM_KNOWN(t->dims[0]) && t->dims[0] != x->dims[1]))
        return milk_op_fail(ic->ctx, ic->op, param,
                            "expected shape [%lld] (the channels of x)",
                            (long long)x->dims[1]);
    return MILK_OK;
}

/* ---- reference kernels ---------------------------------------------------- */

/* y = f(x, alpha, beta) element by element; absent params read as 0. */
typedef double (*act_fn)(double x, double a, double b);

static milk_status map_ab(milk_eval *ec, act_fn f)
{
    const milk_rt *x = milk_eval_in(ec, "x");
    float a, b;
    MILK_TRY(milk_eval_f32(ec, "alpha", 0.0f, &a));
    MILK_TRY(milk_eval_f32(ec, "beta", 0.0f, &b));
    float *y = milk_rt_f32(&ec->out[0]);
    for (int64_t i = 0; i < x->count; i++) /* [count] */
        y[i] = (float)f(milk_rt_f32(x)[i], a, b);
    return MILK_OK;
}

/* max(x, lo) then min(., hi), NaN passing through as np.maximum/minimum */
static double clamp(double x, double lo, double hi)
{
    double v = x < lo ? lo : x;
    return v > hi ? hi : v;
}

/* log(1 + e^x) without overflow: log1p(e^-|x|) + max(x, 0) */
static double softplus(double x)
{
    return log1p(exp(-fabs(x))) + (x > 0 ? x : 0.0);
}

static double a_leaky_relu(double x, double a, double b) { return x < 0 ? a * x : x; }
static double a_elu(double x, double a, double b) { return x > 0 ? x : a * expm1(x); }
static double a_thresholded_relu(double x, double a, double b) { return x < a ? 0.0 : x; }
static double a_linear_activation(double x, double a, double b) { return a * x + b; }
static double a_scaled_tanh(double x, double a, double b) { return a * tanh(b * x); }
static double a_sigmoid_hard(double x, double a, double b) { return clamp(a * x + b, 0, 1); }
static double a_clip(double x, double a, double b) { return clamp(x, a, b); }
static double a_relu6(double x, double a, double b) { return clamp(x, 0, 6); }
static double a_softplus(double x, double a, double b) { return softplus(x); }
static double a_softsign(double x, double a, double b) { return x / (1 + fabs(x)); }

static double a_clamped_relu(double x, double a, double b)
{
    double v = x >= 0 ? x : a * x;
    return v > b ? b : v;
}

#define ACT_EVAL(id) \
    static milk_status id##_eval(milk_eval *ec) { return map_ab(ec, a_##id); }
ACT_EVAL(leaky_relu)
ACT_EVAL(elu)
ACT_EVAL(thresholded_relu)
ACT_EVAL(linear_activation)
ACT_EVAL(scaled_tanh)
ACT_EVAL(sigmoid_hard)
ACT_EVAL(clip)
ACT_EVAL(relu6)
ACT_EVAL(softplus)
ACT_EVAL(softsign)
ACT_EVAL(clamped_relu)

#define ACTIVATION(id, param_list, infer_fn)                                \
    const milk_op_info milk_op_##id = {                                     \
        .name = #id,                                                        \
        .params = param_list,                                               \
        .min_opset = MILK_TARGET_IOS15,                                     \
        .infer = infer_fn,                                                  \
        .eval = id##_eval,                                                  \
    };

static const milk_param x_params[] = {
    {"x", MILK_P_REQ, 0},
    {0},
};

static const milk_param alpha_params[] = {
    {"x", MILK_P_REQ, 0},
    {"alpha", MILK_P_REQ | MILK_P_CONST, 0},
    {0},
};

static const milk_param alpha_beta_params[] = {
    {"x", MILK_P_REQ, 0},
    {"alpha", MILK_P_REQ | MILK_P_CONST, 0},
    {"beta", MILK_P_REQ | MILK_P_CONST, 0},
    {0},
};

/* relu6 (min(max(x, 0), 6)), softplus (log(1 + e^x), computed as
 * log1p(e^-|x|) + max(x, 0) so that it never overflows), softsign
 * (x / (1 + |x|)):
 *   x  R  fp16/fp32
 * Output: x's type. */
ACTIVATION(relu6, x_params, float_infer)
ACTIVATION(softplus, x_params, float_infer)
ACTIVATION(softsign, x_params, float_infer)

/* leaky_relu (x if x >= 0 else alpha * x), elu (x if x > 0 else
 * alpha * (e^x - 1)), thresholded_relu (x if x >= alpha else 0):
 *   x      R    fp16/fp32
 *   alpha  R C  scalar; x's dtype before iOS17, fp16 or fp32 from iOS17
 * Output: x's type. NaN stays NaN. */
ACTIVATION(leaky_relu, alpha_params, alpha_infer)
ACTIVATION(elu, alpha_params, alpha_infer)
ACTIVATION(thresholded_relu, alpha_params, alpha_infer)

/* clamped_relu (min(beta, x) if x >= 0 else min(beta, alpha * x), as its
 * docstring and the NeuralNetwork layer say; coremltools' value inference
 * adds min(0, beta) on the other branch, which differs only for beta < 0),
 * linear_activation (alpha * x + beta), scaled_tanh
 * (alpha * tanh(beta * x)), sigmoid_hard (min(max(alpha * x + beta, 0), 1)):
 *   x      R    fp16/fp32
 *   alpha  R C  scalar; x's dtype before iOS17, fp16 or fp32 from iOS17
 *   beta   R C  scalar, alpha's dtype
 * Output: x's type. */
ACTIVATION(clamped_relu, alpha_beta_params, alpha_infer)
ACTIVATION(linear_activation, alpha_beta_params, alpha_infer)
ACTIVATION(scaled_tanh, alpha_beta_params, alpha_infer)
ACTIVATION(sigmoid_hard, alpha_beta_params, alpha_infer)

/* ---- clip ------------------------------------------------------------------ */

static milk_status clip_infer(milk_infer *ic)
{
    static const char *const xab[] = {"x", "alpha", "beta", NULL};
    double a, b;
    MILK_TRY(milk_infer_domain(ic, xab, MILK_DT_FLOAT));
    MILK_TRY(milk_op_f64(ic->ctx, ic->op, "alpha", 0.0, &a));
    MILK_TRY(milk_op_f64(ic->ctx, ic->op, "beta", 0.0, &b));
    if (ic->opset >= MILK_TARGET_IOS17 && !(a < b))
        return milk_op_fail(ic->ctx, ic->op, "alpha",
                            "%g must be below beta %g from iOS17 on", a, b);
    return same_as_x(ic);
}

/* clip: min(max(x, alpha), beta) (NaN stays NaN; before iOS17 an alpha
 * above beta gives beta everywhere, as NumPy's composition does).
 *   x      R    fp16/fp32
 *   alpha  R C  scalar, x's dtype (in every opset)
 *   beta   R C  scalar, x's dtype; from iOS17 alpha < beta is required
 * Output: x's type. */
ACTIVATION(clip, alpha_beta_params, clip_infer)

/* ---- gelu ------------------------------------------------------------------ */

static milk_status gelu_mode(milk_ctx *ctx, const milk_op *op, int *mode)
{
    static const char *const modes[] = {"EXACT", "TANH_APPROXIMATION",
                                        "SIGMOID_APPROXIMATION"};
    const char *m;
    MILK_TRY(milk_op_str(ctx, op, "mode", "EXACT", &m));
    for (int i = 0; m && i < 3; i++)
        if (strcmp(m, modes[i]) == 0) {
            *mode = i;
            return MILK_OK;
        }
    return milk_op_fail(ctx, op, "mode",
                        "'%s' is not one of EXACT, TANH_APPROXIMATION, "
                        "SIGMOID_APPROXIMATION",
                        m ? m : "");
}

static milk_status gelu_infer(milk_infer *ic)
{
    int mode;
    MILK_TRY(milk_op_check_dtype(ic->ctx, ic->op, "x", MILK_DT_FLOAT));
    MILK_TRY(gelu_mode(ic->ctx, ic->op, &mode));
    return same_as_x(ic);
}

static double gelu(double x, int mode)
{
    const double sqrt_2_over_pi = 0.79788456080286535588;
    switch (mode) {
    case 0: return 0.5 * x * (1 + erf(x / sqrt(2.0)));
    case 1: return 0.5 * x * (1 + tanh(sqrt_2_over_pi * (x + 0.044715 * x * x * x)));
    default: return x / (1 + exp(-1.702 * x));
    }
}

static milk_status gelu_eval(milk_eval *ec)
{
    const milk_rt *x = milk_eval_in(ec, "x");
    int mode;
    MILK_TRY(gelu_mode(ec->ctx, ec->op, &mode));
    for (int64_t i = 0; i < x->count; i++) /* [count] */
        milk_rt_f32(&ec->out[0])[i] = (float)gelu(milk_rt_f32(x)[i], mode);
    return MILK_OK;
}

/* gelu: Gaussian error linear unit.
 *   x     R    fp16/fp32
 *   mode  O C  "EXACT" (default: 0.5 x (1 + erf(x / sqrt 2))),
 *              "TANH_APPROXIMATION" (0.5 x (1 + tanh(sqrt(2 / pi)
 *              (x + 0.044715 x^3)))), "SIGMOID_APPROXIMATION"
 *              (x * sigmoid(1.702 x))
 * Output: x's type. */
static const milk_param gelu_params[] = {
    {"x", MILK_P_REQ, 0},
    {"mode", MILK_P_CONST, 0},
    {0},
};
ACTIVATION(gelu, gelu_params, gelu_infer)

/* ---- softmax --------------------------------------------------------------- */

static milk_status softmax_infer(milk_infer *ic)
{
    const milk_tensor_type *x;
    int64_t axis;
    int a;
    MILK_TRY(milk_infer_tensor(ic, "x", MILK_DT_FLOAT, 1, -1, &x));
    MILK_TRY(milk_infer_int(ic, "axis", MILK_DT_INT32, -1, &axis));
    MILK_TRY(milk_infer_axis(ic, "axis", axis, x->rank, &a));
    return same_as_x(ic);
}

/* Numerically stable: e^(x - max) never overflows, and the sum is at
 * least 1. A NaN anywhere in a slice makes the whole slice NaN. */
static milk_status softmax_eval(milk_eval *ec)
{
    const milk_rt *xt = milk_eval_in(ec, "x");
    int64_t axis, outer, n, inner;
    int a;
    MILK_TRY(milk_op_int(ec->ctx, ec->op, "axis", -1, &axis));
    MILK_TRY(milk_op_axis(ec->ctx, ec->op, "axis", axis, xt->type.rank, &a));
    milk_around_axis(&xt->type, a, &outer, &n, &inner);
    const float *x = milk_rt_f32(xt);
    float *y = milk_rt_f32(&ec->out[0]);
    for (int64_t o = 0; o < outer; o++) {          /* [outer] */
        for (int64_t i = 0; i < inner; i++) {      /* [inner] */
            const float *xs = x + o * n * inner + i;
            float *ys = y + o * n * inner + i;
            double m = -INFINITY, sum = 0;
            for (int64_t k = 0; k < n; k++) {      /* [n]: max, NaN sticks */
                double v = xs[k * inner];
                if (v > m || isnan(v)) m = isnan(m) ? m : v;
            }
            for (int64_t k = 0; k < n; k++)        /* [n]: sum */
                sum += exp(xs[k * inner] - m);
            for (int64_t k = 0; k < n; k++)        /* [n]: normalize */
                ys[k * inner] = (float)(exp(xs[k * inner] - m) / sum);
        }
    }
    return MILK_OK;
}

/* softmax: e^x / sum(e^x) along one axis, computed as e^(x - max) /
 * sum(e^(x - max)) as coremltools' value inference does.
 *   x     R    rank >= 1, fp16/fp32
 *   axis  O C  int32, default -1
 * Output: x's type. */
static const milk_param softmax_params[] = {
    {"x", MILK_P_REQ, 0},
    {"axis", MILK_P_CONST, 0},
    {0},
};
ACTIVATION(softmax, softmax_params, softmax_infer)

/* ---- per-channel activations --------------------------------------------- */

/* prelu's alpha must be one value repeated for rank 3 and 5 x (the
 * coremltools check, with its tolerance of 1e-5). */
static milk_status prelu_uniform(milk_infer *ic)
{
    const milk_value *al = milk_op_const(ic->op, "alpha");
    int64_t n = milk_tensor_type_count(&al->type);
    double first = 0;
    for (int64_t i = 0; i < n; i++) {
        double v;
        MILK_TRY(milk_value_get_f64(ic->ctx, al, i, &v));
        if (i == 0) first = v;
        if (fabs(v - first) > 1e-5)
            return milk_op_fail(ic->ctx, ic->op, "alpha",
                                "rank %d x needs one alpha for every channel",
                                (int)milk_op_in_type(ic->op, "x")->rank);
    }
    return MILK_OK;
}

static milk_status prelu_infer(milk_infer *ic)
{
    static const char *const alpha[] = {"alpha", NULL};
    const milk_tensor_type *x;
    MILK_TRY(milk_infer_tensor(ic, "x", MILK_DT_FLOAT, 3, 5, &x));
    MILK_TRY(milk_infer_params_dtype(ic, "x", alpha, MILK_DT_FLOAT));
    MILK_TRY(check_channels(ic, "alpha", x));
    if (x->rank != 4) MILK_TRY(prelu_uniform(ic));
    return same_as_x(ic);
}

static milk_status softplus_parametric_infer(milk_infer *ic)
{
    const milk_tensor_type *x;
    MILK_TRY(milk_infer_tensor(ic, "x", MILK_DT_FLOAT, 3, -1, &x));
    MILK_TRY(milk_infer_params_dtype(ic, "x", alpha_beta, MILK_DT_FLOAT));
    MILK_TRY(check_channels(ic, "alpha", x));
    MILK_TRY(check_channels(ic, "beta", x));
    return same_as_x(ic);
}

/* y = f(x, alpha[c], beta[c]) with c the index along axis 1. */
static milk_status map_channels(milk_eval *ec, act_fn f)
{
    const milk_rt *xt = milk_eval_in(ec, "x");
    const milk_rt *al = milk_eval_in(ec, "alpha"), *be = milk_eval_in(ec, "beta");
    int64_t outer, c_n, inner;
    milk_around_axis(&xt->type, 1, &outer, &c_n, &inner);
    const float *x = milk_rt_f32(xt);
    float *y = milk_rt_f32(&ec->out[0]);
    for (int64_t o = 0; o < outer; o++)            /* [N] */
        for (int64_t c = 0; c < c_n; c++) {        /* [C] */
            double a = milk_rt_f32(al)[c], b = be ? milk_rt_f32(be)[c] : 0;
            int64_t base = (o * c_n + c) * inner;
            for (int64_t i = 0; i < inner; i++)    /* [*D] */
                y[base + i] = (float)f(x[base + i], a, b);
        }
    return MILK_OK;
}

static double a_prelu(double x, double a, double b) { return x > 0 ? x : a * x; }
static double a_softplus_parametric(double x, double a, double b)
{
    return a * softplus(b * x);
}

static milk_status prelu_eval(milk_eval *ec) { return map_channels(ec, a_prelu); }
static milk_status softplus_parametric_eval(milk_eval *ec)
{
    return map_channels(ec, a_softplus_parametric);
}

/* prelu: x if x > 0 else alpha[c] * x, c along axis 1.
 *   x      R    [B, C, *D], rank 3 to 5, fp16/fp32
 *   alpha  R C  [C]; x's dtype before iOS17, fp16 or fp32 from iOS17. For
 *               rank 3 and 5 x every alpha must be the same (coremltools'
 *               check)
 * Output: x's type. */
ACTIVATION(prelu, alpha_params, prelu_infer)

/* softplus_parametric: alpha[c] * log(1 + e^(beta[c] * x)), c along
 * axis 1 (log(1 + e^t) computed without overflow, as softplus).
 *   x      R    [B, C, *D], rank >= 3, fp16/fp32
 *   alpha  R C  [C]; x's dtype before iOS17, fp16 or fp32 from iOS17
 *   beta   R C  [C], alpha's dtype
 * Output: x's type. */
ACTIVATION(softplus_parametric, alpha_beta_params, softplus_parametric_infer)
