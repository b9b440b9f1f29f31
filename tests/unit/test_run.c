/* test_run.c: the interpreter's runner: inputs and their errors, values
 * freed after their last use unless kept, fp16 rounding and overflow
 * counting in as-declared mode, and fp32 mode. Expected values are computed
 * by hand in the comments. */
#include "milk.h"
#include "check.h"

#include <math.h>

/* y = relu(x + b); z = x * x, on x of shape [4]. */
static milk_program *build(milk_ctx *ctx, milk_dtype dt)
{
    milk_program *p;
    milk_function *f;
    milk_var *x, *b;
    milk_op *add, *relu, *sq;
    CHECK_OK(ctx, milk_program_create(ctx, MILK_TARGET_IOS17, &p));
    CHECK_OK(ctx, milk_program_add_function(ctx, p, "main", &f));
    milk_tensor_type t = {dt, 1, {4}};
    CHECK_OK(ctx, milk_function_add_input(ctx, f, "x", &t, &x));
    milk_block *blk = milk_function_block(f);
    uint16_t h[4] = {0x3c00, 0xbc00, 0x0000, 0x7bff}; /* 1, -1, 0, 65504 */
    float fl[4] = {1, -1, 0, 65504};
    CHECK_OK(ctx, milk_block_add_const(ctx, blk, "b", &t, dt == MILK_DTYPE_FP16 ? (void *)h : (void *)fl, &b));
    milk_input ain[] = {{"x", x}, {"y", b}};
    CHECK_OK(ctx, milk_block_add_op(ctx, blk, "add", "s", ain, 2, &add));
    milk_input rin[] = {{"x", milk_op_output(add, 0)}};
    CHECK_OK(ctx, milk_block_add_op(ctx, blk, "relu", "y", rin, 1, &relu));
    milk_input qin[] = {{"x", x}, {"y", x}};
    CHECK_OK(ctx, milk_block_add_op(ctx, blk, "mul", "z", qin, 2, &sq));
    CHECK_OK(ctx, milk_block_add_output(ctx, blk, milk_op_output(relu, 0)));
    CHECK_OK(ctx, milk_block_add_output(ctx, blk, milk_op_output(sq, 0)));
    return p;
}

static void test_fp32(milk_ctx *ctx)
{
    milk_program *p = build(ctx, MILK_DTYPE_FP32);
    milk_runner *r;
    CHECK_OK(ctx, milk_runner_create(ctx, p, NULL, &r));
    /* running without inputs names the missing one and the signature */
    CHECK(milk_runner_run(ctx, r) == MILK_ERR_INVALID_ARG);
    CHECK_STR_CONTAINS(milk_ctx_error(ctx), "main(tensor<fp32, [4]> x)");
    milk_tensor_type bad = {MILK_DTYPE_FP32, 1, {5}};
    float x5[5] = {0};
    CHECK(milk_runner_set_input(ctx, r, "x", &bad, x5) == MILK_ERR_INVALID_ARG);
    CHECK_STR_CONTAINS(milk_ctx_error(ctx), "expected tensor<fp32, [4]>");
    CHECK(milk_runner_set_input(ctx, r, "q", &bad, x5) == MILK_ERR_INVALID_ARG);
    CHECK_STR_CONTAINS(milk_ctx_error(ctx), "no input called 'q'");

    milk_tensor_type t = {MILK_DTYPE_FP32, 1, {4}};
    float x[4] = {2, 0.5f, -3, 1};
    CHECK_OK(ctx, milk_runner_set_input(ctx, r, "x", &t, x));
    CHECK_OK(ctx, milk_runner_run(ctx, r));
    float y[4], z[4];
    CHECK_OK(ctx, milk_runner_read(ctx, r, "y", MILK_DTYPE_FP32, y, sizeof y));
    CHECK_OK(ctx, milk_runner_read(ctx, r, "z", MILK_DTYPE_FP32, z, sizeof z));
    /* y = relu(x + b) = relu(3, -0.5, -3, 65505) */
    CHECK(y[0] == 3 && y[1] == 0 && y[2] == 0 && y[3] == 65505);
    CHECK(z[0] == 4 && z[1] == 0.25f && z[2] == 9 && z[3] == 1);
    /* s is an intermediate: freed after relu read it */
    CHECK(milk_runner_type(r, "s") == NULL);
    CHECK(milk_runner_read(ctx, r, "s", MILK_DTYPE_FP32, y, sizeof y) == MILK_ERR_NOT_FOUND);
    milk_runner_free(r);

    /* keeping it */
    CHECK_OK(ctx, milk_runner_create(ctx, p, NULL, &r));
    CHECK_OK(ctx, milk_runner_keep(ctx, r, "s"));
    CHECK_OK(ctx, milk_runner_set_input(ctx, r, "x", &t, x));
    CHECK_OK(ctx, milk_runner_run(ctx, r));
    CHECK_OK(ctx, milk_runner_read(ctx, r, "s", MILK_DTYPE_FP32, y, sizeof y));
    CHECK(y[1] == -0.5f);
    milk_runner_free(r);
    milk_program_free(p);
}

static void test_fp16(milk_ctx *ctx)
{
    milk_program *p = build(ctx, MILK_DTYPE_FP16);
    milk_runner *r;
    CHECK_OK(ctx, milk_runner_create(ctx, p, NULL, &r));
    /* fp32 data for an fp16 input is converted (rounded to fp16) */
    milk_tensor_type t = {MILK_DTYPE_FP32, 1, {4}};
    float x[4] = {1.0f / 3, 0.1f, 300, 1};
    CHECK_OK(ctx, milk_runner_set_input(ctx, r, "x", &t, x));
    CHECK_OK(ctx, milk_runner_run(ctx, r));
    float y[4], z[4];
    CHECK_OK(ctx, milk_runner_read(ctx, r, "y", MILK_DTYPE_FP32, y, sizeof y));
    CHECK_OK(ctx, milk_runner_read(ctx, r, "z", MILK_DTYPE_FP32, z, sizeof z));
    /* fp16(1/3) = 0.333251953125; + 1 = 1.333251953125 -> fp16 spacing in
     * [1,2) is 2^-10: 1.33325... rounds to 1.3330078125 (1365/1024). */
    CHECK(y[0] == 1.3330078125f);
    /* 300*300 = 90000 > 65504: overflows to inf in fp16 */
    CHECK(isinf(z[2]));
    /* 1 + 65504 = 65505 rounds to 65504 (the next half, 65536, is not
     * representable; the tie point 65520 is not reached) */
    CHECK(y[3] == 65504.0f);
    /* stats: add (op 2 of const x? no: ops are b, s, y, z) */
    int n = milk_runner_op_count(r);
    CHECK_EQ_INT(n, 4);
    const milk_op_stats *sz = milk_runner_op_stats(r, 3); /* z = x * x */
    CHECK_EQ_INT(sz->n_overflow, 1);
    CHECK_EQ_INT(sz->n_inf, 1);
    const milk_op_stats *ss = milk_runner_op_stats(r, 1); /* s = x + b: 65505 */
    CHECK_EQ_INT(ss->n_overflow, 1);
    CHECK_EQ_INT(ss->n_inf, 0);
    milk_runner_free(r);

    /* fp32 mode: no rounding, no overflow */
    milk_run_params rp = {MILK_PRECISION_FP32, 0, 0, NULL};
    CHECK_OK(ctx, milk_runner_create(ctx, p, &rp, &r));
    CHECK_OK(ctx, milk_runner_set_input(ctx, r, "x", &t, x));
    CHECK_OK(ctx, milk_runner_run(ctx, r));
    CHECK_OK(ctx, milk_runner_read(ctx, r, "z", MILK_DTYPE_FP32, z, sizeof z));
    CHECK(z[2] == 90000.0f);
    CHECK_EQ_INT(milk_runner_op_stats(r, 3)->n_overflow, 0);
    milk_runner_free(r);
    milk_program_free(p);
}

int main(void)
{
    milk_ctx *ctx;
    milk_ctx_create(&ctx);
    test_fp32(ctx);
    test_fp16(ctx);
    milk_ctx_free(ctx);
    return check_report("test_run");
}
