/* convert_io.c: the model's boundary. Graph inputs are declared with
 * static shapes and their ONNX types (int64 as int32, since MIL has no
 * int64 at run time), or made constants when the caller freezes them
 * (their value given at conversion time); graph outputs are set, each
 * named after its ONNX tensor. Then the boundary pass
 * (milk_pass_io_boundary) makes them what Core ML model I/O can be: a
 * bool input or output declared int32 with a cast inside, a rank-0 one
 * declared [1] with a squeeze or expand_dims inside. What is the
 * converter's own: an output no op computes (a constant, a graph input,
 * another output's tensor) is produced by identity, since every output of
 * a Core ML program is an op's output, and adapting a constant output is
 * folded as any op on constants is. Each change is noted for the
 * summary. */
#include "convert.h"
#include "../passes/passes.h"

#include <stdio.h>

/* The most elements a frozen input may have: it is read into memory and
 * becomes a const, as constants read at conversion time do. */
#define FREEZE_MAX_ELEMENTS (INT64_C(1) << 24)

/* ---- notes ------------------------------------------------------------------ */

static void note_add(milk_cv_note *n, const char *fmt, ...) MILK_PRINTF(2, 3);

static void note_add(milk_cv_note *n, const char *fmt, ...)
{
    size_t k = strlen(n->text);
    va_list ap;
    if (k + 2 < sizeof n->text) {
        if (k) memcpy(n->text + k, ", ", 3);
        k = strlen(n->text);
        va_start(ap, fmt);
        vsnprintf(n->text + k, sizeof n->text - k, fmt, ap);
        va_end(ap);
    }
    n->n++;
}

/* ---- graph inputs ----------------------------------------------------------- */

static milk_status input_dtype(milk_cv *c, const milk_onnx_value_info *vi,
                               milk_dtype *dt)
{
    if (vi->kind != MILK_ONNX_VALUE_TENSOR)
        return milk_errorf(c->ctx, MILK_ERR_UNSUPPORTED,
                           "input '%s' is not a tensor", vi->name);
    switch (vi->elem_type) {
    case MILK_ONNX_FLOAT: *dt = MILK_DTYPE_FP32; return MILK_OK;
    case MILK_ONNX_FLOAT16: *dt = MILK_DTYPE_FP16; return MILK_OK;
    case MILK_ONNX_INT32: *dt = MILK_DTYPE_INT32; return MILK_OK;
    case MILK_ONNX_INT64: *dt = MILK_DTYPE_INT32; return MILK_OK;
    case MILK_ONNX_BOOL: *dt = MILK_DTYPE_BOOL; return MILK_OK;
    case MILK_ONNX_INT8: /* model I/O from iOS26 (specificationVersion 10) */
        if (c->p->target >= MILK_TARGET_IOS26) {
            *dt = MILK_DTYPE_INT8;
            return MILK_OK;
        }
        return milk_errorf(c->ctx, MILK_ERR_UNSUPPORTED,
                           "input '%s' has data type INT8: Core ML takes int8 "
                           "model inputs from iOS26 on (--target ios26)",
                           vi->name);
    default: {
        const char *nm = milk_onnx_dtype_name(vi->elem_type);
        return milk_errorf(c->ctx, MILK_ERR_UNSUPPORTED,
                           "input '%s' has data type %s: Core ML model inputs "
                           "are float, float16 or int32 (int64 and bool become "
                           "int32; int8 from iOS26)", vi->name, nm ? nm : "?");
    }
    }
}

/* "NAME=d0,d1,..." with '?' for unknown dims, for error messages. */
static void shape_hint(const milk_onnx_value_info *vi, char *buf, size_t cap)
{
    int k = snprintf(buf, cap, "%s=", vi->name);
    for (int i = 0; i < vi->rank && k >= 0 && (size_t)k < cap; i++) {
        if (vi->dims[i].value >= 1)
            k += snprintf(buf + k, cap - (size_t)k, "%s%lld", i ? "," : "",
                          (long long)vi->dims[i].value);
        else
            k += snprintf(buf + k, cap - (size_t)k, "%s?", i ? "," : "");
    }
}

static milk_status input_shape_given(milk_cv *c, const milk_onnx_value_info *vi,
                                     const milk_input_shape *ov, milk_tensor_type *t)
{
    if (vi->rank >= 0 && vi->rank != ov->rank)
        return milk_errorf(c->ctx, MILK_ERR_INVALID_ARG, "input '%s' has "
                           "rank %d; the shape given has %d dims", vi->name,
                           vi->rank, ov->rank);
    for (int i = 0; i < ov->rank; i++) {
        int64_t d = vi->rank >= 0 ? vi->dims[i].value : -1;
        if (d >= 0 && d != ov->dims[i])
            return milk_errorf(c->ctx, MILK_ERR_INVALID_ARG, "input '%s': "
                               "dim %d is %lld in the model, %lld given",
                               vi->name, i, (long long)d, (long long)ov->dims[i]);
        t->dims[i] = ov->dims[i];
    }
    t->rank = ov->rank;
    return MILK_OK;
}

static milk_status input_shape(milk_cv *c, const milk_onnx_value_info *vi,
                               const milk_input_shape *ov, milk_tensor_type *t)
{
    if (ov) return input_shape_given(c, vi, ov, t);
    if (vi->rank < 0)
        return milk_errorf(c->ctx, MILK_ERR_INVALID_ARG, "input '%s' has no "
                           "shape in the model: give one with --input-shape "
                           "%s=d0,d1,...", vi->name, vi->name);
    for (int i = 0; i < vi->rank; i++) {
        if (vi->dims[i].value < 1) {
            char hint[512];
            shape_hint(vi, hint, sizeof hint);
            return milk_errorf(c->ctx, MILK_ERR_INVALID_ARG,
                               "input '%s': dim %d%s%s%s is dynamic; fix it "
                               "with --input-shape %s (replace each '?')",
                               vi->name, i, vi->dims[i].param ? " ('" : "",
                               vi->dims[i].param ? vi->dims[i].param : "",
                               vi->dims[i].param ? "')" : "", hint);
        }
        t->dims[i] = vi->dims[i].value;
    }
    t->rank = vi->rank;
    return MILK_OK;
}

/* Input vi as its ONNX type says (bool and rank 0 included: the boundary
 * pass adapts them once the program is built). */
static milk_status add_input(milk_cv *c, const milk_onnx_value_info *vi,
                             const milk_input_shape *ov)
{
    milk_cv_value *v = milk_cv_value_get(c, vi->name);
    if (!v || v->tensor) return MILK_OK; /* an initializer, or frozen */
    milk_tensor_type t = {0};
    MILK_TRY(input_dtype(c, vi, &t.dtype));
    MILK_TRY(input_shape(c, vi, ov, &t));
    if (vi->elem_type == MILK_ONNX_INT64) note_add(&c->int64_io, "input '%s'", vi->name);
    MILK_TRY(milk_function_add_input(c->ctx, c->fn, v->mil, &t, &v->var));
    v->defined = true;
    return MILK_OK;
}

/* ---- frozen inputs -------------------------------------------------------------- */

typedef enum { KIND_NONE, KIND_FLOAT, KIND_INT, KIND_BOOL } kind;

static kind onnx_kind(int32_t code)
{
    switch (code) {
    case MILK_ONNX_FLOAT: case MILK_ONNX_FLOAT16: case MILK_ONNX_DOUBLE:
        return KIND_FLOAT;
    case MILK_ONNX_INT8: case MILK_ONNX_UINT8: case MILK_ONNX_INT16:
    case MILK_ONNX_UINT16: case MILK_ONNX_INT32: case MILK_ONNX_UINT32:
    case MILK_ONNX_INT64: case MILK_ONNX_UINT64:
        return KIND_INT;
    case MILK_ONNX_BOOL: return KIND_BOOL;
    default: return KIND_NONE;
    }
}

static kind data_kind(milk_dtype d)
{
    switch (d) {
    case MILK_DTYPE_FP16: case MILK_DTYPE_FP32: case MILK_DTYPE_FP64:
        return KIND_FLOAT;
    case MILK_DTYPE_INT8: case MILK_DTYPE_UINT8: case MILK_DTYPE_INT16:
    case MILK_DTYPE_UINT16: case MILK_DTYPE_INT32: case MILK_DTYPE_UINT32:
    case MILK_DTYPE_INT64: case MILK_DTYPE_UINT64:
        return KIND_INT;
    case MILK_DTYPE_BOOL: return KIND_BOOL;
    default: return KIND_NONE;
    }
}

/* The ONNX code of a data dtype, for an input the model gives no type. */
static int32_t onnx_code(milk_dtype d)
{
    static const struct { milk_dtype d; int32_t code; } map[] = {
        {MILK_DTYPE_FP16, MILK_ONNX_FLOAT16}, {MILK_DTYPE_FP32, MILK_ONNX_FLOAT},
        {MILK_DTYPE_FP64, MILK_ONNX_DOUBLE},  {MILK_DTYPE_INT8, MILK_ONNX_INT8},
        {MILK_DTYPE_UINT8, MILK_ONNX_UINT8},  {MILK_DTYPE_INT16, MILK_ONNX_INT16},
        {MILK_DTYPE_UINT16, MILK_ONNX_UINT16}, {MILK_DTYPE_INT32, MILK_ONNX_INT32},
        {MILK_DTYPE_UINT32, MILK_ONNX_UINT32}, {MILK_DTYPE_INT64, MILK_ONNX_INT64},
        {MILK_DTYPE_UINT64, MILK_ONNX_UINT64}, {MILK_DTYPE_BOOL, MILK_ONNX_BOOL},
    };
    for (size_t i = 0; i < MILK_ARRAY_LEN(map); i++)
        if (map[i].d == d) return map[i].code;
    return MILK_ONNX_UNDEFINED;
}

/* "'NAME' (FILE)" or "'NAME'", for messages. */
static void freeze_label(const milk_frozen_input *f, char *buf, size_t cap)
{
    snprintf(buf, cap, "'%s'%s%s%s", f->name, f->origin ? " (" : "",
             f->origin ? f->origin : "", f->origin ? ")" : "");
}

static void shape_str(const milk_tensor_type *t, char *buf, size_t cap)
{
    int k = snprintf(buf, cap, "[");
    for (int i = 0; i < t->rank && k >= 0 && (size_t)k < cap; i++)
        k += snprintf(buf + k, cap - (size_t)k, "%s%lld", i ? ", " : "",
                      (long long)t->dims[i]);
    if (k >= 0 && (size_t)k < cap) snprintf(buf + k, cap - (size_t)k, "]");
}

/* The value's shape is the input's, where the model gives dims. */
static milk_status freeze_check_shape(milk_cv *c, const milk_onnx_value_info *vi,
                                      const milk_frozen_input *f)
{
    char label[400], got[160];
    freeze_label(f, label, sizeof label);
    shape_str(&f->type, got, sizeof got);
    if (vi->rank >= 0 && vi->rank != f->type.rank)
        return milk_errorf(c->ctx, MILK_ERR_INVALID_ARG, "--freeze %s: the value "
                           "has shape %s, the input has rank %d", label, got,
                           vi->rank);
    for (int i = 0; vi->rank >= 0 && i < vi->rank; i++)
        if (vi->dims[i].value >= 0 && vi->dims[i].value != f->type.dims[i])
            return milk_errorf(c->ctx, MILK_ERR_INVALID_ARG, "--freeze %s: the "
                               "value has shape %s, the input's dim %d is %lld",
                               label, got, i, (long long)vi->dims[i].value);
    return MILK_OK;
}

/* The input's ONNX type, which the value must be of the kind of. */
static milk_status freeze_check_type(milk_cv *c, const milk_onnx_value_info *vi,
                                     const milk_frozen_input *f, int32_t *code)
{
    char label[400];
    freeze_label(f, label, sizeof label);
    if (vi->kind != MILK_ONNX_VALUE_TENSOR && vi->kind != MILK_ONNX_VALUE_NONE)
        return milk_errorf(c->ctx, MILK_ERR_UNSUPPORTED, "--freeze %s: the "
                           "input is not a tensor", label);
    kind dk = data_kind(f->type.dtype);
    *code = vi->elem_type ? vi->elem_type : onnx_code(f->type.dtype);
    const char *in = milk_onnx_dtype_name(*code);
    if (onnx_kind(*code) == KIND_NONE)
        return milk_errorf(c->ctx, MILK_ERR_UNSUPPORTED, "--freeze %s: the input "
                           "has data type %s, which cannot be frozen", label,
                           in ? in : "?");
    if (dk != onnx_kind(*code))
        return milk_errorf(c->ctx, MILK_ERR_INVALID_ARG, "--freeze %s: the value "
                           "is %s, the input %s (give %s values)", label,
                           milk_dtype_name(f->type.dtype) ? milk_dtype_name(f->type.dtype)
                                                          : "of an unknown dtype",
                           in ? in : "?",
                           onnx_kind(*code) == KIND_FLOAT ? "float"
                           : onnx_kind(*code) == KIND_INT ? "integer" : "bool");
    return freeze_check_shape(c, vi, f);
}

/* Store integer x as element i of an ONNX tensor of type code; false if
 * it does not fit. */
static bool put_int(int32_t code, void *buf, int64_t i, int64_t x)
{
    switch (code) {
#define PUT(T, lo, hi)                                                      \
    if (x < (lo) || x > (hi)) return false;                                 \
    ((T *)buf)[i] = (T)x;                                                   \
    return true
    case MILK_ONNX_INT8: PUT(int8_t, INT8_MIN, INT8_MAX);
    case MILK_ONNX_UINT8: PUT(uint8_t, 0, UINT8_MAX);
    case MILK_ONNX_INT16: PUT(int16_t, INT16_MIN, INT16_MAX);
    case MILK_ONNX_UINT16: PUT(uint16_t, 0, UINT16_MAX);
    case MILK_ONNX_INT32: PUT(int32_t, INT32_MIN, INT32_MAX);
    case MILK_ONNX_UINT32: PUT(uint32_t, 0, (int64_t)UINT32_MAX);
    case MILK_ONNX_INT64: PUT(int64_t, INT64_MIN, INT64_MAX);
    case MILK_ONNX_UINT64: PUT(uint64_t, 0, INT64_MAX);
#undef PUT
    default: return false;
    }
}

static void put_float(int32_t code, void *buf, int64_t i, double x)
{
    if (code == MILK_ONNX_DOUBLE) ((double *)buf)[i] = x;
    else if (code == MILK_ONNX_FLOAT16) ((uint16_t *)buf)[i] = milk_fp32_to_fp16((float)x);
    else ((float *)buf)[i] = (float)x;
}

/* The value's elements in the ONNX type `code` (buf holds them). */
static milk_status freeze_elems(milk_cv *c, const milk_frozen_input *f,
                                int32_t code, int64_t n, void *buf)
{
    milk_value src = {.kind = MILK_VALUE_TENSOR, .type = f->type};
    src.data.kind = MILK_DATA_BORROWED;
    src.data.ptr = f->data;
    for (int64_t i = 0; i < n; i++) {
        int64_t x = 0;
        double g = 0;
        kind k = onnx_kind(code);
        MILK_TRY(k == KIND_FLOAT ? milk_value_get_f64(c->ctx, &src, i, &g)
                                 : milk_value_get_i64(c->ctx, &src, i, &x));
        /* uint64 beyond int64 reads as negative: refuse it as too large */
        bool huge = f->type.dtype == MILK_DTYPE_UINT64 &&
                    ((const uint64_t *)f->data)[i] > (uint64_t)INT64_MAX;
        if (k == KIND_FLOAT) {
            put_float(code, buf, i, g);
        } else if (k == KIND_BOOL) {
            ((uint8_t *)buf)[i] = x != 0;
        } else if (huge || !put_int(code, buf, i, x)) {
            char label[400], val[32];
            freeze_label(f, label, sizeof label);
            if (huge) snprintf(val, sizeof val, "%llu",
                               (unsigned long long)((const uint64_t *)f->data)[i]);
            else snprintf(val, sizeof val, "%lld", (long long)x);
            return milk_errorf(c->ctx, MILK_ERR_INVALID_ARG, "--freeze %s: "
                               "element %lld is %s, which does not fit %s",
                               label, (long long)i, val, milk_onnx_dtype_name(code));
        }
    }
    return MILK_OK;
}

/* Graph input vi becomes the constant f (an ONNX tensor of the input's
 * type, in the converter's arena), read by the lowerings as any other. */
static milk_status freeze_input(milk_cv *c, const milk_onnx_value_info *vi,
                                const milk_frozen_input *f)
{
    int32_t code = MILK_ONNX_UNDEFINED;
    MILK_TRY(freeze_check_type(c, vi, f, &code));
    int64_t n = milk_tensor_type_count(&f->type);
    if (n < 0 || n > FREEZE_MAX_ELEMENTS)
        return milk_errorf(c->ctx, MILK_ERR_UNSUPPORTED, "--freeze '%s': %lld "
                           "elements, at most %lld can be frozen", f->name,
                           (long long)n, (long long)FREEZE_MAX_ELEMENTS);
    uint64_t nbytes = (uint64_t)n * (uint64_t)(milk_onnx_dtype_bits(code) / 8);
    milk_onnx_tensor *t = milk_arena_alloc(c->a, sizeof *t);
    void *buf = milk_arena_alloc(c->a, nbytes ? (size_t)nbytes : 1);
    if (!t || !buf) return milk_errorf(c->ctx, MILK_ERR_NOMEM, "out of memory");
    MILK_TRY(freeze_elems(c, f, code, n, buf));
    *t = (milk_onnx_tensor){.name = vi->name, .dtype = code, .rank = f->type.rank,
                            .count = n, .nbytes = nbytes,
                            .kind = MILK_ONNX_DATA_INLINE, .data = buf};
    memcpy(t->dims, f->type.dims, sizeof t->dims);
    milk_cv_value *v = milk_cv_value_get(c, vi->name);
    if (!v) return milk_errorf(c->ctx, MILK_ERR_NOMEM, "out of memory");
    v->tensor = t;
    v->var = NULL;
    v->defined = true;
    c->n_frozen++;
    return MILK_OK;
}

/* ---- checking the caller's lists ------------------------------------------------- */

static const milk_onnx_value_info *graph_input(milk_cv *c, const char *name)
{
    const milk_onnx_graph *g = &c->m->graph;
    for (int k = 0; k < g->n_inputs; k++)
        if (strcmp(g->inputs[k].name, name) == 0) return &g->inputs[k];
    return NULL;
}

static const milk_input_shape *find_override(const milk_convert_params *p,
                                             const char *name)
{
    for (int i = 0; i < p->n_input_shapes; i++)
        if (strcmp(p->input_shapes[i].name, name) == 0) return &p->input_shapes[i];
    return NULL;
}

static const milk_frozen_input *find_frozen(const milk_convert_params *p,
                                            const char *name)
{
    for (int i = 0; i < p->n_freeze; i++)
        if (strcmp(p->freeze[i].name, name) == 0) return &p->freeze[i];
    return NULL;
}

/* Every name given is a graph input; a frozen one is frozen once and has
 * no shape override. */
static milk_status check_names(milk_cv *c, const milk_convert_params *p)
{
    for (int i = 0; i < p->n_input_shapes; i++)
        if (!graph_input(c, p->input_shapes[i].name))
            return milk_errorf(c->ctx, MILK_ERR_INVALID_ARG, "--input-shape "
                               "names '%s', which is not a graph input",
                               p->input_shapes[i].name);
    for (int i = 0; i < p->n_freeze; i++) {
        const char *name = p->freeze[i].name;
        if (!graph_input(c, name))
            return milk_errorf(c->ctx, MILK_ERR_INVALID_ARG, "--freeze names "
                               "'%s', which is not a graph input", name);
        if (find_frozen(p, name) != &p->freeze[i])
            return milk_errorf(c->ctx, MILK_ERR_INVALID_ARG, "--freeze: input "
                               "'%s' is given twice", name);
        if (find_override(p, name))
            return milk_errorf(c->ctx, MILK_ERR_INVALID_ARG, "input '%s' is "
                               "given both --freeze and --input-shape", name);
    }
    return MILK_OK;
}

milk_status milk_cv_inputs_add(milk_cv *c, const milk_convert_params *p)
{
    const milk_onnx_graph *g = &c->m->graph;
    MILK_TRY(check_names(c, p));
    for (int i = 0; i < g->n_initializers; i++) {
        milk_cv_value *v = milk_cv_value_get(c, g->initializers[i].name);
        if (v) {
            v->tensor = &g->initializers[i];
            v->defined = true;
        }
    }
    for (int i = 0; i < g->n_inputs; i++) {
        const milk_frozen_input *f = find_frozen(p, g->inputs[i].name);
        if (f) MILK_TRY(freeze_input(c, &g->inputs[i], f));
    }
    for (int i = 0; i < g->n_inputs; i++)
        MILK_TRY(add_input(c, &g->inputs[i], find_override(p, g->inputs[i].name)));
    /* Core ML's validator: "Empty input is only valid in specification
     * version >= 9" (docs/coreml-format.md, section 5) */
    if (!c->fn->n_inputs && c->p->target < MILK_TARGET_IOS18)
        return milk_errorf(c->ctx, MILK_ERR_UNSUPPORTED, "the model has no input%s: "
                           "Core ML takes a model without inputs from iOS18 on "
                           "(specificationVersion 9); convert with --target ios18",
                           c->n_frozen ? " left (every graph input is frozen)" : "s");
    return MILK_OK;
}

/* ---- graph outputs ------------------------------------------------------------------ */

/* A fresh name "<base>_<what>", free among the reserved names and the
 * function's vars (the boundary pass names its helpers too). */
static const char *tmp_name(milk_cv *c, const char *base, const char *what)
{
    const char *name;
    do name = milk_cv_tmp_for(c, base, what);
    while (name && milk_function_var(c->fn, name));
    return name;
}

/* Move the var holding `name` (if any) to a fresh name, its op too when
 * named alike, so that an output's op can take the name. */
static milk_status free_name(milk_cv *c, const char *name)
{
    milk_var *var = milk_function_var(c->fn, name);
    if (!var) return MILK_OK;
    const char *fresh = tmp_name(c, name, "value");
    if (!fresh) return milk_errorf(c->ctx, MILK_ERR_NOMEM, "out of memory");
    MILK_TRY(milk_var_set_name(c->ctx, var, fresh));
    if (var->producer && var->producer->name && strcmp(var->producer->name, name) == 0)
        var->producer->name = var->name;
    return MILK_OK;
}

/* Why no op of var's own computes output i ("a constant", ...), or
 * false. */
static bool passed_through(milk_cv *c, int i, const milk_var *var, char *why,
                           size_t cap)
{
    bool earlier = false;
    for (int k = 0; k < i; k++) earlier |= c->b->outputs[k] == var;
    if (!var->producer) snprintf(why, cap, "graph input '%s'", var->name);
    else if (var->producer->kind == MILK_OP_const_) snprintf(why, cap, "a constant");
    else if (earlier) snprintf(why, cap, "the tensor of output '%s'", var->name);
    else return false;
    return true;
}

/* The boundary pass appended an op for an output: a constant output's
 * cast or expand_dims is folded, as every op on constants is. */
static milk_status fold_added(void *user, const milk_io_change *ch, milk_op *op)
{
    return ch->output ? milk_cv_fold(user, op) : MILK_OK;
}

/* Output i after the boundary pass: produced by identity when no op of
 * its own computes it (a constant adapted and folded is still a
 * constant); else its var takes the output's name. */
static milk_status output_done(void *user, int i, const milk_io_change *ch)
{
    milk_cv *c = user;
    milk_var *var = c->b->outputs[i];
    const char *onnx = c->m->graph.outputs[i].name;
    const char *name = milk_cv_value_get(c, onnx)->mil;
    char why[300];
    if (ch && var->producer->kind != MILK_OP_const_) return MILK_OK;
    if (ch) {
        snprintf(why, sizeof why, "a constant");
    } else if (!passed_through(c, i, var, why, sizeof why)) {
        /* an output that is another tensor unchanged (Identity) */
        if (strcmp(var->name, name) != 0) MILK_TRY(free_name(c, name));
        return milk_var_set_name(c->ctx, var, name);
    }
    note_add(&c->identity_out, "output '%s' (%s)", onnx, why);
    MILK_TRY(free_name(c, name));
    milk_op *op;
    milk_input in[] = {{"x", var}};
    MILK_TRY(milk_block_add_op(c->ctx, c->b, "identity", name, in, 1, &op));
    c->b->outputs[i] = op->outputs[0];
    return MILK_OK;
}

/* The entry of the graph input declared as function input i. */
static milk_cv_value *input_value(milk_cv *c, int i)
{
    const milk_onnx_graph *g = &c->m->graph;
    for (int k = 0; k < g->n_inputs; k++) {
        milk_cv_value *v = milk_cv_value_get(c, g->inputs[k].name);
        if (v && v->var == c->fn->inputs[i]) return v;
    }
    return NULL;
}

/* The summary's notes from the pass's report (int64 ones are noted from
 * the ONNX types, declared int32 already). A graph input's value is now
 * the var inside, which the ops read. */
static void note_changes(milk_cv *c, const milk_io_report *r)
{
    for (int i = 0; i < r->n; i++) {
        const milk_io_change *ch = &r->changes[i];
        milk_cv_value *v = ch->output ? NULL : input_value(c, ch->index);
        const char *onnx = ch->output ? c->m->graph.outputs[ch->index].name
                                      : v ? v->onnx : ch->name;
        const char *what = ch->output ? "output" : "input";
        if (v) v->var = ch->inner;
        if (ch->kinds & MILK_IO_BOOL) note_add(&c->bool_io, "%s '%s'", what, onnx);
        if (ch->kinds & MILK_IO_SCALAR) note_add(&c->scalar_io, "%s '%s'", what, onnx);
    }
}

/* Output vi's var, as the ONNX graph computes it; *name gets the name the
 * model output is to have. */
static milk_status add_output(milk_cv *c, const milk_onnx_value_info *vi,
                              const char **name)
{
    milk_cv_value *v = milk_cv_value_get(c, vi->name);
    milk_var *var;
    if (!v || !v->defined)
        return milk_errorf(c->ctx, MILK_ERR_INVALID_MODEL, "output '%s' is not "
                           "computed by any node", vi->name);
    MILK_TRY(milk_cv_value_var(c, v, &var));
    const milk_var *same = milk_function_var(c->fn, v->mil);
    if (same && !same->producer)
        return milk_errorf(c->ctx, MILK_ERR_UNSUPPORTED, "output '%s' is graph "
                           "input '%s' itself: a Core ML model cannot have an "
                           "input and an output of the same name", vi->name,
                           vi->name);
    if (vi->elem_type == MILK_ONNX_INT64) note_add(&c->int64_io, "output '%s'", vi->name);
    *name = v->mil;
    return milk_block_add_output(c->ctx, c->b, var);
}

milk_status milk_cv_outputs_add(milk_cv *c)
{
    const milk_onnx_graph *g = &c->m->graph;
    if (g->n_outputs == 0)
        return milk_errorf(c->ctx, MILK_ERR_INVALID_MODEL, "the graph has no "
                           "outputs (a Core ML model needs at least one)");
    const char **names = milk_arena_alloc(c->a, ((size_t)g->n_outputs + 1) * sizeof *names);
    if (!names) return milk_errorf(c->ctx, MILK_ERR_NOMEM, "out of memory");
    for (int i = 0; i < g->n_outputs; i++) {
        for (int k = 0; k < i; k++)
            if (strcmp(g->outputs[k].name, g->outputs[i].name) == 0)
                return milk_errorf(c->ctx, MILK_ERR_INVALID_MODEL, "output '%s' "
                                   "is listed twice", g->outputs[i].name);
        MILK_TRY(add_output(c, &g->outputs[i], &names[i]));
    }
    /* not one of the defect rules: a model whose rules are all disabled
     * still needs a boundary Core ML takes */
    milk_io_params params = {.output_names = names, .op_added = fold_added,
                             .output_done = output_done, .user = c};
    milk_io_report r = {0};
    MILK_TRY(milk_pass_io_boundary(c->ctx, c->p, c->fn, &params, &r));
    note_changes(c, &r);
    return MILK_OK;
}
