/* test_state.c: states through the C API: a stateful program built with
 * coreml_update_state, checked, saved and loaded again; runs that carry
 * the state from one to the next; the state object's read, write, reset,
 * clear and .npz files; two functions sharing a state; and the errors
 * (a state bound to another op, a write of the wrong type, states below
 * iOS18, flexible inputs beside states, a state read before any write, a
 * state given as an input, an unknown function). Expected values are
 * worked out by hand in the comments. */
#include "milk.h"
#include "check.h"

#include <stdbool.h>
#include <stdlib.h>
#include <unistd.h>

static const milk_tensor_type S4 = {MILK_DTYPE_FP16, 2, {1, 4}};

/* main(state acc, x): y = read_state(acc) + x; acc <- y; outputs y.
 * With `twice`, a second function `peek` reads acc and returns 2 * acc. */
static milk_program *accumulator(milk_ctx *ctx, bool twice)
{
    milk_program *p;
    milk_function *f;
    milk_var *acc, *x;
    milk_op *rd, *add, *upd;
    CHECK_OK(ctx, milk_program_create(ctx, MILK_TARGET_IOS18, &p));
    CHECK_OK(ctx, milk_program_add_function(ctx, p, "main", &f));
    CHECK_OK(ctx, milk_function_add_state(ctx, f, "acc", &S4, &acc));
    CHECK_OK(ctx, milk_function_add_input(ctx, f, "x", &S4, &x));
    milk_block *b = milk_function_block(f);
    milk_input r[] = {{"input", acc}};
    CHECK_OK(ctx, milk_block_add_op(ctx, b, "read_state", "old", r, 1, &rd));
    milk_input a[] = {{"x", milk_op_output(rd, 0)}, {"y", x}};
    CHECK_OK(ctx, milk_block_add_op(ctx, b, "add", "sum", a, 2, &add));
    milk_input u[] = {{"state", acc}, {"value", milk_op_output(add, 0)}};
    CHECK_OK(ctx, milk_block_add_op(ctx, b, "coreml_update_state", "y", u, 2, &upd));
    CHECK_OK(ctx, milk_block_add_output(ctx, b, milk_op_output(upd, 0)));
    if (!twice) return p;
    milk_function *g;
    milk_var *acc2, *two;
    milk_op *rd2, *mul;
    CHECK_OK(ctx, milk_program_add_function(ctx, p, "peek", &g));
    CHECK_OK(ctx, milk_function_add_state(ctx, g, "acc", &S4, &acc2));
    milk_block *gb = milk_function_block(g);
    uint16_t h2 = 0x4000; /* 2.0 */
    milk_tensor_type sc = {MILK_DTYPE_FP16, 0, {0}};
    CHECK_OK(ctx, milk_block_add_const(ctx, gb, "two", &sc, &h2, &two));
    milk_input r2[] = {{"input", acc2}};
    CHECK_OK(ctx, milk_block_add_op(ctx, gb, "read_state", "cur", r2, 1, &rd2));
    milk_input m[] = {{"x", milk_op_output(rd2, 0)}, {"y", two}};
    CHECK_OK(ctx, milk_block_add_op(ctx, gb, "mul", "doubled", m, 2, &mul));
    CHECK_OK(ctx, milk_block_add_output(ctx, gb, milk_op_output(mul, 0)));
    return p;
}

static void step(milk_ctx *ctx, milk_runner *r, float v, float *y)
{
    float x[4] = {v, 2 * v, -v, 0.5f};
    milk_tensor_type t = {MILK_DTYPE_FP32, 2, {1, 4}};
    CHECK_OK(ctx, milk_runner_set_input(ctx, r, "x", &t, x));
    CHECK_OK(ctx, milk_runner_run(ctx, r));
    CHECK_OK(ctx, milk_runner_read(ctx, r, "y", MILK_DTYPE_FP32, y, 4 * sizeof *y));
}

static void test_build_and_run(milk_ctx *ctx)
{
    milk_program *p = accumulator(ctx, false);
    /* coreml_update_state is two ops: write_state, then read_state "y" */
    milk_block *b = milk_function_block(milk_program_function(p, "main"));
    CHECK_EQ_INT(milk_block_op_count(b), 4);
    CHECK(strcmp(milk_op_type(milk_block_op(b, 2)), "write_state") == 0);
    CHECK(strcmp(milk_op_name(milk_block_op(b, 2)), "y_write_state") == 0);
    CHECK_EQ_INT(milk_op_output_count(milk_block_op(b, 2)), 0);
    CHECK(strcmp(milk_op_type(milk_block_op(b, 3)), "read_state") == 0);
    CHECK_OK(ctx, milk_program_check(ctx, p));

    char dir[] = "/tmp/milk_state_XXXXXX", pkg[256];
    CHECK(mkdtemp(dir) != NULL);
    snprintf(pkg, sizeof pkg, "%s/acc.mlpackage", dir);
    CHECK_OK(ctx, milk_program_save(ctx, p, pkg));
    milk_program_free(p);
    CHECK_OK(ctx, milk_program_load(ctx, pkg, &p));
    milk_function *f = milk_program_function(p, "main");
    CHECK(milk_var_is_state(milk_function_input(f, 0)));
    CHECK(!milk_var_is_state(milk_function_input(f, 1)));

    milk_runner *r;
    float y[4];
    CHECK_OK(ctx, milk_runner_create(ctx, p, NULL, &r));
    milk_state *own = milk_runner_state(r);
    CHECK(own != NULL && milk_state_count(own) == 1);
    /* the state starts at zero: y = x, then y = x1 + x2, ... */
    step(ctx, r, 1, y);
    CHECK(y[0] == 1 && y[1] == 2 && y[2] == -1 && y[3] == 0.5f);
    step(ctx, r, 2, y);
    CHECK(y[0] == 3 && y[1] == 6 && y[2] == -3 && y[3] == 1);
    float st[4];
    CHECK_OK(ctx, milk_state_read(ctx, own, "acc", MILK_DTYPE_FP32, st, sizeof st));
    CHECK(st[0] == 3 && st[3] == 1);

    /* write: values are rounded to fp16 (0.1 -> 0.0999755859375), and
     * y = 1.0999755859375 is rounded to fp16 too: 1 + 102/1024 */
    float w[4] = {0.1f, 10, 20, 30};
    milk_tensor_type wt = {MILK_DTYPE_FP32, 2, {1, 4}};
    CHECK_OK(ctx, milk_state_write(ctx, own, "acc", &wt, w));
    step(ctx, r, 1, y);
    CHECK(y[0] == 1.099609375f);
    CHECK(y[1] == 12 && y[2] == 19 && y[3] == 30.5f);
    milk_tensor_type bad = {MILK_DTYPE_FP32, 2, {1, 5}};
    CHECK(milk_state_write(ctx, own, "acc", &bad, w) == MILK_ERR_INVALID_ARG);
    CHECK_STR_CONTAINS(milk_ctx_error(ctx), "state 'acc' is tensor<fp16, [1, 4]>");
    CHECK(milk_state_write(ctx, own, "nope", &wt, w) == MILK_ERR_NOT_FOUND);
    CHECK_STR_CONTAINS(milk_ctx_error(ctx), "the program's states: 'acc'");

    /* a state is not an input */
    CHECK(milk_runner_set_input(ctx, r, "acc", &wt, w) == MILK_ERR_INVALID_ARG);
    CHECK_STR_CONTAINS(milk_ctx_error(ctx), "'acc' is a state, not an input");

    /* .npz round trip of the state, then reset */
    char npz[256];
    snprintf(npz, sizeof npz, "%s/state.npz", dir);
    CHECK_OK(ctx, milk_state_save_npz(ctx, own, npz));
    milk_state_reset(own);
    step(ctx, r, 1, y);
    CHECK(y[0] == 1 && y[1] == 2);
    CHECK_OK(ctx, milk_state_load_npz(ctx, own, npz));
    CHECK_OK(ctx, milk_state_read(ctx, own, "acc", MILK_DTYPE_FP32, st, sizeof st));
    CHECK(st[1] == 12 && st[2] == 19 && st[3] == 30.5f);

    /* cleared: the read_state before any write is an error */
    milk_state_clear(own);
    float x[4] = {0};
    CHECK_OK(ctx, milk_runner_set_input(ctx, r, "x", &wt, x));
    CHECK(milk_runner_run(ctx, r) == MILK_ERR_INVALID_ARG);
    CHECK_STR_CONTAINS(milk_ctx_error(ctx), "state 'acc' is read before any write");
    CHECK(milk_state_read(ctx, own, "acc", MILK_DTYPE_FP32, st, sizeof st) == MILK_ERR_INVALID_ARG);

    milk_runner_free(r);
    milk_program_free(p);
    unlink(npz);
    char mf[512];
    snprintf(mf, sizeof mf, "rm -rf '%s'", dir);
    CHECK(system(mf) == 0);
}

/* Two functions share the state by name: main accumulates, peek reads. */
static void test_shared_state(milk_ctx *ctx)
{
    milk_program *p = accumulator(ctx, true);
    CHECK_OK(ctx, milk_program_check(ctx, p));
    milk_state *s;
    CHECK_OK(ctx, milk_state_create(ctx, p, &s));
    CHECK_EQ_INT(milk_state_count(s), 1);
    milk_run_params pm = {0}, pp = {0};
    pp.function = "peek";
    milk_runner *rm, *rp;
    CHECK_OK(ctx, milk_runner_create(ctx, p, &pm, &rm));
    CHECK_OK(ctx, milk_runner_create(ctx, p, &pp, &rp));
    CHECK_OK(ctx, milk_runner_set_state(ctx, rm, s));
    CHECK_OK(ctx, milk_runner_set_state(ctx, rp, s));
    float y[4], d[4];
    step(ctx, rm, 3, y);
    CHECK_OK(ctx, milk_runner_run(ctx, rp));
    CHECK_OK(ctx, milk_runner_read(ctx, rp, "doubled", MILK_DTYPE_FP32, d, sizeof d));
    /* acc = (3, 6, -3, 0.5): doubled (6, 12, -6, 1) */
    CHECK(d[0] == 6 && d[1] == 12 && d[2] == -6 && d[3] == 1);
    milk_runner_free(rm);
    milk_runner_free(rp);
    milk_state_free(s);

    milk_run_params bad = {0};
    bad.function = "nope";
    milk_runner *r;
    CHECK(milk_runner_create(ctx, p, &bad, &r) == MILK_ERR_NOT_FOUND);
    CHECK_STR_CONTAINS(milk_ctx_error(ctx), "no function 'nope' (the program's functions: 'main', 'peek'");
    milk_program_free(p);
}

static void test_errors(milk_ctx *ctx)
{
    milk_program *p;
    milk_function *f;
    milk_var *acc, *x, *flex;
    milk_op *op;
    /* a state can only go to read_state / write_state */
    CHECK_OK(ctx, milk_program_create(ctx, MILK_TARGET_IOS18, &p));
    CHECK_OK(ctx, milk_program_add_function(ctx, p, "main", &f));
    CHECK_OK(ctx, milk_function_add_state(ctx, f, "acc", &S4, &acc));
    CHECK_OK(ctx, milk_function_add_input(ctx, f, "x", &S4, &x));
    milk_block *b = milk_function_block(f);
    milk_input a[] = {{"x", acc}, {"y", x}};
    CHECK(milk_block_add_op(ctx, b, "add", "bad", a, 2, &op) == MILK_ERR_TYPE);
    CHECK_STR_CONTAINS(milk_ctx_error(ctx), "'acc' is a state: only read_state and write_state take states");
    milk_input r[] = {{"input", x}};
    CHECK(milk_block_add_op(ctx, b, "read_state", "bad2", r, 1, &op) == MILK_ERR_TYPE);
    CHECK_STR_CONTAINS(milk_ctx_error(ctx), "expected a state");
    /* write_state takes exactly the state's type */
    milk_tensor_type t32 = {MILK_DTYPE_FP32, 2, {1, 4}};
    milk_var *x32;
    CHECK_OK(ctx, milk_function_add_input(ctx, f, "x32", &t32, &x32));
    milk_input w[] = {{"input", acc}, {"data", x32}};
    CHECK(milk_block_add_op(ctx, b, "write_state", "bad3", w, 2, &op) == MILK_ERR_TYPE);
    CHECK_STR_CONTAINS(milk_ctx_error(ctx), "the state holds tensor<fp16, [1, 4]>");
    milk_input u[] = {{"state", acc}};
    CHECK(milk_block_add_op(ctx, b, "coreml_update_state", "bad4", u, 1, &op) == MILK_ERR_TYPE);
    CHECK_STR_CONTAINS(milk_ctx_error(ctx), "input 'value': required input is missing");
    CHECK_EQ_INT(milk_block_op_count(b), 0);
    /* a flexible input beside a state */
    milk_tensor_type fl = {MILK_DTYPE_FP16, 2, {1, MILK_DIM_UNKNOWN}};
    CHECK_OK(ctx, milk_function_add_input(ctx, f, "flex", &fl, &flex));
    CHECK(milk_program_check(ctx, p) == MILK_ERR_INVALID_MODEL);
    CHECK_STR_CONTAINS(milk_ctx_error(ctx), "input 'flex' has a flexible shape");
    milk_program_free(p);

    /* states are fp16 and need iOS18 */
    CHECK_OK(ctx, milk_program_create(ctx, MILK_TARGET_IOS18, &p));
    CHECK_OK(ctx, milk_program_add_function(ctx, p, "main", &f));
    CHECK_OK(ctx, milk_function_add_state(ctx, f, "acc", &t32, &acc));
    CHECK(milk_program_check(ctx, p) == MILK_ERR_INVALID_MODEL);
    CHECK_STR_CONTAINS(milk_ctx_error(ctx), "states are fp16 with a static shape");
    milk_program_free(p);
    CHECK_OK(ctx, milk_program_create(ctx, MILK_TARGET_IOS17, &p));
    CHECK_OK(ctx, milk_program_add_function(ctx, p, "main", &f));
    CHECK_OK(ctx, milk_function_add_state(ctx, f, "acc", &S4, &acc));
    CHECK(milk_program_check(ctx, p) == MILK_ERR_INVALID_MODEL);
    CHECK_STR_CONTAINS(milk_ctx_error(ctx), "states need deployment target iOS18");
    /* and the op itself is iOS18 */
    milk_input r2[] = {{"input", acc}};
    CHECK(milk_block_add_op(ctx, milk_function_block(f), "read_state", "rd", r2, 1, &op) == MILK_ERR_TYPE);
    CHECK_STR_CONTAINS(milk_ctx_error(ctx), "needs deployment target ios18");
    milk_program_free(p);
}

/* milk_program_add_function_from: a copy that shares constants by
 * content, keeps states, and a default function. */
static void test_functions(milk_ctx *ctx)
{
    milk_program *src = accumulator(ctx, true), *p;
    CHECK_OK(ctx, milk_program_create(ctx, MILK_TARGET_IOS18, &p));
    CHECK(strcmp(milk_program_default_function(src), "main") == 0);
    CHECK_OK(ctx, milk_program_add_function_from(ctx, p, "step", src, "main"));
    CHECK_OK(ctx, milk_program_add_function_from(ctx, p, "look", src, "peek"));
    CHECK(milk_program_add_function_from(ctx, p, "x", src, "nope") == MILK_ERR_NOT_FOUND);
    CHECK_STR_CONTAINS(milk_ctx_error(ctx), "no function 'nope'");
    CHECK(milk_program_add_function_from(ctx, p, "step", src, NULL) == MILK_ERR_INVALID_ARG);
    /* no main: the first function is the default until one is set */
    CHECK(strcmp(milk_program_default_function(p), "step") == 0);
    CHECK_OK(ctx, milk_program_set_default_function(ctx, p, "look"));
    CHECK(milk_program_set_default_function(ctx, p, "gone") == MILK_ERR_NOT_FOUND);
    CHECK(milk_var_is_state(milk_function_input(milk_program_function(p, "look"), 0)));
    CHECK_OK(ctx, milk_program_check(ctx, p));
    /* the default runs without a name; the state is shared by name */
    milk_runner *r;
    CHECK_OK(ctx, milk_runner_create(ctx, p, NULL, &r));
    CHECK(strcmp(milk_function_name(milk_runner_function(r)), "look") == 0);
    milk_runner_free(r);
    milk_state *s;
    CHECK_OK(ctx, milk_state_create(ctx, p, &s));
    CHECK_EQ_INT(milk_state_count(s), 1);
    milk_state_free(s);
    milk_program_free(src);
    milk_program_free(p);
}

int main(void)
{
    milk_ctx *ctx;
    if (milk_ctx_create(&ctx) != MILK_OK) return 1;
    test_build_and_run(ctx);
    test_shared_state(ctx);
    test_errors(ctx);
    test_functions(ctx);
    milk_ctx_free(ctx);
    return check_report("test_state");
}
