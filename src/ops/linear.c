/* linear.c: linear (x * weight^T + bias) and matmul (NumPy matmul with
 * optional transposes), after coremltools' ops/defs/iOS15/linear.py and
 * iOS17/linear.py. */
#include "infer.h"

static milk_status linear_infer(milk_infer *ic)
{
    static const char *const wb[] = {"weight", "bias", NULL};
    const milk_tensor_type *x, *w;
    MILK_TRY(milk_infer_tensor(ic, "x", MILK_DT_NUM, 1, -1, &x));
    MILK_TRY(milk_infer_tensor(ic, "weight", MILK_DT_NUM, 2, 2, &w));
    MILK_TRY(milk_infer_params_dtype(ic, "x", wb, MILK_DT_NUM));
    int64_t d_in = x->dims[x->rank - 1];
    if (MILK_DIM_KNOWN(d_in) && MILK_DIM_KNOWN(w->dims[1]) &&
        d_in != w->dims[1])
        return milk_op_fail(ic->ctx, ic->op, "weight",
                            "x has %lld features (last dim), weight "
                            "[%lld, %lld] expects %lld",
                            (long long)d_in, (long long)w->dims[0],
                            (long long)w->dims[1], (long long)w->dims[1]);
    const milk_tensor_type *b = milk_op_in_type(ic->op, "bias");
    if (b && (b->rank != 1 || (MILK_DIM_KNOWN(b->dims[0]) &&
                               MILK_DIM_KNOWN(w->dims[0]) &&
                               b->dims[0] != w->dims[0])))
        return milk_op_fail(ic->ctx, ic->op, "bias",
                            "expected shape [%lld]", (long long)w->dims[0]);
    int64_t dims[MILK_MAX_RANK];
    memcpy(dims, x->dims, sizeof dims);
    dims[x->rank - 1] = w->dims[0];
    return milk_infer_one(ic, x->dtype, x->rank, dims);
}

/* linear: x * weight^T + bias over the last dimension of x.
 *   x       R    [*D, D_in], fp16/fp32/int32; rank 1 to 3 in coremltools'
 *                documentation, any rank >= 1 in its type inference
 *                (its PyTorch frontend emits rank 4), so any rank >= 1
 *   weight  R C  [D_out, D_in]; from iOS17 its dtype may differ from x's
 *   bias    O C  [D_out], same dtype as weight; default zeros
 * Output: [*D, D_out], dtype of x. */
static const milk_param linear_params[] = {
    {"x", MILK_P_REQ, 0},
    {"weight", MILK_P_REQ | MILK_P_CONST, 0},
    {"bias", MILK_P_CONST, 0},
    {0},
};

const milk_op_info milk_op_linear = {
    .name = "linear",
    .params = linear_params,
    .min_opset = MILK_TARGET_IOS15,
    .infer = linear_infer,
};

/* The output dtype of matmul. Before iOS17 x and y share a dtype. From
 * iOS17 they may differ when exactly one of them is a constant; the output
 * then takes the other's dtype. */
static milk_status matmul_dtype(milk_infer *ic, const milk_tensor_type *x,
                                const milk_tensor_type *y, milk_dtype *out)
{
    *out = x->dtype;
    if (x->dtype == y->dtype) return MILK_OK;
    bool xc = milk_infer_is_const(ic, "x"), yc = milk_infer_is_const(ic, "y");
    if (ic->opset < MILK_TARGET_IOS17 || xc == yc)
        return milk_op_fail(ic->ctx, ic->op, "y",
                            "dtype %s differs from x's %s%s",
                            milk_infer_dtype_name(y->dtype),
                            milk_infer_dtype_name(x->dtype),
                            ic->opset < MILK_TARGET_IOS17
                                ? ""
                                : " (allowed only when one of them is a "
                                  "constant)");
    *out = xc ? y->dtype : x->dtype;
    return MILK_OK;
}

/* Shape of one operand as matmul sees it: transposed if asked, rank 1
 * promoted to a matrix ([1, K] for x, [K, 1] for y). */
static milk_status matmul_operand(milk_infer *ic, const char *param,
                                  const char *tparam, bool is_x,
                                  milk_tensor_type *t)
{
    bool tr;
    MILK_TRY(milk_op_bool(ic->ctx, ic->op, tparam, false, &tr));
    if (tr && t->rank == 1)
        return milk_op_fail(ic->ctx, ic->op, tparam,
                            "'%s' has rank 1 and cannot be transposed", param);
    if (tr) {
        int64_t d = t->dims[t->rank - 1];
        t->dims[t->rank - 1] = t->dims[t->rank - 2];
        t->dims[t->rank - 2] = d;
    }
    if (t->rank == 1) {
        t->dims[1] = is_x ? t->dims[0] : 1;
        t->dims[0] = is_x ? 1 : t->dims[0];
        t->rank = 2;
    }
    return MILK_OK;
}

static milk_status matmul_infer(milk_infer *ic)
{
    const milk_tensor_type *xt, *yt;
    milk_dtype dt;
    MILK_TRY(milk_infer_tensor(ic, "x", MILK_DT_NUM, 1, -1, &xt));
    MILK_TRY(milk_infer_tensor(ic, "y", MILK_DT_NUM, 1, -1, &yt));
    MILK_TRY(matmul_dtype(ic, xt, yt, &dt));
    milk_tensor_type x = *xt, y = *yt, out = {dt, 0, {0}};
    MILK_TRY(matmul_operand(ic, "x", "transpose_x", true, &x));
    MILK_TRY(matmul_operand(ic, "y", "transpose_y", false, &y));
    int64_t k1 = x.dims[x.rank - 1], k2 = y.dims[y.rank - 2];
    if (MILK_DIM_KNOWN(k1) && MILK_DIM_KNOWN(k2) && k1 != k2)
        return milk_op_fail(ic->ctx, ic->op, "y",
                            "inner dimensions differ: %lld (x) vs %lld (y)",
                            (long long)k1, (long long)k2);
    /* batch dims broadcast; then [M, N]; promoted dims are dropped */
    milk_tensor_type bx = x, by = y;
    bx.rank -= 2;
    by.rank -= 2;
    MILK_TRY(milk_op_broadcast(ic->ctx, ic->op, &bx, &by, &out));
    out.dims[out.rank++] = x.dims[x.rank - 2];
    out.dims[out.rank++] = y.dims[y.rank - 1];
    if (yt->rank == 1) out.rank--;
    if (xt->rank == 1) {
        out.dims[out.rank - 2 + (yt->rank == 1)] = out.dims[out.rank - 1];
        out.rank--;
    }
    return milk_infer_one(ic, dt, out.rank, out.dims);
}

/* matmul: NumPy matmul of x and y.
 *   x            R    rank >= 1, fp16/fp32/int32
 *   y            R    rank >= 1; same dtype as x, except from iOS17 when
 *                     exactly one of x and y is a constant (the output then
 *                     has the other one's dtype)
 *   transpose_x  O C  bool, default false: swap x's last two dims
 *   transpose_y  O C  bool, default false: swap y's last two dims
 * Rank-1 operands are promoted to [1, K] (x) and [K, 1] (y) and the added
 * dim is removed from the output; transposing a rank-1 operand is an error.
 * Output: broadcast(x batch dims, y batch dims) + [M, N]. */
static const milk_param matmul_params[] = {
    {"x", MILK_P_REQ, 0},
    {"y", MILK_P_REQ, 0},
    {"transpose_x", MILK_P_CONST, 0},
    {"transpose_y", MILK_P_CONST, 0},
    {0},
};

const milk_op_info milk_op_matmul = {
    .name = "matmul",
    .params = matmul_params,
    .min_opset = MILK_TARGET_IOS15,
    .infer = matmul_infer,
};
