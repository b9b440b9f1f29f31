/* ctx.c: status strings and the error message kept on a milk_ctx. */
#include "../internal.h"

#include <stdio.h>
#include <stdlib.h>

const char *milk_status_str(milk_status s)
{
    switch (s) {
    case MILK_OK: return "ok";
    case MILK_ERR_NOMEM: return "out of memory";
    case MILK_ERR_IO: return "i/o error";
    case MILK_ERR_PARSE: return "parse error";
    case MILK_ERR_INVALID_MODEL: return "invalid model";
    case MILK_ERR_UNSUPPORTED: return "unsupported";
    case MILK_ERR_INVALID_ARG: return "invalid argument";
    case MILK_ERR_TYPE: return "type error";
    case MILK_ERR_NOT_FOUND: return "not found";
    }
    return "unknown status";
}

milk_status milk_ctx_create(milk_ctx **out)
{
    milk_ctx *c = calloc(1, sizeof *c);
    if (!c) return MILK_ERR_NOMEM;
    *out = c;
    return MILK_OK;
}

void milk_ctx_free(milk_ctx *ctx)
{
    if (!ctx) return;
    free(ctx->msg);
    free(ctx);
}

const char *milk_ctx_error(const milk_ctx *ctx)
{
    return ctx && ctx->msg ? ctx->msg : "";
}

milk_status milk_ctx_status(const milk_ctx *ctx)
{
    return ctx ? ctx->status : MILK_OK;
}

void milk_ctx_clear(milk_ctx *ctx)
{
    if (!ctx) return;
    ctx->status = MILK_OK;
    if (ctx->msg) ctx->msg[0] = 0;
}

/* Replace the message with the formatted text, which may quote the old
 * message (milk_ctx_error(ctx) as an argument): it is formatted into a new
 * buffer before the old one goes. On allocation failure the old message is
 * kept and the status still recorded. */
static void set_msg(milk_ctx *ctx, const char *fmt, va_list ap)
{
    va_list ap2;
    va_copy(ap2, ap);
    int n = vsnprintf(NULL, 0, fmt, ap2);
    va_end(ap2);
    if (n < 0) return;
    char *m = malloc((size_t)n + 1);
    if (!m) return;
    vsnprintf(m, (size_t)n + 1, fmt, ap);
    free(ctx->msg);
    ctx->msg = m;
}

milk_status milk_verrorf(milk_ctx *ctx, milk_status s, const char *fmt,
                         va_list ap)
{
    if (!ctx) return s;
    ctx->status = s;
    set_msg(ctx, fmt, ap);
    return s;
}

milk_status milk_errorf(milk_ctx *ctx, milk_status s, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    milk_verrorf(ctx, s, fmt, ap);
    va_end(ap);
    return s;
}

milk_status milk_error_prefix(milk_ctx *ctx, const char *fmt, ...)
{
    if (!ctx) return MILK_OK;
    char prefix[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(prefix, sizeof prefix, fmt, ap);
    va_end(ap);
    return milk_errorf(ctx, ctx->status, "%s: %s", prefix, milk_ctx_error(ctx));
}
