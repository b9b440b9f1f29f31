/* cmd_convert.c: `milk convert`: ONNX to a Core ML ML Program package,
 * with a summary of what the conversion did; `--list-ops` prints the
 * lowering table. */
#include "cli.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static const char *convert_usage =
    "milk convert IN.onnx -o OUT.mlpackage [--target ios15|ios16|ios17|ios18]\n"
    "       [--precision fp16|fp32] [--input-shape NAME=d0,d1,... ...]\n"
    "       milk convert --list-ops";

#define MAX_SHAPES 64

typedef struct convert_args {
    const char *in, *out;
    bool list_ops;
    milk_input_shape shapes[MAX_SHAPES];
    milk_convert_params params;
} convert_args;

static int parse_option(milk_ctx *ctx, int argc, char **argv, int *i,
                        convert_args *a)
{
    const char *v;
    if (cli_opt(argc, argv, i, "-o", &v) || cli_opt(argc, argv, i, "--output", &v)) {
        if (!v) return cli_usage(convert_usage, "-o takes a package path");
        a->out = v;
    } else if (cli_opt(argc, argv, i, "--target", &v)) {
        if (!v || !(a->params.target = milk_target_from_name(v)))
            return cli_usage(convert_usage, "--target is ios15, ios16, ios17 or ios18");
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
    } else {
        return cli_usage(convert_usage, "convert: unexpected argument '%s'", argv[*i]);
    }
    return 0;
}

static int parse_args(milk_ctx *ctx, int argc, char **argv, convert_args *a)
{
    memset(a, 0, sizeof *a);
    a->params.input_shapes = a->shapes;
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

static void list_ops(void)
{
    for (int i = 0; i < milk_onnx_lowering_count(); i++) {
        const char *op, *doc;
        milk_onnx_lowering(i, &op, &doc);
        printf("%-20s %s\n", op, doc);
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

static void summarize(const convert_args *a, const milk_program *p,
                      const milk_convert_stats *st, double seconds)
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
    if (st->int64_io)
        printf("  note: int64 became int32 (MIL has no int64): %s\n", st->note);
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
    a.params.stats = &st;
    double t0 = now();
    milk_status s = milk_onnx_convert(ctx, a.in, &a.params, &p);
    if (s == MILK_OK) s = milk_program_save(ctx, p, a.out);
    if (s == MILK_OK) summarize(&a, p, &st, now() - t0);
    milk_program_free(p);
    return s == MILK_OK ? 0 : cli_fail(ctx, s);
}
