/*
 * read_value.c: the small messages of an ONNX model that never hold
 * weights, ValueInfoProto (with TypeProto) and OperatorSetIdProto,
 * unpacked with protobuf-c from proto/onnx_milk.proto and copied into the
 * reader's arena.
 */
#include "read.h"
#include "onnx_milk.pb-c.h"

typedef Milk__Onnx__TypeProto__Tensor pb_tensor_type;

static milk_status read_dims(milk_onnx_reader *r,
                             const Milk__Onnx__TensorShapeProto *shape,
                             milk_onnx_value_info *v)
{
    if (shape->n_dim > MILK_MAX_RANK)
        return milk_errorf(r->ctx, MILK_ERR_UNSUPPORTED,
                           "shape: rank %zu above %d (milk's limit)",
                           shape->n_dim, MILK_MAX_RANK);
    v->rank = (int)shape->n_dim;
    for (int i = 0; i < v->rank; i++) {
        const Milk__Onnx__TensorShapeProto__Dimension *d = shape->dim[i];
        v->dims[i].value = MILK_DIM_UNKNOWN;
        if (d->value_case == MILK__ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE) {
            if (d->dim_value < 0)
                return milk_errorf(r->ctx, MILK_ERR_INVALID_MODEL,
                                   "shape: dim[%d] = %lld", i,
                                   (long long)d->dim_value);
            v->dims[i].value = d->dim_value;
        } else if (d->value_case ==
                   MILK__ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_PARAM) {
            v->dims[i].param = milk_arena_strdup(r->arena, d->dim_param);
            if (!v->dims[i].param)
                return milk_errorf(r->ctx, MILK_ERR_NOMEM, "out of memory");
        }
    }
    return MILK_OK;
}

static milk_status read_tensor_type(milk_onnx_reader *r,
                                    const pb_tensor_type *tt,
                                    milk_onnx_value_info *v)
{
    v->elem_type = tt->has_elem_type ? tt->elem_type : MILK_ONNX_UNDEFINED;
    if (!tt->shape) return MILK_OK; /* rank unknown */
    return read_dims(r, tt->shape, v);
}

static milk_status read_type(milk_onnx_reader *r,
                             const Milk__Onnx__TypeProto *t,
                             milk_onnx_value_info *v)
{
    switch (t->value_case) {
    case MILK__ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE:
        v->kind = MILK_ONNX_VALUE_TENSOR;
        return read_tensor_type(r, t->tensor_type, v);
    case MILK__ONNX__TYPE_PROTO__VALUE_SPARSE_TENSOR_TYPE:
        v->kind = MILK_ONNX_VALUE_SPARSE_TENSOR;
        return read_tensor_type(r, t->sparse_tensor_type, v);
    case MILK__ONNX__TYPE_PROTO__VALUE_SEQUENCE_TYPE:
        v->kind = MILK_ONNX_VALUE_SEQUENCE;
        return MILK_OK;
    case MILK__ONNX__TYPE_PROTO__VALUE_MAP_TYPE:
        v->kind = MILK_ONNX_VALUE_MAP;
        return MILK_OK;
    case MILK__ONNX__TYPE_PROTO__VALUE_OPTIONAL_TYPE:
        v->kind = MILK_ONNX_VALUE_OPTIONAL;
        return MILK_OK;
    case MILK__ONNX__TYPE_PROTO__VALUE_OPAQUE_TYPE:
        v->kind = MILK_ONNX_VALUE_OPAQUE;
        return MILK_OK;
    default:
        return MILK_OK; /* a type of a later ONNX version: kind NONE */
    }
}

/* The name is taken from the wire rather than from protobuf-c, which would
 * cut it silently at a NUL byte: a value's name wires the graph, so a NUL
 * in it is an error. */
static milk_status read_name(milk_onnx_reader *r, const milk_pb_field *f,
                             const char **name)
{
    static const char *const names[] = {[1] = "name", [2] = "type"};
    milk_pb c = milk_pb_sub(f, names, MILK_ARRAY_LEN(names));
    milk_pb_field g;
    *name = "";
    for (;;) {
        MILK_TRY(milk_pb_next(r, &c, &g));
        if (g.num == 0) break;
        if (g.num == 1) MILK_TRY(milk_pb_string(r, &c, &g, name));
    }
    if (!**name)
        return milk_errorf(r->ctx, MILK_ERR_INVALID_MODEL, "name is missing");
    return MILK_OK;
}

milk_status milk_onnx_read_value_info(milk_onnx_reader *r,
                                      const milk_pb_field *f,
                                      milk_onnx_value_info *v)
{
    memset(v, 0, sizeof *v);
    v->rank = MILK_RANK_UNKNOWN;
    Milk__Onnx__ValueInfoProto *m =
        milk__onnx__value_info_proto__unpack(NULL, (size_t)f->len, f->data);
    if (!m)
        return milk_errorf(r->ctx, MILK_ERR_PARSE,
                           "malformed ValueInfoProto at byte %llu",
                           (unsigned long long)(f->data - r->base));
    milk_status s = read_name(r, f, &v->name);
    if (s == MILK_OK && m->type) s = read_type(r, m->type, v);
    milk__onnx__value_info_proto__free_unpacked(m, NULL);
    return s;
}

milk_status milk_onnx_read_opset(milk_onnx_reader *r, const milk_pb_field *f,
                                 milk_onnx_opset_import *o)
{
    Milk__Onnx__OperatorSetIdProto *m =
        milk__onnx__operator_set_id_proto__unpack(NULL, (size_t)f->len, f->data);
    if (!m)
        return milk_errorf(r->ctx, MILK_ERR_PARSE,
                           "malformed OperatorSetIdProto at byte %llu",
                           (unsigned long long)(f->data - r->base));
    milk_status s = MILK_OK;
    o->version = m->version;
    o->domain = milk_arena_strdup(r->arena, m->domain ? m->domain : "");
    if (!o->domain) s = milk_errorf(r->ctx, MILK_ERR_NOMEM, "out of memory");
    else if (!m->has_version)
        s = milk_errorf(r->ctx, MILK_ERR_INVALID_MODEL, "version is missing");
    milk__onnx__operator_set_id_proto__free_unpacked(m, NULL);
    return s;
}
