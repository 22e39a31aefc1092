/* ad_frontend.c: setup (init, validation) and the two drivers, streaming and whole clip.
 * The per-frame hot path is ad_frontend_frame_f32: four stage calls on state buffers
 * (window, FFT and power fused in one, see ad_fft.h). */
#include "edge_ad.h"

#include <float.h>
#include <math.h>
#include <string.h>

const char *ad_status_message(ad_status status)
{
    switch (status) {
    case AD_OK: return "ok";
    case AD_ERR_NULL: return "a required pointer is NULL";
    case AD_ERR_HOP: return "hop_samples outside 1..AD_N_FFT";
    case AD_ERR_FLOOR: return "log_floor is not a finite number >= FLT_MIN";
    case AD_ERR_WINDOW: return "a window value is not finite";
    case AD_ERR_MEL_TABLE: return "a mel band lies outside the spectrum or the weight table";
    case AD_ERR_CAPACITY: return "the output buffer is too small";
    case AD_ERR_STATE: return "the state was not initialised by a successful init";
    case AD_ERR_DENSE_SHAPE: return "dense network: layer count or widths outside the limits "
                                    "or not chained";
    case AD_ERR_DENSE_QUANT: return "dense network: a zero point, scale, multiplier, shift or "
                                    "weight outside TFLite's int8 ranges";
    case AD_ERR_DENSE_RANGE: return "dense network: an accumulator could overflow int32";
    case AD_ERR_KERNEL: return "the kernel asked for is not built in or not on this CPU";
    case AD_ERR_MEMORY: return "the memory given is smaller than ad_dense_mem_bytes";
    default: return "unknown status";
    }
}

/* A failed init leaves hop_samples 0: every driver refuses such a state (no division by 0). */
static int state_ready(const ad_frontend *st)
{
    return st->hop_samples >= 1 && st->hop_samples <= AD_N_FFT;
}

static int finite_all(const float *v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!isfinite(v[i]))
            return 0;
    return 1;
}

ad_status ad_frontend_init(ad_frontend *st, const ad_config *cfg)
{
    if (!st)
        return AD_ERR_NULL;
    memset(st, 0, sizeof *st); /* not ready until the end; zeroes st->power's tail */
    if (!cfg || !cfg->window || !cfg->mel_starts || !cfg->mel_lengths ||
        !cfg->mel_offsets || (!cfg->mel_weights && cfg->n_mel_weights > 0))
        return AD_ERR_NULL;
    if (cfg->hop_samples < 1 || cfg->hop_samples > AD_N_FFT)
        return AD_ERR_HOP;
    if (!isfinite(cfg->log_floor) || cfg->log_floor < FLT_MIN)
        return AD_ERR_FLOOR;
    if (!finite_all(cfg->window, AD_N_FFT))
        return AD_ERR_WINDOW;
    if (cfg->n_mel_weights < 0 || cfg->n_mel_weights > AD_MEL_WEIGHTS_MAX ||
        !finite_all(cfg->mel_weights, (size_t)cfg->n_mel_weights))
        return AD_ERR_MEL_TABLE;
    int32_t total = 0; /* bands may share weights; their padded copies must fit the state */
    for (int m = 0; m < AD_N_MELS; m++) {
        const int32_t s = cfg->mel_starts[m], n = cfg->mel_lengths[m], o = cfg->mel_offsets[m];
        /* each test is written so no int32 overflow can occur */
        if (s < 0 || n < 0 || o < 0 || s > AD_N_BINS || n > AD_N_BINS - s ||
            o > cfg->n_mel_weights || n > cfg->n_mel_weights - o ||
            n > AD_MEL_WEIGHTS_MAX - total)
            return AD_ERR_MEL_TABLE;
        total += n;
    }

    st->hop_samples = cfg->hop_samples;
    st->log_floor = cfg->log_floor;
    memcpy(st->window, cfg->window, sizeof st->window);
    ad_mel_table_init(&st->mel, cfg->mel_starts, cfg->mel_lengths, cfg->mel_offsets,
                      cfg->mel_weights);
    ad_rfft_init(&st->fft);
    ad_frontend_reset(st);
    return AD_OK;
}

void ad_frontend_reset(ad_frontend *st)
{
    if (!st)
        return;
    st->n_samples = 0;
    ad_context_reset(&st->ring);
}

/* p rounded up to a multiple of 64 bytes (st->fft_work has the room) */
static float *align64(float *p)
{
    return p + ((64 - (uintptr_t)p % 64) % 64) / sizeof(float);
}

size_t ad_frontend_frame_f32(ad_frontend *st, const float *frame, float *out)
{
    /* = ad_window_apply, ad_rfft_forward, ad_power_spectrum, fused (see ad_fft.h); it
     * writes AD_N_BINS values: the power's tail, which the mel bands' zero padding meets,
     * stays 0 from init */
    ad_rfft_power(&st->fft, st->window, frame, st->power, align64(st->fft_work));
    ad_mel_apply(&st->mel, st->power, st->mel_energy);
    return ad_log10_floor(st->mel_energy, out, AD_N_MELS, st->log_floor);
}

/* ---- streaming ------------------------------------------------------------------------ */

size_t ad_frontend_vectors_for(const ad_frontend *st, size_t n_samples)
{
    if (!st || !state_ready(st))
        return 0;
    const size_t have = (size_t)st->n_samples, need = AD_N_FFT - have;
    if (n_samples < need)
        return 0;
    const size_t frames = 1 + (n_samples - need) / (size_t)st->hop_samples;
    /* frames before the ring is full give no vector */
    const size_t warmup = (size_t)(AD_CONTEXT - 1 - (st->ring.n_frames < AD_CONTEXT - 1
                                                         ? st->ring.n_frames
                                                         : AD_CONTEXT - 1));
    return frames > warmup ? frames - warmup : 0;
}

/* One push loop for both sample types: copy (converting) into the frame buffer; each time
 * it is full, compute a frame, feed the ring, maybe emit a vector, slide by hop. */
#define AD_PUSH_BODY(CONVERT)                                                               \
    do {                                                                                    \
        if (!st || (!samples && n_samples > 0) || (!out && out_capacity > 0) ||             \
            !n_consumed || !n_out)                                                          \
            return AD_ERR_NULL;                                                             \
        if (!state_ready(st))                                                               \
            return AD_ERR_STATE;                                                            \
        size_t used = 0, written = 0;                                                       \
        while (used < n_samples) {                                                          \
            const size_t need = (size_t)(AD_N_FFT - st->n_samples);                         \
            const size_t left = n_samples - used;                                           \
            /* stop before a frame whose vector has no room */                              \
            if (left >= need && st->ring.n_frames >= AD_CONTEXT - 1 &&                      \
                written == out_capacity)                                                    \
                break;                                                                      \
            const size_t take = left < need ? left : need;                                  \
            float *dst = st->samples + st->n_samples;                                       \
            for (size_t i = 0; i < take; i++)                                               \
                dst[i] = CONVERT(samples[used + i]);                                        \
            used += take;                                                                   \
            st->n_samples += (int32_t)take;                                                 \
            if (st->n_samples < AD_N_FFT)                                                   \
                break;                                                                      \
            ad_frontend_frame_f32(st, st->samples, st->logmel);                             \
            if (ad_context_push(&st->ring, st->logmel))                                     \
                ad_context_read(&st->ring, out + AD_VECTOR_SIZE * written++);               \
            memmove(st->samples, st->samples + st->hop_samples,                             \
                    (size_t)(AD_N_FFT - st->hop_samples) * sizeof(float));                  \
            st->n_samples = AD_N_FFT - st->hop_samples;                                     \
        }                                                                                   \
        *n_consumed = used;                                                                 \
        *n_out = written;                                                                   \
        return AD_OK;                                                                       \
    } while (0)

#define AD_FROM_I16(v) ((float)(v) * (1.0f / 32768.0f))
#define AD_FROM_F32(v) (v)

ad_status ad_frontend_push_i16(ad_frontend *st, const int16_t *samples, size_t n_samples,
                               float *out, size_t out_capacity, size_t *n_consumed,
                               size_t *n_out)
{
    AD_PUSH_BODY(AD_FROM_I16);
}

ad_status ad_frontend_push_f32(ad_frontend *st, const float *samples, size_t n_samples,
                               float *out, size_t out_capacity, size_t *n_consumed,
                               size_t *n_out)
{
    AD_PUSH_BODY(AD_FROM_F32);
}

/* ---- whole clip ----------------------------------------------------------------------- */

size_t ad_clip_n_frames(const ad_frontend *st, size_t n_samples)
{
    if (!st || !state_ready(st))
        return 0;
    const size_t padded = n_samples + (AD_N_FFT - n_samples % AD_N_FFT);
    return 1 + (padded - AD_N_FFT) / (size_t)st->hop_samples;
}

ad_status ad_frontend_clip_frames_f32(ad_frontend *st, const float *x, size_t n_samples,
                                      float *frames, size_t frames_capacity,
                                      size_t *n_frames, size_t *n_nonfinite)
{
    if (!st || (!x && n_samples > 0) || !frames || !n_frames)
        return AD_ERR_NULL;
    if (!state_ready(st))
        return AD_ERR_STATE;
    const size_t total = ad_clip_n_frames(st, n_samples);
    if (frames_capacity < total)
        return AD_ERR_CAPACITY;
    const size_t pad = AD_N_FFT - n_samples % AD_N_FFT, front = pad / 2;
    const size_t hop = (size_t)st->hop_samples;
    size_t bad_frames = 0;
    for (size_t t = 0; t < total; t++) {
        /* frame t covers padded samples [t hop, t hop + AD_N_FFT), i.e. x[t hop - front ..] */
        const size_t start = t * hop;
        float *out = frames + t * AD_N_MELS;
        if (start >= front && start - front + AD_N_FFT <= n_samples) {
            bad_frames += ad_frontend_frame_f32(st, x + (start - front), out) > 0;
        } else {
            /* an edge frame: assembled with the padding's zeros in st->edge_frame (not
             * st->samples, which belongs to the stream the clip path leaves alone) */
            float *edge = st->edge_frame;
            for (size_t i = 0; i < AD_N_FFT; i++) {
                const size_t p = start + i; /* padded index */
                edge[i] = (p >= front && p - front < n_samples) ? x[p - front] : 0.0f;
            }
            bad_frames += ad_frontend_frame_f32(st, edge, out) > 0;
        }
    }
    *n_frames = total;
    if (n_nonfinite)
        *n_nonfinite = bad_frames;
    return AD_OK;
}
