/* norm.c: batch_norm, instance_norm, layer_norm, l2_norm and
 * local_response_norm, after coremltools' ops/defs/iOS15/normalization.py
 * and iOS17/normalization.py. All keep x's type; what inference checks is
 * the shape of the statistics and the dtype rule (parameters as x before
 * iOS17, one float dtype of their own from iOS17 on).
 *
 * The reference kernels compute in double: means first, then the biased
 * variance as the mean of squared deviations (two passes, no cancellation),
 * then each output rounded once to the fp32 storage. */
#include "elementwise.h"

#include <stdlib.h>

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

/* ---- reference kernels: per-channel ------------------------------------- */

/* Element i of an optional parameter, or dflt when it is not bound. */
static double param_at(const milk_rt *p, int64_t i, double dflt)
{
    return p ? milk_rt_f32(p)[i] : dflt;
}

static milk_status eps_of(milk_eval *ec, float dflt, double *eps)
{
    float e;
    MILK_TRY(milk_eval_f32(ec, "epsilon", dflt, &e));
    *eps = e;
    return MILK_OK;
}

static milk_status batch_norm_eval(milk_eval *ec)
{
    const milk_rt *xt = milk_eval_in(ec, "x");
    const milk_rt *mean = milk_eval_in(ec, "mean"), *var = milk_eval_in(ec, "variance");
    const milk_rt *gamma = milk_eval_in(ec, "gamma"), *beta = milk_eval_in(ec, "beta");
    double eps;
    int64_t outer, c_n, inner;
    MILK_TRY(eps_of(ec, 1e-5f, &eps));
    milk_around_axis(&xt->type, 1, &outer, &c_n, &inner);
    const float *x = milk_rt_f32(xt);
    float *y = milk_rt_f32(&ec->out[0]);
    for (int64_t o = 0; o < outer; o++)            /* [N] */
        for (int64_t c = 0; c < c_n; c++) {        /* [C] */
            double m = milk_rt_f32(mean)[c], v = milk_rt_f32(var)[c];
            double g = param_at(gamma, c, 1), b = param_at(beta, c, 0);
            int64_t base = (o * c_n + c) * inner;
            for (int64_t i = 0; i < inner; i++)    /* [*D] */
                y[base + i] = (float)(g * (x[base + i] - m) / sqrt(v + eps) + b);
        }
    return MILK_OK;
}

/* Mean and biased variance of n values. */
static void moments(const float *x, int64_t n, double *mean, double *var)
{
    double s = 0, q = 0;
    for (int64_t i = 0; i < n; i++) s += x[i];
    *mean = s / (double)n;
    for (int64_t i = 0; i < n; i++) {
        double d = x[i] - *mean;
        q += d * d;
    }
    *var = q / (double)n;
}

static milk_status instance_norm_eval(milk_eval *ec)
{
    const milk_rt *xt = milk_eval_in(ec, "x");
    const milk_rt *gamma = milk_eval_in(ec, "gamma"), *beta = milk_eval_in(ec, "beta");
    double eps;
    int64_t outer, c_n, inner;
    MILK_TRY(eps_of(ec, 1e-5f, &eps));
    milk_around_axis(&xt->type, 1, &outer, &c_n, &inner);
    const float *x = milk_rt_f32(xt);
    float *y = milk_rt_f32(&ec->out[0]);
    for (int64_t o = 0; o < outer; o++)            /* [N] */
        for (int64_t c = 0; c < c_n; c++) {        /* [C] */
            int64_t base = (o * c_n + c) * inner;
            double m, v;
            moments(x + base, inner, &m, &v);
            double g = param_at(gamma, c, 1), b = param_at(beta, c, 0);
            for (int64_t i = 0; i < inner; i++)    /* [*D] */
                y[base + i] = (float)(g * (x[base + i] - m) / sqrt(v + eps) + b);
        }
    return MILK_OK;
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
    .eval = batch_norm_eval,
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
    .eval = instance_norm_eval,
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

/* For each slice over the normalized axes (o over the others): mean and
 * biased variance, then y = (x - mean) / sqrt(var + eps) * gamma[r] +
 * beta[r], r the element's row-major index within the slice (gamma has the
 * shape x.shape[axes], axes in increasing order). */
static milk_status layer_norm_eval(milk_eval *ec)
{
    const milk_rt *xt = milk_eval_in(ec, "x");
    const milk_rt *gamma = milk_eval_in(ec, "gamma"), *beta = milk_eval_in(ec, "beta");
    bool normed[MILK_MAX_RANK];
    milk_axes kept, red;
    double eps;
    MILK_TRY(eps_of(ec, 1e-5f, &eps));
    MILK_TRY(milk_axes_mask(ec, "axes", xt->type.rank, true, normed));
    milk_axes_split(&xt->type, normed, &kept, &red);
    if ((gamma && gamma->count != red.count) || (beta && beta->count != red.count))
        return milk_op_fail(ec->ctx, ec->op, gamma ? "gamma" : "beta",
                            "expected %lld values", (long long)red.count);
    const float *x = milk_rt_f32(xt);
    float *y = milk_rt_f32(&ec->out[0]);
    for (int64_t k = 0; k < kept.count; k++) {     /* [kept] */
        int64_t base = milk_axes_offset(&kept, k);
        double s = 0, q = 0;
        for (int64_t r = 0; r < red.count; r++)    /* [normed]: mean */
            s += x[base + milk_axes_offset(&red, r)];
        double m = s / (double)red.count;
        for (int64_t r = 0; r < red.count; r++) {  /* [normed]: variance */
            double d = x[base + milk_axes_offset(&red, r)] - m;
            q += d * d;
        }
        double sd = sqrt(q / (double)red.count + eps);
        for (int64_t r = 0; r < red.count; r++) {  /* [normed]: output */
            int64_t at = base + milk_axes_offset(&red, r);
            y[at] = (float)((x[at] - m) / sd * param_at(gamma, r, 1) +
                            param_at(beta, r, 0));
        }
    }
    return MILK_OK;
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
    .eval = layer_norm_eval,
};

/* ---- l2_norm ---------------------------------------------------------------- */

static milk_status l2_norm_infer(milk_infer *ic)
{
    static const char *const eps[] = {"epsilon", NULL};
    const milk_tensor_type *x;
    MILK_TRY(milk_infer_tensor(ic, "x", MILK_DT_FLOAT, 3, -1, &x));
    MILK_TRY(milk_infer_params_dtype(ic, "x", eps, MILK_DT_FLOAT));
    MILK_TRY(check_scalar(ic, "epsilon"));
    return milk_infer_one(ic, x->dtype, x->rank, x->dims);
}

/* x viewed as [batch, n] with n the product of the last three dims. */
static milk_status l2_norm_eval(milk_eval *ec)
{
    const milk_rt *xt = milk_eval_in(ec, "x");
    const milk_tensor_type *t = &xt->type;
    double eps;
    MILK_TRY(eps_of(ec, 1e-6f, &eps));
    int64_t n = milk_dims_span(t->dims, t->rank - 3, t->rank);
    int64_t batch = n ? xt->count / n : 0;
    const float *x = milk_rt_f32(xt);
    float *y = milk_rt_f32(&ec->out[0]);
    for (int64_t b = 0; b < batch; b++) {          /* [*B] */
        double q = 0;
        for (int64_t i = 0; i < n; i++)            /* [D1, D2, D3] */
            q += (double)x[b * n + i] * x[b * n + i];
        double d = sqrt(q + eps);
        for (int64_t i = 0; i < n; i++)            /* [D1, D2, D3] */
            y[b * n + i] = (float)(x[b * n + i] / d);
    }
    return MILK_OK;
}

/* l2_norm: x / sqrt(sum(x^2) + epsilon), the sum over the last three dims
 * (the leading dims, if any, are batch).
 *   x        R    [*B, D1, D2, D3], rank >= 3, fp16/fp32
 *   epsilon  O C  scalar, default 1e-6; x's dtype before iOS17, fp16 or
 *                 fp32 from iOS17
 * Output: x's type. */
static const milk_param l2_norm_params[] = {
    {"x", MILK_P_REQ, 0},
    {"epsilon", MILK_P_CONST, 0},
    {0},
};

const milk_op_info milk_op_l2_norm = {
    .name = "l2_norm",
    .params = l2_norm_params,
    .min_opset = MILK_TARGET_IOS15,
    .infer = l2_norm_infer,
    .eval = l2_norm_eval,
};

/* ---- local_response_norm ------------------------------------------------------ */

static milk_status lrn_infer(milk_infer *ic)
{
    static const char *const params[] = {"alpha", "beta", "k", NULL};
    const milk_tensor_type *x;
    int64_t size;
    MILK_TRY(milk_infer_tensor(ic, "x", MILK_DT_FLOAT, 3, -1, &x));
    MILK_TRY(milk_infer_params_dtype(ic, "x", params, MILK_DT_FLOAT));
    for (const char *const *p = params; *p; p++) MILK_TRY(check_scalar(ic, *p));
    MILK_TRY(milk_infer_int(ic, "size", MILK_DT_INT32, 1, &size));
    if (size < 1)
        return milk_op_fail(ic->ctx, ic->op, "size", "%lld is below 1",
                            (long long)size);
    return milk_infer_one(ic, x->dtype, x->rank, x->dims);
}

/* Each element divided by (k + alpha / size * sum of squares over a window
 * of `size` channels)^beta; the channel axis is rank - 3. */
static milk_status lrn_eval(milk_eval *ec)
{
    const milk_rt *xt = milk_eval_in(ec, "x");
    int64_t size, outer, c_n, inner;
    float alpha, beta, k;
    MILK_TRY(milk_op_int(ec->ctx, ec->op, "size", 1, &size));
    MILK_TRY(milk_eval_f32(ec, "alpha", 1e-4f, &alpha));
    MILK_TRY(milk_eval_f32(ec, "beta", 0.75f, &beta));
    MILK_TRY(milk_eval_f32(ec, "k", 1.0f, &k));
    milk_around_axis(&xt->type, xt->type.rank - 3, &outer, &c_n, &inner);
    const float *x = milk_rt_f32(xt);
    float *y = milk_rt_f32(&ec->out[0]);
    for (int64_t o = 0; o < outer; o++)            /* [*B] */
        for (int64_t c = 0; c < c_n; c++)          /* [C] */
            for (int64_t i = 0; i < inner; i++) {  /* [H, W] */
                int64_t lo = c - (size - 1) / 2, hi = c + size / 2;
                double q = 0;
                for (int64_t j = lo < 0 ? 0 : lo; j <= hi && j < c_n; j++) {
                    double v = x[(o * c_n + j) * inner + i];
                    q += v * v;
                }
                int64_t at = (o * c_n + c) * inner + i;
                y[at] = (float)(x[at] / pow(k + alpha / (double)size * q, beta));
            }
    return MILK_OK;
}

/* local_response_norm: x / (k + alpha / size * sum_j x_j^2)^beta, the sum
 * over the channels j in [c - floor((size - 1) / 2), c + floor(size / 2)]
 * that exist.
 *   x      R    [*B, C, H, W] or [C, H, W], rank >= 3, fp16/fp32
 *   size   R C  int32 >= 1, the window's length in channels
 *   alpha  O C  scalar, default 1e-4
 *   beta   O C  scalar, default 0.75
 *   k      O C  scalar, default 1
 * alpha, beta, k: x's dtype before iOS17, one float dtype from iOS17.
 * Output: x's type.
 * Two choices MIL leaves open are made here. The channel axis is rank - 3,
 * all leading dims batch, as the NeuralNetwork LRN layer defines it and as
 * coremltools' own rank-3 test expects (its expected values for a
 * [1, 3, 2] input normalize each element by itself alone); coremltools'
 * docstring writes x as [n, C, *D], which agrees for rank 4. For an odd
 * size the window is centred; for an even size it reaches one channel
 * further after c than before, as in ONNX's LRN and Caffe (PyTorch puts
 * the extra channel before c). */
static const milk_param lrn_params[] = {
    {"x", MILK_P_REQ, 0},
    {"size", MILK_P_REQ | MILK_P_CONST, 0},
    {"alpha", MILK_P_CONST, 0},
    {"beta", MILK_P_CONST, 0},
    {"k", MILK_P_CONST, 0},
    {0},
};

const milk_op_info milk_op_local_response_norm = {
    .name = "local_response_norm",
    .params = lrn_params,
    .min_opset = MILK_TARGET_IOS15,
    .infer = lrn_infer,
    .eval = lrn_eval,
};
