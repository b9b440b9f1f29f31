/* lower_index.c: lowerings of the ops that pick elements by position or
 * rank: ArgMax, ArgMin, TopK, CumSum, GatherElements, OneHot, Compress,
 * Trilu and Einsum. Indices MIL needs at conversion time (Compress's
 * condition, TopK's k) must be constants; indices known only at run time
 * are wrapped into range with select (MIL from iOS17 refuses negative
 * indices, docs/coreml-format.md 7.6). */
#include "lower_util.h"

#include <stdlib.h>

/* The most elements of a constant these lowerings build in memory. */
#define MAX_BUILD (INT64_C(1) << 22)

/* A const of type t filled by fill(i, ctx) for each flat index i. */
static milk_status build_const(milk_cv *c, const char *name,
                               const milk_tensor_type *t,
                               void (*fill)(void *data, int64_t i, const void *arg),
                               const void *arg, milk_var **out)
{
    int64_t n = milk_tensor_type_count(t);
    uint64_t nb;
    if (n < 0 || n > MAX_BUILD || !milk_dtype_nbytes(t->dtype, n, &nb))
        return milk_cv_unsupported(c, "a constant of %lld elements", (long long)n);
    void *data = malloc(nb ? (size_t)nb : 1);
    if (!data) return milk_errorf(c->ctx, MILK_ERR_NOMEM, "out of memory");
    for (int64_t i = 0; i < n; i++) fill(data, i, arg);
    milk_status s = milk_cv_const(c, name, t, data, out);
    free(data);
    return s;
}

static void fill_iota(void *data, int64_t i, const void *arg)
{
    ((int32_t *)data)[i] = (int32_t)i;
}

/* 0, 1, ..., len - 1 along axis `axis` of a rank-r int32 const, 1 elsewhere. */
static milk_status iota(milk_cv *c, int64_t len, int axis, int r, milk_var **out)
{
    milk_tensor_type t = {MILK_DTYPE_INT32, r, {0}};
    for (int i = 0; i < r; i++) t.dims[i] = i == axis ? len : 1;
    return build_const(c, milk_cv_tmp(c, "iota"), &t, fill_iota, NULL, out);
}

/* ---- ArgMax, ArgMin ------------------------------------------------------------- */

/* reduce_argmax / reduce_argmin (first index among ties); with
 * select_last_index, on x reversed along the axis, the index mirrored. */
milk_status milk_lower_arg(milk_cv *c, const milk_onnx_node *n)
{
    bool max = strcmp(n->op_type, "ArgMax") == 0;
    milk_var *x, *out;
    int64_t axis, keep, last;
    int a;
    MILK_TRY(milk_cv_input(c, 0, &x));
    MILK_TRY(milk_cv_attr_int(c, "axis", 0, &axis));
    MILK_TRY(milk_cv_attr_int(c, "keepdims", 1, &keep));
    MILK_TRY(milk_cv_attr_int(c, "select_last_index", 0, &last));
    MILK_TRY(milk_cv_axis(c, "attribute 'axis':", axis, x->type.rank, &a));
    int64_t ax = a;
    if (last) {
        milk_cv_op o;
        milk_cv_op_begin(&o, c, "reverse", milk_cv_tmp(c, "reversed"));
        milk_cv_arg(&o, "x", x);
        milk_cv_arg_ints(&o, "axes", &ax, 1);
        MILK_TRY(milk_cv_op_end(&o, &x));
    }
    milk_cv_op o;
    milk_cv_op_begin(&o, c, max ? "reduce_argmax" : "reduce_argmin",
                     last ? milk_cv_tmp(c, "arg") : milk_cv_out(c, 0));
    milk_cv_arg(&o, "x", x);
    milk_cv_arg_int(&o, "axis", a);
    milk_cv_arg_bool(&o, "keep_dims", keep != 0);
    MILK_TRY(milk_cv_op_end(&o, &out));
    if (last) /* (len - 1) - index in the reversed order */
        MILK_TRY(milk_lw_scalar(c, "sub", milk_cv_out(c, 0), out,
                                (double)(x->type.dims[a] - 1), true, &out));
    return milk_cv_set_out(c, 0, out);
}

/* ---- TopK ------------------------------------------------------------------------- */

milk_status milk_lower_topk(milk_cv *c, const milk_onnx_node *n)
{
    milk_var *x, *outs[2];
    int64_t axis, largest, k;
    int a, cnt, got;
    MILK_TRY(milk_cv_input(c, 0, &x));
    MILK_TRY(milk_cv_attr_int(c, "axis", -1, &axis));
    MILK_TRY(milk_cv_attr_int(c, "largest", 1, &largest));
    if (c->opset < 10) MILK_TRY(milk_cv_attr_int(c, "k", 0, &k));
    else MILK_TRY(milk_cv_const_ints(c, 1, &k, 1, &cnt));
    MILK_TRY(milk_cv_axis(c, "attribute 'axis':", axis, x->type.rank, &a));
    if (k < 1 || k > x->type.dims[a])
        return milk_cv_unsupported(c, "k = %lld for an axis of %lld", (long long)k,
                                   (long long)x->type.dims[a]);
    /* always sorted: an order ONNX's sorted=0 allows too */
    milk_cv_op o;
    milk_cv_op_begin(&o, c, "topk", milk_cv_tmp(c, "topk"));
    milk_cv_arg(&o, "x", x);
    milk_cv_arg_int(&o, "k", k);
    milk_cv_arg_int(&o, "axis", a);
    milk_cv_arg_bool(&o, "ascending", !largest);
    MILK_TRY(milk_cv_op_end_multi(&o, outs, 2, &got));
    for (int i = 0; i < got; i++) {
        if (!milk_cv_has_out(c, i)) continue;
        MILK_TRY(milk_var_set_name(c->ctx, outs[i], milk_cv_out(c, i)));
        MILK_TRY(milk_cv_set_out(c, i, outs[i]));
    }
    return MILK_OK;
}

/* ---- CumSum ------------------------------------------------------------------------- */

milk_status milk_lower_cumsum(milk_cv *c, const milk_onnx_node *n)
{
    milk_var *x, *out;
    int64_t axis, exclusive, reverse;
    int a, cnt;
    MILK_TRY(milk_cv_input(c, 0, &x));
    MILK_TRY(milk_cv_const_ints(c, 1, &axis, 1, &cnt));
    MILK_TRY(milk_cv_attr_int(c, "exclusive", 0, &exclusive));
    MILK_TRY(milk_cv_attr_int(c, "reverse", 0, &reverse));
    MILK_TRY(milk_cv_axis(c, "input 'axis':", axis, x->type.rank, &a));
    milk_cv_op o;
    milk_cv_op_begin(&o, c, "cumsum", milk_cv_out(c, 0));
    milk_cv_arg(&o, "x", x);
    milk_cv_arg_int(&o, "axis", a);
    milk_cv_arg_bool(&o, "exclusive", exclusive != 0);
    milk_cv_arg_bool(&o, "reverse", reverse != 0);
    MILK_TRY(milk_cv_op_end(&o, &out));
    return milk_cv_set_out(c, 0, out);
}

/* ---- GatherElements ---------------------------------------------------------------- */

milk_status milk_lower_gather_elements(milk_cv *c, const milk_onnx_node *n)
{
    milk_var *x, *idx, *out;
    int64_t axis;
    int a;
    MILK_TRY(milk_cv_input(c, 0, &x));
    MILK_TRY(milk_cv_input(c, 1, &idx));
    MILK_TRY(milk_cv_attr_int(c, "axis", 0, &axis));
    MILK_TRY(milk_cv_axis(c, "attribute 'axis':", axis, x->type.rank, &a));
    if (idx->type.dtype != MILK_DTYPE_INT32)
        return milk_cv_fail(c, MILK_ERR_INVALID_MODEL, "indices of dtype %s",
                            milk_dtype_name(idx->type.dtype));
    MILK_TRY(milk_lw_wrap_index(c, idx, x->type.dims[a], &idx));
    milk_cv_op o;
    milk_cv_op_begin(&o, c, "gather_along_axis", milk_cv_out(c, 0));
    milk_cv_arg(&o, "x", x);
    milk_cv_arg(&o, "indices", idx);
    milk_cv_arg_int(&o, "axis", a);
    MILK_TRY(milk_cv_op_end(&o, &out));
    return milk_cv_set_out(c, 0, out);
}

/* ---- OneHot ------------------------------------------------------------------------- */

/* select(equal(expand_dims(indices, axis), iota), on, off); negative
 * indices count from depth, out-of-range ones match nothing (all off). */
milk_status milk_lower_one_hot(milk_cv *c, const milk_onnx_node *n)
{
    milk_var *idx, *io, *eq, *on, *off, *out;
    milk_tensor_type vt;
    double depth_v, vals[2];
    int64_t axis;
    int cnt, a;
    MILK_TRY(milk_cv_input(c, 0, &idx));
    MILK_TRY(milk_cv_const_floats(c, 1, &depth_v, 1, &cnt));
    MILK_TRY(milk_cv_const_floats(c, 2, vals, 2, &cnt));
    MILK_TRY(milk_cv_type(c, 2, &vt));
    MILK_TRY(milk_cv_attr_int(c, "axis", -1, &axis));
    if (cnt != 2) return milk_cv_fail(c, MILK_ERR_INVALID_MODEL, "values has %d "
                                      "elements, not 2", cnt);
    if (!(depth_v >= 1 && depth_v <= (double)MAX_BUILD))
        return milk_cv_unsupported(c, "depth %g", depth_v);
    int64_t depth = (int64_t)depth_v;
    int r = idx->type.rank + 1;
    MILK_TRY(milk_cv_axis(c, "attribute 'axis':", axis, r, &a));
    MILK_TRY(milk_lw_cast(c, milk_cv_tmp(c, "int"), idx, MILK_DTYPE_INT32, &idx));
    MILK_TRY(milk_lw_wrap_index(c, idx, depth, &idx));
    int64_t ax = a;
    milk_cv_op o;
    milk_cv_op_begin(&o, c, "expand_dims", milk_cv_tmp(c, "expanded"));
    milk_cv_arg(&o, "x", idx);
    milk_cv_arg_ints(&o, "axes", &ax, 1);
    MILK_TRY(milk_cv_op_end(&o, &idx));
    MILK_TRY(iota(c, depth, a, r, &io));
    MILK_TRY(milk_lw_binary(c, "equal", milk_cv_tmp(c, "hot"), idx, io, &eq));
    MILK_TRY(milk_lw_scalar_const(c, milk_cv_tmp(c, "off"), vt.dtype, vals[0], &off));
    MILK_TRY(milk_lw_scalar_const(c, milk_cv_tmp(c, "on"), vt.dtype, vals[1], &on));
    milk_cv_op_begin(&o, c, "select", milk_cv_out(c, 0));
    milk_cv_arg(&o, "cond", eq);
    milk_cv_arg(&o, "a", on);
    milk_cv_arg(&o, "b", off);
    MILK_TRY(milk_cv_op_end(&o, &out));
    return milk_cv_set_out(c, 0, out);
}

/* ---- Compress ------------------------------------------------------------------------ */

/* gather of the positions where the constant condition holds (along axis,
 * or over the flattened input when there is none). */
milk_status milk_lower_compress(milk_cv *c, const milk_onnx_node *n)
{
    milk_var *x, *idx, *out;
    milk_tensor_type ct;
    int64_t axis = 0;
    int a = 0, k = 0, cnt;
    MILK_TRY(milk_cv_input(c, 0, &x));
    MILK_TRY(milk_cv_type(c, 1, &ct));
    int64_t len = milk_tensor_type_count(&ct);
    if (len > MAX_BUILD) return milk_cv_unsupported(c, "a condition of %lld", (long long)len);
    int64_t *cond = malloc((size_t)(len ? len : 1) * sizeof *cond);
    int32_t *pos = malloc((size_t)(len ? len : 1) * sizeof *pos);
    milk_status s = cond && pos ? milk_cv_const_ints(c, 1, cond, (int)len, &cnt)
                                : milk_errorf(c->ctx, MILK_ERR_NOMEM, "out of memory");
    bool has_axis = milk_cv_attr(c, "axis") != NULL;
    if (s == MILK_OK && has_axis) s = milk_cv_attr_int(c, "axis", 0, &axis);
    if (s == MILK_OK && has_axis) s = milk_cv_axis(c, "attribute 'axis':", axis,
                                                   x->type.rank, &a);
    int64_t dim = has_axis ? x->type.dims[a] : milk_tensor_type_count(&x->type);
    for (int64_t i = 0; s == MILK_OK && i < len && i < dim; i++)
        if (cond[i]) pos[k++] = (int32_t)i;
    if (s == MILK_OK && k == 0) s = milk_cv_unsupported(c, "an empty result");
    if (s == MILK_OK && !has_axis)
        s = milk_cv_reshape(c, milk_cv_tmp(c, "flat"), x, 1, &dim, &x);
    milk_tensor_type it = {MILK_DTYPE_INT32, 1, {k}};
    if (s == MILK_OK) s = milk_cv_const(c, milk_cv_tmp(c, "picked"), &it, pos, &idx);
    free(cond);
    free(pos);
    MILK_TRY(s);
    milk_cv_op o;
    milk_cv_op_begin(&o, c, "gather", milk_cv_out(c, 0));
    milk_cv_arg(&o, "x", x);
    milk_cv_arg(&o, "indices", idx);
    milk_cv_arg_int(&o, "axis", a);
    MILK_TRY(milk_cv_op_end(&o, &out));
    return milk_cv_set_out(c, 0, out);
}

/* ---- Trilu -------------------------------------------------------------------------- */

typedef struct tri_mask {
    int64_t cols, k;
    bool upper;
} tri_mask;

static void fill_tri(void *data, int64_t i, const void *arg)
{
    const tri_mask *m = arg;
    int64_t row = i / m->cols, col = i % m->cols;
    ((uint8_t *)data)[i] = m->upper ? col - row >= m->k : col - row <= m->k;
}

/* select(mask, x, 0) with a constant [rows, cols] mask of the kept
 * triangle (upper: col - row >= k; lower: col - row <= k). */
milk_status milk_lower_trilu(milk_cv *c, const milk_onnx_node *n)
{
    milk_var *x, *mask, *zero, *out;
    int64_t upper, k = 0;
    int cnt;
    MILK_TRY(milk_cv_input(c, 0, &x));
    MILK_TRY(milk_cv_attr_int(c, "upper", 1, &upper));
    if (milk_cv_has(c, 1)) MILK_TRY(milk_cv_const_ints(c, 1, &k, 1, &cnt));
    int r = x->type.rank;
    if (r < 2) return milk_cv_fail(c, MILK_ERR_INVALID_MODEL, "input of rank %d", r);
    tri_mask m = {x->type.dims[r - 1], k, upper != 0};
    milk_tensor_type t = {MILK_DTYPE_BOOL, 2, {x->type.dims[r - 2], m.cols}};
    MILK_TRY(build_const(c, milk_cv_tmp(c, "mask"), &t, fill_tri, &m, &mask));
    MILK_TRY(milk_lw_scalar_const(c, milk_cv_tmp(c, "zero"), x->type.dtype, 0, &zero));
    milk_cv_op o;
    milk_cv_op_begin(&o, c, "select", milk_cv_out(c, 0));
    milk_cv_arg(&o, "cond", mask);
    milk_cv_arg(&o, "a", x);
    milk_cv_arg(&o, "b", zero);
    MILK_TRY(milk_cv_op_end(&o, &out));
    return milk_cv_set_out(c, 0, out);
}

/* ---- Einsum --------------------------------------------------------------------------- */

/* MIL's einsum: two operands, the batched products it defines on dims -1
 * and -3 ("nchw,nwhu->nchu", "chw,whr->chr" up to relabeling); its type
 * inference refuses other equations. */
milk_status milk_lower_einsum(milk_cv *c, const milk_onnx_node *n)
{
    milk_var *a, *b, *out;
    const char *eq;
    MILK_TRY(milk_cv_attr_str(c, "equation", "", &eq));
    if (n->n_inputs != 2)
        return milk_cv_unsupported(c, "%d operands (MIL's einsum takes two)",
                                   n->n_inputs);
    MILK_TRY(milk_cv_input(c, 0, &a));
    MILK_TRY(milk_cv_input(c, 1, &b));
    milk_cv_op o;
    milk_cv_op_begin(&o, c, "einsum", milk_cv_out(c, 0));
    milk_cv_arg(&o, "values", a);
    milk_cv_arg(&o, "values", b);
    milk_cv_arg_str(&o, "equation", eq);
    MILK_TRY(milk_cv_op_end(&o, &out));
    return milk_cv_set_out(c, 0, out);
}
