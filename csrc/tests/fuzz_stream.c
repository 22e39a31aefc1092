/* fuzz_stream.c: libFuzzer target for the streaming detector path, ad_stream (built by
 * scripts/check-c.sh fuzz OUT SECONDS stream, with -fsanitize=fuzzer,address,undefined).
 *
 * One input draws: a hop; a 640 -> W -> 640 int8 network (W 1..40, weights, biases, zero
 * points, multipliers and shifts from a seeded generator, so some networks are refused by
 * init's range check); int16 or float samples (raw bytes, so NaN, inf and huge floats
 * occur), cycled to a stream length; chunk sizes and output capacities of 0..3 vectors.
 * Two streams on the same network take the same samples in different chunks: one gives
 * errors (ad_stream_push_*), one feature rows (ad_stream_push_rows_*). Checked: output
 * buffers are allocated to the exact capacity (ASan sees any overrun); a push never
 * consumes more than given nor writes more than room; both streams consume everything and
 * complete the same number of vectors; column 0 of every row is the error bit for bit;
 * a reset stream starts afresh; a stream on a refused network or a 640 -> 16 network is
 * refused and pushes nothing. */
#include "edge_ad.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define REQUIRE(cond)                                                                       \
    do {                                                                                    \
        if (!(cond))                                                                        \
            abort();                                                                        \
    } while (0)

#define MAX_HIDDEN 40
#define MAX_VECTORS 64

static uint32_t next(uint32_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 17;
    *s ^= *s << 5;
    return *s;
}

static uint32_t take(const uint8_t *data, size_t size, size_t *pos, int n_bytes)
{
    uint32_t v = 0;
    for (int i = 0; i < n_bytes; i++)
        v = (v << 8) | (*pos < size ? data[(*pos)++] : 0u);
    return v;
}

/* Push all n samples through st in chunks from *seed, room 0..3 vectors per call, into a
 * buffer of exactly that many; keep the first MAX_VECTORS outputs (width AD_STREAM_ROW for
 * rows, else 1) in got; return how many vectors were completed in all. */
static size_t drain(ad_stream *st, const void *samples, int use_i16, size_t n, int rows,
                    uint32_t *seed, double *got)
{
    const size_t w = rows ? AD_STREAM_ROW : 1;
    size_t at = 0, n_got = 0, total = 0, stuck = 0;
    while (at < n) {
        size_t chunk = 1 + next(seed) % 3000;
        chunk = chunk < n - at ? chunk : n - at;
        const size_t room = next(seed) % 4;
        double *buf = malloc((room ? room : 1) * w * sizeof(double));
        REQUIRE(buf);
        size_t took = 7777, wrote = 7777;
        ad_status s;
        if (use_i16) {
            const int16_t *x = (const int16_t *)samples + at;
            s = rows ? ad_stream_push_rows_i16(st, x, chunk, room ? buf : NULL, room, &took, &wrote)
                     : ad_stream_push_i16(st, x, chunk, room ? buf : NULL, room, &took, &wrote);
        } else {
            const float *x = (const float *)samples + at;
            s = rows ? ad_stream_push_rows_f32(st, x, chunk, room ? buf : NULL, room, &took, &wrote)
                     : ad_stream_push_f32(st, x, chunk, room ? buf : NULL, room, &took, &wrote);
        }
        REQUIRE(s == AD_OK && took <= chunk && wrote <= room);
        for (size_t i = 0; i < wrote && n_got < MAX_VECTORS; i++, n_got++)
            memcpy(got + n_got * w, buf + i * w, w * sizeof(double));
        total += wrote;
        free(buf);
        at += took;
        /* no room and a vector due: the stream must stop; give it room next time */
        stuck = (took == 0 && wrote == 0) ? stuck + 1 : 0;
        REQUIRE(stuck < 64);
    }
    return total;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    size_t pos = 0;
    const uint32_t flags = take(data, size, &pos, 1);
    const int use_i16 = flags & 1;
    const int32_t hop = 1 + (int32_t)(take(data, size, &pos, 2) % AD_N_FFT);
    uint32_t seed = take(data, size, &pos, 4) | 1u;
    const size_t n_samples = take(data, size, &pos, 2) % 9000;
    const int32_t hidden = 1 + (int32_t)(next(&seed) % MAX_HIDDEN);

    /* a valid front end: Hamming window, band m over 4 bins from 2 + 3 m */
    static float window[AD_N_FFT], weights[4 * AD_N_MELS];
    int32_t starts[AD_N_MELS], lengths[AD_N_MELS], offsets[AD_N_MELS];
    for (int i = 0; i < AD_N_FFT; i++)
        window[i] = 0.54f - 0.46f * cosf(2.0f * 3.14159265f * (float)i / AD_N_FFT);
    for (int m = 0; m < AD_N_MELS; m++) {
        starts[m] = 2 + 3 * m;
        lengths[m] = 4;
        offsets[m] = 4 * m;
        for (int j = 0; j < 4; j++)
            weights[4 * m + j] = 0.25f;
    }
    const ad_config cfg = {hop, 1e-10f, window, starts, lengths, offsets, weights, 4 * AD_N_MELS};

    /* the network: 640 -> hidden (ReLU) -> 640 */
    static int8_t w1[AD_VECTOR_SIZE * MAX_HIDDEN], w2[AD_VECTOR_SIZE * MAX_HIDDEN];
    static int32_t b1[MAX_HIDDEN], m1[MAX_HIDDEN], s1[MAX_HIDDEN];
    static int32_t b2[AD_VECTOR_SIZE], m2[AD_VECTOR_SIZE], s2[AD_VECTOR_SIZE];
    const int8_t wmax = (int8_t)(1 + next(&seed) % 127);
    for (int i = 0; i < AD_VECTOR_SIZE * hidden; i++) {
        w1[i] = (int8_t)((int32_t)(next(&seed) % (2u * (uint32_t)wmax + 1)) - wmax);
        w2[i] = (int8_t)((int32_t)(next(&seed) % (2u * (uint32_t)wmax + 1)) - wmax);
    }
    const int32_t bias_span = (int32_t)(next(&seed) % 200000);
    for (int o = 0; o < AD_VECTOR_SIZE; o++) {
        if (o < hidden) {
            b1[o] = (int32_t)(next(&seed) % (2u * (uint32_t)bias_span + 1)) - bias_span;
            m1[o] = (int32_t)((1u << 30) + next(&seed) % (1u << 30));
            s1[o] = -(int32_t)(next(&seed) % 20);
        }
        b2[o] = (int32_t)(next(&seed) % (2u * (uint32_t)bias_span + 1)) - bias_span;
        m2[o] = (int32_t)((1u << 30) + next(&seed) % (1u << 30));
        s2[o] = -(int32_t)(next(&seed) % 20);
    }
    const int32_t zp0 = (int32_t)(next(&seed) % 256) - 128, zp2 = (int32_t)(next(&seed) % 256) - 128;
    ad_dense_layer_config layers[2] = {
        {AD_VECTOR_SIZE, hidden, w1, b1, m1, s1, zp0, -128, 1},
        {hidden, AD_VECTOR_SIZE, w2, b2, m2, s2, -128, zp2, 0}};
    const ad_dense_config dcfg = {2, layers, (int32_t)(flags >> 1 & 1), 0.05f, 0.03f};
    const size_t bytes = ad_dense_mem_bytes(&dcfg);
    REQUIRE(bytes > 0);
    void *mem = malloc(bytes);
    ad_dense *net = malloc(sizeof *net);
    ad_stream *a = malloc(sizeof *a), *b = malloc(sizeof *b);
    REQUIRE(mem && net && a && b);
    const ad_status ns = ad_dense_init(net, &dcfg, AD_DENSE_AUTO, mem, bytes);
    REQUIRE(ns == AD_OK || ns == AD_ERR_DENSE_RANGE);
    if (ns != AD_OK) {   /* a refused network (left zeroed) refuses the stream too */
        size_t took = 1, wrote = 1;
        double out;
        int16_t one = 0;
        REQUIRE(ad_stream_init(a, &cfg, net) == AD_ERR_DENSE_SHAPE);
        REQUIRE(ad_stream_push_rows_i16(a, &one, 1, &out, 1, &took, &wrote) == AD_ERR_STATE);
        free(b), free(a), free(net), free(mem);
        return 0;
    }
    REQUIRE(ad_stream_init(a, &cfg, net) == AD_OK && ad_stream_init(b, &cfg, net) == AD_OK);

    /* the samples: the remaining bytes, cycled to n_samples */
    const size_t width = use_i16 ? sizeof(int16_t) : sizeof(float);
    const size_t raw = size > pos ? (size - pos) / width * width : 0;
    void *samples = malloc(n_samples * width + 1);
    REQUIRE(samples);
    for (size_t i = 0; i < n_samples * width; i++)
        ((uint8_t *)samples)[i] = raw ? data[pos + i % raw] : (uint8_t)i;

    double *errors = malloc(MAX_VECTORS * sizeof(double));
    double *rows = malloc(MAX_VECTORS * AD_STREAM_ROW * sizeof(double));
    REQUIRE(errors && rows);
    for (int round = 0; round < 2; round++) {   /* the second after a reset: the same */
        uint32_t sa = seed ^ 0x9e3779b9u, sb = seed ^ 0x7f4a7c15u;
        const size_t want = ad_stream_vectors_for(a, n_samples);
        const size_t ne = drain(a, samples, use_i16, n_samples, 0, &sa, errors);
        const size_t nr = drain(b, samples, use_i16, n_samples, 1, &sb, rows);
        REQUIRE(ne == want && nr == want);
        for (size_t i = 0; i < ne && i < MAX_VECTORS; i++)
            REQUIRE(memcmp(&errors[i], &rows[i * AD_STREAM_ROW], sizeof(double)) == 0);
        ad_stream_reset(a);
        ad_stream_reset(b);
    }

    /* a network that does not map 640 to 640 is refused, and the refused stream is inert */
    layers[1].n_out = 16;
    const size_t nbytes = ad_dense_mem_bytes(&dcfg);
    void *nmem = malloc(nbytes);
    ad_dense *narrow = malloc(sizeof *narrow);
    REQUIRE(nmem && narrow);
    if (ad_dense_init(narrow, &dcfg, AD_DENSE_SCALAR, nmem, nbytes) == AD_OK) {
        REQUIRE(ad_stream_init(a, &cfg, narrow) == AD_ERR_DENSE_SHAPE);
        size_t took = 1, wrote = 1;
        REQUIRE(ad_stream_push_rows_f32(a, (const float *)rows, 1, rows, 1, &took, &wrote) ==
                AD_ERR_STATE);
    }
    free(narrow), free(nmem);
    free(rows), free(errors), free(samples);
    free(b), free(a), free(net), free(mem);
    return 0;
}
