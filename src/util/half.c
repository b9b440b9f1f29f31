/* half.c: IEEE binary16 conversions. Written out rather than relying on
 * _Float16 so that results do not depend on the compiler or the CPU's F16C
 * support: the interpreter's fp16 emulation must round the same everywhere. */
#include "../internal.h"

uint16_t milk_fp32_to_fp16(float f)
{
    uint32_t x;
    memcpy(&x, &f, 4);
    uint16_t sign = (uint16_t)((x >> 16) & 0x8000u);
    uint32_t exp = (x >> 23) & 0xffu;
    uint32_t man = x & 0x7fffffu;
    if (exp == 0xff) /* inf or NaN (keep NaN quiet and non-zero) */
        return (uint16_t)(sign | 0x7c00u | (man ? 0x200u | (man >> 13) : 0));
    int32_t e = (int32_t)exp - 127 + 15;
    if (e >= 31) return (uint16_t)(sign | 0x7c00u); /* overflow -> inf */
    if (e <= 0) {
        /* subnormal half (or zero): shift the full significand */
        if (e < -10) return sign;
        man |= 0x800000u;
        uint32_t shift = (uint32_t)(14 - e);
        uint32_t h = man >> shift;
        uint32_t rem = man & ((1u << shift) - 1u);
        uint32_t half = 1u << (shift - 1);
        if (rem > half || (rem == half && (h & 1u))) h++;
        return (uint16_t)(sign | h);
    }
    uint32_t h = ((uint32_t)e << 10) | (man >> 13);
    uint32_t rem = man & 0x1fffu;
    if (rem > 0x1000u || (rem == 0x1000u && (h & 1u))) h++; /* may carry to inf */
    return (uint16_t)(sign | h);
}

float milk_fp16_to_fp32(uint16_t h)
{
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    uint32_t exp = (h >> 10) & 0x1fu;
    uint32_t man = h & 0x3ffu;
    uint32_t x;
    if (exp == 0) {
        if (man == 0) {
            x = sign;
        } else { /* subnormal: normalize */
            int e = -1;
            do {
                e++;
                man <<= 1;
            } while (!(man & 0x400u));
            x = sign | ((uint32_t)(127 - 15 - e) << 23) | ((man & 0x3ffu) << 13);
        }
    } else if (exp == 31) {
        x = sign | 0x7f800000u | (man << 13);
    } else {
        x = sign | ((exp - 15 + 127) << 23) | (man << 13);
    }
    float f;
    memcpy(&f, &x, 4);
    return f;
}

/* ---- bulk conversions ------------------------------------------------------
 * Converting a 1 GB weight to fp16 is most of an fp16 conversion's time, and
 * the interpreter rounds every fp16 activation, so the bulk paths use the
 * CPU's F16C instructions when it has them. F16C rounds to nearest even and
 * keeps subnormals, exactly as milk_fp32_to_fp16 does (NaNs come out quiet
 * with the same payload bits), so results do not depend on the machine:
 * tests/unit/test_ir.c checks the two paths agree. */

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>

__attribute__((target("avx,f16c"))) static size_t
f16c_to_half(const float *src, uint16_t *dst, size_t n)
{
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256 x = _mm256_loadu_ps(src + i);
        _mm_storeu_si128((__m128i *)(dst + i), _mm256_cvtps_ph(x, _MM_FROUND_TO_NEAREST_INT));
    }
    return i;
}

__attribute__((target("avx,f16c"))) static size_t
f16c_round(float *x, size_t n)
{
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m128i h = _mm256_cvtps_ph(_mm256_loadu_ps(x + i), _MM_FROUND_TO_NEAREST_INT);
        _mm256_storeu_ps(x + i, _mm256_cvtph_ps(h));
    }
    return i;
}

/* CPUID leaf 1: ECX bit 29 F16C, bit 28 AVX, bit 27 OSXSAVE; the OS must
 * also save the YMM registers (XCR0 bits 1 and 2). Read with <cpuid.h>,
 * which gcc and clang both have (clang's __builtin_cpu_supports knows no
 * "f16c"). */
#include <cpuid.h>

static bool cpu_has_f16c(void)
{
    unsigned a, b, c, d;
    if (!__get_cpuid(1, &a, &b, &c, &d)) return false;
    const unsigned need = (1u << 29) | (1u << 28) | (1u << 27);
    if ((c & need) != need) return false;
    unsigned lo, hi;
    __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    return (lo & 6u) == 6u;
}

static bool has_f16c(void)
{
    static int known = -1;
    if (known < 0) known = cpu_has_f16c();
    return known;
}
#else
static size_t f16c_to_half(const float *src, uint16_t *dst, size_t n) { return 0; }
static size_t f16c_round(float *x, size_t n) { return 0; }
static bool has_f16c(void) { return false; }
#endif

void milk_fp32_to_fp16_n(const float *src, uint16_t *dst, size_t n)
{
    size_t i = has_f16c() ? f16c_to_half(src, dst, n) : 0;
    for (; i < n; i++) dst[i] = milk_fp32_to_fp16(src[i]);
}

void milk_round_fp16_n(float *x, size_t n)
{
    size_t i = has_f16c() ? f16c_round(x, n) : 0;
    for (; i < n; i++) x[i] = milk_fp16_to_fp32(milk_fp32_to_fp16(x[i]));
}
