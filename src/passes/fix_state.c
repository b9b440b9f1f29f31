/* fix_state.c: state-align32 (rules.def). On the Neural Engine a stateful
 * model fails when a state's dimension is not a multiple of 32
 * (apple/coremltools#2631: a state of width 270 fails on the ANE, 256
 * runs; CPU and GPU run both). The report varied the last dimension, so
 * that is the one checked and padded.
 *
 * The rewrite pads the state's last dimension with zeros up to a multiple
 * of 32: every write_state stores its data padded (pad, constant 0) and
 * every read_state is sliced back to the original shape (slice_by_index),
 * so everything else in the function sees the values it saw before and
 * the padding stays zero. The state's declared shape changes, and with it
 * the model's interface (what an app reads or writes through MLState). */
#include "rules.h"

#include <stdio.h>
#include <stdlib.h>

#define ALIGN 32

static bool misaligned(const milk_var *v)
{
    return v->is_state && v->type.rank >= 1 &&
           v->type.dims[v->type.rank - 1] % ALIGN != 0;
}

void milk_match_state_align32(milk_rule_run *rr, const milk_op *op)
{
    if (op) return; /* a condition on the function's inputs */
    char s[96];
    for (int i = 0; i < rr->fn->n_inputs; i++) {
        const milk_var *v = rr->fn->inputs[i];
        if (misaligned(v))
            milk_rule_matched(rr, NULL, "state '%s' is fp16 %s: its last dimension "
                              "%lld is not a multiple of %d",
                              v->name, milk_rule_shape(&v->type, s, sizeof s),
                              (long long)v->type.dims[v->type.rank - 1], ALIGN);
    }
}

/* Why state v cannot be padded here, or NULL: another function declares
 * it too (it would have to change everywhere at once), or an op inside a
 * nested block takes it. */
static const char *unpaddable(const milk_rule_run *rr, const milk_var *v)
{
    for (int i = 0; i < rr->p->n_functions; i++) {
        const milk_function *g = rr->p->functions[i];
        const milk_var *w = g == rr->fn ? NULL : milk_function_var(g, v->name);
        if (w && w->is_state) return "another function shares it";
    }
    int uses = milk_var_use_count(rr->fn, v), top = 0;
    for (int i = 0; i < rr->fn->block->n_ops; i++)
        top += milk_op_var(rr->fn->block->ops[i], "input") == v;
    return uses != top ? "a nested block takes it" : NULL;
}

/* o = read_state(v), now padded: o keeps its values' shape through a
 * slice_by_index right after it, which takes o's name. */
static milk_status slice_read(milk_rule_run *rr, milk_op *rd,
                              const milk_tensor_type *was)
{
    milk_block *b = rd->block;
    milk_var *o = rd->outputs[0];
    int r = was->rank, at = milk_block_index_of(b, rd) + 1;
    int64_t zero[MILK_MAX_RANK] = {0}, end[MILK_MAX_RANK];
    for (int i = 0; i < r; i++) end[i] = was->dims[i];
    char old[256], base[300], fresh[320];
    snprintf(old, sizeof old, "%s", o->name);
    snprintf(base, sizeof base, "%s_padded", o->name);
    milk_function_fresh_name(rr->fn, base, fresh, sizeof fresh);
    MILK_TRY(milk_var_set_name(rr->ctx, o, fresh));
    MILK_TRY(milk_op_reinfer(rr->ctx, rd));
    milk_op *next = at < b->n_ops ? b->ops[at] : NULL;
    milk_var *begin, *endv, *cut;
    MILK_TRY(milk_fix_ints(rr, next, "state_unpad_begin", zero, r, &begin));
    MILK_TRY(milk_fix_ints(rr, next, "state_unpad_end", end, r, &endv));
    milk_input in[] = {{"x", o}, {"begin", begin}, {"end", endv}};
    at = milk_block_index_of(b, rd) + 3; /* after the two consts */
    snprintf(base, sizeof base, "%s_unpad", old);
    MILK_TRY(milk_fix_op_in(rr, b, at, "slice_by_index", base, in, 3, &cut));
    milk_function_replace_uses(rr->fn, o, cut);
    MILK_TRY(milk_fix_rebind(rr, cut->producer, "x", o)); /* undo for its own input */
    MILK_TRY(milk_var_set_name(rr->ctx, cut, old));
    return MILK_OK;
}

/* write_state(v, d): d padded with zeros to the state's new shape. */
static milk_status pad_write(milk_rule_run *rr, milk_op *wr, int64_t extra)
{
    milk_var *d, *pads, *padded;
    int64_t pv[2] = {0, extra};
    MILK_TRY(milk_fix_param(rr, wr, "data", &d));
    MILK_TRY(milk_fix_ints(rr, wr, "state_pad", pv, 2, &pads));
    milk_input in[] = {{"x", d}, {"pad", pads}};
    MILK_TRY(milk_fix_op(rr, wr, "pad", "state_padded", in, 2, &padded));
    MILK_TRY(milk_fix_rebind(rr, wr, "data", padded));
    return milk_op_reinfer(rr->ctx, wr);
}

static milk_status pad_state(milk_rule_run *rr, milk_var *v)
{
    milk_tensor_type was = v->type;
    int64_t last = was.dims[was.rank - 1];
    int64_t extra = (last + ALIGN - 1) / ALIGN * ALIGN - last;
    v->type.dims[was.rank - 1] = last + extra;
    milk_fix_note(rr, "state '%s': last dimension %lld padded to %lld", v->name,
                  (long long)last, (long long)(last + extra));
    /* collect first: the rewrites insert ops into the list */
    milk_block *b = rr->fn->block;
    int n = 0;
    milk_op **ops = calloc((size_t)b->n_ops + 1, sizeof *ops);
    if (!ops) return milk_errorf(rr->ctx, MILK_ERR_NOMEM, "out of memory");
    for (int i = 0; i < b->n_ops; i++)
        if (milk_op_var(b->ops[i], "input") == v) ops[n++] = b->ops[i];
    milk_status s = MILK_OK;
    for (int i = 0; s == MILK_OK && i < n; i++)
        s = ops[i]->kind == MILK_OP_read_state ? slice_read(rr, ops[i], &was)
                                               : pad_write(rr, ops[i], extra);
    free(ops);
    return s;
}

milk_status milk_fix_state_align32(milk_rule_run *rr, milk_op *op)
{
    (void)op;
    const char *why = NULL;
    int done = 0;
    for (int i = 0; i < rr->fn->n_inputs; i++) {
        milk_var *v = rr->fn->inputs[i];
        if (!misaligned(v)) continue;
        const char *no = unpaddable(rr, v);
        if (no) {
            why = no;
            continue;
        }
        MILK_TRY(pad_state(rr, v));
        done++;
    }
    if (!done && why) milk_fix_decline(rr, "%s", why);
    return MILK_OK;
}
