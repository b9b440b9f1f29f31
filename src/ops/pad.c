/* pad.c: the pad op (constant, reflect, replicate), after coremltools'
 * ops/defs/iOS15/tensor_operation.py. */
#include "layout.h"

/* The widest a pad may be along a dim of size d for a mode (INT64_MAX:
 * any). An empty dim has nothing to reflect or replicate. */
static int64_t max_pad(const char *mode, int64_t d)
{
    if (!MILK_DIM_KNOWN(d)) return INT64_MAX;
    if (!strcmp(mode, "reflect")) return d - 1;
    if (!strcmp(mode, "replicate")) return d;
    return INT64_MAX;
}

/* Grow the last n/2 dims of dims by the (before, after) pairs in p. */
static milk_status pad_dims(milk_infer *ic, const char *mode,
                            const int64_t *p, int n, int rank, int64_t *dims)
{
    for (int i = 0; i < n / 2; i++) {
        int d = rank - n / 2 + i;
        int64_t lim = max_pad(mode, dims[d]);
        for (int j = 0; j < 2; j++) {
            if (p[2 * i + j] < 0 || p[2 * i + j] > lim)
                return milk_op_fail(ic->ctx, ic->op, "pad",
                                    "%lld at entry %d: must be in 0..%lld "
                                    "for mode %s on a dim of %lld",
                                    (long long)p[2 * i + j], 2 * i + j,
                                    (long long)(lim < INT64_MAX ? lim
                                                                : INT32_MAX),
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

/* ---- kernel ------------------------------------------------------------ */

/* (before, after) for every dim of x: the pad's pairs aligned to the last
 * dims, zeros before them; they must account for the output's dims. */
static milk_status eval_pads(milk_eval *ec, const milk_rt *x,
                             const char *mode, int64_t *before)
{
    int64_t p[2 * MILK_MAX_RANK];
    int n, r = x->type.rank;
    MILK_TRY(milk_eval_ints(ec, "pad", p, 2 * MILK_MAX_RANK, &n, NULL));
    if (n % 2 || n > 2 * r)
        return milk_op_fail(ec->ctx, ec->op, "pad", "%d entries for rank %d",
                            n, r);
    for (int d = 0; d < r; d++) {
        int k = d - (r - n / 2);
        int64_t b = k >= 0 ? p[2 * k] : 0, a = k >= 0 ? p[2 * k + 1] : 0;
        int64_t dim = x->type.dims[d], lim = max_pad(mode, dim);
        if (b < 0 || a < 0 || b > lim || a > lim ||
            dim + b + a != ec->out[0].type.dims[d])
            return milk_op_fail(ec->ctx, ec->op, "pad",
                                "(%lld, %lld) on dim %d of %lld: out of "
                                "range for mode %s or the output size",
                                (long long)b, (long long)a, d,
                                (long long)dim, mode);
        before[d] = b;
    }
    return MILK_OK;
}

/* The index in x of output index i along a dim of size d padded by b in
 * front, or -1 for the constant. reflect mirrors about the edge elements
 * (x[1] before x[0]); replicate repeats them. */
static int64_t pad_source(const char *mode, int64_t i, int64_t b, int64_t d)
{
    int64_t j = i - b;
    if (j >= 0 && j < d) return j;
    if (!strcmp(mode, "constant")) return -1;
    if (!strcmp(mode, "replicate")) return j < 0 ? 0 : d - 1;
    return j < 0 ? -j : 2 * (d - 1) - j; /* reflect, pad < d */
}

static milk_status pad_eval(milk_eval *ec)
{
    const milk_rt *x = milk_eval_in(ec, "x");
    milk_rt *o = &ec->out[0];
    const char *mode;
    float cv;
    int r = x->type.rank;
    int64_t before[MILK_MAX_RANK], xs[MILK_MAX_RANK], idx[MILK_MAX_RANK] = {0};
    MILK_TRY(milk_op_str(ec->ctx, ec->op, "mode", "constant", &mode));
    MILK_TRY(milk_eval_f32(ec, "constant_val", 0.0f, &cv));
    MILK_TRY(eval_pads(ec, x, mode, before));
    milk_strides(&x->type, xs);
    /* out: x's dims grown by the pads, row-major */
    for (int64_t i = 0; i < o->count; i++) {
        int64_t src = 0;
        for (int d = 0; d < r && src >= 0; d++) {
            int64_t j = pad_source(mode, idx[d], before[d], x->type.dims[d]);
            src = j < 0 ? -1 : src + j * xs[d];
        }
        if (src >= 0) milk_rt_f32(o)[i] = milk_rt_f32(x)[src];
        else milk_rt_f32(o)[i] = cv;
        milk_layout_next(r, o->type.dims, idx);
    }
    return MILK_OK;
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
 * unknown for a run-time pad). constant fills the pad with constant_val;
 * reflect mirrors x about its edge elements (PyTorch's and NumPy's
 * "reflect": [c b | a b c | b a]); replicate repeats the edge elements. */
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
    .eval = pad_eval,
};
