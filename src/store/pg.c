/* pg.c - the PostgreSQL store: opening, the writer thread and its group
 * commit, reconnects, order-id blocks, store_loops and their completions.
 *
 * The queue, the batching and the completions are sqlite.c's: store_submit()
 * appends under a mutex, the writer takes everything queued (up to
 * max_batch) into one transaction:
 *
 *   BEGIN; SELECT value FROM meta WHERE key = 'event_seq' FOR UPDATE;
 *   per request: [SAVEPOINT w] ... [RELEASE w | ROLLBACK TO w; RELEASE w]
 *   [forget old keys] [take an order-id block] [UPDATE the counter]; COMMIT
 *
 * and completes each request on its loop only after COMMIT returned. The
 * counter's row lock is what makes instances on one database one system
 * (pg_int.h). Savepoints only for requests that can fail after a write
 * (needs_savepoint); an SQL error in any other request fails the batch, as
 * an SQL error aborts the whole PostgreSQL transaction.
 *
 * A lost connection fails the batch with STORE_UNAVAILABLE; the next batch
 * reconnects (at most once per backoff, 100 ms doubling to 2 s), re-prepares
 * and takes the run's advisory lock again. A COMMIT whose answer was lost may
 * have committed: its requests fail UNAVAILABLE and a retry with the same
 * idempotency key finds the order.
 */
#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "base/alloc.h"
#include "base/log.h"
#include "pg_int.h"

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

static uint64_t now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

/* --- completions ---------------------------------------------------------- */

static void deliver(store_write *w)
{
    pg_loop *l = (pg_loop *)(void *)w->sl;
    if (!l) {
        w->done(w);
        return;
    }
    w->next = NULL;
    pthread_mutex_lock(&l->mu);
    if (l->done_tail)
        l->done_tail->next = w;
    else
        l->done_head = w;
    l->done_tail = w;
    pthread_mutex_unlock(&l->mu);
    uv_async_send(&l->async);
}

static void on_async(uv_async_t *a)
{
    pg_loop *l = a->data;
    pthread_mutex_lock(&l->mu);
    store_write *w = l->done_head;
    l->done_head = l->done_tail = NULL;
    pthread_mutex_unlock(&l->mu);
    while (w) {
        store_write *next = w->next;
        w->next = NULL;
        w->done(w);
        w = next;
    }
}

/* --- the writer ----------------------------------------------------------- */

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

/* Records the error of r (or of the connection) in st->err / sqlstate. */
static void note_error(pg_store *st, const PGresult *r)
{
    const char *state = r ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : NULL;
    const char *m = r ? PQresultErrorMessage(r) : NULL;
    if (!m || !*m)
        m = st->w.c ? PQerrorMessage(st->w.c) : "not connected";
    size_t len = strlen(m);
    while (len && (m[len - 1] == '\n' || m[len - 1] == ' '))
        len--;
    store__copy(st->sqlstate, sizeof st->sqlstate, state ? state : "");
    snprintf(st->err, sizeof st->err, "%.*s", (int)len, m);
}

static bool conn_bad(const pg_store *st)
{
    return !st->w.c || PQstatus(st->w.c) != CONNECTION_OK;
}

static void fail_batch(pg_store *st, store_write *batch, store_rc rc, const char *why)
{
    bump(&st->failed, 1);
    atomic_store_explicit(&st->last_failed, true, memory_order_relaxed);
    atomic_store_explicit(&st->last_failure_ms, store__pg_wall_ms(), memory_order_relaxed);
    char msg[STORE_MSG_MAX + 1];
    snprintf(msg, sizeof msg, "%s%.150s", strncmp(why, "store: ", 7) == 0 ? "" : "store: ", why);
    OMS_ERROR("store: %s: transaction failed: %s", st->name, why);
    for (store_write *w = batch; w; w = w->next)
        if (w->rc != STORE_CLOSED)
            fail_request(w, rc, msg);
    st->nevs = 0;
}

/* Fails the batch on the error in st->err and rolls back what is open. */
static void abort_batch(pg_store *st, store_write *batch)
{
    char why[STORE_MSG_MAX + 1];
    store__copy(why, sizeof why, st->err);
    store_rc rc = store__pg_classify(st->sqlstate, conn_bad(st));
    if (!conn_bad(st) && PQtransactionStatus(st->w.c) != PQTRANS_IDLE)
        PQclear(PQexec(st->w.c, "ROLLBACK"));
    fail_batch(st, batch, rc, why);
}

/* Runs plain SQL (BEGIN, SAVEPOINT...); false with st->err on failure. */
static bool exec_ok(pg_store *st, const char *sql)
{
    PGresult *r = PQexec(st->w.c, sql);
    bool ok = store__pg_ok(r);
    if (!ok)
        note_error(st, r);
    PQclear(r);
    return ok;
}

/* The run's liveness lock (pg_int.h), on the writer's connection. */
static void take_run_lock(pg_store *st)
{
    char sql[96];
    snprintf(sql, sizeof sql, "SELECT pg_try_advisory_lock(%d, %d)", OMS_PG_LOCK_CLASS, st->run);
    PGresult *r = PQexec(st->w.c, sql);
    if (PQresultStatus(r) != PGRES_TUPLES_OK || strcmp(PQgetvalue(r, 0, 0), "t") != 0)
        OMS_WARN("store: %s: could not take run %d's lock: its ranges may look abandoned", st->name,
                 st->run);
    PQclear(r);
}

/* The writer's connection, reconnected if it broke: 0 if usable. */
static int ensure_writer(pg_store *st)
{
    if (!conn_bad(st))
        return 0;
    if (store__pg_ensure(&st->w, st->url, store__pg_writer_sql, PW__COUNT) != 0) {
        snprintf(st->err, sizeof st->err, "database unavailable (reconnecting)");
        st->sqlstate[0] = '\0';
        return -1;
    }
    take_run_lock(st);
    return 0;
}

static bool forget_due(const pg_store *st, int64_t now)
{
    return st->key_retention_ms > 0 && now >= st->next_forget_ms;
}

/* Whether a request needs a savepoint: as sqlite.c's needs_savepoint. */
static bool needs_savepoint(const store_write *w)
{
    switch ((int)w->op) {
    case STORE_RESERVE:
        return w->nlines > 1;
    case STORE_ORDER_SET_STATUS:
        return w->with_stock && w->to_status == STORE_ORDER_CANCELLED;
    case STORE_RELEASE:
    case PG__OP_RELEASE_ORPHANS:
        return true;
    default:
        return false;
    }
}

/* Takes the next order-id block inside the transaction: [*first, *last]. */
static bool take_block(pg_store *st, int64_t *first, int64_t *last)
{
    pg_params p = {0};
    store__pg_p_i64(&p, st->id_block);
    PGresult *r = store__pg_run(st->w.c, PW_ID_BLOCK, &p);
    bool ok = store__pg_ok(r) && PQntuples(r) == 1;
    if (!ok) {
        note_error(st, r);
        PQclear(r);
        return false;
    }
    *last = store__pg_i64(r, 0, 0);
    *first = *last - st->id_block + 1;
    PQclear(r);
    pg_params q = {0};
    store__pg_p_i64(&q, *first);
    store__pg_p_i64(&q, *last);
    store__pg_p_i64(&q, st->run);
    r = store__pg_run(st->w.c, PW_RANGE_INSERT, &q);
    ok = store__pg_ok(r);
    if (!ok)
        note_error(st, r);
    PQclear(r);
    return ok;
}

static bool block_wanted(pg_store *st)
{
    if (!atomic_load(&st->mark_wanted))
        return false;
    pthread_mutex_lock(&st->id_mu);
    bool want = st->nxt_first == 0;
    pthread_mutex_unlock(&st->id_mu);
    if (!want)
        atomic_store(&st->mark_wanted, false);
    return want;
}

/* last_seq only grows: the writer and the follower both raise it. */
static void raise_last_seq(pg_store *st, int64_t seq)
{
    int64_t cur = atomic_load(&st->last_seq);
    while (cur < seq && !atomic_compare_exchange_weak(&st->last_seq, &cur, seq))
        ;
}

/* Hands evs (seq order) to on_events, one thread at a time and never below
 * what was handed already: the writer publishes its own commits at once, the
 * follower the other instances' commits. An event of another instance that
 * the writer passed before the follower read it is not handed later: the hub
 * saw the gap and read it from the store. */
static void publish(pg_store *st, const store_event *evs, size_t n)
{
    pthread_mutex_lock(&st->ev_mu);
    size_t skip = 0;
    while (skip < n && evs[skip].seq <= st->published)
        skip++;
    if (skip < n) {
        st->published = evs[n - 1].seq;
        st->on_events(st->events_arg, evs + skip, n - skip);
    }
    pthread_mutex_unlock(&st->ev_mu);
}

static void run_batch(pg_store *st, store_write *batch, size_t n)
{
    st->nevs = 0;
    bool any = false;
    for (store_write *w = batch; w && !any; w = w->next)
        any = w->rc != STORE_CLOSED;
    int64_t now = store__pg_wall_ms();
    bool forget = forget_due(st, now);
    bool want_block = block_wanted(st);
    if (!any && !want_block && !forget)
        goto complete;
    if (ensure_writer(st) != 0) {
        fail_batch(st, batch, STORE_UNAVAILABLE, st->err);
        goto complete;
    }
    if (!exec_ok(st, "BEGIN")) {
        abort_batch(st, batch);
        goto complete;
    }
    PGresult *r = store__pg_run(st->w.c, PW_SEQ_LOCK, NULL);
    if (!store__pg_ok(r) || PQntuples(r) != 1) {
        note_error(st, r);
        PQclear(r);
        abort_batch(st, batch);
        goto complete;
    }
    st->seq = store__pg_i64(r, 0, 0);
    PQclear(r);
    int64_t seq0 = st->seq;
    for (store_write *w = batch; w; w = w->next) {
        if (w->rc == STORE_CLOSED)
            continue;
        int64_t seq = st->seq;
        size_t nevs = st->nevs;
        bool sp = needs_savepoint(w);
        if (sp && !exec_ok(st, "SAVEPOINT w")) {
            abort_batch(st, batch);
            goto complete;
        }
        store_rc rc = store__pg_apply(st, w);
        if (rc == STORE_OK) {
            if (sp && !exec_ok(st, "RELEASE w")) {
                abort_batch(st, batch);
                goto complete;
            }
            continue;
        }
        st->seq = seq;
        st->nevs = nevs;
        if (rc == STORE_ERROR && (!sp || conn_bad(st))) {
            /* An SQL error outside a savepoint aborted the transaction. */
            if (!st->err[0])
                store__copy(st->err, sizeof st->err, w->msg);
            abort_batch(st, batch);
            goto complete;
        }
        if (sp && !exec_ok(st, "ROLLBACK TO w; RELEASE w")) {
            abort_batch(st, batch);
            goto complete;
        }
        if (rc == STORE_ERROR) /* this request alone failed on an SQL error */
            w->rc = store__pg_classify(st->sqlstate, false);
    }
    if (forget) {
        pg_params p = {0};
        store__pg_p_i64(&p, now - st->key_retention_ms);
        store__pg_p_i64(&p, STORE_KEYS_FORGET_MAX);
        r = store__pg_run(st->w.c, PW_KEYS_FORGET, &p);
        bool ok = store__pg_ok(r);
        bool full = ok && atoll(PQcmdTuples(r)) >= STORE_KEYS_FORGET_MAX;
        if (!ok)
            note_error(st, r);
        PQclear(r);
        if (!ok) {
            abort_batch(st, batch);
            goto complete;
        }
        int64_t period = st->key_retention_ms / 4;
        period = period < 100 ? 100 : period > 60000 ? 60000 : period;
        st->next_forget_ms = full ? now : now + period;
    }
    int64_t block_first = 0, block_last = 0;
    if (want_block && !take_block(st, &block_first, &block_last)) {
        abort_batch(st, batch);
        goto complete;
    }
    if (st->seq != seq0) {
        pg_params p = {0};
        store__pg_p_i64(&p, st->seq);
        r = store__pg_run(st->w.c, PW_SEQ_SET, &p);
        bool ok = store__pg_ok(r);
        if (!ok)
            note_error(st, r);
        PQclear(r);
        if (!ok) {
            abort_batch(st, batch);
            goto complete;
        }
    }
    uint64_t t0 = now_us();
    /* NOTIFY is delivered at COMMIT: the other instances' followers wake. */
    bool notify = st->following && st->event_poll_ms <= 0 && st->nevs;
    r = PQexec(st->w.c, notify ? "NOTIFY oms_events; COMMIT" : "COMMIT");
    /* COMMIT of an aborted transaction answers ROLLBACK: not a commit. */
    bool committed = PQresultStatus(r) == PGRES_COMMAND_OK && strcmp(PQcmdStatus(r), "COMMIT") == 0;
    if (!committed) {
        note_error(st, r);
        if (!st->err[0] || PQresultStatus(r) == PGRES_COMMAND_OK)
            snprintf(st->err, sizeof st->err, "COMMIT rolled back");
    }
    PQclear(r);
    if (!committed) {
        abort_batch(st, batch);
        goto complete;
    }
    uint64_t took = now_us() - t0;
    atomic_fetch_add(&st->commit_us, took);
    atomic_fetch_add(&st->commits, 1);
    observe(st->commit_hist, store_commit_bounds_us, STORE_COMMIT_BUCKETS, took);
    atomic_store_explicit(&st->last_failed, false, memory_order_relaxed);
    if (want_block) {
        pthread_mutex_lock(&st->id_mu);
        st->nxt_first = block_first;
        st->nxt_last = block_last;
        pthread_mutex_unlock(&st->id_mu);
        atomic_store(&st->mark_wanted, false);
    }
    raise_last_seq(st, st->seq);
    if (st->nevs && st->on_events)
        publish(st, st->evs, st->nevs);
complete:
    st->nevs = 0;
    st->err[0] = '\0';
    atomic_fetch_add(&st->writes, n);
    if (n) {
        bump(&st->batches, 1);
        bump(&st->batch_requests, n);
        observe(st->batch_hist, store_batch_bounds, STORE_BATCH_BUCKETS, n);
    }
    if (n > atomic_load(&st->max_batch_seen))
        atomic_store(&st->max_batch_seen, n);
    while (batch) {
        store_write *next = batch->next;
        deliver(batch);
        batch = next;
    }
}

static void *writer_main(void *arg)
{
    pg_store *st = arg;
    pthread_mutex_lock(&st->mu);
    for (;;) {
        bool waited = false;
        while (!st->head && !st->closing && !atomic_load(&st->mark_wanted) &&
               !forget_due(st, store__pg_wall_ms())) {
            if (st->key_retention_ms > 0) {
                struct timespec ts = {.tv_sec = st->next_forget_ms / 1000,
                                      .tv_nsec = (long)(st->next_forget_ms % 1000) * 1000000};
                pthread_cond_timedwait(&st->cv, &st->mu, &ts);
            } else {
                pthread_cond_wait(&st->cv, &st->mu);
            }
            waited = true;
        }
        if (waited && st->head) { /* as sqlite.c: let the loop queue the rest */
            pthread_mutex_unlock(&st->mu);
            sched_yield();
            pthread_mutex_lock(&st->mu);
        }
        if (!st->head && st->closing)
            break;
        if (!st->head) {
            pthread_mutex_unlock(&st->mu);
            run_batch(st, NULL, 0);
            pthread_mutex_lock(&st->mu);
            if (atomic_load(&st->mark_wanted) && conn_bad(st)) {
                /* The block could not be taken (database down): try again
                 * after the reconnect backoff, not in a busy loop. */
                int64_t wait = st->w.retry_at_ms - store__pg_mono_ms();
                if (wait < 10)
                    wait = 10;
                struct timespec ts;
                clock_gettime(CLOCK_REALTIME, &ts);
                ts.tv_sec += wait / 1000;
                ts.tv_nsec += (long)(wait % 1000) * 1000000;
                if (ts.tv_nsec >= 1000000000) {
                    ts.tv_sec++;
                    ts.tv_nsec -= 1000000000;
                }
                if (!st->head && !st->closing)
                    pthread_cond_timedwait(&st->cv, &st->mu, &ts);
            }
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

static void pg_submit(store_loop *sl, store_write *w)
{
    pg_store *st = ((pg_loop *)(void *)sl)->st;
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

/* --- internal requests, waited for ----------------------------------------- */

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

static store_rc run_sync(pg_store *st, store_op op, int64_t *delta)
{
    sync_write *s = oms_calloc(1, sizeof *s);
    if (!s)
        return STORE_ERROR;
    pthread_mutex_init(&s->mu, NULL);
    pthread_cond_init(&s->cv, NULL);
    s->w.op = op;
    s->w.delta = *delta;
    s->w.done = on_sync_done;
    s->w.at = store__pg_wall_ms();
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

#define PG(st) ((pg_store *)(void *)(st))

static long pg_release_orphans(store *st)
{
    int64_t n = 0;
    if (run_sync(PG(st), PG__OP_RELEASE_ORPHANS, &n) != STORE_OK)
        return -1;
    return (long)n;
}

static store_rc pg_sweep_done(store *st, const store_id_range *r)
{
    int64_t first = r->first;
    return run_sync(PG(st), PG__OP_SWEEP_DONE, &first);
}

static size_t pg_pending_sweeps(store *s, store_id_range *out, size_t cap)
{
    pg_store *st = PG(s);
    for (size_t i = 0; i < st->npending && i < cap; i++)
        out[i] = st->pending[i];
    return st->npending;
}

/* --- order ids ------------------------------------------------------------- */

static void want_block(pg_store *st)
{
    if (atomic_exchange(&st->mark_wanted, true))
        return;
    pthread_mutex_lock(&st->mu);
    pthread_cond_signal(&st->cv);
    pthread_mutex_unlock(&st->mu);
}

static store_rc pg_next_order_id(store *s, char out[STORE_ID_MAX + 1])
{
    pg_store *st = PG(s);
    pthread_mutex_lock(&st->id_mu);
    if (st->id_next >= st->id_last && st->nxt_first) { /* on to the next block */
        st->id_first = st->nxt_first;
        st->id_next = st->nxt_first - 1;
        st->id_last = st->nxt_last;
        st->nxt_first = st->nxt_last = 0;
    }
    if (st->id_next >= st->id_last) {
        pthread_mutex_unlock(&st->id_mu);
        want_block(st);
        out[0] = '\0';
        return STORE_UNAVAILABLE;
    }
    int64_t n = ++st->id_next;
    bool low = !st->nxt_first && st->id_last - n < st->id_block / 2;
    pthread_mutex_unlock(&st->id_mu);
    if (low)
        want_block(st);
    store__format_id(out, 'o', n);
    return STORE_OK;
}

/* Reads the ranges of runs that are gone (pending sweeps). */
static int read_pending(pg_store *st, char *err, size_t errlen)
{
    char sql[512];
    snprintf(sql, sizeof sql,
             "SELECT first, last FROM sweep_ranges s WHERE run <> %d AND NOT EXISTS (SELECT 1 "
             "FROM pg_locks l WHERE l.locktype = 'advisory' AND l.classid = %d AND "
             "l.objid = s.run AND l.objsubid = 2 AND l.database = (SELECT oid FROM pg_database "
             "WHERE datname = current_database())) ORDER BY first",
             st->run, OMS_PG_LOCK_CLASS);
    PGresult *r = PQexec(st->w.c, sql);
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        snprintf(err, errlen, "%s: reading sweep ranges: %s", st->name, PQresultErrorMessage(r));
        PQclear(r);
        return -1;
    }
    int n = PQntuples(r);
    if (n) {
        st->pending = oms_calloc((size_t)n, sizeof *st->pending);
        if (!st->pending) {
            PQclear(r);
            snprintf(err, errlen, "out of memory");
            return -1;
        }
    }
    for (int i = 0; i < n; i++) {
        st->pending[i].first = atoll(PQgetvalue(r, i, 0));
        st->pending[i].last = atoll(PQgetvalue(r, i, 1));
    }
    st->npending = (size_t)n;
    PQclear(r);
    return 0;
}

/* This run's id and liveness lock, the pending ranges, the first block. */
static int open_run(pg_store *st, char *err, size_t errlen)
{
    PGresult *r = PQexec(st->w.c, "SELECT nextval('runs')");
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        snprintf(err, errlen, "%s: %s", st->name, PQresultErrorMessage(r));
        PQclear(r);
        return -1;
    }
    st->run = atoi(PQgetvalue(r, 0, 0));
    PQclear(r);
    take_run_lock(st);
    if (read_pending(st, err, errlen) != 0)
        return -1;
    int64_t first, last;
    if (!exec_ok(st, "BEGIN") || !take_block(st, &first, &last) || !exec_ok(st, "COMMIT")) {
        snprintf(err, errlen, "%s: reserving order ids: %s", st->name, st->err);
        PQclear(PQexec(st->w.c, "ROLLBACK"));
        return -1;
    }
    st->id_first = first;
    st->id_next = first - 1;
    st->id_last = last;
    return 0;
}

/* At a clean close: this run's current block shrinks to the ids handed out
 * (or goes), an untouched next block goes. */
static void trim_run(pg_store *st)
{
    if (conn_bad(st) && store__pg_ensure(&st->w, st->url, NULL, 0) != 0)
        return;
    char sql[320];
    if (st->id_next < st->id_first)
        snprintf(sql, sizeof sql, "DELETE FROM sweep_ranges WHERE first = %lld AND run = %d",
                 (long long)st->id_first, st->run);
    else
        snprintf(sql, sizeof sql,
                 "UPDATE sweep_ranges SET last = %lld WHERE first = %lld AND run = %d",
                 (long long)st->id_next, (long long)st->id_first, st->run);
    if (!exec_ok(st, sql))
        OMS_WARN("store: %s: trimming this run's sweep range: %s", st->name, st->err);
    if (st->nxt_first) {
        snprintf(sql, sizeof sql, "DELETE FROM sweep_ranges WHERE first = %lld AND run = %d",
                 (long long)st->nxt_first, st->run);
        if (!exec_ok(st, sql))
            OMS_WARN("store: %s: dropping the unused block: %s", st->name, st->err);
    }
    /* The run is over: its lock goes now, not whenever the server notices
     * the disconnect (a start right after this one sees its range pending). */
    snprintf(sql, sizeof sql, "SELECT pg_advisory_unlock(%d, %d)", OMS_PG_LOCK_CLASS, st->run);
    exec_ok(st, sql);
}

/* --- the follower: every instance's events, for on_events ------------------ */

#define FOLLOW_PAGE 1024

/* Reads and publishes the events after *have, page by page. 0, or -1 when
 * the connection failed. */
static int follow_read(pg_store *st, pg_conn *fc, int64_t *have)
{
    for (;;) {
        char from[24], lim[24], run[24];
        snprintf(from, sizeof from, "%lld", (long long)*have);
        snprintf(lim, sizeof lim, "%d", FOLLOW_PAGE);
        snprintf(run, sizeof run, "%d", st->run);
        const char *v[3] = {from, lim, run};
        /* The other instances' events: this one's writer publishes its own. */
        PGresult *r = PQexecParams(fc->c,
                                   "SELECT seq, order_id, customer_id, status, previous_status, "
                                   "version, at FROM events WHERE seq > $1 AND run <> $3 "
                                   "ORDER BY seq LIMIT $2",
                                   3, NULL, v, NULL, NULL, 1);
        if (PQresultStatus(r) != PGRES_TUPLES_OK) {
            OMS_WARN("store: %s: following events: %s", st->name, PQresultErrorMessage(r));
            PQclear(r);
            return -1;
        }
        int n = PQntuples(r);
        for (int i = 0; i < n; i++) {
            store_event *e = &st->fevs[i];
            e->seq = store__pg_i64(r, i, 0);
            store__format_id(e->order_id, 'o', store__pg_i64(r, i, 1));
            store__pg_text(r, i, 2, e->customer_id, sizeof e->customer_id);
            e->status = (int)store__pg_i64(r, i, 3);
            e->previous_status = (int)store__pg_i64(r, i, 4);
            e->version = store__pg_i64(r, i, 5);
            e->at = store__pg_i64(r, i, 6);
        }
        PQclear(r);
        if (n) {
            *have = st->fevs[n - 1].seq;
            raise_last_seq(st, *have);
            publish(st, st->fevs, (size_t)n);
        }
        if (n < FOLLOW_PAGE)
            return 0;
    }
}

/* Sleeps until the database notifies (fc's socket), the stop pipe, or
 * timeout_ms. Returns false when told to stop. */
static bool follow_wait(pg_store *st, pg_conn *fc, int timeout_ms)
{
    struct pollfd p[2] = {{.fd = st->stop_pipe[0], .events = POLLIN},
                          {.fd = fc->c ? PQsocket(fc->c) : -1, .events = POLLIN}};
    int rc = poll(p, p[1].fd >= 0 ? 2 : 1, timeout_ms);
    if (rc > 0 && (p[0].revents & POLLIN))
        return false;
    if (rc > 0 && fc->c && (p[1].revents & (POLLIN | POLLHUP | POLLERR))) {
        PQconsumeInput(fc->c);
        PGnotify *nf;
        while ((nf = PQnotifies(fc->c)) != NULL)
            PQfreemem(nf);
    }
    return true;
}

static void *follower_main(void *arg)
{
    pg_store *st = arg;
    pg_conn fc = {0};
    int64_t have = atomic_load(&st->last_seq);
    bool listening = false;
    int period = st->event_poll_ms > 0 ? (int)st->event_poll_ms : 1000;
    for (;;) {
        if (!fc.c || PQstatus(fc.c) != CONNECTION_OK) {
            listening = false;
            if (store__pg_ensure(&fc, st->url, NULL, 0) != 0) {
                int64_t wait = fc.retry_at_ms - store__pg_mono_ms();
                if (!follow_wait(st, &fc, wait > 10 ? (int)wait : 10))
                    break;
                continue;
            }
        }
        if (!listening && st->event_poll_ms <= 0) {
            PGresult *r = PQexec(fc.c, "LISTEN oms_events");
            listening = PQresultStatus(r) == PGRES_COMMAND_OK;
            PQclear(r);
        }
        /* After LISTEN: a commit notified before it is read here. */
        if (follow_read(st, &fc, &have) != 0 && PQstatus(fc.c) != CONNECTION_OK)
            continue;
        if (!follow_wait(st, &fc, period))
            break;
    }
    store__pg_disconnect(&fc);
    return NULL;
}

static int start_follower(pg_store *st, char *err, size_t errlen)
{
    st->fevs = oms_malloc(FOLLOW_PAGE * sizeof *st->fevs);
    if (!st->fevs || pipe2(st->stop_pipe, O_CLOEXEC) != 0) {
        snprintf(err, errlen, "%s: cannot start the event follower", st->name);
        return -1;
    }
    if (pthread_create(&st->follower, NULL, follower_main, st) != 0) {
        close(st->stop_pipe[0]);
        close(st->stop_pipe[1]);
        snprintf(err, errlen, "%s: cannot start the event follower", st->name);
        return -1;
    }
    pthread_setname_np(st->follower, "oms-store-follow");
    st->following = true;
    return 0;
}

static void stop_follower(pg_store *st)
{
    if (!st->following)
        return;
    char b = 1;
    ssize_t rc = write(st->stop_pipe[1], &b, 1);
    (void)rc;
    pthread_join(st->follower, NULL);
    close(st->stop_pipe[0]);
    close(st->stop_pipe[1]);
    st->following = false;
}

/* --- open, close, stats ------------------------------------------------------ */

static void free_store(pg_store *st)
{
    store__pg_disconnect(&st->w);
    pthread_cond_destroy(&st->cv);
    pthread_mutex_destroy(&st->mu);
    pthread_mutex_destroy(&st->id_mu);
    pthread_mutex_destroy(&st->ev_mu);
    oms_free(st->evs);
    oms_free(st->blob);
    oms_free(st->pending);
    oms_free(st->fevs);
    oms_free(st);
}

extern const store__backend store__pg_backend;

store *store__pg_open(const store_config *cfg, char *err, size_t errlen)
{
    if (errlen)
        err[0] = '\0';
    if (strlen(cfg->url) >= sizeof((pg_store *)0)->url) {
        snprintf(err, errlen, "postgres: url too long");
        return NULL;
    }
    pg_store *st = oms_calloc(1, sizeof *st);
    if (!st) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    st->base.be = &store__pg_backend;
    pthread_mutex_init(&st->mu, NULL);
    pthread_cond_init(&st->cv, NULL);
    pthread_mutex_init(&st->id_mu, NULL);
    pthread_mutex_init(&st->ev_mu, NULL);
    strcpy(st->url, cfg->url);
    store__pg_redact(st->url, st->name, sizeof st->name);
    st->max_batch = cfg->max_batch ? cfg->max_batch : 1024;
    if (st->max_batch > 65536)
        st->max_batch = 65536;
    st->on_events = cfg->on_events;
    st->events_arg = cfg->events_arg;
    st->evs_cap = st->max_batch;
    st->evs = oms_malloc(st->evs_cap * sizeof *st->evs);
    st->blob = oms_malloc(STORE__LINES_BLOB_MAX + 1);
    if (!st->evs || !st->blob) {
        snprintf(err, errlen, "out of memory");
        goto fail;
    }
    /* Migrate before preparing: the statements name the tables. */
    if (store__pg_connect(&st->w, st->url, NULL, 0, err, errlen) != 0)
        goto fail;
    if (store__pg_migrate(st, err, errlen) != 0)
        goto fail;
    store__pg_disconnect(&st->w);
    if (store__pg_connect(&st->w, st->url, store__pg_writer_sql, PW__COUNT, err, errlen) != 0)
        goto fail;
    PGresult *r = PQexec(st->w.c, "SELECT value FROM meta WHERE key = 'event_seq'");
    if (PQresultStatus(r) != PGRES_TUPLES_OK || PQntuples(r) != 1) {
        snprintf(err, errlen, "%s: reading the event counter: %s", st->name,
                 PQresultErrorMessage(r));
        PQclear(r);
        goto fail;
    }
    st->seq = atoll(PQgetvalue(r, 0, 0));
    PQclear(r);
    atomic_store(&st->last_seq, st->seq);
    st->published = st->seq;
    st->id_block = cfg->id_block > 0 ? cfg->id_block : 16384;
    st->key_retention_ms = cfg->key_retention_ms > 0 ? cfg->key_retention_ms : 0;
    st->next_forget_ms = store__pg_wall_ms();
    if (open_run(st, err, errlen) != 0)
        goto fail;
    st->event_poll_ms = cfg->event_poll_ms;
    if (st->on_events && start_follower(st, err, errlen) != 0)
        goto fail;
    if (pthread_create(&st->writer, NULL, writer_main, st) != 0) {
        stop_follower(st);
        snprintf(err, errlen, "%s: cannot start the writer thread", st->name);
        goto fail;
    }
    pthread_setname_np(st->writer, "oms-store");
    OMS_INFO("store: %s: run %d, order ids %lld..%lld, event seq %lld", st->name, st->run,
             (long long)st->id_first, (long long)st->id_last, (long long)st->seq);
    return (store *)(void *)st;
fail:
    free_store(st);
    return NULL;
}

static void pg_get_stats(store *s, store_stats *out);

static void pg_close(store *s)
{
    pg_store *st = PG(s);
    pthread_mutex_lock(&st->mu);
    st->closing = true;
    pthread_cond_signal(&st->cv);
    pthread_mutex_unlock(&st->mu);
    pthread_join(st->writer, NULL);
    stop_follower(st);
    trim_run(st);
    store_stats stats;
    pg_get_stats(s, &stats);
    if (stats.commits)
        OMS_INFO("store: %s: %llu writes in %llu commits (%.1f per commit, max %llu), "
                 "%.0f us per commit",
                 st->name, (unsigned long long)stats.writes, (unsigned long long)stats.commits,
                 (double)stats.writes / (double)stats.commits, (unsigned long long)stats.max_batch,
                 (double)stats.commit_us / (double)stats.commits);
    free_store(st);
}

static int64_t pg_last_seq(store *s)
{
    return atomic_load(&PG(s)->last_seq);
}

static void pg_get_stats(store *s, store_stats *out)
{
    pg_store *st = PG(s);
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

/* --- store_loop ----------------------------------------------------------- */

static store_loop *pg_loop_open(store *s, uv_loop_t *loop, char *err, size_t errlen)
{
    pg_store *st = PG(s);
    pg_loop *l = oms_calloc(1, sizeof *l);
    if (!l) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    l->base.be = &store__pg_backend;
    l->st = st;
    l->loop = loop;
    pthread_mutex_init(&l->mu, NULL);
    if (store__pg_connect(&l->conn, st->url, store__pg_reader_sql, store__pg_reader_count, err,
                          errlen) != 0)
        goto fail;
    int rc = uv_async_init(loop, &l->async, on_async);
    if (rc != 0) {
        snprintf(err, errlen, "uv_async_init: %s", uv_strerror(rc));
        goto fail;
    }
    l->async.data = l;
    return (store_loop *)(void *)l;
fail:
    store__pg_disconnect(&l->conn);
    pthread_mutex_destroy(&l->mu);
    oms_free(l);
    return NULL;
}

static void on_async_close(uv_handle_t *h)
{
    pg_loop *l = h->data;
    pthread_mutex_destroy(&l->mu);
    oms_free(l);
}

static void pg_loop_close(store_loop *sl)
{
    pg_loop *l = (pg_loop *)(void *)sl;
    store__pg_disconnect(&l->conn);
    uv_close((uv_handle_t *)&l->async, on_async_close);
}

const store__backend store__pg_backend = {
    .name = "postgres",
    .close = pg_close,
    .next_order_id = pg_next_order_id,
    .pending_sweeps = pg_pending_sweeps,
    .sweep_done = pg_sweep_done,
    .last_seq = pg_last_seq,
    .release_orphans = pg_release_orphans,
    .get_stats = pg_get_stats,
    .loop_open = pg_loop_open,
    .loop_close = pg_loop_close,
    .submit = pg_submit,
    .list_unused_order_ids = store__pg_list_unused_order_ids,
    .get_customer = store__pg_get_customer,
    .get_product = store__pg_get_product,
    .list_customers = store__pg_list_customers,
    .list_products = store__pg_list_products,
    .get_order = store__pg_get_order,
    .find_order_by_key = store__pg_find_order_by_key,
    .list_orders = store__pg_list_orders,
    .read_events = store__pg_read_events,
};
