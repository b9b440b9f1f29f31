/*
 * gemm.h: helpers the fast kernels of conv, conv_transpose, linear, matmul
 * and scaled_dot_product_attention share: a row-major sgemm wrapper over
 * OpenBLAS, and the patch walks that turn a convolution into a matrix
 * product (im2col for conv, col2im for conv_transpose).
 *
 * Convolutions are described over three spatial dimensions: a 1-D or 2-D
 * convolution is a 3-D one whose leading spatial dims have size 1, kernel
 * 1, stride 1, dilation 1 and no padding. Positions are flattened
 * row-major (d, h, w).
 */
#ifndef MILK_OPS_GEMM_H
#define MILK_OPS_GEMM_H

#include "../internal.h"

/* The geometry of one convolution, over 3 spatial dims (see above). For
 * conv, `in` is x's spatial size and `out` y's; for conv_transpose too
 * (x is the small side). pad is the padding before each dim: a position
 * q on the small side and kernel tap k meet the large side at
 * q * stride + k * dilation - pad. */
typedef struct milk_conv_geom {
    int64_t n, c_in, c_out, groups;
    int64_t in[3], k[3], out[3];
    int64_t stride[3], dil[3], pad[3];
} milk_conv_geom;

/* The geometry of a conv (transpose false) or conv_transpose bound in ec
 * (conv.c): x and weight as bound, y as typed; fails naming the op when
 * they disagree. */
struct milk_eval;
milk_status milk_conv_geom_of(struct milk_eval *ec, bool transpose,
                              milk_conv_geom *g);

/* Products of the three spatial sizes. */
int64_t milk_geom_in3(const milk_conv_geom *g);
int64_t milk_geom_out3(const milk_conv_geom *g);
int64_t milk_geom_k3(const milk_conv_geom *g);

/* The patch walk both directions use: the column matrix has one row per
 * (channel c, kd, kh, kw) for nc channels and one column per position q
 * in [q0, q0 + nq) of the `grid` (flattened); row r, column q touches
 * image position q * stride + k * dil - pad of the `img` grid. */
typedef struct milk_patch {
    int64_t grid[3], img[3], k[3], stride[3], dil[3], pad[3];
} milk_patch;

/* conv's patches: grid = output, img = input. */
milk_patch milk_patch_conv(const milk_conv_geom *g);
/* conv_transpose's patches: grid = input (x), img = output (y). */
milk_patch milk_patch_transpose(const milk_conv_geom *g);

/* im2col: col[r][q - q0] = img[c][position] (0 outside the image), for
 * the nc channels of img (each img3 elements) and columns [q0, q0 + nq);
 * col is [nc * k3, nq]. */
void milk_im2col(const milk_patch *p, const float *img, int64_t nc,
                 int64_t q0, int64_t nq, float *col);
/* col2im: img[c][position] += col[r][q - q0] for positions inside the
 * image; the inverse walk of milk_im2col. */
void milk_col2im_add(const milk_patch *p, const float *col, int64_t nc,
                     int64_t q0, int64_t nq, float *img);

/* Row-major C = alpha * op(A) * op(B) + beta * C with op(A) [M, K] and
 * op(B) [K, N]; ta / tb say A is stored as [K, M] / B as [N, K]. lda, ldb,
 * ldc are the row lengths as stored. Degenerate sizes are handled (K = 0
 * scales C by beta). Every size must fit milk_gemm_ok(). */
void milk_sgemm(bool ta, bool tb, int64_t M, int64_t N, int64_t K,
                float alpha, const float *A, int64_t lda, const float *B,
                int64_t ldb, float beta, float *C, int64_t ldc);
/* True if every value fits the BLAS integer type (int). */
bool milk_gemm_ok(const int64_t *v, int n);

/* Bytes of scratch a fast kernel may use for one column buffer: larger
 * problems are tiled over columns. */
#define MILK_GEMM_SCRATCH ((int64_t)32 << 20)

#endif /* MILK_OPS_GEMM_H */
