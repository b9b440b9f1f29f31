/*
 * infer.h: helpers shared by the type inference of the op files (beyond the
 * argument readers of op.h): coremltools' type domains, rank checks, exact
 * length parameter vectors, and the output size of sliding-window ops.
 *
 * coremltools declares each input with a "type domain": inputs of the same
 * domain must share one dtype, drawn from the domain's set. Many ops have a
 * domain T for x and, from iOS17 on, a separate domain U for weights and
 * scalar parameters (before iOS17 those belong to T, so they must match x).
 */
#ifndef MILK_OPS_INFER_H
#define MILK_OPS_INFER_H

#include "op.h"

#define MILK_DT_INT32 MILK_DT(MILK_DTYPE_INT32)
#define MILK_DT_BOOL MILK_DT(MILK_DTYPE_BOOL)
/* The small integer dtypes iOS17 admits in layout ops. */
#define MILK_DT_SMALL_INT                                                   \
    (MILK_DT(MILK_DTYPE_INT8) | MILK_DT(MILK_DTYPE_UINT8) |                 \
     MILK_DT(MILK_DTYPE_INT16) | MILK_DT(MILK_DTYPE_UINT16))
#define MILK_DT_INT8_16_32                                                  \
    (MILK_DT(MILK_DTYPE_INT8) | MILK_DT(MILK_DTYPE_INT16) | MILK_DT_INT32)

/* milk_dtype_name, or "?" for a code without a name (for messages). */
static inline const char *milk_infer_dtype_name(milk_dtype d)
{
    const char *s = milk_dtype_name(d);
    return s ? s : "?";
}

/* A dimension is known when >= 0 (MILK_DIM_UNKNOWN is -1). */
#define MILK_DIM_KNOWN(d) ((d) >= 0)

/* Element dtypes of the layout ops (reshape, transpose, expand_dims,
 * squeeze, slice_by_index, concat): fp16, fp32, int32, bool; from iOS17
 * also int8, uint8, int16, uint16. */
uint64_t milk_dt_layout(milk_target opset);

/* The type bound to `param`, whose dtype must be in `dtypes` and whose rank
 * must be known and within [lo, hi] (hi < 0: no upper bound). */
milk_status milk_infer_tensor(milk_infer *ic, const char *param,
                              uint64_t dtypes, int lo, int hi,
                              const milk_tensor_type **out);

/* A type domain: the bound params among `params` (NULL-terminated) share one
 * dtype, which is in `mask`. */
milk_status milk_infer_domain(milk_infer *ic, const char *const *params,
                              uint64_t mask);

/* Weights and scalar parameters of an op on x: before iOS17 each bound one
 * has x's dtype; from iOS17 on they share one dtype of `mask`, which may
 * differ from x's. */
milk_status milk_infer_params_dtype(milk_infer *ic, const char *x,
                                    const char *const *params, uint64_t mask);

/* Fail if param is bound to a non-constant while the opset is before
 * `since` (params that coremltools declares const only in early opsets). */
milk_status milk_infer_const_before(milk_infer *ic, const char *param,
                                    milk_target since);

/* True if param is bound to a compile-time constant (a const, or the
 * output of a constexpr op). */
bool milk_infer_is_const(const milk_infer *ic, const char *param);

/* A constant integer vector (or scalar) param whose dtype is in `mask`:
 * up to `max` values into v, their number in *n. Absent: *n = 0 and
 * *present (if non-NULL) false. */
milk_status milk_infer_ints(milk_infer *ic, const char *param, uint64_t mask,
                            int64_t *v, int max, int *n, bool *present);
/* As milk_infer_ints, but exactly n values; absent: n copies of dflt. */
milk_status milk_infer_ints_n(milk_infer *ic, const char *param,
                              uint64_t mask, int n, int64_t dflt, int64_t *v,
                              bool *present);
/* A constant integer scalar param whose dtype is in `mask`. */
milk_status milk_infer_int(milk_infer *ic, const char *param, uint64_t mask,
                           int64_t dflt, int64_t *v);
/* A constant bool vector of exactly n values; absent: all false. */
milk_status milk_infer_bools_n(milk_infer *ic, const char *param, int n,
                               bool *v, bool *present);

/* Normalize `axis` into [0, rank) and fail naming param otherwise. */
milk_status milk_infer_axis(milk_infer *ic, const char *param, int64_t axis,
                            int rank, int *out);

/* Set one output of dtype dt and the given shape. */
milk_status milk_infer_one(milk_infer *ic, milk_dtype dt, int rank,
                           const int64_t *dims);

/* ---- sliding windows (window.c) ------------------------------------- */

/* Pad types of conv and pooling. */
typedef enum milk_pad_type {
    MILK_PAD_VALID,
    MILK_PAD_SAME,
    MILK_PAD_SAME_LOWER,
    MILK_PAD_CUSTOM,
} milk_pad_type;

/* Parse a pad_type string; fail naming param for anything else, and for
 * same_lower before iOS16. `ci` compares case-insensitively (pooling
 * lower-cases pad_type, conv does not). */
milk_status milk_infer_pad_type(milk_infer *ic, const char *param,
                                const char *s, bool ci, milk_pad_type *out);

/* One spatial dimension of a window op. */
typedef struct milk_window {
    int64_t in;       /* input size, or MILK_DIM_UNKNOWN */
    int64_t kernel;   /* kernel size, or MILK_DIM_UNKNOWN (dynamic weight) */
    int64_t stride;
    int64_t dilation;
    int64_t pad[2];   /* before, after: used for MILK_PAD_CUSTOM */
} milk_window;

/* Output size of a conv or pool window as coremltools computes it
 * (_utils.spatial_dimensions_out_shape): effective kernel
 * (k - 1) * dilation + 1; same pads max(0, (ceil(in/s) - 1) * s + keff -
 * in) in total; out = floor((in + pad - keff) / s) + 1, or with ceil_mode
 * floor((in + pad - keff + s - 1) / s) + 1, minus one if the last window
 * starts at or beyond in + pad/2 and pad > 0. Unknown in or kernel give an
 * unknown size; an output below 1 fails naming dimension `i`. */
milk_status milk_window_out(milk_infer *ic, milk_pad_type pt,
                            const milk_window *w, bool ceil_mode, int i,
                            int64_t *out);

/* Output size of conv_transpose along one dimension (no output_shape):
 * valid (in - 1) * s + keff; custom that minus both pads; same in * s. */
milk_status milk_window_transpose_out(milk_infer *ic, milk_pad_type pt,
                                      const milk_window *w, int i,
                                      int64_t *out);

/* The padding before and after one dimension as the kernels place it:
 * custom w->pad; same and same_lower split the total of milk_window_out,
 * the odd element after (same) or before (same_lower); valid none. False
 * if the sizes overflow. */
bool milk_window_pads(milk_pad_type pt, const milk_window *w, int64_t *before,
                      int64_t *after);

#endif /* MILK_OPS_INFER_H */
