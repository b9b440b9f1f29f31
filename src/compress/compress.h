/*
 * compress.h: weight compression (milk_program_compress), shared by the
 * files of src/compress:
 *   plan.c    which consts are compressed and how (axes, granularity,
 *             target), the spec parser, the constexpr ops that replace
 *             each weight, the report
 *   pass.c    streaming a dense weight in chunks of whole slabs: pruning
 *             masks, quantization codes and LUT indices per element, block
 *             statistics, error measurement; the generators (MILK_DATA_GEN)
 *             that produce the compressed data from it when it is written
 *   select.c  pruning thresholds (an exact order statistic in two
 *             histogram passes), k-means and uniform LUTs on a seeded
 *             sample
 *
 * A weight being compressed is a `cw`: its dense source (a milk_value
 * streamed where it lives: file range, caller's memory), what is done to
 * it, and the small parameters computed before any data is produced
 * (thresholds, LUTs; scales when they cannot be computed on the way).
 * Everything large (codes, indices, masks, nonzero values) is produced by
 * a generator as the program is saved or run, in one streaming pass per
 * generated tensor, memory bounded by a chunk of a few MiB.
 */
#ifndef MILK_COMPRESS_H
#define MILK_COMPRESS_H

#include "../ir/ir.h"
#include "../ops/op.h"

/* Elements of dense weight processed at once (x, keep, code buffers). */
#define CW_CHUNK ((int64_t)1 << 20)
/* A slab (the unit whose statistics are complete in itself) above this
 * many elements has its statistics computed beforehand, in a pass of its
 * own. */
#define CW_MAX_SLAB ((int64_t)1 << 22)

typedef enum cw_prune {
    CW_PRUNE_NONE = 0,
    CW_PRUNE_MAGNITUDE,
    CW_PRUNE_NM,
} cw_prune;

typedef struct cw {
    const milk_value *src;   /* the dense weight */
    milk_tensor_type type;   /* its type: fp16 or fp32, rank >= 2 */
    int64_t n;               /* elements */
    bool half;               /* fp16: values and results rounded to fp16 */
    int out_axis, in_axis;   /* by the ops reading it; -1 unknown */
    int64_t inner[MILK_MAX_RANK]; /* row-major strides of type */

    /* pruning: keep[i] = not pruned and x != 0 */
    cw_prune prune;
    uint32_t thr;            /* magnitude: pruned if bits(|x|) <= thr */
    int pn, pm;              /* n:m along in_axis */
    int64_t kept;            /* elements kept (the nonzero values) */

    /* linear quantization: code = clip(round(x / scale) + zp) per block */
    milk_dtype qdt;          /* 0 if none */
    bool affine;
    int qmin, qmax;
    int64_t bs[MILK_MAX_RANK];    /* block size per axis */
    int64_t sdims[MILK_MAX_RANK]; /* blocks per axis (scale's shape) */
    int64_t sstride[MILK_MAX_RANK];
    int64_t nblocks;
    float *scale;            /* nblocks, the weight's dtype's values */
    int32_t *zp;             /* nblocks */
    bool scales_ready;
    bool has_offset;         /* some zero point is not 0 */

    /* palettization: code = index of the nearest LUT entry */
    int bits;                /* 0 if none */
    int64_t group;           /* output channels per LUT (along out_axis) */
    int64_t nluts;
    float *lut;              /* nluts x 2^bits, ascending, as expanded */
    int8_t *lutq;            /* int8 LUT (lut_int8) and its scale per LUT */
    float *lut_scale;

    int64_t slab;            /* a chunk is made of whole slabs */

    /* error of the expanded weight, measured by the first full pass when
     * `measure` */
    bool measure, measured;
    double sse, sig, peak, max_abs;

    milk_compress_row *row;  /* its report row, if any */
} cw;

/* ---- pass.c ------------------------------------------------------------- */

/* What a pass hands over for each chunk of the weight. */
typedef struct cw_chunk {
    int64_t off, n;          /* elements [off, off + n) */
    const float *x;          /* dense values (the weight's dtype, as float) */
    const uint8_t *keep;     /* 1 where kept (NULL: no pruning) */
    const int32_t *code;     /* quantized code or LUT index (NULL: neither) */
} cw_chunk;

typedef milk_status (*cw_emit)(void *user, const cw_chunk *c);

/* Set w->slab and w->inner for the chosen method (call before passes). */
void cw_layout(cw *w);
/* Stream the weight through emit (NULL: only compute what the pass
 * computes on the way: lazy scales, the error). */
milk_status cw_pass(milk_ctx *ctx, cw *w, cw_emit emit, void *user);
/* The same, measuring the error or not. */
milk_status cw_pass_as(milk_ctx *ctx, cw *w, cw_emit emit, void *user,
                       bool measure);
/* Compute the block statistics (scales, zero points) beforehand, when a
 * slab is too large to hold. */
milk_status cw_scales(milk_ctx *ctx, cw *w);
/* Count the kept elements (n:m pruning). */
milk_status cw_count_kept(milk_ctx *ctx, cw *w);

/* Stream every element's float value in fixed chunks (not slab-aligned):
 * for passes that need only the values (histograms, samples). */
typedef milk_status (*cw_values_fn)(void *user, int64_t off, const float *x,
                                    int64_t n);
milk_status cw_values(milk_ctx *ctx, const cw *w, cw_values_fn fn, void *user);

/* The generated tensors of a weight. */
typedef enum cw_part {
    CW_CODES,       /* every element's code (quantized data, LUT indices) */
    CW_MASK,        /* keep bits */
    CW_NZ_VALUES,   /* kept elements' values, weight dtype */
    CW_NZ_CODES,    /* kept elements' codes */
    CW_SCALES,      /* block scales, weight dtype */
    CW_OFFSETS,     /* block zero points, quantized dtype */
} cw_part;

/* A MILK_DATA_GEN value of `type` producing `part` of w's compressed data
 * (`dtype` packed). */
milk_value *cw_gen_value(milk_arena *a, cw *w, cw_part part,
                         const milk_tensor_type *type);

/* ---- select.c ------------------------------------------------------------ */

/* Magnitude pruning of the fraction `frac`: w->thr and w->kept. */
milk_status cw_prune_threshold(milk_ctx *ctx, cw *w, double frac);
/* w->lut (and lutq, lut_scale with lut_int8): one LUT per group of
 * w->group output channels, k-means on at most `samples` kept values per
 * LUT drawn with `seed`, or uniform from min to max. */
milk_status cw_luts(milk_ctx *ctx, milk_arena *a, cw *w, bool uniform,
                    bool lut_int8, uint64_t seed, int64_t samples);

/* ---- shared helpers -------------------------------------------------------- */

static inline float cw_round16(float x)
{
    return milk_fp16_to_fp32(milk_fp32_to_fp16(x));
}

/* The LUT of element at flat offset i. */
static inline int64_t cw_lut_of(const cw *w, int64_t i)
{
    if (w->nluts == 1) return 0;
    return ((i / w->inner[w->out_axis]) % w->type.dims[w->out_axis]) / w->group;
}

/* Index of the LUT entry nearest to x (the first of two at equal
 * distance); lut ascending, k entries. */
static inline int32_t cw_nearest(const float *lut, int k, float x)
{
    int lo = 0, hi = k - 1;
    while (lo < hi) { /* first entry whose upper midpoint is >= x */
        int mid = (lo + hi) / 2;
        if (x <= lut[mid] + (lut[mid + 1] - lut[mid]) * 0.5f) hi = mid;
        else lo = mid + 1;
    }
    return lo;
}

#endif /* MILK_COMPRESS_H */
