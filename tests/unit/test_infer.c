/* test_infer.c: type inference of every op of the first milestone, built
 * through the public API (milk_block_add_op). Expected shapes are worked
 * out by hand from the formulas of coremltools' op definitions (quoted in
 * the comments); error cases check the status and that the message names
 * the param at fault. */
#include "infer_build.h"

/* ---- convolution ------------------------------------------------------- */

static void test_conv(milk_ctx *ctx)
{
    tb t;
    tb_begin(&t, ctx, MILK_TARGET_IOS17);
    milk_var *x = tb_in(&t, F32, D(1, 3, 32, 32));
    milk_var *w = tb_const(&t, F32, D(8, 3, 3, 3));
    milk_var *b = tb_const(&t, F32, D(8));
    /* custom pad 1, stride 2: floor((32 + 1 + 1 - 3) / 2) + 1 = 16 */
    milk_op *o = OP(&t, "conv", "x", x, "weight", w, "bias", b, "strides",
                    tb_ints(&t, 2, 2, 2), "pad_type", tb_str(&t, "custom"),
                    "pad", tb_ints(&t, 4, 1, 1, 1, 1));
    EXPECT(o, 0, F32, D(1, 8, 16, 16));
    /* defaults: valid, stride 1: 32 - 3 + 1 = 30 */
    EXPECT(OP(&t, "conv", "x", x, "weight", w), 0, F32, D(1, 8, 30, 30));

    /* same, strides (2, 3) on 10 x 7: ceil(10/2) = 5, ceil(7/3) = 3 */
    milk_var *x2 = tb_in(&t, F32, D(1, 4, 10, 7));
    milk_var *w2 = tb_const(&t, F32, D(6, 4, 3, 3));
    EXPECT(OP(&t, "conv", "x", x2, "weight", w2, "strides",
              tb_ints(&t, 2, 2, 3), "pad_type", tb_str(&t, "same")),
           0, F32, D(1, 6, 5, 3));
    /* a pad given with pad_type same is ignored, as coremltools does */
    EXPECT(OP(&t, "conv", "x", x2, "weight", w2, "pad_type",
              tb_str(&t, "same"), "pad", tb_ints(&t, 4, 9, 9, 9, 9)),
           0, F32, D(1, 6, 10, 7));

    /* 1-D, dilation 3: effective kernel (5 - 1) * 3 + 1 = 13;
     * 20 - 13 + 1 = 8 */
    milk_var *x3 = tb_in(&t, F32, D(2, 2, 20));
    milk_var *w3 = tb_const(&t, F32, D(4, 2, 5));
    EXPECT(OP(&t, "conv", "x", x3, "weight", w3, "dilations",
              tb_ints(&t, 1, 3)),
           0, F32, D(2, 4, 8));

    /* depthwise: groups 8 = C_in, weight [16, 1, 3, 3] */
    milk_var *x4 = tb_in(&t, F32, D(1, 8, 9, 9));
    milk_var *w4 = tb_const(&t, F32, D(16, 1, 3, 3));
    EXPECT(OP(&t, "conv", "x", x4, "weight", w4, "groups", tb_i32(&t, 8)), 0,
           F32, D(1, 16, 7, 7));

    /* 3-D, strides (1, 2, 3), pads (0,1), (1,0), (2,2), kernel (2, 3, 4):
     * D: (5 + 1 - 2) / 1 + 1 = 5; H: floor((6 + 1 - 3) / 2) + 1 = 3;
     * W: floor((7 + 4 - 4) / 3) + 1 = 3 */
    milk_var *x5 = tb_in(&t, F32, D(1, 2, 5, 6, 7));
    milk_var *w5 = tb_const(&t, F32, D(3, 2, 2, 3, 4));
    EXPECT(OP(&t, "conv", "x", x5, "weight", w5, "strides",
              tb_ints(&t, 3, 1, 2, 3), "pad_type", tb_str(&t, "custom"), "pad",
              tb_ints(&t, 6, 0, 1, 1, 0, 2, 2)),
           0, F32, D(1, 3, 5, 3, 3));

    /* unknown batch and height propagate: [?, 4, ?, 10 - 3 + 1] */
    milk_var *xu = tb_in(&t, F32, D(U, 3, U, 10));
    EXPECT(OP(&t, "conv", "x", xu, "weight", w), 0, F32, D(U, 8, U, 8));

    /* a run-time weight is allowed (without dilation) */
    milk_var *wv = tb_in(&t, F32, D(8, 3, 3, 3));
    EXPECT(OP(&t, "conv", "x", x, "weight", wv), 0, F32, D(1, 8, 30, 30));
    ERR(&t, "input 'dilations': must be 1 when weight is not a constant",
        "conv", "x", x, "weight", wv, "dilations", tb_ints(&t, 2, 2, 1));

    /* iOS17: fp16 x with fp32 weight and a run-time bias */
    milk_var *xh = tb_in(&t, F16, D(1, 3, 8, 8));
    milk_var *bv = tb_in(&t, F32, D(8));
    EXPECT(OP(&t, "conv", "x", xh, "weight", w, "bias", bv), 0, F16,
           D(1, 8, 6, 6));
    ERR(&t, "input 'bias': dtype fp16 differs from weight's fp32", "conv", "x",
        xh, "weight", w, "bias", tb_const(&t, F16, D(8)));

    /* errors */
    milk_var *x6 = tb_in(&t, F32, D(1, 6, 8, 8));
    ERR(&t, "input 'weight': C_in / groups = 6 / 3, but weight has 3 input "
            "channels",
        "conv", "x", x6, "weight", w, "groups", tb_i32(&t, 3));
    ERR(&t, "input 'groups': x has 6 channels, not divisible by 4 groups",
        "conv", "x", x6, "weight", tb_const(&t, F32, D(8, 2, 3, 3)), "groups",
        tb_i32(&t, 4));
    ERR(&t, "input 'weight': 8 output channels, not divisible by 3 groups",
        "conv", "x", x6, "weight", tb_const(&t, F32, D(8, 2, 3, 3)), "groups",
        tb_i32(&t, 3));
    ERR(&t, "input 'weight': C_in / groups", "conv", "x", x6, "weight", w);
    ERR(&t, "input 'pad': expected 4 values, got 3", "conv", "x", x, "weight",
        w, "pad_type", tb_str(&t, "custom"), "pad", tb_ints(&t, 3, 1, 1, 1));
    ERR(&t, "input 'pad': value -1 at 2 is below 0", "conv", "x", x, "weight",
        w, "pad_type", tb_str(&t, "custom"), "pad",
        tb_ints(&t, 4, 1, 1, -1, 1));
    ERR(&t, "input 'strides': value 0 at 1 is below 1", "conv", "x", x,
        "weight", w, "strides", tb_ints(&t, 2, 1, 0));
    ERR(&t, "input 'strides': expected at most 2 values, got 3", "conv", "x", x,
        "weight", w, "strides", tb_ints(&t, 3, 1, 1, 1));
    ERR(&t, "input 'pad_type': 'full' is not one of", "conv", "x", x, "weight",
        w, "pad_type", tb_str(&t, "full"));
    ERR(&t, "input 'bias': 4 values for 8 output channels", "conv", "x", x,
        "weight", w, "bias", tb_const(&t, F32, D(4)));
    ERR(&t, "input 'weight': rank 3, expected 4", "conv", "x", x, "weight", w3);
    ERR(&t, "input 'x': rank 2, expected 3 to 5", "conv", "x",
        tb_in(&t, F32, D(3, 4)), "weight", w3);
    ERR(&t, "input 'x': dtype int32 is not allowed", "conv", "x",
        tb_in(&t, I32, D(1, 3, 8, 8)), "weight", w);
    /* 2 x 2 input, 3 x 3 kernel, no pad: floor((2 - 3) / 1) + 1 = 0 */
    ERR(&t, "spatial dimension 0: input 2, effective kernel 3 and padding 0 "
            "give output size 0",
        "conv", "x", tb_in(&t, F32, D(1, 3, 2, 2)), "weight", w);
    ERR(&t, "input 'weight': required input is missing", "conv", "x", x);
    ERR(&t, "input 'strides': must be a compile-time constant", "conv", "x", x,
        "weight", w, "strides", tb_in(&t, I32, D(2)));
    tb_end(&t);

    /* iOS15: same_lower is iOS16+, weights must match x, bias constant */
    tb_begin(&t, ctx, MILK_TARGET_IOS15);
    x = tb_in(&t, F32, D(1, 3, 8, 8));
    w = tb_const(&t, F32, D(8, 3, 2, 2));
    ERR(&t, "input 'pad_type': 'same_lower' needs deployment target ios16",
        "conv", "x", x, "weight", w, "pad_type", tb_str(&t, "same_lower"));
    ERR(&t, "input 'weight': dtype fp16 differs from x's fp32 (allowed from "
            "iOS17 on)",
        "conv", "x", x, "weight", tb_const(&t, F16, D(8, 3, 2, 2)));
    ERR(&t, "input 'bias': must be a compile-time constant before ios17",
        "conv", "x", x, "weight", w, "bias", tb_in(&t, F32, D(8)));
    tb_end(&t);

    /* iOS16: same_lower, even kernel 2 on 8: total pad 1, output 8 */
    tb_begin(&t, ctx, MILK_TARGET_IOS16);
    x = tb_in(&t, F32, D(1, 3, 8, 8));
    w = tb_const(&t, F32, D(8, 3, 2, 2));
    EXPECT(OP(&t, "conv", "x", x, "weight", w, "pad_type",
              tb_str(&t, "same_lower")),
           0, F32, D(1, 8, 8, 8));
    tb_end(&t);
}

static void test_conv_transpose(milk_ctx *ctx)
{
    tb t;
    tb_begin(&t, ctx, MILK_TARGET_IOS18);
    /* convt1d_small: (50 - 1) * 3 + 7 - 2 - 2 = 150 */
    milk_var *x = tb_in(&t, F32, D(1, 64, 50));
    milk_var *w = tb_const(&t, F32, D(64, 32, 7));
    milk_var *b = tb_const(&t, F32, D(32));
    EXPECT(OP(&t, "conv_transpose", "x", x, "weight", w, "bias", b, "strides",
              tb_ints(&t, 1, 3), "pad_type", tb_str(&t, "custom"), "pad",
              tb_ints(&t, 2, 2, 2)),
           0, F32, D(1, 32, 150));
    /* the same with output_shape, as coremltools writes it (full shape) */
    EXPECT(OP(&t, "conv_transpose", "x", x, "weight", w, "bias", b, "strides",
              tb_ints(&t, 1, 3), "pad_type", tb_str(&t, "custom"), "pad",
              tb_ints(&t, 2, 2, 2), "output_shape", tb_ints(&t, 3, 1, 32, 150)),
           0, F32, D(1, 32, 150));
    /* output_shape wins over the formula (it may add output padding) */
    EXPECT(OP(&t, "conv_transpose", "x", x, "weight", w, "strides",
              tb_ints(&t, 1, 3), "output_shape", tb_ints(&t, 3, 1, 32, 152)),
           0, F32, D(1, 32, 152));
    /* output_padding 1 as an asymmetric custom pad (1, 0), kernel 3,
     * stride 2 on 7: (7 - 1) * 2 + 3 - 1 - 0 = 14 (PyTorch: (7 - 1) * 2 -
     * 2 * 1 + 3 + 1 = 14) */
    milk_var *x1 = tb_in(&t, F32, D(1, 2, 7));
    EXPECT(OP(&t, "conv_transpose", "x", x1, "weight",
              tb_const(&t, F32, D(2, 4, 3)), "strides", tb_ints(&t, 1, 2),
              "pad_type", tb_str(&t, "custom"), "pad", tb_ints(&t, 2, 1, 0)),
           0, F32, D(1, 4, 14));

    /* 2-D valid, groups 2 (C_out = 3 * 2), strides (2, 1), dilations (1, 2):
     * H: (5 - 1) * 2 + 3 = 11; W: effective kernel (2 - 1) * 2 + 1 = 3,
     * (6 - 1) * 1 + 3 = 8 */
    milk_var *x2 = tb_in(&t, F32, D(1, 4, 5, 6));
    EXPECT(OP(&t, "conv_transpose", "x", x2, "weight",
              tb_const(&t, F32, D(4, 3, 3, 2)), "groups", tb_i32(&t, 2),
              "strides", tb_ints(&t, 2, 2, 1), "dilations",
              tb_ints(&t, 2, 1, 2)),
           0, F32, D(1, 6, 11, 8));
    /* same: D * stride */
    milk_var *w3 = tb_const(&t, F32, D(4, 3, 4, 4));
    EXPECT(OP(&t, "conv_transpose", "x", x2, "weight", w3, "strides",
              tb_ints(&t, 2, 2, 3), "pad_type", tb_str(&t, "same")),
           0, F32, D(1, 3, 10, 18));
    /* unknown spatial dims stay unknown */
    EXPECT(OP(&t, "conv_transpose", "x", tb_in(&t, F32, D(2, 4, U, 6)),
              "weight", w3),
           0, F32, D(2, 3, U, 9));
    /* iOS17+: a run-time weight of another float dtype */
    EXPECT(OP(&t, "conv_transpose", "x", tb_in(&t, F16, D(1, 4, 5, 6)),
              "weight", tb_in(&t, F32, D(4, 3, 4, 4))),
           0, F16, D(1, 3, 8, 9));

    ERR(&t, "input 'output_shape': expected the full output shape",
        "conv_transpose", "x", x, "weight", w, "output_shape",
        tb_ints(&t, 1, 150));
    ERR(&t, "input 'output_shape': 16 channels, but weight and groups give 32",
        "conv_transpose", "x", x, "weight", w, "output_shape",
        tb_ints(&t, 3, 1, 16, 150));
    ERR(&t, "input 'output_shape': batch 2 differs from x's 1",
        "conv_transpose", "x", x, "weight", w, "output_shape",
        tb_ints(&t, 3, 2, 32, 150));
    ERR(&t, "input 'weight': x has 64 channels, but weight dim 0 is 32",
        "conv_transpose", "x", x, "weight", tb_const(&t, F32, D(32, 32, 7)));
    ERR(&t, "input 'groups': x has 4 channels, not divisible by 3 groups",
        "conv_transpose", "x", x2, "weight", w3, "groups", tb_i32(&t, 3));
    ERR(&t, "input 'bias': 3 values for 6 output channels", "conv_transpose",
        "x", x2, "weight", w3, "groups", tb_i32(&t, 2), "bias",
        tb_const(&t, F32, D(3)));
    ERR(&t, "'same_lower' is not defined for conv_transpose", "conv_transpose",
        "x", x2, "weight", w3, "pad_type", tb_str(&t, "same_lower"));
    /* pads larger than the natural output: 1 * 1 + 2 - 2 - 2 = -1 */
    ERR(&t, "spatial dimension 0: output size -1", "conv_transpose", "x",
        tb_in(&t, F32, D(1, 64, 2)), "weight", tb_const(&t, F32, D(64, 1, 2)),
        "pad_type", tb_str(&t, "custom"), "pad", tb_ints(&t, 2, 2, 2));
    tb_end(&t);

    tb_begin(&t, ctx, MILK_TARGET_IOS16);
    x = tb_in(&t, F32, D(1, 4, 5));
    ERR(&t, "input 'weight': must be a compile-time constant before ios17",
        "conv_transpose", "x", x, "weight", tb_in(&t, F32, D(4, 2, 3)));
    tb_end(&t);
}

/* ---- linear, matmul -------------------------------------------------- */

static void test_linear(milk_ctx *ctx)
{
    tb t;
    tb_begin(&t, ctx, MILK_TARGET_IOS17);
    milk_var *w = tb_const(&t, F32, D(8, 16)), *b = tb_const(&t, F32, D(8));
    EXPECT(OP(&t, "linear", "x", tb_in(&t, F32, D(2, 5, 16)), "weight", w,
              "bias", b),
           0, F32, D(2, 5, 8));
    EXPECT(OP(&t, "linear", "x", tb_in(&t, F32, D(16)), "weight", w), 0, F32,
           D(8));
    EXPECT(OP(&t, "linear", "x", tb_in(&t, F32, D(U, 16)), "weight", w), 0,
           F32, D(U, 8));
    /* iOS17: fp16 activations with fp32 weights */
    EXPECT(OP(&t, "linear", "x", tb_in(&t, F16, D(3, 16)), "weight", w, "bias",
              b),
           0, F16, D(3, 8));
    ERR(&t, "input 'weight': x has 12 features", "linear", "x",
        tb_in(&t, F32, D(2, 12)), "weight", w);
    ERR(&t, "input 'bias': expected shape [8]", "linear", "x",
        tb_in(&t, F32, D(2, 16)), "weight", w, "bias", tb_const(&t, F32, D(9)));
    ERR(&t, "input 'weight': must be a compile-time constant", "linear", "x",
        tb_in(&t, F32, D(2, 16)), "weight", tb_in(&t, F32, D(8, 16)));
    ERR(&t, "input 'weight': rank 3, expected 2", "linear", "x",
        tb_in(&t, F32, D(2, 16)), "weight", tb_const(&t, F32, D(1, 8, 16)));
    ERR(&t, "input 'bias': dtype fp16 differs from weight's fp32", "linear",
        "x", tb_in(&t, F32, D(2, 16)), "weight", w, "bias",
        tb_const(&t, F16, D(8)));
    tb_end(&t);

    tb_begin(&t, ctx, MILK_TARGET_IOS16);
    ERR(&t, "input 'weight': dtype fp32 differs from x's fp16", "linear", "x",
        tb_in(&t, F16, D(2, 16)), "weight", tb_const(&t, F32, D(8, 16)));
    tb_end(&t);
}

static void test_matmul(milk_ctx *ctx)
{
    tb t;
    tb_begin(&t, ctx, MILK_TARGET_IOS17);
    /* batch dims (2, 1) and (5,) broadcast to (2, 5); [3, 4] x [4, 6] */
    EXPECT(OP(&t, "matmul", "x", tb_in(&t, F32, D(2, 1, 3, 4)), "y",
              tb_in(&t, F32, D(5, 4, 6))),
           0, F32, D(2, 5, 3, 6));
    /* rank-1 x is [1, K], the 1 dropped: [4] x [2, 4, 6] -> [2, 6] */
    EXPECT(OP(&t, "matmul", "x", tb_in(&t, F32, D(4)), "y",
              tb_in(&t, F32, D(2, 4, 6))),
           0, F32, D(2, 6));
    /* rank-1 y is [K, 1]: [3, 4] x [4] -> [3] */
    EXPECT(OP(&t, "matmul", "x", tb_in(&t, F32, D(3, 4)), "y",
              tb_in(&t, F32, D(4))),
           0, F32, D(3));
    /* vector dot vector -> scalar */
    EXPECT(OP(&t, "matmul", "x", tb_in(&t, F32, D(4)), "y",
              tb_in(&t, F32, D(4))),
           0, F32, SCALAR);
    /* transpose_x: [2, 4, 3] -> [2, 3, 4]; transpose_y: [5, 4] -> [4, 5] */
    EXPECT(OP(&t, "matmul", "x", tb_in(&t, F32, D(2, 4, 3)), "y",
              tb_in(&t, F32, D(5, 4)), "transpose_x", tb_bool(&t, 1),
              "transpose_y", tb_bool(&t, 1)),
           0, F32, D(2, 3, 5));
    /* unknown inner and batch dims */
    EXPECT(OP(&t, "matmul", "x", tb_in(&t, F32, D(U, 3, U)), "y",
              tb_in(&t, F32, D(1, 7, 2))),
           0, F32, D(U, 3, 2));
    EXPECT(OP(&t, "matmul", "x", tb_in(&t, I32, D(2, 3)), "y",
              tb_in(&t, I32, D(3, 2))),
           0, I32, D(2, 2));
    /* iOS17: fp16 x against an fp32 constant y gives fp16 */
    EXPECT(OP(&t, "matmul", "x", tb_in(&t, F16, D(2, 3)), "y",
              tb_const(&t, F32, D(3, 4))),
           0, F16, D(2, 4));
    ERR(&t, "input 'y': dtype fp32 differs from x's fp16 (allowed only when "
            "one of them is a constant)",
        "matmul", "x", tb_in(&t, F16, D(2, 3)), "y", tb_in(&t, F32, D(3, 4)));
    ERR(&t, "input 'y': inner dimensions differ: 4 (x) vs 5 (y)", "matmul",
        "x", tb_in(&t, F32, D(3, 4)), "y", tb_in(&t, F32, D(5, 2)));
    ERR(&t, "shapes do not broadcast", "matmul", "x",
        tb_in(&t, F32, D(2, 3, 4)), "y", tb_in(&t, F32, D(3, 4, 5)));
    ERR(&t, "input 'transpose_y': 'y' has rank 1 and cannot be transposed",
        "matmul", "x", tb_in(&t, F32, D(3, 4)), "y", tb_in(&t, F32, D(4)),
        "transpose_y", tb_bool(&t, 1));
    ERR(&t, "input 'x': dtype bool is not allowed", "matmul", "x",
        tb_in(&t, MILK_DTYPE_BOOL, D(3, 4)), "y", tb_in(&t, F32, D(4)));
    tb_end(&t);

    tb_begin(&t, ctx, MILK_TARGET_IOS15);
    ERR(&t, "input 'y': dtype fp32 differs from x's fp16", "matmul", "x",
        tb_in(&t, F16, D(2, 3)), "y", tb_const(&t, F32, D(3, 4)));
    tb_end(&t);
}

/* ---- normalization --------------------------------------------------- */

static void test_norm(milk_ctx *ctx)
{
    tb t;
    tb_begin(&t, ctx, MILK_TARGET_IOS17);
    milk_var *x = tb_in(&t, F16, D(1, 64, 1));
    milk_var *m = tb_const(&t, F32, D(64)), *v = tb_const(&t, F32, D(64));
    EXPECT(OP(&t, "batch_norm", "x", x, "mean", m, "variance", v, "gamma",
              tb_const(&t, F32, D(64)), "beta", tb_const(&t, F32, D(64)),
              "epsilon", tb_f32(&t, 1e-5f)),
           0, F16, D(1, 64, 1));
    ERR(&t, "input 'mean': expected shape [64] (the channels of x)",
        "batch_norm", "x", x, "mean", tb_const(&t, F32, D(32)), "variance", v);
    ERR(&t, "input 'x': rank 2, expected 3 to 5", "batch_norm", "x",
        tb_in(&t, F32, D(1, 64)), "mean", m, "variance", v);
    ERR(&t, "input 'variance': dtype fp16 differs from mean's fp32",
        "batch_norm", "x", x, "mean", m, "variance", tb_const(&t, F16, D(64)));
    ERR(&t, "input 'epsilon': expected a scalar", "batch_norm", "x", x, "mean",
        m, "variance", v, "epsilon", tb_const(&t, F32, D(2)));
    ERR(&t, "input 'variance': required input is missing", "batch_norm", "x",
        x, "mean", m);
    ERR(&t, "input 'mean': must be a compile-time constant", "batch_norm", "x",
        x, "mean", tb_in(&t, F32, D(64)), "variance", v);

    /* layer_norm over the last axis (attention fixture) */
    milk_var *xl = tb_in(&t, F32, D(1, 6, 32));
    EXPECT(OP(&t, "layer_norm", "x", xl, "axes", tb_ints(&t, 1, -1), "gamma",
              tb_const(&t, F32, D(32)), "beta", tb_const(&t, F32, D(32)),
              "epsilon", tb_f32(&t, 1e-5f)),
           0, F32, D(1, 6, 32));
    /* axes (2, 0): gamma has x's dims 0 and 2 in increasing order */
    EXPECT(OP(&t, "layer_norm", "x", xl, "axes", tb_ints(&t, 2, 2, 0), "gamma",
              tb_const(&t, F32, D(1, 32))),
           0, F32, D(1, 6, 32));
    /* default: every axis */
    EXPECT(OP(&t, "layer_norm", "x", xl, "gamma",
              tb_const(&t, F32, D(1, 6, 32))),
           0, F32, D(1, 6, 32));
    ERR(&t, "input 'gamma': shape must be x's shape over the normalized axes",
        "layer_norm", "x", xl, "axes", tb_ints(&t, 1, -1), "gamma",
        tb_const(&t, F32, D(6)));
    ERR(&t, "input 'axes': axis 3 outside [-3, 3)", "layer_norm", "x", xl,
        "axes", tb_ints(&t, 1, 3));

    milk_var *xi = tb_in(&t, F32, D(2, 3, 4, 5));
    EXPECT(OP(&t, "instance_norm", "x", xi, "gamma", tb_const(&t, F32, D(3)),
              "beta", tb_const(&t, F32, D(3))),
           0, F32, D(2, 3, 4, 5));
    ERR(&t, "input 'x': rank 5, expected 3 to 4", "instance_norm", "x",
        tb_in(&t, F32, D(1, 2, 3, 4, 5)));
    ERR(&t, "input 'beta': expected shape [3]", "instance_norm", "x", xi,
        "beta", tb_const(&t, F32, D(4)));
    tb_end(&t);

    /* before iOS17 the statistics must have x's dtype */
    tb_begin(&t, ctx, MILK_TARGET_IOS15);
    x = tb_in(&t, F16, D(1, 4, 2));
    ERR(&t, "input 'mean': dtype fp32 differs from x's fp16 (allowed from "
            "iOS17 on)",
        "batch_norm", "x", x, "mean", tb_const(&t, F32, D(4)), "variance",
        tb_const(&t, F32, D(4)));
    EXPECT(OP(&t, "batch_norm", "x", x, "mean", tb_const(&t, F16, D(4)),
              "variance", tb_const(&t, F16, D(4)), "epsilon",
              tb_scalar(&t, F16, 1e-5f)),
           0, F16, D(1, 4, 2));
    ERR(&t, "input 'epsilon': dtype fp32 differs from x's fp16",
        "layer_norm", "x", x, "epsilon", tb_f32(&t, 1e-5f));
    tb_end(&t);
}

/* ---- activations, cast, unary ---------------------------------------- */

static void test_activation(milk_ctx *ctx)
{
    tb t;
    tb_begin(&t, ctx, MILK_TARGET_IOS18);
    milk_var *x = tb_in(&t, F16, D(1, 16, 160));
    /* upsampler_small fp16: fp16 x with an fp32 alpha (iOS17+) */
    EXPECT(OP(&t, "leaky_relu", "x", x, "alpha", tb_f32(&t, 0.1f)), 0, F16,
           D(1, 16, 160));
    ERR(&t, "input 'alpha': required input is missing", "leaky_relu", "x", x);
    ERR(&t, "input 'alpha': expected a scalar", "leaky_relu", "x", x, "alpha",
        tb_const(&t, F32, D(3)));
    EXPECT(OP(&t, "gelu", "x", x), 0, F16, D(1, 16, 160));
    EXPECT(OP(&t, "gelu", "x", x, "mode", tb_str(&t, "TANH_APPROXIMATION")), 0,
           F16, D(1, 16, 160));
    ERR(&t, "input 'mode': 'tanh' is not one of", "gelu", "x", x, "mode",
        tb_str(&t, "tanh"));
    EXPECT(OP(&t, "softmax", "x", x, "axis", tb_i32(&t, -2)), 0, F16,
           D(1, 16, 160));
    ERR(&t, "input 'axis': axis 3 outside [-3, 3)", "softmax", "x", x, "axis",
        tb_i32(&t, 3));
    ERR(&t, "input 'x': dtype int32 is not allowed", "softmax", "x",
        tb_in(&t, I32, D(4)));
    EXPECT(OP(&t, "clip", "x", x, "alpha", tb_scalar(&t, F16, 0.0f), "beta",
              tb_scalar(&t, F16, 6.0f)),
           0, F16, D(1, 16, 160));
    /* clip's alpha and beta keep x's dtype in every opset */
    ERR(&t, "input 'alpha': dtype fp32 differs from x's fp16", "clip", "x", x,
        "alpha", tb_f32(&t, 0.0f), "beta", tb_scalar(&t, F16, 6.0f));
    ERR(&t, "input 'alpha': 6 must be below beta 6 from iOS17 on", "clip", "x",
        x, "alpha", tb_scalar(&t, F16, 6.0f), "beta", tb_scalar(&t, F16, 6.0f));
    tb_end(&t);

    tb_begin(&t, ctx, MILK_TARGET_IOS16);
    x = tb_in(&t, F16, D(2, 3));
    ERR(&t, "input 'alpha': dtype fp32 differs from x's fp16 (allowed from "
            "iOS17 on)",
        "leaky_relu", "x", x, "alpha", tb_f32(&t, 0.1f));
    /* alpha == beta is accepted before iOS17 */
    EXPECT(OP(&t, "clip", "x", x, "alpha", tb_scalar(&t, F16, 1.0f), "beta",
              tb_scalar(&t, F16, 1.0f)),
           0, F16, D(2, 3));
    tb_end(&t);
}

static void test_cast_unary(milk_ctx *ctx)
{
    tb t;
    tb_begin(&t, ctx, MILK_TARGET_IOS16);
    milk_var *x = tb_in(&t, F32, D(1, 4, 16, 12));
    EXPECT(OP(&t, "cast", "x", x, "dtype", tb_str(&t, "fp16")), 0, F16,
           D(1, 4, 16, 12));
    EXPECT(OP(&t, "cast", "x", x, "dtype", tb_str(&t, "bool")), 0,
           MILK_DTYPE_BOOL, D(1, 4, 16, 12));
    EXPECT(OP(&t, "cast", "x", tb_in(&t, I32, SCALAR), "dtype",
              tb_str(&t, "fp32")),
           0, F32, SCALAR);
    ERR(&t, "input 'dtype': 'int8' is not one of fp16, fp32, int32, bool "
            "(int8, uint8, int16 and uint16 from iOS17)",
        "cast", "x", x, "dtype", tb_str(&t, "int8"));
    ERR(&t, "input 'dtype': 'fp64' is not one of", "cast", "x", x, "dtype",
        tb_str(&t, "fp64"));
    ERR(&t, "input 'dtype': required input is missing", "cast", "x", x);
    ERR(&t, "input 'x': dtype int8 is not allowed", "cast", "x",
        tb_in(&t, MILK_DTYPE_INT8, D(2)), "dtype", tb_str(&t, "fp32"));

    /* unary: rsqrt's epsilon has x's dtype before iOS17 */
    milk_var *h = tb_in(&t, F16, D(3, 1));
    EXPECT(OP(&t, "rsqrt", "x", h, "epsilon", tb_scalar(&t, F16, 1e-4f)), 0,
           F16, D(3, 1));
    ERR(&t, "input 'epsilon': dtype fp32 differs from x's fp16", "rsqrt", "x",
        h, "epsilon", tb_f32(&t, 1e-4f));
    ERR(&t, "input 'epsilon': expected a scalar", "log", "x", h, "epsilon",
        tb_const(&t, F16, D(2)));
    EXPECT(OP(&t, "abs", "x", tb_in(&t, I32, D(5))), 0, I32, D(5));
    ERR(&t, "input 'x': dtype int32 is not allowed", "relu", "x",
        tb_in(&t, I32, D(5)));
    EXPECT(OP(&t, "silu", "x", tb_in(&t, F32, D(U, 7))), 0, F32, D(U, 7));
    tb_end(&t);

    tb_begin(&t, ctx, MILK_TARGET_IOS17);
    x = tb_in(&t, F32, D(2, 2));
    EXPECT(OP(&t, "cast", "x", x, "dtype", tb_str(&t, "uint8")), 0,
           MILK_DTYPE_UINT8, D(2, 2));
    EXPECT(OP(&t, "cast", "x", tb_in(&t, MILK_DTYPE_INT16, D(3)), "dtype",
              tb_str(&t, "fp16")),
           0, F16, D(3));
    EXPECT(OP(&t, "rsqrt", "x", tb_in(&t, F16, D(3)), "epsilon",
              tb_f32(&t, 1e-4f)),
           0, F16, D(3));
    tb_end(&t);
}

static void test_binary(milk_ctx *ctx)
{
    tb t;
    tb_begin(&t, ctx, MILK_TARGET_IOS15);
    /* an unknown dim against a known size takes that size; against 1 it
     * stays unknown */
    EXPECT(OP(&t, "add", "x", tb_in(&t, F32, D(U, 3)), "y",
              tb_in(&t, F32, D(4, 1))),
           0, F32, D(4, 3));
    EXPECT(OP(&t, "mul", "x", tb_in(&t, F32, D(U, 3)), "y",
              tb_in(&t, F32, D(1, 3))),
           0, F32, D(U, 3));
    EXPECT(OP(&t, "pow", "x", tb_in(&t, F32, D(2, 3)), "y", tb_f32(&t, 2.0f)),
           0, F32, D(2, 3));
    EXPECT(OP(&t, "maximum", "x", tb_in(&t, I32, D(2)), "y",
              tb_in(&t, I32, D(3, 1))),
           0, I32, D(3, 2));
    ERR(&t, "input 'y': dtype fp16 differs from x's fp32", "sub", "x",
        tb_in(&t, F32, D(2)), "y", tb_in(&t, F16, D(2)));
    ERR(&t, "input 'x': dtype bool is not allowed", "real_div", "x",
        tb_in(&t, MILK_DTYPE_BOOL, D(2)), "y",
        tb_in(&t, MILK_DTYPE_BOOL, D(2)));
    tb_end(&t);
}

/* ---- reductions ------------------------------------------------------- */

static void test_reduce(milk_ctx *ctx)
{
    tb t;
    tb_begin(&t, ctx, MILK_TARGET_IOS16);
    milk_var *x = tb_in(&t, F32, D(2, 3, 4, 5));
    EXPECT(OP(&t, "reduce_mean", "x", x, "axes", tb_ints(&t, 2, 1, -1)), 0, F32,
           D(2, 4));
    EXPECT(OP(&t, "reduce_sum", "x", x, "axes", tb_ints(&t, 2, 1, -1),
              "keep_dims", tb_bool(&t, 1)),
           0, F32, D(2, 1, 4, 1));
    EXPECT(OP(&t, "reduce_max", "x", x), 0, F32, SCALAR);
    EXPECT(OP(&t, "reduce_max", "x", x, "keep_dims", tb_bool(&t, 1)), 0, F32,
           D(1, 1, 1, 1));
    EXPECT(OP(&t, "reduce_sum", "x", tb_in(&t, I32, D(U, 6)), "axes",
              tb_ints(&t, 1, 1)),
           0, I32, D(U));
    ERR(&t, "input 'axes': axis 4 outside [-4, 4)", "reduce_mean", "x", x,
        "axes", tb_ints(&t, 1, 4));
    ERR(&t, "input 'axes': axis 3 repeated", "reduce_mean", "x", x, "axes",
        tb_ints(&t, 2, 3, -1));
    ERR(&t, "input 'keep_dims': expected a bool", "reduce_mean", "x", x,
        "keep_dims", tb_i32(&t, 1));
    ERR(&t, "input 'axes': must be a compile-time constant", "reduce_sum", "x",
        x, "axes", tb_in(&t, I32, D(1)));
    tb_end(&t);
}

/* ---- shape ops ------------------------------------------------------- */

static void test_reshape(milk_ctx *ctx)
{
    tb t;
    tb_begin(&t, ctx, MILK_TARGET_IOS15);
    milk_var *x = tb_in(&t, F32, D(2, 3, 4));
    /* -1 = 24 / 4 */
    EXPECT(OP(&t, "reshape", "x", x, "shape", tb_ints(&t, 2, 4, -1)), 0, F32,
           D(4, 6));
    /* iOS15: 0 copies x's dim at the same index */
    EXPECT(OP(&t, "reshape", "x", x, "shape", tb_ints(&t, 3, 0, 0, -1)), 0, F32,
           D(2, 3, 4));
    ERR(&t, "input 'shape': a 0 entry copies x's dim and needs 3 entries",
        "reshape", "x", x, "shape", tb_ints(&t, 2, 0, -1));
    ERR(&t, "input 'shape': 24 elements cannot take a shape of 25 elements",
        "reshape", "x", x, "shape", tb_ints(&t, 2, 5, 5));
    ERR(&t, "input 'shape': cannot infer the -1 entry: 24 elements into "
            "blocks of 5",
        "reshape", "x", x, "shape", tb_ints(&t, 2, 5, -1));
    ERR(&t, "input 'shape': entry 1 is -1: entries are sizes, 0 or a single -1",
        "reshape", "x", x, "shape", tb_ints(&t, 2, -1, -1));
    ERR(&t, "input 'shape': entry 0 is -2", "reshape", "x", x, "shape",
        tb_ints(&t, 2, -2, 12));
    ERR(&t, "input 'shape': dtype int8 is not allowed", "reshape", "x", x,
        "shape", tb_in(&t, MILK_DTYPE_INT8, D(2)));
    /* unknown dims: the -1 becomes unknown, the rest is kept */
    EXPECT(OP(&t, "reshape", "x", tb_in(&t, F32, D(U, 3, 4)), "shape",
              tb_ints(&t, 2, -1, 12)),
           0, F32, D(U, 12));
    /* a run-time shape of known length gives unknown dims of that rank */
    EXPECT(OP(&t, "reshape", "x", x, "shape", tb_in(&t, I32, D(3))), 0, F32,
           D(U, U, U));
    /* of unknown length: unknown rank */
    milk_op *o = OP(&t, "reshape", "x", x, "shape", tb_in(&t, I32, D(U)));
    CHECK(o && milk_var_type(milk_op_output(o, 0))->rank == MILK_RANK_UNKNOWN);
    EXPECT(OP(&t, "reshape", "x", tb_in(&t, MILK_DTYPE_BOOL, D(6)), "shape",
              tb_ints(&t, 2, 2, 3)),
           0, MILK_DTYPE_BOOL, D(2, 3));
    tb_end(&t);

    /* iOS17: zeros are aligned at the end: [0, -1] on [2, 3, 4] copies the
     * 3 (second to last), then -1 = 24 / 3 */
    tb_begin(&t, ctx, MILK_TARGET_IOS17);
    x = tb_in(&t, F32, D(2, 3, 4));
    EXPECT(OP(&t, "reshape", "x", x, "shape", tb_ints(&t, 2, 0, -1)), 0, F32,
           D(3, 8));
    /* a 0 before x's first dim is 1: [0, 0, 0, 0] -> [1, 2, 3, 4] */
    EXPECT(OP(&t, "reshape", "x", x, "shape", tb_ints(&t, 4, 0, 0, 0, 0)), 0,
           F32, D(1, 2, 3, 4));
    EXPECT(OP(&t, "reshape", "x", tb_in(&t, MILK_DTYPE_UINT8, D(4)), "shape",
              tb_in(&t, MILK_DTYPE_INT8, D(2))),
           0, MILK_DTYPE_UINT8, D(U, U));
    tb_end(&t);
}

static void test_transpose_dims(milk_ctx *ctx)
{
    tb t;
    tb_begin(&t, ctx, MILK_TARGET_IOS17);
    milk_var *x = tb_in(&t, F32, D(1, 6, 4, 8));
    /* attention fixture: perm (0, 2, -1, -3) = (0, 2, 3, 1) */
    EXPECT(OP(&t, "transpose", "x", x, "perm", tb_ints(&t, 4, 0, 2, -1, -3)), 0,
           F32, D(1, 4, 8, 6));
    EXPECT(OP(&t, "transpose", "x", tb_in(&t, F32, SCALAR), "perm",
              tb_ints(&t, 0)),
           0, F32, SCALAR);
    ERR(&t, "input 'perm': axis 1 repeated: not a permutation", "transpose",
        "x", x, "perm", tb_ints(&t, 4, 0, 1, 1, 2));
    ERR(&t, "input 'perm': expected at most 4 values, got 5", "transpose", "x",
        x, "perm", tb_ints(&t, 5, 0, 1, 2, 3, 4));
    ERR(&t, "input 'perm': expected 4 values, got 3", "transpose", "x", x,
        "perm", tb_ints(&t, 3, 0, 1, 2));
    ERR(&t, "input 'perm': required input is missing", "transpose", "x", x);

    milk_var *y = tb_in(&t, F32, D(2, 3));
    EXPECT(OP(&t, "expand_dims", "x", tb_in(&t, F32, D(1, 64)), "axes",
              tb_ints(&t, 1, -1)),
           0, F32, D(1, 64, 1));
    /* output rank 4; positions 0 and 3 (= -1) are new */
    EXPECT(OP(&t, "expand_dims", "x", y, "axes", tb_ints(&t, 2, 0, -1)), 0, F32,
           D(1, 2, 3, 1));
    EXPECT(OP(&t, "expand_dims", "x", tb_in(&t, I32, SCALAR), "axes",
              tb_ints(&t, 1, 0)),
           0, I32, D(1));
    ERR(&t, "input 'axes': axis -4 outside [-3, 3)", "expand_dims", "x", y,
        "axes", tb_ints(&t, 1, -4));
    ERR(&t, "input 'axes': axis 1 repeated", "expand_dims", "x", y, "axes",
        tb_ints(&t, 2, 1, -3)); /* -3 + 4 = 1 */

    EXPECT(OP(&t, "squeeze", "x", tb_in(&t, F32, D(1, 64, 1)), "axes",
              tb_ints(&t, 1, -1)),
           0, F32, D(1, 64));
    /* default: every dim known to be 1 */
    EXPECT(OP(&t, "squeeze", "x", tb_in(&t, F32, D(1, 3, 1, U))), 0, F32,
           D(3, U));
    /* a listed dim that is not 1 stays */
    EXPECT(OP(&t, "squeeze", "x", y, "axes", tb_ints(&t, 1, 0)), 0, F32,
           D(2, 3));
    EXPECT(OP(&t, "squeeze", "x", tb_in(&t, F32, D(1, 1))), 0, F32, SCALAR);
    ERR(&t, "input 'axes': axis 2 outside [-2, 2)", "squeeze", "x", y, "axes",
        tb_ints(&t, 1, 2));
    ERR(&t, "input 'x': dtype fp64 is not allowed", "squeeze", "x",
        tb_in(&t, MILK_DTYPE_FP64, D(1, 2)));
    tb_end(&t);

    /* iOS15 layout ops take no int8 */
    tb_begin(&t, ctx, MILK_TARGET_IOS15);
    ERR(&t, "input 'x': dtype int8 is not allowed", "transpose", "x",
        tb_in(&t, MILK_DTYPE_INT8, D(1, 2)), "perm", tb_ints(&t, 2, 1, 0));
    tb_end(&t);
}

/* ---- concat, split ----------------------------------------------------- */

static void test_concat_split(milk_ctx *ctx)
{
    tb t;
    tb_begin(&t, ctx, MILK_TARGET_IOS17);
    milk_var *a = tb_in(&t, F32, D(1, 2, 3)), *b = tb_in(&t, F32, D(1, 5, 3));
    EXPECT(OP(&t, "concat", "values", a, "values", b, "values", a, "axis",
              tb_i32(&t, 1)),
           0, F32, D(1, 9, 3));
    EXPECT(OP(&t, "concat", "values", a, "values", a, "axis", tb_i32(&t, -1),
              "interleave", tb_bool(&t, 1)),
           0, F32, D(1, 2, 6));
    EXPECT(OP(&t, "concat", "values", a, "values", tb_in(&t, F32, D(1, U, 3)),
              "axis", tb_i32(&t, 1)),
           0, F32, D(1, U, 3));
    /* scalars are stacked */
    EXPECT(OP(&t, "concat", "values", tb_in(&t, I32, SCALAR), "values",
              tb_in(&t, I32, SCALAR), "axis", tb_i32(&t, 0)),
           0, I32, D(2));
    ERR(&t, "input 'values': value 1 has 5 at dim 1, value 0 has 2 "
            "(interleave needs equal shapes)",
        "concat", "values", a, "values", b, "axis", tb_i32(&t, 1),
        "interleave", tb_bool(&t, 1));
    ERR(&t, "input 'values': value 1 has 5 at dim 1, value 0 has 2", "concat",
        "values", a, "values", b, "axis", tb_i32(&t, 2));
    ERR(&t, "input 'values': value 1 has rank 2, value 0 rank 3", "concat",
        "values", a, "values", tb_in(&t, F32, D(2, 3)), "axis", tb_i32(&t, 0));
    ERR(&t, "input 'values': value 1 is fp16, value 0 is fp32", "concat",
        "values", a, "values", tb_in(&t, F16, D(1, 2, 3)), "axis",
        tb_i32(&t, 0));
    ERR(&t, "input 'axis': axis 3 outside [-3, 3)", "concat", "values", a,
        "axis", tb_i32(&t, 3));
    ERR(&t, "input 'axis': required input is missing", "concat", "values", a);
    ERR(&t, "input 'values': required input is missing", "concat", "axis",
        tb_i32(&t, 0));

    /* attention fixture: [1, 6, 96] into three [1, 6, 32] */
    milk_var *x = tb_in(&t, F32, D(1, 6, 96));
    milk_op *o = OP(&t, "split", "x", x, "split_sizes",
                    tb_ints(&t, 3, 32, 32, 32), "axis", tb_i32(&t, -1));
    CHECK(o && milk_op_output_count(o) == 3);
    for (int i = 0; i < 3; i++) EXPECT(o, i, F32, D(1, 6, 32));
    CHECK(o && strcmp(milk_var_name(milk_op_output(o, 2)),
                      milk_op_name(o)) != 0);
    o = OP(&t, "split", "x", x, "split_sizes", tb_ints(&t, 2, 90, 6), "axis",
           tb_i32(&t, 2), "num_splits", tb_i32(&t, 2));
    EXPECT(o, 0, F32, D(1, 6, 90));
    EXPECT(o, 1, F32, D(1, 6, 6));
    o = OP(&t, "split", "x", x, "num_splits", tb_i32(&t, 4), "axis",
           tb_i32(&t, 2));
    CHECK(o && milk_op_output_count(o) == 4);
    EXPECT(o, 3, F32, D(1, 6, 24));
    o = OP(&t, "split", "x", tb_in(&t, MILK_DTYPE_BOOL, D(U, 2)), "num_splits",
           tb_i32(&t, 2), "axis", tb_i32(&t, 0));
    EXPECT(o, 1, MILK_DTYPE_BOOL, D(U, 2));
    ERR(&t, "input 'num_splits': 5 does not divide the axis dim 96", "split",
        "x", x, "num_splits", tb_i32(&t, 5), "axis", tb_i32(&t, 2));
    ERR(&t, "input 'split_sizes': sizes sum to 95, the axis dim is 96", "split",
        "x", x, "split_sizes", tb_ints(&t, 2, 90, 5), "axis", tb_i32(&t, 2));
    ERR(&t, "input 'split_sizes': 2 sizes differ from num_splits", "split",
        "x", x, "split_sizes", tb_ints(&t, 2, 90, 6), "num_splits",
        tb_i32(&t, 3), "axis", tb_i32(&t, 2));
    ERR(&t, "needs num_splits or split_sizes", "split", "x", x, "axis",
        tb_i32(&t, 2));
    ERR(&t, "input 'axis': axis -4 outside [-3, 3)", "split", "x", x,
        "num_splits", tb_i32(&t, 2), "axis", tb_i32(&t, -4));
    tb_end(&t);
}

/* ---- slice_by_index ---------------------------------------------------- */

static void test_slice(milk_ctx *ctx)
{
    tb t;
    tb_begin(&t, ctx, MILK_TARGET_IOS17);
    milk_var *x = tb_in(&t, F32, D(10, 8, 6));
    /* dim 0: 2:8:2 -> ceil(6 / 2) = 3; dim 1: 0: (end_mask) -> 8;
     * dim 2: 1:5 -> 4 */
    EXPECT(OP(&t, "slice_by_index", "x", x, "begin", tb_ints(&t, 3, 2, 0, 1),
              "end", tb_ints(&t, 3, 8, 0, 5), "stride", tb_ints(&t, 3, 2, 1, 1),
              "end_mask", tb_bools(&t, 3, 0, 1, 0)),
           0, F32, D(3, 8, 4));
    /* negative indices: -3:-1 on 10 -> 7:9 -> 2; -5: with end_mask on 8
     * -> 3:8 -> 5; ::-2 on 6 -> 3 */
    EXPECT(OP(&t, "slice_by_index", "x", x, "begin",
              tb_ints(&t, 3, -3, -5, 0), "end", tb_ints(&t, 3, -1, 0, 0),
              "stride", tb_ints(&t, 3, 1, 1, -2), "begin_mask",
              tb_bools(&t, 3, 0, 0, 1), "end_mask", tb_bools(&t, 3, 0, 1, 1)),
           0, F32, D(2, 5, 3));
    /* squeeze_mask drops dim 0 (x[3, :, :]) */
    EXPECT(OP(&t, "slice_by_index", "x", x, "begin", tb_ints(&t, 3, 3, 0, 0),
              "end", tb_ints(&t, 3, 4, 0, 0), "begin_mask",
              tb_bools(&t, 3, 0, 1, 1), "end_mask", tb_bools(&t, 3, 0, 1, 1),
              "squeeze_mask", tb_bools(&t, 3, 1, 0, 0)),
           0, F32, D(8, 6));
    /* a backward slice -1:-11:-1 on 10: coremltools clamps the end to 0
     * (the "slice-to-zero" defect), so 9 elements, not NumPy's 10 */
    milk_var *v = tb_in(&t, F32, D(10));
    EXPECT(OP(&t, "slice_by_index", "x", v, "begin", tb_ints(&t, 1, -1), "end",
              tb_ints(&t, 1, -11), "stride", tb_ints(&t, 1, -1)),
           0, F32, D(9));
    /* begin -1 with end_mask and positive stride: exactly 1 whatever the
     * size, even unknown */
    EXPECT(OP(&t, "slice_by_index", "x", tb_in(&t, F32, D(U)), "begin",
              tb_ints(&t, 1, -1), "end", tb_ints(&t, 1, 0), "end_mask",
              tb_bools(&t, 1, 1)),
           0, F32, D(1));
    /* a size-1 dim always gives 1 in coremltools (1:5 on 1) */
    EXPECT(OP(&t, "slice_by_index", "x", tb_in(&t, F32, D(1, 5)), "begin",
              tb_ints(&t, 2, 1, 0), "end", tb_ints(&t, 2, 5, 5)),
           0, F32, D(1, 5));
    /* stride 3 over a full dim of 8: ceil(8 / 3) = 3 */
    EXPECT(OP(&t, "slice_by_index", "x", x, "begin", tb_ints(&t, 3, 0, 0, 0),
              "end", tb_ints(&t, 3, 0, 0, 0), "stride", tb_ints(&t, 3, 1, 3, 1),
              "begin_mask", tb_bools(&t, 3, 1, 1, 1), "end_mask",
              tb_bools(&t, 3, 1, 1, 1)),
           0, F32, D(10, 3, 6));
    /* run-time begin: unknown sizes unless masks fix them (dim 0 from the
     * start to end 5: 5; dim 1 has both masks: 8) */
    milk_var *y = tb_in(&t, F32, D(10, 8));
    milk_var *rb = tb_in(&t, I32, D(2));
    EXPECT(OP(&t, "slice_by_index", "x", y, "begin", rb, "end",
              tb_ints(&t, 2, 5, 8), "end_mask", tb_bools(&t, 2, 0, 1)),
           0, F32, D(U, U));
    EXPECT(OP(&t, "slice_by_index", "x", y, "begin", rb, "end",
              tb_ints(&t, 2, 5, 8), "begin_mask", tb_bools(&t, 2, 1, 1),
              "end_mask", tb_bools(&t, 2, 0, 1)),
           0, F32, D(5, 8));
    /* everything squeezed: a scalar */
    EXPECT(OP(&t, "slice_by_index", "x", v, "begin", tb_ints(&t, 1, 4), "end",
              tb_ints(&t, 1, 5), "squeeze_mask", tb_bools(&t, 1, 1)),
           0, F32, SCALAR);
    ERR(&t, "input 'stride': 0 at dim 1", "slice_by_index", "x", y, "begin",
        tb_ints(&t, 2, 0, 0), "end", tb_ints(&t, 2, 1, 1), "stride",
        tb_ints(&t, 2, 1, 0));
    ERR(&t, "input 'begin': 3 entries for x of rank 2", "slice_by_index", "x",
        y, "begin", tb_ints(&t, 3, 0, 0, 0), "end", tb_ints(&t, 2, 1, 1));
    ERR(&t, "input 'end': dim 0: begin 5, end 2, stride 1 are not supported",
        "slice_by_index", "x", y, "begin", tb_ints(&t, 2, 5, 0), "end",
        tb_ints(&t, 2, 2, 1));
    ERR(&t, "input 'begin_mask': expected 2 values, got 1", "slice_by_index",
        "x", y, "begin", tb_ints(&t, 2, 0, 0), "end", tb_ints(&t, 2, 1, 1),
        "begin_mask", tb_bools(&t, 1, 1));
    ERR(&t, "input 'end_mask': expected a bool vector, got int32",
        "slice_by_index", "x", y, "begin", tb_ints(&t, 2, 0, 0), "end",
        tb_ints(&t, 2, 1, 1), "end_mask", tb_ints(&t, 2, 1, 1));
    ERR(&t, "input 'end': required input is missing", "slice_by_index", "x", y,
        "begin", tb_ints(&t, 2, 0, 0));
    /* iOS17: begin, end and stride share one integer dtype */
    ERR(&t, "input 'end': dtype int16 differs from begin's int32",
        "slice_by_index", "x", y, "begin", tb_ints(&t, 2, 0, 0), "end",
        tb_in(&t, MILK_DTYPE_INT16, D(2)));
    tb_end(&t);
}

/* ---- pad --------------------------------------------------------------- */

static void test_pad(milk_ctx *ctx)
{
    tb t;
    tb_begin(&t, ctx, MILK_TARGET_IOS16);
    milk_var *x = tb_in(&t, F32, D(1, 3, 4, 5));
    /* (1, 2) on the last dim: 5 + 3 */
    EXPECT(OP(&t, "pad", "x", x, "pad", tb_ints(&t, 2, 1, 2)), 0, F32,
           D(1, 3, 4, 8));
    /* reflect on the last two dims: 4 + 1 + 1, 5 + 2 + 2 (pads <= D - 1) */
    EXPECT(OP(&t, "pad", "x", x, "pad", tb_ints(&t, 4, 1, 1, 2, 2), "mode",
              tb_str(&t, "reflect")),
           0, F32, D(1, 3, 6, 9));
    /* replicate allows a pad of D */
    EXPECT(OP(&t, "pad", "x", x, "pad", tb_ints(&t, 2, 5, 0), "mode",
              tb_str(&t, "replicate"), "constant_val", tb_f32(&t, 1.0f)),
           0, F32, D(1, 3, 4, 10));
    EXPECT(OP(&t, "pad", "x", tb_in(&t, F32, D(2, U)), "pad",
              tb_ints(&t, 4, 1, 1, 1, 1)),
           0, F32, D(4, U));
    /* a run-time pad of 2 * rank entries: every size unknown */
    EXPECT(OP(&t, "pad", "x", x, "pad", tb_in(&t, I32, D(8))), 0, F32,
           D(U, U, U, U));
    ERR(&t, "input 'pad': a run-time pad needs 8 entries", "pad", "x", x, "pad",
        tb_in(&t, I32, D(4)));
    ERR(&t, "input 'pad': 5 at entry 1: must be in 0..4 for mode reflect",
        "pad", "x", x, "pad", tb_ints(&t, 2, 0, 5), "mode",
        tb_str(&t, "reflect"));
    ERR(&t, "input 'pad': 3 entries: expected an even number, at most 8", "pad",
        "x", x, "pad", tb_ints(&t, 3, 1, 1, 1));
    ERR(&t, "input 'pad': 10 entries", "pad", "x", x, "pad",
        tb_ints(&t, 10, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1));
    ERR(&t, "input 'pad': -1 at entry 0", "pad", "x", x, "pad",
        tb_ints(&t, 2, -1, 1));
    ERR(&t, "input 'mode': 'edge' is not one of", "pad", "x", x, "pad",
        tb_ints(&t, 2, 1, 1), "mode", tb_str(&t, "edge"));
    ERR(&t, "input 'constant_val': dtype fp16 differs from x's fp32", "pad",
        "x", x, "pad", tb_ints(&t, 2, 1, 1), "constant_val",
        tb_scalar(&t, F16, 1.0f));
    tb_end(&t);
}

/* ---- gather ----------------------------------------------------------- */

static void test_gather(milk_ctx *ctx)
{
    tb t;
    tb_begin(&t, ctx, MILK_TARGET_IOS15);
    milk_var *x = tb_in(&t, F32, D(5, 6, 7));
    milk_var *ind = tb_in(&t, I32, D(2, 3));
    /* D[:1] + N + D[2:] */
    EXPECT(OP(&t, "gather", "x", x, "indices", ind, "axis", tb_i32(&t, 1)), 0,
           F32, D(5, 2, 3, 7));
    EXPECT(OP(&t, "gather", "x", x, "indices", ind, "axis", tb_i32(&t, -1)), 0,
           F32, D(5, 6, 2, 3));
    EXPECT(OP(&t, "gather", "x", x, "indices", tb_in(&t, I32, SCALAR)), 0, F32,
           D(6, 7));
    ERR(&t, "input 'batch_dims': needs deployment target ios16", "gather", "x",
        x, "indices", ind, "batch_dims", tb_i32(&t, 0));
    ERR(&t, "input 'indices': dtype int16 is not allowed", "gather", "x", x,
        "indices", tb_in(&t, MILK_DTYPE_INT16, D(2)));
    ERR(&t, "input 'x': dtype bool is not allowed", "gather", "x",
        tb_in(&t, MILK_DTYPE_BOOL, D(2)), "indices", ind);
    ERR(&t, "input 'axis': axis 3 outside [-3, 3)", "gather", "x", x,
        "indices", ind, "axis", tb_i32(&t, 3));
    tb_end(&t);

    tb_begin(&t, ctx, MILK_TARGET_IOS16);
    x = tb_in(&t, F32, D(2, 5, 6));
    /* batch_dims 1: D[:1] + N[1:] + D[2:] = [2] + [4] + [6] */
    EXPECT(OP(&t, "gather", "x", x, "indices",
              tb_in(&t, MILK_DTYPE_INT16, D(2, 4)), "axis", tb_i32(&t, 1),
              "batch_dims", tb_i32(&t, 1)),
           0, F32, D(2, 4, 6));
    ERR(&t, "input 'indices': batch dim 0 is 3, x's is 2", "gather", "x", x,
        "indices", tb_in(&t, I32, D(3, 4)), "axis", tb_i32(&t, 1),
        "batch_dims", tb_i32(&t, 1));
    ERR(&t, "input 'batch_dims': 2 must be in 0..min(rank(indices) = 2, "
            "axis = 1)",
        "gather", "x", x, "indices", tb_in(&t, I32, D(2, 4)), "axis",
        tb_i32(&t, 1), "batch_dims", tb_i32(&t, 2));
    ERR(&t, "input 'validate_indices': needs deployment target ios17", "gather",
        "x", x, "indices", tb_in(&t, I32, D(2)), "validate_indices",
        tb_bool(&t, 1));
    tb_end(&t);

    tb_begin(&t, ctx, MILK_TARGET_IOS17);
    x = tb_in(&t, MILK_DTYPE_INT8, D(4, 3));
    EXPECT(OP(&t, "gather", "x", x, "indices", tb_ints(&t, 2, 3, 0),
              "validate_indices", tb_bool(&t, 1)),
           0, MILK_DTYPE_INT8, D(2, 3));
    ERR(&t, "input 'indices': index 4 at 1 is outside [0, 4)", "gather", "x", x,
        "indices", tb_ints(&t, 2, 0, 4), "validate_indices", tb_bool(&t, 1));
    ERR(&t, "input 'indices': index -1 at 0 is outside [0, 4)", "gather", "x",
        x, "indices", tb_ints(&t, 1, -1), "validate_indices", tb_bool(&t, 1));
    /* without validation an out-of-range constant passes inference */
    EXPECT(OP(&t, "gather", "x", x, "indices", tb_ints(&t, 1, 9)), 0,
           MILK_DTYPE_INT8, D(1, 3));
    tb_end(&t);
}

/* ---- pooling ----------------------------------------------------------- */

static void test_pool(milk_ctx *ctx)
{
    tb t;
    tb_begin(&t, ctx, MILK_TARGET_IOS16);
    /* resblock: kernel 3, stride 2, pad 1: floor((16 + 2 - 3) / 2) + 1 = 8 */
    EXPECT(OP(&t, "max_pool", "x", tb_in(&t, F32, D(1, 8, 16, 16)),
              "kernel_sizes", tb_ints(&t, 2, 3, 3), "strides",
              tb_ints(&t, 2, 2, 2), "pad_type", tb_str(&t, "custom"), "pad",
              tb_ints(&t, 4, 1, 1, 1, 1), "ceil_mode", tb_bool(&t, 0)),
           0, F32, D(1, 8, 8, 8));
    /* mlp_bn: 2 x 2 windows, stride 2, valid on 16 x 12 */
    milk_var *x = tb_in(&t, F16, D(1, 4, 16, 12));
    EXPECT(OP(&t, "avg_pool", "x", x, "kernel_sizes", tb_ints(&t, 2, 2, 2),
              "strides", tb_ints(&t, 2, 2, 2), "pad_type", tb_str(&t, "valid"),
              "exclude_padding_from_average", tb_bool(&t, 0)),
           0, F16, D(1, 4, 8, 6));
    /* pad_type is case-insensitive for pooling */
    EXPECT(OP(&t, "max_pool", "x", x, "kernel_sizes", tb_ints(&t, 2, 3, 3),
              "strides", tb_ints(&t, 2, 2, 2), "pad_type", tb_str(&t, "SAME")),
           0, F16, D(1, 4, 8, 6));
    /* ceil_mode on 5 with kernel 2, stride 2: floor((5 - 2 + 1) / 2) + 1 =
     * 3 (floor mode: 2) */
    milk_var *x5 = tb_in(&t, F32, D(1, 1, 5, 5));
    EXPECT(OP(&t, "max_pool", "x", x5, "kernel_sizes", tb_ints(&t, 2, 2, 2),
              "strides", tb_ints(&t, 2, 2, 2), "pad_type", tb_str(&t, "valid"),
              "ceil_mode", tb_bool(&t, 1)),
           0, F32, D(1, 1, 3, 3));
    EXPECT(OP(&t, "max_pool", "x", x5, "kernel_sizes", tb_ints(&t, 2, 2, 2),
              "strides", tb_ints(&t, 2, 2, 2), "pad_type", tb_str(&t, "valid")),
           0, F32, D(1, 1, 2, 2));
    /* ceil_mode with pad 1: floor((5 + 2 - 2 + 1) / 2) + 1 = 4, but the
     * last window would start at (4 - 1) * 2 = 6 >= 5 + 1: dropped, 3 */
    milk_var *x1 = tb_in(&t, F32, D(1, 1, 5));
    EXPECT(OP(&t, "avg_pool", "x", x1, "kernel_sizes", tb_ints(&t, 1, 2),
              "strides", tb_ints(&t, 1, 2), "pad_type", tb_str(&t, "custom"),
              "pad", tb_ints(&t, 2, 1, 1), "ceil_mode", tb_bool(&t, 1)),
           0, F32, D(1, 1, 3));
    /* kernel 1, stride 3, no pad, ceil: floor((5 - 1 + 2) / 3) + 1 = 3;
     * coremltools drops a window only when pad > 0, so 3 (PyTorch says 2) */
    EXPECT(OP(&t, "max_pool", "x", x1, "kernel_sizes", tb_ints(&t, 1, 1),
              "strides", tb_ints(&t, 1, 3), "pad_type", tb_str(&t, "valid"),
              "ceil_mode", tb_bool(&t, 1)),
           0, F32, D(1, 1, 3));
    /* same_lower is iOS16+; 3-D pooling; unknown dims */
    EXPECT(OP(&t, "max_pool", "x", tb_in(&t, F32, D(U, 2, 7, U, 4)),
              "kernel_sizes", tb_ints(&t, 3, 2, 2, 2), "strides",
              tb_ints(&t, 3, 2, 2, 2), "pad_type", tb_str(&t, "same_lower")),
           0, F32, D(U, 2, 4, U, 2));
    ERR(&t, "input 'ceil_mode': must be false with pad_type same", "max_pool",
        "x", x5, "kernel_sizes", tb_ints(&t, 2, 2, 2), "pad_type",
        tb_str(&t, "same"), "ceil_mode", tb_bool(&t, 1));
    ERR(&t, "input 'ceil_mode': only for 1-D and 2-D pooling", "avg_pool", "x",
        tb_in(&t, F32, D(1, 1, 4, 4, 4)), "kernel_sizes",
        tb_ints(&t, 3, 2, 2, 2), "pad_type", tb_str(&t, "valid"), "ceil_mode",
        tb_bool(&t, 1));
    ERR(&t, "input 'pad': must be symmetric with ceil_mode", "max_pool", "x",
        x5, "kernel_sizes", tb_ints(&t, 2, 2, 2), "pad_type",
        tb_str(&t, "custom"), "pad", tb_ints(&t, 4, 1, 0, 0, 0), "ceil_mode",
        tb_bool(&t, 1));
    ERR(&t, "input 'pad_type': required input is missing", "max_pool", "x", x5,
        "kernel_sizes", tb_ints(&t, 2, 2, 2));
    ERR(&t, "input 'kernel_sizes': expected 2 values, got 1", "max_pool", "x",
        x5, "kernel_sizes", tb_ints(&t, 1, 2), "pad_type", tb_str(&t, "valid"));
    ERR(&t, "input 'kernel_sizes': 0 at 1 is below 1", "max_pool", "x", x5,
        "kernel_sizes", tb_ints(&t, 2, 2, 0), "pad_type", tb_str(&t, "valid"));
    ERR(&t, "input 'pad': expected 4 values, got 2", "max_pool", "x", x5,
        "kernel_sizes", tb_ints(&t, 2, 2, 2), "pad_type", tb_str(&t, "valid"),
        "pad", tb_ints(&t, 2, 0, 0));
    ERR(&t, "input 'exclude_padding_from_average': unknown input", "max_pool",
        "x", x5, "kernel_sizes", tb_ints(&t, 2, 2, 2), "pad_type",
        tb_str(&t, "valid"), "exclude_padding_from_average", tb_bool(&t, 1));
    /* a 6-wide window on 5 with no pad leaves nothing */
    ERR(&t, "spatial dimension 0: input 5, effective kernel 6", "avg_pool",
        "x", x5, "kernel_sizes", tb_ints(&t, 2, 6, 1), "pad_type",
        tb_str(&t, "valid"));
    tb_end(&t);

    tb_begin(&t, ctx, MILK_TARGET_IOS15);
    ERR(&t, "'same_lower' needs deployment target ios16", "avg_pool", "x",
        tb_in(&t, F32, D(1, 1, 4)), "kernel_sizes", tb_ints(&t, 1, 2),
        "pad_type", tb_str(&t, "same_lower"));
    tb_end(&t);
}

/* ---- upsample ----------------------------------------------------------- */

static void test_upsample(milk_ctx *ctx)
{
    tb t;
    tb_begin(&t, ctx, MILK_TARGET_IOS16);
    milk_var *x = tb_in(&t, F32, D(1, 3, 5, 7));
    /* floor(5 * 2) = 10, floor(7 * 1.5) = floor(10.5) = 10 */
    EXPECT(OP(&t, "upsample_nearest_neighbor", "x", x, "scale_factor_height",
              tb_f32(&t, 2.0f), "scale_factor_width", tb_f32(&t, 1.5f)),
           0, F32, D(1, 3, 10, 10));
    EXPECT(OP(&t, "upsample_nearest_neighbor", "x", x, "scale_factor_height",
              tb_i32(&t, 3), "scale_factor_width", tb_i32(&t, 2)),
           0, F32, D(1, 3, 15, 14));
    /* defaults: scale 1 */
    EXPECT(OP(&t, "upsample_nearest_neighbor", "x", x), 0, F32, D(1, 3, 5, 7));
    /* bilinear, 0.5 on 5 x 7: floor(2.5) = 2, floor(3.5) = 3; rank 5 */
    EXPECT(OP(&t, "upsample_bilinear", "x", tb_in(&t, F16, D(2, 1, 2, 5, 7)),
              "scale_factor_height", tb_f32(&t, 0.5f), "scale_factor_width",
              tb_f32(&t, 0.5f), "align_corners", tb_bool(&t, 0),
              "half_pixel_centers", tb_bool(&t, 1)),
           0, F16, D(2, 1, 2, 2, 3));
    EXPECT(OP(&t, "upsample_bilinear", "x", tb_in(&t, F32, D(1, 2, U, 4)),
              "scale_factor_width", tb_f32(&t, 2.5f)),
           0, F32, D(1, 2, U, 10));
    ERR(&t, "input 'scale_factor_width': dtype fp32 differs from "
            "scale_factor_height's int32",
        "upsample_nearest_neighbor", "x", x, "scale_factor_height",
        tb_i32(&t, 2), "scale_factor_width", tb_f32(&t, 2.0f));
    ERR(&t, "input 'x': rank 2, expected at least 3", "upsample_bilinear", "x",
        tb_in(&t, F32, D(4, 4)));
    /* floor(5 * 0.1) = 0 */
    ERR(&t, "input 'scale_factor_height': scale 0.1 takes size 5 to 0",
        "upsample_nearest_neighbor", "x", x, "scale_factor_height",
        tb_f32(&t, 0.1f));
    ERR(&t, "input 'scale_factor_height': -2 is not positive",
        "upsample_bilinear", "x", x, "scale_factor_height", tb_f32(&t, -2.0f));
    ERR(&t, "input 'align_corners': unknown input", "upsample_nearest_neighbor",
        "x", x, "align_corners", tb_bool(&t, 1));
    tb_end(&t);

    tb_begin(&t, ctx, MILK_TARGET_IOS15);
    ERR(&t, "input 'half_pixel_centers': needs deployment target ios16",
        "upsample_bilinear", "x", tb_in(&t, F32, D(1, 1, 2, 2)),
        "half_pixel_centers", tb_bool(&t, 0));
    tb_end(&t);
}

int main(void)
{
    milk_ctx *ctx;
    if (milk_ctx_create(&ctx) != MILK_OK) return 1;
    test_conv(ctx);
    test_conv_transpose(ctx);
    test_linear(ctx);
    test_matmul(ctx);
    test_norm(ctx);
    test_activation(ctx);
    test_cast_unary(ctx);
    test_binary(ctx);
    test_reduce(ctx);
    test_reshape(ctx);
    test_transpose_dims(ctx);
    test_concat_split(ctx);
    test_slice(ctx);
    test_pad(ctx);
    test_gather(ctx);
    test_pool(ctx);
    test_upsample(ctx);
    milk_ctx_free(ctx);
    return check_report("test_infer");
}
