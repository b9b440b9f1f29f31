/* attention.c: scaled_dot_product_attention (iOS18), after coremltools'
 * ops/defs/iOS18/transformers.py: type inference, a reference kernel
 * (plain loops) and a fast kernel (two OpenBLAS sgemm per batch). */
#include "gemm.h"
#include "infer.h"
#include "../run/run.h"

#include <math.h>
#include <stdlib.h>

/* Two dims agree if equal or either is unknown. */
static bool dims_agree(int64_t a, int64_t b)
{
    return !MILK_DIM_KNOWN(a) || !MILK_DIM_KNOWN(b) || a == b;
}

static milk_status sdpa_fail_dim(milk_infer *ic, const char *param,
                                 const char *what, int64_t got, int64_t want)
{
    return milk_op_fail(ic->ctx, ic->op, param, "%s is %lld, expected %lld",
                        what, (long long)got, (long long)want);
}

/* attn_mask: bool, fp16 or fp32, broadcastable to [B, *?, L, S]. */
static milk_status sdpa_mask(milk_infer *ic, const milk_tensor_type *q,
                             int64_t S)
{
    const milk_tensor_type *m;
    if (!milk_op_in_type(ic->op, "attn_mask")) return MILK_OK;
    MILK_TRY(milk_infer_tensor(ic, "attn_mask", MILK_DT_FLOAT | MILK_DT_BOOL, 1,
                               q->rank, &m));
    for (int j = 0; j < m->rank; j++) {
        int d = q->rank - m->rank + j; /* aligned dim of [B, *?, L, S] */
        int64_t want = d == q->rank - 1 ? S : q->dims[d];
        if (m->dims[j] != 1 && !dims_agree(m->dims[j], want))
            return milk_op_fail(ic->ctx, ic->op, "attn_mask",
                                "dim %d is %lld, not broadcastable to %lld", j,
                                (long long)m->dims[j], (long long)want);
    }
    return MILK_OK;
}

static milk_status sdpa_infer(milk_infer *ic)
{
    static const char *const qkv[] = {"query", "key", "value", NULL};
    const milk_tensor_type *q, *k, *v;
    MILK_TRY(milk_infer_tensor(ic, "query", MILK_DT_FLOAT, 3, -1, &q));
    MILK_TRY(milk_infer_tensor(ic, "key", MILK_DT_FLOAT, q->rank, q->rank, &k));
    MILK_TRY(milk_infer_tensor(ic, "value", MILK_DT_FLOAT, q->rank, q->rank, &v));
    MILK_TRY(milk_infer_domain(ic, qkv, MILK_DT_FLOAT));
    int r = q->rank;
    for (int i = 0; i < r - 2; i++) {
        if (!dims_agree(k->dims[i], q->dims[i]))
            return sdpa_fail_dim(ic, "key", "batch dim", k->dims[i], q->dims[i]);
        if (!dims_agree(v->dims[i], q->dims[i]))
            return sdpa_fail_dim(ic, "value", "batch dim", v->dims[i], q->dims[i]);
    }
    if (!dims_agree(k->dims[r - 1], q->dims[r - 1]))
        return sdpa_fail_dim(ic, "key", "embedding (last dim)", k->dims[r - 1],
                             q->dims[r - 1]);
    if (!dims_agree(v->dims[r - 2], k->dims[r - 2]))
        return sdpa_fail_dim(ic, "value", "sequence length (dim -2)",
                             v->dims[r - 2], k->dims[r - 2]);
    MILK_TRY(sdpa_mask(ic, q, k->dims[r - 2]));
    int64_t dims[MILK_MAX_RANK];
    memcpy(dims, q->dims, sizeof dims);
    dims[r - 1] = v->dims[r - 1];
    return milk_infer_one(ic, q->dtype, r, dims);
}

/* ---- kernels ------------------------------------------------------------ */

/* Sizes of one run: `batch` matrices of query [L, E], key [S, E], value
 * [S, EV]; and the mask's element step along each dim of [B, *?, L, S]
 * (0 where it broadcasts; all 0 without a mask). */
typedef struct sdpa_dims {
    int rank;
    int64_t batch, L, S, E, EV;
    int64_t qdims[MILK_MAX_RANK];
    int64_t mstep[MILK_MAX_RANK];
} sdpa_dims;

static milk_status sdpa_dims_of(milk_eval *ec, sdpa_dims *d)
{
    const milk_rt *q = milk_eval_in(ec, "query"), *k = milk_eval_in(ec, "key");
    const milk_rt *v = milk_eval_in(ec, "value"), *m = milk_eval_in(ec, "attn_mask");
    int r = q->type.rank;
    memset(d, 0, sizeof *d);
    d->rank = r;
    d->L = q->type.dims[r - 2];
    d->E = q->type.dims[r - 1];
    d->S = k->type.dims[r - 2];
    d->EV = v->type.dims[r - 1];
    d->batch = milk_dims_span(q->type.dims, 0, r - 2);
    if (k->type.rank != r || v->type.rank != r ||
        k->count != d->batch * d->S * d->E || v->count != d->batch * d->S * d->EV ||
        ec->out[0].count != d->batch * d->L * d->EV)
        return milk_op_fail(ec->ctx, ec->op, "key",
                            "query, key, value and output shapes disagree");
    /* the mask's steps over [B, *?, L, S], as milk_bcast computes them */
    milk_tensor_type full = q->type;
    full.dims[r - 1] = d->S;
    memcpy(d->qdims, full.dims, sizeof d->qdims);
    if (m) {
        milk_bcast it;
        milk_bcast_init(&it, &full, &m->type, &m->type);
        memcpy(d->mstep, it.sa, sizeof d->mstep);
    }
    return MILK_OK;
}

/* Offset of mask[b, l, 0] for batch b (row-major over the batch dims). */
static int64_t mask_row(const sdpa_dims *d, int64_t b, int64_t l)
{
    int64_t off = l * d->mstep[d->rank - 2];
    for (int i = d->rank - 3; i >= 0; i--) {
        off += b % d->qdims[i] * d->mstep[i];
        b /= d->qdims[i];
    }
    return off;
}

/* The mask's addend: bool True attends (0), False excludes (-inf); a
 * float mask is added as is. */
static double mask_at(const milk_rt *m, int64_t i)
{
    if (!m) return 0.0;
    if (m->store == MILK_DTYPE_BOOL) return milk_rt_bool(m)[i] ? 0.0 : -INFINITY;
    return milk_rt_f32(m)[i];
}

static milk_status nomem(milk_eval *ec)
{
    return milk_errorf(ec->ctx, MILK_ERR_NOMEM, "op '%s': out of memory",
                       ec->op->name);
}

/* One query row: s[j] = q . k_j / sqrt(E) + mask, softmax over j, then
 * out = sum_j p_j v_j; all in double. */
static void sdpa_row(const sdpa_dims *d, const float *q, const float *k,
                     const float *v, const milk_rt *m, int64_t moff,
                     double *s, float *out)
{
    double mx = -INFINITY, sum = 0.0;
    /* s: [S] */
    for (int64_t j = 0; j < d->S; j++) {
        double acc = 0.0;
        for (int64_t e = 0; e < d->E; e++) acc += (double)q[e] * k[j * d->E + e];
        s[j] = acc / sqrt((double)d->E) + mask_at(m, moff + j * d->mstep[d->rank - 1]);
        if (s[j] > mx) mx = s[j];
    }
    /* a row masked everywhere gives NaN (-inf - -inf), as coremltools'
     * NumPy reference does */
    for (int64_t j = 0; j < d->S; j++) {
        s[j] = exp(s[j] - mx);
        sum += s[j];
    }
    for (int64_t j = 0; j < d->S; j++) s[j] /= sum;
    /* out: [EV] */
    for (int64_t e = 0; e < d->EV; e++) {
        double acc = 0.0;
        for (int64_t j = 0; j < d->S; j++) acc += s[j] * v[j * d->EV + e];
        out[e] = (float)acc;
    }
}

static milk_status sdpa_eval(milk_eval *ec)
{
    sdpa_dims d;
    MILK_TRY(sdpa_dims_of(ec, &d));
    const float *q = milk_rt_f32(milk_eval_in(ec, "query"));
    const float *k = milk_rt_f32(milk_eval_in(ec, "key"));
    const float *v = milk_rt_f32(milk_eval_in(ec, "value"));
    const milk_rt *m = milk_eval_in(ec, "attn_mask");
    float *out = milk_rt_f32(&ec->out[0]);
    double *s = malloc((size_t)d.S * sizeof *s + 1);
    if (!s) return nomem(ec);
    /* out: [batch, L, EV] */
    for (int64_t b = 0; b < d.batch; b++)
        for (int64_t l = 0; l < d.L; l++)
            sdpa_row(&d, q + (b * d.L + l) * d.E, k + b * d.S * d.E,
                     v + b * d.S * d.EV, m, mask_row(&d, b, l), s,
                     out + (b * d.L + l) * d.EV);
    free(s);
    return MILK_OK;
}

/* Softmax of rows [lt, S] of P in place after adding the mask rows of
 * batch b from l0. */
static void softmax_rows(const sdpa_dims *d, const milk_rt *m, int64_t b,
                         int64_t l0, int64_t lt, float *P)
{
    const int64_t mj = d->mstep[d->rank - 1];
    for (int64_t l = 0; l < lt; l++) {
        float *p = P + l * d->S;
        int64_t moff = mask_row(d, b, l0 + l);
        float mx = -INFINITY;
        for (int64_t j = 0; j < d->S; j++) {
            p[j] += (float)mask_at(m, moff + j * mj);
            if (p[j] > mx) mx = p[j];
        }
        double sum = 0.0;
        for (int64_t j = 0; j < d->S; j++) {
            p[j] = expf(p[j] - mx);
            sum += p[j];
        }
        for (int64_t j = 0; j < d->S; j++) p[j] = (float)(p[j] / sum);
    }
}

/* Per batch and tile of query rows: P = Q K^T / sqrt(E), masked softmax,
 * out = P V. */
static milk_status sdpa_eval_fast(milk_eval *ec)
{
    sdpa_dims d;
    MILK_TRY(sdpa_dims_of(ec, &d));
    int64_t lt = MILK_GEMM_SCRATCH / (4 * (d.S > 0 ? d.S : 1));
    lt = lt < 1 ? 1 : lt > d.L ? d.L : lt;
    const int64_t sizes[] = {lt, d.S, d.E, d.EV};
    if (!milk_gemm_ok(sizes, 4) || d.E == 0 || d.L == 0) return sdpa_eval(ec);
    const float *q = milk_rt_f32(milk_eval_in(ec, "query"));
    const float *k = milk_rt_f32(milk_eval_in(ec, "key"));
    const float *v = milk_rt_f32(milk_eval_in(ec, "value"));
    const milk_rt *m = milk_eval_in(ec, "attn_mask");
    float *out = milk_rt_f32(&ec->out[0]);
    float *P = malloc((size_t)(lt * d.S) * sizeof *P + 1);
    if (!P) return nomem(ec);
    const float scale = (float)(1.0 / sqrt((double)d.E));
    for (int64_t b = 0; b < d.batch; b++)
        for (int64_t l0 = 0; l0 < d.L; l0 += lt) {
            int64_t n = d.L - l0 < lt ? d.L - l0 : lt;
            /* P [n, S] = scale * Q_b[l0:l0+n] [n, E] x K_b^T, K_b stored
             * [S, E] */
            milk_sgemm(false, true, n, d.S, d.E, scale, q + (b * d.L + l0) * d.E,
                       d.E, k + b * d.S * d.E, d.E, 0.0f, P, d.S);
            softmax_rows(&d, m, b, l0, n, P);
            /* out_b[l0:l0+n] [n, EV] = P [n, S] x V_b [S, EV] */
            milk_sgemm(false, false, n, d.EV, d.S, 1.0f, P, d.S,
                       v + b * d.S * d.EV, d.EV, 0.0f,
                       out + (b * d.L + l0) * d.EV, d.EV);
        }
    free(P);
    return MILK_OK;
}

/* scaled_dot_product_attention (iOS18): softmax(Q K^T / sqrt(E) + mask) V
 * over the last two dims, batched over the leading ones.
 *   query      R  [B, *?, L, E], fp16/fp32 (rank >= 3)
 *   key        R  [B, *?, S, E], same rank, batch dims and dtype
 *   value      R  [B, *?, S, EV], same rank, batch dims and dtype
 *   attn_mask  O  bool, fp16 or fp32, broadcastable to [B, *?, L, S] (rank
 *                 at most query's): bool True attends, False excludes
 *                 (adds -inf); a float mask is added to the scores
 * Output: [B, *?, L, EV], query's dtype. No dropout, no causal flag.
 * Kernel: the softmax subtracts the row maximum; a row masked everywhere
 * is NaN (as coremltools' NumPy value_inference). */
static const milk_param sdpa_params[] = {
    {"query", MILK_P_REQ, 0},
    {"key", MILK_P_REQ, 0},
    {"value", MILK_P_REQ, 0},
    {"attn_mask", 0, 0},
    {0},
};

const milk_op_info milk_op_scaled_dot_product_attention = {
    .name = "scaled_dot_product_attention",
    .params = sdpa_params,
    .min_opset = MILK_TARGET_IOS18,
    .infer = sdpa_infer,
    .eval = sdpa_eval,
    .eval_fast = sdpa_eval_fast,
};
