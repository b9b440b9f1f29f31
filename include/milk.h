/*
 * milk.h: the public C API of milk (MIL kit).
 *
 * milk builds, reads, writes and runs Core ML ML Programs (MIL) in plain C.
 *
 * Conventions used throughout this header:
 * - Every function that can fail returns a milk_status. MILK_OK is 0. On
 *   failure a message naming the file, op and field at fault is kept on the
 *   milk_ctx passed in; read it with milk_ctx_error(). No global state.
 * - Handles are opaque. Each X_create/X_load has an X_free; freeing NULL is a
 *   no-op.
 * - Ownership: objects returned through an `out` pointer belong to the
 *   caller unless stated otherwise. Objects reached from a program (its
 *   functions, blocks, ops, vars) belong to the program and live until
 *   milk_program_free(). Strings and arrays passed in are copied unless the
 *   function name says "borrowed".
 * - Dimensions are listed outermost first, as in MIL and ONNX.
 */
#ifndef MILK_H
#define MILK_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ------------------------------------------------------------------ */
/* Status and context                                                  */
/* ------------------------------------------------------------------ */

typedef enum milk_status {
    MILK_OK = 0,
    MILK_ERR_NOMEM,         /* allocation failed */
    MILK_ERR_IO,            /* a file could not be opened, read or written */
    MILK_ERR_PARSE,         /* malformed bytes: protobuf, JSON, blob, .npy */
    MILK_ERR_INVALID_MODEL, /* well-formed but inconsistent or unsafe model */
    MILK_ERR_UNSUPPORTED,   /* valid, but milk does not handle it (yet) */
    MILK_ERR_INVALID_ARG,   /* the caller passed something wrong */
    MILK_ERR_TYPE,          /* type inference failed or disagreed */
    MILK_ERR_NOT_FOUND,     /* a named function, var or op does not exist */
} milk_status;

/* A short constant description of a status ("invalid model", ...). */
const char *milk_status_str(milk_status s);

/* Holds the message of the last failure. One per thread. */
typedef struct milk_ctx milk_ctx;

milk_status milk_ctx_create(milk_ctx **out);
void milk_ctx_free(milk_ctx *ctx);
/* The message of the last failure on ctx ("" if none). Owned by ctx, valid
 * until the next call that fails on ctx. */
const char *milk_ctx_error(const milk_ctx *ctx);
/* The status of the last failure on ctx (MILK_OK if none). */
milk_status milk_ctx_status(const milk_ctx *ctx);
/* Forget the last failure. */
void milk_ctx_clear(milk_ctx *ctx);

/* ------------------------------------------------------------------ */
/* Types                                                               */
/* ------------------------------------------------------------------ */

/* Element types. The values are MIL.proto's DataType codes. */
typedef enum milk_dtype {
    MILK_DTYPE_INVALID = 0,
    MILK_DTYPE_BOOL = 1,
    MILK_DTYPE_STRING = 2,
    MILK_DTYPE_FP16 = 10,
    MILK_DTYPE_FP32 = 11,
    MILK_DTYPE_FP64 = 12,
    MILK_DTYPE_BF16 = 13,
    MILK_DTYPE_INT8 = 21,
    MILK_DTYPE_INT16 = 22,
    MILK_DTYPE_INT32 = 23,
    MILK_DTYPE_INT64 = 24,
    MILK_DTYPE_INT4 = 25,
    MILK_DTYPE_UINT8 = 31,
    MILK_DTYPE_UINT16 = 32,
    MILK_DTYPE_UINT32 = 33,
    MILK_DTYPE_UINT64 = 34,
    MILK_DTYPE_UINT4 = 35,
    MILK_DTYPE_UINT2 = 36,
    MILK_DTYPE_UINT1 = 37,
    MILK_DTYPE_UINT6 = 38,
    MILK_DTYPE_UINT3 = 39,
} milk_dtype;

/* MIL text name of a dtype ("fp32", "int32", ...), or NULL if unknown. */
const char *milk_dtype_name(milk_dtype d);
/* Parse a MIL text name; MILK_DTYPE_INVALID if unknown. */
milk_dtype milk_dtype_from_name(const char *name);
/* Bits per element (16 for fp16, 4 for int4, 0 for string or unknown). */
int milk_dtype_bits(milk_dtype d);

#define MILK_MAX_RANK 8
#define MILK_DIM_UNKNOWN (-1) /* a dimension not known until run time */

/* A tensor type. rank 0 is a scalar. rank < 0 (MILK_RANK_UNKNOWN) means the
 * rank itself is unknown. */
#define MILK_RANK_UNKNOWN (-1)
typedef struct milk_tensor_type {
    milk_dtype dtype;
    int32_t rank;
    int64_t dims[MILK_MAX_RANK];
} milk_tensor_type;

/* Element count, or -1 if a dim or the rank is unknown or the count
 * overflows int64. */
int64_t milk_tensor_type_count(const milk_tensor_type *t);

/* Deployment targets. The value is the Core ML specificationVersion; the
 * ML Program opset follows from it (iOS15 = CoreML5 ... iOS18 = CoreML8). */
typedef enum milk_target {
    MILK_TARGET_IOS15 = 6,
    MILK_TARGET_IOS16 = 7,
    MILK_TARGET_IOS17 = 8,
    MILK_TARGET_IOS18 = 9,
} milk_target;

/* "ios15".."ios18"; NULL for anything else. */
const char *milk_target_name(milk_target t);
/* Parses "ios15".."ios18" (case-insensitive); 0 if unknown. */
milk_target milk_target_from_name(const char *name);

/* ------------------------------------------------------------------ */
/* Programs                                                            */
/* ------------------------------------------------------------------ */

typedef struct milk_program milk_program;   /* a whole ML Program */
typedef struct milk_function milk_function; /* a function such as main */
typedef struct milk_block milk_block;       /* an SSA block of ops */
typedef struct milk_op milk_op;             /* one operation */
typedef struct milk_var milk_var;           /* a named SSA value */

/* An empty program for a deployment target. */
milk_status milk_program_create(milk_ctx *ctx, milk_target target,
                                milk_program **out);
void milk_program_free(milk_program *p);

milk_target milk_program_target(const milk_program *p);

/* Set model metadata. key is one of "author", "license",
 * "shortDescription", "versionString", or any other string, which goes to
 * the user-defined map. value is copied. */
milk_status milk_program_set_metadata(milk_ctx *ctx, milk_program *p,
                                      const char *key, const char *value);
/* The metadata value for key, or NULL. Owned by the program. */
const char *milk_program_metadata(const milk_program *p, const char *key);

/* Add a function. Its opset follows the program's target. */
milk_status milk_program_add_function(milk_ctx *ctx, milk_program *p,
                                      const char *name, milk_function **out);
/* The function called name, or NULL. */
milk_function *milk_program_function(const milk_program *p, const char *name);
int milk_program_function_count(const milk_program *p);
milk_function *milk_program_function_at(const milk_program *p, int i);

const char *milk_function_name(const milk_function *f);
/* The opset name in MIL text form ("ios17"). */
const char *milk_function_opset(const milk_function *f);

/* Declare an input of the function. Inputs are model inputs for main. */
milk_status milk_function_add_input(milk_ctx *ctx, milk_function *f,
                                    const char *name,
                                    const milk_tensor_type *type,
                                    milk_var **out);
int milk_function_input_count(const milk_function *f);
milk_var *milk_function_input(const milk_function *f, int i);
/* The function's top-level block. */
milk_block *milk_function_block(const milk_function *f);

/* Mark v as an output of block b (for main's block: a model output). */
milk_status milk_block_add_output(milk_ctx *ctx, milk_block *b, milk_var *v);
int milk_block_output_count(const milk_block *b);
milk_var *milk_block_output(const milk_block *b, int i);
int milk_block_op_count(const milk_block *b);
milk_op *milk_block_op(const milk_block *b, int i);

/* ---- constants ---------------------------------------------------- */

/* Add a const op producing a tensor of the given type. `data` holds the
 * elements in row-major order, packed as the dtype says (fp16 as IEEE half
 * bits, bool as one byte per element). The data is copied. */
milk_status milk_block_add_const(milk_ctx *ctx, milk_block *b,
                                 const char *name,
                                 const milk_tensor_type *type,
                                 const void *data, milk_var **out);
/* As milk_block_add_const, but the data is not copied: it must stay valid
 * and unchanged until the program is freed. For large weights. */
milk_status milk_block_add_const_borrowed(milk_ctx *ctx, milk_block *b,
                                          const char *name,
                                          const milk_tensor_type *type,
                                          const void *data, milk_var **out);
/* A const whose elements lie in a range of a file, read only when needed
 * (streamed when saving). `path` is copied; the file must exist when the
 * data is needed. The file holds count(type) elements of `stored` dtype at
 * byte `offset`; if `stored` differs from type->dtype the elements are
 * converted (fp32 -> fp16, fp16 -> fp32, int64 -> int32 with range
 * check). */
milk_status milk_block_add_const_file(milk_ctx *ctx, milk_block *b,
                                      const char *name,
                                      const milk_tensor_type *type,
                                      const char *path, uint64_t offset,
                                      milk_dtype stored, milk_var **out);
/* Shorthands for the small parameter consts every op needs. */
milk_status milk_block_add_const_int32s(milk_ctx *ctx, milk_block *b,
                                        const char *name, const int32_t *v,
                                        int n, milk_var **out); /* [n] */
milk_status milk_block_add_const_int32(milk_ctx *ctx, milk_block *b,
                                       const char *name, int32_t v,
                                       milk_var **out); /* scalar */
milk_status milk_block_add_const_fp32(milk_ctx *ctx, milk_block *b,
                                      const char *name, float v,
                                      milk_var **out); /* scalar */
milk_status milk_block_add_const_bool(milk_ctx *ctx, milk_block *b,
                                      const char *name, int v,
                                      milk_var **out); /* scalar */
milk_status milk_block_add_const_string(milk_ctx *ctx, milk_block *b,
                                        const char *name, const char *v,
                                        milk_var **out); /* scalar */

/* ---- operations --------------------------------------------------- */

/* One named input of an op. A variadic parameter (concat's `values`) is
 * given by repeating its name, in order. */
typedef struct milk_input {
    const char *param;
    milk_var *var;
} milk_input;

/* Append an op of the given MIL type ("conv", "relu", ...) to block b.
 * Inputs are checked against the op's signature for the function's opset
 * and output types are inferred at once; any problem is an error naming
 * the op and parameter. The outputs are named after the op (`name` for a
 * single output, `name_0`, `name_1`, ... otherwise); rename them with
 * milk_var_set_name. `out` may be NULL. */
milk_status milk_block_add_op(milk_ctx *ctx, milk_block *b, const char *type,
                              const char *name, const milk_input *inputs,
                              int n_inputs, milk_op **out);

const char *milk_op_type(const milk_op *op);
const char *milk_op_name(const milk_op *op);
int milk_op_output_count(const milk_op *op);
milk_var *milk_op_output(const milk_op *op, int i);
int milk_op_input_count(const milk_op *op); /* number of parameters bound */
/* Parameter name of the i-th bound input, and its number of bindings. */
const char *milk_op_input_param(const milk_op *op, int i);
int milk_op_input_binding_count(const milk_op *op, int i);
/* The var bound at (input i, binding j), or NULL for an inline value. */
milk_var *milk_op_input_var(const milk_op *op, int i, int j);

const char *milk_var_name(const milk_var *v);
const milk_tensor_type *milk_var_type(const milk_var *v);
/* The op producing v, or NULL for a function input. */
milk_op *milk_var_producer(const milk_var *v);
/* Rename v; the name must be a MIL identifier, unique in its function. */
milk_status milk_var_set_name(milk_ctx *ctx, milk_var *v, const char *name);
/* Find a var by name in a function (inputs and every op output). */
milk_var *milk_function_var(const milk_function *f, const char *name);

/* ------------------------------------------------------------------ */
/* Loading, checking, saving, printing                                 */
/* ------------------------------------------------------------------ */

/* Read a .mlpackage directory, or a bare .mlmodel file holding an ML
 * Program, into a program. Everything read is validated; weights in
 * weight.bin are referenced, not read. Every op is checked against its
 * signature and its output types are re-inferred. */
milk_status milk_program_load(milk_ctx *ctx, const char *path,
                              milk_program **out);

/* Check the whole program: signatures, SSA order, names, and that every
 * declared output type agrees with type inference. */
milk_status milk_program_check(milk_ctx *ctx, const milk_program *p);

/* Write the program as a .mlpackage directory at path. The package is
 * written under a temporary name beside path and renamed into place only
 * when complete; an existing package at path is replaced. Weights are
 * streamed to weight.bin in bounded chunks. */
milk_status milk_program_save(milk_ctx *ctx, const milk_program *p,
                              const char *path);

/* Flags for milk_program_print. */
#define MILK_PRINT_VALUES 1u /* print every inline constant in full */

/* Print the program as Core ML model.mil text. */
milk_status milk_program_print(milk_ctx *ctx, const milk_program *p,
                               FILE *out, unsigned flags);


/* ------------------------------------------------------------------ */
/* Running programs: the reference interpreter                        */
/* ------------------------------------------------------------------ */

/* How floating-point vars are computed.
 * AS_DECLARED: every op computes in fp32; the output of an op whose
 *   declared dtype is fp16 is rounded to fp16, as the GPU and the Neural
 *   Engine store it. Values that overflow fp16 are counted per op.
 * FP32: the whole program in fp32 (fp16 vars are not rounded), to separate
 *   precision loss from everything else. */
typedef enum milk_precision {
    MILK_PRECISION_AS_DECLARED = 0,
    MILK_PRECISION_FP32 = 1,
} milk_precision;

typedef struct milk_run_params {
    milk_precision precision;
    int keep_all;        /* keep every intermediate value for reading */
    int reference;       /* use only the plain reference kernels */
    const char *function; /* function to run; NULL means "main" */
} milk_run_params;

typedef struct milk_runner milk_runner;

/* A runner for one function of p (which must outlive the runner).
 * params may be NULL for the defaults (as-declared, main). */
milk_status milk_runner_create(milk_ctx *ctx, const milk_program *p,
                               const milk_run_params *params,
                               milk_runner **out);
void milk_runner_free(milk_runner *r);

/* Set the input called name. `type` describes `data` (fp32, fp16, int32,
 * int64 or bool, row-major); its shape must equal the declared one and its
 * dtype must match the declared dtype, except that fp32 data for an fp16
 * input and fp16 data for an fp32 input are converted. The data is copied. */
milk_status milk_runner_set_input(milk_ctx *ctx, milk_runner *r,
                                  const char *name,
                                  const milk_tensor_type *type,
                                  const void *data);
/* Keep the value of the var called name after the run (outputs are always
 * kept). Without this, each value is freed as soon as no later op needs
 * it. */
milk_status milk_runner_keep(milk_ctx *ctx, milk_runner *r, const char *name);
/* Run the function on the inputs set. */
milk_status milk_runner_run(milk_ctx *ctx, milk_runner *r);

/* The var called name after a run: its type (with the dtype as declared)
 * and its elements converted to `as` (MILK_DTYPE_FP32, FP16, INT32 or
 * BOOL) into dst, which holds `cap` bytes. MILK_ERR_NOT_FOUND if the var
 * was not kept. */
milk_status milk_runner_read(milk_ctx *ctx, const milk_runner *r,
                             const char *name, milk_dtype as, void *dst,
                             size_t cap);
/* The type of a kept var (NULL if not kept). */
const milk_tensor_type *milk_runner_type(const milk_runner *r,
                                         const char *name);

/* Per-op numeric statistics of the last run (in program order over the
 * function's top-level ops, consts included). */
typedef struct milk_op_stats {
    const milk_op *op;
    int64_t n_nan;        /* NaN in the op's outputs */
    int64_t n_inf;        /* +-inf in the op's outputs */
    int64_t n_overflow;   /* fp16 outputs whose fp32 value exceeded 65504 */
    double max_abs;       /* largest finite |value| before rounding */
} milk_op_stats;

int milk_runner_op_count(const milk_runner *r);
const milk_op_stats *milk_runner_op_stats(const milk_runner *r, int i);

#ifdef __cplusplus
}
#endif

#endif /* MILK_H */
