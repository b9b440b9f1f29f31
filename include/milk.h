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
 * ML Program opset follows from it (iOS15 = CoreML5 ... iOS18 = CoreML8,
 * iOS26 = CoreML9, which adds int8 model inputs and outputs and no op). */
typedef enum milk_target {
    MILK_TARGET_IOS15 = 6,
    MILK_TARGET_IOS16 = 7,
    MILK_TARGET_IOS17 = 8,
    MILK_TARGET_IOS18 = 9,
    MILK_TARGET_IOS26 = 10,
} milk_target;

/* "ios15".."ios18", "ios26"; NULL for anything else. */
const char *milk_target_name(milk_target t);
/* Parses a target by its iOS name or the name of the same release on
 * another OS (case-insensitive), as coremltools' ct.target does: ios15,
 * macos12, tvos15, watchos8 (spec 6); ios16, macos13, tvos16, watchos9
 * (7); ios17, macos14, tvos17, watchos10, visionos1 (8); ios18, macos15,
 * tvos18, watchos11, visionos2 (9); ios26, macos26, tvos26, watchos26,
 * visionos26 (10). 0 if unknown. */
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
/* Print large constants by a hash of their content instead of where they
 * live, so that equal weights in different files print the same. Reads
 * every weight. */
#define MILK_PRINT_HASH 2u
/* Instead of the program: what its constants take by dtype (as stored,
 * sub-byte types packed) and each compressed weight (a constexpr_* op
 * output read by other ops): how it is compressed, its stored bytes
 * against its expanded bytes and the ratio. */
#define MILK_PRINT_SUMMARY 4u

/* Print the program as Core ML model.mil text. */
milk_status milk_program_print(milk_ctx *ctx, const milk_program *p,
                               FILE *out, unsigned flags);

/* Compare two programs: prints a unified diff of their model.mil text
 * (constants compared by content, not by where they are stored) to out,
 * with `context` lines around each change, labelled name_a and name_b.
 * *differ is set to whether anything differs. */
milk_status milk_program_diff(milk_ctx *ctx, const milk_program *a,
                              const milk_program *b, const char *name_a,
                              const char *name_b, int context, FILE *out,
                              int *differ);


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
    /* Called after each op of a run with the number of ops done and the
     * total (for progress displays); NULL for none. */
    void (*progress)(void *user, int done, int total);
    void *progress_user;
    /* Threads of the run (0 or 1: the caller's thread alone). Kernels split
     * their work by output channels or rows in a way fixed by the shapes,
     * so results are bit-identical for every count. */
    int threads;
} milk_run_params;

typedef struct milk_runner milk_runner;

/* A runner for one function of p (which must outlive the runner).
 * params may be NULL for the defaults (as-declared, main).
 *
 * Unless params->reference is set, the runner plans the function (see
 * docs/design.md, "The planned interpreter"): types once per set of input
 * shapes, one arena for every intermediate value placed by lifetime,
 * constants used in place from the mapped weight file, SIMD and BLAS
 * kernels with fused bias and activation epilogues, tested against the
 * reference kernels. A plan is made again only when the inputs' shapes
 * change (or milk_runner_keep asks for another value). Programs whose
 * sizes depend on values computed at run time run op by op. */
milk_status milk_runner_create(milk_ctx *ctx, const milk_program *p,
                               const milk_run_params *params,
                               milk_runner **out);
void milk_runner_free(milk_runner *r);

/* Set the input called name. `type` describes `data` (fp32, fp16, int32,
 * int64 or bool, row-major); its shape must fit the declared one (the same
 * rank, the known dims equal, any size >= 1 where a dim is unknown) and,
 * when the program has a model description with a shape range or
 * enumerated shapes for the input (a package made with flexible shapes),
 * lie in that range or be one of those shapes; the error message lists
 * what is allowed. Its dtype must match the declared dtype, except that
 * fp32 data for an fp16 input and fp16 data for an fp32 input are
 * converted. The data is copied. */
milk_status milk_runner_set_input(milk_ctx *ctx, milk_runner *r,
                                  const char *name,
                                  const milk_tensor_type *type,
                                  const void *data);
/* Keep the value of the var called name after the run (outputs are always
 * kept). Without this, each value is freed as soon as no later op needs
 * it. */
milk_status milk_runner_keep(milk_ctx *ctx, milk_runner *r, const char *name);
/* Run the function on the inputs set. A program whose types are all known
 * runs as declared. In one with flexible shapes (unknown dims in inputs
 * or op outputs: flexible inputs, or sizes computed at run time, such as
 * a reshape whose shape comes from a shape op), the output types of an op
 * are inferred again in each run from the concrete types of its inputs
 * and, for parameters that are run-time values (reshape's shape, a slice's
 * begin and end, pad's pad, tile's reps, fill's shape, range_1d's bounds),
 * from the values computed so far; the program is not changed. A size
 * that is invalid for the values of the run (a negative one), or that
 * cannot be made known, is an error (MILK_ERR_TYPE) naming the op and the
 * input, with the run's types and values of the op's inputs. */
milk_status milk_runner_run(milk_ctx *ctx, milk_runner *r);

/* The var called name after a run: its type (with the dtype as declared)
 * and its elements converted to `as` (MILK_DTYPE_FP32, FP16, INT32 or
 * BOOL) into dst, which holds `cap` bytes. MILK_ERR_NOT_FOUND if the var
 * was not kept. */
milk_status milk_runner_read(milk_ctx *ctx, const milk_runner *r,
                             const char *name, milk_dtype as, void *dst,
                             size_t cap);
/* Write vars of the last run to an .npz at path, keyed by var name: the
 * n vars in names, or with names NULL every var that has a value (inputs
 * first, then op outputs in program order). Each is written in the dtype
 * its declaration implies: fp16 vars as fp16 in as-declared mode (fp32 in
 * fp32 mode), other floats fp32, integers int32, bools bool. */
milk_status milk_runner_save_npz(milk_ctx *ctx, const milk_runner *r,
                                 const char *const *names, int n,
                                 const char *path);
/* The function a runner runs, and its precision mode. */
const milk_function *milk_runner_function(const milk_runner *r);
milk_precision milk_runner_precision(const milk_runner *r);

/* The type of a kept var in the last run (NULL if not kept): the shape
 * given for an input, the concrete shape computed for the others (which may
 * differ from run to run in a program with flexible shapes). */
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

/* ------------------------------------------------------------------ */
/* Converting ONNX models                                              */
/* ------------------------------------------------------------------ */

/* The precision of the converted program's floating-point math.
 * FP16 (coremltools' default for ML Programs): float constants are stored
 * as fp16 and every op computes in fp16; model inputs and outputs are fp16
 * from iOS16 on, and stay fp32 (with casts at the boundary) for iOS15,
 * which has no fp16 model I/O.
 * FP32: the program computes in fp32, as the ONNX graph does. */
typedef enum milk_convert_precision {
    MILK_CONVERT_FP16 = 0,
    MILK_CONVERT_FP32 = 1,
} milk_convert_precision;

/* A fixed shape for one graph input, for models exported with dynamic
 * axes: every dimension of every input must be known at conversion time. */
typedef struct milk_input_shape {
    char name[256];
    int rank;
    int64_t dims[MILK_MAX_RANK];
} milk_input_shape;

/* Parse "NAME=d0,d1,..." (e.g. "x=1,3,224,224"; the last '=' separates
 * the name) into *out. MILK_ERR_INVALID_ARG with a message if malformed. */
milk_status milk_input_shape_parse(milk_ctx *ctx, const char *spec,
                                   milk_input_shape *out);

/* A value for one graph input, fixed at conversion time (`milk convert
 * --freeze NAME=FILE.npy`): the input becomes a constant of the program
 * and is no longer a model input. For models whose shapes, scales, pads
 * or axes are graph inputs, which milk needs at conversion time. The
 * data's shape must be the input's (where the model gives dims) and its
 * dtype of the input's kind: an integer dtype for an integer input (each
 * value must fit the input's type), fp16, fp32 or fp64 for a float input,
 * bool for a bool input. At most 2^24 elements. */
typedef struct milk_frozen_input {
    const char *name;      /* the graph input's ONNX name */
    milk_tensor_type type; /* of data: rank 0..MILK_MAX_RANK, dims >= 0 */
    const void *data;      /* row-major, little-endian, bool one byte (0/1)
                            * per element; copied during the call */
    const char *origin;    /* where the value came from (a file name), for
                            * messages; may be NULL */
} milk_frozen_input;

/* What a conversion did, for reports. The notes list the inputs and
 * outputs concerned ("input 'x', output 'y'"), "" if none. */
typedef struct milk_convert_stats {
    int onnx_nodes;        /* nodes in the ONNX graph */
    int64_t onnx_opset;    /* the default domain's opset */
    int mil_ops;           /* ops in main, consts not counted */
    int mil_consts;        /* const ops in main */
    int folded;            /* ops evaluated at conversion time into consts */
    uint64_t weight_bytes; /* bytes of constant data, at the declared dtypes */
    int int64_io;          /* graph inputs/outputs changed from int64 to int32 */
    char note[512];        /* names of those inputs/outputs, "" if none */
    int kept_fp32;         /* ops computing in fp32 because of keep_fp32 */
    int bool_io;           /* bool inputs/outputs declared int32, cast inside */
    char bool_note[512];
    int scalar_io;         /* rank-0 inputs/outputs declared [1] inside */
    char scalar_note[512];
    int identity_outputs;  /* outputs not computed by an op of their own,
                            * produced by identity */
    char identity_note[512]; /* each with what it is: "output 'y' (a
                              * constant)", "(graph input 'x')", ... */
    int frozen;            /* graph inputs made constants (freeze) */
    int states;            /* --state pairs made Core ML states */
    char state_note[512];  /* each pair and how its write was lowered */
} milk_convert_stats;

/* A KV cache for milk_onnx_convert's states: graph input `input` and graph
 * output `output` (the cache with this step written) become one Core ML
 * state (`milk convert --state IN=OUT`). */
typedef struct milk_state_pair {
    const char *input, *output;
} milk_state_pair;

typedef struct milk_convert_params {
    milk_target target;                /* 0 means MILK_TARGET_IOS17 */
    milk_convert_precision precision;  /* 0 means fp16 */
    const milk_input_shape *input_shapes; /* n_input_shapes overrides */
    int n_input_shapes;
    milk_convert_stats *stats;         /* filled on success when not NULL */
    /* The Core ML defect rules applied to the converted program (see
     * milk_rules_apply below): the compute units, precision and rule ids
     * of these options (borrowed for the call); their target is ignored,
     * the conversion's is used. NULL: all compute units, every rule. */
    const struct milk_rule_options *rules;
    /* When not NULL, the rule hits (rewrites, warnings) and the general
     * simplifications of the conversion are appended to it. */
    struct milk_rule_report *report;
    /* Mixed precision: in an fp16 conversion, these ops compute in fp32
     * (n_keep_fp32 names, borrowed for the call; see milk_onnx_convert). */
    const char *const *keep_fp32;
    int n_keep_fp32;
    /* Graph inputs given values at conversion time (n_freeze entries,
     * borrowed for the call; see milk_frozen_input). */
    const milk_frozen_input *freeze;
    int n_freeze;
    /* Compress the weights of the converted program (after everything
     * else; see milk_program_compress), NULL for none; report (may be
     * NULL) gets its rows. */
    const struct milk_compress_params *compress;
    struct milk_compress_report *compress_report;
    /* Graph input/output pairs made Core ML states (n_states pairs,
     * borrowed for the call; see milk_onnx_convert). */
    const milk_state_pair *states;
    int n_states;
} milk_convert_params;

/* Convert the ONNX model at `path` to an ML Program (function main).
 * params may be NULL for the defaults (iOS17, fp16).
 *
 * Every graph input needs a static shape (from the file or an override),
 * unless it is frozen (params->freeze: it becomes a constant). Weights
 * stay in the .onnx file (or its external data files) and are read only
 * when the program is saved or run, so those files must exist until then.
 * MIL has no int64 at run time: int64 tensors become int32 (constants
 * range-checked), int64 graph inputs and outputs too.
 *
 * The model's boundary, as Core ML takes it: a bool graph input or
 * output is declared int32 (0 or 1; coremltools declares fp32), with a
 * cast to or from bool inside; a rank-0 (scalar) one is declared of
 * shape [1], with a squeeze or expand_dims inside; an output that no op
 * computes (a constant, a graph input passed through, or the same tensor
 * as another output) is produced by an identity op, since every Core ML
 * output is an op's output. An output with the name of a graph input
 * cannot be expressed (MILK_ERR_UNSUPPORTED), nor, below iOS18, a model
 * left without inputs (Core ML takes those from specificationVersion 9).
 * The stats say what was changed.
 *
 * Names: the MIL var holding ONNX tensor T is named milk_mil_name(T);
 * when two tensors give the same name, the later one (in the order graph
 * inputs, initializers, node outputs) gets a suffix _0, _1, ... Helper ops
 * a lowering adds get names that no ONNX tensor takes. A tensor that is
 * another tensor unchanged (Identity, Dropout, a Cast to its own type) has
 * no var of its own, and neither has one that the simplification below
 * finds unchanged (a Reshape to its own shape, a Transpose with the
 * identity permutation, a zero Pad, ...): readers use the input's var.
 * The fp16 pass keeps these names (casts it inserts are new vars); for
 * iOS15 the fp32 model outputs keep the output names. Defect rewrites
 * keep the name of the op they replace (helper ops get fresh names).
 *
 * After lowering, the program goes through: dead code removal; the fp16
 * pass (fp16 precision); milk_program_simplify (dead code, folding,
 * equal constants merged, identity-like ops removed); milk_rules_apply
 * with params->rules, which rewrites the defect patterns selected for
 * the compute units (e.g. a 1-D conv_transpose with a bias lifted to 2-D
 * for the Neural Engine) and fails with MILK_ERR_UNSUPPORTED, naming the
 * rules and ops, when a selected "refuse" rule matches (a dimension above
 * 16384 for the GPU or the Neural Engine, ...).
 *
 * Mixed precision: each name in keep_fp32 is an ONNX node name, an ONNX
 * tensor name (the node computing it is meant) or a MIL var name of the
 * converted program (as `milk verify` prints them; a helper op's var
 * means the node that emitted it). Every op the node's lowering emitted
 * then computes in fp32, its weights stay fp32, and casts convert its
 * fp16 inputs to fp32 and its outputs back to fp16 for fp16 readers; a
 * model output it computes stays fp32. Names are checked whatever the
 * precision; an unknown name, or one naming a model input or a constant,
 * is MILK_ERR_NOT_FOUND (all of them in one message).
 *
 * On failure nothing is returned. Unsupported nodes are all listed in one
 * message (node name, op type, reason) with MILK_ERR_UNSUPPORTED; other
 * failures are MILK_ERR_IO, MILK_ERR_PARSE, MILK_ERR_INVALID_MODEL,
 * MILK_ERR_INVALID_ARG (bad params, unknown input in an override or a
 * freeze, a frozen value of the wrong shape or dtype, a dynamic dim left)
 * or MILK_ERR_TYPE. */
milk_status milk_onnx_convert(milk_ctx *ctx, const char *path,
                              const milk_convert_params *params,
                              milk_program **out);

/* The MIL identifier for an ONNX name, by coremltools' rules: characters
 * outside [A-Za-z0-9_] become '_'; then a name not starting with a letter
 * or '_' gets the prefix "var_"; MIL's reserved words get the suffix
 * "_workaround" (so "/ln1/Add_output_0" becomes "_ln1_Add_output_0" and
 * "0" becomes "var_0"). Writes at most cap bytes (NUL included) to buf and
 * returns the length the full name needs. */
size_t milk_mil_name(const char *name, char *buf, size_t cap);

/* The lowering table: row i (0 <= i < count) gives an ONNX op type and a
 * line saying what the lowering supports and what it refuses. */
int milk_onnx_lowering_count(void);
void milk_onnx_lowering(int i, const char **op_type, const char **doc);
/* Row i's arity, as ONNX's schemas give it over the opsets milk converts:
 * the fewest and most inputs and outputs a node may have (max -1: no
 * limit). The first min_in inputs and min_out outputs are required. The
 * converter refuses a node outside them before lowering it. */
void milk_onnx_lowering_arity(int i, int *min_in, int *max_in, int *min_out,
                              int *max_out);

/* ------------------------------------------------------------------ */
/* Core ML defect rules, rewrite passes, lint                          */
/* ------------------------------------------------------------------ */

/* Core ML computes some programs wrongly, or refuses them, depending on
 * the op's parameters, the compute unit and the OS version
 * (docs/coreml-defects.md). milk keeps one rule per known defect
 * (docs/defects.md, generated from the table): a matcher for the pattern,
 * the scope where the defect shows, an action and, for rules that
 * rewrite, a pass that turns the pattern into an equivalent program
 * without it (each proved equivalent by the interpreter in the tests). */

/* The compute units the model is meant for (MLComputeUnits). */
typedef enum milk_compute_units {
    MILK_UNITS_ALL = 0,     /* CPU, GPU and Neural Engine (the default) */
    MILK_UNITS_CPU_ONLY = 1,
    MILK_UNITS_CPU_AND_GPU = 2,
    MILK_UNITS_CPU_AND_NE = 3,
    MILK_UNITS_INVALID = -1,
} milk_compute_units;

/* "all", "cpu_only", "cpu_and_gpu", "cpu_and_ne"; NULL for anything else. */
const char *milk_compute_units_name(milk_compute_units u);
/* Parses those names (case-insensitive); MILK_UNITS_INVALID if unknown. */
milk_compute_units milk_compute_units_from_name(const char *name);

typedef enum milk_rule_action {
    MILK_RULE_REWRITE = 0, /* milk rewrites the pattern away */
    MILK_RULE_WARN = 1,    /* reported only */
    MILK_RULE_REFUSE = 2,  /* the program cannot be made to work: refused */
} milk_rule_action;

typedef enum milk_rule_severity {
    MILK_SEVERITY_INFO = 0,
    MILK_SEVERITY_WARNING = 1,
    MILK_SEVERITY_ERROR = 2, /* wrong results, or a load/compile failure */
} milk_rule_severity;

/* "rewrite"/"warn"/"refuse" and "info"/"warning"/"error". */
const char *milk_rule_action_name(milk_rule_action a);
const char *milk_rule_severity_name(milk_rule_severity s);

/* One row of the rule table. Every string is static. */
typedef struct milk_rule_info {
    const char *id;        /* stable id, as in docs/coreml-defects.md */
    const char *category;  /* "wrong results", "fp16 overflow", "refused" */
    const char *condition; /* what the matcher looks for */
    const char *scope;     /* where the defect shows (units, targets, dtype) */
    milk_rule_action action;
    milk_rule_severity severity;
    const char *source;    /* issue threads or code it comes from */
    const char *fix;       /* the suggested fix, one line */
    const char *note;      /* a remark, or "" */
} milk_rule_info;

int milk_rule_count(void);
/* Row i (0 <= i < milk_rule_count()), or NULL. */
const milk_rule_info *milk_rule_at(int i);
/* The row with this id, or NULL. */
const milk_rule_info *milk_rule_find(const char *id);

/* How an op's precision is judged by the fp16 rules. */
typedef enum milk_rule_precision {
    /* An op computes in fp16 when its dtype is fp16, or when the Neural
     * Engine is among the compute units (it computes in fp16 whatever the
     * model declares). */
    MILK_RULE_PRECISION_AS_DECLARED = 0,
    /* Every floating-point op counts as fp16 (a program about to be
     * converted to fp16, or run on the GPU with low precision). */
    MILK_RULE_PRECISION_FP16 = 1,
} milk_rule_precision;

/* Which rules apply. Zero-initialized options mean: the program's own
 * target, all compute units, precision as declared, every rule on. A rule
 * is selected when the compute units include one it concerns and the
 * target lies in its range; `enable` selects a rule whatever its scope
 * (and makes its fp16 condition true), `disable` turns it off. The
 * special id "all" in `disable` turns off every rule not listed in
 * `enable`. An unknown id is MILK_ERR_INVALID_ARG. The arrays are
 * borrowed for the duration of the call. */
typedef struct milk_rule_options {
    milk_target target;              /* 0: the program's target */
    milk_compute_units units;        /* MILK_UNITS_ALL by default */
    milk_rule_precision precision;
    const char *const *enable;       /* n_enable rule ids */
    int n_enable;
    const char *const *disable;      /* n_disable rule ids, or "all" */
    int n_disable;
} milk_rule_options;

/* One finding: a rule matched an op (or a function's inputs and outputs,
 * then op is "" and op_type names what was checked), and what was done. */
typedef struct milk_rule_hit {
    const milk_rule_info *rule; /* NULL for a general pass */
    const char *pass;      /* the rule id, or the general pass's name */
    const char *function;  /* "main" */
    const char *op;        /* the op's name as it was when matched */
    const char *op_type;
    const char *detail;    /* the condition met, with the values found */
    int fixed;             /* 1: rewritten away */
    const char *touched;   /* fixed: the ops removed and created */
} milk_rule_hit;

/* Findings of milk_rules_check / milk_rules_apply / milk_program_simplify,
 * in the order found. Strings are owned by the report. */
typedef struct milk_rule_report milk_rule_report;

milk_status milk_rule_report_create(milk_ctx *ctx, milk_rule_report **out);
void milk_rule_report_free(milk_rule_report *r);
int milk_rule_report_count(const milk_rule_report *r);
const milk_rule_hit *milk_rule_report_at(const milk_rule_report *r, int i);
/* Number of hits not fixed whose severity is at least `at_least`. */
int milk_rule_report_unfixed(const milk_rule_report *r,
                             milk_rule_severity at_least);

/* Lint: append to `report` one hit per selected rule and matching op, in
 * program order, rule by rule. The program is not changed. opts may be
 * NULL (defaults). */
milk_status milk_rules_check(milk_ctx *ctx, const milk_program *p,
                             const milk_rule_options *opts,
                             milk_rule_report *report);

/* Apply the selected rules to p, as a converter does at the end of
 * conversion (milk's ONNX converter calls it) and `milk lint --fix` does
 * for any package:
 * 1. If a selected rule with action "refuse" matches, fail with
 *    MILK_ERR_UNSUPPORTED naming every such op and rule; p is unchanged.
 * 2. Run the rewrite pass of every selected "rewrite" rule on each op it
 *    matches, rule by rule, until no rule rewrites anything more (a pass
 *    may decline an instance it cannot rewrite exactly; the hit then
 *    stays, with the reason). Each rewrite appends a hit with fixed = 1
 *    and the ops it removed and created. Model output names are kept.
 * 3. Remove dead ops, check the program (milk_program_check), and append
 *    every selected rule that still matches (warnings, declined
 *    rewrites) as a hit with fixed = 0.
 * report may be NULL. On failure after step 1 the program may be partly
 * rewritten: discard it. */
milk_status milk_rules_apply(milk_ctx *ctx, milk_program *p,
                             const milk_rule_options *opts,
                             milk_rule_report *report);

/* General passes of milk_program_simplify. */
#define MILK_SIMPLIFY_DCE 1u      /* remove ops whose outputs are unused */
#define MILK_SIMPLIFY_FOLD 2u     /* evaluate ops whose inputs are all
                                     constants (reference kernels) */
#define MILK_SIMPLIFY_DEDUP 4u    /* merge equal constants */
#define MILK_SIMPLIFY_IDENTITY 8u /* remove identity-like ops: identity,
                                     reshape/transpose/cast/squeeze/slice
                                     that change nothing, zero pad */
#define MILK_SIMPLIFY_ALL 15u

/* Run the chosen general passes on every function of p, repeating until
 * nothing changes, then check the program. Model input and output names
 * are kept. Each change is appended to report (may be NULL) as a hit with
 * pass "dce", "fold", "dedup" or "identity" and fixed = 1. Folding keeps
 * each constant it makes no larger than its inputs (or 65536 elements),
 * and never evaluates constexpr_* or random ops. */
milk_status milk_program_simplify(milk_ctx *ctx, milk_program *p,
                                  unsigned passes, milk_rule_report *report);

/* ------------------------------------------------------------------ */
/* Verifying and extracting (src/verify)                               */
/* ------------------------------------------------------------------ */

/* Comparing a run with reference values, tensor by tensor.
 *
 * milk runs the program under test (main) keeping the intermediate
 * values it needs and compares each op output that has a reference
 * value: the tensor of the same name in an .npz file
 * (milk_verify_reference), or the var of the same name in a reference
 * program run on the same inputs (milk_verify_programs). Each compared
 * var gives a row, in program order. Shapes must agree, dims of size 1
 * aside ([1, 10] against [10] is compared); a reference of another shape
 * is an infinite error (shape_mismatch).
 *
 * A tensor matches when  max|got - want| <= atol + rtol * max|want|  over
 * its elements, after NaN/inf agreement: a NaN where the reference has
 * NaN, or an inf of the reference's sign, counts as an error of 0; any
 * other non-finite disagreement is an infinite error. The row reports
 * max abs error, max relative error (max abs error / max|want|) and the
 * signal-to-noise ratio 10 log10(sum want^2 / sum (got - want)^2) in dB
 * (+inf when the tensors are equal).
 *
 * Default tolerances, by the precision of the values: fp16 when the
 * reference is fp16, or the var is fp16 or computed from fp16 values (a
 * cast back to fp32 keeps fp16's error), else fp32. An fp32 program
 * against an fp32 reference differs only by summation order, some 1e-7
 * relative per op, growing with depth; an fp16 program rounds every
 * value to 11 significant bits (4.9e-4 relative) and accumulates that
 * over its layers. The atol terms only matter for tensors that are
 * nearly zero. */
#define MILK_VERIFY_RTOL_FP32 1e-4
#define MILK_VERIFY_ATOL_FP32 1e-6
#define MILK_VERIFY_RTOL_FP16 1e-2
#define MILK_VERIFY_ATOL_FP16 1e-3

/* milk_verify_params.flags */
#define MILK_VERIFY_SET_ATOL 1u /* use params.atol for every var */
#define MILK_VERIFY_SET_RTOL 2u /* use params.rtol for every var */
#define MILK_VERIFY_SET_SEED 4u /* use params.seed for random inputs */
/* Stop comparing at the first var (in program order) beyond tolerance:
 * the table ends there (the runs themselves are complete). */
#define MILK_VERIFY_FAIL_FAST 8u

/* Which statistic of the error decides whether a var matches, with
 * scale = max|want| over the reference's finite elements (as polygraphy's
 * --check-error-stat, with milk's relative error):
 * MAX (default): max|got - want| <= atol + rtol * scale;
 * MEAN: mean|got - want| <= atol + rtol * scale;
 * MEDIAN: median|got - want| <= atol + rtol * scale (a few wild elements
 *   pass);
 * ELEMWISE: every element |got - want| <= atol + rtol * |want| (NumPy's
 *   allclose). */
typedef enum milk_verify_stat {
    MILK_VERIFY_STAT_MAX = 0,
    MILK_VERIFY_STAT_MEAN = 1,
    MILK_VERIFY_STAT_MEDIAN = 2,
    MILK_VERIFY_STAT_ELEMWISE = 3,
} milk_verify_stat;

/* "max", "mean", "median", "elemwise"; NULL for anything else. */
const char *milk_verify_stat_name(milk_verify_stat s);
/* Parses those names; -1 if unknown. */
int milk_verify_stat_from_name(const char *name);

/* The tolerance of one var, by name (an output, usually): it overrides
 * params.atol / params.rtol and the defaults for that var. */
typedef struct milk_verify_tolerance {
    const char *var;
    unsigned set;       /* MILK_VERIFY_SET_ATOL and/or MILK_VERIFY_SET_RTOL */
    double atol, rtol;
} milk_verify_tolerance;

typedef struct milk_verify_params {
    unsigned flags;
    double atol, rtol;          /* when flagged; else the defaults above */
    milk_precision precision;   /* how the program(s) run */
    /* n_inputs model inputs given as "NAME=FILE.npy"; they override the
     * reference file's tensors of the same name. */
    const char *const *inputs;
    int n_inputs;
    /* Two-program mode: inputs neither given nor in a file get seeded
     * random values (normal(0,1) for floats, 0..3 for integers, 0/1 for
     * bools). Without MILK_VERIFY_SET_SEED a seed is drawn from the clock;
     * milk_verify_seed() tells which. */
    uint64_t seed;
    /* Labels for reports (file names); NULL for "A", "B", "reference". */
    const char *label, *ref_label;
    /* Called during each run (stage is the program's label) with the
     * number of ops done and the total; NULL for none. */
    void (*progress)(void *user, const char *stage, int done, int total);
    void *progress_user;
    /* Two-program mode: n_pairs "A_NAME=B_NAME" (borrowed for the call):
     * var B_NAME of b is compared with var A_NAME of a, whatever their
     * names and shapes (another shape is a mismatch). For programs whose
     * names differ, such as milk's and coremltools' conversions of one
     * model (ONNX output `y` against coremltools' `var_99`). */
    const char *const *pairs;
    int n_pairs;
    /* Per-var tolerances (n_tolerances, borrowed for the call); a name that
     * is no var of the program under test is MILK_ERR_NOT_FOUND. */
    const milk_verify_tolerance *tolerances;
    int n_tolerances;
    milk_verify_stat error_stat; /* which error statistic is checked */
    /* When not NULL: an .npz written with the model inputs of the run (as
     * given, read from the reference, or random), and one with the model
     * outputs of the program under test (as `milk run` writes them). */
    const char *save_inputs, *save_outputs;
    /* The command the HTML report shows for extracting an op, with every
     * "{op}" replaced by the op's name; NULL: `milk extract LABEL --op
     * {op} -o {op}.mlpackage --inputs-from REF` (REF: the reference .npz,
     * or save_inputs in two-program mode). */
    const char *extract_command;
    /* The function to run (in both programs); NULL: the default one. */
    const char *function;
    /* Reference mode, stateful programs: above 1, the function runs
     * `steps` times with one state object (every state zero at first);
     * step k takes REF's NAME@k as input NAME (or NAME itself for every
     * step) and is compared with REF's NAME@k values. Rows are keyed
     * var@k; the first divergence is in the earliest step that has one. */
    int steps;
    /* Threads of each run (milk_run_params.threads). */
    int threads;
} milk_verify_params;

/* The state of a compared var.
 * MATCH: within tolerance.
 * DIVERGED: beyond tolerance while every input of its op is clean; a
 *   divergence starts here (or in an unchecked op feeding it, see below).
 * PROPAGATED: beyond tolerance, and some input of its op is not clean:
 *   it inherits an earlier divergence.
 * A var is clean when it is a model input, a constant, a compared var
 * that matches, or a var without reference value whose op's inputs are
 * all clean. The first divergent op is the op of the first DIVERGED row
 * in program order. Its suspects are the ops without reference values
 * that feed it through unchecked vars only: when REF holds just the
 * outputs, every op is a suspect; when it holds every intermediate, none
 * is, and the first divergent op is the culprit. */
typedef enum milk_verify_state {
    MILK_VERIFY_MATCH = 0,
    MILK_VERIFY_DIVERGED = 1,
    MILK_VERIFY_PROPAGATED = 2,
} milk_verify_state;

typedef struct milk_verify_row {
    const char *op, *op_type; /* the op producing the var */
    const char *var;          /* its name in the program under test */
    const char *ref;          /* the reference tensor's name */
    int op_index;             /* position of the op among main's ops,
                                 consts not counted */
    milk_tensor_type type;    /* as declared in the program under test */
    int shape_mismatch;       /* the reference has another shape: error inf */
    double max_abs, max_rel, snr_db;
    double atol, rtol;        /* the tolerance applied */
    milk_verify_state state;
    int64_t n_overflow, n_inf, n_nan; /* the op's run statistics */
    /* More statistics of |got - want|: mean, median, the number of
     * elements beyond atol + rtol * |want|, and the peak signal-to-noise
     * ratio 10 log10(max|want|^2 / mean (got - want)^2) in dB (+inf when
     * equal). */
    double mean_abs, median_abs, psnr_db;
    int64_t n_beyond;
} milk_verify_row;

typedef struct milk_verify milk_verify; /* the result of a comparison */

/* Run p (function main) on the model inputs held in the .npz at ref_path
 * (by input name; params->inputs override them) and compare every var
 * that has a tensor of the same name in that file. params may be NULL.
 * Fails (MILK_ERR_INVALID_ARG / NOT_FOUND / PARSE / IO) when an input is
 * missing, the file is malformed, or no var of p has a reference value;
 * a divergence is not a failure: read it from the result. */
milk_status milk_verify_reference(milk_ctx *ctx, const milk_program *p,
                                  const char *ref_path,
                                  const milk_verify_params *params,
                                  milk_verify **out);
/* Run a (the reference) and b on the same inputs (given, or seeded
 * random ones) and compare every op output of b with the var of a of the
 * same name, or, failing that, with the op output of a whose name is the
 * same once every "_cast_fp16" (coremltools' fp16 renaming) is removed
 * from both. Namesakes of other shapes are not compared, except model
 * outputs. A model output of b without a namesake in a is paired with
 * a's output at the same position when both have as many outputs (the
 * report says so: "paired by position"). params->pairs pair vars by name
 * before all of this; a name in them that is no var of its program (or
 * a model input of b) is MILK_ERR_NOT_FOUND. The two programs' inputs
 * must agree in names and shapes. */
milk_status milk_verify_programs(milk_ctx *ctx, const milk_program *a,
                                 const milk_program *b,
                                 const milk_verify_params *params,
                                 milk_verify **out);
void milk_verify_free(milk_verify *v);

int milk_verify_row_count(const milk_verify *v);
const milk_verify_row *milk_verify_row_at(const milk_verify *v, int i);
/* Row index of the first divergent op's var, or -1 if every var matches. */
int milk_verify_first_divergence(const milk_verify *v);
/* The seed of the random inputs; false if no input was random. */
int milk_verify_seed(const milk_verify *v, uint64_t *seed);

/* Print the result: the table (op, var, shape, errors, SNR, PSNR, status),
 * the first divergence with its suspects, and the ops whose fp16 values
 * overflowed; or, with MILK_VERIFY_JSON, one JSON object:
 *   {"program", "reference", "mode": "reference"|"programs", "precision",
 *    "seed": N or null, "ok": bool,
 *    "error_stat": "max"|"mean"|"median"|"elemwise", "stopped": bool
 *    (fail fast), "tolerances": [{"var", "atol", "rtol"}] (per var),
 *    "rows": [{"op", "type", "var", "ref", "op_index", "dtype", "shape",
 *              "max_abs", "max_rel", "snr_db", "psnr_db", "mean_abs",
 *              "median_abs", "beyond", "atol", "rtol",
 *              "status": "ok"|"diverged"|"propagated", "shape_mismatch",
 *              "overflow", "inf", "nan"}],
 *    "first_divergence": null or {"row", "op", "type", "var",
 *                                 "suspects": ["op (type)", ...]},
 *    "fp16": [{"op", "type", "op_index", "overflow", "inf", "nan"}],
 *    "unchecked": N, "unmatched_reference": [names],
 *    "paired": [{"var", "ref", "how": "position"|"pair"}]}
 * ("paired": vars compared with a reference var of another name, other
 * than by coremltools' "_cast_fp16" renaming.)
 * Infinite numbers (snr_db of equal tensors, errors of non-finite
 * disagreements) are written as null. */
#define MILK_VERIFY_JSON 1u
milk_status milk_verify_print(milk_ctx *ctx, const milk_verify *v, FILE *out,
                              unsigned flags);
/* Write the result as one self-contained XHTML file (inline CSS and SVG,
 * no scripts, no external resources): the table and a chart of the
 * relative error of each compared var along the program, log scale, with
 * the first divergence and fp16 overflows marked. Each op of the table
 * opens (a <details> element) to the command that extracts it
 * (params.extract_command); each point of the chart links to its row.
 * Written under a temporary name and renamed into place. */
milk_status milk_verify_write_html(milk_ctx *ctx, const milk_verify *v,
                                   const char *path);

/* Mixed precision search: which ops of an ONNX model to keep in fp32 so
 * that its fp16 conversion matches its fp32 one (`milk verify MODEL.onnx
 * --precision fp16 --suggest-fp32`).
 *
 * Greedy, one op per round. A round converts the model in fp16 with the
 * set found so far kept in fp32 (cp->keep_fp32 to start with; cp's other
 * options as given, its precision taken as fp16) and compares it with the
 * faithful fp32 conversion (every defect rule off) on the same inputs (vp:
 * given, or seeded random ones, the same in every round). The search
 * stops when every model output matches. Otherwise it adds one op that
 * computes in fp16:
 * 1. the first op, in program order, whose fp16 values overflowed (beyond
 *    65504, inf or NaN): later overflows usually inherit it;
 * 2. else the first op that diverges on matching inputs (the comparison's
 *    first divergence, MILK_VERIFY_DIVERGED); if that op already computes
 *    in fp32 and still diverges, its fp16 inputs lose what it needs (an
 *    x + 1000 - 1000 cancellation): the op feeding it with the largest
 *    error, through unchecked and fp32 ops;
 * 3. else the op that adds the most error: the max relative error of its
 *    output minus the largest of its inputs' (an unchecked input carries
 *    the largest error upstream of it).
 * An op is named by the var of its comparison row: a MIL var name, which
 * --keep-fp32 takes (the converter then keeps the whole ONNX node that
 * emitted it). Once the outputs match, each op the search added is tried
 * without (the last added first) and dropped if the outputs still match:
 * no single op of the result can be removed, though a smaller set may
 * exist. At most MILK_SUGGEST_MAX_OPS ops are added. */
#define MILK_SUGGEST_MAX_OPS 32

typedef struct milk_suggest_step {
    const char *name;     /* the var whose op was added */
    const char *op_type;
    const char *why;      /* "fp16 overflow: ..." or "adds the most error: ..." */
    double before, after; /* worst max relative error of the model outputs
                             before and after adding it */
    int dropped;          /* 1: removed again at the end (not needed) */
} milk_suggest_step;

typedef struct milk_suggest milk_suggest; /* the result of a search */

/* Search for the ONNX model at path. cp and vp may be NULL (defaults);
 * their arrays are borrowed for the call. Fails as milk_onnx_convert and
 * milk_verify_programs do; not finding a set is not a failure (read
 * milk_suggest_found). */
milk_status milk_onnx_suggest_fp32(milk_ctx *ctx, const char *path,
                                   const milk_convert_params *cp,
                                   const milk_verify_params *vp,
                                   milk_suggest **out);
void milk_suggest_free(milk_suggest *s);
/* The comparison of the first round (cp's own set): the fp16 audit. */
const milk_verify *milk_suggest_initial(const milk_suggest *s);
int milk_suggest_step_count(const milk_suggest *s);
const milk_suggest_step *milk_suggest_step_at(const milk_suggest *s, int i);
/* 1 if the model outputs match with the set (which may be empty). */
int milk_suggest_found(const milk_suggest *s);
/* The set as --keep-fp32 takes it: "a,b" (cp's names first), "" if empty. */
const char *milk_suggest_names(const milk_suggest *s);
/* Conversions and comparisons run. */
int milk_suggest_rounds(const milk_suggest *s);

/* Cutting a program into a standalone repro.
 *
 * The extracted program holds one op (params.op), or the ops from
 * params.from to params.to, in program order, that params.to depends on
 * (params.from must be one of them). Every non-constant var those ops
 * read from outside becomes a model input of the same name and type (in
 * order of first use); the constants they read are copied (file-backed
 * weights stay references to the source's file until saved: keep it);
 * the outputs of the last op are the model outputs and keep their names.
 * An op may be named by its op name or by the name of a var it produces.
 *
 * Variants, applied to every extracted op they fit (an error if none):
 * ZERO_BIAS: the `bias` of conv, conv_transpose and linear replaced by
 *   zeros of the same type, so the output is the original minus the bias.
 * LIFT_1D: a conv or conv_transpose on rank-3 x written as 2-D:
 *   expand_dims(x, axes=[-1]), the op with weight [.., K, 1], strides
 *   (s, 1), pad (p0, p1, 0, 0), dilations (d, 1), output_shape (.., 1),
 *   then squeeze(axes=[-1]) into a var of the original name. */
typedef enum milk_extract_variant {
    MILK_EXTRACT_PLAIN = 0,
    MILK_EXTRACT_ZERO_BIAS = 1,
    MILK_EXTRACT_LIFT_1D = 2,
} milk_extract_variant;

typedef struct milk_extract_params {
    const char *op;         /* one op; or NULL and from/to */
    const char *from, *to;
    milk_extract_variant variant;
    const char *function;   /* the function to cut from; NULL: the default */
} milk_extract_params;

/* A new program (target and opset of p, function main) holding the ops
 * extracted from p's function params->function (NULL: its default
 * function); a state the ops read stays a state input; p is not changed and may be freed afterwards. Fails with
 * MILK_ERR_NOT_FOUND for unknown ops, MILK_ERR_INVALID_ARG when from/to do
 * not delimit a subgraph or no op fits the variant, MILK_ERR_UNSUPPORTED
 * for ops with nested blocks or string-typed boundary vars. */
milk_status milk_program_extract(milk_ctx *ctx, const milk_program *p,
                                 const milk_extract_params *params,
                                 milk_program **out);
/* Run p on the inputs of the .npz at ref_path (and params->inputs; only
 * inputs and precision are read from params, which may be NULL) and write
 * to the .npz at out_path the values p computed for sub's inputs and
 * outputs, by name, as `milk run` writes them (fp16 vars as fp16 in
 * as-declared precision, integers as int32). The file is a ready
 * reference: `milk verify SUB --reference OUT` checks the repro. */
milk_status milk_extract_capture(milk_ctx *ctx, const milk_program *p,
                                 const milk_program *sub,
                                 const char *ref_path,
                                 const milk_verify_params *params,
                                 const char *out_path);

/* ------------------------------------------------------------------ */
/* Compressing weights (src/compress)                                  */
/* ------------------------------------------------------------------ */

/* How the weights of a program are compressed, as coremltools'
 * optimize.coreml does: each selected const becomes constexpr_* ops that
 * Core ML expands when it loads the model. The form follows the
 * program's target: iOS16 and iOS17 get constexpr_affine_dequantize,
 * constexpr_lut_to_dense and constexpr_sparse_to_dense (iOS16 forms);
 * iOS18 gets constexpr_blockwise_shift_scale and the iOS18 forms. What
 * the target cannot express (int4, per-block scales, 3-bit or grouped
 * LUTs, int8 LUTs, joint forms before iOS18) is MILK_ERR_UNSUPPORTED
 * naming the target that would.
 *
 * The compressed data is not computed when the program is compressed:
 * each weight is streamed from where it lives (file ranges stay file
 * ranges) and compressed as the program is saved or run, so memory stays
 * bounded whatever the size of the weights (per weight: its scales and
 * LUTs, and buffers of a few MiB). */

typedef enum milk_compress_granularity {
    MILK_GRANULARITY_DEFAULT = 0, /* per-channel (quantization), per-tensor
                                     (palettization) */
    MILK_GRANULARITY_PER_TENSOR = 1,
    MILK_GRANULARITY_PER_CHANNEL = 2,        /* quantization: a scale per
                                                output channel */
    MILK_GRANULARITY_PER_BLOCK = 3,          /* quantization: a scale per
                                                block_size input channels of
                                                each output channel (iOS18) */
    MILK_GRANULARITY_PER_GROUPED_CHANNEL = 4, /* palettization: a LUT per
                                                block_size output channels
                                                (iOS18) */
} milk_compress_granularity;

typedef struct milk_compress_params {
    /* Linear quantization to MILK_DTYPE_INT8, UINT8, INT4 or UINT4 (0:
     * none): symmetric (the scale maps max |w| to the largest code; int8
     * codes -127..127, uint8 0..254 around 127) or, with affine, min(w, 0)
     * .. max(w, 0) onto the whole range with a zero point. */
    milk_dtype quant;
    int affine;
    /* Palettization: a LUT of 2^palette_bits values (1, 2, 3, 4, 6 or 8
     * bits; 0: none), by k-means (1-D Lloyd on a seeded sample of at most
     * kmeans_samples values per LUT, from quantiles) or, with
     * palette_uniform, evenly spaced from min to max. lut_int8 quantizes
     * each LUT to int8 (symmetric), dequantized before depalettizing
     * (iOS18; the order Core ML computes right, see lint rule lut-order). */
    int palette_bits;
    int palette_uniform;
    int lut_int8;
    /* Pruning by magnitude: the fraction `prune` (0 < prune < 1) of each
     * weight with the smallest |w| becomes 0 (the weights <= the
     * percentile, as coremltools computes it); or n:m (prune_n of every
     * prune_m consecutive weights along the input axis, the smallest).
     * With palette_bits or quant as well: prune, then palettize or
     * quantize the values kept (iOS18). */
    double prune;
    int prune_n, prune_m;
    milk_compress_granularity granularity;
    int64_t block_size;   /* PER_BLOCK, PER_GROUPED_CHANNEL */
    /* Weights of at most this many elements stay dense (0: 2048, as
     * coremltools' weight_threshold); so do weights of rank < 2 and
     * non-float ones. */
    int64_t min_elements;
    /* Only weights read by ops of these types (n_op_types names), and only
     * these weights (n_op_names const or var names); NULL: all. */
    const char *const *op_types;
    int n_op_types;
    const char *const *op_names;
    int n_op_names;
    uint64_t seed;            /* k-means sampling */
    int64_t kmeans_samples;   /* 0: 65536 */
    /* Measure each weight's error against the dense one as its compressed
     * data is produced (the report's max_abs, snr_db, psnr_db); costs
     * some time. milk_compress_report_measure measures regardless. */
    int measure;
} milk_compress_params;

/* Parse a compression spec into *p (zeroed first): items joined by '+':
 * "int8", "uint8", "int4", "uint4", "palette:N" (N bits), "prune:F"
 * (fraction, or "F%"), "prune:N:M"; e.g. "int4", "palette:4",
 * "prune:0.5+palette:4" (prune then palettize), "palette:4+int8" (an int8
 * LUT), "prune:2:4+int8". MILK_ERR_INVALID_ARG naming the item if not. */
milk_status milk_compress_spec_parse(milk_ctx *ctx, const char *spec,
                                     milk_compress_params *p);

/* One weight of milk_program_compress, for reports. Strings are owned by
 * the report. */
typedef struct milk_compress_row {
    const char *name;       /* the weight (the const's output var) */
    const char *function;
    const char *readers;    /* op types reading it ("linear", ...) */
    milk_tensor_type type;  /* the dense weight */
    int compressed;         /* 0: left dense; `how` says why */
    const char *how;        /* "int4, blocks [1, 32]", "palette 4-bit (k-means,
                               per-tensor)", or why it was skipped */
    uint64_t bytes_before;  /* of the dense weight */
    uint64_t bytes_after;   /* of its compressed data (every constant of
                               its constexpr ops) */
    /* Error of the expanded weight against the dense one, known once the
     * compressed data has been produced with params.measure set (measured
     * = 1): after the program was saved or run; or after
     * milk_compress_report_measure. */
    int measured;
    double max_abs;
    double snr_db;          /* 10 log10(sum w^2 / sum (w' - w)^2); inf if
                               equal */
    double psnr_db;         /* 10 log10(max w^2 / mean (w' - w)^2) */
} milk_compress_row;

typedef struct milk_compress_report milk_compress_report;

milk_status milk_compress_report_create(milk_ctx *ctx,
                                        milk_compress_report **out);
void milk_compress_report_free(milk_compress_report *r);
int milk_compress_report_count(const milk_compress_report *r);
/* Row i, with the errors measured so far. The rows refer to the program
 * compressed: read them while it lives. */
const milk_compress_row *milk_compress_report_at(const milk_compress_report *r,
                                                 int i);
/* Produce the compressed data of every row not yet measured (streaming it
 * to nowhere), so that the errors are known. */
milk_status milk_compress_report_measure(milk_ctx *ctx,
                                         milk_compress_report *r);

/* Compress the weights of every function of p as params say (see
 * milk_compress_params). Each compressed const is replaced by constexpr
 * ops named after it (its output var keeps its name); the consts left
 * unused are removed. Weights are selected and their scales, LUTs and
 * pruning thresholds computed now (reading each selected weight once or
 * twice); the compressed data itself is produced when the program is
 * saved or run, from the weights where they live (which must stay there
 * until then). report (may be NULL) gets one row per candidate weight,
 * compressed or not. Fails with MILK_ERR_INVALID_ARG for bad params,
 * MILK_ERR_UNSUPPORTED for a form the target cannot express (naming the
 * target that can); p is then unchanged. */
milk_status milk_program_compress(milk_ctx *ctx, milk_program *p,
                                  const milk_compress_params *params,
                                  milk_compress_report *report);
/* States and multifunction programs (iOS18)                           */
/* ------------------------------------------------------------------ */

/* States. A state is a tensor Core ML keeps from one prediction to the
 * next (a transformer's KV cache): a function input of MIL type
 * state<tensor<fp16, [...]>>, listed in the model description as a state
 * feature. Only two ops take a state: read_state(input) copies it into a
 * tensor, write_state(input, data) stores data into it (no outputs; it is
 * never removed as dead code). coremltools' coreml_update_state(state,
 * value) is write_state followed by read_state: milk_block_add_op accepts
 * it under that name and adds both ops (the read_state named `name`, the
 * write_state `name`_write_state), as coremltools exports it. Reads see
 * the writes made earlier in the same function. Core ML's rules, checked
 * when a program is loaded, checked or saved: states are fp16 with a
 * static shape (rank >= 1), need deployment target iOS18 or later, and a
 * function with states has no flexible-shape inputs. */

/* Declare a state input of f (for main: a state of the model). */
milk_status milk_function_add_state(milk_ctx *ctx, milk_function *f,
                                    const char *name,
                                    const milk_tensor_type *type,
                                    milk_var **out);
/* Non-zero if v is a state input. */
int milk_var_is_state(const milk_var *v);

/* The values of a program's states, kept across runs (Core ML's MLState):
 * one tensor per distinct state name among the program's functions (a
 * prefill and a decode function share their KV cache by name). A runner
 * reads and writes the states of the state object it is given; each
 * runner of a function with states starts with one of its own. */
typedef struct milk_state milk_state;

/* A state object for p (which must outlive it), every state zero, as Core
 * ML's make_state() gives them. A state name declared by two functions
 * with different types is MILK_ERR_INVALID_MODEL. */
milk_status milk_state_create(milk_ctx *ctx, const milk_program *p,
                              milk_state **out);
void milk_state_free(milk_state *s);
/* Every state to zero. */
void milk_state_reset(milk_state *s);
/* Every state to "unset": a run that reads a state before anything wrote
 * it (milk_state_write, milk_state_load_npz, or a write_state of an
 * earlier run or earlier in the same function) then fails with
 * MILK_ERR_INVALID_ARG naming the state. */
void milk_state_clear(milk_state *s);
int milk_state_count(const milk_state *s);
/* Name and type (fp16, static shape) of state i, NULL if out of range. */
const char *milk_state_name(const milk_state *s, int i);
const milk_tensor_type *milk_state_type(const milk_state *s, int i);
/* The values of state `name` converted to `as` (FP32 or FP16) into dst
 * (cap bytes). MILK_ERR_NOT_FOUND for an unknown name, INVALID_ARG for an
 * unset state. */
milk_status milk_state_read(milk_ctx *ctx, const milk_state *s,
                            const char *name, milk_dtype as, void *dst,
                            size_t cap);
/* Set state `name` from data of `type` (FP32 or FP16, the state's shape);
 * the values are rounded to fp16. The data is copied. */
milk_status milk_state_write(milk_ctx *ctx, milk_state *s, const char *name,
                             const milk_tensor_type *type, const void *data);
/* Write every set state to an .npz keyed by state name (fp16). */
milk_status milk_state_save_npz(milk_ctx *ctx, const milk_state *s,
                                const char *path);
/* Set the states held in the .npz at path (by state name, fp16 or fp32 of
 * the state's shape); states it does not hold are left as they are. A
 * tensor that is no state of the program is MILK_ERR_NOT_FOUND. */
milk_status milk_state_load_npz(milk_ctx *ctx, milk_state *s,
                                const char *path);

/* Run r with the states of s (borrowed: s must outlive the runs; s must
 * hold every state of r's function with its type); NULL goes back to the
 * runner's own state object. Writes of a run change s. */
milk_status milk_runner_set_state(milk_ctx *ctx, milk_runner *r,
                                  milk_state *s);
/* The state object r runs with (its own unless set), NULL when r's
 * function has no states. */
milk_state *milk_runner_state(const milk_runner *r);

/* Multifunction programs. A program may hold several functions (a
 * prefill and a decode function, or one per adapter) that share weights:
 * Core ML lists them in the description (`functions`, spec 9, iOS18) with
 * a default function, the one run when none is named. */

/* Copy function src_function of src (NULL: its default function) into p
 * as function `name`: inputs, states, ops, nested blocks, attributes and
 * constants, with the function's own opset (which may not be newer than
 * p's target), and its recorded description (flexible shapes). src may
 * be freed afterwards, but file-backed constants keep referring to their
 * files (a package's weight.bin), which must exist until p is saved. A
 * constant of at least 10 elements equal by content to one p already
 * holds shares its data, so that the saved package stores it once, as
 * coremltools' save_multifunction does (compared byte for byte up to 64
 * MiB, by two independent 64-bit hashes of the bytes above). A state the
 * function shares by name with another function of p must have the same
 * type (MILK_ERR_INVALID_ARG). On failure p may hold part of the new
 * function: discard it. */
milk_status milk_program_add_function_from(milk_ctx *ctx, milk_program *p,
                                           const char *name,
                                           const milk_program *src,
                                           const char *src_function);
/* Make function `name` the default (MILK_ERR_NOT_FOUND if absent). */
milk_status milk_program_set_default_function(milk_ctx *ctx, milk_program *p,
                                              const char *name);
/* The default function's name: the one set (or read from a package),
 * else "main" if there is one, else the first function. Runners,
 * verification and extraction use it when no function is named. */
const char *milk_program_default_function(const milk_program *p);

/* ------------------------------------------------------------------ */
/* Reducing a failing program (src/verify/reduce.c)                   */
/* ------------------------------------------------------------------ */

/* Delta debugging, as polygraphy's `debug reduce` does for TensorRT: find
 * a small subgraph of a function (params.verify.function, else the
 * program's default function) that still fails a check. A candidate is a
 * set of its ops (consts and constexpr weights go with the ops reading
 * them), extracted, as function main of a new program, as
 * milk_program_extract does: every value its ops read from a removed op
 * becomes a model input of the same name (a cut point) that takes a
 * captured value, and the outputs of its ops that none of its ops reads
 * are its model outputs (with those of main's outputs it computes).
 *
 * Cut points take the value the whole program computed there, in one run
 * on the model inputs (params.verify.inputs, the reference's tensors, or
 * seeded random values); with MILK_REDUCE_AGAINST, the reference's value
 * when it holds one (so that a cut isolates what follows it), and with
 * MILK_REDUCE_FP16_VS_FP32, the value of the run in fp32.
 *
 * The search, after checking that the whole program fails:
 * 1. bisection along the op order for the outputs: the earliest op k such
 *    that op k with every op it depends on still fails;
 * 2. bisection for the inputs: the latest j such that the ops of that set
 *    from the j-th on (the earlier ones cut) still fail;
 * 3. one op at a time: each op left is removed (its outputs become cut
 *    points, or it disappears if nothing reads it) when the rest still
 *    fails, in passes until none can go.
 * Each candidate is checked once; its verdict is good, bad (it fails: the
 * search keeps it) or invalid (it could not be judged: treated as good).
 * The result is 1-minimal: no single op of it can be removed. */

/* What makes a candidate fail. */
typedef enum milk_reduce_check {
    /* a var (output or intermediate) differs from the tensor of its name
     * in the reference .npz beyond tolerance (params.verify: tolerances,
     * error statistic, precision); invalid when no var has a reference
     * value */
    MILK_REDUCE_AGAINST = 0,
    /* a var differs between the run as declared (fp16 storage) and the
     * run in fp32, beyond tolerance */
    MILK_REDUCE_FP16_VS_FP32 = 1,
    /* the rule params.rule matches (enabled by id, whatever its scope;
     * params.rules gives the target, compute units and precision) */
    MILK_REDUCE_LINT = 2,
    /* an external command: run by /bin/sh with each "{}" replaced by the
     * path of the candidate package (appended if there is none); the
     * candidate's inputs are in the .npz of the same name beside it. Exit
     * 0: good, 1: bad (fails), anything else or a signal: invalid. Its
     * output goes to candidate.log in the work directory. */
    MILK_REDUCE_COMMAND = 3,
    MILK_REDUCE_CALLBACK = 4, /* params.fn */
} milk_reduce_check;

typedef enum milk_reduce_verdict {
    MILK_REDUCE_GOOD = 0,
    MILK_REDUCE_BAD = 1,     /* fails the check */
    MILK_REDUCE_INVALID = 2, /* cannot be judged */
} milk_reduce_verdict;

/* "good", "bad", "invalid". */
const char *milk_reduce_verdict_name(milk_reduce_verdict v);

/* One candidate tried. Strings are owned by the result. */
typedef struct milk_reduce_step {
    int index;             /* 0 is the whole program */
    const char *phase;     /* "whole", "outputs", "inputs", "one-op" */
    const char *change;    /* what the candidate is: "up to op 'x' (conv)",
                              "from op 'y' (relu) on", "without op 'z' (add)" */
    int n_ops;             /* its ops, consts not counted */
    int n_inputs;          /* its model inputs (cut points included) */
    milk_reduce_verdict verdict;
    const char *detail;    /* why: the divergent var, the exit status, ... */
    int kept;              /* 1: the smallest failing program so far */
    double seconds;        /* to build and check it */
} milk_reduce_step;

/* The caller's check (MILK_REDUCE_CALLBACK): the verdict on a candidate,
 * and optionally a line saying why in why (n bytes). */
typedef milk_reduce_verdict (*milk_reduce_fn)(void *user, const milk_program *candidate,
                                              char *why, size_t n);

/* milk_reduce_params.modes */
#define MILK_REDUCE_BISECT 1u /* phases 1 and 2 */
#define MILK_REDUCE_LINEAR 2u /* phase 3 */

typedef struct milk_reduce_params {
    milk_reduce_check check;
    const char *reference;          /* AGAINST: the .npz (inputs, expected values) */
    const char *rule;               /* LINT: a rule id */
    const milk_rule_options *rules; /* LINT: target, units, precision; may be NULL */
    const char *command;            /* COMMAND */
    /* COMMAND: where each candidate is written (candidate.mlpackage,
     * candidate.npz, candidate.log; kept afterwards); NULL: a new
     * directory under $TMPDIR (or /tmp), removed at the end. */
    const char *work_dir;
    milk_reduce_fn fn;              /* CALLBACK */
    void *user;
    /* The runs: inputs ("NAME=FILE.npy"), seed, precision, tolerances,
     * error statistic (AGAINST, FP16_VS_FP32); label names the program. */
    milk_verify_params verify;
    unsigned modes;                 /* MILK_REDUCE_*; 0: both */
    int max_candidates;             /* stop after so many (0: no limit) */
    /* Called after each candidate; NULL for none. */
    void (*progress)(void *user, const milk_reduce_step *step);
    void *progress_user;
} milk_reduce_params;

typedef struct milk_reduce milk_reduce; /* the result of a reduction */

/* Reduce p (p is not changed and must outlive the result). Fails with MILK_ERR_INVALID_ARG when the whole program does not
 * fail the check (nothing to reduce; the message gives the verdict and
 * why) or a parameter is wrong (unknown rule, no command, ...), and as
 * milk_verify_reference does when inputs or the reference are missing or
 * malformed. */
milk_status milk_program_reduce(milk_ctx *ctx, const milk_program *p,
                                const milk_reduce_params *params, milk_reduce **out);
void milk_reduce_free(milk_reduce *r);
/* The smallest failing program found (owned by r). */
const milk_program *milk_reduce_program(const milk_reduce *r);
int milk_reduce_step_count(const milk_reduce *r);
const milk_reduce_step *milk_reduce_step_at(const milk_reduce *r, int i);
/* Write the result: the package at path (PATH.mlpackage) and beside it,
 * named after it without ".mlpackage": BASE.npz (the package's inputs as
 * the last bad candidate got them, and the reference values of its vars:
 * the reference's tensors, the fp32 run's, or those the whole program
 * computed; `milk verify PATH --reference BASE.npz` repeats a value
 * check), BASE.txt (what was kept and cut, the text milk_reduce_print
 * prints) and BASE.json (every candidate with its verdict). Each file is
 * written under a temporary name and renamed into place; on failure none
 * is left. */
milk_status milk_reduce_save(milk_ctx *ctx, const milk_reduce *r, const char *path);
/* Print what was kept and cut and how many candidates were tried (the
 * text of BASE.txt); with MILK_REDUCE_JSON the log of BASE.json:
 *   {"program", "check", "ops_before", "ops_after", "failure",
 *    "kept": ["name (type)"], "inputs": [{"name", "origin", "value_from"}],
 *    "outputs": [names], "candidates": [{"index", "phase", "candidate",
 *    "ops", "inputs", "verdict": "good"|"bad"|"invalid", "detail", "kept",
 *    "seconds"}]} */
#define MILK_REDUCE_JSON 1u
milk_status milk_reduce_print(milk_ctx *ctx, const milk_reduce *r, FILE *out,
                              unsigned flags);

/* ------------------------------------------------------------------ */
/* Inspecting a program (src/verify/inspect.c)                        */
/* ------------------------------------------------------------------ */

typedef struct milk_inspect_params {
    const char *label;                /* the file, for the header */
    /* Set when the program was converted from ONNX: its statistics (the
     * default domain's opset, the node count). */
    const milk_convert_stats *onnx;
    int top;                          /* largest tensors listed; 0: 8 */
} milk_inspect_params;

/* Print one screen about p (`milk inspect`): the specification version and
 * target, the ONNX source, metadata; each function with its opset, inputs,
 * outputs and states (dtype, shape, and for the default function the
 * model description's flexible ranges or enumerated shapes); the op
 * histogram; the weights by dtype and by compression (the constexpr op
 * reading them, with the dense size), the largest weights and
 * activations; for each compute-unit choice the defect rules that fire
 * (milk_rules_check with the program's target) and how often; and the
 * ops known to fall back from the Neural Engine (the hits of ne-rank5,
 * ne-dtype, ne-conv-kernel16, ne-lrn-c16 and dim-16384 for CPU_AND_NE),
 * each with its reason. With MILK_INSPECT_JSON, one JSON object:
 *   {"file", "format", "specification_version", "target", "source": null
 *    or {"format", "opset", "nodes"}, "metadata": {...},
 *    "default_function", "functions": [{"name", "opset", "default",
 *    "inputs"|"outputs"|"states": [{"name", "dtype", "shape", "flexible":
 *    {"lower", "upper"} or {"enumerated"}, "kind"}], "ops", "consts",
 *    "op_histogram": {type: n}}], "op_histogram", "weights": {"bytes",
 *    "weight_file_bytes" (stored in weight.bin), "count", "by_dtype": {dtype: {"bytes"}}, "compression": {"none" or
 *    a constexpr op: {"count", "bytes", "dense_bytes"}}},
 *    "largest_weights"|"largest_activations": [{"name", "dtype", "shape",
 *    "bytes", "kind"}], "rules": {"all"|"cpu_only"|"cpu_and_gpu"|
 *    "cpu_and_ne": [{"id", "severity", "action", "count"}]},
 *    "neural_engine_fallbacks": [{"op", "type", "rule", "reason"}]}
 * (an unknown dim is null). params may be NULL. */
#define MILK_INSPECT_JSON 1u
milk_status milk_program_inspect(milk_ctx *ctx, const milk_program *p,
                                 const milk_inspect_params *params, FILE *out,
                                 unsigned flags);

#ifdef __cplusplus
}
#endif

#endif /* MILK_H */
