/* tensor.c: runtime tensors of the interpreter (see run.h) and the
 * accessors kernels use to reach their inputs. */
#include "run.h"

#include <stdio.h>
#include <stdlib.h>

milk_dtype milk_rt_store(milk_dtype d)
{
    switch (d) {
    case MILK_DTYPE_FP16: case MILK_DTYPE_FP32: case MILK_DTYPE_FP64:
    case MILK_DTYPE_BF16:
        return MILK_DTYPE_FP32;
    case MILK_DTYPE_BOOL:
        return MILK_DTYPE_BOOL;
    case MILK_DTYPE_STRING: case MILK_DTYPE_INVALID:
        return MILK_DTYPE_INVALID;
    default:
        return MILK_DTYPE_INT32; /* every integer dtype, sub-byte included */
    }
}

milk_status milk_rt_alloc(milk_ctx *ctx, milk_rt *t,
                          const milk_tensor_type *type)
{
    memset(t, 0, sizeof *t);
    t->type = *type;
    t->store = milk_rt_store(type->dtype);
    t->count = milk_tensor_type_count(type);
    if (t->store == MILK_DTYPE_INVALID)
        return milk_errorf(ctx, MILK_ERR_UNSUPPORTED,
                           "the interpreter has no storage for %s values",
                           milk_dtype_name(type->dtype));
    if (t->count < 0 || t->count > MILK_MAX_ELEMENTS) {
        char ts[160];
        return milk_errorf(ctx, MILK_ERR_UNSUPPORTED,
                           "cannot allocate a %s: %s",
                           milk_type_str(type, ts, sizeof ts),
                           t->count < 0 ? "its shape is not known"
                                        : "more than 2^40 elements");
    }
    uint64_t nbytes;
    if (!milk_dtype_nbytes(t->store, t->count, &nbytes) || nbytes > SIZE_MAX)
        return milk_errorf(ctx, MILK_ERR_NOMEM, "tensor too large");
    t->owned = calloc(1, nbytes ? (size_t)nbytes : 1);
    if (!t->owned)
        return milk_errorf(ctx, MILK_ERR_NOMEM,
                           "out of memory allocating %llu bytes",
                           (unsigned long long)nbytes);
    t->data = t->owned;
    return MILK_OK;
}

const char *milk_type_str(const milk_tensor_type *t, char *buf, size_t n)
{
    const char *dn = milk_dtype_name(t->dtype);
    int k = snprintf(buf, n, "tensor<%s, [", dn ? dn : "?");
    if (t->rank < 0 && k >= 0 && (size_t)k < n)
        k += snprintf(buf + k, n - (size_t)k, "*");
    for (int i = 0; i < t->rank && i < MILK_MAX_RANK && k >= 0 && (size_t)k < n; i++) {
        if (t->dims[i] < 0)
            k += snprintf(buf + k, n - (size_t)k, "%s?", i ? ", " : "");
        else
            k += snprintf(buf + k, n - (size_t)k, "%s%lld", i ? ", " : "",
                          (long long)t->dims[i]);
    }
    if (k >= 0 && (size_t)k < n) snprintf(buf + k, n - (size_t)k, "]>");
    return buf;
}

bool milk_type_concrete(const milk_tensor_type *t)
{
    if (t->rank < 0 || t->rank > MILK_MAX_RANK) return false;
    for (int i = 0; i < t->rank; i++)
        if (t->dims[i] < 0) return false;
    return true;
}

void milk_rt_release(milk_rt *t)
{
    free(t->owned);
    memset(t, 0, sizeof *t);
}

/* Converting sink for milk_value_stream: declared dtype -> storage. */
typedef struct fill {
    milk_rt *t;
    int64_t at;          /* next element */
    milk_dtype from;
    unsigned char carry[8];
    size_t ncarry;       /* bytes of a split element (chunks are byte-sized) */
} fill;

/* One element of dtype `from` at p, as double (every integer milk handles
 * fits a double exactly up to 2^53, far beyond int32 storage). */
static double decode(milk_dtype from, const unsigned char *p)
{
    union { uint16_t h; float f; double d; int8_t i8; uint8_t u8; int16_t i16;
            uint16_t u16; int32_t i32; uint32_t u32; int64_t i64; uint64_t u64; } x;
    memcpy(&x, p, (size_t)milk_dtype_bits(from) / 8);
    switch (from) {
    case MILK_DTYPE_FP16: return milk_fp16_to_fp32(x.h);
    case MILK_DTYPE_BF16: {
        uint32_t b = (uint32_t)x.h << 16;
        float f;
        memcpy(&f, &b, 4);
        return f;
    }
    case MILK_DTYPE_FP32: return x.f;
    case MILK_DTYPE_FP64: return x.d;
    case MILK_DTYPE_INT8: return x.i8;
    case MILK_DTYPE_UINT8: case MILK_DTYPE_BOOL: return x.u8;
    case MILK_DTYPE_INT16: return x.i16;
    case MILK_DTYPE_UINT16: return x.u16;
    case MILK_DTYPE_INT32: return x.i32;
    case MILK_DTYPE_UINT32: return x.u32;
    case MILK_DTYPE_INT64: return (double)x.i64;
    case MILK_DTYPE_UINT64: return (double)x.u64;
    default: return 0;
    }
}

static void put(fill *f, const unsigned char *p)
{
    double x = decode(f->from, p);
    if (f->t->store == MILK_DTYPE_FP32)
        milk_rt_f32(f->t)[f->at++] = (float)x;
    else if (f->t->store == MILK_DTYPE_BOOL)
        milk_rt_bool(f->t)[f->at++] = x != 0;
    else
        milk_rt_i32(f->t)[f->at++] = (int32_t)x;
}

static milk_status fill_sink(void *user, const void *bytes, size_t n)
{
    fill *f = user;
    size_t esz = (size_t)milk_dtype_bits(f->from) / 8;
    const unsigned char *p = bytes;
    while (n > 0) {
        size_t take = esz - f->ncarry < n ? esz - f->ncarry : n;
        memcpy(f->carry + f->ncarry, p, take);
        f->ncarry += take;
        p += take;
        n -= take;
        if (f->ncarry == esz) {
            if (f->at < f->t->count) put(f, f->carry);
            f->ncarry = 0;
        }
    }
    return MILK_OK;
}

/* Sub-byte dtypes (docs/coreml-format.md 4.5: packed LSB first) are
 * unpacked as the bytes stream by, through a bit accumulator, since a 3-
 * or 6-bit element may straddle two bytes (and two chunks). */
typedef struct unpack {
    milk_rt *t;
    int64_t at;
    int bits;
    bool sign4;        /* int4: two's complement nibbles */
    uint32_t acc;      /* bits not yet used, LSB first */
    int nacc;
} unpack;

static milk_status unpack_sink(void *user, const void *bytes, size_t n)
{
    unpack *u = user;
    const unsigned char *p = bytes;
    int32_t *dst = milk_rt_i32(u->t);
    uint32_t mask = (1u << u->bits) - 1u;
    for (size_t i = 0; i < n; i++) {
        u->acc |= (uint32_t)p[i] << u->nacc;
        u->nacc += 8;
        while (u->nacc >= u->bits && u->at < u->t->count) {
            int32_t x = (int32_t)(u->acc & mask);
            if (u->sign4 && x >= 8) x -= 16;
            dst[u->at++] = x;
            u->acc >>= u->bits;
            u->nacc -= u->bits;
        }
    }
    return MILK_OK;
}

static milk_status fill_sub_byte(milk_ctx *ctx, milk_rt *t, const milk_value *v)
{
    unpack u = {t, 0, milk_dtype_bits(v->type.dtype),
                v->type.dtype == MILK_DTYPE_INT4, 0, 0};
    return milk_value_stream(ctx, v, (size_t)1 << 20, unpack_sink, &u);
}

milk_status milk_rt_from_value(milk_ctx *ctx, milk_rt *t, const milk_value *v)
{
    if (v->kind != MILK_VALUE_TENSOR)
        return milk_errorf(ctx, MILK_ERR_UNSUPPORTED,
                           "the interpreter only handles tensor constants");
    MILK_TRY(milk_rt_alloc(ctx, t, &v->type));
    if (milk_dtype_bits(v->type.dtype) % 8) {
        milk_status s = fill_sub_byte(ctx, t, v);
        if (s != MILK_OK) milk_rt_release(t);
        return s;
    }
    /* fp32 data needs no conversion: read it straight into the storage. */
    if (v->type.dtype == MILK_DTYPE_FP32 || v->type.dtype == MILK_DTYPE_INT32) {
        milk_status s = milk_value_read(ctx, v, t->data);
        if (s != MILK_OK) milk_rt_release(t);
        return s;
    }
    fill f = {t, 0, v->type.dtype, {0}, 0};
    milk_status s = milk_value_stream(ctx, v, (size_t)1 << 20, fill_sink, &f);
    if (s != MILK_OK) milk_rt_release(t);
    return s;
}

/* ---- kernel accessors ----------------------------------------------------- */

static int arg_index(const milk_op *op, const char *param)
{
    for (int i = 0; i < op->n_args; i++)
        if (strcmp(op->args[i].param, param) == 0) return i;
    return -1;
}

const milk_rt *milk_eval_in_at(const milk_eval *ec, const char *param, int i)
{
    int a = arg_index(ec->op, param);
    if (a < 0 || i < 0 || i >= ec->op->args[a].n) return NULL;
    return ec->in[a][i];
}

const milk_rt *milk_eval_in(const milk_eval *ec, const char *param)
{
    return milk_eval_in_at(ec, param, 0);
}

int milk_eval_in_count(const milk_eval *ec, const char *param)
{
    int a = arg_index(ec->op, param);
    return a < 0 ? 0 : ec->op->args[a].n;
}

milk_status milk_eval_ints(const milk_eval *ec, const char *param, int64_t *v,
                           int max, int *n, bool *present)
{
    const milk_rt *t = milk_eval_in(ec, param);
    *n = 0;
    if (present) *present = t != NULL;
    if (!t) return MILK_OK;
    if (t->store != MILK_DTYPE_INT32 || t->type.rank > 1 || t->count > max)
        return milk_op_fail(ec->ctx, ec->op, param,
                            "expected at most %d integers", max);
    for (int64_t i = 0; i < t->count; i++) v[i] = milk_rt_i32(t)[i];
    *n = (int)t->count;
    return MILK_OK;
}

milk_status milk_eval_f32(const milk_eval *ec, const char *param, float dflt,
                          float *v)
{
    const milk_rt *t = milk_eval_in(ec, param);
    if (!t) {
        *v = dflt;
        return MILK_OK;
    }
    if (t->count != 1)
        return milk_op_fail(ec->ctx, ec->op, param, "expected a scalar");
    if (t->store == MILK_DTYPE_FP32)
        *v = milk_rt_f32(t)[0];
    else if (t->store == MILK_DTYPE_INT32)
        *v = (float)milk_rt_i32(t)[0];
    else
        *v = milk_rt_bool(t)[0];
    return MILK_OK;
}

void milk_strides(const milk_tensor_type *t, int64_t *strides)
{
    for (int i = 0; i < t->rank; i++)
        strides[i] = milk_dims_span(t->dims, i + 1, t->rank);
}

void milk_around_axis(const milk_tensor_type *t, int axis, int64_t *outer,
                      int64_t *n, int64_t *inner)
{
    *outer = milk_dims_span(t->dims, 0, axis);
    *n = t->dims[axis];
    *inner = milk_dims_span(t->dims, axis + 1, t->rank);
}

/* Strides of `in` aligned to the trailing dims of `out`, 0 where `in` is
 * broadcast (size 1 or missing). */
static void bcast_strides(const milk_tensor_type *out, const milk_tensor_type *in,
                          int64_t *s)
{
    int64_t st[MILK_MAX_RANK];
    milk_strides(in, st);
    for (int i = 0; i < out->rank; i++) {
        int j = i - (out->rank - in->rank);
        s[i] = j >= 0 && in->dims[j] != 1 ? st[j] : 0;
    }
}

void milk_bcast_init(milk_bcast *it, const milk_tensor_type *out,
                     const milk_tensor_type *a, const milk_tensor_type *b)
{
    memset(it, 0, sizeof *it);
    it->rank = out->rank;
    for (int i = 0; i < out->rank; i++) it->dims[i] = out->dims[i];
    bcast_strides(out, a, it->sa);
    bcast_strides(out, b, it->sb);
}

void milk_bcast_next(milk_bcast *it)
{
    for (int d = it->rank - 1; d >= 0; d--) {
        it->ia += it->sa[d];
        it->ib += it->sb[d];
        if (++it->idx[d] < it->dims[d]) return;
        it->ia -= it->sa[d] * it->dims[d];
        it->ib -= it->sb[d] * it->dims[d];
        it->idx[d] = 0;
    }
}
