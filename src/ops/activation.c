/* activation.c: leaky_relu, gelu, softmax and clip, after coremltools'
 * ops/defs/iOS15/activation.py, iOS15/elementwise_unary.py (clip) and
 * their iOS17 versions. All keep x's type (fp16/fp32, any rank). */
#include "infer.h"

/* A scalar constant parameter's value (the signature has made sure it is
 * a constant); fails naming param if it has more than one element. */
static milk_status scalar_param(milk_infer *ic, const char *param,
                                double *v)
{
    return milk_op_f64(ic->ctx, ic->op, param, 0.0, v);
}

static milk_status same_as_x(milk_infer *ic)
{
    const milk_tensor_type *x = milk_op_in_type(ic->op, "x");
    MILK_TRY(milk_infer_outputs(ic, 1));
    ic->out[0] = *x;
    return MILK_OK;
}

static milk_status leaky_relu_infer(milk_infer *ic)
{
    static const char *const alpha[] = {"alpha", NULL};
    double a;
    MILK_TRY(milk_op_check_dtype(ic->ctx, ic->op, "x", MILK_DT_FLOAT));
    MILK_TRY(milk_infer_params_dtype(ic, "x", alpha, MILK_DT_FLOAT));
    MILK_TRY(scalar_param(ic, "alpha", &a));
    return same_as_x(ic);
}

/* leaky_relu: x if x >= 0 else alpha * x.
 *   x      R    fp16/fp32
 *   alpha  R C  scalar; x's dtype before iOS17, fp16 or fp32 from iOS17
 * Output: x's type. */
static const milk_param leaky_relu_params[] = {
    {"x", MILK_P_REQ, 0},
    {"alpha", MILK_P_REQ | MILK_P_CONST, 0},
    {0},
};

const milk_op_info milk_op_leaky_relu = {
    .name = "leaky_relu",
    .params = leaky_relu_params,
    .min_opset = MILK_TARGET_IOS15,
    .infer = leaky_relu_infer,
};

static milk_status gelu_infer(milk_infer *ic)
{
    const char *mode;
    MILK_TRY(milk_op_check_dtype(ic->ctx, ic->op, "x", MILK_DT_FLOAT));
    MILK_TRY(milk_op_str(ic->ctx, ic->op, "mode", "EXACT", &mode));
    if (!mode || (strcmp(mode, "EXACT") && strcmp(mode, "TANH_APPROXIMATION") &&
                  strcmp(mode, "SIGMOID_APPROXIMATION")))
        return milk_op_fail(ic->ctx, ic->op, "mode",
                            "'%s' is not one of EXACT, TANH_APPROXIMATION, "
                            "SIGMOID_APPROXIMATION",
                            mode ? mode : "");
    return same_as_x(ic);
}

/* gelu: Gaussian error linear unit.
 *   x     R    fp16/fp32
 *   mode  O C  "EXACT" (default, x * Phi(x)), "TANH_APPROXIMATION",
 *              "SIGMOID_APPROXIMATION" (x * sigmoid(1.702 x))
 * Output: x's type. */
static const milk_param gelu_params[] = {
    {"x", MILK_P_REQ, 0},
    {"mode", MILK_P_CONST, 0},
    {0},
};

const milk_op_info milk_op_gelu = {
    .name = "gelu",
    .params = gelu_params,
    .min_opset = MILK_TARGET_IOS15,
    .infer = gelu_infer,
};

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

/* softmax: exp(x) / sum(exp(x)) along one axis.
 *   x     R    rank >= 1, fp16/fp32
 *   axis  O C  int32, default -1
 * Output: x's type. */
static const milk_param softmax_params[] = {
    {"x", MILK_P_REQ, 0},
    {"axis", MILK_P_CONST, 0},
    {0},
};

const milk_op_info milk_op_softmax = {
    .name = "softmax",
    .params = softmax_params,
    .min_opset = MILK_TARGET_IOS15,
    .infer = softmax_infer,
};

static milk_status clip_infer(milk_infer *ic)
{
    static const char *const xab[] = {"x", "alpha", "beta", NULL};
    double a, b;
    MILK_TRY(milk_infer_domain(ic, xab, MILK_DT_FLOAT));
    MILK_TRY(scalar_param(ic, "alpha", &a));
    MILK_TRY(scalar_param(ic, "beta", &b));
    if (ic->opset >= MILK_TARGET_IOS17 && !(a < b))
        return milk_op_fail(ic->ctx, ic->op, "alpha",
                            "%g must be below beta %g from iOS17 on", a, b);
    return same_as_x(ic);
}

/* clip: min(max(x, alpha), beta).
 *   x      R    fp16/fp32
 *   alpha  R C  scalar, x's dtype (in every opset)
 *   beta   R C  scalar, x's dtype; from iOS17 alpha < beta is required
 * Output: x's type. */
static const milk_param clip_params[] = {
    {"x", MILK_P_REQ, 0},
    {"alpha", MILK_P_REQ | MILK_P_CONST, 0},
    {"beta", MILK_P_REQ | MILK_P_CONST, 0},
    {0},
};

const milk_op_info milk_op_clip = {
    .name = "clip",
    .params = clip_params,
    .min_opset = MILK_TARGET_IOS15,
    .infer = clip_infer,
};
