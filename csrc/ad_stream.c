/* ad_stream.c: the detector's streaming path in one call per block: front end, context
 * ring, int8 network, squared error (or the heads' feature rows). No Python (or any caller
 * code) per vector: a block of samples goes in, the errors (rows) of the vectors it
 * completes come out. The front end fills
 * a batch of AD_DENSE_BATCH vectors, the network consumes it, and again until the block
 * is used up or the caller's error buffer is full. */
#include "edge_ad.h"

#include <string.h>

ad_status ad_stream_init(ad_stream *st, const ad_config *cfg, ad_dense *net)
{
    if (!st)
        return AD_ERR_NULL;
    st->net = NULL;
    if (!net)
        return AD_ERR_NULL;
    const ad_status s = ad_frontend_init(&st->frontend, cfg);
    if (s != AD_OK)
        return s;
    if (net->n_in != AD_VECTOR_SIZE || net->n_out != AD_VECTOR_SIZE) {
        st->frontend.hop_samples = 0; /* unusable, as after a failed init */
        return AD_ERR_DENSE_SHAPE;
    }
    st->net = net;
    return AD_OK;
}

void ad_stream_reset(ad_stream *st)
{
    if (st)
        ad_frontend_reset(&st->frontend);
}

size_t ad_stream_vectors_for(const ad_stream *st, size_t n_samples)
{
    return st && st->net ? ad_frontend_vectors_for(&st->frontend, n_samples) : 0;
}

#define AD_STREAM_BODY(PUSH, EMIT, STRIDE, OUT, CAPACITY, N_OUT)                            \
    do {                                                                                    \
        if (!st || (!samples && n_samples > 0) || (!(OUT) && (CAPACITY) > 0) ||             \
            !n_consumed || !(N_OUT))                                                        \
            return AD_ERR_NULL;                                                             \
        if (!st->net)                                                                       \
            return AD_ERR_STATE;                                                            \
        size_t used = 0, written = 0;                                                       \
        for (;;) {                                                                          \
            size_t room = (CAPACITY) - written, took = 0, got = 0;                          \
            room = room < AD_DENSE_BATCH ? room : AD_DENSE_BATCH;                           \
            ad_status s = PUSH(&st->frontend, samples + used, n_samples - used,             \
                               st->vectors, room, &took, &got);                             \
            if (s != AD_OK)                                                                 \
                return s;                                                                   \
            used += took;                                                                   \
            if (got > 0) {                                                                  \
                s = EMIT(st, got, (OUT) + written * (STRIDE));                              \
                if (s != AD_OK)                                                             \
                    return s;                                                               \
                written += got;                                                             \
            }                                                                               \
            /* done: all samples taken, or the next vector has no room */                   \
            if (used == n_samples || got < room || room == 0)                               \
                break;                                                                      \
        }                                                                                   \
        *n_consumed = used;                                                                 \
        *(N_OUT) = written;                                                                 \
        return AD_OK;                                                                       \
    } while (0)

static ad_status emit_errors(ad_stream *st, size_t n, double *errors)
{
    return ad_dense_run_f32(st->net, st->vectors, n, NULL, NULL, errors);
}

/* One feature row (AD_STREAM_ROW, see edge_ad.h) per vector of the batch. */
static ad_status emit_rows(ad_stream *st, size_t n, double *rows)
{
    const ad_status s = ad_dense_run_f32(st->net, st->vectors, n, NULL, st->recon, NULL);
    if (s != AD_OK)
        return s;
    for (size_t b = 0; b < n; b++) {
        const float *x = st->vectors + b * AD_VECTOR_SIZE, *r = st->recon + b * AD_VECTOR_SIZE;
        double *row = rows + b * AD_STREAM_ROW, *band = row + 1, *mel = band + AD_N_MELS,
               *mel2 = mel + AD_N_MELS;
        row[0] = ad_squared_error(r, x, AD_VECTOR_SIZE);
        for (int m = 0; m < AD_N_MELS; m++) {
            const double d = (double)r[m] - (double)x[m];
            band[m] = d * d;
            mel[m] = (double)x[m];
            mel2[m] = mel[m] * mel[m];
        }
        for (int f = 1; f < AD_CONTEXT; f++)
            for (int m = 0; m < AD_N_MELS; m++) {
                const double d = (double)r[f * AD_N_MELS + m] - (double)x[f * AD_N_MELS + m];
                band[m] += d * d;
            }
    }
    return AD_OK;
}

ad_status ad_stream_push_i16(ad_stream *st, const int16_t *samples, size_t n_samples,
                             double *errors, size_t errors_capacity, size_t *n_consumed,
                             size_t *n_errors)
{
    AD_STREAM_BODY(ad_frontend_push_i16, emit_errors, 1, errors, errors_capacity, n_errors);
}

ad_status ad_stream_push_f32(ad_stream *st, const float *samples, size_t n_samples,
                             double *errors, size_t errors_capacity, size_t *n_consumed,
                             size_t *n_errors)
{
    AD_STREAM_BODY(ad_frontend_push_f32, emit_errors, 1, errors, errors_capacity, n_errors);
}

ad_status ad_stream_push_rows_i16(ad_stream *st, const int16_t *samples, size_t n_samples,
                                  double *rows, size_t rows_capacity, size_t *n_consumed,
                                  size_t *n_rows)
{
    AD_STREAM_BODY(ad_frontend_push_i16, emit_rows, AD_STREAM_ROW, rows, rows_capacity, n_rows);
}

ad_status ad_stream_push_rows_f32(ad_stream *st, const float *samples, size_t n_samples,
                                  double *rows, size_t rows_capacity, size_t *n_consumed,
                                  size_t *n_rows)
{
    AD_STREAM_BODY(ad_frontend_push_f32, emit_rows, AD_STREAM_ROW, rows, rows_capacity, n_rows);
}
