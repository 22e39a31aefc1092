/* fuzz_dense.c: libFuzzer target for the int8 dense network (built by scripts/check-c.sh
 * fuzz OUT SECONDS dense, with -fsanitize=fuzzer,address,undefined).
 *
 * One input draws a network (1..4 layers, widths 1..100, weights, biases, multipliers,
 * shifts -31..30 and beyond, zero points, ReLU, either rounding form, sometimes a weight
 * of -128, a bad multiplier or shift, broken zero-point chains), a kernel and int8 and
 * float inputs. Checked: init refuses every out-of-range value and accepts every network
 * with small biases and no left shift; an accepted network's int8 outputs equal this
 * file's own int64 transcription of TFLite's reference kernel, in every kernel the CPU
 * has; the float path quantises as TFLite's QUANTIZE (roundf) and its error is the
 * squared distance of the dequantised output; memory exactly ad_dense_mem_bytes (ASan
 * sees any overrun); a refused state runs nothing. */
#include "edge_ad.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define REQUIRE(cond)                                                                       \
    do {                                                                                    \
        if (!(cond))                                                                        \
            abort();                                                                        \
    } while (0)

#define MAX_W 100
#define MAX_L 4
#define MAX_N 40

typedef struct {
    const uint8_t *data;
    size_t size, pos;
} reader;

static uint32_t take(reader *r, int n_bytes)
{
    uint32_t v = 0;
    for (int i = 0; i < n_bytes; i++)
        v = (v << 8) | (r->pos < r->size ? r->data[r->pos++] : 0u);
    return v;
}

/* TFLite's reference MultiplyByQuantizedMultiplier, both forms, transcribed in int64 */
static int64_t tflite_requant(int64_t acc, int64_t m, int shift, int single)
{
    if (single) {
        const int total = 31 - shift;
        return (acc * m + ((int64_t)1 << (total - 1))) >> total;
    }
    const int left = shift > 0 ? shift : 0, right = shift > 0 ? 0 : -shift;
    const int64_t x = acc * ((int64_t)1 << left);
    const int64_t ab = x * m;
    const int64_t nudge = ab >= 0 ? (1 << 30) : (1 - (1 << 30));
    const int64_t high = (ab + nudge) / ((int64_t)1 << 31);
    const int64_t mask = ((int64_t)1 << right) - 1;
    const int64_t remainder = high & mask;
    const int64_t threshold = (mask >> 1) + (high < 0 ? 1 : 0);
    return (high >> right) + (remainder > threshold ? 1 : 0);
}

static ad_dense net;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    reader r = {data, size, 0};
    const uint32_t flags = take(&r, 2);
    const int n_layers = 1 + (int)(flags % MAX_L), single = (flags >> 2) & 1;
    const int damage = (int)((flags >> 3) % 12); /* 0..5: one kind of damage, else none */
    const int32_t kernel = (int32_t)((flags >> 7) % AD_DENSE_N_KERNELS);
    const size_t n = (size_t)(take(&r, 1) % MAX_N);
    static int8_t weights[MAX_L][MAX_W * MAX_W];
    static int32_t bias[MAX_L][MAX_W], mult[MAX_L][MAX_W], shift[MAX_L][MAX_W];
    ad_dense_layer_config layers[MAX_L];
    int widths[MAX_L + 1];
    for (int i = 0; i <= n_layers; i++)
        widths[i] = 1 + (int)(take(&r, 1) % MAX_W);
    int32_t zp = (int32_t)(int8_t)take(&r, 1);
    int expect_ok = 1, maybe_range = 0;
    for (int i = 0; i < n_layers; i++) {
        ad_dense_layer_config *l = &layers[i];
        l->n_in = widths[i];
        l->n_out = widths[i + 1];
        l->input_zero_point = zp;
        l->output_zero_point = zp = (int32_t)(int8_t)take(&r, 1);
        l->relu = (int32_t)(take(&r, 1) & 1);
        const uint32_t seed = take(&r, 4);
        uint32_t s = seed | 1u;
        for (int k = 0; k < l->n_in * l->n_out; k++) {
            s ^= s << 13; s ^= s >> 17; s ^= s << 5;
            weights[i][k] = (int8_t)((int32_t)(s % 255) - 127);
        }
        for (int o = 0; o < l->n_out; o++) {
            s ^= s << 13; s ^= s >> 17; s ^= s << 5;
            bias[i][o] = (int32_t)(s % 2000001) - 1000000;
            mult[i][o] = (s & 7) == 0 ? 0 : (int32_t)((1u << 30) + (s >> 2) % (1u << 30));
            shift[i][o] = -(int32_t)((s >> 8) % 32);       /* -31..0: right shifts only */
        }
        if ((seed & 0xff) == 1) {   /* a left shift and a big bias: may overflow */
            shift[i][0] = (int32_t)(seed >> 8) % 31;
            bias[i][0] = (int32_t)(seed >> 4);
            maybe_range = 1;
        }
        l->weights = weights[i];
        l->bias = bias[i];
        l->multiplier = mult[i];
        l->shift = shift[i];
    }
    switch (damage) {
    case 0: weights[0][0] = -128; expect_ok = 0; break;
    case 1: mult[n_layers - 1][0] = (int32_t)(take(&r, 1) % 1000) + 1; expect_ok = 0; break;
    case 2: shift[0][layers[0].n_out - 1] = take(&r, 1) & 1 ? 31 : -32; expect_ok = 0; break;
    case 3:
        if (n_layers > 1) {
            layers[1].input_zero_point = layers[0].output_zero_point ^ 1;
            expect_ok = 0;
        }
        break;
    case 4: layers[0].relu = 2; expect_ok = 0; break;
    default: break;
    }
    const ad_dense_config cfg = {n_layers, layers, single, 0.05f + (float)(take(&r, 1)) / 64.0f,
                                 0.01f + (float)(take(&r, 1)) / 128.0f};
    const size_t bytes = ad_dense_mem_bytes(&cfg);
    REQUIRE(bytes > 0); /* the shapes are always valid here */
    void *mem = malloc(bytes);
    const int kernel_ok = kernel == AD_DENSE_AUTO || (ad_dense_kernels() & (1u << kernel));
    const ad_status status = ad_dense_init(&net, &cfg, kernel, mem, bytes);
    if (!kernel_ok || !expect_ok) {
        REQUIRE(status != AD_OK);
    } else if (!maybe_range) {
        REQUIRE(status == AD_OK);
    }
    if (status != AD_OK) {
        int8_t one = 0;
        REQUIRE(ad_dense_run_i8(&net, &one, 1, &one) == AD_ERR_STATE);
        free(mem);
        return 0;
    }

    /* int8 inputs: the remaining bytes, cycled */
    const int n_in = widths[0], n_out = widths[n_layers];
    int8_t *in = malloc(n * (size_t)n_in + 1), *out = malloc(n * (size_t)n_out + 1);
    for (size_t i = 0; i < n * (size_t)n_in; i++)
        in[i] = (int8_t)(r.pos < r.size ? r.data[r.pos + i % (r.size - r.pos)] : i * 37);
    REQUIRE(ad_dense_run_i8(&net, in, n, out) == AD_OK);
    /* the reference, layer by layer in int64 */
    int64_t cur[MAX_W], next[MAX_W];
    for (size_t b = 0; b < n; b++) {
        for (int k = 0; k < n_in; k++)
            cur[k] = in[b * (size_t)n_in + (size_t)k];
        for (int i = 0; i < n_layers; i++) {
            const ad_dense_layer_config *l = &layers[i];
            const int64_t lo = l->relu && l->output_zero_point > -128 ? l->output_zero_point : -128;
            for (int o = 0; o < l->n_out; o++) {
                int64_t acc = l->bias[o];
                for (int k = 0; k < l->n_in; k++)
                    acc += (cur[k] - l->input_zero_point) * l->weights[o * l->n_in + k];
                int64_t y = tflite_requant(acc, l->multiplier[o], l->shift[o], single) +
                            l->output_zero_point;
                next[o] = y < lo ? lo : y > 127 ? 127 : y;
            }
            memcpy(cur, next, sizeof cur);
        }
        for (int o = 0; o < n_out; o++)
            REQUIRE(out[b * (size_t)n_out + (size_t)o] == cur[o]);
    }

    /* float path: QUANTIZE as TFLite (roundf), the network, DEQUANTIZE, the error */
    if (n_in == n_out && n > 0) {
        float *x = malloc(n * (size_t)n_in * sizeof(float));
        float *recon = malloc(n * (size_t)n_out * sizeof(float));
        double *err = malloc(n * sizeof(double));
        int8_t *q = malloc(n * (size_t)n_in), *q_out = malloc(n * (size_t)n_out);
        for (size_t i = 0; i < n * (size_t)n_in; i++) {
            x[i] = (float)in[i] * 0.37f - 3.0f + (float)(i % 7) * 0.01f;
            int32_t v = (int32_t)roundf(x[i] / cfg.input_scale) + layers[0].input_zero_point;
            q[i] = (int8_t)(v < -128 ? -128 : v > 127 ? 127 : v);
        }
        REQUIRE(ad_dense_run_f32(&net, x, n, q_out, recon, err) == AD_OK);
        REQUIRE(ad_dense_run_i8(&net, q, n, out) == AD_OK);
        REQUIRE(memcmp(out, q_out, n * (size_t)n_out) == 0);
        for (size_t b = 0; b < n; b++) {
            double e = 0.0;
            for (int o = 0; o < n_out; o++) {
                const size_t j = b * (size_t)n_out + (size_t)o;
                REQUIRE(recon[j] == (float)(cfg.output_scale *
                                            (double)(q_out[j] - layers[n_layers - 1].output_zero_point)));
                e += ((double)recon[j] - x[j]) * ((double)recon[j] - x[j]);
            }
            REQUIRE(fabs(err[b] - e) <= 1e-12 * e + 1e-300);
        }
        free(q_out); free(q); free(err); free(recon); free(x);
    }
    free(out);
    free(in);
    free(mem);
    return 0;
}
