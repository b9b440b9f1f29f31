/* infer_build.h: a small builder for the type-inference tests: one program
 * with one function per test, inputs and consts created in one call, ops
 * added with (param, var) pairs, and checks of the inferred output types
 * that report the caller's line. Used by test_infer*.c (with check.h). */
#ifndef MILK_INFER_BUILD_H
#define MILK_INFER_BUILD_H

#include "milk.h"
#include "check.h"
#include "internal.h" /* milk_fp32_to_fp16 */

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>

/* A shape literal: D(1, 3, 32, 32) expands to (dims, rank). */
#define D(...)                                                              \
    (const int64_t[]){__VA_ARGS__},                                         \
        (int)(sizeof((int64_t[]){__VA_ARGS__}) / sizeof(int64_t))
#define SCALAR (const int64_t[]){0}, 0
#define U MILK_DIM_UNKNOWN
#define F32 MILK_DTYPE_FP32
#define F16 MILK_DTYPE_FP16
#define I32 MILK_DTYPE_INT32

typedef struct tb {
    milk_ctx *ctx;
    milk_program *p;
    milk_function *f;
    milk_block *b;
    int n; /* names handed out */
} tb;

static inline milk_tensor_type tb_type(milk_dtype dt, const int64_t *dims,
                                       int rank)
{
    milk_tensor_type t = {dt, rank, {0}};
    for (int i = 0; i < rank; i++) t.dims[i] = dims[i];
    return t;
}

/* A fresh program for target with an empty function main. */
static inline void tb_begin(tb *t, milk_ctx *ctx, milk_target target)
{
    t->ctx = ctx;
    t->n = 0;
    t->p = NULL;
    t->b = NULL;
    CHECK_OK(ctx, milk_program_create(ctx, target, &t->p));
    if (!t->p) return;
    CHECK_OK(ctx, milk_program_add_function(ctx, t->p, "main", &t->f));
    t->b = milk_function_block(t->f);
}

static inline void tb_end(tb *t)
{
    milk_program_free(t->p);
    t->p = NULL;
}

static inline const char *tb_name(tb *t, char *buf, size_t n)
{
    snprintf(buf, n, "v%d", t->n++);
    return buf;
}

/* A function input (unknown dims allowed). */
static inline milk_var *tb_in(tb *t, milk_dtype dt, const int64_t *dims,
                              int rank)
{
    char name[32];
    milk_tensor_type ty = tb_type(dt, dims, rank);
    milk_var *v = NULL;
    CHECK_OK(t->ctx, milk_function_add_input(t->ctx, t->f,
                                             tb_name(t, name, sizeof name),
                                             &ty, &v));
    return v;
}

/* A zero-filled constant (a weight whose values do not matter here). */
static inline milk_var *tb_const(tb *t, milk_dtype dt, const int64_t *dims,
                                 int rank)
{
    char name[32];
    milk_tensor_type ty = tb_type(dt, dims, rank);
    milk_var *v = NULL;
    CHECK_OK(t->ctx, milk_block_add_const(t->ctx, t->b,
                                          tb_name(t, name, sizeof name), &ty,
                                          NULL, &v));
    return v;
}

/* An int32 vector constant: tb_ints(t, 3, 1, 2, 3). */
static inline milk_var *tb_ints(tb *t, int n, ...)
{
    char name[32];
    int32_t v[64];
    va_list ap;
    va_start(ap, n);
    for (int i = 0; i < n && i < 64; i++) v[i] = va_arg(ap, int);
    va_end(ap);
    milk_var *out = NULL;
    CHECK_OK(t->ctx, milk_block_add_const_int32s(t->ctx, t->b,
                                                 tb_name(t, name, sizeof name),
                                                 v, n, &out));
    return out;
}

/* A bool vector constant: tb_bools(t, 2, 1, 0). */
static inline milk_var *tb_bools(tb *t, int n, ...)
{
    char name[32];
    uint8_t v[64];
    va_list ap;
    va_start(ap, n);
    for (int i = 0; i < n && i < 64; i++) v[i] = (uint8_t)va_arg(ap, int);
    va_end(ap);
    milk_tensor_type ty = {MILK_DTYPE_BOOL, 1, {n}};
    milk_var *out = NULL;
    CHECK_OK(t->ctx, milk_block_add_const(t->ctx, t->b,
                                          tb_name(t, name, sizeof name), &ty,
                                          v, &out));
    return out;
}

static inline milk_var *tb_i32(tb *t, int32_t v)
{
    char name[32];
    milk_var *out = NULL;
    CHECK_OK(t->ctx, milk_block_add_const_int32(
                         t->ctx, t->b, tb_name(t, name, sizeof name), v, &out));
    return out;
}

static inline milk_var *tb_f32(tb *t, float v)
{
    char name[32];
    milk_var *out = NULL;
    CHECK_OK(t->ctx, milk_block_add_const_fp32(
                         t->ctx, t->b, tb_name(t, name, sizeof name), v, &out));
    return out;
}

/* A scalar of dtype dt (fp16, fp32 or int32) with value v. */
static inline milk_var *tb_scalar(tb *t, milk_dtype dt, float v)
{
    char name[32];
    milk_tensor_type ty = {dt, 0, {0}};
    uint16_t h = milk_fp32_to_fp16(v);
    int32_t i = (int32_t)v;
    const void *data = dt == MILK_DTYPE_FP16   ? (const void *)&h
                       : dt == MILK_DTYPE_FP32 ? (const void *)&v
                                               : (const void *)&i;
    milk_var *out = NULL;
    CHECK_OK(t->ctx, milk_block_add_const(t->ctx, t->b,
                                          tb_name(t, name, sizeof name), &ty,
                                          data, &out));
    return out;
}

static inline milk_var *tb_bool(tb *t, int v)
{
    char name[32];
    milk_var *out = NULL;
    CHECK_OK(t->ctx, milk_block_add_const_bool(
                         t->ctx, t->b, tb_name(t, name, sizeof name), v, &out));
    return out;
}

static inline milk_var *tb_str(tb *t, const char *s)
{
    char name[32];
    milk_var *out = NULL;
    CHECK_OK(t->ctx, milk_block_add_const_string(
                         t->ctx, t->b, tb_name(t, name, sizeof name), s, &out));
    return out;
}

/* Add an op from (param, var) pairs ended by NULL; NULL on failure, with
 * the status in *st. A NULL var (from an earlier failed helper) makes the
 * op fail as invalid. */
static inline milk_op *tb_vop(tb *t, milk_status *st, const char *type,
                              va_list ap)
{
    milk_input in[32];
    int n = 0;
    const char *param;
    char name[32];
    while ((param = va_arg(ap, const char *)) != NULL && n < 32) {
        in[n].param = param;
        in[n].var = va_arg(ap, milk_var *);
        n++;
    }
    milk_op *op = NULL;
    *st = milk_block_add_op(t->ctx, t->b, type, tb_name(t, name, sizeof name),
                            in, n, &op);
    return *st == MILK_OK ? op : NULL;
}

/* The op, or NULL after recording a failed check with its message. */
static inline milk_op *tb_op_at(tb *t, const char *file, int line,
                                const char *type, ...)
{
    milk_status st;
    va_list ap;
    va_start(ap, type);
    milk_op *op = tb_vop(t, &st, type, ap);
    va_end(ap);
    check_count++;
    if (!op) {
        check_failures++;
        fprintf(stderr, "%s:%d: %s failed: %s\n", file, line, type,
                milk_ctx_error(t->ctx));
    }
    return op;
}
#define OP(t, ...)                                                          \
    tb_op_at((t), __FILE__, __LINE__, __VA_ARGS__, (const char *)NULL)

/* The op must fail with MILK_ERR_TYPE and a message containing needle. */
static inline void tb_err_at(tb *t, const char *file, int line,
                             const char *needle, const char *type, ...)
{
    milk_status st;
    va_list ap;
    va_start(ap, type);
    milk_op *op = tb_vop(t, &st, type, ap);
    va_end(ap);
    check_count++;
    const char *msg = milk_ctx_error(t->ctx);
    char tag[96]; /* every message names the op: "op 'v12' (conv): " */
    snprintf(tag, sizeof tag, "' (%s): ", type);
    if (op || st != MILK_ERR_TYPE || !strstr(msg, needle) ||
        !strstr(msg, tag) || strncmp(msg, "op '", 4) != 0) {
        check_failures++;
        fprintf(stderr, "%s:%d: %s: expected a type error containing '%s', "
                        "got %s: '%s'\n",
                file, line, type, needle, op ? "success" : "status",
                op ? "" : msg);
    }
}
#define ERR(t, needle, ...)                                                 \
    tb_err_at((t), __FILE__, __LINE__, (needle), __VA_ARGS__,             \
              (const char *)NULL)

/* Output i of op has dtype dt and the given dims. */
static inline void tb_expect_at(const char *file, int line,
                                const milk_op *op, int i, milk_dtype dt,
                                const int64_t *dims, int rank)
{
    check_count++;
    if (!op) {
        check_failures++;
        fprintf(stderr, "%s:%d: no op to check\n", file, line);
        return;
    }
    if (i >= milk_op_output_count(op)) {
        check_failures++;
        fprintf(stderr, "%s:%d: op has %d outputs, no output %d\n", file,
                line, milk_op_output_count(op), i);
        return;
    }
    const milk_tensor_type *t = milk_var_type(milk_op_output(op, i));
    bool ok = t->dtype == dt && t->rank == rank;
    for (int k = 0; ok && k < rank; k++) ok = t->dims[k] == dims[k];
    if (ok) return;
    check_failures++;
    fprintf(stderr, "%s:%d: output %d is %s [", file, line, i,
            milk_dtype_name(t->dtype) ? milk_dtype_name(t->dtype) : "?");
    for (int k = 0; k < t->rank; k++)
        fprintf(stderr, "%s%lld", k ? ", " : "", (long long)t->dims[k]);
    fprintf(stderr, "] (rank %d), expected %s [", (int)t->rank,
            milk_dtype_name(dt) ? milk_dtype_name(dt) : "?");
    for (int k = 0; k < rank; k++)
        fprintf(stderr, "%s%lld", k ? ", " : "", (long long)dims[k]);
    fprintf(stderr, "]\n");
}
#define EXPECT(op, i, dt, shape)                                            \
    tb_expect_at(__FILE__, __LINE__, (op), (i), (dt), shape)

#endif /* MILK_INFER_BUILD_H */
