/* ad_context.c: stage 6, the context of AD_CONTEXT consecutive frames.
 *
 * The ring keeps its frames in order (oldest first) by moving them down one frame on each
 * push: (AD_CONTEXT - 1) * AD_N_MELS floats, far cheaper than a frame's FFT, and a vector
 * is then one contiguous copy. */
#include "edge_ad.h"

#include <string.h>

void ad_context_reset(ad_context_ring *ring)
{
    memset(ring->frames, 0, sizeof ring->frames);
    ring->n_frames = 0;
}

int ad_context_push(ad_context_ring *ring, const float *frame)
{
    memmove(ring->frames, ring->frames + AD_N_MELS,
            (AD_CONTEXT - 1) * AD_N_MELS * sizeof(float));
    memcpy(ring->frames + (AD_CONTEXT - 1) * AD_N_MELS, frame, AD_N_MELS * sizeof(float));
    if (ring->n_frames < AD_CONTEXT)
        ring->n_frames++;
    return ring->n_frames == AD_CONTEXT;
}

void ad_context_read(const ad_context_ring *ring, float *out)
{
    memcpy(out, ring->frames, AD_VECTOR_SIZE * sizeof(float));
}

size_t ad_context_vectors(const float *frames, size_t n_frames, float *out,
                          size_t out_capacity)
{
    size_t n = n_frames >= AD_CONTEXT ? n_frames - AD_CONTEXT + 1 : 0;
    if (n > out_capacity)
        n = out_capacity;
    /* consecutive frames are contiguous, so vector i is frames[i .. i + AD_CONTEXT) as is */
    for (size_t i = 0; i < n; i++)
        memcpy(out + i * AD_VECTOR_SIZE, frames + i * AD_N_MELS,
               AD_VECTOR_SIZE * sizeof(float));
    return n;
}
