/* inspect.c: `milk inspect`: one screen about a program: its inputs and
 * outputs (shapes, flexible ranges, states), targets and opsets, its
 * functions, an op histogram, the weights by dtype and by compression,
 * the largest tensors, the defect rules that fire for each compute-unit
 * choice and the ops known to fall back from the Neural Engine.
 *
 * Everything is gathered into one cJSON tree (printed as is with --json);
 * the text is rendered from that tree. Adding a section: a function
 * building its object, called from build(), and a few lines in
 * print_text(). */
#include "verify.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdlib.h>

/* The rules whose hits are Neural Engine fallbacks (the op runs on the GPU
 * or CPU instead); the other ne-* notes are hazards. */
static const char *const fallback_rules[] = {"ne-conv-kernel16", "ne-lrn-c16", "ne-rank5",
                                             "ne-dtype", "dim-16384"};

static const milk_compute_units all_units[] = {MILK_UNITS_ALL, MILK_UNITS_CPU_ONLY,
                                               MILK_UNITS_CPU_AND_GPU, MILK_UNITS_CPU_AND_NE};

/* ---- small helpers --------------------------------------------------------------- */

static uint64_t type_bytes(const milk_tensor_type *t)
{
    uint64_t n = 0;
    int64_t c = milk_tensor_type_count(t);
    if (c < 0 || !milk_dtype_nbytes(t->dtype, c, &n)) return 0;
    return n;
}

static cJSON *shape_json(const milk_tensor_type *t)
{
    if (t->rank < 0) return cJSON_CreateNull();
    cJSON *a = cJSON_CreateArray();
    for (int i = 0; a && i < t->rank; i++)
        cJSON_AddItemToArray(a, t->dims[i] < 0 ? cJSON_CreateNull()
                                               : cJSON_CreateNumber((double)t->dims[i]));
    return a;
}

static const char *dtype_str(milk_dtype d)
{
    const char *n = milk_dtype_name(d);
    return n ? n : "?";
}

/* The model description's feature for a main input or output, or NULL. */
static const milk_feature *feature(const milk_program *p, const char *name, bool output)
{
    int n = output ? p->n_out_features : p->n_in_features;
    const milk_feature *f = output ? p->out_features : p->in_features;
    for (int i = 0; p->has_features && i < n; i++)
        if (f[i].name && strcmp(f[i].name, name) == 0) return &f[i];
    return NULL;
}

/* ---- inputs, outputs, functions ---------------------------------------------------- */

static cJSON *flexible_json(const milk_feature *f)
{
    if (!f || (!f->n_ranges && !f->n_enum)) return NULL;
    cJSON *o = cJSON_CreateObject();
    if (f->n_ranges) {
        cJSON *lo = cJSON_AddArrayToObject(o, "lower"), *hi = cJSON_AddArrayToObject(o, "upper");
        for (int i = 0; i < f->n_ranges; i++) {
            cJSON_AddItemToArray(lo, cJSON_CreateNumber((double)f->ranges[i][0]));
            cJSON_AddItemToArray(hi, f->ranges[i][1] < 0 ? cJSON_CreateNull()
                                                         : cJSON_CreateNumber((double)f->ranges[i][1]));
        }
    }
    if (f->n_enum) {
        cJSON *e = cJSON_AddArrayToObject(o, "enumerated");
        for (int i = 0; i < f->n_enum; i++) {
            cJSON *s = cJSON_CreateArray();
            for (int d = 0; d < f->rank; d++)
                cJSON_AddItemToArray(s, cJSON_CreateNumber((double)f->enum_shapes[i * f->rank + d]));
            cJSON_AddItemToArray(e, s);
        }
    }
    return o;
}

static cJSON *io_json(const milk_program *p, const milk_function *fn, const milk_var *v,
                      bool output)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "name", v->name);
    cJSON_AddStringToObject(o, "dtype", dtype_str(v->type.dtype));
    cJSON_AddItemToObject(o, "shape", shape_json(&v->type));
    const milk_feature *f = strcmp(fn->name, milk_program_default_function(p)) == 0
                                ? feature(p, v->name, output) : NULL;
    cJSON *flex = flexible_json(f);
    if (flex) cJSON_AddItemToObject(o, "flexible", flex);
    if (f && f->kind == MILK_FEATURE_IMAGE) cJSON_AddStringToObject(o, "kind", "image");
    return o;
}

/* {type: count} of fn's non-const ops, by count then name. */
static void add_histogram(cJSON *h, const milk_function *fn)
{
    for (int i = 0; i < fn->block->n_ops; i++) {
        const milk_op *op = fn->block->ops[i];
        if (op->kind == MILK_OP_const_) continue;
        const char *t = milk_ops[op->kind]->name;
        cJSON *c = cJSON_GetObjectItemCaseSensitive(h, t);
        if (c) cJSON_SetNumberValue(c, c->valuedouble + 1);
        else cJSON_AddNumberToObject(h, t, 1);
    }
}

static int by_count(const void *a, const void *b)
{
    const cJSON *x = *(const cJSON *const *)a, *y = *(const cJSON *const *)b;
    if (x->valuedouble != y->valuedouble) return x->valuedouble < y->valuedouble ? 1 : -1;
    return strcmp(x->string, y->string);
}

/* h's items sorted by count (descending), then name. */
static void sort_histogram(cJSON *h)
{
    int n = cJSON_GetArraySize(h);
    cJSON **items = calloc((size_t)n + 1, sizeof *items);
    if (!items) return;
    for (int i = 0; i < n; i++) items[i] = cJSON_DetachItemFromArray(h, 0);
    qsort(items, (size_t)n, sizeof *items, by_count);
    for (int i = 0; i < n; i++) cJSON_AddItemToObject(h, items[i]->string, items[i]);
    free(items);
}

static cJSON *function_json(const milk_program *p, const milk_function *fn)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "name", fn->name);
    cJSON_AddStringToObject(o, "opset", milk_function_opset(fn) ? milk_function_opset(fn) : "?");
    cJSON_AddBoolToObject(o, "default", strcmp(fn->name, milk_program_default_function(p)) == 0);
    cJSON *in = cJSON_AddArrayToObject(o, "inputs"), *st = cJSON_AddArrayToObject(o, "states");
    for (int i = 0; i < fn->n_inputs; i++)
        cJSON_AddItemToArray(fn->inputs[i]->is_state ? st : in, io_json(p, fn, fn->inputs[i], false));
    cJSON *out = cJSON_AddArrayToObject(o, "outputs");
    for (int i = 0; i < fn->block->n_outputs; i++)
        cJSON_AddItemToArray(out, io_json(p, fn, fn->block->outputs[i], true));
    int ops = 0, consts = 0;
    for (int i = 0; i < fn->block->n_ops; i++)
        *(fn->block->ops[i]->kind == MILK_OP_const_ ? &consts : &ops) += 1;
    cJSON_AddNumberToObject(o, "ops", ops);
    cJSON_AddNumberToObject(o, "consts", consts);
    cJSON *h = cJSON_AddObjectToObject(o, "op_histogram");
    add_histogram(h, fn);
    sort_histogram(h);
    return o;
}

/* ---- weights ------------------------------------------------------------------------ */

typedef struct weight {
    const char *name;      /* the const's var, or "var:param" of a constexpr op */
    const milk_op *op;     /* the const or constexpr op holding it */
    const milk_value *val;
    uint64_t bytes;
    const char *use;       /* "none", or the constexpr op type reading it */
} weight;

/* The constexpr op type reading the const's output, or "none". */
static const char *compression_of(const milk_function *fn, const milk_op *c)
{
    for (int i = 0; i < fn->block->n_ops; i++) {
        const milk_op *op = fn->block->ops[i];
        if (!milk_op_is_constexpr(op)) continue;
        for (int a = 0; a < op->n_args; a++)
            for (int j = 0; j < op->args[a].n; j++)
                if (op->args[a].b[j].var && op->args[a].b[j].var->producer == c)
                    return milk_ops[op->kind]->name;
    }
    return "none";
}

typedef struct weights {
    weight *w;
    int n, cap;
    milk_arena *names;
} weights;

static bool same_value(const milk_value *a, const milk_value *b)
{
    return a == b || (a->data.kind == MILK_DATA_FILE && b->data.kind == MILK_DATA_FILE &&
                      a->data.offset == b->data.offset && strcmp(a->data.path, b->data.path) == 0);
}

/* Record v (once: the same value, or the same range of the same file, as
 * functions sharing weights hold them). */
static void add_weight(weights *ws, const char *name, const milk_op *op, const milk_value *v,
                       const char *use)
{
    uint64_t b = 0;
    if (!v || v->kind != MILK_VALUE_TENSOR || !milk_value_nbytes(v, &b)) return;
    for (int k = 0; k < ws->n; k++)
        if (same_value(ws->w[k].val, v)) return;
    if (!milk_arena_grow(ws->names, (void **)&ws->w, ws->n, &ws->cap, sizeof *ws->w)) return;
    ws->w[ws->n++] = (weight){name, op, v, b, use};
}

/* Every constant tensor of every function: const ops, and the inputs and
 * attributes inline in constexpr ops (compressed weights). */
static void collect_weights(const milk_program *p, weights *ws)
{
    for (int f = 0; f < p->n_functions; f++) {
        const milk_function *fn = p->functions[f];
        for (int i = 0; i < fn->block->n_ops; i++) {
            const milk_op *op = fn->block->ops[i];
            if (op->kind == MILK_OP_const_ && op->n_outputs > 0) {
                add_weight(ws, op->outputs[0]->name, op, op->val, compression_of(fn, op));
                continue;
            }
            if (!milk_op_is_constexpr(op) || op->n_outputs < 1) continue;
            const char *type = milk_ops[op->kind]->name;
            char buf[600];
            for (int a = 0; a < op->n_args; a++)
                for (int j = 0; j < op->args[a].n; j++) {
                    snprintf(buf, sizeof buf, "%.400s:%.100s", op->outputs[0]->name,
                             op->args[a].param);
                    add_weight(ws, milk_arena_strdup(ws->names, buf), op, op->args[a].b[j].value,
                               type);
                }
            for (int a = 0; a < op->attrs.n; a++) {
                snprintf(buf, sizeof buf, "%.400s:%.100s", op->outputs[0]->name,
                         op->attrs.a[a].key);
                add_weight(ws, milk_arena_strdup(ws->names, buf), op, op->attrs.a[a].val, type);
            }
        }
    }
}

static void add_to(cJSON *obj, const char *key, const char *field, double v)
{
    cJSON *o = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (!o) o = cJSON_AddObjectToObject(obj, key);
    cJSON *c = cJSON_GetObjectItemCaseSensitive(o, field);
    if (c) cJSON_SetNumberValue(c, c->valuedouble + v);
    else cJSON_AddNumberToObject(o, field, v);
}

static int by_bytes(const void *a, const void *b)
{
    const weight *x = a, *y = b;
    return x->bytes != y->bytes ? (x->bytes < y->bytes ? 1 : -1) : strcmp(x->name, y->name);
}

static cJSON *tensor_entry(const char *name, const milk_tensor_type *t, uint64_t bytes,
                           const char *kind)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "name", name);
    cJSON_AddStringToObject(o, "dtype", dtype_str(t->dtype));
    cJSON_AddItemToObject(o, "shape", shape_json(t));
    cJSON_AddNumberToObject(o, "bytes", (double)bytes);
    if (kind) cJSON_AddStringToObject(o, "kind", kind);
    return o;
}

/* {"bytes", "count", "by_dtype": {dtype: bytes}, "compression": {kind:
 *  {"count", "bytes", "dense_bytes"}}} and the largest weights. */
static cJSON *weights_json(const milk_program *p, int top, cJSON **largest)
{
    weights ws = {NULL, 0, 0, milk_arena_create()};
    if (ws.names) collect_weights(p, &ws);
    weight *w = ws.w;
    int n = ws.n;
    cJSON *o = cJSON_CreateObject();
    uint64_t total = 0, blobs = 0;
    cJSON *dt = cJSON_AddObjectToObject(o, "by_dtype"), *comp = cJSON_AddObjectToObject(o, "compression");
    for (int i = 0; i < n; i++) {
        total += w[i].bytes;
        if (w[i].val->data.kind == MILK_DATA_FILE && w[i].val->data.record) blobs += w[i].bytes;
        add_to(dt, dtype_str(w[i].val->type.dtype), "bytes", (double)w[i].bytes);
        add_to(comp, w[i].use, "bytes", (double)w[i].bytes);
    }
    /* each constexpr op: one compressed tensor, its dense size */
    for (int f = 0; f < p->n_functions; f++)
        for (int i = 0; i < p->functions[f]->block->n_ops; i++) {
            const milk_op *op = p->functions[f]->block->ops[i];
            if (!milk_op_is_constexpr(op) || op->n_outputs < 1) continue;
            add_to(comp, milk_ops[op->kind]->name, "count", 1);
            for (int k = 0; k < op->n_outputs; k++)
                add_to(comp, milk_ops[op->kind]->name, "dense_bytes",
                       (double)type_bytes(&op->outputs[k]->type));
        }
    int plain = 0;
    for (int i = 0; i < n; i++) plain += strcmp(w[i].use, "none") == 0;
    if (plain) add_to(comp, "none", "count", plain);
    cJSON_AddNumberToObject(o, "bytes", (double)total);
    cJSON_AddNumberToObject(o, "weight_file_bytes", (double)blobs);
    cJSON_AddNumberToObject(o, "count", n);
    if (w) qsort(w, (size_t)n, sizeof *w, by_bytes);
    *largest = cJSON_CreateArray();
    for (int i = 0; i < n && i < top; i++)
        cJSON_AddItemToArray(*largest, tensor_entry(w[i].name, &w[i].val->type, w[i].bytes,
                                                    w[i].use));
    milk_arena_free(ws.names); /* w lives in it */
    return o;
}

/* The largest op outputs of the default function (activations). */
static cJSON *activations_json(const milk_function *fn, int top)
{
    int n = 0;
    weight *a = calloc((size_t)fn->block->n_ops + 1, sizeof *a);
    for (int i = 0; a && i < fn->block->n_ops; i++) {
        const milk_op *op = fn->block->ops[i];
        if (op->kind == MILK_OP_const_ || milk_op_is_constexpr(op) || op->n_outputs < 1) continue;
        a[n++] = (weight){op->outputs[0]->name, op, NULL, type_bytes(&op->outputs[0]->type), NULL};
    }
    if (a) qsort(a, (size_t)n, sizeof *a, by_bytes);
    cJSON *arr = cJSON_CreateArray();
    for (int i = 0; a && i < n && i < top; i++)
        cJSON_AddItemToArray(arr, tensor_entry(a[i].op->outputs[0]->name, &a[i].op->outputs[0]->type,
                                               a[i].bytes, milk_ops[a[i].op->kind]->name));
    free(a);
    return arr;
}

/* ---- rules -------------------------------------------------------------------------- */

static bool is_fallback(const char *id)
{
    for (size_t i = 0; i < MILK_ARRAY_LEN(fallback_rules); i++)
        if (strcmp(fallback_rules[i], id) == 0) return true;
    return false;
}

/* {"all": [{"id", "severity", "action", "count"}], "cpu_only": ...} and the
 * fallbacks of cpu_and_ne: [{"op", "type", "rule", "reason"}]. */
static milk_status rules_json(milk_ctx *ctx, const milk_program *p, cJSON *rules, cJSON *fallbacks)
{
    for (size_t u = 0; u < MILK_ARRAY_LEN(all_units); u++) {
        milk_rule_options o = {0};
        o.units = all_units[u];
        milk_rule_report *r;
        MILK_TRY(milk_rule_report_create(ctx, &r));
        milk_status s = milk_rules_check(ctx, p, &o, r);
        cJSON *list = cJSON_AddArrayToObject(rules, milk_compute_units_name(all_units[u]));
        for (int i = 0; s == MILK_OK && i < milk_rule_report_count(r); i++) {
            const milk_rule_hit *h = milk_rule_report_at(r, i);
            if (!h->rule) continue;
            cJSON *e = NULL;
            for (cJSON *it = list->child; it && !e; it = it->next)
                if (strcmp(cJSON_GetObjectItem(it, "id")->valuestring, h->rule->id) == 0) e = it;
            if (!e) {
                e = cJSON_CreateObject();
                cJSON_AddStringToObject(e, "id", h->rule->id);
                cJSON_AddStringToObject(e, "severity", milk_rule_severity_name(h->rule->severity));
                cJSON_AddStringToObject(e, "action", milk_rule_action_name(h->rule->action));
                cJSON_AddNumberToObject(e, "count", 0);
                cJSON_AddItemToArray(list, e);
            }
            cJSON *c = cJSON_GetObjectItem(e, "count");
            cJSON_SetNumberValue(c, c->valuedouble + 1);
            if (all_units[u] == MILK_UNITS_CPU_AND_NE && is_fallback(h->rule->id)) {
                cJSON *fb = cJSON_CreateObject();
                cJSON_AddStringToObject(fb, "op", h->op[0] ? h->op : "(inputs)");
                cJSON_AddStringToObject(fb, "type", h->op_type);
                cJSON_AddStringToObject(fb, "rule", h->rule->id);
                cJSON_AddStringToObject(fb, "reason", h->detail);
                cJSON_AddItemToArray(fallbacks, fb);
            }
        }
        milk_rule_report_free(r);
        MILK_TRY(s);
    }
    return MILK_OK;
}

/* ---- the whole ---------------------------------------------------------------------- */

static milk_status build(milk_ctx *ctx, const milk_program *p, const milk_inspect_params *ip,
                         cJSON *o)
{
    int top = ip->top > 0 ? ip->top : 8;
    const milk_function *main_fn = milk_program_function(p, milk_program_default_function(p));
    cJSON_AddStringToObject(o, "file", ip->label ? ip->label : "program");
    cJSON_AddStringToObject(o, "format", "mlprogram");
    cJSON_AddNumberToObject(o, "specification_version", (double)p->target);
    cJSON_AddStringToObject(o, "target", milk_target_name(p->target) ? milk_target_name(p->target) : "?");
    if (ip->onnx) {
        cJSON *src = cJSON_AddObjectToObject(o, "source");
        cJSON_AddStringToObject(src, "format", "onnx");
        cJSON_AddNumberToObject(src, "opset", (double)ip->onnx->onnx_opset);
        cJSON_AddNumberToObject(src, "nodes", ip->onnx->onnx_nodes);
    } else {
        cJSON_AddNullToObject(o, "source");
    }
    cJSON *md = cJSON_AddObjectToObject(o, "metadata");
    static const char *const keys[] = {"shortDescription", "author", "license", "versionString"};
    for (size_t i = 0; i < MILK_ARRAY_LEN(keys); i++)
        if (milk_program_metadata(p, keys[i]))
            cJSON_AddStringToObject(md, keys[i], milk_program_metadata(p, keys[i]));
    cJSON_AddStringToObject(o, "default_function", main_fn ? main_fn->name : "");
    cJSON *fns = cJSON_AddArrayToObject(o, "functions");
    cJSON *hist = cJSON_AddObjectToObject(o, "op_histogram");
    for (int f = 0; f < p->n_functions; f++) {
        cJSON_AddItemToArray(fns, function_json(p, p->functions[f]));
        add_histogram(hist, p->functions[f]);
    }
    sort_histogram(hist);
    cJSON *largest = NULL;
    cJSON_AddItemToObject(o, "weights", weights_json(p, top, &largest));
    cJSON_AddItemToObject(o, "largest_weights", largest);
    cJSON_AddItemToObject(o, "largest_activations",
                          main_fn ? activations_json(main_fn, top) : cJSON_CreateArray());
    cJSON *rules = cJSON_AddObjectToObject(o, "rules");
    cJSON *fb = cJSON_AddArrayToObject(o, "neural_engine_fallbacks");
    return rules_json(ctx, p, rules, fb);
}

/* ---- the text ----------------------------------------------------------------------- */

static void human_bytes(double b, char *buf, size_t n)
{
    static const char *const units[] = {"B", "KB", "MB", "GB"};
    int u = 0;
    while (b >= 1000 && u < 3) {
        b /= 1000;
        u++;
    }
    snprintf(buf, n, u ? "%.1f %s" : "%.0f %s", b, units[u]);
}

static void print_shape(FILE *f, const cJSON *shape)
{
    if (!cJSON_IsArray(shape)) {
        fputs("[?]", f);
        return;
    }
    fputc('[', f);
    int i = 0;
    for (const cJSON *d = shape->child; d; d = d->next)
        cJSON_IsNull(d) ? fprintf(f, "%s?", i++ ? ", " : "")
                        : fprintf(f, "%s%.0f", i++ ? ", " : "", d->valuedouble);
    fputc(']', f);
}

static void print_io(FILE *f, const char *what, const cJSON *list)
{
    if (!cJSON_GetArraySize(list)) return;
    fprintf(f, "%s:\n", what);
    for (const cJSON *v = list->child; v; v = v->next) {
        fprintf(f, "  %-24s %-5s ", cJSON_GetObjectItem(v, "name")->valuestring,
                cJSON_GetObjectItem(v, "dtype")->valuestring);
        print_shape(f, cJSON_GetObjectItem(v, "shape"));
        const cJSON *flex = cJSON_GetObjectItem(v, "flexible");
        const cJSON *lo = flex ? cJSON_GetObjectItem(flex, "lower") : NULL;
        const cJSON *en = flex ? cJSON_GetObjectItem(flex, "enumerated") : NULL;
        if (lo) {
            fputs("  range ", f);
            const cJSON *hi = cJSON_GetObjectItem(flex, "upper")->child;
            for (const cJSON *l = lo->child; l; l = l->next, hi = hi ? hi->next : NULL) {
                fprintf(f, "%s%.0f..", l == lo->child ? "[" : ", ", l->valuedouble);
                hi && !cJSON_IsNull(hi) ? fprintf(f, "%.0f", hi->valuedouble) : fputs("inf", f);
            }
            fputc(']', f);
        }
        if (en) {
            fprintf(f, "  %d enumerated shapes:", cJSON_GetArraySize(en));
            int k = 0;
            for (const cJSON *s = en->child; s && k < 4; s = s->next, k++) {
                fputc(' ', f);
                print_shape(f, s);
            }
            if (cJSON_GetArraySize(en) > 4) fputs(" ...", f);
        }
        fputc('\n', f);
    }
}

static void print_histogram(FILE *f, const char *head, const cJSON *h)
{
    int total = 0, k = 0;
    for (const cJSON *c = h->child; c; c = c->next) total += (int)c->valuedouble;
    fprintf(f, "%s (%d):", head, total);
    for (const cJSON *c = h->child; c; c = c->next, k++)
        fprintf(f, "%s%s %.0f", k ? ", " : " ", c->string, c->valuedouble);
    fputc('\n', f);
}

static void print_weights(FILE *f, const cJSON *o)
{
    const cJSON *w = cJSON_GetObjectItem(o, "weights");
    char b[32];
    human_bytes(cJSON_GetObjectItem(w, "bytes")->valuedouble, b, sizeof b);
    char wb[32];
    human_bytes(cJSON_GetObjectItem(w, "weight_file_bytes")->valuedouble, wb, sizeof wb);
    fprintf(f, "weights: %s in %.0f constants (%s in weight.bin); by dtype:", b,
            cJSON_GetObjectItem(w, "count")->valuedouble, wb);
    for (const cJSON *d = cJSON_GetObjectItem(w, "by_dtype")->child; d; d = d->next) {
        human_bytes(cJSON_GetObjectItem(d, "bytes")->valuedouble, b, sizeof b);
        fprintf(f, " %s %s%s", d->string, b, d->next ? "," : "");
    }
    fputs("\n  compression:", f);
    for (const cJSON *c = cJSON_GetObjectItem(w, "compression")->child; c; c = c->next) {
        const cJSON *n = cJSON_GetObjectItem(c, "count"), *dense = cJSON_GetObjectItem(c, "dense_bytes");
        human_bytes(cJSON_GetObjectItem(c, "bytes") ? cJSON_GetObjectItem(c, "bytes")->valuedouble : 0,
                    b, sizeof b);
        fprintf(f, " %s: %.0f tensor%s, %s", c->string, n ? n->valuedouble : 0,
                n && n->valuedouble == 1 ? "" : "s", b);
        if (dense) {
            char d[32];
            human_bytes(dense->valuedouble, d, sizeof d);
            fprintf(f, " (%s dense)", d);
        }
        if (c->next) fputc(';', f);
    }
    fputc('\n', f);
}

static void print_largest(FILE *f, const char *head, const cJSON *list)
{
    fprintf(f, "%s:", head);
    int k = 0;
    for (const cJSON *t = list->child; t; t = t->next, k++) {
        char b[32];
        human_bytes(cJSON_GetObjectItem(t, "bytes")->valuedouble, b, sizeof b);
        fprintf(f, "%s%s %s ", k % 2 ? "; " : "\n  ", cJSON_GetObjectItem(t, "name")->valuestring,
                cJSON_GetObjectItem(t, "dtype")->valuestring);
        print_shape(f, cJSON_GetObjectItem(t, "shape"));
        fprintf(f, " %s", b);
    }
    fputs(k ? "\n" : " none\n", f);
}

/* The count of rule id under a compute-unit choice, 0 if it does not fire. */
static int rule_count(const cJSON *list, const char *id)
{
    for (const cJSON *e = list->child; e; e = e->next)
        if (strcmp(cJSON_GetObjectItem(e, "id")->valuestring, id) == 0)
            return (int)cJSON_GetObjectItem(e, "count")->valuedouble;
    return 0;
}

static void print_rules(FILE *f, const cJSON *rules)
{
    /* every rule that fires somewhere, in table order */
    fprintf(f, "%-42s %9s %9s %11s %10s\n", "rules that fire, by compute units:", "all", "cpu_only",
            "cpu_and_gpu", "cpu_and_ne");
    int shown = 0;
    for (int i = 0; i < milk_rule_count(); i++) {
        const milk_rule_info *r = milk_rule_at(i);
        int c[4], any = 0;
        for (size_t u = 0; u < MILK_ARRAY_LEN(all_units); u++)
            any |= c[u] = rule_count(cJSON_GetObjectItem(rules, milk_compute_units_name(all_units[u])),
                                     r->id);
        if (!any) continue;
        char label[96];
        snprintf(label, sizeof label, "%s (%s, %s)", r->id, milk_rule_action_name(r->action),
                 milk_rule_severity_name(r->severity));
        fprintf(f, "  %-40s", label);
        for (size_t u = 0; u < MILK_ARRAY_LEN(all_units); u++)
            c[u] ? fprintf(f, " %*d", u == 2 ? 11 : u == 3 ? 10 : 9, c[u])
                 : fprintf(f, " %*s", u == 2 ? 11 : u == 3 ? 10 : 9, "-");
        fputc('\n', f);
        shown++;
    }
    if (!shown) fputs("  none\n", f);
}

static void print_fallbacks(FILE *f, const cJSON *fb)
{
    int n = cJSON_GetArraySize(fb);
    fprintf(f, "Neural Engine fallbacks (cpu_and_ne): %d op%s\n", n, n == 1 ? "" : "s");
    for (size_t k = 0; k < MILK_ARRAY_LEN(fallback_rules); k++) {
        int c = 0;
        const cJSON *first = NULL;
        for (const cJSON *e = fb->child; e; e = e->next)
            if (strcmp(cJSON_GetObjectItem(e, "rule")->valuestring, fallback_rules[k]) == 0 &&
                !c++)
                first = e;
        if (!c) continue;
        fprintf(f, "  %s: %d op%s, e.g. op '%s' (%s): %s\n", fallback_rules[k], c,
                c == 1 ? "" : "s", cJSON_GetObjectItem(first, "op")->valuestring,
                cJSON_GetObjectItem(first, "type")->valuestring,
                cJSON_GetObjectItem(first, "reason")->valuestring);
    }
}

static void print_text(FILE *f, const cJSON *o)
{
    const cJSON *src = cJSON_GetObjectItem(o, "source");
    fprintf(f, "milk inspect: %s\n", cJSON_GetObjectItem(o, "file")->valuestring);
    fprintf(f, "ML Program, specification version %.0f (%s)",
            cJSON_GetObjectItem(o, "specification_version")->valuedouble,
            cJSON_GetObjectItem(o, "target")->valuestring);
    if (!cJSON_IsNull(src))
        fprintf(f, "; converted from ONNX opset %.0f (%.0f nodes) with milk's defaults, no rewrites",
                cJSON_GetObjectItem(src, "opset")->valuedouble,
                cJSON_GetObjectItem(src, "nodes")->valuedouble);
    fputc('\n', f);
    for (const cJSON *m = cJSON_GetObjectItem(o, "metadata")->child; m; m = m->next)
        fprintf(f, "  %s: %s\n", m->string, m->valuestring);
    const cJSON *fns = cJSON_GetObjectItem(o, "functions");
    fprintf(f, "functions:");
    for (const cJSON *fn = fns->child; fn; fn = fn->next)
        fprintf(f, " %s (opset %s, %.0f ops, %.0f consts%s)%s",
                cJSON_GetObjectItem(fn, "name")->valuestring,
                cJSON_GetObjectItem(fn, "opset")->valuestring,
                cJSON_GetObjectItem(fn, "ops")->valuedouble,
                cJSON_GetObjectItem(fn, "consts")->valuedouble,
                cJSON_IsTrue(cJSON_GetObjectItem(fn, "default")) && fns->child->next ? ", default" : "",
                fn->next ? "," : "");
    fputc('\n', f);
    for (const cJSON *fn = fns->child; fn; fn = fn->next) {
        char head[300];
        bool one = !fns->child->next;
        snprintf(head, sizeof head, "%s%s%s", one ? "" : "function ",
                 one ? "" : cJSON_GetObjectItem(fn, "name")->valuestring, one ? "" : ": ");
        char what[320];
        snprintf(what, sizeof what, "%sinputs", head);
        print_io(f, what, cJSON_GetObjectItem(fn, "inputs"));
        snprintf(what, sizeof what, "%soutputs", head);
        print_io(f, what, cJSON_GetObjectItem(fn, "outputs"));
        snprintf(what, sizeof what, "%sstates", head);
        print_io(f, what, cJSON_GetObjectItem(fn, "states"));
    }
    print_histogram(f, "ops", cJSON_GetObjectItem(o, "op_histogram"));
    print_weights(f, o);
    print_largest(f, "largest weights", cJSON_GetObjectItem(o, "largest_weights"));
    print_largest(f, "largest activations", cJSON_GetObjectItem(o, "largest_activations"));
    print_rules(f, cJSON_GetObjectItem(o, "rules"));
    print_fallbacks(f, cJSON_GetObjectItem(o, "neural_engine_fallbacks"));
}

milk_status milk_program_inspect(milk_ctx *ctx, const milk_program *p,
                                 const milk_inspect_params *params, FILE *out, unsigned flags)
{
    milk_inspect_params def = {0};
    if (!params) params = &def;
    cJSON *o = cJSON_CreateObject();
    if (!o) return milk_errorf(ctx, MILK_ERR_NOMEM, "out of memory");
    milk_status s = build(ctx, p, params, o);
    if (s == MILK_OK && (flags & MILK_INSPECT_JSON)) {
        char *text = cJSON_Print(o);
        if (!text) s = milk_errorf(ctx, MILK_ERR_NOMEM, "out of memory");
        else fprintf(out, "%s\n", text);
        cJSON_free(text);
    } else if (s == MILK_OK) {
        print_text(out, o);
    }
    cJSON_Delete(o);
    return s;
}
