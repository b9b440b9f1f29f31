/* cli_tol.h: the tolerance options `milk verify` and `milk debug reduce`
 * share (cli_tol.c). */
#ifndef MILK_CLI_TOL_H
#define MILK_CLI_TOL_H

#include "milk.h"

/* A finite number >= 0, all of the argument. */
int cli_parse_tol(const char *s, double *out);
/* An --atol / --rtol value (which: MILK_VERIFY_SET_ATOL or _RTOL): "A" sets
 * p's tolerance for every var, "NAME:A" (the last ':' separates: MIL names
 * have none) one var's, in tols[0..max-1] (p->tolerances must point at
 * tols; an entry per name). s is cut at the ':'. 1 if parsed, -1 if not. */
int cli_parse_tolerance(char *s, unsigned which, milk_verify_params *p,
                        milk_verify_tolerance *tols, int max);

#endif
