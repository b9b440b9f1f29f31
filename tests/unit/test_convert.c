/* test_convert.c: the converter's pieces that are not seen whole from the
 * command line: the MIL naming rule, --input-shape parsing, the string
 * map, and the dead code and fp16 passes on programs built by hand. */
#include "milk.h"
#include "check.h"
#include "onnx/convert.h"
#include "passes/passes.h"

#include <stdlib.h>
#include <unistd.h>

static void test_mil_name(void)
{
    static const char *const cases[][2] = {
        {"x", "x"},
        {"/ln1/LayerNormalization_output_0", "_ln1_LayerNormalization_output_0"},
        {"0", "var_0"},
        {"/fp16", "_fp16"},
        {"conv1.weight", "conv1_weight"},
        {"onnx::Conv_538", "onnx__Conv_538"},
        {"1abc", "var_1abc"},
        {"_a@b", "_a_b"},
        {"fp16", "fp16_workaround"},
        {"tensor", "tensor_workaround"},
        {"", ""},
    };
    char buf[64];
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        size_t n = milk_mil_name(cases[i][0], buf, sizeof buf);
        CHECK(strcmp(buf, cases[i][1]) == 0);
        CHECK_EQ_INT(n, strlen(cases[i][1]));
    }
    /* truncated, still terminated, full length returned */
    CHECK_EQ_INT(milk_mil_name("abcdef", buf, 4), 6);
    CHECK(strcmp(buf, "abc") == 0);
    CHECK_EQ_INT(milk_mil_name("9", NULL, 0), 5);
}

static void test_input_shape_parse(milk_ctx *ctx)
{
    milk_input_shape s;
    CHECK_OK(ctx, milk_input_shape_parse(ctx, "x=1,3,224,224", &s));
    CHECK(strcmp(s.name, "x") == 0);
    CHECK_EQ_INT(s.rank, 4);
    CHECK_EQ_INT(s.dims[3], 224);
    CHECK_OK(ctx, milk_input_shape_parse(ctx, "a=b=7", &s)); /* last '=' */
    CHECK(strcmp(s.name, "a=b") == 0 && s.rank == 1 && s.dims[0] == 7);
    static const char *const bad[] = {"x", "x=", "=1", "x=1,,2", "x=0", "x=1,a",
                                      "x=1,2,3,4,5,6,7,8,9", "x=-1", "x=1,"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        CHECK(milk_input_shape_parse(ctx, bad[i], &s) == MILK_ERR_INVALID_ARG);
        CHECK_STR_CONTAINS(milk_ctx_error(ctx), "input shape");
    }
}

static void test_strmap(void)
{
    milk_strmap m = {0};
    static char keys[2000][16];
    for (int i = 0; i < 2000; i++) {
        snprintf(keys[i], sizeof keys[i], "k%d", i);
        CHECK(milk_strmap_put(&m, keys[i], i));
    }
    CHECK(milk_strmap_put(&m, "k7", 70)); /* replaces */
    CHECK_EQ_INT(m.n, 2000);
    CHECK_EQ_INT(milk_strmap_get(&m, "k7"), 70);
    CHECK_EQ_INT(milk_strmap_get(&m, "k1999"), 1999);
    CHECK_EQ_INT(milk_strmap_get(&m, "k2000"), -1);
    milk_strmap_free(&m);
    CHECK_EQ_INT(milk_strmap_get(&m, "k1"), -1);
}

/* x [2, 3] fp32 -> y = (x + w) * big, with w inline and big a file-backed
 * fp32 const of 12 elements; plus an op nothing reads. */
static milk_program *small_program(milk_ctx *ctx, milk_target target,
                                   const char *weights)
{
    milk_program *p;
    milk_function *f;
    milk_var *x, *w, *big, *s, *y;
    milk_tensor_type t = {MILK_DTYPE_FP32, 2, {2, 3}};
    float wv[6] = {1, 2, 3, 4, 5, 1e6f};
    CHECK_OK(ctx, milk_program_create(ctx, target, &p));
    CHECK_OK(ctx, milk_program_add_function(ctx, p, "main", &f));
    milk_block *b = milk_function_block(f);
    CHECK_OK(ctx, milk_function_add_input(ctx, f, "x", &t, &x));
    CHECK_OK(ctx, milk_block_add_const(ctx, b, "w", &t, wv, &w));
    milk_tensor_type bt = {MILK_DTYPE_FP32, 2, {2, 3}};
    CHECK_OK(ctx, milk_block_add_const_file(ctx, b, "big", &bt, weights, 8,
                                            MILK_DTYPE_FP32, &big));
    milk_op *op;
    milk_input add_in[] = {{"x", x}, {"y", w}};
    CHECK_OK(ctx, milk_block_add_op(ctx, b, "add", "s", add_in, 2, &op));
    s = milk_op_output(op, 0);
    milk_input mul_in[] = {{"x", s}, {"y", big}};
    CHECK_OK(ctx, milk_block_add_op(ctx, b, "mul", "y", mul_in, 2, &op));
    y = milk_op_output(op, 0);
    milk_input dead_in[] = {{"x", s}};
    CHECK_OK(ctx, milk_block_add_op(ctx, b, "relu", "unused", dead_in, 1, NULL));
    CHECK_OK(ctx, milk_block_add_output(ctx, b, y));
    return p;
}

static void test_dce(milk_ctx *ctx, const char *weights)
{
    milk_program *p = small_program(ctx, MILK_TARGET_IOS17, weights);
    milk_function *f = milk_program_function(p, "main");
    CHECK_EQ_INT(milk_block_op_count(milk_function_block(f)), 5);
    CHECK_OK(ctx, milk_pass_dce(ctx, f));
    CHECK_EQ_INT(milk_block_op_count(milk_function_block(f)), 4);
    CHECK(milk_function_var(f, "unused") == NULL);
    CHECK(milk_function_var(f, "s") != NULL);
    CHECK_OK(ctx, milk_program_check(ctx, p));
    milk_program_free(p);
}

/* Run p on x and return y[5] (as fp32). */
static float run_last(milk_ctx *ctx, const milk_program *p)
{
    milk_runner *r;
    float x[6] = {0}, y[6] = {0};
    milk_tensor_type t = {MILK_DTYPE_FP32, 2, {2, 3}};
    CHECK_OK(ctx, milk_runner_create(ctx, p, NULL, &r));
    CHECK_OK(ctx, milk_runner_set_input(ctx, r, "x", &t, x));
    CHECK_OK(ctx, milk_runner_run(ctx, r));
    CHECK_OK(ctx, milk_runner_read(ctx, r, "y", MILK_DTYPE_FP32, y, sizeof y));
    milk_runner_free(r);
    return y[5];
}

static void test_fp16(milk_ctx *ctx, const char *weights)
{
    for (int io16 = 0; io16 < 2; io16++) {
        milk_target target = io16 ? MILK_TARGET_IOS16 : MILK_TARGET_IOS15;
        milk_program *p = small_program(ctx, target, weights);
        milk_function *f = milk_program_function(p, "main");
        milk_block *b = milk_function_block(f);
        CHECK_OK(ctx, milk_pass_fp16(ctx, p));
        CHECK_OK(ctx, milk_pass_dce(ctx, f));
        CHECK_OK(ctx, milk_program_check(ctx, p));
        milk_dtype io = io16 ? MILK_DTYPE_FP16 : MILK_DTYPE_FP32;
        CHECK_EQ_INT(milk_var_type(milk_function_input(f, 0))->dtype, io);
        milk_var *y = milk_block_output(b, 0);
        CHECK(strcmp(milk_var_name(y), "y") == 0); /* the output keeps its name */
        CHECK_EQ_INT(milk_var_type(y)->dtype, io);
        /* the weights are fp16; the file-backed one still reads fp32 data */
        milk_var *w = milk_function_var(f, "w"), *big = milk_function_var(f, "big");
        CHECK_EQ_INT(milk_var_type(w)->dtype, MILK_DTYPE_FP16);
        CHECK_EQ_INT(milk_var_type(big)->dtype, MILK_DTYPE_FP16);
        const milk_value *bv = milk_var_const(big);
        CHECK(bv->data.kind == MILK_DATA_FILE && bv->data.stored == MILK_DTYPE_FP32);
        /* 1e6 does not fit fp16: clamped to 65504, not inf; times 6.0 then
         * overflows to inf only in the fp16 product */
        double v;
        CHECK_OK(ctx, milk_value_get_f64(ctx, milk_var_const(w), 5, &v));
        CHECK(v == 65504.0);
        CHECK(isinf(run_last(ctx, p)));
        milk_program_free(p);
    }
}

int main(void)
{
    milk_ctx *ctx;
    if (milk_ctx_create(&ctx) != MILK_OK) return 1;
    char weights[] = "/tmp/milk_test_convert_XXXXXX";
    int fd = mkstemp(weights);
    float data[8] = {0, 0, 1, 1, 1, 1, 1, 6}; /* 8 bytes of header, then 6 */
    CHECK(fd >= 0 && write(fd, data, sizeof data) == (ssize_t)sizeof data);
    close(fd);
    test_mil_name();
    test_input_shape_parse(ctx);
    test_strmap();
    test_dce(ctx, weights);
    test_fp16(ctx, weights);
    unlink(weights);
    milk_ctx_free(ctx);
    return check_report("test_convert");
}
