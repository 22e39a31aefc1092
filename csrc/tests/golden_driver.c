/* golden_driver.c: runs the front end on a clip from files, for the sanitizer and
 * cross-architecture tests (tests/test_frontend_c.py builds it with scripts/check-c.sh).
 *
 *   golden_driver CONFIG INPUT OUTDIR
 *
 * CONFIG is the front-end configuration as little-endian binary, written by the test from
 * edge.tables: int32 hop_samples, float32 log_floor, int32 n_mel_weights,
 * float32 window[AD_N_FFT], int32 starts[AD_N_MELS], lengths[AD_N_MELS],
 * offsets[AD_N_MELS], float32 weights[n_mel_weights].
 * INPUT is float32 samples. Writes to OUTDIR (float32, row-major):
 *   frames.f32      clip frames with the seed's padding     (n_frames, AD_N_MELS)
 *   vectors.f32     their context vectors                    (n_vectors, AD_VECTOR_SIZE)
 *   stream.f32      float push in pseudo-random chunks       (k, AD_VECTOR_SIZE)
 *   stream_i16.f32  int16 push of round(x * 32768), clipped  (k, AD_VECTOR_SIZE)
 *   fft.f32         re[AD_FFT_BINS] then im[AD_FFT_BINS] of the first AD_FFT_N samples
 * It also checks, and exits 1 naming the failure: chunked push equals one push bit for bit,
 * ad_rfft_power equals ad_window_apply, ad_rfft_forward, ad_power_spectrum in turn,
 * ad_frontend_vectors_for predicts every push, a push into a too small buffer stops and
 * resumes without losing samples, reset restarts the stream, init refuses bad configs;
 * and the streaming detector path (ad_stream, with a small seeded int8 network 640 -> 16
 * -> 640): its errors equal the front end's vectors through ad_dense_run_f32 bit for bit,
 * in random chunks and into a one-error buffer, and it refuses a network of another width.
 * Writes stream_err.f64 (those errors) too.
 */
#include "edge_ad.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int failures = 0;
#define CHECK(cond, ...)                                                                    \
    do {                                                                                    \
        if (!(cond)) {                                                                      \
            fprintf(stderr, "golden_driver: FAIL %s:%d: ", __FILE__, __LINE__);             \
            fprintf(stderr, __VA_ARGS__);                                                   \
            fprintf(stderr, "\n");                                                          \
            failures++;                                                                     \
        }                                                                                   \
    } while (0)

static void *read_file(const char *path, size_t *n_bytes)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "golden_driver: cannot open %s\n", path);
        exit(2);
    }
    fseek(f, 0, SEEK_END);
    long size = ftell(f);
    fseek(f, 0, SEEK_SET);
    void *buf = malloc(size > 0 ? (size_t)size : 1);
    if (!buf || fread(buf, 1, (size_t)size, f) != (size_t)size) {
        fprintf(stderr, "golden_driver: cannot read %s\n", path);
        exit(2);
    }
    fclose(f);
    *n_bytes = (size_t)size;
    return buf;
}

static void write_file(const char *dir, const char *name, const float *data, size_t n)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(data, sizeof(float), n, f) != n) {
        fprintf(stderr, "golden_driver: cannot write %s\n", path);
        exit(2);
    }
    fclose(f);
}

/* xorshift32: the same chunking on every architecture */
static uint32_t rng_state = 12345u;
static uint32_t rng(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 17;
    rng_state ^= rng_state << 5;
    return rng_state;
}

static size_t push_f32_all(ad_frontend *st, const float *x, size_t n, float *out,
                           size_t cap, int random_chunks)
{
    size_t done = 0, written = 0;
    while (done < n) {
        size_t chunk = n - done;
        if (random_chunks) {
            const uint32_t r = rng() % 4;
            const size_t len = r == 0 ? 1 + rng() % 8 : r == 1 ? 1 + rng() % 700
                               : r == 2 ? 1 + rng() % 5000 : 512;
            chunk = len < chunk ? len : chunk;
        }
        const size_t expect = ad_frontend_vectors_for(st, chunk);
        size_t used = 0, got = 0;
        ad_status s = ad_frontend_push_f32(st, x + done, chunk, out + written * AD_VECTOR_SIZE,
                                           cap - written, &used, &got);
        CHECK(s == AD_OK, "push_f32 status %d", s);
        CHECK(used == chunk, "push_f32 consumed %zu of %zu", used, chunk);
        CHECK(got == expect, "push_f32 wrote %zu vectors, vectors_for said %zu", got, expect);
        done += used;
        written += got;
        if (s != AD_OK || used == 0)
            break;
    }
    return written;
}

int main(int argc, char **argv)
{
    if (argc != 4) {
        fprintf(stderr, "usage: golden_driver CONFIG INPUT OUTDIR\n");
        return 2;
    }
    size_t cfg_bytes, in_bytes;
    unsigned char *cfg_raw = read_file(argv[1], &cfg_bytes);
    float *x = read_file(argv[2], &in_bytes);
    const size_t n = in_bytes / sizeof(float);

    /* parse the configuration */
    const size_t head = 3 * 4 + AD_N_FFT * 4 + 3 * AD_N_MELS * 4;
    if (cfg_bytes < head) {
        fprintf(stderr, "golden_driver: %s too short\n", argv[1]);
        return 2;
    }
    int32_t hop, n_weights;
    float floor_value;
    memcpy(&hop, cfg_raw, 4);
    memcpy(&floor_value, cfg_raw + 4, 4);
    memcpy(&n_weights, cfg_raw + 8, 4);
    if (n_weights < 0 || cfg_bytes != head + (size_t)n_weights * 4) {
        fprintf(stderr, "golden_driver: %s has the wrong size\n", argv[1]);
        return 2;
    }
    /* copies, so the pointers are aligned whatever the file layout */
    float *window = malloc(AD_N_FFT * sizeof(float));
    int32_t *starts = malloc(3 * AD_N_MELS * sizeof(int32_t));
    float *weights = malloc((size_t)(n_weights > 0 ? n_weights : 1) * sizeof(float));
    memcpy(window, cfg_raw + 12, AD_N_FFT * 4);
    memcpy(starts, cfg_raw + 12 + AD_N_FFT * 4, 3 * AD_N_MELS * 4);
    memcpy(weights, cfg_raw + head, (size_t)n_weights * 4);
    ad_config cfg = {hop, floor_value, window, starts, starts + AD_N_MELS,
                     starts + 2 * AD_N_MELS, weights, n_weights};

    ad_frontend *st = malloc(sizeof *st);
    ad_status s = ad_frontend_init(st, &cfg);
    if (s != AD_OK) {
        fprintf(stderr, "golden_driver: init: %s\n", ad_status_message(s));
        return 1;
    }

    /* whole clip */
    const size_t n_frames = ad_clip_n_frames(st, n);
    float *frames = malloc(n_frames * AD_N_MELS * sizeof(float));
    size_t got_frames = 0;
    CHECK(ad_frontend_clip_frames_f32(st, x, n, frames, n_frames - 1, &got_frames,
                                      NULL) ==
              AD_ERR_CAPACITY, "clip into a buffer one frame short was not refused");
    size_t bad_frames = 1;
    s = ad_frontend_clip_frames_f32(st, x, n, frames, n_frames, &got_frames, &bad_frames);
    CHECK(s == AD_OK && got_frames == n_frames, "clip status %d, %zu of %zu frames", s,
          got_frames, n_frames);
    CHECK(bad_frames == 0, "%zu frames of finite audio reported non-finite", bad_frames);
    const size_t n_vectors = n_frames >= AD_CONTEXT ? n_frames - AD_CONTEXT + 1 : 0;
    float *vectors = malloc((n_vectors + 1) * AD_VECTOR_SIZE * sizeof(float));
    CHECK(ad_context_vectors(frames, n_frames, vectors, n_vectors + 1) == n_vectors,
          "context vectors count");
    write_file(argv[3], "frames.f32", frames, n_frames * AD_N_MELS);
    write_file(argv[3], "vectors.f32", vectors, n_vectors * AD_VECTOR_SIZE);

    /* streaming: one push, then random chunks: bit for bit equal */
    const size_t cap = ad_frontend_vectors_for(st, n) + 1;
    float *one = malloc(cap * AD_VECTOR_SIZE * sizeof(float));
    float *chunked = malloc(cap * AD_VECTOR_SIZE * sizeof(float));
    const size_t k_one = push_f32_all(st, x, n, one, cap, 0);
    ad_frontend_reset(st);
    const size_t k_chunked = push_f32_all(st, x, n, chunked, cap, 1);
    CHECK(k_one == k_chunked, "one push gave %zu vectors, chunks %zu", k_one, k_chunked);
    CHECK(memcmp(one, chunked, k_one * AD_VECTOR_SIZE * sizeof(float)) == 0,
          "chunked push differs from one push");
    write_file(argv[3], "stream.f32", one, k_one * AD_VECTOR_SIZE);

    /* a push into a one-vector buffer stops, and resuming loses nothing */
    ad_frontend_reset(st);
    size_t done = 0, written = 0;
    while (done < n) {
        size_t used = 0, got = 0;
        s = ad_frontend_push_f32(st, x + done, n - done, chunked + written * AD_VECTOR_SIZE,
                                 1, &used, &got);
        CHECK(s == AD_OK && got <= 1, "small-buffer push status %d wrote %zu", s, got);
        done += used;
        written += got;
        if (used == 0 && got == 0)
            break;
    }
    CHECK(done == n && written == k_one, "small-buffer pushes: %zu of %zu samples, %zu of %zu "
          "vectors", done, n, written, k_one);
    CHECK(memcmp(one, chunked, k_one * AD_VECTOR_SIZE * sizeof(float)) == 0,
          "small-buffer pushes differ from one push");

    /* int16 path */
    int16_t *pcm = malloc((n > 0 ? n : 1) * sizeof(int16_t));
    for (size_t i = 0; i < n; i++) {
        float v = roundf(x[i] * 32768.0f);
        pcm[i] = (int16_t)(v > 32767.0f ? 32767.0f : v < -32768.0f ? -32768.0f : v);
    }
    ad_frontend_reset(st);
    size_t used = 0, k_i16 = 0;
    s = ad_frontend_push_i16(st, pcm, n, one, cap, &used, &k_i16);
    CHECK(s == AD_OK && used == n, "push_i16 status %d consumed %zu of %zu", s, used, n);
    write_file(argv[3], "stream_i16.f32", one, k_i16 * AD_VECTOR_SIZE);

    /* FFT of the first frame (zero-filled if the clip is shorter) */
    float frame[AD_FFT_N] = {0};
    memcpy(frame, x, (n < AD_FFT_N ? n : AD_FFT_N) * sizeof(float));
    float spectrum[2 * AD_FFT_BINS], work[AD_FFT_WORK];
    ad_rfft_forward(&st->fft, frame, spectrum, spectrum + AD_FFT_BINS, work);
    write_file(argv[3], "fft.f32", spectrum, 2 * AD_FFT_BINS);

    /* the front end's fused call equals the three stages in turn, bit for bit */
    float windowed[AD_FFT_N], power[AD_POWER_LEN], fused[AD_FFT_BINS];
    ad_window_apply(cfg.window, frame, windowed);
    ad_rfft_forward(&st->fft, windowed, spectrum, spectrum + AD_FFT_BINS, work);
    ad_power_spectrum(spectrum, spectrum + AD_FFT_BINS, power);
    ad_rfft_power(&st->fft, cfg.window, frame, fused, work);
    CHECK(memcmp(power, fused, sizeof fused) == 0,
          "ad_rfft_power differs from window, rfft, power in turn");

    /* the streaming detector path on a small seeded network */
    {
        static int8_t w1[16 * AD_VECTOR_SIZE], w2[AD_VECTOR_SIZE * 16];
        static int32_t b1[16], m1[16], s1[16], b2[AD_VECTOR_SIZE], m2[AD_VECTOR_SIZE],
            s2[AD_VECTOR_SIZE];
        for (size_t i = 0; i < sizeof w1; i++) {
            w1[i] = (int8_t)((int32_t)(rng() % 255) - 127);
            w2[i] = (int8_t)((int32_t)(rng() % 255) - 127);
        }
        for (int o = 0; o < AD_VECTOR_SIZE; o++) {
            if (o < 16) {
                b1[o] = (int32_t)(rng() % 20001) - 10000;
                m1[o] = (int32_t)((1u << 30) + rng() % (1u << 30));
                s1[o] = -(int32_t)(8 + rng() % 4);
            }
            b2[o] = (int32_t)(rng() % 2001) - 1000;
            m2[o] = (int32_t)((1u << 30) + rng() % (1u << 30));
            s2[o] = -(int32_t)(6 + rng() % 4);
        }
        ad_dense_layer_config layers[2] = {
            {AD_VECTOR_SIZE, 16, w1, b1, m1, s1, 5, -128, 1},
            {16, AD_VECTOR_SIZE, w2, b2, m2, s2, -128, 3, 0}};
        ad_dense_config dcfg = {2, layers, 1, 0.03f, 0.02f};
        const size_t bytes = ad_dense_mem_bytes(&dcfg);
        void *mem = malloc(bytes);
        ad_dense *net = malloc(sizeof *net);
        CHECK(ad_dense_init(net, &dcfg, AD_DENSE_AUTO, mem, bytes) == AD_OK, "dense init");
        double *want = malloc((k_one + 1) * sizeof(double));
        double *got = malloc((k_one + 1) * sizeof(double));
        /* chunked holds the float stream's vectors (one now holds the int16 ones) */
        CHECK(ad_dense_run_f32(net, chunked, k_one, NULL, NULL, want) == AD_OK, "dense run");
        ad_stream *stream = malloc(sizeof *stream);
        CHECK(ad_stream_init(stream, &cfg, net) == AD_OK, "stream init");
        /* one push; then random chunks; then a one-error buffer */
        for (int mode = 0; mode < 3; mode++) {
            ad_stream_reset(stream);
            size_t at = 0, n_got = 0;
            while (at < n) {
                size_t chunk = mode == 1 ? 1 + rng() % 3000 : n - at;
                chunk = chunk < n - at ? chunk : n - at;
                const size_t room = mode == 2 ? 1 : k_one + 1 - n_got;
                size_t took = 0, wrote = 0;
                CHECK(ad_stream_push_f32(stream, x + at, chunk, got + n_got, room, &took,
                                         &wrote) == AD_OK, "stream push");
                at += took;
                n_got += wrote;
                if (took == 0 && wrote == 0)
                    break;
            }
            CHECK(at == n && n_got == k_one &&
                      memcmp(got, want, k_one * sizeof(double)) == 0,
                  "stream mode %d: %zu of %zu samples, %zu of %zu errors, or other bits", mode,
                  at, n, n_got, k_one);
        }
        /* the heads' feature rows (random chunks, 1-3 rows of room): column 0 the errors
         * above, then the per-band errors, the first frame and its square, bit for bit the
         * definition in edge_ad.h applied to the network's reconstructions */
        const size_t width = AD_STREAM_ROW;
        float *recon = malloc(k_one * AD_VECTOR_SIZE * sizeof(float));
        double *rows = malloc((k_one + 1) * width * sizeof(double));
        CHECK(ad_dense_run_f32(net, chunked, k_one, NULL, recon, NULL) == AD_OK, "dense recon");
        ad_stream_reset(stream);
        size_t r_at = 0, n_rows = 0;
        while (r_at < n) {
            size_t chunk = 1 + rng() % 3000;
            chunk = chunk < n - r_at ? chunk : n - r_at;
            size_t room = 1 + rng() % 3;
            room = room < k_one + 1 - n_rows ? room : k_one + 1 - n_rows;
            size_t took = 0, wrote = 0;
            CHECK(ad_stream_push_rows_f32(stream, x + r_at, chunk, rows + n_rows * width, room,
                                          &took, &wrote) == AD_OK, "stream rows push");
            r_at += took;
            n_rows += wrote;
            if (took == 0 && wrote == 0)
                break;
        }
        CHECK(r_at == n && n_rows == k_one, "stream rows: %zu of %zu samples, %zu of %zu rows",
              r_at, n, n_rows, k_one);
        for (size_t v = 0; v < k_one; v++) {
            const double *row = rows + v * width;
            const float *xv = chunked + v * AD_VECTOR_SIZE, *rv = recon + v * AD_VECTOR_SIZE;
            int same = memcmp(&row[0], &want[v], sizeof(double)) == 0;
            for (int m = 0; m < AD_N_MELS; m++) {
                double band = 0.0;
                for (int f = 0; f < AD_CONTEXT; f++) {
                    const double d = (double)rv[f * AD_N_MELS + m] - (double)xv[f * AD_N_MELS + m];
                    band = f == 0 ? d * d : band + d * d;
                }
                same &= row[1 + m] == band && row[1 + AD_N_MELS + m] == (double)xv[m] &&
                        row[1 + 2 * AD_N_MELS + m] == (double)xv[m] * (double)xv[m];
            }
            CHECK(same, "stream row %zu differs from its definition", v);
        }
        free(rows);
        free(recon);
        char path[4096];
        snprintf(path, sizeof path, "%s/stream_err.f64", argv[3]);
        FILE *f = fopen(path, "wb");
        if (!f || fwrite(want, sizeof(double), k_one, f) != k_one) {
            fprintf(stderr, "golden_driver: cannot write %s\n", path);
            return 2;
        }
        fclose(f);
        layers[1].n_out = 16; /* a network that does not map 640 to 640 */
        ad_dense *narrow = malloc(sizeof *narrow);
        void *narrow_mem = malloc(ad_dense_mem_bytes(&dcfg));
        CHECK(ad_dense_init(narrow, &dcfg, AD_DENSE_SCALAR, narrow_mem,
                            ad_dense_mem_bytes(&dcfg)) == AD_OK, "narrow init");
        CHECK(ad_stream_init(stream, &cfg, narrow) == AD_ERR_DENSE_SHAPE,
              "a 640 -> 16 network was accepted by the stream");
        size_t took = 1, wrote = 1;
        CHECK(ad_stream_push_f32(stream, x, n, got, 1, &took, &wrote) == AD_ERR_STATE,
              "a refused stream was pushed");
        free(narrow_mem);
        free(narrow);
        free(stream);
        free(got);
        free(want);
        free(net);
        free(mem);
    }

    /* init refuses bad configurations (and leaves a state every call refuses) */
    ad_frontend *bad = malloc(sizeof *bad);
    ad_config c = cfg;
    c.hop_samples = 0;
    CHECK(ad_frontend_init(bad, &c) == AD_ERR_HOP, "hop 0 accepted");
    CHECK(ad_clip_n_frames(bad, 1000) == 0, "failed state gives frames");
    CHECK(ad_frontend_push_f32(bad, x, n, one, cap, &used, &k_i16) == AD_ERR_STATE,
          "failed state accepts push");
    c = cfg;
    c.hop_samples = AD_N_FFT + 1;
    CHECK(ad_frontend_init(bad, &c) == AD_ERR_HOP, "hop > n_fft accepted");
    c = cfg;
    c.log_floor = 0.0f;
    CHECK(ad_frontend_init(bad, &c) == AD_ERR_FLOOR, "floor 0 accepted");
    c.log_floor = NAN;
    CHECK(ad_frontend_init(bad, &c) == AD_ERR_FLOOR, "floor NaN accepted");
    c = cfg;
    c.window = NULL;
    CHECK(ad_frontend_init(bad, &c) == AD_ERR_NULL, "NULL window accepted");
    window[7] = INFINITY;
    c = cfg;
    CHECK(ad_frontend_init(bad, &c) == AD_ERR_WINDOW, "inf in window accepted");
    window[7] = 0.5f;
    const int32_t last_start = starts[AD_N_MELS - 1], first_offset = starts[2 * AD_N_MELS];
    starts[AD_N_MELS - 1] = AD_N_BINS - starts[2 * AD_N_MELS - 1] + 1; /* one bin past */
    CHECK(ad_frontend_init(bad, &c) == AD_ERR_MEL_TABLE, "band past the spectrum accepted");
    starts[AD_N_MELS - 1] = last_start;
    starts[2 * AD_N_MELS] = n_weights - starts[AD_N_MELS] + 1; /* offsets[0]: one past */
    CHECK(ad_frontend_init(bad, &c) == AD_ERR_MEL_TABLE, "weights past the table accepted");
    starts[2 * AD_N_MELS] = first_offset;
    CHECK(ad_frontend_init(bad, &c) == AD_OK, "the restored config was refused");
    c.n_mel_weights = AD_MEL_WEIGHTS_MAX + 1;
    CHECK(ad_frontend_init(bad, &c) == AD_ERR_MEL_TABLE, "too many weights accepted");
    CHECK(ad_frontend_init(NULL, &cfg) == AD_ERR_NULL, "NULL state accepted");

    free(bad);
    free(pcm);
    free(chunked);
    free(one);
    free(vectors);
    free(frames);
    free(st);
    free(weights);
    free(starts);
    free(window);
    free(x);
    free(cfg_raw);
    if (failures) {
        fprintf(stderr, "golden_driver: %d checks failed\n", failures);
        return 1;
    }
    printf("golden_driver: ok: %zu samples, %zu frames, %zu vectors, %zu streamed\n", n,
           n_frames, n_vectors, k_one);
    return 0;
}
