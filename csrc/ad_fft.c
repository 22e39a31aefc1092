/* ad_fft.c: 1024-point real FFT via a 512-point complex Stockham FFT (see ad_fft.h). */
#include "ad_fft.h"
#include "ad_hot.h"

#include <math.h>

#if defined(__GNUC__) || defined(__clang__)
#define AD_INLINE static inline __attribute__((always_inline))
#else
#define AD_INLINE static inline
#endif

#define AD_PI 3.14159265358979323846

void ad_rfft_init(ad_rfft *fft)
{
    int off = 0;
    /* radix-4 stages of lengths 512, 128, 32; the last stage (length 8) is radix-8 */
    for (int n = AD_FFT_HALF; n >= 32; n /= 4) {
        for (int p = 0; p < n / 4; p++) {
            for (int r = 1; r <= 3; r++) {
                double angle = -2.0 * AD_PI * (double)(r * p) / (double)n;
                fft->tw_re[r - 1][off + p] = (float)cos(angle);
                fft->tw_im[r - 1][off + p] = (float)sin(angle);
            }
        }
        off += n / 4;
    }
    for (int k = 0; k <= AD_FFT_HALF; k++) {
        double angle = -2.0 * AD_PI * (double)k / (double)AD_FFT_N;
        fft->post_re[k] = (float)(0.5 * cos(angle));
        fft->post_im[k] = (float)(0.5 * sin(angle));
    }
}

/* One radix-4 decimation-in-frequency Stockham stage of length n and stride s:
 *   y[q + s(4p + r)] = w_n^(r p) * sum_l x[q + s(p + l n/4)] (-i)^(l r)
 * Called with constant n and s so each call compiles to loops of known length; for s >= 4
 * the inner loop runs over q (contiguous, one twiddle), which vectorises. */
AD_INLINE void radix4_stage(const int n, const int s, const float *restrict xr,
                            const float *restrict xi, float *restrict yr, float *restrict yi,
                            const ad_rfft *restrict fft, const int off)
{
    const int n1 = n / 4;
    for (int p = 0; p < n1; p++) {
        const float w1r = fft->tw_re[0][off + p], w1i = fft->tw_im[0][off + p];
        const float w2r = fft->tw_re[1][off + p], w2i = fft->tw_im[1][off + p];
        const float w3r = fft->tw_re[2][off + p], w3i = fft->tw_im[2][off + p];
        for (int q = 0; q < s; q++) {
            const int ia = q + s * p, ib = ia + s * n1, ic = ib + s * n1, id = ic + s * n1;
            const float apcr = xr[ia] + xr[ic], apci = xi[ia] + xi[ic];
            const float amcr = xr[ia] - xr[ic], amci = xi[ia] - xi[ic];
            const float bpdr = xr[ib] + xr[id], bpdi = xi[ib] + xi[id];
            const float bmdr = xr[ib] - xr[id], bmdi = xi[ib] - xi[id];
            /* t1 = (a - c) - i (b - d), t3 = (a - c) + i (b - d) */
            const float t0r = apcr + bpdr, t0i = apci + bpdi;
            const float t1r = amcr + bmdi, t1i = amci - bmdr;
            const float t2r = apcr - bpdr, t2i = apci - bpdi;
            const float t3r = amcr - bmdi, t3i = amci + bmdr;
            const int o = q + s * 4 * p;
            yr[o] = t0r;
            yi[o] = t0i;
            yr[o + s] = w1r * t1r - w1i * t1i;
            yi[o + s] = w1r * t1i + w1i * t1r;
            yr[o + 2 * s] = w2r * t2r - w2i * t2i;
            yi[o + 2 * s] = w2r * t2i + w2i * t2r;
            yr[o + 3 * s] = w3r * t3r - w3i * t3i;
            yi[o + 3 * s] = w3r * t3i + w3i * t3r;
        }
    }
}

/* The first stage (n = 512, s = 1), reading z[n] = in[2n] + i in[2n+1] straight from the
 * real input (no separate deinterleave pass): the loop over p is the inner one; inputs and
 * twiddles are contiguous in p, outputs interleave by 4. With a window (ad_rfft_power) each
 * sample is multiplied by it as it is read: the product window[j] * in[j] is the one a
 * separate window pass would store, so the bits are the same, and this stage is bound by
 * its shuffles, not its multiplies, so the window costs almost nothing here. windowed is a
 * compile-time constant (the function is always inlined): no test in the loop. */
AD_INLINE void radix4_first(const float *restrict in, const int windowed,
                            const float *restrict window, float *restrict yr,
                            float *restrict yi, const ad_rfft *restrict fft)
{
    enum { N1 = AD_FFT_HALF / 4 };
    const float *restrict w1r = fft->tw_re[0], *restrict w1i = fft->tw_im[0];
    const float *restrict w2r = fft->tw_re[1], *restrict w2i = fft->tw_im[1];
    const float *restrict w3r = fft->tw_re[2], *restrict w3i = fft->tw_im[2];
#define AD_IN(j) (windowed ? window[j] * in[j] : in[j])
    for (int p = 0; p < N1; p++) {
        const int ja = 2 * p, jb = ja + 2 * N1, jc = jb + 2 * N1, jd = jc + 2 * N1;
        const float ar = AD_IN(ja), ai = AD_IN(ja + 1), br = AD_IN(jb), bi = AD_IN(jb + 1);
        const float cr = AD_IN(jc), ci = AD_IN(jc + 1), dr = AD_IN(jd), di = AD_IN(jd + 1);
        const float apcr = ar + cr, apci = ai + ci;
        const float amcr = ar - cr, amci = ai - ci;
        const float bpdr = br + dr, bpdi = bi + di;
        const float bmdr = br - dr, bmdi = bi - di;
        const float t1r = amcr + bmdi, t1i = amci - bmdr;
        const float t2r = apcr - bpdr, t2i = apci - bpdi;
        const float t3r = amcr - bmdi, t3i = amci + bmdr;
        yr[4 * p] = apcr + bpdr;
        yi[4 * p] = apci + bpdi;
        yr[4 * p + 1] = w1r[p] * t1r - w1i[p] * t1i;
        yi[4 * p + 1] = w1r[p] * t1i + w1i[p] * t1r;
        yr[4 * p + 2] = w2r[p] * t2r - w2i[p] * t2i;
        yi[4 * p + 2] = w2r[p] * t2i + w2i[p] * t2r;
        yr[4 * p + 3] = w3r[p] * t3r - w3i[p] * t3i;
        yi[4 * p + 3] = w3r[p] * t3i + w3i[p] * t3r;
    }
#undef AD_IN
}

/* The last stage (n = 8, s = 64): an 8-point DFT per q, no twiddles,
 *   y[q + 64 r] = sum_l x[q + 64 l] W8^(l r),  W8 = exp(-2 pi i / 8),
 * as two radix-2 halves (l, l + 4) feeding two 4-point DFTs; one pass instead of a radix-4
 * and a radix-2 pass. */
AD_INLINE void radix8_last(const float *restrict xr, const float *restrict xi,
                           float *restrict yr, float *restrict yi)
{
    enum { S = AD_FFT_HALF / 8 };
    const float h = 0.70710678118654752440f; /* sqrt(1/2) */
    for (int q = 0; q < S; q++) {
        /* b_l = a_l + a_(l+4) feeds the even outputs, c_l W8^l = (a_l - a_(l+4)) W8^l the odd */
        const float b0r = xr[q] + xr[q + 4 * S], b0i = xi[q] + xi[q + 4 * S];
        const float b1r = xr[q + S] + xr[q + 5 * S], b1i = xi[q + S] + xi[q + 5 * S];
        const float b2r = xr[q + 2 * S] + xr[q + 6 * S], b2i = xi[q + 2 * S] + xi[q + 6 * S];
        const float b3r = xr[q + 3 * S] + xr[q + 7 * S], b3i = xi[q + 3 * S] + xi[q + 7 * S];
        const float c0r = xr[q] - xr[q + 4 * S], c0i = xi[q] - xi[q + 4 * S];
        const float e1r = xr[q + S] - xr[q + 5 * S], e1i = xi[q + S] - xi[q + 5 * S];
        const float e2r = xr[q + 2 * S] - xr[q + 6 * S], e2i = xi[q + 2 * S] - xi[q + 6 * S];
        const float e3r = xr[q + 3 * S] - xr[q + 7 * S], e3i = xi[q + 3 * S] - xi[q + 7 * S];
        const float c1r = h * (e1r + e1i), c1i = h * (e1i - e1r);   /* e1 (1 - i) / sqrt 2 */
        const float c2r = e2i, c2i = -e2r;                          /* e2 (-i) */
        const float c3r = h * (e3i - e3r), c3i = -h * (e3r + e3i);  /* e3 (-1 - i) / sqrt 2 */
        /* 4-point DFTs: m0 = s02 + s13, m1 = d02 - i d13, m2 = s02 - s13, m3 = d02 + i d13 */
        const float s02r = b0r + b2r, s02i = b0i + b2i, s13r = b1r + b3r, s13i = b1i + b3i;
        const float d02r = b0r - b2r, d02i = b0i - b2i, d13r = b1r - b3r, d13i = b1i - b3i;
        yr[q] = s02r + s13r;
        yi[q] = s02i + s13i;
        yr[q + 2 * S] = d02r + d13i;
        yi[q + 2 * S] = d02i - d13r;
        yr[q + 4 * S] = s02r - s13r;
        yi[q + 4 * S] = s02i - s13i;
        yr[q + 6 * S] = d02r - d13i;
        yi[q + 6 * S] = d02i + d13r;
        const float u02r = c0r + c2r, u02i = c0i + c2i, u13r = c1r + c3r, u13i = c1i + c3i;
        const float v02r = c0r - c2r, v02i = c0i - c2i, v13r = c1r - c3r, v13i = c1i - c3i;
        yr[q + S] = u02r + u13r;
        yi[q + S] = u02i + u13i;
        yr[q + 3 * S] = v02r + v13i;
        yi[q + 3 * S] = v02i - v13r;
        yr[q + 5 * S] = u02r - u13r;
        yi[q + 5 * S] = u02i - u13i;
        yr[q + 7 * S] = v02r - v13i;
        yi[q + 7 * S] = v02i + v13r;
    }
}

/* The three radix-4 stages and the radix-8 one: z (AD_FFT_HALF complex, natural order)
 * ends in zr, zi = work, work + AD_FFT_HALF. */
AD_INLINE void complex_fft(const ad_rfft *restrict fft, const float *restrict in,
                           const int windowed, const float *restrict window,
                           float *restrict work)
{
    enum { M = AD_FFT_HALF };
    float *restrict xr = work, *restrict xi = work + M;
    float *restrict yr = work + 2 * M, *restrict yi = work + 3 * M;

    radix4_first(in, windowed, window, yr, yi, fft);           /* n = 512, s = 1   */
    radix4_stage(128, 4, yr, yi, xr, xi, fft, 128);   /* n = 128, s = 4   */
    radix4_stage(32, 16, xr, xi, yr, yi, fft, 160);   /* n = 32,  s = 16  */
    radix8_last(yr, yi, xr, xi);                      /* n = 8,   s = 64  */
}

/* Split Z = FFT(z) into the real spectrum: with E = (Z[k] + conj Z[M-k]) / 2 (even
 * samples) and O = (Z[k] - conj Z[M-k]) / 2i (odd samples), X[k] = E + W^k O.
 * Bins k and M-k share their inputs: with A = E(k) and B = W^k O(k),
 * X[k] = A + B and X[M-k] = conj(A - B), so one pass over k < M/2 gives both.
 * With to_power (a compile-time constant: always inlined) it writes |X[k]|^2 to power, not
 * X: re * re + im * im of the very values out_re, out_im would hold (the same bits as a
 * separate power pass), without storing and reloading the spectrum. */
AD_INLINE void split_real(const ad_rfft *restrict fft, const float *restrict zr,
                          const float *restrict zi, float *restrict out_re,
                          float *restrict out_im, const int to_power, float *restrict power)
{
    enum { M = AD_FFT_HALF };
    const float *restrict pr = fft->post_re, *restrict pi = fft->post_im;
    /* k = 0 and M/2 (which pairs with itself: X = conj Z[M/2]) have no partner */
    const float x0r = zr[0] + zi[0], xmr = zr[0] - zi[0];
    const float xhr = zr[M / 2], xhi = -zi[M / 2];
    if (to_power) {
        power[0] = x0r * x0r;  /* + 0 * 0: Im X is 0 at both ends */
        power[M] = xmr * xmr;
        power[M / 2] = xhr * xhr + xhi * xhi;
    } else {
        out_re[0] = x0r;
        out_im[0] = 0.0f;
        out_re[M] = xmr;
        out_im[M] = 0.0f;
        out_re[M / 2] = xhr;
        out_im[M / 2] = xhi;
    }
    for (int k = 1; k < M / 2; k++) {
        const float cr = zr[M - k], ci = -zi[M - k];
        const float e_r = zr[k] + cr, e_i = zi[k] + ci;   /* 2E */
        const float o_r = zi[k] - ci, o_i = cr - zr[k];   /* 2O */
        const float a_r = 0.5f * e_r, a_i = 0.5f * e_i;
        const float b_r = pr[k] * o_r - pi[k] * o_i, b_i = pr[k] * o_i + pi[k] * o_r;
        const float xkr = a_r + b_r, xki = a_i + b_i;     /* X[k] */
        const float xmkr = a_r - b_r, xmki = b_i - a_i;   /* X[M-k] */
        if (to_power) {
            power[k] = xkr * xkr + xki * xki;
            power[M - k] = xmkr * xmkr + xmki * xmki;
        } else {
            out_re[k] = xkr;
            out_im[k] = xki;
            out_re[M - k] = xmkr;
            out_im[M - k] = xmki;
        }
    }
}

AD_HOT void ad_rfft_forward(const ad_rfft *restrict fft, const float *restrict in,
                            float *restrict out_re, float *restrict out_im,
                            float *restrict work)
{
    complex_fft(fft, in, 0, NULL, work);
    split_real(fft, work, work + AD_FFT_HALF, out_re, out_im, 0, NULL);
}

AD_HOT void ad_rfft_power(const ad_rfft *restrict fft, const float *restrict window,
                          const float *restrict in, float *restrict power,
                          float *restrict work)
{
    complex_fft(fft, in, 1, window, work);
    split_real(fft, work, work + AD_FFT_HALF, NULL, NULL, 1, power);
}
