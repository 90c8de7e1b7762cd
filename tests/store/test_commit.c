/* The writer: group commit, gap-free seqs across failing requests in one
 * batch, on_events, completions on two loops on two threads, orphaned
 * reservations, durability and order ids across a restart. */
#include <pthread.h>
#include <semaphore.h>
#include <sqlite3.h>

#include <sched.h>

#include "sqlite_int.h"
#include "store_test_util.h"

/* on_events recorder; can hold the writer inside the callback so that the
 * test can queue a batch deterministically. */
typedef struct recorder {
    pthread_mutex_t mu;
    store_event evs[4096];
    size_t n, calls;
    bool bad_call; /* n == 0 or out of order within a call */
    bool hold;     /* block in the next callback until released */
    sem_t entered, release;
} recorder;

static void on_events(void *arg, const store_event *evs, size_t n)
{
    recorder *r = arg;
    pthread_mutex_lock(&r->mu);
    bool hold = r->hold;
    r->hold = false;
    r->calls++;
    if (n == 0)
        r->bad_call = true;
    for (size_t i = 0; i < n; i++) {
        if (i && evs[i].seq != evs[i - 1].seq + 1)
            r->bad_call = true;
        if (r->n < sizeof r->evs / sizeof r->evs[0])
            r->evs[r->n++] = evs[i];
    }
    pthread_mutex_unlock(&r->mu);
    if (hold) {
        sem_post(&r->entered);
        sem_wait(&r->release);
    }
}

static void recorder_init(recorder *r, store_config *cfg)
{
    memset(r, 0, sizeof *r);
    pthread_mutex_init(&r->mu, NULL);
    sem_init(&r->entered, 0, 0);
    sem_init(&r->release, 0, 0);
    store_config_init(cfg);
    cfg->on_events = on_events;
    cfg->events_arg = r;
}

static void on_count(store_write *w)
{
    (*(int *)w->data)++;
}

Test(store_commit, group_commit_batches)
{
    tenv e;
    tenv_open(&e);
    enum { N = 2000 };
    store_write *ws = calloc(N, sizeof *ws);
    int done = 0;
    for (int i = 0; i < N; i++) {
        ws[i].op = STORE_PRODUCT_UPSERT;
        ws[i].at = i;
        snprintf(ws[i].product.sku, sizeof ws[i].product.sku, "SKU-%05d", i);
        strcpy(ws[i].product.name, "p");
        ws[i].done = on_count;
        ws[i].data = &done;
        store_submit(e.sl, &ws[i]);
    }
    while (done < N)
        uv_run(&e.loop, UV_RUN_ONCE);
    for (int i = 0; i < N; i++)
        cr_assert_eq(ws[i].rc, STORE_OK);
    store_stats st;
    store_get_stats(e.st, &st);
    cr_log_info("group commit: %llu writes in %llu commits (max batch %llu, %.1f us/commit)",
                (unsigned long long)st.writes, (unsigned long long)st.commits,
                (unsigned long long)st.max_batch,
                st.commits ? (double)st.commit_us / (double)st.commits : 0.0);
    cr_assert_eq(st.writes, N);
    cr_assert_lt(st.commits, N / 4, "%llu commits for %d writes", (unsigned long long)st.commits,
                 N);
    cr_assert_gt(st.max_batch, 1);
    cr_assert_gt(st.commit_us, 0);
    store_product prods[3];
    cr_assert_eq(store_list_products(e.sl, "SKU-01997", prods, 3), 2);
    free(ws);
    tenv_close(&e);
}

/* Orders for the batch test: created with o-ids from the store. */
static store_order *make_order(store *st, const char *key)
{
    store_order *o = store_order_new(1);
    store_next_order_id(st, o->id);
    strcpy(o->customer_id, "c-1");
    strcpy(o->idempotency_key, key);
    strcpy(o->lines[0].sku, "A");
    o->lines[0].quantity = 1;
    o->created_at = 10;
    return o;
}

Test(store_commit, seq_gap_free_with_failures_in_one_batch)
{
    tenv e;
    recorder rec;
    store_config cfg;
    recorder_init(&rec, &cfg);
    tenv_mkdir(&e);
    tenv_start(&e, &cfg);

    /* The first order's commit holds the writer in on_events while the
     * test queues a mixed batch behind it. */
    rec.hold = true;
    store_order *first = make_order(e.st, "dup");
    store_write w0 = {.op = STORE_ORDER_CREATE, .order = first, .at = 10};
    int done = 0;
    w0.done = on_count;
    w0.data = &done;
    store_submit(e.sl, &w0);
    sem_wait(&rec.entered);

    enum { N = 40 };
    store_write ws[N];
    store_order *os[N];
    memset(ws, 0, sizeof ws);
    for (int i = 0; i < N; i++) {
        os[i] = make_order(e.st, i % 4 == 1 ? "dup" : "");
        ws[i].at = 20 + i;
        ws[i].done = on_count;
        ws[i].data = &done;
        if (i % 4 == 3) { /* fails: not allowed from PENDING */
            ws[i].op = STORE_ORDER_SET_STATUS;
            strcpy(ws[i].order_id, first->id);
            ws[i].to_status = STORE_ORDER_DELIVERED;
            ws[i].allowed_from = 1u << STORE_ORDER_SHIPPED;
        } else if (i % 4 == 2) { /* succeeds: an event too */
            ws[i].op = STORE_ORDER_SET_STATUS;
            strcpy(ws[i].order_id, first->id);
            ws[i].to_status = STORE_ORDER_PENDING;
            ws[i].allowed_from = 1u << STORE_ORDER_PENDING;
        } else {
            ws[i].op = STORE_ORDER_CREATE; /* i % 4 == 1: EXISTS */
            ws[i].order = os[i];
        }
        store_submit(e.sl, &ws[i]);
    }
    sem_post(&rec.release);
    while (done < N + 1)
        uv_run(&e.loop, UV_RUN_ONCE);

    store_stats st;
    store_get_stats(e.st, &st);
    cr_assert_eq(st.max_batch, N, "the queued requests form one transaction");
    cr_assert_eq(st.commits, 2);

    int64_t expect = 2;
    for (int i = 0; i < N; i++) {
        if (i % 4 == 1 || i % 4 == 3) {
            cr_assert_eq(ws[i].rc, i % 4 == 1 ? STORE_EXISTS : STORE_PRECONDITION, "%d: %s", i,
                         ws[i].msg);
            cr_assert_eq(ws[i].event_seq, 0);
            if (i % 4 == 1) {
                cr_assert_str_eq(ws[i].result->id, first->id);
                store_order_free(ws[i].result);
            }
        } else {
            cr_assert_eq(ws[i].rc, STORE_OK, "%d: %s", i, ws[i].msg);
            cr_assert_eq(ws[i].event_seq, expect++, "%d", i);
            store_order_free(ws[i].result);
        }
        store_order_free(os[i]);
    }
    cr_assert_eq(store_last_seq(e.st), expect - 1);
    store_event evs[64];
    long n = store_read_events(e.sl, 0, NULL, evs, 64);
    cr_assert_eq(n, expect - 1);
    for (long i = 0; i < n; i++)
        cr_assert_eq(evs[i].seq, i + 1);

    /* on_events: one call per commit, all events in seq order */
    cr_assert_eq(rec.calls, 2);
    cr_assert_not(rec.bad_call);
    cr_assert_eq((long)rec.n, n);
    for (size_t i = 0; i < rec.n; i++) {
        cr_assert_eq(rec.evs[i].seq, evs[i].seq);
        cr_assert_str_eq(rec.evs[i].order_id, evs[i].order_id);
        cr_assert_eq(rec.evs[i].version, evs[i].version);
    }
    store_order_free(first);
    tenv_close(&e);
}

/* --- two loops on two threads --------------------------------------------------- */

typedef struct worker {
    store *st;
    pthread_t thread;
    int index, done, wrong_thread, failed;
    int64_t last_seq_seen;
    int out_of_order;
    char first_id[STORE_ID_MAX + 1];
    long read_back;
} worker;

typedef struct wreq {
    store_write w;
    worker *wk;
    store_order *o;
    int n;
    int64_t prev_seq_dummy;
} wreq;

static __thread worker *current_worker;

static void on_worker_done(store_write *w)
{
    wreq *r = (wreq *)w;
    worker *wk = r->wk;
    if (current_worker != wk)
        wk->wrong_thread++;
    if (w->rc != STORE_OK)
        wk->failed++;
    if (r->n != wk->done)
        wk->out_of_order++; /* completions run in submission order */
    wk->done++;
}

enum { PER_WORKER = 500 };

static void *worker_main(void *arg)
{
    worker *wk = arg;
    current_worker = wk;
    uv_loop_t loop;
    uv_loop_init(&loop);
    char err[256];
    store_loop *sl = store_loop_open(wk->st, &loop, err, sizeof err);
    if (!sl)
        return NULL;
    wreq *rs = calloc(PER_WORKER, sizeof *rs);
    for (int i = 0; i < PER_WORKER; i++) {
        rs[i].wk = wk;
        rs[i].n = i;
        rs[i].o = store_order_new(1);
        store_next_order_id(wk->st, rs[i].o->id);
        if (i == 0)
            strcpy(wk->first_id, rs[i].o->id);
        snprintf(rs[i].o->customer_id, sizeof rs[i].o->customer_id, "c-%d", wk->index);
        strcpy(rs[i].o->lines[0].sku, "A");
        rs[i].o->lines[0].quantity = 1;
        rs[i].o->created_at = 1;
        rs[i].w.op = STORE_ORDER_CREATE;
        rs[i].w.order = rs[i].o;
        rs[i].w.at = 1;
        rs[i].w.done = on_worker_done;
        store_submit(sl, &rs[i].w);
    }
    while (wk->done < PER_WORKER)
        uv_run(&loop, UV_RUN_ONCE);
    store_order *page[8];
    store_order_filter f = {.customer_id = rs[0].o->customer_id};
    wk->read_back = 0;
    char after[STORE_ID_MAX + 1] = "";
    for (;;) {
        long n = store_list_orders(sl, &f, after, page, 8);
        if (n < 0) {
            wk->read_back = -1;
            break;
        }
        wk->read_back += n;
        for (long i = 0; i < n; i++) {
            strcpy(after, page[i]->id);
            store_order_free(page[i]);
        }
        if (n < 8)
            break;
    }
    store_loop_close(sl);
    uv_run(&loop, UV_RUN_DEFAULT);
    uv_loop_close(&loop);
    for (int i = 0; i < PER_WORKER; i++)
        store_order_free(rs[i].o);
    free(rs);
    return NULL;
}

Test(store_commit, two_loops_on_two_threads)
{
    tenv e;
    recorder rec;
    store_config cfg;
    recorder_init(&rec, &cfg);
    tenv_mkdir(&e);
    cfg.url = e.url;
    char err[256];
    e.st = store_open(&cfg, err, sizeof err);
    cr_assert_not_null(e.st, "%s", err);
    worker wk[2] = {{.st = e.st, .index = 1}, {.st = e.st, .index = 2}};
    for (int i = 0; i < 2; i++)
        pthread_create(&wk[i].thread, NULL, worker_main, &wk[i]);
    for (int i = 0; i < 2; i++)
        pthread_join(wk[i].thread, NULL);
    for (int i = 0; i < 2; i++) {
        cr_assert_eq(wk[i].done, PER_WORKER);
        cr_assert_eq(wk[i].failed, 0);
        cr_assert_eq(wk[i].wrong_thread, 0);
        cr_assert_eq(wk[i].out_of_order, 0);
        cr_assert_eq(wk[i].read_back, PER_WORKER);
    }
    cr_assert_eq(store_last_seq(e.st), 2 * PER_WORKER);
    cr_assert_eq(rec.n, 2 * PER_WORKER);
    cr_assert_not(rec.bad_call);
    for (size_t i = 0; i < rec.n; i++)
        cr_assert_eq(rec.evs[i].seq, (int64_t)i + 1);
    store_stats st;
    store_get_stats(e.st, &st);
    cr_assert_eq(st.writes, 2 * PER_WORKER);
    store_close(e.st);
    tenv_rmdir(&e);
}

/* --- orphans, restart ------------------------------------------------------------- */

Test(store_commit, release_orphans)
{
    tenv e;
    tenv_open(&e);
    cr_assert_eq(add_product(&e, "A", 100, 100), STORE_OK);
    char id[STORE_ID_MAX + 1];
    /* create_order allocates o-1 and makes an order for it */
    cr_assert_eq(create_order(&e, "c-1", NULL, 1, id, NULL), STORE_OK);
    cr_assert_str_eq(id, "o-1");
    cr_assert_eq(reserve1(&e, "o-1", "A", 5), STORE_OK);   /* has its order */
    cr_assert_eq(reserve1(&e, "o-2", "A", 7), STORE_OK);   /* orphan */
    cr_assert_eq(reserve1(&e, "ext-9", "A", 1), STORE_OK); /* orphan (no such order here) */
    cr_assert_eq(reserve1(&e, "o-3", "A", 2), STORE_OK);
    store_write r = {.op = STORE_RELEASE, .at = 3};
    strcpy(r.order_id, "o-3"); /* released already: not counted */
    cr_assert_eq(run_write(&e, &r), STORE_OK);
    store_product p;
    cr_assert_eq(store_get_product(e.sl, "A", &p), STORE_OK);
    cr_assert_eq(p.reserved, 13);

    cr_assert_eq(store_release_orphans(e.st), 2);
    cr_assert_eq(store_get_product(e.sl, "A", &p), STORE_OK);
    cr_assert_eq(p.reserved, 5);
    cr_assert_eq(store_release_orphans(e.st), 0);
    /* a cancelled order's reservation left live (crash before its Release) */
    cr_assert_eq(set_status(&e, "o-1", STORE_ORDER_CANCELLED, ~0u, 0, NULL), STORE_OK);
    cr_assert_eq(store_release_orphans(e.st), 1);
    cr_assert_eq(store_get_product(e.sl, "A", &p), STORE_OK);
    cr_assert_eq(p.reserved, 0);
    tenv_close(&e);
}

Test(store_commit, reopen_keeps_everything)
{
    TENV_SQLITE_ONLY(); /* PostgreSQL: pg_cases.c */
    tenv e;
    tenv_open(&e);
    char cust[STORE_ID_MAX + 1], a[STORE_ID_MAX + 1], b[STORE_ID_MAX + 1];
    cr_assert_eq(add_customer(&e, "Ann", "ann@example.com", cust), STORE_OK);
    cr_assert_eq(add_product(&e, "A", 150, 10), STORE_OK);
    cr_assert_eq(create_order(&e, cust, "k1", 100, a, NULL), STORE_OK);
    cr_assert_eq(reserve1(&e, a, "A", 2), STORE_OK);
    cr_assert_eq(create_order(&e, cust, NULL, 200, b, NULL), STORE_OK);
    cr_assert_eq(set_status(&e, b, STORE_ORDER_CANCELLED, ~0u, 0, NULL), STORE_OK);
    /* ids handed out but used only by a reservation, or not at all */
    char r[STORE_ID_MAX + 1], unused[STORE_ID_MAX + 1];
    store_next_order_id(e.st, r);
    cr_assert_eq(reserve1(&e, r, "A", 1), STORE_OK);
    store_next_order_id(e.st, unused);
    cr_assert_str_eq(r, "o-3");
    int64_t seq = store_last_seq(e.st);
    cr_assert_eq(seq, 3);
    tenv_stop(&e);

    tenv_start(&e, NULL);
    cr_assert_eq(store_last_seq(e.st), seq);
    char next[STORE_ID_MAX + 1];
    store_next_order_id(e.st, next);
    cr_assert_str_eq(next, "o-5", "o-3 was named by a reservation, o-4 handed out: never reused");
    store_customer c;
    cr_assert_eq(store_get_customer(e.sl, cust, &c), STORE_OK);
    store_product p;
    cr_assert_eq(store_get_product(e.sl, "A", &p), STORE_OK);
    cr_assert_eq(p.on_hand, 10);
    cr_assert_eq(p.reserved, 3);
    store_order *o;
    cr_assert_eq(store_get_order(e.sl, b, &o), STORE_OK);
    cr_assert_eq(o->status, STORE_ORDER_CANCELLED);
    cr_assert_eq(o->version, 2);
    store_order_free(o);
    cr_assert_eq(store_find_order_by_key(e.sl, cust, "k1", &o), STORE_OK);
    cr_assert_str_eq(o->id, a);
    store_order_free(o);
    /* the key still collides and seqs continue */
    store_order *ex = NULL;
    cr_assert_eq(create_order(&e, cust, "k1", 300, NULL, &ex), STORE_EXISTS);
    cr_assert_str_eq(ex->id, a);
    store_order_free(ex);
    char d[STORE_ID_MAX + 1];
    cr_assert_eq(create_order(&e, cust, NULL, 400, d, NULL), STORE_OK);
    cr_assert_str_eq(d, "o-7");
    cr_assert_eq(store_last_seq(e.st), seq + 1);
    /* a reservation-only id higher than any order also survives */
    cr_assert_eq(reserve1(&e, "o-50", "A", 1), STORE_OK);
    tenv_stop(&e);
    tenv_start(&e, NULL);
    store_next_order_id(e.st, next);
    cr_assert_str_eq(next, "o-51");
    cr_assert_eq(store_release_orphans(e.st), 2); /* o-3 and o-50 */
    tenv_close(&e);
}

Test(store_commit, completions_never_inline_and_in_order)
{
    tenv e;
    tenv_open(&e);
    enum { N = 64 };
    static store_write ws[N];
    int order[N], done = 0;
    memset(ws, 0, sizeof ws);
    for (int i = 0; i < N; i++) {
        ws[i].op = i % 2 ? STORE_RELEASE : STORE_STOCK_ADJUST; /* OK / NOT_FOUND */
        strcpy(ws[i].order_id, "o-1");
        strcpy(ws[i].product.sku, "NOPE");
        ws[i].delta = 1;
        ws[i].done = on_count;
        ws[i].data = &done;
        store_submit(e.sl, &ws[i]);
        cr_assert_eq(done, 0);
        order[i] = i;
    }
    while (done < N)
        uv_run(&e.loop, UV_RUN_ONCE);
    for (int i = 0; i < N; i++)
        cr_assert_eq(ws[i].rc, i % 2 ? STORE_OK : STORE_NOT_FOUND, "%d", order[i]);
    tenv_close(&e);
}

/* A loop that goes away with writes in flight: store_loop_close waits for
 * them and runs their callbacks (and those of what the callbacks submit)
 * before it returns, so no completion reaches a closed loop. */
static store_write chained;

static void on_count_and_chain(store_write *w)
{
    int *done = w->data;
    if ((*done)++ == 0) { /* the first one submits one more */
        memset(&chained, 0, sizeof chained);
        chained.op = STORE_RELEASE;
        strcpy(chained.order_id, "o-2");
        chained.done = on_count;
        chained.data = done;
        store_submit(w->sl, &chained);
    }
}

Test(store_commit, close_with_writes_in_flight_completes_them)
{
    tenv e;
    tenv_open(&e);
    enum { N = 32 };
    static store_write ws[N];
    int done = 0;
    memset(ws, 0, sizeof ws);
    for (int i = 0; i < N; i++) {
        ws[i].op = STORE_RELEASE;
        strcpy(ws[i].order_id, "o-1");
        ws[i].done = on_count_and_chain;
        ws[i].data = &done;
        store_submit(e.sl, &ws[i]);
    }
    cr_assert_eq(done, 0, "never inline");
    store_loop_close(e.sl); /* the loop never ran */
    cr_expect_eq(done, N + 1, "every completion ran inside the close, the chained one too");
    cr_expect_eq(chained.rc, STORE_OK);
    uv_run(&e.loop, UV_RUN_DEFAULT);
    cr_assert_eq(uv_loop_close(&e.loop), 0);
    store_close(e.st);
    tenv_rmdir(&e);
}

/* --- failing transactions ----------------------------------------------------------- */

static void exec_sql(const tenv *e, const char *sql)
{
    char path[256];
    snprintf(path, sizeof path, "%s/oms.db", e->dir);
    sqlite3 *db = NULL;
    cr_assert_eq(sqlite3_open(path, &db), SQLITE_OK);
    sqlite3_busy_timeout(db, 5000);
    cr_assert_eq(sqlite3_exec(db, sql, NULL, NULL, NULL), SQLITE_OK, "%s", sqlite3_errmsg(db));
    sqlite3_close(db);
}

/* Queues [order, customer named `name`, order] behind a held commit and
 * returns their results; seqs before: 1 (the holding order). */
static void run_poisoned_batch(tenv *e, recorder *rec, const char *name, store_rc want)
{
    rec->hold = true;
    store_order *first = make_order(e->st, "");
    store_write w0 = {.op = STORE_ORDER_CREATE, .order = first, .at = 10};
    int done = 0;
    w0.done = on_count;
    w0.data = &done;
    store_submit(e->sl, &w0);
    sem_wait(&rec->entered);
    size_t calls = rec->calls;

    store_order *a = make_order(e->st, ""), *b = make_order(e->st, "");
    store_write ws[3] = {
        {.op = STORE_ORDER_CREATE, .order = a, .at = 11, .done = on_count, .data = &done},
        {.op = STORE_CUSTOMER_CREATE, .at = 11, .done = on_count, .data = &done},
        {.op = STORE_ORDER_CREATE, .order = b, .at = 11, .done = on_count, .data = &done},
    };
    strcpy(ws[1].customer.name, name);
    strcpy(ws[1].customer.email, name);
    for (int i = 0; i < 3; i++)
        store_submit(e->sl, &ws[i]);
    sem_post(&rec->release);
    while (done < 4)
        uv_run(&e->loop, UV_RUN_ONCE);
    cr_assert_eq(w0.rc, STORE_OK);
    cr_assert_eq(w0.event_seq, 1);
    for (int i = 0; i < 3; i++) {
        cr_assert_eq(ws[i].rc, want, "%d: %s %s", i, store_rc_name(ws[i].rc), ws[i].msg);
        cr_assert_eq(ws[i].event_seq, 0);
        cr_assert(ws[i].msg[0]);
    }
    cr_assert_eq(rec->calls, calls, "no events published for a failed commit");
    cr_assert_eq(store_last_seq(e->st), 1);
    store_order *g;
    cr_assert_eq(store_get_order(e->sl, a->id, &g), STORE_NOT_FOUND);
    /* the next write continues the seqs without a gap */
    store_order *c = make_order(e->st, "");
    store_write wc = {.op = STORE_ORDER_CREATE, .order = c, .at = 12};
    cr_assert_eq(run_write(e, &wc), STORE_OK, "%s", wc.msg);
    cr_assert_eq(wc.event_seq, 2);
    cr_assert_eq(rec->n, 2);
    cr_assert_eq(rec->evs[1].seq, 2);
    cr_assert_str_eq(rec->evs[1].order_id, c->id);
    store_stats st;
    store_get_stats(e->st, &st);
    cr_assert_eq(st.commits, 2);
    store_order_free(first);
    store_order_free(a);
    store_order_free(b);
    store_order_free(c);
}

Test(store_commit, transaction_rolled_back_by_sqlite_fails_the_batch)
{
    tenv e;
    recorder rec;
    store_config cfg;
    recorder_init(&rec, &cfg);
    tenv_mkdir(&e);
    tenv_start(&e, &cfg);
    if (tenv_pg()) /* an error inside a request without a savepoint */
        tenv_pg_exec(&e, "CREATE FUNCTION boom() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
                         "IF NEW.name = 'boom' THEN RAISE EXCEPTION 'boom'; END IF; RETURN NEW; "
                         "END $$; CREATE TRIGGER boom BEFORE INSERT ON customers FOR EACH ROW "
                         "EXECUTE FUNCTION boom()");
    else
        exec_sql(&e, "CREATE TRIGGER boom BEFORE INSERT ON customers WHEN NEW.name = 'boom' "
                     "BEGIN SELECT RAISE(ROLLBACK, 'boom'); END;");
    run_poisoned_batch(&e, &rec, "boom", STORE_ERROR);
    tenv_close(&e);
}

Test(store_commit, failed_commit_fails_the_batch)
{
    tenv e;
    recorder rec;
    store_config cfg;
    recorder_init(&rec, &cfg);
    tenv_mkdir(&e);
    tenv_start(&e, &cfg);
    /* a deferred foreign key violation makes COMMIT itself fail */
    if (tenv_pg())
        tenv_pg_exec(&e, "CREATE TABLE parent (id integer PRIMARY KEY);"
                         "CREATE TABLE child (p integer REFERENCES parent(id) DEFERRABLE "
                         "INITIALLY DEFERRED);"
                         "CREATE FUNCTION late() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
                         "IF NEW.name = 'late' THEN INSERT INTO child VALUES (42); END IF; "
                         "RETURN NEW; END $$; CREATE TRIGGER late AFTER INSERT ON customers "
                         "FOR EACH ROW EXECUTE FUNCTION late()");
    else
        exec_sql(&e, "CREATE TABLE parent (id INTEGER PRIMARY KEY);"
                     "CREATE TABLE child (p INTEGER REFERENCES parent(id) DEFERRABLE INITIALLY "
                     "DEFERRED);"
                     "CREATE TRIGGER late AFTER INSERT ON customers WHEN NEW.name = 'late' "
                     "BEGIN INSERT INTO child VALUES (42); END;");
    run_poisoned_batch(&e, &rec, "late", STORE_ERROR);
    tenv_close(&e);
}

Test(store_commit, failing_multi_line_reserve_rolls_back_alone)
{
    tenv e;
    recorder rec;
    store_config cfg;
    recorder_init(&rec, &cfg);
    tenv_mkdir(&e);
    tenv_start(&e, &cfg);
    cr_assert_eq(add_product(&e, "A", 100, 10), STORE_OK);
    cr_assert_eq(add_product(&e, "B", 100, 1), STORE_OK);
    rec.hold = true;
    store_order *first = make_order(e.st, "");
    store_write w0 = {.op = STORE_ORDER_CREATE, .order = first, .at = 10};
    int done = 0;
    w0.done = on_count;
    w0.data = &done;
    store_submit(e.sl, &w0);
    sem_wait(&rec.entered);
    store_line ok1 = {.sku = "A", .quantity = 1}, ok2 = {.sku = "A", .quantity = 2};
    store_line bad[2] = {{.sku = "A", .quantity = 5}, {.sku = "B", .quantity = 2}};
    store_write ws[3] = {
        {.op = STORE_RESERVE, .at = 1, .lines = &ok1, .nlines = 1, .order_id = "o-100"},
        {.op = STORE_RESERVE, .at = 1, .lines = bad, .nlines = 2, .order_id = "o-101"},
        {.op = STORE_RESERVE, .at = 1, .lines = &ok2, .nlines = 1, .order_id = "o-102"},
    };
    for (int i = 0; i < 3; i++) {
        ws[i].done = on_count;
        ws[i].data = &done;
        store_submit(e.sl, &ws[i]);
    }
    sem_post(&rec.release);
    while (done < 4)
        uv_run(&e.loop, UV_RUN_ONCE);
    cr_assert_eq(ws[0].rc, STORE_OK);
    cr_assert_eq(ws[1].rc, STORE_PRECONDITION);
    cr_assert_str_eq(ws[1].msg, "sku B: 1 available, 2 requested");
    cr_assert_eq(ws[2].rc, STORE_OK);
    store_product p;
    cr_assert_eq(store_get_product(e.sl, "A", &p), STORE_OK);
    cr_assert_eq(p.reserved, 3);
    cr_assert_eq(store_get_product(e.sl, "B", &p), STORE_OK);
    cr_assert_eq(p.reserved, 0);
    store_order_free(first);
    tenv_close(&e);
}

static void *close_store(void *arg)
{
    store_close(arg);
    return NULL;
}

/* A write submitted while store_close() drains completes with CLOSED, on its
 * loop, after the writes queued before it. (The loop outlives the store here
 * only to observe that; real callers close their loops first.) */
Test(store_commit, submit_while_closing_completes_closed)
{
    TENV_SQLITE_ONLY(); /* reads the SQLite store's closing flag */
    tenv e;
    recorder rec;
    store_config cfg;
    recorder_init(&rec, &cfg);
    tenv_mkdir(&e);
    tenv_start(&e, &cfg);
    rec.hold = true;
    store_order *first = make_order(e.st, "");
    int done = 0;
    store_write w0 = {.op = STORE_ORDER_CREATE, .order = first, .at = 10};
    w0.done = on_count;
    w0.data = &done;
    store_submit(e.sl, &w0);
    sem_wait(&rec.entered);
    store_write w1 = {
        .op = STORE_RELEASE, .at = 1, .order_id = "o-9", .done = on_count, .data = &done};
    store_submit(e.sl, &w1); /* queued before close: runs */
    pthread_t t;
    pthread_create(&t, NULL, close_store, e.st);
    /* wait until store_close() has marked the store closing */
    for (bool closing = false; !closing;) {
        pthread_mutex_lock(&e.st->wr.mu);
        closing = e.st->wr.closing;
        pthread_mutex_unlock(&e.st->wr.mu);
        if (!closing)
            sched_yield();
    }
    store_write w2 = {
        .op = STORE_RELEASE, .at = 1, .order_id = "o-9", .done = on_count, .data = &done};
    store_submit(e.sl, &w2);
    sem_post(&rec.release);
    while (done < 3)
        uv_run(&e.loop, UV_RUN_ONCE);
    pthread_join(t, NULL);
    cr_assert_eq(w0.rc, STORE_OK);
    cr_assert_eq(w1.rc, STORE_OK);
    cr_assert_eq(w2.rc, STORE_CLOSED);
    store_loop_close(e.sl);
    uv_run(&e.loop, UV_RUN_DEFAULT);
    uv_loop_close(&e.loop);
    store_order_free(first);
    tenv_rmdir(&e);
}

/* Reads go to the loop's own WAL connection: another process holding the
 * write lock delays writes (busy timeout), never reads. */
Test(store_commit, reads_do_not_wait_for_a_held_write_lock)
{
    TENV_SQLITE_ONLY(); /* PostgreSQL: pg_cases.c */
    tenv e;
    tenv_open(&e);
    char id[STORE_ID_MAX + 1];
    cr_assert_eq(add_customer(&e, "Ann", "ann@example.com", id), STORE_OK);
    char path[256];
    snprintf(path, sizeof path, "%s/oms.db", e.dir);
    sqlite3 *db = NULL;
    cr_assert_eq(sqlite3_open(path, &db), SQLITE_OK);
    cr_assert_eq(sqlite3_exec(db,
                              "BEGIN IMMEDIATE; INSERT INTO customers(name, email, status, "
                              "created_at) VALUES ('x', 'x@example.com', 1, 1)",
                              NULL, NULL, NULL),
                 SQLITE_OK);
    int done = 0;
    store_write w = {.op = STORE_CUSTOMER_CREATE, .at = 1, .done = on_count, .data = &done};
    strcpy(w.customer.name, "Bob");
    strcpy(w.customer.email, "bob@example.com");
    store_submit(e.sl, &w);
    /* Wait (up to 10 s) for the writer to take the request: from then on it
     * waits for the lock, and the reads below run while it does. */
    store_stats ss;
    store_get_stats(e.st, &ss);
    for (int i = 0; i < 10000 && ss.queued != 0; i++) {
        usleep(1000);
        store_get_stats(e.st, &ss);
    }
    cr_assert_eq(ss.queued, 0, "the writer took the request");
    for (int i = 0; i < 20; i++) {
        store_customer c;
        cr_assert_eq(store_get_customer(e.sl, id, &c), STORE_OK);
        cr_assert_eq(store_get_customer(e.sl, "c-2", &c), STORE_NOT_FOUND);
        uv_run(&e.loop, UV_RUN_NOWAIT);
    }
    cr_assert_eq(done, 0, "the write waits for the lock");
    cr_assert_eq(sqlite3_exec(db, "COMMIT", NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(db);
    while (!done)
        uv_run(&e.loop, UV_RUN_ONCE);
    cr_assert_eq(w.rc, STORE_OK, "%s", w.msg);
    cr_assert_str_eq(w.customer.id, "c-3");
    tenv_close(&e);
}

/* A failed bind (here: a parameter index out of range) is not ignored: the
 * next store__step on that statement returns it instead of running the
 * statement with the parameter missing; the step after that runs normally. */
Test(store_commit, failed_bind_fails_the_step)
{
    TENV_SQLITE_ONLY(); /* PostgreSQL: pg_cases.c */
    sqlite3 *db = NULL;
    cr_assert_eq(sqlite3_open(":memory:", &db), SQLITE_OK);
    sqlite3_stmt *s = NULL;
    cr_assert_eq(sqlite3_prepare_v2(db, "SELECT ?1", -1, &s, NULL), SQLITE_OK);
    store__bind_int64(s, 1, 7);
    store__bind_int64(s, 2, 8); /* no such parameter */
    cr_assert_eq(store__step(s), SQLITE_RANGE);
    sqlite3_reset(s);
    store__bind_text(s, 1, "ok", -1, SQLITE_STATIC);
    cr_assert_eq(store__step(s), SQLITE_ROW);
    cr_assert_str_eq((const char *)sqlite3_column_text(s, 0), "ok");
    sqlite3_finalize(s);
    sqlite3_close(db);
}
