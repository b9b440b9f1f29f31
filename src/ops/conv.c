/* conv.c: conv and conv_transpose (1-D to 3-D), after coremltools'
 * iOS15 and iOS17 definitions (ops/defs/iOS15/conv.py, iOS17/conv.py):
 * type inference, reference kernels (plain loops) and fast kernels
 * (im2col / col2im around OpenBLAS sgemm, gemm.c). */
#include "gemm.h"
#include "infer.h"
#include "../run/run.h"

#include <stdlib.h>

static milk_status conv_eval(milk_eval *ec);
static milk_status conv_eval_fast(milk_eval *ec);
static milk_status conv_transpose_eval(milk_eval *ec);
static milk_status conv_transpose_eval_fast(milk_eval *ec);

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
 * ceil(D / stride).
 * Kernel: y[n, co, o] = bias[co] + sum over the group's input channels ci
 * and taps k of x[n, ci, o * stride + k * dilation - pad_before] *
 * weight[co, ci, k], zero outside x. "same" pads max(0, (ceil(D / stride)
 * - 1) * stride + (K - 1) * dilation + 1 - D) in total, the smaller half
 * before (odd extra after, NeuralNetwork's BOTTOM_RIGHT_HEAVY);
 * "same_lower" puts the larger half before. */
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
    .eval = conv_eval,
    .eval_fast = conv_eval_fast,
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
 * pad_before + pad_after, "same" D * stride.
 * Kernel: y[n, co, o] = bias[co] + sum of x[n, ci, q] * weight[ci, co %
 * (C_out/groups), k] over the group's input channels ci, positions q and
 * taps k with q * stride + k * dilation - pad_before = o: the full
 * transposed convolution cropped by pad_before. pad_before is pad[2i]
 * ("custom"), 0 ("valid"), or for "same" floor(max(0, (D - 1) * stride +
 * (K - 1) * dilation + 1 - D_out) / 2) (TensorFlow's conv2d_transpose
 * rule). An output_shape beyond the full result (PyTorch's
 * output_padding) gives positions that receive only the bias. */
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
    .eval = conv_transpose_eval,
    .eval_fast = conv_transpose_eval_fast,
};

/* ---- kernels: geometry ------------------------------------------------- */

/* pad_type as the kernels read it (type inference has checked it). */
static milk_status eval_pad_type(milk_eval *ec, milk_pad_type *pt)
{
    static const struct { const char *name; milk_pad_type t; } names[] = {
        {"valid", MILK_PAD_VALID},
        {"same", MILK_PAD_SAME},
        {"same_lower", MILK_PAD_SAME_LOWER},
        {"custom", MILK_PAD_CUSTOM},
    };
    const char *s;
    MILK_TRY(milk_op_str(ec->ctx, ec->op, "pad_type", "valid", &s));
    for (size_t i = 0; i < MILK_ARRAY_LEN(names); i++)
        if (strcmp(s, names[i].name) == 0) {
            *pt = names[i].t;
            return MILK_OK;
        }
    return milk_op_fail(ec->ctx, ec->op, "pad_type", "unknown pad type '%s'", s);
}

/* A constant int vector of S values (n_vals = 2S for pad), dflt if
 * absent; every value at least min. */
static milk_status eval_ints(milk_eval *ec, const char *param, int n_vals,
                             int64_t dflt, int64_t min, int64_t *v)
{
    int n;
    bool present;
    MILK_TRY(milk_op_ints(ec->ctx, ec->op, param, v, n_vals, &n, &present));
    if (present && n != n_vals)
        return milk_op_fail(ec->ctx, ec->op, param, "expected %d values, got %d",
                            n_vals, n);
    for (int i = 0; i < n_vals; i++) {
        if (!present) v[i] = dflt;
        if (v[i] < min)
            return milk_op_fail(ec->ctx, ec->op, param, "value %lld is below %lld",
                                (long long)v[i], (long long)min);
    }
    return MILK_OK;
}

static milk_status eval_conv_args(milk_eval *ec, int S, conv_args *a)
{
    a->S = S;
    memset(a->pad, 0, sizeof a->pad);
    MILK_TRY(eval_ints(ec, "strides", S, 1, 1, a->strides));
    MILK_TRY(eval_ints(ec, "dilations", S, 1, 1, a->dilations));
    MILK_TRY(eval_pad_type(ec, &a->pad_type));
    if (a->pad_type == MILK_PAD_CUSTOM)
        MILK_TRY(eval_ints(ec, "pad", 2 * S, 0, 0, a->pad));
    MILK_TRY(milk_op_int(ec->ctx, ec->op, "groups", 1, &a->groups));
    if (a->groups < 1)
        return milk_op_fail(ec->ctx, ec->op, "groups", "%lld is below 1",
                            (long long)a->groups);
    return MILK_OK;
}

/* conv: padding before spatial dim i. "same" pads max(0, (ceil(in / s) -
 * 1) * s + keff - in) in total, the smaller half before (the extra one
 * after); "same_lower" puts the larger half before. */
static int64_t conv_pad_before(const conv_args *a, int i, int64_t in,
                               int64_t keff)
{
    int64_t s = a->strides[i];
    if (a->pad_type == MILK_PAD_CUSTOM) return a->pad[2 * i];
    if (a->pad_type == MILK_PAD_VALID) return 0;
    int64_t total = ((in + s - 1) / s - 1) * s + keff - in;
    if (total < 0) total = 0;
    return a->pad_type == MILK_PAD_SAME ? total / 2 : total - total / 2;
}

/* conv_transpose: padding before spatial dim i of the conv whose
 * transpose this is. "same" follows TensorFlow's conv2d_transpose: total
 * max(0, (in - 1) * s + keff - out), the smaller half before. */
static int64_t transpose_pad_before(const conv_args *a, int i, int64_t in,
                                    int64_t keff, int64_t out)
{
    if (a->pad_type == MILK_PAD_CUSTOM) return a->pad[2 * i];
    if (a->pad_type == MILK_PAD_VALID) return 0;
    int64_t total = (in - 1) * a->strides[i] + keff - out;
    return total > 0 ? total / 2 : 0;
}

/* Channels and weight shape agree with groups (type inference checked
 * them; a kernel must not index out of bounds if it did not). */
static milk_status check_geom(milk_eval *ec, bool transpose,
                              const milk_conv_geom *g,
                              const milk_tensor_type *wt)
{
    int64_t G = g->groups;
    if (g->c_in % G || g->c_out % G ||
        wt->dims[0] != (transpose ? g->c_in : g->c_out) ||
        wt->dims[1] != (transpose ? g->c_out : g->c_in) / G)
        return milk_op_fail(ec->ctx, ec->op, "weight",
                            "shape [%lld, %lld, ...] does not fit %lld input "
                            "and %lld output channels in %lld groups",
                            (long long)wt->dims[0], (long long)wt->dims[1],
                            (long long)g->c_in, (long long)g->c_out,
                            (long long)G);
    const milk_rt *b = milk_eval_in(ec, "bias");
    if (b && b->count != g->c_out)
        return milk_op_fail(ec->ctx, ec->op, "bias", "%lld values for %lld channels",
                            (long long)b->count, (long long)g->c_out);
    return MILK_OK;
}

/* The geometry of a conv or conv_transpose at run time: x and weight as
 * bound, y as inferred, 1-D and 2-D lifted to 3-D (see gemm.h). */
static milk_status eval_geom(milk_eval *ec, bool transpose, milk_conv_geom *g)
{
    const milk_tensor_type *xt = &milk_eval_in(ec, "x")->type;
    const milk_tensor_type *wt = &milk_eval_in(ec, "weight")->type;
    const milk_tensor_type *yt = &ec->out[0].type;
    int S = xt->rank - 2;
    if (S < 1 || S > 3 || wt->rank != xt->rank || yt->rank != xt->rank ||
        yt->dims[0] != xt->dims[0])
        return milk_op_fail(ec->ctx, ec->op, "x", "x, weight and output shapes "
                            "disagree");
    conv_args a;
    MILK_TRY(eval_conv_args(ec, S, &a));
    *g = (milk_conv_geom){xt->dims[0], xt->dims[1], yt->dims[1], a.groups};
    for (int i = 0; i < 3; i++) {
        int j = i - (3 - S); /* the op's spatial dim; < 0: a lifted one */
        g->in[i] = j < 0 ? 1 : xt->dims[2 + j];
        g->k[i] = j < 0 ? 1 : wt->dims[2 + j];
        g->out[i] = j < 0 ? 1 : yt->dims[2 + j];
        g->stride[i] = j < 0 ? 1 : a.strides[j];
        g->dil[i] = j < 0 ? 1 : a.dilations[j];
        int64_t keff = (g->k[i] - 1) * g->dil[i] + 1;
        g->pad[i] = j < 0 ? 0
                    : transpose ? transpose_pad_before(&a, j, g->in[i], keff, g->out[i])
                                : conv_pad_before(&a, j, g->in[i], keff);
    }
    return check_geom(ec, transpose, g, wt);
}

milk_status milk_conv_geom_of(milk_eval *ec, bool transpose, milk_conv_geom *g)
{
    return eval_geom(ec, transpose, g);
}

/* y [N, C, P] = bias[c], or 0 without bias. */
static void fill_bias(float *y, const milk_rt *bias, int64_t n, int64_t c,
                      int64_t p)
{
    /* y: [n, c] rows of p */
    for (int64_t i = 0; i < n * c; i++) {
        float b = bias ? milk_rt_f32(bias)[i % c] : 0.0f;
        for (int64_t j = 0; j < p; j++) y[i * p + j] = b;
    }
}

/* ---- kernels: reference ------------------------------------------------ */

/* One output element of conv at spatial position o, in double: x is image
 * n from the group's first channel [cig, IN], w is filter co [cig, K]. */
static float conv_point(const milk_conv_geom *g, const float *x,
                        const float *w, int64_t cig, const int64_t o[3],
                        double acc)
{
    const int64_t in3 = milk_geom_in3(g), k3 = milk_geom_k3(g);
    /* ci [cig], kd [K0], kh [K1], kw [K2] */
    for (int64_t ci = 0; ci < cig; ci++)
        for (int64_t kd = 0; kd < g->k[0]; kd++)
            for (int64_t kh = 0; kh < g->k[1]; kh++)
                for (int64_t kw = 0; kw < g->k[2]; kw++) {
                    int64_t id = o[0] * g->stride[0] + kd * g->dil[0] - g->pad[0];
                    int64_t ih = o[1] * g->stride[1] + kh * g->dil[1] - g->pad[1];
                    int64_t iw = o[2] * g->stride[2] + kw * g->dil[2] - g->pad[2];
                    if (id < 0 || id >= g->in[0] || ih < 0 || ih >= g->in[1] ||
                        iw < 0 || iw >= g->in[2])
                        continue; /* zero padding */
                    acc += (double)x[ci * in3 + (id * g->in[1] + ih) * g->in[2] + iw] *
                           w[ci * k3 + (kd * g->k[1] + kh) * g->k[2] + kw];
                }
    return (float)acc;
}

static milk_status conv_eval(milk_eval *ec)
{
    milk_conv_geom g;
    MILK_TRY(eval_geom(ec, false, &g));
    const float *x = milk_rt_f32(milk_eval_in(ec, "x"));
    const float *w = milk_rt_f32(milk_eval_in(ec, "weight"));
    const milk_rt *bias = milk_eval_in(ec, "bias");
    float *y = milk_rt_f32(&ec->out[0]);
    const int64_t cig = g.c_in / g.groups, cog = g.c_out / g.groups;
    const int64_t in3 = milk_geom_in3(&g), k3 = milk_geom_k3(&g);
    /* y: [N, C_out, OD, OH, OW] */
    for (int64_t n = 0; n < g.n; n++)
        for (int64_t co = 0; co < g.c_out; co++) {
            const float *xg = x + (n * g.c_in + co / cog * cig) * in3;
            double b = bias ? milk_rt_f32(bias)[co] : 0.0;
            for (int64_t od = 0; od < g.out[0]; od++)
                for (int64_t oh = 0; oh < g.out[1]; oh++)
                    for (int64_t ow = 0; ow < g.out[2]; ow++) {
                        const int64_t o[3] = {od, oh, ow};
                        *y++ = conv_point(&g, xg, w + co * cig * k3, cig, o, b);
                    }
        }
    return MILK_OK;
}

/* conv_transpose along dim i: output position o meets kernel tap k at
 * input position q when q * stride + k * dil - pad = o. */
static bool tap(const milk_conv_geom *g, int i, int64_t o, int64_t k,
                int64_t *q)
{
    int64_t t = o + g->pad[i] - k * g->dil[i];
    if (t < 0 || t % g->stride[i] != 0) return false;
    *q = t / g->stride[i];
    return *q < g->in[i];
}

/* One output element of conv_transpose, in double: x is image n from the
 * group's first channel [cig, IN]; w is weight[group's first channel,
 * co % cog], so channel ci's taps are at w + ci * cog * K. */
static float conv_transpose_point(const milk_conv_geom *g, const float *x,
                                  const float *w, int64_t cig, int64_t cog,
                                  const int64_t o[3], double acc)
{
    const int64_t in3 = milk_geom_in3(g), k3 = milk_geom_k3(g);
    /* ci [cig], kd [K0], kh [K1], kw [K2] */
    for (int64_t ci = 0; ci < cig; ci++)
        for (int64_t kd = 0; kd < g->k[0]; kd++)
            for (int64_t kh = 0; kh < g->k[1]; kh++)
                for (int64_t kw = 0; kw < g->k[2]; kw++) {
                    int64_t qd, qh, qw;
                    if (!tap(g, 0, o[0], kd, &qd) || !tap(g, 1, o[1], kh, &qh) ||
                        !tap(g, 2, o[2], kw, &qw))
                        continue;
                    acc += (double)x[ci * in3 + (qd * g->in[1] + qh) * g->in[2] + qw] *
                           w[ci * cog * k3 + (kd * g->k[1] + kh) * g->k[2] + kw];
                }
    return (float)acc;
}

static milk_status conv_transpose_eval(milk_eval *ec)
{
    milk_conv_geom g;
    MILK_TRY(eval_geom(ec, true, &g));
    const float *x = milk_rt_f32(milk_eval_in(ec, "x"));
    const float *w = milk_rt_f32(milk_eval_in(ec, "weight"));
    const milk_rt *bias = milk_eval_in(ec, "bias");
    float *y = milk_rt_f32(&ec->out[0]);
    const int64_t cig = g.c_in / g.groups, cog = g.c_out / g.groups;
    const int64_t in3 = milk_geom_in3(&g), k3 = milk_geom_k3(&g);
    /* y: [N, C_out, OD, OH, OW] */
    for (int64_t n = 0; n < g.n; n++)
        for (int64_t co = 0; co < g.c_out; co++) {
            int64_t grp = co / cog;
            const float *xg = x + (n * g.c_in + grp * cig) * in3;
            const float *wg = w + (grp * cig * cog + co % cog) * k3;
            double b = bias ? milk_rt_f32(bias)[co] : 0.0;
            for (int64_t od = 0; od < g.out[0]; od++)
                for (int64_t oh = 0; oh < g.out[1]; oh++)
                    for (int64_t ow = 0; ow < g.out[2]; ow++) {
                        const int64_t o[3] = {od, oh, ow};
                        *y++ = conv_transpose_point(&g, xg, wg, cig, cog, o, b);
                    }
        }
    return MILK_OK;
}

/* ---- kernels: fast (OpenBLAS) ------------------------------------------ */

/* Columns per tile so that a [rows, cols] fp32 buffer stays within
 * MILK_GEMM_SCRATCH (at least one column, at most total). */
static int64_t tile_cols(int64_t rows, int64_t total)
{
    int64_t n = MILK_GEMM_SCRATCH / (4 * (rows > 0 ? rows : 1));
    return n < 1 ? 1 : n > total ? total : n;
}

static milk_status nomem(milk_eval *ec)
{
    return milk_errorf(ec->ctx, MILK_ERR_NOMEM, "op '%s': out of memory",
                       ec->op->name);
}

/* A 1x1 conv with stride 1 and no padding reads x as its column matrix. */
static bool pointwise(const milk_conv_geom *g)
{
    for (int i = 0; i < 3; i++)
        if (g->k[i] != 1 || g->stride[i] != 1 || g->pad[i] != 0 ||
            g->in[i] != g->out[i])
            return false;
    return true;
}

/* conv per image and group as Y_g = W_g x col(X_g), the column matrix
 * built one tile of output positions at a time. */
static milk_status conv_eval_fast(milk_eval *ec)
{
    milk_conv_geom g;
    MILK_TRY(eval_geom(ec, false, &g));
    const float *x = milk_rt_f32(milk_eval_in(ec, "x"));
    const float *w = milk_rt_f32(milk_eval_in(ec, "weight"));
    float *y = milk_rt_f32(&ec->out[0]);
    const int64_t cig = g.c_in / g.groups, cog = g.c_out / g.groups;
    const int64_t in3 = milk_geom_in3(&g), out3 = milk_geom_out3(&g);
    const int64_t rows = cig * milk_geom_k3(&g);
    const bool direct = pointwise(&g);
    const int64_t nq = direct ? out3 : tile_cols(rows, out3);
    const int64_t sizes[] = {cog, nq, rows, out3, in3};
    if (!milk_gemm_ok(sizes, 5)) return conv_eval(ec);
    float *col = direct ? NULL : malloc((size_t)(rows * nq) * sizeof *col + 1);
    if (!direct && !col) return nomem(ec);
    const milk_patch p = milk_patch_conv(&g);
    fill_bias(y, milk_eval_in(ec, "bias"), g.n, g.c_out, out3);
    for (int64_t n = 0; n < g.n; n++)
        for (int64_t grp = 0; grp < g.groups; grp++) {
            const float *xg = x + (n * g.c_in + grp * cig) * in3;
            const float *wg = w + grp * cog * rows;
            float *yg = y + (n * g.c_out + grp * cog) * out3;
            /* Y_g [cog, out3] += W_g [cog, cig] x X_g [cig, in3 = out3] */
            if (direct)
                milk_sgemm(false, false, cog, out3, cig, 1.0f, wg, cig, xg, in3,
                           1.0f, yg, out3);
            for (int64_t q0 = 0; !direct && q0 < out3; q0 += nq) {
                int64_t nc = out3 - q0 < nq ? out3 - q0 : nq;
                milk_im2col(&p, xg, cig, q0, nc, col);
                /* Y_g[:, q0:q0+nc] [cog, nc] += W_g [cog, rows = cig*K]
                 * x col [rows, nc] */
                milk_sgemm(false, false, cog, nc, rows, 1.0f, wg, rows, col, nc,
                           1.0f, yg + q0, out3);
            }
        }
    free(col);
    return MILK_OK;
}

/* conv_transpose per image and group: col = W_g^T x X_g, then each column
 * (one input position) is scattered into the output (col2im), one tile of
 * input positions at a time. */
static milk_status conv_transpose_eval_fast(milk_eval *ec)
{
    milk_conv_geom g;
    MILK_TRY(eval_geom(ec, true, &g));
    const float *x = milk_rt_f32(milk_eval_in(ec, "x"));
    const float *w = milk_rt_f32(milk_eval_in(ec, "weight"));
    float *y = milk_rt_f32(&ec->out[0]);
    const int64_t cig = g.c_in / g.groups, cog = g.c_out / g.groups;
    const int64_t in3 = milk_geom_in3(&g), out3 = milk_geom_out3(&g);
    const int64_t rows = cog * milk_geom_k3(&g);
    const int64_t nq = tile_cols(rows, in3);
    const int64_t sizes[] = {rows, nq, cig, in3};
    if (!milk_gemm_ok(sizes, 4)) return conv_transpose_eval(ec);
    float *col = malloc((size_t)(rows * nq) * sizeof *col + 1);
    if (!col) return nomem(ec);
    const milk_patch p = milk_patch_transpose(&g);
    fill_bias(y, milk_eval_in(ec, "bias"), g.n, g.c_out, out3);
    for (int64_t n = 0; n < g.n; n++)
        for (int64_t grp = 0; grp < g.groups; grp++) {
            const float *xg = x + (n * g.c_in + grp * cig) * in3;
            const float *wg = w + grp * cig * rows;
            float *yg = y + (n * g.c_out + grp * cog) * out3;
            for (int64_t q0 = 0; q0 < in3; q0 += nq) {
                int64_t nc = in3 - q0 < nq ? in3 - q0 : nq;
                /* col [rows = cog*K, nc] = W_g^T x X_g[:, q0:q0+nc], with
                 * W_g stored [cig, rows] and X_g [cig, in3] */
                milk_sgemm(true, false, rows, nc, cig, 1.0f, wg, rows, xg + q0,
                           in3, 0.0f, col, nc);
                milk_col2im_add(&p, col, cog, q0, nc, yg);
            }
        }
    free(col);
    return MILK_OK;
}
