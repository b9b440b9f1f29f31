/* fix_rmsnorm.c: rmsnorm-eps (docs/coreml-defects.md, second edition):
 * RMSNorm written plainly, x / sqrt(mean(x^2) + eps), overflows in fp16
 * once |x| passes 256 (its square passes 65504). The stable form rescales
 * x by s = max(max|x|, 1) before squaring and eps by 1/s^2 with it:
 *
 *   (x/s) / sqrt(mean((x/s)^2) + eps/s^2) = x / sqrt(mean(x^2) + eps)
 *
 * exactly; coremltools' first version of this rescale left eps alone,
 * which computes sqrt(mean(x^2) + eps*s^2), wrong even in fp32
 * (apple/coremltools#2821, PR #2822; the clamp at 1 is from that PR).
 *
 * Forms recognized, with q = square(x), mul(x, x) or pow(x, 2), m =
 * reduce_mean(q, keep_dims=true) and a = add(m, eps) (eps a scalar
 * constant, either side):
 *   mul(x, rsqrt(a))  mul(x, real_div(1, sqrt(a)))  real_div(x, sqrt(a))
 * (mul's operands in either order). */
#include "rules.h"

#include <math.h>

typedef struct rms {
    milk_var *x;             /* the normalized tensor */
    const milk_op *mean;     /* reduce_mean over the normalized axes */
    double eps;              /* eps plus rsqrt's own epsilon */
} rms;

static bool squares(const milk_op *q, const milk_var *x)
{
    if (milk_rule_is(q, "square")) return milk_op_var(q, "x") == x;
    if (milk_rule_is(q, "mul")) return milk_op_var(q, "x") == x && milk_op_var(q, "y") == x;
    if (milk_rule_is(q, "pow")) {
        const milk_value *e = milk_op_const(q, "y");
        double v;
        return milk_op_var(q, "x") == x && e && milk_tensor_type_count(&e->type) == 1 &&
               milk_value_get_f64(NULL, e, 0, &v) == MILK_OK && v == 2.0;
    }
    return false;
}

/* A scalar float constant bound to param of op. */
static bool scalar(const milk_op *op, const char *param, double *v)
{
    const milk_value *c = milk_op_const(op, param);
    return c && milk_tensor_type_count(&c->type) == 1 &&
           milk_value_get_f64(NULL, c, 0, v) == MILK_OK;
}

/* a = add(reduce_mean(square(x), keep_dims=true), eps): fill p. */
static bool mean_plus_eps(const milk_op *a, const milk_var *x, rms *p)
{
    if (!milk_rule_is(a, "add")) return false;
    for (int side = 0; side < 2; side++) {
        const char *mp = side ? "y" : "x", *ep = side ? "x" : "y";
        const milk_op *m = milk_rule_producer(a, mp);
        double eps;
        bool keep = false;
        if (!milk_rule_is(m, "reduce_mean") || !scalar(a, ep, &eps)) continue;
        if (milk_op_bool(NULL, m, "keep_dims", false, &keep) != MILK_OK || !keep) continue;
        if (!milk_op_var(m, "axes") && !milk_op_const(m, "axes")) continue; /* all axes */
        if (!squares(milk_rule_producer(m, "x"), x)) continue;
        p->mean = m;
        p->eps += eps;
        return true;
    }
    return false;
}

/* rsqrt's epsilon as the interpreter applies it (unary.c: a constant of
 * x's dtype; default 1e-12). */
static double rsqrt_eps(const milk_op *r)
{
    double e;
    if (scalar(r, "epsilon", &e)) return e;
    const milk_tensor_type *t = milk_op_in_type(r, "x");
    return t && t->dtype == MILK_DTYPE_FP16 ? milk_fp16_to_fp32(milk_fp32_to_fp16(1e-12f)) : 1e-12;
}

/* Does r compute 1/sqrt(mean(x^2) + eps)? */
static bool inverse_rms(const milk_op *r, const milk_var *x, rms *p)
{
    if (milk_rule_is(r, "rsqrt")) {
        p->eps = rsqrt_eps(r);
        return mean_plus_eps(milk_rule_producer(r, "x"), x, p);
    }
    double one;
    const milk_op *s = milk_rule_producer(r, "y");
    if (!milk_rule_is(r, "real_div") || !scalar(r, "x", &one) || one != 1.0 ||
        !milk_rule_is(s, "sqrt"))
        return false;
    p->eps = 0;
    return mean_plus_eps(milk_rule_producer(s, "x"), x, p);
}

static bool rms_of(const milk_op *op, rms *p)
{
    memset(p, 0, sizeof *p);
    if (milk_rule_is(op, "real_div")) {
        const milk_op *s = milk_rule_producer(op, "y");
        p->x = milk_op_var(op, "x");
        return p->x && milk_rule_is(s, "sqrt") &&
               mean_plus_eps(milk_rule_producer(s, "x"), p->x, p);
    }
    if (!milk_rule_is(op, "mul")) return false;
    for (int side = 0; side < 2; side++) {
        p->x = milk_op_var(op, side ? "y" : "x");
        const milk_op *r = milk_rule_producer(op, side ? "x" : "y");
        if (p->x && r && inverse_rms(r, p->x, p)) return true;
    }
    return false;
}

void milk_match_rmsnorm_eps(milk_rule_run *rr, const milk_op *op)
{
    rms p;
    if (!op || !rms_of(op, &p)) return;
    milk_dtype dt = p.x->type.dtype;
    if ((dt != MILK_DTYPE_FP16 && dt != MILK_DTYPE_FP32) || !milk_rule_fp16(rr, dt)) return;
    milk_rule_matched(rr, op, "RMSNorm of %s '%s' (mean of squares '%s', eps %g) computed in "
                      "fp16: the squares overflow for |x| > 256", milk_dtype_name(dt),
                      p.x->name, p.mean->name, p.eps);
}

static milk_status unary(milk_rule_run *rr, milk_op *op, const char *type, milk_var *x,
                         milk_var **out)
{
    char base[256];
    snprintf(base, sizeof base, "%s_%s", op->name, type);
    milk_input in[] = {{"x", x}};
    return milk_fix_op(rr, op, type, base, in, 1, out);
}

static milk_status binary(milk_rule_run *rr, milk_op *op, const char *type, milk_var *x,
                          milk_var *y, milk_var **out)
{
    char base[256];
    snprintf(base, sizeof base, "%s_%s", op->name, type);
    milk_input in[] = {{"x", x}, {"y", y}};
    return milk_fix_op(rr, op, type, base, in, 2, out);
}

static milk_status reduce(milk_rule_run *rr, milk_op *op, const char *type, milk_var *x,
                          milk_var *axes, milk_var **out)
{
    char base[256];
    milk_var *keep;
    snprintf(base, sizeof base, "%s_%s_keep_dims", op->name, type);
    MILK_TRY(milk_fix_bool(rr, op, base, true, &keep));
    snprintf(base, sizeof base, "%s_%s", op->name, type);
    milk_input in[] = {{"x", x}, {"axes", axes}, {"keep_dims", keep}};
    return milk_fix_op(rr, op, type, base, in, 3, out);
}

/* s = max(reduce_max(|x|), 1); xs = x / s;
 * y = xs * rsqrt(mean(xs * xs) + eps / (s * s), epsilon = 0). */
milk_status milk_fix_rmsnorm_eps(milk_rule_run *rr, milk_op *op)
{
    rms p;
    rms_of(op, &p);
    milk_dtype dt = p.x->type.dtype;
    milk_var *axes, *one, *eps, *zero, *ab, *mx, *s, *xs, *q, *m, *s2, *es, *a, *r, *y;
    char base[256];
    MILK_TRY(milk_fix_param(rr, (milk_op *)p.mean, "axes", &axes));
    snprintf(base, sizeof base, "%s_one", op->name);
    MILK_TRY(milk_fix_float(rr, op, base, dt, 1.0, &one));
    snprintf(base, sizeof base, "%s_eps", op->name);
    MILK_TRY(milk_fix_float(rr, op, base, dt, p.eps, &eps));
    snprintf(base, sizeof base, "%s_rsqrt_epsilon", op->name);
    MILK_TRY(milk_fix_float(rr, op, base, dt, 0.0, &zero));
    MILK_TRY(unary(rr, op, "abs", p.x, &ab));
    MILK_TRY(reduce(rr, op, "reduce_max", ab, axes, &mx));
    MILK_TRY(binary(rr, op, "maximum", mx, one, &s));
    MILK_TRY(binary(rr, op, "real_div", p.x, s, &xs));
    MILK_TRY(binary(rr, op, "mul", xs, xs, &q));
    MILK_TRY(reduce(rr, op, "reduce_mean", q, axes, &m));
    MILK_TRY(binary(rr, op, "mul", s, s, &s2));
    MILK_TRY(binary(rr, op, "real_div", eps, s2, &es));
    MILK_TRY(binary(rr, op, "add", m, es, &a));
    snprintf(base, sizeof base, "%s_rsqrt", op->name);
    milk_input rin[] = {{"x", a}, {"epsilon", zero}};
    MILK_TRY(milk_fix_op(rr, op, "rsqrt", base, rin, 2, &r));
    MILK_TRY(binary(rr, op, "mul", xs, r, &y));
    return milk_fix_replace(rr, op, y);
}
