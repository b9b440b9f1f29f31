/* lower_elementwise.c: lowerings of ONNX's element-wise ops that map to
 * one MIL op each (arithmetic, comparisons, logic, unary math), the first
 * activations, Softmax, Where, Cast and CastLike, and the no-ops
 * (Identity, Dropout). */
#include "lower_util.h"

#include <stdlib.h>


/* The MIL op for an ONNX op type in a small name table, or NULL. */
static const char *map_name(const char *const (*tab)[2], size_t n,
                            const char *onnx)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(tab[i][0], onnx) == 0) return tab[i][1];
    return NULL;
}

/* ---- binary ----------------------------------------------------------------- */

static const char *const binary_ops[][2] = {
    {"Add", "add"},           {"Sub", "sub"},
    {"Mul", "mul"},           {"Div", "real_div"},
    {"Pow", "pow"},           {"Equal", "equal"},
    {"Less", "less"},         {"LessOrEqual", "less_equal"},
    {"Greater", "greater"},   {"GreaterOrEqual", "greater_equal"},
    {"And", "logical_and"},   {"Or", "logical_or"},
    {"Xor", "logical_xor"},
};

/* MIL wants both operands of one dtype; ONNX lets Pow's exponent differ.
 * Cast the exponent (folded when it is a constant). */
static milk_status same_dtype(milk_cv *c, milk_var *x, milk_var **y)
{
    if (x->type.dtype == (*y)->type.dtype) return MILK_OK;
    if (strcmp(c->node->op_type, "Pow") != 0)
        return milk_cv_fail(c, MILK_ERR_INVALID_MODEL,
                            "inputs of different dtypes (%s, %s)",
                            milk_dtype_name(x->type.dtype),
                            milk_dtype_name((*y)->type.dtype));
    return milk_cv_cast(c, milk_cv_tmp(c, "exponent"), *y, x->type.dtype, y);
}

/* ONNX's integer Div truncates toward zero, as C does; MIL's integer
 * division at run time is floor_div, which rounds toward -inf. Exactly:
 * x / y = sign(x) * sign(y) * floor_div(|x|, |y|). (Constant operands fold
 * exactly in real_div's kernel, which truncates.) */
static milk_status int_div(milk_cv *c, milk_var *x, milk_var *y)
{
    milk_var *ax, *ay, *q, *sx, *sy, *s, *out;
    MILK_TRY(milk_cv_unary(c, "abs", milk_cv_tmp(c, "abs_x"), x, &ax));
    MILK_TRY(milk_cv_unary(c, "abs", milk_cv_tmp(c, "abs_y"), y, &ay));
    MILK_TRY(milk_lw_binary(c, "floor_div", milk_cv_tmp(c, "abs_q"), ax, ay, &q));
    MILK_TRY(milk_cv_unary(c, "sign", milk_cv_tmp(c, "sign_x"), x, &sx));
    MILK_TRY(milk_cv_unary(c, "sign", milk_cv_tmp(c, "sign_y"), y, &sy));
    MILK_TRY(milk_lw_binary(c, "mul", milk_cv_tmp(c, "sign"), sx, sy, &s));
    MILK_TRY(milk_lw_binary(c, "mul", milk_cv_out(c, 0), s, q, &out));
    return milk_cv_set_out(c, 0, out);
}

milk_status milk_lower_binary(milk_cv *c, const milk_onnx_node *n)
{
    const char *mil = map_name(binary_ops, MILK_ARRAY_LEN(binary_ops), n->op_type);
    milk_var *x, *y, *out;
    MILK_TRY(milk_cv_input(c, 0, &x));
    MILK_TRY(milk_cv_input(c, 1, &y));
    MILK_TRY(same_dtype(c, x, &y));
    /* MIL compares numbers only: bool equality is not(xor) */
    if (strcmp(mil, "equal") == 0 && x->type.dtype == MILK_DTYPE_BOOL) {
        MILK_TRY(milk_lw_binary(c, "logical_xor", milk_cv_tmp(c, "xor"), x, y, &out));
        MILK_TRY(milk_cv_unary(c, "logical_not", milk_cv_out(c, 0), out, &out));
        return milk_cv_set_out(c, 0, out);
    }
    if (strcmp(mil, "real_div") == 0 && x->type.dtype == MILK_DTYPE_INT32 &&
        !(milk_var_const(x) && milk_var_const(y)))
        return int_div(c, x, y);
    milk_cv_op o;
    milk_cv_op_begin(&o, c, mil, milk_cv_out(c, 0));
    milk_cv_arg(&o, "x", x);
    milk_cv_arg(&o, "y", y);
    MILK_TRY(milk_cv_op_end(&o, &out));
    return milk_cv_set_out(c, 0, out);
}

/* ---- unary -------------------------------------------------------------------- */

static const char *const unary_ops[][2] = {
    {"Sqrt", "sqrt"},         {"Exp", "exp"},   {"Log", "log"},
    {"Abs", "abs"},           {"Erf", "erf"},   {"Tanh", "tanh"},
    {"Sigmoid", "sigmoid"},   {"Relu", "relu"}, {"Floor", "floor"},
    {"Ceil", "ceil"},         {"Round", "round"}, {"Sign", "sign"},
    {"Sin", "sin"},           {"Cos", "cos"},   {"Tan", "tan"},
    {"Asin", "asin"},         {"Acos", "acos"}, {"Atan", "atan"},
    {"Sinh", "sinh"},         {"Cosh", "cosh"}, {"Atanh", "atanh"},
    {"Softplus", "softplus"}, {"Softsign", "softsign"},
    {"Not", "logical_not"},
};

milk_status milk_lower_unary(milk_cv *c, const milk_onnx_node *n)
{
    const char *mil = map_name(unary_ops, MILK_ARRAY_LEN(unary_ops), n->op_type);
    milk_var *x, *out;
    MILK_TRY(milk_cv_input(c, 0, &x));
    MILK_TRY(milk_cv_unary(c, mil, milk_cv_out(c, 0), x, &out));
    return milk_cv_set_out(c, 0, out);
}

/* x * k (or k / x) with k a scalar const of x's dtype. */
static milk_status scalar_op(milk_cv *c, const char *type, milk_var *x,
                             double k, bool k_first, milk_var **out)
{
    milk_var *kv;
    milk_tensor_type t = {x->type.dtype, 0, {0}};
    int32_t ki = (int32_t)k;
    float kf = (float)k;
    uint16_t kh = milk_fp32_to_fp16(kf);
    const void *data = t.dtype == MILK_DTYPE_INT32   ? (const void *)&ki
                       : t.dtype == MILK_DTYPE_FP16 ? (const void *)&kh
                                                     : (const void *)&kf;
    if (t.dtype != MILK_DTYPE_INT32 && t.dtype != MILK_DTYPE_FP16 &&
        t.dtype != MILK_DTYPE_FP32)
        return milk_cv_unsupported(c, "input of dtype %s",
                                   milk_dtype_name(t.dtype));
    MILK_TRY(milk_cv_const(c, milk_cv_tmp(c, "k"), &t, data, &kv));
    milk_cv_op o;
    milk_cv_op_begin(&o, c, type, milk_cv_out(c, 0));
    milk_cv_arg(&o, "x", k_first ? kv : x);
    milk_cv_arg(&o, "y", k_first ? x : kv);
    return milk_cv_op_end(&o, out);
}

milk_status milk_lower_neg(milk_cv *c, const milk_onnx_node *n)
{
    milk_var *x, *out;
    MILK_TRY(milk_cv_input(c, 0, &x));
    MILK_TRY(scalar_op(c, "mul", x, -1.0, false, &out));
    return milk_cv_set_out(c, 0, out);
}

milk_status milk_lower_reciprocal(milk_cv *c, const milk_onnx_node *n)
{
    milk_var *x, *out;
    MILK_TRY(milk_cv_input(c, 0, &x));
    MILK_TRY(scalar_op(c, "real_div", x, 1.0, true, &out));
    return milk_cv_set_out(c, 0, out);
}

/* ---- activations -------------------------------------------------------------- */

milk_status milk_lower_leaky_relu(milk_cv *c, const milk_onnx_node *n)
{
    milk_var *x, *out;
    double alpha;
    MILK_TRY(milk_cv_input(c, 0, &x));
    MILK_TRY(milk_cv_attr_float(c, "alpha", 0.01, &alpha));
    milk_cv_op o;
    milk_cv_op_begin(&o, c, "leaky_relu", milk_cv_out(c, 0));
    milk_cv_arg(&o, "x", x);
    milk_cv_arg_float(&o, "alpha", alpha, milk_cv_float_dtype(x));
    MILK_TRY(milk_cv_op_end(&o, &out));
    return milk_cv_set_out(c, 0, out);
}

/* One bound of Clip: absent, a constant, or a run-time value. */
typedef struct clip_bound {
    bool given, is_const;
    double v;
    milk_var *var;
} clip_bound;

static milk_status clip_bound_read(milk_cv *c, int i, const char *attr,
                                   clip_bound *b)
{
    memset(b, 0, sizeof *b);
    if (c->opset < 11) { /* bounds were attributes */
        b->given = b->is_const = milk_cv_attr(c, attr) != NULL;
        return milk_cv_attr_float(c, attr, 0, &b->v);
    }
    if (!milk_cv_has(c, i)) return MILK_OK;
    b->given = true;
    b->is_const = milk_cv_is_const(c, i);
    if (b->is_const) {
        int cnt;
        return milk_cv_const_floats(c, i, &b->v, 1, &cnt);
    }
    return milk_cv_input(c, i, &b->var);
}

/* y = maximum or minimum of x and a bound. */
static milk_status clip_side(milk_cv *c, const char *type, milk_var *x,
                             const clip_bound *b, const char *name,
                             milk_var **out)
{
    milk_cv_op o;
    milk_cv_op_begin(&o, c, type, name);
    milk_cv_arg(&o, "x", x);
    if (b->is_const && x->type.dtype == MILK_DTYPE_INT32)
        milk_cv_arg_int(&o, "y", (int64_t)b->v);
    else if (b->is_const)
        milk_cv_arg_float(&o, "y", b->v, x->type.dtype);
    else
        milk_cv_arg(&o, "y", b->var);
    return milk_cv_op_end(&o, out);
}

milk_status milk_lower_clip(milk_cv *c, const milk_onnx_node *n)
{
    milk_var *x, *y;
    clip_bound lo, hi;
    MILK_TRY(milk_cv_input(c, 0, &x));
    MILK_TRY(clip_bound_read(c, 1, "min", &lo));
    MILK_TRY(clip_bound_read(c, 2, "max", &hi));
    bool is_float = x->type.dtype != MILK_DTYPE_INT32;
    if (is_float && lo.is_const && hi.is_const && lo.v < hi.v) {
        milk_cv_op o;
        milk_cv_op_begin(&o, c, "clip", milk_cv_out(c, 0));
        milk_cv_arg(&o, "x", x);
        milk_cv_arg_float(&o, "alpha", lo.v, x->type.dtype);
        milk_cv_arg_float(&o, "beta", hi.v, x->type.dtype);
        MILK_TRY(milk_cv_op_end(&o, &y));
        return milk_cv_set_out(c, 0, y);
    }
    if (!lo.given && !hi.given) return milk_cv_set_out(c, 0, x);
    y = x;
    if (lo.given)
        MILK_TRY(clip_side(c, "maximum", y, &lo,
                           hi.given ? milk_cv_tmp(c, "lo") : milk_cv_out(c, 0), &y));
    if (hi.given) MILK_TRY(clip_side(c, "minimum", y, &hi, milk_cv_out(c, 0), &y));
    return milk_cv_set_out(c, 0, y);
}

milk_status milk_lower_gelu(milk_cv *c, const milk_onnx_node *n)
{
    milk_var *x, *out;
    const char *approx, *mode;
    MILK_TRY(milk_cv_input(c, 0, &x));
    MILK_TRY(milk_cv_attr_str(c, "approximate", "none", &approx));
    if (strcmp(approx, "none") == 0) mode = "EXACT";
    else if (strcmp(approx, "tanh") == 0) mode = "TANH_APPROXIMATION";
    else return milk_cv_unsupported(c, "attribute 'approximate': '%s' is not "
                                    "'none' or 'tanh'", approx);
    milk_cv_op o;
    milk_cv_op_begin(&o, c, "gelu", milk_cv_out(c, 0));
    milk_cv_arg(&o, "x", x);
    milk_cv_arg_str(&o, "mode", mode);
    MILK_TRY(milk_cv_op_end(&o, &out));
    return milk_cv_set_out(c, 0, out);
}

static milk_status softmax_op(milk_cv *c, milk_var *x, int axis,
                              const char *name, milk_var **out)
{
    milk_cv_op o;
    milk_cv_op_begin(&o, c, "softmax", name);
    milk_cv_arg(&o, "x", x);
    milk_cv_arg_int(&o, "axis", axis);
    return milk_cv_op_end(&o, out);
}

/* Before opset 13 Softmax normalizes over all dims from axis on (the
 * input seen as a 2-D matrix): a reshape around a softmax on the last
 * dim, unless axis is already the last dim. */
static milk_status softmax_coerced(milk_cv *c, milk_var *x, int axis,
                                   milk_var **out)
{
    const milk_tensor_type *t = &x->type;
    if (axis == t->rank - 1) return softmax_op(c, x, -1, milk_cv_out(c, 0), out);
    int64_t flat[2] = {milk_dims_span(t->dims, 0, axis),
                       milk_dims_span(t->dims, axis, t->rank)};
    milk_var *x2, *y2;
    MILK_TRY(milk_cv_reshape(c, milk_cv_tmp(c, "2d"), x, 2, flat, &x2));
    MILK_TRY(softmax_op(c, x2, -1, milk_cv_tmp(c, "softmax"), &y2));
    return milk_cv_reshape(c, milk_cv_out(c, 0), y2, t->rank, t->dims, out);
}

milk_status milk_lower_softmax(milk_cv *c, const milk_onnx_node *n)
{
    milk_var *x, *out;
    int64_t axis;
    int a;
    MILK_TRY(milk_cv_input(c, 0, &x));
    MILK_TRY(milk_cv_attr_int(c, "axis", c->opset >= 13 ? -1 : 1, &axis));
    MILK_TRY(milk_cv_axis(c, "attribute 'axis':", axis, x->type.rank, &a));
    if (c->opset >= 13) MILK_TRY(softmax_op(c, x, a, milk_cv_out(c, 0), &out));
    else MILK_TRY(softmax_coerced(c, x, a, &out));
    return milk_cv_set_out(c, 0, out);
}

/* ---- selection and conversion ------------------------------------------------- */

milk_status milk_lower_where(milk_cv *c, const milk_onnx_node *n)
{
    milk_var *cond, *a, *b, *out;
    MILK_TRY(milk_cv_input(c, 0, &cond));
    MILK_TRY(milk_cv_input(c, 1, &a));
    MILK_TRY(milk_cv_input(c, 2, &b));
    milk_cv_op o;
    milk_cv_op_begin(&o, c, "select", milk_cv_out(c, 0));
    milk_cv_arg(&o, "cond", cond);
    milk_cv_arg(&o, "a", a);
    milk_cv_arg(&o, "b", b);
    MILK_TRY(milk_cv_op_end(&o, &out));
    return milk_cv_set_out(c, 0, out);
}

/* Cast's target from attribute 'to'; CastLike's from input 1's dtype. */
static milk_status cast_target(milk_cv *c, const milk_onnx_node *n,
                               milk_dtype *dt)
{
    int64_t to;
    if (strcmp(n->op_type, "CastLike") == 0) {
        milk_tensor_type t;
        MILK_TRY(milk_cv_type(c, 1, &t));
        *dt = t.dtype;
        return MILK_OK;
    }
    MILK_TRY(milk_cv_attr_int(c, "to", 0, &to));
    *dt = milk_cv_dtype((int32_t)to);
    if (*dt != MILK_DTYPE_INVALID) return MILK_OK;
    const char *nm = milk_onnx_dtype_name((int32_t)to);
    return milk_cv_unsupported(c, "attribute 'to': %s has no MIL equivalent",
                               nm ? nm : "an unknown type");
}

milk_status milk_lower_cast(milk_cv *c, const milk_onnx_node *n)
{
    milk_dtype dt;
    milk_var *x, *out;
    MILK_TRY(cast_target(c, n, &dt));
    MILK_TRY(milk_cv_input(c, 0, &x));
    if (x->type.dtype == dt) return milk_cv_set_out(c, 0, x);
    MILK_TRY(milk_cv_cast(c, milk_cv_out(c, 0), x, dt, &out));
    return milk_cv_set_out(c, 0, out);
}

/* Dropout at inference: the mask is all true (opset 10+; before, of x's
 * dtype, all ones); in training mode only ratio 0 is deterministic. */
static milk_status dropout_check(milk_cv *c)
{
    int64_t training = 0;
    double ratio = 0.5;
    int cnt;
    if (c->opset >= 12 && milk_cv_has(c, 2))
        MILK_TRY(milk_cv_const_ints(c, 2, &training, 1, &cnt));
    if (!training) return MILK_OK;
    if (milk_cv_has(c, 1)) MILK_TRY(milk_cv_const_floats(c, 1, &ratio, 1, &cnt));
    if (ratio != 0)
        return milk_cv_unsupported(c, "training_mode with ratio %g: a random "
                                   "mask, which no conversion reproduces", ratio);
    return MILK_OK;
}

static milk_status dropout_mask(milk_cv *c, const milk_tensor_type *xt)
{
    milk_tensor_type t = *xt;
    int64_t n = milk_tensor_type_count(&t);
    uint64_t nb;
    if (c->opset >= 10) t.dtype = MILK_DTYPE_BOOL;
    if (n < 0 || n > (INT64_C(1) << 24) || !milk_dtype_nbytes(t.dtype, n, &nb))
        return milk_cv_unsupported(c, "a mask of %lld elements", (long long)n);
    void *ones = malloc(nb ? (size_t)nb : 1);
    if (!ones) return milk_errorf(c->ctx, MILK_ERR_NOMEM, "out of memory");
    for (int64_t i = 0; i < n; i++) {
        if (t.dtype == MILK_DTYPE_BOOL) ((uint8_t *)ones)[i] = 1;
        else if (t.dtype == MILK_DTYPE_FP16) ((uint16_t *)ones)[i] = milk_fp32_to_fp16(1.0f);
        else if (t.dtype == MILK_DTYPE_INT32) ((int32_t *)ones)[i] = 1;
        else ((float *)ones)[i] = 1.0f;
    }
    milk_status s = milk_cv_set_out_const(c, 1, &t, ones);
    free(ones);
    return s;
}

/* Output 0 is input 0 itself; a constant stays a constant. */
milk_status milk_lower_identity(milk_cv *c, const milk_onnx_node *n)
{
    bool dropout = strcmp(n->op_type, "Dropout") == 0;
    if (dropout) MILK_TRY(dropout_check(c));
    milk_cv_value *in = milk_cv_value_get(c, n->inputs[0]);
    if (!milk_cv_has(c, 0) || !in || !in->defined) {
        milk_var *x;
        return milk_cv_input(c, 0, &x); /* fails with the reason */
    }
    if (dropout && milk_cv_has_out(c, 1)) {
        milk_tensor_type xt;
        MILK_TRY(milk_cv_type(c, 0, &xt));
        MILK_TRY(dropout_mask(c, &xt));
    }
    if (!in->var) return milk_cv_set_out_tensor(c, 0, in->tensor);
    return milk_cv_set_out(c, 0, in->var);
}
