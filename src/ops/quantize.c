/* quantize.c: quantize and dequantize (iOS17), activation quantization at
 * run time, after coremltools' ops/defs/iOS17/quantization_ops.py and
 * optimize/_utils.py (quantize_by_scale_and_zp, dequantize_by_scale_and_zp),
 * whose numpy arithmetic the kernels reproduce. */
#include "infer.h"
#include "../run/run.h"

#include <math.h>

#define DT_Q8 (MILK_DT(MILK_DTYPE_INT8) | MILK_DT(MILK_DTYPE_UINT8))

/* scale and zero_point against input (coremltools' _check_scale_zp_shapes):
 * both scalars and no axis, or both vectors of input.shape[axis]. */
static milk_status scale_zp_check(milk_infer *ic, const milk_tensor_type *x)
{
    const milk_tensor_type *s = milk_op_in_type(ic->op, "scale");
    const milk_tensor_type *zp = milk_op_in_type(ic->op, "zero_point");
    bool has_axis = milk_op_arg(ic->op, "axis") != NULL;
    if (s->rank == 0) {
        if (has_axis)
            return milk_op_fail(ic->ctx, ic->op, "axis",
                                "must be absent when scale is a scalar");
        if (zp && zp->rank != 0)
            return milk_op_fail(ic->ctx, ic->op, "zero_point",
                                "must be a scalar when scale is one");
        return MILK_OK;
    }
    if (s->rank != 1)
        return milk_op_fail(ic->ctx, ic->op, "scale",
                            "rank %d; scale and zero_point are scalars or "
                            "vectors",
                            (int)s->rank);
    if (!has_axis)
        return milk_op_fail(ic->ctx, ic->op, "axis",
                            "required when scale is a vector");
    int64_t a;
    int ax;
    MILK_TRY(milk_infer_int(ic, "axis", MILK_DT_INT32, 0, &a));
    MILK_TRY(milk_infer_axis(ic, "axis", a, x->rank, &ax));
    if (MILK_DIM_KNOWN(x->dims[ax]) && s->dims[0] != x->dims[ax])
        return milk_op_fail(ic->ctx, ic->op, "scale",
                            "%lld values, but input has %lld along axis %d",
                            (long long)s->dims[0], (long long)x->dims[ax], ax);
    if (zp && (zp->rank != 1 || zp->dims[0] != s->dims[0]))
        return milk_op_fail(ic->ctx, ic->op, "zero_point",
                            "must be a vector of scale's size");
    return MILK_OK;
}

/* The offset of the scale and zero point element for element i. */
typedef struct qaxis {
    bool vec;
    int64_t inner, n;
} qaxis;

static milk_status qaxis_of(const milk_eval *ec, const milk_rt *x,
                            const milk_rt *s, qaxis *q)
{
    q->vec = s->type.rank == 1;
    q->inner = 1;
    q->n = 1;
    if (!q->vec) return MILK_OK;
    int64_t a;
    MILK_TRY(milk_op_int(ec->ctx, ec->op, "axis", 0, &a));
    int ax = (int)(a < 0 ? a + x->type.rank : a);
    for (int i = ax + 1; i < x->type.rank; i++) q->inner *= x->type.dims[i];
    q->n = x->type.dims[ax];
    return MILK_OK;
}

static int64_t qat(const qaxis *q, int64_t i)
{
    return q->vec ? (i / q->inner) % q->n : 0;
}

static float rt_at(const milk_rt *t, int64_t i)
{
    return t->store == MILK_DTYPE_FP32 ? milk_rt_f32(t)[i]
                                       : (float)milk_rt_i32(t)[i];
}

static float round16(float x)
{
    return milk_fp16_to_fp32(milk_fp32_to_fp16(x));
}

/* ---- quantize --------------------------------------------------------------- */

static milk_status quantize_infer(milk_infer *ic)
{
    static const char *const xs[] = {"input", "scale", NULL};
    const milk_tensor_type *x;
    const char *name;
    MILK_TRY(milk_infer_tensor(ic, "input", MILK_DT_FLOAT, 1, -1, &x));
    MILK_TRY(milk_infer_domain(ic, xs, MILK_DT_FLOAT));
    MILK_TRY(milk_op_str(ic->ctx, ic->op, "output_dtype", NULL, &name));
    milk_dtype to = name ? milk_dtype_from_name(name) : MILK_DTYPE_INVALID;
    if (to != MILK_DTYPE_INT8 && to != MILK_DTYPE_UINT8)
        return milk_op_fail(ic->ctx, ic->op, "output_dtype",
                            "'%s': expected \"int8\" or \"uint8\"",
                            name ? name : "");
    const milk_tensor_type *zp = milk_op_in_type(ic->op, "zero_point");
    if (zp && zp->dtype != to)
        return milk_op_fail(ic->ctx, ic->op, "zero_point",
                            "dtype %s differs from output_dtype %s",
                            milk_infer_dtype_name(zp->dtype), name);
    const milk_value *s = milk_op_const(ic->op, "scale");
    int64_t n = s ? milk_tensor_type_count(&s->type) : 0;
    bool all_zero = n > 0;
    for (int64_t i = 0; all_zero && i < n && i < 65536; i++) {
        double v;
        MILK_TRY(milk_value_get_f64(ic->ctx, s, i, &v));
        all_zero = v == 0;
    }
    if (all_zero)
        return milk_op_fail(ic->ctx, ic->op, "scale", "cannot be 0");
    MILK_TRY(scale_zp_check(ic, x));
    return milk_infer_one(ic, to, x->rank, x->dims);
}

static milk_status quantize_eval(milk_eval *ec)
{
    const milk_rt *x = milk_eval_in(ec, "input");
    const milk_rt *s = milk_eval_in(ec, "scale");
    const milk_rt *zp = milk_eval_in(ec, "zero_point");
    milk_rt *y = &ec->out[0];
    bool u8 = y->type.dtype == MILK_DTYPE_UINT8;
    float lo = u8 ? 0.0f : -128.0f, hi = u8 ? 255.0f : 127.0f;
    bool half = x->type.dtype == MILK_DTYPE_FP16;
    qaxis q;
    MILK_TRY(qaxis_of(ec, x, s, &q));
    for (int64_t i = 0; i < x->count; i++) {
        int64_t k = qat(&q, i);
        /* numpy: input / scale in the input's dtype, np.around (half to
         * even), + zero_point, clip, astype */
        float v = milk_rt_f32(x)[i] / milk_rt_f32(s)[k];
        if (half) v = round16(v);
        v = rintf(v);
        if (zp) v += rt_at(zp, k);
        if (isnan(v)) v = lo;
        v = v < lo ? lo : v > hi ? hi : v;
        milk_rt_i32(y)[i] = (int32_t)v;
    }
    return MILK_OK;
}

/* quantize: affine quantization of activations,
 * clip(round(input / scale) + zero_point) (rounding half to even).
 *   input         R    fp16/fp32, rank >= 1
 *   zero_point    O C  int8/uint8 (output_dtype), scalar or [shape[axis]];
 *                      default 0
 *   scale         R C  input's dtype, scalar or [shape[axis]], not all 0
 *   axis          O C  int32 scalar; required (only) for vector scales
 *   output_dtype  R C  string "int8" or "uint8"
 * Output: input's shape, output_dtype. */
static const milk_param quantize_params[] = {
    {"input", MILK_P_REQ, 0},
    {"zero_point", MILK_P_CONST, 0},
    {"scale", MILK_P_REQ | MILK_P_CONST, 0},
    {"axis", MILK_P_CONST, 0},
    {"output_dtype", MILK_P_REQ | MILK_P_CONST, 0},
    {0},
};

const milk_op_info milk_op_quantize = {
    .name = "quantize",
    .params = quantize_params,
    .min_opset = MILK_TARGET_IOS17,
    .infer = quantize_infer,
    .eval = quantize_eval,
};

/* ---- dequantize ------------------------------------------------------------ */

static milk_status dequantize_infer(milk_infer *ic)
{
    static const char *const xs[] = {"input", "zero_point", NULL};
    const milk_tensor_type *x, *s;
    MILK_TRY(milk_infer_tensor(ic, "input", DT_Q8, 1, -1, &x));
    MILK_TRY(milk_infer_domain(ic, xs, DT_Q8));
    MILK_TRY(milk_infer_tensor(ic, "scale", MILK_DT_FLOAT, 0, 1, &s));
    MILK_TRY(scale_zp_check(ic, x));
    return milk_infer_one(ic, s->dtype, x->rank, x->dims);
}

static milk_status dequantize_eval(milk_eval *ec)
{
    const milk_rt *x = milk_eval_in(ec, "input");
    const milk_rt *s = milk_eval_in(ec, "scale");
    const milk_rt *zp = milk_eval_in(ec, "zero_point");
    milk_rt *y = &ec->out[0];
    bool half = y->type.dtype == MILK_DTYPE_FP16;
    qaxis q;
    MILK_TRY(qaxis_of(ec, x, s, &q));
    for (int64_t i = 0; i < x->count; i++) {
        int64_t k = qat(&q, i);
        /* (float32(input) - float32(zero_point)) * scale, then to the
         * scale's dtype */
        float d = (float)milk_rt_i32(x)[i] - (zp ? rt_at(zp, k) : 0.0f);
        float v = d * milk_rt_f32(s)[k];
        milk_rt_f32(y)[i] = half ? round16(v) : v;
    }
    return MILK_OK;
}

/* dequantize: scale * (input - zero_point).
 *   input       R    int8/uint8, rank >= 1
 *   zero_point  O C  input's dtype, scalar or [shape[axis]]; default 0
 *   scale       R C  fp16/fp32, scalar or [shape[axis]]
 *   axis        O C  int32 scalar; required (only) for vector scales
 * Output: input's shape, scale's dtype. */
static const milk_param dequantize_params[] = {
    {"input", MILK_P_REQ, 0},
    {"zero_point", MILK_P_CONST, 0},
    {"scale", MILK_P_REQ | MILK_P_CONST, 0},
    {"axis", MILK_P_CONST, 0},
    {0},
};

const milk_op_info milk_op_dequantize = {
    .name = "dequantize",
    .params = dequantize_params,
    .min_opset = MILK_TARGET_IOS17,
    .infer = dequantize_infer,
    .eval = dequantize_eval,
};
