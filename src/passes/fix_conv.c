/* fix_conv.c: the rules on conv, pooling and their padding parameters:
 * conv2d-edge (explicit pad op, then the conv with pad 0),
 * required-optional (materialize the parameters the runtime requires),
 * same-without-pad (an explicit zero pad) and same-lower-ios15 (custom
 * pads computed from same_lower). */
#include "rules.h"
#include "../ops/infer.h"

#include <strings.h>

#define MAX_S 3

/* Window geometry of a conv or pool op: spatial rank S, kernel, strides,
 * dilations, pad_type and custom pads. */
typedef struct window_op {
    int S;
    int64_t k[MAX_S], s[MAX_S], d[MAX_S], pad[2 * MAX_S];
    const char *pad_type;
    milk_pad_type pt;
} window_op;

static bool is_pool(const milk_op *op)
{
    return milk_rule_is(op, "max_pool") || milk_rule_is(op, "avg_pool") ||
           milk_rule_is(op, "l2_pool");
}

static bool parse_pad_type(const char *s, milk_pad_type *pt)
{
    static const struct { const char *n; milk_pad_type t; } names[] = {
        {"valid", MILK_PAD_VALID}, {"same", MILK_PAD_SAME},
        {"same_lower", MILK_PAD_SAME_LOWER}, {"custom", MILK_PAD_CUSTOM}};
    for (size_t i = 0; i < MILK_ARRAY_LEN(names); i++)
        if (strcasecmp(s, names[i].n) == 0) {
            *pt = names[i].t;
            return true;
        }
    return false;
}

/* Read the geometry of a conv or pool (ctx may be NULL in matchers). */
static bool read_window(milk_ctx *ctx, const milk_op *op, window_op *w)
{
    const milk_tensor_type *x = milk_op_in_type(op, "x");
    bool pool = is_pool(op);
    int n = 0;
    memset(w, 0, sizeof *w);
    if (!x || x->rank < 3 || x->rank > 5) return false;
    w->S = x->rank - 2;
    if (pool) {
        if (milk_op_ints(ctx, op, "kernel_sizes", w->k, MAX_S, &n, NULL) != MILK_OK ||
            n != w->S)
            return false;
    } else {
        const milk_tensor_type *wt = milk_op_in_type(op, "weight");
        if (!wt || wt->rank != x->rank) return false;
        for (int i = 0; i < w->S; i++) w->k[i] = wt->dims[2 + i];
    }
    int ns = 0, nd = 0, np = 0;
    if (milk_op_ints(ctx, op, "strides", w->s, MAX_S, &ns, NULL) != MILK_OK ||
        milk_op_ints(ctx, op, "dilations", w->d, MAX_S, &nd, NULL) != MILK_OK ||
        milk_op_ints(ctx, op, "pad", w->pad, 2 * MAX_S, &np, NULL) != MILK_OK ||
        milk_op_str(ctx, op, "pad_type", "valid", &w->pad_type) != MILK_OK)
        return false;
    if ((ns && ns != w->S) || (nd && nd != w->S)) return false;
    for (int i = 0; i < w->S; i++) {
        if (!ns) w->s[i] = 1;
        if (!nd) w->d[i] = 1;
    }
    for (int i = np; i < 2 * MAX_S; i++) w->pad[i] = 0;
    return parse_pad_type(w->pad_type, &w->pt);
}

/* The pads the kernels place on axis i (before, after). */
static bool window_pads(const milk_op *op, const window_op *w, int i,
                        int64_t *before, int64_t *after)
{
    const milk_tensor_type *x = milk_op_in_type(op, "x");
    milk_window win = {x->dims[2 + i], w->k[i], w->s[i], w->d[i],
                       {w->pad[2 * i], w->pad[2 * i + 1]}};
    return milk_window_pads(w->pt, &win, before, after);
}

/* ---- conv2d-edge ----------------------------------------------------------------- */

void milk_match_conv2d_edge(milk_rule_run *rr, const milk_op *op)
{
    if (!op) return; /* no function-level condition */
    window_op w;
    if (!milk_rule_is(op, "conv") || !read_window(NULL, op, &w) || w.S != 2)
        return;
    const milk_tensor_type *x = milk_op_in_type(op, "x");
    int64_t pads[4];
    bool padded = false;
    for (int i = 0; i < 2; i++)
        if (!window_pads(op, &w, i, &pads[2 * i], &pads[2 * i + 1])) return;
    for (int i = 0; i < 4; i++) padded |= pads[i] > 0;
    if (x->dims[1] > 1 && w.k[0] != w.k[1] && padded &&
        (w.s[0] > 1 || w.s[1] > 1))
        milk_rule_matched(rr, op, "2-D conv, %lld input channels, kernel %lldx%lld, "
                              "pad [%lld, %lld, %lld, %lld], stride %lldx%lld",
                      (long long)x->dims[1], (long long)w.k[0], (long long)w.k[1],
                      (long long)pads[0], (long long)pads[1], (long long)pads[2],
                      (long long)pads[3], (long long)w.s[0], (long long)w.s[1]);
}

milk_status milk_fix_conv_explicit_pad(milk_rule_run *rr, milk_op *op)
{
    static const char *const skip[] = {"x", "pad", "pad_type", NULL};
    window_op w;
    if (!read_window(rr->ctx, op, &w))
        return milk_op_fail(rr->ctx, op, NULL, "cannot read the window");
    int64_t pads[2 * MAX_S], zeros[2 * MAX_S] = {0};
    for (int i = 0; i < w.S; i++)
        if (!window_pads(op, &w, i, &pads[2 * i], &pads[2 * i + 1])) {
            milk_fix_decline(rr, "the input size is not known");
            return MILK_OK;
        }
    milk_var *x = milk_op_var(op, "x"), *padded, *y;
    if (!x) {
        milk_fix_decline(rr, "x is not a var");
        return MILK_OK;
    }
    char base[256];
    milk_input pin[4] = {{"x", x}, {"pad", NULL}, {"mode", NULL},
                         {"constant_val", NULL}};
    snprintf(base, sizeof base, "%s_pad_values", op->name);
    MILK_TRY(milk_fix_ints(rr, op, base, pads, 2 * w.S, &pin[1].var));
    snprintf(base, sizeof base, "%s_pad_mode", op->name);
    MILK_TRY(milk_fix_string(rr, op, base, "constant", &pin[2].var));
    snprintf(base, sizeof base, "%s_pad_constant", op->name);
    MILK_TRY(milk_fix_float(rr, op, base, x->type.dtype, 0.0, &pin[3].var));
    snprintf(base, sizeof base, "%s_padded", op->name);
    MILK_TRY(milk_fix_op(rr, op, "pad", base, pin, 4, &padded));
    milk_input in[16] = {{"x", padded}, {"pad", NULL}, {"pad_type", NULL}};
    int n = 3;
    snprintf(base, sizeof base, "%s_pad_zero", op->name);
    MILK_TRY(milk_fix_ints(rr, op, base, zeros, 2 * w.S, &in[1].var));
    snprintf(base, sizeof base, "%s_pad_type_custom", op->name);
    MILK_TRY(milk_fix_string(rr, op, base, "custom", &in[2].var));
    MILK_TRY(milk_fix_copy_args(rr, op, skip, in, &n, 16));
    snprintf(base, sizeof base, "%s_unpadded", op->name);
    MILK_TRY(milk_fix_op(rr, op, milk_ops[op->kind]->name, base, in, n, &y));
    MILK_TRY(milk_fix_replace(rr, op, y));
    milk_fix_note(rr, "a candidate: equivalent here, not proven on a device");
    return MILK_OK;
}

/* ---- required-optional ---------------------------------------------------------- */

typedef enum { ONES_S, ZEROS_2S, FALSE_, ZERO_X } dflt_kind;

static const struct required {
    const char *op, *param;
    dflt_kind kind;
} required[] = {
    {"conv", "strides", ONES_S},           {"conv", "dilations", ONES_S},
    {"conv_transpose", "pad", ZEROS_2S},   {"conv_transpose", "strides", ONES_S},
    {"conv_transpose", "dilations", ONES_S},
    {"matmul", "transpose_x", FALSE_},     {"matmul", "transpose_y", FALSE_},
    {"max_pool", "strides", ONES_S},       {"max_pool", "ceil_mode", FALSE_},
    {"avg_pool", "strides", ONES_S},       {"avg_pool", "ceil_mode", FALSE_},
    {"l2_pool", "strides", ONES_S},        {"l2_pool", "ceil_mode", FALSE_},
    {"pad", "constant_val", ZERO_X},
};

/* The row missing on op (from index *from on), or NULL. Only parameters
 * the op's signature has in this opset count. */
static const struct required *missing(const milk_op *op, size_t *from)
{
    for (size_t i = *from; op && i < MILK_ARRAY_LEN(required); i++) {
        if (!milk_rule_is(op, required[i].op)) continue;
        const milk_param *p = milk_op_param_info(op->kind, required[i].param);
        milk_target opset = op->block ? op->block->fn->opset : MILK_TARGET_IOS18;
        if (!p || (p->min_opset && opset < p->min_opset)) continue;
        if (milk_op_arg(op, required[i].param)) continue;
        *from = i + 1;
        return &required[i];
    }
    return NULL;
}

void milk_match_required_optional(milk_rule_run *rr, const milk_op *op)
{
    if (!op) return; /* no function-level condition */
    char list[256] = "";
    size_t from = 0, len = 0;
    for (const struct required *r; (r = missing(op, &from)) != NULL;)
        len += (size_t)snprintf(list + len, len < sizeof list ? sizeof list - len : 0,
                                "%s%s", len ? ", " : "", r->param);
    if (len) milk_rule_matched(rr, op, "%s without %s", milk_ops[op->kind]->name, list);
}

static milk_status default_const(milk_rule_run *rr, milk_op *op,
                                 const struct required *r, milk_var **out)
{
    const milk_tensor_type *x = milk_op_in_type(op, "x");
    int S = x && x->rank >= 3 ? x->rank - 2 : 1;
    int64_t v[2 * MAX_S];
    char base[256];
    snprintf(base, sizeof base, "%s_%s", op->name, r->param);
    switch (r->kind) {
    case ONES_S:
        for (int i = 0; i < S; i++) v[i] = 1;
        return milk_fix_ints(rr, op, base, v, S, out);
    case ZEROS_2S:
        for (int i = 0; i < 2 * S; i++) v[i] = 0;
        return milk_fix_ints(rr, op, base, v, 2 * S, out);
    case FALSE_:
        return milk_fix_bool(rr, op, base, false, out);
    case ZERO_X:
        return milk_fix_float(rr, op, base, x ? x->dtype : MILK_DTYPE_FP32, 0.0, out);
    }
    return MILK_OK;
}

milk_status milk_fix_required_optional(milk_rule_run *rr, milk_op *op)
{
    size_t from = 0;
    for (const struct required *r; (r = missing(op, &from)) != NULL;) {
        milk_var *v;
        MILK_TRY(default_const(rr, op, r, &v));
        MILK_TRY(milk_fix_rebind(rr, op, r->param, v));
        milk_fix_note(rr, "%s '%s': bound %s", milk_ops[op->kind]->name,
                      op->name, r->param);
    }
    return milk_op_reinfer(rr->ctx, op);
}

/* ---- same-without-pad, same-lower-ios15 ------------------------------------------ */

static bool windowed(const milk_op *op)
{
    return milk_rule_is(op, "conv") || milk_rule_is(op, "conv_transpose") ||
           is_pool(op);
}

void milk_match_same_without_pad(milk_rule_run *rr, const milk_op *op)
{
    if (!op) return; /* no function-level condition */
    const char *pt = "";
    if (!windowed(op) || milk_op_arg(op, "pad")) return;
    if (milk_op_str(NULL, op, "pad_type", "valid", &pt) != MILK_OK) return;
    if (strcasecmp(pt, "same") == 0)
        milk_rule_matched(rr, op, "pad_type \"same\" and no pad");
}

milk_status milk_fix_same_without_pad(milk_rule_run *rr, milk_op *op)
{
    static const struct required zeros = {"", "pad", ZEROS_2S};
    milk_var *v;
    MILK_TRY(default_const(rr, op, &zeros, &v));
    MILK_TRY(milk_fix_rebind(rr, op, "pad", v));
    milk_fix_note(rr, "%s '%s': bound a zero pad", milk_ops[op->kind]->name,
                  op->name);
    return milk_op_reinfer(rr->ctx, op);
}

void milk_match_same_lower_ios15(milk_rule_run *rr, const milk_op *op)
{
    if (!op) return; /* no function-level condition */
    const char *pt = "";
    if (!windowed(op)) return;
    if (milk_op_str(NULL, op, "pad_type", "valid", &pt) != MILK_OK) return;
    if (strcasecmp(pt, "same_lower") == 0)
        milk_rule_matched(rr, op, "pad_type \"same_lower\", target %s",
                      milk_target_name(rr->target));
}

milk_status milk_fix_same_lower(milk_rule_run *rr, milk_op *op)
{
    window_op w;
    int64_t pads[2 * MAX_S];
    if (!read_window(rr->ctx, op, &w))
        return milk_op_fail(rr->ctx, op, NULL, "cannot read the window");
    for (int i = 0; i < w.S; i++)
        if (!window_pads(op, &w, i, &pads[2 * i], &pads[2 * i + 1])) {
            milk_fix_decline(rr, "the input size is not known");
            return MILK_OK;
        }
    char base[256];
    milk_var *pad, *pt;
    snprintf(base, sizeof base, "%s_pad", op->name);
    MILK_TRY(milk_fix_ints(rr, op, base, pads, 2 * w.S, &pad));
    snprintf(base, sizeof base, "%s_pad_type", op->name);
    MILK_TRY(milk_fix_string(rr, op, base, "custom", &pt));
    MILK_TRY(milk_fix_rebind(rr, op, "pad", pad));
    MILK_TRY(milk_fix_rebind(rr, op, "pad_type", pt));
    milk_fix_note(rr, "%s '%s': same_lower -> custom pads", milk_ops[op->kind]->name,
                  op->name);
    return milk_op_reinfer(rr->ctx, op);
}
