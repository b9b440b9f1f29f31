/* verify.c: the engine of `milk verify`. Runs the program under test
 * keeping the values it compares, compares each var that has a reference
 * value (a
 * tensor of an .npz archive, or the namesake var of a reference program
 * run on the same inputs), then works out where the divergence starts:
 * the first op whose output is beyond tolerance while everything it read
 * was clean (see milk.h for the precise rule). */
#include "verify.h"

#include <math.h>
#include <stdlib.h>

#define FP16_SUFFIX "_cast_fp16"

/* ---- running ------------------------------------------------------------ */

typedef struct relay {
    const milk_verify_params *p;
    const char *stage;
} relay;

static void relay_progress(void *user, int done, int total)
{
    relay *r = user;
    r->p->progress(r->p->progress_user, r->stage, done, total);
}

milk_status vf_run(milk_ctx *ctx, const milk_program *p, const vf_inputs *in,
                   const milk_verify_params *params, const char *stage,
                   bool keep_all, const char *const *keep, int n_keep,
                   milk_runner **out)
{
    return vf_run_state(ctx, p, in, params, stage, keep_all, keep, n_keep,
                        NULL, out);
}

milk_status vf_run_state(milk_ctx *ctx, const milk_program *p,
                         const vf_inputs *in, const milk_verify_params *params,
                         const char *stage, bool keep_all,
                         const char *const *keep, int n_keep,
                         milk_state *state, milk_runner **out)
{
    *out = NULL;
    relay rl = {params, stage}; /* used only while the runner runs, below */
    milk_run_params rp = {0};
    rp.precision = params->precision;
    rp.keep_all = keep_all;
    rp.threads = params->threads;
    rp.function = params->function;
    if (params->progress) {
        rp.progress = relay_progress;
        rp.progress_user = &rl;
    }
    milk_runner *r;
    MILK_TRY(milk_runner_create(ctx, p, &rp, &r));
    milk_status s = state ? milk_runner_set_state(ctx, r, state) : MILK_OK;
    if (s == MILK_OK) s = vf_inputs_set(ctx, in, r, milk_runner_function(r));
    for (int i = 0; s == MILK_OK && i < n_keep; i++) s = milk_runner_keep(ctx, r, keep[i]);
    if (s == MILK_OK) s = milk_runner_run(ctx, r);
    if (s != MILK_OK) {
        milk_runner_free(r);
        return milk_error_prefix(ctx, "%s", stage);
    }
    *out = r;
    return MILK_OK;
}

/* ---- the result --------------------------------------------------------- */

/* Copy the per-var tolerances and the extract command into v's arena. */
static milk_status copy_options(milk_ctx *ctx, milk_verify *v, const milk_verify_params *p)
{
    if (p->n_tolerances < 0 || (p->n_tolerances && !p->tolerances))
        return milk_errorf(ctx, MILK_ERR_INVALID_ARG, "bad list of tolerances");
    if ((unsigned)p->error_stat > MILK_VERIFY_STAT_ELEMWISE)
        return milk_errorf(ctx, MILK_ERR_INVALID_ARG, "unknown error statistic %d",
                           (int)p->error_stat);
    v->stat = p->error_stat;
    if (p->n_tolerances) {
        v->tols = milk_arena_alloc(v->arena, (size_t)p->n_tolerances * sizeof *v->tols);
        if (!v->tols) return milk_errorf(ctx, MILK_ERR_NOMEM, "out of memory");
    }
    for (int i = 0; i < p->n_tolerances; i++) {
        const milk_verify_tolerance *t = &p->tolerances[i];
        if (!t->var || !(t->atol >= 0) || !(t->rtol >= 0) || !isfinite(t->atol) ||
            !isfinite(t->rtol))
            return milk_errorf(ctx, MILK_ERR_INVALID_ARG, "tolerance %d: a var name and "
                               "finite values >= 0 are needed", i);
        v->tols[i] = *t;
        if (!(v->tols[i].var = milk_arena_strdup(v->arena, t->var)))
            return milk_errorf(ctx, MILK_ERR_NOMEM, "out of memory");
    }
    v->n_tols = p->n_tolerances;
    if (p->extract_command &&
        !(v->extract_command = vf_utf8_clean(v->arena, p->extract_command)))
        return milk_errorf(ctx, MILK_ERR_NOMEM, "out of memory");
    if (p->save_inputs && !(v->save_inputs = vf_utf8_clean(v->arena, p->save_inputs)))
        return milk_errorf(ctx, MILK_ERR_NOMEM, "out of memory");
    return MILK_OK;
}

milk_status vf_verify_new(milk_ctx *ctx, const milk_verify_params *p, bool two,
                          milk_verify **out)
{
    milk_verify *v = calloc(1, sizeof *v);
    if (!v || !(v->arena = milk_arena_create())) {
        free(v);
        return milk_errorf(ctx, MILK_ERR_NOMEM, "out of memory");
    }
    v->two_programs = two;
    v->precision = p->precision;
    v->flags = p->flags;
    v->atol = p->atol;
    v->rtol = p->rtol;
    v->first = -1;
    v->label = vf_utf8_clean(v->arena, p->label ? p->label : two ? "B" : "program");
    v->ref_label = vf_utf8_clean(v->arena, p->ref_label ? p->ref_label
                                           : two ? "A" : "reference");
    *out = v;
    if (!v->label || !v->ref_label) return milk_errorf(ctx, MILK_ERR_NOMEM, "out of memory");
    return copy_options(ctx, v, p);
}

void milk_verify_free(milk_verify *v)
{
    if (!v) return;
    milk_arena_free(v->arena);
    free(v->row_var);
    free(v->row_match);
    free(v);
}

static milk_status grow(milk_ctx *ctx, milk_verify *v, void **items, int n,
                        int *cap, size_t elem)
{
    if (!milk_arena_grow(v->arena, items, n, cap, elem))
        return milk_errorf(ctx, MILK_ERR_NOMEM, "out of memory");
    return MILK_OK;
}

/* ---- where reference values come from ---------------------------------- */

typedef struct source {
    const milk_npz *npz;       /* reference mode */
    const char *npz_label;
    const milk_runner *ra;     /* two-program mode: the reference run */
    const milk_function *fa, *fb;
    milk_names *norm;          /* fa's op outputs by stripped name */
    bool *fp16;                /* by var id of the program under test */
    const milk_verify_params *p; /* its pairs */
} source;

/* One reference tensor: name, type and fp32 values (malloc'd). */
typedef struct want {
    const char *name;
    milk_tensor_type type;
    float *x;
} want;

/* name with every "_cast_fp16" removed: coremltools' fp16 pass appends
 * it to var names (before the _0, _1 of multi-output ops). */
static void strip_fp16(const char *name, char *buf, size_t n)
{
    size_t k = 0, sl = strlen(FP16_SUFFIX);
    while (*name && k + 1 < n) {
        if (strncmp(name, FP16_SUFFIX, sl) == 0) name += sl;
        else buf[k++] = *name++;
    }
    buf[k] = 0;
}

/* The reference program's op outputs by stripped name (the first one
 * wins when two strip to the same name). Keys live in v's arena. */
static milk_status index_reference(milk_ctx *ctx, milk_verify *v,
                                   const milk_function *fa, milk_names **out)
{
    milk_names *names = milk_names_create();
    if (!(*out = names)) return milk_errorf(ctx, MILK_ERR_NOMEM, "out of memory");
    for (int i = 0; i < fa->block->n_ops; i++)
        for (int k = 0; k < fa->block->ops[i]->n_outputs; k++) {
            milk_var *a = fa->block->ops[i]->outputs[k];
            char buf[1024];
            bool oom;
            strip_fp16(a->name, buf, sizeof buf);
            const char *key = milk_arena_strdup(v->arena, buf);
            if (!key || (!milk_names_put(names, key, a, &oom) && oom))
                return milk_errorf(ctx, MILK_ERR_NOMEM, "out of memory");
        }
    return MILK_OK;
}

/* The var of the reference program matching `name` of the program under
 * test: the same name, or the same once "_cast_fp16" is stripped. */
static const char *match_name(const source *s, const char *name, char *buf,
                              size_t n)
{
    if (milk_runner_type(s->ra, name)) return name;
    strip_fp16(name, buf, n);
    const milk_var *a = milk_names_get(s->norm, buf);
    return a && milk_runner_type(s->ra, a->name) ? a->name : NULL;
}

/* Output position of var in fn's block, or -1. */
static int output_pos(const milk_function *fn, const milk_var *var)
{
    for (int i = 0; i < fn->block->n_outputs; i++)
        if (fn->block->outputs[i] == var) return i;
    return -1;
}

/* "A=B" split at the first '=' into a (in buf) and b; false if malformed. */
static bool split_pair(const char *pair, char *buf, size_t n, const char **b)
{
    const char *eq = strchr(pair, '=');
    if (!eq || eq == pair || !eq[1] || (size_t)(eq - pair) >= n) return false;
    memcpy(buf, pair, (size_t)(eq - pair));
    buf[eq - pair] = 0;
    *b = eq + 1;
    return true;
}

/* The reference name params.pairs give var, or NULL. */
static const char *given_pair(const source *s, const milk_var *var, char *buf, size_t n)
{
    for (int i = 0; s->p && i < s->p->n_pairs; i++) {
        const char *b;
        if (split_pair(s->p->pairs[i], buf, n, &b) && strcmp(b, var->name) == 0)
            return buf;
    }
    return NULL;
}

/* The reference var of var, and how it was found: NULL (same name, or
 * the same once "_cast_fp16" is stripped), "pair" or "position". */
static const char *match_var(const source *s, const milk_var *var, char *buf,
                             size_t n, const char **how)
{
    *how = "pair";
    const char *name = given_pair(s, var, buf, n);
    if (name) return name;
    *how = NULL;
    name = match_name(s, var->name, buf, n);
    int pos = output_pos(s->fb, var);
    if (name || pos < 0 || s->fa->block->n_outputs != s->fb->block->n_outputs)
        return name;
    *how = "position";
    return s->fa->block->outputs[pos]->name; /* outputs pair by position */
}

static milk_status find_want(milk_ctx *ctx, const source *s, const milk_var *var,
                             const milk_tensor_type *got, want *w, bool *found,
                             const char **how)
{
    char buf[1024];
    *found = false;
    *how = NULL;
    if (s->npz) {
        const milk_array *a = milk_npz_find(s->npz, var->name);
        if (!a) return MILK_OK;
        *found = true;
        *w = (want){var->name, a->type, NULL};
        char what[1200];
        snprintf(what, sizeof what, "%s: '%s'", s->npz_label, var->name);
        return vf_array_f32(ctx, what, a, &w->x);
    }
    const char *name = match_var(s, var, buf, sizeof buf, how);
    const milk_tensor_type *t = name ? milk_runner_type(s->ra, name) : NULL;
    if (!t) return MILK_OK;
    /* Namesakes of another shape are other tensors, unless they are the
     * outputs both programs promise, or paired on purpose. */
    if (!vf_same_shape(t, got) && output_pos(s->fb, var) < 0 && !*how) return MILK_OK;
    *found = true;
    *w = (want){name, *t, NULL};
    return vf_runner_f32(ctx, s->ra, name, &w->x);
}

/* ---- rows ---------------------------------------------------------------- */

static milk_status add_row(milk_ctx *ctx, milk_verify *v, const milk_op *op,
                           int op_index, const milk_var *var, bool fp16,
                           const milk_tensor_type *got_t, const float *got,
                           const want *w)
{
    MILK_TRY(grow(ctx, v, (void **)&v->rows, v->n_rows, &v->cap_rows, sizeof *v->rows));
    size_t cap = (size_t)v->cap_rows; /* the parallel arrays follow rows */
    int *rv = realloc(v->row_var, cap * sizeof *rv);
    if (rv) v->row_var = rv;
    bool *rm = rv ? realloc(v->row_match, cap * sizeof *rm) : NULL;
    if (rm) v->row_match = rm;
    if (!rv || !rm) return milk_errorf(ctx, MILK_ERR_NOMEM, "out of memory");
    milk_verify_row *row = &v->rows[v->n_rows];
    memset(row, 0, sizeof *row);
    row->op = milk_arena_strdup(v->arena, op->name);
    row->op_type = milk_ops[op->kind]->name;
    row->var = milk_arena_strdup(v->arena, var->name);
    row->ref = milk_arena_strdup(v->arena, w->name);
    if (!row->op || !row->var || !row->ref) return milk_errorf(ctx, MILK_ERR_NOMEM, "out of memory");
    row->op_index = op_index;
    row->type = *got_t;
    vf_tolerance(v, fp16 || w->type.dtype == MILK_DTYPE_FP16, var->name, &row->atol,
                 &row->rtol);
    int64_t n = milk_tensor_type_count(got_t);
    vf_metrics m = {INFINITY, 0, INFINITY, -INFINITY, -INFINITY, INFINITY, INFINITY, n};
    row->shape_mismatch = !vf_same_shape(got_t, &w->type);
    if (!row->shape_mismatch) MILK_TRY(vf_compare(ctx, got, w->x, n, row->atol, row->rtol, &m));
    row->max_abs = m.max_abs;
    row->max_rel = m.max_rel;
    row->snr_db = m.snr_db;
    row->psnr_db = m.psnr_db;
    row->mean_abs = m.mean_abs;
    row->median_abs = m.median_abs;
    row->n_beyond = m.n_beyond;
    v->row_var[v->n_rows] = var->id;
    v->row_match[v->n_rows] = !row->shape_mismatch && vf_within(&m, v->stat, row->atol, row->rtol);
    v->n_rows++;
    return MILK_OK;
}

static milk_status note_pairing(milk_ctx *ctx, milk_verify *v, const char *var,
                                const char *ref, const char *how)
{
    MILK_TRY(grow(ctx, v, (void **)&v->paired, v->n_paired, &v->cap_paired,
                  sizeof *v->paired));
    vf_pairing *pr = &v->paired[v->n_paired];
    pr->var = milk_arena_strdup(v->arena, var);
    pr->ref = milk_arena_strdup(v->arena, ref);
    pr->how = how; /* static */
    if (!pr->var || !pr->ref) return milk_errorf(ctx, MILK_ERR_NOMEM, "out of memory");
    v->n_paired++;
    return MILK_OK;
}

/* Compare var (an output of op) if it has a reference value. */
static milk_status compare_var(milk_ctx *ctx, milk_verify *v, const source *s,
                               const milk_runner *r, const milk_op *op,
                               int op_index, const milk_var *var)
{
    const milk_tensor_type *got_t = milk_runner_type(r, var->name);
    if (s->npz && !milk_npz_find(s->npz, var->name)) {
        v->n_unchecked++; /* and not kept by the run */
        return MILK_OK;
    }
    if (!got_t) return MILK_OK; /* strings and the like: no value */
    want w = {0};
    bool found;
    float *got = NULL;
    const char *how;
    milk_status st = find_want(ctx, s, var, got_t, &w, &found, &how);
    if (st == MILK_OK && found && how) st = note_pairing(ctx, v, var->name, w.name, how);
    if (st == MILK_OK && !found) v->n_unchecked++;
    if (st == MILK_OK && found) st = vf_runner_f32(ctx, r, var->name, &got);
    if (st == MILK_OK && found)
        st = add_row(ctx, v, op, op_index, var, s->fp16[var->id], got_t, got, &w);
    free(got);
    free(w.x);
    return st;
}

static milk_status compare_all(milk_ctx *ctx, milk_verify *v, const source *s,
                               const milk_function *fn, const milk_runner *r)
{
    const milk_block *b = fn->block;
    for (int i = 0; i < b->n_ops; i++) {
        const milk_op *op = b->ops[i];
        if (op->kind == MILK_OP_const_) continue;
        for (int k = 0; k < op->n_outputs && !v->stopped; k++) {
            MILK_TRY(compare_var(ctx, v, s, r, op, v->n_ops, op->outputs[k]));
            v->stopped = (v->flags & MILK_VERIFY_FAIL_FAST) && v->n_rows > 0 &&
                         !v->row_match[v->n_rows - 1];
        }
        v->n_ops++;
    }
    return MILK_OK;
}

/* ---- where the divergence starts ----------------------------------------- */

static int *rows_by_var(const milk_verify *v, const milk_function *fn)
{
    int *row_of = malloc(((size_t)fn->n_vars + 1) * sizeof *row_of);
    if (!row_of) return NULL;
    for (int i = 0; i < fn->n_vars; i++) row_of[i] = -1;
    for (int i = 0; i < v->n_rows; i++) row_of[v->row_var[i]] = i;
    return row_of;
}

static bool inputs_clean(const milk_op *op, const bool *clean)
{
    for (int a = 0; a < op->n_args; a++)
        for (int j = 0; j < op->args[a].n; j++) {
            const milk_var *in = op->args[a].b[j].var;
            if (in && !clean[in->id]) return false;
        }
    return true;
}

/* Walk the program in order marking clean vars; set each row's state. */
static void mark_states(milk_verify *v, const milk_function *fn,
                        const int *row_of, bool *clean)
{
    for (int i = 0; i < fn->n_inputs; i++) clean[fn->inputs[i]->id] = true;
    for (int i = 0; i < fn->block->n_ops; i++) {
        const milk_op *op = fn->block->ops[i];
        bool in_clean = op->kind == MILK_OP_const_ || inputs_clean(op, clean);
        for (int k = 0; k < op->n_outputs; k++) {
            int id = op->outputs[k]->id, row = row_of[id];
            clean[id] = row < 0 ? in_clean : v->row_match[row];
            if (row < 0) continue;
            v->rows[row].state = v->row_match[row] ? MILK_VERIFY_MATCH
                                 : in_clean        ? MILK_VERIFY_DIVERGED
                                                   : MILK_VERIFY_PROPAGATED;
            if (v->rows[row].state == MILK_VERIFY_DIVERGED && v->first < 0)
                v->first = row;
        }
    }
}

/* at[id]: index in fn's block of the op producing var id (-1 for inputs). */
static int *producer_index(const milk_function *fn)
{
    int *at = malloc(((size_t)fn->n_vars + 1) * sizeof *at);
    for (int i = 0; at && i < fn->n_vars; i++) at[i] = -1;
    for (int i = 0; at && i < fn->block->n_ops; i++)
        for (int k = 0; k < fn->block->ops[i]->n_outputs; k++)
            at[fn->block->ops[i]->outputs[k]->id] = i;
    return at;
}

/* Mark (in seen, by block index) the non-const ops feeding op through
 * vars without reference values, transitively. */
static void walk_unchecked(const milk_function *fn, const milk_op *op, const int *row_of,
                           const int *at, bool *seen, const milk_op **stack)
{
    int sp = 0;
    stack[sp++] = op;
    while (sp > 0) {
        const milk_op *o = stack[--sp];
        for (int a = 0; a < o->n_args; a++)
            for (int j = 0; j < o->args[a].n; j++) {
                const milk_var *in = o->args[a].b[j].var;
                int pi = in && row_of[in->id] < 0 ? at[in->id] : -1;
                if (pi < 0 || seen[pi] || fn->block->ops[pi]->kind == MILK_OP_const_) continue;
                seen[pi] = true;
                stack[sp++] = fn->block->ops[pi];
            }
    }
}

/* The ops without reference values that feed `op` through unchecked vars:
 * where the divergence may have started instead. In program order. */
static milk_status find_suspects(milk_ctx *ctx, milk_verify *v,
                                 const milk_function *fn, const milk_op *op,
                                 const int *row_of)
{
    bool *seen = calloc((size_t)fn->block->n_ops + 1, sizeof *seen);
    const milk_op **stack = calloc((size_t)fn->block->n_ops + 1, sizeof *stack);
    int *at = producer_index(fn), cap = 0;
    milk_status s = seen && stack && at ? MILK_OK
                                        : milk_errorf(ctx, MILK_ERR_NOMEM, "out of memory");
    if (s == MILK_OK) walk_unchecked(fn, op, row_of, at, seen, stack);
    for (int i = 0; s == MILK_OK && i < fn->block->n_ops; i++) {
        if (!seen[i]) continue;
        const milk_op *p = fn->block->ops[i];
        char buf[1024];
        snprintf(buf, sizeof buf, "%s (%s)", p->name, milk_ops[p->kind]->name);
        s = grow(ctx, v, (void **)&v->suspects, v->n_suspects, &cap, sizeof *v->suspects);
        if (s == MILK_OK && !(v->suspects[v->n_suspects++] = milk_arena_strdup(v->arena, buf)))
            s = milk_errorf(ctx, MILK_ERR_NOMEM, "out of memory");
    }
    free(seen);
    free(stack);
    free(at);
    return s;
}

static const milk_op *op_of_row(const milk_function *fn, const milk_verify *v,
                                int row)
{
    for (int i = 0; i < fn->block->n_ops; i++)
        for (int k = 0; k < fn->block->ops[i]->n_outputs; k++)
            if (fn->block->ops[i]->outputs[k]->id == v->row_var[row])
                return fn->block->ops[i];
    return NULL;
}

static milk_status analyze(milk_ctx *ctx, milk_verify *v, const milk_function *fn)
{
    int *row_of = rows_by_var(v, fn);
    bool *clean = calloc((size_t)fn->n_vars + 1, sizeof *clean);
    milk_status s = row_of && clean ? MILK_OK : milk_errorf(ctx, MILK_ERR_NOMEM, "out of memory");
    if (s == MILK_OK) mark_states(v, fn, row_of, clean);
    if (s == MILK_OK && v->first >= 0)
        s = find_suspects(ctx, v, fn, op_of_row(fn, v, v->first), row_of);
    free(row_of);
    free(clean);
    return s;
}

/* Per-op fp16 overflow, inf and NaN counts of the run under test, into
 * the rows of each op (rows are in program order) and the flag list. */
static milk_status collect_flags(milk_ctx *ctx, milk_verify *v, const milk_runner *r)
{
    int pos = 0, row = 0;
    for (int i = 0; i < milk_runner_op_count(r); i++) {
        const milk_op_stats *st = milk_runner_op_stats(r, i);
        if (!st->op || st->op->kind == MILK_OP_const_) continue;
        for (; row < v->n_rows && v->rows[row].op_index == pos; row++) {
            v->rows[row].n_overflow = st->n_overflow;
            v->rows[row].n_inf = st->n_inf;
            v->rows[row].n_nan = st->n_nan;
        }
        if (st->n_overflow || st->n_inf || st->n_nan) {
            MILK_TRY(grow(ctx, v, (void **)&v->flags_list, v->n_flags, &v->cap_flags,
                          sizeof *v->flags_list));
            const char *name = milk_arena_strdup(v->arena, st->op->name);
            if (!name) return milk_errorf(ctx, MILK_ERR_NOMEM, "out of memory");
            v->flags_list[v->n_flags++] = (vf_flag){name, milk_ops[st->op->kind]->name, pos,
                                                    st->n_overflow, st->n_inf, st->n_nan};
        }
        pos++;
    }
    return MILK_OK;
}

/* ---- the two entry points ------------------------------------------------ */

/* The function to verify: params->function, else the default one. */
static milk_status main_of(milk_ctx *ctx, const milk_program *p, const char *label,
                           const milk_verify_params *params,
                           const milk_function **out)
{
    const char *name = params->function ? params->function
                                        : milk_program_default_function(p);
    *out = milk_program_function(p, name);
    if (!*out) {
        milk_function_not_found(ctx, p, name);
        return milk_error_prefix(ctx, "%s", label);
    }
    return MILK_OK;
}

/* Reference tensors that are no var of fn at all (a typo, another model). */
static milk_status collect_unmatched(milk_ctx *ctx, milk_verify *v,
                                     const milk_npz *z, const milk_function *fn)
{
    for (int i = 0; i < z->n; i++) {
        if (milk_function_var(fn, z->members[i].name)) continue;
        MILK_TRY(grow(ctx, v, (void **)&v->unmatched, v->n_unmatched, &v->cap_unmatched,
                      sizeof *v->unmatched));
        if (!(v->unmatched[v->n_unmatched++] = milk_arena_strdup(v->arena, z->members[i].name)))
            return milk_errorf(ctx, MILK_ERR_NOMEM, "out of memory");
    }
    return MILK_OK;
}

static milk_status no_rows(milk_ctx *ctx, const milk_verify *v, const milk_function *fn)
{
    char outs[1024] = "";
    size_t k = 0;
    for (int i = 0; i < fn->block->n_outputs && k < sizeof outs; i++)
        k += (size_t)snprintf(outs + k, sizeof outs - k, "%s%s", i ? ", " : "",
                              fn->block->outputs[i]->name);
    return milk_errorf(ctx, MILK_ERR_NOT_FOUND,
                       "%s holds no value for any var of %s computed by an op "
                       "(its outputs: %s)", v->ref_label, v->label, outs);
}

/* fp16[id]: var id is fp16, or computed from fp16 values (a cast back to
 * fp32 keeps fp16's error, and so does what follows it). */
static bool *fp16_lineage(const milk_function *fn)
{
    bool *f = calloc((size_t)fn->n_vars + 1, sizeof *f);
    for (int i = 0; f && i < fn->n_inputs; i++)
        f[fn->inputs[i]->id] = fn->inputs[i]->type.dtype == MILK_DTYPE_FP16;
    for (int i = 0; f && i < fn->block->n_ops; i++) {
        const milk_op *op = fn->block->ops[i];
        bool from16 = false;
        for (int a = 0; a < op->n_args; a++)
            for (int j = 0; j < op->args[a].n; j++) {
                const milk_binding *b = &op->args[a].b[j];
                from16 |= b->var ? f[b->var->id] : b->value->type.dtype == MILK_DTYPE_FP16;
            }
        for (int k = 0; k < op->n_outputs; k++)
            f[op->outputs[k]->id] = from16 || op->outputs[k]->type.dtype == MILK_DTYPE_FP16;
    }
    return f;
}

static milk_status finish(milk_ctx *ctx, milk_verify *v, source *s,
                          const milk_function *fn, const milk_runner *r)
{
    if (!(s->fp16 = fp16_lineage(fn))) return milk_errorf(ctx, MILK_ERR_NOMEM, "out of memory");
    milk_status st = compare_all(ctx, v, s, fn, r);
    free(s->fp16);
    MILK_TRY(st);
    if (v->n_rows == 0) return no_rows(ctx, v, fn);
    MILK_TRY(analyze(ctx, v, fn));
    if (s->npz) MILK_TRY(collect_unmatched(ctx, v, s->npz, fn));
    return collect_flags(ctx, v, r);
}

/* Every per-var tolerance names a var of fn. */
static milk_status check_tolerances(milk_ctx *ctx, const milk_verify_params *p,
                                    const milk_function *fn, const char *label)
{
    for (int i = 0; i < p->n_tolerances; i++)
        if (p->tolerances[i].var && !milk_function_var(fn, p->tolerances[i].var))
            return milk_errorf(ctx, MILK_ERR_NOT_FOUND, "tolerance for '%s': %s has no var "
                               "of that name", p->tolerances[i].var, label);
    return MILK_OK;
}

/* The model inputs of a run into an .npz (params.save_inputs). */
static milk_status save_inputs(milk_ctx *ctx, const vf_inputs *in, const char *path)
{
    const char **names = calloc((size_t)in->n + 1, sizeof *names);
    milk_array *arrays = calloc((size_t)in->n + 1, sizeof *arrays);
    milk_status s = names && arrays ? MILK_OK : milk_errorf(ctx, MILK_ERR_NOMEM, "out of memory");
    for (int i = 0; s == MILK_OK && i < in->n; i++) {
        names[i] = in->items[i].name;
        arrays[i] = *in->items[i].use; /* shallow: written, not freed */
    }
    if (s == MILK_OK) s = milk_npz_write(ctx, path, names, arrays, in->n);
    free(names);
    free(arrays);
    return s;
}

/* The model outputs of the run under test into an .npz. */
static milk_status save_outputs(milk_ctx *ctx, const milk_runner *r, const char *path)
{
    const milk_function *fn = milk_runner_function(r);
    const char **names = calloc((size_t)fn->block->n_outputs + 1, sizeof *names);
    if (!names) return milk_errorf(ctx, MILK_ERR_NOMEM, "out of memory");
    int n = 0;
    for (int i = 0; i < fn->block->n_outputs; i++) {
        bool dup = false; /* an output listed twice is written once */
        for (int k = 0; k < n; k++) dup |= strcmp(names[k], fn->block->outputs[i]->name) == 0;
        if (!dup) names[n++] = fn->block->outputs[i]->name;
    }
    milk_status s = milk_runner_save_npz(ctx, r, names, n, path);
    free(names);
    return s;
}

milk_status vf_verify_archive(milk_ctx *ctx, const milk_program *p, const vf_inputs *in,
                              const milk_npz *z, const milk_verify_params *params,
                              milk_verify *v)
{
    const milk_function *fn;
    MILK_TRY(main_of(ctx, p, v->label, params, &fn));
    /* keep only the vars the archive holds: a big model's values need not
     * all fit in memory at once */
    const char **keep = calloc((size_t)z->n + 1, sizeof *keep);
    if (!keep) return milk_errorf(ctx, MILK_ERR_NOMEM, "out of memory");
    int n = 0;
    for (int i = 0; i < z->n; i++)
        if (milk_function_var(fn, z->members[i].name)) keep[n++] = z->members[i].name;
    milk_runner *r = NULL;
    milk_status s = vf_run(ctx, p, in, params, v->label, false, keep, n, &r);
    source src = {z, v->ref_label, NULL, NULL, fn, NULL, NULL, NULL};
    if (s == MILK_OK) s = finish(ctx, v, &src, fn, r);
    if (s == MILK_OK && params->save_outputs) s = save_outputs(ctx, r, params->save_outputs);
    milk_runner_free(r);
    free(keep);
    return s;
}

/* Run p on the archive's inputs, keeping only the vars the archive holds:
 * a big model's values need not all fit in memory at once. */
static milk_status run_for_archive(milk_ctx *ctx, const milk_program *p,
                                   const milk_function *fn, const milk_npz *z,
                                   const milk_verify_params *params, milk_verify *v,
                                   milk_state *state, milk_runner **r)
{
    const char **keep = calloc((size_t)z->n + 1, sizeof *keep);
    if (!keep) return milk_errorf(ctx, MILK_ERR_NOMEM, "out of memory");
    int n = 0;
    for (int i = 0; i < z->n; i++)
        if (milk_function_var(fn, z->members[i].name)) keep[n++] = z->members[i].name;
    vf_inputs in = {0};
    milk_status s = vf_inputs_gather(ctx, fn, z, v->ref_label, params, false, v, &in);
    if (s == MILK_OK)
        s = vf_run_state(ctx, p, &in, params, v->label, false, keep, n, state, r);
    vf_inputs_release(&in);
    free(keep);
    return s;
}

/* ---- several steps (stateful programs) ------------------------------------ */

/* The tensors of z for step k: NAME@k as NAME, and NAME (the same for
 * every step) where there is no NAME@k. The arrays are borrowed from z:
 * release with view_release. */
static milk_status step_view(milk_ctx *ctx, const milk_npz *z, int k,
                             milk_npz *out)
{
    memset(out, 0, sizeof *out);
    if (!(out->members = calloc((size_t)z->n + 1, sizeof *out->members)))
        return milk_errorf(ctx, MILK_ERR_NOMEM, "out of memory");
    char suffix[32];
    int ls = snprintf(suffix, sizeof suffix, "@%d", k);
    for (int i = 0; i < z->n; i++) {
        const char *name = z->members[i].name, *at = strrchr(name, '@');
        size_t len = strlen(name);
        bool mine = at && strcmp(at, suffix) == 0;
        if (at && !mine) continue; /* another step's */
        if (mine) len -= (size_t)ls;
        else {
            char key[1024];
            snprintf(key, sizeof key, "%s%s", name, suffix);
            if (milk_npz_find(z, key)) continue; /* NAME@k wins */
        }
        char *n = malloc(len + 1);
        if (!n) return milk_errorf(ctx, MILK_ERR_NOMEM, "out of memory");
        memcpy(n, name, len);
        n[len] = 0;
        out->members[out->n].name = n;
        out->members[out->n++].array = z->members[i].array;
    }
    return MILK_OK;
}

static void view_release(milk_npz *z)
{
    for (int i = 0; i < z->n; i++) free(z->members[i].name);
    free(z->members);
    memset(z, 0, sizeof *z);
}

/* name@k in v's arena. */
static const char *at_step(milk_verify *v, const char *name, int k)
{
    char buf[1024];
    snprintf(buf, sizeof buf, "%s@%d", name, k);
    return milk_arena_strdup(v->arena, buf);
}

/* Append step k's result to the whole: rows keyed var@k, the first
 * divergence of the earliest step that has one, its suspects. */
static milk_status merge_step(milk_ctx *ctx, milk_verify *v,
                              const milk_verify *w, int k)
{
    int base = v->n_rows;
    for (int i = 0; i < w->n_rows; i++) {
        MILK_TRY(grow(ctx, v, (void **)&v->rows, v->n_rows, &v->cap_rows, sizeof *v->rows));
        size_t cap = (size_t)v->cap_rows;
        int *rv = realloc(v->row_var, cap * sizeof *rv);
        if (rv) v->row_var = rv;
        bool *rm = rv ? realloc(v->row_match, cap * sizeof *rm) : NULL;
        if (rm) v->row_match = rm;
        if (!rv || !rm) return milk_errorf(ctx, MILK_ERR_NOMEM, "out of memory");
        milk_verify_row row = w->rows[i];
        row.op = milk_arena_strdup(v->arena, row.op);
        row.var = at_step(v, row.var, k);
        row.ref = at_step(v, row.ref, k);
        if (!row.op || !row.var || !row.ref) return milk_errorf(ctx, MILK_ERR_NOMEM, "out of memory");
        v->rows[v->n_rows] = row;
        v->row_var[v->n_rows] = w->row_var[i];
        v->row_match[v->n_rows++] = w->row_match[i];
    }
    if (v->first < 0 && w->first >= 0) {
        v->first = base + w->first;
        for (int i = 0; i < w->n_suspects; i++) {
            int cap = v->n_suspects;
            MILK_TRY(grow(ctx, v, (void **)&v->suspects, v->n_suspects, &cap, sizeof *v->suspects));
            if (!(v->suspects[v->n_suspects++] = at_step(v, w->suspects[i], k)))
                return milk_errorf(ctx, MILK_ERR_NOMEM, "out of memory");
        }
    }
    for (int i = 0; i < w->n_flags; i++) {
        MILK_TRY(grow(ctx, v, (void **)&v->flags_list, v->n_flags, &v->cap_flags,
                      sizeof *v->flags_list));
        vf_flag f = w->flags_list[i];
        if (!(f.op = at_step(v, f.op, k))) return milk_errorf(ctx, MILK_ERR_NOMEM, "out of memory");
        v->flags_list[v->n_flags++] = f;
    }
    v->n_ops = w->n_ops;
    v->n_unchecked += w->n_unchecked;
    return MILK_OK;
}

/* Reference tensors of no step and no var: NAME@k with k >= steps, or a
 * name that is no var. */
static milk_status steps_unmatched(milk_ctx *ctx, milk_verify *v,
                                   const milk_npz *z, const milk_function *fn,
                                   int steps)
{
    for (int i = 0; i < z->n; i++) {
        char name[1024];
        snprintf(name, sizeof name, "%s", z->members[i].name);
        char *at = strrchr(name, '@'), *end = NULL;
        long k = at ? strtol(at + 1, &end, 10) : 0;
        if (at && end && !*end && k >= 0 && k < steps) *at = 0;
        if (milk_function_var(fn, name) && (!at || (end && !*end && k < steps))) continue;
        MILK_TRY(grow(ctx, v, (void **)&v->unmatched, v->n_unmatched, &v->cap_unmatched,
                      sizeof *v->unmatched));
        if (!(v->unmatched[v->n_unmatched++] = milk_arena_strdup(v->arena, z->members[i].name)))
            return milk_errorf(ctx, MILK_ERR_NOMEM, "out of memory");
    }
    return MILK_OK;
}

/* Step k of a multi-step verification into w, with the states of st. */
static milk_status verify_step(milk_ctx *ctx, const milk_program *p,
                               const milk_function *fn, const milk_npz *z,
                               int k, const milk_verify_params *params,
                               milk_state *st, milk_verify *w)
{
    milk_npz view;
    milk_runner *r = NULL;
    milk_status s = step_view(ctx, z, k, &view);
    if (s == MILK_OK) s = run_for_archive(ctx, p, fn, &view, params, w, st, &r);
    source src = {&view, w->ref_label, NULL, NULL, fn, NULL, NULL, NULL};
    if (s == MILK_OK) {
        if (!(src.fp16 = fp16_lineage(fn))) s = milk_errorf(ctx, MILK_ERR_NOMEM, "out of memory");
        if (s == MILK_OK) s = compare_all(ctx, w, &src, fn, r);
        free(src.fp16);
        if (s == MILK_OK) s = analyze(ctx, w, fn);
        if (s == MILK_OK) s = collect_flags(ctx, w, r);
    }
    milk_runner_free(r);
    view_release(&view);
    if (s != MILK_OK) milk_error_prefix(ctx, "step %d", k);
    return s;
}

/* params->steps runs of fn with one state object (zero at first), step k
 * on REF's NAME@k inputs (or NAME for every step), each compared with
 * REF's NAME@k values. */
static milk_status verify_steps(milk_ctx *ctx, const milk_program *p,
                                const milk_function *fn, const char *ref_path,
                                const milk_verify_params *params,
                                milk_verify **out)
{
    milk_npz z = {0};
    milk_state *st = NULL;
    milk_verify *v = NULL;
    MILK_TRY(milk_npz_read(ctx, ref_path, &z));
    milk_status s = milk_state_create(ctx, p, &st);
    if (s == MILK_OK) s = vf_verify_new(ctx, params, false, &v);
    if (s == MILK_OK && !params->ref_label && !(v->ref_label = vf_utf8_clean(v->arena, ref_path)))
        s = milk_errorf(ctx, MILK_ERR_NOMEM, "out of memory");
    for (int k = 0; s == MILK_OK && k < params->steps; k++) {
        milk_verify *w = NULL;
        s = vf_verify_new(ctx, params, false, &w);
        if (s == MILK_OK) w->ref_label = v->ref_label;
        if (s == MILK_OK) s = verify_step(ctx, p, fn, &z, k, params, st, w);
        if (s == MILK_OK) s = merge_step(ctx, v, w, k);
        milk_verify_free(w);
    }
    if (s == MILK_OK && v->n_rows == 0) s = no_rows(ctx, v, fn);
    if (s == MILK_OK) s = steps_unmatched(ctx, v, &z, fn, params->steps);
    milk_state_free(st);
    milk_npz_release(&z);
    if (s != MILK_OK) milk_verify_free(v);
    else *out = v;
    return s;
}

milk_status milk_verify_reference(milk_ctx *ctx, const milk_program *p,
                                  const char *ref_path,
                                  const milk_verify_params *params,
                                  milk_verify **out)
{
    milk_verify_params def = {0};
    const milk_function *fn;
    *out = NULL;
    if (!params) params = &def;
    const char *label = params->label ? params->label : "program";
    MILK_TRY(main_of(ctx, p, label, params, &fn));
    MILK_TRY(check_tolerances(ctx, params, fn, label));
    if (params->steps > 1) return verify_steps(ctx, p, fn, ref_path, params, out);
    milk_npz z = {0};
    MILK_TRY(milk_npz_read(ctx, ref_path, &z));
    milk_verify *v = NULL;
    vf_inputs in = {0};
    milk_status s = vf_verify_new(ctx, params, false, &v);
    if (s == MILK_OK && !params->ref_label && !(v->ref_label = vf_utf8_clean(v->arena, ref_path)))
        s = milk_errorf(ctx, MILK_ERR_NOMEM, "out of memory");
    if (s == MILK_OK) s = vf_inputs_gather(ctx, fn, &z, v->ref_label, params, false, v, &in);
    if (s == MILK_OK && params->save_inputs) s = save_inputs(ctx, &in, params->save_inputs);
    if (s == MILK_OK) s = vf_verify_archive(ctx, p, &in, &z, params, v);
    vf_inputs_release(&in);
    milk_npz_release(&z);
    if (s != MILK_OK) milk_verify_free(v);
    else *out = v;
    return s;
}

/* Run a (the reference) and b on in and compare b's vars with a's; pa and
 * pb say how each runs. */
static milk_status compare_runs(milk_ctx *ctx, milk_verify *v, const milk_program *a,
                                const milk_program *b, const vf_inputs *in,
                                const milk_verify_params *pa, const milk_verify_params *pb)
{
    const milk_function *fa, *fb;
    MILK_TRY(main_of(ctx, a, v->ref_label, pa, &fa));
    MILK_TRY(main_of(ctx, b, v->label, pb, &fb));
    milk_runner *ra = NULL, *rb = NULL;
    milk_status s = vf_run(ctx, a, in, pa, v->ref_label, true, NULL, 0, &ra);
    if (s == MILK_OK) s = vf_run(ctx, b, in, pb, v->label, true, NULL, 0, &rb);
    source src = {NULL, NULL, ra, fa, fb, NULL, NULL, pb};
    if (s == MILK_OK) s = index_reference(ctx, v, fa, &src.norm);
    if (s == MILK_OK) s = finish(ctx, v, &src, fb, rb);
    if (s == MILK_OK && pb->save_outputs) s = save_outputs(ctx, rb, pb->save_outputs);
    milk_names_free(src.norm);
    milk_runner_free(ra);
    milk_runner_free(rb);
    return s;
}

milk_status vf_verify_precisions(milk_ctx *ctx, const milk_program *p, const vf_inputs *in,
                                 const milk_verify_params *params, milk_verify *v)
{
    milk_verify_params pa = *params, pb = *params;
    pa.precision = MILK_PRECISION_FP32;
    pb.precision = MILK_PRECISION_AS_DECLARED;
    pa.save_outputs = NULL;
    return compare_runs(ctx, v, p, p, in, &pa, &pb);
}

/* Every pair names a var of each program, B's computed by an op. */
static milk_status check_pairs(milk_ctx *ctx, const milk_verify_params *p,
                               const milk_function *fa, const milk_function *fb)
{
    const char *la = p->ref_label ? p->ref_label : "A", *lb = p->label ? p->label : "B";
    if (p->n_pairs < 0 || (p->n_pairs && !p->pairs))
        return milk_errorf(ctx, MILK_ERR_INVALID_ARG, "bad list of pairs");
    for (int i = 0; i < p->n_pairs; i++) {
        char a[1024];
        const char *b;
        const milk_var *vb = NULL;
        if (!p->pairs[i] || !split_pair(p->pairs[i], a, sizeof a, &b))
            return milk_errorf(ctx, MILK_ERR_INVALID_ARG, "pair '%s': expected "
                               "A_NAME=B_NAME", p->pairs[i] ? p->pairs[i] : "(null)");
        if (!milk_function_var(fa, a))
            return milk_errorf(ctx, MILK_ERR_NOT_FOUND, "pair '%s': %s has no var "
                               "'%s'", p->pairs[i], la, a);
        if (!(vb = milk_function_var(fb, b)) || !vb->producer ||
            vb->producer->kind == MILK_OP_const_)
            return milk_errorf(ctx, MILK_ERR_NOT_FOUND, "pair '%s': %s has no var "
                               "'%s' computed by an op", p->pairs[i], lb, b);
    }
    return MILK_OK;
}

milk_status milk_verify_programs(milk_ctx *ctx, const milk_program *a,
                                 const milk_program *b,
                                 const milk_verify_params *params,
                                 milk_verify **out)
{
    milk_verify_params def = {0};
    const milk_function *fa, *fb;
    *out = NULL;
    if (!params) params = &def;
    MILK_TRY(main_of(ctx, a, params->ref_label ? params->ref_label : "A", params, &fa));
    MILK_TRY(main_of(ctx, b, params->label ? params->label : "B", params, &fb));
    MILK_TRY(check_pairs(ctx, params, fa, fb));
    MILK_TRY(check_tolerances(ctx, params, fb, params->label ? params->label : "B"));
    milk_verify *v = NULL;
    vf_inputs in = {0};
    milk_status s = vf_verify_new(ctx, params, true, &v);
    if (s == MILK_OK) s = vf_inputs_gather(ctx, fa, NULL, NULL, params, true, v, &in);
    if (s == MILK_OK && params->save_inputs) s = save_inputs(ctx, &in, params->save_inputs);
    if (s == MILK_OK) s = compare_runs(ctx, v, a, b, &in, params, params);
    vf_inputs_release(&in);
    if (s != MILK_OK) milk_verify_free(v);
    else *out = v;
    return s;
}

/* ---- accessors ------------------------------------------------------------ */

int milk_verify_row_count(const milk_verify *v)
{
    return v->n_rows;
}

const milk_verify_row *milk_verify_row_at(const milk_verify *v, int i)
{
    return i >= 0 && i < v->n_rows ? &v->rows[i] : NULL;
}

int milk_verify_first_divergence(const milk_verify *v)
{
    return v->first;
}

int milk_verify_seed(const milk_verify *v, uint64_t *seed)
{
    if (v->random && seed) *seed = v->seed;
    return v->random;
}
