/*
 * package.c: milk_program_load() and milk_program_save(): where the files
 * of a .mlpackage (or a bare .mlmodel) are, path containment checks, and
 * the save protocol: everything is written into a temporary directory
 * beside the destination, which is renamed into place only when complete
 * (an existing package is renamed aside first and removed last); on any
 * failure the temporary directory is removed and the destination is left
 * as it was.
 */
#include "coreml.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#define MODEL_DIR "Data/com.apple.CoreML"
#define MAX_TREE_DEPTH 16 /* a package is 4 levels deep */

bool coreml_path_join(char *buf, size_t n, const char *a, const char *b)
{
    size_t la = strlen(a);
    const char *sep = la && a[la - 1] == '/' ? "" : "/";
    int k = snprintf(buf, n, "%s%s%s", a, sep, b);
    return k >= 0 && (size_t)k < n;
}

milk_status coreml_path_inside(milk_ctx *ctx, const char *file,
                               const char *what, const char *path,
                               const char *root, char *out, size_t n)
{
    char real[PATH_MAX];
    if (!realpath(path, real))
        return milk_errorf(ctx, MILK_ERR_IO, "%s: %s: cannot open '%s': %s",
                           file, what, path, strerror(errno));
    size_t lr = strlen(root);
    bool inside = strcmp(root, "/") == 0 ||
                  (strncmp(real, root, lr) == 0 &&
                   (real[lr] == '/' || real[lr] == '\0'));
    if (!inside)
        return milk_errorf(ctx, MILK_ERR_INVALID_MODEL,
                           "%s: %s: '%s' leads outside the package (to '%s')",
                           file, what, path, real);
    if (strlen(real) >= n)
        return milk_errorf(ctx, MILK_ERR_INVALID_ARG, "%s: path too long", real);
    memcpy(out, real, strlen(real) + 1);
    return MILK_OK;
}

/* ---- loading ------------------------------------------------------------------------ */

static milk_status load_package(milk_ctx *ctx, const char *path,
                                milk_program **out)
{
    char pkg_real[PATH_MAX], file[4096], weights[4096];
    if (!realpath(path, pkg_real))
        return milk_errorf(ctx, MILK_ERR_IO, "%s: cannot open: %s", path,
                           strerror(errno));
    coreml_manifest *m = malloc(sizeof *m);
    if (!m) return milk_errorf(ctx, MILK_ERR_NOMEM, "out of memory");
    milk_status s = coreml_manifest_read(ctx, path, pkg_real, m);
    if (s == MILK_OK && !coreml_path_join(file, sizeof file, path, m->model_rel))
        s = milk_errorf(ctx, MILK_ERR_INVALID_ARG, "%s: path too long", path);
    /* @model_path is the model's directory; without a weights item its
     * weights/ subdirectory is where blob files are looked for. */
    if (s == MILK_OK && m->weights[0])
        snprintf(weights, sizeof weights, "%s", m->weights);
    else if (s == MILK_OK) {
        char *slash = strrchr(m->model, '/');
        snprintf(weights, sizeof weights, "%.*s/weights",
                 (int)(slash ? slash - m->model : 0), m->model);
    }
    if (s == MILK_OK) s = coreml_model_read(ctx, file, pkg_real, weights, out);
    free(m);
    return s;
}

/* A bare .mlmodel: blob files are looked for in weights/ beside it, and
 * must stay inside its directory. */
static milk_status load_bare(milk_ctx *ctx, const char *path,
                             milk_program **out)
{
    char real[PATH_MAX], weights[PATH_MAX + 16];
    if (!realpath(path, real))
        return milk_errorf(ctx, MILK_ERR_IO, "%s: cannot open: %s", path,
                           strerror(errno));
    char *slash = strrchr(real, '/');
    if (slash == real) slash[1] = '\0';
    else if (slash) *slash = '\0';
    snprintf(weights, sizeof weights, "%s/weights", real);
    return coreml_model_read(ctx, path, real, weights, out);
}

milk_status milk_program_load(milk_ctx *ctx, const char *path,
                              milk_program **out)
{
    *out = NULL;
    struct stat st;
    if (!path || stat(path, &st) != 0)
        return milk_errorf(ctx, MILK_ERR_IO, "%s: cannot open: %s",
                           path ? path : "(null)", strerror(errno));
    if (S_ISDIR(st.st_mode)) return load_package(ctx, path, out);
    if (S_ISREG(st.st_mode)) return load_bare(ctx, path, out);
    return milk_errorf(ctx, MILK_ERR_IO,
                       "%s: neither a .mlpackage directory nor a file", path);
}

/* ---- removing a tree ----------------------------------------------------------------- */

/* rm -r without following symlinks, for the temporary directory and the
 * replaced package. */
static int remove_tree(const char *path, int depth)
{
    struct stat st;
    if (lstat(path, &st) != 0) return errno == ENOENT ? 0 : -1;
    if (!S_ISDIR(st.st_mode)) return unlink(path);
    if (depth > MAX_TREE_DEPTH) return -1;
    DIR *d = opendir(path);
    if (!d) return -1;
    int rc = 0;
    for (struct dirent *e; (e = readdir(d));) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) continue;
        char sub[4096];
        if (!coreml_path_join(sub, sizeof sub, path, e->d_name) ||
            remove_tree(sub, depth + 1) != 0)
            rc = -1;
    }
    closedir(d);
    return rc == 0 ? rmdir(path) : rc;
}

/* ---- saving ---------------------------------------------------------------------------- */

typedef struct save_paths {
    char dir[4096];  /* the destination's parent directory */
    char base[256];  /* its last component */
    char tmp[4096];  /* the temporary package */
} save_paths;

static milk_status split_dest(milk_ctx *ctx, const char *path, save_paths *sp)
{
    char buf[4096];
    size_t n = strlen(path);
    while (n > 1 && path[n - 1] == '/') n--;
    if (n == 0 || n >= sizeof buf)
        return milk_errorf(ctx, MILK_ERR_INVALID_ARG, "'%s': bad destination", path);
    memcpy(buf, path, n);
    buf[n] = 0;
    char *slash = strrchr(buf, '/');
    const char *base = slash ? slash + 1 : buf;
    if (!*base || strcmp(base, ".") == 0 || strcmp(base, "..") == 0 ||
        strlen(base) + 20 >= sizeof sp->base)
        return milk_errorf(ctx, MILK_ERR_INVALID_ARG,
                           "%s: not a usable package name", path);
    memcpy(sp->base, base, strlen(base) + 1); /* length checked above */
    if (!slash) snprintf(sp->dir, sizeof sp->dir, ".");
    else if (slash == buf) snprintf(sp->dir, sizeof sp->dir, "/");
    else snprintf(sp->dir, sizeof sp->dir, "%.*s", (int)(slash - buf), buf);
    return MILK_OK;
}

/* An existing destination is replaced only if it looks like a package (a
 * directory with Manifest.json) or is an empty directory: never a file or
 * an unrelated directory. */
static milk_status check_dest(milk_ctx *ctx, const char *path, bool *exists)
{
    struct stat st;
    *exists = lstat(path, &st) == 0;
    if (!*exists) return MILK_OK;
    char manifest[4096];
    bool ok = S_ISDIR(st.st_mode) &&
              coreml_path_join(manifest, sizeof manifest, path, "Manifest.json");
    if (ok && access(manifest, F_OK) != 0) {
        DIR *d = opendir(path);
        int entries = 0;
        for (struct dirent *e; d && (e = readdir(d));)
            entries += strcmp(e->d_name, ".") && strcmp(e->d_name, "..");
        if (d) closedir(d);
        ok = d && entries == 0;
    }
    if (!ok)
        return milk_errorf(ctx, MILK_ERR_INVALID_ARG,
                           "%s: exists and is not a .mlpackage; not replacing "
                           "it",
                           path);
    return MILK_OK;
}

static milk_status make_dirs(milk_ctx *ctx, const char *tmp)
{
    static const char *const dirs[] = {"Data", MODEL_DIR, MODEL_DIR "/weights"};
    for (size_t i = 0; i < MILK_ARRAY_LEN(dirs); i++) {
        char p[4096];
        if (!coreml_path_join(p, sizeof p, tmp, dirs[i]) || mkdir(p, 0777) != 0)
            return milk_errorf(ctx, MILK_ERR_IO, "%s/%s: cannot create: %s", tmp,
                               dirs[i], strerror(errno));
    }
    return MILK_OK;
}

/* Write the whole package into the (empty) directory tmp. */
static milk_status write_package(milk_ctx *ctx, const milk_program *p,
                                 const char *tmp)
{
    char model[4096], weights[4096];
    MILK_TRY(make_dirs(ctx, tmp));
    if (!coreml_path_join(model, sizeof model, tmp, MODEL_DIR "/model.mlmodel") ||
        !coreml_path_join(weights, sizeof weights, tmp, MODEL_DIR "/weights/weight.bin"))
        return milk_errorf(ctx, MILK_ERR_INVALID_ARG, "%s: path too long", tmp);
    coreml_writer w = {.ctx = ctx, .p = p, .a = milk_arena_create(),
                       .weights_path = weights};
    if (!w.a) return milk_errorf(ctx, MILK_ERR_NOMEM, "out of memory");
    milk_status s = coreml_model_write(&w, model);
    milk_arena_free(w.a);
    if (s == MILK_OK) s = coreml_manifest_write(ctx, tmp);
    return s;
}

/* Move tmp to path; an existing package goes aside first, and is put back
 * if the second rename fails. */
static milk_status swap_in(milk_ctx *ctx, const save_paths *sp,
                           const char *path, bool exists)
{
    char old[4096] = "";
    if (exists) {
        if (snprintf(old, sizeof old, "%s/.%s.old-XXXXXX", sp->dir, sp->base) >= (int)sizeof old ||
            !mkdtemp(old) || rename(path, old) != 0) {
            milk_status s = milk_errorf(ctx, MILK_ERR_IO,
                                        "%s: cannot move the old package "
                                        "aside: %s",
                                        path, strerror(errno));
            if (old[0]) rmdir(old);
            return s;
        }
    }
    if (rename(sp->tmp, path) != 0) {
        milk_status s = milk_errorf(ctx, MILK_ERR_IO, "%s: cannot rename %s into place: %s",
                                    path, sp->tmp, strerror(errno));
        if (exists) rename(old, path);
        return s;
    }
    if (exists) remove_tree(old, 0);
    return MILK_OK;
}

milk_status milk_program_save(milk_ctx *ctx, const milk_program *p,
                              const char *path)
{
    save_paths sp;
    bool exists;
    if (!p || !path) return milk_errorf(ctx, MILK_ERR_INVALID_ARG, "no program or path");
    milk_status s = milk_program_check(ctx, p);
    if (s != MILK_OK) return coreml_prefix(ctx, s, "%s: cannot save", path);
    MILK_TRY(split_dest(ctx, path, &sp));
    MILK_TRY(check_dest(ctx, path, &exists));
    if (snprintf(sp.tmp, sizeof sp.tmp, "%s/.%s.tmp-XXXXXX", sp.dir, sp.base) >= (int)sizeof sp.tmp ||
        !mkdtemp(sp.tmp))
        return milk_errorf(ctx, MILK_ERR_IO, "%s: cannot create a temporary "
                           "directory beside it: %s", path, strerror(errno));
    /* mkdtemp makes it 0700; a package is as readable as any directory. */
    chmod(sp.tmp, 0755);
    s = write_package(ctx, p, sp.tmp);
    if (s == MILK_OK) s = swap_in(ctx, &sp, path, exists);
    if (s != MILK_OK) remove_tree(sp.tmp, 0);
    return s;
}
