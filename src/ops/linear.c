/* linear.c: linear (x * weight^T + bias) and matmul (NumPy matmul with
 * optional transposes), after coremltools' ops/defs/iOS15/linear.py and
 * iOS17/linear.py: type inference, reference kernels (plain loops) and
 * fast kernels (OpenBLAS sgemm, gemm.c). */
#include "gemm.h"
#include "infer.h"
#include "../run/run.h"

static milk_status linear_eval(milk_eval *ec);
static milk_status linear_eval_fast(milk_eval *ec);
static milk_status matmul_eval(milk_eval *ec);
static milk_status matmul_eval_fast(milk_eval *ec);

static milk_status linear_infer(milk_infer *ic)
{
    static const char *const wb[] = {"weight", "bias", NULL};
    const milk_tensor_type *x, *w;
    MILK_TRY(milk_infer_tensor(ic, "x", MILK_DT_NUM, 1, -1, &x));
    MILK_TRY(milk_infer_tensor(ic, "weight", MILK_DT_NUM, 2, 2, &w));
    MILK_TRY(milk_infer_params_dtype(ic, "x", wb, MILK_DT_NUM));
    int64_t d_in = x->dims[x->rank - 1];
    if (MILK_DIM_KNOWN(d_in) && MILK_DIM_KNOWN(w->dims[1]) &&
        d_in != w->dims[1])
        return milk_op_fail(ic->ctx, ic->op, "weight",
                            "x has %lld features (last dim), weight "
                            "[%lld, %lld] expects %lld",
                            (long long)d_in, (long long)w->dims[0],
                            (long long)w->dims[1], (long long)w->dims[1]);
    const milk_tensor_type *b = milk_op_in_type(ic->op, "bias");
    if (b && (b->rank != 1 || (MILK_DIM_KNOWN(b->dims[0]) &&
                               MILK_DIM_KNOWN(w->dims[0]) &&
                               b->dims[0] != w->dims[0])))
        return milk_op_fail(ic->ctx, ic->op, "bias",
                            "expected shape [%lld]", (long long)w->dims[0]);
    int64_t dims[MILK_MAX_RANK];
    memcpy(dims, x->dims, sizeof dims);
    dims[x->rank - 1] = w->dims[0];
    return milk_infer_one(ic, x->dtype, x->rank, dims);
}

/* linear: x * weight^T + bias over the last dimension of x.
 *   x       R    [*D, D_in], fp16/fp32/int32; rank 1 to 3 in coremltools'
 *                documentation, any rank >= 1 in its type inference
 *                (its PyTorch frontend emits rank 4), so any rank >= 1
 *   weight  R C  [D_out, D_in]; from iOS17 its dtype may differ from x's
 *   bias    O C  [D_out], same dtype as weight; default zeros
 * Output: [*D, D_out], dtype of x.
 * Kernel: float sums accumulate in double; int32 sums wrap modulo 2^32
 * (as int32 hardware does). */
static const milk_param linear_params[] = {
    {"x", MILK_P_REQ, 0},
    {"weight", MILK_P_REQ | MILK_P_CONST, 0},
    {"bias", MILK_P_CONST, 0},
    {0},
};

const milk_op_info milk_op_linear = {
    .name = "linear",
    .params = linear_params,
    .min_opset = MILK_TARGET_IOS15,
    .infer = linear_infer,
    .eval = linear_eval,
    .eval_fast = linear_eval_fast,
};

/* The output dtype of matmul. Before iOS17 x and y share a dtype. From
 * iOS17 they may differ when exactly one of them is a constant; the output
 * then takes the other's dtype. */
static milk_status matmul_dtype(milk_infer *ic, const milk_tensor_type *x,
                                const milk_tensor_type *y, milk_dtype *out)
{
    *out = x->dtype;
    if (x->dtype == y->dtype) return MILK_OK;
    bool xc = milk_infer_is_const(ic, "x"), yc = milk_infer_is_const(ic, "y");
    if (ic->opset < MILK_TARGET_IOS17 || xc == yc)
        return milk_op_fail(ic->ctx, ic->op, "y",
                            "dtype %s differs from x's %s%s",
                            milk_infer_dtype_name(y->dtype),
                            milk_infer_dtype_name(x->dtype),
                            ic->opset < MILK_TARGET_IOS17
                                ? ""
                                : " (allowed only when one of them is a "
                                  "constant)");
    *out = xc ? y->dtype : x->dtype;
    return MILK_OK;
}

/* Shape of one operand as matmul sees it: transposed if asked, rank 1
 * promoted to a matrix ([1, K] for x, [K, 1] for y). */
static milk_status matmul_operand(milk_infer *ic, const char *param,
                                  const char *tparam, bool is_x,
                                  milk_tensor_type *t)
{
    bool tr;
    MILK_TRY(milk_op_bool(ic->ctx, ic->op, tparam, false, &tr));
    if (tr && t->rank == 1)
        return milk_op_fail(ic->ctx, ic->op, tparam,
                            "'%s' has rank 1 and cannot be transposed", param);
    if (tr) {
        int64_t d = t->dims[t->rank - 1];
        t->dims[t->rank - 1] = t->dims[t->rank - 2];
        t->dims[t->rank - 2] = d;
    }
    if (t->rank == 1) {
        t->dims[1] = is_x ? t->dims[0] : 1;
        t->dims[0] = is_x ? 1 : t->dims[0];
        t->rank = 2;
    }
    return MILK_OK;
}

static milk_status matmul_infer(milk_infer *ic)
{
    const milk_tensor_type *xt, *yt;
    milk_dtype dt;
    MILK_TRY(milk_infer_tensor(ic, "x", MILK_DT_NUM, 1, -1, &xt));
    MILK_TRY(milk_infer_tensor(ic, "y", MILK_DT_NUM, 1, -1, &yt));
    MILK_TRY(matmul_dtype(ic, xt, yt, &dt));
    milk_tensor_type x = *xt, y = *yt, out = {dt, 0, {0}};
    MILK_TRY(matmul_operand(ic, "x", "transpose_x", true, &x));
    MILK_TRY(matmul_operand(ic, "y", "transpose_y", false, &y));
    int64_t k1 = x.dims[x.rank - 1], k2 = y.dims[y.rank - 2];
    if (MILK_DIM_KNOWN(k1) && MILK_DIM_KNOWN(k2) && k1 != k2)
        return milk_op_fail(ic->ctx, ic->op, "y",
                            "inner dimensions differ: %lld (x) vs %lld (y)",
                            (long long)k1, (long long)k2);
    /* batch dims broadcast; then [M, N]; promoted dims are dropped */
    milk_tensor_type bx = x, by = y;
    bx.rank -= 2;
    by.rank -= 2;
    MILK_TRY(milk_op_broadcast(ic->ctx, ic->op, &bx, &by, &out));
    out.dims[out.rank++] = x.dims[x.rank - 2];
    out.dims[out.rank++] = y.dims[y.rank - 1];
    if (yt->rank == 1) out.rank--;
    if (xt->rank == 1) {
        out.dims[out.rank - 2 + (yt->rank == 1)] = out.dims[out.rank - 1];
        out.rank--;
    }
    return milk_infer_one(ic, dt, out.rank, out.dims);
}

/* matmul: NumPy matmul of x and y.
 *   x            R    rank >= 1, fp16/fp32/int32
 *   y            R    rank >= 1; same dtype as x, except from iOS17 when
 *                     exactly one of x and y is a constant (the output then
 *                     has the other one's dtype)
 *   transpose_x  O C  bool, default false: swap x's last two dims
 *   transpose_y  O C  bool, default false: swap y's last two dims
 * Rank-1 operands are promoted to [1, K] (x) and [K, 1] (y) and the added
 * dim is removed from the output; transposing a rank-1 operand is an error.
 * Output: broadcast(x batch dims, y batch dims) + [M, N].
 * Kernel: float sums accumulate in double; int32 x int32 sums wrap modulo
 * 2^32; an int32 output of an int32 and a float operand (iOS17, one of
 * them constant) is the double sum truncated toward zero, saturating. */
static const milk_param matmul_params[] = {
    {"x", MILK_P_REQ, 0},
    {"y", MILK_P_REQ, 0},
    {"transpose_x", MILK_P_CONST, 0},
    {"transpose_y", MILK_P_CONST, 0},
    {0},
};

const milk_op_info milk_op_matmul = {
    .name = "matmul",
    .params = matmul_params,
    .min_opset = MILK_TARGET_IOS15,
    .infer = matmul_infer,
    .eval = matmul_eval,
    .eval_fast = matmul_eval_fast,
};

/* ---- kernels: shared ---------------------------------------------------- */

/* Element i of a float or int32 tensor as double. */
static double at(const milk_rt *t, int64_t i)
{
    return t->store == MILK_DTYPE_FP32 ? milk_rt_f32(t)[i] : milk_rt_i32(t)[i];
}

/* A double converted to int32 by truncation toward zero, saturating, NaN
 * to 0 (C leaves out-of-range conversions undefined). */
static int32_t to_i32(double v)
{
    if (v != v) return 0;
    if (v >= 2147483647.0) return INT32_MAX;
    if (v <= -2147483648.0) return INT32_MIN;
    return (int32_t)v;
}

/* One output element: out[i] = bias[ib] + sum over k < n of a[ia + k * sa]
 * * b[ib + k * sb] (bias may be NULL). Floats accumulate in double. When
 * everything is int32 the sum is taken modulo 2^32, as int32 hardware
 * wraps; an int32 output from float operands (matmul with one constant
 * from iOS17) is the double sum converted by to_i32. */
static void dot_put(milk_rt *out, int64_t i, const milk_rt *a, int64_t ia,
                    int64_t sa, const milk_rt *b, int64_t ib, int64_t sb,
                    int64_t n, const milk_rt *bias, int64_t ibias)
{
    bool ints = a->store == MILK_DTYPE_INT32 && b->store == MILK_DTYPE_INT32 &&
                out->store == MILK_DTYPE_INT32 &&
                (!bias || bias->store == MILK_DTYPE_INT32);
    if (ints) {
        const int32_t *A = milk_rt_i32(a), *B = milk_rt_i32(b);
        uint64_t acc = bias ? (uint64_t)(int64_t)milk_rt_i32(bias)[ibias] : 0;
        for (int64_t k = 0; k < n; k++)
            acc += (uint64_t)((int64_t)A[ia + k * sa] * B[ib + k * sb]);
        milk_rt_i32(out)[i] = (int32_t)(uint32_t)acc;
        return;
    }
    double acc = bias ? at(bias, ibias) : 0.0;
    for (int64_t k = 0; k < n; k++) acc += at(a, ia + k * sa) * at(b, ib + k * sb);
    if (out->store == MILK_DTYPE_FP32)
        milk_rt_f32(out)[i] = (float)acc;
    else
        milk_rt_i32(out)[i] = to_i32(acc);
}

static bool all_f32(const milk_rt *a, const milk_rt *b, const milk_rt *c)
{
    return a->store == MILK_DTYPE_FP32 && b->store == MILK_DTYPE_FP32 &&
           (!c || c->store == MILK_DTYPE_FP32);
}

/* ---- linear kernels ----------------------------------------------------- */

/* x viewed as [rows, D_in]; weight [D_out, D_in]; bias [D_out]. */
static milk_status linear_dims(milk_eval *ec, int64_t *rows, int64_t *d_in,
                               int64_t *d_out)
{
    const milk_rt *x = milk_eval_in(ec, "x"), *w = milk_eval_in(ec, "weight");
    const milk_rt *b = milk_eval_in(ec, "bias");
    *d_out = w->type.dims[0];
    *d_in = w->type.dims[1];
    *rows = *d_in ? x->count / *d_in : 0;
    if (w->type.rank != 2 || x->type.dims[x->type.rank - 1] != *d_in ||
        ec->out[0].count != *rows * *d_out || (b && b->count != *d_out))
        return milk_op_fail(ec->ctx, ec->op, "weight",
                            "x, weight, bias and output shapes disagree");
    return MILK_OK;
}

static milk_status linear_eval(milk_eval *ec)
{
    int64_t rows, d_in, d_out;
    MILK_TRY(linear_dims(ec, &rows, &d_in, &d_out));
    const milk_rt *x = milk_eval_in(ec, "x"), *w = milk_eval_in(ec, "weight");
    const milk_rt *b = milk_eval_in(ec, "bias");
    /* y: [rows, D_out]; y[r, o] = bias[o] + sum_i x[r, i] * w[o, i] */
    for (int64_t r = 0; r < rows; r++)
        for (int64_t o = 0; o < d_out; o++)
            dot_put(&ec->out[0], r * d_out + o, x, r * d_in, 1, w, o * d_in, 1,
                    d_in, b, o);
    return MILK_OK;
}

static milk_status linear_eval_fast(milk_eval *ec)
{
    int64_t rows, d_in, d_out;
    MILK_TRY(linear_dims(ec, &rows, &d_in, &d_out));
    const milk_rt *x = milk_eval_in(ec, "x"), *w = milk_eval_in(ec, "weight");
    const milk_rt *b = milk_eval_in(ec, "bias");
    const int64_t sizes[] = {rows, d_in, d_out};
    if (!all_f32(x, w, b) || ec->out[0].store != MILK_DTYPE_FP32 ||
        !milk_gemm_ok(sizes, 3))
        return linear_eval(ec); /* int32 and huge shapes */
    float *y = milk_rt_f32(&ec->out[0]);
    for (int64_t r = 0; r < rows; r++)
        for (int64_t o = 0; o < d_out; o++)
            y[r * d_out + o] = b ? milk_rt_f32(b)[o] : 0.0f;
    /* Y [rows, D_out] += X [rows, D_in] x W^T, W stored [D_out, D_in] */
    milk_sgemm(false, true, rows, d_out, d_in, 1.0f, milk_rt_f32(x), d_in,
               milk_rt_f32(w), d_in, 1.0f, y, d_out);
    return MILK_OK;
}

/* ---- matmul kernels ----------------------------------------------------- */

/* How matmul walks its operands: M, N, K after promotion and transposes;
 * element strides of x[m, k] and y[k, n] inside one stored matrix (x
 * stored [xa, xb], y [yc, yd]); the output's batch dims and, per batch
 * dim, the step of x's and y's matrix offset (0 where broadcast). */
typedef struct mm_plan {
    int64_t M, N, K;
    int64_t xb, yd;         /* stored row lengths (lda, ldb) */
    int64_t xm, xk, yk, yn;
    bool tx, ty;
    int nb;
    int64_t bdims[MILK_MAX_RANK], bx[MILK_MAX_RANK], by[MILK_MAX_RANK];
    int64_t nbatch, x_batches, y_batches;
} mm_plan;

/* Batch steps of one operand of rank r whose matrix has msize elements:
 * its batch dims align with the output's trailing batch dims. */
static bool mm_batch_steps(const milk_tensor_type *t, int64_t msize,
                           mm_plan *p, int64_t *step, int64_t *count)
{
    int r = t->rank > 2 ? t->rank - 2 : 0;
    int64_t s = msize;
    *count = 1;
    for (int j = r - 1; j >= 0; j--) {
        int od = p->nb - r + j;
        if (od < 0 || (t->dims[j] != 1 && t->dims[j] != p->bdims[od]))
            return false;
        step[od] = t->dims[j] == 1 ? 0 : s;
        s *= t->dims[j];
        *count *= t->dims[j];
    }
    return true;
}

static milk_status mm_plan_make(milk_eval *ec, mm_plan *p)
{
    const milk_tensor_type *xt = &milk_eval_in(ec, "x")->type;
    const milk_tensor_type *yt = &milk_eval_in(ec, "y")->type;
    const milk_tensor_type *ot = &ec->out[0].type;
    memset(p, 0, sizeof *p);
    MILK_TRY(milk_op_bool(ec->ctx, ec->op, "transpose_x", false, &p->tx));
    MILK_TRY(milk_op_bool(ec->ctx, ec->op, "transpose_y", false, &p->ty));
    int rx = xt->rank, ry = yt->rank;
    /* stored matrices: rank-1 x is [1, K], rank-1 y is [K, 1] */
    int64_t xa = rx == 1 ? 1 : xt->dims[rx - 2], xb = xt->dims[rx - 1];
    int64_t yc = ry == 1 ? yt->dims[0] : yt->dims[ry - 2];
    int64_t yd = ry == 1 ? 1 : yt->dims[ry - 1];
    p->xb = xb;
    p->yd = yd;
    p->M = p->tx ? xb : xa;
    p->K = p->tx ? xa : xb;
    p->N = p->ty ? yc : yd;
    p->xm = p->tx ? 1 : xb;
    p->xk = p->tx ? xb : 1;
    p->yk = p->ty ? 1 : yd;
    p->yn = p->ty ? yd : 1;
    p->nb = ot->rank - (rx > 1) - (ry > 1);
    for (int i = 0; i < p->nb; i++) p->bdims[i] = ot->dims[i];
    p->nbatch = milk_dims_span(ot->dims, 0, p->nb);
    bool ok = (p->ty ? yd : yc) == p->K && p->nb >= 0 &&
              ec->out[0].count == p->nbatch * p->M * p->N &&
              mm_batch_steps(xt, xa * xb, p, p->bx, &p->x_batches) &&
              mm_batch_steps(yt, yc * yd, p, p->by, &p->y_batches);
    if (!ok)
        return milk_op_fail(ec->ctx, ec->op, "y", "x, y and output shapes disagree");
    return MILK_OK;
}

/* Offsets of x's and y's matrices for output batch b (row-major). */
static void mm_offsets(const mm_plan *p, int64_t b, int64_t *ox, int64_t *oy)
{
    *ox = *oy = 0;
    for (int d = p->nb - 1; d >= 0; d--) {
        int64_t i = b % p->bdims[d];
        b /= p->bdims[d];
        *ox += i * p->bx[d];
        *oy += i * p->by[d];
    }
}

static milk_status matmul_eval(milk_eval *ec)
{
    mm_plan p;
    MILK_TRY(mm_plan_make(ec, &p));
    const milk_rt *x = milk_eval_in(ec, "x"), *y = milk_eval_in(ec, "y");
    /* out: [batch, M, N]; out[b, m, n] = sum_k x_b[m, k] * y_b[k, n] */
    for (int64_t b = 0; b < p.nbatch; b++) {
        int64_t ox, oy;
        mm_offsets(&p, b, &ox, &oy);
        for (int64_t m = 0; m < p.M; m++)
            for (int64_t n = 0; n < p.N; n++)
                dot_put(&ec->out[0], (b * p.M + m) * p.N + n, x, ox + m * p.xm,
                        p.xk, y, oy + n * p.yn, p.yk, p.K, NULL, 0);
    }
    return MILK_OK;
}

static milk_status matmul_eval_fast(milk_eval *ec)
{
    mm_plan p;
    MILK_TRY(mm_plan_make(ec, &p));
    const milk_rt *x = milk_eval_in(ec, "x"), *y = milk_eval_in(ec, "y");
    const int64_t sizes[] = {p.nbatch * p.M, p.N, p.K, p.xb, p.yd};
    if (!all_f32(x, y, &ec->out[0]) || !milk_gemm_ok(sizes, 5))
        return matmul_eval(ec); /* int32 and huge shapes */
    const float *X = milk_rt_f32(x), *Y = milk_rt_f32(y);
    float *O = milk_rt_f32(&ec->out[0]);
    if (p.nbatch > 1 && p.y_batches == 1 && p.x_batches == p.nbatch && !p.tx) {
        /* one y for every batch: O [batch*M, N] = X [batch*M, K] x op(Y),
         * Y stored [K, N] or (transposed) [N, K] */
        milk_sgemm(false, p.ty, p.nbatch * p.M, p.N, p.K, 1.0f, X, p.xb, Y,
                   p.yd, 0.0f, O, p.N);
        return MILK_OK;
    }
    for (int64_t b = 0; b < p.nbatch; b++) {
        int64_t ox, oy;
        mm_offsets(&p, b, &ox, &oy);
        /* O_b [M, N] = op(X_b) [M, K] x op(Y_b) [K, N], X_b stored [M, K]
         * or [K, M], Y_b [K, N] or [N, K] */
        milk_sgemm(p.tx, p.ty, p.M, p.N, p.K, 1.0f, X + ox, p.xb, Y + oy, p.yd,
                   0.0f, O + b * p.M * p.N, p.N);
    }
    return MILK_OK;
}
