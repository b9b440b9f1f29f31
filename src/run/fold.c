/* fold.c: evaluating an op whose inputs are all compile-time constants
 * with its reference kernel, giving constant values. Constant folding in
 * the converter (src/onnx/convert_fold.c) and in the general passes
 * (src/passes/general.c) both go through here; each decides which ops are
 * worth folding and how to put the results in the program. */
#include "run.h"

#include <stdlib.h>

/* The runtime tensors of an op's constant inputs, laid out as milk_eval
 * wants: in[arg][binding]. String constants get no storage (kernels read
 * them from the IR). */
typedef struct const_inputs {
    const milk_rt ***in;
    milk_rt *rts;
    int n_args, n_rts;
} const_inputs;

static void inputs_release(const_inputs *ci)
{
    for (int i = 0; i < ci->n_rts; i++) milk_rt_release(&ci->rts[i]);
    for (int a = 0; ci->in && a < ci->n_args; a++) free((void *)ci->in[a]);
    free((void *)ci->in);
    free(ci->rts);
}

static milk_status inputs_load(milk_ctx *ctx, const milk_op *op, const_inputs *ci)
{
    int total = 0;
    for (int a = 0; a < op->n_args; a++) total += op->args[a].n;
    memset(ci, 0, sizeof *ci);
    ci->n_args = op->n_args;
    ci->in = calloc((size_t)op->n_args + 1, sizeof *ci->in);
    ci->rts = calloc((size_t)total + 1, sizeof *ci->rts);
    if (!ci->in || !ci->rts) return milk_errorf(ctx, MILK_ERR_NOMEM, "out of memory");
    for (int a = 0; a < op->n_args; a++) {
        ci->in[a] = calloc((size_t)op->args[a].n + 1, sizeof **ci->in);
        if (!ci->in[a]) return milk_errorf(ctx, MILK_ERR_NOMEM, "out of memory");
        for (int j = 0; j < op->args[a].n; j++) {
            const milk_value *v = milk_op_const_at(op, op->args[a].param, j);
            if (!v || v->kind != MILK_VALUE_TENSOR)
                return milk_op_fail(ctx, op, op->args[a].param, "is not a constant");
            milk_rt *t = &ci->rts[ci->n_rts++];
            if (milk_rt_store(v->type.dtype) != MILK_DTYPE_INVALID)
                MILK_TRY(milk_rt_from_value(ctx, t, v));
            ci->in[a][j] = t;
        }
    }
    return MILK_OK;
}

/* A kernel's output as a value of the var's declared dtype (fp16 rounded,
 * as the runner stores it; narrow integers from int32 storage). */
static milk_value *to_value(milk_arena *arena, const milk_rt *t,
                            const milk_tensor_type *type)
{
    milk_value *v = milk_value_new_tensor(arena, type, NULL);
    if (!v) return NULL;
    void *dst = (void *)v->data.ptr;
    for (int64_t i = 0; i < t->count; i++) {
        switch (type->dtype) {
        case MILK_DTYPE_FP16: ((uint16_t *)dst)[i] = milk_fp32_to_fp16(milk_rt_f32(t)[i]); break;
        case MILK_DTYPE_FP32: ((float *)dst)[i] = milk_rt_f32(t)[i]; break;
        case MILK_DTYPE_INT32: ((int32_t *)dst)[i] = milk_rt_i32(t)[i]; break;
        case MILK_DTYPE_INT16: ((int16_t *)dst)[i] = (int16_t)milk_rt_i32(t)[i]; break;
        case MILK_DTYPE_UINT16: ((uint16_t *)dst)[i] = (uint16_t)milk_rt_i32(t)[i]; break;
        case MILK_DTYPE_INT8: ((int8_t *)dst)[i] = (int8_t)milk_rt_i32(t)[i]; break;
        case MILK_DTYPE_UINT8: ((uint8_t *)dst)[i] = (uint8_t)milk_rt_i32(t)[i]; break;
        case MILK_DTYPE_BOOL: ((uint8_t *)dst)[i] = milk_rt_bool(t)[i]; break;
        default: return NULL;
        }
    }
    return v;
}

static bool foldable_dtype(milk_dtype d)
{
    switch (d) {
    case MILK_DTYPE_FP16: case MILK_DTYPE_FP32: case MILK_DTYPE_INT32:
    case MILK_DTYPE_INT16: case MILK_DTYPE_UINT16: case MILK_DTYPE_INT8:
    case MILK_DTYPE_UINT8: case MILK_DTYPE_BOOL:
        return true;
    default:
        return false;
    }
}

milk_status milk_op_fold(milk_ctx *ctx, const milk_op *op, milk_arena *arena,
                         milk_value **vals)
{
    int n = op->n_outputs;
    if (!milk_ops[op->kind]->eval || op->n_blocks)
        return milk_op_fail(ctx, op, NULL, "cannot be evaluated at compile time");
    for (int k = 0; k < n; k++)
        if (!foldable_dtype(op->outputs[k]->type.dtype))
            return milk_op_fail(ctx, op, NULL, "output %d has no constant form", k);
    milk_rt *outs = calloc((size_t)n + 1, sizeof *outs);
    if (!outs) return milk_errorf(ctx, MILK_ERR_NOMEM, "out of memory");
    const_inputs ci;
    milk_status s = inputs_load(ctx, op, &ci);
    for (int k = 0; s == MILK_OK && k < n; k++)
        s = milk_rt_alloc(ctx, &outs[k], &op->outputs[k]->type);
    if (s == MILK_OK) {
        milk_eval ec = {ctx, op, MILK_PRECISION_AS_DECLARED,
                        (const milk_rt *const *const *)ci.in, outs, n};
        s = milk_ops[op->kind]->eval(&ec);
    }
    for (int k = 0; s == MILK_OK && k < n; k++)
        if (!(vals[k] = to_value(arena, &outs[k], &op->outputs[k]->type)))
            s = milk_errorf(ctx, MILK_ERR_NOMEM, "out of memory");
    for (int k = 0; k < n; k++) milk_rt_release(&outs[k]);
    free(outs);
    inputs_release(&ci);
    return s;
}
