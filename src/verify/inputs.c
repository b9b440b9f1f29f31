/* inputs.c: the model inputs of a verification run: files given with
 * --input, tensors of the reference archive, or seeded random values
 * (two-program mode), gathered once so that both programs of a
 * comparison see the very same values. */
#include "verify.h"

#include <math.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

/* splitmix64: tiny, and the same sequence on every platform for a seed. */
static uint64_t next_u64(uint64_t *s)
{
    uint64_t z = (*s += UINT64_C(0x9E3779B97F4A7C15));
    z = (z ^ (z >> 30)) * UINT64_C(0xBF58476D1CE4E5B9);
    z = (z ^ (z >> 27)) * UINT64_C(0x94D049BB133111EB);
    return z ^ (z >> 31);
}

/* Uniform in (0, 1]. */
static double next_unit(uint64_t *s)
{
    return ((double)(next_u64(s) >> 11) + 1.0) / 9007199254740992.0;
}

/* Standard normal (Box-Muller; one value per call keeps it simple). */
static float next_normal(uint64_t *s)
{
    double u = next_unit(s), w = next_unit(s);
    return (float)(sqrt(-2.0 * log(u)) * cos(6.283185307179586 * w));
}

static milk_status random_fill(milk_ctx *ctx, const milk_var *in, uint64_t *state,
                               milk_array *out)
{
    milk_tensor_type t = in->type;
    if (milk_tensor_type_count(&t) < 0)
        return milk_errorf(ctx, MILK_ERR_INVALID_ARG,
                           "input '%s' has a flexible shape: give its values "
                           "with --input %s=FILE.npy", in->name, in->name);
    milk_dtype d = t.dtype;
    bool flt = d == MILK_DTYPE_FP16 || d == MILK_DTYPE_FP32 || d == MILK_DTYPE_FP64;
    t.dtype = flt ? MILK_DTYPE_FP32 : d == MILK_DTYPE_BOOL ? MILK_DTYPE_BOOL
                                                           : MILK_DTYPE_INT32;
    MILK_TRY(milk_array_init(ctx, &t, out));
    int64_t n = milk_tensor_type_count(&t);
    for (int64_t i = 0; i < n; i++) {
        if (flt) ((float *)out->data)[i] = next_normal(state);
        else if (d == MILK_DTYPE_BOOL) ((uint8_t *)out->data)[i] = next_u64(state) & 1;
        else ((int32_t *)out->data)[i] = (int32_t)(next_u64(state) & 3);
    }
    return MILK_OK;
}

static const milk_var *find_input(const milk_function *fn, const char *name,
                                  size_t len)
{
    for (int i = 0; i < fn->n_inputs; i++)
        if (strlen(fn->inputs[i]->name) == len &&
            strncmp(fn->inputs[i]->name, name, len) == 0)
            return fn->inputs[i];
    return NULL;
}

static void input_list(const milk_function *fn, char *buf, size_t n)
{
    size_t k = 0;
    buf[0] = 0;
    for (int i = 0; i < fn->n_inputs && k < n; i++)
        k += (size_t)snprintf(buf + k, n - k, "%s%s", i ? ", " : "",
                              fn->inputs[i]->name);
}

/* Every --input must be NAME=FILE for an input of fn. */
static milk_status check_overrides(milk_ctx *ctx, const milk_function *fn,
                                   const milk_verify_params *p)
{
    for (int i = 0; i < p->n_inputs; i++) {
        const char *spec = p->inputs[i], *eq = strchr(spec, '=');
        if (!eq || eq == spec || !eq[1])
            return milk_errorf(ctx, MILK_ERR_INVALID_ARG,
                               "--input '%s': expected NAME=FILE.npy", spec);
        if (!find_input(fn, spec, (size_t)(eq - spec))) {
            char list[1024];
            input_list(fn, list, sizeof list);
            return milk_errorf(ctx, MILK_ERR_INVALID_ARG,
                               "--input '%s': no input called '%.*s'; the "
                               "inputs are: %s", spec, (int)(eq - spec), spec, list);
        }
    }
    return MILK_OK;
}

/* The file of the last --input for name, or NULL. */
static const char *override_for(const milk_verify_params *p, const char *name)
{
    const char *file = NULL;
    size_t len = strlen(name);
    for (int i = 0; i < p->n_inputs; i++)
        if (strncmp(p->inputs[i], name, len) == 0 && p->inputs[i][len] == '=')
            file = p->inputs[i] + len + 1;
    return file;
}

static uint64_t clock_seed(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    uint64_t s = (uint64_t)ts.tv_sec * 1000000007u ^ (uint64_t)ts.tv_nsec ^
                 ((uint64_t)getpid() << 32);
    return next_u64(&s) % 1000000000u; /* short enough to type back */
}

static milk_status gather_one(milk_ctx *ctx, const milk_var *in,
                              const milk_npz *ref, const char *ref_label,
                              const milk_verify_params *p, bool rng,
                              milk_verify *v, uint64_t *state, vf_input *it)
{
    const char *file = override_for(p, in->name);
    const milk_array *a = ref ? milk_npz_find(ref, in->name) : NULL;
    it->name = in->name;
    if (file) {
        MILK_TRY(milk_npy_read(ctx, file, &it->own));
        it->use = &it->own;
        it->from = file;
    } else if (a) {
        it->use = a;
        it->from = ref_label ? ref_label : "the reference";
    } else if (rng) {
        if (!v->random) {
            v->random = true;
            v->seed = p->flags & MILK_VERIFY_SET_SEED ? p->seed : clock_seed();
            *state = v->seed;
        }
        MILK_TRY(random_fill(ctx, in, state, &it->own));
        it->use = &it->own;
        it->from = "random values";
    } else {
        return milk_errorf(ctx, MILK_ERR_INVALID_ARG,
                           "model input '%s' is neither in %s nor given with "
                           "--input %s=FILE.npy", in->name,
                           ref_label ? ref_label : "the reference", in->name);
    }
    return MILK_OK;
}

milk_status vf_inputs_gather(milk_ctx *ctx, const milk_function *fn,
                             const milk_npz *ref, const char *ref_label,
                             const milk_verify_params *p, bool rng,
                             milk_verify *v, vf_inputs *out)
{
    memset(out, 0, sizeof *out);
    MILK_TRY(check_overrides(ctx, fn, p));
    out->items = calloc((size_t)fn->n_inputs + 1, sizeof *out->items);
    if (!out->items) return milk_errorf(ctx, MILK_ERR_NOMEM, "out of memory");
    uint64_t state = v ? v->seed : 0;
    for (int i = 0; i < fn->n_inputs; i++) {
        if (fn->inputs[i]->is_state) continue; /* the runner's state object */
        milk_status s = gather_one(ctx, fn->inputs[i], ref, ref_label, p, rng, v,
                                   &state, &out->items[out->n++]);
        if (s != MILK_OK) {
            vf_inputs_release(out);
            return s;
        }
    }
    return MILK_OK;
}

milk_status vf_inputs_set(milk_ctx *ctx, const vf_inputs *in, milk_runner *r,
                          const milk_function *fn)
{
    int n = fn->n_inputs - milk_function_state_count(fn);
    if (n != in->n)
        return milk_errorf(ctx, MILK_ERR_INVALID_ARG,
                           "the programs have different inputs (%d and %d)",
                           in->n, n);
    for (int i = 0; i < fn->n_inputs; i++) {
        const vf_input *it = NULL;
        if (fn->inputs[i]->is_state) continue;
        for (int k = 0; k < in->n && !it; k++)
            if (strcmp(in->items[k].name, fn->inputs[i]->name) == 0) it = &in->items[k];
        if (!it)
            return milk_errorf(ctx, MILK_ERR_INVALID_ARG,
                               "input '%s' of one program is not an input of the "
                               "other", fn->inputs[i]->name);
        if (milk_runner_set_input(ctx, r, it->name, &it->use->type,
                                  it->use->data) != MILK_OK)
            return milk_error_prefix(ctx, "%s", it->from);
    }
    return MILK_OK;
}

void vf_inputs_release(vf_inputs *in)
{
    if (!in) return;
    for (int i = 0; i < in->n && in->items; i++) milk_array_release(&in->items[i].own);
    free(in->items);
    memset(in, 0, sizeof *in);
}
