/* ad_dense.c: the int8 dense network's setup (validation, kernel choice, weight packing),
 * its drivers (int8 and float) and the scalar kernel. The SIMD kernels are in
 * ad_dense_x86.c and ad_dense_neon.c; the float stages in ad_quant.c.
 *
 * Every kernel sums raw int8 inputs (or, for the VNNI kernels and AMX, inputs + 128 as
 * u8) and finds the zero-point terms folded into the bias at init:
 *   sum_k (x_k - zp) w_k + bias = sum_k x_k w_k + (bias - zp sum_k w_k)
 * exact in int32 because init bounds every partial sum (AD_ERR_DENSE_RANGE otherwise). */
#if defined(__linux__) && !defined(_DEFAULT_SOURCE)
#define _DEFAULT_SOURCE /* syscall() under -std=c99: the AMX grant (amx_usable) */
#endif
#include "ad_dense_kernels.h"

#include <math.h>
#include <string.h>

#ifdef AD_DENSE_HAVE_X86
#include <cpuid.h>
#endif
#if defined(AD_DENSE_HAVE_X86) && defined(__linux__)
#include <sys/syscall.h>
#include <unistd.h>
#endif

#define AD_DENSE_MAGIC 0x61644e4eu /* "adNN" */
#define AD_PAD 16                   /* widths are padded to multiples of it */
#define AD_ALIGN 64

static const ad_dense_layer_fn KERNELS[AD_DENSE_N_KERNELS] = {
    [AD_DENSE_SCALAR] = ad_dense_layer_scalar,
#ifdef AD_DENSE_HAVE_X86
    [AD_DENSE_AVX2] = ad_dense_layer_avx2,
    [AD_DENSE_AVX512_VNNI] = ad_dense_layer_vnni,
    [AD_DENSE_AMX] = ad_dense_layer_amx,
    [AD_DENSE_AVX_VNNI] = ad_dense_layer_avxvnni,
#endif
#ifdef AD_DENSE_HAVE_NEON
    [AD_DENSE_NEON] = ad_dense_layer_neon,
#endif
};

#if defined(AD_DENSE_HAVE_X86) && defined(__linux__)
/* AMX int8 is usable when the CPU has it (CPUID.7.0:EDX bits 24, 25), the OS saves its
 * state (XCR0 bits 17, 18) and Linux grants this process the tile data (arch_prctl
 * ARCH_REQ_XCOMP_PERM, Linux 5.16+; without the grant the first tile instruction faults).
 * Asking again is harmless. */
static int amx_usable(void)
{
    unsigned a, b, c, d;
    if (!__get_cpuid_count(7, 0, &a, &b, &c, &d) || !(d & (1u << 24)) || !(d & (1u << 25)))
        return 0;
    if (!__get_cpuid(1, &a, &b, &c, &d) || !(c & (1u << 27)))  /* OSXSAVE: xgetbv works */
        return 0;
    unsigned lo, hi;
    __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    if ((lo & (3u << 17)) != (3u << 17))
        return 0;
    return syscall(SYS_arch_prctl, 0x1023 /* ARCH_REQ_XCOMP_PERM */, 18 /* XTILEDATA */) == 0;
}
#endif

uint32_t ad_dense_kernels(void)
{
    uint32_t mask = 1u << AD_DENSE_SCALAR;
#ifdef AD_DENSE_HAVE_X86
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx2")) {
        mask |= 1u << AD_DENSE_AVX2;
        if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
            __builtin_cpu_supports("avx512vnni"))
            mask |= 1u << AD_DENSE_AVX512_VNNI;
        /* AVX-VNNI: CPUID.(7, 1):EAX bit 4 (GCC 12's __builtin_cpu_supports does not know
         * it); the ymm state is the AVX2 check's */
        unsigned a, b, c, d;
        if (__get_cpuid_count(7, 0, &a, &b, &c, &d) && a >= 1 &&
            __get_cpuid_count(7, 1, &a, &b, &c, &d) && (a & (1u << 4)))
            mask |= 1u << AD_DENSE_AVX_VNNI;
    }
#ifdef __linux__
    if ((mask & (1u << AD_DENSE_AVX512_VNNI)) && amx_usable())
        mask |= 1u << AD_DENSE_AMX;
#endif
#endif
#ifdef AD_DENSE_HAVE_NEON
    mask |= 1u << AD_DENSE_NEON;
#endif
    return mask;
}

const char *ad_dense_kernel_name(int32_t kernel)
{
    switch (kernel) {
    case AD_DENSE_AUTO: return "auto";
    case AD_DENSE_SCALAR: return "scalar";
    case AD_DENSE_AVX2: return "avx2";
    case AD_DENSE_AVX512_VNNI: return "avx512-vnni";
    case AD_DENSE_NEON: return "neon";
    case AD_DENSE_AMX: return "amx";
    case AD_DENSE_AVX_VNNI: return "avx-vnni";
    default: return "unknown";
    }
}

static size_t pad16(int32_t n)
{
    return ((size_t)n + AD_PAD - 1) / AD_PAD * AD_PAD;
}

static size_t align_up(size_t n)
{
    return (n + AD_ALIGN - 1) / AD_ALIGN * AD_ALIGN;
}

/* Shapes only: 0 if the layer count or a width is out of bounds or the widths do not
 * chain; else the padded width of the widest layer. */
static size_t check_shapes(const ad_dense_config *cfg)
{
    if (!cfg || !cfg->layers || cfg->n_layers < 1 || cfg->n_layers > AD_DENSE_MAX_LAYERS)
        return 0;
    size_t width = 0;
    for (int32_t i = 0; i < cfg->n_layers; i++) {
        const ad_dense_layer_config *l = &cfg->layers[i];
        if (l->n_in < 1 || l->n_in > AD_DENSE_MAX_WIDTH || l->n_out < 1 ||
            l->n_out > AD_DENSE_MAX_WIDTH || (i > 0 && l->n_in != cfg->layers[i - 1].n_out))
            return 0;
        width = pad16(l->n_in) > width ? pad16(l->n_in) : width;
        width = pad16(l->n_out) > width ? pad16(l->n_out) : width;
    }
    return width;
}

size_t ad_dense_mem_bytes(const ad_dense_config *cfg)
{
    const size_t width = check_shapes(cfg);
    if (width == 0)
        return 0;
    size_t bytes = AD_ALIGN; /* room to align the start */
    for (int32_t i = 0; i < cfg->n_layers; i++) {
        const size_t k = pad16(cfg->layers[i].n_in), n = pad16(cfg->layers[i].n_out);
        bytes += align_up(k * n * sizeof(int16_t)) + 8 * align_up(n * sizeof(int32_t)) +
                 2 * align_up(n * sizeof(int64_t));
    }
    bytes += 2 * align_up(AD_DENSE_BATCH * width);                   /* act[0], act[1] */
    bytes += align_up(AD_DENSE_BATCH * width * sizeof(int16_t));     /* scratch */
    bytes += align_up(AD_DENSE_BATCH * (size_t)cfg->layers[cfg->n_layers - 1].n_out *
                      sizeof(float));                                /* dequant */
    return bytes;
}

static int zero_point_ok(int32_t zp)
{
    return zp >= -128 && zp <= 127;
}

/* Everything but the shapes; AD_OK or the status to return. */
static ad_status check_layer(const ad_dense_layer_config *l, int32_t expected_input_zp)
{
    if (!l->weights || !l->multiplier || !l->shift)
        return AD_ERR_NULL;
    if (!zero_point_ok(l->input_zero_point) || !zero_point_ok(l->output_zero_point) ||
        l->input_zero_point != expected_input_zp || (l->relu != 0 && l->relu != 1))
        return AD_ERR_DENSE_QUANT;
    for (int32_t o = 0; o < l->n_out; o++) {
        const int32_t m = l->multiplier[o], s = l->shift[o];
        if ((m != 0 && m < (INT32_C(1) << 30)) || m < 0 || s < -31 || s > 30)
            return AD_ERR_DENSE_QUANT;
        int64_t abs_sum = 0, sum = 0;
        const int8_t *w = l->weights + (size_t)o * (size_t)l->n_in;
        for (int32_t k = 0; k < l->n_in; k++) {
            if (w[k] == -128)
                return AD_ERR_DENSE_QUANT;
            abs_sum += w[k] < 0 ? -w[k] : w[k];
            sum += w[k];
        }
        /* the largest partial sum any kernel forms: a folded bias (int8 or u8 form) plus
         * up to 255 |w| per input; and the final accumulator after the left shift */
        const int64_t bias = l->bias ? l->bias[o] : 0;
        const int64_t folded_i8 = bias - (int64_t)l->input_zero_point * sum;
        const int64_t folded_u8 = bias - ((int64_t)l->input_zero_point + 128) * sum;
        const int64_t big_i8 = folded_i8 < 0 ? -folded_i8 : folded_i8;
        const int64_t big_u8 = folded_u8 < 0 ? -folded_u8 : folded_u8;
        const int64_t partial = (big_i8 > big_u8 ? big_i8 : big_u8) + 255 * abs_sum;
        const int64_t final = (bias < 0 ? -bias : bias) + 255 * abs_sum;
        /* the requantised value is at most |final| 2^left (+1 for rounding): 256 below
         * INT32_MAX leaves room for the output zero point in int32 */
        const int32_t left = s > 0 ? s : 0;
        if (partial > INT32_MAX || final > ((INT32_MAX - 256) >> left))
            return AD_ERR_DENSE_RANGE;
    }
    return AD_OK;
}

/* 2^(t-33) + zp 2^(t-32): the folded form's rounding term and zero point (t >= 33) */
static int64_t folded_term(int32_t t, int32_t zp)
{
    return t >= 33 ? (INT64_C(1) << (t - 33)) + (int64_t)zp * (INT64_C(1) << (t - 32)) : 0;
}

/* Pack one layer's weights for the kernel and fold the zero point into the bias.
 *   scalar, NEON: int8 [n_pad][k_pad], row-major, zero-padded;
 *   AVX2:         int16 [n_pad / 8][k_pad / 2][8][2]: 8 outputs x 2 inputs per 32 bytes,
 *                 one vpmaddwd against a broadcast input pair;
 *   VNNI, AVX-VNNI, AMX: int8 [n_pad / 16][k_pad / 4][16][4]: 16 outputs x 4 inputs
 *                 per 64 bytes, one vpdpbusd against 4 broadcast u8 inputs (AVX-VNNI: one
 *                 per 32-byte half); for AMX, 16 such rows are a B tile (ad_dense_x86.c). */
static void pack_layer(ad_dense_layer *dst, const ad_dense_layer_config *l, int32_t kernel,
                       int32_t single_rounding, unsigned char **cursor)
{
    const size_t k_pad = pad16(l->n_in), n_pad = pad16(l->n_out);
    dst->n_in = l->n_in;
    dst->n_out = l->n_out;
    dst->k_pad = (int32_t)k_pad;
    dst->n_pad = (int32_t)n_pad;
    dst->input_zero_point = l->input_zero_point;
    dst->output_zero_point = l->output_zero_point;
    dst->act_min = l->relu && l->output_zero_point > -128 ? l->output_zero_point : -128;
    dst->single_rounding = single_rounding;

    unsigned char *p = *cursor;
    void *weights = p;
    p += align_up(k_pad * n_pad * sizeof(int16_t));
    int32_t *bias = (int32_t *)p, *mult = bias + n_pad, *left = mult + n_pad,
            *right = left + n_pad, *mult_odd = right + n_pad, *shift32 = mult_odd + n_pad,
            *round_zp32 = shift32 + n_pad, *bias_s8 = round_zp32 + n_pad;
    p += 8 * align_up(n_pad * sizeof(int32_t));
    int64_t *shift64 = (int64_t *)p;
    p += align_up(n_pad * sizeof(int64_t));
    int64_t *round64 = (int64_t *)p;
    p += align_up(n_pad * sizeof(int64_t));
    *cursor = p;
    memset(weights, 0, k_pad * n_pad * sizeof(int16_t));
    memset(bias, 0, 8 * n_pad * sizeof(int32_t));
    for (size_t o = 0; o < n_pad; o++)   /* the padding channels: shift 0 */
        right[o] = single_rounding ? 31 : 0;

    const int u8_inputs = kernel == AD_DENSE_AVX512_VNNI || kernel == AD_DENSE_AMX ||
                          kernel == AD_DENSE_AVX_VNNI;
    const int32_t offset = u8_inputs ? l->input_zero_point + 128 : l->input_zero_point;
    for (size_t o = 0; o < (size_t)l->n_out; o++) {
        const int8_t *w = l->weights + o * (size_t)l->n_in;
        int32_t sum = 0;
        for (size_t k = 0; k < (size_t)l->n_in; k++) {
            sum += w[k];
            if (kernel == AD_DENSE_AVX2)
                ((int16_t *)weights)[(o / 8) * k_pad * 8 + (k / 2) * 16 + (o % 8) * 2 + k % 2] =
                    w[k];
            else if (u8_inputs)
                ((int8_t *)weights)[(o / 16) * k_pad * 16 + (k / 4) * 64 + (o % 16) * 4 + k % 4] =
                    w[k];
            else
                ((int8_t *)weights)[o * k_pad + k] = w[k];
        }
        bias[o] = (l->bias ? l->bias[o] : 0) - offset * sum; /* checked: fits */
        bias_s8[o] = (l->bias ? l->bias[o] : 0) - l->input_zero_point * sum;
        mult[o] = l->multiplier[o];
        left[o] = single_rounding ? 0 : l->shift[o] > 0 ? l->shift[o] : 0;
        right[o] = single_rounding ? 31 - l->shift[o] : l->shift[o] < 0 ? -l->shift[o] : 0;
    }
    int32_t high_shift = single_rounding;
    for (size_t o = 0; o < (size_t)l->n_out; o++)
        high_shift &= right[o] >= 32;
    for (size_t o = 0; o < n_pad; o++) {
        mult_odd[o] = o % 2 == 0 && o + 1 < n_pad ? mult[o + 1] : 0;
        /* the padding channels (t = 31, multiplier 0) may take any shift: their outputs
         * are never read (the next layer's weights for them are 0) */
        shift32[o] = high_shift && right[o] >= 32 ? right[o] - 32 : 0;
    }
    /* The folded form needs 2^(t-33) whole, and high + round_zp32 inside int32: |high| is
     * at most 2^30 (|x m| <= 2^62), so |round_zp32| below 2^30 is enough. The padding
     * channels (multiplier 0, shift32 0) get the zero point. */
    int32_t fold_zp = high_shift;
    for (size_t o = 0; o < (size_t)l->n_out && fold_zp; o++) {
        const int64_t c = folded_term(right[o], l->output_zero_point);
        fold_zp = right[o] >= 33 && c < (INT64_C(1) << 30) && c > -(INT64_C(1) << 30);
    }
    for (size_t o = 0; o < n_pad && fold_zp; o++)
        round_zp32[o] = o < (size_t)l->n_out
            ? (int32_t)folded_term(right[o], l->output_zero_point) : l->output_zero_point;
    for (size_t o = 0; o < n_pad; o++) {
        /* channel o's slot in its block of 16: evens first, then odds */
        const size_t block = o / 16 * 16, lane = o % 16, slot = block + lane % 2 * 8 + lane / 2;
        const int32_t t = right[o];
        shift64[slot] = single_rounding ? t : 0;
        round64[slot] = single_rounding ? INT64_C(1) << (t - 1) : 0;
    }
    dst->multiplier_odd = mult_odd;
    dst->shift32 = shift32;
    dst->high_shift = high_shift;
    dst->round_zp32 = round_zp32;
    dst->fold_zp = fold_zp;
    dst->bias_s8 = bias_s8;
    dst->shift64 = shift64;
    dst->round64 = round64;
    dst->weights = weights;
    dst->bias = bias;
    dst->multiplier = mult;
    dst->left_shift = left;
    dst->right_shift = right;
}

ad_status ad_dense_init(ad_dense *net, const ad_dense_config *cfg, int32_t kernel, void *mem,
                        size_t mem_bytes)
{
    if (!net)
        return AD_ERR_NULL;
    memset(net, 0, sizeof *net); /* not ready until the end */
    if (!cfg || !mem || !cfg->layers)
        return AD_ERR_NULL;
    const size_t width = check_shapes(cfg);
    if (width == 0)
        return AD_ERR_DENSE_SHAPE;
    if (cfg->single_rounding != 0 && cfg->single_rounding != 1)
        return AD_ERR_DENSE_QUANT;
    if (!(isfinite(cfg->input_scale) && cfg->input_scale > 0.0f &&
          isfinite(cfg->output_scale) && cfg->output_scale > 0.0f))
        return AD_ERR_DENSE_QUANT;
    for (int32_t i = 0; i < cfg->n_layers; i++) {
        const ad_dense_layer_config *l = &cfg->layers[i];
        const ad_status s = check_layer(l, i > 0 ? cfg->layers[i - 1].output_zero_point
                                                 : l->input_zero_point);
        if (s != AD_OK)
            return s;
    }
    const uint32_t available = ad_dense_kernels();
    if (kernel == AD_DENSE_AUTO) {
        /* the fastest first */
        static const int32_t preference[] = {AD_DENSE_AMX, AD_DENSE_AVX512_VNNI,
                                             AD_DENSE_AVX_VNNI, AD_DENSE_AVX2, AD_DENSE_NEON};
        kernel = AD_DENSE_SCALAR;
        for (size_t i = 0; i < sizeof preference / sizeof preference[0]; i++)
            if (available & (1u << preference[i])) {
                kernel = preference[i];
                break;
            }
    }
    if (kernel < 1 || kernel >= AD_DENSE_N_KERNELS || !(available & (1u << kernel)) ||
        !KERNELS[kernel])
        return AD_ERR_KERNEL;
    if (mem_bytes < ad_dense_mem_bytes(cfg))
        return AD_ERR_MEMORY;

    unsigned char *p = (unsigned char *)mem;
    p += (AD_ALIGN - (uintptr_t)p % AD_ALIGN) % AD_ALIGN;
    for (int32_t i = 0; i < cfg->n_layers; i++)
        pack_layer(&net->layers[i], &cfg->layers[i], kernel, cfg->single_rounding, &p);
    const ad_dense_layer_config *last = &cfg->layers[cfg->n_layers - 1];
    for (int j = 0; j < 2; j++) {
        net->act[j] = (int8_t *)p;
        memset(p, 0, AD_DENSE_BATCH * width);
        p += align_up(AD_DENSE_BATCH * width);
    }
    net->scratch = p;
    memset(p, 0, AD_DENSE_BATCH * width * sizeof(int16_t));
    p += align_up(AD_DENSE_BATCH * width * sizeof(int16_t));
    net->dequant = (float *)p;
    net->kernel = kernel;
    net->n_layers = cfg->n_layers;
    net->n_in = cfg->layers[0].n_in;
    net->n_out = last->n_out;
    net->width_pad = (int32_t)width;
    net->input_scale = cfg->input_scale;
    net->output_scale = cfg->output_scale;
    net->input_zero_point = cfg->layers[0].input_zero_point;
    net->output_zero_point = last->output_zero_point;
    net->ready = AD_DENSE_MAGIC;
    return AD_OK;
}

/* The layers on rows act[0][0 .. n_vectors); returns the buffer holding the outputs. */
static const int8_t *forward(ad_dense *net, size_t n_vectors)
{
    const ad_dense_layer_fn fn = KERNELS[net->kernel];
    int8_t *in = net->act[0], *out = net->act[1];
    for (int32_t i = 0; i < net->n_layers; i++) {
        fn(&net->layers[i], in, out, n_vectors, (size_t)net->width_pad, net->scratch);
        int8_t *t = in;
        in = out;
        out = t;
    }
    return in;
}

ad_status ad_dense_run_i8(ad_dense *net, const int8_t *in, size_t n, int8_t *out)
{
    if (!net || (n > 0 && (!in || !out)))
        return AD_ERR_NULL;
    if (net->ready != AD_DENSE_MAGIC)
        return AD_ERR_STATE;
    const size_t width = (size_t)net->width_pad, n_in = (size_t)net->n_in,
                 n_out = (size_t)net->n_out;
    for (size_t start = 0; start < n; start += AD_DENSE_BATCH) {
        const size_t m = n - start < AD_DENSE_BATCH ? n - start : AD_DENSE_BATCH;
        for (size_t b = 0; b < m; b++)
            memcpy(net->act[0] + b * width, in + (start + b) * n_in, n_in);
        const int8_t *y = forward(net, m);
        for (size_t b = 0; b < m; b++)
            memcpy(out + (start + b) * n_out, y + b * width, n_out);
    }
    return AD_OK;
}

ad_status ad_dense_run_f32(ad_dense *net, const float *x, size_t n, int8_t *q_out,
                           float *recon, double *sq_err)
{
    if (!net || (n > 0 && !x))
        return AD_ERR_NULL;
    if (net->ready != AD_DENSE_MAGIC)
        return AD_ERR_STATE;
    if (sq_err && net->n_in != net->n_out)
        return AD_ERR_DENSE_SHAPE;
    const size_t width = (size_t)net->width_pad, n_in = (size_t)net->n_in,
                 n_out = (size_t)net->n_out;
    for (size_t start = 0; start < n; start += AD_DENSE_BATCH) {
        const size_t m = n - start < AD_DENSE_BATCH ? n - start : AD_DENSE_BATCH;
        for (size_t b = 0; b < m; b++)
            ad_quantize_f32(x + (start + b) * n_in, n_in, net->input_scale,
                            net->input_zero_point, net->act[0] + b * width);
        const int8_t *y = forward(net, m);
        for (size_t b = 0; b < m; b++) {
            const size_t row = start + b;
            if (q_out)
                memcpy(q_out + row * n_out, y + b * width, n_out);
            if (!recon && !sq_err)
                continue;
            float *r = recon ? recon + row * n_out : net->dequant + b * n_out;
            ad_dequantize_i8(y + b * width, n_out, net->output_scale, net->output_zero_point, r);
            if (sq_err)
                sq_err[row] = ad_squared_error(r, x + row * n_in, n_in);
        }
    }
    return AD_OK;
}

/* ---- the scalar kernel: the definition the others are tested against --------------- */

void ad_dense_layer_scalar(const ad_dense_layer *layer, const int8_t *in, int8_t *out,
                           size_t n_vectors, size_t stride, void *scratch)
{
    (void)scratch;
    const size_t k_pad = (size_t)layer->k_pad, n_pad = (size_t)layer->n_pad;
    const int8_t *w = (const int8_t *)layer->weights;
    for (size_t b = 0; b < n_vectors; b++) {
        const int8_t *x = in + b * stride;
        for (size_t o = 0; o < n_pad; o++) {
            int32_t acc = layer->bias[o];
            const int8_t *row = w + o * k_pad;
            for (size_t k = 0; k < k_pad; k++)
                acc += (int32_t)x[k] * (int32_t)row[k];
            out[b * stride + o] = ad_requant_one(layer, acc, o);
        }
    }
}

int32_t ad_requantize(int32_t acc, int32_t multiplier, int32_t shift, int32_t single_rounding)
{
    shift = shift < -31 ? -31 : shift > 30 ? 30 : shift;
    if (single_rounding)
        return ad_single_round(acc, multiplier, 31 - shift);
    /* TFLite: x * (1 << left_shift) in int32; here with defined wrap-around */
    const int32_t left = shift > 0 ? shift : 0, right = shift > 0 ? 0 : -shift;
    const int32_t x = (int32_t)((uint32_t)acc << left);
    return ad_rdbpot(ad_srdhm(x, multiplier), right);
}
