/* diff.c: `milk diff`: two programs compared as model.mil text, printed
 * as a unified diff. Constants are printed by a hash of their content
 * (MILK_PRINT_HASH), so that the same weights stored in different files or
 * at different offsets compare equal, and a changed weight shows up.
 *
 * The line diff is Myers' O(ND) algorithm ("An O(ND) Difference Algorithm
 * and Its Variations", 1986), written out because nothing in Debian's C
 * libraries offers a diff of string arrays. */
#include "../ir/ir.h"

#include <stdio.h>
#include <stdlib.h>

/* Beyond this many differing lines the programs are reported as different
 * without a line diff: the trace would take D^2 memory. */
#define MAX_EDITS 4000

typedef struct lines {
    char *text;   /* the whole printout, lines NUL-terminated in place */
    size_t len;
    char **line;
    int n;
} lines;

static void lines_free(lines *l)
{
    free(l->text);
    free(l->line);
}

static milk_status print_lines(milk_ctx *ctx, const milk_program *p, lines *l)
{
    memset(l, 0, sizeof *l);
    FILE *f = open_memstream(&l->text, &l->len);
    if (!f) return milk_errorf(ctx, MILK_ERR_NOMEM, "out of memory");
    milk_status s = milk_program_print(ctx, p, f, MILK_PRINT_HASH);
    fclose(f);
    MILK_TRY(s);
    int cap = 1;
    for (size_t i = 0; i < l->len; i++) cap += l->text[i] == '\n';
    l->line = malloc((size_t)cap * sizeof *l->line);
    if (!l->line) return milk_errorf(ctx, MILK_ERR_NOMEM, "out of memory");
    for (char *p0 = l->text; p0 < l->text + l->len;) {
        char *nl = memchr(p0, '\n', (size_t)(l->text + l->len - p0));
        if (nl) *nl = 0;
        l->line[l->n++] = p0;
        p0 = nl ? nl + 1 : l->text + l->len;
    }
    return MILK_OK;
}

/* The edit script: op[i] is ' ' (line kept), '-' (only in a) or '+' (only
 * in b), with the line it stands for. */
typedef struct edit {
    char op;
    const char *text;
} edit;

/* Myers' forward search keeping each round's V (furthest x per diagonal
 * k), then a walk back through them. Returns -1 if more than MAX_EDITS. */
static int myers(const lines *a, const lines *b, int **trace_out)
{
    int n = a->n, m = b->n, max = n + m < MAX_EDITS ? n + m : MAX_EDITS;
    int off = max + 1;
    int *v = calloc((size_t)(2 * max + 3), sizeof *v);
    int *trace = malloc(((size_t)max + 1) * ((size_t)2 * max + 3) * sizeof *trace);
    if (!v || !trace) { free(v); free(trace); return -2; }
    for (int d = 0; d <= max; d++) {
        for (int k = -d; k <= d; k += 2) {
            int x = (k == -d || (k != d && v[off + k - 1] < v[off + k + 1]))
                        ? v[off + k + 1] : v[off + k - 1] + 1;
            int y = x - k;
            while (x < n && y < m && strcmp(a->line[x], b->line[y]) == 0) x++, y++;
            v[off + k] = x;
            if (x >= n && y >= m) {
                memcpy(trace + (size_t)d * (2 * max + 3), v, (2 * (size_t)max + 3) * sizeof *v);
                free(v);
                *trace_out = trace;
                return d;
            }
        }
        memcpy(trace + (size_t)d * (2 * max + 3), v, (2 * (size_t)max + 3) * sizeof *v);
    }
    free(v);
    free(trace);
    return -1;
}

/* Walk the trace back from (n, m) to (0, 0), filling the script from its
 * end. Returns the script's length. */
static int backtrack(const lines *a, const lines *b, const int *trace, int dmax,
                     edit *script)
{
    int max = a->n + b->n < MAX_EDITS ? a->n + b->n : MAX_EDITS, off = max + 1;
    int x = a->n, y = b->n, len = 0;
    edit *e = script + a->n + b->n; /* filled backwards */
    for (int d = dmax; d >= 0; d--) {
        const int *v = trace + (size_t)(d ? d - 1 : 0) * (2 * max + 3);
        int k = x - y, pk;
        if (d == 0) pk = 0;
        else pk = (k == -d || (k != d && v[off + k - 1] < v[off + k + 1])) ? k + 1 : k - 1;
        int px = d ? v[off + pk] : 0, py = px - pk;
        while (x > px && y > py) *--e = (edit){' ', a->line[--x]}, y--, len++;
        if (d == 0) break;
        if (x == px) *--e = (edit){'+', b->line[--y]};
        else *--e = (edit){'-', a->line[--x]};
        len++;
    }
    memmove(script, e, (size_t)len * sizeof *script);
    return len;
}

/* Lines of a (and of b) before script position i. */
static void position(const edit *s, int i, int *pa, int *pb)
{
    *pa = *pb = 0;
    for (int j = 0; j < i; j++) {
        *pa += s[j].op != '+';
        *pb += s[j].op != '-';
    }
}

/* Print the script as unified hunks ("@@ -a,n +b,m @@") with `ctxl` lines
 * of context; changes closer than 2 * ctxl kept lines share a hunk. */
static void print_hunks(FILE *out, const edit *s, int len, int ctxl)
{
    int i = 0;
    while (i < len) {
        while (i < len && s[i].op == ' ') i++;
        if (i >= len) break;
        int start = i - ctxl < 0 ? 0 : i - ctxl, end = i + 1;
        for (int kept = 0; end < len; end++) {
            kept = s[end].op == ' ' ? kept + 1 : 0;
            if (kept > 2 * ctxl) break;
        }
        while (end > i && s[end - 1].op == ' ') end--;
        int stop = end + ctxl > len ? len : end + ctxl, pa, pb, na = 0, nb = 0;
        position(s, start, &pa, &pb);
        for (int j = start; j < stop; j++) {
            na += s[j].op != '+';
            nb += s[j].op != '-';
        }
        fprintf(out, "@@ -%d,%d +%d,%d @@\n", pa + 1, na, pb + 1, nb);
        for (int j = start; j < stop; j++) fprintf(out, "%c%s\n", s[j].op, s[j].text);
        i = stop;
    }
}

milk_status milk_program_diff(milk_ctx *ctx, const milk_program *a,
                              const milk_program *b, const char *name_a,
                              const char *name_b, int context, FILE *out,
                              int *differ)
{
    lines la, lb;
    milk_status s = print_lines(ctx, a, &la);
    if (s == MILK_OK) s = print_lines(ctx, b, &lb);
    else memset(&lb, 0, sizeof lb);
    int *trace = NULL, d = s == MILK_OK ? myers(&la, &lb, &trace) : 0;
    edit *script = s == MILK_OK && d >= 0
                       ? malloc(((size_t)la.n + lb.n + 1) * sizeof *script) : NULL;
    if (s == MILK_OK && (d == -2 || (d >= 0 && !script)))
        s = milk_errorf(ctx, MILK_ERR_NOMEM, "out of memory");
    if (s == MILK_OK) {
        *differ = d != 0;
        if (d != 0) fprintf(out, "--- %s\n+++ %s\n", name_a, name_b);
        if (d > 0) print_hunks(out, script, backtrack(&la, &lb, trace, d, script), context);
        if (d == -1)
            fprintf(out, "(more than %d lines differ: the programs are unrelated)\n",
                    MAX_EDITS);
    }
    free(script);
    free(trace);
    lines_free(&la);
    lines_free(&lb);
    return s;
}
