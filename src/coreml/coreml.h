/*
 * coreml.h: what the files of src/coreml share: short names for the
 * protobuf-c structs of model.mlmodel, the reader and writer contexts, and
 * the entry points of each file (manifest, blob, value_read, value_write,
 * desc, read, write, check, package). Nothing outside src/coreml includes
 * it.
 */
#ifndef MILK_COREML_H
#define MILK_COREML_H

#include "../ir/ir.h"
#include "../ops/op.h"

#include "FeatureTypes.pb-c.h"
#include "MIL.pb-c.h"
#include "Model.pb-c.h"

/* ---- short names for the generated structs ------------------------------ */

typedef CoreML__Specification__Model pb_model;
typedef CoreML__Specification__ModelDescription pb_description;
typedef CoreML__Specification__FeatureDescription pb_feature;
typedef CoreML__Specification__FeatureType pb_feature_type;
typedef CoreML__Specification__ArrayFeatureType pb_array_type;
typedef CoreML__Specification__ImageFeatureType pb_image_type;
typedef CoreML__Specification__SizeRange pb_size_range;
typedef CoreML__Specification__Metadata pb_metadata;
typedef CoreML__Specification__MILSpec__Program pb_program;
typedef CoreML__Specification__MILSpec__Function pb_function;
typedef CoreML__Specification__MILSpec__Block pb_block;
typedef CoreML__Specification__MILSpec__Operation pb_op;
typedef CoreML__Specification__MILSpec__Argument pb_argument;
typedef CoreML__Specification__MILSpec__Argument__Binding pb_binding;
typedef CoreML__Specification__MILSpec__NamedValueType pb_named_type;
typedef CoreML__Specification__MILSpec__ValueType pb_value_type;
typedef CoreML__Specification__MILSpec__TensorType pb_tensor_type;
typedef CoreML__Specification__MILSpec__Dimension pb_dim;
typedef CoreML__Specification__MILSpec__Value pb_value;

/* Deepest nesting of protobuf messages accepted in model.mlmodel, checked
 * before protobuf-c unpacks it (protobuf-c recurses without a limit, so a
 * small crafted file could exhaust the stack). Google's parsers use 100;
 * a real ML Program needs about 12 plus a few per nested block. */
#define COREML_MAX_PB_DEPTH 100
/* Deepest nesting of blocks (control flow) in a function. */
#define COREML_MAX_BLOCK_DEPTH 32

#define COREML_WEIGHTS_PREFIX "@model_path/weights/"

/* milk_error_prefix() returning s, and so safe when ctx is NULL. s ==
 * MILK_OK means "the status already on ctx" (for callees that return a
 * NULL pointer after recording a failure). */
milk_status coreml_prefix(milk_ctx *ctx, milk_status s, const char *fmt, ...)
    MILK_PRINTF(3, 4);

/* ---- scopes (check.c): which vars a binding may name -------------------- */

typedef struct coreml_scope {
    const milk_function *fn;
    const milk_block **def; /* def[var id]: block that defined the var */
    int cap;
    const milk_block *stack[COREML_MAX_BLOCK_DEPTH + 1];
    int depth;
} coreml_scope;

void coreml_scope_init(coreml_scope *s, const milk_function *fn);
void coreml_scope_free(coreml_scope *s);
/* Record that v is defined in block b (function inputs: the function's
 * block). */
milk_status coreml_scope_define(milk_ctx *ctx, coreml_scope *s,
                                const milk_var *v, const milk_block *b);
/* Enter a block; false if nested too deep. */
bool coreml_scope_push(coreml_scope *s, const milk_block *b);
void coreml_scope_pop(coreml_scope *s);
/* True if v was defined earlier in the current block or an enclosing one. */
bool coreml_scope_visible(const coreml_scope *s, const milk_var *v);

/* Compare the types inference gave an op with its declared outputs: count
 * equal, dtype equal, rank equal where both known, dims equal where both
 * known. MILK_ERR_TYPE naming the op and the output otherwise. */
milk_status coreml_check_outputs(milk_ctx *ctx, const milk_op *op,
                                 const milk_infer *ic, int n_declared,
                                 const milk_tensor_type *const *declared,
                                 const char *const *names);
/* "fp32 [1, ?, 4]" into buf. */
const char *coreml_type_str(const milk_tensor_type *t, char *buf, size_t n);

/* ---- blob files (blob.c): weight.bin -------------------------------------- */

/* An opened weight file whose header has been validated. */
typedef struct coreml_blob_file {
    char *path;    /* realpath, malloc'd */
    int fd;
    uint64_t size;
    uint32_t count;
} coreml_blob_file;

milk_status coreml_blob_open(milk_ctx *ctx, const char *path,
                             coreml_blob_file *bf);
void coreml_blob_close(coreml_blob_file *bf);
/* Validate the record at `record` for a tensor of dtype d and count n;
 * on success *data_offset is where its data starts. */
milk_status coreml_blob_check(milk_ctx *ctx, const coreml_blob_file *bf,
                              uint64_t record, milk_dtype d, int64_t n,
                              uint64_t *data_offset);

/* weight.bin being written. */
typedef struct coreml_blob_writer {
    int fd;
    const char *path;
    uint32_t count;
    uint64_t end; /* file length so far */
} coreml_blob_writer;

milk_status coreml_blob_create(milk_ctx *ctx, const char *path,
                               coreml_blob_writer *bw);
/* Append v's data (streamed) as one blob; *record is the offset of its
 * metadata record, for BlobFileValue.offset. */
milk_status coreml_blob_append(milk_ctx *ctx, coreml_blob_writer *bw,
                               const milk_value *v, uint64_t *record);
milk_status coreml_blob_finish(milk_ctx *ctx, coreml_blob_writer *bw);
/* True if a const value goes to weight.bin (docs/coreml-format.md 4.6). */
bool coreml_blob_wanted(const milk_value *v, milk_target target);

/* ---- reading (read.c, value_read.c, desc.c) ------------------------------------ */

typedef struct coreml_reader {
    milk_ctx *ctx;
    milk_program *p;
    const char *root;        /* realpath of the directory files must stay in */
    const char *weights_dir; /* what @model_path/weights/ stands for */
    int n_blobs;             /* weight files opened so far */
    coreml_blob_file blobs[8];
    coreml_scope *scope;     /* of the function being read */
} coreml_reader;

/* Read the tensor type of a ValueType; `what` names the var or value in
 * messages. Non-tensor types are MILK_ERR_UNSUPPORTED. */
milk_status coreml_type_read(coreml_reader *r, const pb_value_type *vt,
                             const char *what, milk_tensor_type *out);
/* Decode a Value (immediate or blob file). */
milk_status coreml_value_read(coreml_reader *r, const pb_value *v,
                              milk_value **out);
/* Decode one entry of a map<string, Value> (attributes) into attrs. */
milk_status coreml_attr_read(coreml_reader *r, const char *key,
                             const pb_value *v, milk_attrs *out);
/* The model description: features and metadata into r->p. */
milk_status coreml_desc_read(coreml_reader *r, const pb_description *d);
/* After the program is read: every described function exists (and, for a
 * multifunction description, every function is described), and each
 * function's described states are its state inputs, shapes included. */
milk_status coreml_desc_check(coreml_reader *r, const pb_description *d);

/* Read model.mlmodel at `file` (messages name it as given) into *out.
 * root, weights_dir: as in coreml_reader. */
milk_status coreml_model_read(milk_ctx *ctx, const char *file,
                              const char *root, const char *weights_dir,
                              milk_program **out);

/* ---- writing (write.c, value_write.c, desc.c) ------------------------------------ */

/* A blob written, and the value it came from. */
typedef struct coreml_blob_seen {
    const milk_value *v;
    uint64_t record;
} coreml_blob_seen;

typedef struct coreml_writer {
    milk_ctx *ctx;
    const milk_program *p;
    milk_arena *a;           /* scratch for the protobuf-c structs */
    const char *weights_path;/* weight.bin to create on the first blob */
    bool have_blobs;
    coreml_blob_writer blob;
    int n_seen, cap_seen;    /* blobs written so far */
    coreml_blob_seen *seen;
} coreml_writer;

/* Allocate a protobuf-c message in w's arena, initialized from its
 * generated INIT macro, e.g. COREML_PB_NEW(w, pb_value,
 * CORE_ML__SPECIFICATION__MILSPEC__VALUE__INIT). The macro is variadic
 * because the INIT macro expands to a braced list with commas. NULL on
 * allocation failure. */
static inline void *coreml_pb_dup(coreml_writer *w, const void *init,
                                  size_t n)
{
    return milk_arena_memdup(w->a, init, n);
}
#define COREML_PB_NEW(w, T, ...) \
    ((T *)coreml_pb_dup((w), &(T)__VA_ARGS__, sizeof(T)))

pb_value_type *coreml_tensor_type_write(coreml_writer *w,
                                        const milk_tensor_type *t);
/* Encode a value as an immediate value, or as a blob when `blob_ok` and
 * the value qualifies. NULL on failure (message on w->ctx). */
pb_value *coreml_value_write(coreml_writer *w, const milk_value *v,
                             bool blob_ok);
/* Encode the values of attrs (vals[i] for at->a[i]); the caller wraps
 * them in its own map entry type. */
milk_status coreml_attrs_write(coreml_writer *w, const milk_attrs *at,
                               pb_value ***vals);
/* The model description (recorded or derived from main). */
milk_status coreml_desc_write(coreml_writer *w, pb_description **out);
/* Write model.mlmodel at `file`, weights to w->weights_path. */
milk_status coreml_model_write(coreml_writer *w, const char *file);

/* ---- Manifest.json (manifest.c) ------------------------------------------- */

typedef struct coreml_manifest {
    char model[4096];   /* realpath of the root model file */
    char model_rel[4096]; /* Data/<item path>, for messages */
    char weights[4096]; /* realpath of the weights directory, "" if none */
} coreml_manifest;

/* Read and validate PKG/Manifest.json; pkg_real is realpath(pkg). */
milk_status coreml_manifest_read(milk_ctx *ctx, const char *pkg,
                                 const char *pkg_real, coreml_manifest *m);
/* Write dir/Manifest.json for a model and its weights. */
milk_status coreml_manifest_write(milk_ctx *ctx, const char *dir);

/* ---- paths (package.c) ------------------------------------------------------ */

/* snprintf into buf of PATH_MAX-like size; false if it does not fit. */
bool coreml_path_join(char *buf, size_t n, const char *a, const char *b);
/* realpath of path, and check that it lies inside root (a realpath).
 * `file` and `what` name the referring file and field in messages. */
milk_status coreml_path_inside(milk_ctx *ctx, const char *file,
                               const char *what, const char *path,
                               const char *root, char *out, size_t n);

#endif /* MILK_COREML_H */
