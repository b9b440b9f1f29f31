/* cli.h: what the subcommands of the milk tool share. */
#ifndef MILK_CLI_H
#define MILK_CLI_H

#include "milk.h"

#include <stdbool.h>
#include <stdio.h>

/* Print "milk: <status>: <message>" and return the exit status for errors. */
int cli_fail(milk_ctx *ctx, milk_status s);
/* Print a usage error for a subcommand and return 2. */
int cli_usage(const char *usage, const char *fmt, ...);
/* True if argv[*i] is `name`; then *val is the next argument (error if
 * missing) and *i advances. Also accepts `name=value`. */
int cli_opt(int argc, char **argv, int *i, const char *name, const char **val);
/* Split "a,b,c" in place (commas become NULs) and append the non-empty
 * names to names[*n..max-1]; -1 if they do not fit (cmd_convert.c). */
/* --threads N: a count from 1 to 256 into *n; false if v is not one. */
int cli_threads(const char *v, int *n);
int cli_split_names(char *list, const char **names, int *n, int max);

/* The compression options of `milk compress` and `milk convert
 * --compress` (cmd_compress.c). */
#define CLI_MAX_NAMES 1024
typedef struct cli_compress {
    const char *spec;         /* NULL: no compression */
    const char *granularity, *mode;
    long long min_size, samples;
    unsigned long long seed;
    const char *op_types[CLI_MAX_NAMES], *op_names[CLI_MAX_NAMES];
    int n_op_types, n_op_names;
    bool report;
    milk_compress_params params; /* filled by cli_compress_finish */
} cli_compress;

/* 1 if argv[*i] is a compression option (then *rc is 0 or a usage exit
 * status), 0 otherwise. */
int cli_compress_option(int argc, char **argv, int *i, cli_compress *c,
                        const char *usage, int *rc);
/* Parse the spec and apply the options to c->params; 0 or an exit
 * status. */
int cli_compress_finish(milk_ctx *ctx, cli_compress *c, const char *usage);
/* The table of `--report`: each weight's size before and after, and its
 * error. */
void cli_compress_report(const milk_compress_report *r, FILE *f);

int cmd_dump(milk_ctx *ctx, int argc, char **argv);
int cmd_compress(milk_ctx *ctx, int argc, char **argv);
int cmd_run(milk_ctx *ctx, int argc, char **argv);
int cmd_diff(milk_ctx *ctx, int argc, char **argv);
int cmd_ops(milk_ctx *ctx, int argc, char **argv);
int cmd_lint(milk_ctx *ctx, int argc, char **argv);
int cmd_convert(milk_ctx *ctx, int argc, char **argv);
int cmd_verify(milk_ctx *ctx, int argc, char **argv);
int cmd_extract(milk_ctx *ctx, int argc, char **argv);
int cmd_merge(milk_ctx *ctx, int argc, char **argv);
int cmd_debug(milk_ctx *ctx, int argc, char **argv);
int cmd_inspect(milk_ctx *ctx, int argc, char **argv);

#endif
