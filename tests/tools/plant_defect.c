/* plant_defect.c: plants a defect at a known op of a copy of a package,
 * for the tests of `milk verify`. The op's output var is renamed and the
 * planted op takes its name (and its uses), so a run with --keep-all
 * gives the defective values under the original names, as a device run
 * would.
 *
 *   plant_defect bias IN.mlpackage OP N OUT.mlpackage
 *     the Neural Engine's 1-D conv_transpose bias defect
 *     (docs/coreml-defects.md, convt1d-bias): the op's bias is taken out
 *     and added back by an `add` of a constant holding the bias at the
 *     first N positions of each channel and zeros beyond.
 *   plant_defect scale IN.mlpackage OP F OUT.mlpackage
 *     a `mul` by the scalar F (in the op's dtype) after the op: with a
 *     large F in an fp16 program, values beyond the fp16 range.
 */
#include "ir/ir.h"
#include "ops/op.h"

#include <stdio.h>
#include <stdlib.h>

static int fail(milk_ctx *ctx, const char *what)
{
    fprintf(stderr, "plant_defect: %s: %s\n", what, milk_ctx_error(ctx));
    return 2;
}

static milk_op *find(milk_function *f, const char *name, int *at)
{
    for (int i = 0; i < f->block->n_ops; i++)
        if (strcmp(f->block->ops[i]->name, name) == 0) {
            *at = i;
            return f->block->ops[i];
        }
    return NULL;
}

/* Drop the op's bias argument; its values go to bias[] (fp32). */
static milk_status take_bias(milk_ctx *ctx, milk_op *op, float **bias, int64_t *n)
{
    const milk_value *b = milk_op_const(op, "bias");
    if (!b) return milk_errorf(ctx, MILK_ERR_INVALID_ARG, "op has no constant bias");
    *n = milk_tensor_type_count(&b->type);
    *bias = calloc((size_t)*n + 1, sizeof **bias);
    if (!*bias) return MILK_ERR_NOMEM;
    for (int64_t i = 0; i < *n; i++) {
        double x;
        MILK_TRY(milk_value_get_f64(ctx, b, i, &x));
        (*bias)[i] = (float)x;
    }
    int a = 0;
    while (strcmp(op->args[a].param, "bias") != 0) a++;
    memmove(&op->args[a], &op->args[a + 1], (size_t)(op->n_args - a - 1) * sizeof *op->args);
    op->n_args--;
    return MILK_OK;
}

/* [1, C, L] (or [1, C, ..., L]): bias[c] where the last index < first. */
static milk_value *masked_bias(milk_arena *ar, const milk_tensor_type *yt, const float *bias,
                               int64_t first)
{
    milk_tensor_type t = *yt;
    t.dims[0] = 1;
    milk_value *v = milk_value_new_tensor(ar, &t, NULL);
    if (!v) return NULL;
    int64_t n = milk_tensor_type_count(&t), last = t.dims[t.rank - 1], per_c = n / t.dims[1];
    for (int64_t i = 0; i < n; i++) {
        float x = i % last < first ? bias[i / per_c] : 0.0f;
        if (t.dtype == MILK_DTYPE_FP16) ((uint16_t *)v->data.ptr)[i] = milk_fp32_to_fp16(x);
        else ((float *)v->data.ptr)[i] = x;
    }
    return v;
}

/* Rename op's output y to "<y>_<suffix>" and insert `type(x=y, y=c)`
 * named after y at `at`, taking every use of y. */
static milk_status wrap_output(milk_ctx *ctx, milk_function *f, milk_op *op, int at,
                               const char *type, const char *suffix, milk_value *c)
{
    milk_var *y = op->outputs[0];
    char yname[512], tmp[600];
    snprintf(yname, sizeof yname, "%s", y->name);
    snprintf(tmp, sizeof tmp, "%s_%s", yname, suffix);
    milk_var *cv = NULL;
    milk_op *w = NULL;
    MILK_TRY(milk_var_set_name(ctx, y, tmp));
    snprintf(tmp, sizeof tmp, "planted_%s", suffix);
    MILK_TRY(milk_block_insert_const(ctx, f->block, at + 1, tmp, c, &cv));
    milk_input in[] = {{"x", y}, {"y", cv}};
    MILK_TRY(milk_block_insert_op(ctx, f->block, at + 2, type, yname, in, 2, &w));
    milk_function_replace_uses(f, y, w->outputs[0]);
    ((milk_arg *)milk_op_arg(w, "x"))->b[0].var = y; /* it still reads the op */
    return MILK_OK;
}

static milk_status plant_bias(milk_ctx *ctx, milk_function *f, milk_op *op, int at,
                              int64_t first)
{
    float *bias = NULL;
    int64_t nb;
    milk_status s = take_bias(ctx, op, &bias, &nb);
    milk_value *c = NULL;
    if (s == MILK_OK) c = masked_bias(f->prog->arena, &op->outputs[0]->type, bias, first);
    free(bias);
    return s == MILK_OK ? wrap_output(ctx, f, op, at, "add", "bias", c) : s;
}

static milk_status plant_scale(milk_ctx *ctx, milk_function *f, milk_op *op, int at,
                               float factor)
{
    milk_tensor_type t = {op->outputs[0]->type.dtype, 0, {0}};
    uint16_t h = milk_fp32_to_fp16(factor);
    const void *data = t.dtype == MILK_DTYPE_FP16 ? (const void *)&h : (const void *)&factor;
    return wrap_output(ctx, f, op, at, "mul", "scale",
                       milk_value_new_tensor(f->prog->arena, &t, data));
}

int main(int argc, char **argv)
{
    if (argc != 6 || (strcmp(argv[1], "bias") != 0 && strcmp(argv[1], "scale") != 0)) {
        fprintf(stderr, "usage: plant_defect bias|scale IN.mlpackage OP N|F OUT.mlpackage\n");
        return 2;
    }
    milk_ctx *ctx;
    milk_program *p;
    if (milk_ctx_create(&ctx) != MILK_OK) return 2;
    if (milk_program_load(ctx, argv[2], &p) != MILK_OK) return fail(ctx, argv[2]);
    milk_function *f = milk_program_function(p, "main");
    int at = 0;
    milk_op *op = find(f, argv[3], &at);
    milk_status s = op ? MILK_OK : milk_errorf(ctx, MILK_ERR_NOT_FOUND, "no op");
    if (s == MILK_OK)
        s = argv[1][0] == 'b' ? plant_bias(ctx, f, op, at, atoll(argv[4]))
                              : plant_scale(ctx, f, op, at, strtof(argv[4], NULL));
    if (s == MILK_OK) s = milk_program_check(ctx, p);
    if (s == MILK_OK) s = milk_program_save(ctx, p, argv[5]);
    int rc = s == MILK_OK ? 0 : fail(ctx, argv[3]);
    milk_program_free(p);
    milk_ctx_free(ctx);
    return rc;
}
