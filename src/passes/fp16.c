/* fp16.c: the fp16 compute precision pass (see passes.h). The block is
 * rebuilt in order: each const is converted, each op gets the fp16
 * version of its float inputs and is re-typed by its type inference;
 * casts and fp32 copies of consts are created where an op needs the other
 * precision, once per var, just before their first reader. Ops the
 * caller keeps in fp32 (mixed precision) get the fp32 version of every
 * input instead, as coremltools' op_selector of FP16ComputePrecision
 * does for the ops it declines. */
#include "passes.h"
#include "../ops/op.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#define FP16_MAX 65504.0f

typedef struct fp16_pass {
    milk_ctx *ctx;
    milk_function *f;
    milk_block *b;
    milk_arena *a;
    int cap;
    milk_var **twin;          /* by var id: the same value in the other precision */
    const milk_value **orig;  /* by var id: a converted const's fp32 value */
    milk_op **keep;           /* ops kept in fp32, sorted by address */
    int n_keep;
} fp16_pass;

static milk_status nomem(fp16_pass *ps)
{
    return milk_errorf(ps->ctx, MILK_ERR_NOMEM, "out of memory");
}

/* Make room for every var id of the function. */
static milk_status ensure(fp16_pass *ps)
{
    int need = ps->f->n_vars + 1;
    if (need <= ps->cap) return MILK_OK;
    int cap = need * 2;
    milk_var **t = realloc(ps->twin, (size_t)cap * sizeof *t);
    if (t) ps->twin = t;
    const milk_value **o = realloc((void *)ps->orig, (size_t)cap * sizeof *o);
    if (o) ps->orig = o;
    if (!t || !o) return nomem(ps);
    memset(ps->twin + ps->cap, 0, (size_t)(cap - ps->cap) * sizeof *t);
    memset((void *)(ps->orig + ps->cap), 0, (size_t)(cap - ps->cap) * sizeof *o);
    ps->cap = cap;
    return MILK_OK;
}

static bool is_float(milk_dtype d)
{
    return d == MILK_DTYPE_FP32 || d == MILK_DTYPE_FP16;
}

/* "<base>_<what>", or with _0, _1, ... until free in the function. */
static const char *fresh_name(fp16_pass *ps, const char *base, const char *what)
{
    size_t len = strlen(base) + strlen(what) + 24;
    char *buf = milk_arena_alloc(ps->a, len);
    if (!buf) return NULL;
    snprintf(buf, len, "%s_%s", base, what);
    for (int k = 0; milk_function_var(ps->f, buf); k++)
        snprintf(buf, len, "%s_%s_%d", base, what, k);
    return buf;
}

/* ---- consts ------------------------------------------------------------------- */

/* An fp16 copy of inline fp32 data, finite values clamped to the fp16
 * range (a -3.4e38 mask sentinel becomes -65504, not -inf). */
static milk_value *inline_to_fp16(fp16_pass *ps, const milk_value *v)
{
    milk_tensor_type t = v->type;
    t.dtype = MILK_DTYPE_FP16;
    milk_value *nv = milk_value_new_tensor(ps->a, &t, NULL);
    if (!nv) return NULL;
    const float *src = v->data.ptr;
    uint16_t *dst = (uint16_t *)nv->data.ptr;
    int64_t n = milk_tensor_type_count(&t);
    for (int64_t i = 0; i < n; i++) {
        float x = src[i];
        if (x > FP16_MAX && x < INFINITY) x = FP16_MAX;
        if (x < -FP16_MAX && x > -INFINITY) x = -FP16_MAX;
        dst[i] = milk_fp32_to_fp16(x);
    }
    return nv;
}

static milk_status const_to_fp16(fp16_pass *ps, milk_op *op)
{
    milk_var *v = op->outputs[0];
    const milk_value *val = op->val;
    if (val->kind != MILK_VALUE_TENSOR || val->type.dtype != MILK_DTYPE_FP32)
        return MILK_OK;
    milk_value *nv;
    if (val->data.kind == MILK_DATA_FILE) {
        /* still the fp32 file range: converted chunk by chunk when read */
        if (!(nv = milk_arena_memdup(ps->a, val, sizeof *val))) return nomem(ps);
        nv->type.dtype = MILK_DTYPE_FP16;
    } else if (!(nv = inline_to_fp16(ps, val))) {
        return nomem(ps);
    }
    ps->orig[v->id] = val;
    op->val = nv;
    v->type.dtype = MILK_DTYPE_FP16;
    return MILK_OK;
}

/* A new const op named name whose value is val, appended to the block. */
static milk_status const_op(fp16_pass *ps, const char *name,
                            const milk_value *val, milk_var **out)
{
    milk_op *op = name ? milk_op_new(ps->a, MILK_OP_const_, name) : NULL;
    if (!op) return nomem(ps);
    op->val = (milk_value *)val;
    MILK_TRY(milk_op_add_output(ps->ctx, ps->f, op, name, &val->type, out));
    MILK_TRY(milk_block_append(ps->ctx, ps->b, op));
    return ensure(ps);
}

/* ---- the other precision of a var ---------------------------------------------- */

static milk_status cast_to(fp16_pass *ps, milk_var *v, milk_dtype to,
                           milk_var **out)
{
    const char *dt = milk_dtype_name(to);
    char what[16];
    snprintf(what, sizeof what, "to_%s", dt);
    const char *name = fresh_name(ps, v->name, what);
    const char *dname = name ? fresh_name(ps, name, "dtype") : NULL;
    if (!dname) return nomem(ps);
    milk_var *dv;
    milk_op *op;
    MILK_TRY(milk_block_add_const_string(ps->ctx, ps->b, dname, dt, &dv));
    milk_input in[] = {{"x", v}, {"dtype", dv}};
    MILK_TRY(milk_block_add_op(ps->ctx, ps->b, "cast", name, in, 2, &op));
    MILK_TRY(ensure(ps));
    *out = op->outputs[0];
    return MILK_OK;
}

/* v in dtype `to` (fp16 or fp32): itself, its twin, or a new twin. */
static milk_status version(fp16_pass *ps, milk_var *v, milk_dtype to,
                           milk_var **out)
{
    *out = v;
    if (!is_float(v->type.dtype) || v->type.dtype == to) return MILK_OK;
    if (!ps->twin[v->id]) {
        milk_var *t;
        const milk_value *o = ps->orig[v->id];
        if (o && to == MILK_DTYPE_FP32)
            MILK_TRY(const_op(ps, fresh_name(ps, v->name, "fp32"), o, &t));
        else
            MILK_TRY(cast_to(ps, v, to, &t));
        ps->twin[v->id] = t;
        ps->twin[t->id] = v;
    }
    *out = ps->twin[v->id];
    return MILK_OK;
}

/* ---- ops --------------------------------------------------------------------- */

/* How an attempt binds float inputs. */
typedef enum bind_mode {
    ALL_FP16,     /* every float input fp16 */
    CONSTS_FP32,  /* fp16 values, fp32 constants (params an op wants fp32) */
    ALL_FP32,     /* the op stays fp32 */
} bind_mode;

static milk_status bind_inputs(fp16_pass *ps, milk_op *op, milk_var **saved,
                               bind_mode mode)
{
    int k = 0;
    for (int a = 0; a < op->n_args; a++)
        for (int j = 0; j < op->args[a].n; j++, k++) {
            milk_var *v = saved[k];
            if (!v) continue;
            bool is_const = v->producer && v->producer->kind == MILK_OP_const_;
            milk_dtype to = mode == ALL_FP32 || (mode == CONSTS_FP32 && is_const)
                                ? MILK_DTYPE_FP32
                                : MILK_DTYPE_FP16;
            MILK_TRY(version(ps, v, to, &op->args[a].b[j].var));
        }
    return MILK_OK;
}

/* A cast to fp32 now casts to fp16 (its reader works in fp16). */
static milk_status retarget_cast(fp16_pass *ps, milk_op *op)
{
    const char *dt;
    if (op->kind != MILK_OP_cast) return MILK_OK;
    MILK_TRY(milk_op_str(ps->ctx, op, "dtype", "", &dt));
    if (strcmp(dt, "fp32") != 0) return MILK_OK;
    milk_var *dv;
    const char *name = fresh_name(ps, op->outputs[0]->name, "dtype_fp16");
    if (!name) return nomem(ps);
    MILK_TRY(milk_block_add_const_string(ps->ctx, ps->b, name, "fp16", &dv));
    MILK_TRY(ensure(ps));
    for (int a = 0; a < op->n_args; a++)
        if (strcmp(op->args[a].param, "dtype") == 0) op->args[a].b[0].var = dv;
    return MILK_OK;
}

/* Bind, infer; on success the outputs take the inferred types. */
static milk_status attempt(fp16_pass *ps, milk_op *op, milk_var **saved,
                           bind_mode mode)
{
    milk_infer ic;
    MILK_TRY(bind_inputs(ps, op, saved, mode));
    MILK_TRY(milk_op_infer(ps->ctx, op, &ic));
    for (int k = 0; k < op->n_outputs && k < ic.n_out; k++)
        op->outputs[k]->type = ic.out[k];
    milk_infer_release(&ic);
    return MILK_OK;
}

static int binding_count(const milk_op *op)
{
    int n = 0;
    for (int a = 0; a < op->n_args; a++) n += op->args[a].n;
    return n;
}

static int cmp_ptr(const void *a, const void *b)
{
    uintptr_t x = (uintptr_t)*(milk_op *const *)a, y = (uintptr_t)*(milk_op *const *)b;
    return x < y ? -1 : x > y;
}

static bool kept(const fp16_pass *ps, const milk_op *op)
{
    return ps->n_keep &&
           bsearch(&op, ps->keep, (size_t)ps->n_keep, sizeof *ps->keep, cmp_ptr);
}

/* A kept op: fp32 inputs, fp32 outputs; a cast keeps its own dtype. */
static milk_status retype_kept(fp16_pass *ps, milk_op *op, milk_var **saved)
{
    milk_status s = attempt(ps, op, saved, ALL_FP32);
    if (s != MILK_OK)
        return milk_error_prefix(ps->ctx, "op '%s' (%s) kept in fp32", op->name,
                                 milk_ops[op->kind]->name);
    return milk_block_append(ps->ctx, ps->b, op);
}

static milk_status retype_op(fp16_pass *ps, milk_op *op)
{
    int n = binding_count(op), k = 0;
    milk_var **saved = malloc((size_t)(n + 1) * sizeof *saved);
    if (!saved) return nomem(ps);
    for (int a = 0; a < op->n_args; a++)
        for (int j = 0; j < op->args[a].n; j++) saved[k++] = op->args[a].b[j].var;
    if (kept(ps, op)) {
        milk_status ks = retype_kept(ps, op, saved);
        free(saved);
        return ks;
    }
    milk_status s = retarget_cast(ps, op);
    if (s == MILK_OK && attempt(ps, op, saved, ALL_FP16) != MILK_OK &&
        attempt(ps, op, saved, CONSTS_FP32) != MILK_OK) {
        if (op->kind == MILK_OP_cast) { /* the original dtype param */
            k = 0;
            for (int a = 0; a < op->n_args; a++)
                for (int j = 0; j < op->args[a].n; j++, k++)
                    if (strcmp(op->args[a].param, "dtype") == 0)
                        op->args[a].b[j].var = saved[k];
        }
        s = attempt(ps, op, saved, ALL_FP32);
    }
    if (s == MILK_OK) milk_ctx_clear(ps->ctx);
    free(saved);
    return s == MILK_OK ? milk_block_append(ps->ctx, ps->b, op) : s;
}

/* ---- model inputs and outputs ------------------------------------------------------- */

/* iOS15 has no fp16 model I/O: an fp16 output gets a cast to fp32 that
 * takes the output's name. */
static milk_status outputs_fp32(fp16_pass *ps)
{
    for (int i = 0; i < ps->b->n_outputs; i++) {
        milk_var *v = ps->b->outputs[i], *t;
        if (v->type.dtype != MILK_DTYPE_FP16) continue;
        const char *name = v->name;
        const char *tmp = fresh_name(ps, name, "cast_fp16");
        if (!tmp) return nomem(ps);
        MILK_TRY(milk_var_set_name(ps->ctx, v, tmp));
        MILK_TRY(cast_to(ps, v, MILK_DTYPE_FP32, &t));
        MILK_TRY(milk_var_set_name(ps->ctx, t, name));
        ps->b->outputs[i] = t;
    }
    return MILK_OK;
}

static milk_status run_function(fp16_pass *ps)
{
    milk_block *b = ps->b;
    bool io16 = ps->f->opset >= MILK_TARGET_IOS16;
    MILK_TRY(ensure(ps));
    for (int i = 0; io16 && i < ps->f->n_inputs; i++)
        if (ps->f->inputs[i]->type.dtype == MILK_DTYPE_FP32)
            ps->f->inputs[i]->type.dtype = MILK_DTYPE_FP16;
    int n = b->n_ops;
    milk_op **ops = malloc((size_t)(n + 1) * sizeof *ops);
    if (!ops) return nomem(ps);
    milk_copy(ops, b->ops, (size_t)n * sizeof *ops);
    b->n_ops = 0;
    milk_status s = MILK_OK;
    for (int i = 0; s == MILK_OK && i < n; i++) {
        if (ops[i]->kind == MILK_OP_const_) {
            s = const_to_fp16(ps, ops[i]);
            if (s == MILK_OK) s = milk_block_append(ps->ctx, b, ops[i]);
        } else {
            s = retype_op(ps, ops[i]);
        }
    }
    free(ops);
    if (s == MILK_OK && !io16) s = outputs_fp32(ps);
    return s;
}

milk_status milk_pass_fp16_mixed(milk_ctx *ctx, milk_program *p,
                                 milk_op *const *keep, int n_keep)
{
    milk_op **sorted = malloc((size_t)(n_keep > 0 ? n_keep : 1) * sizeof *sorted);
    if (!sorted) return milk_errorf(ctx, MILK_ERR_NOMEM, "out of memory");
    if (n_keep > 0) {
        memcpy(sorted, keep, (size_t)n_keep * sizeof *sorted);
        qsort(sorted, (size_t)n_keep, sizeof *sorted, cmp_ptr);
    }
    milk_status s = MILK_OK;
    for (int i = 0; s == MILK_OK && i < p->n_functions; i++) {
        fp16_pass ps = {ctx, p->functions[i], p->functions[i]->block, p->arena,
                        0, NULL, NULL, sorted, n_keep > 0 ? n_keep : 0};
        s = run_function(&ps);
        free(ps.twin);
        free((void *)ps.orig);
    }
    free(sorted);
    return s;
}

milk_status milk_pass_fp16(milk_ctx *ctx, milk_program *p)
{
    return milk_pass_fp16_mixed(ctx, p, NULL, 0);
}
