/* fill.c: the ops that make a new tensor from scalars: fill (a constant
 * of a given shape) and range_1d (an arithmetic sequence), after
 * coremltools' ops/defs/iOS15/tensor_operation.py. */
#include "layout.h"

#include <math.h>

/* ---- fill --------------------------------------------------------------- */

static milk_status fill_infer(milk_infer *ic)
{
    const milk_tensor_type *st, *vt = milk_op_in_type(ic->op, "value");
    int64_t dims[MILK_MAX_RANK];
    int n;
    MILK_TRY(milk_infer_tensor(ic, "shape", MILK_DT_INT32, 1, 1, &st));
    MILK_TRY(milk_op_check_dtype(ic->ctx, ic->op, "value",
                                 MILK_DT_NUM | MILK_DT_BOOL));
    if (vt && milk_tensor_type_count(vt) != 1)
        return milk_op_fail(ic->ctx, ic->op, "value", "expected a scalar");
    milk_dtype dt = vt ? vt->dtype : MILK_DTYPE_FP32; /* default 0.0 */
    if (!MILK_DIM_KNOWN(st->dims[0]) || st->dims[0] > MILK_MAX_RANK) {
        if (MILK_DIM_KNOWN(st->dims[0]))
            return milk_op_fail(ic->ctx, ic->op, "shape",
                                "%lld entries, more than rank %d",
                                (long long)st->dims[0], MILK_MAX_RANK);
        MILK_TRY(milk_infer_outputs(ic, 1));
        ic->out[0].dtype = dt;
        ic->out[0].rank = MILK_RANK_UNKNOWN;
        return MILK_OK;
    }
    n = (int)st->dims[0];
    for (int i = 0; i < n; i++) dims[i] = MILK_DIM_UNKNOWN;
    if (!milk_infer_is_const(ic, "shape")) return milk_infer_one(ic, dt, n, dims);
    MILK_TRY(milk_infer_ints(ic, "shape", MILK_DT_INT32, dims, MILK_MAX_RANK,
                             &n, NULL));
    /* every entry is a size: -1 here is not MILK_DIM_UNKNOWN */
    for (int i = 0; i < n; i++)
        if (dims[i] < 1)
            return milk_op_fail(ic->ctx, ic->op, "shape",
                                "entry %d is %lld: sizes are >= 1", i,
                                (long long)dims[i]);
    return milk_infer_one(ic, dt, n, dims);
}

/* Every element of out is the value (0 if absent), in out's storage. */
static milk_status fill_eval(milk_eval *ec)
{
    const milk_rt *v = milk_eval_in(ec, "value");
    milk_rt *o = &ec->out[0];
    for (int64_t i = 0; i < o->count; i++) {
        if (!v) memset((char *)o->data + (size_t)i * milk_layout_esz(o), 0,
                       milk_layout_esz(o));
        else milk_layout_copy(o, i, v, 0);
    }
    return MILK_OK;
}

/* fill: a tensor of one value.
 *   shape  R    int32 [K], sizes >= 1; may be a run-time value (then the K
 *               dims are unknown)
 *   value  O C  scalar fp16/fp32/int32/bool, default 0.0 (fp32)
 * Output: value's dtype, the given shape. */
static const milk_param fill_params[] = {
    {"shape", MILK_P_REQ, 0},
    {"value", MILK_P_CONST, 0},
    {0},
};

const milk_op_info milk_op_fill = {
    .name = "fill",
    .params = fill_params,
    .min_opset = MILK_TARGET_IOS15,
    .infer = fill_infer,
    .eval = fill_eval,
};

/* ---- range_1d ----------------------------------------------------------- */

/* max(0, ceil((end - start) / step)), computed in double as coremltools
 * does; step 0 fails. */
static milk_status range_count(milk_ctx *ctx, const milk_op *op, double start,
                               double end, double step, int64_t *n)
{
    if (step == 0 || !isfinite(start) || !isfinite(end) || !isfinite(step))
        return milk_op_fail(ctx, op, "step",
                            "start %g, end %g, step %g: no finite sequence",
                            start, end, step);
    double c = ceil((end - start) / step);
    if (c > (double)MILK_MAX_ELEMENTS)
        return milk_op_fail(ctx, op, "end", "%.0f elements is too many", c);
    *n = c > 0 ? (int64_t)c : 0;
    return MILK_OK;
}

static milk_status range_infer(milk_infer *ic)
{
    static const char *const ses[] = {"start", "end", "step", NULL};
    const char *const *p;
    double v[3];
    int64_t n = MILK_DIM_UNKNOWN;
    bool known = true;
    MILK_TRY(milk_infer_domain(ic, ses, MILK_DT_NUM));
    for (p = ses; *p; p++) {
        const milk_tensor_type *t = milk_op_in_type(ic->op, *p);
        if (milk_tensor_type_count(t) != 1)
            return milk_op_fail(ic->ctx, ic->op, *p, "expected a scalar");
        known = known && milk_infer_is_const(ic, *p);
        if (known)
            MILK_TRY(milk_op_f64(ic->ctx, ic->op, *p, 0, &v[p - ses]));
    }
    if (known) MILK_TRY(range_count(ic->ctx, ic->op, v[0], v[1], v[2], &n));
    return milk_infer_one(ic, milk_op_in_type(ic->op, "start")->dtype, 1, &n);
}

/* A scalar input as double (int32 exactly). */
static double scalar(const milk_eval *ec, const char *param)
{
    const milk_rt *t = milk_eval_in(ec, param);
    return t->store == MILK_DTYPE_INT32 ? milk_rt_i32(t)[0] : milk_rt_f32(t)[0];
}

/* out[i] = start + i * step, in double, then stored. */
static milk_status range_eval(milk_eval *ec)
{
    milk_rt *o = &ec->out[0];
    double start = scalar(ec, "start"), step = scalar(ec, "step");
    int64_t n;
    MILK_TRY(range_count(ec->ctx, ec->op, start, scalar(ec, "end"), step, &n));
    if (n != o->count)
        return milk_op_fail(ec->ctx, ec->op, "end",
                            "%lld elements, the inferred size is %lld",
                            (long long)n, (long long)o->count);
    for (int64_t i = 0; i < n; i++) {
        double x = start + (double)i * step;
        if (o->store == MILK_DTYPE_INT32) milk_rt_i32(o)[i] = (int32_t)x;
        else milk_rt_f32(o)[i] = (float)x;
    }
    return MILK_OK;
}

/* range_1d: start, start + step, ... while below end (above it for a
 * negative step), like NumPy's arange.
 *   end    R  scalar fp16/fp32/int32, may be a run-time value
 *   start  R  same dtype as end
 *   step   R  same dtype as end, not 0
 * Output: [max(0, ceil((end - start) / step))] of that dtype (unknown size
 * unless all three are constants). */
static const milk_param range_params[] = {
    {"end", MILK_P_REQ, 0},
    {"start", MILK_P_REQ, 0},
    {"step", MILK_P_REQ, 0},
    {0},
};

const milk_op_info milk_op_range_1d = {
    .name = "range_1d",
    .params = range_params,
    .min_opset = MILK_TARGET_IOS15,
    .infer = range_infer,
    .eval = range_eval,
};
