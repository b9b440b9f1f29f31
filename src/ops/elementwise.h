/*
 * elementwise.h: helpers shared by the reference kernels of the
 * element-wise, reduction, normalization and cast ops (unary.c, binary.c,
 * compare.c, logical.c, select.c, activation.c, reduce.c, norm.c, cast.c):
 * the integer conversions MIL inherits from NumPy, and the split of a shape
 * into the axes an op keeps and the axes it reduces.
 */
#ifndef MILK_OPS_ELEMENTWISE_H
#define MILK_OPS_ELEMENTWISE_H

#include "infer.h"
#include "../run/run.h"

#include <math.h>

/* ---- integer conversions ------------------------------------------------ */

/* Wrap an integer to int32 as two's complement hardware (and NumPy's int32
 * arithmetic) does: keep the low 32 bits. */
static inline int32_t milk_wrap_i32(int64_t v)
{
    return (int32_t)(uint32_t)(uint64_t)v;
}

/* A float value converted to int32 as NumPy's astype(int32) does on the
 * x86 machines coremltools' value inference, PyTorch and ONNX Runtime run
 * on: truncation toward zero; NaN, +-inf and values outside int32's range
 * give INT32_MIN (the "integer indefinite" of cvttss2si). Never undefined
 * behaviour in C. */
static inline int32_t milk_f2i32(double v)
{
    if (!(v >= -2147483648.0 && v < 2147483648.0)) return INT32_MIN;
    return (int32_t)v;
}

/* An int32 value narrowed to a smaller integer dtype (int8, uint8, int16,
 * uint16) by keeping its low bits, as NumPy's astype does; other dtypes
 * unchanged. The result is what the interpreter stores (int32 storage). */
static inline int32_t milk_narrow_int(milk_dtype d, int32_t v)
{
    switch (d) {
    case MILK_DTYPE_INT8: return (int8_t)(uint8_t)(uint32_t)v;
    case MILK_DTYPE_UINT8: return (uint8_t)(uint32_t)v;
    case MILK_DTYPE_INT16: return (int16_t)(uint16_t)(uint32_t)v;
    case MILK_DTYPE_UINT16: return (uint16_t)(uint32_t)v;
    default: return v;
    }
}

/* Element i of a runtime tensor as double, whatever its storage. */
static inline double milk_rt_get(const milk_rt *t, int64_t i)
{
    switch (t->store) {
    case MILK_DTYPE_FP32: return milk_rt_f32(t)[i];
    case MILK_DTYPE_INT32: return milk_rt_i32(t)[i];
    default: return milk_rt_bool(t)[i];
    }
}

/* ---- kept and reduced axes ---------------------------------------------- */

/* A tensor's axes split into those kept (the output's, in order) and those
 * reduced (in increasing order), with the input strides of each. Element
 * (o, r), o over the kept axes and r over the reduced ones, both row-major,
 * is at input offset milk_axes_offset(o, kept) + milk_axes_offset(r, red). */
typedef struct milk_axes {
    int n;                       /* number of axes in this group */
    int64_t dims[MILK_MAX_RANK];
    int64_t strides[MILK_MAX_RANK];
    int64_t count;               /* product of dims (1 when n == 0) */
} milk_axes;

static inline void milk_axes_split(const milk_tensor_type *x,
                                   const bool *reduced, milk_axes *kept,
                                   milk_axes *red)
{
    int64_t st[MILK_MAX_RANK];
    milk_strides(x, st);
    kept->n = red->n = 0;
    kept->count = red->count = 1;
    for (int i = 0; i < x->rank; i++) {
        milk_axes *g = reduced[i] ? red : kept;
        g->dims[g->n] = x->dims[i];
        g->strides[g->n++] = st[i];
        g->count *= x->dims[i];
    }
}

/* Input offset of the i-th (row-major) element of an axis group. */
static inline int64_t milk_axes_offset(const milk_axes *g, int64_t i)
{
    int64_t off = 0;
    for (int d = g->n - 1; d >= 0; d--) {
        off += (i % g->dims[d]) * g->strides[d];
        i /= g->dims[d];
    }
    return off;
}

/* The reduced-axes mask for the constant int32 vector `param` of op
 * (absent: every axis when `all_if_absent`, else none). Negative axes
 * count from the end; type inference has checked the range. */
static inline milk_status milk_axes_mask(const milk_eval *ec,
                                         const char *param, int rank,
                                         bool all_if_absent, bool *mask)
{
    int64_t axes[MILK_MAX_RANK];
    int n;
    bool given;
    MILK_TRY(milk_op_ints(ec->ctx, ec->op, param, axes, MILK_MAX_RANK, &n,
                          &given));
    for (int i = 0; i < rank; i++) mask[i] = !given && all_if_absent;
    for (int i = 0; i < n; i++) {
        int a;
        MILK_TRY(milk_op_axis(ec->ctx, ec->op, param, axes[i], rank, &a));
        mask[a] = true;
    }
    return MILK_OK;
}

#endif /* MILK_OPS_ELEMENTWISE_H */
