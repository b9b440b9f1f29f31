/* report_html.c: a verification result as one self-contained XHTML page: a
 * summary, an inline SVG chart of each compared var's relative error
 * along the program (log scale, tolerance ticks, the first divergence and
 * fp16 overflows marked) and the table. No scripts, no external
 * resources; the page is well-formed XML, so any XML parser reads it. */
#include "verify.h"

#include <math.h>
#include <stdlib.h>

/* Chart geometry (SVG user units). */
#define W 960.0
#define H 340.0
#define ML 78.0  /* left margin: decade labels */
#define MR 24.0
#define MT 34.0  /* top margin: overflow markers */
#define MB 44.0
#define PW (W - ML - MR)
#define PH (H - MT - MB)

static const char css[] =
    "body{font-family:sans-serif;margin:24px;color:#222}"
    "h1{font-size:20px}h2{font-size:16px;margin-top:28px}"
    "table{border-collapse:collapse;font-size:12px}"
    "td,th{border:1px solid #ccc;padding:2px 6px;text-align:left}"
    "td.n{text-align:right;font-family:monospace}"
    "tr.diverged td{background:#fdd}tr.propagated td{background:#fee9d6}"
    "tr.first td{background:#f99;font-weight:bold}"
    ".verdict{font-size:15px;padding:8px;border-radius:4px}"
    ".good{background:#dfd}.bad{background:#fdd}"
    "svg text{font-size:11px;fill:#444}"
    ".plot{fill:#fafafa;stroke:#999}.grid{stroke:#ddd}.band{stroke:#999;stroke-dasharray:2,2}"
    ".trace{fill:none;stroke:#89a;stroke-width:1}"
    ".tol{stroke:#3a3;stroke-width:1.5}"
    ".pt{stroke:#333;stroke-width:0.5}.pt.ok{fill:#4a4}"
    ".pt.diverged{fill:#e22}.pt.propagated{fill:#e90}"
    ".pt.first{stroke:#000;stroke-width:2}"
    ".first-line{stroke:#e22;stroke-dasharray:4,3}"
    ".overflow{fill:#a0c}"
    "summary{cursor:pointer}details code{display:block;white-space:pre-wrap;font-size:11px;"
    "background:#f4f4f4;padding:2px 4px}";

/* ---- escaping ------------------------------------------------------------- */

/* Text for XML: markup characters escaped, control characters and
 * invalid UTF-8 (file names may hold anything) replaced by '?'. */
static void esc(FILE *f, const char *s)
{
    for (const unsigned char *p = (const unsigned char *)s; *p;) {
        switch (*p) {
        case '&': fputs("&amp;", f); break;
        case '<': fputs("&lt;", f); break;
        case '>': fputs("&gt;", f); break;
        case '"': fputs("&quot;", f); break;
        case '\'': fputs("&#39;", f); break;
        default:
            if (*p < 0x80) {
                fputc(*p >= 0x20 || *p == '\n' || *p == '\t' ? *p : '?', f);
            } else {
                int n = vf_utf8_len(p);
                if (n == 0) {
                    fputc('?', f);
                    break;
                }
                fwrite(p, 1, (size_t)n, f);
                p += n;
                continue;
            }
        }
        p++;
    }
}

static void num(FILE *f, double x, const char *fmt)
{
    if (isinf(x)) fputs(x < 0 ? "-inf" : "inf", f);
    else fprintf(f, fmt, x);
}

/* ---- the chart --------------------------------------------------------------- */

typedef struct scale {
    double lo, hi; /* decades (log10) at the bottom and top */
    int n_ops;
} scale;

/* The relative tolerance of a row: rtol + atol / max|want|. */
static double rel_tol(const milk_verify_row *r)
{
    double want = r->max_rel > 0 && isfinite(r->max_rel) ? r->max_abs / r->max_rel : 0;
    return want > 0 ? r->rtol + r->atol / want : r->rtol;
}

static void widen(double x, double *lo, double *hi)
{
    if (!(x > 0) || !isfinite(x)) return;
    if (x < *lo) *lo = x;
    if (x > *hi) *hi = x;
}

static scale make_scale(const milk_verify *v)
{
    double lo = INFINITY, hi = 0;
    for (int i = 0; i < v->n_rows; i++) {
        widen(v->rows[i].max_rel, &lo, &hi);
        widen(rel_tol(&v->rows[i]), &lo, &hi);
    }
    scale s = {-8, 0, v->n_ops};
    if (hi > 0) {
        s.lo = floor(log10(lo) - 0.25); /* a margin below and above */
        s.hi = ceil(log10(hi) + 0.1);
    }
    if (s.lo < -16) s.lo = -16;
    if (s.hi <= s.lo) s.hi = s.lo + 1;
    return s;
}

static double sx(const scale *s, int op_index)
{
    return s->n_ops <= 1 ? ML + PW / 2 : ML + PW * op_index / (s->n_ops - 1);
}

/* y of a value: the log scale between a band for infinite errors at the
 * top and one for exact zeros at the bottom. */
#define BAND 22.0
static double sy(const scale *s, double x)
{
    if (!(x > 0)) return MT + PH - BAND / 2;
    if (!isfinite(x)) return MT + BAND / 2;
    double top = MT + BAND, h = PH - 2 * BAND;
    double y = top + h * (s->hi - log10(x)) / (s->hi - s->lo);
    return y < top ? top : y > top + h ? top + h : y;
}

static void chart_axes(FILE *f, const scale *s)
{
    fprintf(f, "<rect class=\"plot\" x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\"/>\n",
            ML, MT, PW, PH);
    for (int d = (int)s->lo; d <= (int)s->hi; d++) {
        double y = sy(s, pow(10, d));
        fprintf(f, "<line class=\"grid\" x1=\"%.1f\" x2=\"%.1f\" y1=\"%.1f\" y2=\"%.1f\"/>"
                   "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"end\">1e%d</text>\n",
                ML, ML + PW, y, y, ML - 6, y + 4, d);
    }
    for (int k = 0; k < 2; k++) {
        double y = k ? MT + PH - BAND : MT + BAND;
        fprintf(f, "<line class=\"band\" x1=\"%.1f\" x2=\"%.1f\" y1=\"%.1f\" y2=\"%.1f\"/>"
                   "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"end\">%s</text>\n",
                ML, ML + PW, y, y, ML - 6, sy(s, k ? 0 : INFINITY) + 4, k ? "0" : "inf");
    }
    fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">op position in the "
               "program (0 .. %d)</text>\n", ML + PW / 2, H - 10, s->n_ops - 1);
    fprintf(f, "<text x=\"14\" y=\"%.1f\" text-anchor=\"middle\" transform=\"rotate(-90 14 "
               "%.1f)\">max relative error (log)</text>\n", MT + PH / 2, MT + PH / 2);
}

static void chart_marks(FILE *f, const milk_verify *v, const scale *s)
{
    for (int i = 0; i < v->n_flags; i++) {
        const vf_flag *g = &v->flags_list[i];
        fprintf(f, "<path class=\"overflow\" d=\"M %.1f %.1f l -5 -10 h 10 z\"><title>fp16 "
                   "overflow in op ", sx(s, g->op_index), MT - 3);
        esc(f, g->op);
        fprintf(f, " (%s): %lld beyond 65504, %lld inf, %lld NaN</title></path>\n", g->op_type,
                (long long)g->n_overflow, (long long)g->n_inf, (long long)g->n_nan);
    }
    if (v->first < 0) return;
    const milk_verify_row *r = &v->rows[v->first];
    double x = sx(s, r->op_index);
    fprintf(f, "<line class=\"first-line\" x1=\"%.1f\" x2=\"%.1f\" y1=\"%.1f\" y2=\"%.1f\"/>\n",
            x, x, MT, MT + PH);
    fprintf(f, "<text class=\"first-label\" x=\"%.1f\" y=\"%.1f\" text-anchor=\"%s\">first "
               "divergence: ", x + (x > W / 2 ? -4 : 4), MT + BAND + 14, x > W / 2 ? "end" : "start");
    esc(f, r->op);
    fputs("</text>\n", f);
}

static void chart_points(FILE *f, const milk_verify *v, const scale *s)
{
    fputs("<polyline class=\"trace\" points=\"", f);
    for (int i = 0; i < v->n_rows; i++)
        fprintf(f, "%s%.1f,%.1f", i ? " " : "", sx(s, v->rows[i].op_index),
                sy(s, v->rows[i].max_rel));
    fputs("\"/>\n", f);
    for (int i = 0; i < v->n_rows; i++) {
        const milk_verify_row *r = &v->rows[i];
        double x = sx(s, r->op_index), t = rel_tol(r);
        if (t > 0 && isfinite(t))
            fprintf(f, "<line class=\"tol\" x1=\"%.1f\" x2=\"%.1f\" y1=\"%.1f\" y2=\"%.1f\"/>\n",
                    x - 5, x + 5, sy(s, t), sy(s, t));
        fprintf(f, "<a href=\"#row-%d\"><circle class=\"pt %s%s\" cx=\"%.1f\" cy=\"%.1f\" "
                   "r=\"%s\"><title>", i, vf_state_name(r->state), i == v->first ? " first" : "",
                x, sy(s, r->max_rel), i == v->first ? "6" : "3.5");
        esc(f, r->op);
        fprintf(f, " (%s) -&gt; ", r->op_type);
        esc(f, r->var);
        fputs(": max rel error ", f);
        num(f, r->max_rel, "%.3g");
        fprintf(f, ", %s</title></circle></a>\n", vf_state_name(r->state));
    }
}

static void chart(FILE *f, const milk_verify *v)
{
    scale s = make_scale(v);
    fprintf(f, "<svg xmlns=\"http://www.w3.org/2000/svg\" class=\"chart\" width=\"%.0f\" "
               "height=\"%.0f\" viewBox=\"0 0 %.0f %.0f\">\n", W, H, W, H);
    chart_axes(f, &s);
    chart_marks(f, v, &s);
    chart_points(f, v, &s);
    fputs("</svg>\n<p>Points: max relative error of each compared var (green ok, red "
          "diverged, orange propagated; bold ring: first divergence; exact zeros on the bottom "
          "band, infinite ones on the top band; click one for its row). Green ticks: the tolerance. "
          "Purple triangles: ops whose values overflowed fp16 or became inf or NaN.</p>\n", f);
}

/* ---- summary and table ------------------------------------------------------- */

static void summary(FILE *f, const milk_verify *v)
{
    char tol[256];
    vf_tolerance_str(v, tol, sizeof tol);
    fputs("<p>Program <b>", f);
    esc(f, v->label);
    fputs("</b> against <b>", f);
    esc(f, v->ref_label);
    fprintf(f, "</b>; precision %s; tolerance %s.", v->precision == MILK_PRECISION_FP32
                                                       ? "fp32" : "as-declared", tol);
    if (v->random) fprintf(f, " Random inputs, seed %llu.", (unsigned long long)v->seed);
    fprintf(f, " %d vars compared, %d op outputs without reference value.</p>\n", v->n_rows,
            v->n_unchecked);
    if (v->stopped)
        fputs("<p>Comparing stopped at the first var beyond tolerance (fail fast): later "
              "vars were not compared.</p>\n", f);
    if (v->first < 0) {
        fputs("<p class=\"verdict good\">Every compared var matches.</p>\n", f);
        return;
    }
    const milk_verify_row *r = &v->rows[v->first];
    fputs("<p class=\"verdict bad\" id=\"first-divergence\">First divergence: op <b>", f);
    esc(f, r->op);
    fprintf(f, "</b> (%s), var <b>", r->op_type);
    esc(f, r->var);
    fputs("</b>: max abs error ", f);
    num(f, r->max_abs, "%.3g");
    fputs(", max rel ", f);
    num(f, r->max_rel, "%.3g");
    fputs(", SNR ", f);
    num(f, r->snr_db, "%.1f");
    fputs(" dB, PSNR ", f);
    num(f, r->psnr_db, "%.1f");
    fputs(" dB. <a href=\"#row-", f);
    fprintf(f, "%d\">Extract it.</a></p>\n", v->first);
    if (v->n_suspects == 0) {
        fputs("<p>Every input of this op matches the reference or is a model input or "
              "constant.</p>\n", f);
        return;
    }
    fprintf(f, "<p>Its inputs were not all compared; the divergence may also start in one of "
               "these %d ops without reference values:</p>\n<ul>", v->n_suspects);
    for (int i = 0; i < v->n_suspects; i++) {
        fputs("<li>", f);
        esc(f, v->suspects[i]);
        fputs("</li>", f);
    }
    fputs("</ul>\n", f);
}

/* s for a shell command: as is when it holds only safe characters, else
 * in single quotes. */
static void shell_word(FILE *f, const char *s)
{
    bool safe = *s != 0;
    for (const char *p = s; *p; p++)
        safe &= (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
                (*p >= '0' && *p <= '9') || strchr("_-./@:=+,", *p) != NULL;
    if (safe) {
        esc(f, s);
        return;
    }
    fputc('\'', f);
    for (const char *p = s; *p; p++) {
        char c[2] = {*p, 0};
        esc(f, *p == '\'' ? "'\\''" : c);
    }
    fputc('\'', f);
}

/* The command that extracts row r's op: the caller's template with each
 * "{op}" replaced, or `milk extract` of the program under test with the
 * inputs of the run. */
static void extract_command(FILE *f, const milk_verify *v, const milk_verify_row *r)
{
    const char *t = v->extract_command;
    if (t) {
        for (const char *p = t; *p;) {
            if (strncmp(p, "{op}", 4) == 0) {
                esc(f, r->op);
                p += 4;
                continue;
            }
            char c[2] = {*p++, 0};
            esc(f, c);
        }
        return;
    }
    const char *inputs = v->two_programs ? v->save_inputs : v->ref_label;
    fputs("milk extract ", f);
    shell_word(f, v->label);
    fputs(" --op ", f);
    shell_word(f, r->op);
    fputs(" -o ", f);
    char out[1100];
    snprintf(out, sizeof out, "%.1000s.mlpackage", r->op);
    shell_word(f, out);
    fputs(" --inputs-from ", f);
    shell_word(f, inputs ? inputs : "INPUTS.npz");
}

static void table_row(FILE *f, const milk_verify *v, int i)
{
    const milk_verify_row *r = &v->rows[i];
    char shape[256];
    vf_shape_str(&r->type, shape, sizeof shape);
    fprintf(f, "<tr class=\"%s%s\" id=\"row-%d\"><td class=\"n\">%d</td><td><details>"
               "<summary>", vf_state_name(r->state), i == v->first ? " first" : "", i,
            r->op_index);
    esc(f, r->op);
    fputs("</summary><code>", f);
    extract_command(f, v, r);
    fprintf(f, "</code></details></td><td>%s</td><td>", r->op_type);
    esc(f, r->var);
    if (strcmp(r->var, r->ref) != 0) {
        fputs(" (ref ", f);
        esc(f, r->ref);
        fputs(")", f);
    }
    fprintf(f, "</td><td>%s %s%s</td><td class=\"n\">", shape,
            milk_dtype_name(r->type.dtype) ? milk_dtype_name(r->type.dtype) : "?",
            r->shape_mismatch ? " (reference differs)" : "");
    num(f, r->max_abs, "%.3g");
    fputs("</td><td class=\"n\">", f);
    num(f, r->max_rel, "%.3g");
    fputs("</td><td class=\"n\">", f);
    num(f, r->snr_db, "%.1f");
    fputs("</td><td class=\"n\">", f);
    num(f, r->psnr_db, "%.1f");
    fputs("</td><td class=\"n\">", f);
    num(f, r->mean_abs, "%.3g");
    fputs("</td><td class=\"n\">", f);
    num(f, r->median_abs, "%.3g");
    fprintf(f, "</td><td>%s</td><td class=\"n\">%lld</td></tr>\n", vf_state_name(r->state),
            (long long)(r->n_overflow + r->n_inf + r->n_nan));
}

static void table(FILE *f, const milk_verify *v)
{
    fputs("<table>\n<tr><th>#</th><th>op</th><th>type</th><th>var</th><th>shape</th>"
          "<th>max abs</th><th>max rel</th><th>SNR dB</th><th>PSNR dB</th><th>mean abs</th>"
          "<th>median abs</th><th>status</th><th>fp16 overflow/inf/NaN</th></tr>\n", f);
    for (int i = 0; i < v->n_rows; i++) table_row(f, v, i);
    fputs("</table>\n", f);
}

static void overflows(FILE *f, const milk_verify *v)
{
    if (!v->n_flags) return;
    fputs("<h2>fp16 overflows</h2>\n<ul>", f);
    for (int i = 0; i < v->n_flags; i++) {
        const vf_flag *g = &v->flags_list[i];
        fputs("<li>op ", f);
        esc(f, g->op);
        fprintf(f, " (%s): %lld values beyond 65504, %lld inf, %lld NaN</li>", g->op_type,
                (long long)g->n_overflow, (long long)g->n_inf, (long long)g->n_nan);
    }
    fputs("</ul>\n", f);
}

static void page(FILE *f, const milk_verify *v)
{
    fputs("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<!DOCTYPE html>\n"
          "<html xmlns=\"http://www.w3.org/1999/xhtml\" lang=\"en\">\n<head>\n"
          "<meta charset=\"UTF-8\"/>\n<title>milk verify: ", f);
    esc(f, v->label);
    fprintf(f, "</title>\n<style>%s</style>\n</head>\n<body>\n<h1>milk verify: ", css);
    esc(f, v->label);
    fputs("</h1>\n", f);
    summary(f, v);
    chart(f, v);
    overflows(f, v);
    fputs("<h2>Compared vars, in program order</h2>\n<p>Click an op for the command that "
          "extracts it into a standalone package with its inputs.</p>\n", f);
    table(f, v);
    fputs("</body>\n</html>\n", f);
}

milk_status milk_verify_write_html(milk_ctx *ctx, const milk_verify *v,
                                   const char *path)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    if (!f) return milk_errorf(ctx, MILK_ERR_NOMEM, "%s: out of memory", path);
    page(f, v);
    bool bad = ferror(f) != 0;
    if (fclose(f) != 0 || bad) {
        free(buf);
        return milk_errorf(ctx, MILK_ERR_NOMEM, "%s: out of memory", path);
    }
    const void *bufs[1] = {buf};
    milk_status s = milk_file_replace(ctx, path, bufs, &len, 1);
    free(buf);
    return s;
}
