/* ad_log.c: stage 5, log10(max(mel, floor)).
 *
 * libm's log10f costs ~10-20 ns a call, as much as the rest of a frame for 128 bands, and
 * does not vectorise. This is the Cephes logf polynomial (relative error ~1e-7) on the
 * mantissa in [sqrt(1/2), sqrt(2)), exponent taken from the bits, written branch-free so
 * the loop vectorises. Clamping first keeps every input a positive normal number (or +inf,
 * which gives ~38.5): no float-to-int conversion of an out-of-range value happens. */
#include "edge_ad.h"
#include "ad_hot.h"

#include <string.h>

#define AD_LOG10_2 0.30102999566398119521f
#define AD_LOG10_E 0.43429448190325182765f
#define AD_SQRT_HALF 0.70710678118654752440f

AD_HOT size_t ad_log10_floor(const float *restrict in, float *restrict out, size_t n,
                            float floor)
{
    size_t n_nonfinite = 0;
    for (size_t i = 0; i < n; i++) {
        const float a = in[i];
        n_nonfinite += !(a - a == 0.0f);          /* NaN or inf: what the floor would hide */
        const float v = a > floor ? a : floor;   /* NaN compares false: floor */
        uint32_t bits;
        memcpy(&bits, &v, sizeof bits);
        /* v = m * 2^e with m in [0.5, 1) */
        int32_t e = (int32_t)(bits >> 23) - 126;  /* v > 0: the sign bit is clear */
        bits = (bits & 0x007fffffu) | 0x3f000000u;
        float m;
        memcpy(&m, &bits, sizeof m);
        /* move m into [sqrt(1/2), sqrt(2)) so the polynomial's argument is small */
        const int32_t small = m < AD_SQRT_HALF;
        e -= small;
        const float x = m * (float)(1 + small) - 1.0f;
        const float z = x * x;
        float y = 7.0376836292e-2f;
        y = y * x - 1.1514610310e-1f;
        y = y * x + 1.1676998740e-1f;
        y = y * x - 1.2420140846e-1f;
        y = y * x + 1.4249322787e-1f;
        y = y * x - 1.6668057665e-1f;
        y = y * x + 2.0000714765e-1f;
        y = y * x - 2.4999993993e-1f;
        y = y * x + 3.3333331174e-1f;
        y = y * x * z - 0.5f * z;
        const float ln_m = x + y;                 /* ln(m), m in [sqrt(1/2), sqrt(2)) */
        out[i] = ln_m * AD_LOG10_E + (float)e * AD_LOG10_2;
    }
    return n_nonfinite;
}
