/* summary.c: `milk dump --summary` (MILK_PRINT_SUMMARY): what a program's
 * constants take, by dtype, and each compressed weight (the output of a
 * chain of constexpr_* ops that a non-constexpr op reads): how it is
 * compressed, its bytes as stored against its bytes expanded, and the
 * ratio. Sizes are those of the data (sub-byte types packed), not of the
 * files. */
#include "summary.h"
#include "../ops/op.h"

#include <stdio.h>
#include <stdlib.h>

/* Values seen while walking, so that a blob shared by two inputs counts
 * once. */
typedef struct seen {
    const milk_value **v;
    int n, cap;
} seen;

static bool seen_add(seen *s, const milk_value *v)
{
    for (int i = 0; i < s->n; i++)
        if (s->v[i] == v) return false;
    if (s->n == s->cap) {
        int cap = s->cap ? 2 * s->cap : 16;
        const milk_value **nv = realloc(s->v, (size_t)cap * sizeof *nv);
        if (!nv) return false;
        s->v = nv;
        s->cap = cap;
    }
    s->v[s->n++] = v;
    return true;
}

static uint64_t value_bytes(const milk_value *v)
{
    uint64_t n = 0;
    if (v->kind == MILK_VALUE_TENSOR && v->type.dtype != MILK_DTYPE_STRING)
        milk_value_nbytes(v, &n);
    return n;
}

static uint64_t type_bytes(const milk_tensor_type *t)
{
    uint64_t n = 0;
    int64_t c = milk_tensor_type_count(t);
    if (c >= 0) milk_dtype_nbytes(t->dtype, c, &n);
    return n;
}

static void human(char *buf, size_t n, uint64_t bytes)
{
    const char *unit[] = {"B", "KiB", "MiB", "GiB", "TiB"};
    double x = (double)bytes;
    int u = 0;
    while (x >= 1024 && u < 4) {
        x /= 1024;
        u++;
    }
    snprintf(buf, n, u ? "%.1f %s" : "%.0f %s", x, unit[u]);
}

/* "tensor<fp32, [64, 512]>" into buf. */
static void type_str(const milk_tensor_type *t, char *buf, size_t n)
{
    const char *dt = milk_dtype_name(t->dtype);
    int k = snprintf(buf, n, "tensor<%s, [", dt ? dt : "?");
    for (int i = 0; i < t->rank && k >= 0 && (size_t)k < n; i++)
        k += snprintf(buf + k, n - (size_t)k, "%s%lld", i ? ", " : "",
                      (long long)t->dims[i]);
    if (k >= 0 && (size_t)k < n) snprintf(buf + k, n - (size_t)k, "]>");
}

static const milk_tensor_type *arg_type(const milk_op *op, const char *p)
{
    return milk_op_in_type(op, p);
}

/* The label of one constexpr op of a chain ("int4 blocks [1, 32]",
 * "palette 4-bit", "sparse 50.0%"). `feeds_lut`: its output is a LUT. */
static void op_label(const milk_op *op, bool feeds_lut, char *buf, size_t n)
{
    const char *name = milk_ops[op->kind]->name + 10; /* after constexpr_ */
    const milk_tensor_type *t;
    if (strstr(name, "lut_to_")) {
        bool dense = strcmp(name, "lut_to_dense") == 0;
        const milk_tensor_type *lut = arg_type(op, "lut");
        int64_t palettes, luts = 1, vs = 1;
        if (milk_op_arg(op, "shape")) { /* iOS16 */
            palettes = lut->dims[0];
        } else {
            palettes = lut->dims[lut->rank - 2];
            vs = lut->dims[lut->rank - 1];
            for (int i = 0; i < lut->rank - 2; i++) luts *= lut->dims[i];
        }
        int bits = 0;
        while ((INT64_C(1) << bits) < palettes) bits++;
        int k = snprintf(buf, n, "palette %d-bit", bits);
        if (luts > 1 && k >= 0 && (size_t)k < n)
            k += snprintf(buf + k, n - (size_t)k, ", %lld LUTs", (long long)luts);
        if (vs > 1 && k >= 0 && (size_t)k < n)
            k += snprintf(buf + k, n - (size_t)k, ", vectors of %lld", (long long)vs);
        if (!dense && k >= 0 && (size_t)k < n)
            snprintf(buf + k, n - (size_t)k, ", on the nonzero values");
        return;
    }
    if (strcmp(name, "sparse_to_dense") == 0) {
        const milk_tensor_type *nz = arg_type(op, "nonzero_data");
        double total = (double)milk_tensor_type_count(&op->outputs[0]->type);
        snprintf(buf, n, "sparse, %.1f%% zeros",
                 total > 0 ? 100.0 * (1.0 - (double)nz->dims[0] / total) : 0.0);
        return;
    }
    if (strcmp(name, "cast") == 0) {
        snprintf(buf, n, "fp16 stored");
        return;
    }
    bool sparse = strcmp(name, "sparse_blockwise_shift_scale") == 0;
    t = arg_type(op, strcmp(name, "affine_dequantize") == 0 ? "quantized_data"
                     : sparse ? "nonzero_data" : "data");
    const char *dt = milk_dtype_name(t->dtype);
    if (t->dtype == MILK_DTYPE_FP16 || t->dtype == MILK_DTYPE_FP32) {
        snprintf(buf, n, "scaled per channel");
        return;
    }
    const milk_tensor_type *s = arg_type(op, "scale");
    const milk_tensor_type *shape = sparse ? arg_type(op, "data_mask") : t;
    /* per-channel: one axis with a scale per element, the others one */
    int split = 0, whole = 0;
    for (int i = 0; s->rank == shape->rank && i < s->rank; i++) {
        split += s->dims[i] > 1;
        whole += s->dims[i] > 1 && s->dims[i] == shape->dims[i];
    }
    int k;
    if (feeds_lut)
        k = snprintf(buf, n, "%s LUT", dt);
    else if (milk_tensor_type_count(s) == 1)
        k = snprintf(buf, n, "%s per-tensor", dt);
    else if (s->rank == 1 || (split == 1 && whole == 1))
        k = snprintf(buf, n, "%s per-channel", dt);
    else {
        k = snprintf(buf, n, "%s blocks [", dt);
        for (int i = 0; i < s->rank && k >= 0 && (size_t)k < n; i++)
            k += snprintf(buf + k, n - (size_t)k, "%s%lld", i ? ", " : "",
                          (long long)(shape->dims[i] / s->dims[i]));
        if (k >= 0 && (size_t)k < n) k += snprintf(buf + k, n - (size_t)k, "]");
    }
    if (k >= 0 && (size_t)k < n && milk_op_arg(op, "offset"))
        k += snprintf(buf + k, n - (size_t)k, " with offset");
    if (k >= 0 && (size_t)k < n && milk_op_arg(op, "zero_point"))
        snprintf(buf + k, n - (size_t)k, " with zero point");
}

/* Walk the constexpr chain ending at op: stored bytes of its constants
 * into *bytes, labels (producers first) appended to desc. */
static void chain(const milk_op *op, bool feeds_lut, seen *s, uint64_t *bytes,
                  char *desc, size_t n)
{
    for (int a = 0; a < op->n_args; a++)
        for (int j = 0; j < op->args[a].n; j++) {
            const milk_binding *b = &op->args[a].b[j];
            const milk_value *v = b->value;
            if (b->var && b->var->producer) {
                const milk_op *p = b->var->producer;
                if (milk_op_is_constexpr(p))
                    chain(p, strcmp(op->args[a].param, "lut") == 0, s, bytes,
                          desc, n);
                v = p->kind == MILK_OP_const_ ? p->val : NULL;
            }
            if (v && seen_add(s, v)) *bytes += value_bytes(v);
        }
    char label[160];
    op_label(op, feeds_lut, label, sizeof label);
    size_t len = strlen(desc);
    if (strstr(desc, label)) return; /* a sparse pair repeats itself */
    snprintf(desc + len, n - len, "%s%s", len ? " + " : "", label);
}

/* Is v read by an op that is not constexpr (or a block output)? */
static bool used_dense(const milk_function *f, const milk_var *v)
{
    const milk_block *b = f->block;
    for (int i = 0; i < b->n_outputs; i++)
        if (b->outputs[i] == v) return true;
    for (int i = 0; i < b->n_ops; i++) {
        const milk_op *op = b->ops[i];
        if (milk_op_is_constexpr(op)) continue;
        for (int a = 0; a < op->n_args; a++)
            for (int j = 0; j < op->args[a].n; j++)
                if (op->args[a].b[j].var == v) return true;
    }
    return false;
}

milk_status milk_text_summary(milk_ctx *ctx, const milk_program *p, FILE *out)
{
    uint64_t by_dtype[64] = {0}, total = 0, stored = 0, expanded = 0;
    int n_const = 0, n_cx = 0;
    seen all = {0};
    for (int f = 0; f < p->n_functions; f++) {
        const milk_block *b = p->functions[f]->block;
        for (int i = 0; i < b->n_ops; i++) {
            const milk_op *op = b->ops[i];
            for (int a = 0; a < op->n_args; a++)
                for (int j = 0; j < op->args[a].n; j++) {
                    const milk_value *v = op->args[a].b[j].value;
                    if (v && value_bytes(v) && seen_add(&all, v)) {
                        by_dtype[v->type.dtype & 63] += value_bytes(v);
                        total += value_bytes(v);
                    }
                }
            if (op->kind == MILK_OP_const_ && op->val && seen_add(&all, op->val)) {
                n_const++;
                by_dtype[op->val->type.dtype & 63] += value_bytes(op->val);
                total += value_bytes(op->val);
            }
        }
    }
    free(all.v);
    fprintf(out, "constants by dtype (as stored):\n");
    for (int d = 0; d < 64; d++) {
        if (!by_dtype[d]) continue;
        char h[32];
        human(h, sizeof h, by_dtype[d]);
        fprintf(out, "  %-6s %12llu bytes  %10s  %5.1f%%\n",
                milk_dtype_name((milk_dtype)d) ? milk_dtype_name((milk_dtype)d) : "?",
                (unsigned long long)by_dtype[d], h,
                total ? 100.0 * (double)by_dtype[d] / (double)total : 0.0);
    }
    char h[32], h2[32];
    human(h, sizeof h, total);
    fprintf(out, "  total  %12llu bytes  %10s  (%d const ops)\n",
            (unsigned long long)total, h, n_const);
    for (int f = 0; f < p->n_functions; f++) {
        const milk_function *fn = p->functions[f];
        for (int i = 0; i < fn->block->n_ops; i++) {
            const milk_op *op = fn->block->ops[i];
            if (!milk_op_is_constexpr(op)) continue;
            for (int k = 0; k < op->n_outputs; k++) {
                const milk_var *v = op->outputs[k];
                if (!used_dense(fn, v)) continue;
                if (!n_cx++) fprintf(out, "compressed weights:\n");
                seen s = {0};
                uint64_t bytes = 0, dense = type_bytes(&v->type);
                char desc[512] = "", ts[160];
                chain(op, false, &s, &bytes, desc, sizeof desc);
                free(s.v);
                stored += bytes;
                expanded += dense;
                type_str(&v->type, ts, sizeof ts);
                human(h, sizeof h, bytes);
                human(h2, sizeof h2, dense);
                fprintf(out, "  %s %s: %s; %s for %s (%.2fx)\n", ts, v->name,
                        desc, h, h2, bytes ? (double)dense / (double)bytes : 0.0);
            }
        }
    }
    if (n_cx) {
        human(h, sizeof h, stored);
        human(h2, sizeof h2, expanded);
        fprintf(out, "  %d compressed weights: %s for %s (%.2fx); the program's "
                     "constants: %.2fx smaller than dense\n",
                n_cx, h, h2, stored ? (double)expanded / (double)stored : 0.0,
                total ? (double)(total - stored + expanded) / (double)total : 1.0);
    } else {
        fprintf(out, "no compressed weights\n");
    }
    if (ferror(out))
        return milk_errorf(ctx, MILK_ERR_IO, "cannot write the summary");
    return MILK_OK;
}
