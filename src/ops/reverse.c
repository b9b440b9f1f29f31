/* reverse.c: the reverse op, which flips x along some axes, after
 * coremltools' ops/defs/iOS15/tensor_transformation.py and the iOS17
 * version (which only adds the small integer dtypes). */
#include "layout.h"

/* Which dims are flipped: every dim without axes; each listed axis
 * otherwise, a repeated axis flipping twice (coremltools' value inference
 * calls np.flip once per entry). */
static milk_status flipped_dims(milk_ctx *ctx, const milk_op *op, int rank,
                                bool *flip)
{
    int64_t axes[MILK_MAX_RANK * 2];
    int n;
    bool given;
    MILK_TRY(milk_op_ints(ctx, op, "axes", axes, MILK_MAX_RANK * 2, &n,
                          &given));
    for (int i = 0; i < rank; i++) flip[i] = !given;
    for (int i = 0; i < n; i++) {
        int a;
        MILK_TRY(milk_op_axis(ctx, op, "axes", axes[i], rank, &a));
        flip[a] = !flip[a];
    }
    return MILK_OK;
}

static milk_status reverse_infer(milk_infer *ic)
{
    const milk_tensor_type *x;
    bool flip[MILK_MAX_RANK];
    MILK_TRY(milk_infer_tensor(ic, "x", milk_dt_layout(ic->opset), 0, -1, &x));
    if (milk_op_arg(ic->op, "axes"))
        MILK_TRY(milk_op_check_dtype(ic->ctx, ic->op, "axes", MILK_DT_INT32));
    MILK_TRY(flipped_dims(ic->ctx, ic->op, x->rank, flip));
    return milk_infer_one(ic, x->dtype, x->rank, x->dims);
}

/* out[i] = x[j] with j[d] = dims[d] - 1 - i[d] on flipped dims, i[d]
 * elsewhere. */
static milk_status reverse_eval(milk_eval *ec)
{
    const milk_rt *x = milk_eval_in(ec, "x");
    milk_rt *o = &ec->out[0];
    int r = x->type.rank;
    bool flip[MILK_MAX_RANK];
    int64_t xs[MILK_MAX_RANK], idx[MILK_MAX_RANK] = {0};
    MILK_TRY(flipped_dims(ec->ctx, ec->op, r, flip));
    milk_strides(&x->type, xs);
    /* out: x's shape, row-major */
    for (int64_t i = 0; i < o->count; i++) {
        int64_t src = 0;
        for (int d = 0; d < r; d++)
            src += (flip[d] ? x->type.dims[d] - 1 - idx[d] : idx[d]) * xs[d];
        milk_layout_copy(o, i, x, src);
        milk_layout_next(r, o->type.dims, idx);
    }
    return MILK_OK;
}

/* reverse: x with the order of its elements reversed along axes.
 *   x     R    fp16/fp32/int32/bool (iOS17 adds int8, uint8, int16,
 *              uint16)
 *   axes  O C  int32 [K], each in [-rank, rank); default: every dim. An
 *              axis listed twice is flipped twice (so not at all)
 * Output: x's type. */
static const milk_param reverse_params[] = {
    {"x", MILK_P_REQ, 0},
    {"axes", MILK_P_CONST, 0},
    {0},
};

const milk_op_info milk_op_reverse = {
    .name = "reverse",
    .params = reverse_params,
    .min_opset = MILK_TARGET_IOS15,
    .infer = reverse_infer,
    .eval = reverse_eval,
};
