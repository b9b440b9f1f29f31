/* test_rules2.c: the second edition's rules that look at a program's
 * description and sizes rather than at an op pattern: enum-multi-input
 * (enumerated shapes on several inputs), opset-vs-target (an op newer than
 * the program's target) and weights-2gib (over 2 GiB of weights, never
 * read: the rule adds declared sizes). Each has positive and negative
 * cases; the expected hits are worked out by hand in the comments. */
#include "milk.h"
#include "check.h"
#include "ir/ir.h"

static const char *const all[] = {"all"};

/* Hits of rule `id` alone (enabled by id, every other rule off) on p, for
 * target t (0: the program's). */
static int hits(milk_ctx *ctx, const milk_program *p, const char *id, milk_target t,
                char *detail, size_t n)
{
    milk_rule_options o = {0};
    const char *en[] = {id};
    o.target = t;
    o.enable = en;
    o.n_enable = 1;
    o.disable = all;
    o.n_disable = 1;
    milk_rule_report *r;
    CHECK_OK(ctx, milk_rule_report_create(ctx, &r));
    CHECK_OK(ctx, milk_rules_check(ctx, p, &o, r));
    int k = milk_rule_report_count(r);
    if (detail && k) snprintf(detail, n, "%s", milk_rule_report_at(r, 0)->detail);
    milk_rule_report_free(r);
    return k;
}

/* main(x [1, 4]) -> relu */
static milk_program *tiny(milk_ctx *ctx, milk_target t, milk_function **fo)
{
    milk_program *p;
    milk_function *f;
    milk_var *x;
    milk_op *op;
    CHECK_OK(ctx, milk_program_create(ctx, t, &p));
    CHECK_OK(ctx, milk_program_add_function(ctx, p, "main", &f));
    milk_tensor_type tt = {MILK_DTYPE_FP32, 2, {1, 4}};
    CHECK_OK(ctx, milk_function_add_input(ctx, f, "x", &tt, &x));
    milk_input in[] = {{"x", x}};
    CHECK_OK(ctx, milk_block_add_op(ctx, milk_function_block(f), "relu", "y", in, 1, &op));
    CHECK_OK(ctx, milk_block_add_output(ctx, milk_function_block(f), milk_op_output(op, 0)));
    if (fo) *fo = f;
    return p;
}

static void test_enum_multi_input(milk_ctx *ctx)
{
    milk_program *p = tiny(ctx, MILK_TARGET_IOS17, NULL);
    char d[800] = "";
    /* no description: nothing */
    CHECK_EQ_INT(hits(ctx, p, "enum-multi-input", 0, NULL, 0), 0);
    /* two inputs with enumerated shapes (2 and 3 shapes) */
    static int64_t shapes[6][2] = {{1, 4}, {1, 8}, {1, 4}, {1, 8}, {1, 16}, {0, 0}};
    milk_feature fs[3] = {{0}};
    fs[0].name = "x";
    fs[0].rank = 2;
    fs[0].n_enum = 2;
    fs[0].enum_shapes = &shapes[0][0];
    fs[1].name = "z";
    fs[1].rank = 2;
    fs[1].n_enum = 3;
    fs[1].enum_shapes = &shapes[2][0];
    fs[2].name = "w"; /* fixed shape */
    fs[2].rank = 2;
    p->has_features = true;
    p->in_features = fs;
    p->n_in_features = 3;
    /* iOS17: refused, both inputs named */
    CHECK_EQ_INT(hits(ctx, p, "enum-multi-input", 0, d, sizeof d), 1);
    CHECK_STR_CONTAINS(d, "2 inputs with enumerated shapes: 'x' (2), 'z' (3); target ios17");
    /* iOS18: several are fine, but they must list as many shapes */
    CHECK_EQ_INT(hits(ctx, p, "enum-multi-input", MILK_TARGET_IOS18, d, sizeof d), 1);
    CHECK_STR_CONTAINS(d, "different numbers of shapes");
    fs[1].n_enum = 2;
    CHECK_EQ_INT(hits(ctx, p, "enum-multi-input", MILK_TARGET_IOS18, NULL, 0), 0);
    /* one enumerated input: fine anywhere */
    fs[1].n_enum = 0;
    CHECK_EQ_INT(hits(ctx, p, "enum-multi-input", 0, NULL, 0), 0);
    /* a refusal stops milk_rules_apply with the rule named */
    fs[1].n_enum = 3;
    milk_rule_options o = {0};
    CHECK(milk_rules_apply(ctx, p, &o, NULL) == MILK_ERR_UNSUPPORTED);
    CHECK_STR_CONTAINS(milk_ctx_error(ctx), "enum-multi-input");
    p->in_features = NULL; /* the arrays are on the stack */
    p->n_in_features = 0;
    p->has_features = false;
    milk_program_free(p);
}

static void test_opset_vs_target(milk_ctx *ctx)
{
    /* scaled_dot_product_attention exists from iOS18 */
    milk_program *p;
    milk_function *f;
    milk_var *q;
    milk_op *op;
    CHECK_OK(ctx, milk_program_create(ctx, MILK_TARGET_IOS18, &p));
    CHECK_OK(ctx, milk_program_add_function(ctx, p, "main", &f));
    milk_tensor_type t = {MILK_DTYPE_FP32, 3, {1, 4, 8}};
    CHECK_OK(ctx, milk_function_add_input(ctx, f, "q", &t, &q));
    milk_input in[] = {{"query", q}, {"key", q}, {"value", q}};
    CHECK_OK(ctx, milk_block_add_op(ctx, milk_function_block(f), "scaled_dot_product_attention",
                                    "a", in, 3, &op));
    CHECK_OK(ctx, milk_block_add_output(ctx, milk_function_block(f), milk_op_output(op, 0)));
    char d[800] = "";
    /* declared iOS18: nothing; `lint --target ios17` does not change that */
    CHECK_EQ_INT(hits(ctx, p, "opset-vs-target", 0, NULL, 0), 0);
    CHECK_EQ_INT(hits(ctx, p, "opset-vs-target", MILK_TARGET_IOS17, NULL, 0), 0);
    /* a package declaring iOS17 (specification version 8) with this
     * function: the function's opset and the op are both too new */
    p->target = MILK_TARGET_IOS17;
    CHECK_EQ_INT(hits(ctx, p, "opset-vs-target", 0, d, sizeof d), 2);
    CHECK_STR_CONTAINS(d, "function 'main' is written for the ios18 opset (CoreML8), newer than the program's target ios17");
    milk_program_free(p);
    /* an iOS17 function in an iOS17 program: nothing */
    p = tiny(ctx, MILK_TARGET_IOS17, NULL);
    CHECK_EQ_INT(hits(ctx, p, "opset-vs-target", 0, NULL, 0), 0);
    milk_program_free(p);
}

static void test_weights_2gib(milk_ctx *ctx)
{
    milk_function *f;
    milk_program *p = tiny(ctx, MILK_TARGET_IOS16, &f);
    milk_var *w;
    /* 2^29 + 2^20 fp32 elements = 2 GiB + 4 MiB, in a file never read */
    milk_tensor_type big = {MILK_DTYPE_FP32, 1, {(INT64_C(1) << 29) + (INT64_C(1) << 20)}};
    CHECK_OK(ctx, milk_block_add_const_file(ctx, milk_function_block(f), "w", &big,
                                            "/nonexistent/weights.bin", 0, MILK_DTYPE_FP32, &w));
    char d[800] = "";
    CHECK_EQ_INT(hits(ctx, p, "weights-2gib", 0, d, sizeof d), 1);
    CHECK_STR_CONTAINS(d, "2.00 GiB of weights");
    /* selected by its scope for iOS15 and iOS16 only */
    milk_rule_options o = {0};
    milk_rule_report *r;
    CHECK_OK(ctx, milk_rule_report_create(ctx, &r));
    o.target = MILK_TARGET_IOS17;
    CHECK_OK(ctx, milk_rules_check(ctx, p, &o, r));
    int n = 0;
    for (int i = 0; i < milk_rule_report_count(r); i++)
        n += strcmp(milk_rule_report_at(r, i)->pass, "weights-2gib") == 0;
    CHECK_EQ_INT(n, 0);
    milk_rule_report_free(r);
    milk_program_free(p);
    /* exactly 2 GiB is not above it */
    p = tiny(ctx, MILK_TARGET_IOS16, &f);
    milk_tensor_type two = {MILK_DTYPE_FP16, 1, {INT64_C(1) << 30}};
    CHECK_OK(ctx, milk_block_add_const_file(ctx, milk_function_block(f), "w", &two,
                                            "/nonexistent/weights.bin", 0, MILK_DTYPE_FP16, &w));
    CHECK_EQ_INT(hits(ctx, p, "weights-2gib", 0, NULL, 0), 0);
    milk_program_free(p);
}

int main(void)
{
    milk_ctx *ctx;
    if (milk_ctx_create(&ctx) != MILK_OK) return 1;
    test_enum_multi_input(ctx);
    test_opset_vs_target(ctx);
    test_weights_2gib(ctx);
    milk_ctx_free(ctx);
    return check_report("test_rules2");
}
