/*
 * convert.h: the ONNX-to-MIL converter's internal interface: the state the
 * driver (convert.c) shares with the lowering functions (lower_*.c), and
 * the helpers a lowering uses to read its node and emit MIL.
 *
 * A lowering gets the converter with c->node set to the node to lower. It
 * reads attributes (milk_cv_attr_*) and inputs (milk_cv_input for a MIL
 * var, milk_cv_const_* for values it needs at conversion time), emits ops
 * through the builder (milk_cv_op_begin / milk_cv_arg* / milk_cv_op_end),
 * which checks and types each op as it is added and folds it into a const
 * when all its inputs are constants, and records each node output with
 * milk_cv_set_out. It returns MILK_ERR_UNSUPPORTED (milk_cv_unsupported)
 * for what it does not handle; the message says why, without the node's
 * name, which the driver adds.
 *
 * Naming: every ONNX tensor has a MIL name reserved before lowering starts
 * (milk_cv_out(c, i) for the node's outputs); the op computing output i
 * takes that name. Helper ops take milk_cv_tmp(c, "what"), a fresh name no
 * ONNX tensor can take.
 */
#ifndef MILK_ONNX_CONVERT_H
#define MILK_ONNX_CONVERT_H

#include "onnx.h"
#include "../ops/op.h"

/* ---- string map (convert_names.c) ------------------------------------ */

/* Open-addressing hash from NUL-terminated keys (not copied: they must
 * outlive the map) to ints. */
typedef struct milk_strmap {
    int cap, n;
    const char **keys;
    int *vals;
} milk_strmap;

/* Insert or replace; false on allocation failure. */
bool milk_strmap_put(milk_strmap *m, const char *key, int val);
/* The value for key, or -1. */
int milk_strmap_get(const milk_strmap *m, const char *key);
void milk_strmap_free(milk_strmap *m);

/* ---- converter state ------------------------------------------------- */

/* What the converter changed at the model's boundary, for the summary:
 * how many inputs and outputs, and which ("input 'x', output 'y'"). */
typedef struct milk_cv_note {
    int n;
    char text[512];
} milk_cv_note;

/* One ONNX tensor. A constant (initializer or Constant node) is kept as
 * its ONNX tensor until a lowering needs it as a var, so that values read
 * at conversion time (shapes, axes, slice bounds) keep their int64 range
 * and weights only consumed that way never become consts. */
typedef struct milk_cv_value {
    const char *onnx;               /* the ONNX name */
    const char *mil;                /* the reserved MIL name */
    milk_var *var;                  /* its MIL var, once there is one */
    const milk_onnx_tensor *tensor; /* constant not yet made a var */
    bool defined;                   /* has a value (or a placeholder) */
    bool poisoned;                  /* its producer failed to lower */
} milk_cv_value;

typedef struct milk_cv {
    milk_ctx *ctx;
    const milk_onnx_model *m;
    const char *file;            /* the model's file name, for messages */
    int64_t opset;               /* opset of the default domain */
    milk_program *p;
    milk_function *fn;
    milk_block *b;
    milk_arena *a;               /* the converter's own scratch arena */
    milk_cv_value *values;
    int n_values, cap_values;
    milk_strmap by_onnx;         /* ONNX name -> index in values */
    milk_strmap taken;           /* MIL names reserved or handed out */
    const milk_onnx_node *node;  /* the node being lowered */
    int n_folded;                /* ops folded into consts */
    milk_cv_note int64_io;       /* int64 graph inputs/outputs made int32 */
    milk_cv_note bool_io;        /* bool ones declared int32, cast inside */
    milk_cv_note scalar_io;      /* rank-0 ones declared [1] */
    milk_cv_note identity_out;   /* outputs produced by identity */
    int n_frozen;                /* graph inputs made constants */
    struct milk_cv_origin *origins; /* the node that emitted each op */
    int n_origins, cap_origins;
    struct milk_cv_states *states; /* --state pairs (convert_state.c) */
} milk_cv;

/* ---- names (convert_names.c) --------------------------------------------- */

/* Reserve the MIL names of every ONNX tensor (graph inputs, initializers,
 * node outputs, in that order) and create their entries. */
milk_status milk_cv_names_assign(milk_cv *c);
/* The entry of an ONNX tensor, or NULL. */
milk_cv_value *milk_cv_value_get(milk_cv *c, const char *onnx);
/* The reserved MIL name of the current node's output i. */
const char *milk_cv_out(milk_cv *c, int i);
/* A fresh MIL name "<output 0's name>_<what>" (with a number if taken),
 * never equal to a reserved one. NULL only when out of memory. */
const char *milk_cv_tmp(milk_cv *c, const char *what);
/* The same with another base: "<base>_<what>". */
const char *milk_cv_tmp_for(milk_cv *c, const char *base, const char *what);

/* ---- the model's boundary (convert_io.c) --------------------------------- */

/* Declare the graph inputs with static shapes (params' overrides) and
 * their ONNX types (int64 as int32; bool and rank 0 as they are, for the
 * boundary pass to adapt), and make the frozen ones constants. */
milk_status milk_cv_inputs_add(milk_cv *c, const milk_convert_params *p);
/* Set the graph outputs, each named after its ONNX tensor, and run the
 * boundary pass (milk_pass_io_boundary) on main, whatever rules are
 * selected: bool inputs and outputs are declared int32 with casts
 * inside, rank-0 ones [1] with a squeeze or expand_dims inside. An output
 * not computed by an op of its own (a constant, a graph input, the tensor
 * of another output) is then produced by identity, since Core ML outputs
 * are op outputs. Fills the boundary notes. */
milk_status milk_cv_outputs_add(milk_cv *c);

/* ---- states (convert_state.c) ------------------------------------------- */

/* Check params' --state pairs (graph input and output of one float type
 * and shape; a growing cache refused) and find the node writing each. */
milk_status milk_cv_states_begin(milk_cv *c, const milk_convert_params *p);
/* Lower node n if it is a pair's write (into slice_update, once proven
 * contiguous) or a Slice only that write reads; *handled says so. */
milk_status milk_cv_state_node(milk_cv *c, const milk_onnx_node *n,
                               bool *handled);
/* After the passes: each pair's input becomes a state read at the top,
 * its output a write_state at the end. */
milk_status milk_cv_states_finish(milk_cv *c);
/* The pairs into the conversion's summary. */
void milk_cv_states_stats(const milk_cv *c, milk_convert_stats *stats);

/* ---- errors -------------------------------------------------------------- */

/* Record "fmt..." as the reason the current node is not supported; returns
 * MILK_ERR_UNSUPPORTED. */
milk_status milk_cv_unsupported(milk_cv *c, const char *fmt, ...)
    MILK_PRINTF(2, 3);
/* Record a failure of another kind (invalid model, ...). */
milk_status milk_cv_fail(milk_cv *c, milk_status s, const char *fmt, ...)
    MILK_PRINTF(3, 4);

/* ---- attributes (convert_values.c) ---------------------------------------- */

const milk_onnx_attr *milk_cv_attr(milk_cv *c, const char *name);
milk_status milk_cv_attr_int(milk_cv *c, const char *name, int64_t dflt,
                             int64_t *v);
milk_status milk_cv_attr_float(milk_cv *c, const char *name, double dflt,
                               double *v);
milk_status milk_cv_attr_str(milk_cv *c, const char *name, const char *dflt,
                             const char **v);
/* An INTS attribute: up to max values into v, their number in *n; absent:
 * *n = -1. */
milk_status milk_cv_attr_ints(milk_cv *c, const char *name, int64_t *v,
                              int max, int *n);
/* An INTS attribute of exactly n values; absent: n copies of dflt. */
milk_status milk_cv_attr_ints_n(milk_cv *c, const char *name, int n,
                                int64_t dflt, int64_t *v);

/* ---- inputs and outputs (convert_values.c) ---------------------------------- */

/* True if input i of the current node is given (not omitted, not ""). */
bool milk_cv_has(milk_cv *c, int i);
/* The MIL var of a defined value; a constant not yet a var becomes a
 * const named v->mil. */
milk_status milk_cv_value_var(milk_cv *c, milk_cv_value *v, milk_var **out);
/* Input i as a MIL var (constants become consts on first use). Fails if
 * the input is absent. */
milk_status milk_cv_input(milk_cv *c, int i, milk_var **out);
/* As milk_cv_input, but *out is NULL if the input is absent. */
milk_status milk_cv_input_opt(milk_cv *c, int i, milk_var **out);
/* The MIL type input i has or will have (int64 as int32), without making
 * a const. */
milk_status milk_cv_type(milk_cv *c, int i, milk_tensor_type *t);
/* True if input i is known at conversion time. */
bool milk_cv_is_const(milk_cv *c, int i);
/* Input i as integers (any ONNX integer dtype, exact int64), or as
 * doubles; it must be a constant of at most max elements (a scalar gives
 * one). */
milk_status milk_cv_const_ints(milk_cv *c, int i, int64_t *v, int max,
                               int *n);
milk_status milk_cv_const_floats(milk_cv *c, int i, double *v, int max,
                                 int *n);

/* Record v as the value of the current node's output i. */
milk_status milk_cv_set_out(milk_cv *c, int i, milk_var *v);
/* Record an ONNX tensor as the (constant) value of output i. */
milk_status milk_cv_set_out_tensor(milk_cv *c, int i,
                                   const milk_onnx_tensor *t);
/* A new const for output i, with data of type t (copied). */
milk_status milk_cv_set_out_const(milk_cv *c, int i,
                                  const milk_tensor_type *t,
                                  const void *data);
/* True if output i is named (not omitted). */
bool milk_cv_has_out(milk_cv *c, int i);

/* The MIL dtype of an ONNX tensor element type as the converter uses it
 * (int64 and smaller integers as int32, double as fp32), or INVALID. */
milk_dtype milk_cv_dtype(int32_t onnx_type);

/* ---- emitting ops (convert_build.c) ------------------------------------------ */

#define MILK_CV_MAX_ARGS 32

/* An op being built. Errors stick: after the first, the other calls do
 * nothing and milk_cv_op_end returns it. */
typedef struct milk_cv_op {
    milk_cv *c;
    const char *type;
    const char *name;
    milk_input in[MILK_CV_MAX_ARGS];
    int n_in;
    milk_status s;
} milk_cv_op;

/* Start an op of MIL type `type` named `name` (milk_cv_out or
 * milk_cv_tmp). */
void milk_cv_op_begin(milk_cv_op *o, milk_cv *c, const char *type,
                      const char *name);
/* Bind param to v (nothing if v is NULL). */
void milk_cv_arg(milk_cv_op *o, const char *param, milk_var *v);
/* Bind param to a new const: int32 vector (values range-checked), int32
 * scalar, scalar of a float dtype, bool scalar or vector, string. */
void milk_cv_arg_ints(milk_cv_op *o, const char *param, const int64_t *v,
                      int n);
void milk_cv_arg_int(milk_cv_op *o, const char *param, int64_t v);
void milk_cv_arg_float(milk_cv_op *o, const char *param, double v,
                       milk_dtype dt);
void milk_cv_arg_bool(milk_cv_op *o, const char *param, bool v);
void milk_cv_arg_bools(milk_cv_op *o, const char *param, const bool *v,
                       int n);
void milk_cv_arg_str(milk_cv_op *o, const char *param, const char *s);
/* Add the op (checked and typed by the builder; folded into a const when
 * every input is a small constant). *out (may be NULL) gets output 0. */
milk_status milk_cv_op_end(milk_cv_op *o, milk_var **out);
/* As milk_cv_op_end for ops with several outputs: outs[0..*n-1] get them
 * (at most max). */
milk_status milk_cv_op_end_multi(milk_cv_op *o, milk_var **outs, int max,
                                 int *n);

/* Shorthands: type(x=x); reshape to a static shape; cast to a dtype. */
milk_status milk_cv_unary(milk_cv *c, const char *type, const char *name,
                          milk_var *x, milk_var **out);
milk_status milk_cv_reshape(milk_cv *c, const char *name, milk_var *x,
                            int rank, const int64_t *dims, milk_var **out);
milk_status milk_cv_cast(milk_cv *c, const char *name, milk_var *x,
                         milk_dtype to, milk_var **out);
/* A new const named name (copied data). */
milk_status milk_cv_const(milk_cv *c, const char *name,
                          const milk_tensor_type *t, const void *data,
                          milk_var **out);

/* Try to evaluate the op just appended to the block at conversion time
 * (convert_fold.c): when every input is a constant and the op and its
 * outputs are small, its outputs become consts (keeping their vars). */
milk_status milk_cv_fold(milk_cv *c, milk_op *op);

/* ---- mixed precision (convert_keep.c) ------------------------------------------ */

/* A non-const op and the index of the ONNX node whose lowering emitted it. */
typedef struct milk_cv_origin {
    milk_op *op;
    int node;
} milk_cv_origin;

/* Record the non-const ops at c->b->ops[from..] as emitted by node `node`
 * (called by the driver after each node). */
milk_status milk_cv_origin_record(milk_cv *c, int from, int node);
/* The ops that the n keep_fp32 names designate (see milk_onnx_convert in
 * milk.h), each once, into *out (malloc'd; NULL when none) and *n_out.
 * Unknown names are listed all at once (MILK_ERR_NOT_FOUND). Call before
 * any pass renames or removes vars. */
milk_status milk_cv_keep_resolve(milk_cv *c, const char *const *names, int n,
                                 milk_op ***out, int *n_out);

/* ---- the lowering table (lower.def) ----------------------------------------- */

#define MILK_LOWER(op_type, fn, in, out, doc) \
    milk_status milk_lower_##fn(milk_cv *c, const milk_onnx_node *n);
#include "lower.def"
#undef MILK_LOWER

/* ---- small helpers shared by the lowerings ------------------------------------ */

/* Normalize an ONNX axis (may be negative) into [0, rank). */
milk_status milk_cv_axis(milk_cv *c, const char *what, int64_t axis,
                         int rank, int *out);
/* A float dtype for scalar params of an op on x: x's own if float, else
 * fp32. */
milk_dtype milk_cv_float_dtype(const milk_var *x);

#endif /* MILK_ONNX_CONVERT_H */
