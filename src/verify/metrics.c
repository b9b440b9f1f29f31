/* metrics.c: how two tensors are compared (max abs and relative error,
 * SNR, non-finite agreement), which tolerance applies to a var, and
 * converting files' and runs' values to fp32 for that. */
#include "verify.h"

#include <math.h>
#include <stdlib.h>

/* The error of one element. NaN against NaN and an inf against the same
 * inf agree (a model that legitimately yields them is not diverging);
 * any other non-finite disagreement is infinitely wrong. */
static double elem_err(float g, float w)
{
    if (isnan(w) || isnan(g)) return isnan(w) && isnan(g) ? 0.0 : INFINITY;
    if (isinf(w) || isinf(g)) return g == w ? 0.0 : INFINITY;
    return fabs((double)g - (double)w);
}

/* The k-th smallest of x[0..n) (0 <= k < n), reordering x: Hoare's
 * selection, O(n) on average. */
static float select_kth(float *x, int64_t n, int64_t k)
{
    int64_t lo = 0, hi = n - 1;
    while (lo < hi) {
        float pivot = x[lo + (hi - lo) / 2];
        int64_t i = lo, j = hi;
        while (i <= j) {
            while (x[i] < pivot) i++;
            while (x[j] > pivot) j--;
            if (i <= j) {
                float t = x[i];
                x[i++] = x[j];
                x[j--] = t;
            }
        }
        if (k <= j) hi = j;
        else if (k >= i) lo = i;
        else return x[k];
    }
    return x[k];
}

milk_status vf_compare(milk_ctx *ctx, const float *got, const float *want, int64_t n,
                       double atol, double rtol, vf_metrics *m)
{
    double sig = 0, noise = 0, sum = 0;
    float *err = malloc((size_t)(n > 0 ? n : 1) * sizeof *err);
    if (!err) return milk_errorf(ctx, MILK_ERR_NOMEM, "out of memory");
    memset(m, 0, sizeof *m);
    for (int64_t i = 0; i < n; i++) {
        double e = elem_err(got[i], want[i]);
        if (e > m->max_abs) m->max_abs = e;
        if (isfinite(want[i])) {
            double a = fabs((double)want[i]);
            if (a > m->max_want) m->max_want = a;
            sig += a * a;
        }
        m->n_beyond += e > atol + rtol * (isfinite(want[i]) ? fabs((double)want[i]) : 0.0);
        noise += e * e;
        sum += e;
        err[i] = (float)e;
    }
    if (m->max_want > 0) m->max_rel = m->max_abs / m->max_want;
    else m->max_rel = m->max_abs > 0 ? INFINITY : 0.0;
    if (noise == 0) m->snr_db = m->psnr_db = INFINITY;
    else {
        m->snr_db = sig > 0 ? 10.0 * log10(sig / noise) : -INFINITY;
        m->psnr_db = m->max_want > 0 ? 10.0 * log10(m->max_want * m->max_want * (double)n / noise)
                                     : -INFINITY;
    }
    m->mean_abs = n > 0 ? sum / (double)n : 0.0;
    if (n > 0) {
        /* the median of an even count: the mean of the two middle ones */
        double hi = select_kth(err, n, n / 2);
        m->median_abs = n % 2 ? hi : 0.5 * (hi + select_kth(err, n / 2, n / 2 - 1));
    }
    free(err);
    return MILK_OK;
}

bool vf_within(const vf_metrics *m, milk_verify_stat stat, double atol, double rtol)
{
    double bound = atol + rtol * m->max_want;
    switch (stat) {
    case MILK_VERIFY_STAT_MEAN: return m->mean_abs <= bound;
    case MILK_VERIFY_STAT_MEDIAN: return m->median_abs <= bound;
    case MILK_VERIFY_STAT_ELEMWISE: return m->n_beyond == 0;
    case MILK_VERIFY_STAT_MAX: break;
    }
    return m->max_abs <= bound;
}

const char *milk_verify_stat_name(milk_verify_stat s)
{
    static const char *const names[] = {"max", "mean", "median", "elemwise"};
    return (unsigned)s < MILK_ARRAY_LEN(names) ? names[s] : NULL;
}

int milk_verify_stat_from_name(const char *name)
{
    for (int i = 0; name && i <= MILK_VERIFY_STAT_ELEMWISE; i++)
        if (strcmp(name, milk_verify_stat_name((milk_verify_stat)i)) == 0) return i;
    return -1;
}

void vf_tolerance(const milk_verify *v, bool fp16, const char *var, double *atol,
                  double *rtol)
{
    *atol = fp16 ? MILK_VERIFY_ATOL_FP16 : MILK_VERIFY_ATOL_FP32;
    *rtol = fp16 ? MILK_VERIFY_RTOL_FP16 : MILK_VERIFY_RTOL_FP32;
    if (v->flags & MILK_VERIFY_SET_ATOL) *atol = v->atol;
    if (v->flags & MILK_VERIFY_SET_RTOL) *rtol = v->rtol;
    for (int i = 0; var && i < v->n_tols; i++) {
        if (strcmp(v->tols[i].var, var) != 0) continue;
        if (v->tols[i].set & MILK_VERIFY_SET_ATOL) *atol = v->tols[i].atol;
        if (v->tols[i].set & MILK_VERIFY_SET_RTOL) *rtol = v->tols[i].rtol;
    }
}

/* Dims other than 1, in order. */
static int squeezed(const milk_tensor_type *t, int64_t *d)
{
    int n = 0;
    for (int i = 0; i < t->rank; i++)
        if (t->dims[i] != 1) d[n++] = t->dims[i];
    return n;
}

bool vf_same_shape(const milk_tensor_type *a, const milk_tensor_type *b)
{
    /* PyTorch references often lack or add a batch dim of 1. */
    int64_t da[MILK_MAX_RANK], db[MILK_MAX_RANK];
    int na = squeezed(a, da), nb = squeezed(b, db);
    if (a->rank < 0 || b->rank < 0 || na != nb) return false;
    for (int i = 0; i < na; i++)
        if (da[i] != db[i]) return false;
    return true;
}

/* Element i of a packed array as a float. */
static float elem_f32(const milk_array *a, int64_t i)
{
    const void *p = a->data;
    switch (a->type.dtype) {
    case MILK_DTYPE_FP16: return milk_fp16_to_fp32(((const uint16_t *)p)[i]);
    case MILK_DTYPE_FP32: return ((const float *)p)[i];
    case MILK_DTYPE_FP64: return (float)((const double *)p)[i];
    case MILK_DTYPE_INT8: return ((const int8_t *)p)[i];
    case MILK_DTYPE_INT32: return (float)((const int32_t *)p)[i];
    case MILK_DTYPE_INT64: return (float)((const int64_t *)p)[i];
    case MILK_DTYPE_UINT8: return ((const uint8_t *)p)[i];
    case MILK_DTYPE_BOOL: return ((const uint8_t *)p)[i] != 0;
    default: return NAN;
    }
}

static bool dtype_readable(milk_dtype d)
{
    return d == MILK_DTYPE_FP16 || d == MILK_DTYPE_FP32 || d == MILK_DTYPE_FP64 ||
           d == MILK_DTYPE_INT8 || d == MILK_DTYPE_INT32 || d == MILK_DTYPE_INT64 ||
           d == MILK_DTYPE_UINT8 || d == MILK_DTYPE_BOOL;
}

milk_status vf_array_f32(milk_ctx *ctx, const char *what, const milk_array *a,
                         float **out)
{
    *out = NULL;
    if (!dtype_readable(a->type.dtype))
        return milk_errorf(ctx, MILK_ERR_UNSUPPORTED, "%s: cannot compare %s values",
                           what, milk_dtype_name(a->type.dtype));
    int64_t n = milk_tensor_type_count(&a->type);
    float *x = malloc((size_t)(n > 0 ? n : 1) * sizeof *x);
    if (!x) return milk_errorf(ctx, MILK_ERR_NOMEM, "out of memory");
    for (int64_t i = 0; i < n; i++) x[i] = elem_f32(a, i);
    *out = x;
    return MILK_OK;
}

milk_status vf_runner_f32(milk_ctx *ctx, const milk_runner *r,
                          const char *name, float **out)
{
    *out = NULL;
    const milk_tensor_type *t = milk_runner_type(r, name);
    if (!t)
        return milk_errorf(ctx, MILK_ERR_NOT_FOUND, "no value for '%s'", name);
    int64_t n = milk_tensor_type_count(t);
    size_t cap = (size_t)(n > 0 ? n : 1) * sizeof(float);
    float *x = malloc(cap);
    if (!x) return milk_errorf(ctx, MILK_ERR_NOMEM, "out of memory");
    milk_status s = milk_runner_read(ctx, r, name, MILK_DTYPE_FP32, x, cap);
    if (s != MILK_OK) {
        free(x);
        return s;
    }
    *out = x;
    return MILK_OK;
}

void vf_shape_str(const milk_tensor_type *t, char *buf, size_t n)
{
    size_t k = (size_t)snprintf(buf, n, "[");
    for (int i = 0; i < t->rank && k < n; i++)
        k += (size_t)snprintf(buf + k, n - k, "%s%lld", i ? "," : "",
                              (long long)t->dims[i]);
    if (k < n) snprintf(buf + k, n - k, "]");
}

/* Length of the valid UTF-8 sequence at s (lead byte >= 0x80), 0 if
 * invalid: no overlong forms, surrogates or code points past U+10FFFF,
 * which XML parsers refuse. Stops at the first bad byte (or the NUL). */
int vf_utf8_len(const unsigned char *s)
{
    int n = s[0] >= 0xF5 ? 0 : s[0] >= 0xF0 ? 4 : s[0] >= 0xE0 ? 3 : s[0] >= 0xC2 ? 2 : 0;
    for (int i = 1; i < n; i++)
        if ((s[i] & 0xC0) != 0x80) return 0;
    if ((s[0] == 0xE0 && s[1] < 0xA0) || (s[0] == 0xED && s[1] > 0x9F) ||
        (s[0] == 0xF0 && s[1] < 0x90) || (s[0] == 0xF4 && s[1] > 0x8F))
        return 0;
    return n;
}

char *vf_utf8_clean(milk_arena *a, const char *s)
{
    char *c = milk_arena_strdup(a, s);
    for (unsigned char *p = (unsigned char *)c; p && *p;) {
        int n = *p < 0x80 ? 1 : vf_utf8_len(p);
        if (n == 0) *p = '?';
        p += n ? n : 1;
    }
    return c;
}
