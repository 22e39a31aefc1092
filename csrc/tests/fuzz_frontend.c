/* fuzz_frontend.c: libFuzzer target for the front end (built by scripts/check-c.sh fuzz
 * with -fsanitize=fuzzer,address,undefined).
 *
 * One input picks: int16 or float samples (raw bytes, so NaN, inf and huge floats occur),
 * a hop, a log floor (also invalid ones), a valid or an arbitrary mel table, a stream
 * length (the bytes are cycled to reach it), chunk sizes and output capacities. Checked:
 * init accepts exactly the valid configurations; push never reads or writes out of bounds
 * (output buffers are allocated to the exact capacity), never consumes more than given,
 * writes what vectors_for predicts when there is room, stops and resumes without loss
 * when there is not; every output value is finite; the clip path refuses a short buffer. */
#include "edge_ad.h"

#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define REQUIRE(cond)                                                                       \
    do {                                                                                    \
        if (!(cond))                                                                        \
            abort();                                                                        \
    } while (0)

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

/* xorshift32 for the table contents and chunking, seeded from the input */
static uint32_t next(uint32_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 17;
    *s ^= *s << 5;
    return *s;
}

static ad_frontend state;

static void check_finite(const float *v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        REQUIRE(isfinite(v[i]));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    reader r = {data, size, 0};
    const uint32_t flags = take(&r, 1);
    const int use_i16 = flags & 1, arbitrary_table = flags & 2, nan_window = flags & 4;
    const int32_t hop = (int32_t)(take(&r, 2) % (AD_N_FFT + 2)); /* 0 and 1025 invalid */
    const float floors[] = {1e-10f, 0.0f, -1.0f, NAN, INFINITY, FLT_MIN, FLT_MIN / 2, 1e30f};
    const float log_floor = floors[(flags >> 3) % 8];
    uint32_t seed = take(&r, 4) | 1u;
    const size_t n_samples = take(&r, 2) % 12000;

    /* tables */
    static float window[AD_N_FFT];
    for (int i = 0; i < AD_N_FFT; i++)
        window[i] = 0.54f - 0.46f * cosf(2.0f * 3.14159265f * (float)i / AD_N_FFT);
    if (nan_window)
        window[next(&seed) % AD_N_FFT] = NAN;
    int32_t starts[AD_N_MELS], lengths[AD_N_MELS], offsets[AD_N_MELS];
    static float weights[AD_MEL_WEIGHTS_MAX + 8];
    int32_t n_weights = (int32_t)(next(&seed) % (AD_MEL_WEIGHTS_MAX + 3));
    int valid_table = n_weights <= AD_MEL_WEIGHTS_MAX;
    for (int i = 0; i < n_weights && i < AD_MEL_WEIGHTS_MAX + 8; i++)
        weights[i] = (float)(next(&seed) % 1000) * 1e-3f;
    int32_t total_length = 0;
    for (int m = 0; m < AD_N_MELS; m++) {
        if (arbitrary_table) {
            starts[m] = (int32_t)(next(&seed) % 530) - 4;
            lengths[m] = (int32_t)(next(&seed) % 40) - 2;
            offsets[m] = (int32_t)(next(&seed) % (uint32_t)(n_weights + 8)) - 2;
            if (starts[m] < 0 || lengths[m] < 0 || offsets[m] < 0 ||
                starts[m] + lengths[m] > AD_N_BINS || offsets[m] + lengths[m] > n_weights)
                valid_table = 0;
        } else {
            const int32_t room = n_weights < AD_MEL_WEIGHTS_MAX ? n_weights : AD_MEL_WEIGHTS_MAX;
            lengths[m] = room > 0 ? (int32_t)(next(&seed) % (uint32_t)(room < 30 ? room + 1 : 31)) : 0;
            starts[m] = (int32_t)(next(&seed) % (uint32_t)(AD_N_BINS - lengths[m] + 1));
            offsets[m] = (int32_t)(next(&seed) % (uint32_t)(room - lengths[m] + 1));
        }
        total_length += lengths[m] > 0 ? lengths[m] : 0;
    }
    if (total_length > AD_MEL_WEIGHTS_MAX)
        valid_table = 0;
    const ad_config cfg = {hop, log_floor, window, starts, lengths, offsets, weights, n_weights};
    const int valid = hop >= 1 && hop <= AD_N_FFT && isfinite(log_floor) &&
                      log_floor >= FLT_MIN && !nan_window && valid_table;
    const ad_status status = ad_frontend_init(&state, &cfg);
    REQUIRE((status == AD_OK) == valid);
    if (status != AD_OK) {
        size_t used = 1, got = 1;
        float one;
        REQUIRE(ad_frontend_push_f32(&state, &one, 1, NULL, 0, &used, &got) == AD_ERR_STATE);
        REQUIRE(ad_clip_n_frames(&state, 100000) == 0);
        return 0;
    }

    /* the sample stream: the remaining bytes, cycled to n_samples */
    const uint8_t *raw = data + r.pos;
    const size_t raw_size = size - r.pos;
    const size_t width = use_i16 ? sizeof(int16_t) : sizeof(float);
    const size_t n = raw_size >= width ? n_samples : 0;
    uint8_t *stream = malloc(n * width + 1);
    for (size_t i = 0; i < n * width; i++)
        stream[i] = raw[i % (raw_size - raw_size % width)];

    /* push in chunks with random capacities */
    size_t done = 0;
    while (done < n) {
        size_t chunk = 1 + next(&seed) % (next(&seed) % 2 ? 64 : 3000);
        if (chunk > n - done)
            chunk = n - done;
        const size_t expect = ad_frontend_vectors_for(&state, chunk);
        const size_t cap = next(&seed) % 3 ? expect : next(&seed) % (expect + 2);
        float *out = malloc(cap * AD_VECTOR_SIZE * sizeof(float) + 1);
        size_t used = 0, got = 0;
        const ad_status s = use_i16
            ? ad_frontend_push_i16(&state, (const int16_t *)(stream + done * width), chunk,
                                   cap ? out : NULL, cap, &used, &got)
            : ad_frontend_push_f32(&state, (const float *)(stream + done * width), chunk,
                                   cap ? out : NULL, cap, &used, &got);
        REQUIRE(s == AD_OK);
        REQUIRE(used <= chunk && got <= cap);
        if (cap >= expect)
            REQUIRE(used == chunk && got == expect);
        else
            REQUIRE(got == cap); /* stopped only because the buffer filled up */
        check_finite(out, got * AD_VECTOR_SIZE);
        free(out);
        done += used;
        if (cap == 0 && used == 0)
            continue; /* the next round draws another capacity */
    }

    /* whole clip on the same samples as floats */
    float *x = malloc(n * sizeof(float) + 1);
    for (size_t i = 0; i < n; i++) {
        if (use_i16) {
            int16_t v;
            memcpy(&v, stream + i * width, sizeof v);
            x[i] = (float)v / 32768.0f;
        } else {
            memcpy(&x[i], stream + i * width, sizeof(float));
        }
    }
    const size_t n_frames = ad_clip_n_frames(&state, n);
    REQUIRE(n_frames >= 1);
    float *frames = malloc(n_frames * AD_N_MELS * sizeof(float));
    size_t got_frames = 0;
    REQUIRE(ad_frontend_clip_frames_f32(&state, x, n, frames, n_frames - 1, &got_frames,
                                        NULL) == AD_ERR_CAPACITY);
    size_t bad_frames = 0;
    REQUIRE(ad_frontend_clip_frames_f32(&state, x, n, frames, n_frames, &got_frames,
                                        &bad_frames) == AD_OK);
    REQUIRE(got_frames == n_frames && bad_frames <= n_frames);
    /* a non-finite sample that some frame reads always shows: the window is > 0 and every
     * FFT bin depends on every sample (needs one band of at least one bin) */
    const size_t pad = AD_N_FFT - n % AD_N_FFT, front = pad / 2;
    const size_t read_end = (n_frames - 1) * (size_t)hop + AD_N_FFT - front;
    int any_nonfinite = 0, any_band = 0;
    for (size_t i = 0; i < n && i < read_end; i++)
        any_nonfinite |= !isfinite(x[i]);
    for (int m = 0; m < AD_N_MELS; m++)
        any_band |= lengths[m] > 0;
    if (any_nonfinite && any_band)
        REQUIRE(bad_frames > 0);
    check_finite(frames, n_frames * AD_N_MELS);
    const size_t n_vectors = n_frames >= AD_CONTEXT ? n_frames - AD_CONTEXT + 1 : 0;
    float *vectors = malloc(n_vectors * AD_VECTOR_SIZE * sizeof(float) + 1);
    REQUIRE(ad_context_vectors(frames, n_frames, vectors, n_vectors) == n_vectors);
    free(vectors);
    free(frames);
    free(x);
    free(stream);
    return 0;
}
