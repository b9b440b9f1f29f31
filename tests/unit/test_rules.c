/* test_rules.c: the rule table's API: the table itself, option checking,
 * refusals that leave the program unchanged, the report, rewrites applied
 * with no report, and prelu-scalar (a pattern milk's builder refuses to
 * make, so it is made here through the IR directly). */
#include "milk.h"
#include "check.h"
#include "passes/rules.h"

#include <stdlib.h>

static milk_tensor_type tt(milk_dtype d, int rank, const int64_t *dims)
{
    milk_tensor_type t = {d, rank, {0}};
    for (int i = 0; i < rank; i++) t.dims[i] = dims[i];
    return t;
}

static void test_table(void)
{
    CHECK(milk_rule_count() == milk_n_rules && milk_n_rules >= 29);
    for (int i = 0; i < milk_rule_count(); i++) {
        const milk_rule_info *r = milk_rule_at(i);
        CHECK(milk_rule_find(r->id) == r);
        for (int j = 0; j < i; j++) CHECK(strcmp(milk_rule_at(j)->id, r->id) != 0);
        /* a rewrite has exactly one pass; the others none */
        CHECK((r->action == MILK_RULE_REWRITE) == (milk_rules[i].fix != NULL));
        CHECK(r->condition[0] && r->scope[0] && r->source[0] && r->fix[0]);
    }
    CHECK(milk_rule_at(-1) == NULL && milk_rule_at(milk_rule_count()) == NULL);
    CHECK(milk_rule_find("nope") == NULL);
    for (int u = 0; u < 4; u++)
        CHECK(milk_compute_units_from_name(milk_compute_units_name(u)) == u);
    CHECK(milk_compute_units_from_name("CPU_AND_NE") == MILK_UNITS_CPU_AND_NE);
    CHECK(milk_compute_units_from_name("gpu") == MILK_UNITS_INVALID);
    CHECK(milk_compute_units_name(MILK_UNITS_INVALID) == NULL);
}

/* main(x: [1, 4, 6]) = conv_transpose with a bias, stride 2, pad 1. */
static milk_program *convt_program(milk_ctx *ctx)
{
    milk_program *p;
    milk_function *f;
    milk_var *x, *w, *b, *s, *d, *pad, *pt;
    float wd[4 * 2 * 3], bd[2] = {0.5f, -1.0f};
    for (int i = 0; i < 24; i++) wd[i] = (float)((i * 7) % 5) - 2.0f;
    milk_tensor_type tx = tt(MILK_DTYPE_FP32, 3, (int64_t[]){1, 4, 6});
    milk_tensor_type tw = tt(MILK_DTYPE_FP32, 3, (int64_t[]){4, 2, 3});
    milk_tensor_type tb = tt(MILK_DTYPE_FP32, 1, (int64_t[]){2});
    CHECK_OK(ctx, milk_program_create(ctx, MILK_TARGET_IOS18, &p));
    CHECK_OK(ctx, milk_program_add_function(ctx, p, "main", &f));
    CHECK_OK(ctx, milk_function_add_input(ctx, f, "x", &tx, &x));
    milk_block *blk = milk_function_block(f);
    CHECK_OK(ctx, milk_block_add_const(ctx, blk, "w", &tw, wd, &w));
    CHECK_OK(ctx, milk_block_add_const(ctx, blk, "b", &tb, bd, &b));
    CHECK_OK(ctx, milk_block_add_const_int32s(ctx, blk, "s", (int32_t[]){2}, 1, &s));
    CHECK_OK(ctx, milk_block_add_const_int32s(ctx, blk, "d", (int32_t[]){1}, 1, &d));
    CHECK_OK(ctx, milk_block_add_const_int32s(ctx, blk, "pad", (int32_t[]){1, 1}, 2, &pad));
    CHECK_OK(ctx, milk_block_add_const_string(ctx, blk, "pt", "custom", &pt));
    milk_input in[] = {{"x", x}, {"weight", w}, {"bias", b}, {"strides", s},
                       {"dilations", d}, {"pad", pad}, {"pad_type", pt}};
    milk_op *op;
    CHECK_OK(ctx, milk_block_add_op(ctx, blk, "conv_transpose", "y", in, 7, &op));
    CHECK_OK(ctx, milk_block_add_output(ctx, blk, milk_op_output(op, 0)));
    return p;
}

static void test_options_are_checked(milk_ctx *ctx)
{
    milk_program *p = convt_program(ctx);
    milk_rule_report *r;
    CHECK_OK(ctx, milk_rule_report_create(ctx, &r));
    const char *bad[] = {"convt1d-bias", "no-such-rule"};
    milk_rule_options o = {0};
    o.enable = bad;
    o.n_enable = 2;
    CHECK(milk_rules_check(ctx, p, &o, r) == MILK_ERR_INVALID_ARG);
    CHECK_STR_CONTAINS(milk_ctx_error(ctx), "unknown rule id 'no-such-rule'");
    const char *all[] = {"all"};
    o.enable = all;
    o.n_enable = 1;
    CHECK(milk_rules_check(ctx, p, &o, r) == MILK_ERR_INVALID_ARG); /* "all" only disables */
    memset(&o, 0, sizeof o);
    o.units = (milk_compute_units)9;
    CHECK(milk_rules_apply(ctx, p, &o, r) == MILK_ERR_INVALID_ARG);
    CHECK_EQ_INT(milk_rule_report_count(r), 0);
    milk_rule_report_free(r);
    milk_program_free(p);
}

static void test_check_then_apply(milk_ctx *ctx)
{
    milk_program *p = convt_program(ctx);
    milk_rule_report *r;
    CHECK_OK(ctx, milk_rule_report_create(ctx, &r));
    CHECK_OK(ctx, milk_rules_check(ctx, p, NULL, r));
    CHECK_EQ_INT(milk_rule_report_count(r), 1);
    const milk_rule_hit *h = milk_rule_report_at(r, 0);
    CHECK(h && h->rule == milk_rule_find("convt1d-bias") && !h->fixed);
    CHECK(strcmp(h->op, "y") == 0 && strcmp(h->function, "main") == 0);
    CHECK_EQ_INT(milk_rule_report_unfixed(r, MILK_SEVERITY_ERROR), 1);
    CHECK(milk_rule_report_at(r, 1) == NULL);
    /* apply with no report: rewritten all the same */
    CHECK_OK(ctx, milk_rules_apply(ctx, p, NULL, NULL));
    milk_rule_report_free(r);
    CHECK_OK(ctx, milk_rule_report_create(ctx, &r));
    CHECK_OK(ctx, milk_rules_check(ctx, p, NULL, r));
    CHECK_EQ_INT(milk_rule_report_count(r), 0);
    const milk_block *b = milk_function_block(milk_program_function(p, "main"));
    CHECK(strcmp(milk_var_name(milk_block_output(b, 0)), "y") == 0);
    CHECK(strcmp(milk_op_type(milk_var_producer(milk_block_output(b, 0))), "squeeze") == 0);
    milk_rule_report_free(r);
    milk_program_free(p);
}

static void test_refusal_leaves_program_unchanged(milk_ctx *ctx)
{
    milk_program *p;
    milk_function *f;
    milk_var *x, *shape;
    milk_tensor_type tx = tt(MILK_DTYPE_FP32, 2, (int64_t[]){64, 6});
    CHECK_OK(ctx, milk_program_create(ctx, MILK_TARGET_IOS17, &p));
    CHECK_OK(ctx, milk_program_add_function(ctx, p, "main", &f));
    CHECK_OK(ctx, milk_function_add_input(ctx, f, "x", &tx, &x));
    milk_block *b = milk_function_block(f);
    CHECK_OK(ctx, milk_block_add_const_int32s(ctx, b, "shape", (int32_t[]){2, 2, 2, 2, 4, 6}, 6,
                                              &shape));
    milk_input in[] = {{"x", x}, {"shape", shape}};
    milk_op *op;
    CHECK_OK(ctx, milk_block_add_op(ctx, b, "reshape", "y", in, 2, &op));
    CHECK_OK(ctx, milk_block_add_output(ctx, b, milk_op_output(op, 0)));
    int before = milk_block_op_count(b);
    milk_rule_report *r;
    CHECK_OK(ctx, milk_rule_report_create(ctx, &r));
    CHECK(milk_rules_apply(ctx, p, NULL, r) == MILK_ERR_UNSUPPORTED);
    CHECK_STR_CONTAINS(milk_ctx_error(ctx), "rank-gt-5: op 'y' (reshape)");
    CHECK_EQ_INT(milk_block_op_count(b), before);
    CHECK_EQ_INT(milk_rule_report_count(r), 1);
    CHECK(milk_rule_report_at(r, 0)->rule->action == MILK_RULE_REFUSE);
    /* turned off by id, it no longer refuses */
    const char *off[] = {"rank-gt-5"};
    milk_rule_options o = {0};
    o.disable = off;
    o.n_disable = 1;
    milk_ctx_clear(ctx);
    CHECK_OK(ctx, milk_rules_apply(ctx, p, &o, NULL));
    milk_rule_report_free(r);
    milk_program_free(p);
}

/* prelu(x: [1, 3, 2, 2], alpha = [0.25]): the single-slope pattern, made
 * by rebinding alpha after the op was built with three slopes. */
static void test_prelu_scalar(milk_ctx *ctx)
{
    milk_program *p;
    milk_function *f;
    milk_var *x, *a3, *a1;
    milk_tensor_type tx = tt(MILK_DTYPE_FP32, 4, (int64_t[]){1, 3, 2, 2});
    milk_tensor_type t3 = tt(MILK_DTYPE_FP32, 1, (int64_t[]){3});
    milk_tensor_type t1 = tt(MILK_DTYPE_FP32, 1, (int64_t[]){1});
    CHECK_OK(ctx, milk_program_create(ctx, MILK_TARGET_IOS17, &p));
    CHECK_OK(ctx, milk_program_add_function(ctx, p, "main", &f));
    CHECK_OK(ctx, milk_function_add_input(ctx, f, "x", &tx, &x));
    milk_block *b = milk_function_block(f);
    CHECK_OK(ctx, milk_block_add_const(ctx, b, "a3", &t3, (float[]){1, 2, 3}, &a3));
    CHECK_OK(ctx, milk_block_add_const(ctx, b, "a1", &t1, (float[]){0.25f}, &a1));
    milk_input in[] = {{"x", x}, {"alpha", a3}};
    milk_op *op;
    CHECK_OK(ctx, milk_block_add_op(ctx, b, "prelu", "y", in, 2, &op));
    CHECK_OK(ctx, milk_block_add_output(ctx, b, milk_op_output(op, 0)));
    op->args[1].b[0].var = a1; /* as an old converter wrote it */
    CHECK(milk_program_check(ctx, p) != MILK_OK);
    milk_ctx_clear(ctx);
    milk_rule_report *r;
    CHECK_OK(ctx, milk_rule_report_create(ctx, &r));
    CHECK_OK(ctx, milk_rules_apply(ctx, p, NULL, r));
    CHECK(milk_rule_report_count(r) == 1 && milk_rule_report_at(r, 0)->fixed);
    CHECK_STR_CONTAINS(milk_rule_report_at(r, 0)->detail, "one alpha for 3 channels");
    CHECK_OK(ctx, milk_program_check(ctx, p));
    /* y = x where x > 0, else 0.25 x: values by hand */
    float xd[12], yd[12];
    for (int i = 0; i < 12; i++) xd[i] = (float)(i % 2 ? i : -i);
    milk_runner *run;
    CHECK_OK(ctx, milk_runner_create(ctx, p, NULL, &run));
    CHECK_OK(ctx, milk_runner_set_input(ctx, run, "x", &tx, xd));
    CHECK_OK(ctx, milk_runner_run(ctx, run));
    CHECK_OK(ctx, milk_runner_read(ctx, run, "y", MILK_DTYPE_FP32, yd, sizeof yd));
    for (int i = 0; i < 12; i++) CHECK(yd[i] == (xd[i] > 0 ? xd[i] : 0.25f * xd[i]));
    milk_runner_free(run);
    milk_rule_report_free(r);
    milk_program_free(p);
}

static void test_simplify_empty_and_null_report(milk_ctx *ctx)
{
    milk_program *p = convt_program(ctx);
    CHECK_OK(ctx, milk_program_simplify(ctx, p, MILK_SIMPLIFY_ALL, NULL));
    milk_rule_report *r;
    CHECK_OK(ctx, milk_rule_report_create(ctx, &r));
    CHECK_OK(ctx, milk_program_simplify(ctx, p, MILK_SIMPLIFY_ALL, r));
    CHECK_EQ_INT(milk_rule_report_count(r), 0); /* nothing left to do */
    CHECK_EQ_INT(milk_rule_report_unfixed(r, MILK_SEVERITY_INFO), 0);
    milk_rule_report_free(r);
    milk_rule_report_free(NULL);
    milk_program_free(p);
}

int main(void)
{
    milk_ctx *ctx;
    if (milk_ctx_create(&ctx) != MILK_OK) return 1;
    test_table();
    test_options_are_checked(ctx);
    test_check_then_apply(ctx);
    test_refusal_leaves_program_unchanged(ctx);
    test_prelu_scalar(ctx);
    test_simplify_empty_and_null_report(ctx);
    milk_ctx_free(ctx);
    return check_report("test_rules");
}
