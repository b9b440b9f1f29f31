/* lower_resize.c: lowerings of Resize (opsets 10 to 18) and Upsample
 * (opsets 7 to 9).
 *
 * ONNX resamples each axis independently: output index i maps to a
 * coordinate x of the input (coordinate_transformation_mode), and the
 * output is a weighted sum of the input elements around x (nearest: one;
 * linear: two; cubic: four, edge elements repeated past the ends). The
 * weights of one axis form a constant [out, in] matrix, so any mode is a
 * matmul along the axis; nearest is a gather with constant indices
 * (exact, whatever the values). The coordinates are computed here as
 * ONNX's reference implementation computes them (resize.py in ONNX's
 * backend tests): in double, the output width as fp32 when scales are
 * given.
 *
 * Where a MIL op means exactly the same thing, it is used instead:
 * upsample_nearest_neighbor for integer upscales of the last two dims
 * whose nearest index is floor(i / scale), resize_bilinear for linear
 * modes whose MIL sampling mode computes the same coordinates. Refused:
 * antialias, the axes and keep_aspect_ratio_policy attributes (opset 18),
 * nearest with tf_crop_and_resize, non-constant scales, sizes or roi. */
#include "lower_util.h"

#include <math.h>
#include <stdlib.h>

/* The largest interpolation matrix built in memory (elements). */
#define MAX_MATRIX (INT64_C(1) << 22)

enum { NEAREST, LINEAR, CUBIC };
enum { HALF_PIXEL, PYTORCH_HALF_PIXEL, ALIGN_CORNERS, ASYMMETRIC,
       TF_HALF_PIXEL_FOR_NN, TF_CROP_AND_RESIZE };
enum { ROUND_PREFER_FLOOR, ROUND_PREFER_CEIL, NEAREST_FLOOR, NEAREST_CEIL };

typedef struct resize_spec {
    int mode, ctm, nearest;
    double cubic_a, extrapolation;
    bool exclude_outside, from_sizes;
    int r;
    int64_t in[MILK_MAX_RANK], out[MILK_MAX_RANK];
    double scale[MILK_MAX_RANK], roi[2 * MILK_MAX_RANK];
} resize_spec;

/* ---- reading the node --------------------------------------------------------------- */

static int find_name(const char *const *names, int n, const char *s)
{
    for (int i = 0; i < n; i++)
        if (strcmp(names[i], s) == 0) return i;
    return -1;
}

static milk_status read_modes(milk_cv *c, bool upsample, resize_spec *rs)
{
    static const char *const modes[] = {"nearest", "linear", "cubic"};
    static const char *const ctms[] = {"half_pixel", "pytorch_half_pixel",
                                       "align_corners", "asymmetric",
                                       "tf_half_pixel_for_nn", "tf_crop_and_resize"};
    static const char *const nearests[] = {"round_prefer_floor", "round_prefer_ceil",
                                           "floor", "ceil"};
    const char *m, *t, *nm;
    int64_t excl, antialias;
    MILK_TRY(milk_cv_attr_str(c, "mode", "nearest", &m));
    bool old = upsample || c->opset < 11; /* asymmetric and floor */
    MILK_TRY(milk_cv_attr_str(c, "coordinate_transformation_mode",
                              old ? "asymmetric" : "half_pixel", &t));
    MILK_TRY(milk_cv_attr_str(c, "nearest_mode", old ? "floor" : "round_prefer_floor", &nm));
    MILK_TRY(milk_cv_attr_float(c, "cubic_coeff_a", -0.75, &rs->cubic_a));
    MILK_TRY(milk_cv_attr_float(c, "extrapolation_value", 0.0, &rs->extrapolation));
    MILK_TRY(milk_cv_attr_int(c, "exclude_outside", 0, &excl));
    MILK_TRY(milk_cv_attr_int(c, "antialias", 0, &antialias));
    rs->exclude_outside = excl != 0;
    rs->mode = strcmp(m, "bilinear") == 0 ? LINEAR : find_name(modes, 3, m);
    rs->ctm = find_name(ctms, 6, t);
    rs->nearest = find_name(nearests, 4, nm);
    if (rs->mode < 0) return milk_cv_unsupported(c, "attribute 'mode': '%s'", m);
    if (rs->ctm < 0)
        return milk_cv_unsupported(c, "attribute 'coordinate_transformation_mode': "
                                   "'%s'", t);
    if (rs->nearest < 0) return milk_cv_unsupported(c, "attribute 'nearest_mode': '%s'", nm);
    if (antialias) return milk_cv_unsupported(c, "attribute 'antialias': 1");
    if (milk_cv_attr(c, "axes") || milk_cv_attr(c, "keep_aspect_ratio_policy"))
        return milk_cv_unsupported(c, "attributes 'axes' and "
                                   "'keep_aspect_ratio_policy' (opset 18)");
    if (rs->mode == NEAREST && rs->ctm == TF_CROP_AND_RESIZE)
        return milk_cv_unsupported(c, "mode 'nearest' with tf_crop_and_resize");
    return MILK_OK;
}

/* Output sizes and scales: from scales (out = floor(in * scale), the
 * scale as given) or from sizes (scale = out / in). */
static milk_status read_sizes(milk_cv *c, bool upsample, resize_spec *rs)
{
    double v[MILK_MAX_RANK];
    int64_t sz[MILK_MAX_RANK];
    int k = -1, si = upsample || c->opset < 11 ? 1 : 2;
    if (upsample && c->opset < 9) {
        const milk_onnx_attr *a = milk_cv_attr(c, "scales");
        if (!a || a->n_floats > MILK_MAX_RANK)
            return milk_cv_fail(c, MILK_ERR_INVALID_MODEL, "attribute 'scales' "
                                "is missing or too long");
        for (k = 0; k < a->n_floats; k++) v[k] = a->floats[k];
    } else if (milk_cv_has(c, si) && milk_cv_is_const(c, si)) {
        milk_tensor_type t;
        MILK_TRY(milk_cv_type(c, si, &t));
        if (milk_tensor_type_count(&t) > 0)
            MILK_TRY(milk_cv_const_floats(c, si, v, MILK_MAX_RANK, &k));
    }
    rs->from_sizes = k < 0 && !upsample && c->opset >= 11 && milk_cv_has(c, 3);
    if (rs->from_sizes) MILK_TRY(milk_cv_const_ints(c, 3, sz, MILK_MAX_RANK, &k));
    else if (k < 0) /* scales given at run time (or absent) */
        MILK_TRY(milk_cv_const_floats(c, si, v, MILK_MAX_RANK, &k));
    if (k != rs->r)
        return milk_cv_fail(c, MILK_ERR_INVALID_MODEL, "%d %s for rank %d", k,
                            rs->from_sizes ? "sizes" : "scales", rs->r);
    for (int i = 0; i < rs->r; i++) {
        /* checked in double first: a NaN or huge scale never reaches the cast */
        double o = rs->from_sizes ? (double)sz[i] : floor(v[i] * (double)rs->in[i]);
        if (!(o >= 1 && o <= INT32_MAX) || (!rs->from_sizes && !(v[i] > 0)))
            return milk_cv_unsupported(c, "output size %g along dim %d", o, i);
        rs->out[i] = (int64_t)o;
        rs->scale[i] = rs->from_sizes ? (double)sz[i] / (double)rs->in[i] : v[i];
    }
    return MILK_OK;
}

static milk_status read_roi(milk_cv *c, resize_spec *rs)
{
    int k;
    if (rs->ctm != TF_CROP_AND_RESIZE) return MILK_OK;
    MILK_TRY(milk_cv_const_floats(c, 1, rs->roi, 2 * MILK_MAX_RANK, &k));
    if (k != 2 * rs->r)
        return milk_cv_fail(c, MILK_ERR_INVALID_MODEL, "roi has %d values for rank %d",
                            k, rs->r);
    return MILK_OK;
}

/* ---- per-axis weights --------------------------------------------------------------- */

/* The input coordinate of output index i along axis d; false when it lies
 * outside the input under tf_crop_and_resize (the extrapolation value). */
static bool coordinate(const resize_spec *rs, int d, int64_t i, double *x)
{
    double n = (double)rs->in[d], s = rs->scale[d], fi = (double)i;
    /* the reference's output width: fp32 when scales are given */
    double w = rs->from_sizes ? s * n : (double)(float)(s * n);
    double lo = rs->roi[d], hi = rs->roi[rs->r + d];
    switch (rs->ctm) {
    case ALIGN_CORNERS: *x = w == 1 ? 0 : fi * (n - 1) / (w - 1); break;
    case ASYMMETRIC: *x = fi / s; break;
    case PYTORCH_HALF_PIXEL: *x = w == 1 ? -0.5 : (fi + 0.5) / s - 0.5; break;
    case TF_HALF_PIXEL_FOR_NN: *x = (fi + 0.5) / s; break;
    case TF_CROP_AND_RESIZE:
        *x = w == 1 ? (hi - lo) * (n - 1) / 2 : fi * (hi - lo) * (n - 1) / (w - 1);
        *x += lo * (n - 1);
        return *x >= 0 && *x <= n - 1;
    default: *x = (fi + 0.5) / s - 0.5; break;
    }
    return true;
}

/* Keys' cubic convolution weights for the four taps around ratio. */
static void cubic_weights(double r, double A, double *c)
{
    double p = r + 1, q = 1 - r, t = 2 - r;
    c[0] = ((A * p - 5 * A) * p + 8 * A) * p - 4 * A;
    c[1] = ((A + 2) * r - (A + 3)) * r * r + 1;
    c[2] = ((A + 2) * q - (A + 3)) * q * q + 1;
    c[3] = ((A * t - 5 * A) * t + 8 * A) * t - 4 * A;
}

/* The taps of coordinate x: first index and weights. ONNX takes the taps
 * nearest x preferring lower indices, with ratio in (0, 1]: an integer x
 * is reached from below with ratio 1. */
static int taps(const resize_spec *rs, double x, int64_t *first, double *wt)
{
    double fl = floor(x), ratio = x - fl;
    int64_t base = (int64_t)fl;
    if (ratio == 0) {
        ratio = 1;
        base -= 1;
    }
    if (rs->mode == CUBIC) {
        *first = base - 1;
        cubic_weights(ratio, rs->cubic_a, wt);
        return 4;
    }
    *first = base;
    if (rs->mode == LINEAR) {
        wt[0] = 1 - ratio;
        wt[1] = ratio;
        return 2;
    }
    bool up = ratio == 1 || (rs->nearest == ROUND_PREFER_FLOOR && ratio > 0.5) ||
              (rs->nearest == ROUND_PREFER_CEIL && ratio >= 0.5) ||
              rs->nearest == NEAREST_CEIL;
    wt[0] = up ? 0 : 1;
    wt[1] = up ? 1 : 0;
    return 2;
}

/* The taps of output index i along axis d, indices clamped to the input
 * (edge elements repeat past the ends; a clamped index may repeat); false
 * for an extrapolated row, which has none. */
typedef struct row_taps {
    int n;
    int64_t at[4];
    double w[4];
} row_taps;

static bool weight_row(const resize_spec *rs, int d, int64_t i, row_taps *t)
{
    double x;
    int64_t first, n = rs->in[d];
    t->n = 0;
    if (!coordinate(rs, d, i, &x)) return false;
    t->n = taps(rs, x, &first, t->w);
    if (rs->exclude_outside) {
        double sum = 0;
        for (int j = 0; j < t->n; j++) {
            if (first + j < 0 || first + j >= n) t->w[j] = 0;
            sum += t->w[j];
        }
        for (int j = 0; j < t->n && sum != 0; j++) t->w[j] /= sum;
    }
    for (int j = 0; j < t->n; j++)
        t->at[j] = first + j < 0 ? 0 : first + j >= n ? n - 1 : first + j;
    return true;
}

/* The weight row i puts on input index k. */
static double tap_weight(const row_taps *t, int64_t k)
{
    double w = 0;
    for (int j = 0; j < t->n; j++)
        if (t->at[j] == k) w += t->w[j];
    return w;
}

/* ---- emitting ------------------------------------------------------------------------- */

/* y = x with axis d replaced by the gather of the nearest indices (the
 * one tap of weight 1 in each row). */
static milk_status resize_gather(milk_cv *c, const resize_spec *rs, int d,
                                 milk_var *x, const char *name, milk_var **out)
{
    int64_t m = rs->out[d];
    int32_t *idx = milk_arena_alloc(c->a, (size_t)m * sizeof *idx);
    if (!idx) return milk_errorf(c->ctx, MILK_ERR_NOMEM, "out of memory");
    for (int64_t i = 0; i < m; i++) {
        row_taps t;
        weight_row(rs, d, i, &t);
        idx[i] = 0;
        for (int j = 0; j < t.n; j++)
            if (tap_weight(&t, t.at[j]) > 0.5) idx[i] = (int32_t)t.at[j];
    }
    milk_var *iv;
    milk_tensor_type t = {MILK_DTYPE_INT32, 1, {m}};
    MILK_TRY(milk_cv_const(c, milk_cv_tmp(c, "nearest"), &t, idx, &iv));
    milk_cv_op o;
    milk_cv_op_begin(&o, c, "gather", name);
    milk_cv_arg(&o, "x", x);
    milk_cv_arg(&o, "indices", iv);
    milk_cv_arg_int(&o, "axis", d);
    return milk_cv_op_end(&o, out);
}

/* The [out, in] weights of axis d as an fp32 const, and (if any row is
 * extrapolated) the value each row adds, as an fp32 [out] vector. */
static milk_status weight_matrix(milk_cv *c, const resize_spec *rs, int d,
                                 milk_var **mat, float **bias)
{
    int64_t m = rs->out[d], n = rs->in[d];
    if (m * n > MAX_MATRIX)
        return milk_cv_unsupported(c, "a %lld x %lld interpolation matrix along "
                                   "dim %d", (long long)m, (long long)n, d);
    float *w = calloc((size_t)(m * n), sizeof *w);
    *bias = milk_arena_alloc(c->a, (size_t)m * sizeof **bias);
    if (!w || !*bias) {
        free(w);
        return milk_errorf(c->ctx, MILK_ERR_NOMEM, "out of memory");
    }
    bool extrapolated = false;
    for (int64_t i = 0; i < m; i++) {
        row_taps t;
        bool inside = weight_row(rs, d, i, &t);
        extrapolated |= !inside;
        (*bias)[i] = inside ? 0.0f : (float)rs->extrapolation;
        for (int j = 0; j < t.n; j++) /* repeated taps sum, in double */
            w[i * n + t.at[j]] = (float)tap_weight(&t, t.at[j]);
    }
    if (!extrapolated) *bias = NULL;
    milk_tensor_type t = {MILK_DTYPE_FP32, 2, {m, n}};
    milk_status s = milk_cv_const(c, milk_cv_tmp(c, "weights"), &t, w, mat);
    free(w);
    return s;
}

/* y = x with axis d resampled by the weight matrix: along the last axis
 * matmul(x, M^T); elsewhere x as [pre, in, post] and matmul(M, x). */
static milk_status resize_matmul(milk_cv *c, const resize_spec *rs, int d,
                                 milk_var *x, const char *name, milk_var **out)
{
    milk_var *mat, *y;
    float *bias = NULL;
    int r = rs->r;
    MILK_TRY(weight_matrix(c, rs, d, &mat, &bias));
    if (x->type.dtype != MILK_DTYPE_FP32)
        MILK_TRY(milk_cv_cast(c, milk_cv_tmp(c, "wt"), mat, x->type.dtype, &mat));
    int64_t dims[MILK_MAX_RANK], d3[3] = {milk_dims_span(x->type.dims, 0, d), rs->in[d],
                                          milk_dims_span(x->type.dims, d + 1, r)};
    for (int i = 0; i < r; i++) dims[i] = i == d ? rs->out[d] : x->type.dims[i];
    bool last = d == r - 1;
    if (!last) MILK_TRY(milk_cv_reshape(c, milk_cv_tmp(c, "3d"), x, 3, d3, &x));
    bool more = !last || bias;
    milk_cv_op o;
    milk_cv_op_begin(&o, c, "matmul", more ? milk_cv_tmp(c, "interp") : name);
    milk_cv_arg(&o, "x", last ? x : mat);
    milk_cv_arg(&o, "y", last ? mat : x);
    milk_cv_arg_bool(&o, "transpose_x", false);
    milk_cv_arg_bool(&o, "transpose_y", last);
    MILK_TRY(milk_cv_op_end(&o, &y));
    if (!last)
        MILK_TRY(milk_cv_reshape(c, bias ? milk_cv_tmp(c, "nd") : name, y, r, dims, &y));
    if (bias) {
        milk_var *bv;
        milk_tensor_type bt = {MILK_DTYPE_FP32, r, {0}};
        for (int i = 0; i < r; i++) bt.dims[i] = i == d ? rs->out[d] : 1;
        MILK_TRY(milk_cv_const(c, milk_cv_tmp(c, "extrapolated"), &bt, bias, &bv));
        MILK_TRY(milk_lw_cast(c, milk_cv_tmp(c, "ext"), bv, y->type.dtype, &bv));
        MILK_TRY(milk_lw_binary(c, "add", name, y, bv, &y));
    }
    *out = y;
    return MILK_OK;
}

/* An axis whose output is its input unchanged (every row all its weight
 * on its own index). */
static bool identity_axis(const resize_spec *rs, int d)
{
    if (rs->in[d] != rs->out[d]) return false;
    for (int64_t i = 0; i < rs->in[d]; i++) {
        row_taps t;
        if (!weight_row(rs, d, i, &t) || tap_weight(&t, i) != 1.0) return false;
        for (int j = 0; j < t.n; j++)
            if (t.at[j] != i && t.w[j] != 0) return false;
    }
    return true;
}

/* ---- MIL's own resampling ops --------------------------------------------------------------- */

/* Only the last two dims change (MIL's ops resample those). */
static bool last_two_only(const resize_spec *rs)
{
    if (rs->r < 3) return false;
    for (int i = 0; i < rs->r - 2; i++)
        if (rs->in[i] != rs->out[i]) return false;
    return true;
}

/* Integer upscales whose nearest index is floor(i / scale): asymmetric
 * with floor, or half-pixel centres with rounding (the offset
 * (j + 0.5) / s - 0.5 stays inside (-0.5, 0.5)). */
static bool native_nearest(const resize_spec *rs)
{
    if (rs->mode != NEAREST || !last_two_only(rs)) return false;
    bool rounds = rs->nearest == ROUND_PREFER_FLOOR || rs->nearest == ROUND_PREFER_CEIL;
    bool ok = (rs->ctm == ASYMMETRIC && rs->nearest == NEAREST_FLOOR) ||
              ((rs->ctm == HALF_PIXEL || rs->ctm == PYTORCH_HALF_PIXEL) && rounds);
    for (int i = rs->r - 2; ok && i < rs->r; i++)
        ok = rs->out[i] % rs->in[i] == 0 && rs->out[i] > rs->in[i] &&
             rs->scale[i] == (double)(rs->out[i] / rs->in[i]);
    return ok;
}

/* resize_bilinear's sampling modes computing ONNX's coordinates: when
 * out = in * scale exactly, i / scale = i * in / out and so on. */
static const char *native_linear(const resize_spec *rs)
{
    if (rs->mode != LINEAR || !last_two_only(rs) || rs->exclude_outside) return NULL;
    for (int i = rs->r - 2; i < rs->r; i++)
        if ((double)rs->out[i] != rs->scale[i] * (double)rs->in[i] ||
            (rs->ctm == PYTORCH_HALF_PIXEL && rs->out[i] == 1))
            return NULL;
    switch (rs->ctm) {
    case ALIGN_CORNERS: return "STRICT_ALIGN_CORNERS";
    case ASYMMETRIC: return "DEFAULT";
    case HALF_PIXEL: case PYTORCH_HALF_PIXEL: return "UNALIGN_CORNERS";
    default: return NULL;
    }
}

static milk_status resize_native(milk_cv *c, const resize_spec *rs, milk_var *x,
                                 const char *sampling, milk_var **out)
{
    int r = rs->r;
    milk_cv_op o;
    if (!sampling) {
        milk_cv_op_begin(&o, c, "upsample_nearest_neighbor", milk_cv_out(c, 0));
        milk_cv_arg(&o, "x", x);
        milk_cv_arg_int(&o, "scale_factor_height", rs->out[r - 2] / rs->in[r - 2]);
        milk_cv_arg_int(&o, "scale_factor_width", rs->out[r - 1] / rs->in[r - 1]);
        return milk_cv_op_end(&o, out);
    }
    milk_cv_op_begin(&o, c, "resize_bilinear", milk_cv_out(c, 0));
    milk_cv_arg(&o, "x", x);
    milk_cv_arg_int(&o, "target_size_height", rs->out[r - 2]);
    milk_cv_arg_int(&o, "target_size_width", rs->out[r - 1]);
    milk_cv_arg_str(&o, "sampling_mode", sampling);
    return milk_cv_op_end(&o, out);
}

/* ---- the lowering ------------------------------------------------------------------------------ */

milk_status milk_lower_resize(milk_cv *c, const milk_onnx_node *n)
{
    bool upsample = strcmp(n->op_type, "Upsample") == 0;
    resize_spec rs;
    milk_var *x, *y;
    memset(&rs, 0, sizeof rs);
    MILK_TRY(milk_cv_input(c, 0, &x));
    if (x->type.dtype != MILK_DTYPE_FP32 && x->type.dtype != MILK_DTYPE_FP16)
        return milk_cv_unsupported(c, "input of dtype %s (float only)",
                                   milk_dtype_name(x->type.dtype));
    rs.r = x->type.rank;
    for (int i = 0; i < rs.r; i++) rs.in[i] = x->type.dims[i];
    MILK_TRY(read_modes(c, upsample, &rs));
    MILK_TRY(read_sizes(c, upsample, &rs));
    MILK_TRY(read_roi(c, &rs));
    const char *sampling = native_linear(&rs);
    if (sampling || native_nearest(&rs)) {
        MILK_TRY(resize_native(c, &rs, x, sampling, &y));
        return milk_cv_set_out(c, 0, y);
    }
    bool keep[MILK_MAX_RANK];
    int outer = rs.r; /* the outermost axis that changes */
    for (int d = 0; d < rs.r; d++) {
        keep[d] = identity_axis(&rs, d);
        if (!keep[d] && outer == rs.r) outer = d;
    }
    if (outer == rs.r) return milk_cv_set_out(c, 0, x);
    y = x;
    for (int d = rs.r - 1; d >= outer; d--) { /* innermost first, as ONNX nests */
        if (keep[d]) continue;
        const char *name = d == outer ? milk_cv_out(c, 0) : milk_cv_tmp(c, "axis");
        if (rs.mode == NEAREST) MILK_TRY(resize_gather(c, &rs, d, y, name, &y));
        else MILK_TRY(resize_matmul(c, &rs, d, y, name, &y));
    }
    return milk_cv_set_out(c, 0, y);
}
