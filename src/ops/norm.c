/* norm.c: batch_norm, layer_norm and instance_norm, after coremltools'
 * ops/defs/iOS15/normalization.py and iOS17/normalization.py. All three
 * keep x's type; what inference checks is the shape of the statistics and
 * the dtype rule (parameters as x before iOS17, one float dtype of their
 * own from iOS17 on). */
#include "infer.h"

static milk_status check_scalar(milk_infer *ic, const char *param)
{
    const milk_tensor_type *t = milk_op_in_type(ic->op, param);
    if (t && milk_tensor_type_count(t) != 1)
        return milk_op_fail(ic->ctx, ic->op, param, "expected a scalar");
    return MILK_OK;
}

/* A per-channel parameter, when bound, is [C] (C = x dim 1). */
static milk_status check_channel_param(milk_infer *ic, const char *param,
                                       int64_t c)
{
    const milk_tensor_type *t = milk_op_in_type(ic->op, param);
    if (!t) return MILK_OK;
    if (t->rank != 1 || (MILK_DIM_KNOWN(c) && MILK_DIM_KNOWN(t->dims[0]) &&
                         t->dims[0] != c))
        return milk_op_fail(ic->ctx, ic->op, param,
                            "expected shape [%lld] (the channels of x)",
                            (long long)c);
    return MILK_OK;
}

/* x of rank lo..hi, per-channel params, a scalar epsilon; output = x. */
static milk_status channel_norm_infer(milk_infer *ic, int lo, int hi,
                                      const char *const *params)
{
    const milk_tensor_type *x;
    MILK_TRY(milk_infer_tensor(ic, "x", MILK_DT_FLOAT, lo, hi, &x));
    MILK_TRY(milk_infer_params_dtype(ic, "x", params, MILK_DT_FLOAT));
    for (const char *const *p = params; *p; p++)
        if (strcmp(*p, "epsilon") != 0)
            MILK_TRY(check_channel_param(ic, *p, x->dims[1]));
    MILK_TRY(check_scalar(ic, "epsilon"));
    return milk_infer_one(ic, x->dtype, x->rank, x->dims);
}

static milk_status batch_norm_infer(milk_infer *ic)
{
    static const char *const params[] = {"mean", "variance", "gamma", "beta",
                                         "epsilon", NULL};
    return channel_norm_infer(ic, 3, 5, params);
}

/* batch_norm: gamma * (x - mean) / sqrt(variance + epsilon) + beta per
 * channel (dim 1).
 *   x         R    [N, C, *D] (rank 3 to 5), fp16/fp32
 *   mean      R C  [C]
 *   variance  R C  [C]
 *   gamma     O C  [C], default ones
 *   beta      O C  [C], default zeros
 *   epsilon   O C  scalar, default 1e-5
 * The parameters have x's dtype before iOS17, from iOS17 one float dtype
 * of their own. Output: x's type. */
static const milk_param batch_norm_params[] = {
    {"x", MILK_P_REQ, 0},
    {"mean", MILK_P_REQ | MILK_P_CONST, 0},
    {"variance", MILK_P_REQ | MILK_P_CONST, 0},
    {"gamma", MILK_P_CONST, 0},
    {"beta", MILK_P_CONST, 0},
    {"epsilon", MILK_P_CONST, 0},
    {0},
};

const milk_op_info milk_op_batch_norm = {
    .name = "batch_norm",
    .params = batch_norm_params,
    .min_opset = MILK_TARGET_IOS15,
    .infer = batch_norm_infer,
};

static milk_status instance_norm_infer(milk_infer *ic)
{
    static const char *const params[] = {"gamma", "beta", "epsilon", NULL};
    return channel_norm_infer(ic, 3, 4, params);
}

/* instance_norm: normalizes each (n, c) over the spatial dims.
 *   x        R    [N, C, *D] (rank 3 or 4), fp16/fp32
 *   gamma    O C  [C], default ones
 *   beta     O C  [C], default zeros
 *   epsilon  O C  scalar, default 1e-5
 * Parameter dtypes as batch_norm. Output: x's type. */
static const milk_param instance_norm_params[] = {
    {"x", MILK_P_REQ, 0},
    {"gamma", MILK_P_CONST, 0},
    {"beta", MILK_P_CONST, 0},
    {"epsilon", MILK_P_CONST, 0},
    {0},
};

const milk_op_info milk_op_instance_norm = {
    .name = "instance_norm",
    .params = instance_norm_params,
    .min_opset = MILK_TARGET_IOS15,
    .infer = instance_norm_infer,
};

/* gamma and beta, when bound, have the shape x.shape[axes] (axes taken in
 * increasing order, as coremltools builds normalized_shape). */
static milk_status check_norm_shape(milk_infer *ic, const char *param,
                                    const milk_tensor_type *x,
                                    const bool *normed, int k)
{
    const milk_tensor_type *t = milk_op_in_type(ic->op, param);
    if (!t) return MILK_OK;
    bool ok = t->rank == k;
    for (int i = 0, j = 0; ok && i < x->rank; i++) {
        if (!normed[i]) continue;
        int64_t a = x->dims[i], b = t->dims[j++];
        ok = !MILK_DIM_KNOWN(a) || !MILK_DIM_KNOWN(b) || a == b;
    }
    if (!ok)
        return milk_op_fail(ic->ctx, ic->op, param,
                            "shape must be x's shape over the normalized "
                            "axes");
    return MILK_OK;
}

static milk_status layer_norm_infer(milk_infer *ic)
{
    static const char *const params[] = {"gamma", "beta", "epsilon", NULL};
    const milk_tensor_type *x;
    int64_t axes[MILK_MAX_RANK];
    int n;
    bool given, normed[MILK_MAX_RANK] = {false};
    MILK_TRY(milk_infer_tensor(ic, "x", MILK_DT_FLOAT, 0, -1, &x));
    MILK_TRY(milk_infer_params_dtype(ic, "x", params, MILK_DT_FLOAT));
    MILK_TRY(milk_infer_ints(ic, "axes", MILK_DT_INT32, axes, MILK_MAX_RANK,
                             &n, &given));
    for (int i = 0; i < (given ? n : x->rank); i++) {
        int a = i;
        if (given) MILK_TRY(milk_infer_axis(ic, "axes", axes[i], x->rank, &a));
        normed[a] = true;
    }
    int k = 0;
    for (int i = 0; i < x->rank; i++) k += normed[i];
    MILK_TRY(check_norm_shape(ic, "gamma", x, normed, k));
    MILK_TRY(check_norm_shape(ic, "beta", x, normed, k));
    MILK_TRY(check_scalar(ic, "epsilon"));
    return milk_infer_one(ic, x->dtype, x->rank, x->dims);
}

/* layer_norm: normalizes x over `axes` (biased variance).
 *   x        R    any rank, fp16/fp32
 *   axes     O C  int32 [K], default all axes; negative axes count from
 *                 the end
 *   gamma    O C  shape x.shape[axes], default ones
 *   beta     O C  shape x.shape[axes], default zeros
 *   epsilon  O C  scalar, default 1e-5
 * Parameter dtypes as batch_norm. Output: x's type. */
static const milk_param layer_norm_params[] = {
    {"x", MILK_P_REQ, 0},
    {"axes", MILK_P_CONST, 0},
    {"gamma", MILK_P_CONST, 0},
    {"beta", MILK_P_CONST, 0},
    {"epsilon", MILK_P_CONST, 0},
    {0},
};

const milk_op_info milk_op_layer_norm = {
    .name = "layer_norm",
    .params = layer_norm_params,
    .min_opset = MILK_TARGET_IOS15,
    .infer = layer_norm_infer,
};
