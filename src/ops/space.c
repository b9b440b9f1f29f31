/* space.c: depth_to_space, space_to_depth and pixel_shuffle, which move
 * elements between the channel dim and the two spatial dims of an
 * [N, C, H, W] tensor, after coremltools' ops/defs/iOS15/
 * tensor_transformation.py. depth_to_space and space_to_depth follow
 * TensorFlow's ordering (coremltools' TensorFlow frontend maps them one to
 * one; ONNX calls it mode DCR), pixel_shuffle PyTorch's (ONNX's CRD). */
#include "layout.h"

typedef enum space_kind { TO_SPACE_DCR, TO_SPACE_CRD, TO_DEPTH } space_kind;

static space_kind kind_of(const milk_op *op)
{
    if (op->kind == MILK_OP_space_to_depth) return TO_DEPTH;
    return op->kind == MILK_OP_pixel_shuffle ? TO_SPACE_CRD : TO_SPACE_DCR;
}

/* The block size parameter's name. */
static const char *block_param(const milk_op *op)
{
    return op->kind == MILK_OP_pixel_shuffle ? "upscale_factor" : "block_size";
}

/* d * f, or d / f where f must divide a known d; unknown stays unknown. */
static milk_status scale_dim(milk_infer *ic, int64_t d, int64_t f, bool up,
                             int i, int64_t *out)
{
    *out = MILK_DIM_UNKNOWN;
    if (!MILK_DIM_KNOWN(d)) return MILK_OK;
    if (!up && d % f)
        return milk_op_fail(ic->ctx, ic->op, "x",
                            "dim %d (%lld) is not a multiple of %lld", i,
                            (long long)d, (long long)f);
    if (up && __builtin_mul_overflow(d, f, out))
        return milk_op_fail(ic->ctx, ic->op, "x", "size overflows");
    if (!up) *out = d / f;
    return MILK_OK;
}

static milk_status space_infer(milk_infer *ic)
{
    const milk_tensor_type *x;
    const char *bp = block_param(ic->op);
    int64_t b, dims[4];
    MILK_TRY(milk_infer_tensor(ic, "x", MILK_DT_FLOAT, 4, 4, &x));
    MILK_TRY(milk_infer_int(ic, bp, MILK_DT_INT32, 1, &b));
    if (b < 1 || b > 65536)
        return milk_op_fail(ic->ctx, ic->op, bp, "%lld is outside 1..65536",
                            (long long)b);
    bool to_depth = kind_of(ic->op) == TO_DEPTH;
    dims[0] = x->dims[0];
    MILK_TRY(scale_dim(ic, x->dims[1], b * b, to_depth, 1, &dims[1]));
    MILK_TRY(scale_dim(ic, x->dims[2], b, !to_depth, 2, &dims[2]));
    MILK_TRY(scale_dim(ic, x->dims[3], b, !to_depth, 3, &dims[3]));
    return milk_infer_one(ic, x->dtype, 4, dims);
}

/* The channel of x that holds block offset (i, j) of channel c of the
 * spatial side (C: the spatial side's channel count). */
static int64_t deep_channel(space_kind k, int64_t c, int64_t i, int64_t j,
                            int64_t b, int64_t C)
{
    return k == TO_SPACE_CRD ? (c * b + i) * b + j : (i * b + j) * C + c;
}

/* With S the spatial side ([N, C, H*b, W*b]) and D the deep side
 * ([N, C*b*b, H, W]): S[n, c, h*b + i, w*b + j] = D[n, ch, h, w], ch as
 * deep_channel says; to_space ops read D, space_to_depth reads S. */
static milk_status space_eval(milk_eval *ec)
{
    const milk_rt *x = milk_eval_in(ec, "x");
    milk_rt *o = &ec->out[0];
    space_kind k = kind_of(ec->op);
    int64_t b;
    MILK_TRY(milk_op_int(ec->ctx, ec->op, block_param(ec->op), 1, &b));
    const milk_tensor_type *S = k == TO_DEPTH ? &x->type : &o->type;
    int64_t C = S->dims[1], H = S->dims[2] / b, W = S->dims[3] / b;
    int64_t dims[6] = {S->dims[0], C, H, b, W, b}, idx[6] = {0};
    /* s walks S row-major as [N, C, H, b, W, b] (the same order as
     * [N, C, H*b, W*b]); idx = (n, c, h, i, w, j) */
    for (int64_t s = 0; s < x->count; s++) {
        int64_t ch = deep_channel(k, idx[1], idx[3], idx[5], b, C);
        int64_t d = ((idx[0] * C * b * b + ch) * H + idx[2]) * W + idx[4];
        if (k == TO_DEPTH) milk_layout_copy(o, d, x, s);
        else milk_layout_copy(o, s, x, d);
        milk_layout_next(6, dims, idx);
    }
    return MILK_OK;
}

/* depth_to_space: moves blocks of channels into b x b spatial blocks.
 *   x           R    [N, C, H, W], fp16/fp32; C a multiple of b^2
 *   block_size  R C  int32 b >= 1
 * Output: [N, C / b^2, H * b, W * b], out[n, c, h*b + i, w*b + j] =
 * x[n, (i*b + j) * C / b^2 + c, h, w] (TensorFlow's depth_to_space; ONNX
 * DepthToSpace mode DCR). */
static const milk_param depth_to_space_params[] = {
    {"x", MILK_P_REQ, 0},
    {"block_size", MILK_P_REQ | MILK_P_CONST, 0},
    {0},
};

const milk_op_info milk_op_depth_to_space = {
    .name = "depth_to_space",
    .params = depth_to_space_params,
    .min_opset = MILK_TARGET_IOS15,
    .infer = space_infer,
    .eval = space_eval,
};

/* space_to_depth: the inverse of depth_to_space.
 *   x           R    [N, C, H, W], fp16/fp32; H and W multiples of b
 *   block_size  R C  int32 b >= 1
 * Output: [N, C * b^2, H / b, W / b], out[n, (i*b + j) * C + c, h, w] =
 * x[n, c, h*b + i, w*b + j] (TensorFlow's space_to_depth, ONNX
 * SpaceToDepth). */
static const milk_param space_to_depth_params[] = {
    {"x", MILK_P_REQ, 0},
    {"block_size", MILK_P_REQ | MILK_P_CONST, 0},
    {0},
};

const milk_op_info milk_op_space_to_depth = {
    .name = "space_to_depth",
    .params = space_to_depth_params,
    .min_opset = MILK_TARGET_IOS15,
    .infer = space_infer,
    .eval = space_eval,
};

/* pixel_shuffle: depth_to_space with PyTorch's channel order.
 *   x               R    [N, C, H, W], fp16/fp32; C a multiple of f^2
 *   upscale_factor  R C  int32 f >= 1
 * Output: [N, C / f^2, H * f, W * f], out[n, c, h*f + i, w*f + j] =
 * x[n, (c*f + i)*f + j, h, w] (torch.nn.PixelShuffle; ONNX DepthToSpace
 * mode CRD). */
static const milk_param pixel_shuffle_params[] = {
    {"x", MILK_P_REQ, 0},
    {"upscale_factor", MILK_P_REQ | MILK_P_CONST, 0},
    {0},
};

const milk_op_info milk_op_pixel_shuffle = {
    .name = "pixel_shuffle",
    .params = pixel_shuffle_params,
    .min_opset = MILK_TARGET_IOS15,
    .infer = space_infer,
    .eval = space_eval,
};
