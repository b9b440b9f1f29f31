/* binary.c: element-wise arithmetic with NumPy broadcasting: add, sub,
 * mul, real_div, pow, maximum, minimum, floor_div, mod (coremltools'
 * ops/defs/iOS15/elementwise_binary.py; no later opset changes them).
 *
 * The reference kernels follow NumPy, whose operators coremltools uses for
 * value inference: float math in double rounded once to fp32; int32 math
 * exact and wrapped to 32 bits as NumPy's int32 arithmetic wraps. */
#include "elementwise.h"

static const milk_param binary_params[] = {
    {"x", MILK_P_REQ, 0},
    {"y", MILK_P_REQ, 0},
    {0},
};

static milk_status binary_infer(milk_infer *ic)
{
    const milk_tensor_type *x = milk_op_in_type(ic->op, "x");
    const milk_tensor_type *y = milk_op_in_type(ic->op, "y");
    MILK_TRY(milk_op_check_dtype(ic->ctx, ic->op, "x", MILK_DT_NUM));
    if (x->dtype != y->dtype)
        return milk_op_fail(ic->ctx, ic->op, "y",
                            "dtype %s differs from x's %s",
                            milk_infer_dtype_name(y->dtype),
                            milk_infer_dtype_name(x->dtype));
    MILK_TRY(milk_infer_outputs(ic, 1));
    ic->out[0].dtype = x->dtype;
    return milk_op_broadcast(ic->ctx, ic->op, x, y, &ic->out[0]);
}

/* ---- float functions (NumPy's, in double) -------------------------------- */

static double f_add(double a, double b) { return a + b; }
static double f_sub(double a, double b) { return a - b; }
static double f_mul(double a, double b) { return a * b; }
static double f_real_div(double a, double b) { return a / b; }
static double f_pow(double a, double b) { return pow(a, b); }
/* np.maximum / np.minimum: NaN in either operand gives NaN */
static double f_maximum(double a, double b) { return a > b || isnan(a) ? a : b; }
static double f_minimum(double a, double b) { return a < b || isnan(a) ? a : b; }

/* NumPy's float divmod (npy_divmod): the remainder has the divisor's sign,
 * the quotient is the floor of the true quotient, snapped to the nearest
 * integer to undo the rounding of (a - mod) / b. Division by zero gives
 * a / 0 (+-inf or NaN) and a NaN remainder. */
static double divmod(double a, double b, double *modulus)
{
    double mod = fmod(a, b);
    if (b == 0) {
        *modulus = mod;
        return a / b;
    }
    double div = (a - mod) / b;
    if (mod != 0) {
        if ((b < 0) != (mod < 0)) {
            mod += b;
            div -= 1.0;
        }
    } else {
        mod = copysign(0.0, b);
    }
    double q;
    if (div != 0) {
        q = floor(div);
        if (div - q > 0.5) q += 1.0;
    } else {
        q = copysign(0.0, a / b);
    }
    *modulus = mod;
    return q;
}

static double f_floor_div(double a, double b)
{
    double m;
    return divmod(a, b, &m);
}

static double f_mod(double a, double b)
{
    double m;
    divmod(a, b, &m);
    return m;
}

/* ---- int32 functions ------------------------------------------------------ */

/* NumPy's integer floor division and remainder: rounding toward -inf, the
 * remainder with the divisor's sign; x // 0 and x % 0 are 0. Computed in
 * int64, so INT32_MIN // -1 wraps to INT32_MIN as in NumPy. */
static int64_t i_floor_div(int64_t a, int64_t b)
{
    if (b == 0) return 0;
    int64_t q = a / b;
    return (a % b != 0 && (a < 0) != (b < 0)) ? q - 1 : q;
}

static int64_t i_mod(int64_t a, int64_t b)
{
    if (b == 0) return 0;
    int64_t r = a % b;
    return (r != 0 && (r < 0) != (b < 0)) ? r + b : r;
}

/* a^b by repeated squaring, wrapping as NumPy's int32 power does. NumPy
 * rejects negative exponents; here they give the truncated true value:
 * 1 for a = 1, +-1 for a = -1, 0 otherwise (also for a = 0). */
static int64_t i_pow(int64_t a, int64_t b)
{
    if (b < 0) return a == 1 ? 1 : a == -1 ? (b % 2 ? -1 : 1) : 0;
    uint32_t r = 1, base = (uint32_t)a;
    for (; b > 0; b >>= 1) {
        if (b & 1) r *= base;
        base *= base;
    }
    return (int32_t)r;
}

/* The int32 version of each op. real_div is NumPy's true division
 * converted back to int32: truncation toward zero (x / 0 gives 0 here,
 * where NumPy's inf would convert to INT32_MIN). */
static int64_t int_op(double (*f)(double, double), int64_t a, int64_t b)
{
    if (f == f_add) return a + b;
    if (f == f_sub) return a - b;
    if (f == f_mul) return a * b;
    if (f == f_real_div) return b == 0 ? 0 : a / b;
    if (f == f_pow) return i_pow(a, b);
    if (f == f_maximum) return a > b ? a : b;
    if (f == f_minimum) return a < b ? a : b;
    if (f == f_floor_div) return i_floor_div(a, b);
    return i_mod(a, b);
}

/* ---- the kernel ------------------------------------------------------------ */

/* out = f(x, y) with broadcasting. */
static milk_status binary_eval(milk_eval *ec, double (*f)(double, double))
{
    const milk_rt *x = milk_eval_in(ec, "x"), *y = milk_eval_in(ec, "y");
    milk_rt *o = &ec->out[0];
    milk_bcast it;
    milk_bcast_init(&it, &o->type, &x->type, &y->type);
    bool ints = o->store == MILK_DTYPE_INT32;
    for (int64_t i = 0; i < o->count; i++, milk_bcast_next(&it)) { /* [out] */
        if (ints)
            milk_rt_i32(o)[i] = milk_wrap_i32(
                int_op(f, milk_rt_i32(x)[it.ia], milk_rt_i32(y)[it.ib]));
        else
            milk_rt_f32(o)[i] = (float)f(milk_rt_f32(x)[it.ia], milk_rt_f32(y)[it.ib]);
    }
    return MILK_OK;
}

#define BINARY(id)                                                          \
    static milk_status id##_eval(milk_eval *ec) { return binary_eval(ec, f_##id); } \
    const milk_op_info milk_op_##id = {                                     \
        .name = #id,                                                        \
        .params = binary_params,                                            \
        .min_opset = MILK_TARGET_IOS15,                                     \
        .infer = binary_infer,                                              \
        .eval = id##_eval,                                                  \
    };

/* add, sub, mul, real_div (true division), pow (x^y), maximum, minimum,
 * floor_div (floor(x / y)), mod (x - floor_div(x, y) * y: the remainder
 * has y's sign, as Python's % and np.remainder):
 *   x  R  fp16/fp32/int32
 *   y  R  same dtype as x; either may be a constant
 * Output: x's dtype, the NumPy broadcast of the two shapes (an unknown dim
 * against 1 stays unknown, against a known size takes that size).
 * Floats: IEEE semantics in double (x / 0 is +-inf, maximum and minimum
 * propagate NaN, floor_div and mod by 0 give +-inf/NaN and NaN).
 * int32: wrapping arithmetic; real_div truncates toward zero; floor_div
 * and mod by 0 give 0 (as NumPy), real_div by 0 gives 0; pow with a
 * negative exponent gives the truncated true value (NumPy refuses it). */
BINARY(add)
BINARY(sub)
BINARY(mul)
BINARY(real_div)
BINARY(pow)
BINARY(maximum)
BINARY(minimum)
BINARY(floor_div)
BINARY(mod)
