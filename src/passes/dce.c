/* dce.c: dead code elimination over a function's top-level block: ops
 * none of whose outputs is read by a later op or is a block output go,
 * with their var names. Conversion leaves such ops behind (consts whose
 * only reader was folded, constants replaced by their fp16 versions). */
#include "passes.h"

#include <stdlib.h>

/* Mark the vars op reads as used. */
static void mark_inputs(const milk_op *op, bool *used)
{
    for (int a = 0; a < op->n_args; a++)
        for (int j = 0; j < op->args[a].n; j++)
            if (op->args[a].b[j].var) used[op->args[a].b[j].var->id] = true;
}

static bool is_live(const milk_op *op, const bool *used)
{
    if (op->n_outputs == 0) return true; /* write_state: an effect */
    for (int k = 0; k < op->n_outputs; k++)
        if (used[op->outputs[k]->id]) return true;
    return op->n_blocks > 0; /* control flow: keep, its blocks may matter */
}

milk_status milk_pass_dce(milk_ctx *ctx, milk_function *f)
{
    milk_block *b = f->block;
    bool *used = calloc((size_t)f->n_vars + 1, sizeof *used);
    bool *keep = calloc((size_t)b->n_ops + 1, sizeof *keep);
    if (!used || !keep) {
        free(used);
        free(keep);
        return milk_errorf(ctx, MILK_ERR_NOMEM, "out of memory");
    }
    for (int i = 0; i < b->n_outputs; i++) used[b->outputs[i]->id] = true;
    for (int i = b->n_ops - 1; i >= 0; i--) {
        keep[i] = is_live(b->ops[i], used);
        if (keep[i]) mark_inputs(b->ops[i], used);
    }
    int n = 0;
    for (int i = 0; i < b->n_ops; i++) {
        milk_op *op = b->ops[i];
        if (keep[i]) {
            b->ops[n++] = op;
            continue;
        }
        for (int k = 0; k < op->n_outputs; k++)
            milk_names_remove(f->names, op->outputs[k]->name);
    }
    b->n_ops = n;
    free(used);
    free(keep);
    return MILK_OK;
}
