/* lower_activation.c: lowerings of the activations beyond one plain MIL
 * op: Elu, Selu, Celu, HardSigmoid, HardSwish, ThresholdedRelu, Shrink,
 * PRelu, and the axis-wise LogSoftmax and Hardmax. Where MIL's op and
 * ONNX's formula differ at a boundary (MIL's thresholded_relu keeps
 * x == alpha, ONNX zeroes it) the lowering composes select/compare ops
 * that follow ONNX exactly. */
#include "lower_util.h"

/* y = type(x, alpha[, beta]) with scalar float params. */
static milk_status act_op(milk_cv *c, const char *type, const char *name,
                          milk_var *x, double alpha, const double *beta,
                          milk_var **out)
{
    milk_cv_op o;
    milk_cv_op_begin(&o, c, type, name);
    milk_cv_arg(&o, "x", x);
    milk_cv_arg_float(&o, "alpha", alpha, milk_cv_float_dtype(x));
    if (beta) milk_cv_arg_float(&o, "beta", *beta, milk_cv_float_dtype(x));
    return milk_cv_op_end(&o, out);
}

/* select(cond, a, b). */
static milk_status select_op(milk_cv *c, const char *name, milk_var *cond,
                             milk_var *a, milk_var *b, milk_var **out)
{
    milk_cv_op o;
    milk_cv_op_begin(&o, c, "select", name);
    milk_cv_arg(&o, "cond", cond);
    milk_cv_arg(&o, "a", a);
    milk_cv_arg(&o, "b", b);
    return milk_cv_op_end(&o, out);
}

static milk_status float_input(milk_cv *c, milk_var **x)
{
    MILK_TRY(milk_cv_input(c, 0, x));
    if ((*x)->type.dtype != MILK_DTYPE_FP32 && (*x)->type.dtype != MILK_DTYPE_FP16)
        return milk_cv_unsupported(c, "input of dtype %s (float only)",
                                   milk_dtype_name((*x)->type.dtype));
    return MILK_OK;
}

milk_status milk_lower_elu(milk_cv *c, const milk_onnx_node *n)
{
    milk_var *x, *y;
    double alpha;
    MILK_TRY(float_input(c, &x));
    MILK_TRY(milk_cv_attr_float(c, "alpha", 1.0, &alpha));
    MILK_TRY(act_op(c, "elu", milk_cv_out(c, 0), x, alpha, NULL, &y));
    return milk_cv_set_out(c, 0, y);
}

/* gamma * elu(x, alpha), ONNX's defaults written as fp32 in the spec */
milk_status milk_lower_selu(milk_cv *c, const milk_onnx_node *n)
{
    milk_var *x, *y;
    double alpha, gamma;
    MILK_TRY(float_input(c, &x));
    MILK_TRY(milk_cv_attr_float(c, "alpha", 1.67326319217681884765625, &alpha));
    MILK_TRY(milk_cv_attr_float(c, "gamma", 1.05070102214813232421875, &gamma));
    MILK_TRY(act_op(c, "elu", milk_cv_tmp(c, "elu"), x, alpha, NULL, &y));
    MILK_TRY(milk_lw_scalar(c, "mul", milk_cv_out(c, 0), y, gamma, false, &y));
    return milk_cv_set_out(c, 0, y);
}

/* x for x > 0, else alpha * (e^(x / alpha) - 1) = alpha * elu(x / alpha):
 * ONNX's max(0, x) + min(0, ...) is exactly x on the positive side. */
milk_status milk_lower_celu(milk_cv *c, const milk_onnx_node *n)
{
    milk_var *x, *pos, *t, *y;
    double alpha;
    MILK_TRY(float_input(c, &x));
    MILK_TRY(milk_cv_attr_float(c, "alpha", 1.0, &alpha));
    if (alpha == 0) return milk_cv_fail(c, MILK_ERR_INVALID_MODEL, "alpha is 0");
    MILK_TRY(milk_lw_scalar(c, "greater", milk_cv_tmp(c, "pos"), x, 0, false, &pos));
    MILK_TRY(milk_lw_scalar(c, "real_div", milk_cv_tmp(c, "scaled"), x, alpha, false, &t));
    MILK_TRY(act_op(c, "elu", milk_cv_tmp(c, "elu"), t, 1.0, NULL, &t));
    MILK_TRY(milk_lw_scalar(c, "mul", milk_cv_tmp(c, "neg"), t, alpha, false, &t));
    MILK_TRY(select_op(c, milk_cv_out(c, 0), pos, x, t, &y));
    return milk_cv_set_out(c, 0, y);
}

milk_status milk_lower_hard_sigmoid(milk_cv *c, const milk_onnx_node *n)
{
    milk_var *x, *y;
    double alpha, beta;
    MILK_TRY(float_input(c, &x));
    MILK_TRY(milk_cv_attr_float(c, "alpha", 0.2, &alpha));
    MILK_TRY(milk_cv_attr_float(c, "beta", 0.5, &beta));
    MILK_TRY(act_op(c, "sigmoid_hard", milk_cv_out(c, 0), x, alpha, &beta, &y));
    return milk_cv_set_out(c, 0, y);
}

/* x * max(0, min(1, x / 6 + 1 / 2)) */
milk_status milk_lower_hard_swish(milk_cv *c, const milk_onnx_node *n)
{
    milk_var *x, *h, *y;
    double half = 0.5;
    MILK_TRY(float_input(c, &x));
    MILK_TRY(act_op(c, "sigmoid_hard", milk_cv_tmp(c, "gate"), x, 1.0 / 6.0, &half, &h));
    MILK_TRY(milk_lw_binary(c, "mul", milk_cv_out(c, 0), x, h, &y));
    return milk_cv_set_out(c, 0, y);
}

/* x if x > alpha else 0 (MIL's thresholded_relu keeps x == alpha) */
milk_status milk_lower_thresholded_relu(milk_cv *c, const milk_onnx_node *n)
{
    milk_var *x, *keep, *zero, *y;
    double alpha;
    MILK_TRY(float_input(c, &x));
    MILK_TRY(milk_cv_attr_float(c, "alpha", 1.0, &alpha));
    MILK_TRY(milk_lw_scalar(c, "greater", milk_cv_tmp(c, "keep"), x, alpha, false, &keep));
    MILK_TRY(milk_lw_scalar_const(c, milk_cv_tmp(c, "zero"), x->type.dtype, 0, &zero));
    MILK_TRY(select_op(c, milk_cv_out(c, 0), keep, x, zero, &y));
    return milk_cv_set_out(c, 0, y);
}

/* x + bias below -lambd, x - bias above lambd, 0 between. */
milk_status milk_lower_shrink(milk_cv *c, const milk_onnx_node *n)
{
    milk_var *x, *lo, *hi, *below, *above, *zero, *y;
    double bias, lambd;
    MILK_TRY(milk_cv_input(c, 0, &x));
    MILK_TRY(milk_cv_attr_float(c, "bias", 0.0, &bias));
    MILK_TRY(milk_cv_attr_float(c, "lambd", 0.5, &lambd));
    MILK_TRY(milk_lw_scalar(c, "less", milk_cv_tmp(c, "lo"), x, -lambd, false, &lo));
    MILK_TRY(milk_lw_scalar(c, "greater", milk_cv_tmp(c, "hi"), x, lambd, false, &hi));
    MILK_TRY(milk_lw_scalar(c, "add", milk_cv_tmp(c, "below"), x, bias, false, &below));
    MILK_TRY(milk_lw_scalar(c, "sub", milk_cv_tmp(c, "above"), x, bias, false, &above));
    MILK_TRY(milk_lw_scalar_const(c, milk_cv_tmp(c, "zero"), x->type.dtype, 0, &zero));
    MILK_TRY(select_op(c, milk_cv_tmp(c, "upper"), hi, above, zero, &y));
    MILK_TRY(select_op(c, milk_cv_out(c, 0), lo, below, y, &y));
    return milk_cv_set_out(c, 0, y);
}

/* ---- PRelu -------------------------------------------------------------------- */

/* MIL's prelu takes rank-4 x [N, C, H, W] with a constant [C] slope:
 * true when the slope, right-aligned against x as ONNX broadcasts it, is
 * [1, C, 1, 1] (PyTorch exports [C, 1, 1]; a [C] slope would run along W). */
static bool prelu_native(milk_cv *c, const milk_var *x,
                         const milk_tensor_type *st)
{
    if (x->type.rank != 4 || !milk_cv_is_const(c, 1) || st->rank > 4) return false;
    for (int i = 0; i < 4; i++) {
        int k = i - (4 - st->rank);
        int64_t d = k >= 0 ? st->dims[k] : 1;
        if (d != (i == 1 ? x->type.dims[1] : 1)) return false;
    }
    return true;
}

/* slope * x where x < 0, else x, with the slope broadcast to x (any rank,
 * any broadcastable slope). */
milk_status milk_lower_prelu(milk_cv *c, const milk_onnx_node *n)
{
    milk_var *x, *s, *neg, *scaled, *y;
    milk_tensor_type st;
    MILK_TRY(float_input(c, &x));
    MILK_TRY(milk_cv_type(c, 1, &st));
    MILK_TRY(milk_cv_input(c, 1, &s));
    if (prelu_native(c, x, &st)) {
        if (st.rank != 1)
            MILK_TRY(milk_cv_reshape(c, milk_cv_tmp(c, "slope"), s, 1,
                                     &x->type.dims[1], &s));
        milk_cv_op o;
        milk_cv_op_begin(&o, c, "prelu", milk_cv_out(c, 0));
        milk_cv_arg(&o, "x", x);
        milk_cv_arg(&o, "alpha", s);
        MILK_TRY(milk_cv_op_end(&o, &y));
        return milk_cv_set_out(c, 0, y);
    }
    MILK_TRY(milk_lw_scalar(c, "less", milk_cv_tmp(c, "neg"), x, 0, false, &neg));
    MILK_TRY(milk_lw_binary(c, "mul", milk_cv_tmp(c, "scaled"), x, s, &scaled));
    MILK_TRY(select_op(c, milk_cv_out(c, 0), neg, scaled, x, &y));
    return milk_cv_set_out(c, 0, y);
}

/* ---- LogSoftmax, Hardmax -------------------------------------------------------- */

/* One of the axis-wise ops along axis a of x. */
typedef milk_status (*axis_fn)(milk_cv *c, milk_var *x, int a, const char *name,
                               milk_var **out);

/* x - max - log(sum(e^(x - max))): never overflows, and the sum is at
 * least 1, so MIL log's epsilon does not matter. */
static milk_status log_softmax_along(milk_cv *c, milk_var *x, int a,
                                     const char *name, milk_var **out)
{
    int64_t ax = a;
    milk_var *m, *d, *e;
    MILK_TRY(milk_lw_reduce(c, "reduce_max", milk_cv_tmp(c, "max"), x, &ax, 1, true, &m));
    MILK_TRY(milk_lw_binary(c, "sub", milk_cv_tmp(c, "shifted"), x, m, &d));
    MILK_TRY(milk_cv_unary(c, "exp", milk_cv_tmp(c, "exp"), d, &e));
    MILK_TRY(milk_lw_reduce(c, "reduce_sum", milk_cv_tmp(c, "sum"), e, &ax, 1, true, &e));
    MILK_TRY(milk_cv_unary(c, "log", milk_cv_tmp(c, "lse"), e, &e));
    return milk_lw_binary(c, "sub", name, d, e, out);
}

/* 1 at the first largest element along the axis, 0 elsewhere:
 * equal(argmax, iota along the axis). */
static milk_status hardmax_along(milk_cv *c, milk_var *x, int a,
                                 const char *name, milk_var **out)
{
    int64_t len = x->type.dims[a];
    milk_var *idx, *iota, *eq;
    milk_cv_op o;
    milk_cv_op_begin(&o, c, "reduce_argmax", milk_cv_tmp(c, "argmax"));
    milk_cv_arg(&o, "x", x);
    milk_cv_arg_int(&o, "axis", a);
    milk_cv_arg_bool(&o, "keep_dims", true);
    MILK_TRY(milk_cv_op_end(&o, &idx));
    if (len > (1 << 24)) return milk_cv_unsupported(c, "an axis of %lld", (long long)len);
    int32_t *v = milk_arena_alloc(c->a, (size_t)(len ? len : 1) * sizeof *v);
    if (!v) return milk_errorf(c->ctx, MILK_ERR_NOMEM, "out of memory");
    milk_tensor_type t = {MILK_DTYPE_INT32, x->type.rank, {0}};
    for (int i = 0; i < t.rank; i++) t.dims[i] = i == a ? len : 1;
    for (int64_t i = 0; i < len; i++) v[i] = (int32_t)i;
    MILK_TRY(milk_cv_const(c, milk_cv_tmp(c, "iota"), &t, v, &iota));
    MILK_TRY(milk_lw_binary(c, "equal", milk_cv_tmp(c, "onehot"), idx, iota, &eq));
    return milk_cv_cast(c, name, eq, x->type.dtype, out);
}

/* Along axis (opset 13+), or before opset 13 over the dims from axis on
 * seen as one (a reshape to 2-D around the op). */
static milk_status axis_op(milk_cv *c, axis_fn fn)
{
    milk_var *x, *y;
    int64_t axis;
    int a;
    MILK_TRY(float_input(c, &x));
    MILK_TRY(milk_cv_attr_int(c, "axis", c->opset >= 13 ? -1 : 1, &axis));
    MILK_TRY(milk_cv_axis(c, "attribute 'axis':", axis, x->type.rank, &a));
    const milk_tensor_type *t = &x->type;
    if (c->opset >= 13 || a == t->rank - 1) {
        MILK_TRY(fn(c, x, a, milk_cv_out(c, 0), &y));
        return milk_cv_set_out(c, 0, y);
    }
    int64_t flat[2] = {milk_dims_span(t->dims, 0, a),
                       milk_dims_span(t->dims, a, t->rank)};
    MILK_TRY(milk_cv_reshape(c, milk_cv_tmp(c, "2d"), x, 2, flat, &y));
    MILK_TRY(fn(c, y, 1, milk_cv_tmp(c, "flat"), &y));
    MILK_TRY(milk_cv_reshape(c, milk_cv_out(c, 0), y, t->rank, t->dims, &y));
    return milk_cv_set_out(c, 0, y);
}

milk_status milk_lower_log_softmax(milk_cv *c, const milk_onnx_node *n)
{
    return axis_op(c, log_softmax_along);
}

milk_status milk_lower_hardmax(milk_cv *c, const milk_onnx_node *n)
{
    return axis_op(c, hardmax_along);
}
