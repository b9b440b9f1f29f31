/* test_print.c: the model.mil text of a small program built in memory,
 * compared line by line with text written by hand in the format of
 * docs/coreml-format.md section 8 (1.3 flavour). */
#include "milk.h"
#include "check.h"

#include <stdlib.h>

static char *print_to_string(milk_ctx *ctx, const milk_program *p, unsigned flags)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    CHECK_OK(ctx, milk_program_print(ctx, p, f, flags));
    fclose(f);
    return buf;
}

int main(void)
{
    milk_ctx *ctx;
    milk_program *p;
    milk_function *fn;
    milk_var *x, *b, *big, *y;
    milk_ctx_create(&ctx);
    CHECK_OK(ctx, milk_program_create(ctx, MILK_TARGET_IOS17, &p));
    CHECK_OK(ctx, milk_program_add_function(ctx, p, "main", &fn));
    milk_tensor_type tx = {MILK_DTYPE_FP32, 4, {1, 3, MILK_DIM_UNKNOWN, 8}};
    CHECK_OK(ctx, milk_function_add_input(ctx, fn, "x", &tx, &x));
    milk_block *blk = milk_function_block(fn);
    float bv[3] = {0.5f, -1.0f, 0.1f};
    milk_tensor_type tb = {MILK_DTYPE_FP32, 4, {1, 3, 1, 1}};
    CHECK_OK(ctx, milk_block_add_const(ctx, blk, "b", &tb, bv, &b));
    float zeros[20] = {0};
    milk_tensor_type tz = {MILK_DTYPE_FP32, 1, {20}};
    CHECK_OK(ctx, milk_block_add_const(ctx, blk, "big", &tz, zeros, &big));
    milk_op *add, *relu;
    milk_input in[] = {{"y", b}, {"x", x}};
    CHECK_OK(ctx, milk_block_add_op(ctx, blk, "add", "add_0", in, 2, &add));
    milk_input rin[] = {{"x", milk_op_output(add, 0)}};
    CHECK_OK(ctx, milk_block_add_op(ctx, blk, "relu", "out", rin, 1, &relu));
    y = milk_op_output(relu, 0);
    CHECK_OK(ctx, milk_block_add_output(ctx, blk, y));

    char *text = print_to_string(ctx, p, 0);
    const char *expect =
        "program(1.3)\n"
        "{\n"
        "    func main<ios17>(tensor<fp32, [1, 3, ?, 8]> x) {\n"
        "            tensor<fp32, [1, 3, 1, 1]> b = const()[name = string(\"b\"), "
        "val = tensor<fp32, [1, 3, 1, 1]>([0.5, -1.0, 0.1])];\n"
        "            tensor<fp32, [20]> big = const()[name = string(\"big\"), "
        "val = tensor<fp32, [20]>(INLINE)];\n"
        "            tensor<fp32, [1, 3, ?, 8]> add_0 = add(x = x, y = b)"
        "[name = string(\"add_0\")];\n"
        "            tensor<fp32, [1, 3, ?, 8]> out = relu(x = add_0)"
        "[name = string(\"out\")];\n"
        "        } -> (out);\n"
        "}\n";
    CHECK(text && strcmp(text, expect) == 0);
    if (text && strcmp(text, expect) != 0) fprintf(stderr, "got:\n%s", text);
    free(text);

    /* --values prints every element */
    text = print_to_string(ctx, p, MILK_PRINT_VALUES);
    CHECK_STR_CONTAINS(text, "tensor<fp32, [20]>([0.0, 0.0, 0.0,");
    free(text);

    milk_program_free(p);
    milk_ctx_free(ctx);
    return check_report("test_print");
}
