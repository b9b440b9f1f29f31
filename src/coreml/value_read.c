/*
 * value_read.c: MIL.proto ValueTypes and Values into milk types and
 * values. Every field is checked against the declared type (dtype codes,
 * rank against dimensions, element counts) before anything is allocated,
 * and a BlobFileValue is resolved to a validated range of weight.bin whose
 * data is not read.
 */
#include "coreml.h"

#include <float.h>
#include <limits.h>
#include <math.h>
#include <stdlib.h>

#define VT(x) CORE_ML__SPECIFICATION__MILSPEC__VALUE_TYPE__TYPE_##x
#define DIM(x) CORE_ML__SPECIFICATION__MILSPEC__DIMENSION__DIMENSION_##x
#define VAL(x) CORE_ML__SPECIFICATION__MILSPEC__VALUE__VALUE_##x
#define IMM(x) CORE_ML__SPECIFICATION__MILSPEC__VALUE__IMMEDIATE_VALUE__VALUE_##x
#define TV(x) CORE_ML__SPECIFICATION__MILSPEC__TENSOR_VALUE__VALUE_##x

typedef CoreML__Specification__MILSpec__TensorValue pb_tv;
typedef CoreML__Specification__MILSpec__Value__ImmediateValue pb_imm;
typedef CoreML__Specification__MILSpec__Value__BlobFileValue pb_blob;

static milk_status nomem(milk_ctx *ctx)
{
    return milk_errorf(ctx, MILK_ERR_NOMEM, "out of memory");
}

/* ---- types ---------------------------------------------------------------- */

static milk_status dims_read(coreml_reader *r, const pb_tensor_type *tt,
                             const char *what, milk_tensor_type *out)
{
    int64_t known[MILK_MAX_RANK], count;
    int n_known = 0;
    for (int i = 0; i < out->rank; i++) {
        const pb_dim *d = tt->dimensions[i];
        if (d->dimension_case == DIM(CONSTANT)) {
            uint64_t n = d->constant->size;
            known[n_known++] = n > (uint64_t)MILK_MAX_ELEMENTS ? -1 : (int64_t)n;
            if (!milk_dims_count(known, n_known, &count))
                return milk_errorf(r->ctx, MILK_ERR_INVALID_MODEL,
                                   "%s: dimensions[%d]: size %llu makes more "
                                   "than 2^40 elements",
                                   what, i, (unsigned long long)n);
            out->dims[i] = (int64_t)n;
        } else if (d->dimension_case == DIM(UNKNOWN)) {
            if (d->unknown->variadic)
                return milk_errorf(r->ctx, MILK_ERR_UNSUPPORTED,
                                   "%s: dimensions[%d]: variadic dimensions "
                                   "are not supported",
                                   what, i);
            out->dims[i] = MILK_DIM_UNKNOWN;
        } else {
            return milk_errorf(r->ctx, MILK_ERR_INVALID_MODEL,
                               "%s: dimensions[%d]: neither constant nor "
                               "unknown",
                               what, i);
        }
    }
    return MILK_OK;
}

static milk_status tensor_type_read(coreml_reader *r, const pb_tensor_type *tt,
                                    const char *what, milk_tensor_type *out)
{
    memset(out, 0, sizeof *out);
    int code = (int)tt->datatype;
    if (!milk_dtype_name((milk_dtype)code))
        return milk_errorf(r->ctx,
                           code == 40 || code == 41 ? MILK_ERR_UNSUPPORTED
                                                    : MILK_ERR_INVALID_MODEL,
                           "%s: dataType: unknown or unsupported DataType "
                           "code %d",
                           what, code);
    out->dtype = (milk_dtype)code;
    if (tt->n_attributes)
        return milk_errorf(r->ctx, MILK_ERR_UNSUPPORTED,
                           "%s: tensor type attributes are not supported",
                           what);
    if (tt->rank == -1 && tt->n_dimensions == 0) {
        out->rank = MILK_RANK_UNKNOWN;
        return MILK_OK;
    }
    if (tt->rank < 0 || (uint64_t)tt->rank != tt->n_dimensions)
        return milk_errorf(r->ctx, MILK_ERR_INVALID_MODEL,
                           "%s: rank is %lld but %zu dimensions are given",
                           what, (long long)tt->rank, tt->n_dimensions);
    if (tt->rank > MILK_MAX_RANK)
        return milk_errorf(r->ctx, MILK_ERR_UNSUPPORTED,
                           "%s: rank %lld is above milk's limit of %d", what,
                           (long long)tt->rank, MILK_MAX_RANK);
    out->rank = (int32_t)tt->rank;
    return dims_read(r, tt, what, out);
}

static const char *type_kind_name(int c)
{
    switch (c) {
    case VT(LIST_TYPE): return "a list";
    case VT(TUPLE_TYPE): return "a tuple";
    case VT(DICTIONARY_TYPE): return "a dictionary";
    case VT(STATE_TYPE): return "a state";
    default: return "not set";
    }
}

milk_status coreml_type_read(coreml_reader *r, const pb_value_type *vt,
                             const char *what, milk_tensor_type *out)
{
    if (!vt)
        return milk_errorf(r->ctx, MILK_ERR_INVALID_MODEL, "%s: no type",
                           what);
    if (vt->type_case != VT(TENSOR_TYPE))
        return milk_errorf(r->ctx,
                           vt->type_case == VT(_NOT_SET)
                               ? MILK_ERR_INVALID_MODEL
                               : MILK_ERR_UNSUPPORTED,
                           "%s: type is %s, milk handles tensors only", what,
                           type_kind_name(vt->type_case));
    return tensor_type_read(r, vt->tensortype, what, out);
}

/* ---- immediate tensors ------------------------------------------------------ */

/* Store integer x as element i of dst (dtype d); false if d is not an
 * integer or bool dtype of at least 8 bits, or x does not fit. */
static bool put_int(milk_dtype d, void *dst, int64_t i, int64_t x)
{
    int64_t lo, hi;
    switch (d) {
    case MILK_DTYPE_BOOL: lo = 0; hi = 1; break;
    case MILK_DTYPE_INT8: lo = INT8_MIN; hi = INT8_MAX; break;
    case MILK_DTYPE_UINT8: lo = 0; hi = UINT8_MAX; break;
    case MILK_DTYPE_INT16: lo = INT16_MIN; hi = INT16_MAX; break;
    case MILK_DTYPE_UINT16: lo = 0; hi = UINT16_MAX; break;
    case MILK_DTYPE_INT32: lo = INT32_MIN; hi = INT32_MAX; break;
    case MILK_DTYPE_UINT32: lo = 0; hi = UINT32_MAX; break;
    case MILK_DTYPE_INT64: case MILK_DTYPE_UINT64: lo = INT64_MIN; hi = INT64_MAX; break;
    default: return false;
    }
    if (x < lo || x > hi) return false;
    size_t sz = (size_t)milk_dtype_bits(d) / 8;
    unsigned char *p = (unsigned char *)dst + (size_t)i * sz;
    for (size_t b = 0; b < sz; b++) p[b] = (unsigned char)((uint64_t)x >> (8 * b));
    return true;
}

/* Store x as element i of dst (fp16, fp32 or fp64); false otherwise, or
 * if a finite x is beyond float's range (converting it is undefined). */
static bool put_float(milk_dtype d, void *dst, int64_t i, double x)
{
    if (d != MILK_DTYPE_FP64 && isfinite(x) && fabs(x) > FLT_MAX) return false;
    if (d == MILK_DTYPE_FP16) {
        uint16_t h = milk_fp32_to_fp16((float)x);
        memcpy((char *)dst + i * 2, &h, 2);
    } else if (d == MILK_DTYPE_FP32) {
        float f = (float)x;
        memcpy((char *)dst + i * 4, &f, 4);
    } else if (d == MILK_DTYPE_FP64) {
        memcpy((char *)dst + i * 8, &x, 8);
    } else {
        return false;
    }
    return true;
}

static size_t tv_count(const pb_tv *tv)
{
    switch (tv->value_case) {
    case TV(FLOATS): return tv->floats->n_values;
    case TV(INTS): return tv->ints->n_values;
    case TV(BOOLS): return tv->bools->n_values;
    case TV(STRINGS): return tv->strings->n_values;
    case TV(LONG_INTS): return tv->longints->n_values;
    case TV(DOUBLES): return tv->doubles->n_values;
    default: return 0;
    }
}

static const char *tv_field(int c)
{
    static const char *const names[] = {"not set", "floats", "ints", "bools",
                                        "strings", "longInts", "doubles",
                                        "bytes"};
    return c >= 0 && c < 8 ? names[c] : "?";
}

/* Fill the n elements of dst (dtype d) from a numeric field. */
static bool tv_fill(const pb_tv *tv, milk_dtype d, void *dst, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        bool ok = false;
        switch (tv->value_case) {
        case TV(FLOATS): ok = put_float(d, dst, (int64_t)i, tv->floats->values[i]); break;
        case TV(DOUBLES): ok = put_float(d, dst, (int64_t)i, tv->doubles->values[i]); break;
        case TV(INTS): ok = put_int(d, dst, (int64_t)i, tv->ints->values[i]); break;
        case TV(LONG_INTS): ok = put_int(d, dst, (int64_t)i, tv->longints->values[i]); break;
        case TV(BOOLS):
            ok = d == MILK_DTYPE_BOOL && put_int(d, dst, (int64_t)i, tv->bools->values[i] ? 1 : 0);
            break;
        default: break;
        }
        if (!ok) return false;
    }
    return true;
}

static milk_status tensor_value_read(coreml_reader *r, const pb_tv *tv,
                                     const milk_tensor_type *t,
                                     milk_value **out)
{
    const char *dn = milk_dtype_name(t->dtype);
    int64_t n = milk_tensor_type_count(t);
    if (n < 0)
        return milk_errorf(r->ctx, MILK_ERR_INVALID_MODEL,
                           "immediate value: shape must be fully known");
    if (tv->value_case == TV(BYTES)) {
        uint64_t need;
        if (t->dtype == MILK_DTYPE_STRING || !milk_dtype_nbytes(t->dtype, n, &need) ||
            tv->bytes->values.len != need)
            return milk_errorf(r->ctx, MILK_ERR_INVALID_MODEL,
                               "immediate value: bytes: %zu bytes for %lld "
                               "%s elements",
                               tv->bytes->values.len, (long long)n, dn);
        *out = milk_value_new_tensor(r->p->arena, t, tv->bytes->values.data);
        return *out ? MILK_OK : nomem(r->ctx);
    }
    if (tv->value_case == TV(_NOT_SET) || (uint64_t)n != tv_count(tv))
        return milk_errorf(r->ctx, MILK_ERR_INVALID_MODEL,
                           "immediate value: %s: %zu values for %lld %s "
                           "elements",
                           tv_field(tv->value_case), tv_count(tv),
                           (long long)n, dn);
    if ((tv->value_case == TV(STRINGS)) != (t->dtype == MILK_DTYPE_STRING))
        return milk_errorf(r->ctx, MILK_ERR_INVALID_MODEL,
                           "immediate value: %s cannot hold %s elements",
                           tv_field(tv->value_case), dn);
    *out = milk_value_new_tensor(r->p->arena, t,
                                 t->dtype == MILK_DTYPE_STRING
                                     ? (const void *)tv->strings->values
                                     : NULL);
    if (!*out) return nomem(r->ctx);
    if (t->dtype == MILK_DTYPE_STRING) return MILK_OK;
    if (!tv_fill(tv, t->dtype, (void *)(*out)->data.ptr, (size_t)n))
        return milk_errorf(r->ctx, MILK_ERR_INVALID_MODEL,
                           "immediate value: %s: a value does not fit "
                           "dtype %s",
                           tv_field(tv->value_case), dn);
    return MILK_OK;
}

/* ---- blob file values -------------------------------------------------------- */

/* The opened blob file for path (a realpath), opening it on first use. */
static milk_status blob_file(coreml_reader *r, const char *path,
                             const coreml_blob_file **out)
{
    for (int i = 0; i < r->n_blobs; i++) {
        if (strcmp(r->blobs[i].path, path) == 0) {
            *out = &r->blobs[i];
            return MILK_OK;
        }
    }
    if (r->n_blobs == (int)MILK_ARRAY_LEN(r->blobs))
        return milk_errorf(r->ctx, MILK_ERR_UNSUPPORTED,
                           "more than %d weight files",
                           (int)MILK_ARRAY_LEN(r->blobs));
    MILK_TRY(coreml_blob_open(r->ctx, path, &r->blobs[r->n_blobs]));
    *out = &r->blobs[r->n_blobs++];
    return MILK_OK;
}

/* "@model_path/weights/<file>" -> realpath of weights_dir/<file>. */
static milk_status blob_path(coreml_reader *r, const char *name, char *out,
                             size_t n)
{
    size_t plen = strlen(COREML_WEIGHTS_PREFIX);
    const char *file = name + plen;
    if (strncmp(name, COREML_WEIGHTS_PREFIX, plen) != 0 || !*file ||
        strchr(file, '/') || strcmp(file, ".") == 0 || strcmp(file, "..") == 0)
        return milk_errorf(r->ctx, MILK_ERR_INVALID_MODEL,
                           "blobFileValue: fileName '%s' is not "
                           "'@model_path/weights/<file>'",
                           name);
    char path[4096];
    if (!coreml_path_join(path, sizeof path, r->weights_dir, file))
        return milk_errorf(r->ctx, MILK_ERR_INVALID_MODEL,
                           "blobFileValue: path too long");
    return coreml_path_inside(r->ctx, "blobFileValue", "fileName", path,
                              r->root, out, n);
}

static milk_status blob_value_read(coreml_reader *r, const pb_blob *b,
                                   const milk_tensor_type *t, milk_value **out)
{
    int64_t n = milk_tensor_type_count(t);
    if (n < 0)
        return milk_errorf(r->ctx, MILK_ERR_INVALID_MODEL,
                           "blobFileValue: shape must be fully known");
    char path[4096];
    MILK_TRY(blob_path(r, b->filename, path, sizeof path));
    const coreml_blob_file *bf = NULL;
    uint64_t data;
    MILK_TRY(blob_file(r, path, &bf));
    MILK_TRY(coreml_blob_check(r->ctx, bf, b->offset, t->dtype, n, &data));
    milk_value *v = milk_arena_alloc(r->p->arena, sizeof *v);
    char *p = milk_arena_strdup(r->p->arena, path);
    if (!v || !p) return nomem(r->ctx);
    v->kind = MILK_VALUE_TENSOR;
    v->type = *t;
    v->data = (milk_data){.kind = MILK_DATA_FILE, .path = p, .offset = data,
                          .stored = t->dtype, .record = b->offset};
    *out = v;
    return MILK_OK;
}

/* ---- tuples, lists, dicts ----------------------------------------------------- */

static bool same_type(const milk_tensor_type *a, const milk_tensor_type *b)
{
    if (a->dtype != b->dtype || a->rank != b->rank) return false;
    for (int i = 0; i < a->rank; i++)
        if (a->dims[i] != b->dims[i]) return false;
    return true;
}

/* Does the declared ValueType vt describe the decoded value v exactly? */
static bool type_matches(coreml_reader *r, const pb_value_type *vt,
                         const milk_value *v)
{
    milk_tensor_type t;
    switch (vt ? vt->type_case : VT(_NOT_SET)) {
    case VT(TENSOR_TYPE):
        return v->kind == MILK_VALUE_TENSOR &&
               tensor_type_read(r, vt->tensortype, "", &t) == MILK_OK &&
               same_type(&t, &v->type);
    case VT(TUPLE_TYPE):
        if (v->kind != MILK_VALUE_TUPLE || vt->tupletype->n_types != (size_t)v->n)
            return false;
        for (int i = 0; i < v->n; i++)
            if (!type_matches(r, vt->tupletype->types[i], v->items[i]))
                return false;
        return true;
    case VT(LIST_TYPE):
        return v->kind == MILK_VALUE_LIST &&
               coreml_type_read(r, vt->listtype->type, "", &t) == MILK_OK &&
               same_type(&t, &v->elem[0]);
    case VT(DICTIONARY_TYPE):
        return v->kind == MILK_VALUE_DICT &&
               coreml_type_read(r, vt->dictionarytype->keytype, "", &t) == MILK_OK &&
               same_type(&t, &v->elem[0]) &&
               coreml_type_read(r, vt->dictionarytype->valuetype, "", &t) == MILK_OK &&
               same_type(&t, &v->elem[1]);
    default:
        return false;
    }
}

static milk_status items_read(coreml_reader *r, CoreML__Specification__MILSpec__Value **vals,
                              size_t n, milk_value *out)
{
    if (n > INT_MAX / 2)
        return milk_errorf(r->ctx, MILK_ERR_INVALID_MODEL, "too many values");
    out->n = (int)n;
    out->items = milk_arena_alloc(r->p->arena, (n ? n : 1) * sizeof *out->items);
    if (!out->items) return nomem(r->ctx);
    for (size_t i = 0; i < n; i++) {
        milk_status s = coreml_value_read(r, vals[i], &out->items[i]);
        if (s != MILK_OK) return coreml_prefix(r->ctx, s, "item %zu", i);
    }
    return MILK_OK;
}

static milk_status tuple_read(coreml_reader *r, const pb_value *pv,
                              milk_value *out)
{
    const CoreML__Specification__MILSpec__TupleValue *tv = pv->immediatevalue->tuple;
    out->kind = MILK_VALUE_TUPLE;
    MILK_TRY(items_read(r, tv->values, tv->n_values, out));
    if (!type_matches(r, pv->type, out))
        return milk_errorf(r->ctx, MILK_ERR_INVALID_MODEL,
                           "tuple value: its type does not match its items");
    return MILK_OK;
}

/* Items first, first + step, ... of the n_items are tensors agreeing with
 * elem (dims compared where known). */
static bool items_fit(const milk_value *v, int n_items, int first, int step,
                      const milk_tensor_type *elem)
{
    for (int i = first; i < n_items; i += step) {
        const milk_value *it = v->items[i];
        if (it->kind != MILK_VALUE_TENSOR || it->type.dtype != elem->dtype)
            return false;
        if (elem->rank < 0) continue;
        if (it->type.rank != elem->rank) return false;
        for (int d = 0; d < elem->rank; d++)
            if (elem->dims[d] >= 0 && elem->dims[d] != it->type.dims[d])
                return false;
    }
    return true;
}

static milk_status list_read(coreml_reader *r, const pb_value *pv,
                             milk_value *out)
{
    const CoreML__Specification__MILSpec__ListType *lt = pv->type->listtype;
    const CoreML__Specification__MILSpec__ListValue *lv = pv->immediatevalue->list;
    out->kind = MILK_VALUE_LIST;
    MILK_TRY(coreml_type_read(r, lt->type, "list value: element type", &out->elem[0]));
    MILK_TRY(items_read(r, lv->values, lv->n_values, out));
    const pb_dim *len = lt->length;
    if ((len && len->dimension_case == DIM(CONSTANT) &&
         len->constant->size != (uint64_t)out->n) ||
        !items_fit(out, out->n, 0, 1, &out->elem[0]))
        return milk_errorf(r->ctx, MILK_ERR_INVALID_MODEL,
                           "list value: its type does not match its items");
    return MILK_OK;
}

static milk_status dict_read(coreml_reader *r, const pb_value *pv,
                             milk_value *out)
{
    const CoreML__Specification__MILSpec__DictionaryType *dt = pv->type->dictionarytype;
    const CoreML__Specification__MILSpec__DictionaryValue *dv = pv->immediatevalue->dictionary;
    out->kind = MILK_VALUE_DICT;
    MILK_TRY(coreml_type_read(r, dt->keytype, "dictionary value: keyType", &out->elem[0]));
    MILK_TRY(coreml_type_read(r, dt->valuetype, "dictionary value: valueType", &out->elem[1]));
    if (dv->n_values > INT_MAX / 4)
        return milk_errorf(r->ctx, MILK_ERR_INVALID_MODEL, "too many values");
    out->n = (int)dv->n_values; /* pairs: items[2i] key, items[2i+1] value */
    out->items = milk_arena_alloc(r->p->arena, (2 * dv->n_values + 1) * sizeof *out->items);
    if (!out->items) return nomem(r->ctx);
    for (size_t i = 0; i < dv->n_values; i++) {
        const CoreML__Specification__MILSpec__DictionaryValue__KeyValuePair *kv = dv->values[i];
        if (!kv->key || !kv->value)
            return milk_errorf(r->ctx, MILK_ERR_INVALID_MODEL,
                               "dictionary value: pair %zu lacks a key or value", i);
        MILK_TRY(coreml_value_read(r, kv->key, &out->items[2 * i]));
        MILK_TRY(coreml_value_read(r, kv->value, &out->items[2 * i + 1]));
    }
    if (!items_fit(out, 2 * out->n, 0, 2, &out->elem[0]) ||
        !items_fit(out, 2 * out->n, 1, 2, &out->elem[1]))
        return milk_errorf(r->ctx, MILK_ERR_INVALID_MODEL,
                           "dictionary value: its type does not match its "
                           "pairs");
    return MILK_OK;
}

/* A tuple, list or dict value; the type's kind must match the value's. */
static milk_status composite_read(coreml_reader *r, const pb_value *pv,
                                  milk_value **out)
{
    static const int want[] = {[IMM(TUPLE)] = VT(TUPLE_TYPE),
                               [IMM(LIST)] = VT(LIST_TYPE),
                               [IMM(DICTIONARY)] = VT(DICTIONARY_TYPE)};
    int c = pv->immediatevalue->value_case;
    if (c != IMM(TUPLE) && c != IMM(LIST) && c != IMM(DICTIONARY))
        return milk_errorf(r->ctx, MILK_ERR_INVALID_MODEL,
                           "immediateValue: no value set");
    if ((int)pv->type->type_case != want[c])
        return milk_errorf(r->ctx, MILK_ERR_INVALID_MODEL,
                           "immediateValue: the value's kind does not match "
                           "its type (%s)",
                           type_kind_name(pv->type->type_case));
    milk_value *v = milk_arena_alloc(r->p->arena, sizeof *v);
    if (!v) return nomem(r->ctx);
    *out = v;
    if (c == IMM(TUPLE)) return tuple_read(r, pv, v);
    if (c == IMM(LIST)) return list_read(r, pv, v);
    return dict_read(r, pv, v);
}

milk_status coreml_value_read(coreml_reader *r, const pb_value *v,
                              milk_value **out)
{
    if (!v || !v->type)
        return milk_errorf(r->ctx, MILK_ERR_INVALID_MODEL, "value has no type");
    bool tensor = v->type->type_case == VT(TENSOR_TYPE);
    if (v->value_case == VAL(IMMEDIATE_VALUE) && !tensor)
        return composite_read(r, v, out);
    if (v->value_case != VAL(IMMEDIATE_VALUE) && v->value_case != VAL(BLOB_FILE_VALUE))
        return milk_errorf(r->ctx, MILK_ERR_INVALID_MODEL,
                           "value has neither immediateValue nor "
                           "blobFileValue");
    milk_tensor_type t;
    MILK_TRY(coreml_type_read(r, v->type, "value", &t));
    if (v->value_case == VAL(BLOB_FILE_VALUE))
        return blob_value_read(r, v->blobfilevalue, &t, out);
    if (v->immediatevalue->value_case != IMM(TENSOR))
        return milk_errorf(r->ctx, MILK_ERR_INVALID_MODEL,
                           "immediateValue: a tensor type needs a tensor "
                           "value");
    return tensor_value_read(r, v->immediatevalue->tensor, &t, out);
}

milk_status coreml_attr_read(coreml_reader *r, const char *key,
                             const pb_value *v, milk_attrs *out)
{
    if (!milk_is_identifier(key))
        return milk_errorf(r->ctx, MILK_ERR_INVALID_MODEL,
                           "attribute name '%s' is not a MIL identifier", key);
    if (milk_attrs_get(out, key))
        return milk_errorf(r->ctx, MILK_ERR_INVALID_MODEL,
                           "attribute '%s' is given twice", key);
    milk_value *val;
    milk_status s = coreml_value_read(r, v, &val);
    if (s != MILK_OK) return coreml_prefix(r->ctx, s, "attribute '%s'", key);
    return milk_attrs_set(r->ctx, r->p->arena, out, key, val);
}
