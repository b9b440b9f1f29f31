/* cmd_run.c: `milk run`: execute a program on .npy inputs with the
 * reference interpreter and write the outputs (and, with --keep-all, every
 * intermediate value) to an .npz keyed by var name. */
#include "cli.h"
#include "util/npy.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static const char *run_usage =
    "milk run PKG --input NAME=FILE.npy [--input ...] --output OUT.npz\n"
    "       [--precision as-declared|fp32] [--keep-all] [--reference] [--threads N]";

typedef struct run_args {
    const char *pkg, *output;
    const char *inputs[64];
    int n_inputs;
    milk_run_params params;
} run_args;

static int parse_args(int argc, char **argv, run_args *a)
{
    memset(a, 0, sizeof *a);
    for (int i = 0; i < argc; i++) {
        const char *v;
        if (cli_opt(argc, argv, &i, "--input", &v)) {
            if (!v || !strchr(v, '=') || a->n_inputs == 64)
                return cli_usage(run_usage, "--input takes NAME=FILE.npy");
            a->inputs[a->n_inputs++] = v;
        } else if (cli_opt(argc, argv, &i, "--output", &v)) {
            if (!v) return cli_usage(run_usage, "--output takes a file name");
            a->output = v;
        } else if (cli_opt(argc, argv, &i, "--precision", &v)) {
            if (v && strcmp(v, "fp32") == 0)
                a->params.precision = MILK_PRECISION_FP32;
            else if (v && strcmp(v, "as-declared") == 0)
                a->params.precision = MILK_PRECISION_AS_DECLARED;
            else
                return cli_usage(run_usage, "--precision is as-declared or fp32");
        } else if (cli_opt(argc, argv, &i, "--threads", &v)) {
            if (!cli_threads(v, &a->params.threads))
                return cli_usage(run_usage, "--threads takes a count from 1 to 256");
        } else if (strcmp(argv[i], "--keep-all") == 0) {
            a->params.keep_all = 1;
        } else if (strcmp(argv[i], "--reference") == 0) {
            a->params.reference = 1;
        } else if (argv[i][0] != '-' && !a->pkg) {
            a->pkg = argv[i];
        } else {
            return cli_usage(run_usage, "run: unexpected argument '%s'", argv[i]);
        }
    }
    if (!a->pkg || !a->output)
        return cli_usage(run_usage, "run needs a package and --output");
    return 0;
}

static milk_status set_input(milk_ctx *ctx, milk_runner *r,
                             const milk_function *fn, const char *spec)
{
    char name[256];
    const char *eq = strchr(spec, '=');
    snprintf(name, sizeof name, "%.*s", (int)(eq - spec), spec);
    milk_array a;
    MILK_TRY(milk_npy_read(ctx, eq + 1, &a));
    milk_var *v = milk_function_var(fn, name);
    if (v && milk_var_type(v)->dtype != a.type.dtype &&
        milk_var_producer(v) == NULL)
        fprintf(stderr, "milk: note: input '%s': converting %s data from %s "
                        "to the declared %s\n",
                name, milk_dtype_name(a.type.dtype), eq + 1,
                milk_dtype_name(milk_var_type(v)->dtype));
    milk_status s = milk_runner_set_input(ctx, r, name, &a.type, a.data);
    milk_array_release(&a);
    return s;
}

static void summarize(const char *name, const milk_tensor_type *t,
                      milk_runner *r, milk_ctx *ctx)
{
    int64_t n = milk_tensor_type_count(t);
    float *x = malloc((size_t)(n ? n : 1) * sizeof *x);
    if (!x || milk_runner_read(ctx, r, name, MILK_DTYPE_FP32, x,
                               (size_t)(n ? n : 1) * sizeof *x) != MILK_OK) {
        free(x);
        return;
    }
    double lo = INFINITY, hi = -INFINITY;
    int64_t bad = 0;
    for (int64_t i = 0; i < n; i++) {
        if (!isfinite(x[i])) { bad++; continue; }
        if (x[i] < lo) lo = x[i];
        if (x[i] > hi) hi = x[i];
    }
    printf("%s: [", name);
    for (int i = 0; i < t->rank; i++) printf("%s%lld", i ? ", " : "", (long long)t->dims[i]);
    printf("] %s min %.6g max %.6g non-finite %lld\n", milk_dtype_name(t->dtype),
           n > bad ? lo : NAN, n > bad ? hi : NAN, (long long)bad);
    free(x);
}

/* Outputs only, or (--keep-all) every value of the run. */
static milk_status write_outputs(milk_ctx *ctx, const run_args *a,
                                 const milk_function *fn, milk_runner *r)
{
    if (a->params.keep_all) return milk_runner_save_npz(ctx, r, NULL, 0, a->output);
    const milk_block *b = milk_function_block(fn);
    int n = milk_block_output_count(b);
    const char **names = malloc(((size_t)n + 1) * sizeof *names);
    if (!names) return milk_errorf(ctx, MILK_ERR_NOMEM, "out of memory");
    for (int i = 0; i < n; i++) names[i] = milk_var_name(milk_block_output(b, i));
    milk_status s = milk_runner_save_npz(ctx, r, names, n, a->output);
    free(names);
    return s;
}

static void report_overflow(const milk_runner *r)
{
    for (int i = 0; i < milk_runner_op_count(r); i++) {
        const milk_op_stats *st = milk_runner_op_stats(r, i);
        if (!st->n_overflow && !st->n_inf && !st->n_nan) continue;
        fprintf(stderr, "milk: op '%s' (%s): %lld values beyond fp16 range, "
                        "%lld inf, %lld NaN\n",
                milk_op_name(st->op), milk_op_type(st->op),
                (long long)st->n_overflow, (long long)st->n_inf,
                (long long)st->n_nan);
    }
}

int cmd_run(milk_ctx *ctx, int argc, char **argv)
{
    run_args a;
    int rc = parse_args(argc, argv, &a);
    if (rc) return rc;
    milk_program *p = NULL;
    milk_runner *r = NULL;
    milk_status s = milk_program_load(ctx, a.pkg, &p);
    if (s == MILK_OK) s = milk_runner_create(ctx, p, &a.params, &r);
    const milk_function *fn = p ? milk_program_function(p, "main") : NULL;
    for (int i = 0; s == MILK_OK && i < a.n_inputs; i++) s = set_input(ctx, r, fn, a.inputs[i]);
    if (s == MILK_OK) s = milk_runner_run(ctx, r);
    if (s == MILK_OK) s = write_outputs(ctx, &a, fn, r);
    if (s == MILK_OK) {
        const milk_block *b = milk_function_block(fn);
        for (int i = 0; i < milk_block_output_count(b); i++) {
            const char *nm = milk_var_name(milk_block_output(b, i));
            summarize(nm, milk_runner_type(r, nm), r, ctx);
        }
        report_overflow(r);
    }
    milk_runner_free(r);
    milk_program_free(p);
    return s == MILK_OK ? 0 : cli_fail(ctx, s);
}
