/* layout_fast.c: planned fast kernels (see fast.h) of the data-movement
 * ops transpose (shape.c) and concat (concat.c), for tensors of 4-byte
 * storage (fp32 or int32): whole runs copied with memcpy, a transpose's
 * strided walk done per output row with the row's source stride fixed.
 * The values are copied, never computed, so they equal the reference
 * kernels' exactly. */
#include "fast.h"

/* ---- transpose ---------------------------------------------------------------- */

typedef struct tr_st {
    int rank;                    /* after merging dims */
    int64_t dims[MILK_MAX_RANK]; /* output dims */
    int64_t src[MILK_MAX_RANK];  /* x's stride of each output dim */
    int64_t rows, len, per_task; /* output rows of the last dim */
} tr_st;

static void tr_task(void *arg, int64_t task, int worker)
{
    const milk_fast *f = arg;
    const tr_st *s = f->state;
    const int32_t *x = milk_eval_in(f->ec, "x")->data;
    int32_t *y = f->ec->out[0].data;
    int64_t r1 = (task + 1) * s->per_task;
    const int64_t step = s->src[s->rank - 1];
    for (int64_t r = task * s->per_task; r < r1 && r < s->rows; r++) {
        int64_t off = 0, t = r;
        for (int d = s->rank - 2; d >= 0; d--) {
            off += t % s->dims[d] * s->src[d];
            t /= s->dims[d];
        }
        int32_t *yr = y + r * s->len;
        const int32_t *xr = x + off;
        if (step == 1) memcpy(yr, xr, (size_t)s->len * 4);
        else
            for (int64_t i = 0; i < s->len; i++) yr[i] = xr[i * step];
    }
}

static milk_status tr_run(const milk_fast *f)
{
    const tr_st *s = f->state;
    milk_pool_run(f->pool, (s->rows + s->per_task - 1) / s->per_task, tr_task,
                  (void *)f);
    return MILK_OK;
}

milk_status milk_fast_transpose(milk_eval *ec, milk_arena *a, milk_kernel *k)
{
    const milk_rt *x = milk_eval_in(ec, "x");
    const milk_rt *o = &ec->out[0];
    int64_t perm[MILK_MAX_RANK], xs[MILK_MAX_RANK];
    int n, r = x->type.rank;
    if (x->store == MILK_DTYPE_BOOL || o->count == 0 || r < 1) return MILK_OK;
    MILK_TRY(milk_op_ints(ec->ctx, ec->op, "perm", perm, MILK_MAX_RANK, &n, NULL));
    if (n != r) return MILK_OK;
    tr_st *s = milk_arena_alloc(a, sizeof *s);
    if (!s) return milk_errorf(ec->ctx, MILK_ERR_NOMEM, "out of memory");
    memset(s, 0, sizeof *s);
    milk_strides(&x->type, xs);
    /* output dims with their source strides; merge an output dim into the
     * previous one when they are contiguous in x too; drop size-1 dims */
    for (int i = 0; i < r; i++) {
        int p = (int)(perm[i] < 0 ? perm[i] + r : perm[i]);
        int64_t d = x->type.dims[p], st = xs[p];
        if (d == 1) continue;
        if (s->rank > 0 && s->src[s->rank - 1] == st * d) {
            s->dims[s->rank - 1] *= d;
            s->src[s->rank - 1] = st;
            continue;
        }
        s->dims[s->rank] = d;
        s->src[s->rank++] = st;
    }
    if (s->rank == 0) {
        s->dims[0] = 1;
        s->src[0] = 1;
        s->rank = 1;
    }
    s->len = s->dims[s->rank - 1];
    s->rows = o->count / s->len;
    s->per_task = s->len >= 4096 ? 1 : 4096 / s->len;
    k->run = tr_run;
    k->state = s;
    return MILK_OK;
}

/* ---- concat ------------------------------------------------------------------- */

typedef struct cat_st {
    int n;
    int64_t outer, inner_out; /* output: [outer, inner_out] */
    int64_t *take;            /* per value: elements per outer index */
} cat_st;

static milk_status cat_run(const milk_fast *f)
{
    const cat_st *s = f->state;
    char *y = f->ec->out[0].data;
    size_t es = f->ec->out[0].store == MILK_DTYPE_BOOL ? 1 : 4;
    for (int64_t p = 0; p < s->outer; p++) {
        char *yp = y + (size_t)(p * s->inner_out) * es;
        for (int v = 0; v < s->n; v++) {
            const char *x = milk_eval_in_at(f->ec, "values", v)->data;
            size_t len = (size_t)s->take[v] * es;
            memcpy(yp, x + (size_t)p * len, len);
            yp += len;
        }
    }
    return MILK_OK;
}

milk_status milk_fast_concat(milk_eval *ec, milk_arena *a, milk_kernel *k)
{
    const milk_rt *o = &ec->out[0];
    int64_t ax;
    bool interleave;
    MILK_TRY(milk_op_int(ec->ctx, ec->op, "axis", 0, &ax));
    MILK_TRY(milk_op_bool(ec->ctx, ec->op, "interleave", false, &interleave));
    int n = milk_eval_in_count(ec, "values");
    if (interleave || o->type.rank < 1 || n < 1) return MILK_OK;
    int axis = (int)(ax < 0 ? ax + o->type.rank : ax);
    cat_st *s = milk_arena_alloc(a, sizeof *s);
    int64_t *take = milk_arena_alloc(a, (size_t)n * sizeof *take);
    if (!s || !take) return milk_errorf(ec->ctx, MILK_ERR_NOMEM, "out of memory");
    s->n = n;
    s->take = take;
    s->outer = 1;
    for (int i = 0; i < axis; i++) s->outer *= o->type.dims[i];
    int64_t inner = 1;
    for (int i = axis + 1; i < o->type.rank; i++) inner *= o->type.dims[i];
    s->inner_out = o->type.dims[axis] * inner;
    int64_t total = 0;
    for (int v = 0; v < n; v++) {
        const milk_rt *x = milk_eval_in_at(ec, "values", v);
        if (x->store != o->store || x->type.rank != o->type.rank) return MILK_OK;
        take[v] = x->type.dims[axis] * inner;
        total += take[v];
    }
    if (total != s->inner_out) return MILK_OK;
    k->run = cat_run;
    k->state = s;
    return MILK_OK;
}
