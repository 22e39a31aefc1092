/* ad_mel.c: stage 4, the sparse mel filterbank.
 *
 * Slaney bands overlap only their neighbours, so 128 bands touch ~2 weights per bin
 * (1009 multiply-adds, 1176 with the padding below) against 65664 for the dense 128 x 513
 * matrix. Bands are padded with zero weights to a multiple of AD_MEL_LANES and summed in
 * AD_MEL_LANES independent lanes (one SIMD register): a fixed summation order (no
 * -ffast-math needed), no remainder loop, and the same bits on every machine.
 * Bands are also padded to the longest of their group of 4, so the 4 bands of a group are
 * summed in one loop: 4 independent dependency chains instead of 4 short loops one after
 * the other (~30% faster here). The extra terms are 0 * power = +0 added to a sum of
 * non-negative terms, which leaves every bit as it was (for finite power). */
#include "edge_ad.h"

#include <string.h>

void ad_mel_table_init(ad_mel_table *mel, const int32_t *starts, const int32_t *lengths,
                       const int32_t *offsets, const float *weights)
{
    memset(mel, 0, sizeof *mel);
    int32_t packed = 0;
    for (int g = 0; g < AD_N_MELS; g += AD_MEL_LANES) {
        int32_t longest = 0;
        for (int m = g; m < g + AD_MEL_LANES; m++)
            longest = lengths[m] > longest ? lengths[m] : longest;
        const int32_t padded = (longest + AD_MEL_LANES - 1) / AD_MEL_LANES * AD_MEL_LANES;
        for (int m = g; m < g + AD_MEL_LANES; m++) {
            mel->starts[m] = starts[m];
            mel->lengths[m] = padded;
            mel->offsets[m] = packed;
            if (lengths[m] > 0)
                memcpy(mel->weights + packed, weights + offsets[m],
                       (size_t)lengths[m] * sizeof(float));
            packed += padded; /* <= AD_MEL_PADDED_MAX: padded <= the group's total + 3 */
        }
    }
}

#if defined(__GNUC__) || defined(__clang__)
/* GCC/Clang vector extensions (SSE on x86, NEON on aarch64): each band's 4 lane sums live in
 * one register, and 4 bands are finished together by pairwise sums across registers
 * instead of one horizontal sum per band. aligned(4) and may_alias: it points into the
 * float tables. */
typedef float ad_f4 __attribute__((vector_size(16), aligned(4), may_alias));
#if defined(__clang__)
#define AD_SHUF(a, b, i0, i1, i2, i3) __builtin_shufflevector(a, b, i0, i1, i2, i3)
#else
typedef int32_t ad_i4 __attribute__((vector_size(16)));
#define AD_SHUF(a, b, i0, i1, i2, i3) __builtin_shuffle(a, b, (ad_i4){i0, i1, i2, i3})
#endif
/* [x0 + x1, x2 + x3, y0 + y1, y2 + y3] */
#define AD_PAIRSUM(x, y) (AD_SHUF(x, y, 0, 2, 4, 6) + AD_SHUF(x, y, 1, 3, 5, 7))

#define AD_LANES_AT(v, j) (*(const ad_f4 *)((v) + (j)))

void ad_mel_apply(const ad_mel_table *restrict mel, const float *restrict power,
                  float *restrict out)
{
    _Static_assert(AD_MEL_LANES == 4 && AD_N_MELS % 4 == 0, "written for 4 lanes");
    for (int m = 0; m < AD_N_MELS; m += 4) {
        const float *restrict w = mel->weights;
        const float *restrict pa = power + mel->starts[m], *restrict wa = w + mel->offsets[m];
        const float *restrict pb = power + mel->starts[m + 1], *restrict wb = w + mel->offsets[m + 1];
        const float *restrict pc = power + mel->starts[m + 2], *restrict wc = w + mel->offsets[m + 2];
        const float *restrict pd = power + mel->starts[m + 3], *restrict wd = w + mel->offsets[m + 3];
        ad_f4 a = {0.0f, 0.0f, 0.0f, 0.0f}, b = a, c = a, d = a;
        for (int32_t j = 0; j < mel->lengths[m]; j += AD_MEL_LANES) { /* the group's length */
            a += AD_LANES_AT(wa, j) * AD_LANES_AT(pa, j);
            b += AD_LANES_AT(wb, j) * AD_LANES_AT(pb, j);
            c += AD_LANES_AT(wc, j) * AD_LANES_AT(pc, j);
            d += AD_LANES_AT(wd, j) * AD_LANES_AT(pd, j);
        }
        /* band sums (l0 + l1) + (l2 + l3), the same order as the scalar version below */
        *(ad_f4 *)(out + m) = AD_PAIRSUM(AD_PAIRSUM(a, b), AD_PAIRSUM(c, d));
    }
}
#else
void ad_mel_apply(const ad_mel_table *restrict mel, const float *restrict power,
                  float *restrict out)
{
    for (int m = 0; m < AD_N_MELS; m++) {
        const float *restrict w = mel->weights + mel->offsets[m];
        const float *restrict p = power + mel->starts[m];
        const int32_t n = mel->lengths[m];
        float acc[AD_MEL_LANES] = {0.0f};
        for (int32_t j = 0; j < n; j += AD_MEL_LANES)
            for (int l = 0; l < AD_MEL_LANES; l++)
                acc[l] += w[j + l] * p[j + l];
        out[m] = (acc[0] + acc[1]) + (acc[2] + acc[3]);
    }
}
#endif
