/* gemm.c: the shared pieces of the fast (OpenBLAS) kernels: a row-major
 * sgemm wrapper, and im2col / col2im over three spatial dimensions (see
 * gemm.h). */
#include "gemm.h"

#include <cblas.h>
#include <limits.h>
#include <string.h>

int64_t milk_geom_in3(const milk_conv_geom *g)
{
    return g->in[0] * g->in[1] * g->in[2];
}

int64_t milk_geom_out3(const milk_conv_geom *g)
{
    return g->out[0] * g->out[1] * g->out[2];
}

int64_t milk_geom_k3(const milk_conv_geom *g)
{
    return g->k[0] * g->k[1] * g->k[2];
}

milk_patch milk_patch_conv(const milk_conv_geom *g)
{
    milk_patch p;
    memcpy(p.grid, g->out, sizeof p.grid);
    memcpy(p.img, g->in, sizeof p.img);
    memcpy(p.k, g->k, sizeof p.k);
    memcpy(p.stride, g->stride, sizeof p.stride);
    memcpy(p.dil, g->dil, sizeof p.dil);
    memcpy(p.pad, g->pad, sizeof p.pad);
    return p;
}

milk_patch milk_patch_transpose(const milk_conv_geom *g)
{
    milk_patch p = milk_patch_conv(g);
    memcpy(p.grid, g->in, sizeof p.grid);
    memcpy(p.img, g->out, sizeof p.img);
    return p;
}

/* Floor division by a positive d, for negative a too. */
static int64_t floor_div(int64_t a, int64_t d)
{
    int64_t q = a / d;
    return (a % d != 0 && a < 0) ? q - 1 : q;
}

static int64_t clamp(int64_t v, int64_t lo, int64_t hi)
{
    return v < lo ? lo : v > hi ? hi : v;
}

/* One row of the column matrix: kernel tap kk of image channel `img`
 * (img3 elements) against columns [q0, q0 + nq). The columns are walked
 * one grid row (fixed d, h) at a time; within a row the w positions whose
 * image position falls inside the image form one interval [lo, hi), so
 * the hot loops carry no bounds checks. Gather fills col (0 outside the
 * image); scatter adds col into the image. */
static void patch_row(const milk_patch *p, const int64_t kk[3], float *img,
                      float *col, int64_t q0, int64_t nq, bool scatter)
{
    int64_t off[3];
    for (int i = 0; i < 3; i++) off[i] = kk[i] * p->dil[i] - p->pad[i];
    const int64_t s2 = p->stride[2], G1 = p->grid[1], G2 = p->grid[2];
    /* w inside the image: 0 <= w * s2 + off[2] < img[2] */
    const int64_t wlo = -floor_div(off[2], s2);
    const int64_t whi = floor_div(p->img[2] - 1 - off[2], s2) + 1;
    int64_t a = q0 / (G1 * G2), b = q0 / G2 % G1, w = q0 % G2;
    for (int64_t done = 0; done < nq;) {
        int64_t end = w + (G2 - w < nq - done ? G2 - w : nq - done);
        int64_t ia = a * p->stride[0] + off[0], ib = b * p->stride[1] + off[1];
        bool in_rows = ia >= 0 && ia < p->img[0] && ib >= 0 && ib < p->img[1];
        int64_t lo = in_rows ? clamp(wlo, w, end) : end;
        int64_t hi = in_rows ? clamp(whi, lo, end) : end;
        /* column j of this grid row is col[cj + j]; its image element
         * img[ib0 + j * s2] (valid for j in [lo, hi)) */
        const int64_t cj = done - w;
        const int64_t ib0 = (ia * p->img[1] + ib) * p->img[2] + off[2];
        if (scatter) {
            for (int64_t j = lo; j < hi; j++) img[ib0 + j * s2] += col[cj + j];
        } else {
            for (int64_t j = w; j < lo; j++) col[cj + j] = 0.0f;
            if (s2 == 1)
                for (int64_t j = lo; j < hi; j++) col[cj + j] = img[ib0 + j];
            else
                for (int64_t j = lo; j < hi; j++) col[cj + j] = img[ib0 + j * s2];
            for (int64_t j = hi; j < end; j++) col[cj + j] = 0.0f;
        }
        done += end - w;
        w = 0;
        if (++b == G1) {
            b = 0;
            a++;
        }
    }
}

/* Rows r = (c, kd, kh, kw) of the column matrix, in order. */
static void patch_walk(const milk_patch *p, float *img, int64_t nc,
                       int64_t q0, int64_t nq, float *col, bool scatter)
{
    const int64_t img3 = p->img[0] * p->img[1] * p->img[2];
    int64_t r = 0;
    for (int64_t c = 0; c < nc; c++)
        for (int64_t kd = 0; kd < p->k[0]; kd++)
            for (int64_t kh = 0; kh < p->k[1]; kh++)
                for (int64_t kw = 0; kw < p->k[2]; kw++, r++) {
                    const int64_t kk[3] = {kd, kh, kw};
                    patch_row(p, kk, img + c * img3, col + r * nq, q0, nq,
                              scatter);
                }
}

void milk_im2col(const milk_patch *p, const float *img, int64_t nc,
                 int64_t q0, int64_t nq, float *col)
{
    /* gather only reads img */
    patch_walk(p, (float *)img, nc, q0, nq, col, false);
}

void milk_col2im_add(const milk_patch *p, const float *col, int64_t nc,
                     int64_t q0, int64_t nq, float *img)
{
    /* scatter only reads col */
    patch_walk(p, img, nc, q0, nq, (float *)col, true);
}

bool milk_gemm_ok(const int64_t *v, int n)
{
    for (int i = 0; i < n; i++)
        if (v[i] < 0 || v[i] > INT_MAX) return false;
    return true;
}

void milk_sgemm(bool ta, bool tb, int64_t M, int64_t N, int64_t K,
                float alpha, const float *A, int64_t lda, const float *B,
                int64_t ldb, float beta, float *C, int64_t ldc)
{
    if (M <= 0 || N <= 0) return;
    if (K <= 0) {
        /* an empty sum: C = beta * C (BLAS would not be called) */
        for (int64_t m = 0; m < M; m++)
            for (int64_t n = 0; n < N; n++)
                C[m * ldc + n] = beta == 0 ? 0.0f : beta * C[m * ldc + n];
        return;
    }
    cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans,
                tb ? CblasTrans : CblasNoTrans, (int)M, (int)N, (int)K, alpha,
                A, (int)lda, B, (int)ldb, beta, C, (int)ldc);
}
