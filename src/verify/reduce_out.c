/* reduce_out.c: what a reduction leaves: the text saying what was kept
 * and cut (printed, and BASE.txt), the JSON log of every candidate
 * (BASE.json), the inputs and reference values (BASE.npz) and the
 * package. */
#include "reduce.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdlib.h>
#include <unistd.h>

static milk_status nomem(milk_ctx *ctx)
{
    return milk_errorf(ctx, MILK_ERR_NOMEM, "out of memory");
}

/* ---- the text ------------------------------------------------------------------- */

static void print_counts(const milk_reduce *r, FILE *out)
{
    static const char *const phases[] = {"whole", "outputs", "inputs", "one-op"};
    static const char *const words[] = {"the whole program", "bisection of the outputs",
                                        "bisection of the inputs", "one-op removal"};
    fprintf(out, "candidates tried: %d (", r->n_steps);
    for (size_t p = 0, k = 0; p < MILK_ARRAY_LEN(phases); p++) {
        int n = 0;
        for (int i = 0; i < r->n_steps; i++) n += strcmp(r->steps[i].phase, phases[p]) == 0;
        if (n) fprintf(out, "%s%d %s", k++ ? ", " : "", n, words[p]);
    }
    fprintf(out, ")\n");
}

static void print_text(const milk_reduce *r, FILE *out)
{
    const milk_function *f = milk_program_function(r->best, "main");
    fprintf(out, "milk debug reduce: %s: %d op%s -> %d op%s\n", r->label, r->n_ops,
            r->n_ops == 1 ? "" : "s", r->n_kept, r->n_kept == 1 ? "" : "s");
    fprintf(out, "check: %s\n", r->check);
    print_counts(r, out);
    fprintf(out, "still fails: %s\n", r->failure);
    fprintf(out, "kept:\n");
    for (int i = 0; i < r->n_kept; i++) fprintf(out, "  %s\n", r->kept[i]);
    fprintf(out, "inputs:\n");
    for (int i = 0; i < r->n_inputs; i++) {
        const milk_var *v = milk_function_input(f, i);
        char shape[256];
        vf_shape_str(milk_var_type(v), shape, sizeof shape);
        const char *dt = milk_dtype_name(milk_var_type(v)->dtype);
        fprintf(out, "  %s %s%s: %s, value from %s\n", r->inputs[i].name, dt ? dt : "?", shape,
                r->inputs[i].origin, r->inputs[i].source);
    }
    fprintf(out, "outputs:");
    for (int i = 0; i < milk_block_output_count(milk_function_block(f)); i++)
        fprintf(out, "%s %s", i ? "," : "", milk_var_name(milk_block_output(milk_function_block(f), i)));
    fprintf(out, "\ncut: the other %d op%s of the program\n", r->n_ops - r->n_kept,
            r->n_ops - r->n_kept == 1 ? "" : "s");
}


/* ---- the JSON log ------------------------------------------------------------------ */

static cJSON *json_step(const milk_reduce_step *st)
{
    cJSON *o = cJSON_CreateObject();
    if (!o) return NULL;
    cJSON_AddNumberToObject(o, "index", st->index);
    cJSON_AddStringToObject(o, "phase", st->phase);
    cJSON_AddStringToObject(o, "candidate", st->change);
    cJSON_AddNumberToObject(o, "ops", st->n_ops);
    cJSON_AddNumberToObject(o, "inputs", st->n_inputs);
    cJSON_AddStringToObject(o, "verdict", milk_reduce_verdict_name(st->verdict));
    cJSON_AddStringToObject(o, "detail", st->detail);
    cJSON_AddBoolToObject(o, "kept", st->kept);
    cJSON_AddNumberToObject(o, "seconds", isfinite(st->seconds) ? st->seconds : 0);
    return o;
}

/* {"program", "check", "ops_before", "ops_after", "failure", "kept": [...],
 *  "inputs": [{"name", "origin", "value_from"}], "outputs": [...],
 *  "candidates": [{"index", "phase", "candidate", "ops", "inputs",
 *                  "verdict", "detail", "kept", "seconds"}]} */
static cJSON *json_log(const milk_reduce *r)
{
    const milk_function *f = milk_program_function(r->best, "main");
    const milk_block *b = milk_function_block(f);
    cJSON *o = cJSON_CreateObject();
    if (!o) return NULL;
    cJSON_AddStringToObject(o, "program", r->label);
    cJSON_AddStringToObject(o, "check", r->check);
    cJSON_AddNumberToObject(o, "ops_before", r->n_ops);
    cJSON_AddNumberToObject(o, "ops_after", r->n_kept);
    cJSON_AddStringToObject(o, "failure", r->failure);
    cJSON_AddItemToObject(o, "kept", r->n_kept ? cJSON_CreateStringArray(r->kept, r->n_kept)
                                               : cJSON_CreateArray());
    cJSON *ins = cJSON_AddArrayToObject(o, "inputs");
    for (int i = 0; ins && i < r->n_inputs; i++) {
        cJSON *in = cJSON_CreateObject();
        if (!in) continue;
        cJSON_AddStringToObject(in, "name", r->inputs[i].name);
        cJSON_AddStringToObject(in, "origin", r->inputs[i].origin);
        cJSON_AddStringToObject(in, "value_from", r->inputs[i].source);
        cJSON_AddItemToArray(ins, in);
    }
    cJSON *outs = cJSON_AddArrayToObject(o, "outputs");
    for (int i = 0; outs && i < milk_block_output_count(b); i++)
        cJSON_AddItemToArray(outs, cJSON_CreateString(milk_var_name(milk_block_output(b, i))));
    cJSON *steps = cJSON_AddArrayToObject(o, "candidates");
    for (int i = 0; steps && i < r->n_steps; i++)
        cJSON_AddItemToArray(steps, json_step(&r->steps[i]));
    return o;
}

static char *json_text(const milk_reduce *r)
{
    cJSON *o = json_log(r);
    char *text = o ? cJSON_Print(o) : NULL;
    cJSON_Delete(o);
    return text;
}

milk_status milk_reduce_print(milk_ctx *ctx, const milk_reduce *r, FILE *out,
                              unsigned flags)
{
    if (!(flags & MILK_REDUCE_JSON)) {
        print_text(r, out);
        return MILK_OK;
    }
    char *text = json_text(r);
    if (!text) return nomem(ctx);
    fprintf(out, "%s\n", text);
    cJSON_free(text);
    return MILK_OK;
}

/* ---- the files --------------------------------------------------------------------- */

/* PATH.mlpackage -> PATH + ext; any other name gets ext appended. */
static char *beside(const char *path, const char *ext)
{
    size_t n = strlen(path), k = strlen(".mlpackage");
    while (n > 1 && path[n - 1] == '/') n--;
    if (n > k && strncmp(path + n - k, ".mlpackage", k) == 0) n -= k;
    char *s = malloc(n + strlen(ext) + 1);
    if (s) {
        memcpy(s, path, n);
        strcpy(s + n, ext);
    }
    return s;
}

static milk_status write_text(milk_ctx *ctx, const char *path, char *text, size_t len)
{
    const void *bufs[1] = {text};
    return milk_file_replace(ctx, path, bufs, &len, 1);
}

static milk_status text_file(milk_ctx *ctx, const milk_reduce *r, const char *path)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    if (!f) return nomem(ctx);
    print_text(r, f);
    bool bad = ferror(f) != 0;
    if (fclose(f) != 0 || bad) {
        free(buf);
        return nomem(ctx);
    }
    milk_status s = write_text(ctx, path, buf, len);
    free(buf);
    return s;
}

static milk_status json_file(milk_ctx *ctx, const milk_reduce *r, const char *path)
{
    char *text = json_text(r);
    if (!text) return nomem(ctx);
    size_t len = strlen(text);
    char *with_nl = malloc(len + 2);
    if (with_nl) memcpy(with_nl, text, len);
    cJSON_free(text);
    if (!with_nl) return nomem(ctx);
    with_nl[len++] = '\n';
    milk_status s = write_text(ctx, path, with_nl, len);
    free(with_nl);
    return s;
}

milk_status milk_reduce_save(milk_ctx *ctx, const milk_reduce *r, const char *path)
{
    char *npz = beside(path, ".npz"), *txt = beside(path, ".txt"), *json = beside(path, ".json");
    milk_status s = npz && txt && json ? MILK_OK : nomem(ctx);
    int done = 0;
    if (s == MILK_OK && (s = milk_npz_write(ctx, npz, r->value_names, r->values,
                                            r->n_values)) == MILK_OK)
        done++;
    if (s == MILK_OK && (s = text_file(ctx, r, txt)) == MILK_OK) done++;
    if (s == MILK_OK && (s = json_file(ctx, r, json)) == MILK_OK) done++;
    if (s == MILK_OK) s = milk_program_save(ctx, r->best, path);
    if (s != MILK_OK) { /* none of them is left */
        if (done > 0) unlink(npz);
        if (done > 1) unlink(txt);
        if (done > 2) unlink(json);
    }
    free(npz);
    free(txt);
    free(json);
    return s;
}
