/* conv_fast.c: conv's planned fast kernels (see fast.h), beside its
 * reference kernel in conv.c:
 *   - direct: depthwise and small-group convolutions, one output row at a
 *     time with milk_vec's SIMD row kernel (no im2col);
 *   - gemm: everything else as W_g x col(X_g) on OpenBLAS, tiled over
 *     output positions (the column matrix of one tile stays in cache) and
 *     output channels; a 1x1 convolution with stride 1 and no padding reads
 *     x as its column matrix directly: one GEMM, no copy.
 * Both end in the fused epilogue (bias, activation, statistics) while the
 * tile is in cache. Tasks are fixed by the shapes, so the result does not
 * depend on the number of threads. */
#include "fast.h"
#include "gemm.h"

#include <cblas.h>

/* Bytes of a tile's column matrix (and of shift's output tile): within a
 * core's L2. */
#define COL_TILE_BYTES ((int64_t)256 << 10)

typedef enum conv_kind { CONV_DIRECT, CONV_GEMM, CONV_SHIFT } conv_kind;

typedef struct conv_st {
    conv_kind kind;
    milk_conv_geom g;
    int64_t cig, cog, rows; /* channels per group in and out; rows = cig * K */
    bool pointwise;
    /* gemm and shift tiling: columns per tile, channels per block */
    int64_t nq, n_tiles, mb, n_mblocks;
    /* shift: the padded input's dims, output rows per tile */
    int64_t pdims[3], tile_rows;
} conv_st;

static bool is_pointwise(const milk_conv_geom *g)
{
    for (int i = 0; i < 3; i++)
        if (g->k[i] != 1 || g->stride[i] != 1 || g->pad[i] != 0 ||
            g->in[i] != g->out[i])
            return false;
    return true;
}

/* ---- direct ---------------------------------------------------------------- */

typedef struct direct_job {
    const milk_fast *f;
    const conv_st *s;
    const float *x, *w, *bias;
    float *y;
} direct_job;

/* Floats a worker's padded plane may be read past its end: conv_row
 * reads up to two vectors of 8 lanes at the row's stride. */
static int64_t slack(const milk_conv_geom *g)
{
    return 16 * g->stride[2] + 64;
}

/* The padded input plane of the direct kernel: the padding before each
 * spatial dim, and after it as much as the last window needs. */
static void padded_dims(const milk_conv_geom *g, int64_t *dims, int64_t *after)
{
    for (int i = 0; i < 3; i++) {
        int64_t end = (g->out[i] - 1) * g->stride[i] + (g->k[i] - 1) * g->dil[i] + 1;
        after[i] = end - g->pad[i] - g->in[i];
        if (after[i] < 0) after[i] = 0;
        dims[i] = g->pad[i] + g->in[i] + after[i];
    }
}

/* Copy one channel plane x [in] into p [dims], zeros around it. */
static void pad_plane(const milk_conv_geom *g, const int64_t *dims,
                      const float *x, float *p)
{
    memset(p, 0, (size_t)(dims[0] * dims[1] * dims[2] + slack(g)) * sizeof *p);
    for (int64_t d = 0; d < g->in[0]; d++)
        for (int64_t h = 0; h < g->in[1]; h++)
            memcpy(p + ((d + g->pad[0]) * dims[1] + h + g->pad[1]) * dims[2] + g->pad[2],
                   x + (d * g->in[1] + h) * g->in[2], (size_t)g->in[2] * sizeof *p);
}

/* pad_plane without the slack: planes of the shift kernel follow one
 * another (the slack is after the last). */
static void pad_plane_rows(const milk_conv_geom *g, const int64_t *dims,
                           const float *x, float *p)
{
    memset(p, 0, (size_t)(dims[0] * dims[1] * dims[2]) * sizeof *p);
    for (int64_t d = 0; d < g->in[0]; d++)
        for (int64_t h = 0; h < g->in[1]; h++)
            memcpy(p + ((d + g->pad[0]) * dims[1] + h + g->pad[1]) * dims[2] + g->pad[2],
                   x + (d * g->in[1] + h) * g->in[2], (size_t)g->in[2] * sizeof *p);
}

/* Task: one output channel of one image. Each input channel of the group
 * is copied into a zero-padded plane, then every output row is a SIMD row
 * of the kernel's taps; the epilogue runs over the whole output plane. */
static void direct_task(void *arg, int64_t task, int worker)
{
    const direct_job *j = arg;
    const conv_st *s = j->s;
    const milk_conv_geom *g = &s->g;
    const milk_vec *v = j->f->v;
    const int64_t n = task / g->c_out, co = task % g->c_out;
    const int64_t in3 = milk_geom_in3(g), k3 = milk_geom_k3(g), out3 = milk_geom_out3(g);
    const int64_t K01 = g->k[0] * g->k[1], ow = g->out[2];
    int64_t dims[3], after[3];
    padded_dims(g, dims, after);
    float *p = milk_fast_scratch(j->f, worker);
    const float *xg = j->x + (n * g->c_in + co / s->cog * s->cig) * in3;
    const float *wc = j->w + co * s->cig * k3;
    float *yc = j->y + (n * g->c_out + co) * out3;
    const float *rows[64];
    memset(yc, 0, (size_t)out3 * sizeof *yc);
    for (int64_t ci = 0; ci < s->cig; ci++) {
        pad_plane(g, dims, xg + ci * in3, p);
        for (int64_t od = 0; od < g->out[0]; od++)
            for (int64_t oh = 0; oh < g->out[1]; oh++) {
                for (int64_t kd = 0; kd < g->k[0]; kd++)
                    for (int64_t kh = 0; kh < g->k[1]; kh++) {
                        int64_t id = od * g->stride[0] + kd * g->dil[0];
                        int64_t ih = oh * g->stride[1] + kh * g->dil[1];
                        rows[kd * g->k[1] + kh] = p + (id * dims[1] + ih) * dims[2];
                    }
                v->conv_row(rows, (int)K01, (int)g->k[2], wc + ci * k3,
                            g->stride[2], g->dil[2],
                            yc + (od * g->out[1] + oh) * ow, ow);
            }
    }
    v->epilogue(j->f->epi, yc, out3, j->bias ? j->bias + co : NULL, 0,
                j->f->st + worker * 3);
}

/* ---- gemm ------------------------------------------------------------------ */

typedef struct gemm_job {
    const milk_fast *f;
    const conv_st *s;
    const float *x, *w, *bias;
    float *y;
} gemm_job;

/* Task: (image, group, column tile, channel block). */
static void gemm_task(void *arg, int64_t task, int worker)
{
    const gemm_job *j = arg;
    const conv_st *s = j->s;
    const milk_conv_geom *g = &s->g;
    int64_t mblk = task % s->n_mblocks;
    task /= s->n_mblocks;
    int64_t tile = task % s->n_tiles;
    task /= s->n_tiles;
    const int64_t grp = task % g->groups, n = task / g->groups;
    const int64_t in3 = milk_geom_in3(g), out3 = milk_geom_out3(g);
    const int64_t q0 = tile * s->nq, nc = out3 - q0 < s->nq ? out3 - q0 : s->nq;
    const int64_t m0 = mblk * s->mb, mc = s->cog - m0 < s->mb ? s->cog - m0 : s->mb;
    const float *xg = j->x + (n * g->c_in + grp * s->cig) * in3;
    const float *wg = j->w + (grp * s->cog + m0) * s->rows;
    float *yg = j->y + (n * g->c_out + grp * s->cog + m0) * out3;
    const float *col;
    int64_t ldc;
    if (s->pointwise) {
        col = xg + q0; /* X_g [cig, in3] is the column matrix */
        ldc = in3;
    } else {
        float *buf = milk_fast_scratch(j->f, worker);
        milk_patch p = milk_patch_conv(g);
        milk_im2col(&p, xg, s->cig, q0, nc, buf);
        col = buf;
        ldc = nc;
    }
    /* Y_g[m0:m0+mc, q0:q0+nc] = W_g[m0:m0+mc] [mc, rows] x col [rows, nc] */
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)mc, (int)nc,
                (int)s->rows, 1.0f, wg, (int)s->rows, col, (int)ldc, 0.0f,
                yg + q0, (int)out3);
    const float *b = j->bias ? j->bias + grp * s->cog + m0 : NULL;
    if (out3 == 1) /* one position (squeeze-excite): the channels in a row */
        j->f->v->epilogue(j->f->epi, yg, mc, b, 1, j->f->st + worker * 3);
    else
        for (int64_t m = 0; m < mc; m++)
            j->f->v->epilogue(j->f->epi, yg + m * out3 + q0, nc, b ? b + m : NULL, 0,
                              j->f->st + worker * 3);
}

/* ---- shift: stride-1 convolutions as one GEMM per kernel tap ----------------- */

/* With stride 1, output position (oh, ow) reads input (oh + kh * dh, ow +
 * kw * dw) at tap (kh, kw). On a zero-padded input Xp [c_in, Hp, Wp], and
 * an output computed on the padded width (columns q = oh * Wp + ow, those
 * with ow >= OW thrown away), tap k reads Xp at q + kh * dh * Wp + kw * dw:
 * for every tap the input is a plain [c_in, OH * Wp] matrix at an offset,
 * so Y = sum over taps of W_k [c_out, c_in] x Xp_k, one GEMM each, with no
 * column matrix at all. Each task gathers W_k for its channel block from
 * the weight as it lies (in the mapped weight file): a copy of the layer
 * would double the weights' memory, and the gather costs 1 / (columns of
 * the tile) of the GEMM. 1-D and 2-D convolutions with groups 1. */

typedef struct shift_job {
    const milk_fast *f;
    const conv_st *s;
    const float *x, *w, *bias;
    float *y;
    int64_t n; /* the image */
} shift_job;

/* Phase 1: the image's channels into the padded planes (shared). */
static void shift_pad_task(void *arg, int64_t c, int worker)
{
    const shift_job *j = arg;
    const conv_st *s = j->s;
    const milk_conv_geom *g = &s->g;
    const int64_t plane = s->pdims[1] * s->pdims[2];
    pad_plane_rows(g, s->pdims, j->x + (j->n * g->c_in + c) * milk_geom_in3(g),
                   (float *)j->f->shared + c * plane);
}

/* Phase 2: one tile of output rows and a block of output channels. */
static void shift_task(void *arg, int64_t task, int worker)
{
    const shift_job *j = arg;
    const conv_st *s = j->s;
    const milk_conv_geom *g = &s->g;
    const int64_t mblk = task % s->n_mblocks, tile = task / s->n_mblocks;
    const int64_t Wp = s->pdims[2], plane = s->pdims[1] * Wp;
    const int64_t oh0 = tile * s->tile_rows;
    const int64_t nr = g->out[1] - oh0 < s->tile_rows ? g->out[1] - oh0 : s->tile_rows;
    const int64_t nq = nr * Wp, OW = g->out[2], out3 = milk_geom_out3(g);
    const int64_t m0 = mblk * s->mb, mc = g->c_out - m0 < s->mb ? g->c_out - m0 : s->mb;
    const int64_t K = g->k[1] * g->k[2];
    float *c = milk_fast_scratch(j->f, worker);
    float *wt = c + s->mb * s->tile_rows * Wp; /* [K][mc][c_in] */
    const float *xp = (const float *)j->f->shared + oh0 * Wp;
    const float *w = j->w + m0 * g->c_in * K;
    /* the block's weights by tap, out of W [c_out, c_in, K] as it lies (a
     * copy of the layer would double the weights' memory): read once */
    const int64_t mk = mc * g->c_in;
    for (int64_t i = 0; i < mk; i++)
        for (int64_t k = 0; k < K; k++) wt[k * mk + i] = w[i * K + k];
    for (int64_t kh = 0; kh < g->k[1]; kh++)
        for (int64_t kw = 0; kw < g->k[2]; kw++) {
            int64_t k = kh * g->k[2] + kw;
            /* C [mc, nq] (+)= W_k [mc, c_in] x Xp_k [c_in, nq] */
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)mc, (int)nq,
                        (int)g->c_in, 1.0f, wt + k * mk, (int)g->c_in,
                        xp + kh * g->dil[1] * Wp + kw * g->dil[2], (int)plane,
                        k ? 1.0f : 0.0f, c, (int)nq);
        }
    for (int64_t m = 0; m < mc; m++) {
        float *y = j->y + (j->n * g->c_out + m0 + m) * out3 + oh0 * OW;
        for (int64_t r = 0; r < nr; r++)
            memcpy(y + r * OW, c + m * nq + r * Wp, (size_t)OW * sizeof *y);
        j->f->v->epilogue(j->f->epi, y, nr * OW, j->bias ? j->bias + m0 + m : NULL, 0,
                          j->f->st + worker * 3);
    }
}

static milk_status conv_run(const milk_fast *f)
{
    const conv_st *s = f->state;
    milk_eval *ec = f->ec;
    const milk_rt *b = milk_eval_in(ec, "bias");
    const float *x = milk_rt_f32(milk_eval_in(ec, "x"));
    const float *w = milk_rt_f32(milk_eval_in(ec, "weight"));
    const float *bias = b ? milk_rt_f32(b) : NULL;
    float *y = milk_rt_f32(&ec->out[0]);
    const milk_conv_geom *g = &s->g;
    if (s->kind == CONV_DIRECT) {
        direct_job j = {f, s, x, w, bias, y};
        milk_pool_run(f->pool, g->n * g->c_out, direct_task, &j);
    } else if (s->kind == CONV_SHIFT) {
        for (int64_t n = 0; n < g->n; n++) {
            shift_job j = {f, s, x, w, bias, y, n};
            milk_pool_run(f->pool, g->c_in, shift_pad_task, &j);
            milk_pool_run(f->pool, s->n_tiles * s->n_mblocks, shift_task, &j);
        }
    } else {
        gemm_job j = {f, s, x, w, bias, y};
        milk_pool_run(f->pool, g->n * g->groups * s->n_tiles * s->n_mblocks,
                      gemm_task, &j);
    }
    return MILK_OK;
}

/* The shift kernel takes 1-D and 2-D stride-1 convolutions of groups 1. */
static bool shift_fits(const milk_conv_geom *g)
{
    return g->groups == 1 && g->in[0] == 1 && g->k[0] == 1 && g->stride[0] == 1 &&
           g->stride[1] == 1 && g->stride[2] == 1 && g->pad[0] == 0 && g->out[0] == 1;
}

static milk_status shift_prepare(milk_eval *ec, milk_arena *a, conv_st *s,
                                 milk_kernel *k)
{
    const milk_conv_geom *g = &s->g;
    const int64_t K = g->k[1] * g->k[2], cin = g->c_in, cout = g->c_out;
    int64_t after[3];
    padded_dims(g, s->pdims, after);
    const int64_t Wp = s->pdims[2], plane = s->pdims[1] * Wp;
    /* output rows per tile: the C tile and one tap's input panel within
     * COL_TILE_BYTES */
    int64_t wide = cin > cout ? cin : cout;
    int64_t rows = COL_TILE_BYTES / (4 * wide * Wp);
    s->tile_rows = rows < 1 ? 1 : rows > g->out[1] ? g->out[1] : rows;
    s->n_tiles = (g->out[1] + s->tile_rows - 1) / s->tile_rows;
    s->mb = s->n_tiles >= 4 || cout <= 64 ? cout : 64;
    s->n_mblocks = (cout + s->mb - 1) / s->mb;
    const int64_t sizes[] = {cout, cin, s->tile_rows * Wp, plane, K};
    if (!milk_gemm_ok(sizes, 5)) return MILK_OK;
    s->kind = CONV_SHIFT;
    k->scratch = (s->mb * s->tile_rows * Wp + K * s->mb * cin) * 4;
    /* the padded planes, and the last tile's reads past the end of the
     * last one (up to the taps' reach, on the padded width) */
    k->shared = (cin * plane + (g->k[2] - 1) * g->dil[2] + Wp + 64) * 4;
    k->run = conv_run;
    k->state = s;
    k->epilogue = true;
    return MILK_OK;
}

milk_status milk_fast_conv(milk_eval *ec, milk_arena *a, milk_kernel *k)
{
    const milk_rt *x = milk_eval_in(ec, "x"), *w = milk_eval_in(ec, "weight");
    const milk_rt *b = milk_eval_in(ec, "bias");
    if (x->store != MILK_DTYPE_FP32 || w->store != MILK_DTYPE_FP32 ||
        (b && b->store != MILK_DTYPE_FP32))
        return MILK_OK;
    conv_st *s = milk_arena_alloc(a, sizeof *s);
    if (!s) return milk_errorf(ec->ctx, MILK_ERR_NOMEM, "out of memory");
    memset(s, 0, sizeof *s);
    MILK_TRY(milk_conv_geom_of(ec, false, &s->g));
    const milk_conv_geom *g = &s->g;
    s->cig = g->c_in / g->groups;
    s->cog = g->c_out / g->groups;
    s->rows = s->cig * milk_geom_k3(g);
    const int64_t out3 = milk_geom_out3(g), in3 = milk_geom_in3(g);
    if (out3 == 0 || g->n == 0 || s->rows == 0 || g->c_out == 0)
        return MILK_OK; /* empty: the reference kernel */
    s->pointwise = is_pointwise(g);
    bool direct = g->groups > 1 && (s->cig == 1 || s->rows <= 64) &&
                  g->k[0] * g->k[1] <= 64;
    s->kind = direct ? CONV_DIRECT : CONV_GEMM;
    if (!direct && !s->pointwise && shift_fits(g))
        return shift_prepare(ec, a, s, k);
    if (direct) {
        int64_t dims[3], after[3];
        padded_dims(g, dims, after);
        k->scratch = (dims[0] * dims[1] * dims[2] + slack(g)) * 4;
    } else {
        int64_t nq = COL_TILE_BYTES / (4 * s->rows);
        nq = nq < 16 ? 16 : nq / 16 * 16;
        s->nq = nq > out3 ? out3 : nq;
        s->n_tiles = (out3 + s->nq - 1) / s->nq;
        /* few tiles: split the output channels too, so that threads have
         * work (a rule of the shapes alone) */
        s->mb = s->n_tiles >= 4 || s->cog <= 64 ? s->cog : 64;
        s->n_mblocks = (s->cog + s->mb - 1) / s->mb;
        const int64_t sizes[] = {s->cog, s->nq, s->rows, out3, in3};
        if (!milk_gemm_ok(sizes, 5)) return MILK_OK;
        k->scratch = s->pointwise ? 0 : s->rows * s->nq * 4;
    }
    k->run = conv_run;
    k->state = s;
    k->epilogue = true;
    return MILK_OK;
}
