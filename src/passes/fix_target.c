/* fix_target.c: io-int8 (rules.def). Core ML takes int8 MultiArrays as
 * model inputs and outputs from specificationVersion 10 (iOS26) only
 * (Model.proto; coremltools' adjust_io_to_supported_types.py casts them
 * for older targets). Below iOS26 the rewrite declares such an input or
 * output int32 and casts to and from int8 inside, so that every op sees
 * the int8 values it saw before (an int8 input then takes int32 data in
 * int8's range). */
#include "rules.h"

#include <stdio.h>

static bool int8_io(const milk_var *v)
{
    return !v->is_state && v->type.dtype == MILK_DTYPE_INT8;
}

void milk_match_io_int8(milk_rule_run *rr, const milk_op *op)
{
    char s[96];
    if (op) return; /* a condition on the function's inputs and outputs */
    for (int i = 0; i < rr->fn->n_inputs; i++)
        if (int8_io(rr->fn->inputs[i]))
            milk_rule_matched(rr, NULL, "input '%s' is int8 %s", rr->fn->inputs[i]->name,
                              milk_rule_shape(&rr->fn->inputs[i]->type, s, sizeof s));
    for (int i = 0; i < rr->fn->block->n_outputs; i++)
        if (int8_io(rr->fn->block->outputs[i]))
            milk_rule_matched(rr, NULL, "output '%s' is int8 %s",
                              rr->fn->block->outputs[i]->name,
                              milk_rule_shape(&rr->fn->block->outputs[i]->type, s, sizeof s));
}

/* The recorded description entry called name (if any) is int32 now. */
static void retype_feature(milk_rule_run *rr, const char *name)
{
    const milk_feature *in, *out;
    int n_in, n_out;
    if (!milk_program_fn_features(rr->p, rr->fn, &in, &n_in, &out, &n_out)) return;
    for (int k = 0; k < 2; k++)
        for (int i = 0; i < (k ? n_out : n_in); i++) {
            milk_feature *f = (milk_feature *)(k ? out : in) + i; /* the program's */
            if (strcmp(f->name, name) == 0 && f->kind == MILK_FEATURE_ARRAY)
                f->array_dtype = 131104; /* ArrayDataType INT32 */
        }
}

/* cast(x, dtype) named after base, at index `at` of the function's block. */
static milk_status cast_at(milk_rule_run *rr, int at, milk_var *x, const char *dtype,
                           const char *base, milk_var **out)
{
    milk_block *b = rr->fn->block;
    milk_op *next = at < b->n_ops ? b->ops[at] : NULL;
    milk_var *dt;
    char name[300];
    snprintf(name, sizeof name, "%s_dtype", base);
    MILK_TRY(milk_fix_string(rr, next, name, dtype, &dt));
    milk_input in[] = {{"x", x}, {"dtype", dt}};
    return milk_fix_op_in(rr, b, next ? milk_block_index_of(b, next) : b->n_ops, "cast",
                          base, in, 2, out);
}

static milk_status fix_input(milk_rule_run *rr, milk_var *v)
{
    char base[300];
    milk_var *c;
    v->type.dtype = MILK_DTYPE_INT32;
    snprintf(base, sizeof base, "%s_int8", v->name);
    MILK_TRY(cast_at(rr, 0, v, "int8", base, &c));
    milk_function_replace_uses(rr->fn, v, c);
    MILK_TRY(milk_fix_rebind(rr, c->producer, "x", v));
    retype_feature(rr, v->name);
    milk_fix_note(rr, "input '%s' is int32, cast to int8 inside", v->name);
    return MILK_OK;
}

static milk_status fix_output(milk_rule_run *rr, int i)
{
    milk_block *b = rr->fn->block;
    milk_var *o = b->outputs[i], *c;
    char old[256], base[300], fresh[320];
    snprintf(old, sizeof old, "%s", o->name);
    snprintf(base, sizeof base, "%s_int8", old);
    milk_function_fresh_name(rr->fn, base, fresh, sizeof fresh);
    if (o->producer) MILK_TRY(milk_var_set_name(rr->ctx, o, fresh));
    MILK_TRY(cast_at(rr, b->n_ops, o, "int32", o->producer ? old : base, &c));
    b->outputs[i] = c;
    retype_feature(rr, c->name);
    milk_fix_note(rr, "output '%s' is int32, cast from int8 inside", c->name);
    return MILK_OK;
}

/* Every int8 input and output of the function at once. */
milk_status milk_fix_io_int8(milk_rule_run *rr, milk_op *op)
{
    (void)op;
    for (int i = 0; i < rr->fn->n_inputs; i++)
        if (int8_io(rr->fn->inputs[i])) MILK_TRY(fix_input(rr, rr->fn->inputs[i]));
    for (int i = 0; i < rr->fn->block->n_outputs; i++)
        if (int8_io(rr->fn->block->outputs[i])) MILK_TRY(fix_output(rr, i));
    return MILK_OK;
}
