/* ad_mel.c: stage 4, the sparse mel filterbank.
 *
 * Slaney bands overlap only their neighbours, so 128 bands touch ~2 weights per bin
 * (1009 multiply-adds, 1176 with the padding below) against 65664 for the dense 128 x 513
 * matrix. Bands are padded with zero weights to a multiple of AD_MEL_LANES and summed in
 * AD_MEL_LANES independent lanes, which the compiler maps onto one SIMD register: a fixed
 * summation order (no -ffast-math needed) and no remainder loop. */
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
        _Static_assert(AD_MEL_LANES == 4, "the lane sum below is written for 4 lanes");
        out[m] = (acc[0] + acc[1]) + (acc[2] + acc[3]);
    }
}
