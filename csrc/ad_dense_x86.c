/* ad_dense_x86.c: the x86-64 layer kernels, compiled for their instruction sets by
 * function attributes and chosen at run time (ad_dense_kernels checks the CPU), so one
 * build runs on any x86-64.
 *
 *   AVX2:         inputs widened to int16; per pair of inputs one vpmaddwd of the
 *                 broadcast pair against 8 outputs' weights (16 multiply-adds), int32 sums.
 *   AVX-512 VNNI: inputs as u8 (x + 128, the bias absorbs the 128); per 4 inputs one
 *                 vpdpbusd of the broadcast quad against 16 outputs' weights (64
 *                 multiply-adds), int32 sums with no intermediate saturation.
 *   AVX-VNNI:     the same with 256-bit vpdpbusd (VEX) on the two halves of each row
 *                 of the VNNI packing, for CPUs without AVX-512.
 *   AMX:          the int8 inputs as they are and the VNNI packing as tiles: one tdpbssd
 *                 multiplies up to 16 vectors x 64 inputs by 64 inputs x 16 outputs
 *                 (16384 multiply-adds), int32 sums; requantised with VNNI's code; up to
 *                 32 vectors a pass.
 * AVX2 and the VNNI kernels keep up to 8 or 4 vectors' sums in registers, so each weight
 * load serves them all; all four requantise 8 or 16 channels at a time with the scalar
 * definition's arithmetic (ad_dense_kernels.h): the results are the scalar kernel's, bit
 * for bit. */
#include "ad_dense_kernels.h"

#ifdef AD_DENSE_HAVE_X86

#include <immintrin.h>
#include <string.h>

#define AD_AVX2 __attribute__((target("avx2")))
#define AD_VNNI __attribute__((target("avx2,avx512f,avx512bw,avx512vnni")))
#define AD_INLINE static inline __attribute__((always_inline))

/* 8 channels: MultiplyByQuantizedMultiplier (either form), + zero point, clamp; int32
 * lanes out. 64-bit products of the even and the odd lanes; double rounding takes
 * SaturatingRoundingDoublingHighMul as floor((x m + 2^30) / 2^31), bits 31..62 of each
 * product moved into its 32-bit lane. */
typedef struct {
    __m256i mult, mult_odd, right, left, t_even, t_odd, round_even, round_odd, top_bit,
        mask, half_mask, zero_point, act_min;
    int single_rounding;
} rq8;

/* channels o..o+7's constants, loaded and derived once for all vectors (the int8 stores
 * may alias the layer's arrays as far as the compiler knows) */
AD_INLINE AD_AVX2 rq8 rq8_load(const ad_dense_layer *layer, size_t o)
{
    rq8 c;
    const __m256i one = _mm256_set1_epi32(1), one64 = _mm256_set1_epi64x(1);
    c.mult = _mm256_loadu_si256((const __m256i *)(layer->multiplier + o));
    c.mult_odd = _mm256_srli_epi64(c.mult, 32);
    c.right = _mm256_loadu_si256((const __m256i *)(layer->right_shift + o));
    c.left = _mm256_loadu_si256((const __m256i *)(layer->left_shift + o));
    c.single_rounding = layer->single_rounding;
    /* single rounding: the shifts of the even and odd lanes, 2^(t-1) + 2^62, and the
     * 2^(62-t) that 2^62 leaves after the shift */
    c.t_even = _mm256_and_si256(c.right, _mm256_set1_epi64x(0xffffffff));
    c.t_odd = _mm256_srli_epi64(c.right, 32);
    const __m256i top = _mm256_set1_epi64x(INT64_C(1) << 62);
    c.round_even = _mm256_add_epi64(_mm256_sllv_epi64(one64, _mm256_sub_epi64(c.t_even, one64)), top);
    c.round_odd = _mm256_add_epi64(_mm256_sllv_epi64(one64, _mm256_sub_epi64(c.t_odd, one64)), top);
    c.top_bit = _mm256_sllv_epi32(one, _mm256_sub_epi32(_mm256_set1_epi32(62), c.right));
    /* double rounding: RoundingDivideByPOT's mask and half of it */
    c.mask = _mm256_sub_epi32(_mm256_sllv_epi32(one, c.right), one);
    c.half_mask = _mm256_srai_epi32(c.mask, 1);
    c.zero_point = _mm256_set1_epi32(layer->output_zero_point);
    c.act_min = _mm256_set1_epi32(layer->act_min);
    return c;
}

AD_INLINE AD_AVX2 __m256i requant8(__m256i acc, const rq8 *c)
{
    __m256i y;
    if (c->single_rounding) {
        /* (x m + 2^(t-1)) >> t, t = right in 1..62, in 64 bits. AVX2 has no 64-bit
         * arithmetic shift: 2^62 added first makes the sum non-negative (|x m| < 2^62),
         * so a logical shift works, and it adds exactly 2^(62-t), taken off in 32 bits
         * (a 32-bit shift by 32 or more gives 0, as needed). */
        const __m256i even = _mm256_srlv_epi64(
            _mm256_add_epi64(_mm256_mul_epi32(acc, c->mult), c->round_even), c->t_even);
        const __m256i odd = _mm256_srlv_epi64(
            _mm256_add_epi64(_mm256_mul_epi32(_mm256_srli_epi64(acc, 32), c->mult_odd),
                             c->round_odd), c->t_odd);
        y = _mm256_blend_epi32(even, _mm256_slli_epi64(odd, 32), 0xAA);
        y = _mm256_sub_epi32(y, c->top_bit);
    } else {
        const __m256i x = _mm256_sllv_epi32(acc, c->left);
        const __m256i nudge = _mm256_set1_epi64x(INT64_C(1) << 30);
        const __m256i even = _mm256_add_epi64(_mm256_mul_epi32(x, c->mult), nudge);
        const __m256i odd = _mm256_add_epi64(
            _mm256_mul_epi32(_mm256_srli_epi64(x, 32), c->mult_odd), nudge);
        const __m256i high = _mm256_blend_epi32(_mm256_srli_epi64(even, 31),
                                                _mm256_slli_epi64(odd, 1), 0xAA);
        /* RoundingDivideByPOT: arithmetic shift, + 1 where the remainder passes the
         * threshold */
        const __m256i remainder = _mm256_and_si256(high, c->mask);
        const __m256i negative = _mm256_cmpgt_epi32(_mm256_setzero_si256(), high); /* -1 */
        const __m256i threshold = _mm256_sub_epi32(c->half_mask, negative);
        y = _mm256_srav_epi32(high, c->right);
        y = _mm256_sub_epi32(y, _mm256_cmpgt_epi32(remainder, threshold));
    }
    y = _mm256_add_epi32(y, c->zero_point);
    y = _mm256_min_epi32(y, _mm256_set1_epi32(127));
    return _mm256_max_epi32(y, c->act_min);
}

/* 8 int32 lanes already in -128..127 to 8 int8 */
AD_INLINE AD_AVX2 void store8(int8_t *dst, __m256i y)
{
    const __m128i w = _mm_packs_epi32(_mm256_castsi256_si128(y), _mm256_extracti128_si256(y, 1));
    _mm_storel_epi64((__m128i *)dst, _mm_packs_epi16(w, w));
}

/* ---- AVX2 ----------------------------------------------------------------------------- */

AD_INLINE AD_AVX2 void avx2_body(const ad_dense_layer *layer, const int16_t *x, int8_t *out,
                                 const int nv, size_t stride)
{
    const size_t k_pad = (size_t)layer->k_pad, n_pad = (size_t)layer->n_pad;
    const int16_t *w = (const int16_t *)layer->weights;
    for (size_t o = 0; o < n_pad; o += 8) {
        const int16_t *wb = w + o * k_pad;
        __m256i acc[8];
        for (int b = 0; b < nv; b++)
            acc[b] = _mm256_setzero_si256();
        for (size_t k = 0; k < k_pad; k += 2) {
            const __m256i wk = _mm256_load_si256((const __m256i *)(wb + k * 8));
            for (int b = 0; b < nv; b++) {
                int32_t pair;
                memcpy(&pair, x + (size_t)b * k_pad + k, sizeof pair);
                acc[b] = _mm256_add_epi32(acc[b],
                                          _mm256_madd_epi16(_mm256_set1_epi32(pair), wk));
            }
        }
        const __m256i bias = _mm256_loadu_si256((const __m256i *)(layer->bias + o));
        const rq8 c = rq8_load(layer, o);
        for (int b = 0; b < nv; b++)
            store8(out + (size_t)b * stride + o, requant8(_mm256_add_epi32(acc[b], bias), &c));
    }
}

AD_AVX2 void ad_dense_layer_avx2(const ad_dense_layer *layer, const int8_t *in, int8_t *out,
                                 size_t n_vectors, size_t stride, void *scratch)
{
    const size_t k_pad = (size_t)layer->k_pad;
    int16_t *x = (int16_t *)scratch;
    for (size_t b = 0; b < n_vectors; b++)
        for (size_t k = 0; k < k_pad; k++)
            x[b * k_pad + k] = in[b * stride + k];
    /* groups of 8 vectors; a constant count lets the compiler keep every sum in a
     * register */
    for (size_t b = 0; b < n_vectors; b += 8) {
        const int16_t *xb = x + b * k_pad;
        int8_t *ob = out + b * stride;
        switch (n_vectors - b) {
        case 1: avx2_body(layer, xb, ob, 1, stride); break;
        case 2: avx2_body(layer, xb, ob, 2, stride); break;
        case 3: avx2_body(layer, xb, ob, 3, stride); break;
        case 4: avx2_body(layer, xb, ob, 4, stride); break;
        case 5: avx2_body(layer, xb, ob, 5, stride); break;
        case 6: avx2_body(layer, xb, ob, 6, stride); break;
        case 7: avx2_body(layer, xb, ob, 7, stride); break;
        default: avx2_body(layer, xb, ob, 8, stride); break;
        }
    }
}

/* ---- the u8-input kernels (AVX-512 VNNI, AVX-VNNI, AMX) -------------------------------- */

/* The rows' int8 inputs as u8 (x + 128; the bias absorbs the 128), k_pad a row, into the
 * scratch. */
AD_INLINE AD_AVX2 const uint8_t *to_u8(const int8_t *in, size_t n_vectors, size_t stride,
                                       size_t k_pad, void *scratch)
{
    uint8_t *x = (uint8_t *)scratch;
    for (size_t b = 0; b < n_vectors; b++)
        for (size_t k = 0; k < k_pad; k++)
            x[b * k_pad + k] = (uint8_t)((uint8_t)in[b * stride + k] ^ 0x80u);
    return x;
}

/* fn(layer, x rows, out rows, stride, nv) on groups of 4 vectors; a constant nv lets the
 * compiler keep every sum in a register */
#define AD_GROUPS_OF_4(fn, layer, x, k_pad, out, stride, n_vectors)                        \
    for (size_t b_ = 0; b_ < (n_vectors); b_ += 4) {                                        \
        const uint8_t *xb_ = (x) + b_ * (k_pad);                                            \
        int8_t *ob_ = (out) + b_ * (stride);                                                \
        switch ((n_vectors) - b_) {                                                         \
        case 1: fn(layer, xb_, ob_, stride, 1); break;                                      \
        case 2: fn(layer, xb_, ob_, stride, 2); break;                                      \
        case 3: fn(layer, xb_, ob_, stride, 3); break;                                      \
        default: fn(layer, xb_, ob_, stride, 4); break;                                     \
        }                                                                                   \
    }

/* ---- AVX-512 VNNI --------------------------------------------------------------------- */

/* 16 channels of single rounding, stored as int8: (x m + 2^(t-1)) >> t from the 64-bit
 * products of the even and the odd lanes (t and 2^(t-1) precomputed per channel at init,
 * in the even/odd lane order of the products); with AVX-512's 64-bit arithmetic shift, or
 * where every t is 32 or more (most layers) the high halves and a 32-bit shift by t - 32;
 * + zero point, then the saturating narrow, which is the clamp to [-128, 127]; a ReLU
 * whose floor lies above -128 adds a max. (As in the scalar kernel, the zero point is
 * added in int32: init's range check keeps the requantised value at least 255 below
 * INT32_MAX in magnitude for every network it accepts.)
 * A block's constants are loaded once into registers (rq16_load) for all its vectors: the
 * int8 stores may alias the layer's arrays as far as the compiler knows, so it would
 * otherwise load them again for every vector. */
typedef struct {
    __m512i mult, mult_odd, r_even, r_odd, t_even, t_odd, shift32, zero_point, act_min;
    int high_shift, relu;
} rq16;

AD_INLINE AD_VNNI rq16 rq16_load(const ad_dense_layer *layer, size_t o)
{
    rq16 c;
    c.mult = _mm512_loadu_si512((const void *)(layer->multiplier + o));
    c.mult_odd = _mm512_loadu_si512((const void *)(layer->multiplier_odd + o));
    c.r_even = _mm512_loadu_si512((const void *)(layer->round64 + o));
    c.r_odd = _mm512_loadu_si512((const void *)(layer->round64 + o + 8));
    c.t_even = _mm512_loadu_si512((const void *)(layer->shift64 + o));
    c.t_odd = _mm512_loadu_si512((const void *)(layer->shift64 + o + 8));
    c.shift32 = _mm512_loadu_si512((const void *)(layer->shift32 + o));
    c.zero_point = _mm512_set1_epi32(layer->output_zero_point);
    c.act_min = _mm512_set1_epi32(layer->act_min);
    c.high_shift = layer->high_shift;
    c.relu = layer->act_min > -128;
    return c;
}

AD_INLINE AD_VNNI void requant16_single(int8_t *dst, __m512i acc, const rq16 *c)
{
    __m512i even = _mm512_add_epi64(_mm512_mul_epi32(acc, c->mult), c->r_even);
    __m512i odd = _mm512_add_epi64(_mm512_mul_epi32(_mm512_srli_epi64(acc, 32), c->mult_odd),
                                   c->r_odd);
    __m512i y;
    if (c->high_shift) {
        /* floor(v / 2^t) = floor(floor(v / 2^32) / 2^(t - 32)): the high halves of the
         * 64-bit sums (in place for the odd lanes), then a 32-bit arithmetic shift */
        y = _mm512_mask_blend_epi32(0xAAAA, _mm512_srli_epi64(even, 32), odd);
        y = _mm512_srav_epi32(y, c->shift32);
    } else {
        even = _mm512_srav_epi64(even, c->t_even);
        odd = _mm512_srav_epi64(odd, c->t_odd);
        y = _mm512_mask_blend_epi32(0xAAAA, even, _mm512_slli_epi64(odd, 32));
    }
    y = _mm512_add_epi32(y, c->zero_point);
    if (c->relu)
        y = _mm512_max_epi32(y, c->act_min);
    _mm_storeu_si128((__m128i *)dst, _mm512_cvtsepi32_epi8(y));
}

/* Channels o..o+15 of nv vectors from their int32 sums (bias included; vector b's 16 at
 * sums + b sums_stride) to int8 rows of out; the block's constants are loaded once, in
 * the network's rounding form only. */
AD_INLINE AD_VNNI void requant_block16(const ad_dense_layer *layer, size_t o,
                                       const int32_t *sums, size_t sums_stride, int nv,
                                       int8_t *out, size_t stride)
{
    if (layer->single_rounding) {
        const rq16 c = rq16_load(layer, o);
        for (int b = 0; b < nv; b++)
            requant16_single(out + (size_t)b * stride + o,
                             _mm512_loadu_si512((const void *)(sums + (size_t)b * sums_stride)),
                             &c);
    } else {
        const rq8 lo = rq8_load(layer, o), hi = rq8_load(layer, o + 8);
        for (int b = 0; b < nv; b++) {
            const __m512i sum = _mm512_loadu_si512((const void *)(sums + (size_t)b * sums_stride));
            int8_t *dst = out + (size_t)b * stride + o;
            store8(dst, requant8(_mm512_castsi512_si256(sum), &lo));
            store8(dst + 8, requant8(_mm512_extracti64x4_epi64(sum, 1), &hi));
        }
    }
}

/* The folded form (layer->fold_zp: single rounding, every t >= 33), 16 channels from their
 * int32 sums at s: the even and the odd lanes' 64-bit products x m straight from memory (the
 * odd lanes' load starts one sum later, so its 64-bit lanes hold the odd sums low; the
 * load reads one int32 past the 16, which the callers' buffers have and vpmuldq ignores),
 * their high halves gathered by one shuffle, + round_zp32, >> (t - 32): the requantised
 * value plus the zero point, as int32 lanes.
 *   floor((x m + 2^(t-1)) / 2^t) + zp = floor((floor(x m / 2^32) + 2^(t-33) + zp 2^(t-32))
 *   / 2^(t-32)), since 2^(t-1) and zp 2^t are whole multiples of 2^32. */
typedef struct {
    __m512i mult, mult_odd, round_zp, shift;
} rqf16;

AD_INLINE AD_VNNI rqf16 rqf16_load(const ad_dense_layer *layer, size_t o)
{
    rqf16 c;
    c.mult = _mm512_loadu_si512((const void *)(layer->multiplier + o));
    c.mult_odd = _mm512_loadu_si512((const void *)(layer->multiplier_odd + o));
    c.round_zp = _mm512_loadu_si512((const void *)(layer->round_zp32 + o));
    c.shift = _mm512_loadu_si512((const void *)(layer->shift32 + o));
    return c;
}

AD_INLINE AD_VNNI __m512i requant16_folded(const int32_t *s, const rqf16 *c)
{
    const __m512i even = _mm512_mul_epi32(_mm512_loadu_si512((const void *)s), c->mult);
    const __m512i odd = _mm512_mul_epi32(_mm512_loadu_si512((const void *)(s + 1)), c->mult_odd);
    const __m512i high = _mm512_mask_shuffle_epi32(odd, 0x5555, even, _MM_PERM_CDAB);
    return _mm512_srav_epi32(_mm512_add_epi32(high, c->round_zp), c->shift);
}

/* Channels o..o + 16 nb - 1 (nb 1, 2 or 4) of nv vectors from their int32 sums (vector b's
 * at sums + b sums_stride; the buffer has one int32 more after the last row) to int8 rows
 * of out. The folded form packs 2 or 4 blocks of a row at once with saturating packs (the
 * clamp to -128..127; the packs interleave 128-bit lanes, one permute puts them back) and
 * applies a ReLU floor once per row on the bytes; any other layer goes block by block. */
AD_INLINE AD_VNNI void requant_rows(const ad_dense_layer *layer, size_t o, const int32_t *sums,
                                    size_t sums_stride, int nv, const int nb, int8_t *out,
                                    size_t stride)
{
    if (!layer->fold_zp) {
        for (int j = 0; j < nb; j++)
            requant_block16(layer, o + 16 * (size_t)j, sums + 16 * j, sums_stride, nv, out,
                            stride);
        return;
    }
    rqf16 c[4];
    for (int j = 0; j < nb; j++)
        c[j] = rqf16_load(layer, o + 16 * (size_t)j);
    const int relu = layer->act_min > -128;
    const __m512i floor8 = _mm512_set1_epi8((char)layer->act_min);
    const __m512i floor32 = _mm512_set1_epi32(layer->act_min);
    /* dword 4L + q of the packed bytes holds block q's 128-bit lane L: to 4q + L */
    const __m512i order4 = _mm512_setr_epi32(0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15);
    for (int b = 0; b < nv; b++) {
        const int32_t *s = sums + (size_t)b * sums_stride;
        int8_t *dst = out + (size_t)b * stride + o;
        if (nb == 1) {
            __m512i y = requant16_folded(s, &c[0]);
            if (relu)
                y = _mm512_max_epi32(y, floor32);
            _mm_storeu_si128((__m128i *)dst, _mm512_cvtsepi32_epi8(y));
            continue;
        }
        const __m512i w01 = _mm512_packs_epi32(requant16_folded(s, &c[0]),
                                               requant16_folded(s + 16, &c[1]));
        const __m512i w23 = nb == 4 ? _mm512_packs_epi32(requant16_folded(s + 32, &c[2]),
                                                         requant16_folded(s + 48, &c[3]))
                                    : w01;
        __m512i bytes = _mm512_permutexvar_epi32(order4, _mm512_packs_epi16(w01, w23));
        if (relu)
            bytes = _mm512_max_epi8(bytes, floor8);
        if (nb == 4)
            _mm512_storeu_si512((void *)dst, bytes);
        else
            _mm256_storeu_si256((__m256i *)dst, _mm512_castsi512_si256(bytes));
    }
}

/* acc + u8 x s8 dot products of 4: vpdpbusd written in place. GCC 12 compiles the
 * intrinsic with a register copy in and out of a scratch register around each one (the
 * loop then spends more on moves than on products); the asm ties the accumulator. */
AD_INLINE AD_VNNI __m512i dpbusd(__m512i acc, __m512i u8, __m512i s8)
{
    __asm__("vpdpbusd %[s8], %[u8], %[acc]" : [acc] "+v"(acc) : [u8] "v"(u8), [s8] "v"(s8));
    return acc;
}

/* A tile of nb blocks of 16 output channels for nv vectors: each weight load serves nv
 * vectors and each input broadcast nb blocks (nb x nv independent sums in registers, at
 * least 4 for a full tile, so vpdpbusd's latency is hidden). */
AD_INLINE AD_VNNI void vnni_tile(const ad_dense_layer *layer, const uint8_t *x, int8_t *out,
                                 size_t stride, size_t o, const int nv, const int nb)
{
    const size_t k_pad = (size_t)layer->k_pad;
    const int8_t *w = (const int8_t *)layer->weights + o * k_pad;
    /* one or two vectors: each sum split over 2 accumulators (even and odd quads), so a
     * single vector still keeps 8 chains in flight */
    const int ks = nv <= 2 ? 2 : 1;
    __m512i acc[2][4][4];
    for (int h = 0; h < ks; h++)
        for (int j = 0; j < nb; j++)
            for (int b = 0; b < nv; b++)
                acc[h][j][b] = _mm512_setzero_si512();
    /* the padding inputs beyond n_in have zero weights: stop at the first whole step past
     * n_in (a multiple of 4 ks, which divides k_pad) */
    const size_t step = 4 * (size_t)ks, k_end = ((size_t)layer->n_in + step - 1) / step * step;
    for (size_t k = 0; k < k_end; k += step) {
        for (int h = 0; h < ks; h++) {
            const size_t kh = k + 4 * (size_t)h;
            __m512i wk[4];
            for (int j = 0; j < nb; j++)
                wk[j] = _mm512_load_si512((const void *)(w + (size_t)j * k_pad * 16 + kh * 16));
            for (int b = 0; b < nv; b++) {
                int32_t quad;
                memcpy(&quad, x + (size_t)b * k_pad + kh, sizeof quad);
                const __m512i xb = _mm512_set1_epi32(quad);
                for (int j = 0; j < nb; j++)
                    acc[h][j][b] = dpbusd(acc[h][j][b], xb, wk[j]);
            }
        }
    }
    int32_t sums[4 * 64 + 16] __attribute__((aligned(64)));  /* + 16: requant_rows */
    for (int j = 0; j < nb; j++) {
        const __m512i bias = _mm512_loadu_si512((const void *)(layer->bias + o + 16 * (size_t)j));
        for (int b = 0; b < nv; b++) {
            __m512i sum = _mm512_add_epi32(acc[0][j][b], bias);
            if (ks == 2)
                sum = _mm512_add_epi32(sum, acc[1][j][b]);
            _mm512_store_si512((void *)(sums + b * 64 + 16 * j), sum);
        }
    }
    requant_rows(layer, o, sums, 64, nv, nb, out, stride);
}

/* Up to 4 vectors: tiles of 4 blocks (64 channels), then single blocks. */
AD_INLINE AD_VNNI void vnni_vectors(const ad_dense_layer *layer, const uint8_t *x, int8_t *out,
                                    size_t stride, const int nv)
{
    const size_t n_pad = (size_t)layer->n_pad;
    size_t o = 0;
    for (; o + 64 <= n_pad; o += 64)
        vnni_tile(layer, x, out, stride, o, nv, 4);
    for (; o < n_pad; o += 16)
        vnni_tile(layer, x, out, stride, o, nv, 1);
}

AD_VNNI void ad_dense_layer_vnni(const ad_dense_layer *layer, const int8_t *in, int8_t *out,
                                 size_t n_vectors, size_t stride, void *scratch)
{
    const size_t k_pad = (size_t)layer->k_pad;
    const uint8_t *x = to_u8(in, n_vectors, stride, k_pad, scratch);
    AD_GROUPS_OF_4(vnni_vectors, layer, x, k_pad, out, stride, n_vectors);
}

/* ---- AVX-VNNI (256-bit, VEX) ------------------------------------------------------------
 *
 * For CPUs with the dot-product instruction but without AVX-512 (Intel Alder Lake to Arrow
 * Lake cores): the VNNI packing read as two 32-byte halves, channels 0..7 and 8..15 of a
 * block; one vpdpbusd ymm per half and vector, per quad of u8 inputs (32 multiply-adds).
 * 16 ymm registers: one block for up to 4 vectors (8 sums), each sum split over even and
 * odd quads for 1 or 2 vectors (so a single vector still keeps 4 chains in flight). The
 * halves are requantised by the AVX2 code (rq8): the scalar kernel's bits. */
#define AD_AVXVNNI __attribute__((target("avx2,avxvnni")))

/* acc + u8 x s8 dot products of 4, the VEX encoding (the EVEX one needs AVX-512) */
AD_INLINE AD_AVXVNNI __m256i dpbusd256(__m256i acc, __m256i u8, __m256i s8)
{
    return _mm256_dpbusd_avx_epi32(acc, u8, s8);
}

AD_INLINE AD_AVXVNNI void avxvnni_block(const ad_dense_layer *layer, const uint8_t *x,
                                        int8_t *out, size_t stride, size_t o, const int nv)
{
    const size_t k_pad = (size_t)layer->k_pad;
    const int8_t *w = (const int8_t *)layer->weights + o * k_pad;
    const int ks = nv <= 2 ? 2 : 1;
    __m256i acc[2][4][2];
    for (int h = 0; h < ks; h++)
        for (int b = 0; b < nv; b++)
            acc[h][b][0] = acc[h][b][1] = _mm256_setzero_si256();
    const size_t step = 4 * (size_t)ks, k_end = ((size_t)layer->n_in + step - 1) / step * step;
    for (size_t k = 0; k < k_end; k += step) {
        for (int h = 0; h < ks; h++) {
            const size_t kh = k + 4 * (size_t)h;
            const __m256i w_lo = _mm256_load_si256((const __m256i *)(w + kh * 16));
            const __m256i w_hi = _mm256_load_si256((const __m256i *)(w + kh * 16 + 32));
            for (int b = 0; b < nv; b++) {
                int32_t quad;
                memcpy(&quad, x + (size_t)b * k_pad + kh, sizeof quad);
                const __m256i xb = _mm256_set1_epi32(quad);
                acc[h][b][0] = dpbusd256(acc[h][b][0], xb, w_lo);
                acc[h][b][1] = dpbusd256(acc[h][b][1], xb, w_hi);
            }
        }
    }
    const __m256i bias_lo = _mm256_loadu_si256((const __m256i *)(layer->bias + o));
    const __m256i bias_hi = _mm256_loadu_si256((const __m256i *)(layer->bias + o + 8));
    const rq8 lo = rq8_load(layer, o), hi = rq8_load(layer, o + 8);
    for (int b = 0; b < nv; b++) {
        __m256i s_lo = _mm256_add_epi32(acc[0][b][0], bias_lo);
        __m256i s_hi = _mm256_add_epi32(acc[0][b][1], bias_hi);
        if (ks == 2) {
            s_lo = _mm256_add_epi32(s_lo, acc[1][b][0]);
            s_hi = _mm256_add_epi32(s_hi, acc[1][b][1]);
        }
        int8_t *dst = out + (size_t)b * stride + o;
        store8(dst, requant8(s_lo, &lo));
        store8(dst + 8, requant8(s_hi, &hi));
    }
}

AD_INLINE AD_AVXVNNI void avxvnni_vectors(const ad_dense_layer *layer, const uint8_t *x,
                                          int8_t *out, size_t stride, const int nv)
{
    for (size_t o = 0; o < (size_t)layer->n_pad; o += 16)
        avxvnni_block(layer, x, out, stride, o, nv);
}

AD_AVXVNNI void ad_dense_layer_avxvnni(const ad_dense_layer *layer, const int8_t *in,
                                       int8_t *out, size_t n_vectors, size_t stride,
                                       void *scratch)
{
    const size_t k_pad = (size_t)layer->k_pad;
    const uint8_t *x = to_u8(in, n_vectors, stride, k_pad, scratch);
    AD_GROUPS_OF_4(avxvnni_vectors, layer, x, k_pad, out, stride, n_vectors);
}

/* ---- AMX (Intel Advanced Matrix Extensions, int8) -------------------------------------
 *
 * The VNNI packing is already AMX's B-tile layout: for a block of 16 output channels, each
 * 64-byte row holds one quad of inputs for the 16 channels, so 16 consecutive rows are a
 * B tile of K = 64 inputs (stride 64 bytes). An A tile is up to 16 vectors' int8 inputs
 * straight from the activation rows (stride: the row stride); tdpbssd adds the s8 x s8 dot
 * products into a C tile of vectors x 16 int32 (int32 sums, no saturation), which starts
 * at bias_s8 (the bias with the input zero point folded in for int8 inputs, where the
 * VNNI kernel's bias folds it for u8 inputs). The sums are the exact integer sums either
 * way, so after the same requantisation the outputs are the VNNI kernel's. (The u8 form
 * cost a conversion pass per layer: s8 inputs made the decision's network 13 % faster.)
 *
 * Tiles: tmm0..3 sum 4 blocks (64 channels), tmm4 holds the inputs, tmm5 and tmm6 take
 * turns holding weights (a third weight tile, or two input tiles in turn, measured no
 * faster on a Sapphire Rapids-class Xeon). The K step is the largest of 64, 32 or 16
 * that divides k_pad. A tile has at most 16 rows: above 16 vectors (up to AD_DENSE_BATCH =
 * 32) the rows split over two input tiles, tmm4 and tmm5, and each weight tile (tmm6,
 * tmm7) serves both: tmm0/tmm1 sum 2 blocks for the first 16 vectors, tmm2/tmm3 for the
 * rest (amx_blocks_32). One pass over the weights then serves a whole 1 s decision (31
 * vectors): the per-pass cost (tile configuration, every weight tile loaded, the pipeline
 * filled and drained per block) is about half a 16-vector batch's time.
 * Each call loads its tile configuration and releases the tiles at the end, so no tile
 * state outlives the call (another library in the process may use AMX too). Linux hands
 * out AMX per process: ad_dense_kernels asks for it (arch_prctl) before offering it.
 * Tile numbers are instruction operands, so the loads and products are written with
 * them as constants (AD_TILE_*), each with a memory clobber: the compiler knows nothing of
 * what tile loads read and stores write. */
#define AD_AMX __attribute__((target("avx2,avx512f,avx512bw,avx512vnni,amx-tile,amx-int8")))
#define AD_TILE_LOAD(t, base, stride)                                                      \
    __asm__ volatile("tileloadd (%0,%1,1), %%tmm" #t ::"r"(base), "r"((long)(stride))   \
                     : "memory")
#define AD_TILE_STORE(t, base, stride)                                                     \
    __asm__ volatile("tilestored %%tmm" #t ", (%0,%1,1)" ::"r"(base), "r"((long)(stride)) \
                     : "memory")
#define AD_TILE_DP(c, a, b) __asm__ volatile("tdpbssd %%tmm" #b ", %%tmm" #a ", %%tmm" #c ::: "memory")

typedef char ad_batch_fits_two_tiles[AD_DENSE_BATCH <= 32 ? 1 : -1];

typedef struct {
    uint8_t palette, start_row, reserved[14];
    uint16_t colsb[16];
    uint8_t rows[16];
} ad_tilecfg;

/* the weights of block j (of 4) at K step kc into tmm5 (even j) or tmm6 (odd j), then
 * the products with the inputs in tmm<a> into tmm<j> */
#define AD_AMX_BLOCK(j, a, b_tile)                                                          \
    do {                                                                                    \
        AD_TILE_LOAD(b_tile, w + (size_t)(j) * k_pad * 16 + kc * 16, 64);                   \
        AD_TILE_DP(j, a, b_tile);                                                           \
    } while (0)
/* one K step of all nb blocks */
#define AD_AMX_STEP(a)                                                                      \
    do {                                                                                    \
        AD_AMX_BLOCK(0, a, 5);                                                              \
        if (nb == 4) {                                                                      \
            AD_AMX_BLOCK(1, a, 6);                                                          \
            AD_AMX_BLOCK(2, a, 5);                                                          \
            AD_AMX_BLOCK(3, a, 6);                                                          \
        }                                                                                   \
    } while (0)

/* nb (1 or 4) blocks of 16 channels from channel o for the nv vectors in tmm4's rows */
AD_INLINE AD_AMX void amx_blocks(const ad_dense_layer *layer, const int8_t *x, int8_t *out,
                                 size_t stride, size_t o, int nv, int nb, size_t kstep)
{
    const size_t k_pad = (size_t)layer->k_pad;
    const int8_t *w = (const int8_t *)layer->weights + o * k_pad;
    int32_t sums[AD_DENSE_BATCH + 1][64] __attribute__((aligned(64)));  /* + 1: requant_rows */
    /* the sums start at the bias: its 16 values in every row (a tile load of stride 0) */
    AD_TILE_LOAD(0, layer->bias_s8 + o, 0);
    if (nb == 4) {
        AD_TILE_LOAD(1, layer->bias_s8 + o + 16, 0);
        AD_TILE_LOAD(2, layer->bias_s8 + o + 32, 0);
        AD_TILE_LOAD(3, layer->bias_s8 + o + 48, 0);
    }
    for (size_t kc = 0; kc < k_pad; kc += kstep) {
        AD_TILE_LOAD(4, x + kc, stride);
        AD_AMX_STEP(4);
    }
    AD_TILE_STORE(0, &sums[0][0], sizeof sums[0]);
    if (nb == 4) {
        AD_TILE_STORE(1, &sums[0][16], sizeof sums[0]);
        AD_TILE_STORE(2, &sums[0][32], sizeof sums[0]);
        AD_TILE_STORE(3, &sums[0][48], sizeof sums[0]);
    }
    requant_rows(layer, o, &sums[0][0], 64, nv, nb, out, stride);
}

/* nb (1 or 2) blocks of 16 channels from channel o for 17..32 vectors: rows 0..15 in tmm4,
 * the rest in tmm5 */
AD_INLINE AD_AMX void amx_blocks_32(const ad_dense_layer *layer, const int8_t *x,
                                    int8_t *out, size_t stride, size_t o, int nv, int nb,
                                    size_t kstep)
{
    const size_t k_pad = (size_t)layer->k_pad;
    const int8_t *w = (const int8_t *)layer->weights + o * k_pad;
    int32_t sums[32 + 1][32] __attribute__((aligned(64)));  /* + 1: requant_rows */
    AD_TILE_LOAD(0, layer->bias_s8 + o, 0);
    AD_TILE_LOAD(2, layer->bias_s8 + o, 0);
    if (nb == 2) {
        AD_TILE_LOAD(1, layer->bias_s8 + o + 16, 0);
        AD_TILE_LOAD(3, layer->bias_s8 + o + 16, 0);
    }
    for (size_t kc = 0; kc < k_pad; kc += kstep) {
        AD_TILE_LOAD(4, x + kc, stride);
        AD_TILE_LOAD(5, x + 16 * stride + kc, stride);
        AD_TILE_LOAD(6, w + kc * 16, 64);
        AD_TILE_DP(0, 4, 6);
        AD_TILE_DP(2, 5, 6);
        if (nb == 2) {
            AD_TILE_LOAD(7, w + k_pad * 16 + kc * 16, 64);
            AD_TILE_DP(1, 4, 7);
            AD_TILE_DP(3, 5, 7);
        }
    }
    AD_TILE_STORE(0, &sums[0][0], sizeof sums[0]);
    AD_TILE_STORE(2, &sums[16][0], sizeof sums[0]);
    if (nb == 2) {
        AD_TILE_STORE(1, &sums[0][16], sizeof sums[0]);
        AD_TILE_STORE(3, &sums[16][16], sizeof sums[0]);
    }
    requant_rows(layer, o, &sums[0][0], 32, nv, nb, out, stride);
}

AD_AMX void ad_dense_layer_amx(const ad_dense_layer *layer, const int8_t *in, int8_t *out,
                               size_t n_vectors, size_t stride, void *scratch)
{
    const size_t k_pad = (size_t)layer->k_pad, n_pad = (size_t)layer->n_pad;
    if (n_vectors < AD_AMX_MIN_VECTORS) {  /* a tile pass costs more than it saves */
        ad_dense_layer_vnni(layer, in, out, n_vectors, stride, scratch);
        return;
    }
    const int8_t *x = in;   /* s8 x s8 products straight from the rows (bias_s8) */
    const size_t kstep = k_pad % 64 == 0 ? 64 : k_pad % 32 == 0 ? 32 : 16;
    ad_tilecfg cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.palette = 1;
    if (n_vectors > 16) {
        const uint8_t rest = (uint8_t)(n_vectors - 16);
        const uint8_t rows[8] = {16, 16, rest, rest, 16, rest, (uint8_t)(kstep / 4),
                                 (uint8_t)(kstep / 4)};
        for (int t = 0; t < 8; t++) {
            cfg.rows[t] = rows[t];
            cfg.colsb[t] = (uint16_t)(t == 4 || t == 5 ? kstep : 64);
        }
        __asm__ volatile("ldtilecfg %0" ::"m"(cfg) : "memory");
        size_t o = 0;
        for (; o + 32 <= n_pad; o += 32)
            amx_blocks_32(layer, x, out, stride, o, (int)n_vectors, 2, kstep);
        for (; o < n_pad; o += 16)
            amx_blocks_32(layer, x, out, stride, o, (int)n_vectors, 1, kstep);
        __asm__ volatile("tilerelease" ::: "memory");
        return;
    }
    for (int t = 0; t < 4; t++) {      /* sums: vectors x 16 int32 */
        cfg.rows[t] = (uint8_t)n_vectors;
        cfg.colsb[t] = 64;
    }
    cfg.rows[4] = (uint8_t)n_vectors;  /* inputs: vectors x kstep u8 */
    cfg.colsb[4] = (uint16_t)kstep;
    for (int t = 5; t < 7; t++) {      /* weights: kstep / 4 quads x 16 channels x 4 */
        cfg.rows[t] = (uint8_t)(kstep / 4);
        cfg.colsb[t] = 64;
    }
    __asm__ volatile("ldtilecfg %0" ::"m"(cfg) : "memory");
    size_t o = 0;
    for (; o + 64 <= n_pad; o += 64)
        amx_blocks(layer, x, out, stride, o, (int)n_vectors, 4, kstep);
    for (; o < n_pad; o += 16)
        amx_blocks(layer, x, out, stride, o, (int)n_vectors, 1, kstep);
    __asm__ volatile("tilerelease" ::: "memory");
}

#endif /* AD_DENSE_HAVE_X86 */
