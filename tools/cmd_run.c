/* cmd_run.c: `milk run`: execute a program on .npy inputs with the
 * reference interpreter and write the outputs (and, with --keep-all, every
 * intermediate value) to an .npz keyed by var name. A stateful program
 * runs for --steps N predictions with one state object; inputs then come
 * per step from an .npz (NAME@k, or NAME for every step) and the results
 * are keyed NAME@k, with each state after step k as STATE@k. */
#include "cli.h"
#include "util/npy.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static const char *run_usage =
    "milk run PKG [--input NAME=FILE.npy ...] [--inputs FILE.npz] --output OUT.npz\n"
    "       [--function NAME] [--steps N] [--state-in S.npz] [--state-out S.npz]\n"
    "       [--precision as-declared|fp32] [--keep-all] [--reference] [--threads N]";

typedef struct run_args {
    const char *pkg, *output;
    const char *inputs[64];
    int n_inputs;
    const char *npz;            /* --inputs */
    const char *state_in, *state_out;
    int steps;                  /* 0: one run, results by plain names */
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
        } else if (cli_opt(argc, argv, &i, "--inputs", &v)) {
            if (!v) return cli_usage(run_usage, "--inputs takes an .npz file");
            a->npz = v;
        } else if (cli_opt(argc, argv, &i, "--function", &v)) {
            if (!v) return cli_usage(run_usage, "--function takes a function name");
            a->params.function = v;
        } else if (cli_opt(argc, argv, &i, "--steps", &v)) {
            char *end;
            long n = v ? strtol(v, &end, 10) : 0;
            if (!v || *end || n < 1 || n > 1000000)
                return cli_usage(run_usage, "--steps takes a count from 1 to 1000000");
            a->steps = (int)n;
        } else if (cli_opt(argc, argv, &i, "--state-in", &v)) {
            if (!v) return cli_usage(run_usage, "--state-in takes an .npz file");
            a->state_in = v;
        } else if (cli_opt(argc, argv, &i, "--state-out", &v)) {
            if (!v) return cli_usage(run_usage, "--state-out takes an .npz file");
            a->state_out = v;
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

/* ---- several steps -------------------------------------------------------- */

/* Results of every step, for one .npz. */
typedef struct results {
    int n, cap;
    char **names;
    milk_array *arrays;
} results;

static void results_free(results *res)
{
    for (int i = 0; i < res->n; i++) {
        free(res->names[i]);
        milk_array_release(&res->arrays[i]);
    }
    free(res->names);
    free(res->arrays);
}

/* A new entry NAME@step of type t; its storage in *a. */
static milk_status results_add(milk_ctx *ctx, results *res, const char *name,
                               int step, const milk_tensor_type *t,
                               milk_array **a)
{
    if (res->n == res->cap) {
        int cap = res->cap ? 2 * res->cap : 16;
        char **nm = realloc(res->names, (size_t)cap * sizeof *nm);
        if (nm) res->names = nm;
        milk_array *ar = nm ? realloc(res->arrays, (size_t)cap * sizeof *ar) : NULL;
        if (!ar) return milk_errorf(ctx, MILK_ERR_NOMEM, "out of memory");
        res->arrays = ar;
        res->cap = cap;
    }
    char key[512];
    snprintf(key, sizeof key, "%s@%d", name, step);
    if (!(res->names[res->n] = strdup(key)))
        return milk_errorf(ctx, MILK_ERR_NOMEM, "out of memory");
    milk_status s = milk_array_init(ctx, t, &res->arrays[res->n]);
    if (s != MILK_OK) {
        free(res->names[res->n]);
        return s;
    }
    *a = &res->arrays[res->n++];
    return MILK_OK;
}

/* The dtype a value is saved in, as milk_runner_save_npz does: fp16 vars
 * as fp16 when emulating the device, other floats fp32, integers int32. */
static milk_dtype saved_dtype(milk_dtype d, milk_precision p)
{
    if (d == MILK_DTYPE_FP16) return p == MILK_PRECISION_FP32 ? MILK_DTYPE_FP32 : d;
    if (d == MILK_DTYPE_FP32 || d == MILK_DTYPE_FP64 || d == MILK_DTYPE_BF16)
        return MILK_DTYPE_FP32;
    return d == MILK_DTYPE_BOOL ? d : MILK_DTYPE_INT32;
}

/* Keep var v's value of step `step`, if it has one. */
static milk_status collect_var(milk_ctx *ctx, const run_args *a,
                               milk_runner *r, const milk_var *v, int step,
                               results *res)
{
    const milk_tensor_type *t = milk_runner_type(r, milk_var_name(v));
    if (!t || milk_var_is_state(v) || t->dtype == MILK_DTYPE_STRING) return MILK_OK;
    milk_tensor_type ft = *t;
    ft.dtype = saved_dtype(t->dtype, a->params.precision);
    milk_array *arr;
    MILK_TRY(results_add(ctx, res, milk_var_name(v), step, &ft, &arr));
    size_t bytes = (size_t)milk_tensor_type_count(&ft) * (size_t)milk_dtype_bits(ft.dtype) / 8;
    return milk_runner_read(ctx, r, milk_var_name(v), ft.dtype, arr->data, bytes);
}

/* Keep the step's outputs (or every value) and every state. */
static milk_status collect(milk_ctx *ctx, const run_args *a,
                           const milk_function *fn, milk_runner *r, int step,
                           results *res)
{
    const milk_block *b = milk_function_block(fn);
    for (int i = 0; !a->params.keep_all && i < milk_block_output_count(b); i++)
        MILK_TRY(collect_var(ctx, a, r, milk_block_output(b, i), step, res));
    for (int i = 0; a->params.keep_all && i < milk_function_input_count(fn); i++)
        MILK_TRY(collect_var(ctx, a, r, milk_function_input(fn, i), step, res));
    for (int i = 0; a->params.keep_all && i < milk_block_op_count(b); i++) {
        const milk_op *op = milk_block_op(b, i);
        for (int k = 0; k < milk_op_output_count(op); k++)
            MILK_TRY(collect_var(ctx, a, r, milk_op_output(op, k), step, res));
    }
    const milk_state *st = milk_runner_state(r);
    for (int i = 0; i < milk_state_count(st); i++) {
        milk_tensor_type t = *milk_state_type(st, i);
        milk_array *arr;
        MILK_TRY(results_add(ctx, res, milk_state_name(st, i), step, &t, &arr));
        MILK_TRY(milk_state_read(ctx, st, milk_state_name(st, i), MILK_DTYPE_FP16,
                                 arr->data, (size_t)milk_tensor_type_count(&t) * 2));
    }
    return MILK_OK;
}

/* The value of input `name` for step k: NAME@k from --inputs, else NAME
 * from --inputs (the same every step), else --input NAME=FILE.npy. */
static milk_status step_input(milk_ctx *ctx, const run_args *a,
                              const milk_npz *z, milk_runner *r,
                              const milk_function *fn, const char *name, int k)
{
    char key[512];
    snprintf(key, sizeof key, "%s@%d", name, k);
    const milk_array *arr = z ? milk_npz_find(z, key) : NULL;
    if (!arr && z) arr = milk_npz_find(z, name);
    if (arr) return milk_runner_set_input(ctx, r, name, &arr->type, arr->data);
    size_t len = strlen(name);
    for (int i = 0; i < a->n_inputs; i++)
        if (strncmp(a->inputs[i], name, len) == 0 && a->inputs[i][len] == '=')
            return set_input(ctx, r, fn, a->inputs[i]);
    if (k == 0) return MILK_OK; /* the run says what is missing */
    return milk_errorf(ctx, MILK_ERR_INVALID_ARG,
                       "step %d: no value for input '%s' (no '%s' or '%s' in "
                       "--inputs, no --input %s=FILE.npy)",
                       k, name, key, name, name);
}

/* The inputs named on the command line must be inputs of the function
 * (the runner's message lists the function's signature). */
static milk_status check_names(milk_ctx *ctx, const run_args *a,
                               const milk_function *fn, milk_runner *r)
{
    for (int i = 0; i < a->n_inputs; i++) {
        char name[256];
        const char *eq = strchr(a->inputs[i], '=');
        snprintf(name, sizeof name, "%.*s", (int)(eq - a->inputs[i]), a->inputs[i]);
        const milk_var *v = milk_function_var(fn, name);
        if (v && milk_var_is_state(v))
            return milk_errorf(ctx, MILK_ERR_INVALID_ARG,
                               "--input %s: '%s' is a state: use --state-in",
                               a->inputs[i], name);
        if (!v || milk_var_producer(v)) {
            milk_tensor_type none = {MILK_DTYPE_FP32, 0, {0}};
            float zero = 0;
            return milk_runner_set_input(ctx, r, name, &none, &zero);
        }
    }
    return MILK_OK;
}

static milk_status run_steps(milk_ctx *ctx, const run_args *a,
                             const milk_function *fn, milk_runner *r,
                             results *res)
{
    milk_npz z = {0};
    if (a->npz) MILK_TRY(milk_npz_read(ctx, a->npz, &z));
    milk_status s = check_names(ctx, a, fn, r);
    int steps = a->steps ? a->steps : 1;
    for (int k = 0; s == MILK_OK && k < steps; k++) {
        for (int i = 0; s == MILK_OK && i < milk_function_input_count(fn); i++) {
            const milk_var *v = milk_function_input(fn, i);
            if (!milk_var_is_state(v))
                s = step_input(ctx, a, a->npz ? &z : NULL, r, fn, milk_var_name(v), k);
        }
        if (s == MILK_OK) s = milk_runner_run(ctx, r);
        if (s == MILK_OK && a->steps) s = collect(ctx, a, fn, r, k, res);
        if (s != MILK_OK && a->steps) milk_error_prefix(ctx, "step %d", k);
    }
    milk_npz_release(&z);
    return s;
}

/* --state-in: the states start from the file; any it lacks start unset
 * (reading one is an error), never silently zero. */
static milk_status load_states(milk_ctx *ctx, const run_args *a,
                               milk_runner *r)
{
    milk_state *st = milk_runner_state(r);
    if (!a->state_in) return MILK_OK;
    if (!st)
        return milk_errorf(ctx, MILK_ERR_INVALID_ARG,
                           "--state-in: the function has no states");
    milk_state_clear(st);
    return milk_state_load_npz(ctx, st, a->state_in);
}

int cmd_run(milk_ctx *ctx, int argc, char **argv)
{
    run_args a;
    int rc = parse_args(argc, argv, &a);
    if (rc) return rc;
    milk_program *p = NULL;
    milk_runner *r = NULL;
    results res = {0};
    milk_status s = milk_program_load(ctx, a.pkg, &p);
    if (s == MILK_OK) s = milk_runner_create(ctx, p, &a.params, &r);
    const milk_function *fn = r ? milk_runner_function(r) : NULL;
    if (s == MILK_OK) s = load_states(ctx, &a, r);
    if (s == MILK_OK) s = run_steps(ctx, &a, fn, r, &res);
    if (s == MILK_OK && a.steps)
        s = milk_npz_write(ctx, a.output, (const char *const *)res.names,
                           res.arrays, res.n);
    else if (s == MILK_OK)
        s = write_outputs(ctx, &a, fn, r);
    if (s == MILK_OK && a.state_out) {
        if (!milk_runner_state(r))
            s = milk_errorf(ctx, MILK_ERR_INVALID_ARG,
                            "--state-out: the function has no states");
        else
            s = milk_state_save_npz(ctx, milk_runner_state(r), a.state_out);
    }
    if (s == MILK_OK) {
        const milk_block *b = milk_function_block(fn);
        for (int i = 0; i < milk_block_output_count(b); i++) {
            const char *nm = milk_var_name(milk_block_output(b, i));
            summarize(nm, milk_runner_type(r, nm), r, ctx);
        }
        report_overflow(r);
    }
    results_free(&res);
    milk_runner_free(r);
    milk_program_free(p);
    return s == MILK_OK ? 0 : cli_fail(ctx, s);
}
