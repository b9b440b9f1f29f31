/* rulecheck.c: builds small MIL programs from a JSON description, runs
 * each with the interpreter, applies the defect rules (milk_rules_apply)
 * and/or the general passes (milk_program_simplify), checks the result,
 * runs it again on the same inputs and writes both outputs, so that the
 * Python tests can prove every rewrite equivalent (tests/test_rules.py).
 * Many cases run in one process.
 *
 *   rulecheck SPEC.json
 *
 * SPEC: {"data": "in.npz", "output": "out.npz", "cases": [CASE, ...]}
 * CASE: {"target": "ios18",              program target (default ios18)
 *        "precision": "fp32",            run precision: fp32 | as-declared
 *        "apply": "rules",               rules | simplify | both | none
 *                                        (none: run the program as built)
 *        "options": {"target": "ios15", "units": "cpu_only",
 *                    "precision": "fp16", "enable": [ID], "disable": [ID]},
 *        "inputs": [{"name": "x", "npz": "c0_x", "dtype": "fp16"}],
 *        "ops": [{"type": "conv", "name": "y",
 *                 "inputs": {"x": "x",                       a var by name
 *                            "weight": {"npz": "c0_w"},      a const from data
 *                            "strides": {"value": [2]},      a small const
 *                            "values": ["a", "b"]}}],        variadic
 *        "outputs": ["y"],
 *        "reference": true,              plain reference kernels
 *        "save": "before.mlpackage"}     optional: the program as built
 * Output arrays: c<i>_orig_<k> and c<i>_fixed_<k> (fp32, int32 or bool).
 * Stdout: one JSON line per case: {"case", "error", "hits": [{"rule",
 * "fixed", "op", "detail", "touched"}], "before": [op types], "after": [op
 * types]}. Exit status 0 unless the spec itself cannot be read. */
#include "milk.h"
#include "util/npy.h"

#include <cjson/cJSON.h>
#include <stdbool.h>
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

static double elem(const milk_array *a, int64_t i)
{
    switch (a->type.dtype) {
    case MILK_DTYPE_FP32: return ((float *)a->data)[i];
    case MILK_DTYPE_FP16: return milk_fp16_to_fp32(((uint16_t *)a->data)[i]);
    case MILK_DTYPE_FP64: return ((double *)a->data)[i];
    case MILK_DTYPE_INT32: return ((int32_t *)a->data)[i];
    case MILK_DTYPE_INT64: return (double)((int64_t *)a->data)[i];
    case MILK_DTYPE_BOOL: return ((uint8_t *)a->data)[i];
    default: return 0;
    }
}

/* A copy of a converted to dtype `to` (fp64 -> fp32 and int64 -> int32
 * when to is INVALID). */
static milk_status convert(milk_ctx *ctx, const milk_array *a, milk_dtype to,
                           milk_array *out)
{
    if (to == MILK_DTYPE_INVALID)
        to = a->type.dtype == MILK_DTYPE_FP64 ? MILK_DTYPE_FP32
             : a->type.dtype == MILK_DTYPE_INT64 ? MILK_DTYPE_INT32 : a->type.dtype;
    milk_tensor_type t = a->type;
    t.dtype = to;
    MILK_TRY(milk_array_init(ctx, &t, out));
    int64_t n = milk_tensor_type_count(&t);
    for (int64_t i = 0; i < n; i++) {
        double x = elem(a, i);
        switch (to) {
        case MILK_DTYPE_FP32: ((float *)out->data)[i] = (float)x; break;
        case MILK_DTYPE_FP16: ((uint16_t *)out->data)[i] = milk_fp32_to_fp16((float)x); break;
        case MILK_DTYPE_INT32: ((int32_t *)out->data)[i] = (int32_t)x; break;
        case MILK_DTYPE_INT64: ((int64_t *)out->data)[i] = (int64_t)x; break;
        case MILK_DTYPE_BOOL: ((uint8_t *)out->data)[i] = x != 0; break;
        default: milk_array_release(out); return MILK_ERR_UNSUPPORTED;
        }
    }
    return MILK_OK;
}

static milk_dtype dtype_of(const cJSON *e)
{
    const cJSON *dt = cJSON_GetObjectItem(e, "dtype");
    return cJSON_IsString(dt) ? milk_dtype_from_name(dt->valuestring) : MILK_DTYPE_INVALID;
}

static milk_status npz_array(milk_ctx *ctx, const milk_npz *z, const cJSON *e,
                             milk_array *out)
{
    const char *key = cJSON_GetObjectItem(e, "npz")->valuestring;
    const milk_array *a = milk_npz_find(z, key);
    if (!a) return milk_errorf(ctx, MILK_ERR_NOT_FOUND, "no array '%s' in the data", key);
    return convert(ctx, a, dtype_of(e), out);
}

/* {"value": scalar or flat list, "dtype", "shape"} as a const. */
static milk_status value_const(milk_ctx *ctx, milk_block *b, const char *name,
                               const cJSON *e, milk_var **out)
{
    const cJSON *val = cJSON_GetObjectItem(e, "value");
    const cJSON *shape = cJSON_GetObjectItem(e, "shape");
    if (cJSON_IsString(val)) return milk_block_add_const_string(ctx, b, name, val->valuestring, out);
    int n = cJSON_IsArray(val) ? cJSON_GetArraySize(val) : 1;
    const cJSON *first = cJSON_IsArray(val) ? cJSON_GetArrayItem(val, 0) : val;
    milk_tensor_type t = {MILK_DTYPE_INT32, cJSON_IsArray(val) ? 1 : 0, {n}};
    if (cJSON_IsBool(first)) t.dtype = MILK_DTYPE_BOOL;
    else if (first && first->valuedouble != (double)(int64_t)first->valuedouble)
        t.dtype = MILK_DTYPE_FP32;
    if (dtype_of(e) != MILK_DTYPE_INVALID) t.dtype = dtype_of(e);
    if (cJSON_IsArray(shape)) {
        t.rank = cJSON_GetArraySize(shape);
        for (int i = 0; i < t.rank; i++) t.dims[i] = cJSON_GetArrayItem(shape, i)->valueint;
    }
    milk_array a, c;
    milk_tensor_type f64 = t;
    f64.dtype = MILK_DTYPE_FP64;
    MILK_TRY(milk_array_init(ctx, &f64, &a));
    for (int i = 0; i < n && i < milk_tensor_type_count(&t); i++) {
        const cJSON *x = cJSON_IsArray(val) ? cJSON_GetArrayItem(val, i) : val;
        ((double *)a.data)[i] = cJSON_IsBool(x) ? (double)cJSON_IsTrue(x) : x->valuedouble;
    }
    milk_status s = convert(ctx, &a, t.dtype, &c);
    milk_array_release(&a);
    if (s == MILK_OK) s = milk_block_add_const(ctx, b, name, &c.type, c.data, out);
    milk_array_release(&c);
    return s;
}

static milk_status binding(milk_ctx *ctx, milk_function *fn, const milk_npz *z,
                           const char *name, const cJSON *e, milk_var **out)
{
    milk_block *b = milk_function_block(fn);
    if (cJSON_IsString(e)) {
        *out = milk_function_var(fn, e->valuestring);
        return *out ? MILK_OK : milk_errorf(ctx, MILK_ERR_NOT_FOUND, "no var '%s'",
                                            e->valuestring);
    }
    if (cJSON_GetObjectItem(e, "value")) return value_const(ctx, b, name, e, out);
    milk_array a;
    MILK_TRY(npz_array(ctx, z, e, &a));
    milk_status s = milk_block_add_const(ctx, b, name, &a.type, a.data, out);
    milk_array_release(&a);
    return s;
}

static milk_status add_op(milk_ctx *ctx, milk_function *fn, const milk_npz *z,
                          const cJSON *o)
{
    const char *type = cJSON_GetObjectItem(o, "type")->valuestring;
    const char *name = cJSON_GetObjectItem(o, "name")->valuestring;
    milk_input in[32];
    int n = 0;
    for (const cJSON *e = cJSON_GetObjectItem(o, "inputs")->child; e && n < 32; e = e->next) {
        const cJSON *list = cJSON_IsArray(e) ? e->child : e;
        for (const cJSON *item = list; item && n < 32; item = cJSON_IsArray(e) ? item->next : NULL) {
            char cname[256];
            snprintf(cname, sizeof cname, "%s_%s_%d", name, e->string, n);
            in[n].param = e->string;
            MILK_TRY(binding(ctx, fn, z, cname, item, &in[n].var));
            n++;
        }
    }
    return milk_block_add_op(ctx, milk_function_block(fn), type, name, in, n, NULL);
}

static milk_status build(milk_ctx *ctx, const cJSON *c, const milk_npz *z,
                         milk_program **out)
{
    const cJSON *tgt = cJSON_GetObjectItem(c, "target");
    milk_target t = cJSON_IsString(tgt) ? milk_target_from_name(tgt->valuestring)
                                        : MILK_TARGET_IOS18;
    milk_function *fn;
    MILK_TRY(milk_program_create(ctx, t, out));
    MILK_TRY(milk_program_add_function(ctx, *out, "main", &fn));
    for (const cJSON *e = cJSON_GetObjectItem(c, "inputs")->child; e; e = e->next) {
        milk_array a;
        MILK_TRY(npz_array(ctx, z, e, &a));
        milk_status s = milk_function_add_input(
            ctx, fn, cJSON_GetObjectItem(e, "name")->valuestring, &a.type, NULL);
        milk_array_release(&a);
        MILK_TRY(s);
    }
    for (const cJSON *o = cJSON_GetObjectItem(c, "ops")->child; o; o = o->next)
        MILK_TRY(add_op(ctx, fn, z, o));
    for (const cJSON *o = cJSON_GetObjectItem(c, "outputs")->child; o; o = o->next) {
        milk_var *v = milk_function_var(fn, o->valuestring);
        if (!v) return milk_errorf(ctx, MILK_ERR_NOT_FOUND, "no output '%s'", o->valuestring);
        MILK_TRY(milk_block_add_output(ctx, milk_function_block(fn), v));
    }
    return MILK_OK;
}

/* ---- running ----------------------------------------------------------------------- */

typedef struct outputs {
    int n, cap;
    char (*names)[96];
    milk_array *arrays;
} outputs;

static bool grow(outputs *o)
{
    if (o->n < o->cap) return true;
    int cap = o->cap ? 2 * o->cap : 64;
    char(*n)[96] = realloc(o->names, (size_t)cap * sizeof *n);
    if (n) o->names = n;
    milk_array *a = realloc(o->arrays, (size_t)cap * sizeof *a);
    if (a) o->arrays = a;
    if (!n || !a) return false;
    o->cap = cap;
    return true;
}

static milk_dtype read_as(milk_dtype d)
{
    if (d == MILK_DTYPE_BOOL) return MILK_DTYPE_BOOL;
    if (d == MILK_DTYPE_FP16 || d == MILK_DTYPE_FP32) return MILK_DTYPE_FP32;
    return MILK_DTYPE_INT32;
}

static milk_status run(milk_ctx *ctx, const milk_program *p, const cJSON *c,
                       const milk_npz *z, int ci, const char *tag, outputs *o)
{
    const cJSON *prec = cJSON_GetObjectItem(c, "precision");
    milk_run_params rp = {0};
    rp.precision = cJSON_IsString(prec) && strcmp(prec->valuestring, "as-declared") == 0
                       ? MILK_PRECISION_AS_DECLARED : MILK_PRECISION_FP32;
    rp.reference = cJSON_IsTrue(cJSON_GetObjectItem(c, "reference"));
    milk_runner *r;
    MILK_TRY(milk_runner_create(ctx, p, &rp, &r));
    milk_status s = MILK_OK;
    const milk_function *fn = milk_program_function(p, "main");
    int i = 0;
    for (const cJSON *e = cJSON_GetObjectItem(c, "inputs")->child; s == MILK_OK && e;
         e = e->next, i++) {
        milk_array a = {0}, b = {0};
        s = npz_array(ctx, z, e, &a);
        /* a rewrite may have made the input int32 of shape [1] (io-types):
         * the same elements, converted */
        const milk_tensor_type *want = milk_var_type(milk_function_input(fn, i));
        if (s == MILK_OK && milk_tensor_type_count(want) != milk_tensor_type_count(&a.type))
            s = milk_errorf(ctx, MILK_ERR_INVALID_ARG, "input %d: wrong size", i);
        if (s == MILK_OK) s = convert(ctx, &a, want->dtype, &b);
        if (s == MILK_OK) {
            b.type = *want;
            s = milk_runner_set_input(ctx, r, milk_var_name(milk_function_input(fn, i)),
                                      &b.type, b.data);
        }
        milk_array_release(&a);
        milk_array_release(&b);
    }
    if (s == MILK_OK) s = milk_runner_run(ctx, r);
    const milk_block *b = milk_function_block(milk_program_function(p, "main"));
    for (int k = 0; s == MILK_OK && k < milk_block_output_count(b); k++) {
        if (!grow(o)) {
            s = milk_errorf(ctx, MILK_ERR_NOMEM, "out of memory");
            break;
        }
        const char *name = milk_var_name(milk_block_output(b, k));
        milk_tensor_type t = *milk_runner_type(r, name);
        t.dtype = read_as(t.dtype);
        milk_array *a = &o->arrays[o->n];
        s = milk_array_init(ctx, &t, a);
        uint64_t nb = 0;
        milk_dtype_nbytes(t.dtype, milk_tensor_type_count(&t), &nb);
        if (s == MILK_OK) s = milk_runner_read(ctx, r, name, t.dtype, a->data, (size_t)nb);
        if (s == MILK_OK) snprintf(o->names[o->n++], 96, "c%d_%s_%d", ci, tag, k);
    }
    milk_runner_free(r);
    return s;
}

/* The op types of main, and its input and output names. */
static void print_ops(const milk_program *p, cJSON *line, const char *key)
{
    const milk_function *fn = milk_program_function(p, "main");
    const milk_block *b = milk_function_block(fn);
    cJSON *list = cJSON_AddArrayToObject(line, key);
    for (int i = 0; i < milk_block_op_count(b); i++)
        cJSON_AddItemToArray(list, cJSON_CreateString(milk_op_type(milk_block_op(b, i))));
    char k[64];
    snprintf(k, sizeof k, "%s_io", key);
    cJSON *io = cJSON_AddArrayToObject(line, k);
    for (int i = 0; i < milk_function_input_count(fn); i++)
        cJSON_AddItemToArray(io, cJSON_CreateString(milk_var_name(milk_function_input(fn, i))));
    for (int i = 0; i < milk_block_output_count(b); i++)
        cJSON_AddItemToArray(io, cJSON_CreateString(milk_var_name(milk_block_output(b, i))));
}

static const char **id_list(const cJSON *a, int *n)
{
    *n = cJSON_GetArraySize(a);
    const char **ids = calloc((size_t)*n + 1, sizeof *ids);
    for (int i = 0; ids && i < *n; i++) ids[i] = cJSON_GetArrayItem(a, i)->valuestring;
    return ids;
}

static milk_status apply(milk_ctx *ctx, milk_program *p, const cJSON *c,
                         milk_rule_report *rep)
{
    const cJSON *how = cJSON_GetObjectItem(c, "apply");
    const char *mode = cJSON_IsString(how) ? how->valuestring : "rules";
    const cJSON *o = cJSON_GetObjectItem(c, "options");
    milk_rule_options opts = {0};
    const cJSON *x;
    if ((x = cJSON_GetObjectItem(o, "target"))) opts.target = milk_target_from_name(x->valuestring);
    if ((x = cJSON_GetObjectItem(o, "units"))) opts.units = milk_compute_units_from_name(x->valuestring);
    if ((x = cJSON_GetObjectItem(o, "precision")) && strcmp(x->valuestring, "fp16") == 0)
        opts.precision = MILK_RULE_PRECISION_FP16;
    const char **en = id_list(cJSON_GetObjectItem(o, "enable"), &opts.n_enable);
    const char **dis = id_list(cJSON_GetObjectItem(o, "disable"), &opts.n_disable);
    opts.enable = en;
    opts.disable = dis;
    milk_status s = MILK_OK;
    if (!strcmp(mode, "rules") || !strcmp(mode, "both")) s = milk_rules_apply(ctx, p, &opts, rep);
    if (s == MILK_OK && (!strcmp(mode, "simplify") || !strcmp(mode, "both")))
        s = milk_program_simplify(ctx, p, MILK_SIMPLIFY_ALL, rep);
    free(en);
    free(dis);
    return s;
}

static void add_hits(cJSON *line, const milk_rule_report *rep)
{
    cJSON *hits = cJSON_AddArrayToObject(line, "hits");
    for (int i = 0; i < milk_rule_report_count(rep); i++) {
        const milk_rule_hit *h = milk_rule_report_at(rep, i);
        cJSON *j = cJSON_CreateObject();
        cJSON_AddStringToObject(j, "rule", h->pass);
        cJSON_AddBoolToObject(j, "fixed", h->fixed);
        cJSON_AddStringToObject(j, "op", h->op);
        cJSON_AddStringToObject(j, "detail", h->detail);
        cJSON_AddStringToObject(j, "touched", h->touched);
        cJSON_AddItemToArray(hits, j);
    }
}

static void run_case(milk_ctx *ctx, const cJSON *c, const milk_npz *z, int ci,
                     outputs *o)
{
    milk_program *p = NULL;
    milk_rule_report *rep = NULL;
    cJSON *line = cJSON_CreateObject();
    cJSON_AddNumberToObject(line, "case", ci);
    milk_ctx_clear(ctx);
    milk_status s = build(ctx, c, z, &p);
    const cJSON *save = cJSON_GetObjectItem(c, "save");
    if (s == MILK_OK && cJSON_IsString(save)) s = milk_program_save(ctx, p, save->valuestring);
    if (s == MILK_OK) print_ops(p, line, "before");
    const cJSON *how = cJSON_GetObjectItem(c, "apply");
    bool none = cJSON_IsString(how) && !strcmp(how->valuestring, "none");
    if (s == MILK_OK) s = run(ctx, p, c, z, ci, "orig", o);
    if (s == MILK_OK) s = milk_rule_report_create(ctx, &rep);
    if (s == MILK_OK && !none) s = apply(ctx, p, c, rep);
    if (rep) add_hits(line, rep);
    if (s == MILK_OK && !none) s = milk_program_check(ctx, p);
    if (s == MILK_OK) print_ops(p, line, "after");
    if (s == MILK_OK && !none) s = run(ctx, p, c, z, ci, "fixed", o);
    cJSON_AddStringToObject(line, "error", s == MILK_OK ? "" : milk_ctx_error(ctx));
    char *text = cJSON_PrintUnformatted(line);
    printf("%s\n", text ? text : "{}");
    free(text);
    cJSON_Delete(line);
    milk_rule_report_free(rep);
    milk_program_free(p);
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: rulecheck SPEC.json\n");
        return 2;
    }
    cJSON *spec = load_json(argv[1]);
    milk_ctx *ctx;
    milk_npz z = {0};
    if (!spec || milk_ctx_create(&ctx) != MILK_OK) return 2;
    const cJSON *data = cJSON_GetObjectItem(spec, "data");
    if (cJSON_IsString(data) && milk_npz_read(ctx, data->valuestring, &z) != MILK_OK) {
        fprintf(stderr, "rulecheck: %s\n", milk_ctx_error(ctx));
        return 2;
    }
    outputs *o = calloc(1, sizeof *o);
    int ci = 0, rc = 0;
    for (const cJSON *c = cJSON_GetObjectItem(spec, "cases")->child; c; c = c->next, ci++) {
        run_case(ctx, c, &z, ci, o);
        fflush(stdout);
    }
    const char **names = calloc((size_t)o->n + 1, sizeof *names);
    for (int i = 0; names && i < o->n; i++) names[i] = o->names[i];
    if (milk_npz_write(ctx, cJSON_GetObjectItem(spec, "output")->valuestring, names,
                       o->arrays, o->n) != MILK_OK) {
        fprintf(stderr, "rulecheck: %s\n", milk_ctx_error(ctx));
        rc = 2;
    }
    for (int i = 0; i < o->n; i++) milk_array_release(&o->arrays[i]);
    free(names);
    free(o->names);
    free(o->arrays);
    free(o);
    milk_npz_release(&z);
    milk_ctx_free(ctx);
    cJSON_Delete(spec);
    return rc;
}
