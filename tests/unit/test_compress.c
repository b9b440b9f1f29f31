/* test_compress.c: milk_program_compress through the C API: the spec
 * parser, a program compressed in memory and run without saving (the
 * generated data streams from the dense weight), lossless cases whose
 * expected values are exact by construction (a LUT of a weight with as
 * many distinct values as entries; int8 codes of values that are
 * multiples of their scale), pruning counts computed by hand, the report,
 * and refusals that leave the program unchanged. */
#include "milk.h"
#include "check.h"

#include <math.h>
#include <stdlib.h>

#define OUT 32
#define IN 128

/* y = linear(x, w) with w [OUT, IN] (fp32), for target t. */
static milk_program *build(milk_ctx *ctx, milk_target t, const float *w)
{
    milk_program *p;
    milk_function *f;
    milk_var *x, *wv;
    milk_op *op;
    CHECK_OK(ctx, milk_program_create(ctx, t, &p));
    CHECK_OK(ctx, milk_program_add_function(ctx, p, "main", &f));
    milk_tensor_type xt = {MILK_DTYPE_FP32, 2, {1, IN}};
    milk_tensor_type wt = {MILK_DTYPE_FP32, 2, {OUT, IN}};
    CHECK_OK(ctx, milk_function_add_input(ctx, f, "x", &xt, &x));
    milk_block *b = milk_function_block(f);
    CHECK_OK(ctx, milk_block_add_const(ctx, b, "w", &wt, w, &wv));
    milk_input in[] = {{"x", x}, {"weight", wv}};
    CHECK_OK(ctx, milk_block_add_op(ctx, b, "linear", "y", in, 2, &op));
    CHECK_OK(ctx, milk_block_add_output(ctx, b, milk_op_output(op, 0)));
    return p;
}

/* y for x = 1, 2, ..., IN / 8 repeating. */
static void run(milk_ctx *ctx, const milk_program *p, float *y)
{
    float x[IN];
    for (int i = 0; i < IN; i++) x[i] = (float)(i % 8 + 1);
    milk_runner *r = NULL;
    milk_tensor_type xt = {MILK_DTYPE_FP32, 2, {1, IN}};
    CHECK_OK(ctx, milk_runner_create(ctx, p, NULL, &r));
    if (!r) return;
    CHECK_OK(ctx, milk_runner_set_input(ctx, r, "x", &xt, x));
    CHECK_OK(ctx, milk_runner_run(ctx, r));
    CHECK_OK(ctx, milk_runner_read(ctx, r, "y", MILK_DTYPE_FP32, y, OUT * sizeof *y));
    milk_runner_free(r);
}

static void test_spec(milk_ctx *ctx)
{
    milk_compress_params p;
    CHECK_OK(ctx, milk_compress_spec_parse(ctx, "int4", &p));
    CHECK(p.quant == MILK_DTYPE_INT4 && !p.palette_bits && !p.prune);
    CHECK_OK(ctx, milk_compress_spec_parse(ctx, "prune:0.5+palette:4", &p));
    CHECK(p.prune == 0.5 && p.palette_bits == 4 && !p.lut_int8);
    CHECK_OK(ctx, milk_compress_spec_parse(ctx, "palette:6+int8", &p));
    CHECK(p.palette_bits == 6 && p.lut_int8 && !p.quant);
    CHECK_OK(ctx, milk_compress_spec_parse(ctx, "int8+palette:2", &p));
    CHECK(p.palette_bits == 2 && p.lut_int8 && !p.quant);
    CHECK_OK(ctx, milk_compress_spec_parse(ctx, "prune:25%+uint8", &p));
    CHECK(p.prune == 0.25 && p.quant == MILK_DTYPE_UINT8);
    CHECK_OK(ctx, milk_compress_spec_parse(ctx, "PRUNE:2:4", &p));
    CHECK(p.prune_n == 2 && p.prune_m == 4);
    CHECK(milk_compress_spec_parse(ctx, "palette", &p) == MILK_ERR_INVALID_ARG);
    CHECK(milk_compress_spec_parse(ctx, "prune:0", &p) == MILK_ERR_INVALID_ARG);
    CHECK(milk_compress_spec_parse(ctx, "fp8", &p) == MILK_ERR_INVALID_ARG);
    CHECK_STR_CONTAINS(milk_ctx_error(ctx), "unknown item 'fp8'");
}

/* int8 symmetric per channel of a weight whose rows are k * s with |k| <=
 * 127 and max |k| = 127: the scale is s, every value is exact. */
static void test_int8_exact(milk_ctx *ctx)
{
    static float w[OUT * IN];
    for (int o = 0; o < OUT; o++)
        for (int i = 0; i < IN; i++) {
            int k = i == 0 ? 127 : (i * 37 + o * 11) % 255 - 127;
            w[o * IN + i] = (float)k * 0.125f * (float)(o + 1);
        }
    milk_program *dense = build(ctx, MILK_TARGET_IOS16, w);
    milk_program *p = build(ctx, MILK_TARGET_IOS16, w);
    milk_compress_params cp;
    CHECK_OK(ctx, milk_compress_spec_parse(ctx, "int8", &cp));
    cp.min_elements = 100;
    cp.measure = 1;
    milk_compress_report *rep;
    CHECK_OK(ctx, milk_compress_report_create(ctx, &rep));
    CHECK_OK(ctx, milk_program_compress(ctx, p, &cp, rep));
    CHECK_EQ_INT(milk_compress_report_count(rep), 1);
    const milk_compress_row *row = milk_compress_report_at(rep, 0);
    CHECK(row && row->compressed && strcmp(row->name, "w") == 0);
    CHECK_STR_CONTAINS(row ? row->how : "", "int8 symmetric per-channel (axis 0)");
    /* 4096 int8 codes, 32 int8 zero points, 32 fp32 scales, the axis */
    CHECK_EQ_INT(row ? row->bytes_after : 0, OUT * IN + OUT + OUT * 4 + 4);
    CHECK_EQ_INT(row ? row->bytes_before : 0, OUT * IN * 4);
    CHECK(row && !row->measured);
    float y0[OUT], y1[OUT];
    run(ctx, dense, y0);
    run(ctx, p, y1); /* expands the weight: measures it on the way */
    CHECK(row && row->measured && row->max_abs == 0 && isinf(row->snr_db));
    CHECK(memcmp(y0, y1, sizeof y0) == 0);
    milk_block *b = milk_function_block(milk_program_function(p, "main"));
    CHECK(strcmp(milk_op_type(milk_block_op(b, 0)), "constexpr_affine_dequantize") == 0);
    milk_compress_report_free(rep);
    milk_program_free(dense);
    milk_program_free(p);
}

/* A weight of 4 distinct values in a 2-bit palette: lossless. */
static void test_palette_lossless(milk_ctx *ctx)
{
    static float w[OUT * IN];
    const float vals[4] = {-1.5f, 0.25f, 0.5f, 3.0f};
    for (int i = 0; i < OUT * IN; i++) w[i] = vals[(i * 7 + i / 5) % 4];
    for (int t = 0; t < 2; t++) {
        milk_program *p = build(ctx, t ? MILK_TARGET_IOS18 : MILK_TARGET_IOS16, w);
        milk_program *dense = build(ctx, MILK_TARGET_IOS16, w);
        milk_compress_params cp;
        CHECK_OK(ctx, milk_compress_spec_parse(ctx, "palette:2", &cp));
        cp.min_elements = 100;
        CHECK_OK(ctx, milk_program_compress(ctx, p, &cp, NULL));
        float y0[OUT], y1[OUT];
        run(ctx, dense, y0);
        run(ctx, p, y1);
        CHECK(memcmp(y0, y1, sizeof y0) == 0);
        milk_program_free(p);
        milk_program_free(dense);
    }
}

/* 4096 distinct magnitudes 1..4096: pruning 25% zeroes the values <= the
 * value of rank floor(0.25 * 4095) = 1023, that is 1..1024. */
static void test_prune_count(milk_ctx *ctx)
{
    static float w[OUT * IN];
    for (int i = 0; i < OUT * IN; i++) {
        int m = (i * 1021) % (OUT * IN) + 1; /* a permutation of 1..4096 */
        w[i] = (i & 1 ? -1.0f : 1.0f) * (float)m;
    }
    milk_program *p = build(ctx, MILK_TARGET_IOS18, w);
    milk_compress_params cp;
    CHECK_OK(ctx, milk_compress_spec_parse(ctx, "prune:0.25", &cp));
    cp.min_elements = 100;
    cp.measure = 1;
    milk_compress_report *rep;
    CHECK_OK(ctx, milk_compress_report_create(ctx, &rep));
    CHECK_OK(ctx, milk_program_compress(ctx, p, &cp, rep));
    const milk_compress_row *row = milk_compress_report_at(rep, 0);
    /* 3072 fp32 values kept and a 4096-bit mask */
    CHECK_EQ_INT(row ? row->bytes_after : 0, 3072 * 4 + 4096 / 8);
    CHECK_OK(ctx, milk_compress_report_measure(ctx, rep));
    /* the largest value pruned is 1024 */
    CHECK(row && row->measured && row->max_abs == 1024);
    milk_compress_report_free(rep);
    milk_program_free(p);
}

/* A target that cannot express the request: an error, the program as it
 * was. */
static void test_refused(milk_ctx *ctx)
{
    static float w[OUT * IN];
    for (int i = 0; i < OUT * IN; i++) w[i] = (float)(i % 17) - 8;
    milk_program *p = build(ctx, MILK_TARGET_IOS17, w);
    milk_compress_params cp;
    CHECK_OK(ctx, milk_compress_spec_parse(ctx, "int4", &cp));
    CHECK(milk_program_compress(ctx, p, &cp, NULL) == MILK_ERR_UNSUPPORTED);
    CHECK_STR_CONTAINS(milk_ctx_error(ctx), "needs target ios18");
    milk_block *b = milk_function_block(milk_program_function(p, "main"));
    CHECK(strcmp(milk_op_type(milk_block_op(b, 0)), "const") == 0);
    cp.granularity = MILK_GRANULARITY_PER_GROUPED_CHANNEL;
    CHECK(milk_program_compress(ctx, p, &cp, NULL) == MILK_ERR_INVALID_ARG);
    milk_program_free(p);
}

int main(void)
{
    milk_ctx *ctx;
    if (milk_ctx_create(&ctx) != MILK_OK) return 1;
    test_spec(ctx);
    test_int8_exact(ctx);
    test_palette_lossless(ctx);
    test_prune_count(ctx);
    test_refused(ctx);
    milk_ctx_free(ctx);
    return check_report("test_compress");
}
