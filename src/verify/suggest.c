/* suggest.c: the mixed precision search of `milk verify MODEL.onnx
 * --suggest-fp32` (milk_onnx_suggest_fp32; the method is described in
 * milk.h). Each round is a conversion (src/onnx) and a two-program
 * comparison (verify.c) against the faithful fp32 conversion, which is
 * made once. */
#include "verify.h"

#include <math.h>
#include <stdlib.h>

struct milk_suggest {
    milk_arena *arena;       /* every string below */
    milk_verify *initial;    /* the first round's comparison */
    int n_steps, cap_steps;
    milk_suggest_step *steps;
    int n_given;             /* names from cp->keep_fp32, first in set */
    int n_set, cap_set;
    const char **set;        /* the names kept fp32 so far */
    const char *names;       /* the result, comma-separated */
    int found, rounds;
};

/* What every round shares. */
typedef struct search {
    milk_ctx *ctx;
    const char *path;
    milk_convert_params cp;  /* the deployed conversion, keep list aside */
    milk_verify_params vp;   /* seed fixed after the first round */
    milk_program *ref;       /* the faithful fp32 conversion */
    milk_suggest *s;
} search;

static milk_status nomem(milk_ctx *ctx)
{
    return milk_errorf(ctx, MILK_ERR_NOMEM, "out of memory");
}

/* ---- one round ------------------------------------------------------------------- */

/* Convert with names[0..n-1] kept in fp32 and compare with the reference. */
static milk_status run_round(search *se, const char *const *names, int n,
                             milk_program **pb, milk_verify **v)
{
    milk_convert_params cp = se->cp;
    cp.keep_fp32 = names;
    cp.n_keep_fp32 = n;
    *v = NULL;
    MILK_TRY(milk_onnx_convert(se->ctx, se->path, &cp, pb));
    se->s->rounds++;
    milk_status st = milk_verify_programs(se->ctx, se->ref, *pb, &se->vp, v);
    if (st == MILK_OK && !(se->vp.flags & MILK_VERIFY_SET_SEED) &&
        milk_verify_seed(*v, &se->vp.seed))
        se->vp.flags |= MILK_VERIFY_SET_SEED; /* the same random inputs from now on */
    return st;
}

static bool is_output(const milk_function *fb, const char *name)
{
    for (int i = 0; i < fb->block->n_outputs; i++)
        if (strcmp(fb->block->outputs[i]->name, name) == 0) return true;
    return false;
}

/* Do the model outputs match? *worst gets their largest relative error. */
static milk_status outputs_match(milk_ctx *ctx, const milk_verify *v,
                                 const milk_program *pb, double *worst, bool *match)
{
    const milk_function *fb = milk_program_function(pb, "main");
    int n = 0;
    *worst = 0;
    *match = true;
    for (int i = 0; i < v->n_rows; i++) {
        if (!is_output(fb, v->rows[i].var)) continue;
        n++;
        double e = isnan(v->rows[i].max_rel) ? INFINITY : v->rows[i].max_rel;
        if (e > *worst) *worst = e;
        *match &= v->row_match[i];
    }
    if (n == 0)
        return milk_errorf(ctx, MILK_ERR_NOT_FOUND, "--suggest-fp32: no model output "
                           "of the fp16 conversion was compared");
    return MILK_OK;
}

/* ---- choosing the next op ----------------------------------------------------------- */

static bool in_set(const milk_suggest *s, const char *name)
{
    for (int i = 0; i < s->n_set; i++)
        if (strcmp(s->set[i], name) == 0) return true;
    return false;
}

/* An op still computing in fp16, not yet chosen. */
static bool candidate(const milk_suggest *s, const milk_verify_row *r)
{
    return r->type.dtype == MILK_DTYPE_FP16 && !in_set(s, r->var);
}

/* The row of the first overflowing op (in program order) that can be
 * kept; -1 if none. */
static int pick_overflow(const milk_verify *v, const milk_suggest *s)
{
    for (int f = 0; f < v->n_flags; f++)
        for (int i = 0; i < v->n_rows; i++)
            if (v->rows[i].op_index == v->flags_list[f].op_index &&
                candidate(s, &v->rows[i]))
                return i;
    return -1;
}

static double row_error(const milk_verify_row *r)
{
    return isnan(r->max_rel) ? INFINITY : r->max_rel;
}

/* Row of each var id of the program under test (-1: not compared). */
static int *rows_by_var(milk_ctx *ctx, const milk_verify *v, const milk_function *fb)
{
    int *row_of = malloc(((size_t)fb->n_vars + 1) * sizeof *row_of);
    if (!row_of) {
        nomem(ctx);
        return NULL;
    }
    for (int i = 0; i < fb->n_vars; i++) row_of[i] = -1;
    for (int i = 0; i < v->n_rows; i++) row_of[v->row_var[i]] = i;
    return row_of;
}

/* Largest error of op's inputs, e[] by var id (0 for inputs, constants). */
static double input_error(const milk_op *op, const double *e)
{
    double m = 0;
    for (int a = 0; a < op->n_args; a++)
        for (int j = 0; j < op->args[a].n; j++) {
            const milk_var *in = op->args[a].b[j].var;
            if (in && e[in->id] > m) m = e[in->id];
        }
    return m;
}

/* The row whose op adds the most relative error to what it reads; -1 if
 * no candidate adds any. */
static int pick_gain(const milk_verify *v, const milk_function *fb, const int *row_of,
                     const milk_suggest *s, double *e, double *in_err)
{
    double best = 0;
    int pick = -1;
    for (int i = 0; i < fb->block->n_ops; i++) {
        const milk_op *op = fb->block->ops[i];
        if (op->kind == MILK_OP_const_) continue;
        double in = input_error(op, e);
        for (int k = 0; k < op->n_outputs; k++) {
            int id = op->outputs[k]->id, r = row_of[id];
            e[id] = r < 0 ? in : row_error(&v->rows[r]);
            double g = isinf(e[id]) ? (isinf(in) ? 0 : INFINITY) : e[id] - in;
            if (r >= 0 && g > best && candidate(s, &v->rows[r])) {
                best = g;
                *in_err = in;
                pick = r;
            }
        }
    }
    return pick;
}

/* The candidate feeding op (through unchecked vars and ops already fp32)
 * with the largest error; -1 if none. seen[] by var id. */
static int upstream(const milk_verify *v, const int *row_of, const milk_suggest *s,
                    const milk_op *op, bool *seen)
{
    int pick = -1;
    for (int a = 0; a < op->n_args; a++)
        for (int j = 0; j < op->args[a].n; j++) {
            const milk_var *in = op->args[a].b[j].var;
            if (!in || seen[in->id] || !in->producer || in->producer->kind == MILK_OP_const_)
                continue;
            seen[in->id] = true;
            int r = row_of[in->id];
            if (r < 0 || !candidate(s, &v->rows[r])) r = upstream(v, row_of, s, in->producer, seen);
            if (r >= 0 && (pick < 0 || row_error(&v->rows[r]) > row_error(&v->rows[pick])))
                pick = r;
        }
    return pick;
}

/* The first op that diverges on matching inputs (the comparison's own
 * culprit), or, when it already computes in fp32 and still diverges, the
 * fp16 op feeding it the most error. -1 if none. */
static int pick_diverged(const milk_verify *v, const milk_function *fb, const int *row_of,
                         const milk_suggest *s, bool *seen, char *why, size_t n)
{
    for (int i = 0; i < v->n_rows; i++) {
        const milk_verify_row *r = &v->rows[i];
        if (r->state != MILK_VERIFY_DIVERGED) continue;
        if (candidate(s, r)) {
            snprintf(why, n, "diverges on matching inputs: max rel %.3g", row_error(r));
            return i;
        }
        const milk_var *var = milk_function_var(fb, r->var);
        int up = var && var->producer ? upstream(v, row_of, s, var->producer, seen) : -1;
        if (up >= 0) {
            snprintf(why, n, "feeds '%s' (fp32, still diverging) with fp16 values: max "
                     "rel %.3g", r->var, row_error(&v->rows[up]));
            return up;
        }
    }
    return -1;
}

/* Overflow first, then divergence, then error gain (see milk.h). */
static milk_status pick(milk_ctx *ctx, const milk_verify *v, const milk_function *fb,
                        const milk_suggest *s, char *why, size_t n, int *out)
{
    if ((*out = pick_overflow(v, s)) >= 0) {
        const milk_verify_row *w = &v->rows[*out];
        snprintf(why, n, "fp16 overflow: %lld values beyond 65504, %lld inf, %lld NaN",
                 (long long)w->n_overflow, (long long)w->n_inf, (long long)w->n_nan);
        return MILK_OK;
    }
    int *row_of = rows_by_var(ctx, v, fb);
    double *e = calloc((size_t)fb->n_vars + 1, sizeof *e);
    bool *seen = calloc((size_t)fb->n_vars + 1, sizeof *seen);
    milk_status st = row_of && e && seen ? MILK_OK : nomem(ctx);
    double in = 0;
    if (st == MILK_OK) *out = pick_diverged(v, fb, row_of, s, seen, why, n);
    if (st == MILK_OK && *out < 0 && (*out = pick_gain(v, fb, row_of, s, e, &in)) >= 0)
        snprintf(why, n, "adds the most error: max rel %.3g from inputs at %.3g",
                 row_error(&v->rows[*out]), in);
    free(row_of);
    free(e);
    free(seen);
    return st;
}

/* The next step, into se->s->steps; *none when there is nothing to add. */
static milk_status choose(search *se, const milk_verify *v, const milk_program *pb,
                          double worst, bool *none)
{
    milk_suggest *s = se->s;
    char why[512];
    int r = -1;
    MILK_TRY(pick(se->ctx, v, milk_program_function(pb, "main"), s, why, sizeof why, &r));
    *none = r < 0;
    if (*none) return MILK_OK;
    if (!milk_arena_grow(s->arena, (void **)&s->steps, s->n_steps, &s->cap_steps,
                         sizeof *s->steps))
        return nomem(se->ctx);
    milk_suggest_step *st = &s->steps[s->n_steps];
    st->name = milk_arena_strdup(s->arena, v->rows[r].var);
    st->op_type = v->rows[r].op_type; /* static (the op table) */
    st->why = milk_arena_strdup(s->arena, why);
    st->before = worst;
    st->after = worst;
    st->dropped = 0;
    if (!st->name || !st->why) return nomem(se->ctx);
    s->n_steps++;
    return MILK_OK;
}

/* ---- the search ----------------------------------------------------------------------- */

static milk_status set_add(search *se, const char *name)
{
    milk_suggest *s = se->s;
    if (!milk_arena_grow(s->arena, (void **)&s->set, s->n_set, &s->cap_set, sizeof *s->set))
        return nomem(se->ctx);
    s->set[s->n_set++] = name;
    return MILK_OK;
}

/* Rounds until the outputs match, nothing is left to add, or the bound. */
static milk_status greedy(search *se)
{
    milk_suggest *s = se->s;
    for (;;) {
        milk_program *pb = NULL;
        milk_verify *v = NULL;
        double worst = 0;
        bool match = false, none = true;
        milk_status st = run_round(se, s->set, s->n_set, &pb, &v);
        if (st == MILK_OK) st = outputs_match(se->ctx, v, pb, &worst, &match);
        if (st == MILK_OK && s->n_steps) s->steps[s->n_steps - 1].after = worst;
        s->found = st == MILK_OK && match;
        if (st == MILK_OK && !match && s->n_steps < MILK_SUGGEST_MAX_OPS)
            st = choose(se, v, pb, worst, &none);
        if (st == MILK_OK && !none) st = set_add(se, s->steps[s->n_steps - 1].name);
        if (!s->initial) s->initial = v;
        else milk_verify_free(v);
        milk_program_free(pb);
        if (st != MILK_OK || match || none) return st;
    }
}

/* Try each added op without (the last added first): drop the unneeded. */
static milk_status prune(search *se)
{
    milk_suggest *s = se->s;
    const char **trial = malloc(((size_t)s->n_set + 1) * sizeof *trial);
    if (!trial) return nomem(se->ctx);
    milk_status st = MILK_OK;
    for (int k = s->n_steps - 1; st == MILK_OK && k >= 0 && s->n_steps > 1; k--) {
        int n = 0;
        for (int i = 0; i < s->n_given; i++) trial[n++] = s->set[i];
        for (int i = 0; i < s->n_steps; i++)
            if (i != k && !s->steps[i].dropped) trial[n++] = s->steps[i].name;
        milk_program *pb = NULL;
        milk_verify *v = NULL;
        double worst;
        bool match = false;
        st = run_round(se, trial, n, &pb, &v);
        if (st == MILK_OK) st = outputs_match(se->ctx, v, pb, &worst, &match);
        if (st == MILK_OK && match) s->steps[k].dropped = 1;
        milk_verify_free(v);
        milk_program_free(pb);
    }
    free(trial);
    return st;
}

/* The final set, comma-separated. */
static milk_status join_names(search *se)
{
    milk_suggest *s = se->s;
    size_t len = 1;
    for (int i = 0; i < s->n_set; i++) len += strlen(s->set[i]) + 1;
    char *buf = milk_arena_alloc(s->arena, len);
    if (!buf) return nomem(se->ctx);
    size_t k = 0;
    buf[0] = 0;
    for (int i = 0; i < s->n_set; i++) {
        if (i >= s->n_given && s->steps[i - s->n_given].dropped) continue;
        k += (size_t)snprintf(buf + k, len - k, "%s%s", k ? "," : "", s->set[i]);
    }
    s->names = buf;
    return MILK_OK;
}

/* The faithful reference: fp32, every rule off, nothing to keep. */
static milk_status convert_reference(search *se)
{
    static const char *const all[] = {"all"};
    milk_rule_options ro = {0};
    if (se->cp.rules) ro = *se->cp.rules;
    ro.enable = NULL;
    ro.n_enable = 0;
    ro.disable = all;
    ro.n_disable = 1;
    milk_convert_params ref = se->cp;
    ref.precision = MILK_CONVERT_FP32;
    ref.rules = &ro;
    return milk_onnx_convert(se->ctx, se->path, &ref, &se->ref);
}

static milk_status setup(search *se, const milk_convert_params *cp,
                         const milk_verify_params *vp)
{
    milk_suggest *s = se->s;
    if (cp) se->cp = *cp;
    if (vp) se->vp = *vp;
    se->cp.precision = MILK_CONVERT_FP16;
    se->cp.stats = NULL;
    se->cp.report = NULL;
    for (int i = 0; cp && i < cp->n_keep_fp32; i++) {
        const char *name = cp->keep_fp32 ? milk_arena_strdup(s->arena, cp->keep_fp32[i]) : NULL;
        if (!name) return milk_errorf(se->ctx, MILK_ERR_INVALID_ARG, "bad --keep-fp32 list");
        MILK_TRY(set_add(se, name));
    }
    s->n_given = s->n_set;
    se->cp.keep_fp32 = NULL;
    se->cp.n_keep_fp32 = 0;
    return convert_reference(se);
}

milk_status milk_onnx_suggest_fp32(milk_ctx *ctx, const char *path,
                                   const milk_convert_params *cp,
                                   const milk_verify_params *vp,
                                   milk_suggest **out)
{
    *out = NULL;
    milk_suggest *s = calloc(1, sizeof *s);
    if (!s || !(s->arena = milk_arena_create())) {
        free(s);
        return nomem(ctx);
    }
    search se = {ctx, path, {0}, {0}, NULL, s};
    milk_status st = setup(&se, cp, vp);
    if (st == MILK_OK) st = greedy(&se);
    if (st == MILK_OK && s->found) st = prune(&se);
    if (st == MILK_OK) st = join_names(&se);
    milk_program_free(se.ref);
    if (st != MILK_OK) {
        milk_suggest_free(s);
        return st;
    }
    *out = s;
    return MILK_OK;
}

/* ---- accessors -------------------------------------------------------------------------- */

void milk_suggest_free(milk_suggest *s)
{
    if (!s) return;
    milk_verify_free(s->initial);
    milk_arena_free(s->arena);
    free(s);
}

const milk_verify *milk_suggest_initial(const milk_suggest *s)
{
    return s->initial;
}

int milk_suggest_step_count(const milk_suggest *s)
{
    return s->n_steps;
}

const milk_suggest_step *milk_suggest_step_at(const milk_suggest *s, int i)
{
    return i >= 0 && i < s->n_steps ? &s->steps[i] : NULL;
}

int milk_suggest_found(const milk_suggest *s)
{
    return s->found;
}

const char *milk_suggest_names(const milk_suggest *s)
{
    return s->names ? s->names : "";
}

int milk_suggest_rounds(const milk_suggest *s)
{
    return s->rounds;
}
