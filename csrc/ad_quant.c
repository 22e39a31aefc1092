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

double ad_squared_error(const float *a, const float *b, size_t n)
{
    double s0 = 0.0, s1 = 0.0, s2 = 0.0, s3 = 0.0;
    size_t i = 0;
    for (; i + 4 <= n; i += 4) {
        const double d0 = (double)a[i] - (double)b[i], d1 = (double)a[i + 1] - (double)b[i + 1];
        const double d2 = (double)a[i + 2] - (double)b[i + 2], d3 = (double)a[i + 3] - (double)b[i + 3];
        s0 += d0 * d0;
        s1 += d1 * d1;
        s2 += d2 * d2;
        s3 += d3 * d3;
    }
    for (; i < n; i++) {
        const double d = (double)a[i] - (double)b[i];
        s0 += d * d;
    }
    return (s0 + s1) + (s2 + s3);
}
