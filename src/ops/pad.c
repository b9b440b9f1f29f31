/* pad.c: the pad op (constant, reflect, replicate), after coremltools'
 * ops/defs/iOS15/tensor_operation.py. */
#include "infer.h"

/* The widest a pad may be along a dim of size d for a mode (-1: any). */
static int64_t max_pad(const char *mode, int64_t d)
{
    if (!MILK_DIM_KNOWN(d)) return -1;
    if (!strcmp(mode, "reflect")) return d - 1;
    if (!strcmp(mode, "replicate")) return d;
    return -1;
}

/* Grow the last n/2 dims of dims by the (before, after) pairs in p. */
static milk_status pad_dims(milk_infer *ic, const char *mode,
                            const int64_t *p, int n, int rank, int64_t *dims)
{
    for (int i = 0; i < n / 2; i++) {
        int d = rank - n / 2 + i;
        int64_t lim = max_pad(mode, dims[d]);
        for (int j = 0; j < 2; j++) {
            if (p[2 * i + j] < 0 || (lim >= 0 && p[2 * i + j] > lim))
                return milk_op_fail(ic->ctx, ic->op, "pad",
                                    "%lld at entry %d: must be in 0..%lld "
                                    "for mode %s on a dim of %lld",
                                    (long long)p[2 * i + j], 2 * i + j,
                                    (long long)(lim >= 0 ? lim : INT32_MAX),
                                    mode, (long long)dims[d]);
        }
        if (MILK_DIM_KNOWN(dims[d]) &&
            __builtin_add_overflow(dims[d], p[2 * i] + p[2 * i + 1], &dims[d]))
            return milk_op_fail(ic->ctx, ic->op, "pad", "size overflows");
    }
    return MILK_OK;
}

static milk_status pad_infer(milk_infer *ic)
{
    static const char *const xc[] = {"x", "constant_val", NULL};
    const milk_tensor_type *x, *pt;
    const char *mode;
    int64_t p[2 * MILK_MAX_RANK], dims[MILK_MAX_RANK];
    int n;
    MILK_TRY(milk_infer_tensor(ic, "x", MILK_DT_FLOAT, 0, -1, &x));
    MILK_TRY(milk_infer_domain(ic, xc, MILK_DT_FLOAT));
    MILK_TRY(milk_infer_tensor(ic, "pad", MILK_DT_INT32, 1, 1, &pt));
    MILK_TRY(milk_op_str(ic->ctx, ic->op, "mode", "constant", &mode));
    if (!mode || (strcmp(mode, "constant") && strcmp(mode, "reflect") &&
                  strcmp(mode, "replicate")))
        return milk_op_fail(ic->ctx, ic->op, "mode",
                            "'%s' is not one of constant, reflect, replicate",
                            mode ? mode : "");
    const milk_tensor_type *cv = milk_op_in_type(ic->op, "constant_val");
    if (cv && milk_tensor_type_count(cv) != 1)
        return milk_op_fail(ic->ctx, ic->op, "constant_val",
                            "expected a scalar");
    memcpy(dims, x->dims, sizeof dims);
    if (!milk_infer_is_const(ic, "pad")) {
        /* a run-time pad covers every dim: all sizes become unknown */
        if (pt->dims[0] != 2 * x->rank)
            return milk_op_fail(ic->ctx, ic->op, "pad",
                                "a run-time pad needs %d entries (2 per dim "
                                "of x)",
                                2 * (int)x->rank);
        for (int i = 0; i < x->rank; i++) dims[i] = MILK_DIM_UNKNOWN;
        return milk_infer_one(ic, x->dtype, x->rank, dims);
    }
    MILK_TRY(milk_infer_ints(ic, "pad", MILK_DT_INT32, p, 2 * MILK_MAX_RANK,
                             &n, NULL));
    if (n % 2 != 0 || n > 2 * x->rank)
        return milk_op_fail(ic->ctx, ic->op, "pad",
                            "%d entries: expected an even number, at most %d",
                            n, 2 * (int)x->rank);
    MILK_TRY(pad_dims(ic, mode, p, n, x->rank, dims));
    return milk_infer_one(ic, x->dtype, x->rank, dims);
}

/* pad: pads the last N dims of x.
 *   x             R    fp16/fp32
 *   pad           R    int32 [2N], N <= rank: (before, after) for each of
 *                      the last N dims in order; may be a run-time value,
 *                      then N == rank. reflect pads at most D-1, replicate
 *                      at most D
 *   mode          O C  "constant" (default), "reflect", "replicate"
 *   constant_val  O C  scalar of x's dtype, default 0
 * Output: x's shape with each padded dim grown by its two pads (every dim
 * unknown for a run-time pad). */
static const milk_param pad_params[] = {
    {"x", MILK_P_REQ, 0},
    {"pad", MILK_P_REQ, 0},
    {"mode", MILK_P_CONST, 0},
    {"constant_val", MILK_P_CONST, 0},
    {0},
};

const milk_op_info milk_op_pad = {
    .name = "pad",
    .params = pad_params,
    .min_opset = MILK_TARGET_IOS15,
    .infer = pad_infer,
};
