/* capture.c: the values an extracted program needs for a bug report: run
 * the full program on the reference inputs and write what it computed
 * for the extracted program's inputs and outputs into one .npz. */
#include "verify.h"

#include <stdlib.h>

/* The dtype a value is written in, as `milk run` does: fp16 stays fp16
 * when emulating the device, integers int32, bools bool, floats fp32. */
static milk_dtype out_dtype(milk_dtype declared, milk_precision p)
{
    if (declared == MILK_DTYPE_FP16)
        return p == MILK_PRECISION_AS_DECLARED ? MILK_DTYPE_FP16 : MILK_DTYPE_FP32;
    if (declared == MILK_DTYPE_BOOL) return MILK_DTYPE_BOOL;
    if (declared == MILK_DTYPE_FP32 || declared == MILK_DTYPE_FP64 ||
        declared == MILK_DTYPE_BF16)
        return MILK_DTYPE_FP32;
    return MILK_DTYPE_INT32;
}

/* sub's input names, then its output names; each must be a var of fn. */
static milk_status capture_names(milk_ctx *ctx, const milk_function *fn,
                                 const milk_function *fs, const char ***out, int *n)
{
    int cap = fs->n_inputs + fs->block->n_outputs;
    const char **names = calloc((size_t)cap + 1, sizeof *names);
    if (!names) return milk_errorf(ctx, MILK_ERR_NOMEM, "out of memory");
    *n = 0;
    for (int i = 0; i < fs->n_inputs; i++) names[(*n)++] = fs->inputs[i]->name;
    for (int i = 0; i < fs->block->n_outputs; i++) names[(*n)++] = fs->block->outputs[i]->name;
    for (int i = 0; i < *n; i++)
        if (!milk_function_var(fn, names[i])) {
            milk_status s = milk_errorf(ctx, MILK_ERR_NOT_FOUND,
                                        "'%s' of the extracted program is no var of the "
                                        "source program", names[i]);
            free(names);
            return s;
        }
    *out = names;
    return MILK_OK;
}

static milk_status read_all(milk_ctx *ctx, const milk_runner *r, const char *const *names,
                            int n, milk_precision prec, milk_array *arrays)
{
    for (int i = 0; i < n; i++) {
        milk_tensor_type t = *milk_runner_type(r, names[i]);
        t.dtype = out_dtype(t.dtype, prec);
        MILK_TRY(milk_array_init(ctx, &t, &arrays[i]));
        uint64_t nb = 0;
        milk_dtype_nbytes(t.dtype, milk_tensor_type_count(&t), &nb);
        MILK_TRY(milk_runner_read(ctx, r, names[i], t.dtype, arrays[i].data, (size_t)nb));
    }
    return MILK_OK;
}

milk_status milk_extract_capture(milk_ctx *ctx, const milk_program *p,
                                 const milk_program *sub, const char *ref_path,
                                 const milk_verify_params *params,
                                 const char *out_path)
{
    milk_verify_params def = {0};
    if (!params) params = &def;
    const milk_function *fn = milk_program_function(p, "main");
    const milk_function *fs = milk_program_function(sub, "main");
    if (!fn || !fs)
        return milk_errorf(ctx, MILK_ERR_NOT_FOUND, "the program has no function 'main'");
    const char **names = NULL;
    int n = 0;
    MILK_TRY(capture_names(ctx, fn, fs, &names, &n));
    milk_npz z = {0};
    vf_inputs in = {0};
    milk_runner *r = NULL;
    milk_array *arrays = calloc((size_t)n + 1, sizeof *arrays);
    milk_status s = arrays ? milk_npz_read(ctx, ref_path, &z)
                           : milk_errorf(ctx, MILK_ERR_NOMEM, "out of memory");
    if (s == MILK_OK) s = vf_inputs_gather(ctx, fn, &z, ref_path, params, false, NULL, &in);
    if (s == MILK_OK) s = vf_run(ctx, p, &in, params, "run", false, names, n, &r);
    if (s == MILK_OK) s = read_all(ctx, r, names, n, params->precision, arrays);
    if (s == MILK_OK) s = milk_npz_write(ctx, out_path, names, arrays, n);
    for (int i = 0; arrays && i < n; i++) milk_array_release(&arrays[i]);
    free(arrays);
    milk_runner_free(r);
    vf_inputs_release(&in);
    milk_npz_release(&z);
    free(names);
    return s;
}
