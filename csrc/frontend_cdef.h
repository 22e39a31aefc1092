/* frontend_cdef.h: what Python sees of edge_ad.h, declarations only (cffi cdef).
 * Constants are written "..." so cffi takes their values from the real header. */

#define AD_N_FFT ...
#define AD_N_BINS ...
#define AD_N_MELS ...
#define AD_CONTEXT ...
#define AD_VECTOR_SIZE ...
#define AD_MEL_WEIGHTS_MAX ...
#define AD_FFT_N ...
#define AD_FFT_BINS ...
#define AD_FFT_WORK ...

#define AD_OK ...
#define AD_ERR_NULL ...
#define AD_ERR_HOP ...
#define AD_ERR_FLOOR ...
#define AD_ERR_WINDOW ...
#define AD_ERR_MEL_TABLE ...
#define AD_ERR_CAPACITY ...
#define AD_ERR_STATE ...

typedef int ad_status;

typedef struct {
    int32_t hop_samples;
    float log_floor;
    const float *window;
    const int32_t *mel_starts;
    const int32_t *mel_lengths;
    const int32_t *mel_offsets;
    const float *mel_weights;
    int32_t n_mel_weights;
} ad_config;

typedef struct { ...; } ad_rfft;
typedef struct { ...; } ad_frontend;

ad_status ad_frontend_init(ad_frontend *st, const ad_config *cfg);
void ad_frontend_reset(ad_frontend *st);
size_t ad_frontend_vectors_for(const ad_frontend *st, size_t n_samples);
ad_status ad_frontend_push_i16(ad_frontend *st, const int16_t *samples, size_t n_samples,
                               float *out, size_t out_capacity, size_t *n_consumed,
                               size_t *n_out);
ad_status ad_frontend_push_f32(ad_frontend *st, const float *samples, size_t n_samples,
                               float *out, size_t out_capacity, size_t *n_consumed,
                               size_t *n_out);
size_t ad_clip_n_frames(const ad_frontend *st, size_t n_samples);
ad_status ad_frontend_clip_frames_f32(ad_frontend *st, const float *x, size_t n_samples,
                                      float *frames, size_t frames_capacity,
                                      size_t *n_frames, size_t *n_nonfinite);
size_t ad_frontend_frame_f32(ad_frontend *st, const float *frame, float *out);
size_t ad_context_vectors(const float *frames, size_t n_frames, float *out,
                          size_t out_capacity);
size_t ad_log10_floor(const float *in, float *out, size_t n, float floor);
const char *ad_status_message(ad_status status);

void ad_rfft_init(ad_rfft *fft);
void ad_rfft_forward(const ad_rfft *fft, const float *in, float *out_re, float *out_im,
                     float *work);
