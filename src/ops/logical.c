/* logical.c: the bool ops logical_not, logical_and, logical_or and
 * logical_xor (coremltools' ops/defs/iOS15/elementwise_unary.py and
 * elementwise_binary.py); the binary ones broadcast as NumPy does. */
#include "elementwise.h"

static const milk_param not_params[] = {
    {"x", MILK_P_REQ, 0},
    {0},
};

static const milk_param logical_params[] = {
    {"x", MILK_P_REQ, 0},
    {"y", MILK_P_REQ, 0},
    {0},
};

static milk_status not_infer(milk_infer *ic)
{
    MILK_TRY(milk_op_check_dtype(ic->ctx, ic->op, "x", MILK_DT_BOOL));
    MILK_TRY(milk_infer_outputs(ic, 1));
    ic->out[0] = *milk_op_in_type(ic->op, "x");
    return MILK_OK;
}

static milk_status logical_infer(milk_infer *ic)
{
    static const char *const xy[] = {"x", "y", NULL};
    MILK_TRY(milk_infer_domain(ic, xy, MILK_DT_BOOL));
    MILK_TRY(milk_infer_outputs(ic, 1));
    ic->out[0].dtype = MILK_DTYPE_BOOL;
    return milk_op_broadcast(ic->ctx, ic->op, milk_op_in_type(ic->op, "x"),
                             milk_op_in_type(ic->op, "y"), &ic->out[0]);
}

static milk_status logical_not_eval(milk_eval *ec)
{
    const milk_rt *x = milk_eval_in(ec, "x");
    for (int64_t i = 0; i < x->count; i++) /* [count] */
        milk_rt_bool(&ec->out[0])[i] = !milk_rt_bool(x)[i];
    return MILK_OK;
}

static bool l_and(bool a, bool b) { return a && b; }
static bool l_or(bool a, bool b) { return a || b; }
static bool l_xor(bool a, bool b) { return a != b; }

/* out = f(x, y) with broadcasting; any nonzero byte counts as true. */
static milk_status logical_eval(milk_eval *ec, bool (*f)(bool, bool))
{
    const milk_rt *x = milk_eval_in(ec, "x"), *y = milk_eval_in(ec, "y");
    milk_rt *o = &ec->out[0];
    milk_bcast it;
    milk_bcast_init(&it, &o->type, &x->type, &y->type);
    for (int64_t i = 0; i < o->count; i++, milk_bcast_next(&it)) /* [out] */
        milk_rt_bool(o)[i] = f(milk_rt_bool(x)[it.ia] != 0, milk_rt_bool(y)[it.ib] != 0);
    return MILK_OK;
}

static milk_status logical_and_eval(milk_eval *ec) { return logical_eval(ec, l_and); }
static milk_status logical_or_eval(milk_eval *ec) { return logical_eval(ec, l_or); }
static milk_status logical_xor_eval(milk_eval *ec) { return logical_eval(ec, l_xor); }

/* logical_not: NOT x.
 *   x  R  bool
 * Output: x's type. */
const milk_op_info milk_op_logical_not = {
    .name = "logical_not",
    .params = not_params,
    .min_opset = MILK_TARGET_IOS15,
    .infer = not_infer,
    .eval = logical_not_eval,
};

#define LOGICAL(id)                                                         \
    const milk_op_info milk_op_##id = {                                     \
        .name = #id,                                                        \
        .params = logical_params,                                           \
        .min_opset = MILK_TARGET_IOS15,                                     \
        .infer = logical_infer,                                             \
        .eval = id##_eval,                                                  \
    };

/* logical_and, logical_or, logical_xor:
 *   x  R  bool
 *   y  R  bool
 * Output: bool, the NumPy broadcast of the two shapes. */
LOGICAL(logical_and)
LOGICAL(logical_or)
LOGICAL(logical_xor)
