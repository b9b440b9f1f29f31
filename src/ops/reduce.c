/* reduce.c: reductions over a set of axes (reduce_mean, reduce_sum,
 * reduce_max), after coremltools' ReductionAxes in
 * ops/defs/iOS15/reduction.py. They share the signature and the shape
 * rule; they differ only in the kernel. */
#include "infer.h"

static milk_status reduce_infer(milk_infer *ic)
{
    const milk_tensor_type *x;
    int64_t axes[MILK_MAX_RANK];
    int n;
    bool given, keep, reduced[MILK_MAX_RANK] = {false};
    MILK_TRY(milk_infer_tensor(ic, "x", MILK_DT_NUM, 0, -1, &x));
    MILK_TRY(milk_infer_ints(ic, "axes", MILK_DT_INT32, axes, MILK_MAX_RANK,
                             &n, &given));
    MILK_TRY(milk_op_bool(ic->ctx, ic->op, "keep_dims", false, &keep));
    for (int i = 0; i < (given ? n : x->rank); i++) {
        int a = i;
        if (given) MILK_TRY(milk_infer_axis(ic, "axes", axes[i], x->rank, &a));
        if (reduced[a])
            return milk_op_fail(ic->ctx, ic->op, "axes", "axis %d repeated", a);
        reduced[a] = true;
    }
    int64_t dims[MILK_MAX_RANK];
    int r = 0;
    for (int i = 0; i < x->rank; i++) {
        if (!reduced[i])
            dims[r++] = x->dims[i];
        else if (keep)
            dims[r++] = 1;
    }
    return milk_infer_one(ic, x->dtype, r, dims);
}

/* reduce_mean, reduce_sum, reduce_max: reduce x over `axes`.
 *   x          R    any rank, fp16/fp32/int32
 *   axes       O C  int32 [K], default all axes; negative axes count from
 *                   the end; no axis twice
 *   keep_dims  O C  bool, default false: keep reduced dims as size 1
 * Output: x's dtype; x's shape without the reduced dims (or with them set
 * to 1 when keep_dims); reducing every dim without keep_dims gives a
 * scalar. */
static const milk_param reduce_params[] = {
    {"x", MILK_P_REQ, 0},
    {"axes", MILK_P_CONST, 0},
    {"keep_dims", MILK_P_CONST, 0},
    {0},
};

#define REDUCE(id)                                                          \
    const milk_op_info milk_op_##id = {                                     \
        .name = #id,                                                        \
        .params = reduce_params,                                            \
        .min_opset = MILK_TARGET_IOS15,                                     \
        .infer = reduce_infer,                                              \
    };
REDUCE(reduce_mean)
REDUCE(reduce_sum)
REDUCE(reduce_max)
