/* ad_mel.c: stage 4, the sparse mel filterbank.
 *
 * Slaney bands overlap only their neighbours, so 128 bands touch ~2 weights per bin
 * (about 1000 multiply-adds) against 65664 for the dense 128 x 513 matrix. */
#include "edge_ad.h"

void ad_mel_apply(const ad_mel_table *restrict mel, const float *restrict power,
                  float *restrict out)
{
    for (int m = 0; m < AD_N_MELS; m++) {
        const float *restrict w = mel->weights + mel->offsets[m];
        const float *restrict p = power + mel->starts[m];
        const int32_t n = mel->lengths[m];
        /* two accumulators: shorter dependency chain, order fixed (no -ffast-math) */
        float acc0 = 0.0f, acc1 = 0.0f;
        int32_t j = 0;
        for (; j + 1 < n; j += 2) {
            acc0 += w[j] * p[j];
            acc1 += w[j + 1] * p[j + 1];
        }
        if (j < n)
            acc0 += w[j] * p[j];
        out[m] = acc0 + acc1;
    }
}
