/* save.c: writing a runner's values to an .npz keyed by var name, each in
 * the dtype its declaration implies: fp16 vars stay fp16 when emulating the
 * device (fp32 in fp32 mode), other floats fp32, integers int32, bools
 * bool. `milk run`, `milk extract` and the tests all read files made here. */
#include "run.h"
#include "../util/npy.h"

#include <stdlib.h>

/* The dtype a var is written in. */
static milk_dtype file_dtype(milk_dtype declared, milk_precision p)
{
    switch (milk_rt_store(declared)) {
    case MILK_DTYPE_FP32:
        return declared == MILK_DTYPE_FP16 && p == MILK_PRECISION_AS_DECLARED
                   ? MILK_DTYPE_FP16 : MILK_DTYPE_FP32;
    case MILK_DTYPE_BOOL: return MILK_DTYPE_BOOL;
    default: return MILK_DTYPE_INT32;
    }
}

/* Every var with a value after the run, inputs first, then op outputs in
 * program order. *names is malloc'd. */
static milk_status kept_names(milk_ctx *ctx, const milk_runner *r,
                              const milk_function *fn, const char ***names, int *n)
{
    *n = 0;
    *names = malloc(((size_t)fn->n_vars + 1) * sizeof **names);
    if (!*names) return milk_errorf(ctx, MILK_ERR_NOMEM, "out of memory");
    for (int i = 0; i < fn->n_inputs; i++) /* states: milk_state_save_npz */
        if (!fn->inputs[i]->is_state && milk_runner_type(r, fn->inputs[i]->name))
            (*names)[(*n)++] = fn->inputs[i]->name;
    for (int i = 0; i < fn->block->n_ops; i++) {
        const milk_op *op = fn->block->ops[i];
        for (int k = 0; k < op->n_outputs; k++)
            if (milk_runner_type(r, op->outputs[k]->name))
                (*names)[(*n)++] = op->outputs[k]->name;
    }
    return MILK_OK;
}

static milk_status read_one(milk_ctx *ctx, const milk_runner *r, const char *name,
                            milk_precision p, milk_array *a)
{
    const milk_tensor_type *t = milk_runner_type(r, name);
    if (!t)
        return milk_errorf(ctx, MILK_ERR_NOT_FOUND,
                           "no value for '%s' (not a var, or not kept)", name);
    milk_tensor_type ft = *t;
    ft.dtype = file_dtype(t->dtype, p);
    MILK_TRY(milk_array_init(ctx, &ft, a));
    uint64_t nb = 0;
    milk_dtype_nbytes(ft.dtype, milk_tensor_type_count(&ft), &nb);
    return milk_runner_read(ctx, r, name, ft.dtype, a->data, (size_t)nb);
}

milk_status milk_runner_save_npz(milk_ctx *ctx, const milk_runner *r,
                                 const char *const *names, int n,
                                 const char *path)
{
    const milk_function *fn = milk_runner_function(r);
    const char **all = NULL;
    if (!names) {
        MILK_TRY(kept_names(ctx, r, fn, &all, &n));
        names = all;
    }
    milk_array *arrays = calloc((size_t)n + 1, sizeof *arrays);
    milk_status s = arrays ? MILK_OK : milk_errorf(ctx, MILK_ERR_NOMEM, "out of memory");
    milk_precision p = milk_runner_precision(r);
    for (int i = 0; s == MILK_OK && i < n; i++) s = read_one(ctx, r, names[i], p, &arrays[i]);
    if (s == MILK_OK) s = milk_npz_write(ctx, path, names, arrays, n);
    for (int i = 0; arrays && i < n; i++) milk_array_release(&arrays[i]);
    free(arrays);
    free(all);
    return s;
}
