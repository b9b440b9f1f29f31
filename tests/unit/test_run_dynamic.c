/* test_run_dynamic.c: the interpreter on programs with flexible shapes:
 * inputs with unknown dims (any size >= 1, within the model description's
 * shape ranges or enumerated shapes), types inferred again in each run,
 * sizes computed from run-time values (shape -> gather -> concat ->
 * reshape, a slice with a run-time begin), and the errors of each. The
 * expected values are worked out by hand in the comments. */
#include "milk.h"
#include "check.h"
#include "ir/ir.h"

#define U MILK_DIM_UNKNOWN

static milk_program *new_program(milk_ctx *ctx, milk_function **f)
{
    milk_program *p;
    CHECK_OK(ctx, milk_program_create(ctx, MILK_TARGET_IOS17, &p));
    CHECK_OK(ctx, milk_program_add_function(ctx, p, "main", f));
    return p;
}

static milk_var *op1(milk_ctx *ctx, milk_block *b, const char *type,
                     const char *name, const milk_input *in, int n)
{
    milk_op *op = NULL;
    CHECK_OK(ctx, milk_block_add_op(ctx, b, type, name, in, n, &op));
    return op ? milk_op_output(op, 0) : NULL;
}

static milk_var *ints(milk_ctx *ctx, milk_block *b, const char *name,
                      const int32_t *v, int n)
{
    milk_var *c = NULL;
    CHECK_OK(ctx, milk_block_add_const_int32s(ctx, b, name, v, n, &c));
    return c;
}

/* x: fp32 [?, 3]; s = relu(x); y = reduce_sum(s, axes [0]) -> [3];
 * z = mul(x, x) -> [?, 3]. Outputs y, z. */
static milk_program *build_rows(milk_ctx *ctx)
{
    milk_function *f;
    milk_program *p = new_program(ctx, &f);
    milk_block *b = milk_function_block(f);
    milk_tensor_type t = {MILK_DTYPE_FP32, 2, {U, 3}};
    milk_var *x, *keep;
    CHECK_OK(ctx, milk_function_add_input(ctx, f, "x", &t, &x));
    milk_input rin[] = {{"x", x}};
    milk_var *s = op1(ctx, b, "relu", "s", rin, 1);
    int32_t ax = 0;
    milk_var *axes = ints(ctx, b, "axes", &ax, 1);
    CHECK_OK(ctx, milk_block_add_const_bool(ctx, b, "kd", 0, &keep));
    milk_input sin[] = {{"x", s}, {"axes", axes}, {"keep_dims", keep}};
    milk_var *y = op1(ctx, b, "reduce_sum", "y", sin, 3);
    milk_input min[] = {{"x", x}, {"y", x}};
    milk_var *z = op1(ctx, b, "mul", "z", min, 2);
    CHECK_OK(ctx, milk_block_add_output(ctx, b, y));
    CHECK_OK(ctx, milk_block_add_output(ctx, b, z));
    return p;
}

static void test_rows_any_count(milk_ctx *ctx)
{
    milk_program *p = build_rows(ctx);
    milk_runner *r;
    CHECK_OK(ctx, milk_runner_create(ctx, p, NULL, &r));
    /* two rows: y = relu column sums = [1+0, 0+5, 3+0] */
    milk_tensor_type t2 = {MILK_DTYPE_FP32, 2, {2, 3}};
    float x2[6] = {1, -2, 3, -4, 5, -6};
    CHECK_OK(ctx, milk_runner_set_input(ctx, r, "x", &t2, x2));
    CHECK_OK(ctx, milk_runner_run(ctx, r));
    float y[3], z[12];
    CHECK_OK(ctx, milk_runner_read(ctx, r, "y", MILK_DTYPE_FP32, y, sizeof y));
    CHECK(y[0] == 1 && y[1] == 5 && y[2] == 3);
    const milk_tensor_type *zt = milk_runner_type(r, "z");
    CHECK(zt && zt->rank == 2 && zt->dims[0] == 2 && zt->dims[1] == 3);
    /* s is an intermediate: freed after its last use, as in static runs */
    CHECK(milk_runner_type(r, "s") == NULL);

    /* the same runner, four rows: y = [1+0+7+0, 0+5+0+0, 3+0+9+0] */
    milk_tensor_type t4 = {MILK_DTYPE_FP32, 2, {4, 3}};
    float x4[12] = {1, -2, 3, -4, 5, -6, 7, -8, 9, -1, -1, -1};
    CHECK_OK(ctx, milk_runner_set_input(ctx, r, "x", &t4, x4));
    CHECK_OK(ctx, milk_runner_run(ctx, r));
    CHECK_OK(ctx, milk_runner_read(ctx, r, "y", MILK_DTYPE_FP32, y, sizeof y));
    CHECK(y[0] == 8 && y[1] == 5 && y[2] == 12);
    zt = milk_runner_type(r, "z");
    CHECK(zt && zt->dims[0] == 4 && zt->dims[1] == 3);
    CHECK_OK(ctx, milk_runner_read(ctx, r, "z", MILK_DTYPE_FP32, z, sizeof z));
    CHECK(z[6] == 49 && z[11] == 1);
    /* the input's type is the run's shape, with the declared dtype */
    const milk_tensor_type *xt = milk_runner_type(r, "x");
    CHECK(xt && xt->dtype == MILK_DTYPE_FP32 && xt->dims[0] == 4);

    /* shapes that do not fit [?, 3]: rank, known dim, an empty dim */
    milk_tensor_type bad[] = {{MILK_DTYPE_FP32, 1, {3}},
                              {MILK_DTYPE_FP32, 2, {2, 4}},
                              {MILK_DTYPE_FP32, 2, {0, 3}}};
    for (int i = 0; i < 3; i++) {
        CHECK(milk_runner_set_input(ctx, r, "x", &bad[i], x4) == MILK_ERR_INVALID_ARG);
        CHECK_STR_CONTAINS(milk_ctx_error(ctx), "expected tensor<fp32, [?, 3]> (? is any size >= 1)");
        CHECK_STR_CONTAINS(milk_ctx_error(ctx), "main(tensor<fp32, [?, 3]> x)");
    }
    milk_runner_free(r);

    /* keep: the intermediate survives the run with the run's type */
    milk_run_params rp = {0};
    rp.keep_all = 1;
    CHECK_OK(ctx, milk_runner_create(ctx, p, &rp, &r));
    CHECK_OK(ctx, milk_runner_set_input(ctx, r, "x", &t2, x2));
    CHECK_OK(ctx, milk_runner_run(ctx, r));
    const milk_tensor_type *st = milk_runner_type(r, "s");
    CHECK(st && st->dims[0] == 2 && st->dims[1] == 3);
    milk_runner_free(r);
    milk_program_free(p);
}

/* The description's flexibility, recorded in the IR as the package
 * reader records it. */
static void describe(milk_program *p, int n_ranges, int64_t (*ranges)[2],
                     int n_enum, int64_t *shapes)
{
    static milk_feature in, out;
    memset(&in, 0, sizeof in);
    memset(&out, 0, sizeof out);
    in.name = "x";
    in.rank = 2;
    in.shape[0] = 1;
    in.shape[1] = 3;
    in.array_dtype = 65568; /* FLOAT32 */
    in.n_ranges = n_ranges;
    in.ranges = ranges;
    in.n_enum = n_enum;
    in.enum_shapes = shapes;
    out.name = "y";
    out.array_dtype = 65568;
    p->has_features = true;
    p->in_features = &in;
    p->n_in_features = 1;
    p->out_features = &out;
    p->n_out_features = 1;
}

static void test_description_limits(milk_ctx *ctx)
{
    milk_program *p = build_rows(ctx);
    int64_t ranges[2][2] = {{1, 3}, {3, 3}};
    int64_t shapes[4] = {1, 3, 4, 3};
    float x[15] = {0};
    milk_tensor_type ok = {MILK_DTYPE_FP32, 2, {3, 3}};
    milk_tensor_type big = {MILK_DTYPE_FP32, 2, {5, 3}};
    milk_runner *r;

    describe(p, 2, ranges, 0, NULL);
    CHECK_OK(ctx, milk_runner_create(ctx, p, NULL, &r));
    CHECK_OK(ctx, milk_runner_set_input(ctx, r, "x", &ok, x));
    CHECK(milk_runner_set_input(ctx, r, "x", &big, x) == MILK_ERR_INVALID_ARG);
    CHECK_STR_CONTAINS(milk_ctx_error(ctx),
                       "input 'x' is tensor<fp32, [5, 3]>, outside the model "
                       "description's shape range [1..3, 3]");
    milk_runner_free(r);

    /* unbounded upper bound: any size from the lower one */
    ranges[0][0] = 2;
    ranges[0][1] = -1;
    CHECK_OK(ctx, milk_runner_create(ctx, p, NULL, &r));
    CHECK_OK(ctx, milk_runner_set_input(ctx, r, "x", &big, x));
    milk_tensor_type one = {MILK_DTYPE_FP32, 2, {1, 3}};
    CHECK(milk_runner_set_input(ctx, r, "x", &one, x) == MILK_ERR_INVALID_ARG);
    CHECK_STR_CONTAINS(milk_ctx_error(ctx), "shape range [2.., 3]");
    milk_runner_free(r);

    describe(p, 0, NULL, 2, shapes);
    CHECK_OK(ctx, milk_runner_create(ctx, p, NULL, &r));
    milk_tensor_type four = {MILK_DTYPE_FP32, 2, {4, 3}};
    CHECK_OK(ctx, milk_runner_set_input(ctx, r, "x", &four, x));
    CHECK_OK(ctx, milk_runner_run(ctx, r));
    CHECK(milk_runner_set_input(ctx, r, "x", &ok, x) == MILK_ERR_INVALID_ARG);
    CHECK_STR_CONTAINS(milk_ctx_error(ctx),
                       "input 'x' is tensor<fp32, [3, 3]>, not one of the "
                       "model description's enumerated shapes [1, 3], [4, 3]");
    milk_runner_free(r);
    p->has_features = false;
    milk_program_free(p);
}

/* x: fp32 [?, 6] (or [2, 6]: a static input, sizes from values only);
 * n = gather(shape(x), [0]); t = concat(n, [2, 3]); r = reshape(x, t):
 * [N, 2, 3]. */
static milk_program *build_reshape(milk_ctx *ctx, int64_t rows)
{
    milk_function *f;
    milk_program *p = new_program(ctx, &f);
    milk_block *b = milk_function_block(f);
    milk_tensor_type t = {MILK_DTYPE_FP32, 2, {rows, 6}};
    milk_var *x, *axis;
    CHECK_OK(ctx, milk_function_add_input(ctx, f, "x", &t, &x));
    milk_input sin[] = {{"x", x}};
    milk_var *s = op1(ctx, b, "shape", "s", sin, 1);
    int32_t zero = 0, rest[2] = {2, 3};
    milk_var *idx = ints(ctx, b, "idx", &zero, 1);
    milk_input gin[] = {{"x", s}, {"indices", idx}};
    milk_var *n = op1(ctx, b, "gather", "n", gin, 2);
    milk_var *tail = ints(ctx, b, "tail", rest, 2);
    CHECK_OK(ctx, milk_block_add_const_int32(ctx, b, "ax", 0, &axis));
    milk_input cin[] = {{"values", n}, {"values", tail}, {"axis", axis}};
    milk_var *target = op1(ctx, b, "concat", "target", cin, 3);
    milk_input rin[] = {{"x", x}, {"shape", target}};
    milk_var *out = op1(ctx, b, "reshape", "r", rin, 2);
    CHECK(milk_var_type(out)->rank == 3 && milk_var_type(out)->dims[0] == U);
    CHECK_OK(ctx, milk_block_add_output(ctx, b, out));
    return p;
}

static void test_runtime_reshape(milk_ctx *ctx)
{
    for (int64_t rows = U; rows <= 2; rows += 3) {
        milk_program *p = build_reshape(ctx, rows);
        milk_runner *r;
        CHECK_OK(ctx, milk_runner_create(ctx, p, NULL, &r));
        float x[12];
        for (int i = 0; i < 12; i++) x[i] = (float)i;
        milk_tensor_type t = {MILK_DTYPE_FP32, 2, {2, 6}};
        CHECK_OK(ctx, milk_runner_set_input(ctx, r, "x", &t, x));
        CHECK_OK(ctx, milk_runner_run(ctx, r));
        const milk_tensor_type *rt = milk_runner_type(r, "r");
        CHECK(rt && rt->rank == 3 && rt->dims[0] == 2 && rt->dims[1] == 2 &&
              rt->dims[2] == 3);
        float y[12] = {0};
        CHECK_OK(ctx, milk_runner_read(ctx, r, "r", MILK_DTYPE_FP32, y, sizeof y));
        CHECK(y[0] == 0 && y[7] == 7 && y[11] == 11);
        milk_runner_free(r);
        milk_program_free(p);
    }
}

/* x: int32 [?]; e = shape(x); b = sub(e, [3]); y = x[b:e] (the last three
 * elements); f = fill(shape = sub(e, [6]), 1.0), a negative size for
 * fewer than 7 elements. */
static milk_program *build_slices(milk_ctx *ctx, bool with_fill)
{
    milk_function *f;
    milk_program *p = new_program(ctx, &f);
    milk_block *b = milk_function_block(f);
    milk_tensor_type t = {MILK_DTYPE_INT32, 1, {U}};
    milk_var *x;
    CHECK_OK(ctx, milk_function_add_input(ctx, f, "x", &t, &x));
    milk_input sin[] = {{"x", x}};
    milk_var *e = op1(ctx, b, "shape", "e", sin, 1);
    int32_t three = 3, six = 6;
    milk_input bin[] = {{"x", e}, {"y", ints(ctx, b, "three", &three, 1)}};
    milk_var *beg = op1(ctx, b, "sub", "beg", bin, 2);
    milk_input lin[] = {{"x", x}, {"begin", beg}, {"end", e}};
    milk_var *y = op1(ctx, b, "slice_by_index", "y", lin, 3);
    CHECK_OK(ctx, milk_block_add_output(ctx, b, y));
    if (!with_fill) return p;
    milk_input nin[] = {{"x", e}, {"y", ints(ctx, b, "six", &six, 1)}};
    milk_var *n = op1(ctx, b, "sub", "n", nin, 2);
    milk_input fin[] = {{"shape", n}};
    milk_var *fl = op1(ctx, b, "fill", "f", fin, 1);
    CHECK_OK(ctx, milk_block_add_output(ctx, b, fl));
    return p;
}

static void test_runtime_slice_and_errors(milk_ctx *ctx)
{
    milk_program *p = build_slices(ctx, false);
    milk_runner *r;
    CHECK_OK(ctx, milk_runner_create(ctx, p, NULL, &r));
    int32_t x[8] = {10, 11, 12, 13, 14, 15, 16, 17}, y[3];
    milk_tensor_type t5 = {MILK_DTYPE_INT32, 1, {5}}, t8 = {MILK_DTYPE_INT32, 1, {8}};
    CHECK_OK(ctx, milk_runner_set_input(ctx, r, "x", &t5, x));
    CHECK_OK(ctx, milk_runner_run(ctx, r));
    CHECK_OK(ctx, milk_runner_read(ctx, r, "y", MILK_DTYPE_INT32, y, sizeof y));
    CHECK(y[0] == 12 && y[1] == 13 && y[2] == 14);
    CHECK_OK(ctx, milk_runner_set_input(ctx, r, "x", &t8, x));
    CHECK_OK(ctx, milk_runner_run(ctx, r));
    CHECK_OK(ctx, milk_runner_read(ctx, r, "y", MILK_DTYPE_INT32, y, sizeof y));
    CHECK(y[0] == 15 && y[1] == 16 && y[2] == 17);
    /* two elements: begin -1 (counts from the end), end 2: x[-1:2] is
     * x[1:2], one element */
    milk_tensor_type t2 = {MILK_DTYPE_INT32, 1, {2}};
    CHECK_OK(ctx, milk_runner_set_input(ctx, r, "x", &t2, x));
    CHECK_OK(ctx, milk_runner_run(ctx, r));
    const milk_tensor_type *yt = milk_runner_type(r, "y");
    CHECK(yt && yt->dims[0] == 1);
    CHECK_OK(ctx, milk_runner_read(ctx, r, "y", MILK_DTYPE_INT32, y, sizeof y));
    CHECK(y[0] == 11);
    milk_runner_free(r);
    milk_program_free(p);

    /* fill of 8 - 6 = 2 ones works; of 5 - 6 = -1 is an error naming the
     * op, the input and the run's value */
    p = build_slices(ctx, true);
    CHECK_OK(ctx, milk_runner_create(ctx, p, NULL, &r));
    CHECK_OK(ctx, milk_runner_set_input(ctx, r, "x", &t8, x));
    CHECK_OK(ctx, milk_runner_run(ctx, r));
    const milk_tensor_type *ft = milk_runner_type(r, "f");
    CHECK(ft && ft->rank == 1 && ft->dims[0] == 2);
    CHECK_OK(ctx, milk_runner_set_input(ctx, r, "x", &t5, x));
    CHECK(milk_runner_run(ctx, r) == MILK_ERR_TYPE);
    CHECK_STR_CONTAINS(milk_ctx_error(ctx), "op 'f' (fill): input 'shape': entry 0 is -1");
    CHECK_STR_CONTAINS(milk_ctx_error(ctx), "in this run: shape is tensor<int32, [1]> = [-1]");
    /* the runner stays usable */
    CHECK_OK(ctx, milk_runner_set_input(ctx, r, "x", &t8, x));
    CHECK_OK(ctx, milk_runner_run(ctx, r));
    milk_runner_free(r);
    milk_program_free(p);
}

/* x: fp32 [?, 3] + y: fp32 [2, 3] declared, but x given as [4, 3]: the
 * broadcast fails in the run, naming the op and the run's shapes. */
static void test_run_shapes_must_agree(milk_ctx *ctx)
{
    milk_function *f;
    milk_program *p = new_program(ctx, &f);
    milk_block *b = milk_function_block(f);
    milk_tensor_type tx = {MILK_DTYPE_FP32, 2, {U, 3}}, ty = {MILK_DTYPE_FP32, 2, {2, 3}};
    milk_var *x, *y;
    CHECK_OK(ctx, milk_function_add_input(ctx, f, "x", &tx, &x));
    CHECK_OK(ctx, milk_function_add_input(ctx, f, "y", &ty, &y));
    milk_input ain[] = {{"x", x}, {"y", y}};
    CHECK_OK(ctx, milk_block_add_output(ctx, b, op1(ctx, b, "add", "s", ain, 2)));
    milk_runner *r;
    CHECK_OK(ctx, milk_runner_create(ctx, p, NULL, &r));
    float v[12] = {0};
    milk_tensor_type t4 = {MILK_DTYPE_FP32, 2, {4, 3}};
    CHECK_OK(ctx, milk_runner_set_input(ctx, r, "x", &t4, v));
    CHECK_OK(ctx, milk_runner_set_input(ctx, r, "y", &ty, v));
    CHECK(milk_runner_run(ctx, r) == MILK_ERR_TYPE);
    CHECK_STR_CONTAINS(milk_ctx_error(ctx), "op 's' (add): shapes do not broadcast");
    CHECK_STR_CONTAINS(milk_ctx_error(ctx), "x is tensor<fp32, [4, 3]>, y is tensor<fp32, [2, 3]>");
    /* [1, 3] broadcasts: s is [2, 3] */
    milk_tensor_type t1 = {MILK_DTYPE_FP32, 2, {1, 3}};
    CHECK_OK(ctx, milk_runner_set_input(ctx, r, "x", &t1, v));
    CHECK_OK(ctx, milk_runner_run(ctx, r));
    const milk_tensor_type *st = milk_runner_type(r, "s");
    CHECK(st && st->dims[0] == 2 && st->dims[1] == 3);
    milk_runner_free(r);
    milk_program_free(p);
}

/* fp16 storage rounding and overflow counting are those of static runs. */
static void test_fp16_rounding(milk_ctx *ctx)
{
    milk_function *f;
    milk_program *p = new_program(ctx, &f);
    milk_block *b = milk_function_block(f);
    milk_tensor_type t = {MILK_DTYPE_FP16, 1, {U}};
    milk_var *x;
    CHECK_OK(ctx, milk_function_add_input(ctx, f, "x", &t, &x));
    milk_input min[] = {{"x", x}, {"y", x}};
    CHECK_OK(ctx, milk_block_add_output(ctx, b, op1(ctx, b, "mul", "z", min, 2)));
    milk_runner *r;
    CHECK_OK(ctx, milk_runner_create(ctx, p, NULL, &r));
    milk_tensor_type g = {MILK_DTYPE_FP32, 1, {3}};
    float xv[3] = {300, 0.1f, 2};
    CHECK_OK(ctx, milk_runner_set_input(ctx, r, "x", &g, xv));
    CHECK_OK(ctx, milk_runner_run(ctx, r));
    float z[3];
    CHECK_OK(ctx, milk_runner_read(ctx, r, "z", MILK_DTYPE_FP32, z, sizeof z));
    /* 300^2 = 90000 > 65504: inf; fp16(0.1)^2 = 0.0099945068... rounds to
     * fp16 0.0099945068359375 (exact: 0.0999755859375^2 = 0.00999511778...,
     * nearest fp16 is 0.0099945068359375); 2^2 = 4 */
    CHECK(isinf(z[0]) && z[2] == 4);
    CHECK(fabsf(z[1] - 0.0099945068359375f) < 1e-7f);
    CHECK_EQ_INT(milk_runner_op_stats(r, 0)->n_overflow, 1);
    CHECK_EQ_INT(milk_runner_op_stats(r, 0)->n_inf, 1);
    milk_runner_free(r);
    milk_program_free(p);
}

int main(void)
{
    milk_ctx *ctx;
    milk_ctx_create(&ctx);
    test_rows_any_count(ctx);
    test_description_limits(ctx);
    test_runtime_reshape(ctx);
    test_runtime_slice_and_errors(ctx);
    test_run_shapes_must_agree(ctx);
    test_fp16_rounding(ctx);
    milk_ctx_free(ctx);
    return check_report("test_run_dynamic");
}
