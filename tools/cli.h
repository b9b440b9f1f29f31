/* cli.h: what the subcommands of the milk tool share. */
#ifndef MILK_CLI_H
#define MILK_CLI_H

#include "milk.h"

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

int cmd_dump(milk_ctx *ctx, int argc, char **argv);
int cmd_run(milk_ctx *ctx, int argc, char **argv);
int cmd_diff(milk_ctx *ctx, int argc, char **argv);
int cmd_ops(milk_ctx *ctx, int argc, char **argv);
int cmd_lint(milk_ctx *ctx, int argc, char **argv);
int cmd_convert(milk_ctx *ctx, int argc, char **argv);
int cmd_verify(milk_ctx *ctx, int argc, char **argv);
int cmd_extract(milk_ctx *ctx, int argc, char **argv);
int cmd_merge(milk_ctx *ctx, int argc, char **argv);
int cmd_debug(milk_ctx *ctx, int argc, char **argv);

#endif
