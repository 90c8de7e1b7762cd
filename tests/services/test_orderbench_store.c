/* The OrderBench order map: insert/lookup, replace, growth, clear at the
 * order and byte caps, concurrent inserts. */
#include <criterion/criterion.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "services/orderbench/orderbench_int.h"

static bool get_str(orderbench_store *s, const char *key, int32_t *status, char *buf, size_t cap,
                    size_t *len)
{
    return orderbench_store_get(s, key, strlen(key), status, buf, cap, len);
}

static void put_str(orderbench_store *s, const char *key, int32_t status, const char *value)
{
    cr_assert_eq(orderbench_store_put(s, key, strlen(key), status, value, strlen(value)), 0);
}

Test(orderbench_store, put_then_get_roundtrip)
{
    orderbench_store s;
    cr_assert_eq(orderbench_store_init(&s, 0, 0), 0);
    put_str(&s, "o-1", 1, "hello");
    put_str(&s, "o-2", 3, "");

    char buf[16] = {0};
    int32_t status = -1;
    size_t len = 0;
    cr_assert(get_str(&s, "o-1", &status, buf, sizeof buf, &len));
    cr_assert_eq(status, 1);
    cr_assert_eq(len, 5);
    cr_assert_arr_eq(buf, "hello", 5);

    cr_assert(get_str(&s, "o-2", &status, buf, sizeof buf, &len));
    cr_assert_eq(status, 3);
    cr_assert_eq(len, 0);
    cr_assert_eq(orderbench_store_count(&s), 2);
    orderbench_store_dispose(&s);
}

Test(orderbench_store, missing_key_is_not_found)
{
    orderbench_store s;
    cr_assert_eq(orderbench_store_init(&s, 0, 0), 0);
    int32_t status;
    size_t len;
    cr_assert_not(get_str(&s, "o-1", &status, NULL, 0, &len));
    put_str(&s, "o-1", 1, "x");
    cr_assert_not(get_str(&s, "o-10", &status, NULL, 0, &len));
    cr_assert_not(get_str(&s, "o-", &status, NULL, 0, &len));
    cr_assert_not(orderbench_store_get(&s, "", 0, &status, NULL, 0, &len));
    orderbench_store_dispose(&s);
}

Test(orderbench_store, small_buffer_reports_length_without_copying)
{
    orderbench_store s;
    cr_assert_eq(orderbench_store_init(&s, 0, 0), 0);
    put_str(&s, "k", 2, "0123456789");
    char buf[4] = {'a', 'b', 'c', 'd'};
    int32_t status;
    size_t len;
    cr_assert(get_str(&s, "k", &status, buf, sizeof buf, &len));
    cr_assert_eq(len, 10);
    cr_assert_arr_eq(buf, "abcd", 4);
    /* status only */
    cr_assert(get_str(&s, "k", &status, NULL, 0, &len));
    cr_assert_eq(status, 2);
    orderbench_store_dispose(&s);
}

Test(orderbench_store, put_replaces_same_key)
{
    orderbench_store s;
    cr_assert_eq(orderbench_store_init(&s, 0, 0), 0);
    put_str(&s, "o-7", 1, "first");
    put_str(&s, "o-7", 4, "second");
    cr_assert_eq(orderbench_store_count(&s), 1);
    char buf[16];
    int32_t status;
    size_t len;
    cr_assert(get_str(&s, "o-7", &status, buf, sizeof buf, &len));
    cr_assert_eq(status, 4);
    cr_assert_eq(len, 6);
    cr_assert_arr_eq(buf, "second", 6);
    orderbench_store_dispose(&s);
}

Test(orderbench_store, grows_and_keeps_every_entry)
{
    orderbench_store s;
    cr_assert_eq(orderbench_store_init(&s, 0, 0), 0);
    enum { N = 200000 };
    char key[32], val[32];
    for (int i = 1; i <= N; i++) {
        snprintf(key, sizeof key, "o-%d", i);
        snprintf(val, sizeof val, "v%d", i * 7);
        put_str(&s, key, i % 5 + 1, val);
    }
    cr_assert_eq(orderbench_store_count(&s), N);
    cr_assert_eq(s.clears, 0);
    for (int i = 1; i <= N; i++) {
        char buf[32];
        int32_t status;
        size_t len;
        snprintf(key, sizeof key, "o-%d", i);
        snprintf(val, sizeof val, "v%d", i * 7);
        cr_assert(get_str(&s, key, &status, buf, sizeof buf, &len), "%s", key);
        cr_assert_eq(status, i % 5 + 1);
        cr_assert_eq(len, strlen(val));
        cr_assert_arr_eq(buf, val, len);
    }
    orderbench_store_dispose(&s);
}

Test(orderbench_store, cleared_when_full_before_the_insert)
{
    orderbench_store s;
    cr_assert_eq(orderbench_store_init(&s, 3, 0), 0);
    put_str(&s, "o-1", 1, "a");
    put_str(&s, "o-2", 1, "b");
    put_str(&s, "o-3", 1, "c");
    cr_assert_eq(orderbench_store_count(&s), 3);
    cr_assert_eq(s.clears, 0);

    put_str(&s, "o-4", 1, "d"); /* holds 3 = cap: cleared, then inserted */
    cr_assert_eq(s.clears, 1);
    cr_assert_eq(orderbench_store_count(&s), 1);
    int32_t status;
    size_t len;
    cr_assert_not(get_str(&s, "o-1", &status, NULL, 0, &len));
    cr_assert_not(get_str(&s, "o-3", &status, NULL, 0, &len));
    cr_assert(get_str(&s, "o-4", &status, NULL, 0, &len));

    /* and it keeps working across many clears */
    char key[32];
    for (int i = 5; i < 5000; i++) {
        snprintf(key, sizeof key, "o-%d", i);
        put_str(&s, key, 2, "payload");
        cr_assert(get_str(&s, key, &status, NULL, 0, &len));
        cr_assert_leq(orderbench_store_count(&s), 3);
    }
    cr_assert_gt(s.clears, 1000);
    orderbench_store_dispose(&s);
}

Test(orderbench_store, contract_cap_is_one_million)
{
    orderbench_store s;
    cr_assert_eq(orderbench_store_init(&s, 0, 0), 0);
    cr_assert_eq(s.max_orders, 1000000);
    orderbench_store_dispose(&s);
}

Test(orderbench_store, large_values_and_byte_cap)
{
    orderbench_store s;
    cr_assert_eq(orderbench_store_init(&s, 0, 3u << 20), 0);
    static char big[2u << 20]; /* larger than a chunk */
    memset(big, 'z', sizeof big);
    cr_assert_eq(orderbench_store_put(&s, "a", 1, 1, big, sizeof big), 0);
    cr_assert_eq(orderbench_store_count(&s), 1);
    put_str(&s, "b", 1, "small");
    cr_assert_eq(s.clears, 0);

    /* a second 2 MiB entry would pass 3 MiB: cleared first */
    cr_assert_eq(orderbench_store_put(&s, "c", 1, 1, big, sizeof big), 0);
    cr_assert_eq(s.clears, 1);
    cr_assert_eq(orderbench_store_count(&s), 1);

    static char out[2u << 20];
    int32_t status;
    size_t len;
    cr_assert(orderbench_store_get(&s, "c", 1, &status, out, sizeof out, &len));
    cr_assert_eq(len, sizeof big);
    cr_assert_eq(memcmp(out, big, len), 0);

    /* an entry above the cap alone still goes in (after a clear) */
    orderbench_store t;
    cr_assert_eq(orderbench_store_init(&t, 0, 1024), 0);
    cr_assert_eq(orderbench_store_put(&t, "x", 1, 1, big, 4096), 0);
    cr_assert_eq(orderbench_store_count(&t), 1);
    put_str(&t, "y", 1, "y");
    cr_assert_eq(orderbench_store_count(&t), 1);
    cr_assert_eq(t.clears, 1);
    orderbench_store_dispose(&t);
    orderbench_store_dispose(&s);
}

typedef struct worker_arg {
    orderbench_store *s;
    int id;
} worker_arg;

enum { THREADS = 4, PER_THREAD = 20000 };

static void *insert_many(void *p)
{
    worker_arg *a = p;
    char key[32];
    for (int i = 0; i < PER_THREAD; i++) {
        snprintf(key, sizeof key, "t%d-%d", a->id, i);
        if (orderbench_store_put(a->s, key, strlen(key), a->id, key, strlen(key)) != 0)
            return p;
    }
    return NULL;
}

Test(orderbench_store, concurrent_inserts)
{
    orderbench_store s;
    cr_assert_eq(orderbench_store_init(&s, 0, 0), 0);
    pthread_t th[THREADS];
    worker_arg args[THREADS];
    for (int t = 0; t < THREADS; t++) {
        args[t] = (worker_arg){&s, t};
        cr_assert_eq(pthread_create(&th[t], NULL, insert_many, &args[t]), 0);
    }
    for (int t = 0; t < THREADS; t++) {
        void *rv;
        pthread_join(th[t], &rv);
        cr_assert_null(rv);
    }
    cr_assert_eq(orderbench_store_count(&s), THREADS * PER_THREAD);
    char key[32], buf[32];
    int32_t status;
    size_t len;
    for (int t = 0; t < THREADS; t++)
        for (int i = 0; i < PER_THREAD; i += 97) {
            snprintf(key, sizeof key, "t%d-%d", t, i);
            cr_assert(get_str(&s, key, &status, buf, sizeof buf, &len));
            cr_assert_eq(status, t);
            cr_assert_arr_eq(buf, key, len);
        }
    orderbench_store_dispose(&s);
}
