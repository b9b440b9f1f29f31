/* convert_keep.c: mixed precision in the converter: the ops that the
 * names of milk_convert_params.keep_fp32 designate. The driver records,
 * node by node, the ops each lowering emitted (milk_cv_origin_record). A
 * name designates ONNX nodes: by node name, by one of a node's output
 * tensors, or by the MIL var of any op a node emitted; and a node means
 * every op its lowering emitted, because keeping half of a lowering in
 * fp32 (the matmul of a Gemm but not its bias add) would not keep the
 * node's value in fp32. */
#include "convert.h"

#include <stdio.h>
#include <stdlib.h>

milk_status milk_cv_origin_record(milk_cv *c, int from, int node)
{
    for (int i = from; i < c->b->n_ops; i++) {
        milk_op *op = c->b->ops[i];
        if (op->kind == MILK_OP_const_) continue;
        if (!milk_arena_grow(c->a, (void **)&c->origins, c->n_origins, &c->cap_origins,
                             sizeof *c->origins))
            return milk_errorf(c->ctx, MILK_ERR_NOMEM, "out of memory");
        c->origins[c->n_origins++] = (milk_cv_origin){op, node};
    }
    return MILK_OK;
}

/* ---- the set being built -------------------------------------------------------- */

typedef struct keep_set {
    milk_op **ops;
    int n, cap;
    bool *node_done; /* by node index */
} keep_set;

static milk_status set_add(milk_cv *c, keep_set *ks, milk_op *op)
{
    for (int i = 0; i < ks->n; i++)
        if (ks->ops[i] == op) return MILK_OK;
    if (ks->n == ks->cap) {
        int cap = ks->cap ? 2 * ks->cap : 16;
        milk_op **o = realloc(ks->ops, (size_t)cap * sizeof *o);
        if (!o) return milk_errorf(c->ctx, MILK_ERR_NOMEM, "out of memory");
        ks->ops = o;
        ks->cap = cap;
    }
    ks->ops[ks->n++] = op;
    return MILK_OK;
}

/* Every op node `node` emitted. */
static milk_status add_node(milk_cv *c, keep_set *ks, int node)
{
    if (ks->node_done[node]) return MILK_OK;
    ks->node_done[node] = true;
    for (int i = 0; i < c->n_origins; i++)
        if (c->origins[i].node == node) MILK_TRY(set_add(c, ks, c->origins[i].op));
    return MILK_OK;
}

/* The node that emitted op, or the op alone if no node did. */
static milk_status add_op(milk_cv *c, keep_set *ks, milk_op *op)
{
    for (int i = 0; i < c->n_origins; i++)
        if (c->origins[i].op == op) return add_node(c, ks, c->origins[i].node);
    return set_add(c, ks, op);
}

/* ---- one name -------------------------------------------------------------------- */

/* What a name turned out to be, for the error message. */
typedef enum found {
    FOUND_NOTHING = 0,
    FOUND_OPS,
    FOUND_CONSTANT, /* a constant or a model input: nothing computes it */
} found;

/* The op computing var (NULL for model inputs and constants). */
static milk_op *computing_op(const milk_var *v)
{
    if (!v || !v->producer || v->producer->kind == MILK_OP_const_) return NULL;
    return v->producer;
}

static milk_status by_var(milk_cv *c, keep_set *ks, const milk_var *v, found *f)
{
    milk_op *op = computing_op(v);
    if (!v) return MILK_OK;
    if (!op) {
        if (*f == FOUND_NOTHING) *f = FOUND_CONSTANT;
        return MILK_OK;
    }
    *f = FOUND_OPS;
    return add_op(c, ks, op);
}

static bool emitted_ops(const milk_cv *c, int node)
{
    for (int i = 0; i < c->n_origins; i++)
        if (c->origins[i].node == node) return true;
    return false;
}

/* A node by name. A node that emitted nothing (an Identity, a folded
 * node) is kept through the ops computing its outputs. */
static milk_status by_node(milk_cv *c, keep_set *ks, int node, found *f)
{
    const milk_onnx_node *n = &c->m->graph.nodes[node];
    if (emitted_ops(c, node)) {
        *f = FOUND_OPS;
        return add_node(c, ks, node);
    }
    for (int k = 0; k < n->n_outputs; k++) {
        milk_cv_value *v = n->outputs[k][0] ? milk_cv_value_get(c, n->outputs[k]) : NULL;
        if (v) MILK_TRY(by_var(c, ks, v->var, f));
    }
    if (*f == FOUND_NOTHING) *f = FOUND_CONSTANT;
    return MILK_OK;
}

static milk_status resolve_one(milk_cv *c, keep_set *ks, const char *name, found *f)
{
    const milk_onnx_graph *g = &c->m->graph;
    *f = FOUND_NOTHING;
    for (int i = 0; i < g->n_nodes; i++)
        if (g->nodes[i].name[0] && strcmp(g->nodes[i].name, name) == 0)
            MILK_TRY(by_node(c, ks, i, f));
    milk_cv_value *v = milk_cv_value_get(c, name);
    if (v) {
        if (v->var) MILK_TRY(by_var(c, ks, v->var, f));
        else if (*f == FOUND_NOTHING) *f = FOUND_CONSTANT;
    }
    return by_var(c, ks, milk_function_var(c->fn, name), f);
}

/* ---- all names -------------------------------------------------------------------- */

static void note_name(char *buf, size_t cap, int *count, const char *name)
{
    size_t k = strlen(buf);
    if (k + 8 < cap)
        snprintf(buf + k, cap - k, "%s'%s'", *count ? ", " : "", name);
    (*count)++;
}

milk_status milk_cv_keep_resolve(milk_cv *c, const char *const *names, int n,
                                 milk_op ***out, int *n_out)
{
    keep_set ks = {NULL, 0, 0, calloc((size_t)c->m->graph.n_nodes + 1, sizeof(bool))};
    char unknown[1024] = "", constant[1024] = "";
    int n_unknown = 0, n_constant = 0;
    milk_status s = ks.node_done ? MILK_OK : milk_errorf(c->ctx, MILK_ERR_NOMEM, "out of memory");
    for (int i = 0; s == MILK_OK && i < n; i++) {
        found f;
        s = resolve_one(c, &ks, names[i], &f);
        if (f == FOUND_NOTHING) note_name(unknown, sizeof unknown, &n_unknown, names[i]);
        if (f == FOUND_CONSTANT) note_name(constant, sizeof constant, &n_constant, names[i]);
    }
    free(ks.node_done);
    if (s == MILK_OK && (n_unknown || n_constant))
        s = milk_errorf(c->ctx, MILK_ERR_NOT_FOUND, "%s: --keep-fp32: %s%s%s%s%s",
                        c->file,
                        n_unknown ? "no ONNX node, ONNX tensor or MIL var is named " : "",
                        unknown, n_unknown && n_constant ? "; " : "",
                        n_constant ? "not computed by an op (a model input or a "
                                     "constant): " : "",
                        constant);
    if (s != MILK_OK) {
        free(ks.ops);
        return s;
    }
    *out = ks.ops;
    *n_out = ks.n;
    return MILK_OK;
}
