/* lower_const.c: lowerings of the ops that make constants: Constant,
 * ConstantOfShape and Range (with constant inputs). Constant keeps its
 * tensor as an ONNX tensor (so integers stay exact int64 for whoever reads
 * them at conversion time); the others become MIL consts at once. */
#include "convert.h"

#include <math.h>
#include <stdlib.h>

/* The largest constant these ops build in memory. */
#define MAX_FILL_ELEMENTS (INT64_C(1) << 24)

/* An ONNX tensor in the converter's arena holding n elements of `elem`
 * bytes each (a 1-D tensor, or a scalar when scalar is set). */
static milk_status synth_tensor(milk_cv *c, int32_t dtype, bool scalar,
                                int n, const void *data, size_t elem,
                                const milk_onnx_tensor **out)
{
    milk_onnx_tensor *t = milk_arena_alloc(c->a, sizeof *t);
    void *copy = milk_arena_alloc(c->a, (size_t)n * elem + 1);
    if (!t || !copy) return milk_errorf(c->ctx, MILK_ERR_NOMEM, "out of memory");
    milk_copy(copy, data, (size_t)n * elem);
    t->name = c->node->outputs[0];
    t->dtype = dtype;
    t->rank = scalar ? 0 : 1;
    t->dims[0] = n;
    t->count = n;
    t->nbytes = (uint64_t)n * elem;
    t->kind = MILK_ONNX_DATA_INLINE;
    t->data = copy;
    *out = t;
    return MILK_OK;
}

milk_status milk_lower_constant(milk_cv *c, const milk_onnx_node *n)
{
    const milk_onnx_attr *a;
    const milk_onnx_tensor *t = NULL;
    float f;
    if ((a = milk_cv_attr(c, "value")) && a->t) {
        t = a->t;
    } else if ((a = milk_cv_attr(c, "value_float"))) {
        f = a->f;
        MILK_TRY(synth_tensor(c, MILK_ONNX_FLOAT, true, 1, &f, sizeof f, &t));
    } else if ((a = milk_cv_attr(c, "value_floats"))) {
        MILK_TRY(synth_tensor(c, MILK_ONNX_FLOAT, false, a->n_floats, a->floats,
                              sizeof *a->floats, &t));
    } else if ((a = milk_cv_attr(c, "value_int"))) {
        MILK_TRY(synth_tensor(c, MILK_ONNX_INT64, true, 1, &a->i, sizeof a->i, &t));
    } else if ((a = milk_cv_attr(c, "value_ints"))) {
        MILK_TRY(synth_tensor(c, MILK_ONNX_INT64, false, a->n_ints, a->ints,
                              sizeof *a->ints, &t));
    } else {
        return milk_cv_unsupported(c, "only value, value_float(s) and "
                                   "value_int(s) (no sparse or string values)");
    }
    if (milk_cv_dtype(t->dtype) == MILK_DTYPE_INVALID)
        return milk_cv_unsupported(c, "a constant of data type %s",
                                   milk_onnx_dtype_name(t->dtype)
                                       ? milk_onnx_dtype_name(t->dtype) : "?");
    return milk_cv_set_out_tensor(c, 0, t);
}

/* Element 0 of a small ONNX tensor as a double. */
static milk_status tensor_scalar(milk_cv *c, const milk_onnx_tensor *t,
                                 double *v)
{
    unsigned char buf[16] = {0};
    milk_dtype dt = milk_onnx_dtype_to_milk(t->dtype);
    if (t->count != 1 || t->nbytes > sizeof buf || dt == MILK_DTYPE_INVALID ||
        dt == MILK_DTYPE_STRING)
        return milk_cv_unsupported(c, "attribute 'value' must hold one number");
    MILK_TRY(milk_onnx_tensor_read(c->ctx, t, buf));
    milk_value bv = {0};
    bv.kind = MILK_VALUE_TENSOR;
    bv.type.dtype = dt;
    bv.data.kind = MILK_DATA_BORROWED;
    bv.data.ptr = buf;
    return milk_value_get_f64(c->ctx, &bv, 0, v);
}

/* n copies of v in dtype dt (int32 range-checked) into a malloc'd buffer. */
static milk_status fill_buffer(milk_cv *c, milk_dtype dt, double v, int64_t n,
                               void **out)
{
    uint64_t nb;
    if (dt == MILK_DTYPE_INT32 && (v < INT32_MIN || v > INT32_MAX))
        return milk_cv_unsupported(c, "value %g does not fit int32", v);
    if (!milk_dtype_nbytes(dt, n, &nb) || !(*out = malloc(nb ? (size_t)nb : 1)))
        return milk_errorf(c->ctx, MILK_ERR_NOMEM, "out of memory");
    for (int64_t i = 0; i < n; i++) {
        if (dt == MILK_DTYPE_FP32) ((float *)*out)[i] = (float)v;
        else if (dt == MILK_DTYPE_FP16) ((uint16_t *)*out)[i] = milk_fp32_to_fp16((float)v);
        else if (dt == MILK_DTYPE_INT32) ((int32_t *)*out)[i] = (int32_t)v;
        else ((uint8_t *)*out)[i] = v != 0;
    }
    return MILK_OK;
}

milk_status milk_lower_constant_of_shape(milk_cv *c, const milk_onnx_node *n)
{
    int64_t shape[MILK_MAX_RANK];
    int k;
    double v = 0;
    milk_dtype dt = MILK_DTYPE_FP32;
    const milk_onnx_attr *a = milk_cv_attr(c, "value");
    if (a && a->t) {
        dt = milk_cv_dtype(a->t->dtype);
        if (dt == MILK_DTYPE_INVALID)
            return milk_cv_unsupported(c, "attribute 'value': data type %s",
                                       milk_onnx_dtype_name(a->t->dtype));
        MILK_TRY(tensor_scalar(c, a->t, &v));
    }
    MILK_TRY(milk_cv_const_ints(c, 0, shape, MILK_MAX_RANK, &k));
    milk_tensor_type t = {dt, k, {0}};
    int64_t count;
    for (int i = 0; i < k; i++) {
        if (shape[i] < 1)
            return milk_cv_unsupported(c, "shape entry %d is %lld", i,
                                       (long long)shape[i]);
        t.dims[i] = shape[i];
    }
    if (!milk_dims_count(t.dims, k, &count) || count > MAX_FILL_ELEMENTS)
        return milk_cv_unsupported(c, "more than %lld elements",
                                   (long long)MAX_FILL_ELEMENTS);
    void *buf;
    MILK_TRY(fill_buffer(c, dt, v, count, &buf));
    milk_status s = milk_cv_set_out_const(c, 0, &t, buf);
    free(buf);
    return s;
}

milk_status milk_lower_range(milk_cv *c, const milk_onnx_node *n)
{
    double v[3];
    milk_tensor_type t;
    for (int i = 0; i < 3; i++) { /* fails naming a run-time input */
        int cnt;
        MILK_TRY(milk_cv_const_floats(c, i, &v[i], 1, &cnt));
    }
    MILK_TRY(milk_cv_type(c, 0, &t));
    if (v[2] == 0) return milk_cv_fail(c, MILK_ERR_INVALID_MODEL, "delta is 0");
    double len = ceil((v[1] - v[0]) / v[2]);
    if (!(len >= 1) || len > (double)MAX_FILL_ELEMENTS)
        return milk_cv_unsupported(c, "%g elements", len);
    int64_t count = (int64_t)len;
    void *buf;
    MILK_TRY(fill_buffer(c, t.dtype, 0, count, &buf));
    for (int64_t i = 0; i < count; i++) {
        double x = v[0] + (double)i * v[2];
        if (t.dtype == MILK_DTYPE_INT32) ((int32_t *)buf)[i] = (int32_t)x;
        else if (t.dtype == MILK_DTYPE_FP16) ((uint16_t *)buf)[i] = milk_fp32_to_fp16((float)x);
        else ((float *)buf)[i] = (float)x;
    }
    milk_tensor_type rt = {t.dtype, 1, {count}};
    milk_status s = milk_cv_set_out_const(c, 0, &rt, buf);
    free(buf);
    return s;
}
