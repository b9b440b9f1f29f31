/* plan.c: the planned interpreter (see plan.h): types once, one step per
 * op, one arena for every intermediate value placed by lifetime, epilogue
 * fusion, then runs that allocate nothing. */
#include "plan.h"
#include "../ops/fast.h"

#include <cblas.h>
#include <stdlib.h>

#define ALIGN 64
#define NEVER INT32_MAX /* lifetime end of kept values */

typedef enum step_kind {
    STEP_NONE = 0, /* const: nothing to do */
    STEP_FUSED,    /* computed by an earlier step's epilogue */
    STEP_VIEW,     /* reshape-like: the output is its input's memory */
    STEP_FAST,     /* a prepared fast kernel */
    STEP_EVAL,     /* the op's own kernel (eval_fast, else eval) */
} step_kind;

typedef struct step {
    step_kind kind;
    milk_eval ec;
    milk_rt *outs;    /* ec.out: copies of the outputs' tensors */
    milk_kernel k;
    milk_epi epi;
    int fused[2];     /* ops whose statistics the epilogue records, -1 */
    int view_src;     /* STEP_VIEW: the input var */
} step;

struct milk_plan {
    milk_plan_io io;
    milk_arena *a;          /* steps, states, tables */
    step *steps;            /* by op */
    int *root;              /* by var: the var whose memory it uses; -1 none */
    milk_tensor_type *in_types; /* the input types planned for */
    char *mem;              /* the arena of values */
    int64_t mem_bytes;
    char *scratch;          /* per worker, then the shared part */
    int64_t scratch_stride, shared;
    int threads;
    milk_vstats *st;        /* threads x 3 */
    const milk_vec *v;
};

static milk_status nomem(milk_ctx *ctx)
{
    return milk_errorf(ctx, MILK_ERR_NOMEM, "out of memory");
}

static bool round16(const milk_plan *pl, const milk_var *v)
{
    return v->type.dtype == MILK_DTYPE_FP16 &&
           pl->io.params->precision == MILK_PRECISION_AS_DECLARED;
}

/* Ops the runner did when it was made: consts, and constexpr ops (their
 * outputs are pinned, expanded once). */
static bool done_at_load(const milk_plan *pl, const milk_op *op)
{
    if (op->kind == MILK_OP_const_) return true;
    if (op->n_outputs == 0) return false; /* write_state */
    for (int k = 0; k < op->n_outputs; k++)
        if (!pl->io.pinned[op->outputs[k]->id]) return false;
    return true;
}

/* ---- types ---------------------------------------------------------------- */

static void set_type(milk_rt *t, const milk_tensor_type *type)
{
    t->type = *type;
    t->store = milk_rt_store(type->dtype);
    t->count = milk_tensor_type_count(type);
}

static bool same_type(const milk_tensor_type *a, const milk_tensor_type *b)
{
    if (a->dtype != b->dtype || a->rank != b->rank) return false;
    for (int i = 0; i < a->rank; i++)
        if (a->dims[i] != b->dims[i]) return false;
    return true;
}

/* The run's types of every var, in io->vals (data untouched for inputs
 * and constants, NULL for the others): declared, or for an open program
 * inferred from types alone (specialize.c declines to read values that do
 * not exist yet, and the plan fails). */
static milk_status plan_types(milk_ctx *ctx, milk_plan *pl)
{
    const milk_plan_io *io = &pl->io;
    const milk_function *fn = io->fn;
    for (int i = 0; i < fn->n_inputs; i++) {
        const milk_var *v = fn->inputs[i];
        if (!io->have[v->id]) {
            if (!milk_type_concrete(&v->type))
                return milk_errorf(ctx, MILK_ERR_UNSUPPORTED,
                                   "input '%s' not set", v->name);
            set_type(&io->vals[v->id], &v->type);
        }
        pl->in_types[i] = io->vals[v->id].type;
    }
    milk_arena *scratch = milk_arena_create();
    if (!scratch) return nomem(ctx);
    milk_status s = MILK_OK;
    milk_tensor_type types[64];
    for (int i = 0; s == MILK_OK && i < io->blk->n_ops; i++) {
        const milk_op *op = io->blk->ops[i];
        if (done_at_load(pl, op)) continue;
        if (op->n_outputs > 64) {
            s = milk_errorf(ctx, MILK_ERR_UNSUPPORTED, "more than 64 outputs");
            break;
        }
        bool declared = !io->dynamic || !io->open[i];
        for (int a = 0; declared && io->dynamic && a < op->n_args; a++)
            for (int j = 0; declared && j < op->args[a].n; j++) {
                const milk_var *v = op->args[a].b[j].var;
                const milk_rt *t = io->in[i][a][j];
                if (v && t->store != MILK_DTYPE_INVALID)
                    declared = same_type(&t->type, &v->type);
            }
        if (declared)
            for (int k = 0; k < op->n_outputs; k++) types[k] = op->outputs[k]->type;
        else
            s = milk_spec_outputs(ctx, op, io->in[i], scratch, types);
        for (int k = 0; s == MILK_OK && k < op->n_outputs; k++) {
            if (!milk_type_concrete(&types[k])) {
                s = milk_errorf(ctx, MILK_ERR_UNSUPPORTED, "unknown sizes");
                break;
            }
            milk_rt *t = &io->vals[op->outputs[k]->id];
            milk_rt_release(t); /* a value of an earlier run op by op */
            io->have[op->outputs[k]->id] = false;
            set_type(t, &types[k]);
        }
    }
    milk_arena_free(scratch);
    if (s != MILK_OK && s != MILK_ERR_NOMEM)
        return milk_errorf(ctx, MILK_ERR_UNSUPPORTED,
                           "sizes depend on values computed at run time");
    return s;
}

/* ---- steps ------------------------------------------------------------------ */

/* Readers of var v among the ops after `from`: how many bindings, and the
 * first and last op reading it. */
static int readers(const milk_block *b, const milk_var *v, int from, int *first,
                   int *last)
{
    int n = 0;
    *first = *last = -1;
    for (int i = from + 1; i < b->n_ops; i++)
        for (int a = 0; a < b->ops[i]->n_args; a++)
            for (int j = 0; j < b->ops[i]->args[a].n; j++)
                if (b->ops[i]->args[a].b[j].var == v) {
                    n++;
                    if (*first < 0) *first = i;
                    *last = i;
                }
    return n;
}

/* Is var v an input of op bound as param? */
static bool bound(const milk_op *op, const char *param, const milk_var *v)
{
    for (int a = 0; a < op->n_args; a++)
        if (strcmp(op->args[a].param, param) == 0 && op->args[a].n == 1)
            return op->args[a].b[0].var == v;
    return false;
}

static bool kept(const milk_plan *pl, const milk_var *v)
{
    return pl->io.keep[v->id];
}

/* Fuse what follows op i's only output into its epilogue: an activation
 * reading it alone, or an activation a and mul(v, a) (x * act(x)). The
 * fused intermediates must not be kept. Sets the step's output var. */
static const milk_var *fuse(milk_ctx *ctx, milk_plan *pl, int i, step *st)
{
    const milk_block *b = pl->io.blk;
    const milk_op *op = b->ops[i];
    const milk_var *v = op->outputs[0];
    int first, last;
    st->fused[0] = st->fused[1] = -1;
    st->epi.round16[0] = round16(pl, v);
    if (pl->io.params->keep_all || kept(pl, v) || op->n_outputs != 1) return v;
    int n = readers(b, v, i, &first, &last);
    const milk_op *act = b->ops[first > 0 ? first : i];
    milk_fnp f;
    if (n < 1 || n > 2 || act->n_outputs != 1 || !bound(act, "x", v) ||
        !milk_fast_act_of(ctx, act, &f) ||
        act->outputs[0]->type.dtype != v->type.dtype)
        return v;
    const milk_var *a = act->outputs[0];
    if (n == 1) {
        st->epi.act = f;
        st->epi.round16[1] = round16(pl, a);
        st->fused[0] = first;
        return a;
    }
    /* n == 2: the other reader must be mul(v, a) or mul(a, v), a's only
     * reader, of v's shape */
    const milk_op *mul = b->ops[last];
    int af, al;
    if (mul->kind != MILK_OP_mul || kept(pl, a) || readers(b, a, first, &af, &al) != 1 ||
        af != last || mul->n_outputs != 1 ||
        !((bound(mul, "x", v) && bound(mul, "y", a)) ||
          (bound(mul, "x", a) && bound(mul, "y", v))) ||
        !same_type(&mul->outputs[0]->type, &v->type))
        return v;
    st->epi.act = f;
    st->epi.mul_self = true;
    st->epi.round16[1] = round16(pl, a);
    st->epi.round16[2] = round16(pl, mul->outputs[0]);
    st->fused[0] = first;
    st->fused[1] = last;
    return mul->outputs[0];
}

/* reshape-like ops whose output can be a view of their input */
static bool view_op(const milk_plan *pl, const milk_op *op, int *src)
{
    switch (op->kind) {
    case MILK_OP_reshape: case MILK_OP_expand_dims: case MILK_OP_squeeze:
    case MILK_OP_flatten2d: case MILK_OP_identity:
        break;
    default:
        return false;
    }
    const milk_var *x = NULL;
    for (int a = 0; a < op->n_args; a++)
        if (strcmp(op->args[a].param, "x") == 0 && op->args[a].n == 1)
            x = op->args[a].b[0].var;
    if (!x || op->n_outputs != 1 || pl->root[x->id] < 0) return false;
    const milk_rt *in = &pl->io.vals[x->id], *out = &pl->io.vals[op->outputs[0]->id];
    /* the same elements; no rounding that the input has not had */
    if (in->store != out->store || in->count != out->count ||
        (round16(pl, op->outputs[0]) && !round16(pl, x)))
        return false;
    *src = x->id;
    return true;
}

static milk_status plan_steps(milk_ctx *ctx, milk_plan *pl)
{
    const milk_plan_io *io = &pl->io;
    const milk_block *b = io->blk;
    for (int v = 0; v < io->fn->n_vars; v++)
        pl->root[v] = io->pinned[v] ? v : -1;
    for (int i = 0; i < b->n_ops; i++) {
        const milk_op *op = b->ops[i];
        step *st = &pl->steps[i];
        if (done_at_load(pl, op) || st->kind == STEP_FUSED) continue;
        int src;
        if (view_op(pl, op, &src)) {
            st->kind = STEP_VIEW;
            st->view_src = src;
            pl->root[op->outputs[0]->id] = pl->root[src];
            continue;
        }
        st->outs = milk_arena_alloc(pl->a, (size_t)(op->n_outputs + 1) * sizeof *st->outs);
        if (!st->outs) return nomem(ctx);
        for (int k = 0; k < op->n_outputs; k++) {
            st->outs[k] = io->vals[op->outputs[k]->id];
            pl->root[op->outputs[k]->id] = op->outputs[k]->id;
        }
        st->ec = (milk_eval){ctx, op, io->params->precision,
                             (const milk_rt *const *const *)io->in[i], st->outs,
                             op->n_outputs};
        st->kind = STEP_EVAL;
        milk_fast_prepare prep = milk_fast_for(op->kind);
        milk_kernel k = {0};
        /* a kernel that declines or fails here leaves the op to its own
         * kernel, which reports what is wrong when it runs */
        if (prep && prep(&st->ec, pl->a, &k) == MILK_OK && k.run) {
            st->kind = STEP_FAST;
            st->k = k;
        }
        if (st->kind == STEP_FAST && k.epilogue) {
            const milk_var *out = fuse(ctx, pl, i, st);
            for (int f = 0; f < 2; f++)
                if (st->fused[f] >= 0) {
                    pl->steps[st->fused[f]].kind = STEP_FUSED;
                    /* the fused ops' outputs have no memory of their own */
                    const milk_var *fv = b->ops[st->fused[f]]->outputs[0];
                    pl->root[fv->id] = fv == out ? out->id : -1;
                }
            if (out != op->outputs[0]) {
                pl->root[op->outputs[0]->id] = -1;
                pl->root[out->id] = out->id;
                st->outs[0] = io->vals[out->id];
                st->outs[0].type.dtype = out->type.dtype;
            }
        }
    }
    return MILK_OK;
}

/* ---- memory ------------------------------------------------------------------ */

typedef struct slot {
    int var;
    int first, last; /* steps alive, inclusive */
    int64_t size, off;
} slot;

static int by_size(const void *a, const void *b)
{
    const slot *x = a, *y = b;
    if (x->size != y->size) return x->size < y->size ? 1 : -1;
    return x->var - y->var;
}

/* Offsets by lifetime: largest values first, each at the lowest offset
 * where it overlaps no value placed so far that is alive at the same time
 * (the greedy-by-size placement of TensorFlow Lite's arena planner). */
static int64_t place(slot *s, int n)
{
    qsort(s, (size_t)n, sizeof *s, by_size);
    int64_t top = 0;
    for (int i = 0; i < n; i++) {
        int64_t off = 0;
        bool moved = true;
        while (moved) {
            moved = false;
            for (int j = 0; j < i; j++) {
                if (s[j].last < s[i].first || s[i].last < s[j].first) continue;
                if (off < s[j].off + s[j].size && s[j].off < off + s[i].size) {
                    off = s[j].off + s[j].size;
                    moved = true;
                }
            }
        }
        s[i].off = off;
        if (off + s[i].size > top) top = off + s[i].size;
    }
    return top;
}

static milk_status plan_memory(milk_ctx *ctx, milk_plan *pl)
{
    const milk_plan_io *io = &pl->io;
    const milk_block *b = io->blk;
    int nv = io->fn->n_vars;
    int *first = calloc((size_t)nv + 1, sizeof *first);
    int *last = calloc((size_t)nv + 1, sizeof *last);
    slot *slots = calloc((size_t)nv + 1, sizeof *slots);
    if (!first || !last || !slots) {
        free(first);
        free(last);
        free(slots);
        return nomem(ctx);
    }
    for (int v = 0; v < nv; v++) first[v] = last[v] = -1;
    for (int i = 0; i < b->n_ops; i++) {
        const milk_op *op = b->ops[i];
        const step *st = &pl->steps[i];
        if (st->kind == STEP_NONE || st->kind == STEP_FUSED) continue;
        for (int k = 0; k < op->n_outputs; k++) {
            int r = pl->root[op->outputs[k]->id];
            if (r >= 0 && first[r] < 0) first[r] = last[r] = i;
            if (r >= 0 && kept(pl, op->outputs[k])) last[r] = NEVER;
        }
        /* a fused step's output is the last fused op's */
        for (int f = 0; f < 2; f++)
            if (st->fused[f] >= 0 && st->kind == STEP_FAST) {
                const milk_var *fv = b->ops[st->fused[f]]->outputs[0];
                int r = pl->root[fv->id];
                if (r >= 0 && first[r] < 0) first[r] = last[r] = i;
                if (r >= 0 && kept(pl, fv)) last[r] = NEVER;
            }
        for (int a = 0; a < op->n_args; a++)
            for (int j = 0; j < op->args[a].n; j++) {
                const milk_var *v = op->args[a].b[j].var;
                int r = v ? pl->root[v->id] : -1;
                if (r >= 0 && last[r] != NEVER && last[r] < i) last[r] = i;
            }
    }
    int n = 0;
    for (int v = 0; v < nv; v++) {
        if (io->pinned[v] || pl->root[v] != v || first[v] < 0) continue;
        uint64_t bytes;
        const milk_rt *t = &io->vals[v];
        if (t->store == MILK_DTYPE_INVALID ||
            !milk_dtype_nbytes(t->store, t->count, &bytes) || bytes > INT64_MAX / 2)
            continue;
        slots[n++] = (slot){v, first[v], last[v],
                            ((int64_t)bytes + ALIGN - 1) / ALIGN * ALIGN, 0};
    }
    pl->mem_bytes = place(slots, n);
    free(first);
    free(last);
    pl->mem = aligned_alloc(ALIGN, (size_t)(pl->mem_bytes ? pl->mem_bytes : ALIGN));
    if (!pl->mem) {
        free(slots);
        return milk_errorf(ctx, MILK_ERR_NOMEM,
                           "out of memory: %lld bytes for the run's values",
                           (long long)pl->mem_bytes);
    }
    for (int i = 0; i < n; i++) io->vals[slots[i].var].data = pl->mem + slots[i].off;
    free(slots);
    return MILK_OK;
}

/* ---- making and freeing ------------------------------------------------------ */

int64_t milk_plan_arena_bytes(const milk_plan *pl)
{
    return pl ? pl->mem_bytes + pl->scratch_stride * pl->threads + pl->shared : 0;
}

void milk_plan_free(milk_plan *pl)
{
    if (!pl) return;
    /* values that lived in the arena are gone */
    for (int v = 0; v < pl->io.fn->n_vars; v++)
        if (!pl->io.pinned[v]) {
            milk_rt_release(&pl->io.vals[v]);
            pl->io.have[v] = false;
        }
    free(pl->mem);
    free(pl->scratch);
    milk_arena_free(pl->a);
    free(pl);
}

milk_status milk_plan_make(milk_ctx *ctx, const milk_plan_io *io, milk_plan **out)
{
    *out = NULL;
    milk_plan *pl = calloc(1, sizeof *pl);
    if (!pl) return nomem(ctx);
    pl->io = *io;
    pl->v = milk_vec_get();
    pl->threads = milk_pool_threads(io->pool);
    pl->a = milk_arena_create();
    int nv = io->fn->n_vars, no = io->blk->n_ops;
    if (pl->a) {
        pl->steps = milk_arena_alloc(pl->a, (size_t)(no + 1) * sizeof *pl->steps);
        pl->root = milk_arena_alloc(pl->a, (size_t)(nv + 1) * sizeof *pl->root);
        pl->in_types = milk_arena_alloc(pl->a, (size_t)(io->fn->n_inputs + 1) *
                                                   sizeof *pl->in_types);
        pl->st = milk_arena_alloc(pl->a, (size_t)pl->threads * 3 * sizeof *pl->st);
    }
    if (!pl->a || !pl->steps || !pl->root || !pl->in_types || !pl->st) {
        milk_arena_free(pl->a);
        free(pl);
        return nomem(ctx);
    }
    memset(pl->steps, 0, (size_t)(no + 1) * sizeof *pl->steps);
    for (int i = 0; i < no; i++) pl->steps[i].fused[0] = pl->steps[i].fused[1] = -1;
    milk_status s = plan_types(ctx, pl);
    if (s == MILK_OK) s = plan_steps(ctx, pl);
    if (s == MILK_OK) s = plan_memory(ctx, pl);
    /* the outputs' tensors now have their memory */
    int64_t scratch = 0;
    for (int i = 0; s == MILK_OK && i < no; i++) {
        step *st = &pl->steps[i];
        const milk_op *op = io->blk->ops[i];
        if (!st->outs) continue;
        for (int k = 0; k < op->n_outputs; k++) {
            const milk_var *v = op->outputs[k];
            if (k == 0 && st->kind == STEP_FAST && pl->root[v->id] != v->id) {
                /* fused: the step writes the last fused op's output */
                const milk_var *f = io->blk->ops[st->fused[1] >= 0 ? st->fused[1]
                                                                   : st->fused[0]]
                                        ->outputs[0];
                st->outs[0].data = io->vals[f->id].data;
                continue;
            }
            st->outs[k].data = io->vals[v->id].data;
        }
        if (st->kind == STEP_FAST && st->k.scratch > scratch) scratch = st->k.scratch;
        if (st->kind == STEP_FAST && st->k.shared > pl->shared) pl->shared = st->k.shared;
    }
    if (s == MILK_OK && (scratch > 0 || pl->shared > 0)) {
        pl->scratch_stride = (scratch + ALIGN - 1) / ALIGN * ALIGN;
        pl->shared = (pl->shared + ALIGN - 1) / ALIGN * ALIGN;
        pl->scratch = aligned_alloc(ALIGN, (size_t)(pl->scratch_stride * pl->threads +
                                                    pl->shared));
        if (!pl->scratch) s = nomem(ctx);
    }
    if (s != MILK_OK) {
        milk_plan_free(pl);
        return s;
    }
    *out = pl;
    return MILK_OK;
}

bool milk_plan_fits(const milk_plan *pl)
{
    for (int i = 0; i < pl->io.fn->n_inputs; i++)
        if (!same_type(&pl->io.vals[pl->io.fn->inputs[i]->id].type, &pl->in_types[i]))
            return false;
    return true;
}

/* ---- running ----------------------------------------------------------------- */

static void add_stats(milk_op_stats *o, const milk_vstats *v)
{
    if (v->max_abs > o->max_abs) o->max_abs = v->max_abs;
    o->n_overflow += v->over;
    o->n_inf += v->inf;
    o->n_nan += v->nan;
}

typedef struct finish_job {
    milk_plan *pl;
    float *x;
    int64_t n;
    bool round16;
} finish_job;

#define FINISH_CHUNK ((int64_t)1 << 16)

static void finish_task(void *arg, int64_t task, int worker)
{
    finish_job *j = arg;
    int64_t i0 = task * FINISH_CHUNK;
    int64_t n = j->n - i0 < FINISH_CHUNK ? j->n - i0 : FINISH_CHUNK;
    j->pl->v->finish(j->x + i0, n, j->round16, &j->pl->st[worker * 3]);
}

/* Statistics (and fp16 rounding) of an op's float output, as the reference
 * runner's finish_output. */
static void finish(milk_plan *pl, milk_rt *t, const milk_var *v, milk_op_stats *o)
{
    if (t->store != MILK_DTYPE_FP32) return;
    memset(pl->st, 0, (size_t)pl->threads * 3 * sizeof *pl->st);
    finish_job j = {pl, milk_rt_f32(t), t->count, round16(pl, v)};
    milk_pool_run(pl->io.pool, (t->count + FINISH_CHUNK - 1) / FINISH_CHUNK,
                  finish_task, &j);
    for (int w = 0; w < pl->threads; w++) add_stats(o, &pl->st[w * 3]);
}

static milk_status run_step(milk_ctx *ctx, milk_plan *pl, int i)
{
    const milk_plan_io *io = &pl->io;
    const milk_op *op = io->blk->ops[i];
    step *st = &pl->steps[i];
    milk_op_stats *stats = &io->stats[i];
    switch (st->kind) {
    case STEP_NONE:
    case STEP_FUSED:
        return MILK_OK;
    case STEP_VIEW: {
        milk_rt *out = &io->vals[op->outputs[0]->id];
        out->data = io->vals[st->view_src].data;
        finish(pl, out, op->outputs[0], stats);
        return MILK_OK;
    }
    case STEP_FAST: {
        st->ec.ctx = ctx;
        milk_fast f = {&st->ec, st->k.state, io->pool, pl->v, pl->scratch,
                       pl->scratch_stride,
                       pl->scratch ? pl->scratch + pl->scratch_stride * pl->threads : NULL,
                       &st->epi, pl->st};
        if (st->k.epilogue) memset(pl->st, 0, (size_t)pl->threads * 3 * sizeof *pl->st);
        MILK_TRY(st->k.run(&f));
        if (!st->k.epilogue) {
            for (int k = 0; k < op->n_outputs; k++)
                finish(pl, &st->outs[k], op->outputs[k], stats);
            return MILK_OK;
        }
        milk_op_stats *to[3] = {stats, st->fused[0] >= 0 ? &io->stats[st->fused[0]] : NULL,
                                st->fused[1] >= 0 ? &io->stats[st->fused[1]] : NULL};
        for (int w = 0; w < pl->threads; w++)
            for (int k = 0; k < 3; k++)
                if (to[k]) add_stats(to[k], &pl->st[w * 3 + k]);
        return MILK_OK;
    }
    case STEP_EVAL: {
        st->ec.ctx = ctx;
        /* the reference runner hands kernels zeroed outputs */
        for (int k = 0; k < op->n_outputs; k++) {
            uint64_t nb = 0;
            if (st->outs[k].data &&
                milk_dtype_nbytes(st->outs[k].store, st->outs[k].count, &nb))
                memset(st->outs[k].data, 0, (size_t)nb);
        }
        const milk_op_info *info = milk_ops[op->kind];
        MILK_TRY(info->eval_fast ? info->eval_fast(&st->ec) : info->eval(&st->ec));
        for (int k = 0; k < op->n_outputs; k++)
            finish(pl, &st->outs[k], op->outputs[k], stats);
        return MILK_OK;
    }
    }
    return MILK_OK;
}

milk_status milk_plan_run(milk_ctx *ctx, milk_plan *pl)
{
    const milk_plan_io *io = &pl->io;
    const milk_block *b = io->blk;
    /* every BLAS call runs inside one task of milk's pool */
    openblas_set_num_threads(1);
    for (int i = 0; i < b->n_ops; i++) {
        memset(&io->stats[i], 0, sizeof io->stats[i]);
        io->stats[i].op = b->ops[i];
    }
    for (int i = 0; i < b->n_ops; i++) {
        milk_status s = run_step(ctx, pl, i);
        if (s != MILK_OK) return s;
        if (io->params->progress)
            io->params->progress(io->params->progress_user, i + 1, b->n_ops);
    }
    /* what a reading of the run can see: inputs, constants, kept values */
    for (int v = 0; v < io->fn->n_vars; v++)
        io->have[v] = io->pinned[v] ? io->have[v]
                                    : io->keep[v] && pl->root[v] >= 0 &&
                                          io->vals[v].data != NULL;
    return MILK_OK;
}
