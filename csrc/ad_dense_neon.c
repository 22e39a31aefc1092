/* ad_dense_neon.c: the ARM layer kernel (aarch64, and armhf built with NEON).
 *
 * Per output channel and vector, 16 inputs a step: with the dot-product extension
 * (Cortex-A76 and later: __ARM_FEATURE_DOTPROD) one sdot; without it (Cortex-A53/A72/A7)
 * vmull + vmlal into int16 (two products of |x| <= 128 and |w| <= 127 fit: init refuses
 * a weight of -128) and a pairwise widening add into int32. Four channels at a time share
 * the input loads and are requantised together: vqrdmulh is exactly the scalar
 * SaturatingRoundingDoublingHighMul (floor((x m + 2^30) / 2^31)), the rounding division
 * is done as the scalar definition writes it; single rounding is vmull + vrshl in 64
 * bits. Same bits as the scalar kernel. */
#include "ad_dense_kernels.h"

#ifdef AD_DENSE_HAVE_NEON

#include <arm_neon.h>

static inline int32x4_t dot16(int32x4_t acc, int8x16_t x, int8x16_t w)
{
#ifdef __ARM_FEATURE_DOTPROD
    return vdotq_s32(acc, x, w);
#else
    int16x8_t p = vmull_s8(vget_low_s8(x), vget_low_s8(w));
    p = vmlal_s8(p, vget_high_s8(x), vget_high_s8(w));
    return vpadalq_s16(acc, p);
#endif
}

/* lanes: sum of a, sum of b, sum of c, sum of d */
static inline int32x4_t sum4(int32x4_t a, int32x4_t b, int32x4_t c, int32x4_t d)
{
    const int32x2_t ab = vpadd_s32(vpadd_s32(vget_low_s32(a), vget_high_s32(a)),
                                   vpadd_s32(vget_low_s32(b), vget_high_s32(b)));
    const int32x2_t cd = vpadd_s32(vpadd_s32(vget_low_s32(c), vget_high_s32(c)),
                                   vpadd_s32(vget_low_s32(d), vget_high_s32(d)));
    return vcombine_s32(ab, cd);
}

static inline int32x4_t requant4(int32x4_t acc, const ad_dense_layer *layer, size_t o)
{
    if (layer->single_rounding) {
        /* (x m + 2^(t-1)) >> t in 64 bits: vrshl by -t is exactly that */
        const int32x4_t m = vld1q_s32(layer->multiplier + o);
        const int32x4_t t = vnegq_s32(vld1q_s32(layer->right_shift + o));
        const int64x2_t lo = vrshlq_s64(vmull_s32(vget_low_s32(acc), vget_low_s32(m)),
                                        vmovl_s32(vget_low_s32(t)));
        const int64x2_t hi = vrshlq_s64(vmull_s32(vget_high_s32(acc), vget_high_s32(m)),
                                        vmovl_s32(vget_high_s32(t)));
        int32x4_t y = vcombine_s32(vmovn_s64(lo), vmovn_s64(hi));
        y = vaddq_s32(y, vdupq_n_s32(layer->output_zero_point));
        y = vminq_s32(y, vdupq_n_s32(127));
        return vmaxq_s32(y, vdupq_n_s32(layer->act_min));
    }
    const int32x4_t x = vshlq_s32(acc, vld1q_s32(layer->left_shift + o));
    const int32x4_t high = vqrdmulhq_s32(x, vld1q_s32(layer->multiplier + o));
    const int32x4_t right = vld1q_s32(layer->right_shift + o);
    const int32x4_t one = vdupq_n_s32(1);
    const int32x4_t mask = vsubq_s32(vshlq_s32(one, right), one);
    const int32x4_t remainder = vandq_s32(high, mask);
    const int32x4_t negative = vreinterpretq_s32_u32(vcltq_s32(high, vdupq_n_s32(0)));
    const int32x4_t threshold = vsubq_s32(vshrq_n_s32(mask, 1), negative);
    int32x4_t y = vshlq_s32(high, vnegq_s32(right));   /* arithmetic shift right */
    y = vsubq_s32(y, vreinterpretq_s32_u32(vcgtq_s32(remainder, threshold)));
    y = vaddq_s32(y, vdupq_n_s32(layer->output_zero_point));
    y = vminq_s32(y, vdupq_n_s32(127));
    return vmaxq_s32(y, vdupq_n_s32(layer->act_min));
}

void ad_dense_layer_neon(const ad_dense_layer *layer, const int8_t *in, int8_t *out,
                         size_t n_vectors, size_t stride, void *scratch)
{
    (void)scratch;
    const size_t k_pad = (size_t)layer->k_pad, n_pad = (size_t)layer->n_pad;
    const int8_t *w = (const int8_t *)layer->weights;
    for (size_t b = 0; b < n_vectors; b++) {
        const int8_t *x = in + b * stride;
        for (size_t o = 0; o < n_pad; o += 4) {
            const int8_t *w0 = w + o * k_pad, *w1 = w0 + k_pad, *w2 = w1 + k_pad,
                         *w3 = w2 + k_pad;
            int32x4_t a0 = vdupq_n_s32(0), a1 = a0, a2 = a0, a3 = a0;
            for (size_t k = 0; k < k_pad; k += 16) {
                const int8x16_t xk = vld1q_s8(x + k);
                a0 = dot16(a0, xk, vld1q_s8(w0 + k));
                a1 = dot16(a1, xk, vld1q_s8(w1 + k));
                a2 = dot16(a2, xk, vld1q_s8(w2 + k));
                a3 = dot16(a3, xk, vld1q_s8(w3 + k));
            }
            const int32x4_t acc = vaddq_s32(sum4(a0, a1, a2, a3), vld1q_s32(layer->bias + o));
            int16_t y[4];
            vst1_s16(y, vmovn_s32(requant4(acc, layer, o)));   /* in -128..127 already */
            int8_t *dst = out + b * stride + o;
            for (int j = 0; j < 4; j++)
                dst[j] = (int8_t)y[j];
        }
    }
}

#endif /* AD_DENSE_HAVE_NEON */
