/* boundary.c: milk_pass_io_boundary, a function's inputs and outputs as
 * Core ML model I/O can be: float, float16 or int32 arrays of rank 1 or
 * more. An int64 input or output becomes int32, a bool one is declared
 * int32 with a cast inside, a rank-0 one is declared [1] with a squeeze
 * (input) or an expand_dims (output) inside; names stay, and the model
 * description recorded for main follows. The converter runs it on every
 * program it makes; the io-types rule of `milk lint --fix` on programs
 * read from a package. */
#include "passes.h"
#include "../ops/op.h"

#include <stdio.h>
#include <stdlib.h>

/* ArrayFeatureType.ArrayDataType code of INT32. */
#define ARRAY_INT32 131104

typedef struct boundary {
    milk_ctx *ctx;
    milk_program *p;
    milk_function *fn;
    const milk_io_params *params; /* never NULL */
    milk_io_report *report;       /* may be NULL */
    const char **names;           /* what each output is to be called */
    bool retyped;                 /* an input changed dtype with no cast */
} boundary;

static milk_status nomem(boundary *bd)
{
    return milk_errorf(bd->ctx, MILK_ERR_NOMEM, "out of memory");
}

unsigned milk_io_kinds(const milk_tensor_type *t)
{
    return (t->dtype == MILK_DTYPE_INT64 ? MILK_IO_INT64 : 0u) |
           (t->dtype == MILK_DTYPE_BOOL ? MILK_IO_BOOL : 0u) |
           (t->rank == 0 ? MILK_IO_SCALAR : 0u);
}

static milk_status record(boundary *bd, const milk_io_change *ch)
{
    milk_io_report *r = bd->report;
    if (!r) return MILK_OK;
    if (!milk_arena_grow(bd->p->arena, (void **)&r->changes, r->n, &r->cap,
                         sizeof *r->changes))
        return nomem(bd);
    r->changes[r->n++] = *ch;
    return MILK_OK;
}

/* ---- making ops ---------------------------------------------------------------- */

/* A const named after its op and param ("x_scalar_axes"), at *at. */
static milk_status param_const(boundary *bd, int *at, const char *op_name,
                               const char *param, const milk_tensor_type *t,
                               const void *data, milk_var **out)
{
    char base[300], name[320];
    snprintf(base, sizeof base, "%s_%s", op_name, param);
    milk_function_fresh_name(bd->fn, base, name, sizeof name);
    milk_value *v = milk_value_new_tensor(bd->p->arena, t, data);
    if (!v) return nomem(bd);
    return milk_block_insert_const(bd->ctx, bd->fn->block, (*at)++, name, v, out);
}

/* op_name = type(x=x, param=its const) at *at (consts just before it): a
 * squeeze or expand_dims on axis 0, or a cast to dtype `to`. *out is its
 * output, after the caller's op_added hook had its say. */
static milk_status add_op(boundary *bd, const milk_io_change *ch, int *at,
                          const char *type, const char *op_name, milk_var *x,
                          milk_dtype to, milk_var **out)
{
    milk_var *k;
    bool cast = strcmp(type, "cast") == 0;
    if (cast) {
        const char *dt = milk_dtype_name(to);
        milk_tensor_type st = {MILK_DTYPE_STRING, 0, {0}};
        MILK_TRY(param_const(bd, at, op_name, "dtype", &st, &dt, &k));
    } else {
        int32_t zero = 0;
        milk_tensor_type at1 = {MILK_DTYPE_INT32, 1, {1}};
        MILK_TRY(param_const(bd, at, op_name, "axes", &at1, &zero, &k));
    }
    milk_input in[] = {{"x", x}, {cast ? "dtype" : "axes", k}};
    milk_op *op;
    MILK_TRY(milk_block_insert_op(bd->ctx, bd->fn->block, (*at)++, type, op_name, in,
                                  2, &op));
    *out = op->outputs[0];
    if (bd->params->op_added) MILK_TRY(bd->params->op_added(bd->params->user, ch, op));
    return MILK_OK;
}

/* A fresh name "<base>_<what>" for a helper op (arena). */
static const char *fresh(boundary *bd, const char *base, const char *what)
{
    char want[300], name[320];
    snprintf(want, sizeof want, "%s_%s", base, what);
    milk_function_fresh_name(bd->fn, want, name, sizeof name);
    return milk_arena_strdup(bd->p->arena, name);
}

/* ---- the model description --------------------------------------------------- */

/* main's recorded description entry for v takes v's type. */
static void update_feature(boundary *bd, const milk_var *v)
{
    milk_program *p = bd->p;
    if (!p->has_features || strcmp(bd->fn->name, "main") != 0) return;
    for (int k = 0; k < 2; k++) {
        milk_feature *fs = k ? p->out_features : p->in_features;
        int n = k ? p->n_out_features : p->n_in_features;
        for (int i = 0; i < n; i++) {
            if (strcmp(fs[i].name, v->name) != 0 || fs[i].kind != MILK_FEATURE_ARRAY)
                continue;
            fs[i].rank = v->type.rank;
            memcpy(fs[i].shape, v->type.dims, sizeof fs[i].shape);
            if (v->type.dtype == MILK_DTYPE_INT32) fs[i].array_dtype = ARRAY_INT32;
        }
    }
}

/* ---- inputs ------------------------------------------------------------------ */

/* Bind x of op (its first binding) to v. */
static void rebind_x(milk_op *op, milk_var *v)
{
    for (int a = 0; a < op->n_args; a++)
        if (strcmp(op->args[a].param, "x") == 0) op->args[a].b[0].var = v;
}

/* Input i is declared int32 of rank >= 1; a squeeze and a cast at *at
 * give its readers what they read before. */
static milk_status fix_input(boundary *bd, int i, int *at)
{
    milk_var *v = bd->fn->inputs[i], *cur = v;
    milk_io_change ch = {.output = false, .index = i, .name = v->name,
                         .kinds = milk_io_kinds(&v->type), .was = v->type};
    milk_op *first = NULL;
    if (ch.kinds & (MILK_IO_INT64 | MILK_IO_BOOL)) v->type.dtype = MILK_DTYPE_INT32;
    if (ch.kinds & MILK_IO_SCALAR) {
        v->type.rank = 1;
        v->type.dims[0] = 1;
        const char *name = fresh(bd, v->name, "scalar");
        if (!name) return nomem(bd);
        MILK_TRY(add_op(bd, &ch, at, "squeeze", name, cur, 0, &cur));
        first = cur->producer;
    }
    if (ch.kinds & MILK_IO_BOOL) {
        const char *name = fresh(bd, v->name, "bool");
        if (!name) return nomem(bd);
        MILK_TRY(add_op(bd, &ch, at, "cast", name, cur, MILK_DTYPE_BOOL, &cur));
        if (!first) first = cur->producer;
    }
    if (first) {
        /* every reader (block outputs too) now reads cur; the first new
         * op reads the input itself */
        milk_function_replace_uses(bd->fn, v, cur);
        rebind_x(first, v);
    }
    /* no cast gives int64 back (no MIL op computes on it) */
    if (ch.kinds & MILK_IO_INT64) bd->retyped = true;
    ch.now = v->type;
    ch.inner = cur;
    update_feature(bd, v);
    return record(bd, &ch);
}

/* After int64 inputs became int32: every op of the block, in order. */
static milk_status reinfer_all(boundary *bd)
{
    milk_block *b = bd->fn->block;
    for (int i = 0; i < b->n_ops; i++)
        if (b->ops[i]->kind != MILK_OP_const_) MILK_TRY(milk_op_reinfer(bd->ctx, b->ops[i]));
    return MILK_OK;
}

/* ---- outputs ------------------------------------------------------------------- */

static bool is_output(const milk_function *f, const milk_var *v)
{
    for (int i = 0; i < f->block->n_outputs; i++)
        if (f->block->outputs[i] == v) return true;
    return false;
}

/* The name output i's last op is to take: names[i], after moving the var
 * holding it (o, or a helper var) to a fresh one; a fresh name instead
 * when an input or another output holds it. */
static milk_status claim(boundary *bd, int i, const milk_var *o, const char **name)
{
    milk_var *holder = milk_function_var(bd->fn, bd->names[i]);
    *name = bd->names[i];
    if (!holder) return MILK_OK;
    bool keep = !holder->producer || (holder != o && is_output(bd->fn, holder));
    const char *other = fresh(bd, bd->names[i], keep ? "output" : "value");
    if (!other) return nomem(bd);
    if (keep) {
        *name = other;
        return MILK_OK;
    }
    MILK_TRY(milk_var_set_name(bd->ctx, holder, other));
    if (holder->producer->name && strcmp(holder->producer->name, bd->names[i]) == 0)
        holder->producer->name = holder->name;
    return MILK_OK;
}

/* Output i becomes int32 of rank >= 1: a cast and an expand_dims at the
 * end of the block, the last taking the output's name. */
static milk_status fix_output(boundary *bd, int i, milk_io_change *ch)
{
    milk_block *b = bd->fn->block;
    milk_var *o = b->outputs[i], *cur = o;
    const char *name;
    int at = b->n_ops;
    *ch = (milk_io_change){.output = true, .index = i, .kinds = milk_io_kinds(&o->type),
                           .was = o->type, .inner = o};
    MILK_TRY(claim(bd, i, o, &name));
    ch->name = milk_arena_strdup(bd->p->arena, name);
    if (!ch->name) return nomem(bd);
    if (ch->kinds & (MILK_IO_INT64 | MILK_IO_BOOL)) {
        const char *cast = ch->kinds & MILK_IO_SCALAR ? fresh(bd, ch->name, "int32")
                                                      : ch->name;
        if (!cast) return nomem(bd);
        MILK_TRY(add_op(bd, ch, &at, "cast", cast, cur, MILK_DTYPE_INT32, &cur));
    }
    if (ch->kinds & MILK_IO_SCALAR)
        MILK_TRY(add_op(bd, ch, &at, "expand_dims", ch->name, cur, 0, &cur));
    b->outputs[i] = cur;
    ch->now = cur->type;
    update_feature(bd, cur);
    return record(bd, ch);
}

static milk_status fix_outputs(boundary *bd)
{
    milk_block *b = bd->fn->block;
    for (int i = 0; i < b->n_outputs; i++) {
        milk_io_change ch;
        bool bad = milk_io_kinds(&b->outputs[i]->type) != 0;
        if (bad) MILK_TRY(fix_output(bd, i, &ch));
        if (bd->params->output_done)
            MILK_TRY(bd->params->output_done(bd->params->user, i, bad ? &ch : NULL));
    }
    return MILK_OK;
}

/* ---- the pass ------------------------------------------------------------------- */

static milk_status run(boundary *bd)
{
    int at = 0; /* inputs are converted at the top of the block */
    for (int i = 0; i < bd->fn->n_inputs; i++)
        if (milk_io_kinds(&bd->fn->inputs[i]->type)) MILK_TRY(fix_input(bd, i, &at));
    if (bd->retyped) MILK_TRY(reinfer_all(bd));
    return fix_outputs(bd);
}

milk_status milk_pass_io_boundary(milk_ctx *ctx, milk_program *p, milk_function *f,
                                  const milk_io_params *params,
                                  milk_io_report *report)
{
    static const milk_io_params none = {0};
    milk_block *b = f->block;
    boundary bd = {ctx, p, f, params ? params : &none, report, NULL, false};
    /* the names are taken now: converting an input may replace an output
     * (an input passed through) by the var inside */
    bd.names = malloc(((size_t)b->n_outputs + 1) * sizeof *bd.names);
    if (!bd.names) return nomem(&bd);
    for (int i = 0; i < b->n_outputs; i++)
        bd.names[i] = bd.params->output_names && bd.params->output_names[i]
                          ? bd.params->output_names[i]
                          : b->outputs[i]->name;
    milk_status s = run(&bd);
    free(bd.names);
    return s;
}
