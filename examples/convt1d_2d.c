/* convt1d_2d.c: build a Core ML ML Program with milk's public C API and
 * save it as a .mlpackage.
 *
 * The program is BigVGAN's upsampling layer ConvTranspose1d(768 -> 384,
 * kernel 7, stride 3, padding 2) written in its 2-D form, the form the Core
 * ML Neural Engine computes correctly (docs/coreml-defects.md,
 * convt1d-bias):
 *
 *   x [1, 768, L] -> expand_dims(axes=[-1]) -> [1, 768, L, 1]
 *     -> conv_transpose(weight [768, 384, 7, 1], bias [384],
 *                       strides [3, 1], pad [2, 2, 0, 0])
 *     -> [1, 384, 3L, 1] -> squeeze(axes=[-1]) -> y [1, 384, 3L]
 *
 * Weights are pseudo-random (a fixed-seed generator), so the example is
 * reproducible.
 *
 *   build/examples/convt1d_2d [OUT.mlpackage [L]]
 */
#include "milk.h"

#include <stdio.h>
#include <stdlib.h>

#define C_IN 768
#define C_OUT 384
#define K 7

/* xorshift32: weights in [-scale, scale). */
static void fill_random(float *w, size_t n, float scale, uint32_t seed)
{
    for (size_t i = 0; i < n; i++) {
        seed ^= seed << 13;
        seed ^= seed >> 17;
        seed ^= seed << 5;
        w[i] = scale * ((float)(seed >> 8) / (float)(1u << 23) - 1.0f);
    }
}

#define TRY(expr)                                                           \
    do {                                                                    \
        milk_status s_ = (expr);                                            \
        if (s_ != MILK_OK) {                                                \
            fprintf(stderr, "convt1d_2d: %s: %s\n", milk_status_str(s_),    \
                    milk_ctx_error(ctx));                                   \
            return 1;                                                       \
        }                                                                   \
    } while (0)

/* Parameter consts of the conv_transpose op. */
static int add_params(milk_ctx *ctx, milk_block *b, milk_var **p)
{
    TRY(milk_block_add_const_int32s(ctx, b, "up_strides", (int32_t[]){3, 1}, 2, &p[0]));
    TRY(milk_block_add_const_int32s(ctx, b, "up_pad", (int32_t[]){2, 2, 0, 0}, 4, &p[1]));
    TRY(milk_block_add_const_string(ctx, b, "up_pad_type", "custom", &p[2]));
    TRY(milk_block_add_const_int32s(ctx, b, "up_dilations", (int32_t[]){1, 1}, 2, &p[3]));
    TRY(milk_block_add_const_int32(ctx, b, "up_groups", 1, &p[4]));
    return 0;
}

static int build(milk_ctx *ctx, milk_program *prog, int64_t len, float *w, float *bias)
{
    milk_function *fn;
    milk_var *x, *axes, *weight, *b_var, *p[5];
    milk_op *expand, *up, *squeeze;
    TRY(milk_program_add_function(ctx, prog, "main", &fn));
    milk_tensor_type tx = {MILK_DTYPE_FP32, 3, {1, C_IN, len}};
    TRY(milk_function_add_input(ctx, fn, "x", &tx, &x));
    milk_block *b = milk_function_block(fn);

    TRY(milk_block_add_const_int32s(ctx, b, "last_axis", (int32_t[]){-1}, 1, &axes));
    milk_input ein[] = {{"x", x}, {"axes", axes}};
    TRY(milk_block_add_op(ctx, b, "expand_dims", "x_2d", ein, 2, &expand));

    milk_tensor_type tw = {MILK_DTYPE_FP32, 4, {C_IN, C_OUT, K, 1}};
    milk_tensor_type tb = {MILK_DTYPE_FP32, 1, {C_OUT}};
    TRY(milk_block_add_const_borrowed(ctx, b, "up_weight", &tw, w, &weight));
    TRY(milk_block_add_const_borrowed(ctx, b, "up_bias", &tb, bias, &b_var));
    if (add_params(ctx, b, p)) return 1;
    milk_input uin[] = {{"x", milk_op_output(expand, 0)}, {"weight", weight},
                        {"bias", b_var}, {"strides", p[0]}, {"pad", p[1]},
                        {"pad_type", p[2]}, {"dilations", p[3]}, {"groups", p[4]}};
    TRY(milk_block_add_op(ctx, b, "conv_transpose", "up_2d", uin, 8, &up));

    milk_input sin[] = {{"x", milk_op_output(up, 0)}, {"axes", axes}};
    TRY(milk_block_add_op(ctx, b, "squeeze", "y", sin, 2, &squeeze));
    TRY(milk_block_add_output(ctx, b, milk_op_output(squeeze, 0)));
    return 0;
}

int main(int argc, char **argv)
{
    const char *out = argc > 1 ? argv[1] : "convt1d_2d.mlpackage";
    int64_t len = argc > 2 ? atoll(argv[2]) : 600;
    milk_ctx *ctx;
    milk_program *prog = NULL;
    if (milk_ctx_create(&ctx) != MILK_OK) return 1;
    float *w = malloc(sizeof(float) * C_IN * C_OUT * K);
    float bias[C_OUT];
    int rc = 1;
    if (w && len > 0) {
        fill_random(w, (size_t)C_IN * C_OUT * K, 0.05f, 12345u);
        fill_random(bias, C_OUT, 0.5f, 678u);
        if (milk_program_create(ctx, MILK_TARGET_IOS17, &prog) == MILK_OK &&
            build(ctx, prog, len, w, bias) == 0) {
            milk_status s = milk_program_save(ctx, prog, out);
            if (s == MILK_OK) {
                printf("wrote %s\n", out);
                rc = 0;
            } else {
                fprintf(stderr, "convt1d_2d: %s: %s\n", milk_status_str(s),
                        milk_ctx_error(ctx));
            }
        }
    }
    milk_program_free(prog); /* the weights were borrowed: free them after */
    free(w);
    milk_ctx_free(ctx);
    return rc;
}
