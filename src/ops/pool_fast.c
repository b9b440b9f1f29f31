/* pool_fast.c: planned fast kernels (see fast.h) of max_pool and avg_pool
 * over 1 or 2 spatial dims (reference kernels in pool.c): the same window
 * rules (pool.c's geometry), walked one output row at a time with the
 * clipped window bounds computed once per row and column instead of per
 * element, one plane per task. Results equal the reference kernel's: max
 * compares exactly, and avg sums in double as it does. */
#include "fast.h"

#include <math.h>

typedef struct pool_st {
    milk_pool_geom g;
    int64_t planes, H, W, OH, OW, KH, KW, SH, SW, PH, PW;
    bool max, exclude;
    bool simd;                 /* max_pool on a padded plane */
    int64_t Hp, Wp, slack;     /* its dims, and floats read past its end */
} pool_st;

/* max_pool with SIMD rows: the plane is copied into a buffer padded with
 * -inf (a window's clipped maximum is its maximum over the padded plane),
 * then each output row is one max_row. */
static void max_task(const milk_fast *f, const pool_st *s, const float *x, float *y,
                     int worker)
{
    float *p = milk_fast_scratch(f, worker);
    const int64_t Hp = s->Hp, Wp = s->Wp;
    for (int64_t i = 0; i < Hp * Wp + s->slack; i++) p[i] = -INFINITY;
    for (int64_t h = 0; h < s->H; h++)
        memcpy(p + (h + s->PH) * Wp + s->PW, x + h * s->W, (size_t)s->W * sizeof *p);
    const float *rows[64];
    for (int64_t oh = 0; oh < s->OH; oh++) {
        for (int64_t r = 0; r < s->KH; r++) rows[r] = p + (oh * s->SH + r) * Wp;
        f->v->max_row(rows, (int)s->KH, (int)s->KW, s->SW, y + oh * s->OW, s->OW);
    }
}

static void pool_task(void *arg, int64_t p, int worker)
{
    const milk_fast *f = arg;
    const pool_st *s = f->state;
    const float *x = milk_rt_f32(milk_eval_in(f->ec, "x")) + p * s->H * s->W;
    float *y = milk_rt_f32(&f->ec->out[0]) + p * s->OH * s->OW;
    if (s->simd) {
        max_task(f, s, x, y, worker);
        return;
    }
    for (int64_t oh = 0; oh < s->OH; oh++) {
        int64_t h0 = oh * s->SH - s->PH, h1 = h0 + s->KH;
        if (h0 < 0) h0 = 0;
        if (h1 > s->H) h1 = s->H;
        for (int64_t ow = 0; ow < s->OW; ow++) {
            int64_t w0 = ow * s->SW - s->PW, w1 = w0 + s->KW;
            if (w0 < 0) w0 = 0;
            if (w1 > s->W) w1 = s->W;
            if (s->max) {
                float acc = -INFINITY;
                for (int64_t h = h0; h < h1; h++)
                    for (int64_t w = w0; w < w1; w++) {
                        float v = x[h * s->W + w];
                        acc = v > acc || isnan(v) ? v : acc;
                    }
                y[oh * s->OW + ow] = acc;
            } else {
                double acc = 0.0;
                for (int64_t h = h0; h < h1; h++)
                    for (int64_t w = w0; w < w1; w++) acc += x[h * s->W + w];
                int64_t cnt = (h1 > h0 ? h1 - h0 : 0) * (w1 > w0 ? w1 - w0 : 0);
                int64_t div = s->exclude ? cnt : s->g.window;
                y[oh * s->OW + ow] = div ? (float)(acc / (double)div) : 0.0f;
            }
        }
    }
}

static milk_status pool_run(const milk_fast *f)
{
    const pool_st *s = f->state;
    milk_pool_run(f->pool, s->planes, pool_task, (void *)f);
    return MILK_OK;
}

milk_status milk_fast_pool(milk_eval *ec, milk_arena *a, milk_kernel *k)
{
    const milk_rt *x = milk_eval_in(ec, "x");
    const milk_rt *o = &ec->out[0];
    if (x->store != MILK_DTYPE_FP32 || x->type.rank < 3 || x->type.rank > 4 ||
        o->count == 0)
        return MILK_OK;
    pool_st *s = milk_arena_alloc(a, sizeof *s);
    if (!s) return milk_errorf(ec->ctx, MILK_ERR_NOMEM, "out of memory");
    memset(s, 0, sizeof *s);
    MILK_TRY(milk_pool_geometry(ec, x, o, &s->g));
    MILK_TRY(milk_op_bool(ec->ctx, ec->op, "exclude_padding_from_average",
                          false, &s->exclude));
    const milk_pool_geom *g = &s->g;
    int d = g->S == 2 ? 0 : -1; /* the H dim, -1 for 1-D */
    int e = g->S - 1;           /* the W dim */
    s->max = ec->op->kind == MILK_OP_max_pool;
    s->planes = x->type.dims[0] * x->type.dims[1];
    s->H = d < 0 ? 1 : g->in[d];
    s->OH = d < 0 ? 1 : g->out[d];
    s->KH = d < 0 ? 1 : g->k[d];
    s->SH = d < 0 ? 1 : g->s[d];
    s->PH = d < 0 ? 0 : g->before[d];
    s->W = g->in[e];
    s->OW = g->out[e];
    s->KW = g->k[e];
    s->SW = g->s[e];
    s->PW = g->before[e];
    /* padded plane: every window inside it (the padding after as much
     * as the last window reaches) */
    s->Hp = (s->OH - 1) * s->SH + s->KH;
    s->Wp = (s->OW - 1) * s->SW + s->KW;
    if (s->Hp < s->PH + s->H) s->Hp = s->PH + s->H;
    if (s->Wp < s->PW + s->W) s->Wp = s->PW + s->W;
    s->slack = 16 * s->SW + 64;
    s->simd = s->max && s->KH <= 64 && s->PH < s->KH && s->PW < s->KW;
    if (s->simd) k->scratch = (s->Hp * s->Wp + s->slack) * 4;
    k->run = pool_run;
    k->state = s;
    return MILK_OK;
}
