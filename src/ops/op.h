/*
 * op.h: what a row of the op table holds, and the helpers op files use to
 * read their arguments and infer output types.
 *
 * An op file (src/ops/<op or family>.c) defines, per op:
 *   static const milk_param X_params[] = { {"x", MILK_P_REQ}, ..., {0} };
 *   static milk_status X_infer(milk_infer *ic) { ... }
 *   const milk_op_info milk_op_X = { "X", X_params, MILK_TARGET_IOS15,
 *                                    X_infer, X_eval };
 * and the row MILK_OP(X, "X") in ops.def.
 */
#ifndef MILK_OP_H
#define MILK_OP_H

#include "../ir/ir.h"

/* Parameter flags. */
enum {
    MILK_P_REQ = 1u << 0,      /* must be bound */
    MILK_P_CONST = 1u << 1,    /* must be a compile-time constant */
    MILK_P_VARIADIC = 1u << 2, /* a tuple: one binding per element (>= 1) */
    MILK_P_STATE = 1u << 3,    /* a state input of the function (read_state,
                                  write_state); no other param takes one */
};

typedef struct milk_param {
    const char *name;
    unsigned flags;
    milk_target min_opset; /* 0: every opset; else exists from this one on */
} milk_param;

/* Type inference: given the op (arguments bound, consts known), fill
 * out[0..n_out-1]. The number of outputs is the op's to decide (split);
 * call milk_infer_outputs() to set it. */
typedef struct milk_infer {
    milk_ctx *ctx;
    const milk_op *op;
    milk_target opset;
    int n_out;
    milk_tensor_type *out;
    int cap_out;
} milk_infer;

struct milk_eval; /* the interpreter's per-op context (src/run) */

typedef struct milk_op_info {
    const char *name;
    const milk_param *params; /* terminated by {NULL} */
    milk_target min_opset;    /* first opset with this op */
    milk_status (*infer)(milk_infer *ic);
    milk_status (*eval)(struct milk_eval *ec); /* reference kernel */
    /* Optional fast kernel (OpenBLAS, blocking); must agree with eval,
     * which the tests check. NULL when eval is the only kernel. */
    milk_status (*eval_fast)(struct milk_eval *ec);
} milk_op_info;

enum milk_op_kind {
#define MILK_OP(id, name) MILK_OP_##id,
#include "ops.def"
#undef MILK_OP
    MILK_OP_COUNT
};

#define MILK_OP(id, name) extern const milk_op_info milk_op_##id;
#include "ops.def"
#undef MILK_OP

extern const milk_op_info *const milk_ops[MILK_OP_COUNT];

/* True for the constexpr_* ops (weight decompression, constexpr.c): Core
 * ML expands them when it loads the model, so their outputs are
 * compile-time constants like a const's. */
bool milk_op_is_constexpr(const milk_op *op);

/* The kind for a MIL op name, or -1. */
int milk_op_kind_from_name(const char *name);
const milk_param *milk_op_param_info(int kind, const char *param);

/* Check op's arguments against its row (unknown, missing, non-constant,
 * variadic, opset) and run its type inference. On success the inferred
 * types are in ic->out[0..ic->n_out-1]; ic->out is malloc'd, free it with
 * milk_infer_release(). */
milk_status milk_op_infer(milk_ctx *ctx, const milk_op *op, milk_infer *ic);
void milk_infer_release(milk_infer *ic);

/* ---- helpers for infer (and for kernels and passes) --------------------- */

/* Make room for n outputs and set ic->n_out. */
milk_status milk_infer_outputs(milk_infer *ic, int n);

/* Fail with MILK_ERR_TYPE and the message
 * "op 'NAME' (TYPE): input 'param': <fmt>" (param may be NULL). */
milk_status milk_op_fail(milk_ctx *ctx, const milk_op *op, const char *param,
                         const char *fmt, ...) MILK_PRINTF(4, 5);

/* Type of binding 0 (or i) of param: the var's type or the inline value's.
 * NULL if the param is not bound (or has fewer bindings). */
const milk_tensor_type *milk_op_in_type(const milk_op *op, const char *param);
const milk_tensor_type *milk_op_in_type_at(const milk_op *op,
                                           const char *param, int i);
/* Number of bindings of param (0 if absent). */
int milk_op_in_count(const milk_op *op, const char *param);

/* Read a constant param. If absent, *present (if non-NULL) is false and the
 * default is returned; if present but not constant or of the wrong
 * kind, fail naming the op and param. */
milk_status milk_op_ints(milk_ctx *ctx, const milk_op *op, const char *param,
                         int64_t *v, int max, int *n, bool *present);
milk_status milk_op_int(milk_ctx *ctx, const milk_op *op, const char *param,
                        int64_t dflt, int64_t *v);
milk_status milk_op_f64(milk_ctx *ctx, const milk_op *op, const char *param,
                        double dflt, double *v);
milk_status milk_op_bool(milk_ctx *ctx, const milk_op *op, const char *param,
                         bool dflt, bool *v);
milk_status milk_op_str(milk_ctx *ctx, const milk_op *op, const char *param,
                        const char *dflt, const char **v);

/* Dtype sets for checks. */
#define MILK_DT(d) (UINT64_C(1) << (d))
#define MILK_DT_FLOAT (MILK_DT(MILK_DTYPE_FP16) | MILK_DT(MILK_DTYPE_FP32))
#define MILK_DT_NUM (MILK_DT_FLOAT | MILK_DT(MILK_DTYPE_INT32))
/* Fail unless the type of param (binding 0) has a dtype in mask. */
milk_status milk_op_check_dtype(milk_ctx *ctx, const milk_op *op,
                                const char *param, uint64_t mask);

/* Normalize axis (may be negative) into [0, rank); fail naming param. */
milk_status milk_op_axis(milk_ctx *ctx, const milk_op *op, const char *param,
                         int64_t axis, int rank, int *out);

/* NumPy broadcast of a and b into out (unknown dims stay unknown). */
milk_status milk_op_broadcast(milk_ctx *ctx, const milk_op *op,
                              const milk_tensor_type *a,
                              const milk_tensor_type *b,
                              milk_tensor_type *out);

#endif /* MILK_OP_H */
