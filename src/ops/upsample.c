/* upsample.c: upsample_nearest_neighbor and upsample_bilinear, which scale
 * the last two dims of x, and resize_nearest_neighbor and resize_bilinear,
 * which resize them to a target size, after coremltools' ops/defs/iOS15/
 * image_resizing.py and iOS16/image_resizing.py (half_pixel_centers). */
#include "layout.h"

#include <math.h>

/* floor(scale * d) for a known d. The product is taken in double on the
 * scale's exact value (an fp32 or int32 constant), as coremltools does
 * with NumPy 1.x; its PyTorch frontend adds 1e-4 to the output size before
 * dividing, so that the product does not fall just below an integer. */
static milk_status scaled_dim(milk_infer *ic, const char *param,
                              int64_t d, double scale, int64_t *out)
{
    if (!(scale > 0.0))
        return milk_op_fail(ic->ctx, ic->op, param, "%g is not positive",
                            scale);
    if (!MILK_DIM_KNOWN(d)) {
        *out = MILK_DIM_UNKNOWN;
        return MILK_OK;
    }
    double o = floor(scale * (double)d);
    if (o < 1.0 || o > (double)MILK_MAX_ELEMENTS)
        return milk_op_fail(ic->ctx, ic->op, param,
                            "scale %g takes size %lld to %.0f", scale,
                            (long long)d, o);
    *out = (int64_t)o;
    return MILK_OK;
}

static milk_status upsample_infer(milk_infer *ic)
{
    static const char *const scales[] = {"scale_factor_height",
                                         "scale_factor_width", NULL};
    const milk_tensor_type *x;
    double sh, sw;
    bool ac, hpc;
    MILK_TRY(milk_infer_tensor(ic, "x", MILK_DT_FLOAT, 3, -1, &x));
    MILK_TRY(milk_infer_domain(ic, scales,
                               MILK_DT(MILK_DTYPE_FP32) | MILK_DT_INT32));
    MILK_TRY(milk_op_f64(ic->ctx, ic->op, "scale_factor_height", 1.0, &sh));
    MILK_TRY(milk_op_f64(ic->ctx, ic->op, "scale_factor_width", 1.0, &sw));
    /* bilinear only (absent, so the default, for nearest neighbor) */
    MILK_TRY(milk_op_bool(ic->ctx, ic->op, "align_corners", true, &ac));
    MILK_TRY(milk_op_bool(ic->ctx, ic->op, "half_pixel_centers", !ac, &hpc));
    int64_t dims[MILK_MAX_RANK];
    memcpy(dims, x->dims, sizeof dims);
    MILK_TRY(scaled_dim(ic, "scale_factor_height", x->dims[x->rank - 2], sh,
                        &dims[x->rank - 2]));
    MILK_TRY(scaled_dim(ic, "scale_factor_width", x->dims[x->rank - 1], sw,
                        &dims[x->rank - 1]));
    return milk_infer_one(ic, x->dtype, x->rank, dims);
}

/* ---- kernels ------------------------------------------------------------ */

/* How an output index i maps to a coordinate of the input along one dim of
 * in -> out elements (bilinear), or to an input index (nearest). */
typedef enum sampling {
    S_ALIGN,      /* i * (in - 1) / (out - 1); 0 when out is 1 */
    S_ALIGN_MID,  /* the same, but (in - 1) / 2 when out is 1 */
    S_ASYM,       /* i * in / out */
    S_HALF,       /* (i + 0.5) * in / out - 0.5 */
    S_HALF_ALIGN, /* (i + 0.5) * (in - 1) / (out - 1) - 0.5 (TF's rule) */
    S_OFFSET,     /* (i + 0.5) * max(1, in - 1) / out */
    S_NN_SCALE,   /* nearest: floor(i / scale) */
    S_NN_HALF,    /* nearest: floor((i + 0.5) * in / out) */
} sampling;

/* The sampling coordinate, clamped to [0, in - 1]. */
static double coord(sampling m, double scale, int64_t i, int64_t in,
                    int64_t out)
{
    double x = (double)i, n = (double)in, o = (double)out, c;
    switch (m) {
    case S_ALIGN: c = out > 1 ? x * (n - 1) / (o - 1) : 0; break;
    case S_ALIGN_MID: c = out > 1 ? x * (n - 1) / (o - 1) : (n - 1) / 2; break;
    case S_ASYM: c = x * n / o; break;
    case S_HALF: c = (x + 0.5) * n / o - 0.5; break;
    case S_HALF_ALIGN:
        c = (x + 0.5) * (out > 1 ? (n - 1) / (o - 1) : n / o) - 0.5;
        break;
    case S_OFFSET: c = (x + 0.5) * (n > 1 ? n - 1 : 1) / o; break;
    case S_NN_SCALE: c = floor(x / scale); break;
    default: c = floor((x + 0.5) * n / o); break;
    }
    return c < 0 ? 0 : c > n - 1 ? n - 1 : c;
}

/* The sampling of each of the last two dims and whether to interpolate. */
typedef struct resampler {
    sampling m[2];
    double scale[2]; /* S_NN_SCALE only */
    bool linear;
} resampler;

static double lerp(double a, double b, double f)
{
    return (1 - f) * a + f * b;
}

/* out[.., h, w] from the [H, W] plane of x: the element at the sampled
 * coordinates, or the bilinear mix of the four around them. An empty
 * plane has nothing to sample (only resize can ask for that). */
static milk_status resample(milk_eval *ec, const resampler *rs)
{
    const milk_rt *x = milk_eval_in(ec, "x");
    milk_rt *o = &ec->out[0];
    int r = x->type.rank;
    int64_t H = x->type.dims[r - 2], W = x->type.dims[r - 1];
    int64_t Ho = o->type.dims[r - 2], Wo = o->type.dims[r - 1];
    if ((H == 0 || W == 0) && o->count > 0)
        return milk_op_fail(ec->ctx, ec->op, "x",
                            "an empty [%lld, %lld] plane cannot be resized",
                            (long long)H, (long long)W);
    int64_t planes = H * W > 0 ? x->count / (H * W) : 0;
    /* x: [planes, H, W]; out: [planes, Ho, Wo] */
    for (int64_t p = 0; p < planes; p++) {
        const float *in = milk_rt_f32(x) + p * H * W;
        for (int64_t h = 0; h < Ho; h++) {
            double ch = coord(rs->m[0], rs->scale[0], h, H, Ho);
            int64_t h0 = (int64_t)ch, h1 = h0 + 1 < H ? h0 + 1 : H - 1;
            double fh = ch - (double)h0;
            for (int64_t w = 0; w < Wo; w++) {
                double cw = coord(rs->m[1], rs->scale[1], w, W, Wo);
                int64_t w0 = (int64_t)cw, w1 = w0 + 1 < W ? w0 + 1 : W - 1;
                double fw = cw - (double)w0, v = in[h0 * W + w0];
                if (rs->linear)
                    v = lerp(lerp(in[h0 * W + w0], in[h0 * W + w1], fw),
                             lerp(in[h1 * W + w0], in[h1 * W + w1], fw), fh);
                milk_rt_f32(o)[(p * Ho + h) * Wo + w] = (float)v;
            }
        }
    }
    return MILK_OK;
}

static milk_status upsample_nn_eval(milk_eval *ec)
{
    resampler rs = {{S_NN_SCALE, S_NN_SCALE}, {1, 1}, false};
    MILK_TRY(milk_op_f64(ec->ctx, ec->op, "scale_factor_height", 1.0,
                         &rs.scale[0]));
    MILK_TRY(milk_op_f64(ec->ctx, ec->op, "scale_factor_width", 1.0,
                         &rs.scale[1]));
    return resample(ec, &rs);
}

static milk_status upsample_bilinear_eval(milk_eval *ec)
{
    bool ac, hpc;
    MILK_TRY(milk_op_bool(ec->ctx, ec->op, "align_corners", true, &ac));
    MILK_TRY(milk_op_bool(ec->ctx, ec->op, "half_pixel_centers", !ac, &hpc));
    sampling m = ac ? (hpc ? S_HALF_ALIGN : S_ALIGN) : (hpc ? S_HALF : S_ASYM);
    resampler rs = {{m, m}, {1, 1}, true};
    return resample(ec, &rs);
}

/* upsample_nearest_neighbor: repeats rows and columns.
 *   x                    R    rank >= 3 (last two dims H, W), fp16/fp32
 *   scale_factor_height  O C  fp32 or int32, default 1
 *   scale_factor_width   O C  same dtype as scale_factor_height, default 1
 * Output: x's shape with H_out = floor(H * scale_factor_height), W_out =
 * floor(W * scale_factor_width); out[.., i, j] = x[.., min(floor(i / s_h),
 * H - 1), min(floor(j / s_w), W - 1)] (PyTorch's "nearest" with the given
 * scale factors, ONNX Resize's asymmetric floor). */
static const milk_param upsample_nn_params[] = {
    {"x", MILK_P_REQ, 0},
    {"scale_factor_height", MILK_P_CONST, 0},
    {"scale_factor_width", MILK_P_CONST, 0},
    {0},
};

const milk_op_info milk_op_upsample_nearest_neighbor = {
    .name = "upsample_nearest_neighbor",
    .params = upsample_nn_params,
    .min_opset = MILK_TARGET_IOS15,
    .infer = upsample_infer,
    .eval = upsample_nn_eval,
};

/* upsample_bilinear: bilinear resize of the last two dims.
 *   x                    R    rank >= 3 (last two dims H, W), fp16/fp32
 *   scale_factor_height  O C  fp32 or int32, default 1
 *   scale_factor_width   O C  same dtype as scale_factor_height, default 1
 *   align_corners        O C  bool, default true
 *   half_pixel_centers   O C  bool (iOS16+), default !align_corners
 * Output: as upsample_nearest_neighbor. Each output index i samples x at
 * a coordinate clamped to [0, D - 1] and mixes the two neighbours of
 * each of the last two dims linearly. The scale is recomputed from the
 * sizes (D_in, D_out), as TensorFlow's ResizeBilinear does:
 *   align_corners, no half_pixel_centers:  i * (D_in - 1) / (D_out - 1)
 *                                          (0 when D_out is 1)
 *   neither:                               i * D_in / D_out
 *   half_pixel_centers only:               (i + 0.5) * D_in / D_out - 0.5
 *   both (TensorFlow refuses it):          (i + 0.5) * (D_in - 1) /
 *                                          (D_out - 1) - 0.5
 * The defaults match PyTorch's bilinear interpolate with
 * recompute_scale_factor=True. */
static const milk_param upsample_bilinear_params[] = {
    {"x", MILK_P_REQ, 0},
    {"scale_factor_height", MILK_P_CONST, 0},
    {"scale_factor_width", MILK_P_CONST, 0},
    {"align_corners", MILK_P_CONST, 0},
    {"half_pixel_centers", MILK_P_CONST, MILK_TARGET_IOS16},
    {0},
};

const milk_op_info milk_op_upsample_bilinear = {
    .name = "upsample_bilinear",
    .params = upsample_bilinear_params,
    .min_opset = MILK_TARGET_IOS15,
    .infer = upsample_infer,
    .eval = upsample_bilinear_eval,
};

/* ---- resize_nearest_neighbor, resize_bilinear --------------------------- */

static const struct {
    const char *name;
    sampling m;
} sampling_modes[] = {
    {"STRICT_ALIGN_CORNERS", S_ALIGN}, {"ALIGN_CORNERS", S_ALIGN_MID},
    {"DEFAULT", S_ASYM},               {"OFFSET_CORNERS", S_OFFSET},
    {"UNALIGN_CORNERS", S_HALF},
};

/* resize_bilinear's sampling_mode; fails naming the op for any other. */
static milk_status sampling_mode(milk_ctx *ctx, const milk_op *op,
                                 sampling *m)
{
    const char *s;
    MILK_TRY(milk_op_str(ctx, op, "sampling_mode", "DEFAULT", &s));
    for (size_t i = 0; s && i < MILK_ARRAY_LEN(sampling_modes); i++)
        if (!strcmp(s, sampling_modes[i].name)) {
            *m = sampling_modes[i].m;
            return MILK_OK;
        }
    return milk_op_fail(ctx, op, "sampling_mode",
                        "'%s' is not one of STRICT_ALIGN_CORNERS, "
                        "ALIGN_CORNERS, DEFAULT, OFFSET_CORNERS, "
                        "UNALIGN_CORNERS",
                        s ? s : "");
}

static milk_status resize_infer(milk_infer *ic)
{
    const milk_tensor_type *x;
    const char *names[2] = {"target_size_height", "target_size_width"};
    int64_t dims[MILK_MAX_RANK];
    sampling m;
    MILK_TRY(milk_infer_tensor(ic, "x", MILK_DT_FLOAT, 3, -1, &x));
    if (ic->op->kind == MILK_OP_resize_bilinear)
        MILK_TRY(sampling_mode(ic->ctx, ic->op, &m));
    memcpy(dims, x->dims, sizeof dims);
    for (int i = 0; i < 2; i++) {
        int64_t *d = &dims[x->rank - 2 + i];
        MILK_TRY(milk_infer_int(ic, names[i], MILK_DT_INT32, 1, d));
        if (*d < 1 || *d > MILK_MAX_ELEMENTS)
            return milk_op_fail(ic->ctx, ic->op, names[i],
                                "%lld is not a size", (long long)*d);
    }
    return milk_infer_one(ic, x->dtype, x->rank, dims);
}

static milk_status resize_nn_eval(milk_eval *ec)
{
    resampler rs = {{S_NN_HALF, S_NN_HALF}, {1, 1}, false};
    return resample(ec, &rs);
}

static milk_status resize_bilinear_eval(milk_eval *ec)
{
    sampling m;
    MILK_TRY(sampling_mode(ec->ctx, ec->op, &m));
    resampler rs = {{m, m}, {1, 1}, true};
    return resample(ec, &rs);
}

/* resize_nearest_neighbor: nearest-neighbour resize of the last two dims
 * to a given size.
 *   x                   R    rank >= 3 (last two dims H, W), fp16/fp32
 *   target_size_height  R C  int32 >= 1
 *   target_size_width   R C  int32 >= 1
 * Output: x's shape with the last two dims the targets; out[.., i, j] =
 * x[.., min(floor((i + 0.5) * H / H_out), H - 1), likewise for j]
 * (TensorFlow's nearest resize with half_pixel_centers, PyTorch's
 * "nearest-exact"; coremltools' tests of the iOS17 resize op expect this
 * sampling). */
static const milk_param resize_nn_params[] = {
    {"x", MILK_P_REQ, 0},
    {"target_size_height", MILK_P_REQ | MILK_P_CONST, 0},
    {"target_size_width", MILK_P_REQ | MILK_P_CONST, 0},
    {0},
};

const milk_op_info milk_op_resize_nearest_neighbor = {
    .name = "resize_nearest_neighbor",
    .params = resize_nn_params,
    .min_opset = MILK_TARGET_IOS15,
    .infer = resize_infer,
    .eval = resize_nn_eval,
};

/* resize_bilinear: bilinear resize of the last two dims to a given size.
 *   x                   R    rank >= 3 (last two dims H, W), fp16/fp32
 *   target_size_height  O C  int32 >= 1, default 1
 *   target_size_width   O C  int32 >= 1, default 1
 *   sampling_mode       O C  default "DEFAULT"; the coordinate sampled for
 *                            output index i along a dim of D_in -> D_out,
 *                            clamped to [0, D_in - 1]:
 *     STRICT_ALIGN_CORNERS  i * (D_in - 1) / (D_out - 1), 0 if D_out is 1
 *     ALIGN_CORNERS         the same, (D_in - 1) / 2 if D_out is 1
 *     DEFAULT               i * D_in / D_out
 *     OFFSET_CORNERS        (i + 0.5) * max(1, D_in - 1) / D_out
 *     UNALIGN_CORNERS       (i + 0.5) * D_in / D_out - 0.5
 * Output: x's shape with the last two dims the targets, each element the
 * bilinear mix of the four elements around its coordinates. */
static const milk_param resize_bilinear_params[] = {
    {"x", MILK_P_REQ, 0},
    {"target_size_height", MILK_P_CONST, 0},
    {"target_size_width", MILK_P_CONST, 0},
    {"sampling_mode", MILK_P_CONST, 0},
    {0},
};

const milk_op_info milk_op_resize_bilinear = {
    .name = "resize_bilinear",
    .params = resize_bilinear_params,
    .min_opset = MILK_TARGET_IOS15,
    .infer = resize_infer,
    .eval = resize_bilinear_eval,
};
