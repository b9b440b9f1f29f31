/*
 * ir.h: the MIL program IR, as every part of milk sees it.
 *
 * A program holds functions; a function holds inputs and one top-level
 * block; a block holds ops in SSA order and may be nested inside an op
 * (control flow). An op has a type (a row of the op table), a name, named
 * arguments (each a list of bindings to vars or inline values), output vars,
 * nested blocks and attributes. A const is an op of type const whose value
 * lives in op->val. Values are tensors whose data is inline (in the arena),
 * borrowed from the caller, or a range of a file read only when needed.
 *
 * Everything hangs off the program's arena and is freed with the program.
 */
#ifndef MILK_IR_H
#define MILK_IR_H

#include "../internal.h"

/* ---- values ------------------------------------------------------------ */

typedef enum milk_data_kind {
    MILK_DATA_NONE = 0,
    MILK_DATA_INLINE,   /* ptr points into the program's arena */
    MILK_DATA_BORROWED, /* ptr belongs to the caller (lives longer) */
    MILK_DATA_FILE,     /* elements lie in a file range */
} milk_data_kind;

/* Where a tensor's elements live. For MILK_DTYPE_STRING the inline data is
 * an array of `const char *` (NUL-terminated, in the arena). Numeric data is
 * packed little-endian as milk_dtype_nbytes() says. */
typedef struct milk_data {
    milk_data_kind kind;
    const void *ptr;    /* INLINE, BORROWED */
    const char *path;   /* FILE: absolute or relative to the cwd */
    uint64_t offset;    /* FILE: byte offset of the first element */
    milk_dtype stored;  /* FILE: dtype of the elements in the file */
    uint64_t record;    /* FILE inside a MIL blob file (weight.bin): offset
                           of the blob's metadata record, as BlobFileValue
                           gives it; 0 for other files */
} milk_data;

typedef enum milk_value_kind {
    MILK_VALUE_TENSOR = 0,
    MILK_VALUE_TUPLE,
    MILK_VALUE_LIST,
    MILK_VALUE_DICT,
} milk_value_kind;

/* A compile-time value (MIL Value). Tensors carry type and data. Tuples and
 * lists carry n items; dicts carry n pairs as items[2i] (key) and
 * items[2i+1] (value), with elem[0], elem[1] the key and value types (kept
 * so that an empty dict still has a type). Lists keep their element type in
 * elem[0]. */
typedef struct milk_value {
    milk_value_kind kind;
    milk_tensor_type type;
    milk_data data;
    int n;
    struct milk_value **items;
    milk_tensor_type elem[2];
} milk_value;

typedef struct milk_attr {
    const char *key;
    milk_value *val;
} milk_attr;

typedef struct milk_attrs {
    int n, cap;
    milk_attr *a;
} milk_attrs;

/* ---- vars, ops, blocks, functions, programs --------------------------- */

struct milk_var {
    const char *name;
    milk_tensor_type type;
    milk_op *producer;  /* NULL for function and block inputs */
    int index;          /* which output of producer */
    int id;             /* dense number within its function (0..n_vars-1) */
    milk_function *fn;
    bool is_state;      /* a state input of its function (MIL StateType
                           wrapping `type`): only read_state and write_state
                           may take it (src/ir/state.c) */
};

/* One binding of an argument: a var, or an inline value. */
typedef struct milk_binding {
    milk_var *var;
    milk_value *value;
} milk_binding;

/* A named argument: one binding, or several for variadic (tuple) params. */
typedef struct milk_arg {
    const char *param;
    int n, cap;
    milk_binding *b;
} milk_arg;

struct milk_op {
    int kind;           /* index into milk_ops[] (enum milk_op_kind) */
    const char *name;   /* the op's `name` attribute */
    int n_args, cap_args;
    milk_arg *args;
    int n_outputs, cap_outputs;
    milk_var **outputs;
    int n_blocks, cap_blocks;
    milk_block **blocks;
    milk_attrs attrs;   /* attributes other than name and (const) val */
    milk_value *val;    /* const ops only */
    milk_block *block;  /* the block holding this op */
};

struct milk_block {
    milk_function *fn;
    milk_op *parent;    /* the op owning this block, NULL at function level */
    int n_inputs, cap_inputs;
    milk_var **inputs;
    int n_ops, cap_ops;
    milk_op **ops;
    int n_outputs, cap_outputs;
    milk_var **outputs;
    milk_attrs attrs;
};

typedef struct milk_names milk_names; /* name -> var hash (src/ir/names.c) */

struct milk_function {
    milk_program *prog;
    const char *name;
    milk_target opset;        /* opset as a target (CoreML7 = IOS17) */
    const char *opset_name;   /* as written in the proto ("CoreML7") */
    int n_inputs, cap_inputs;
    milk_var **inputs;
    milk_block *block;
    milk_attrs attrs;
    milk_names *names;
    int n_vars;
};

/* What the model description says about an input or output. When a program
 * is loaded these record the description as read, so that it is written
 * back unchanged; for programs built in memory the writer derives them from
 * main's signature. */
typedef enum milk_feature_kind {
    MILK_FEATURE_ARRAY = 0,
    MILK_FEATURE_IMAGE,
} milk_feature_kind;

typedef struct milk_feature {
    const char *name;
    const char *short_description;
    milk_feature_kind kind;
    bool is_optional;
    /* ARRAY: the (default) shape and ArrayDataType code as written. */
    int rank;
    int64_t shape[MILK_MAX_RANK];
    int32_t array_dtype;
    /* ARRAY flexibility: n_ranges SizeRanges (lower, upper), or n_enum
     * enumerated shapes of `rank` dims each, stored flat. */
    int n_ranges;
    int64_t (*ranges)[2];
    int n_enum;
    int64_t *enum_shapes;
    /* IMAGE */
    int64_t width, height;
    int32_t color_space;
} milk_feature;

typedef struct milk_kv {
    const char *key;
    const char *value;
} milk_kv;

struct milk_program {
    milk_arena *arena;
    milk_target target;       /* specificationVersion */
    int64_t version;          /* Program.version, 1 */
    int n_functions, cap_functions;
    milk_function **functions;
    milk_attrs attrs;         /* program attributes (buildInfo) */
    /* model description */
    const char *short_description, *version_string, *author, *license;
    int n_user, cap_user;
    milk_kv *user;            /* Metadata.userDefined, in order */
    bool has_features;        /* inputs/outputs below were read from a file */
    int n_in_features, n_out_features;
    milk_feature *in_features, *out_features;
    /* Multifunction packages (src/ir/state.c): the description of each
     * function as read (ModelDescription.functions; the top-level lists
     * above are then empty), and the default function (NULL: "main"). */
    int n_fn_features;
    struct milk_fn_features *fn_features;
    const char *default_function;
    /* The state features of the single-function description, as read (for
     * the checks against main's state inputs; written derived). */
    int n_state_features;
    milk_feature *state_features;
};

/* The recorded description of one function of a multifunction package:
 * its input and output features, as read, written back unchanged while
 * they still fit the function. State features are kept for the checks
 * against the function's state inputs and are always written derived from
 * them (they have no options: fp16, the static shape). */
typedef struct milk_fn_features {
    const char *function;
    int n_in, n_out, n_state;
    milk_feature *in, *out, *state;
} milk_fn_features;

/* A deep copy of v in arena a, except borrowed data (the caller's) and
 * file data (a path and an offset): src/ir/clone.c. NULL if out of
 * memory. */
milk_value *milk_value_clone(milk_arena *a, const milk_value *v);

/* ---- states and functions (src/ir/state.c) ------------------------------ */

/* The features recorded for function f (multifunction description, or
 * the top-level one for the single function "main"): false if none. */
bool milk_program_fn_features(const milk_program *p, const milk_function *f,
                              const milk_feature **in, int *n_in,
                              const milk_feature **out, int *n_out);
/* coremltools' coreml_update_state(state, value) at index `at` of b: a
 * write_state named name_write_state, then a read_state named name whose
 * output is the updated value; *out (may be NULL) is the read_state. */
milk_status milk_block_insert_update_state(milk_ctx *ctx, milk_block *b,
                                           int at, const char *name,
                                           const milk_input *inputs,
                                           int n_inputs, milk_op **out);
/* MILK_ERR_NOT_FOUND: "no function 'name'", listing p's functions and
 * the default one. */
milk_status milk_function_not_found(milk_ctx *ctx, const milk_program *p,
                                    const char *name);
/* Number of state inputs of f. */
int milk_function_state_count(const milk_function *f);
/* Core ML's rules on states for function f: fp16, static shapes, iOS18
 * (specificationVersion 9) or later, no flexible (unknown-dim) inputs
 * beside states; state vars only bound to read_state / write_state's
 * `input`. Errors name the function and the state. */
milk_status milk_function_check_states(milk_ctx *ctx, const milk_function *f);

/* ---- construction helpers (src/ir/program.c) ---------------------------- */

/* Opset name ("CoreML7") for a target and back. */
const char *milk_opset_proto_name(milk_target t);
milk_target milk_opset_from_proto_name(const char *s);

/* A new empty block in function f, nested in parent (NULL for the
 * function's own block). */
milk_block *milk_block_new(milk_function *f, milk_op *parent);
/* A new tensor value of type t with inline data copied from data (may be
 * NULL: then zero-filled, or for strings, empty strings). */
milk_value *milk_value_new_tensor(milk_arena *a, const milk_tensor_type *t,
                                  const void *data);
/* MILK_ERR_TYPE unless t is a type milk can hold: a known dtype, rank
 * unknown or 0..MILK_MAX_RANK, dims unknown or >= 0, the known ones
 * passing milk_dims_count (at most 2^40 elements). Every inferred type is
 * checked with it (milk_op_infer), and every declared one. */
milk_status milk_tensor_type_check(milk_ctx *ctx, const milk_tensor_type *t);
/* A new var named name in f; fails if the name is taken or invalid. */
milk_status milk_var_new(milk_ctx *ctx, milk_function *f, const char *name,
                         const milk_tensor_type *t, milk_var **out);
/* An op of the given kind and name, not yet in any block, with room for
 * n_args arguments. */
milk_op *milk_op_new(milk_arena *a, int kind, const char *name);
/* Append op to block b (sets op->block). */
milk_status milk_block_append(milk_ctx *ctx, milk_block *b, milk_op *op);
/* Append a binding (to var, or to the inline value) to op's argument
 * param, creating the argument on first use. */
milk_status milk_op_bind(milk_ctx *ctx, milk_arena *a, milk_op *op,
                         const char *param, milk_var *var, milk_value *value);
/* Create op's output i as a new var named name of type t in f. */
milk_status milk_op_add_output(milk_ctx *ctx, milk_function *f, milk_op *op,
                               const char *name, const milk_tensor_type *t,
                               milk_var **out);
milk_status milk_attrs_set(milk_ctx *ctx, milk_arena *a, milk_attrs *at,
                           const char *key, milk_value *val);
milk_value *milk_attrs_get(const milk_attrs *at, const char *key);

/* ---- editing, for passes (src/ir/build.c, src/ir/edit.c) ---------------- */

/* As milk_block_add_op / a const, but placed at index `at` of b's ops. */
milk_status milk_block_insert_op(milk_ctx *ctx, milk_block *b, int at,
                                 const char *type, const char *name,
                                 const milk_input *inputs, int n_inputs,
                                 milk_op **out);
milk_status milk_block_insert_const(milk_ctx *ctx, milk_block *b, int at,
                                    const char *name, milk_value *val,
                                    milk_var **out);
/* Put op at index `at` of b (0 <= at <= n_ops). */
milk_status milk_block_insert(milk_ctx *ctx, milk_block *b, int at,
                              milk_op *op);
/* Index of op in its block, or -1. */
int milk_block_index_of(const milk_block *b, const milk_op *op);
/* Take op out of its block and forget its output names. Its outputs must
 * have no remaining uses (check with milk_var_use_count). */
void milk_block_remove(milk_block *b, milk_op *op);
/* Make every binding of `from` (in f's ops, nested blocks included) and
 * every block output equal to `from` refer to `to` instead. */
void milk_function_replace_uses(milk_function *f, milk_var *from,
                                milk_var *to);
/* Bindings plus block-output entries that refer to v. */
int milk_var_use_count(const milk_function *f, const milk_var *v);
/* Re-run type inference on op and store the result in its outputs' types
 * (for passes that change an input's type). */
milk_status milk_op_reinfer(milk_ctx *ctx, milk_op *op);
/* Remove ops none of whose outputs is used, until none is left; returns
 * the number removed in *removed (may be NULL). */
milk_status milk_function_dce(milk_ctx *ctx, milk_function *f, int *removed);
/* A var name not yet used in f: base itself, else base_1, base_2, ...
 * Written into buf (n bytes). */
void milk_function_fresh_name(const milk_function *f, const char *base,
                              char *buf, size_t n);

/* ---- queries ------------------------------------------------------------- */

/* The argument named param of op, or NULL. */
const milk_arg *milk_op_arg(const milk_op *op, const char *param);
/* The compile-time value bound to param (binding 0 of it, or binding i for
 * milk_op_const_at): an inline value, or the val of the const op producing
 * the bound var. NULL if absent or not constant. */
const milk_value *milk_op_const(const milk_op *op, const char *param);
const milk_value *milk_op_const_at(const milk_op *op, const char *param,
                                   int i);
/* The var of a var binding, or NULL. */
milk_var *milk_op_var(const milk_op *op, const char *param);
/* Value produced by a const op, or NULL if v is not a const's output. */
const milk_value *milk_var_const(const milk_var *v);

/* ---- names (src/ir/names.c) --------------------------------------------- */

milk_names *milk_names_create(void);
void milk_names_free(milk_names *n);
/* Insert; false if the name exists or on allocation failure (*oom set). */
bool milk_names_put(milk_names *n, const char *name, milk_var *v, bool *oom);
milk_var *milk_names_get(const milk_names *n, const char *name);
void milk_names_remove(milk_names *n, const char *name);

/* coremltools' sanitizing of names (see names.c): writes at most cap bytes
 * of the MIL identifier for `name` to buf, with `prefix` ("var_", "op_")
 * if it would not start with a letter or '_'; returns the full length. */
size_t milk_name_sanitize(const char *name, const char *prefix, char *buf,
                          size_t cap);
/* A word MIL's text format reserves (fp16, tensor, ...). */
bool milk_name_is_reserved(const char *s);

/* ---- reading constant data (src/ir/data.c) ------------------------------ */

/* Byte size of a tensor value's data in its declared dtype. */
bool milk_value_nbytes(const milk_value *v, uint64_t *out);
/* Copy (converting if the stored dtype differs) the whole tensor data into
 * dst, which has milk_value_nbytes() bytes. Reads file-backed data. */
milk_status milk_value_read(milk_ctx *ctx, const milk_value *v, void *dst);
/* Stream the data in chunks of at most `chunk` bytes of the declared dtype:
 * calls fn(user, bytes, n) in order. Memory use is bounded by `chunk`
 * whatever the size of the tensor. */
typedef milk_status (*milk_data_sink)(void *user, const void *bytes,
                                      size_t n);
milk_status milk_value_stream(milk_ctx *ctx, const milk_value *v,
                              size_t chunk, milk_data_sink fn, void *user);
/* Read element i (numeric dtypes) as double / as int64. For small params;
 * file-backed data is read with one pread per call. */
milk_status milk_value_get_f64(milk_ctx *ctx, const milk_value *v, int64_t i,
                               double *out);
milk_status milk_value_get_i64(milk_ctx *ctx, const milk_value *v, int64_t i,
                               int64_t *out);
/* String element i (STRING dtype, inline). NULL if out of range. */
const char *milk_value_get_str(const milk_value *v, int64_t i);

#endif /* MILK_IR_H */
