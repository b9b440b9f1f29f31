/* check.h: the tiny harness of milk's C unit tests. Each test file is its
 * own program: CHECK records a failure and goes on, main returns non-zero
 * if anything failed. Built with ASan and UBSan by `make test`. */
#ifndef MILK_CHECK_H
#define MILK_CHECK_H

#include <math.h>
#include <stdio.h>
#include <string.h>

static int check_failures;
static int check_count;

#define CHECK(cond)                                                         \
    do {                                                                    \
        check_count++;                                                      \
        if (!(cond)) {                                                      \
            check_failures++;                                               \
            fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__,          \
                    __LINE__, #cond);                                       \
        }                                                                   \
    } while (0)

/* CHECK that a milk call returned MILK_OK, printing the context message. */
#define CHECK_OK(ctx, expr)                                                 \
    do {                                                                    \
        check_count++;                                                      \
        milk_status s_ = (expr);                                            \
        if (s_ != MILK_OK) {                                                \
            check_failures++;                                               \
            fprintf(stderr, "%s:%d: %s failed: %s: %s\n", __FILE__,         \
                    __LINE__, #expr, milk_status_str(s_),                   \
                    milk_ctx_error(ctx));                                   \
        }                                                                   \
    } while (0)

#define CHECK_EQ_INT(a, b)                                                  \
    do {                                                                    \
        check_count++;                                                      \
        long long a_ = (long long)(a), b_ = (long long)(b);                 \
        if (a_ != b_) {                                                     \
            check_failures++;                                               \
            fprintf(stderr, "%s:%d: %s == %lld, expected %lld\n", __FILE__, \
                    __LINE__, #a, a_, b_);                                  \
        }                                                                   \
    } while (0)

#define CHECK_STR_CONTAINS(hay, needle)                                     \
    do {                                                                    \
        check_count++;                                                      \
        const char *h_ = (hay);                                             \
        if (!h_ || !strstr(h_, (needle))) {                                 \
            check_failures++;                                               \
            fprintf(stderr, "%s:%d: '%s' does not contain '%s'\n",          \
                    __FILE__, __LINE__, h_ ? h_ : "(null)", (needle));      \
        }                                                                   \
    } while (0)

static inline int check_report(const char *name)
{
    printf("%s: %d checks, %d failed\n", name, check_count, check_failures);
    return check_failures ? 1 : 0;
}

#endif
