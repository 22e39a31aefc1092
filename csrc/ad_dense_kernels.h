/* ad_dense_kernels.h (internal): the layer kernels of the int8 dense network and the
 * scalar requantisation every one of them reproduces.
 *
 * A kernel computes one layer for n_vectors (<= AD_DENSE_BATCH) rows of int8 inputs:
 *   in, out: rows of `stride` int8 (stride >= the layer's k_pad and n_pad);
 *   writes n_pad outputs per row (the padding channels get the clamped zero point; the next
 *   layer's padded weights are 0, so they never matter);
 *   scratch: AD_DENSE_BATCH * k_pad * 2 bytes for the inputs in the kernel's own form.
 * The packed weight layout of each kernel is described at its packing in ad_dense.c. */
#ifndef AD_DENSE_KERNELS_H
#define AD_DENSE_KERNELS_H

#include "edge_ad.h"

typedef void (*ad_dense_layer_fn)(const ad_dense_layer *layer, const int8_t *in, int8_t *out,
                                  size_t n_vectors, size_t stride, void *scratch);

void ad_dense_layer_scalar(const ad_dense_layer *layer, const int8_t *in, int8_t *out,
                           size_t n_vectors, size_t stride, void *scratch);

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__)) && !defined(AD_NO_SIMD)
#define AD_DENSE_HAVE_X86 1
void ad_dense_layer_avx2(const ad_dense_layer *layer, const int8_t *in, int8_t *out,
                         size_t n_vectors, size_t stride, void *scratch);
void ad_dense_layer_vnni(const ad_dense_layer *layer, const int8_t *in, int8_t *out,
                         size_t n_vectors, size_t stride, void *scratch);
void ad_dense_layer_amx(const ad_dense_layer *layer, const int8_t *in, int8_t *out,
                        size_t n_vectors, size_t stride, void *scratch);
void ad_dense_layer_avxvnni(const ad_dense_layer *layer, const int8_t *in, int8_t *out,
                            size_t n_vectors, size_t stride, void *scratch);
/* fewer vectors than this: the AMX kernel hands the call to the VNNI one */
#define AD_AMX_MIN_VECTORS 2
#endif

#if defined(__ARM_NEON) && !defined(AD_NO_SIMD)
#define AD_DENSE_HAVE_NEON 1
void ad_dense_layer_neon(const ad_dense_layer *layer, const int8_t *in, int8_t *out,
                         size_t n_vectors, size_t stride, void *scratch);
#endif

/* gemmlowp's SaturatingRoundingDoublingHighMul as TFLite's reference writes it: the high
 * 32 bits of 2ab, rounded with a nudge of 2^30 (1 - 2^30 below zero) and a division that
 * truncates toward zero. That is floor((ab + 2^30) / 2^31) in both cases, which is what
 * the SIMD kernels compute (NEON's vqrdmulh is exactly that). Saturates only for
 * a == b == INT32_MIN. */
static inline int32_t ad_srdhm(int32_t a, int32_t b)
{
    if (a == b && a == INT32_MIN)
        return INT32_MAX;
    const int64_t ab = (int64_t)a * (int64_t)b;
    const int64_t nudge = ab >= 0 ? ((int64_t)1 << 30) : (1 - ((int64_t)1 << 30));
    return (int32_t)((ab + nudge) / ((int64_t)1 << 31));
}

/* gemmlowp's RoundingDivideByPOT: x / 2^exponent rounded half away from zero,
 * exponent 0..31. */
static inline int32_t ad_rdbpot(int32_t x, int32_t exponent)
{
    const int32_t mask = (int32_t)(((int64_t)1 << exponent) - 1);
    const int32_t remainder = x & mask;
    const int32_t threshold = (mask >> 1) + (x < 0 ? 1 : 0);
    /* >> of a negative int32 is arithmetic on every compiler this builds with */
    return (x >> exponent) + (remainder > threshold ? 1 : 0);
}

/* TFLITE_SINGLE_ROUNDING's MultiplyByQuantizedMultiplier: one rounding of x m / 2^total,
 * total = 31 - shift in 1..62, half up. */
static inline int32_t ad_single_round(int32_t x, int32_t multiplier, int32_t total)
{
    const int64_t r = (int64_t)x * (int64_t)multiplier + ((int64_t)1 << (total - 1));
    return (int32_t)(r >> total); /* arithmetic on every compiler this builds with */
}

/* One output channel: requantise, add the zero point, clamp. init guarantees that
 * acc * 2^left_shift and the single-rounding result fit in int32, 256 below its limits,
 * so adding the zero point cannot overflow. */
static inline int8_t ad_requant_one(const ad_dense_layer *layer, int32_t acc, size_t o)
{
    int32_t y;
    if (layer->single_rounding) {
        y = ad_single_round(acc, layer->multiplier[o], layer->right_shift[o]);
    } else {
        const int32_t x = (int32_t)((uint32_t)acc << layer->left_shift[o]);
        y = ad_rdbpot(ad_srdhm(x, layer->multiplier[o]), layer->right_shift[o]);
    }
    y += layer->output_zero_point;
    y = y < layer->act_min ? layer->act_min : y > 127 ? 127 : y;
    return (int8_t)y;
}

#endif /* AD_DENSE_KERNELS_H */
