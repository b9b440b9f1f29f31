/* vec_avx2.c: the primitives of vec.h for CPUs with AVX2, FMA and F16C (8
 * floats a vector). Compiled for those instructions whatever the build's
 * flags; milk_vec_get() uses this table only when the CPU has them. */
#if defined(__x86_64__) && defined(__GNUC__)
#ifdef __clang__
#pragma clang attribute push(__attribute__((target("avx2,fma,f16c"))), apply_to = function)
#else
#pragma GCC target("avx2,fma,f16c")
#endif
#include <immintrin.h>

#define VW 8
#define VEC_NAME "avx2"
#define VEC_TABLE milk_vec_avx2_table
#define FMA(a, b, c) ((vf)_mm256_fmadd_ps((__m256)(a), (__m256)(b), (__m256)(c)))
/* F16C rounds to nearest even with subnormals, as milk_fp32_to_fp16 does */
#define ROUND16(v) ((vf)_mm256_cvtph_ps(_mm256_cvtps_ph((__m256)(v), _MM_FROUND_TO_NEAREST_INT)))
#define VEC_HAVE_ROUND16 1
#define RCP(v) ((vf)_mm256_rcp_ps((__m256)(v)))

#include "vec_impl.h"
#ifdef __clang__
#pragma clang attribute pop
#endif
#else
typedef int milk_vec_avx2_unused; /* an empty unit is not ISO C */
#endif
