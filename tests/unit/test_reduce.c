/* test_reduce.c: milk_program_reduce with the caller's check (the C API's
 * own predicate): a program of 8 ops fails when it holds both an exp and
 * a mul; the search must end on exactly those two ops (1-minimal), every
 * candidate it tried must be a distinct set, and cut points must become
 * inputs. The expected sets are worked out by hand in the comments. */
#include "milk.h"
#include "check.h"

#include <stdlib.h>

/* x -> a = relu(x) -> b = exp(a) -> c = add(b, x) -> d = sigmoid(c)
 *   -> e = mul(d, d) -> f = tanh(e) -> g = abs(f) -> h = sqrt(g); out h */
static milk_program *build(milk_ctx *ctx)
{
    static const char *const types[] = {"relu", "exp", "add", "sigmoid", "mul", "tanh", "abs",
                                        "sqrt"};
    static const char *const names[] = {"a", "b", "c", "d", "e", "f", "g", "h"};
    milk_program *p;
    milk_function *f;
    milk_var *x, *prev;
    CHECK_OK(ctx, milk_program_create(ctx, MILK_TARGET_IOS17, &p));
    CHECK_OK(ctx, milk_program_add_function(ctx, p, "main", &f));
    milk_tensor_type t = {MILK_DTYPE_FP32, 1, {4}};
    CHECK_OK(ctx, milk_function_add_input(ctx, f, "x", &t, &x));
    milk_block *b = milk_function_block(f);
    prev = x;
    for (int i = 0; i < 8; i++) {
        milk_op *op;
        milk_input in[2] = {{"x", prev}, {"y", i == 2 ? x : prev}};
        int n = strcmp(types[i], "add") == 0 || strcmp(types[i], "mul") == 0 ? 2 : 1;
        CHECK_OK(ctx, milk_block_add_op(ctx, b, types[i], names[i], in, n, &op));
        prev = milk_op_output(op, 0);
    }
    CHECK_OK(ctx, milk_block_add_output(ctx, b, prev));
    return p;
}

typedef struct seen {
    int calls;
    int inputs_ok; /* every candidate's inputs are vars of the source */
} seen;

static int has(const milk_program *q, const char *type)
{
    const milk_block *b = milk_function_block(milk_program_function(q, "main"));
    for (int i = 0; i < milk_block_op_count(b); i++)
        if (strcmp(milk_op_type(milk_block_op(b, i)), type) == 0) return 1;
    return 0;
}

static milk_reduce_verdict exp_and_mul(void *user, const milk_program *q, char *why, size_t n)
{
    seen *s = user;
    const milk_function *f = milk_program_function(q, "main");
    s->calls++;
    for (int i = 0; i < milk_function_input_count(f); i++) {
        const char *in = milk_var_name(milk_function_input(f, i));
        s->inputs_ok &= strlen(in) == 1 && strchr("xabcdefgh", in[0]) != NULL;
    }
    int bad = has(q, "exp") && has(q, "mul");
    snprintf(why, n, "%s", bad ? "exp and mul" : "not both");
    return bad ? MILK_REDUCE_BAD : MILK_REDUCE_GOOD;
}

static milk_reduce_verdict never(void *user, const milk_program *q, char *why, size_t n)
{
    (void)user;
    (void)q;
    (void)why;
    (void)n;
    return MILK_REDUCE_GOOD;
}

static int same_set(const milk_reduce_step *a, const milk_reduce_step *b)
{
    return strcmp(a->change, b->change) == 0 && a->n_ops == b->n_ops &&
           strcmp(a->phase, b->phase) == 0;
}

static void test_callback(milk_ctx *ctx)
{
    milk_program *p = build(ctx);
    seen s = {0, 1};
    milk_reduce_params rp = {0};
    rp.check = MILK_REDUCE_CALLBACK;
    rp.fn = exp_and_mul;
    rp.user = &s;
    rp.verify.flags = MILK_VERIFY_SET_SEED;
    rp.verify.seed = 3;
    milk_reduce *r = NULL;
    CHECK_OK(ctx, milk_program_reduce(ctx, p, &rp, &r));
    if (!r) {
        milk_program_free(p);
        return;
    }
    const milk_program *q = milk_reduce_program(r);
    const milk_block *b = milk_function_block(milk_program_function(q, "main"));
    /* the 1-minimal set: exp and mul, nothing else */
    CHECK_EQ_INT(milk_block_op_count(b), 2);
    CHECK(has(q, "exp") && has(q, "mul"));
    /* exp reads a (cut), mul reads d (cut): two inputs */
    const milk_function *f = milk_program_function(q, "main");
    CHECK_EQ_INT(milk_function_input_count(f), 2);
    CHECK(strcmp(milk_var_name(milk_function_input(f, 0)), "a") == 0);
    CHECK(strcmp(milk_var_name(milk_function_input(f, 1)), "d") == 0);
    /* both outputs: b (nothing reads it now) and e */
    CHECK_EQ_INT(milk_block_output_count(b), 2);
    CHECK(s.inputs_ok);
    int n = milk_reduce_step_count(r);
    CHECK_EQ_INT(n, s.calls);
    /* Outputs bisection over 8 ops (good -1, bad 8): k = 3 (d: a..d,
     * good), 5 (f: a..f, bad), 4 (e: a..e, bad): stop at e. Inputs
     * bisection over a..e: j = 2 (c..e, good), j = 1 (b..e, bad): b..e.
     * Then one op at a time, last first: without e (good), d (bad), c
     * (bad), b (good): {b, e}; a second pass removes nothing: without e
     * ({b}, new: good), without b ({e}, seen in the first pass: not tried
     * again). 1 + 3 + 2 + 5 = 11 candidates, the last of 1 op. */
    CHECK_EQ_INT(n, 11);
    for (int i = 0; i < n; i++)
        for (int j = 0; j < i; j++)
            CHECK(!same_set(milk_reduce_step_at(r, i), milk_reduce_step_at(r, j)));
    CHECK(strcmp(milk_reduce_step_at(r, 0)->phase, "whole") == 0);
    CHECK(milk_reduce_step_at(r, n - 1)->n_ops == 1);
    CHECK(milk_reduce_step_at(r, 5)->kept && !milk_reduce_step_at(r, 6)->kept);
    milk_reduce_free(r);

    /* a program that does not fail is not reduced */
    rp.fn = never;
    CHECK(milk_program_reduce(ctx, p, &rp, &r) == MILK_ERR_INVALID_ARG);
    CHECK_STR_CONTAINS(milk_ctx_error(ctx), "does not fail the check");
    CHECK(r == NULL);
    rp.fn = NULL;
    CHECK(milk_program_reduce(ctx, p, &rp, &r) == MILK_ERR_INVALID_ARG);
    milk_program_free(p);
}

int main(void)
{
    milk_ctx *ctx;
    if (milk_ctx_create(&ctx) != MILK_OK) return 1;
    test_callback(ctx);
    milk_ctx_free(ctx);
    return check_report("test_reduce");
}
