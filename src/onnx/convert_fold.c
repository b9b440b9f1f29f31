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

/* Replace op, the last op of its block, by one const per output, each
 * taking over the output's var. */
static milk_status replace_by_consts(milk_cv *c, milk_op *op, milk_value **vals)
{
    milk_block *b = op->block;
    milk_arena *a = c->p->arena;
    b->n_ops--;
    for (int k = 0; k < op->n_outputs; k++) {
        milk_var *var = op->outputs[k];
        milk_op *k_op = milk_op_new(a, MILK_OP_const_, var->name);
        milk_var **slot = milk_arena_alloc(a, sizeof *slot);
        if (!k_op || !slot)
            return milk_errorf(c->ctx, MILK_ERR_NOMEM, "out of memory");
        k_op->val = vals[k];
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

milk_status milk_cv_fold(milk_cv *c, milk_op *op)
{
    milk_block *b = op->block;
    if (!b || !b->n_ops || b->ops[b->n_ops - 1] != op || !foldable(op))
        return MILK_OK;
    milk_value **vals = calloc((size_t)op->n_outputs, sizeof *vals);
    if (!vals) return milk_errorf(c->ctx, MILK_ERR_NOMEM, "out of memory");
    milk_status s = milk_op_fold(c->ctx, op, c->p->arena, vals);
    if (s == MILK_OK) {
        s = replace_by_consts(c, op, vals);
    } else if (s == MILK_ERR_UNSUPPORTED) {
        /* The kernel does not handle this case: leave the op to run time. */
        milk_ctx_clear(c->ctx);
        s = MILK_OK;
    } else {
        milk_error_prefix(c->ctx, "evaluating op '%s' (%s) at conversion time",
                          op->name, milk_ops[op->kind]->name);
    }
    free(vals);
    return s;
}
