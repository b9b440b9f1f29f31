/* elementwise_fast.c: planned fast kernels (see fast.h) of the float
 * element-wise ops whose reference kernels live in unary.c, activation.c
 * and binary.c: activations through milk_vec's map, and add, sub, mul,
 * real_div, maximum and minimum with NumPy broadcasting reduced to runs of
 * contiguous (or scalar) operands. Integer and bool tensors keep their
 * reference kernels. */
#include "fast.h"

/* Elements per task: large enough to pay for waking a thread. */
#define CHUNK ((int64_t)1 << 15)

/* ---- activations --------------------------------------------------------- */

/* A constant float scalar parameter (0 when absent, as the reference
 * kernels read absent parameters). */
static bool const_scalar(milk_ctx *ctx, const milk_op *op, const char *param,
                         float *v)
{
    *v = 0.0f;
    if (milk_op_in_count(op, param) == 0) return true;
    const milk_value *c = milk_op_const(op, param);
    double d;
    if (!c || milk_tensor_type_count(&c->type) != 1 ||
        milk_value_get_f64(ctx, c, 0, &d) != MILK_OK)
        return false;
    *v = (float)d;
    return true;
}

bool milk_fast_act_of(milk_ctx *ctx, const milk_op *op, milk_fnp *f)
{
    memset(f, 0, sizeof *f);
    switch (op->kind) {
    case MILK_OP_relu: f->fn = MILK_FN_RELU; return true;
    case MILK_OP_sigmoid: f->fn = MILK_FN_SIGMOID; return true;
    case MILK_OP_tanh: f->fn = MILK_FN_TANH; return true;
    case MILK_OP_silu: f->fn = MILK_FN_SILU; return true;
    case MILK_OP_erf: f->fn = MILK_FN_ERF; return true;
    case MILK_OP_exp: f->fn = MILK_FN_EXP; return true;
    case MILK_OP_relu6: f->fn = MILK_FN_CLIP; f->b = 6.0f; return true;
    case MILK_OP_clip: f->fn = MILK_FN_CLIP; break;
    case MILK_OP_sigmoid_hard: f->fn = MILK_FN_HARD_SIGMOID; break;
    case MILK_OP_leaky_relu: f->fn = MILK_FN_LEAKY; break;
    case MILK_OP_linear_activation: f->fn = MILK_FN_AFFINE; break;
    case MILK_OP_gelu: {
        const char *m = "EXACT";
        const milk_value *c = milk_op_const(op, "mode");
        if (milk_op_in_count(op, "mode") && !(c && (m = milk_value_get_str(c, 0))))
            return false;
        f->fn = strcmp(m, "EXACT") == 0                ? MILK_FN_GELU
                : strcmp(m, "TANH_APPROXIMATION") == 0 ? MILK_FN_GELU_TANH
                : strcmp(m, "SIGMOID_APPROXIMATION") == 0 ? MILK_FN_GELU_SIGMOID
                                                           : MILK_FN_NONE;
        return f->fn != MILK_FN_NONE;
    }
    default: return false;
    }
    return const_scalar(ctx, op, "alpha", &f->a) &&
           const_scalar(ctx, op, "beta", &f->b);
}

typedef struct map_st {
    milk_fnp f;
    int64_t n;
} map_st;

typedef struct map_job {
    const milk_fast *f;
    const map_st *s;
    const float *x;
    float *y;
} map_job;

static void map_task(void *arg, int64_t task, int worker)
{
    const map_job *j = arg;
    int64_t i0 = task * CHUNK, n = j->s->n - i0 < CHUNK ? j->s->n - i0 : CHUNK;
    j->f->v->map(&j->s->f, j->x + i0, j->y + i0, n);
}

static milk_status unary_run(const milk_fast *f)
{
    const map_st *s = f->state;
    map_job j = {f, s, milk_rt_f32(milk_eval_in(f->ec, "x")),
                 milk_rt_f32(&f->ec->out[0])};
    milk_pool_run(f->pool, (s->n + CHUNK - 1) / CHUNK, map_task, &j);
    return MILK_OK;
}

milk_status milk_fast_unary(milk_eval *ec, milk_arena *a, milk_kernel *k)
{
    const milk_rt *x = milk_eval_in(ec, "x");
    milk_fnp fn;
    if (!x || x->store != MILK_DTYPE_FP32 || ec->out[0].store != MILK_DTYPE_FP32 ||
        x->count != ec->out[0].count || !milk_fast_act_of(ec->ctx, ec->op, &fn))
        return MILK_OK;
    map_st *s = milk_arena_alloc(a, sizeof *s);
    if (!s) return milk_errorf(ec->ctx, MILK_ERR_NOMEM, "out of memory");
    s->f = fn;
    s->n = x->count;
    k->run = unary_run;
    k->state = s;
    return MILK_OK;
}

/* ---- binary ---------------------------------------------------------------- */

/* The broadcast as a loop nest: outer dims (odometer) around one inner run
 * of `inner` elements, where x and y advance by ix, iy (1, or 0 for a
 * broadcast operand). */
typedef struct bin_st {
    milk_bop op;
    int rank; /* outer dims */
    int64_t dims[MILK_MAX_RANK], sx[MILK_MAX_RANK], sy[MILK_MAX_RANK];
    int64_t inner, ix, iy, outer;
    int64_t rows_per_task;
} bin_st;

static void bin_task(void *arg, int64_t task, int worker)
{
    const milk_fast *f = arg;
    const bin_st *s = f->state;
    const float *x = milk_rt_f32(milk_eval_in(f->ec, "x"));
    const float *y = milk_rt_f32(milk_eval_in(f->ec, "y"));
    float *o = milk_rt_f32(&f->ec->out[0]);
    int64_t r0 = task * s->rows_per_task;
    int64_t r1 = r0 + s->rows_per_task < s->outer ? r0 + s->rows_per_task : s->outer;
    for (int64_t r = r0; r < r1; r++) {
        int64_t ox = 0, oy = 0, t = r;
        for (int d = s->rank - 1; d >= 0; d--) {
            int64_t i = t % s->dims[d];
            t /= s->dims[d];
            ox += i * s->sx[d];
            oy += i * s->sy[d];
        }
        f->v->binary(s->op, x + ox, s->ix, y + oy, s->iy, o + r * s->inner, s->inner);
    }
}

static milk_status binary_run(const milk_fast *f)
{
    const bin_st *s = f->state;
    milk_pool_run(f->pool, (s->outer + s->rows_per_task - 1) / s->rows_per_task,
                  bin_task, (void *)f);
    return MILK_OK;
}

/* Strides of t aligned to out's dims (0 where broadcast). */
static void bstrides(const milk_tensor_type *out, const milk_tensor_type *t,
                     int64_t *s)
{
    int64_t st[MILK_MAX_RANK];
    milk_strides(t, st);
    for (int i = 0; i < out->rank; i++) {
        int j = i - (out->rank - t->rank);
        s[i] = j >= 0 && t->dims[j] != 1 ? st[j] : 0;
    }
}

milk_status milk_fast_binary(milk_eval *ec, milk_arena *a, milk_kernel *k)
{
    static const struct { int kind; milk_bop op; } ops[] = {
        {MILK_OP_add, MILK_BOP_ADD}, {MILK_OP_sub, MILK_BOP_SUB},
        {MILK_OP_mul, MILK_BOP_MUL}, {MILK_OP_real_div, MILK_BOP_DIV},
        {MILK_OP_maximum, MILK_BOP_MAX}, {MILK_OP_minimum, MILK_BOP_MIN},
    };
    const milk_rt *x = milk_eval_in(ec, "x"), *y = milk_eval_in(ec, "y");
    const milk_rt *o = &ec->out[0];
    if (x->store != MILK_DTYPE_FP32 || y->store != MILK_DTYPE_FP32 ||
        o->store != MILK_DTYPE_FP32 || o->count == 0 ||
        x->type.rank > o->type.rank || y->type.rank > o->type.rank)
        return MILK_OK;
    bin_st *s = milk_arena_alloc(a, sizeof *s);
    if (!s) return milk_errorf(ec->ctx, MILK_ERR_NOMEM, "out of memory");
    memset(s, 0, sizeof *s);
    s->op = (milk_bop)-1;
    for (size_t i = 0; i < MILK_ARRAY_LEN(ops); i++)
        if (ops[i].kind == ec->op->kind) s->op = ops[i].op;
    if ((int)s->op < 0) return MILK_OK;
    const milk_tensor_type *ot = &o->type;
    int64_t sx[MILK_MAX_RANK], sy[MILK_MAX_RANK], dims[MILK_MAX_RANK];
    bstrides(ot, &x->type, sx);
    bstrides(ot, &y->type, sy);
    /* merge adjacent dims that walk both operands contiguously (or keep
     * one broadcast across both), dropping size-1 dims */
    int n = 0;
    for (int i = 0; i < ot->rank; i++) {
        if (ot->dims[i] == 1) continue;
        if (n > 0 && sx[i] * ot->dims[i] == sx[n - 1] && sy[i] * ot->dims[i] == sy[n - 1]) {
            dims[n - 1] *= ot->dims[i];
            sx[n - 1] = sx[i];
            sy[n - 1] = sy[i];
            continue;
        }
        dims[n] = ot->dims[i];
        sx[n] = sx[i];
        sy[n] = sy[i];
        n++;
    }
    if (n == 0) { /* a single element */
        dims[0] = 1;
        sx[0] = sy[0] = 0;
        n = 1;
    }
    /* the innermost dim is the run; it advances by 1 or 0 per operand */
    s->inner = dims[n - 1];
    s->ix = sx[n - 1];
    s->iy = sy[n - 1];
    if ((s->ix != 0 && s->ix != 1) || (s->iy != 0 && s->iy != 1)) return MILK_OK;
    s->rank = n - 1;
    s->outer = 1;
    for (int i = 0; i < s->rank; i++) {
        s->dims[i] = dims[i];
        s->sx[i] = sx[i];
        s->sy[i] = sy[i];
        s->outer *= dims[i];
    }
    s->rows_per_task = s->inner >= CHUNK ? 1 : CHUNK / s->inner;
    k->run = binary_run;
    k->state = s;
    return MILK_OK;
}
