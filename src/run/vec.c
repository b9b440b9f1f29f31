/* vec.c: picks the table of SIMD primitives for this CPU (see vec.h). */
#include "vec.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

extern const milk_vec milk_vec_base_table;
#if defined(__x86_64__) && defined(__GNUC__)
extern const milk_vec milk_vec_avx2_table;
#endif

const milk_vec *milk_vec_base(void)
{
    return &milk_vec_base_table;
}

#if defined(__x86_64__) && defined(__GNUC__)
#include <cpuid.h>

/* AVX2 (leaf 7 EBX bit 5), FMA, AVX, F16C and OSXSAVE (leaf 1 ECX bits 12,
 * 28, 29, 27), and the OS saving the YMM registers (XCR0 bits 1 and 2);
 * with <cpuid.h>, which gcc and clang both have (clang's
 * __builtin_cpu_supports knows no "f16c"). */
static bool cpu_has_avx2(void)
{
    unsigned a, b, c, d;
    if (!__get_cpuid(1, &a, &b, &c, &d)) return false;
    const unsigned need = (1u << 12) | (1u << 27) | (1u << 28) | (1u << 29);
    if ((c & need) != need) return false;
    unsigned lo, hi;
    __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    if ((lo & 6u) != 6u) return false;
    if (!__get_cpuid_count(7, 0, &a, &b, &c, &d)) return false;
    return (b & (1u << 5)) != 0;
}
#endif

const milk_vec *milk_vec_avx2(void)
{
#if defined(__x86_64__) && defined(__GNUC__)
    static int known = -1;
    if (known < 0) known = cpu_has_avx2();
    if (known) return &milk_vec_avx2_table;
#endif
    return NULL;
}

const milk_vec *milk_vec_get(void)
{
    static const milk_vec *chosen;
    if (!chosen) {
        const char *force = getenv("MILK_SIMD");
        const milk_vec *wide = milk_vec_avx2();
        chosen = wide && !(force && strcmp(force, "base") == 0) ? wide
                                                                : milk_vec_base();
    }
    return chosen;
}
