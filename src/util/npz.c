/*
 * npz.c: .npz archives (np.savez, np.savez_compressed), read and written
 * with libzip.
 *
 * An .npz is a ZIP archive whose members are .npy files named
 * `<name>.npy`. Members are read straight from libzip's decompressing
 * stream into the array's storage (no copy of the whole member), and
 * written from two buffers (header and the caller's data) without copying
 * either. libzip writes the archive to a temporary file and renames it
 * into place in zip_close().
 */
#include "npy.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <zip.h>

/* Deflate turns at most 1032 output bytes out of one input byte (zlib's
 * "maximum compression factor"); a member claiming more than that is lying,
 * and is refused before its size is allocated. The slack covers the
 * headers of tiny streams. */
#define DEFLATE_MAX_RATIO 1032u
#define DEFLATE_SLACK 4096u

static milk_status zip_error_status(milk_ctx *ctx, const char *path,
                                    zip_error_t *ze, const char *what)
{
    int code = zip_error_code_zip(ze);
    milk_status s = code == ZIP_ER_NOENT || code == ZIP_ER_OPEN ||
                            code == ZIP_ER_READ || code == ZIP_ER_WRITE ||
                            code == ZIP_ER_TMPOPEN || code == ZIP_ER_RENAME
                        ? MILK_ERR_IO
                        : MILK_ERR_PARSE;
    /* libzip says "File already exists" when two members share a name. */
    milk_errorf(ctx, s, "%s: %s: %s", path, what,
                code == ZIP_ER_EXISTS ? "two members have the same name"
                                      : zip_error_strerror(ze));
    return s;
}

/* Open an archive through a file source, so that system errors (errno)
 * reach the message; zip_open() keeps only libzip's code. */
static milk_status open_archive(milk_ctx *ctx, const char *path, int flags,
                                const char *what, zip_t **out)
{
    zip_error_t ze;
    zip_error_init(&ze);
    milk_status s = MILK_OK;
    zip_source_t *src = zip_source_file_create(path, 0, -1, &ze);
    if (!src) {
        s = zip_error_status(ctx, path, &ze, what);
    } else if (!(*out = zip_open_from_source(src, flags, &ze))) {
        zip_source_free(src);
        s = zip_error_status(ctx, path, &ze, what);
    }
    zip_error_fini(&ze);
    return s;
}

/* ---- reading ------------------------------------------------------------ */

static milk_status member_read(milk_ctx *ctx, void *user, const char *name,
                               void *buf, size_t n)
{
    zip_file_t *zf = user;
    char *p = buf;
    while (n > 0) {
        zip_int64_t r = zip_fread(zf, p, n);
        if (r < 0)
            return milk_errorf(ctx, MILK_ERR_PARSE, "%s: %s", name,
                               zip_file_strerror(zf));
        if (r == 0)
            return milk_errorf(ctx, MILK_ERR_PARSE, "%s: data ends before the "
                               "size the archive directory gives", name);
        p += r;
        n -= (size_t)r;
    }
    return MILK_OK;
}

/* After the last byte, libzip checks the CRC only when a read hits the end
 * of the stream; read once more to make it do so. */
static milk_status member_finish(milk_ctx *ctx, const char *name,
                                 zip_file_t *zf)
{
    char extra;
    zip_int64_t r = zip_fread(zf, &extra, 1);
    if (r < 0)
        return milk_errorf(ctx, MILK_ERR_PARSE, "%s: %s", name,
                           zip_file_strerror(zf));
    if (r > 0)
        return milk_errorf(ctx, MILK_ERR_PARSE, "%s: more data than the "
                           "archive directory gives", name);
    return MILK_OK;
}

/* The array name of a member ("x.npy" -> "x"), distinct from those read
 * so far. */
static milk_status member_name(milk_ctx *ctx, const char *path,
                               const char *member, const milk_npz *z,
                               char **out)
{
    size_t len = strlen(member);
    if (len <= 4 || strcmp(member + len - 4, ".npy") != 0)
        return milk_errorf(ctx, MILK_ERR_PARSE, "%s: member '%s' is not a "
                           "<name>.npy file", path, member);
    for (int i = 0; i < z->n; i++)
        if (strlen(z->members[i].name) == len - 4 &&
            memcmp(z->members[i].name, member, len - 4) == 0)
            return milk_errorf(ctx, MILK_ERR_PARSE, "%s: two members named "
                               "'%s'", path, member);
    if (!(*out = strndup(member, len - 4)))
        return milk_errorf(ctx, MILK_ERR_NOMEM, "%s: out of memory", path);
    return MILK_OK;
}

static milk_status check_member_size(milk_ctx *ctx, const char *label,
                                     const zip_stat_t *st)
{
    const zip_uint64_t need = ZIP_STAT_SIZE | ZIP_STAT_COMP_SIZE |
                              ZIP_STAT_COMP_METHOD;
    if ((st->valid & need) != need)
        return milk_errorf(ctx, MILK_ERR_PARSE, "%s: size unknown", label);
    uint64_t limit; /* when this overflows, any size is possible */
    bool bad = (st->comp_method == ZIP_CM_STORE && st->size != st->comp_size) ||
               (st->comp_method == ZIP_CM_DEFLATE &&
                milk_mul_u64(st->comp_size, DEFLATE_MAX_RATIO, &limit) &&
                milk_add_u64(limit, DEFLATE_SLACK, &limit) && st->size > limit);
    if (bad)
        return milk_errorf(ctx, MILK_ERR_PARSE, "%s: size %llu cannot come "
                           "from %llu compressed bytes", label,
                           (unsigned long long)st->size,
                           (unsigned long long)st->comp_size);
    return MILK_OK;
}

/* Read member i as an array; `label` names it in messages. */
static milk_status read_array(milk_ctx *ctx, zip_t *za, zip_uint64_t i,
                              const char *label, const zip_stat_t *st,
                              milk_array *out)
{
    MILK_TRY(check_member_size(ctx, label, st));
    zip_file_t *zf = zip_fopen_index(za, i, 0);
    if (!zf)
        return milk_errorf(ctx, MILK_ERR_UNSUPPORTED, "%s: cannot open: %s",
                           label, zip_strerror(za));
    milk_npy_source src = {label, st->size, member_read, zf};
    milk_status s = milk_npy_read_source(ctx, &src, out);
    if (s == MILK_OK) s = member_finish(ctx, label, zf);
    if (s != MILK_OK) milk_array_release(out);
    zip_fclose(zf);
    return s;
}

static milk_status read_member(milk_ctx *ctx, const char *path, zip_t *za,
                               zip_uint64_t i, milk_npz *z)
{
    zip_stat_t st;
    if (zip_stat_index(za, i, 0, &st) != 0 || !(st.valid & ZIP_STAT_NAME))
        return milk_errorf(ctx, MILK_ERR_PARSE, "%s: member %llu: %s", path,
                           (unsigned long long)i, zip_strerror(za));
    char *name;
    MILK_TRY(member_name(ctx, path, st.name, z, &name));
    size_t cap = strlen(path) + strlen(st.name) + 16;
    char *label = malloc(cap);
    if (!label) {
        free(name);
        return milk_errorf(ctx, MILK_ERR_NOMEM, "%s: out of memory", path);
    }
    snprintf(label, cap, "%s: member '%s'", path, st.name);
    milk_array a;
    milk_status s = read_array(ctx, za, i, label, &st, &a);
    free(label);
    if (s != MILK_OK) {
        free(name);
        return s;
    }
    z->members[z->n].name = name;
    z->members[z->n].array = a;
    z->n++;
    return MILK_OK;
}

milk_status milk_npz_read(milk_ctx *ctx, const char *path, milk_npz *out)
{
    memset(out, 0, sizeof *out);
    zip_t *za = NULL;
    MILK_TRY(open_archive(ctx, path, ZIP_RDONLY | ZIP_CHECKCONS,
                          "not a readable .npz (zip) archive", &za));
    zip_int64_t n = zip_get_num_entries(za, 0);
    milk_status s = MILK_OK;
    if (n < 0 || n > INT_MAX)
        s = milk_errorf(ctx, MILK_ERR_PARSE, "%s: bad member count", path);
    else if (!(out->members = calloc(n ? (size_t)n : 1, sizeof *out->members)))
        s = milk_errorf(ctx, MILK_ERR_NOMEM, "%s: out of memory", path);
    for (zip_int64_t i = 0; s == MILK_OK && i < n; i++)
        s = read_member(ctx, path, za, (zip_uint64_t)i, out);
    zip_discard(za); /* read-only: nothing to write back */
    if (s != MILK_OK) milk_npz_release(out);
    return s;
}

const milk_array *milk_npz_find(const milk_npz *z, const char *name)
{
    for (int i = 0; z && i < z->n; i++)
        if (strcmp(z->members[i].name, name) == 0) return &z->members[i].array;
    return NULL;
}

void milk_npz_release(milk_npz *z)
{
    if (!z) return;
    for (int i = 0; i < z->n; i++) {
        free(z->members[i].name);
        milk_array_release(&z->members[i].array);
    }
    free(z->members);
    memset(z, 0, sizeof *z);
}

/* ---- writing ------------------------------------------------------------- */

/* An archive with no members is just the end-of-central-directory record:
 * its signature "PK\5\6" and 18 zero bytes (disk numbers, entry counts,
 * directory size and offset, comment length). numpy writes this for
 * np.savez(f); libzip deletes an archive left empty instead. */
static const unsigned char empty_zip[22] = {'P', 'K', 5, 6};

static milk_status check_names(milk_ctx *ctx, const char *path,
                               const char *const *names, int n)
{
    for (int i = 0; i < n; i++) {
        if (!names[i] || !names[i][0])
            return milk_errorf(ctx, MILK_ERR_INVALID_ARG, "%s: array %d has "
                               "no name", path, i);
        for (int j = 0; j < i; j++)
            if (strcmp(names[i], names[j]) == 0)
                return milk_errorf(ctx, MILK_ERR_INVALID_ARG, "%s: two arrays "
                                   "named '%s'", path, names[i]);
    }
    return MILK_OK;
}

/* Add `name`.npy, stored, from the header in hdr (which must stay valid
 * until zip_close) and a's data. */
static milk_status add_member(milk_ctx *ctx, const char *path, zip_t *za,
                              const char *name, const milk_array *a, char *hdr)
{
    size_t cap = strlen(name) + 5, hlen;
    char *member = malloc(cap);
    if (!member)
        return milk_errorf(ctx, MILK_ERR_NOMEM, "%s: out of memory", path);
    snprintf(member, cap, "%s.npy", name);
    uint64_t nbytes;
    milk_status s = milk_npy_header(ctx, member, a, hdr, &hlen, &nbytes);
    if (s != MILK_OK) {
        free(member);
        return milk_error_prefix(ctx, "%s", path);
    }
    /* No empty fragment: some libzip versions mis-index their fragment
     * offsets when they skip one. */
    zip_buffer_fragment_t frags[2] = {{(zip_uint8_t *)hdr, hlen},
                                      {(zip_uint8_t *)a->data, nbytes}};
    zip_error_t ze;
    zip_error_init(&ze);
    zip_source_t *src = zip_source_buffer_fragment_create(frags, nbytes ? 2 : 1,
                                                          0, &ze);
    zip_int64_t idx = -1;
    if (!src)
        s = zip_error_status(ctx, path, &ze, member);
    else if ((idx = zip_file_add(za, member, src, ZIP_FL_ENC_GUESS)) < 0)
        zip_source_free(src);
    if (s == MILK_OK &&
        (idx < 0 || zip_set_file_compression(za, (zip_uint64_t)idx,
                                             ZIP_CM_STORE, 0) != 0))
        s = milk_errorf(ctx, MILK_ERR_IO, "%s: %s: %s", path, member,
                        zip_strerror(za));
    zip_error_fini(&ze);
    free(member);
    return s;
}

milk_status milk_npz_write(milk_ctx *ctx, const char *path,
                           const char *const *names, const milk_array *arrays,
                           int n)
{
    if (n < 0)
        return milk_errorf(ctx, MILK_ERR_INVALID_ARG, "%s: %d arrays", path,
                           n);
    MILK_TRY(check_names(ctx, path, names, n));
    if (n == 0) {
        const void *bufs[1] = {empty_zip};
        size_t lens[1] = {sizeof empty_zip};
        return milk_file_replace(ctx, path, bufs, lens, 1);
    }
    char (*hdrs)[MILK_NPY_HEADER_CAP] = malloc((size_t)n * sizeof *hdrs);
    if (!hdrs)
        return milk_errorf(ctx, MILK_ERR_NOMEM, "%s: out of memory", path);
    zip_t *za = NULL;
    milk_status s = open_archive(ctx, path, ZIP_CREATE | ZIP_TRUNCATE,
                                 "cannot create", &za);
    if (s != MILK_OK) {
        free(hdrs);
        return s;
    }
    for (int i = 0; i < n && s == MILK_OK; i++)
        s = add_member(ctx, path, za, names[i], &arrays[i], hdrs[i]);
    if (s == MILK_OK && zip_close(za) != 0)
        s = milk_errorf(ctx, MILK_ERR_IO, "%s: cannot write: %s", path,
                        zip_strerror(za));
    if (s != MILK_OK) zip_discard(za); /* leaves any file at path as it was */
    free(hdrs);
    return s;
}
