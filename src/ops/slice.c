/* slice.c: slice_by_index, Python-style strided slicing with masks, and
 * slice_by_size, after coremltools' ops/defs/iOS15 and iOS17
 * tensor_transformation.py and the shape solver solve_slice_by_index_shape
 * in ops/defs/_utils.py. The output sizes follow that solver exactly,
 * quirks included, because coremltools writes its results into every
 * package as the declared output types; the kernel walks exactly the
 * elements those sizes promise. */
#include "layout.h"

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

/* The type slice_by_index gives x: rank and dims into *rank and dims
 * (slice_update checks its update against it). */
static milk_status slice_shape(milk_infer *ic, const milk_tensor_type **xo,
                               int *rank, int64_t *dims)
{
    static const char *const bes[] = {"begin", "end", "stride", NULL};
    uint64_t idt = ic->opset >= MILK_TARGET_IOS17 ? MILK_DT_INT8_16_32
                                                   : MILK_DT_INT32;
    const milk_tensor_type *x;
    int64_t b[MILK_MAX_RANK], e[MILK_MAX_RANK], s[MILK_MAX_RANK];
    bool bk, ek, bm[MILK_MAX_RANK], em[MILK_MAX_RANK], sq[MILK_MAX_RANK];
    MILK_TRY(milk_infer_tensor(ic, "x", milk_dt_layout(ic->opset), 1, -1, &x));
    *xo = x;
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
    *rank = r;
    return MILK_OK;
}

static milk_status slice_infer(milk_infer *ic)
{
    const milk_tensor_type *x;
    int64_t dims[MILK_MAX_RANK];
    int r;
    MILK_TRY(slice_shape(ic, &x, &r, dims));
    return milk_infer_one(ic, x->dtype, r, dims);
}


/* ---- slice_by_index kernel ------------------------------------------- */

/* One dim of a slice as the kernel walks it. */
typedef struct slice_walk {
    int64_t start, step, count;
} slice_walk;

/* A constant bool vector param of n entries (all false if absent). */
static milk_status eval_bools(milk_eval *ec, const char *param, int n,
                              bool *v)
{
    const milk_value *c = milk_op_const(ec->op, param);
    for (int i = 0; i < n; i++) {
        int64_t x = 0;
        if (c && i < milk_tensor_type_count(&c->type))
            MILK_TRY(milk_value_get_i64(ec->ctx, c, i, &x));
        v[i] = x != 0;
    }
    return MILK_OK;
}

/* Where a squeezed dim's single element lies: begin (0 with begin_mask),
 * counted from the end if negative, and inside the dim. */
static milk_status squeeze_walk(milk_eval *ec, int i, int64_t d, int64_t b,
                                bool bm, slice_walk *w)
{
    int64_t at = bm ? 0 : b < 0 ? b + d : b;
    if (at < 0 || at >= d)
        return milk_op_fail(ec->ctx, ec->op, "begin",
                            "dim %d: index %lld is outside a dim of %lld", i,
                            (long long)b, (long long)d);
    *w = (slice_walk){at, 1, 1};
    return MILK_OK;
}

/* Start and count of one unsqueezed dim, with the normalization of the
 * type inference above (negative indices count from the end and clamp at
 * 0), so that the kernel visits exactly the elements the inferred size
 * promises. */
static void range_walk(int64_t d, int64_t b, int64_t e, int64_t s, bool bm,
                       bool em, slice_walk *w)
{
    int64_t as = s < 0 ? -s : s;
    if (b < 0) b = b + d > 0 ? b + d : 0;
    if (e < 0) e = e + d > 0 ? e + d : 0;
    int64_t from, to;
    if (s > 0) {
        from = bm ? 0 : b;
        to = em ? d : e < d ? e : d;
    } else { /* walks down from `from` to just above `to` */
        from = bm ? d - 1 : b < d - 1 ? b : d - 1;
        to = em ? -1 : e;
    }
    int64_t len = s > 0 ? to - from : from - to;
    *w = (slice_walk){from, s, len > 0 ? (len + as - 1) / as : 0};
}

/* The walk of every dim of x (squeezed dims walk one element); the
 * unsqueezed dims must visit as many elements as `want` (the output's
 * dims; slice_update's update's) says. */
static milk_status slice_walks(milk_eval *ec, const milk_rt *x,
                               const int64_t *want_dims, slice_walk *w)
{
    int r = x->type.rank, nb, ne, ns, k = 0;
    int64_t b[MILK_MAX_RANK], e[MILK_MAX_RANK], s[MILK_MAX_RANK];
    bool bm[MILK_MAX_RANK], em[MILK_MAX_RANK], sq[MILK_MAX_RANK], has_s;
    MILK_TRY(milk_eval_ints(ec, "begin", b, MILK_MAX_RANK, &nb, NULL));
    MILK_TRY(milk_eval_ints(ec, "end", e, MILK_MAX_RANK, &ne, NULL));
    MILK_TRY(milk_op_ints(ec->ctx, ec->op, "stride", s, MILK_MAX_RANK, &ns,
                          &has_s));
    if (nb != r || ne != r)
        return milk_op_fail(ec->ctx, ec->op, nb != r ? "begin" : "end",
                            "%d entries for x of rank %d", nb != r ? nb : ne,
                            r);
    for (int i = 0; !has_s && i < r; i++) s[i] = 1;
    MILK_TRY(eval_bools(ec, "begin_mask", r, bm));
    MILK_TRY(eval_bools(ec, "end_mask", r, em));
    MILK_TRY(eval_bools(ec, "squeeze_mask", r, sq));
    for (int i = 0; i < r; i++) {
        int64_t d = x->type.dims[i];
        if (sq[i]) {
            MILK_TRY(squeeze_walk(ec, i, d, b[i], bm[i], &w[i]));
            continue;
        }
        int64_t want = want_dims[k++];
        range_walk(d, b[i], e[i], s[i], bm[i], em[i], &w[i]);
        /* type inference gives any slice of a size-1 dim size 1 */
        if (w[i].count != want && d == 1 && want == 1)
            w[i] = (slice_walk){0, 1, 1};
        if (w[i].count != want)
            return milk_op_fail(ec->ctx, ec->op, "end",
                                "dim %d: the slice visits %lld elements, "
                                "its inferred size is %lld",
                                i, (long long)w[i].count, (long long)want);
    }
    return MILK_OK;
}

/* out[i_0, ...] = x[start_0 + i_0 * step_0, ...] over x's dims (squeezed
 * dims walk their single element). */
static milk_status slice_eval(milk_eval *ec)
{
    const milk_rt *x = milk_eval_in(ec, "x");
    milk_rt *o = &ec->out[0];
    int r = x->type.rank;
    slice_walk w[MILK_MAX_RANK];
    int64_t xs[MILK_MAX_RANK], counts[MILK_MAX_RANK];
    int64_t idx[MILK_MAX_RANK] = {0};
    MILK_TRY(slice_walks(ec, x, o->type.dims, w));
    milk_strides(&x->type, xs);
    for (int d = 0; d < r; d++) counts[d] = w[d].count;
    /* out: [counts of the unsqueezed dims], row-major */
    for (int64_t i = 0; i < o->count; i++) {
        int64_t src = 0;
        for (int d = 0; d < r; d++)
            src += (w[d].start + idx[d] * w[d].step) * xs[d];
        milk_layout_copy(o, i, x, src);
        milk_layout_next(r, counts, idx);
    }
    return MILK_OK;
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
 *                      the element at begin, counted from the end if
 *                      negative, or at 0 with begin_mask; outside the dim
 *                      it fails at run time naming the op)
 * Output: per kept dim, the number of indices the slice visits, computed
 * as coremltools does: negative indices count from the end and clamp at
 * 0; a size-1 dim always gives 1; run-time bounds give unknown sizes
 * unless masks or begin/end alone fix them. The kernel walks from begin
 * (normalized the same way; for a negative stride at most the last index)
 * by stride, that many elements: so x[3:-10:-1] on a dim of 5 stops
 * before index 0 (as x[3:0:-1]), where Python would include it. */
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
    .eval = slice_eval,
};

/* ---- slice_by_size ---------------------------------------------------- */

/* Output size of one dim: size, or with size -1 the rest of the dim after
 * begin (negative begin counts from the end); unknown when it depends on
 * what is not known. Known begin and size must stay inside the dim. */
static milk_status size_dim(milk_infer *ic, int i, int64_t d, bool bk,
                            int64_t b, int64_t s, int64_t *out)
{
    if (s < -1)
        return milk_op_fail(ic->ctx, ic->op, "size",
                            "entry %d is %lld: sizes are >= 0 or -1", i,
                            (long long)s);
    if (!bk || !MILK_DIM_KNOWN(d)) {
        *out = s >= 0 ? s : MILK_DIM_UNKNOWN;
        return MILK_OK;
    }
    int64_t at = b < 0 ? b + d : b;
    *out = s >= 0 ? s : d - at;
    if (at < 0 || at > d || *out > d - at)
        return milk_op_fail(ic->ctx, ic->op, "begin",
                            "dim %d: begin %lld and size %lld leave a dim "
                            "of %lld",
                            i, (long long)b, (long long)s, (long long)d);
    return MILK_OK;
}

static milk_status slice_by_size_infer(milk_infer *ic)
{
    static const char *const bs[] = {"begin", "size", NULL};
    uint64_t idt = ic->opset >= MILK_TARGET_IOS17 ? MILK_DT_INT8_16_32
                                                   : MILK_DT_INT32;
    const milk_tensor_type *x;
    int64_t b[MILK_MAX_RANK], s[MILK_MAX_RANK], dims[MILK_MAX_RANK];
    bool bk, sk;
    MILK_TRY(milk_infer_tensor(ic, "x", milk_dt_layout(ic->opset), 1, -1, &x));
    MILK_TRY(milk_infer_domain(ic, bs, idt));
    MILK_TRY(slice_bounds(ic, "begin", idt, x->rank, b, &bk));
    MILK_TRY(slice_bounds(ic, "size", idt, x->rank, s, &sk));
    for (int i = 0; i < x->rank; i++) {
        if (!sk) {
            dims[i] = MILK_DIM_UNKNOWN;
            continue;
        }
        MILK_TRY(size_dim(ic, i, x->dims[i], bk, bk ? b[i] : 0, s[i],
                          &dims[i]));
    }
    return milk_infer_one(ic, x->dtype, x->rank, dims);
}

/* out[i_0, ...] = x[begin_0 + i_0, ...], begin counted from the end if
 * negative. */
static milk_status slice_by_size_eval(milk_eval *ec)
{
    const milk_rt *x = milk_eval_in(ec, "x");
    milk_rt *o = &ec->out[0];
    int r = x->type.rank, nb;
    int64_t b[MILK_MAX_RANK], xs[MILK_MAX_RANK], idx[MILK_MAX_RANK] = {0};
    MILK_TRY(milk_eval_ints(ec, "begin", b, MILK_MAX_RANK, &nb, NULL));
    if (nb != r)
        return milk_op_fail(ec->ctx, ec->op, "begin",
                            "%d entries for x of rank %d", nb, r);
    for (int d = 0; d < r; d++) {
        int64_t dim = x->type.dims[d];
        if (b[d] < 0) b[d] += dim;
        if (b[d] < 0 || b[d] + o->type.dims[d] > dim)
            return milk_op_fail(ec->ctx, ec->op, "begin",
                                "dim %d: begin %lld and size %lld leave a "
                                "dim of %lld",
                                d, (long long)b[d],
                                (long long)o->type.dims[d], (long long)dim);
    }
    milk_strides(&x->type, xs);
    /* out: [size_0, ..., size_{r-1}], row-major */
    for (int64_t i = 0; i < o->count; i++) {
        int64_t src = 0;
        for (int d = 0; d < r; d++) src += (b[d] + idx[d]) * xs[d];
        milk_layout_copy(o, i, x, src);
        milk_layout_next(r, o->type.dims, idx);
    }
    return MILK_OK;
}

/* slice_by_size: the block of x starting at begin.
 *   x      R  rank >= 1, layout dtypes
 *   begin  R  int32 [rank] (iOS17: int8/int16/int32, shared with size),
 *             may be a run-time value; negative entries count from the
 *             end
 *   size   R  as begin; entries >= 0, or -1 for the rest of the dim
 * Output: per dim, size (or dim - begin for -1); unknown for a run-time
 * size, or for -1 with a run-time begin. The block must lie inside x. */
static const milk_param slice_by_size_params[] = {
    {"x", MILK_P_REQ, 0},
    {"begin", MILK_P_REQ, 0},
    {"size", MILK_P_REQ, 0},
    {0},
};

const milk_op_info milk_op_slice_by_size = {
    .name = "slice_by_size",
    .params = slice_by_size_params,
    .min_opset = MILK_TARGET_IOS15,
    .infer = slice_by_size_infer,
    .eval = slice_by_size_eval,
};

/* ---- slice_update (iOS18) --------------------------------------------- */

static milk_status slice_update_infer(milk_infer *ic)
{
    static const char *const xu[] = {"x", "update", NULL};
    const milk_tensor_type *x, *u;
    int64_t dims[MILK_MAX_RANK];
    int r;
    MILK_TRY(slice_shape(ic, &x, &r, dims));
    MILK_TRY(milk_infer_tensor(ic, "update", milk_dt_layout(ic->opset), 0, -1, &u));
    MILK_TRY(milk_infer_domain(ic, xu, milk_dt_layout(ic->opset)));
    if (u->rank == 0)
        return milk_op_fail(ic->ctx, ic->op, "update",
                            "a rank-0 update is not supported (as in "
                            "coremltools)");
    bool same = u->rank == r;
    for (int i = 0; same && i < r; i++)
        same = !MILK_DIM_KNOWN(dims[i]) || !MILK_DIM_KNOWN(u->dims[i]) ||
               dims[i] == u->dims[i];
    if (!same) {
        milk_tensor_type want = {x->dtype, r, {0}};
        memcpy(want.dims, dims, (size_t)r * sizeof *dims);
        char a[160], b[160];
        return milk_op_fail(ic->ctx, ic->op, "update",
                            "is %s, the slice of x is %s",
                            milk_type_str(u, a, sizeof a),
                            milk_type_str(&want, b, sizeof b));
    }
    return milk_infer_one(ic, x->dtype, x->rank, x->dims);
}

/* out = x, then out[slice] = update, walking the slice as slice_by_index
 * does and update in row-major order. */
static milk_status slice_update_eval(milk_eval *ec)
{
    const milk_rt *x = milk_eval_in(ec, "x"), *u = milk_eval_in(ec, "update");
    milk_rt *o = &ec->out[0];
    int r = x->type.rank;
    slice_walk w[MILK_MAX_RANK];
    int64_t xs[MILK_MAX_RANK], counts[MILK_MAX_RANK], idx[MILK_MAX_RANK] = {0};
    if (o->count) memcpy(o->data, x->data, (size_t)o->count * milk_layout_esz(o));
    MILK_TRY(slice_walks(ec, x, u->type.dims, w));
    milk_strides(&x->type, xs);
    for (int d = 0; d < r; d++) counts[d] = w[d].count;
    for (int64_t i = 0; i < u->count; i++) {
        int64_t dst = 0;
        for (int d = 0; d < r; d++)
            dst += (w[d].start + idx[d] * w[d].step) * xs[d];
        milk_layout_copy(o, dst, u, i);
        milk_layout_next(r, counts, idx);
    }
    return MILK_OK;
}

/* slice_update: x with the slice x[begin:end:stride] replaced by update
 * (coremltools ops/defs/iOS18/tensor_transformation.py).
 *   x             R    rank >= 1: fp16, fp32, int8, int16, int32, uint8,
 *                      uint16, bool
 *   update        R    x's dtype, the shape slice_by_index would give
 *                      (rank >= 1)
 *   begin, end    R    int8/int16/int32 [rank], may be run-time values
 *   stride, begin_mask, end_mask, squeeze_mask  O C  as slice_by_index
 * Output: x's type. Writing a KV cache at a run-time position is
 * read_state, slice_update, write_state. */
static const milk_param slice_update_params[] = {
    {"x", MILK_P_REQ, 0},
    {"update", MILK_P_REQ, 0},
    {"begin", MILK_P_REQ, 0},
    {"end", MILK_P_REQ, 0},
    {"stride", MILK_P_CONST, 0},
    {"begin_mask", MILK_P_CONST, 0},
    {"end_mask", MILK_P_CONST, 0},
    {"squeeze_mask", MILK_P_CONST, 0},
    {0},
};

const milk_op_info milk_op_slice_update = {
    .name = "slice_update",
    .params = slice_update_params,
    .min_opset = MILK_TARGET_IOS18,
    .infer = slice_update_infer,
    .eval = slice_update_eval,
};
