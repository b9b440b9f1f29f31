/* build.c: the public builder API: consts and ops appended to a block,
 * each op checked and typed as it is added. */
#include "ir.h"
#include "../ops/op.h"

#include <stdio.h>

static milk_arena *arena_of(milk_block *b)
{
    return b->fn->prog->arena;
}

/* Append a const op called name whose value is val; its output var has the
 * same name. */
milk_status milk_block_insert_const(milk_ctx *ctx, milk_block *b, int at,
                                    const char *name, milk_value *val,
                                    milk_var **out)
{
    if (!val) return milk_errorf(ctx, MILK_ERR_NOMEM, "out of memory");
    milk_op *op = milk_op_new(arena_of(b), MILK_OP_const_, name);
    if (!op) return milk_errorf(ctx, MILK_ERR_NOMEM, "out of memory");
    op->val = val;
    milk_var *v;
    MILK_TRY(milk_op_add_output(ctx, b->fn, op, name, &val->type, &v));
    MILK_TRY(milk_block_insert(ctx, b, at, op));
    if (out) *out = v;
    return MILK_OK;
}

static milk_status add_const_value(milk_ctx *ctx, milk_block *b,
                                   const char *name, milk_value *val,
                                   milk_var **out)
{
    return milk_block_insert_const(ctx, b, b->n_ops, name, val, out);
}

static milk_status check_const_type(milk_ctx *ctx, const char *name,
                                    const milk_tensor_type *t)
{
    if (!milk_dtype_name(t->dtype))
        return milk_errorf(ctx, MILK_ERR_INVALID_ARG,
                           "const '%s': unknown dtype %d", name, (int)t->dtype);
    if (t->rank < 0 || t->rank > MILK_MAX_RANK)
        return milk_errorf(ctx, MILK_ERR_INVALID_ARG,
                           "const '%s': rank %d outside 0..%d", name,
                           (int)t->rank, MILK_MAX_RANK);
    int64_t n = milk_tensor_type_count(t);
    if (n < 0 || n > MILK_MAX_ELEMENTS)
        return milk_errorf(ctx, MILK_ERR_INVALID_ARG,
                           "const '%s': shape must be known and hold at most "
                           "2^40 elements",
                           name);
    return MILK_OK;
}

milk_status milk_block_add_const(milk_ctx *ctx, milk_block *b,
                                 const char *name,
                                 const milk_tensor_type *type,
                                 const void *data, milk_var **out)
{
    MILK_TRY(check_const_type(ctx, name, type));
    return add_const_value(ctx, b, name,
                           milk_value_new_tensor(arena_of(b), type, data), out);
}

static milk_value *new_external(milk_block *b, const milk_tensor_type *type)
{
    milk_value *v = milk_arena_alloc(arena_of(b), sizeof *v);
    if (!v) return NULL;
    v->kind = MILK_VALUE_TENSOR;
    v->type = *type;
    return v;
}

milk_status milk_block_add_const_borrowed(milk_ctx *ctx, milk_block *b,
                                          const char *name,
                                          const milk_tensor_type *type,
                                          const void *data, milk_var **out)
{
    MILK_TRY(check_const_type(ctx, name, type));
    if (type->dtype == MILK_DTYPE_STRING)
        return milk_block_add_const(ctx, b, name, type, data, out);
    milk_value *v = new_external(b, type);
    if (v) {
        v->data.kind = MILK_DATA_BORROWED;
        v->data.ptr = data;
    }
    return add_const_value(ctx, b, name, v, out);
}

/* Conversions milk_value_read() knows how to do on the fly. */
static bool convertible(milk_dtype stored, milk_dtype to)
{
    if (stored == to) return to != MILK_DTYPE_STRING;
    return (stored == MILK_DTYPE_FP32 && to == MILK_DTYPE_FP16) ||
           (stored == MILK_DTYPE_FP16 && to == MILK_DTYPE_FP32) ||
           (stored == MILK_DTYPE_INT64 && to == MILK_DTYPE_INT32) ||
           (stored == MILK_DTYPE_FP64 && to == MILK_DTYPE_FP32);
}

milk_status milk_block_add_const_file(milk_ctx *ctx, milk_block *b,
                                      const char *name,
                                      const milk_tensor_type *type,
                                      const char *path, uint64_t offset,
                                      milk_dtype stored, milk_var **out)
{
    MILK_TRY(check_const_type(ctx, name, type));
    if (!convertible(stored, type->dtype))
        return milk_errorf(ctx, MILK_ERR_UNSUPPORTED,
                           "const '%s': cannot convert %s data in '%s' to %s",
                           name, milk_dtype_name(stored) ? milk_dtype_name(stored) : "?",
                           path, milk_dtype_name(type->dtype));
    milk_value *v = new_external(b, type);
    if (v) {
        v->data.kind = MILK_DATA_FILE;
        v->data.path = milk_arena_strdup(arena_of(b), path);
        v->data.offset = offset;
        v->data.stored = stored;
        if (!v->data.path) v = NULL;
    }
    return add_const_value(ctx, b, name, v, out);
}

static milk_status add_small(milk_ctx *ctx, milk_block *b, const char *name,
                             milk_dtype dt, int rank, int64_t n,
                             const void *data, milk_var **out)
{
    milk_tensor_type t = {dt, rank, {n}};
    return milk_block_add_const(ctx, b, name, &t, data, out);
}

milk_status milk_block_add_const_int32s(milk_ctx *ctx, milk_block *b,
                                        const char *name, const int32_t *v,
                                        int n, milk_var **out)
{
    return add_small(ctx, b, name, MILK_DTYPE_INT32, 1, n, v, out);
}

milk_status milk_block_add_const_int32(milk_ctx *ctx, milk_block *b,
                                       const char *name, int32_t v,
                                       milk_var **out)
{
    return add_small(ctx, b, name, MILK_DTYPE_INT32, 0, 0, &v, out);
}

milk_status milk_block_add_const_fp32(milk_ctx *ctx, milk_block *b,
                                      const char *name, float v,
                                      milk_var **out)
{
    return add_small(ctx, b, name, MILK_DTYPE_FP32, 0, 0, &v, out);
}

milk_status milk_block_add_const_bool(milk_ctx *ctx, milk_block *b,
                                      const char *name, int v, milk_var **out)
{
    uint8_t x = v ? 1 : 0;
    return add_small(ctx, b, name, MILK_DTYPE_BOOL, 0, 0, &x, out);
}

milk_status milk_block_add_const_string(milk_ctx *ctx, milk_block *b,
                                        const char *name, const char *v,
                                        milk_var **out)
{
    return add_small(ctx, b, name, MILK_DTYPE_STRING, 0, 0, &v, out);
}

/* Name output i of an op called name: the op name itself for a single
 * output, name_i otherwise (coremltools' convention). */
static void output_name(char *buf, size_t n, const char *name, int i,
                        int count)
{
    if (count == 1)
        snprintf(buf, n, "%s", name);
    else
        snprintf(buf, n, "%s_%d", name, i);
}

milk_status milk_block_add_op(milk_ctx *ctx, milk_block *b, const char *type,
                              const char *name, const milk_input *inputs,
                              int n_inputs, milk_op **out)
{
    return milk_block_insert_op(ctx, b, b->n_ops, type, name, inputs, n_inputs,
                                out);
}

milk_status milk_block_insert_op(milk_ctx *ctx, milk_block *b, int at,
                                 const char *type, const char *name,
                                 const milk_input *inputs, int n_inputs,
                                 milk_op **out)
{
    if (strcmp(type, "coreml_update_state") == 0) /* two ops: state.c */
        return milk_block_insert_update_state(ctx, b, at, name, inputs,
                                              n_inputs, out);
    int kind = milk_op_kind_from_name(type);
    if (kind < 0)
        return milk_errorf(ctx, MILK_ERR_UNSUPPORTED, "op '%s': unknown op type '%s'",
                           name, type);
    if (kind == MILK_OP_const_)
        return milk_errorf(ctx, MILK_ERR_INVALID_ARG,
                           "op '%s': add consts with milk_block_add_const",
                           name);
    milk_op *op = milk_op_new(arena_of(b), kind, name);
    if (!op) return milk_errorf(ctx, MILK_ERR_NOMEM, "out of memory");
    for (int i = 0; i < n_inputs; i++) {
        if (!inputs[i].param || !inputs[i].var || inputs[i].var->fn != b->fn)
            return milk_errorf(ctx, MILK_ERR_INVALID_ARG,
                               "op '%s': input %d needs a param name and a "
                               "var of the same function",
                               name, i);
        MILK_TRY(milk_op_bind(ctx, arena_of(b), op, inputs[i].param,
                              inputs[i].var, NULL));
    }
    op->block = b; /* so that inference sees the function's opset */
    milk_infer ic;
    milk_status s = milk_op_infer(ctx, op, &ic);
    /* Check every output name before creating any var, so that a failure
     * leaves the function unchanged. */
    for (int i = 0; s == MILK_OK && i < ic.n_out; i++) {
        char vname[512];
        output_name(vname, sizeof vname, name, i, ic.n_out);
        if (!milk_is_identifier(vname) || milk_names_get(b->fn->names, vname))
            s = milk_errorf(ctx, MILK_ERR_INVALID_ARG,
                            "op '%s': output name '%s' is not a free MIL "
                            "identifier",
                            name, vname);
    }
    for (int i = 0; s == MILK_OK && i < ic.n_out; i++) {
        char vname[512];
        output_name(vname, sizeof vname, name, i, ic.n_out);
        s = milk_op_add_output(ctx, b->fn, op, vname, &ic.out[i], NULL);
    }
    milk_infer_release(&ic);
    op->block = NULL;
    MILK_TRY(s);
    MILK_TRY(milk_block_insert(ctx, b, at, op));
    if (out) *out = op;
    return MILK_OK;
}
