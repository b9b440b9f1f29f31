/* lower_elementwise.c: lowerings of ONNX's element-wise ops (arithmetic,
 * comparisons, activations, Softmax, Where, Cast) and the no-ops
 * (Identity, Dropout). */
#include "convert.h"


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
    {"Add", "add"},      {"Sub", "sub"}, {"Mul", "mul"},
    {"Div", "real_div"}, {"Pow", "pow"}, {"Equal", "equal"},
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

milk_status milk_lower_binary(milk_cv *c, const milk_onnx_node *n)
{
    const char *mil = map_name(binary_ops, MILK_ARRAY_LEN(binary_ops), n->op_type);
    milk_var *x, *y, *out;
    MILK_TRY(milk_cv_input(c, 0, &x));
    MILK_TRY(milk_cv_input(c, 1, &y));
    MILK_TRY(same_dtype(c, x, &y));
    /* Integer division at run time: Core ML's real_div is for floats; the
     * operands of shape arithmetic are constants and fold exactly. */
    if (strcmp(mil, "real_div") == 0 && x->type.dtype == MILK_DTYPE_INT32 &&
        !(milk_var_const(x) && milk_var_const(y)) &&
        milk_op_kind_from_name("floor_div") >= 0)
        mil = "floor_div";
    milk_cv_op o;
    milk_cv_op_begin(&o, c, mil, milk_cv_out(c, 0));
    milk_cv_arg(&o, "x", x);
    milk_cv_arg(&o, "y", y);
    MILK_TRY(milk_cv_op_end(&o, &out));
    return milk_cv_set_out(c, 0, out);
}

/* ---- unary -------------------------------------------------------------------- */

static const char *const unary_ops[][2] = {
    {"Sqrt", "sqrt"}, {"Exp", "exp"},   {"Log", "log"},         {"Abs", "abs"},
    {"Erf", "erf"},   {"Tanh", "tanh"}, {"Sigmoid", "sigmoid"}, {"Relu", "relu"},
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
    int64_t flat[2] = {1, 1};
    for (int i = 0; i < t->rank; i++) flat[i >= axis] *= t->dims[i];
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

milk_status milk_lower_cast(milk_cv *c, const milk_onnx_node *n)
{
    int64_t to;
    milk_var *x, *out;
    MILK_TRY(milk_cv_attr_int(c, "to", 0, &to));
    milk_dtype dt = milk_cv_dtype((int32_t)to);
    if (dt == MILK_DTYPE_INVALID) {
        const char *nm = milk_onnx_dtype_name((int32_t)to);
        return milk_cv_unsupported(c, "attribute 'to': %s has no MIL "
                                   "equivalent", nm ? nm : "an unknown type");
    }
    MILK_TRY(milk_cv_input(c, 0, &x));
    if (x->type.dtype == dt) return milk_cv_set_out(c, 0, x);
    MILK_TRY(milk_cv_cast(c, milk_cv_out(c, 0), x, dt, &out));
    return milk_cv_set_out(c, 0, out);
}

/* Output 0 is input 0 itself; a constant stays a constant. */
milk_status milk_lower_identity(milk_cv *c, const milk_onnx_node *n)
{
    if (strcmp(n->op_type, "Dropout") == 0 && milk_cv_has(c, 2)) {
        int64_t v[1] = {0};
        int cnt;
        MILK_TRY(milk_cv_const_ints(c, 2, v, 1, &cnt));
        if (v[0]) return milk_cv_unsupported(c, "training_mode is true");
    }
    if (milk_cv_has_out(c, 1))
        return milk_cv_unsupported(c, "the mask output is not supported");
    milk_cv_value *in = milk_cv_value_get(c, n->inputs[0]);
    if (!milk_cv_has(c, 0) || !in || !in->defined) {
        milk_var *x;
        return milk_cv_input(c, 0, &x); /* fails with the reason */
    }
    if (!in->var) return milk_cv_set_out_tensor(c, 0, in->tensor);
    return milk_cv_set_out(c, 0, in->var);
}
