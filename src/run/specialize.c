/* specialize.c: run-time specialization of types, for programs with
 * flexible shapes (unknown dims in main's signature, or sizes that depend
 * on values computed at run time: a reshape whose shape comes from a shape
 * op, a slice with a run-time begin, a range_1d with a run-time end).
 *
 * For one op of one run, type inference runs on a stand-in: a shallow copy
 * of the op, made in a scratch arena, whose bindings to run-time vars point
 * at copies of those vars carrying the run's concrete types. If a size is
 * still unknown, a second stand-in binds the run-time values of small
 * integer vectors and numeric scalars as inline constants, so that the op
 * files' own inference (the same code that checks programs when they are
 * built or loaded) reads them as it reads constants. The program is never
 * changed and the op files need no run-time mode of their own.
 *
 * Values go in only when types alone do not settle the sizes: making a
 * run-time var look constant can change rules that depend on const-ness
 * (matmul's mixed dtypes), which the first pass leaves as they are. */
#include "run.h"

#include <stdio.h>

/* Largest run-time vector read as a constant parameter: shapes, begins,
 * pads and reps have at most 2 * MILK_MAX_RANK entries; gather indices
 * computed from a shape are as short. */
#define SPEC_MAX_VALUE 64

/* A binding the stand-in replaces: a var that is no const's output and has
 * a tensor in this run (string vars have none). */
static bool runtime_binding(const milk_binding *b, const milk_rt *t)
{
    return b->var && !milk_var_const(b->var) && t &&
           t->store != MILK_DTYPE_INVALID;
}

/* Whether a run-time tensor can stand in for a constant: an integer
 * scalar or vector of at most SPEC_MAX_VALUE entries, or a float scalar
 * (range_1d's bounds); a scalar may have any rank ([1, 1] from a
 * reduction with keep_dims). */
static bool value_eligible(const milk_rt *t)
{
    /* no data: the planner (plan.c) typing a run ahead of its values */
    if (!t->data || t->count > SPEC_MAX_VALUE || (t->type.rank > 1 && t->count != 1))
        return false;
    switch (t->type.dtype) {
    case MILK_DTYPE_INT8: case MILK_DTYPE_UINT8: case MILK_DTYPE_INT16:
    case MILK_DTYPE_UINT16: case MILK_DTYPE_INT32:
        return true;
    case MILK_DTYPE_FP16: case MILK_DTYPE_FP32:
        return t->count == 1;
    default:
        return false;
    }
}

/* t's elements as an inline value of t's declared dtype (packed as
 * constants are), in arena a; NULL if out of memory. */
static milk_value *value_of(milk_arena *a, const milk_rt *t)
{
    milk_value *v = milk_value_new_tensor(a, &t->type, NULL);
    if (!v) return NULL;
    void *d = (void *)v->data.ptr;
    for (int64_t i = 0; i < t->count; i++) {
        int32_t x = t->store == MILK_DTYPE_INT32 ? milk_rt_i32(t)[i] : 0;
        switch (t->type.dtype) {
        case MILK_DTYPE_INT8: ((int8_t *)d)[i] = (int8_t)x; break;
        case MILK_DTYPE_UINT8: ((uint8_t *)d)[i] = (uint8_t)x; break;
        case MILK_DTYPE_INT16: ((int16_t *)d)[i] = (int16_t)x; break;
        case MILK_DTYPE_UINT16: ((uint16_t *)d)[i] = (uint16_t)x; break;
        case MILK_DTYPE_INT32: ((int32_t *)d)[i] = x; break;
        case MILK_DTYPE_FP16:
            ((uint16_t *)d)[i] = milk_fp32_to_fp16(milk_rt_f32(t)[i]);
            break;
        case MILK_DTYPE_FP32: ((float *)d)[i] = milk_rt_f32(t)[i]; break;
        default: return NULL;
        }
    }
    return v;
}

/* One binding of the stand-in: a copy of the run-time var with the run's
 * type, or (values) the run-time value inline. Others stay as they are. */
static bool stand_in_binding(milk_arena *a, const milk_binding *b,
                             const milk_rt *t, bool values, milk_binding *out)
{
    *out = *b;
    if (!runtime_binding(b, t)) return true;
    if (values && value_eligible(t)) {
        out->var = NULL;
        out->value = value_of(a, t);
        return out->value != NULL;
    }
    milk_var *v = milk_arena_memdup(a, b->var, sizeof *v);
    if (!v) return false;
    v->type = t->type;
    out->var = v;
    return true;
}

/* *s becomes op with its bindings replaced as stand_in_binding says; its
 * arguments live in a. */
static milk_status stand_in(milk_ctx *ctx, const milk_op *op,
                            const milk_rt *const *const *in, bool values,
                            milk_arena *a, milk_op *s)
{
    *s = *op;
    s->args = milk_arena_alloc(a, ((size_t)op->n_args + 1) * sizeof *s->args);
    if (!s->args) return milk_errorf(ctx, MILK_ERR_NOMEM, "out of memory");
    s->cap_args = op->n_args;
    for (int i = 0; i < op->n_args; i++) {
        const milk_arg *src = &op->args[i];
        milk_arg *dst = &s->args[i];
        *dst = *src;
        dst->cap = src->n;
        dst->b = milk_arena_alloc(a, ((size_t)src->n + 1) * sizeof *dst->b);
        if (!dst->b) return milk_errorf(ctx, MILK_ERR_NOMEM, "out of memory");
        for (int j = 0; j < src->n; j++)
            if (!stand_in_binding(a, &src->b[j], in[i][j], values, &dst->b[j]))
                return milk_errorf(ctx, MILK_ERR_NOMEM, "out of memory");
    }
    return MILK_OK;
}

/* ---- messages ------------------------------------------------------------ */

/* "param" or, for a tuple element, "param[j]". */
static void binding_name(const milk_op *op, int i, int j, char *buf, size_t n)
{
    if (op->args[i].n > 1) snprintf(buf, n, "%s[%d]", op->args[i].param, j);
    else snprintf(buf, n, "%s", op->args[i].param);
}

/* " = [1, -1, 4]" for a run-time value that can stand in for a constant,
 * else "". */
static void value_str(const milk_rt *t, char *buf, size_t n)
{
    buf[0] = '\0';
    if (!value_eligible(t)) return;
    int k = snprintf(buf, n, " = [");
    for (int64_t i = 0; i < t->count && k > 0 && (size_t)k < n; i++) {
        if (t->store == MILK_DTYPE_INT32)
            k += snprintf(buf + k, n - (size_t)k, "%s%d", i ? ", " : "",
                          (int)milk_rt_i32(t)[i]);
        else
            k += snprintf(buf + k, n - (size_t)k, "%s%g", i ? ", " : "",
                          (double)milk_rt_f32(t)[i]);
    }
    if (k > 0 && (size_t)k < n) snprintf(buf + k, n - (size_t)k, "]");
}

/* "x is tensor<fp32, [1, 8]>, shape is tensor<int32, [2]> = [2, 4]": the
 * op's run-time inputs in this run. */
static void describe_inputs(const milk_op *op, const milk_rt *const *const *in,
                            char *buf, size_t n)
{
    size_t k = 0;
    buf[0] = '\0';
    for (int i = 0; i < op->n_args && k < n; i++)
        for (int j = 0; j < op->args[i].n && k < n; j++) {
            const milk_rt *t = in[i][j];
            if (!runtime_binding(&op->args[i].b[j], t)) continue;
            char name[96], ts[160], vs[200];
            binding_name(op, i, j, name, sizeof name);
            value_str(t, vs, sizeof vs);
            int w = snprintf(buf + k, n - k, "%s%s is %s%s", k ? ", " : "",
                             name, milk_type_str(&t->type, ts, sizeof ts), vs);
            k = w < 0 ? n : k + (size_t)w;
        }
}

/* Add the op's run-time inputs to the message of failure s. */
static milk_status add_run_inputs(milk_ctx *ctx, milk_status s,
                                  const milk_op *op,
                                  const milk_rt *const *const *in)
{
    char desc[1024], msg[1024];
    if (!ctx || s == MILK_ERR_NOMEM) return s;
    describe_inputs(op, in, desc, sizeof desc);
    if (!desc[0]) return s;
    snprintf(msg, sizeof msg, "%s", milk_ctx_error(ctx));
    return milk_errorf(ctx, s, "%s (in this run: %s)", msg, desc);
}

/* A size no inference could settle: name the run-time integer input that
 * could not be read as a value (sizes come from integers), if there is
 * one. */
static milk_status unknown_error(milk_ctx *ctx, const milk_op *op,
                                 const milk_rt *const *const *in,
                                 const milk_tensor_type *out)
{
    int k = 0;
    while (k < op->n_outputs - 1 && milk_type_concrete(&out[k])) k++;
    char ts[160];
    milk_type_str(&out[k], ts, sizeof ts);
    for (int i = 0; i < op->n_args; i++)
        for (int j = 0; j < op->args[i].n; j++) {
            const milk_rt *t = in[i][j];
            if (!runtime_binding(&op->args[i].b[j], t) ||
                t->store != MILK_DTYPE_INT32 || value_eligible(t))
                continue;
            char name[96];
            binding_name(op, i, j, name, sizeof name);
            return milk_op_fail(ctx, op, name,
                                "output '%s' stays %s: this run-time value "
                                "is not read for type inference (only "
                                "integer vectors of up to %d entries and "
                                "numeric scalars are)",
                                op->outputs[k]->name, ts, SPEC_MAX_VALUE);
        }
    return milk_op_fail(ctx, op, NULL,
                        "output '%s' stays %s: type inference cannot size "
                        "it from this run's inputs",
                        op->outputs[k]->name, ts);
}

/* ---- inference ---------------------------------------------------------- */

/* Output k as inferred for this run (got), with the declared type filling
 * what inference leaves unknown; the two must agree where both know. */
static milk_status merge(milk_ctx *ctx, const milk_op *op, int k,
                         const milk_tensor_type *got, milk_tensor_type *out)
{
    const milk_tensor_type *decl = &op->outputs[k]->type;
    bool ok = got->dtype == decl->dtype;
    *out = got->rank >= 0 ? *got : *decl;
    if (got->rank >= 0 && decl->rank >= 0) {
        ok = ok && got->rank == decl->rank;
        for (int i = 0; ok && i < got->rank; i++) {
            if (got->dims[i] < 0) out->dims[i] = decl->dims[i];
            else if (decl->dims[i] >= 0 && decl->dims[i] != got->dims[i])
                ok = false;
        }
    }
    if (ok) return MILK_OK;
    char a[160], b[160];
    return milk_op_fail(ctx, op, NULL,
                        "output '%s' is %s in this run, but declared %s",
                        op->outputs[k]->name, milk_type_str(got, a, sizeof a),
                        milk_type_str(decl, b, sizeof b));
}

/* Infer op's outputs on a stand-in; *concrete tells whether every output
 * type came out fully known. */
static milk_status infer_run(milk_ctx *ctx, const milk_op *op,
                             const milk_rt *const *const *in, bool values,
                             milk_arena *a, milk_tensor_type *out,
                             bool *concrete)
{
    milk_op s;
    milk_infer ic;
    MILK_TRY(stand_in(ctx, op, in, values, a, &s));
    MILK_TRY(milk_op_infer(ctx, &s, &ic));
    milk_status st = MILK_OK;
    if (ic.n_out != op->n_outputs)
        st = milk_op_fail(ctx, op, NULL,
                          "%d outputs in this run, %d declared", ic.n_out,
                          op->n_outputs);
    *concrete = true;
    for (int k = 0; st == MILK_OK && k < op->n_outputs; k++) {
        st = merge(ctx, op, k, &ic.out[k], &out[k]);
        *concrete = *concrete && milk_type_concrete(&out[k]);
    }
    milk_infer_release(&ic);
    return st;
}

/* Does some run-time input of op have a value that can stand in for a
 * constant? */
static bool has_values(const milk_op *op, const milk_rt *const *const *in)
{
    for (int i = 0; i < op->n_args; i++)
        for (int j = 0; j < op->args[i].n; j++)
            if (runtime_binding(&op->args[i].b[j], in[i][j]) &&
                value_eligible(in[i][j]))
                return true;
    return false;
}

milk_status milk_spec_outputs(milk_ctx *ctx, const milk_op *op,
                              const milk_rt *const *const *in,
                              milk_arena *scratch, milk_tensor_type *out)
{
    bool concrete = false;
    milk_status s = infer_run(ctx, op, in, false, scratch, out, &concrete);
    if (s == MILK_OK && !concrete && has_values(op, in))
        s = infer_run(ctx, op, in, true, scratch, out, &concrete);
    if (s == MILK_OK && !concrete) s = unknown_error(ctx, op, in, out);
    return s == MILK_OK ? s : add_run_inputs(ctx, s, op, in);
}
