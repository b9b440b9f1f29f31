/* bench_run.c: times milk's interpreter on a package: loads it, sets every
 * input to deterministic pseudo-random values (or .npy files), runs once to
 * warm up, then N times, and prints the median and best wall time in ms,
 * and the median CPU time of the process (all threads) per run, as JSON, with the bytes of the program's two largest intermediate values.
 * Used by bench/run.py; not a test.
 *
 *   bench_run PKG [N] [--input NAME=FILE.npy ...] [--reference]
 *             [--threads T] [--keep-all] */
#include "milk.h"
#include "util/npy.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static double cpu_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Inputs not given as files get values in [-1, 1) from a fixed LCG. */
static int set_random(milk_ctx *ctx, milk_runner *r, const milk_var *v)
{
    milk_tensor_type t = *milk_var_type(v);
    int64_t n = milk_tensor_type_count(&t);
    t.dtype = MILK_DTYPE_FP32;
    float *x = malloc((size_t)(n ? n : 1) * sizeof *x);
    uint32_t s = 12345;
    for (int64_t i = 0; x && i < n; i++) {
        s = s * 1664525u + 1013904223u;
        x[i] = (float)(s >> 8) / (float)(1u << 23) - 1.0f;
    }
    int ok = x && milk_runner_set_input(ctx, r, milk_var_name(v), &t, x) == MILK_OK;
    free(x);
    return ok ? 0 : 1;
}

static int set_inputs(milk_ctx *ctx, milk_runner *r, const milk_function *fn,
                      int argc, char **argv)
{
    for (int i = 0; i < milk_function_input_count(fn); i++) {
        const milk_var *v = milk_function_input(fn, i);
        const char *file = NULL;
        for (int k = 0; k < argc; k++) {
            size_t n = strlen(milk_var_name(v));
            if (strncmp(argv[k], milk_var_name(v), n) == 0 && argv[k][n] == '=')
                file = argv[k] + n + 1;
        }
        if (!file) {
            if (set_random(ctx, r, v)) return 1;
            continue;
        }
        milk_array a;
        if (milk_npy_read(ctx, file, &a) != MILK_OK) return 1;
        milk_status s = milk_runner_set_input(ctx, r, milk_var_name(v), &a.type, a.data);
        milk_array_release(&a);
        if (s != MILK_OK) return 1;
    }
    return 0;
}

/* Bytes (fp32) of the two largest values computed by ops other than
 * consts. */
static long long largest_two(const milk_function *fn)
{
    const milk_block *b = milk_function_block(fn);
    long long a = 0, c = 0;
    for (int i = 0; i < milk_block_op_count(b); i++) {
        const milk_op *op = milk_block_op(b, i);
        if (strcmp(milk_op_type(op), "const") == 0) continue;
        for (int k = 0; k < milk_op_output_count(op); k++) {
            long long n = 4 * milk_tensor_type_count(milk_var_type(milk_op_output(op, k)));
            if (n > a) {
                c = a;
                a = n;
            } else if (n > c) {
                c = n;
            }
        }
    }
    return a + c;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: bench_run PKG [N] [--input NAME=FILE.npy ...] [--reference]\n");
        return 2;
    }
    int n = argc > 2 && argv[2][0] != '-' ? atoi(argv[2]) : 10;
    char *files[32];
    int nf = 0;
    milk_run_params rp = {0};
    for (int i = 2; i < argc; i++) {
        if (strcmp(argv[i], "--input") == 0 && i + 1 < argc && nf < 32) files[nf++] = argv[++i];
        if (strcmp(argv[i], "--reference") == 0) rp.reference = 1;
        if (strcmp(argv[i], "--keep-all") == 0) rp.keep_all = 1;
        if (strcmp(argv[i], "--threads") == 0 && i + 1 < argc) rp.threads = atoi(argv[++i]);
    }
    milk_ctx *ctx;
    milk_program *p = NULL;
    milk_runner *r = NULL;
    milk_ctx_create(&ctx);
    double t0 = now_ms();
    int rc = milk_program_load(ctx, argv[1], &p) != MILK_OK ||
             milk_runner_create(ctx, p, &rp, &r) != MILK_OK ||
             set_inputs(ctx, r, milk_program_function(p, "main"), nf, files) ||
             milk_runner_run(ctx, r) != MILK_OK;
    double setup = now_ms() - t0;
    double *t = calloc((size_t)(n > 0 ? n : 1), sizeof *t);
    double *c = calloc((size_t)(n > 0 ? n : 1), sizeof *c);
    for (int i = 0; !rc && i < n; i++) {
        double a = now_ms(), ac = cpu_ms();
        rc = milk_runner_run(ctx, r) != MILK_OK;
        t[i] = now_ms() - a;
        c[i] = cpu_ms() - ac;
    }
    if (rc) {
        fprintf(stderr, "bench_run: %s\n", milk_ctx_error(ctx));
    } else {
        qsort(t, (size_t)n, sizeof *t, cmp_double);
        qsort(c, (size_t)n, sizeof *c, cmp_double);
        printf("{\"median_ms\": %.3f, \"best_ms\": %.3f, \"cpu_ms\": %.3f, \"runs\": %d, "
               "\"first_ms\": %.3f, \"act2_bytes\": %lld}\n",
               t[n / 2], t[0], c[n / 2], n, setup,
               largest_two(milk_program_function(p, "main")));
    }
    free(t);
    free(c);
    milk_runner_free(r);
    milk_program_free(p);
    milk_ctx_free(ctx);
    return rc ? 2 : 0;
}
