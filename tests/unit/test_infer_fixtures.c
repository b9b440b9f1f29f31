/* test_infer_fixtures.c: every program coremltools made in
 * tests/fixtures/coremltools, rebuilt op by op through the public API,
 * with each inferred output type compared against coremltools' own
 * printout of the program (program_fp32.txt, program_fp16.txt), which
 * this test reads: the expected types come from coremltools, not from
 * milk. Weights are zero constants of the shapes stored in the packages
 * (read from their model.mlmodel); their values do not matter for types. */
#include "infer_build.h"

#include <stdlib.h>

#define FIXTURES "tests/fixtures/coremltools/"

/* ---- the printout ------------------------------------------------------ */

/* One statement: its op type and output types. */
typedef struct stmt {
    char op[48];
    int n_out;
    milk_tensor_type out[4];
} stmt;

typedef struct printout {
    milk_target target;
    milk_tensor_type input; /* main's single input */
    int n;
    stmt s[64];
} printout;

/* "(1, 6, 32, fp32)" at p into t; returns the char after ')' or NULL. */
static const char *parse_type(const char *p, milk_tensor_type *t)
{
    if (*p != '(') return NULL;
    p++;
    t->rank = 0;
    while (*p >= '0' && *p <= '9' && t->rank < MILK_MAX_RANK) {
        char *end;
        t->dims[t->rank++] = strtoll(p, &end, 10);
        p = end;
        if (p[0] != ',' || p[1] != ' ') return NULL;
        p += 2;
    }
    char name[16];
    int k = 0;
    while (*p && *p != ')' && k < 15) name[k++] = *p++;
    name[k] = 0;
    t->dtype = milk_dtype_from_name(name);
    return *p == ')' && t->dtype != MILK_DTYPE_INVALID ? p + 1 : NULL;
}

/* A statement line: "%a: (...)(Tensor), %b: (...)(Tensor) = op(...)". */
static bool parse_stmt(const char *line, stmt *s)
{
    const char *eq = strstr(line, ") = ");
    if (!eq) return false;
    s->n_out = 0;
    for (const char *p = strstr(line, ": ("); p && p < eq && s->n_out < 4;
         p = strstr(p, ": (")) {
        p = parse_type(p + 2, &s->out[s->n_out++]);
        if (!p) return false;
    }
    const char *op = eq + 4;
    size_t n = strcspn(op, "(");
    if (n == 0 || n >= sizeof s->op) return false;
    memcpy(s->op, op, n);
    s->op[n] = 0;
    return s->n_out > 0;
}

/* The header "main[CoreML7](%x: (1, 6, 32, fp32)(Tensor)) {". */
static bool parse_header(const char *line, printout *po)
{
    int v;
    if (sscanf(line, "main[CoreML%d]", &v) != 1 || v < 5 || v > 8)
        return false;
    po->target = (milk_target)(v + 1); /* CoreML5 is iOS15 = spec 6 */
    const char *p = strstr(line, ": (");
    return p && parse_type(p + 2, &po->input);
}

static bool read_printout(const char *path, printout *po)
{
    FILE *f = fopen(path, "r");
    char line[8192];
    bool header = false;
    po->n = 0;
    if (!f) return false;
    while (fgets(line, sizeof line, f)) {
        if (!header) {
            header = parse_header(line, po);
            continue;
        }
        if (strstr(line, "(Tensor) = ") && po->n < 64 &&
            !parse_stmt(line, &po->s[po->n++])) {
            fclose(f);
            return false;
        }
    }
    fclose(f);
    return header && po->n > 0;
}

/* ---- rebuilding ------------------------------------------------------- */

typedef struct fx {
    tb t;
    printout po;
    const char *file;
    int next;       /* next statement to compare */
    milk_dtype dt;  /* the program's float dtype */
} fx;

static bool same_type(const milk_tensor_type *a, const milk_tensor_type *b)
{
    if (a->dtype != b->dtype || a->rank != b->rank) return false;
    for (int i = 0; i < a->rank; i++)
        if (a->dims[i] != b->dims[i]) return false;
    return true;
}

/* Compare the op just added with the next statement of the printout. */
static milk_op *step(fx *f, int line, milk_op *op)
{
    check_count++;
    if (!op) {
        check_failures++; /* tb_op_at has printed why */
        f->next++;
        return NULL;
    }
    const stmt *s = f->next < f->po.n ? &f->po.s[f->next] : NULL;
    f->next++;
    bool ok = s && !strcmp(s->op, milk_op_type(op)) &&
              s->n_out == milk_op_output_count(op);
    for (int i = 0; ok && i < s->n_out; i++)
        ok = same_type(milk_var_type(milk_op_output(op, i)), &s->out[i]);
    if (!ok) {
        check_failures++;
        fprintf(stderr, "%s:%d: %s: statement %d (%s) differs from the "
                        "printout\n",
                __FILE__, line, f->file, f->next - 1, milk_op_type(op));
    }
    return op;
}
#define STEP(f, ...) step((f), __LINE__, OP(&(f)->t, __VA_ARGS__))

static milk_var *out0(milk_op *op)
{
    return op ? milk_op_output(op, 0) : NULL;
}

/* Weight-like constant of the program's dtype. */
static milk_var *w(fx *f, const int64_t *dims, int rank)
{
    return tb_const(&f->t, f->dt, dims, rank);
}

static bool fx_begin(fx *f, milk_ctx *ctx, const char *file, milk_dtype dt,
                     milk_var **x)
{
    f->file = file;
    f->next = 0;
    f->dt = dt;
    check_count++;
    if (!read_printout(file, &f->po)) {
        check_failures++;
        fprintf(stderr, "%s: cannot read the printout\n", file);
        return false;
    }
    tb_begin(&f->t, ctx, f->po.target);
    *x = tb_in(&f->t, f->po.input.dtype, f->po.input.dims, f->po.input.rank);
    return true;
}

/* Every statement of the printout was rebuilt. */
static void fx_end(fx *f)
{
    check_count++;
    if (f->next != f->po.n) {
        check_failures++;
        fprintf(stderr, "%s: rebuilt %d statements of %d\n", f->file, f->next,
                f->po.n);
    }
    tb_end(&f->t);
}

/* conv / conv_transpose as coremltools writes them: custom pads, strides,
 * dilations 1, groups 1, and for conv_transpose the full output_shape. */
static milk_var *conv_custom(fx *f, int line, const char *type, milk_var *x,
                             milk_var *wt, milk_var *b, int S,
                             const int32_t *strides, const int32_t *pad,
                             const int32_t *out_shape)
{
    tb *t = &f->t;
    char name[32];
    milk_var *st = NULL, *pd = NULL, *dl = NULL, *os = NULL;
    int32_t ones[3] = {1, 1, 1};
    CHECK_OK(t->ctx, milk_block_add_const_int32s(t->ctx, t->b,
                                                 tb_name(t, name, sizeof name),
                                                 strides, S, &st));
    CHECK_OK(t->ctx, milk_block_add_const_int32s(t->ctx, t->b,
                                                 tb_name(t, name, sizeof name),
                                                 pad, 2 * S, &pd));
    CHECK_OK(t->ctx, milk_block_add_const_int32s(t->ctx, t->b,
                                                 tb_name(t, name, sizeof name),
                                                 ones, S, &dl));
    if (out_shape)
        CHECK_OK(t->ctx, milk_block_add_const_int32s(
                             t->ctx, t->b, tb_name(t, name, sizeof name),
                             out_shape, S + 2, &os));
    milk_var *pt = tb_str(t, "custom"), *g = tb_i32(t, 1);
    milk_op *op = out_shape
        ? OP(t, type, "x", x, "weight", wt, "bias", b, "pad", pd,
             "output_shape", os, "pad_type", pt, "strides", st, "dilations", dl,
             "groups", g)
        : b ? OP(t, type, "x", x, "weight", wt, "bias", b, "strides", st,
                 "pad_type", pt, "pad", pd, "dilations", dl, "groups", g)
            : OP(t, type, "x", x, "weight", wt, "strides", st, "pad_type", pt,
                 "pad", pd, "dilations", dl, "groups", g);
    return out0(step(f, line, op));
}
#define CONV(f, ...) conv_custom((f), __LINE__, __VA_ARGS__)
#define I(...) (const int32_t[]){__VA_ARGS__}

/* ---- the fixtures ----------------------------------------------------- */

/* attention: pre-norm transformer block (iOS17). */
static void attention(milk_ctx *ctx, const char *file, milk_dtype dt)
{
    fx f;
    milk_var *x;
    if (!fx_begin(&f, ctx, file, dt, &x)) return;
    tb *t = &f.t;
    milk_var *ln1 = out0(STEP(&f, "layer_norm", "x", x, "axes",
                              tb_ints(t, 1, -1), "gamma", w(&f, D(32)),
                              "beta", w(&f, D(32)), "epsilon",
                              tb_scalar(t, dt, 1e-5f)));
    milk_var *qkv = out0(STEP(&f, "linear", "x", ln1, "weight",
                              w(&f, D(96, 32)), "bias", w(&f, D(96))));
    milk_op *sp = STEP(&f, "split", "x", qkv, "split_sizes",
                       tb_ints(t, 3, 32, 32, 32), "axis", tb_i32(t, -1));
    milk_var *hd[3];
    for (int i = 0; i < 3; i++)
        hd[i] = out0(STEP(&f, "reshape", "x", sp ? milk_op_output(sp, i) : NULL,
                          "shape", tb_ints(t, 4, 1, 6, 4, 8)));
    milk_var *kt = out0(STEP(&f, "transpose", "x", hd[1], "perm",
                             tb_ints(t, 4, 0, 2, -1, -3)));
    milk_var *q = out0(STEP(&f, "transpose", "x", hd[0], "perm",
                            tb_ints(t, 4, 0, 2, -3, -1)));
    milk_var *s = out0(STEP(&f, "matmul", "x", q, "y", kt, "transpose_x",
                            tb_bool(t, 0), "transpose_y", tb_bool(t, 0)));
    s = out0(STEP(&f, "mul", "x", s, "y", tb_scalar(t, dt, 0.35355f)));
    milk_var *a = out0(STEP(&f, "softmax", "x", s, "axis", tb_i32(t, -1)));
    milk_var *v = out0(STEP(&f, "transpose", "x", hd[2], "perm",
                            tb_ints(t, 4, 0, 2, 1, 3)));
    milk_var *o = out0(STEP(&f, "matmul", "x", a, "y", v, "transpose_x",
                            tb_bool(t, 0), "transpose_y", tb_bool(t, 0)));
    o = out0(STEP(&f, "transpose", "x", o, "perm", tb_ints(t, 4, 0, 2, 1, 3)));
    o = out0(STEP(&f, "reshape", "x", o, "shape", tb_ints(t, 3, 1, 6, 32)));
    o = out0(STEP(&f, "linear", "x", o, "weight", w(&f, D(32, 32)), "bias",
                  w(&f, D(32))));
    milk_var *r = out0(STEP(&f, "add", "x", x, "y", o));
    milk_var *h = out0(STEP(&f, "layer_norm", "x", r, "axes", tb_ints(t, 1, -1),
                            "gamma", w(&f, D(32)), "beta", w(&f, D(32)),
                            "epsilon", tb_scalar(t, dt, 1e-5f)));
    h = out0(STEP(&f, "linear", "x", h, "weight", w(&f, D(64, 32)), "bias",
                  w(&f, D(64))));
    h = out0(STEP(&f, "gelu", "x", h, "mode", tb_str(t, "EXACT")));
    h = out0(STEP(&f, "linear", "x", h, "weight", w(&f, D(32, 64)), "bias",
                  w(&f, D(32))));
    STEP(&f, "add", "x", r, "y", h);
    fx_end(&f);
}

/* conv2d_edge: Conv2d(2, 2, k=(3, 2), p=1, s=2, no bias) (iOS17). */
static void conv2d_edge(milk_ctx *ctx, const char *file, milk_dtype dt)
{
    fx f;
    milk_var *x;
    if (!fx_begin(&f, ctx, file, dt, &x)) return;
    CONV(&f, "conv", x, w(&f, D(2, 2, 3, 2)), NULL, 2, I(2, 2), I(1, 1, 1, 1),
         NULL);
    fx_end(&f);
}

/* convt1d_small: ConvTranspose1d(64, 32, k=7, s=3, p=2) (iOS18). */
static void convt1d_small(milk_ctx *ctx, const char *file, milk_dtype dt)
{
    fx f;
    milk_var *x;
    if (!fx_begin(&f, ctx, file, dt, &x)) return;
    CONV(&f, "conv_transpose", x, w(&f, D(64, 32, 7)), w(&f, D(32)), 1, I(3),
         I(2, 2), I(1, 32, 150));
    fx_end(&f);
}

/* mlp_bn: pool, flatten, linear, batch norm on a rank-3 expansion, linear
 * (iOS15). The fp16 program keeps fp32 I/O, with a cast at each end. */
static void mlp_bn(milk_ctx *ctx, const char *file, milk_dtype dt)
{
    fx f;
    milk_var *x;
    if (!fx_begin(&f, ctx, file, dt, &x)) return;
    tb *t = &f.t;
    if (dt == F16)
        x = out0(STEP(&f, "cast", "x", x, "dtype", tb_str(t, "fp16")));
    milk_var *h = out0(STEP(&f, "avg_pool", "exclude_padding_from_average",
                            tb_bool(t, 0), "x", x, "kernel_sizes",
                            tb_ints(t, 2, 2, 2), "strides", tb_ints(t, 2, 2, 2),
                            "pad_type", tb_str(t, "valid"), "pad",
                            tb_ints(t, 4, 0, 0, 0, 0), "ceil_mode",
                            tb_bool(t, 0)));
    h = out0(STEP(&f, "reshape", "x", h, "shape", tb_ints(t, 2, 1, 192)));
    h = out0(STEP(&f, "linear", "x", h, "weight", w(&f, D(64, 192)), "bias",
                  w(&f, D(64))));
    h = out0(STEP(&f, "expand_dims", "x", h, "axes", tb_ints(t, 1, -1)));
    h = out0(STEP(&f, "batch_norm", "x", h, "mean", w(&f, D(64)), "variance",
                  w(&f, D(64)), "gamma", w(&f, D(64)), "beta", w(&f, D(64)),
                  "epsilon", tb_scalar(t, dt, 1e-5f)));
    h = out0(STEP(&f, "squeeze", "x", h, "axes", tb_ints(t, 1, -1)));
    h = out0(STEP(&f, "relu", "x", h));
    h = out0(STEP(&f, "linear", "x", h, "weight", w(&f, D(10, 64)), "bias",
                  w(&f, D(10))));
    h = out0(STEP(&f, "relu", "x", h));
    if (dt == F16) STEP(&f, "cast", "x", h, "dtype", tb_str(t, "fp32"));
    fx_end(&f);
}

/* resblock: conv, relu, max_pool, residual convs, mean, linear (iOS16). */
static void resblock(milk_ctx *ctx, const char *file, milk_dtype dt)
{
    fx f;
    milk_var *x;
    if (!fx_begin(&f, ctx, file, dt, &x)) return;
    tb *t = &f.t;
    milk_var *h = CONV(&f, "conv", x, w(&f, D(8, 3, 3, 3)), w(&f, D(8)), 2,
                       I(2, 2), I(1, 1, 1, 1), NULL);
    h = out0(STEP(&f, "relu", "x", h));
    milk_var *p = out0(STEP(&f, "max_pool", "x", h, "kernel_sizes",
                            tb_ints(t, 2, 3, 3), "strides", tb_ints(t, 2, 2, 2),
                            "pad_type", tb_str(t, "custom"), "pad",
                            tb_ints(t, 4, 1, 1, 1, 1), "ceil_mode",
                            tb_bool(t, 0)));
    h = CONV(&f, "conv", p, w(&f, D(8, 8, 3, 3)), w(&f, D(8)), 2, I(1, 1),
             I(1, 1, 1, 1), NULL);
    h = out0(STEP(&f, "relu", "x", h));
    h = CONV(&f, "conv", h, w(&f, D(8, 8, 3, 3)), w(&f, D(8)), 2, I(1, 1),
             I(1, 1, 1, 1), NULL);
    h = out0(STEP(&f, "add", "x", p, "y", h));
    h = out0(STEP(&f, "relu", "x", h));
    h = out0(STEP(&f, "reduce_mean", "x", h, "axes", tb_ints(t, 2, 2, 3),
                  "keep_dims", tb_bool(t, 0)));
    STEP(&f, "linear", "x", h, "weight", w(&f, D(10, 8)), "bias", w(&f, D(10)));
    fx_end(&f);
}

/* upsampler_small: four ConvTranspose1d / LeakyReLU / Conv1d stages
 * (iOS18). With with_shape false, conv_transpose gets no output_shape and
 * its formula must give the sizes coremltools recorded. In the fp16
 * program, leaky_relu's alpha stays fp32 (allowed from iOS17 on). */
static void upsampler(milk_ctx *ctx, const char *file, milk_dtype dt,
                      bool with_shape)
{
    static const struct { int c_in, c_out, k, s, p, len; } st[4] = {
        {32, 16, 16, 8, 4, 160},
        {16, 8, 16, 8, 4, 1280},
        {8, 4, 4, 2, 1, 2560},
        {4, 2, 4, 2, 1, 5120},
    };
    fx f;
    milk_var *h;
    if (!fx_begin(&f, ctx, file, dt, &h)) return;
    for (int i = 0; i < 4; i++) {
        int32_t os[3] = {1, st[i].c_out, st[i].len};
        h = CONV(&f, "conv_transpose", h,
                 w(&f, D(st[i].c_in, st[i].c_out, st[i].k)),
                 w(&f, D(st[i].c_out)), 1, I(st[i].s), I(st[i].p, st[i].p),
                 with_shape ? os : NULL);
        h = out0(STEP(&f, "leaky_relu", "x", h, "alpha", tb_f32(&f.t, 0.1f)));
        h = CONV(&f, "conv", h, w(&f, D(st[i].c_out, st[i].c_out, 7)),
                 w(&f, D(st[i].c_out)), 1, I(1), I(3, 3), NULL);
    }
    fx_end(&f);
}

typedef void (*fixture_fn)(milk_ctx *, const char *, milk_dtype);

static void run_both(milk_ctx *ctx, const char *name, fixture_fn fn)
{
    char path[256];
    snprintf(path, sizeof path, FIXTURES "%s/program_fp32.txt", name);
    fn(ctx, path, F32);
    snprintf(path, sizeof path, FIXTURES "%s/program_fp16.txt", name);
    fn(ctx, path, F16);
}

static void upsampler_shape(milk_ctx *c, const char *p, milk_dtype dt)
{
    upsampler(c, p, dt, true);
}

static void upsampler_formula(milk_ctx *c, const char *p, milk_dtype dt)
{
    upsampler(c, p, dt, false);
}

/* The printout parser itself, on a line of known content. */
static void test_parser(void)
{
    stmt s;
    CHECK(parse_stmt("    %a_0: (1, 6, 32, fp16)(Tensor), %a_1: (2, fp32)"
                     "(Tensor) = split(x=%q, axis=-1, name=\"a\")",
                     &s));
    CHECK(!strcmp(s.op, "split"));
    CHECK_EQ_INT(s.n_out, 2);
    CHECK(s.out[0].dtype == F16 && s.out[0].rank == 3 &&
          s.out[0].dims[2] == 32);
    CHECK(s.out[1].dtype == F32 && s.out[1].rank == 1 &&
          s.out[1].dims[0] == 2);
}

int main(void)
{
    milk_ctx *ctx;
    if (milk_ctx_create(&ctx) != MILK_OK) return 1;
    test_parser();
    run_both(ctx, "attention", attention);
    run_both(ctx, "conv2d_edge", conv2d_edge);
    run_both(ctx, "convt1d_small", convt1d_small);
    run_both(ctx, "mlp_bn", mlp_bn);
    run_both(ctx, "resblock", resblock);
    run_both(ctx, "upsampler_small", upsampler_shape);
    run_both(ctx, "upsampler_small", upsampler_formula);
    milk_ctx_free(ctx);
    return check_report("test_infer_fixtures");
}
