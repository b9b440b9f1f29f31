/* print.c: the program as text in the style of Core ML's model.mil (the
 * form coremlc writes into compiled models, "program(1.3)" flavour): one
 * statement per op with its typed outputs, inputs by name in alphabetical
 * order, attributes in brackets. Constants show dtype, shape and where their
 * data lives; their values are printed in full only when small or when
 * MILK_PRINT_VALUES is given. */
#include "../ir/ir.h"
#include "../ops/op.h"
#include "summary.h"

#include <math.h>
#include <stdlib.h>

/* Inline constants up to this many elements are printed with their values. */
#define SMALL_VALUE 16

typedef struct printer {
    milk_ctx *ctx;
    FILE *f;
    unsigned flags;
    milk_status status; /* first failure while printing */
} printer;

static void indent(printer *pr, int depth)
{
    for (int i = 0; i < depth; i++) fputs("    ", pr->f);
}

static void print_type(printer *pr, const milk_tensor_type *t)
{
    const char *dt = milk_dtype_name(t->dtype);
    if (t->rank < 0) {
        fprintf(pr->f, "tensor<%s, *>", dt ? dt : "?");
        return;
    }
    if (t->rank == 0) { /* 1.3 style prints scalar types bare */
        fputs(dt ? dt : "?", pr->f);
        return;
    }
    fprintf(pr->f, "tensor<%s, [", dt ? dt : "?");
    for (int i = 0; i < t->rank; i++) {
        if (i) fputs(", ", pr->f);
        if (t->dims[i] < 0)
            fputc('?', pr->f);
        else
            fprintf(pr->f, "%lld", (long long)t->dims[i]);
    }
    fputs("]>", pr->f);
}

/* Shortest decimal that reads back as the same float (or double). */
static void print_float(printer *pr, double x, bool is_double)
{
    if (isnan(x)) { fputs("nan", pr->f); return; }
    if (isinf(x)) { fputs(x < 0 ? "-inf" : "inf", pr->f); return; }
    char buf[40];
    for (int prec = 1; prec <= 17; prec++) {
        snprintf(buf, sizeof buf, "%.*g", prec, x);
        double back = strtod(buf, NULL);
        if (is_double ? back == x : (float)back == (float)x) break;
    }
    fputs(buf, pr->f);
    if (!strpbrk(buf, ".en")) fputs(".0", pr->f);
}

static void print_quoted(printer *pr, const char *s)
{
    fputc('"', pr->f);
    for (; *s; s++) {
        if (*s == '"' || *s == '\\') fputc('\\', pr->f);
        if ((unsigned char)*s < 0x20)
            fprintf(pr->f, "\\x%02x", (unsigned char)*s);
        else
            fputc(*s, pr->f);
    }
    fputc('"', pr->f);
}

static void print_element(printer *pr, const milk_value *v, int64_t i)
{
    milk_dtype d = v->type.dtype;
    if (d == MILK_DTYPE_STRING) {
        const char *s = milk_value_get_str(v, i);
        print_quoted(pr, s ? s : "");
        return;
    }
    milk_status s;
    if (d == MILK_DTYPE_FP16 || d == MILK_DTYPE_FP32 || d == MILK_DTYPE_FP64 ||
        d == MILK_DTYPE_BF16) {
        double x = 0;
        s = milk_value_get_f64(pr->ctx, v, i, &x);
        print_float(pr, x, d == MILK_DTYPE_FP64);
    } else {
        int64_t x = 0;
        s = milk_value_get_i64(pr->ctx, v, i, &x);
        if (d == MILK_DTYPE_BOOL)
            fputs(x ? "true" : "false", pr->f);
        else
            fprintf(pr->f, "%lld", (long long)x);
    }
    if (s != MILK_OK && pr->status == MILK_OK) pr->status = s;
}

/* "(path = string("..."), offset = uint64(N))" for file-backed data. */
static void print_location(printer *pr, const milk_data *d)
{
    const char *base = strrchr(d->path, '/');
    base = base ? base + 1 : d->path;
    if (d->record) {
        fputs("BLOBFILE(path = string(", pr->f);
        fprintf(pr->f, "\"@model_path/weights/%s\"), offset = uint64(%llu))",
                base, (unsigned long long)d->record);
        return;
    }
    fputs("FILE(path = string(", pr->f);
    print_quoted(pr, d->path);
    fprintf(pr->f, "), offset = uint64(%llu), stored = string(\"%s\"))",
            (unsigned long long)d->offset, milk_dtype_name(d->stored));
}

static milk_status hash_bytes(void *user, const void *bytes, size_t n)
{
    uint64_t *h = user;
    const unsigned char *p = bytes;
    for (size_t i = 0; i < n; i++) *h = (*h ^ p[i]) * 1099511628211ull; /* FNV-1a */
    return MILK_OK;
}

/* HASH(...) of a constant's elements in its declared dtype. */
static void print_hash(printer *pr, const milk_value *v)
{
    uint64_t h = 1469598103934665603ull;
    milk_status s = milk_value_stream(pr->ctx, v, (size_t)1 << 20, hash_bytes, &h);
    if (s != MILK_OK && pr->status == MILK_OK) pr->status = s;
    fprintf(pr->f, "HASH(%016llx)", (unsigned long long)h);
}

static void print_tensor_value(printer *pr, const milk_value *v)
{
    print_type(pr, &v->type);
    fputc('(', pr->f);
    int64_t n = milk_tensor_type_count(&v->type);
    bool large = v->data.kind == MILK_DATA_FILE || n > SMALL_VALUE;
    if (large && (pr->flags & MILK_PRINT_HASH) && v->type.dtype != MILK_DTYPE_STRING &&
        !(pr->flags & MILK_PRINT_VALUES)) {
        print_hash(pr, v);
    } else if (v->data.kind == MILK_DATA_FILE && !(pr->flags & MILK_PRINT_VALUES)) {
        print_location(pr, &v->data);
    } else if (n > SMALL_VALUE && !(pr->flags & MILK_PRINT_VALUES)) {
        fprintf(pr->f, "%s", v->data.kind == MILK_DATA_BORROWED
                                  ? "MEMORY" : "INLINE");
    } else {
        if (v->type.rank > 0) fputc('[', pr->f);
        for (int64_t i = 0; i < n; i++) {
            if (i) fputs(", ", pr->f);
            print_element(pr, v, i);
        }
        if (v->type.rank > 0) fputc(']', pr->f);
    }
    fputc(')', pr->f);
}

static void print_value(printer *pr, const milk_value *v);

/* A dict entry: scalars print bare ({"k", "v"}), as model.mil does. */
static void print_entry(printer *pr, const milk_value *v)
{
    if (v->kind == MILK_VALUE_TENSOR && v->type.rank == 0 &&
        v->data.kind != MILK_DATA_FILE)
        print_element(pr, v, 0);
    else
        print_value(pr, v);
}

static void print_value(printer *pr, const milk_value *v)
{
    switch (v->kind) {
    case MILK_VALUE_TENSOR:
        print_tensor_value(pr, v);
        return;
    case MILK_VALUE_DICT:
        fputs("dict<", pr->f);
        print_type(pr, &v->elem[0]);
        fputs(", ", pr->f);
        print_type(pr, &v->elem[1]);
        fputs(">({", pr->f);
        for (int i = 0; i < v->n; i++) {
            fputs(i ? ", {" : "{", pr->f);
            print_entry(pr, v->items[2 * i]);
            fputs(", ", pr->f);
            print_entry(pr, v->items[2 * i + 1]);
            fputc('}', pr->f);
        }
        fputs("})", pr->f);
        return;
    case MILK_VALUE_TUPLE:
    case MILK_VALUE_LIST:
        fputs(v->kind == MILK_VALUE_LIST ? "list(" : "tuple(", pr->f);
        for (int i = 0; i < v->n; i++) {
            if (i) fputs(", ", pr->f);
            print_value(pr, v->items[i]);
        }
        fputc(')', pr->f);
        return;
    }
}

static int cmp_args(const void *a, const void *b)
{
    return strcmp((*(const milk_arg *const *)a)->param,
                  (*(const milk_arg *const *)b)->param);
}

static void print_binding(printer *pr, const milk_binding *b)
{
    if (b->var)
        fputs(b->var->name, pr->f);
    else
        print_value(pr, b->value);
}

static void print_args(printer *pr, const milk_op *op)
{
    const milk_arg **sorted = malloc((size_t)(op->n_args + 1) * sizeof *sorted);
    if (!sorted) {
        pr->status = milk_errorf(pr->ctx, MILK_ERR_NOMEM, "out of memory");
        return;
    }
    for (int i = 0; i < op->n_args; i++) sorted[i] = &op->args[i];
    qsort(sorted, (size_t)op->n_args, sizeof *sorted, cmp_args);
    for (int i = 0; i < op->n_args; i++) {
        const milk_arg *a = sorted[i];
        bool variadic = a->n > 1 || (milk_op_param_info(op->kind, a->param) &&
                                     (milk_op_param_info(op->kind, a->param)->flags &
                                      MILK_P_VARIADIC));
        fprintf(pr->f, "%s%s = %s", i ? ", " : "", a->param, variadic ? "(" : "");
        for (int j = 0; j < a->n; j++) {
            if (j) fputs(", ", pr->f);
            print_binding(pr, &a->b[j]);
        }
        if (variadic) fputc(')', pr->f);
    }
    free(sorted);
}

static void print_attrs(printer *pr, const milk_op *op)
{
    fputs("[name = string(", pr->f);
    print_quoted(pr, op->name);
    fputc(')', pr->f);
    if (op->val) {
        fputs(", val = ", pr->f);
        print_value(pr, op->val);
    }
    for (int i = 0; i < op->attrs.n; i++) {
        fprintf(pr->f, ", %s = ", op->attrs.a[i].key);
        print_value(pr, op->attrs.a[i].val);
    }
    fputc(']', pr->f);
}

static void print_block(printer *pr, const milk_block *b, int depth);

static void print_op(printer *pr, const milk_op *op, int depth)
{
    indent(pr, depth);
    for (int i = 0; i < op->n_outputs; i++) {
        if (i) fputs(", ", pr->f);
        print_type(pr, &op->outputs[i]->type);
        fprintf(pr->f, " %s", op->outputs[i]->name);
    }
    /* an op without outputs (write_state) is a bare call */
    fprintf(pr->f, "%s%s(", op->n_outputs ? " = " : "", milk_ops[op->kind]->name);
    print_args(pr, op);
    fputc(')', pr->f);
    print_attrs(pr, op);
    if (op->n_blocks) {
        fputs(" {\n", pr->f);
        for (int i = 0; i < op->n_blocks; i++) print_block(pr, op->blocks[i], depth + 1);
        indent(pr, depth);
        fputc('}', pr->f);
    }
    fputs(";\n", pr->f);
}

static void print_outputs(printer *pr, const milk_block *b)
{
    fputs(" -> (", pr->f);
    for (int i = 0; i < b->n_outputs; i++)
        fprintf(pr->f, "%s%s", i ? ", " : "", b->outputs[i]->name);
    fputs(");\n", pr->f);
}

/* A nested block: its inputs, ops and outputs. */
static void print_block(printer *pr, const milk_block *b, int depth)
{
    indent(pr, depth);
    fputs("block(", pr->f);
    for (int i = 0; i < b->n_inputs; i++) {
        if (i) fputs(", ", pr->f);
        print_type(pr, &b->inputs[i]->type);
        fprintf(pr->f, " %s", b->inputs[i]->name);
    }
    fputs(") {\n", pr->f);
    for (int i = 0; i < b->n_ops; i++) print_op(pr, b->ops[i], depth + 1);
    indent(pr, depth);
    fputc('}', pr->f);
    print_outputs(pr, b);
}

static void print_function(printer *pr, const milk_function *fn)
{
    fprintf(pr->f, "    func %s<%s>(", fn->name, milk_target_name(fn->opset));
    for (int i = 0; i < fn->n_inputs; i++) {
        if (i) fputs(", ", pr->f);
        if (fn->inputs[i]->is_state) fputs("state<", pr->f);
        print_type(pr, &fn->inputs[i]->type);
        if (fn->inputs[i]->is_state) fputc('>', pr->f);
        fprintf(pr->f, " %s", fn->inputs[i]->name);
    }
    fputs(") {\n", pr->f);
    for (int i = 0; i < fn->block->n_ops; i++) print_op(pr, fn->block->ops[i], 3);
    fputs("        }", pr->f);
    print_outputs(pr, fn->block);
}

milk_status milk_program_print(milk_ctx *ctx, const milk_program *p,
                               FILE *out, unsigned flags)
{
    if (flags & MILK_PRINT_SUMMARY) return milk_text_summary(ctx, p, out);
    printer pr = {ctx, out, flags, MILK_OK};
    fputs("program(1.3)\n", out);
    for (int i = 0; i < p->attrs.n; i++) {
        fprintf(out, "[%s = ", p->attrs.a[i].key);
        print_value(&pr, p->attrs.a[i].val);
        fputs("]\n", out);
    }
    fputs("{\n", out);
    for (int i = 0; i < p->n_functions; i++) print_function(&pr, p->functions[i]);
    fputs("}\n", out);
    if (pr.status == MILK_OK && ferror(out))
        pr.status = milk_errorf(ctx, MILK_ERR_IO, "cannot write the program text");
    return pr.status;
}
