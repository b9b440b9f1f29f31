/* lower_norm.c: lowerings of InstanceNormalization, LRN and
 * MeanVarianceNormalization. MIL's instance_norm and local_response_norm
 * are used where they mean what ONNX means (constant per-channel
 * parameters, the channel axis where MIL puts it); otherwise the formula
 * is composed op by op. */
#include "lower_util.h"

/* (x - mean) * rsqrt(var + eps) * scale + bias over the spatial dims, the
 * [C] vectors reshaped to broadcast along axis 1. */
static milk_status instance_norm_decomposed(milk_cv *c, milk_var *x, double eps,
                                            milk_var **out)
{
    milk_var *mean, *d, *inv, *g, *b, *y;
    int64_t axes[MILK_MAX_RANK], dims[MILK_MAX_RANK];
    int r = x->type.rank, rank;
    for (int i = 2; i < r; i++) axes[i - 2] = i;
    MILK_TRY(milk_lw_moments(c, x, axes, r - 2, eps, NULL, NULL, &mean, &d, &inv));
    MILK_TRY(milk_cv_input(c, 1, &g));
    MILK_TRY(milk_cv_input(c, 2, &b));
    milk_lw_channel_shape(x->type.dims[1], r, &rank, dims);
    MILK_TRY(milk_cv_reshape(c, milk_cv_tmp(c, "scale"), g, rank, dims, &g));
    MILK_TRY(milk_cv_reshape(c, milk_cv_tmp(c, "bias"), b, rank, dims, &b));
    MILK_TRY(milk_lw_binary(c, "mul", milk_cv_tmp(c, "normed"), d, inv, &y));
    MILK_TRY(milk_lw_binary(c, "mul", milk_cv_tmp(c, "scaled"), y, g, &y));
    return milk_lw_binary(c, "add", milk_cv_out(c, 0), y, b, out);
}

milk_status milk_lower_instance_norm(milk_cv *c, const milk_onnx_node *n)
{
    milk_var *x, *g, *b, *out;
    double eps;
    MILK_TRY(milk_cv_input(c, 0, &x));
    MILK_TRY(milk_cv_attr_float(c, "epsilon", 1e-5, &eps));
    int r = x->type.rank;
    if (r < 3) return milk_cv_fail(c, MILK_ERR_INVALID_MODEL, "input of rank %d", r);
    bool native = (r == 3 || r == 4) && milk_cv_is_const(c, 1) && milk_cv_is_const(c, 2);
    if (!native) {
        MILK_TRY(instance_norm_decomposed(c, x, eps, &out));
        return milk_cv_set_out(c, 0, out);
    }
    MILK_TRY(milk_cv_input(c, 1, &g));
    MILK_TRY(milk_cv_input(c, 2, &b));
    milk_cv_op o;
    milk_cv_op_begin(&o, c, "instance_norm", milk_cv_out(c, 0));
    milk_cv_arg(&o, "x", x);
    milk_cv_arg(&o, "gamma", g);
    milk_cv_arg(&o, "beta", b);
    milk_cv_arg_float(&o, "epsilon", eps, milk_cv_float_dtype(x));
    MILK_TRY(milk_cv_op_end(&o, &out));
    return milk_cv_set_out(c, 0, out);
}

/* ONNX's channel axis is 1 and MIL's rank - 3: x goes through rank 4
 * ([N, C, D] gets a trailing 1, [N, C, D1, D2, ...] merges D2...) and
 * back. The windows agree: [c - floor((size - 1) / 2), c + ceil((size -
 * 1) / 2)] in both. */
milk_status milk_lower_lrn(milk_cv *c, const milk_onnx_node *n)
{
    milk_var *x, *y;
    int64_t size;
    double alpha, beta, bias;
    MILK_TRY(milk_cv_input(c, 0, &x));
    MILK_TRY(milk_cv_attr_int(c, "size", 0, &size));
    MILK_TRY(milk_cv_attr_float(c, "alpha", 1e-4, &alpha));
    MILK_TRY(milk_cv_attr_float(c, "beta", 0.75, &beta));
    MILK_TRY(milk_cv_attr_float(c, "bias", 1.0, &bias));
    const milk_tensor_type *t = &x->type;
    if (t->rank < 3) return milk_cv_fail(c, MILK_ERR_INVALID_MODEL, "input of rank %d",
                                         (int)t->rank);
    bool reshaped = t->rank != 4;
    if (reshaped) {
        int64_t d4[4] = {t->dims[0], t->dims[1], t->dims[2],
                         milk_dims_span(t->dims, 3, t->rank)};
        MILK_TRY(milk_cv_reshape(c, milk_cv_tmp(c, "4d"), x, 4, d4, &y));
    } else {
        y = x;
    }
    milk_cv_op o;
    milk_cv_op_begin(&o, c, "local_response_norm",
                     reshaped ? milk_cv_tmp(c, "lrn") : milk_cv_out(c, 0));
    milk_cv_arg(&o, "x", y);
    milk_cv_arg_int(&o, "size", size);
    milk_cv_arg_float(&o, "alpha", alpha, milk_cv_float_dtype(x));
    milk_cv_arg_float(&o, "beta", beta, milk_cv_float_dtype(x));
    milk_cv_arg_float(&o, "k", bias, milk_cv_float_dtype(x));
    MILK_TRY(milk_cv_op_end(&o, &y));
    if (reshaped)
        MILK_TRY(milk_cv_reshape(c, milk_cv_out(c, 0), y, t->rank, t->dims, &y));
    return milk_cv_set_out(c, 0, y);
}

/* ONNX's function body: (x - E[x]) / (sqrt(E[x^2] - E[x]^2) + 1e-9) over
 * axes (default 0, 2, 3). */
milk_status milk_lower_mvn(milk_cv *c, const milk_onnx_node *n)
{
    milk_var *x, *m, *sq, *m2, *v, *d, *out;
    int64_t axes[MILK_MAX_RANK] = {0, 2, 3};
    int k;
    MILK_TRY(milk_cv_input(c, 0, &x));
    MILK_TRY(milk_cv_attr_ints(c, "axes", axes, MILK_MAX_RANK, &k));
    if (k < 0) k = 3;
    for (int i = 0; i < k; i++) {
        int a;
        MILK_TRY(milk_cv_axis(c, "attribute 'axes':", axes[i], x->type.rank, &a));
        axes[i] = a;
    }
    MILK_TRY(milk_lw_reduce(c, "reduce_mean", milk_cv_tmp(c, "mean"), x, axes, k, true, &m));
    MILK_TRY(milk_lw_binary(c, "mul", milk_cv_tmp(c, "sq"), x, x, &sq));
    MILK_TRY(milk_lw_reduce(c, "reduce_mean", milk_cv_tmp(c, "meansq"), sq, axes, k, true, &sq));
    MILK_TRY(milk_lw_binary(c, "mul", milk_cv_tmp(c, "sqmean"), m, m, &m2));
    MILK_TRY(milk_lw_binary(c, "sub", milk_cv_tmp(c, "var"), sq, m2, &v));
    MILK_TRY(milk_cv_unary(c, "sqrt", milk_cv_tmp(c, "std"), v, &v));
    MILK_TRY(milk_lw_scalar(c, "add", milk_cv_tmp(c, "stdeps"), v, 1e-9, false, &v));
    MILK_TRY(milk_lw_binary(c, "sub", milk_cv_tmp(c, "centred"), x, m, &d));
    MILK_TRY(milk_lw_binary(c, "real_div", milk_cv_out(c, 0), d, v, &out));
    return milk_cv_set_out(c, 0, out);
}
