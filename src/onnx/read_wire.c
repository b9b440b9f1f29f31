/*
 * read_wire.c: a cursor over the protobuf wire format for the ONNX reader:
 * tags, varints, fixed-width values, length-delimited payloads and packed
 * repeated scalars, each bounded by the message that holds it. Malformed
 * bytes are a MILK_ERR_PARSE naming the field and the byte offset in the
 * file. See read.h for why milk walks the wire format itself.
 */
#include "read.h"

#include <stdio.h>

/* Decode a varint at p (before end). Returns the bytes used, 0 if the
 * varint runs past end, -1 if it is longer than 10 bytes or overflows 64
 * bits. */
static int get_varint(const uint8_t *p, const uint8_t *end, uint64_t *v)
{
    uint64_t x = 0;
    for (int i = 0; i < 10; i++) {
        if (end - p <= i) return 0;
        uint8_t b = p[i];
        if (i == 9 && b > 1) return -1;
        x |= (uint64_t)(b & 0x7f) << (7 * i);
        if (!(b & 0x80)) {
            *v = x;
            return i + 1;
        }
    }
    return -1;
}

static uint64_t get_le(const uint8_t *p, int n)
{
    uint64_t x = 0;
    for (int i = n - 1; i >= 0; i--) x = x << 8 | p[i];
    return x;
}

milk_pb milk_pb_make(const uint8_t *p, uint64_t n, const char *const *names,
                     uint32_t n_names)
{
    /* An empty message may come with no buffer at all: NULL + 0 is
     * undefined, so point at a static empty one. */
    static const uint8_t empty[1];
    if (!p) p = empty, n = 0;
    milk_pb c = {p, p + n, names, n_names};
    return c;
}

milk_pb milk_pb_sub(const milk_pb_field *f, const char *const *names,
                    uint32_t n_names)
{
    return milk_pb_make(f->data, f->len, names, n_names);
}

const char *milk_pb_name(const milk_pb *c, uint32_t num, char *buf, size_t n)
{
    if (num < c->n_names && c->names && c->names[num]) return c->names[num];
    snprintf(buf, n, "field %u", (unsigned)num);
    return buf;
}

/* The value or payload of a field whose tag has been read: advances c->p.
 * Returns NULL on success, else what is wrong. */
static const char *take_value(milk_pb *c, milk_pb_field *f)
{
    int k;
    switch (f->wire) {
    case MILK_PB_VARINT:
        k = get_varint(c->p, c->end, &f->u);
        if (k <= 0) return k == 0 ? "truncated varint" : "bad varint";
        c->p += k;
        return NULL;
    case MILK_PB_I64:
    case MILK_PB_I32: {
        int w = f->wire == MILK_PB_I64 ? 8 : 4;
        if (c->end - c->p < w) return "truncated fixed-width value";
        f->u = get_le(c->p, w);
        c->p += w;
        return NULL;
    }
    case MILK_PB_LEN:
        k = get_varint(c->p, c->end, &f->len);
        if (k <= 0) return k == 0 ? "truncated length" : "bad length varint";
        c->p += k;
        if (f->len > (uint64_t)(c->end - c->p))
            return "length runs past the end of the enclosing message";
        f->data = c->p;
        c->p += f->len;
        return NULL;
    default:
        return "invalid wire type";
    }
}

/* Read one tag at c->p into f (num, wire). */
static const char *take_tag(milk_pb *c, milk_pb_field *f)
{
    uint64_t tag;
    f->at = c->p;
    int k = get_varint(c->p, c->end, &tag);
    if (k <= 0) return k == 0 ? "truncated tag" : "bad tag varint";
    if (tag >> 3 == 0 || tag >> 3 > 0x1fffffff) return "invalid field number";
    c->p += k;
    f->num = (uint32_t)(tag >> 3);
    f->wire = (int)(tag & 7);
    return NULL;
}

/* Skip a group whose start tag has been read: fields up to the matching
 * end-group tag, counting nested groups without recursion. */
static const char *skip_group(milk_pb *c, uint32_t num)
{
    uint64_t depth = 1;
    milk_pb_field g;
    while (depth > 0) {
        if (c->p >= c->end) return "unterminated group";
        const char *why = take_tag(c, &g);
        if (why) return why;
        if (g.wire == MILK_PB_SGROUP) {
            depth++;
        } else if (g.wire == MILK_PB_EGROUP) {
            depth--;
            if (depth == 0 && g.num != num) return "mismatched end-group";
        } else if ((why = take_value(c, &g))) {
            return why;
        }
    }
    return NULL;
}

/* milk_pb_next without error reporting: NULL or what is wrong. */
static const char *next_raw(milk_pb *c, milk_pb_field *f)
{
    for (;;) {
        f->num = 0;
        f->data = NULL;
        f->len = f->u = 0;
        if (c->p >= c->end) return NULL;
        const char *why = take_tag(c, f);
        if (why) return why;
        if (f->wire == MILK_PB_EGROUP) return "unexpected end-group";
        if (f->wire != MILK_PB_SGROUP) return take_value(c, f);
        /* ONNX has no groups: whatever this is, it is an unknown field. */
        if ((why = skip_group(c, f->num))) return why;
    }
}

milk_status milk_pb_next(milk_onnx_reader *r, milk_pb *c, milk_pb_field *f)
{
    const char *why = next_raw(c, f);
    if (!why) return MILK_OK;
    char buf[32];
    if (f->num == 0) /* the tag itself is bad */
        return milk_errorf(r->ctx, MILK_ERR_PARSE, "%s at byte %llu", why,
                           (unsigned long long)(f->at - r->base));
    return milk_errorf(r->ctx, MILK_ERR_PARSE, "%s: %s at byte %llu",
                       milk_pb_name(c, f->num, buf, sizeof buf), why,
                       (unsigned long long)(f->at - r->base));
}

static const char *wire_name(int w)
{
    static const char *const names[] = {"varint", "64-bit", "length-delimited",
                                        "start-group", "end-group", "32-bit"};
    return w >= 0 && w < 6 ? names[w] : "?";
}

milk_status milk_pb_want(milk_onnx_reader *r, const milk_pb *c,
                         const milk_pb_field *f, int wire)
{
    if (f->wire == wire) return MILK_OK;
    char buf[32];
    return milk_errorf(r->ctx, MILK_ERR_PARSE,
                       "%s: wire type %s, expected %s at byte %llu",
                       milk_pb_name(c, f->num, buf, sizeof buf),
                       wire_name(f->wire), wire_name(wire),
                       (unsigned long long)(f->at - r->base));
}

milk_status milk_pb_varint(milk_onnx_reader *r, const milk_pb *c,
                           const milk_pb_field *f, uint64_t *out)
{
    MILK_TRY(milk_pb_want(r, c, f, MILK_PB_VARINT));
    *out = f->u;
    return MILK_OK;
}

milk_status milk_pb_bytes(milk_onnx_reader *r, const milk_pb *c,
                          const milk_pb_field *f, const char **out,
                          uint64_t *len)
{
    MILK_TRY(milk_pb_want(r, c, f, MILK_PB_LEN));
    if (f->len >= SIZE_MAX) return milk_errorf(r->ctx, MILK_ERR_NOMEM, "out of memory");
    char *s = milk_arena_strndup(r->arena, (const char *)f->data, (size_t)f->len);
    if (!s) return milk_errorf(r->ctx, MILK_ERR_NOMEM, "out of memory");
    *out = s;
    if (len) *len = f->len;
    return MILK_OK;
}

milk_status milk_pb_string(milk_onnx_reader *r, const milk_pb *c,
                           const milk_pb_field *f, const char **out)
{
    MILK_TRY(milk_pb_want(r, c, f, MILK_PB_LEN));
    if (memchr(f->data, 0, (size_t)f->len)) {
        char buf[32];
        return milk_errorf(r->ctx, MILK_ERR_INVALID_MODEL,
                           "%s: string holds a NUL byte at byte %llu",
                           milk_pb_name(c, f->num, buf, sizeof buf),
                           (unsigned long long)(f->at - r->base));
    }
    return milk_pb_bytes(r, c, f, out, NULL);
}

/* Count the varints packed in [p, end), failing on a bad or cut one. */
static const char *count_varints(const uint8_t *p, const uint8_t *end,
                                 uint64_t *n)
{
    uint64_t v;
    *n = 0;
    while (p < end) {
        int k = get_varint(p, end, &v);
        if (k <= 0) return k == 0 ? "truncated packed varint" : "bad packed varint";
        p += k;
        (*n)++;
    }
    return NULL;
}

milk_status milk_pb_count(milk_onnx_reader *r, const milk_pb *c,
                          const milk_pb_field *f, int elem_wire, uint64_t *n)
{
    if (f->wire == elem_wire) {
        *n = 1;
        return MILK_OK;
    }
    char buf[32];
    if (f->wire != MILK_PB_LEN) /* nor packed */
        return milk_errorf(r->ctx, MILK_ERR_PARSE,
                           "%s: wire type %s, expected %s or packed at byte "
                           "%llu",
                           milk_pb_name(c, f->num, buf, sizeof buf),
                           wire_name(f->wire), wire_name(elem_wire),
                           (unsigned long long)(f->at - r->base));
    const char *why = NULL;
    if (elem_wire == MILK_PB_VARINT) {
        why = count_varints(f->data, f->data + f->len, n);
    } else {
        uint64_t w = elem_wire == MILK_PB_I64 ? 8 : 4;
        if (f->len % w) why = "packed length is not a multiple of the value size";
        *n = f->len / w;
    }
    if (!why) return MILK_OK;
    return milk_errorf(r->ctx, MILK_ERR_PARSE, "%s: %s at byte %llu",
                       milk_pb_name(c, f->num, buf, sizeof buf), why,
                       (unsigned long long)(f->at - r->base));
}

milk_pb_iter milk_pb_iter_make(const milk_pb_field *f, int elem_wire)
{
    milk_pb_iter it = {NULL, NULL, elem_wire, false, 0};
    if (f->wire == elem_wire) {
        it.single_left = true;
        it.single = f->u;
    } else {
        it.p = f->data;
        it.end = f->data + f->len;
    }
    return it;
}

bool milk_pb_iter_next(milk_pb_iter *it, uint64_t *v)
{
    if (it->single_left) {
        it->single_left = false;
        *v = it->single;
        return true;
    }
    if (!it->p || it->p >= it->end) return false;
    if (it->wire == MILK_PB_VARINT) {
        int k = get_varint(it->p, it->end, v);
        if (k <= 0) return false; /* not after milk_pb_count */
        it->p += k;
        return true;
    }
    int w = it->wire == MILK_PB_I64 ? 8 : 4;
    if (it->end - it->p < w) return false;
    *v = get_le(it->p, w);
    it->p += w;
    return true;
}

milk_status milk_pb_tally(milk_onnx_reader *r, const milk_pb *c,
                          uint64_t *counts, uint32_t n)
{
    milk_pb it = *c;
    milk_pb_field f;
    memset(counts, 0, n * sizeof *counts);
    for (;;) {
        MILK_TRY(milk_pb_next(r, &it, &f));
        if (f.num == 0) return MILK_OK;
        if (f.num >= n || ++counts[f.num] <= MILK_ONNX_MAX_COUNT) continue;
        char buf[32];
        return milk_errorf(r->ctx, MILK_ERR_UNSUPPORTED,
                           "%s: more than %d entries",
                           milk_pb_name(c, f.num, buf, sizeof buf),
                           MILK_ONNX_MAX_COUNT);
    }
}

/* A short string without control characters, fit to quote in a message. */
static bool printable(const milk_pb_field *f)
{
    if (f->len == 0 || f->len > 256) return false;
    for (uint64_t i = 0; i < f->len; i++)
        if (f->data[i] < 0x20 || f->data[i] == 0x7f) return false;
    return true;
}

const char *milk_pb_peek_string(milk_onnx_reader *r, const uint8_t *p,
                                uint64_t n, uint32_t num)
{
    milk_pb c = milk_pb_make(p, n, NULL, 0);
    milk_pb_field f;
    const char *found = NULL;
    while (!next_raw(&c, &f) && f.num != 0) {
        if (f.num == num && f.wire == MILK_PB_LEN && printable(&f))
            found = milk_arena_strndup(r->arena, (const char *)f.data,
                                       (size_t)f.len);
    }
    return found;
}

milk_status milk_onnx_alloc(milk_onnx_reader *r, uint64_t n, size_t elem,
                            void *out)
{
    uint64_t bytes;
    void *p = NULL;
    if (milk_mul_u64(n, elem, &bytes) && bytes < SIZE_MAX)
        p = milk_arena_alloc(r->arena, bytes ? (size_t)bytes : 1);
    if (!p) return milk_errorf(r->ctx, MILK_ERR_NOMEM, "out of memory");
    *(void **)out = p;
    return MILK_OK;
}
