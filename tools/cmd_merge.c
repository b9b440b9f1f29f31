/* cmd_merge.c: `milk merge`: several packages (or functions of packages)
 * into one multifunction package whose functions share their weights
 * (milk_program_add_function_from; equal constants are stored once), as
 * coremltools' save_multifunction makes them. */
#include "cli.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>

static const char *merge_usage =
    "milk merge [PKG ...] [--function NAME=PKG[:FN] ...] -o OUT.mlpackage [--default NAME]";

#define MAX_PARTS 64

/* One function to take: `fn` of package `pkg` (NULL: every function of a
 * package given by itself), named `name`. */
typedef struct part {
    const char *pkg;
    char path[4096]; /* pkg without ":FN" */
    char name[256], fn[256];
    int whole;
} part;

typedef struct merge_args {
    part parts[MAX_PARTS];
    int n;
    const char *out, *dflt;
} merge_args;

/* NAME=PKG[:FN]; the function is what follows the last ':' unless that
 * holds a '/' (a path may hold ':' too). */
static int parse_function(const char *v, part *p)
{
    const char *eq = v ? strchr(v, '=') : NULL;
    if (!eq || eq == v || !eq[1] || (size_t)(eq - v) >= sizeof p->name) return 0;
    snprintf(p->name, sizeof p->name, "%.*s", (int)(eq - v), v);
    const char *pkg = eq + 1, *colon = strrchr(pkg, ':');
    if (colon && (!colon[1] || strchr(colon, '/'))) colon = NULL;
    size_t len = colon ? (size_t)(colon - pkg) : strlen(pkg);
    if (len >= sizeof p->path || (colon && strlen(colon + 1) >= sizeof p->fn)) return 0;
    snprintf(p->path, sizeof p->path, "%.*s", (int)len, pkg);
    if (colon) snprintf(p->fn, sizeof p->fn, "%s", colon + 1);
    p->pkg = p->path;
    return 1;
}

static int parse_args(int argc, char **argv, merge_args *a)
{
    memset(a, 0, sizeof *a);
    for (int i = 0; i < argc; i++) {
        const char *v;
        if (cli_opt(argc, argv, &i, "-o", &v) || cli_opt(argc, argv, &i, "--output", &v)) {
            if (!v) return cli_usage(merge_usage, "-o takes a package name");
            a->out = v;
        } else if (cli_opt(argc, argv, &i, "--default", &v)) {
            if (!v) return cli_usage(merge_usage, "--default takes a function name");
            a->dflt = v;
        } else if (cli_opt(argc, argv, &i, "--function", &v)) {
            if (a->n == MAX_PARTS || !parse_function(v, &a->parts[a->n]))
                return cli_usage(merge_usage, "--function takes NAME=PKG[:FN]");
            a->n++;
        } else if (argv[i][0] != '-' && a->n < MAX_PARTS) {
            a->parts[a->n].pkg = argv[i];
            a->parts[a->n++].whole = 1;
        } else {
            return cli_usage(merge_usage, "merge: unexpected argument '%s'", argv[i]);
        }
    }
    if (!a->out || a->n == 0)
        return cli_usage(merge_usage, "merge needs packages or --function, and -o");
    return 0;
}

/* A package's own name as a function name: its file name without
 * .mlpackage / .mlmodel, characters outside [A-Za-z0-9_] as '_'. */
static void stem(const char *pkg, char *buf, size_t n)
{
    size_t len = strlen(pkg);
    while (len > 1 && pkg[len - 1] == '/') len--;
    const char *base = pkg;
    for (size_t i = 0; i < len; i++)
        if (pkg[i] == '/') base = pkg + i + 1;
    size_t bl = (size_t)(pkg + len - base);
    const char *dot = memchr(base, '.', bl);
    if (dot) bl = (size_t)(dot - base);
    size_t k = 0;
    if (bl && isdigit((unsigned char)base[0]) && k + 1 < n) buf[k++] = '_';
    for (size_t i = 0; i < bl && k + 1 < n; i++)
        buf[k++] = isalnum((unsigned char)base[i]) ? base[i] : '_';
    buf[k] = 0;
    if (!k) snprintf(buf, n, "function");
}

/* Take every function of q (a package given by itself): named as in the
 * package, except that a package holding only main gives a function named
 * after the package. */
static milk_status take_whole(milk_ctx *ctx, milk_program *p, const part *pt,
                              const milk_program *q, const char **first)
{
    int n = milk_program_function_count(q);
    for (int i = 0; i < n; i++) {
        const char *fn = milk_function_name(milk_program_function_at(q, i));
        char name[256];
        if (n == 1 && strcmp(fn, "main") == 0) stem(pt->pkg, name, sizeof name);
        else snprintf(name, sizeof name, "%s", fn);
        if (milk_program_function(p, name))
            fprintf(stderr, "milk: %s: name its function '%s' with --function "
                            "NAME=%s:%s\n", pt->pkg, fn, pt->pkg, fn);
        milk_status s = milk_program_add_function_from(ctx, p, name, q, fn);
        if (s != MILK_OK) return s;
        if (!*first) *first = milk_function_name(milk_program_function(p, name));
    }
    return MILK_OK;
}

/* The program holding the merged functions: the newest target of the
 * sources, iOS18 at least (the first with several functions), with the
 * first package's metadata. */
static milk_status new_program(milk_ctx *ctx, milk_program *const *src, int n,
                               milk_program **out)
{
    milk_target t = MILK_TARGET_IOS18;
    for (int i = 0; i < n; i++)
        if (milk_program_target(src[i]) > t) t = milk_program_target(src[i]);
    milk_status s = milk_program_create(ctx, t, out);
    static const char *const keys[] = {"author", "license", "shortDescription", "versionString"};
    for (size_t i = 0; s == MILK_OK && i < sizeof keys / sizeof keys[0]; i++) {
        const char *v = milk_program_metadata(src[0], keys[i]);
        if (v) s = milk_program_set_metadata(ctx, *out, keys[i], v);
    }
    return s;
}

static milk_status merge(milk_ctx *ctx, const merge_args *a, milk_program **src)
{
    milk_status s = MILK_OK;
    for (int i = 0; s == MILK_OK && i < a->n; i++)
        s = milk_program_load(ctx, a->parts[i].pkg, &src[i]);
    milk_program *p = NULL;
    if (s == MILK_OK) s = new_program(ctx, src, a->n, &p);
    const char *first = NULL;
    for (int i = 0; s == MILK_OK && i < a->n; i++) {
        const part *pt = &a->parts[i];
        if (pt->whole) {
            s = take_whole(ctx, p, pt, src[i], &first);
            continue;
        }
        s = milk_program_add_function_from(ctx, p, pt->name, src[i],
                                           pt->fn[0] ? pt->fn : NULL);
        if (s == MILK_OK && !first)
            first = milk_function_name(milk_program_function(p, pt->name));
    }
    if (s == MILK_OK) s = milk_program_set_default_function(ctx, p, a->dflt ? a->dflt : first);
    if (s == MILK_OK) s = milk_program_save(ctx, p, a->out);
    if (s == MILK_OK) {
        printf("wrote %s: %d functions (default '%s', target %s)\n", a->out,
               milk_program_function_count(p), milk_program_default_function(p),
               milk_target_name(milk_program_target(p)));
        for (int i = 0; i < milk_program_function_count(p); i++) {
            const milk_function *f = milk_program_function_at(p, i);
            printf("  %s<%s>: %d inputs, %d outputs\n", milk_function_name(f),
                   milk_function_opset(f), milk_function_input_count(f),
                   milk_block_output_count(milk_function_block(f)));
        }
    }
    milk_program_free(p);
    return s;
}

int cmd_merge(milk_ctx *ctx, int argc, char **argv)
{
    merge_args a;
    int rc = parse_args(argc, argv, &a);
    if (rc) return rc;
    milk_program *src[MAX_PARTS] = {0};
    milk_status s = merge(ctx, &a, src);
    for (int i = 0; i < a.n; i++) milk_program_free(src[i]);
    return s == MILK_OK ? 0 : cli_fail(ctx, s);
}
