/* cmd_extract.c: `milk extract`: cut one op, or the ops between two, out
 * of a package into a standalone package, optionally in a variant, and
 * capture the values its inputs had in a run of the full program into an
 * .npz beside it, ready to attach to a bug report. */
#include "cli.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char *extract_usage =
    "milk extract PKG (--op NAME | --from NAME --to NAME) -o SUB.mlpackage\n"
    "       [--variant zero-bias|lift-1d] [--inputs-from REF.npz [--input NAME=FILE.npy ...]]\n"
    "       [--precision as-declared|fp32] [--function NAME]";

#define MAX_INPUTS 64

typedef struct extract_args {
    const char *pkg, *out, *ref;
    const char *inputs[MAX_INPUTS];
    milk_extract_params ep;
    milk_verify_params vp;
} extract_args;

static int parse_variant(const char *v, milk_extract_variant *out)
{
    if (v && strcmp(v, "zero-bias") == 0) *out = MILK_EXTRACT_ZERO_BIAS;
    else if (v && strcmp(v, "lift-1d") == 0) *out = MILK_EXTRACT_LIFT_1D;
    else if (v && strcmp(v, "none") == 0) *out = MILK_EXTRACT_PLAIN;
    else return -1;
    return 1;
}

/* Options taking a value; 1 if argv[*i] was one, -1 on a bad value. */
static int parse_valued(int argc, char **argv, int *i, extract_args *a)
{
    const char *v;
    if (cli_opt(argc, argv, i, "--op", &v)) return (a->ep.op = v) ? 1 : -1;
    if (cli_opt(argc, argv, i, "--from", &v)) return (a->ep.from = v) ? 1 : -1;
    if (cli_opt(argc, argv, i, "--to", &v)) return (a->ep.to = v) ? 1 : -1;
    if (cli_opt(argc, argv, i, "-o", &v) || cli_opt(argc, argv, i, "--output", &v))
        return (a->out = v) ? 1 : -1;
    if (cli_opt(argc, argv, i, "--inputs-from", &v)) return (a->ref = v) ? 1 : -1;
    if (cli_opt(argc, argv, i, "--variant", &v)) return parse_variant(v, &a->ep.variant);
    if (cli_opt(argc, argv, i, "--function", &v))
        return (a->ep.function = a->vp.function = v) ? 1 : -1;
    if (cli_opt(argc, argv, i, "--input", &v)) {
        if (!v || !strchr(v, '=') || a->vp.n_inputs == MAX_INPUTS) return -1;
        a->inputs[a->vp.n_inputs++] = v;
        return 1;
    }
    if (cli_opt(argc, argv, i, "--precision", &v)) {
        if (v && strcmp(v, "fp32") == 0) a->vp.precision = MILK_PRECISION_FP32;
        else if (v && strcmp(v, "as-declared") == 0) a->vp.precision = MILK_PRECISION_AS_DECLARED;
        else return -1;
        return 1;
    }
    return 0;
}

static int parse_args(int argc, char **argv, extract_args *a)
{
    memset(a, 0, sizeof *a);
    a->vp.inputs = a->inputs;
    for (int i = 0; i < argc; i++) {
        const char *opt = argv[i];
        int r = parse_valued(argc, argv, &i, a);
        if (r < 0) return cli_usage(extract_usage, "extract: bad or missing value for %s", opt);
        if (r > 0) continue;
        if (argv[i][0] != '-' && !a->pkg) a->pkg = argv[i];
        else return cli_usage(extract_usage, "extract: unexpected argument '%s'", argv[i]);
    }
    if (!a->pkg || !a->out) return cli_usage(extract_usage, "extract needs a package and -o");
    bool range = a->ep.from || a->ep.to;
    if (!a->ep.op == !range || (range && !(a->ep.from && a->ep.to)))
        return cli_usage(extract_usage, "extract: give --op, or both --from and --to");
    if (a->vp.n_inputs && !a->ref)
        return cli_usage(extract_usage, "extract: --input goes with --inputs-from");
    return 0;
}

/* SUB.mlpackage -> SUB.npz; any other name gets ".npz" appended. */
static char *npz_name(const char *out)
{
    size_t n = strlen(out), ext = strlen(".mlpackage");
    while (n > 1 && out[n - 1] == '/') n--;
    if (n > ext && strncmp(out + n - ext, ".mlpackage", ext) == 0) n -= ext;
    char *s = malloc(n + 5);
    if (s) {
        memcpy(s, out, n);
        memcpy(s + n, ".npz", 5);
    }
    return s;
}

static void print_vars(const char *what, milk_var *const *vars, int n)
{
    printf("  %s:", what);
    for (int i = 0; i < n; i++) {
        const milk_tensor_type *t = milk_var_type(vars[i]);
        printf("%s %s %s[", i ? "," : "", milk_var_name(vars[i]),
               milk_dtype_name(t->dtype) ? milk_dtype_name(t->dtype) : "?");
        for (int d = 0; d < t->rank; d++) printf("%s%lld", d ? "," : "", (long long)t->dims[d]);
        printf("]");
    }
    printf("\n");
}

static void summarize(const extract_args *a, const milk_program *q, const char *npz)
{
    const milk_function *f = milk_program_function(q, "main");
    const milk_block *b = milk_function_block(f);
    int ops = 0;
    for (int i = 0; i < milk_block_op_count(b); i++)
        ops += strcmp(milk_op_type(milk_block_op(b, i)), "const") != 0;
    printf("wrote %s: %d op%s\n", a->out, ops, ops == 1 ? "" : "s");
    milk_var *vars[256];
    int n = 0;
    for (; n < milk_function_input_count(f) && n < 256; n++) vars[n] = milk_function_input(f, n);
    print_vars("inputs", vars, n);
    for (n = 0; n < milk_block_output_count(b) && n < 256; n++) vars[n] = milk_block_output(b, n);
    print_vars("outputs", vars, n);
    if (npz)
        printf("wrote %s: the inputs and the outputs the full program computed "
               "(check with: milk verify %s --reference %s)\n", npz, a->out, npz);
}

int cmd_extract(milk_ctx *ctx, int argc, char **argv)
{
    extract_args a;
    int rc = parse_args(argc, argv, &a);
    if (rc) return rc;
    char *npz = a.ref ? npz_name(a.out) : NULL;
    if (a.ref && !npz) return cli_fail(ctx, MILK_ERR_NOMEM);
    milk_program *p = NULL, *q = NULL;
    milk_status s = milk_program_load(ctx, a.pkg, &p);
    if (s == MILK_OK) s = milk_program_extract(ctx, p, &a.ep, &q);
    /* The capture fails more often (inputs missing): do it first, and
     * take its file back if the package cannot be written. */
    if (s == MILK_OK && npz) s = milk_extract_capture(ctx, p, q, a.ref, &a.vp, npz);
    if (s == MILK_OK && (s = milk_program_save(ctx, q, a.out)) != MILK_OK && npz) unlink(npz);
    if (s == MILK_OK) summarize(&a, q, npz);
    rc = s == MILK_OK ? 0 : cli_fail(ctx, s);
    milk_program_free(q);
    milk_program_free(p);
    free(npz);
    return rc;
}
