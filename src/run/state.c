/* state.c: the values of a program's states across runs (milk_state, the
 * MLState of Core ML): created zero as make_state() does, read and written
 * by name, saved to and loaded from .npz files. A runner binds each state
 * input of its function to the slot of the same name (runner.c), so that
 * read_state and write_state (src/ops/state.c) work on the state object's
 * storage directly. */
#include "run.h"
#include "../util/npy.h"

#include <stdlib.h>

static milk_status nomem(milk_ctx *ctx)
{
    return milk_errorf(ctx, MILK_ERR_NOMEM, "out of memory");
}

int milk_state_slot(const milk_state *s, const char *name)
{
    for (int i = 0; s && i < s->n; i++)
        if (strcmp(s->names[i], name) == 0) return i;
    return -1;
}

static bool same_type(const milk_tensor_type *a, const milk_tensor_type *b)
{
    if (a->dtype != b->dtype || a->rank != b->rank) return false;
    for (int i = 0; i < a->rank; i++)
        if (a->dims[i] != b->dims[i]) return false;
    return true;
}

/* Add the states of f not seen yet; a name seen with another type is an
 * error. */
static milk_status add_states(milk_ctx *ctx, milk_state *s,
                              const milk_function *f, int cap)
{
    for (int i = 0; i < f->n_inputs; i++) {
        const milk_var *v = f->inputs[i];
        if (!v->is_state) continue;
        int k = milk_state_slot(s, v->name);
        if (k >= 0) {
            if (same_type(&s->vals[k].type, &v->type)) continue;
            char a[160], b[160];
            return milk_errorf(ctx, MILK_ERR_INVALID_MODEL,
                               "state '%s' is %s in function '%s' and %s in "
                               "another function",
                               v->name, milk_type_str(&v->type, a, sizeof a),
                               f->name, milk_type_str(&s->vals[k].type, b, sizeof b));
        }
        if (s->n == cap) return milk_errorf(ctx, MILK_ERR_INVALID_ARG, "too many states");
        s->names[s->n] = v->name;
        milk_status st = milk_rt_alloc(ctx, &s->vals[s->n], &v->type);
        if (st != MILK_OK) return milk_error_prefix(ctx, "state '%s'", v->name);
        s->set[s->n++] = true; /* zero, as make_state() */
    }
    return MILK_OK;
}

milk_status milk_state_create(milk_ctx *ctx, const milk_program *p,
                              milk_state **out)
{
    *out = NULL;
    int cap = 0;
    for (int i = 0; i < p->n_functions; i++) cap += milk_function_state_count(p->functions[i]);
    milk_state *s = calloc(1, sizeof *s);
    if (!s) return nomem(ctx);
    s->p = p;
    s->names = calloc((size_t)cap + 1, sizeof *s->names);
    s->vals = calloc((size_t)cap + 1, sizeof *s->vals);
    s->set = calloc((size_t)cap + 1, sizeof *s->set);
    milk_status st = s->names && s->vals && s->set ? MILK_OK : nomem(ctx);
    for (int i = 0; st == MILK_OK && i < p->n_functions; i++)
        st = add_states(ctx, s, p->functions[i], cap);
    if (st != MILK_OK) {
        milk_state_free(s);
        return st;
    }
    *out = s;
    return MILK_OK;
}

void milk_state_free(milk_state *s)
{
    if (!s) return;
    for (int i = 0; s->vals && i < s->n; i++) milk_rt_release(&s->vals[i]);
    free(s->names);
    free(s->vals);
    free(s->set);
    free(s);
}

void milk_state_reset(milk_state *s)
{
    for (int i = 0; s && i < s->n; i++) {
        memset(s->vals[i].data, 0, (size_t)s->vals[i].count * sizeof(float));
        s->set[i] = true;
    }
}

void milk_state_clear(milk_state *s)
{
    for (int i = 0; s && i < s->n; i++) s->set[i] = false;
}

int milk_state_count(const milk_state *s)
{
    return s ? s->n : 0;
}

const char *milk_state_name(const milk_state *s, int i)
{
    return s && i >= 0 && i < s->n ? s->names[i] : NULL;
}

const milk_tensor_type *milk_state_type(const milk_state *s, int i)
{
    return s && i >= 0 && i < s->n ? &s->vals[i].type : NULL;
}

static milk_status find(milk_ctx *ctx, const milk_state *s, const char *name,
                        int *k)
{
    *k = milk_state_slot(s, name);
    if (*k >= 0) return MILK_OK;
    char list[512] = "";
    for (int i = 0; i < s->n; i++) {
        size_t n = strlen(list);
        snprintf(list + n, sizeof list - n, "%s'%s'", i ? ", " : "", s->names[i]);
    }
    return milk_errorf(ctx, MILK_ERR_NOT_FOUND,
                       "no state called '%s' (the program's states: %s)", name,
                       s->n ? list : "none");
}

milk_status milk_state_read(milk_ctx *ctx, const milk_state *s,
                            const char *name, milk_dtype as, void *dst,
                            size_t cap)
{
    int k;
    MILK_TRY(find(ctx, s, name, &k));
    const milk_rt *t = &s->vals[k];
    if (!s->set[k])
        return milk_errorf(ctx, MILK_ERR_INVALID_ARG,
                           "state '%s' holds no value (cleared, and not "
                           "written since)",
                           name);
    uint64_t need;
    if ((as != MILK_DTYPE_FP32 && as != MILK_DTYPE_FP16) ||
        !milk_dtype_nbytes(as, t->count, &need) || need > cap)
        return milk_errorf(ctx, MILK_ERR_INVALID_ARG,
                           "state '%s': %zu bytes of %s for %lld values", name,
                           cap, milk_dtype_name(as) ? milk_dtype_name(as) : "?",
                           (long long)t->count);
    const float *x = milk_rt_f32(t);
    if (as == MILK_DTYPE_FP32) memcpy(dst, x, (size_t)t->count * sizeof *x);
    else milk_fp32_to_fp16_n(x, dst, (size_t)t->count);
    return MILK_OK;
}

milk_status milk_state_write(milk_ctx *ctx, milk_state *s, const char *name,
                             const milk_tensor_type *type, const void *data)
{
    int k;
    MILK_TRY(find(ctx, s, name, &k));
    milk_rt *t = &s->vals[k];
    milk_tensor_type want = t->type;
    want.dtype = type->dtype;
    if ((type->dtype != MILK_DTYPE_FP32 && type->dtype != MILK_DTYPE_FP16) ||
        !same_type(type, &want)) {
        char a[160], b[160];
        return milk_errorf(ctx, MILK_ERR_INVALID_ARG,
                           "state '%s' is %s, the data given is %s (fp32 or "
                           "fp16 of the state's shape)",
                           name, milk_type_str(&t->type, a, sizeof a),
                           milk_type_str(type, b, sizeof b));
    }
    float *x = milk_rt_f32(t);
    for (int64_t i = 0; i < t->count; i++)
        x[i] = type->dtype == MILK_DTYPE_FP32
                   ? milk_fp16_to_fp32(milk_fp32_to_fp16(((const float *)data)[i]))
                   : milk_fp16_to_fp32(((const uint16_t *)data)[i]);
    s->set[k] = true;
    return MILK_OK;
}

milk_status milk_state_save_npz(milk_ctx *ctx, const milk_state *s,
                                const char *path)
{
    milk_array *arrays = calloc((size_t)s->n + 1, sizeof *arrays);
    const char **names = calloc((size_t)s->n + 1, sizeof *names);
    milk_status st = arrays && names ? MILK_OK : nomem(ctx);
    int n = 0;
    for (int i = 0; st == MILK_OK && i < s->n; i++) {
        if (!s->set[i]) continue;
        milk_tensor_type t = s->vals[i].type;
        st = milk_array_init(ctx, &t, &arrays[n]);
        if (st == MILK_OK)
            st = milk_state_read(ctx, s, s->names[i], MILK_DTYPE_FP16,
                                 arrays[n].data, (size_t)s->vals[i].count * 2);
        names[n++] = s->names[i];
    }
    if (st == MILK_OK) st = milk_npz_write(ctx, path, names, arrays, n);
    for (int i = 0; arrays && i < n; i++) milk_array_release(&arrays[i]);
    free(arrays);
    free(names);
    return st;
}

milk_status milk_state_load_npz(milk_ctx *ctx, milk_state *s,
                                const char *path)
{
    milk_npz z;
    MILK_TRY(milk_npz_read(ctx, path, &z));
    milk_status st = MILK_OK;
    for (int i = 0; st == MILK_OK && i < z.n; i++) {
        const milk_npz_member *m = &z.members[i];
        st = milk_state_write(ctx, s, m->name, &m->array.type, m->array.data);
    }
    milk_npz_release(&z);
    if (st != MILK_OK) milk_error_prefix(ctx, "%s", path);
    return st;
}
