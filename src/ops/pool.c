/* pool.c: max_pool and avg_pool over 1 to 3 spatial dims, after
 * coremltools' ops/defs/iOS15/pool.py (the only definition; later opsets
 * reuse it). */
#include "infer.h"

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
    MILK_TRY(milk_infer_tensor(ic, "x", MILK_DT_FLOAT, 3, 5, &x));
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
 * (coremltools' rule: unlike PyTorch, no window is dropped without pad). */
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
};

const milk_op_info milk_op_avg_pool = {
    .name = "avg_pool",
    .params = avg_pool_params,
    .min_opset = MILK_TARGET_IOS15,
    .infer = pool_infer,
};
