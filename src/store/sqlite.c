/* sqlite.c - the SQLite store: opening, the writer thread and its group
 * commit, store_loops and their completions.
 *
 * store_submit() appends to one mutex+condvar queue. The writer takes all
 * that is queued (up to max_batch), runs it in one BEGIN IMMEDIATE ... COMMIT
 * with a SAVEPOINT per request, so a failing request rolls back alone (and
 * gives back the event seq it took: seqs stay gap-free), and COMMITs: one
 * fsync for the batch. While that COMMIT runs, new requests queue up and form
 * the next batch: the busier the store, the bigger its transactions.
 *
 * After a durable commit the writer publishes the commit's events
 * (on_events), then appends each request to its store_loop's completion list
 * and wakes the loop with uv_async_send(); the loop runs done() in
 * submission order.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sched.h>
#include <time.h>

#include "base/alloc.h"
#include "base/log.h"
#include "sqlite_int.h"

void store_config_init(store_config *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    cfg->max_batch = 1024;
}

static uint64_t now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

static int64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Whether the background forgetting of old idempotency keys is due (writer
 * thread). */
static bool forget_due(const store *st, int64_t now)
{
    return st->key_retention_ms > 0 && now >= st->next_forget_ms;
}

/* Forgets keys past the retention inside the current transaction. Not
 * fatal when the statement fails and the transaction survives: tried again
 * next time. Returns false when SQLite rolled the transaction back. */
static bool forget_keys(store *st, int64_t now)
{
    sqlite3_stmt *s = st->ws[WS_KEYS_FORGET];
    store__bind_int64(s, 1, now - st->key_retention_ms);
    store__bind_int(s, 2, STORE_KEYS_FORGET_MAX);
    int rc = store__step(s);
    sqlite3_reset(s);
    /* A full page: more are due at once; else look again a quarter of the
     * retention later (at least 100 ms, at most a minute). */
    int64_t period = st->key_retention_ms / 4;
    period = period < 100 ? 100 : period > 60000 ? 60000 : period;
    bool full = rc == SQLITE_DONE && sqlite3_changes(st->db) >= STORE_KEYS_FORGET_MAX;
    st->next_forget_ms = full ? now : now + period;
    if (rc == SQLITE_DONE)
        return true;
    OMS_WARN("store: sqlite:%s: forgetting old idempotency keys: %s", st->path,
             sqlite3_errmsg(st->db));
    return !sqlite3_get_autocommit(st->db);
}

/* Runs a cached no-parameter statement (BEGIN, COMMIT, SAVEPOINT...). */
static int run(store *st, int which)
{
    sqlite3_stmt *s = st->ws[which];
    int rc = store__step(s);
    sqlite3_reset(s);
    return rc == SQLITE_DONE ? SQLITE_OK : rc;
}

/* --- completions ------------------------------------------------------------- */

static void deliver(store_write *w)
{
    store_loop *sl = w->sl;
    if (!sl) { /* an internal request: completes on the writer */
        w->done(w);
        return;
    }
    w->next = NULL;
    pthread_mutex_lock(&sl->mu);
    if (sl->done_tail)
        sl->done_tail->next = w;
    else
        sl->done_head = w;
    sl->done_tail = w;
    pthread_mutex_unlock(&sl->mu);
    uv_async_send(&sl->async);
}

static void on_async(uv_async_t *a)
{
    store_loop *sl = a->data;
    pthread_mutex_lock(&sl->mu);
    store_write *w = sl->done_head;
    sl->done_head = sl->done_tail = NULL;
    pthread_mutex_unlock(&sl->mu);
    while (w) {
        store_write *next = w->next;
        w->next = NULL;
        w->done(w); /* may free w */
        w = next;
    }
}

/* --- the writer ----------------------------------------------------------------- */

static void fail_request(store_write *w, store_rc rc, const char *msg)
{
    w->rc = rc;
    store__copy(w->msg, sizeof w->msg, msg);
    w->existed = false;
    w->event_seq = 0;
    if (w->result) {
        store_order_free(w->result);
        w->result = NULL;
    }
}

/* What a failed SQLite call means for the caller: a full disk is
 * RESOURCE_EXHAUSTED territory, a database that cannot be written now (made
 * read-only, I/O errors, locked by another process) is UNAVAILABLE; both clear
 * by themselves once the fault does, as every batch tries afresh. Anything
 * else is a store error. */
static store_rc classify(int sqlite_code)
{
    switch (sqlite_code & 0xff) {
    case SQLITE_FULL:
        return STORE_FULL;
    case SQLITE_READONLY:
    case SQLITE_IOERR:
    case SQLITE_CANTOPEN:
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
    case SQLITE_PROTOCOL:
        return STORE_UNAVAILABLE;
    default:
        return STORE_ERROR;
    }
}

const uint64_t store_commit_bounds_us[STORE_COMMIT_BUCKETS] = {
    100, 250, 500, 1000, 2500, 5000, 10000, 25000, 50000, 100000, 250000, 1000000};
const uint64_t store_batch_bounds[STORE_BATCH_BUCKETS] = {1,  2,   4,   8,    16,   32,
                                                          64, 128, 256, 1024, 4096, 65536};

/* The writer is the only writer of these: relaxed load + store. */
static void bump(_Atomic uint64_t *c, uint64_t v)
{
    atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed) + v,
                          memory_order_relaxed);
}

static void observe(_Atomic uint64_t *hist, const uint64_t *bounds, size_t n, uint64_t v)
{
    for (size_t i = 0; i < n; i++)
        if (v <= bounds[i]) {
            bump(&hist[i], 1);
            return;
        }
}

/* Fails every request of a batch (its transaction no longer open) and forgets its events and seqs.
 * code: the SQLite error that failed it. */
static void fail_batch(store *st, store_write *batch, int64_t seq0, const char *why, int code)
{
    bump(&st->failed, 1);
    atomic_store_explicit(&st->last_failed, true, memory_order_relaxed);
    atomic_store_explicit(&st->last_failure_ms, wall_ms(), memory_order_relaxed);
    char msg[STORE_MSG_MAX + 1];
    snprintf(msg, sizeof msg, "%s%.150s", strncmp(why, "store: ", 7) == 0 ? "" : "store: ", why);
    OMS_ERROR("store: sqlite:%s: transaction failed: %s", st->path, why);
    store_rc rc = classify(code);
    for (store_write *w = batch; w; w = w->next)
        if (w->rc != STORE_CLOSED)
            fail_request(w, rc, msg);
    st->seq = seq0;
    st->nevs = 0;
    st->batch_hwm = st->hwm_persisted;
}

/* The one way a batch fails once BEGIN was tried: rolls its transaction back
 * unless SQLite already did (I/O error, full disk) or none is open, then
 * fails every request with why and the SQLite error code. why is copied
 * first, as the rollback replaces SQLite's message. */
static void rollback_and_fail(store *st, store_write *batch, int64_t seq0, const char *why,
                              int code)
{
    char msg[STORE_MSG_MAX + 1];
    store__copy(msg, sizeof msg, why);
    if (!sqlite3_get_autocommit(st->db))
        run(st, WS_ROLLBACK);
    fail_batch(st, batch, seq0, msg, code);
}

/* rollback_and_fail on the SQL error just seen. */
static void abort_batch(store *st, store_write *batch, int64_t seq0)
{
    rollback_and_fail(st, batch, seq0, sqlite3_errmsg(st->db), sqlite3_extended_errcode(st->db));
}

/* Whether a request needs a savepoint of its own. The ops below fail (with
 * anything but STORE_ERROR) before their first write, or their only write is
 * one statement, which SQLite makes atomic: they skip the two extra
 * statements; so does ORDER_PLACE, whose checks all come before its first
 * write. A multi-line RESERVE can fail after reserving earlier lines,
 * RELEASE, a with-stock cancel and the orphan sweep write several rows: they
 * get one. An SQL error
 * in a request without a savepoint fails its whole batch (run_batch). */
static bool needs_savepoint(const store_write *w)
{
    switch ((int)w->op) {
    case STORE_RESERVE:
        return w->nlines > 1;
    case STORE_ORDER_SET_STATUS: /* the release after the status change */
        return w->with_stock && w->to_status == STORE_ORDER_CANCELLED;
    case STORE_RELEASE:
    case STORE__OP_RELEASE_ORPHANS:
        return true;
    default:
        return false;
    }
}

static void run_batch(store *st, store_write *batch, size_t n)
{
    int64_t seq0 = st->seq;
    st->nevs = 0;
    st->batch_hwm = st->hwm_persisted;
    st->batch_noted = 0;
    bool any = false;
    for (store_write *w = batch; w && !any; w = w->next)
        any = w->rc != STORE_CLOSED;
    int64_t now = wall_ms();
    bool forget = forget_due(st, now);
    if (!any && !atomic_load(&st->mark_wanted) && !forget) /* only writes refused while closing */
        goto complete;
    if (run(st, WS_BEGIN) != SQLITE_OK) {
        abort_batch(st, batch, seq0);
        goto complete;
    }
    for (store_write *w = batch; w; w = w->next) {
        if (w->rc == STORE_CLOSED) /* submitted while closing: not run */
            continue;
        int64_t seq = st->seq;
        size_t nevs = st->nevs;
        bool sp = needs_savepoint(w);
        if (sp && run(st, WS_SAVEPOINT) != SQLITE_OK) {
            fail_request(w, STORE_ERROR, sqlite3_errmsg(st->db));
            continue;
        }
        store_rc rc = store__apply(st, w);
        if (rc == STORE_OK) {
            if (sp && run(st, WS_RELEASE_SP) != SQLITE_OK) {
                abort_batch(st, batch, seq0); /* the savepoint is still open */
                goto complete;
            }
            continue;
        }
        int code = rc == STORE_ERROR ? sqlite3_extended_errcode(st->db) : SQLITE_OK;
        st->seq = seq;
        st->nevs = nevs;
        if (sqlite3_get_autocommit(st->db) || (!sp && rc == STORE_ERROR)) {
            /* SQLite rolled the whole transaction back (I/O error, full
             * disk), or an SQL error hit a request without a savepoint
             * midway: the batch cannot be trusted, fail all of it. */
            rollback_and_fail(st, batch, seq0, w->msg, code);
            goto complete;
        }
        if (sp && (run(st, WS_ROLLBACK_SP) != SQLITE_OK || run(st, WS_RELEASE_SP) != SQLITE_OK)) {
            abort_batch(st, batch, seq0); /* the savepoint is still open */
            goto complete;
        }
        if (rc == STORE_ERROR) /* this request alone failed on an SQL error */
            w->rc = classify(code);
    }
    /* Forgetting old idempotency keys rides along (or runs alone). */
    if (forget && !forget_keys(st, now)) {
        abort_batch(st, batch, seq0);
        goto complete;
    }
    /* A raise of the order-id mark rides along (or runs alone, batch NULL):
     * one more block, and this run's sweep range grows with it. */
    int64_t new_mark = 0;
    if (atomic_exchange(&st->mark_wanted, false)) {
        new_mark = atomic_load(&st->id_mark) + st->id_block;
        if (new_mark > st->batch_hwm)
            st->batch_hwm = new_mark;
        char sql[128];
        snprintf(sql, sizeof sql, "UPDATE sweep_ranges SET last = %lld WHERE first = %lld",
                 (long long)new_mark, (long long)st->run_first);
        if (sqlite3_exec(st->db, sql, NULL, NULL, NULL) != SQLITE_OK) {
            abort_batch(st, batch, seq0);
            goto complete;
        }
    }
    if (st->batch_hwm > st->hwm_persisted) {
        sqlite3_stmt *s = st->ws[WS_META_SET_HWM];
        store__bind_int64(s, 1, st->batch_hwm);
        int rc = store__step(s);
        sqlite3_reset(s);
        if (rc != SQLITE_DONE) {
            abort_batch(st, batch, seq0);
            goto complete;
        }
    }
    uint64_t t0 = now_us();
    if (run(st, WS_COMMIT) != SQLITE_OK) {
        abort_batch(st, batch, seq0);
        goto complete;
    }
    uint64_t took = now_us() - t0;
    atomic_fetch_add(&st->commit_us, took);
    atomic_fetch_add(&st->commits, 1);
    observe(st->commit_hist, store_commit_bounds_us, STORE_COMMIT_BUCKETS, took);
    atomic_store_explicit(&st->last_failed, false, memory_order_relaxed);
    st->hwm_persisted = st->batch_hwm;
    if (st->batch_noted > st->max_noted)
        st->max_noted = st->batch_noted;
    if (new_mark) {
        atomic_store(&st->id_mark, new_mark);
        /* A burst took half a block during this commit: another one. */
        if (new_mark - atomic_load(&st->next_order) < st->id_block / 2)
            atomic_store(&st->mark_wanted, true);
    }
    atomic_store(&st->last_seq, st->seq);
    if (st->nevs && st->on_events)
        st->on_events(st->events_arg, st->evs, st->nevs);
complete:
    st->nevs = 0;
    atomic_fetch_add(&st->writes, n);
    if (n) {
        bump(&st->batches, 1);
        bump(&st->batch_requests, n);
        observe(st->batch_hist, store_batch_bounds, STORE_BATCH_BUCKETS, n);
    }
    uint64_t mb = atomic_load(&st->max_batch_seen);
    if (n > mb)
        atomic_store(&st->max_batch_seen, n);
    while (batch) {
        store_write *next = batch->next;
        deliver(batch);
        batch = next;
    }
}

static void *writer_main(void *arg)
{
    store *st = arg;
    pthread_mutex_lock(&st->mu);
    for (;;) {
        bool waited = false;
        while (!st->head && !st->closing && !atomic_load(&st->mark_wanted) &&
               !forget_due(st, wall_ms())) {
            if (st->key_retention_ms > 0) {
                struct timespec ts = {.tv_sec = st->next_forget_ms / 1000,
                                      .tv_nsec = (long)(st->next_forget_ms % 1000) * 1000000};
                pthread_cond_timedwait(&st->cv, &st->mu, &ts);
            } else {
                pthread_cond_wait(&st->cv, &st->mu);
            }
            waited = true;
        }
        if (waited && st->head) {
            /* Woken by a loop's first submit: where the loop shares this
             * thread's core, let it queue the rest of its iteration's writes
             * first, or the batch is that one write and its own fsync. With a
             * core to itself the yield returns at once. */
            pthread_mutex_unlock(&st->mu);
            sched_yield();
            pthread_mutex_lock(&st->mu);
        }
        if (!st->head && st->closing)
            break;       /* closing and drained */
        if (!st->head) { /* only the order-id mark to raise, or keys to forget */
            pthread_mutex_unlock(&st->mu);
            run_batch(st, NULL, 0);
            pthread_mutex_lock(&st->mu);
            continue;
        }
        store_write *batch = st->head, *last = batch;
        size_t n = 1;
        while (last->next && n < st->max_batch) {
            last = last->next;
            n++;
        }
        st->head = last->next;
        if (!st->head)
            st->tail = NULL;
        atomic_fetch_sub(&st->queued, n);
        last->next = NULL;
        pthread_mutex_unlock(&st->mu);
        run_batch(st, batch, n);
        pthread_mutex_lock(&st->mu);
    }
    st->stopped = true;
    pthread_mutex_unlock(&st->mu);
    return NULL;
}

void store__sqlite_submit(store_loop *sl, store_write *w)
{
    store *st = sl->st;
    w->sl = sl;
    w->next = NULL;
    w->msg[0] = '\0';
    w->existed = false;
    w->event_seq = 0;
    w->previous_status = 0;
    w->result = NULL;
    pthread_mutex_lock(&st->mu);
    if (st->stopped) {
        pthread_mutex_unlock(&st->mu);
        fail_request(w, STORE_CLOSED, "store is closed");
        deliver(w);
        return;
    }
    /* While closing, a request still goes through the queue (so completions
     * keep submission order) but is not run. */
    w->rc = st->closing ? STORE_CLOSED : STORE_OK;
    if (w->rc == STORE_CLOSED)
        store__copy(w->msg, sizeof w->msg, "store is closing");
    if (st->tail)
        st->tail->next = w;
    else
        st->head = w;
    st->tail = w;
    atomic_fetch_add(&st->queued, 1);
    pthread_cond_signal(&st->cv);
    pthread_mutex_unlock(&st->mu);
}

/* --- release_orphans: an internal request, waited for ----------------------------- */

typedef struct sync_write {
    store_write w;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool done;
} sync_write;

static void on_sync_done(store_write *w)
{
    sync_write *s = (sync_write *)w;
    pthread_mutex_lock(&s->mu);
    s->done = true;
    pthread_cond_signal(&s->cv);
    pthread_mutex_unlock(&s->mu);
}

/* Runs an internal op on the writer and waits for its commit; *delta gets
 * w.delta (in and out). STORE_CLOSED if the store is closing. */
static store_rc run_sync(store *st, store_op op, int64_t *delta)
{
    sync_write *s = oms_calloc(1, sizeof *s);
    if (!s)
        return STORE_ERROR;
    pthread_mutex_init(&s->mu, NULL);
    pthread_cond_init(&s->cv, NULL);
    s->w.op = op;
    s->w.delta = *delta;
    s->w.done = on_sync_done;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    s->w.at = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
    store_rc r = STORE_CLOSED;
    pthread_mutex_lock(&st->mu);
    bool queued = !st->closing && !st->stopped;
    if (queued) {
        if (st->tail)
            st->tail->next = &s->w;
        else
            st->head = &s->w;
        st->tail = &s->w;
        atomic_fetch_add(&st->queued, 1);
        pthread_cond_signal(&st->cv);
    }
    pthread_mutex_unlock(&st->mu);
    if (queued) {
        pthread_mutex_lock(&s->mu);
        while (!s->done)
            pthread_cond_wait(&s->cv, &s->mu);
        pthread_mutex_unlock(&s->mu);
        r = s->w.rc;
        *delta = s->w.delta;
    }
    pthread_cond_destroy(&s->cv);
    pthread_mutex_destroy(&s->mu);
    oms_free(s);
    return r;
}

long store__sqlite_release_orphans(store *st)
{
    int64_t n = 0;
    if (run_sync(st, STORE__OP_RELEASE_ORPHANS, &n) != STORE_OK)
        return -1;
    return (long)n; /* the count of releases */
}

store_rc store__sqlite_sweep_done(store *st, const store_id_range *r)
{
    int64_t first = r->first;
    if (first >= st->run_first)
        return STORE_OK; /* this run's own range stays */
    return run_sync(st, STORE__OP_SWEEP_DONE, &first);
}

size_t store__sqlite_pending_sweeps(store *st, store_id_range *out, size_t cap)
{
    for (size_t i = 0; i < st->npending && i < cap; i++)
        out[i] = st->pending[i];
    return st->npending;
}

/* --- open and close ----------------------------------------------------------------- */

static int open_db(const char *path, sqlite3 **db, char *err, size_t errlen)
{
    int rc = sqlite3_open_v2(
        path, db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, NULL);
    if (rc != SQLITE_OK) {
        snprintf(err, errlen, "sqlite:%s: %s", path,
                 *db ? sqlite3_errmsg(*db) : sqlite3_errstr(rc));
        sqlite3_close(*db);
        *db = NULL;
        return -1;
    }
    sqlite3_extended_result_codes(*db, 1);
    sqlite3_busy_timeout(*db, 5000);
    return 0;
}

static int64_t query_int(sqlite3 *db, const char *sql)
{
    sqlite3_stmt *s = NULL;
    int64_t v = 0;
    if (sqlite3_prepare_v2(db, sql, -1, &s, NULL) == SQLITE_OK && store__step(s) == SQLITE_ROW)
        v = sqlite3_column_int64(s, 0);
    sqlite3_finalize(s);
    return v;
}

/* Reads the previous runs' sweep ranges, then durably reserves this run's
 * first block of ids (start + 1 .. start + id_block) and records it as this
 * run's range. */
static int open_id_block(store *st, int64_t start, char *err, size_t errlen)
{
    sqlite3_stmt *s = NULL;
    size_t cap = 0;
    int rc = sqlite3_prepare_v2(st->db, "SELECT first, last FROM sweep_ranges ORDER BY first", -1,
                                &s, NULL);
    while (rc == SQLITE_OK && (rc = store__step(s)) == SQLITE_ROW) {
        if (st->npending == cap) {
            cap = cap ? cap * 2 : 8;
            void *p = oms_realloc(st->pending, cap * sizeof *st->pending);
            if (!p) {
                sqlite3_finalize(s);
                snprintf(err, errlen, "out of memory");
                return -1;
            }
            st->pending = p;
        }
        st->pending[st->npending].first = sqlite3_column_int64(s, 0);
        st->pending[st->npending].last = sqlite3_column_int64(s, 1);
        st->npending++;
        rc = SQLITE_OK;
    }
    sqlite3_finalize(s);
    if (rc != SQLITE_DONE) {
        snprintf(err, errlen, "sqlite:%s: reading sweep ranges: %s", st->path,
                 sqlite3_errmsg(st->db));
        return -1;
    }
    int64_t mark = start + st->id_block;
    char sql[320], *msg = NULL;
    snprintf(sql, sizeof sql,
             "BEGIN IMMEDIATE;"
             "UPDATE meta SET value = %lld WHERE key = 'order_hwm' AND value < %lld;"
             "INSERT OR REPLACE INTO sweep_ranges(first, last) VALUES (%lld, %lld);"
             "COMMIT;",
             (long long)mark, (long long)mark, (long long)(start + 1), (long long)mark);
    if (sqlite3_exec(st->db, sql, NULL, NULL, &msg) != SQLITE_OK) {
        snprintf(err, errlen, "sqlite:%s: reserving order ids: %s", st->path,
                 msg ? msg : sqlite3_errmsg(st->db));
        sqlite3_free(msg);
        if (!sqlite3_get_autocommit(st->db))
            sqlite3_exec(st->db, "ROLLBACK", NULL, NULL, NULL);
        return -1;
    }
    st->run_first = start + 1;
    st->max_noted = start;
    st->hwm_persisted = mark;
    atomic_store(&st->id_mark, mark);
    return 0;
}

/* At a clean close (the writer stopped): this run's range shrinks to the ids
 * it handed out (or goes, if none), and the mark comes back down to the
 * highest id handed out or written, so the next run goes on from there. */
static void trim_run_range(store *st)
{
    int64_t n = atomic_load(&st->next_order);
    int64_t mark = n > st->max_noted ? n : st->max_noted;
    char sql[400];
    if (n < st->run_first)
        snprintf(sql, sizeof sql,
                 "BEGIN IMMEDIATE; DELETE FROM sweep_ranges WHERE first = %lld;"
                 "UPDATE meta SET value = %lld WHERE key = 'order_hwm'; COMMIT;",
                 (long long)st->run_first, (long long)mark);
    else
        snprintf(sql, sizeof sql,
                 "BEGIN IMMEDIATE; UPDATE sweep_ranges SET last = %lld WHERE first = %lld;"
                 "UPDATE meta SET value = %lld WHERE key = 'order_hwm'; COMMIT;",
                 (long long)n, (long long)st->run_first, (long long)mark);
    if (sqlite3_exec(st->db, sql, NULL, NULL, NULL) != SQLITE_OK) {
        if (!sqlite3_get_autocommit(st->db))
            sqlite3_exec(st->db, "ROLLBACK", NULL, NULL, NULL);
        OMS_WARN("store: sqlite:%s: trimming this run's sweep range: %s", st->path,
                 sqlite3_errmsg(st->db));
    }
}

static void free_store(store *st)
{
    for (int i = 0; i < WS__COUNT; i++)
        sqlite3_finalize(st->ws[i]);
    sqlite3_close(st->db);
    pthread_cond_destroy(&st->cv);
    pthread_mutex_destroy(&st->mu);
    oms_free(st->evs);
    oms_free(st->blob);
    oms_free(st->pending);
    oms_free(st);
}

/* SQLite's memory statistics take a global mutex on every allocation; the
 * store does not use them. Must run before SQLite initialises (a no-op
 * otherwise). */
/* SQLite allocates through base/alloc.h too, so that a failing allocator
 * reaches its SQLITE_NOMEM paths and ours behind them. SQLite asks for sizes
 * back (xSize): each block carries its size in an 8-byte header (SQLite
 * wants 8-byte alignment). */
static void *sq_malloc(int n)
{
    uint64_t *p = oms_malloc((size_t)n + 8);
    if (!p)
        return NULL;
    p[0] = (uint64_t)n;
    return p + 1;
}

static void sq_free(void *p)
{
    if (p)
        oms_free((uint64_t *)p - 1);
}

static void *sq_realloc(void *p, int n)
{
    uint64_t *q = oms_realloc((uint64_t *)p - 1, (size_t)n + 8);
    if (!q)
        return NULL;
    q[0] = (uint64_t)n;
    return q + 1;
}

static int sq_size(void *p)
{
    return p ? (int)((uint64_t *)p)[-1] : 0;
}

static int sq_roundup(int n)
{
    return (n + 7) & ~7;
}

static int sq_init(void *arg)
{
    (void)arg;
    return SQLITE_OK;
}

static void sq_shutdown(void *arg)
{
    (void)arg;
}

/* Before SQLite initializes (first store_open); if something else
 * initialized it first, the calls fail and SQLite keeps its defaults. */
static void configure_sqlite(void)
{
    static const sqlite3_mem_methods mem = {sq_malloc,  sq_free, sq_realloc,  sq_size,
                                            sq_roundup, sq_init, sq_shutdown, NULL};
    sqlite3_config(SQLITE_CONFIG_MALLOC, &mem);
    sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0);
}

store *store__sqlite_open(const store_config *cfg, char *err, size_t errlen)
{
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once(&once, configure_sqlite);
    if (errlen)
        err[0] = '\0';
    const char *url = cfg && cfg->url ? cfg->url : "";
    if (strncmp(url, "sqlite:", 7) != 0) {
        snprintf(err, errlen, "unsupported store url '%.200s' (want sqlite:PATH or postgres://...)",
                 url);
        return NULL;
    }
    const char *path = url + 7;
    if (!*path || strcmp(path, ":memory:") == 0 || strncmp(path, "file:", 5) == 0) {
        snprintf(err, errlen, "%.200s: a database file path is required", url);
        return NULL;
    }
    if (strlen(path) >= sizeof((store *)0)->path) {
        snprintf(err, errlen, "sqlite: path too long");
        return NULL;
    }
    store *st = oms_calloc(1, sizeof *st);
    if (!st) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    st->base.be = &store__sqlite_backend;
    pthread_mutex_init(&st->mu, NULL);
    pthread_cond_init(&st->cv, NULL);
    strcpy(st->path, path);
    st->max_batch = cfg->max_batch ? cfg->max_batch : 1024;
    if (st->max_batch > 65536) /* bigger batches only add latency */
        st->max_batch = 65536;
    st->on_events = cfg->on_events;
    st->events_arg = cfg->events_arg;
    /* One event per request at most. */
    st->evs_cap = st->max_batch;
    st->evs = oms_malloc(st->evs_cap * sizeof *st->evs);
    st->blob = oms_malloc(STORE__LINES_BLOB_MAX);
    if (!st->evs || !st->blob) {
        snprintf(err, errlen, "out of memory");
        goto fail;
    }
    if (open_db(path, &st->db, err, errlen) != 0)
        goto fail;
    if (store__schema_migrate(st, err, errlen) != 0 || store__prepare_writer(st, err, errlen) != 0)
        goto fail;
    st->seq = query_int(st->db, "SELECT max(seq) FROM events");
    atomic_store(&st->last_seq, st->seq);
    int64_t hwm = query_int(st->db, "SELECT value FROM meta WHERE key = 'order_hwm'");
    int64_t max_order = query_int(st->db, "SELECT max(id) FROM orders");
    int64_t start = hwm > max_order ? hwm : max_order;
    st->id_block = cfg->id_block > 0 ? cfg->id_block : 16384;
    st->key_retention_ms = cfg->key_retention_ms > 0 ? cfg->key_retention_ms : 0;
    st->next_forget_ms = wall_ms(); /* a first look right after the start */
    if (open_id_block(st, start, err, errlen) != 0)
        goto fail;
    atomic_store(&st->next_order, start);
    if (pthread_create(&st->writer, NULL, writer_main, st) != 0) {
        snprintf(err, errlen, "sqlite:%s: cannot start the writer thread", path);
        goto fail;
    }
    pthread_setname_np(st->writer, "oms-store"); /* for top -H, perf, the benchmark */
    return st;
fail:
    free_store(st);
    return NULL;
}

void store__sqlite_close(store *st)
{
    if (!st)
        return;
    pthread_mutex_lock(&st->mu);
    st->closing = true;
    pthread_cond_signal(&st->cv);
    pthread_mutex_unlock(&st->mu);
    pthread_join(st->writer, NULL);
    trim_run_range(st);
    store_stats s;
    store__sqlite_get_stats(st, &s);
    if (s.commits) /* the commit (fsync) time is the write path's floor */
        OMS_INFO("store: sqlite:%s: %llu writes in %llu commits (%.1f per commit, max %llu), "
                 "%.0f us per commit",
                 st->path, (unsigned long long)s.writes, (unsigned long long)s.commits,
                 (double)s.writes / (double)s.commits, (unsigned long long)s.max_batch,
                 (double)s.commit_us / (double)s.commits);
    free_store(st);
}

/* Asks the writer to raise the order-id mark (once until it took it up). */
static void want_mark(store *st)
{
    if (atomic_exchange(&st->mark_wanted, true))
        return;
    pthread_mutex_lock(&st->mu);
    pthread_cond_signal(&st->cv);
    pthread_mutex_unlock(&st->mu);
}

store_rc store__sqlite_next_order_id(store *st, char out[STORE_ID_MAX + 1])
{
    int64_t n = atomic_load(&st->next_order), mark;
    do {
        mark = atomic_load(&st->id_mark);
        if (n >= mark) { /* the next block is not durable yet */
            want_mark(st);
            out[0] = '\0';
            return STORE_UNAVAILABLE;
        }
    } while (!atomic_compare_exchange_weak(&st->next_order, &n, n + 1));
    n++;
    if (mark - n < st->id_block / 2)
        want_mark(st);
    store__format_id(out, 'o', n);
    return STORE_OK;
}

void store_format_order_id(char out[STORE_ID_MAX + 1], int64_t n)
{
    store__format_id(out, 'o', n);
}

int64_t store__sqlite_last_seq(store *st)
{
    return atomic_load(&st->last_seq);
}

void store__sqlite_get_stats(store *st, store_stats *out)
{
    out->commits = atomic_load(&st->commits);
    out->writes = atomic_load(&st->writes);
    out->max_batch = atomic_load(&st->max_batch_seen);
    out->commit_us = atomic_load(&st->commit_us);
    for (size_t i = 0; i < STORE_COMMIT_BUCKETS; i++)
        out->commit_hist[i] = atomic_load_explicit(&st->commit_hist[i], memory_order_relaxed);
    for (size_t i = 0; i < STORE_BATCH_BUCKETS; i++)
        out->batch_hist[i] = atomic_load_explicit(&st->batch_hist[i], memory_order_relaxed);
    out->batches = atomic_load_explicit(&st->batches, memory_order_relaxed);
    out->batch_requests = atomic_load_explicit(&st->batch_requests, memory_order_relaxed);
    out->failed = atomic_load_explicit(&st->failed, memory_order_relaxed);
    out->last_failed = atomic_load_explicit(&st->last_failed, memory_order_relaxed);
    out->last_failure_ms = atomic_load_explicit(&st->last_failure_ms, memory_order_relaxed);
    out->queued = atomic_load_explicit(&st->queued, memory_order_relaxed);
}

/* --- store_loop --------------------------------------------------------------------- */

store_loop *store__sqlite_loop_open(store *st, uv_loop_t *loop, char *err, size_t errlen)
{
    store_loop *sl = oms_calloc(1, sizeof *sl);
    if (!sl) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    sl->base.be = &store__sqlite_backend;
    sl->st = st;
    sl->loop = loop;
    pthread_mutex_init(&sl->mu, NULL);
    if (open_db(st->path, &sl->db, err, errlen) != 0)
        goto fail;
    sqlite3_exec(sl->db, "PRAGMA query_only=1", NULL, NULL, NULL);
    if (store__prepare_reader(sl, err, errlen) != 0)
        goto fail_db;
    int rc = uv_async_init(loop, &sl->async, on_async);
    if (rc != 0) {
        snprintf(err, errlen, "uv_async_init: %s", uv_strerror(rc));
        goto fail_db;
    }
    sl->async.data = sl;
    return sl;
fail_db:
    store__finalize_reader(sl);
    sqlite3_close(sl->db);
fail:
    pthread_mutex_destroy(&sl->mu);
    oms_free(sl);
    return NULL;
}

static void on_async_close(uv_handle_t *h)
{
    store_loop *sl = h->data;
    pthread_mutex_destroy(&sl->mu);
    oms_free(sl);
}

void store__sqlite_loop_close(store_loop *sl)
{
    if (!sl)
        return;
    store__finalize_reader(sl);
    sqlite3_close(sl->db);
    sl->db = NULL;
    uv_close((uv_handle_t *)&sl->async, on_async_close);
}

const store__backend store__sqlite_backend = {
    .name = "sqlite",
    .close = store__sqlite_close,
    .next_order_id = store__sqlite_next_order_id,
    .pending_sweeps = store__sqlite_pending_sweeps,
    .sweep_done = store__sqlite_sweep_done,
    .last_seq = store__sqlite_last_seq,
    .release_orphans = store__sqlite_release_orphans,
    .get_stats = store__sqlite_get_stats,
    .loop_open = store__sqlite_loop_open,
    .loop_close = store__sqlite_loop_close,
    .submit = store__sqlite_submit,
    .list_unused_order_ids = store__sqlite_list_unused_order_ids,
    .get_customer = store__sqlite_get_customer,
    .get_product = store__sqlite_get_product,
    .list_customers = store__sqlite_list_customers,
    .list_products = store__sqlite_list_products,
    .get_order = store__sqlite_get_order,
    .find_order_by_key = store__sqlite_find_order_by_key,
    .list_orders = store__sqlite_list_orders,
    .read_events = store__sqlite_read_events,
};
