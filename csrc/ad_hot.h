/* ad_hot.h (internal): how the per-frame loops are compiled.
 *
 * AD_HOT: on x86-64 Linux with GCC, each hot stage is compiled for the SSE2 baseline (so
 * the wheel runs on any x86-64), for AVX2 (twice as wide) and, with GCC 12 or newer (the
 * first to take "arch=" in target_clones), for x86-64-v4 (AVX-512); the loader picks one
 * per CPU (function multiversioning through an ifunc). The x86-64-v4 clone may use FMA
 * instructions, so the build must pass -ffp-contract=off (csrc/build_frontend.py and
 * scripts/check-c.sh do): then no clone fuses a multiply and an add, and every machine,
 * x86 or ARM, computes the same bits (the cross-architecture test checks). */
#ifndef AD_HOT_H
#define AD_HOT_H

#include <limits.h> /* on glibc this defines __GLIBC__: the clones need its ifunc */

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && defined(__GLIBC__) && \
    !defined(AD_NO_CLONES)
#if __GNUC__ >= 12
#define AD_HOT __attribute__((target_clones("arch=x86-64-v4", "avx2", "default")))
#else
#define AD_HOT __attribute__((target_clones("avx2", "default")))
#endif
#else
#define AD_HOT
#endif

#endif /* AD_HOT_H */
