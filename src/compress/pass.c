/* pass.c: streaming a dense weight and what is computed on the way (see
 * compress.h). A pass reads the weight where it lives with
 * milk_value_stream, as floats, in chunks of whole slabs: a slab holds
 * complete quantization blocks and complete n:m groups, so each chunk is
 * processed on its own: pruning mask, block scales (when not computed
 * beforehand), codes, the error against the dense values; then the chunk
 * goes to an emitter, which packs one generated tensor. */
#include "compress.h"

#include <math.h>
#include <pthread.h>
#include <stdlib.h>

static milk_status nomem(milk_ctx *ctx)
{
    return milk_errorf(ctx, MILK_ERR_NOMEM, "out of memory");
}

void cw_layout(cw *w)
{
    const milk_tensor_type *t = &w->type;
    int64_t acc = 1;
    for (int d = t->rank - 1; d >= 0; d--) {
        w->inner[d] = acc;
        acc *= t->dims[d];
    }
    int64_t slab = 1;
    if (w->qdt && !w->scales_ready) {
        int L = 0;
        while (L < t->rank && w->bs[L] == 1) L++;
        slab = L < t->rank ? w->bs[L] * w->inner[L] : 1;
    }
    if (w->prune == CW_PRUNE_NM) {
        int64_t s = t->dims[w->in_axis] * w->inner[w->in_axis];
        slab = s > slab ? s : slab; /* one is a multiple of the other */
    }
    w->slab = slab;
}

/* ---- reading the weight as floats ------------------------------------------- */

typedef struct reader {
    const cw *w;
    size_t esz;          /* bytes per element streamed: 2 (fp16) or 4 */
    bool round16;        /* fp32 streamed for an fp16 weight: round */
    float *x;            /* cap floats */
    int64_t cap, len, off;
    unsigned char carry[4];
    size_t ncarry;
    milk_status (*full)(void *user, int64_t off, float *x, int64_t n);
    void *user;
} reader;

/* fp16 -> fp32 of every half value: a table is several times faster than
 * milk_fp16_to_fp32 per element, with the same results. */
static float half_table[65536];
static pthread_once_t half_once = PTHREAD_ONCE_INIT;

static void half_init(void)
{
    for (uint32_t h = 0; h < 65536; h++) half_table[h] = milk_fp16_to_fp32((uint16_t)h);
}

static void put_elem(reader *r, const unsigned char *p)
{
    if (r->esz == 2) {
        uint16_t h;
        memcpy(&h, p, 2);
        r->x[r->len++] = half_table[h];
    } else {
        memcpy(&r->x[r->len++], p, 4);
    }
}

static milk_status reader_flush(reader *r)
{
    if (!r->len) return MILK_OK;
    if (r->round16) milk_round_fp16_n(r->x, (size_t)r->len);
    milk_status s = r->full(r->user, r->off, r->x, r->len);
    r->off += r->len;
    r->len = 0;
    return s;
}

static milk_status reader_sink(void *user, const void *bytes, size_t n)
{
    reader *r = user;
    size_t esz = r->esz;
    const unsigned char *p = bytes;
    while (n > 0) {
        if (r->ncarry || n < esz) { /* an element split between chunks */
            size_t take = esz - r->ncarry < n ? esz - r->ncarry : n;
            memcpy(r->carry + r->ncarry, p, take);
            r->ncarry += take;
            p += take;
            n -= take;
            if (r->ncarry == esz) {
                put_elem(r, r->carry);
                r->ncarry = 0;
            }
        } else {
            int64_t k = (int64_t)(n / esz), room = r->cap - r->len;
            if (k > room) k = room;
            if (esz == 2)
                for (int64_t i = 0; i < k; i++) {
                    uint16_t h;
                    memcpy(&h, p + i * 2, 2);
                    r->x[r->len + i] = half_table[h];
                }
            else
                memcpy(r->x + r->len, p, (size_t)k * 4);
            r->len += k;
            p += (size_t)k * esz;
            n -= (size_t)k * esz;
        }
        if (r->len == r->cap) MILK_TRY(reader_flush(r));
    }
    return MILK_OK;
}

/* Read the whole weight, handing over chunks of `cap` floats (the last
 * may be shorter). */
static milk_status read_weight(milk_ctx *ctx, const cw *w, int64_t cap,
                               milk_status (*full)(void *, int64_t, float *, int64_t),
                               void *user)
{
    /* An fp16 weight still in an fp32 file (a conversion to fp16) is read
     * as fp32 and rounded in bulk (F16C): the same values, faster. */
    milk_value src = *w->src;
    bool fp32_file = w->half && src.data.kind == MILK_DATA_FILE &&
                     src.data.stored == MILK_DTYPE_FP32;
    if (fp32_file) src.type.dtype = MILK_DTYPE_FP32;
    reader r = {w, w->half && !fp32_file ? 2 : 4, fp32_file,
                malloc((size_t)cap * sizeof(float)), cap, 0, 0, {0}, 0, full, user};
    if (!r.x) return nomem(ctx);
    pthread_once(&half_once, half_init);
    milk_status s = milk_value_stream(ctx, &src, (size_t)1 << 20, reader_sink, &r);
    if (s == MILK_OK) s = reader_flush(&r);
    free(r.x);
    if (s == MILK_OK && r.off != w->n)
        s = milk_errorf(ctx, MILK_ERR_IO, "weight '%s': got %lld of %lld values",
                        w->row ? w->row->name : "?", (long long)r.off,
                        (long long)w->n);
    return s;
}

typedef struct values_ctx {
    cw_values_fn fn;
    void *user;
} values_ctx;

static milk_status values_full(void *user, int64_t off, float *x, int64_t n)
{
    values_ctx *v = user;
    return v->fn(v->user, off, x, n);
}

milk_status cw_values(milk_ctx *ctx, const cw *w, cw_values_fn fn, void *user)
{
    values_ctx v = {fn, user};
    return read_weight(ctx, w, CW_CHUNK, values_full, &v);
}

/* The hot loops over a run use vectors of 4 floats (gcc and clang vector
 * extensions: SSE on x86-64, whatever the target has elsewhere), which
 * -O2 would not vectorize by itself; the same IEEE operations as the
 * scalar tail, so the results do not depend on the path. */
typedef float v4f __attribute__((vector_size(16)));
typedef int32_t v4i __attribute__((vector_size(16)));

static v4f load4(const float *p)
{
    v4f v;
    memcpy(&v, p, sizeof v);
    return v;
}

static v4f select4(v4i m, v4f a, v4f b) /* m ? a : b, lane by lane */
{
    return (v4f)((m & (v4i)a) | (~m & (v4i)b));
}

/* ---- quantization blocks ------------------------------------------------------- */

/* Walks flat offsets from `off` on, keeping the offset of the block each
 * element lies in. */
typedef struct bwalk {
    const cw *w;
    int64_t idx[MILK_MAX_RANK];
    int64_t b;
} bwalk;

static void bwalk_init(bwalk *it, const cw *w, int64_t off)
{
    it->w = w;
    it->b = 0;
    for (int d = 0; d < w->type.rank; d++) {
        it->idx[d] = (off / w->inner[d]) % w->type.dims[d];
        it->b += it->idx[d] / w->bs[d] * w->sstride[d];
    }
}

/* The same walk by runs: the elements from the current one to the end of
 * its block along the last axis share a block. */
static int64_t run_len(const bwalk *it, int64_t left)
{
    int d = it->w->type.rank - 1;
    int64_t len = it->w->bs[d] - it->idx[d] % it->w->bs[d];
    return len < left ? len : left;
}

static void run_skip(bwalk *it, int64_t len)
{
    const cw *w = it->w;
    int d = w->type.rank - 1;
    it->idx[d] += len;
    if (it->idx[d] < w->type.dims[d]) {
        if (it->idx[d] % w->bs[d] == 0) it->b += w->sstride[d];
        return;
    }
    it->b -= (w->sdims[d] - 1) * w->sstride[d];
    it->idx[d] = 0;
    for (d--; d >= 0; d--) {
        int64_t i = ++it->idx[d];
        if (i < w->type.dims[d]) {
            if (i % w->bs[d] == 0) it->b += w->sstride[d];
            return;
        }
        it->b -= (w->sdims[d] - 1) * w->sstride[d];
        it->idx[d] = 0;
    }
}

/* numpy's fp16 arithmetic where the weight is fp16. */
static float fit(const cw *w, float x)
{
    return w->half ? cw_round16(x) : x;
}

/* Scale and zero point of a block from its min and max, as coremltools'
 * quantize_weight_by_dtype computes them (a block of zeros gets scale 1). */
static void block_params(const cw *w, float mn, float mx, float *scale,
                         int32_t *zp)
{
    float range = (float)(w->qmax - w->qmin);
    float lo, hi;
    if (!w->affine) {
        float m = fabsf(mn) > fabsf(mx) ? fabsf(mn) : fabsf(mx);
        lo = -m;
        hi = m;
    } else {
        lo = mn < 0 ? mn : 0.0f;
        hi = mx > 0 ? mx : 0.0f;
    }
    float s = fit(w, fit(w, hi - lo) / range);
    *zp = 0;
    if (!(s > 0) || !isfinite(s)) {
        *scale = 1.0f;
        *zp = w->affine || w->qmin < 0 ? 0 : (w->qmax / 2);
        return;
    }
    *scale = s;
    if (!w->affine) {
        if (w->qmin == 0) *zp = w->qmax / 2; /* unsigned symmetric */
        return;
    }
    float z = fit(w, fit(w, fit(w, (float)w->qmin * hi) - fit(w, (float)w->qmax * lo)) /
                         fit(w, hi - lo));
    z = rintf(z);
    *zp = (int32_t)(z < (float)w->qmin ? (float)w->qmin
                    : z > (float)w->qmax ? (float)w->qmax : z);
}

/* *lo = min(*lo, x[0..n)), *hi = max(*hi, ...) (NaNs ignored). */
static void min_max(const float *x, int64_t n, float *lo, float *hi)
{
    float l = *lo, h = *hi;
    int64_t j = 0;
    if (n >= 8) {
        v4f vl = {l, l, l, l}, vh = {h, h, h, h};
        for (; j + 4 <= n; j += 4) {
            v4f v = load4(x + j);
            vl = select4(v < vl, v, vl);
            vh = select4(v > vh, v, vh);
        }
        for (int k = 0; k < 4; k++) {
            l = vl[k] < l ? vl[k] : l;
            h = vh[k] > h ? vh[k] : h;
        }
    }
    for (; j < n; j++) {
        l = x[j] < l ? x[j] : l;
        h = x[j] > h ? x[j] : h;
    }
    *lo = l;
    *hi = h;
}

/* Min and max of the blocks [b0, b0 + nb) over elements [off, off + n) into
 * mn, mx (initialized here), then scales and zero points. */
static void block_stats(cw *w, int64_t off, const float *x, int64_t n,
                        int64_t b0, int64_t nb, float *mn, float *mx)
{
    for (int64_t k = 0; k < nb; k++) {
        mn[k] = INFINITY;
        mx[k] = -INFINITY;
    }
    bwalk it;
    bwalk_init(&it, w, off);
    for (int64_t i = 0, len; i < n; i += len) {
        len = run_len(&it, n - i);
        int64_t k = it.b - b0;
        min_max(x + i, len, &mn[k], &mx[k]);
        run_skip(&it, len);
    }
    for (int64_t k = 0; k < nb; k++)
        block_params(w, mn[k], mx[k], &w->scale[b0 + k], &w->zp[b0 + k]);
}

/* Statistics over the whole weight, for slabs too large to hold. */
typedef struct scales_ctx {
    cw *w;
    float *mn, *mx;
} scales_ctx;

static milk_status scales_chunk(void *user, int64_t off, const float *x,
                                int64_t n)
{
    scales_ctx *c = user;
    bwalk it;
    bwalk_init(&it, c->w, off);
    for (int64_t i = 0, len; i < n; i += len) {
        len = run_len(&it, n - i);
        min_max(x + i, len, &c->mn[it.b], &c->mx[it.b]);
        run_skip(&it, len);
    }
    return MILK_OK;
}

milk_status cw_scales(milk_ctx *ctx, cw *w)
{
    scales_ctx c = {w, malloc((size_t)w->nblocks * sizeof(float)),
                    malloc((size_t)w->nblocks * sizeof(float))};
    milk_status s = c.mn && c.mx ? MILK_OK : nomem(ctx);
    for (int64_t k = 0; s == MILK_OK && k < w->nblocks; k++) {
        c.mn[k] = INFINITY;
        c.mx[k] = -INFINITY;
    }
    if (s == MILK_OK) s = cw_values(ctx, w, scales_chunk, &c);
    for (int64_t k = 0; s == MILK_OK && k < w->nblocks; k++)
        block_params(w, c.mn[k], c.mx[k], &w->scale[k], &w->zp[k]);
    if (s == MILK_OK) w->scales_ready = true;
    free(c.mn);
    free(c.mx);
    return s;
}

/* ---- pruning ------------------------------------------------------------------ */

static uint32_t abs_bits(float x)
{
    uint32_t u;
    memcpy(&u, &x, 4);
    return u & 0x7fffffffu;
}

/* n:m inside whole slabs: in every run of pm consecutive elements along
 * in_axis the pn smallest |x| are pruned (a run cut short at the end of
 * the axis counts the missing elements as zeros, as coremltools pads). */
static void prune_nm(const cw *w, int64_t n, const float *x, uint8_t *keep)
{
    int ia = w->in_axis;
    int64_t stride = w->inner[ia], len = w->type.dims[ia], slab = len * stride;
    int idx[256];
    for (int64_t s0 = 0; s0 < n; s0 += slab)
        for (int64_t j = 0; j < stride; j++)
            for (int64_t g = 0; g < len; g += w->pm) {
                int r = (int)(len - g < w->pm ? len - g : w->pm);
                int drop = w->pn - (w->pm - r);
                for (int t = 0; t < r; t++) idx[t] = t;
                /* selection of the `drop` smallest (stable: first wins) */
                for (int a = 0; a < drop; a++) {
                    int best = a;
                    for (int t = a + 1; t < r; t++)
                        if (fabsf(x[s0 + j + (g + idx[t]) * stride]) <
                            fabsf(x[s0 + j + (g + idx[best]) * stride]))
                            best = t;
                    int tmp = idx[a];
                    idx[a] = idx[best];
                    idx[best] = tmp;
                }
                for (int a = 0; a < drop && a < r; a++)
                    keep[s0 + j + (g + idx[a]) * stride] = 0;
            }
}

static void prune_chunk(const cw *w, int64_t n, const float *x, uint8_t *keep)
{
    for (int64_t i = 0; i < n; i++)
        keep[i] = w->prune == CW_PRUNE_MAGNITUDE ? abs_bits(x[i]) > w->thr
                                                 : x[i] != 0;
    if (w->prune == CW_PRUNE_NM) prune_nm(w, n, x, keep);
}

/* ---- one pass ------------------------------------------------------------------- */

typedef struct pass {
    milk_ctx *ctx;
    cw *w;
    cw_emit emit;
    void *user;
    bool measure;
    uint8_t *keep;
    int32_t *code;
    float *tmp;       /* per element: x / scale, the expanded value */
    float *mn, *mx;   /* lazy block statistics of one chunk */
    int64_t cap_blocks;
    double sse, sig, peak, max_abs;
} pass;

static milk_status chunk_scales(pass *ps, int64_t off, const float *x, int64_t n)
{
    cw *w = ps->w;
    bwalk a, b;
    bwalk_init(&a, w, off);
    bwalk_init(&b, w, off + n - 1);
    int64_t nb = b.b - a.b + 1;
    if (nb > ps->cap_blocks) {
        free(ps->mn);
        free(ps->mx);
        ps->mn = malloc((size_t)nb * sizeof(float));
        ps->mx = malloc((size_t)nb * sizeof(float));
        if (!ps->mn || !ps->mx) return nomem(ps->ctx);
        ps->cap_blocks = nb;
    }
    block_stats(w, off, x, n, a.b, nb, ps->mn, ps->mx);
    return MILK_OK;
}

/* The nearest entry of LUT l for each x: the number of midpoints between
 * consecutive entries below x (the first of two entries at equal distance
 * wins, as numpy's argmin). A table over 4096 even bins from the first
 * to the last midpoint gives the count below each bin's start; the few
 * midpoints inside the bin are then compared one by one. */
#define NEAREST_BINS 4096

static void nearest_run(const cw *w, int64_t l, const float *x, int64_t n,
                        int32_t *code)
{
    int k = 1 << w->bits;
    const float *lut = w->lut + l * k;
    float mid[256];
    uint16_t below[NEAREST_BINS];
    for (int j = 0; j < k - 1; j++) mid[j] = lut[j] + (lut[j + 1] - lut[j]) * 0.5f;
    if (k <= 16) { /* count the midpoints below, 4 elements at a time */
        v4f vm[15];
        int64_t i = 0;
        for (int j = 0; j < k - 1; j++) vm[j] = (v4f){mid[j], mid[j], mid[j], mid[j]};
        for (; i + 4 <= n; i += 4) {
            v4f v = load4(x + i);
            v4i c = {0, 0, 0, 0};
            for (int j = 0; j < k - 1; j++) c -= v > vm[j]; /* true is -1 */
            memcpy(code + i, &c, sizeof c);
        }
        for (; i < n; i++) {
            int32_t c = 0;
            for (int j = 0; j < k - 1; j++) c += x[i] > mid[j];
            code[i] = c;
        }
        return;
    }
    float lo = mid[0], span = mid[k - 2] - lo;
    float inv = span > 0 ? (float)NEAREST_BINS / span : 0.0f;
    for (int b = 0, c = 0; b < NEAREST_BINS; b++) {
        float start = lo + (float)b / inv;
        while (inv > 0 && c < k - 1 && mid[c] < start) c++;
        below[b] = (uint16_t)c;
    }
    for (int64_t i = 0; i < n; i++) {
        float f = (x[i] - lo) * inv;
        int b = f > 0 ? (f < (float)NEAREST_BINS ? (int)f : NEAREST_BINS - 1) : 0;
        int c = below[b];
        while (c < k - 1 && x[i] > mid[c]) c++;
        code[i] = c;
    }
}

static void div_run(float *t, const float *x, int64_t n, float s)
{
    int64_t j = 0;
    v4f vs = {s, s, s, s};
    for (; j + 4 <= n; j += 4) {
        v4f v = load4(x + j) / vs;
        memcpy(t + j, &v, sizeof v);
    }
    for (; j < n; j++) t[j] = x[j] / s;
}

/* rint(t) + zp clipped to [lo, hi]. Rounding half to even by adding and
 * subtracting 1.5 * 2^23 (exact in round-to-nearest-even for |t| < 2^22;
 * beyond, the value clips anyway); NaN gives lo. */
#define MAGIC 12582912.0f
#define BIG 4194304.0f

static float code_of(float t, float zp, float lo, float hi)
{
    t = t < -BIG ? -BIG : t > BIG ? BIG : t;
    float q = (t + MAGIC) - MAGIC + zp;
    q = q > lo ? q : lo; /* NaN: lo */
    return q < hi ? q : hi;
}

static void code_run(int32_t *q, const float *t, int64_t n, float zp, float lo,
                     float hi)
{
    int64_t j = 0;
    const v4f vbig = {BIG, BIG, BIG, BIG}, vmagic = {MAGIC, MAGIC, MAGIC, MAGIC},
              vzp = {zp, zp, zp, zp}, vlo = {lo, lo, lo, lo}, vhi = {hi, hi, hi, hi};
    for (; j + 4 <= n; j += 4) {
        v4f v = load4(t + j);
        v = select4(v < -vbig, -vbig, v);
        v = select4(v > vbig, vbig, v);
        v = (v + vmagic) - vmagic + vzp;
        v = select4(v > vlo, v, vlo);
        v = select4(v < vhi, v, vhi);
        v4i r = __builtin_convertvector(v, v4i);
        memcpy(q + j, &r, sizeof r);
    }
    for (; j < n; j++) q[j] = (int32_t)code_of(t[j], zp, lo, hi);
}

static void chunk_codes(pass *ps, int64_t off, const float *x, int64_t n)
{
    const cw *w = ps->w;
    if (w->qdt) {
        /* round(x / scale) + zero point, clipped (numpy: x / scale in the
         * weight's dtype, rounded half to even) */
        float lo = (float)w->qmin, hi = (float)w->qmax, *t = ps->tmp;
        bwalk it;
        bwalk_init(&it, w, off);
        for (int64_t i = 0, len; i < n; i += len) {
            len = run_len(&it, n - i);
            div_run(t + i, x + i, len, w->scale[it.b]);
            run_skip(&it, len);
        }
        if (w->half) milk_round_fp16_n(t, (size_t)n);
        bwalk_init(&it, w, off);
        for (int64_t i = 0, len; i < n; i += len) {
            len = run_len(&it, n - i);
            code_run(ps->code + i, t + i, len, (float)w->zp[it.b], lo, hi);
            run_skip(&it, len);
        }
    } else if (w->bits) {
        int64_t run = w->nluts == 1 ? INT64_MAX : w->inner[w->out_axis];
        for (int64_t i = 0, len; i < n; i += len) {
            len = run == INT64_MAX ? n - i : run - (off + i) % run;
            len = len < n - i ? len : n - i;
            nearest_run(w, cw_lut_of(w, off + i), x + i, len, ps->code + i);
        }
    }
}

/* The expanded values of the chunk, as Core ML computes them, into tmp. */
static void chunk_expanded(pass *ps, int64_t off, const float *x, int64_t n)
{
    const cw *w = ps->w;
    float *t = ps->tmp;
    if (w->qdt) {
        bwalk it;
        bwalk_init(&it, w, off);
        for (int64_t i = 0, len; i < n; i += len) {
            len = run_len(&it, n - i);
            float s = w->scale[it.b];
            int32_t zp = w->zp[it.b];
            for (int64_t j = i; j < i + len; j++) t[j] = s * (float)(ps->code[j] - zp);
            run_skip(&it, len);
        }
        if (w->half) milk_round_fp16_n(t, (size_t)n);
    } else if (w->bits) {
        int k = 1 << w->bits;
        for (int64_t j = 0; j < n; j++) t[j] = w->lut[cw_lut_of(w, off + j) * k + ps->code[j]];
    } else {
        memcpy(t, x, (size_t)n * sizeof *t);
    }
    if (w->prune)
        for (int64_t j = 0; j < n; j++)
            if (!ps->keep[j]) t[j] = 0.0f;
}

static void chunk_error(pass *ps, int64_t off, const float *x, int64_t n)
{
    chunk_expanded(ps, off, x, n);
    double sse = 0, sig = 0, peak = ps->peak, mx = ps->max_abs;
    for (int64_t i = 0; i < n; i++) {
        double v = x[i], e = (double)ps->tmp[i] - v;
        sse += e * e;
        sig += v * v;
        peak = v * v > peak ? v * v : peak;
        mx = fabs(e) > mx ? fabs(e) : mx;
    }
    ps->sse += sse;
    ps->sig += sig;
    ps->peak = peak;
    ps->max_abs = mx;
}

static milk_status pass_chunk(void *user, int64_t off, float *x, int64_t n)
{
    pass *ps = user;
    cw *w = ps->w;
    if (w->prune) prune_chunk(w, n, x, ps->keep);
    if (w->qdt && !w->scales_ready) MILK_TRY(chunk_scales(ps, off, x, n));
    chunk_codes(ps, off, x, n);
    if (ps->measure) chunk_error(ps, off, x, n);
    if (!ps->emit) return MILK_OK;
    cw_chunk c = {off, n, x, w->prune ? ps->keep : NULL,
                  w->qdt || w->bits ? ps->code : NULL};
    return ps->emit(ps->user, &c);
}

milk_status cw_pass(milk_ctx *ctx, cw *w, cw_emit emit, void *user)
{
    return cw_pass_as(ctx, w, emit, user, w->measure && !w->measured);
}

milk_status cw_pass_as(milk_ctx *ctx, cw *w, cw_emit emit, void *user,
                       bool measure)
{
    int64_t cap = w->slab >= CW_CHUNK ? w->slab : CW_CHUNK / w->slab * w->slab;
    pass ps = {ctx, w, emit, user, measure, malloc((size_t)cap),
               malloc((size_t)cap * sizeof(int32_t)), malloc((size_t)cap * sizeof(float)),
               NULL, NULL, 0, 0, 0, 0, 0};
    milk_status s = ps.keep && ps.code && ps.tmp ? MILK_OK : nomem(ctx);
    if (s == MILK_OK) s = read_weight(ctx, w, cap, pass_chunk, &ps);
    free(ps.keep);
    free(ps.code);
    free(ps.tmp);
    free(ps.mn);
    free(ps.mx);
    if (s != MILK_OK) return s;
    w->scales_ready = true;
    if (ps.measure) {
        w->measured = true;
        w->sse = ps.sse;
        w->sig = ps.sig;
        w->peak = ps.peak;
        w->max_abs = ps.max_abs;
        if (w->row) {
            milk_compress_row *r = w->row;
            r->measured = 1;
            r->max_abs = ps.max_abs;
            r->snr_db = ps.sse > 0 ? 10 * log10(ps.sig / ps.sse) : INFINITY;
            r->psnr_db = ps.sse > 0 ? 10 * log10(ps.peak / (ps.sse / (double)w->n))
                                    : INFINITY;
        }
    }
    return MILK_OK;
}

static milk_status count_chunk(void *user, const cw_chunk *c)
{
    int64_t *kept = user;
    for (int64_t i = 0; i < c->n; i++) *kept += c->keep[i];
    return MILK_OK;
}

milk_status cw_count_kept(milk_ctx *ctx, cw *w)
{
    int64_t kept = 0;
    int bits = w->bits;
    w->bits = 0; /* no LUT yet: no codes */
    milk_status s = cw_pass_as(ctx, w, count_chunk, &kept, false);
    w->bits = bits;
    w->kept = kept;
    return s;
}

/* ---- generators --------------------------------------------------------------- */

typedef struct cw_gen {
    milk_data_gen base;
    cw *w;
    cw_part part;
    int bits;         /* per element of the generated tensor */
} cw_gen;

/* Packs elements LSB first into bytes and hands them on in chunks. */
typedef struct packer {
    milk_ctx *ctx;
    milk_data_sink fn;
    void *user;
    unsigned char *buf;
    size_t cap, len;
    uint64_t acc;
    int nacc;
    milk_status status;
} packer;

static void pk_bits(packer *pk, uint32_t v, int bits)
{
    pk->acc |= (uint64_t)(v & ((1u << bits) - 1u)) << pk->nacc;
    pk->nacc += bits;
    while (pk->nacc >= 8) {
        pk->buf[pk->len++] = (unsigned char)pk->acc;
        pk->acc >>= 8;
        pk->nacc -= 8;
    }
}

static void pk_bytes(packer *pk, const void *p, size_t n)
{
    memcpy(pk->buf + pk->len, p, n);
    pk->len += n;
}

static milk_status pk_flush(packer *pk, bool last)
{
    if (last && pk->nacc > 0) {
        pk->buf[pk->len++] = (unsigned char)pk->acc;
        pk->acc = 0;
        pk->nacc = 0;
    }
    if (!pk->len) return MILK_OK;
    milk_status s = pk->fn(pk->user, pk->buf, pk->len);
    pk->len = 0;
    return s;
}

typedef struct emit_ctx {
    const cw_gen *g;
    packer *pk;
} emit_ctx;

static void put_value(packer *pk, const cw *w, float x)
{
    if (w->half) {
        uint16_t h = milk_fp32_to_fp16(x);
        pk_bytes(pk, &h, 2);
    } else {
        pk_bytes(pk, &x, 4);
    }
}

/* Every element's code, 4 or 8 bits, when nothing is pending in the
 * packer: the common cases, whole bytes at a time. */
static milk_status emit_codes_fast(packer *pk, const cw_chunk *c, int bits)
{
    int64_t per = 8 / bits; /* codes per byte */
    for (int64_t i = 0; i < c->n;) {
        int64_t m = (c->n - i) / per, room = (int64_t)(pk->cap - pk->len);
        m = m < room ? m : room;
        unsigned char *o = pk->buf + pk->len;
        const int32_t *q = c->code + i;
        if (bits == 8)
            for (int64_t j = 0; j < m; j++) o[j] = (unsigned char)q[j];
        else
            for (int64_t j = 0; j < m; j++)
                o[j] = (unsigned char)((q[2 * j] & 15) | (q[2 * j + 1] & 15) << 4);
        pk->len += (size_t)m;
        i += m * per;
        if (pk->len + 8 > pk->cap) MILK_TRY(pk_flush(pk, false));
        if (c->n - i < per && i < c->n) /* a last 4-bit code without its pair */
            pk_bits(pk, (uint32_t)c->code[i++], bits);
    }
    return MILK_OK;
}

static milk_status emit_part(void *user, const cw_chunk *c)
{
    emit_ctx *e = user;
    const cw_gen *g = e->g;
    packer *pk = e->pk;
    if (g->part == CW_CODES && pk->nacc == 0 && (g->bits == 8 || g->bits == 4))
        return emit_codes_fast(pk, c, g->bits);
    for (int64_t i = 0; i < c->n; i++) {
        switch (g->part) {
        case CW_CODES: pk_bits(pk, (uint32_t)c->code[i], g->bits); break;
        case CW_MASK: pk_bits(pk, c->keep[i], 1); break;
        case CW_NZ_VALUES: if (c->keep[i]) put_value(pk, g->w, c->x[i]); break;
        case CW_NZ_CODES: if (c->keep[i]) pk_bits(pk, (uint32_t)c->code[i], g->bits); break;
        default: break;
        }
        if (pk->len + 8 > pk->cap) MILK_TRY(pk_flush(pk, false));
    }
    return MILK_OK;
}

static milk_status gen_stream(milk_ctx *ctx, const milk_data_gen *base,
                              size_t chunk, milk_data_sink fn, void *user)
{
    const cw_gen *g = (const cw_gen *)base;
    cw *w = g->w;
    packer pk = {ctx, fn, user, NULL, chunk < 64 ? 64 : chunk, 0, 0, 0, MILK_OK};
    if (!(pk.buf = malloc(pk.cap + 16))) return nomem(ctx);
    milk_status s = MILK_OK;
    if (g->part == CW_SCALES || g->part == CW_OFFSETS) {
        if (!w->scales_ready) s = cw_pass(ctx, w, NULL, NULL);
        for (int64_t b = 0; s == MILK_OK && b < w->nblocks; b++) {
            if (g->part == CW_SCALES) put_value(&pk, w, w->scale[b]);
            else pk_bits(&pk, (uint32_t)w->zp[b], g->bits);
            if (pk.len + 8 > pk.cap) s = pk_flush(&pk, false);
        }
    } else {
        emit_ctx e = {g, &pk};
        s = cw_pass(ctx, w, emit_part, &e);
    }
    if (s == MILK_OK) s = pk_flush(&pk, true);
    free(pk.buf);
    return s;
}

milk_value *cw_gen_value(milk_arena *a, cw *w, cw_part part,
                         const milk_tensor_type *type)
{
    cw_gen *g = milk_arena_alloc(a, sizeof *g);
    milk_value *v = milk_arena_alloc(a, sizeof *v);
    if (!g || !v) return NULL;
    g->base.stream = gen_stream;
    g->w = w;
    g->part = part;
    /* iOS16's packed uint8 indices and masks hold the same bits as uint1
     * ... uint8 tensors */
    g->bits = part == CW_MASK ? 1
              : (part == CW_CODES || part == CW_NZ_CODES) && w->bits ? w->bits
                                                                      : milk_dtype_bits(type->dtype);
    v->kind = MILK_VALUE_TENSOR;
    v->type = *type;
    v->data.kind = MILK_DATA_GEN;
    v->data.gen = &g->base;
    return v;
}
