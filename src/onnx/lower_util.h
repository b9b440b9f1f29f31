/*
 * lower_util.h: small emitting helpers the lowering families share
 * (lower_util.c): one binary op, an op against a scalar constant of the
 * operand's dtype, a reduction, a constant of a given shape. Each names
 * its op `name` (milk_cv_out or milk_cv_tmp) and returns the op's output.
 */
#ifndef MILK_ONNX_LOWER_UTIL_H
#define MILK_ONNX_LOWER_UTIL_H

#include "convert.h"

/* type(x=x, y=y). */
milk_status milk_lw_binary(milk_cv *c, const char *type, const char *name,
                           milk_var *x, milk_var *y, milk_var **out);
/* type(x=x, y=k), or type(x=k, y=x) if k_first, k a scalar const of x's
 * dtype (fp16, fp32 or int32; an int32 k must be an integer). */
milk_status milk_lw_scalar(milk_cv *c, const char *type, const char *name,
                           milk_var *x, double k, bool k_first, milk_var **out);
/* A reduction (reduce_*) of x over axes (already normalized). */
milk_status milk_lw_reduce(milk_cv *c, const char *type, const char *name,
                           milk_var *x, const int64_t *axes, int n, bool keep,
                           milk_var **out);
/* A scalar const of dtype dt (fp16, fp32, int32 or bool) holding v. */
milk_status milk_lw_scalar_const(milk_cv *c, const char *name, milk_dtype dt,
                                 double v, milk_var **out);
/* Shape of a [C] per-channel vector broadcast against a rank-r tensor
 * whose channel axis is 1: [C, 1, ..., 1] (rank r - 1). */
void milk_lw_channel_shape(int64_t channels, int r, int *rank, int64_t *dims);
/* x cast to dt, or x itself when it already has it. */
milk_status milk_lw_cast(milk_cv *c, const char *name, milk_var *x,
                         milk_dtype dt, milk_var **out);
/* Moments over axes (normalized), dims kept: mean = E[x], d = x - mean,
 * inv = 1 / sqrt(E[d^2] + eps) (rsqrt). mean_name and inv_name name those
 * ops (NULL: fresh names); the centred d always gets a fresh name. */
milk_status milk_lw_moments(milk_cv *c, milk_var *x, const int64_t *axes,
                            int n, double eps, const char *mean_name,
                            const char *inv_name, milk_var **mean,
                            milk_var **d, milk_var **inv);
/* Negative indices (run time, int32) wrapped into [0, dim): select(idx <
 * 0, idx + dim, idx), from iOS17 on, where MIL's gather ops take no
 * negative index (before, they count from the end as in ONNX). */
milk_status milk_lw_wrap_index(milk_cv *c, milk_var *idx, int64_t dim,
                               milk_var **out);

#endif /* MILK_ONNX_LOWER_UTIL_H */
