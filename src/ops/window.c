/* window.c: output sizes of the sliding-window ops (conv, conv_transpose,
 * max_pool, avg_pool, l2_pool) for each pad type, following coremltools'
 * spatial_dimensions_out_shape and conv_transpose type inference, and the
 * split of a pad type's padding before and after for the kernels. All
 * arithmetic is overflow-checked: sizes come from files. */
#include "infer.h"

#include <strings.h>

milk_status milk_infer_pad_type(milk_infer *ic, const char *param,
                                const char *s, bool ci, milk_pad_type *out)
{
    static const struct { const char *name; milk_pad_type t; } names[] = {
        {"valid", MILK_PAD_VALID},
        {"same", MILK_PAD_SAME},
        {"same_lower", MILK_PAD_SAME_LOWER},
        {"custom", MILK_PAD_CUSTOM},
    };
    for (size_t i = 0; s && i < MILK_ARRAY_LEN(names); i++) {
        if (ci ? strcasecmp(s, names[i].name) : strcmp(s, names[i].name))
            continue;
        *out = names[i].t;
        if (*out == MILK_PAD_SAME_LOWER && ic->opset < MILK_TARGET_IOS16)
            return milk_op_fail(ic->ctx, ic->op, param,
                                "'same_lower' needs deployment target ios16 "
                                "or later");
        return MILK_OK;
    }
    return milk_op_fail(ic->ctx, ic->op, param,
                        "'%s' is not one of valid, same, same_lower, custom",
                        s ? s : "");
}

static milk_status too_large(milk_infer *ic, int i)
{
    return milk_op_fail(ic->ctx, ic->op, NULL,
                        "spatial dimension %d: sizes overflow", i);
}

/* Floor division for a possibly negative numerator, positive d. */
static int64_t floor_div(int64_t a, int64_t d)
{
    int64_t q = a / d;
    return (a % d != 0 && a < 0) ? q - 1 : q;
}

/* (k - 1) * dilation + 1 */
static bool effective_kernel(const milk_window *w, int64_t *keff)
{
    int64_t t;
    if (__builtin_mul_overflow(w->kernel - 1, w->dilation, &t)) return false;
    return !__builtin_add_overflow(t, 1, keff);
}

/* Total padding of one dimension (aggregated_pad in coremltools). */
static bool total_pad(milk_pad_type pt, const milk_window *w, int64_t keff,
                      int64_t *pad)
{
    switch (pt) {
    case MILK_PAD_VALID:
        *pad = 0;
        return true;
    case MILK_PAD_CUSTOM:
        return !__builtin_add_overflow(w->pad[0], w->pad[1], pad);
    default: {
        /* s * ceil(in / s) - in + keff - s, at least 0 */
        int64_t c = w->in / w->stride + (w->in % w->stride != 0), t;
        if (__builtin_mul_overflow(c - 1, w->stride, &t) ||
            __builtin_add_overflow(t, keff, &t))
            return false;
        *pad = t - w->in > 0 ? t - w->in : 0;
        return true;
    }
    }
}

milk_status milk_window_out(milk_infer *ic, milk_pad_type pt,
                            const milk_window *w, bool ceil_mode, int i,
                            int64_t *out)
{
    if (!MILK_DIM_KNOWN(w->in) || !MILK_DIM_KNOWN(w->kernel)) {
        *out = MILK_DIM_UNKNOWN;
        return MILK_OK;
    }
    int64_t keff, pad, num, o;
    if (!effective_kernel(w, &keff) || !total_pad(pt, w, keff, &pad) ||
        __builtin_add_overflow(w->in, pad, &num) ||
        __builtin_sub_overflow(num, keff, &num) ||
        (ceil_mode && __builtin_add_overflow(num, w->stride - 1, &num)))
        return too_large(ic, i);
    o = floor_div(num, w->stride) + 1;
    /* coremltools: drop a last window that would start in the padding
     * after the input, (o - 1) * s >= in + pad / 2, only when pad > 0;
     * compared doubled to stay in integers. */
    if (ceil_mode && pad > 0 && o > 1) {
        int64_t lhs, rhs;
        if (__builtin_mul_overflow(o - 1, 2 * w->stride, &lhs) ||
            __builtin_mul_overflow(w->in, 2, &rhs) ||
            __builtin_add_overflow(rhs, pad, &rhs))
            return too_large(ic, i);
        if (lhs >= rhs) o--;
    }
    if (o < 1)
        return milk_op_fail(ic->ctx, ic->op, NULL,
                            "spatial dimension %d: input %lld, effective "
                            "kernel %lld and padding %lld give output size "
                            "%lld",
                            i, (long long)w->in, (long long)keff,
                            (long long)pad, (long long)o);
    *out = o;
    return MILK_OK;
}

milk_status milk_window_transpose_out(milk_infer *ic, milk_pad_type pt,
                                      const milk_window *w, int i,
                                      int64_t *out)
{
    if (!MILK_DIM_KNOWN(w->in) || !MILK_DIM_KNOWN(w->kernel)) {
        *out = MILK_DIM_UNKNOWN;
        return MILK_OK;
    }
    int64_t keff, o;
    if (!effective_kernel(w, &keff)) return too_large(ic, i);
    if (pt == MILK_PAD_SAME) {
        if (__builtin_mul_overflow(w->in, w->stride, &o))
            return too_large(ic, i);
    } else {
        if (__builtin_mul_overflow(w->in - 1, w->stride, &o) ||
            __builtin_add_overflow(o, keff, &o))
            return too_large(ic, i);
        if (pt == MILK_PAD_CUSTOM &&
            (__builtin_sub_overflow(o, w->pad[0], &o) ||
             __builtin_sub_overflow(o, w->pad[1], &o)))
            return too_large(ic, i);
    }
    if (o < 1)
        return milk_op_fail(ic->ctx, ic->op, NULL,
                            "spatial dimension %d: output size %lld", i,
                            (long long)o);
    *out = o;
    return MILK_OK;
}

bool milk_window_pads(milk_pad_type pt, const milk_window *w, int64_t *before,
                      int64_t *after)
{
    int64_t keff, total;
    if (!effective_kernel(w, &keff) || !total_pad(pt, w, keff, &total))
        return false;
    if (pt == MILK_PAD_CUSTOM) {
        *before = w->pad[0];
        *after = w->pad[1];
        return true;
    }
    *before = pt == MILK_PAD_SAME_LOWER ? total - total / 2 : total / 2;
    *after = total - *before;
    return true;
}
