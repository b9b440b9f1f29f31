/* shape.c: the ops that only rearrange x's shape: reshape, transpose,
 * expand_dims, squeeze and flatten2d, after coremltools'
 * tensor_transformation.py and tensor_operation.py (iOS15 and iOS17), and
 * the shape op, which returns x's shape. The element dtypes of the first
 * four are the layout set (fp16, fp32, int32, bool; iOS17 adds int8, uint8,
 * int16, uint16); flatten2d and shape take fp16, fp32, int32, bool. */
#include "layout.h"

/* ---- reshape --------------------------------------------------------- */

/* Replace the 0 entries of a reshape target. iOS15: a 0 copies x's dim at
 * the same index and needs len(shape) == rank(x). iOS17: shapes are
 * aligned at their last dims; a 0 copies x's dim there, or is 1 beyond
 * x's rank. */
static milk_status reshape_zeros(milk_infer *ic, const milk_tensor_type *x,
                                 int64_t *v, int n)
{
    bool zero = false;
    for (int i = 0; i < n; i++) zero |= v[i] == 0;
    if (!zero) return MILK_OK;
    if (ic->opset < MILK_TARGET_IOS17 && n != x->rank)
        return milk_op_fail(ic->ctx, ic->op, "shape",
                            "a 0 entry copies x's dim and needs %d entries "
                            "(the rank of x) before iOS17, got %d",
                            (int)x->rank, n);
    for (int i = n - 1, j = x->rank - 1; i >= 0; i--, j--)
        if (v[i] == 0) v[i] = j >= 0 ? x->dims[j] : 1;
    return MILK_OK;
}

/* Resolve the -1 entry (at most one) from x's element count. Unknown if
 * x's count or another target dim is unknown. */
static milk_status reshape_infer_dim(milk_infer *ic,
                                     const milk_tensor_type *x, int64_t *v,
                                     int n, int neg)
{
    int64_t total = milk_tensor_type_count(x), rest, others[MILK_MAX_RANK];
    int k = 0;
    for (int i = 0; i < n; i++) {
        if (i == neg) continue;
        if (!MILK_DIM_KNOWN(v[i])) total = -1;
        others[k++] = v[i];
    }
    if (total >= 0 && !milk_dims_count(others, k, &rest))
        return milk_op_fail(ic->ctx, ic->op, "shape",
                            "the target holds more than 2^40 elements");
    if (total < 0) {
        if (neg >= 0) v[neg] = MILK_DIM_UNKNOWN;
        return MILK_OK;
    }
    if (neg >= 0) {
        if (rest == 0 || total % rest != 0)
            return milk_op_fail(ic->ctx, ic->op, "shape",
                                "cannot infer the -1 entry: %lld elements "
                                "into blocks of %lld",
                                (long long)total, (long long)rest);
        v[neg] = total / rest;
    } else if (rest != total) {
        return milk_op_fail(ic->ctx, ic->op, "shape",
                            "%lld elements cannot take a shape of %lld "
                            "elements",
                            (long long)total, (long long)rest);
    }
    return MILK_OK;
}

/* The output of a reshape whose target is not a constant: unknown dims,
 * as many as the target's length (unknown rank if that is unknown too). */
static milk_status reshape_dynamic(milk_infer *ic, milk_dtype dt,
                                   const milk_tensor_type *st)
{
    int64_t dims[MILK_MAX_RANK];
    int64_t n = st->dims[0];
    if (!MILK_DIM_KNOWN(n)) {
        MILK_TRY(milk_infer_outputs(ic, 1));
        ic->out[0].dtype = dt;
        ic->out[0].rank = MILK_RANK_UNKNOWN;
        return MILK_OK;
    }
    if (n > MILK_MAX_RANK)
        return milk_op_fail(ic->ctx, ic->op, "shape", "%lld entries, more "
                            "than rank %d", (long long)n, MILK_MAX_RANK);
    for (int i = 0; i < n; i++) dims[i] = MILK_DIM_UNKNOWN;
    return milk_infer_one(ic, dt, (int)n, dims);
}

static milk_status reshape_infer(milk_infer *ic)
{
    uint64_t sdt = ic->opset >= MILK_TARGET_IOS17 ? MILK_DT_INT8_16_32
                                                   : MILK_DT_INT32;
    const milk_tensor_type *x, *st;
    int64_t v[MILK_MAX_RANK];
    int n, neg = -1;
    MILK_TRY(milk_infer_tensor(ic, "x", milk_dt_layout(ic->opset), 0, -1, &x));
    MILK_TRY(milk_infer_tensor(ic, "shape", sdt, 1, 1, &st));
    if (!milk_infer_is_const(ic, "shape"))
        return reshape_dynamic(ic, x->dtype, st);
    MILK_TRY(milk_infer_ints(ic, "shape", sdt, v, MILK_MAX_RANK, &n, NULL));
    for (int i = 0; i < n; i++) {
        if (v[i] < -1 || (v[i] == -1 && neg >= 0))
            return milk_op_fail(ic->ctx, ic->op, "shape",
                                "entry %d is %lld: entries are sizes, 0 or "
                                "a single -1",
                                i, (long long)v[i]);
        if (v[i] == -1) neg = i;
    }
    MILK_TRY(reshape_zeros(ic, x, v, n));
    MILK_TRY(reshape_infer_dim(ic, x, v, n, neg));
    return milk_infer_one(ic, x->dtype, n, v);
}

/* reshape: x's elements in a new shape.
 *   x      R  layout dtypes
 *   shape  R  int32 [K] (iOS17: int8/int16/int32), may be a run-time value;
 *             entries are sizes, at most one -1 (inferred from the element
 *             count) and 0s (iOS15: copy x's dim at that index, K == rank;
 *             iOS17: shapes aligned at the end, copy x's dim or 1)
 * Output: the target shape; for a run-time shape, K unknown dims (unknown
 * rank if K is unknown). */
static const milk_param reshape_params[] = {
    {"x", MILK_P_REQ, 0},
    {"shape", MILK_P_REQ, 0},
    {0},
};

/* x's elements in row-major order, unchanged. */
static milk_status reshape_eval(milk_eval *ec)
{
    return milk_layout_copy_all(ec, "x");
}

const milk_op_info milk_op_reshape = {
    .name = "reshape",
    .params = reshape_params,
    .min_opset = MILK_TARGET_IOS15,
    .infer = reshape_infer,
    .eval = reshape_eval,
};

/* ---- transpose ------------------------------------------------------- */

static milk_status transpose_infer(milk_infer *ic)
{
    const milk_tensor_type *x;
    int64_t perm[MILK_MAX_RANK], dims[MILK_MAX_RANK];
    bool seen[MILK_MAX_RANK] = {false};
    MILK_TRY(milk_infer_tensor(ic, "x", milk_dt_layout(ic->opset), 0, -1, &x));
    MILK_TRY(milk_infer_ints_n(ic, "perm", MILK_DT_INT32, x->rank, 0, perm,
                               NULL));
    for (int i = 0; i < x->rank; i++) {
        int a;
        MILK_TRY(milk_infer_axis(ic, "perm", perm[i], x->rank, &a));
        if (seen[a])
            return milk_op_fail(ic->ctx, ic->op, "perm",
                                "axis %d repeated: not a permutation", a);
        seen[a] = true;
        dims[i] = x->dims[a];
    }
    return milk_infer_one(ic, x->dtype, x->rank, dims);
}

/* transpose: permutes x's dims.
 *   x     R    layout dtypes
 *   perm  R C  int32 [rank(x)], a permutation; negative entries count from
 *              the end (coremltools writes e.g. [0, 2, -1, -3])
 * Output: dims[i] = x.dims[perm[i]]. */
static const milk_param transpose_params[] = {
    {"x", MILK_P_REQ, 0},
    {"perm", MILK_P_REQ | MILK_P_CONST, 0},
    {0},
};

/* out[i_0, ..., i_{r-1}] = x[j] with j[perm[k]] = i_k. */
static milk_status transpose_eval(milk_eval *ec)
{
    const milk_rt *x = milk_eval_in(ec, "x");
    milk_rt *o = &ec->out[0];
    int r = x->type.rank, n;
    int64_t perm[MILK_MAX_RANK], xs[MILK_MAX_RANK], ps[MILK_MAX_RANK];
    int64_t idx[MILK_MAX_RANK] = {0};
    MILK_TRY(milk_op_ints(ec->ctx, ec->op, "perm", perm, MILK_MAX_RANK, &n,
                          NULL));
    milk_strides(&x->type, xs);
    /* ps[k]: the stride in x of the output's dim k */
    for (int k = 0; k < r; k++) ps[k] = xs[perm[k] < 0 ? perm[k] + r : perm[k]];
    /* out: [x.dims[perm[0]], ..., x.dims[perm[r-1]]], row-major */
    for (int64_t i = 0; i < o->count; i++) {
        milk_layout_copy(o, i, x, milk_layout_offset(r, idx, ps));
        milk_layout_next(r, o->type.dims, idx);
    }
    return MILK_OK;
}

const milk_op_info milk_op_transpose = {
    .name = "transpose",
    .params = transpose_params,
    .min_opset = MILK_TARGET_IOS15,
    .infer = transpose_infer,
    .eval = transpose_eval,
};

/* ---- expand_dims ------------------------------------------------------ */

static milk_status expand_dims_infer(milk_infer *ic)
{
    const milk_tensor_type *x;
    int64_t axes[MILK_MAX_RANK], dims[MILK_MAX_RANK];
    bool added[MILK_MAX_RANK] = {false};
    int n;
    MILK_TRY(milk_infer_tensor(ic, "x", milk_dt_layout(ic->opset), 0, -1, &x));
    MILK_TRY(milk_infer_ints(ic, "axes", MILK_DT_INT32, axes, MILK_MAX_RANK,
                             &n, NULL));
    int out_rank = x->rank + n;
    if (out_rank > MILK_MAX_RANK)
        return milk_op_fail(ic->ctx, ic->op, "axes",
                            "output rank %d exceeds %d", out_rank,
                            MILK_MAX_RANK);
    for (int i = 0; i < n; i++) {
        int a;
        MILK_TRY(milk_infer_axis(ic, "axes", axes[i], out_rank, &a));
        if (added[a])
            return milk_op_fail(ic->ctx, ic->op, "axes", "axis %d repeated",
                                a);
        added[a] = true;
    }
    for (int i = 0, j = 0; i < out_rank; i++)
        dims[i] = added[i] ? 1 : x->dims[j++];
    return milk_infer_one(ic, x->dtype, out_rank, dims);
}

/* expand_dims: inserts size-1 dims.
 *   x     R    layout dtypes
 *   axes  R C  int32 [K], positions in the output, in [-rank-K, rank+K);
 *              no position twice
 * Output: rank(x) + K dims, 1 at each of axes, x's dims in order
 * elsewhere. */
static const milk_param expand_dims_params[] = {
    {"x", MILK_P_REQ, 0},
    {"axes", MILK_P_REQ | MILK_P_CONST, 0},
    {0},
};

const milk_op_info milk_op_expand_dims = {
    .name = "expand_dims",
    .params = expand_dims_params,
    .min_opset = MILK_TARGET_IOS15,
    .infer = expand_dims_infer,
    .eval = reshape_eval,
};

/* ---- squeeze --------------------------------------------------------- */

static milk_status squeeze_infer(milk_infer *ic)
{
    const milk_tensor_type *x;
    int64_t axes[MILK_MAX_RANK], dims[MILK_MAX_RANK];
    bool listed[MILK_MAX_RANK] = {false}, given;
    int n, r = 0;
    MILK_TRY(milk_infer_tensor(ic, "x", milk_dt_layout(ic->opset), 0, -1, &x));
    MILK_TRY(milk_infer_ints(ic, "axes", MILK_DT_INT32, axes, MILK_MAX_RANK,
                             &n, &given));
    for (int i = 0; i < n; i++) {
        int a;
        MILK_TRY(milk_infer_axis(ic, "axes", axes[i], x->rank, &a));
        if (listed[a])
            return milk_op_fail(ic->ctx, ic->op, "axes", "axis %d repeated",
                                a);
        listed[a] = true;
    }
    /* only dims known to be 1 go; a listed dim of another (or unknown)
     * size stays, as in coremltools */
    for (int i = 0; i < x->rank; i++)
        if (x->dims[i] != 1 || (given && !listed[i])) dims[r++] = x->dims[i];
    return milk_infer_one(ic, x->dtype, r, dims);
}

/* squeeze: removes size-1 dims.
 *   x     R    layout dtypes
 *   axes  O C  int32 [K]; default: every dim of size 1. A listed dim whose
 *              size is not 1 (or unknown) is kept, as coremltools (and
 *              PyTorch) do
 * Output: x's dims without the removed ones (a scalar if none is left). */
static const milk_param squeeze_params[] = {
    {"x", MILK_P_REQ, 0},
    {"axes", MILK_P_CONST, 0},
    {0},
};

const milk_op_info milk_op_squeeze = {
    .name = "squeeze",
    .params = squeeze_params,
    .min_opset = MILK_TARGET_IOS15,
    .infer = squeeze_infer,
    .eval = reshape_eval,
};

/* ---- flatten2d -------------------------------------------------------- */

static milk_status flatten2d_infer(milk_infer *ic)
{
    const milk_tensor_type *x;
    int64_t ax, dims[2];
    MILK_TRY(milk_infer_tensor(ic, "x", MILK_DT_NUM | MILK_DT_BOOL, 0, -1,
                               &x));
    MILK_TRY(milk_infer_int(ic, "axis", MILK_DT_INT32, 1, &ax));
    /* Python slicing x.shape[:axis], x.shape[axis:]: axis may equal rank */
    if (ax < -x->rank || ax > x->rank)
        return milk_op_fail(ic->ctx, ic->op, "axis",
                            "axis %lld outside [%d, %d]", (long long)ax,
                            -(int)x->rank, (int)x->rank);
    int a = (int)(ax < 0 ? ax + x->rank : ax);
    dims[0] = milk_dims_span(x->dims, 0, a); /* unknown if one is */
    dims[1] = milk_dims_span(x->dims, a, x->rank);
    return milk_infer_one(ic, x->dtype, 2, dims);
}

/* flatten2d: x as a matrix, the dims before axis against the rest.
 *   x     R    fp16/fp32/int32/bool
 *   axis  O C  int32, default 1, in [-rank, rank]
 * Output: [prod(x.dims[:axis]), prod(x.dims[axis:])] (an empty product is
 * 1), x's elements unchanged. */
static const milk_param flatten2d_params[] = {
    {"x", MILK_P_REQ, 0},
    {"axis", MILK_P_CONST, 0},
    {0},
};

const milk_op_info milk_op_flatten2d = {
    .name = "flatten2d",
    .params = flatten2d_params,
    .min_opset = MILK_TARGET_IOS15,
    .infer = flatten2d_infer,
    .eval = reshape_eval,
};

/* ---- shape ------------------------------------------------------------ */

static milk_status shape_infer(milk_infer *ic)
{
    const milk_tensor_type *x = milk_op_in_type(ic->op, "x");
    MILK_TRY(milk_op_check_dtype(ic->ctx, ic->op, "x",
                                 MILK_DT_NUM | MILK_DT_BOOL));
    int64_t n = x->rank >= 0 ? x->rank : MILK_DIM_UNKNOWN;
    return milk_infer_one(ic, MILK_DTYPE_INT32, 1, &n);
}

/* The dims of x as the interpreter holds it (always known at run time). */
static milk_status shape_eval(milk_eval *ec)
{
    const milk_rt *x = milk_eval_in(ec, "x");
    for (int i = 0; i < x->type.rank && i < ec->out[0].count; i++) {
        if (x->type.dims[i] > INT32_MAX)
            return milk_op_fail(ec->ctx, ec->op, "x",
                                "dim %d (%lld) does not fit int32", i,
                                (long long)x->type.dims[i]);
        milk_rt_i32(&ec->out[0])[i] = (int32_t)x->type.dims[i];
    }
    return MILK_OK;
}

/* shape: the dims of x.
 *   x  R  fp16/fp32/int32/bool, any rank (a scalar gives an empty vector)
 * Output: int32 [rank(x)]. */
static const milk_param shape_params[] = {
    {"x", MILK_P_REQ, 0},
    {0},
};

const milk_op_info milk_op_shape = {
    .name = "shape",
    .params = shape_params,
    .min_opset = MILK_TARGET_IOS15,
    .infer = shape_infer,
    .eval = shape_eval,
};
