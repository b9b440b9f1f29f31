/* runner.c: the reference interpreter. Runs a function's ops in order with
 * the kernels of the op table, frees each value after its last use unless
 * it is kept, rounds fp16 vars when emulating the device's storage
 * precision, and counts non-finite and overflowing values per op.
 *
 * Flexible shapes: inputs may have unknown dims (checked against the
 * model description's shape ranges or enumerated shapes), and sizes may
 * depend on values computed at run time. Such a program is "open": in
 * each run, an op whose declared output types are not concrete, or whose
 * inputs have other types than declared, gets its output types inferred
 * again from the run's types and values (specialize.c) before its kernel
 * runs. A program whose types are all known runs as declared, with no
 * inference at all. */
#include "plan.h"
#include "run.h"

#include <float.h>
#include <math.h>
#include <stdlib.h>

#define FP16_MAX 65504.0f

struct milk_runner {
    const milk_program *p;
    const milk_function *fn;
    const milk_block *blk;
    milk_run_params params;
    milk_rt *vals;       /* by var id */
    bool *have, *keep, *pinned; /* pinned: consts and inputs, never freed */
    int *last_use;       /* op index of the last op reading the var */
    milk_rt *inlines;    /* inline binding values, materialized once */
    int n_inlines;
    const milk_rt ****in; /* per op i: in[i][arg][binding] */
    milk_op_stats *stats;
    /* Flexible shapes: open[i] if op i declares an output type that is
     * not concrete; dynamic if any op is open or any input has unknown
     * dims. scratch holds type inference stand-ins during a run. */
    bool *open;
    bool dynamic;
    milk_arena *scratch;
    /* The planned path (plan.c), unless params.reference. */
    milk_plan *plan;
    milk_pool *pool;
    milk_maps *maps; /* mapped weight files */
    /* States (state.c): the runner's own state object, and the one runs
     * use (its own, or one given with milk_runner_set_state). */
    milk_state *own_state, *state;
};

static milk_status nomem(milk_ctx *ctx)
{
    return milk_errorf(ctx, MILK_ERR_NOMEM, "out of memory");
}

/* Every op must have a kernel and no nested blocks; list all that fail. */
static milk_status check_runnable(milk_ctx *ctx, const milk_block *b)
{
    char list[1024] = "";
    int missing = 0;
    for (int i = 0; i < b->n_ops; i++) {
        const milk_op *op = b->ops[i];
        if (op->kind == MILK_OP_const_) continue;
        if (milk_ops[op->kind]->eval && !op->n_blocks) continue;
        if (missing++ < 16) {
            size_t len = strlen(list);
            snprintf(list + len, sizeof list - len, "%s'%s' (%s)",
                     len ? ", " : "", op->name, milk_ops[op->kind]->name);
        }
    }
    if (!missing) return MILK_OK;
    return milk_errorf(ctx, MILK_ERR_UNSUPPORTED,
                       "the interpreter cannot run %d op%s: %s%s", missing,
                       missing > 1 ? "s" : "", list, missing > 16 ? ", ..." : "");
}

static int count_inlines(const milk_block *b)
{
    int n = 0;
    for (int i = 0; i < b->n_ops; i++)
        for (int a = 0; a < b->ops[i]->n_args; a++)
            for (int j = 0; j < b->ops[i]->args[a].n; j++)
                n += b->ops[i]->args[a].b[j].value != NULL;
    return n;
}

static milk_status alloc_tables(milk_ctx *ctx, milk_runner *r)
{
    int nv = r->fn->n_vars, no = r->blk->n_ops;
    r->vals = calloc((size_t)nv + 1, sizeof *r->vals);
    r->have = calloc((size_t)nv + 1, sizeof *r->have);
    r->keep = calloc((size_t)nv + 1, sizeof *r->keep);
    r->pinned = calloc((size_t)nv + 1, sizeof *r->pinned);
    r->last_use = calloc((size_t)nv + 1, sizeof *r->last_use);
    r->in = calloc((size_t)no + 1, sizeof *r->in);
    r->stats = calloc((size_t)no + 1, sizeof *r->stats);
    r->inlines = calloc((size_t)count_inlines(r->blk) + 1, sizeof *r->inlines);
    r->open = calloc((size_t)no + 1, sizeof *r->open);
    if (!r->vals || !r->have || !r->keep || !r->pinned || !r->last_use ||
        !r->in || !r->stats || !r->inlines || !r->open)
        return nomem(ctx);
    return MILK_OK;
}

/* Resolve each binding of op i to a runtime tensor slot; materialize
 * inline values (those of constexpr ops only while they are expanded, see
 * expand_constexpr). Records last uses. */
static milk_status bind_op(milk_ctx *ctx, milk_runner *r, int i)
{
    const milk_op *op = r->blk->ops[i];
    bool later = milk_op_is_constexpr(op);
    const milk_rt ***in = calloc((size_t)op->n_args + 1, sizeof *in);
    if (!in) return nomem(ctx);
    r->in[i] = in;
    for (int a = 0; a < op->n_args; a++) {
        in[a] = calloc((size_t)op->args[a].n + 1, sizeof **in);
        if (!in[a]) return nomem(ctx);
        for (int j = 0; j < op->args[a].n; j++) {
            const milk_binding *b = &op->args[a].b[j];
            if (b->var) {
                in[a][j] = &r->vals[b->var->id];
                r->last_use[b->var->id] = i;
                continue;
            }
            milk_rt *t = &r->inlines[r->n_inlines++];
            if (!later && milk_rt_store(b->value->type.dtype) != MILK_DTYPE_INVALID)
                MILK_TRY(milk_rt_from_value(ctx, t, b->value));
            in[a][j] = t;
        }
    }
    return MILK_OK;
}

static milk_status compute_op(milk_ctx *ctx, milk_runner *r, int i);

/* The inline values bound to op i, materialized (or released again). */
static milk_status op_inlines(milk_ctx *ctx, milk_runner *r, int i, bool load)
{
    const milk_op *op = r->blk->ops[i];
    for (int a = 0; a < op->n_args; a++)
        for (int j = 0; j < op->args[a].n; j++) {
            const milk_value *v = op->args[a].b[j].value;
            milk_rt *t = (milk_rt *)r->in[i][a][j]; /* a slot of r->inlines */
            if (!v || milk_rt_store(v->type.dtype) == MILK_DTYPE_INVALID) continue;
            if (!load) milk_rt_release(t);
            else MILK_TRY(milk_rt_from_value(ctx, t, v));
        }
    return MILK_OK;
}

/* A constexpr op (compressed weights) is expanded once, when the runner is
 * made, as Core ML does when it loads a model: its outputs stay like a
 * const's. Its compressed inputs are freed as soon as no later op needs
 * them, so memory holds one compressed tensor at a time besides the
 * expanded weights. */
static milk_status expand_constexpr(milk_ctx *ctx, milk_runner *r, int i)
{
    const milk_op *op = r->blk->ops[i];
    milk_status s = op_inlines(ctx, r, i, true);
    if (s == MILK_OK) s = compute_op(ctx, r, i);
    op_inlines(ctx, r, i, false);
    if (s != MILK_OK) return s;
    for (int k = 0; k < op->n_outputs; k++) r->pinned[op->outputs[k]->id] = true;
    for (int a = 0; a < op->n_args; a++)
        for (int j = 0; j < op->args[a].n; j++) {
            milk_var *v = op->args[a].b[j].var;
            if (!v || r->last_use[v->id] != i || r->keep[v->id]) continue;
            milk_rt_release(&r->vals[v->id]);
            r->have[v->id] = false;
        }
    return MILK_OK;
}

/* Consts are materialized once, when the runner is made, and constexpr ops
 * expanded. String consts (pad_type, mode...) are read by kernels from the
 * IR and get no storage. */
static milk_status load_consts(milk_ctx *ctx, milk_runner *r)
{
    for (int i = 0; i < r->blk->n_ops; i++) {
        const milk_op *op = r->blk->ops[i];
        if (milk_op_is_constexpr(op)) {
            MILK_TRY(expand_constexpr(ctx, r, i));
            continue;
        }
        if (op->kind != MILK_OP_const_) continue;
        milk_var *v = op->outputs[0];
        r->pinned[v->id] = true;
        if (milk_rt_store(v->type.dtype) == MILK_DTYPE_INVALID) continue;
        milk_status s = milk_rt_from_value_mapped(ctx, &r->vals[v->id], op->val,
                                                  &r->maps);
        if (s != MILK_OK)
            return milk_error_prefix(ctx, "const '%s'", op->name);
        r->have[v->id] = true;
    }
    return MILK_OK;
}

/* Which ops have output types to infer in each run (see the top). */
static void find_open(milk_runner *r)
{
    for (int i = 0; i < r->fn->n_inputs; i++)
        r->dynamic |= !milk_type_concrete(&r->fn->inputs[i]->type);
    for (int i = 0; i < r->blk->n_ops; i++) {
        const milk_op *op = r->blk->ops[i];
        for (int k = 0; k < op->n_outputs; k++)
            r->open[i] |= !milk_type_concrete(&op->outputs[k]->type);
        r->dynamic |= r->open[i];
    }
}

/* ---- the planned path (plan.c) ------------------------------------------ */

static milk_plan_io plan_io(milk_runner *r)
{
    return (milk_plan_io){r->fn, r->blk, &r->params, r->vals, r->have, r->keep,
                          r->pinned, r->open,
                          (const milk_rt *const *const *const *)r->in, r->stats,
                          r->dynamic, r->pool};
}

/* Programs of known types are planned when loaded; others at their first
 * run, when the input shapes are known. */
static milk_status plan_at_load(milk_ctx *ctx, milk_runner *r)
{
    if (r->params.threads > 1) r->pool = milk_pool_create(r->params.threads);
    if (r->dynamic) return MILK_OK;
    milk_plan_io io = plan_io(r);
    milk_status s = milk_plan_make(ctx, &io, &r->plan);
    return s == MILK_ERR_UNSUPPORTED ? MILK_OK : s;
}

/* Run the plan, made again if the input shapes changed; *ran is false when
 * the program cannot be planned (sizes computed at run time). */
static milk_status run_planned(milk_ctx *ctx, milk_runner *r, bool *ran)
{
    *ran = false;
    if (r->plan && !milk_plan_fits(r->plan)) {
        milk_plan_free(r->plan);
        r->plan = NULL;
    }
    if (!r->plan) {
        milk_plan_io io = plan_io(r);
        milk_status s = milk_plan_make(ctx, &io, &r->plan);
        if (s == MILK_ERR_UNSUPPORTED) return MILK_OK;
        MILK_TRY(s);
    }
    *ran = true;
    return milk_plan_run(ctx, r->plan);
}

milk_status milk_runner_create(milk_ctx *ctx, const milk_program *p,
                               const milk_run_params *params,
                               milk_runner **out)
{
    *out = NULL;
    milk_run_params def = {0};
    if (!params) params = &def;
    const char *fname = params->function ? params->function
                                         : milk_program_default_function(p);
    const milk_function *fn = milk_program_function(p, fname);
    if (!fn) return milk_function_not_found(ctx, p, fname);
    MILK_TRY(check_runnable(ctx, fn->block));
    milk_runner *r = calloc(1, sizeof *r);
    if (!r) return nomem(ctx);
    r->p = p;
    r->fn = fn;
    r->blk = fn->block;
    r->params = *params;
    milk_status s = alloc_tables(ctx, r);
    for (int i = 0; s == MILK_OK && i < r->blk->n_ops; i++) s = bind_op(ctx, r, i);
    if (s == MILK_OK) {
        for (int i = 0; i < fn->n_inputs; i++) r->pinned[fn->inputs[i]->id] = true;
        for (int i = 0; i < r->blk->n_outputs; i++) r->keep[r->blk->outputs[i]->id] = true;
        for (int i = 0; params->keep_all && i < fn->n_vars; i++) r->keep[i] = true;
        s = load_consts(ctx, r);
    }
    if (s == MILK_OK) find_open(r);
    if (s == MILK_OK && milk_function_state_count(fn)) {
        s = milk_state_create(ctx, p, &r->own_state);
        r->state = r->own_state;
    }
    if (s == MILK_OK && !params->reference) s = plan_at_load(ctx, r);
    if (s != MILK_OK) {
        milk_runner_free(r);
        return s;
    }
    *out = r;
    return MILK_OK;
}

void milk_runner_free(milk_runner *r)
{
    if (!r) return;
    milk_plan_free(r->plan);
    milk_pool_free(r->pool);
    for (int i = 0; r->vals && i < r->fn->n_vars; i++) milk_rt_release(&r->vals[i]);
    for (int i = 0; i < r->n_inlines; i++) milk_rt_release(&r->inlines[i]);
    for (int i = 0; r->in && i < r->blk->n_ops; i++) {
        for (int a = 0; r->in[i] && a < r->blk->ops[i]->n_args; a++)
            free((void *)r->in[i][a]);
        free((void *)r->in[i]);
    }
    free(r->vals);
    free(r->have);
    free(r->keep);
    free(r->pinned);
    free(r->last_use);
    free(r->inlines);
    free((void *)r->in);
    free(r->stats);
    free(r->open);
    milk_arena_free(r->scratch);
    milk_state_free(r->own_state);
    milk_maps_free(r->maps);
    free(r);
}

/* ---- inputs ------------------------------------------------------------- */

/* The function's signature, for error messages about inputs. */
static void signature(const milk_function *fn, char *buf, size_t n)
{
    size_t k = (size_t)snprintf(buf, n, "%s(", fn->name);
    for (int i = 0; i < fn->n_inputs && k < n; i++) {
        char t[160];
        milk_type_str(&fn->inputs[i]->type, t, sizeof t);
        k += (size_t)snprintf(buf + k, n - k, "%s%s%s%s %s", i ? ", " : "",
                              fn->inputs[i]->is_state ? "state<" : "", t,
                              fn->inputs[i]->is_state ? ">" : "",
                              fn->inputs[i]->name);
    }
    if (k < n) snprintf(buf + k, n - k, ")");
}

static bool input_dtype_ok(milk_dtype given, milk_dtype declared)
{
    if (given == declared) return true;
    bool gf = given == MILK_DTYPE_FP32 || given == MILK_DTYPE_FP16;
    bool df = declared == MILK_DTYPE_FP32 || declared == MILK_DTYPE_FP16;
    bool gi = given == MILK_DTYPE_INT32 || given == MILK_DTYPE_INT64;
    return (gf && df) || (gi && declared == MILK_DTYPE_INT32);
}

/* A given shape fits the declared one: same rank (any rank if that is
 * unknown), the known dims equal, any size >= 1 where a dim is unknown. */
static bool shape_fits(const milk_tensor_type *given,
                       const milk_tensor_type *decl)
{
    if (given->rank < 0 || given->rank > MILK_MAX_RANK) return false;
    if (decl->rank >= 0 && given->rank != decl->rank) return false;
    for (int i = 0; i < given->rank; i++) {
        int64_t d = decl->rank >= 0 ? decl->dims[i] : MILK_DIM_UNKNOWN;
        if (d >= 0 ? given->dims[i] != d : given->dims[i] < 1) return false;
    }
    return true;
}

/* The model description's feature for input `name` of main, when the
 * program came with a description (a loaded package, or one recorded in
 * the IR); NULL otherwise. */
static const milk_feature *input_feature(const milk_runner *r,
                                         const char *name)
{
    const milk_feature *in, *out;
    int n_in, n_out;
    if (!milk_program_fn_features(r->p, r->fn, &in, &n_in, &out, &n_out))
        return NULL;
    for (int i = 0; i < n_in; i++)
        if (in[i].kind == MILK_FEATURE_ARRAY && strcmp(in[i].name, name) == 0)
            return &in[i];
    return NULL;
}

/* Is t inside f's size ranges (upper bound < 0: unbounded)? Ranges of
 * another rank than t's (a scalar described as [1]) are not checked. */
static bool in_ranges(const milk_feature *f, const milk_tensor_type *t)
{
    if (f->n_ranges != t->rank) return true;
    for (int i = 0; i < t->rank; i++) {
        int64_t lo = f->ranges[i][0], hi = f->ranges[i][1];
        if (t->dims[i] < lo || (hi >= 0 && t->dims[i] > hi)) return false;
    }
    return true;
}

/* Is t one of f's enumerated shapes (if they have t's rank)? */
static bool in_enum(const milk_feature *f, const milk_tensor_type *t)
{
    if (!f->n_enum || f->rank != t->rank) return true;
    for (int e = 0; e < f->n_enum; e++) {
        const int64_t *s = f->enum_shapes + (size_t)e * (size_t)f->rank;
        bool same = true;
        for (int i = 0; i < t->rank; i++) same = same && s[i] == t->dims[i];
        if (same) return true;
    }
    return false;
}

/* "[1, 3, 8..64, 8..]": f's size ranges ("8.." is unbounded). */
static void ranges_str(const milk_feature *f, char *buf, size_t n)
{
    size_t k = (size_t)snprintf(buf, n, "[");
    for (int i = 0; i < f->n_ranges && k < n; i++) {
        long long lo = f->ranges[i][0], hi = f->ranges[i][1];
        const char *sep = i ? ", " : "";
        k += (size_t)(lo == hi  ? snprintf(buf + k, n - k, "%s%lld", sep, lo)
                      : hi < 0  ? snprintf(buf + k, n - k, "%s%lld..", sep, lo)
                                : snprintf(buf + k, n - k, "%s%lld..%lld", sep,
                                           lo, hi));
    }
    if (k < n) snprintf(buf + k, n - k, "]");
}

/* "[1, 3, 8, 8], [1, 3, 16, 16]": f's enumerated shapes. */
static void enum_str(const milk_feature *f, char *buf, size_t n)
{
    size_t k = 0;
    buf[0] = '\0';
    for (int e = 0; e < f->n_enum && k < n; e++) {
        const int64_t *s = f->enum_shapes + (size_t)e * (size_t)f->rank;
        k += (size_t)snprintf(buf + k, n - k, "%s[", e ? ", " : "");
        for (int i = 0; i < f->rank && k < n; i++)
            k += (size_t)snprintf(buf + k, n - k, "%s%lld", i ? ", " : "",
                                  (long long)s[i]);
        if (k < n) k += (size_t)snprintf(buf + k, n - k, "]");
    }
}

/* The description's shape ranges or enumerated shapes must admit t. */
static milk_status check_feature(milk_ctx *ctx, const milk_runner *r,
                                 const char *name,
                                 const milk_tensor_type *t)
{
    const milk_feature *f = input_feature(r, name);
    if (!f || (in_ranges(f, t) && in_enum(f, t))) return MILK_OK;
    char got[160], allowed[1024];
    milk_type_str(t, got, sizeof got);
    bool ranges = !in_ranges(f, t);
    if (ranges) ranges_str(f, allowed, sizeof allowed);
    else enum_str(f, allowed, sizeof allowed);
    return milk_errorf(ctx, MILK_ERR_INVALID_ARG,
                       "input '%s' is %s, %s the model description's %s %s",
                       name, got, ranges ? "outside" : "not one of",
                       ranges ? "shape range" : "enumerated shapes", allowed);
}

milk_status milk_runner_set_input(milk_ctx *ctx, milk_runner *r,
                                  const char *name,
                                  const milk_tensor_type *type,
                                  const void *data)
{
    char sig[1024];
    signature(r->fn, sig, sizeof sig);
    milk_var *v = milk_function_var(r->fn, name);
    if (!v || v->producer)
        return milk_errorf(ctx, MILK_ERR_INVALID_ARG,
                           "no input called '%s'; the function is %s", name, sig);
    if (v->is_state)
        return milk_errorf(ctx, MILK_ERR_INVALID_ARG,
                           "'%s' is a state, not an input: its value comes "
                           "from the runner's state object (milk_state_write, "
                           "milk run --state-in); the function is %s",
                           name, sig);
    char got[160], want[160];
    milk_type_str(type, got, sizeof got);
    milk_type_str(&v->type, want, sizeof want);
    if (!shape_fits(type, &v->type) || !input_dtype_ok(type->dtype, v->type.dtype))
        return milk_errorf(ctx, MILK_ERR_INVALID_ARG,
                           "input '%s' is %s, expected %s%s; the function is %s",
                           name, got, want,
                           milk_type_concrete(&v->type) ? ""
                               : " (? is any size >= 1)",
                           sig);
    MILK_TRY(check_feature(ctx, r, name, type));
    milk_value src = {0};
    src.kind = MILK_VALUE_TENSOR;
    src.type = *type;
    src.data.kind = MILK_DATA_BORROWED;
    src.data.ptr = data;
    milk_rt t;
    MILK_TRY(milk_rt_from_value(ctx, &t, &src));
    t.type.dtype = v->type.dtype; /* the declared dtype, the given shape */
    if (v->type.dtype == MILK_DTYPE_FP16 &&
        r->params.precision == MILK_PRECISION_AS_DECLARED)
        for (int64_t i = 0; i < t.count; i++)
            milk_rt_f32(&t)[i] = milk_fp16_to_fp32(milk_fp32_to_fp16(milk_rt_f32(&t)[i]));
    milk_rt_release(&r->vals[v->id]);
    r->vals[v->id] = t;
    r->have[v->id] = true;
    return MILK_OK;
}

milk_status milk_runner_keep(milk_ctx *ctx, milk_runner *r, const char *name)
{
    milk_var *v = milk_function_var(r->fn, name);
    if (!v) return milk_errorf(ctx, MILK_ERR_NOT_FOUND, "no var called '%s'", name);
    if (!r->keep[v->id]) { /* a plan without this value must be made again */
        milk_plan_free(r->plan);
        r->plan = NULL;
    }
    r->keep[v->id] = true;
    return MILK_OK;
}

/* ---- running ------------------------------------------------------------ */

/* Largest finite |value| of x and, if count_over, how many exceed the
 * fp16 range. */
static void scan_range(const float *x, int64_t n, bool count_over,
                       milk_op_stats *st)
{
    float top = (float)st->max_abs;
    int64_t over = 0;
    for (int64_t i = 0; i < n; i++) {
        float a = fabsf(x[i]);
        if (a <= FLT_MAX) { /* finite */
            top = a > top ? a : top;
            over += a > FP16_MAX;
        }
    }
    st->max_abs = top;
    if (count_over) st->n_overflow += over;
}

/* Record the values' range and, for fp16 vars in as-declared mode, round
 * them to fp16 (counting those beyond its range first); then count what is
 * inf or NaN. */
static void finish_output(milk_runner *r, milk_rt *t, milk_op_stats *st)
{
    if (t->store != MILK_DTYPE_FP32) return;
    bool round16 = t->type.dtype == MILK_DTYPE_FP16 &&
                   r->params.precision == MILK_PRECISION_AS_DECLARED;
    float *x = milk_rt_f32(t);
    scan_range(x, t->count, round16, st);
    if (round16) milk_round_fp16_n(x, (size_t)t->count);
    for (int64_t i = 0; i < t->count; i++) {
        if (isnan(x[i])) st->n_nan++;
        else if (isinf(x[i])) st->n_inf++;
    }
}

static bool same_type(const milk_tensor_type *a, const milk_tensor_type *b)
{
    if (a->dtype != b->dtype || a->rank != b->rank) return false;
    for (int i = 0; i < a->rank; i++)
        if (a->dims[i] != b->dims[i]) return false;
    return true;
}

/* The output types of op i in this run of an open program: as declared
 * when they are concrete and every run-time input has its declared type,
 * else inferred for the run. */
static milk_status run_types(milk_ctx *ctx, milk_runner *r, int i,
                             milk_tensor_type *types)
{
    const milk_op *op = r->blk->ops[i];
    bool declared = !r->open[i];
    for (int a = 0; declared && a < op->n_args; a++)
        for (int j = 0; declared && j < op->args[a].n; j++) {
            const milk_var *v = op->args[a].b[j].var;
            const milk_rt *t = r->in[i][a][j];
            if (v && t->store != MILK_DTYPE_INVALID)
                declared = same_type(&t->type, &v->type);
        }
    if (!declared)
        return milk_spec_outputs(ctx, op, (const milk_rt *const *const *)r->in[i],
                                 r->scratch, types);
    for (int k = 0; k < op->n_outputs; k++) types[k] = op->outputs[k]->type;
    return MILK_OK;
}

/* Op i of a run: consts and constexpr ops were done when the runner was
 * made (their statistics stay). */
static milk_status run_op(milk_ctx *ctx, milk_runner *r, int i)
{
    const milk_op *op = r->blk->ops[i];
    if (milk_op_is_constexpr(op)) return MILK_OK;
    if (op->kind == MILK_OP_const_) {
        memset(&r->stats[i], 0, sizeof r->stats[i]);
        r->stats[i].op = op;
        return MILK_OK;
    }
    return compute_op(ctx, r, i);
}

/* Run op i's kernel into freshly allocated outputs. */
static milk_status compute_op(milk_ctx *ctx, milk_runner *r, int i)
{
    const milk_op *op = r->blk->ops[i];
    milk_op_stats *st = &r->stats[i];
    memset(st, 0, sizeof *st);
    st->op = op;
    for (int a = 0; a < op->n_args; a++)
        for (int j = 0; j < op->args[a].n; j++) {
            milk_var *v = op->args[a].b[j].var;
            if (v && !r->have[v->id] && milk_rt_store(v->type.dtype) != MILK_DTYPE_INVALID)
                return milk_op_fail(ctx, op, op->args[a].param,
                                    "value of '%s' is not available (input not set?)",
                                    v->name);
        }
    /* Multi-output ops get their outputs as a contiguous array. */
    milk_rt outs[64]; /* shallow copies: same data buffers */
    milk_tensor_type types[64];
    if (op->n_outputs > 64)
        return milk_op_fail(ctx, op, NULL, "more than 64 outputs");
    if (r->dynamic) MILK_TRY(run_types(ctx, r, i, types));
    for (int k = 0; k < op->n_outputs; k++) {
        milk_var *v = op->outputs[k];
        const milk_tensor_type *t = r->dynamic ? &types[k] : &v->type;
        milk_rt_release(&r->vals[v->id]);
        if (milk_rt_alloc(ctx, &r->vals[v->id], t) != MILK_OK)
            return milk_error_prefix(ctx, "op '%s' (%s): output '%s'", op->name,
                                     milk_ops[op->kind]->name, v->name);
        r->have[v->id] = true;
    }
    for (int k = 0; k < op->n_outputs; k++) outs[k] = r->vals[op->outputs[k]->id];
    milk_eval ec = {ctx, op, r->params.precision,
                    (const milk_rt *const *const *)r->in[i], outs,
                    op->n_outputs};
    const milk_op_info *info = milk_ops[op->kind];
    milk_status s = !r->params.reference && info->eval_fast ? info->eval_fast(&ec)
                                                            : info->eval(&ec);
    MILK_TRY(s);
    for (int k = 0; k < op->n_outputs; k++)
        finish_output(r, &r->vals[op->outputs[k]->id], st);
    return MILK_OK;
}

/* Free the values whose last reader was op i. */
static void release_after(milk_runner *r, int i)
{
    const milk_op *op = r->blk->ops[i];
    for (int a = 0; a < op->n_args; a++)
        for (int j = 0; j < op->args[a].n; j++) {
            milk_var *v = op->args[a].b[j].var;
            if (!v || r->last_use[v->id] != i || r->keep[v->id] || r->pinned[v->id])
                continue;
            milk_rt_release(&r->vals[v->id]);
            r->have[v->id] = false;
        }
}

/* ---- states ---------------------------------------------------------------- */

milk_status milk_runner_set_state(milk_ctx *ctx, milk_runner *r,
                                  milk_state *s)
{
    if (!s) s = r->own_state;
    for (int i = 0; i < r->fn->n_inputs; i++) {
        const milk_var *v = r->fn->inputs[i];
        if (!v->is_state) continue;
        int k = milk_state_slot(s, v->name);
        char a[160], b[160];
        if (k < 0)
            return milk_errorf(ctx, MILK_ERR_INVALID_ARG,
                               "function '%s': state '%s' is not in the state "
                               "object given",
                               r->fn->name, v->name);
        if (!same_type(&s->vals[k].type, &v->type))
            return milk_errorf(ctx, MILK_ERR_INVALID_ARG,
                               "function '%s': state '%s' is %s, the state "
                               "object holds %s",
                               r->fn->name, v->name,
                               milk_type_str(&v->type, a, sizeof a),
                               milk_type_str(&s->vals[k].type, b, sizeof b));
    }
    r->state = s;
    return MILK_OK;
}

milk_state *milk_runner_state(const milk_runner *r)
{
    return r->state;
}

/* The slot of the state bound to op's `input`. */
static int state_slot_of(const milk_runner *r, const milk_op *op)
{
    const milk_var *v = milk_op_var(op, "input");
    return v ? milk_state_slot(r->state, v->name) : -1;
}

/* Point each state input at its slot of the state object; a state read
 * before anything wrote it (in the object, or earlier in this function)
 * is an error. The writes of this run are recorded by run_states_done. */
static milk_status bind_states(milk_ctx *ctx, milk_runner *r)
{
    milk_state *s = r->state;
    if (!s) return MILK_OK;
    for (int i = 0; i < r->fn->n_inputs; i++) {
        const milk_var *v = r->fn->inputs[i];
        if (!v->is_state) continue;
        int k = milk_state_slot(s, v->name);
        if (k < 0) return milk_errorf(ctx, MILK_ERR_INVALID_ARG, "no state '%s'", v->name);
        milk_rt t = s->vals[k];
        t.owned = NULL; /* borrowed from the state object */
        r->vals[v->id] = t;
        r->have[v->id] = r->pinned[v->id] = true;
    }
    bool *written = calloc((size_t)s->n + 1, sizeof *written);
    if (!written) return nomem(ctx);
    milk_status st = MILK_OK;
    for (int i = 0; st == MILK_OK && i < r->blk->n_ops; i++) {
        const milk_op *op = r->blk->ops[i];
        int k = op->kind == MILK_OP_read_state || op->kind == MILK_OP_write_state
                    ? state_slot_of(r, op) : -1;
        if (k < 0) continue;
        if (op->kind == MILK_OP_write_state) written[k] = true;
        else if (!s->set[k] && !written[k])
            st = milk_errorf(ctx, MILK_ERR_INVALID_ARG,
                             "op '%s' (read_state): state '%s' is read before "
                             "any write: the state object holds no value for "
                             "it (it was cleared, or a state file did not "
                             "hold it); reset it to zeros or write it first",
                             op->name, s->names[k]);
    }
    free(written);
    return st;
}

/* After a run: the states it wrote hold values. */
static void run_states_done(milk_runner *r)
{
    for (int i = 0; r->state && i < r->blk->n_ops; i++) {
        const milk_op *op = r->blk->ops[i];
        int k = op->kind == MILK_OP_write_state ? state_slot_of(r, op) : -1;
        if (k >= 0) r->state->set[k] = true;
    }
}

milk_status milk_runner_run(milk_ctx *ctx, milk_runner *r)
{
    MILK_TRY(bind_states(ctx, r));
    for (int i = 0; i < r->fn->n_inputs; i++) {
        milk_var *v = r->fn->inputs[i];
        if (!r->have[v->id]) {
            char sig[1024];
            signature(r->fn, sig, sizeof sig);
            return milk_errorf(ctx, MILK_ERR_INVALID_ARG,
                               "input '%s' was not given; the function is %s",
                               v->name, sig);
        }
    }
    if (!r->params.reference) {
        bool ran;
        milk_status s = run_planned(ctx, r, &ran);
        if (s == MILK_OK && ran) run_states_done(r);
        if (ran || s != MILK_OK) return s;
    }
    /* stand-ins of one run are dropped together at its end */
    if (r->dynamic && !(r->scratch = milk_arena_create())) return nomem(ctx);
    milk_status s = MILK_OK;
    for (int i = 0; s == MILK_OK && i < r->blk->n_ops; i++) {
        s = run_op(ctx, r, i);
        if (s != MILK_OK) break;
        release_after(r, i);
        if (r->params.progress)
            r->params.progress(r->params.progress_user, i + 1, r->blk->n_ops);
    }
    milk_arena_free(r->scratch);
    r->scratch = NULL;
    if (s == MILK_OK) run_states_done(r);
    return s;
}

/* ---- results ------------------------------------------------------------ */

/* The run's type: the given shape for an input, the type the op's output
 * was allocated with (concrete) for the others. */
const milk_tensor_type *milk_runner_type(const milk_runner *r, const char *name)
{
    milk_var *v = milk_function_var(r->fn, name);
    return v && r->have[v->id] ? &r->vals[v->id].type : NULL;
}

milk_status milk_runner_read(milk_ctx *ctx, const milk_runner *r,
                             const char *name, milk_dtype as, void *dst,
                             size_t cap)
{
    milk_var *v = milk_function_var(r->fn, name);
    if (!v || !r->have[v->id])
        return milk_errorf(ctx, MILK_ERR_NOT_FOUND,
                           "no value for '%s' (not a var, or not kept)", name);
    const milk_rt *t = &r->vals[v->id];
    uint64_t need;
    if (!milk_dtype_nbytes(as, t->count, &need) || need > cap)
        return milk_errorf(ctx, MILK_ERR_INVALID_ARG,
                           "'%s': buffer of %zu bytes for %lld elements of %s",
                           name, cap, (long long)t->count,
                           milk_dtype_name(as) ? milk_dtype_name(as) : "?");
    if (as == t->store && as != MILK_DTYPE_BOOL) { /* fp32 or int32 as stored */
        if (need) memcpy(dst, t->data, (size_t)need);
        return MILK_OK;
    }
    for (int64_t i = 0; i < t->count; i++) {
        /* (double) on each arm: otherwise the conditional's type is float
         * and int32 values beyond 2^24 lose their low bits */
        double x = t->store == MILK_DTYPE_FP32 ? (double)milk_rt_f32(t)[i]
                   : t->store == MILK_DTYPE_INT32 ? (double)milk_rt_i32(t)[i]
                                                  : (double)milk_rt_bool(t)[i];
        switch (as) {
        case MILK_DTYPE_FP32: ((float *)dst)[i] = (float)x; break;
        case MILK_DTYPE_FP16: ((uint16_t *)dst)[i] = milk_fp32_to_fp16((float)x); break;
        case MILK_DTYPE_INT32: ((int32_t *)dst)[i] = (int32_t)x; break;
        case MILK_DTYPE_BOOL: ((uint8_t *)dst)[i] = x != 0; break;
        default:
            return milk_errorf(ctx, MILK_ERR_INVALID_ARG,
                               "cannot read values as %s", milk_dtype_name(as));
        }
    }
    return MILK_OK;
}

const milk_function *milk_runner_function(const milk_runner *r)
{
    return r->fn;
}

milk_precision milk_runner_precision(const milk_runner *r)
{
    return r->params.precision;
}

int milk_runner_op_count(const milk_runner *r)
{
    return r->blk->n_ops;
}

const milk_op_stats *milk_runner_op_stats(const milk_runner *r, int i)
{
    return i >= 0 && i < r->blk->n_ops ? &r->stats[i] : NULL;
}
