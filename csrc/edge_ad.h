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
#define AD_ERR_DENSE_SHAPE 8   /* layer count or widths outside the limits, or widths that
                                  do not chain (a layer's n_in is not the last one's n_out) */
#define AD_ERR_DENSE_QUANT 9   /* a zero point outside -128..127 or not chained, a scale not
                                  finite and > 0, a multiplier outside [2^30, 2^31) (or 0), a
                                  shift outside -31..30, a weight of -128 */
#define AD_ERR_DENSE_RANGE 10  /* an accumulator could overflow int32 (bias too large, or a
                                  left shift that would overflow) */
#define AD_ERR_KERNEL 11       /* the asked-for kernel is not built in or not on this CPU */
#define AD_ERR_MEMORY 12       /* the caller's memory is smaller than ad_dense_mem_bytes */

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

/* ---- the int8 dense network (ad_dense.c, ad_dense_x86.c, ad_dense_neon.c, ad_quant.c) --
 *
 * A chain of fully connected layers computed exactly as TensorFlow Lite's reference int8
 * FULLY_CONNECTED kernel (tensorflow/lite/kernels/internal/reference/integer_ops/
 * fully_connected.h, TFLM's too): for output channel o of a layer,
 *   acc = bias[o] + sum_k (in[k] - input_zero_point) * weights[o][k]            (int32)
 *   y   = MultiplyByQuantizedMultiplier(acc, multiplier[o], shift[o]) + output_zero_point
 *   out = clamp(y, relu ? max(-128, output_zero_point) : -128, 127)              (int8)
 * MultiplyByQuantizedMultiplier comes in TFLite's two forms, chosen per network
 * (ad_dense_config.single_rounding, ad_requantize):
 *   double rounding (gemmlowp; TFLM, tflite-runtime 2.14):
 *     RoundingDivideByPOT(SaturatingRoundingDoublingHighMul(x * 2^max(s, 0), m), max(-s, 0))
 *   single rounding (TFLITE_SINGLE_ROUNDING; the ai-edge-litert wheels):
 *     (x * m + 2^(30 - s)) >> (31 - s)   in 64 bits
 * They differ in the last bit of about one output in 200; the export writes the form of
 * the runtime it validated the model with. Weights are symmetric int8 in -127..127
 * (TFLite's int8 spec), so every kernel may sum two products in int16.
 *
 * Kernels: scalar (everywhere), AVX2 (int16 multiply-add), AVX-VNNI and AVX-512 VNNI (u8 x
 * s8 dot products) and AMX (tiles of them) on x86-64, NEON (with the dot-product instructions where the compiler targets
 * them) on ARM. Integer arithmetic makes them all compute the same bits; init picks the
 * fastest the CPU has (AD_DENSE_AUTO) or the one asked for, and packs the weights for it.
 *
 * Memory: the caller owns it. ad_dense_mem_bytes says how much a configuration needs;
 * ad_dense_init validates the configuration, then copies and packs everything into that
 * memory and into the fixed-size ad_dense. No call allocates; after a successful init the
 * run calls cannot fail except for NULL pointers and an uninitialised state. The float
 * path quantises with the network's input scale and zero point exactly as TFLite's
 * QUANTIZE (round half away from zero of x / scale, plus the zero point, clamped) and
 * dequantises as its DEQUANTIZE (scale * (q - zero_point)); the per-vector squared error
 * compares that dequantised output with the original float input (SPEC 4). */
#define AD_DENSE_MAX_LAYERS 16
#define AD_DENSE_MAX_WIDTH 4096       /* inputs or outputs of one layer */
#define AD_DENSE_BATCH 32             /* vectors a kernel call handles at once */

#define AD_DENSE_AUTO 0               /* kernel ids: the fastest this CPU has */
#define AD_DENSE_SCALAR 1
#define AD_DENSE_AVX2 2
#define AD_DENSE_AVX512_VNNI 3
#define AD_DENSE_NEON 4
#define AD_DENSE_AMX 5                /* Intel AMX int8 tiles (Sapphire Rapids and later) */
#define AD_DENSE_AVX_VNNI 6           /* 256-bit VNNI without AVX-512 (Alder Lake and later) */
#define AD_DENSE_N_KERNELS 7

typedef struct {
    int32_t n_in, n_out;
    const int8_t *weights;        /* n_out * n_in, row-major (TFLite's filter [out, in]) */
    const int32_t *bias;          /* n_out (NULL: zeros) */
    const int32_t *multiplier;    /* n_out: 0 or in [2^30, 2^31) (TFLite's QuantizeMultiplier) */
    const int32_t *shift;         /* n_out: -31..30; > 0 shifts left, < 0 right */
    int32_t input_zero_point;     /* -128..127; equals the previous layer's output zero point */
    int32_t output_zero_point;    /* -128..127 */
    int32_t relu;                 /* 1: fused ReLU (clamp below at the zero point), 0: none */
} ad_dense_layer_config;

typedef struct {
    int32_t n_layers;                     /* 1..AD_DENSE_MAX_LAYERS */
    const ad_dense_layer_config *layers;  /* n_layers, chained */
    int32_t single_rounding;              /* 1: TFLITE_SINGLE_ROUNDING, 0: gemmlowp's */
    float input_scale;    /* float -> int8 of the first layer's input (its zero point) */
    float output_scale;   /* int8 -> float of the last layer's output (its zero point) */
} ad_dense_config;

/* One layer as init packed it; the pointers lie in the caller's memory. */
typedef struct {
    int32_t n_in, n_out;          /* as configured */
    int32_t k_pad, n_pad;         /* padded to multiples of 16: the packed sizes */
    int32_t input_zero_point, output_zero_point, act_min;
    int32_t single_rounding;      /* the network's rounding form */
    const void *weights;          /* packed for the kernel (int8 or int16) */
    const int32_t *bias;          /* n_pad: bias with the zero-point terms folded in */
    const int32_t *multiplier;    /* n_pad */
    const int32_t *left_shift;    /* n_pad: double rounding max(shift, 0); single: 0 */
    const int32_t *right_shift;   /* n_pad: double rounding max(-shift, 0); single 31 - shift */
    /* single rounding, per block of 16 channels o..o+15: [o..o+7] the even channels
     * o, o+2, .., o+14, [o+8..o+15] the odd ones (the 64-bit lanes of a product of even
     * or odd int32 lanes): the right shift t and the rounding term 2^(t-1) as int64 */
    const int64_t *shift64;       /* n_pad */
    const int64_t *round64;       /* n_pad */
    /* single rounding, for the AVX-512 kernels: multiplier_odd[o + 2i] is channel
     * o + 2i + 1's multiplier (the low half of the 64-bit lane an odd product comes from),
     * multiplier_odd[o + 2i + 1] is 0; where every channel's t is 32 or more (high_shift),
     * shift32[o] = t - 32: the result is then the high 32 bits of x m + 2^(t-1), shifted
     * right by t - 32 */
    const int32_t *multiplier_odd; /* n_pad */
    const int32_t *shift32;        /* n_pad */
    int32_t high_shift;
    /* single rounding where every channel's t is 33 or more (fold_zp): the rounding term
     * and the output zero point folded into one int32 added to the high half,
     * round_zp32[o] = 2^(t-33) + zp 2^(t-32) (padding channels: zp, shift 0), so that
     * (high + round_zp32) >> (t - 32) is the requantised value plus the zero point */
    const int32_t *round_zp32;     /* n_pad */
    int32_t fold_zp;
    /* the bias with the input zero point folded in for int8 inputs (the AMX kernel's
     * s8 x s8 products; bias holds the u8 form its single-vector VNNI path uses) */
    const int32_t *bias_s8;        /* n_pad */
} ad_dense_layer;

/* The network; fixed size, treat as opaque. Not shared between threads (scratch). */
typedef struct {
    uint32_t ready;               /* a magic number after a successful init */
    int32_t kernel;               /* the kernel init chose */
    int32_t n_layers, n_in, n_out, width_pad;
    float input_scale, output_scale;
    int32_t input_zero_point, output_zero_point;
    ad_dense_layer layers[AD_DENSE_MAX_LAYERS];
    int8_t *act[2];               /* AD_DENSE_BATCH rows of width_pad int8 each */
    void *scratch;                /* a layer's inputs converted for the kernel */
    float *dequant;               /* AD_DENSE_BATCH * n_out: the float path's outputs */
} ad_dense;

/* Bytes of caller memory ad_dense_init needs for cfg (any kernel); 0 for a configuration
 * whose shapes ad_dense_init would refuse. */
size_t ad_dense_mem_bytes(const ad_dense_config *cfg);

/* Validate cfg, pick the kernel (AD_DENSE_AUTO or an id), copy and pack the network into
 * mem (mem_bytes >= ad_dense_mem_bytes(cfg), any alignment). On error net is unusable.
 * cfg's arrays need to live only during the call; mem as long as net is used. */
ad_status ad_dense_init(ad_dense *net, const ad_dense_config *cfg, int32_t kernel, void *mem,
                        size_t mem_bytes);

/* Bit mask of the kernels this build has and this CPU runs (1 << id); name of an id.
 * On Linux with an AMX CPU, the first call asks the kernel to grant this process the AMX
 * tile state (arch_prctl; process-wide, harmless to ask again). */
uint32_t ad_dense_kernels(void);
const char *ad_dense_kernel_name(int32_t kernel);

/* int8 in, int8 out: in has n * net->n_in values, out n * net->n_out (row-major). */
ad_status ad_dense_run_i8(ad_dense *net, const int8_t *in, size_t n, int8_t *out);

/* Float in, float out, SPEC 4's error: x has n * n_in floats. Each of the outputs may be
 * NULL: q_out n * n_out int8 outputs; recon n * n_out dequantised outputs; sq_err n
 * doubles, ||recon_i - x_i||^2 (needs n_in == n_out, else AD_ERR_DENSE_SHAPE), summed in
 * double in a fixed order (the same bits on every kernel and machine). */
ad_status ad_dense_run_f32(ad_dense *net, const float *x, size_t n, int8_t *q_out,
                           float *recon, double *sq_err);

/* ad_quant.c, the stages of the float path (exposed for tests and other drivers):
 * q[i] = clamp(round_half_away(x[i] / scale) + zero_point, -128, 127), TFLite's QUANTIZE
 * (NaN gives 127; the front end never produces one); */
void ad_quantize_f32(const float *x, size_t n, float scale, int32_t zero_point, int8_t *q);
/* out[i] = scale * (q[i] - zero_point), TFLite's DEQUANTIZE; */
void ad_dequantize_i8(const int8_t *q, size_t n, float scale, int32_t zero_point, float *out);
/* sum_i (a[i] - b[i])^2 in double: 8 partial sums (i mod 8), then a fixed tree. */
double ad_squared_error(const float *a, const float *b, size_t n);
/* TFLite's MultiplyByQuantizedMultiplier in either form (the scalar definition every
 * kernel matches); shift -31..30. */
int32_t ad_requantize(int32_t acc, int32_t multiplier, int32_t shift, int32_t single_rounding);

/* ---- the streaming detector path (ad_stream.c) --------------------------------------
 *
 * Samples in, the squared error of every completed context vector out, in one call per
 * block: the front end (its streaming contract above), the context ring, the int8 network
 * on the new vectors (AD_DENSE_BATCH at a time) and SPEC 4's error against the float
 * vectors. errors[i] is bit for bit what ad_frontend_push_* then ad_dense_run_f32 give.
 * The window score (the mean over the last N errors) is the caller's: a sum per decision. */
typedef struct {
    ad_frontend frontend;
    ad_dense *net;                                    /* the caller's, initialised */
    float vectors[AD_DENSE_BATCH * AD_VECTOR_SIZE];  /* a batch from the front end */
    float recon[AD_DENSE_BATCH * AD_VECTOR_SIZE];    /* its dequantised reconstructions */
} ad_stream;

/* Initialise the front end from cfg (as ad_frontend_init) and attach net, whose input and
 * output widths must be AD_VECTOR_SIZE (AD_ERR_DENSE_SHAPE otherwise); net stays the
 * caller's and must outlive st. */
ad_status ad_stream_init(ad_stream *st, const ad_config *cfg, ad_dense *net);

/* Forget buffered samples and frames (a gap in the audio). */
void ad_stream_reset(ad_stream *st);

/* Errors that pushing n_samples more samples would give (= ad_frontend_vectors_for). */
size_t ad_stream_vectors_for(const ad_stream *st, size_t n_samples);

/* Push samples (int16 scaled by 1/32768, or float); write the squared error of each
 * vector they complete to errors (errors_capacity doubles), never more than capacity:
 * like the front end's push it stops before a vector with no room and says how many
 * samples it consumed. Cannot fail after a good init except for NULL pointers. */
ad_status ad_stream_push_i16(ad_stream *st, const int16_t *samples, size_t n_samples,
                             double *errors, size_t errors_capacity, size_t *n_consumed,
                             size_t *n_errors);
ad_status ad_stream_push_f32(ad_stream *st, const float *samples, size_t n_samples,
                             double *errors, size_t errors_capacity, size_t *n_consumed,
                             size_t *n_errors);

/* The detector heads' per-vector feature row (edge.heads, union of mse, band-maha and
 * stats), AD_STREAM_ROW doubles per vector, for x the float vector and r its dequantised
 * reconstruction, d_i = (double)r_i - (double)x_i:
 *   [0]                        sum_i d_i^2 (as ad_squared_error: the errors above)
 *   [1 + m]                    sum_f d_{f*AD_N_MELS+m}^2 over the AD_CONTEXT frames, f in order
 *   [1 + AD_N_MELS + m]        x_m (the vector's first frame)
 *   [1 + 2*AD_N_MELS + m]      x_m * x_m
 * for m = 0 .. AD_N_MELS-1. A window's score is its head's function of the rows' sum. */
#define AD_STREAM_ROW (1 + 3 * AD_N_MELS)
ad_status ad_stream_push_rows_i16(ad_stream *st, const int16_t *samples, size_t n_samples,
                                  double *rows, size_t rows_capacity, size_t *n_consumed,
                                  size_t *n_rows);
ad_status ad_stream_push_rows_f32(ad_stream *st, const float *samples, size_t n_samples,
                                  double *rows, size_t rows_capacity, size_t *n_consumed,
                                  size_t *n_rows);

/* Text of a status code (static storage). */
const char *ad_status_message(ad_status status);

#ifdef __cplusplus
}
#endif
#endif /* EDGE_AD_H */
