/*
 * vec_impl.h: the primitives of vec.h, written once with GCC vector
 * extensions and compiled twice (vec_base.c: 4 floats, SSE2; vec_avx2.c: 8
 * floats, AVX2 + FMA + F16C). The includer defines VW (floats per vector),
 * VEC_NAME, VEC_TABLE (the table's name), and FMA(a, b, c), ROUND16(v).
 *
 * Each loop runs whole vectors, then the remaining elements one at a time
 * through the same vector code on a zero-padded vector, so the tail
 * computes exactly what a full vector would.
 */
#include "vec.h"
#include "../internal.h"

#include <float.h>
#include <math.h>
#include <string.h>

typedef float vf __attribute__((vector_size(VW * 4)));
typedef int32_t vi __attribute__((vector_size(VW * 4)));
typedef uint32_t vu __attribute__((vector_size(VW * 4)));

#define INL static inline __attribute__((always_inline))

INL vf splat(float s) { return (vf){0} + s; }
INL vf load(const float *p) { vf v; memcpy(&v, p, sizeof v); return v; }
INL void store(float *p, vf v) { memcpy(p, &v, sizeof v); }
/* the first n (< VW) elements, zeros after */
INL vf load_n(const float *p, int64_t n)
{
    vf v = {0};
    memcpy(&v, p, (size_t)n * 4);
    return v;
}
INL void store_n(float *p, vf v, int64_t n) { memcpy(p, &v, (size_t)n * 4); }
INL vf sel(vi m, vf a, vf b) { return (vf)((m & (vi)a) | (~m & (vi)b)); }
#ifndef VEC_HAVE_ROUND16
/* fp16 rounding lane by lane with milk's portable conversion */
INL vf round16_lanes(vf v)
{
    for (int k = 0; k < VW; k++) v[k] = milk_fp16_to_fp32(milk_fp32_to_fp16(v[k]));
    return v;
}
#endif
INL vf vabs(vf x) { return (vf)((vi)x & 0x7fffffff); }

/* ---- exp, erf, tanh ----------------------------------------------------- */

/* e^x: Cephes' expf (argument reduction by ln 2 in two parts, a degree-5
 * polynomial), 2^n assembled in the exponent bits. Beyond the float range
 * +inf and 0; NaN stays NaN. */
INL vf vexp(vf x)
{
    const float hi = 88.72283935546875f, lo = -87.33654022216797f;
    vf xc = sel(x > hi, splat(hi), x);
    xc = sel(xc < lo, splat(lo), xc);
    /* n = round(x / ln 2) by the 1.5 * 2^23 trick */
    vf n = FMA(xc, splat(1.44269504088896341f), splat(12582912.0f)) - 12582912.0f;
    vf r = FMA(n, splat(-0.693359375f), xc);
    r = FMA(n, splat(2.12194440e-4f), r);
    vf p = splat(1.9875691500E-4f);
    p = FMA(p, r, splat(1.3981999507E-3f));
    p = FMA(p, r, splat(8.3334519073E-3f));
    p = FMA(p, r, splat(4.1665795894E-2f));
    p = FMA(p, r, splat(1.6666665459E-1f));
    p = FMA(p, r, splat(5.0000001201E-1f));
    p = FMA(p, r * r, r) + 1.0f;
    /* 2^n for n up to 128: 2^(n - 1) * 2 keeps the exponent in range */
    vi ni = __builtin_convertvector(n, vi);
    vi big = ni > 127;
    ni = ni + big;              /* big is -1: n - 1 */
    vf scale = (vf)(((vu)(ni + 127)) << 23);
    p = p * scale;
    p = sel(big, p * 2.0f, p);
    p = sel(x > hi, splat(INFINITY), p);
    return sel(x < lo, splat(0.0f), p);
}

/* erf: a rational odd/even fit on [-4, 4] (erf is 1 in fp32 beyond);
 * NaN stays NaN. */
INL vf verf(vf x)
{
    vf c = sel(x > 4.0f, splat(4.0f), x);
    c = sel(c < -4.0f, splat(-4.0f), c);
    vf x2 = c * c;
    vf p = splat(-2.72614225801306e-10f);
    p = FMA(p, x2, splat(2.77068142495902e-08f));
    p = FMA(p, x2, splat(-2.10102402082508e-06f));
    p = FMA(p, x2, splat(-5.69250639462346e-05f));
    p = FMA(p, x2, splat(-7.34990630326855e-04f));
    p = FMA(p, x2, splat(-2.95459980854025e-03f));
    p = FMA(p, x2, splat(-1.60960333262415e-02f));
    p = p * c;
    vf q = splat(-1.45660718464996e-05f);
    q = FMA(q, x2, splat(-2.13374055278905e-04f));
    q = FMA(q, x2, splat(-1.68282697438203e-03f));
    q = FMA(q, x2, splat(-7.37332916720468e-03f));
    q = FMA(q, x2, splat(-1.42647390514189e-02f));
    return p / q;
}

/* tanh: Cephes' tanhf: an odd polynomial below 0.625, else 1 - 2 / (e^2|x|
 * + 1) with x's sign. */
INL vf vtanh(vf x)
{
    vf a = vabs(x);
    vf z = x * x;
    vf p = splat(-5.70498872745E-3f);
    p = FMA(p, z, splat(2.06390887954E-2f));
    p = FMA(p, z, splat(-5.37397155531E-2f));
    p = FMA(p, z, splat(1.33314422036E-1f));
    p = FMA(p, z, splat(-3.33332819422E-1f));
    vf small = FMA(p * z, x, x);
    vf e = vexp(a + a);
    vf big = 1.0f - 2.0f / (e + 1.0f);
    big = (vf)((vi)big | ((vi)x & (int32_t)0x80000000)); /* x's sign */
    return sel(a < 0.625f, small, big);
}

/* 1 / d for d >= 1 (or +inf, or NaN): the CPU's reciprocal estimate
 * refined by one Newton step (within 2 ulp), where a division would stall
 * the epilogues for its whole latency. */
INL vf recip_ge1(vf d)
{
#ifdef RCP
    vf r = RCP(d);
    r = FMA(r, FMA(-d, r, splat(1.0f)), r);
    return sel(d == INFINITY, splat(0.0f), r);
#else
    return 1.0f / d;
#endif
}

INL vf vsigmoid(vf x) { return recip_ge1(1.0f + vexp(-x)); }

/* min(max(x, lo), hi) as the reference writes it: NaN passes through */
INL vf vclip(vf x, float lo, float hi)
{
    vf v = sel(x < lo, splat(lo), x);
    return sel(v > hi, splat(hi), v);
}

INL vf apply(const milk_fnp *f, vf x)
{
    switch (f->fn) {
    case MILK_FN_RELU: return sel((x > 0.0f) | (x != x), x, splat(0.0f));
    case MILK_FN_CLIP: return vclip(x, f->a, f->b);
    case MILK_FN_SIGMOID: return vsigmoid(x);
    case MILK_FN_HARD_SIGMOID: return vclip(FMA(x, splat(f->a), splat(f->b)), 0.0f, 1.0f);
    case MILK_FN_TANH: return vtanh(x);
    case MILK_FN_SILU: return x * recip_ge1(1.0f + vexp(-x));
    case MILK_FN_GELU: return 0.5f * x * (1.0f + verf(x * 0.70710678118654752f));
    case MILK_FN_GELU_TANH: {
        vf u = 0.7978845608028654f * (x + 0.044715f * x * x * x);
        return 0.5f * x * (1.0f + vtanh(u));
    }
    case MILK_FN_GELU_SIGMOID: return x * vsigmoid(1.702f * x);
    case MILK_FN_LEAKY: return sel(x < 0.0f, x * f->a, x);
    case MILK_FN_ERF: return verf(x);
    case MILK_FN_EXP: return vexp(x);
    case MILK_FN_AFFINE: return FMA(x, splat(f->a), splat(f->b));
    default: return x;
    }
}

static void map(const milk_fnp *f, const float *x, float *y, int64_t n)
{
    int64_t i = 0;
    for (; i + VW <= n; i += VW) store(y + i, apply(f, load(x + i)));
    if (i < n) store_n(y + i, apply(f, load_n(x + i, n - i)), n - i);
}

/* ---- binary ------------------------------------------------------------- */

INL vf bop(milk_bop op, vf a, vf b)
{
    switch (op) {
    case MILK_BOP_ADD: return a + b;
    case MILK_BOP_SUB: return a - b;
    case MILK_BOP_MUL: return a * b;
    case MILK_BOP_DIV: return a / b;
    /* a > b || isnan(a) ? a : b, and NaN in b wins when a is not NaN */
    case MILK_BOP_MAX: return sel((a > b) | (a != a), a, b);
    default: return sel((a < b) | (a != a), a, b);
    }
}

#define BINARY_LOOP(OP, LA, LB)                                              \
    for (; i + VW <= n; i += VW) store(y + i, bop(OP, LA, LB));             \
    if (i < n) {                                                            \
        vf r = bop(OP, LA##_N, LB##_N);                                      \
        store_n(y + i, r, n - i);                                           \
    }

static void binary(milk_bop op, const float *a, int64_t sa, const float *b,
                   int64_t sb, float *y, int64_t n)
{
    int64_t i = 0;
    if (sa && sb) {
        for (; i + VW <= n; i += VW) store(y + i, bop(op, load(a + i), load(b + i)));
        if (i < n)
            store_n(y + i, bop(op, load_n(a + i, n - i), load_n(b + i, n - i)), n - i);
    } else if (sa) {
        vf vb = splat(b[0]);
        for (; i + VW <= n; i += VW) store(y + i, bop(op, load(a + i), vb));
        if (i < n) store_n(y + i, bop(op, load_n(a + i, n - i), vb), n - i);
    } else if (sb) {
        vf va = splat(a[0]);
        for (; i + VW <= n; i += VW) store(y + i, bop(op, va, load(b + i)));
        if (i < n) store_n(y + i, bop(op, va, load_n(b + i, n - i)), n - i);
    } else {
        vf r = bop(op, splat(a[0]), splat(b[0]));
        for (; i < n; i++) y[i] = r[0];
    }
}

/* ---- statistics and fp16 rounding --------------------------------------- */

typedef struct vacc {
    vf top;
    vi over, inf, nan;
} vacc;

/* Statistics of the lanes of x selected by mask (all lanes: -1). */
INL void acc_pre(vacc *s, vf x, bool round16, vi mask)
{
    vf a = vabs(x);
    vi fin = (a <= FLT_MAX) & mask;
    s->top = sel(fin & (a > s->top), a, s->top);
    if (round16) s->over -= fin & (a > 65504.0f);
}

INL void acc_post(vacc *s, vf x, vi mask)
{
    s->nan -= (x != x) & mask;
    s->inf -= (vabs(x) == INFINITY) & mask;
}

static void acc_merge(const vacc *s, milk_vstats *st)
{
    for (int k = 0; k < VW; k++) {
        if (s->top[k] > st->max_abs) st->max_abs = s->top[k];
        st->over += s->over[k];
        st->inf += s->inf[k];
        st->nan += s->nan[k];
    }
}

/* the first n lanes */
INL vi first_lanes(int64_t n)
{
    vi idx;
    for (int k = 0; k < VW; k++) idx[k] = k;
    return idx < (int32_t)n;
}

INL vf stage(vf v, bool round16, vacc *s, vi mask)
{
    acc_pre(s, v, round16, mask);
    if (round16) v = ROUND16(v);
    acc_post(s, v, mask);
    return v;
}

static void finish(float *x, int64_t n, bool round16, milk_vstats *st)
{
    vacc s;
    memset(&s, 0, sizeof s);
    const vi all = first_lanes(VW);
    int64_t i = 0;
    for (; i + VW <= n; i += VW) {
        vf v = stage(load(x + i), round16, &s, all);
        if (round16) store(x + i, v);
    }
    if (i < n) {
        vf v = stage(load_n(x + i, n - i), round16, &s, first_lanes(n - i));
        if (round16) store_n(x + i, v, n - i);
    }
    acc_merge(&s, st);
}

/* ---- epilogue ----------------------------------------------------------- */

INL vf epi_one(const milk_epi *e, vf v, vacc *s, vi mask)
{
    v = stage(v, e->round16[0], &s[0], mask);
    if (e->act.fn == MILK_FN_NONE) return v;
    vf a = stage(apply(&e->act, v), e->round16[1], &s[1], mask);
    if (!e->mul_self) return a;
    return stage(v * a, e->round16[2], &s[2], mask);
}

static void epilogue(const milk_epi *e, float *y, int64_t n, const float *bias,
                     int64_t bstride, milk_vstats *st)
{
    vacc s[3];
    memset(s, 0, sizeof s);
    const vi all = first_lanes(VW);
    int64_t i = 0;
    vf b1 = splat(bias && !bstride ? bias[0] : 0.0f);
    for (; i + VW <= n; i += VW) {
        vf b = bias && bstride ? load(bias + i) : b1;
        store(y + i, epi_one(e, load(y + i) + b, s, all));
    }
    if (i < n) {
        vf b = bias && bstride ? load_n(bias + i, n - i) : b1;
        store_n(y + i, epi_one(e, load_n(y + i, n - i) + b, s, first_lanes(n - i)),
                n - i);
    }
    for (int k = 0; k < 3; k++) acc_merge(&s[k], &st[k]);
}

/* ---- direct convolution row --------------------------------------------- */

/* The even lanes of a then b. */
INL vf evens(vf a, vf b)
{
#if defined(__clang__) && VW == 8
    return __builtin_shufflevector(a, b, 0, 2, 4, 6, 8, 10, 12, 14);
#elif defined(__clang__)
    return __builtin_shufflevector(a, b, 0, 2, 4, 6);
#elif VW == 8
    return __builtin_shuffle(a, b, (vi){0, 2, 4, 6, 8, 10, 12, 14});
#else
    return __builtin_shuffle(a, b, (vi){0, 2, 4, 6});
#endif
}

/* The 8 (VW) inputs of positions ow..ow+VW-1 at stride s from p. */
INL vf load_strided(const float *p, int64_t s)
{
    if (s == 1) return load(p);
    if (s == 2) return evens(load(p), load(p + VW));
    vf v;
    for (int k = 0; k < VW; k++) v[k] = p[k * s];
    return v;
}

static void conv_row(const float *const *rows, int kh, int kw, const float *w,
                     int64_t stride, int64_t dil, float *y, int64_t n)
{
    int64_t ow = 0;
    for (; ow < n; ow += VW) {
        vf acc = {0};
        for (int r = 0; r < kh; r++) {
            const float *xr = rows[r] + ow * stride;
            for (int k = 0; k < kw; k++)
                acc = FMA(splat(w[r * kw + k]), load_strided(xr + k * dil, stride), acc);
        }
        if (ow + VW <= n) store(y + ow, load(y + ow) + acc);
        else store_n(y + ow, load_n(y + ow, n - ow) + acc, n - ow);
    }
}

/* y[ow] = max over kernel rows r and taps k of rows[r][ow * stride + k]
 * (NaN sticking as the reference's max pool), reading as conv_row does. */
static void max_row(const float *const *rows, int kh, int kw, int64_t stride,
                    float *y, int64_t n)
{
    for (int64_t ow = 0; ow < n; ow += VW) {
        vf acc = splat(-INFINITY);
        for (int r = 0; r < kh; r++) {
            const float *xr = rows[r] + ow * stride;
            for (int k = 0; k < kw; k++) acc = bop(MILK_BOP_MAX, load_strided(xr + k, stride), acc);
        }
        if (ow + VW <= n) store(y + ow, acc);
        else store_n(y + ow, acc, n - ow);
    }
}

/* ---- reductions and rows ------------------------------------------------- */

static double sum(const float *x, int64_t n)
{
    /* blocks of 16 vectors summed in fp32, the blocks in double: exact
     * enough for means of millions of values, at fp32 speed */
    double s = 0;
    int64_t i = 0;
    while (i + VW <= n) {
        vf acc = {0};
        int64_t end = i + 16 * VW < n ? i + 16 * VW : n;
        for (; i + VW <= end; i += VW) acc += load(x + i);
        for (int k = 0; k < VW; k++) s += acc[k];
    }
    for (; i < n; i++) s += x[i];
    return s;
}

static float vmax_all(const float *x, int64_t n)
{
    vf m = splat(-INFINITY);
    int64_t i = 0;
    for (; i + VW <= n; i += VW) m = bop(MILK_BOP_MAX, load(x + i), m);
    float r = -INFINITY;
    for (int k = 0; k < VW; k++) r = (m[k] > r || m[k] != m[k]) && r == r ? m[k] : r;
    for (; i < n; i++) r = (x[i] > r || x[i] != x[i]) && r == r ? x[i] : r;
    return r;
}

static void softmax(const float *x, float *y, int64_t n)
{
    float m = vmax_all(x, n);
    vf vm = splat(m);
    typedef double vd __attribute__((vector_size(VW * 8)));
    vd acc = {0};
    int64_t i = 0;
    for (; i + VW <= n; i += VW) {
        vf e = vexp(load(x + i) - vm);
        store(y + i, e);
        acc += __builtin_convertvector(e, vd);
    }
    double s = 0;
    for (int k = 0; k < VW; k++) s += acc[k];
    if (i < n) {
        vf e = vexp(load_n(x + i, n - i) - vm);
        store_n(y + i, e, n - i);
        for (int64_t k = 0; k < n - i; k++) s += e[k];
    }
    vf inv = splat((float)(1.0 / s));
    /* y / sum as the reference divides; multiplying by 1/sum in fp32
     * differs from it by at most an ulp */
    for (i = 0; i + VW <= n; i += VW) store(y + i, load(y + i) * inv);
    for (; i < n; i++) y[i] = y[i] * inv[0];
}

static void normalize(const float *x, float *y, int64_t n, float mean,
                      float rstd, const float *gamma, const float *beta)
{
    vf vm = splat(mean), vr = splat(rstd);
    int64_t i = 0;
    for (; i + VW <= n; i += VW) {
        vf v = (load(x + i) - vm) * vr;
        if (gamma) v = v * load(gamma + i);
        if (beta) v = v + load(beta + i);
        store(y + i, v);
    }
    for (; i < n; i++) {
        float v = (x[i] - mean) * rstd;
        if (gamma) v = v * gamma[i];
        if (beta) v = v + beta[i];
        y[i] = v;
    }
}

static double sqdev(const float *x, int64_t n, double mean)
{
    typedef double vd __attribute__((vector_size(VW * 8)));
    vd acc = {0}, m = (vd){0} + mean;
    int64_t i = 0;
    for (; i + VW <= n; i += VW) {
        vd d = __builtin_convertvector(load(x + i), vd) - m;
        acc += d * d;
    }
    double s = 0;
    for (int k = 0; k < VW; k++) s += acc[k];
    for (; i < n; i++) s += (x[i] - mean) * (x[i] - mean);
    return s;
}

static void vmax(float *y, const float *x, int64_t n)
{
    int64_t i = 0;
    for (; i + VW <= n; i += VW) store(y + i, bop(MILK_BOP_MAX, load(x + i), load(y + i)));
    for (; i < n; i++) y[i] = (x[i] > y[i] || x[i] != x[i]) ? x[i] : y[i];
}

static void vadd(float *y, const float *x, int64_t n)
{
    int64_t i = 0;
    for (; i + VW <= n; i += VW) store(y + i, load(y + i) + load(x + i));
    for (; i < n; i++) y[i] += x[i];
}

static void widen16(const uint16_t *h, float *y, int64_t n)
{
    int64_t i = 0;
#ifdef VEC_HAVE_ROUND16
    for (; i + 8 <= n; i += 8)
        _mm256_storeu_ps(y + i, _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(h + i))));
#endif
    for (; i < n; i++) {
        uint16_t v;
        memcpy(&v, h + i, 2);
        y[i] = milk_fp16_to_fp32(v);
    }
}

const milk_vec VEC_TABLE = {
    .name = VEC_NAME,
    .width = VW,
    .map = map,
    .binary = binary,
    .finish = finish,
    .epilogue = epilogue,
    .conv_row = conv_row,
    .sum = sum,
    .max = vmax_all,
    .softmax = softmax,
    .normalize = normalize,
    .sqdev = sqdev,
    .vmax = vmax,
    .vadd = vadd,
    .max_row = max_row,
    .widen16 = widen16,
};
