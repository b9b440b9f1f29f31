/*
 * desc.c: the model description (Model.description): input and output
 * features and metadata, read into the program as recorded so that saving
 * writes them back unchanged, or derived from main's signature the way
 * coremltools does (docs/coreml-format.md 2.6) for programs built in
 * memory.
 */
#include "coreml.h"

#include <stdlib.h>

#define FT(x) CORE_ML__SPECIFICATION__FEATURE_TYPE__TYPE_##x
#define AFLEX(x) CORE_ML__SPECIFICATION__ARRAY_FEATURE_TYPE__SHAPE_FLEXIBILITY_##x
#define ADT(x) CORE_ML__SPECIFICATION__ARRAY_FEATURE_TYPE__ARRAY_DATA_TYPE__##x
#define ADEF(x) CORE_ML__SPECIFICATION__ARRAY_FEATURE_TYPE__DEFAULT_OPTIONAL_VALUE_##x
#define IFLEX(x) CORE_ML__SPECIFICATION__IMAGE_FEATURE_TYPE__SIZE_FLEXIBILITY_##x

typedef CoreML__Specification__ArrayFeatureType__Shape pb_shape;

/* Bounds on flexible-shape lists (far above anything real). */
#define MAX_RANGES 64
#define MAX_ENUM_SHAPES 65536

static milk_status nomem(milk_ctx *ctx)
{
    return milk_errorf(ctx, MILK_ERR_NOMEM, "out of memory");
}

/* ---- reading ---------------------------------------------------------------- */

static bool known_array_dtype(int32_t c)
{
    return c == ADT(FLOAT32) || c == ADT(DOUBLE) || c == ADT(INT32) ||
           c == ADT(INT8) || c == ADT(FLOAT16);
}

static milk_status shape_read(coreml_reader *r, const char *what,
                              const int64_t *shape, size_t n, int64_t *out)
{
    if (n > MILK_MAX_RANK)
        return milk_errorf(r->ctx, MILK_ERR_UNSUPPORTED,
                           "%s: shape of rank %zu is above milk's limit of %d",
                           what, n, MILK_MAX_RANK);
    for (size_t i = 0; i < n; i++) {
        if (shape[i] < 0 || shape[i] > MILK_MAX_ELEMENTS)
            return milk_errorf(r->ctx, MILK_ERR_INVALID_MODEL,
                               "%s: shape[%zu] is %lld", what, i,
                               (long long)shape[i]);
        out[i] = shape[i];
    }
    return MILK_OK;
}

static milk_status ranges_read(coreml_reader *r, const char *what,
                               const pb_array_type *at, milk_feature *f)
{
    const CoreML__Specification__ArrayFeatureType__ShapeRange *sr = at->shaperange;
    if (sr->n_sizeranges == 0 || sr->n_sizeranges > MAX_RANGES)
        return milk_errorf(r->ctx, MILK_ERR_INVALID_MODEL,
                           "%s: shapeRange: %zu sizeRanges", what,
                           sr->n_sizeranges);
    f->n_ranges = (int)sr->n_sizeranges;
    f->ranges = milk_arena_alloc(r->p->arena, (sr->n_sizeranges + 1) * sizeof *f->ranges);
    if (!f->ranges) return nomem(r->ctx);
    for (size_t i = 0; i < sr->n_sizeranges; i++) {
        const pb_size_range *s = sr->sizeranges[i];
        if (s->lowerbound > (uint64_t)INT64_MAX)
            return milk_errorf(r->ctx, MILK_ERR_INVALID_MODEL,
                               "%s: shapeRange: lowerBound %llu", what,
                               (unsigned long long)s->lowerbound);
        f->ranges[i][0] = (int64_t)s->lowerbound;
        f->ranges[i][1] = s->upperbound;
    }
    return MILK_OK;
}

static milk_status enum_read(coreml_reader *r, const char *what,
                             const pb_array_type *at, milk_feature *f)
{
    const CoreML__Specification__ArrayFeatureType__EnumeratedShapes *es =
        at->enumeratedshapes;
    if (es->n_shapes == 0 || es->n_shapes > MAX_ENUM_SHAPES)
        return milk_errorf(r->ctx, MILK_ERR_INVALID_MODEL,
                           "%s: enumeratedShapes: %zu shapes", what,
                           es->n_shapes);
    size_t rank = (size_t)f->rank;
    f->n_enum = (int)es->n_shapes;
    f->enum_shapes = milk_arena_alloc(r->p->arena, (es->n_shapes * rank + 1) * sizeof(int64_t));
    if (!f->enum_shapes) return nomem(r->ctx);
    for (size_t i = 0; i < es->n_shapes; i++) {
        const pb_shape *s = es->shapes[i];
        if (s->n_shape != rank)
            return milk_errorf(r->ctx, MILK_ERR_UNSUPPORTED,
                               "%s: enumeratedShapes[%zu] has rank %zu, the "
                               "default shape %zu",
                               what, i, s->n_shape, rank);
        MILK_TRY(shape_read(r, what, s->shape, s->n_shape, f->enum_shapes + i * rank));
    }
    return MILK_OK;
}

static milk_status array_read(coreml_reader *r, const char *what,
                              const pb_array_type *at, milk_feature *f)
{
    f->kind = MILK_FEATURE_ARRAY;
    if (!known_array_dtype(at->datatype))
        return milk_errorf(r->ctx, MILK_ERR_INVALID_MODEL,
                           "%s: multiArrayType: unknown dataType %d", what,
                           (int)at->datatype);
    if (at->default_optional_value_case != ADEF(_NOT_SET))
        return milk_errorf(r->ctx, MILK_ERR_UNSUPPORTED,
                           "%s: multiArrayType: default values are not "
                           "supported",
                           what);
    f->array_dtype = at->datatype;
    MILK_TRY(shape_read(r, what, at->shape, at->n_shape, f->shape));
    f->rank = (int)at->n_shape;
    if (at->shape_flexibility_case == AFLEX(SHAPE_RANGE))
        return ranges_read(r, what, at, f);
    if (at->shape_flexibility_case == AFLEX(ENUMERATED_SHAPES))
        return enum_read(r, what, at, f);
    return MILK_OK;
}

static milk_status image_read(coreml_reader *r, const char *what,
                              const pb_image_type *it, milk_feature *f)
{
    f->kind = MILK_FEATURE_IMAGE;
    int cs = (int)it->colorspace;
    if (cs != 10 && cs != 20 && cs != 30 && cs != 40)
        return milk_errorf(r->ctx, MILK_ERR_INVALID_MODEL,
                           "%s: imageType: unknown colorSpace %d", what, cs);
    if (it->width < 0 || it->height < 0)
        return milk_errorf(r->ctx, MILK_ERR_INVALID_MODEL,
                           "%s: imageType: negative size", what);
    if (it->size_flexibility_case != IFLEX(_NOT_SET))
        return milk_errorf(r->ctx, MILK_ERR_UNSUPPORTED,
                           "%s: imageType: flexible image sizes are not "
                           "supported",
                           what);
    f->width = it->width;
    f->height = it->height;
    f->color_space = cs;
    return MILK_OK;
}

static milk_status feature_read(coreml_reader *r, const char *kind, size_t i,
                                const pb_feature *pf, milk_feature *f)
{
    char what[320];
    snprintf(what, sizeof what, "description: %s[%zu] '%.200s'", kind, i,
             pf->name);
    if (!pf->name[0] || !pf->type)
        return milk_errorf(r->ctx, MILK_ERR_INVALID_MODEL,
                           "%s: a feature needs a name and a type", what);
    f->name = milk_arena_strdup(r->p->arena, pf->name);
    if (pf->shortdescription[0])
        f->short_description = milk_arena_strdup(r->p->arena, pf->shortdescription);
    if (!f->name || (pf->shortdescription[0] && !f->short_description))
        return nomem(r->ctx);
    f->is_optional = pf->type->isoptional;
    if (pf->type->type_case == FT(MULTI_ARRAY_TYPE))
        return array_read(r, what, pf->type->multiarraytype, f);
    if (pf->type->type_case == FT(IMAGE_TYPE))
        return image_read(r, what, pf->type->imagetype, f);
    return milk_errorf(r->ctx, MILK_ERR_UNSUPPORTED,
                       "%s: feature type %d is not supported (milk handles "
                       "multiArrayType and imageType)",
                       what, (int)pf->type->type_case);
}

static milk_status features_read(coreml_reader *r, const char *kind,
                                 pb_feature *const *pf, size_t n,
                                 milk_feature **out, int *n_out)
{
    if (n > 65536)
        return milk_errorf(r->ctx, MILK_ERR_INVALID_MODEL,
                           "description: %zu %s features", n, kind);
    *out = milk_arena_alloc(r->p->arena, (n + 1) * sizeof **out);
    if (!*out) return nomem(r->ctx);
    *n_out = (int)n;
    for (size_t i = 0; i < n; i++)
        MILK_TRY(feature_read(r, kind, i, pf[i], &(*out)[i]));
    return MILK_OK;
}

static const char *opt_str(milk_arena *a, const char *s, bool *oom)
{
    if (!s || !s[0]) return NULL;
    const char *d = milk_arena_strdup(a, s);
    if (!d) *oom = true;
    return d;
}

static milk_status user_put(coreml_reader *r, const char *key,
                            const char *value)
{
    milk_program *p = r->p;
    for (int i = 0; i < p->n_user; i++) {
        if (strcmp(p->user[i].key, key) == 0) {
            p->user[i].value = milk_arena_strdup(p->arena, value);
            return p->user[i].value ? MILK_OK : nomem(r->ctx);
        }
    }
    const char *k = milk_arena_strdup(p->arena, key);
    const char *v = milk_arena_strdup(p->arena, value);
    if (!k || !v ||
        !milk_arena_grow(p->arena, (void **)&p->user, p->n_user, &p->cap_user,
                         sizeof *p->user))
        return nomem(r->ctx);
    p->user[p->n_user++] = (milk_kv){k, v};
    return MILK_OK;
}

static milk_status metadata_read(coreml_reader *r, const pb_metadata *m)
{
    bool oom = false;
    milk_program *p = r->p;
    p->short_description = opt_str(p->arena, m->shortdescription, &oom);
    p->version_string = opt_str(p->arena, m->versionstring, &oom);
    p->author = opt_str(p->arena, m->author, &oom);
    p->license = opt_str(p->arena, m->license, &oom);
    if (oom) return nomem(r->ctx);
    for (size_t i = 0; i < m->n_userdefined; i++)
        MILK_TRY(user_put(r, m->userdefined[i]->key, m->userdefined[i]->value));
    return MILK_OK;
}

/* Parts of a description milk does not model: refuse them rather than
 * drop them silently on the next save. */
static milk_status unsupported_parts(coreml_reader *r, const pb_description *d)
{
    const char *part = d->predictedfeaturename[0]          ? "predictedFeatureName"
                       : d->predictedprobabilitiesname[0]  ? "predictedProbabilitiesName"
                       : d->n_traininginput                ? "trainingInput"
                                                           : NULL;
    if (part)
        return milk_errorf(r->ctx, MILK_ERR_UNSUPPORTED,
                           "description: %s is not supported", part);
    return MILK_OK;
}

/* ---- states and functions (issue 12) ------------------------------------ */

typedef CoreML__Specification__FunctionDescription pb_fn_desc;
#define SFT(x) CORE_ML__SPECIFICATION__STATE_FEATURE_TYPE__TYPE_##x

/* A state feature: stateType { arrayType { shape, FLOAT16 } }, as Core ML's
 * InterfaceValidators want it: a shape, no flexibility, no default, not
 * optional. */
static milk_status state_feature_read(coreml_reader *r, const char *kind,
                                      size_t i, const pb_feature *pf,
                                      milk_feature *f)
{
    char what[320];
    snprintf(what, sizeof what, "description: %s[%zu] '%.200s'", kind, i,
             pf->name);
    const CoreML__Specification__StateFeatureType *st =
        pf->type && pf->type->type_case == FT(STATE_TYPE) ? pf->type->statetype : NULL;
    if (!pf->name[0] || !st || st->type_case != SFT(ARRAY_TYPE) || !st->arraytype)
        return milk_errorf(r->ctx, MILK_ERR_INVALID_MODEL,
                           "%s: a state feature needs a name and a stateType "
                           "holding an arrayType",
                           what);
    if (!(f->name = milk_arena_strdup(r->p->arena, pf->name))) return nomem(r->ctx);
    MILK_TRY(array_read(r, what, st->arraytype, f));
    const char *bad = pf->type->isoptional ? "a state cannot be optional"
                      : f->n_ranges || f->n_enum ? "a state cannot have a flexible shape"
                      : f->rank == 0 ? "a state needs a shape"
                      : f->array_dtype != ADT(FLOAT16) ? "Core ML states are FLOAT16"
                                                       : NULL;
    if (bad) return milk_errorf(r->ctx, MILK_ERR_INVALID_MODEL, "%s: %s", what, bad);
    return MILK_OK;
}

static milk_status states_read(coreml_reader *r, const char *kind,
                               pb_feature *const *pf, size_t n,
                               milk_feature **out, int *n_out)
{
    if (n > 65536)
        return milk_errorf(r->ctx, MILK_ERR_INVALID_MODEL,
                           "description: %zu %s features", n, kind);
    *out = milk_arena_alloc(r->p->arena, (n + 1) * sizeof **out);
    if (!*out) return nomem(r->ctx);
    *n_out = (int)n;
    for (size_t i = 0; i < n; i++)
        MILK_TRY(state_feature_read(r, kind, i, pf[i], &(*out)[i]));
    return MILK_OK;
}

static milk_status function_desc_read(coreml_reader *r, size_t i,
                                      const pb_fn_desc *fd, milk_fn_features *ff)
{
    milk_program *p = r->p;
    char kind[300];
    if (!fd->name[0])
        return milk_errorf(r->ctx, MILK_ERR_INVALID_MODEL,
                           "description: functions[%zu] has no name", i);
    for (int j = 0; j < p->n_fn_features; j++)
        if (strcmp(p->fn_features[j].function, fd->name) == 0)
            return milk_errorf(r->ctx, MILK_ERR_INVALID_MODEL,
                               "description: function '%s' is described twice",
                               fd->name);
    if (fd->predictedfeaturename[0] || fd->predictedprobabilitiesname[0])
        return milk_errorf(r->ctx, MILK_ERR_UNSUPPORTED,
                           "description: function '%s': classifier outputs "
                           "are not supported",
                           fd->name);
    if (!(ff->function = milk_arena_strdup(p->arena, fd->name))) return nomem(r->ctx);
    snprintf(kind, sizeof kind, "function '%.200s': input", fd->name);
    MILK_TRY(features_read(r, kind, fd->input, fd->n_input, &ff->in, &ff->n_in));
    snprintf(kind, sizeof kind, "function '%.200s': output", fd->name);
    MILK_TRY(features_read(r, kind, fd->output, fd->n_output, &ff->out, &ff->n_out));
    snprintf(kind, sizeof kind, "function '%.200s': state", fd->name);
    return states_read(r, kind, fd->state, fd->n_state, &ff->state, &ff->n_state);
}

/* A multifunction description (spec 9): one FunctionDescription per
 * function, none at the top level (Core ML's InterfaceValidators), and a
 * default function among them. */
static milk_status functions_read(coreml_reader *r, const pb_description *d)
{
    milk_program *p = r->p;
    if (p->target < MILK_TARGET_IOS18)
        return milk_errorf(r->ctx, MILK_ERR_INVALID_MODEL,
                           "description: functions need specificationVersion "
                           "9 (iOS18) or later, the model has %d",
                           (int)p->target);
    if (d->n_input || d->n_output || d->n_state)
        return milk_errorf(r->ctx, MILK_ERR_INVALID_MODEL,
                           "description: a multifunction model lists its "
                           "inputs, outputs and states per function, not at "
                           "the top level");
    if (d->n_functions == 0 || d->n_functions > 65536)
        return milk_errorf(r->ctx, MILK_ERR_INVALID_MODEL,
                           "description: defaultFunctionName '%s' with %zu "
                           "functions",
                           d->defaultfunctionname, d->n_functions);
    p->fn_features = milk_arena_alloc(p->arena, d->n_functions * sizeof *p->fn_features);
    if (!p->fn_features) return nomem(r->ctx);
    bool found = false;
    for (size_t i = 0; i < d->n_functions; i++) {
        MILK_TRY(function_desc_read(r, i, d->functions[i], &p->fn_features[i]));
        p->n_fn_features++;
        found |= strcmp(d->functions[i]->name, d->defaultfunctionname) == 0;
    }
    if (!found)
        return milk_errorf(r->ctx, MILK_ERR_INVALID_MODEL,
                           "description: defaultFunctionName '%s' is not one "
                           "of its functions",
                           d->defaultfunctionname);
    p->default_function = milk_arena_strdup(p->arena, d->defaultfunctionname);
    return p->default_function ? MILK_OK : nomem(r->ctx);
}

/* The described states of f must be its state inputs, with their shapes,
 * and every state input of f must be described. */
static milk_status states_match(coreml_reader *r, const milk_function *f,
                                const milk_feature *st, int n)
{
    for (int i = 0; i < n; i++) {
        const milk_var *v = milk_function_var(f, st[i].name);
        if (!v || !v->is_state)
            return milk_errorf(r->ctx, MILK_ERR_INVALID_MODEL,
                               "description: state '%s': function '%s' has "
                               "no state input '%s'%s",
                               st[i].name, f->name, st[i].name,
                               v && !v->producer ? " (it is a tensor input)" : "");
        bool same = st[i].rank == v->type.rank;
        for (int k = 0; same && k < st[i].rank; k++)
            same = st[i].shape[k] == v->type.dims[k];
        if (!same) {
            milk_tensor_type t = {MILK_DTYPE_FP16, st[i].rank, {0}};
            memcpy(t.dims, st[i].shape, (size_t)st[i].rank * sizeof *t.dims);
            char a[160], b[160];
            return milk_errorf(r->ctx, MILK_ERR_INVALID_MODEL,
                               "description: state '%s' is %s, function '%s' "
                               "declares it %s",
                               st[i].name, coreml_type_str(&t, a, sizeof a),
                               f->name, coreml_type_str(&v->type, b, sizeof b));
        }
    }
    for (int i = 0; i < f->n_inputs; i++) {
        const milk_var *v = f->inputs[i];
        bool described = false;
        for (int k = 0; v->is_state && k < n; k++)
            described |= strcmp(st[k].name, v->name) == 0;
        if (v->is_state && !described)
            return milk_errorf(r->ctx, MILK_ERR_INVALID_MODEL,
                               "function '%s': state input '%s' is not among "
                               "the description's states",
                               f->name, v->name);
    }
    return MILK_OK;
}

milk_status coreml_desc_check(coreml_reader *r, const pb_description *d)
{
    const milk_program *p = r->p;
    if (!d) return MILK_OK;
    for (int i = 0; i < p->n_fn_features; i++) {
        const milk_fn_features *ff = &p->fn_features[i];
        const milk_function *f = milk_program_function(p, ff->function);
        if (!f)
            return milk_errorf(r->ctx, MILK_ERR_INVALID_MODEL,
                               "description: function '%s' is not in the "
                               "program",
                               ff->function);
        MILK_TRY(states_match(r, f, ff->state, ff->n_state));
    }
    for (int i = 0; p->n_fn_features && i < p->n_functions; i++) {
        bool described = false;
        for (int k = 0; k < p->n_fn_features; k++)
            described |= strcmp(p->fn_features[k].function, p->functions[i]->name) == 0;
        if (!described)
            return milk_errorf(r->ctx, MILK_ERR_INVALID_MODEL,
                               "function '%s' is not in the description's "
                               "functions",
                               p->functions[i]->name);
    }
    const milk_function *m = milk_program_function(p, "main");
    if (!p->n_fn_features && m)
        return states_match(r, m, p->state_features, p->n_state_features);
    return MILK_OK;
}

milk_status coreml_desc_read(coreml_reader *r, const pb_description *d)
{
    if (!d) return MILK_OK;
    MILK_TRY(unsupported_parts(r, d));
    milk_program *p = r->p;
    if (d->n_functions || d->defaultfunctionname[0]) {
        MILK_TRY(functions_read(r, d));
    } else {
        MILK_TRY(features_read(r, "input", d->input, d->n_input, &p->in_features,
                               &p->n_in_features));
        MILK_TRY(features_read(r, "output", d->output, d->n_output,
                               &p->out_features, &p->n_out_features));
        MILK_TRY(states_read(r, "state", d->state, d->n_state,
                             &p->state_features, &p->n_state_features));
        p->has_features = true;
    }
    return d->metadata ? metadata_read(r, d->metadata) : MILK_OK;
}

/* ---- writing ----------------------------------------------------------------- */

#define NEW(T, ...) COREML_PB_NEW(w, T, __VA_ARGS__)

static void *oom(coreml_writer *w)
{
    milk_errorf(w->ctx, MILK_ERR_NOMEM, "out of memory");
    return NULL;
}

static int64_t *i64_dup(coreml_writer *w, const int64_t *v, int n)
{
    return milk_arena_memdup(w->a, v, (size_t)n * sizeof *v);
}

static bool array_flex_write(coreml_writer *w, const milk_feature *f,
                             pb_array_type *at)
{
    if (f->n_ranges) {
        CoreML__Specification__ArrayFeatureType__ShapeRange *sr =
            NEW(CoreML__Specification__ArrayFeatureType__ShapeRange,
                CORE_ML__SPECIFICATION__ARRAY_FEATURE_TYPE__SHAPE_RANGE__INIT);
        pb_size_range **rs = milk_arena_alloc(w->a, (size_t)f->n_ranges * sizeof *rs);
        if (!sr || !rs) return false;
        for (int i = 0; i < f->n_ranges; i++) {
            rs[i] = NEW(pb_size_range, CORE_ML__SPECIFICATION__SIZE_RANGE__INIT);
            if (!rs[i]) return false;
            rs[i]->lowerbound = (uint64_t)f->ranges[i][0];
            rs[i]->upperbound = f->ranges[i][1];
        }
        sr->n_sizeranges = (size_t)f->n_ranges;
        sr->sizeranges = rs;
        at->shape_flexibility_case = AFLEX(SHAPE_RANGE);
        at->shaperange = sr;
    } else if (f->n_enum) {
        CoreML__Specification__ArrayFeatureType__EnumeratedShapes *es =
            NEW(CoreML__Specification__ArrayFeatureType__EnumeratedShapes,
                CORE_ML__SPECIFICATION__ARRAY_FEATURE_TYPE__ENUMERATED_SHAPES__INIT);
        pb_shape **ss = milk_arena_alloc(w->a, (size_t)f->n_enum * sizeof *ss);
        if (!es || !ss) return false;
        for (int i = 0; i < f->n_enum; i++) {
            ss[i] = NEW(pb_shape, CORE_ML__SPECIFICATION__ARRAY_FEATURE_TYPE__SHAPE__INIT);
            if (!ss[i] || !(ss[i]->shape = i64_dup(w, f->enum_shapes + (size_t)i * (size_t)f->rank, f->rank)))
                return false;
            ss[i]->n_shape = (size_t)f->rank;
        }
        es->n_shapes = (size_t)f->n_enum;
        es->shapes = ss;
        at->shape_flexibility_case = AFLEX(ENUMERATED_SHAPES);
        at->enumeratedshapes = es;
    }
    return true;
}

static bool type_write(coreml_writer *w, const milk_feature *f,
                       pb_feature_type *ft)
{
    if (f->kind == MILK_FEATURE_IMAGE) {
        pb_image_type *it = NEW(pb_image_type, CORE_ML__SPECIFICATION__IMAGE_FEATURE_TYPE__INIT);
        if (!it) return false;
        it->width = f->width;
        it->height = f->height;
        it->colorspace = (CoreML__Specification__ImageFeatureType__ColorSpace)f->color_space;
        ft->type_case = FT(IMAGE_TYPE);
        ft->imagetype = it;
        return true;
    }
    pb_array_type *at = NEW(pb_array_type, CORE_ML__SPECIFICATION__ARRAY_FEATURE_TYPE__INIT);
    if (!at || !(at->shape = i64_dup(w, f->shape, f->rank))) return false;
    at->n_shape = (size_t)f->rank;
    at->datatype = (CoreML__Specification__ArrayFeatureType__ArrayDataType)f->array_dtype;
    ft->type_case = FT(MULTI_ARRAY_TYPE);
    ft->multiarraytype = at;
    return array_flex_write(w, f, at);
}

static pb_feature *feature_write(coreml_writer *w, const milk_feature *f)
{
    pb_feature *pf = NEW(pb_feature, CORE_ML__SPECIFICATION__FEATURE_DESCRIPTION__INIT);
    pb_feature_type *ft = NEW(pb_feature_type, CORE_ML__SPECIFICATION__FEATURE_TYPE__INIT);
    if (!pf || !ft) return oom(w);
    pf->name = (char *)f->name;
    if (f->short_description) pf->shortdescription = (char *)f->short_description;
    pf->type = ft;
    ft->isoptional = f->is_optional;
    return type_write(w, f, ft) ? pf : oom(w);
}

/* ArrayDataType for a MIL dtype at the model's boundary, or 0. */
static int32_t array_dtype_of(milk_dtype d)
{
    switch (d) {
    case MILK_DTYPE_FP32: return ADT(FLOAT32);
    case MILK_DTYPE_FP16: return ADT(FLOAT16);
    case MILK_DTYPE_FP64: return ADT(DOUBLE);
    case MILK_DTYPE_INT32: return ADT(INT32);
    case MILK_DTYPE_INT8: return ADT(INT8);
    default: return 0;
    }
}

/* What coremltools writes for a main input or output (section 2.6):
 * multiArray, the static shape ([1] for scalars). A flexible input gets
 * the shape with unknown dims at 1 and one SizeRange per dim ((d, d) or
 * (1, unbounded)); a flexible output gets no shape. */
static milk_status feature_derive(coreml_writer *w, const milk_var *v,
                                  bool input, milk_feature *f)
{
    const milk_tensor_type *t = &v->type;
    f->name = v->name;
    f->kind = MILK_FEATURE_ARRAY;
    if (!(f->array_dtype = array_dtype_of(t->dtype)) || (input && t->rank < 0))
        return milk_errorf(w->ctx, MILK_ERR_INVALID_ARG,
                           "function 'main': %s '%s': a %s tensor of %s rank "
                           "cannot be a model %s (Core ML takes fp32, fp16, "
                           "int32 multi-arrays, and int8 from iOS26)",
                           input ? "input" : "output", v->name,
                           milk_dtype_name(t->dtype) ? milk_dtype_name(t->dtype) : "?",
                           t->rank < 0 ? "unknown" : "known",
                           input ? "input" : "output");
    bool known = milk_tensor_type_count(t) >= 0;
    if (t->rank == 0) {
        f->rank = 1;
        f->shape[0] = 1;
    } else if (known || input) {
        f->rank = t->rank;
        for (int i = 0; i < t->rank; i++)
            f->shape[i] = t->dims[i] < 0 ? 1 : t->dims[i];
    }
    if (known || !input) return MILK_OK;
    f->n_ranges = t->rank;
    f->ranges = milk_arena_alloc(w->a, (size_t)t->rank * sizeof *f->ranges);
    if (!f->ranges) return milk_errorf(w->ctx, MILK_ERR_NOMEM, "out of memory");
    for (int i = 0; i < t->rank; i++) {
        f->ranges[i][0] = t->dims[i] < 0 ? 1 : t->dims[i];
        f->ranges[i][1] = t->dims[i] < 0 ? -1 : t->dims[i];
    }
    return MILK_OK;
}

/* The inputs of f that are not states (model inputs proper). *out is
 * arena memory of w. */
static milk_status plain_inputs(coreml_writer *w, const milk_function *f,
                                milk_var ***out, int *n)
{
    *n = 0;
    if (!(*out = milk_arena_alloc(w->a, (size_t)(f->n_inputs + 1) * sizeof **out)))
        return milk_errorf(w->ctx, MILK_ERR_NOMEM, "out of memory");
    for (int i = 0; i < f->n_inputs; i++)
        if (!f->inputs[i]->is_state) (*out)[(*n)++] = f->inputs[i];
    return MILK_OK;
}

/* Were the recorded features read for this very signature (same names in
 * the same order)? If a pass changed the function's inputs or outputs,
 * the description is derived afresh. */
static bool recorded_fits(const milk_feature *in, int n_in,
                          const milk_feature *out, int n_out,
                          milk_var *const *inputs, int n_inputs,
                          const milk_block *b)
{
    if (n_in != n_inputs || n_out != b->n_outputs) return false;
    for (int i = 0; i < n_inputs; i++)
        if (strcmp(in[i].name, inputs[i]->name) != 0) return false;
    for (int i = 0; i < b->n_outputs; i++)
        if (strcmp(out[i].name, b->outputs[i]->name) != 0) return false;
    return true;
}

static milk_status features_write(coreml_writer *w, const milk_feature *rec,
                                  milk_var *const *vars, int n, bool input,
                                  pb_feature ***out)
{
    *out = milk_arena_alloc(w->a, (size_t)(n ? n : 1) * sizeof **out);
    if (!*out) return milk_errorf(w->ctx, MILK_ERR_NOMEM, "out of memory");
    for (int i = 0; i < n; i++) {
        milk_feature tmp = {0};
        if (!rec) MILK_TRY(feature_derive(w, vars[i], input, &tmp));
        /* int8 MultiArrays exist from specificationVersion 10 (Model.proto) */
        if ((rec ? rec[i].array_dtype : tmp.array_dtype) == ADT(INT8) &&
            w->p->target < MILK_TARGET_IOS26)
            return milk_errorf(w->ctx, MILK_ERR_INVALID_ARG,
                               "%s '%s' is int8: Core ML takes int8 model inputs "
                               "and outputs from iOS26 (specificationVersion 10) "
                               "on, the program targets %s (milk lint --fix "
                               "declares them int32)",
                               input ? "input" : "output", vars[i]->name,
                               milk_target_name(w->p->target));
        if (!((*out)[i] = feature_write(w, rec ? &rec[i] : &tmp)))
            return MILK_ERR_NOMEM;
    }
    return MILK_OK;
}

/* One stateType feature per state input of f: arrayType, FLOAT16, the
 * static shape (coremltools' backend/mil/load.py). */
static milk_status states_write(coreml_writer *w, const milk_function *f,
                                pb_feature ***out, size_t *n_out)
{
    *n_out = 0;
    *out = milk_arena_alloc(w->a, (size_t)(f->n_inputs + 1) * sizeof **out);
    if (!*out) return milk_errorf(w->ctx, MILK_ERR_NOMEM, "out of memory");
    for (int i = 0; i < f->n_inputs; i++) {
        const milk_var *v = f->inputs[i];
        if (!v->is_state) continue;
        pb_feature *pf = NEW(pb_feature, CORE_ML__SPECIFICATION__FEATURE_DESCRIPTION__INIT);
        pb_feature_type *ft = NEW(pb_feature_type, CORE_ML__SPECIFICATION__FEATURE_TYPE__INIT);
        CoreML__Specification__StateFeatureType *st =
            NEW(CoreML__Specification__StateFeatureType,
                CORE_ML__SPECIFICATION__STATE_FEATURE_TYPE__INIT);
        pb_array_type *at = NEW(pb_array_type, CORE_ML__SPECIFICATION__ARRAY_FEATURE_TYPE__INIT);
        if (!pf || !ft || !st || !at || !(at->shape = i64_dup(w, v->type.dims, v->type.rank)))
            return milk_errorf(w->ctx, MILK_ERR_NOMEM, "out of memory");
        at->n_shape = (size_t)v->type.rank;
        at->datatype = (CoreML__Specification__ArrayFeatureType__ArrayDataType)
                           array_dtype_of(v->type.dtype);
        st->type_case = CORE_ML__SPECIFICATION__STATE_FEATURE_TYPE__TYPE_ARRAY_TYPE;
        st->arraytype = at;
        ft->type_case = FT(STATE_TYPE);
        ft->statetype = st;
        pf->name = (char *)v->name;
        pf->type = ft;
        (*out)[(*n_out)++] = pf;
    }
    return MILK_OK;
}

/* The inputs, outputs and states of function f into the given fields:
 * recorded features where they still fit, derived ones otherwise. */
static milk_status function_features_write(coreml_writer *w,
                                           const milk_function *f,
                                           pb_feature ***in, size_t *n_in,
                                           pb_feature ***out, size_t *n_out,
                                           pb_feature ***st, size_t *n_st)
{
    const milk_feature *rin = NULL, *rout = NULL;
    int nrin = 0, nrout = 0, n;
    milk_var **inputs;
    MILK_TRY(plain_inputs(w, f, &inputs, &n));
    bool rec = milk_program_fn_features(w->p, f, &rin, &nrin, &rout, &nrout) &&
               recorded_fits(rin, nrin, rout, nrout, inputs, n, f->block);
    MILK_TRY(features_write(w, rec ? rin : NULL, inputs, n, true, in));
    *n_in = (size_t)n;
    MILK_TRY(features_write(w, rec ? rout : NULL, f->block->outputs,
                            f->block->n_outputs, false, out));
    *n_out = (size_t)f->block->n_outputs;
    return states_write(w, f, st, n_st);
}

/* Core ML describes a program of several functions, or of one that is
 * not main, function by function (spec 9). */
static bool multifunction(const milk_program *p)
{
    return p->n_functions != 1 || p->n_fn_features ||
           strcmp(p->functions[0]->name, "main") != 0 ||
           (p->default_function && strcmp(p->default_function, "main") != 0);
}

static milk_status functions_write(coreml_writer *w, pb_description *d)
{
    const milk_program *p = w->p;
    if (p->target < MILK_TARGET_IOS18)
        return milk_errorf(w->ctx, MILK_ERR_INVALID_ARG,
                           "a program of %d functions (or one not called "
                           "'main') needs deployment target iOS18 or later, "
                           "it targets %s",
                           p->n_functions, milk_target_name(p->target));
    pb_fn_desc **fds = milk_arena_alloc(w->a, (size_t)p->n_functions * sizeof *fds);
    const milk_function **order = milk_arena_alloc(w->a, (size_t)p->n_functions * sizeof *order);
    if (!fds || !order) return milk_errorf(w->ctx, MILK_ERR_NOMEM, "out of memory");
    /* in the order of the description read, then the others */
    int n = 0;
    for (int i = 0; i < p->n_fn_features; i++) {
        const milk_function *f = milk_program_function(p, p->fn_features[i].function);
        if (f) order[n++] = f;
    }
    for (int i = 0; i < p->n_functions; i++) {
        bool listed = false;
        for (int k = 0; k < n; k++) listed |= order[k] == p->functions[i];
        if (!listed) order[n++] = p->functions[i];
    }
    for (int i = 0; i < p->n_functions; i++) {
        const milk_function *f = order[i];
        pb_fn_desc *fd = NEW(pb_fn_desc, CORE_ML__SPECIFICATION__FUNCTION_DESCRIPTION__INIT);
        if (!fd) return milk_errorf(w->ctx, MILK_ERR_NOMEM, "out of memory");
        fd->name = (char *)f->name;
        milk_status s = function_features_write(w, f, &fd->input, &fd->n_input,
                                                &fd->output, &fd->n_output,
                                                &fd->state, &fd->n_state);
        if (s != MILK_OK) return coreml_prefix(w->ctx, s, "function '%s'", f->name);
        fds[i] = fd;
    }
    d->functions = fds;
    d->n_functions = (size_t)p->n_functions;
    d->defaultfunctionname = (char *)milk_program_default_function(p);
    return MILK_OK;
}

static pb_metadata *metadata_write(coreml_writer *w)
{
    const milk_program *p = w->p;
    pb_metadata *m = NEW(pb_metadata, CORE_ML__SPECIFICATION__METADATA__INIT);
    CoreML__Specification__Metadata__UserDefinedEntry **e =
        milk_arena_alloc(w->a, (size_t)(p->n_user ? p->n_user : 1) * sizeof *e);
    if (!m || !e) return oom(w);
    if (p->short_description) m->shortdescription = (char *)p->short_description;
    if (p->version_string) m->versionstring = (char *)p->version_string;
    if (p->author) m->author = (char *)p->author;
    if (p->license) m->license = (char *)p->license;
    for (int i = 0; i < p->n_user; i++) {
        e[i] = NEW(CoreML__Specification__Metadata__UserDefinedEntry,
                   CORE_ML__SPECIFICATION__METADATA__USER_DEFINED_ENTRY__INIT);
        if (!e[i]) return oom(w);
        e[i]->key = (char *)p->user[i].key;
        e[i]->value = (char *)p->user[i].value;
    }
    m->n_userdefined = (size_t)p->n_user;
    m->userdefined = e;
    return m;
}

milk_status coreml_desc_write(coreml_writer *w, pb_description **out)
{
    const milk_program *p = w->p;
    const milk_function *m = milk_program_function(p, "main");
    if (!m && p->n_functions <= 1)
        return milk_errorf(w->ctx, MILK_ERR_INVALID_ARG,
                           "the program has no function 'main'");
    pb_description *d = NEW(pb_description, CORE_ML__SPECIFICATION__MODEL_DESCRIPTION__INIT);
    if (!d) return milk_errorf(w->ctx, MILK_ERR_NOMEM, "out of memory");
    if (multifunction(p))
        MILK_TRY(functions_write(w, d));
    else
        MILK_TRY(function_features_write(w, m, &d->input, &d->n_input,
                                         &d->output, &d->n_output, &d->state,
                                         &d->n_state));
    bool any_meta = p->short_description || p->version_string || p->author ||
                    p->license || p->n_user;
    if (any_meta && !(d->metadata = metadata_write(w))) return MILK_ERR_NOMEM;
    *out = d;
    return MILK_OK;
}
