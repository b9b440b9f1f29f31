/* state.c: states and functions in the IR.
 *
 * A state (iOS18) is a function input of MIL type state<tensor<...>>: a
 * tensor that Core ML keeps from one prediction to the next (a KV cache).
 * Only two ops take a state: read_state copies it into a tensor, and
 * write_state (coremltools' coreml_update_state, exported as write_state
 * followed by read_state) stores a tensor into it; the op table marks
 * their `input` with MILK_P_STATE and the signature check refuses a state
 * anywhere else. Core ML's own rules (coremltools backend/mil/load.py and
 * mlmodel's InterfaceValidators.cpp) are checked here: states are fp16
 * with a static shape of rank >= 1, need specificationVersion 9 (iOS18),
 * and a function with states takes no flexible-shape inputs.
 *
 * Also here: the default function of a multifunction package and the
 * recorded description of each function. */
#include "ir.h"
#include "../ops/op.h"

#include <stdio.h>

milk_status milk_function_add_state(milk_ctx *ctx, milk_function *f,
                                    const char *name,
                                    const milk_tensor_type *type,
                                    milk_var **out)
{
    milk_var *v;
    if (type->rank < 0)
        return milk_errorf(ctx, MILK_ERR_INVALID_ARG,
                           "function '%s': state '%s': a state needs a known "
                           "shape",
                           f->name, name);
    MILK_TRY(milk_function_add_input(ctx, f, name, type, &v));
    v->is_state = true;
    if (out) *out = v;
    return MILK_OK;
}

int milk_var_is_state(const milk_var *v)
{
    return v && v->is_state;
}

int milk_function_state_count(const milk_function *f)
{
    int n = 0;
    for (int i = 0; i < f->n_inputs; i++) n += f->inputs[i]->is_state;
    return n;
}

/* "fp16 [1, 2, 16, 8]" */
static const char *type_str(const milk_tensor_type *t, char *buf, size_t n)
{
    const char *dn = milk_dtype_name(t->dtype);
    size_t k = (size_t)snprintf(buf, n, "%s [", dn ? dn : "?");
    for (int i = 0; i < t->rank && k < n; i++)
        k += (size_t)(t->dims[i] < 0
                          ? snprintf(buf + k, n - k, "%s?", i ? ", " : "")
                          : snprintf(buf + k, n - k, "%s%lld", i ? ", " : "",
                                     (long long)t->dims[i]));
    if (k < n) snprintf(buf + k, n - k, "]");
    return buf;
}

/* A state may not leave a block as one of its outputs. */
static milk_status block_outputs_plain(milk_ctx *ctx, const milk_block *b)
{
    for (int i = 0; i < b->n_outputs; i++)
        if (b->outputs[i] && b->outputs[i]->is_state)
            return milk_errorf(ctx, MILK_ERR_INVALID_MODEL,
                               "state '%s' is a block output: read it with "
                               "read_state first",
                               b->outputs[i]->name);
    for (int i = 0; i < b->n_ops; i++)
        for (int j = 0; j < b->ops[i]->n_blocks; j++)
            MILK_TRY(block_outputs_plain(ctx, b->ops[i]->blocks[j]));
    return MILK_OK;
}

milk_status milk_function_check_states(milk_ctx *ctx, const milk_function *f)
{
    const milk_var *state = NULL, *flexible = NULL;
    for (int i = 0; i < f->n_inputs; i++) {
        const milk_var *v = f->inputs[i];
        if (!v->is_state) {
            if (!flexible && milk_tensor_type_count(&v->type) < 0) flexible = v;
            continue;
        }
        char ts[160];
        if (!state) state = v;
        if (v->type.dtype != MILK_DTYPE_FP16 || v->type.rank < 1 ||
            milk_tensor_type_count(&v->type) < 0)
            return milk_errorf(ctx, MILK_ERR_INVALID_MODEL,
                               "function '%s': state '%s' is %s: Core ML "
                               "states are fp16 with a static shape of rank "
                               ">= 1",
                               f->name, v->name,
                               type_str(&v->type, ts, sizeof ts));
    }
    if (!state) return MILK_OK;
    if (f->prog->target < MILK_TARGET_IOS18 || f->opset < MILK_TARGET_IOS18)
        return milk_errorf(ctx, MILK_ERR_INVALID_MODEL,
                           "function '%s': state '%s': states need "
                           "deployment target iOS18 (specificationVersion 9) "
                           "or later, the program targets %s (opset %s)",
                           f->name, state->name,
                           milk_target_name(f->prog->target),
                           milk_target_name(f->opset));
    if (flexible)
        return milk_errorf(ctx, MILK_ERR_INVALID_MODEL,
                           "function '%s': input '%s' has a flexible shape: "
                           "Core ML takes no flexible inputs in a model with "
                           "states (state '%s')",
                           f->name, flexible->name, state->name);
    milk_status s = block_outputs_plain(ctx, f->block);
    if (s != MILK_OK) milk_error_prefix(ctx, "function '%s'", f->name);
    return s;
}

/* ---- functions -------------------------------------------------------------- */

milk_status milk_program_set_default_function(milk_ctx *ctx, milk_program *p,
                                              const char *name)
{
    if (!milk_program_function(p, name))
        return milk_errorf(ctx, MILK_ERR_NOT_FOUND,
                           "no function '%s' to make the default", name);
    const char *d = milk_arena_strdup(p->arena, name);
    if (!d) return milk_errorf(ctx, MILK_ERR_NOMEM, "out of memory");
    p->default_function = d;
    return MILK_OK;
}

const char *milk_program_default_function(const milk_program *p)
{
    if (p->default_function) return p->default_function;
    if (milk_program_function(p, "main") || p->n_functions == 0) return "main";
    return p->functions[0]->name;
}

bool milk_program_fn_features(const milk_program *p, const milk_function *f,
                              const milk_feature **in, int *n_in,
                              const milk_feature **out, int *n_out)
{
    for (int i = 0; i < p->n_fn_features; i++) {
        const milk_fn_features *ff = &p->fn_features[i];
        if (strcmp(ff->function, f->name) != 0) continue;
        *in = ff->in;
        *n_in = ff->n_in;
        *out = ff->out;
        *n_out = ff->n_out;
        return true;
    }
    if (!p->has_features || p->n_fn_features || strcmp(f->name, "main") != 0)
        return false;
    *in = p->in_features;
    *n_in = p->n_in_features;
    *out = p->out_features;
    *n_out = p->n_out_features;
    return true;
}

/* ---- coreml_update_state ------------------------------------------------------ */

milk_status milk_block_insert_update_state(milk_ctx *ctx, milk_block *b,
                                           int at, const char *name,
                                           const milk_input *inputs,
                                           int n_inputs, milk_op **out)
{
    milk_var *state = NULL, *value = NULL;
    for (int i = 0; i < n_inputs; i++) {
        const char *p = inputs[i].param ? inputs[i].param : "";
        milk_var **slot = strcmp(p, "state") == 0   ? &state
                          : strcmp(p, "value") == 0 ? &value
                                                    : NULL;
        if (!slot || *slot)
            return milk_errorf(ctx, MILK_ERR_TYPE,
                               "op '%s' (coreml_update_state): input '%s': "
                               "%s",
                               name, p, slot ? "given twice" : "unknown input");
        *slot = inputs[i].var;
    }
    if (!state || !value)
        return milk_errorf(ctx, MILK_ERR_TYPE,
                           "op '%s' (coreml_update_state): input '%s': "
                           "required input is missing",
                           name, state ? "value" : "state");
    char wname[512];
    if (snprintf(wname, sizeof wname, "%s_write_state", name) >= (int)sizeof wname)
        return milk_errorf(ctx, MILK_ERR_INVALID_ARG, "op name too long");
    milk_input w[] = {{"input", state}, {"data", value}};
    milk_input r[] = {{"input", state}};
    milk_op *wop;
    MILK_TRY(milk_block_insert_op(ctx, b, at, "write_state", wname, w, 2, &wop));
    milk_status s = milk_block_insert_op(ctx, b, at + 1, "read_state", name, r, 1, out);
    if (s != MILK_OK) milk_block_remove(b, wop); /* leave b as it was */
    return s;
}

milk_status milk_function_not_found(milk_ctx *ctx, const milk_program *p,
                                    const char *name)
{
    char list[512] = "";
    for (int i = 0; i < p->n_functions; i++) {
        size_t n = strlen(list);
        snprintf(list + n, sizeof list - n, "%s'%s'", i ? ", " : "",
                 p->functions[i]->name);
    }
    return milk_errorf(ctx, MILK_ERR_NOT_FOUND,
                       "no function '%s' (the program's functions: %s; the "
                       "default is '%s')",
                       name, p->n_functions ? list : "none",
                       milk_program_default_function(p));
}
