/*
 * npy.h: NumPy .npy and .npz files (internal API).
 *
 * `milk run` and `milk verify` take inputs and references as NumPy files and
 * write outputs as .npz. A milk_array is one tensor read from or written to
 * such a file: its type and its elements, row-major, packed little-endian in
 * the dtype (fp16 as IEEE half bits, bool as one byte per element, 0 or 1).
 *
 * .npy versions 1.0, 2.0 and 3.0 are read; version 1.0 is written (the
 * header of a rank <= 8 array always fits). Supported dtypes, as numpy
 * spells them: <f2 <f4 <f8 |i1 <i4 <i8 |u1 |b1. Big-endian data,
 * Fortran-ordered arrays, object and structured dtypes are refused with an
 * error naming the file and header field.
 *
 * Files are written under a temporary name beside the destination and
 * renamed into place only when complete.
 */
#ifndef MILK_NPY_H
#define MILK_NPY_H

#include "../internal.h"

/* ---- arrays ------------------------------------------------------------- */

/* A tensor with its own storage. `data` is malloc'd and owned by the array;
 * for an array made by milk_array_init or read from a file it is never NULL,
 * even with zero elements. */
typedef struct milk_array {
    milk_tensor_type type; /* rank 0..MILK_MAX_RANK, every dim known */
    void *data;
} milk_array;

/* Allocate zeroed storage for a tensor of `type` (rank 0..MILK_MAX_RANK,
 * dims >= 0, at most MILK_MAX_ELEMENTS elements, a dtype of whole bytes or
 * packed sub-byte elements). On failure *out is left empty. */
milk_status milk_array_init(milk_ctx *ctx, const milk_tensor_type *type,
                            milk_array *out);
/* Free the data and empty the array. NULL or an empty array is a no-op. */
void milk_array_release(milk_array *a);

/* ---- .npy ---------------------------------------------------------------- */

/* Read a .npy file. On failure *out is left empty and the message names
 * `path` and the field at fault. */
milk_status milk_npy_read(milk_ctx *ctx, const char *path, milk_array *out);
/* Parse a .npy image held in memory (len bytes at buf); `name` is used in
 * messages. The elements are copied into out->data. */
milk_status milk_npy_parse(milk_ctx *ctx, const char *name, const void *buf,
                           size_t len, milk_array *out);
/* Write a as a .npy file at path (replacing any file there). a's dtype must
 * be one of those listed above. */
milk_status milk_npy_write(milk_ctx *ctx, const char *path,
                           const milk_array *a);

/* Where the .npy reader pulls bytes from: a file, memory, a zip member.
 * `size` is the exact number of bytes the source holds; the reader checks
 * every length in the header against it before reading or allocating, and
 * never asks for bytes past it. `read` fills buf with exactly n bytes or
 * fails with a message (it gets `name` for that). */
typedef struct milk_npy_source {
    const char *name; /* for messages: "x.npy", "in.npz: member 'x.npy'" */
    uint64_t size;
    milk_status (*read)(milk_ctx *ctx, void *user, const char *name,
                        void *buf, size_t n);
    void *user;
} milk_npy_source;

milk_status milk_npy_read_source(milk_ctx *ctx, const milk_npy_source *src,
                                 milk_array *out);

/* Room for any header milk writes (magic through the final newline). */
#define MILK_NPY_HEADER_CAP 256

/* Build the .npy header milk writes for a (version 1.0, padded with spaces
 * so that the data starts at a multiple of 64 bytes) into buf, which holds
 * MILK_NPY_HEADER_CAP bytes. Sets *len to the header length and *data_len to
 * the byte size of a's elements. `name` is used in messages. */
milk_status milk_npy_header(milk_ctx *ctx, const char *name,
                            const milk_array *a, char *buf, size_t *len,
                            uint64_t *data_len);

/* Write the concatenation of n byte ranges to path: to a new temporary file
 * beside path, then renamed over it. On failure nothing is left behind and
 * any file at path is unchanged. */
milk_status milk_file_replace(milk_ctx *ctx, const char *path,
                              const void *const *bufs, const size_t *lens,
                              int n);

/* ---- .npz ---------------------------------------------------------------- */

/* One array of an .npz archive, named as in np.savez (the member name
 * without ".npy"). */
typedef struct milk_npz_member {
    char *name; /* malloc'd, owned */
    milk_array array;
} milk_npz_member;

/* Every array of an archive, in archive order. */
typedef struct milk_npz {
    int n;
    milk_npz_member *members; /* malloc'd, owned */
} milk_npz;

/* Read every member of an .npz archive (stored or deflated `<name>.npy`
 * members, as np.savez and np.savez_compressed write). Each member's CRC is
 * checked. On failure *out is left empty. */
milk_status milk_npz_read(milk_ctx *ctx, const char *path, milk_npz *out);
/* The array called `name` (without ".npy"), or NULL. Owned by z. */
const milk_array *milk_npz_find(const milk_npz *z, const char *name);
/* Free every member and empty z. NULL is a no-op. */
void milk_npz_release(milk_npz *z);

/* Write n arrays as an .npz archive at path, member i stored (not
 * compressed) as `names[i].npy`. Names must be non-empty and distinct.
 * Members of 4 GiB or more get ZIP64 records, as libzip decides. The
 * archive is written under a temporary name and renamed into place. */
milk_status milk_npz_write(milk_ctx *ctx, const char *path,
                           const char *const *names, const milk_array *arrays,
                           int n);

#endif /* MILK_NPY_H */
