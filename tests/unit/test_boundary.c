/* test_boundary.c: the boundary pass (milk_pass_io_boundary) on programs
 * built by hand: bool, rank-0 and int64 inputs and outputs become int32 /
 * [1] with their names kept, the report says what changed, the recorded
 * model description follows, the caller's hooks and output names are
 * honoured, and the rewritten program computes what the original did
 * (values worked out by hand below). */
#include "milk.h"
#include "check.h"
#include "passes/passes.h"

#include <stdlib.h>

/* main(b: bool [3], s: fp32 [], i: int64 [2], x: fp32 [2]) ->
 *   nb = logical_not(b)       bool [3]
 *   y  = mul(s, 3)            fp32 []
 *   b itself                  bool [3]
 *   i itself                  int64 [2] (no MIL op takes int64: only
 *                             inputs and consts are)
 *   r  = relu(x)              fp32 [2] (nothing to change) */
static milk_program *io_program(milk_ctx *ctx)
{
    milk_program *p;
    milk_function *f;
    milk_var *b, *s, *i, *x, *three;
    milk_op *op;
    CHECK_OK(ctx, milk_program_create(ctx, MILK_TARGET_IOS17, &p));
    CHECK_OK(ctx, milk_program_add_function(ctx, p, "main", &f));
    milk_block *blk = milk_function_block(f);
    milk_tensor_type tb = {MILK_DTYPE_BOOL, 1, {3}}, ts = {MILK_DTYPE_FP32, 0, {0}},
                     ti = {MILK_DTYPE_INT64, 1, {2}}, tx = {MILK_DTYPE_FP32, 1, {2}};
    CHECK_OK(ctx, milk_function_add_input(ctx, f, "b", &tb, &b));
    CHECK_OK(ctx, milk_function_add_input(ctx, f, "s", &ts, &s));
    CHECK_OK(ctx, milk_function_add_input(ctx, f, "i", &ti, &i));
    CHECK_OK(ctx, milk_function_add_input(ctx, f, "x", &tx, &x));
    CHECK_OK(ctx, milk_block_add_const_fp32(ctx, blk, "three", 3.0f, &three));
    milk_input not_in[] = {{"x", b}}, mul_in[] = {{"x", s}, {"y", three}},
               relu_in[] = {{"x", x}};
    CHECK_OK(ctx, milk_block_add_op(ctx, blk, "logical_not", "nb", not_in, 1, &op));
    CHECK_OK(ctx, milk_block_add_output(ctx, blk, milk_op_output(op, 0)));
    CHECK_OK(ctx, milk_block_add_op(ctx, blk, "mul", "y", mul_in, 2, &op));
    CHECK_OK(ctx, milk_block_add_output(ctx, blk, milk_op_output(op, 0)));
    CHECK_OK(ctx, milk_block_add_output(ctx, blk, b));
    CHECK_OK(ctx, milk_block_add_output(ctx, blk, i));
    CHECK_OK(ctx, milk_block_add_op(ctx, blk, "relu", "r", relu_in, 1, &op));
    CHECK_OK(ctx, milk_block_add_output(ctx, blk, milk_op_output(op, 0)));
    return p;
}

/* A model description as read from a package, for main's signature. */
static void describe(milk_program *p)
{
    static const char *const in[] = {"b", "s", "i", "x"}, *const out[] = {"nb", "y", "r"};
    milk_function *f = milk_program_function(p, "main");
    p->has_features = true;
    p->n_in_features = 4;
    p->n_out_features = 3;
    p->in_features = milk_arena_alloc(p->arena, 4 * sizeof *p->in_features);
    p->out_features = milk_arena_alloc(p->arena, 3 * sizeof *p->out_features);
    for (int k = 0; k < 7; k++) {
        milk_feature *ft = k < 4 ? &p->in_features[k] : &p->out_features[k - 4];
        const milk_var *v = k < 4 ? milk_function_var(f, in[k]) : milk_function_var(f, out[k - 4]);
        ft->name = k < 4 ? in[k] : out[k - 4];
        ft->kind = MILK_FEATURE_ARRAY;
        ft->rank = v->type.rank;
        memcpy(ft->shape, v->type.dims, sizeof ft->shape);
        ft->array_dtype = 65568; /* FLOAT32, as a package would have it */
    }
}

static bool same_type(const milk_tensor_type *t, milk_dtype dt, int rank, int64_t d0)
{
    return t->dtype == dt && t->rank == rank && (rank == 0 || t->dims[0] == d0);
}

/* Run the rewritten program on b = [1, 0, 1], s = [2.5], i = [4, -9],
 * x = [-1, 2] and check every output against values worked out by hand. */
static void check_values(milk_ctx *ctx, const milk_program *p)
{
    milk_runner *r;
    int32_t b[3] = {1, 0, 1}, i[2] = {4, -9}, ints[3] = {0};
    float s[1] = {2.5f}, x[2] = {-1.0f, 2.0f}, fl[2] = {0};
    milk_tensor_type tb = {MILK_DTYPE_INT32, 1, {3}}, ts = {MILK_DTYPE_FP32, 1, {1}},
                     ti = {MILK_DTYPE_INT32, 1, {2}}, tx = {MILK_DTYPE_FP32, 1, {2}};
    CHECK_OK(ctx, milk_runner_create(ctx, p, NULL, &r));
    CHECK_OK(ctx, milk_runner_set_input(ctx, r, "b", &tb, b));
    CHECK_OK(ctx, milk_runner_set_input(ctx, r, "s", &ts, s));
    CHECK_OK(ctx, milk_runner_set_input(ctx, r, "i", &ti, i));
    CHECK_OK(ctx, milk_runner_set_input(ctx, r, "x", &tx, x));
    CHECK_OK(ctx, milk_runner_run(ctx, r));
    CHECK_OK(ctx, milk_runner_read(ctx, r, "nb", MILK_DTYPE_INT32, ints, sizeof ints));
    CHECK(ints[0] == 0 && ints[1] == 1 && ints[2] == 0);
    CHECK_OK(ctx, milk_runner_read(ctx, r, "y", MILK_DTYPE_FP32, fl, sizeof fl));
    CHECK(fl[0] == 7.5f);
    CHECK_EQ_INT(milk_runner_type(r, "y")->dims[0], 1);
    CHECK_OK(ctx, milk_runner_read(ctx, r, "i", MILK_DTYPE_INT32, ints, sizeof ints));
    CHECK(ints[0] == 4 && ints[1] == -9);
    CHECK_OK(ctx, milk_runner_read(ctx, r, "bout", MILK_DTYPE_INT32, ints, sizeof ints));
    CHECK(ints[0] == 1 && ints[1] == 0 && ints[2] == 1);
    CHECK_OK(ctx, milk_runner_read(ctx, r, "r", MILK_DTYPE_FP32, fl, sizeof fl));
    CHECK(fl[0] == 0.0f && fl[1] == 2.0f);
    milk_runner_free(r);
}

/* What the hooks saw. */
typedef struct seen {
    char ops[256];
    int done[8], n_done;
    bool done_changed[8];
} seen;

static milk_status on_op(void *user, const milk_io_change *ch, milk_op *op)
{
    seen *s = user;
    size_t k = strlen(s->ops);
    snprintf(s->ops + k, sizeof s->ops - k, "%s%s %s:%s", k ? ", " : "",
             ch->output ? "out" : "in", ch->name, milk_op_type(op));
    return MILK_OK;
}

static milk_status on_done(void *user, int i, const milk_io_change *ch)
{
    seen *s = user;
    if (s->n_done < 8) {
        s->done_changed[s->n_done] = ch != NULL;
        s->done[s->n_done++] = i;
    }
    return MILK_OK;
}

static void check_io_report(const milk_io_report *r)
{
    CHECK_EQ_INT(r->n, 6); /* inputs b, s, i; outputs nb, y, bout */
    if (r->n != 6) return;
    static const struct { bool out; int index; const char *name; unsigned kinds; } want[] = {
        {false, 0, "b", MILK_IO_BOOL},    {false, 1, "s", MILK_IO_SCALAR},
        {false, 2, "i", MILK_IO_INT64},   {true, 0, "nb", MILK_IO_BOOL},
        {true, 1, "y", MILK_IO_SCALAR},   {true, 2, "bout", MILK_IO_BOOL},
    };
    for (int k = 0; k < 6; k++) {
        const milk_io_change *ch = &r->changes[k];
        CHECK(ch->output == want[k].out && ch->index == want[k].index);
        CHECK(strcmp(ch->name, want[k].name) == 0);
        CHECK_EQ_INT(ch->kinds, want[k].kinds);
        CHECK(ch->now.dtype != MILK_DTYPE_BOOL && ch->now.dtype != MILK_DTYPE_INT64);
        CHECK(ch->now.rank >= 1);
    }
    CHECK(same_type(&r->changes[1].was, MILK_DTYPE_FP32, 0, 0));
    CHECK(same_type(&r->changes[1].now, MILK_DTYPE_FP32, 1, 1));
    /* the var the ops read in place of s is the squeeze inside */
    CHECK(strcmp(milk_op_type(milk_var_producer(r->changes[1].inner)), "squeeze") == 0);
    /* i is only retyped: its readers read it */
    CHECK(strcmp(milk_var_name(r->changes[2].inner), "i") == 0);
}

static void test_boundary(milk_ctx *ctx)
{
    milk_program *p = io_program(ctx);
    milk_function *f = milk_program_function(p, "main");
    milk_block *b = milk_function_block(f);
    describe(p);
    /* output 2 is input b itself: a model output needs a name of its own */
    const char *names[] = {NULL, NULL, "bout", NULL, NULL};
    seen s = {{0}};
    milk_io_params params = {names, on_op, on_done, &s};
    milk_io_report r = {0};
    CHECK_OK(ctx, milk_pass_io_boundary(ctx, p, f, &params, &r));
    CHECK_OK(ctx, milk_program_check(ctx, p));
    check_io_report(&r);
    /* inputs keep their names; only int32 of rank >= 1 is left */
    static const char *const in[] = {"b", "s", "i", "x"};
    for (int k = 0; k < 4; k++) CHECK(strcmp(milk_var_name(milk_function_input(f, k)), in[k]) == 0);
    CHECK(same_type(milk_var_type(milk_function_input(f, 0)), MILK_DTYPE_INT32, 1, 3));
    CHECK(same_type(milk_var_type(milk_function_input(f, 1)), MILK_DTYPE_FP32, 1, 1));
    CHECK(same_type(milk_var_type(milk_function_input(f, 2)), MILK_DTYPE_INT32, 1, 2));
    static const char *const out[] = {"nb", "y", "bout", "r"};
    static const char *const made_by[] = {"cast", "expand_dims", "cast", "relu"};
    for (int k = 0; k < 4; k++) {
        milk_var *o = milk_block_output(b, k < 3 ? k : 4);
        CHECK(strcmp(milk_var_name(o), out[k]) == 0);
        CHECK(strcmp(milk_op_type(milk_var_producer(o)), made_by[k]) == 0);
        CHECK(strcmp(milk_op_name(milk_var_producer(o)), out[k]) == 0);
        CHECK(milk_var_type(o)->dtype != MILK_DTYPE_BOOL && milk_var_type(o)->rank >= 1);
    }
    /* output 3 is input i, retyped: nothing else to do for it */
    CHECK(milk_block_output(b, 3) == milk_function_input(f, 2));
    /* the hooks: each op made, then each output done in order */
    CHECK(strcmp(s.ops, "in b:cast, in s:squeeze, out nb:cast, out y:expand_dims, "
                        "out bout:cast") == 0);
    CHECK_EQ_INT(s.n_done, 5);
    for (int k = 0; k < s.n_done; k++) CHECK_EQ_INT(s.done[k], k);
    CHECK(s.done_changed[0] && s.done_changed[2] && !s.done_changed[3] && !s.done_changed[4]);
    /* the description follows: int32 (ArrayDataType 131104) and [1] */
    CHECK_EQ_INT(p->in_features[0].array_dtype, 131104);
    CHECK(p->in_features[1].rank == 1 && p->in_features[1].shape[0] == 1);
    CHECK_EQ_INT(p->in_features[1].array_dtype, 65568);
    CHECK(p->out_features[1].rank == 1 && p->out_features[1].shape[0] == 1);
    CHECK_EQ_INT(p->out_features[0].array_dtype, 131104);
    CHECK_EQ_INT(p->out_features[2].array_dtype, 65568);
    check_values(ctx, p);
    /* a second run changes nothing */
    milk_io_report again = {0};
    int ops = milk_block_op_count(b);
    CHECK_OK(ctx, milk_pass_io_boundary(ctx, p, f, NULL, &again));
    CHECK_EQ_INT(again.n, 0);
    CHECK_EQ_INT(milk_block_op_count(b), ops);
    milk_program_free(p);
}

/* The name an output is to take is held by a helper var (moved away) or
 * by the output's own var (moved to <name>_value). */
static void test_names(milk_ctx *ctx)
{
    milk_program *p;
    milk_function *f;
    milk_var *b, *t;
    milk_op *op;
    CHECK_OK(ctx, milk_program_create(ctx, MILK_TARGET_IOS17, &p));
    CHECK_OK(ctx, milk_program_add_function(ctx, p, "main", &f));
    milk_block *blk = milk_function_block(f);
    milk_tensor_type tb = {MILK_DTYPE_BOOL, 1, {2}};
    CHECK_OK(ctx, milk_function_add_input(ctx, f, "b", &tb, &b));
    milk_input in[] = {{"x", b}};
    CHECK_OK(ctx, milk_block_add_op(ctx, blk, "logical_not", "taken", in, 1, &op));
    t = milk_op_output(op, 0);
    milk_input in2[] = {{"x", t}};
    CHECK_OK(ctx, milk_block_add_op(ctx, blk, "logical_not", "o", in2, 1, &op));
    CHECK_OK(ctx, milk_block_add_output(ctx, blk, milk_op_output(op, 0)));
    const char *names[] = {"taken"};
    milk_io_params params = {.output_names = names};
    CHECK_OK(ctx, milk_pass_io_boundary(ctx, p, f, &params, NULL));
    CHECK_OK(ctx, milk_program_check(ctx, p));
    milk_var *o = milk_block_output(blk, 0);
    CHECK(strcmp(milk_var_name(o), "taken") == 0);
    CHECK(strcmp(milk_op_type(milk_var_producer(o)), "cast") == 0);
    CHECK(strcmp(milk_var_name(t), "taken") != 0);       /* the helper moved */
    CHECK(strcmp(milk_op_name(milk_var_producer(t)), milk_var_name(t)) == 0);
    CHECK(milk_function_var(f, "o") != NULL);            /* not asked to move */
    milk_program_free(p);
}

int main(void)
{
    milk_ctx *ctx;
    if (milk_ctx_create(&ctx) != MILK_OK) return 1;
    test_boundary(ctx);
    test_names(ctx);
    milk_ctx_free(ctx);
    return check_report("test_boundary");
}
