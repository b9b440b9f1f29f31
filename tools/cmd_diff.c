/* cmd_diff.c: `milk diff A B`: compare two programs as model.mil text,
 * constants by content. Exit 0 when they are the same, 1 when they differ,
 * 2 on errors. */
#include "cli.h"

#include <stdlib.h>
#include <string.h>

int cmd_diff(milk_ctx *ctx, int argc, char **argv)
{
    const char *usage = "milk diff A.mlpackage B.mlpackage [-U N]";
    const char *path[2] = {NULL, NULL};
    int context = 3, n = 0;
    for (int i = 0; i < argc; i++) {
        const char *v;
        if (cli_opt(argc, argv, &i, "-U", &v)) {
            if (!v || atoi(v) < 0) return cli_usage(usage, "-U takes a number of lines");
            context = atoi(v);
        } else if (argv[i][0] != '-' && n < 2) {
            path[n++] = argv[i];
        } else {
            return cli_usage(usage, "diff: unexpected argument '%s'", argv[i]);
        }
    }
    if (n != 2) return cli_usage(usage, "diff needs two packages");
    milk_program *a = NULL, *b = NULL;
    int differ = 0;
    milk_status s = milk_program_load(ctx, path[0], &a);
    if (s == MILK_OK) s = milk_program_load(ctx, path[1], &b);
    if (s == MILK_OK) s = milk_program_diff(ctx, a, b, path[0], path[1], context, stdout, &differ);
    milk_program_free(a);
    milk_program_free(b);
    if (s != MILK_OK) return cli_fail(ctx, s);
    return differ ? 1 : 0;
}
