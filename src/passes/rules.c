/* rules.c: the rule table's engine: the table itself (expanded from
 * rules.def), selection by deployment target, compute units, precision and
 * ids, matching over every op of every function, the report, and
 * milk_rules_check / milk_rules_apply. */
#include "rules.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdlib.h>

const milk_rule milk_rules[] = {
#define MILK_RULE(ident, id, cat, hw, tmin, tmax, prec, act, sev, match, fix, \
                  cond, scope, src, sugg, note)                              \
    {{id, cat, cond, scope, act, sev, src, sugg, note},                     \
     hw, (milk_target)(tmin), (milk_target)(tmax), prec, match, fix},
#include "rules.def"
#undef MILK_RULE
};
const int milk_n_rules = (int)MILK_ARRAY_LEN(milk_rules);

/* ---- the table, public view ---------------------------------------------- */

int milk_rule_count(void)
{
    return milk_n_rules;
}

const milk_rule_info *milk_rule_at(int i)
{
    return i >= 0 && i < milk_n_rules ? &milk_rules[i].info : NULL;
}

static const milk_rule *rule_find(const char *id)
{
    for (int i = 0; id && i < milk_n_rules; i++)
        if (strcmp(milk_rules[i].info.id, id) == 0) return &milk_rules[i];
    return NULL;
}

const milk_rule_info *milk_rule_find(const char *id)
{
    const milk_rule *r = rule_find(id);
    return r ? &r->info : NULL;
}

static const char *const units_names[] = {"all", "cpu_only", "cpu_and_gpu",
                                          "cpu_and_ne"};
static const unsigned units_hw[] = {MILK_HW_ANY, MILK_HW_CPU,
                                    MILK_HW_CPU | MILK_HW_GPU,
                                    MILK_HW_CPU | MILK_HW_NE | MILK_HW_NE_ONLY};

const char *milk_compute_units_name(milk_compute_units u)
{
    return u >= 0 && (size_t)u < MILK_ARRAY_LEN(units_names) ? units_names[u]
                                                             : NULL;
}

milk_compute_units milk_compute_units_from_name(const char *name)
{
    for (size_t i = 0; name && i < MILK_ARRAY_LEN(units_names); i++)
        if (strcasecmp(name, units_names[i]) == 0) return (milk_compute_units)i;
    return MILK_UNITS_INVALID;
}

const char *milk_rule_action_name(milk_rule_action a)
{
    static const char *const n[] = {"rewrite", "warn", "refuse"};
    return a >= 0 && (size_t)a < MILK_ARRAY_LEN(n) ? n[a] : "?";
}

const char *milk_rule_severity_name(milk_rule_severity s)
{
    static const char *const n[] = {"info", "warning", "error"};
    return s >= 0 && (size_t)s < MILK_ARRAY_LEN(n) ? n[s] : "?";
}

/* ---- the report ------------------------------------------------------------ */

struct milk_rule_report {
    int n, cap;
    milk_rule_hit *hits;
};

milk_status milk_rule_report_create(milk_ctx *ctx, milk_rule_report **out)
{
    *out = calloc(1, sizeof **out);
    return *out ? MILK_OK : milk_errorf(ctx, MILK_ERR_NOMEM, "out of memory");
}

static void hit_release(milk_rule_hit *h)
{
    free((char *)h->pass);
    free((char *)h->function);
    free((char *)h->op);
    free((char *)h->op_type);
    free((char *)h->detail);
    free((char *)h->touched);
}

void milk_rule_report_free(milk_rule_report *r)
{
    if (!r) return;
    for (int i = 0; i < r->n; i++) hit_release(&r->hits[i]);
    free(r->hits);
    free(r);
}

int milk_rule_report_count(const milk_rule_report *r)
{
    return r ? r->n : 0;
}

const milk_rule_hit *milk_rule_report_at(const milk_rule_report *r, int i)
{
    return r && i >= 0 && i < r->n ? &r->hits[i] : NULL;
}

int milk_rule_report_unfixed(const milk_rule_report *r,
                             milk_rule_severity at_least)
{
    int n = 0;
    for (int i = 0; r && i < r->n; i++)
        n += !r->hits[i].fixed && r->hits[i].rule &&
             r->hits[i].rule->severity >= at_least;
    return n;
}

static char *dup_or_empty(const char *s)
{
    return strdup(s ? s : "");
}

milk_status milk_rule_report_add(milk_ctx *ctx, milk_rule_report *r,
                                 const milk_rule_info *rule, const char *pass,
                                 const char *function, const char *op,
                                 const char *op_type, const char *detail,
                                 int fixed, const char *touched)
{
    if (!r) return MILK_OK;
    if (r->n == r->cap) {
        int cap = r->cap ? 2 * r->cap : 16;
        milk_rule_hit *h = realloc(r->hits, (size_t)cap * sizeof *h);
        if (!h) return milk_errorf(ctx, MILK_ERR_NOMEM, "out of memory");
        r->hits = h;
        r->cap = cap;
    }
    milk_rule_hit h = {rule, dup_or_empty(pass), dup_or_empty(function),
                       dup_or_empty(op), dup_or_empty(op_type),
                       dup_or_empty(detail), fixed, dup_or_empty(touched)};
    if (!h.pass || !h.function || !h.op || !h.op_type || !h.detail ||
        !h.touched) {
        hit_release(&h);
        return milk_errorf(ctx, MILK_ERR_NOMEM, "out of memory");
    }
    r->hits[r->n++] = h;
    return MILK_OK;
}

/* ---- helpers for matchers ---------------------------------------------------- */

void milk_rule_matched(milk_rule_run *rr, const milk_op *op, const char *fmt, ...)
{
    char detail[768];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(detail, sizeof detail, fmt, ap);
    va_end(ap);
    rr->sink(rr, op, detail);
}

bool milk_rule_fp16(const milk_rule_run *rr, milk_dtype dt)
{
    bool is_float = dt == MILK_DTYPE_FP16 || dt == MILK_DTYPE_FP32;
    if (rr->forced || rr->rule->prec == MILK_PREC_ANY) return true;
    if (dt == MILK_DTYPE_FP16) return true;
    if (rr->precision == MILK_RULE_PRECISION_FP16 && is_float) return true;
    return rr->rule->prec == MILK_PREC_FP16 && (rr->hw & MILK_HW_NE) && is_float;
}

bool milk_rule_is(const milk_op *op, const char *type)
{
    return op && strcmp(milk_ops[op->kind]->name, type) == 0;
}

const milk_op *milk_rule_producer(const milk_op *op, const char *param)
{
    milk_var *v = milk_op_var(op, param);
    return v ? v->producer : NULL;
}

const char *milk_rule_shape(const milk_tensor_type *t, char *buf, size_t n)
{
    size_t k = (size_t)snprintf(buf, n, "[");
    for (int i = 0; i < t->rank && k < n; i++)
        k += (size_t)snprintf(buf + k, n - k, "%s%lld", i ? ", " : "",
                              (long long)t->dims[i]);
    if (k < n) snprintf(buf + k, n - k, "]");
    return buf;
}

/* ---- selection ---------------------------------------------------------------- */

static bool listed(const char *const *ids, int n, const char *id)
{
    for (int i = 0; ids && i < n; i++)
        if (ids[i] && strcmp(ids[i], id) == 0) return true;
    return false;
}

static milk_status check_ids(milk_ctx *ctx, const char *const *ids, int n,
                             const char *what, bool allow_all)
{
    for (int i = 0; ids && i < n; i++) {
        if (!ids[i] || rule_find(ids[i])) continue;
        if (allow_all && strcmp(ids[i], "all") == 0) continue;
        return milk_errorf(ctx, MILK_ERR_INVALID_ARG,
                           "%s: unknown rule id '%s' (milk lint --list-rules "
                           "lists them)",
                           what, ids[i]);
    }
    return MILK_OK;
}

/* The options after defaults, checked. */
typedef struct selection {
    milk_rule_options o;
    unsigned hw;
} selection;

static milk_status select_init(milk_ctx *ctx, const milk_program *p,
                               const milk_rule_options *opts, selection *sel)
{
    memset(sel, 0, sizeof *sel);
    if (opts) sel->o = *opts;
    if (!sel->o.target) sel->o.target = p->target;
    if (!milk_target_name(sel->o.target))
        return milk_errorf(ctx, MILK_ERR_INVALID_ARG,
                           "rule options: unknown deployment target %d",
                           (int)sel->o.target);
    if (!milk_compute_units_name(sel->o.units))
        return milk_errorf(ctx, MILK_ERR_INVALID_ARG,
                           "rule options: unknown compute units %d",
                           (int)sel->o.units);
    sel->hw = units_hw[sel->o.units];
    MILK_TRY(check_ids(ctx, sel->o.enable, sel->o.n_enable, "enable", false));
    return check_ids(ctx, sel->o.disable, sel->o.n_disable, "disable", true);
}

/* 0: off; 1: selected by its scope; 2: enabled by id. */
static int rule_state(const selection *sel, const milk_rule *r)
{
    const milk_rule_options *o = &sel->o;
    bool on = listed(o->enable, o->n_enable, r->info.id);
    if (listed(o->disable, o->n_disable, r->info.id)) return 0;
    if (listed(o->disable, o->n_disable, "all") && !on) return 0;
    if (on) return 2;
    if (!(r->hw & sel->hw)) return 0;
    if (r->min_target && o->target < r->min_target) return 0;
    if (r->max_target && o->target > r->max_target) return 0;
    return 1;
}

static void run_init(milk_rule_run *rr, milk_ctx *ctx, milk_program *p,
                     const selection *sel, const milk_rule *r, int state)
{
    memset(rr, 0, sizeof *rr);
    rr->ctx = ctx;
    rr->p = p;
    rr->rule = r;
    rr->forced = state == 2;
    rr->hw = sel->hw;
    rr->target = sel->o.target;
    rr->precision = sel->o.precision;
}

/* ---- matching ---------------------------------------------------------------- */

static void match_block(milk_rule_run *rr, milk_block *b)
{
    for (int i = 0; i < b->n_ops; i++) {
        milk_op *op = b->ops[i];
        rr->rule->match(rr, op);
        for (int k = 0; k < op->n_blocks; k++) match_block(rr, op->blocks[k]);
    }
}

static void match_function(milk_rule_run *rr, milk_function *f)
{
    rr->fn = f;
    rr->rule->match(rr, NULL);
    match_block(rr, f->block);
}

/* A rewrite a pass declined, remembered so that the final check can say
 * why the hit stays. */
typedef struct decline {
    const milk_rule *rule;
    const milk_op *op;
    char why[256];
} decline;

typedef struct apply_state {
    milk_rule_report *report;
    decline *declines;
    int n_declines, cap_declines;
} apply_state;

static const char *declined_why(const apply_state *st, const milk_rule *r,
                                const milk_op *op)
{
    for (int i = 0; st && i < st->n_declines; i++)
        if (st->declines[i].rule == r && st->declines[i].op == op)
            return st->declines[i].why;
    return NULL;
}

/* Check mode: every match becomes an unfixed hit. */
static void report_sink(milk_rule_run *rr, const milk_op *op,
                        const char *detail)
{
    apply_state *st = rr->user;
    char buf[1100];
    const char *why = declined_why(st, rr->rule, op);
    if (why) snprintf(buf, sizeof buf, "%s (not rewritten: %s)", detail, why);
    milk_status s = milk_rule_report_add(
        rr->ctx, st->report, &rr->rule->info, rr->rule->info.id, rr->fn->name,
        op ? op->name : "", op ? milk_ops[op->kind]->name : "inputs/outputs",
        why ? buf : detail, 0, "");
    if (s != MILK_OK && rr->err == MILK_OK) rr->err = s;
}

static milk_status check_rules(milk_ctx *ctx, const milk_program *p,
                               const selection *sel, apply_state *st,
                               int only_action)
{
    for (int i = 0; i < milk_n_rules; i++) {
        const milk_rule *r = &milk_rules[i];
        int state = rule_state(sel, r);
        if (!state || (only_action >= 0 && (int)r->info.action != only_action))
            continue;
        milk_rule_run rr;
        run_init(&rr, ctx, (milk_program *)p, sel, r, state);
        rr.sink = report_sink;
        rr.user = st;
        for (int f = 0; f < p->n_functions && rr.err == MILK_OK; f++)
            match_function(&rr, p->functions[f]);
        MILK_TRY(rr.err);
    }
    return MILK_OK;
}

milk_status milk_rules_check(milk_ctx *ctx, const milk_program *p,
                             const milk_rule_options *opts,
                             milk_rule_report *report)
{
    selection sel;
    MILK_TRY(select_init(ctx, p, opts, &sel));
    apply_state st = {report, NULL, 0, 0};
    return check_rules(ctx, p, &sel, &st, -1);
}

/* ---- applying ------------------------------------------------------------------ */

/* The matches of one rule in one function, collected before rewriting
 * (a rewrite changes the op list being walked). */
typedef struct pending {
    int n, cap;
    milk_op **ops;
    char (*detail)[768];
} pending;

static void pending_sink(milk_rule_run *rr, const milk_op *op,
                         const char *detail)
{
    pending *pd = rr->user;
    if (pd->n == pd->cap) {
        int cap = pd->cap ? 2 * pd->cap : 16;
        milk_op **ops = realloc(pd->ops, (size_t)cap * sizeof *ops);
        if (ops) pd->ops = ops;
        char(*d)[768] = realloc(pd->detail, (size_t)cap * sizeof *d);
        if (d) pd->detail = d;
        if (!ops || !d) {
            rr->err = milk_errorf(rr->ctx, MILK_ERR_NOMEM, "out of memory");
            return;
        }
        pd->cap = cap;
    }
    pd->ops[pd->n] = (milk_op *)op;
    snprintf(pd->detail[pd->n], sizeof pd->detail[0], "%s", detail);
    pd->n++;
}

/* Does the rule still match op (an earlier rewrite may have changed it)? */
static void flag_sink(milk_rule_run *rr, const milk_op *op, const char *d)
{
    (void)op;
    (void)d;
    *(bool *)rr->user = true;
}

static bool still_matches(milk_rule_run *rr, milk_op *op)
{
    if (op && !op->block) return false;
    milk_rule_run probe = *rr;
    bool hit = false;
    probe.sink = flag_sink;
    probe.user = &hit;
    probe.rule->match(&probe, op);
    return hit;
}

static milk_status remember_decline(milk_ctx *ctx, apply_state *st,
                                    const milk_rule *r, const milk_op *op,
                                    const char *why)
{
    if (declined_why(st, r, op)) return MILK_OK;
    if (st->n_declines == st->cap_declines) {
        int cap = st->cap_declines ? 2 * st->cap_declines : 8;
        decline *d = realloc(st->declines, (size_t)cap * sizeof *d);
        if (!d) return milk_errorf(ctx, MILK_ERR_NOMEM, "out of memory");
        st->declines = d;
        st->cap_declines = cap;
    }
    decline *d = &st->declines[st->n_declines++];
    d->rule = r;
    d->op = op;
    snprintf(d->why, sizeof d->why, "%s", why);
    return MILK_OK;
}

/* Rewrite one pending match; *done is set when the program changed. */
static milk_status fix_one(milk_rule_run *rr, apply_state *st, milk_op *op,
                           const char *detail, bool *done)
{
    char name[256], type[64];
    snprintf(name, sizeof name, "%s", op ? op->name : "");
    snprintf(type, sizeof type, "%s",
             op ? milk_ops[op->kind]->name : "inputs/outputs");
    rr->touched[0] = rr->declined[0] = 0;
    milk_status s = rr->rule->fix(rr, op);
    if (s != MILK_OK)
        return milk_error_prefix(rr->ctx, "rule %s: function '%s': op '%s'",
                                 rr->rule->info.id, rr->fn->name, name);
    if (rr->declined[0])
        return remember_decline(rr->ctx, st, rr->rule, op, rr->declined);
    *done = true;
    return milk_rule_report_add(rr->ctx, st->report, &rr->rule->info,
                                rr->rule->info.id, rr->fn->name, name, type,
                                detail, 1, rr->touched);
}

/* One rule over one function: collect its matches, then rewrite each that
 * still matches. */
static milk_status fix_function(milk_rule_run *rr, apply_state *st,
                                milk_function *f, int *changed)
{
    pending pd = {0};
    rr->sink = pending_sink;
    rr->user = &pd;
    rr->err = MILK_OK;
    match_function(rr, f);
    milk_status s = rr->err;
    for (int i = 0; s == MILK_OK && i < pd.n; i++) {
        if (declined_why(st, rr->rule, pd.ops[i])) continue;
        if (!still_matches(rr, pd.ops[i])) continue;
        bool done = false;
        s = fix_one(rr, st, pd.ops[i], pd.detail[i], &done);
        *changed += done;
    }
    free(pd.ops);
    free(pd.detail);
    rr->user = NULL; /* pd dies here */
    return s;
}

static milk_status fix_round(milk_ctx *ctx, milk_program *p,
                             const selection *sel, apply_state *st,
                             int *changed)
{
    for (int i = 0; i < milk_n_rules; i++) {
        const milk_rule *r = &milk_rules[i];
        int state = rule_state(sel, r);
        if (!state || !r->fix || r->info.action != MILK_RULE_REWRITE) continue;
        milk_rule_run rr;
        run_init(&rr, ctx, p, sel, r, state);
        for (int f = 0; f < p->n_functions; f++)
            MILK_TRY(fix_function(&rr, st, p->functions[f], changed));
    }
    return MILK_OK;
}

/* Refusals: listed all at once, in the report and in the message. */
static milk_status refuse(milk_ctx *ctx, const milk_program *p,
                          const selection *sel, apply_state *st)
{
    milk_rule_report *mine;
    MILK_TRY(milk_rule_report_create(ctx, &mine));
    apply_state tmp = {mine, NULL, 0, 0};
    milk_status s = check_rules(ctx, p, sel, &tmp, MILK_RULE_REFUSE);
    char msg[2048] = "";
    size_t len = 0;
    for (int i = 0; s == MILK_OK && i < mine->n; i++) {
        const milk_rule_hit *h = &mine->hits[i];
        s = milk_rule_report_add(ctx, st->report, h->rule, h->pass, h->function,
                                 h->op, h->op_type, h->detail, 0, "");
        if (len < sizeof msg - 1)
            len += (size_t)snprintf(msg + len, sizeof msg - len, "%s%s: op '%s' (%s): %s",
                                    i ? "; " : "", h->pass, h->op, h->op_type, h->detail);
    }
    int n = mine->n;
    milk_rule_report_free(mine);
    MILK_TRY(s);
    if (n)
        return milk_errorf(ctx, MILK_ERR_UNSUPPORTED,
                           "%d refused pattern%s: %s", n, n > 1 ? "s" : "", msg);
    return MILK_OK;
}

static milk_status apply_rounds(milk_ctx *ctx, milk_program *p,
                                const selection *sel, apply_state *st)
{
    /* A rewrite removes its own pattern, so rounds end; the bound only
     * guards against two rules undoing each other. */
    for (int round = 0; round < 8; round++) {
        int changed = 0;
        MILK_TRY(fix_round(ctx, p, sel, st, &changed));
        if (!changed) return MILK_OK;
    }
    return MILK_OK;
}

milk_status milk_rules_apply(milk_ctx *ctx, milk_program *p,
                             const milk_rule_options *opts,
                             milk_rule_report *report)
{
    selection sel;
    MILK_TRY(select_init(ctx, p, opts, &sel));
    apply_state st = {report, NULL, 0, 0};
    milk_status s = refuse(ctx, p, &sel, &st);
    if (s == MILK_OK) s = apply_rounds(ctx, p, &sel, &st);
    for (int f = 0; s == MILK_OK && f < p->n_functions; f++)
        s = milk_function_dce(ctx, p->functions[f], NULL);
    if (s == MILK_OK) {
        s = milk_program_check(ctx, p);
        if (s != MILK_OK)
            milk_error_prefix(ctx, "the rewritten program fails its check");
    }
    if (s == MILK_OK) s = check_rules(ctx, p, &sel, &st, -1);
    free(st.declines);
    return s;
}
