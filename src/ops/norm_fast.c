/* norm_fast.c: planned fast kernels (see fast.h) for softmax
 * (activation.c), layer_norm (norm.c) and reduce_mean, reduce_sum and
 * reduce_max (reduce.c) when the axes they work along are the innermost,
 * contiguous ones: one row of memory per output slice, with milk_vec's
 * SIMD rows (sums in double, as the reference kernels accumulate). Other
 * layouts keep the reference kernels. */
#include "fast.h"

#include <math.h>

/* Rows per task: about 2^15 elements of work. */
static int64_t rows_per_task(int64_t len)
{
    int64_t r = ((int64_t)1 << 15) / (len > 0 ? len : 1);
    return r < 1 ? 1 : r;
}

typedef struct rows_st {
    int64_t rows, len, per_task;
    int kind;       /* the op */
    float eps;      /* layer_norm */
} rows_st;

static milk_status rows_state(milk_eval *ec, milk_arena *a, int64_t rows,
                              int64_t len, milk_kernel *k,
                              milk_status (*run)(const milk_fast *))
{
    rows_st *s = milk_arena_alloc(a, sizeof *s);
    if (!s) return milk_errorf(ec->ctx, MILK_ERR_NOMEM, "out of memory");
    memset(s, 0, sizeof *s);
    s->rows = rows;
    s->len = len;
    s->per_task = rows_per_task(len);
    s->kind = ec->op->kind;
    k->run = run;
    k->state = s;
    return MILK_OK;
}

static int64_t n_tasks(const rows_st *s)
{
    return (s->rows + s->per_task - 1) / s->per_task;
}

/* The innermost `len` elements make the reduced (or normalized) axes when
 * `mask` marks exactly the last axes; returns false otherwise. */
static bool trailing(const milk_tensor_type *t, const bool *mask, int64_t *len)
{
    int i = t->rank;
    *len = 1;
    while (i > 0 && mask[i - 1]) *len *= t->dims[--i];
    for (int j = 0; j < i; j++)
        if (mask[j]) return false;
    return true;
}

/* ---- softmax ---------------------------------------------------------------- */

static void softmax_task(void *arg, int64_t task, int worker)
{
    const milk_fast *f = arg;
    const rows_st *s = f->state;
    const float *x = milk_rt_f32(milk_eval_in(f->ec, "x"));
    float *y = milk_rt_f32(&f->ec->out[0]);
    int64_t r1 = (task + 1) * s->per_task;
    for (int64_t r = task * s->per_task; r < r1 && r < s->rows; r++)
        f->v->softmax(x + r * s->len, y + r * s->len, s->len);
}

static milk_status softmax_run(const milk_fast *f)
{
    milk_pool_run(f->pool, n_tasks(f->state), softmax_task, (void *)f);
    return MILK_OK;
}

milk_status milk_fast_softmax(milk_eval *ec, milk_arena *a, milk_kernel *k)
{
    const milk_rt *x = milk_eval_in(ec, "x");
    int64_t axis;
    int ax;
    if (x->store != MILK_DTYPE_FP32 || x->count == 0) return MILK_OK;
    MILK_TRY(milk_op_int(ec->ctx, ec->op, "axis", -1, &axis));
    MILK_TRY(milk_op_axis(ec->ctx, ec->op, "axis", axis, x->type.rank, &ax));
    bool mask[MILK_MAX_RANK] = {0};
    mask[ax] = true;
    int64_t len;
    if (!trailing(&x->type, mask, &len) || len == 0) return MILK_OK;
    return rows_state(ec, a, x->count / len, len, k, softmax_run);
}

/* ---- layer_norm ------------------------------------------------------------- */

static void layer_norm_task(void *arg, int64_t task, int worker)
{
    const milk_fast *f = arg;
    const rows_st *s = f->state;
    const milk_rt *g = milk_eval_in(f->ec, "gamma"), *b = milk_eval_in(f->ec, "beta");
    const float *x = milk_rt_f32(milk_eval_in(f->ec, "x"));
    float *y = milk_rt_f32(&f->ec->out[0]);
    int64_t r1 = (task + 1) * s->per_task;
    for (int64_t r = task * s->per_task; r < r1 && r < s->rows; r++) {
        const float *xr = x + r * s->len;
        double m = f->v->sum(xr, s->len) / (double)s->len;
        double q = f->v->sqdev(xr, s->len, m) / (double)s->len;
        float rstd = (float)(1.0 / sqrt(q + (double)s->eps));
        f->v->normalize(xr, y + r * s->len, s->len, (float)m, rstd,
                        g ? milk_rt_f32(g) : NULL, b ? milk_rt_f32(b) : NULL);
    }
}

static milk_status layer_norm_run(const milk_fast *f)
{
    milk_pool_run(f->pool, n_tasks(f->state), layer_norm_task, (void *)f);
    return MILK_OK;
}

milk_status milk_fast_layer_norm(milk_eval *ec, milk_arena *a, milk_kernel *k)
{
    const milk_rt *x = milk_eval_in(ec, "x");
    const milk_rt *g = milk_eval_in(ec, "gamma"), *b = milk_eval_in(ec, "beta");
    if (x->store != MILK_DTYPE_FP32 || x->count == 0 ||
        (g && g->store != MILK_DTYPE_FP32) || (b && b->store != MILK_DTYPE_FP32))
        return MILK_OK;
    bool mask[MILK_MAX_RANK];
    int64_t axes[MILK_MAX_RANK];
    int n;
    bool given;
    MILK_TRY(milk_op_ints(ec->ctx, ec->op, "axes", axes, MILK_MAX_RANK, &n, &given));
    for (int i = 0; i < x->type.rank; i++) mask[i] = !given;
    for (int i = 0; i < n; i++) {
        int ax;
        MILK_TRY(milk_op_axis(ec->ctx, ec->op, "axes", axes[i], x->type.rank, &ax));
        mask[ax] = true;
    }
    int64_t len;
    float eps;
    if (!trailing(&x->type, mask, &len) || len == 0 ||
        (g && g->count != len) || (b && b->count != len))
        return MILK_OK;
    MILK_TRY(milk_eval_f32(ec, "epsilon", 1e-5f, &eps));
    MILK_TRY(rows_state(ec, a, x->count / len, len, k, layer_norm_run));
    ((rows_st *)k->state)->eps = eps;
    return MILK_OK;
}

/* ---- reduce_mean, reduce_sum, reduce_max ------------------------------------ */

static void reduce_task(void *arg, int64_t task, int worker)
{
    const milk_fast *f = arg;
    const rows_st *s = f->state;
    const float *x = milk_rt_f32(milk_eval_in(f->ec, "x"));
    float *y = milk_rt_f32(&f->ec->out[0]);
    int64_t r1 = (task + 1) * s->per_task;
    for (int64_t r = task * s->per_task; r < r1 && r < s->rows; r++) {
        const float *xr = x + r * s->len;
        if (s->kind == MILK_OP_reduce_max) {
            y[r] = f->v->max(xr, s->len);
        } else {
            double sum = f->v->sum(xr, s->len);
            y[r] = (float)(s->kind == MILK_OP_reduce_mean ? sum / (double)s->len : sum);
        }
    }
}

static milk_status reduce_run(const milk_fast *f)
{
    milk_pool_run(f->pool, n_tasks(f->state), reduce_task, (void *)f);
    return MILK_OK;
}

milk_status milk_fast_reduce(milk_eval *ec, milk_arena *a, milk_kernel *k)
{
    const milk_rt *x = milk_eval_in(ec, "x");
    if (x->store != MILK_DTYPE_FP32 || ec->out[0].store != MILK_DTYPE_FP32 ||
        x->count == 0)
        return MILK_OK;
    bool mask[MILK_MAX_RANK];
    int64_t axes[MILK_MAX_RANK];
    int n;
    bool given;
    MILK_TRY(milk_op_ints(ec->ctx, ec->op, "axes", axes, MILK_MAX_RANK, &n, &given));
    for (int i = 0; i < x->type.rank; i++) mask[i] = !given;
    for (int i = 0; i < n; i++) {
        int ax;
        MILK_TRY(milk_op_axis(ec->ctx, ec->op, "axes", axes[i], x->type.rank, &ax));
        mask[ax] = true;
    }
    int64_t len;
    if (!trailing(&x->type, mask, &len) || len == 0 ||
        ec->out[0].count * len != x->count)
        return MILK_OK;
    return rows_state(ec, a, x->count / len, len, k, reduce_run);
}
