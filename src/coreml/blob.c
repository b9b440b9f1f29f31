/*
 * blob.c: MIL blob storage files (weight.bin, "storage v2"), read and
 * written as docs/coreml-format.md section 4 says: a 64-byte header
 * {count, version 2}, then per blob a 64-byte metadata record {sentinel
 * 0xDEADBEEF, BlobDataType, sizeInBytes, data offset, padding bits} at a
 * 64-byte aligned offset, followed by the data. All integers little-endian.
 * Reading validates a record without reading the data; writing streams
 * the data in bounded chunks.
 */
#include "coreml.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#define BLOB_ALIGN 64
#define BLOB_SENTINEL 0xDEADBEEFu
#define BLOB_VERSION 2
#define BLOB_CHUNK ((size_t)4 << 20) /* bytes streamed per write */

/* BlobDataType codes (section 4.3) and the MIL dtypes they hold. */
static const struct {
    uint32_t code;
    milk_dtype dtype;
} blob_types[] = {
    {1, MILK_DTYPE_FP16},   {2, MILK_DTYPE_FP32},   {3, MILK_DTYPE_UINT8},
    {4, MILK_DTYPE_INT8},   {5, MILK_DTYPE_BF16},   {6, MILK_DTYPE_INT16},
    {7, MILK_DTYPE_UINT16}, {8, MILK_DTYPE_INT4},   {9, MILK_DTYPE_UINT1},
    {10, MILK_DTYPE_UINT2}, {11, MILK_DTYPE_UINT4}, {12, MILK_DTYPE_UINT3},
    {13, MILK_DTYPE_UINT6}, {14, MILK_DTYPE_INT32}, {15, MILK_DTYPE_UINT32},
};

static uint32_t blob_code(milk_dtype d)
{
    for (size_t i = 0; i < MILK_ARRAY_LEN(blob_types); i++)
        if (blob_types[i].dtype == d) return blob_types[i].code;
    return 0;
}

static milk_dtype blob_dtype(uint32_t code)
{
    for (size_t i = 0; i < MILK_ARRAY_LEN(blob_types); i++)
        if (blob_types[i].code == code) return blob_types[i].dtype;
    return MILK_DTYPE_INVALID;
}

static uint32_t get_u32(const unsigned char *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
           (uint32_t)p[3] << 24;
}

static uint64_t get_u64(const unsigned char *p)
{
    return (uint64_t)get_u32(p) | (uint64_t)get_u32(p + 4) << 32;
}

static void put_u32(unsigned char *p, uint32_t v)
{
    for (int i = 0; i < 4; i++) p[i] = (unsigned char)(v >> (8 * i));
}

static void put_u64(unsigned char *p, uint64_t v)
{
    for (int i = 0; i < 8; i++) p[i] = (unsigned char)(v >> (8 * i));
}

/* Unused bits in the last byte of n packed elements of dtype d. */
static uint64_t padding_bits(milk_dtype d, int64_t n)
{
    uint64_t bits = (uint64_t)n * (uint64_t)milk_dtype_bits(d);
    return (8 - bits % 8) % 8;
}

/* ---- reading ------------------------------------------------------------- */

static milk_status pread_all(milk_ctx *ctx, int fd, const char *path,
                             void *buf, size_t n, uint64_t off)
{
    size_t done = 0;
    while (done < n) {
        ssize_t r = pread(fd, (char *)buf + done, n - done,
                          (off_t)(off + done));
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0)
            return milk_errorf(ctx, MILK_ERR_IO,
                               "%s: cannot read %zu bytes at offset %llu",
                               path, n, (unsigned long long)off);
        done += (size_t)r;
    }
    return MILK_OK;
}

/* Validate the header: at least 64 bytes, version 2, and room for `count`
 * records. */
static milk_status check_header(milk_ctx *ctx, coreml_blob_file *bf)
{
    unsigned char h[BLOB_ALIGN];
    if (bf->size < BLOB_ALIGN)
        return milk_errorf(ctx, MILK_ERR_PARSE,
                           "%s: %llu bytes is too short for a blob file "
                           "header",
                           bf->path, (unsigned long long)bf->size);
    MILK_TRY(pread_all(ctx, bf->fd, bf->path, h, sizeof h, 0));
    bf->count = get_u32(h);
    uint32_t version = get_u32(h + 4);
    if (version != BLOB_VERSION)
        return milk_errorf(ctx, MILK_ERR_PARSE,
                           "%s: header: version is %u, expected 2", bf->path,
                           version);
    uint64_t need;
    if (!milk_mul_u64(bf->count, BLOB_ALIGN, &need) ||
        !milk_add_u64(need, BLOB_ALIGN, &need) || need > bf->size)
        return milk_errorf(ctx, MILK_ERR_PARSE,
                           "%s: header: count %u does not fit in %llu bytes",
                           bf->path, bf->count,
                           (unsigned long long)bf->size);
    return MILK_OK;
}

milk_status coreml_blob_open(milk_ctx *ctx, const char *path,
                             coreml_blob_file *bf)
{
    memset(bf, 0, sizeof *bf);
    bf->fd = -1;
    if (!(bf->path = strdup(path)))
        return milk_errorf(ctx, MILK_ERR_NOMEM, "out of memory");
    bf->fd = open(path, O_RDONLY | O_CLOEXEC);
    struct stat st;
    const char *why = NULL;
    if (bf->fd < 0 || fstat(bf->fd, &st) != 0)
        why = strerror(errno);
    else if (!S_ISREG(st.st_mode))
        why = "not a regular file";
    if (why) {
        milk_status s = milk_errorf(ctx, MILK_ERR_IO, "%s: cannot open: %s",
                                    path, why);
        coreml_blob_close(bf);
        return s;
    }
    bf->size = (uint64_t)st.st_size;
    milk_status s = check_header(ctx, bf);
    if (s != MILK_OK) coreml_blob_close(bf);
    return s;
}

void coreml_blob_close(coreml_blob_file *bf)
{
    if (bf->fd >= 0) close(bf->fd);
    free(bf->path);
    bf->path = NULL;
    bf->fd = -1;
}

/* The record's dtype and size fields against what the MIL type needs. */
static milk_status check_record_type(milk_ctx *ctx, const coreml_blob_file *bf,
                                     uint64_t record, const unsigned char *m,
                                     milk_dtype d, int64_t n, uint64_t *size)
{
    uint32_t code = get_u32(m + 4);
    milk_dtype stored = blob_dtype(code);
    if (stored == MILK_DTYPE_INVALID)
        return milk_errorf(ctx, MILK_ERR_PARSE,
                           "%s: blob at offset %llu: unknown BlobDataType %u",
                           bf->path, (unsigned long long)record, code);
    if (stored != d)
        return milk_errorf(ctx, MILK_ERR_INVALID_MODEL,
                           "%s: blob at offset %llu: BlobDataType %u (%s) "
                           "does not match the declared dtype %s",
                           bf->path, (unsigned long long)record, code,
                           milk_dtype_name(stored), milk_dtype_name(d));
    uint64_t need;
    *size = get_u64(m + 8);
    if (!milk_dtype_nbytes(d, n, &need) || *size != need)
        return milk_errorf(ctx, MILK_ERR_INVALID_MODEL,
                           "%s: blob at offset %llu: sizeInBytes is %llu, "
                           "but %lld %s elements need %llu",
                           bf->path, (unsigned long long)record,
                           (unsigned long long)*size, (long long)n,
                           milk_dtype_name(d), (unsigned long long)need);
    if (milk_dtype_bits(d) < 8 && get_u64(m + 24) != padding_bits(d, n))
        return milk_errorf(ctx, MILK_ERR_INVALID_MODEL,
                           "%s: blob at offset %llu: padding_size_in_bits "
                           "is %llu, expected %llu",
                           bf->path, (unsigned long long)record,
                           (unsigned long long)get_u64(m + 24),
                           (unsigned long long)padding_bits(d, n));
    return MILK_OK;
}

milk_status coreml_blob_check(milk_ctx *ctx, const coreml_blob_file *bf,
                              uint64_t record, milk_dtype d, int64_t n,
                              uint64_t *data_offset)
{
    uint64_t end;
    if (bf->count == 0)
        return milk_errorf(ctx, MILK_ERR_PARSE,
                           "%s: header: count is 0, but blob offset %llu is "
                           "referenced",
                           bf->path, (unsigned long long)record);
    if (record < BLOB_ALIGN || !milk_add_u64(record, BLOB_ALIGN, &end) ||
        end > bf->size)
        return milk_errorf(ctx, MILK_ERR_PARSE,
                           "%s: blob offset %llu is outside the file "
                           "(%llu bytes)",
                           bf->path, (unsigned long long)record,
                           (unsigned long long)bf->size);
    unsigned char m[BLOB_ALIGN];
    MILK_TRY(pread_all(ctx, bf->fd, bf->path, m, sizeof m, record));
    if (get_u32(m) != BLOB_SENTINEL)
        return milk_errorf(ctx, MILK_ERR_PARSE,
                           "%s: blob at offset %llu: sentinel is 0x%08X, "
                           "expected 0xDEADBEEF",
                           bf->path, (unsigned long long)record, get_u32(m));
    uint64_t size = 0;
    MILK_TRY(check_record_type(ctx, bf, record, m, d, n, &size));
    uint64_t data = get_u64(m + 16);
    if (data < BLOB_ALIGN || !milk_add_u64(data, size, &end) ||
        end > bf->size)
        return milk_errorf(ctx, MILK_ERR_PARSE,
                           "%s: blob at offset %llu: data offset %llu + "
                           "sizeInBytes %llu is outside the file (%llu "
                           "bytes)",
                           bf->path, (unsigned long long)record,
                           (unsigned long long)data,
                           (unsigned long long)size,
                           (unsigned long long)bf->size);
    *data_offset = data;
    return MILK_OK;
}

/* ---- writing ---------------------------------------------------------------- */

bool coreml_blob_wanted(const milk_value *v, milk_target target)
{
    if (v->kind != MILK_VALUE_TENSOR) return false;
    int64_t n = milk_tensor_type_count(&v->type);
    if (n < 10) return false;
    switch (v->type.dtype) {
    case MILK_DTYPE_FP16: case MILK_DTYPE_FP32: case MILK_DTYPE_UINT8:
    case MILK_DTYPE_INT8:
    /* sub-byte types are int8/uint8 numpy arrays in coremltools */
    case MILK_DTYPE_INT4: case MILK_DTYPE_UINT1: case MILK_DTYPE_UINT2:
    case MILK_DTYPE_UINT3: case MILK_DTYPE_UINT4: case MILK_DTYPE_UINT6:
        return true;
    case MILK_DTYPE_INT16: case MILK_DTYPE_UINT16: case MILK_DTYPE_INT32:
    case MILK_DTYPE_UINT32:
        return target >= MILK_TARGET_IOS18;
    default:
        return false;
    }
}

static milk_status pwrite_all(milk_ctx *ctx, coreml_blob_writer *bw,
                              const void *buf, size_t n, uint64_t off)
{
    size_t done = 0;
    while (done < n) {
        ssize_t r = pwrite(bw->fd, (const char *)buf + done, n - done,
                           (off_t)(off + done));
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0)
            return milk_errorf(ctx, MILK_ERR_IO, "%s: cannot write: %s",
                               bw->path, r < 0 ? strerror(errno) : "no space");
        done += (size_t)r;
    }
    return MILK_OK;
}

/* The header with the current count (rewritten after every blob, as
 * coremltools' writer does). */
static milk_status write_header(milk_ctx *ctx, coreml_blob_writer *bw)
{
    unsigned char h[BLOB_ALIGN] = {0};
    put_u32(h, bw->count);
    put_u32(h + 4, BLOB_VERSION);
    return pwrite_all(ctx, bw, h, sizeof h, 0);
}

milk_status coreml_blob_create(milk_ctx *ctx, const char *path,
                               coreml_blob_writer *bw)
{
    memset(bw, 0, sizeof *bw);
    bw->path = path;
    bw->fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0666);
    if (bw->fd < 0)
        return milk_errorf(ctx, MILK_ERR_IO, "%s: cannot create: %s", path,
                           strerror(errno));
    bw->end = BLOB_ALIGN;
    milk_status s = write_header(ctx, bw);
    if (s != MILK_OK) {
        close(bw->fd);
        bw->fd = -1;
    }
    return s;
}

typedef struct blob_sink {
    milk_ctx *ctx;
    coreml_blob_writer *bw;
    uint64_t at, written;
} blob_sink;

static milk_status sink_write(void *user, const void *bytes, size_t n)
{
    blob_sink *s = user;
    MILK_TRY(pwrite_all(s->ctx, s->bw, bytes, n, s->at + s->written));
    s->written += n;
    return MILK_OK;
}

milk_status coreml_blob_append(milk_ctx *ctx, coreml_blob_writer *bw,
                               const milk_value *v, uint64_t *record)
{
    uint32_t code = blob_code(v->type.dtype);
    uint64_t size;
    if (!code || !milk_value_nbytes(v, &size))
        return milk_errorf(ctx, MILK_ERR_INVALID_ARG,
                           "%s: a %s tensor cannot be stored in a blob file",
                           bw->path, milk_dtype_name(v->type.dtype));
    uint64_t meta = (bw->end + BLOB_ALIGN - 1) / BLOB_ALIGN * BLOB_ALIGN;
    blob_sink sink = {ctx, bw, meta + BLOB_ALIGN, 0};
    unsigned char m[BLOB_ALIGN] = {0};
    put_u32(m, BLOB_SENTINEL);
    put_u32(m + 4, code);
    put_u64(m + 8, size);
    put_u64(m + 16, sink.at);
    put_u64(m + 24, padding_bits(v->type.dtype,
                                 milk_tensor_type_count(&v->type)));
    MILK_TRY(pwrite_all(ctx, bw, m, sizeof m, meta));
    MILK_TRY(milk_value_stream(ctx, v, BLOB_CHUNK, sink_write, &sink));
    if (sink.written != size)
        return milk_errorf(ctx, MILK_ERR_IO,
                           "%s: blob at offset %llu: got %llu bytes of data, "
                           "expected %llu",
                           bw->path, (unsigned long long)meta,
                           (unsigned long long)sink.written,
                           (unsigned long long)size);
    bw->count++;
    bw->end = sink.at + size;
    *record = meta;
    return write_header(ctx, bw);
}

milk_status coreml_blob_finish(milk_ctx *ctx, coreml_blob_writer *bw)
{
    if (bw->fd < 0) return MILK_OK;
    int rc = close(bw->fd);
    bw->fd = -1;
    if (rc != 0)
        return milk_errorf(ctx, MILK_ERR_IO, "%s: cannot write: %s",
                           bw->path, strerror(errno));
    return MILK_OK;
}
