/*
 * read_node.c: NodeProto and its AttributeProtos for the ONNX reader.
 *
 * These are walked on the wire like the graph, not unpacked with
 * protobuf-c: an attribute may hold a tensor (a Constant's value, at times
 * a large one) whose raw_data must stay a file range, and subgraphs (If,
 * Loop) whose bytes there is no reason to copy. Each message is read in
 * two passes: one counts the repeated fields so that arrays are allocated
 * once at their size, one fills them.
 */
#include "read.h"

#include <stdio.h>

/* ---- attributes ------------------------------------------------------------ */

static const char *const attr_fields[] = {
    [1] = "name", [2] = "f", [3] = "i", [4] = "s", [5] = "t", [6] = "g",
    [7] = "floats", [8] = "ints", [9] = "strings", [10] = "tensors",
    [11] = "graphs", [13] = "doc_string", [14] = "tp", [15] = "type_protos",
    [20] = "type", [21] = "ref_attr_name", [22] = "sparse_tensor",
    [23] = "sparse_tensors",
};

const char *milk_onnx_attr_type_name(int32_t type)
{
    static const char *const names[] = {
        "UNDEFINED", "FLOAT", "INT", "STRING", "TENSOR", "GRAPH", "FLOATS",
        "INTS", "STRINGS", "TENSORS", "GRAPHS", "SPARSE_TENSOR",
        "SPARSE_TENSORS", "TYPE_PROTO", "TYPE_PROTOS"};
    return type >= 0 && type < (int32_t)MILK_ARRAY_LEN(names) ? names[type] : NULL;
}

/* Values in floats and ints (packed or not), entries of strings and
 * tensors: the sizes of the attribute's arrays. */
static milk_status count_attr(milk_onnx_reader *r, const milk_pb *c,
                              uint64_t *n)
{
    milk_pb it = *c;
    milk_pb_field f;
    uint64_t k;
    memset(n, 0, 11 * sizeof *n);
    for (;;) {
        MILK_TRY(milk_pb_next(r, &it, &f));
        if (f.num == 0) return MILK_OK;
        if (f.num == 7) MILK_TRY(milk_pb_count(r, c, &f, MILK_PB_I32, &k));
        else if (f.num == 8) MILK_TRY(milk_pb_count(r, c, &f, MILK_PB_VARINT, &k));
        else if (f.num == 9 || f.num == 10) k = 1;
        else continue;
        n[f.num] += k;
        if (n[f.num] > MILK_ONNX_MAX_COUNT)
            return milk_errorf(r->ctx, MILK_ERR_UNSUPPORTED,
                               "%s: more than %d entries", attr_fields[f.num],
                               MILK_ONNX_MAX_COUNT);
    }
}

typedef struct attr_fill {
    milk_onnx_attr *a;
    float *floats;
    int64_t *ints;
    const char **strings;
    uint64_t *string_lens;
    milk_onnx_tensor *tensors;
    bool has_f, has_i;
} attr_fill;

static milk_status attr_tensor(milk_onnx_reader *r, const milk_pb_field *f,
                               milk_onnx_tensor *t, const char *field, int i)
{
    milk_status s = milk_onnx_read_tensor(r, f, t);
    if (s == MILK_OK) return s;
    return i < 0 ? milk_error_prefix(r->ctx, "%s", field)
                 : milk_error_prefix(r->ctx, "%s[%d]", field, i);
}

static milk_status attr_repeated(milk_onnx_reader *r, const milk_pb *c,
                                 const milk_pb_field *f, attr_fill *x)
{
    milk_onnx_attr *a = x->a;
    uint64_t v;
    if (f->num == 7) {
        milk_pb_iter it = milk_pb_iter_make(f, MILK_PB_I32);
        while (milk_pb_iter_next(&it, &v)) {
            uint32_t bits = (uint32_t)v;
            memcpy(&x->floats[a->n_floats++], &bits, 4);
        }
        return MILK_OK;
    }
    if (f->num == 8) {
        milk_pb_iter it = milk_pb_iter_make(f, MILK_PB_VARINT);
        while (milk_pb_iter_next(&it, &v)) x->ints[a->n_ints++] = (int64_t)v;
        return MILK_OK;
    }
    if (f->num == 9) {
        int k = a->n_strings++;
        return milk_pb_bytes(r, c, f, &x->strings[k], &x->string_lens[k]);
    }
    MILK_TRY(milk_pb_want(r, c, f, MILK_PB_LEN));
    int k = a->n_tensors++;
    return attr_tensor(r, f, &x->tensors[k], "tensors", k);
}

/* Subgraphs, sparse tensors and type protos: counted, not parsed. */
static milk_status attr_unparsed(milk_onnx_reader *r, const milk_pb *c,
                                 const milk_pb_field *f, milk_onnx_attr *a)
{
    MILK_TRY(milk_pb_want(r, c, f, MILK_PB_LEN));
    if (f->num == 6 || f->num == 11) a->n_graphs++;
    else if (f->num == 22 || f->num == 23) a->n_sparse_tensors++;
    else a->n_type_protos++;
    return MILK_OK;
}

static milk_status attr_field(milk_onnx_reader *r, const milk_pb *c,
                              const milk_pb_field *f, attr_fill *x)
{
    milk_onnx_attr *a = x->a;
    uint64_t v;
    switch (f->num) {
    case 1: return milk_pb_string(r, c, f, &a->name);
    case 2: {
        MILK_TRY(milk_pb_want(r, c, f, MILK_PB_I32));
        uint32_t bits = (uint32_t)f->u;
        memcpy(&a->f, &bits, 4);
        x->has_f = true;
        return MILK_OK;
    }
    case 3:
        MILK_TRY(milk_pb_varint(r, c, f, &v));
        a->i = (int64_t)v;
        x->has_i = true;
        return MILK_OK;
    case 4: return milk_pb_bytes(r, c, f, &a->s, &a->s_len);
    case 5: {
        milk_onnx_tensor *t;
        MILK_TRY(milk_pb_want(r, c, f, MILK_PB_LEN));
        MILK_TRY(milk_onnx_alloc(r, 1, sizeof *t, &t));
        MILK_TRY(attr_tensor(r, f, t, "t", -1));
        a->t = t; /* the last one wins */
        return MILK_OK;
    }
    case 7: case 8: case 9: case 10: return attr_repeated(r, c, f, x);
    case 6: case 11: case 14: case 15: case 22: case 23:
        return attr_unparsed(r, c, f, a);
    case 20:
        MILK_TRY(milk_pb_varint(r, c, f, &v));
        a->type = (int32_t)v;
        return MILK_OK;
    case 21: return milk_pb_string(r, c, f, &a->ref_attr_name);
    default: return MILK_OK;
    }
}

/* IR version 1 files have no type: take it from the field present. */
static int32_t infer_type(const attr_fill *x)
{
    const milk_onnx_attr *a = x->a;
    if (a->n_floats) return MILK_ONNX_ATTR_FLOATS;
    if (a->n_ints) return MILK_ONNX_ATTR_INTS;
    if (a->n_strings) return MILK_ONNX_ATTR_STRINGS;
    if (a->n_tensors) return MILK_ONNX_ATTR_TENSORS;
    if (x->has_f) return MILK_ONNX_ATTR_FLOAT;
    if (x->has_i) return MILK_ONNX_ATTR_INT;
    if (a->s) return MILK_ONNX_ATTR_STRING;
    if (a->t) return MILK_ONNX_ATTR_TENSOR;
    if (a->n_graphs) return MILK_ONNX_ATTR_GRAPH;
    return MILK_ONNX_ATTR_UNDEFINED;
}

static milk_status read_attr(milk_onnx_reader *r, const milk_pb_field *f,
                             milk_onnx_attr *a)
{
    milk_pb c = milk_pb_sub(f, attr_fields, MILK_ARRAY_LEN(attr_fields));
    uint64_t n[11];
    attr_fill x = {a, NULL, NULL, NULL, NULL, NULL, false, false};
    a->name = "";
    MILK_TRY(count_attr(r, &c, n));
    MILK_TRY(milk_onnx_alloc(r, n[7], sizeof *x.floats, &x.floats));
    MILK_TRY(milk_onnx_alloc(r, n[8], sizeof *x.ints, &x.ints));
    MILK_TRY(milk_onnx_alloc(r, n[9], sizeof *x.strings, &x.strings));
    MILK_TRY(milk_onnx_alloc(r, n[9], sizeof *x.string_lens, &x.string_lens));
    MILK_TRY(milk_onnx_alloc(r, n[10], sizeof *x.tensors, &x.tensors));
    a->floats = x.floats;
    a->ints = x.ints;
    a->strings = x.strings;
    a->string_lens = x.string_lens;
    a->tensors = x.tensors;
    milk_pb_field g;
    for (;;) {
        MILK_TRY(milk_pb_next(r, &c, &g));
        if (g.num == 0) break;
        MILK_TRY(attr_field(r, &c, &g, &x));
    }
    if (!*a->name)
        return milk_errorf(r->ctx, MILK_ERR_INVALID_MODEL, "name is missing");
    if (a->type == MILK_ONNX_ATTR_UNDEFINED) a->type = infer_type(&x);
    if (!milk_onnx_attr_type_name(a->type) || a->type == MILK_ONNX_ATTR_UNDEFINED)
        return milk_errorf(r->ctx, MILK_ERR_INVALID_MODEL,
                           "type = %d is not an attribute type", (int)a->type);
    return MILK_OK;
}

/* ---- nodes --------------------------------------------------------------------- */

static const char *const node_fields[] = {
    [1] = "input", [2] = "output", [3] = "name", [4] = "op_type",
    [5] = "attribute", [6] = "doc_string", [7] = "domain",
};

static milk_status node_attr(milk_onnx_reader *r, const milk_pb_field *f,
                             milk_onnx_attr *a, int i)
{
    milk_status s = read_attr(r, f, a);
    if (s == MILK_OK) return s;
    const char *name = milk_pb_peek_string(r, f->data, f->len, 1);
    return name ? milk_error_prefix(r->ctx, "attribute[%d] '%s'", i, name)
                : milk_error_prefix(r->ctx, "attribute[%d]", i);
}

static milk_status node_field(milk_onnx_reader *r, const milk_pb *c,
                              const milk_pb_field *f, milk_onnx_node *n,
                              const char **in, const char **out,
                              milk_onnx_attr *attrs)
{
    switch (f->num) {
    case 1: return milk_pb_string(r, c, f, &in[n->n_inputs++]);
    case 2: return milk_pb_string(r, c, f, &out[n->n_outputs++]);
    case 3: return milk_pb_string(r, c, f, &n->name);
    case 4: return milk_pb_string(r, c, f, &n->op_type);
    case 5: {
        MILK_TRY(milk_pb_want(r, c, f, MILK_PB_LEN));
        int i = n->n_attrs++;
        return node_attr(r, f, &attrs[i], i);
    }
    case 7: return milk_pb_string(r, c, f, &n->domain);
    default: return MILK_OK;
    }
}

milk_status milk_onnx_read_node(milk_onnx_reader *r, const milk_pb_field *f,
                                milk_onnx_node *n)
{
    milk_pb c = milk_pb_sub(f, node_fields, MILK_ARRAY_LEN(node_fields));
    uint64_t cnt[6];
    const char **in, **out;
    milk_onnx_attr *attrs;
    memset(n, 0, sizeof *n);
    n->name = n->op_type = n->domain = "";
    MILK_TRY(milk_pb_tally(r, &c, cnt, 6));
    MILK_TRY(milk_onnx_alloc(r, cnt[1], sizeof *in, &in));
    MILK_TRY(milk_onnx_alloc(r, cnt[2], sizeof *out, &out));
    MILK_TRY(milk_onnx_alloc(r, cnt[5], sizeof *attrs, &attrs));
    n->inputs = in;
    n->outputs = out;
    n->attrs = attrs;
    milk_pb_field g;
    for (;;) {
        MILK_TRY(milk_pb_next(r, &c, &g));
        if (g.num == 0) break;
        MILK_TRY(node_field(r, &c, &g, n, in, out, attrs));
    }
    if (!*n->op_type)
        return milk_errorf(r->ctx, MILK_ERR_INVALID_MODEL, "op_type is missing");
    return MILK_OK;
}

const milk_onnx_attr *milk_onnx_node_attr(const milk_onnx_node *n,
                                          const char *name)
{
    for (int i = 0; i < n->n_attrs; i++)
        if (strcmp(n->attrs[i].name, name) == 0) return &n->attrs[i];
    return NULL;
}
