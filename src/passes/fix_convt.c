/* fix_convt.c: the conv_transpose rules (convt1d-bias, convt-output-shape,
 * convt-asym-pad, convt-fp16-shift): their matchers and two rewrites.
 *
 * Lift (convt1d-bias): a rank-3 conv_transpose becomes expand_dims(axes =
 * [-1]), a rank-4 conv_transpose whose kernel has a trailing dim of 1
 * (strides (s,1), dilations (d,1), pad (p0,p1,0,0), bias kept), then
 * squeeze(axes = [-1]). The extra axis has size 1 everywhere, so each
 * output element is the same sum.
 *
 * Normalize (the others): conv_transpose computes the full transposed
 * convolution of length F = (D - 1) s + (K - 1) d + 1 per axis and keeps
 * the window [pb, pb + O), where pb is the pad before and O the output
 * size (output_shape, or F - pb - pa); positions past F hold only the
 * bias. The rewrite gives the op symmetric pads m = min(pb, F - pb - O),
 * no output_shape, and crops the rest with slice_by_index. When the window
 * runs past F (PyTorch's output_padding), t zero taps appended to the
 * kernel make F' = F + t d cover it, and those positions still get only
 * the bias, in the same fused op. */
#include "rules.h"

#include <stdlib.h>

#define MAX_S 3 /* spatial axes */

static bool asym_pads(const milk_op *op, int S)
{
    const char *pt = "valid";
    int64_t pad[2 * MAX_S];
    int n = 0;
    if (milk_op_str(NULL, op, "pad_type", "valid", &pt) != MILK_OK ||
        strcmp(pt, "custom") != 0 ||
        milk_op_ints(NULL, op, "pad", pad, 2 * MAX_S, &n, NULL) != MILK_OK)
        return false;
    for (int i = 0; i < S && 2 * i + 1 < n; i++)
        if (pad[2 * i] != pad[2 * i + 1]) return true;
    return false;
}

static bool convt_ok(const milk_op *op, const milk_tensor_type **x)
{
    if (!milk_rule_is(op, "conv_transpose")) return false;
    *x = milk_op_in_type(op, "x");
    return *x && (*x)->rank >= 3 && (*x)->rank <= 5;
}

void milk_match_convt1d_bias(milk_rule_run *rr, const milk_op *op)
{
    if (!op) return; /* no function-level condition */
    const milk_tensor_type *x;
    char a[96], b[96];
    if (!convt_ok(op, &x) || x->rank != 3 || !milk_op_arg(op, "bias")) return;
    milk_rule_matched(rr, op, "1-D conv_transpose with a bias: %s -> %s",
                  milk_rule_shape(x, a, sizeof a),
                  milk_rule_shape(&op->outputs[0]->type, b, sizeof b));
}

void milk_match_convt_output_shape(milk_rule_run *rr, const milk_op *op)
{
    if (!op) return; /* no function-level condition */
    const milk_tensor_type *x;
    char a[96];
    if (!convt_ok(op, &x) || !milk_op_arg(op, "output_shape")) return;
    milk_rule_matched(rr, op, "output_shape %s",
                  milk_rule_shape(&op->outputs[0]->type, a, sizeof a));
}

void milk_match_convt_asym_pad(milk_rule_run *rr, const milk_op *op)
{
    if (!op) return; /* no function-level condition */
    const milk_tensor_type *x;
    int64_t pad[2 * MAX_S];
    int n = 0;
    if (!convt_ok(op, &x) || !asym_pads(op, x->rank - 2)) return;
    milk_op_ints(NULL, op, "pad", pad, 2 * MAX_S, &n, NULL);
    char buf[128];
    size_t k = 0;
    for (int i = 0; i < n && k < sizeof buf; i++)
        k += (size_t)snprintf(buf + k, sizeof buf - k, "%s%lld", i ? ", " : "",
                              (long long)pad[i]);
    milk_rule_matched(rr, op, "pad [%s]: begin and end differ", buf);
}

void milk_match_convt_fp16_shift(milk_rule_run *rr, const milk_op *op)
{
    if (!op) return; /* no function-level condition */
    const milk_tensor_type *x;
    if (!convt_ok(op, &x) || x->rank != 3 || !milk_rule_fp16(rr, x->dtype))
        return;
    bool shape = milk_op_arg(op, "output_shape") != NULL;
    bool asym = asym_pads(op, 1);
    if (shape || asym)
        milk_rule_matched(rr, op, "1-D conv_transpose in fp16 with %s%s%s",
                      shape ? "output_shape" : "", shape && asym ? " and " : "",
                      asym ? "asymmetric pads" : "");
}

/* ---- lift: 1-D to 2-D -------------------------------------------------------- */

/* The weight with a trailing kernel dim of 1: the same data under a new
 * type when it is a constant, expand_dims otherwise. */
static milk_status lift_weight(milk_rule_run *rr, milk_op *op, milk_var **out)
{
    milk_var *w;
    MILK_TRY(milk_fix_param(rr, op, "weight", &w));
    const milk_value *c = milk_var_const(w);
    char base[256];
    snprintf(base, sizeof base, "%s_weight_2d", op->name);
    if (c && c->kind == MILK_VALUE_TENSOR) {
        milk_value *v = milk_arena_memdup(rr->p->arena, c, sizeof *c);
        if (v) v->type.dims[v->type.rank++] = 1;
        return milk_fix_const_value(rr, op, base, v, out);
    }
    milk_var *axes;
    int64_t last = -1;
    char abase[256];
    snprintf(abase, sizeof abase, "%s_weight_axes_2d", op->name);
    MILK_TRY(milk_fix_ints(rr, op, abase, &last, 1, &axes));
    milk_input in[] = {{"x", w}, {"axes", axes}};
    return milk_fix_op(rr, op, "expand_dims", base, in, 2, out);
}

/* strides, dilations, pad and output_shape of the 2-D op. */
static milk_status lift_params(milk_rule_run *rr, milk_op *op,
                               milk_input *in, int *n)
{
    int64_t s[2], d[2], pad[4] = {0}, shape[4];
    int ns = 0;
    bool has_shape = false;
    MILK_TRY(milk_fix_read_ints(rr, op, "strides", 1, 1, s));
    MILK_TRY(milk_fix_read_ints(rr, op, "dilations", 1, 1, d));
    MILK_TRY(milk_fix_read_ints(rr, op, "pad", 2, 0, pad));
    MILK_TRY(milk_op_ints(rr->ctx, op, "output_shape", shape, 3, &ns, &has_shape));
    s[1] = d[1] = 1;
    pad[2] = pad[3] = 0;
    shape[3] = 1;
    char base[256];
    snprintf(base, sizeof base, "%s_strides_2d", op->name);
    in[*n].param = "strides";
    MILK_TRY(milk_fix_ints(rr, op, base, s, 2, &in[(*n)++].var));
    snprintf(base, sizeof base, "%s_dilations_2d", op->name);
    in[*n].param = "dilations";
    MILK_TRY(milk_fix_ints(rr, op, base, d, 2, &in[(*n)++].var));
    snprintf(base, sizeof base, "%s_pad_2d", op->name);
    in[*n].param = "pad";
    MILK_TRY(milk_fix_ints(rr, op, base, pad, 4, &in[(*n)++].var));
    if (has_shape && ns == 3) {
        snprintf(base, sizeof base, "%s_output_shape_2d", op->name);
        in[*n].param = "output_shape";
        MILK_TRY(milk_fix_ints(rr, op, base, shape, 4, &in[(*n)++].var));
    }
    return MILK_OK;
}

milk_status milk_fix_convt1d_bias(milk_rule_run *rr, milk_op *op)
{
    static const char *const skip[] = {"x", "weight", "strides", "dilations",
                                       "pad", "output_shape", NULL};
    milk_input in[16];
    int n = 0;
    milk_var *axes, *x2, *y2, *y;
    int64_t last = -1;
    char base[256];
    milk_input ex[] = {{"x", milk_op_var(op, "x")}, {"axes", NULL}};
    if (!ex[0].var) {
        milk_fix_decline(rr, "x is not a var");
        return MILK_OK;
    }
    snprintf(base, sizeof base, "%s_axes_2d", op->name);
    MILK_TRY(milk_fix_ints(rr, op, base, &last, 1, &axes));
    ex[1].var = axes;
    snprintf(base, sizeof base, "%s_x_2d", op->name);
    MILK_TRY(milk_fix_op(rr, op, "expand_dims", base, ex, 2, &x2));
    in[n].param = "x";
    in[n++].var = x2;
    in[n].param = "weight";
    MILK_TRY(lift_weight(rr, op, &in[n++].var));
    MILK_TRY(lift_params(rr, op, in, &n));
    MILK_TRY(milk_fix_copy_args(rr, op, skip, in, &n, 16));
    snprintf(base, sizeof base, "%s_2d", op->name);
    MILK_TRY(milk_fix_op(rr, op, "conv_transpose", base, in, n, &y2));
    milk_input sq[] = {{"x", y2}, {"axes", axes}};
    MILK_TRY(milk_fix_op(rr, op, "squeeze", op->name, sq, 2, &y));
    return milk_fix_replace(rr, op, y);
}

/* ---- normalize: no output_shape, symmetric pads, explicit crop ---------------- */

typedef struct convt_plan {
    int S;
    int64_t m[MAX_S];      /* symmetric pad of the new op */
    int64_t taps[MAX_S];   /* zero taps appended to the kernel */
    int64_t begin[MAX_S];  /* crop start in the new op's output */
    int64_t out[MAX_S];    /* the output size to keep */
    bool crop, extend;
} convt_plan;

/* Pad before the window, as the kernel places it for each pad_type. */
static int64_t pad_before(const char *pt, const int64_t *pad, int i,
                          int64_t full, int64_t out)
{
    if (strcmp(pt, "custom") == 0) return pad[2 * i];
    if (strcmp(pt, "same") == 0) {
        int64_t total = full - out;
        return total > 0 ? total / 2 : 0;
    }
    return 0;
}

static milk_status plan_convt(milk_rule_run *rr, milk_op *op, convt_plan *pl)
{
    const milk_tensor_type *x = milk_op_in_type(op, "x");
    const milk_tensor_type *w = milk_op_in_type(op, "weight");
    const milk_tensor_type *y = &op->outputs[0]->type;
    int64_t s[MAX_S], d[MAX_S], pad[2 * MAX_S];
    const char *pt;
    memset(pl, 0, sizeof *pl);
    pl->S = x->rank - 2;
    MILK_TRY(milk_fix_read_ints(rr, op, "strides", pl->S, 1, s));
    MILK_TRY(milk_fix_read_ints(rr, op, "dilations", pl->S, 1, d));
    MILK_TRY(milk_op_str(rr->ctx, op, "pad_type", "valid", &pt));
    memset(pad, 0, sizeof pad);
    if (strcmp(pt, "custom") == 0)
        MILK_TRY(milk_fix_read_ints(rr, op, "pad", 2 * pl->S, 0, pad));
    for (int i = 0; i < pl->S; i++) {
        int64_t D = x->dims[2 + i], K = w->dims[2 + i], O = y->dims[2 + i];
        if (D < 1 || K < 1 || O < 1) {
            milk_fix_decline(rr, "sizes are not all known");
            return MILK_OK;
        }
        int64_t full = (D - 1) * s[i] + (K - 1) * d[i] + 1;
        int64_t pb = pad_before(pt, pad, i, full, O);
        int64_t after = full - pb - O;
        if (after < 0) {
            pl->taps[i] = (-after + d[i] - 1) / d[i];
            after += pl->taps[i] * d[i];
            pl->extend = true;
        }
        pl->m[i] = pb < after ? pb : after;
        pl->begin[i] = pb - pl->m[i];
        pl->out[i] = O;
        pl->crop |= pl->begin[i] > 0 || after > pl->m[i];
    }
    return MILK_OK;
}

/* Copy the kernel rows of `src` (dims [.., K]) into `dst` (dims [.., K +
 * taps]) for the innermost axis `axis` of S, zero filling the new taps.
 * Works one axis at a time on element-size bytes. */
static void extend_axis(const char *src, char *dst, const int64_t *dims,
                        int rank, int axis, int64_t taps, size_t esz)
{
    int64_t outer = milk_dims_span(dims, 0, axis);
    int64_t inner = milk_dims_span(dims, axis + 1, rank);
    int64_t k = dims[axis], k2 = k + taps;
    for (int64_t o = 0; o < outer; o++) { /* [outer][k][inner] -> [outer][k2][inner] */
        memcpy(dst + (size_t)(o * k2 * inner) * esz,
               src + (size_t)(o * k * inner) * esz, (size_t)(k * inner) * esz);
        memset(dst + (size_t)((o * k2 + k) * inner) * esz, 0,
               (size_t)(taps * inner) * esz);
    }
}

/* A copy of the constant weight with the zero taps of the plan. */
static milk_status extended_weight(milk_rule_run *rr, milk_op *op,
                                   const convt_plan *pl, milk_var **out)
{
    milk_var *w = milk_op_var(op, "weight");
    const milk_value *c = w ? milk_var_const(w) : milk_op_const(op, "weight");
    if (!c) {
        milk_fix_decline(rr, "output_padding needs a constant weight");
        return MILK_OK;
    }
    int bits = milk_dtype_bits(c->type.dtype);
    size_t esz = (size_t)bits / 8;
    milk_tensor_type t = c->type;
    uint64_t nb;
    if (!esz || !milk_value_nbytes(c, &nb))
        return milk_errorf(rr->ctx, MILK_ERR_UNSUPPORTED, "weight of dtype %s",
                           milk_dtype_name(c->type.dtype));
    char *cur = malloc(nb ? nb : 1);
    milk_status s = cur ? milk_value_read(rr->ctx, c, cur)
                        : milk_errorf(rr->ctx, MILK_ERR_NOMEM, "out of memory");
    for (int i = 0; s == MILK_OK && i < pl->S; i++) {
        if (!pl->taps[i]) continue;
        int64_t dims[MILK_MAX_RANK];
        memcpy(dims, t.dims, sizeof dims);
        t.dims[2 + i] += pl->taps[i];
        char *next = malloc((size_t)milk_tensor_type_count(&t) * esz + 1);
        if (!next) {
            s = milk_errorf(rr->ctx, MILK_ERR_NOMEM, "out of memory");
            break;
        }
        extend_axis(cur, next, dims, t.rank, 2 + i, pl->taps[i], esz);
        free(cur);
        cur = next;
    }
    char base[256];
    snprintf(base, sizeof base, "%s_weight_padded", op->name);
    if (s == MILK_OK) s = milk_fix_const(rr, op, base, &t, cur, out);
    free(cur);
    return s;
}

static milk_status crop(milk_rule_run *rr, milk_op *op, const convt_plan *pl,
                        milk_var *y, milk_var **out)
{
    int rank = pl->S + 2;
    int64_t begin[MILK_MAX_RANK] = {0}, end[MILK_MAX_RANK] = {0};
    bool mask[MILK_MAX_RANK] = {true, true};
    for (int i = 0; i < pl->S; i++) {
        begin[2 + i] = pl->begin[i];
        end[2 + i] = pl->begin[i] + pl->out[i];
    }
    char base[256];
    milk_input in[5] = {{"x", y}, {"begin", NULL}, {"end", NULL},
                        {"begin_mask", NULL}, {"end_mask", NULL}};
    snprintf(base, sizeof base, "%s_crop_begin", op->name);
    MILK_TRY(milk_fix_ints(rr, op, base, begin, rank, &in[1].var));
    snprintf(base, sizeof base, "%s_crop_end", op->name);
    MILK_TRY(milk_fix_ints(rr, op, base, end, rank, &in[2].var));
    snprintf(base, sizeof base, "%s_crop_mask", op->name);
    MILK_TRY(milk_fix_bools(rr, op, base, mask, rank, &in[3].var));
    in[4].var = in[3].var;
    snprintf(base, sizeof base, "%s_crop", op->name);
    return milk_fix_op(rr, op, "slice_by_index", base, in, 5, out);
}

milk_status milk_fix_convt_normalize(milk_rule_run *rr, milk_op *op)
{
    static const char *const skip[] = {"weight", "pad", "pad_type",
                                       "output_shape", NULL};
    convt_plan pl;
    MILK_TRY(plan_convt(rr, op, &pl));
    if (rr->declined[0]) return MILK_OK;
    milk_input in[16];
    int n = 0;
    in[n].param = "weight";
    if (pl.extend) MILK_TRY(extended_weight(rr, op, &pl, &in[n].var));
    else MILK_TRY(milk_fix_param(rr, op, "weight", &in[n].var));
    if (rr->declined[0]) return MILK_OK;
    n++;
    int64_t pad[2 * MAX_S];
    for (int i = 0; i < pl.S; i++) pad[2 * i] = pad[2 * i + 1] = pl.m[i];
    char base[256];
    snprintf(base, sizeof base, "%s_pad_sym", op->name);
    in[n].param = "pad";
    MILK_TRY(milk_fix_ints(rr, op, base, pad, 2 * pl.S, &in[n++].var));
    snprintf(base, sizeof base, "%s_pad_type_sym", op->name);
    in[n].param = "pad_type";
    MILK_TRY(milk_fix_string(rr, op, base, "custom", &in[n++].var));
    MILK_TRY(milk_fix_copy_args(rr, op, skip, in, &n, 16));
    snprintf(base, sizeof base, "%s_sym", op->name);
    milk_var *y;
    MILK_TRY(milk_fix_op(rr, op, "conv_transpose", base, in, n, &y));
    if (pl.crop) MILK_TRY(crop(rr, op, &pl, y, &y));
    return milk_fix_replace(rr, op, y);
}
