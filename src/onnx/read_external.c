/*
 * read_external.c: a tensor's external data (data_location EXTERNAL) for
 * the ONNX reader. The entries location, offset and length name a byte
 * range of a file beside the model; it becomes the tensor's file range,
 * and is not read.
 *
 * The location comes from the file, so it is treated as hostile: it must
 * be a relative path without ".." components, and after resolving
 * symlinks it must still lie inside the model's directory, so that a model
 * cannot make milk read (and copy into a package it writes) /etc/passwd or
 * a file a symlink points at elsewhere.
 */
#include "read.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>

static milk_status check_location(milk_onnx_reader *r, const char *loc)
{
    if (!loc || !*loc)
        return milk_errorf(r->ctx, MILK_ERR_INVALID_MODEL,
                           "external_data: no location");
    if (loc[0] == '/')
        return milk_errorf(r->ctx, MILK_ERR_INVALID_MODEL,
                           "external_data location '%s' is an absolute path",
                           loc);
    for (const char *p = loc; *p;) {
        size_t n = strcspn(p, "/");
        if (n == 2 && p[0] == '.' && p[1] == '.')
            return milk_errorf(r->ctx, MILK_ERR_INVALID_MODEL,
                               "external_data location '%s' has a '..' "
                               "component",
                               loc);
        p += n;
        if (*p == '/') p++;
    }
    return MILK_OK;
}

/* True if path is dir or lies below it (both absolute and resolved). */
static bool inside(const char *dir, const char *path)
{
    size_t n = strlen(dir);
    if (n == 1) return path[0] == '/'; /* dir is the root */
    return strncmp(dir, path, n) == 0 && path[n] == '/';
}

/* Resolve location against the model's directory into an absolute path
 * inside it, and the size of that regular file. */
static milk_status resolve(milk_onnx_reader *r, const char *loc,
                           const char **path, uint64_t *size)
{
    if (r->ext_location && strcmp(r->ext_location, loc) == 0) {
        *path = r->ext_path;
        *size = r->ext_size;
        return MILK_OK;
    }
    MILK_TRY(check_location(r, loc));
    size_t n = strlen(r->dir) + strlen(loc) + 2;
    char *joined;
    MILK_TRY(milk_onnx_alloc(r, n, 1, &joined));
    snprintf(joined, n, "%s/%s", r->dir, loc);
    char *real = realpath(joined, NULL);
    if (!real)
        return milk_errorf(r->ctx, MILK_ERR_IO,
                           "external_data location '%s': cannot open %s: %s",
                           loc, joined, strerror(errno));
    struct stat st;
    milk_status s = MILK_OK;
    if (!inside(r->dir, real))
        s = milk_errorf(r->ctx, MILK_ERR_INVALID_MODEL,
                        "external_data location '%s' resolves to %s, outside "
                        "the model's directory %s",
                        loc, real, r->dir);
    else if (stat(real, &st) != 0 || !S_ISREG(st.st_mode))
        s = milk_errorf(r->ctx, MILK_ERR_IO,
                        "external_data location '%s': %s is not a regular "
                        "file",
                        loc, real);
    const char *kept = s == MILK_OK ? milk_arena_strdup(r->arena, real) : NULL;
    free(real);
    MILK_TRY(s);
    if (!kept) return milk_errorf(r->ctx, MILK_ERR_NOMEM, "out of memory");
    r->ext_location = loc;
    r->ext_path = *path = kept;
    r->ext_size = *size = (uint64_t)st.st_size;
    return MILK_OK;
}

/* A non-negative decimal integer, digits only. */
static bool parse_u64(const char *s, uint64_t *out)
{
    uint64_t v = 0;
    if (!*s) return false;
    for (; *s; s++) {
        if (*s < '0' || *s > '9') return false;
        if (!milk_mul_u64(v, 10, &v) || !milk_add_u64(v, (uint64_t)(*s - '0'), &v))
            return false;
    }
    *out = v;
    return true;
}

static milk_status parse_entry(milk_onnx_reader *r, const char *key,
                               const char *text, uint64_t *out)
{
    if (parse_u64(text, out)) return MILK_OK;
    return milk_errorf(r->ctx, MILK_ERR_INVALID_MODEL,
                       "external_data %s '%s' is not a non-negative integer",
                       key, text);
}

milk_status milk_onnx_read_external(milk_onnx_reader *r, const char *location,
                                    const char *offset, const char *length,
                                    milk_onnx_tensor *t)
{
    const char *path = NULL;
    uint64_t size = 0, off = 0, len, end;
    MILK_TRY(resolve(r, location, &path, &size));
    if (offset) MILK_TRY(parse_entry(r, "offset", offset, &off));
    if (off > size)
        return milk_errorf(r->ctx, MILK_ERR_INVALID_MODEL,
                           "external_data offset %llu is past the end of %s "
                           "(%llu bytes)",
                           (unsigned long long)off, path, (unsigned long long)size);
    len = size - off; /* no length: up to the end of the file */
    if (length) MILK_TRY(parse_entry(r, "length", length, &len));
    if (!milk_add_u64(off, len, &end) || end > size)
        return milk_errorf(r->ctx, MILK_ERR_INVALID_MODEL,
                           "external_data offset %llu + length %llu runs past "
                           "the end of %s (%llu bytes)",
                           (unsigned long long)off, (unsigned long long)len, path,
                           (unsigned long long)size);
    if (len != t->nbytes)
        return milk_errorf(r->ctx, MILK_ERR_INVALID_MODEL,
                           "external_data length %llu, expected %llu for %lld "
                           "%s elements",
                           (unsigned long long)len, (unsigned long long)t->nbytes,
                           (long long)t->count, milk_onnx_dtype_name(t->dtype));
    t->kind = MILK_ONNX_DATA_FILE;
    t->path = path;
    t->offset = off;
    t->external = true;
    return MILK_OK;
}
