/* plan.c: milk_program_compress: which consts are compressed and how, as
 * coremltools.optimize.coreml decides (float consts of rank >= 2 above a
 * size, channel axes from the ops reading them, block sizes from the
 * granularity), the constexpr ops that replace each, in the form of the
 * function's opset, and the report. The spec parser of `--compress`
 * lives here too. */
#include "compress.h"

#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#define DEFAULT_MIN_ELEMENTS 2048
#define DEFAULT_SAMPLES 65536

static milk_status nomem(milk_ctx *ctx)
{
    return milk_errorf(ctx, MILK_ERR_NOMEM, "out of memory");
}

/* ---- the spec -------------------------------------------------------------------- */

static bool parse_int(const char *s, int *v)
{
    char *end;
    long x = strtol(s, &end, 10);
    if (end == s || *end || x < 0 || x > 1 << 20) return false;
    *v = (int)x;
    return true;
}

static milk_status spec_item(milk_ctx *ctx, char *item, milk_compress_params *p)
{
    static const struct { const char *name; milk_dtype dt; } quants[] = {
        {"int8", MILK_DTYPE_INT8}, {"uint8", MILK_DTYPE_UINT8},
        {"int4", MILK_DTYPE_INT4}, {"uint4", MILK_DTYPE_UINT4}};
    for (size_t i = 0; i < MILK_ARRAY_LEN(quants); i++)
        if (strcmp(item, quants[i].name) == 0) {
            if (p->palette_bits && quants[i].dt == MILK_DTYPE_INT8) p->lut_int8 = 1;
            else p->quant = quants[i].dt;
            return MILK_OK;
        }
    char *colon = strchr(item, ':');
    if (colon && strncmp(item, "palette", (size_t)(colon - item)) == 0 &&
        colon - item == 7) {
        if (!parse_int(colon + 1, &p->palette_bits))
            return milk_errorf(ctx, MILK_ERR_INVALID_ARG,
                               "compression spec: '%s': palette:N takes the "
                               "bits of the LUT (1, 2, 3, 4, 6 or 8)",
                               item);
        if (p->quant == MILK_DTYPE_INT8) { /* "int8+palette:4": an int8 LUT */
            p->quant = 0;
            p->lut_int8 = 1;
        }
        return MILK_OK;
    }
    if (colon && colon - item == 5 && strncmp(item, "prune", 5) == 0) {
        char *second = strchr(colon + 1, ':');
        if (second) {
            *second = 0;
            if (!parse_int(colon + 1, &p->prune_n) || !parse_int(second + 1, &p->prune_m))
                return milk_errorf(ctx, MILK_ERR_INVALID_ARG,
                                   "compression spec: 'prune:%s:%s': n:m "
                                   "pruning takes two integers",
                                   colon + 1, second + 1);
            return MILK_OK;
        }
        char *end;
        double f = strtod(colon + 1, &end);
        if (*end == '%' && end[1] == 0) {
            f /= 100;
            end++;
        }
        if (end == colon + 1 || *end || !(f > 0 && f < 1))
            return milk_errorf(ctx, MILK_ERR_INVALID_ARG,
                               "compression spec: '%s': prune:F takes the "
                               "fraction to zero, above 0 and below 1 (or a "
                               "percentage)",
                               item);
        p->prune = f;
        return MILK_OK;
    }
    return milk_errorf(ctx, MILK_ERR_INVALID_ARG,
                       "compression spec: unknown item '%s' (int8, uint8, "
                       "int4, uint4, palette:N, prune:F, prune:N:M, joined "
                       "by '+')",
                       item);
}

milk_status milk_compress_spec_parse(milk_ctx *ctx, const char *spec,
                                     milk_compress_params *p)
{
    memset(p, 0, sizeof *p);
    char buf[256];
    if (!spec || !*spec || strlen(spec) >= sizeof buf)
        return milk_errorf(ctx, MILK_ERR_INVALID_ARG,
                           "compression spec: empty or too long");
    snprintf(buf, sizeof buf, "%s", spec);
    for (char *item = buf, *next; item; item = next) {
        next = strchr(item, '+');
        if (next) *next++ = 0;
        for (char *c = item; *c; c++) *c = (char)tolower((unsigned char)*c);
        MILK_TRY(spec_item(ctx, item, p));
    }
    return MILK_OK;
}

/* ---- what the params ask for, and what the target can express ----------------- */

static const char *target_name(milk_target t)
{
    return milk_target_name(t) ? milk_target_name(t) : "?";
}

static milk_status check_params(milk_ctx *ctx, const milk_compress_params *p)
{
    bool prune = p->prune > 0 || p->prune_m > 0;
    if (p->quant && p->quant != MILK_DTYPE_INT8 && p->quant != MILK_DTYPE_UINT8 &&
        p->quant != MILK_DTYPE_INT4 && p->quant != MILK_DTYPE_UINT4)
        return milk_errorf(ctx, MILK_ERR_INVALID_ARG,
                           "quant: %s; linear quantization is to int8, uint8, "
                           "int4 or uint4",
                           milk_dtype_name(p->quant) ? milk_dtype_name(p->quant) : "?");
    int b = p->palette_bits;
    if (b && b != 1 && b != 2 && b != 3 && b != 4 && b != 6 && b != 8)
        return milk_errorf(ctx, MILK_ERR_INVALID_ARG,
                           "palette_bits: %d; LUTs have 1, 2, 3, 4, 6 or 8 bits", b);
    if (!p->quant && !b && !prune)
        return milk_errorf(ctx, MILK_ERR_INVALID_ARG,
                           "nothing to do: give quant, palette_bits or pruning");
    if (p->quant && b)
        return milk_errorf(ctx, MILK_ERR_INVALID_ARG,
                           "quant and palette_bits together: palettize with an "
                           "int8 LUT (lut_int8) or quantize, not both");
    if (p->lut_int8 && !b)
        return milk_errorf(ctx, MILK_ERR_INVALID_ARG, "lut_int8 without palette_bits");
    if (p->prune > 0 && p->prune_m > 0)
        return milk_errorf(ctx, MILK_ERR_INVALID_ARG,
                           "prune and prune_n:prune_m together: one pruning");
    if (p->prune < 0 || p->prune >= 1)
        return milk_errorf(ctx, MILK_ERR_INVALID_ARG,
                           "prune: %g; the fraction zeroed is above 0 and below 1",
                           p->prune);
    if (p->prune_m && (p->prune_n < 1 || p->prune_n >= p->prune_m || p->prune_m > 256))
        return milk_errorf(ctx, MILK_ERR_INVALID_ARG,
                           "prune %d:%d; n:m pruning takes 1 <= n < m <= 256",
                           p->prune_n, p->prune_m);
    milk_compress_granularity g = p->granularity;
    if (g < MILK_GRANULARITY_DEFAULT || g > MILK_GRANULARITY_PER_GROUPED_CHANNEL)
        return milk_errorf(ctx, MILK_ERR_INVALID_ARG, "granularity: %d", (int)g);
    if ((g == MILK_GRANULARITY_PER_BLOCK || g == MILK_GRANULARITY_PER_GROUPED_CHANNEL) &&
        p->block_size < 1)
        return milk_errorf(ctx, MILK_ERR_INVALID_ARG,
                           "block_size: %lld; per-block and per-grouped-channel "
                           "take a size >= 1",
                           (long long)p->block_size);
    if (g == MILK_GRANULARITY_PER_BLOCK && !p->quant)
        return milk_errorf(ctx, MILK_ERR_INVALID_ARG,
                           "per-block granularity is for quantization; a LUT per "
                           "group of channels is per-grouped-channel");
    if (g == MILK_GRANULARITY_PER_GROUPED_CHANNEL && !b)
        return milk_errorf(ctx, MILK_ERR_INVALID_ARG,
                           "per-grouped-channel granularity is for palettization");
    if (g == MILK_GRANULARITY_PER_CHANNEL && !p->quant)
        return milk_errorf(ctx, MILK_ERR_INVALID_ARG,
                           "per-channel granularity is for quantization; a LUT per "
                           "channel is per-grouped-channel with block size 1");
    if (p->min_elements < 0 || p->kmeans_samples < 0)
        return milk_errorf(ctx, MILK_ERR_INVALID_ARG, "negative size");
    return MILK_OK;
}

/* What the function's opset cannot express: the target that can. */
static milk_status check_target(milk_ctx *ctx, const milk_compress_params *p,
                                milk_target t)
{
    const char *need = NULL;
    bool joint = (p->prune > 0 || p->prune_m) && (p->quant || p->palette_bits);
    if (t < MILK_TARGET_IOS16)
        need = "compressed weights (constexpr ops)";
    else if (t >= MILK_TARGET_IOS18)
        return MILK_OK;
    else if (p->quant == MILK_DTYPE_INT4 || p->quant == MILK_DTYPE_UINT4)
        need = "4-bit quantization (constexpr_blockwise_shift_scale)";
    else if (p->granularity == MILK_GRANULARITY_PER_BLOCK)
        need = "per-block scales (constexpr_blockwise_shift_scale)";
    else if (p->palette_bits == 3)
        need = "3-bit LUTs (constexpr_lut_to_dense with uint3 indices)";
    else if (p->granularity == MILK_GRANULARITY_PER_GROUPED_CHANNEL)
        need = "a LUT per group of channels (iOS18 constexpr_lut_to_dense)";
    else if (p->lut_int8)
        need = "int8 LUTs (constexpr_blockwise_shift_scale on the LUT)";
    else if (joint)
        need = "pruning with quantization or palettization "
               "(constexpr_lut_to_sparse, constexpr_sparse_blockwise_shift_scale)";
    if (!need) return MILK_OK;
    bool old = t < MILK_TARGET_IOS16;
    return milk_errorf(ctx, MILK_ERR_UNSUPPORTED,
                       "%s: needs target %s or later; the program's is %s "
                       "(convert again with --target %s)",
                       need, old ? "ios16" : "ios18", target_name(t),
                       old ? "ios16" : "ios18");
}

/* ---- the report -------------------------------------------------------------------- */

struct milk_compress_report {
    int n, cap;
    milk_compress_row **rows;
    cw **ws;                 /* per row, NULL if not compressed */
};

milk_status milk_compress_report_create(milk_ctx *ctx, milk_compress_report **out)
{
    *out = calloc(1, sizeof **out);
    return *out ? MILK_OK : nomem(ctx);
}

static void row_free(milk_compress_row *r)
{
    if (!r) return;
    free((char *)r->name);
    free((char *)r->function);
    free((char *)r->readers);
    free((char *)r->how);
    free(r);
}

void milk_compress_report_free(milk_compress_report *r)
{
    if (!r) return;
    for (int i = 0; i < r->n; i++) row_free(r->rows[i]);
    free(r->rows);
    free(r->ws);
    free(r);
}

int milk_compress_report_count(const milk_compress_report *r)
{
    return r ? r->n : 0;
}

const milk_compress_row *milk_compress_report_at(const milk_compress_report *r,
                                                 int i)
{
    return r && i >= 0 && i < r->n ? r->rows[i] : NULL;
}

milk_status milk_compress_report_measure(milk_ctx *ctx, milk_compress_report *r)
{
    for (int i = 0; r && i < r->n; i++)
        if (r->ws[i] && !r->ws[i]->measured)
            MILK_TRY(cw_pass_as(ctx, r->ws[i], NULL, NULL, true));
    return MILK_OK;
}

static milk_compress_row *report_add(milk_compress_report *r, cw *w)
{
    if (!r) return NULL;
    if (r->n == r->cap) {
        int cap = r->cap ? 2 * r->cap : 16;
        milk_compress_row **rows = realloc(r->rows, (size_t)cap * sizeof *rows);
        if (!rows) return NULL;
        r->rows = rows;
        cw **ws = realloc(r->ws, (size_t)cap * sizeof *ws);
        if (!ws) return NULL;
        r->ws = ws;
        r->cap = cap;
    }
    milk_compress_row *row = calloc(1, sizeof *row);
    if (!row) return NULL;
    r->rows[r->n] = row;
    r->ws[r->n++] = w;
    return row;
}

/* ---- choosing the weights ------------------------------------------------------------- */

/* A candidate: a float const of main's (or another function's) block. */
typedef struct cand {
    milk_function *f;
    milk_op *op;          /* the const */
    milk_var *v;
    const char *skip;     /* why it stays dense, or NULL */
    char why[160];
    char readers[256];
    int out_axis, in_axis;
    cw *w;
    milk_compress_row *row;
} cand;

static bool in_list(const char *const *list, int n, const char *s)
{
    for (int i = 0; i < n; i++)
        if (list[i] && strcmp(list[i], s) == 0) return true;
    return false;
}

static void add_reader(cand *c, const char *type)
{
    size_t len = strlen(c->readers);
    if (strstr(c->readers, type)) return;
    snprintf(c->readers + len, sizeof c->readers - len, "%s%s", len ? ", " : "", type);
}

/* Channel axes for one reader (coremltools' select_input_output_channel_axis):
 * conv_transpose's weight is [C_in, C_out, ...]; matmul's operands follow
 * their transposes; everything else is [C_out, C_in, ...]. */
static void reader_axes(const milk_op *op, const milk_var *v, int rank, int *out,
                        int *in)
{
    const char *t = milk_ops[op->kind]->name;
    *out = 0;
    *in = 1;
    if (strcmp(t, "conv_transpose") == 0) {
        *out = 1;
        *in = 0;
    } else if (strcmp(t, "matmul") == 0) {
        bool is_y = milk_op_var(op, "y") == v, tr = false;
        milk_op_bool(NULL, op, is_y ? "transpose_y" : "transpose_x", false, &tr);
        if (is_y) {
            *out = tr ? rank - 2 : rank - 1;
            *in = tr ? rank - 1 : rank - 2;
        } else {
            *out = tr ? rank - 1 : rank - 2;
            *in = tr ? rank - 2 : rank - 1;
        }
    }
}

static void skipf(cand *c, const char *fmt, ...) MILK_PRINTF(2, 3);
static void skipf(cand *c, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->why, sizeof c->why, fmt, ap);
    va_end(ap);
    c->skip = c->why;
}

/* The readers of c's var, its axes, and whether it can be compressed at
 * all (whatever the method). */
static void examine(cand *c, const milk_compress_params *p)
{
    const milk_value *val = c->op->val;
    const milk_tensor_type *t = &val->type;
    int64_t n = milk_tensor_type_count(t);
    int64_t min = p->min_elements ? p->min_elements : DEFAULT_MIN_ELEMENTS;
    int uses = 0, out = -1, in = -1;
    bool axes_ok = true;
    const milk_block *b = c->f->block;
    for (int i = 0; i < b->n_ops; i++) {
        const milk_op *op = b->ops[i];
        bool reads = false;
        for (int a = 0; a < op->n_args; a++)
            for (int j = 0; j < op->args[a].n; j++)
                if (op->args[a].b[j].var == c->v) reads = true, uses++;
        if (!reads) continue;
        add_reader(c, milk_ops[op->kind]->name);
        if (milk_op_is_constexpr(op)) {
            skipf(c, "already read by %s", milk_ops[op->kind]->name);
            return;
        }
        int o, r;
        reader_axes(op, c->v, t->rank, &o, &r);
        if ((out >= 0 && o != out) || (in >= 0 && r != in)) axes_ok = false;
        out = o;
        in = r;
    }
    for (int i = 0; i < b->n_outputs; i++)
        if (b->outputs[i] == c->v) {
            skipf(c, "a model output");
            return;
        }
    c->out_axis = axes_ok ? out : -1;
    c->in_axis = axes_ok ? in : -1;
    if (uses != milk_var_use_count(c->f, c->v))
        skipf(c, "read inside a nested block");
    else if (!uses)
        skipf(c, "not read by any op");
    else if (t->rank < 2)
        skipf(c, "rank %d (coremltools leaves rank-1 weights dense: a MIL "
                 "defect with 1-D compressed tensors)", (int)t->rank);
    else if (n <= min)
        skipf(c, "%lld elements, not above the minimum size %lld", (long long)n,
              (long long)min);
    else if (p->n_op_names && !in_list(p->op_names, p->n_op_names, c->op->name) &&
             !in_list(p->op_names, p->n_op_names, c->v->name))
        skipf(c, "not among the weights named");
    else if (p->n_op_types) {
        char list[256];
        snprintf(list, sizeof list, "%s", c->readers);
        for (char *s = strtok(list, ", "); s; s = strtok(NULL, ", "))
            if (!in_list(p->op_types, p->n_op_types, s)) {
                skipf(c, "read by %s, not among the op types given", s);
                break;
            }
    }
}

/* ---- planning one weight ---------------------------------------------------------- */

static int64_t type_bytes(milk_dtype d, int64_t n)
{
    uint64_t b = 0;
    milk_dtype_nbytes(d, n, &b);
    return (int64_t)b;
}

/* Block sizes for quantization (coremltools' infer_block_sizes); false
 * with c->skip set when the weight does not allow them. */
static bool quant_blocks(cand *c, const milk_compress_params *p, cw *w)
{
    const milk_tensor_type *t = &w->type;
    milk_compress_granularity g = p->granularity ? p->granularity
                                                 : MILK_GRANULARITY_PER_CHANNEL;
    for (int d = 0; d < t->rank; d++) w->bs[d] = t->dims[d];
    if (g != MILK_GRANULARITY_PER_TENSOR) {
        if (w->out_axis < 0) {
            skipf(c, "its readers disagree on the output channel axis");
            return false;
        }
        w->bs[w->out_axis] = 1;
    }
    if (g == MILK_GRANULARITY_PER_BLOCK) {
        int ia = w->in_axis;
        if (t->dims[ia] % p->block_size) {
            skipf(c, "block size %lld does not divide the input axis (%d) "
                     "of size %lld",
                  (long long)p->block_size, ia, (long long)t->dims[ia]);
            return false;
        }
        w->bs[ia] = p->block_size;
    }
    int64_t acc = 1;
    for (int d = t->rank - 1; d >= 0; d--) {
        w->sdims[d] = t->dims[d] / w->bs[d];
        w->sstride[d] = acc;
        acc *= w->sdims[d];
    }
    w->nblocks = acc;
    return true;
}

static void describe(cand *c, const milk_compress_params *p, cw *w, char *how,
                     size_t n)
{
    size_t k = 0;
    how[0] = 0;
#define ADD(...) (k += (size_t)snprintf(how + k, k < n ? n - k : 0, __VA_ARGS__))
    if (w->prune == CW_PRUNE_MAGNITUDE)
        ADD("pruned %.1f%% by magnitude", 100.0 * (double)(w->n - w->kept) / (double)w->n);
    else if (w->prune == CW_PRUNE_NM)
        ADD("pruned %d:%d along axis %d (%.1f%% zeros)", w->pn, w->pm, w->in_axis,
            100.0 * (double)(w->n - w->kept) / (double)w->n);
    if (w->qdt) {
        ADD("%s%s %s", k ? ", then " : "", milk_dtype_name(w->qdt),
            w->affine ? "affine" : "symmetric");
        if (w->nblocks == 1) ADD(" per-tensor");
        else if (p->granularity != MILK_GRANULARITY_PER_BLOCK)
            ADD(" per-channel (axis %d)", w->out_axis);
        else {
            ADD(", blocks [");
            for (int d = 0; d < w->type.rank; d++) ADD("%s%lld", d ? ", " : "", (long long)w->bs[d]);
            ADD("]");
        }
    }
    if (w->bits) {
        ADD("%spalette %d-bit %s", k ? ", then " : "", w->bits,
            p->palette_uniform ? "uniform" : "k-means");
        if (w->nluts > 1)
            ADD(", %lld LUTs of %lld channels (axis %d)", (long long)w->nluts,
                (long long)w->group, w->out_axis);
        else
            ADD(" per-tensor");
        if (w->lutq) ADD(", int8 LUT");
    }
#undef ADD
    (void)c;
}

/* Decide everything about c's weight and compute what must be known
 * before any data is produced. Sets c->skip instead of failing when the
 * weight cannot take the method. */
static milk_status plan(milk_ctx *ctx, milk_arena *a, cand *c,
                        const milk_compress_params *p)
{
    cw *w = milk_arena_alloc(a, sizeof *w);
    if (!w) return nomem(ctx);
    w->src = c->op->val;
    w->type = c->op->val->type;
    w->n = milk_tensor_type_count(&w->type);
    w->half = w->type.dtype == MILK_DTYPE_FP16;
    w->out_axis = c->out_axis;
    w->in_axis = c->in_axis;
    w->row = c->row;
    w->measure = p->measure != 0;
    cw_layout(w); /* strides */
    if (p->prune > 0) w->prune = CW_PRUNE_MAGNITUDE;
    if (p->prune_m) {
        if (w->in_axis < 0) {
            skipf(c, "its readers disagree on the input channel axis");
            return MILK_OK;
        }
        if (2 * p->prune_m > w->type.dims[w->in_axis]) { /* as coremltools */
            skipf(c, "n:m with m = %d above half the input channels (axis %d: %lld)",
                  p->prune_m, w->in_axis, (long long)w->type.dims[w->in_axis]);
            return MILK_OK;
        }
        w->prune = CW_PRUNE_NM;
        w->pn = p->prune_n;
        w->pm = p->prune_m;
    }
    if (p->quant) {
        w->qdt = p->quant;
        w->affine = p->affine != 0;
        int bits = milk_dtype_bits(p->quant);
        bool sign = p->quant == MILK_DTYPE_INT8 || p->quant == MILK_DTYPE_INT4;
        w->qmin = sign ? -(1 << (bits - 1)) : 0;
        w->qmax = sign ? (1 << (bits - 1)) - 1 : (1 << bits) - 1;
        if (!w->affine) { /* symmetric: the range made symmetric around 0 */
            if (sign) w->qmin++;
            else w->qmax--;
        }
        if (!quant_blocks(c, p, w)) return MILK_OK;
        w->scale = milk_arena_alloc(a, (size_t)w->nblocks * sizeof *w->scale);
        w->zp = milk_arena_alloc(a, (size_t)w->nblocks * sizeof *w->zp);
        if (!w->scale || !w->zp) return nomem(ctx);
        w->has_offset = w->affine || !sign;
    }
    if (p->palette_bits) {
        w->bits = p->palette_bits;
        w->nluts = 1;
        if (p->granularity == MILK_GRANULARITY_PER_GROUPED_CHANNEL) {
            if (w->out_axis < 0) {
                skipf(c, "its readers disagree on the output channel axis");
                return MILK_OK;
            }
            int64_t ch = w->type.dims[w->out_axis];
            if (ch % p->block_size) {
                skipf(c, "group size %lld does not divide the output channels "
                         "(axis %d) of %lld",
                      (long long)p->block_size, w->out_axis, (long long)ch);
                return MILK_OK;
            }
            w->group = p->block_size;
            w->nluts = ch / w->group;
        }
    }
    cw_layout(w);
    if (w->prune == CW_PRUNE_NM && w->type.dims[w->in_axis] * w->inner[w->in_axis] > CW_MAX_SLAB) {
        skipf(c, "n:m groups along axis %d span more than %lld elements",
              w->in_axis, (long long)CW_MAX_SLAB);
        return MILK_OK;
    }
    if (w->qdt && w->slab > CW_MAX_SLAB) {
        MILK_TRY(cw_scales(ctx, w)); /* a pass of its own */
        cw_layout(w);
    }
    if (w->prune == CW_PRUNE_MAGNITUDE) MILK_TRY(cw_prune_threshold(ctx, w, p->prune));
    if (w->prune == CW_PRUNE_NM) MILK_TRY(cw_count_kept(ctx, w));
    if (w->prune && w->kept == 0) {
        skipf(c, "every weight would be pruned");
        return MILK_OK;
    }
    if (w->bits)
        MILK_TRY(cw_luts(ctx, a, w, p->palette_uniform != 0, p->lut_int8 != 0,
                         p->seed, p->kmeans_samples ? p->kmeans_samples : DEFAULT_SAMPLES));
    c->w = w;
    return MILK_OK;
}

/* ---- building the constexpr ops ------------------------------------------------- */

typedef struct builder {
    milk_ctx *ctx;
    milk_function *f;
    milk_block *b;
    milk_arena *a;
    int at;                /* where the next op goes */
    const char *base;      /* the weight's var name */
    int64_t bytes;         /* of the values bound so far */
} builder;

typedef struct bind {
    const char *param;
    milk_var *var;
    milk_value *val;
} bind;

static milk_value *small_value(builder *bd, milk_dtype dt, int rank,
                               const int64_t *dims, const void *data)
{
    milk_tensor_type t = {dt, rank, {0}};
    for (int i = 0; i < rank; i++) t.dims[i] = dims[i];
    return milk_value_new_tensor(bd->a, &t, data);
}

/* Values of the weight's dtype from floats. */
static milk_value *float_value(builder *bd, const cw *w, int rank,
                               const int64_t *dims, const float *x)
{
    milk_tensor_type t = {w->type.dtype, rank, {0}};
    for (int i = 0; i < rank; i++) t.dims[i] = dims[i];
    int64_t n = milk_tensor_type_count(&t);
    milk_value *v = milk_value_new_tensor(bd->a, &t, NULL);
    if (!v) return NULL;
    for (int64_t i = 0; i < n; i++) {
        if (w->half) ((uint16_t *)v->data.ptr)[i] = milk_fp32_to_fp16(x[i]);
        else ((float *)v->data.ptr)[i] = x[i];
    }
    return v;
}

static milk_value *gen_value(builder *bd, cw *w, cw_part part, milk_dtype dt,
                             int rank, const int64_t *dims)
{
    milk_tensor_type t = {dt, rank, {0}};
    for (int i = 0; i < rank; i++) t.dims[i] = dims[i];
    return cw_gen_value(bd->a, w, part, &t);
}

/* Append an op of `type` with the given bindings at bd->at; its outputs
 * get fresh names from `names`. */
static milk_status add_op(builder *bd, const char *type, const char *suffix,
                          const bind *binds, int n, const char *const *names,
                          milk_var **outs)
{
    int kind = milk_op_kind_from_name(type);
    char opname[512];
    snprintf(opname, sizeof opname, "%s_%s", bd->base, suffix);
    milk_op *op = milk_op_new(bd->a, kind, milk_arena_strdup(bd->a, opname));
    if (!op || !op->name) return nomem(bd->ctx);
    for (int i = 0; i < n; i++) {
        if (!binds[i].var && !binds[i].val) return nomem(bd->ctx);
        MILK_TRY(milk_op_bind(bd->ctx, bd->a, op, binds[i].param, binds[i].var,
                              binds[i].val));
        if (binds[i].val) {
            uint64_t nb = 0;
            milk_value_nbytes(binds[i].val, &nb);
            bd->bytes += (int64_t)nb;
        }
    }
    op->block = bd->b;
    milk_infer ic;
    MILK_TRY(milk_op_infer(bd->ctx, op, &ic));
    milk_status s = MILK_OK;
    for (int k = 0; s == MILK_OK && k < ic.n_out; k++) {
        char vname[512];
        snprintf(vname, sizeof vname, "%s_%s", bd->base, names[k]);
        char fresh[600];
        milk_function_fresh_name(bd->f, vname, fresh, sizeof fresh);
        s = milk_op_add_output(bd->ctx, bd->f, op, fresh, &ic.out[k], &outs[k]);
    }
    milk_infer_release(&ic);
    op->block = NULL;
    MILK_TRY(s);
    MILK_TRY(milk_block_insert(bd->ctx, bd->b, bd->at, op));
    bd->at++;
    return MILK_OK;
}

/* The LUT input: an inline value, or an int8 LUT behind
 * constexpr_blockwise_shift_scale. */
static milk_status lut_input(builder *bd, cw *w, bind *out)
{
    int r = w->type.rank;
    int64_t dims[MILK_MAX_RANK + 2], sdims[MILK_MAX_RANK + 2];
    for (int d = 0; d < r; d++) dims[d] = sdims[d] = 1;
    if (w->nluts > 1) dims[w->out_axis] = sdims[w->out_axis] = w->nluts;
    dims[r] = 1 << w->bits;
    dims[r + 1] = sdims[r] = sdims[r + 1] = 1;
    out->param = "lut";
    out->var = NULL;
    if (!w->lutq) {
        out->val = float_value(bd, w, r + 2, dims, w->lut);
        return MILK_OK;
    }
    bind b[] = {{"data", NULL, small_value(bd, MILK_DTYPE_INT8, r + 2, dims, w->lutq)},
                {"scale", NULL, float_value(bd, w, r + 2, sdims, w->lut_scale)}};
    static const char *const names[] = {"lut"};
    return add_op(bd, "constexpr_blockwise_shift_scale", "lut_quantized", b, 2,
                  names, &out->var);
}

/* iOS16 and iOS17: constexpr_affine_dequantize, the iOS16
 * constexpr_lut_to_dense and constexpr_sparse_to_dense. */
static milk_status build_ios16(builder *bd, cw *w, milk_var **out)
{
    const milk_tensor_type *t = &w->type;
    static const char *const names[] = {"c"};
    uint32_t shape[MILK_MAX_RANK];
    for (int d = 0; d < t->rank; d++) shape[d] = (uint32_t)t->dims[d];
    int64_t rank1[1] = {t->rank};
    milk_value *shape_v = small_value(bd, MILK_DTYPE_UINT32, 1, rank1, shape);
    if (w->qdt) {
        bool vec = w->nblocks > 1;
        int64_t c[1] = {w->nblocks};
        int32_t axis = vec ? w->out_axis : 0;
        bind b[] = {
            {"quantized_data", NULL, gen_value(bd, w, CW_CODES, w->qdt, t->rank, t->dims)},
            {"zero_point", NULL, gen_value(bd, w, CW_OFFSETS, w->qdt, vec, c)},
            {"scale", NULL, gen_value(bd, w, CW_SCALES, t->dtype, vec, c)},
            {"axis", NULL, small_value(bd, MILK_DTYPE_INT32, 0, NULL, &axis)}};
        return add_op(bd, "constexpr_affine_dequantize", "quantized", b, 4, names, out);
    }
    if (w->bits) {
        int64_t nb[1] = {(w->n * w->bits + 7) / 8}, k[1] = {1 << w->bits};
        bind b[] = {{"indices", NULL, gen_value(bd, w, CW_CODES, MILK_DTYPE_UINT8, 1, nb)},
                    {"lut", NULL, float_value(bd, w, 1, k, w->lut)},
                    {"shape", NULL, shape_v}};
        return add_op(bd, "constexpr_lut_to_dense", "palettized", b, 3, names, out);
    }
    int64_t nz[1] = {w->kept}, mb[1] = {(w->n + 7) / 8};
    bind b[] = {{"nonzero_data", NULL, gen_value(bd, w, CW_NZ_VALUES, t->dtype, 1, nz)},
                {"mask", NULL, gen_value(bd, w, CW_MASK, MILK_DTYPE_UINT8, 1, mb)},
                {"shape", NULL, shape_v}};
    return add_op(bd, "constexpr_sparse_to_dense", "sparsified", b, 3, names, out);
}

static milk_status build_ios18(builder *bd, cw *w, milk_var **out)
{
    const milk_tensor_type *t = &w->type;
    static const char *const names[] = {"c"};
    static const char *const pair[] = {"sparse_mask", "sparse_values"};
    int64_t nz[1] = {w->kept};
    milk_dtype idt = (milk_dtype)0;
    if (w->bits) {
        static const milk_dtype by_bits[] = {0, MILK_DTYPE_UINT1, MILK_DTYPE_UINT2,
                                             MILK_DTYPE_UINT3, MILK_DTYPE_UINT4, 0,
                                             MILK_DTYPE_UINT6, 0, MILK_DTYPE_UINT8};
        idt = by_bits[w->bits];
    }
    bind scale = {"scale", NULL, NULL}, offset = {"offset", NULL, NULL};
    if (w->qdt) {
        scale.val = gen_value(bd, w, CW_SCALES, t->dtype, t->rank, w->sdims);
        if (w->has_offset) offset.val = gen_value(bd, w, CW_OFFSETS, w->qdt, t->rank, w->sdims);
    }
    if (!w->prune) {
        if (w->qdt) {
            bind b[] = {{"data", NULL, gen_value(bd, w, CW_CODES, w->qdt, t->rank, t->dims)},
                        scale, offset};
            return add_op(bd, "constexpr_blockwise_shift_scale", "quantized", b,
                          w->has_offset ? 3 : 2, names, out);
        }
        bind b[2] = {{"indices", NULL, gen_value(bd, w, CW_CODES, idt, t->rank, t->dims)}};
        MILK_TRY(lut_input(bd, w, &b[1]));
        return add_op(bd, "constexpr_lut_to_dense", "palettized", b, 2, names, out);
    }
    milk_value *mask = gen_value(bd, w, CW_MASK, MILK_DTYPE_UINT1, t->rank, t->dims);
    milk_var *mv[2];
    if (w->qdt) {
        bind b[] = {{"data_mask", NULL, mask},
                    {"nonzero_data", NULL, gen_value(bd, w, CW_NZ_CODES, w->qdt, 1, nz)},
                    scale, offset};
        MILK_TRY(add_op(bd, "constexpr_sparse_blockwise_shift_scale", "sparse_quantized",
                        b, w->has_offset ? 4 : 3, pair, mv));
    } else if (w->bits) {
        bind b[3] = {{"indices_mask", NULL, mask},
                     {"indices_nonzero_data", NULL, gen_value(bd, w, CW_NZ_CODES, idt, 1, nz)}};
        MILK_TRY(lut_input(bd, w, &b[2]));
        MILK_TRY(add_op(bd, "constexpr_lut_to_sparse", "sparse_palettized", b, 3, pair, mv));
    }
    if (w->qdt || w->bits) {
        bind b[] = {{"nonzero_data", mv[1], NULL}, {"mask", mv[0], NULL}};
        return add_op(bd, "constexpr_sparse_to_dense", "sparsified", b, 2, names, out);
    }
    bind b[] = {{"nonzero_data", NULL, gen_value(bd, w, CW_NZ_VALUES, t->dtype, 1, nz)},
                {"mask", NULL, mask}};
    return add_op(bd, "constexpr_sparse_to_dense", "sparsified", b, 2, names, out);
}

/* Replace c's const by the constexpr ops; the last one's output takes the
 * const's var name. */
static milk_status apply(milk_ctx *ctx, cand *c)
{
    milk_block *b = c->f->block;
    builder bd = {ctx, c->f, b, c->f->prog->arena, milk_block_index_of(b, c->op),
                  c->v->name, 0};
    milk_var *out;
    MILK_TRY(c->f->opset >= MILK_TARGET_IOS18 ? build_ios18(&bd, c->w, &out)
                                              : build_ios16(&bd, c->w, &out));
    const char *name = c->v->name;
    milk_function_replace_uses(c->f, c->v, out);
    milk_block_remove(b, c->op);
    MILK_TRY(milk_var_set_name(ctx, out, name));
    if (c->row) c->row->bytes_after = (uint64_t)bd.bytes;
    return MILK_OK;
}

/* ---- the driver ------------------------------------------------------------------- */

static char *dup(const char *s)
{
    return strdup(s ? s : "");
}

/* Candidates: float consts with 10 elements or more (the ones coremltools
 * would put in weight.bin), in every function. */
static milk_status candidates(milk_ctx *ctx, milk_program *p, cand **out, int *n)
{
    int cap = 0;
    *out = NULL;
    *n = 0;
    for (int f = 0; f < p->n_functions; f++) {
        milk_block *b = p->functions[f]->block;
        for (int i = 0; i < b->n_ops; i++) {
            milk_op *op = b->ops[i];
            const milk_value *v = op->val;
            if (op->kind != MILK_OP_const_ || !v || v->kind != MILK_VALUE_TENSOR ||
                (v->type.dtype != MILK_DTYPE_FP16 && v->type.dtype != MILK_DTYPE_FP32) ||
                milk_tensor_type_count(&v->type) < 10)
                continue;
            if (*n == cap) {
                cap = cap ? 2 * cap : 64;
                cand *c = realloc(*out, (size_t)cap * sizeof *c);
                if (!c) return nomem(ctx);
                *out = c;
            }
            cand *c = &(*out)[(*n)++];
            memset(c, 0, sizeof *c);
            c->f = p->functions[f];
            c->op = op;
            c->v = op->outputs[0];
        }
    }
    return MILK_OK;
}

static milk_status fill_row(milk_ctx *ctx, cand *c, const milk_compress_params *p)
{
    milk_compress_row *r = c->row;
    if (!r) return MILK_OK;
    char how[256];
    if (c->w) describe(c, p, c->w, how, sizeof how);
    r->name = dup(c->v->name);
    r->function = dup(c->f->name);
    r->readers = dup(c->readers);
    r->how = dup(c->w ? how : c->skip ? c->skip : "");
    r->type = c->v->type;
    r->compressed = c->w != NULL;
    r->bytes_before = (uint64_t)type_bytes(c->v->type.dtype,
                                           milk_tensor_type_count(&c->v->type));
    if (!r->name || !r->function || !r->readers || !r->how) return nomem(ctx);
    return MILK_OK;
}

milk_status milk_program_compress(milk_ctx *ctx, milk_program *p,
                                  const milk_compress_params *params,
                                  milk_compress_report *report)
{
    MILK_TRY(check_params(ctx, params));
    for (int f = 0; f < p->n_functions; f++)
        MILK_TRY(check_target(ctx, params, p->functions[f]->opset));
    cand *cs;
    int n;
    milk_status s = candidates(ctx, p, &cs, &n);
    for (int i = 0; s == MILK_OK && i < n; i++) {
        examine(&cs[i], params);
        if (report && !(cs[i].row = report_add(report, NULL))) s = nomem(ctx);
        if (s == MILK_OK && !cs[i].skip) s = plan(ctx, p->arena, &cs[i], params);
        if (s == MILK_OK) s = fill_row(ctx, &cs[i], params);
        if (s == MILK_OK && report) report->ws[report->n - 1] = cs[i].w;
        if (s == MILK_OK && cs[i].w) cs[i].w->row = cs[i].row;
    }
    /* Everything is decided: now the program changes. */
    for (int i = 0; s == MILK_OK && i < n; i++)
        if (cs[i].w) s = apply(ctx, &cs[i]);
    if (s == MILK_OK) s = milk_program_check(ctx, p);
    free(cs);
    return s;
}
