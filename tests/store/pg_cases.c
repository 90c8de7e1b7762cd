/* pg_cases.c - what only the PostgreSQL backend has: migrations under an
 * advisory lock, several stores (instances) on one database, a server that
 * is down or drops connections. Runs only as unit.store_pg.pg_cases (with
 * OMS_TEST_PG_URL from scripts/pgtmp.py); without it every case fails. */
#include <limits.h>
#include <pthread.h>
#include <sched.h>
#include <time.h>

#include "store_test_util.h"

static void need_pg(void)
{
    cr_assert_not_null(tenv_pg(), "OMS_TEST_PG_URL is not set (run through scripts/pgtmp.py)");
}

/* Value of a one-row, one-column query on e's database. */
static long long pg_int(const tenv *e, const char *sql)
{
    PGconn *c = PQconnectdb(e->url);
    cr_assert_eq(PQstatus(c), CONNECTION_OK, "%s", PQerrorMessage(c));
    PGresult *r = PQexec(c, sql);
    cr_assert_eq(PQresultStatus(r), PGRES_TUPLES_OK, "%s: %s", sql, PQresultErrorMessage(r));
    long long v = atoll(PQgetvalue(r, 0, 0));
    PQclear(r);
    PQfinish(c);
    return v;
}

/* A second store (another "instance") with its loop on e's loop. */
typedef struct peer {
    store *st;
    store_loop *sl;
} peer;

static void peer_open(tenv *e, peer *p)
{
    store_config cfg;
    store_config_init(&cfg);
    cfg.url = e->url;
    char err[256];
    p->st = store_open(&cfg, err, sizeof err);
    cr_assert_not_null(p->st, "store_open: %s", err);
    p->sl = store_loop_open(p->st, &e->loop, err, sizeof err);
    cr_assert_not_null(p->sl, "store_loop_open: %s", err);
}

static void peer_close(tenv *e, peer *p)
{
    store_loop_close(p->sl);
    uv_run(&e->loop, UV_RUN_NOWAIT);
    store_close(p->st);
}

static void on_count(store_write *w)
{
    (*(int *)w->data)++;
}

Test(store_pg, newer_schema_is_refused)
{
    need_pg();
    tenv e;
    tenv_open(&e);
    tenv_stop(&e);
    tenv_pg_exec(&e, "UPDATE schema_version SET version = 99");
    store_config cfg;
    store_config_init(&cfg);
    cfg.url = e.url;
    char err[256];
    cr_assert_null(store_open(&cfg, err, sizeof err));
    cr_assert(strstr(err, "newer"), "err: %s", err);
    tenv_rmdir(&e);
}

static void *open_close(void *arg)
{
    const char *url = arg;
    store_config cfg;
    store_config_init(&cfg);
    cfg.url = url;
    char err[256];
    store *st = store_open(&cfg, err, sizeof err);
    if (st)
        store_close(st);
    return st ? NULL : (void *)1;
}

Test(store_pg, concurrent_starts_migrate_once)
{
    need_pg();
    tenv e;
    tenv_mkdir(&e); /* a fresh, empty database */
    enum { N = 4 };
    pthread_t t[N];
    for (int i = 0; i < N; i++)
        cr_assert_eq(pthread_create(&t[i], NULL, open_close, e.url), 0);
    for (int i = 0; i < N; i++) {
        void *rv;
        pthread_join(t[i], &rv);
        cr_assert_null(rv, "a concurrent store_open failed");
    }
    cr_assert_eq(pg_int(&e, "SELECT count(*) FROM schema_version"), 1);
    cr_assert_eq(pg_int(&e, "SELECT version FROM schema_version"), 2, "the newest migration");
    tenv_rmdir(&e);
}

Test(store_pg, server_down_at_open_is_a_clear_error_without_the_password)
{
    need_pg();
    store_config cfg;
    store_config_init(&cfg);
    cfg.url = "postgresql://oms:s3cretpw@127.0.0.1:1/oms?connect_timeout=2";
    char err[256];
    cr_assert_null(store_open(&cfg, err, sizeof err));
    cr_assert(strstr(err, "127.0.0.1"), "err: %s", err);
    cr_assert(strstr(err, "onnection refused") || strstr(err, "connect"), "err: %s", err);
    cr_assert_null(strstr(err, "s3cretpw"), "the password leaked: %s", err);
}

Test(store_pg, reopen_keeps_everything_and_never_reuses_ids)
{
    need_pg();
    tenv e;
    tenv_open(&e);
    char cust[STORE_ID_MAX + 1], a[STORE_ID_MAX + 1];
    cr_assert_eq(add_customer(&e, "Ann", "ann@example.com", cust), STORE_OK);
    cr_assert_eq(add_product(&e, "A", 150, 10), STORE_OK);
    cr_assert_eq(create_order(&e, cust, "k1", 100, a, NULL), STORE_OK);
    cr_assert_str_eq(a, "o-1");
    char unused[STORE_ID_MAX + 1];
    cr_assert_eq(store_next_order_id(e.st, unused), STORE_OK);
    int64_t seq = store_last_seq(e.st);
    cr_assert_eq(seq, 1);
    tenv_stop(&e);
    /* the clean stop kept [1, 2] as the run's range and no more */
    cr_assert_eq(pg_int(&e, "SELECT last FROM sweep_ranges WHERE first = 1"), 2);

    tenv_start(&e, NULL);
    cr_assert_eq(store_last_seq(e.st), seq);
    char next[STORE_ID_MAX + 1];
    cr_assert_eq(store_next_order_id(e.st, next), STORE_OK);
    int64_t n = atoll(next + 2);
    cr_assert_gt(n, 2, "%s: ids are never reused", next);
    store_order *ex = NULL;
    cr_assert_eq(create_order(&e, cust, "k1", 300, NULL, &ex), STORE_EXISTS);
    cr_assert_str_eq(ex->id, a);
    store_order_free(ex);
    store_product p;
    cr_assert_eq(store_get_product(e.sl, "A", &p), STORE_OK);
    cr_assert_eq(p.on_hand, 10);
    /* the previous run is gone: its range is pending */
    store_id_range r[4];
    cr_assert_eq(store_pending_sweeps(e.st, r, 4), 1);
    cr_assert_eq(r[0].first, 1);
    cr_assert_eq(r[0].last, 2);
    cr_assert_eq(store_sweep_done(e.st, &r[0]), STORE_OK);
    cr_assert_eq(pg_int(&e, "SELECT count(*) FROM sweep_ranges WHERE first = 1"), 0);
    tenv_close(&e);
}

Test(store_pg, two_instances_hand_out_distinct_ids_and_see_live_ranges)
{
    need_pg();
    tenv e;
    tenv_open(&e);
    peer b;
    peer_open(&e, &b);
    char x[STORE_ID_MAX + 1], y[STORE_ID_MAX + 1];
    cr_assert_eq(store_next_order_id(e.st, x), STORE_OK);
    cr_assert_eq(store_next_order_id(b.st, y), STORE_OK);
    cr_assert_str_neq(x, y);
    /* a live instance's range is not pending for another */
    store_id_range r[4];
    cr_assert_eq(store_pending_sweeps(b.st, r, 4), 0);
    peer_close(&e, &b);
    tenv_close(&e);
}

static store_write *place(store_loop *sl, store *st, const char *cust, const char *key,
                          const char *sku, int64_t qty, int *done)
{
    store_write *w = calloc(1, sizeof *w);
    store_order *o = store_order_new(1);
    cr_assert_eq(store_next_order_id(st, o->id), STORE_OK);
    strcpy(o->customer_id, cust);
    strcpy(o->idempotency_key, key);
    strcpy(o->lines[0].sku, sku);
    o->lines[0].quantity = qty;
    o->created_at = 10;
    w->op = STORE_ORDER_PLACE;
    w->order = o;
    w->at = 10;
    w->done = on_count;
    w->data = done;
    store_submit(sl, w);
    return w;
}

static void free_place(store_write *w)
{
    store_order_free((store_order *)w->order);
    store_order_free(w->result);
    free(w);
}

Test(store_pg, two_instances_racing_for_the_last_units_never_oversell)
{
    need_pg();
    tenv e;
    tenv_open(&e);
    peer b;
    peer_open(&e, &b);
    char cust[STORE_ID_MAX + 1];
    cr_assert_eq(add_customer(&e, "Ann", "ann@example.com", cust), STORE_OK);
    cr_assert_eq(add_product(&e, "LAST", 100, 25), STORE_OK);
    enum { N = 40 };
    store_write *ws[2 * N];
    int done = 0;
    for (int i = 0; i < N; i++) { /* both writers busy at once */
        ws[2 * i] = place(e.sl, e.st, cust, "", "LAST", 1, &done);
        ws[2 * i + 1] = place(b.sl, b.st, cust, "", "LAST", 1, &done);
    }
    while (done < 2 * N)
        uv_run(&e.loop, UV_RUN_ONCE);
    int ok = 0, short_ = 0;
    for (int i = 0; i < 2 * N; i++) {
        if (ws[i]->rc == STORE_OK)
            ok++;
        else if (ws[i]->rc == STORE_PRECONDITION)
            short_++;
        else
            cr_assert_fail("%d: %s %s", i, store_rc_name(ws[i]->rc), ws[i]->msg);
        free_place(ws[i]);
    }
    cr_assert_eq(ok, 25);
    cr_assert_eq(short_, 2 * N - 25);
    store_product p;
    cr_assert_eq(store_get_product(b.sl, "LAST", &p), STORE_OK);
    cr_assert_eq(p.reserved, 25);
    cr_assert_eq(p.on_hand, 25);
    /* the events of both instances: one gap-free sequence */
    store_event evs[64];
    long n = store_read_events(e.sl, 1, NULL, evs, 64);
    cr_assert_eq(n, 25);
    for (long i = 0; i < n; i++)
        cr_assert_eq(evs[i].seq, i + 1);
    cr_assert_eq(pg_int(&e, "SELECT value FROM meta WHERE key = 'event_seq'"), 25);
    peer_close(&e, &b);
    tenv_close(&e);
}

Test(store_pg, same_key_to_two_instances_makes_one_order)
{
    need_pg();
    tenv e;
    tenv_open(&e);
    peer b;
    peer_open(&e, &b);
    char cust[STORE_ID_MAX + 1];
    cr_assert_eq(add_customer(&e, "Ann", "ann@example.com", cust), STORE_OK);
    cr_assert_eq(add_product(&e, "A", 100, 1000), STORE_OK);
    enum { N = 20 };
    for (int round = 0; round < N; round++) {
        char key[32];
        snprintf(key, sizeof key, "key-%d", round);
        int done = 0;
        store_write *x = place(e.sl, e.st, cust, key, "A", 1, &done);
        store_write *y = place(b.sl, b.st, cust, key, "A", 1, &done);
        while (done < 2)
            uv_run(&e.loop, UV_RUN_ONCE);
        cr_assert((x->rc == STORE_OK && y->rc == STORE_EXISTS) ||
                      (x->rc == STORE_EXISTS && y->rc == STORE_OK),
                  "%s / %s: %s %s", store_rc_name(x->rc), store_rc_name(y->rc), x->msg, y->msg);
        store_write *won = x->rc == STORE_OK ? x : y, *lost = x->rc == STORE_OK ? y : x;
        cr_assert_not_null(lost->result);
        cr_assert_str_eq(lost->result->id, won->order->id);
        free_place(x);
        free_place(y);
    }
    store_product p;
    cr_assert_eq(store_get_product(e.sl, "A", &p), STORE_OK);
    cr_assert_eq(p.reserved, N, "one reservation per key");
    cr_assert_eq(pg_int(&e, "SELECT count(*) FROM orders"), N);
    peer_close(&e, &b);
    tenv_close(&e);
}

Test(store_pg, reads_do_not_wait_for_a_held_write_lock)
{
    need_pg();
    tenv e;
    tenv_open(&e);
    cr_assert_eq(add_product(&e, "A", 100, 10), STORE_OK);
    /* another session holds the writers' lock and the product's row */
    PGconn *c = PQconnectdb(e.url);
    cr_assert_eq(PQstatus(c), CONNECTION_OK);
    PGresult *r = PQexec(c, "BEGIN; SELECT value FROM meta WHERE key = 'event_seq' FOR UPDATE;"
                            "UPDATE products SET on_hand = 99 WHERE sku = 'A'");
    cr_assert_eq(PQresultStatus(r), PGRES_COMMAND_OK, "%s", PQresultErrorMessage(r));
    PQclear(r);
    store_product p;
    cr_assert_eq(store_get_product(e.sl, "A", &p), STORE_OK);
    cr_assert_eq(p.on_hand, 10, "the last commit, not the open transaction");
    /* a write queues behind the lock and completes once it is released */
    store_write w = {.op = STORE_STOCK_ADJUST, .at = 5, .delta = 1};
    strcpy(w.product.sku, "A");
    int done = 0;
    w.done = on_count;
    w.data = &done;
    store_submit(e.sl, &w);
    uv_run(&e.loop, UV_RUN_NOWAIT);
    cr_assert_eq(done, 0);
    PQclear(PQexec(c, "ROLLBACK"));
    PQfinish(c);
    while (!done)
        uv_run(&e.loop, UV_RUN_ONCE);
    cr_assert_eq(w.rc, STORE_OK, "%s", w.msg);
    cr_assert_eq(w.product.on_hand, 11);
    tenv_close(&e);
}

static void pause_ms(int ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000};
    nanosleep(&ts, NULL);
}

Test(store_pg, dropped_connections_fail_unavailable_then_reconnect)
{
    need_pg();
    tenv e;
    tenv_open(&e);
    cr_assert_eq(add_product(&e, "A", 100, 10), STORE_OK);
    char sql[256];
    snprintf(sql, sizeof sql,
             "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
             "WHERE datname = '%s' AND pid <> pg_backend_pid()",
             e.pgdb);
    cr_assert_geq(pg_int(&e, sql), 2, "the writer's and the loop's connections");
    /* The first write after the drop finds the connection gone: UNAVAILABLE
     * (or OK, if it already reconnected); within the reconnect backoff it
     * comes back. Polled with a bound, 20 ms apart. */
    store_rc first = STORE_ERROR, rc = STORE_ERROR;
    for (int i = 0; i < 250 && rc != STORE_OK; i++) {
        store_write w = {.op = STORE_STOCK_ADJUST, .at = 6, .delta = 1};
        strcpy(w.product.sku, "A");
        rc = run_write(&e, &w);
        if (i == 0)
            first = rc;
        cr_assert(rc == STORE_OK || rc == STORE_UNAVAILABLE, "%s: %s", store_rc_name(rc), w.msg);
        if (rc != STORE_OK)
            pause_ms(20);
    }
    cr_assert_eq(rc, STORE_OK, "the writer reconnected");
    cr_assert_eq(first, STORE_UNAVAILABLE, "a dropped connection is UNAVAILABLE, not ERROR");
    /* reads: the first fails at once, then the loop's connection comes back */
    store_product p;
    store_rc r = STORE_ERROR;
    for (int i = 0; i < 250 && r != STORE_OK; i++) {
        r = store_get_product(e.sl, "A", &p);
        if (r != STORE_OK)
            pause_ms(20);
    }
    cr_assert_eq(r, STORE_OK);
    cr_assert_eq(p.on_hand, 11, "exactly one adjust committed");
    tenv_close(&e);
}

/* on_events recorder for the follower tests (any thread). */
typedef struct seen {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int64_t last; /* highest seq seen, in order */
    bool out_of_order;
} seen;

static void on_seen(void *arg, const store_event *evs, size_t n)
{
    seen *s = arg;
    pthread_mutex_lock(&s->mu);
    for (size_t i = 0; i < n; i++) {
        if (evs[i].seq <= s->last)
            continue; /* the follower repeats what the writer published */
        if (evs[i].seq != s->last + 1)
            s->out_of_order = true;
        s->last = evs[i].seq;
    }
    pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mu);
}

/* Waits (bounded, 10 s) until s saw seq; returns what it saw. */
static int64_t seen_wait(seen *s, int64_t seq)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += 10;
    pthread_mutex_lock(&s->mu);
    while (s->last < seq && pthread_cond_timedwait(&s->cv, &s->mu, &ts) == 0)
        ;
    int64_t last = s->last;
    pthread_mutex_unlock(&s->mu);
    return last;
}

static void events_reach_the_other_instance(int64_t poll_ms)
{
    need_pg();
    tenv e;
    tenv_open(&e);
    char cust[STORE_ID_MAX + 1];
    cr_assert_eq(add_customer(&e, "Ann", "ann@example.com", cust), STORE_OK);
    cr_assert_eq(add_product(&e, "A", 100, 1000), STORE_OK);
    /* instance B only follows: it writes nothing */
    seen s = {.mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER};
    store_config cfg;
    store_config_init(&cfg);
    cfg.url = e.url;
    cfg.on_events = on_seen;
    cfg.events_arg = &s;
    cfg.event_poll_ms = poll_ms;
    char err[256];
    store *b = store_open(&cfg, err, sizeof err);
    cr_assert_not_null(b, "%s", err);
    enum { N = 30 };
    for (int i = 0; i < N; i++) {
        int done = 0;
        store_write *w = place(e.sl, e.st, cust, "", "A", 1, &done);
        while (!done)
            uv_run(&e.loop, UV_RUN_ONCE);
        cr_assert_eq(w->rc, STORE_OK, "%s", w->msg);
        free_place(w);
    }
    cr_assert_eq(seen_wait(&s, N), N, "B saw A's events");
    cr_assert_not(s.out_of_order);
    cr_assert_eq(store_last_seq(b), N, "B's last seq follows A's commits");
    store_close(b);
    tenv_close(&e);
}

Test(store_pg, events_reach_the_other_instance_by_notify)
{
    events_reach_the_other_instance(0);
}

Test(store_pg, events_reach_the_other_instance_by_polling)
{
    events_reach_the_other_instance(50);
}

static store_rc reserve_on(tenv *e, store_loop *sl, const char *id, const char *sku, int64_t q)
{
    store_line l = {.quantity = q};
    strcpy(l.sku, sku);
    store_write w = {.op = STORE_RESERVE, .at = 7, .lines = &l, .nlines = 1};
    strcpy(w.order_id, id);
    int done = 0;
    w.done = on_count;
    w.data = &done;
    store_submit(sl, &w);
    while (!done)
        uv_run(&e->loop, UV_RUN_ONCE);
    store_order_free(w.result);
    return w.rc;
}

Test(store_pg, orphan_sweep_leaves_a_live_instances_reservations)
{
    need_pg();
    tenv e;
    tenv_open(&e);
    cr_assert_eq(add_product(&e, "A", 100, 10), STORE_OK);
    peer b;
    peer_open(&e, &b);
    cr_assert_eq(reserve_on(&e, b.sl, "ext-1", "A", 3), STORE_OK);
    cr_assert_eq(store_release_orphans(e.st), 0, "B is alive: its hold is not an orphan");
    store_product p;
    cr_assert_eq(store_get_product(e.sl, "A", &p), STORE_OK);
    cr_assert_eq(p.reserved, 3);
    peer_close(&e, &b); /* B gone: now it is */
    /* B's backend drops its run lock once it has read the disconnect:
     * wait for that (bounded), not for a time. */
    long long held = 1;
    for (int i = 0; i < 500 && held; i++)
        held = pg_int(&e, "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' "
                          "AND objid = 2 AND objsubid = 2");
    cr_assert_eq(held, 0, "B's run lock outlived its connection");
    cr_assert_eq(store_release_orphans(e.st), 1);
    cr_assert_eq(store_get_product(e.sl, "A", &p), STORE_OK);
    cr_assert_eq(p.reserved, 0);
    tenv_close(&e);
}

Test(store_pg, lists_say_unavailable_while_the_database_refuses_connections)
{
    need_pg();
    tenv e;
    tenv_open(&e);
    cr_assert_eq(add_product(&e, "A", 100, 10), STORE_OK);
    store_product ps[4];
    cr_assert_eq(store_list_products(e.sl, "", ps, 4), 1);
    /* The database goes away for this store: no new connections, and the
     * ones it has are cut (from the server's own database). */
    char sql[256];
    snprintf(sql, sizeof sql, "ALTER DATABASE %s ALLOW_CONNECTIONS false", e.pgdb);
    tenv_pg_admin(sql);
    snprintf(sql, sizeof sql,
             "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE datname = '%s'",
             e.pgdb);
    tenv_pg_admin(sql);
    cr_assert_eq(store_count_rc(store_list_products(e.sl, "", ps, 4)), STORE_UNAVAILABLE);
    store_customer cs[4];
    cr_assert_eq(store_count_rc(store_list_customers(e.sl, "", cs, 4)), STORE_UNAVAILABLE);
    store_order *os[4];
    cr_assert_eq(store_count_rc(store_list_orders(e.sl, NULL, "", os, 4)), STORE_UNAVAILABLE);
    store_order_filter f = {.customer_id = "c-1", .status = STORE_ORDER_PENDING};
    cr_assert_eq(store_count_rc(store_list_orders(e.sl, &f, "", os, 4)), STORE_UNAVAILABLE,
                 "a filter shape not prepared yet");
    store_event evs[4];
    cr_assert_eq(store_count_rc(store_read_events(e.sl, 1, NULL, evs, 4)), STORE_UNAVAILABLE);
    int64_t ids[4];
    cr_assert_eq(store_count_rc(store_list_unused_order_ids(e.sl, 1, 10, ids, 4)),
                 STORE_UNAVAILABLE);
    /* a malformed cursor is the caller's mistake, whatever the database does */
    cr_assert_eq(store_count_rc(store_list_customers(e.sl, "zzz", cs, 4)), STORE_INVALID);
    snprintf(sql, sizeof sql, "ALTER DATABASE %s ALLOW_CONNECTIONS true", e.pgdb);
    tenv_pg_admin(sql);
    /* Back: the loop reconnects once its backoff (100 ms at first) passed;
     * until then a list fails at once. Bounded by a deadline. */
    long n = -1;
    struct timespec t0, now;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (now = t0; n < 0 && now.tv_sec - t0.tv_sec < 10; clock_gettime(CLOCK_MONOTONIC, &now)) {
        n = store_list_products(e.sl, "", ps, 4);
        if (n < 0) {
            cr_assert_eq(store_count_rc(n), STORE_UNAVAILABLE);
            sched_yield();
        }
    }
    cr_assert_eq(n, 1, "reads come back by themselves");
    tenv_close(&e);
}

Test(store, count_rc_of_hostile_counts)
{
    cr_assert_eq(store_count_rc(0), STORE_OK);
    cr_assert_eq(store_count_rc(7), STORE_OK);
    cr_assert_eq(store_count_rc(-(long)STORE_UNAVAILABLE), STORE_UNAVAILABLE);
    cr_assert_eq(store_count_rc(-(long)STORE_FULL), STORE_FULL);
    cr_assert_eq(store_count_rc(-(long)STORE_FULL - 1), STORE_ERROR);
    cr_assert_eq(store_count_rc(LONG_MIN), STORE_ERROR);
}

static void on_tick(uv_timer_t *t)
{
    (void)t;
}

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

Test(store_pg, orphan_sweep_of_a_live_store_releases_a_dead_instances_holds_only)
{
    need_pg();
    tenv e;
    tenv_mkdir(&e);
    store_config cfg;
    store_config_init(&cfg);
    cfg.orphan_sweep_ms = 50; /* grace: 2 x 50 ms + 2 s */
    tenv_start(&e, &cfg);
    char cust[STORE_ID_MAX + 1];
    cr_assert_eq(add_customer(&e, "C", "c@example.com", cust), STORE_OK);
    cr_assert_eq(add_product(&e, "A", 100, 100), STORE_OK);
    peer b, c; /* instances without a sweep of their own */
    peer_open(&e, &b);
    peer_open(&e, &c);
    cr_assert_eq(reserve_on(&e, e.sl, "ext-a", "A", 1), STORE_OK);
    cr_assert_eq(reserve_on(&e, b.sl, "ext-b", "A", 3), STORE_OK);
    cr_assert_eq(reserve_on(&e, b.sl, "o-x", "A", 5), STORE_OK, "not an order id: a hold");
    cr_assert_eq(reserve_on(&e, c.sl, "ext-c", "A", 2), STORE_OK);
    int done = 0;
    store_write *pw = place(b.sl, b.st, cust, "k1", "A", 4, &done);
    while (!done)
        uv_run(&e.loop, UV_RUN_ONCE);
    cr_assert_eq(pw->rc, STORE_OK, "%s", pw->msg);
    free_place(pw);
    store_product p;
    cr_assert_eq(store_get_product(e.sl, "A", &p), STORE_OK);
    cr_assert_eq(p.reserved, 1 + 3 + 5 + 2 + 4);
    /* B dies without cleanup: its writer's connection (which holds its run
     * lock) is cut and B never notices (no work of its own). */
    long long brun = pg_int(&e, "SELECT run FROM reservations WHERE order_id = 'ext-b'");
    char sql[256];
    snprintf(sql, sizeof sql,
             "SELECT count(pg_terminate_backend(pid)) FROM pg_locks WHERE locktype = 'advisory' "
             "AND classid = 7302515 AND objid = %lld AND objsubid = 2 AND database = "
             "(SELECT oid FROM pg_database WHERE datname = current_database())",
             brun);
    int64_t t0 = mono_ms();
    cr_assert_eq(pg_int(&e, sql), 1, "B's run lock");
    /* e's sweep releases B's two holds once B was seen gone for the grace;
     * polled with a deadline. */
    uv_timer_t tick; /* paces the poll: a loop turn every 20 ms */
    cr_assert_eq(uv_timer_init(&e.loop, &tick), 0);
    cr_assert_eq(uv_timer_start(&tick, on_tick, 20, 20), 0);
    int64_t t1 = 0;
    while (!t1 && mono_ms() - t0 < 20000) {
        cr_assert_eq(store_get_product(e.sl, "A", &p), STORE_OK);
        if (p.reserved < 15)
            t1 = mono_ms();
        else
            uv_run(&e.loop, UV_RUN_ONCE);
    }
    uv_close((uv_handle_t *)&tick, NULL);
    cr_assert(t1, "B's holds were not released");
    cr_assert_geq(t1 - t0, 2000, "released before the grace passed: %lld ms", (long long)(t1 - t0));
    cr_assert_eq(p.reserved, 1 + 2 + 4, "e's, C's and B's order's stay");
    cr_assert_eq(pg_int(&e, "SELECT count(*) FROM reservations WHERE released = 1"), 2);
    cr_assert_eq(pg_int(&e, "SELECT count(*) FROM reservations WHERE released = 1 AND order_id "
                            "IN ('ext-b', 'o-x')"),
                 2);
    peer_close(&e, &c);
    peer_close(&e, &b);
    tenv_close(&e);
}
