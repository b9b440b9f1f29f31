/* infer.c: helpers shared by the type inference of the op files: type
 * domains, rank checks, constant parameter vectors of an exact length, and
 * setting the single output most ops have. */
#include "infer.h"

uint64_t milk_dt_layout(milk_target opset)
{
    uint64_t m = MILK_DT_NUM | MILK_DT_BOOL;
    return opset >= MILK_TARGET_IOS17 ? m | MILK_DT_SMALL_INT : m;
}

milk_status milk_infer_tensor(milk_infer *ic, const char *param,
                              uint64_t dtypes, int lo, int hi,
                              const milk_tensor_type **out)
{
    const milk_tensor_type *t = milk_op_in_type(ic->op, param);
    if (!t) return milk_op_fail(ic->ctx, ic->op, param, "is missing");
    MILK_TRY(milk_op_check_dtype(ic->ctx, ic->op, param, dtypes));
    if (t->rank < 0)
        return milk_op_fail(ic->ctx, ic->op, param, "rank must be known");
    if (t->rank > MILK_MAX_RANK || t->rank < lo || (hi >= 0 && t->rank > hi)) {
        if (hi < 0)
            return milk_op_fail(ic->ctx, ic->op, param,
                                "rank %d, expected at least %d", (int)t->rank,
                                lo);
        if (hi == lo)
            return milk_op_fail(ic->ctx, ic->op, param,
                                "rank %d, expected %d", (int)t->rank, lo);
        return milk_op_fail(ic->ctx, ic->op, param,
                            "rank %d, expected %d to %d", (int)t->rank, lo,
                            hi);
    }
    *out = t;
    return MILK_OK;
}

milk_status milk_infer_domain(milk_infer *ic, const char *const *params,
                              uint64_t mask)
{
    const char *first = NULL;
    milk_dtype dt = MILK_DTYPE_INVALID;
    for (const char *const *p = params; *p; p++) {
        if (!milk_op_arg(ic->op, *p)) continue;
        MILK_TRY(milk_op_check_dtype(ic->ctx, ic->op, *p, mask));
        milk_dtype d = milk_op_in_type(ic->op, *p)->dtype;
        if (!first) {
            first = *p;
            dt = d;
        } else if (d != dt) {
            return milk_op_fail(ic->ctx, ic->op, *p,
                                "dtype %s differs from %s's %s",
                                milk_infer_dtype_name(d), first,
                                milk_infer_dtype_name(dt));
        }
    }
    return MILK_OK;
}

milk_status milk_infer_params_dtype(milk_infer *ic, const char *x,
                                    const char *const *params, uint64_t mask)
{
    if (ic->opset >= MILK_TARGET_IOS17)
        return milk_infer_domain(ic, params, mask);
    milk_dtype xd = milk_op_in_type(ic->op, x)->dtype;
    for (const char *const *p = params; *p; p++) {
        const milk_tensor_type *t = milk_op_in_type(ic->op, *p);
        if (t && t->dtype != xd)
            return milk_op_fail(ic->ctx, ic->op, *p,
                                "dtype %s differs from %s's %s (allowed "
                                "from iOS17 on)",
                                milk_infer_dtype_name(t->dtype), x,
                                milk_infer_dtype_name(xd));
    }
    return MILK_OK;
}

bool milk_infer_is_const(const milk_infer *ic, const char *param)
{
    /* a constexpr op's output (compressed weights) is a constant too */
    const milk_var *v = milk_op_var(ic->op, param);
    return milk_op_const(ic->op, param) != NULL ||
           (v && v->producer && milk_op_is_constexpr(v->producer));
}

milk_status milk_infer_const_before(milk_infer *ic, const char *param,
                                    milk_target since)
{
    if (ic->opset >= since || !milk_op_arg(ic->op, param) ||
        milk_infer_is_const(ic, param))
        return MILK_OK;
    return milk_op_fail(ic->ctx, ic->op, param,
                        "must be a compile-time constant before %s",
                        milk_target_name(since));
}

milk_status milk_infer_ints(milk_infer *ic, const char *param, uint64_t mask,
                            int64_t *v, int max, int *n, bool *present)
{
    *n = 0;
    if (present) *present = false;
    if (!milk_op_arg(ic->op, param)) return MILK_OK;
    MILK_TRY(milk_op_check_dtype(ic->ctx, ic->op, param, mask));
    return milk_op_ints(ic->ctx, ic->op, param, v, max, n, present);
}

milk_status milk_infer_ints_n(milk_infer *ic, const char *param,
                              uint64_t mask, int n, int64_t dflt, int64_t *v,
                              bool *present)
{
    int got;
    bool here;
    MILK_TRY(milk_infer_ints(ic, param, mask, v, n, &got, &here));
    if (present) *present = here;
    if (!here) {
        for (int i = 0; i < n; i++) v[i] = dflt;
        return MILK_OK;
    }
    if (got != n)
        return milk_op_fail(ic->ctx, ic->op, param,
                            "expected %d values, got %d", n, got);
    return MILK_OK;
}

milk_status milk_infer_int(milk_infer *ic, const char *param, uint64_t mask,
                           int64_t dflt, int64_t *v)
{
    if (milk_op_arg(ic->op, param))
        MILK_TRY(milk_op_check_dtype(ic->ctx, ic->op, param, mask));
    return milk_op_int(ic->ctx, ic->op, param, dflt, v);
}

milk_status milk_infer_bools_n(milk_infer *ic, const char *param, int n,
                               bool *v, bool *present)
{
    for (int i = 0; i < n; i++) v[i] = false;
    if (present) *present = false;
    if (!milk_op_arg(ic->op, param)) return MILK_OK;
    const milk_value *c = milk_op_const(ic->op, param);
    if (!c || c->kind != MILK_VALUE_TENSOR)
        return milk_op_fail(ic->ctx, ic->op, param,
                            "must be a constant tensor");
    if (c->type.dtype != MILK_DTYPE_BOOL || c->type.rank > 1)
        return milk_op_fail(ic->ctx, ic->op, param,
                            "expected a bool vector, got %s of rank %d",
                            milk_infer_dtype_name(c->type.dtype),
                            (int)c->type.rank);
    int64_t count = milk_tensor_type_count(&c->type);
    if (count != n)
        return milk_op_fail(ic->ctx, ic->op, param,
                            "expected %d values, got %lld", n,
                            (long long)count);
    for (int i = 0; i < n; i++) {
        int64_t x;
        MILK_TRY(milk_value_get_i64(ic->ctx, c, i, &x));
        v[i] = x != 0;
    }
    if (present) *present = true;
    return MILK_OK;
}

milk_status milk_infer_axis(milk_infer *ic, const char *param, int64_t axis,
                            int rank, int *out)
{
    return milk_op_axis(ic->ctx, ic->op, param, axis, rank, out);
}

milk_status milk_infer_one(milk_infer *ic, milk_dtype dt, int rank,
                           const int64_t *dims)
{
    if (rank > MILK_MAX_RANK)
        return milk_op_fail(ic->ctx, ic->op, NULL,
                            "output rank %d exceeds %d", rank, MILK_MAX_RANK);
    MILK_TRY(milk_infer_outputs(ic, 1));
    ic->out[0].dtype = dt;
    ic->out[0].rank = rank;
    for (int i = 0; i < rank; i++) ic->out[0].dims[i] = dims[i];
    return MILK_OK;
}
