/* lower_util.c: emitting helpers shared by the lowering families
 * (declared in lower_util.h). */
#include "lower_util.h"

#include <math.h>

milk_status milk_lw_binary(milk_cv *c, const char *type, const char *name,
                           milk_var *x, milk_var *y, milk_var **out)
{
    milk_cv_op o;
    milk_cv_op_begin(&o, c, type, name);
    milk_cv_arg(&o, "x", x);
    milk_cv_arg(&o, "y", y);
    return milk_cv_op_end(&o, out);
}

milk_status milk_lw_scalar_const(milk_cv *c, const char *name, milk_dtype dt,
                                 double v, milk_var **out)
{
    milk_tensor_type t = {dt, 0, {0}};
    float f = (float)v;
    uint16_t h = milk_fp32_to_fp16(f);
    int32_t i = 0;
    uint8_t b = v != 0;
    const void *data;
    switch (dt) {
    case MILK_DTYPE_FP32: data = &f; break;
    case MILK_DTYPE_FP16: data = &h; break;
    case MILK_DTYPE_BOOL: data = &b; break;
    case MILK_DTYPE_INT32:
        if (v != floor(v) || v < INT32_MIN || v > INT32_MAX)
            return milk_cv_unsupported(c, "the constant %g is not an int32", v);
        i = (int32_t)v;
        data = &i;
        break;
    default:
        return milk_cv_unsupported(c, "an input of dtype %s", milk_dtype_name(dt));
    }
    return milk_cv_const(c, name, &t, data, out);
}

milk_status milk_lw_scalar(milk_cv *c, const char *type, const char *name,
                           milk_var *x, double k, bool k_first, milk_var **out)
{
    milk_var *kv;
    MILK_TRY(milk_lw_scalar_const(c, milk_cv_tmp(c, "k"), x->type.dtype, k, &kv));
    return milk_lw_binary(c, type, name, k_first ? kv : x, k_first ? x : kv, out);
}

milk_status milk_lw_reduce(milk_cv *c, const char *type, const char *name,
                           milk_var *x, const int64_t *axes, int n, bool keep,
                           milk_var **out)
{
    milk_cv_op o;
    milk_cv_op_begin(&o, c, type, name);
    milk_cv_arg(&o, "x", x);
    milk_cv_arg_ints(&o, "axes", axes, n);
    milk_cv_arg_bool(&o, "keep_dims", keep);
    return milk_cv_op_end(&o, out);
}

void milk_lw_channel_shape(int64_t channels, int r, int *rank, int64_t *dims)
{
    *rank = r > 1 ? r - 1 : 1;
    dims[0] = channels;
    for (int i = 1; i < *rank; i++) dims[i] = 1;
}

milk_status milk_lw_cast(milk_cv *c, const char *name, milk_var *x,
                         milk_dtype dt, milk_var **out)
{
    if (x->type.dtype == dt) {
        *out = x;
        return MILK_OK;
    }
    return milk_cv_cast(c, name, x, dt, out);
}

milk_status milk_lw_moments(milk_cv *c, milk_var *x, const int64_t *axes,
                            int n, double eps, const char *mean_name,
                            const char *inv_name, milk_var **mean,
                            milk_var **d, milk_var **inv)
{
    milk_var *sq;
    MILK_TRY(milk_lw_reduce(c, "reduce_mean", mean_name ? mean_name : milk_cv_tmp(c, "mean"),
                            x, axes, n, true, mean));
    MILK_TRY(milk_lw_binary(c, "sub", milk_cv_tmp(c, "centred"), x, *mean, d));
    MILK_TRY(milk_lw_binary(c, "mul", milk_cv_tmp(c, "sq"), *d, *d, &sq));
    MILK_TRY(milk_lw_reduce(c, "reduce_mean", milk_cv_tmp(c, "var"), sq, axes, n,
                            true, &sq));
    milk_cv_op o;
    milk_cv_op_begin(&o, c, "rsqrt", inv_name ? inv_name : milk_cv_tmp(c, "inv"));
    milk_cv_arg(&o, "x", sq);
    milk_cv_arg_float(&o, "epsilon", eps, milk_cv_float_dtype(x));
    return milk_cv_op_end(&o, inv);
}

milk_status milk_lw_wrap_index(milk_cv *c, milk_var *idx, int64_t dim,
                               milk_var **out)
{
    milk_var *neg, *up;
    if (c->fn->opset < MILK_TARGET_IOS17) { /* negative indices count from the end */
        *out = idx;
        return MILK_OK;
    }
    MILK_TRY(milk_lw_scalar(c, "less", milk_cv_tmp(c, "negidx"), idx, 0, false, &neg));
    MILK_TRY(milk_lw_scalar(c, "add", milk_cv_tmp(c, "wrapped"), idx, (double)dim,
                            false, &up));
    milk_cv_op o;
    milk_cv_op_begin(&o, c, "select", milk_cv_tmp(c, "index"));
    milk_cv_arg(&o, "cond", neg);
    milk_cv_arg(&o, "a", up);
    milk_cv_arg(&o, "b", idx);
    return milk_cv_op_end(&o, out);
}
