/* cmd_debug.c: `milk debug reduce`: reduce a failing package (or ONNX
 * model, converted first) to a small subgraph that still fails a check,
 * and write it with its inputs, a text saying what was cut and the JSON
 * log of every candidate. The search is the library's
 * (milk_program_reduce, src/verify/reduce.c); this file parses flags. */
#include "cli.h"
#include "cli_tol.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

static const char *debug_usage =
    "milk debug reduce IN.(mlpackage|onnx) -o MIN.mlpackage\n"
    "       (--against REF.npz | --fp16-vs-fp32 | --lint RULE | --check \"CMD {}\")\n"
    "       [--input NAME=FILE.npy ...] [--seed N] [--atol A|NAME:A] [--rtol R|NAME:R]\n"
    "       [--check-error-stat max|mean|median|elemwise] [--mode bisect|linear|both]\n"
    "       [--max-candidates N] [--work-dir DIR] [--json]\n"
    "       packages: [--precision as-declared|fp32]; ONNX: [--target T] [--precision fp16|fp32]\n"
    "       --lint: [--target T] [--compute-units U]";

#define MAX_INPUTS 64

typedef struct debug_args {
    const char *in, *out, *precision;
    const char *inputs[MAX_INPUTS];
    milk_verify_tolerance tols[MAX_INPUTS];
    int n_checks, json, onnx;
    milk_target target;
    milk_rule_options rules;
    milk_reduce_params rp;
} debug_args;

static int parse_count(const char *s, int *out)
{
    char *end;
    errno = 0;
    long v = s ? strtol(s, &end, 10) : -1;
    if (!s || !*s || *end || errno || v < 0 || v > 1000000) return -1;
    *out = (int)v;
    return 1;
}

static int parse_seed(const char *s, uint64_t *out)
{
    char *end;
    errno = 0;
    *out = s && *s != '-' ? strtoull(s, &end, 10) : 0;
    return s && *s && *s != '-' && !*end && !errno ? 1 : -1;
}

static int parse_mode(const char *v, unsigned *out)
{
    if (v && strcmp(v, "bisect") == 0) *out = MILK_REDUCE_BISECT;
    else if (v && strcmp(v, "linear") == 0) *out = MILK_REDUCE_LINEAR;
    else if (v && strcmp(v, "both") == 0) *out = MILK_REDUCE_BISECT | MILK_REDUCE_LINEAR;
    else return -1;
    return 1;
}

/* The checks: exactly one is given. */
static int parse_check(int argc, char **argv, int *i, debug_args *a)
{
    const char *v;
    milk_reduce_params *p = &a->rp;
    if (cli_opt(argc, argv, i, "--against", &v)) {
        p->check = MILK_REDUCE_AGAINST;
        p->reference = v;
    } else if (cli_opt(argc, argv, i, "--lint", &v)) {
        p->check = MILK_REDUCE_LINT;
        p->rule = v;
    } else if (cli_opt(argc, argv, i, "--check", &v)) {
        p->check = MILK_REDUCE_COMMAND;
        p->command = v;
    } else if (strcmp(argv[*i], "--fp16-vs-fp32") == 0) {
        p->check = MILK_REDUCE_FP16_VS_FP32;
        v = "";
    } else {
        return 0;
    }
    a->n_checks++;
    return v ? 1 : -1;
}

/* Options taking a value; 1 if argv[*i] was one, -1 on a bad value. */
static int parse_valued(int argc, char **argv, int *i, debug_args *a)
{
    const char *v;
    milk_verify_params *vp = &a->rp.verify;
    int r = parse_check(argc, argv, i, a);
    if (r) return r;
    if (cli_opt(argc, argv, i, "-o", &v) || cli_opt(argc, argv, i, "--output", &v))
        return (a->out = v) ? 1 : -1;
    if (cli_opt(argc, argv, i, "--input", &v)) {
        if (!v || !strchr(v, '=') || vp->n_inputs == MAX_INPUTS) return -1;
        a->inputs[vp->n_inputs++] = v;
        return 1;
    }
    if (cli_opt(argc, argv, i, "--seed", &v)) {
        vp->flags |= MILK_VERIFY_SET_SEED;
        return parse_seed(v, &vp->seed);
    }
    /* argv's strings are ours to modify (C11 5.1.2.2.1): the name is cut */
    if (cli_opt(argc, argv, i, "--atol", &v))
        return cli_parse_tolerance((char *)v, MILK_VERIFY_SET_ATOL, vp, a->tols, MAX_INPUTS);
    if (cli_opt(argc, argv, i, "--rtol", &v))
        return cli_parse_tolerance((char *)v, MILK_VERIFY_SET_RTOL, vp, a->tols, MAX_INPUTS);
    if (cli_opt(argc, argv, i, "--check-error-stat", &v)) {
        int st = milk_verify_stat_from_name(v);
        vp->error_stat = st < 0 ? MILK_VERIFY_STAT_MAX : (milk_verify_stat)st;
        return st < 0 ? -1 : 1;
    }
    if (cli_opt(argc, argv, i, "--mode", &v)) return parse_mode(v, &a->rp.modes);
    if (cli_opt(argc, argv, i, "--max-candidates", &v))
        return parse_count(v, &a->rp.max_candidates);
    if (cli_opt(argc, argv, i, "--work-dir", &v)) return (a->rp.work_dir = v) ? 1 : -1;
    if (cli_opt(argc, argv, i, "--precision", &v)) return (a->precision = v) ? 1 : -1;
    if (cli_opt(argc, argv, i, "--target", &v))
        return v && (a->target = milk_target_from_name(v)) ? 1 : -1;
    if (cli_opt(argc, argv, i, "--compute-units", &v)) {
        a->rules.units = milk_compute_units_from_name(v);
        return a->rules.units != MILK_UNITS_INVALID ? 1 : -1;
    }
    return 0;
}

static int ends_with(const char *s, const char *tail)
{
    size_t n = strlen(s), k = strlen(tail);
    return n > k && strcmp(s + n - k, tail) == 0;
}

static int parse_args(int argc, char **argv, debug_args *a)
{
    memset(a, 0, sizeof *a);
    a->rp.verify.inputs = a->inputs;
    a->rp.verify.tolerances = a->tols;
    a->rp.rules = &a->rules;
    if (argc < 1 || strcmp(argv[0], "reduce") != 0)
        return cli_usage(debug_usage, argc < 1 ? NULL : "debug: unknown subcommand '%s'",
                         argc < 1 ? "" : argv[0]);
    for (int i = 1; i < argc; i++) {
        const char *opt = argv[i];
        int r = parse_valued(argc, argv, &i, a);
        if (r < 0) return cli_usage(debug_usage, "debug reduce: bad or missing value for %s", opt);
        if (r > 0) continue;
        if (strcmp(argv[i], "--json") == 0) a->json = 1;
        else if (argv[i][0] != '-' && !a->in) a->in = argv[i];
        else return cli_usage(debug_usage, "debug reduce: unexpected argument '%s'", argv[i]);
    }
    if (!a->in || !a->out) return cli_usage(debug_usage, "debug reduce needs a model and -o");
    if (a->n_checks != 1)
        return cli_usage(debug_usage, "debug reduce: give one check: --against, "
                                      "--fp16-vs-fp32, --lint or --check");
    a->onnx = ends_with(a->in, ".onnx");
    const char *pr = a->precision;
    if (pr && a->onnx && strcmp(pr, "fp16") != 0 && strcmp(pr, "fp32") != 0)
        return cli_usage(debug_usage, "debug reduce: --precision is fp16 or fp32 for an ONNX model");
    if (pr && !a->onnx) {
        if (strcmp(pr, "fp32") == 0) a->rp.verify.precision = MILK_PRECISION_FP32;
        else if (strcmp(pr, "as-declared") != 0)
            return cli_usage(debug_usage, "debug reduce: --precision is as-declared or fp32");
    }
    if (a->target && !a->onnx && a->rp.check != MILK_REDUCE_LINT)
        return cli_usage(debug_usage, "debug reduce: --target is for ONNX models and --lint");
    a->rules.target = a->rp.check == MILK_REDUCE_LINT && !a->onnx ? a->target : 0;
    return 0;
}

static void show_step(void *user, const milk_reduce_step *st)
{
    (void)user;
    fprintf(stderr, "  #%d %s: %d op%s, %d input%s: %s (%s)\n", st->index, st->change,
            st->n_ops, st->n_ops == 1 ? "" : "s", st->n_inputs, st->n_inputs == 1 ? "" : "s",
            milk_reduce_verdict_name(st->verdict), st->detail);
}

static milk_status load(milk_ctx *ctx, const debug_args *a, milk_program **p)
{
    if (!a->onnx) return milk_program_load(ctx, a->in, p);
    milk_convert_params cp = {0};
    cp.target = a->target;
    cp.precision = a->precision && strcmp(a->precision, "fp32") == 0 ? MILK_CONVERT_FP32
                                                                     : MILK_CONVERT_FP16;
    return milk_onnx_convert(ctx, a->in, &cp, p);
}

int cmd_debug(milk_ctx *ctx, int argc, char **argv)
{
    debug_args a;
    int rc = parse_args(argc, argv, &a);
    if (rc) return rc;
    a.rp.verify.label = a.in;
    a.rp.progress = show_step;
    milk_program *p = NULL;
    milk_reduce *r = NULL;
    milk_status s = load(ctx, &a, &p);
    if (s == MILK_OK) {
        fprintf(stderr, "milk debug reduce: %s\n", a.in);
        s = milk_program_reduce(ctx, p, &a.rp, &r);
    }
    if (s == MILK_OK) s = milk_reduce_save(ctx, r, a.out);
    if (s == MILK_OK) s = milk_reduce_print(ctx, r, stdout, a.json ? MILK_REDUCE_JSON : 0);
    if (s == MILK_OK && !a.json)
        printf("wrote %s, with its .npz, .txt and .json beside it\n", a.out);
    rc = s == MILK_OK ? 0 : cli_fail(ctx, s);
    milk_reduce_free(r);
    milk_program_free(p);
    return rc;
}
