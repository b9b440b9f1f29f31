/* data.c: reading a constant's elements wherever they live (arena, caller
 * memory, or a file range), whole, element by element, or streamed in
 * bounded chunks with dtype conversion on the way. */
#include "ir.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <unistd.h>

bool milk_value_nbytes(const milk_value *v, uint64_t *out)
{
    if (v->kind != MILK_VALUE_TENSOR) return false;
    int64_t n = milk_tensor_type_count(&v->type);
    return n >= 0 && milk_dtype_nbytes(v->type.dtype, n, out);
}

/* Element i of packed data of dtype d, as int64 or double. Sub-byte types
 * are packed LSB first (docs/coreml-format.md 4.5). */
static int64_t sub_byte(milk_dtype d, const uint8_t *p, int64_t i)
{
    int bits = milk_dtype_bits(d);
    uint64_t bit = (uint64_t)i * (uint64_t)bits;
    uint32_t w = p[bit / 8];
    if ((bit % 8) + (uint64_t)bits > 8) w |= (uint32_t)p[bit / 8 + 1] << 8;
    int64_t x = (int64_t)((w >> (bit % 8)) & ((1u << bits) - 1u));
    if (d == MILK_DTYPE_INT4 && x >= 8) x -= 16;
    return x;
}

#define LOAD(T) (memcpy(&x.T, (const char *)p + (size_t)i * sizeof x.T, sizeof x.T))

static bool elem_i64(milk_dtype d, const void *p, int64_t i, int64_t *out)
{
    union { int8_t i8; int16_t i16; int32_t i32; int64_t i64; uint8_t u8;
            uint16_t u16; uint32_t u32; uint64_t u64; } x;
    switch (d) {
    case MILK_DTYPE_BOOL: case MILK_DTYPE_UINT8: LOAD(u8); *out = x.u8; return true;
    case MILK_DTYPE_INT8: LOAD(i8); *out = x.i8; return true;
    case MILK_DTYPE_INT16: LOAD(i16); *out = x.i16; return true;
    case MILK_DTYPE_UINT16: LOAD(u16); *out = x.u16; return true;
    case MILK_DTYPE_INT32: LOAD(i32); *out = x.i32; return true;
    case MILK_DTYPE_UINT32: LOAD(u32); *out = x.u32; return true;
    case MILK_DTYPE_INT64: LOAD(i64); *out = x.i64; return true;
    case MILK_DTYPE_UINT64: LOAD(u64); *out = (int64_t)x.u64; return true;
    case MILK_DTYPE_INT4: case MILK_DTYPE_UINT1: case MILK_DTYPE_UINT2:
    case MILK_DTYPE_UINT3: case MILK_DTYPE_UINT4: case MILK_DTYPE_UINT6:
        *out = sub_byte(d, p, i);
        return true;
    default:
        return false;
    }
}

static bool elem_f64(milk_dtype d, const void *p, int64_t i, double *out)
{
    union { uint16_t h; float f; double g; } x;
    switch (d) {
    case MILK_DTYPE_FP16: LOAD(h); *out = milk_fp16_to_fp32(x.h); return true;
    case MILK_DTYPE_BF16: {
        LOAD(h);
        uint32_t bits = (uint32_t)x.h << 16;
        float f;
        memcpy(&f, &bits, 4);
        *out = f;
        return true;
    }
    case MILK_DTYPE_FP32: LOAD(f); *out = x.f; return true;
    case MILK_DTYPE_FP64: LOAD(g); *out = x.g; return true;
    default: {
        int64_t v;
        if (!elem_i64(d, p, i, &v)) return false;
        *out = (double)v;
        return true;
    }
    }
}

static milk_status read_at(milk_ctx *ctx, int fd, const char *path, void *dst,
                           size_t n, uint64_t off)
{
    size_t done = 0;
    while (done < n) {
        ssize_t r = pread(fd, (char *)dst + done, n - done,
                          (off_t)(off + done));
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0)
            return milk_errorf(ctx, MILK_ERR_IO,
                               "%s: cannot read %zu bytes at offset %llu%s",
                               path, n, (unsigned long long)off,
                               r == 0 ? " (file too short)" : "");
        done += (size_t)r;
    }
    return MILK_OK;
}

static milk_status open_data(milk_ctx *ctx, const milk_data *d, int *fd)
{
    *fd = open(d->path, O_RDONLY | O_CLOEXEC);
    if (*fd < 0)
        return milk_errorf(ctx, MILK_ERR_IO, "%s: cannot open: %s", d->path,
                           strerror(errno));
    return MILK_OK;
}

/* Convert n elements from dtype `from` (src) to `to` (dst). */
static milk_status convert(milk_ctx *ctx, milk_dtype from, milk_dtype to,
                           const void *src, void *dst, size_t n)
{
    if (from == to) {
        uint64_t nb;
        milk_dtype_nbytes(to, (int64_t)n, &nb);
        memcpy(dst, src, (size_t)nb);
        return MILK_OK;
    }
    if (from == MILK_DTYPE_FP32 && to == MILK_DTYPE_FP16) {
        /* fp16 conversion of fp32 weights: the common case, kept fast
         * (src is a malloc'd or arena buffer, so float-aligned) */
        milk_fp32_to_fp16_n((const float *)src, (uint16_t *)dst, n);
        return MILK_OK;
    }
    for (size_t i = 0; i < n; i++) {
        if (to == MILK_DTYPE_FP16) {
            double f;
            elem_f64(from, src, (int64_t)i, &f);
            ((uint16_t *)dst)[i] = milk_fp32_to_fp16((float)f);
        } else if (to == MILK_DTYPE_FP32) {
            double f;
            elem_f64(from, src, (int64_t)i, &f);
            ((float *)dst)[i] = (float)f;
        } else if (to == MILK_DTYPE_INT32) {
            int64_t x;
            elem_i64(from, src, (int64_t)i, &x);
            if (x < INT32_MIN || x > INT32_MAX)
                return milk_errorf(ctx, MILK_ERR_INVALID_MODEL,
                                   "value %lld at element %zu does not fit "
                                   "int32",
                                   (long long)x, i);
            ((int32_t *)dst)[i] = (int32_t)x;
        } else {
            return milk_errorf(ctx, MILK_ERR_UNSUPPORTED,
                               "cannot convert %s to %s", milk_dtype_name(from),
                               milk_dtype_name(to));
        }
    }
    return MILK_OK;
}

/* Stream a file range of `count` elements stored as `from`, converted to
 * `to`, through fn in chunks of about `chunk` bytes. from == to (any dtype,
 * sub-byte included) is a plain byte copy. */
static milk_status stream_file(milk_ctx *ctx, const milk_data *d,
                               milk_dtype from, milk_dtype to, int64_t count,
                               uint64_t total, size_t chunk, milk_data_sink fn,
                               void *user)
{
    size_t in_sz = 1, out_sz = 1;
    if (from != to) {
        if (milk_dtype_bits(from) % 8 || milk_dtype_bits(to) % 8)
            return milk_errorf(ctx, MILK_ERR_UNSUPPORTED,
                               "%s: cannot convert sub-byte data", d->path);
        in_sz = (size_t)milk_dtype_bits(from) / 8;
        out_sz = (size_t)milk_dtype_bits(to) / 8;
    } else {
        count = (int64_t)total; /* copy bytes */
    }
    size_t per = chunk / (in_sz > out_sz ? in_sz : out_sz);
    if (per == 0) per = 1;
    void *in = malloc(per * in_sz), *out = from != to ? malloc(per * out_sz) : in;
    int fd = -1;
    milk_status s = in && out ? open_data(ctx, d, &fd)
                              : milk_errorf(ctx, MILK_ERR_NOMEM, "out of memory");
    for (int64_t i = 0; s == MILK_OK && i < count; i += (int64_t)per) {
        size_t n = (size_t)(count - i < (int64_t)per ? count - i : (int64_t)per);
        s = read_at(ctx, fd, d->path, in, n * in_sz,
                    d->offset + (uint64_t)i * in_sz);
        if (s == MILK_OK && from != to) s = convert(ctx, from, to, in, out, n);
        if (s == MILK_OK) s = fn(user, out, n * out_sz);
    }
    if (fd >= 0) close(fd);
    if (out != in) free(out);
    free(in);
    return s;
}

milk_status milk_value_stream(milk_ctx *ctx, const milk_value *v,
                              size_t chunk, milk_data_sink fn, void *user)
{
    uint64_t total;
    if (v->type.dtype == MILK_DTYPE_STRING || !milk_value_nbytes(v, &total))
        return milk_errorf(ctx, MILK_ERR_INVALID_ARG,
                           "constant has no numeric data to stream");
    if (v->data.kind == MILK_DATA_FILE)
        return stream_file(ctx, &v->data, v->data.stored, v->type.dtype,
                           milk_tensor_type_count(&v->type), total, chunk, fn,
                           user);
    if (v->data.kind == MILK_DATA_GEN)
        return v->data.gen->stream(ctx, v->data.gen, chunk, fn, user);
    /* In memory: hand the bytes over in chunks without copying. */
    for (uint64_t off = 0; off < total; off += chunk) {
        size_t n = (size_t)(total - off < chunk ? total - off : chunk);
        MILK_TRY(fn(user, (const char *)v->data.ptr + off, n));
    }
    return MILK_OK;
}

typedef struct copy_sink {
    char *dst;
} copy_sink;

static milk_status copy_to(void *user, const void *bytes, size_t n)
{
    copy_sink *c = user;
    memcpy(c->dst, bytes, n);
    c->dst += n;
    return MILK_OK;
}

milk_status milk_value_read(milk_ctx *ctx, const milk_value *v, void *dst)
{
    copy_sink c = {dst};
    return milk_value_stream(ctx, v, (size_t)1 << 20, copy_to, &c);
}

/* Generated data has no random access: the bytes of element i are
 * caught as the value streams by (small values only: LUTs, scales). */
typedef struct catch_sink {
    uint64_t at, first, len; /* bytes seen; the bytes wanted */
    unsigned char *buf;
} catch_sink;

static milk_status catch_bytes(void *user, const void *bytes, size_t n)
{
    catch_sink *c = user;
    for (size_t k = 0; k < n; k++, c->at++)
        if (c->at >= c->first && c->at < c->first + c->len)
            c->buf[c->at - c->first] = ((const unsigned char *)bytes)[k];
    return MILK_OK;
}

static milk_status gen_element(milk_ctx *ctx, const milk_value *v, int64_t i,
                               unsigned char *buf, const void **p,
                               int64_t *idx, milk_dtype *dt)
{
    int bits = milk_dtype_bits(v->type.dtype);
    uint64_t first = (uint64_t)i * (uint64_t)bits / 8;
    catch_sink c = {0, first, bits >= 8 ? (uint64_t)bits / 8 : 2, buf};
    MILK_TRY(v->data.gen->stream(ctx, v->data.gen, (size_t)1 << 20, catch_bytes, &c));
    *p = buf;
    *dt = v->type.dtype;
    *idx = bits >= 8 ? 0 : (int64_t)(((uint64_t)i * (uint64_t)bits % 8) / (uint64_t)bits);
    return MILK_OK;
}

/* Fetch the bytes of element i (stored dtype) into buf; sets *dt to the
 * dtype they are in and returns a pointer usable with index 0. */
static milk_status element_bytes(milk_ctx *ctx, const milk_value *v, int64_t i,
                                 unsigned char *buf, const void **p,
                                 int64_t *idx, milk_dtype *dt)
{
    int64_t n = milk_tensor_type_count(&v->type);
    if (v->kind != MILK_VALUE_TENSOR || i < 0 || i >= n)
        return milk_errorf(ctx, MILK_ERR_INVALID_ARG,
                           "element %lld out of range", (long long)i);
    if (v->data.kind == MILK_DATA_GEN)
        return gen_element(ctx, v, i, buf, p, idx, dt);
    if (v->data.kind != MILK_DATA_FILE) {
        *p = v->data.ptr;
        *idx = i;
        *dt = v->type.dtype;
        return MILK_OK;
    }
    *dt = v->data.stored;
    int bits = milk_dtype_bits(*dt);
    uint64_t first = (uint64_t)i * (uint64_t)bits / 8;
    int fd;
    MILK_TRY(open_data(ctx, &v->data, &fd));
    size_t len = bits >= 8 ? (size_t)bits / 8 : 2;
    milk_status s = read_at(ctx, fd, v->data.path, buf, len, v->data.offset + first);
    if (s != MILK_OK && bits < 8) /* the last byte of a sub-byte tensor */
        s = read_at(ctx, fd, v->data.path, buf, 1, v->data.offset + first);
    close(fd);
    *p = buf;
    *idx = bits >= 8 ? 0 : (int64_t)(((uint64_t)i * (uint64_t)bits % 8) / (uint64_t)bits);
    return s;
}

milk_status milk_value_get_f64(milk_ctx *ctx, const milk_value *v, int64_t i,
                               double *out)
{
    unsigned char buf[16] = {0};
    const void *p;
    int64_t idx;
    milk_dtype dt;
    MILK_TRY(element_bytes(ctx, v, i, buf, &p, &idx, &dt));
    if (!elem_f64(dt, p, idx, out))
        return milk_errorf(ctx, MILK_ERR_TYPE, "%s is not a numeric dtype",
                           milk_dtype_name(dt) ? milk_dtype_name(dt) : "?");
    return MILK_OK;
}

milk_status milk_value_get_i64(milk_ctx *ctx, const milk_value *v, int64_t i,
                               int64_t *out)
{
    unsigned char buf[16] = {0};
    const void *p;
    int64_t idx;
    milk_dtype dt;
    MILK_TRY(element_bytes(ctx, v, i, buf, &p, &idx, &dt));
    if (elem_i64(dt, p, idx, out)) return MILK_OK;
    double f;
    if (!elem_f64(dt, p, idx, &f))
        return milk_errorf(ctx, MILK_ERR_TYPE, "%s is not a numeric dtype",
                           milk_dtype_name(dt) ? milk_dtype_name(dt) : "?");
    *out = (int64_t)f;
    return MILK_OK;
}

const char *milk_value_get_str(const milk_value *v, int64_t i)
{
    if (v->kind != MILK_VALUE_TENSOR || v->type.dtype != MILK_DTYPE_STRING ||
        v->data.kind == MILK_DATA_FILE || !v->data.ptr)
        return NULL;
    int64_t n = milk_tensor_type_count(&v->type);
    return i >= 0 && i < n ? ((const char *const *)v->data.ptr)[i] : NULL;
}
