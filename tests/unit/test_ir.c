/* test_ir.c: building programs through the public API: names, consts,
 * ops with inferred types, and the errors for misuse. */
#include "milk.h"
#include "check.h"
#include "ir/ir.h"

static milk_tensor_type tt(milk_dtype d, int rank, const int64_t *dims)
{
    milk_tensor_type t = {d, rank, {0}};
    for (int i = 0; i < rank; i++) t.dims[i] = dims[i];
    return t;
}

static void test_broadcast_add(milk_ctx *ctx)
{
    milk_program *p;
    milk_function *f;
    milk_var *x, *y;
    CHECK_OK(ctx, milk_program_create(ctx, MILK_TARGET_IOS17, &p));
    CHECK_OK(ctx, milk_program_add_function(ctx, p, "main", &f));
    milk_tensor_type tx = tt(MILK_DTYPE_FP32, 3, (int64_t[]){2, 1, 4});
    milk_tensor_type ty = tt(MILK_DTYPE_FP32, 2, (int64_t[]){3, 1});
    CHECK_OK(ctx, milk_function_add_input(ctx, f, "x", &tx, &x));
    CHECK_OK(ctx, milk_function_add_input(ctx, f, "y", &ty, &y));
    milk_block *b = milk_function_block(f);
    milk_op *op;
    milk_input in[] = {{"x", x}, {"y", y}};
    CHECK_OK(ctx, milk_block_add_op(ctx, b, "add", "sum", in, 2, &op));
    /* numpy: (2,1,4) + (3,1) -> (2,3,4) */
    const milk_tensor_type *o = milk_var_type(milk_op_output(op, 0));
    CHECK_EQ_INT(o->rank, 3);
    CHECK_EQ_INT(o->dims[0], 2);
    CHECK_EQ_INT(o->dims[1], 3);
    CHECK_EQ_INT(o->dims[2], 4);
    CHECK(strcmp(milk_var_name(milk_op_output(op, 0)), "sum") == 0);
    CHECK(milk_function_var(f, "sum") == milk_op_output(op, 0));

    /* (2,1,4) + (5,) does not broadcast: error names the op */
    milk_var *z;
    milk_tensor_type tz = tt(MILK_DTYPE_FP32, 1, (int64_t[]){5});
    CHECK_OK(ctx, milk_function_add_input(ctx, f, "z", &tz, &z));
    milk_input bad[] = {{"x", x}, {"y", z}};
    CHECK(milk_block_add_op(ctx, b, "add", "bad", bad, 2, NULL) == MILK_ERR_TYPE);
    CHECK_STR_CONTAINS(milk_ctx_error(ctx), "op 'bad' (add)");
    CHECK(milk_function_var(f, "bad") == NULL);
    CHECK_EQ_INT(milk_block_op_count(b), 1);

    /* duplicate name, unknown op, unknown param, missing input */
    CHECK(milk_function_add_input(ctx, f, "x", &tx, NULL) != MILK_OK);
    CHECK(milk_block_add_op(ctx, b, "frobnicate", "f", in, 2, NULL) == MILK_ERR_UNSUPPORTED);
    milk_input odd[] = {{"x", x}, {"q", y}};
    CHECK(milk_block_add_op(ctx, b, "add", "odd", odd, 2, NULL) == MILK_ERR_TYPE);
    CHECK_STR_CONTAINS(milk_ctx_error(ctx), "input 'q': unknown input");
    CHECK(milk_block_add_op(ctx, b, "add", "half", in, 1, NULL) == MILK_ERR_TYPE);
    CHECK_STR_CONTAINS(milk_ctx_error(ctx), "input 'y': required input is missing");
    milk_program_free(p);
}

static void test_consts(milk_ctx *ctx)
{
    milk_program *p;
    milk_function *f;
    CHECK_OK(ctx, milk_program_create(ctx, MILK_TARGET_IOS15, &p));
    CHECK_OK(ctx, milk_program_add_function(ctx, p, "main", &f));
    milk_block *b = milk_function_block(f);
    milk_var *v;
    CHECK_OK(ctx, milk_block_add_const_int32s(ctx, b, "strides", (int32_t[]){2, 3}, 2, &v));
    const milk_value *val = milk_var_const(v);
    int64_t x;
    CHECK(val != NULL);
    CHECK_OK(ctx, milk_value_get_i64(ctx, val, 1, &x));
    CHECK_EQ_INT(x, 3);
    CHECK_OK(ctx, milk_block_add_const_string(ctx, b, "mode", "EXACT", &v));
    CHECK(strcmp(milk_value_get_str(milk_var_const(v), 0), "EXACT") == 0);
    uint16_t h[3] = {0x3c00, 0xc000, 0x7bff}; /* 1, -2, 65504 */
    milk_tensor_type th = tt(MILK_DTYPE_FP16, 1, (int64_t[]){3});
    CHECK_OK(ctx, milk_block_add_const_borrowed(ctx, b, "w", &th, h, &v));
    double d;
    CHECK_OK(ctx, milk_value_get_f64(ctx, milk_var_const(v), 2, &d));
    CHECK(d == 65504.0);
    CHECK(milk_block_add_const(ctx, b, "bad name", &th, h, NULL) != MILK_OK);
    CHECK_OK(ctx, milk_program_set_metadata(ctx, p, "author", "me"));
    CHECK_OK(ctx, milk_program_set_metadata(ctx, p, "k", "v"));
    CHECK(strcmp(milk_program_metadata(p, "author"), "me") == 0);
    CHECK(strcmp(milk_program_metadata(p, "k"), "v") == 0);
    milk_program_free(p);
}

static void test_fp16(void)
{
    /* values from the IEEE 754 binary16 definition */
    CHECK(milk_fp32_to_fp16(1.0f) == 0x3c00);
    CHECK(milk_fp32_to_fp16(65504.0f) == 0x7bff);
    CHECK(milk_fp32_to_fp16(65520.0f) == 0x7c00);  /* rounds to inf */
    CHECK(milk_fp32_to_fp16(65519.0f) == 0x7bff);
    CHECK(milk_fp32_to_fp16(5.960464477539063e-08f) == 0x0001); /* 2^-24 */
    CHECK(milk_fp32_to_fp16(2.98023223876953125e-08f) == 0x0000); /* 2^-25 tie -> even */
    CHECK(milk_fp32_to_fp16(-0.0f) == 0x8000);
    CHECK(milk_fp32_to_fp16(1.0f + 1.0f / 2048) == 0x3c00); /* tie -> even */
    CHECK(milk_fp32_to_fp16(1.0f + 3.0f / 2048) == 0x3c02);
    CHECK(milk_fp16_to_fp32(0x0001) == 5.960464477539063e-08f);
    CHECK(milk_fp16_to_fp32(0x3555) == 0.333251953125f);
    CHECK(isinf(milk_fp16_to_fp32(0xfc00)) && milk_fp16_to_fp32(0xfc00) < 0);
    CHECK(isnan(milk_fp16_to_fp32(milk_fp32_to_fp16(NAN))));
    /* every half survives a round trip */
    int bad = 0;
    for (uint32_t i = 0; i < 0x10000; i++) {
        uint16_t hh = (uint16_t)i;
        float f = milk_fp16_to_fp32(hh);
        if (!isnan(f) && milk_fp32_to_fp16(f) != hh) bad++;
    }
    CHECK_EQ_INT(bad, 0);
    /* the bulk paths (F16C where present) give the scalar path's bits:
     * edge values, every half-way point between neighbouring halves, and
     * pseudo-random floats */
    enum { N = 1 << 16 };
    static float src[N + 9], rounded[N + 9];
    static uint16_t got[N + 9];
    float edges[] = {0.0f, -0.0f, 65504.0f, 65519.99f, 65520.0f, -65520.0f, INFINITY,
                     -INFINITY, NAN, 5.9604645e-08f, 2.9802322e-08f, 1e-10f, 6.1035156e-05f};
    uint32_t seed = 1;
    for (int i = 0; i < N + 9; i++) {
        uint32_t bits;
        if (i < (int)(sizeof edges / sizeof edges[0])) {
            src[i] = edges[i];
            continue;
        }
        if (i % 2) { /* a tie between two halves */
            float lo = milk_fp16_to_fp32((uint16_t)(i & 0x7bfe));
            float hi = milk_fp16_to_fp32((uint16_t)((i & 0x7bfe) + 1));
            src[i] = lo + (hi - lo) / 2;
            continue;
        }
        seed = seed * 1664525u + 1013904223u;
        bits = seed;
        memcpy(&src[i], &bits, 4);
    }
    milk_fp32_to_fp16_n(src, got, N + 9);
    memcpy(rounded, src, sizeof src);
    milk_round_fp16_n(rounded, N + 9);
    int diff = 0;
    for (int i = 0; i < N + 9; i++) {
        uint16_t want = milk_fp32_to_fp16(src[i]);
        float wr = milk_fp16_to_fp32(want);
        if (got[i] != want) diff++;
        if (memcmp(&rounded[i], &wr, 4) != 0 && !(isnan(wr) && isnan(rounded[i]))) diff++;
    }
    CHECK_EQ_INT(diff, 0);
}

/* Passes' editing helpers: insert at a position, redirect uses, DCE. */
static void test_edit(milk_ctx *ctx)
{
    milk_program *p;
    milk_function *f;
    milk_var *x;
    milk_op *r1, *r2, *dead;
    CHECK_OK(ctx, milk_program_create(ctx, MILK_TARGET_IOS17, &p));
    CHECK_OK(ctx, milk_program_add_function(ctx, p, "main", &f));
    milk_tensor_type t = tt(MILK_DTYPE_FP32, 1, (int64_t[]){3});
    CHECK_OK(ctx, milk_function_add_input(ctx, f, "x", &t, &x));
    milk_block *b = milk_function_block(f);
    milk_input in[] = {{"x", x}};
    CHECK_OK(ctx, milk_block_add_op(ctx, b, "relu", "r1", in, 1, &r1));
    milk_input in2[] = {{"x", milk_op_output(r1, 0)}};
    CHECK_OK(ctx, milk_block_add_op(ctx, b, "relu", "r2", in2, 1, &r2));
    CHECK_OK(ctx, milk_block_add_op(ctx, b, "exp", "dead", in, 1, &dead));
    CHECK_OK(ctx, milk_block_add_output(ctx, b, milk_op_output(r2, 0)));
    /* insert a sigmoid of x before r2, and make r2 read it */
    milk_op *sg;
    CHECK_OK(ctx, milk_block_insert_op(ctx, b, 1, "sigmoid", "sg", in, 1, &sg));
    CHECK(milk_block_op(b, 1) == sg && milk_block_op(b, 2) == r2);
    CHECK_EQ_INT(milk_var_use_count(f, milk_op_output(r1, 0)), 1);
    milk_function_replace_uses(f, milk_op_output(r1, 0), milk_op_output(sg, 0));
    CHECK_EQ_INT(milk_var_use_count(f, milk_op_output(r1, 0)), 0);
    CHECK(milk_op_input_var(r2, 0, 0) == milk_op_output(sg, 0));
    /* r1 and dead are now unused: DCE removes both and frees their names */
    int removed = -1;
    CHECK_OK(ctx, milk_function_dce(ctx, f, &removed));
    CHECK_EQ_INT(removed, 2);
    CHECK_EQ_INT(milk_block_op_count(b), 2);
    CHECK(milk_function_var(f, "r1") == NULL);
    char name[32];
    milk_function_fresh_name(f, "sg", name, sizeof name);
    CHECK(strcmp(name, "sg_1") == 0);
    milk_function_fresh_name(f, "r1", name, sizeof name);
    CHECK(strcmp(name, "r1") == 0);
    milk_program_free(p);
}

int main(void)
{
    milk_ctx *ctx;
    if (milk_ctx_create(&ctx) != MILK_OK) return 1;
    test_broadcast_add(ctx);
    test_consts(ctx);
    test_fp16();
    test_edit(ctx);
    milk_ctx_free(ctx);
    return check_report("test_ir");
}
