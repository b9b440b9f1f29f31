/* convert_fold.c: constant folding during conversion. An op whose inputs
 * are all constants is evaluated with the interpreter's reference kernel
 * (milk_ops[kind]->eval) right after it is added, and its outputs become
 * consts that keep the op's vars (names, types, and every binding already
 * made to them). This is what turns the shape arithmetic exporters emit
 * (Shape -> Gather -> Unsqueeze -> Concat -> Reshape) into constant shapes
 * and static types downstream. */
#include "convert.h"
#include "../run/run.h"

#include <stdlib.h>

/* Ops, inputs and outputs above this many elements (1 MB of fp32) are left
 * to run time: folding them would put large tensors in memory, and the
 * shape arithmetic folding is for is small. */
#define FOLD_MAX_ELEMENTS (INT64_C(1) << 18)

static bool small_type(const milk_tensor_type *t)
{
    int64_t n = milk_tensor_type_count(t);
    return n >= 0 && n <= FOLD_MAX_ELEMENTS;
}

static bool foldable(const milk_op *op)
{
    if (!milk_ops[op->kind]->eval || op->n_blocks) return false;
    for (int a = 0; a < op->n_args; a++)
        for (int j = 0; j < op->args[a].n; j++) {
            const milk_binding *b = &op->args[a].b[j];
            const milk_value *v = b->var ? milk_var_const(b->var) : b->value;
            if (!v || v->kind != MILK_VALUE_TENSOR || !small_type(&v->type))
                return false;
        }
    for (int k = 0; k < op->n_outputs; k++) {
        milk_dtype d = op->outputs[k]->type.dtype;
        if (milk_rt_store(d) == MILK_DTYPE_INVALID || !small_type(&op->outputs[k]->type))
            return false;
        if (d != MILK_DTYPE_FP32 && d != MILK_DTYPE_FP16 &&
            d != MILK_DTYPE_INT32 && d != MILK_DTYPE_BOOL)
            return false;
    }
    return true;
}

/* The runtime tensors of an op's inputs, laid out as milk_eval wants. */
typedef struct fold_inputs {
    const milk_rt ***in; /* in[arg][binding] */
    milk_rt *rts;
    int n_rts;
} fold_inputs;

static void inputs_release(fold_inputs *fi, const milk_op *op)
{
    for (int i = 0; i < fi->n_rts; i++) milk_rt_release(&fi->rts[i]);
    for (int a = 0; fi->in && a < op->n_args; a++) free((void *)fi->in[a]);
    free((void *)fi->in);
    free(fi->rts);
}

static milk_status inputs_load(milk_ctx *ctx, const milk_op *op,
                               fold_inputs *fi)
{
    int total = 0;
    for (int a = 0; a < op->n_args; a++) total += op->args[a].n;
    memset(fi, 0, sizeof *fi);
    fi->in = calloc((size_t)op->n_args + 1, sizeof *fi->in);
    fi->rts = calloc((size_t)total + 1, sizeof *fi->rts);
    if (!fi->in || !fi->rts) return milk_errorf(ctx, MILK_ERR_NOMEM, "out of memory");
    for (int a = 0; a < op->n_args; a++) {
        fi->in[a] = calloc((size_t)op->args[a].n + 1, sizeof **fi->in);
        if (!fi->in[a]) return milk_errorf(ctx, MILK_ERR_NOMEM, "out of memory");
        for (int j = 0; j < op->args[a].n; j++) {
            const milk_binding *b = &op->args[a].b[j];
            const milk_value *v = b->var ? milk_var_const(b->var) : b->value;
            milk_rt *t = &fi->rts[fi->n_rts++];
            if (milk_rt_store(v->type.dtype) != MILK_DTYPE_INVALID)
                MILK_TRY(milk_rt_from_value(ctx, t, v));
            fi->in[a][j] = t;
        }
    }
    return MILK_OK;
}

/* A const value holding a computed tensor in its declared dtype. */
static milk_value *rt_to_value(milk_arena *a, const milk_rt *t,
                               const milk_tensor_type *type)
{
    if (type->dtype != MILK_DTYPE_FP16) return milk_value_new_tensor(a, type, t->data);
    milk_value *v = milk_value_new_tensor(a, type, NULL);
    if (!v) return NULL;
    uint16_t *h = (uint16_t *)v->data.ptr;
    for (int64_t i = 0; i < t->count; i++) h[i] = milk_fp32_to_fp16(milk_rt_f32(t)[i]);
    return v;
}

/* Replace op, the last op of its block, by one const per output, each
 * taking over the output's var. */
static milk_status replace_by_consts(milk_cv *c, milk_op *op, milk_rt *outs)
{
    milk_block *b = op->block;
    milk_arena *a = c->p->arena;
    b->n_ops--;
    for (int k = 0; k < op->n_outputs; k++) {
        milk_var *var = op->outputs[k];
        milk_op *k_op = milk_op_new(a, MILK_OP_const_, var->name);
        milk_var **slot = milk_arena_alloc(a, sizeof *slot);
        if (!k_op || !slot || !(k_op->val = rt_to_value(a, &outs[k], &var->type)))
            return milk_errorf(c->ctx, MILK_ERR_NOMEM, "out of memory");
        slot[0] = var;
        k_op->outputs = slot;
        k_op->n_outputs = k_op->cap_outputs = 1;
        var->producer = k_op;
        var->index = 0;
        MILK_TRY(milk_block_append(c->ctx, b, k_op));
    }
    c->n_folded++;
    return MILK_OK;
}

static milk_status fold_run(milk_cv *c, milk_op *op, milk_rt *outs)
{
    fold_inputs fi;
    milk_status s = inputs_load(c->ctx, op, &fi);
    for (int k = 0; s == MILK_OK && k < op->n_outputs; k++)
        s = milk_rt_alloc(c->ctx, &outs[k], &op->outputs[k]->type);
    if (s == MILK_OK) {
        milk_eval ec = {c->ctx, op, MILK_PRECISION_FP32,
                        (const milk_rt *const *const *)fi.in, outs,
                        op->n_outputs};
        s = milk_ops[op->kind]->eval(&ec);
    }
    inputs_release(&fi, op);
    return s;
}

milk_status milk_cv_fold(milk_cv *c, milk_op *op)
{
    milk_block *b = op->block;
    if (!b || !b->n_ops || b->ops[b->n_ops - 1] != op || !foldable(op))
        return MILK_OK;
    milk_rt *outs = calloc((size_t)op->n_outputs, sizeof *outs);
    if (!outs) return milk_errorf(c->ctx, MILK_ERR_NOMEM, "out of memory");
    milk_status s = fold_run(c, op, outs);
    if (s == MILK_OK) {
        s = replace_by_consts(c, op, outs);
    } else if (s == MILK_ERR_UNSUPPORTED) {
        /* The kernel does not handle this case: leave the op to run time. */
        milk_ctx_clear(c->ctx);
        s = MILK_OK;
    } else {
        milk_error_prefix(c->ctx, "evaluating op '%s' (%s) at conversion time",
                          op->name, milk_ops[op->kind]->name);
    }
    for (int k = 0; k < op->n_outputs; k++) milk_rt_release(&outs[k]);
    free(outs);
    return s;
}
