/* cmd_verify.c: `milk verify`: compare every value a program computes
 * with a reference archive, or with another program run on the same
 * inputs, or an ONNX model's faithful fp32 conversion with the one that
 * would be deployed; print the table (or JSON) and write the HTML
 * report. Exit status 0 when everything compared matches, 1 when
 * something diverges, 2 on error. The work is done by the library
 * (src/verify, src/onnx). */
#include "cli.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static const char *verify_usage =
    "milk verify PKG --reference REF.npz [--input NAME=FILE.npy ...]\n"
    "       milk verify A.mlpackage B.mlpackage [--input NAME=FILE.npy ...] [--seed N]\n"
    "       milk verify MODEL.onnx [--target ios15..ios18] [--precision fp16|fp32]\n"
    "         [--input NAME=FILE.npy ...] [--seed N]\n"
    "       options: [--atol A] [--rtol R] [--precision as-declared|fp32] [--json]\n"
    "         [--report FILE.html]";

#define MAX_INPUTS 64

typedef struct verify_args {
    const char *pkgs[2];
    int n_pkgs;
    const char *reference, *report;
    const char *inputs[MAX_INPUTS];
    const char *precision; /* as given: its meaning depends on the mode */
    int json, onnx;
    milk_convert_params convert; /* ONNX mode: the deployed conversion */
    milk_verify_params params;
} verify_args;

/* A finite number >= 0, all of the argument. */
static int parse_tol(const char *s, double *out)
{
    char *end;
    errno = 0;
    *out = s ? strtod(s, &end) : 0;
    return s && *s && !*end && !errno && isfinite(*out) && *out >= 0;
}

static int parse_seed(const char *s, uint64_t *out)
{
    char *end;
    errno = 0;
    *out = s && *s != '-' ? strtoull(s, &end, 10) : 0;
    return s && *s && *s != '-' && !*end && !errno;
}

/* Options taking a value; 1 if argv[*i] was one, -1 on a bad value. */
static int parse_valued(int argc, char **argv, int *i, verify_args *a)
{
    const char *v;
    milk_verify_params *p = &a->params;
    if (cli_opt(argc, argv, i, "--reference", &v)) return (a->reference = v) ? 1 : -1;
    if (cli_opt(argc, argv, i, "--report", &v)) return (a->report = v) ? 1 : -1;
    if (cli_opt(argc, argv, i, "--input", &v)) {
        if (!v || !strchr(v, '=') || p->n_inputs == MAX_INPUTS) return -1;
        a->inputs[p->n_inputs++] = v;
        return 1;
    }
    if (cli_opt(argc, argv, i, "--atol", &v)) {
        p->flags |= MILK_VERIFY_SET_ATOL;
        return parse_tol(v, &p->atol) ? 1 : -1;
    }
    if (cli_opt(argc, argv, i, "--rtol", &v)) {
        p->flags |= MILK_VERIFY_SET_RTOL;
        return parse_tol(v, &p->rtol) ? 1 : -1;
    }
    if (cli_opt(argc, argv, i, "--seed", &v)) {
        p->flags |= MILK_VERIFY_SET_SEED;
        return parse_seed(v, &p->seed) ? 1 : -1;
    }
    if (cli_opt(argc, argv, i, "--precision", &v)) return (a->precision = v) ? 1 : -1;
    if (cli_opt(argc, argv, i, "--target", &v))
        return v && (a->convert.target = milk_target_from_name(v)) ? 1 : -1;
    return 0;
}

static int ends_with(const char *s, const char *tail)
{
    size_t n = strlen(s), k = strlen(tail);
    return n > k && strcmp(s + n - k, tail) == 0;
}

/* --precision: how programs run, or for an ONNX model how the deployed
 * conversion computes (both conversions then run as declared). */
static int parse_precision(verify_args *a)
{
    const char *v = a->precision;
    if (!v) return 0;
    if (a->onnx && strcmp(v, "fp16") == 0) a->convert.precision = MILK_CONVERT_FP16;
    else if (a->onnx && strcmp(v, "fp32") == 0) a->convert.precision = MILK_CONVERT_FP32;
    else if (!a->onnx && strcmp(v, "fp32") == 0) a->params.precision = MILK_PRECISION_FP32;
    else if (!a->onnx && strcmp(v, "as-declared") == 0)
        a->params.precision = MILK_PRECISION_AS_DECLARED;
    else
        return cli_usage(verify_usage, "verify: --precision is %s",
                         a->onnx ? "fp16 or fp32 for an ONNX model" : "as-declared or fp32");
    return 0;
}

static int parse_args(int argc, char **argv, verify_args *a)
{
    memset(a, 0, sizeof *a);
    a->params.inputs = a->inputs;
    for (int i = 0; i < argc; i++) {
        const char *opt = argv[i];
        int r = parse_valued(argc, argv, &i, a);
        if (r < 0) return cli_usage(verify_usage, "verify: bad or missing value for %s", opt);
        if (r > 0) continue;
        if (strcmp(argv[i], "--json") == 0) a->json = 1;
        else if (argv[i][0] != '-' && a->n_pkgs < 2) a->pkgs[a->n_pkgs++] = argv[i];
        else return cli_usage(verify_usage, "verify: unexpected argument '%s'", argv[i]);
    }
    if (a->n_pkgs == 0) return cli_usage(verify_usage, "verify needs a package");
    a->onnx = a->n_pkgs == 1 && ends_with(a->pkgs[0], ".onnx");
    if (a->onnx && a->reference)
        return cli_usage(verify_usage, "verify: an ONNX model is compared with its own "
                                       "fp32 conversion; --reference is for packages");
    if (!a->onnx && a->convert.target)
        return cli_usage(verify_usage, "verify: --target is for ONNX models");
    if (a->onnx) return parse_precision(a);
    if (a->n_pkgs == 1 && !a->reference)
        return cli_usage(verify_usage, "verify: give --reference REF.npz, or a second package");
    if (a->n_pkgs == 2 && a->reference)
        return cli_usage(verify_usage, "verify: --reference compares one package; "
                                       "two packages are compared with each other");
    if (a->n_pkgs == 1 && (a->params.flags & MILK_VERIFY_SET_SEED))
        return cli_usage(verify_usage, "verify: --seed is for comparing two packages");
    return parse_precision(a);
}

/* ---- progress on a terminal ------------------------------------------------ */

/* Shown only for runs longer than a moment, refreshed ten times a
 * second, and wiped when a run ends. */
typedef struct progress {
    double start, last;
    int shown; /* width of the line on screen, 0 if none */
} progress;

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void show_progress(void *user, const char *stage, int done, int total)
{
    progress *p = user;
    double t = now_s();
    if (done <= 1) p->start = t;
    if (done >= total) {
        if (p->shown) fprintf(stderr, "\r%*s\r", p->shown, "");
        p->shown = 0;
        return;
    }
    if (t - p->start < 0.3 || t - p->last < 0.1) return;
    p->last = t;
    int n = fprintf(stderr, "\rmilk verify: %s: op %d/%d ", stage, done, total);
    if (n > p->shown) p->shown = n;
    fflush(stderr);
}

/* ---- running --------------------------------------------------------------- */

/* Convert twice: faithfully in fp32 (the reference) and as it would be
 * deployed (fp16 unless --precision fp32), then compare every var the two
 * share: the converter names the var of ONNX tensor T after T in both. */
static milk_status compare_onnx(milk_ctx *ctx, verify_args *a, milk_program **p,
                                milk_verify **out)
{
    milk_convert_params ref = a->convert;
    ref.precision = MILK_CONVERT_FP32;
    milk_status s = milk_onnx_convert(ctx, a->pkgs[0], &ref, &p[0]);
    if (s == MILK_OK) s = milk_onnx_convert(ctx, a->pkgs[0], &a->convert, &p[1]);
    if (s != MILK_OK) return s;
    char la[4200], lb[4200];
    const char *t = milk_target_name(milk_program_target(p[1]));
    snprintf(la, sizeof la, "%.4000s (fp32, %s)", a->pkgs[0], t ? t : "?");
    snprintf(lb, sizeof lb, "%.4000s (%s, %s)", a->pkgs[0],
             a->convert.precision == MILK_CONVERT_FP32 ? "fp32" : "fp16", t ? t : "?");
    a->params.ref_label = la;
    a->params.label = lb;
    s = milk_verify_programs(ctx, p[0], p[1], &a->params, out); /* copies the labels */
    a->params.ref_label = a->params.label = NULL;
    return s;
}

static milk_status compare(milk_ctx *ctx, verify_args *a, milk_program **p,
                           milk_verify **out)
{
    if (a->onnx) return compare_onnx(ctx, a, p, out);
    milk_verify_params *vp = &a->params;
    milk_status s = milk_program_load(ctx, a->pkgs[0], &p[0]);
    if (s != MILK_OK) return s;
    if (a->n_pkgs == 1) {
        vp->label = a->pkgs[0];
        vp->ref_label = a->reference;
        return milk_verify_reference(ctx, p[0], a->reference, vp, out);
    }
    vp->ref_label = a->pkgs[0];
    vp->label = a->pkgs[1];
    s = milk_program_load(ctx, a->pkgs[1], &p[1]);
    return s == MILK_OK ? milk_verify_programs(ctx, p[0], p[1], vp, out) : s;
}

int cmd_verify(milk_ctx *ctx, int argc, char **argv)
{
    verify_args a;
    int rc = parse_args(argc, argv, &a);
    if (rc) return rc;
    progress pr = {0, 0, 0};
    if (isatty(STDERR_FILENO)) {
        a.params.progress = show_progress;
        a.params.progress_user = &pr;
    }
    milk_program *p[2] = {NULL, NULL};
    milk_verify *v = NULL;
    milk_status s = compare(ctx, &a, p, &v);
    if (pr.shown) fprintf(stderr, "\r%*s\r", pr.shown, ""); /* a run stopped midway */
    if (s == MILK_OK) s = milk_verify_print(ctx, v, stdout, a.json ? MILK_VERIFY_JSON : 0);
    if (s == MILK_OK && a.report) s = milk_verify_write_html(ctx, v, a.report);
    rc = s != MILK_OK ? cli_fail(ctx, s) : milk_verify_first_divergence(v) >= 0;
    milk_verify_free(v);
    milk_program_free(p[0]);
    milk_program_free(p[1]);
    return rc;
}
