/*
 * onnx.h: an ONNX model as milk's reader leaves it, for the lowering to MIL
 * to walk.
 *
 * milk_onnx_load() reads a .onnx file into a milk_onnx_model: the model's
 * header (IR version, producer, opset imports, metadata) and its main graph
 * (nodes in file order, initializers, inputs, outputs, value_info).
 * Everything is validated as it is read; every string and small array lives
 * in the model's arena and is freed with milk_onnx_free().
 *
 * Weights are never copied into memory. A tensor stored as raw_data, in
 * the .onnx file or in an external data file, is recorded as a file range
 * {path, offset, nbytes} holding exactly its little-endian element data:
 * the lowering hands that range to milk_block_add_const_file() and the Core
 * ML writer streams it into weight.bin. Only the typed data fields
 * (float_data, int32_data, ...), which exporters use for small tensors, are
 * decoded into the arena, as little-endian bytes of the tensor's dtype.
 *
 * Subgraphs (attributes of type GRAPH and GRAPHS, for If, Loop, Scan) are
 * counted but not parsed; sparse tensor attributes likewise. Graph-level
 * sparse initializers are refused with MILK_ERR_UNSUPPORTED.
 *
 * Integer codes (data types, attribute types) are ONNX's own, as in
 * onnx.proto, so that messages and the lowering can quote them.
 */
#ifndef MILK_ONNX_H
#define MILK_ONNX_H

#include "../ir/ir.h" /* milk_kv */

/* TensorProto.DataType codes. */
enum {
    MILK_ONNX_UNDEFINED = 0,
    MILK_ONNX_FLOAT = 1,
    MILK_ONNX_UINT8 = 2,
    MILK_ONNX_INT8 = 3,
    MILK_ONNX_UINT16 = 4,
    MILK_ONNX_INT16 = 5,
    MILK_ONNX_INT32 = 6,
    MILK_ONNX_INT64 = 7,
    MILK_ONNX_STRING = 8,
    MILK_ONNX_BOOL = 9,
    MILK_ONNX_FLOAT16 = 10,
    MILK_ONNX_DOUBLE = 11,
    MILK_ONNX_UINT32 = 12,
    MILK_ONNX_UINT64 = 13,
    MILK_ONNX_COMPLEX64 = 14,
    MILK_ONNX_COMPLEX128 = 15,
    MILK_ONNX_BFLOAT16 = 16,
    MILK_ONNX_FLOAT8E4M3FN = 17,
    MILK_ONNX_FLOAT8E4M3FNUZ = 18,
    MILK_ONNX_FLOAT8E5M2 = 19,
    MILK_ONNX_FLOAT8E5M2FNUZ = 20,
    MILK_ONNX_UINT4 = 21,
    MILK_ONNX_INT4 = 22,
    MILK_ONNX_FLOAT4E2M1 = 23,
    MILK_ONNX_FLOAT8E8M0 = 24,
    MILK_ONNX_UINT2 = 25,
    MILK_ONNX_INT2 = 26,
};

/* The milk dtype with the same element encoding as ONNX data type `code`
 * (FLOAT -> FP32, FLOAT16 -> FP16, DOUBLE -> FP64, BFLOAT16 -> BF16, the
 * integer types and BOOL to their namesakes, UINT4/INT4/UINT2 packed LSB
 * first as in ONNX), or MILK_DTYPE_INVALID for types milk has no
 * equivalent of (complex, float8, float4, int2) and unknown codes. */
milk_dtype milk_onnx_dtype_to_milk(int32_t code);
/* ONNX's name of a data type ("FLOAT", "INT64"), or NULL if unknown. */
const char *milk_onnx_dtype_name(int32_t code);
/* Bits per element (64 for COMPLEX64, 4 for INT4); 0 for STRING,
 * UNDEFINED and unknown codes. */
int milk_onnx_dtype_bits(int32_t code);

/* ---- tensors ------------------------------------------------------------- */

typedef enum milk_onnx_data_kind {
    MILK_ONNX_DATA_INLINE = 0, /* bytes (or strings) in the model's arena */
    MILK_ONNX_DATA_FILE,       /* a byte range of a file, not read */
} milk_onnx_data_kind;

/* A TensorProto: an initializer, or the value of a TENSOR(S) attribute. */
typedef struct milk_onnx_tensor {
    const char *name;      /* "" if the proto has none */
    int32_t dtype;         /* ONNX data type code, never UNDEFINED */
    int rank;              /* 0..MILK_MAX_RANK */
    int64_t dims[MILK_MAX_RANK];
    int64_t count;         /* elements: product of dims, <= MILK_MAX_ELEMENTS */
    uint64_t nbytes;       /* size of the element data; 0 for STRING */
    milk_onnx_data_kind kind;
    /* INLINE, numeric: nbytes bytes, little-endian, packed as in ONNX's
     * raw_data (bool one byte, 4-bit types two per byte LSB first). */
    const void *data;
    /* INLINE, STRING: count strings, each NUL-terminated, with their
     * lengths (ONNX strings are bytes and may hold NULs). */
    const char *const *strings;
    const uint64_t *string_lens;
    /* FILE: the absolute path (symlinks resolved) of the .onnx file or of
     * the external data file, and where the element data starts. */
    const char *path;
    uint64_t offset;
    bool external;         /* FILE: in an external data file */
} milk_onnx_tensor;

/* Copy a numeric tensor's t->nbytes bytes into dst, from the arena or from
 * its file. MILK_ERR_INVALID_ARG for STRING tensors; MILK_ERR_IO if the
 * file cannot be read (message names the file). */
milk_status milk_onnx_tensor_read(milk_ctx *ctx, const milk_onnx_tensor *t,
                                  void *dst);

/* ---- nodes ---------------------------------------------------------------- */

/* AttributeProto.AttributeType codes. */
enum {
    MILK_ONNX_ATTR_UNDEFINED = 0,
    MILK_ONNX_ATTR_FLOAT = 1,
    MILK_ONNX_ATTR_INT = 2,
    MILK_ONNX_ATTR_STRING = 3,
    MILK_ONNX_ATTR_TENSOR = 4,
    MILK_ONNX_ATTR_GRAPH = 5,
    MILK_ONNX_ATTR_FLOATS = 6,
    MILK_ONNX_ATTR_INTS = 7,
    MILK_ONNX_ATTR_STRINGS = 8,
    MILK_ONNX_ATTR_TENSORS = 9,
    MILK_ONNX_ATTR_GRAPHS = 10,
    MILK_ONNX_ATTR_SPARSE_TENSOR = 11,
    MILK_ONNX_ATTR_SPARSE_TENSORS = 12,
    MILK_ONNX_ATTR_TYPE_PROTO = 13,
    MILK_ONNX_ATTR_TYPE_PROTOS = 14,
};

/* "FLOAT", "INTS", ... or NULL if unknown. */
const char *milk_onnx_attr_type_name(int32_t type);

/* An AttributeProto. Every field present in the file is filled, whatever
 * `type` says; read the one `type` names. When the file gives no type (IR
 * version 1) it is inferred from the field present. */
typedef struct milk_onnx_attr {
    const char *name;
    int32_t type;              /* MILK_ONNX_ATTR_* */
    const char *ref_attr_name; /* NULL unless a reference (functions) */
    float f;
    int64_t i;
    const char *s;             /* NUL-terminated copy, or NULL if absent */
    uint64_t s_len;            /* bytes in s (may hold NULs) */
    const milk_onnx_tensor *t; /* NULL if absent */
    int n_floats;
    const float *floats;
    int n_ints;
    const int64_t *ints;
    int n_strings;
    const char *const *strings;
    const uint64_t *string_lens;
    int n_tensors;
    const milk_onnx_tensor *tensors;
    /* Present but not parsed. */
    int n_graphs;         /* g (1) plus graphs */
    int n_sparse_tensors; /* sparse_tensor (1) plus sparse_tensors */
    int n_type_protos;    /* tp (1) plus type_protos */
} milk_onnx_attr;

/* A NodeProto. */
typedef struct milk_onnx_node {
    const char *name;     /* "" if absent */
    const char *op_type;
    const char *domain;   /* "" for the default domain */
    int n_inputs;
    const char *const *inputs; /* "" is an omitted optional input */
    int n_outputs;
    const char *const *outputs;
    int n_attrs;
    const milk_onnx_attr *attrs;
} milk_onnx_node;

/* The attribute called name, or NULL. */
const milk_onnx_attr *milk_onnx_node_attr(const milk_onnx_node *n,
                                          const char *name);

/* ---- value info ------------------------------------------------------------ */

/* Which member of TypeProto's oneof a value has. */
typedef enum milk_onnx_value_kind {
    MILK_ONNX_VALUE_NONE = 0, /* no type given */
    MILK_ONNX_VALUE_TENSOR,
    MILK_ONNX_VALUE_SEQUENCE,
    MILK_ONNX_VALUE_MAP,
    MILK_ONNX_VALUE_OPTIONAL,
    MILK_ONNX_VALUE_SPARSE_TENSOR,
    MILK_ONNX_VALUE_OPAQUE,
} milk_onnx_value_kind;

/* One dimension: a number, a symbolic name, or neither (unknown). */
typedef struct milk_onnx_dim {
    int64_t value;     /* >= 0, or MILK_DIM_UNKNOWN */
    const char *param; /* dim_param, or NULL */
} milk_onnx_dim;

/* A ValueInfoProto (graph input, output or value_info entry). */
typedef struct milk_onnx_value_info {
    const char *name;
    milk_onnx_value_kind kind;
    int32_t elem_type; /* TENSOR, SPARSE_TENSOR: ONNX data type (0 if absent) */
    int rank;          /* TENSOR, SPARSE_TENSOR: MILK_RANK_UNKNOWN if no shape */
    milk_onnx_dim dims[MILK_MAX_RANK];
} milk_onnx_value_info;

/* ---- graphs and models ------------------------------------------------------- */

typedef struct milk_onnx_graph {
    const char *name;
    int n_nodes;
    const milk_onnx_node *nodes; /* in file order */
    int n_initializers;
    const milk_onnx_tensor *initializers;
    int n_inputs;
    const milk_onnx_value_info *inputs;
    int n_outputs;
    const milk_onnx_value_info *outputs;
    int n_value_info;
    const milk_onnx_value_info *value_info;
} milk_onnx_graph;

/* The initializer called name, or NULL (a linear search). */
const milk_onnx_tensor *milk_onnx_graph_initializer(const milk_onnx_graph *g,
                                                    const char *name);

typedef struct milk_onnx_opset_import {
    const char *domain; /* "" for the default domain, as in the file */
    int64_t version;
} milk_onnx_opset_import;

typedef struct milk_onnx_model {
    milk_arena *arena;          /* owns everything below */
    const char *path;           /* as given to milk_onnx_load */
    const char *dir;            /* its directory, absolute, symlinks resolved */
    int64_t ir_version;
    const char *producer_name;  /* "" if absent */
    const char *producer_version;
    const char *domain;
    int64_t model_version;
    int n_opsets;
    const milk_onnx_opset_import *opsets;
    int n_metadata;
    const milk_kv *metadata;    /* metadata_props, in file order */
    milk_onnx_graph graph;      /* the main graph */
} milk_onnx_model;

/* Read the ONNX model at path (ctx must not be NULL). External data files are located relative
 * to the directory of path and must stay inside it. On success *out
 * belongs to the caller (milk_onnx_free). Errors name the file and the
 * field at fault: MILK_ERR_IO (cannot open or map), MILK_ERR_PARSE
 * (malformed protobuf), MILK_ERR_INVALID_MODEL (inconsistent or unsafe
 * content), MILK_ERR_UNSUPPORTED (sparse initializers, segments, rank above
 * MILK_MAX_RANK, typed data too large to inline), MILK_ERR_NOMEM. */
milk_status milk_onnx_load(milk_ctx *ctx, const char *path,
                           milk_onnx_model **out);
void milk_onnx_free(milk_onnx_model *m);

/* The version of the opset imported for domain, or 0 if none is. "" and
 * "ai.onnx" both name the default domain. */
int64_t milk_onnx_opset(const milk_onnx_model *m, const char *domain);

#endif /* MILK_ONNX_H */
