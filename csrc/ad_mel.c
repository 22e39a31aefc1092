/* ad_mel.c: stage 4, the sparse mel filterbank.
 *
 * Slaney bands overlap only their neighbours, so 128 bands touch ~2 weights per bin
 * (1009 multiply-adds, 1176 with the padding below) against 65664 for the dense 128 x 513
 * matrix. Bands are padded with zero weights to a multiple of AD_MEL_LANES and summed in
 * AD_MEL_LANES independent lanes (one SIMD register): a fixed summation order (no
 * -ffast-math needed), no remainder loop, and the same bits on every machine. */
#include "edge_ad.h"

#include <string.h>

void ad_mel_table_init(ad_mel_table *mel, const int32_t *starts, const int32_t *lengths,
                       const int32_t *offsets, const float *weights)
{
    memset(mel, 0, sizeof *mel);
    int32_t packed = 0;
    for (int m = 0; m < AD_N_MELS; m++) {
        const int32_t n = lengths[m];
        const int32_t padded = (n + AD_MEL_LANES - 1) / AD_MEL_LANES * AD_MEL_LANES;
        mel->starts[m] = starts[m];
        mel->lengths[m] = padded;
        mel->offsets[m] = packed;
        if (n > 0)
            memcpy(mel->weights + packed, weights + offsets[m], (size_t)n * sizeof(float));
        packed += padded; /* <= AD_MEL_WEIGHTS_MAX + (AD_MEL_LANES - 1) * AD_N_MELS */
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

static inline ad_f4 band_lanes(const ad_mel_table *restrict mel, const float *restrict power,
                               int m)
{
    const float *restrict w = mel->weights + mel->offsets[m];
    const float *restrict p = power + mel->starts[m];
    ad_f4 acc = {0.0f, 0.0f, 0.0f, 0.0f};
    for (int32_t j = 0; j < mel->lengths[m]; j += AD_MEL_LANES)
        acc += *(const ad_f4 *)(w + j) * *(const ad_f4 *)(p + j);
    return acc;
}

void ad_mel_apply(const ad_mel_table *restrict mel, const float *restrict power,
                  float *restrict out)
{
    _Static_assert(AD_MEL_LANES == 4 && AD_N_MELS % 4 == 0, "written for 4 lanes");
    for (int m = 0; m < AD_N_MELS; m += 4) {
        const ad_f4 a = band_lanes(mel, power, m), b = band_lanes(mel, power, m + 1);
        const ad_f4 c = band_lanes(mel, power, m + 2), d = band_lanes(mel, power, m + 3);
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
