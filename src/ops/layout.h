/*
 * layout.h: small helpers the data-movement kernels share (shape, concat,
 * slice, pad, gather, tile, space, reverse, topk): element sizes of the
 * interpreter's storage, single-element copies that work for every storage
 * dtype, and a row-major multi-index counter.
 *
 * The kernels move elements one at a time through these helpers so that
 * one loop serves fp32, int32 and bool storage alike: they are reference
 * kernels, written to be obviously right rather than fast.
 */
#ifndef MILK_OPS_LAYOUT_H
#define MILK_OPS_LAYOUT_H

#include "infer.h"
#include "../run/run.h"

/* Bytes per stored element: fp32 and int32 take 4, bool 1. */
static inline size_t milk_layout_esz(const milk_rt *t)
{
    return t->store == MILK_DTYPE_BOOL ? 1 : 4;
}

/* dst[di] = src[si], both of the same storage dtype. */
static inline void milk_layout_copy(milk_rt *dst, int64_t di,
                                    const milk_rt *src, int64_t si)
{
    size_t e = milk_layout_esz(src);
    memcpy((char *)dst->data + (size_t)di * e,
           (const char *)src->data + (size_t)si * e, e);
}

/* Advance a row-major multi-index over dims (the last index fastest).
 * Returns false after the last element (idx back at all zeros). */
static inline bool milk_layout_next(int rank, const int64_t *dims,
                                    int64_t *idx)
{
    for (int d = rank - 1; d >= 0; d--) {
        if (++idx[d] < dims[d]) return true;
        idx[d] = 0;
    }
    return false;
}

/* The flat offset of a multi-index under the given strides. */
static inline int64_t milk_layout_offset(int rank, const int64_t *idx,
                                         const int64_t *strides)
{
    int64_t o = 0;
    for (int d = 0; d < rank; d++) o += idx[d] * strides[d];
    return o;
}

/* The whole of x copied into out unchanged (same element count): reshape,
 * expand_dims, squeeze, flatten2d. */
static inline milk_status milk_layout_copy_all(milk_eval *ec, const char *x)
{
    const milk_rt *in = milk_eval_in(ec, x);
    milk_rt *out = &ec->out[0];
    if (in->count != out->count || in->store != out->store)
        return milk_op_fail(ec->ctx, ec->op, x,
                            "%lld elements cannot fill an output of %lld",
                            (long long)in->count, (long long)out->count);
    if (in->count)
        memcpy(out->data, in->data, (size_t)in->count * milk_layout_esz(in));
    return MILK_OK;
}

#endif /* MILK_OPS_LAYOUT_H */
