/* vec.c: picks the table of SIMD primitives for this CPU (see vec.h). */
#include "vec.h"

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

const milk_vec *milk_vec_avx2(void)
{
#if defined(__x86_64__) && defined(__GNUC__)
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") &&
        __builtin_cpu_supports("f16c"))
        return &milk_vec_avx2_table;
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
