/* histogram.c - log-linear buckets: index arithmetic after HdrHistogram. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "bench/histogram.h"

/* Bucket k >= 1 holds [2^p << (k + u), 2^(p+1) << (k + u)) in 2^p steps of
 * 1 << (k + u); bucket 0 holds [0, 2^(p+1) << u) in steps of 1 << u. Buckets
 * overlap by half in HdrHistogram's scheme, so only the upper half of each
 * bucket past the first gets counters, and the counter index is
 * (k << p) + (v >> (k + u)). */
static size_t index_of(const bench_hist *h, uint64_t v)
{
    int p = h->precision_bits;
    int u = h->unit_shift;
    uint64_t mask = ((UINT64_C(2) << p) - 1) << u;
    int pow2ceil = 64 - __builtin_clzll(v | mask);
    int bucket = pow2ceil - u - (p + 1);
    uint64_t sub = v >> (bucket + u);
    return ((size_t)bucket << p) + (size_t)sub;
}

/* The inverse: the values [*lo, *hi] that index i stands for. */
static void range_of(const bench_hist *h, size_t i, uint64_t *lo, uint64_t *hi)
{
    int p = h->precision_bits;
    int u = h->unit_shift;
    size_t bucket = 0;
    size_t sub = i;
    if (i >= (size_t)2 << p) {
        bucket = (i >> p) - 1;
        sub = i - (bucket << p);
    }
    int shift = (int)bucket + u;
    *lo = (uint64_t)sub << shift;
    *hi = *lo + (UINT64_C(1) << shift) - 1;
}

int bench_hist_init(bench_hist *h, uint64_t lowest, uint64_t highest, int precision_bits)
{
    memset(h, 0, sizeof *h);
    if (lowest == 0 || highest / 2 < lowest || precision_bits < 1 || precision_bits > 14)
        return -1;
    /* The narrowest bucket is 2^-p of the largest power of two <= lowest, so
     * that lowest itself already has the full relative precision. */
    int log2_lowest = 63 - __builtin_clzll(lowest);
    h->unit_shift = log2_lowest > precision_bits ? log2_lowest - precision_bits : 0;
    h->precision_bits = precision_bits;
    h->lowest = lowest;
    h->highest = highest;
    h->ncounts = index_of(h, highest) + 1;
    h->counts = calloc(h->ncounts, sizeof *h->counts);
    if (!h->counts)
        return -1;
    h->min = UINT64_MAX;
    return 0;
}

void bench_hist_dispose(bench_hist *h)
{
    free(h->counts);
    h->counts = NULL;
    h->ncounts = 0;
}

void bench_hist_reset(bench_hist *h)
{
    memset(h->counts, 0, h->ncounts * sizeof *h->counts);
    h->total = 0;
    h->min = UINT64_MAX;
    h->max = 0;
    h->sum = 0;
    h->clamped = 0;
}

void bench_hist_record(bench_hist *h, uint64_t v)
{
    uint64_t kept = v;
    if (v > h->highest) {
        kept = h->highest;
        h->clamped++;
    }
    h->counts[index_of(h, kept)]++;
    h->total++;
    h->sum += (double)v;
    if (v < h->min)
        h->min = v;
    if (v > h->max)
        h->max = v;
}

int bench_hist_merge(bench_hist *dst, const bench_hist *src)
{
    if (dst->ncounts != src->ncounts || dst->unit_shift != src->unit_shift ||
        dst->precision_bits != src->precision_bits || dst->highest != src->highest)
        return -1;
    for (size_t i = 0; i < src->ncounts; i++)
        dst->counts[i] += src->counts[i];
    dst->total += src->total;
    dst->sum += src->sum;
    dst->clamped += src->clamped;
    if (src->min < dst->min)
        dst->min = src->min;
    if (src->max > dst->max)
        dst->max = src->max;
    return 0;
}

uint64_t bench_hist_percentile(const bench_hist *h, double p)
{
    if (h->total == 0)
        return 0;
    if (p <= 0)
        return h->min;
    if (p >= 100)
        return h->max;
    /* The rank of the value asked for, 1-based: the smallest value with at
     * least p% of all values at or below it. The slack keeps 99.9% of 1000
     * at 999 although 99.9 / 100 * 1000 is 999.0000000000001 in binary. */
    uint64_t rank = (uint64_t)ceil(p / 100.0 * (double)h->total - 1e-6);
    if (rank < 1)
        rank = 1;
    if (rank > h->total)
        rank = h->total;
    uint64_t seen = 0;
    for (size_t i = 0; i < h->ncounts; i++) {
        seen += h->counts[i];
        if (seen >= rank) {
            uint64_t lo, hi;
            range_of(h, i, &lo, &hi);
            return hi < h->min ? h->min : hi > h->max ? h->max : hi;
        }
    }
    return h->max;
}

double bench_hist_mean(const bench_hist *h)
{
    return h->total ? h->sum / (double)h->total : 0;
}

void bench_hist_bucket_range(const bench_hist *h, uint64_t v, uint64_t *lo, uint64_t *hi)
{
    range_of(h, index_of(h, v > h->highest ? h->highest : v), lo, hi);
}
