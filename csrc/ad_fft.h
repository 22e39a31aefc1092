/* ad_fft.h: the 1024-point real FFT of the edge-ad front end.
 *
 * Its own seam: the front end only calls ad_rfft_init once and ad_rfft_power per frame,
 * so another FFT (CMSIS-DSP arm_rfft_fast_f32, PFFFT) can replace this file without
 * touching the other stages.
 *
 * Method: the 1024 real samples are read as 512 complex ones (even samples real, odd
 * imaginary), transformed by a 512-point complex Stockham FFT (three radix-4 stages and one
 * radix-8 stage, natural order in and out, no bit reversal), then split into the 513 bins
 * of the real spectrum with one post-processing pass. Real and imaginary parts are kept in
 * separate arrays and every inner loop runs over contiguous elements with a constant
 * twiddle or a twiddle array, so a compiler vectorises it (SSE, NEON) without intrinsics.
 * Twiddles are computed once in double precision by ad_rfft_init.
 *
 * Hand-written rather than vendored: this one size is all the product needs, and the
 * specialised form (~200 lines, no allocation, caller-owned work memory) is smaller than
 * adapting a general library; tests hold it to numpy.fft.rfft by SNR (>= 100 dB).
 */
#ifndef AD_FFT_H
#define AD_FFT_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

#define AD_FFT_N 1024                   /* real input length, samples */
#define AD_FFT_BINS (AD_FFT_N / 2 + 1)  /* one-sided spectrum, bins (513) */
#define AD_FFT_HALF (AD_FFT_N / 2)      /* complex FFT length (512) */
/* radix-4 twiddles per kind (w^p, w^2p, w^3p): 128 + 32 + 8 for stages 512, 128, 32 */
#define AD_FFT_TWIDDLES 168
#define AD_FFT_WORK (4 * AD_FFT_HALF)   /* work memory of ad_rfft_forward, floats */

/* Precomputed tables; fill with ad_rfft_init, then read only (shareable across threads). */
typedef struct {
    float tw_re[3][AD_FFT_TWIDDLES];        /* [r-1][stage offset + p]: Re w_n^(r p) */
    float tw_im[3][AD_FFT_TWIDDLES];
    float post_re[AD_FFT_HALF + 1];         /* 0.5 * exp(-2 pi i k / AD_FFT_N), k = 0..512 */
    float post_im[AD_FFT_HALF + 1];
} ad_rfft;

/* Fill the tables. Cannot fail. */
void ad_rfft_init(ad_rfft *fft);

/* Forward real FFT, unnormalised: X[k] = sum_n in[n] exp(-2 pi i k n / AD_FFT_N).
 *   in:     AD_FFT_N floats
 *   out_re: AD_FFT_BINS floats, Re X[0..512]
 *   out_im: AD_FFT_BINS floats, Im X[0..512] (0 at bins 0 and 512)
 *   work:   AD_FFT_WORK floats of scratch, not aliasing the others
 * Never allocates; reads only the tables of fft. */
void ad_rfft_forward(const ad_rfft *fft, const float *in, float *out_re, float *out_im,
                     float *work);

/* Power spectrum of a windowed frame, what the front end needs, in one call:
 *   power[k] = Re X[k]^2 + Im X[k]^2 (k < AD_FFT_BINS), X = rfft(window[n] * in[n]),
 * the same bits as ad_window_apply, ad_rfft_forward and ad_power_spectrum in turn (the
 * golden driver checks on every architecture). Fused because those two cheap stages
 * were ~10% of a frame, mostly storing and reloading 1024 samples and 1026 spectrum
 * values: the window multiply happens as the first stage reads its input, the squares as
 * the split pass computes each bin.
 *   window: AD_FFT_N floats; in: AD_FFT_N floats; power: AD_FFT_BINS floats (only those
 *   are written); work: AD_FFT_WORK floats of scratch, not aliasing the others. */
void ad_rfft_power(const ad_rfft *fft, const float *window, const float *in, float *power,
                   float *work);

#ifdef __cplusplus
}
#endif
#endif /* AD_FFT_H */
