/* fix_fp16.c: the fp16 overflow rules that rewrite (fp16-softplus,
 * fp16-logsumexp, fp16-logsoftmax, fp16-mask-sentinel): matchers and the
 * numerically stable forms, after coremltools' fixes (PR #2725, #2726,
 * issue #2728, PR #2669).
 *
 * The fp16 range ends at 65504: exp overflows past x = 11.09, so every
 * form below keeps the argument of exp at or below 0. */
#include "rules.h"

#include <math.h>
#include <stdlib.h>

#define FP16_MAX 65504.0

static const milk_tensor_type *float_x(const milk_op *op)
{
    const milk_tensor_type *x = milk_op_in_type(op, "x");
    if (!x || (x->dtype != MILK_DTYPE_FP16 && x->dtype != MILK_DTYPE_FP32))
        return NULL;
    return x;
}

/* ---- helpers: new ops named <op>_<type> ------------------------------------------ */

/* A reduction over axes (all when NULL), with or without the reduced
 * dims. */
static milk_status reduce(milk_rule_run *rr, milk_op *op, const char *type,
                          milk_var *x, milk_var *axes, bool keep,
                          milk_var **out)
{
    char base[256];
    milk_var *kd;
    snprintf(base, sizeof base, "%s_%s_keep_dims", op->name, type);
    MILK_TRY(milk_fix_bool(rr, op, base, keep, &kd));
    snprintf(base, sizeof base, "%s_%s", op->name, type);
    milk_input in[3] = {{"x", x}, {"keep_dims", kd}, {"axes", axes}};
    return milk_fix_op(rr, op, type, base, in, axes ? 3 : 2, out);
}

static milk_status unary(milk_rule_run *rr, milk_op *op, const char *type,
                         milk_var *x, milk_var **out)
{
    char base[256];
    snprintf(base, sizeof base, "%s_%s", op->name, type);
    milk_input in[] = {{"x", x}};
    return milk_fix_op(rr, op, type, base, in, 1, out);
}

static milk_status binary(milk_rule_run *rr, milk_op *op, const char *type,
                          milk_var *x, milk_var *y, milk_var **out)
{
    char base[256];
    snprintf(base, sizeof base, "%s_%s", op->name, type);
    milk_input in[] = {{"x", x}, {"y", y}};
    return milk_fix_op(rr, op, type, base, in, 2, out);
}

/* ---- fp16-softplus --------------------------------------------------------------- */

void milk_match_fp16_softplus(milk_rule_run *rr, const milk_op *op)
{
    if (!op) return; /* no function-level condition */
    const milk_tensor_type *x;
    char s[96];
    if (!milk_rule_is(op, "softplus") || !(x = float_x(op))) return;
    if (milk_rule_fp16(rr, x->dtype))
        milk_rule_matched(rr, op, "softplus of %s %s", milk_dtype_name(x->dtype),
                      milk_rule_shape(x, s, sizeof s));
}

/* softplus(x) = max(x, 0) + log(1 + exp(-|x|)): exp's argument is <= 0,
 * and for large x the result is x itself instead of log(inf). */
milk_status milk_fix_softplus(milk_rule_run *rr, milk_op *op)
{
    milk_var *x = milk_op_var(op, "x"), *minus1, *one, *a, *na, *e, *e1, *l, *r, *y;
    milk_dtype dt = x->type.dtype;
    char base[256];
    snprintf(base, sizeof base, "%s_minus_one", op->name);
    MILK_TRY(milk_fix_float(rr, op, base, dt, -1.0, &minus1));
    snprintf(base, sizeof base, "%s_one", op->name);
    MILK_TRY(milk_fix_float(rr, op, base, dt, 1.0, &one));
    MILK_TRY(unary(rr, op, "abs", x, &a));
    MILK_TRY(binary(rr, op, "mul", a, minus1, &na));
    MILK_TRY(unary(rr, op, "exp", na, &e));
    MILK_TRY(binary(rr, op, "add", e, one, &e1));
    MILK_TRY(unary(rr, op, "log", e1, &l));
    MILK_TRY(unary(rr, op, "relu", x, &r));
    MILK_TRY(binary(rr, op, "add", r, l, &y));
    return milk_fix_replace(rr, op, y);
}

/* ---- fp16-logsumexp ---------------------------------------------------------------- */

void milk_match_fp16_logsumexp(milk_rule_run *rr, const milk_op *op)
{
    if (!op) return; /* no function-level condition */
    const milk_tensor_type *x;
    char s[96];
    if (!milk_rule_is(op, "reduce_log_sum_exp") || !(x = float_x(op))) return;
    if (milk_rule_fp16(rr, x->dtype))
        milk_rule_matched(rr, op, "reduce_log_sum_exp of %s %s",
                      milk_dtype_name(x->dtype), milk_rule_shape(x, s, sizeof s));
}

/* log(sum(exp(x - m), axes)) with m = max(x, axes) kept as a broadcastable
 * tensor; returns x - m too. */
static milk_status log_sum_exp_shifted(milk_rule_run *rr, milk_op *op,
                                       milk_var *x, milk_var *axes, bool keep,
                                       milk_var **shifted, milk_var **lse,
                                       milk_var **max_kept)
{
    milk_var *e, *s;
    MILK_TRY(reduce(rr, op, "reduce_max", x, axes, true, max_kept));
    MILK_TRY(binary(rr, op, "sub", x, *max_kept, shifted));
    MILK_TRY(unary(rr, op, "exp", *shifted, &e));
    MILK_TRY(reduce(rr, op, "reduce_sum", e, axes, keep, &s));
    return unary(rr, op, "log", s, lse);
}

milk_status milk_fix_logsumexp(milk_rule_run *rr, milk_op *op)
{
    milk_var *x = milk_op_var(op, "x"), *axes, *shifted, *lse, *mk, *m, *y;
    bool keep = false;
    MILK_TRY(milk_op_bool(rr->ctx, op, "keep_dims", false, &keep));
    MILK_TRY(milk_fix_param(rr, op, "axes", &axes));
    MILK_TRY(log_sum_exp_shifted(rr, op, x, axes, keep, &shifted, &lse, &mk));
    m = mk;
    if (!keep) MILK_TRY(reduce(rr, op, "reduce_max", x, axes, false, &m));
    MILK_TRY(binary(rr, op, "add", lse, m, &y));
    return milk_fix_replace(rr, op, y);
}

/* ---- fp16-logsoftmax --------------------------------------------------------------- */

void milk_match_fp16_logsoftmax(milk_rule_run *rr, const milk_op *op)
{
    if (!op) return; /* no function-level condition */
    const milk_tensor_type *x;
    const milk_op *sm = milk_rule_producer(op, "x");
    if (!milk_rule_is(op, "log") || !milk_rule_is(sm, "softmax")) return;
    if (!(x = float_x(sm)) || !milk_op_var(sm, "x")) return;
    if (milk_rule_fp16(rr, x->dtype))
        milk_rule_matched(rr, op, "log of softmax '%s' (%s)", sm->name,
                      milk_dtype_name(x->dtype));
}

/* log(softmax(x)) = (x - m) - log(sum(exp(x - m))) along softmax's axis. */
milk_status milk_fix_logsoftmax(milk_rule_run *rr, milk_op *op)
{
    const milk_op *sm = milk_rule_producer(op, "x");
    milk_var *x = milk_op_var(sm, "x"), *axes, *shifted, *lse, *mk, *y;
    int64_t axis;
    char base[256];
    MILK_TRY(milk_op_int(rr->ctx, sm, "axis", -1, &axis));
    snprintf(base, sizeof base, "%s_axes", op->name);
    MILK_TRY(milk_fix_ints(rr, op, base, &axis, 1, &axes));
    MILK_TRY(log_sum_exp_shifted(rr, op, x, axes, true, &shifted, &lse, &mk));
    MILK_TRY(binary(rr, op, "sub", shifted, lse, &y));
    return milk_fix_replace(rr, op, y);
}

/* ---- fp16-mask-sentinel ------------------------------------------------------------ */

/* Inputs of each op kind through which a constant acts as a mask. */
static const struct { const char *op, *params[3]; } mask_uses[] = {
    {"add", {"x", "y"}}, {"sub", {"x", "y"}}, {"mul", {"x", "y"}},
    {"select", {"a", "b"}}, {"fill", {"value"}},
    {"scaled_dot_product_attention", {"attn_mask"}},
};

/* Masks are small next to weights; larger constants are not read. */
#define MASK_MAX_ELEMENTS (INT64_C(1) << 24)

/* Count the elements below -65504 (or -inf) of fp16 or fp32 data. */
typedef struct sentinel_count {
    milk_dtype dt;
    int64_t n;
} sentinel_count;

static milk_status count_chunk(void *user, const void *bytes, size_t n)
{
    sentinel_count *sc = user;
    if (sc->dt == MILK_DTYPE_FP16) {
        for (size_t i = 0; i < n / 2; i++)
            sc->n += milk_fp16_to_fp32(((const uint16_t *)bytes)[i]) < -FP16_MAX;
    } else {
        for (size_t i = 0; i < n / 4; i++) {
            float x;
            memcpy(&x, (const char *)bytes + 4 * i, 4);
            sc->n += x < -FP16_MAX;
        }
    }
    return MILK_OK;
}

/* Does the constant hold an element below -65504 (or -inf)? */
static bool has_sentinel(const milk_value *v, int64_t *count)
{
    int64_t n = milk_tensor_type_count(&v->type);
    sentinel_count sc = {v->type.dtype, 0};
    *count = 0;
    if (v->kind != MILK_VALUE_TENSOR || n <= 0 || n > MASK_MAX_ELEMENTS ||
        (v->type.dtype != MILK_DTYPE_FP16 && v->type.dtype != MILK_DTYPE_FP32))
        return false;
    if (milk_value_stream(NULL, v, 1 << 16, count_chunk, &sc) != MILK_OK)
        return false;
    *count = sc.n;
    return sc.n > 0;
}

/* The first mask-like input of op bound to such a constant, or NULL. */
static milk_var *sentinel_input(const milk_op *op, const char **param,
                                int64_t *count)
{
    for (size_t k = 0; op && k < MILK_ARRAY_LEN(mask_uses); k++) {
        if (!milk_rule_is(op, mask_uses[k].op)) continue;
        for (int j = 0; j < 3 && mask_uses[k].params[j]; j++) {
            milk_var *v = milk_op_var(op, mask_uses[k].params[j]);
            const milk_value *c = v ? milk_var_const(v) : NULL;
            if (c && has_sentinel(c, count)) {
                *param = mask_uses[k].params[j];
                return v;
            }
        }
    }
    return NULL;
}

void milk_match_fp16_mask_sentinel(milk_rule_run *rr, const milk_op *op)
{
    if (!op) return; /* no function-level condition */
    const char *param;
    int64_t count;
    milk_var *v = sentinel_input(op, &param, &count);
    if (!v || !milk_rule_fp16(rr, op->outputs[0]->type.dtype)) return;
    milk_rule_matched(rr, op, "input '%s' is constant '%s' with %lld value%s below "
                          "-65504 (%s)",
                  param, v->name, (long long)count, count > 1 ? "s" : "",
                  milk_dtype_name(v->type.dtype));
}

/* A copy of the constant with every value below -65504 set to -1e4. */
static milk_status clamped_copy(milk_rule_run *rr, milk_op *at,
                                const milk_var *v, milk_var **out)
{
    const milk_value *c = milk_var_const(v);
    int64_t n = milk_tensor_type_count(&c->type);
    bool half = c->type.dtype == MILK_DTYPE_FP16;
    char *buf = malloc((size_t)n * (half ? 2 : 4));
    if (!buf) return milk_errorf(rr->ctx, MILK_ERR_NOMEM, "out of memory");
    milk_status s = milk_value_read(rr->ctx, c, buf);
    for (int64_t i = 0; s == MILK_OK && i < n; i++) {
        if (half) {
            uint16_t *h = (uint16_t *)buf + i;
            if (milk_fp16_to_fp32(*h) < -FP16_MAX)
                *h = milk_fp32_to_fp16((float)MILK_MASK_SAFE);
        } else {
            float *f = (float *)buf + i;
            if (*f < -FP16_MAX) *f = (float)MILK_MASK_SAFE;
        }
    }
    char base[256];
    snprintf(base, sizeof base, "%s_clamped", v->name);
    if (s == MILK_OK) s = milk_fix_const(rr, at, base, &c->type, buf, out);
    free(buf);
    return s;
}

/* Every mask-like use of v in b (and nested blocks) now binds `now`. */
static void rebind_mask_uses(milk_block *b, const milk_var *v, milk_var *now)
{
    for (int i = 0; i < b->n_ops; i++) {
        milk_op *op = b->ops[i];
        for (size_t k = 0; k < MILK_ARRAY_LEN(mask_uses); k++) {
            if (!milk_rule_is(op, mask_uses[k].op)) continue;
            for (int a = 0; a < op->n_args; a++)
                for (int j = 0; j < 3 && mask_uses[k].params[j]; j++)
                    if (strcmp(op->args[a].param, mask_uses[k].params[j]) == 0 &&
                        op->args[a].b[0].var == v)
                        op->args[a].b[0].var = now;
        }
        for (int k = 0; k < op->n_blocks; k++) rebind_mask_uses(op->blocks[k], v, now);
    }
}

milk_status milk_fix_mask_sentinel(milk_rule_run *rr, milk_op *op)
{
    const char *param;
    int64_t count;
    milk_var *v = sentinel_input(op, &param, &count), *now;
    milk_op *def = v->producer;
    MILK_TRY(clamped_copy(rr, def, v, &now));
    rebind_mask_uses(rr->fn->block, v, now);
    milk_fix_note(rr, "const '%s' clamped to -1e4 as '%s' in its mask uses",
                  v->name, now->name);
    return MILK_OK;
}
