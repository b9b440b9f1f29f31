/*
 * manifest.c: a package's Manifest.json (docs/coreml-format.md 1.2).
 * Reading parses it with cJSON and checks what coremltools' reader checks
 * (fileFormatVersion, the four keys of every item, the root model item),
 * plus that every item path stays inside the package, symlinks included.
 * Writing prints the exact text coremltools produces, with fresh upper-case
 * UUIDs as item identifiers.
 */
#include "coreml.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#define MANIFEST "Manifest.json"
#define MAX_MANIFEST_BYTES (1u << 20)
#define AUTHOR "com.apple.CoreML"

typedef struct mf_reader {
    milk_ctx *ctx;
    char file[4096];      /* PKG/Manifest.json, for messages */
    const char *pkg;
    const char *pkg_real;
} mf_reader;

static milk_status bad(mf_reader *m, milk_status s, const char *fmt, ...)
    MILK_PRINTF(3, 4);

static milk_status bad(mf_reader *m, milk_status s, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return milk_errorf(m->ctx, s, "%s: %s", m->file, msg);
}

static milk_status slurp(mf_reader *m, char **out)
{
    *out = NULL;
    FILE *f = fopen(m->file, "rb");
    if (!f)
        return bad(m, MILK_ERR_IO, "cannot open: %s%s", strerror(errno),
                   errno == ENOENT ? " (not a .mlpackage)" : "");
    char *buf = malloc(MAX_MANIFEST_BYTES + 1);
    size_t n = buf ? fread(buf, 1, MAX_MANIFEST_BYTES + 1, f) : 0;
    int err = ferror(f);
    fclose(f);
    if (!buf) return milk_errorf(m->ctx, MILK_ERR_NOMEM, "out of memory");
    if (err || n > MAX_MANIFEST_BYTES) {
        free(buf);
        return bad(m, err ? MILK_ERR_IO : MILK_ERR_PARSE,
                   err ? "cannot read" : "larger than 1 MiB");
    }
    buf[n] = 0;
    *out = buf;
    return MILK_OK;
}

/* "major.minor.patch", three non-negative integers, not newer than 1.0.0. */
static milk_status check_version(mf_reader *m, const cJSON *v)
{
    long part[3] = {0};
    const char *s = cJSON_IsString(v) ? v->valuestring : NULL;
    int k = 0;
    for (; s && k < 3; k++) {
        char *end;
        if (*s < '0' || *s > '9') break;
        errno = 0;
        part[k] = strtol(s, &end, 10);
        if (errno || (*end != (k < 2 ? '.' : '\0'))) break;
        s = end + (k < 2);
    }
    if (k != 3)
        return bad(m, MILK_ERR_PARSE,
                   "fileFormatVersion: expected a string \"major.minor.patch\"");
    if (part[0] > 1 || (part[0] == 1 && (part[1] > 0 || part[2] > 0)))
        return bad(m, MILK_ERR_UNSUPPORTED,
                   "fileFormatVersion: %ld.%ld.%ld is newer than 1.0.0",
                   part[0], part[1], part[2]);
    return MILK_OK;
}

static const char *str_key(const cJSON *item, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(item, key);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

/* An item path is relative and has no ".." component. */
static bool safe_rel_path(const char *p)
{
    if (!p[0] || p[0] == '/') return false;
    for (const char *c = p; *c;) {
        size_t n = strcspn(c, "/");
        if (n == 2 && c[0] == '.' && c[1] == '.') return false;
        c += n;
        if (*c == '/') c++;
    }
    return true;
}

/* Check item `id` and resolve its path to `real` (inside the package). */
static milk_status check_item(mf_reader *m, const cJSON *item, char *real,
                              size_t n, char *rel, size_t rn)
{
    const char *id = item->string;
    static const char *const keys[] = {"path", "name", "author", "description"};
    if (!cJSON_IsObject(item))
        return bad(m, MILK_ERR_PARSE, "itemInfoEntries['%s']: not an object", id);
    for (size_t i = 0; i < MILK_ARRAY_LEN(keys); i++)
        if (!str_key(item, keys[i]))
            return bad(m, MILK_ERR_PARSE,
                       "itemInfoEntries['%s']: '%s' is missing or not a "
                       "string",
                       id, keys[i]);
    const char *path = str_key(item, "path");
    if (!safe_rel_path(path))
        return bad(m, MILK_ERR_INVALID_MODEL,
                   "itemInfoEntries['%s']: path '%s' is absolute or has a "
                   "'..' component",
                   id, path);
    char full[4096], field[512];
    if (snprintf(rel, rn, "Data/%s", path) >= (int)rn ||
        !coreml_path_join(full, sizeof full, m->pkg, rel))
        return bad(m, MILK_ERR_INVALID_MODEL, "itemInfoEntries['%s']: path too long", id);
    snprintf(field, sizeof field, "itemInfoEntries['%s'].path", id);
    /* A package without weights has an empty weights directory, which
     * copies made with git (which keeps no empty directories) lose: a
     * missing one is taken as empty. A blob reference then fails. */
    struct stat st;
    if (strcmp(str_key(item, "name"), "weights") == 0 &&
        lstat(full, &st) != 0 && errno == ENOENT) {
        real[0] = 0;
        return MILK_OK;
    }
    return coreml_path_inside(m->ctx, m->file, field, full, m->pkg_real, real, n);
}

static bool is_kind(const char *path, mode_t kind)
{
    struct stat st;
    return stat(path, &st) == 0 && (st.st_mode & S_IFMT) == kind;
}

static milk_status check_entries(mf_reader *m, const cJSON *root,
                                 coreml_manifest *out)
{
    const cJSON *items = cJSON_GetObjectItemCaseSensitive(root, "itemInfoEntries");
    const char *root_id = str_key(root, "rootModelIdentifier");
    if (!cJSON_IsObject(items))
        return bad(m, MILK_ERR_PARSE, "itemInfoEntries: missing or not an object");
    if (!root_id)
        return bad(m, MILK_ERR_PARSE, "rootModelIdentifier: missing or not a string");
    bool found = false;
    for (const cJSON *it = items->child; it; it = it->next) {
        char real[4096], rel[4096];
        MILK_TRY(check_item(m, it, real, sizeof real, rel, sizeof rel));
        bool is_root = strcmp(it->string, root_id) == 0;
        bool is_weights = strcmp(str_key(it, "name"), "weights") == 0 &&
                          strcmp(str_key(it, "author"), AUTHOR) == 0;
        if (is_root && !found) {
            if (!is_kind(real, S_IFREG))
                return bad(m, MILK_ERR_INVALID_MODEL,
                           "rootModelIdentifier: '%s' is not a file", rel);
            snprintf(out->model, sizeof out->model, "%s", real);
            snprintf(out->model_rel, sizeof out->model_rel, "%s", rel);
            found = true;
        } else if (is_weights && !out->weights[0] && real[0]) {
            if (!is_kind(real, S_IFDIR))
                return bad(m, MILK_ERR_INVALID_MODEL,
                           "itemInfoEntries['%s']: weights '%s' is not a "
                           "directory",
                           it->string, rel);
            snprintf(out->weights, sizeof out->weights, "%s", real);
        }
    }
    if (!found)
        return bad(m, MILK_ERR_INVALID_MODEL,
                   "rootModelIdentifier: '%s' is not in itemInfoEntries", root_id);
    return MILK_OK;
}

milk_status coreml_manifest_read(milk_ctx *ctx, const char *pkg,
                                 const char *pkg_real, coreml_manifest *out)
{
    mf_reader m = {.ctx = ctx, .pkg = pkg, .pkg_real = pkg_real};
    memset(out, 0, sizeof *out);
    if (!coreml_path_join(m.file, sizeof m.file, pkg, MANIFEST))
        return milk_errorf(ctx, MILK_ERR_INVALID_ARG, "%s: path too long", pkg);
    char real[4096];
    if (access(m.file, F_OK) == 0) /* a symlink to elsewhere is refused too */
        MILK_TRY(coreml_path_inside(ctx, m.file, "the file", m.file, pkg_real,
                                    real, sizeof real));
    char *text;
    MILK_TRY(slurp(&m, &text));
    cJSON *root = cJSON_Parse(text);
    free(text);
    milk_status s;
    if (!root)
        s = bad(&m, MILK_ERR_PARSE, "not valid JSON");
    else if (!cJSON_IsObject(root))
        s = bad(&m, MILK_ERR_PARSE, "not a JSON object");
    else
        s = check_version(&m, cJSON_GetObjectItemCaseSensitive(root, "fileFormatVersion"));
    if (s == MILK_OK) s = check_entries(&m, root, out);
    cJSON_Delete(root);
    return s;
}

/* ---- writing -------------------------------------------------------------------- */

/* A random (version 4) UUID in upper case, as macOS writes them. */
static milk_status uuid4(milk_ctx *ctx, char out[37])
{
    unsigned char b[16];
    FILE *f = fopen("/dev/urandom", "rb");
    size_t n = f ? fread(b, 1, sizeof b, f) : 0;
    if (f) fclose(f);
    if (n != sizeof b)
        return milk_errorf(ctx, MILK_ERR_IO, "/dev/urandom: cannot read");
    b[6] = (unsigned char)((b[6] & 0x0f) | 0x40);
    b[8] = (unsigned char)((b[8] & 0x3f) | 0x80);
    snprintf(out, 37,
             "%02X%02X%02X%02X-%02X%02X-%02X%02X-%02X%02X-"
             "%02X%02X%02X%02X%02X%02X",
             b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9],
             b[10], b[11], b[12], b[13], b[14], b[15]);
    return MILK_OK;
}

static void print_item(FILE *f, const char *id, const char *desc,
                       const char *name, bool last)
{
    fprintf(f,
            "        \"%s\": {\n"
            "            \"author\": \"" AUTHOR "\",\n"
            "            \"description\": \"%s\",\n"
            "            \"name\": \"%s\",\n"
            "            \"path\": \"" AUTHOR "/%s\"\n"
            "        }%s\n",
            id, desc, name, name, last ? "" : ",");
}

/* The text is printed by hand rather than with cJSON, whose printer
 * indents with tabs and keeps insertion order: coremltools (nlohmann::json)
 * writes 4-space indentation, keys sorted, and a trailing newline, and
 * matching it byte for byte keeps packages diffable against its output. */
milk_status coreml_manifest_write(milk_ctx *ctx, const char *dir)
{
    char model_id[37], weights_id[37], path[4096];
    MILK_TRY(uuid4(ctx, model_id));
    MILK_TRY(uuid4(ctx, weights_id));
    if (!coreml_path_join(path, sizeof path, dir, MANIFEST))
        return milk_errorf(ctx, MILK_ERR_INVALID_ARG, "%s: path too long", dir);
    FILE *f = fopen(path, "w");
    if (!f)
        return milk_errorf(ctx, MILK_ERR_IO, "%s: cannot create: %s", path,
                           strerror(errno));
    bool model_first = strcmp(model_id, weights_id) < 0;
    fprintf(f, "{\n    \"fileFormatVersion\": \"1.0.0\",\n"
               "    \"itemInfoEntries\": {\n");
    for (int i = 0; i < 2; i++) {
        bool model = (i == 0) == model_first;
        print_item(f, model ? model_id : weights_id,
                   model ? "CoreML Model Specification" : "CoreML Model Weights",
                   model ? "model.mlmodel" : "weights", i == 1);
    }
    fprintf(f, "    },\n    \"rootModelIdentifier\": \"%s\"\n}\n", model_id);
    int err = ferror(f);
    if (fclose(f) != 0 || err)
        return milk_errorf(ctx, MILK_ERR_IO, "%s: cannot write", path);
    return MILK_OK;
}
