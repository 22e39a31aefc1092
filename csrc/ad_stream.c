/* ad_stream.c: the detector's streaming path in one call per block: front end, context
 * ring, int8 network, squared error. No Python (or any caller code) per vector: a block of
 * samples goes in, the errors of the vectors it completes come out. The front end fills
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

#define AD_STREAM_BODY(PUSH)                                                                \
    do {                                                                                    \
        if (!st || (!samples && n_samples > 0) || (!errors && errors_capacity > 0) ||       \
            !n_consumed || !n_errors)                                                       \
            return AD_ERR_NULL;                                                             \
        if (!st->net)                                                                       \
            return AD_ERR_STATE;                                                            \
        size_t used = 0, written = 0;                                                       \
        for (;;) {                                                                          \
            size_t room = errors_capacity - written, took = 0, got = 0;                     \
            room = room < AD_DENSE_BATCH ? room : AD_DENSE_BATCH;                           \
            ad_status s = PUSH(&st->frontend, samples + used, n_samples - used,             \
                               st->vectors, room, &took, &got);                             \
            if (s != AD_OK)                                                                 \
                return s;                                                                   \
            used += took;                                                                   \
            if (got > 0) {                                                                  \
                s = ad_dense_run_f32(st->net, st->vectors, got, NULL, NULL,                 \
                                     errors + written);                                     \
                if (s != AD_OK)                                                             \
                    return s;                                                               \
                written += got;                                                             \
            }                                                                               \
            /* done: all samples taken, or the next vector has no room */                   \
            if (used == n_samples || got < room || room == 0)                               \
                break;                                                                      \
        }                                                                                   \
        *n_consumed = used;                                                                 \
        *n_errors = written;                                                                \
        return AD_OK;                                                                       \
    } while (0)

ad_status ad_stream_push_i16(ad_stream *st, const int16_t *samples, size_t n_samples,
                             double *errors, size_t errors_capacity, size_t *n_consumed,
                             size_t *n_errors)
{
    AD_STREAM_BODY(ad_frontend_push_i16);
}

ad_status ad_stream_push_f32(ad_stream *st, const float *samples, size_t n_samples,
                             double *errors, size_t errors_capacity, size_t *n_consumed,
                             size_t *n_errors)
{
    AD_STREAM_BODY(ad_frontend_push_f32);
}
