/* concat.c: concat and stack (variadic input) and split (variadic
 * output), after coremltools' ops/defs/iOS15/tensor_operation.py. */
#include "layout.h"

#include <stdlib.h>

/* values[i] agrees with values[0] in dtype, rank, and every dim but the
 * axis (every dim with `equal`, which names the reason); unknown dims agree
 * with anything. */
static milk_status concat_check_one(milk_infer *ic,
                                    const milk_tensor_type *a,
                                    const milk_tensor_type *b, int i,
                                    int axis, const char *equal)
{
    if (b->dtype != a->dtype)
        return milk_op_fail(ic->ctx, ic->op, "values",
                            "value %d is %s, value 0 is %s", i,
                            milk_infer_dtype_name(b->dtype),
                            milk_infer_dtype_name(a->dtype));
    if (b->rank != a->rank)
        return milk_op_fail(ic->ctx, ic->op, "values",
                            "value %d has rank %d, value 0 rank %d", i,
                            (int)b->rank, (int)a->rank);
    for (int d = 0; d < a->rank; d++) {
        if (!MILK_DIM_KNOWN(a->dims[d]) || !MILK_DIM_KNOWN(b->dims[d]) ||
            a->dims[d] == b->dims[d] || (d == axis && !equal))
            continue;
        return milk_op_fail(ic->ctx, ic->op, "values",
                            "value %d has %lld at dim %d, value 0 has %lld%s",
                            i, (long long)b->dims[d], d,
                            (long long)a->dims[d], equal ? equal : "");
    }
    return MILK_OK;
}

static milk_status concat_infer(milk_infer *ic)
{
    int n = milk_op_in_count(ic->op, "values"), axis;
    const milk_tensor_type *v0;
    int64_t ax;
    bool interleave;
    MILK_TRY(milk_infer_tensor(ic, "values", milk_dt_layout(ic->opset), 0, -1,
                               &v0));
    MILK_TRY(milk_infer_int(ic, "axis", MILK_DT_INT32, 0, &ax));
    MILK_TRY(milk_op_bool(ic->ctx, ic->op, "interleave", false, &interleave));
    /* scalars are stacked into a vector */
    MILK_TRY(milk_infer_axis(ic, "axis", ax, v0->rank ? v0->rank : 1, &axis));
    int64_t dims[MILK_MAX_RANK], sum = 0;
    memcpy(dims, v0->dims, sizeof dims);
    for (int i = 0; i < n; i++) {
        const milk_tensor_type *t = milk_op_in_type_at(ic->op, "values", i);
        MILK_TRY(concat_check_one(ic, v0, t, i, axis,
                                  interleave ? " (interleave needs equal "
                                               "shapes)"
                                             : NULL));
        int64_t d = t->rank ? t->dims[axis] : 1;
        if (sum >= 0 && MILK_DIM_KNOWN(d) &&
            __builtin_add_overflow(sum, d, &sum))
            return milk_op_fail(ic->ctx, ic->op, "values", "size overflows");
        if (!MILK_DIM_KNOWN(d)) sum = MILK_DIM_UNKNOWN;
    }
    dims[axis] = sum;
    return milk_infer_one(ic, v0->dtype, v0->rank ? v0->rank : 1, dims);
}

/* concat: joins tensors along an axis.
 *   values      R V  one binding per tensor (variadic), same dtype (layout
 *                    dtypes) and rank, equal dims except along axis;
 *                    scalars are stacked into a vector
 *   axis        R C  int32, in [-rank, rank)
 *   interleave  O C  bool, default false: take slices alternately; needs
 *                    equal shapes
 * Output: values[0]'s shape with the axis dim the sum over values. */
static const milk_param concat_params[] = {
    {"values", MILK_P_REQ | MILK_P_VARIADIC, 0},
    {"axis", MILK_P_REQ | MILK_P_CONST, 0},
    {"interleave", MILK_P_CONST, 0},
    {0},
};

/* Without interleave, out[p, :] (p over the dims before axis) is
 * values[0][p, :], then values[1][p, :], ...; with interleave, slice j of
 * values[v] along axis becomes slice j * n + v. */
static milk_status concat_eval(milk_eval *ec)
{
    int n = milk_eval_in_count(ec, "values");
    milk_rt *o = &ec->out[0];
    int64_t ax;
    bool interleave;
    MILK_TRY(milk_op_int(ec->ctx, ec->op, "axis", 0, &ax));
    MILK_TRY(milk_op_bool(ec->ctx, ec->op, "interleave", false, &interleave));
    int axis = (int)(ax < 0 ? ax + o->type.rank : ax);
    int64_t outer = milk_dims_span(o->type.dims, 0, axis);
    int64_t inner = milk_dims_span(o->type.dims, axis + 1, o->type.rank), at = 0;
    /* out: [outer, sum of the values' axis dims, inner] */
    for (int64_t p = 0; p < outer; p++) {
        int64_t len = interleave ? o->type.dims[axis] / n : 1;
        for (int64_t j = 0; j < len; j++)
            for (int v = 0; v < n; v++) {
                const milk_rt *x = milk_eval_in_at(ec, "values", v);
                /* a scalar value counts as a vector of one element */
                int64_t d = x->type.rank ? x->type.dims[axis] : 1;
                int64_t take = interleave ? inner : d * inner;
                int64_t from = interleave ? (p * d + j) * inner : p * take;
                for (int64_t k = 0; k < take; k++)
                    milk_layout_copy(o, at++, x, from + k);
            }
    }
    return MILK_OK;
}

const milk_op_info milk_op_concat = {
    .name = "concat",
    .params = concat_params,
    .min_opset = MILK_TARGET_IOS15,
    .infer = concat_infer,
    .eval = concat_eval,
};

/* The sizes of the pieces, from split_sizes (which must sum to the axis
 * dim when that is known) or from num_splits (which must divide it). */
static milk_status split_sizes(milk_infer *ic, int64_t dim, int64_t **sizes,
                               int *n)
{
    const milk_value *c = milk_op_const(ic->op, "split_sizes");
    int64_t num = 0;
    MILK_TRY(milk_infer_int(ic, "num_splits", MILK_DT_INT32, 0, &num));
    bool has_num = milk_op_arg(ic->op, "num_splits") != NULL;
    if (!c && !has_num)
        return milk_op_fail(ic->ctx, ic->op, NULL,
                            "needs num_splits or split_sizes");
    if (has_num && (num < 1 || num > 65536))
        return milk_op_fail(ic->ctx, ic->op, "num_splits",
                            "%lld is outside 1..65536", (long long)num);
    int64_t count = c ? milk_tensor_type_count(&c->type) : num;
    if (count < 1 || count > 65536 || (has_num && count != num))
        return milk_op_fail(ic->ctx, ic->op, "split_sizes",
                            "%lld sizes%s", (long long)count,
                            has_num ? " differ from num_splits" : "");
    *sizes = malloc((size_t)count * sizeof **sizes);
    if (!*sizes) return milk_errorf(ic->ctx, MILK_ERR_NOMEM, "out of memory");
    *n = (int)count;
    if (c)
        return milk_infer_ints(ic, "split_sizes", MILK_DT_INT32, *sizes,
                               (int)count, n, NULL);
    if (MILK_DIM_KNOWN(dim) && dim % num != 0)
        return milk_op_fail(ic->ctx, ic->op, "num_splits",
                            "%lld does not divide the axis dim %lld",
                            (long long)num, (long long)dim);
    for (int i = 0; i < *n; i++)
        (*sizes)[i] = MILK_DIM_KNOWN(dim) ? dim / num : MILK_DIM_UNKNOWN;
    return MILK_OK;
}

static milk_status check_split_sum(milk_infer *ic, const int64_t *sizes,
                                   int n, int64_t dim)
{
    int64_t sum = 0;
    for (int i = 0; i < n; i++) {
        if (sizes[i] < 0)
            return milk_op_fail(ic->ctx, ic->op, "split_sizes",
                                "size %d is negative", i);
        if (__builtin_add_overflow(sum, sizes[i], &sum))
            return milk_op_fail(ic->ctx, ic->op, "split_sizes", "overflow");
    }
    if (MILK_DIM_KNOWN(dim) && sum != dim)
        return milk_op_fail(ic->ctx, ic->op, "split_sizes",
                            "sizes sum to %lld, the axis dim is %lld",
                            (long long)sum, (long long)dim);
    return MILK_OK;
}

static milk_status split_infer(milk_infer *ic)
{
    uint64_t dts = MILK_DT_NUM | MILK_DT_BOOL;
    const milk_tensor_type *x;
    int64_t ax, *sizes = NULL;
    int axis, n = 0;
    MILK_TRY(milk_infer_tensor(ic, "x", dts, 1, -1, &x));
    MILK_TRY(milk_infer_int(ic, "axis", MILK_DT_INT32, 0, &ax));
    MILK_TRY(milk_infer_axis(ic, "axis", ax, x->rank, &axis));
    milk_status s = split_sizes(ic, x->dims[axis], &sizes, &n);
    if (s == MILK_OK && milk_op_arg(ic->op, "split_sizes"))
        s = check_split_sum(ic, sizes, n, x->dims[axis]);
    if (s == MILK_OK) s = milk_infer_outputs(ic, n);
    for (int i = 0; s == MILK_OK && i < n; i++) {
        ic->out[i] = *x;
        ic->out[i].dims[axis] = sizes[i];
    }
    free(sizes);
    return s;
}

/* split: cuts x into pieces along an axis (one output per piece).
 *   x            R    rank >= 1, fp16/fp32/int32/bool
 *   num_splits   O C  int32: that many equal pieces (must divide the dim)
 *   split_sizes  O C  int32 [S]: piece sizes, summing to the dim; with
 *                     num_splits, S == num_splits
 *   axis         R C  int32, in [-rank, rank)
 * One of num_splits and split_sizes is required.
 * Outputs: x's shape with the axis dim set to each piece's size. */
static const milk_param split_params[] = {
    {"x", MILK_P_REQ, 0},
    {"num_splits", MILK_P_CONST, 0},
    {"split_sizes", MILK_P_CONST, 0},
    {"axis", MILK_P_REQ | MILK_P_CONST, 0},
    {0},
};

/* Piece k takes x[o, c_k : c_k + size_k, :] for every o over the dims
 * before axis, c_k the sum of the sizes before it. */
static milk_status split_eval(milk_eval *ec)
{
    const milk_rt *x = milk_eval_in(ec, "x");
    int64_t ax;
    MILK_TRY(milk_op_int(ec->ctx, ec->op, "axis", 0, &ax));
    int axis = (int)(ax < 0 ? ax + x->type.rank : ax);
    int64_t outer = milk_dims_span(x->type.dims, 0, axis);
    int64_t inner = milk_dims_span(x->type.dims, axis + 1, x->type.rank);
    int64_t dim = x->type.dims[axis], c = 0;
    for (int k = 0; k < ec->n_out; k++) {
        milk_rt *o = &ec->out[k];
        int64_t size = o->type.dims[axis];
        if (c + size > dim)
            return milk_op_fail(ec->ctx, ec->op, "split_sizes",
                                "pieces exceed the axis dim %lld",
                                (long long)dim);
        /* piece k: [outer, size, inner] */
        for (int64_t p = 0; p < outer; p++)
            for (int64_t i = 0; i < size * inner; i++)
                milk_layout_copy(o, p * size * inner + i, x,
                                 (p * dim + c) * inner + i);
        c += size;
    }
    return MILK_OK;
}

const milk_op_info milk_op_split = {
    .name = "split",
    .params = split_params,
    .min_opset = MILK_TARGET_IOS15,
    .infer = split_infer,
    .eval = split_eval,
};

/* ---- stack ------------------------------------------------------------- */

static milk_status stack_infer(milk_infer *ic)
{
    int n = milk_op_in_count(ic->op, "values");
    const milk_tensor_type *v0;
    int64_t ax, dims[MILK_MAX_RANK];
    MILK_TRY(milk_infer_tensor(ic, "values", milk_dt_layout(ic->opset), 0,
                               MILK_MAX_RANK - 1, &v0));
    MILK_TRY(milk_infer_int(ic, "axis", MILK_DT_INT32, 0, &ax));
    int axis;
    MILK_TRY(milk_infer_axis(ic, "axis", ax, v0->rank + 1, &axis));
    memcpy(dims, v0->dims, sizeof dims);
    for (int i = 0; i < n; i++) {
        const milk_tensor_type *t = milk_op_in_type_at(ic->op, "values", i);
        /* equal shapes: concat's check with no free axis */
        MILK_TRY(concat_check_one(ic, v0, t, i, -1,
                                  " (stack needs equal shapes)"));
        for (int d = 0; d < v0->rank; d++)
            if (!MILK_DIM_KNOWN(dims[d])) dims[d] = t->dims[d];
    }
    memmove(dims + axis + 1, dims + axis,
            (size_t)(v0->rank - axis) * sizeof *dims);
    dims[axis] = n;
    return milk_infer_one(ic, v0->dtype, v0->rank + 1, dims);
}

/* out[o, v, i] = values[v][o, i], o over the dims before axis. */
static milk_status stack_eval(milk_eval *ec)
{
    int n = milk_eval_in_count(ec, "values");
    milk_rt *o = &ec->out[0];
    int64_t ax;
    MILK_TRY(milk_op_int(ec->ctx, ec->op, "axis", 0, &ax));
    int axis = (int)(ax < 0 ? ax + o->type.rank : ax);
    int64_t outer = milk_dims_span(o->type.dims, 0, axis);
    int64_t inner = milk_dims_span(o->type.dims, axis + 1, o->type.rank), at = 0;
    /* out: [outer, n, inner] */
    for (int64_t p = 0; p < outer; p++)
        for (int v = 0; v < n; v++)
            for (int64_t i = 0; i < inner; i++)
                milk_layout_copy(o, at++, milk_eval_in_at(ec, "values", v),
                                 p * inner + i);
    return MILK_OK;
}

/* stack: joins equal-shaped tensors along a new axis.
 *   values  R V  one binding per tensor, same dtype (layout dtypes) and
 *                shape (rank < 8)
 *   axis    R C  int32, the new dim's place, in [-rank-1, rank]
 * Output: the values' shape with a dim of size len(values) inserted at
 * axis. */
static const milk_param stack_params[] = {
    {"values", MILK_P_REQ | MILK_P_VARIADIC, 0},
    {"axis", MILK_P_REQ | MILK_P_CONST, 0},
    {0},
};

const milk_op_info milk_op_stack = {
    .name = "stack",
    .params = stack_params,
    .min_opset = MILK_TARGET_IOS15,
    .infer = stack_infer,
    .eval = stack_eval,
};
