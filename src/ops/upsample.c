/* upsample.c: upsample_nearest_neighbor and upsample_bilinear, which scale
 * the last two dims of x, after coremltools' ops/defs/iOS15/
 * image_resizing.py and iOS16/image_resizing.py (half_pixel_centers). */
#include "infer.h"

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

/* upsample_nearest_neighbor: repeats rows and columns.
 *   x                    R    rank >= 3 (last two dims H, W), fp16/fp32
 *   scale_factor_height  O C  fp32 or int32, default 1
 *   scale_factor_width   O C  same dtype as scale_factor_height, default 1
 * Output: x's shape with H_out = floor(H * scale_factor_height), W_out =
 * floor(W * scale_factor_width). */
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
};

/* upsample_bilinear: bilinear resize of the last two dims.
 *   x                    R    rank >= 3 (last two dims H, W), fp16/fp32
 *   scale_factor_height  O C  fp32 or int32, default 1
 *   scale_factor_width   O C  same dtype as scale_factor_height, default 1
 *   align_corners        O C  bool, default true
 *   half_pixel_centers   O C  bool (iOS16+), default !align_corners
 * Output: as upsample_nearest_neighbor. */
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
};
