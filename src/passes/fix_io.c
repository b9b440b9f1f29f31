/* fix_io.c: the rules on a function's boundary and names: names (sanitize
 * identifiers as coremltools' sanitize_name_strings does, keeping the model
 * description consistent) and io-types (int64, bool and rank-0 model
 * inputs and outputs become int32 / shape [1], converted inside: the
 * boundary pass, milk_pass_io_boundary in boundary.c, does it). */
#include "passes.h"
#include "rules.h"

/* A name coremltools would change. */
static bool bad_name(const char *s)
{
    return !milk_is_identifier(s) || strchr(s, '@') || milk_name_is_reserved(s);
}

/* ---- names --------------------------------------------------------------------------- */

/* The i-th input of f that is not a state (states are described apart),
 * or NULL. */
static milk_var *plain_input(const milk_function *f, int i)
{
    for (int k = 0; k < f->n_inputs; k++)
        if (!f->inputs[k]->is_state && i-- == 0) return f->inputs[k];
    return NULL;
}

/* The main function's description entries that disagree with its
 * signature (the writer would then drop the recorded description). */
static void match_description(milk_rule_run *rr)
{
    const milk_program *p = rr->p;
    const milk_function *f = rr->fn;
    if (!p->has_features || strcmp(f->name, "main") != 0) return;
    for (int i = 0; i < p->n_in_features && plain_input(f, i); i++)
        if (strcmp(p->in_features[i].name, plain_input(f, i)->name) != 0)
            milk_rule_matched(rr, NULL, "description input %d is '%s', main's is '%s'",
                          i, p->in_features[i].name, plain_input(f, i)->name);
    for (int i = 0; i < p->n_out_features && i < f->block->n_outputs; i++)
        if (strcmp(p->out_features[i].name, f->block->outputs[i]->name) != 0)
            milk_rule_matched(rr, NULL, "description output %d is '%s', main's is '%s'",
                          i, p->out_features[i].name, f->block->outputs[i]->name);
}

void milk_match_names(milk_rule_run *rr, const milk_op *op)
{
    if (!op) {
        for (int i = 0; i < rr->fn->n_inputs; i++)
            if (bad_name(rr->fn->inputs[i]->name))
                milk_rule_matched(rr, NULL, "input name '%s'", rr->fn->inputs[i]->name);
        match_description(rr);
        return;
    }
    if (!op->name || bad_name(op->name)) {
        milk_rule_matched(rr, op, "op name '%s'", op->name ? op->name : "");
        return;
    }
    for (int k = 0; k < op->n_outputs; k++)
        if (bad_name(op->outputs[k]->name)) {
            milk_rule_matched(rr, op, "output name '%s'", op->outputs[k]->name);
            return;
        }
}

static void sanitize(const char *s, const char *prefix, char *out, size_t n)
{
    milk_name_sanitize(s ? s : "", prefix, out, n);
}

/* Point the description entry called `from` (main only) at `to`. */
static void rename_feature(milk_rule_run *rr, const char *from, const char *to)
{
    milk_program *p = rr->p;
    if (!p->has_features || strcmp(rr->fn->name, "main") != 0) return;
    for (int i = 0; i < p->n_in_features; i++)
        if (strcmp(p->in_features[i].name, from) == 0) p->in_features[i].name = to;
    for (int i = 0; i < p->n_out_features; i++)
        if (strcmp(p->out_features[i].name, from) == 0) p->out_features[i].name = to;
}

static milk_status rename_var(milk_rule_run *rr, milk_var *v, int *count)
{
    if (!bad_name(v->name)) return MILK_OK;
    char clean[512], fresh[600];
    sanitize(v->name, "var_", clean, sizeof clean);
    snprintf(fresh, sizeof fresh, "%s", clean);
    for (int i = 0; milk_names_get(rr->fn->names, fresh); i++)
        snprintf(fresh, sizeof fresh, "%s_%d", clean, i);
    const char *old = v->name;
    MILK_TRY(milk_var_set_name(rr->ctx, v, fresh));
    rename_feature(rr, old, v->name);
    (*count)++;
    return MILK_OK;
}

static milk_status rename_block(milk_rule_run *rr, milk_block *b, int *vars,
                                int *ops)
{
    for (int i = 0; i < b->n_inputs; i++) MILK_TRY(rename_var(rr, b->inputs[i], vars));
    for (int i = 0; i < b->n_ops; i++) {
        milk_op *op = b->ops[i];
        if (!op->name || bad_name(op->name)) {
            char clean[512];
            sanitize(op->name, "op_", clean, sizeof clean);
            op->name = milk_arena_strdup(rr->p->arena, clean);
            if (!op->name) return milk_errorf(rr->ctx, MILK_ERR_NOMEM, "out of memory");
            (*ops)++;
        }
        for (int k = 0; k < op->n_outputs; k++) MILK_TRY(rename_var(rr, op->outputs[k], vars));
        for (int k = 0; k < op->n_blocks; k++) MILK_TRY(rename_block(rr, op->blocks[k], vars, ops));
    }
    return MILK_OK;
}

/* The description follows main's signature, position by position. */
static void align_description(milk_rule_run *rr, int *count)
{
    milk_program *p = rr->p;
    milk_function *f = rr->fn;
    if (!p->has_features || strcmp(f->name, "main") != 0) return;
    for (int i = 0; i < p->n_in_features && plain_input(f, i); i++)
        if (strcmp(p->in_features[i].name, plain_input(f, i)->name) != 0) {
            p->in_features[i].name = plain_input(f, i)->name;
            (*count)++;
        }
    for (int i = 0; i < p->n_out_features && i < f->block->n_outputs; i++)
        if (strcmp(p->out_features[i].name, f->block->outputs[i]->name) != 0) {
            p->out_features[i].name = f->block->outputs[i]->name;
            (*count)++;
        }
}

milk_status milk_fix_names(milk_rule_run *rr, milk_op *op)
{
    (void)op; /* the whole function is sanitized at once */
    int vars = 0, ops = 0, desc = 0;
    for (int i = 0; i < rr->fn->n_inputs; i++)
        MILK_TRY(rename_var(rr, rr->fn->inputs[i], &vars));
    MILK_TRY(rename_block(rr, rr->fn->block, &vars, &ops));
    align_description(rr, &desc);
    milk_fix_note(rr, "function '%s': %d var and %d op names sanitized, %d "
                      "description names aligned",
                  rr->fn->name, vars, ops, desc);
    return MILK_OK;
}

/* ---- io-types ------------------------------------------------------------------------- */

void milk_match_io_types(milk_rule_run *rr, const milk_op *op)
{
    char s[96];
    if (op) return;
    for (int i = 0; i < rr->fn->n_inputs; i++) {
        const milk_var *v = rr->fn->inputs[i];
        if (milk_io_kinds(&v->type))
            milk_rule_matched(rr, NULL, "input '%s' is %s %s", v->name,
                          milk_dtype_name(v->type.dtype),
                          milk_rule_shape(&v->type, s, sizeof s));
    }
    for (int i = 0; i < rr->fn->block->n_outputs; i++) {
        const milk_var *v = rr->fn->block->outputs[i];
        if (milk_io_kinds(&v->type))
            milk_rule_matched(rr, NULL, "output '%s' is %s %s", v->name,
                          milk_dtype_name(v->type.dtype),
                          milk_rule_shape(&v->type, s, sizeof s));
    }
}

/* The rule's notes: what each op added, then each input or output
 * changed. */
static milk_status note_op(void *user, const milk_io_change *ch, milk_op *op)
{
    (void)ch;
    milk_fix_note(user, "created %s '%s'", milk_ops[op->kind]->name, op->name);
    return MILK_OK;
}

static void note_change(milk_rule_run *rr, const milk_io_change *ch)
{
    char a[96], b[96];
    milk_fix_note(rr, "%s '%s': %s %s is now %s %s", ch->output ? "output" : "input",
                  ch->name, milk_dtype_name(ch->was.dtype),
                  milk_rule_shape(&ch->was, a, sizeof a), milk_dtype_name(ch->now.dtype),
                  milk_rule_shape(&ch->now, b, sizeof b));
}

/* The whole function at once (milk_pass_io_boundary). */
milk_status milk_fix_io_types(milk_rule_run *rr, milk_op *op)
{
    (void)op;
    milk_io_params params = {.op_added = note_op, .user = rr};
    milk_io_report report = {0};
    MILK_TRY(milk_pass_io_boundary(rr->ctx, rr->p, rr->fn, &params, &report));
    for (int i = 0; i < report.n; i++) note_change(rr, &report.changes[i]);
    return MILK_OK;
}
