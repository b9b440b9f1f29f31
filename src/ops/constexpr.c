/* constexpr.c: the weight decompression ops Core ML expands when it loads a
 * model, after coremltools' ops/defs/iOS16/constexpr_ops.py and
 * iOS18/compression.py: type inference (every constraint coremltools
 * checks) and reference kernels that give, bit for bit, what coremltools'
 * numpy definitions (`decompress`) give.
 *
 * One row per op name. Three ops have an iOS16 form and an iOS18 form
 * under the same name; the function's opset picks one, as Core ML picks
 * the newest definition not newer than the opset:
 *   constexpr_lut_to_dense   iOS16: indices uint8 [M] (bit-packed LSB
 *                            first), lut [2^n], shape uint32 [K]
 *                            iOS18: indices uint1..uint8 of the output's
 *                            shape, lut [*blocks, 2^n, VECTOR_SIZE],
 *                            vector_axis
 *   constexpr_sparse_to_dense iOS16: mask uint8 [ceil(N/8)] (bit-packed),
 *                            shape uint32 [K]; iOS18: mask uint1 of the
 *                            output's shape
 *   constexpr_cast           the same in both
 * The interpreter evaluates every constexpr op once, when a runner is made
 * (runner.c), never per run.
 *
 * Rounding: a result declared fp16 is computed as numpy computes it on
 * fp16 arrays: each step in fp32 (exact for a product or difference of two
 * fp16 values, and a single rounding to fp16 afterwards equals numpy's
 * fp16 arithmetic) and rounded to fp16 where numpy's result is fp16. */
#include "infer.h"
#include "../run/run.h"

#include <stdlib.h>

bool milk_op_is_constexpr(const milk_op *op)
{
    return strncmp(milk_ops[op->kind]->name, "constexpr_", 10) == 0;
}

/* ---- shared helpers ------------------------------------------------------- */

#define DT_Q8 (MILK_DT(MILK_DTYPE_INT8) | MILK_DT(MILK_DTYPE_UINT8))
#define DT_Q4 (MILK_DT(MILK_DTYPE_INT4) | MILK_DT(MILK_DTYPE_UINT4))
/* LUT entries (T of coremltools' lut ops) */
#define DT_LUT (DT_Q8 | MILK_DT_FLOAT)
/* quantized data of the iOS18 shift-scale ops (SrcT, OffsetT) */
#define DT_SHIFT (DT_Q4 | DT_Q8 | MILK_DT_FLOAT)
/* iOS18 LUT indices (IndicesT) */
#define DT_INDICES                                                           \
    (MILK_DT(MILK_DTYPE_UINT1) | MILK_DT(MILK_DTYPE_UINT2) |                 \
     MILK_DT(MILK_DTYPE_UINT3) | MILK_DT(MILK_DTYPE_UINT4) |                 \
     MILK_DT(MILK_DTYPE_UINT6) | MILK_DT(MILK_DTYPE_UINT8))

static float round16(float x)
{
    return milk_fp16_to_fp32(milk_fp32_to_fp16(x));
}

static bool ios18(const milk_infer *ic)
{
    return ic->opset >= MILK_TARGET_IOS18;
}

/* The iOS16 form of an op is refused in an iOS18 function and vice versa:
 * `param` is the iOS16 one (shape) or the iOS18 one (vector_axis). */
static milk_status check_form(milk_infer *ic, const char *ios16_param)
{
    if (ios18(ic) && milk_op_arg(ic->op, ios16_param))
        return milk_op_fail(ic->ctx, ic->op, ios16_param,
                            "belongs to the iOS16 form of the op; from iOS18 "
                            "the output shape is the shape of the typed "
                            "indices or mask");
    if (!ios18(ic) && !milk_op_arg(ic->op, ios16_param))
        return milk_op_fail(ic->ctx, ic->op, ios16_param,
                            "required input is missing (the iOS16 form of "
                            "the op, for opsets before iOS18)");
    return MILK_OK;
}

/* The uint32 output shape of an iOS16 op into t (its dtype left alone). */
static milk_status shape_param(milk_infer *ic, milk_tensor_type *t)
{
    int64_t v[MILK_MAX_RANK];
    int n;
    const milk_tensor_type *st = milk_op_in_type(ic->op, "shape");
    if (st->dtype != MILK_DTYPE_UINT32 || st->rank != 1)
        return milk_op_fail(ic->ctx, ic->op, "shape",
                            "expected a uint32 vector, got %s of rank %d",
                            milk_infer_dtype_name(st->dtype), (int)st->rank);
    MILK_TRY(milk_op_ints(ic->ctx, ic->op, "shape", v, MILK_MAX_RANK, &n, NULL));
    int64_t count = 1;
    for (int i = 0; i < n; i++) {
        if (v[i] < 1 || !milk_mul_i64(count, v[i], &count) ||
            count > MILK_MAX_ELEMENTS)
            return milk_op_fail(ic->ctx, ic->op, "shape",
                                "dimension %d is %lld", i, (long long)v[i]);
        t->dims[i] = v[i];
    }
    t->rank = n;
    return MILK_OK;
}

/* A rank-1 tensor of known size. */
static milk_status vector(milk_infer *ic, const char *param, uint64_t dtypes,
                          const milk_tensor_type **t)
{
    MILK_TRY(milk_infer_tensor(ic, param, dtypes, 1, 1, t));
    if (!MILK_DIM_KNOWN((*t)->dims[0]))
        return milk_op_fail(ic->ctx, ic->op, param, "size must be known");
    return MILK_OK;
}

/* A tensor of rank >= 1 whose dims are all known. */
static milk_status tensor(milk_infer *ic, const char *param, uint64_t dtypes,
                          const milk_tensor_type **t)
{
    MILK_TRY(milk_infer_tensor(ic, param, dtypes, 1, -1, t));
    for (int i = 0; i < (*t)->rank; i++)
        if (!MILK_DIM_KNOWN((*t)->dims[i]))
            return milk_op_fail(ic->ctx, ic->op, param,
                                "dimension %d must be known", i);
    return MILK_OK;
}

/* iOS18 blocks: each dim of `data` (the tensor of `what`) is a multiple of
 * the same dim of `blk` (param `bparam`), whose first `rank` dims are
 * compared. */
static milk_status blocks_divide(milk_infer *ic, const milk_tensor_type *data,
                                 const char *what, const milk_tensor_type *blk,
                                 const char *bparam)
{
    for (int i = 0; i < data->rank; i++)
        if (blk->dims[i] < 1 || data->dims[i] % blk->dims[i] != 0)
            return milk_op_fail(ic->ctx, ic->op, bparam,
                                "dim %d is %lld, which does not divide %s's "
                                "%lld (the block size must be a whole "
                                "number)",
                                i, (long long)blk->dims[i], what,
                                (long long)data->dims[i]);
    return MILK_OK;
}

/* Walks the elements of a tensor of shape dims in row-major order, keeping
 * the offset of the block each lies in, in a tensor of blocks of shape
 * pdims (dims[i] a multiple of pdims[i]) with strides pstride:
 *   blk_walk w; blk_init(&w, rank, dims, pdims, pstride);
 *   for (i = 0; i < n; i++, blk_next(&w)) use w.off */
typedef struct blk_walk {
    int rank;
    int64_t dims[MILK_MAX_RANK], idx[MILK_MAX_RANK];
    int64_t bsize[MILK_MAX_RANK], pstride[MILK_MAX_RANK];
    int64_t off;
} blk_walk;

static void blk_init(blk_walk *w, int rank, const int64_t *dims,
                     const int64_t *pdims, const int64_t *pstride)
{
    memset(w, 0, sizeof *w);
    w->rank = rank;
    for (int i = 0; i < rank; i++) {
        w->dims[i] = dims[i];
        w->bsize[i] = dims[i] / pdims[i];
        w->pstride[i] = pstride[i];
    }
}

static void blk_next(blk_walk *w)
{
    for (int d = w->rank - 1; d >= 0; d--) {
        int64_t i = ++w->idx[d];
        if (i < w->dims[d]) {
            if (i % w->bsize[d] == 0) w->off += w->pstride[d];
            return;
        }
        w->off -= (w->dims[d] / w->bsize[d] - 1) * w->pstride[d];
        w->idx[d] = 0;
    }
}

static void strides_of(int rank, const int64_t *dims, int64_t *s)
{
    int64_t acc = 1;
    for (int i = rank - 1; i >= 0; i--) {
        s[i] = acc;
        acc *= dims[i];
    }
}

/* Element i of a runtime tensor as float. */
static float get(const milk_rt *t, int64_t i)
{
    return t->store == MILK_DTYPE_FP32 ? milk_rt_f32(t)[i]
                                       : (float)milk_rt_i32(t)[i];
}

/* Unsigned value of `bits` bits at element i of bit-packed bytes (held one
 * byte per int32, as the interpreter stores uint8), LSB first. */
static uint32_t packed_at(const int32_t *bytes, int64_t i, int bits)
{
    uint64_t bit = (uint64_t)i * (uint64_t)bits;
    uint32_t w = (uint32_t)bytes[bit / 8];
    if (bit % 8 + (uint64_t)bits > 8) w |= (uint32_t)bytes[bit / 8 + 1] << 8;
    return (w >> (bit % 8)) & ((1u << bits) - 1u);
}

/* ---- constexpr_affine_dequantize (iOS16) ---------------------------------- */

static milk_status affine_infer(milk_infer *ic)
{
    const milk_tensor_type *q, *zp, *s;
    MILK_TRY(tensor(ic, "quantized_data", DT_Q8, &q));
    MILK_TRY(milk_infer_tensor(ic, "zero_point",
                               DT_Q8 | MILK_DT(MILK_DTYPE_FP32), 0, 1, &zp));
    MILK_TRY(milk_infer_tensor(ic, "scale", MILK_DT_FLOAT, 0, 1, &s));
    int64_t axis;
    int ax;
    MILK_TRY(milk_infer_int(ic, "axis", MILK_DT_INT32, 0, &axis));
    MILK_TRY(milk_infer_axis(ic, "axis", axis, q->rank, &ax));
    const char *names[] = {"scale", "zero_point"};
    const milk_tensor_type *ts[] = {s, zp};
    for (int i = 0; i < 2; i++)
        if (ts[i]->rank == 1 && ts[i]->dims[0] != q->dims[ax])
            return milk_op_fail(ic->ctx, ic->op, names[i],
                                "a vector of %lld values, but quantized_data "
                                "has %lld along axis %d",
                                (long long)ts[i]->dims[0],
                                (long long)q->dims[ax], ax);
    return milk_infer_one(ic, s->dtype, q->rank, q->dims);
}

/* Index into a scale or zero point that is a scalar or a vector along the
 * axis, for element i of the data (rows of `inner` elements). */
static int64_t along(const milk_rt *p, int64_t i, int64_t inner, int64_t n)
{
    return p->count == 1 ? 0 : (i / inner) % n;
}

static milk_status affine_eval(milk_eval *ec)
{
    const milk_rt *q = milk_eval_in(ec, "quantized_data");
    const milk_rt *zp = milk_eval_in(ec, "zero_point");
    const milk_rt *s = milk_eval_in(ec, "scale");
    int64_t axis;
    MILK_TRY(milk_op_int(ec->ctx, ec->op, "axis", 0, &axis));
    int rank = q->type.rank, ax = (int)(axis < 0 ? axis + rank : axis);
    int64_t inner = 1;
    for (int i = ax + 1; i < rank; i++) inner *= q->type.dims[i];
    int64_t n = q->type.dims[ax];
    bool half = ec->out[0].type.dtype == MILK_DTYPE_FP16;
    float *y = milk_rt_f32(&ec->out[0]);
    for (int64_t i = 0; i < q->count; i++) {
        /* (float32(q) - float32(zp)) * scale, then to the scale's dtype */
        float d = get(q, i) - get(zp, along(zp, i, inner, n));
        float v = d * get(s, along(s, i, inner, n));
        y[i] = half ? round16(v) : v;
    }
    return MILK_OK;
}

/* constexpr_affine_dequantize: output = scale * (quantized_data -
 * zero_point), broadcast along axis.
 *   quantized_data  R C  int8/uint8, rank >= 1
 *   zero_point      R C  int8/uint8/fp32, scalar or [shape[axis]]
 *   scale           R C  fp16/fp32, scalar or [shape[axis]]
 *   axis            R C  int32 scalar in [-rank, rank)
 * Output: quantized_data's shape, scale's dtype. In opsets before iOS18
 * the inputs are attributes of the op in the protobuf. */
static const milk_param affine_params[] = {
    {"quantized_data", MILK_P_REQ | MILK_P_CONST, 0},
    {"zero_point", MILK_P_REQ | MILK_P_CONST, 0},
    {"scale", MILK_P_REQ | MILK_P_CONST, 0},
    {"axis", MILK_P_REQ | MILK_P_CONST, 0},
    {0},
};

const milk_op_info milk_op_constexpr_affine_dequantize = {
    .name = "constexpr_affine_dequantize",
    .params = affine_params,
    .min_opset = MILK_TARGET_IOS16,
    .infer = affine_infer,
    .eval = affine_eval,
};

/* ---- constexpr_cast ----------------------------------------------------- */

static milk_status cast_infer(milk_infer *ic)
{
    const milk_tensor_type *x;
    const char *to;
    MILK_TRY(milk_infer_tensor(ic, "source_val", MILK_DT(MILK_DTYPE_FP16), 0,
                               -1, &x));
    MILK_TRY(milk_op_str(ic->ctx, ic->op, "output_dtype", NULL, &to));
    if (!to || strcmp(to, "fp32") != 0)
        return milk_op_fail(ic->ctx, ic->op, "output_dtype",
                            "'%s': only fp32 is supported", to ? to : "");
    return milk_infer_one(ic, MILK_DTYPE_FP32, x->rank, x->dims);
}

static milk_status cast_eval(milk_eval *ec)
{
    const milk_rt *x = milk_eval_in(ec, "source_val");
    milk_copy(ec->out[0].data, x->data, (size_t)x->count * sizeof(float));
    return MILK_OK;
}

/* constexpr_cast: an fp16 constant as fp32.
 *   source_val    R C  fp16
 *   output_dtype  R C  string, "fp32" */
static const milk_param cast_params[] = {
    {"source_val", MILK_P_REQ | MILK_P_CONST, 0},
    {"output_dtype", MILK_P_REQ | MILK_P_CONST, 0},
    {0},
};

const milk_op_info milk_op_constexpr_cast = {
    .name = "constexpr_cast",
    .params = cast_params,
    .min_opset = MILK_TARGET_IOS16,
    .infer = cast_infer,
    .eval = cast_eval,
};

/* ---- LUTs: constexpr_lut_to_dense, constexpr_lut_to_sparse ------------------ */

/* Bits of an iOS18 index dtype. */
static int index_bits(milk_dtype d)
{
    return milk_dtype_bits(d);
}

/* The iOS18 LUT of indices of type `it` (param `ip`) against `lut`, and
 * the optional vector_axis, normalized into *vaxis (-1 when the LUT holds
 * scalars). coremltools' _validate_lut_inputs. */
static milk_status lut18_check(milk_infer *ic, const char *ip,
                               const milk_tensor_type *it,
                               const milk_tensor_type *lut, int *vaxis)
{
    if (lut->rank != it->rank + 2)
        return milk_op_fail(ic->ctx, ic->op, "lut",
                            "rank %d, expected %d (the rank of %s plus 2: "
                            "[*blocks, 2^nbits, vector_size])",
                            (int)lut->rank, (int)it->rank + 2, ip);
    MILK_TRY(blocks_divide(ic, it, ip, lut, "lut"));
    int bits = index_bits(it->dtype);
    int64_t palettes = lut->dims[lut->rank - 2];
    if (palettes != (INT64_C(1) << bits))
        return milk_op_fail(ic->ctx, ic->op, "lut",
                            "%lld entries (dim -2), but %s indices take "
                            "%lld: every index must have an entry",
                            (long long)palettes,
                            milk_infer_dtype_name(it->dtype),
                            (long long)(INT64_C(1) << bits));
    int64_t vs = lut->dims[lut->rank - 1];
    *vaxis = -1;
    if (milk_op_arg(ic->op, "vector_axis")) {
        int64_t a;
        MILK_TRY(milk_infer_int(ic, "vector_axis", MILK_DT_INT32, 0, &a));
        MILK_TRY(milk_infer_axis(ic, "vector_axis", a, it->rank, vaxis));
    } else if (vs > 1) {
        return milk_op_fail(ic->ctx, ic->op, "vector_axis",
                            "required when the lut holds vectors (its last "
                            "dim is %lld)",
                            (long long)vs);
    }
    if (vs < 1)
        return milk_op_fail(ic->ctx, ic->op, "lut", "vector size %lld",
                            (long long)vs);
    if (vs == 1) *vaxis = -1;
    return MILK_OK;
}

static milk_status lut_dense_infer(milk_infer *ic)
{
    const milk_tensor_type *lut;
    MILK_TRY(check_form(ic, "shape"));
    if (!ios18(ic)) {
        const milk_tensor_type *idx;
        milk_tensor_type out = {0};
        if (milk_op_arg(ic->op, "vector_axis"))
            return milk_op_fail(ic->ctx, ic->op, "vector_axis",
                                "exists from iOS18 on");
        MILK_TRY(vector(ic, "indices", MILK_DT(MILK_DTYPE_UINT8), &idx));
        MILK_TRY(vector(ic, "lut", DT_LUT, &lut));
        int64_t n = lut->dims[0];
        int bits = n == 2 ? 1 : n == 4 ? 2 : n == 16 ? 4 : n == 64 ? 6
                 : n == 256 ? 8 : 0;
        if (!bits)
            return milk_op_fail(ic->ctx, ic->op, "lut",
                                "%lld entries; the iOS16 form takes 2, 4, 16, "
                                "64 or 256 (3-bit LUTs need iOS18)",
                                (long long)n);
        MILK_TRY(shape_param(ic, &out));
        int64_t count = milk_tensor_type_count(&out);
        int64_t need = (count * bits + 7) / 8;
        if (idx->dims[0] != need)
            return milk_op_fail(ic->ctx, ic->op, "indices",
                                "%lld bytes, but %lld %d-bit indices "
                                "packed need %lld",
                                (long long)idx->dims[0], (long long)count,
                                bits, (long long)need);
        return milk_infer_one(ic, lut->dtype, out.rank, out.dims);
    }
    const milk_tensor_type *it;
    int vaxis;
    MILK_TRY(tensor(ic, "indices", DT_INDICES, &it));
    MILK_TRY(tensor(ic, "lut", DT_LUT, &lut));
    MILK_TRY(lut18_check(ic, "indices", it, lut, &vaxis));
    int64_t dims[MILK_MAX_RANK];
    memcpy(dims, it->dims, sizeof dims);
    if (vaxis >= 0) dims[vaxis] *= lut->dims[lut->rank - 1];
    return milk_infer_one(ic, lut->dtype, it->rank, dims);
}

/* Fail unless an index is within the LUT (only a corrupt file can get
 * here: the types guarantee it otherwise). */
static milk_status index_ok(milk_eval *ec, const char *param, int64_t ix,
                            int64_t palettes, int64_t at)
{
    if (ix >= 0 && ix < palettes) return MILK_OK;
    return milk_op_fail(ec->ctx, ec->op, param,
                        "index %lld at element %lld is outside the lut's %lld "
                        "entries",
                        (long long)ix, (long long)at, (long long)palettes);
}

/* The iOS18 LUT decompression of dense indices (coremltools' lut_to_dense):
 * out[..., c * vs + v, ...] = lut[block][idx[..., c, ...]][v] along
 * vector_axis (v = 0 when vs == 1). `ix` returns the index of element i
 * of the indices tensor (dims idims), or -1 for an element to skip
 * (sparse: never happens here). */
static milk_status lut18_expand(milk_eval *ec, const char *iparam,
                                const milk_rt *idx, const milk_rt *lut,
                                int vaxis, float *out)
{
    int rank = idx->type.rank;
    const int64_t *ld = lut->type.dims;
    int64_t palettes = ld[rank], vs = ld[rank + 1];
    int64_t lstride[MILK_MAX_RANK], ostride[MILK_MAX_RANK], odims[MILK_MAX_RANK];
    strides_of(rank + 2, ld, lstride);
    memcpy(odims, idx->type.dims, sizeof odims);
    if (vaxis >= 0) odims[vaxis] *= vs;
    strides_of(rank, odims, ostride);
    blk_walk w;
    blk_init(&w, rank, idx->type.dims, ld, lstride);
    const int32_t *ix = milk_rt_i32(idx);
    bool lut_f = lut->store == MILK_DTYPE_FP32;
    for (int64_t i = 0; i < idx->count; i++, blk_next(&w)) {
        MILK_TRY(index_ok(ec, iparam, ix[i], palettes, i));
        int64_t base = w.off + (int64_t)ix[i] * vs;
        int64_t o = 0;
        for (int d = 0; d < rank; d++)
            o += (d == vaxis ? w.idx[d] * vs : w.idx[d]) * ostride[d];
        for (int64_t v = 0; v < vs; v++) {
            int64_t at = o + (vaxis >= 0 ? v * ostride[vaxis] : 0);
            out[at] = lut_f ? milk_rt_f32(lut)[base + v]
                            : (float)milk_rt_i32(lut)[base + v];
        }
    }
    return MILK_OK;
}

static milk_status vector_axis_of(milk_eval *ec, int rank, int64_t vs,
                                  int *vaxis)
{
    int64_t a;
    *vaxis = -1;
    if (vs == 1) return MILK_OK;
    MILK_TRY(milk_op_int(ec->ctx, ec->op, "vector_axis", 0, &a));
    *vaxis = (int)(a < 0 ? a + rank : a);
    return MILK_OK;
}

static milk_status lut_dense_eval(milk_eval *ec)
{
    const milk_rt *idx = milk_eval_in(ec, "indices");
    const milk_rt *lut = milk_eval_in(ec, "lut");
    milk_rt *y = &ec->out[0];
    float *out = milk_rt_f32(y);
    bool fy = y->store == MILK_DTYPE_FP32;
    if (!milk_op_arg(ec->op, "shape")) {
        int vaxis;
        int rank = idx->type.rank;
        MILK_TRY(vector_axis_of(ec, rank, lut->type.dims[rank + 1], &vaxis));
        if (fy) return lut18_expand(ec, "indices", idx, lut, vaxis, out);
        /* an integer LUT: expand as floats, then store as integers */
        float *tmp = malloc((size_t)(y->count ? y->count : 1) * sizeof *tmp);
        if (!tmp) return milk_errorf(ec->ctx, MILK_ERR_NOMEM, "out of memory");
        milk_status s = lut18_expand(ec, "indices", idx, lut, vaxis, tmp);
        for (int64_t i = 0; s == MILK_OK && i < y->count; i++)
            milk_rt_i32(y)[i] = (int32_t)tmp[i];
        free(tmp);
        return s;
    }
    /* iOS16: n-bit indices packed in bytes, a flat LUT */
    int64_t palettes = lut->count;
    int bits = 0;
    while ((INT64_C(1) << bits) < palettes) bits++;
    const int32_t *bytes = milk_rt_i32(idx);
    for (int64_t i = 0; i < y->count; i++) {
        int64_t k = packed_at(bytes, i, bits);
        MILK_TRY(index_ok(ec, "indices", k, palettes, i));
        if (fy) out[i] = get(lut, k);
        else milk_rt_i32(y)[i] = milk_rt_i32(lut)[k];
    }
    return MILK_OK;
}

/* constexpr_lut_to_dense: palettized weights, out = lut[indices].
 * iOS16 form:
 *   indices  R C  uint8 [M]: n-bit indices packed LSB first,
 *                 M = ceil(n * count(shape) / 8)
 *   lut      R C  int8/uint8/fp16/fp32 [2^n], n in 1, 2, 4, 6, 8
 *   shape    R C  uint32 [K]: the output's shape
 * iOS18 form:
 *   indices      R C  uint1/2/3/4/6/8, rank K >= 1
 *   lut          R C  [*blocks (K dims, each dividing indices'), 2^n,
 *                     VECTOR_SIZE]; may come from another constexpr op
 *   vector_axis  O C  int32 scalar; required when VECTOR_SIZE > 1: each
 *                     index gives VECTOR_SIZE consecutive elements along it
 * Output: the LUT's dtype; iOS18: indices' shape (times VECTOR_SIZE along
 * vector_axis). */
static const milk_param lut_dense_params[] = {
    {"indices", MILK_P_REQ | MILK_P_CONST, 0},
    {"lut", MILK_P_REQ | MILK_P_CONST, 0},
    {"shape", MILK_P_CONST, 0},
    {"vector_axis", MILK_P_CONST, MILK_TARGET_IOS18},
    {0},
};

const milk_op_info milk_op_constexpr_lut_to_dense = {
    .name = "constexpr_lut_to_dense",
    .params = lut_dense_params,
    .min_opset = MILK_TARGET_IOS16,
    .infer = lut_dense_infer,
    .eval = lut_dense_eval,
};

/* ---- constexpr_sparse_to_dense ---------------------------------------------- */

/* The nonzero data vector and its dtype set (iOS18 adds int4/uint4). */
static milk_status nonzero_vector(milk_infer *ic, const char *param,
                                  uint64_t dtypes, const milk_tensor_type **t)
{
    return vector(ic, param, dtypes, t);
}

static milk_status sparse_dense_infer(milk_infer *ic)
{
    const milk_tensor_type *nz, *mask;
    MILK_TRY(check_form(ic, "shape"));
    if (!ios18(ic)) {
        milk_tensor_type out = {0};
        MILK_TRY(nonzero_vector(ic, "nonzero_data", DT_LUT, &nz));
        MILK_TRY(vector(ic, "mask", MILK_DT(MILK_DTYPE_UINT8), &mask));
        MILK_TRY(shape_param(ic, &out));
        int64_t count = milk_tensor_type_count(&out);
        if (mask->dims[0] != (count + 7) / 8)
            return milk_op_fail(ic->ctx, ic->op, "mask",
                                "%lld bytes, but a bit mask of %lld elements "
                                "needs %lld",
                                (long long)mask->dims[0], (long long)count,
                                (long long)((count + 7) / 8));
        if (nz->dims[0] > count)
            return milk_op_fail(ic->ctx, ic->op, "nonzero_data",
                                "%lld values for %lld elements",
                                (long long)nz->dims[0], (long long)count);
        return milk_infer_one(ic, nz->dtype, out.rank, out.dims);
    }
    MILK_TRY(nonzero_vector(ic, "nonzero_data", DT_SHIFT, &nz));
    MILK_TRY(tensor(ic, "mask", MILK_DT(MILK_DTYPE_UINT1), &mask));
    if (nz->dims[0] > milk_tensor_type_count(mask))
        return milk_op_fail(ic->ctx, ic->op, "nonzero_data",
                            "%lld values for a mask of %lld elements",
                            (long long)nz->dims[0],
                            (long long)milk_tensor_type_count(mask));
    return milk_infer_one(ic, nz->dtype, mask->rank, mask->dims);
}

/* The number of set mask bits must be the number of nonzero values. */
static milk_status count_ok(milk_eval *ec, const char *mparam, int64_t set,
                            const char *nparam, int64_t n)
{
    if (set == n) return MILK_OK;
    return milk_op_fail(ec->ctx, ec->op, mparam,
                        "%lld bits are set, but %s has %lld values",
                        (long long)set, nparam, (long long)n);
}

/* Scatter nonzero values into y where the mask (one int32 0/1 per
 * element) is set; zeros elsewhere. */
static milk_status scatter(milk_eval *ec, const char *mparam,
                           const int32_t *mask, const milk_rt *nz,
                           const char *nparam, milk_rt *y)
{
    int64_t k = 0;
    for (int64_t i = 0; i < y->count; i++) {
        if (!mask[i]) continue;
        if (k == nz->count) break;
        if (y->store == MILK_DTYPE_FP32) milk_rt_f32(y)[i] = get(nz, k);
        else milk_rt_i32(y)[i] = milk_rt_i32(nz)[k];
        k++;
    }
    int64_t set = 0;
    for (int64_t i = 0; i < y->count; i++) set += mask[i] != 0;
    return count_ok(ec, mparam, set, nparam, nz->count);
}

static milk_status sparse_dense_eval(milk_eval *ec)
{
    const milk_rt *nz = milk_eval_in(ec, "nonzero_data");
    const milk_rt *m = milk_eval_in(ec, "mask");
    milk_rt *y = &ec->out[0];
    if (!milk_op_arg(ec->op, "shape"))
        return scatter(ec, "mask", milk_rt_i32(m), nz, "nonzero_data", y);
    /* iOS16: the mask packed in bytes; the padding bits must be 0 */
    const int32_t *bytes = milk_rt_i32(m);
    for (int64_t b = y->count; b < m->count * 8; b++)
        if (packed_at(bytes, b, 1))
            return milk_op_fail(ec->ctx, ec->op, "mask",
                                "padding bit %lld (beyond the %lld elements) "
                                "is set",
                                (long long)b, (long long)y->count);
    int32_t *bits = malloc((size_t)(y->count ? y->count : 1) * sizeof *bits);
    if (!bits) return milk_errorf(ec->ctx, MILK_ERR_NOMEM, "out of memory");
    for (int64_t i = 0; i < y->count; i++) bits[i] = (int32_t)packed_at(bytes, i, 1);
    milk_status s = scatter(ec, "mask", bits, nz, "nonzero_data", y);
    free(bits);
    return s;
}

/* constexpr_sparse_to_dense: pruned weights, nonzero_data scattered where
 * the mask is set (row-major), zeros elsewhere.
 * iOS16 form:
 *   nonzero_data  R C  int8/uint8/fp16/fp32 [D]
 *   mask          R C  uint8 [ceil(count/8)]: one bit per element, LSB
 *                      first; D bits set, padding bits 0
 *   shape         R C  uint32 [K]: the output's shape
 * iOS18 form:
 *   nonzero_data  R C  int4/uint4/int8/uint8/fp16/fp32 [D]; may come from
 *                      another constexpr op
 *   mask          R C  uint1 of the output's shape, D ones; may come from
 *                      another constexpr op
 * Output: nonzero_data's dtype. The count of set bits is checked when the
 * op is evaluated (reading a mask at load would read every weight). */
static const milk_param sparse_dense_params[] = {
    {"nonzero_data", MILK_P_REQ | MILK_P_CONST, 0},
    {"mask", MILK_P_REQ | MILK_P_CONST, 0},
    {"shape", MILK_P_CONST, 0},
    {0},
};

const milk_op_info milk_op_constexpr_sparse_to_dense = {
    .name = "constexpr_sparse_to_dense",
    .params = sparse_dense_params,
    .min_opset = MILK_TARGET_IOS16,
    .infer = sparse_dense_infer,
    .eval = sparse_dense_eval,
};

/* ---- constexpr_blockwise_shift_scale (iOS18) --------------------------------- */

/* scale (and offset) against data of shape dshape and dtype ddt
 * (coremltools' _validate_shift_scale_inputs). */
static milk_status shift_scale_check(milk_infer *ic,
                                     const milk_tensor_type *dshape,
                                     const char *dparam, milk_dtype ddt,
                                     const milk_tensor_type **scale)
{
    const milk_tensor_type *s, *off;
    MILK_TRY(tensor(ic, "scale", MILK_DT_FLOAT, &s));
    if (s->rank != dshape->rank)
        return milk_op_fail(ic->ctx, ic->op, "scale",
                            "rank %d, but %s has rank %d (they must be equal)",
                            (int)s->rank, dparam, (int)dshape->rank);
    MILK_TRY(blocks_divide(ic, dshape, dparam, s, "scale"));
    if (milk_op_arg(ic->op, "offset")) {
        MILK_TRY(tensor(ic, "offset", DT_SHIFT, &off));
        bool same = off->rank == s->rank;
        for (int i = 0; same && i < s->rank; i++) same = off->dims[i] == s->dims[i];
        if (!same)
            return milk_op_fail(ic->ctx, ic->op, "offset",
                                "its shape must be scale's");
        bool fl = off->dtype == MILK_DTYPE_FP16 || off->dtype == MILK_DTYPE_FP32;
        if (!fl && off->dtype != ddt)
            return milk_op_fail(ic->ctx, ic->op, "offset",
                                "dtype %s; an integer offset has the data's "
                                "dtype (%s)",
                                milk_infer_dtype_name(off->dtype),
                                milk_infer_dtype_name(ddt));
    }
    *scale = s;
    return MILK_OK;
}

static milk_status shift_scale_infer(milk_infer *ic)
{
    const milk_tensor_type *d, *s;
    MILK_TRY(tensor(ic, "data", DT_SHIFT, &d));
    MILK_TRY(shift_scale_check(ic, d, "data", d->dtype, &s));
    return milk_infer_one(ic, s->dtype, d->rank, d->dims);
}

/* scale * (data - offset) over a dense tensor of shape `dims` (the data's
 * values given by `val`), blocks from scale's shape; y[i] for i where
 * keep[i] (NULL: every element), written densely in order into y. This
 * is coremltools' decompress: data cast to scale's dtype, minus offset,
 * times scale, each step in numpy's dtype. */
typedef float (*val_fn)(const void *user, int64_t i);

static void shift_scale(const milk_eval *ec, int rank, const int64_t *dims,
                        int64_t count, val_fn val, const void *user,
                        const int32_t *keep, float *y)
{
    const milk_rt *s = milk_eval_in(ec, "scale");
    const milk_rt *off = milk_eval_in(ec, "offset");
    bool half = s->type.dtype == MILK_DTYPE_FP16;
    /* data - offset stays fp16 unless the offset is fp32 */
    bool half_diff = half && !(off && off->type.dtype == MILK_DTYPE_FP32);
    int64_t pstride[MILK_MAX_RANK];
    strides_of(rank, s->type.dims, pstride);
    blk_walk w;
    blk_init(&w, rank, dims, s->type.dims, pstride);
    int64_t k = 0;
    for (int64_t i = 0; i < count; i++, blk_next(&w)) {
        if (keep && !keep[i]) continue;
        float d = val(user, i);
        if (half) d = round16(d);
        if (off) {
            d -= get(off, w.off);
            if (half_diff) d = round16(d);
        }
        float v = milk_rt_f32(s)[w.off] * d;
        y[k++] = half ? round16(v) : v;
    }
}

static float rt_val(const void *user, int64_t i)
{
    return get(user, i);
}

static milk_status shift_scale_eval(milk_eval *ec)
{
    const milk_rt *d = milk_eval_in(ec, "data");
    shift_scale(ec, d->type.rank, d->type.dims, d->count, rt_val, d, NULL,
                milk_rt_f32(&ec->out[0]));
    return MILK_OK;
}

/* constexpr_blockwise_shift_scale: quantized weights, out = scale * (data
 * - offset), each scale (and offset) covering a block.
 *   data    R C  int4/uint4/int8/uint8/fp16/fp32, rank >= 1; may come from
 *                another constexpr op
 *   scale   R C  fp16/fp32 of data's rank; each dim divides data's (block
 *                size = data dim / scale dim)
 *   offset  O C  scale's shape; fp16/fp32, or data's integer dtype
 * Output: data's shape, scale's dtype. */
static const milk_param shift_scale_params[] = {
    {"data", MILK_P_REQ | MILK_P_CONST, 0},
    {"scale", MILK_P_REQ | MILK_P_CONST, 0},
    {"offset", MILK_P_CONST, 0},
    {0},
};

const milk_op_info milk_op_constexpr_blockwise_shift_scale = {
    .name = "constexpr_blockwise_shift_scale",
    .params = shift_scale_params,
    .min_opset = MILK_TARGET_IOS18,
    .infer = shift_scale_infer,
    .eval = shift_scale_eval,
};

/* ---- constexpr_lut_to_sparse (iOS18) ------------------------------------------- */

static milk_status lut_sparse_infer(milk_infer *ic)
{
    const milk_tensor_type *mask, *nz, *lut;
    int vaxis;
    MILK_TRY(tensor(ic, "indices_mask", MILK_DT(MILK_DTYPE_UINT1), &mask));
    MILK_TRY(nonzero_vector(ic, "indices_nonzero_data", DT_INDICES, &nz));
    MILK_TRY(tensor(ic, "lut", DT_LUT, &lut));
    if (nz->dims[0] > milk_tensor_type_count(mask))
        return milk_op_fail(ic->ctx, ic->op, "indices_nonzero_data",
                            "%lld values for a mask of %lld elements",
                            (long long)nz->dims[0],
                            (long long)milk_tensor_type_count(mask));
    milk_tensor_type it = *mask;
    it.dtype = nz->dtype; /* the indices, dense: the mask's shape */
    MILK_TRY(lut18_check(ic, "indices_mask", &it, lut, &vaxis));
    int64_t vs = lut->dims[lut->rank - 1];
    MILK_TRY(milk_infer_outputs(ic, 2));
    ic->out[0] = *mask;
    if (vaxis >= 0) ic->out[0].dims[vaxis] *= vs;
    ic->out[1].dtype = lut->dtype;
    ic->out[1].rank = 1;
    ic->out[1].dims[0] = nz->dims[0] * vs;
    return MILK_OK;
}

/* Dense int32 tensor of the mask's shape holding the sparse values where
 * the mask is set and 0 elsewhere (coremltools' sparse_to_dense on the
 * indices or the quantized data). */
static milk_status densify(milk_eval *ec, const char *mparam,
                           const milk_rt *mask, const char *nparam,
                           const milk_rt *nz, milk_rt *dense)
{
    MILK_TRY(milk_rt_alloc(ec->ctx, dense, &mask->type));
    dense->type.dtype = nz->type.dtype;
    dense->store = nz->store;
    milk_status s = scatter(ec, mparam, milk_rt_i32(mask), nz, nparam, dense);
    if (s != MILK_OK) milk_rt_release(dense);
    return s;
}

static milk_status lut_sparse_eval(milk_eval *ec)
{
    const milk_rt *mask = milk_eval_in(ec, "indices_mask");
    const milk_rt *nz = milk_eval_in(ec, "indices_nonzero_data");
    const milk_rt *lut = milk_eval_in(ec, "lut");
    int rank = mask->type.rank, vaxis;
    int64_t vs = lut->type.dims[rank + 1];
    MILK_TRY(vector_axis_of(ec, rank, vs, &vaxis));
    milk_rt idx, dense = {0};
    MILK_TRY(densify(ec, "indices_mask", mask, "indices_nonzero_data", nz, &idx));
    milk_rt *om = &ec->out[0], *ov = &ec->out[1];
    milk_status s = milk_rt_alloc(ec->ctx, &dense, &om->type);
    if (s == MILK_OK)
        s = lut18_expand(ec, "indices_nonzero_data", &idx, lut, vaxis,
                         (float *)dense.data);
    if (s == MILK_OK) {
        /* the mask repeated vs times along vector_axis */
        int64_t ms[MILK_MAX_RANK], os[MILK_MAX_RANK];
        strides_of(rank, mask->type.dims, ms);
        strides_of(rank, om->type.dims, os);
        for (int64_t o = 0, k = 0; o < om->count; o++) {
            int64_t src = 0, rem = o;
            for (int d = 0; d < rank; d++) {
                int64_t c = rem / os[d];
                rem %= os[d];
                src += (d == vaxis ? c / vs : c) * ms[d];
            }
            int32_t bit = milk_rt_i32(mask)[src] != 0;
            milk_rt_i32(om)[o] = bit;
            if (!bit) continue;
            float v = ((float *)dense.data)[o];
            if (ov->store == MILK_DTYPE_FP32) milk_rt_f32(ov)[k++] = v;
            else milk_rt_i32(ov)[k++] = (int32_t)v;
        }
    }
    milk_rt_release(&idx);
    milk_rt_release(&dense);
    return s;
}

/* constexpr_lut_to_sparse: palettized and pruned weights, depalettized on
 * the nonzero elements only; feeds constexpr_sparse_to_dense.
 *   indices_mask          R C  uint1, rank K: where the nonzero values are
 *   indices_nonzero_data  R C  uint1..uint8 [D]: their LUT indices
 *   lut                   R C  as constexpr_lut_to_dense's (iOS18)
 *   vector_axis           O C  as constexpr_lut_to_dense's
 * Outputs: the mask (repeated VECTOR_SIZE times along vector_axis) uint1,
 * and the LUT values of the nonzero elements [D * VECTOR_SIZE], in the
 * row-major order of the output mask. */
static const milk_param lut_sparse_params[] = {
    {"indices_mask", MILK_P_REQ | MILK_P_CONST, 0},
    {"indices_nonzero_data", MILK_P_REQ | MILK_P_CONST, 0},
    {"lut", MILK_P_REQ | MILK_P_CONST, 0},
    {"vector_axis", MILK_P_CONST, 0},
    {0},
};

const milk_op_info milk_op_constexpr_lut_to_sparse = {
    .name = "constexpr_lut_to_sparse",
    .params = lut_sparse_params,
    .min_opset = MILK_TARGET_IOS18,
    .infer = lut_sparse_infer,
    .eval = lut_sparse_eval,
};

/* ---- constexpr_sparse_blockwise_shift_scale (iOS18) ------------------------- */

static milk_status sparse_shift_infer(milk_infer *ic)
{
    const milk_tensor_type *mask, *nz, *s;
    MILK_TRY(tensor(ic, "data_mask", MILK_DT(MILK_DTYPE_UINT1), &mask));
    MILK_TRY(nonzero_vector(ic, "nonzero_data", DT_SHIFT, &nz));
    if (nz->dims[0] > milk_tensor_type_count(mask))
        return milk_op_fail(ic->ctx, ic->op, "nonzero_data",
                            "%lld values for a mask of %lld elements",
                            (long long)nz->dims[0],
                            (long long)milk_tensor_type_count(mask));
    MILK_TRY(shift_scale_check(ic, mask, "data_mask", nz->dtype, &s));
    MILK_TRY(milk_infer_outputs(ic, 2));
    ic->out[0] = *mask;
    ic->out[1] = *nz;
    ic->out[1].dtype = s->dtype;
    return MILK_OK;
}

static milk_status sparse_shift_eval(milk_eval *ec)
{
    const milk_rt *mask = milk_eval_in(ec, "data_mask");
    const milk_rt *nz = milk_eval_in(ec, "nonzero_data");
    milk_rt dense;
    MILK_TRY(densify(ec, "data_mask", mask, "nonzero_data", nz, &dense));
    milk_copy(ec->out[0].data, mask->data, (size_t)mask->count * sizeof(int32_t));
    shift_scale(ec, mask->type.rank, mask->type.dims, mask->count, rt_val,
                &dense, milk_rt_i32(mask), milk_rt_f32(&ec->out[1]));
    milk_rt_release(&dense);
    return MILK_OK;
}

/* constexpr_sparse_blockwise_shift_scale: quantized and pruned weights,
 * dequantized on the nonzero elements only; feeds
 * constexpr_sparse_to_dense.
 *   data_mask     R C  uint1, rank K
 *   nonzero_data  R C  int4/uint4/int8/uint8/fp16/fp32 [D]
 *   scale         R C  as constexpr_blockwise_shift_scale's, blocks over
 *                      data_mask's shape
 *   offset        O C  as constexpr_blockwise_shift_scale's
 * Outputs: data_mask unchanged (uint1), and the dequantized nonzero values
 * [D] of scale's dtype. */
static const milk_param sparse_shift_params[] = {
    {"data_mask", MILK_P_REQ | MILK_P_CONST, 0},
    {"nonzero_data", MILK_P_REQ | MILK_P_CONST, 0},
    {"scale", MILK_P_REQ | MILK_P_CONST, 0},
    {"offset", MILK_P_CONST, 0},
    {0},
};

const milk_op_info milk_op_constexpr_sparse_blockwise_shift_scale = {
    .name = "constexpr_sparse_blockwise_shift_scale",
    .params = sparse_shift_params,
    .min_opset = MILK_TARGET_IOS18,
    .infer = sparse_shift_infer,
    .eval = sparse_shift_eval,
};
