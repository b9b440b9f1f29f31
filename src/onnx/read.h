/*
 * read.h: what the files of the ONNX reader (src/onnx/read_*.c) share: the
 * reader's state and a cursor over the protobuf wire format. Not part of
 * the interface the lowering uses (that is onnx.h).
 *
 * Why a hand-made wire walker: protobuf-c copies every bytes field when it
 * unpacks a message, so unpacking a ModelProto would copy each weight
 * (raw_data) into the heap, a gigabyte for a large model. Walking the wire
 * format over an mmap of the file lets the reader note where each
 * raw_data lies (offset, length) and skip it without touching its pages.
 */
#ifndef MILK_ONNX_READ_H
#define MILK_ONNX_READ_H

#include "onnx.h"

/* Protobuf wire types. */
enum {
    MILK_PB_VARINT = 0,
    MILK_PB_I64 = 1,
    MILK_PB_LEN = 2,
    MILK_PB_SGROUP = 3,
    MILK_PB_EGROUP = 4,
    MILK_PB_I32 = 5,
};

/* Upper bound on the entries of any repeated field (nodes, initializers,
 * attributes, ints, ...): far above real models, low enough that a hostile
 * count cannot make the reader allocate gigabytes of bookkeeping. */
#define MILK_ONNX_MAX_COUNT (1 << 22)
/* Upper bound on typed data (float_data, ...) decoded into the arena. Large
 * tensors use raw_data, which is never copied. */
#define MILK_ONNX_MAX_INLINE ((uint64_t)1 << 28)

/* The bytes of one message, and the names of its fields by number (for
 * messages; names[i] may be NULL). */
typedef struct milk_pb {
    const uint8_t *p, *end;
    const char *const *names;
    uint32_t n_names;
} milk_pb;

/* One field as read from the wire. */
typedef struct milk_pb_field {
    uint32_t num;
    int wire;
    uint64_t u;          /* VARINT, I64, I32: the value */
    const uint8_t *data; /* LEN: the payload, len bytes */
    uint64_t len;
    const uint8_t *at;   /* where the tag starts */
} milk_pb_field;

typedef struct milk_onnx_reader {
    milk_ctx *ctx;
    milk_arena *arena;
    const uint8_t *base;   /* the .onnx file, mapped read-only */
    uint64_t size;
    const char *real_path; /* of the .onnx file: the path of file ranges */
    const char *dir;       /* the model's directory, absolute, resolved */
    /* The external data file resolved last (exporters put all weights in
     * one file, so this saves a realpath() per tensor). */
    const char *ext_location, *ext_path;
    uint64_t ext_size;
} milk_onnx_reader;

/* ---- the wire cursor (read_wire.c) -------------------------------------- */

/* A cursor over the whole of [p, p+n) with the given field names. */
milk_pb milk_pb_make(const uint8_t *p, uint64_t n, const char *const *names,
                     uint32_t n_names);
/* A cursor over a LEN field's payload. */
milk_pb milk_pb_sub(const milk_pb_field *f, const char *const *names,
                    uint32_t n_names);
/* Read the next field of c into f; at the end of the message f->num is 0.
 * Unknown groups are skipped. MILK_ERR_PARSE on malformed bytes. */
milk_status milk_pb_next(milk_onnx_reader *r, milk_pb *c, milk_pb_field *f);
/* The name of field num of c's message ("raw_data"), or "field 42" written
 * into buf. */
const char *milk_pb_name(const milk_pb *c, uint32_t num, char *buf,
                         size_t n);
/* MILK_ERR_PARSE unless f has the wire type `wire`. */
milk_status milk_pb_want(milk_onnx_reader *r, const milk_pb *c,
                         const milk_pb_field *f, int wire);

/* Field readers: check the wire type and convert. Strings are copied into
 * the arena; milk_pb_string refuses NUL bytes (names must be C strings),
 * milk_pb_bytes keeps them and returns the length. */
milk_status milk_pb_varint(milk_onnx_reader *r, const milk_pb *c,
                           const milk_pb_field *f, uint64_t *out);
milk_status milk_pb_string(milk_onnx_reader *r, const milk_pb *c,
                           const milk_pb_field *f, const char **out);
milk_status milk_pb_bytes(milk_onnx_reader *r, const milk_pb *c,
                          const milk_pb_field *f, const char **out,
                          uint64_t *len);

/* Repeated scalars come one per field or packed in a LEN field. Count the
 * values f holds (elem_wire: VARINT, I32 or I64), checking every varint. */
milk_status milk_pb_count(milk_onnx_reader *r, const milk_pb *c,
                          const milk_pb_field *f, int elem_wire,
                          uint64_t *n);
/* Iterate over the values of a field already checked by milk_pb_count. */
typedef struct milk_pb_iter {
    const uint8_t *p, *end; /* packed values left */
    int wire;
    bool single_left;       /* an unpacked field's one value */
    uint64_t single;
} milk_pb_iter;
milk_pb_iter milk_pb_iter_make(const milk_pb_field *f, int elem_wire);
bool milk_pb_iter_next(milk_pb_iter *it, uint64_t *v);

/* Count the occurrences of each field number below n in c's message into
 * counts[0..n-1] (repeated messages and strings: one per field). Fails if
 * the message is malformed or a count exceeds MILK_ONNX_MAX_COUNT. */
milk_status milk_pb_tally(milk_onnx_reader *r, const milk_pb *c,
                          uint64_t *counts, uint32_t n);

/* Best effort, for error messages: the string field num of the message in
 * [p, p+n), or NULL. Never fails and records nothing. */
const char *milk_pb_peek_string(milk_onnx_reader *r, const uint8_t *p,
                                uint64_t n, uint32_t num);

/* ---- the parts (read_tensor.c, read_node.c, read_value.c) -------------- */

/* Parse the TensorProto in f's payload (a LEN field: callers check) into
 * t. Errors name the field inside the tensor ("dims[1] = -4"); callers
 * prefix where the tensor is. */
milk_status milk_onnx_read_tensor(milk_onnx_reader *r,
                                  const milk_pb_field *f,
                                  milk_onnx_tensor *t);
/* Resolve a tensor's external data (read_external.c): the entries
 * location, offset and length (NULL when absent) become t's file range.
 * t's shape and nbytes are set. */
milk_status milk_onnx_read_external(milk_onnx_reader *r, const char *location,
                                    const char *offset, const char *length,
                                    milk_onnx_tensor *t);
/* Parse the NodeProto in f's payload into n. */
milk_status milk_onnx_read_node(milk_onnx_reader *r, const milk_pb_field *f,
                                milk_onnx_node *n);
/* Parse the ValueInfoProto in f's payload into v (with protobuf-c). */
milk_status milk_onnx_read_value_info(milk_onnx_reader *r,
                                      const milk_pb_field *f,
                                      milk_onnx_value_info *v);
/* Parse the OperatorSetIdProto in f's payload into o (with protobuf-c). */
milk_status milk_onnx_read_opset(milk_onnx_reader *r, const milk_pb_field *f,
                                 milk_onnx_opset_import *o);

/* Allocate n zeroed elements of size `elem` in the arena (n may be 0);
 * MILK_ERR_NOMEM on failure or overflow. */
milk_status milk_onnx_alloc(milk_onnx_reader *r, uint64_t n, size_t elem,
                            void *out);

#endif /* MILK_ONNX_READ_H */
