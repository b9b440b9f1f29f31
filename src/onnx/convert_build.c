/* convert_build.c: how lowerings emit MIL: an op builder whose errors
 * stick (so a lowering binds all arguments and checks once), parameter
 * consts named after their op, and shorthands for the ops lowerings add
 * most (reshape, cast). Every op goes through milk_block_add_op, so it is
 * checked against its signature and typed as it is added, and then
 * through milk_cv_fold. */
#include "convert.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>

void milk_cv_op_begin(milk_cv_op *o, milk_cv *c, const char *type,
                      const char *name)
{
    memset(o, 0, sizeof *o);
    o->c = c;
    o->type = type;
    o->name = name;
    if (!name) o->s = milk_errorf(c->ctx, MILK_ERR_NOMEM, "out of memory");
}

static bool room(milk_cv_op *o)
{
    if (o->s != MILK_OK) return false;
    if (o->n_in < MILK_CV_MAX_ARGS) return true;
    o->s = milk_errorf(o->c->ctx, MILK_ERR_INVALID_ARG,
                       "op '%s': more than %d arguments", o->name,
                       MILK_CV_MAX_ARGS);
    return false;
}

void milk_cv_arg(milk_cv_op *o, const char *param, milk_var *v)
{
    if (!v || !room(o)) return;
    o->in[o->n_in++] = (milk_input){param, v};
}

/* A const for param of this op, named "<op>_<param>" (made unique). */
static void arg_const(milk_cv_op *o, const char *param,
                      const milk_tensor_type *t, const void *data)
{
    if (!room(o)) return;
    char base[300];
    snprintf(base, sizeof base, "%s_%s", o->name, param);
    const char *name = NULL;
    size_t len = strlen(base) + 24;
    char *buf = milk_arena_alloc(o->c->a, len);
    if (buf) {
        snprintf(buf, len, "%s", base);
        for (int k = 0; milk_strmap_get(&o->c->taken, buf) >= 0 ||
                        milk_function_var(o->c->fn, buf);
             k++)
            snprintf(buf, len, "%s_%d", base, k);
        /* >= 0: milk_cv_tmp's free_name must see it taken too */
        if (milk_strmap_put(&o->c->taken, buf, INT_MAX)) name = buf;
    }
    if (!name) {
        o->s = milk_errorf(o->c->ctx, MILK_ERR_NOMEM, "out of memory");
        return;
    }
    milk_var *v;
    o->s = milk_block_add_const(o->c->ctx, o->c->b, name, t, data, &v);
    if (o->s == MILK_OK) o->in[o->n_in++] = (milk_input){param, v};
}

void milk_cv_arg_ints(milk_cv_op *o, const char *param, const int64_t *v,
                      int n)
{
    int32_t buf[MILK_MAX_RANK * 2 + 8];
    if (o->s != MILK_OK) return;
    if (n > (int)MILK_ARRAY_LEN(buf)) {
        o->s = milk_errorf(o->c->ctx, MILK_ERR_UNSUPPORTED,
                           "op '%s': input '%s': %d values", o->name, param, n);
        return;
    }
    for (int i = 0; i < n; i++) {
        if (v[i] < INT32_MIN || v[i] > INT32_MAX) {
            o->s = milk_cv_unsupported(o->c, "%s: value %lld does not fit int32",
                                       param, (long long)v[i]);
            return;
        }
        buf[i] = (int32_t)v[i];
    }
    milk_tensor_type t = {MILK_DTYPE_INT32, 1, {n}};
    arg_const(o, param, &t, buf);
}

void milk_cv_arg_int(milk_cv_op *o, const char *param, int64_t v)
{
    if (o->s != MILK_OK) return;
    if (v < INT32_MIN || v > INT32_MAX) {
        o->s = milk_cv_unsupported(o->c, "%s: value %lld does not fit int32",
                                   param, (long long)v);
        return;
    }
    int32_t x = (int32_t)v;
    milk_tensor_type t = {MILK_DTYPE_INT32, 0, {0}};
    arg_const(o, param, &t, &x);
}

void milk_cv_arg_float(milk_cv_op *o, const char *param, double v,
                       milk_dtype dt)
{
    float f = (float)v;
    uint16_t h = milk_fp32_to_fp16(f);
    milk_tensor_type t = {dt, 0, {0}};
    arg_const(o, param, &t, dt == MILK_DTYPE_FP16 ? (const void *)&h : &f);
}

void milk_cv_arg_bool(milk_cv_op *o, const char *param, bool v)
{
    uint8_t x = v;
    milk_tensor_type t = {MILK_DTYPE_BOOL, 0, {0}};
    arg_const(o, param, &t, &x);
}

void milk_cv_arg_bools(milk_cv_op *o, const char *param, const bool *v, int n)
{
    uint8_t x[MILK_MAX_RANK];
    for (int i = 0; i < n && i < MILK_MAX_RANK; i++) x[i] = v[i];
    milk_tensor_type t = {MILK_DTYPE_BOOL, 1, {n}};
    arg_const(o, param, &t, x);
}

void milk_cv_arg_str(milk_cv_op *o, const char *param, const char *s)
{
    milk_tensor_type t = {MILK_DTYPE_STRING, 0, {0}};
    arg_const(o, param, &t, &s);
}

/* Add the op; on success *op is it (folding happens after). */
static milk_status op_add(milk_cv_op *o, milk_op **op)
{
    if (o->s != MILK_OK) return o->s;
    milk_cv *c = o->c;
    MILK_TRY(milk_block_add_op(c->ctx, c->b, o->type, o->name, o->in, o->n_in,
                               op));
    return milk_cv_fold(c, *op);
}

milk_status milk_cv_op_end(milk_cv_op *o, milk_var **out)
{
    milk_op *op;
    MILK_TRY(op_add(o, &op));
    if (out) *out = op->outputs[0];
    return MILK_OK;
}

milk_status milk_cv_op_end_multi(milk_cv_op *o, milk_var **outs, int max,
                                 int *n)
{
    milk_op *op;
    /* The op's vars outlive folding, so read them before it. */
    if (o->s != MILK_OK) return o->s;
    milk_cv *c = o->c;
    MILK_TRY(milk_block_add_op(c->ctx, c->b, o->type, o->name, o->in, o->n_in,
                               &op));
    if (op->n_outputs > max)
        return milk_errorf(c->ctx, MILK_ERR_UNSUPPORTED,
                           "op '%s': %d outputs, at most %d", o->name,
                           op->n_outputs, max);
    for (int i = 0; i < op->n_outputs; i++) outs[i] = op->outputs[i];
    *n = op->n_outputs;
    return milk_cv_fold(c, op);
}

/* ---- shorthands ------------------------------------------------------------------ */

milk_status milk_cv_unary(milk_cv *c, const char *type, const char *name,
                          milk_var *x, milk_var **out)
{
    milk_cv_op o;
    milk_cv_op_begin(&o, c, type, name);
    milk_cv_arg(&o, "x", x);
    return milk_cv_op_end(&o, out);
}

milk_status milk_cv_reshape(milk_cv *c, const char *name, milk_var *x,
                            int rank, const int64_t *dims, milk_var **out)
{
    milk_cv_op o;
    milk_cv_op_begin(&o, c, "reshape", name);
    milk_cv_arg(&o, "x", x);
    milk_cv_arg_ints(&o, "shape", dims, rank);
    return milk_cv_op_end(&o, out);
}

milk_status milk_cv_cast(milk_cv *c, const char *name, milk_var *x,
                         milk_dtype to, milk_var **out)
{
    milk_cv_op o;
    milk_cv_op_begin(&o, c, "cast", name);
    milk_cv_arg(&o, "x", x);
    milk_cv_arg_str(&o, "dtype", milk_dtype_name(to));
    return milk_cv_op_end(&o, out);
}

milk_status milk_cv_const(milk_cv *c, const char *name,
                          const milk_tensor_type *t, const void *data,
                          milk_var **out)
{
    if (!name) return milk_errorf(c->ctx, MILK_ERR_NOMEM, "out of memory");
    return milk_block_add_const(c->ctx, c->b, name, t, data, out);
}
