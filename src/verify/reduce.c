/* reduce.c: `milk debug reduce`: delta debugging of a failing program, as
 * polygraphy's `debug reduce` does for TensorRT (its BisectMarker over the
 * graph outputs, then over the inputs, then its linear mode): candidates
 * are sets of main's ops extracted with the extract machinery (extract.c),
 * their cut points fed with values captured in one run of the whole
 * program, and each is judged by a check (a reference, fp16 against fp32,
 * a lint rule, an external command, or the caller's function). */
#define _XOPEN_SOURCE 700 /* nftw, for removing the candidates' directory */
#include "reduce.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <math.h>
#include <spawn.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

static milk_status nomem(milk_ctx *ctx)
{
    return milk_errorf(ctx, MILK_ERR_NOMEM, "out of memory");
}

const char *milk_reduce_verdict_name(milk_reduce_verdict v)
{
    static const char *const names[] = {"good", "bad", "invalid"};
    return (unsigned)v < MILK_ARRAY_LEN(names) ? names[v] : "?";
}

/* ---- the state of a reduction ---------------------------------------------- */

/* A value captured in the run of the whole program, read once. */
typedef struct captured {
    const char *name;
    milk_array a;
} captured;

/* A candidate already checked. */
typedef struct memo {
    bool *set;
    milk_reduce_verdict verdict;
} memo;

typedef struct engine {
    milk_ctx *ctx;
    const milk_program *p;
    const milk_function *fn;
    const milk_reduce_params *par;
    milk_verify_params vp;   /* par->verify with labels */
    int n;                   /* main's non-const ops */
    int *at;                 /* block index of non-const op k */
    int *pos;                /* by block index: k, or -1 for consts */
    milk_npz ref;            /* AGAINST */
    vf_inputs model_in;      /* the model inputs of the whole program */
    milk_verify *seeded;     /* holds the seed of random inputs */
    milk_runner *cap;        /* the run of the whole program, every value kept */
    int n_cap, cap_cap;
    captured *caps;
    int n_memo, cap_memo;
    memo *memos;
    char *dir;               /* COMMAND: the work directory */
    bool own_dir;            /* made here: removed at the end */
    bool stop;               /* max_candidates reached */
    milk_reduce *res;
    bool *best;              /* the smallest failing set so far */
    int best_n;
    char best_detail[512];
} engine;

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int count(const engine *e, const bool *set)
{
    int c = 0;
    for (int k = 0; k < e->n; k++) c += set[k];
    return c;
}

static const milk_op *op_at(const engine *e, int k)
{
    return e->fn->block->ops[e->at[k]];
}

/* ---- values for cut points --------------------------------------------------- */

static milk_dtype held_dtype(milk_dtype d)
{
    if (d == MILK_DTYPE_FP16 || d == MILK_DTYPE_FP32 || d == MILK_DTYPE_FP64) return MILK_DTYPE_FP32;
    return d == MILK_DTYPE_BOOL ? MILK_DTYPE_BOOL : MILK_DTYPE_INT32;
}

/* The value the run of the whole program computed for var `name`. */
static milk_status captured_value(engine *e, const char *name, const milk_array **out)
{
    for (int i = 0; i < e->n_cap; i++)
        if (strcmp(e->caps[i].name, name) == 0) {
            *out = &e->caps[i].a;
            return MILK_OK;
        }
    const milk_tensor_type *t = milk_runner_type(e->cap, name);
    if (!t)
        return milk_errorf(e->ctx, MILK_ERR_NOT_FOUND, "no value was captured for '%s'", name);
    if (!milk_arena_grow(e->res->arena, (void **)&e->caps, e->n_cap, &e->cap_cap,
                         sizeof *e->caps))
        return nomem(e->ctx);
    captured *c = &e->caps[e->n_cap];
    milk_tensor_type ht = *t;
    ht.dtype = held_dtype(t->dtype);
    MILK_TRY(milk_array_init(e->ctx, &ht, &c->a));
    uint64_t nb = 0;
    milk_dtype_nbytes(ht.dtype, milk_tensor_type_count(&ht), &nb);
    milk_status s = milk_runner_read(e->ctx, e->cap, name, ht.dtype, c->a.data, (size_t)nb);
    if (s != MILK_OK) {
        milk_array_release(&c->a);
        return s;
    }
    if (!(c->name = milk_arena_strdup(e->res->arena, name))) {
        milk_array_release(&c->a);
        return nomem(e->ctx);
    }
    e->n_cap++;
    *out = &c->a;
    return MILK_OK;
}

/* Where the value of a candidate's input comes from. */
static milk_status input_value(engine *e, const char *name, const milk_array **a,
                               const char **source)
{
    for (int i = 0; i < e->model_in.n; i++)
        if (strcmp(e->model_in.items[i].name, name) == 0) {
            *a = e->model_in.items[i].use;
            *source = e->model_in.items[i].from;
            return MILK_OK;
        }
    if (e->par->check == MILK_REDUCE_AGAINST && (*a = milk_npz_find(&e->ref, name))) {
        *source = "the reference";
        return MILK_OK;
    }
    *source = e->par->check == MILK_REDUCE_FP16_VS_FP32 ? "the fp32 run of the whole program"
                                                        : "the run of the whole program";
    return captured_value(e, name, a);
}

/* The inputs of candidate q (items borrow the values). */
static milk_status candidate_inputs(engine *e, const milk_program *q, vf_inputs *in)
{
    const milk_function *f = milk_program_function(q, "main");
    memset(in, 0, sizeof *in);
    in->items = calloc((size_t)f->n_inputs + 1, sizeof *in->items);
    if (!in->items) return nomem(e->ctx);
    for (int i = 0; i < f->n_inputs; i++) {
        if (f->inputs[i]->is_state) continue; /* the runner's state object (zero) */
        vf_input *it = &in->items[in->n++];
        it->name = f->inputs[i]->name;
        MILK_TRY(input_value(e, it->name, &it->use, &it->from));
    }
    return MILK_OK;
}

/* ---- the checks ------------------------------------------------------------------ */

/* The verdict of a comparison: bad at the first divergence. */
static void judge_comparison(const milk_verify *v, milk_reduce_verdict *verdict, char *why,
                             size_t n)
{
    int first = milk_verify_first_divergence(v);
    if (first < 0) {
        *verdict = MILK_REDUCE_GOOD;
        snprintf(why, n, "all %d compared vars match", milk_verify_row_count(v));
        return;
    }
    const milk_verify_row *r = milk_verify_row_at(v, first);
    *verdict = MILK_REDUCE_BAD;
    snprintf(why, n, "var '%s' of op '%s' (%s) diverges: max abs %.3g, max rel %.3g "
                     "(atol %g, rtol %g)%s", r->var, r->op, r->op_type, r->max_abs, r->max_rel,
             r->atol, r->rtol, r->shape_mismatch ? ", shape differs" : "");
}

static milk_status check_values(engine *e, const milk_program *q, const vf_inputs *in,
                                milk_reduce_verdict *verdict, char *why, size_t n)
{
    milk_verify *v = NULL;
    milk_verify_params vp = e->vp;
    vp.label = "candidate";
    vp.function = NULL; /* the candidate's one function */
    vp.progress = NULL;
    vp.save_inputs = vp.save_outputs = NULL;
    milk_status s = vf_verify_new(e->ctx, &vp, false, &v);
    if (s == MILK_OK)
        s = e->par->check == MILK_REDUCE_AGAINST
                ? vf_verify_archive(e->ctx, q, in, &e->ref, &vp, v)
                : vf_verify_precisions(e->ctx, q, in, &vp, v);
    if (s == MILK_OK) judge_comparison(v, verdict, why, n);
    milk_verify_free(v);
    return s;
}

static milk_status check_lint(engine *e, const milk_program *q, milk_reduce_verdict *verdict,
                              char *why, size_t n)
{
    static const char *const all[] = {"all"};
    milk_rule_options o = {0};
    if (e->par->rules) o = *e->par->rules;
    o.enable = &e->par->rule;
    o.n_enable = 1;
    o.disable = all;
    o.n_disable = 1;
    milk_rule_report *rep;
    MILK_TRY(milk_rule_report_create(e->ctx, &rep));
    milk_status s = milk_rules_check(e->ctx, q, &o, rep);
    int hits = milk_rule_report_count(rep);
    if (s == MILK_OK) {
        const milk_rule_hit *h = milk_rule_report_at(rep, 0);
        *verdict = hits ? MILK_REDUCE_BAD : MILK_REDUCE_GOOD;
        if (hits)
            snprintf(why, n, "%d match%s; op '%s' (%s): %s", hits, hits > 1 ? "es" : "",
                     h->op, h->op_type, h->detail);
        else
            snprintf(why, n, "rule %s does not match", e->par->rule);
    }
    milk_rule_report_free(rep);
    return s;
}

/* ---- the external command ---------------------------------------------------------- */

/* path quoted for /bin/sh. */
static char *shell_quote(const char *path)
{
    size_t n = 3;
    for (const char *p = path; *p; p++) n += *p == '\'' ? 4 : 1;
    char *q = malloc(n), *o = q;
    if (!q) return NULL;
    *o++ = '\'';
    for (const char *p = path; *p; p++) {
        if (*p == '\'') {
            memcpy(o, "'\\''", 4);
            o += 4;
        } else {
            *o++ = *p;
        }
    }
    *o++ = '\'';
    *o = 0;
    return q;
}

/* The command with each "{}" replaced by the quoted path, or the path
 * appended. */
static char *command_for(const char *cmd, const char *path)
{
    char *q = shell_quote(path);
    if (!q) return NULL;
    size_t nq = strlen(q), n = strlen(cmd) + nq + 2;
    for (const char *p = strstr(cmd, "{}"); p; p = strstr(p + 2, "{}")) n += nq;
    char *out = malloc(n), *o = out;
    bool any = strstr(cmd, "{}") != NULL;
    for (const char *p = cmd; out && *p;) {
        if (p[0] == '{' && p[1] == '}') {
            memcpy(o, q, nq);
            o += nq;
            p += 2;
        } else {
            *o++ = *p++;
        }
    }
    if (out && !any) {
        *o++ = ' ';
        memcpy(o, q, nq);
        o += nq;
    }
    if (out) *o = 0;
    free(q);
    return out;
}

/* The last non-empty line of the file (the command's own explanation). */
static void last_line(const char *path, char *buf, size_t n)
{
    buf[0] = 0;
    FILE *f = fopen(path, "rb");
    if (!f) return;
    char line[512];
    while (fgets(line, sizeof line, f)) {
        size_t k = strlen(line);
        while (k && (line[k - 1] == '\n' || line[k - 1] == '\r')) line[--k] = 0;
        if (k) {
            k = k < n - 1 ? k : n - 1;
            memcpy(buf, line, k);
            buf[k] = 0;
        }
    }
    fclose(f);
}

static milk_status spawn_command(engine *e, const char *cmd, const char *log, int *status)
{
    posix_spawn_file_actions_t fa;
    pid_t pid;
    char *argv[] = {"/bin/sh", "-c", (char *)cmd, NULL};
    if (posix_spawn_file_actions_init(&fa) != 0) return nomem(e->ctx);
    int rc = posix_spawn_file_actions_addopen(&fa, 1, log, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (rc == 0) rc = posix_spawn_file_actions_adddup2(&fa, 1, 2);
    if (rc == 0) rc = posix_spawn(&pid, "/bin/sh", &fa, NULL, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    if (rc != 0)
        return milk_errorf(e->ctx, MILK_ERR_IO, "check command: cannot run /bin/sh: %s",
                           strerror(rc));
    while (waitpid(pid, status, 0) < 0)
        if (errno != EINTR)
            return milk_errorf(e->ctx, MILK_ERR_IO, "check command: %s", strerror(errno));
    return MILK_OK;
}

static milk_status write_inputs(milk_ctx *ctx, const vf_inputs *in, const char *path)
{
    const char **names = calloc((size_t)in->n + 1, sizeof *names);
    milk_array *arrays = calloc((size_t)in->n + 1, sizeof *arrays);
    milk_status s = names && arrays ? MILK_OK : nomem(ctx);
    for (int i = 0; s == MILK_OK && i < in->n; i++) {
        names[i] = in->items[i].name;
        arrays[i] = *in->items[i].use; /* shallow: written, not freed */
    }
    if (s == MILK_OK) s = milk_npz_write(ctx, path, names, arrays, in->n);
    free(names);
    free(arrays);
    return s;
}

static milk_status check_command(engine *e, const milk_program *q, const vf_inputs *in,
                                 milk_reduce_verdict *verdict, char *why, size_t n)
{
    size_t len = strlen(e->dir) + 32;
    char *pkg = malloc(len), *npz = malloc(len), *log = malloc(len), *cmd = NULL;
    milk_status s = pkg && npz && log ? MILK_OK : nomem(e->ctx);
    if (s == MILK_OK) {
        snprintf(pkg, len, "%s/candidate.mlpackage", e->dir);
        snprintf(npz, len, "%s/candidate.npz", e->dir);
        snprintf(log, len, "%s/candidate.log", e->dir);
        s = milk_program_save(e->ctx, q, pkg);
    }
    if (s == MILK_OK) s = write_inputs(e->ctx, in, npz);
    if (s == MILK_OK && !(cmd = command_for(e->par->command, pkg))) s = nomem(e->ctx);
    int status = 0;
    if (s == MILK_OK) s = spawn_command(e, cmd, log, &status);
    if (s == MILK_OK) {
        char tail[300];
        last_line(log, tail, sizeof tail);
        int code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
        *verdict = code == 0 ? MILK_REDUCE_GOOD : code == 1 ? MILK_REDUCE_BAD
                                                            : MILK_REDUCE_INVALID;
        if (code >= 0) snprintf(why, n, "exit %d%s%s", code, tail[0] ? ": " : "", tail);
        else snprintf(why, n, "killed by signal %d", WTERMSIG(status));
    }
    free(pkg);
    free(npz);
    free(log);
    free(cmd);
    return s;
}

/* ---- one candidate ------------------------------------------------------------------- */

static bool *new_set(const engine *e)
{
    return calloc((size_t)e->n + 1, sizeof(bool));
}

static milk_status add_step(engine *e, const char *phase, const char *change, int n_ops,
                            int n_inputs, milk_reduce_verdict verdict, const char *why,
                            bool kept, double seconds)
{
    milk_reduce *r = e->res;
    if (!milk_arena_grow(r->arena, (void **)&r->steps, r->n_steps, &r->cap_steps,
                         sizeof *r->steps))
        return nomem(e->ctx);
    milk_reduce_step *st = &r->steps[r->n_steps];
    st->index = r->n_steps;
    st->phase = phase;
    st->change = vf_utf8_clean(r->arena, change);
    st->detail = vf_utf8_clean(r->arena, why);
    if (!st->change || !st->detail) return nomem(e->ctx);
    st->n_ops = n_ops;
    st->n_inputs = n_inputs;
    st->verdict = verdict;
    st->kept = kept;
    st->seconds = seconds;
    r->n_steps++;
    if (e->par->progress) e->par->progress(e->par->progress_user, st);
    return MILK_OK;
}

/* The verdict on the candidate made of the ops in set, through the check;
 * a failure to build or run it is an invalid verdict (out of memory
 * aside). */
static milk_status judge(engine *e, const bool *set, milk_reduce_verdict *verdict, char *why,
                         size_t n, int *n_inputs)
{
    bool *take = calloc((size_t)e->fn->block->n_ops + 1, sizeof *take);
    if (!take) return nomem(e->ctx);
    for (int k = 0; k < e->n; k++) take[e->at[k]] = set[k];
    milk_program *q = NULL;
    vf_inputs in = {0};
    milk_status s = vf_extract_set(e->ctx, e->p, e->fn, take, NULL, &q);
    free(take);
    if (s == MILK_OK) {
        *n_inputs = milk_function_input_count(milk_program_function(q, "main"));
        s = candidate_inputs(e, q, &in);
    }
    if (s == MILK_OK) {
        switch (e->par->check) {
        case MILK_REDUCE_AGAINST:
        case MILK_REDUCE_FP16_VS_FP32: s = check_values(e, q, &in, verdict, why, n); break;
        case MILK_REDUCE_LINT: s = check_lint(e, q, verdict, why, n); break;
        case MILK_REDUCE_COMMAND: s = check_command(e, q, &in, verdict, why, n); break;
        case MILK_REDUCE_CALLBACK:
            why[0] = 0;
            *verdict = e->par->fn(e->par->user, q, why, n);
            if ((unsigned)*verdict > MILK_REDUCE_INVALID) *verdict = MILK_REDUCE_INVALID;
            break;
        }
    }
    free(in.items); /* the values are borrowed */
    milk_program_free(q);
    if (s != MILK_OK && s != MILK_ERR_NOMEM) {
        *verdict = MILK_REDUCE_INVALID;
        snprintf(why, n, "%s: %s", milk_status_str(s), milk_ctx_error(e->ctx));
        milk_ctx_clear(e->ctx);
        s = MILK_OK;
    }
    return s;
}

/* Check the candidate `set` (once: a set seen before gets its verdict
 * back) and keep it when it fails with fewer ops than the best so far. */
static milk_status try_set(engine *e, const bool *set, const char *phase, const char *change,
                           milk_reduce_verdict *verdict)
{
    for (int i = 0; i < e->n_memo; i++)
        if (memcmp(e->memos[i].set, set, (size_t)e->n * sizeof *set) == 0) {
            *verdict = e->memos[i].verdict;
            return MILK_OK;
        }
    *verdict = MILK_REDUCE_INVALID;
    if (e->stop || count(e, set) == 0) return MILK_OK;
    char why[1024];
    int n_inputs = 0;
    double t0 = now_s();
    MILK_TRY(judge(e, set, verdict, why, sizeof why, &n_inputs));
    int n_ops = count(e, set);
    bool kept = *verdict == MILK_REDUCE_BAD && (!e->best_n || n_ops <= e->best_n);
    if (kept) {
        memcpy(e->best, set, (size_t)e->n * sizeof *set);
        e->best_n = n_ops;
        snprintf(e->best_detail, sizeof e->best_detail, "%.500s", why);
    }
    if (!milk_arena_grow(e->res->arena, (void **)&e->memos, e->n_memo, &e->cap_memo,
                         sizeof *e->memos))
        return nomem(e->ctx);
    memo *m = &e->memos[e->n_memo];
    if (!(m->set = milk_arena_memdup(e->res->arena, set, (size_t)e->n * sizeof *set)))
        return nomem(e->ctx);
    m->verdict = *verdict;
    e->n_memo++;
    MILK_TRY(add_step(e, phase, change, n_ops, n_inputs, *verdict, why, kept, now_s() - t0));
    e->stop = e->par->max_candidates > 0 && e->res->n_steps >= e->par->max_candidates;
    return MILK_OK;
}

/* ---- the search ------------------------------------------------------------------------ */

/* set := op k and every op it depends on. */
static void ancestors(const engine *e, int k, bool *set)
{
    memset(set, 0, (size_t)e->n * sizeof *set);
    set[k] = true;
    for (int i = k; i >= 0; i--) {
        if (!set[i]) continue;
        const milk_op *op = op_at(e, i);
        for (int a = 0; a < op->n_args; a++)
            for (int j = 0; j < op->args[a].n; j++) {
                const milk_var *v = op->args[a].b[j].var;
                const milk_op *pr = v ? v->producer : NULL;
                if (!pr || pr->block != e->fn->block) continue;
                int pk = e->pos[milk_block_index_of(e->fn->block, pr)];
                if (pk >= 0) set[pk] = true;
            }
    }
}

static void describe_op(const engine *e, int k, const char *fmt, char *buf, size_t n)
{
    const milk_op *op = op_at(e, k);
    char what[600];
    snprintf(what, sizeof what, "op '%.400s' (%s)", op->name, milk_ops[op->kind]->name);
    snprintf(buf, n, fmt, what);
}

/* Phase 1: bisect k over [0, n) for the earliest op whose ancestors fail
 * (polygraphy's BisectMarker on the outputs: good below, bad above). */
static milk_status bisect_outputs(engine *e, bool *cur)
{
    bool *set = new_set(e);
    if (!set) return nomem(e->ctx);
    int good = -1, bad = e->n; /* bad = n: the whole program, known to fail */
    milk_status s = MILK_OK;
    while (s == MILK_OK && bad - good > 1 && !e->stop) {
        int k = good + (bad - good) / 2;
        char change[800];
        milk_reduce_verdict v;
        ancestors(e, k, set);
        describe_op(e, k, "up to %s, with the ops it depends on", change, sizeof change);
        s = try_set(e, set, "outputs", change, &v);
        if (v == MILK_REDUCE_BAD) bad = k;
        else good = k;
    }
    if (s == MILK_OK && bad < e->n) {
        ancestors(e, bad, set);
        memcpy(cur, set, (size_t)e->n * sizeof *set);
    }
    free(set);
    return s;
}

/* Phase 2: with the ops of cur in order s_0 .. s_m-1, bisect j for the
 * latest start whose ops s_j .. s_m-1 (the earlier ones cut) still fail. */
static milk_status bisect_inputs(engine *e, bool *cur)
{
    int m = 0;
    int *ops = malloc(((size_t)e->n + 1) * sizeof *ops);
    bool *set = new_set(e);
    milk_status s = ops && set ? MILK_OK : nomem(e->ctx);
    for (int k = 0; s == MILK_OK && k < e->n; k++)
        if (cur[k]) ops[m++] = k;
    int bad = 0, good = m; /* bad = 0: cur itself fails */
    while (s == MILK_OK && good - bad > 1 && !e->stop) {
        int j = bad + (good - bad) / 2;
        char change[800];
        milk_reduce_verdict v;
        memset(set, 0, (size_t)e->n * sizeof *set);
        for (int i = j; i < m; i++) set[ops[i]] = true;
        describe_op(e, ops[j], "from %s on, the ops before it cut", change, sizeof change);
        s = try_set(e, set, "inputs", change, &v);
        if (v == MILK_REDUCE_BAD) bad = j;
        else good = j;
    }
    if (s == MILK_OK) {
        memset(set, 0, (size_t)e->n * sizeof *set);
        for (int i = bad; i < m; i++) set[ops[i]] = true;
        memcpy(cur, set, (size_t)e->n * sizeof *set);
    }
    free(ops);
    free(set);
    return s;
}

/* Phase 3: remove one op at a time, last first, while the rest fails; in
 * passes until a whole pass removes nothing (1-minimal). */
static milk_status remove_one_by_one(engine *e, bool *cur)
{
    bool *set = new_set(e);
    if (!set) return nomem(e->ctx);
    milk_status s = MILK_OK;
    for (bool changed = true; s == MILK_OK && changed && !e->stop;) {
        changed = false;
        for (int k = e->n - 1; s == MILK_OK && k >= 0 && !e->stop; k--) {
            if (!cur[k] || count(e, cur) == 1) continue;
            memcpy(set, cur, (size_t)e->n * sizeof *set);
            set[k] = false;
            char change[800];
            milk_reduce_verdict v;
            describe_op(e, k, "without %s", change, sizeof change);
            s = try_set(e, set, "one-op", change, &v);
            if (v == MILK_REDUCE_BAD) {
                cur[k] = false;
                changed = true;
            }
        }
    }
    free(set);
    return s;
}

/* ---- setting up ------------------------------------------------------------------------- */

static milk_status check_params(milk_ctx *ctx, const milk_reduce_params *p)
{
    switch (p->check) {
    case MILK_REDUCE_AGAINST:
        if (!p->reference)
            return milk_errorf(ctx, MILK_ERR_INVALID_ARG, "reduce: the reference check needs "
                                                          "a reference .npz");
        return MILK_OK;
    case MILK_REDUCE_FP16_VS_FP32: return MILK_OK;
    case MILK_REDUCE_LINT:
        if (!p->rule || !milk_rule_find(p->rule))
            return milk_errorf(ctx, MILK_ERR_INVALID_ARG, "reduce: unknown rule id '%s' "
                               "(milk lint --list-rules lists them)", p->rule ? p->rule : "");
        return MILK_OK;
    case MILK_REDUCE_COMMAND:
        if (!p->command || !p->command[0])
            return milk_errorf(ctx, MILK_ERR_INVALID_ARG, "reduce: no check command");
        return MILK_OK;
    case MILK_REDUCE_CALLBACK:
        if (!p->fn) return milk_errorf(ctx, MILK_ERR_INVALID_ARG, "reduce: no check function");
        return MILK_OK;
    }
    return milk_errorf(ctx, MILK_ERR_INVALID_ARG, "reduce: unknown check %d", (int)p->check);
}

static milk_status index_ops(engine *e)
{
    const milk_block *b = e->fn->block;
    e->at = malloc(((size_t)b->n_ops + 1) * sizeof *e->at);
    e->pos = malloc(((size_t)b->n_ops + 1) * sizeof *e->pos);
    if (!e->at || !e->pos) return nomem(e->ctx);
    for (int i = 0; i < b->n_ops; i++) {
        e->pos[i] = -1;
        /* constants and compressed weights go with the ops reading them */
        if (b->ops[i]->kind == MILK_OP_const_ || milk_op_is_constexpr(b->ops[i])) continue;
        if (b->ops[i]->n_blocks)
            return milk_errorf(e->ctx, MILK_ERR_UNSUPPORTED, "reduce: op '%s' (%s) has nested "
                               "blocks", b->ops[i]->name, milk_ops[b->ops[i]->kind]->name);
        e->pos[i] = e->n;
        e->at[e->n++] = i;
    }
    if (e->n == 0)
        return milk_errorf(e->ctx, MILK_ERR_INVALID_ARG, "reduce: function '%s' has no op to "
                           "reduce", e->fn->name);
    return MILK_OK;
}

static milk_status make_dir(engine *e)
{
    if (e->par->work_dir) {
        if (mkdir(e->par->work_dir, 0755) != 0 && errno != EEXIST)
            return milk_errorf(e->ctx, MILK_ERR_IO, "%s: %s", e->par->work_dir, strerror(errno));
        e->dir = strdup(e->par->work_dir);
        return e->dir ? MILK_OK : nomem(e->ctx);
    }
    const char *tmp = getenv("TMPDIR");
    size_t n = strlen(tmp && *tmp ? tmp : "/tmp") + 32;
    if (!(e->dir = malloc(n))) return nomem(e->ctx);
    snprintf(e->dir, n, "%s/milk-reduce-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (!mkdtemp(e->dir))
        return milk_errorf(e->ctx, MILK_ERR_IO, "%s: cannot make a directory: %s", e->dir,
                           strerror(errno));
    e->own_dir = true;
    return MILK_OK;
}

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

/* The model inputs and the run of the whole program whose values the cut
 * points take. */
static milk_status capture(engine *e)
{
    const milk_reduce_params *p = e->par;
    bool against = p->check == MILK_REDUCE_AGAINST;
    if (against) MILK_TRY(milk_npz_read(e->ctx, p->reference, &e->ref));
    MILK_TRY(vf_verify_new(e->ctx, &e->vp, false, &e->seeded));
    MILK_TRY(vf_inputs_gather(e->ctx, e->fn, against ? &e->ref : NULL,
                              against ? p->reference : NULL, &e->vp, !against, e->seeded,
                              &e->model_in));
    milk_verify_params cp = e->vp;
    if (p->check == MILK_REDUCE_FP16_VS_FP32) cp.precision = MILK_PRECISION_FP32;
    return vf_run(e->ctx, e->p, &e->model_in, &cp, "the whole program", true, NULL, 0, &e->cap);
}

static milk_status setup(engine *e)
{
    MILK_TRY(check_params(e->ctx, e->par));
    const char *name = e->vp.function ? e->vp.function : milk_program_default_function(e->p);
    if (!(e->fn = milk_program_function(e->p, name))) return milk_function_not_found(e->ctx, e->p, name);
    MILK_TRY(index_ops(e));
    if (!(e->best = new_set(e))) return nomem(e->ctx);
    if (e->par->check == MILK_REDUCE_COMMAND) MILK_TRY(make_dir(e));
    return capture(e);
}

static void teardown(engine *e)
{
    for (int i = 0; i < e->n_cap; i++) milk_array_release(&e->caps[i].a);
    milk_runner_free(e->cap);
    vf_inputs_release(&e->model_in);
    milk_verify_free(e->seeded);
    milk_npz_release(&e->ref);
    if (e->own_dir) nftw(e->dir, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
    free(e->dir);
    free(e->at);
    free(e->pos);
    free(e->best);
}

/* ---- the result ------------------------------------------------------------------------- */

static const char *check_words(const engine *e, char *buf, size_t n)
{
    const milk_reduce_params *p = e->par;
    char tol[512];
    switch (p->check) {
    case MILK_REDUCE_AGAINST:
        vf_tolerance_str(e->seeded, tol, sizeof tol);
        snprintf(buf, n, "a var differs from %s (%s)", p->reference, tol);
        break;
    case MILK_REDUCE_FP16_VS_FP32:
        vf_tolerance_str(e->seeded, tol, sizeof tol);
        snprintf(buf, n, "a var differs between fp16 storage and fp32 (%s)", tol);
        break;
    case MILK_REDUCE_LINT: snprintf(buf, n, "rule %s matches", p->rule); break;
    case MILK_REDUCE_COMMAND: snprintf(buf, n, "command exits 1: %s", p->command); break;
    case MILK_REDUCE_CALLBACK: snprintf(buf, n, "the caller's check fails"); break;
    }
    return buf;
}

static milk_status add_value(engine *e, const char *name, const milk_array *a, milk_dtype as)
{
    milk_reduce *r = e->res;
    for (int i = 0; i < r->n_values; i++)
        if (strcmp(r->value_names[i], name) == 0) return MILK_OK;
    milk_array *c = &r->values[r->n_values];
    milk_tensor_type t = a->type;
    bool to16 = as == MILK_DTYPE_FP16 && t.dtype == MILK_DTYPE_FP32;
    if (to16) t.dtype = MILK_DTYPE_FP16;
    MILK_TRY(milk_array_init(e->ctx, &t, c));
    int64_t n = milk_tensor_type_count(&t);
    uint64_t nb = 0;
    milk_dtype_nbytes(t.dtype, n, &nb);
    if (to16) {
        for (int64_t i = 0; i < n; i++)
            ((uint16_t *)c->data)[i] = milk_fp32_to_fp16(((const float *)a->data)[i]);
    } else {
        milk_copy(c->data, a->data, (size_t)nb);
    }
    if (!(r->value_names[r->n_values] = milk_arena_strdup(r->arena, name))) {
        milk_array_release(c);
        return nomem(e->ctx);
    }
    r->n_values++;
    return MILK_OK;
}

/* BASE.npz: the inputs of the result, then the reference values of its op
 * outputs (as-declared fp16 vars stay fp16). */
static milk_status collect_values(engine *e, const milk_function *f)
{
    milk_reduce *r = e->res;
    int cap = f->n_inputs + f->n_vars;
    r->values = calloc((size_t)cap + 1, sizeof *r->values);
    r->value_names = milk_arena_alloc(r->arena, ((size_t)cap + 1) * sizeof *r->value_names);
    if (!r->values || !r->value_names) return nomem(e->ctx);
    bool as16 = e->vp.precision == MILK_PRECISION_AS_DECLARED;
    for (int i = 0; i < f->n_inputs; i++) {
        const milk_array *a;
        const char *src;
        if (f->inputs[i]->is_state) continue;
        MILK_TRY(input_value(e, f->inputs[i]->name, &a, &src));
        MILK_TRY(add_value(e, f->inputs[i]->name, a,
                           as16 ? f->inputs[i]->type.dtype : MILK_DTYPE_FP32));
    }
    bool against = e->par->check == MILK_REDUCE_AGAINST;
    bool all = against || e->par->check == MILK_REDUCE_FP16_VS_FP32;
    for (int i = 0; i < f->block->n_ops; i++) {
        const milk_op *op = f->block->ops[i];
        for (int k = 0; op->kind != MILK_OP_const_ && k < op->n_outputs; k++) {
            const milk_var *v = op->outputs[k];
            bool out = false;
            for (int o = 0; o < f->block->n_outputs; o++) out |= f->block->outputs[o] == v;
            if (!all && !out) continue;
            const milk_array *a = against ? milk_npz_find(&e->ref, v->name) : NULL;
            if (against && !a) continue; /* no reference value: nothing to compare with */
            if (!a) MILK_TRY(captured_value(e, v->name, &a));
            bool fp16 = as16 && e->par->check != MILK_REDUCE_FP16_VS_FP32;
            MILK_TRY(add_value(e, v->name, a, fp16 ? v->type.dtype : MILK_DTYPE_FP32));
        }
    }
    return MILK_OK;
}

/* Where each input of the result comes from. */
static milk_status describe_inputs(engine *e, const milk_function *f)
{
    milk_reduce *r = e->res;
    r->inputs = milk_arena_alloc(r->arena, ((size_t)f->n_inputs + 1) * sizeof *r->inputs);
    if (!r->inputs) return nomem(e->ctx);
    for (int i = 0; i < f->n_inputs; i++) {
        rd_input *in = &r->inputs[i];
        const milk_var *v = milk_function_var(e->fn, f->inputs[i]->name);
        const milk_array *a;
        const char *src = "zero (a state)";
        char origin[800];
        if (!f->inputs[i]->is_state) MILK_TRY(input_value(e, f->inputs[i]->name, &a, &src));
        if (f->inputs[i]->is_state)
            snprintf(origin, sizeof origin, "state");
        else if (v && v->producer)
            snprintf(origin, sizeof origin, "cut: output of op '%.400s' (%s)", v->producer->name,
                     milk_ops[v->producer->kind]->name);
        else
            snprintf(origin, sizeof origin, "model input");
        in->name = f->inputs[i]->name;
        in->origin = milk_arena_strdup(r->arena, origin);
        in->source = vf_utf8_clean(r->arena, src);
        if (!in->origin || !in->source) return nomem(e->ctx);
        r->n_inputs++;
    }
    return MILK_OK;
}

static milk_status finish(engine *e)
{
    milk_reduce *r = e->res;
    bool *take = calloc((size_t)e->fn->block->n_ops + 1, sizeof *take);
    if (!take) return nomem(e->ctx);
    for (int k = 0; k < e->n; k++) take[e->at[k]] = e->best[k];
    char desc[1024], words[1400];
    snprintf(desc, sizeof desc, "milk debug reduce: %d of %d ops of %.300s (%.500s)",
             e->best_n, e->n, r->label, check_words(e, words, sizeof words));
    milk_status s = vf_extract_set(e->ctx, e->p, e->fn, take, desc, &r->best);
    free(take);
    MILK_TRY(s);
    const milk_function *f = milk_program_function(r->best, "main");
    r->kept = milk_arena_alloc(r->arena, ((size_t)e->best_n + 1) * sizeof *r->kept);
    if (!r->kept) return nomem(e->ctx);
    for (int k = 0; k < e->n; k++) {
        if (!e->best[k]) continue;
        char buf[600];
        snprintf(buf, sizeof buf, "%.400s (%s)", op_at(e, k)->name,
                 milk_ops[op_at(e, k)->kind]->name);
        if (!(r->kept[r->n_kept++] = vf_utf8_clean(r->arena, buf))) return nomem(e->ctx);
    }
    if (!(r->failure = vf_utf8_clean(r->arena, e->best_detail))) return nomem(e->ctx);
    MILK_TRY(describe_inputs(e, f));
    return collect_values(e, f);
}

static milk_status search(engine *e)
{
    bool *all = new_set(e);
    if (!all) return nomem(e->ctx);
    for (int k = 0; k < e->n; k++) all[k] = true;
    milk_reduce_verdict v;
    milk_status s = try_set(e, all, "whole", "the whole program", &v);
    if (s == MILK_OK && v != MILK_REDUCE_BAD)
        s = milk_errorf(e->ctx, MILK_ERR_INVALID_ARG, "reduce: the whole program does not "
                        "fail the check (verdict %s: %s): nothing to reduce",
                        milk_reduce_verdict_name(v), e->res->steps[0].detail);
    unsigned modes = e->par->modes ? e->par->modes : MILK_REDUCE_BISECT | MILK_REDUCE_LINEAR;
    if (s == MILK_OK && (modes & MILK_REDUCE_BISECT)) s = bisect_outputs(e, all);
    if (s == MILK_OK && (modes & MILK_REDUCE_BISECT)) s = bisect_inputs(e, all);
    /* the bisections end on their smallest failing set: continue from it */
    if (s == MILK_OK) memcpy(all, e->best, (size_t)e->n * sizeof *all);
    if (s == MILK_OK && (modes & MILK_REDUCE_LINEAR)) s = remove_one_by_one(e, all);
    free(all);
    return s;
}

milk_status milk_program_reduce(milk_ctx *ctx, const milk_program *p,
                                const milk_reduce_params *params, milk_reduce **out)
{
    *out = NULL;
    if (!params) return milk_errorf(ctx, MILK_ERR_INVALID_ARG, "reduce: no parameters");
    engine e = {0};
    e.ctx = ctx;
    e.p = p;
    e.par = params;
    e.vp = params->verify;
    e.res = calloc(1, sizeof *e.res);
    if (!e.res || !(e.res->arena = milk_arena_create())) {
        free(e.res);
        return nomem(ctx);
    }
    e.res->label = vf_utf8_clean(e.res->arena, e.vp.label ? e.vp.label : "program");
    milk_status s = e.res->label ? setup(&e) : nomem(ctx);
    char words[1400];
    if (s == MILK_OK)
        s = (e.res->check = milk_arena_strdup(e.res->arena,
                                              check_words(&e, words, sizeof words)))
                ? MILK_OK : nomem(ctx);
    e.res->n_ops = e.n;
    if (s == MILK_OK) s = search(&e);
    if (s == MILK_OK) s = finish(&e);
    teardown(&e);
    if (s != MILK_OK) {
        milk_reduce_free(e.res);
        return s;
    }
    *out = e.res;
    return MILK_OK;
}

void milk_reduce_free(milk_reduce *r)
{
    if (!r) return;
    for (int i = 0; i < r->n_values; i++) milk_array_release(&r->values[i]);
    free(r->values);
    milk_program_free(r->best);
    milk_arena_free(r->arena);
    free(r);
}

const milk_program *milk_reduce_program(const milk_reduce *r)
{
    return r->best;
}

int milk_reduce_step_count(const milk_reduce *r)
{
    return r->n_steps;
}

const milk_reduce_step *milk_reduce_step_at(const milk_reduce *r, int i)
{
    return i >= 0 && i < r->n_steps ? &r->steps[i] : NULL;
}
