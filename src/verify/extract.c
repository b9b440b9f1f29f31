/* extract.c: cutting one op, or the ops between two, out of a program
 * into a new standalone program: values read from outside become model
 * inputs of the same names and types, constants are copied, the last
 * op's outputs are the model outputs. The variants (zero bias, 1-D as
 * 2-D) are applied afterwards by variant.c. */
#include "verify.h"

#include <stdlib.h>

static milk_status nomem(milk_ctx *ctx)
{
    return milk_errorf(ctx, MILK_ERR_NOMEM, "out of memory");
}

/* ---- choosing the ops ------------------------------------------------------ */

/* The op called name, or the op producing the var called name. */
static milk_status find_op(milk_ctx *ctx, const milk_function *fn, const char *name,
                           int *index)
{
    const milk_block *b = fn->block;
    const milk_var *v = milk_function_var(fn, name);
    for (int i = 0; i < b->n_ops; i++)
        if (strcmp(b->ops[i]->name, name) == 0 || (v && v->producer == b->ops[i])) {
            if (b->ops[i]->kind == MILK_OP_const_ || milk_op_is_constexpr(b->ops[i]))
                return milk_errorf(ctx, MILK_ERR_INVALID_ARG,
                                   "'%s' is a %s: extract the op that reads it", name,
                                   b->ops[i]->kind == MILK_OP_const_
                                       ? "const" : "compressed weight (constexpr op)");
            if (b->ops[i]->n_blocks)
                return milk_errorf(ctx, MILK_ERR_UNSUPPORTED,
                                   "op '%s' (%s) has nested blocks", name,
                                   milk_ops[b->ops[i]->kind]->name);
            *index = i;
            return MILK_OK;
        }
    if (v && !v->producer)
        return milk_errorf(ctx, MILK_ERR_INVALID_ARG, "'%s' is a model input, not an op",
                           name);
    return milk_errorf(ctx, MILK_ERR_NOT_FOUND,
                       "no op or var called '%s' in function main", name);
}

static void mark_inputs(const milk_op *op, bool *need)
{
    for (int a = 0; a < op->n_args; a++)
        for (int j = 0; j < op->args[a].n; j++)
            if (op->args[a].b[j].var) need[op->args[a].b[j].var->id] = true;
}

static bool any_output(const milk_op *op, const bool *need)
{
    for (int k = 0; k < op->n_outputs; k++)
        if (need[op->outputs[k]->id]) return true;
    return false;
}

/* take[i]: op i is extracted. From `to` backwards to `from`, an op is
 * taken when a taken op reads one of its outputs. */
static milk_status select_range(milk_ctx *ctx, const milk_function *fn, int from,
                                int to, bool *take)
{
    const milk_block *b = fn->block;
    if (from > to)
        return milk_errorf(ctx, MILK_ERR_INVALID_ARG,
                           "first op '%s' comes after last op '%s' in the program",
                           b->ops[from]->name, b->ops[to]->name);
    bool *need = calloc((size_t)fn->n_vars + 1, sizeof *need);
    if (!need) return nomem(ctx);
    take[to] = true;
    mark_inputs(b->ops[to], need);
    for (int i = to - 1; i >= from; i--) {
        const milk_op *op = b->ops[i];
        if (op->kind == MILK_OP_const_ || !any_output(op, need)) continue;
        if (op->n_blocks) {
            free(need);
            return milk_errorf(ctx, MILK_ERR_UNSUPPORTED, "op '%s' (%s) has nested blocks",
                               op->name, milk_ops[op->kind]->name);
        }
        take[i] = true;
        mark_inputs(op, need);
    }
    free(need);
    if (!take[from])
        return milk_errorf(ctx, MILK_ERR_INVALID_ARG, "op '%s' does not depend on op '%s'",
                           b->ops[to]->name, b->ops[from]->name);
    return MILK_OK;
}

static milk_status select_taken(milk_ctx *ctx, const milk_function *fn,
                                const milk_extract_params *p, bool *take, int *last);

/* Compressed weights go with the ops that read them: every constexpr op
 * feeding a taken op, transitively, is taken too. */
static void take_constexprs(const milk_function *fn, bool *take)
{
    const milk_block *b = fn->block;
    for (int i = b->n_ops - 1; i >= 0; i--) {
        const milk_op *op = b->ops[i];
        for (int a = 0; take[i] && a < op->n_args; a++)
            for (int j = 0; j < op->args[a].n; j++) {
                const milk_var *v = op->args[a].b[j].var;
                if (v && v->producer && milk_op_is_constexpr(v->producer))
                    take[milk_block_index_of(b, v->producer)] = true;
            }
    }
}

static milk_status select_ops(milk_ctx *ctx, const milk_function *fn,
                              const milk_extract_params *p, bool *take, int *last)
{
    MILK_TRY(select_taken(ctx, fn, p, take, last));
    take_constexprs(fn, take);
    return MILK_OK;
}

static milk_status select_taken(milk_ctx *ctx, const milk_function *fn,
                                const milk_extract_params *p, bool *take, int *last)
{
    bool one = p->op != NULL, range = p->from || p->to;
    if (one == range || (range && !(p->from && p->to)))
        return milk_errorf(ctx, MILK_ERR_INVALID_ARG,
                           "extract needs one op, or both a first and a last op");
    if (p->op) {
        MILK_TRY(find_op(ctx, fn, p->op, last));
        take[*last] = true;
        return MILK_OK;
    }
    int from;
    MILK_TRY(find_op(ctx, fn, p->from, &from));
    MILK_TRY(find_op(ctx, fn, p->to, last));
    return select_range(ctx, fn, from, *last, take);
}

/* ---- copying values and ops -------------------------------------------------- */

typedef struct cloner {
    milk_ctx *ctx;
    milk_program *q;
    milk_function *f;
    milk_var **map; /* source var id -> var of the new program */
} cloner;

/* The op's name, attributes and outputs (same names and types). */
static milk_status clone_shell(cloner *c, const milk_op *op, milk_op **out)
{
    milk_arena *a = c->q->arena;
    milk_op *n = milk_op_new(a, op->kind, op->name);
    if (!n) return nomem(c->ctx);
    for (int i = 0; i < op->attrs.n; i++) {
        milk_value *val = milk_value_clone(a, op->attrs.a[i].val);
        if (!val) return nomem(c->ctx);
        MILK_TRY(milk_attrs_set(c->ctx, a, &n->attrs, op->attrs.a[i].key, val));
    }
    for (int k = 0; k < op->n_outputs; k++) {
        const milk_var *v = op->outputs[k];
        MILK_TRY(milk_op_add_output(c->ctx, c->f, n, v->name, &v->type, &c->map[v->id]));
    }
    *out = n;
    return MILK_OK;
}

static milk_status clone_const(cloner *c, const milk_op *op)
{
    milk_op *n;
    MILK_TRY(clone_shell(c, op, &n));
    if (op->val && !(n->val = milk_value_clone(c->q->arena, op->val))) return nomem(c->ctx);
    return milk_block_append(c->ctx, c->f->block, n);
}

/* Copy op, with the consts it reads placed just before it. */
static milk_status clone_op(cloner *c, const milk_op *op)
{
    milk_arena *a = c->q->arena;
    for (int i = 0; i < op->n_args; i++)
        for (int j = 0; j < op->args[i].n; j++) {
            const milk_var *v = op->args[i].b[j].var;
            if (v && !c->map[v->id]) MILK_TRY(clone_const(c, v->producer));
        }
    milk_op *n;
    MILK_TRY(clone_shell(c, op, &n));
    for (int i = 0; i < op->n_args; i++)
        for (int j = 0; j < op->args[i].n; j++) {
            const milk_binding *b = &op->args[i].b[j];
            milk_value *val = b->value ? milk_value_clone(a, b->value) : NULL;
            if (b->value && !val) return nomem(c->ctx);
            MILK_TRY(milk_op_bind(c->ctx, a, n, op->args[i].param,
                                  b->var ? c->map[b->var->id] : NULL, val));
        }
    return milk_block_append(c->ctx, c->f->block, n);
}

/* Every non-constant var the taken ops read from outside becomes a model
 * input, in order of first use. */
static milk_status add_inputs(cloner *c, const milk_block *b, const bool *take)
{
    for (int i = 0; i < b->n_ops; i++) {
        const milk_op *op = b->ops[i];
        for (int a = 0; take[i] && a < op->n_args; a++)
            for (int j = 0; j < op->args[a].n; j++) {
                const milk_var *v = op->args[a].b[j].var;
                if (!v || c->map[v->id]) continue;
                const milk_op *p = v->producer;
                if (p && (p->kind == MILK_OP_const_ || take[milk_block_index_of(b, p)]))
                    continue;
                if (v->type.dtype == MILK_DTYPE_STRING || v->type.rank < 0)
                    return milk_errorf(c->ctx, MILK_ERR_UNSUPPORTED,
                                       "op '%s' reads '%s', which cannot be a model input",
                                       op->name, v->name);
                /* a state stays a state: read_state and write_state take it */
                MILK_TRY((v->is_state ? milk_function_add_state : milk_function_add_input)(
                    c->ctx, c->f, v->name, &v->type, &c->map[v->id]));
            }
    }
    return MILK_OK;
}

/* Is v read by a taken op, or a model output of the source? */
static bool read_by_taken(const milk_block *b, const bool *take, const milk_var *v,
                          bool *model_output)
{
    *model_output = false;
    for (int i = 0; i < b->n_outputs; i++) *model_output |= b->outputs[i] == v;
    for (int i = 0; i < b->n_ops; i++) {
        const milk_op *op = b->ops[i];
        for (int a = 0; take[i] && a < op->n_args; a++)
            for (int j = 0; j < op->args[a].n; j++)
                if (op->args[a].b[j].var == v) return true;
    }
    return false;
}

/* The model outputs: the outputs of op `last`, or (last < 0) every output
 * of a taken op that no taken op reads, and every model output of the
 * source that a taken op computes, in program order. */
static milk_status add_outputs(cloner *c, const milk_block *b, const bool *take, int last)
{
    for (int i = last >= 0 ? last : 0; i < b->n_ops; i++) {
        const milk_op *op = b->ops[i];
        for (int k = 0; take[i] && k < op->n_outputs; k++) {
            bool model_output, read = read_by_taken(b, take, op->outputs[k], &model_output);
            if (last < 0 && read && !model_output) continue;
            MILK_TRY(milk_block_add_output(c->ctx, c->f->block, c->map[op->outputs[k]->id]));
        }
        if (last >= 0) break;
    }
    return MILK_OK;
}

static milk_status copy_ops(cloner *c, const milk_function *fn, const bool *take,
                            int last)
{
    const milk_block *b = fn->block;
    MILK_TRY(add_inputs(c, b, take));
    for (int i = 0; i < b->n_ops; i++)
        if (take[i]) MILK_TRY(clone_op(c, b->ops[i]));
    return add_outputs(c, b, take, last);
}

/* ---- the new program ---------------------------------------------------------- */

/* Say where the program came from: it travels with bug reports. */
static milk_status describe(milk_ctx *ctx, milk_program *q,
                            const milk_extract_params *p, int n_ops)
{
    static const char *const variants[] = {"", ", variant zero-bias", ", variant lift-1d"};
    char d[1024];
    if (p->op)
        snprintf(d, sizeof d, "milk extract: op '%s'%s", p->op, variants[p->variant]);
    else
        snprintf(d, sizeof d, "milk extract: %d ops from '%s' to '%s'%s", n_ops, p->from,
                 p->to, variants[p->variant]);
    return milk_program_set_metadata(ctx, q, "shortDescription", d);
}

static milk_status new_program(milk_ctx *ctx, const milk_program *p,
                               const milk_function *fn, milk_program **q,
                               milk_function **f)
{
    MILK_TRY(milk_program_create(ctx, p->target, q));
    MILK_TRY(milk_program_add_function(ctx, *q, "main", f));
    (*f)->opset = fn->opset; /* the source's opset, whatever the target says */
    (*f)->opset_name = milk_arena_strdup((*q)->arena, fn->opset_name);
    return (*f)->opset_name ? MILK_OK : nomem(ctx);
}

static milk_status extract(milk_ctx *ctx, const milk_function *fn,
                           const milk_extract_params *params, bool *take,
                           milk_program *q, milk_function *f)
{
    int last = -1, n = 0;
    MILK_TRY(select_ops(ctx, fn, params, take, &last));
    cloner c = {ctx, q, f, calloc((size_t)fn->n_vars + 1, sizeof(milk_var *))};
    if (!c.map) return nomem(ctx);
    milk_status s = copy_ops(&c, fn, take, last);
    free(c.map);
    for (int i = 0; i < fn->block->n_ops; i++) n += take[i];
    if (s == MILK_OK) s = describe(ctx, q, params, n);
    if (s == MILK_OK && params->variant != MILK_EXTRACT_PLAIN)
        s = vf_variant_apply(ctx, f, params->variant);
    return s;
}

milk_status vf_extract_set(milk_ctx *ctx, const milk_program *p, const milk_function *fn,
                           const bool *take_ops, const char *description, milk_program **out)
{
    *out = NULL;
    for (int i = 0; i < fn->block->n_ops; i++) {
        const milk_op *op = fn->block->ops[i];
        if (take_ops[i] && (op->kind == MILK_OP_const_ || milk_op_is_constexpr(op) || op->n_blocks))
            return milk_errorf(ctx, MILK_ERR_INVALID_ARG, "op '%s' (%s) cannot be taken: %s",
                               op->name, milk_ops[op->kind]->name,
                               op->n_blocks ? "it has nested blocks"
                                            : "a constant goes with its readers");
    }
    bool *take = malloc(((size_t)fn->block->n_ops + 1) * sizeof *take);
    if (!take) return nomem(ctx);
    milk_copy(take, take_ops, (size_t)fn->block->n_ops * sizeof *take);
    take_constexprs(fn, take);
    milk_program *q = NULL;
    milk_function *f = NULL;
    milk_status s = new_program(ctx, p, fn, &q, &f);
    cloner c = {ctx, q, f, calloc((size_t)fn->n_vars + 1, sizeof(milk_var *))};
    if (s == MILK_OK && !c.map) s = nomem(ctx);
    if (s == MILK_OK) s = copy_ops(&c, fn, take, -1);
    free(c.map);
    free(take);
    if (s == MILK_OK && description)
        s = milk_program_set_metadata(ctx, q, "shortDescription", description);
    if (s == MILK_OK) s = milk_program_check(ctx, q);
    if (s != MILK_OK) {
        milk_program_free(q);
        return s;
    }
    *out = q;
    return MILK_OK;
}

milk_status milk_program_extract(milk_ctx *ctx, const milk_program *p,
                                 const milk_extract_params *params,
                                 milk_program **out)
{
    *out = NULL;
    const char *name = params->function ? params->function
                                        : milk_program_default_function(p);
    const milk_function *fn = milk_program_function(p, name);
    if (!fn) return milk_function_not_found(ctx, p, name);
    if ((unsigned)params->variant > MILK_EXTRACT_LIFT_1D)
        return milk_errorf(ctx, MILK_ERR_INVALID_ARG, "unknown variant %d",
                           (int)params->variant);
    milk_program *q = NULL;
    milk_function *f = NULL;
    bool *take = calloc((size_t)fn->block->n_ops + 1, sizeof *take);
    milk_status s = take ? new_program(ctx, p, fn, &q, &f) : nomem(ctx);
    if (s == MILK_OK) s = extract(ctx, fn, params, take, q, f);
    if (s == MILK_OK) s = milk_program_check(ctx, q);
    free(take);
    if (s != MILK_OK) {
        milk_program_free(q);
        return s;
    }
    *out = q;
    return MILK_OK;
}
