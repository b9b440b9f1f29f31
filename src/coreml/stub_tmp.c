/* TEMPORARY: placeholders until the package reader and writer land. */
#include "../ir/ir.h"
milk_status milk_program_load(milk_ctx *ctx, const char *path, milk_program **out)
{ (void)path; *out = NULL; return milk_errorf(ctx, MILK_ERR_UNSUPPORTED, "not yet"); }
milk_status milk_program_save(milk_ctx *ctx, const milk_program *p, const char *path)
{ (void)p; (void)path; return milk_errorf(ctx, MILK_ERR_UNSUPPORTED, "not yet"); }
milk_status milk_program_check(milk_ctx *ctx, const milk_program *p)
{ (void)p; return milk_errorf(ctx, MILK_ERR_UNSUPPORTED, "not yet"); }
