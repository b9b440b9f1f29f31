/* variant.c: the variants of an extracted program one tries when
 * isolating a defect: the bias replaced by zeros (does the defect live in
 * the bias?), and a 1-D conv or conv_transpose written as 2-D (the form
 * the known Neural Engine bias defect does not hit; docs/coreml-defects.md,
 * convt1d-bias). */
#include "verify.h"

#include <stdio.h>

static milk_status nomem(milk_ctx *ctx)
{
    return milk_errorf(ctx, MILK_ERR_NOMEM, "out of memory");
}

static bool is_conv(const milk_op *op)
{
    return op->kind == MILK_OP_conv || op->kind == MILK_OP_conv_transpose;
}

/* A fresh var name "<base><suffix>" in f. */
static void fresh(const milk_function *f, const char *base, const char *suffix,
                  char *buf, size_t n)
{
    char want[512];
    int k = snprintf(want, sizeof want, "%.400s", base);
    snprintf(want + k, sizeof want - (size_t)k, "%.100s", suffix);
    milk_function_fresh_name(f, want, buf, n);
}

/* ---- zero bias ------------------------------------------------------------- */

/* Bind a zero const of the bias's type, inserted just before op (at *i). */
static milk_status zero_bias(milk_ctx *ctx, milk_function *f, int *i)
{
    milk_op *op = f->block->ops[*i];
    milk_arg *arg = (milk_arg *)milk_op_arg(op, "bias");
    const milk_tensor_type *t = milk_op_in_type(op, "bias");
    char name[512];
    fresh(f, op->name, "_zero_bias", name, sizeof name);
    milk_var *z;
    MILK_TRY(milk_block_insert_const(ctx, f->block, *i, name,
                                     milk_value_new_tensor(f->prog->arena, t, NULL), &z));
    (*i)++;
    arg->b[0] = (milk_binding){z, NULL};
    return MILK_OK;
}

static milk_status apply_zero_bias(milk_ctx *ctx, milk_function *f, int *n)
{
    for (int i = 0; i < f->block->n_ops; i++) {
        const milk_op *op = f->block->ops[i];
        bool fits = is_conv(op) || op->kind == MILK_OP_linear;
        if (!fits || milk_op_in_count(op, "bias") != 1) continue;
        MILK_TRY(zero_bias(ctx, f, &i));
        (*n)++;
    }
    return MILK_OK;
}

/* ---- 1-D as 2-D --------------------------------------------------------------- */

/* Bind param to an inline int32 vector (replacing what was bound). */
static milk_status set_ints(milk_ctx *ctx, milk_function *f, milk_op *op,
                            const char *param, const int32_t *v, int n)
{
    milk_tensor_type t = {MILK_DTYPE_INT32, 1, {n}};
    milk_value *val = milk_value_new_tensor(f->prog->arena, &t, v);
    if (!val) return nomem(ctx);
    milk_arg *arg = (milk_arg *)milk_op_arg(op, param);
    if (!arg) return milk_op_bind(ctx, f->prog->arena, op, param, NULL, val);
    arg->b[0] = (milk_binding){NULL, val};
    arg->n = 1;
    return MILK_OK;
}

/* strides (s) -> (s, 1), dilations (d) -> (d, 1), pad (p0, p1) -> (p0,
 * p1, 0, 0), output_shape (n, c, l) -> (n, c, l, 1). Absent strides and
 * dilations are written out (Core ML wants them in practice). */
static milk_status lift_params(milk_ctx *ctx, milk_function *f, milk_op *op)
{
    static const char *const names[] = {"strides", "dilations", "pad", "output_shape"};
    static const int lens[] = {1, 1, 2, 3};
    for (int k = 0; k < 4; k++) {
        int64_t v[8];
        int n;
        bool present;
        MILK_TRY(milk_op_ints(ctx, op, names[k], v, 8, &n, &present));
        if (!present && k >= 2) continue;
        if (present && n != lens[k])
            return milk_op_fail(ctx, op, names[k], "expected %d values for a 1-D op, got %d",
                                lens[k], n);
        int32_t w[4] = {1, 1, 0, 0};
        for (int j = 0; present && j < n; j++) w[j] = (int32_t)v[j];
        if (k == 3) w[3] = 1;
        MILK_TRY(set_ints(ctx, f, op, names[k], w, k == 2 ? 4 : k == 3 ? 4 : 2));
    }
    return MILK_OK;
}

/* Insert `expand_dims(param's var, axes)` before op (at *i) and bind its
 * result to param. */
static milk_status expand_input(milk_ctx *ctx, milk_function *f, milk_op *op, int *i,
                                const char *param, milk_var *axes)
{
    milk_var *x = milk_op_var(op, param);
    if (!x)
        return milk_op_fail(ctx, op, param, "an inline value cannot be lifted to 2-D");
    char name[512];
    fresh(f, x->name, "_2d", name, sizeof name);
    milk_input in[] = {{"x", x}, {"axes", axes}};
    milk_op *e;
    MILK_TRY(milk_block_insert_op(ctx, f->block, *i, "expand_dims", name, in, 2, &e));
    (*i)++;
    ((milk_arg *)milk_op_arg(op, param))->b[0].var = e->outputs[0];
    return MILK_OK;
}

/* A constant weight [.., K] becomes a constant [.., K, 1] with the same
 * elements; a computed one goes through expand_dims. */
static milk_status lift_weight(milk_ctx *ctx, milk_function *f, milk_op *op, int *i,
                               milk_var *axes)
{
    const milk_value *w = milk_op_const(op, "weight");
    if (!w || w->type.rank != 3) return expand_input(ctx, f, op, i, "weight", axes);
    milk_value *w2 = milk_arena_memdup(f->prog->arena, w, sizeof *w);
    if (!w2) return nomem(ctx);
    w2->type.rank = 4;
    w2->type.dims[3] = 1;
    char name[512];
    fresh(f, op->name, "_weight_2d", name, sizeof name);
    milk_var *wv;
    MILK_TRY(milk_block_insert_const(ctx, f->block, *i, name, w2, &wv));
    (*i)++;
    milk_arg *arg = (milk_arg *)milk_op_arg(op, "weight");
    arg->b[0] = (milk_binding){wv, NULL};
    return MILK_OK;
}

/* The op now yields [N, C, L, 1]: its output var gets a new name and a
 * squeeze after it takes the old name and every use. */
static milk_status squeeze_output(milk_ctx *ctx, milk_function *f, milk_op *op, int *i,
                                  milk_var *axes)
{
    milk_var *y = op->outputs[0];
    char old[512], name[512];
    snprintf(old, sizeof old, "%s", y->name);
    fresh(f, old, "_2d", name, sizeof name);
    MILK_TRY(milk_var_set_name(ctx, y, name));
    MILK_TRY(milk_op_reinfer(ctx, op));
    milk_input in[] = {{"x", y}, {"axes", axes}};
    milk_op *sq;
    MILK_TRY(milk_block_insert_op(ctx, f->block, *i + 1, "squeeze", old, in, 2, &sq));
    /* The var takes the old name; the op gets its own, as op names are
     * unique in a program. */
    snprintf(name, sizeof name, "%.500s_squeeze", op->name);
    if (!(sq->name = milk_arena_strdup(f->prog->arena, name))) return nomem(ctx);
    milk_function_replace_uses(f, y, sq->outputs[0]);
    ((milk_arg *)milk_op_arg(sq, "x"))->b[0].var = y; /* undo for its own input */
    (*i)++;
    return MILK_OK;
}

static milk_status lift_op(milk_ctx *ctx, milk_function *f, int *i)
{
    milk_op *op = f->block->ops[*i];
    char name[512];
    fresh(f, op->name, "_lift_axes", name, sizeof name);
    milk_tensor_type t = {MILK_DTYPE_INT32, 1, {1}};
    milk_var *axes;
    MILK_TRY(milk_block_insert_const(ctx, f->block, *i, name,
                                     milk_value_new_tensor(f->prog->arena, &t, &(int32_t){-1}),
                                     &axes));
    (*i)++;
    MILK_TRY(expand_input(ctx, f, op, i, "x", axes));
    MILK_TRY(lift_weight(ctx, f, op, i, axes));
    MILK_TRY(lift_params(ctx, f, op));
    return squeeze_output(ctx, f, op, i, axes);
}

static milk_status apply_lift_1d(milk_ctx *ctx, milk_function *f, int *n)
{
    for (int i = 0; i < f->block->n_ops; i++) {
        const milk_op *op = f->block->ops[i];
        const milk_tensor_type *x = milk_op_in_type(op, "x");
        if (!is_conv(op) || !x || x->rank != 3 || op->n_outputs != 1) continue;
        MILK_TRY(lift_op(ctx, f, &i));
        (*n)++;
    }
    return MILK_OK;
}

milk_status vf_variant_apply(milk_ctx *ctx, milk_function *f,
                             milk_extract_variant variant)
{
    int n = 0;
    bool zb = variant == MILK_EXTRACT_ZERO_BIAS;
    MILK_TRY(zb ? apply_zero_bias(ctx, f, &n) : apply_lift_1d(ctx, f, &n));
    if (n == 0)
        return milk_errorf(ctx, MILK_ERR_INVALID_ARG, "%s",
                           zb ? "variant zero-bias: no extracted op has a bias (it "
                                "applies to conv, conv_transpose and linear)"
                              : "variant lift-1d: no extracted op is a conv or "
                                "conv_transpose on a rank-3 input");
    return milk_function_dce(ctx, f, NULL);
}
