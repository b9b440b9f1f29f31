/* convert_values.c: what a lowering reads from its node: attributes,
 * inputs (as MIL vars, or as numbers known at conversion time), and how
 * ONNX constants become MIL consts: weights as file ranges never read,
 * small tensors read and converted (int64 to int32 with a range check). */
#include "convert.h"

#include <stdio.h>
#include <stdlib.h>

/* Tensors up to this size are read into memory when they become consts;
 * larger ones stay file ranges (when no conversion needs a check). */
#define SMALL_BYTES 4096
/* The most elements a constant may have when it must be read to be
 * converted (int64 to int32 with a range check, small integer types). */
#define MAX_READ_ELEMENTS (INT64_C(1) << 24)

milk_status milk_cv_unsupported(milk_cv *c, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    milk_verrorf(c->ctx, MILK_ERR_UNSUPPORTED, fmt, ap);
    va_end(ap);
    return MILK_ERR_UNSUPPORTED;
}

milk_status milk_cv_fail(milk_cv *c, milk_status s, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    milk_verrorf(c->ctx, s, fmt, ap);
    va_end(ap);
    return s;
}

/* ---- attributes ------------------------------------------------------------ */

const milk_onnx_attr *milk_cv_attr(milk_cv *c, const char *name)
{
    return milk_onnx_node_attr(c->node, name);
}

static milk_status attr_type(milk_cv *c, const milk_onnx_attr *a, int32_t want)
{
    if (a->type == want) return MILK_OK;
    const char *got = milk_onnx_attr_type_name(a->type);
    return milk_cv_fail(c, MILK_ERR_INVALID_MODEL,
                        "attribute '%s': expected %s, got %s", a->name,
                        milk_onnx_attr_type_name(want), got ? got : "?");
}

milk_status milk_cv_attr_int(milk_cv *c, const char *name, int64_t dflt,
                             int64_t *v)
{
    const milk_onnx_attr *a = milk_cv_attr(c, name);
    *v = dflt;
    if (!a) return MILK_OK;
    MILK_TRY(attr_type(c, a, MILK_ONNX_ATTR_INT));
    *v = a->i;
    return MILK_OK;
}

milk_status milk_cv_attr_float(milk_cv *c, const char *name, double dflt,
                               double *v)
{
    const milk_onnx_attr *a = milk_cv_attr(c, name);
    *v = dflt;
    if (!a) return MILK_OK;
    MILK_TRY(attr_type(c, a, MILK_ONNX_ATTR_FLOAT));
    *v = a->f;
    return MILK_OK;
}

milk_status milk_cv_attr_str(milk_cv *c, const char *name, const char *dflt,
                             const char **v)
{
    const milk_onnx_attr *a = milk_cv_attr(c, name);
    *v = dflt;
    if (!a) return MILK_OK;
    MILK_TRY(attr_type(c, a, MILK_ONNX_ATTR_STRING));
    *v = a->s ? a->s : "";
    return MILK_OK;
}

milk_status milk_cv_attr_ints(milk_cv *c, const char *name, int64_t *v,
                              int max, int *n)
{
    const milk_onnx_attr *a = milk_cv_attr(c, name);
    *n = -1;
    if (!a) return MILK_OK;
    MILK_TRY(attr_type(c, a, MILK_ONNX_ATTR_INTS));
    if (a->n_ints > max)
        return milk_cv_unsupported(c, "attribute '%s': %d values, at most %d "
                                   "supported", name, a->n_ints, max);
    milk_copy(v, a->ints, (size_t)a->n_ints * sizeof *v);
    *n = a->n_ints;
    return MILK_OK;
}

milk_status milk_cv_attr_ints_n(milk_cv *c, const char *name, int n,
                                int64_t dflt, int64_t *v)
{
    int got;
    MILK_TRY(milk_cv_attr_ints(c, name, v, n, &got));
    if (got < 0) {
        for (int i = 0; i < n; i++) v[i] = dflt;
        return MILK_OK;
    }
    if (got != n)
        return milk_cv_fail(c, MILK_ERR_INVALID_MODEL,
                            "attribute '%s': expected %d values, got %d", name,
                            n, got);
    return MILK_OK;
}

/* ---- dtypes and types ----------------------------------------------------------- */

milk_dtype milk_cv_dtype(int32_t onnx_type)
{
    switch (onnx_type) {
    case MILK_ONNX_FLOAT: case MILK_ONNX_DOUBLE: return MILK_DTYPE_FP32;
    case MILK_ONNX_FLOAT16: return MILK_DTYPE_FP16;
    case MILK_ONNX_BOOL: return MILK_DTYPE_BOOL;
    case MILK_ONNX_INT8: case MILK_ONNX_UINT8: case MILK_ONNX_INT16:
    case MILK_ONNX_UINT16: case MILK_ONNX_INT32: case MILK_ONNX_UINT32:
    case MILK_ONNX_INT64: case MILK_ONNX_UINT64:
        return MILK_DTYPE_INT32;
    default: return MILK_DTYPE_INVALID;
    }
}

milk_dtype milk_cv_float_dtype(const milk_var *x)
{
    return x->type.dtype == MILK_DTYPE_FP16 ? MILK_DTYPE_FP16 : MILK_DTYPE_FP32;
}

static milk_status tensor_type(milk_cv *c, const milk_onnx_tensor *t,
                               milk_tensor_type *out)
{
    out->dtype = milk_cv_dtype(t->dtype);
    if (out->dtype == MILK_DTYPE_INVALID) {
        const char *nm = milk_onnx_dtype_name(t->dtype);
        return milk_cv_unsupported(c, "constant '%s' has data type %s, which "
                                   "MIL has no equivalent of",
                                   t->name, nm ? nm : "?");
    }
    out->rank = t->rank;
    for (int i = 0; i < t->rank; i++) out->dims[i] = t->dims[i];
    return MILK_OK;
}

/* ---- reading constants ------------------------------------------------------------ */

/* The bytes of a numeric tensor, malloc'd (the caller frees). */
static milk_status tensor_bytes(milk_cv *c, const milk_onnx_tensor *t,
                                void **out)
{
    *out = NULL;
    if (t->dtype == MILK_ONNX_STRING || milk_onnx_dtype_to_milk(t->dtype) ==
                                            MILK_DTYPE_INVALID)
        return milk_cv_unsupported(c, "constant '%s': data type %s cannot be "
                                   "read as numbers", t->name,
                                   milk_onnx_dtype_name(t->dtype));
    if (t->count > MAX_READ_ELEMENTS)
        return milk_cv_unsupported(c, "constant '%s': %lld elements, too many "
                                   "to read at conversion time",
                                   t->name, (long long)t->count);
    void *buf = malloc(t->nbytes ? (size_t)t->nbytes : 1);
    if (!buf) return milk_errorf(c->ctx, MILK_ERR_NOMEM, "out of memory");
    milk_status s = milk_onnx_tensor_read(c->ctx, t, buf);
    if (s != MILK_OK) {
        free(buf);
        return s;
    }
    *out = buf;
    return MILK_OK;
}

/* A milk_value over bytes in memory of milk dtype dt, to read elements with
 * milk_value_get_i64/f64. */
static milk_value borrowed(milk_dtype dt, int64_t count, const void *p)
{
    milk_value v = {0};
    v.kind = MILK_VALUE_TENSOR;
    v.type.dtype = dt;
    v.type.rank = 1;
    v.type.dims[0] = count;
    v.data.kind = MILK_DATA_BORROWED;
    v.data.ptr = p;
    return v;
}

/* Convert one element of `src` to dtype `to` at dst[i]; ints range-checked. */
static milk_status convert_elem(milk_cv *c, const char *name,
                                const milk_value *src, milk_dtype to,
                                void *dst, int64_t i)
{
    double f;
    int64_t x;
    switch (to) {
    case MILK_DTYPE_FP32:
        MILK_TRY(milk_value_get_f64(c->ctx, src, i, &f));
        ((float *)dst)[i] = (float)f;
        return MILK_OK;
    case MILK_DTYPE_FP16:
        MILK_TRY(milk_value_get_f64(c->ctx, src, i, &f));
        ((uint16_t *)dst)[i] = milk_fp32_to_fp16((float)f);
        return MILK_OK;
    case MILK_DTYPE_BOOL:
        MILK_TRY(milk_value_get_f64(c->ctx, src, i, &f));
        ((uint8_t *)dst)[i] = f != 0;
        return MILK_OK;
    default:
        MILK_TRY(milk_value_get_i64(c->ctx, src, i, &x));
        if (x < INT32_MIN || x > INT32_MAX)
            return milk_cv_fail(c, MILK_ERR_UNSUPPORTED,
                                "constant '%s': element %lld is %lld, which "
                                "does not fit int32 (MIL has no int64)",
                                name, (long long)i, (long long)x);
        ((int32_t *)dst)[i] = (int32_t)x;
        return MILK_OK;
    }
}

/* Read tensor t and make it a const of type `type` named name. */
static milk_status const_from_memory(milk_cv *c, const milk_onnx_tensor *t,
                                     const milk_tensor_type *type,
                                     const char *name, milk_var **out)
{
    void *raw, *conv = NULL;
    MILK_TRY(tensor_bytes(c, t, &raw));
    milk_dtype src = milk_onnx_dtype_to_milk(t->dtype);
    milk_status s = MILK_OK;
    if (src != type->dtype) {
        uint64_t nb;
        milk_dtype_nbytes(type->dtype, t->count, &nb);
        conv = malloc(nb ? (size_t)nb : 1);
        if (!conv) s = milk_errorf(c->ctx, MILK_ERR_NOMEM, "out of memory");
        milk_value v = borrowed(src, t->count, raw);
        for (int64_t i = 0; s == MILK_OK && i < t->count; i++)
            s = convert_elem(c, t->name, &v, type->dtype, conv, i);
    }
    if (s == MILK_OK)
        s = milk_block_add_const(c->ctx, c->b, name, type, conv ? conv : raw, out);
    free(conv);
    free(raw);
    return s;
}

/* Can the const keep pointing at the file (the builder converts only what
 * needs no check)? */
static bool stays_in_file(const milk_onnx_tensor *t, milk_dtype to)
{
    milk_dtype src = milk_onnx_dtype_to_milk(t->dtype);
    if (t->kind != MILK_ONNX_DATA_FILE) return false;
    if (src == MILK_DTYPE_INT64) return t->count > MAX_READ_ELEMENTS;
    if (t->nbytes <= SMALL_BYTES) return false;
    return src == to || (src == MILK_DTYPE_FP64 && to == MILK_DTYPE_FP32);
}

/* Make the const for an ONNX constant entry. */
static milk_status tensor_to_var(milk_cv *c, milk_cv_value *v)
{
    const milk_onnx_tensor *t = v->tensor;
    milk_tensor_type type;
    MILK_TRY(tensor_type(c, t, &type));
    if (stays_in_file(t, type.dtype))
        return milk_block_add_const_file(c->ctx, c->b, v->mil, &type, t->path,
                                         t->offset,
                                         milk_onnx_dtype_to_milk(t->dtype),
                                         &v->var);
    return const_from_memory(c, t, &type, v->mil, &v->var);
}

/* ---- inputs ------------------------------------------------------------------------ */

bool milk_cv_has(milk_cv *c, int i)
{
    return i >= 0 && i < c->node->n_inputs && c->node->inputs[i][0];
}

static milk_status input_entry(milk_cv *c, int i, milk_cv_value **out)
{
    if (!milk_cv_has(c, i))
        return milk_cv_fail(c, MILK_ERR_INVALID_MODEL,
                            "input %d is missing", i);
    milk_cv_value *v = milk_cv_value_get(c, c->node->inputs[i]);
    if (!v || !v->defined)
        return milk_cv_fail(c, MILK_ERR_INVALID_MODEL,
                            "input %d ('%s') is not a graph input, an "
                            "initializer or the output of an earlier node",
                            i, c->node->inputs[i]);
    *out = v;
    return MILK_OK;
}

milk_status milk_cv_value_var(milk_cv *c, milk_cv_value *v, milk_var **out)
{
    if (!v->var) MILK_TRY(tensor_to_var(c, v));
    *out = v->var;
    return MILK_OK;
}

milk_status milk_cv_input(milk_cv *c, int i, milk_var **out)
{
    milk_cv_value *v;
    MILK_TRY(input_entry(c, i, &v));
    return milk_cv_value_var(c, v, out);
}

milk_status milk_cv_input_opt(milk_cv *c, int i, milk_var **out)
{
    *out = NULL;
    return milk_cv_has(c, i) ? milk_cv_input(c, i, out) : MILK_OK;
}

milk_status milk_cv_type(milk_cv *c, int i, milk_tensor_type *t)
{
    milk_cv_value *v;
    MILK_TRY(input_entry(c, i, &v));
    if (v->var) {
        *t = v->var->type;
        return MILK_OK;
    }
    return tensor_type(c, v->tensor, t);
}

bool milk_cv_is_const(milk_cv *c, int i)
{
    milk_cv_value *v;
    if (!milk_cv_has(c, i)) return false;
    v = milk_cv_value_get(c, c->node->inputs[i]);
    if (!v || !v->defined) return false;
    return v->var ? milk_var_const(v->var) != NULL : v->tensor != NULL;
}

static bool is_graph_input(milk_cv *c, const char *onnx)
{
    for (int k = 0; k < c->m->graph.n_inputs; k++)
        if (strcmp(c->m->graph.inputs[k].name, onnx) == 0) return true;
    return false;
}

/* Elements of constant input i, whatever holds them, into v (ints) or f
 * (doubles); at most max. */
static milk_status const_elems(milk_cv *c, int i, int64_t *v, double *f,
                               int max, int *n)
{
    milk_cv_value *e;
    MILK_TRY(input_entry(c, i, &e));
    const milk_value *cv = e->var ? milk_var_const(e->var) : NULL;
    if (!cv && !e->tensor)
        return milk_cv_unsupported(c, "input %d ('%s') must be a constant, "
                                   "but is computed at run time%s%s%s",
                                   i, c->node->inputs[i],
                                   is_graph_input(c, e->onnx)
                                       ? " (a graph input: give its value "
                                         "with --freeze "
                                       : "",
                                   is_graph_input(c, e->onnx) ? e->onnx : "",
                                   is_graph_input(c, e->onnx) ? "=FILE.npy)" : "");
    int64_t count = cv ? milk_tensor_type_count(&cv->type) : e->tensor->count;
    if (count > max)
        return milk_cv_unsupported(c, "input %d ('%s'): %lld values, at most "
                                   "%d supported",
                                   i, c->node->inputs[i], (long long)count, max);
    void *raw = NULL;
    milk_value tv;
    if (!cv) {
        MILK_TRY(tensor_bytes(c, e->tensor, &raw));
        tv = borrowed(milk_onnx_dtype_to_milk(e->tensor->dtype), count, raw);
        cv = &tv;
    }
    milk_status s = MILK_OK;
    for (int64_t k = 0; s == MILK_OK && k < count; k++)
        s = v ? milk_value_get_i64(c->ctx, cv, k, &v[k])
              : milk_value_get_f64(c->ctx, cv, k, &f[k]);
    free(raw);
    *n = (int)count;
    return s;
}

milk_status milk_cv_const_ints(milk_cv *c, int i, int64_t *v, int max, int *n)
{
    return const_elems(c, i, v, NULL, max, n);
}

milk_status milk_cv_const_floats(milk_cv *c, int i, double *v, int max,
                                 int *n)
{
    return const_elems(c, i, NULL, v, max, n);
}

/* ---- outputs -------------------------------------------------------------------------- */

bool milk_cv_has_out(milk_cv *c, int i)
{
    return i >= 0 && i < c->node->n_outputs && c->node->outputs[i][0];
}

static milk_status output_entry(milk_cv *c, int i, milk_cv_value **out)
{
    *out = NULL;
    if (!milk_cv_has_out(c, i)) return MILK_OK; /* omitted: nothing to record */
    milk_cv_value *v = milk_cv_value_get(c, c->node->outputs[i]);
    if (!v) return milk_errorf(c->ctx, MILK_ERR_INVALID_MODEL, "no entry");
    if (v->defined)
        return milk_cv_fail(c, MILK_ERR_INVALID_MODEL,
                            "output '%s' is already defined (by a graph input, "
                            "an initializer or an earlier node)",
                            v->onnx);
    *out = v;
    return MILK_OK;
}

milk_status milk_cv_set_out(milk_cv *c, int i, milk_var *var)
{
    milk_cv_value *v;
    MILK_TRY(output_entry(c, i, &v));
    if (v) {
        v->var = var;
        v->defined = true;
    }
    return MILK_OK;
}

milk_status milk_cv_set_out_tensor(milk_cv *c, int i,
                                   const milk_onnx_tensor *t)
{
    milk_cv_value *v;
    MILK_TRY(output_entry(c, i, &v));
    if (v) {
        v->tensor = t;
        v->defined = true;
    }
    return MILK_OK;
}

milk_status milk_cv_set_out_const(milk_cv *c, int i,
                                  const milk_tensor_type *t, const void *data)
{
    if (!milk_cv_has_out(c, i)) return MILK_OK;
    milk_var *v;
    MILK_TRY(milk_cv_const(c, milk_cv_out(c, i), t, data, &v));
    return milk_cv_set_out(c, i, v);
}

/* ---- helpers -------------------------------------------------------------------------------- */

milk_status milk_cv_axis(milk_cv *c, const char *what, int64_t axis, int rank,
                         int *out)
{
    if (axis < -rank || axis >= rank)
        return milk_cv_fail(c, MILK_ERR_INVALID_MODEL,
                            "%s %lld is outside [%d, %d) for rank %d", what,
                            (long long)axis, -rank, rank, rank);
    *out = (int)(axis < 0 ? axis + rank : axis);
    return MILK_OK;
}
