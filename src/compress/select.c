/* select.c: the parameters chosen before any compressed data is produced:
 * the magnitude below which weights are pruned, and the LUTs of
 * palettization (k-means or uniform). Both read the weight in streaming
 * passes and keep only histograms and a bounded sample. */
#include "compress.h"

#include <math.h>
#include <stdlib.h>

static milk_status nomem(milk_ctx *ctx)
{
    return milk_errorf(ctx, MILK_ERR_NOMEM, "out of memory");
}

static uint32_t abs_bits(float x)
{
    uint32_t u;
    memcpy(&u, &x, 4);
    return u & 0x7fffffffu;
}

/* ---- pruning threshold -------------------------------------------------------- */

/* The k-th smallest |x| (0-based) exactly, by its float bits (which order
 * non-negative floats as integers): a histogram of the top 16 bits, then
 * one of the low 16 bits inside the bin holding rank k. */
typedef struct hist {
    uint64_t count[65536];
    int pass;
    uint32_t bin;  /* pass 2: the top bits looked into */
} hist;

static milk_status hist_chunk(void *user, int64_t off, const float *x,
                              int64_t n)
{
    hist *h = user;
    for (int64_t i = 0; i < n; i++) {
        uint32_t b = abs_bits(x[i]);
        if (h->pass == 1) h->count[b >> 16]++;
        else if (b >> 16 == h->bin) h->count[b & 0xffff]++;
    }
    return MILK_OK;
}

/* Bin holding rank k of counts (k counted from 0); *below gets the count
 * of the bins before it. */
static uint32_t rank_bin(const uint64_t *count, uint64_t k, uint64_t *below)
{
    uint64_t acc = 0;
    for (uint32_t b = 0; b < 65536; b++) {
        if (acc + count[b] > k) {
            *below = acc;
            return b;
        }
        acc += count[b];
    }
    *below = acc;
    return 65535;
}

milk_status cw_prune_threshold(milk_ctx *ctx, cw *w, double frac)
{
    /* coremltools: zero where |x| <= percentile(|x|, 100 frac), the
     * percentile interpolating linearly between ranks floor(frac (n - 1))
     * and the next: the same set as |x| <= the value of that rank. */
    uint64_t k = (uint64_t)floor(frac * (double)(w->n - 1));
    hist *h = calloc(1, sizeof *h);
    if (!h) return nomem(ctx);
    h->pass = 1;
    milk_status s = cw_values(ctx, w, hist_chunk, h);
    uint64_t below = 0, below2 = 0, le = 0;
    if (s == MILK_OK) {
        h->bin = rank_bin(h->count, k, &below);
        memset(h->count, 0, sizeof h->count);
        h->pass = 2;
        s = cw_values(ctx, w, hist_chunk, h);
    }
    if (s == MILK_OK) {
        uint32_t low = rank_bin(h->count, k - below, &below2);
        w->thr = h->bin << 16 | low;
        le = below + below2 + h->count[low]; /* elements with bits <= thr */
        w->kept = w->n - (int64_t)le;
    }
    free(h);
    return s;
}

/* ---- LUTs ----------------------------------------------------------------------- */

/* splitmix64: a small deterministic generator for the sample positions. */
static uint64_t next_random(uint64_t *state)
{
    uint64_t z = (*state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

typedef struct samples {
    float *v;
    int64_t n, cap;
    float mn, mx;
} samples;

typedef struct sampler {
    milk_ctx *ctx;
    cw *w;
    bool range;        /* keep min and max (uniform LUTs) */
    samples *per;      /* per LUT */
    double p;          /* sampling probability */
    uint64_t rng;
    int64_t next;      /* offset of the next element to sample */
    milk_status status;
} sampler;

/* Geometric skip to the next sampled offset after `from`. */
static int64_t skip(sampler *sp, int64_t from)
{
    if (sp->p >= 1.0) return from + 1;
    double u = ((double)(next_random(&sp->rng) >> 11) + 0.5) / 9007199254740992.0;
    double gap = floor(log(u) / log1p(-sp->p));
    return from + 1 + (gap > 1e15 ? (int64_t)1e15 : (int64_t)gap);
}

static bool push(samples *s, float x)
{
    if (s->n == s->cap) {
        int64_t cap = s->cap ? 2 * s->cap : 1024;
        float *v = realloc(s->v, (size_t)cap * sizeof *v);
        if (!v) return false;
        s->v = v;
        s->cap = cap;
    }
    s->v[s->n++] = x;
    return true;
}

static milk_status sample_chunk(void *user, const cw_chunk *c)
{
    sampler *sp = user;
    const cw *w = sp->w;
    int64_t run = w->nluts == 1 ? INT64_MAX : w->inner[w->out_axis];
    for (int64_t i = 0, len; sp->range && i < c->n; i += len) {
        len = run == INT64_MAX ? c->n - i : run - (c->off + i) % run;
        len = len < c->n - i ? len : c->n - i;
        samples *s = &sp->per[cw_lut_of(w, c->off + i)];
        float lo = s->mn, hi = s->mx;
        for (int64_t j = i; j < i + len; j++) {
            if (c->keep && !c->keep[j]) continue;
            lo = c->x[j] < lo ? c->x[j] : lo;
            hi = c->x[j] > hi ? c->x[j] : hi;
        }
        s->mn = lo;
        s->mx = hi;
    }
    while (sp->next < c->off + c->n) {
        int64_t i = sp->next - c->off;
        if (!c->keep || c->keep[i])
            if (!push(&sp->per[cw_lut_of(w, sp->next)], c->x[i]))
                return nomem(sp->ctx);
        sp->next = skip(sp, sp->next);
    }
    return MILK_OK;
}

static int cmp_float(const void *a, const void *b)
{
    float x = *(const float *)a, y = *(const float *)b;
    return (x > y) - (x < y);
}

/* Lloyd's k-means in one dimension on sorted values v[0..m), k clusters,
 * from quantiles; prefix sums make each iteration O(k log m). */
static void kmeans1d(const float *v, int64_t m, int k, double *c)
{
    double *pre = malloc((size_t)(m + 1) * sizeof *pre);
    int64_t *end = malloc((size_t)k * sizeof *end);
    if (!pre || !end) { /* no memory: quantiles alone */
        for (int j = 0; j < k; j++) c[j] = v[(int64_t)((j + 0.5) * (double)m / k)];
        free(pre);
        free(end);
        return;
    }
    pre[0] = 0;
    for (int64_t i = 0; i < m; i++) pre[i + 1] = pre[i] + v[i];
    for (int j = 0; j < k; j++) c[j] = v[(int64_t)((j + 0.5) * (double)m / k)];
    for (int it = 0; it < 300; it++) {
        /* cluster j holds the values up to the midpoint with j + 1 */
        for (int j = 0; j < k; j++) {
            if (j == k - 1) {
                end[j] = m;
                continue;
            }
            double t = 0.5 * (c[j] + c[j + 1]);
            int64_t lo = j ? end[j - 1] : 0, hi = m;
            while (lo < hi) {
                int64_t mid = lo + (hi - lo) / 2;
                if ((double)v[mid] <= t) lo = mid + 1;
                else hi = mid;
            }
            end[j] = lo;
        }
        bool moved = false;
        for (int j = 0; j < k; j++) {
            int64_t a = j ? end[j - 1] : 0, b = end[j];
            if (b <= a) continue; /* empty: keep the centroid */
            double mean = (pre[b] - pre[a]) / (double)(b - a);
            if (mean != c[j]) moved = true;
            c[j] = mean;
        }
        if (!moved) break;
    }
    free(pre);
    free(end);
}

static float fit(const cw *w, double x)
{
    return w->half ? cw_round16((float)x) : (float)x;
}

/* LUT l from its sample: uniform, the distinct values (when there are no
 * more than k), or k-means. */
static void lut_from(cw *w, samples *s, bool uniform, float *lut)
{
    int k = 1 << w->bits;
    if (uniform ? !(s->mn <= s->mx) : s->n == 0) { /* no value (all pruned) */
        for (int j = 0; j < k; j++) lut[j] = 0.0f;
        return;
    }
    if (uniform) {
        double step = ((double)s->mx - s->mn) / (k - 1);
        for (int j = 0; j < k; j++) lut[j] = fit(w, s->mn + j * step);
        return;
    }
    qsort(s->v, (size_t)s->n, sizeof *s->v, cmp_float);
    int u = 0;
    for (int64_t i = 0; i < s->n && u <= k; i++)
        if (i == 0 || s->v[i] != s->v[i - 1]) u++;
    if (u <= k) {
        int j = 0;
        for (int64_t i = 0; i < s->n; i++)
            if (i == 0 || s->v[i] != s->v[i - 1]) lut[j++] = s->v[i];
        for (; j < k; j++) lut[j] = lut[j - 1];
        return;
    }
    double c[256];
    kmeans1d(s->v, s->n, k, c);
    for (int j = 0; j < k; j++) lut[j] = fit(w, c[j]);
    qsort(lut, (size_t)k, sizeof *lut, cmp_float);
}

/* An int8 LUT: symmetric int8 codes and a scale per LUT, and the LUT as
 * Core ML expands it (constexpr_blockwise_shift_scale on the LUT). */
static void quantize_lut(cw *w, int64_t l)
{
    int k = 1 << w->bits;
    float *lut = w->lut + l * k, m = 0;
    for (int j = 0; j < k; j++) m = fabsf(lut[j]) > m ? fabsf(lut[j]) : m;
    float s = fit(w, m / 127.0);
    if (!(s > 0)) s = 1.0f;
    w->lut_scale[l] = s;
    for (int j = 0; j < k; j++) {
        float q = rintf(fit(w, lut[j] / s));
        q = q < -127 ? -127 : q > 127 ? 127 : q;
        w->lutq[l * k + j] = (int8_t)q;
        lut[j] = fit(w, s * q);
    }
}

milk_status cw_luts(milk_ctx *ctx, milk_arena *a, cw *w, bool uniform,
                    bool lut_int8, uint64_t seed, int64_t samples_per_lut)
{
    int k = 1 << w->bits;
    w->lut = milk_arena_alloc(a, (size_t)(w->nluts * k) * sizeof *w->lut);
    if (lut_int8) {
        w->lutq = milk_arena_alloc(a, (size_t)(w->nluts * k));
        w->lut_scale = milk_arena_alloc(a, (size_t)w->nluts * sizeof *w->lut_scale);
    }
    sampler sp = {ctx, w, uniform, calloc((size_t)w->nluts, sizeof(samples)), 1.0,
                  seed ^ 0x6D696C6B636F6D70ull /* "milkcomp" */, 0, MILK_OK};
    if (!w->lut || (lut_int8 && (!w->lutq || !w->lut_scale)) || !sp.per) {
        free(sp.per);
        return nomem(ctx);
    }
    for (int64_t l = 0; l < w->nluts; l++) {
        sp.per[l].mn = INFINITY;
        sp.per[l].mx = -INFINITY;
    }
    /* kept values per LUT, about; the sample aims at samples_per_lut */
    double per_lut = (double)(w->prune ? w->kept : w->n) / (double)w->nluts;
    if (!uniform && per_lut > (double)samples_per_lut) sp.p = samples_per_lut / per_lut;
    sp.next = sp.p >= 1.0 ? 0 : skip(&sp, -1);
    if (uniform) sp.next = INT64_MAX; /* min and max only */
    int bits = w->bits;
    w->bits = 0; /* no codes yet */
    milk_status s = cw_pass_as(ctx, w, sample_chunk, &sp, false);
    w->bits = bits;
    for (int64_t l = 0; s == MILK_OK && l < w->nluts; l++) {
        lut_from(w, &sp.per[l], uniform, w->lut + l * k);
        if (lut_int8) quantize_lut(w, l);
    }
    for (int64_t l = 0; l < w->nluts; l++) free(sp.per[l].v);
    free(sp.per);
    return s;
}
