/* topk.c: the topk op, the k largest (or smallest) elements along an axis
 * and their indices, after coremltools' ops/defs/iOS15, iOS16 (sort,
 * return_indices) and iOS17 (small integer dtypes, k = -1,
 * output_indices_dtype) tensor_operation.py. */
#include "layout.h"

#include <math.h>
#include <stdlib.h>

static uint64_t topk_x_dtypes(milk_target opset)
{
    uint64_t m = MILK_DT_NUM;
    if (opset >= MILK_TARGET_IOS17)
        m |= MILK_DT(MILK_DTYPE_INT8) | MILK_DT(MILK_DTYPE_INT16) |
             MILK_DT(MILK_DTYPE_UINT8) | MILK_DT(MILK_DTYPE_UINT16);
    return m;
}

/* k for an axis of size dim: -1 (iOS17) takes the whole axis. */
static milk_status topk_k(milk_infer *ic, int64_t dim, int64_t *k)
{
    uint64_t kdt = ic->opset >= MILK_TARGET_IOS17 ? MILK_DT_INT8_16_32
                                                  : MILK_DT_INT32;
    MILK_TRY(milk_infer_int(ic, "k", kdt, 1, k));
    if (*k == -1 && ic->opset >= MILK_TARGET_IOS17) {
        *k = dim;
        return MILK_OK;
    }
    if (*k < 1 || (MILK_DIM_KNOWN(dim) && *k > dim))
        return milk_op_fail(ic->ctx, ic->op, "k",
                            "%lld is outside 1..%lld (the axis dim)",
                            (long long)*k, (long long)dim);
    return MILK_OK;
}

/* The indices' dtype: int32, or from iOS17 output_indices_dtype, which is
 * "int32" or "uint16" and may only be given with return_indices. */
static milk_status indices_dtype(milk_infer *ic, bool ret, milk_dtype *dt)
{
    const char *s;
    MILK_TRY(milk_op_str(ic->ctx, ic->op, "output_indices_dtype", "int32", &s));
    if (!ret && milk_op_arg(ic->op, "output_indices_dtype"))
        return milk_op_fail(ic->ctx, ic->op, "output_indices_dtype",
                            "only allowed with return_indices true");
    if (!s || (strcmp(s, "int32") && strcmp(s, "uint16")))
        return milk_op_fail(ic->ctx, ic->op, "output_indices_dtype",
                            "'%s' is not int32 or uint16", s ? s : "");
    *dt = s[0] == 'i' ? MILK_DTYPE_INT32 : MILK_DTYPE_UINT16;
    return MILK_OK;
}

static milk_status topk_infer(milk_infer *ic)
{
    const milk_tensor_type *x;
    int64_t ax, k;
    int axis;
    bool b, ret;
    milk_dtype idt = MILK_DTYPE_INT32;
    MILK_TRY(milk_infer_tensor(ic, "x", topk_x_dtypes(ic->opset), 1, -1, &x));
    MILK_TRY(milk_infer_int(ic, "axis", MILK_DT_INT32, -1, &ax));
    MILK_TRY(milk_infer_axis(ic, "axis", ax, x->rank, &axis));
    MILK_TRY(topk_k(ic, x->dims[axis], &k));
    MILK_TRY(milk_op_bool(ic->ctx, ic->op, "ascending", false, &b));
    MILK_TRY(milk_op_bool(ic->ctx, ic->op, "sort", true, &b));
    MILK_TRY(milk_op_bool(ic->ctx, ic->op, "return_indices", true, &ret));
    MILK_TRY(indices_dtype(ic, ret, &idt));
    MILK_TRY(milk_infer_outputs(ic, ret ? 2 : 1));
    ic->out[0] = *x;
    ic->out[0].dims[axis] = k;
    if (ret) {
        ic->out[1] = ic->out[0];
        ic->out[1].dtype = idt;
    }
    return MILK_OK;
}

/* One element of a slice along the axis, for sorting. */
typedef struct ranked {
    double v;
    int64_t i;
} ranked;

/* Descending order, NaN above everything, ties by the lower index. */
static int by_desc(const void *pa, const void *pb)
{
    const ranked *a = pa, *b = pb;
    bool na = isnan(a->v), nb = isnan(b->v);
    if (na != nb) return na ? -1 : 1;
    if (!na && a->v != b->v) return a->v > b->v ? -1 : 1;
    return a->i < b->i ? -1 : a->i > b->i;
}

/* Ascending order, NaN above everything (so last), ties by the lower
 * index. */
static int by_asc(const void *pa, const void *pb)
{
    const ranked *a = pa, *b = pb;
    bool na = isnan(a->v), nb = isnan(b->v);
    if (na != nb) return na ? 1 : -1;
    if (!na && a->v != b->v) return a->v < b->v ? -1 : 1;
    return a->i < b->i ? -1 : a->i > b->i;
}

/* Each slice along the axis is sorted (stably: equal values keep their
 * order) and its first k entries are written. */
static milk_status topk_eval(milk_eval *ec)
{
    const milk_rt *x = milk_eval_in(ec, "x");
    milk_rt *vals = &ec->out[0], *idx = ec->n_out > 1 ? &ec->out[1] : NULL;
    int64_t ax;
    bool asc;
    MILK_TRY(milk_op_int(ec->ctx, ec->op, "axis", -1, &ax));
    MILK_TRY(milk_op_bool(ec->ctx, ec->op, "ascending", false, &asc));
    int axis = (int)(ax < 0 ? ax + x->type.rank : ax);
    int64_t P = milk_dims_span(x->type.dims, 0, axis), A = x->type.dims[axis];
    int64_t Q = milk_dims_span(x->type.dims, axis + 1, x->type.rank);
    int64_t K = vals->type.dims[axis];
    bool ints = x->store == MILK_DTYPE_INT32;
    ranked *r = malloc((size_t)(A ? A : 1) * sizeof *r);
    if (!r) return milk_errorf(ec->ctx, MILK_ERR_NOMEM, "out of memory");
    /* x: [P, A, Q]; outputs: [P, K, Q] */
    for (int64_t p = 0; p < P; p++)
        for (int64_t q = 0; q < Q; q++) {
            for (int64_t a = 0; a < A; a++) {
                int64_t at = (p * A + a) * Q + q;
                r[a].v = ints ? milk_rt_i32(x)[at] : milk_rt_f32(x)[at];
                r[a].i = a;
            }
            qsort(r, (size_t)A, sizeof *r, asc ? by_asc : by_desc);
            for (int64_t k = 0; k < K && k < A; k++) {
                int64_t to = (p * K + k) * Q + q;
                milk_layout_copy(vals, to, x, (p * A + r[k].i) * Q + q);
                if (idx) milk_rt_i32(idx)[to] = (int32_t)r[k].i;
            }
        }
    free(r);
    return MILK_OK;
}

/* topk: the k largest (or smallest) elements along an axis.
 *   x                     R    rank >= 1; fp16, fp32, int32 (iOS17 adds
 *                              int8, int16, uint8, uint16)
 *   k                     O C  int32 (iOS17: int8/int16/int32), default 1,
 *                              in 1..dim; iOS17: -1 for the whole axis
 *   axis                  O C  int32, default -1
 *   ascending             O C  bool, default false: the largest first;
 *                              true: the smallest first
 *   sort                  O C  bool, default true (iOS16+); false allows
 *                              any order, and the reference still sorts
 *   return_indices        O C  bool, default true (iOS16+); false: the
 *                              values only
 *   output_indices_dtype  O C  "int32" (default) or "uint16" (iOS17+),
 *                              only with return_indices
 * Outputs: values, x's shape with k along axis; indices (the positions
 * along axis, int32 or uint16), same shape. The order is total: NaN ranks
 * above every number (as in PyTorch), and equal values keep their order
 * along the axis (the lower index first). */
static const milk_param topk_params[] = {
    {"x", MILK_P_REQ, 0},
    {"k", MILK_P_CONST, 0},
    {"axis", MILK_P_CONST, 0},
    {"ascending", MILK_P_CONST, 0},
    {"sort", MILK_P_CONST, MILK_TARGET_IOS16},
    {"return_indices", MILK_P_CONST, MILK_TARGET_IOS16},
    {"output_indices_dtype", MILK_P_CONST, MILK_TARGET_IOS17},
    {0},
};

const milk_op_info milk_op_topk = {
    .name = "topk",
    .params = topk_params,
    .min_opset = MILK_TARGET_IOS15,
    .infer = topk_infer,
    .eval = topk_eval,
};
