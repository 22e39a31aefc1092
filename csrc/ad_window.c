/* ad_window.c: stage 1, the analysis window (periodic Hamming, from edge/tables.py). */
#include "edge_ad.h"
#include "ad_hot.h"

AD_HOT void ad_window_apply(const float *restrict window, const float *restrict in,
                     float *restrict out)
{
    for (int i = 0; i < AD_N_FFT; i++)
        out[i] = window[i] * in[i];
}
