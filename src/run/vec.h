/*
 * vec.h: the SIMD primitives of the planned interpreter (plan.c and the
 * fast kernels in src/ops/, NAME_fast.c), chosen once at run time for the CPU.
 *
 * One source (vec_impl.h, written with GCC vector extensions) is compiled
 * twice: for the x86-64 baseline (SSE2, 4 floats a register: vec_base.c)
 * and for AVX2 + FMA + F16C (8 floats: vec_avx2.c). milk_vec() returns the
 * widest table the CPU supports, so one binary runs anywhere;
 * MILK_SIMD=base in the environment forces the baseline (the tests run
 * both). Results of the two tables may differ in the last bits (FMA), never
 * in semantics: each primitive keeps the reference kernels' handling of
 * NaN, infinities and signed zeros.
 *
 * Transcendentals are fp32 polynomial approximations (exp after Cephes'
 * expf, erf a rational fit, tanh Cephes' tanhf) within a few ulp of the
 * reference kernels' double-precision libm results; the tests compare
 * every fast kernel with its reference kernel.
 */
#ifndef MILK_RUN_VEC_H
#define MILK_RUN_VEC_H

#include <stdbool.h>
#include <stdint.h>

/* Element-wise functions of one float, with up to two parameters. */
typedef enum milk_fn {
    MILK_FN_NONE = 0,     /* y = x */
    MILK_FN_RELU,         /* x > 0 or NaN ? x : 0 */
    MILK_FN_CLIP,         /* min(max(x, a), b), NaN passing through */
    MILK_FN_SIGMOID,      /* 1 / (1 + exp(-x)) */
    MILK_FN_HARD_SIGMOID, /* clip(a * x + b, 0, 1) */
    MILK_FN_TANH,
    MILK_FN_SILU,         /* x / (1 + exp(-x)) */
    MILK_FN_GELU,         /* x * Phi(x), erf form */
    MILK_FN_GELU_TANH,    /* tanh approximation */
    MILK_FN_GELU_SIGMOID, /* x * sigmoid(1.702 x) */
    MILK_FN_LEAKY,        /* x < 0 ? a * x : x */
    MILK_FN_ERF,
    MILK_FN_EXP,
    MILK_FN_AFFINE,       /* a * x + b */
    MILK_FN_COUNT
} milk_fn;

typedef struct milk_fnp {
    milk_fn fn;
    float a, b;
} milk_fnp;

/* Binary arithmetic. */
typedef enum milk_bop {
    MILK_BOP_ADD = 0,
    MILK_BOP_SUB,
    MILK_BOP_MUL,
    MILK_BOP_DIV,
    MILK_BOP_MAX, /* NaN in either operand gives NaN (np.maximum) */
    MILK_BOP_MIN,
} milk_bop;

/* What the interpreter records of each op's float outputs (milk_op_stats):
 * largest finite |value| (before fp16 rounding), values beyond 65504 (when
 * rounding to fp16), inf and NaN after rounding. */
typedef struct milk_vstats {
    float max_abs;
    int64_t over, inf, nan;
} milk_vstats;

/* The epilogue of conv, linear and matmul, and the stages fused into it.
 * Stage 0: v = acc + bias; stage 1 (fn != NONE): a = f(v); stage 2
 * (mul_self): y = v * a (silu and hard swish written as x * act(x)). Each
 * stage's values are rounded to fp16 when its round16 flag is set, and its
 * statistics go to st[stage]; the last stage's values are stored. */
typedef struct milk_epi {
    milk_fnp act;
    bool mul_self;
    bool round16[3];
} milk_epi;

typedef struct milk_vec {
    const char *name; /* "avx2" or "base" */
    int width;        /* floats per register */

    /* y[i] = f(x[i]); y may be x. */
    void (*map)(const milk_fnp *f, const float *x, float *y, int64_t n);
    /* y[i] = a[i] op b[i] (sa, sb: 1, or 0 for a scalar operand). */
    void (*binary)(milk_bop op, const float *a, int64_t sa, const float *b,
                   int64_t sb, float *y, int64_t n);
    /* Statistics of x (and x rounded to fp16 in place when round16). */
    void (*finish)(float *x, int64_t n, bool round16, milk_vstats *st);
    /* The epilogue on n values: y[i] = stages(y[i] + bias[i * bstride])
     * (bias NULL: 0); st has one entry per stage. */
    void (*epilogue)(const milk_epi *e, float *y, int64_t n, const float *bias,
                     int64_t bstride, milk_vstats *st);
    /* One output row of a direct convolution (depthwise and grouped) on
     * an input padded beforehand: y[ow] += sum over kernel rows r and taps
     * k of w[r * kw + k] * rows[r][ow * stride + k * dil], for ow in [0,
     * n). Reads up to 2 * width floats past the last tap of a row (their
     * lanes are not stored): the caller leaves that much memory after its
     * buffer. */
    void (*conv_row)(const float *const *rows, int kh, int kw, const float *w,
                     int64_t stride, int64_t dil, float *y, int64_t n);
    /* Sum and maximum of x (max: NaN if any is NaN), in double / float. */
    double (*sum)(const float *x, int64_t n);
    float (*max)(const float *x, int64_t n);
    /* y[i] = x[i] + s (row statistics helpers for the norms). */
    /* softmax of n values with stride 1: y = exp(x - max) / sum. */
    void (*softmax)(const float *x, float *y, int64_t n);
    /* y = (x - mean) * rstd * (gamma ? gamma : 1) + (beta ? beta : 0). */
    void (*normalize)(const float *x, float *y, int64_t n, float mean,
                      float rstd, const float *gamma, const float *beta);
    /* sum of (x - mean)^2, in double. */
    double (*sqdev)(const float *x, int64_t n, double mean);
    /* y[i] = max(y[i], x[i]) (NaN sticking) and y[i] += x[i]. */
    void (*vmax)(float *y, const float *x, int64_t n);
    void (*vadd)(float *y, const float *x, int64_t n);
    /* One output row of a max pool on an input padded with -inf, read as
     * conv_row reads: y[ow] = max of rows[r][ow * stride + k] (NaN
     * sticking). */
    void (*max_row)(const float *const *rows, int kh, int kw, int64_t stride,
                    float *y, int64_t n);
    /* fp16 -> fp32 (exact), h need not be aligned. */
    void (*widen16)(const uint16_t *h, float *y, int64_t n);
} milk_vec;

/* The table for this CPU (MILK_SIMD=base forces the baseline). */
const milk_vec *milk_vec_get(void);
/* The baseline and, if the CPU has AVX2 and FMA, the AVX2 table (else
 * NULL), for tests. */
const milk_vec *milk_vec_base(void);
const milk_vec *milk_vec_avx2(void);

#endif /* MILK_RUN_VEC_H */
