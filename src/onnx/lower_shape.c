/* lower_shape.c: lowerings of the ops that move elements around without
 * computing on them: Flatten, Reshape, Transpose, Squeeze, Unsqueeze,
 * Concat, Split, Slice, Gather, Shape, Expand, Pad. Shapes are static
 * here (every graph input has one, and shape arithmetic folds), so shapes,
 * axes and bounds are resolved at conversion time and MIL gets explicit
 * values: no 0 or -1 in reshape targets, no negative slice bounds. */
#include "lower_util.h"

#include <stdio.h>
#include <stdlib.h>

/* Integers from input i if given (opset 13+ style) or attribute `attr`
 * (older opsets); *n = -1 if neither is present. */
static milk_status ints_input_or_attr(milk_cv *c, int i, const char *attr,
                                      int64_t *v, int max, int *n)
{
    if (milk_cv_has(c, i)) return milk_cv_const_ints(c, i, v, max, n);
    return milk_cv_attr_ints(c, attr, v, max, n);
}

/* Normalize and sort axes, refusing duplicates. */
static milk_status axes_norm(milk_cv *c, int64_t *axes, int n, int rank)
{
    for (int i = 0; i < n; i++) {
        int a;
        MILK_TRY(milk_cv_axis(c, "axis", axes[i], rank, &a));
        axes[i] = a;
    }
    for (int i = 1; i < n; i++)
        for (int j = i; j > 0 && axes[j - 1] > axes[j]; j--) {
            int64_t t = axes[j];
            axes[j] = axes[j - 1];
            axes[j - 1] = t;
        }
    for (int i = 1; i < n; i++)
        if (axes[i] == axes[i - 1])
            return milk_cv_fail(c, MILK_ERR_INVALID_MODEL, "axis %lld repeated",
                                (long long)axes[i]);
    return MILK_OK;
}

/* ---- reshapes ------------------------------------------------------------------ */

milk_status milk_lower_flatten(milk_cv *c, const milk_onnx_node *n)
{
    milk_var *x, *out;
    int64_t axis, dims[2] = {1, 1};
    MILK_TRY(milk_cv_input(c, 0, &x));
    MILK_TRY(milk_cv_attr_int(c, "axis", 1, &axis));
    int r = x->type.rank;
    if (axis < -r || axis > r)
        return milk_cv_fail(c, MILK_ERR_INVALID_MODEL, "axis %lld for rank %d",
                            (long long)axis, r);
    if (axis < 0) axis += r;
    milk_dims_count(x->type.dims, (int)axis, &dims[0]);
    milk_dims_count(x->type.dims + axis, r - (int)axis, &dims[1]);
    MILK_TRY(milk_cv_reshape(c, milk_cv_out(c, 0), x, 2, dims, &out));
    return milk_cv_set_out(c, 0, out);
}

/* ONNX's reshape target with 0 (copy the dim, unless allowzero) and -1
 * (inferred) resolved against x's static shape. */
static milk_status reshape_target(milk_cv *c, const milk_tensor_type *x,
                                  int64_t *v, int n, bool allowzero)
{
    int neg = -1, n_known = 0;
    int64_t known_dims[MILK_MAX_RANK], known, total = milk_tensor_type_count(x);
    for (int i = 0; i < n; i++) {
        if (v[i] == 0 && allowzero)
            return milk_cv_unsupported(c, "a 0 dim with allowzero=1 (empty "
                                       "tensor)");
        if (v[i] == 0 && i >= x->rank)
            return milk_cv_fail(c, MILK_ERR_INVALID_MODEL, "shape entry %d is 0 "
                                "but the input has rank %d", i, (int)x->rank);
        if (v[i] == 0) v[i] = x->dims[i];
        if (v[i] == -1 && neg < 0) { neg = i; continue; }
        if (v[i] < 1)
            return milk_cv_fail(c, MILK_ERR_INVALID_MODEL, "shape entry %d is "
                                "%lld", i, (long long)v[i]);
        known_dims[n_known++] = v[i];
    }
    if (!milk_dims_count(known_dims, n_known, &known))
        return milk_cv_fail(c, MILK_ERR_INVALID_MODEL, "the target shape holds "
                            "more than 2^40 elements");
    if (neg >= 0 && known > 0 && total % known == 0) v[neg] = total / known;
    else if (neg >= 0 || known != total)
        return milk_cv_fail(c, MILK_ERR_INVALID_MODEL, "cannot reshape %lld "
                            "elements to the target shape", (long long)total);
    return MILK_OK;
}

milk_status milk_lower_reshape(milk_cv *c, const milk_onnx_node *n)
{
    milk_var *x, *out;
    int64_t v[MILK_MAX_RANK], allowzero;
    int k;
    MILK_TRY(milk_cv_input(c, 0, &x));
    MILK_TRY(milk_cv_attr_int(c, "allowzero", 0, &allowzero));
    if (c->opset < 5) MILK_TRY(milk_cv_attr_ints(c, "shape", v, MILK_MAX_RANK, &k));
    else MILK_TRY(milk_cv_const_ints(c, 1, v, MILK_MAX_RANK, &k));
    if (k < 0) return milk_cv_fail(c, MILK_ERR_INVALID_MODEL, "no shape");
    MILK_TRY(reshape_target(c, &x->type, v, k, allowzero != 0));
    MILK_TRY(milk_cv_reshape(c, milk_cv_out(c, 0), x, k, v, &out));
    return milk_cv_set_out(c, 0, out);
}

milk_status milk_lower_transpose(milk_cv *c, const milk_onnx_node *n)
{
    milk_var *x, *out;
    int64_t perm[MILK_MAX_RANK];
    int k;
    MILK_TRY(milk_cv_input(c, 0, &x));
    MILK_TRY(milk_cv_attr_ints(c, "perm", perm, MILK_MAX_RANK, &k));
    if (k < 0) {
        k = x->type.rank;
        for (int i = 0; i < k; i++) perm[i] = k - 1 - i;
    }
    milk_cv_op o;
    milk_cv_op_begin(&o, c, "transpose", milk_cv_out(c, 0));
    milk_cv_arg(&o, "x", x);
    milk_cv_arg_ints(&o, "perm", perm, k);
    MILK_TRY(milk_cv_op_end(&o, &out));
    return milk_cv_set_out(c, 0, out);
}

milk_status milk_lower_squeeze(milk_cv *c, const milk_onnx_node *n)
{
    milk_var *x, *out;
    int64_t axes[MILK_MAX_RANK], dims[MILK_MAX_RANK];
    int k, r;
    MILK_TRY(milk_cv_input(c, 0, &x));
    r = x->type.rank;
    MILK_TRY(ints_input_or_attr(c, 1, "axes", axes, MILK_MAX_RANK, &k));
    if (k < 0)
        for (int i = k = 0; i < r; i++)
            if (x->type.dims[i] == 1) axes[k++] = i;
    MILK_TRY(axes_norm(c, axes, k, r));
    int nd = 0;
    for (int i = 0, j = 0; i < r; i++) {
        if (j < k && axes[j] == i) {
            if (x->type.dims[i] != 1)
                return milk_cv_fail(c, MILK_ERR_INVALID_MODEL, "axis %d has "
                                    "size %lld, not 1", i, (long long)x->type.dims[i]);
            j++;
            continue;
        }
        dims[nd++] = x->type.dims[i];
    }
    if (k == 0) return milk_cv_set_out(c, 0, x);
    MILK_TRY(milk_cv_reshape(c, milk_cv_out(c, 0), x, nd, dims, &out));
    return milk_cv_set_out(c, 0, out);
}

milk_status milk_lower_unsqueeze(milk_cv *c, const milk_onnx_node *n)
{
    milk_var *x, *out;
    int64_t axes[MILK_MAX_RANK], dims[MILK_MAX_RANK];
    int k;
    MILK_TRY(milk_cv_input(c, 0, &x));
    MILK_TRY(ints_input_or_attr(c, 1, "axes", axes, MILK_MAX_RANK, &k));
    if (k <= 0) return milk_cv_fail(c, MILK_ERR_INVALID_MODEL, "no axes");
    int r = x->type.rank + k;
    if (r > MILK_MAX_RANK)
        return milk_cv_unsupported(c, "output rank %d above %d", r, MILK_MAX_RANK);
    MILK_TRY(axes_norm(c, axes, k, r));
    for (int i = 0, j = 0, s = 0; i < r; i++)
        dims[i] = j < k && axes[j] == i ? (j++, 1) : x->type.dims[s++];
    /* expand_dims for tensors; a scalar (shape arithmetic) by reshape */
    if (x->type.rank == 0) {
        MILK_TRY(milk_cv_reshape(c, milk_cv_out(c, 0), x, r, dims, &out));
        return milk_cv_set_out(c, 0, out);
    }
    milk_cv_op o;
    milk_cv_op_begin(&o, c, "expand_dims", milk_cv_out(c, 0));
    milk_cv_arg(&o, "x", x);
    milk_cv_arg_ints(&o, "axes", axes, k);
    MILK_TRY(milk_cv_op_end(&o, &out));
    return milk_cv_set_out(c, 0, out);
}

/* ---- joining and splitting ------------------------------------------------------------ */

milk_status milk_lower_concat(milk_cv *c, const milk_onnx_node *n)
{
    milk_var *v, *out;
    int64_t axis;
    int a;
    MILK_TRY(milk_cv_attr_int(c, "axis", 0, &axis));
    if (n->n_inputs < 1 || n->n_inputs > MILK_CV_MAX_ARGS - 2)
        return milk_cv_unsupported(c, "%d inputs (1 to %d supported)",
                                   n->n_inputs, MILK_CV_MAX_ARGS - 2);
    MILK_TRY(milk_cv_input(c, 0, &v));
    MILK_TRY(milk_cv_axis(c, "attribute 'axis':", axis, v->type.rank, &a));
    milk_cv_op o;
    milk_cv_op_begin(&o, c, "concat", milk_cv_out(c, 0));
    for (int i = 0; i < n->n_inputs; i++) {
        MILK_TRY(milk_cv_input(c, i, &v));
        milk_cv_arg(&o, "values", v);
    }
    milk_cv_arg_int(&o, "axis", a);
    milk_cv_arg_bool(&o, "interleave", false);
    MILK_TRY(milk_cv_op_end(&o, &out));
    return milk_cv_set_out(c, 0, out);
}

/* The sizes of Split's pieces: given, or num_outputs pieces of
 * ceil(dim / n) with a smaller last one (opset 18), or equal pieces. */
static milk_status split_sizes(milk_cv *c, const milk_onnx_node *n,
                               int64_t dim, int64_t *sizes, int *k)
{
    int64_t parts;
    MILK_TRY(ints_input_or_attr(c, 1, "split", sizes, 64, k));
    if (*k >= 0) {
        int64_t sum = 0;
        for (int i = 0; i < *k; i++) sum += sizes[i];
        if (*k != n->n_outputs || sum != dim)
            return milk_cv_fail(c, MILK_ERR_INVALID_MODEL, "split sizes do not "
                                "add up to the axis size %lld over %d outputs",
                                (long long)dim, n->n_outputs);
        return MILK_OK;
    }
    MILK_TRY(milk_cv_attr_int(c, "num_outputs", n->n_outputs, &parts));
    if (parts != n->n_outputs || parts < 1 || parts > 64 || dim < parts)
        return milk_cv_unsupported(c, "%lld pieces of an axis of %lld for %d "
                                   "outputs", (long long)parts, (long long)dim,
                                   n->n_outputs);
    int64_t piece = (dim + parts - 1) / parts;
    if (!milk_cv_attr(c, "num_outputs") && dim % parts)
        return milk_cv_fail(c, MILK_ERR_INVALID_MODEL, "axis of %lld does not "
                            "split evenly in %lld", (long long)dim, (long long)parts);
    for (int i = 0; i < parts; i++)
        sizes[i] = i + 1 < parts ? piece : dim - piece * (parts - 1);
    *k = (int)parts;
    return MILK_OK;
}

milk_status milk_lower_split(milk_cv *c, const milk_onnx_node *n)
{
    milk_var *x, *outs[64];
    int64_t axis, sizes[64];
    int a, k, got;
    MILK_TRY(milk_cv_input(c, 0, &x));
    MILK_TRY(milk_cv_attr_int(c, "axis", 0, &axis));
    MILK_TRY(milk_cv_axis(c, "attribute 'axis':", axis, x->type.rank, &a));
    MILK_TRY(split_sizes(c, n, x->type.dims[a], sizes, &k));
    if (k == 1) return milk_cv_set_out(c, 0, x);
    milk_cv_op o;
    milk_cv_op_begin(&o, c, "split", milk_cv_tmp(c, "split"));
    milk_cv_arg(&o, "x", x);
    milk_cv_arg_ints(&o, "split_sizes", sizes, k);
    milk_cv_arg_int(&o, "axis", a);
    MILK_TRY(milk_cv_op_end_multi(&o, outs, 64, &got));
    for (int i = 0; i < got; i++) {
        if (!milk_cv_has_out(c, i)) continue;
        MILK_TRY(milk_var_set_name(c->ctx, outs[i], milk_cv_out(c, i)));
        MILK_TRY(milk_cv_set_out(c, i, outs[i]));
    }
    return MILK_OK;
}

/* ---- Slice ------------------------------------------------------------------------------ */

/* One dim of an ONNX slice resolved as ONNX says: start and end clamped
 * to the dim ([0, d] going forward, [0, d-1] and [-1, d-1] backward). */
static milk_status slice_dim(milk_cv *c, int64_t d, int64_t st, int64_t en,
                             int64_t step, int64_t *b, int64_t *e,
                             bool *to_start, bool *empty)
{
    if (step == 0) return milk_cv_fail(c, MILK_ERR_INVALID_MODEL, "step 0");
    if (st < 0) st += d; /* no overflow: d >= 0 */
    if (en < 0) en += d;
    int64_t lo = step > 0 ? 0 : -1, hi = step > 0 ? d : d - 1;
    st = st < 0 ? 0 : st > hi ? hi : st;
    en = en < lo ? lo : en > hi ? hi : en;
    *empty = (step > 0 ? en - st : st - en) <= 0;
    *b = st;
    *e = en;
    /* MIL cannot say "end before index 0" with a number (-1 means the
     * last element): end_mask does (coreml-defects.md, slice-to-zero). */
    *to_start = step < 0 && en == -1;
    return MILK_OK;
}

/* starts, ends, axes, steps from inputs (opset 10+) or attributes. */
static milk_status slice_params(milk_cv *c, int64_t v[4][MILK_MAX_RANK],
                                int n[4])
{
    static const char *const attrs[] = {"starts", "ends", "axes", NULL};
    for (int i = 0; i < 4; i++) {
        if (c->opset >= 10) {
            n[i] = -1;
            if (milk_cv_has(c, 1 + i))
                MILK_TRY(milk_cv_const_ints(c, 1 + i, v[i], MILK_MAX_RANK, &n[i]));
        } else if (attrs[i]) {
            MILK_TRY(milk_cv_attr_ints(c, attrs[i], v[i], MILK_MAX_RANK, &n[i]));
        } else {
            n[i] = -1;
        }
    }
    if (n[0] < 0 || n[1] != n[0] || (n[2] >= 0 && n[2] != n[0]) ||
        (n[3] >= 0 && n[3] != n[0]))
        return milk_cv_fail(c, MILK_ERR_INVALID_MODEL, "starts, ends, axes and "
                            "steps must have the same length");
    return MILK_OK;
}

/* An empty slice: an empty 1-D constant when the input is a 1-D
 * constant (shape arithmetic: the dims before axis 0, say, of
 * LayerNormalization's function body); refused otherwise, MIL has no
 * empty tensors at run time. */
static milk_status slice_empty(milk_cv *c, milk_var *x)
{
    int32_t none = 0;
    milk_tensor_type t = {x->type.dtype, 1, {0}};
    if (x->type.rank != 1 || !milk_var_const(x))
        return milk_cv_unsupported(c, "an empty slice (zero-size dim)");
    return milk_cv_set_out_const(c, 0, &t, &none);
}

milk_status milk_lower_slice(milk_cv *c, const milk_onnx_node *n)
{
    milk_var *x, *out;
    int64_t p[4][MILK_MAX_RANK], b[MILK_MAX_RANK], e[MILK_MAX_RANK], s[MILK_MAX_RANK];
    bool em[MILK_MAX_RANK] = {false}, any_mask = false;
    int cnt[4];
    MILK_TRY(milk_cv_input(c, 0, &x));
    MILK_TRY(slice_params(c, p, cnt));
    int r = x->type.rank;
    for (int i = 0; i < r; i++) {
        b[i] = 0;
        e[i] = x->type.dims[i];
        s[i] = 1;
    }
    for (int k = 0; k < cnt[0]; k++) {
        int a = k;
        if (cnt[2] >= 0) MILK_TRY(milk_cv_axis(c, "axis", p[2][k], r, &a));
        s[a] = cnt[3] >= 0 ? p[3][k] : 1;
        bool empty = false;
        MILK_TRY(slice_dim(c, x->type.dims[a], p[0][k], p[1][k], s[a], &b[a],
                           &e[a], &em[a], &empty));
        if (empty) return slice_empty(c, x);
        if (em[a]) e[a] = 0;
        any_mask |= em[a];
    }
    milk_cv_op o;
    milk_cv_op_begin(&o, c, "slice_by_index", milk_cv_out(c, 0));
    milk_cv_arg(&o, "x", x);
    milk_cv_arg_ints(&o, "begin", b, r);
    milk_cv_arg_ints(&o, "end", e, r);
    milk_cv_arg_ints(&o, "stride", s, r);
    if (any_mask) milk_cv_arg_bools(&o, "end_mask", em, r);
    MILK_TRY(milk_cv_op_end(&o, &out));
    return milk_cv_set_out(c, 0, out);
}

/* ---- Gather ------------------------------------------------------------------------------ */

/* Indices with negatives wrapped: from iOS17 MIL treats negative indices
 * as out of bounds (docs/coreml-format.md 7.6). Constants are wrapped
 * here; run-time indices through select (milk_lw_wrap_index). */
static milk_status gather_indices(milk_cv *c, int64_t dim, milk_var **out)
{
    enum { MAX_IDX = 1 << 16 };
    milk_tensor_type t;
    MILK_TRY(milk_cv_type(c, 1, &t));
    int64_t count = milk_tensor_type_count(&t);
    if (!milk_cv_is_const(c, 1) || count > MAX_IDX) {
        MILK_TRY(milk_cv_input(c, 1, out));
        return milk_lw_wrap_index(c, *out, dim, out);
    }
    int64_t *v = malloc((size_t)(count ? count : 1) * sizeof *v);
    int32_t *w = malloc((size_t)(count ? count : 1) * sizeof *w);
    int k = 0;
    milk_status s = v && w ? milk_cv_const_ints(c, 1, v, MAX_IDX, &k)
                           : milk_errorf(c->ctx, MILK_ERR_NOMEM, "out of memory");
    for (int i = 0; s == MILK_OK && i < k; i++) {
        if (v[i] < -dim || v[i] >= dim)
            s = milk_cv_fail(c, MILK_ERR_INVALID_MODEL, "index %lld out of range "
                             "for a dim of %lld", (long long)v[i], (long long)dim);
        w[i] = (int32_t)(v[i] < 0 ? v[i] + dim : v[i]);
    }
    t.dtype = MILK_DTYPE_INT32;
    if (s == MILK_OK) s = milk_cv_const(c, milk_cv_tmp(c, "indices"), &t, w, out);
    free(v);
    free(w);
    return s;
}

milk_status milk_lower_gather(milk_cv *c, const milk_onnx_node *n)
{
    milk_var *x, *idx, *out;
    int64_t axis;
    int a;
    MILK_TRY(milk_cv_input(c, 0, &x));
    MILK_TRY(milk_cv_attr_int(c, "axis", 0, &axis));
    MILK_TRY(milk_cv_axis(c, "attribute 'axis':", axis, x->type.rank, &a));
    MILK_TRY(gather_indices(c, x->type.dims[a], &idx));
    milk_cv_op o;
    milk_cv_op_begin(&o, c, "gather", milk_cv_out(c, 0));
    milk_cv_arg(&o, "x", x);
    milk_cv_arg(&o, "indices", idx);
    milk_cv_arg_int(&o, "axis", a);
    MILK_TRY(milk_cv_op_end(&o, &out));
    return milk_cv_set_out(c, 0, out);
}

/* ---- Shape, Expand ------------------------------------------------------------------------ */

milk_status milk_lower_shape(milk_cv *c, const milk_onnx_node *n)
{
    milk_tensor_type t;
    int64_t start, end;
    int32_t dims[MILK_MAX_RANK];
    MILK_TRY(milk_cv_type(c, 0, &t));
    MILK_TRY(milk_cv_attr_int(c, "start", 0, &start));
    MILK_TRY(milk_cv_attr_int(c, "end", t.rank, &end));
    if (start < 0) start = start + t.rank < 0 ? 0 : start + t.rank;
    if (end < 0) end = end + t.rank < 0 ? 0 : end + t.rank;
    if (end > t.rank) end = t.rank;
    if (start > end) start = end;
    for (int i = 0; i < t.rank; i++)
        if (t.dims[i] < 0 || t.dims[i] > INT32_MAX)
            return milk_cv_unsupported(c, "dim %d of the input is not static", i);
    for (int64_t i = start; i < end; i++) dims[i - start] = (int32_t)t.dims[i];
    milk_tensor_type st = {MILK_DTYPE_INT32, 1, {end - start}};
    return milk_cv_set_out_const(c, 0, &st, dims);
}

milk_status milk_lower_expand(milk_cv *c, const milk_onnx_node *n)
{
    milk_var *x, *out;
    int64_t shape[MILK_MAX_RANK], dims[MILK_MAX_RANK], reps[MILK_MAX_RANK];
    int k;
    MILK_TRY(milk_cv_input(c, 0, &x));
    MILK_TRY(milk_cv_const_ints(c, 1, shape, MILK_MAX_RANK, &k));
    int xr = x->type.rank, r = k > xr ? k : xr;
    bool tile = false;
    for (int i = 0; i < r; i++) {
        int64_t xd = i - (r - xr) >= 0 ? x->type.dims[i - (r - xr)] : 1;
        int64_t sd = i - (r - k) >= 0 ? shape[i - (r - k)] : 1;
        if (xd != sd && xd != 1 && sd != 1)
            return milk_cv_fail(c, MILK_ERR_INVALID_MODEL, "shapes do not "
                                "broadcast at dim %d (%lld, %lld)", i,
                                (long long)xd, (long long)sd);
        dims[i] = xd;
        reps[i] = xd == 1 ? sd : 1;
        tile |= reps[i] != 1;
    }
    if (r != xr)
        MILK_TRY(milk_cv_reshape(c, tile ? milk_cv_tmp(c, "rank") : milk_cv_out(c, 0),
                                 x, r, dims, &x));
    if (tile) {
        milk_cv_op o;
        milk_cv_op_begin(&o, c, "tile", milk_cv_out(c, 0));
        milk_cv_arg(&o, "x", x);
        milk_cv_arg_ints(&o, "reps", reps, r);
        MILK_TRY(milk_cv_op_end(&o, &x));
    }
    out = x;
    return milk_cv_set_out(c, 0, out);
}

/* ---- Pad ------------------------------------------------------------------------------------- */

static milk_status pad_mode(milk_cv *c, const char **mil)
{
    const char *mode = "constant";
    MILK_TRY(milk_cv_attr_str(c, "mode", "constant", &mode));
    if (strcmp(mode, "constant") == 0) *mil = "constant";
    else if (strcmp(mode, "reflect") == 0) *mil = "reflect";
    else if (strcmp(mode, "edge") == 0) *mil = "replicate";
    else return milk_cv_unsupported(c, "attribute 'mode': '%s'", mode);
    return MILK_OK;
}

/* Negative pads crop: slice them away first. */
static milk_status pad_crop(milk_cv *c, milk_var *x, int64_t *pads,
                            milk_var **out)
{
    int r = x->type.rank;
    int64_t b[MILK_MAX_RANK], e[MILK_MAX_RANK];
    bool crop = false;
    for (int i = 0; i < r; i++) {
        b[i] = pads[i] < 0 ? -pads[i] : 0;
        e[i] = x->type.dims[i] - (pads[r + i] < 0 ? -pads[r + i] : 0);
        if (pads[i] < 0) pads[i] = 0;
        if (pads[r + i] < 0) pads[r + i] = 0;
        crop |= b[i] > 0 || e[i] < x->type.dims[i];
        if (e[i] <= b[i]) return milk_cv_unsupported(c, "pads crop dim %d away", i);
    }
    *out = x;
    if (!crop) return MILK_OK;
    milk_cv_op o;
    milk_cv_op_begin(&o, c, "slice_by_index", milk_cv_tmp(c, "crop"));
    milk_cv_arg(&o, "x", x);
    milk_cv_arg_ints(&o, "begin", b, r);
    milk_cv_arg_ints(&o, "end", e, r);
    return milk_cv_op_end(&o, out);
}

/* Source index of padded position j (from -b) along a dim of d for
 * reflect (mirror without repeating the edge) or edge (clamp). */
static int64_t pad_source(bool reflect, int64_t j, int64_t d)
{
    if (!reflect) return j < 0 ? 0 : j >= d ? d - 1 : j;
    if (d == 1) return 0;
    int64_t period = 2 * (d - 1);
    j %= period;
    if (j < 0) j += period;
    return j < d ? j : period - j;
}

/* MIL's pad takes floats only: integer tensors are padded exactly, one
 * axis at a time, by a gather of source indices (reflect, edge) or a
 * concat with constant blocks (constant). */
static milk_status pad_int_axis(milk_cv *c, milk_var *x, int axis, int64_t b,
                                int64_t e, const char *mode, double value,
                                const char *name, milk_var **out)
{
    int64_t d = x->type.dims[axis], len = d + b + e;
    milk_cv_op o;
    if (strcmp(mode, "constant") != 0) {
        int32_t *idx = milk_arena_alloc(c->a, (size_t)len * sizeof *idx);
        if (!idx) return milk_errorf(c->ctx, MILK_ERR_NOMEM, "out of memory");
        for (int64_t j = 0; j < len; j++)
            idx[j] = (int32_t)pad_source(strcmp(mode, "reflect") == 0, j - b, d);
        milk_var *iv;
        milk_tensor_type it = {MILK_DTYPE_INT32, 1, {len}};
        MILK_TRY(milk_cv_const(c, milk_cv_tmp(c, "padidx"), &it, idx, &iv));
        milk_cv_op_begin(&o, c, "gather", name);
        milk_cv_arg(&o, "x", x);
        milk_cv_arg(&o, "indices", iv);
        milk_cv_arg_int(&o, "axis", axis);
        return milk_cv_op_end(&o, out);
    }
    milk_cv_op_begin(&o, c, "concat", name);
    for (int side = 0; side < 3; side++) {
        int64_t k = side == 0 ? b : e;
        if (side == 1) milk_cv_arg(&o, "values", x);
        if (side == 1 || k == 0) continue;
        milk_tensor_type t = x->type;
        t.dims[axis] = k;
        int64_t cnt = milk_tensor_type_count(&t);
        int32_t *fill = milk_arena_alloc(c->a, (size_t)(cnt ? cnt : 1) * sizeof *fill);
        if (!fill || cnt > (INT64_C(1) << 22))
            return milk_cv_unsupported(c, "a pad block of %lld elements", (long long)cnt);
        for (int64_t i = 0; i < cnt; i++) fill[i] = (int32_t)value;
        milk_var *fv;
        MILK_TRY(milk_cv_const(c, milk_cv_tmp(c, "padfill"), &t, fill, &fv));
        milk_cv_arg(&o, "values", fv);
    }
    milk_cv_arg_int(&o, "axis", axis);
    milk_cv_arg_bool(&o, "interleave", false);
    return milk_cv_op_end(&o, out);
}

static milk_status pad_int(milk_cv *c, milk_var *x, const int64_t *pads,
                           const char *mode, double value, milk_var **out)
{
    int r = x->type.rank, last = -1;
    for (int i = 0; i < r; i++)
        if (pads[i] || pads[r + i]) last = i;
    for (int i = 0; i < r; i++) {
        if (!pads[i] && !pads[r + i]) continue;
        if (strcmp(mode, "reflect") == 0 &&
            (pads[i] >= x->type.dims[i] || pads[r + i] >= x->type.dims[i]))
            return milk_cv_fail(c, MILK_ERR_INVALID_MODEL, "reflect pads of dim "
                                "%d reach past the edge", i);
        MILK_TRY(pad_int_axis(c, x, i, pads[i], pads[r + i], mode, value,
                              i == last ? milk_cv_out(c, 0) : milk_cv_tmp(c, "padded"),
                              &x));
    }
    *out = x;
    return MILK_OK;
}

milk_status milk_lower_pad(milk_cv *c, const milk_onnx_node *n)
{
    milk_var *x, *out;
    const char *mode = "constant";
    int64_t pads[2 * MILK_MAX_RANK], mp[2 * MILK_MAX_RANK];
    double value = 0;
    int k, cnt;
    MILK_TRY(milk_cv_input(c, 0, &x));
    MILK_TRY(pad_mode(c, &mode));
    if (milk_cv_has(c, 3)) return milk_cv_unsupported(c, "the axes input");
    if (c->opset >= 11) {
        MILK_TRY(milk_cv_const_ints(c, 1, pads, 2 * MILK_MAX_RANK, &k));
        if (milk_cv_has(c, 2)) MILK_TRY(milk_cv_const_floats(c, 2, &value, 1, &cnt));
    } else {
        MILK_TRY(milk_cv_attr_ints(c, "pads", pads, 2 * MILK_MAX_RANK, &k));
        MILK_TRY(milk_cv_attr_float(c, "value", 0.0, &value));
    }
    int r = x->type.rank;
    if (k != 2 * r)
        return milk_cv_fail(c, MILK_ERR_INVALID_MODEL, "%d pads for rank %d", k, r);
    MILK_TRY(pad_crop(c, x, pads, &x));
    int first = r;
    for (int i = r - 1; i >= 0; i--)
        if (pads[i] || pads[r + i]) first = i;
    if (first == r) return milk_cv_set_out(c, 0, x);
    if (x->type.dtype == MILK_DTYPE_INT32) {
        MILK_TRY(pad_int(c, x, pads, mode, value, &out));
        return milk_cv_set_out(c, 0, out);
    }
    for (int i = first; i < r; i++) {
        mp[2 * (i - first)] = pads[i];
        mp[2 * (i - first) + 1] = pads[r + i];
    }
    milk_cv_op o;
    milk_cv_op_begin(&o, c, "pad", milk_cv_out(c, 0));
    milk_cv_arg(&o, "x", x);
    milk_cv_arg_ints(&o, "pad", mp, 2 * (r - first));
    milk_cv_arg_str(&o, "mode", mode);
    milk_cv_arg_float(&o, "constant_val", value, milk_cv_float_dtype(x));
    MILK_TRY(milk_cv_op_end(&o, &out));
    return milk_cv_set_out(c, 0, out);
}
