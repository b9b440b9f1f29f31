/*
 * rules.h: the Core ML defect rule table (rules.def) and what its matchers
 * and rewrite passes share.
 *
 * A rule is one row of rules.def: the public description (milk.h's
 * milk_rule_info), its scope (hardware, deployment targets, precision), a
 * matcher and, for rules that rewrite, one pass function. The engine
 * (rules.c) walks every op of every function and calls the matcher of each
 * selected rule; a matcher that recognizes its pattern calls
 * milk_rule_matched() with the condition met. When fixing, the engine then
 * calls the rule's pass on that op. Matchers also get one call per
 * function with op == NULL, for conditions on the function's inputs and
 * outputs.
 *
 * Adding a rule: a row in rules.def, its matcher (and pass) in a
 * src/passes file, and a test.
 */
#ifndef MILK_RULES_H
#define MILK_RULES_H

#include "../ops/op.h"

#include <stdio.h>

/* Hardware a defect shows on, and the user's compute units as the same
 * bits. */
enum {
    MILK_HW_CPU = 1u,
    MILK_HW_GPU = 2u,
    MILK_HW_NE = 4u,
    MILK_HW_ANY = 7u,
};

/* The precision condition of a rule. */
enum {
    MILK_PREC_ANY = 0,           /* no condition */
    MILK_PREC_FP16 = 1,          /* the op computes in fp16: declared fp16,
                                    or the Neural Engine is targeted */
    MILK_PREC_FP16_DECLARED = 2, /* the op is declared fp16 */
};

typedef struct milk_rule_run milk_rule_run;

/* Called for every op (and once per function with op NULL); reports
 * matches with milk_rule_matched(). Must not change the program. */
typedef void (*milk_rule_match_fn)(milk_rule_run *rr, const milk_op *op);
/* Rewrites the op (NULL: the function) the matcher reported, or declines
 * with milk_fix_decline() and changes nothing. */
typedef milk_status (*milk_rule_fix_fn)(milk_rule_run *rr, milk_op *op);

typedef struct milk_rule {
    milk_rule_info info;
    unsigned hw;             /* MILK_HW_* bits the defect concerns */
    milk_target min_target;  /* 0: no lower bound */
    milk_target max_target;  /* 0: no upper bound */
    int prec;                /* MILK_PREC_* */
    milk_rule_match_fn match;
    milk_rule_fix_fn fix;    /* NULL unless the action is rewrite */
} milk_rule;

extern const milk_rule milk_rules[];
extern const int milk_n_rules;

/* The state of one rule's run over one function. */
struct milk_rule_run {
    milk_ctx *ctx;
    milk_program *p;
    milk_function *fn;
    const milk_rule *rule;
    bool forced;             /* enabled by id: scope conditions are true */
    unsigned hw;             /* the user's compute units (MILK_HW_*) */
    milk_target target;
    milk_rule_precision precision;
    /* Where milk_rule_matched() sends a match. */
    void (*sink)(milk_rule_run *rr, const milk_op *op, const char *detail);
    void *user;
    milk_status err;         /* a failure inside the sink (out of memory) */
    /* While fixing: the ops a pass creates, and why it declined. */
    char touched[1024];
    char declined[256];
};

/* ---- for matchers (rules.c) ---------------------------------------------- */

/* Report a match of rr->rule at op (NULL: the function), with the
 * condition met as printf text. */
void milk_rule_matched(milk_rule_run *rr, const milk_op *op, const char *fmt, ...)
    MILK_PRINTF(3, 4);
/* True if an op of dtype dt computes in fp16 as the rule's precision
 * condition reads it (always true for a rule enabled by id). */
bool milk_rule_fp16(const milk_rule_run *rr, milk_dtype dt);
/* True if op is of the MIL type `type`. */
bool milk_rule_is(const milk_op *op, const char *type);
/* The op producing the var bound to param (NULL if none or inline). */
const milk_op *milk_rule_producer(const milk_op *op, const char *param);
/* Shape as "[1, 64, 50]" into buf. */
const char *milk_rule_shape(const milk_tensor_type *t, char *buf, size_t n);

/* Append a hit to a report (strings are copied). */
milk_status milk_rule_report_add(milk_ctx *ctx, milk_rule_report *r,
                                 const milk_rule_info *rule, const char *pass,
                                 const char *function, const char *op,
                                 const char *op_type, const char *detail,
                                 int fixed, const char *touched);

/* ---- for passes (fix_common.c) ------------------------------------------ */

/* Decline to rewrite this instance, saying why; the pass then returns
 * MILK_OK without having changed anything. */
void milk_fix_decline(milk_rule_run *rr, const char *fmt, ...)
    MILK_PRINTF(2, 3);
/* Add a line to the record of what the rewrite touched (ops made and
 * removed are recorded by the helpers below; this is for changes in
 * place). */
void milk_fix_note(milk_rule_run *rr, const char *fmt, ...) MILK_PRINTF(2, 3);
/* Insert an op of `type` at index `index` of block b, named after base
 * with a fresh name; its output 0 in *out (may be NULL). Recorded. */
milk_status milk_fix_op_in(milk_rule_run *rr, milk_block *b, int index,
                           const char *type, const char *base,
                           const milk_input *in, int n, milk_var **out);
/* Insert an op of `type` just before `at` (in at's block), named after
 * base with a fresh name, and return its output i = 0 in *out. The op is
 * recorded as created. */
milk_status milk_fix_op(milk_rule_run *rr, milk_op *at, const char *type,
                        const char *base, const milk_input *in, int n,
                        milk_var **out);
/* Consts inserted just before `at`, named after base. */
milk_status milk_fix_const(milk_rule_run *rr, milk_op *at, const char *base,
                           const milk_tensor_type *t, const void *data,
                           milk_var **out);
/* A const holding val (arena memory, kept as is). */
milk_status milk_fix_const_value(milk_rule_run *rr, milk_op *at,
                                 const char *base, milk_value *val,
                                 milk_var **out);
milk_status milk_fix_ints(milk_rule_run *rr, milk_op *at, const char *base,
                          const int64_t *v, int n, milk_var **out);
milk_status milk_fix_int(milk_rule_run *rr, milk_op *at, const char *base,
                         int64_t v, milk_var **out);
milk_status milk_fix_bools(milk_rule_run *rr, milk_op *at, const char *base,
                           const bool *v, int n, milk_var **out);
milk_status milk_fix_bool(milk_rule_run *rr, milk_op *at, const char *base,
                          bool v, milk_var **out);
/* A scalar float of dtype dt (fp16 or fp32). */
milk_status milk_fix_float(milk_rule_run *rr, milk_op *at, const char *base,
                           milk_dtype dt, double v, milk_var **out);
milk_status milk_fix_string(milk_rule_run *rr, milk_op *at, const char *base,
                            const char *v, milk_var **out);
/* The var bound to param (binding 0); an inline value is turned into a
 * const before `op`. *out is NULL if param is absent. */
milk_status milk_fix_param(milk_rule_run *rr, milk_op *op, const char *param,
                           milk_var **out);
/* Bind param of op (binding 0) to var, replacing any binding. Does not
 * re-infer. */
milk_status milk_fix_rebind(milk_rule_run *rr, milk_op *op, const char *param,
                            milk_var *var);
/* Remove param from op. */
void milk_fix_unbind(milk_op *op, const char *param);
/* Replace old (a single-output op) by the var `now`: every use of old's
 * output refers to now, old is removed, and now and its producer take
 * old's var and op names so that model outputs keep their names. */
milk_status milk_fix_replace(milk_rule_run *rr, milk_op *old, milk_var *now);
/* Inputs for a new op copying op's single-binding params except those in
 * skip (NULL-terminated): up to cap entries appended to in[*n]. */
milk_status milk_fix_copy_args(milk_rule_run *rr, milk_op *op,
                               const char *const *skip, milk_input *in,
                               int *n, int cap);
/* Read a constant param (an int vector) with its default when absent. */
milk_status milk_fix_read_ints(milk_rule_run *rr, const milk_op *op,
                               const char *param, int n, int64_t dflt,
                               int64_t *v);

/* ---- matchers and passes of the table (rules.def) ------------------------ */

#define MILK_RULE(ident, id, cat, hw, tmin, tmax, prec, act, sev, match, fix, \
                  cond, scope, src, sugg, note)                              \
    void match(milk_rule_run *rr, const milk_op *op);
#include "rules.def"
#undef MILK_RULE

milk_status milk_fix_convt1d_bias(milk_rule_run *rr, milk_op *op);
milk_status milk_fix_convt_normalize(milk_rule_run *rr, milk_op *op);
milk_status milk_fix_conv_explicit_pad(milk_rule_run *rr, milk_op *op);
milk_status milk_fix_required_optional(milk_rule_run *rr, milk_op *op);
milk_status milk_fix_same_without_pad(milk_rule_run *rr, milk_op *op);
milk_status milk_fix_same_lower(milk_rule_run *rr, milk_op *op);
milk_status milk_fix_softplus(milk_rule_run *rr, milk_op *op);
milk_status milk_fix_logsumexp(milk_rule_run *rr, milk_op *op);
milk_status milk_fix_logsoftmax(milk_rule_run *rr, milk_op *op);
milk_status milk_fix_mask_sentinel(milk_rule_run *rr, milk_op *op);
milk_status milk_fix_sdpa_decompose(milk_rule_run *rr, milk_op *op);
milk_status milk_fix_slice_fp16(milk_rule_run *rr, milk_op *op);
milk_status milk_fix_slice_to_zero(milk_rule_run *rr, milk_op *op);
milk_status milk_fix_prelu_scalar(milk_rule_run *rr, milk_op *op);
milk_status milk_fix_gather_scalar(milk_rule_run *rr, milk_op *op);
milk_status milk_fix_names(milk_rule_run *rr, milk_op *op);
milk_status milk_fix_io_types(milk_rule_run *rr, milk_op *op);
milk_status milk_fix_state_align32(milk_rule_run *rr, milk_op *op);
milk_status milk_fix_io_int8(milk_rule_run *rr, milk_op *op);

/* The clamp value of fp16-mask-sentinel. */
#define MILK_MASK_SAFE (-1.0e4)

#endif /* MILK_RULES_H */
