/* fix_math.c: the second edition's elementwise and matmul rules that
 * rewrite (docs/coreml-defects.md): pow-base2, floor-div-one, trilu-inf,
 * int-matmul-linear. Matchers and passes, after coremltools' fixes
 * (decompose_const_base2_pow, PR #2762, PR #2771, PR #2673). */
#include "rules.h"

#include <math.h>
#include <stdlib.h>

static bool is_float(milk_dtype d)
{
    return d == MILK_DTYPE_FP16 || d == MILK_DTYPE_FP32;
}

/* Does the constant hold only the value v (and at most 2^16 elements, as
 * a broadcast scalar does)? */
static bool const_all(const milk_value *c, double v)
{
    int64_t n = c ? milk_tensor_type_count(&c->type) : -1;
    if (n < 1 || n > 65536 || c->kind != MILK_VALUE_TENSOR) return false;
    for (int64_t i = 0; i < n; i++) {
        double x;
        if (milk_value_get_f64(NULL, c, i, &x) != MILK_OK || x != v) return false;
    }
    return true;
}

static bool same_dims(const milk_tensor_type *a, const milk_tensor_type *b)
{
    if (a->rank != b->rank) return false;
    for (int i = 0; i < a->rank; i++)
        if (a->dims[i] != b->dims[i]) return false;
    return true;
}

/* ---- pow-base2 ------------------------------------------------------------------ */

void milk_match_pow_base2(milk_rule_run *rr, const milk_op *op)
{
    if (!op || !milk_rule_is(op, "pow")) return;
    const milk_tensor_type *y = milk_op_in_type(op, "y");
    const milk_value *x = milk_op_const(op, "x");
    if (!y || !is_float(y->dtype) || !x || !is_float(x->type.dtype) || !const_all(x, 2.0))
        return;
    char s[96];
    milk_rule_matched(rr, op, "pow with the constant base 2 (%s %s)",
                      milk_dtype_name(x->type.dtype), milk_rule_shape(&x->type, s, sizeof s));
}

/* 2^y = exp(y * ln 2); ln 2 is a constant of the base's shape, so that
 * the result broadcasts as pow's did. */
milk_status milk_fix_pow_base2(milk_rule_run *rr, milk_op *op)
{
    milk_var *y = milk_op_var(op, "y"), *ln2, *scaled, *e;
    const milk_value *x = milk_op_const(op, "x");
    if (!y) {
        milk_fix_decline(rr, "the exponent is an inline value: fold the op instead");
        return MILK_OK;
    }
    milk_tensor_type t = x->type;
    t.dtype = y->type.dtype; /* mul takes one dtype */
    int64_t n = milk_tensor_type_count(&t);
    bool half = t.dtype == MILK_DTYPE_FP16;
    void *buf = malloc((size_t)n * (half ? 2 : 4));
    if (!buf) return milk_errorf(rr->ctx, MILK_ERR_NOMEM, "out of memory");
    for (int64_t i = 0; i < n; i++) {
        if (half) ((uint16_t *)buf)[i] = milk_fp32_to_fp16((float)M_LN2);
        else ((float *)buf)[i] = (float)M_LN2;
    }
    char base[256];
    snprintf(base, sizeof base, "%s_ln2", op->name);
    milk_status s = milk_fix_const(rr, op, base, &t, buf, &ln2);
    free(buf);
    MILK_TRY(s);
    snprintf(base, sizeof base, "%s_scaled", op->name);
    milk_input in[] = {{"x", y}, {"y", ln2}};
    MILK_TRY(milk_fix_op(rr, op, "mul", base, in, 2, &scaled));
    snprintf(base, sizeof base, "%s_exp", op->name);
    milk_input ein[] = {{"x", scaled}};
    MILK_TRY(milk_fix_op(rr, op, "exp", base, ein, 1, &e));
    return milk_fix_replace(rr, op, e);
}

/* ---- floor-div-one ---------------------------------------------------------------- */

void milk_match_floor_div_one(milk_rule_run *rr, const milk_op *op)
{
    if (!op || !milk_rule_is(op, "floor_div")) return;
    const milk_tensor_type *x = milk_op_in_type(op, "x");
    if (!x || !is_float(x->dtype) || !const_all(milk_op_const(op, "y"), 1.0)) return;
    milk_rule_matched(rr, op, "floor_div of %s by the constant 1", milk_dtype_name(x->dtype));
}

/* floor_div(x, 1) = floor(x). */
milk_status milk_fix_floor_div_one(milk_rule_run *rr, milk_op *op)
{
    milk_var *x = milk_op_var(op, "x"), *f;
    if (!x || !same_dims(&x->type, &op->outputs[0]->type)) {
        milk_fix_decline(rr, "the divisor broadcasts x to another shape");
        return MILK_OK;
    }
    char base[256];
    snprintf(base, sizeof base, "%s_floor", op->name);
    milk_input in[] = {{"x", x}};
    MILK_TRY(milk_fix_op(rr, op, "floor", base, in, 1, &f));
    return milk_fix_replace(rr, op, f);
}

/* ---- trilu-inf --------------------------------------------------------------------- */

/* The band_part op whose output is sub's y, computed from sub's x; its
 * bounds in *lower, *upper. */
static const milk_op *band_of(const milk_op *op, int64_t *lower, int64_t *upper)
{
    if (!op || !milk_rule_is(op, "sub")) return NULL;
    const milk_op *bp = milk_rule_producer(op, "y");
    milk_var *x = milk_op_var(op, "x");
    if (!milk_rule_is(bp, "band_part") || !x || milk_op_var(bp, "x") != x) return NULL;
    if (milk_op_int(NULL, bp, "lower", -1, lower) != MILK_OK ||
        milk_op_int(NULL, bp, "upper", -1, upper) != MILK_OK)
        return NULL;
    const milk_tensor_type *t = &x->type;
    if (!is_float(t->dtype) || t->rank < 2 || milk_tensor_type_count(t) < 0) return NULL;
    return bp;
}

void milk_match_trilu_inf(milk_rule_run *rr, const milk_op *op)
{
    int64_t lo, up;
    const milk_op *bp = op ? band_of(op, &lo, &up) : NULL;
    if (!bp) return;
    milk_rule_matched(rr, op, "x - band_part(x, lower=%lld, upper=%lld) ('%s'): inf - inf "
                      "is NaN where the band is dropped", (long long)lo, (long long)up, bp->name);
}

/* x - band_part(x) keeps x outside the band and zeros inside it:
 * select(in_band, 0, x) with a constant [M, N] mask of the band, as
 * band_part defines it (lower < 0 or i - j <= lower, and upper < 0 or
 * j - i <= upper). */
milk_status milk_fix_trilu_inf(milk_rule_run *rr, milk_op *op)
{
    int64_t lo, up;
    band_of(op, &lo, &up);
    milk_var *x = milk_op_var(op, "x"), *mask, *zero, *y;
    int64_t M = x->type.dims[x->type.rank - 2], N = x->type.dims[x->type.rank - 1];
    if (M * N > (INT64_C(1) << 26)) {
        milk_fix_decline(rr, "the matrices are too large for a constant mask");
        return MILK_OK;
    }
    uint8_t *m = malloc((size_t)(M * N > 0 ? M * N : 1));
    if (!m) return milk_errorf(rr->ctx, MILK_ERR_NOMEM, "out of memory");
    for (int64_t i = 0; i < M; i++)
        for (int64_t j = 0; j < N; j++)
            m[i * N + j] = (lo < 0 || i - j <= lo) && (up < 0 || j - i <= up);
    milk_tensor_type mt = {MILK_DTYPE_BOOL, 2, {M, N}};
    char base[256];
    snprintf(base, sizeof base, "%s_band", op->name);
    milk_status s = milk_fix_const(rr, op, base, &mt, m, &mask);
    free(m);
    MILK_TRY(s);
    snprintf(base, sizeof base, "%s_zero", op->name);
    MILK_TRY(milk_fix_float(rr, op, base, x->type.dtype, 0.0, &zero));
    snprintf(base, sizeof base, "%s_select", op->name);
    milk_input in[] = {{"cond", mask}, {"a", zero}, {"b", x}};
    MILK_TRY(milk_fix_op(rr, op, "select", base, in, 3, &y));
    return milk_fix_replace(rr, op, y);
}

/* ---- int-matmul-linear -------------------------------------------------------------- */

void milk_match_int_matmul_linear(milk_rule_run *rr, const milk_op *op)
{
    if (!op || !milk_rule_is(op, "linear")) return;
    const milk_tensor_type *x = milk_op_in_type(op, "x"), *w = milk_op_in_type(op, "weight");
    if (!x || !w || (is_float(x->dtype) && is_float(w->dtype))) return;
    milk_rule_matched(rr, op, "linear of %s x and %s weight", milk_dtype_name(x->dtype),
                      milk_dtype_name(w->dtype));
}

/* linear(x, W, b) = matmul(x, W, transpose_y) + b. */
milk_status milk_fix_int_matmul_linear(milk_rule_run *rr, milk_op *op)
{
    milk_var *x = milk_op_var(op, "x"), *w, *b, *tx, *ty, *y;
    MILK_TRY(milk_fix_param(rr, op, "weight", &w));
    MILK_TRY(milk_fix_param(rr, op, "bias", &b));
    char base[256];
    snprintf(base, sizeof base, "%s_transpose_x", op->name);
    MILK_TRY(milk_fix_bool(rr, op, base, false, &tx));
    snprintf(base, sizeof base, "%s_transpose_y", op->name);
    MILK_TRY(milk_fix_bool(rr, op, base, true, &ty));
    snprintf(base, sizeof base, "%s_matmul", op->name);
    milk_input in[] = {{"x", x}, {"y", w}, {"transpose_x", tx}, {"transpose_y", ty}};
    MILK_TRY(milk_fix_op(rr, op, "matmul", base, in, 4, &y));
    if (b) {
        snprintf(base, sizeof base, "%s_bias", op->name);
        milk_input ain[] = {{"x", y}, {"y", b}};
        MILK_TRY(milk_fix_op(rr, op, "add", base, ain, 2, &y));
    }
    return milk_fix_replace(rr, op, y);
}
