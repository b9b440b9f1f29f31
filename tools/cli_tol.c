/* cli_tol.c: parsing the tolerance options (cli_tol.h). */
#include "cli_tol.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

int cli_parse_tol(const char *s, double *out)
{
    char *end;
    errno = 0;
    *out = s ? strtod(s, &end) : 0;
    return s && *s && !*end && !errno && isfinite(*out) && *out >= 0;
}

int cli_parse_tolerance(char *s, unsigned which, milk_verify_params *p,
                        milk_verify_tolerance *tols, int max)
{
    char *colon = s ? strrchr(s, ':') : NULL;
    double x;
    if (!colon) {
        if (!cli_parse_tol(s, &x)) return -1;
        p->flags |= which;
        *(which == MILK_VERIFY_SET_ATOL ? &p->atol : &p->rtol) = x;
        return 1;
    }
    if (colon == s || !cli_parse_tol(colon + 1, &x)) return -1;
    *colon = 0;
    milk_verify_tolerance *t = NULL;
    for (int k = 0; k < p->n_tolerances && !t; k++)
        if (strcmp(tols[k].var, s) == 0) t = &tols[k];
    if (!t) {
        if (p->n_tolerances == max) return -1;
        t = &tols[p->n_tolerances++];
        memset(t, 0, sizeof *t);
        t->var = s;
    }
    t->set |= which;
    *(which == MILK_VERIFY_SET_ATOL ? &t->atol : &t->rtol) = x;
    return 1;
}
