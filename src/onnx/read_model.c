/*
 * read_model.c: milk_onnx_load: the .onnx file mapped read-only, its
 * ModelProto and main GraphProto walked on the wire (read.h says why), the
 * items handed to read_node.c, read_tensor.c and read_value.c, and each
 * error prefixed with where it happened:
 *   model.onnx: graph.initializer[3] 'conv.weight': dims[1] = -4
 * When loading ends the mapping is gone: every string and small array is
 * in the model's arena, every weight a file range.
 */
#include "read.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---- graph ----------------------------------------------------------------- */

static const char *const graph_fields[] = {
    [1] = "node", [2] = "name", [5] = "initializer", [10] = "doc_string",
    [11] = "input", [12] = "output", [13] = "value_info",
    [14] = "quantization_annotation", [15] = "sparse_initializer",
};

/* Arrays of the graph being filled; the counts are in the graph itself. */
typedef struct graph_fill {
    milk_onnx_graph *g;
    milk_onnx_node *nodes;
    milk_onnx_tensor *inits;
    milk_onnx_value_info *vi[3]; /* input, output, value_info */
} graph_fill;

static milk_status read_graph_node(milk_onnx_reader *r,
                                   const milk_pb_field *f, graph_fill *x)
{
    int i = x->g->n_nodes++;
    if (milk_onnx_read_node(r, f, &x->nodes[i]) == MILK_OK) return MILK_OK;
    const char *name = milk_pb_peek_string(r, f->data, f->len, 3);
    const char *op = milk_pb_peek_string(r, f->data, f->len, 4);
    return milk_error_prefix(r->ctx, "graph.node[%d]%s%s%s%s%s%s", i,
                             name ? " '" : "", name ? name : "", name ? "'" : "",
                             op ? " (" : "", op ? op : "", op ? ")" : "");
}

static milk_status read_graph_init(milk_onnx_reader *r,
                                   const milk_pb_field *f, graph_fill *x)
{
    int i = x->g->n_initializers++;
    milk_onnx_tensor *t = &x->inits[i];
    milk_status s = milk_onnx_read_tensor(r, f, t);
    if (s == MILK_OK && !*t->name)
        s = milk_errorf(r->ctx, MILK_ERR_INVALID_MODEL, "name is missing");
    if (s == MILK_OK) return s;
    const char *name = milk_pb_peek_string(r, f->data, f->len, 8);
    return name ? milk_error_prefix(r->ctx, "graph.initializer[%d] '%s'", i, name)
                : milk_error_prefix(r->ctx, "graph.initializer[%d]", i);
}

static milk_status read_graph_vi(milk_onnx_reader *r, const milk_pb_field *f,
                                 graph_fill *x)
{
    static const char *const what[] = {"input", "output", "value_info"};
    int k = (int)f->num - 11;
    int *n = k == 0 ? &x->g->n_inputs : k == 1 ? &x->g->n_outputs
                                               : &x->g->n_value_info;
    int i = (*n)++;
    if (milk_onnx_read_value_info(r, f, &x->vi[k][i]) == MILK_OK) return MILK_OK;
    const char *name = milk_pb_peek_string(r, f->data, f->len, 1);
    return name ? milk_error_prefix(r->ctx, "graph.%s[%d] '%s'", what[k], i, name)
                : milk_error_prefix(r->ctx, "graph.%s[%d]", what[k], i);
}

static milk_status graph_field(milk_onnx_reader *r, const milk_pb *c,
                               const milk_pb_field *f, graph_fill *x)
{
    if (f->num == 2) {
        milk_status s = milk_pb_string(r, c, f, &x->g->name);
        return s == MILK_OK ? s : milk_error_prefix(r->ctx, "graph");
    }
    if (f->num != 1 && f->num != 5 && (f->num < 11 || f->num > 13))
        return MILK_OK; /* doc_string, annotations, metadata, unknown */
    if (milk_pb_want(r, c, f, MILK_PB_LEN) != MILK_OK)
        return milk_error_prefix(r->ctx, "graph");
    if (f->num == 1) return read_graph_node(r, f, x);
    if (f->num == 5) return read_graph_init(r, f, x);
    return read_graph_vi(r, f, x);
}

static milk_status alloc_graph(milk_onnx_reader *r, const uint64_t *n,
                               graph_fill *x)
{
    MILK_TRY(milk_onnx_alloc(r, n[1], sizeof *x->nodes, &x->nodes));
    MILK_TRY(milk_onnx_alloc(r, n[5], sizeof *x->inits, &x->inits));
    for (int k = 0; k < 3; k++)
        MILK_TRY(milk_onnx_alloc(r, n[11 + k], sizeof *x->vi[k], &x->vi[k]));
    x->g->nodes = x->nodes;
    x->g->initializers = x->inits;
    x->g->inputs = x->vi[0];
    x->g->outputs = x->vi[1];
    x->g->value_info = x->vi[2];
    return MILK_OK;
}

static milk_status read_graph(milk_onnx_reader *r, const milk_pb_field *f,
                              milk_onnx_graph *g)
{
    milk_pb c = milk_pb_sub(f, graph_fields, MILK_ARRAY_LEN(graph_fields));
    uint64_t n[16];
    graph_fill x = {g, NULL, NULL, {NULL, NULL, NULL}};
    g->name = "";
    if (milk_pb_tally(r, &c, n, 16) != MILK_OK)
        return milk_error_prefix(r->ctx, "graph");
    if (n[15])
        return milk_errorf(r->ctx, MILK_ERR_UNSUPPORTED,
                           "graph.sparse_initializer: sparse tensors are not "
                           "supported");
    MILK_TRY(alloc_graph(r, n, &x));
    milk_pb_field h;
    for (;;) {
        if (milk_pb_next(r, &c, &h) != MILK_OK)
            return milk_error_prefix(r->ctx, "graph");
        if (h.num == 0) return MILK_OK;
        MILK_TRY(graph_field(r, &c, &h, &x));
    }
}

/* ---- model ------------------------------------------------------------------ */

static const char *const model_fields[] = {
    [1] = "ir_version", [2] = "producer_name", [3] = "producer_version",
    [4] = "domain", [5] = "model_version", [6] = "doc_string", [7] = "graph",
    [8] = "opset_import", [14] = "metadata_props", [20] = "training_info",
    [25] = "functions",
};

/* A StringStringEntryProto (key = 1, value = 2). */
static milk_status read_kv(milk_onnx_reader *r, const milk_pb_field *f,
                           milk_kv *kv)
{
    static const char *const names[] = {[1] = "key", [2] = "value"};
    milk_pb c = milk_pb_sub(f, names, MILK_ARRAY_LEN(names));
    milk_pb_field g;
    kv->key = kv->value = "";
    for (;;) {
        MILK_TRY(milk_pb_next(r, &c, &g));
        if (g.num == 0) return MILK_OK;
        if (g.num == 1) MILK_TRY(milk_pb_string(r, &c, &g, &kv->key));
        if (g.num == 2) MILK_TRY(milk_pb_string(r, &c, &g, &kv->value));
    }
}

static milk_status model_item(milk_onnx_reader *r, const milk_pb *c,
                              const milk_pb_field *f, milk_onnx_model *m,
                              milk_onnx_opset_import *opsets, milk_kv *meta)
{
    MILK_TRY(milk_pb_want(r, c, f, MILK_PB_LEN));
    if (f->num == 7) return read_graph(r, f, &m->graph);
    if (f->num == 8) {
        int i = m->n_opsets++;
        if (milk_onnx_read_opset(r, f, &opsets[i]) == MILK_OK) return MILK_OK;
        return milk_error_prefix(r->ctx, "opset_import[%d]", i);
    }
    int i = m->n_metadata++;
    if (read_kv(r, f, &meta[i]) == MILK_OK) return MILK_OK;
    return milk_error_prefix(r->ctx, "metadata_props[%d]", i);
}

static milk_status model_field(milk_onnx_reader *r, const milk_pb *c,
                               const milk_pb_field *f, milk_onnx_model *m,
                               milk_onnx_opset_import *opsets, milk_kv *meta)
{
    uint64_t v;
    switch (f->num) {
    case 1:
        MILK_TRY(milk_pb_varint(r, c, f, &v));
        m->ir_version = (int64_t)v;
        return MILK_OK;
    case 2: return milk_pb_string(r, c, f, &m->producer_name);
    case 3: return milk_pb_string(r, c, f, &m->producer_version);
    case 4: return milk_pb_string(r, c, f, &m->domain);
    case 5:
        MILK_TRY(milk_pb_varint(r, c, f, &v));
        m->model_version = (int64_t)v;
        return MILK_OK;
    case 7: case 8: case 14: return model_item(r, c, f, m, opsets, meta);
    default: return MILK_OK; /* doc_string, training_info, functions, ... */
    }
}

static milk_status read_model(milk_onnx_reader *r, milk_onnx_model *m)
{
    milk_pb c = milk_pb_make(r->base, r->size, model_fields,
                             MILK_ARRAY_LEN(model_fields));
    uint64_t n[15];
    milk_onnx_opset_import *opsets;
    milk_kv *meta;
    m->producer_name = m->producer_version = m->domain = "";
    MILK_TRY(milk_pb_tally(r, &c, n, 15));
    if (n[7] == 0)
        return milk_errorf(r->ctx, MILK_ERR_INVALID_MODEL, "graph is missing");
    if (n[7] > 1)
        return milk_errorf(r->ctx, MILK_ERR_UNSUPPORTED,
                           "graph: given %llu times (merging is not supported)",
                           (unsigned long long)n[7]);
    MILK_TRY(milk_onnx_alloc(r, n[8], sizeof *opsets, &opsets));
    MILK_TRY(milk_onnx_alloc(r, n[14], sizeof *meta, &meta));
    m->opsets = opsets;
    m->metadata = meta;
    milk_pb_field f;
    for (;;) {
        MILK_TRY(milk_pb_next(r, &c, &f));
        if (f.num == 0) return MILK_OK;
        MILK_TRY(model_field(r, &c, &f, m, opsets, meta));
    }
}

/* ---- files ------------------------------------------------------------------- */

/* The directory of path as given (not following a symlink at path itself,
 * as onnx.load does), absolute with symlinks resolved. */
static milk_status model_dir(milk_onnx_reader *r, const char *path,
                             const char **out)
{
    const char *slash = strrchr(path, '/');
    char *dir = slash ? milk_arena_strndup(r->arena, path,
                                           slash == path ? 1 : (size_t)(slash - path))
                      : milk_arena_strdup(r->arena, ".");
    if (!dir) return milk_errorf(r->ctx, MILK_ERR_NOMEM, "out of memory");
    char *real = realpath(dir, NULL);
    if (!real)
        return milk_errorf(r->ctx, MILK_ERR_IO, "%s: cannot resolve: %s", dir,
                           strerror(errno));
    *out = milk_arena_strdup(r->arena, real);
    free(real);
    return *out ? MILK_OK : milk_errorf(r->ctx, MILK_ERR_NOMEM, "out of memory");
}

static milk_status open_model(milk_onnx_reader *r, const char *path, int *fd)
{
    struct stat st;
    /* O_NONBLOCK: opening a FIFO must not hang; fstat then refuses it. */
    *fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    if (*fd < 0)
        return milk_errorf(r->ctx, MILK_ERR_IO, "cannot open: %s", strerror(errno));
    if (fstat(*fd, &st) != 0 || !S_ISREG(st.st_mode))
        return milk_errorf(r->ctx, MILK_ERR_IO, "not a regular file");
    r->size = (uint64_t)st.st_size;
    char *real = realpath(path, NULL);
    if (!real) return milk_errorf(r->ctx, MILK_ERR_IO, "cannot resolve: %s", strerror(errno));
    r->real_path = milk_arena_strdup(r->arena, real);
    free(real);
    if (!r->real_path) return milk_errorf(r->ctx, MILK_ERR_NOMEM, "out of memory");
    if (r->size == 0)
        return milk_errorf(r->ctx, MILK_ERR_INVALID_MODEL, "empty file (0 bytes): "
                           "an ONNX model is a serialized ModelProto");
    if (r->size > SIZE_MAX) return milk_errorf(r->ctx, MILK_ERR_IO, "file too large");
    void *p = mmap(NULL, (size_t)r->size, PROT_READ, MAP_PRIVATE, *fd, 0);
    if (p == MAP_FAILED)
        return milk_errorf(r->ctx, MILK_ERR_IO, "cannot map: %s", strerror(errno));
    r->base = p;
    return MILK_OK;
}

static milk_status load(milk_onnx_reader *r, const char *path,
                        milk_onnx_model *m)
{
    int fd = -1;
    milk_status s = open_model(r, path, &fd);
    if (s == MILK_OK) s = model_dir(r, path, &r->dir);
    if (s == MILK_OK) {
        m->path = milk_arena_strdup(r->arena, path);
        m->dir = r->dir;
        s = m->path ? read_model(r, m) : milk_errorf(r->ctx, MILK_ERR_NOMEM, "out of memory");
    }
    if (r->base) munmap((void *)r->base, (size_t)r->size);
    if (fd >= 0) close(fd);
    return s;
}

milk_status milk_onnx_load(milk_ctx *ctx, const char *path,
                           milk_onnx_model **out)
{
    if (!out) return milk_errorf(ctx, MILK_ERR_INVALID_ARG, "milk_onnx_load: out is NULL");
    *out = NULL;
    /* Errors travel up with milk_error_prefix(), which needs a context. */
    if (!ctx || !path) return MILK_ERR_INVALID_ARG;
    milk_arena *a = milk_arena_create();
    milk_onnx_model *m = a ? milk_arena_alloc(a, sizeof *m) : NULL;
    if (!m) {
        milk_arena_free(a);
        return milk_errorf(ctx, MILK_ERR_NOMEM, "out of memory");
    }
    m->arena = a;
    milk_onnx_reader r = {0};
    r.ctx = ctx;
    r.arena = a;
    milk_status s = load(&r, path, m);
    if (s != MILK_OK) {
        milk_arena_free(a);
        return milk_error_prefix(ctx, "%s", path);
    }
    *out = m;
    return MILK_OK;
}

void milk_onnx_free(milk_onnx_model *m)
{
    if (m) milk_arena_free(m->arena);
}

/* ---- lookups --------------------------------------------------------------------- */

static bool default_domain(const char *d)
{
    return !*d || strcmp(d, "ai.onnx") == 0;
}

int64_t milk_onnx_opset(const milk_onnx_model *m, const char *domain)
{
    for (int i = 0; i < m->n_opsets; i++) {
        const char *d = m->opsets[i].domain;
        if (strcmp(d, domain) == 0 || (default_domain(d) && default_domain(domain)))
            return m->opsets[i].version;
    }
    return 0;
}

const milk_onnx_tensor *milk_onnx_graph_initializer(const milk_onnx_graph *g,
                                                    const char *name)
{
    for (int i = 0; i < g->n_initializers; i++)
        if (strcmp(g->initializers[i].name, name) == 0) return &g->initializers[i];
    return NULL;
}
