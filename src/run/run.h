/*
 * run.h: the reference interpreter's runtime tensors and the context a
 * kernel receives.
 *
 * Storage: every floating dtype (fp16, fp32, ...) is held as fp32; every
 * integer dtype as int32; bool as one byte. An fp16 var therefore lives in
 * fp32 storage, and in MILK_PRECISION_AS_DECLARED the runner rounds it to
 * fp16 after the op that produced it, so kernels only ever see three
 * storage types and compute in fp32 (accumulating in double where cheap).
 *
 * A kernel (`eval` in the op table) reads its inputs with milk_eval_in*(),
 * its constant parameters with the op.h helpers (milk_op_int, milk_op_ints,
 * milk_op_str, ...) or, for parameters that may be runtime values
 * (reshape's shape, slice's begin), with milk_eval_ints(), and writes its
 * outputs, which the runner has allocated with the types inferred for them:
 * ec->out[i]. Those types are always concrete: in a program with flexible
 * shapes the runner infers them again for each run from the run's inputs
 * (specialize.c), so kernels never see an unknown dim.
 */
#ifndef MILK_RUN_H
#define MILK_RUN_H

#include "../ops/op.h"

typedef struct milk_rt {
    milk_tensor_type type; /* the var's type: dtype as declared */
    milk_dtype store;      /* MILK_DTYPE_FP32, MILK_DTYPE_INT32 or BOOL */
    int64_t count;         /* elements */
    void *data;            /* count elements of `store` */
    void *owned;           /* malloc'd block to free (NULL if borrowed) */
} milk_rt;

/* The storage dtype for a declared dtype, or INVALID (strings). */
milk_dtype milk_rt_store(milk_dtype declared);

static inline float *milk_rt_f32(const milk_rt *t) { return (float *)t->data; }
static inline int32_t *milk_rt_i32(const milk_rt *t) { return (int32_t *)t->data; }
static inline uint8_t *milk_rt_bool(const milk_rt *t) { return (uint8_t *)t->data; }

/* Allocate t for type (zero-filled); fails on unknown dims or overflow. */
milk_status milk_rt_alloc(milk_ctx *ctx, milk_rt *t,
                          const milk_tensor_type *type);
void milk_rt_release(milk_rt *t);
/* "tensor<fp32, [1, ?, 4]>" ("[*]" for an unknown rank) into buf (n
 * bytes), for messages; returns buf. */
const char *milk_type_str(const milk_tensor_type *t, char *buf, size_t n);
/* True if t's rank and every one of its dims are known. */
bool milk_type_concrete(const milk_tensor_type *t);
/* Fill t from a constant value (converting to the storage dtype). */
milk_status milk_rt_from_value(milk_ctx *ctx, milk_rt *t, const milk_value *v);

typedef struct milk_eval {
    milk_ctx *ctx;
    const milk_op *op;
    milk_precision precision;
    const milk_rt *const *const *in; /* in[arg][binding], parallel to op->args */
    milk_rt *out;                   /* op->n_outputs tensors */
    int n_out;
} milk_eval;

/* Runtime input bound to param (binding 0, or i), NULL if absent. */
const milk_rt *milk_eval_in(const milk_eval *ec, const char *param);
const milk_rt *milk_eval_in_at(const milk_eval *ec, const char *param, int i);
int milk_eval_in_count(const milk_eval *ec, const char *param);
/* An integer vector or scalar input (const or runtime), like milk_op_ints. */
milk_status milk_eval_ints(const milk_eval *ec, const char *param, int64_t *v,
                           int max, int *n, bool *present);
/* A float scalar input (const or runtime); dflt if absent. */
milk_status milk_eval_f32(const milk_eval *ec, const char *param, float dflt,
                          float *v);

/* Evaluate op, whose every input is a compile-time constant, with its
 * reference kernel; vals[k] gets output k as a new tensor value in arena,
 * in the output's declared dtype (fp16 rounded). Fails (with the kernel's
 * status) if the op cannot be evaluated; the program is not changed. */
milk_status milk_op_fold(milk_ctx *ctx, const milk_op *op, milk_arena *arena,
                         milk_value **vals);

/* ---- states (state.c) ---------------------------------------------------- */

/* The values of a program's states (the public milk_state): one fp32
 * storage tensor per distinct state name among its functions, and
 * whether it holds a value (milk_state_clear unsets them). */
struct milk_state {
    const milk_program *p;
    int n;
    const char **names;     /* the program's arena */
    milk_rt *vals;          /* type: fp16, the static shape */
    bool *set;
};

/* Slot of the state called name in s, or -1. */
int milk_state_slot(const milk_state *s, const char *name);

/* ---- run-time specialization (specialize.c) ---------------------------- */

/* The concrete types of op's outputs in one run of a program with flexible
 * shapes. Type inference runs on a stand-in for op (built in `scratch`; the
 * program is not changed) whose bindings to run-time vars carry the types
 * of their tensors in this run, in[arg][binding] as milk_eval has them.
 * Where that leaves a size unknown, inference runs again with small integer
 * vectors and numeric scalars computed by the run (a reshape's shape, a
 * slice's begin, range_1d's end) standing in for constants. Dims that
 * inference leaves unknown are taken from the declared types, which must
 * agree with the rest. Fails naming the op and input when a type stays
 * unknown; messages describe the run's inputs of the op. out has
 * op->n_outputs entries. */
milk_status milk_spec_outputs(milk_ctx *ctx, const milk_op *op,
                              const milk_rt *const *const *in,
                              milk_arena *scratch, milk_tensor_type *out);

/* Row-major strides of a shape (elements). */
void milk_strides(const milk_tensor_type *t, int64_t *strides);
/* t viewed as [outer, n, inner] around one axis. */
void milk_around_axis(const milk_tensor_type *t, int axis, int64_t *outer,
                      int64_t *n, int64_t *inner);

/* Walks the elements of a broadcast output in row-major order, keeping the
 * offsets of the corresponding elements of two inputs (NumPy rules):
 *   milk_bcast it; milk_bcast_init(&it, &out, &a, &b);
 *   for (int64_t i = 0; i < n; i++, milk_bcast_next(&it)) use it.ia, it.ib */
typedef struct milk_bcast {
    int rank;
    int64_t dims[MILK_MAX_RANK], idx[MILK_MAX_RANK];
    int64_t sa[MILK_MAX_RANK], sb[MILK_MAX_RANK]; /* 0 on broadcast dims */
    int64_t ia, ib;
} milk_bcast;
void milk_bcast_init(milk_bcast *it, const milk_tensor_type *out,
                     const milk_tensor_type *a, const milk_tensor_type *b);
void milk_bcast_next(milk_bcast *it);

#endif /* MILK_RUN_H */
