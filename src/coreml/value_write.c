/*
 * value_write.c: milk types and values as MIL.proto ValueTypes and Values.
 * Tensors are encoded as docs/coreml-format.md 3.3 says (the TensorValue
 * field coremltools uses for each dtype); a const's value goes to
 * weight.bin when section 4.6's rule says so, streamed by blob.c.
 */
#include "coreml.h"

#include <stdlib.h>

#define VT(x) CORE_ML__SPECIFICATION__MILSPEC__VALUE_TYPE__TYPE_##x
#define DIM(x) CORE_ML__SPECIFICATION__MILSPEC__DIMENSION__DIMENSION_##x
#define VAL(x) CORE_ML__SPECIFICATION__MILSPEC__VALUE__VALUE_##x
#define IMM(x) CORE_ML__SPECIFICATION__MILSPEC__VALUE__IMMEDIATE_VALUE__VALUE_##x
#define TV(x) CORE_ML__SPECIFICATION__MILSPEC__TENSOR_VALUE__VALUE_##x

typedef CoreML__Specification__MILSpec__TensorValue pb_tv;
typedef CoreML__Specification__MILSpec__Value__ImmediateValue pb_imm;
typedef CoreML__Specification__MILSpec__Value__BlobFileValue pb_blob;

typedef CoreML__Specification__MILSpec__Dimension pb_dimension;

#define MILK_TRY_NULL(expr)                                                 \
    do {                                                                    \
        if ((expr) != MILK_OK) return NULL;                                 \
    } while (0)

static void *oom(coreml_writer *w)
{
    milk_errorf(w->ctx, MILK_ERR_NOMEM, "out of memory");
    return NULL;
}

#define NEW(T, ...) COREML_PB_NEW(w, T, __VA_ARGS__)
#define ARRAY(T, n) ((T *)milk_arena_alloc(w->a, ((n) ? (n) : 1) * sizeof(T)))

static pb_dimension *dim_write(coreml_writer *w, int64_t d)
{
    pb_dimension *pd = NEW(pb_dimension, CORE_ML__SPECIFICATION__MILSPEC__DIMENSION__INIT);
    if (!pd) return NULL;
    if (d >= 0) {
        pd->dimension_case = DIM(CONSTANT);
        pd->constant = NEW(CoreML__Specification__MILSpec__Dimension__ConstantDimension,
                           CORE_ML__SPECIFICATION__MILSPEC__DIMENSION__CONSTANT_DIMENSION__INIT);
        if (!pd->constant) return NULL;
        pd->constant->size = (uint64_t)d;
    } else {
        pd->dimension_case = DIM(UNKNOWN);
        pd->unknown = NEW(CoreML__Specification__MILSpec__Dimension__UnknownDimension,
                          CORE_ML__SPECIFICATION__MILSPEC__DIMENSION__UNKNOWN_DIMENSION__INIT);
        if (!pd->unknown) return NULL;
    }
    return pd;
}

pb_value_type *coreml_tensor_type_write(coreml_writer *w,
                                        const milk_tensor_type *t)
{
    pb_value_type *vt = NEW(pb_value_type, CORE_ML__SPECIFICATION__MILSPEC__VALUE_TYPE__INIT);
    pb_tensor_type *tt = NEW(pb_tensor_type, CORE_ML__SPECIFICATION__MILSPEC__TENSOR_TYPE__INIT);
    int rank = t->rank < 0 ? 0 : t->rank;
    pb_dimension **dims = ARRAY(pb_dimension *, (size_t)rank);
    if (!vt || !tt || !dims) return oom(w);
    vt->type_case = VT(TENSOR_TYPE);
    vt->tensortype = tt;
    tt->datatype = (CoreML__Specification__MILSpec__DataType)t->dtype;
    tt->rank = t->rank < 0 ? -1 : t->rank;
    tt->n_dimensions = (size_t)rank;
    tt->dimensions = dims;
    for (int i = 0; i < rank; i++)
        if (!(dims[i] = dim_write(w, t->dims[i]))) return oom(w);
    return vt;
}

/* The ValueType describing v (tensor, tuple, list or dict). */
static pb_value_type *value_type_write(coreml_writer *w, const milk_value *v)
{
    if (v->kind == MILK_VALUE_TENSOR) return coreml_tensor_type_write(w, &v->type);
    pb_value_type *vt = NEW(pb_value_type, CORE_ML__SPECIFICATION__MILSPEC__VALUE_TYPE__INIT);
    if (!vt) return oom(w);
    if (v->kind == MILK_VALUE_TUPLE) {
        CoreML__Specification__MILSpec__TupleType *tt =
            NEW(CoreML__Specification__MILSpec__TupleType, CORE_ML__SPECIFICATION__MILSPEC__TUPLE_TYPE__INIT);
        pb_value_type **types = ARRAY(pb_value_type *, (size_t)v->n);
        if (!tt || !types) return oom(w);
        for (int i = 0; i < v->n; i++)
            if (!(types[i] = value_type_write(w, v->items[i]))) return NULL;
        tt->n_types = (size_t)v->n;
        tt->types = types;
        vt->type_case = VT(TUPLE_TYPE);
        vt->tupletype = tt;
    } else if (v->kind == MILK_VALUE_LIST) {
        CoreML__Specification__MILSpec__ListType *lt =
            NEW(CoreML__Specification__MILSpec__ListType, CORE_ML__SPECIFICATION__MILSPEC__LIST_TYPE__INIT);
        if (!lt) return oom(w);
        if (!(lt->type = coreml_tensor_type_write(w, &v->elem[0]))) return NULL;
        if (!(lt->length = dim_write(w, v->n))) return oom(w);
        vt->type_case = VT(LIST_TYPE);
        vt->listtype = lt;
    } else {
        CoreML__Specification__MILSpec__DictionaryType *dt =
            NEW(CoreML__Specification__MILSpec__DictionaryType,
                CORE_ML__SPECIFICATION__MILSPEC__DICTIONARY_TYPE__INIT);
        if (!dt) return oom(w);
        if (!(dt->keytype = coreml_tensor_type_write(w, &v->elem[0])) ||
            !(dt->valuetype = coreml_tensor_type_write(w, &v->elem[1])))
            return NULL;
        vt->type_case = VT(DICTIONARY_TYPE);
        vt->dictionarytype = dt;
    }
    return vt;
}

/* The elements of a tensor value as packed bytes: its own memory, or a
 * copy read from its file (immediate values are small: large ones go to
 * weight.bin). */
static const void *tensor_bytes(coreml_writer *w, const milk_value *v)
{
    if (v->data.kind != MILK_DATA_FILE && v->data.kind != MILK_DATA_GEN)
        return v->data.ptr ? v->data.ptr : "";
    uint64_t nb;
    if (!milk_value_nbytes(v, &nb) || nb > SIZE_MAX / 2) {
        milk_errorf(w->ctx, MILK_ERR_INVALID_ARG, "value too large to inline");
        return NULL;
    }
    void *buf = milk_arena_alloc(w->a, nb ? (size_t)nb : 1);
    if (!buf) return oom(w);
    return milk_value_read(w->ctx, v, buf) == MILK_OK ? buf : NULL;
}

/* Element i of packed integer data as int64 (via the IR's reader). */
static int64_t elem_int(const milk_value *v, const void *data, int64_t i)
{
    milk_value tmp = *v;
    tmp.data.kind = MILK_DATA_BORROWED;
    tmp.data.ptr = data;
    int64_t x = 0;
    milk_value_get_i64(NULL, &tmp, i, &x);
    return x;
}

typedef enum enc { ENC_BYTES, ENC_FLOATS, ENC_DOUBLES, ENC_INTS, ENC_LONGS,
                   ENC_BOOLS, ENC_STRINGS } enc;

/* The TensorValue field coremltools writes each dtype in (section 3.3). */
static enc encoding_of(milk_dtype d)
{
    switch (d) {
    case MILK_DTYPE_BOOL: return ENC_BOOLS;
    case MILK_DTYPE_STRING: return ENC_STRINGS;
    case MILK_DTYPE_FP32: return ENC_FLOATS;
    case MILK_DTYPE_FP64: return ENC_DOUBLES;
    case MILK_DTYPE_INT16: case MILK_DTYPE_UINT16: case MILK_DTYPE_INT32:
        return ENC_INTS;
    case MILK_DTYPE_INT64: case MILK_DTYPE_UINT64: return ENC_LONGS;
    default: return ENC_BYTES; /* fp16, bf16, int8, uint8, uint32, sub-byte */
    }
}

static float load_f32(const void *p, size_t i)
{
    float f;
    memcpy(&f, (const char *)p + i * sizeof f, sizeof f);
    return f;
}

static double load_f64(const void *p, size_t i)
{
    double f;
    memcpy(&f, (const char *)p + i * sizeof f, sizeof f);
    return f;
}

static bool numbers_write(coreml_writer *w, pb_tv *tv, enc e,
                          const milk_value *v, const void *data, size_t n)
{
    /* One case per repeated field: allocate, convert n elements, attach. */
    switch (e) {
#define CASE(E, T, INIT, CASE_, MEMBER, ET, EXPR)                              \
    case E: {                                                                 \
        T *r_ = NEW(T, INIT);                                                 \
        ET *x_ = ARRAY(ET, n);                                                \
        if (!r_ || !x_) return false;                                         \
        for (size_t i = 0; i < n; i++) x_[i] = (ET)(EXPR);                    \
        r_->n_values = n;                                                     \
        r_->values = x_;                                                      \
        tv->value_case = TV(CASE_);                                           \
        tv->MEMBER = r_;                                                      \
        break;                                                                \
    }
    CASE(ENC_FLOATS, CoreML__Specification__MILSpec__TensorValue__RepeatedFloats,
         CORE_ML__SPECIFICATION__MILSPEC__TENSOR_VALUE__REPEATED_FLOATS__INIT,
         FLOATS, floats, float, load_f32(data, i))
    CASE(ENC_DOUBLES, CoreML__Specification__MILSpec__TensorValue__RepeatedDoubles,
         CORE_ML__SPECIFICATION__MILSPEC__TENSOR_VALUE__REPEATED_DOUBLES__INIT,
         DOUBLES, doubles, double, load_f64(data, i))
    CASE(ENC_INTS, CoreML__Specification__MILSpec__TensorValue__RepeatedInts,
         CORE_ML__SPECIFICATION__MILSPEC__TENSOR_VALUE__REPEATED_INTS__INIT,
         INTS, ints, int32_t, elem_int(v, data, (int64_t)i))
    CASE(ENC_LONGS, CoreML__Specification__MILSpec__TensorValue__RepeatedLongInts,
         CORE_ML__SPECIFICATION__MILSPEC__TENSOR_VALUE__REPEATED_LONG_INTS__INIT,
         LONG_INTS, longints, int64_t, elem_int(v, data, (int64_t)i))
    CASE(ENC_BOOLS, CoreML__Specification__MILSpec__TensorValue__RepeatedBools,
         CORE_ML__SPECIFICATION__MILSPEC__TENSOR_VALUE__REPEATED_BOOLS__INIT,
         BOOLS, bools, protobuf_c_boolean, ((const uint8_t *)data)[i] != 0)
#undef CASE
    default:
        return false;
    }
    return true;
}

static bool strings_write(coreml_writer *w, pb_tv *tv, const void *data,
                          size_t n)
{
    CoreML__Specification__MILSpec__TensorValue__RepeatedStrings *r =
        NEW(CoreML__Specification__MILSpec__TensorValue__RepeatedStrings,
            CORE_ML__SPECIFICATION__MILSPEC__TENSOR_VALUE__REPEATED_STRINGS__INIT);
    char **x = ARRAY(char *, n);
    if (!r || !x) return false;
    for (size_t i = 0; i < n; i++)
        x[i] = (char *)((const char *const *)data)[i];
    r->n_values = n;
    r->values = x;
    tv->value_case = TV(STRINGS);
    tv->strings = r;
    return true;
}

static bool bytes_write(coreml_writer *w, pb_tv *tv, const void *data,
                        uint64_t nbytes)
{
    CoreML__Specification__MILSpec__TensorValue__RepeatedBytes *r =
        NEW(CoreML__Specification__MILSpec__TensorValue__RepeatedBytes,
            CORE_ML__SPECIFICATION__MILSPEC__TENSOR_VALUE__REPEATED_BYTES__INIT);
    if (!r) return false;
    r->values.len = (size_t)nbytes;
    r->values.data = (uint8_t *)data;
    tv->value_case = TV(BYTES);
    tv->bytes = r;
    return true;
}

/* An immediate tensor value (its type is set by the caller). */
static pb_imm *tensor_imm_write(coreml_writer *w, const milk_value *v)
{
    int64_t n = milk_tensor_type_count(&v->type);
    uint64_t nb = 0;
    if (n < 0 || (v->type.dtype != MILK_DTYPE_STRING &&
                  !milk_value_nbytes(v, &nb))) {
        milk_errorf(w->ctx, MILK_ERR_INVALID_ARG,
                    "a constant tensor needs a known shape and dtype");
        return NULL;
    }
    const void *data = tensor_bytes(w, v);
    if (!data) return NULL;
    pb_imm *imm = NEW(pb_imm, CORE_ML__SPECIFICATION__MILSPEC__VALUE__IMMEDIATE_VALUE__INIT);
    pb_tv *tv = NEW(pb_tv, CORE_ML__SPECIFICATION__MILSPEC__TENSOR_VALUE__INIT);
    if (!imm || !tv) return oom(w);
    imm->value_case = IMM(TENSOR);
    imm->tensor = tv;
    enc e = encoding_of(v->type.dtype);
    bool ok = e == ENC_STRINGS ? strings_write(w, tv, data, (size_t)n)
              : e == ENC_BYTES ? bytes_write(w, tv, data, nb)
                               : numbers_write(w, tv, e, v, data, (size_t)n);
    return ok ? imm : oom(w);
}

/* Do a and b take their elements from the same place (same file range or
 * same memory) with the same type? */
static bool same_source(const milk_value *a, const milk_value *b)
{
    const milk_data *x = &a->data, *y = &b->data;
    if (x->kind != y->kind || a->type.dtype != b->type.dtype ||
        a->type.rank != b->type.rank)
        return false;
    for (int i = 0; i < a->type.rank; i++)
        if (a->type.dims[i] != b->type.dims[i]) return false;
    if (x->kind == MILK_DATA_GEN) return x->gen == y->gen;
    if (x->kind != MILK_DATA_FILE) return x->ptr == y->ptr;
    return x->offset == y->offset && x->stored == y->stored &&
           strcmp(x->path, y->path) == 0;
}

/* The record of a blob already written from the same source, or 0. A
 * weight shared by several consts (coremltools writes one blob for
 * identical weights of several functions) stays one blob. */
static uint64_t blob_seen(const coreml_writer *w, const milk_value *v)
{
    for (int i = 0; i < w->n_seen; i++)
        if (same_source(w->seen[i].v, v)) return w->seen[i].record;
    return 0;
}

static pb_blob *blob_write(coreml_writer *w, const milk_value *v)
{
    if (!w->have_blobs) {
        MILK_TRY_NULL(coreml_blob_create(w->ctx, w->weights_path, &w->blob));
        w->have_blobs = true;
    }
    uint64_t record = blob_seen(w, v);
    if (!record) {
        MILK_TRY_NULL(coreml_blob_append(w->ctx, &w->blob, v, &record));
        if (!milk_arena_grow(w->a, (void **)&w->seen, w->n_seen, &w->cap_seen,
                             sizeof *w->seen))
            return oom(w);
        w->seen[w->n_seen++] = (coreml_blob_seen){v, record};
    }
    pb_blob *b = NEW(pb_blob, CORE_ML__SPECIFICATION__MILSPEC__VALUE__BLOB_FILE_VALUE__INIT);
    if (!b) return oom(w);
    b->filename = COREML_WEIGHTS_PREFIX "weight.bin";
    b->offset = record;
    return b;
}

static pb_imm *composite_write(coreml_writer *w, const milk_value *v);

pb_value *coreml_value_write(coreml_writer *w, const milk_value *v,
                             bool blob_ok)
{
    pb_value *pv = NEW(pb_value, CORE_ML__SPECIFICATION__MILSPEC__VALUE__INIT);
    if (!pv) return oom(w);
    if (!(pv->type = value_type_write(w, v))) return NULL;
    if (v->kind == MILK_VALUE_TENSOR && blob_ok &&
        coreml_blob_wanted(v, w->p->target)) {
        pv->value_case = VAL(BLOB_FILE_VALUE);
        pv->blobfilevalue = blob_write(w, v);
        return pv->blobfilevalue ? pv : NULL;
    }
    pv->value_case = VAL(IMMEDIATE_VALUE);
    pv->immediatevalue = v->kind == MILK_VALUE_TENSOR ? tensor_imm_write(w, v)
                                                      : composite_write(w, v);
    return pv->immediatevalue ? pv : NULL;
}

static pb_value **values_write(coreml_writer *w, const milk_value *v)
{
    int n = v->kind == MILK_VALUE_DICT ? 2 * v->n : v->n; /* dict: pairs */
    pb_value **vals = ARRAY(pb_value *, (size_t)n);
    if (!vals) return oom(w);
    for (int i = 0; i < n; i++)
        if (!(vals[i] = coreml_value_write(w, v->items[i], false))) return NULL;
    return vals;
}

static pb_imm *dict_write(coreml_writer *w, pb_imm *imm, pb_value **vals,
                          int n_pairs)
{
    typedef CoreML__Specification__MILSpec__DictionaryValue__KeyValuePair kvp;
    CoreML__Specification__MILSpec__DictionaryValue *d =
        NEW(CoreML__Specification__MILSpec__DictionaryValue,
            CORE_ML__SPECIFICATION__MILSPEC__DICTIONARY_VALUE__INIT);
    kvp **pairs = ARRAY(kvp *, (size_t)n_pairs);
    if (!d || !pairs) return oom(w);
    for (int i = 0; i < n_pairs; i++) {
        pairs[i] = NEW(kvp, CORE_ML__SPECIFICATION__MILSPEC__DICTIONARY_VALUE__KEY_VALUE_PAIR__INIT);
        if (!pairs[i]) return oom(w);
        pairs[i]->key = vals[2 * i];
        pairs[i]->value = vals[2 * i + 1];
    }
    d->n_values = (size_t)n_pairs;
    d->values = pairs;
    imm->value_case = IMM(DICTIONARY);
    imm->dictionary = d;
    return imm;
}

static pb_imm *composite_write(coreml_writer *w, const milk_value *v)
{
    pb_imm *imm = NEW(pb_imm, CORE_ML__SPECIFICATION__MILSPEC__VALUE__IMMEDIATE_VALUE__INIT);
    if (!imm) return oom(w);
    pb_value **vals = values_write(w, v);
    if (!vals) return NULL;
    if (v->kind == MILK_VALUE_DICT) return dict_write(w, imm, vals, v->n);
    if (v->kind == MILK_VALUE_TUPLE) {
        CoreML__Specification__MILSpec__TupleValue *t =
            NEW(CoreML__Specification__MILSpec__TupleValue, CORE_ML__SPECIFICATION__MILSPEC__TUPLE_VALUE__INIT);
        if (!t) return oom(w);
        t->n_values = (size_t)v->n;
        t->values = vals;
        imm->value_case = IMM(TUPLE);
        imm->tuple = t;
    } else {
        CoreML__Specification__MILSpec__ListValue *l =
            NEW(CoreML__Specification__MILSpec__ListValue, CORE_ML__SPECIFICATION__MILSPEC__LIST_VALUE__INIT);
        if (!l) return oom(w);
        l->n_values = (size_t)v->n;
        l->values = vals;
        imm->value_case = IMM(LIST);
        imm->list = l;
    }
    return imm;
}

milk_status coreml_attrs_write(coreml_writer *w, const milk_attrs *at,
                               pb_value ***vals)
{
    *vals = ARRAY(pb_value *, (size_t)at->n);
    if (!*vals) return milk_errorf(w->ctx, MILK_ERR_NOMEM, "out of memory");
    for (int i = 0; i < at->n; i++) {
        (*vals)[i] = coreml_value_write(w, at->a[i].val, false);
        if (!(*vals)[i])
            return coreml_prefix(w->ctx, MILK_OK, "attribute '%s'", at->a[i].key);
    }
    return MILK_OK;
}
