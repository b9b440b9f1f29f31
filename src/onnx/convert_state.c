/* convert_state.c: `milk convert --state IN=OUT`: a KV cache exported to
 * ONNX as a graph input and the updated cache as a graph output becomes
 * one Core ML state (iOS18), read at the start of the function and
 * written at its end.
 *
 * ONNX has no states: a decoder exported with a static cache takes the
 * cache as an input and returns the cache with the new position written,
 * with ScatterND (PyTorch's cache[:, :, pos] = k), ScatterElements
 * (cache.scatter(2, idx, k)) or a Slice-and-Concat of the same length
 * (cat([cache[:, :, :pos], k, cache[:, :, pos + 1:]])). Such a write is
 * lowered into one slice_update at a run-time begin. That is only right
 * if the write is a contiguous block whose order is the update's, which
 * the converter proves by evaluating the write's indices (a subgraph of
 * the lowered program, run by the interpreter) for every position the
 * position input can take inside the cache. A write it cannot prove is
 * refused, naming why. Other ways of computing OUT from IN need no
 * rewrite: the state is written with OUT's value whatever computed it.
 *
 * A growing cache (present = Concat(past, new)) cannot be a state, whose
 * shape is fixed: it is refused with that explanation.
 *
 * ScatterND and ScatterElements are lowered here only as cache writes;
 * their general lowerings belong to the lowering table. */
#include "convert.h"
#include "../run/run.h"

#include <stdio.h>
#include <stdlib.h>

/* How OUT is computed from IN. */
typedef enum write_kind {
    WRITE_OTHER = 0,     /* anything else: the state takes OUT's value */
    WRITE_SCATTER_ND,    /* ScatterND(IN, indices, updates) */
    WRITE_SCATTER_ELEMS, /* ScatterElements(IN, indices, updates, axis) */
    WRITE_SLICE_CONCAT,  /* Concat(Slice(IN, :p), U, Slice(IN, p+L:)) */
} write_kind;

typedef struct state_pair {
    const char *in, *out;          /* ONNX names */
    milk_cv_value *vin, *vout;
    const milk_onnx_node *write;   /* the node computing OUT, if a write */
    write_kind kind;
    const milk_onnx_node *slices[2]; /* WRITE_SLICE_CONCAT: not lowered */
    int axis;                      /* WRITE_SCATTER_ELEMS, _SLICE_CONCAT */
} state_pair;

struct milk_cv_states {
    int n;
    state_pair *pairs;
    milk_cv_note note;             /* "k_in=k_out (ScatterND)", ... */
};

static milk_status nomem(milk_cv *c)
{
    return milk_errorf(c->ctx, MILK_ERR_NOMEM, "out of memory");
}

/* ---- finding the pairs -------------------------------------------------------- */

static const milk_onnx_node *producer(const milk_onnx_graph *g, const char *t)
{
    for (int i = 0; i < g->n_nodes; i++)
        for (int k = 0; k < g->nodes[i].n_outputs; k++)
            if (strcmp(g->nodes[i].outputs[k], t) == 0) return &g->nodes[i];
    return NULL;
}

static const milk_onnx_value_info *graph_io(const milk_onnx_value_info *v, int n,
                                            const char *name)
{
    for (int i = 0; i < n; i++)
        if (strcmp(v[i].name, name) == 0) return &v[i];
    return NULL;
}

static bool is(const milk_onnx_node *n, const char *op)
{
    return n && strcmp(n->op_type, op) == 0 && (!n->domain[0] || strcmp(n->domain, "ai.onnx") == 0);
}

static const char *input_of(const milk_onnx_node *n, int i)
{
    return i < n->n_inputs ? n->inputs[i] : "";
}

/* A Slice of IN (data = IN). */
static bool slice_of(const milk_onnx_graph *g, const char *t, const char *in,
                     const milk_onnx_node **s)
{
    *s = producer(g, t);
    return is(*s, "Slice") && strcmp(input_of(*s, 0), in) == 0;
}

/* "[1, 2, ?, 16]" of an ONNX value. */
static void dims_str(const milk_onnx_value_info *v, char *buf, size_t n)
{
    size_t k = (size_t)snprintf(buf, n, "[");
    for (int i = 0; v && i < v->rank && k < n; i++)
        k += (size_t)(v->dims[i].value >= 0
                          ? snprintf(buf + k, n - k, "%s%lld", i ? ", " : "",
                                     (long long)v->dims[i].value)
                          : snprintf(buf + k, n - k, "%s?", i ? ", " : ""));
    if (k < n) snprintf(buf + k, n - k, "]");
}

/* OUT = Concat(..., IN or a slice of it, ...) that is longer than IN: the
 * cache grows every step. */
static milk_status growing(milk_cv *c, const state_pair *sp,
                           const milk_onnx_node *n)
{
    const milk_onnx_graph *g = &c->m->graph;
    bool reads_in = false;
    const milk_onnx_node *s;
    for (int i = 0; i < n->n_inputs; i++)
        reads_in |= strcmp(n->inputs[i], sp->in) == 0 || slice_of(g, n->inputs[i], sp->in, &s);
    int64_t axis = 0;
    const milk_onnx_attr *a = milk_onnx_node_attr(n, "axis");
    if (a) axis = a->i;
    if (!reads_in || n->n_inputs != 2) return MILK_OK;
    return milk_errorf(c->ctx, MILK_ERR_UNSUPPORTED,
                       "--state %s=%s: '%s' is Concat('%s', '%s') along axis %lld: "
                       "a growing cache, one longer at every step. A Core ML "
                       "state has one fixed shape, read and written in place: "
                       "export the model with a static cache (a buffer of the "
                       "largest length, written at a position input with "
                       "ScatterND, ScatterElements or index_copy, and attention "
                       "masked past the position), and pair that",
                       sp->in, sp->out, sp->out, n->inputs[0], n->inputs[1],
                       (long long)axis);
}

/* What computes OUT, and whether it is a write into IN this file lowers. */
static milk_status recognize(milk_cv *c, state_pair *sp)
{
    const milk_onnx_graph *g = &c->m->graph;
    const milk_onnx_node *n = producer(g, sp->out);
    if (!n) return MILK_OK; /* OUT is IN itself: a read-only state */
    if (is(n, "Concat")) MILK_TRY(growing(c, sp, n));
    if ((is(n, "ScatterND") || is(n, "ScatterElements")) &&
        strcmp(input_of(n, 0), sp->in) == 0 && n->n_inputs == 3) {
        const milk_onnx_attr *r = milk_onnx_node_attr(n, "reduction");
        if (r && r->s && strcmp(r->s, "none") != 0)
            return milk_errorf(c->ctx, MILK_ERR_UNSUPPORTED,
                               "--state %s=%s: %s node '%s' has reduction '%s': "
                               "only plain writes (reduction 'none') become "
                               "slice_update",
                               sp->in, sp->out, n->op_type, n->name, r->s);
        sp->write = n;
        sp->kind = is(n, "ScatterND") ? WRITE_SCATTER_ND : WRITE_SCATTER_ELEMS;
        return MILK_OK;
    }
    if (is(n, "Concat") && n->n_inputs == 3 &&
        slice_of(g, n->inputs[0], sp->in, &sp->slices[0]) &&
        slice_of(g, n->inputs[2], sp->in, &sp->slices[1])) {
        sp->write = n;
        sp->kind = WRITE_SLICE_CONCAT;
    }
    return MILK_OK;
}

/* IN a float graph input, OUT a graph output of the same type. */
static milk_status check_pair(milk_cv *c, state_pair *sp)
{
    const milk_onnx_graph *g = &c->m->graph;
    const milk_onnx_value_info *vi = graph_io(g->inputs, g->n_inputs, sp->in);
    const milk_onnx_value_info *vo = graph_io(g->outputs, g->n_outputs, sp->out);
    if (!vi || !(sp->vin = milk_cv_value_get(c, sp->in)) || !sp->vin->var)
        return milk_errorf(c->ctx, MILK_ERR_INVALID_ARG,
                           "--state %s=%s: '%s' is not a graph input%s", sp->in,
                           sp->out, sp->in, vi ? " left (it is frozen)" : "");
    if (!vo || !(sp->vout = milk_cv_value_get(c, sp->out)))
        return milk_errorf(c->ctx, MILK_ERR_INVALID_ARG,
                           "--state %s=%s: '%s' is not a graph output", sp->in,
                           sp->out, sp->out);
    const milk_tensor_type *t = &sp->vin->var->type;
    if (t->dtype != MILK_DTYPE_FP32 && t->dtype != MILK_DTYPE_FP16)
        return milk_errorf(c->ctx, MILK_ERR_UNSUPPORTED,
                           "--state %s=%s: '%s' is %s: Core ML states are fp16, "
                           "so a cache must be float or float16",
                           sp->in, sp->out, sp->in, milk_dtype_name(t->dtype));
    bool same = vo->kind == MILK_ONNX_VALUE_TENSOR && vo->elem_type == vi->elem_type &&
                (vo->rank < 0 || vo->rank == t->rank);
    for (int i = 0; same && vo->rank >= 0 && i < vo->rank; i++)
        same = vo->dims[i].value < 0 || vo->dims[i].value == t->dims[i];
    if (!same) {
        char a[160], b[160];
        milk_onnx_value_info in_now = *vi;
        for (int i = 0; i < t->rank; i++) in_now.dims[i].value = t->dims[i];
        dims_str(&in_now, a, sizeof a);
        dims_str(vo, b, sizeof b);
        const char *da = milk_onnx_dtype_name(vi->elem_type), *db = milk_onnx_dtype_name(vo->elem_type);
        const milk_onnx_node *n = producer(g, sp->out);
        if (n && is(n, "Concat")) MILK_TRY(growing(c, sp, n));
        return milk_errorf(c->ctx, MILK_ERR_INVALID_ARG,
                           "--state %s=%s: input '%s' is %s %s, output '%s' is "
                           "%s %s: a state is one tensor read and written, so "
                           "the pair must have the same shape and type",
                           sp->in, sp->out, sp->in, da ? da : "?", a, sp->out,
                           db ? db : "?", b);
    }
    return recognize(c, sp);
}

milk_status milk_cv_states_begin(milk_cv *c, const milk_convert_params *p)
{
    if (!p->n_states) return MILK_OK;
    if (p->n_states < 0 || !p->states)
        return milk_errorf(c->ctx, MILK_ERR_INVALID_ARG, "bad list of state pairs");
    if (c->p->target < MILK_TARGET_IOS18)
        return milk_errorf(c->ctx, MILK_ERR_UNSUPPORTED,
                           "--state: Core ML states need deployment target iOS18 "
                           "or later (--target ios18); the conversion targets %s",
                           milk_target_name(c->p->target));
    struct milk_cv_states *st = milk_arena_alloc(c->a, sizeof *st);
    state_pair *pairs = milk_arena_alloc(c->a, (size_t)p->n_states * sizeof *pairs);
    if (!st || !pairs) return nomem(c);
    st->pairs = pairs;
    c->states = st;
    for (int i = 0; i < p->n_states; i++) {
        state_pair *sp = &pairs[i];
        sp->in = p->states[i].input;
        sp->out = p->states[i].output;
        if (!sp->in || !sp->out || !sp->in[0] || !sp->out[0])
            return milk_errorf(c->ctx, MILK_ERR_INVALID_ARG,
                               "--state: expected INPUT=OUTPUT");
        for (int k = 0; k < i; k++)
            if (!strcmp(pairs[k].in, sp->in) || !strcmp(pairs[k].out, sp->out))
                return milk_errorf(c->ctx, MILK_ERR_INVALID_ARG,
                                   "--state %s=%s: '%s' is already paired", sp->in,
                                   sp->out, strcmp(pairs[k].in, sp->in) ? sp->out : sp->in);
        MILK_TRY(check_pair(c, sp));
        st->n++;
    }
    return MILK_OK;
}

/* ---- proving a write contiguous ---------------------------------------------- */

/* Values of var v (an integer tensor computed from at most one integer
 * graph input of one element, the position) for position p, through a
 * program holding just the ops v depends on. */
typedef struct probe {
    milk_cv *c;
    const char *what;     /* "the indices of ScatterND node 'x'", messages */
    const milk_var *v;
    milk_program *sub;    /* NULL when v is a constant */
    milk_runner *r;
    const char *pos;      /* the position input, NULL if none */
    milk_tensor_type pos_type;
    int64_t n;            /* elements of v */
    int32_t *val;         /* v's values for the last position */
} probe;

/* The earliest non-const op v depends on (block order). */
static const milk_op *earliest(const milk_function *f, const milk_var *v)
{
    bool *need = calloc((size_t)f->n_vars + 1, sizeof *need);
    const milk_op *first = v->producer;
    if (!need) return first;
    need[v->id] = true;
    for (int i = f->block->n_ops - 1; i >= 0; i--) {
        const milk_op *op = f->block->ops[i];
        bool used = false;
        for (int k = 0; k < op->n_outputs; k++) used |= need[op->outputs[k]->id];
        if (!used || op->kind == MILK_OP_const_) continue;
        first = op;
        for (int a = 0; a < op->n_args; a++)
            for (int j = 0; j < op->args[a].n; j++)
                if (op->args[a].b[j].var) need[op->args[a].b[j].var->id] = true;
    }
    free(need);
    return first;
}

static milk_status probe_open(milk_cv *c, probe *pr, const milk_var *v)
{
    pr->c = c;
    pr->v = v;
    pr->n = milk_tensor_type_count(&v->type);
    if (pr->n <= 0 || pr->n > (1 << 20) || v->type.dtype != MILK_DTYPE_INT32)
        return milk_errorf(c->ctx, MILK_ERR_UNSUPPORTED,
                           "%s: %s of %lld elements cannot be checked",
                           pr->what, milk_dtype_name(v->type.dtype), (long long)pr->n);
    if (!(pr->val = malloc((size_t)pr->n * sizeof *pr->val))) return nomem(c);
    const milk_value *k = milk_var_const(v);
    if (k) {
        for (int64_t i = 0; i < pr->n; i++) {
            int64_t x;
            MILK_TRY(milk_value_get_i64(c->ctx, k, i, &x));
            pr->val[i] = (int32_t)x;
        }
        return MILK_OK;
    }
    if (!v->producer)
        return milk_errorf(c->ctx, MILK_ERR_UNSUPPORTED,
                           "%s are the graph input '%s': milk proves a cache "
                           "write from the way its indices are computed from a "
                           "position", pr->what, v->name);
    milk_extract_params ep = {NULL, earliest(c->fn, v)->name, v->producer->name, 0, NULL};
    MILK_TRY(milk_program_extract(c->ctx, c->p, &ep, &pr->sub));
    const milk_function *f = milk_program_function(pr->sub, "main");
    for (int i = 0; i < f->n_inputs; i++) {
        const milk_var *in = f->inputs[i];
        int64_t n = milk_tensor_type_count(&in->type);
        if (pr->pos || in->type.dtype != MILK_DTYPE_INT32 || n != 1)
            return milk_errorf(c->ctx, MILK_ERR_UNSUPPORTED,
                               "%s depend on '%s' (%s of %lld elements)%s: milk "
                               "proves a cache write by evaluating it at every "
                               "position of one integer position input",
                               pr->what, in->name, milk_dtype_name(in->type.dtype),
                               (long long)n, pr->pos ? " beside the position" : "");
        pr->pos = in->name;
        pr->pos_type = in->type;
    }
    milk_run_params rp = {0};
    rp.reference = 1;
    return milk_runner_create(c->ctx, pr->sub, &rp, &pr->r);
}

static milk_status probe_at(probe *pr, int32_t p)
{
    if (!pr->sub) return MILK_OK;
    if (pr->pos) MILK_TRY(milk_runner_set_input(pr->c->ctx, pr->r, pr->pos, &pr->pos_type, &p));
    MILK_TRY(milk_runner_run(pr->c->ctx, pr->r));
    return milk_runner_read(pr->c->ctx, pr->r, pr->v->name, MILK_DTYPE_INT32, pr->val,
                            (size_t)pr->n * sizeof *pr->val);
}

static void probe_close(probe *pr)
{
    milk_runner_free(pr->r);
    milk_program_free(pr->sub);
    free(pr->val);
    memset(pr, 0, sizeof *pr);
}

/* Positions to try: every value the position input can take inside the
 * cache (0 .. the largest dim - 1); one run when nothing varies. */
static int32_t positions(const probe *pr, const milk_tensor_type *data)
{
    int64_t n = 1;
    for (int i = 0; pr->pos && i < data->rank; i++)
        if (data->dims[i] > n) n = data->dims[i];
    return (int32_t)(n > 65536 ? 65536 : n);
}

/* The box a write covers: begin (for the first position that writes
 * inside the cache) and the size, the same for every position. */
typedef struct box {
    int rank;
    int64_t size[MILK_MAX_RANK];
    int valid;            /* positions that write inside the cache */
} box;

static milk_status not_contiguous(milk_cv *c, const state_pair *sp, int32_t p,
                                  const char *why)
{
    return milk_errorf(c->ctx, MILK_ERR_UNSUPPORTED,
                       "--state %s=%s: %s node '%s' at position %d: %s; milk "
                       "writes a state with slice_update, one contiguous block "
                       "in the update's order",
                       sp->in, sp->out, sp->write->op_type, sp->write->name, (int)p, why);
}

/* ScatterND: the index tuples, row-major, must enumerate a box in
 * row-major order; k = tuple length. */
static milk_status nd_box(milk_cv *c, const state_pair *sp, const probe *pr,
                          const milk_tensor_type *data, int32_t p, int k,
                          box *b, bool *valid)
{
    int64_t t = pr->n / k, lo[MILK_MAX_RANK], hi[MILK_MAX_RANK], size[MILK_MAX_RANK];
    *valid = true;
    for (int j = 0; j < k; j++) lo[j] = INT64_MAX, hi[j] = INT64_MIN;
    for (int64_t i = 0; i < t; i++)
        for (int j = 0; j < k; j++) {
            int64_t x = pr->val[i * k + j];
            if (x < 0 || x >= data->dims[j]) *valid = false;
            lo[j] = x < lo[j] ? x : lo[j];
            hi[j] = x > hi[j] ? x : hi[j];
        }
    if (!*valid) return MILK_OK;
    int64_t count = 1;
    for (int j = 0; j < k; j++) count *= size[j] = hi[j] - lo[j] + 1;
    if (count != t) return not_contiguous(c, sp, p, "its indices do not fill a block");
    for (int64_t i = 0; i < t; i++) {
        int64_t rest = i;
        for (int j = k - 1; j >= 0; j--) {
            if (pr->val[i * k + j] != lo[j] + rest % size[j])
                return not_contiguous(c, sp, p, "its indices are not in row-major order");
            rest /= size[j];
        }
    }
    for (int j = 0; j < k; j++) {
        if (b->valid && b->size[j] != size[j])
            return not_contiguous(c, sp, p, "the block's size depends on the position");
        b->size[j] = size[j];
    }
    for (int j = k; j < data->rank; j++) b->size[j] = data->dims[j];
    b->rank = data->rank;
    return MILK_OK;
}

/* ScatterElements along axis a: I[i] = c + i_a, and update's other dims
 * inside the cache's. */
static milk_status elems_box(milk_cv *c, const state_pair *sp, const probe *pr,
                             const milk_tensor_type *data, const milk_tensor_type *u,
                             int32_t p, box *b, bool *valid)
{
    int a = sp->axis, r = u->rank;
    int64_t idx[MILK_MAX_RANK] = {0}, c0 = pr->val[0];
    *valid = c0 >= 0 && c0 + u->dims[a] <= data->dims[a];
    if (!*valid) return MILK_OK;
    for (int j = 0; j < r; j++)
        if (u->dims[j] > data->dims[j])
            return not_contiguous(c, sp, p, "its update is larger than the cache");
    for (int64_t i = 0; i < pr->n; i++) {
        if (pr->val[i] != c0 + idx[a])
            return not_contiguous(c, sp, p, "its indices are not position + offset along the axis");
        for (int j = r - 1; j >= 0 && ++idx[j] == u->dims[j]; j--) idx[j] = 0;
    }
    b->rank = r;
    for (int j = 0; j < r; j++) b->size[j] = u->dims[j];
    return MILK_OK;
}

/* ---- lowering the write -------------------------------------------------------- */

static milk_status emit_int_const(milk_cv *c, const char *what, const int64_t *v,
                                  int n, milk_var **out)
{
    int32_t buf[MILK_MAX_RANK];
    for (int i = 0; i < n; i++) buf[i] = (int32_t)v[i];
    milk_tensor_type t = {MILK_DTYPE_INT32, 1, {n}};
    return milk_cv_const(c, milk_cv_tmp(c, what), &t, buf, out);
}

/* begin (int32 [rank]): `at` (int32, its first k elements used) at dims
 * [from, from + k), zeros elsewhere. */
static milk_status emit_begin(milk_cv *c, milk_var *at, int k, int from, int rank,
                              milk_var **out)
{
    int64_t zero[MILK_MAX_RANK] = {0}, one[MILK_MAX_RANK], end[MILK_MAX_RANK];
    int r = at->type.rank;
    for (int i = 0; i < r; i++) one[i] = 1;
    one[r - 1] = k;
    milk_var *b0, *e0, *first, *parts[3];
    MILK_TRY(emit_int_const(c, "first_begin", zero, r, &b0));
    MILK_TRY(emit_int_const(c, "first_end", one, r, &e0));
    milk_cv_op o;
    milk_cv_op_begin(&o, c, "slice_by_index", milk_cv_tmp(c, "first"));
    milk_cv_arg(&o, "x", at);
    milk_cv_arg(&o, "begin", b0);
    milk_cv_arg(&o, "end", e0);
    MILK_TRY(milk_cv_op_end(&o, &first));
    end[0] = k;
    MILK_TRY(milk_cv_reshape(c, milk_cv_tmp(c, "at"), first, 1, end, &first));
    int n = 0;
    if (from) MILK_TRY(emit_int_const(c, "lead", zero, from, &parts[n++]));
    parts[n++] = first;
    if (rank - from - k) MILK_TRY(emit_int_const(c, "tail", zero, rank - from - k, &parts[n++]));
    if (n == 1) {
        *out = first;
        return MILK_OK;
    }
    milk_cv_op_begin(&o, c, "concat", milk_cv_tmp(c, "begin"));
    for (int i = 0; i < n; i++) milk_cv_arg(&o, "values", parts[i]);
    milk_cv_arg_int(&o, "axis", 0);
    return milk_cv_op_end(&o, out);
}

/* OUT = slice_update(IN, update reshaped to the box, begin, begin + box). */
static milk_status emit_update(milk_cv *c, milk_var *x, milk_var *u, milk_var *begin,
                               const box *b)
{
    milk_var *size, *end, *out;
    MILK_TRY(emit_int_const(c, "size", b->size, b->rank, &size));
    milk_cv_op o;
    milk_cv_op_begin(&o, c, "add", milk_cv_tmp(c, "end"));
    milk_cv_arg(&o, "x", begin);
    milk_cv_arg(&o, "y", size);
    MILK_TRY(milk_cv_op_end(&o, &end));
    bool same = u->type.rank == b->rank;
    for (int i = 0; same && i < b->rank; i++) same = u->type.dims[i] == b->size[i];
    if (!same) MILK_TRY(milk_cv_reshape(c, milk_cv_tmp(c, "update"), u, b->rank, b->size, &u));
    if (u->type.dtype != x->type.dtype)
        MILK_TRY(milk_cv_cast(c, milk_cv_tmp(c, "update_cast"), u, x->type.dtype, &u));
    milk_cv_op_begin(&o, c, "slice_update", milk_cv_out(c, 0));
    milk_cv_arg(&o, "x", x);
    milk_cv_arg(&o, "update", u);
    milk_cv_arg(&o, "begin", begin);
    milk_cv_arg(&o, "end", end);
    MILK_TRY(milk_cv_op_end(&o, &out));
    return milk_cv_set_out(c, 0, out);
}

/* Evaluate `pr` at every position and find the box; *first is a position
 * that writes inside the cache. */
static milk_status scan(milk_cv *c, const state_pair *sp, probe *pr,
                        const milk_tensor_type *data, const milk_tensor_type *u,
                        int k, box *b)
{
    int32_t n = positions(pr, data);
    for (int32_t p = 0; p < n; p++) {
        bool valid = false;
        MILK_TRY(probe_at(pr, p));
        if (sp->kind == WRITE_SCATTER_ND) MILK_TRY(nd_box(c, sp, pr, data, p, k, b, &valid));
        else MILK_TRY(elems_box(c, sp, pr, data, u, p, b, &valid));
        b->valid += valid;
    }
    if (!b->valid)
        return milk_errorf(c->ctx, MILK_ERR_UNSUPPORTED,
                           "--state %s=%s: %s node '%s' writes outside the cache "
                           "at every position 0..%d", sp->in, sp->out,
                           sp->write->op_type, sp->write->name, (int)n - 1);
    return MILK_OK;
}

static milk_status lower_scatter(milk_cv *c, state_pair *sp)
{
    milk_var *x, *idx, *u, *begin;
    MILK_TRY(milk_cv_input(c, 0, &x));
    MILK_TRY(milk_cv_input(c, 1, &idx));
    MILK_TRY(milk_cv_input(c, 2, &u));
    const milk_tensor_type *data = &x->type;
    char what[400];
    snprintf(what, sizeof what, "--state %s=%s: the indices of %s node '%s'", sp->in,
             sp->out, sp->write->op_type, sp->write->name);
    probe pr = {.what = what};
    box b = {0};
    int k = 1, from = 0;
    milk_status s = MILK_OK;
    if (sp->kind == WRITE_SCATTER_ND) {
        k = idx->type.rank >= 1 ? (int)idx->type.dims[idx->type.rank - 1] : 0;
        if (k < 1 || k > data->rank)
            s = milk_cv_unsupported(c, "indices of last dimension %d for data of rank %d", k,
                                    data->rank);
    } else {
        int64_t axis;
        s = milk_cv_attr_int(c, "axis", 0, &axis);
        int ax = 0;
        if (s == MILK_OK) s = milk_cv_axis(c, "axis", axis, data->rank, &ax);
        sp->axis = from = ax;
        if (s == MILK_OK && (idx->type.rank != u->type.rank || u->type.rank != data->rank))
            s = milk_cv_unsupported(c, "indices and updates must have the data's rank");
    }
    if (s == MILK_OK) s = probe_open(c, &pr, idx);
    if (s == MILK_OK) s = scan(c, sp, &pr, data, &u->type, k, &b);
    probe_close(&pr);
    MILK_TRY(s);
    MILK_TRY(emit_begin(c, idx, k, from, data->rank, &begin));
    return emit_update(c, x, u, begin, &b);
}

/* Concat(Slice(IN, 0, e), U, Slice(IN, s, end)) along axis a, with s = e
 * + U's length at every position and the slices spanning the rest. */
static milk_status lower_slice_concat(milk_cv *c, state_pair *sp)
{
    milk_var *x, *u, *e, *st, *begin;
    MILK_TRY(milk_cv_value_var(c, sp->vin, &x));
    MILK_TRY(milk_cv_input(c, 1, &u));
    int64_t axis;
    MILK_TRY(milk_cv_attr_int(c, "axis", 0, &axis));
    MILK_TRY(milk_cv_axis(c, "axis", axis, x->type.rank, &sp->axis));
    int a = sp->axis;
    /* the slices: one axis (a), step 1, the first from 0, the second to the end */
    for (int i = 0; i < 2; i++) {
        const milk_onnx_node *sl = sp->slices[i];
        const milk_onnx_node *keep = c->node;
        c->node = sl;
        int64_t ax[MILK_MAX_RANK], step[MILK_MAX_RANK], bound[MILK_MAX_RANK];
        int nax = 1, nst = 0, nb = 0;
        ax[0] = a;
        milk_status s = MILK_OK;
        if (milk_cv_has(c, 3)) s = milk_cv_const_ints(c, 3, ax, MILK_MAX_RANK, &nax);
        if (s == MILK_OK && milk_cv_has(c, 4)) s = milk_cv_const_ints(c, 4, step, MILK_MAX_RANK, &nst);
        if (s == MILK_OK) s = milk_cv_const_ints(c, i == 0 ? 1 : 2, bound, MILK_MAX_RANK, &nb);
        if (s == MILK_OK) s = milk_cv_input(c, i == 0 ? 2 : 1, i == 0 ? &e : &st);
        c->node = keep;
        bool ok = s == MILK_OK && nax == 1 && (ax[0] == a || ax[0] == a - x->type.rank) &&
                  (nst == 0 || step[0] == 1) && nb == 1 &&
                  (i == 0 ? bound[0] == 0 : bound[0] >= x->type.dims[a]);
        if (!ok) {
            milk_ctx_clear(c->ctx);
            return milk_errorf(c->ctx, MILK_ERR_UNSUPPORTED,
                               "--state %s=%s: Slice node '%s' is not %s of '%s' along "
                               "axis %d with step 1: the Concat is not a write",
                               sp->in, sp->out, sl->name, i == 0 ? "the head" : "the tail",
                               sp->in, a);
        }
    }
    char what[400];
    snprintf(what, sizeof what, "--state %s=%s: the bounds of the Slices of Concat node '%s'",
             sp->in, sp->out, sp->write->name);
    probe pe = {.what = what}, ps = {.what = what};
    milk_status s = probe_open(c, &pe, e);
    if (s == MILK_OK) s = probe_open(c, &ps, st);
    int64_t len = u->type.dims[a], dim = x->type.dims[a];
    int valid = 0;
    for (int32_t p = 0; s == MILK_OK && p < positions(&pe, &x->type); p++) {
        s = probe_at(&pe, p);
        if (s == MILK_OK) s = probe_at(&ps, p);
        if (s != MILK_OK || pe.val[0] < 0 || pe.val[0] + len > dim) continue;
        valid++;
        if (ps.val[0] != pe.val[0] + len)
            s = not_contiguous(c, sp, p, "the tail does not start where the update ends");
    }
    probe_close(&pe);
    probe_close(&ps);
    MILK_TRY(s);
    if (!valid)
        return milk_errorf(c->ctx, MILK_ERR_UNSUPPORTED,
                           "--state %s=%s: the Concat writes outside the cache at "
                           "every position", sp->in, sp->out);
    box b = {x->type.rank, {0}, valid};
    for (int j = 0; j < b.rank; j++) b.size[j] = j == a ? len : x->type.dims[j];
    MILK_TRY(emit_begin(c, e, 1, a, x->type.rank, &begin));
    return emit_update(c, x, u, begin, &b);
}

milk_status milk_cv_state_node(milk_cv *c, const milk_onnx_node *n, bool *handled)
{
    *handled = false;
    for (int i = 0; c->states && i < c->states->n; i++) {
        state_pair *sp = &c->states->pairs[i];
        if (sp->kind == WRITE_SLICE_CONCAT && (n == sp->slices[0] || n == sp->slices[1])) {
            *handled = true; /* read by the Concat only: lowered with it */
            return MILK_OK;
        }
        if (n != sp->write) continue;
        *handled = true;
        return sp->kind == WRITE_SLICE_CONCAT ? lower_slice_concat(c, sp) : lower_scatter(c, sp);
    }
    return MILK_OK;
}

/* ---- the state ---------------------------------------------------------------- */

/* After the passes: IN becomes a state read at the top (cast to IN's
 * dtype if it was fp32), OUT stops being an output and is written into
 * the state at the end (cast to fp16). */
static milk_status make_state(milk_cv *c, state_pair *sp)
{
    milk_function *f = c->fn;
    milk_block *b = f->block;
    milk_var *in = milk_function_var(f, sp->vin->mil), *out = NULL;
    int pos = -1;
    for (int i = 0; i < b->n_outputs; i++)
        if (strcmp(b->outputs[i]->name, sp->vout->mil) == 0) pos = i;
    if (!in || in->producer || pos < 0)
        return milk_errorf(c->ctx, MILK_ERR_INVALID_ARG,
                           "--state %s=%s: the converted program has no input '%s' "
                           "or output '%s' left", sp->in, sp->out, sp->vin->mil,
                           sp->vout->mil);
    out = b->outputs[pos];
    if (b->n_outputs == 1)
        return milk_errorf(c->ctx, MILK_ERR_INVALID_ARG,
                           "--state %s=%s: '%s' is the model's only output: a Core "
                           "ML model needs one besides its states", sp->in, sp->out,
                           sp->out);
    char ta[160], tb[160];
    if (out->type.rank != in->type.rank ||
        memcmp(out->type.dims, in->type.dims, (size_t)in->type.rank * sizeof *in->type.dims))
        return milk_errorf(c->ctx, MILK_ERR_INVALID_ARG,
                           "--state %s=%s: input '%s' is %s, output '%s' is %s: a "
                           "state is one tensor read and written, so the pair must "
                           "have the same shape", sp->in, sp->out, sp->in,
                           milk_type_str(&in->type, ta, sizeof ta), sp->out,
                           milk_type_str(&out->type, tb, sizeof tb));
    milk_dtype was = in->type.dtype;
    in->is_state = true;
    in->type.dtype = MILK_DTYPE_FP16;
    /* the read, at the top: every reader of IN reads its value */
    milk_op *rd;
    milk_input ri[] = {{"input", in}};
    milk_var *val;
    const char *rn = milk_cv_tmp_for(c, sp->vin->mil, "read");
    if (!rn) return nomem(c);
    MILK_TRY(milk_block_insert_op(c->ctx, b, 0, "read_state", rn, ri, 1, &rd));
    val = rd->outputs[0];
    if (was != MILK_DTYPE_FP16) {
        milk_var *dt;
        const char *cn = milk_cv_tmp_for(c, sp->vin->mil, "value");
        const char *dn = milk_cv_tmp_for(c, sp->vin->mil, "value_dtype");
        const char *dts = milk_dtype_name(was);
        milk_tensor_type st = {MILK_DTYPE_STRING, 0, {0}};
        if (!cn || !dn) return nomem(c);
        MILK_TRY(milk_block_insert_const(c->ctx, b, 1,
                                         dn, milk_value_new_tensor(c->p->arena, &st, &dts), &dt));
        milk_input ci[] = {{"x", val}, {"dtype", dt}};
        milk_op *cast;
        MILK_TRY(milk_block_insert_op(c->ctx, b, 2, "cast", cn, ci, 2, &cast));
        val = cast->outputs[0];
    }
    milk_function_replace_uses(f, in, val);
    rd->args[0].b[0].var = in; /* the read itself reads the state */
    /* the write, at the end */
    memmove(&b->outputs[pos], &b->outputs[pos + 1],
            (size_t)(b->n_outputs - pos - 1) * sizeof *b->outputs);
    b->n_outputs--;
    milk_var *data = out;
    if (out->type.dtype != MILK_DTYPE_FP16)
        MILK_TRY(milk_cv_cast(c, milk_cv_tmp_for(c, sp->vout->mil, "fp16"), out,
                              MILK_DTYPE_FP16, &data));
    const char *wn = milk_cv_tmp_for(c, sp->vout->mil, "write_state");
    if (!wn) return nomem(c);
    milk_input wi[] = {{"input", in}, {"data", data}};
    return milk_block_add_op(c->ctx, b, "write_state", wn, wi, 2, NULL);
}

milk_status milk_cv_states_finish(milk_cv *c)
{
    struct milk_cv_states *st = c->states;
    static const char *const how[] = {"written whole", "ScatterND", "ScatterElements",
                                      "Slice and Concat"};
    for (int i = 0; st && i < st->n; i++) {
        state_pair *sp = &st->pairs[i];
        MILK_TRY(make_state(c, sp));
        size_t k = strlen(st->note.text);
        snprintf(st->note.text + k, sizeof st->note.text - k, "%s%s=%s (%s%s)",
                 k ? ", " : "", sp->in, sp->out, how[sp->kind],
                 sp->kind ? " as slice_update" : "");
        st->note.n++;
    }
    return MILK_OK;
}

void milk_cv_states_stats(const milk_cv *c, milk_convert_stats *stats)
{
    if (!c->states || !stats) return;
    stats->states = c->states->note.n;
    snprintf(stats->state_note, sizeof stats->state_note, "%s", c->states->note.text);
}
