/* cmd_verify.c: `milk verify`: compare every value a program computes
 * with a reference archive, or with another program run on the same
 * inputs, or an ONNX model's faithful fp32 conversion with the one that
 * would be deployed; print the table (or JSON) and write the HTML
 * report. With --suggest-fp32, search the ops to keep in fp32 for the
 * fp16 conversion to match. Exit status 0 when everything compared
 * matches (or a set was found), 1 when something diverges (or none was
 * found), 2 on error. The work is done by the library (src/verify,
 * src/onnx). */
#include "cli.h"
#include "cli_tol.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static const char *verify_usage =
    "milk verify PKG --reference REF.npz [--input NAME=FILE.npy ...] [--steps N]\n"
    "       milk verify A.mlpackage B.mlpackage [--input NAME=FILE.npy ...] [--seed N]\n"
    "         [--pair A_NAME=B_NAME ...]\n"
    "       milk verify MODEL.onnx [--target ios15..ios18|ios26] [--precision fp16|fp32]\n"
    "         [--compute-units all|cpu_only|cpu_and_gpu|cpu_and_ne]\n"
    "         [--keep-fp32 NAME,...] [--suggest-fp32] [--input NAME=FILE.npy ...] [--seed N]\n"
    "       options: [--atol A|NAME:A ...] [--rtol R|NAME:R ...]\n"
    "         [--check-error-stat max|mean|median|elemwise] [--fail-fast]\n"
    "         [--precision as-declared|fp32] [--json] [--report FILE.html]\n"
    "         [--save-inputs IN.npz] [--save-outputs OUT.npz] [--function NAME]\n"
    "         [--threads N]";

#define MAX_INPUTS 64
#define MAX_KEEP 1024

typedef struct verify_args {
    const char *pkgs[2];
    int n_pkgs;
    const char *reference, *report;
    const char *inputs[MAX_INPUTS];
    const char *pairs[MAX_INPUTS];
    const char *keep[MAX_KEEP];
    milk_verify_tolerance tols[MAX_INPUTS];
    char extract_cmd[8192];
    const char *precision; /* as given: its meaning depends on the mode */
    int json, onnx, suggest, n_pairs;
    int units_given;
    milk_rule_options rules;     /* ONNX mode: the deployed conversion's */
    milk_convert_params convert; /* ONNX mode: the deployed conversion */
    milk_verify_params params;
} verify_args;

static int parse_seed(const char *s, uint64_t *out)
{
    char *end;
    errno = 0;
    *out = s && *s != '-' ? strtoull(s, &end, 10) : 0;
    return s && *s && *s != '-' && !*end && !errno;
}

/* --pair, --keep-fp32, --compute-units; 1 if argv[*i] was one, -1 on a
 * bad value, 0 otherwise. */
static int parse_deploy(int argc, char **argv, int *i, verify_args *a)
{
    const char *v;
    if (cli_opt(argc, argv, i, "--pair", &v)) {
        if (!v || !strchr(v, '=') || a->n_pairs == MAX_INPUTS) return -1;
        a->pairs[a->n_pairs++] = v;
        return 1;
    }
    if (cli_opt(argc, argv, i, "--keep-fp32", &v))
        /* argv's strings are ours to modify (C11 5.1.2.2.1) */
        return v && !cli_split_names((char *)v, a->keep, &a->convert.n_keep_fp32,
                                     MAX_KEEP) ? 1 : -1;
    if (cli_opt(argc, argv, i, "--compute-units", &v)) {
        a->units_given = 1;
        a->rules.units = milk_compute_units_from_name(v);
        return a->rules.units != MILK_UNITS_INVALID ? 1 : -1;
    }
    return 0;
}

/* Options taking a value; 1 if argv[*i] was one, -1 on a bad value. */
static int parse_valued(int argc, char **argv, int *i, verify_args *a)
{
    const char *v;
    milk_verify_params *p = &a->params;
    if (cli_opt(argc, argv, i, "--check-error-stat", &v)) {
        int st = milk_verify_stat_from_name(v);
        p->error_stat = st < 0 ? MILK_VERIFY_STAT_MAX : (milk_verify_stat)st;
        return st < 0 ? -1 : 1;
    }
    if (cli_opt(argc, argv, i, "--save-inputs", &v)) return (p->save_inputs = v) ? 1 : -1;
    if (cli_opt(argc, argv, i, "--save-outputs", &v)) return (p->save_outputs = v) ? 1 : -1;
    if (cli_opt(argc, argv, i, "--reference", &v)) return (a->reference = v) ? 1 : -1;
    if (cli_opt(argc, argv, i, "--report", &v)) return (a->report = v) ? 1 : -1;
    if (cli_opt(argc, argv, i, "--input", &v)) {
        if (!v || !strchr(v, '=') || p->n_inputs == MAX_INPUTS) return -1;
        a->inputs[p->n_inputs++] = v;
        return 1;
    }
    /* argv's strings are ours to modify (C11 5.1.2.2.1): the name is cut */
    if (cli_opt(argc, argv, i, "--atol", &v))
        return cli_parse_tolerance((char *)v, MILK_VERIFY_SET_ATOL, p, a->tols, MAX_INPUTS);
    if (cli_opt(argc, argv, i, "--rtol", &v))
        return cli_parse_tolerance((char *)v, MILK_VERIFY_SET_RTOL, p, a->tols, MAX_INPUTS);
    if (cli_opt(argc, argv, i, "--seed", &v)) {
        p->flags |= MILK_VERIFY_SET_SEED;
        return parse_seed(v, &p->seed) ? 1 : -1;
    }
    if (cli_opt(argc, argv, i, "--precision", &v)) return (a->precision = v) ? 1 : -1;
    if (cli_opt(argc, argv, i, "--threads", &v))
        return cli_threads(v, &p->threads) ? 1 : -1;
    if (cli_opt(argc, argv, i, "--function", &v)) return (p->function = v) ? 1 : -1;
    if (cli_opt(argc, argv, i, "--steps", &v)) {
        char *end;
        long n = v ? strtol(v, &end, 10) : 0;
        p->steps = (int)n;
        return v && !*end && n >= 1 && n <= 1000000 ? 1 : -1;
    }
    if (cli_opt(argc, argv, i, "--target", &v))
        return v && (a->convert.target = milk_target_from_name(v)) ? 1 : -1;
    return parse_deploy(argc, argv, i, a);
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

/* The options that only make sense for one mode. */
static int check_mode_options(const verify_args *a)
{
    if (!a->onnx && (a->convert.n_keep_fp32 || a->suggest || a->units_given))
        return cli_usage(verify_usage, "verify: --keep-fp32, --suggest-fp32 and "
                                       "--compute-units are for ONNX models");
    if (a->n_pairs && a->n_pkgs != 2)
        return cli_usage(verify_usage, "verify: --pair is for comparing two packages");
    if (a->suggest && a->convert.precision == MILK_CONVERT_FP32)
        return cli_usage(verify_usage, "verify: --suggest-fp32 searches the ops to keep "
                                       "in fp32 of an fp16 conversion: not with "
                                       "--precision fp32");
    return 0;
}

static int parse_args(int argc, char **argv, verify_args *a)
{
    memset(a, 0, sizeof *a);
    a->params.inputs = a->inputs;
    a->params.pairs = a->pairs;
    a->params.tolerances = a->tols;
    a->convert.keep_fp32 = a->keep;
    a->convert.rules = &a->rules;
    for (int i = 0; i < argc; i++) {
        const char *opt = argv[i];
        int r = parse_valued(argc, argv, &i, a);
        if (r < 0) return cli_usage(verify_usage, "verify: bad or missing value for %s", opt);
        if (r > 0) continue;
        if (strcmp(argv[i], "--json") == 0) a->json = 1;
        else if (strcmp(argv[i], "--fail-fast") == 0) a->params.flags |= MILK_VERIFY_FAIL_FAST;
        else if (strcmp(argv[i], "--suggest-fp32") == 0) a->suggest = 1;
        else if (argv[i][0] != '-' && a->n_pkgs < 2) a->pkgs[a->n_pkgs++] = argv[i];
        else return cli_usage(verify_usage, "verify: unexpected argument '%s'", argv[i]);
    }
    a->params.n_pairs = a->n_pairs;
    if (a->n_pkgs == 0) return cli_usage(verify_usage, "verify needs a package");
    a->onnx = a->n_pkgs == 1 && ends_with(a->pkgs[0], ".onnx");
    int rc = parse_precision(a);
    if (rc || (rc = check_mode_options(a))) return rc;
    if (a->onnx && a->reference)
        return cli_usage(verify_usage, "verify: an ONNX model is compared with its own "
                                       "fp32 conversion; --reference is for packages");
    if (!a->onnx && a->convert.target)
        return cli_usage(verify_usage, "verify: --target is for ONNX models");
    if (a->onnx) return 0;
    if (a->n_pkgs == 1 && !a->reference)
        return cli_usage(verify_usage, "verify: give --reference REF.npz, or a second package");
    if (a->n_pkgs == 2 && a->reference)
        return cli_usage(verify_usage, "verify: --reference compares one package; "
                                       "two packages are compared with each other");
    if (a->n_pkgs == 1 && (a->params.flags & MILK_VERIFY_SET_SEED))
        return cli_usage(verify_usage, "verify: --seed is for comparing two packages");
    if (a->params.steps > 1 && (!a->reference || a->onnx))
        return cli_usage(verify_usage, "verify: --steps runs one package against "
                         "--reference REF.npz (NAME@k per step)");
    if (a->params.function && a->onnx)
        return cli_usage(verify_usage, "verify: --function is for packages");
    return 0;
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

/* "MODEL (fp32, ios17)" and "MODEL (fp16, ios17)". */
static void onnx_labels(const verify_args *a, char *la, char *lb, size_t n)
{
    const char *t = milk_target_name(a->convert.target ? a->convert.target
                                                       : MILK_TARGET_IOS17);
    const char *kept = a->convert.n_keep_fp32 ? " with --keep-fp32" : "";
    snprintf(la, n, "%.4000s (fp32, %s)", a->pkgs[0], t ? t : "?");
    snprintf(lb, n, "%.4000s (%s, %s%s)", a->pkgs[0],
             a->convert.precision == MILK_CONVERT_FP32 ? "fp32" : "fp16", t ? t : "?",
             kept);
}

/* The HTML report's extract command for an ONNX model: the package under
 * test does not exist as a file, so convert it first. */
static void onnx_extract_command(verify_args *a)
{
    const char *m = a->pkgs[0];
    size_t n = strlen(m) - strlen(".onnx");
    const char *t = milk_target_name(a->convert.target ? a->convert.target : MILK_TARGET_IOS17);
    snprintf(a->extract_cmd, sizeof a->extract_cmd,
             "milk convert %s -o %.*s.mlpackage --target %s --precision %s%s && milk extract "
             "%.*s.mlpackage --op {op} -o {op}.mlpackage --inputs-from %s",
             m, (int)n, m, t ? t : "ios17",
             a->convert.precision == MILK_CONVERT_FP32 ? "fp32" : "fp16",
             a->convert.n_keep_fp32 ? " --keep-fp32 ..." : "", (int)n, m,
             a->params.save_inputs ? a->params.save_inputs : "INPUTS.npz");
    a->params.extract_command = a->extract_cmd;
}

/* Convert twice: faithfully in fp32 (the reference: every defect rule
 * off, nothing kept) and as it would be deployed (fp16 unless --precision
 * fp32, rules for the compute units, --keep-fp32), then compare every var
 * the two share: the converter names the var of ONNX tensor T after T in
 * both, and rewrites keep the names of the ops they replace. */
static milk_status compare_onnx(milk_ctx *ctx, verify_args *a, milk_program **p,
                                milk_verify **out)
{
    static const char *const all[] = {"all"};
    milk_rule_options faithful = a->rules;
    faithful.disable = all;
    faithful.n_disable = 1;
    milk_convert_params ref = a->convert;
    ref.precision = MILK_CONVERT_FP32;
    ref.rules = &faithful;
    ref.keep_fp32 = NULL;
    ref.n_keep_fp32 = 0;
    milk_status s = milk_onnx_convert(ctx, a->pkgs[0], &ref, &p[0]);
    if (s == MILK_OK) s = milk_onnx_convert(ctx, a->pkgs[0], &a->convert, &p[1]);
    if (s != MILK_OK) return s;
    char la[4200], lb[4200];
    onnx_labels(a, la, lb, sizeof la);
    a->params.ref_label = la;
    a->params.label = lb;
    onnx_extract_command(a);
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

/* ---- --suggest-fp32 ----------------------------------------------------------- */

static void json_str(FILE *f, const char *s)
{
    fputc('"', f);
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\') fprintf(f, "\\%c", c);
        else if (c < 0x20) fprintf(f, "\\u%04x", c);
        else fputc(c, f);
    }
    fputc('"', f);
}

static void json_num(FILE *f, double x)
{
    if (isfinite(x)) fprintf(f, "%.6g", x);
    else fputs("null", f);
}

/* {"found", "keep_fp32", "rounds", "steps": [{"name", "type", "why",
 *  "before", "after", "dropped"}]} */
static void print_suggest_json(const milk_suggest *s)
{
    printf("{\"found\": %s, \"keep_fp32\": ", milk_suggest_found(s) ? "true" : "false");
    json_str(stdout, milk_suggest_names(s));
    printf(", \"rounds\": %d, \"steps\": [", milk_suggest_rounds(s));
    for (int i = 0; i < milk_suggest_step_count(s); i++) {
        const milk_suggest_step *st = milk_suggest_step_at(s, i);
        printf("%s\n  {\"name\": ", i ? "," : "");
        json_str(stdout, st->name);
        printf(", \"type\": ");
        json_str(stdout, st->op_type);
        printf(", \"why\": ");
        json_str(stdout, st->why);
        printf(", \"before\": ");
        json_num(stdout, st->before);
        printf(", \"after\": ");
        json_num(stdout, st->after);
        printf(", \"dropped\": %s}", st->dropped ? "true" : "false");
    }
    printf("]}\n");
}

static void print_suggest_text(const milk_suggest *s)
{
    int n = milk_suggest_step_count(s);
    printf("\nsuggest fp32: %d round%s (convert, compare), %d op%s tried\n",
           milk_suggest_rounds(s), milk_suggest_rounds(s) == 1 ? "" : "s", n,
           n == 1 ? "" : "s");
    for (int i = 0; i < n; i++) {
        const milk_suggest_step *st = milk_suggest_step_at(s, i);
        printf("  %d. %s (%s): %s; outputs max rel %.3g -> %.3g%s\n", i + 1, st->name,
               st->op_type, st->why, st->before, st->after,
               st->dropped ? " (dropped again: not needed)" : "");
    }
    if (!milk_suggest_found(s))
        printf("no set found: the outputs still differ (see the table above)\n");
    else if (!milk_suggest_names(s)[0])
        printf("the fp16 conversion matches: no op needs fp32\n");
    else
        printf("suggested: --keep-fp32 %s\n", milk_suggest_names(s));
}

static int run_suggest(milk_ctx *ctx, verify_args *a)
{
    char la[4200], lb[4200];
    onnx_labels(a, la, lb, sizeof la);
    a->params.ref_label = la;
    a->params.label = lb;
    milk_suggest *sg = NULL;
    milk_status s = milk_onnx_suggest_fp32(ctx, a->pkgs[0], &a->convert, &a->params, &sg);
    const milk_verify *v = s == MILK_OK ? milk_suggest_initial(sg) : NULL;
    if (s == MILK_OK && !a->json) s = milk_verify_print(ctx, v, stdout, 0);
    if (s == MILK_OK && a->report) s = milk_verify_write_html(ctx, v, a->report);
    if (s == MILK_OK && a->json) print_suggest_json(sg);
    else if (s == MILK_OK) print_suggest_text(sg);
    int rc = s != MILK_OK ? cli_fail(ctx, s) : !milk_suggest_found(sg);
    milk_suggest_free(sg);
    return rc;
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
    if (a.suggest) {
        rc = run_suggest(ctx, &a);
        if (pr.shown) fprintf(stderr, "\r%*s\r", pr.shown, "");
        return rc;
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
