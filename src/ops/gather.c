/* gather.c: gather along one axis, with batch_dims (iOS16) and
 * validate_indices (iOS17), and gather_along_axis, after coremltools'
 * scatter_gather.py in ops/defs/iOS15, iOS16 and iOS17. */
#include "layout.h"

/* x dtypes: fp16, fp32, int32; iOS17 adds int8, uint8, int16, uint16. */
static uint64_t gather_x_dtypes(milk_target opset)
{
    return opset >= MILK_TARGET_IOS17 ? MILK_DT_NUM | MILK_DT_SMALL_INT
                                      : MILK_DT_NUM;
}

/* indices dtypes: iOS15 int32; iOS16 int32, int16, uint16; iOS17 adds
 * int8, uint8. */
static uint64_t gather_index_dtypes(milk_target opset)
{
    uint64_t m = MILK_DT_INT32;
    if (opset >= MILK_TARGET_IOS16)
        m |= MILK_DT(MILK_DTYPE_INT16) | MILK_DT(MILK_DTYPE_UINT16);
    if (opset >= MILK_TARGET_IOS17)
        m |= MILK_DT(MILK_DTYPE_INT8) | MILK_DT(MILK_DTYPE_UINT8);
    return m;
}

/* batch_dims in [0, rank(indices)] and [0, axis]; the leading batch dims
 * of x and indices agree. */
static milk_status check_batch_dims(milk_infer *ic, const milk_tensor_type *x,
                                    const milk_tensor_type *ind, int axis,
                                    int64_t bd)
{
    if (bd < 0 || bd > ind->rank || bd > axis)
        return milk_op_fail(ic->ctx, ic->op, "batch_dims",
                            "%lld must be in 0..min(rank(indices) = %d, "
                            "axis = %d)",
                            (long long)bd, (int)ind->rank, axis);
    for (int i = 0; i < bd; i++)
        if (MILK_DIM_KNOWN(x->dims[i]) && MILK_DIM_KNOWN(ind->dims[i]) &&
            x->dims[i] != ind->dims[i])
            return milk_op_fail(ic->ctx, ic->op, "indices",
                                "batch dim %d is %lld, x's is %lld", i,
                                (long long)ind->dims[i],
                                (long long)x->dims[i]);
    return MILK_OK;
}

/* With validate_indices, constant indices must lie in [0, x.dims[axis])
 * (iOS17 treats negative indices as out of bounds). */
static milk_status validate_indices(milk_infer *ic, int64_t size)
{
    bool on;
    MILK_TRY(milk_op_bool(ic->ctx, ic->op, "validate_indices", false, &on));
    const milk_value *c = milk_op_const(ic->op, "indices");
    if (!on || !c || !MILK_DIM_KNOWN(size)) return MILK_OK;
    int64_t n = milk_tensor_type_count(&c->type);
    for (int64_t i = 0; i < n; i++) {
        int64_t v;
        MILK_TRY(milk_value_get_i64(ic->ctx, c, i, &v));
        if (v < 0 || v >= size)
            return milk_op_fail(ic->ctx, ic->op, "indices",
                                "index %lld at %lld is outside [0, %lld)",
                                (long long)v, (long long)i, (long long)size);
    }
    return MILK_OK;
}

static milk_status gather_infer(milk_infer *ic)
{
    const milk_tensor_type *x, *ind;
    int64_t ax, bd, dims[MILK_MAX_RANK];
    int axis, r = 0;
    MILK_TRY(milk_infer_tensor(ic, "x", gather_x_dtypes(ic->opset), 1, -1,
                               &x));
    MILK_TRY(milk_infer_tensor(ic, "indices", gather_index_dtypes(ic->opset),
                               0, -1, &ind));
    MILK_TRY(milk_infer_int(ic, "axis", MILK_DT_INT32, 0, &ax));
    MILK_TRY(milk_infer_axis(ic, "axis", ax, x->rank, &axis));
    MILK_TRY(milk_infer_int(ic, "batch_dims", MILK_DT_INT32, 0, &bd));
    MILK_TRY(check_batch_dims(ic, x, ind, axis, bd));
    MILK_TRY(validate_indices(ic, x->dims[axis]));
    if (x->rank - 1 + ind->rank - bd > MILK_MAX_RANK)
        return milk_op_fail(ic->ctx, ic->op, "indices",
                            "output rank exceeds %d", MILK_MAX_RANK);
    for (int i = 0; i < axis; i++) dims[r++] = x->dims[i];
    for (int i = (int)bd; i < ind->rank; i++) dims[r++] = ind->dims[i];
    for (int i = axis + 1; i < x->rank; i++) dims[r++] = x->dims[i];
    return milk_infer_one(ic, x->dtype, r, dims);
}

/* ---- kernels ------------------------------------------------------------ */

static milk_target eval_opset(const milk_eval *ec)
{
    return ec->op->block ? ec->op->block->fn->opset : MILK_TARGET_IOS18;
}

/* An index into a dim of size n: negative ones count from the end before
 * iOS17 and are out of range from iOS17 on; anything outside fails naming
 * the op (coremltools leaves it undefined; the reference refuses it). */
static milk_status take_index(const milk_eval *ec, int64_t at, int64_t v,
                              int64_t n, int64_t *out)
{
    bool neg_ok = eval_opset(ec) < MILK_TARGET_IOS17;
    *out = v < 0 && neg_ok ? v + n : v;
    if (*out < 0 || *out >= n)
        return milk_op_fail(ec->ctx, ec->op, "indices",
                            "index %lld at %lld is outside [%lld, %lld)",
                            (long long)v, (long long)at,
                            neg_ok ? -(long long)n : 0LL, (long long)n);
    return MILK_OK;
}

/* out[b, p, i, q] = x[b, p, indices[b, i], q]: b over the batch dims, p
 * over x's dims from there to axis, i over the rest of indices' dims, q
 * over x's dims after axis. */
static milk_status gather_eval(milk_eval *ec)
{
    const milk_rt *x = milk_eval_in(ec, "x");
    const milk_rt *ind = milk_eval_in(ec, "indices");
    milk_rt *o = &ec->out[0];
    int64_t ax, bd;
    MILK_TRY(milk_op_int(ec->ctx, ec->op, "axis", 0, &ax));
    MILK_TRY(milk_op_int(ec->ctx, ec->op, "batch_dims", 0, &bd));
    int axis = (int)(ax < 0 ? ax + x->type.rank : ax);
    int64_t B = milk_dims_span(x->type.dims, 0, (int)bd), P = milk_dims_span(x->type.dims, (int)bd, axis);
    int64_t I = milk_dims_span(ind->type.dims, (int)bd, ind->type.rank);
    int64_t A = x->type.dims[axis], Q = milk_dims_span(x->type.dims, axis + 1, x->type.rank);
    int64_t at = 0;
    /* out: [B, P, I, Q] */
    for (int64_t b = 0; b < B; b++)
        for (int64_t p = 0; p < P; p++)
            for (int64_t i = 0; i < I; i++) {
                int64_t v;
                MILK_TRY(take_index(ec, b * I + i,
                                    milk_rt_i32(ind)[b * I + i], A, &v));
                for (int64_t q = 0; q < Q; q++)
                    milk_layout_copy(o, at++, x, ((b * P + p) * A + v) * Q + q);
            }
    return MILK_OK;
}

/* gather: takes slices of x along axis at the given indices.
 *   x                 R    rank >= 1; fp16, fp32, int32 (iOS17 adds int8,
 *                          uint8, int16, uint16)
 *   indices           R    int32 (iOS16 adds int16, uint16; iOS17 int8,
 *                          uint8); may be a run-time value; negative
 *                          indices count from the end before iOS17
 *   axis              O C  int32, default 0
 *   batch_dims        O C  int32, default 0 (iOS16+): leading dims shared
 *                          by x and indices; batch_dims <= axis
 *   validate_indices  O C  bool, default false (iOS17+): constant indices
 *                          must lie in [0, x.dims[axis])
 * Output: x.dims[:axis] + indices.dims[batch_dims:] + x.dims[axis+1:].
 * An index outside the dim fails at run time naming the op (Core ML leaves
 * it undefined). */
static const milk_param gather_params[] = {
    {"x", MILK_P_REQ, 0},
    {"indices", MILK_P_REQ, 0},
    {"axis", MILK_P_CONST, 0},
    {"batch_dims", MILK_P_CONST, MILK_TARGET_IOS16},
    {"validate_indices", MILK_P_CONST, MILK_TARGET_IOS17},
    {0},
};

const milk_op_info milk_op_gather = {
    .name = "gather",
    .params = gather_params,
    .min_opset = MILK_TARGET_IOS15,
    .infer = gather_infer,
    .eval = gather_eval,
};

/* ---- gather_along_axis -------------------------------------------------- */

static milk_status gather_along_axis_infer(milk_infer *ic)
{
    const milk_tensor_type *x, *ind;
    int64_t ax;
    int axis;
    MILK_TRY(milk_infer_tensor(ic, "x", gather_x_dtypes(ic->opset), 1, -1,
                               &x));
    MILK_TRY(milk_infer_tensor(ic, "indices", gather_index_dtypes(ic->opset),
                               1, -1, &ind));
    if (ind->rank != x->rank)
        return milk_op_fail(ic->ctx, ic->op, "indices",
                            "rank %d differs from x's %d", (int)ind->rank,
                            (int)x->rank);
    MILK_TRY(milk_infer_int(ic, "axis", MILK_DT_INT32, 0, &ax));
    MILK_TRY(milk_infer_axis(ic, "axis", ax, x->rank, &axis));
    for (int i = 0; i < x->rank; i++)
        if (i != axis && MILK_DIM_KNOWN(x->dims[i]) &&
            MILK_DIM_KNOWN(ind->dims[i]) && x->dims[i] != ind->dims[i])
            return milk_op_fail(ic->ctx, ic->op, "indices",
                                "dim %d is %lld, x's is %lld", i,
                                (long long)ind->dims[i],
                                (long long)x->dims[i]);
    MILK_TRY(validate_indices(ic, x->dims[axis]));
    return milk_infer_one(ic, x->dtype, ind->rank, ind->dims);
}

/* out[p, i, q] = x[p, indices[p, i, q], q]: p over the dims before axis,
 * i along axis (indices' size), q over the dims after it. */
static milk_status gather_along_axis_eval(milk_eval *ec)
{
    const milk_rt *x = milk_eval_in(ec, "x");
    const milk_rt *ind = milk_eval_in(ec, "indices");
    milk_rt *o = &ec->out[0];
    int64_t ax;
    MILK_TRY(milk_op_int(ec->ctx, ec->op, "axis", 0, &ax));
    int axis = (int)(ax < 0 ? ax + x->type.rank : ax);
    int64_t P = milk_dims_span(x->type.dims, 0, axis), A = x->type.dims[axis];
    int64_t I = ind->type.dims[axis];
    int64_t Q = milk_dims_span(x->type.dims, axis + 1, x->type.rank);
    /* out: [P, I, Q], indices' shape */
    for (int64_t p = 0; p < P; p++)
        for (int64_t i = 0; i < I; i++)
            for (int64_t q = 0; q < Q; q++) {
                int64_t at = (p * I + i) * Q + q, v;
                MILK_TRY(take_index(ec, at, milk_rt_i32(ind)[at], A, &v));
                milk_layout_copy(o, at, x, (p * A + v) * Q + q);
            }
    return MILK_OK;
}

/* gather_along_axis: picks one element of x along axis per entry of
 * indices (NumPy's take_along_axis).
 *   x                 R    rank >= 1; fp16, fp32, int32 (iOS17 adds int8,
 *                          uint8, int16, uint16)
 *   indices           R    rank(x), dims equal to x's but along axis;
 *                          int32 (iOS16 adds int16, uint16; iOS17 int8,
 *                          uint8); may be a run-time value; negative
 *                          indices count from the end before iOS17
 *   axis              O C  int32, default 0, in [-rank, rank)
 *   validate_indices  O C  bool, default false (iOS17+): constant indices
 *                          must lie in [0, x.dims[axis])
 * Output: indices' shape, x's dtype. An index outside the dim fails at run
 * time naming the op (Core ML leaves it undefined). */
static const milk_param gather_along_axis_params[] = {
    {"x", MILK_P_REQ, 0},
    {"indices", MILK_P_REQ, 0},
    {"axis", MILK_P_CONST, 0},
    {"validate_indices", MILK_P_CONST, MILK_TARGET_IOS17},
    {0},
};

const milk_op_info milk_op_gather_along_axis = {
    .name = "gather_along_axis",
    .params = gather_along_axis_params,
    .min_opset = MILK_TARGET_IOS15,
    .infer = gather_along_axis_infer,
    .eval = gather_along_axis_eval,
};
