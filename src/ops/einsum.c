/* einsum.c: einsum as MIL defines it (coremltools' ops/defs/iOS15/
 * linear.py): a batched product of two rank-3 or rank-4 tensors laid out
 * on dims -1 and -3, "nchw,nwhu->nchu" or "chw,whr->chr" up to relabeling,
 * with broadcasting of the batch dims H (and N). Type inference and a
 * reference kernel. */
#include "infer.h"
#include "../run/run.h"

/* The equation as coremltools' parse_einsum_equation sees it: spaces
 * dropped, each letter numbered in order of first appearance over input 1,
 * input 2, output; then compared with the two accepted patterns. Returns
 * the rank (3 or 4), or 0 for anything else. */
static int equation_rank(const char *eq)
{
    int code[256], next = 0, n[3] = {0, 0, 0}, part = 0;
    int vec[3][8];
    for (int i = 0; i < 256; i++) code[i] = -1;
    for (const char *p = eq; *p; p++) {
        unsigned char c = (unsigned char)*p;
        if (c == ' ') continue;
        if (c == ',' && part == 0) { part = 1; continue; }
        if (c == '-' && p[1] == '>' && part == 1) { part = 2; p++; continue; }
        if (c == ',' || c == '-' || c == '>' || n[part] == 8) return 0;
        if (code[c] < 0) code[c] = next++;
        vec[part][n[part]++] = code[c];
    }
    static const int a4[] = {0, 1, 2, 3}, b4[] = {0, 3, 2, 4}, o4[] = {0, 1, 2, 4};
    static const int a3[] = {0, 1, 2}, b3[] = {2, 1, 3}, o3[] = {0, 1, 3};
    if (part != 2 || n[0] != n[1] || n[0] != n[2]) return 0;
    size_t sz = (size_t)n[0] * sizeof(int);
    if (n[0] == 4 && !memcmp(vec[0], a4, sz) && !memcmp(vec[1], b4, sz) &&
        !memcmp(vec[2], o4, sz))
        return 4;
    if (n[0] == 3 && !memcmp(vec[0], a3, sz) && !memcmp(vec[1], b3, sz) &&
        !memcmp(vec[2], o3, sz))
        return 3;
    return 0;
}

/* A broadcast dim of the two inputs: equal, or one of them 1. */
static milk_status bcast_dim(milk_infer *ic, int64_t a, int64_t b, int axis,
                             int64_t *out)
{
    if (MILK_DIM_KNOWN(a) && MILK_DIM_KNOWN(b) && a != b && a != 1 && b != 1)
        return milk_op_fail(ic->ctx, ic->op, "values",
                            "dim %d: %lld and %lld do not broadcast", axis,
                            (long long)a, (long long)b);
    if (MILK_DIM_KNOWN(a) && MILK_DIM_KNOWN(b)) *out = a > b ? a : b;
    else if (MILK_DIM_KNOWN(a) && a != 1) *out = a;
    else if (MILK_DIM_KNOWN(b) && b != 1) *out = b;
    else *out = MILK_DIM_UNKNOWN;
    return MILK_OK;
}

static milk_status einsum_infer(milk_infer *ic)
{
    if (milk_op_in_count(ic->op, "values") != 2)
        return milk_op_fail(ic->ctx, ic->op, "values",
                            "expected 2 tensors, got %d",
                            milk_op_in_count(ic->op, "values"));
    const milk_tensor_type *x = milk_op_in_type_at(ic->op, "values", 0);
    const milk_tensor_type *y = milk_op_in_type_at(ic->op, "values", 1);
    const char *eq;
    MILK_TRY(milk_op_check_dtype(ic->ctx, ic->op, "values", MILK_DT_FLOAT));
    MILK_TRY(milk_op_str(ic->ctx, ic->op, "equation", "", &eq));
    int r = equation_rank(eq);
    if (!r)
        return milk_op_fail(ic->ctx, ic->op, "equation",
                            "'%s' is not \"nchw,nwhu->nchu\" or \"chw,whr->chr\" "
                            "(up to relabeling)", eq);
    if (x->dtype != y->dtype || x->rank != r || y->rank != r)
        return milk_op_fail(ic->ctx, ic->op, "values",
                            "expected two %s tensors of rank %d, as the "
                            "equation says", milk_infer_dtype_name(x->dtype), r);
    if (MILK_DIM_KNOWN(x->dims[r - 1]) && MILK_DIM_KNOWN(y->dims[r - 3]) &&
        x->dims[r - 1] != y->dims[r - 3])
        return milk_op_fail(ic->ctx, ic->op, "values",
                            "contracted dims differ: %lld (first, dim -1) and "
                            "%lld (second, dim -3)",
                            (long long)x->dims[r - 1], (long long)y->dims[r - 3]);
    int64_t dims[4];
    dims[r - 1] = y->dims[r - 1];
    dims[r - 3] = x->dims[r - 3];
    MILK_TRY(bcast_dim(ic, x->dims[r - 2], y->dims[r - 2], r - 2, &dims[r - 2]));
    if (r == 4) MILK_TRY(bcast_dim(ic, x->dims[0], y->dims[0], 0, &dims[0]));
    return milk_infer_one(ic, x->dtype, r, dims);
}

/* ---- reference kernel --------------------------------------------------- */

/* Index i of a dim of size n broadcast to a larger size (n == 1: 0). */
static int64_t bi(int64_t i, int64_t n)
{
    return n == 1 ? 0 : i;
}

static milk_status einsum_eval(milk_eval *ec)
{
    const milk_rt *xr = milk_eval_in_at(ec, "values", 0);
    const milk_rt *yr = milk_eval_in_at(ec, "values", 1);
    const milk_tensor_type *ot = &ec->out[0].type;
    int r = ot->rank;
    /* rank 3 is rank 4 with N = 1 */
    int64_t xd[4] = {1, 1, 1, 1}, yd[4] = {1, 1, 1, 1}, od[4] = {1, 1, 1, 1};
    for (int i = 0; i < r; i++) {
        xd[4 - r + i] = xr->type.dims[i];
        yd[4 - r + i] = yr->type.dims[i];
        od[4 - r + i] = ot->dims[i];
    }
    const int64_t W = xd[3];
    if (xr->type.rank != r || yr->type.rank != r || yd[1] != W ||
        od[1] != xd[1] || od[3] != yd[3])
        return milk_op_fail(ec->ctx, ec->op, "values", "shapes disagree");
    const float *x = milk_rt_f32(xr), *y = milk_rt_f32(yr);
    float *out = milk_rt_f32(&ec->out[0]);
    /* out: [N, C, H, U]; out[n, c, h, u] = sum_w x[n, c, h, w] *
     * y[n, w, h, u], n and h broadcast */
    for (int64_t n = 0; n < od[0]; n++)
        for (int64_t c = 0; c < od[1]; c++)
            for (int64_t h = 0; h < od[2]; h++)
                for (int64_t u = 0; u < od[3]; u++) {
                    const float *xp = x + ((bi(n, xd[0]) * xd[1] + c) * xd[2] +
                                           bi(h, xd[2])) * W;
                    double acc = 0.0;
                    for (int64_t w = 0; w < W; w++)
                        acc += (double)xp[w] *
                               y[((bi(n, yd[0]) * W + w) * yd[2] + bi(h, yd[2])) *
                                     yd[3] + u];
                    *out++ = (float)acc;
                }
    return MILK_OK;
}

/* einsum:
 *   values    R V  exactly two tensors of one dtype (fp16/fp32) and rank,
 *                  [*N, C, H, W] and [*N, W, H, U] with N (rank 4) and H
 *                  each equal or 1 (broadcast)
 *   equation  R C  "nchw,nwhu->nchu" (rank 4) or "chw,whr->chr" (rank 3),
 *                  or any relabeling of them; spaces are ignored
 * Output: [*N, C, H, U], the inputs' dtype: out[n, c, h, u] = sum_w
 * x[n, c, h, w] * y[n, w, h, u]. */
static const milk_param einsum_params[] = {
    {"values", MILK_P_REQ | MILK_P_VARIADIC, 0},
    {"equation", MILK_P_REQ | MILK_P_CONST, 0},
    {0},
};

const milk_op_info milk_op_einsum = {
    .name = "einsum",
    .params = einsum_params,
    .min_opset = MILK_TARGET_IOS15,
    .infer = einsum_infer,
    .eval = einsum_eval,
};
