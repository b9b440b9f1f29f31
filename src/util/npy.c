/*
 * npy.c: NumPy .npy files (read and write) and milk_array storage.
 *
 * The format (numpy/lib/format.py): the magic "\x93NUMPY", a major and a
 * minor version byte, the header length (2 bytes little-endian in version
 * 1.0, 4 bytes in 2.0 and 3.0), then the header: a Python dict literal with
 * the keys 'descr', 'fortran_order' and 'shape', padded with spaces and
 * ending in '\n'; then the elements in C order. Version 3.0 differs from
 * 2.0 only in encoding the header as UTF-8, which changes nothing for the
 * ASCII subset accepted here.
 *
 * The header is parsed by hand, not evaluated: keys in any order, any
 * Python whitespace, trailing commas, both quote styles. Every length is
 * checked against the size of the source before anything is read or
 * allocated, so a truncated or lying file is an error, never a crash.
 */
#include "npy.h"

#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

/* Elements are copied between files and memory as they are. */
#if !defined(__BYTE_ORDER__) || __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "npy.c copies little-endian elements unchanged: add byte swaps first"
#endif

#define NPY_MAGIC "\x93NUMPY"
#define NPY_MAGIC_LEN 6
/* numpy itself refuses headers over 10000 bytes unless told otherwise;
 * milk allows more but keeps the allocation bounded. */
#define NPY_HEADER_MAX (UINT64_C(1) << 20)

static const struct {
    const char *descr; /* as numpy writes it */
    milk_dtype dtype;
} npy_dtypes[] = {
    {"<f2", MILK_DTYPE_FP16},  {"<f4", MILK_DTYPE_FP32},
    {"<f8", MILK_DTYPE_FP64},  {"|i1", MILK_DTYPE_INT8},
    {"<i4", MILK_DTYPE_INT32}, {"<i8", MILK_DTYPE_INT64},
    {"|u1", MILK_DTYPE_UINT8}, {"|b1", MILK_DTYPE_BOOL},
};
#define NPY_DTYPE_LIST "<f2 <f4 <f8 |i1 <i4 <i8 |u1 |b1"

static const char *npy_descr_of(milk_dtype d)
{
    for (size_t i = 0; i < MILK_ARRAY_LEN(npy_dtypes); i++)
        if (npy_dtypes[i].dtype == d) return npy_dtypes[i].descr;
    return NULL;
}

/* "()", "(3,)", "(2, 3)": the shape as Python prints a tuple. */
static void format_shape(char *buf, size_t cap, const milk_tensor_type *t)
{
    if (t->rank < 0 || t->rank > MILK_MAX_RANK) {
        snprintf(buf, cap, "(?)");
        return;
    }
    size_t k = (size_t)snprintf(buf, cap, "(");
    for (int i = 0; i < t->rank && k < cap; i++)
        k += (size_t)snprintf(buf + k, cap - k, i ? ", %lld" : "%lld",
                              (long long)t->dims[i]);
    if (k < cap) snprintf(buf + k, cap - k, t->rank == 1 ? ",)" : ")");
}

/* ---- arrays ------------------------------------------------------------ */

milk_status milk_array_init(milk_ctx *ctx, const milk_tensor_type *type,
                            milk_array *out)
{
    memset(out, 0, sizeof *out);
    int64_t count = milk_tensor_type_count(type);
    if (count < 0 || count > MILK_MAX_ELEMENTS)
        return milk_errorf(ctx, MILK_ERR_INVALID_ARG,
                           "array: shape is unknown or has more than 2^40 "
                           "elements");
    uint64_t nbytes;
    if (!milk_dtype_nbytes(type->dtype, count, &nbytes))
        return milk_errorf(ctx, MILK_ERR_INVALID_ARG,
                           "array: dtype %d has no fixed element size",
                           (int)type->dtype);
    /* calloc(0) may return NULL; data is never NULL for an initialised
     * array, so callers need no special case for zero elements. */
    if (nbytes >= SIZE_MAX || !(out->data = calloc(1, nbytes ? nbytes : 1)))
        return milk_errorf(ctx, MILK_ERR_NOMEM,
                           "out of memory allocating %llu bytes",
                           (unsigned long long)nbytes);
    out->type = *type;
    return MILK_OK;
}

void milk_array_release(milk_array *a)
{
    if (!a) return;
    free(a->data);
    memset(a, 0, sizeof *a);
}

/* ---- header dict parser ------------------------------------------------- */

typedef struct npy_cursor {
    milk_ctx *ctx;
    const char *name; /* the file, for messages */
    const char *s;    /* the header text (not NUL-terminated) */
    size_t n, i;
} npy_cursor;

enum { KEY_DESCR, KEY_FORTRAN, KEY_SHAPE, KEY_COUNT };
static const char *const npy_keys[KEY_COUNT] = {"descr", "fortran_order",
                                                "shape"};

typedef struct npy_header {
    unsigned seen;     /* bit per KEY_* */
    const char *descr; /* points into the header text */
    size_t descr_len;
    bool fortran;
    int rank; /* as written; may exceed MILK_MAX_RANK (checked later) */
    int64_t dims[MILK_MAX_RANK];
} npy_header;

static milk_status header_error(npy_cursor *c, const char *fmt, ...)
    MILK_PRINTF(2, 3);
static milk_status header_error(npy_cursor *c, const char *fmt, ...)
{
    char what[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    return milk_errorf(c->ctx, MILK_ERR_PARSE,
                       "%s: header: %s (at byte %zu of the header dict)",
                       c->name, what, c->i);
}

static bool is_space(char ch)
{
    return ch == ' ' || ch == '\t' || ch == '\n' || ch == '\r' ||
           ch == '\f' || ch == '\v';
}

static bool is_digit(char ch) { return ch >= '0' && ch <= '9'; }

static void skip_ws(npy_cursor *c)
{
    while (c->i < c->n && is_space(c->s[c->i])) c->i++;
}

/* Skip whitespace, then consume ch if it comes next. */
static bool eat(npy_cursor *c, char ch)
{
    skip_ws(c);
    if (c->i < c->n && c->s[c->i] == ch) {
        c->i++;
        return true;
    }
    return false;
}

/* The next non-space character, or -1 at the end. */
static int peek(npy_cursor *c)
{
    skip_ws(c);
    return c->i < c->n ? (unsigned char)c->s[c->i] : -1;
}

/* A quoted string, '...' or "...", without escapes (numpy never writes
 * any): sets *p and *len to its contents. */
static milk_status parse_string(npy_cursor *c, const char **p, size_t *len)
{
    int q = peek(c);
    if (q != '\'' && q != '"')
        return header_error(c, "expected a quoted string");
    size_t start = ++c->i;
    for (; c->i < c->n && c->s[c->i] != q; c->i++) {
        if (c->s[c->i] == '\\')
            return header_error(c, "escape sequences are not supported");
        if (c->s[c->i] == '\n') break;
    }
    if (c->i >= c->n || c->s[c->i] != q)
        return header_error(c, "unterminated string");
    *p = c->s + start;
    *len = c->i - start;
    c->i++;
    return MILK_OK;
}

/* True or False, as whole words. */
static milk_status parse_bool(npy_cursor *c, bool *out)
{
    static const char *const words[2] = {"False", "True"};
    skip_ws(c);
    for (int v = 0; v < 2; v++) {
        size_t wl = strlen(words[v]), left = c->n - c->i;
        const char *at = c->s + c->i;
        if (left >= wl && memcmp(at, words[v], wl) == 0 &&
            (left == wl || is_space(at[wl]) || at[wl] == ',' ||
             at[wl] == '}')) {
            c->i += wl;
            *out = v;
            return MILK_OK;
        }
    }
    return header_error(c, "field 'fortran_order': expected True or False");
}

/* A non-negative decimal integer as Python writes it (no sign, no leading
 * zeros), allowing the 'L' suffix Python 2 wrote after longs. */
static milk_status parse_dim(npy_cursor *c, int64_t *out)
{
    skip_ws(c);
    size_t start = c->i;
    int64_t v = 0;
    for (; c->i < c->n && is_digit(c->s[c->i]); c->i++) {
        if (!milk_mul_i64(v, 10, &v) ||
            __builtin_add_overflow(v, c->s[c->i] - '0', &v)) {
            size_t end = c->i;
            while (end < c->n && is_digit(c->s[end])) end++;
            int shown = end - start > 40 ? 40 : (int)(end - start);
            return header_error(c, "field 'shape': dimension %.*s overflows "
                                   "int64", shown, c->s + start);
        }
    }
    if (c->i == start)
        return header_error(c, "field 'shape': expected a non-negative "
                               "integer");
    if (c->i - start > 1 && c->s[start] == '0')
        return header_error(c, "field 'shape': leading zero in a dimension");
    if (c->i < c->n && c->s[c->i] == 'L') c->i++;
    *out = v;
    return MILK_OK;
}

/* A tuple of dimensions: (), (3,), (2, 3), (2, 3,). "(3)" is the number 3
 * in Python, not a tuple, and numpy refuses it too. */
static milk_status parse_shape(npy_cursor *c, npy_header *h)
{
    if (!eat(c, '('))
        return header_error(c, "field 'shape': expected a tuple such as "
                               "(2, 3)");
    h->rank = 0;
    if (eat(c, ')')) return MILK_OK;
    for (;;) {
        int64_t d = 0;
        MILK_TRY(parse_dim(c, &d));
        if (h->rank < MILK_MAX_RANK) h->dims[h->rank] = d;
        h->rank++; /* bounded: each dim takes at least 2 header bytes */
        bool comma = eat(c, ',');
        if (eat(c, ')')) {
            if (h->rank == 1 && !comma)
                return header_error(c, "field 'shape': (n) is not a tuple; "
                                       "expected (n,)");
            return MILK_OK;
        }
        if (!comma)
            return header_error(c, "field 'shape': expected ',' or ')'");
    }
}

static milk_status parse_entry(npy_cursor *c, npy_header *h)
{
    const char *key;
    size_t klen;
    MILK_TRY(parse_string(c, &key, &klen));
    int k = 0;
    while (k < KEY_COUNT && (strlen(npy_keys[k]) != klen ||
                             memcmp(npy_keys[k], key, klen) != 0))
        k++;
    if (k == KEY_COUNT)
        return header_error(c, "unexpected key '%.*s' (expected 'descr', "
                               "'fortran_order', 'shape')",
                            (int)(klen > 40 ? 40 : klen), key);
    if (h->seen & (1u << k))
        return header_error(c, "duplicate key '%s'", npy_keys[k]);
    h->seen |= 1u << k;
    if (!eat(c, ':'))
        return header_error(c, "expected ':' after '%s'", npy_keys[k]);
    if (k == KEY_FORTRAN) return parse_bool(c, &h->fortran);
    if (k == KEY_SHAPE) return parse_shape(c, h);
    if (peek(c) == '[')
        return milk_errorf(c->ctx, MILK_ERR_UNSUPPORTED,
                           "%s: header field 'descr': structured dtypes are "
                           "not supported", c->name);
    return parse_string(c, &h->descr, &h->descr_len);
}

/* The whole dict: '{' entries separated by ',' (a trailing ',' allowed)
 * '}', then only whitespace (the padding). */
static milk_status parse_dict(npy_cursor *c, npy_header *h)
{
    if (!eat(c, '{')) return header_error(c, "expected '{'");
    while (!eat(c, '}')) {
        MILK_TRY(parse_entry(c, h));
        if (eat(c, ',')) continue;
        if (eat(c, '}')) break;
        return header_error(c, "expected ',' or '}'");
    }
    skip_ws(c);
    if (c->i != c->n) return header_error(c, "unexpected text after the dict");
    for (int k = 0; k < KEY_COUNT; k++)
        if (!(h->seen & (1u << k)))
            return milk_errorf(c->ctx, MILK_ERR_PARSE,
                               "%s: header: missing key '%s'", c->name,
                               npy_keys[k]);
    return MILK_OK;
}

/* ---- header meaning ------------------------------------------------------ */

static milk_status lookup_descr(milk_ctx *ctx, const char *name,
                                const char *d, size_t len, milk_dtype *out)
{
    for (size_t i = 0; len == 3 && i < MILK_ARRAY_LEN(npy_dtypes); i++) {
        const char *t = npy_dtypes[i].descr;
        if (memcmp(d + 1, t + 1, 2) != 0) continue;
        /* Byte order means nothing for one-byte types: other writers put
         * '<' or '>' where numpy puts '|'. */
        if (d[0] == t[0] || (t[0] == '|' && (d[0] == '<' || d[0] == '>'))) {
            *out = npy_dtypes[i].dtype;
            return MILK_OK;
        }
        if (d[0] == '>')
            return milk_errorf(ctx, MILK_ERR_UNSUPPORTED,
                               "%s: header field 'descr': big-endian dtype "
                               "'%.3s' is not supported (save it as '<%.2s')",
                               name, d, d + 1);
    }
    if (len >= 1 && len <= 3 && d[len - 1] == 'O')
        return milk_errorf(ctx, MILK_ERR_UNSUPPORTED,
                           "%s: header field 'descr': object arrays are not "
                           "supported", name);
    return milk_errorf(ctx, MILK_ERR_UNSUPPORTED,
                       "%s: header field 'descr': dtype '%.*s' is not "
                       "supported (milk reads " NPY_DTYPE_LIST ")",
                       name, (int)(len > 40 ? 40 : len), d);
}

/* Turn a parsed header into a tensor type, refusing what milk cannot
 * hold. */
static milk_status header_type(milk_ctx *ctx, const char *name,
                               const npy_header *h, milk_tensor_type *t)
{
    memset(t, 0, sizeof *t);
    MILK_TRY(lookup_descr(ctx, name, h->descr, h->descr_len, &t->dtype));
    if (h->fortran)
        return milk_errorf(ctx, MILK_ERR_UNSUPPORTED,
                           "%s: header field 'fortran_order': Fortran-ordered "
                           "arrays are not supported (save "
                           "np.ascontiguousarray(a))", name);
    if (h->rank > MILK_MAX_RANK)
        return milk_errorf(ctx, MILK_ERR_UNSUPPORTED,
                           "%s: header field 'shape': rank %d is more than "
                           "milk supports (%d)", name, h->rank, MILK_MAX_RANK);
    t->rank = h->rank;
    memcpy(t->dims, h->dims, sizeof(int64_t) * (size_t)h->rank);
    if (milk_tensor_type_count(t) < 0)
        return milk_errorf(ctx, MILK_ERR_UNSUPPORTED,
                           "%s: header field 'shape': more elements than milk "
                           "supports (2^40)", name);
    return MILK_OK;
}

/* ---- reading ------------------------------------------------------------- */

static uint32_t load_le(const unsigned char *p, int n)
{
    uint32_t v = 0;
    for (int i = n - 1; i >= 0; i--) v = v << 8 | p[i];
    return v;
}

/* Magic, version and header length. Sets *hlen and *data_at (the offset of
 * the first element), both checked against the source size. */
static milk_status read_prelude(milk_ctx *ctx, const milk_npy_source *src,
                                uint64_t *hlen, uint64_t *data_at)
{
    unsigned char b[12];
    size_t n = src->size < 8 ? (size_t)src->size : 8;
    MILK_TRY(src->read(ctx, src->user, src->name, b, n));
    if (n < NPY_MAGIC_LEN || memcmp(b, NPY_MAGIC, NPY_MAGIC_LEN) != 0)
        return milk_errorf(ctx, MILK_ERR_PARSE,
                           "%s: not a .npy file (bad magic)", src->name);
    if (n < 8)
        return milk_errorf(ctx, MILK_ERR_PARSE,
                           "%s: truncated: the file ends inside the header",
                           src->name);
    if (b[6] < 1 || b[6] > 3 || b[7] != 0)
        return milk_errorf(ctx, MILK_ERR_UNSUPPORTED,
                           "%s: .npy format version %d.%d is not supported "
                           "(milk reads 1.0, 2.0 and 3.0)", src->name, b[6],
                           b[7]);
    int lf = b[6] == 1 ? 2 : 4; /* width of the header length field */
    if (src->size < (uint64_t)(8 + lf))
        return milk_errorf(ctx, MILK_ERR_PARSE,
                           "%s: truncated: the file ends inside the header",
                           src->name);
    MILK_TRY(src->read(ctx, src->user, src->name, b + 8, (size_t)lf));
    *hlen = load_le(b + 8, lf);
    *data_at = (uint64_t)(8 + lf) + *hlen;
    if (*data_at > src->size)
        return milk_errorf(ctx, MILK_ERR_PARSE,
                           "%s: header length %llu runs past the end of the "
                           "file (%llu bytes)", src->name,
                           (unsigned long long)*hlen,
                           (unsigned long long)src->size);
    if (*hlen > NPY_HEADER_MAX)
        return milk_errorf(ctx, MILK_ERR_UNSUPPORTED,
                           "%s: header length %llu is more than milk accepts "
                           "(1 MiB)", src->name, (unsigned long long)*hlen);
    return MILK_OK;
}

static milk_status read_header(milk_ctx *ctx, const milk_npy_source *src,
                               uint64_t hlen, milk_tensor_type *t)
{
    char *text = malloc(hlen ? (size_t)hlen : 1);
    if (!text)
        return milk_errorf(ctx, MILK_ERR_NOMEM, "%s: out of memory", src->name);
    milk_status s = src->read(ctx, src->user, src->name, text, (size_t)hlen);
    if (s == MILK_OK) {
        npy_cursor c = {ctx, src->name, text, (size_t)hlen, 0};
        npy_header h = {0};
        s = parse_dict(&c, &h);
        if (s == MILK_OK) s = header_type(ctx, src->name, &h, t);
    }
    free(text);
    return s;
}

/* The data must be exactly what the shape needs: a short file is
 * truncated, a long one is not what it claims to be. */
static milk_status check_data_size(milk_ctx *ctx, const milk_npy_source *src,
                                   const milk_tensor_type *t,
                                   uint64_t data_at, uint64_t *nbytes)
{
    if (!milk_dtype_nbytes(t->dtype, milk_tensor_type_count(t), nbytes))
        return milk_errorf(ctx, MILK_ERR_PARSE, "%s: bad shape", src->name);
    uint64_t have = src->size - data_at;
    if (have == *nbytes) return MILK_OK;
    char shape[256];
    format_shape(shape, sizeof shape, t);
    return milk_errorf(ctx, MILK_ERR_PARSE,
                       "%s: %s: shape %s of %s needs %llu bytes of data, the "
                       "file has %llu", src->name,
                       have < *nbytes ? "truncated" : "trailing bytes", shape,
                       npy_descr_of(t->dtype), (unsigned long long)*nbytes,
                       (unsigned long long)have);
}

milk_status milk_npy_read_source(milk_ctx *ctx, const milk_npy_source *src,
                                 milk_array *out)
{
    memset(out, 0, sizeof *out);
    uint64_t hlen = 0, data_at = 0, nbytes = 0;
    milk_tensor_type t;
    MILK_TRY(read_prelude(ctx, src, &hlen, &data_at));
    MILK_TRY(read_header(ctx, src, hlen, &t));
    MILK_TRY(check_data_size(ctx, src, &t, data_at, &nbytes));
    milk_array a;
    if (milk_array_init(ctx, &t, &a) != MILK_OK)
        return milk_error_prefix(ctx, "%s", src->name);
    milk_status s = src->read(ctx, src->user, src->name, a.data,
                              (size_t)nbytes);
    if (s != MILK_OK) {
        milk_array_release(&a);
        return s;
    }
    /* numpy reads any non-zero byte as True; milk's kernels rely on 0/1. */
    if (t.dtype == MILK_DTYPE_BOOL) {
        unsigned char *p = a.data;
        for (uint64_t i = 0; i < nbytes; i++) p[i] = p[i] != 0;
    }
    *out = a;
    return MILK_OK;
}

/* ---- sources: memory and files ---------------------------------------- */

typedef struct mem_reader {
    const unsigned char *p;
    size_t pos;
} mem_reader;

/* The parser never reads past size, so no bounds check is needed here. */
static milk_status mem_read(milk_ctx *ctx, void *user, const char *name,
                            void *buf, size_t n)
{
    mem_reader *m = user;
    if (n) memcpy(buf, m->p + m->pos, n);
    m->pos += n;
    return MILK_OK;
}

milk_status milk_npy_parse(milk_ctx *ctx, const char *name, const void *buf,
                           size_t len, milk_array *out)
{
    mem_reader m = {buf, 0};
    milk_npy_source src = {name, len, mem_read, &m};
    return milk_npy_read_source(ctx, &src, out);
}

static milk_status file_read(milk_ctx *ctx, void *user, const char *name,
                             void *buf, size_t n)
{
    FILE *f = user;
    if (fread(buf, 1, n, f) == n) return MILK_OK;
    if (ferror(f))
        return milk_errorf(ctx, MILK_ERR_IO, "%s: read error: %s", name,
                           strerror(errno));
    /* The size came from fstat: the file shrank while being read. */
    return milk_errorf(ctx, MILK_ERR_IO, "%s: unexpected end of file", name);
}

milk_status milk_npy_read(milk_ctx *ctx, const char *path, milk_array *out)
{
    memset(out, 0, sizeof *out);
    FILE *f = fopen(path, "rb");
    if (!f)
        return milk_errorf(ctx, MILK_ERR_IO, "%s: cannot open: %s", path,
                           strerror(errno));
    struct stat st;
    milk_status s = MILK_OK;
    if (fstat(fileno(f), &st) != 0)
        s = milk_errorf(ctx, MILK_ERR_IO, "%s: cannot stat: %s", path,
                        strerror(errno));
    else if (!S_ISREG(st.st_mode))
        s = milk_errorf(ctx, MILK_ERR_IO, "%s: not a regular file", path);
    if (s == MILK_OK) {
        milk_npy_source src = {path, (uint64_t)st.st_size, file_read, f};
        s = milk_npy_read_source(ctx, &src, out);
    }
    fclose(f);
    return s;
}

/* ---- writing ----------------------------------------------------------- */

milk_status milk_npy_header(milk_ctx *ctx, const char *name,
                            const milk_array *a, char *buf, size_t *len,
                            uint64_t *data_len)
{
    const char *descr = npy_descr_of(a->type.dtype);
    const char *dname = milk_dtype_name(a->type.dtype);
    if (!descr)
        return milk_errorf(ctx, MILK_ERR_UNSUPPORTED,
                           "%s: dtype %s cannot be written to .npy (milk "
                           "writes fp16 fp32 fp64 int8 int32 int64 uint8 "
                           "bool)", name, dname ? dname : "?");
    int64_t count = milk_tensor_type_count(&a->type);
    if (count < 0 || count > MILK_MAX_ELEMENTS ||
        !milk_dtype_nbytes(a->type.dtype, count, data_len))
        return milk_errorf(ctx, MILK_ERR_INVALID_ARG,
                           "%s: array shape is unknown or too large", name);
    if (*data_len && !a->data)
        return milk_errorf(ctx, MILK_ERR_INVALID_ARG, "%s: array has no data",
                           name);
    char shape[200]; /* 8 dims of at most 19 digits, with separators */
    format_shape(shape, sizeof shape, &a->type);
    int n = snprintf(buf + 10, MILK_NPY_HEADER_CAP - 10,
                     "{'descr': '%s', 'fortran_order': False, 'shape': %s, }",
                     descr, shape);
    if (n < 0 || (size_t)n >= MILK_NPY_HEADER_CAP - 10)
        return milk_errorf(ctx, MILK_ERR_INVALID_ARG, "%s: header too long",
                           name);
    /* Pad with spaces and end with '\n' so that the data starts at a
     * multiple of 64 bytes, as numpy does (aligned for mmap). */
    size_t used = 10 + (size_t)n + 1, total = (used + 63) / 64 * 64;
    if (total > MILK_NPY_HEADER_CAP)
        return milk_errorf(ctx, MILK_ERR_INVALID_ARG, "%s: header too long",
                           name);
    memcpy(buf, NPY_MAGIC, NPY_MAGIC_LEN);
    buf[6] = 1; /* version 1.0 */
    buf[7] = 0;
    buf[8] = (char)((total - 10) & 0xff);
    buf[9] = (char)((total - 10) >> 8);
    memset(buf + used - 1, ' ', total - used);
    buf[total - 1] = '\n';
    *len = total;
    return MILK_OK;
}

milk_status milk_npy_write(milk_ctx *ctx, const char *path,
                           const milk_array *a)
{
    char hdr[MILK_NPY_HEADER_CAP];
    size_t hlen;
    uint64_t nbytes;
    MILK_TRY(milk_npy_header(ctx, path, a, hdr, &hlen, &nbytes));
    if (nbytes > SIZE_MAX)
        return milk_errorf(ctx, MILK_ERR_INVALID_ARG, "%s: array too large",
                           path);
    const void *bufs[2] = {hdr, a->data};
    size_t lens[2] = {hlen, (size_t)nbytes};
    return milk_file_replace(ctx, path, bufs, lens, nbytes ? 2 : 1);
}

/* ---- replacing a file ---------------------------------------------------- */

static milk_status write_all(milk_ctx *ctx, const char *path, int fd,
                             const void *buf, size_t n)
{
    const char *p = buf;
    while (n > 0) {
        size_t chunk = n < ((size_t)1 << 30) ? n : ((size_t)1 << 30);
        ssize_t w = write(fd, p, chunk);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0)
            return milk_errorf(ctx, MILK_ERR_IO, "%s: write failed: %s", path,
                               w < 0 ? strerror(errno) : "no progress");
        p += w;
        n -= (size_t)w;
    }
    return MILK_OK;
}

/* Create a new file beside path. The name carries the pid and a counter;
 * O_EXCL makes sure an existing file is never reused. Mode 0666 lets the
 * umask decide the permissions, as for any file the user creates. */
static int create_temp(const char *path, char *tmp, size_t cap)
{
    static atomic_uint counter;
    for (int attempt = 0; attempt < 100; attempt++) {
        snprintf(tmp, cap, "%s.tmp-%ld-%u", path, (long)getpid(),
                 atomic_fetch_add(&counter, 1u));
        int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
        if (fd >= 0 || errno != EEXIST) return fd;
    }
    return -1;
}

milk_status milk_file_replace(milk_ctx *ctx, const char *path,
                              const void *const *bufs, const size_t *lens,
                              int n)
{
    size_t cap = strlen(path) + 48;
    char *tmp = malloc(cap);
    if (!tmp)
        return milk_errorf(ctx, MILK_ERR_NOMEM, "%s: out of memory", path);
    int fd = create_temp(path, tmp, cap);
    if (fd < 0) {
        milk_status s = milk_errorf(ctx, MILK_ERR_IO, "%s: cannot create "
                                    "%s: %s", path, tmp, strerror(errno));
        free(tmp);
        return s;
    }
    milk_status s = MILK_OK;
    for (int i = 0; i < n && s == MILK_OK; i++)
        s = write_all(ctx, path, fd, bufs[i], lens[i]);
    if (close(fd) != 0 && s == MILK_OK)
        s = milk_errorf(ctx, MILK_ERR_IO, "%s: write failed: %s", path,
                        strerror(errno));
    if (s == MILK_OK && rename(tmp, path) != 0)
        s = milk_errorf(ctx, MILK_ERR_IO, "%s: cannot rename %s into place: "
                        "%s", path, tmp, strerror(errno));
    if (s != MILK_OK) unlink(tmp);
    free(tmp);
    return s;
}
