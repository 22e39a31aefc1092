/* ad_quant.c: the float stages around the int8 network: quantise the input as TFLite's
 * QUANTIZE does, dequantise the output as its DEQUANTIZE does, and SPEC 4's squared error
 * against the original float input.
 *
 * Every operation here is exactly rounded (one IEEE division, a rounding to an integer,
 * one product of an int and a float whose exact value fits a double), so the SSE2/AVX2
 * clones and the ARM builds agree bit for bit; the error sums in a fixed order. */
#include "edge_ad.h"
#include "ad_hot.h"


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
    for (size_t i = 0; i < n; i++) {
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
