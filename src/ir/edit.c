/* edit.c: changing a program in place, as passes do: inserting and
 * removing ops, redirecting uses, re-inferring types, dead-code
 * elimination, fresh names. */
#include "ir.h"
#include "../ops/op.h"

#include <stdio.h>
#include <stdlib.h>

milk_status milk_block_insert(milk_ctx *ctx, milk_block *b, int at,
                              milk_op *op)
{
    if (at < 0 || at > b->n_ops)
        return milk_errorf(ctx, MILK_ERR_INVALID_ARG, "insert position %d", at);
    MILK_TRY(milk_block_append(ctx, b, op)); /* grows the array */
    memmove(&b->ops[at + 1], &b->ops[at],
            (size_t)(b->n_ops - 1 - at) * sizeof *b->ops);
    b->ops[at] = op;
    return MILK_OK;
}

int milk_block_index_of(const milk_block *b, const milk_op *op)
{
    for (int i = 0; i < b->n_ops; i++)
        if (b->ops[i] == op) return i;
    return -1;
}

void milk_block_remove(milk_block *b, milk_op *op)
{
    int i = milk_block_index_of(b, op);
    if (i < 0) return;
    memmove(&b->ops[i], &b->ops[i + 1], (size_t)(b->n_ops - 1 - i) * sizeof *b->ops);
    b->n_ops--;
    for (int k = 0; k < op->n_outputs; k++)
        milk_names_remove(b->fn->names, op->outputs[k]->name);
    op->block = NULL;
}

/* Call fn on every binding and block output slot of block b and the blocks
 * nested in its ops. */
typedef void (*slot_fn)(milk_var **slot, void *user);

static void walk_slots(milk_block *b, slot_fn fn, void *user)
{
    for (int i = 0; i < b->n_ops; i++) {
        milk_op *op = b->ops[i];
        for (int a = 0; a < op->n_args; a++)
            for (int j = 0; j < op->args[a].n; j++)
                if (op->args[a].b[j].var) fn(&op->args[a].b[j].var, user);
        for (int k = 0; k < op->n_blocks; k++) walk_slots(op->blocks[k], fn, user);
    }
    for (int i = 0; i < b->n_outputs; i++) fn(&b->outputs[i], user);
}

typedef struct replace { milk_var *from, *to; } replace;

static void replace_slot(milk_var **slot, void *user)
{
    replace *r = user;
    if (*slot == r->from) *slot = r->to;
}

void milk_function_replace_uses(milk_function *f, milk_var *from, milk_var *to)
{
    replace r = {from, to};
    walk_slots(f->block, replace_slot, &r);
}

typedef struct count { const milk_var *v; int n; } count;

static void count_slot(milk_var **slot, void *user)
{
    count *c = user;
    c->n += *slot == c->v;
}

int milk_var_use_count(const milk_function *f, const milk_var *v)
{
    count c = {v, 0};
    walk_slots(f->block, count_slot, &c);
    return c.n;
}

milk_status milk_op_reinfer(milk_ctx *ctx, milk_op *op)
{
    milk_infer ic;
    MILK_TRY(milk_op_infer(ctx, op, &ic));
    milk_status s = MILK_OK;
    if (ic.n_out != op->n_outputs)
        s = milk_op_fail(ctx, op, NULL, "now infers %d outputs, had %d",
                         ic.n_out, op->n_outputs);
    for (int k = 0; s == MILK_OK && k < op->n_outputs; k++)
        op->outputs[k]->type = ic.out[k];
    milk_infer_release(&ic);
    return s;
}

/* Mark the vars used anywhere in the function (by id). */
static void mark_slot(milk_var **slot, void *user)
{
    ((bool *)user)[(*slot)->id] = true;
}

static bool op_is_dead(const milk_op *op, const bool *used)
{
    if (op->n_outputs == 0) return false; /* write_state: an effect */
    for (int k = 0; k < op->n_outputs; k++)
        if (used[op->outputs[k]->id]) return false;
    return true;
}

milk_status milk_function_dce(milk_ctx *ctx, milk_function *f, int *removed)
{
    int total = 0;
    for (;;) {
        bool *used = calloc((size_t)f->n_vars + 1, sizeof *used);
        if (!used) return milk_errorf(ctx, MILK_ERR_NOMEM, "out of memory");
        walk_slots(f->block, mark_slot, used);
        int n = 0;
        for (int i = f->block->n_ops - 1; i >= 0; i--) {
            milk_op *op = f->block->ops[i];
            if (op->n_blocks == 0 && op_is_dead(op, used)) {
                milk_block_remove(f->block, op);
                n++;
            }
        }
        free(used);
        total += n;
        if (n == 0) break;
    }
    if (removed) *removed = total;
    return MILK_OK;
}

void milk_function_fresh_name(const milk_function *f, const char *base,
                              char *buf, size_t n)
{
    snprintf(buf, n, "%s", base);
    for (int i = 1; milk_names_get(f->names, buf); i++)
        snprintf(buf, n, "%s_%d", base, i);
}
