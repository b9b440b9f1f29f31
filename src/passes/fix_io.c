/* fix_io.c: the rules on a function's boundary and names: names (sanitize
 * identifiers as coremltools' sanitize_name_strings does, keeping the model
 * description consistent) and io-types (int64, bool and rank-0 model
 * inputs and outputs become int32 / shape [1], converted inside). */
#include "rules.h"


/* ArrayFeatureType.ArrayDataType code of INT32. */
#define ARRAY_INT32 131104

/* A name coremltools would change. */
static bool bad_name(const char *s)
{
    return !milk_is_identifier(s) || strchr(s, '@') || milk_name_is_reserved(s);
}

/* ---- names --------------------------------------------------------------------------- */

/* The main function's description entries that disagree with its
 * signature (the writer would then drop the recorded description). */
static void match_description(milk_rule_run *rr)
{
    const milk_program *p = rr->p;
    const milk_function *f = rr->fn;
    if (!p->has_features || strcmp(f->name, "main") != 0) return;
    for (int i = 0; i < p->n_in_features && i < f->n_inputs; i++)
        if (strcmp(p->in_features[i].name, f->inputs[i]->name) != 0)
            milk_rule_matched(rr, NULL, "description input %d is '%s', main's is '%s'",
                          i, p->in_features[i].name, f->inputs[i]->name);
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
    for (int i = 0; i < p->n_in_features && i < f->n_inputs; i++)
        if (strcmp(p->in_features[i].name, f->inputs[i]->name) != 0) {
            p->in_features[i].name = f->inputs[i]->name;
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

static bool bad_io(const milk_tensor_type *t)
{
    return t->dtype == MILK_DTYPE_INT64 || t->dtype == MILK_DTYPE_BOOL ||
           t->rank == 0;
}

void milk_match_io_types(milk_rule_run *rr, const milk_op *op)
{
    char s[96];
    if (op) return;
    for (int i = 0; i < rr->fn->n_inputs; i++) {
        const milk_var *v = rr->fn->inputs[i];
        if (bad_io(&v->type))
            milk_rule_matched(rr, NULL, "input '%s' is %s %s", v->name,
                          milk_dtype_name(v->type.dtype),
                          milk_rule_shape(&v->type, s, sizeof s));
    }
    for (int i = 0; i < rr->fn->block->n_outputs; i++) {
        const milk_var *v = rr->fn->block->outputs[i];
        if (bad_io(&v->type))
            milk_rule_matched(rr, NULL, "output '%s' is %s %s", v->name,
                          milk_dtype_name(v->type.dtype),
                          milk_rule_shape(&v->type, s, sizeof s));
    }
}

/* The description entry of var v (main only) takes v's type. */
static void update_feature(milk_rule_run *rr, const milk_var *v)
{
    milk_program *p = rr->p;
    if (!p->has_features || strcmp(rr->fn->name, "main") != 0) return;
    for (int k = 0; k < 2; k++) {
        milk_feature *fs = k ? p->out_features : p->in_features;
        int n = k ? p->n_out_features : p->n_in_features;
        for (int i = 0; i < n; i++) {
            if (strcmp(fs[i].name, v->name) != 0 || fs[i].kind != MILK_FEATURE_ARRAY)
                continue;
            fs[i].rank = v->type.rank;
            memcpy(fs[i].shape, v->type.dims, sizeof fs[i].shape);
            if (v->type.dtype == MILK_DTYPE_INT32) fs[i].array_dtype = ARRAY_INT32;
        }
    }
}

/* A const at index *at of the function's block (inputs are converted at
 * the top of the block, before any op). */
static milk_status const_at(milk_rule_run *rr, int *at, const char *base,
                            const milk_tensor_type *t, const void *data,
                            milk_var **out)
{
    char name[300];
    milk_function_fresh_name(rr->fn, base, name, sizeof name);
    milk_value *v = milk_value_new_tensor(rr->p->arena, t, data);
    if (!v) return milk_errorf(rr->ctx, MILK_ERR_NOMEM, "out of memory");
    return milk_block_insert_const(rr->ctx, rr->fn->block, (*at)++, name, v, out);
}

/* An input of int64 / bool / rank 0 becomes int32 of shape [1]; a squeeze
 * and a cast after it give the ops what they had. */
static milk_status fix_input(milk_rule_run *rr, milk_var *v, int *at)
{
    milk_tensor_type was = v->type;
    milk_var *cur = v, *axes, *dt;
    milk_op *first = NULL;
    char base[256];
    snprintf(base, sizeof base, "%s_boundary", v->name);
    if (v->type.dtype == MILK_DTYPE_INT64 || v->type.dtype == MILK_DTYPE_BOOL)
        v->type.dtype = MILK_DTYPE_INT32;
    if (was.rank == 0) {
        v->type.rank = 1;
        v->type.dims[0] = 1;
        int32_t zero = 0;
        milk_tensor_type at1 = {MILK_DTYPE_INT32, 1, {1}};
        MILK_TRY(const_at(rr, at, base, &at1, &zero, &axes));
        milk_input in[] = {{"x", cur}, {"axes", axes}};
        MILK_TRY(milk_fix_op_in(rr, rr->fn->block, (*at)++, "squeeze", base, in, 2, &cur));
        first = cur->producer;
    }
    if (was.dtype == MILK_DTYPE_BOOL) {
        const char *bool_name = "bool";
        milk_tensor_type str = {MILK_DTYPE_STRING, 0, {0}};
        MILK_TRY(const_at(rr, at, base, &str, &bool_name, &dt));
        milk_input in[] = {{"x", cur}, {"dtype", dt}};
        MILK_TRY(milk_fix_op_in(rr, rr->fn->block, (*at)++, "cast", base, in, 2, &cur));
        if (!first) first = cur->producer;
    }
    if (first) {
        milk_function_replace_uses(rr->fn, v, cur);
        MILK_TRY(milk_fix_rebind(rr, first, "x", v));
    }
    char a[96], b[96];
    milk_fix_note(rr, "input '%s': %s %s is now %s %s", v->name,
                  milk_dtype_name(was.dtype), milk_rule_shape(&was, a, sizeof a),
                  milk_dtype_name(v->type.dtype), milk_rule_shape(&v->type, b, sizeof b));
    update_feature(rr, v);
    return MILK_OK;
}

/* Re-infer every op of the block in order, after input types changed. */
static milk_status reinfer_all(milk_rule_run *rr)
{
    milk_block *b = rr->fn->block;
    for (int i = 0; i < b->n_ops; i++)
        if (b->ops[i]->kind != MILK_OP_const_)
            MILK_TRY(milk_op_reinfer(rr->ctx, b->ops[i]));
    return MILK_OK;
}

/* Output i of int64 / bool / rank 0: a cast to int32 and an expand_dims to
 * [1] after it; the last new var takes the output's name. */
static milk_status fix_output(milk_rule_run *rr, int i)
{
    milk_block *b = rr->fn->block;
    milk_var *o = b->outputs[i], *cur = o, *dt, *axes;
    char name[256], base[300], fresh[320];
    snprintf(name, sizeof name, "%s", o->name);
    snprintf(base, sizeof base, "%s_value", name);
    milk_function_fresh_name(rr->fn, base, fresh, sizeof fresh);
    MILK_TRY(milk_var_set_name(rr->ctx, o, fresh));
    if (o->type.dtype == MILK_DTYPE_INT64 || o->type.dtype == MILK_DTYPE_BOOL) {
        MILK_TRY(milk_fix_string(rr, NULL, fresh, "int32", &dt));
        milk_input in[] = {{"x", cur}, {"dtype", dt}};
        MILK_TRY(milk_fix_op_in(rr, b, b->n_ops, "cast", fresh, in, 2, &cur));
    }
    if (o->type.rank == 0) {
        int64_t zero = 0;
        MILK_TRY(milk_fix_ints(rr, NULL, fresh, &zero, 1, &axes));
        milk_input in[] = {{"x", cur}, {"axes", axes}};
        MILK_TRY(milk_fix_op_in(rr, b, b->n_ops, "expand_dims", fresh, in, 2, &cur));
    }
    b->outputs[i] = cur;
    MILK_TRY(milk_var_set_name(rr->ctx, cur, name));
    if (cur->producer && cur != o) cur->producer->name = cur->name;
    char a[96], c[96];
    milk_fix_note(rr, "output '%s': %s %s is now %s %s", name, milk_dtype_name(o->type.dtype),
                  milk_rule_shape(&o->type, a, sizeof a), milk_dtype_name(cur->type.dtype),
                  milk_rule_shape(&cur->type, c, sizeof c));
    update_feature(rr, cur);
    return MILK_OK;
}

milk_status milk_fix_io_types(milk_rule_run *rr, milk_op *op)
{
    (void)op;
    int at = 0;
    bool changed = false;
    for (int i = 0; i < rr->fn->n_inputs; i++)
        if (bad_io(&rr->fn->inputs[i]->type)) {
            MILK_TRY(fix_input(rr, rr->fn->inputs[i], &at));
            changed = true;
        }
    if (changed) MILK_TRY(reinfer_all(rr));
    for (int i = 0; i < rr->fn->block->n_outputs; i++)
        if (bad_io(&rr->fn->block->outputs[i]->type))
            MILK_TRY(fix_output(rr, i));
    return MILK_OK;
}
