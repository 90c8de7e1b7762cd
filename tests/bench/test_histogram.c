/* test_histogram.c - bench_hist: bucket precision, percentiles, merge. */
#include <criterion/criterion.h>
#include <stdint.h>
#include <stdlib.h>

#include "bench/histogram.h"

#define US 1000ull
#define S  1000000000ull

/* The layout oms-bench uses: 1 us .. 60 s at 1/64. */
static bench_hist h;

static void setup(void)
{
    cr_assert_eq(bench_hist_init(&h, US, 60 * S, 6), 0);
}

static void teardown(void)
{
    bench_hist_dispose(&h);
}

TestSuite(bench_histogram, .init = setup, .fini = teardown);

/* A tiny deterministic generator: tests must not depend on rand()'s state. */
static uint64_t next_rand(uint64_t *x)
{
    *x ^= *x << 13;
    *x ^= *x >> 7;
    *x ^= *x << 17;
    return *x;
}

Test(bench_histogram, empty)
{
    cr_assert_eq(h.total, 0);
    cr_assert_eq(bench_hist_percentile(&h, 50), 0);
    cr_assert_eq(bench_hist_percentile(&h, 100), 0);
    cr_assert_eq(bench_hist_mean(&h), 0);
}

Test(bench_histogram, memory_is_fixed_and_small)
{
    /* about 2^p counters per power of two between 1 us and 60 s */
    cr_assert_lt(h.ncounts, 2048);
    cr_assert_gt(h.ncounts, 64 * 26);
    for (uint64_t v = 1; v < 3600 * S; v = v * 3 + 1)
        bench_hist_record(&h, v);
    cr_assert_lt(h.ncounts, 2048, "recording never grows the table");
}

Test(bench_histogram, single_value_is_exact)
{
    bench_hist_record(&h, 123456789);
    cr_assert_eq(h.total, 1);
    cr_assert_eq(h.min, 123456789);
    cr_assert_eq(h.max, 123456789);
    /* percentiles are clamped to [min, max], so one value is reported exactly */
    cr_assert_eq(bench_hist_percentile(&h, 0), 123456789);
    cr_assert_eq(bench_hist_percentile(&h, 50), 123456789);
    cr_assert_eq(bench_hist_percentile(&h, 99.9), 123456789);
    cr_assert_eq(bench_hist_percentile(&h, 100), 123456789);
    cr_assert_float_eq(bench_hist_mean(&h), 123456789.0, 1e-6);
}

Test(bench_histogram, relative_precision_from_lowest_to_highest)
{
    /* every bucket from 1 us up is at most 1/64 of its values wide */
    uint64_t x = 88172645463325252ull;
    for (int i = 0; i < 200000; i++) {
        uint64_t v = US + next_rand(&x) % (60 * S - US);
        if (i % 2) /* log-uniform too, so small values get their share */
            v = US << (next_rand(&x) % 25), v += next_rand(&x) % v;
        if (v > 60 * S)
            v = 60 * S;
        uint64_t lo, hi;
        bench_hist_bucket_range(&h, v, &lo, &hi);
        cr_assert(lo <= v && v <= hi, "%llu outside its bucket [%llu, %llu]", (unsigned long long)v,
                  (unsigned long long)lo, (unsigned long long)hi);
        cr_assert_leq((hi - lo + 1) * 64, lo, "bucket [%llu, %llu] of %llu wider than 1/64",
                      (unsigned long long)lo, (unsigned long long)hi, (unsigned long long)v);
    }
}

Test(bench_histogram, buckets_tile_the_range)
{
    /* consecutive buckets touch: no value falls between two */
    uint64_t v = 0;
    int buckets = 0;
    while (v <= 60 * S) {
        uint64_t lo, hi;
        bench_hist_bucket_range(&h, v, &lo, &hi);
        cr_assert_eq(lo, v, "bucket of %llu starts at %llu", (unsigned long long)v,
                     (unsigned long long)lo);
        cr_assert_geq(hi, lo);
        v = hi + 1;
        buckets++;
    }
    cr_assert_eq((size_t)buckets, h.ncounts);
}

Test(bench_histogram, below_lowest_keeps_absolute_precision)
{
    uint64_t lo, hi;
    bench_hist_bucket_range(&h, 1, &lo, &hi);
    cr_assert_eq(lo, 0);
    cr_assert_leq(hi - lo + 1, US / 64, "sub-microsecond values share buckets of <= 15 ns");
    bench_hist_record(&h, 0);
    bench_hist_record(&h, 10);
    cr_assert_eq(h.min, 0);
    /* the first value's bucket is [0, hi]: p50 reports its top */
    cr_assert_lt(hi, 10);
    cr_assert_eq(bench_hist_percentile(&h, 50), hi);
}

Test(bench_histogram, uniform_percentiles)
{
    /* 1..10000 us, each once: the p-th percentile is p% of 10 ms */
    for (uint64_t us = 1; us <= 10000; us++)
        bench_hist_record(&h, us * US);
    cr_assert_eq(h.total, 10000);
    struct {
        double p;
        uint64_t want;
    } cases[] = {{50, 5000 * US}, {90, 9000 * US}, {99, 9900 * US}, {99.9, 9990 * US}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        uint64_t got = bench_hist_percentile(&h, cases[i].p);
        /* at or above the exact value, by less than one bucket (1/64) */
        cr_assert_geq(got, cases[i].want, "p%g: %llu", cases[i].p, (unsigned long long)got);
        cr_assert_leq(got, cases[i].want + cases[i].want / 64, "p%g: %llu", cases[i].p,
                      (unsigned long long)got);
    }
    cr_assert_eq(bench_hist_percentile(&h, 100), 10000 * US);
    cr_assert_eq(bench_hist_percentile(&h, 0), 1 * US);
    cr_assert_float_eq(bench_hist_mean(&h), 5000.5 * US, 1e-3);
}

Test(bench_histogram, percentiles_are_monotonic)
{
    uint64_t x = 42;
    for (int i = 0; i < 50000; i++)
        bench_hist_record(&h, US + next_rand(&x) % (100 * 1000 * US));
    uint64_t last = 0;
    for (double p = 0; p <= 100; p += 0.5) {
        uint64_t v = bench_hist_percentile(&h, p);
        cr_assert_geq(v, last, "p%g = %llu below the previous %llu", p, (unsigned long long)v,
                      (unsigned long long)last);
        last = v;
    }
    cr_assert_eq(last, h.max);
}

Test(bench_histogram, outliers_show_in_the_tail)
{
    for (int i = 0; i < 999; i++)
        bench_hist_record(&h, 100 * US);
    bench_hist_record(&h, 2 * S);
    cr_assert_leq(bench_hist_percentile(&h, 99.9), 100 * US + 100 * US / 64);
    cr_assert_eq(bench_hist_percentile(&h, 99.91), 2 * S);
    cr_assert_eq(h.max, 2 * S);
}

Test(bench_histogram, above_highest_is_clamped_but_max_exact)
{
    bench_hist_record(&h, 3600 * S);
    bench_hist_record(&h, 1 * S);
    cr_assert_eq(h.clamped, 1);
    cr_assert_eq(h.max, 3600 * S);
    cr_assert_eq(bench_hist_percentile(&h, 100), 3600 * S);
    /* the clamped value sits in the top bucket */
    uint64_t p = bench_hist_percentile(&h, 99);
    cr_assert_geq(p, 60 * S);
    cr_assert_float_eq(bench_hist_mean(&h), (3600.0 + 1.0) / 2 * S, 1.0);
}

Test(bench_histogram, merge_equals_recording_everything)
{
    bench_hist a, b;
    cr_assert_eq(bench_hist_init(&a, US, 60 * S, 6), 0);
    cr_assert_eq(bench_hist_init(&b, US, 60 * S, 6), 0);
    uint64_t x = 7;
    for (int i = 0; i < 10000; i++) {
        uint64_t v = next_rand(&x) % (10 * S);
        bench_hist_record(&h, v);
        bench_hist_record(i % 3 ? &a : &b, v);
    }
    cr_assert_eq(bench_hist_merge(&a, &b), 0);
    cr_assert_eq(a.total, h.total);
    cr_assert_eq(a.min, h.min);
    cr_assert_eq(a.max, h.max);
    cr_assert_float_eq(a.sum, h.sum, 1.0);
    for (double p = 1; p < 100; p += 7)
        cr_assert_eq(bench_hist_percentile(&a, p), bench_hist_percentile(&h, p), "p%g", p);
    bench_hist_dispose(&a);
    bench_hist_dispose(&b);
}

Test(bench_histogram, merge_refuses_other_layouts)
{
    bench_hist other;
    cr_assert_eq(bench_hist_init(&other, US, 60 * S, 5), 0);
    bench_hist_record(&other, 5 * US);
    cr_assert_eq(bench_hist_merge(&h, &other), -1);
    cr_assert_eq(h.total, 0, "dst unchanged");
    bench_hist_dispose(&other);
}

Test(bench_histogram, reset_forgets)
{
    bench_hist_record(&h, 5 * US);
    bench_hist_record(&h, 7 * S);
    bench_hist_reset(&h);
    cr_assert_eq(h.total, 0);
    cr_assert_eq(h.max, 0);
    cr_assert_eq(bench_hist_percentile(&h, 50), 0);
    bench_hist_record(&h, 9 * US);
    cr_assert_eq(bench_hist_percentile(&h, 50), 9 * US);
    cr_assert_eq(h.min, 9 * US);
}

Test(bench_histogram, bad_arguments)
{
    bench_hist x;
    cr_assert_eq(bench_hist_init(&x, 0, 100, 6), -1);
    cr_assert_eq(bench_hist_init(&x, 100, 150, 6), -1);
    cr_assert_eq(bench_hist_init(&x, 1, 100, 0), -1);
    cr_assert_eq(bench_hist_init(&x, 1, 100, 15), -1);
}

Test(bench_histogram, small_units_are_exact)
{
    /* lowest 1 at 1/64: every value below 128 has a bucket of its own */
    bench_hist x;
    cr_assert_eq(bench_hist_init(&x, 1, 1000000, 6), 0);
    for (uint64_t v = 0; v < 128; v++) {
        uint64_t lo, hi;
        bench_hist_bucket_range(&x, v, &lo, &hi);
        cr_assert_eq(lo, v);
        cr_assert_eq(hi, v);
    }
    bench_hist_dispose(&x);
}
