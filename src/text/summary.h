/* summary.h: the summary of a program's constants and compressed weights
 * (summary.c), printed by milk_program_print with MILK_PRINT_SUMMARY. */
#ifndef MILK_TEXT_SUMMARY_H
#define MILK_TEXT_SUMMARY_H

#include "../ir/ir.h"

#include <stdio.h>

milk_status milk_text_summary(milk_ctx *ctx, const milk_program *p, FILE *out);

#endif
