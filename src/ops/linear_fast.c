/* linear_fast.c: linear's planned fast kernel (see fast.h), beside its
 * reference kernel in linear.c: Y = X W^T on OpenBLAS, tiled over rows and
 * output features when the product is large enough to share among
 * threads, each tile ending in the fused epilogue (bias, activation,
 * statistics). */
#include "fast.h"
#include "gemm.h"

#include <cblas.h>

typedef struct linear_st {
    int64_t rows, d_in, d_out;
    int64_t rb, n_rb, cb, n_cb; /* row and column blocks */
} linear_st;

typedef struct linear_job {
    const milk_fast *f;
    const linear_st *s;
    const float *x, *w, *bias;
    float *y;
} linear_job;

static void linear_task(void *arg, int64_t task, int worker)
{
    const linear_job *j = arg;
    const linear_st *s = j->s;
    int64_t r0 = task / s->n_cb * s->rb, c0 = task % s->n_cb * s->cb;
    int64_t rc = s->rows - r0 < s->rb ? s->rows - r0 : s->rb;
    int64_t cc = s->d_out - c0 < s->cb ? s->d_out - c0 : s->cb;
    float *y = j->y + r0 * s->d_out + c0;
    /* Y[r0.., c0..] [rc, cc] = X[r0..] [rc, d_in] x W[c0..]^T, W stored
     * [d_out, d_in] */
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)rc, (int)cc,
                (int)s->d_in, 1.0f, j->x + r0 * s->d_in, (int)s->d_in,
                j->w + c0 * s->d_in, (int)s->d_in, 0.0f, y, (int)s->d_out);
    for (int64_t r = 0; r < rc; r++)
        j->f->v->epilogue(j->f->epi, y + r * s->d_out, cc,
                          j->bias ? j->bias + c0 : NULL, 1, j->f->st + worker * 3);
}

static milk_status linear_run(const milk_fast *f)
{
    const linear_st *s = f->state;
    const milk_rt *b = milk_eval_in(f->ec, "bias");
    linear_job j = {f, s, milk_rt_f32(milk_eval_in(f->ec, "x")),
                    milk_rt_f32(milk_eval_in(f->ec, "weight")),
                    b ? milk_rt_f32(b) : NULL, milk_rt_f32(&f->ec->out[0])};
    milk_pool_run(f->pool, s->n_rb * s->n_cb, linear_task, &j);
    return MILK_OK;
}

/* Blocks of at least `min` of n, about n / parts. */
static int64_t block(int64_t n, int64_t parts, int64_t min)
{
    int64_t b = (n + parts - 1) / parts;
    b = (b + min - 1) / min * min;
    return b < n ? b : n;
}

milk_status milk_fast_linear(milk_eval *ec, milk_arena *a, milk_kernel *k)
{
    const milk_rt *x = milk_eval_in(ec, "x"), *w = milk_eval_in(ec, "weight");
    const milk_rt *b = milk_eval_in(ec, "bias");
    if (x->store != MILK_DTYPE_FP32 || w->store != MILK_DTYPE_FP32 ||
        (b && b->store != MILK_DTYPE_FP32) || w->type.rank != 2)
        return MILK_OK;
    linear_st *s = milk_arena_alloc(a, sizeof *s);
    if (!s) return milk_errorf(ec->ctx, MILK_ERR_NOMEM, "out of memory");
    s->d_out = w->type.dims[0];
    s->d_in = w->type.dims[1];
    s->rows = s->d_in ? x->count / s->d_in : 0;
    const int64_t sizes[] = {s->rows, s->d_in, s->d_out};
    if (!s->rows || !s->d_in || !s->d_out || !milk_gemm_ok(sizes, 3) ||
        x->type.dims[x->type.rank - 1] != s->d_in ||
        ec->out[0].count != s->rows * s->d_out || (b && b->count != s->d_out))
        return MILK_OK; /* the reference kernel, or its error */
    /* work of 2^20 multiply-adds per task at least; columns in blocks of
     * 64, rows of 16 (shape rules: the same for every thread count) */
    int64_t work = s->rows * s->d_in * s->d_out;
    int64_t parts = work >> 20 < 1 ? 1 : work >> 20 > 64 ? 64 : work >> 20;
    s->cb = block(s->d_out, parts, 64);
    s->n_cb = (s->d_out + s->cb - 1) / s->cb;
    s->rb = block(s->rows, (parts + s->n_cb - 1) / s->n_cb, 16);
    s->n_rb = (s->rows + s->rb - 1) / s->rb;
    k->run = linear_run;
    k->state = s;
    k->epilogue = true;
    return MILK_OK;
}
