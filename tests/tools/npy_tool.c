/*
 * npy_tool.c: a small driver of milk's .npy/.npz code for tests/test_npy.py.
 *
 *   npy_tool info FILE              print "name dtype shape" per array
 *   npy_tool copy IN.npy OUT.npy    read, then write back
 *   npy_tool pack OUT.npz NAME=IN.npy...   write the arrays as one archive
 *   npy_tool unpack IN.npz DIR      write DIR/<name>.npy for every member
 *   npy_tool repack IN.npz OUT.npz  read every member, write them back
 *   npy_tool get IN.npz NAME OUT.npy   look one member up by name
 *
 * Exit status: 0 on success, 1 when milk reports an error (the message goes
 * to stderr), 2 on bad usage. The Makefile builds it as $(B)/tools/npy_tool
 * and, with ASan and UBSan, as $(B)/asan/tools/npy_tool.
 */
#include "milk.h"
#include "util/npy.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static bool ends_with(const char *s, const char *tail)
{
    size_t n = strlen(s), t = strlen(tail);
    return n >= t && strcmp(s + n - t, tail) == 0;
}

static void print_array(const char *name, const milk_array *a)
{
    printf("%s %s (", name, milk_dtype_name(a->type.dtype));
    for (int i = 0; i < a->type.rank; i++)
        printf(i ? ", %lld" : "%lld", (long long)a->type.dims[i]);
    printf(a->type.rank == 1 ? ",)\n" : ")\n");
}

static milk_status cmd_info(milk_ctx *ctx, const char *path)
{
    if (ends_with(path, ".npz")) {
        milk_npz z;
        MILK_TRY(milk_npz_read(ctx, path, &z));
        for (int i = 0; i < z.n; i++)
            print_array(z.members[i].name, &z.members[i].array);
        milk_npz_release(&z);
        return MILK_OK;
    }
    milk_array a;
    MILK_TRY(milk_npy_read(ctx, path, &a));
    print_array("-", &a);
    milk_array_release(&a);
    return MILK_OK;
}

static milk_status cmd_copy(milk_ctx *ctx, const char *in, const char *out)
{
    milk_array a;
    MILK_TRY(milk_npy_read(ctx, in, &a));
    milk_status s = milk_npy_write(ctx, out, &a);
    milk_array_release(&a);
    return s;
}

/* args are NAME=PATH pairs. */
static milk_status cmd_pack(milk_ctx *ctx, const char *out, char **args, int n)
{
    const char **names = calloc((size_t)n + 1, sizeof *names);
    milk_array *arrays = calloc((size_t)n + 1, sizeof *arrays);
    milk_status s = names && arrays ? MILK_OK : MILK_ERR_NOMEM;
    for (int i = 0; i < n && s == MILK_OK; i++) {
        char *eq = strchr(args[i], '=');
        if (!eq) {
            s = milk_errorf(ctx, MILK_ERR_INVALID_ARG, "expected NAME=PATH: %s", args[i]);
            break;
        }
        *eq = 0;
        names[i] = args[i];
        s = milk_npy_read(ctx, eq + 1, &arrays[i]);
    }
    if (s == MILK_OK) s = milk_npz_write(ctx, out, names, arrays, n);
    for (int i = 0; arrays && i < n; i++) milk_array_release(&arrays[i]);
    free(names);
    free(arrays);
    return s;
}

static milk_status cmd_unpack(milk_ctx *ctx, const char *in, const char *dir)
{
    milk_npz z;
    MILK_TRY(milk_npz_read(ctx, in, &z));
    milk_status s = MILK_OK;
    for (int i = 0; i < z.n && s == MILK_OK; i++) {
        char path[4096];
        snprintf(path, sizeof path, "%s/%s.npy", dir, z.members[i].name);
        s = milk_npy_write(ctx, path, &z.members[i].array);
    }
    milk_npz_release(&z);
    return s;
}

static milk_status cmd_repack(milk_ctx *ctx, const char *in, const char *out)
{
    milk_npz z;
    MILK_TRY(milk_npz_read(ctx, in, &z));
    const char **names = calloc((size_t)z.n + 1, sizeof *names);
    milk_array *arrays = calloc((size_t)z.n + 1, sizeof *arrays);
    milk_status s = names && arrays ? MILK_OK : MILK_ERR_NOMEM;
    for (int i = 0; s == MILK_OK && i < z.n; i++) {
        names[i] = z.members[i].name;
        arrays[i] = z.members[i].array; /* shallow: z keeps ownership */
    }
    if (s == MILK_OK) s = milk_npz_write(ctx, out, names, arrays, z.n);
    free(names);
    free(arrays);
    milk_npz_release(&z);
    return s;
}

static milk_status cmd_get(milk_ctx *ctx, const char *in, const char *name,
                           const char *out)
{
    milk_npz z;
    MILK_TRY(milk_npz_read(ctx, in, &z));
    const milk_array *a = milk_npz_find(&z, name);
    milk_status s = a ? milk_npy_write(ctx, out, a)
                      : milk_errorf(ctx, MILK_ERR_NOT_FOUND,
                                    "%s: no array named '%s'", in, name);
    milk_npz_release(&z);
    return s;
}

static milk_status run(milk_ctx *ctx, int argc, char **argv, bool *usage)
{
    const char *cmd = argc > 1 ? argv[1] : "";
    if (!strcmp(cmd, "info") && argc >= 3) {
        for (int i = 2; i < argc; i++) MILK_TRY(cmd_info(ctx, argv[i]));
        return MILK_OK;
    }
    if (!strcmp(cmd, "copy") && argc == 4) return cmd_copy(ctx, argv[2], argv[3]);
    if (!strcmp(cmd, "pack") && argc >= 3)
        return cmd_pack(ctx, argv[2], argv + 3, argc - 3);
    if (!strcmp(cmd, "unpack") && argc == 4) return cmd_unpack(ctx, argv[2], argv[3]);
    if (!strcmp(cmd, "repack") && argc == 4) return cmd_repack(ctx, argv[2], argv[3]);
    if (!strcmp(cmd, "get") && argc == 5) return cmd_get(ctx, argv[2], argv[3], argv[4]);
    *usage = true;
    return MILK_ERR_INVALID_ARG;
}

int main(int argc, char **argv)
{
    milk_ctx *ctx;
    if (milk_ctx_create(&ctx) != MILK_OK) return 1;
    bool usage = false;
    milk_status s = run(ctx, argc, argv, &usage);
    if (usage)
        fprintf(stderr, "usage: npy_tool info|copy|pack|unpack|repack|get ...\n");
    else if (s != MILK_OK)
        fprintf(stderr, "npy_tool: %s: %s\n", milk_status_str(s), milk_ctx_error(ctx));
    milk_ctx_free(ctx);
    return usage ? 2 : s != MILK_OK;
}
