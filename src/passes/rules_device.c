/* rules_device.c: the matchers of the second edition's rules that only
 * warn or refuse (rules.def): what a device refuses to load (enumerated
 * shapes, opsets, weight files), what it leaves unspecified (argmax ties),
 * and the Neural Engine's measured hazards and fallbacks, which `milk
 * inspect` lists per compute-unit choice. */
#include "rules.h"

static bool is_float(milk_dtype d)
{
    return d == MILK_DTYPE_FP16 || d == MILK_DTYPE_FP32;
}

/* ---- refused -------------------------------------------------------------------- */

/* coremltools' _validate_enumerated_shape_inputs: one input with
 * enumerated shapes before iOS18; from iOS18 several, each listing as
 * many shapes. */
void milk_match_enum_multi_input(milk_rule_run *rr, const milk_op *op)
{
    const milk_program *p = rr->p;
    if (op || !p->has_features || rr->fn != p->functions[0]) return;
    int n = 0, shapes = -1;
    bool uneven = false;
    char names[512] = "";
    size_t k = 0;
    for (int i = 0; i < p->n_in_features; i++) {
        const milk_feature *f = &p->in_features[i];
        if (f->n_enum < 1) continue;
        uneven |= shapes >= 0 && f->n_enum != shapes;
        shapes = f->n_enum;
        if (k < sizeof names)
            k += (size_t)snprintf(names + k, sizeof names - k, "%s'%s' (%d)", n ? ", " : "",
                                  f->name, f->n_enum);
        n++;
    }
    if (n < 2) return;
    if (rr->target < MILK_TARGET_IOS18)
        milk_rule_matched(rr, NULL, "%d inputs with enumerated shapes: %s; target %s", n, names,
                          milk_target_name(rr->target));
    else if (uneven)
        milk_rule_matched(rr, NULL, "inputs with enumerated shapes list different numbers of "
                          "shapes: %s", names);
}

/* The opset a target means, by name ("ios17"). */
static const char *opset_words(milk_target t)
{
    const char *n = milk_target_name(t);
    return n ? n : "a newer";
}

/* Against the program's own deployment target (its specification
 * version), which is what Core ML reads: `milk lint --target` asks which
 * other rules apply to another target, not whether the ops exist there. */
void milk_match_opset_vs_target(milk_rule_run *rr, const milk_op *op)
{
    milk_target t = rr->p->target;
    if (!op) {
        if (rr->fn->opset > t)
            milk_rule_matched(rr, NULL, "function '%s' is written for the %s opset (%s), newer "
                              "than the program's target %s", rr->fn->name,
                              opset_words(rr->fn->opset),
                              rr->fn->opset_name ? rr->fn->opset_name : "?", milk_target_name(t));
        return;
    }
    const milk_op_info *info = milk_ops[op->kind];
    if (info->min_opset > t) {
        milk_rule_matched(rr, op, "%s exists from the %s opset; the program's target is %s",
                          info->name, opset_words(info->min_opset), milk_target_name(t));
        return;
    }
    for (int a = 0; a < op->n_args; a++) {
        const milk_param *pi = milk_op_param_info(op->kind, op->args[a].param);
        if (pi && pi->min_opset > t) {
            milk_rule_matched(rr, op, "input '%s' of %s exists from the %s opset; the "
                              "program's target is %s", pi->name, info->name,
                              opset_words(pi->min_opset), milk_target_name(t));
            return;
        }
    }
}

/* Bytes of constant data in every function (a value two functions share
 * counted once). */
static uint64_t weight_bytes(const milk_program *p)
{
    uint64_t total = 0;
    for (int f = 0; f < p->n_functions; f++) {
        const milk_block *b = p->functions[f]->block;
        for (int i = 0; i < b->n_ops; i++) {
            const milk_value *v = b->ops[i]->kind == MILK_OP_const_ ? b->ops[i]->val : NULL;
            bool seen = false;
            for (int g = 0; v && g < f && !seen; g++)
                for (int j = 0; j < p->functions[g]->block->n_ops && !seen; j++)
                    seen = p->functions[g]->block->ops[j]->val == v;
            uint64_t n = 0;
            if (v && !seen && v->kind == MILK_VALUE_TENSOR && milk_value_nbytes(v, &n))
                total += n;
        }
    }
    return total;
}

void milk_match_weights_2gib(milk_rule_run *rr, const milk_op *op)
{
    if (op || rr->fn != rr->p->functions[0]) return;
    uint64_t n = weight_bytes(rr->p);
    if (n > (UINT64_C(1) << 31))
        milk_rule_matched(rr, NULL, "%.2f GiB of weights (above 2 GiB), target %s",
                          (double)n / (double)(UINT64_C(1) << 30), milk_target_name(rr->target));
}

/* ---- unspecified -------------------------------------------------------------------- */

void milk_match_argmax_ties(milk_rule_run *rr, const milk_op *op)
{
    if (!op || !(milk_rule_is(op, "reduce_argmax") || milk_rule_is(op, "reduce_argmin"))) return;
    const milk_tensor_type *x = milk_op_in_type(op, "x");
    milk_rule_matched(rr, op, "%s of %s: among equal values the index Core ML returns is not "
                      "specified (milk returns the first)", milk_ops[op->kind]->name,
                      x ? milk_dtype_name(x->dtype) : "?");
}

/* ---- the Neural Engine ---------------------------------------------------------------- */

/* The float output of op, or NULL. */
static const milk_var *float_out(const milk_op *op)
{
    return op->n_outputs > 0 && is_float(op->outputs[0]->type.dtype) ? op->outputs[0] : NULL;
}

void milk_match_ne_matmul_32752(milk_rule_run *rr, const milk_op *op)
{
    if (!op || !(milk_rule_is(op, "matmul") || milk_rule_is(op, "linear") ||
                 milk_rule_is(op, "einsum")) || !float_out(op))
        return;
    milk_rule_matched(rr, op, "%s: outputs above about 32752 become inf on the Neural Engine",
                      milk_ops[op->kind]->name);
}

/* The last axis a slice begins past 0 on, or -1. */
static int last_axis_offset(const milk_op *op)
{
    const milk_tensor_type *x = milk_op_in_type(op, "x");
    int64_t begin[MILK_MAX_RANK];
    int n = 0;
    bool present = false;
    if (!x || x->rank < 1) return -1;
    if (milk_op_ints(NULL, op, "begin", begin, MILK_MAX_RANK, &n, &present) != MILK_OK ||
        !present || n != x->rank)
        return -1;
    if (milk_rule_is(op, "slice_by_index")) {
        bool mask[MILK_MAX_RANK];
        const milk_value *bm = milk_op_const(op, "begin_mask");
        for (int i = 0; i < n; i++) {
            int64_t m = 0;
            mask[i] = bm && milk_value_get_i64(NULL, bm, i, &m) == MILK_OK && m;
        }
        if (mask[n - 1]) return -1;
    }
    int64_t b = begin[n - 1], d = x->dims[n - 1];
    if (b < 0 && d > 0) b += d;
    return b != 0 ? n - 1 : -1;
}

void milk_match_ne_slice_offset(milk_rule_run *rr, const milk_op *op)
{
    if (!op || !(milk_rule_is(op, "slice_by_index") || milk_rule_is(op, "slice_by_size")) ||
        !float_out(op) || last_axis_offset(op) < 0)
        return;
    milk_rule_matched(rr, op, "%s at a non-zero offset of the last axis: values above 4094 "
                      "become inf on the Neural Engine of chips before A16",
                      milk_ops[op->kind]->name);
}

void milk_match_ne_gather_last_axis(milk_rule_run *rr, const milk_op *op)
{
    if (!op || !(milk_rule_is(op, "gather") || milk_rule_is(op, "gather_along_axis"))) return;
    const milk_tensor_type *x = milk_op_in_type(op, "x");
    int64_t axis = 0;
    if (!x || x->rank < 1 || milk_op_int(NULL, op, "axis", 0, &axis) != MILK_OK) return;
    if (axis != -1 && axis != x->rank - 1) return;
    milk_rule_matched(rr, op, "%s along the last axis: wrong elements on the Neural Engine "
                      "of A13 and A14 chips", milk_ops[op->kind]->name);
}

void milk_match_ne_int_reduce(milk_rule_run *rr, const milk_op *op)
{
    if (!op || strncmp(milk_ops[op->kind]->name, "reduce_", 7) != 0 ||
        milk_rule_is(op, "reduce_argmax") || milk_rule_is(op, "reduce_argmin"))
        return;
    const milk_tensor_type *x = milk_op_in_type(op, "x");
    if (!x || x->dtype != MILK_DTYPE_INT32) return;
    milk_rule_matched(rr, op, "%s of int32: results above 2048 are inexact on the Neural "
                      "Engine (it counts in fp16)", milk_ops[op->kind]->name);
}

void milk_match_ne_conv_kernel16(milk_rule_run *rr, const milk_op *op)
{
    if (!op || !(milk_rule_is(op, "conv") || milk_rule_is(op, "conv_transpose"))) return;
    const milk_tensor_type *w = milk_op_in_type(op, "weight");
    if (!w || w->rank < 3 || w->dims[w->rank - 1] < 16) return;
    milk_rule_matched(rr, op, "%s with a kernel %lld wide: not run on the Neural Engine "
                      "(kernel widths of 16 and more go to the GPU or CPU)",
                      milk_ops[op->kind]->name, (long long)w->dims[w->rank - 1]);
}

void milk_match_ne_lrn_c16(milk_rule_run *rr, const milk_op *op)
{
    if (!op || !milk_rule_is(op, "local_response_norm")) return;
    const milk_tensor_type *x = milk_op_in_type(op, "x");
    if (!x || x->rank < 2 || x->dims[1] < 16) return;
    milk_rule_matched(rr, op, "local_response_norm over %lld channels: not run on the Neural "
                      "Engine (16 channels or more)", (long long)x->dims[1]);
}

/* A non-const op output (or a function input, op NULL) of rank 5. */
void milk_match_ne_rank5(milk_rule_run *rr, const milk_op *op)
{
    char s[160];
    if (!op) {
        for (int i = 0; i < rr->fn->n_inputs; i++) {
            const milk_var *v = rr->fn->inputs[i];
            if (v->type.rank == 5)
                milk_rule_matched(rr, NULL, "input '%s' %s: rank 5", v->name,
                                  milk_rule_shape(&v->type, s, sizeof s));
        }
        return;
    }
    if (op->kind == MILK_OP_const_ || milk_op_is_constexpr(op)) return;
    for (int k = 0; k < op->n_outputs; k++)
        if (op->outputs[k]->type.rank == 5) {
            milk_rule_matched(rr, op, "output '%s' %s: rank 5; the Neural Engine takes tensors "
                              "of rank 4 or less", op->outputs[k]->name,
                              milk_rule_shape(&op->outputs[k]->type, s, sizeof s));
            return;
        }
}

/* Ops that compute integers or bools (not shapes of constants: those are
 * folded when the model is compiled). */
void milk_match_ne_dtype(milk_rule_run *rr, const milk_op *op)
{
    if (!op || op->kind == MILK_OP_const_ || milk_op_is_constexpr(op) || op->n_outputs < 1)
        return;
    milk_dtype d = op->outputs[0]->type.dtype;
    if (is_float(d) || d == MILK_DTYPE_STRING) return;
    milk_rule_matched(rr, op, "%s computes %s values: the Neural Engine computes fp16, so it "
                      "runs on the CPU", milk_ops[op->kind]->name, milk_dtype_name(d));
}
