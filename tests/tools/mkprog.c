/* mkprog.c: builds an ML Program through milk's C API from a JSON
 * description and saves it as a package, so that Python tests can make
 * programs with flexible inputs (unknown dims, shape ranges, enumerated
 * shapes) and run them with `milk run` (tests/test_run_dynamic.py).
 *
 *   mkprog SPEC.json
 *
 * SPEC: {"target": "ios17", "output": "m.mlpackage",
 *        "inputs": [{"name": "x", "dtype": "fp32", "shape": [1, 3, -1, -1],
 *                    "ranges": [[1, 1], [3, 3], [8, 32], [8, -1]]}],
 *        "ops": [{"op": "conv", "name": "c",
 *                 "inputs": {"x": "x",                       a var
 *                            "weight": {"npy": "w.npy"},     a const
 *                            "pad_type": {"value": "same"},  a small const
 *                            "values": ["a", {"value": [2]}]}}],  variadic
 *        "outputs": ["c"]}
 * -1 in a shape is an unknown dim. An input may have "ranges" (one [lower,
 * upper] per dim, upper -1 unbounded) or "enumerated" (a list of shapes);
 * if any has, the model description is recorded in the IR for every input
 * and output as the package reader records it, else the writer derives it.
 * "value" consts: ints are int32, floats fp32, bools bool, or "dtype";
 * "shape" (default: [n] for a list, [] for a scalar). A single-output op's
 * output is named after the op. Exit status 0, or 1 with the message on
 * stderr. */
#include "milk.h"
#include "internal.h"
#include "ir/ir.h"
#include "util/npy.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static cJSON *load_json(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = calloc(1, (size_t)n + 1);
    cJSON *j = NULL;
    if (buf && fread(buf, 1, (size_t)n, f) == (size_t)n) j = cJSON_Parse(buf);
    free(buf);
    fclose(f);
    return j;
}

static int shape_of(const cJSON *a, int64_t *dims)
{
    int n = cJSON_GetArraySize(a);
    for (int i = 0; i < n && i < MILK_MAX_RANK; i++)
        dims[i] = (int64_t)cJSON_GetArrayItem(a, i)->valuedouble;
    return n;
}

/* A "value" const: a JSON scalar or flat list, int32, fp32, bool or a
 * string, converted to "dtype" if given. */
static milk_status value_const(milk_ctx *ctx, milk_block *b, const char *name,
                               const cJSON *e, milk_var **out)
{
    const cJSON *val = cJSON_GetObjectItem(e, "value");
    const cJSON *dt = cJSON_GetObjectItem(e, "dtype");
    const cJSON *shape = cJSON_GetObjectItem(e, "shape");
    if (cJSON_IsString(val))
        return milk_block_add_const_string(ctx, b, name, val->valuestring, out);
    bool list = cJSON_IsArray(val);
    int n = list ? cJSON_GetArraySize(val) : 1;
    const cJSON *first = list ? cJSON_GetArrayItem(val, 0) : val;
    milk_tensor_type t = {MILK_DTYPE_INT32, list ? 1 : 0, {n}};
    if (cJSON_IsBool(first)) t.dtype = MILK_DTYPE_BOOL;
    else if (first && first->valuedouble != (double)(int64_t)first->valuedouble)
        t.dtype = MILK_DTYPE_FP32;
    if (cJSON_IsString(dt)) t.dtype = milk_dtype_from_name(dt->valuestring);
    if (cJSON_IsArray(shape)) t.rank = shape_of(shape, t.dims);
    milk_array a;
    MILK_TRY(milk_array_init(ctx, &t, &a));
    for (int i = 0; i < n && i < milk_tensor_type_count(&t); i++) {
        const cJSON *x = list ? cJSON_GetArrayItem(val, i) : val;
        double v = cJSON_IsBool(x) ? cJSON_IsTrue(x) : x->valuedouble;
        switch (t.dtype) {
        case MILK_DTYPE_FP32: ((float *)a.data)[i] = (float)v; break;
        case MILK_DTYPE_FP16: ((uint16_t *)a.data)[i] = milk_fp32_to_fp16((float)v); break;
        case MILK_DTYPE_BOOL: ((uint8_t *)a.data)[i] = v != 0; break;
        default: ((int32_t *)a.data)[i] = (int32_t)v; break;
        }
    }
    milk_status s = milk_block_add_const(ctx, b, name, &a.type, a.data, out);
    milk_array_release(&a);
    return s;
}

/* An "npy" const: the array as stored (int64 made int32, fp64 fp32 by the
 * test's choice of dtypes; only fp32, fp16, int32 and bool are used). */
static milk_status npy_const(milk_ctx *ctx, milk_block *b, const char *name,
                             const cJSON *e, milk_var **out)
{
    milk_array a;
    MILK_TRY(milk_npy_read(ctx, cJSON_GetObjectItem(e, "npy")->valuestring, &a));
    milk_status s = milk_block_add_const(ctx, b, name, &a.type, a.data, out);
    milk_array_release(&a);
    return s;
}

/* One binding: a var name, or a const made here (named op_param_j). */
static milk_status binding(milk_ctx *ctx, milk_function *fn, const char *op,
                           const char *param, int j, const cJSON *e,
                           milk_var **out)
{
    milk_block *b = milk_function_block(fn);
    if (cJSON_IsString(e)) {
        *out = milk_function_var(fn, e->valuestring);
        if (*out) return MILK_OK;
        fprintf(stderr, "mkprog: op '%s': no var '%s'\n", op, e->valuestring);
        return MILK_ERR_NOT_FOUND;
    }
    char name[200];
    snprintf(name, sizeof name, "%s_%s_%d", op, param, j);
    return cJSON_GetObjectItem(e, "npy") ? npy_const(ctx, b, name, e, out)
                                         : value_const(ctx, b, name, e, out);
}

static milk_status add_op(milk_ctx *ctx, milk_function *fn, const cJSON *o)
{
    const char *type = cJSON_GetObjectItem(o, "op")->valuestring;
    const char *name = cJSON_GetObjectItem(o, "name")->valuestring;
    const cJSON *ins = cJSON_GetObjectItem(o, "inputs");
    milk_input in[64];
    int n = 0;
    for (const cJSON *e = ins->child; e && n < 64; e = e->next) {
        bool tuple = cJSON_IsArray(e);
        int k = tuple ? cJSON_GetArraySize(e) : 1;
        for (int j = 0; j < k && n < 64; j++, n++) {
            in[n].param = e->string;
            MILK_TRY(binding(ctx, fn, name, e->string, j,
                             tuple ? cJSON_GetArrayItem(e, j) : e, &in[n].var));
        }
    }
    return milk_block_add_op(ctx, milk_function_block(fn), type, name, in, n,
                             NULL);
}

/* ArrayDataType of a model input or output (FLOAT32, FLOAT16, INT32). */
static int32_t array_dtype(milk_dtype d)
{
    return d == MILK_DTYPE_FP16 ? 65552 : d == MILK_DTYPE_INT32 ? 131104 : 65568;
}

/* The description of input i as the reader records it: the default shape
 * (lower bounds, or the first enumerated shape) and the flexibility. */
static void input_feature(milk_arena *a, const milk_var *v, const cJSON *e,
                          milk_feature *f)
{
    const cJSON *ranges = cJSON_GetObjectItem(e, "ranges");
    const cJSON *shapes = cJSON_GetObjectItem(e, "enumerated");
    const milk_tensor_type *t = milk_var_type(v);
    f->name = milk_var_name(v);
    f->kind = MILK_FEATURE_ARRAY;
    f->array_dtype = array_dtype(t->dtype);
    f->rank = t->rank;
    for (int i = 0; i < t->rank; i++) f->shape[i] = t->dims[i] < 0 ? 1 : t->dims[i];
    if (cJSON_IsArray(ranges)) {
        f->n_ranges = cJSON_GetArraySize(ranges);
        f->ranges = milk_arena_alloc(a, (size_t)f->n_ranges * sizeof *f->ranges);
        for (int i = 0; i < f->n_ranges; i++) {
            shape_of(cJSON_GetArrayItem(ranges, i), f->ranges[i]);
            f->shape[i] = f->ranges[i][0];
        }
    }
    if (cJSON_IsArray(shapes)) {
        f->n_enum = cJSON_GetArraySize(shapes);
        f->enum_shapes = milk_arena_alloc(a, (size_t)(f->n_enum * f->rank) * sizeof(int64_t));
        for (int k = 0; k < f->n_enum; k++)
            shape_of(cJSON_GetArrayItem(shapes, k), f->enum_shapes + k * f->rank);
        for (int i = 0; i < f->rank; i++) f->shape[i] = f->enum_shapes[i];
    }
}

static void record_description(milk_program *p, milk_function *fn,
                               const cJSON *inputs)
{
    milk_block *b = milk_function_block(fn);
    int ni = milk_function_input_count(fn), no = milk_block_output_count(b);
    p->in_features = milk_arena_alloc(p->arena, (size_t)(ni + 1) * sizeof(milk_feature));
    p->out_features = milk_arena_alloc(p->arena, (size_t)(no + 1) * sizeof(milk_feature));
    for (int i = 0; i < ni; i++)
        input_feature(p->arena, milk_function_input(fn, i),
                      cJSON_GetArrayItem(inputs, i), &p->in_features[i]);
    for (int i = 0; i < no; i++) {
        const milk_var *v = milk_block_output(b, i);
        milk_feature *f = &p->out_features[i];
        f->name = milk_var_name(v);
        f->kind = MILK_FEATURE_ARRAY;
        f->array_dtype = array_dtype(milk_var_type(v)->dtype);
    }
    p->n_in_features = ni;
    p->n_out_features = no;
    p->has_features = true;
}

static milk_status build(milk_ctx *ctx, const cJSON *spec, milk_program **out)
{
    const cJSON *tgt = cJSON_GetObjectItem(spec, "target");
    const cJSON *inputs = cJSON_GetObjectItem(spec, "inputs");
    milk_function *fn;
    bool flexible = false;
    MILK_TRY(milk_program_create(ctx, milk_target_from_name(tgt->valuestring), out));
    MILK_TRY(milk_program_add_function(ctx, *out, "main", &fn));
    for (const cJSON *e = inputs->child; e; e = e->next) {
        milk_tensor_type t = {milk_dtype_from_name(cJSON_GetObjectItem(e, "dtype")->valuestring)};
        t.rank = shape_of(cJSON_GetObjectItem(e, "shape"), t.dims);
        MILK_TRY(milk_function_add_input(ctx, fn, cJSON_GetObjectItem(e, "name")->valuestring,
                                         &t, NULL));
        flexible |= cJSON_GetObjectItem(e, "ranges") || cJSON_GetObjectItem(e, "enumerated");
    }
    for (const cJSON *o = cJSON_GetObjectItem(spec, "ops")->child; o; o = o->next)
        MILK_TRY(add_op(ctx, fn, o));
    for (const cJSON *e = cJSON_GetObjectItem(spec, "outputs")->child; e; e = e->next) {
        milk_var *v = milk_function_var(fn, e->valuestring);
        if (!v)
            return milk_errorf(ctx, MILK_ERR_NOT_FOUND, "no output var '%s'",
                               e->valuestring);
        MILK_TRY(milk_block_add_output(ctx, milk_function_block(fn), v));
    }
    if (flexible) record_description(*out, fn, inputs);
    return MILK_OK;
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: mkprog SPEC.json\n");
        return 2;
    }
    cJSON *spec = load_json(argv[1]);
    if (!spec) {
        fprintf(stderr, "mkprog: cannot read %s\n", argv[1]);
        return 1;
    }
    milk_ctx *ctx;
    milk_ctx_create(&ctx);
    milk_program *p = NULL;
    milk_status s = build(ctx, spec, &p);
    if (s == MILK_OK)
        s = milk_program_save(ctx, p, cJSON_GetObjectItem(spec, "output")->valuestring);
    if (s != MILK_OK)
        fprintf(stderr, "mkprog: %s: %s\n", milk_status_str(s), milk_ctx_error(ctx));
    milk_program_free(p);
    milk_ctx_free(ctx);
    cJSON_Delete(spec);
    return s == MILK_OK ? 0 : 1;
}
