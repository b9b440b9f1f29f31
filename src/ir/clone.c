/* clone.c: copying functions between programs (multifunction packages).
 *
 * milk_program_add_function_from() copies one function of a program into
 * another, nested blocks, attributes and constants included, as
 * coremltools' save_multifunction does: a constant equal by content to
 * one the destination already holds shares its data, so the saved
 * package stores it once (the writer writes a blob once per data source).
 * Large data is never copied: file-backed constants keep pointing at their
 * file, borrowed ones at the caller's memory. */
#include "ir.h"
#include "../ops/op.h"

#include <stdio.h>
#include <stdlib.h>

static milk_status nomem(milk_ctx *ctx)
{
    return milk_errorf(ctx, MILK_ERR_NOMEM, "out of memory");
}

/* ---- values -------------------------------------------------------------------- */

static bool clone_data(milk_arena *a, milk_value *c, const milk_value *v)
{
    if (v->data.kind == MILK_DATA_FILE)
        return (c->data.path = milk_arena_strdup(a, v->data.path)) != NULL;
    if (v->data.kind != MILK_DATA_INLINE || !v->data.ptr) return true;
    if (v->type.dtype == MILK_DTYPE_STRING) {
        int64_t n = milk_tensor_type_count(&v->type);
        const char *const *src = v->data.ptr;
        const char **s = milk_arena_alloc(a, (size_t)(n > 0 ? n : 1) * sizeof *s);
        for (int64_t i = 0; s && i < n; i++)
            if (!(s[i] = milk_arena_strdup(a, src[i]))) return false;
        c->data.ptr = s;
        return s != NULL;
    }
    uint64_t nb;
    if (!milk_value_nbytes(v, &nb) || nb > SIZE_MAX) return false;
    c->data.ptr = milk_arena_memdup(a, v->data.ptr, nb ? (size_t)nb : 1);
    return c->data.ptr != NULL;
}

milk_value *milk_value_clone(milk_arena *a, const milk_value *v)
{
    milk_value *c = milk_arena_alloc(a, sizeof *c);
    if (!c) return NULL;
    *c = *v;
    if (v->kind == MILK_VALUE_TENSOR && !clone_data(a, c, v)) return NULL;
    if (v->n > 0) {
        c->items = milk_arena_alloc(a, (size_t)v->n * sizeof *c->items);
        if (!c->items) return NULL;
        for (int i = 0; i < v->n; i++)
            if (!(c->items[i] = milk_value_clone(a, v->items[i]))) return NULL;
    }
    return c;
}

/* ---- constants equal by content ----------------------------------------------- */

/* Constants smaller than this stay inline in the protobuf anyway. */
#define SHARE_MIN 10
/* Up to this many bytes two candidates are compared byte for byte; above
 * it (weights of hundreds of MB), by two independent 64-bit hashes of
 * their bytes, FNV-1a and a multiply-rotate one. */
#define EXACT_MAX ((uint64_t)64 << 20)

typedef struct known {
    const milk_value *v;
    bool hashed;
    uint64_t h[2];
} known;

typedef struct sharer {
    milk_ctx *ctx;
    int n, cap;
    known *k;
} sharer;

static milk_status hash_sink(void *user, const void *bytes, size_t n)
{
    uint64_t *h = user;
    const unsigned char *p = bytes;
    for (size_t i = 0; i < n; i++) {
        h[0] = (h[0] ^ p[i]) * 1099511628211ull;
        h[1] = ((h[1] + p[i]) * 0x9e3779b97f4a7c15ull) ^ (h[1] >> 29);
    }
    return MILK_OK;
}

static milk_status hash_of(sharer *s, known *k)
{
    if (k->hashed) return MILK_OK;
    k->h[0] = 1469598103934665603ull;
    k->h[1] = 0x243f6a8885a308d3ull;
    MILK_TRY(milk_value_stream(s->ctx, k->v, (size_t)1 << 20, hash_sink, k->h));
    k->hashed = true;
    return MILK_OK;
}

static bool shareable(const milk_value *v)
{
    int64_t n = milk_tensor_type_count(&v->type);
    return v->kind == MILK_VALUE_TENSOR && v->type.dtype != MILK_DTYPE_STRING &&
           n >= SHARE_MIN;
}

static bool same_type(const milk_tensor_type *a, const milk_tensor_type *b)
{
    if (a->dtype != b->dtype || a->rank != b->rank) return false;
    for (int i = 0; i < a->rank; i++)
        if (a->dims[i] != b->dims[i]) return false;
    return true;
}

/* Byte for byte, for values of at most EXACT_MAX bytes. */
static milk_status same_bytes(milk_ctx *ctx, const milk_value *a,
                              const milk_value *b, uint64_t nb, bool *same)
{
    void *x = malloc(nb ? (size_t)nb : 1), *y = malloc(nb ? (size_t)nb : 1);
    milk_status s = x && y ? MILK_OK : nomem(ctx);
    if (s == MILK_OK) s = milk_value_read(ctx, a, x);
    if (s == MILK_OK) s = milk_value_read(ctx, b, y);
    *same = s == MILK_OK && memcmp(x, y, (size_t)nb) == 0;
    free(x);
    free(y);
    return s;
}

static milk_status remember(sharer *s, const milk_value *v)
{
    if (s->n == s->cap) {
        int cap = s->cap ? 2 * s->cap : 64;
        known *k = realloc(s->k, (size_t)cap * sizeof *k);
        if (!k) return nomem(s->ctx);
        s->k = k;
        s->cap = cap;
    }
    s->k[s->n++] = (known){v, false, {0, 0}};
    return MILK_OK;
}

/* The value a new constant should use: an earlier one equal by content,
 * or v itself (then remembered). */
static milk_status share(sharer *s, milk_value *v, milk_value **out)
{
    *out = v;
    if (!shareable(v)) return MILK_OK;
    known mine = {v, false, {0, 0}};
    uint64_t nb = 0;
    milk_value_nbytes(v, &nb);
    for (int i = 0; i < s->n; i++) {
        known *k = &s->k[i];
        if (!same_type(&k->v->type, &v->type)) continue;
        MILK_TRY(hash_of(s, &mine));
        MILK_TRY(hash_of(s, k));
        if (k->h[0] != mine.h[0] || k->h[1] != mine.h[1]) continue;
        bool same = true;
        if (nb <= EXACT_MAX) MILK_TRY(same_bytes(s->ctx, k->v, v, nb, &same));
        if (!same) continue;
        *out = (milk_value *)k->v;
        return MILK_OK;
    }
    MILK_TRY(remember(s, v));
    s->k[s->n - 1] = mine;
    return MILK_OK;
}

/* Every shareable constant of b and its nested blocks. */
static milk_status collect(sharer *s, const milk_block *b)
{
    for (int i = 0; i < b->n_ops; i++) {
        const milk_op *op = b->ops[i];
        if (op->val && shareable(op->val)) MILK_TRY(remember(s, op->val));
        for (int j = 0; j < op->n_blocks; j++) MILK_TRY(collect(s, op->blocks[j]));
    }
    return MILK_OK;
}

/* ---- functions ----------------------------------------------------------------- */

typedef struct cloner {
    milk_ctx *ctx;
    milk_program *p;
    milk_function *f;
    milk_var **map; /* source var id -> var of the copy */
    sharer *sh;
} cloner;

static milk_status clone_attrs(cloner *c, const milk_attrs *from, milk_attrs *to)
{
    for (int i = 0; i < from->n; i++) {
        milk_value *v = milk_value_clone(c->p->arena, from->a[i].val);
        if (!v) return nomem(c->ctx);
        MILK_TRY(milk_attrs_set(c->ctx, c->p->arena, to, from->a[i].key, v));
    }
    return MILK_OK;
}

static milk_status clone_block(cloner *c, const milk_block *from, milk_block *to);

static milk_status clone_op(cloner *c, const milk_op *op, milk_block *to)
{
    milk_arena *a = c->p->arena;
    milk_op *n = milk_op_new(a, op->kind, op->name);
    if (!n) return nomem(c->ctx);
    MILK_TRY(clone_attrs(c, &op->attrs, &n->attrs));
    if (op->val) {
        milk_value *v = milk_value_clone(a, op->val);
        if (!v) return nomem(c->ctx);
        MILK_TRY(share(c->sh, v, &n->val));
    }
    for (int i = 0; i < op->n_args; i++)
        for (int j = 0; j < op->args[i].n; j++) {
            const milk_binding *b = &op->args[i].b[j];
            milk_value *v = b->value ? milk_value_clone(a, b->value) : NULL;
            if (b->value && !v) return nomem(c->ctx);
            MILK_TRY(milk_op_bind(c->ctx, a, n, op->args[i].param,
                                  b->var ? c->map[b->var->id] : NULL, v));
        }
    for (int i = 0; i < op->n_blocks; i++) {
        milk_block *nb = milk_block_new(c->f, n);
        if (!nb || !milk_arena_grow(a, (void **)&n->blocks, n->n_blocks,
                                    &n->cap_blocks, sizeof *n->blocks))
            return nomem(c->ctx);
        n->blocks[n->n_blocks++] = nb;
        MILK_TRY(clone_block(c, op->blocks[i], nb));
    }
    for (int k = 0; k < op->n_outputs; k++) {
        const milk_var *v = op->outputs[k];
        MILK_TRY(milk_op_add_output(c->ctx, c->f, n, v->name, &v->type, &c->map[v->id]));
    }
    return milk_block_append(c->ctx, to, n);
}

static milk_status clone_block(cloner *c, const milk_block *from, milk_block *to)
{
    milk_arena *a = c->p->arena;
    for (int i = 0; i < from->n_inputs; i++) {
        const milk_var *v = from->inputs[i];
        milk_var *nv;
        MILK_TRY(milk_var_new(c->ctx, c->f, v->name, &v->type, &nv));
        if (!milk_arena_grow(a, (void **)&to->inputs, to->n_inputs, &to->cap_inputs,
                             sizeof *to->inputs))
            return nomem(c->ctx);
        to->inputs[to->n_inputs++] = c->map[v->id] = nv;
    }
    for (int i = 0; i < from->n_ops; i++) MILK_TRY(clone_op(c, from->ops[i], to));
    for (int i = 0; i < from->n_outputs; i++)
        MILK_TRY(milk_block_add_output(c->ctx, to, c->map[from->outputs[i]->id]));
    return clone_attrs(c, &from->attrs, &to->attrs);
}

/* ---- recorded descriptions -------------------------------------------------- */

static bool copy_features(milk_arena *a, const milk_feature *from, int n,
                          milk_feature **out)
{
    *out = milk_arena_alloc(a, (size_t)(n + 1) * sizeof **out);
    if (!*out) return false;
    for (int i = 0; i < n; i++) {
        milk_feature *f = &(*out)[i];
        *f = from[i];
        if (!(f->name = milk_arena_strdup(a, from[i].name))) return false;
        if (from[i].short_description &&
            !(f->short_description = milk_arena_strdup(a, from[i].short_description)))
            return false;
        if (from[i].n_ranges &&
            !(f->ranges = milk_arena_memdup(a, from[i].ranges,
                                            (size_t)from[i].n_ranges * sizeof *f->ranges)))
            return false;
        if (from[i].n_enum &&
            !(f->enum_shapes = milk_arena_memdup(a, from[i].enum_shapes,
                                                 (size_t)from[i].n_enum * (size_t)from[i].rank *
                                                     sizeof *f->enum_shapes)))
            return false;
    }
    return true;
}

/* Add a description entry for function `name` of p. */
static milk_status add_fn_features(milk_ctx *ctx, milk_program *p, const char *name,
                                   const milk_feature *in, int n_in,
                                   const milk_feature *out, int n_out)
{
    milk_fn_features *ff = milk_arena_alloc(p->arena, (size_t)(p->n_fn_features + 1) * sizeof *ff);
    if (!ff) return nomem(ctx);
    if (p->n_fn_features) memcpy(ff, p->fn_features, (size_t)p->n_fn_features * sizeof *ff);
    milk_fn_features *e = &ff[p->n_fn_features];
    memset(e, 0, sizeof *e);
    if (!(e->function = milk_arena_strdup(p->arena, name)) ||
        !copy_features(p->arena, in, n_in, &e->in) ||
        !copy_features(p->arena, out, n_out, &e->out))
        return nomem(ctx);
    e->n_in = n_in;
    e->n_out = n_out;
    p->fn_features = ff;
    p->n_fn_features++;
    return MILK_OK;
}

/* With more than one function, p's top-level description of main becomes
 * main's entry among the function descriptions. */
static milk_status split_description(milk_ctx *ctx, milk_program *p)
{
    if (!p->has_features || p->n_fn_features) return MILK_OK;
    if (milk_program_function(p, "main"))
        MILK_TRY(add_fn_features(ctx, p, "main", p->in_features, p->n_in_features,
                                 p->out_features, p->n_out_features));
    p->has_features = false;
    p->n_in_features = p->n_out_features = p->n_state_features = 0;
    return MILK_OK;
}

/* The recorded description of g (flexible shapes, image inputs), for
 * function `name` of p: the top-level one for a program holding just
 * main, else an entry among the function descriptions. */
static milk_status copy_description(milk_ctx *ctx, milk_program *p,
                                    const milk_program *src,
                                    const milk_function *g, const char *name)
{
    const milk_feature *in, *out;
    int n_in, n_out;
    if (!milk_program_fn_features(src, g, &in, &n_in, &out, &n_out)) return MILK_OK;
    if (p->n_functions > 1 || p->n_fn_features || strcmp(name, "main") != 0)
        return add_fn_features(ctx, p, name, in, n_in, out, n_out);
    if (!copy_features(p->arena, in, n_in, &p->in_features) ||
        !copy_features(p->arena, out, n_out, &p->out_features))
        return nomem(ctx);
    p->n_in_features = n_in;
    p->n_out_features = n_out;
    p->has_features = true;
    return MILK_OK;
}

/* Every state of g declared elsewhere in p has the same type there. */
static milk_status states_agree(milk_ctx *ctx, const milk_program *p,
                                const milk_function *g, const char *name)
{
    for (int i = 0; i < g->n_inputs; i++) {
        const milk_var *v = g->inputs[i];
        for (int j = 0; v->is_state && j < p->n_functions; j++) {
            const milk_var *w = milk_function_var(p->functions[j], v->name);
            if (!w || !w->is_state || same_type(&w->type, &v->type)) continue;
            return milk_errorf(ctx, MILK_ERR_INVALID_ARG,
                               "function '%s': state '%s' has another shape or "
                               "dtype in function '%s': functions share states "
                               "by name, so their types must agree",
                               name, v->name, p->functions[j]->name);
        }
    }
    return MILK_OK;
}

milk_status milk_program_add_function_from(milk_ctx *ctx, milk_program *p,
                                           const char *name,
                                           const milk_program *src,
                                           const char *src_function)
{
    const char *from = src_function ? src_function : milk_program_default_function(src);
    const milk_function *g = milk_program_function(src, from);
    if (!g) return milk_function_not_found(ctx, src, from);
    if (g->opset > p->target)
        return milk_errorf(ctx, MILK_ERR_INVALID_ARG,
                           "function '%s' has opset %s, newer than the "
                           "program's deployment target %s",
                           from, milk_target_name(g->opset), milk_target_name(p->target));
    if (milk_program_function(p, name))
        return milk_errorf(ctx, MILK_ERR_INVALID_ARG,
                           "function '%s' already exists", name);
    MILK_TRY(states_agree(ctx, p, g, name));
    sharer sh = {ctx, 0, 0, NULL};
    milk_status s = MILK_OK;
    for (int i = 0; s == MILK_OK && i < p->n_functions; i++)
        s = collect(&sh, p->functions[i]->block);
    milk_function *f = NULL;
    if (s == MILK_OK) s = split_description(ctx, p);
    if (s == MILK_OK) s = milk_program_add_function(ctx, p, name, &f);
    cloner c = {ctx, p, f, calloc((size_t)g->n_vars + 1, sizeof(milk_var *)), &sh};
    if (s == MILK_OK && !c.map) s = nomem(ctx);
    if (s == MILK_OK) {
        f->opset = g->opset;
        f->opset_name = milk_arena_strdup(p->arena, g->opset_name ? g->opset_name
                                                    : milk_opset_proto_name(g->opset));
        if (!f->opset_name) s = nomem(ctx);
    }
    for (int i = 0; s == MILK_OK && i < g->n_inputs; i++) {
        const milk_var *v = g->inputs[i];
        s = (v->is_state ? milk_function_add_state : milk_function_add_input)(
            ctx, f, v->name, &v->type, &c.map[v->id]);
    }
    if (s == MILK_OK) s = clone_attrs(&c, &g->attrs, &f->attrs);
    if (s == MILK_OK) s = clone_block(&c, g->block, f->block);
    if (s == MILK_OK) s = copy_description(ctx, p, src, g, name);
    free(c.map);
    free(sh.k);
    if (s != MILK_OK) milk_error_prefix(ctx, "function '%s' from '%s'", name, from);
    return s;
}
