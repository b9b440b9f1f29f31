/* cmd_compress.c: `milk compress`: compress the weights of a package
 * (milk_program_compress), and the compression options and report that
 * `milk convert --compress` shares. */
#include "cli.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static const char *compress_usage =
    "milk compress IN.mlpackage -o OUT.mlpackage SPEC\n"
    "       [--granularity per-tensor|per-channel|per-block:N|per-grouped-channel:G]\n"
    "       [--mode symmetric|affine|kmeans|uniform] [--min-size N]\n"
    "       [--op-types T,...] [--op-names NAME,...] [--seed N] [--samples N] [--report]\n"
    "  SPEC: int8 | uint8 | int4 | uint4 | palette:N | prune:F | prune:N:M,\n"
    "        joined by '+' (prune:0.5+palette:4, palette:4+int8)";

int cli_compress_option(int argc, char **argv, int *i, cli_compress *c,
                        const char *usage, int *rc)
{
    const char *v;
    *rc = 0;
    if (cli_opt(argc, argv, i, "--compress", &v)) {
        if (!v) *rc = cli_usage(usage, "--compress takes a spec (int4, palette:4, ...)");
        c->spec = v;
    } else if (cli_opt(argc, argv, i, "--granularity", &v)) {
        if (!v) *rc = cli_usage(usage, "--granularity takes per-tensor, per-channel, "
                                       "per-block:N or per-grouped-channel:G");
        c->granularity = v;
    } else if (cli_opt(argc, argv, i, "--mode", &v)) {
        if (!v) *rc = cli_usage(usage, "--mode takes symmetric, affine, kmeans or uniform");
        c->mode = v;
    } else if (cli_opt(argc, argv, i, "--min-size", &v)) {
        char *end;
        c->min_size = v ? strtoll(v, &end, 10) : -1;
        if (!v || *end || c->min_size < 0)
            *rc = cli_usage(usage, "--min-size takes a number of elements");
    } else if (cli_opt(argc, argv, i, "--seed", &v)) {
        char *end;
        c->seed = v ? strtoull(v, &end, 10) : 0;
        if (!v || *end) *rc = cli_usage(usage, "--seed takes a number");
    } else if (cli_opt(argc, argv, i, "--samples", &v)) {
        char *end;
        c->samples = v ? strtoll(v, &end, 10) : -1;
        if (!v || *end || c->samples < 1) *rc = cli_usage(usage, "--samples takes a number");
    } else if (cli_opt(argc, argv, i, "--op-types", &v)) {
        if (!v || cli_split_names((char *)v, c->op_types, &c->n_op_types, CLI_MAX_NAMES))
            *rc = cli_usage(usage, "--op-types takes T,... (at most %d)", CLI_MAX_NAMES);
    } else if (cli_opt(argc, argv, i, "--op-names", &v)) {
        if (!v || cli_split_names((char *)v, c->op_names, &c->n_op_names, CLI_MAX_NAMES))
            *rc = cli_usage(usage, "--op-names takes NAME,... (at most %d)", CLI_MAX_NAMES);
    } else if (strcmp(argv[*i], "--report") == 0) {
        c->report = true;
    } else {
        return 0;
    }
    return 1;
}

static int parse_granularity(const char *g, milk_compress_params *p)
{
    char *end;
    if (strcmp(g, "per-tensor") == 0) p->granularity = MILK_GRANULARITY_PER_TENSOR;
    else if (strcmp(g, "per-channel") == 0) p->granularity = MILK_GRANULARITY_PER_CHANNEL;
    else if (strncmp(g, "per-block:", 10) == 0) {
        p->granularity = MILK_GRANULARITY_PER_BLOCK;
        p->block_size = strtoll(g + 10, &end, 10);
        if (*end || p->block_size < 1) return -1;
    } else if (strncmp(g, "per-grouped-channel:", 20) == 0) {
        p->granularity = MILK_GRANULARITY_PER_GROUPED_CHANNEL;
        p->block_size = strtoll(g + 20, &end, 10);
        if (*end || p->block_size < 1) return -1;
    } else {
        return -1;
    }
    return 0;
}

int cli_compress_finish(milk_ctx *ctx, cli_compress *c, const char *usage)
{
    if (!c->spec) {
        if (c->granularity || c->mode || c->report || c->n_op_types || c->n_op_names)
            return cli_usage(usage, "compression options without a spec");
        return 0;
    }
    milk_compress_params *p = &c->params;
    if (milk_compress_spec_parse(ctx, c->spec, p) != MILK_OK)
        return cli_usage(usage, "%s", milk_ctx_error(ctx));
    if (c->granularity && parse_granularity(c->granularity, p))
        return cli_usage(usage, "--granularity: '%s' is not per-tensor, per-channel, "
                                "per-block:N or per-grouped-channel:G",
                         c->granularity);
    if (c->mode) {
        bool pal = p->palette_bits != 0;
        if (strcmp(c->mode, "symmetric") == 0 && p->quant) p->affine = 0;
        else if (strcmp(c->mode, "affine") == 0 && p->quant) p->affine = 1;
        else if (strcmp(c->mode, "kmeans") == 0 && pal) p->palette_uniform = 0;
        else if (strcmp(c->mode, "uniform") == 0 && pal) p->palette_uniform = 1;
        else
            return cli_usage(usage, "--mode %s: symmetric or affine go with int8, uint8, "
                                    "int4, uint4; kmeans or uniform with palette:N",
                             c->mode);
    }
    p->min_elements = c->min_size;
    p->seed = c->seed;
    p->kmeans_samples = c->samples;
    p->op_types = c->op_types;
    p->n_op_types = c->n_op_types;
    p->op_names = c->op_names;
    p->n_op_names = c->n_op_names;
    p->measure = c->report;
    return 0;
}

static void human(char *buf, size_t n, double bytes)
{
    const char *unit[] = {"B", "KiB", "MiB", "GiB", "TiB"};
    int u = 0;
    while (bytes >= 1024 && u < 4) {
        bytes /= 1024;
        u++;
    }
    snprintf(buf, n, u ? "%.1f %s" : "%.0f %s", bytes, unit[u]);
}

static void print_db(FILE *f, double db)
{
    if (isinf(db)) fprintf(f, "  %7s", "exact");
    else fprintf(f, "  %7.1f", db);
}

void cli_compress_report(const milk_compress_report *r, FILE *f)
{
    uint64_t before = 0, after = 0, dense = 0;
    int done = 0;
    fprintf(f, "  %-32s %-18s %10s %10s %7s %10s %7s %7s  how\n", "weight", "shape",
            "before", "after", "ratio", "max err", "SNR dB", "PSNR dB");
    for (int i = 0; i < milk_compress_report_count(r); i++) {
        const milk_compress_row *w = milk_compress_report_at(r, i);
        char shape[64], b[32], a[32];
        int k = snprintf(shape, sizeof shape, "%s [", milk_dtype_name(w->type.dtype));
        for (int d = 0; d < w->type.rank && k < (int)sizeof shape; d++)
            k += snprintf(shape + k, sizeof shape - (size_t)k, "%s%lld", d ? ", " : "",
                          (long long)w->type.dims[d]);
        if (k < (int)sizeof shape) snprintf(shape + k, sizeof shape - (size_t)k, "]");
        human(b, sizeof b, (double)w->bytes_before);
        if (!w->compressed) {
            dense += w->bytes_before;
            continue;
        }
        done++;
        before += w->bytes_before;
        after += w->bytes_after;
        human(a, sizeof a, (double)w->bytes_after);
        fprintf(f, "  %-32s %-18s %10s %10s %6.2fx", w->name, shape, b, a,
                w->bytes_after ? (double)w->bytes_before / (double)w->bytes_after : 0.0);
        if (w->measured) {
            fprintf(f, " %10.3g", w->max_abs);
            print_db(f, w->snr_db);
            print_db(f, w->psnr_db);
        } else {
            fprintf(f, " %10s %7s %7s", "-", "-", "-");
        }
        fprintf(f, "  %s\n", w->how);
    }
    for (int i = 0; i < milk_compress_report_count(r); i++) {
        const milk_compress_row *w = milk_compress_report_at(r, i);
        if (w->compressed || strstr(w->how, "not above the minimum size")) continue;
        fprintf(f, "  %-32s dense: %s\n", w->name, w->how);
    }
    char b[32], a[32], d[32];
    human(b, sizeof b, (double)before);
    human(a, sizeof a, (double)after);
    human(d, sizeof d, (double)dense);
    fprintf(f, "  %d weight%s compressed: %s -> %s (%.2fx); %s of float constants left "
               "dense\n",
            done, done == 1 ? "" : "s", b, a, after ? (double)before / (double)after : 0.0,
            d);
}

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

int cmd_compress(milk_ctx *ctx, int argc, char **argv)
{
    cli_compress c;
    memset(&c, 0, sizeof c);
    const char *in = NULL, *out = NULL, *v;
    for (int i = 0; i < argc; i++) {
        int rc;
        if (cli_opt(argc, argv, &i, "-o", &v) || cli_opt(argc, argv, &i, "--output", &v)) {
            if (!v) return cli_usage(compress_usage, "-o takes a package path");
            out = v;
        } else if (cli_compress_option(argc, argv, &i, &c, compress_usage, &rc)) {
            if (rc) return rc;
        } else if (argv[i][0] != '-' && !in) {
            in = argv[i];
        } else if (argv[i][0] != '-' && !c.spec) {
            c.spec = argv[i];
        } else {
            return cli_usage(compress_usage, "compress: unexpected argument '%s'", argv[i]);
        }
    }
    if (!in || !out || !c.spec)
        return cli_usage(compress_usage, "compress needs a package, -o and a spec");
    int rc = cli_compress_finish(ctx, &c, compress_usage);
    if (rc) return rc;
    double t0 = now();
    milk_program *p = NULL;
    milk_compress_report *r = NULL;
    milk_status s = milk_program_load(ctx, in, &p);
    if (s == MILK_OK) s = milk_compress_report_create(ctx, &r);
    if (s == MILK_OK) s = milk_program_compress(ctx, p, &c.params, r);
    if (s == MILK_OK) s = milk_program_save(ctx, p, out);
    if (s == MILK_OK) {
        int n = 0;
        uint64_t before = 0, after = 0;
        for (int i = 0; i < milk_compress_report_count(r); i++) {
            const milk_compress_row *w = milk_compress_report_at(r, i);
            if (!w->compressed) continue;
            n++;
            before += w->bytes_before;
            after += w->bytes_after;
        }
        printf("compressed %s -> %s (%s): %d weight%s, %.2f MB -> %.2f MB, %.3f s\n", in,
               out, c.spec, n, n == 1 ? "" : "s", (double)before / 1e6,
               (double)after / 1e6, now() - t0);
        if (c.report) cli_compress_report(r, stdout);
    }
    milk_compress_report_free(r);
    milk_program_free(p);
    return s == MILK_OK ? 0 : cli_fail(ctx, s);
}
