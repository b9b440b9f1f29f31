/* lower_nn.c: lowerings of the network ops: MatMul, Gemm, Conv,
 * ConvTranspose, BatchNormalization, LayerNormalization, the pools and the
 * reductions. Sliding windows always get explicit pads (pad_type custom):
 * ONNX's auto_pad is computed here, which avoids MIL's "same" without pad
 * and "same_lower" before iOS16 (docs/coreml-defects.md). */
#include "lower_util.h"

#include <stdio.h>

/* ---- MatMul, Gemm ----------------------------------------------------------------- */

static milk_status matmul_op(milk_cv *c, milk_var *x, milk_var *y, bool tx,
                             bool ty, const char *name, milk_var **out)
{
    milk_cv_op o;
    milk_cv_op_begin(&o, c, "matmul", name);
    milk_cv_arg(&o, "x", x);
    milk_cv_arg(&o, "y", y);
    /* "optional" in the spec, required in practice (coreml-defects.md) */
    milk_cv_arg_bool(&o, "transpose_x", tx);
    milk_cv_arg_bool(&o, "transpose_y", ty);
    return milk_cv_op_end(&o, out);
}

milk_status milk_lower_matmul(milk_cv *c, const milk_onnx_node *n)
{
    milk_var *x, *y, *out;
    MILK_TRY(milk_cv_input(c, 0, &x));
    MILK_TRY(milk_cv_input(c, 1, &y));
    MILK_TRY(matmul_op(c, x, y, false, false, milk_cv_out(c, 0), &out));
    return milk_cv_set_out(c, 0, out);
}

/* Gemm as linear: y = A B^T + C with B [N, K] and C [N] or [1, N]
 * constants, alpha = beta = 1, no transA (PyTorch's nn.Linear). */
static bool gemm_is_linear(milk_cv *c, int64_t ta, int64_t tb, double alpha,
                           double beta)
{
    milk_tensor_type bt, ct;
    if (ta || !tb || alpha != 1.0 || !milk_cv_is_const(c, 1)) return false;
    if (milk_cv_type(c, 1, &bt) != MILK_OK || bt.rank != 2) return false;
    if (!milk_cv_has(c, 2)) return true;
    if (beta != 1.0 || !milk_cv_is_const(c, 2) || milk_cv_type(c, 2, &ct) != MILK_OK)
        return false;
    return ct.rank >= 1 && milk_tensor_type_count(&ct) == bt.dims[0] &&
           ct.dims[ct.rank - 1] == bt.dims[0];
}

static milk_status gemm_linear(milk_cv *c, milk_var *a, milk_var **out)
{
    milk_var *w, *bias = NULL;
    MILK_TRY(milk_cv_input(c, 1, &w));
    if (milk_cv_has(c, 2)) {
        MILK_TRY(milk_cv_input(c, 2, &bias));
        if (bias->type.rank != 1) /* [1, N]: a const reshape, folded */
            MILK_TRY(milk_cv_reshape(c, milk_cv_tmp(c, "bias"), bias, 1,
                                     &w->type.dims[0], &bias));
    }
    milk_cv_op o;
    milk_cv_op_begin(&o, c, "linear", milk_cv_out(c, 0));
    milk_cv_arg(&o, "x", a);
    milk_cv_arg(&o, "weight", w);
    milk_cv_arg(&o, "bias", bias);
    return milk_cv_op_end(&o, out);
}

/* y = alpha * op(A) op(B) + beta * C in its general form. */
static milk_status gemm_general(milk_cv *c, milk_var *a, bool ta, bool tb,
                                double alpha, double beta, milk_var **out)
{
    milk_var *b, *y, *cc = NULL;
    MILK_TRY(milk_cv_input(c, 1, &b));
    MILK_TRY(milk_cv_input_opt(c, 2, &cc));
    bool more = alpha != 1.0 || cc;
    MILK_TRY(matmul_op(c, a, b, ta, tb,
                       more ? milk_cv_tmp(c, "matmul") : milk_cv_out(c, 0), &y));
    milk_dtype dt = milk_cv_float_dtype(y);
    if (alpha != 1.0) {
        milk_cv_op o;
        milk_cv_op_begin(&o, c, "mul", cc ? milk_cv_tmp(c, "alpha") : milk_cv_out(c, 0));
        milk_cv_arg(&o, "x", y);
        milk_cv_arg_float(&o, "y", alpha, dt);
        MILK_TRY(milk_cv_op_end(&o, &y));
    }
    if (cc && beta != 1.0) {
        milk_cv_op o;
        milk_cv_op_begin(&o, c, "mul", milk_cv_tmp(c, "beta"));
        milk_cv_arg(&o, "x", cc);
        milk_cv_arg_float(&o, "y", beta, dt);
        MILK_TRY(milk_cv_op_end(&o, &cc));
    }
    if (cc) {
        milk_cv_op o;
        milk_cv_op_begin(&o, c, "add", milk_cv_out(c, 0));
        milk_cv_arg(&o, "x", y);
        milk_cv_arg(&o, "y", cc);
        MILK_TRY(milk_cv_op_end(&o, &y));
    }
    *out = y;
    return MILK_OK;
}

milk_status milk_lower_gemm(milk_cv *c, const milk_onnx_node *n)
{
    milk_var *a, *out;
    int64_t ta, tb;
    double alpha, beta;
    MILK_TRY(milk_cv_attr_int(c, "transA", 0, &ta));
    MILK_TRY(milk_cv_attr_int(c, "transB", 0, &tb));
    MILK_TRY(milk_cv_attr_float(c, "alpha", 1.0, &alpha));
    MILK_TRY(milk_cv_attr_float(c, "beta", 1.0, &beta));
    MILK_TRY(milk_cv_input(c, 0, &a));
    if (gemm_is_linear(c, ta, tb, alpha, beta))
        MILK_TRY(gemm_linear(c, a, &out));
    else
        MILK_TRY(gemm_general(c, a, ta != 0, tb != 0, alpha, beta, &out));
    return milk_cv_set_out(c, 0, out);
}

/* ---- sliding windows: shared attribute reading ---------------------------------------- */

/* The window attributes of Conv, ConvTranspose and the pools, for S
 * spatial dims. pads are ONNX's [b0, b1, ..., e0, e1, ...]. */
typedef struct window {
    int S;
    int64_t k[3], s[3], d[3], pads[6];
    const char *auto_pad;
} window;

static milk_status window_read(milk_cv *c, int S, const int64_t *kernel,
                               window *w)
{
    int nk;
    int64_t k[3];
    w->S = S;
    MILK_TRY(milk_cv_attr_ints(c, "kernel_shape", k, 3, &nk));
    if (nk >= 0 && nk != S)
        return milk_cv_fail(c, MILK_ERR_INVALID_MODEL, "attribute "
                            "'kernel_shape': %d values for %d spatial dims", nk, S);
    for (int i = 0; i < S; i++) {
        w->k[i] = nk >= 0 ? k[i] : kernel ? kernel[i] : 0;
        if (kernel && w->k[i] != kernel[i])
            return milk_cv_fail(c, MILK_ERR_INVALID_MODEL, "attribute "
                                "'kernel_shape' differs from the weight's shape");
        if (w->k[i] < 1)
            return milk_cv_fail(c, MILK_ERR_INVALID_MODEL, "attribute "
                                "'kernel_shape' is missing or below 1");
    }
    MILK_TRY(milk_cv_attr_ints_n(c, "strides", S, 1, w->s));
    MILK_TRY(milk_cv_attr_ints_n(c, "dilations", S, 1, w->d));
    MILK_TRY(milk_cv_attr_ints_n(c, "pads", 2 * S, 0, w->pads));
    MILK_TRY(milk_cv_attr_str(c, "auto_pad", "NOTSET", &w->auto_pad));
    for (int i = 0; i < S; i++)
        if (w->s[i] < 1 || w->d[i] < 1)
            return milk_cv_fail(c, MILK_ERR_INVALID_MODEL,
                                "strides and dilations must be at least 1");
    for (int i = 0; i < 2 * S; i++)
        if (w->pads[i] < 0)
            return milk_cv_unsupported(c, "attribute 'pads': negative pads");
    return MILK_OK;
}

/* Replace pads by what auto_pad says for input sizes `in` (conv and pools:
 * SAME gives ceil(in / s) outputs, the odd pad at the end for SAME_UPPER,
 * at the start for SAME_LOWER). */
static milk_status window_auto_pad(milk_cv *c, window *w, const int64_t *in)
{
    bool upper = strcmp(w->auto_pad, "SAME_UPPER") == 0;
    bool lower = strcmp(w->auto_pad, "SAME_LOWER") == 0;
    if (strcmp(w->auto_pad, "VALID") == 0) {
        memset(w->pads, 0, sizeof w->pads);
        return MILK_OK;
    }
    if (!upper && !lower) {
        if (strcmp(w->auto_pad, "NOTSET") == 0) return MILK_OK;
        return milk_cv_unsupported(c, "attribute 'auto_pad': '%s'", w->auto_pad);
    }
    for (int i = 0; i < w->S; i++) {
        int64_t keff = (w->k[i] - 1) * w->d[i] + 1;
        int64_t out = (in[i] + w->s[i] - 1) / w->s[i];
        int64_t total = (out - 1) * w->s[i] + keff - in[i];
        if (total < 0) total = 0;
        w->pads[i] = upper ? total / 2 : total - total / 2;
        w->pads[w->S + i] = total - w->pads[i];
    }
    return MILK_OK;
}

/* ONNX's [b0, b1, .., e0, e1, ..] as MIL's [b0, e0, b1, e1, ..]. */
static void mil_pads(const window *w, int64_t *out)
{
    for (int i = 0; i < w->S; i++) {
        out[2 * i] = w->pads[i];
        out[2 * i + 1] = w->pads[w->S + i];
    }
}

static milk_status spatial_rank(milk_cv *c, const milk_var *x, int *S)
{
    *S = x->type.rank - 2;
    if (*S < 1 || *S > 3)
        return milk_cv_unsupported(c, "input of rank %d: 1-D to 3-D (rank 3 "
                                   "to 5) only", (int)x->type.rank);
    return MILK_OK;
}

/* ---- Conv ------------------------------------------------------------------------------- */

milk_status milk_lower_conv(milk_cv *c, const milk_onnx_node *n)
{
    milk_var *x, *w, *b, *out;
    window win;
    int64_t group, pad[6];
    int S;
    MILK_TRY(milk_cv_input(c, 0, &x));
    MILK_TRY(milk_cv_input(c, 1, &w));
    MILK_TRY(milk_cv_input_opt(c, 2, &b));
    MILK_TRY(spatial_rank(c, x, &S));
    if (w->type.rank != S + 2)
        return milk_cv_fail(c, MILK_ERR_INVALID_MODEL, "weight of rank %d for "
                            "an input of rank %d", (int)w->type.rank, S + 2);
    MILK_TRY(window_read(c, S, &w->type.dims[2], &win));
    MILK_TRY(window_auto_pad(c, &win, &x->type.dims[2]));
    MILK_TRY(milk_cv_attr_int(c, "group", 1, &group));
    mil_pads(&win, pad);
    milk_cv_op o;
    milk_cv_op_begin(&o, c, "conv", milk_cv_out(c, 0));
    milk_cv_arg(&o, "x", x);
    milk_cv_arg(&o, "weight", w);
    milk_cv_arg(&o, "bias", b);
    milk_cv_arg_ints(&o, "strides", win.s, S);
    milk_cv_arg_str(&o, "pad_type", "custom");
    milk_cv_arg_ints(&o, "pad", pad, 2 * S);
    milk_cv_arg_ints(&o, "dilations", win.d, S);
    milk_cv_arg_int(&o, "groups", group);
    MILK_TRY(milk_cv_op_end(&o, &out));
    return milk_cv_set_out(c, 0, out);
}

/* ---- ConvTranspose ------------------------------------------------------------------------ */

/* Where ConvTranspose's output lies in MIL's. The full transposed
 * convolution has F = (in - 1) * s + keff elements per dim (zeros beyond,
 * before the bias); ONNX's output is full[b, b + size) with size = F +
 * output_padding - b - e. MIL's conv_transpose with the symmetric pad m
 * gives `natural` = full[m, F - m): m = min(b, e - output_padding), at
 * least 0, keeps every needed element computed. The output then starts
 * `crop` in; `ext` elements lie beyond F and hold only the bias. No
 * output_shape and no asymmetric pad reach MIL (docs/coreml-defects.md:
 * convt-output-shape, convt-asym-pad). */
typedef struct convt_plan {
    int64_t m[3], crop[3], size[3], natural[3], ext[3];
    bool slice, extend;
} convt_plan;

/* Pads from output_shape or auto_pad SAME_* (ONNX's ConvTranspose rule:
 * SAME_UPPER puts the odd pad at the end, anything else at the start). */
static milk_status convt_pads(milk_cv *c, window *w, const int64_t *in,
                              const int64_t *opad)
{
    int64_t oshape[MILK_MAX_RANK];
    int n;
    MILK_TRY(milk_cv_attr_ints(c, "output_shape", oshape, MILK_MAX_RANK, &n));
    bool same = strncmp(w->auto_pad, "SAME_", 5) == 0;
    if (n < 0 && !same) {
        if (strcmp(w->auto_pad, "VALID") == 0) memset(w->pads, 0, sizeof w->pads);
        else if (strcmp(w->auto_pad, "NOTSET") != 0)
            return milk_cv_unsupported(c, "attribute 'auto_pad': '%s'", w->auto_pad);
        return MILK_OK;
    }
    if (n >= 0 && n != w->S && n != w->S + 2)
        return milk_cv_fail(c, MILK_ERR_INVALID_MODEL, "attribute "
                            "'output_shape': %d values for %d spatial dims", n, w->S);
    for (int i = 0; i < w->S; i++) {
        int64_t keff = (w->k[i] - 1) * w->d[i] + 1;
        int64_t want = n >= 0 ? oshape[n - w->S + i] : in[i] * w->s[i];
        int64_t total = w->s[i] * (in[i] - 1) + opad[i] + keff - want;
        /* floor(total / 2), as ONNX's reference computes it: a negative
         * total (an output larger than the full convolution) lands at the
         * end, where the plan extends with zeros and the bias */
        int64_t half = total >= 0 ? total / 2 : -((1 - total) / 2);
        bool upper = strcmp(w->auto_pad, "SAME_UPPER") == 0;
        w->pads[i] = upper ? half : total - half;
        w->pads[w->S + i] = total - w->pads[i];
        if (w->pads[i] < 0)
            return milk_cv_unsupported(c, "output size %lld is larger than "
                                       "the transposed convolution gives, "
                                       "by more than one element before it",
                                       (long long)want);
    }
    return MILK_OK;
}

static void convt_plan_make(const window *w, const int64_t *in,
                            const int64_t *opad, convt_plan *p)
{
    memset(p, 0, sizeof *p);
    for (int i = 0; i < w->S; i++) {
        int64_t b = w->pads[i], e = w->pads[w->S + i];
        int64_t full = (in[i] - 1) * w->s[i] + (w->k[i] - 1) * w->d[i] + 1;
        int64_t m = b < e - opad[i] ? b : e - opad[i];
        p->m[i] = m > 0 ? m : 0;
        p->natural[i] = full - 2 * p->m[i];
        p->crop[i] = b - p->m[i];
        p->size[i] = full + opad[i] - b - e;
        int64_t end = p->crop[i] + p->size[i];
        p->ext[i] = end > p->natural[i] ? end - p->natural[i] : 0;
        p->slice |= p->crop[i] > 0 || end < p->natural[i];
        p->extend |= p->ext[i] > 0;
    }
}

/* Crop y to [crop, crop + size) per spatial dim, within its natural size. */
static milk_status convt_slice(milk_cv *c, const convt_plan *p, milk_var *y,
                               const char *name, milk_var **out)
{
    int r = y->type.rank, S = r - 2;
    int64_t begin[5] = {0}, end[5];
    for (int i = 0; i < r; i++) end[i] = y->type.dims[i];
    for (int i = 0; i < S; i++) {
        begin[2 + i] = p->crop[i];
        end[2 + i] = p->crop[i] + p->size[i] - p->ext[i];
    }
    milk_cv_op o;
    milk_cv_op_begin(&o, c, "slice_by_index", name);
    milk_cv_arg(&o, "x", y);
    milk_cv_arg_ints(&o, "begin", begin, r);
    milk_cv_arg_ints(&o, "end", end, r);
    return milk_cv_op_end(&o, out);
}

/* Zeros after the natural end, then the bias everywhere. */
static milk_status convt_extend(milk_cv *c, const convt_plan *p, milk_var *y,
                                milk_var *bias, milk_var **out)
{
    int S = y->type.rank - 2;
    int64_t pad[6];
    for (int i = 0; i < S; i++) {
        pad[2 * i] = 0;
        pad[2 * i + 1] = p->ext[i];
    }
    milk_cv_op o;
    milk_cv_op_begin(&o, c, "pad", bias ? milk_cv_tmp(c, "ext") : milk_cv_out(c, 0));
    milk_cv_arg(&o, "x", y);
    milk_cv_arg_ints(&o, "pad", pad, 2 * S);
    milk_cv_arg_str(&o, "mode", "constant");
    milk_cv_arg_float(&o, "constant_val", 0.0, milk_cv_float_dtype(y));
    MILK_TRY(milk_cv_op_end(&o, &y));
    if (!bias) {
        *out = y;
        return MILK_OK;
    }
    int64_t bshape[4] = {bias->type.dims[0], 1, 1, 1};
    MILK_TRY(milk_cv_reshape(c, milk_cv_tmp(c, "bias"), bias, S + 1, bshape, &bias));
    milk_cv_op_begin(&o, c, "add", milk_cv_out(c, 0));
    milk_cv_arg(&o, "x", y);
    milk_cv_arg(&o, "y", bias);
    return milk_cv_op_end(&o, out);
}

static milk_status convt_emit(milk_cv *c, const window *w, const convt_plan *p,
                              int64_t group, milk_var **out)
{
    milk_var *x, *wt, *b, *y;
    MILK_TRY(milk_cv_input(c, 0, &x));
    MILK_TRY(milk_cv_input(c, 1, &wt));
    MILK_TRY(milk_cv_input_opt(c, 2, &b));
    int64_t pad[6];
    for (int i = 0; i < w->S; i++) pad[2 * i] = pad[2 * i + 1] = p->m[i];
    bool last = !p->slice && !p->extend;
    milk_cv_op o;
    milk_cv_op_begin(&o, c, "conv_transpose",
                     last ? milk_cv_out(c, 0) : milk_cv_tmp(c, "convt"));
    milk_cv_arg(&o, "x", x);
    milk_cv_arg(&o, "weight", wt);
    milk_cv_arg(&o, "bias", p->extend ? NULL : b);
    milk_cv_arg_str(&o, "pad_type", "custom");
    milk_cv_arg_ints(&o, "pad", pad, 2 * w->S);
    milk_cv_arg_ints(&o, "strides", w->s, w->S);
    milk_cv_arg_ints(&o, "dilations", w->d, w->S);
    milk_cv_arg_int(&o, "groups", group);
    MILK_TRY(milk_cv_op_end(&o, &y));
    if (p->slice)
        MILK_TRY(convt_slice(c, p, y, p->extend ? milk_cv_tmp(c, "crop")
                                                : milk_cv_out(c, 0), &y));
    if (p->extend) MILK_TRY(convt_extend(c, p, y, b, &y));
    *out = y;
    return MILK_OK;
}

milk_status milk_lower_conv_transpose(milk_cv *c, const milk_onnx_node *n)
{
    milk_tensor_type xt, wt;
    window w;
    convt_plan plan;
    int64_t group, opad[3];
    int S = 0;
    milk_var *out;
    MILK_TRY(milk_cv_type(c, 0, &xt));
    MILK_TRY(milk_cv_type(c, 1, &wt));
    S = xt.rank - 2;
    if (S < 1 || S > 3 || wt.rank != xt.rank)
        return milk_cv_unsupported(c, "input of rank %d with weight of rank "
                                   "%d: 1-D to 3-D only", (int)xt.rank, (int)wt.rank);
    MILK_TRY(window_read(c, S, &wt.dims[2], &w));
    MILK_TRY(milk_cv_attr_int(c, "group", 1, &group));
    MILK_TRY(milk_cv_attr_ints_n(c, "output_padding", S, 0, opad));
    MILK_TRY(convt_pads(c, &w, &xt.dims[2], opad));
    convt_plan_make(&w, &xt.dims[2], opad, &plan);
    for (int i = 0; i < S; i++)
        if (plan.size[i] < 1)
            return milk_cv_unsupported(c, "empty output along spatial dim %d", i);
    MILK_TRY(convt_emit(c, &w, &plan, group, &out));
    return milk_cv_set_out(c, 0, out);
}

/* ---- normalization ----------------------------------------------------------------------- */

static milk_status batch_norm_op(milk_cv *c, milk_var *x, const char *name,
                                 double eps, milk_var **out)
{
    milk_var *gamma, *beta, *mean, *var;
    MILK_TRY(milk_cv_input(c, 1, &gamma));
    MILK_TRY(milk_cv_input(c, 2, &beta));
    MILK_TRY(milk_cv_input(c, 3, &mean));
    MILK_TRY(milk_cv_input(c, 4, &var));
    milk_cv_op o;
    milk_cv_op_begin(&o, c, "batch_norm", name);
    milk_cv_arg(&o, "x", x);
    milk_cv_arg(&o, "mean", mean);
    milk_cv_arg(&o, "variance", var);
    milk_cv_arg(&o, "gamma", gamma);
    milk_cv_arg(&o, "beta", beta);
    milk_cv_arg_float(&o, "epsilon", eps, milk_cv_float_dtype(x));
    return milk_cv_op_end(&o, out);
}

/* (x - mean) * (scale / sqrt(var + eps)) + bias when the [C] vectors are
 * known only at run time: each reshaped to broadcast along axis 1. */
static milk_status batch_norm_decomposed(milk_cv *c, milk_var *x, double eps,
                                         milk_var **out)
{
    milk_var *v[4], *inv, *y;
    int64_t dims[MILK_MAX_RANK];
    int rank;
    for (int i = 0; i < 4; i++) MILK_TRY(milk_cv_input(c, 1 + i, &v[i]));
    milk_lw_channel_shape(x->type.dims[1], x->type.rank, &rank, dims);
    milk_cv_op o;
    milk_cv_op_begin(&o, c, "rsqrt", milk_cv_tmp(c, "inv"));
    milk_cv_arg(&o, "x", v[3]);
    milk_cv_arg_float(&o, "epsilon", eps, milk_cv_float_dtype(x));
    MILK_TRY(milk_cv_op_end(&o, &inv));
    MILK_TRY(milk_lw_binary(c, "mul", milk_cv_tmp(c, "gain"), v[0], inv, &v[0]));
    for (int i = 0; i < 3; i++) /* gain, bias, mean as [C, 1, ...] */
        MILK_TRY(milk_cv_reshape(c, milk_cv_tmp(c, "chan"), v[i], rank, dims, &v[i]));
    MILK_TRY(milk_lw_binary(c, "sub", milk_cv_tmp(c, "centred"), x, v[2], &y));
    MILK_TRY(milk_lw_binary(c, "mul", milk_cv_tmp(c, "scaled"), y, v[0], &y));
    return milk_lw_binary(c, "add", milk_cv_out(c, 0), y, v[1], out);
}

/* running = input * momentum + batch * (1 - momentum), batch reshaped to
 * [C] from its kept-dims form. */
static milk_status running_stat(milk_cv *c, int out, milk_var *input,
                                milk_var *batch, double momentum)
{
    milk_var *a, *b;
    if (!milk_cv_has_out(c, out)) return MILK_OK;
    MILK_TRY(milk_cv_reshape(c, milk_cv_tmp(c, "batch"), batch, 1, &input->type.dims[0],
                             &batch));
    MILK_TRY(milk_lw_scalar(c, "mul", milk_cv_tmp(c, "old"), input, momentum, false, &a));
    MILK_TRY(milk_lw_scalar(c, "mul", milk_cv_tmp(c, "new"), batch, 1 - momentum,
                            false, &b));
    MILK_TRY(milk_lw_binary(c, "add", milk_cv_out(c, out), a, b, &a));
    return milk_cv_set_out(c, out, a);
}

/* Training mode (opset 14+): normalized with the batch's own mean and
 * (biased) variance over every axis but 1; outputs 1 and 2 the running
 * mean and variance. */
static milk_status batch_norm_training(milk_cv *c, milk_var *x, double eps,
                                       double momentum)
{
    milk_var *v[4], *mean, *d, *var, *inv, *y;
    int64_t axes[MILK_MAX_RANK], dims[MILK_MAX_RANK];
    int r = x->type.rank, rank, k = 0;
    for (int i = 0; i < r; i++)
        if (i != 1) axes[k++] = i;
    for (int i = 0; i < 4; i++) MILK_TRY(milk_cv_input(c, 1 + i, &v[i]));
    MILK_TRY(milk_lw_reduce(c, "reduce_mean", milk_cv_tmp(c, "mean"), x, axes, k, true, &mean));
    MILK_TRY(milk_lw_binary(c, "sub", milk_cv_tmp(c, "centred"), x, mean, &d));
    MILK_TRY(milk_lw_binary(c, "mul", milk_cv_tmp(c, "sq"), d, d, &var));
    MILK_TRY(milk_lw_reduce(c, "reduce_mean", milk_cv_tmp(c, "var"), var, axes, k, true, &var));
    milk_cv_op o;
    milk_cv_op_begin(&o, c, "rsqrt", milk_cv_tmp(c, "inv"));
    milk_cv_arg(&o, "x", var);
    milk_cv_arg_float(&o, "epsilon", eps, milk_cv_float_dtype(x));
    MILK_TRY(milk_cv_op_end(&o, &inv));
    milk_lw_channel_shape(x->type.dims[1], r, &rank, dims);
    MILK_TRY(milk_cv_reshape(c, milk_cv_tmp(c, "scale"), v[0], rank, dims, &v[0]));
    MILK_TRY(milk_cv_reshape(c, milk_cv_tmp(c, "bias"), v[1], rank, dims, &v[1]));
    MILK_TRY(milk_lw_binary(c, "mul", milk_cv_tmp(c, "normed"), d, inv, &y));
    MILK_TRY(milk_lw_binary(c, "mul", milk_cv_tmp(c, "scaled"), y, v[0], &y));
    MILK_TRY(milk_lw_binary(c, "add", milk_cv_out(c, 0), y, v[1], &y));
    MILK_TRY(milk_cv_set_out(c, 0, y));
    MILK_TRY(running_stat(c, 1, v[2], mean, momentum));
    return running_stat(c, 2, v[3], var, momentum);
}

milk_status milk_lower_batch_norm(milk_cv *c, const milk_onnx_node *n)
{
    milk_var *x, *y;
    double eps, momentum;
    int64_t training, spatial;
    MILK_TRY(milk_cv_attr_float(c, "epsilon", 1e-5, &eps));
    MILK_TRY(milk_cv_attr_float(c, "momentum", 0.9, &momentum));
    MILK_TRY(milk_cv_attr_int(c, "training_mode", 0, &training));
    MILK_TRY(milk_cv_attr_int(c, "spatial", 1, &spatial));
    if (!spatial) return milk_cv_unsupported(c, "attribute 'spatial': 0");
    bool stats = false;
    for (int i = 1; i < n->n_outputs; i++) stats |= milk_cv_has_out(c, i);
    if ((training || stats) && c->opset < 14)
        return milk_cv_unsupported(c, "training outputs before opset 14");
    if (stats && !training)
        return milk_cv_fail(c, MILK_ERR_INVALID_MODEL, "running statistics "
                            "outputs without training_mode");
    MILK_TRY(milk_cv_input(c, 0, &x));
    int r = x->type.rank;
    if (r < 2 || r > 5)
        return milk_cv_unsupported(c, "input of rank %d (2 to 5 supported)", r);
    if (training) return batch_norm_training(c, x, eps, momentum);
    bool consts = true;
    for (int i = 1; i <= 4; i++) consts &= milk_cv_is_const(c, i);
    if (!consts) {
        MILK_TRY(batch_norm_decomposed(c, x, eps, &y));
        return milk_cv_set_out(c, 0, y);
    }
    if (r > 2) {
        MILK_TRY(batch_norm_op(c, x, milk_cv_out(c, 0), eps, &y));
        return milk_cv_set_out(c, 0, y);
    }
    /* [N, C]: MIL's batch_norm wants a spatial dim */
    int64_t ax = 2;
    milk_cv_op o;
    milk_cv_op_begin(&o, c, "expand_dims", milk_cv_tmp(c, "3d"));
    milk_cv_arg(&o, "x", x);
    milk_cv_arg_ints(&o, "axes", &ax, 1);
    MILK_TRY(milk_cv_op_end(&o, &y));
    MILK_TRY(batch_norm_op(c, y, milk_cv_tmp(c, "bn"), eps, &y));
    milk_cv_op_begin(&o, c, "squeeze", milk_cv_out(c, 0));
    milk_cv_arg(&o, "x", y);
    milk_cv_arg_ints(&o, "axes", &ax, 1);
    MILK_TRY(milk_cv_op_end(&o, &y));
    return milk_cv_set_out(c, 0, y);
}

/* gamma or beta for MIL's layer_norm: a const of exactly the normalized
 * shape (MIL's rule; ONNX allows any shape with the same elements, which
 * a folded reshape gives). False when the input is computed at run time
 * or broadcasts (the decomposed form takes those). */
static milk_status norm_param(milk_cv *c, int i, const milk_tensor_type *want,
                              const char *what, milk_var **out, bool *ok)
{
    milk_tensor_type t;
    *out = NULL;
    if (!milk_cv_has(c, i)) return MILK_OK;
    MILK_TRY(milk_cv_type(c, i, &t));
    if (!milk_cv_is_const(c, i) ||
        milk_tensor_type_count(&t) != milk_tensor_type_count(want)) {
        *ok = false;
        return MILK_OK;
    }
    MILK_TRY(milk_cv_input(c, i, out));
    bool same = t.rank == want->rank;
    for (int k = 0; same && k < want->rank; k++) same = t.dims[k] == want->dims[k];
    if (same) return MILK_OK;
    return milk_cv_reshape(c, milk_cv_tmp(c, what), *out, want->rank, want->dims, out);
}

/* The ONNX formula, op by op: for the Mean and InvStdDev outputs, and for
 * a scale or bias computed at run time or broadcast. */
static milk_status layer_norm_decomposed(milk_cv *c, milk_var *x,
                                         const int64_t *axes, int n, double eps,
                                         milk_var **out)
{
    milk_var *mean, *d, *inv, *g, *b, *y;
    MILK_TRY(milk_lw_moments(c, x, axes, n, eps,
                             milk_cv_has_out(c, 1) ? milk_cv_out(c, 1) : NULL,
                             milk_cv_has_out(c, 2) ? milk_cv_out(c, 2) : NULL,
                             &mean, &d, &inv));
    MILK_TRY(milk_cv_set_out(c, 1, mean));
    MILK_TRY(milk_cv_set_out(c, 2, inv));
    MILK_TRY(milk_cv_input_opt(c, 1, &g));
    MILK_TRY(milk_cv_input_opt(c, 2, &b));
    MILK_TRY(milk_lw_binary(c, "mul", g || b ? milk_cv_tmp(c, "normed") : milk_cv_out(c, 0),
                            d, inv, &y));
    if (g) MILK_TRY(milk_lw_binary(c, "mul", b ? milk_cv_tmp(c, "scaled") : milk_cv_out(c, 0),
                                   y, g, &y));
    if (b) MILK_TRY(milk_lw_binary(c, "add", milk_cv_out(c, 0), y, b, &y));
    *out = y;
    return MILK_OK;
}

milk_status milk_lower_layer_norm(milk_cv *c, const milk_onnx_node *n)
{
    milk_var *x, *gamma, *beta, *out;
    int64_t axis, axes[MILK_MAX_RANK];
    double eps;
    int a;
    MILK_TRY(milk_cv_input(c, 0, &x));
    MILK_TRY(milk_cv_attr_int(c, "axis", -1, &axis));
    MILK_TRY(milk_cv_attr_float(c, "epsilon", 1e-5, &eps));
    MILK_TRY(milk_cv_axis(c, "attribute 'axis':", axis, x->type.rank, &a));
    milk_tensor_type nt = {x->type.dtype, x->type.rank - a, {0}};
    for (int i = a; i < x->type.rank; i++) {
        axes[i - a] = i;
        nt.dims[i - a] = x->type.dims[i];
    }
    bool native = !milk_cv_has_out(c, 1) && !milk_cv_has_out(c, 2);
    if (native) MILK_TRY(norm_param(c, 1, &nt, "gamma", &gamma, &native));
    if (native) MILK_TRY(norm_param(c, 2, &nt, "beta", &beta, &native));
    if (!native) {
        MILK_TRY(layer_norm_decomposed(c, x, axes, nt.rank, eps, &out));
        return milk_cv_set_out(c, 0, out);
    }
    milk_cv_op o;
    milk_cv_op_begin(&o, c, "layer_norm", milk_cv_out(c, 0));
    milk_cv_arg(&o, "x", x);
    milk_cv_arg_ints(&o, "axes", axes, nt.rank);
    milk_cv_arg(&o, "gamma", gamma);
    milk_cv_arg(&o, "beta", beta);
    milk_cv_arg_float(&o, "epsilon", eps, milk_cv_float_dtype(x));
    MILK_TRY(milk_cv_op_end(&o, &out));
    return milk_cv_set_out(c, 0, out);
}

/* ---- pools --------------------------------------------------------------------------------- */

static milk_status pool_window(milk_cv *c, milk_var *x, window *w)
{
    int S;
    MILK_TRY(spatial_rank(c, x, &S));
    MILK_TRY(window_read(c, S, NULL, w));
    for (int i = 0; i < S; i++)
        if (w->d[i] != 1)
            return milk_cv_unsupported(c, "attribute 'dilations': only 1");
    return window_auto_pad(c, w, &x->type.dims[2]);
}

static bool symmetric(const window *w)
{
    for (int i = 0; i < w->S; i++)
        if (w->pads[i] != w->pads[w->S + i]) return false;
    return true;
}

static void pool_args(milk_cv_op *o, milk_var *x, const window *w,
                      bool custom, bool ceil_mode)
{
    int64_t pad[6] = {0};
    if (custom) mil_pads(w, pad);
    milk_cv_arg(o, "x", x);
    milk_cv_arg_ints(o, "kernel_sizes", w->k, w->S);
    milk_cv_arg_ints(o, "strides", w->s, w->S);
    milk_cv_arg_str(o, "pad_type", custom ? "custom" : "valid");
    milk_cv_arg_ints(o, "pad", pad, 2 * w->S);
    milk_cv_arg_bool(o, "ceil_mode", ceil_mode);
}

milk_status milk_lower_max_pool(milk_cv *c, const milk_onnx_node *n)
{
    milk_var *x, *out;
    window w;
    int64_t ceil_mode, order;
    if (milk_cv_has_out(c, 1)) return milk_cv_unsupported(c, "the Indices output");
    MILK_TRY(milk_cv_input(c, 0, &x));
    MILK_TRY(pool_window(c, x, &w));
    MILK_TRY(milk_cv_attr_int(c, "ceil_mode", 0, &ceil_mode));
    MILK_TRY(milk_cv_attr_int(c, "storage_order", 0, &order));
    if (order) return milk_cv_unsupported(c, "attribute 'storage_order': 1");
    if (ceil_mode && !symmetric(&w))
        return milk_cv_unsupported(c, "ceil_mode with asymmetric pads");
    milk_cv_op o;
    milk_cv_op_begin(&o, c, "max_pool", milk_cv_out(c, 0));
    pool_args(&o, x, &w, true, ceil_mode != 0);
    MILK_TRY(milk_cv_op_end(&o, &out));
    return milk_cv_set_out(c, 0, out);
}

/* count_include_pad with ceil_mode: PyTorch divides by the window clipped
 * to the padded input, MIL counts the ceil overflow as padding
 * (coreml-defects.md). Padding explicitly with zeros and excluding
 * padding (now only the overflow) from the count gives PyTorch's. */
static milk_status avg_pool_padded(milk_cv *c, milk_var *x, window *w,
                                   milk_var **out)
{
    int64_t pad[6];
    mil_pads(w, pad);
    milk_cv_op o;
    milk_cv_op_begin(&o, c, "pad", milk_cv_tmp(c, "pad"));
    milk_cv_arg(&o, "x", x);
    milk_cv_arg_ints(&o, "pad", pad, 2 * w->S);
    milk_cv_arg_str(&o, "mode", "constant");
    milk_cv_arg_float(&o, "constant_val", 0.0, milk_cv_float_dtype(x));
    MILK_TRY(milk_cv_op_end(&o, &x));
    milk_cv_op_begin(&o, c, "avg_pool", milk_cv_out(c, 0));
    pool_args(&o, x, w, false, true);
    milk_cv_arg_bool(&o, "exclude_padding_from_average", true);
    return milk_cv_op_end(&o, out);
}

milk_status milk_lower_avg_pool(milk_cv *c, const milk_onnx_node *n)
{
    milk_var *x, *out;
    window w;
    int64_t ceil_mode, include;
    MILK_TRY(milk_cv_input(c, 0, &x));
    MILK_TRY(pool_window(c, x, &w));
    MILK_TRY(milk_cv_attr_int(c, "ceil_mode", 0, &ceil_mode));
    MILK_TRY(milk_cv_attr_int(c, "count_include_pad", 0, &include));
    bool padded = false;
    for (int i = 0; i < 2 * w.S; i++) padded |= w.pads[i] > 0;
    if (include && padded && ceil_mode) {
        MILK_TRY(avg_pool_padded(c, x, &w, &out));
        return milk_cv_set_out(c, 0, out);
    }
    if (ceil_mode && !symmetric(&w))
        return milk_cv_unsupported(c, "ceil_mode with asymmetric pads");
    milk_cv_op o;
    milk_cv_op_begin(&o, c, "avg_pool", milk_cv_out(c, 0));
    pool_args(&o, x, &w, true, ceil_mode != 0);
    /* Without padding the flag only matters for the ceil overflow, which
     * neither PyTorch nor ONNX count. */
    milk_cv_arg_bool(&o, "exclude_padding_from_average", !(include && padded));
    MILK_TRY(milk_cv_op_end(&o, &out));
    return milk_cv_set_out(c, 0, out);
}

/* ---- reductions ------------------------------------------------------------------------------ */

static milk_status reduce_op(milk_cv *c, const char *type, milk_var *x,
                             const int64_t *axes, int n_axes, bool keep,
                             milk_var **out)
{
    milk_cv_op o;
    milk_cv_op_begin(&o, c, type, milk_cv_out(c, 0));
    milk_cv_arg(&o, "x", x);
    milk_cv_arg_ints(&o, "axes", axes, n_axes);
    milk_cv_arg_bool(&o, "keep_dims", keep);
    return milk_cv_op_end(&o, out);
}

milk_status milk_lower_global_pool(milk_cv *c, const milk_onnx_node *n)
{
    milk_var *x, *out;
    int64_t axes[MILK_MAX_RANK];
    int S;
    MILK_TRY(milk_cv_input(c, 0, &x));
    MILK_TRY(spatial_rank(c, x, &S));
    for (int i = 0; i < S; i++) axes[i] = 2 + i;
    bool avg = strcmp(n->op_type, "GlobalAveragePool") == 0;
    MILK_TRY(reduce_op(c, avg ? "reduce_mean" : "reduce_max", x, axes, S, true, &out));
    return milk_cv_set_out(c, 0, out);
}

static const char *const reduce_ops[][2] = {
    {"ReduceMean", "reduce_mean"},
    {"ReduceSum", "reduce_sum"},
    {"ReduceMax", "reduce_max"},
    {"ReduceMin", "reduce_min"},
    {"ReduceProd", "reduce_prod"},
    {"ReduceL1", "reduce_l1_norm"},
    {"ReduceL2", "reduce_l2_norm"},
    {"ReduceLogSum", "reduce_log_sum"},
    {"ReduceLogSumExp", "reduce_log_sum_exp"},
    {"ReduceSumSquare", "reduce_sum_square"},
};

milk_status milk_lower_reduce(milk_cv *c, const milk_onnx_node *n)
{
    const char *mil = NULL;
    for (size_t i = 0; i < MILK_ARRAY_LEN(reduce_ops); i++)
        if (strcmp(reduce_ops[i][0], n->op_type) == 0) mil = reduce_ops[i][1];
    milk_var *x, *out;
    int64_t axes[MILK_MAX_RANK], keep, noop;
    int na = -1;
    MILK_TRY(milk_cv_input(c, 0, &x));
    MILK_TRY(milk_cv_attr_int(c, "keepdims", 1, &keep));
    MILK_TRY(milk_cv_attr_int(c, "noop_with_empty_axes", 0, &noop));
    if (milk_cv_has(c, 1)) MILK_TRY(milk_cv_const_ints(c, 1, axes, MILK_MAX_RANK, &na));
    else MILK_TRY(milk_cv_attr_ints(c, "axes", axes, MILK_MAX_RANK, &na));
    if (na <= 0 && noop) return milk_cv_set_out(c, 0, x);
    if (na <= 0) { /* every axis */
        na = x->type.rank;
        for (int i = 0; i < na; i++) axes[i] = i;
    }
    MILK_TRY(reduce_op(c, mil, x, axes, na, keep != 0, &out));
    return milk_cv_set_out(c, 0, out);
}
