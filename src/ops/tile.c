/* tile.c: the tile op, which repeats x along every dim, after coremltools'
 * ops/defs/iOS15/tensor_operation.py. */
#include "layout.h"

static milk_status tile_infer(milk_infer *ic)
{
    const milk_tensor_type *x, *rt;
    int64_t reps[MILK_MAX_RANK], dims[MILK_MAX_RANK];
    int n;
    MILK_TRY(milk_infer_tensor(ic, "x", MILK_DT_NUM | MILK_DT_BOOL, 1, -1,
                               &x));
    MILK_TRY(milk_infer_tensor(ic, "reps", MILK_DT_INT32, 1, 1, &rt));
    if (MILK_DIM_KNOWN(rt->dims[0]) && rt->dims[0] != x->rank)
        return milk_op_fail(ic->ctx, ic->op, "reps",
                            "%lld entries for x of rank %d",
                            (long long)rt->dims[0], (int)x->rank);
    if (!milk_infer_is_const(ic, "reps")) {
        for (int i = 0; i < x->rank; i++) dims[i] = MILK_DIM_UNKNOWN;
        return milk_infer_one(ic, x->dtype, x->rank, dims);
    }
    MILK_TRY(milk_infer_ints(ic, "reps", MILK_DT_INT32, reps, MILK_MAX_RANK,
                             &n, NULL));
    for (int i = 0; i < x->rank; i++) {
        if (reps[i] < 1)
            return milk_op_fail(ic->ctx, ic->op, "reps",
                                "entry %d is %lld: reps are >= 1", i,
                                (long long)reps[i]);
        dims[i] = x->dims[i];
        if (MILK_DIM_KNOWN(dims[i]) &&
            __builtin_mul_overflow(dims[i], reps[i], &dims[i]))
            return milk_op_fail(ic->ctx, ic->op, "reps", "size overflows");
        if (!MILK_DIM_KNOWN(x->dims[i]) && reps[i] != 1)
            dims[i] = MILK_DIM_UNKNOWN;
    }
    return milk_infer_one(ic, x->dtype, x->rank, dims);
}

/* out[i_0, ...] = x[i_0 mod dims_0, ...]. */
static milk_status tile_eval(milk_eval *ec)
{
    const milk_rt *x = milk_eval_in(ec, "x");
    milk_rt *o = &ec->out[0];
    int r = x->type.rank;
    int64_t xs[MILK_MAX_RANK], idx[MILK_MAX_RANK] = {0};
    for (int d = 0; d < r; d++)
        if (x->type.dims[d] == 0 && o->type.dims[d] != 0)
            return milk_op_fail(ec->ctx, ec->op, "x", "dim %d is empty", d);
    milk_strides(&x->type, xs);
    /* out: [dims_0 * reps_0, ...], row-major */
    for (int64_t i = 0; i < o->count; i++) {
        int64_t src = 0;
        for (int d = 0; d < r; d++) src += idx[d] % x->type.dims[d] * xs[d];
        milk_layout_copy(o, i, x, src);
        milk_layout_next(r, o->type.dims, idx);
    }
    return MILK_OK;
}

/* tile: repeats x reps[i] times along dim i (NumPy's tile with one rep per
 * dim).
 *   x     R  rank >= 1, fp16/fp32/int32/bool
 *   reps  R  int32 [rank(x)], entries >= 1; may be a run-time value (then
 *            every output dim is unknown)
 * Output: dims[i] * reps[i]. */
static const milk_param tile_params[] = {
    {"x", MILK_P_REQ, 0},
    {"reps", MILK_P_REQ, 0},
    {0},
};

const milk_op_info milk_op_tile = {
    .name = "tile",
    .params = tile_params,
    .min_opset = MILK_TARGET_IOS15,
    .infer = tile_infer,
    .eval = tile_eval,
};
