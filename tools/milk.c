/* milk.c: the command-line tool. Each subcommand (tools/cmd_*.c) parses
 * its arguments and calls the library; errors print the context message
 * and exit with status 2 (1 is kept for "ran, but found a problem"). */
#include "cli.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

int cli_fail(milk_ctx *ctx, milk_status s)
{
    fprintf(stderr, "milk: %s: %s\n", milk_status_str(s), milk_ctx_error(ctx));
    return 2;
}

int cli_usage(const char *usage, const char *fmt, ...)
{
    if (fmt) {
        va_list ap;
        va_start(ap, fmt);
        fputs("milk: ", stderr);
        vfprintf(stderr, fmt, ap);
        fputc('\n', stderr);
        va_end(ap);
    }
    fprintf(stderr, "usage: %s\n", usage);
    return 2;
}

int cli_opt(int argc, char **argv, int *i, const char *name, const char **val)
{
    size_t n = strlen(name);
    if (strncmp(argv[*i], name, n) != 0) return 0;
    if (argv[*i][n] == '=') {
        *val = argv[*i] + n + 1;
        return 1;
    }
    if (argv[*i][n] != 0) return 0;
    if (*i + 1 >= argc) {
        *val = NULL;
        return 1;
    }
    *val = argv[++*i];
    return 1;
}

int cli_threads(const char *v, int *n)
{
    char *end;
    long t = v ? strtol(v, &end, 10) : 0;
    if (!v || *end || t < 1 || t > 256) return 0;
    *n = (int)t;
    return 1;
}

int cmd_dump(milk_ctx *ctx, int argc, char **argv)
{
    const char *usage = "milk dump PKG [--values | --hash | --summary]";
    unsigned flags = 0;
    const char *path = NULL;
    for (int i = 0; i < argc; i++) {
        if (strcmp(argv[i], "--values") == 0)
            flags |= MILK_PRINT_VALUES;
        else if (strcmp(argv[i], "--hash") == 0)
            flags |= MILK_PRINT_HASH;
        else if (strcmp(argv[i], "--summary") == 0)
            flags |= MILK_PRINT_SUMMARY;
        else if (argv[i][0] != '-' && !path)
            path = argv[i];
        else
            return cli_usage(usage, "dump: unexpected argument '%s'", argv[i]);
    }
    if (!path) return cli_usage(usage, NULL);
    milk_program *p;
    milk_status s = milk_program_load(ctx, path, &p);
    if (s != MILK_OK) return cli_fail(ctx, s);
    s = milk_program_print(ctx, p, stdout, flags);
    milk_program_free(p);
    return s == MILK_OK ? 0 : cli_fail(ctx, s);
}

static const struct {
    const char *name;
    int (*fn)(milk_ctx *ctx, int argc, char **argv);
    const char *help;
} cmds[] = {
    {"dump", cmd_dump, "dump PKG [--values | --hash | --summary]\n"
                       "      print the program as model.mil text (--summary: bytes by "
                       "dtype, compressed weights)"},
    {"diff", cmd_diff, "diff A.mlpackage B.mlpackage [-U N]\n"
                       "      compare two programs as model.mil text (constants by content)"},
    {"ops", cmd_ops, "ops [--markdown]\n"
                     "      list the MIL ops milk knows, their inputs and kernels"},
    {"convert", cmd_convert,
     "convert IN.onnx -o OUT.mlpackage [--target ios15..ios18|ios26]\n"
     "      [--precision fp16|fp32] [--input-shape NAME=d0,d1,... ...] [--list-ops]\n"
     "      [--compute-units all|cpu_only|cpu_and_gpu|cpu_and_ne] [--disable-rule ID|all]\n"
     "      [--enable-rule ID] [--keep-fp32 NAME,...] [--freeze NAME=FILE.npy ...]\n"
     "      [--compress SPEC [compress's options]]\n"
     "      [--state IN=OUT ...]\n"
     "      convert an ONNX model to a Core ML ML Program package"},
    {"compress", cmd_compress,
     "compress IN.mlpackage -o OUT.mlpackage SPEC [--granularity G] [--mode M]\n"
     "      [--min-size N] [--op-types T,...] [--op-names NAME,...] [--seed N] [--report]\n"
     "      compress the weights (SPEC: int8, uint8, int4, uint4, palette:N, prune:F,\n"
     "      prune:N:M, joined by '+')"},
    {"run", cmd_run, "run PKG --input NAME=FILE.npy ... --output OUT.npz\n"
                     "      [--precision as-declared|fp32] [--keep-all] [--reference]\n"
                     "      [--function NAME] [--inputs FILE.npz] [--steps N]\n"
                     "      [--state-in S.npz] [--state-out S.npz]\n"
                     "      execute the program with the reference interpreter"},
    {"verify", cmd_verify, "verify PKG --reference REF.npz [--input NAME=FILE.npy ...]\n"
                           "      verify A.mlpackage B.mlpackage [--input ...] [--seed N]\n"
                           "      verify MODEL.onnx [--target T] [--precision fp16|fp32] "
                           "[--input ...]\n"
                           "        [--compute-units U] [--keep-fp32 NAME,...] "
                           "[--suggest-fp32]\n"
                           "      (two packages: [--pair A_NAME=B_NAME ...])\n"
                           "      [--atol A|NAME:A] [--rtol R|NAME:R] [--check-error-stat "
                           "max|mean|median|elemwise]\n"
                           "      [--fail-fast] [--save-inputs IN.npz] [--save-outputs "
                           "OUT.npz]\n"
                           "      [--precision as-declared|fp32] [--json] [--report FILE.html]\n"
                           "      compare every value with a reference; name the first "
                           "divergent op\n"
                           "      (exit 0: all match, 1: something diverges, 2: error)"},
    {"extract", cmd_extract, "extract PKG (--op NAME | --from NAME --to NAME) -o SUB.mlpackage\n"
                             "      [--variant zero-bias|lift-1d] [--inputs-from REF.npz]\n"
                             "      cut ops out into a standalone package (and SUB.npz)"},
    {"inspect", cmd_inspect,
     "inspect PKG|MODEL.onnx [--json] [--top N] (ONNX: [--target T] [--precision P])\n"
     "      one screen: I/O, targets, functions, ops, weights, rules per compute units"},
    {"merge", cmd_merge, "merge [PKG ...] [--function NAME=PKG[:FN] ...] -o OUT.mlpackage "
                         "[--default NAME]\n"
                         "      one multifunction package from several; equal weights "
                         "stored once"},
    {"debug", cmd_debug,
     "debug reduce IN.(mlpackage|onnx) -o MIN.mlpackage\n"
     "      (--against REF.npz | --fp16-vs-fp32 | --lint RULE | --check \"CMD {}\")\n"
     "      [--input NAME=FILE.npy ...] [--seed N] [--atol A|NAME:A] [--rtol R|NAME:R]\n"
     "      [--check-error-stat STAT] [--mode bisect|linear|both] [--max-candidates N]\n"
     "      [--work-dir DIR] [--precision P] [--target T] [--compute-units U] [--json]\n"
     "      reduce a failing program to a small subgraph that still fails"},
    {"lint", cmd_lint, "lint PKG [--target ios15..ios18|ios26] [--compute-units all|cpu_only|"
                       "cpu_and_gpu|cpu_and_ne]\n"
                       "      [--precision as-declared|fp16] [--disable-rule ID|all] "
                       "[--enable-rule ID] [--json]\n"
                       "      [--fix -o OUT.mlpackage [--simplify]] | --list-rules "
                       "[--markdown|--json]\n"
                       "      report known Core ML defect patterns; --fix rewrites them "
                       "away"},
};

static void usage(FILE *f)
{
    fprintf(f, "usage: milk COMMAND [ARGS]\n\ncommands:\n");
    for (size_t i = 0; i < sizeof cmds / sizeof cmds[0]; i++)
        fprintf(f, "  %s\n", cmds[i].help);
}

int main(int argc, char **argv)
{
    if (argc < 2 || strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    for (size_t i = 0; i < sizeof cmds / sizeof cmds[0]; i++) {
        if (strcmp(argv[1], cmds[i].name) != 0) continue;
        milk_ctx *ctx;
        if (milk_ctx_create(&ctx) != MILK_OK) return 2;
        int rc = cmds[i].fn(ctx, argc - 2, argv + 2);
        milk_ctx_free(ctx);
        return rc;
    }
    fprintf(stderr, "milk: unknown command '%s'\n", argv[1]);
    usage(stderr);
    return 2;
}
