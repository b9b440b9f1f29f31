/* TEMPORARY: placeholder until the text printer lands. */
#include "../ir/ir.h"
milk_status milk_program_print(milk_ctx *ctx, const milk_program *p, FILE *out, unsigned flags)
{ (void)p; (void)out; (void)flags; return milk_errorf(ctx, MILK_ERR_UNSUPPORTED, "not yet"); }
