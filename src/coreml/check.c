/*
 * check.c: milk_program_check(), and the two pieces the package reader
 * shares with it: scopes (which vars a binding may name at a given point:
 * those defined earlier in the same block or an enclosing one, function
 * inputs, inputs of enclosing blocks) and the comparison of an op's
 * declared output types with what type inference gives.
 */
#include "coreml.h"

#include <stdio.h>
#include <stdlib.h>

milk_status coreml_prefix(milk_ctx *ctx, milk_status s, const char *fmt, ...)
{
    char buf[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    if (s == MILK_OK) s = milk_ctx_status(ctx);
    if (s == MILK_OK) s = MILK_ERR_INVALID_ARG; /* no ctx: still a failure */
    milk_error_prefix(ctx, "%s", buf);
    return s;
}

/* ---- scopes ------------------------------------------------------------------ */

void coreml_scope_init(coreml_scope *s, const milk_function *fn)
{
    memset(s, 0, sizeof *s);
    s->fn = fn;
}

void coreml_scope_free(coreml_scope *s)
{
    free(s->def);
    s->def = NULL;
    s->cap = 0;
}

milk_status coreml_scope_define(milk_ctx *ctx, coreml_scope *s,
                                const milk_var *v, const milk_block *b)
{
    if (v->id < 0)
        return milk_errorf(ctx, MILK_ERR_INVALID_ARG, "var '%s' has no id",
                           v->name);
    if (v->id >= s->cap) {
        int cap = s->cap ? s->cap : 64;
        while (cap <= v->id) {
            if (cap > INT32_MAX / 2)
                return milk_errorf(ctx, MILK_ERR_NOMEM, "out of memory");
            cap *= 2;
        }
        const milk_block **d = realloc(s->def, (size_t)cap * sizeof *d);
        if (!d) return milk_errorf(ctx, MILK_ERR_NOMEM, "out of memory");
        memset(d + s->cap, 0, (size_t)(cap - s->cap) * sizeof *d);
        s->def = d;
        s->cap = cap;
    }
    s->def[v->id] = b;
    return MILK_OK;
}

bool coreml_scope_push(coreml_scope *s, const milk_block *b)
{
    if (s->depth > COREML_MAX_BLOCK_DEPTH) return false;
    s->stack[s->depth++] = b;
    return true;
}

void coreml_scope_pop(coreml_scope *s)
{
    if (s->depth > 0) s->depth--;
}

bool coreml_scope_visible(const coreml_scope *s, const milk_var *v)
{
    if (!v || v->fn != s->fn || v->id < 0 || v->id >= s->cap) return false;
    const milk_block *b = s->def[v->id];
    for (int i = 0; b && i < s->depth; i++)
        if (s->stack[i] == b) return true;
    return false;
}

/* ---- declared vs inferred types -------------------------------------------------- */

const char *coreml_type_str(const milk_tensor_type *t, char *buf, size_t n)
{
    const char *dn = milk_dtype_name(t->dtype);
    int k = snprintf(buf, n, "%s ", dn ? dn : "?");
    if (t->rank < 0) {
        snprintf(buf + k, n - (size_t)k, "[*]");
        return buf;
    }
    for (int i = 0; i < t->rank && (size_t)k < n; i++) {
        if (t->dims[i] < 0)
            k += snprintf(buf + k, n - (size_t)k, "%s?", i ? ", " : "[");
        else
            k += snprintf(buf + k, n - (size_t)k, "%s%lld", i ? ", " : "[",
                          (long long)t->dims[i]);
    }
    if ((size_t)k < n) snprintf(buf + k, n - (size_t)k, "%s]", t->rank ? "" : "[");
    return buf;
}

static bool types_agree(const milk_tensor_type *a, const milk_tensor_type *b)
{
    if (a->dtype != b->dtype) return false;
    if (a->rank < 0 || b->rank < 0) return true;
    if (a->rank != b->rank) return false;
    for (int i = 0; i < a->rank; i++)
        if (a->dims[i] >= 0 && b->dims[i] >= 0 && a->dims[i] != b->dims[i])
            return false;
    return true;
}

milk_status coreml_check_outputs(milk_ctx *ctx, const milk_op *op,
                                 const milk_infer *ic, int n_declared,
                                 const milk_tensor_type *const *declared,
                                 const char *const *names)
{
    if (ic->n_out != n_declared)
        return milk_op_fail(ctx, op, NULL,
                            "%d outputs are declared, type inference gives %d",
                            n_declared, ic->n_out);
    for (int i = 0; i < n_declared; i++) {
        if (types_agree(declared[i], &ic->out[i])) continue;
        char a[160], b[160];
        return milk_op_fail(ctx, op, NULL,
                            "output %d '%s': declared %s, type inference "
                            "gives %s",
                            i, names[i], coreml_type_str(declared[i], a, sizeof a),
                            coreml_type_str(&ic->out[i], b, sizeof b));
    }
    return MILK_OK;
}

/* ---- milk_program_check ------------------------------------------------------------ */

static milk_status check_block(milk_ctx *ctx, coreml_scope *s,
                               const milk_block *b);

static milk_status define(milk_ctx *ctx, coreml_scope *s, const milk_var *v,
                          const milk_block *b)
{
    if (!milk_is_identifier(v->name))
        return milk_errorf(ctx, MILK_ERR_INVALID_MODEL,
                           "var name '%s' is not a MIL identifier", v->name);
    if (v->fn != s->fn || milk_names_get(s->fn->names, v->name) != v ||
        (v->id >= 0 && v->id < s->cap && s->def[v->id]))
        return milk_errorf(ctx, MILK_ERR_INVALID_MODEL,
                           "var '%s' is defined twice or belongs to another "
                           "function",
                           v->name);
    return coreml_scope_define(ctx, s, v, b);
}

static milk_status check_args(milk_ctx *ctx, const coreml_scope *s,
                              const milk_op *op)
{
    for (int i = 0; i < op->n_args; i++) {
        const milk_arg *a = &op->args[i];
        for (int j = 0; j < a->n; j++) {
            const milk_binding *bd = &a->b[j];
            if (!bd->var && !bd->value)
                return milk_op_fail(ctx, op, a->param, "empty binding");
            if (bd->var && !coreml_scope_visible(s, bd->var))
                return milk_op_fail(ctx, op, a->param,
                                    "'%s' is not defined before this op in "
                                    "its scope",
                                    bd->var->name);
        }
    }
    return MILK_OK;
}

/* Type inference against the op's output vars. */
static milk_status check_types(milk_ctx *ctx, const milk_op *op)
{
    milk_infer ic;
    MILK_TRY(milk_op_infer(ctx, op, &ic));
    size_t n = (size_t)op->n_outputs + 1;
    const milk_tensor_type **decl = malloc(n * sizeof *decl);
    const char **names = malloc(n * sizeof *names);
    milk_status st = decl && names ? MILK_OK
                                   : milk_errorf(ctx, MILK_ERR_NOMEM, "out of memory");
    for (int i = 0; st == MILK_OK && i < op->n_outputs; i++) {
        decl[i] = &op->outputs[i]->type;
        names[i] = op->outputs[i]->name;
    }
    if (st == MILK_OK)
        st = coreml_check_outputs(ctx, op, &ic, op->n_outputs, decl, names);
    milk_infer_release(&ic);
    free(decl);
    free(names);
    return st;
}

static milk_status check_op(milk_ctx *ctx, coreml_scope *s,
                            const milk_op *op)
{
    if (!op->name || !milk_is_identifier(op->name))
        return milk_errorf(ctx, MILK_ERR_INVALID_MODEL,
                           "op name '%s' is not a MIL identifier",
                           op->name ? op->name : "");
    MILK_TRY(check_args(ctx, s, op));
    for (int i = 0; i < op->n_blocks; i++) {
        milk_status st = check_block(ctx, s, op->blocks[i]);
        if (st != MILK_OK)
            return coreml_prefix(ctx, st, "op '%s' (%s): block %d", op->name,
                                 milk_op_type(op), i);
    }
    MILK_TRY(check_types(ctx, op));
    for (int i = 0; i < op->n_outputs; i++)
        MILK_TRY(define(ctx, s, op->outputs[i], op->block));
    return MILK_OK;
}

static milk_status check_block(milk_ctx *ctx, coreml_scope *s,
                               const milk_block *b)
{
    if (!coreml_scope_push(s, b))
        return milk_errorf(ctx, MILK_ERR_UNSUPPORTED,
                           "blocks nested deeper than %d",
                           COREML_MAX_BLOCK_DEPTH);
    milk_status st = MILK_OK;
    for (int i = 0; st == MILK_OK && i < b->n_inputs; i++)
        st = define(ctx, s, b->inputs[i], b);
    for (int i = 0; st == MILK_OK && i < b->n_ops; i++) {
        if (b->ops[i]->block != b)
            st = milk_errorf(ctx, MILK_ERR_INVALID_MODEL,
                             "op '%s' does not belong to its block",
                             b->ops[i]->name);
        else
            st = check_op(ctx, s, b->ops[i]);
    }
    for (int i = 0; st == MILK_OK && i < b->n_outputs; i++)
        if (!coreml_scope_visible(s, b->outputs[i]))
            st = milk_errorf(ctx, MILK_ERR_INVALID_MODEL,
                             "block output '%s' is not defined in the block",
                             b->outputs[i] ? b->outputs[i]->name : "");
    coreml_scope_pop(s);
    return st;
}

static milk_status check_function(milk_ctx *ctx, const milk_function *f)
{
    coreml_scope s;
    coreml_scope_init(&s, f);
    milk_status st = MILK_OK;
    if (!milk_is_identifier(f->name))
        st = milk_errorf(ctx, MILK_ERR_INVALID_MODEL,
                         "function name is not a MIL identifier");
    else if (!milk_target_name(f->opset) || f->opset > f->prog->target)
        st = milk_errorf(ctx, MILK_ERR_INVALID_MODEL,
                         "opset %d is unknown or newer than the program's "
                         "deployment target",
                         (int)f->opset);
    for (int i = 0; st == MILK_OK && i < f->n_inputs; i++)
        st = define(ctx, &s, f->inputs[i], f->block);
    if (st == MILK_OK) st = check_block(ctx, &s, f->block);
    coreml_scope_free(&s);
    if (st == MILK_OK) return milk_function_check_states(ctx, f);
    if (st != MILK_OK) milk_error_prefix(ctx, "function '%s'", f->name);
    return st;
}

milk_status milk_program_check(milk_ctx *ctx, const milk_program *p)
{
    if (!p) return milk_errorf(ctx, MILK_ERR_INVALID_ARG, "no program");
    if (!milk_target_name(p->target))
        return milk_errorf(ctx, MILK_ERR_INVALID_MODEL,
                           "unknown deployment target %d", (int)p->target);
    for (int i = 0; i < p->n_functions; i++) {
        const milk_function *f = p->functions[i];
        for (int j = 0; j < i; j++)
            if (strcmp(p->functions[j]->name, f->name) == 0)
                return milk_errorf(ctx, MILK_ERR_INVALID_MODEL,
                                   "function '%s' is defined twice", f->name);
        MILK_TRY(check_function(ctx, f));
    }
    return MILK_OK;
}
