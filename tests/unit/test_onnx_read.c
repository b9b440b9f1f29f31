/* test_onnx_read.c: milk's ONNX reader on tiny .onnx files whose bytes the
 * test writes itself with a small protobuf encoder, so that every field,
 * every encoding (packed and not, typed data, raw_data) and every kind of
 * damage is under control. Field numbers are ONNX's (onnx/onnx.proto). */
#include "milk.h"
#include "check.h"
#include "onnx/onnx.h"

#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---- a protobuf encoder ------------------------------------------------------ */

typedef struct buf {
    uint8_t *p;
    size_t n, cap;
} buf;

static void put(buf *b, const void *p, size_t n)
{
    if (n == 0) return;
    if (b->n + n > b->cap) {
        b->cap = (b->n + n) * 2 + 64;
        b->p = realloc(b->p, b->cap);
        if (!b->p) abort();
    }
    memcpy(b->p + b->n, p, n);
    b->n += n;
}

static void varint(buf *b, uint64_t v)
{
    do {
        uint8_t c = (uint8_t)(v & 0x7f);
        v >>= 7;
        if (v) c |= 0x80;
        put(b, &c, 1);
    } while (v);
}

static void tag(buf *b, uint32_t num, int wire)
{
    varint(b, (uint64_t)num << 3 | (uint64_t)wire);
}

static void f_varint(buf *b, uint32_t num, uint64_t v)
{
    tag(b, num, 0);
    varint(b, v);
}

static void f_bytes(buf *b, uint32_t num, const void *p, size_t n)
{
    tag(b, num, 2);
    varint(b, n);
    put(b, p, n);
}

static void f_str(buf *b, uint32_t num, const char *s)
{
    f_bytes(b, num, s, strlen(s));
}

/* Append sub as a length-delimited field and free it. */
static void f_msg(buf *b, uint32_t num, buf *sub)
{
    f_bytes(b, num, sub->p, sub->n);
    free(sub->p);
    *sub = (buf){0};
}

static void f_float(buf *b, uint32_t num, float f)
{
    uint8_t le[4];
    uint32_t u;
    memcpy(&u, &f, 4);
    for (int i = 0; i < 4; i++) le[i] = (uint8_t)(u >> (8 * i));
    tag(b, num, 5);
    put(b, le, 4);
}

/* A packed repeated varint field. */
static void f_packed(buf *b, uint32_t num, const int64_t *v, int n)
{
    buf p = {0};
    for (int i = 0; i < n; i++) varint(&p, (uint64_t)v[i]);
    f_msg(b, num, &p);
}

/* ---- files ----------------------------------------------------------------------- */

static char dir[64];

static const char *path_of(const char *name)
{
    static char path[2][256];
    static int k;
    k ^= 1;
    snprintf(path[k], sizeof path[k], "%s/%s", dir, name);
    return path[k];
}

static const char *write_file(const char *name, const void *p, size_t n)
{
    const char *path = path_of(name);
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(p, 1, n, f) != n) abort();
    fclose(f);
    return path;
}

/* Wrap graph bytes into a ModelProto with ir_version 8 and opset 17. */
static void model_of(buf *m, buf *graph)
{
    buf op = {0};
    f_varint(m, 1, 8);
    f_str(&op, 1, "");
    f_varint(&op, 2, 17);
    f_msg(m, 8, &op);
    f_msg(m, 7, graph);
}

/* Write a model made of these graph bytes to name. */
static const char *write_model(const char *name, buf *graph)
{
    buf m = {0};
    model_of(&m, graph);
    const char *path = write_file(name, m.p, m.n);
    free(m.p);
    return path;
}

/* Load a model made of these graph bytes; expect status s and a message
 * holding `want` (and starting with the file's path). */
static void expect_graph_error(milk_ctx *ctx, buf *graph, milk_status s,
                               const char *want)
{
    const char *path = write_model("bad.onnx", graph);
    milk_onnx_model *mo = NULL;
    CHECK_EQ_INT(milk_onnx_load(ctx, path, &mo), s);
    CHECK(mo == NULL);
    CHECK_STR_CONTAINS(milk_ctx_error(ctx), want);
    CHECK(strncmp(milk_ctx_error(ctx), path, strlen(path)) == 0);
}

/* ---- the good model ------------------------------------------------------------------ */

static const float w_vals[6] = {0.5f, -1.0f, 2.0f, 3.25f, -4.0f, 1e-3f};

/* TensorProto "w": FLOAT [2,3] as raw_data, dims not packed. */
static void tensor_w(buf *t)
{
    f_varint(t, 1, 2);
    f_varint(t, 1, 3);
    f_varint(t, 2, 1); /* FLOAT */
    f_str(t, 8, "w");
    f_bytes(t, 9, w_vals, sizeof w_vals); /* little-endian host */
}

static void add_typed_tensors(buf *g)
{
    buf t = {0};
    /* "h": FLOAT16 [3] in int32_data: 1.0, -2.0, 65504 as IEEE half bits */
    f_packed(&t, 1, (const int64_t[]){3}, 1);
    f_varint(&t, 2, 10);
    f_str(&t, 8, "h");
    f_packed(&t, 5, (const int64_t[]){0x3c00, 0xc000, 0x7bff}, 3);
    f_msg(g, 5, &t);
    /* "b": BOOL [2] in int32_data [0, 2]; non-zero is true */
    f_varint(&t, 1, 2);
    f_varint(&t, 2, 9);
    f_str(&t, 8, "b");
    f_varint(&t, 5, 0);
    f_varint(&t, 5, 2);
    f_msg(g, 5, &t);
    /* "q": INT8 [2] in int32_data [-1, 127]: -1 is a 10-byte varint */
    f_varint(&t, 1, 2);
    f_varint(&t, 2, 3);
    f_str(&t, 8, "q");
    f_packed(&t, 5, (const int64_t[]){-1, 127}, 2);
    f_msg(g, 5, &t);
    /* "l": INT64 [2] in int64_data, unpacked [-5, 7] */
    f_varint(&t, 1, 2);
    f_varint(&t, 2, 7);
    f_str(&t, 8, "l");
    f_varint(&t, 7, (uint64_t)-5);
    f_varint(&t, 7, 7);
    f_msg(g, 5, &t);
    /* "s": STRING [2]: "ab" and "c\0d" (strings are bytes) */
    f_varint(&t, 1, 2);
    f_varint(&t, 2, 8);
    f_str(&t, 8, "s");
    f_str(&t, 6, "ab");
    f_bytes(&t, 6, "c\0d", 3);
    f_msg(g, 5, &t);
}

static void add_node(buf *g)
{
    buf n = {0}, a = {0}, t = {0};
    f_str(&n, 1, "x");
    f_str(&n, 1, ""); /* an omitted optional input */
    f_str(&n, 1, "w");
    f_str(&n, 2, "y");
    f_str(&n, 3, "n0");
    f_str(&n, 4, "Foo");
    f_str(&a, 1, "alpha"); f_float(&a, 2, 1.5f); f_varint(&a, 20, 1);
    f_msg(&n, 5, &a);
    f_str(&a, 1, "axis"); f_varint(&a, 3, (uint64_t)-3); f_varint(&a, 20, 2);
    f_msg(&n, 5, &a);
    f_str(&a, 1, "mode"); f_str(&a, 4, "hi"); f_varint(&a, 20, 3);
    f_msg(&n, 5, &a);
    f_str(&a, 1, "pads"); f_packed(&a, 8, (const int64_t[]){1, -2}, 2);
    f_varint(&a, 8, 3); f_varint(&a, 20, 7); /* packed, then one unpacked */
    f_msg(&n, 5, &a);
    f_str(&a, 1, "scales"); f_float(&a, 7, 0.5f); f_float(&a, 7, 2.0f);
    f_varint(&a, 20, 6);
    f_msg(&n, 5, &a);
    f_str(&a, 1, "names"); f_str(&a, 9, "a"); f_str(&a, 9, "bc");
    f_varint(&a, 20, 8);
    f_msg(&n, 5, &a);
    tensor_w(&t);
    f_str(&a, 1, "value"); f_msg(&a, 5, &t); f_varint(&a, 20, 4);
    f_msg(&n, 5, &a);
    f_str(&a, 1, "body"); f_bytes(&a, 6, "\x12\x01g", 3); f_varint(&a, 20, 5);
    f_msg(&n, 5, &a);
    f_str(&a, 1, "legacy"); f_varint(&a, 3, 9); /* no type: IR v1 style */
    f_msg(&n, 5, &a);
    f_msg(g, 1, &n);
}

/* ValueInfoProto name with TypeProto.tensor_type {elem_type FLOAT, shape
 * [N, 3, ?]} when shaped, else with no shape. */
static void add_value_info(buf *g, uint32_t field, const char *name,
                           bool shaped)
{
    buf v = {0}, ty = {0}, tt = {0}, sh = {0}, d = {0};
    f_varint(&tt, 1, 1);
    if (shaped) {
        f_str(&d, 2, "N");
        f_msg(&sh, 1, &d);
        f_varint(&d, 1, 3);
        f_msg(&sh, 1, &d);
        f_msg(&sh, 1, &d); /* an empty Dimension: unknown */
        f_msg(&tt, 2, &sh);
    }
    f_msg(&ty, 1, &tt);
    f_str(&v, 1, name);
    f_msg(&v, 2, &ty);
    f_msg(g, field, &v);
}

static buf good_model(void)
{
    buf m = {0}, g = {0}, op = {0}, t = {0};
    f_varint(&m, 1, 8);
    f_str(&m, 2, "test");
    f_str(&m, 3, "1.0");
    f_str(&op, 1, ""); f_varint(&op, 2, 17); f_msg(&m, 8, &op);
    f_str(&op, 1, "com.microsoft"); f_varint(&op, 2, 1); f_msg(&m, 8, &op);
    f_varint(&m, 99, 5);                     /* unknown fields: skipped */
    tag(&m, 100, 1); put(&m, "12345678", 8);
    tag(&m, 101, 3); f_varint(&m, 1, 1); tag(&m, 101, 4); /* a group */
    f_str(&g, 2, "main");
    add_node(&g);
    tensor_w(&t);
    f_msg(&g, 5, &t);
    add_typed_tensors(&g);
    add_value_info(&g, 11, "x", true);
    add_value_info(&g, 12, "y", false);
    f_str(&g, 10, "doc");
    f_msg(&m, 7, &g);
    return m;
}

/* ---- checks on the good model ---------------------------------------------------------- */

static void check_header(const milk_onnx_model *m)
{
    CHECK_EQ_INT(m->ir_version, 8);
    CHECK(strcmp(m->producer_name, "test") == 0);
    CHECK(strcmp(m->producer_version, "1.0") == 0);
    CHECK_EQ_INT(m->n_opsets, 2);
    CHECK_EQ_INT(milk_onnx_opset(m, ""), 17);
    CHECK_EQ_INT(milk_onnx_opset(m, "ai.onnx"), 17);
    CHECK_EQ_INT(milk_onnx_opset(m, "com.microsoft"), 1);
    CHECK_EQ_INT(milk_onnx_opset(m, "ai.onnx.ml"), 0);
    CHECK(strcmp(m->graph.name, "main") == 0);
    CHECK(m->dir[0] == '/');
    const milk_onnx_graph *g = &m->graph;
    CHECK_EQ_INT(g->n_inputs, 1);
    CHECK_EQ_INT(g->n_outputs, 1);
    const milk_onnx_value_info *x = &g->inputs[0];
    CHECK(strcmp(x->name, "x") == 0);
    CHECK_EQ_INT(x->kind, MILK_ONNX_VALUE_TENSOR);
    CHECK_EQ_INT(x->elem_type, MILK_ONNX_FLOAT);
    CHECK_EQ_INT(x->rank, 3);
    CHECK(x->dims[0].param && strcmp(x->dims[0].param, "N") == 0);
    CHECK_EQ_INT(x->dims[0].value, MILK_DIM_UNKNOWN);
    CHECK_EQ_INT(x->dims[1].value, 3);
    CHECK(x->dims[1].param == NULL);
    CHECK_EQ_INT(x->dims[2].value, MILK_DIM_UNKNOWN);
    CHECK(x->dims[2].param == NULL);
    CHECK_EQ_INT(g->outputs[0].rank, MILK_RANK_UNKNOWN);
}

static void check_attrs(const milk_onnx_node *n)
{
    const milk_onnx_attr *a;
    CHECK((a = milk_onnx_node_attr(n, "alpha")) && a->type == MILK_ONNX_ATTR_FLOAT && a->f == 1.5f);
    CHECK((a = milk_onnx_node_attr(n, "axis")) && a->type == MILK_ONNX_ATTR_INT && a->i == -3);
    CHECK((a = milk_onnx_node_attr(n, "mode")) && a->s_len == 2 && strcmp(a->s, "hi") == 0);
    a = milk_onnx_node_attr(n, "pads");
    CHECK(a && a->type == MILK_ONNX_ATTR_INTS && a->n_ints == 3);
    if (a && a->n_ints == 3) CHECK(a->ints[0] == 1 && a->ints[1] == -2 && a->ints[2] == 3);
    a = milk_onnx_node_attr(n, "scales");
    CHECK(a && a->n_floats == 2 && a->floats[0] == 0.5f && a->floats[1] == 2.0f);
    a = milk_onnx_node_attr(n, "names");
    CHECK(a && a->n_strings == 2 && strcmp(a->strings[1], "bc") == 0 && a->string_lens[1] == 2);
    a = milk_onnx_node_attr(n, "value");
    CHECK(a && a->type == MILK_ONNX_ATTR_TENSOR && a->t && a->t->rank == 2 &&
          a->t->kind == MILK_ONNX_DATA_FILE && a->t->nbytes == 24);
    a = milk_onnx_node_attr(n, "body");
    CHECK(a && a->type == MILK_ONNX_ATTR_GRAPH && a->n_graphs == 1);
    a = milk_onnx_node_attr(n, "legacy"); /* type inferred from i */
    CHECK(a && a->type == MILK_ONNX_ATTR_INT && a->i == 9);
    CHECK(milk_onnx_node_attr(n, "nope") == NULL);
}

static void check_node(const milk_onnx_model *m)
{
    CHECK_EQ_INT(m->graph.n_nodes, 1);
    if (m->graph.n_nodes != 1) return;
    const milk_onnx_node *n = &m->graph.nodes[0];
    CHECK(strcmp(n->name, "n0") == 0 && strcmp(n->op_type, "Foo") == 0);
    CHECK(strcmp(n->domain, "") == 0);
    CHECK_EQ_INT(n->n_inputs, 3);
    CHECK(n->n_inputs == 3 && strcmp(n->inputs[1], "") == 0 && strcmp(n->inputs[2], "w") == 0);
    CHECK(n->n_outputs == 1 && strcmp(n->outputs[0], "y") == 0);
    CHECK_EQ_INT(n->n_attrs, 9);
    check_attrs(n);
}

/* The raw_data range must hold exactly the floats the test wrote. */
static void check_raw(milk_ctx *ctx, const milk_onnx_model *m, const char *path)
{
    const milk_onnx_tensor *w = milk_onnx_graph_initializer(&m->graph, "w");
    CHECK(w != NULL);
    if (!w) return;
    CHECK_EQ_INT(w->dtype, MILK_ONNX_FLOAT);
    CHECK_EQ_INT(w->rank, 2);
    CHECK(w->dims[0] == 2 && w->dims[1] == 3 && w->count == 6 && w->nbytes == 24);
    CHECK_EQ_INT(w->kind, MILK_ONNX_DATA_FILE);
    CHECK(!w->external);
    char *real = realpath(path, NULL);
    CHECK(real && strcmp(real, w->path) == 0);
    free(real);
    float got[6] = {0};
    FILE *f = fopen(path, "rb");
    CHECK(f && fseek(f, (long)w->offset, SEEK_SET) == 0 && fread(got, 4, 6, f) == 6);
    if (f) fclose(f);
    CHECK(memcmp(got, w_vals, sizeof got) == 0);
    memset(got, 0, sizeof got);
    CHECK_OK(ctx, milk_onnx_tensor_read(ctx, w, got));
    CHECK(memcmp(got, w_vals, sizeof got) == 0);
    CHECK_EQ_INT(milk_onnx_dtype_to_milk(w->dtype), MILK_DTYPE_FP32);
}

static void check_bytes(milk_ctx *ctx, const milk_onnx_model *m,
                        const char *name, const void *want, size_t n)
{
    const milk_onnx_tensor *t = milk_onnx_graph_initializer(&m->graph, name);
    uint8_t got[32] = {0};
    CHECK(t && t->kind == MILK_ONNX_DATA_INLINE && t->nbytes == n);
    if (!t || t->nbytes != n) return;
    CHECK_OK(ctx, milk_onnx_tensor_read(ctx, t, got));
    CHECK(memcmp(got, want, n) == 0);
}

static void check_typed(milk_ctx *ctx, const milk_onnx_model *m)
{
    /* fp16 halves, little-endian: 0x3c00, 0xc000, 0x7bff */
    check_bytes(ctx, m, "h", "\x00\x3c\x00\xc0\xff\x7b", 6);
    check_bytes(ctx, m, "b", "\x00\x01", 2);
    check_bytes(ctx, m, "q", "\xff\x7f", 2);
    int64_t l[2] = {-5, 7};
    check_bytes(ctx, m, "l", l, 16);
    const milk_onnx_tensor *s = milk_onnx_graph_initializer(&m->graph, "s");
    CHECK(s && s->dtype == MILK_ONNX_STRING && s->count == 2);
    if (s && s->count == 2) {
        CHECK(strcmp(s->strings[0], "ab") == 0 && s->string_lens[0] == 2);
        CHECK(s->string_lens[1] == 3 && memcmp(s->strings[1], "c\0d", 3) == 0);
        CHECK(milk_onnx_tensor_read(ctx, s, NULL) == MILK_ERR_INVALID_ARG);
    }
    CHECK_EQ_INT(milk_onnx_dtype_to_milk(MILK_ONNX_FLOAT16), MILK_DTYPE_FP16);
    CHECK_EQ_INT(milk_onnx_dtype_to_milk(MILK_ONNX_COMPLEX64), MILK_DTYPE_INVALID);
    CHECK_EQ_INT(milk_onnx_dtype_to_milk(999), MILK_DTYPE_INVALID);
}

static void test_good(milk_ctx *ctx)
{
    buf b = good_model();
    const char *path = write_file("good.onnx", b.p, b.n);
    milk_onnx_model *m = NULL;
    CHECK_OK(ctx, milk_onnx_load(ctx, path, &m));
    if (m) {
        check_header(m);
        check_node(m);
        check_raw(ctx, m, path);
        check_typed(ctx, m);
        CHECK_EQ_INT(m->graph.n_initializers, 6);
    }
    milk_onnx_free(m);
    /* Every truncation either fails cleanly, naming the file, or (cut at a
     * field boundary) loads; most must fail. */
    int failed = 0;
    for (size_t n = 0; n < b.n; n++) {
        path = write_file("cut.onnx", b.p, n);
        if (milk_onnx_load(ctx, path, &m) == MILK_OK) {
            milk_onnx_free(m);
            continue;
        }
        failed++;
        CHECK(strncmp(milk_ctx_error(ctx), path, strlen(path)) == 0);
    }
    CHECK(failed > (int)b.n * 9 / 10);
    free(b.p);
}

/* ---- malformed bytes ------------------------------------------------------------------ */

static void expect_file_error(milk_ctx *ctx, const void *p, size_t n,
                              milk_status s, const char *want)
{
    const char *path = write_file("bad.onnx", p, n);
    milk_onnx_model *m = NULL;
    CHECK_EQ_INT(milk_onnx_load(ctx, path, &m), s);
    CHECK(m == NULL);
    CHECK_STR_CONTAINS(milk_ctx_error(ctx), want);
}

static void test_wire_errors(milk_ctx *ctx)
{
    /* ir_version (1, varint) whose varint never ends within 10 bytes */
    expect_file_error(ctx, "\x08\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01", 12,
                      MILK_ERR_PARSE, "ir_version: bad varint at byte 0");
    expect_file_error(ctx, "\x08\xff\xff", 3, MILK_ERR_PARSE,
                      "ir_version: truncated varint");
    /* graph (7, LEN) claiming 1000 bytes of 3 */
    expect_file_error(ctx, "\x3a\xe8\x07" "abc", 6, MILK_ERR_PARSE,
                      "graph: length runs past the end of the enclosing message");
    /* graph of 4 bytes holding a node (1, LEN) that claims 10 */
    expect_file_error(ctx, "\x3a\x04\x0a\x0a\x00\x00", 6,
                      MILK_ERR_PARSE, "graph: node: length runs past the end");
    /* graph sent as a varint */
    expect_file_error(ctx, "\x38\x01", 2, MILK_ERR_PARSE,
                      "graph: wire type varint, expected length-delimited");
    /* field number 0, and wire type 7 */
    expect_file_error(ctx, "\x00\x01", 2, MILK_ERR_PARSE, "invalid field number");
    expect_file_error(ctx, "\x0f\x01", 2, MILK_ERR_PARSE, "invalid wire type");
    expect_file_error(ctx, "\x0c", 1, MILK_ERR_PARSE, "unexpected end-group");
    expect_file_error(ctx, "\x0b\x08\x01", 3, MILK_ERR_PARSE, "unterminated group");
    expect_file_error(ctx, "", 0, MILK_ERR_INVALID_MODEL, "empty file (0 bytes)");
    /* ir_version as a 32-bit value */
    expect_file_error(ctx, "\x0d\x01\x00\x00\x00\x3a\x00", 7, MILK_ERR_PARSE,
                      "ir_version: wire type 32-bit, expected varint");
    milk_onnx_model *m = (milk_onnx_model *)1;
    CHECK_EQ_INT(milk_onnx_load(ctx, path_of("missing.onnx"), &m), MILK_ERR_IO);
    CHECK(m == NULL);
    CHECK_STR_CONTAINS(milk_ctx_error(ctx), "missing.onnx: cannot open");
}

/* A graph with one initializer "w" of FLOAT with the given dims and
 * raw_data of nbytes bytes. */
static void init_graph(buf *g, const int64_t *dims, int rank, size_t nbytes)
{
    buf t = {0};
    static const uint8_t zeros[64];
    for (int i = 0; i < rank; i++) f_varint(&t, 1, (uint64_t)dims[i]);
    f_varint(&t, 2, 1);
    f_str(&t, 8, "w");
    f_bytes(&t, 9, zeros, nbytes);
    f_msg(g, 5, &t);
}

static void test_tensor_errors(milk_ctx *ctx)
{
    buf g = {0}, t = {0};
    init_graph(&g, (const int64_t[]){2, -4}, 2, 0);
    expect_graph_error(ctx, &g, MILK_ERR_INVALID_MODEL,
                       "bad.onnx: graph.initializer[0] 'w': dims[1] = -4");
    init_graph(&g, (const int64_t[]){1 << 30, 1 << 30, 4}, 3, 0);
    expect_graph_error(ctx, &g, MILK_ERR_INVALID_MODEL, "more than 2^40 elements");
    init_graph(&g, (const int64_t[]){INT64_MAX, INT64_MAX}, 2, 0);
    expect_graph_error(ctx, &g, MILK_ERR_INVALID_MODEL, "more than 2^40 elements");
    init_graph(&g, (const int64_t[]){1, 1, 1, 1, 1, 1, 1, 1, 1}, 9, 4);
    expect_graph_error(ctx, &g, MILK_ERR_UNSUPPORTED, "dims: rank above 8");
    init_graph(&g, (const int64_t[]){2, 3}, 2, 20);
    expect_graph_error(ctx, &g, MILK_ERR_INVALID_MODEL,
                       "raw_data has 20 bytes, expected 24 for 6 FLOAT elements");
    /* dims as 32-bit values */
    tag(&t, 1, 5); put(&t, "\x01\x00\x00\x00", 4);
    f_msg(&g, 5, &t);
    expect_graph_error(ctx, &g, MILK_ERR_PARSE,
                       "dims: wire type 32-bit, expected varint or packed");
    /* float_data with 2 values for 3 elements; int32_data for FLOAT */
    f_varint(&t, 1, 3); f_varint(&t, 2, 1); f_str(&t, 8, "f");
    f_float(&t, 4, 1.0f); f_float(&t, 4, 2.0f);
    f_msg(&g, 5, &t);
    expect_graph_error(ctx, &g, MILK_ERR_INVALID_MODEL,
                       "'f': float_data has 2 values, expected 3");
    f_varint(&t, 1, 1); f_varint(&t, 2, 1); f_varint(&t, 5, 1);
    f_msg(&g, 5, &t);
    expect_graph_error(ctx, &g, MILK_ERR_INVALID_MODEL,
                       "int32_data cannot hold FLOAT data");
    f_varint(&t, 1, 1); f_varint(&t, 2, 77); f_str(&t, 8, "u");
    f_msg(&g, 5, &t);
    expect_graph_error(ctx, &g, MILK_ERR_INVALID_MODEL,
                       "data_type = 77 is not an ONNX data type");
    f_varint(&t, 1, 1); f_varint(&t, 2, 1);
    f_msg(&g, 15, &t); /* a sparse_initializer (contents do not matter) */
    expect_graph_error(ctx, &g, MILK_ERR_UNSUPPORTED, "sparse");
}

/* An initializer with external data at location, offset and length
 * (NULL: entry absent). */
static void ext_graph(buf *g, const char *loc, const char *off, const char *len)
{
    buf t = {0}, e = {0};
    f_varint(&t, 1, 4);
    f_varint(&t, 2, 1);
    f_str(&t, 8, "w");
    const char *keys[] = {"location", "offset", "length"};
    const char *vals[] = {loc, off, len};
    for (int i = 0; i < 3; i++) {
        if (!vals[i]) continue;
        f_str(&e, 1, keys[i]);
        f_str(&e, 2, vals[i]);
        f_msg(&t, 13, &e);
    }
    f_varint(&t, 14, 1); /* EXTERNAL */
    f_msg(g, 5, &t);
}

static void test_external(milk_ctx *ctx)
{
    uint8_t data[40];
    for (int i = 0; i < 40; i++) data[i] = (uint8_t)i;
    write_file("w.bin", data, sizeof data);
    buf g = {0};
    ext_graph(&g, "w.bin", "8", "16");
    const char *path = write_model("ext.onnx", &g);
    milk_onnx_model *mo = NULL;
    CHECK_OK(ctx, milk_onnx_load(ctx, path, &mo));
    if (mo) {
        const milk_onnx_tensor *t = &mo->graph.initializers[0];
        uint8_t got[16];
        CHECK(t->external && t->kind == MILK_ONNX_DATA_FILE && t->offset == 8);
        CHECK_OK(ctx, milk_onnx_tensor_read(ctx, t, got));
        CHECK(memcmp(got, data + 8, 16) == 0);
    }
    milk_onnx_free(mo);
    ext_graph(&g, "w.bin", "24", NULL); /* no length: to the end, 16 bytes */
    path = write_model("ext.onnx", &g);
    CHECK_OK(ctx, milk_onnx_load(ctx, path, &mo));
    milk_onnx_free(mo);
    ext_graph(&g, "../w.bin", NULL, NULL);
    expect_graph_error(ctx, &g, MILK_ERR_INVALID_MODEL, "'..' component");
    ext_graph(&g, "/etc/passwd", NULL, NULL);
    expect_graph_error(ctx, &g, MILK_ERR_INVALID_MODEL, "absolute path");
    ext_graph(&g, "w.bin", "32", "16");
    expect_graph_error(ctx, &g, MILK_ERR_INVALID_MODEL,
                       "offset 32 + length 16 runs past the end");
    ext_graph(&g, "w.bin", "18446744073709551615", "16");
    expect_graph_error(ctx, &g, MILK_ERR_INVALID_MODEL, "past the end");
    ext_graph(&g, "w.bin", "8", "18446744073709551615");
    expect_graph_error(ctx, &g, MILK_ERR_INVALID_MODEL, "runs past the end");
    ext_graph(&g, "w.bin", "99999999999999999999", "16");
    expect_graph_error(ctx, &g, MILK_ERR_INVALID_MODEL, "is not a non-negative integer");
    ext_graph(&g, "w.bin", "0", "8");
    expect_graph_error(ctx, &g, MILK_ERR_INVALID_MODEL, "length 8, expected 16");
    ext_graph(&g, "nothere.bin", NULL, NULL);
    expect_graph_error(ctx, &g, MILK_ERR_IO, "cannot open");
    CHECK(symlink("/etc/passwd", path_of("link.bin")) == 0);
    ext_graph(&g, "link.bin", NULL, NULL);
    expect_graph_error(ctx, &g, MILK_ERR_INVALID_MODEL, "outside the model's directory");
    unlink(path_of("link.bin"));
    unlink(path_of("w.bin"));
    unlink(path_of("ext.onnx"));
}

/* More nodes than MILK_ONNX_MAX_COUNT (2^22): refused before any array is
 * allocated for them. */
static void test_huge_count(milk_ctx *ctx)
{
    size_t n = ((size_t)1 << 22) + 1;
    buf g = {0};
    for (size_t i = 0; i < n; i++) put(&g, "\x0a\x00", 2);
    expect_graph_error(ctx, &g, MILK_ERR_UNSUPPORTED, "graph: node: more than");
}

static void test_node_errors(milk_ctx *ctx)
{
    buf g = {0}, n = {0}, a = {0};
    f_str(&n, 3, "n1");
    f_msg(&g, 1, &n); /* no op_type */
    expect_graph_error(ctx, &g, MILK_ERR_INVALID_MODEL,
                       "graph.node[0] 'n1': op_type is missing");
    f_str(&a, 1, "k"); f_varint(&a, 20, 42);
    f_str(&n, 4, "Relu"); f_msg(&n, 5, &a);
    f_msg(&g, 1, &n);
    expect_graph_error(ctx, &g, MILK_ERR_INVALID_MODEL,
                       "graph.node[0] (Relu): attribute[0] 'k': type = 42");
    f_str(&a, 1, "k"); f_float(&a, 8, 1.0f);
    f_str(&n, 4, "Relu"); f_msg(&n, 5, &a);
    f_msg(&g, 1, &n);
    expect_graph_error(ctx, &g, MILK_ERR_PARSE,
                       "attribute[0] 'k': ints: wire type 32-bit, expected varint or packed");
    f_str(&n, 4, "Relu"); f_bytes(&n, 1, "a\0b", 3);
    f_msg(&g, 1, &n);
    expect_graph_error(ctx, &g, MILK_ERR_INVALID_MODEL, "input: string holds a NUL byte");
    /* a graph input whose name holds a NUL (protobuf-c would cut it) */
    f_bytes(&n, 1, "a\0b", 3);
    f_msg(&g, 11, &n);
    expect_graph_error(ctx, &g, MILK_ERR_INVALID_MODEL,
                       "graph.input[0]: name: string holds a NUL byte");
    /* a graph input whose TypeProto is not a message */
    f_str(&n, 1, "x");
    f_bytes(&n, 2, "\x0a\x05", 2);
    f_msg(&g, 11, &n);
    expect_graph_error(ctx, &g, MILK_ERR_PARSE,
                       "graph.input[0] 'x': malformed ValueInfoProto");
}

int main(void)
{
    milk_ctx *ctx;
    snprintf(dir, sizeof dir, "/tmp/milk_onnx_XXXXXX");
    if (!mkdtemp(dir) || milk_ctx_create(&ctx) != MILK_OK) return 1;
    test_good(ctx);
    test_wire_errors(ctx);
    test_tensor_errors(ctx);
    test_external(ctx);
    test_node_errors(ctx);
    test_huge_count(ctx);
    milk_ctx_free(ctx);
    unlink(path_of("good.onnx"));
    unlink(path_of("cut.onnx"));
    unlink(path_of("bad.onnx"));
    rmdir(dir);
    return check_report("test_onnx_read");
}
