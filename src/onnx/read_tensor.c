/*
 * read_tensor.c: TensorProto for the ONNX reader, and ONNX's data types.
 *
 * A tensor is read in two passes over its bytes. The first notes the
 * fields (dims, data_type, name, where raw_data lies, how many typed values
 * there are, external data entries) in whatever order they come; then the
 * shape is validated and the byte size computed; then the data is placed:
 * raw_data and external data become file ranges, never read; typed data
 * (float_data, int32_data, ...) is decoded by a second pass into the arena
 * as little-endian bytes of the tensor's dtype.
 */
#include "read.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <unistd.h>

/* ---- data types ------------------------------------------------------------ */

/* TensorProto field numbers of the typed data fields. */
enum {
    F_FLOAT_DATA = 4,
    F_INT32_DATA = 5,
    F_STRING_DATA = 6,
    F_INT64_DATA = 7,
    F_DOUBLE_DATA = 10,
    F_UINT64_DATA = 11,
};

typedef struct dtype_info {
    const char *name;
    int bits;          /* per element, packed */
    milk_dtype milk;   /* same encoding in milk, or INVALID */
    uint32_t field;    /* the typed data field that may hold it */
} dtype_info;

static const dtype_info dtypes[] = {
    [MILK_ONNX_FLOAT] = {"FLOAT", 32, MILK_DTYPE_FP32, F_FLOAT_DATA},
    [MILK_ONNX_UINT8] = {"UINT8", 8, MILK_DTYPE_UINT8, F_INT32_DATA},
    [MILK_ONNX_INT8] = {"INT8", 8, MILK_DTYPE_INT8, F_INT32_DATA},
    [MILK_ONNX_UINT16] = {"UINT16", 16, MILK_DTYPE_UINT16, F_INT32_DATA},
    [MILK_ONNX_INT16] = {"INT16", 16, MILK_DTYPE_INT16, F_INT32_DATA},
    [MILK_ONNX_INT32] = {"INT32", 32, MILK_DTYPE_INT32, F_INT32_DATA},
    [MILK_ONNX_INT64] = {"INT64", 64, MILK_DTYPE_INT64, F_INT64_DATA},
    [MILK_ONNX_STRING] = {"STRING", 0, MILK_DTYPE_STRING, F_STRING_DATA},
    [MILK_ONNX_BOOL] = {"BOOL", 8, MILK_DTYPE_BOOL, F_INT32_DATA},
    [MILK_ONNX_FLOAT16] = {"FLOAT16", 16, MILK_DTYPE_FP16, F_INT32_DATA},
    [MILK_ONNX_DOUBLE] = {"DOUBLE", 64, MILK_DTYPE_FP64, F_DOUBLE_DATA},
    [MILK_ONNX_UINT32] = {"UINT32", 32, MILK_DTYPE_UINT32, F_UINT64_DATA},
    [MILK_ONNX_UINT64] = {"UINT64", 64, MILK_DTYPE_UINT64, F_UINT64_DATA},
    [MILK_ONNX_COMPLEX64] = {"COMPLEX64", 64, MILK_DTYPE_INVALID, F_FLOAT_DATA},
    [MILK_ONNX_COMPLEX128] = {"COMPLEX128", 128, MILK_DTYPE_INVALID, F_DOUBLE_DATA},
    [MILK_ONNX_BFLOAT16] = {"BFLOAT16", 16, MILK_DTYPE_BF16, F_INT32_DATA},
    [MILK_ONNX_FLOAT8E4M3FN] = {"FLOAT8E4M3FN", 8, MILK_DTYPE_INVALID, F_INT32_DATA},
    [MILK_ONNX_FLOAT8E4M3FNUZ] = {"FLOAT8E4M3FNUZ", 8, MILK_DTYPE_INVALID, F_INT32_DATA},
    [MILK_ONNX_FLOAT8E5M2] = {"FLOAT8E5M2", 8, MILK_DTYPE_INVALID, F_INT32_DATA},
    [MILK_ONNX_FLOAT8E5M2FNUZ] = {"FLOAT8E5M2FNUZ", 8, MILK_DTYPE_INVALID, F_INT32_DATA},
    [MILK_ONNX_UINT4] = {"UINT4", 4, MILK_DTYPE_UINT4, F_INT32_DATA},
    [MILK_ONNX_INT4] = {"INT4", 4, MILK_DTYPE_INT4, F_INT32_DATA},
    [MILK_ONNX_FLOAT4E2M1] = {"FLOAT4E2M1", 4, MILK_DTYPE_INVALID, F_INT32_DATA},
    [MILK_ONNX_FLOAT8E8M0] = {"FLOAT8E8M0", 8, MILK_DTYPE_INVALID, F_INT32_DATA},
    [MILK_ONNX_UINT2] = {"UINT2", 2, MILK_DTYPE_UINT2, F_INT32_DATA},
    [MILK_ONNX_INT2] = {"INT2", 2, MILK_DTYPE_INVALID, F_INT32_DATA},
};

static const dtype_info *dtype_get(int64_t code)
{
    if (code <= 0 || code >= (int64_t)MILK_ARRAY_LEN(dtypes)) return NULL;
    return dtypes[code].name ? &dtypes[code] : NULL;
}

milk_dtype milk_onnx_dtype_to_milk(int32_t code)
{
    const dtype_info *d = dtype_get(code);
    return d ? d->milk : MILK_DTYPE_INVALID;
}

const char *milk_onnx_dtype_name(int32_t code)
{
    if (code == MILK_ONNX_UNDEFINED) return "UNDEFINED";
    const dtype_info *d = dtype_get(code);
    return d ? d->name : NULL;
}

int milk_onnx_dtype_bits(int32_t code)
{
    const dtype_info *d = dtype_get(code);
    return d ? d->bits : 0;
}

/* ---- first pass: what the tensor holds ----------------------------------- */

static const char *const tensor_fields[] = {
    [1] = "dims", [2] = "data_type", [3] = "segment",
    [4] = "float_data", [5] = "int32_data", [6] = "string_data",
    [7] = "int64_data", [8] = "name", [9] = "raw_data",
    [10] = "double_data", [11] = "uint64_data", [12] = "doc_string",
    [13] = "external_data", [14] = "data_location",
};

typedef struct tensor_scan {
    milk_pb msg;             /* the whole TensorProto */
    int64_t dtype;
    bool has_raw;
    uint64_t raw_off, raw_len;
    uint32_t typed;          /* typed data field in use (0: none) */
    uint64_t n_typed;        /* values in it (strings: entries) */
    uint64_t location;       /* data_location: 1 is EXTERNAL */
    const char *ext[3];      /* external_data location, offset, length */
    bool segment;
} tensor_scan;

static milk_status add_dims(milk_onnx_reader *r, const milk_pb *c,
                            const milk_pb_field *f, milk_onnx_tensor *t)
{
    uint64_t n, v;
    MILK_TRY(milk_pb_count(r, c, f, MILK_PB_VARINT, &n));
    milk_pb_iter it = milk_pb_iter_make(f, MILK_PB_VARINT);
    while (milk_pb_iter_next(&it, &v)) {
        if (t->rank == MILK_MAX_RANK)
            return milk_errorf(r->ctx, MILK_ERR_UNSUPPORTED,
                               "dims: rank above %d (milk's limit)",
                               MILK_MAX_RANK);
        t->dims[t->rank++] = (int64_t)v;
    }
    return MILK_OK;
}

static milk_status add_typed(milk_onnx_reader *r, const milk_pb *c,
                             const milk_pb_field *f, tensor_scan *s)
{
    static const int wires[] = {[F_FLOAT_DATA] = MILK_PB_I32,
                                [F_INT32_DATA] = MILK_PB_VARINT,
                                [F_INT64_DATA] = MILK_PB_VARINT,
                                [F_DOUBLE_DATA] = MILK_PB_I64,
                                [F_UINT64_DATA] = MILK_PB_VARINT};
    if (s->typed && s->typed != f->num)
        return milk_errorf(r->ctx, MILK_ERR_INVALID_MODEL,
                           "both %s and %s are present", tensor_fields[s->typed],
                           tensor_fields[f->num]);
    s->typed = f->num;
    uint64_t n = 1;
    if (f->num == F_STRING_DATA)
        MILK_TRY(milk_pb_want(r, c, f, MILK_PB_LEN));
    else
        MILK_TRY(milk_pb_count(r, c, f, wires[f->num], &n));
    s->n_typed += n;
    if (s->n_typed > MILK_ONNX_MAX_INLINE)
        return milk_errorf(r->ctx, MILK_ERR_UNSUPPORTED,
                           "%s: more than %llu values", tensor_fields[f->num],
                           (unsigned long long)MILK_ONNX_MAX_INLINE);
    return MILK_OK;
}

/* One external_data entry (StringStringEntryProto key = 1, value = 2). */
static milk_status add_external(milk_onnx_reader *r, const milk_pb *c,
                                const milk_pb_field *f, tensor_scan *s)
{
    static const char *const names[] = {[1] = "key", [2] = "value"};
    static const char *const keys[] = {"location", "offset", "length"};
    MILK_TRY(milk_pb_want(r, c, f, MILK_PB_LEN));
    milk_pb e = milk_pb_sub(f, names, MILK_ARRAY_LEN(names));
    const char *key = "", *value = "";
    milk_pb_field g;
    for (;;) {
        MILK_TRY(milk_pb_next(r, &e, &g));
        if (g.num == 0) break;
        if (g.num == 1) MILK_TRY(milk_pb_string(r, &e, &g, &key));
        if (g.num == 2) MILK_TRY(milk_pb_string(r, &e, &g, &value));
    }
    for (int i = 0; i < 3; i++) /* other keys (checksum) are not needed */
        if (strcmp(key, keys[i]) == 0) s->ext[i] = value;
    return MILK_OK;
}

static milk_status scan_field(milk_onnx_reader *r, const milk_pb *c,
                              const milk_pb_field *f, tensor_scan *s,
                              milk_onnx_tensor *t)
{
    uint64_t v;
    switch (f->num) {
    case 1: return add_dims(r, c, f, t);
    case 2:
        MILK_TRY(milk_pb_varint(r, c, f, &v));
        s->dtype = (int32_t)v; /* an int32 field: sign-extended varint */
        return MILK_OK;
    case 3: s->segment = true; return MILK_OK;
    case F_FLOAT_DATA: case F_INT32_DATA: case F_STRING_DATA:
    case F_INT64_DATA: case F_DOUBLE_DATA: case F_UINT64_DATA:
        return add_typed(r, c, f, s);
    case 8: return milk_pb_string(r, c, f, &t->name);
    case 9:
        MILK_TRY(milk_pb_want(r, c, f, MILK_PB_LEN));
        s->has_raw = true; /* the last one wins, as in protobuf */
        s->raw_off = (uint64_t)(f->data - r->base);
        s->raw_len = f->len;
        return MILK_OK;
    case 13: return add_external(r, c, f, s);
    case 14: return milk_pb_varint(r, c, f, &s->location);
    default: return MILK_OK; /* doc_string, metadata_props, unknown */
    }
}

static milk_status scan_tensor(milk_onnx_reader *r, const milk_pb_field *f,
                               tensor_scan *s, milk_onnx_tensor *t)
{
    s->msg = milk_pb_sub(f, tensor_fields, MILK_ARRAY_LEN(tensor_fields));
    milk_pb c = s->msg;
    milk_pb_field g;
    for (;;) {
        MILK_TRY(milk_pb_next(r, &c, &g));
        if (g.num == 0) return MILK_OK;
        MILK_TRY(scan_field(r, &c, &g, s, t));
    }
}

/* ---- shape and size ------------------------------------------------------- */

static milk_status check_shape(milk_onnx_reader *r, const tensor_scan *s,
                               milk_onnx_tensor *t)
{
    const dtype_info *d = dtype_get(s->dtype);
    if (s->dtype == MILK_ONNX_UNDEFINED)
        return milk_errorf(r->ctx, MILK_ERR_INVALID_MODEL,
                           "data_type is missing (UNDEFINED)");
    if (!d)
        return milk_errorf(r->ctx, MILK_ERR_INVALID_MODEL,
                           "data_type = %lld is not an ONNX data type",
                           (long long)s->dtype);
    t->dtype = (int32_t)s->dtype;
    int64_t count;
    for (int i = 0; i < t->rank; i++)
        if (t->dims[i] < 0)
            return milk_errorf(r->ctx, MILK_ERR_INVALID_MODEL,
                               "dims[%d] = %lld", i, (long long)t->dims[i]);
    if (!milk_dims_count(t->dims, t->rank, &count))
        return milk_errorf(r->ctx, MILK_ERR_INVALID_MODEL,
                           "dims: more than 2^40 elements");
    t->count = count;
    uint64_t bits;
    if (!milk_mul_u64((uint64_t)count, (uint64_t)d->bits, &bits))
        return milk_errorf(r->ctx, MILK_ERR_INVALID_MODEL, "dims: size overflows");
    t->nbytes = (bits + 7) / 8;
    return MILK_OK;
}

/* ---- second pass: typed data into the arena -------------------------------- */

/* How many values the typed field must hold for this tensor. */
static uint64_t typed_values_wanted(const milk_onnx_tensor *t)
{
    int bits = milk_onnx_dtype_bits(t->dtype);
    if (t->dtype == MILK_ONNX_STRING) return (uint64_t)t->count;
    if (t->dtype == MILK_ONNX_COMPLEX64 || t->dtype == MILK_ONNX_COMPLEX128)
        return 2 * (uint64_t)t->count;       /* real, imaginary */
    if (bits < 8) return t->nbytes;          /* one packed byte per value */
    return (uint64_t)t->count;
}

/* Store value v as `w` little-endian bytes at p. Narrower types keep the
 * low bytes (int32_data holds int8, uint16, float16 bits, ... as int32),
 * as NumPy's astype does in onnx.numpy_helper; bool is 0 or 1. */
static void put_value(uint8_t *p, uint64_t v, int w, int32_t dtype)
{
    if (dtype == MILK_ONNX_BOOL) v = v != 0;
    for (int i = 0; i < w; i++) p[i] = (uint8_t)(v >> (8 * i));
}

static milk_status decode_typed(milk_onnx_reader *r, const tensor_scan *s,
                                milk_onnx_tensor *t, uint64_t n)
{
    uint8_t *dst;
    if (t->nbytes > MILK_ONNX_MAX_INLINE)
        return milk_errorf(r->ctx, MILK_ERR_UNSUPPORTED,
                           "%s: %llu bytes is too large to hold in memory; "
                           "store the tensor as raw_data",
                           tensor_fields[s->typed], (unsigned long long)t->nbytes);
    MILK_TRY(milk_onnx_alloc(r, t->nbytes, 1, &dst));
    int w = n ? (int)(t->nbytes / n) : 0; /* bytes per value */
    int wire = s->typed == F_FLOAT_DATA ? MILK_PB_I32
             : s->typed == F_DOUBLE_DATA ? MILK_PB_I64 : MILK_PB_VARINT;
    milk_pb c = s->msg;
    milk_pb_field f;
    uint64_t k = 0, v;
    while (milk_pb_next(r, &c, &f) == MILK_OK && f.num != 0) {
        if (f.num != s->typed) continue;
        milk_pb_iter it = milk_pb_iter_make(&f, wire);
        while (k < n && milk_pb_iter_next(&it, &v))
            put_value(dst + k++ * (uint64_t)w, v, w, t->dtype);
    }
    t->data = dst;
    return MILK_OK;
}

static milk_status decode_strings(milk_onnx_reader *r, const tensor_scan *s,
                                  milk_onnx_tensor *t)
{
    const char **strs;
    uint64_t *lens;
    MILK_TRY(milk_onnx_alloc(r, (uint64_t)t->count, sizeof *strs, &strs));
    MILK_TRY(milk_onnx_alloc(r, (uint64_t)t->count, sizeof *lens, &lens));
    milk_pb c = s->msg;
    milk_pb_field f;
    int64_t k = 0;
    while (k < t->count) {
        MILK_TRY(milk_pb_next(r, &c, &f));
        if (f.num == 0) break;
        if (f.num != F_STRING_DATA) continue;
        MILK_TRY(milk_pb_bytes(r, &c, &f, &strs[k], &lens[k]));
        k++;
    }
    t->strings = strs;
    t->string_lens = lens;
    return MILK_OK;
}

/* ---- placing the data -------------------------------------------------------- */

static milk_status place_typed(milk_onnx_reader *r, const tensor_scan *s,
                               milk_onnx_tensor *t)
{
    const dtype_info *d = dtype_get(t->dtype);
    uint64_t want = typed_values_wanted(t);
    if (s->typed != d->field)
        return milk_errorf(r->ctx, MILK_ERR_INVALID_MODEL,
                           "%s cannot hold %s data", tensor_fields[s->typed],
                           d->name);
    if (s->n_typed != want)
        return milk_errorf(r->ctx, MILK_ERR_INVALID_MODEL,
                           "%s has %llu values, expected %llu for %lld %s "
                           "elements",
                           tensor_fields[s->typed], (unsigned long long)s->n_typed,
                           (unsigned long long)want, (long long)t->count, d->name);
    t->kind = MILK_ONNX_DATA_INLINE;
    if (t->dtype == MILK_ONNX_STRING) return decode_strings(r, s, t);
    return decode_typed(r, s, t, want);
}

static milk_status place_raw(milk_onnx_reader *r, const tensor_scan *s,
                             milk_onnx_tensor *t)
{
    if (t->dtype == MILK_ONNX_STRING)
        return milk_errorf(r->ctx, MILK_ERR_INVALID_MODEL,
                           "raw_data cannot hold STRING data");
    if (s->typed)
        return milk_errorf(r->ctx, MILK_ERR_INVALID_MODEL,
                           "both raw_data and %s are present",
                           tensor_fields[s->typed]);
    if (s->raw_len != t->nbytes)
        return milk_errorf(r->ctx, MILK_ERR_INVALID_MODEL,
                           "raw_data has %llu bytes, expected %llu for %lld %s "
                           "elements",
                           (unsigned long long)s->raw_len,
                           (unsigned long long)t->nbytes, (long long)t->count,
                           milk_onnx_dtype_name(t->dtype));
    t->kind = MILK_ONNX_DATA_FILE;
    t->path = r->real_path;
    t->offset = s->raw_off;
    return MILK_OK;
}

static milk_status place_data(milk_onnx_reader *r, const tensor_scan *s,
                              milk_onnx_tensor *t)
{
    if (s->segment)
        return milk_errorf(r->ctx, MILK_ERR_UNSUPPORTED,
                           "segment: segmented tensors are not supported");
    if (s->location == 1) {
        if (s->has_raw || s->typed)
            return milk_errorf(r->ctx, MILK_ERR_INVALID_MODEL,
                               "data_location is EXTERNAL but %s is present",
                               s->has_raw ? "raw_data" : tensor_fields[s->typed]);
        if (t->dtype == MILK_ONNX_STRING)
            return milk_errorf(r->ctx, MILK_ERR_INVALID_MODEL,
                               "external data cannot hold STRING data");
        return milk_onnx_read_external(r, s->ext[0], s->ext[1], s->ext[2], t);
    }
    if (s->location != 0)
        return milk_errorf(r->ctx, MILK_ERR_INVALID_MODEL,
                           "data_location = %llu is neither DEFAULT nor "
                           "EXTERNAL",
                           (unsigned long long)s->location);
    if (s->has_raw) return place_raw(r, s, t);
    if (s->typed) return place_typed(r, s, t);
    if (t->count != 0)
        return milk_errorf(r->ctx, MILK_ERR_INVALID_MODEL,
                           "no data for %lld %s elements", (long long)t->count,
                           milk_onnx_dtype_name(t->dtype));
    t->kind = MILK_ONNX_DATA_INLINE; /* an empty tensor */
    return milk_onnx_alloc(r, 1, 1, &t->data);
}

milk_status milk_onnx_read_tensor(milk_onnx_reader *r, const milk_pb_field *f,
                                  milk_onnx_tensor *t)
{
    tensor_scan s = {0};
    memset(t, 0, sizeof *t);
    t->name = "";
    MILK_TRY(scan_tensor(r, f, &s, t));
    MILK_TRY(check_shape(r, &s, t));
    return place_data(r, &s, t);
}

/* ---- reading the data back ----------------------------------------------------- */

milk_status milk_onnx_tensor_read(milk_ctx *ctx, const milk_onnx_tensor *t,
                                  void *dst)
{
    if (t->dtype == MILK_ONNX_STRING)
        return milk_errorf(ctx, MILK_ERR_INVALID_ARG,
                           "tensor '%s': STRING data has no bytes to read",
                           t->name);
    if (t->kind == MILK_ONNX_DATA_INLINE) {
        if (t->nbytes) memcpy(dst, t->data, (size_t)t->nbytes);
        return MILK_OK;
    }
    int fd = open(t->path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return milk_errorf(ctx, MILK_ERR_IO, "%s: cannot open: %s", t->path,
                           strerror(errno));
    milk_status s = MILK_OK;
    for (uint64_t done = 0; done < t->nbytes && s == MILK_OK;) {
        size_t want = t->nbytes - done > (1u << 30) ? (1u << 30) : (size_t)(t->nbytes - done);
        ssize_t n = pread(fd, (char *)dst + done, want, (off_t)(t->offset + done));
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0)
            s = milk_errorf(ctx, MILK_ERR_IO,
                            "%s: cannot read tensor '%s' (%llu bytes at "
                            "offset %llu)%s",
                            t->path, t->name, (unsigned long long)t->nbytes,
                            (unsigned long long)t->offset,
                            n == 0 ? ": file too short" : "");
        else
            done += (uint64_t)n;
    }
    close(fd);
    return s;
}
