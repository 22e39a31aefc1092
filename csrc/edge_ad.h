/* edge_ad.h: the edge-ad log-mel front end (SPEC section 2), one public header.
 *
 * Pipeline per frame of AD_N_FFT samples:
 *   window (ad_window.c) -> real FFT (ad_fft.c) -> power (ad_power.c)
 *   -> sparse mel (ad_mel.c) -> log10 with floor (ad_log.c) -> context ring (ad_context.c)
 * and the streaming / whole-clip driver in ad_frontend.c. The driver computes the first
 * three in one call, ad_rfft_power (ad_fft.h), with the same bits.
 *
 * Sizes are compile-time constants so the state has a fixed size and no call allocates.
 * Tables (window, sparse mel filterbank) are computed in Python from the FeatureSpec
 * (edge/tables.py) and handed to ad_frontend_init, which validates and copies them.
 *
 * Streaming contract (ad_frontend_push_*):
 *   - samples are appended to an internal buffer of AD_N_FFT samples; no padding;
 *   - each time the buffer is full a frame is computed and the buffer moves on by
 *     hop_samples, so frames start at samples 0, hop, 2 hop, ... of the stream;
 *   - once AD_CONTEXT frames exist, every new frame completes one context vector:
 *     the last AD_CONTEXT frames, oldest first, frame-major (AD_VECTOR_SIZE floats);
 *   - push writes the completed vectors to out (row after row), never more than
 *     out_capacity of them; it stops before the samples whose frame would need another
 *     row, and reports how many samples it consumed and how many vectors it wrote.
 *     ad_frontend_vectors_for() says beforehand how many rows a push will need.
 *   - after a successful init, push cannot fail: it only refuses NULL pointers
 *     (AD_ERR_NULL) and a state whose init failed (AD_ERR_STATE). Non-finite float samples are not rejected here (the Python layer does);
 *     every output value is still finite (NaN energies give log10(floor), infinite ones
 *     about 38.5) and no undefined behaviour occurs (fuzzed under ASan/UBSan).
 *
 * Whole-clip contract (ad_frontend_clip_frames_f32): the seed's padding,
 *   pad = AD_N_FFT - n mod AD_N_FFT zeros, floor(pad/2) in front, ceil(pad/2) behind,
 * then a frame every hop_samples: 313 frames for 160000 samples; ad_context_vectors turns
 * them into 309 context vectors. It does not touch the streaming buffers.
 */
#ifndef EDGE_AD_H
#define EDGE_AD_H

#include <stddef.h>
#include <stdint.h>

#include "ad_fft.h"

#ifdef __cplusplus
extern "C" {
#endif

#define AD_N_FFT AD_FFT_N                       /* frame length, samples (1024) */
#define AD_N_BINS AD_FFT_BINS                   /* one-sided spectrum bins (513) */
#define AD_N_MELS 128                           /* mel bands per frame */
#define AD_CONTEXT 5                            /* frames per context vector */
#define AD_VECTOR_SIZE (AD_N_MELS * AD_CONTEXT) /* floats per context vector (640) */
#define AD_MEL_WEIGHTS_MAX (2 * AD_N_BINS)      /* packed mel weights the state holds */

/* Status codes (ad_status_message gives the text). */
#define AD_OK 0
#define AD_ERR_NULL 1          /* a required pointer is NULL */
#define AD_ERR_HOP 2           /* hop_samples outside 1..AD_N_FFT */
#define AD_ERR_FLOOR 3         /* log_floor not finite or below FLT_MIN */
#define AD_ERR_WINDOW 4        /* a window value is not finite */
#define AD_ERR_MEL_TABLE 5     /* a mel band outside the spectrum or the weights, or too
                                  many weights in all */
#define AD_ERR_CAPACITY 6      /* the output buffer is too small for the whole clip */
#define AD_ERR_STATE 7         /* the state was not initialised by a successful init */

typedef int ad_status;

/* Knobs and tables; the pointers only need to live during ad_frontend_init. */
typedef struct {
    int32_t hop_samples;          /* samples between frame starts (512) */
    float log_floor;              /* mel energies below it are clamped before log10 (1e-10) */
    const float *window;          /* AD_N_FFT floats */
    const int32_t *mel_starts;    /* AD_N_MELS: first spectrum bin of each band */
    const int32_t *mel_lengths;   /* AD_N_MELS: bins in each band (may be 0) */
    const int32_t *mel_offsets;   /* AD_N_MELS: index of each band's first weight */
    const float *mel_weights;     /* n_mel_weights packed weights */
    int32_t n_mel_weights;        /* at most AD_MEL_WEIGHTS_MAX; the band lengths too
                                     sum to at most AD_MEL_WEIGHTS_MAX */
} ad_config;

/* Sparse mel filterbank, CMSIS-DSP style: band m is
 * sum_j weights[offsets[m] + j] * power[starts[m] + j], j < lengths[m].
 * ad_mel_table_init pads every band with zero weights to a multiple of AD_MEL_LANES so the
 * inner loop has no remainder and vectorises, and further to the longest band of its group
 * of AD_MEL_LANES bands, so a group is one loop of four independent sums (see ad_mel.c).
 * The padding reads up to AD_N_BINS + AD_MEL_LANES - 1 bins past a band's start: power
 * buffers hold AD_POWER_LEN floats, zero past AD_N_BINS. */
#define AD_MEL_LANES 4
#define AD_POWER_LEN (2 * AD_N_BINS + AD_MEL_LANES - 1)
/* each group pads its bands to its longest one, itself at most the group's padded total */
#define AD_MEL_PADDED_MAX (AD_MEL_LANES * (AD_MEL_WEIGHTS_MAX + (AD_MEL_LANES - 1) * AD_N_MELS))
typedef struct {
    int32_t starts[AD_N_MELS];
    int32_t lengths[AD_N_MELS];   /* multiples of AD_MEL_LANES, equal within a group */
    int32_t offsets[AD_N_MELS];   /* multiples of AD_MEL_LANES */
    float weights[AD_MEL_PADDED_MAX];
} ad_mel_table;

/* The last AD_CONTEXT frames, oldest first, contiguous: a vector is one copy. */
typedef struct {
    float frames[AD_CONTEXT * AD_N_MELS];
    int32_t n_frames;             /* frames held, saturates at AD_CONTEXT */
} ad_context_ring;

/* Everything the front end needs, fixed size; treat as opaque. */
typedef struct {
    /* set by init, read only afterwards */
    int32_t hop_samples;
    float log_floor;
    float window[AD_N_FFT];
    ad_mel_table mel;
    ad_rfft fft;
    /* streaming */
    float samples[AD_N_FFT];      /* the frame being filled */
    int32_t n_samples;            /* samples in it */
    ad_context_ring ring;
    /* scratch of one frame */
    float edge_frame[AD_N_FFT];   /* a clip's first/last frames with their zero padding */
    /* used from its first 64-byte boundary: the FFT's vector loads then never straddle a
     * cache line whatever the struct's offset (cffi allocates it 16-byte aligned) */
    float fft_work[AD_FFT_WORK + 16];
    float power[AD_POWER_LEN];
    float mel_energy[AD_N_MELS];
    float logmel[AD_N_MELS];
} ad_frontend;

/* ---- the front end ------------------------------------------------------------------ */

/* Validate cfg, copy its tables into st and reset the stream. On error st is unusable. */
ad_status ad_frontend_init(ad_frontend *st, const ad_config *cfg);

/* Forget buffered samples and frames (start of a new stream). */
void ad_frontend_reset(ad_frontend *st);

/* Vectors that pushing n_samples more samples would complete (exact). */
size_t ad_frontend_vectors_for(const ad_frontend *st, size_t n_samples);

/* Streaming push, int16 PCM (scaled by 1/32768) or float. See the contract above.
 *   samples:      n_samples values
 *   out:          out_capacity * AD_VECTOR_SIZE floats (may be NULL if out_capacity is 0)
 *   n_consumed:   samples taken (== n_samples unless out filled up)
 *   n_out:        vectors written */
ad_status ad_frontend_push_i16(ad_frontend *st, const int16_t *samples, size_t n_samples,
                               float *out, size_t out_capacity, size_t *n_consumed,
                               size_t *n_out);
ad_status ad_frontend_push_f32(ad_frontend *st, const float *samples, size_t n_samples,
                               float *out, size_t out_capacity, size_t *n_consumed,
                               size_t *n_out);

/* Frames of a clip of n_samples samples after the seed's padding (313 for 160000). */
size_t ad_clip_n_frames(const ad_frontend *st, size_t n_samples);

/* Log-mel frames of a whole clip with the seed's padding.
 *   x:            n_samples floats
 *   frames:       frames_capacity * AD_N_MELS floats, row-major (n_frames, AD_N_MELS)
 *   n_frames:     frames written (ad_clip_n_frames)
 *   n_nonfinite:  (may be NULL) frames whose mel energies were NaN or inf: non-finite
 *                 samples, or finite ones so large the power overflows; 0 for audio
 * AD_ERR_CAPACITY (nothing written) if frames_capacity < ad_clip_n_frames. */
ad_status ad_frontend_clip_frames_f32(ad_frontend *st, const float *x, size_t n_samples,
                                      float *frames, size_t frames_capacity,
                                      size_t *n_frames, size_t *n_nonfinite);

/* Log-mel frame of AD_N_FFT samples as given (no padding): out gets AD_N_MELS floats.
 * Returns the number of mel energies that were NaN or inf (0 for audio). */
size_t ad_frontend_frame_f32(ad_frontend *st, const float *frame, float *out);

/* ---- the stages (one file each); exposed for tests and other drivers --------------- */

/* ad_window.c: out[i] = window[i] * in[i], i < AD_N_FFT. */
void ad_window_apply(const float *window, const float *in, float *out);

/* ad_power.c: power[k] = re[k]^2 + im[k]^2, k < AD_N_BINS; power has AD_POWER_LEN floats
 * and the ones past AD_N_BINS are set to 0 (they meet the zero padding of the mel bands). */
void ad_power_spectrum(const float *re, const float *im, float *power);

/* ad_mel.c: pack a validated sparse filterbank of cfg (see ad_config) into mel. */
void ad_mel_table_init(ad_mel_table *mel, const int32_t *starts, const int32_t *lengths,
                       const int32_t *offsets, const float *weights);
/* ad_mel.c: out[m] = band m of power (AD_POWER_LEN floats from ad_power_spectrum). */
void ad_mel_apply(const ad_mel_table *mel, const float *power, float *out);

/* ad_log.c: out[i] = log10(max(in[i], floor)), i < n; floor >= FLT_MIN and finite.
 * A polynomial log (max abs error ~1e-7 in log10 units, tested), vectorisable;
 * NaN inputs give log10(floor), +inf about 38.5. Returns how many inputs were NaN or inf
 * (the floor hides them; callers use it to refuse non-finite audio for free). */
size_t ad_log10_floor(const float *in, float *out, size_t n, float floor);

/* ad_context.c: ring of the last AD_CONTEXT frames. */
void ad_context_reset(ad_context_ring *ring);
/* Append one frame (AD_N_MELS floats); returns 1 if the ring now holds a full vector. */
int ad_context_push(ad_context_ring *ring, const float *frame);
/* Copy the current vector (AD_VECTOR_SIZE floats, oldest frame first). */
void ad_context_read(const ad_context_ring *ring, float *out);
/* Context vectors of consecutive frames (n_frames, AD_N_MELS): writes
 * min(out_capacity, max(0, n_frames - AD_CONTEXT + 1)) rows of AD_VECTOR_SIZE floats to
 * out and returns that count. */
size_t ad_context_vectors(const float *frames, size_t n_frames, float *out,
                          size_t out_capacity);

/* Text of a status code (static storage). */
const char *ad_status_message(ad_status status);

#ifdef __cplusplus
}
#endif
#endif /* EDGE_AD_H */
