/* lower_math.c: lowerings of element-wise math that takes more than one
 * MIL op: Mod (floor and C remainders), the variadic Min, Max, Sum and
 * Mean, IsNaN, IsInf, Asinh and Acosh. Each composition is exact where
 * the ONNX result is exactly representable (Mod), or the textbook formula
 * in its numerically safe form (Asinh with |x|). */
#include "lower_util.h"

#include <math.h>

/* ---- Mod ------------------------------------------------------------------------ */

/* fmod=0 is the floor remainder (the divisor's sign), MIL's mod. fmod=1
 * is C's remainder (the dividend's sign): fmod(x, y) = sign(x) *
 * mod(|x|, |y|), exact because the remainder of two non-negative numbers
 * needs no rounding and multiplying by +-1 is exact. */
milk_status milk_lower_mod(milk_cv *c, const milk_onnx_node *n)
{
    milk_var *x, *y, *ax, *ay, *sx, *out;
    int64_t fmod_attr;
    MILK_TRY(milk_cv_input(c, 0, &x));
    MILK_TRY(milk_cv_input(c, 1, &y));
    MILK_TRY(milk_cv_attr_int(c, "fmod", 0, &fmod_attr));
    if (x->type.dtype != y->type.dtype)
        return milk_cv_fail(c, MILK_ERR_INVALID_MODEL, "inputs of different "
                            "dtypes (%s, %s)", milk_dtype_name(x->type.dtype),
                            milk_dtype_name(y->type.dtype));
    bool is_float = x->type.dtype != MILK_DTYPE_INT32;
    if (!fmod_attr && is_float)
        return milk_cv_fail(c, MILK_ERR_INVALID_MODEL, "fmod=0 with float "
                            "inputs (ONNX requires fmod=1)");
    if (!fmod_attr) {
        MILK_TRY(milk_lw_binary(c, "mod", milk_cv_out(c, 0), x, y, &out));
        return milk_cv_set_out(c, 0, out);
    }
    MILK_TRY(milk_cv_unary(c, "abs", milk_cv_tmp(c, "absx"), x, &ax));
    MILK_TRY(milk_cv_unary(c, "abs", milk_cv_tmp(c, "absy"), y, &ay));
    MILK_TRY(milk_lw_binary(c, "mod", milk_cv_tmp(c, "rem"), ax, ay, &out));
    MILK_TRY(milk_cv_unary(c, "sign", milk_cv_tmp(c, "sign"), x, &sx));
    MILK_TRY(milk_lw_binary(c, "mul", milk_cv_out(c, 0), sx, out, &out));
    return milk_cv_set_out(c, 0, out);
}

/* ---- Min, Max, Sum, Mean ------------------------------------------------------------ */

static const char *const variadic_ops[][2] = {
    {"Min", "minimum"}, {"Max", "maximum"}, {"Sum", "add"}, {"Mean", "add"},
};

/* A left fold of the inputs with the MIL op, broadcasting at each step;
 * Mean divides the sum by the count (real_div, as the spec's formula). */
milk_status milk_lower_variadic(milk_cv *c, const milk_onnx_node *n)
{
    const char *mil = NULL;
    for (size_t i = 0; i < MILK_ARRAY_LEN(variadic_ops); i++)
        if (strcmp(variadic_ops[i][0], n->op_type) == 0) mil = variadic_ops[i][1];
    bool mean = strcmp(n->op_type, "Mean") == 0;
    milk_var *acc, *v;
    if (n->n_inputs < 1) return milk_cv_fail(c, MILK_ERR_INVALID_MODEL, "no inputs");
    MILK_TRY(milk_cv_input(c, 0, &acc));
    for (int i = 1; i < n->n_inputs; i++) {
        MILK_TRY(milk_cv_input(c, i, &v));
        bool last = i == n->n_inputs - 1 && !mean;
        MILK_TRY(milk_lw_binary(c, mil, last ? milk_cv_out(c, 0) : milk_cv_tmp(c, "acc"),
                                acc, v, &acc));
    }
    if (mean && n->n_inputs > 1) {
        if (acc->type.dtype == MILK_DTYPE_INT32)
            return milk_cv_unsupported(c, "Mean of integers");
        MILK_TRY(milk_lw_scalar(c, "real_div", milk_cv_out(c, 0), acc,
                                (double)n->n_inputs, false, &acc));
    }
    return milk_cv_set_out(c, 0, acc);
}

/* ---- IsNaN, IsInf ------------------------------------------------------------------- */

/* NaN is the only value not equal to itself. */
milk_status milk_lower_isnan(milk_cv *c, const milk_onnx_node *n)
{
    milk_var *x, *out;
    MILK_TRY(milk_cv_input(c, 0, &x));
    MILK_TRY(milk_lw_binary(c, "not_equal", milk_cv_out(c, 0), x, x, &out));
    return milk_cv_set_out(c, 0, out);
}

/* x == +inf and/or x == -inf, as detect_positive/detect_negative ask. */
milk_status milk_lower_isinf(milk_cv *c, const milk_onnx_node *n)
{
    milk_var *x, *pos = NULL, *neg = NULL, *out;
    int64_t dp, dn;
    MILK_TRY(milk_cv_input(c, 0, &x));
    MILK_TRY(milk_cv_attr_int(c, "detect_positive", 1, &dp));
    MILK_TRY(milk_cv_attr_int(c, "detect_negative", 1, &dn));
    if (x->type.dtype == MILK_DTYPE_INT32)
        return milk_cv_unsupported(c, "integer input (never infinite)");
    if (!dp && !dn) return milk_cv_unsupported(c, "detecting neither infinity");
    bool both = dp && dn;
    if (dp)
        MILK_TRY(milk_lw_scalar(c, "equal", both ? milk_cv_tmp(c, "pos") : milk_cv_out(c, 0),
                                x, INFINITY, false, &pos));
    if (dn)
        MILK_TRY(milk_lw_scalar(c, "equal", both ? milk_cv_tmp(c, "neg") : milk_cv_out(c, 0),
                                x, -INFINITY, false, &neg));
    out = pos ? pos : neg;
    if (both) MILK_TRY(milk_lw_binary(c, "logical_or", milk_cv_out(c, 0), pos, neg, &out));
    return milk_cv_set_out(c, 0, out);
}

/* ---- Asinh, Acosh ----------------------------------------------------------------------- */

/* log(a + sqrt(a^2 + k)) for a = |x| (asinh, k = 1, sign restored after)
 * or a = x (acosh, k = -1). */
static milk_status log_root(milk_cv *c, milk_var *a, double k, const char *name,
                            milk_var **out)
{
    milk_var *t;
    MILK_TRY(milk_lw_binary(c, "mul", milk_cv_tmp(c, "sq"), a, a, &t));
    MILK_TRY(milk_lw_scalar(c, "add", milk_cv_tmp(c, "shift"), t, k, false, &t));
    MILK_TRY(milk_cv_unary(c, "sqrt", milk_cv_tmp(c, "root"), t, &t));
    MILK_TRY(milk_lw_binary(c, "add", milk_cv_tmp(c, "arg"), a, t, &t));
    return milk_cv_unary(c, "log", name, t, out);
}

milk_status milk_lower_asinh(milk_cv *c, const milk_onnx_node *n)
{
    milk_var *x, *a, *s, *out;
    MILK_TRY(milk_cv_input(c, 0, &x));
    MILK_TRY(milk_cv_unary(c, "abs", milk_cv_tmp(c, "abs"), x, &a));
    MILK_TRY(log_root(c, a, 1.0, milk_cv_tmp(c, "mag"), &a));
    MILK_TRY(milk_cv_unary(c, "sign", milk_cv_tmp(c, "sign"), x, &s));
    MILK_TRY(milk_lw_binary(c, "mul", milk_cv_out(c, 0), s, a, &out));
    return milk_cv_set_out(c, 0, out);
}

milk_status milk_lower_acosh(milk_cv *c, const milk_onnx_node *n)
{
    milk_var *x, *out;
    MILK_TRY(milk_cv_input(c, 0, &x));
    MILK_TRY(log_root(c, x, -1.0, milk_cv_out(c, 0), &out));
    return milk_cv_set_out(c, 0, out);
}
