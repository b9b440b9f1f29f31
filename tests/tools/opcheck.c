/* opcheck.c: builds a one-op MIL program from a JSON description, runs it
 * with the interpreter and writes the outputs to an .npz, so that Python
 * tests can compare any op with PyTorch. Used through tests/milkop.py.
 *
 *   opcheck SPEC.json
 *   opcheck --batch SPECS.json     a JSON array of specs, run in turn; after
 *                                  each, a line {"done": i, "error": msg}
 *                                  (msg "" on success) follows its output
 *
 * SPEC: {"op": "conv", "target": "ios17", "precision": "fp32",
 *        "reference": false, "threads": 2, "output": "out.npz",
 *        "inputs": [
 *          {"param": "x", "npy": "x.npy"},                  model input
 *          {"param": "weight", "npy": "w.npy", "const": true},
 *          {"param": "strides", "value": [1, 1]},           int32 const
 *          {"param": "alpha", "value": 0.1},                fp32 scalar const
 *          {"param": "pad_type", "value": "custom"},        string const
 *          {"param": "keep_dims", "value": true},           bool const
 *          {"param": "y", "value": [1.5], "dtype": "fp16", "shape": []}]}
 * A param repeated is a variadic (tuple) param. "dtype" converts a .npy
 * (e.g. fp32 data declared fp16). Outputs are written as out0, out1, ... in
 * fp32 (floats), int32 or bool; their declared types are printed on stdout
 * as one JSON line. */
#include "milk.h"
#include "util/npy.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int die(milk_ctx *ctx, const char *what)
{
    fprintf(stderr, "opcheck: %s: %s\n", what, ctx ? milk_ctx_error(ctx) : "");
    return 2;
}

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

/* Convert an array to dtype `to` (fp32 <-> fp16, int64 -> int32). */
static milk_status convert(milk_ctx *ctx, milk_array *a, milk_dtype to)
{
    if (a->type.dtype == to) return MILK_OK;
    milk_tensor_type t = a->type;
    t.dtype = to;
    milk_array b;
    MILK_TRY(milk_array_init(ctx, &t, &b));
    int64_t n = milk_tensor_type_count(&t);
    for (int64_t i = 0; i < n; i++) {
        double x;
        switch (a->type.dtype) {
        case MILK_DTYPE_FP32: x = ((float *)a->data)[i]; break;
        case MILK_DTYPE_FP16: x = milk_fp16_to_fp32(((uint16_t *)a->data)[i]); break;
        case MILK_DTYPE_FP64: x = ((double *)a->data)[i]; break;
        case MILK_DTYPE_INT32: x = ((int32_t *)a->data)[i]; break;
        case MILK_DTYPE_INT64: x = (double)((int64_t *)a->data)[i]; break;
        case MILK_DTYPE_BOOL: x = ((uint8_t *)a->data)[i]; break;
        case MILK_DTYPE_INT8: x = ((int8_t *)a->data)[i]; break;
        case MILK_DTYPE_UINT8: x = ((uint8_t *)a->data)[i]; break;
        default: milk_array_release(&b); return MILK_ERR_UNSUPPORTED;
        }
        int bits = milk_dtype_bits(to);
        if (bits < 8) { /* sub-byte: packed LSB first, two's complement */
            uint64_t bit = (uint64_t)i * (uint64_t)bits;
            uint32_t v = (uint32_t)(int32_t)x & ((1u << bits) - 1u);
            uint8_t *p = (uint8_t *)b.data + bit / 8;
            p[0] |= (uint8_t)(v << (bit % 8));
            if (bit % 8 + (uint64_t)bits > 8) p[1] |= (uint8_t)(v >> (8 - bit % 8));
            continue;
        }
        switch (to) {
        case MILK_DTYPE_INT8: ((int8_t *)b.data)[i] = (int8_t)x; break;
        case MILK_DTYPE_UINT8: ((uint8_t *)b.data)[i] = (uint8_t)x; break;
        case MILK_DTYPE_UINT32: ((uint32_t *)b.data)[i] = (uint32_t)x; break;
        case MILK_DTYPE_FP32: ((float *)b.data)[i] = (float)x; break;
        case MILK_DTYPE_FP16: ((uint16_t *)b.data)[i] = milk_fp32_to_fp16((float)x); break;
        case MILK_DTYPE_INT32: ((int32_t *)b.data)[i] = (int32_t)x; break;
        case MILK_DTYPE_BOOL: ((uint8_t *)b.data)[i] = x != 0; break;
        default: milk_array_release(&b); return MILK_ERR_UNSUPPORTED;
        }
    }
    milk_array_release(a);
    *a = b;
    return MILK_OK;
}

/* A "value" entry: JSON scalar or flat array -> a const of dtype/shape. */
static milk_status value_const(milk_ctx *ctx, milk_block *b, const char *name,
                               const cJSON *e, milk_var **out)
{
    const cJSON *val = cJSON_GetObjectItem(e, "value");
    const cJSON *dt = cJSON_GetObjectItem(e, "dtype");
    const cJSON *shape = cJSON_GetObjectItem(e, "shape");
    if (cJSON_IsString(val)) return milk_block_add_const_string(ctx, b, name, val->valuestring, out);
    int n = cJSON_IsArray(val) ? cJSON_GetArraySize(val) : 1;
    const cJSON *first = cJSON_IsArray(val) ? cJSON_GetArrayItem(val, 0) : val;
    milk_tensor_type t = {MILK_DTYPE_INT32, cJSON_IsArray(val) ? 1 : 0, {n}};
    if (cJSON_IsBool(first)) t.dtype = MILK_DTYPE_BOOL;
    else if (first && first->valuedouble != (double)(int64_t)first->valuedouble) t.dtype = MILK_DTYPE_FP32;
    if (cJSON_IsString(dt)) t.dtype = milk_dtype_from_name(dt->valuestring);
    if (cJSON_IsArray(shape)) {
        t.rank = cJSON_GetArraySize(shape);
        for (int i = 0; i < t.rank; i++) t.dims[i] = cJSON_GetArrayItem(shape, i)->valueint;
    }
    milk_array a;
    milk_tensor_type f32 = t;
    f32.dtype = MILK_DTYPE_FP32;
    MILK_TRY(milk_array_init(ctx, &f32, &a));
    for (int i = 0; i < n && i < milk_tensor_type_count(&t); i++) {
        const cJSON *x = cJSON_IsArray(val) ? cJSON_GetArrayItem(val, i) : val;
        ((float *)a.data)[i] = cJSON_IsBool(x) ? (float)cJSON_IsTrue(x) : (float)x->valuedouble;
    }
    milk_status s = convert(ctx, &a, t.dtype);
    if (s == MILK_OK) s = milk_block_add_const(ctx, b, name, &a.type, a.data, out);
    milk_array_release(&a);
    return s;
}

static milk_status npy_binding(milk_ctx *ctx, milk_function *fn, milk_block *b,
                               const char *name, const cJSON *e, milk_var **out)
{
    milk_array a;
    MILK_TRY(milk_npy_read(ctx, cJSON_GetObjectItem(e, "npy")->valuestring, &a));
    const cJSON *dt = cJSON_GetObjectItem(e, "dtype");
    milk_status s = MILK_OK;
    if (cJSON_IsString(dt)) s = convert(ctx, &a, milk_dtype_from_name(dt->valuestring));
    else if (a.type.dtype == MILK_DTYPE_INT64 || a.type.dtype == MILK_DTYPE_FP64)
        s = convert(ctx, &a, a.type.dtype == MILK_DTYPE_INT64 ? MILK_DTYPE_INT32 : MILK_DTYPE_FP32);
    if (s == MILK_OK && cJSON_IsTrue(cJSON_GetObjectItem(e, "const")))
        s = milk_block_add_const(ctx, b, name, &a.type, a.data, out);
    else if (s == MILK_OK)
        s = milk_function_add_input(ctx, fn, name, &a.type, out);
    milk_array_release(&a);
    return s;
}

/* Model inputs are set from their .npy files again after the runner
 * exists (the program only declared them). */
static milk_status set_inputs(milk_ctx *ctx, milk_runner *r, const cJSON *inputs,
                              char names[][64])
{
    int i = 0;
    for (const cJSON *e = inputs->child; e; e = e->next, i++) {
        const cJSON *npy = cJSON_GetObjectItem(e, "npy");
        if (!npy || cJSON_IsTrue(cJSON_GetObjectItem(e, "const"))) continue;
        milk_array a;
        MILK_TRY(milk_npy_read(ctx, npy->valuestring, &a));
        const cJSON *dt = cJSON_GetObjectItem(e, "dtype");
        milk_status s = MILK_OK;
        if (cJSON_IsString(dt)) s = convert(ctx, &a, milk_dtype_from_name(dt->valuestring));
        else if (a.type.dtype == MILK_DTYPE_INT64 || a.type.dtype == MILK_DTYPE_FP64)
            s = convert(ctx, &a, a.type.dtype == MILK_DTYPE_INT64 ? MILK_DTYPE_INT32 : MILK_DTYPE_FP32);
        if (s == MILK_OK) s = milk_runner_set_input(ctx, r, names[i], &a.type, a.data);
        milk_array_release(&a);
        MILK_TRY(s);
    }
    return MILK_OK;
}

static milk_status write_outputs(milk_ctx *ctx, milk_runner *r, const milk_op *op,
                                 const char *path)
{
    int n = milk_op_output_count(op);
    milk_array arrays[64] = {{{0}}};
    char names[64][16];
    const char *pn[64];
    milk_status s = MILK_OK;
    printf("[");
    for (int i = 0; i < n && i < 64 && s == MILK_OK; i++) {
        const milk_tensor_type *t = milk_var_type(milk_op_output(op, i));
        printf("%s{\"dtype\": \"%s\", \"shape\": [", i ? ", " : "", milk_dtype_name(t->dtype));
        for (int d = 0; d < t->rank; d++) printf("%s%lld", d ? ", " : "", (long long)t->dims[d]);
        printf("]}");
        milk_tensor_type o = *t;
        o.dtype = t->dtype == MILK_DTYPE_BOOL ? MILK_DTYPE_BOOL
                  : (t->dtype == MILK_DTYPE_FP16 || t->dtype == MILK_DTYPE_FP32) ? MILK_DTYPE_FP32
                                                                                 : MILK_DTYPE_INT32;
        snprintf(names[i], sizeof names[i], "out%d", i);
        pn[i] = names[i];
        s = milk_array_init(ctx, &o, &arrays[i]);
        uint64_t nb = 0;
        milk_dtype_nbytes(o.dtype, milk_tensor_type_count(&o), &nb);
        if (s == MILK_OK)
            s = milk_runner_read(ctx, r, milk_var_name(milk_op_output(op, i)), o.dtype,
                                 arrays[i].data, (size_t)nb);
    }
    printf("]\n");
    if (s == MILK_OK) s = milk_npz_write(ctx, path, pn, arrays, n);
    for (int i = 0; i < n && i < 64; i++) milk_array_release(&arrays[i]);
    return s;
}

static int run(milk_ctx *ctx, const cJSON *spec)
{
    const cJSON *op_j = cJSON_GetObjectItem(spec, "op");
    const cJSON *inputs = cJSON_GetObjectItem(spec, "inputs");
    const cJSON *tgt = cJSON_GetObjectItem(spec, "target");
    const cJSON *prec = cJSON_GetObjectItem(spec, "precision");
    const cJSON *outp = cJSON_GetObjectItem(spec, "output");
    if (!cJSON_IsString(op_j) || !cJSON_IsArray(inputs) || !cJSON_IsString(outp))
        return die(NULL, "spec needs op, inputs and output");
    milk_target target = cJSON_IsString(tgt) ? milk_target_from_name(tgt->valuestring)
                                             : MILK_TARGET_IOS18;
    milk_program *p;
    milk_function *fn;
    if (milk_program_create(ctx, target, &p) != MILK_OK ||
        milk_program_add_function(ctx, p, "main", &fn) != MILK_OK)
        return die(ctx, "program");
    milk_block *b = milk_function_block(fn);
    int n = cJSON_GetArraySize(inputs), i = 0;
    milk_input *in = calloc((size_t)n + 1, sizeof *in);
    char (*names)[64] = calloc((size_t)n + 1, sizeof *names);
    milk_status s = MILK_OK;
    for (const cJSON *e = inputs->child; e && s == MILK_OK; e = e->next, i++) {
        const char *param = cJSON_GetObjectItem(e, "param")->valuestring;
        snprintf(names[i], 64, "%s_%d", param, i);
        in[i].param = param;
        s = cJSON_GetObjectItem(e, "npy") ? npy_binding(ctx, fn, b, names[i], e, &in[i].var)
                                          : value_const(ctx, b, names[i], e, &in[i].var);
    }
    milk_op *op = NULL;
    if (s == MILK_OK) s = milk_block_add_op(ctx, b, op_j->valuestring, "op", in, n, &op);
    for (int k = 0; s == MILK_OK && k < milk_op_output_count(op); k++)
        s = milk_block_add_output(ctx, b, milk_op_output(op, k));
    milk_run_params rp = {0};
    rp.precision = cJSON_IsString(prec) && strcmp(prec->valuestring, "fp32") == 0
                       ? MILK_PRECISION_FP32 : MILK_PRECISION_AS_DECLARED;
    rp.reference = cJSON_IsTrue(cJSON_GetObjectItem(spec, "reference"));
    const cJSON *threads = cJSON_GetObjectItem(spec, "threads");
    rp.threads = cJSON_IsNumber(threads) ? threads->valueint : 0;
    milk_runner *r = NULL;
    if (s == MILK_OK) s = milk_runner_create(ctx, p, &rp, &r);
    if (s == MILK_OK) s = set_inputs(ctx, r, inputs, names);
    if (s == MILK_OK) s = milk_runner_run(ctx, r);
    if (s == MILK_OK) s = write_outputs(ctx, r, op, outp->valuestring);
    milk_runner_free(r);
    milk_program_free(p);
    free(in);
    free(names);
    return s == MILK_OK ? 0 : die(ctx, milk_status_str(s));
}

/* Batch mode: many specs in one process (process start-up dominates small
 * cases). A failing spec does not stop the others. */
static int run_batch(const char *path)
{
    cJSON *specs = load_json(path);
    if (!cJSON_IsArray(specs)) {
        cJSON_Delete(specs);
        return die(NULL, "cannot read the JSON array of specs");
    }
    milk_ctx *ctx;
    milk_ctx_create(&ctx);
    int i = 0;
    for (const cJSON *spec = specs->child; spec; spec = spec->next, i++) {
        milk_ctx_clear(ctx);
        int rc = run(ctx, spec);
        cJSON *done = cJSON_CreateObject();
        cJSON_AddNumberToObject(done, "done", i);
        const char *msg = *milk_ctx_error(ctx) ? milk_ctx_error(ctx) : "failed";
        cJSON_AddStringToObject(done, "error", rc ? msg : "");
        char *line = cJSON_PrintUnformatted(done);
        printf("\n%s\n", line ? line : "{}");
        fflush(stdout);
        free(line);
        cJSON_Delete(done);
    }
    milk_ctx_free(ctx);
    cJSON_Delete(specs);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc == 3 && strcmp(argv[1], "--batch") == 0) return run_batch(argv[2]);
    if (argc != 2) {
        fprintf(stderr, "usage: opcheck SPEC.json | opcheck --batch SPECS.json\n");
        return 2;
    }
    cJSON *spec = load_json(argv[1]);
    if (!spec) return die(NULL, "cannot read the JSON spec");
    milk_ctx *ctx;
    milk_ctx_create(&ctx);
    int rc = run(ctx, spec);
    milk_ctx_free(ctx);
    cJSON_Delete(spec);
    return rc;
}
