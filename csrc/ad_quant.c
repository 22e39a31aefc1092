/* ad_quant.c: the float stages around the int8 network: quantise the input as TFLite's
 * QUANTIZE does, dequantise the output as its DEQUANTIZE does, and SPEC 4's squared error
 * against the original float input.
 *
 * Every operation here is exactly rounded (one IEEE division, a rounding to an integer,
 * one product of an int and a float whose exact value fits a double), so the SSE2/AVX2
 * clones and the ARM builds agree bit for bit; the error sums in a fixed order. The
 * AVX-512 quantisation replaces the division by a product where that provably gives the
 * same integers (quantize_avx512). */
#include "edge_ad.h"
#include "ad_hot.h"

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__)) && !defined(AD_NO_SIMD)
#define AD_QUANT_AVX512 1
#include <immintrin.h>

/* ad_quantize_f32 on AVX-512, 16 values a step, as many whole steps as n holds; returns
 * how many values it did. The division costs most of the scalar form (vdivps: about 12
 * cycles per 16 values on a Sapphire Rapids-class Xeon), and so does its rounding (six
 * instructions). Here: p = x * RN(1 / scale), clamped, rounded to nearest by one
 * conversion. Exact, because p is within 3 units of 2^-24 of x / scale relative and so
 * is the correctly rounded quotient v: |p - v| <= 2^-22 |x / scale|, at most 2^-14 where
 * it matters (|x / scale| <= 256; beyond, both clamp to the same bound). So p and v round
 * to the same integer, half away from zero or to nearest, unless a half-integer lies
 * within 2^-14 of p: a step with a value whose distance to its nearest integer (vreduceps,
 * exact; AVX-512DQ) is within 2^-13 of one half (about 1 value in 4000) is done again
 * with the division and the scalar form's rounding. The bits are the division's. min/max return their second
 * operand for NaN, as the scalar comparisons do; the conversion's rounding mode is given
 * in the instruction, not taken from MXCSR. */
__attribute__((target("avx512f,avx512bw,avx512vl,avx512dq"))) static size_t
quantize_avx512(const float *restrict x, size_t n, float scale, float lo, float hi,
                int32_t zero_point, int8_t *restrict q)
{
    const __m512 inv = _mm512_set1_ps(1.0f / scale), s = _mm512_set1_ps(scale);
    const __m512 vlo = _mm512_set1_ps(lo), vhi = _mm512_set1_ps(hi);
    const __m512 near_tie = _mm512_set1_ps(0.5f - 0x1p-13f);
    const __m512i zp = _mm512_set1_epi32(zero_point);
    size_t i = 0;
    for (; i + 16 <= n; i += 16) {
        const __m512 xi = _mm512_loadu_ps(x + i);
        const __m512 p = _mm512_max_ps(_mm512_min_ps(_mm512_mul_ps(xi, inv), vhi), vlo);
        __m512i r = _mm512_cvt_roundps_epi32(p, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
        /* vreduceps: p - round(p) in [-0.5, 0.5], exact; near a tie when its size is
         * within 2^-13 of one half */
        const __m512 d = _mm512_reduce_ps(p, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
        if (_mm512_cmp_ps_mask(_mm512_abs_ps(d), near_tie, _CMP_GT_OQ)) {
            const __m512 v = _mm512_max_ps(_mm512_min_ps(_mm512_div_ps(xi, s), vhi), vlo);
            const __m512i t = _mm512_cvttps_epi32(v);
            const __m512 f = _mm512_sub_ps(v, _mm512_cvtepi32_ps(t));
            r = _mm512_add_epi32(t, _mm512_cvttps_epi32(_mm512_add_ps(f, f)));
        }
        /* r + zero point lies in -128..127: the truncating narrow keeps it */
        _mm_storeu_si128((__m128i *)(q + i), _mm512_cvtepi32_epi8(_mm512_add_epi32(r, zp)));
    }
    return i;
}
#endif


AD_HOT void ad_quantize_f32(const float *restrict x, size_t n, float scale, int32_t zero_point,
                            int8_t *restrict q)
{
    /* TFLite: clamp((int32)TfLiteRound(x / scale) + zero_point, -128, 127), std::round
     * rounding half away from zero. Clamping x / scale to the integers [lo, hi] that map
     * to -128 and 127 first gives the same result (rounding is monotonic and keeps
     * integer bounds) and keeps the conversion defined for huge values; NaN fails the
     * first comparison and becomes 127. Written without libm calls and integer clamps so
     * GCC vectorises it: the truncation is the conversion, the fraction f = v - t is exact
     * and (int)(2 f) is +1 for f >= 0.5, -1 for f <= -0.5, else 0. */
    const float hi = (float)(127 - zero_point), lo = (float)(-128 - zero_point);
    size_t i = 0;
#ifdef AD_QUANT_AVX512
    /* a scale whose reciprocal or products could leave the normal range, or a zero point
     * outside int8 (the bound |x / scale| <= 256 needs one), keeps the division */
    if (scale > 0x1p-100f && scale < 0x1p100f && zero_point >= -128 && zero_point <= 127 &&
        __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl") &&
        __builtin_cpu_supports("avx512dq"))
        i = quantize_avx512(x, n, scale, lo, hi, zero_point, q);
#endif
    for (; i < n; i++) {
        float v = x[i] / scale;
        v = v < hi ? v : hi;
        v = v > lo ? v : lo;
        const int32_t t = (int32_t)v;
        q[i] = (int8_t)(t + (int32_t)(2.0f * (v - (float)t)) + zero_point);
    }
}

AD_HOT void ad_dequantize_i8(const int8_t *restrict q, size_t n, float scale,
                             int32_t zero_point, float *restrict out)
{
    /* TFLite computes (float)((double)scale * (q - zero_point)); the exact product has at
     * most 24 + 9 significant bits, so one float multiplication rounds it the same way */
    for (size_t i = 0; i < n; i++)
        out[i] = (float)((int32_t)q[i] - zero_point) * scale;
}

AD_HOT double ad_squared_error(const float *restrict a, const float *restrict b, size_t n)
{
    /* 8 partial sums, element i into sum i % 8, then a fixed tree: the order is part of
     * the definition, so the loop vectorises (4 or 2 doubles a register) with the same
     * bits on every machine */
    double s[8] = {0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0};
    size_t i = 0;
    for (; i + 8 <= n; i += 8)
        for (int j = 0; j < 8; j++) {
            const double d = (double)a[i + (size_t)j] - (double)b[i + (size_t)j];
            s[j] += d * d;
        }
    for (int j = 0; i < n; i++, j++) {
        const double d = (double)a[i] - (double)b[i];
        s[j] += d * d;
    }
    return ((s[0] + s[4]) + (s[1] + s[5])) + ((s[2] + s[6]) + (s[3] + s[7]));
}
