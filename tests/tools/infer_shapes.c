/* infer_shapes.c: a helper for tests/test_infer_torch.py. Reads one op
 * per line from stdin, builds it in a fresh program through the public API
 * and prints the inferred output types, one line per case:
 *
 *   in:   ios17 conv x=in:fp32:1,3,8,8 weight=w:fp32:4,3,3,3 strides=ints:2,2
 *   out:  ok fp32:1,4,3,3
 *         err <message>
 *
 * Argument forms: in:<dtype>:<dims> (a function input; "?" for an unknown
 * dim, nothing for a scalar), w:<dtype>:<dims> (a zero constant),
 * ints:<v,...> (int32 vector), int:<v>, float:<v>, bool:<0|1>, str:<s>.
 * A param may repeat (concat's values). Outputs print dims the same way. */
#include "milk.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct ctx_t {
    milk_ctx *ctx;
    milk_function *f;
    milk_block *b;
    int n;
} ctx_t;

/* "1,?,3" into t->dims; "" is a scalar. */
static bool parse_dims(const char *s, milk_tensor_type *t)
{
    t->rank = 0;
    while (*s) {
        if (t->rank == MILK_MAX_RANK) return false;
        if (*s == '?') {
            t->dims[t->rank++] = MILK_DIM_UNKNOWN;
            s++;
        } else {
            char *end;
            t->dims[t->rank++] = strtoll(s, &end, 10);
            if (end == s) return false;
            s = end;
        }
        if (*s == ',') s++;
        else if (*s) return false;
    }
    return true;
}

/* "<dtype>:<dims>" into t. */
static bool parse_type(const char *s, milk_tensor_type *t)
{
    const char *colon = strchr(s, ':');
    char name[16];
    if (!colon || colon - s >= (long)sizeof name) return false;
    memcpy(name, s, (size_t)(colon - s));
    name[colon - s] = 0;
    t->dtype = milk_dtype_from_name(name);
    return t->dtype != MILK_DTYPE_INVALID && parse_dims(colon + 1, t);
}

static milk_var *make_ints(ctx_t *c, const char *name, const char *s)
{
    int32_t v[64];
    int n = 0;
    while (*s && n < 64) {
        char *end;
        v[n++] = (int32_t)strtol(s, &end, 10);
        if (end == s) return NULL;
        s = *end == ',' ? end + 1 : end;
    }
    milk_var *out = NULL;
    milk_block_add_const_int32s(c->ctx, c->b, name, v, n, &out);
    return out;
}

/* The var for one argument spec, or NULL (with a message on stdout). */
static milk_var *make_arg(ctx_t *c, const char *spec)
{
    char name[32];
    milk_tensor_type t;
    milk_var *v = NULL;
    snprintf(name, sizeof name, "a%d", c->n++);
    if (!strncmp(spec, "in:", 3) && parse_type(spec + 3, &t))
        milk_function_add_input(c->ctx, c->f, name, &t, &v);
    else if (!strncmp(spec, "w:", 2) && parse_type(spec + 2, &t))
        milk_block_add_const(c->ctx, c->b, name, &t, NULL, &v);
    else if (!strncmp(spec, "ints:", 5))
        v = make_ints(c, name, spec + 5);
    else if (!strncmp(spec, "int:", 4))
        milk_block_add_const_int32(c->ctx, c->b, name, atoi(spec + 4), &v);
    else if (!strncmp(spec, "float:", 6))
        milk_block_add_const_fp32(c->ctx, c->b, name,
                                  strtof(spec + 6, NULL), &v);
    else if (!strncmp(spec, "bool:", 5))
        milk_block_add_const_bool(c->ctx, c->b, name, atoi(spec + 5), &v);
    else if (!strncmp(spec, "str:", 4))
        milk_block_add_const_string(c->ctx, c->b, name, spec + 4, &v);
    return v;
}

static void print_type(const milk_tensor_type *t)
{
    printf(" %s:", milk_dtype_name(t->dtype) ? milk_dtype_name(t->dtype) : "?");
    if (t->rank < 0) {
        printf("*");
        return;
    }
    for (int i = 0; i < t->rank; i++) {
        if (i) putchar(',');
        if (t->dims[i] < 0)
            putchar('?');
        else
            printf("%lld", (long long)t->dims[i]);
    }
}

/* Build and report one case: "<target> <op> <param>=<spec> ...". */
static void run_case(milk_ctx *ctx, char *line)
{
    char *save, *tok = strtok_r(line, " \t\r\n", &save);
    char *op = tok ? strtok_r(NULL, " \t\r\n", &save) : NULL;
    milk_target target = tok ? milk_target_from_name(tok) : 0;
    if (!op || !target) {
        printf("err bad case line\n");
        return;
    }
    milk_program *p = NULL;
    ctx_t c = {ctx, NULL, NULL, 0};
    milk_input in[32];
    int n = 0;
    milk_op *o = NULL;
    milk_status s = milk_program_create(ctx, target, &p);
    if (s == MILK_OK) s = milk_program_add_function(ctx, p, "main", &c.f);
    if (s == MILK_OK) c.b = milk_function_block(c.f);
    while (s == MILK_OK && n < 32 && (tok = strtok_r(NULL, " \t\r\n", &save))) {
        char *eq = strchr(tok, '=');
        if (!eq) break;
        *eq = 0;
        in[n].param = tok;
        in[n].var = make_arg(&c, eq + 1);
        if (!in[n].var) s = MILK_ERR_INVALID_ARG;
        n++;
    }
    if (s == MILK_OK) s = milk_block_add_op(ctx, c.b, op, "op", in, n, &o);
    if (s != MILK_OK) {
        printf("err %s\n", milk_ctx_error(ctx)[0] ? milk_ctx_error(ctx)
                                                 : "bad argument");
    } else {
        printf("ok");
        for (int i = 0; i < milk_op_output_count(o); i++)
            print_type(milk_var_type(milk_op_output(o, i)));
        putchar('\n');
    }
    milk_ctx_clear(ctx);
    milk_program_free(p);
}

int main(void)
{
    milk_ctx *ctx;
    char line[4096];
    if (milk_ctx_create(&ctx) != MILK_OK) return 1;
    while (fgets(line, sizeof line, stdin)) {
        if (line[0] == '\n' || line[0] == '#') continue;
        run_case(ctx, line);
        fflush(stdout);
    }
    milk_ctx_free(ctx);
    return 0;
}
