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
#define AD_ERR_DENSE_SHAPE ...
#define AD_ERR_DENSE_QUANT ...
#define AD_ERR_DENSE_RANGE ...
#define AD_ERR_KERNEL ...
#define AD_ERR_MEMORY ...

#define AD_DENSE_MAX_LAYERS ...
#define AD_DENSE_MAX_WIDTH ...
#define AD_DENSE_BATCH ...
#define AD_DENSE_AUTO ...
#define AD_DENSE_SCALAR ...
#define AD_DENSE_AVX2 ...
#define AD_DENSE_AVX512_VNNI ...
#define AD_DENSE_NEON ...
#define AD_DENSE_AMX ...
#define AD_DENSE_AVX_VNNI ...
#define AD_DENSE_N_KERNELS ...

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

typedef struct {
    int32_t n_in, n_out;
    const int8_t *weights;
    const int32_t *bias;
    const int32_t *multiplier;
    const int32_t *shift;
    int32_t input_zero_point;
    int32_t output_zero_point;
    int32_t relu;
} ad_dense_layer_config;

typedef struct {
    int32_t n_layers;
    const ad_dense_layer_config *layers;
    int32_t single_rounding;
    float input_scale;
    float output_scale;
} ad_dense_config;

typedef struct { int32_t kernel; int32_t n_in, n_out; ...; } ad_dense;

size_t ad_dense_mem_bytes(const ad_dense_config *cfg);
ad_status ad_dense_init(ad_dense *net, const ad_dense_config *cfg, int32_t kernel, void *mem,
                        size_t mem_bytes);
uint32_t ad_dense_kernels(void);
const char *ad_dense_kernel_name(int32_t kernel);
ad_status ad_dense_run_i8(ad_dense *net, const int8_t *in, size_t n, int8_t *out);
ad_status ad_dense_run_f32(ad_dense *net, const float *x, size_t n, int8_t *q_out,
                           float *recon, double *sq_err);
void ad_quantize_f32(const float *x, size_t n, float scale, int32_t zero_point, int8_t *q);
void ad_dequantize_i8(const int8_t *q, size_t n, float scale, int32_t zero_point, float *out);
double ad_squared_error(const float *a, const float *b, size_t n);
int32_t ad_requantize(int32_t acc, int32_t multiplier, int32_t shift, int32_t single_rounding);

typedef struct { ...; } ad_stream;
ad_status ad_stream_init(ad_stream *st, const ad_config *cfg, ad_dense *net);
void ad_stream_reset(ad_stream *st);
size_t ad_stream_vectors_for(const ad_stream *st, size_t n_samples);
ad_status ad_stream_push_i16(ad_stream *st, const int16_t *samples, size_t n_samples,
                             double *errors, size_t errors_capacity, size_t *n_consumed,
                             size_t *n_errors);
ad_status ad_stream_push_f32(ad_stream *st, const float *samples, size_t n_samples,
                             double *errors, size_t errors_capacity, size_t *n_consumed,
                             size_t *n_errors);
#define AD_STREAM_ROW ...
ad_status ad_stream_push_rows_i16(ad_stream *st, const int16_t *samples, size_t n_samples,
                                  double *rows, size_t rows_capacity, size_t *n_consumed,
                                  size_t *n_rows);
ad_status ad_stream_push_rows_f32(ad_stream *st, const float *samples, size_t n_samples,
                                  double *rows, size_t rows_capacity, size_t *n_consumed,
                                  size_t *n_rows);
