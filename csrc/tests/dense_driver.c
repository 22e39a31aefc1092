/* dense_driver.c: runs the int8 dense network on vectors from files, for the sanitizer
 * and cross-architecture tests (tests/test_dense_c.py builds it with
 * scripts/check-c.sh).
 *
 *   dense_driver NETWORK INPUT OUTDIR
 *
 * NETWORK is a .adq8 file (layout in docs/int8-c-kernel.md, parsed here the way a
 * C-only deployment would), INPUT float32 vectors of the network's input width.
 * Writes to OUTDIR, from the scalar kernel:
 *   q.i8      int8 outputs           (n, n_out)
 *   recon.f32 dequantised outputs     (n, n_out)
 *   err.f64   squared errors          (n,)        (when n_in == n_out)
 * and checks, exiting 1 naming the failure: every kernel this build and CPU have gives the
 * scalar kernel's q, recon and err bit for bit, for one call on all vectors and for
 * calls of 1..AD_DENSE_BATCH + 1 vectors; run_i8 on the quantised inputs gives q; init
 * refuses damaged configurations (weight -128, bad multiplier, shift, zero point chain,
 * too little memory, unknown kernel) and a refused state runs nothing.
 * Prints the kernels it compared. */
#include "edge_ad.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int failures = 0;
#define CHECK(cond, ...)                                                                    \
    do {                                                                                    \
        if (!(cond)) {                                                                      \
            fprintf(stderr, "dense_driver: FAIL %s:%d: ", __FILE__, __LINE__);              \
            fprintf(stderr, __VA_ARGS__);                                                   \
            fprintf(stderr, "\n");                                                          \
            failures++;                                                                     \
        }                                                                                   \
    } while (0)

static unsigned char *read_file(const char *path, size_t *n_bytes)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "dense_driver: cannot open %s\n", path);
        exit(2);
    }
    fseek(f, 0, SEEK_END);
    long size = ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *buf = malloc(size > 0 ? (size_t)size : 1);
    if (!buf || fread(buf, 1, (size_t)size, f) != (size_t)size) {
        fprintf(stderr, "dense_driver: cannot read %s\n", path);
        exit(2);
    }
    fclose(f);
    *n_bytes = (size_t)size;
    return buf;
}

static void write_file(const char *dir, const char *name, const void *data, size_t n_bytes)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(data, 1, n_bytes, f) != n_bytes) {
        fprintf(stderr, "dense_driver: cannot write %s\n", path);
        exit(2);
    }
    fclose(f);
}

/* little-endian fields (every target here is little-endian; memcpy keeps them aligned) */
static int32_t i32_at(const unsigned char *p) { int32_t v; memcpy(&v, p, 4); return v; }
static float f32_at(const unsigned char *p) { float v; memcpy(&v, p, 4); return v; }

/* The .adq8 file into a configuration whose arrays point into copies. */
static int parse(const unsigned char *d, size_t size, ad_dense_config *cfg,
                 ad_dense_layer_config *layers)
{
    if (size < 36 || memcmp(d, "EDGEADQ8", 8) != 0 || i32_at(d + 8) != 1)
        return 0;
    const int32_t n_layers = i32_at(d + 12), flags = i32_at(d + 16);
    if (n_layers < 1 || n_layers > AD_DENSE_MAX_LAYERS || (size_t)(36 + 32 * n_layers) > size)
        return 0;
    cfg->n_layers = n_layers;
    cfg->layers = layers;
    cfg->single_rounding = flags & 1;
    cfg->input_scale = f32_at(d + 20);
    cfg->output_scale = f32_at(d + 28);
    for (int32_t i = 0; i < n_layers; i++) {
        const unsigned char *t = d + 36 + 32 * i;
        ad_dense_layer_config *l = &layers[i];
        l->n_in = i32_at(t);
        l->n_out = i32_at(t + 4);
        l->input_zero_point = i32_at(t + 8);
        l->output_zero_point = i32_at(t + 12);
        l->relu = i32_at(t + 16);
        const uint32_t offset = (uint32_t)i32_at(t + 24), bytes = (uint32_t)i32_at(t + 28);
        if (l->n_in < 1 || l->n_out < 1 || l->n_in > AD_DENSE_MAX_WIDTH ||
            l->n_out > AD_DENSE_MAX_WIDTH || (size_t)offset + bytes > size)
            return 0;
        const size_t nw = (size_t)l->n_in * (size_t)l->n_out, w_bytes = (nw + 3) / 4 * 4;
        if (bytes != w_bytes + 16 * (size_t)l->n_out)
            return 0;
        int8_t *w = malloc(nw);
        int32_t *rest = malloc(3 * (size_t)l->n_out * sizeof(int32_t));
        memcpy(w, d + offset, nw);
        memcpy(rest, d + offset + w_bytes, 3 * (size_t)l->n_out * sizeof(int32_t));
        l->weights = w;
        l->bias = rest;
        l->multiplier = rest + l->n_out;
        l->shift = rest + 2 * l->n_out;
    }
    return 1;
}

typedef struct {
    int8_t *q;
    float *recon;
    double *err;
} outputs;

static ad_dense *new_net(const ad_dense_config *cfg, int32_t kernel, void **mem)
{
    const size_t bytes = ad_dense_mem_bytes(cfg);
    *mem = malloc(bytes + 3);
    ad_dense *net = malloc(sizeof *net);
    /* an odd offset: init must align the caller's memory itself */
    const ad_status s = ad_dense_init(net, cfg, kernel, (char *)*mem + 3, bytes);
    CHECK(s == AD_OK, "init with kernel %s: %s", ad_dense_kernel_name(kernel),
          ad_status_message(s));
    return net;
}

static void run_all(ad_dense *net, const float *x, size_t n, size_t chunk, outputs *o,
                    int with_err)
{
    for (size_t start = 0; start < n; start += chunk) {
        const size_t m = n - start < chunk ? n - start : chunk;
        const ad_status s = ad_dense_run_f32(net, x + start * (size_t)net->n_in, m,
                                             o->q + start * (size_t)net->n_out,
                                             o->recon + start * (size_t)net->n_out,
                                             with_err ? o->err + start : NULL);
        CHECK(s == AD_OK, "run_f32: %s", ad_status_message(s));
    }
}

int main(int argc, char **argv)
{
    if (argc != 4) {
        fprintf(stderr, "usage: dense_driver NETWORK INPUT OUTDIR\n");
        return 2;
    }
    size_t net_bytes, in_bytes;
    unsigned char *raw = read_file(argv[1], &net_bytes);
    float *x = (float *)read_file(argv[2], &in_bytes);
    ad_dense_layer_config layers[AD_DENSE_MAX_LAYERS];
    ad_dense_config cfg;
    if (!parse(raw, net_bytes, &cfg, layers)) {
        fprintf(stderr, "dense_driver: %s is not a valid .adq8 network\n", argv[1]);
        return 2;
    }
    const int32_t n_in = layers[0].n_in, n_out = layers[cfg.n_layers - 1].n_out;
    const size_t n = in_bytes / sizeof(float) / (size_t)n_in;
    const int with_err = n_in == n_out;

    outputs ref = {malloc(n * n_out + 1), malloc(n * n_out * sizeof(float) + 1),
                   malloc(n * sizeof(double) + 1)};
    outputs got = {malloc(n * n_out + 1), malloc(n * n_out * sizeof(float) + 1),
                   malloc(n * sizeof(double) + 1)};
    void *mem;
    ad_dense *scalar = new_net(&cfg, AD_DENSE_SCALAR, &mem);
    run_all(scalar, x, n, n > 0 ? n : 1, &ref, with_err);
    write_file(argv[3], "q.i8", ref.q, n * n_out);
    write_file(argv[3], "recon.f32", ref.recon, n * n_out * sizeof(float));
    if (with_err)
        write_file(argv[3], "err.f64", ref.err, n * sizeof(double));

    /* int8 path on the quantised inputs */
    int8_t *q_in = malloc(n * n_in + 1);
    ad_quantize_f32(x, n * n_in, cfg.input_scale, layers[0].input_zero_point, q_in);
    CHECK(ad_dense_run_i8(scalar, q_in, n, got.q) == AD_OK, "run_i8");
    CHECK(memcmp(got.q, ref.q, n * n_out) == 0, "run_i8 differs from run_f32's int8 outputs");

    /* every kernel, whole and in small calls */
    const uint32_t kernels = ad_dense_kernels();
    printf("dense_driver: kernels");
    for (int32_t k = 1; k < AD_DENSE_N_KERNELS; k++) {
        if (!(kernels & (1u << k)))
            continue;
        printf(" %s", ad_dense_kernel_name(k));
        void *kmem;
        ad_dense *net = new_net(&cfg, k, &kmem);
        for (size_t chunk = 1; chunk <= AD_DENSE_BATCH + 2; chunk++) {
            const size_t chunk_size = chunk == AD_DENSE_BATCH + 2 ? (n > 0 ? n : 1) : chunk;
            memset(got.q, 0x55, n * n_out);
            run_all(net, x, n, chunk_size, &got, with_err);
            CHECK(memcmp(got.q, ref.q, n * n_out) == 0 &&
                      memcmp(got.recon, ref.recon, n * n_out * sizeof(float)) == 0 &&
                      (!with_err || memcmp(got.err, ref.err, n * sizeof(double)) == 0),
                  "kernel %s in calls of %zu vectors differs from scalar",
                  ad_dense_kernel_name(k), chunk_size);
        }
        free(net);
        free(kmem);
    }
    printf("\n");

    /* init refuses damaged configurations; a refused state runs nothing */
    const size_t bytes = ad_dense_mem_bytes(&cfg);
    void *bad_mem = malloc(bytes);
    ad_dense bad;
    ad_dense_layer_config saved = layers[0];
    int8_t *w = (int8_t *)layers[0].weights;
    const int8_t w0 = w[0];
    w[0] = -128;
    CHECK(ad_dense_init(&bad, &cfg, AD_DENSE_AUTO, bad_mem, bytes) == AD_ERR_DENSE_QUANT,
          "a weight of -128 was accepted");
    CHECK(ad_dense_run_f32(&bad, x, n, NULL, NULL, NULL) == AD_ERR_STATE,
          "a refused state ran");
    w[0] = w0;
    int32_t *mult = (int32_t *)layers[0].multiplier;
    const int32_t m0 = mult[0];
    mult[0] = 12345;
    CHECK(ad_dense_init(&bad, &cfg, AD_DENSE_AUTO, bad_mem, bytes) == AD_ERR_DENSE_QUANT,
          "a multiplier below 2^30 was accepted");
    mult[0] = m0;
    int32_t *shift = (int32_t *)layers[0].shift;
    const int32_t s0 = shift[0];
    shift[0] = 31;
    CHECK(ad_dense_init(&bad, &cfg, AD_DENSE_AUTO, bad_mem, bytes) == AD_ERR_DENSE_QUANT,
          "a shift of 31 was accepted");
    shift[0] = s0;
    if (cfg.n_layers > 1) {
        layers[1].input_zero_point = layers[0].output_zero_point == 0 ? 1 : 0;
        CHECK(ad_dense_init(&bad, &cfg, AD_DENSE_AUTO, bad_mem, bytes) == AD_ERR_DENSE_QUANT,
              "zero points that do not chain were accepted");
        layers[1].input_zero_point = layers[0].output_zero_point;
        layers[1].n_in++;
        CHECK(ad_dense_init(&bad, &cfg, AD_DENSE_AUTO, bad_mem, bytes) == AD_ERR_DENSE_SHAPE,
              "widths that do not chain were accepted");
        layers[1].n_in--;
    }
    layers[0] = saved;
    CHECK(ad_dense_init(&bad, &cfg, AD_DENSE_AUTO, bad_mem, bytes - 1) == AD_ERR_MEMORY,
          "too little memory was accepted");
    CHECK(ad_dense_init(&bad, &cfg, 99, bad_mem, bytes) == AD_ERR_KERNEL,
          "an unknown kernel was accepted");
    CHECK(ad_dense_init(&bad, &cfg, AD_DENSE_AUTO, bad_mem, bytes) == AD_OK,
          "the restored configuration was refused");
    CHECK(ad_dense_init(NULL, &cfg, AD_DENSE_AUTO, bad_mem, bytes) == AD_ERR_NULL,
          "a NULL state was accepted");

    free(bad_mem);
    free(q_in);
    free(scalar);
    free(mem);
    for (int32_t i = 0; i < cfg.n_layers; i++) {
        free((void *)layers[i].weights);
        free((void *)layers[i].bias);
    }
    free(ref.q); free(ref.recon); free(ref.err);
    free(got.q); free(got.recon); free(got.err);
    free(x);
    free(raw);
    if (failures) {
        fprintf(stderr, "dense_driver: %d checks failed\n", failures);
        return 1;
    }
    printf("dense_driver: ok: %zu vectors, %d layers\n", n, (int)cfg.n_layers);
    return 0;
}
