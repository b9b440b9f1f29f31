/* general.c: general passes on any program (milk_program_simplify): dead
 * code elimination, constant folding with the interpreter's reference
 * kernels, merging of equal constants, and removal of identity-like ops.
 * They work on each function's top-level block; ops inside nested blocks
 * are left alone (DCE keeps ops that own blocks). */
#include "rules.h"
#include "../run/run.h"

#include <stdarg.h>
#include <stdlib.h>

typedef struct simplify {
    milk_ctx *ctx;
    milk_program *p;
    milk_function *fn;
    milk_rule_report *report;
    int changes;
} simplify;

static milk_status record(simplify *sp, const char *pass, const milk_op *op,
                          const char *fmt, ...) MILK_PRINTF(4, 5);
static milk_status record(simplify *sp, const char *pass, const milk_op *op,
                          const char *fmt, ...)
{
    char detail[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(detail, sizeof detail, fmt, ap);
    va_end(ap);
    sp->changes++;
    return milk_rule_report_add(sp->ctx, sp->report, NULL, pass, sp->fn->name,
                                op ? op->name : "",
                                op ? milk_ops[op->kind]->name : "", detail, 1,
                                "");
}

static bool is_function_output(const milk_function *f, const milk_var *v)
{
    for (int i = 0; i < f->block->n_outputs; i++)
        if (f->block->outputs[i] == v) return true;
    return false;
}

/* ---- dce ------------------------------------------------------------------------------ */

static milk_status pass_dce(simplify *sp)
{
    int removed = 0;
    MILK_TRY(milk_function_dce(sp->ctx, sp->fn, &removed));
    if (!removed) return MILK_OK;
    return record(sp, "dce", NULL, "%d op%s whose outputs are unused removed",
                  removed, removed > 1 ? "s" : "");
}

/* ---- fold ----------------------------------------------------------------------------- */

/* The value bound at (arg a, binding j) when it is a compile-time
 * constant, else NULL. */
static const milk_value *binding_const(const milk_op *op, int a, int j)
{
    const milk_binding *b = &op->args[a].b[j];
    return b->var ? milk_var_const(b->var) : b->value;
}

/* Total elements of op's constant inputs, or -1 if one is not constant. */
static int64_t const_inputs(const milk_op *op)
{
    int64_t total = 0;
    for (int a = 0; a < op->n_args; a++)
        for (int j = 0; j < op->args[a].n; j++) {
            const milk_value *v = binding_const(op, a, j);
            if (!v || v->kind != MILK_VALUE_TENSOR) return -1;
            total += milk_tensor_type_count(&v->type);
        }
    return total;
}

static bool foldable_dtype(milk_dtype d)
{
    return d == MILK_DTYPE_FP32 || d == MILK_DTYPE_FP16 || d == MILK_DTYPE_INT32 ||
           d == MILK_DTYPE_BOOL;
}

/* An op worth folding: a kernel, constant inputs, known small outputs,
 * deterministic, not a model output. */
static bool foldable(const simplify *sp, const milk_op *op)
{
    const char *name = milk_ops[op->kind]->name;
    if (op->kind == MILK_OP_const_ || op->n_blocks || !milk_ops[op->kind]->eval ||
        strncmp(name, "constexpr_", 10) == 0 || strncmp(name, "random", 6) == 0 ||
        op->n_outputs < 1 || op->n_outputs > 64)
        return false;
    int64_t in = const_inputs(op), out = 0;
    if (in < 0) return false;
    for (int k = 0; k < op->n_outputs; k++) {
        const milk_var *v = op->outputs[k];
        int64_t n = milk_tensor_type_count(&v->type);
        if (n < 0 || !foldable_dtype(v->type.dtype) || is_function_output(sp->fn, v))
            return false;
        out += n;
    }
    return out <= (in > 65536 ? in : 65536);
}

/* Replace op's outputs by consts holding vals, under the same names. */
static milk_status replace_by_consts(simplify *sp, milk_op *op,
                                     milk_value **vals)
{
    milk_block *b = op->block;
    int at = milk_block_index_of(b, op), n = op->n_outputs;
    milk_var *made[64];
    for (int k = 0; k < n; k++) {
        char name[300];
        milk_function_fresh_name(sp->fn, op->outputs[k]->name, name, sizeof name);
        MILK_TRY(milk_block_insert_const(sp->ctx, b, at++, name, vals[k], &made[k]));
        milk_function_replace_uses(sp->fn, op->outputs[k], made[k]);
    }
    const char *names[64];
    for (int k = 0; k < n; k++) names[k] = op->outputs[k]->name;
    milk_block_remove(b, op);
    for (int k = 0; k < n; k++) {
        MILK_TRY(milk_var_set_name(sp->ctx, made[k], names[k]));
        made[k]->producer->name = made[k]->name;
    }
    return MILK_OK;
}

/* Run op's kernel on its constant inputs; *done is false when the kernel
 * refuses (the op then stays as it is). */
static milk_status fold_op(simplify *sp, milk_op *op, bool *done)
{
    milk_value *vals[64];
    *done = false;
    milk_status s = milk_op_fold(sp->ctx, op, sp->p->arena, vals);
    if (s == MILK_ERR_NOMEM) return s;
    if (s != MILK_OK) {
        milk_ctx_clear(sp->ctx); /* not foldable: left to run time */
        return MILK_OK;
    }
    char name[256], type[64];
    snprintf(name, sizeof name, "%s", op->name);
    snprintf(type, sizeof type, "%s", milk_ops[op->kind]->name);
    MILK_TRY(replace_by_consts(sp, op, vals));
    *done = true;
    sp->changes++;
    return milk_rule_report_add(sp->ctx, sp->report, NULL, "fold", sp->fn->name,
                                name, type, "evaluated at compile time", 1, "");
}

static milk_status pass_fold(simplify *sp)
{
    milk_block *b = sp->fn->block;
    for (int i = 0; i < b->n_ops; i++) {
        milk_op *op = b->ops[i];
        if (!foldable(sp, op)) continue;
        bool done; /* the consts that replace op are now at i, i + 1, ... */
        MILK_TRY(fold_op(sp, op, &done));
    }
    return MILK_OK;
}

/* ---- dedup ---------------------------------------------------------------------------- */

/* Constants whose data is still in a file (weights) are merged only when
 * they are the same range of the same file: reading every weight to hash
 * it would make conversion cost a second pass over the model, for a saving
 * that real models rarely offer. In-memory constants up to this size are
 * compared by value. */
#define DEDUP_MAX_BYTES ((uint64_t)64 << 20)

typedef struct const_key {
    milk_op *op;
    uint64_t hash, nbytes;
    bool hashed;
} const_key;

static uint64_t fnv(uint64_t h, const void *p, size_t n)
{
    const unsigned char *c = p;
    for (size_t i = 0; i < n; i++) h = (h ^ c[i]) * 0x100000001b3ULL;
    return h;
}

static milk_status hash_chunk(void *user, const void *bytes, size_t n)
{
    *(uint64_t *)user = fnv(*(uint64_t *)user, bytes, n);
    return MILK_OK;
}

static bool same_type(const milk_tensor_type *a, const milk_tensor_type *b)
{
    if (a->dtype != b->dtype || a->rank != b->rank) return false;
    for (int i = 0; i < a->rank; i++)
        if (a->dims[i] != b->dims[i]) return false;
    return true;
}

static bool same_file_range(const milk_value *a, const milk_value *b)
{
    return a->data.kind == MILK_DATA_FILE && b->data.kind == MILK_DATA_FILE &&
           a->data.offset == b->data.offset && a->data.stored == b->data.stored &&
           strcmp(a->data.path, b->data.path) == 0;
}

/* A hash of the constant's type and elements (strings included). */
static milk_status key_of(milk_ctx *ctx, milk_op *op, const_key *k)
{
    const milk_value *v = op->val;
    k->op = op;
    k->hashed = false;
    k->hash = fnv(0xcbf29ce484222325ULL, &v->type, sizeof v->type);
    if (v->type.dtype == MILK_DTYPE_STRING) {
        int64_t n = milk_tensor_type_count(&v->type);
        for (int64_t i = 0; i < n; i++) {
            const char *s = milk_value_get_str(v, i);
            k->hash = fnv(k->hash, s ? s : "", s ? strlen(s) + 1 : 1);
        }
        k->hashed = true;
        return MILK_OK;
    }
    if (v->data.kind == MILK_DATA_FILE || !milk_value_nbytes(v, &k->nbytes) ||
        k->nbytes > DEDUP_MAX_BYTES)
        return MILK_OK;
    MILK_TRY(milk_value_stream(ctx, v, 1 << 20, hash_chunk, &k->hash));
    k->hashed = true;
    return MILK_OK;
}

static milk_status equal_values(milk_ctx *ctx, const milk_value *a,
                                const milk_value *b, uint64_t nbytes, bool *eq)
{
    *eq = false;
    if (a->type.dtype == MILK_DTYPE_STRING) {
        int64_t n = milk_tensor_type_count(&a->type);
        *eq = true;
        for (int64_t i = 0; i < n && *eq; i++)
            *eq = strcmp(milk_value_get_str(a, i), milk_value_get_str(b, i)) == 0;
        return MILK_OK;
    }
    char *x = malloc(nbytes + 1), *y = malloc(nbytes + 1);
    milk_status s = x && y ? MILK_OK : milk_errorf(ctx, MILK_ERR_NOMEM, "out of memory");
    if (s == MILK_OK) s = milk_value_read(ctx, a, x);
    if (s == MILK_OK) s = milk_value_read(ctx, b, y);
    if (s == MILK_OK) *eq = memcmp(x, y, nbytes) == 0;
    free(x);
    free(y);
    return s;
}

/* Is the later constant k equal to the earlier one e? */
static milk_status same_const(milk_ctx *ctx, const const_key *e,
                              const const_key *k, bool *eq)
{
    const milk_value *a = e->op->val, *b = k->op->val;
    *eq = false;
    if (!same_type(&a->type, &b->type)) return MILK_OK;
    if (same_file_range(a, b)) {
        *eq = true;
        return MILK_OK;
    }
    if (!e->hashed || !k->hashed || e->hash != k->hash) return MILK_OK;
    return equal_values(ctx, a, b, e->nbytes, eq);
}

static bool dedup_candidate(const simplify *sp, const milk_op *op)
{
    return op->kind == MILK_OP_const_ && op->val && op->val->kind == MILK_VALUE_TENSOR &&
           op->n_outputs == 1 && !is_function_output(sp->fn, op->outputs[0]);
}

static milk_status pass_dedup(simplify *sp)
{
    milk_block *b = sp->fn->block;
    const_key *keys = calloc((size_t)b->n_ops + 1, sizeof *keys);
    int n = 0;
    milk_status s = keys ? MILK_OK : milk_errorf(sp->ctx, MILK_ERR_NOMEM, "out of memory");
    for (int i = 0; s == MILK_OK && i < b->n_ops; i++) {
        milk_op *op = b->ops[i];
        if (!dedup_candidate(sp, op)) continue;
        const_key k;
        s = key_of(sp->ctx, op, &k);
        bool eq = false;
        int j = 0;
        for (; s == MILK_OK && j < n && !eq; j++) s = same_const(sp->ctx, &keys[j], &k, &eq);
        if (s == MILK_OK && eq) {
            milk_op *keep = keys[j - 1].op;
            milk_function_replace_uses(sp->fn, op->outputs[0], keep->outputs[0]);
            s = record(sp, "dedup", op, "same value as const '%s'", keep->name);
        } else if (s == MILK_OK) {
            keys[n++] = k;
        }
    }
    free(keys);
    return s;
}

/* ---- identity-like ops ---------------------------------------------------------------- */

static bool all_ints_equal(const milk_op *op, const char *param, int64_t want,
                           bool identity_perm)
{
    int64_t v[MILK_MAX_RANK * 2];
    int n = 0;
    bool present = false;
    if (milk_op_ints(NULL, op, param, v, MILK_MAX_RANK * 2, &n, &present) != MILK_OK)
        return false;
    for (int i = 0; i < n; i++)
        if (v[i] != (identity_perm ? i : want)) return false;
    return true;
}

/* Does op pass x through unchanged? (Its output type equals x's.) */
static bool is_identity(const milk_op *op)
{
    const milk_var *x = milk_op_var(op, "x");
    if (!x || op->n_outputs != 1 || !same_type(&x->type, &op->outputs[0]->type) ||
        milk_tensor_type_count(&x->type) < 0)
        return false;
    const char *t = milk_ops[op->kind]->name;
    if (!strcmp(t, "identity") || !strcmp(t, "reshape") || !strcmp(t, "cast") ||
        !strcmp(t, "squeeze") || !strcmp(t, "expand_dims"))
        return true;
    if (!strcmp(t, "transpose")) return all_ints_equal(op, "perm", 0, true);
    if (!strcmp(t, "slice_by_index"))
        return !milk_op_arg(op, "squeeze_mask") || all_ints_equal(op, "squeeze_mask", 0, false)
                   ? all_ints_equal(op, "stride", 1, false)
                   : false;
    /* same shape: nothing padded, nothing repeated */
    return !strcmp(t, "pad") || !strcmp(t, "tile");
}

/* Remove op, its output now being x. A model output keeps its name: x is
 * renamed when it is an op output used only here. */
static milk_status drop_identity(simplify *sp, milk_op *op, bool *done)
{
    milk_var *x = milk_op_var(op, "x"), *y = op->outputs[0];
    bool out = is_function_output(sp->fn, y);
    *done = false;
    if (out && (!x->producer || x->producer->kind == MILK_OP_const_ ||
                x->producer->block != sp->fn->block ||
                is_function_output(sp->fn, x) || milk_var_use_count(sp->fn, x) != 1))
        return MILK_OK;
    char name[256], type[64];
    snprintf(name, sizeof name, "%s", y->name);
    snprintf(type, sizeof type, "%s", milk_ops[op->kind]->name);
    milk_function_replace_uses(sp->fn, y, x);
    milk_block_remove(op->block, op);
    if (out) MILK_TRY(milk_var_set_name(sp->ctx, x, name));
    *done = true;
    sp->changes++;
    return milk_rule_report_add(sp->ctx, sp->report, NULL, "identity", sp->fn->name,
                                op->name, type, "passes its input through unchanged",
                                1, "");
}

static milk_status pass_identity(simplify *sp)
{
    milk_block *b = sp->fn->block;
    for (int i = 0; i < b->n_ops; i++) {
        milk_op *op = b->ops[i];
        if (!is_identity(op)) continue;
        bool done;
        MILK_TRY(drop_identity(sp, op, &done));
        if (done) i--;
    }
    return MILK_OK;
}

/* ---- driver ---------------------------------------------------------------------------- */

static milk_status simplify_function(simplify *sp, unsigned passes)
{
    /* Each pass only shrinks the program, so this ends; the bound is a
     * guard. */
    for (int round = 0; round < 16; round++) {
        sp->changes = 0;
        if (passes & MILK_SIMPLIFY_IDENTITY) MILK_TRY(pass_identity(sp));
        if (passes & MILK_SIMPLIFY_FOLD) MILK_TRY(pass_fold(sp));
        if (passes & MILK_SIMPLIFY_DEDUP) MILK_TRY(pass_dedup(sp));
        if (passes & (MILK_SIMPLIFY_DCE | MILK_SIMPLIFY_DEDUP | MILK_SIMPLIFY_FOLD))
            MILK_TRY(pass_dce(sp));
        if (!sp->changes) break;
    }
    return MILK_OK;
}

milk_status milk_program_simplify(milk_ctx *ctx, milk_program *p,
                                  unsigned passes, milk_rule_report *report)
{
    simplify sp = {ctx, p, NULL, report, 0};
    for (int f = 0; f < p->n_functions; f++) {
        sp.fn = p->functions[f];
        milk_status s = simplify_function(&sp, passes);
        if (s != MILK_OK)
            return milk_error_prefix(ctx, "simplify: function '%s'", sp.fn->name);
    }
    milk_status s = milk_program_check(ctx, p);
    if (s != MILK_OK) milk_error_prefix(ctx, "the simplified program fails its check");
    return s;
}
