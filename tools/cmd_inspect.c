/* cmd_inspect.c: `milk inspect`: one screen about a package or an ONNX
 * model (converted as `milk convert` would, every defect rule off so that
 * the rules that would fire show). The gathering is the library's
 * (milk_program_inspect, src/verify/inspect.c). */
#include "cli.h"

#include <stdbool.h>

#include <stdlib.h>
#include <string.h>

static const char *inspect_usage =
    "milk inspect PKG|MODEL.onnx [--json] [--top N]\n"
    "       ONNX: [--target ios15..ios18] [--precision fp16|fp32]";

static int ends_with(const char *s, const char *tail)
{
    size_t n = strlen(s), k = strlen(tail);
    return n > k && strcmp(s + n - k, tail) == 0;
}

int cmd_inspect(milk_ctx *ctx, int argc, char **argv)
{
    const char *path = NULL, *v;
    unsigned flags = 0;
    milk_inspect_params ip = {0};
    milk_convert_params cp = {0};
    milk_convert_stats st = {0};
    static const char *const all[] = {"all"};
    milk_rule_options faithful = {0};
    faithful.disable = all;
    faithful.n_disable = 1;
    cp.rules = &faithful;
    cp.stats = &st;
    int onnx_opts = 0;
    for (int i = 0; i < argc; i++) {
        const char *opt = argv[i];
        if (strcmp(opt, "--json") == 0) {
            flags |= MILK_INSPECT_JSON;
        } else if (cli_opt(argc, argv, &i, "--top", &v)) {
            char *end;
            long n = v ? strtol(v, &end, 10) : 0;
            if (!v || *end || n < 1 || n > 1000)
                return cli_usage(inspect_usage, "inspect: --top takes 1 to 1000");
            ip.top = (int)n;
        } else if (cli_opt(argc, argv, &i, "--target", &v)) {
            if (!v || !(cp.target = milk_target_from_name(v)))
                return cli_usage(inspect_usage, "inspect: --target is ios15, ios16, ios17 or ios18");
            onnx_opts = 1;
        } else if (cli_opt(argc, argv, &i, "--precision", &v)) {
            if (v && strcmp(v, "fp32") == 0) cp.precision = MILK_CONVERT_FP32;
            else if (!v || strcmp(v, "fp16") != 0)
                return cli_usage(inspect_usage, "inspect: --precision is fp16 or fp32");
            onnx_opts = 1;
        } else if (opt[0] != '-' && !path) {
            path = opt;
        } else {
            return cli_usage(inspect_usage, "inspect: unexpected argument '%s'", opt);
        }
    }
    if (!path) return cli_usage(inspect_usage, "inspect needs a package or an ONNX model");
    bool onnx = ends_with(path, ".onnx");
    if (onnx_opts && !onnx)
        return cli_usage(inspect_usage, "inspect: --target and --precision are for ONNX models");
    ip.label = path;
    ip.onnx = onnx ? &st : NULL;
    milk_program *p = NULL;
    milk_status s = onnx ? milk_onnx_convert(ctx, path, &cp, &p) : milk_program_load(ctx, path, &p);
    if (s == MILK_OK) s = milk_program_inspect(ctx, p, &ip, stdout, flags);
    milk_program_free(p);
    return s == MILK_OK ? 0 : cli_fail(ctx, s);
}
