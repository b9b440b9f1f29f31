/* fix_layout.c: rules on attention, slicing, gathering and prelu:
 * sdpa-gpu-batch (scaled_dot_product_attention decomposed into matmul,
 * softmax, matmul), slice-fp16-old (fp32 around the slice), slice-to-zero
 * (the end MIL computes, 0, instead of one before index 0), gather-rank6 (scalar
 * indices as [1], squeeze after) and prelu-scalar (alpha broadcast to C). */
#include "rules.h"

#include <math.h>
#include <stdlib.h>

static milk_status op1(milk_rule_run *rr, milk_op *at, const char *type,
                       const char *suffix, const milk_input *in, int n,
                       milk_var **out)
{
    char base[256];
    snprintf(base, sizeof base, "%s_%s", at->name, suffix);
    return milk_fix_op(rr, at, type, base, in, n, out);
}

/* ---- sdpa-gpu-batch ------------------------------------------------------------------ */

void milk_match_sdpa_gpu_batch(milk_rule_run *rr, const milk_op *op)
{
    if (!op) return; /* no function-level condition */
    const milk_tensor_type *q = milk_op_in_type(op, "query");
    if (!milk_rule_is(op, "scaled_dot_product_attention") || !q || q->rank < 3)
        return;
    if (q->dims[0] >= 10)
        milk_rule_matched(rr, op, "batch %lld >= 10", (long long)q->dims[0]);
}

/* The mask applied to the scaled scores: added when float; when bool,
 * False positions become -inf (select), as the fused op does. */
static milk_status apply_mask(milk_rule_run *rr, milk_op *op, milk_var *s,
                              milk_var **out)
{
    milk_var *mask = milk_op_var(op, "attn_mask");
    *out = s;
    if (!mask) return MILK_OK;
    if (mask->type.dtype != MILK_DTYPE_BOOL) {
        milk_input in[] = {{"x", s}, {"y", mask}};
        return op1(rr, op, "add", "masked", in, 2, out);
    }
    milk_var *ninf;
    char base[256];
    snprintf(base, sizeof base, "%s_ninf", op->name);
    MILK_TRY(milk_fix_float(rr, op, base, s->type.dtype, -INFINITY, &ninf));
    milk_input in[] = {{"cond", mask}, {"a", s}, {"b", ninf}};
    return op1(rr, op, "select", "masked", in, 3, out);
}

milk_status milk_fix_sdpa_decompose(milk_rule_run *rr, milk_op *op)
{
    milk_var *q = milk_op_var(op, "query"), *k = milk_op_var(op, "key");
    milk_var *v = milk_op_var(op, "value"), *f, *t, *scale, *axis;
    milk_var *scores, *scaled, *masked, *w, *y;
    if (!q || !k || !v || (milk_op_arg(op, "attn_mask") && !milk_op_var(op, "attn_mask"))) {
        milk_fix_decline(rr, "an input is bound to an inline value");
        return MILK_OK;
    }
    int64_t E = q->type.dims[q->type.rank - 1];
    char base[256];
    snprintf(base, sizeof base, "%s_false", op->name);
    MILK_TRY(milk_fix_bool(rr, op, base, false, &f));
    snprintf(base, sizeof base, "%s_true", op->name);
    MILK_TRY(milk_fix_bool(rr, op, base, true, &t));
    snprintf(base, sizeof base, "%s_scale", op->name);
    MILK_TRY(milk_fix_float(rr, op, base, q->type.dtype, 1.0 / sqrt((double)E), &scale));
    snprintf(base, sizeof base, "%s_axis", op->name);
    MILK_TRY(milk_fix_int(rr, op, base, -1, &axis));
    milk_input qk[] = {{"x", q}, {"y", k}, {"transpose_x", f}, {"transpose_y", t}};
    MILK_TRY(op1(rr, op, "matmul", "scores", qk, 4, &scores));
    milk_input sc[] = {{"x", scores}, {"y", scale}};
    MILK_TRY(op1(rr, op, "mul", "scaled", sc, 2, &scaled));
    MILK_TRY(apply_mask(rr, op, scaled, &masked));
    milk_input sm[] = {{"x", masked}, {"axis", axis}};
    MILK_TRY(op1(rr, op, "softmax", "weights", sm, 2, &w));
    milk_input wv[] = {{"x", w}, {"y", v}, {"transpose_x", f}, {"transpose_y", f}};
    MILK_TRY(op1(rr, op, "matmul", "out", wv, 4, &y));
    return milk_fix_replace(rr, op, y);
}

/* ---- slice-fp16-old ------------------------------------------------------------------- */

void milk_match_slice_fp16_old(milk_rule_run *rr, const milk_op *op)
{
    if (!op) return; /* no function-level condition */
    const milk_tensor_type *x = milk_op_in_type(op, "x");
    if (!milk_rule_is(op, "slice_by_index") || !x || !milk_op_var(op, "x")) return;
    /* only a declared fp16 slice: the fix computes it in fp32 */
    if (x->dtype == MILK_DTYPE_FP16)
        milk_rule_matched(rr, op, "slice_by_index of fp16, target %s",
                      milk_target_name(rr->target));
}

milk_status milk_fix_slice_fp16(milk_rule_run *rr, milk_op *op)
{
    static const char *const skip[] = {"x", NULL};
    milk_var *x = milk_op_var(op, "x"), *to32, *to16, *x32, *s32, *y;
    char base[256];
    snprintf(base, sizeof base, "%s_dtype_fp32", op->name);
    MILK_TRY(milk_fix_string(rr, op, base, "fp32", &to32));
    snprintf(base, sizeof base, "%s_dtype_fp16", op->name);
    MILK_TRY(milk_fix_string(rr, op, base, "fp16", &to16));
    milk_input c1[] = {{"x", x}, {"dtype", to32}};
    MILK_TRY(op1(rr, op, "cast", "fp32", c1, 2, &x32));
    milk_input in[16] = {{"x", x32}};
    int n = 1;
    MILK_TRY(milk_fix_copy_args(rr, op, skip, in, &n, 16));
    MILK_TRY(op1(rr, op, "slice_by_index", "in_fp32", in, n, &s32));
    milk_input c2[] = {{"x", s32}, {"dtype", to16}};
    MILK_TRY(op1(rr, op, "cast", "fp16", c2, 2, &y));
    return milk_fix_replace(rr, op, y);
}

/* ---- slice-to-zero ------------------------------------------------------------------- */

/* A backward slice whose end lies before index 0 means "through index 0"
 * to NumPy and ONNX, but MIL clamps a negative end at 0 (coremltools'
 * value inference, and the interpreter), which stops before index 0. The
 * rewrite writes the end MIL computes (0) so that the program says what
 * it computes on every reader; a converter that wants index 0 must emit
 * end_mask instead (the ONNX Runtime workaround). */

/* The first axis sliced backwards to an end before index 0 without
 * end_mask, or -1. */
static int slice_to_zero_axis(milk_ctx *ctx, const milk_op *op, int64_t *end)
{
    const milk_tensor_type *x = milk_op_in_type(op, "x");
    int64_t stride[MILK_MAX_RANK];
    uint8_t mask[MILK_MAX_RANK] = {0};
    int ne = 0, ns = 0;
    if (!milk_rule_is(op, "slice_by_index") || !x || x->rank < 1) return -1;
    if (milk_op_ints(ctx, op, "end", end, MILK_MAX_RANK, &ne, NULL) != MILK_OK ||
        milk_op_ints(ctx, op, "stride", stride, MILK_MAX_RANK, &ns, NULL) != MILK_OK ||
        ne != x->rank || ns != x->rank)
        return -1;
    const milk_value *em = milk_op_const(op, "end_mask");
    for (int i = 0; em && i < x->rank && i < milk_tensor_type_count(&em->type); i++) {
        int64_t b = 0;
        if (milk_value_get_i64(ctx, em, i, &b) == MILK_OK) mask[i] = b != 0;
    }
    for (int i = 0; i < x->rank; i++)
        if (stride[i] < 0 && !mask[i] && x->dims[i] >= 0 && end[i] < -x->dims[i])
            return i;
    return -1;
}

void milk_match_slice_to_zero(milk_rule_run *rr, const milk_op *op)
{
    if (!op) return; /* no function-level condition */
    int64_t end[MILK_MAX_RANK];
    int i = slice_to_zero_axis(NULL, op, end);
    if (i >= 0)
        milk_rule_matched(rr, op, "axis %d: stride < 0, end %lld before index 0 "
                                  "(MIL stops before index 0, NumPy and ONNX "
                                  "include it)",
                          i, (long long)end[i]);
}

milk_status milk_fix_slice_to_zero(milk_rule_run *rr, milk_op *op)
{
    int64_t end[MILK_MAX_RANK];
    int n = 0;
    for (int i; (i = slice_to_zero_axis(rr->ctx, op, end)) >= 0; n++) {
        const milk_tensor_type *x = milk_op_in_type(op, "x");
        end[i] = 0;
        milk_var *v;
        char base[256];
        snprintf(base, sizeof base, "%s_end", op->name);
        MILK_TRY(milk_fix_ints(rr, op, base, end, x->rank, &v));
        MILK_TRY(milk_fix_rebind(rr, op, "end", v));
        milk_fix_note(rr, "slice_by_index '%s': end of axis %d written as 0", op->name, i);
        if (n > MILK_MAX_RANK) break;
    }
    return milk_op_reinfer(rr->ctx, op);
}

/* ---- gather-rank6 -------------------------------------------------------------------- */

void milk_match_gather_rank6(milk_rule_run *rr, const milk_op *op)
{
    if (!op) return; /* no function-level condition */
    const milk_tensor_type *x = milk_op_in_type(op, "x");
    const milk_tensor_type *ind = milk_op_in_type(op, "indices");
    if (!milk_rule_is(op, "gather") || !x || !ind) return;
    if (x->rank == 5 && ind->rank == 0)
        milk_rule_matched(rr, op, "scalar indices on rank-5 data");
}

/* Indices of shape [1]: the same data under a new type when constant,
 * expand_dims otherwise. */
static milk_status indices_1d(milk_rule_run *rr, milk_op *op, milk_var **out)
{
    milk_var *ind;
    MILK_TRY(milk_fix_param(rr, op, "indices", &ind));
    const milk_value *c = milk_var_const(ind);
    char base[256];
    snprintf(base, sizeof base, "%s_indices", op->name);
    if (c && c->kind == MILK_VALUE_TENSOR) {
        milk_value *v = milk_arena_memdup(rr->p->arena, c, sizeof *c);
        if (v) {
            v->type.rank = 1;
            v->type.dims[0] = 1;
        }
        return milk_fix_const_value(rr, op, base, v, out);
    }
    milk_var *axes;
    int64_t zero = 0;
    MILK_TRY(milk_fix_ints(rr, op, base, &zero, 1, &axes));
    milk_input in[] = {{"x", ind}, {"axes", axes}};
    return milk_fix_op(rr, op, "expand_dims", base, in, 2, out);
}

milk_status milk_fix_gather_scalar(milk_rule_run *rr, milk_op *op)
{
    static const char *const skip[] = {"indices", NULL};
    const milk_tensor_type *x = milk_op_in_type(op, "x");
    int64_t axis;
    MILK_TRY(milk_op_int(rr->ctx, op, "axis", 0, &axis));
    if (axis < 0) axis += x->rank;
    milk_input in[16] = {{"indices", NULL}};
    int n = 1;
    MILK_TRY(indices_1d(rr, op, &in[0].var));
    MILK_TRY(milk_fix_copy_args(rr, op, skip, in, &n, 16));
    milk_var *g, *axes, *y;
    MILK_TRY(op1(rr, op, "gather", "1d", in, n, &g));
    char base[256];
    snprintf(base, sizeof base, "%s_squeeze_axes", op->name);
    MILK_TRY(milk_fix_ints(rr, op, base, &axis, 1, &axes));
    milk_input sq[] = {{"x", g}, {"axes", axes}};
    MILK_TRY(op1(rr, op, "squeeze", "squeeze", sq, 2, &y));
    return milk_fix_replace(rr, op, y);
}

/* ---- prelu-scalar ------------------------------------------------------------------- */

void milk_match_prelu_scalar(milk_rule_run *rr, const milk_op *op)
{
    if (!op) return; /* no function-level condition */
    const milk_tensor_type *x = milk_op_in_type(op, "x");
    const milk_tensor_type *a = milk_op_in_type(op, "alpha");
    if (!milk_rule_is(op, "prelu") || !x || !a || x->rank < 2) return;
    if (milk_tensor_type_count(a) == 1 && x->dims[1] > 1)
        milk_rule_matched(rr, op, "one alpha for %lld channels", (long long)x->dims[1]);
}

milk_status milk_fix_prelu_scalar(milk_rule_run *rr, milk_op *op)
{
    const milk_tensor_type *x = milk_op_in_type(op, "x");
    const milk_value *a = milk_op_const(op, "alpha");
    int64_t C = x->dims[1];
    double v;
    if (!a) {
        milk_fix_decline(rr, "alpha is not a constant");
        return MILK_OK;
    }
    MILK_TRY(milk_value_get_f64(rr->ctx, a, 0, &v));
    milk_tensor_type t = {a->type.dtype, 1, {C}};
    bool half = t.dtype == MILK_DTYPE_FP16;
    char *buf = malloc((size_t)C * (half ? 2 : 4));
    if (!buf) return milk_errorf(rr->ctx, MILK_ERR_NOMEM, "out of memory");
    for (int64_t c = 0; c < C; c++) {
        if (half) ((uint16_t *)buf)[c] = milk_fp32_to_fp16((float)v);
        else ((float *)buf)[c] = (float)v;
    }
    char base[256];
    milk_var *alpha;
    snprintf(base, sizeof base, "%s_alpha", op->name);
    milk_status s = milk_fix_const(rr, op, base, &t, buf, &alpha);
    free(buf);
    MILK_TRY(s);
    MILK_TRY(milk_fix_rebind(rr, op, "alpha", alpha));
    milk_fix_note(rr, "prelu '%s': alpha broadcast to [%lld]", op->name, (long long)C);
    return milk_op_reinfer(rr->ctx, op);
}
