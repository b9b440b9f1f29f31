/* fix_convt16.c: convt-stride16 (docs/coreml-defects.md): a conv_transpose
 * with stride 16 on an axis fails to compile on iOS devices
 * (CreateBnnsGraphProgramFromMIL, apple/coremltools#2450). Rewritten in
 * two strided steps and a stride-1 conv_transpose: a transposed
 * convolution with stride s is the same kernel, stride 1, applied to x
 * with s - 1 zeros inserted between its elements along that axis, and two
 * depthwise conv_transposes of stride 4 with a kernel of one 1 insert the
 * 15 zeros ((L - 1) * 4 + 1, twice: (L - 1) * 16 + 1). */
#include "rules.h"

#include <stdlib.h>

/* The conv_transpose's strides and spatial rank; false if unreadable. */
static bool read_strides(const milk_op *op, int64_t *s, int *ns)
{
    const milk_tensor_type *w = milk_op_in_type(op, "weight");
    if (!w || w->rank < 3 || w->rank > 5) return false;
    *ns = w->rank - 2;
    int got = 0;
    bool present = false;
    if (milk_op_ints(NULL, op, "strides", s, 3, &got, &present) != MILK_OK) return false;
    if (!present)
        for (int i = 0; i < *ns; i++) s[i] = 1;
    else if (got != *ns)
        return false;
    return true;
}

void milk_match_convt_stride16(milk_rule_run *rr, const milk_op *op)
{
    if (!op || !milk_rule_is(op, "conv_transpose")) return;
    int64_t s[3];
    int ns;
    if (!read_strides(op, s, &ns)) return;
    for (int i = 0; i < ns; i++)
        if (s[i] == 16) {
            milk_rule_matched(rr, op, "stride 16 on spatial axis %d", i);
            return;
        }
}

milk_status milk_fix_convt_stride16(milk_rule_run *rr, milk_op *op)
{
    const char *pt = "valid";
    int64_t s[3];
    int ns;
    MILK_TRY(milk_op_str(rr->ctx, op, "pad_type", "valid", &pt));
    if (milk_op_arg(op, "output_shape")) {
        milk_fix_decline(rr, "it has output_shape (convt-output-shape removes it first)");
        return MILK_OK;
    }
    if (strcmp(pt, "valid") != 0 && strcmp(pt, "custom") != 0) {
        milk_fix_decline(rr, "pad_type '%s' depends on the stride", pt);
        return MILK_OK;
    }
    read_strides(op, s, &ns);
    milk_var *x = milk_op_var(op, "x");
    int64_t C = x->type.dims[1];
    if (C < 1 || C > (INT64_C(1) << 20)) {
        milk_fix_decline(rr, "the channel count is not known");
        return MILK_OK;
    }
    /* one 1 per channel: weight [C, 1, 1(, 1, 1)], groups C */
    milk_tensor_type wt = {x->type.dtype, ns + 2, {C, 1, 1, 1, 1}};
    bool half = wt.dtype == MILK_DTYPE_FP16;
    void *ones = malloc((size_t)C * (half ? 2 : 4));
    if (!ones) return milk_errorf(rr->ctx, MILK_ERR_NOMEM, "out of memory");
    for (int64_t c = 0; c < C; c++) {
        if (half) ((uint16_t *)ones)[c] = 0x3c00; /* 1.0 */
        else ((float *)ones)[c] = 1.0f;
    }
    char base[256];
    milk_var *w1, *st, *st1, *dil, *groups, *valid, *z = x;
    snprintf(base, sizeof base, "%s_zeros_weight", op->name);
    milk_status status = milk_fix_const(rr, op, base, &wt, ones, &w1);
    free(ones);
    MILK_TRY(status);
    int64_t step[3], rest[3], unit[3] = {1, 1, 1};
    for (int i = 0; i < ns; i++) {
        step[i] = s[i] == 16 ? 4 : 1;
        rest[i] = s[i] == 16 ? 1 : s[i];
    }
    snprintf(base, sizeof base, "%s_zeros_strides", op->name);
    MILK_TRY(milk_fix_ints(rr, op, base, step, ns, &st));
    snprintf(base, sizeof base, "%s_zeros_dilations", op->name);
    MILK_TRY(milk_fix_ints(rr, op, base, unit, ns, &dil));
    snprintf(base, sizeof base, "%s_zeros_groups", op->name);
    MILK_TRY(milk_fix_int(rr, op, base, C, &groups));
    snprintf(base, sizeof base, "%s_zeros_pad_type", op->name);
    MILK_TRY(milk_fix_string(rr, op, base, "valid", &valid));
    for (int k = 0; k < 2; k++) {
        snprintf(base, sizeof base, "%s_zeros_%d", op->name, k + 1);
        milk_input in[] = {{"x", z}, {"weight", w1}, {"strides", st}, {"dilations", dil},
                           {"groups", groups}, {"pad_type", valid}};
        MILK_TRY(milk_fix_op(rr, op, "conv_transpose", base, in, 6, &z));
    }
    snprintf(base, sizeof base, "%s_strides", op->name);
    MILK_TRY(milk_fix_ints(rr, op, base, rest, ns, &st1));
    MILK_TRY(milk_fix_rebind(rr, op, "x", z));
    MILK_TRY(milk_fix_rebind(rr, op, "strides", st1));
    milk_fix_note(rr, "'%s' now reads x with 15 zeros inserted, stride 1 where it was 16",
                  op->name);
    return milk_op_reinfer(rr->ctx, op);
}
