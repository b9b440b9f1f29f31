/* pool.c: max_pool and avg_pool over 1 to 3 spatial dims and l2_pool over
 * 1 or 2, after coremltools' ops/defs/iOS15/pool.py (the only definition;
 * later opsets reuse it). */
#include "fast.h"
#include "layout.h"

#include <math.h>
#include <strings.h>

/* kernel_sizes, strides and pad, each checked against its lower bound. */
static milk_status read_pool_ints(milk_infer *ic, int S, int64_t *k,
                                  int64_t *s, int64_t *pad)
{
    MILK_TRY(milk_infer_ints_n(ic, "kernel_sizes", MILK_DT_INT32, S, 1, k,
                               NULL));
    MILK_TRY(milk_infer_ints_n(ic, "strides", MILK_DT_INT32, S, 1, s, NULL));
    MILK_TRY(milk_infer_ints_n(ic, "pad", MILK_DT_INT32, 2 * S, 0, pad,
                               NULL));
    for (int i = 0; i < S; i++) {
        if (k[i] < 1)
            return milk_op_fail(ic->ctx, ic->op, "kernel_sizes",
                                "%lld at %d is below 1", (long long)k[i], i);
        if (s[i] < 1)
            return milk_op_fail(ic->ctx, ic->op, "strides",
                                "%lld at %d is below 1", (long long)s[i], i);
    }
    for (int i = 0; i < 2 * S; i++)
        if (pad[i] < 0)
            return milk_op_fail(ic->ctx, ic->op, "pad",
                                "%lld at %d is negative", (long long)pad[i],
                                i);
    int64_t window;
    if (!milk_dims_count(k, S, &window))
        return milk_op_fail(ic->ctx, ic->op, "kernel_sizes",
                            "the window holds more than 2^40 elements");
    return MILK_OK;
}

/* coremltools' ceil_mode rules: 1-D or 2-D only, not with "same", and a
 * symmetric pad. */
static milk_status check_ceil_mode(milk_infer *ic, int S, milk_pad_type pt,
                                   const int64_t *pad)
{
    if (S > 2)
        return milk_op_fail(ic->ctx, ic->op, "ceil_mode",
                            "only for 1-D and 2-D pooling");
    if (pt == MILK_PAD_SAME)
        return milk_op_fail(ic->ctx, ic->op, "ceil_mode",
                            "must be false with pad_type same");
    for (int i = 0; i < S; i++)
        if (pad[2 * i] != pad[2 * i + 1])
            return milk_op_fail(ic->ctx, ic->op, "pad",
                                "must be symmetric with ceil_mode");
    return MILK_OK;
}

static milk_status pool_infer(milk_infer *ic)
{
    const milk_tensor_type *x;
    int64_t k[3], s[3], pad[6], dims[5];
    const char *pts;
    milk_pad_type pt;
    bool ceil_mode, exclude;
    /* l2_pool: 1-D and 2-D only */
    int hi = ic->op->kind == MILK_OP_l2_pool ? 4 : 5;
    MILK_TRY(milk_infer_tensor(ic, "x", MILK_DT_FLOAT, 3, hi, &x));
    int S = x->rank - 2;
    MILK_TRY(read_pool_ints(ic, S, k, s, pad));
    MILK_TRY(milk_op_str(ic->ctx, ic->op, "pad_type", NULL, &pts));
    MILK_TRY(milk_infer_pad_type(ic, "pad_type", pts, true, &pt));
    MILK_TRY(milk_op_bool(ic->ctx, ic->op, "ceil_mode", false, &ceil_mode));
    if (ceil_mode) MILK_TRY(check_ceil_mode(ic, S, pt, pad));
    /* avg_pool only (absent, so false, for max_pool) */
    MILK_TRY(milk_op_bool(ic->ctx, ic->op, "exclude_padding_from_average",
                          false, &exclude));
    dims[0] = x->dims[0];
    dims[1] = x->dims[1];
    for (int i = 0; i < S; i++) {
        milk_window w = {x->dims[2 + i], k[i], s[i], 1,
                         {pad[2 * i], pad[2 * i + 1]}};
        MILK_TRY(milk_window_out(ic, pt, &w, ceil_mode, i, &dims[2 + i]));
    }
    return milk_infer_one(ic, x->dtype, x->rank, dims);
}

/* ---- kernels ------------------------------------------------------------ */

typedef enum pool_kind { POOL_MAX, POOL_AVG, POOL_L2 } pool_kind;

/* The window geometry of one op: per spatial dim the input and output
 * sizes, kernel, stride, the padding placed before index 0, and the
 * stride of the dim within one [*D] plane of x. */
typedef milk_pool_geom pool_geom;

milk_status milk_pool_geometry(milk_eval *ec, const milk_rt *x,
                                 const milk_rt *o, pool_geom *g)
{
    int64_t pad[6] = {0};
    const char *pts;
    milk_pad_type pt = MILK_PAD_VALID;
    int n;
    bool has;
    g->S = x->type.rank - 2;
    MILK_TRY(milk_op_ints(ec->ctx, ec->op, "kernel_sizes", g->k, 3, &n, NULL));
    MILK_TRY(milk_op_ints(ec->ctx, ec->op, "strides", g->s, 3, &n, &has));
    for (int i = 0; !has && i < g->S; i++) g->s[i] = 1;
    MILK_TRY(milk_op_ints(ec->ctx, ec->op, "pad", pad, 6, &n, NULL));
    MILK_TRY(milk_op_str(ec->ctx, ec->op, "pad_type", "valid", &pts));
    if (!strcasecmp(pts, "same")) pt = MILK_PAD_SAME;
    else if (!strcasecmp(pts, "same_lower")) pt = MILK_PAD_SAME_LOWER;
    else if (!strcasecmp(pts, "custom")) pt = MILK_PAD_CUSTOM;
    for (int i = 0; i < g->S; i++) {
        milk_window w = {x->type.dims[2 + i], g->k[i], g->s[i], 1,
                         {pad[2 * i], pad[2 * i + 1]}};
        int64_t after;
        g->in[i] = x->type.dims[2 + i];
        g->out[i] = o->type.dims[2 + i];
        if (!milk_window_pads(pt, &w, &g->before[i], &after))
            return milk_op_fail(ec->ctx, ec->op, "pad", "sizes overflow");
    }
    for (int d = 0; d < g->S; d++) g->st[d] = milk_dims_span(g->in, d + 1, g->S);
    g->window = milk_dims_span(g->k, 0, g->S); /* checked by inference */
    return MILK_OK;
}

/* One output element: the window at output position oi over one [*D]
 * plane of x (starting at `plane`), clipped to x (padding holds nothing:
 * it is -inf for max and 0 for the sums). */
static float pool_one(pool_kind kind, bool exclude, const pool_geom *g,
                      const float *plane, const int64_t *oi)
{
    int64_t lo[3] = {0}, dims[3] = {1, 1, 1}, idx[3] = {0, 0, 0};
    int64_t count = 1;
    for (int d = 0; d < g->S; d++) {
        int64_t a = oi[d] * g->s[d] - g->before[d], b = a + g->k[d];
        lo[d] = a > 0 ? a : 0;
        dims[d] = (b < g->in[d] ? b : g->in[d]) - lo[d];
        if (dims[d] < 0) dims[d] = 0;
        count *= dims[d]; /* a part of x's shape */
    }
    double acc = kind == POOL_MAX ? -INFINITY : 0.0;
    /* the clipped window: [dims[0], ..., dims[S-1]] */
    for (int64_t i = 0; i < count; i++) {
        int64_t at = 0;
        for (int d = 0; d < g->S; d++) at += (lo[d] + idx[d]) * g->st[d];
        double v = plane[at];
        if (kind == POOL_MAX) acc = v > acc || isnan(v) ? v : acc;
        else acc += kind == POOL_L2 ? v * v : v;
        milk_layout_next(g->S, dims, idx);
    }
    if (kind == POOL_L2) return (float)sqrt(acc);
    if (kind == POOL_AVG) {
        /* without exclude the divisor is the whole kernel, padding and
         * ceil_mode overhang included (Core ML's rule, see
         * docs/coreml-defects.md) */
        int64_t div = exclude ? count : g->window;
        return div ? (float)(acc / (double)div) : 0.0f;
    }
    return (float)acc;
}

static milk_status pool_eval(milk_eval *ec, pool_kind kind)
{
    const milk_rt *x = milk_eval_in(ec, "x");
    milk_rt *o = &ec->out[0];
    pool_geom g;
    bool exclude;
    MILK_TRY(milk_pool_geometry(ec, x, o, &g));
    MILK_TRY(milk_op_bool(ec->ctx, ec->op, "exclude_padding_from_average",
                          false, &exclude));
    int64_t planes = milk_dims_span(x->type.dims, 0, 2);
    int64_t in_sz = milk_dims_span(g.in, 0, g.S), out_sz = milk_dims_span(g.out, 0, g.S);
    /* out: [N * C, *D_out] */
    for (int64_t p = 0; p < planes; p++) {
        int64_t oi[3] = {0, 0, 0};
        for (int64_t j = 0; j < out_sz; j++) {
            milk_rt_f32(o)[p * out_sz + j] =
                pool_one(kind, exclude, &g, milk_rt_f32(x) + p * in_sz, oi);
            milk_layout_next(g.S, g.out, oi);
        }
    }
    return MILK_OK;
}

static milk_status max_pool_eval(milk_eval *ec)
{
    return pool_eval(ec, POOL_MAX);
}

static milk_status avg_pool_eval(milk_eval *ec)
{
    return pool_eval(ec, POOL_AVG);
}

static milk_status l2_pool_eval(milk_eval *ec)
{
    return pool_eval(ec, POOL_L2);
}

/* max_pool, avg_pool: pooling windows over 1 to 3 spatial dims.
 *   x                             R    [N, C, *D] (rank 3 to 5), fp16/fp32
 *   kernel_sizes                  R C  int32 [S]
 *   strides                       O C  int32 [S], default 1s
 *   pad_type                      R C  "valid", "same", "custom",
 *                                      "same_lower" (iOS16+), any case
 *   pad                           O C  int32 [2S], default 0s; used for
 *                                      "custom"
 *   ceil_mode                     O C  bool, default false; 1-D and 2-D
 *                                      only, not with "same", symmetric
 *                                      pad
 *   exclude_padding_from_average  O C  bool, default false (avg_pool only)
 * Output: [N, C, *D_out], D_out = floor((D + pad_before + pad_after - K) /
 * stride) + 1; with ceil_mode the division rounds up, and a last window
 * that would start in the trailing pad is dropped when the pad is not 0
 * (coremltools' rule: unlike PyTorch, no window is dropped without pad).
 * Window j along a dim covers x[j * stride - pad_before, ... + K), the
 * pad_before of "same" being floor(total / 2) (ceil for "same_lower").
 * max_pool takes the largest element of x in it (NaN if any is NaN);
 * avg_pool sums the elements of x in it and divides by the whole kernel
 * size K_0 * ... * K_{S-1}, padding and the ceil_mode overhang past the
 * pad counted as zeros (Core ML's rule; PyTorch's count_include_pad never
 * counts the overhang), or with exclude_padding_from_average by the number
 * of elements of x in it. A window holding no element of x gives -inf
 * (max) or 0 (avg). */
static const milk_param max_pool_params[] = {
    {"x", MILK_P_REQ, 0},
    {"kernel_sizes", MILK_P_REQ | MILK_P_CONST, 0},
    {"strides", MILK_P_CONST, 0},
    {"pad_type", MILK_P_REQ | MILK_P_CONST, 0},
    {"pad", MILK_P_CONST, 0},
    {"ceil_mode", MILK_P_CONST, 0},
    {0},
};

static const milk_param avg_pool_params[] = {
    {"x", MILK_P_REQ, 0},
    {"kernel_sizes", MILK_P_REQ | MILK_P_CONST, 0},
    {"strides", MILK_P_CONST, 0},
    {"pad_type", MILK_P_REQ | MILK_P_CONST, 0},
    {"pad", MILK_P_CONST, 0},
    {"ceil_mode", MILK_P_CONST, 0},
    {"exclude_padding_from_average", MILK_P_CONST, 0},
    {0},
};

const milk_op_info milk_op_max_pool = {
    .name = "max_pool",
    .params = max_pool_params,
    .min_opset = MILK_TARGET_IOS15,
    .infer = pool_infer,
    .eval = max_pool_eval,
};

const milk_op_info milk_op_avg_pool = {
    .name = "avg_pool",
    .params = avg_pool_params,
    .min_opset = MILK_TARGET_IOS15,
    .infer = pool_infer,
    .eval = avg_pool_eval,
};

/* l2_pool: sqrt of the sum of squares over each window.
 *   x, kernel_sizes, strides, pad_type, pad, ceil_mode: as max_pool, but x
 *   is [N, C, *D] of rank 3 or 4 (1-D and 2-D only)
 * Output: as max_pool; padding contributes nothing to the sums. */
const milk_op_info milk_op_l2_pool = {
    .name = "l2_pool",
    .params = max_pool_params,
    .min_opset = MILK_TARGET_IOS15,
    .infer = pool_infer,
    .eval = l2_pool_eval,
};
