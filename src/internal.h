/*
 * internal.h: helpers shared by every part of milk and not part of the
 * public API: the error context, the arena allocator, growable arrays,
 * overflow-checked arithmetic, and fp16 conversion.
 */
#ifndef MILK_INTERNAL_H
#define MILK_INTERNAL_H

#include "milk.h"

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#if defined(__GNUC__)
#define MILK_PRINTF(a, b) __attribute__((format(printf, a, b)))
#else
#define MILK_PRINTF(a, b)
#endif

#define MILK_ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

/* ---- error context (src/util/ctx.c) -------------------------------- */

struct milk_ctx {
    milk_status status;
    char *msg; /* malloc'd, "" when no failure */
};

/* Record a failure on ctx and return s, so callers write
 * `return milk_errorf(ctx, MILK_ERR_PARSE, "%s: ...", path);`.
 * ctx may be NULL (then nothing is recorded). */
milk_status milk_errorf(milk_ctx *ctx, milk_status s, const char *fmt, ...)
    MILK_PRINTF(3, 4);
milk_status milk_verrorf(milk_ctx *ctx, milk_status s, const char *fmt,
                         va_list ap);
/* Prefix the current message with "prefix: ", keeping the status; returns
 * the status. Used to add the file or op name as an error travels up. */
milk_status milk_error_prefix(milk_ctx *ctx, const char *fmt, ...)
    MILK_PRINTF(2, 3);

#define MILK_TRY(expr)                                                      \
    do {                                                                    \
        milk_status milk_try_s_ = (expr);                                   \
        if (milk_try_s_ != MILK_OK) return milk_try_s_;                     \
    } while (0)

/* ---- arena (src/util/arena.c) --------------------------------------- */

/* A bump allocator: everything a program owns (names, types, ops, small
 * constants) comes from its arena and is freed at once. Allocations are
 * 16-byte aligned and zeroed. */
typedef struct milk_arena milk_arena;

milk_arena *milk_arena_create(void);
void milk_arena_free(milk_arena *a);
void *milk_arena_alloc(milk_arena *a, size_t size); /* NULL on failure */
char *milk_arena_strdup(milk_arena *a, const char *s);
char *milk_arena_strndup(milk_arena *a, const char *s, size_t n);
void *milk_arena_memdup(milk_arena *a, const void *p, size_t size);
/* Bytes handed out so far (for tests and statistics). */
size_t milk_arena_used(const milk_arena *a);

/* Grow an arena-backed array so that it can hold one more element:
 * `*items` has `*n` used slots of `elem` bytes out of `*cap`. Old storage
 * stays in the arena (arrays here are small). Returns false on failure. */
bool milk_arena_grow(milk_arena *a, void **items, int n, int *cap,
                     size_t elem);

/* ---- checked arithmetic ---------------------------------------------- */

/* Return false if a*b or a+b overflows. Every size computed from a file goes
 * through these. */
static inline bool milk_mul_u64(uint64_t a, uint64_t b, uint64_t *r)
{
    return !__builtin_mul_overflow(a, b, r);
}
static inline bool milk_add_u64(uint64_t a, uint64_t b, uint64_t *r)
{
    return !__builtin_add_overflow(a, b, r);
}
static inline bool milk_mul_i64(int64_t a, int64_t b, int64_t *r)
{
    return !__builtin_mul_overflow(a, b, r);
}

/* memcpy of n bytes from an array that may be empty, and then NULL:
 * memcpy needs valid pointers even for 0 bytes. */
static inline void *milk_copy(void *dst, const void *src, size_t n)
{
    return n ? memcpy(dst, src, n) : dst;
}

/* Largest element count any tensor may have (2^40): far above any real
 * model, far below where byte sizes overflow. */
#define MILK_MAX_ELEMENTS (INT64_C(1) << 40)

/* The element count of a shape: the product of its n dims, into *count.
 * False if a dim is negative (unknown) or the product of the non-zero dims
 * exceeds MILK_MAX_ELEMENTS. Every product of dims goes through this, and
 * every type milk builds, reads or infers is checked with it, so in a
 * shape that passed, any product of some of its dims is within 2^40 too
 * (a zero dim does not hide huge ones). */
static inline bool milk_dims_count(const int64_t *dims, int n, int64_t *count)
{
    int64_t nonzero = 1;
    bool zero = false;
    for (int i = 0; i < n; i++) {
        if (dims[i] < 0) return false;
        if (dims[i] == 0) zero = true;
        else if (!milk_mul_i64(nonzero, dims[i], &nonzero) ||
                 nonzero > MILK_MAX_ELEMENTS)
            return false;
    }
    *count = zero ? 0 : nonzero;
    return true;
}

/* The product of dims[lo..hi) of a shape that passed milk_dims_count (so
 * it cannot overflow), or -1 if one of them is unknown. */
static inline int64_t milk_dims_span(const int64_t *dims, int lo, int hi)
{
    int64_t n;
    return lo <= hi && milk_dims_count(dims + lo, hi - lo, &n) ? n : -1;
}

/* Byte size of n elements of dtype d (sub-byte types packed, rounded up);
 * false if unknown dtype, string, or overflow. */
bool milk_dtype_nbytes(milk_dtype d, int64_t n, uint64_t *out);

/* ---- fp16 (src/util/half.c) ------------------------------------------- */

/* IEEE 754 binary16 <-> binary32, round to nearest even, with inf, NaN and
 * subnormals. */
uint16_t milk_fp32_to_fp16(float f);
float milk_fp16_to_fp32(uint16_t h);
/* The same on arrays, faster (F16C where the CPU has it), same results. */
void milk_fp32_to_fp16_n(const float *src, uint16_t *dst, size_t n);
/* x[i] = fp16(x[i]) as fp32: rounding activations to fp16 storage. */
void milk_round_fp16_n(float *x, size_t n);

/* ---- strings ------------------------------------------------------------ */

/* True if s matches MIL's identifier rule [A-Za-z_][A-Za-z0-9_@]*. */
bool milk_is_identifier(const char *s);

#endif /* MILK_INTERNAL_H */
