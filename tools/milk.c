/* milk.c: the command-line tool. Each subcommand parses its arguments and
 * calls the library; errors print the context message and exit non-zero. */
#include "milk.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef int (*cmd_fn)(milk_ctx *ctx, int argc, char **argv);

static int fail(milk_ctx *ctx, milk_status s)
{
    fprintf(stderr, "milk: %s: %s\n", milk_status_str(s), milk_ctx_error(ctx));
    return 2;
}

static int cmd_dump(milk_ctx *ctx, int argc, char **argv)
{
    unsigned flags = 0;
    const char *path = NULL;
    for (int i = 0; i < argc; i++) {
        if (strcmp(argv[i], "--values") == 0)
            flags |= MILK_PRINT_VALUES;
        else if (!path)
            path = argv[i];
        else {
            fprintf(stderr, "milk dump: unexpected argument '%s'\n", argv[i]);
            return 2;
        }
    }
    if (!path) {
        fprintf(stderr, "usage: milk dump PKG [--values]\n");
        return 2;
    }
    milk_program *p;
    milk_status s = milk_program_load(ctx, path, &p);
    if (s != MILK_OK) return fail(ctx, s);
    s = milk_program_print(ctx, p, stdout, flags);
    milk_program_free(p);
    return s == MILK_OK ? 0 : fail(ctx, s);
}

static const struct {
    const char *name;
    cmd_fn fn;
    const char *help;
} cmds[] = {
    {"dump", cmd_dump, "dump PKG [--values]     print the program as model.mil text"},
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
