/* program.c: creating programs, functions, blocks, vars and ops, and the
 * accessors of the public API. Type inference is in src/ops/op.c. */
#include "ir.h"
#include "../ops/op.h"

#include <stdlib.h>

#define GROW(a, arr, n, cap) \
    milk_arena_grow((a), (void **)&(arr), (n), &(cap), sizeof *(arr))

static milk_status nomem(milk_ctx *ctx)
{
    return milk_errorf(ctx, MILK_ERR_NOMEM, "out of memory");
}

/* ---- program ------------------------------------------------------------ */

milk_status milk_program_create(milk_ctx *ctx, milk_target target,
                                milk_program **out)
{
    *out = NULL;
    if (!milk_target_name(target))
        return milk_errorf(ctx, MILK_ERR_INVALID_ARG,
                           "unknown deployment target %d (ML Programs need "
                           "iOS15 to iOS26, specificationVersion 6 to 10)",
                           (int)target);
    milk_arena *a = milk_arena_create();
    milk_program *p = a ? milk_arena_alloc(a, sizeof *p) : NULL;
    if (!p) {
        milk_arena_free(a);
        return nomem(ctx);
    }
    p->arena = a;
    p->target = target;
    p->version = 1;
    *out = p;
    return MILK_OK;
}

void milk_program_free(milk_program *p)
{
    if (!p) return;
    for (int i = 0; i < p->n_functions; i++)
        milk_names_free(p->functions[i]->names);
    milk_arena_free(p->arena);
}

milk_target milk_program_target(const milk_program *p)
{
    return p->target;
}

static const char **metadata_slot(milk_program *p, const char *key)
{
    if (strcmp(key, "author") == 0) return &p->author;
    if (strcmp(key, "license") == 0) return &p->license;
    if (strcmp(key, "shortDescription") == 0) return &p->short_description;
    if (strcmp(key, "versionString") == 0) return &p->version_string;
    return NULL;
}

milk_status milk_program_set_metadata(milk_ctx *ctx, milk_program *p,
                                      const char *key, const char *value)
{
    char *v = milk_arena_strdup(p->arena, value);
    if (!v) return nomem(ctx);
    const char **slot = metadata_slot(p, key);
    if (slot) {
        *slot = v;
        return MILK_OK;
    }
    for (int i = 0; i < p->n_user; i++) {
        if (strcmp(p->user[i].key, key) == 0) {
            p->user[i].value = v;
            return MILK_OK;
        }
    }
    char *k = milk_arena_strdup(p->arena, key);
    if (!k || !GROW(p->arena, p->user, p->n_user, p->cap_user))
        return nomem(ctx);
    p->user[p->n_user++] = (milk_kv){k, v};
    return MILK_OK;
}

const char *milk_program_metadata(const milk_program *p, const char *key)
{
    const char **slot = metadata_slot((milk_program *)p, key);
    if (slot) return *slot;
    for (int i = 0; i < p->n_user; i++)
        if (strcmp(p->user[i].key, key) == 0) return p->user[i].value;
    return NULL;
}

/* ---- functions ---------------------------------------------------------- */

milk_status milk_program_add_function(milk_ctx *ctx, milk_program *p,
                                      const char *name, milk_function **out)
{
    if (!milk_is_identifier(name))
        return milk_errorf(ctx, MILK_ERR_INVALID_ARG,
                           "function name '%s' is not a MIL identifier", name);
    if (milk_program_function(p, name))
        return milk_errorf(ctx, MILK_ERR_INVALID_ARG,
                           "function '%s' already exists", name);
    milk_function *f = milk_arena_alloc(p->arena, sizeof *f);
    if (!f || !GROW(p->arena, p->functions, p->n_functions, p->cap_functions))
        return nomem(ctx);
    f->prog = p;
    f->name = milk_arena_strdup(p->arena, name);
    f->opset = p->target;
    f->opset_name = milk_opset_proto_name(p->target);
    f->names = milk_names_create();
    if (!f->name || !f->names) {
        milk_names_free(f->names);
        return nomem(ctx);
    }
    p->functions[p->n_functions++] = f;
    f->block = milk_block_new(f, NULL);
    if (!f->block) return nomem(ctx);
    if (out) *out = f;
    return MILK_OK;
}

milk_function *milk_program_function(const milk_program *p, const char *name)
{
    for (int i = 0; i < p->n_functions; i++)
        if (strcmp(p->functions[i]->name, name) == 0) return p->functions[i];
    return NULL;
}

int milk_program_function_count(const milk_program *p)
{
    return p->n_functions;
}

milk_function *milk_program_function_at(const milk_program *p, int i)
{
    return i >= 0 && i < p->n_functions ? p->functions[i] : NULL;
}

const char *milk_function_name(const milk_function *f)
{
    return f->name;
}

const char *milk_function_opset(const milk_function *f)
{
    return milk_target_name(f->opset);
}

milk_status milk_function_add_input(milk_ctx *ctx, milk_function *f,
                                    const char *name,
                                    const milk_tensor_type *type,
                                    milk_var **out)
{
    if (milk_tensor_type_check(ctx, type) != MILK_OK)
        return milk_errorf(ctx, MILK_ERR_INVALID_ARG, "input '%s': %s", name,
                           milk_ctx_error(ctx));
    milk_var *v;
    MILK_TRY(milk_var_new(ctx, f, name, type, &v));
    if (!GROW(f->prog->arena, f->inputs, f->n_inputs, f->cap_inputs))
        return nomem(ctx);
    f->inputs[f->n_inputs++] = v;
    if (out) *out = v;
    return MILK_OK;
}

int milk_function_input_count(const milk_function *f)
{
    return f->n_inputs;
}

milk_var *milk_function_input(const milk_function *f, int i)
{
    return i >= 0 && i < f->n_inputs ? f->inputs[i] : NULL;
}

milk_block *milk_function_block(const milk_function *f)
{
    return f->block;
}

milk_var *milk_function_var(const milk_function *f, const char *name)
{
    return milk_names_get(f->names, name);
}

/* ---- blocks ------------------------------------------------------------- */

milk_block *milk_block_new(milk_function *f, milk_op *parent)
{
    milk_block *b = milk_arena_alloc(f->prog->arena, sizeof *b);
    if (!b) return NULL;
    b->fn = f;
    b->parent = parent;
    return b;
}

milk_status milk_block_add_output(milk_ctx *ctx, milk_block *b, milk_var *v)
{
    if (!v || v->fn != b->fn)
        return milk_errorf(ctx, MILK_ERR_INVALID_ARG,
                           "block output must be a var of the same function");
    if (!GROW(b->fn->prog->arena, b->outputs, b->n_outputs, b->cap_outputs))
        return nomem(ctx);
    b->outputs[b->n_outputs++] = v;
    return MILK_OK;
}

int milk_block_output_count(const milk_block *b)
{
    return b->n_outputs;
}

milk_var *milk_block_output(const milk_block *b, int i)
{
    return i >= 0 && i < b->n_outputs ? b->outputs[i] : NULL;
}

int milk_block_op_count(const milk_block *b)
{
    return b->n_ops;
}

milk_op *milk_block_op(const milk_block *b, int i)
{
    return i >= 0 && i < b->n_ops ? b->ops[i] : NULL;
}

milk_status milk_block_append(milk_ctx *ctx, milk_block *b, milk_op *op)
{
    if (!GROW(b->fn->prog->arena, b->ops, b->n_ops, b->cap_ops))
        return nomem(ctx);
    b->ops[b->n_ops++] = op;
    op->block = b;
    return MILK_OK;
}

/* ---- vars --------------------------------------------------------------- */

milk_status milk_var_new(milk_ctx *ctx, milk_function *f, const char *name,
                         const milk_tensor_type *t, milk_var **out)
{
    if (!milk_is_identifier(name))
        return milk_errorf(ctx, MILK_ERR_INVALID_MODEL,
                           "var name '%s' is not a MIL identifier "
                           "([A-Za-z_][A-Za-z0-9_@]*)",
                           name);
    milk_var *v = milk_arena_alloc(f->prog->arena, sizeof *v);
    char *n = milk_arena_strdup(f->prog->arena, name);
    if (!v || !n) return nomem(ctx);
    v->name = n;
    v->type = *t;
    v->fn = f;
    v->id = f->n_vars;
    bool oom;
    if (!milk_names_put(f->names, n, v, &oom))
        return oom ? nomem(ctx)
                   : milk_errorf(ctx, MILK_ERR_INVALID_MODEL,
                                 "var name '%s' is defined twice in function "
                                 "'%s'",
                                 name, f->name);
    f->n_vars++;
    *out = v;
    return MILK_OK;
}

const char *milk_var_name(const milk_var *v)
{
    return v->name;
}

const milk_tensor_type *milk_var_type(const milk_var *v)
{
    return &v->type;
}

milk_op *milk_var_producer(const milk_var *v)
{
    return v->producer;
}

milk_status milk_var_set_name(milk_ctx *ctx, milk_var *v, const char *name)
{
    if (strcmp(v->name, name) == 0) return MILK_OK;
    if (!milk_is_identifier(name))
        return milk_errorf(ctx, MILK_ERR_INVALID_ARG,
                           "var name '%s' is not a MIL identifier", name);
    if (milk_names_get(v->fn->names, name))
        return milk_errorf(ctx, MILK_ERR_INVALID_ARG,
                           "var name '%s' is already used", name);
    char *n = milk_arena_strdup(v->fn->prog->arena, name);
    if (!n) return nomem(ctx);
    milk_names_remove(v->fn->names, v->name);
    bool oom;
    if (!milk_names_put(v->fn->names, n, v, &oom)) return nomem(ctx);
    v->name = n;
    return MILK_OK;
}

/* ---- values and attributes --------------------------------------------- */

milk_value *milk_value_new_tensor(milk_arena *a, const milk_tensor_type *t,
                                  const void *data)
{
    milk_value *v = milk_arena_alloc(a, sizeof *v);
    if (!v) return NULL;
    v->kind = MILK_VALUE_TENSOR;
    v->type = *t;
    v->data.kind = MILK_DATA_INLINE;
    int64_t n = milk_tensor_type_count(t);
    if (n < 0) return NULL;
    if (t->dtype == MILK_DTYPE_STRING) {
        const char **s = milk_arena_alloc(a, (size_t)(n ? n : 1) * sizeof *s);
        if (!s) return NULL;
        for (int64_t i = 0; i < n; i++) {
            const char *src = data ? ((const char *const *)data)[i] : "";
            if (!(s[i] = milk_arena_strdup(a, src))) return NULL;
        }
        v->data.ptr = s;
        return v;
    }
    uint64_t nbytes;
    if (!milk_dtype_nbytes(t->dtype, n, &nbytes) || nbytes > SIZE_MAX)
        return NULL;
    void *p = milk_arena_alloc(a, nbytes ? (size_t)nbytes : 1);
    if (!p) return NULL;
    if (data && nbytes) memcpy(p, data, (size_t)nbytes);
    v->data.ptr = p;
    return v;
}

milk_status milk_attrs_set(milk_ctx *ctx, milk_arena *a, milk_attrs *at,
                           const char *key, milk_value *val)
{
    for (int i = 0; i < at->n; i++) {
        if (strcmp(at->a[i].key, key) == 0) {
            at->a[i].val = val;
            return MILK_OK;
        }
    }
    char *k = milk_arena_strdup(a, key);
    if (!k || !GROW(a, at->a, at->n, at->cap)) return nomem(ctx);
    at->a[at->n++] = (milk_attr){k, val};
    return MILK_OK;
}

milk_value *milk_attrs_get(const milk_attrs *at, const char *key)
{
    for (int i = 0; i < at->n; i++)
        if (strcmp(at->a[i].key, key) == 0) return at->a[i].val;
    return NULL;
}

/* ---- ops ---------------------------------------------------------------- */

milk_op *milk_op_new(milk_arena *a, int kind, const char *name)
{
    milk_op *op = milk_arena_alloc(a, sizeof *op);
    if (!op) return NULL;
    op->kind = kind;
    op->name = milk_arena_strdup(a, name);
    return op->name ? op : NULL;
}

milk_status milk_op_bind(milk_ctx *ctx, milk_arena *a, milk_op *op,
                         const char *param, milk_var *var, milk_value *value)
{
    milk_arg *arg = (milk_arg *)milk_op_arg(op, param);
    if (!arg) {
        if (!GROW(a, op->args, op->n_args, op->cap_args)) return nomem(ctx);
        arg = &op->args[op->n_args];
        if (!(arg->param = milk_arena_strdup(a, param))) return nomem(ctx);
        op->n_args++;
    }
    if (!GROW(a, arg->b, arg->n, arg->cap)) return nomem(ctx);
    arg->b[arg->n++] = (milk_binding){var, value};
    return MILK_OK;
}

milk_status milk_op_add_output(milk_ctx *ctx, milk_function *f, milk_op *op,
                               const char *name, const milk_tensor_type *t,
                               milk_var **out)
{
    milk_var *v;
    MILK_TRY(milk_var_new(ctx, f, name, t, &v));
    if (!GROW(f->prog->arena, op->outputs, op->n_outputs, op->cap_outputs))
        return nomem(ctx);
    v->producer = op;
    v->index = op->n_outputs;
    op->outputs[op->n_outputs++] = v;
    if (out) *out = v;
    return MILK_OK;
}

const milk_arg *milk_op_arg(const milk_op *op, const char *param)
{
    for (int i = 0; i < op->n_args; i++)
        if (strcmp(op->args[i].param, param) == 0) return &op->args[i];
    return NULL;
}

const milk_value *milk_var_const(const milk_var *v)
{
    return v && v->producer && v->producer->kind == MILK_OP_const_
               ? v->producer->val
               : NULL;
}

const milk_value *milk_op_const_at(const milk_op *op, const char *param,
                                   int i)
{
    const milk_arg *arg = milk_op_arg(op, param);
    if (!arg || i < 0 || i >= arg->n) return NULL;
    return arg->b[i].value ? arg->b[i].value : milk_var_const(arg->b[i].var);
}

const milk_value *milk_op_const(const milk_op *op, const char *param)
{
    return milk_op_const_at(op, param, 0);
}

milk_var *milk_op_var(const milk_op *op, const char *param)
{
    const milk_arg *arg = milk_op_arg(op, param);
    return arg && arg->n > 0 ? arg->b[0].var : NULL;
}

const char *milk_op_type(const milk_op *op)
{
    return milk_ops[op->kind]->name;
}

const char *milk_op_name(const milk_op *op)
{
    return op->name;
}

int milk_op_output_count(const milk_op *op)
{
    return op->n_outputs;
}

milk_var *milk_op_output(const milk_op *op, int i)
{
    return i >= 0 && i < op->n_outputs ? op->outputs[i] : NULL;
}

int milk_op_input_count(const milk_op *op)
{
    return op->n_args;
}

const char *milk_op_input_param(const milk_op *op, int i)
{
    return i >= 0 && i < op->n_args ? op->args[i].param : NULL;
}

int milk_op_input_binding_count(const milk_op *op, int i)
{
    return i >= 0 && i < op->n_args ? op->args[i].n : 0;
}

milk_var *milk_op_input_var(const milk_op *op, int i, int j)
{
    if (i < 0 || i >= op->n_args || j < 0 || j >= op->args[i].n) return NULL;
    return op->args[i].b[j].var;
}
