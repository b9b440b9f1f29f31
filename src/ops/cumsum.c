/* cumsum.c: the cumsum op, running sums along one axis, after coremltools'
 * ops/defs/iOS15/tensor_operation.py (no later opset changes it). */
#include "layout.h"

static milk_status cumsum_infer(milk_infer *ic)
{
    const milk_tensor_type *x;
    int64_t axis;
    bool b;
    MILK_TRY(milk_infer_tensor(ic, "x", MILK_DT_NUM, 1, -1, &x));
    MILK_TRY(milk_infer_int(ic, "axis", MILK_DT_INT32, 0, &axis));
    /* coremltools' check, which admits -1 but no other negative axis */
    if (axis < -1 || axis >= x->rank)
        return milk_op_fail(ic->ctx, ic->op, "axis",
                            "%lld is outside [-1, %d]", (long long)axis,
                            (int)x->rank - 1);
    MILK_TRY(milk_op_bool(ic->ctx, ic->op, "exclusive", false, &b));
    MILK_TRY(milk_op_bool(ic->ctx, ic->op, "reverse", false, &b));
    return milk_infer_one(ic, x->dtype, x->rank, x->dims);
}

/* Along the axis, in order (from the end with reverse): out = the sum so
 * far, x added after the store when exclusive, before it otherwise. Floats
 * sum in double; int32 sums wrap around in 32 bits (two's complement). */
static milk_status cumsum_eval(milk_eval *ec)
{
    const milk_rt *x = milk_eval_in(ec, "x");
    milk_rt *o = &ec->out[0];
    int64_t ax;
    bool exclusive, reverse;
    MILK_TRY(milk_op_int(ec->ctx, ec->op, "axis", 0, &ax));
    MILK_TRY(milk_op_bool(ec->ctx, ec->op, "exclusive", false, &exclusive));
    MILK_TRY(milk_op_bool(ec->ctx, ec->op, "reverse", false, &reverse));
    int axis = (int)(ax < 0 ? ax + x->type.rank : ax);
    int64_t P = milk_dims_span(x->type.dims, 0, axis), A = x->type.dims[axis];
    int64_t Q = milk_dims_span(x->type.dims, axis + 1, x->type.rank);
    bool ints = x->store == MILK_DTYPE_INT32;
    /* x: [P, A, Q]; the sum runs along A */
    for (int64_t p = 0; p < P; p++)
        for (int64_t q = 0; q < Q; q++) {
            double fsum = 0;
            uint32_t isum = 0; /* unsigned: wraps without overflow */
            for (int64_t k = 0; k < A; k++) {
                int64_t at = (p * A + (reverse ? A - 1 - k : k)) * Q + q;
                if (ints) {
                    uint32_t v = (uint32_t)milk_rt_i32(x)[at];
                    isum += exclusive ? 0 : v;
                    milk_rt_i32(o)[at] = (int32_t)isum;
                    isum += exclusive ? v : 0;
                } else {
                    double v = milk_rt_f32(x)[at];
                    fsum += exclusive ? 0 : v;
                    milk_rt_f32(o)[at] = (float)fsum;
                    fsum += exclusive ? v : 0;
                }
            }
        }
    return MILK_OK;
}

/* cumsum: running sums along an axis.
 *   x          R    rank >= 1, fp16/fp32/int32
 *   axis       O C  int32, default 0, in [-1, rank) (coremltools admits
 *                   no other negative axis)
 *   exclusive  O C  bool, default false: out[i] sums x[0..i) instead of
 *                   x[0..i] (out[0] = 0)
 *   reverse    O C  bool, default false: sum from the end, out[i] over
 *                   x[i..n) (or x(i..n) when exclusive)
 * Output: x's type. */
static const milk_param cumsum_params[] = {
    {"x", MILK_P_REQ, 0},
    {"axis", MILK_P_CONST, 0},
    {"exclusive", MILK_P_CONST, 0},
    {"reverse", MILK_P_CONST, 0},
    {0},
};

const milk_op_info milk_op_cumsum = {
    .name = "cumsum",
    .params = cumsum_params,
    .min_opset = MILK_TARGET_IOS15,
    .infer = cumsum_infer,
    .eval = cumsum_eval,
};
