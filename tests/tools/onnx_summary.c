/*
 * onnx_summary.c: prints what milk's ONNX reader made of .onnx files, for
 * tests/test_onnx_read.py to compare with Python's onnx package.
 *
 *   onnx_summary FILE...
 *
 * For each file, one line of JSON on stdout: the opsets, the graph's
 * inputs, outputs and value_info with their shapes, the nodes with op
 * types, inputs, outputs and attributes, and the initializers with dtype,
 * dims, where their data lies and the CRC-32 of their bytes as read back
 * through milk_onnx_tensor_read(). A file that fails to load gives
 * {"file": ..., "error": ...} and its message on stderr; the exit status is
 * 1 if any file failed. Floats are printed as their IEEE bit patterns and
 * byte strings in hex, so that the comparison is exact; other strings are
 * JSON with each byte >= 0x80 escaped as \u00XX (read them back as
 * latin-1 to get the bytes).
 */
#include "milk.h"
#include "onnx/onnx.h"

#include <stdio.h>
#include <stdlib.h>
#include <zlib.h>

static void put_str_n(const char *s, size_t n)
{
    putchar('"');
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '"' || c == '\\') printf("\\%c", c);
        else if (c < 0x20 || c >= 0x80) printf("\\u%04x", c);
        else putchar(c);
    }
    putchar('"');
}

static void put_str(const char *s)
{
    put_str_n(s, strlen(s));
}

static void put_hex(const char *s, uint64_t n)
{
    putchar('"');
    for (uint64_t i = 0; i < n; i++) printf("%02x", (unsigned char)s[i]);
    putchar('"');
}

static unsigned long float_bits(float f)
{
    uint32_t b;
    memcpy(&b, &f, 4);
    return b;
}

static const char *value_kind(milk_onnx_value_kind k)
{
    static const char *const names[] = {"none", "tensor", "sequence", "map",
                                        "optional", "sparse_tensor", "opaque"};
    return names[k];
}

static void put_value_info(const milk_onnx_value_info *v)
{
    printf("{\"name\":");
    put_str(v->name);
    printf(",\"kind\":\"%s\",\"elem\":%d,\"rank\":%d,\"dims\":[",
           value_kind(v->kind), (int)v->elem_type, v->rank);
    for (int i = 0; i < v->rank; i++) {
        if (i) putchar(',');
        if (v->dims[i].param) put_str(v->dims[i].param);
        else if (v->dims[i].value >= 0) printf("%lld", (long long)v->dims[i].value);
        else printf("null");
    }
    printf("]}");
}

/* CRC-32 of the tensor's bytes read through the API; -1 if reading fails
 * (the error goes to stderr). */
static long long tensor_crc(milk_ctx *ctx, const milk_onnx_tensor *t)
{
    void *buf = malloc(t->nbytes ? (size_t)t->nbytes : 1);
    if (!buf) return -1;
    long long crc = -1;
    if (milk_onnx_tensor_read(ctx, t, buf) == MILK_OK) {
        uLong c = crc32(0L, Z_NULL, 0);
        for (uint64_t off = 0; off < t->nbytes; off += 1u << 30) {
            uint64_t n = t->nbytes - off < (1u << 30) ? t->nbytes - off : (1u << 30);
            c = crc32(c, (const Bytef *)buf + off, (uInt)n);
        }
        crc = (long long)c;
    } else {
        fprintf(stderr, "onnx_summary: %s\n", milk_ctx_error(ctx));
    }
    free(buf);
    return crc;
}

static void put_tensor(milk_ctx *ctx, const milk_onnx_tensor *t)
{
    printf("{\"name\":");
    put_str(t->name);
    printf(",\"dtype\":%d,\"dims\":[", (int)t->dtype);
    for (int i = 0; i < t->rank; i++) printf("%s%lld", i ? "," : "", (long long)t->dims[i]);
    printf("],\"count\":%lld", (long long)t->count);
    if (t->dtype == MILK_ONNX_STRING) {
        printf(",\"strings\":[");
        for (int64_t i = 0; i < t->count; i++) {
            if (i) putchar(',');
            put_hex(t->strings[i], t->string_lens[i]);
        }
        printf("]}");
        return;
    }
    printf(",\"nbytes\":%llu,\"crc\":%lld", (unsigned long long)t->nbytes,
           tensor_crc(ctx, t));
    if (t->kind == MILK_ONNX_DATA_FILE) {
        printf(",\"path\":");
        put_str(t->path);
        printf(",\"offset\":%llu,\"external\":%s", (unsigned long long)t->offset,
               t->external ? "true" : "false");
    }
    putchar('}');
}

static void put_attr_value(milk_ctx *ctx, const milk_onnx_attr *a)
{
    switch (a->type) {
    case MILK_ONNX_ATTR_FLOAT: printf(",\"f\":%lu", float_bits(a->f)); break;
    case MILK_ONNX_ATTR_INT: printf(",\"i\":%lld", (long long)a->i); break;
    case MILK_ONNX_ATTR_STRING:
        printf(",\"s\":");
        put_hex(a->s ? a->s : "", a->s ? a->s_len : 0);
        break;
    case MILK_ONNX_ATTR_TENSOR:
        printf(",\"t\":");
        if (a->t) put_tensor(ctx, a->t);
        else printf("null");
        break;
    case MILK_ONNX_ATTR_FLOATS:
        printf(",\"floats\":[");
        for (int i = 0; i < a->n_floats; i++) printf("%s%lu", i ? "," : "", float_bits(a->floats[i]));
        putchar(']');
        break;
    case MILK_ONNX_ATTR_INTS:
        printf(",\"ints\":[");
        for (int i = 0; i < a->n_ints; i++) printf("%s%lld", i ? "," : "", (long long)a->ints[i]);
        putchar(']');
        break;
    case MILK_ONNX_ATTR_STRINGS:
        printf(",\"strings\":[");
        for (int i = 0; i < a->n_strings; i++) {
            if (i) putchar(',');
            put_hex(a->strings[i], a->string_lens[i]);
        }
        putchar(']');
        break;
    case MILK_ONNX_ATTR_TENSORS:
        printf(",\"tensors\":[");
        for (int i = 0; i < a->n_tensors; i++) {
            if (i) putchar(',');
            put_tensor(ctx, &a->tensors[i]);
        }
        putchar(']');
        break;
    default: break;
    }
    printf(",\"graphs\":%d,\"sparse\":%d,\"tps\":%d}", a->n_graphs,
           a->n_sparse_tensors, a->n_type_protos);
}

static void put_names(const char *key, const char *const *v, int n)
{
    printf(",\"%s\":[", key);
    for (int i = 0; i < n; i++) {
        if (i) putchar(',');
        put_str(v[i]);
    }
    putchar(']');
}

static void put_node(milk_ctx *ctx, const milk_onnx_node *n)
{
    printf("{\"name\":");
    put_str(n->name);
    printf(",\"op\":");
    put_str(n->op_type);
    printf(",\"domain\":");
    put_str(n->domain);
    put_names("inputs", n->inputs, n->n_inputs);
    put_names("outputs", n->outputs, n->n_outputs);
    printf(",\"attrs\":[");
    for (int i = 0; i < n->n_attrs; i++) {
        const milk_onnx_attr *a = &n->attrs[i];
        printf("%s{\"name\":", i ? "," : "");
        put_str(a->name);
        printf(",\"type\":%d", (int)a->type);
        put_attr_value(ctx, a);
    }
    printf("]}");
}

static void put_value_infos(const char *key, const milk_onnx_value_info *v,
                            int n)
{
    printf(",\"%s\":[", key);
    for (int i = 0; i < n; i++) {
        if (i) putchar(',');
        put_value_info(&v[i]);
    }
    putchar(']');
}

static void put_model(milk_ctx *ctx, const milk_onnx_model *m)
{
    const milk_onnx_graph *g = &m->graph;
    printf(",\"ir_version\":%lld,\"producer\":[", (long long)m->ir_version);
    put_str(m->producer_name);
    putchar(',');
    put_str(m->producer_version);
    printf("],\"default_opset\":%lld,\"opsets\":[", (long long)milk_onnx_opset(m, ""));
    for (int i = 0; i < m->n_opsets; i++) {
        printf("%s[", i ? "," : "");
        put_str(m->opsets[i].domain);
        printf(",%lld]", (long long)m->opsets[i].version);
    }
    printf("],\"graph\":");
    put_str(g->name);
    put_value_infos("inputs", g->inputs, g->n_inputs);
    put_value_infos("outputs", g->outputs, g->n_outputs);
    put_value_infos("value_info", g->value_info, g->n_value_info);
    printf(",\"nodes\":[");
    for (int i = 0; i < g->n_nodes; i++) {
        if (i) putchar(',');
        put_node(ctx, &g->nodes[i]);
    }
    printf("],\"initializers\":[");
    for (int i = 0; i < g->n_initializers; i++) {
        if (i) putchar(',');
        put_tensor(ctx, &g->initializers[i]);
    }
    putchar(']');
}

int main(int argc, char **argv)
{
    milk_ctx *ctx;
    int failed = 0;
    if (argc < 2) {
        fprintf(stderr, "usage: onnx_summary FILE...\n");
        return 2;
    }
    if (milk_ctx_create(&ctx) != MILK_OK) return 2;
    for (int i = 1; i < argc; i++) {
        milk_onnx_model *m;
        printf("{\"file\":");
        put_str(argv[i]);
        milk_status s = milk_onnx_load(ctx, argv[i], &m);
        if (s == MILK_OK) {
            put_model(ctx, m);
            milk_onnx_free(m);
        } else {
            failed = 1;
            fprintf(stderr, "onnx_summary: %s: %s\n", milk_status_str(s),
                    milk_ctx_error(ctx));
            printf(",\"status\":\"%s\",\"error\":", milk_status_str(s));
            put_str(milk_ctx_error(ctx));
        }
        printf("}\n");
        fflush(stdout);
    }
    milk_ctx_free(ctx);
    return failed;
}
