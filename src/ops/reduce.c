/* reduce.c: reductions, after coremltools' ops/defs/iOS15/reduction.py and
 * iOS17/reduction.py: the reduce_* ops over a set of axes (ReductionAxes:
 * mean, sum, max, min, prod, l1_norm, l2_norm, log_sum, log_sum_exp,
 * sum_square), which share the signature and the shape rule and differ
 * only in the function reducing each slice, and reduce_argmax /
 * reduce_argmin over one axis (ReductionAxis).
 *
 * The reference kernel gathers each reduced slice into a buffer of doubles
 * and applies the op's function to it: float results are rounded once to
 * the fp32 storage. For int32 x, sums and products are exact and wrap to
 * 32 bits (NumPy accumulates int32 in int64 and astype(int32) keeps the low
 * bits); the other results (mean, norms, logs) are computed in double and
 * converted as cast converts (truncated toward zero). */
#include "elementwise.h"

#include <stdlib.h>
#include <strings.h>

/* ---- type inference ------------------------------------------------------ */

/* The output shape: x's without the reduced dims, or with them set to 1. */
static milk_status reduced_shape(milk_infer *ic, const milk_tensor_type *x,
                                 const bool *reduced, milk_dtype dt)
{
    bool keep;
    MILK_TRY(milk_op_bool(ic->ctx, ic->op, "keep_dims", false, &keep));
    int64_t dims[MILK_MAX_RANK];
    int r = 0;
    for (int i = 0; i < x->rank; i++) {
        if (!reduced[i])
            dims[r++] = x->dims[i];
        else if (keep)
            dims[r++] = 1;
    }
    return milk_infer_one(ic, dt, r, dims);
}

static milk_status reduce_infer(milk_infer *ic)
{
    const milk_tensor_type *x;
    int64_t axes[MILK_MAX_RANK];
    int n;
    bool given, reduced[MILK_MAX_RANK] = {false};
    MILK_TRY(milk_infer_tensor(ic, "x", MILK_DT_NUM, 0, -1, &x));
    MILK_TRY(milk_infer_ints(ic, "axes", MILK_DT_INT32, axes, MILK_MAX_RANK,
                             &n, &given));
    for (int i = 0; i < (given ? n : x->rank); i++) {
        int a = i;
        if (given) MILK_TRY(milk_infer_axis(ic, "axes", axes[i], x->rank, &a));
        if (reduced[a])
            return milk_op_fail(ic->ctx, ic->op, "axes", "axis %d repeated", a);
        reduced[a] = true;
    }
    return reduced_shape(ic, x, reduced, x->dtype);
}

/* reduce_argmax / reduce_argmin: one axis; int32 output, or from iOS17
 * output_dtype "int32" or "uint16" (case-insensitive, as coremltools
 * lower-cases it). */
static milk_status arg_infer(milk_infer *ic)
{
    const milk_tensor_type *x;
    int64_t axis;
    int a;
    bool reduced[MILK_MAX_RANK] = {false};
    MILK_TRY(milk_infer_tensor(ic, "x", MILK_DT_NUM, 1, -1, &x));
    MILK_TRY(milk_infer_int(ic, "axis", MILK_DT_INT32, -1, &axis));
    MILK_TRY(milk_infer_axis(ic, "axis", axis, x->rank, &a));
    reduced[a] = true;
    const char *od;
    MILK_TRY(milk_op_str(ic->ctx, ic->op, "output_dtype", "int32", &od));
    milk_dtype dt = MILK_DTYPE_INVALID;
    if (od && strcasecmp(od, "int32") == 0) dt = MILK_DTYPE_INT32;
    if (od && strcasecmp(od, "uint16") == 0) dt = MILK_DTYPE_UINT16;
    if (dt == MILK_DTYPE_INVALID)
        return milk_op_fail(ic->ctx, ic->op, "output_dtype",
                            "'%s' is not int32 or uint16", od ? od : "");
    return reduced_shape(ic, x, reduced, dt);
}

/* ---- slice functions ------------------------------------------------------ */

/* A reduction: f over a slice of n doubles; fi, if set, the exact int32
 * version (whose result is wrapped to int32); `identity` false when an
 * empty slice has no result (NumPy raises for max of nothing). */
typedef struct reducer {
    double (*f)(const double *v, int64_t n);
    int64_t (*fi)(const double *v, int64_t n);
    bool identity;
} reducer;

static double r_sum(const double *v, int64_t n)
{
    double s = 0;
    for (int64_t i = 0; i < n; i++) s += v[i];
    return s;
}

static double r_mean(const double *v, int64_t n) { return r_sum(v, n) / (double)n; }

/* NaN wins, as in np.max and np.min */
static double r_max(const double *v, int64_t n)
{
    double m = v[0];
    for (int64_t i = 1; i < n && !isnan(m); i++)
        if (v[i] > m || isnan(v[i])) m = v[i];
    return m;
}

static double r_min(const double *v, int64_t n)
{
    double m = v[0];
    for (int64_t i = 1; i < n && !isnan(m); i++)
        if (v[i] < m || isnan(v[i])) m = v[i];
    return m;
}

static double r_prod(const double *v, int64_t n)
{
    double p = 1;
    for (int64_t i = 0; i < n; i++) p *= v[i];
    return p;
}

static double r_l1_norm(const double *v, int64_t n)
{
    double s = 0;
    for (int64_t i = 0; i < n; i++) s += fabs(v[i]);
    return s;
}

static double r_sum_square(const double *v, int64_t n)
{
    double s = 0;
    for (int64_t i = 0; i < n; i++) s += v[i] * v[i];
    return s;
}

static double r_l2_norm(const double *v, int64_t n) { return sqrt(r_sum_square(v, n)); }
static double r_log_sum(const double *v, int64_t n) { return log(r_sum(v, n)); }

/* max + log(sum(e^(v - max))): never overflows. An infinite max is the
 * result itself (log-sum-exp of {-inf, -inf} is -inf, of {inf, 1} inf),
 * where NumPy's formula in coremltools' value inference gives NaN. */
static double r_log_sum_exp(const double *v, int64_t n)
{
    double m = r_max(v, n);
    if (isinf(m)) return m;
    double s = 0;
    for (int64_t i = 0; i < n; i++) s += exp(v[i] - m);
    return m + log(s);
}

/* Integer versions: exact in uint64 arithmetic (wrapping mod 2^64, which
 * keeps the low 32 bits right). */
static int64_t i_sum(const double *v, int64_t n)
{
    uint64_t s = 0;
    for (int64_t i = 0; i < n; i++) s += (uint64_t)(int64_t)v[i];
    return (int64_t)s;
}

static int64_t i_prod(const double *v, int64_t n)
{
    uint64_t p = 1;
    for (int64_t i = 0; i < n; i++) p *= (uint64_t)(int64_t)v[i];
    return (int64_t)p;
}

static int64_t i_l1_norm(const double *v, int64_t n)
{
    uint64_t s = 0;
    for (int64_t i = 0; i < n; i++) s += (uint64_t)(int64_t)fabs(v[i]);
    return (int64_t)s;
}

static int64_t i_sum_square(const double *v, int64_t n)
{
    uint64_t s = 0;
    for (int64_t i = 0; i < n; i++) {
        uint64_t x = (uint64_t)(int64_t)v[i];
        s += x * x;
    }
    return (int64_t)s;
}

/* First index of the extreme value; a NaN counts as the extreme (np.argmax
 * and np.argmin return the first NaN). */
static double r_argmax(const double *v, int64_t n)
{
    int64_t k = 0;
    for (int64_t i = 1; i < n && !isnan(v[k]); i++)
        if (v[i] > v[k] || isnan(v[i])) k = i;
    return (double)k;
}

static double r_argmin(const double *v, int64_t n)
{
    int64_t k = 0;
    for (int64_t i = 1; i < n && !isnan(v[k]); i++)
        if (v[i] < v[k] || isnan(v[i])) k = i;
    return (double)k;
}

/* ---- the kernel ------------------------------------------------------------ */

/* Store the result of one slice. */
static void put(milk_rt *o, int64_t i, const reducer *rd, const double *v,
                int64_t n, bool int_x)
{
    if (o->store == MILK_DTYPE_FP32)
        milk_rt_f32(o)[i] = (float)rd->f(v, n);
    else if (int_x && rd->fi)
        milk_rt_i32(o)[i] = milk_wrap_i32(rd->fi(v, n));
    else
        milk_rt_i32(o)[i] = milk_f2i32(rd->f(v, n));
}

/* out[o] = rd(x[o, every r]) with o over the kept axes, r over the
 * reduced ones (see milk_axes in elementwise.h). */
static milk_status reduce_run(milk_eval *ec, const bool *reduced,
                              const reducer *rd)
{
    const milk_rt *x = milk_eval_in(ec, "x");
    milk_rt *o = &ec->out[0];
    milk_axes kept, red;
    milk_axes_split(&x->type, reduced, &kept, &red);
    if (red.count == 0 && kept.count > 0 && !rd->identity)
        return milk_op_fail(ec->ctx, ec->op, "x",
                            "cannot reduce a zero-size axis (no identity)");
    double *v = malloc((size_t)(red.count ? red.count : 1) * sizeof *v);
    if (!v) return milk_errorf(ec->ctx, MILK_ERR_NOMEM, "out of memory");
    bool int_x = x->store == MILK_DTYPE_INT32;
    for (int64_t k = 0; k < kept.count; k++) {     /* [kept] */
        int64_t base = milk_axes_offset(&kept, k);
        for (int64_t r = 0; r < red.count; r++)    /* [reduced] */
            v[r] = milk_rt_get(x, base + milk_axes_offset(&red, r));
        put(o, k, rd, v, red.count, int_x);
    }
    free(v);
    return MILK_OK;
}

static milk_status reduce_axes(milk_eval *ec, const reducer *rd)
{
    bool reduced[MILK_MAX_RANK];
    const milk_rt *x = milk_eval_in(ec, "x");
    MILK_TRY(milk_axes_mask(ec, "axes", x->type.rank, true, reduced));
    return reduce_run(ec, reduced, rd);
}

static milk_status reduce_axis(milk_eval *ec, const reducer *rd)
{
    bool reduced[MILK_MAX_RANK] = {false};
    const milk_rt *x = milk_eval_in(ec, "x");
    int64_t axis;
    int a;
    MILK_TRY(milk_op_int(ec->ctx, ec->op, "axis", -1, &axis));
    MILK_TRY(milk_op_axis(ec->ctx, ec->op, "axis", axis, x->type.rank, &a));
    reduced[a] = true;
    return reduce_run(ec, reduced, rd);
}

/* ---- the table ------------------------------------------------------------- */

static const milk_param reduce_params[] = {
    {"x", MILK_P_REQ, 0},
    {"axes", MILK_P_CONST, 0},
    {"keep_dims", MILK_P_CONST, 0},
    {0},
};

#define REDUCE(id, fi, identity)                                            \
    static milk_status id##_eval(milk_eval *ec)                             \
    {                                                                       \
        static const reducer rd = {r_##id, fi, identity};                   \
        return reduce_axes(ec, &rd);                                        \
    }                                                                       \
    const milk_op_info milk_op_reduce_##id = {                              \
        .name = "reduce_" #id,                                              \
        .params = reduce_params,                                            \
        .min_opset = MILK_TARGET_IOS15,                                     \
        .infer = reduce_infer,                                              \
        .eval = id##_eval,                                                  \
    };

/* reduce_sum, reduce_mean, reduce_max, reduce_min, reduce_prod,
 * reduce_l1_norm (sum |x|), reduce_l2_norm (sqrt(sum x^2)), reduce_log_sum
 * (log(sum x)), reduce_log_sum_exp (log(sum e^x), computed as
 * max + log(sum e^(x - max)); an infinite max is the result),
 * reduce_sum_square (sum x^2): reduce x over `axes`.
 *   x          R    any rank, fp16/fp32/int32
 *   axes       O C  int32 [K], default all axes; negative axes count from
 *                   the end; no axis twice
 *   keep_dims  O C  bool, default false: keep reduced dims as size 1
 * Output: x's dtype; x's shape without the reduced dims (or with them set
 * to 1 when keep_dims); reducing every dim without keep_dims gives a
 * scalar. Floats accumulate in double; max and min propagate NaN. Empty
 * slices: sum 0, prod 1, mean NaN, log_sum -inf; max, min and
 * log_sum_exp fail (no identity, as NumPy). int32: sum, prod, l1_norm and
 * sum_square exact and wrapped to 32 bits; mean, l2_norm, log_sum and
 * log_sum_exp in double, truncated toward zero. */
REDUCE(sum, i_sum, true)
REDUCE(mean, NULL, true)
REDUCE(max, NULL, false)
REDUCE(min, NULL, false)
REDUCE(prod, i_prod, true)
REDUCE(l1_norm, i_l1_norm, true)
REDUCE(l2_norm, NULL, true)
REDUCE(log_sum, NULL, true)
REDUCE(log_sum_exp, NULL, false)
REDUCE(sum_square, i_sum_square, true)

static const milk_param arg_params[] = {
    {"x", MILK_P_REQ, 0},
    {"axis", MILK_P_CONST, 0},
    {"keep_dims", MILK_P_CONST, 0},
    {"output_dtype", MILK_P_CONST, MILK_TARGET_IOS17},
    {0},
};

#define REDUCE_ARG(id)                                                      \
    static milk_status id##_eval(milk_eval *ec)                             \
    {                                                                       \
        static const reducer rd = {r_##id, NULL, false};                    \
        return reduce_axis(ec, &rd);                                        \
    }                                                                       \
    const milk_op_info milk_op_reduce_##id = {                              \
        .name = "reduce_" #id,                                              \
        .params = arg_params,                                               \
        .min_opset = MILK_TARGET_IOS15,                                     \
        .infer = arg_infer,                                                 \
        .eval = id##_eval,                                                  \
    };

/* reduce_argmax, reduce_argmin: the index of the largest (smallest) value
 * along one axis; ties give the first index, and a NaN counts as the
 * extreme (the first NaN's index), as np.argmax and np.argmin.
 *   x             R    rank >= 1, fp16/fp32/int32
 *   axis          O C  int32, default -1
 *   keep_dims     O C  bool, default false
 *   output_dtype  O C  iOS17+: "int32" (default) or "uint16"
 * Output: int32 (or uint16); x's shape without the axis (or with it set to
 * 1). A zero-size axis fails. */
REDUCE_ARG(argmax)
REDUCE_ARG(argmin)
