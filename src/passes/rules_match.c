/* rules_match.c: the matchers of the rules that only warn or refuse
 * (rules.def): patterns milk reports but does not rewrite. Matchers of
 * rewriting rules live beside their passes (fix_*.c). */
#include "rules.h"

static const milk_tensor_type *x_type(const milk_op *op, const char *param)
{
    return milk_op_in_type(op, param);
}

/* ---- wrong results ---------------------------------------------------------- */

void milk_match_avgpool_k7s4p3(milk_rule_run *rr, const milk_op *op)
{
    if (!op) return; /* no function-level condition */
    if (!milk_rule_is(op, "avg_pool")) return;
    const milk_tensor_type *x = x_type(op, "x");
    int64_t k[3], s[3] = {1, 1, 1}, pad[6] = {0};
    int nk = 0, ns = 0, np = 0;
    const char *pt = "valid";
    if (!x || x->rank < 3 || x->rank > 5) return;
    if (milk_op_ints(NULL, op, "kernel_sizes", k, 3, &nk, NULL) != MILK_OK ||
        milk_op_ints(NULL, op, "strides", s, 3, &ns, NULL) != MILK_OK ||
        milk_op_ints(NULL, op, "pad", pad, 6, &np, NULL) != MILK_OK ||
        milk_op_str(NULL, op, "pad_type", "valid", &pt) != MILK_OK)
        return;
    for (int i = 0; i < nk; i++) {
        int64_t stride = i < ns ? s[i] : 1;
        bool p3 = strcmp(pt, "custom") == 0 && 2 * i + 1 < np &&
                  pad[2 * i] == 3 && pad[2 * i + 1] == 3;
        if (k[i] == 7 && stride == 4 && p3) {
            milk_rule_matched(rr, op, "avg_pool kernel 7, stride 4, pad 3 on "
                                  "spatial axis %d", i);
            return;
        }
    }
}

void milk_match_reducesum_fp16_sim(milk_rule_run *rr, const milk_op *op)
{
    if (!op) return; /* no function-level condition */
    const milk_tensor_type *x = x_type(op, "x");
    if (!milk_rule_is(op, "reduce_sum") || !x) return;
    if (milk_rule_fp16(rr, x->dtype))
        milk_rule_matched(rr, op, "reduce_sum of %s", milk_dtype_name(x->dtype));
}

void milk_match_batchnorm_fp16_sim(milk_rule_run *rr, const milk_op *op)
{
    if (!op) return; /* no function-level condition */
    const milk_tensor_type *x = x_type(op, "x");
    if (!milk_rule_is(op, "batch_norm") || !x) return;
    if (milk_rule_fp16(rr, x->dtype))
        milk_rule_matched(rr, op, "batch_norm of %s, target %s",
                      milk_dtype_name(x->dtype), milk_target_name(rr->target));
}

void milk_match_gridsample_reflect(milk_rule_run *rr, const milk_op *op)
{
    if (!op) return; /* no function-level condition */
    const char *mode = "", *padding = "";
    bool align = true;
    if (!milk_rule_is(op, "resample")) return;
    if (milk_op_str(NULL, op, "sampling_mode", "", &mode) != MILK_OK ||
        milk_op_str(NULL, op, "padding_mode", "", &padding) != MILK_OK ||
        milk_op_bool(NULL, op, "align_corners", true, &align) != MILK_OK)
        return;
    if (strcmp(mode, "bilinear") == 0 && strcmp(padding, "reflection") == 0 &&
        !align)
        milk_rule_matched(rr, op, "resample: bilinear, reflection padding, "
                              "align_corners false");
}

/* ---- fp16 overflow ------------------------------------------------------------ */

/* x * x, x^2 or square(x): the op producing param squares its input. */
static bool is_square(const milk_op *p)
{
    if (milk_rule_is(p, "square")) return true;
    if (milk_rule_is(p, "mul"))
        return milk_op_var(p, "x") && milk_op_var(p, "x") == milk_op_var(p, "y");
    if (milk_rule_is(p, "pow")) {
        const milk_value *y = milk_op_const(p, "y");
        double e;
        return y && milk_tensor_type_count(&y->type) == 1 &&
               milk_value_get_f64(NULL, y, 0, &e) == MILK_OK && e == 2.0;
    }
    return false;
}

/* x / s with s = max(reduce_max(|x|), c) or reduce_max(|x|): the rescaled
 * RMSNorm rmsnorm-eps writes, whose squares stay at or below 1. */
static bool rescaled(const milk_op *p)
{
    const milk_op *q = milk_rule_producer(p, "x");
    if (!milk_rule_is(q, "real_div") || !milk_op_var(q, "x")) return false;
    const milk_op *s = milk_rule_producer(q, "y");
    if (milk_rule_is(s, "maximum")) s = milk_rule_producer(s, "x");
    if (!milk_rule_is(s, "reduce_max")) return false;
    const milk_op *a = milk_rule_producer(s, "x");
    return milk_rule_is(a, "abs") && milk_op_var(a, "x") == milk_op_var(q, "x");
}

void milk_match_fp16_rmsnorm(milk_rule_run *rr, const milk_op *op)
{
    if (!op) return; /* no function-level condition */
    static const char *const direct[] = {"reduce_sum_square", "reduce_l2_norm",
                                         "l2_norm"};
    const milk_tensor_type *x = x_type(op, "x");
    if (!x || !milk_rule_fp16(rr, x->dtype)) return;
    for (size_t i = 0; i < MILK_ARRAY_LEN(direct); i++)
        if (milk_rule_is(op, direct[i])) {
            milk_rule_matched(rr, op, "%s of %s", direct[i], milk_dtype_name(x->dtype));
            return;
        }
    if ((milk_rule_is(op, "reduce_mean") || milk_rule_is(op, "reduce_sum")) &&
        is_square(milk_rule_producer(op, "x")) && !rescaled(milk_rule_producer(op, "x")))
        milk_rule_matched(rr, op, "%s of the square of a %s tensor (%s)",
                      milk_ops[op->kind]->name, milk_dtype_name(x->dtype),
                      milk_rule_producer(op, "x")->name);
}

/* exp of x - reduce_max(x) or of -|x| (or of a negated value) cannot
 * overflow: the stable forms milk writes. */
static bool exp_is_bounded(const milk_op *op)
{
    const milk_op *p = milk_rule_producer(op, "x");
    if (milk_rule_is(p, "sub"))
        return milk_rule_is(milk_rule_producer(p, "y"), "reduce_max");
    if (milk_rule_is(p, "mul")) {
        const milk_value *c = milk_op_const(p, "y");
        double v;
        return c && milk_tensor_type_count(&c->type) == 1 &&
               milk_value_get_f64(NULL, c, 0, &v) == MILK_OK && v < 0 &&
               milk_rule_is(milk_rule_producer(p, "x"), "abs");
    }
    return false;
}

void milk_match_fp16_general(milk_rule_run *rr, const milk_op *op)
{
    if (!op) return; /* no function-level condition */
    const milk_tensor_type *x = x_type(op, "x");
    if (!op || !x || !milk_rule_fp16(rr, x->dtype)) return;
    if (milk_rule_is(op, "exp") && !exp_is_bounded(op))
        milk_rule_matched(rr, op, "exp of %s: overflows past x > 11.09", milk_dtype_name(x->dtype));
    else if (milk_rule_is(op, "pow") || milk_rule_is(op, "reduce_prod"))
        milk_rule_matched(rr, op, "%s of %s can grow past 65504",
                      milk_ops[op->kind]->name, milk_dtype_name(x->dtype));
}

/* ---- refused ---------------------------------------------------------------------- */

typedef bool (*type_test)(const milk_tensor_type *t, char *why, size_t n);

/* Apply `test` to the function's inputs (op NULL) or to op's outputs;
 * constants are skipped (an empty shape const is how reshape spells a
 * scalar, and weights never reach the runtime as tensors of their own). */
static void check_types(milk_rule_run *rr, const milk_op *op, type_test test)
{
    char why[128], shape[160];
    if (!op) {
        for (int i = 0; i < rr->fn->n_inputs; i++) {
            const milk_var *v = rr->fn->inputs[i];
            if (test(&v->type, why, sizeof why))
                milk_rule_matched(rr, NULL, "input '%s' %s: %s", v->name,
                              milk_rule_shape(&v->type, shape, sizeof shape), why);
        }
        return;
    }
    if (op->kind == MILK_OP_const_) return;
    for (int k = 0; k < op->n_outputs; k++) {
        const milk_var *v = op->outputs[k];
        if (test(&v->type, why, sizeof why)) {
            milk_rule_matched(rr, op, "output '%s' %s: %s", v->name,
                          milk_rule_shape(&v->type, shape, sizeof shape), why);
            return;
        }
    }
}

static bool big_dim(const milk_tensor_type *t, char *why, size_t n)
{
    for (int i = 0; i < t->rank; i++)
        if (t->dims[i] > 16384) {
            snprintf(why, n, "dimension %d is %lld > 16384", i, (long long)t->dims[i]);
            return true;
        }
    return false;
}

static bool big_rank(const milk_tensor_type *t, char *why, size_t n)
{
    if (t->rank <= 5) return false;
    snprintf(why, n, "rank %d > 5", (int)t->rank);
    return true;
}

static bool zero_dim(const milk_tensor_type *t, char *why, size_t n)
{
    for (int i = 0; i < t->rank; i++)
        if (t->dims[i] == 0) {
            snprintf(why, n, "dimension %d is 0", i);
            return true;
        }
    return false;
}

void milk_match_dim_16384(milk_rule_run *rr, const milk_op *op)
{
    check_types(rr, op, big_dim);
}

void milk_match_rank_gt_5(milk_rule_run *rr, const milk_op *op)
{
    check_types(rr, op, big_rank);
}

void milk_match_zero_dim(milk_rule_run *rr, const milk_op *op)
{
    check_types(rr, op, zero_dim);
}
