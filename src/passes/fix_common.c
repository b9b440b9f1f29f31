/* fix_common.c: what the rewrite passes of the rule table share: inserting
 * ops and consts with fresh names just before the op being rewritten,
 * reading and rebinding parameters, replacing an op by a new var while
 * keeping its names, and the record of what each rewrite touched. */
#include "rules.h"

#include <stdarg.h>
#include <stdlib.h>

static milk_arena *arena_of(milk_rule_run *rr)
{
    return rr->p->arena;
}

/* Append "; text" (or text) to the record of what the rewrite touched. */
static void note(milk_rule_run *rr, const char *fmt, ...) MILK_PRINTF(2, 3);
static void note(milk_rule_run *rr, const char *fmt, ...)
{
    size_t len = strlen(rr->touched);
    if (len + 8 >= sizeof rr->touched) return;
    if (len) {
        memcpy(rr->touched + len, "; ", 3);
        len += 2;
    }
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(rr->touched + len, sizeof rr->touched - len, fmt, ap);
    va_end(ap);
}

void milk_fix_note(milk_rule_run *rr, const char *fmt, ...)
{
    char buf[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    note(rr, "%s", buf);
}

void milk_fix_decline(milk_rule_run *rr, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(rr->declined, sizeof rr->declined, fmt, ap);
    va_end(ap);
}

/* Where to insert before `at`: its block and index (the end of the
 * function's block when at is NULL). */
static milk_block *place(milk_rule_run *rr, milk_op *at, int *index)
{
    milk_block *b = at ? at->block : rr->fn->block;
    *index = at ? milk_block_index_of(b, at) : b->n_ops;
    return b;
}

milk_status milk_fix_op_in(milk_rule_run *rr, milk_block *b, int index,
                           const char *type, const char *base,
                           const milk_input *in, int n, milk_var **out)
{
    char name[256];
    milk_function_fresh_name(rr->fn, base, name, sizeof name);
    milk_op *op;
    MILK_TRY(milk_block_insert_op(rr->ctx, b, index, type, name, in, n, &op));
    note(rr, "created %s '%s'", type, name);
    if (out) *out = op->outputs[0];
    return MILK_OK;
}

milk_status milk_fix_op(milk_rule_run *rr, milk_op *at, const char *type,
                        const char *base, const milk_input *in, int n,
                        milk_var **out)
{
    int index;
    milk_block *b = place(rr, at, &index);
    return milk_fix_op_in(rr, b, index, type, base, in, n, out);
}

milk_status milk_fix_const_value(milk_rule_run *rr, milk_op *at,
                                 const char *base, milk_value *val,
                                 milk_var **out)
{
    if (!val) return milk_errorf(rr->ctx, MILK_ERR_NOMEM, "out of memory");
    char name[256];
    milk_function_fresh_name(rr->fn, base, name, sizeof name);
    int index;
    milk_block *b = place(rr, at, &index);
    return milk_block_insert_const(rr->ctx, b, index, name, val, out);
}

milk_status milk_fix_const(milk_rule_run *rr, milk_op *at, const char *base,
                           const milk_tensor_type *t, const void *data,
                           milk_var **out)
{
    return milk_fix_const_value(rr, at, base,
                                milk_value_new_tensor(arena_of(rr), t, data),
                                out);
}

milk_status milk_fix_ints(milk_rule_run *rr, milk_op *at, const char *base,
                          const int64_t *v, int n, milk_var **out)
{
    int32_t buf[MILK_MAX_RANK * 2 + 2];
    if (n < 0 || n > (int)MILK_ARRAY_LEN(buf))
        return milk_errorf(rr->ctx, MILK_ERR_INVALID_ARG,
                           "%s: %d values are too many", base, n);
    for (int i = 0; i < n; i++) buf[i] = (int32_t)v[i];
    milk_tensor_type t = {MILK_DTYPE_INT32, 1, {n}};
    return milk_fix_const(rr, at, base, &t, buf, out);
}

milk_status milk_fix_int(milk_rule_run *rr, milk_op *at, const char *base,
                         int64_t v, milk_var **out)
{
    int32_t x = (int32_t)v;
    milk_tensor_type t = {MILK_DTYPE_INT32, 0, {0}};
    return milk_fix_const(rr, at, base, &t, &x, out);
}

milk_status milk_fix_bools(milk_rule_run *rr, milk_op *at, const char *base,
                           const bool *v, int n, milk_var **out)
{
    uint8_t buf[MILK_MAX_RANK];
    if (n < 0 || n > MILK_MAX_RANK)
        return milk_errorf(rr->ctx, MILK_ERR_INVALID_ARG,
                           "%s: %d values are too many", base, n);
    for (int i = 0; i < n; i++) buf[i] = v[i] ? 1 : 0;
    milk_tensor_type t = {MILK_DTYPE_BOOL, 1, {n}};
    return milk_fix_const(rr, at, base, &t, buf, out);
}

milk_status milk_fix_bool(milk_rule_run *rr, milk_op *at, const char *base,
                          bool v, milk_var **out)
{
    uint8_t x = v ? 1 : 0;
    milk_tensor_type t = {MILK_DTYPE_BOOL, 0, {0}};
    return milk_fix_const(rr, at, base, &t, &x, out);
}

milk_status milk_fix_float(milk_rule_run *rr, milk_op *at, const char *base,
                           milk_dtype dt, double v, milk_var **out)
{
    milk_tensor_type t = {dt, 0, {0}};
    if (dt == MILK_DTYPE_FP16) {
        uint16_t h = milk_fp32_to_fp16((float)v);
        return milk_fix_const(rr, at, base, &t, &h, out);
    }
    t.dtype = MILK_DTYPE_FP32;
    float f = (float)v;
    return milk_fix_const(rr, at, base, &t, &f, out);
}

milk_status milk_fix_string(milk_rule_run *rr, milk_op *at, const char *base,
                            const char *v, milk_var **out)
{
    const char *s = milk_arena_strdup(arena_of(rr), v);
    if (!s) return milk_errorf(rr->ctx, MILK_ERR_NOMEM, "out of memory");
    milk_tensor_type t = {MILK_DTYPE_STRING, 0, {0}};
    return milk_fix_const(rr, at, base, &t, &s, out);
}

milk_status milk_fix_param(milk_rule_run *rr, milk_op *op, const char *param,
                           milk_var **out)
{
    *out = NULL;
    const milk_arg *a = milk_op_arg(op, param);
    if (!a || a->n < 1) return MILK_OK;
    if (a->b[0].var) {
        *out = a->b[0].var;
        return MILK_OK;
    }
    char base[256];
    snprintf(base, sizeof base, "%s_%s", op->name, param);
    return milk_fix_const_value(rr, op, base, a->b[0].value, out);
}

static int arg_index(const milk_op *op, const char *param)
{
    for (int i = 0; i < op->n_args; i++)
        if (strcmp(op->args[i].param, param) == 0) return i;
    return -1;
}

milk_status milk_fix_rebind(milk_rule_run *rr, milk_op *op, const char *param,
                            milk_var *var)
{
    int i = arg_index(op, param);
    if (i < 0) return milk_op_bind(rr->ctx, arena_of(rr), op, param, var, NULL);
    op->args[i].n = 1;
    op->args[i].b[0].var = var;
    op->args[i].b[0].value = NULL;
    return MILK_OK;
}

void milk_fix_unbind(milk_op *op, const char *param)
{
    int i = arg_index(op, param);
    if (i < 0) return;
    memmove(&op->args[i], &op->args[i + 1],
            (size_t)(op->n_args - 1 - i) * sizeof *op->args);
    op->n_args--;
}

milk_status milk_fix_replace(milk_rule_run *rr, milk_op *old, milk_var *now)
{
    milk_var *was = old->outputs[0];
    const char *var_name = was->name, *op_name = old->name;
    note(rr, "removed %s '%s'", milk_ops[old->kind]->name, op_name);
    milk_function_replace_uses(rr->fn, was, now);
    milk_block_remove(old->block, old);
    if (now->producer) note(rr, "'%s' took its names", now->producer->name);
    MILK_TRY(milk_var_set_name(rr->ctx, now, var_name));
    if (now->producer) now->producer->name = op_name;
    return MILK_OK;
}

milk_status milk_fix_read_ints(milk_rule_run *rr, const milk_op *op,
                               const char *param, int n, int64_t dflt,
                               int64_t *v)
{
    int got = 0;
    bool present = false;
    MILK_TRY(milk_op_ints(rr->ctx, op, param, v, n, &got, &present));
    if (!present) {
        for (int i = 0; i < n; i++) v[i] = dflt;
        return MILK_OK;
    }
    if (got != n)
        return milk_op_fail(rr->ctx, op, param, "expected %d values, got %d", n,
                            got);
    return MILK_OK;
}

milk_status milk_fix_copy_args(milk_rule_run *rr, milk_op *op,
                               const char *const *skip, milk_input *in,
                               int *n, int cap)
{
    for (int i = 0; i < op->n_args; i++) {
        bool skipped = false;
        for (int k = 0; skip && skip[k]; k++)
            skipped |= strcmp(op->args[i].param, skip[k]) == 0;
        if (skipped) continue;
        if (op->args[i].n != 1 || *n >= cap)
            return milk_op_fail(rr->ctx, op, op->args[i].param,
                                "cannot be copied by this rewrite");
        milk_var *v;
        MILK_TRY(milk_fix_param(rr, op, op->args[i].param, &v));
        in[*n].param = op->args[i].param;
        in[*n].var = v;
        (*n)++;
    }
    return MILK_OK;
}
