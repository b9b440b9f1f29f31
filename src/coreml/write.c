/*
 * write.c: a program as model.mlmodel. The protobuf-c structs are built in
 * a scratch arena (nothing is freed one by one) and packed straight to the
 * file through a ProtobufCBuffer. Large consts go to weight.bin as the ops
 * are visited, in program order (depth first), so that a package read and
 * written again gets the same blob offsets.
 */
#include "coreml.h"

#include <errno.h>
#include <stdio.h>

#define NEW(T, ...) COREML_PB_NEW(w, T, __VA_ARGS__)
#define ARRAY(T, n) ((T *)milk_arena_alloc(w->a, ((size_t)(n) ? (size_t)(n) : 1) * sizeof(T)))
#define BIND(x) CORE_ML__SPECIFICATION__MILSPEC__ARGUMENT__BINDING__BINDING_##x

typedef CoreML__Specification__MILSpec__Operation__InputsEntry pb_input_entry;
typedef CoreML__Specification__MILSpec__Operation__AttributesEntry pb_op_attr;
typedef CoreML__Specification__MILSpec__Block__AttributesEntry pb_block_attr;
typedef CoreML__Specification__MILSpec__Function__AttributesEntry pb_fn_attr;
typedef CoreML__Specification__MILSpec__Program__AttributesEntry pb_prog_attr;
typedef CoreML__Specification__MILSpec__Function__BlockSpecializationsEntry pb_spec_entry;
typedef CoreML__Specification__MILSpec__Program__FunctionsEntry pb_fn_entry;

static milk_status nomem(coreml_writer *w)
{
    return milk_errorf(w->ctx, MILK_ERR_NOMEM, "out of memory");
}

/* Wrap attribute values into map entries of type T: one macro instead of
 * four copies, since each map has its own entry type. */
#define ATTR_ENTRIES(T, INIT, at, dst, ndst)                                  \
    do {                                                                      \
        pb_value **vals_;                                                     \
        MILK_TRY(coreml_attrs_write(w, (at), &vals_));                        \
        T **e_ = ARRAY(T *, (at)->n);                                         \
        if (!e_) return nomem(w);                                             \
        for (int i_ = 0; i_ < (at)->n; i_++) {                                \
            if (!(e_[i_] = NEW(T, INIT))) return nomem(w);                    \
            e_[i_]->key = (char *)(at)->a[i_].key;                            \
            e_[i_]->value = vals_[i_];                                        \
        }                                                                     \
        (dst) = e_;                                                           \
        (ndst) = (size_t)(at)->n;                                             \
    } while (0)

static pb_named_type *named_type(coreml_writer *w, const milk_var *v)
{
    pb_named_type *nt = NEW(pb_named_type, CORE_ML__SPECIFICATION__MILSPEC__NAMED_VALUE_TYPE__INIT);
    if (!nt) return NULL;
    nt->name = (char *)v->name;
    nt->type = coreml_tensor_type_write(w, &v->type);
    if (nt->type && v->is_state) { /* state<tensor<...>> */
        pb_value_type *st = NEW(pb_value_type, CORE_ML__SPECIFICATION__MILSPEC__VALUE_TYPE__INIT);
        CoreML__Specification__MILSpec__StateType *wrap =
            NEW(CoreML__Specification__MILSpec__StateType,
                CORE_ML__SPECIFICATION__MILSPEC__STATE_TYPE__INIT);
        if (!st || !wrap) return NULL;
        wrap->wrappedtype = nt->type;
        st->type_case = CORE_ML__SPECIFICATION__MILSPEC__VALUE_TYPE__TYPE_STATE_TYPE;
        st->statetype = wrap;
        nt->type = st;
    }
    return nt->type ? nt : NULL;
}


static milk_status named_types(coreml_writer *w, milk_var *const *vars,
                               int n, pb_named_type ***out, size_t *n_out)
{
    *out = ARRAY(pb_named_type *, n);
    if (!*out) return nomem(w);
    for (int i = 0; i < n; i++)
        if (!((*out)[i] = named_type(w, vars[i]))) return nomem(w);
    *n_out = (size_t)n;
    return MILK_OK;
}

/* ---- ops ---------------------------------------------------------------------- */

static milk_status block_write(coreml_writer *w, const milk_block *b,
                               pb_block **out);

/* constexpr ops of opsets before iOS18 carry their inputs as attributes
 * (docs/coreml-format.md 3.4). */
static bool inputs_as_attributes(const milk_op *op)
{
    return milk_op_is_constexpr(op) && op->block &&
           op->block->fn->opset < MILK_TARGET_IOS18;
}

/* Inline values go to weight.bin when large only for constexpr ops, as
 * coremltools writes them (other ops' inline values are small). */
static pb_argument *argument_write(coreml_writer *w, const milk_op *op,
                                   const milk_arg *a)
{
    bool blob_ok = milk_op_is_constexpr(op);
    pb_argument *arg = NEW(pb_argument, CORE_ML__SPECIFICATION__MILSPEC__ARGUMENT__INIT);
    pb_binding **bs = ARRAY(pb_binding *, a->n);
    if (!arg || !bs) return nomem(w), NULL;
    for (int j = 0; j < a->n; j++) {
        if (!(bs[j] = NEW(pb_binding, CORE_ML__SPECIFICATION__MILSPEC__ARGUMENT__BINDING__INIT)))
            return nomem(w), NULL;
        if (a->b[j].var) {
            bs[j]->binding_case = BIND(NAME);
            bs[j]->name = (char *)a->b[j].var->name;
        } else {
            bs[j]->binding_case = BIND(VALUE);
            if (!(bs[j]->value = coreml_value_write(w, a->b[j].value, blob_ok)))
                return NULL;
        }
    }
    arg->n_arguments = (size_t)a->n;
    arg->arguments = bs;
    return arg;
}

/* op's arguments in the order of its signature (then any others): the
 * order in which coremltools writes the blobs of inline values, so that a
 * package read and written again keeps its weight.bin. */
static const milk_arg **args_in_order(coreml_writer *w, const milk_op *op)
{
    const milk_arg **out = ARRAY(const milk_arg *, op->n_args);
    if (!out) return NULL;
    int n = 0;
    for (const milk_param *p = milk_ops[op->kind]->params; p && p->name; p++)
        if (milk_op_arg(op, p->name)) out[n++] = milk_op_arg(op, p->name);
    for (int i = 0; i < op->n_args; i++)
        if (!milk_op_param_info(op->kind, op->args[i].param)) out[n++] = &op->args[i];
    return out;
}

static milk_status op_inputs_write(coreml_writer *w, const milk_op *op,
                                   pb_op *po)
{
    if (inputs_as_attributes(op)) return MILK_OK;
    pb_input_entry **e = ARRAY(pb_input_entry *, op->n_args);
    const milk_arg **args = args_in_order(w, op);
    if (!e || !args) return nomem(w);
    for (int i = 0; i < op->n_args; i++) {
        if (!(e[i] = NEW(pb_input_entry, CORE_ML__SPECIFICATION__MILSPEC__OPERATION__INPUTS_ENTRY__INIT)))
            return nomem(w);
        e[i]->key = (char *)args[i]->param;
        if (!(e[i]->value = argument_write(w, op, args[i])))
            return coreml_prefix(w->ctx, MILK_OK, "input '%s'", args[i]->param);
    }
    po->n_inputs = (size_t)op->n_args;
    po->inputs = e;
    return MILK_OK;
}

/* A scalar string Value (the `name` attribute of every op). */
static pb_value *string_value(coreml_writer *w, const char *s)
{
    milk_tensor_type t = {MILK_DTYPE_STRING, 0, {0}};
    milk_value *v = milk_value_new_tensor(w->a, &t, &s);
    if (!v) return nomem(w), NULL;
    return coreml_value_write(w, v, false);
}

/* The inputs of a constexpr op as attributes (inputs_as_attributes): each
 * a constant, inline or a const's value. */
static milk_status input_attrs_write(coreml_writer *w, const milk_op *op,
                                     pb_op_attr **e)
{
    const milk_arg **args = args_in_order(w, op);
    if (!args) return nomem(w);
    for (int i = 0; i < op->n_args; i++) {
        const milk_arg *a = args[i];
        const milk_value *v = a->n == 1 ? milk_op_const(op, a->param) : NULL;
        if (!v)
            return milk_errorf(w->ctx, MILK_ERR_INVALID_ARG,
                               "input '%s': before iOS18 the inputs of a "
                               "constexpr op are constants",
                               a->param);
        if (!(e[i] = NEW(pb_op_attr, CORE_ML__SPECIFICATION__MILSPEC__OPERATION__ATTRIBUTES_ENTRY__INIT)))
            return nomem(w);
        e[i]->key = (char *)a->param;
        if (!(e[i]->value = coreml_value_write(w, v, true)))
            return coreml_prefix(w->ctx, MILK_OK, "attribute '%s'", a->param);
    }
    return MILK_OK;
}

/* `name`, `val` (const: the only place a blob can come from), the inputs
 * of an old constexpr op, then the attributes kept from reading. */
static milk_status op_attrs_write(coreml_writer *w, const milk_op *op,
                                  pb_op *po)
{
    size_t n0 = op->kind == MILK_OP_const_ ? 2 : 1, n;
    size_t n_in = inputs_as_attributes(op) ? (size_t)op->n_args : 0;
    pb_op_attr **kept;
    ATTR_ENTRIES(pb_op_attr, CORE_ML__SPECIFICATION__MILSPEC__OPERATION__ATTRIBUTES_ENTRY__INIT,
                 &op->attrs, kept, n);
    pb_op_attr **e = ARRAY(pb_op_attr *, n0 + n_in + n);
    if (!e) return nomem(w);
    for (size_t i = 0; i < n0; i++) {
        if (!(e[i] = NEW(pb_op_attr, CORE_ML__SPECIFICATION__MILSPEC__OPERATION__ATTRIBUTES_ENTRY__INIT)))
            return nomem(w);
        e[i]->key = i == 0 ? "name" : "val";
        if (i == 1 && !op->val)
            return milk_errorf(w->ctx, MILK_ERR_INVALID_ARG, "const without a value");
        e[i]->value = i == 0 ? string_value(w, op->name) : coreml_value_write(w, op->val, true);
        if (!e[i]->value) return coreml_prefix(w->ctx, MILK_OK, "attribute '%s'", e[i]->key);
    }
    if (n_in) MILK_TRY(input_attrs_write(w, op, e + n0));
    milk_copy(e + n0 + n_in, kept, n * sizeof *e);
    po->n_attributes = n0 + n_in + n;
    po->attributes = e;
    return MILK_OK;
}

static milk_status op_write(coreml_writer *w, const milk_op *op, pb_op **out)
{
    pb_op *po = NEW(pb_op, CORE_ML__SPECIFICATION__MILSPEC__OPERATION__INIT);
    if (!po) return nomem(w);
    po->type = (char *)milk_op_type(op);
    milk_status s = op_inputs_write(w, op, po);
    if (s == MILK_OK) s = op_attrs_write(w, op, po);
    if (s == MILK_OK)
        s = named_types(w, op->outputs, op->n_outputs, &po->outputs, &po->n_outputs);
    if (s == MILK_OK && !(po->blocks = ARRAY(pb_block *, op->n_blocks))) s = nomem(w);
    for (int i = 0; s == MILK_OK && i < op->n_blocks; i++) {
        s = block_write(w, op->blocks[i], &po->blocks[i]);
        if (s != MILK_OK) milk_error_prefix(w->ctx, "block %d", i);
    }
    po->n_blocks = (size_t)op->n_blocks;
    if (s != MILK_OK)
        return coreml_prefix(w->ctx, s, "op '%s' (%s)", op->name, milk_op_type(op));
    *out = po;
    return MILK_OK;
}

/* ---- blocks, functions, program --------------------------------------------------- */

static milk_status block_write(coreml_writer *w, const milk_block *b,
                               pb_block **out)
{
    pb_block *pb = NEW(pb_block, CORE_ML__SPECIFICATION__MILSPEC__BLOCK__INIT);
    if (!pb) return nomem(w);
    MILK_TRY(named_types(w, b->inputs, b->n_inputs, &pb->inputs, &pb->n_inputs));
    if (!(pb->operations = ARRAY(pb_op *, b->n_ops)) ||
        !(pb->outputs = ARRAY(char *, b->n_outputs)))
        return nomem(w);
    for (int i = 0; i < b->n_ops; i++)
        MILK_TRY(op_write(w, b->ops[i], &pb->operations[i]));
    pb->n_operations = (size_t)b->n_ops;
    for (int i = 0; i < b->n_outputs; i++)
        pb->outputs[i] = (char *)b->outputs[i]->name;
    pb->n_outputs = (size_t)b->n_outputs;
    ATTR_ENTRIES(pb_block_attr, CORE_ML__SPECIFICATION__MILSPEC__BLOCK__ATTRIBUTES_ENTRY__INIT,
                 &b->attrs, pb->attributes, pb->n_attributes);
    *out = pb;
    return MILK_OK;
}

static milk_status function_body_write(coreml_writer *w, const milk_function *f,
                                       pb_function *pf)
{
    const char *opset = f->opset_name ? f->opset_name : milk_opset_proto_name(f->opset);
    pb_spec_entry *spec = NEW(pb_spec_entry, CORE_ML__SPECIFICATION__MILSPEC__FUNCTION__BLOCK_SPECIALIZATIONS_ENTRY__INIT);
    pb_spec_entry **specs = ARRAY(pb_spec_entry *, 1);
    if (!opset || !spec || !specs)
        return opset ? nomem(w) : milk_errorf(w->ctx, MILK_ERR_INVALID_ARG, "unknown opset");
    pf->opset = spec->key = (char *)opset;
    specs[0] = spec;
    pf->n_block_specializations = 1;
    pf->block_specializations = specs;
    MILK_TRY(named_types(w, f->inputs, f->n_inputs, &pf->inputs, &pf->n_inputs));
    ATTR_ENTRIES(pb_fn_attr, CORE_ML__SPECIFICATION__MILSPEC__FUNCTION__ATTRIBUTES_ENTRY__INIT,
                 &f->attrs, pf->attributes, pf->n_attributes);
    return block_write(w, f->block, &spec->value);
}

static milk_status function_write(coreml_writer *w, const milk_function *f,
                                  pb_fn_entry **out)
{
    pb_fn_entry *e = NEW(pb_fn_entry, CORE_ML__SPECIFICATION__MILSPEC__PROGRAM__FUNCTIONS_ENTRY__INIT);
    pb_function *pf = NEW(pb_function, CORE_ML__SPECIFICATION__MILSPEC__FUNCTION__INIT);
    if (!e || !pf) return nomem(w);
    e->key = (char *)f->name;
    e->value = pf;
    milk_status s = function_body_write(w, f, pf);
    if (s != MILK_OK) return coreml_prefix(w->ctx, s, "function '%s'", f->name);
    *out = e;
    return MILK_OK;
}

static milk_status program_write(coreml_writer *w, pb_program **out)
{
    const milk_program *p = w->p;
    pb_program *pp = NEW(pb_program, CORE_ML__SPECIFICATION__MILSPEC__PROGRAM__INIT);
    if (!pp || !(pp->functions = ARRAY(pb_fn_entry *, p->n_functions))) return nomem(w);
    pp->version = p->version;
    ATTR_ENTRIES(pb_prog_attr, CORE_ML__SPECIFICATION__MILSPEC__PROGRAM__ATTRIBUTES_ENTRY__INIT,
                 &p->attrs, pp->attributes, pp->n_attributes);
    for (int i = 0; i < p->n_functions; i++)
        MILK_TRY(function_write(w, p->functions[i], &pp->functions[i]));
    pp->n_functions = (size_t)p->n_functions;
    *out = pp;
    return MILK_OK;
}

/* ---- packing to the file ----------------------------------------------------------- */

typedef struct file_buffer {
    ProtobufCBuffer base;
    FILE *f;
    bool failed;
} file_buffer;

static void file_append(ProtobufCBuffer *b, size_t len, const uint8_t *data)
{
    file_buffer *fb = (file_buffer *)b;
    if (!fb->failed && len && fwrite(data, 1, len, fb->f) != len) fb->failed = true;
}

static milk_status pack_to_file(coreml_writer *w, const pb_model *m,
                                const char *file)
{
    file_buffer fb = {{file_append}, fopen(file, "wb"), false};
    if (!fb.f)
        return milk_errorf(w->ctx, MILK_ERR_IO, "%s: cannot create: %s", file,
                           strerror(errno));
    protobuf_c_message_pack_to_buffer(&m->base, &fb.base);
    int err = ferror(fb.f) || fb.failed;
    if (fclose(fb.f) != 0) err = 1;
    if (err)
        return milk_errorf(w->ctx, MILK_ERR_IO, "%s: cannot write: %s", file,
                           strerror(errno));
    return MILK_OK;
}

static milk_status model_build(coreml_writer *w, pb_model **out)
{
    pb_model *m = NEW(pb_model, CORE_ML__SPECIFICATION__MODEL__INIT);
    if (!m) return nomem(w);
    m->specificationversion = (int32_t)w->p->target;
    MILK_TRY(coreml_desc_write(w, &m->description));
    MILK_TRY(program_write(w, &m->mlprogram));
    m->type_case = CORE_ML__SPECIFICATION__MODEL__TYPE_ML_PROGRAM;
    *out = m;
    return MILK_OK;
}

milk_status coreml_model_write(coreml_writer *w, const char *file)
{
    pb_model *m = NULL;
    w->blob.fd = -1;
    milk_status s = model_build(w, &m);
    milk_status s2 = w->have_blobs ? coreml_blob_finish(w->ctx, &w->blob) : MILK_OK;
    if (s == MILK_OK) s = s2;
    if (s == MILK_OK) s = pack_to_file(w, m, file);
    return s;
}
