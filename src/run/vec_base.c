/* vec_base.c: the primitives of vec.h for the x86-64 baseline (SSE2, 4
 * floats a vector), or any other CPU GCC compiles for. */
#define VW 4
#define VEC_NAME "base"
#define VEC_TABLE milk_vec_base_table
#define FMA(a, b, c) ((a) * (b) + (c))

/* fp16 rounding lane by lane (vec_impl.h), with the portable conversion */
#define ROUND16(v) round16_lanes(v)

#if defined(__x86_64__) && defined(__SSE__)
#include <xmmintrin.h>
#define RCP(v) ((vf)_mm_rcp_ps((__m128)(v)))
#endif

#include "vec_impl.h"
