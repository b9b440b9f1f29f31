/* slice.c: slice_by_index, Python-style strided slicing with masks, after
 * coremltools' ops/defs/iOS15/tensor_transformation.py and the shape
 * solver solve_slice_by_index_shape in ops/defs/_utils.py. The output
 * sizes follow that solver exactly, quirks included, because coremltools
 * writes its results into every package as the declared output types. */
#include "infer.h"

/* One dim's slice: begin/end known (constant) or not, and the masks. */
typedef struct slice_dim {
    int64_t dim;
    bool b_known, e_known, b_mask, e_mask;
    int64_t b, e, s;
} slice_dim;

static int64_t ceil_div_pos(int64_t a, int64_t d)
{
    return a <= 0 ? 0 : a / d + (a % d != 0);
}

/* Sizes that do not depend on the dim's length; -1 if none applies. */
static milk_status slice_fixed(milk_infer *ic, int i, const slice_dim *d,
                               int64_t *out)
{
    *out = -1;
    if (!d->b_mask && !d->e_mask && d->b_known && d->e_known) {
        if (d->b >= 0 && d->e >= 0 && d->s > 0) {
            if (d->e < d->b) goto bad;
            *out = ceil_div_pos(d->e - d->b, d->s);
        }
        if (d->b < 0 && d->e < 0 && d->s < 0) {
            if (d->b < d->e) goto bad;
            *out = ceil_div_pos(d->b - d->e, -d->s);
        }
        if (*out > 1) *out = -1;
        return MILK_OK;
    }
    if (!d->b_mask && d->e_mask && d->b_known &&
        ((d->b == 0 && d->s < 0) || (d->b == -1 && d->s > 0)))
        *out = 1;
    return MILK_OK;
bad:
    return milk_op_fail(ic->ctx, ic->op, "end",
                        "dim %d: begin %lld, end %lld, stride %lld are not "
                        "supported",
                        i, (long long)d->b, (long long)d->e, (long long)d->s);
}

/* The size of one sliced dim (not squeezed). */
static milk_status slice_size(milk_infer *ic, int i, slice_dim d,
                              int64_t *out)
{
    int64_t as = d.s < 0 ? -d.s : d.s;
    if (d.b_mask && d.e_mask) {
        *out = MILK_DIM_KNOWN(d.dim) ? ceil_div_pos(d.dim, as)
               : as == 1 ? d.dim : MILK_DIM_UNKNOWN;
        return MILK_OK;
    }
    MILK_TRY(slice_fixed(ic, i, &d, out));
    if (*out >= 0) return MILK_OK;
    /* coremltools gives 1 for any slice of a size-1 dim */
    if (!MILK_DIM_KNOWN(d.dim) || d.dim == 1 || (!d.b_known && !d.b_mask) ||
        (!d.e_known && !d.e_mask)) {
        *out = MILK_DIM_KNOWN(d.dim) && d.dim == 1 ? 1 : MILK_DIM_UNKNOWN;
        return MILK_OK;
    }
    /* negative indices count from the end and clamp at 0 (so a backward
     * slice cannot reach past index 0 without end_mask) */
    if (d.b < 0) d.b = d.b + d.dim > 0 ? d.b + d.dim : 0;
    if (d.e < 0) d.e = d.e + d.dim > 0 ? d.e + d.dim : 0;
    int64_t lo = d.s > 0 ? 0 : -1, hi = d.s > 0 ? d.dim : d.dim - 1;
    int64_t from = d.s > 0 ? d.b : d.e, to = d.s > 0 ? d.e : d.b;
    bool from_mask = d.s > 0 ? d.b_mask : d.e_mask;
    bool to_mask = d.s > 0 ? d.e_mask : d.b_mask;
    if (from_mask) from = lo;
    to = to_mask ? hi : (to < hi ? to : hi);
    *out = ceil_div_pos(to - from, as);
    return MILK_OK;
}

/* begin and end: int vectors of rank(x) entries; constants are read. */
static milk_status slice_bounds(milk_infer *ic, const char *param,
                                uint64_t dts, int rank, int64_t *v,
                                bool *known)
{
    const milk_tensor_type *t;
    int n;
    MILK_TRY(milk_infer_tensor(ic, param, dts, 1, 1, &t));
    if (MILK_DIM_KNOWN(t->dims[0]) && t->dims[0] != rank)
        return milk_op_fail(ic->ctx, ic->op, param,
                            "%lld entries for x of rank %d",
                            (long long)t->dims[0], rank);
    *known = milk_infer_is_const(ic, param);
    if (*known) MILK_TRY(milk_infer_ints(ic, param, dts, v, rank, &n, NULL));
    return MILK_OK;
}

static milk_status slice_infer(milk_infer *ic)
{
    static const char *const bes[] = {"begin", "end", "stride", NULL};
    uint64_t idt = ic->opset >= MILK_TARGET_IOS17 ? MILK_DT_INT8_16_32
                                                   : MILK_DT_INT32;
    const milk_tensor_type *x;
    int64_t b[MILK_MAX_RANK], e[MILK_MAX_RANK], s[MILK_MAX_RANK];
    int64_t dims[MILK_MAX_RANK];
    bool bk, ek, bm[MILK_MAX_RANK], em[MILK_MAX_RANK], sq[MILK_MAX_RANK];
    MILK_TRY(milk_infer_tensor(ic, "x", milk_dt_layout(ic->opset), 1, -1, &x));
    MILK_TRY(milk_infer_domain(ic, bes, idt));
    MILK_TRY(slice_bounds(ic, "begin", idt, x->rank, b, &bk));
    MILK_TRY(slice_bounds(ic, "end", idt, x->rank, e, &ek));
    MILK_TRY(milk_infer_ints_n(ic, "stride", idt, x->rank, 1, s, NULL));
    MILK_TRY(milk_infer_bools_n(ic, "begin_mask", x->rank, bm, NULL));
    MILK_TRY(milk_infer_bools_n(ic, "end_mask", x->rank, em, NULL));
    MILK_TRY(milk_infer_bools_n(ic, "squeeze_mask", x->rank, sq, NULL));
    int r = 0;
    for (int i = 0; i < x->rank; i++) {
        if (s[i] == 0)
            return milk_op_fail(ic->ctx, ic->op, "stride", "0 at dim %d", i);
        if (sq[i]) continue;
        slice_dim d = {x->dims[i], bk, ek, bm[i], em[i],
                       bk ? b[i] : 0, ek ? e[i] : 0, s[i]};
        MILK_TRY(slice_size(ic, i, d, &dims[r++]));
    }
    return milk_infer_one(ic, x->dtype, r, dims);
}

/* slice_by_index: x[begin:end:stride] per dim, Python style.
 *   x             R    rank >= 1, layout dtypes
 *   begin         R    int32 [rank] (iOS17: int8/int16/int32, shared with
 *                      end and stride), may be a run-time value
 *   end           R    as begin
 *   stride        O C  [rank], default 1s; no 0
 *   begin_mask    O C  bool [rank], default false: begin at the start
 *                      (the end for a negative stride)
 *   end_mask      O C  bool [rank], default false: run to the end
 *   squeeze_mask  O C  bool [rank], default false: drop the dim (taking
 *                      the element at begin)
 * Output: per kept dim, the number of indices the slice visits, computed
 * as coremltools does: negative indices count from the end and clamp at
 * 0; a size-1 dim always gives 1; run-time bounds give unknown sizes
 * unless masks or begin/end alone fix them. */
static const milk_param slice_params[] = {
    {"x", MILK_P_REQ, 0},
    {"begin", MILK_P_REQ, 0},
    {"end", MILK_P_REQ, 0},
    {"stride", MILK_P_CONST, 0},
    {"begin_mask", MILK_P_CONST, 0},
    {"end_mask", MILK_P_CONST, 0},
    {"squeeze_mask", MILK_P_CONST, 0},
    {0},
};

const milk_op_info milk_op_slice_by_index = {
    .name = "slice_by_index",
    .params = slice_params,
    .min_opset = MILK_TARGET_IOS15,
    .infer = slice_infer,
};
