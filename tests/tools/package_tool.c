/*
 * package_tool.c: a small driver of milk's package reader and writer for
 * tests/test_package.py and tests/test_robustness.py.
 *
 *   package_tool load PKG            load, then milk_program_check
 *   package_tool roundtrip PKG OUT   load, check, save as OUT
 *
 * Exit status: 0 on success, 1 when milk reports an error (the message goes
 * to stderr), 2 on bad usage. The Makefile builds it as $(B)/tools/package_tool
 * and, with ASan and UBSan, as $(B)/asan/tools/package_tool.
 */
#include "milk.h"

#include <stdbool.h>
#include <stdio.h>
#include <string.h>

static int fail(milk_ctx *ctx, milk_status s)
{
    fprintf(stderr, "package_tool: %s: %s\n", milk_status_str(s),
            milk_ctx_error(ctx));
    return 1;
}

static int run(milk_ctx *ctx, const char *in, const char *out)
{
    milk_program *p;
    milk_status s = milk_program_load(ctx, in, &p);
    if (s != MILK_OK) return fail(ctx, s);
    s = milk_program_check(ctx, p);
    if (s == MILK_OK && out) s = milk_program_save(ctx, p, out);
    milk_program_free(p);
    return s == MILK_OK ? 0 : fail(ctx, s);
}

int main(int argc, char **argv)
{
    bool load = argc == 3 && strcmp(argv[1], "load") == 0;
    bool trip = argc == 4 && strcmp(argv[1], "roundtrip") == 0;
    if (!load && !trip) {
        fprintf(stderr, "usage: package_tool load PKG | roundtrip PKG OUT\n");
        return 2;
    }
    milk_ctx *ctx;
    if (milk_ctx_create(&ctx) != MILK_OK) return 1;
    int rc = run(ctx, argv[2], trip ? argv[3] : NULL);
    milk_ctx_free(ctx);
    return rc;
}
