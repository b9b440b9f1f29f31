/* conv.c: conv and conv_transpose (1-D to 3-D), after coremltools'
 * iOS15 and iOS17 definitions (ops/defs/iOS15/conv.py, iOS17/conv.py). */
#include "infer.h"

/* The window parameters both ops share, for S spatial dimensions. */
typedef struct conv_args {
    int S;
    int64_t strides[3], dilations[3], pad[6], groups;
    milk_pad_type pad_type;
} conv_args;

static milk_status check_min(milk_infer *ic, const char *param,
                             const int64_t *v, int n, int64_t min)
{
    for (int i = 0; i < n; i++)
        if (v[i] < min)
            return milk_op_fail(ic->ctx, ic->op, param,
                                "value %lld at %d is below %lld",
                                (long long)v[i], i, (long long)min);
    return MILK_OK;
}

/* strides, dilations, pad_type, pad and groups with their defaults (1s,
 * 1s, "valid", 0s, 1). pad is read only for pad_type custom: coremltools
 * ignores it otherwise. */
static milk_status read_conv_args(milk_infer *ic, int S, conv_args *a)
{
    a->S = S;
    MILK_TRY(milk_infer_ints_n(ic, "strides", MILK_DT_INT32, S, 1, a->strides,
                               NULL));
    MILK_TRY(check_min(ic, "strides", a->strides, S, 1));
    MILK_TRY(milk_infer_ints_n(ic, "dilations", MILK_DT_INT32, S, 1,
                               a->dilations, NULL));
    MILK_TRY(check_min(ic, "dilations", a->dilations, S, 1));
    const char *pt;
    MILK_TRY(milk_op_str(ic->ctx, ic->op, "pad_type", "valid", &pt));
    MILK_TRY(milk_infer_pad_type(ic, "pad_type", pt, false, &a->pad_type));
    if (a->pad_type == MILK_PAD_CUSTOM) {
        MILK_TRY(milk_infer_ints_n(ic, "pad", MILK_DT_INT32, 2 * S, 0, a->pad,
                                   NULL));
        MILK_TRY(check_min(ic, "pad", a->pad, 2 * S, 0));
    } else {
        memset(a->pad, 0, sizeof a->pad);
    }
    MILK_TRY(milk_infer_int(ic, "groups", MILK_DT_INT32, 1, &a->groups));
    if (a->groups < 1)
        return milk_op_fail(ic->ctx, ic->op, "groups", "%lld is below 1",
                            (long long)a->groups);
    return MILK_OK;
}

static milk_window window_of(const conv_args *a, const milk_tensor_type *x,
                             const milk_tensor_type *w, int i)
{
    milk_window win = {x->dims[2 + i], w->dims[2 + i], a->strides[i],
                       a->dilations[i], {a->pad[2 * i], a->pad[2 * i + 1]}};
    return win;
}

/* bias, when bound, is [C_out]. */
static milk_status check_bias(milk_infer *ic, int64_t c_out)
{
    const milk_tensor_type *b = milk_op_in_type(ic->op, "bias");
    if (!b) return MILK_OK;
    if (b->rank != 1)
        return milk_op_fail(ic->ctx, ic->op, "bias", "rank %d, expected 1",
                            (int)b->rank);
    if (MILK_DIM_KNOWN(b->dims[0]) && MILK_DIM_KNOWN(c_out) &&
        b->dims[0] != c_out)
        return milk_op_fail(ic->ctx, ic->op, "bias",
                            "%lld values for %lld output channels",
                            (long long)b->dims[0], (long long)c_out);
    return MILK_OK;
}

/* conv: C_in divisible by groups, weight [C_out, C_in / groups, *K],
 * C_out divisible by groups. */
static milk_status check_conv_groups(milk_infer *ic,
                                     const milk_tensor_type *x,
                                     const milk_tensor_type *w, int64_t g)
{
    int64_t c_in = x->dims[1], c_out = w->dims[0], wc = w->dims[1];
    if (MILK_DIM_KNOWN(c_in) && c_in % g != 0)
        return milk_op_fail(ic->ctx, ic->op, "groups",
                            "x has %lld channels, not divisible by %lld "
                            "groups",
                            (long long)c_in, (long long)g);
    if (MILK_DIM_KNOWN(c_in) && MILK_DIM_KNOWN(wc) && c_in / g != wc)
        return milk_op_fail(ic->ctx, ic->op, "weight",
                            "C_in / groups = %lld / %lld, but weight has "
                            "%lld input channels (dim 1)",
                            (long long)c_in, (long long)g, (long long)wc);
    if (MILK_DIM_KNOWN(c_out) && c_out % g != 0)
        return milk_op_fail(ic->ctx, ic->op, "weight",
                            "%lld output channels, not divisible by %lld "
                            "groups",
                            (long long)c_out, (long long)g);
    return MILK_OK;
}

/* x, weight (same rank as x) and the dtype rules both ops share. */
static milk_status conv_inputs(milk_infer *ic, const milk_tensor_type **x,
                               const milk_tensor_type **w)
{
    static const char *const wb[] = {"weight", "bias", NULL};
    MILK_TRY(milk_infer_tensor(ic, "x", MILK_DT_FLOAT, 3, 5, x));
    MILK_TRY(milk_infer_tensor(ic, "weight", MILK_DT_FLOAT, (*x)->rank,
                               (*x)->rank, w));
    MILK_TRY(milk_infer_params_dtype(ic, "x", wb, MILK_DT_FLOAT));
    return milk_infer_const_before(ic, "bias", MILK_TARGET_IOS17);
}

static milk_status conv_infer(milk_infer *ic)
{
    const milk_tensor_type *x, *w;
    conv_args a;
    MILK_TRY(conv_inputs(ic, &x, &w));
    MILK_TRY(read_conv_args(ic, x->rank - 2, &a));
    MILK_TRY(check_conv_groups(ic, x, w, a.groups));
    MILK_TRY(check_bias(ic, w->dims[0]));
    /* coremltools: a weight computed at run time takes no dilation */
    if (!milk_infer_is_const(ic, "weight"))
        for (int i = 0; i < a.S; i++)
            if (a.dilations[i] > 1)
                return milk_op_fail(ic->ctx, ic->op, "dilations",
                                    "must be 1 when weight is not a "
                                    "constant");
    int64_t dims[5] = {x->dims[0], w->dims[0]};
    for (int i = 0; i < a.S; i++) {
        milk_window win = window_of(&a, x, w, i);
        MILK_TRY(milk_window_out(ic, a.pad_type, &win, false, i, &dims[2 + i]));
    }
    return milk_infer_one(ic, x->dtype, x->rank, dims);
}

/* conv: convolution over 1 to 3 spatial dimensions.
 *   x          R  [N, C_in, *D] (rank 3 to 5), fp16/fp32
 *   weight     R  [C_out, C_in/groups, *K]; a run-time weight takes no
 *                 dilation; from iOS17 its dtype may differ from x's
 *   bias       O  [C_out], same dtype as weight; constant before iOS17
 *   strides    O C int32 [S], default 1s
 *   pad_type   O C "valid" (default), "same", "custom", "same_lower"
 *                 (iOS16+)
 *   pad        O C int32 [2S], (before, after) per spatial dim; default 0s,
 *                 read only for "custom"
 *   dilations  O C int32 [S], default 1s
 *   groups     O C int32, default 1; divides C_in and C_out
 * Output: [N, C_out, *D_out] with D_out = floor((D + pad_before + pad_after
 * - (K - 1) * dilation - 1) / stride) + 1; "same" and "same_lower" give
 * ceil(D / stride). */
static const milk_param conv_params[] = {
    {"x", MILK_P_REQ, 0},
    {"weight", MILK_P_REQ, 0},
    {"bias", 0, 0},
    {"strides", MILK_P_CONST, 0},
    {"pad_type", MILK_P_CONST, 0},
    {"pad", MILK_P_CONST, 0},
    {"dilations", MILK_P_CONST, 0},
    {"groups", MILK_P_CONST, 0},
    {0},
};

const milk_op_info milk_op_conv = {
    .name = "conv",
    .params = conv_params,
    .min_opset = MILK_TARGET_IOS15,
    .infer = conv_infer,
};

/* conv_transpose: x has C_in channels, weight [C_in, C_out/groups, *K]. */
static milk_status check_transpose_groups(milk_infer *ic,
                                          const milk_tensor_type *x,
                                          const milk_tensor_type *w,
                                          int64_t g, int64_t *c_out)
{
    int64_t c_in = x->dims[1];
    if (MILK_DIM_KNOWN(c_in) && MILK_DIM_KNOWN(w->dims[0]) &&
        c_in != w->dims[0])
        return milk_op_fail(ic->ctx, ic->op, "weight",
                            "x has %lld channels, but weight dim 0 is %lld",
                            (long long)c_in, (long long)w->dims[0]);
    if (MILK_DIM_KNOWN(c_in) && c_in % g != 0)
        return milk_op_fail(ic->ctx, ic->op, "groups",
                            "x has %lld channels, not divisible by %lld "
                            "groups",
                            (long long)c_in, (long long)g);
    *c_out = MILK_DIM_UNKNOWN;
    if (MILK_DIM_KNOWN(w->dims[1]) &&
        __builtin_mul_overflow(w->dims[1], g, c_out))
        return milk_op_fail(ic->ctx, ic->op, "groups", "C_out overflows");
    return MILK_OK;
}

/* output_shape is the full shape [N, C_out, *D_out], as coremltools
 * writes it; its first two entries must agree with x and weight. */
static milk_status transpose_output_shape(milk_infer *ic,
                                          const milk_tensor_type *x,
                                          int64_t c_out, int64_t *dims,
                                          bool *present)
{
    int n;
    MILK_TRY(milk_infer_ints(ic, "output_shape", MILK_DT_INT32, dims,
                             MILK_MAX_RANK, &n, present));
    if (!*present) return MILK_OK;
    if (n != x->rank)
        return milk_op_fail(ic->ctx, ic->op, "output_shape",
                            "expected the full output shape [N, C_out, "
                            "*D] (%d values), got %d values",
                            (int)x->rank, n);
    MILK_TRY(check_min(ic, "output_shape", dims, n, 1));
    if (MILK_DIM_KNOWN(x->dims[0]) && dims[0] != x->dims[0])
        return milk_op_fail(ic->ctx, ic->op, "output_shape",
                            "batch %lld differs from x's %lld",
                            (long long)dims[0], (long long)x->dims[0]);
    if (MILK_DIM_KNOWN(c_out) && dims[1] != c_out)
        return milk_op_fail(ic->ctx, ic->op, "output_shape",
                            "%lld channels, but weight and groups give %lld",
                            (long long)dims[1], (long long)c_out);
    return MILK_OK;
}

static milk_status conv_transpose_infer(milk_infer *ic)
{
    const milk_tensor_type *x, *w;
    conv_args a;
    int64_t c_out = MILK_DIM_UNKNOWN, dims[MILK_MAX_RANK];
    bool given;
    MILK_TRY(conv_inputs(ic, &x, &w));
    MILK_TRY(milk_infer_const_before(ic, "weight", MILK_TARGET_IOS17));
    MILK_TRY(read_conv_args(ic, x->rank - 2, &a));
    if (a.pad_type == MILK_PAD_SAME_LOWER)
        return milk_op_fail(ic->ctx, ic->op, "pad_type",
                            "'same_lower' is not defined for conv_transpose");
    MILK_TRY(check_transpose_groups(ic, x, w, a.groups, &c_out));
    MILK_TRY(check_bias(ic, c_out));
    MILK_TRY(transpose_output_shape(ic, x, c_out, dims, &given));
    if (given) return milk_infer_one(ic, x->dtype, x->rank, dims);
    dims[0] = x->dims[0];
    dims[1] = c_out;
    for (int i = 0; i < a.S; i++) {
        milk_window win = window_of(&a, x, w, i);
        MILK_TRY(milk_window_transpose_out(ic, a.pad_type, &win, i,
                                           &dims[2 + i]));
    }
    return milk_infer_one(ic, x->dtype, x->rank, dims);
}

/* conv_transpose: transposed convolution over 1 to 3 spatial dimensions.
 *   x             R  [N, C_in, *D] (rank 3 to 5), fp16/fp32
 *   weight        R  [C_in, C_out/groups, *K]; constant before iOS17;
 *                    from iOS17 its dtype may differ from x's
 *   bias          O  [C_out], same dtype as weight; constant before iOS17
 *   pad           O C int32 [2S], default 0s, read only for "custom"
 *   output_shape  O C int32, the full output shape [N, C_out, *D_out]
 *   pad_type      O C "valid" (default), "same", "custom"
 *   strides       O C int32 [S], default 1s
 *   dilations     O C int32 [S], default 1s
 *   groups        O C int32, default 1; C_out = weight dim 1 * groups
 * Output: output_shape when given; else [N, C_out, *D_out] with "valid"
 * D_out = (D - 1) * stride + (K - 1) * dilation + 1, "custom" that minus
 * pad_before + pad_after, "same" D * stride. */
static const milk_param conv_transpose_params[] = {
    {"x", MILK_P_REQ, 0},
    {"weight", MILK_P_REQ, 0},
    {"bias", 0, 0},
    {"pad", MILK_P_CONST, 0},
    {"output_shape", MILK_P_CONST, 0},
    {"pad_type", MILK_P_CONST, 0},
    {"strides", MILK_P_CONST, 0},
    {"dilations", MILK_P_CONST, 0},
    {"groups", MILK_P_CONST, 0},
    {0},
};

const milk_op_info milk_op_conv_transpose = {
    .name = "conv_transpose",
    .params = conv_transpose_params,
    .min_opset = MILK_TARGET_IOS15,
    .infer = conv_transpose_infer,
};
