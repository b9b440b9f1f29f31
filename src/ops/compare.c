/* compare.c: element-wise comparisons with NumPy broadcasting and a bool
 * result: equal, not_equal, less, less_equal, greater, greater_equal
 * (coremltools' ops/defs/iOS15/elementwise_binary.py; no later opset
 * changes them). */
#include "elementwise.h"

static const milk_param compare_params[] = {
    {"x", MILK_P_REQ, 0},
    {"y", MILK_P_REQ, 0},
    {0},
};

static milk_status compare_infer(milk_infer *ic)
{
    static const char *const xy[] = {"x", "y", NULL};
    MILK_TRY(milk_infer_domain(ic, xy, MILK_DT_NUM));
    MILK_TRY(milk_infer_outputs(ic, 1));
    ic->out[0].dtype = MILK_DTYPE_BOOL;
    return milk_op_broadcast(ic->ctx, ic->op, milk_op_in_type(ic->op, "x"),
                             milk_op_in_type(ic->op, "y"), &ic->out[0]);
}

/* IEEE comparisons: anything against NaN is false, except not_equal. */
static bool c_equal(double a, double b) { return a == b; }
static bool c_not_equal(double a, double b) { return a != b; }
static bool c_less(double a, double b) { return a < b; }
static bool c_less_equal(double a, double b) { return a <= b; }
static bool c_greater(double a, double b) { return a > b; }
static bool c_greater_equal(double a, double b) { return a >= b; }

/* out = f(x, y) with broadcasting; int32 values are exact in double. */
static milk_status compare_eval(milk_eval *ec, bool (*f)(double, double))
{
    const milk_rt *x = milk_eval_in(ec, "x"), *y = milk_eval_in(ec, "y");
    milk_rt *o = &ec->out[0];
    milk_bcast it;
    milk_bcast_init(&it, &o->type, &x->type, &y->type);
    for (int64_t i = 0; i < o->count; i++, milk_bcast_next(&it)) /* [out] */
        milk_rt_bool(o)[i] = f(milk_rt_get(x, it.ia), milk_rt_get(y, it.ib));
    return MILK_OK;
}

#define COMPARE(id)                                                         \
    static milk_status id##_eval(milk_eval *ec) { return compare_eval(ec, c_##id); } \
    const milk_op_info milk_op_##id = {                                     \
        .name = #id,                                                        \
        .params = compare_params,                                           \
        .min_opset = MILK_TARGET_IOS15,                                     \
        .infer = compare_infer,                                             \
        .eval = id##_eval,                                                  \
    };

/* equal (x == y), not_equal (x != y), less (x < y), less_equal (x <= y),
 * greater (x > y), greater_equal (x >= y):
 *   x  R  fp16/fp32/int32
 *   y  R  same dtype as x
 * Output: bool, the NumPy broadcast of the two shapes. A NaN operand
 * makes every comparison false except not_equal, which is true. */
COMPARE(equal)
COMPARE(not_equal)
COMPARE(less)
COMPARE(less_equal)
COMPARE(greater)
COMPARE(greater_equal)
