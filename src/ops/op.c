/* op.c: the op table, the signature check every op goes through before its
 * type inference, and the argument helpers op files share. */
#include "op.h"

#include <stdio.h>
#include <stdlib.h>

const milk_op_info *const milk_ops[MILK_OP_COUNT] = {
#define MILK_OP(id, name) &milk_op_##id,
#include "ops.def"
#undef MILK_OP
};

int milk_op_kind_from_name(const char *name)
{
    for (int k = 0; k < MILK_OP_COUNT; k++)
        if (strcmp(milk_ops[k]->name, name) == 0) return k;
    return -1;
}

const milk_param *milk_op_param_info(int kind, const char *param)
{
    for (const milk_param *p = milk_ops[kind]->params; p && p->name; p++)
        if (strcmp(p->name, param) == 0) return p;
    return NULL;
}

milk_status milk_op_fail(milk_ctx *ctx, const milk_op *op, const char *param,
                         const char *fmt, ...)
{
    char msg[768];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (param)
        return milk_errorf(ctx, MILK_ERR_TYPE, "op '%s' (%s): input '%s': %s",
                           op->name, milk_ops[op->kind]->name, param, msg);
    return milk_errorf(ctx, MILK_ERR_TYPE, "op '%s' (%s): %s", op->name,
                       milk_ops[op->kind]->name, msg);
}

/* A dtype's name for messages, never NULL. */
static const char *dtname(milk_dtype d)
{
    return milk_dtype_name(d) ? milk_dtype_name(d) : "?";
}

static milk_target op_opset(const milk_op *op)
{
    return op->block ? op->block->fn->opset : MILK_TARGET_IOS18;
}

/* States go to MILK_P_STATE params only, and those take states only
 * (src/ir/state.c). */
static milk_status check_state_binding(milk_ctx *ctx, const milk_op *op,
                                       const milk_param *p,
                                       const milk_binding *b)
{
    bool state = b->var && b->var->is_state;
    if (state && !(p->flags & MILK_P_STATE))
        return milk_op_fail(ctx, op, p->name,
                            "'%s' is a state: only read_state and "
                            "write_state take states",
                            b->var->name);
    if (!state && (p->flags & MILK_P_STATE))
        return milk_op_fail(ctx, op, p->name,
                            "expected a state (a state input of the "
                            "function), got %s%s%s",
                            b->var ? "'" : "an inline value",
                            b->var ? b->var->name : "", b->var ? "'" : "");
    return MILK_OK;
}

/* Every bound argument is a known param of the right opset and
 * const-ness; every required param is bound. */
static milk_status check_signature(milk_ctx *ctx, const milk_op *op,
                                   milk_target opset)
{
    const milk_op_info *info = milk_ops[op->kind];
    if (opset < info->min_opset)
        return milk_op_fail(ctx, op, NULL, "needs deployment target %s or "
                            "later (the function's opset is %s)",
                            milk_target_name(info->min_opset),
                            milk_target_name(opset));
    for (int i = 0; i < op->n_args; i++) {
        const milk_arg *a = &op->args[i];
        const milk_param *p = milk_op_param_info(op->kind, a->param);
        if (!p) return milk_op_fail(ctx, op, a->param, "unknown input");
        if (p->min_opset && opset < p->min_opset)
            return milk_op_fail(ctx, op, a->param,
                                "needs deployment target %s or later",
                                milk_target_name(p->min_opset));
        if (a->n < 1 || (a->n > 1 && !(p->flags & MILK_P_VARIADIC)))
            return milk_op_fail(ctx, op, a->param,
                                "takes one binding, got %d", a->n);
        for (int j = 0; j < a->n; j++) {
            const milk_var *bv = a->b[j].var;
            bool expanded = bv && bv->producer && milk_op_is_constexpr(bv->producer);
            if ((p->flags & MILK_P_CONST) && !milk_op_const_at(op, a->param, j) &&
                !expanded)
                return milk_op_fail(ctx, op, a->param,
                                    "must be a compile-time constant");
            const milk_value *v = a->b[j].value;
            if (v && v->kind != MILK_VALUE_TENSOR)
                return milk_op_fail(ctx, op, a->param,
                                    "inline value must be a tensor");
            MILK_TRY(check_state_binding(ctx, op, p, &a->b[j]));
        }
    }
    for (const milk_param *p = info->params; p && p->name; p++) {
        bool exists = !p->min_opset || opset >= p->min_opset;
        if ((p->flags & MILK_P_REQ) && exists && !milk_op_arg(op, p->name))
            return milk_op_fail(ctx, op, p->name, "required input is missing");
    }
    return MILK_OK;
}

milk_status milk_op_infer(milk_ctx *ctx, const milk_op *op, milk_infer *ic)
{
    memset(ic, 0, sizeof *ic);
    ic->ctx = ctx;
    ic->op = op;
    ic->opset = op_opset(op);
    MILK_TRY(check_signature(ctx, op, ic->opset));
    const milk_op_info *info = milk_ops[op->kind];
    if (!info->infer)
        return milk_op_fail(ctx, op, NULL, "type inference not implemented");
    milk_status s = info->infer(ic);
    /* write_state is the one op without outputs (it changes a state) */
    if (s == MILK_OK && ic->n_out < 1 && op->kind != MILK_OP_write_state)
        s = milk_op_fail(ctx, op, NULL, "inferred no outputs");
    for (int i = 0; s == MILK_OK && i < ic->n_out; i++)
        if (milk_tensor_type_check(ctx, &ic->out[i]) != MILK_OK)
            s = milk_op_fail(ctx, op, NULL, "output %d: %s", i, milk_ctx_error(ctx));
    if (s != MILK_OK) milk_infer_release(ic);
    return s;
}

void milk_infer_release(milk_infer *ic)
{
    free(ic->out);
    ic->out = NULL;
    ic->n_out = ic->cap_out = 0;
}

milk_status milk_infer_outputs(milk_infer *ic, int n)
{
    if (n < 1 || n > 65536)
        return milk_op_fail(ic->ctx, ic->op, NULL, "%d outputs", n);
    if (n > ic->cap_out) {
        milk_tensor_type *o = realloc(ic->out, (size_t)n * sizeof *o);
        if (!o) return milk_errorf(ic->ctx, MILK_ERR_NOMEM, "out of memory");
        ic->out = o;
        ic->cap_out = n;
    }
    memset(ic->out, 0, (size_t)n * sizeof *ic->out);
    ic->n_out = n;
    return MILK_OK;
}

/* ---- argument helpers ----------------------------------------------------- */

const milk_tensor_type *milk_op_in_type_at(const milk_op *op,
                                           const char *param, int i)
{
    const milk_arg *a = milk_op_arg(op, param);
    if (!a || i < 0 || i >= a->n) return NULL;
    return a->b[i].var ? &a->b[i].var->type : &a->b[i].value->type;
}

const milk_tensor_type *milk_op_in_type(const milk_op *op, const char *param)
{
    return milk_op_in_type_at(op, param, 0);
}

int milk_op_in_count(const milk_op *op, const char *param)
{
    const milk_arg *a = milk_op_arg(op, param);
    return a ? a->n : 0;
}

static bool is_int_dtype(milk_dtype d)
{
    switch (d) {
    case MILK_DTYPE_INT8: case MILK_DTYPE_INT16: case MILK_DTYPE_INT32:
    case MILK_DTYPE_INT64: case MILK_DTYPE_UINT8: case MILK_DTYPE_UINT16:
    case MILK_DTYPE_UINT32: case MILK_DTYPE_UINT64:
        return true;
    default:
        return false;
    }
}

/* The const value of param, or NULL (present=false) if unbound; fails if
 * bound to something that is not a constant tensor. */
static milk_status const_of(milk_ctx *ctx, const milk_op *op,
                            const char *param, const milk_value **out)
{
    *out = NULL;
    if (!milk_op_arg(op, param)) return MILK_OK;
    const milk_value *v = milk_op_const(op, param);
    if (!v || v->kind != MILK_VALUE_TENSOR)
        return milk_op_fail(ctx, op, param, "must be a constant tensor");
    *out = v;
    return MILK_OK;
}

milk_status milk_op_ints(milk_ctx *ctx, const milk_op *op, const char *param,
                         int64_t *v, int max, int *n, bool *present)
{
    const milk_value *c;
    MILK_TRY(const_of(ctx, op, param, &c));
    if (present) *present = c != NULL;
    *n = 0;
    if (!c) return MILK_OK;
    if (!is_int_dtype(c->type.dtype) || c->type.rank > 1)
        return milk_op_fail(ctx, op, param,
                            "expected an integer scalar or vector, got %s "
                            "of rank %d",
                            dtname(c->type.dtype), (int)c->type.rank);
    int64_t count = milk_tensor_type_count(&c->type);
    if (count < 0 || count > max)
        return milk_op_fail(ctx, op, param, "expected at most %d values, got %lld",
                            max, (long long)count);
    for (int64_t i = 0; i < count; i++)
        MILK_TRY(milk_value_get_i64(ctx, c, i, &v[i]));
    *n = (int)count;
    return MILK_OK;
}

/* The single element of a scalar (or one-element) const param. */
static milk_status scalar_of(milk_ctx *ctx, const milk_op *op,
                             const char *param, const milk_value **out)
{
    MILK_TRY(const_of(ctx, op, param, out));
    if (*out && milk_tensor_type_count(&(*out)->type) != 1)
        return milk_op_fail(ctx, op, param, "expected a scalar");
    return MILK_OK;
}

milk_status milk_op_int(milk_ctx *ctx, const milk_op *op, const char *param,
                        int64_t dflt, int64_t *v)
{
    const milk_value *c;
    MILK_TRY(scalar_of(ctx, op, param, &c));
    if (!c) {
        *v = dflt;
        return MILK_OK;
    }
    if (!is_int_dtype(c->type.dtype))
        return milk_op_fail(ctx, op, param, "expected an integer, got %s",
                            dtname(c->type.dtype));
    return milk_value_get_i64(ctx, c, 0, v);
}

milk_status milk_op_f64(milk_ctx *ctx, const milk_op *op, const char *param,
                        double dflt, double *v)
{
    const milk_value *c;
    MILK_TRY(scalar_of(ctx, op, param, &c));
    if (!c) {
        *v = dflt;
        return MILK_OK;
    }
    if (c->type.dtype == MILK_DTYPE_STRING || c->type.dtype == MILK_DTYPE_BOOL)
        return milk_op_fail(ctx, op, param, "expected a number, got %s",
                            dtname(c->type.dtype));
    return milk_value_get_f64(ctx, c, 0, v);
}

milk_status milk_op_bool(milk_ctx *ctx, const milk_op *op, const char *param,
                         bool dflt, bool *v)
{
    const milk_value *c;
    MILK_TRY(scalar_of(ctx, op, param, &c));
    if (!c) {
        *v = dflt;
        return MILK_OK;
    }
    if (c->type.dtype != MILK_DTYPE_BOOL)
        return milk_op_fail(ctx, op, param, "expected a bool, got %s",
                            dtname(c->type.dtype));
    int64_t x;
    MILK_TRY(milk_value_get_i64(ctx, c, 0, &x));
    *v = x != 0;
    return MILK_OK;
}

milk_status milk_op_str(milk_ctx *ctx, const milk_op *op, const char *param,
                        const char *dflt, const char **v)
{
    const milk_value *c;
    MILK_TRY(scalar_of(ctx, op, param, &c));
    if (!c) {
        *v = dflt;
        return MILK_OK;
    }
    if (c->type.dtype != MILK_DTYPE_STRING)
        return milk_op_fail(ctx, op, param, "expected a string, got %s",
                            dtname(c->type.dtype));
    *v = milk_value_get_str(c, 0);
    return MILK_OK;
}

milk_status milk_op_check_dtype(milk_ctx *ctx, const milk_op *op,
                                const char *param, uint64_t mask)
{
    const milk_tensor_type *t = milk_op_in_type(op, param);
    if (!t) return MILK_OK;
    if ((unsigned)t->dtype < 64 && (mask & MILK_DT(t->dtype))) return MILK_OK;
    return milk_op_fail(ctx, op, param, "dtype %s is not allowed here",
                        dtname(t->dtype));
}

milk_status milk_op_axis(milk_ctx *ctx, const milk_op *op, const char *param,
                         int64_t axis, int rank, int *out)
{
    if (axis < -rank || axis >= rank)
        return milk_op_fail(ctx, op, param, "axis %lld outside [%d, %d)",
                            (long long)axis, -rank, rank);
    *out = (int)(axis < 0 ? axis + rank : axis);
    return MILK_OK;
}

milk_status milk_op_broadcast(milk_ctx *ctx, const milk_op *op,
                              const milk_tensor_type *a,
                              const milk_tensor_type *b,
                              milk_tensor_type *out)
{
    if (a->rank < 0 || b->rank < 0) {
        out->rank = MILK_RANK_UNKNOWN;
        return MILK_OK;
    }
    int r = a->rank > b->rank ? a->rank : b->rank;
    out->rank = r;
    for (int i = 0; i < r; i++) {
        int ia = i - (r - a->rank), ib = i - (r - b->rank);
        int64_t da = ia >= 0 ? a->dims[ia] : 1, db = ib >= 0 ? b->dims[ib] : 1;
        if (da == 1)
            out->dims[i] = db;
        else if (db == 1)
            out->dims[i] = da;
        else if (da == MILK_DIM_UNKNOWN || db == MILK_DIM_UNKNOWN)
            out->dims[i] = da == MILK_DIM_UNKNOWN ? db : da;
        else if (da == db)
            out->dims[i] = da;
        else
            return milk_op_fail(ctx, op, NULL,
                                "shapes do not broadcast: dim %d is %lld vs "
                                "%lld",
                                i, (long long)da, (long long)db);
    }
    return MILK_OK;
}
