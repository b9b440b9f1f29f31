/* cmd_convert.c: `milk convert`: ONNX to a Core ML ML Program package,
 * with a summary of what the conversion did (what changed at the model's
 * boundary, the inputs frozen with --freeze, the defect rules applied for
 * the compute units, with the ops they touched, and their warnings; the
 * ops kept in fp32); `--list-ops` prints the lowering table. */
#include "cli.h"
#include "util/npy.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static const char *convert_usage =
    "milk convert IN.onnx -o OUT.mlpackage [--target ios15..ios18|ios26]\n"
    "       [--precision fp16|fp32] [--input-shape NAME=d0,d1,... ...]\n"
    "       [--compute-units all|cpu_only|cpu_and_gpu|cpu_and_ne]\n"
    "       [--disable-rule ID|all ...] [--enable-rule ID ...] [--keep-fp32 NAME,... ...]\n"
    "       [--freeze NAME=FILE.npy ...] [--state IN=OUT ...]\n"
    "       milk convert --list-ops";

#define MAX_SHAPES 64
#define MAX_IDS 64
#define MAX_KEEP 1024
#define MAX_FREEZE 64
#define MAX_STATES 256

typedef struct convert_args {
    const char *in, *out;
    bool list_ops;
    milk_input_shape shapes[MAX_SHAPES];
    const char *freeze_specs[MAX_FREEZE]; /* "NAME=FILE.npy", read later */
    milk_frozen_input freeze[MAX_FREEZE];
    milk_array freeze_data[MAX_FREEZE];
    milk_state_pair states[MAX_STATES]; /* names point into argv */
    const char *enable[MAX_IDS], *disable[MAX_IDS];
    const char *keep[MAX_KEEP];
    milk_rule_options rules;
    milk_convert_params params;
} convert_args;

int cli_split_names(char *list, const char **names, int *n, int max)
{
    for (char *p = list, *end; p; p = end ? end + 1 : NULL) {
        end = strchr(p, ',');
        if (end) *end = 0;
        if (!*p) continue; /* "a,,b" and a trailing comma */
        if (*n == max) return -1;
        names[(*n)++] = p;
    }
    return 0;
}

static int add_id(const char **ids, int *n, const char *v, const char *opt)
{
    if (!v) return cli_usage(convert_usage, "%s takes a rule id", opt);
    if (*n == MAX_IDS) return cli_usage(convert_usage, "too many %s options", opt);
    ids[(*n)++] = v;
    return 0;
}

/* The options about rules and mixed precision; 1 if argv[*i] was one. */
static int parse_deploy(int argc, char **argv, int *i, convert_args *a, int *rc)
{
    const char *v;
    *rc = 0;
    if (cli_opt(argc, argv, i, "--compute-units", &v)) {
        a->rules.units = milk_compute_units_from_name(v);
        if (a->rules.units == MILK_UNITS_INVALID)
            *rc = cli_usage(convert_usage, "--compute-units is all, cpu_only, "
                                           "cpu_and_gpu or cpu_and_ne");
    } else if (cli_opt(argc, argv, i, "--disable-rule", &v)) {
        *rc = add_id(a->disable, &a->rules.n_disable, v, "--disable-rule");
    } else if (cli_opt(argc, argv, i, "--enable-rule", &v)) {
        *rc = add_id(a->enable, &a->rules.n_enable, v, "--enable-rule");
    } else if (cli_opt(argc, argv, i, "--keep-fp32", &v)) {
        /* argv's strings are ours to modify (C11 5.1.2.2.1) */
        if (!v || cli_split_names((char *)v, a->keep, &a->params.n_keep_fp32, MAX_KEEP))
            *rc = cli_usage(convert_usage, "--keep-fp32 takes NAME,... (at most %d)",
                            MAX_KEEP);
    } else {
        return 0;
    }
    return 1;
}

static int parse_option(milk_ctx *ctx, int argc, char **argv, int *i,
                        convert_args *a)
{
    const char *v;
    int rc;
    if (cli_opt(argc, argv, i, "-o", &v) || cli_opt(argc, argv, i, "--output", &v)) {
        if (!v) return cli_usage(convert_usage, "-o takes a package path");
        a->out = v;
    } else if (cli_opt(argc, argv, i, "--target", &v)) {
        if (!v || !(a->params.target = milk_target_from_name(v)))
            return cli_usage(convert_usage, "--target is ios15..ios18 or ios26 (or macosNN, tvosNN, watchosNN, visionosNN)");
    } else if (cli_opt(argc, argv, i, "--precision", &v)) {
        if (v && strcmp(v, "fp16") == 0) a->params.precision = MILK_CONVERT_FP16;
        else if (v && strcmp(v, "fp32") == 0) a->params.precision = MILK_CONVERT_FP32;
        else return cli_usage(convert_usage, "--precision is fp16 or fp32");
    } else if (cli_opt(argc, argv, i, "--input-shape", &v)) {
        if (!v || a->params.n_input_shapes == MAX_SHAPES)
            return cli_usage(convert_usage, "--input-shape takes NAME=d0,d1,...");
        milk_input_shape *s = &a->shapes[a->params.n_input_shapes];
        if (milk_input_shape_parse(ctx, v, s) != MILK_OK)
            return cli_usage(convert_usage, "%s", milk_ctx_error(ctx));
        a->params.n_input_shapes++;
    } else if (cli_opt(argc, argv, i, "--freeze", &v)) {
        if (!v || !strchr(v, '=') || v[0] == '=' || a->params.n_freeze == MAX_FREEZE)
            return cli_usage(convert_usage, "--freeze takes NAME=FILE.npy (at most %d)",
                             MAX_FREEZE);
        a->freeze_specs[a->params.n_freeze++] = v;
    } else if (cli_opt(argc, argv, i, "--state", &v)) {
        /* argv's strings are ours to modify (C11 5.1.2.2.1) */
        char *eq = v ? strchr((char *)v, '=') : NULL;
        if (!eq || eq == v || !eq[1] || a->params.n_states == MAX_STATES)
            return cli_usage(convert_usage, "--state takes INPUT=OUTPUT (at most %d)",
                             MAX_STATES);
        *eq = 0;
        a->states[a->params.n_states++] = (milk_state_pair){v, eq + 1};
    } else if (parse_deploy(argc, argv, i, a, &rc)) {
        return rc;
    } else {
        return cli_usage(convert_usage, "convert: unexpected argument '%s'", argv[*i]);
    }
    return 0;
}

static int parse_args(milk_ctx *ctx, int argc, char **argv, convert_args *a)
{
    memset(a, 0, sizeof *a);
    a->params.input_shapes = a->shapes;
    a->params.freeze = a->freeze;
    a->params.states = a->states;
    a->params.keep_fp32 = a->keep;
    a->params.rules = &a->rules;
    a->rules.enable = a->enable;
    a->rules.disable = a->disable;
    for (int i = 0; i < argc; i++) {
        if (strcmp(argv[i], "--list-ops") == 0) {
            a->list_ops = true;
        } else if (argv[i][0] != '-' && !a->in) {
            a->in = argv[i];
        } else {
            int rc = parse_option(ctx, argc, argv, &i, a);
            if (rc) return rc;
        }
    }
    if (!a->list_ops && (!a->in || !a->out))
        return cli_usage(convert_usage, "convert needs an ONNX file and -o");
    return 0;
}

/* "2", "1-3", "1+". */
static const char *arity(int min, int max, char *buf, size_t cap)
{
    if (max < 0) snprintf(buf, cap, "%d+", min);
    else if (min == max) snprintf(buf, cap, "%d", min);
    else snprintf(buf, cap, "%d-%d", min, max);
    return buf;
}

/* One row per ONNX op: its name, the inputs and outputs a node may have,
 * and what the lowering supports. */
static void list_ops(void)
{
    for (int i = 0; i < milk_onnx_lowering_count(); i++) {
        const char *op, *doc;
        int min_in, max_in, min_out, max_out;
        char in[16], out[16];
        milk_onnx_lowering(i, &op, &doc);
        milk_onnx_lowering_arity(i, &min_in, &max_in, &min_out, &max_out);
        printf("%-22s in %-4s out %-4s %s\n", op, arity(min_in, max_in, in, sizeof in),
               arity(min_out, max_out, out, sizeof out), doc);
    }
}

/* "conv 20, relu 17, ..." in order of first appearance. */
static void print_op_counts(const milk_program *p)
{
    enum { MAX_TYPES = 256 };
    const char *types[MAX_TYPES];
    int counts[MAX_TYPES], nt = 0;
    const milk_block *b = milk_function_block(milk_program_function(p, "main"));
    for (int i = 0; i < milk_block_op_count(b); i++) {
        const char *t = milk_op_type(milk_block_op(b, i));
        int k = 0;
        if (strcmp(t, "const") == 0) continue;
        while (k < nt && strcmp(types[k], t) != 0) k++;
        if (k == nt && nt < MAX_TYPES) {
            types[nt] = t;
            counts[nt++] = 0;
        }
        if (k < nt) counts[k]++;
    }
    for (int k = 0; k < nt; k++) printf("%s%s %d", k ? ", " : " (", types[k], counts[k]);
    printf("%s\n", nt ? ")" : "");
}

/* ---- the rules and passes applied ------------------------------------------------ */

/* One line per rule hit: rewrites with the ops they touched, warnings. */
static void print_rule_hit(const milk_rule_hit *h)
{
    const char *what = h->fixed ? "fixed" : milk_rule_severity_name(h->rule->severity);
    printf("    %-8s %-20s %s%s%s(%s): %s\n", what, h->pass, h->op[0] ? "op '" : "", h->op,
           h->op[0] ? "' " : "", h->op_type, h->detail);
    if (h->fixed && h->touched[0]) printf("             rewrite: %s\n", h->touched);
    if (!h->fixed) printf("             fix: %s\n", h->rule->fix);
}

/* What the general passes did (dead code removal aside). */
static void print_simplified(const milk_rule_report *r)
{
    static const char *const passes[] = {"identity", "fold", "dedup"};
    static const char *const what[] = {"identity-like ops removed", "ops folded",
                                       "constants merged with an equal one"};
    int shown = 0;
    for (size_t k = 0; k < sizeof passes / sizeof passes[0]; k++) {
        int n = 0;
        for (int i = 0; i < milk_rule_report_count(r); i++) {
            const milk_rule_hit *h = milk_rule_report_at(r, i);
            n += !h->rule && strcmp(h->pass, passes[k]) == 0;
        }
        if (n) printf("%s%d %s", shown++ ? ", " : "  simplified:     ", n, what[k]);
    }
    if (shown) printf("\n");
}

static void print_rules(const convert_args *a, const milk_rule_report *r)
{
    int fixed = 0, warned = 0;
    for (int i = 0; i < milk_rule_report_count(r); i++) {
        const milk_rule_hit *h = milk_rule_report_at(r, i);
        if (h->rule) *(h->fixed ? &fixed : &warned) += 1;
    }
    printf("  rules:          compute units %s: %d rewrite%s, %d warning%s\n",
           milk_compute_units_name(a->rules.units), fixed, fixed == 1 ? "" : "s", warned,
           warned == 1 ? "" : "s");
    for (int i = 0; i < milk_rule_report_count(r); i++)
        if (milk_rule_report_at(r, i)->rule) print_rule_hit(milk_rule_report_at(r, i));
    print_simplified(r);
}

static void print_kept(const convert_args *a, const milk_convert_stats *st)
{
    if (!a->params.n_keep_fp32) return;
    if (a->params.precision == MILK_CONVERT_FP32) {
        printf("  kept fp32:      (every op: --precision fp32)\n");
        return;
    }
    printf("  kept fp32:      %d op%s, for", st->kept_fp32, st->kept_fp32 == 1 ? "" : "s");
    for (int i = 0; i < a->params.n_keep_fp32; i++)
        printf("%s %s", i ? "," : "", a->keep[i]);
    printf("\n");
}

/* ---- frozen inputs ------------------------------------------------------------------ */

/* Read the .npy of each --freeze into a->freeze (names point into argv,
 * whose strings are ours to modify: C11 5.1.2.2.1). */
static milk_status read_frozen(milk_ctx *ctx, convert_args *a)
{
    for (int i = 0; i < a->params.n_freeze; i++) {
        char *spec = (char *)a->freeze_specs[i], *eq = strchr(spec, '=');
        *eq = 0;
        MILK_TRY(milk_npy_read(ctx, eq + 1, &a->freeze_data[i]));
        a->freeze[i] = (milk_frozen_input){spec, a->freeze_data[i].type,
                                           a->freeze_data[i].data, eq + 1};
    }
    return MILK_OK;
}

static void release_frozen(convert_args *a)
{
    for (int i = 0; i < a->params.n_freeze; i++) milk_array_release(&a->freeze_data[i]);
}

/* ---- the summary ------------------------------------------------------------------- */

static void print_shape(const milk_tensor_type *t)
{
    printf("%s [", milk_dtype_name(t->dtype));
    for (int i = 0; i < t->rank; i++) printf("%s%lld", i ? ", " : "", (long long)t->dims[i]);
    printf("]");
}

/* What changed at the model's boundary, and the inputs frozen. */
static void print_boundary(const convert_args *a, const milk_convert_stats *st)
{
    if (st->int64_io)
        printf("  note: int64 became int32 (MIL has no int64): %s\n", st->note);
    if (st->bool_io)
        printf("  note: bool I/O declared int32, cast inside (Core ML has no bool "
               "model I/O): %s\n", st->bool_note);
    if (st->scalar_io)
        printf("  note: scalar I/O declared [1], squeezed or expanded inside (Core "
               "ML model I/O has rank >= 1): %s\n", st->scalar_note);
    if (st->identity_outputs)
        printf("  note: outputs no op computes, produced by identity (Core ML "
               "outputs are op outputs): %s\n", st->identity_note);
    if (st->states)
        printf("  states: %s\n", st->state_note);
    for (int i = 0; i < a->params.n_freeze; i++) {
        printf("  %-15s %s = %s (", i ? "" : "frozen:", a->freeze[i].name,
               a->freeze[i].origin);
        print_shape(&a->freeze[i].type);
        printf("), now a constant\n");
    }
}

static void summarize(const convert_args *a, const milk_program *p,
                      const milk_convert_stats *st, const milk_rule_report *r,
                      double seconds)
{
    milk_target t = milk_program_target(p);
    printf("converted %s -> %s (%s, %s)\n", a->in, a->out, milk_target_name(t),
           a->params.precision == MILK_CONVERT_FP32 ? "fp32" : "fp16");
    printf("  ONNX nodes in:  %d (opset %lld)\n", st->onnx_nodes,
           (long long)st->onnx_opset);
    printf("  MIL ops out:    %d", st->mil_ops);
    print_op_counts(p);
    printf("  consts:         %d (%d ops folded at conversion time)\n",
           st->mil_consts, st->folded);
    printf("  weights:        %llu bytes (%.2f MB)\n",
           (unsigned long long)st->weight_bytes, (double)st->weight_bytes / 1e6);
    print_boundary(a, st);
    print_kept(a, st);
    print_rules(a, r);
    printf("  time:           %.3f s\n", seconds);
}

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

int cmd_convert(milk_ctx *ctx, int argc, char **argv)
{
    convert_args a;
    int rc = parse_args(ctx, argc, argv, &a);
    if (rc) return rc;
    if (a.list_ops) {
        list_ops();
        return 0;
    }
    milk_convert_stats st;
    milk_program *p = NULL;
    milk_rule_report *r = NULL;
    a.params.stats = &st;
    double t0 = now();
    milk_status s = read_frozen(ctx, &a);
    if (s == MILK_OK) s = milk_rule_report_create(ctx, &r);
    a.params.report = r;
    if (s == MILK_OK) s = milk_onnx_convert(ctx, a.in, &a.params, &p);
    if (s == MILK_OK) s = milk_program_save(ctx, p, a.out);
    if (s == MILK_OK) summarize(&a, p, &st, r, now() - t0);
    milk_rule_report_free(r);
    milk_program_free(p);
    release_frozen(&a);
    return s == MILK_OK ? 0 : cli_fail(ctx, s);
}
