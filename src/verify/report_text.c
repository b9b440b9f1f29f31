/* report_text.c: a verification result as a text table with a summary (first
 * divergence, suspects, fp16 overflows), or as one JSON object (layout in
 * milk.h, at milk_verify_print). */
#include "verify.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdlib.h>

const char *vf_state_name(milk_verify_state s)
{
    switch (s) {
    case MILK_VERIFY_MATCH: return "ok";
    case MILK_VERIFY_DIVERGED: return "diverged";
    case MILK_VERIFY_PROPAGATED: return "propagated";
    }
    return "?";
}

void vf_tolerance_str(const milk_verify *v, char *buf, size_t n)
{
    double a32, r32, a16, r16;
    vf_tolerance(v, false, NULL, &a32, &r32);
    vf_tolerance(v, true, NULL, &a16, &r16);
    size_t k;
    if (a32 == a16 && r32 == r16)
        k = (size_t)snprintf(buf, n, "atol %g rtol %g", a32, r32);
    else
        k = (size_t)snprintf(buf, n, "fp32 atol %g rtol %g, fp16 atol %g rtol %g", a32, r32,
                             a16, r16);
    for (int i = 0; i < v->n_tols && k < n; i++) {
        const milk_verify_tolerance *t = &v->tols[i];
        k += (size_t)snprintf(buf + k, n - k, "; %s:", t->var);
        if ((t->set & MILK_VERIFY_SET_ATOL) && k < n)
            k += (size_t)snprintf(buf + k, n - k, " atol %g", t->atol);
        if ((t->set & MILK_VERIFY_SET_RTOL) && k < n)
            k += (size_t)snprintf(buf + k, n - k, " rtol %g", t->rtol);
    }
    if (k < n)
        snprintf(buf + k, n - k, "; checking the %s error", milk_verify_stat_name(v->stat));
}

/* The column of the statistic checked, when it is not the max. */
static const char *stat_head(const milk_verify *v)
{
    switch (v->stat) {
    case MILK_VERIFY_STAT_MEAN: return "mean abs";
    case MILK_VERIFY_STAT_MEDIAN: return "median abs";
    case MILK_VERIFY_STAT_ELEMWISE: return "beyond";
    case MILK_VERIFY_STAT_MAX: break;
    }
    return NULL;
}

/* ---- the table ------------------------------------------------------------ */

enum { C_POS, C_OP, C_TYPE, C_VAR, C_SHAPE, C_ABS, C_REL, C_STAT, C_SNR, C_PSNR, C_STATUS,
       C_NOTES, NCOL };
#define CELL 160

static void fmt_num(char *buf, double x, const char *fmt)
{
    if (isinf(x)) snprintf(buf, CELL, "%sinf", x < 0 ? "-" : "");
    else snprintf(buf, CELL, fmt, x);
}

static void row_cells(const milk_verify *v, int i, char cells[NCOL][CELL])
{
    const milk_verify_row *r = &v->rows[i];
    snprintf(cells[C_POS], CELL, "%d", r->op_index);
    snprintf(cells[C_OP], CELL, "%s", r->op);
    snprintf(cells[C_TYPE], CELL, "%s", r->op_type);
    snprintf(cells[C_VAR], CELL, "%s", r->var);
    vf_shape_str(&r->type, cells[C_SHAPE], CELL);
    fmt_num(cells[C_ABS], r->max_abs, "%.3g");
    fmt_num(cells[C_REL], r->max_rel, "%.3g");
    fmt_num(cells[C_SNR], r->snr_db, "%.1f");
    fmt_num(cells[C_PSNR], r->psnr_db, "%.1f");
    if (v->stat == MILK_VERIFY_STAT_MEAN) fmt_num(cells[C_STAT], r->mean_abs, "%.3g");
    else if (v->stat == MILK_VERIFY_STAT_MEDIAN) fmt_num(cells[C_STAT], r->median_abs, "%.3g");
    else if (v->stat == MILK_VERIFY_STAT_ELEMWISE)
        snprintf(cells[C_STAT], CELL, "%lld", (long long)r->n_beyond);
    else cells[C_STAT][0] = 0;
    snprintf(cells[C_STATUS], CELL, "%s", r->state == MILK_VERIFY_DIVERGED
                                             ? "DIVERGED" : vf_state_name(r->state));
    size_t k = 0;
    char *nt = cells[C_NOTES];
    nt[0] = 0;
    if (i == v->first) k += (size_t)snprintf(nt + k, CELL - k, "<- first ");
    /* k stays below CELL: each note is short and CELL is roomy */
    if (r->shape_mismatch && k < CELL) k += (size_t)snprintf(nt + k, CELL - k, "shape differs ");
    if (strcmp(r->ref, r->var) != 0 && k < CELL)
        k += (size_t)snprintf(nt + k, CELL - k, "ref '%s' ", r->ref);
    if ((r->n_overflow || r->n_inf || r->n_nan) && k < CELL)
        snprintf(nt + k, CELL - k, "fp16 overflow %lld inf %lld nan %lld",
                 (long long)r->n_overflow, (long long)r->n_inf, (long long)r->n_nan);
}

/* Numbers right-aligned, text left-aligned, no trailing blanks. */
static void print_line(FILE *out, char cells[NCOL][CELL], const int *w, bool stat)
{
    char line[NCOL * (CELL + 2) + 1];
    size_t k = 0;
    for (int c = 0; c < NCOL; c++) {
        if (c == C_STAT && !stat) continue;
        bool num = c == C_POS || c == C_ABS || c == C_REL || c == C_STAT || c == C_SNR ||
                   c == C_PSNR;
        k += (size_t)snprintf(line + k, sizeof line - k, num ? "%*s  " : "%-*s  ", w[c],
                              cells[c]);
    }
    while (k > 0 && line[k - 1] == ' ') k--;
    fprintf(out, "%.*s\n", (int)k, line);
}

static milk_status print_table(const milk_verify *v, FILE *out)
{
    const char *const head[NCOL] = {"#", "op", "type", "var", "shape", "max abs", "max rel",
                                    stat_head(v) ? stat_head(v) : "", "SNR dB", "PSNR dB",
                                    "status", ""};
    char (*cells)[NCOL][CELL] = malloc(((size_t)v->n_rows + 1) * sizeof *cells);
    if (!cells) return MILK_ERR_NOMEM;
    int w[NCOL];
    for (int c = 0; c < NCOL; c++) {
        snprintf(cells[v->n_rows][c], CELL, "%s", head[c]);
        w[c] = (int)strlen(head[c]);
    }
    for (int i = 0; i < v->n_rows; i++) {
        row_cells(v, i, cells[i]);
        for (int c = 0; c < NCOL; c++)
            if ((int)strlen(cells[i][c]) > w[c]) w[c] = (int)strlen(cells[i][c]);
    }
    print_line(out, cells[v->n_rows], w, stat_head(v) != NULL);
    for (int i = 0; i < v->n_rows; i++) print_line(out, cells[i], w, stat_head(v) != NULL);
    free(cells);
    return MILK_OK;
}

/* ---- the summary ------------------------------------------------------------ */

static void print_first(const milk_verify *v, FILE *out)
{
    if (v->first < 0) {
        fprintf(out, "all %d compared vars match\n", v->n_rows);
        return;
    }
    const milk_verify_row *r = &v->rows[v->first];
    char shape[CELL];
    vf_shape_str(&r->type, shape, sizeof shape);
    char snr[CELL], psnr[CELL];
    fmt_num(snr, r->snr_db, "%.1f");
    fmt_num(psnr, r->psnr_db, "%.1f");
    fprintf(out, "first divergence: op '%s' (%s), var '%s' %s: max abs error %.3g, "
                 "max rel %.3g, SNR %s dB, PSNR %s dB (tolerance atol %g rtol %g)%s\n",
            r->op, r->op_type, r->var, shape, r->max_abs, r->max_rel, snr, psnr, r->atol,
            r->rtol, r->shape_mismatch ? "; the reference has another shape" : "");
    if (v->n_suspects == 0) {
        fprintf(out, "  every input of this op matches %s or is a model input or "
                     "constant: the op itself computes differently\n", v->ref_label);
        return;
    }
    fprintf(out, "  its inputs were not all compared: the divergence may also start "
                 "in one of the %d op%s feeding it without reference values:\n   ",
            v->n_suspects, v->n_suspects > 1 ? "s" : "");
    for (int i = 0; i < v->n_suspects && i < 12; i++)
        fprintf(out, "%s %s", i ? "," : "", v->suspects[i]);
    fprintf(out, "%s\n", v->n_suspects > 12 ? ", ..." : "");
}

/* For a program with fp16 values: the ops whose fp16 values left the
 * range, and every op that loses more than the tolerance on clean inputs
 * (not only the first). */
static void print_audit(const milk_verify *v, FILE *out, int n_diverged)
{
    bool fp16 = false;
    for (int i = 0; i < v->n_rows; i++) fp16 |= v->rows[i].type.dtype == MILK_DTYPE_FP16;
    if (!fp16) return;
    fprintf(out, "fp16 audit: %d op%s beyond 65504 or inf/NaN; %d op%s more than the "
                 "tolerance on matching inputs%s", v->n_flags,
            v->n_flags == 1 ? " goes" : "s go", n_diverged, n_diverged == 1 ? " loses" : "s lose",
            n_diverged ? ":" : "");
    for (int i = 0, k = 0; i < v->n_rows; i++)
        if (v->rows[i].state == MILK_VERIFY_DIVERGED && k++ < 12)
            fprintf(out, "%s %s (%s)", k > 1 ? "," : "", v->rows[i].op, v->rows[i].op_type);
    fprintf(out, "%s\n", n_diverged > 12 ? ", ..." : "");
}

static void print_summary(const milk_verify *v, FILE *out)
{
    int n[3] = {0, 0, 0};
    for (int i = 0; i < v->n_rows; i++) n[v->rows[i].state]++;
    fprintf(out, "\n%d vars compared: %d ok, %d diverged, %d propagated; %d op "
                 "outputs without reference value\n",
            v->n_rows, n[0], n[1], n[2], v->n_unchecked);
    if (v->stopped)
        fprintf(out, "stopped at the first var beyond tolerance (fail fast): later vars "
                     "were not compared\n");
    print_first(v, out);
    print_audit(v, out, n[MILK_VERIFY_DIVERGED]);
    for (int i = 0; i < v->n_flags; i++) {
        const vf_flag *f = &v->flags_list[i];
        fprintf(out, "fp16: op '%s' (%s): %lld values beyond 65504, %lld inf, %lld NaN\n",
                f->op, f->op_type, (long long)f->n_overflow, (long long)f->n_inf,
                (long long)f->n_nan);
    }
    for (int i = 0; i < v->n_paired; i++)
        fprintf(out, "paired: '%s' compared with '%s' of %s (%s)\n", v->paired[i].var,
                v->paired[i].ref, v->ref_label,
                strcmp(v->paired[i].how, "position") == 0
                    ? "model outputs paired by position: their names differ"
                    : "--pair");
    if (v->n_unmatched) {
        fprintf(out, "note: %d tensor%s of %s match%s no var:", v->n_unmatched,
                v->n_unmatched > 1 ? "s" : "", v->ref_label, v->n_unmatched > 1 ? "" : "es");
        for (int i = 0; i < v->n_unmatched && i < 12; i++)
            fprintf(out, "%s %s", i ? "," : "", v->unmatched[i]);
        fprintf(out, "%s\n", v->n_unmatched > 12 ? ", ..." : "");
    }
}

static milk_status print_text(const milk_verify *v, FILE *out)
{
    char tol[256];
    vf_tolerance_str(v, tol, sizeof tol);
    fprintf(out, "milk verify: %s against %s (precision %s; tolerance %s)\n", v->label,
            v->ref_label, v->precision == MILK_PRECISION_FP32 ? "fp32" : "as-declared", tol);
    if (v->random)
        fprintf(out, "random inputs: seed %llu (--seed %llu repeats them)\n",
                (unsigned long long)v->seed, (unsigned long long)v->seed);
    fputc('\n', out);
    MILK_TRY(print_table(v, out));
    print_summary(v, out);
    return MILK_OK;
}

/* ---- JSON ------------------------------------------------------------------ */

static void add_num(cJSON *o, const char *k, double x)
{
    if (isfinite(x)) cJSON_AddNumberToObject(o, k, x);
    else cJSON_AddNullToObject(o, k);
}

/* cJSON_CreateStringArray refuses a NULL array, even of 0 strings. */
static cJSON *str_array(const char *const *s, int n)
{
    return n > 0 ? cJSON_CreateStringArray(s, n) : cJSON_CreateArray();
}

static cJSON *json_row(const milk_verify *v, int i)
{
    const milk_verify_row *r = &v->rows[i];
    cJSON *o = cJSON_CreateObject();
    if (!o) return NULL;
    cJSON_AddStringToObject(o, "op", r->op);
    cJSON_AddStringToObject(o, "type", r->op_type);
    cJSON_AddStringToObject(o, "var", r->var);
    cJSON_AddStringToObject(o, "ref", r->ref);
    cJSON_AddNumberToObject(o, "op_index", r->op_index);
    cJSON_AddStringToObject(o, "dtype", milk_dtype_name(r->type.dtype) ? milk_dtype_name(r->type.dtype) : "?");
    cJSON *shape = cJSON_AddArrayToObject(o, "shape");
    for (int d = 0; shape && d < r->type.rank; d++)
        cJSON_AddItemToArray(shape, cJSON_CreateNumber((double)r->type.dims[d]));
    add_num(o, "max_abs", r->max_abs);
    add_num(o, "max_rel", r->max_rel);
    add_num(o, "snr_db", r->snr_db);
    add_num(o, "psnr_db", r->psnr_db);
    add_num(o, "mean_abs", r->mean_abs);
    add_num(o, "median_abs", r->median_abs);
    cJSON_AddNumberToObject(o, "beyond", (double)r->n_beyond);
    add_num(o, "atol", r->atol);
    add_num(o, "rtol", r->rtol);
    cJSON_AddStringToObject(o, "status", vf_state_name(r->state));
    cJSON_AddBoolToObject(o, "shape_mismatch", r->shape_mismatch);
    cJSON_AddNumberToObject(o, "overflow", (double)r->n_overflow);
    cJSON_AddNumberToObject(o, "inf", (double)r->n_inf);
    cJSON_AddNumberToObject(o, "nan", (double)r->n_nan);
    return o;
}

static cJSON *json_first(const milk_verify *v)
{
    if (v->first < 0) return cJSON_CreateNull();
    const milk_verify_row *r = &v->rows[v->first];
    cJSON *o = cJSON_CreateObject();
    if (!o) return NULL;
    cJSON_AddNumberToObject(o, "row", v->first);
    cJSON_AddStringToObject(o, "op", r->op);
    cJSON_AddStringToObject(o, "type", r->op_type);
    cJSON_AddStringToObject(o, "var", r->var);
    cJSON_AddItemToObject(o, "suspects", str_array(v->suspects, v->n_suspects));
    return o;
}

static cJSON *json_flags(const milk_verify *v)
{
    cJSON *a = cJSON_CreateArray();
    for (int i = 0; a && i < v->n_flags; i++) {
        const vf_flag *f = &v->flags_list[i];
        cJSON *o = cJSON_CreateObject();
        if (!o) continue;
        cJSON_AddStringToObject(o, "op", f->op);
        cJSON_AddStringToObject(o, "type", f->op_type);
        cJSON_AddNumberToObject(o, "op_index", f->op_index);
        cJSON_AddNumberToObject(o, "overflow", (double)f->n_overflow);
        cJSON_AddNumberToObject(o, "inf", (double)f->n_inf);
        cJSON_AddNumberToObject(o, "nan", (double)f->n_nan);
        cJSON_AddItemToArray(a, o);
    }
    return a;
}

static cJSON *json_result(const milk_verify *v)
{
    cJSON *o = cJSON_CreateObject();
    if (!o) return NULL;
    cJSON_AddStringToObject(o, "program", v->label);
    cJSON_AddStringToObject(o, "reference", v->ref_label);
    cJSON_AddStringToObject(o, "mode", v->two_programs ? "programs" : "reference");
    cJSON_AddStringToObject(o, "precision",
                            v->precision == MILK_PRECISION_FP32 ? "fp32" : "as-declared");
    if (v->random) cJSON_AddNumberToObject(o, "seed", (double)v->seed);
    else cJSON_AddNullToObject(o, "seed");
    cJSON_AddBoolToObject(o, "ok", v->first < 0);
    cJSON_AddStringToObject(o, "error_stat", milk_verify_stat_name(v->stat));
    cJSON_AddBoolToObject(o, "stopped", v->stopped);
    cJSON *tols = cJSON_AddArrayToObject(o, "tolerances");
    for (int i = 0; tols && i < v->n_tols; i++) {
        cJSON *t = cJSON_CreateObject();
        if (!t) continue;
        cJSON_AddStringToObject(t, "var", v->tols[i].var);
        if (v->tols[i].set & MILK_VERIFY_SET_ATOL) add_num(t, "atol", v->tols[i].atol);
        if (v->tols[i].set & MILK_VERIFY_SET_RTOL) add_num(t, "rtol", v->tols[i].rtol);
        cJSON_AddItemToArray(tols, t);
    }
    cJSON *rows = cJSON_AddArrayToObject(o, "rows");
    for (int i = 0; rows && i < v->n_rows; i++) cJSON_AddItemToArray(rows, json_row(v, i));
    cJSON_AddItemToObject(o, "first_divergence", json_first(v));
    cJSON_AddItemToObject(o, "fp16", json_flags(v));
    cJSON_AddNumberToObject(o, "unchecked", v->n_unchecked);
    cJSON_AddItemToObject(o, "unmatched_reference",
                          str_array(v->unmatched, v->n_unmatched));
    cJSON *paired = cJSON_AddArrayToObject(o, "paired");
    for (int i = 0; paired && i < v->n_paired; i++) {
        cJSON *p = cJSON_CreateObject();
        if (!p) continue;
        cJSON_AddStringToObject(p, "var", v->paired[i].var);
        cJSON_AddStringToObject(p, "ref", v->paired[i].ref);
        cJSON_AddStringToObject(p, "how", v->paired[i].how);
        cJSON_AddItemToArray(paired, p);
    }
    return o;
}

static milk_status print_json(milk_ctx *ctx, const milk_verify *v, FILE *out)
{
    cJSON *o = json_result(v);
    char *text = o ? cJSON_Print(o) : NULL;
    cJSON_Delete(o);
    if (!text) return milk_errorf(ctx, MILK_ERR_NOMEM, "out of memory");
    fputs(text, out);
    fputc('\n', out);
    cJSON_free(text);
    return MILK_OK;
}

milk_status milk_verify_print(milk_ctx *ctx, const milk_verify *v, FILE *out,
                              unsigned flags)
{
    if (flags & MILK_VERIFY_JSON) return print_json(ctx, v, out);
    if (print_text(v, out) != MILK_OK)
        return milk_errorf(ctx, MILK_ERR_NOMEM, "out of memory");
    return MILK_OK;
}
