/* cmd_lint.c: `milk lint`: list the known Core ML defect patterns a
 * package contains for the deployment target and compute units given
 * (src/passes/rules.def), and with --fix rewrite them away and write a
 * fixed package. `milk lint --list-rules` prints the rule table (as
 * Markdown: docs/defects.md). Exit status: 0 when no error-severity rule
 * matches (after fixing, with --fix), 1 when one does, 2 on errors. */
#include "cli.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

static const char *lint_usage =
    "milk lint PKG [--target ios15..ios18|ios26] [--compute-units all|cpu_only|"
    "cpu_and_gpu|cpu_and_ne]\n"
    "       [--precision as-declared|fp16] [--disable-rule ID|all] "
    "[--enable-rule ID] [--json]\n"
    "       [--fix -o OUT.mlpackage [--simplify]]\n"
    "   or: milk lint --list-rules [--markdown|--json]";

#define MAX_IDS 64

typedef struct lint_args {
    const char *pkg, *output;
    bool fix, json, simplify, list, markdown;
    const char *enable[MAX_IDS], *disable[MAX_IDS];
    milk_rule_options opts;
} lint_args;

static int add_id(const char **ids, int *n, const char *v, const char *opt)
{
    if (!v) return cli_usage(lint_usage, "%s takes a rule id", opt);
    if (*n == MAX_IDS) return cli_usage(lint_usage, "too many %s options", opt);
    ids[(*n)++] = v;
    return 0;
}

static int parse_value(lint_args *a, int argc, char **argv, int *i, bool *used)
{
    const char *v;
    *used = true;
    if (cli_opt(argc, argv, i, "--target", &v)) {
        if (!v || !(a->opts.target = milk_target_from_name(v)))
            return cli_usage(lint_usage, "--target is ios15..ios18 or ios26 (or macosNN, tvosNN, watchosNN, visionosNN)");
    } else if (cli_opt(argc, argv, i, "--compute-units", &v)) {
        a->opts.units = milk_compute_units_from_name(v);
        if (a->opts.units == MILK_UNITS_INVALID)
            return cli_usage(lint_usage, "--compute-units is all, cpu_only, "
                                         "cpu_and_gpu or cpu_and_ne");
    } else if (cli_opt(argc, argv, i, "--precision", &v)) {
        if (v && strcmp(v, "fp16") == 0) a->opts.precision = MILK_RULE_PRECISION_FP16;
        else if (!v || strcmp(v, "as-declared") != 0)
            return cli_usage(lint_usage, "--precision is as-declared or fp16");
    } else if (cli_opt(argc, argv, i, "--disable-rule", &v)) {
        return add_id(a->disable, &a->opts.n_disable, v, "--disable-rule");
    } else if (cli_opt(argc, argv, i, "--enable-rule", &v)) {
        return add_id(a->enable, &a->opts.n_enable, v, "--enable-rule");
    } else if (cli_opt(argc, argv, i, "-o", &v) || cli_opt(argc, argv, i, "--output", &v)) {
        if (!v) return cli_usage(lint_usage, "-o takes a package path");
        a->output = v;
    } else {
        *used = false;
    }
    return 0;
}

static int parse_flag(lint_args *a, const char *s)
{
    if (strcmp(s, "--fix") == 0) a->fix = true;
    else if (strcmp(s, "--json") == 0) a->json = true;
    else if (strcmp(s, "--simplify") == 0) a->simplify = true;
    else if (strcmp(s, "--list-rules") == 0) a->list = true;
    else if (strcmp(s, "--markdown") == 0) a->markdown = true;
    else if (s[0] != '-' && !a->pkg) a->pkg = s;
    else return cli_usage(lint_usage, "lint: unexpected argument '%s'", s);
    return 0;
}

static int parse_args(int argc, char **argv, lint_args *a)
{
    memset(a, 0, sizeof *a);
    a->opts.enable = a->enable;
    a->opts.disable = a->disable;
    for (int i = 0; i < argc; i++) {
        bool used;
        int rc = parse_value(a, argc, argv, &i, &used);
        if (!rc && !used) rc = parse_flag(a, argv[i]);
        if (rc) return rc;
    }
    if (a->list) return a->pkg ? cli_usage(lint_usage, "--list-rules takes no package") : 0;
    if (!a->pkg) return cli_usage(lint_usage, "lint needs a package");
    if (a->fix != (a->output != NULL))
        return cli_usage(lint_usage, "--fix and -o OUT.mlpackage go together");
    if (a->simplify && !a->fix) return cli_usage(lint_usage, "--simplify needs --fix");
    return 0;
}

/* ---- output ------------------------------------------------------------------------- */

/* A JSON string literal (quotes included). */
static void json_str(FILE *f, const char *s)
{
    fputc('"', f);
    for (; s && *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\') fprintf(f, "\\%c", c);
        else if (c == '\n') fputs("\\n", f);
        else if (c < 0x20) fprintf(f, "\\u%04x", c);
        else fputc(c, f);
    }
    fputc('"', f);
}

static void json_field(FILE *f, const char *key, const char *val, bool comma)
{
    fprintf(f, "%s", comma ? ", " : "");
    json_str(f, key);
    fputs(": ", f);
    json_str(f, val);
}

static void hit_json(FILE *f, const milk_rule_hit *h)
{
    fputs("    {", f);
    json_field(f, "rule", h->pass, false);
    json_field(f, "function", h->function, true);
    json_field(f, "op", h->op, true);
    json_field(f, "op_type", h->op_type, true);
    json_field(f, "condition", h->detail, true);
    if (h->rule) {
        json_field(f, "severity", milk_rule_severity_name(h->rule->severity), true);
        json_field(f, "action", milk_rule_action_name(h->rule->action), true);
        json_field(f, "scope", h->rule->scope, true);
        json_field(f, "source", h->rule->source, true);
        json_field(f, "fix", h->rule->fix, true);
    }
    fprintf(f, ", \"fixed\": %s", h->fixed ? "true" : "false");
    json_field(f, "touched", h->touched, true);
    fputs("}", f);
}

/* One hit; the rule's scope, source and fix only the first time
 * (`explain`). */
static void print_hit(FILE *f, const milk_rule_hit *h, bool explain)
{
    const char *sev = h->rule ? milk_rule_severity_name(h->rule->severity) : "simplify";
    const char *where = h->op[0] ? "op" : "";
    fprintf(f, "%-8s %-20s %s: %s%s%s%s(%s)\n", h->fixed ? "fixed" : sev, h->pass,
            h->function, where, h->op[0] ? " '" : "", h->op, h->op[0] ? "' " : "",
            h->op_type);
    fprintf(f, "         %s\n", h->detail);
    if (h->fixed && h->touched[0]) fprintf(f, "         rewrite: %s\n", h->touched);
    if (!h->fixed && h->rule && explain) {
        fprintf(f, "         scope: %s; source: %s\n", h->rule->scope, h->rule->source);
        fprintf(f, "         fix: %s%s\n", h->rule->fix,
                h->rule->action == MILK_RULE_REWRITE ? " (milk lint --fix)" : "");
        if (h->rule->note[0]) fprintf(f, "         note: %s\n", h->rule->note);
    }
}

typedef struct counts {
    int sev[3], fixed, simplified;
} counts;

static counts count(const milk_rule_report *r)
{
    counts c = {{0}, 0, 0};
    for (int i = 0; i < milk_rule_report_count(r); i++) {
        const milk_rule_hit *h = milk_rule_report_at(r, i);
        if (!h->rule) c.simplified++;
        else if (h->fixed) c.fixed++;
        else c.sev[h->rule->severity]++;
    }
    return c;
}

static void report_json(const lint_args *a, const milk_program *p,
                        const milk_rule_report *r, const char *refused)
{
    counts c = count(r);
    milk_target t = a->opts.target ? a->opts.target : milk_program_target(p);
    printf("{");
    json_field(stdout, "package", a->pkg, false);
    json_field(stdout, "target", milk_target_name(t), true);
    json_field(stdout, "compute_units", milk_compute_units_name(a->opts.units), true);
    printf(", \"output\": ");
    if (a->fix && !refused) json_str(stdout, a->output);
    else printf("null");
    if (refused) json_field(stdout, "refused", refused, true);
    printf(", \"errors\": %d, \"warnings\": %d, \"infos\": %d, \"fixed\": %d,"
           " \"simplified\": %d,\n  \"hits\": [\n",
           c.sev[2], c.sev[1], c.sev[0], c.fixed, c.simplified);
    for (int i = 0; i < milk_rule_report_count(r); i++) {
        hit_json(stdout, milk_rule_report_at(r, i));
        printf("%s\n", i + 1 < milk_rule_report_count(r) ? "," : "");
    }
    printf("  ]}\n");
}

static void report_text(const lint_args *a, const milk_program *p,
                        const milk_rule_report *r, const char *refused)
{
    counts c = count(r);
    milk_target t = a->opts.target ? a->opts.target : milk_program_target(p);
    printf("%s: target %s, compute units %s\n", a->pkg, milk_target_name(t),
           milk_compute_units_name(a->opts.units));
    for (int i = 0; i < milk_rule_report_count(r); i++) {
        const milk_rule_hit *h = milk_rule_report_at(r, i);
        bool first = true;
        for (int j = 0; j < i && first; j++) {
            const milk_rule_hit *e = milk_rule_report_at(r, j);
            first = !(e->rule == h->rule && !e->fixed);
        }
        print_hit(stdout, h, first);
    }
    if (refused) printf("not fixed: %s\n", refused);
    if (a->fix && !refused)
        printf("%d rewrite%s applied, %d simplification%s; wrote %s\n", c.fixed,
               c.fixed == 1 ? "" : "s", c.simplified, c.simplified == 1 ? "" : "s",
               a->output);
    printf("%d error%s, %d warning%s, %d note%s%s\n", c.sev[2], c.sev[2] == 1 ? "" : "s",
           c.sev[1], c.sev[1] == 1 ? "" : "s", c.sev[0], c.sev[0] == 1 ? "" : "s",
           a->fix ? " remain" : "");
}

/* ---- the rule table ------------------------------------------------------------------ */

/* A Markdown table cell: '|' escaped. */
static void md_cell(const char *s)
{
    fputs("| ", stdout);
    for (; *s; s++) {
        if (*s == '|') putchar('\\');
        putchar(*s);
    }
    putchar(' ');
}

static void list_markdown(void)
{
    static const char *const cats[] = {"wrong results", "fp16 overflow", "refused"};
    static const char *const titles[] = {
        "Wrong results at run time", "fp16 overflow",
        "Refused or crashing programs (compile or load errors)"};
    printf("# Core ML defect rules\n\n"
           "Generated by `milk lint --list-rules --markdown` from "
           "`src/passes/rules.def`; do not edit by hand.\n"
           "The defects themselves (symptoms, sources) are described in "
           "[coreml-defects.md](coreml-defects.md).\n\n"
           "A rule is selected when the compute units given to `milk lint "
           "--compute-units` (or `milk_rule_options.units`) include one the "
           "defect concerns and the deployment target lies in its range; "
           "fp16 rules also need the op to compute in fp16 (declared fp16, "
           "`--precision fp16`, or the Neural Engine among the compute units). "
           "`--enable-rule ID` selects a rule whatever its scope, "
           "`--disable-rule ID` turns it off. Actions: *rewrite* (`milk lint "
           "--fix`, and milk's converter, rewrite the pattern into an "
           "equivalent program without it), *warn* (reported only), *refuse* "
           "(the program cannot run there: conversion and `--fix` stop). "
           "`milk lint` exits with 1 when a rule of severity *error* matches.\n");
    for (size_t c = 0; c < sizeof cats / sizeof cats[0]; c++) {
        printf("\n## %s\n\n| id | condition | scope | action | severity | source "
               "| suggested fix | note |\n|---|---|---|---|---|---|---|---|\n",
               titles[c]);
        for (int i = 0; i < milk_rule_count(); i++) {
            const milk_rule_info *r = milk_rule_at(i);
            if (strcmp(r->category, cats[c]) != 0) continue;
            printf("| `%s` ", r->id);
            md_cell(r->condition);
            md_cell(r->scope);
            md_cell(milk_rule_action_name(r->action));
            md_cell(milk_rule_severity_name(r->severity));
            md_cell(r->source);
            md_cell(r->fix);
            md_cell(r->note);
            printf("|\n");
        }
    }
}

static void list_rules(const lint_args *a)
{
    if (a->markdown) {
        list_markdown();
        return;
    }
    if (a->json) printf("[\n");
    for (int i = 0; i < milk_rule_count(); i++) {
        const milk_rule_info *r = milk_rule_at(i);
        if (!a->json) {
            printf("%-20s %-8s %-8s %s\n", r->id, milk_rule_action_name(r->action),
                   milk_rule_severity_name(r->severity), r->condition);
            continue;
        }
        printf("  {");
        json_field(stdout, "id", r->id, false);
        json_field(stdout, "category", r->category, true);
        json_field(stdout, "condition", r->condition, true);
        json_field(stdout, "scope", r->scope, true);
        json_field(stdout, "action", milk_rule_action_name(r->action), true);
        json_field(stdout, "severity", milk_rule_severity_name(r->severity), true);
        json_field(stdout, "source", r->source, true);
        json_field(stdout, "fix", r->fix, true);
        json_field(stdout, "note", r->note, true);
        printf("}%s\n", i + 1 < milk_rule_count() ? "," : "");
    }
    if (a->json) printf("]\n");
}

/* ---- running ------------------------------------------------------------------------- */

/* --fix: rewrite, optionally simplify, save. *refused gets the message
 * when a refuse rule matched (nothing is written then). */
static milk_status fix(milk_ctx *ctx, const lint_args *a, milk_program *p,
                       milk_rule_report *r, char *refused, size_t n)
{
    milk_status s = milk_rules_apply(ctx, p, &a->opts, r);
    if (s == MILK_ERR_UNSUPPORTED && milk_rule_report_unfixed(r, MILK_SEVERITY_ERROR)) {
        snprintf(refused, n, "%s", milk_ctx_error(ctx));
        return MILK_OK;
    }
    if (s == MILK_OK && a->simplify) s = milk_program_simplify(ctx, p, MILK_SIMPLIFY_ALL, r);
    if (s == MILK_OK) s = milk_program_save(ctx, p, a->output);
    return s;
}

int cmd_lint(milk_ctx *ctx, int argc, char **argv)
{
    lint_args a;
    int rc = parse_args(argc, argv, &a);
    if (rc) return rc;
    if (a.list) {
        list_rules(&a);
        return 0;
    }
    milk_program *p = NULL;
    milk_rule_report *r = NULL;
    char refused[2048] = "";
    milk_status s = milk_program_load(ctx, a.pkg, &p);
    if (s == MILK_OK) s = milk_rule_report_create(ctx, &r);
    if (s == MILK_OK && a.fix) s = fix(ctx, &a, p, r, refused, sizeof refused);
    else if (s == MILK_OK) s = milk_rules_check(ctx, p, &a.opts, r);
    if (s == MILK_OK) {
        if (a.json) report_json(&a, p, r, refused[0] ? refused : NULL);
        else report_text(&a, p, r, refused[0] ? refused : NULL);
        rc = milk_rule_report_unfixed(r, MILK_SEVERITY_ERROR) ? 1 : 0;
    }
    milk_rule_report_free(r);
    milk_program_free(p);
    return s == MILK_OK ? rc : cli_fail(ctx, s);
}
