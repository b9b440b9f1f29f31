/* capture.c: the values an extracted program needs for a bug report: run
 * the full program on the reference inputs and write what it computed
 * for the extracted program's inputs and outputs into one .npz. */
#include "verify.h"

#include <stdlib.h>

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

milk_status milk_extract_capture(milk_ctx *ctx, const milk_program *p,
                                 const milk_program *sub, const char *ref_path,
                                 const milk_verify_params *params,
                                 const char *out_path)
{
    milk_verify_params def = {0};
    if (!params) params = &def;
    const char *name = params->function ? params->function
                                        : milk_program_default_function(p);
    const milk_function *fn = milk_program_function(p, name);
    const milk_function *fs = milk_program_function(sub, "main");
    if (!fn) return milk_function_not_found(ctx, p, name);
    if (!fs)
        return milk_errorf(ctx, MILK_ERR_NOT_FOUND, "the extracted program has no function 'main'");
    const char **names = NULL;
    int n = 0;
    MILK_TRY(capture_names(ctx, fn, fs, &names, &n));
    milk_npz z = {0};
    vf_inputs in = {0};
    milk_runner *r = NULL;
    milk_status s = milk_npz_read(ctx, ref_path, &z);
    if (s == MILK_OK) s = vf_inputs_gather(ctx, fn, &z, ref_path, params, false, NULL, &in);
    if (s == MILK_OK) s = vf_run(ctx, p, &in, params, "run", false, names, n, &r);
    if (s == MILK_OK) s = milk_runner_save_npz(ctx, r, names, n, out_path);
    milk_runner_free(r);
    vf_inputs_release(&in);
    milk_npz_release(&z);
    free(names);
    return s;
}
