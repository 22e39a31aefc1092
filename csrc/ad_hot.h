/* ad_hot.h (internal): how the per-frame loops are compiled.
 *
 * AD_HOT: on x86-64 Linux with GCC, each hot stage is compiled twice, for the SSE2 baseline
 * (so the wheel runs on any x86-64) and for AVX2 (twice as wide), and the loader picks one
 * per CPU (function multiversioning through an ifunc). No FMA in either: every machine,
 * x86 or ARM, computes the same bits (the cross-architecture test checks). */
#ifndef AD_HOT_H
#define AD_HOT_H

#include <limits.h> /* on glibc this defines __GLIBC__: the clones need its ifunc */

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && defined(__GLIBC__) && \
    !defined(AD_NO_CLONES)
#define AD_HOT __attribute__((target_clones("arch=x86-64-v4", "avx2", "default")))
#else
#define AD_HOT
#endif

#endif /* AD_HOT_H */
