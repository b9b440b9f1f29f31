/*
 * read.c: model.mlmodel (a CoreML.Specification.Model protobuf holding an
 * ML Program) into the IR. protobuf-c decodes the bytes; this file checks
 * what it got: the model kind and specificationVersion, each function's
 * opset and block, and every op: its type is a row of the op table, its
 * bindings name vars defined earlier in scope, and the output types it
 * declares agree with type inference. Values and the description are in
 * value.c and desc.c.
 */
#include "coreml.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#define BIND(x) CORE_ML__SPECIFICATION__MILSPEC__ARGUMENT__BINDING__BINDING_##x

/* protobuf's own limit on a message (2 GiB). */
#define MAX_MODEL_BYTES ((uint64_t)INT32_MAX)

static milk_status nomem(milk_ctx *ctx)
{
    return milk_errorf(ctx, MILK_ERR_NOMEM, "out of memory");
}

/* ---- bytes and protobuf depth --------------------------------------------------- */

static milk_status read_file(milk_ctx *ctx, const char *path, uint8_t **buf,
                             size_t *len)
{
    *buf = NULL;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        milk_status s = milk_errorf(ctx, MILK_ERR_IO, "cannot open: %s",
                                    fd < 0 ? strerror(errno) : "not a regular file");
        if (fd >= 0) close(fd);
        return s;
    }
    if ((uint64_t)st.st_size > MAX_MODEL_BYTES) {
        close(fd);
        return milk_errorf(ctx, MILK_ERR_PARSE, "larger than 2 GiB");
    }
    *len = (size_t)st.st_size;
    *buf = malloc(*len ? *len : 1);
    size_t done = 0;
    while (*buf && done < *len) {
        ssize_t r = read(fd, *buf + done, *len - done);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) break;
        done += (size_t)r;
    }
    close(fd);
    if (*buf && done == *len) return MILK_OK;
    milk_status s = *buf ? milk_errorf(ctx, MILK_ERR_IO, "cannot read") : nomem(ctx);
    free(*buf);
    *buf = NULL;
    return s;
}

static bool varint(const uint8_t **p, const uint8_t *end, uint64_t *v)
{
    *v = 0;
    for (int shift = 0; shift < 64 && *p < end; shift += 7) {
        uint8_t b = *(*p)++;
        *v |= (uint64_t)(b & 0x7f) << shift;
        if (!(b & 0x80)) return true;
    }
    return false;
}

/* False if messages in [p, end) nest deeper than `left` levels. Only the
 * depth is judged: anything malformed is left to protobuf-c to report. */
static bool depth_ok(const ProtobufCMessageDescriptor *d, const uint8_t *p,
                     const uint8_t *end, int left)
{
    while (p < end) {
        uint64_t tag, n;
        if (!varint(&p, end, &tag)) return true;
        switch (tag & 7) {
        case 0: if (!varint(&p, end, &n)) return true; break;
        case 1: if (end - p < 8) return true; p += 8; break;
        case 5: if (end - p < 4) return true; p += 4; break;
        case 2: {
            if (!varint(&p, end, &n) || n > (uint64_t)(end - p)) return true;
            const ProtobufCFieldDescriptor *f =
                tag >> 3 <= UINT32_MAX
                    ? protobuf_c_message_descriptor_get_field(d, (unsigned)(tag >> 3))
                    : NULL;
            if (f && f->type == PROTOBUF_C_TYPE_MESSAGE &&
                (left == 0 || !depth_ok(f->descriptor, p, p + n, left - 1)))
                return false;
            p += n;
            break;
        }
        default: return true;
        }
    }
    return true;
}

/* ---- scope lookups ---------------------------------------------------------------- */

static milk_status resolve(coreml_reader *r, milk_function *f,
                           const char *name, milk_var **out)
{
    milk_var *v = milk_names_get(f->names, name);
    if (!v)
        return milk_errorf(r->ctx, MILK_ERR_INVALID_MODEL,
                           "'%s' is used before it is defined", name);
    if (!coreml_scope_visible(r->scope, v))
        return milk_errorf(r->ctx, MILK_ERR_INVALID_MODEL,
                           "'%s' is defined in another block and not "
                           "visible here",
                           name);
    *out = v;
    return MILK_OK;
}

/* ---- ops ----------------------------------------------------------------------------- */

static milk_status block_read(coreml_reader *r, const pb_block *pb,
                              milk_block *b);

/* The op's `name` attribute (a scalar string), or its first output's name
 * if it has none. */
static milk_status op_name(coreml_reader *r, const pb_op *po, const char **out)
{
    *out = po->n_outputs ? po->outputs[0]->name : "";
    for (size_t i = 0; i < po->n_attributes; i++) {
        if (strcmp(po->attributes[i]->key, "name") != 0) continue;
        milk_value *v;
        milk_status s = coreml_value_read(r, po->attributes[i]->value, &v);
        const char *n = s == MILK_OK ? milk_value_get_str(v, 0) : NULL;
        if (!n || v->type.rank != 0)
            return milk_errorf(r->ctx, MILK_ERR_INVALID_MODEL,
                               "op of type '%s': attribute 'name' is not a "
                               "scalar string",
                               po->type);
        *out = n;
    }
    if (!milk_is_identifier(*out))
        return milk_errorf(r->ctx, MILK_ERR_INVALID_MODEL,
                           "op of type '%s': name '%s' is not a MIL "
                           "identifier",
                           po->type, *out);
    return MILK_OK;
}

static milk_status op_attrs(coreml_reader *r, const pb_op *po, milk_op *op)
{
    for (size_t i = 0; i < po->n_attributes; i++) {
        const char *key = po->attributes[i]->key;
        if (strcmp(key, "name") == 0) continue;
        if (strcmp(key, "val") == 0 && op->kind == MILK_OP_const_) {
            milk_status s = coreml_value_read(r, po->attributes[i]->value, &op->val);
            if (s != MILK_OK) return coreml_prefix(r->ctx, s, "attribute 'val'");
            continue;
        }
        /* constexpr ops of opsets before iOS18 carry their inputs as
         * attributes (docs/coreml-format.md 3.4): bind them as inputs, the
         * writer turns them back into attributes */
        if (milk_op_is_constexpr(op) && milk_op_param_info(op->kind, key)) {
            milk_value *v;
            milk_status s = coreml_value_read(r, po->attributes[i]->value, &v);
            if (s == MILK_OK) s = milk_op_bind(r->ctx, r->p->arena, op, key, NULL, v);
            if (s != MILK_OK) return coreml_prefix(r->ctx, s, "attribute '%s'", key);
            continue;
        }
        MILK_TRY(coreml_attr_read(r, key, po->attributes[i]->value, &op->attrs));
    }
    return MILK_OK;
}

static milk_status op_binding(coreml_reader *r, milk_op *op, const char *param,
                              const pb_binding *pb)
{
    milk_var *var = NULL;
    milk_value *val = NULL;
    if (pb->binding_case == BIND(NAME))
        MILK_TRY(resolve(r, op->block->fn, pb->name, &var));
    else if (pb->binding_case == BIND(VALUE))
        MILK_TRY(coreml_value_read(r, pb->value, &val));
    else
        return milk_errorf(r->ctx, MILK_ERR_INVALID_MODEL,
                           "a binding has neither name nor value");
    return milk_op_bind(r->ctx, r->p->arena, op, param, var, val);
}

static milk_status op_inputs(coreml_reader *r, const pb_op *po, milk_op *op)
{
    for (size_t i = 0; i < po->n_inputs; i++) {
        const char *param = po->inputs[i]->key;
        const pb_argument *arg = po->inputs[i]->value;
        milk_status s = MILK_OK;
        if (!milk_is_identifier(param) || milk_op_arg(op, param))
            s = milk_errorf(r->ctx, MILK_ERR_INVALID_MODEL,
                            "not a MIL identifier, or given twice");
        else if (!arg || arg->n_arguments == 0)
            s = milk_errorf(r->ctx, MILK_ERR_INVALID_MODEL, "no bindings");
        for (size_t j = 0; s == MILK_OK && j < arg->n_arguments; j++)
            s = op_binding(r, op, param, arg->arguments[j]);
        if (s != MILK_OK) return coreml_prefix(r->ctx, s, "input '%s'", param);
    }
    return MILK_OK;
}

static milk_status op_blocks(coreml_reader *r, const pb_op *po, milk_op *op)
{
    for (size_t i = 0; i < po->n_blocks; i++) {
        milk_block *nb = milk_block_new(op->block->fn, op);
        if (!nb || !milk_arena_grow(r->p->arena, (void **)&op->blocks,
                                    op->n_blocks, &op->cap_blocks,
                                    sizeof *op->blocks))
            return nomem(r->ctx);
        op->blocks[op->n_blocks++] = nb;
        milk_status s = block_read(r, po->blocks[i], nb);
        if (s != MILK_OK) return coreml_prefix(r->ctx, s, "block %zu", i);
    }
    return MILK_OK;
}

/* The output types an op declares. */
typedef struct declared {
    size_t n;
    milk_tensor_type *types;
    const milk_tensor_type **decl;
    const char **names;
} declared;

static milk_status outputs_read(coreml_reader *r, const pb_op *po,
                                declared *d)
{
    size_t n = d->n = po->n_outputs;
    if (n > 65536)
        return milk_errorf(r->ctx, MILK_ERR_INVALID_MODEL, "%zu outputs", n);
    d->types = milk_arena_alloc(r->p->arena, (n + 1) * sizeof *d->types);
    d->decl = milk_arena_alloc(r->p->arena, (n + 1) * sizeof *d->decl);
    d->names = milk_arena_alloc(r->p->arena, (n + 1) * sizeof *d->names);
    if (!d->types || !d->decl || !d->names) return nomem(r->ctx);
    for (size_t i = 0; i < n; i++) {
        char what[300];
        snprintf(what, sizeof what, "output '%.200s'", po->outputs[i]->name);
        MILK_TRY(coreml_type_read(r, po->outputs[i]->type, what, &d->types[i]));
        d->decl[i] = &d->types[i];
        d->names[i] = po->outputs[i]->name;
    }
    return MILK_OK;
}

/* Type inference must agree with the declared outputs; its messages name
 * the op already. */
static milk_status outputs_check(coreml_reader *r, const milk_op *op,
                                 const declared *d)
{
    milk_infer ic;
    MILK_TRY(milk_op_infer(r->ctx, op, &ic));
    milk_status s = coreml_check_outputs(r->ctx, op, &ic, (int)d->n, d->decl,
                                         d->names);
    milk_infer_release(&ic);
    return s;
}

static milk_status outputs_create(coreml_reader *r, milk_op *op,
                                  const declared *d)
{
    for (size_t i = 0; i < d->n; i++) {
        milk_var *v;
        MILK_TRY(milk_op_add_output(r->ctx, op->block->fn, op, d->names[i],
                                    &d->types[i], &v));
        MILK_TRY(coreml_scope_define(r->ctx, r->scope, v, op->block));
    }
    return MILK_OK;
}

static milk_status op_read(coreml_reader *r, const pb_op *po, milk_block *b)
{
    const char *name;
    MILK_TRY(op_name(r, po, &name));
    int kind = milk_op_kind_from_name(po->type);
    if (kind < 0)
        return milk_errorf(r->ctx, MILK_ERR_UNSUPPORTED,
                           "op '%s': unknown op type '%s'", name, po->type);
    milk_op *op = milk_op_new(r->p->arena, kind, name);
    if (!op) return nomem(r->ctx);
    op->block = b; /* for scope lookups and the opset during inference */
    declared d = {0};
    milk_status s = op_attrs(r, po, op);
    if (s == MILK_OK) s = op_inputs(r, po, op);
    if (s == MILK_OK) s = op_blocks(r, po, op);
    if (s == MILK_OK) s = outputs_read(r, po, &d);
    if (s != MILK_OK)
        return coreml_prefix(r->ctx, s, "op '%s' (%s)", name, po->type);
    MILK_TRY(outputs_check(r, op, &d));
    s = outputs_create(r, op, &d);
    if (s != MILK_OK)
        return coreml_prefix(r->ctx, s, "op '%s' (%s)", name, po->type);
    return milk_block_append(r->ctx, b, op);
}

/* ---- blocks and functions ------------------------------------------------------------ */

static milk_status block_inputs(coreml_reader *r, const pb_block *pb,
                                milk_block *b)
{
    if (!b->parent && pb->n_inputs)
        return milk_errorf(r->ctx, MILK_ERR_INVALID_MODEL,
                           "a function's block takes no inputs");
    for (size_t i = 0; i < pb->n_inputs; i++) {
        char what[300];
        snprintf(what, sizeof what, "block input '%.200s'", pb->inputs[i]->name);
        milk_tensor_type t;
        milk_var *v;
        MILK_TRY(coreml_type_read(r, pb->inputs[i]->type, what, &t));
        MILK_TRY(milk_var_new(r->ctx, b->fn, pb->inputs[i]->name, &t, &v));
        if (!milk_arena_grow(r->p->arena, (void **)&b->inputs, b->n_inputs,
                             &b->cap_inputs, sizeof *b->inputs))
            return nomem(r->ctx);
        b->inputs[b->n_inputs++] = v;
        MILK_TRY(coreml_scope_define(r->ctx, r->scope, v, b));
    }
    return MILK_OK;
}

static milk_status block_body(coreml_reader *r, const pb_block *pb,
                              milk_block *b)
{
    MILK_TRY(block_inputs(r, pb, b));
    for (size_t i = 0; i < pb->n_operations; i++)
        MILK_TRY(op_read(r, pb->operations[i], b));
    for (size_t i = 0; i < pb->n_outputs; i++) {
        milk_var *v;
        milk_status s = resolve(r, b->fn, pb->outputs[i], &v);
        if (s == MILK_OK) s = milk_block_add_output(r->ctx, b, v);
        if (s != MILK_OK) return coreml_prefix(r->ctx, s, "block output %zu", i);
    }
    for (size_t i = 0; i < pb->n_attributes; i++)
        MILK_TRY(coreml_attr_read(r, pb->attributes[i]->key,
                                  pb->attributes[i]->value, &b->attrs));
    return MILK_OK;
}

static milk_status block_read(coreml_reader *r, const pb_block *pb,
                              milk_block *b)
{
    if (!pb)
        return milk_errorf(r->ctx, MILK_ERR_INVALID_MODEL, "missing block");
    if (!coreml_scope_push(r->scope, b))
        return milk_errorf(r->ctx, MILK_ERR_UNSUPPORTED,
                           "blocks nested deeper than %d",
                           COREML_MAX_BLOCK_DEPTH);
    milk_status s = block_body(r, pb, b);
    coreml_scope_pop(r->scope);
    return s;
}

/* The function's opset, checked against the program's target. */
static milk_status function_opset(coreml_reader *r, const pb_function *pf,
                                  milk_function *f)
{
    milk_target t = milk_opset_from_proto_name(pf->opset);
    if (!t)
        return milk_errorf(r->ctx, MILK_ERR_UNSUPPORTED,
                           "opset '%s' is not supported (CoreML5 to CoreML9)",
                           pf->opset);
    if (t > r->p->target)
        return milk_errorf(r->ctx, MILK_ERR_INVALID_MODEL,
                           "opset '%s' needs specificationVersion %d or "
                           "later, the model has %d",
                           pf->opset, (int)t, (int)r->p->target);
    f->opset = t;
    f->opset_name = milk_arena_strdup(r->p->arena, pf->opset);
    return f->opset_name ? MILK_OK : nomem(r->ctx);
}

/* The block for the function's opset; others are not kept, so refuse. */
static milk_status function_block(coreml_reader *r, const pb_function *pf,
                                  const pb_block **out)
{
    *out = NULL;
    for (size_t i = 0; i < pf->n_block_specializations; i++)
        if (strcmp(pf->block_specializations[i]->key, pf->opset) == 0)
            *out = pf->block_specializations[i]->value;
    if (!*out)
        return milk_errorf(r->ctx, MILK_ERR_INVALID_MODEL,
                           "block_specializations has no block for opset "
                           "'%s'",
                           pf->opset);
    if (pf->n_block_specializations > 1)
        return milk_errorf(r->ctx, MILK_ERR_UNSUPPORTED,
                           "block_specializations: %zu blocks, milk keeps "
                           "one per function",
                           pf->n_block_specializations);
    return MILK_OK;
}

static milk_status function_body(coreml_reader *r, const pb_function *pf,
                                 milk_function *f)
{
    const pb_block *pb;
    MILK_TRY(function_opset(r, pf, f));
    MILK_TRY(function_block(r, pf, &pb));
    for (size_t i = 0; i < pf->n_attributes; i++)
        MILK_TRY(coreml_attr_read(r, pf->attributes[i]->key,
                                  pf->attributes[i]->value, &f->attrs));
    for (size_t i = 0; i < pf->n_inputs; i++) {
        char what[300];
        snprintf(what, sizeof what, "input '%.200s'", pf->inputs[i]->name);
        milk_tensor_type t;
        milk_var *v;
        const pb_value_type *vt = pf->inputs[i]->type;
        bool state = vt && vt->type_case == CORE_ML__SPECIFICATION__MILSPEC__VALUE_TYPE__TYPE_STATE_TYPE;
        if (state && !(vt->statetype && vt->statetype->wrappedtype))
            return milk_errorf(r->ctx, MILK_ERR_INVALID_MODEL,
                               "%s: a stateType wraps no type", what);
        MILK_TRY(coreml_type_read(r, state ? vt->statetype->wrappedtype : vt, what, &t));
        MILK_TRY((state ? milk_function_add_state : milk_function_add_input)(
            r->ctx, f, pf->inputs[i]->name, &t, &v));
        MILK_TRY(coreml_scope_define(r->ctx, r->scope, v, f->block));
    }
    MILK_TRY(block_read(r, pb, f->block));
    return milk_function_check_states(r->ctx, f);
}

static milk_status function_read(coreml_reader *r, const char *name,
                                 const pb_function *pf)
{
    milk_function *f;
    if (!pf)
        return milk_errorf(r->ctx, MILK_ERR_INVALID_MODEL,
                           "function '%s' is empty", name);
    if (!milk_is_identifier(name))
        return milk_errorf(r->ctx, MILK_ERR_INVALID_MODEL,
                           "function name '%s' is not a MIL identifier", name);
    if (milk_program_function(r->p, name))
        return milk_errorf(r->ctx, MILK_ERR_INVALID_MODEL,
                           "function '%s' is defined twice", name);
    MILK_TRY(milk_program_add_function(r->ctx, r->p, name, &f));
    coreml_scope scope;
    coreml_scope_init(&scope, f);
    r->scope = &scope;
    milk_status s = function_body(r, pf, f);
    coreml_scope_free(&scope);
    r->scope = NULL;
    if (s != MILK_OK) milk_error_prefix(r->ctx, "function '%s'", name);
    return s;
}

/* ---- program and model ---------------------------------------------------------------- */

typedef CoreML__Specification__MILSpec__Program__FunctionsEntry pb_fn_entry;

/* main first, then by name: a stable order whatever the file's. */
static int fn_order(const void *a, const void *b)
{
    const char *x = (*(pb_fn_entry *const *)a)->key;
    const char *y = (*(pb_fn_entry *const *)b)->key;
    bool mx = strcmp(x, "main") == 0, my = strcmp(y, "main") == 0;
    if (mx != my) return mx ? -1 : 1;
    return strcmp(x, y);
}

static milk_status program_read(coreml_reader *r, const pb_program *pp)
{
    r->p->version = pp->version;
    for (size_t i = 0; i < pp->n_attributes; i++) {
        milk_status s = coreml_attr_read(r, pp->attributes[i]->key,
                                         pp->attributes[i]->value, &r->p->attrs);
        if (s != MILK_OK) return coreml_prefix(r->ctx, s, "program");
    }
    size_t n = pp->n_functions;
    pb_fn_entry **order = malloc((n ? n : 1) * sizeof *order);
    if (!order) return nomem(r->ctx);
    if (n) memcpy(order, pp->functions, n * sizeof *order);
    qsort(order, n, sizeof *order, fn_order);
    milk_status s = n ? MILK_OK
                      : milk_errorf(r->ctx, MILK_ERR_INVALID_MODEL,
                                    "mlProgram has no functions");
    for (size_t i = 0; s == MILK_OK && i < n; i++)
        s = function_read(r, order[i]->key, order[i]->value);
    free(order);
    return s;
}

/* Which kind of model this is when it is not an ML Program. */
static milk_status not_a_program(coreml_reader *r, const pb_model *m)
{
    for (unsigned i = 0; i < m->base.n_unknown_fields; i++) {
        uint32_t f = m->base.unknown_fields[i].tag;
        if (f == 500 || f == 303 || f == 403)
            return milk_errorf(r->ctx, MILK_ERR_UNSUPPORTED,
                               "a NeuralNetwork model (field %u): milk reads "
                               "ML Programs only",
                               f);
        if (f >= 200)
            return milk_errorf(r->ctx, MILK_ERR_UNSUPPORTED,
                               "not an ML Program (Model field %u): milk "
                               "reads ML Programs only",
                               f);
    }
    return milk_errorf(r->ctx, MILK_ERR_INVALID_MODEL,
                       "the Model holds no mlProgram");
}

static milk_status model_read(coreml_reader *r, const pb_model *m)
{
    if (m->type_case != CORE_ML__SPECIFICATION__MODEL__TYPE_ML_PROGRAM || !m->mlprogram)
        return not_a_program(r, m);
    int sv = m->specificationversion;
    if (sv < MILK_TARGET_IOS15 || sv > MILK_TARGET_IOS26)
        return milk_errorf(r->ctx, sv > MILK_TARGET_IOS26 ? MILK_ERR_UNSUPPORTED
                                                          : MILK_ERR_INVALID_MODEL,
                           "specificationVersion %d: milk reads ML Programs "
                           "of specificationVersion 6 (iOS15) to 10 (iOS26)",
                           sv);
    if (m->isupdatable)
        return milk_errorf(r->ctx, MILK_ERR_UNSUPPORTED,
                           "isUpdatable: updatable models are not supported");
    MILK_TRY(milk_program_create(r->ctx, (milk_target)sv, &r->p));
    MILK_TRY(coreml_desc_read(r, m->description));
    MILK_TRY(program_read(r, m->mlprogram));
    return coreml_desc_check(r, m->description);
}

milk_status coreml_model_read(milk_ctx *ctx, const char *file,
                              const char *root, const char *weights_dir,
                              milk_program **out)
{
    *out = NULL;
    uint8_t *buf;
    size_t len = 0;
    milk_status s = read_file(ctx, file, &buf, &len);
    if (s != MILK_OK) return coreml_prefix(ctx, s, "%s", file);
    pb_model *m = NULL;
    if (!depth_ok(&core_ml__specification__model__descriptor, buf, buf + len,
                  COREML_MAX_PB_DEPTH))
        s = milk_errorf(ctx, MILK_ERR_PARSE,
                        "%s: messages nested deeper than %d levels", file,
                        COREML_MAX_PB_DEPTH);
    else if (!(m = core_ml__specification__model__unpack(NULL, len, buf)))
        s = milk_errorf(ctx, MILK_ERR_PARSE,
                        "%s: not a valid Model protobuf", file);
    free(buf);
    if (s != MILK_OK) return s;
    coreml_reader r = {.ctx = ctx, .root = root, .weights_dir = weights_dir};
    s = model_read(&r, m);
    for (int i = 0; i < r.n_blobs; i++) coreml_blob_close(&r.blobs[i]);
    core_ml__specification__model__free_unpacked(m, NULL);
    if (s != MILK_OK) {
        milk_program_free(r.p);
        return coreml_prefix(ctx, s, "%s", file);
    }
    *out = r.p;
    return MILK_OK;
}
