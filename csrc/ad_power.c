/* ad_power.c: stage 3, the power spectrum |X[k]|^2 (SPEC: no window normalisation). */
#include "edge_ad.h"
#include "ad_hot.h"

AD_HOT void ad_power_spectrum(const float *restrict re, const float *restrict im,
                       float *restrict power)
{
    for (int k = 0; k < AD_N_BINS; k++)
        power[k] = re[k] * re[k] + im[k] * im[k];
    for (int k = AD_N_BINS; k < AD_POWER_LEN; k++)
        power[k] = 0.0f;
}
