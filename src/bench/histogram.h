/* histogram.h - a log-linear histogram of latencies (HdrHistogram's layout).
 *
 * Values (nanoseconds, or any unsigned unit) fall into buckets whose width is
 * a fixed fraction of the value: with precision_bits p, every value from
 * `lowest` up to `highest` is kept within a relative error of 2^-p (1/64 for
 * p = 6). Each power of two is split into 2^p linear sub-buckets, so memory is
 * fixed at creation (about 2^p counters per power of two in the range: 15 KiB
 * for 1 us..60 s at 1/64) and recording is a few shifts and one increment.
 *
 * min, max, count and the sum (for the mean) are kept exactly; percentiles
 * come from the buckets and are reported as the highest value of their
 * bucket, clamped to [min, max]. Values above `highest` are counted at
 * `highest` (and in `clamped`); values below `lowest` keep an absolute
 * precision of one bucket unit.
 */
#ifndef OMS_BENCH_HISTOGRAM_H
#define OMS_BENCH_HISTOGRAM_H

#include <stddef.h>
#include <stdint.h>

typedef struct bench_hist {
    uint64_t lowest;    /* smallest value kept at full relative precision */
    uint64_t highest;   /* largest value kept; larger ones are clamped to it */
    int precision_bits; /* relative bucket width <= 2^-precision_bits */
    int unit_shift;     /* log2 of the width of the narrowest bucket */
    size_t ncounts;
    uint64_t *counts;  /* ncounts counters */
    uint64_t total;    /* values recorded */
    uint64_t min, max; /* exact; min is UINT64_MAX while empty */
    double sum;        /* of the (unclamped) values, for the mean */
    uint64_t clamped;  /* values above highest */
} bench_hist;

/* Sets h up for values in [lowest, highest] at a relative precision of
 * 2^-precision_bits (1..14). Allocates the counters once. Returns 0, or -1 on
 * bad arguments (lowest 0, highest < 2 * lowest, precision out of range) or
 * ENOMEM. */
int bench_hist_init(bench_hist *h, uint64_t lowest, uint64_t highest, int precision_bits);
void bench_hist_dispose(bench_hist *h);

/* Forgets every value; keeps the layout. */
void bench_hist_reset(bench_hist *h);

void bench_hist_record(bench_hist *h, uint64_t v);

/* Adds src's values to dst. Both must have been set up with the same
 * arguments; returns -1 (dst unchanged) otherwise. */
int bench_hist_merge(bench_hist *dst, const bench_hist *src);

/* The value below or at which p percent (0..100) of the values lie: the
 * highest value of the bucket holding that rank, clamped to [min, max]. 0 when
 * empty. p <= 0 gives min, p >= 100 gives max. */
uint64_t bench_hist_percentile(const bench_hist *h, double p);

/* Exact mean of the recorded values; 0 when empty. */
double bench_hist_mean(const bench_hist *h);

/* The bucket v falls into, as [*lo, *hi] (inclusive): every value recorded in
 * it is reported as *hi. For tests and for documenting the precision. */
void bench_hist_bucket_range(const bench_hist *h, uint64_t v, uint64_t *lo, uint64_t *hi);

#endif
