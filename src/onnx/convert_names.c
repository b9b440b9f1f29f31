/* convert_names.c: how the converter names MIL vars: coremltools'
 * sanitizing rule (docs/coreml-format.md section 6), the reservation of a
 * name for every ONNX tensor before lowering starts, fresh names for helper
 * ops, and the string map both use. */
#include "convert.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>

/* ---- string map ------------------------------------------------------------ */

static uint64_t hash_str(const char *s)
{
    uint64_t h = UINT64_C(1469598103934665603); /* FNV-1a */
    for (; *s; s++) h = (h ^ (unsigned char)*s) * UINT64_C(1099511628211);
    return h;
}

static bool strmap_grow(milk_strmap *m)
{
    int cap = m->cap ? m->cap * 2 : 64;
    const char **keys = calloc((size_t)cap, sizeof *keys);
    int *vals = calloc((size_t)cap, sizeof *vals);
    if (!keys || !vals) {
        free(keys);
        free(vals);
        return false;
    }
    for (int i = 0; i < m->cap; i++) {
        if (!m->keys[i]) continue;
        size_t j = hash_str(m->keys[i]) & (size_t)(cap - 1);
        while (keys[j]) j = (j + 1) & (size_t)(cap - 1);
        keys[j] = m->keys[i];
        vals[j] = m->vals[i];
    }
    free(m->keys);
    free(m->vals);
    m->keys = keys;
    m->vals = vals;
    m->cap = cap;
    return true;
}

/* The slot holding key, or the empty slot where it would go. */
static size_t strmap_slot(const milk_strmap *m, const char *key)
{
    size_t j = hash_str(key) & (size_t)(m->cap - 1);
    while (m->keys[j] && strcmp(m->keys[j], key) != 0)
        j = (j + 1) & (size_t)(m->cap - 1);
    return j;
}

bool milk_strmap_put(milk_strmap *m, const char *key, int val)
{
    if (2 * (m->n + 1) > m->cap && !strmap_grow(m)) return false;
    size_t j = strmap_slot(m, key);
    if (!m->keys[j]) m->n++;
    m->keys[j] = key;
    m->vals[j] = val;
    return true;
}

int milk_strmap_get(const milk_strmap *m, const char *key)
{
    if (!m->cap) return -1;
    size_t j = strmap_slot(m, key);
    return m->keys[j] ? m->vals[j] : -1;
}

void milk_strmap_free(milk_strmap *m)
{
    free(m->keys);
    free(m->vals);
    memset(m, 0, sizeof *m);
}

/* ---- sanitizing -------------------------------------------------------------- */

size_t milk_mil_name(const char *name, char *buf, size_t cap)
{
    return milk_name_sanitize(name, "var_", buf, cap);
}

/* ---- reserving names for ONNX tensors ------------------------------------------ */

/* An arena copy of base, or of base_<k> for the first k that is free. */
static const char *free_name(milk_cv *c, const char *base)
{
    size_t len = strlen(base) + 24;
    char *buf = milk_arena_alloc(c->a, len);
    if (!buf) return NULL;
    snprintf(buf, len, "%s", base);
    for (int k = 0; milk_strmap_get(&c->taken, buf) >= 0; k++)
        snprintf(buf, len, "%s_%d", base, k);
    return buf;
}

/* An entry for ONNX tensor `onnx` with its MIL name; a name seen before
 * (a graph input that is also an initializer, as IR version 3 lists them)
 * keeps its first entry. */
static milk_status add_value(milk_cv *c, const char *onnx)
{
    if (!onnx[0] || milk_strmap_get(&c->by_onnx, onnx) >= 0) return MILK_OK;
    size_t need = milk_mil_name(onnx, NULL, 0) + 1;
    char *base = milk_arena_alloc(c->a, need);
    if (!base) return milk_errorf(c->ctx, MILK_ERR_NOMEM, "out of memory");
    milk_mil_name(onnx, base, need);
    const char *mil = free_name(c, base);
    if (!mil || !milk_arena_grow(c->a, (void **)&c->values, c->n_values,
                                 &c->cap_values, sizeof *c->values))
        return milk_errorf(c->ctx, MILK_ERR_NOMEM, "out of memory");
    int i = c->n_values++;
    c->values[i] = (milk_cv_value){.onnx = onnx, .mil = mil};
    if (!milk_strmap_put(&c->by_onnx, onnx, i) ||
        !milk_strmap_put(&c->taken, mil, i))
        return milk_errorf(c->ctx, MILK_ERR_NOMEM, "out of memory");
    return MILK_OK;
}

milk_status milk_cv_names_assign(milk_cv *c)
{
    const milk_onnx_graph *g = &c->m->graph;
    for (int i = 0; i < g->n_inputs; i++) MILK_TRY(add_value(c, g->inputs[i].name));
    for (int i = 0; i < g->n_initializers; i++)
        MILK_TRY(add_value(c, g->initializers[i].name));
    for (int i = 0; i < g->n_nodes; i++)
        for (int k = 0; k < g->nodes[i].n_outputs; k++)
            MILK_TRY(add_value(c, g->nodes[i].outputs[k]));
    return MILK_OK;
}

milk_cv_value *milk_cv_value_get(milk_cv *c, const char *onnx)
{
    int i = milk_strmap_get(&c->by_onnx, onnx);
    return i >= 0 ? &c->values[i] : NULL;
}

const char *milk_cv_out(milk_cv *c, int i)
{
    /* an omitted output still needs a name for the op computing it */
    if (i >= c->node->n_outputs || !c->node->outputs[i][0]) return milk_cv_tmp(c, "out");
    milk_cv_value *v = milk_cv_value_get(c, c->node->outputs[i]);
    return v ? v->mil : milk_cv_tmp(c, "out");
}

const char *milk_cv_tmp(milk_cv *c, const char *what)
{
    const char *base = c->node && c->node->n_outputs && c->node->outputs[0][0]
                           ? milk_cv_out(c, 0)
                           : "tmp";
    return base ? milk_cv_tmp_for(c, base, what) : NULL;
}

const char *milk_cv_tmp_for(milk_cv *c, const char *base, const char *what)
{
    size_t len = strlen(base) + strlen(what) + 2;
    char *buf = milk_arena_alloc(c->a, len);
    if (!buf) return NULL;
    snprintf(buf, len, "%s_%s", base, what);
    const char *name = free_name(c, buf);
    /* a value >= 0, so that free_name sees the name as taken */
    if (name && !milk_strmap_put(&c->taken, name, INT_MAX)) return NULL;
    return name;
}
