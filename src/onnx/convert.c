/* convert.c: milk_onnx_convert, the ONNX-to-MIL driver. It loads the
 * model, reserves a MIL name for every tensor, declares the graph inputs
 * (convert_io.c), lowers the nodes in order through the lowering table
 * (lower.def), collecting every node it cannot lower into one error, sets
 * the outputs and adapts the boundary to Core ML (convert_io.c, through
 * the boundary pass), and runs the passes: dead code, fp16 (with
 * the ops kept in fp32), the general simplifications, and the Core ML
 * defect rules for the compute units asked for. */
#include "convert.h"
#include "../passes/passes.h"
#include "../passes/rules.h"

#include <stdio.h>
#include <stdlib.h>

/* Opsets of the default domain the lowerings are written for. */
#define MIN_OPSET 7
#define MAX_OPSET 21

typedef struct lower_row {
    const char *op_type;
    milk_status (*fn)(milk_cv *c, const milk_onnx_node *n);
    int min_in, max_in, min_out, max_out; /* max -1: no limit */
    const char *doc;
} lower_row;

static const lower_row lower_table[] = {
#define MANY (-1)
#define IN(min, max) min, max
#define OUT(min, max) min, max
#define MILK_LOWER(op_type, fn, in, out, doc) {op_type, milk_lower_##fn, in, out, doc},
#include "lower.def"
#undef MILK_LOWER
#undef OUT
#undef IN
#undef MANY
};

int milk_onnx_lowering_count(void)
{
    return (int)MILK_ARRAY_LEN(lower_table);
}

void milk_onnx_lowering(int i, const char **op_type, const char **doc)
{
    bool ok = i >= 0 && i < milk_onnx_lowering_count();
    *op_type = ok ? lower_table[i].op_type : NULL;
    *doc = ok ? lower_table[i].doc : NULL;
}

void milk_onnx_lowering_arity(int i, int *min_in, int *max_in, int *min_out,
                              int *max_out)
{
    bool ok = i >= 0 && i < milk_onnx_lowering_count();
    *min_in = ok ? lower_table[i].min_in : 0;
    *max_in = ok ? lower_table[i].max_in : 0;
    *min_out = ok ? lower_table[i].min_out : 0;
    *max_out = ok ? lower_table[i].max_out : 0;
}

static const lower_row *lower_find(const char *op_type)
{
    for (size_t i = 0; i < MILK_ARRAY_LEN(lower_table); i++)
        if (strcmp(lower_table[i].op_type, op_type) == 0) return &lower_table[i];
    return NULL;
}

/* ---- the error list ----------------------------------------------------------- */

/* Every node that fails, one line each, so one run lists them all. */
typedef struct errlist {
    char *buf;
    size_t len, cap;
    int n;
    milk_status status;
} errlist;

static void errlist_add(errlist *e, milk_status s, const char *fmt, ...)
    MILK_PRINTF(3, 4);

static void errlist_add(errlist *e, milk_status s, const char *fmt, ...)
{
    char line[1024];
    va_list ap;
    va_start(ap, fmt);
    int k = vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    size_t len = k < 0 ? 0 : (size_t)k < sizeof line ? (size_t)k : sizeof line - 1;
    if (e->len + len + 2 > e->cap) {
        size_t cap = (e->cap + len + 2) * 2;
        char *b = realloc(e->buf, cap);
        if (!b) return; /* the count and status still say it failed */
        e->buf = b;
        e->cap = cap;
    }
    memcpy(e->buf + e->len, "\n", 1);
    memcpy(e->buf + e->len + 1, line, len);
    e->len += len + 1;
    e->buf[e->len] = 0;
    e->n++;
    if (e->status == MILK_OK || s == MILK_ERR_UNSUPPORTED) e->status = s;
}

static void node_label(const milk_onnx_node *n, int idx, char *buf, size_t cap)
{
    bool dflt = !n->domain[0] || strcmp(n->domain, "ai.onnx") == 0;
    char type[256];
    snprintf(type, sizeof type, "%s%s%s", dflt ? "" : n->domain,
             dflt ? "" : "::", n->op_type);
    if (n->name[0])
        snprintf(buf, cap, "node '%s' (%s)", n->name, type);
    else
        snprintf(buf, cap, "node #%d (%s, output '%s')", idx, type,
                 n->n_outputs ? n->outputs[0] : "");
}

/* ---- nodes ------------------------------------------------------------------- */

/* The static type value_info (or the graph outputs) gives a tensor. */
static bool known_type(milk_cv *c, const char *name, milk_tensor_type *t)
{
    const milk_onnx_graph *g = &c->m->graph;
    for (int pass = 0; pass < 2; pass++) {
        const milk_onnx_value_info *vi = pass ? g->outputs : g->value_info;
        int n = pass ? g->n_outputs : g->n_value_info;
        for (int i = 0; i < n; i++) {
            if (strcmp(vi[i].name, name) != 0 || vi[i].kind != MILK_ONNX_VALUE_TENSOR ||
                vi[i].rank < 0 || (t->dtype = milk_cv_dtype(vi[i].elem_type)) ==
                                      MILK_DTYPE_INVALID)
                continue;
            t->rank = vi[i].rank;
            for (int k = 0; k < t->rank; k++)
                if ((t->dims[k] = vi[i].dims[k].value) < 1) return false;
            return true;
        }
    }
    return false;
}

/* After a node fails: its outputs become placeholders (of the type
 * value_info gives) so that later nodes are still checked, or are marked
 * poisoned so that the nodes reading them are skipped, not reported. */
static milk_status node_failed(milk_cv *c, const milk_onnx_node *n)
{
    for (int k = 0; k < n->n_outputs; k++) {
        milk_cv_value *v = milk_cv_value_get(c, n->outputs[k]);
        milk_tensor_type t = {0};
        if (!v || v->defined) continue;
        if (!known_type(c, v->onnx, &t)) {
            v->poisoned = true;
            continue;
        }
        const char *name = milk_cv_tmp(c, "unconverted");
        if (!name) return milk_errorf(c->ctx, MILK_ERR_NOMEM, "out of memory");
        MILK_TRY(milk_function_add_input(c->ctx, c->fn, name, &t, &v->var));
        v->defined = true;
    }
    return MILK_OK;
}

static bool reads_poisoned(milk_cv *c, const milk_onnx_node *n)
{
    for (int i = 0; i < n->n_inputs; i++) {
        milk_cv_value *v = n->inputs[i][0] ? milk_cv_value_get(c, n->inputs[i]) : NULL;
        if (v && v->poisoned) return true;
    }
    return false;
}

/* SSA: each name has one producer. `set` false: before lowering, every
 * output must still be free; true: after, the lowering set every one. */
static milk_status check_outputs(milk_cv *c, const milk_onnx_node *n, bool set)
{
    for (int k = 0; k < n->n_outputs; k++) {
        milk_cv_value *v = n->outputs[k][0] ? milk_cv_value_get(c, n->outputs[k]) : NULL;
        if (v && v->defined && !set)
            return milk_cv_fail(c, MILK_ERR_INVALID_MODEL, "output '%s' is already "
                                "defined (by a graph input, an initializer or an "
                                "earlier node)", v->onnx);
        if (v && !v->defined && set)
            return milk_cv_fail(c, MILK_ERR_INVALID_ARG, "the lowering left "
                                "output '%s' undefined", v->onnx);
    }
    return MILK_OK;
}

/* "2", "1 to 3", "1 or more". */
static const char *arity_text(int min, int max, char *buf, size_t cap)
{
    if (max < 0) snprintf(buf, cap, "%d or more", min);
    else if (min == max) snprintf(buf, cap, "%d", min);
    else snprintf(buf, cap, "%d to %d", min, max);
    return buf;
}

/* The node has as many inputs and outputs as its row allows, and every
 * required one is named, so lowerings never read past them. */
static milk_status check_arity(milk_cv *c, const lower_row *row,
                               const milk_onnx_node *n)
{
    char want[32];
    if (n->n_inputs < row->min_in || (row->max_in >= 0 && n->n_inputs > row->max_in))
        return milk_cv_fail(c, MILK_ERR_INVALID_MODEL, "has %d input%s; %s takes %s",
                            n->n_inputs, n->n_inputs == 1 ? "" : "s", n->op_type,
                            arity_text(row->min_in, row->max_in, want, sizeof want));
    if (n->n_outputs < row->min_out || (row->max_out >= 0 && n->n_outputs > row->max_out))
        return milk_cv_fail(c, MILK_ERR_INVALID_MODEL, "has %d output%s; %s has %s",
                            n->n_outputs, n->n_outputs == 1 ? "" : "s", n->op_type,
                            arity_text(row->min_out, row->max_out, want, sizeof want));
    for (int i = 0; i < row->min_in; i++)
        if (!n->inputs[i][0])
            return milk_cv_fail(c, MILK_ERR_INVALID_MODEL, "input %d is required "
                                "but has no name", i);
    for (int i = 0; i < row->min_out; i++)
        if (!n->outputs[i][0])
            return milk_cv_fail(c, MILK_ERR_INVALID_MODEL, "output %d is required "
                                "but has no name", i);
    return MILK_OK;
}

static milk_status lower_one(milk_cv *c, const milk_onnx_node *n)
{
    if (n->domain[0] && strcmp(n->domain, "ai.onnx") != 0)
        return milk_cv_unsupported(c, "op of domain '%s' (a custom or "
                                   "contributed op)", n->domain);
    const lower_row *row = lower_find(n->op_type);
    if (!row) return milk_cv_unsupported(c, "unknown op");
    MILK_TRY(check_arity(c, row, n));
    MILK_TRY(check_outputs(c, n, false));
    MILK_TRY(row->fn(c, n));
    return check_outputs(c, n, true);
}

static milk_status lower_nodes(milk_cv *c)
{
    const milk_onnx_graph *g = &c->m->graph;
    errlist errs = {0};
    milk_status s = MILK_OK;
    for (int i = 0; i < g->n_nodes && s == MILK_OK; i++) {
        const milk_onnx_node *n = &g->nodes[i];
        c->node = n;
        if (reads_poisoned(c, n)) {
            s = node_failed(c, n);
            continue;
        }
        int before = c->b->n_ops;
        bool state_write;
        milk_status ns = milk_cv_state_node(c, n, &state_write);
        if (ns == MILK_OK && !state_write) ns = lower_one(c, n);
        if (ns == MILK_OK) {
            s = milk_cv_origin_record(c, before, i);
            continue;
        }
        if (ns == MILK_ERR_NOMEM) {
            s = ns;
            break;
        }
        char label[600];
        node_label(n, i, label, sizeof label);
        errlist_add(&errs, ns, "  %s: %s", label, milk_ctx_error(c->ctx));
        milk_ctx_clear(c->ctx);
        s = node_failed(c, n);
    }
    c->node = NULL;
    if (s == MILK_OK && errs.n)
        s = milk_errorf(c->ctx, errs.status, "%s: %d node%s cannot be converted:%s",
                        c->file, errs.n, errs.n > 1 ? "s" : "",
                        errs.buf ? errs.buf : " (out of memory listing them)");
    free(errs.buf);
    return s;
}

/* ---- driver ------------------------------------------------------------------- */

static milk_status check_opset(milk_cv *c)
{
    c->opset = milk_onnx_opset(c->m, "");
    if (c->opset < MIN_OPSET || c->opset > MAX_OPSET)
        return milk_errorf(c->ctx, MILK_ERR_UNSUPPORTED, "%s: opset %lld of the "
                           "default domain; milk converts opsets %d to %d",
                           c->file, (long long)c->opset, MIN_OPSET, MAX_OPSET);
    return MILK_OK;
}

/* Core ML has fp16 model inputs and outputs from iOS16 on: an fp16 ONNX
 * model (whose I/O the fp16 pass does not make fp32) needs that target. */
static milk_status check_io_dtypes(milk_cv *c)
{
    for (int i = 0; i < c->fn->n_inputs + c->b->n_outputs; i++) {
        const milk_var *v = i < c->fn->n_inputs ? c->fn->inputs[i]
                                                : c->b->outputs[i - c->fn->n_inputs];
        milk_dtype d = v->type.dtype;
        milk_target need = d == MILK_DTYPE_FP16 ? MILK_TARGET_IOS16
                           : d == MILK_DTYPE_INT8 ? MILK_TARGET_IOS26 : 0;
        if (need && c->p->target < need)
            return milk_errorf(c->ctx, MILK_ERR_UNSUPPORTED, "%s: '%s' is an %s "
                               "model %s, which needs --target %s or later",
                               c->file, v->name, milk_dtype_name(d),
                               i < c->fn->n_inputs ? "input" : "output",
                               milk_target_name(need));
    }
    return MILK_OK;
}

/* The ops of keep still in the program (simplification may remove some). */
static int count_kept(milk_cv *c, const milk_convert_params *p, milk_op **keep,
                      int n_keep)
{
    int n = 0;
    for (int i = 0; p->precision == MILK_CONVERT_FP16 && i < n_keep; i++)
        n += keep[i]->block != NULL && milk_block_index_of(keep[i]->block, keep[i]) >= 0;
    return n;
}

static int count_pass(const milk_rule_report *r, const char *pass)
{
    int n = 0;
    for (int i = 0; i < milk_rule_report_count(r); i++) {
        const milk_rule_hit *h = milk_rule_report_at(r, i);
        n += !h->rule && strcmp(h->pass, pass) == 0;
    }
    return n;
}

static void stats_fill(milk_cv *c, milk_convert_stats *st, const milk_rule_report *r)
{
    memset(st, 0, sizeof *st);
    st->onnx_nodes = c->m->graph.n_nodes;
    st->onnx_opset = c->opset;
    st->folded = c->n_folded + count_pass(r, "fold");
    st->int64_io = c->int64_io.n;
    snprintf(st->note, sizeof st->note, "%s", c->int64_io.text);
    st->bool_io = c->bool_io.n;
    snprintf(st->bool_note, sizeof st->bool_note, "%s", c->bool_io.text);
    st->scalar_io = c->scalar_io.n;
    snprintf(st->scalar_note, sizeof st->scalar_note, "%s", c->scalar_io.text);
    st->identity_outputs = c->identity_out.n;
    snprintf(st->identity_note, sizeof st->identity_note, "%s", c->identity_out.text);
    st->frozen = c->n_frozen;
    for (int i = 0; i < c->b->n_ops; i++) {
        const milk_op *op = c->b->ops[i];
        uint64_t nb = 0;
        if (op->kind != MILK_OP_const_) {
            st->mil_ops++;
            continue;
        }
        st->mil_consts++;
        if (milk_value_nbytes(op->val, &nb)) st->weight_bytes += nb;
    }
}

/* ---- passes ---------------------------------------------------------------------- */

/* The fix of every refuse rule that matched, once each, after the message. */
static milk_status refused(milk_cv *c, const milk_rule_options *o,
                           const milk_rule_report *r)
{
    char fixes[1024] = "";
    size_t k = 0;
    for (int i = 0; i < milk_rule_report_count(r) && k < sizeof fixes; i++) {
        const milk_rule_hit *h = milk_rule_report_at(r, i), *e = NULL;
        if (!h->rule || h->fixed || h->rule->action != MILK_RULE_REFUSE) continue;
        for (int j = 0; j < i && !e; j++)
            if (milk_rule_report_at(r, j)->rule == h->rule) e = milk_rule_report_at(r, j);
        if (!e)
            k += (size_t)snprintf(fixes + k, sizeof fixes - k, "; fix for %s: %s",
                                  h->pass, h->rule->fix);
    }
    char msg[2048];
    snprintf(msg, sizeof msg, "%s", milk_ctx_error(c->ctx));
    return milk_errorf(c->ctx, MILK_ERR_UNSUPPORTED, "%s: Core ML refuses the converted "
                       "program for target %s, compute units %s: %s%s", c->file,
                       milk_target_name(o->target), milk_compute_units_name(o->units),
                       msg, fixes);
}

/* The defect rules for the target and compute units: rewrites, warnings,
 * refusals (milk_rules_apply). */
static milk_status apply_rules(milk_cv *c, const milk_convert_params *p,
                               milk_rule_report *r)
{
    milk_rule_options o = {0};
    if (p->rules) o = *p->rules;
    o.target = c->p->target;
    milk_status s = milk_rules_apply(c->ctx, c->p, &o, r);
    if (s == MILK_ERR_UNSUPPORTED && milk_rule_report_unfixed(r, MILK_SEVERITY_ERROR))
        return refused(c, &o, r);
    if (s != MILK_OK) return milk_error_prefix(c->ctx, "%s", c->file);
    return MILK_OK;
}

static milk_status run_passes(milk_cv *c, const milk_convert_params *p,
                              milk_op **keep, int n_keep, milk_rule_report *r)
{
    MILK_TRY(milk_pass_dce(c->ctx, c->fn));
    if (p->precision == MILK_CONVERT_FP16)
        MILK_TRY(milk_pass_fp16_mixed(c->ctx, c->p, keep, n_keep));
    /* dead code (replaced consts, unused casts), identity-like ops, equal
     * constants, and what became constant */
    milk_status s = milk_program_simplify(c->ctx, c->p, MILK_SIMPLIFY_ALL, r);
    if (s != MILK_OK) return milk_error_prefix(c->ctx, "%s", c->file);
    if (c->states) { /* --state: inputs and outputs become states */
        s = milk_cv_states_finish(c);
        if (s == MILK_OK) s = milk_pass_dce(c->ctx, c->fn);
        if (s != MILK_OK) return milk_error_prefix(c->ctx, "%s", c->file);
    }
    MILK_TRY(apply_rules(c, p, r));
    MILK_TRY(check_io_dtypes(c));
    s = milk_program_check(c->ctx, c->p);
    if (s != MILK_OK)
        return milk_error_prefix(c->ctx, "%s: the converted program fails its "
                                 "check (a converter bug)", c->file);
    return MILK_OK;
}

/* Lower, then run the passes; hits go to r. */
static milk_status convert(milk_cv *c, const milk_convert_params *p,
                           milk_target target, milk_rule_report *r)
{
    MILK_TRY(check_opset(c));
    MILK_TRY(milk_program_create(c->ctx, target, &c->p));
    MILK_TRY(milk_program_add_function(c->ctx, c->p, "main", &c->fn));
    c->b = milk_function_block(c->fn);
    MILK_TRY(milk_cv_names_assign(c));
    milk_status s = milk_cv_inputs_add(c, p);
    if (s == MILK_OK) s = milk_cv_states_begin(c, p);
    if (s != MILK_OK) return milk_error_prefix(c->ctx, "%s", c->file);
    MILK_TRY(lower_nodes(c));
    s = milk_cv_outputs_add(c);
    if (s != MILK_OK) return milk_error_prefix(c->ctx, "%s", c->file);
    milk_op **keep = NULL;
    int n_keep = 0;
    MILK_TRY(milk_cv_keep_resolve(c, p->keep_fp32, p->n_keep_fp32, &keep, &n_keep));
    s = run_passes(c, p, keep, n_keep, r);
    if (s == MILK_OK && p->stats) {
        stats_fill(c, p->stats, r);
        milk_cv_states_stats(c, p->stats);
        p->stats->kept_fp32 = count_kept(c, p, keep, n_keep);
    }
    free(keep);
    return s;
}

/* Append the hits of `from` to `to` (the caller's report). */
static milk_status copy_hits(milk_ctx *ctx, const milk_rule_report *from,
                             milk_rule_report *to)
{
    for (int i = 0; to && i < milk_rule_report_count(from); i++) {
        const milk_rule_hit *h = milk_rule_report_at(from, i);
        MILK_TRY(milk_rule_report_add(ctx, to, h->rule, h->pass, h->function, h->op,
                                      h->op_type, h->detail, h->fixed, h->touched));
    }
    return MILK_OK;
}

static milk_status check_ids(milk_ctx *ctx, const char *const *ids, int n,
                             const char *opt)
{
    if (n < 0 || (n && !ids))
        return milk_errorf(ctx, MILK_ERR_INVALID_ARG, "bad %s list", opt);
    for (int i = 0; i < n; i++)
        if (!ids[i] || (!milk_rule_find(ids[i]) &&
                        !(strcmp(opt, "--disable-rule") == 0 && strcmp(ids[i], "all") == 0)))
            return milk_errorf(ctx, MILK_ERR_INVALID_ARG, "%s: unknown rule id '%s' "
                               "(milk lint --list-rules lists them)", opt,
                               ids[i] ? ids[i] : "(null)");
    return MILK_OK;
}

/* Checked before the model is read, so that a typo fails at once. */
static milk_status check_rule_options(milk_ctx *ctx, const milk_rule_options *o)
{
    if (!milk_compute_units_name(o->units))
        return milk_errorf(ctx, MILK_ERR_INVALID_ARG, "unknown compute units %d",
                           (int)o->units);
    if (o->precision != MILK_RULE_PRECISION_AS_DECLARED &&
        o->precision != MILK_RULE_PRECISION_FP16)
        return milk_errorf(ctx, MILK_ERR_INVALID_ARG, "unknown rule precision %d",
                           (int)o->precision);
    MILK_TRY(check_ids(ctx, o->enable, o->n_enable, "--enable-rule"));
    return check_ids(ctx, o->disable, o->n_disable, "--disable-rule");
}

/* The caller's frozen values are well formed (their names and types are
 * checked against the model later). */
static milk_status check_freeze(milk_ctx *ctx, const milk_convert_params *p)
{
    if (p->n_freeze < 0 || (p->n_freeze && !p->freeze))
        return milk_errorf(ctx, MILK_ERR_INVALID_ARG, "bad --freeze list");
    for (int i = 0; i < p->n_freeze; i++) {
        const milk_frozen_input *f = &p->freeze[i];
        int64_t n = milk_tensor_type_count(&f->type);
        if (!f->name || !f->name[0])
            return milk_errorf(ctx, MILK_ERR_INVALID_ARG, "--freeze: empty name");
        if (f->type.rank < 0 || f->type.rank > MILK_MAX_RANK || n < 0 ||
            (n > 0 && !f->data))
            return milk_errorf(ctx, MILK_ERR_INVALID_ARG, "--freeze '%s': bad "
                               "value (rank %d, %lld elements)", f->name,
                               (int)f->type.rank, (long long)n);
    }
    return MILK_OK;
}

static milk_status check_params(milk_ctx *ctx, const milk_convert_params *p,
                                milk_target *target)
{
    *target = p->target ? p->target : MILK_TARGET_IOS17;
    if (!milk_target_name(*target))
        return milk_errorf(ctx, MILK_ERR_INVALID_ARG, "unknown deployment "
                           "target %d (ios15 to ios18, ios26)", (int)p->target);
    if (p->precision != MILK_CONVERT_FP16 && p->precision != MILK_CONVERT_FP32)
        return milk_errorf(ctx, MILK_ERR_INVALID_ARG, "unknown precision %d",
                           (int)p->precision);
    if (p->n_input_shapes < 0 || (p->n_input_shapes && !p->input_shapes))
        return milk_errorf(ctx, MILK_ERR_INVALID_ARG, "bad input shape list");
    if (p->n_keep_fp32 < 0 || (p->n_keep_fp32 && !p->keep_fp32))
        return milk_errorf(ctx, MILK_ERR_INVALID_ARG, "bad --keep-fp32 list");
    for (int i = 0; i < p->n_keep_fp32; i++)
        if (!p->keep_fp32[i] || !p->keep_fp32[i][0])
            return milk_errorf(ctx, MILK_ERR_INVALID_ARG, "--keep-fp32: empty name");
    if (p->rules) MILK_TRY(check_rule_options(ctx, p->rules));
    MILK_TRY(check_freeze(ctx, p));
    for (int i = 0; i < p->n_input_shapes; i++) {
        const milk_input_shape *s = &p->input_shapes[i];
        if (s->rank < 1 || s->rank > MILK_MAX_RANK)
            return milk_errorf(ctx, MILK_ERR_INVALID_ARG, "input shape for '%s': "
                               "rank %d outside 1..%d", s->name, s->rank, MILK_MAX_RANK);
        for (int k = 0; k < s->rank; k++)
            if (s->dims[k] < 1 || s->dims[k] > INT32_MAX)
                return milk_errorf(ctx, MILK_ERR_INVALID_ARG, "input shape for "
                                   "'%s': dim %d is %lld", s->name, k,
                                   (long long)s->dims[k]);
    }
    return MILK_OK;
}

milk_status milk_onnx_convert(milk_ctx *ctx, const char *path,
                              const milk_convert_params *params,
                              milk_program **out)
{
    milk_convert_params dflt = {0};
    milk_target target;
    *out = NULL;
    if (!params) params = &dflt;
    MILK_TRY(check_params(ctx, params, &target));
    milk_onnx_model *m;
    MILK_TRY(milk_onnx_load(ctx, path, &m));
    milk_cv c = {.ctx = ctx, .m = m, .file = path, .a = milk_arena_create()};
    milk_rule_report *r = NULL;
    milk_status s = c.a ? milk_rule_report_create(ctx, &r)
                        : milk_errorf(ctx, MILK_ERR_NOMEM, "out of memory");
    if (s == MILK_OK) s = convert(&c, params, target, r);
    /* the hits are the caller's also when a refusal failed the conversion */
    if (r && params->report) {
        milk_status cs = copy_hits(ctx, r, params->report);
        if (cs != MILK_OK) s = cs;
    }
    milk_rule_report_free(r);
    milk_strmap_free(&c.by_onnx);
    milk_strmap_free(&c.taken);
    milk_arena_free(c.a);
    milk_onnx_free(m);
    if (s != MILK_OK) {
        milk_program_free(c.p);
        return s;
    }
    *out = c.p;
    return MILK_OK;
}

/* ---- input shapes ------------------------------------------------------------- */

milk_status milk_input_shape_parse(milk_ctx *ctx, const char *spec,
                                   milk_input_shape *out)
{
    memset(out, 0, sizeof *out);
    const char *eq = strrchr(spec, '=');
    if (!eq || eq == spec || (size_t)(eq - spec) >= sizeof out->name)
        return milk_errorf(ctx, MILK_ERR_INVALID_ARG, "input shape '%s': expected "
                           "NAME=d0,d1,... (e.g. x=1,3,224,224)", spec);
    memcpy(out->name, spec, (size_t)(eq - spec));
    for (const char *p = eq + 1;;) {
        char *end;
        long long d = strtoll(p, &end, 10);
        if (end == p || d < 1 || d > INT32_MAX || out->rank == MILK_MAX_RANK ||
            (*end && *end != ','))
            return milk_errorf(ctx, MILK_ERR_INVALID_ARG, "input shape '%s': "
                               "dims are 1 to %d positive integers separated by "
                               "commas", spec, MILK_MAX_RANK);
        out->dims[out->rank++] = d;
        if (!*end) break;
        p = end + 1;
    }
    return MILK_OK;
}
