/* pg.c - the PostgreSQL store: opening, the writer's SQL (writer.c runs the
 * queue and the group commit), reconnects, order-id blocks, the follower,
 * store_loops.
 *
 * A batch is one transaction:
 *
 *   BEGIN; SELECT value FROM meta WHERE key = 'event_seq' FOR UPDATE;
 *   per request: [SAVEPOINT w] ... [RELEASE w | ROLLBACK TO w; RELEASE w]
 *   [forget old keys] [take an order-id block] [UPDATE the counter]; COMMIT
 *
 * and its requests complete on their loops only after COMMIT returned. The
 * counter's row lock is what makes instances on one database one system
 * (pg_int.h). Savepoints only for requests that can fail after a write
 * (writer.c); an SQL error in any other request fails the batch, as an SQL
 * error aborts the whole PostgreSQL transaction.
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

#define PG(st) ((pg_store *)(void *)(st))

/* --- the writer's ops (writer.c) ------------------------------------------ */

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
        st->wr.on_events(st->wr.events_arg, evs + skip, n - skip);
    }
    pthread_mutex_unlock(&st->ev_mu);
}

static int64_t pg_due_at(void *be, int64_t now)
{
    pg_store *st = be;
    if (atomic_load(&st->mark_wanted)) {
        /* A block to take: at once, or after the reconnect backoff while the
         * database is down (not in a busy loop). */
        int64_t wait = conn_bad(st) ? st->w.retry_at_ms - store__pg_mono_ms() : 0;
        return wait <= 0 ? now : now + (wait < 10 ? 10 : wait);
    }
    int64_t at = st->key_retention_ms > 0 ? st->next_forget_ms : INT64_MAX;
    if (st->sweep_ms > 0 && st->next_sweep_ms < at)
        at = st->next_sweep_ms;
    return at;
}

static int pg_begin(void *be, bool any)
{
    pg_store *st = be;
    st->err[0] = '\0';
    st->now = store__pg_wall_ms();
    st->forget = forget_due(st, st->now);
    st->want_block = block_wanted(st);
    st->sweep = st->sweep_ms > 0 && st->now >= st->next_sweep_ms;
    if (st->sweep) /* the next look a period on, whatever this one does */
        st->next_sweep_ms = st->now + st->sweep_ms;
    if (!any && !st->want_block && !st->forget && !st->sweep)
        return 0;
    if (ensure_writer(st) != 0)
        return -1;
    if (!exec_ok(st, "BEGIN"))
        return -1;
    PGresult *r = store__pg_run(st->w.c, PW_SEQ_LOCK, NULL);
    if (!store__pg_ok(r) || PQntuples(r) != 1) {
        note_error(st, r);
        PQclear(r);
        return -1;
    }
    st->wr.seq = st->seq0 = store__pg_i64(r, 0, 0);
    PQclear(r);
    return 1;
}

static store_rc pg_apply(void *be, store_write *w)
{
    return store__pg_apply(be, w);
}

static bool pg_savepoint(void *be, store__sp_step step)
{
    static const char *const sql[] = {
        [STORE__SP_BEGIN] = "SAVEPOINT w",
        [STORE__SP_RELEASE] = "RELEASE w",
        [STORE__SP_ROLLBACK] = "ROLLBACK TO w; RELEASE w",
    };
    return exec_ok(be, sql[step]);
}

static bool pg_lost(void *be)
{
    return conn_bad(be);
}

static store_rc pg_error(void *be, char *why, size_t cap)
{
    pg_store *st = be;
    if (cap) {
        OMS_ERROR("store: %s: %s", st->name, st->err);
        store__copy(why, cap, store__pg_describe(st->sqlstate, false));
    }
    return store__pg_classify(st->sqlstate, false);
}

/* The orphan sweep, in a savepoint of its own: its failure is logged and
 * rolled back, the batch goes on (unless the connection went). */
static bool sweep_dead_runs(pg_store *st)
{
    if (!exec_ok(st, "SAVEPOINT sweep"))
        return false;
    long n = 0;
    if (store__pg_sweep_dead_runs(st, st->now, 2 * st->sweep_ms + 2000, &n) == STORE_OK) {
        if (n)
            OMS_INFO("store: %s: released %ld reservations of instances that are gone", st->name,
                     n);
        return exec_ok(st, "RELEASE sweep");
    }
    OMS_WARN("store: %s: orphan sweep: %s", st->name, st->err);
    if (conn_bad(st) || !exec_ok(st, "ROLLBACK TO sweep; RELEASE sweep"))
        return false;
    st->err[0] = '\0';
    st->sqlstate[0] = '\0';
    return true;
}

/* The orphan sweep, forgetting old keys and a new order-id block ride along;
 * the counter takes the batch's last seq. */
static bool pg_finish(void *be)
{
    pg_store *st = be;
    if (st->sweep && !sweep_dead_runs(st))
        return false;
    if (st->forget) {
        pg_params p = {0};
        store__pg_p_i64(&p, st->now - st->key_retention_ms);
        store__pg_p_i64(&p, STORE_KEYS_FORGET_MAX);
        PGresult *r = store__pg_run(st->w.c, PW_KEYS_FORGET, &p);
        bool ok = store__pg_ok(r);
        bool full = ok && atoll(PQcmdTuples(r)) >= STORE_KEYS_FORGET_MAX;
        if (!ok)
            note_error(st, r);
        PQclear(r);
        if (!ok)
            return false;
        int64_t period = st->key_retention_ms / 4;
        period = period < 100 ? 100 : period > 60000 ? 60000 : period;
        st->next_forget_ms = full ? st->now : st->now + period;
    }
    if (st->want_block && !take_block(st, &st->block_first, &st->block_last))
        return false;
    if (st->wr.seq != st->seq0) {
        pg_params p = {0};
        store__pg_p_i64(&p, st->wr.seq);
        PGresult *r = store__pg_run(st->w.c, PW_SEQ_SET, &p);
        bool ok = store__pg_ok(r);
        if (!ok)
            note_error(st, r);
        PQclear(r);
        if (!ok)
            return false;
    }
    return true;
}

static bool pg_commit(void *be)
{
    pg_store *st = be;
    /* NOTIFY is delivered at COMMIT: the other instances' followers wake. */
    bool notify = st->following && st->event_poll_ms <= 0 && st->wr.nevs;
    PGresult *r = PQexec(st->w.c, notify ? "NOTIFY oms_events; COMMIT" : "COMMIT");
    /* COMMIT of an aborted transaction answers ROLLBACK: not a commit. */
    bool committed = PQresultStatus(r) == PGRES_COMMAND_OK && strcmp(PQcmdStatus(r), "COMMIT") == 0;
    if (!committed) {
        note_error(st, r);
        if (!st->err[0] || PQresultStatus(r) == PGRES_COMMAND_OK)
            snprintf(st->err, sizeof st->err, "COMMIT rolled back");
    }
    PQclear(r);
    return committed;
}

static void pg_committed(void *be)
{
    pg_store *st = be;
    if (st->want_block) {
        pthread_mutex_lock(&st->id_mu);
        st->nxt_first = st->block_first;
        st->nxt_last = st->block_last;
        pthread_mutex_unlock(&st->id_mu);
        atomic_store(&st->mark_wanted, false);
    }
    store__writer_raise_seq(&st->wr, st->wr.seq);
    if (st->wr.nevs && st->wr.on_events)
        publish(st, st->wr.evs, st->wr.nevs);
}

/* Fails the batch on the error in st->err (else the request's) and rolls
 * back what is open. */
static store_rc pg_abort(void *be, const store_write *w, char *why, size_t cap)
{
    pg_store *st = be;
    /* The server's own text goes to the log; requests get what kind of
     * failure it was (store__pg_describe), or their own message. */
    if (st->err[0]) {
        OMS_ERROR("store: %s: %s", st->name, st->err);
        store__copy(why, cap, store__pg_describe(st->sqlstate, conn_bad(st)));
    } else {
        store__copy(why, cap, w ? w->msg : "database error (details in the server log)");
    }
    store_rc rc = store__pg_classify(st->sqlstate, conn_bad(st));
    if (!conn_bad(st) && PQtransactionStatus(st->w.c) != PQTRANS_IDLE)
        PQclear(PQexec(st->w.c, "ROLLBACK"));
    return rc;
}

static const store__writer_ops pg_writer_ops = {
    .due_at = pg_due_at,
    .begin = pg_begin,
    .apply = pg_apply,
    .savepoint = pg_savepoint,
    .lost = pg_lost,
    .error = pg_error,
    .finish = pg_finish,
    .commit = pg_commit,
    .committed = pg_committed,
    .abort = pg_abort,
    .error_aborts = true,
};

/* --- internal requests, waited for ----------------------------------------- */

static long pg_release_orphans(store *st)
{
    int64_t n = 0;
    if (store__writer_run_sync(&PG(st)->wr, STORE__OP_RELEASE_ORPHANS, &n) != STORE_OK)
        return -1;
    return (long)n;
}

static store_rc pg_sweep_done(store *st, const store_id_range *r)
{
    int64_t first = r->first;
    return store__writer_run_sync(&PG(st)->wr, STORE__OP_SWEEP_DONE, &first);
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
    if (!atomic_exchange(&st->mark_wanted, true))
        store__writer_wake(&st->wr);
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
            store__writer_raise_seq(&st->wr, *have);
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
    int64_t have = atomic_load(&st->wr.last_seq);
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
    store__writer_dispose(&st->wr);
    pthread_mutex_destroy(&st->id_mu);
    pthread_mutex_destroy(&st->ev_mu);
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
    st->base.wr = &st->wr;
    pthread_mutex_init(&st->id_mu, NULL);
    pthread_mutex_init(&st->ev_mu, NULL);
    strcpy(st->url, cfg->url);
    store__pg_redact(st->url, st->name, sizeof st->name);
    int wr_rc = store__writer_init(&st->wr, &pg_writer_ops, st, st->name, cfg);
    st->blob = oms_malloc(STORE__LINES_BLOB_MAX + 1);
    if (wr_rc != 0 || !st->blob) {
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
    st->wr.seq = atoll(PQgetvalue(r, 0, 0));
    PQclear(r);
    store__writer_raise_seq(&st->wr, st->wr.seq);
    st->published = st->wr.seq;
    st->id_block = cfg->id_block > 0 ? cfg->id_block : 16384;
    st->key_retention_ms = cfg->key_retention_ms > 0 ? cfg->key_retention_ms : 0;
    st->next_forget_ms = store__pg_wall_ms();
    if (open_run(st, err, errlen) != 0)
        goto fail;
    st->event_poll_ms = cfg->event_poll_ms;
    st->sweep_ms = cfg->orphan_sweep_ms > 0 ? cfg->orphan_sweep_ms : 0;
    st->next_sweep_ms = store__pg_wall_ms() + st->sweep_ms;
    if (st->wr.on_events && start_follower(st, err, errlen) != 0)
        goto fail;
    if (store__writer_start(&st->wr) != 0) {
        stop_follower(st);
        snprintf(err, errlen, "%s: cannot start the writer thread", st->name);
        goto fail;
    }
    OMS_INFO("store: %s: run %d, order ids %lld..%lld, event seq %lld", st->name, st->run,
             (long long)st->id_first, (long long)st->id_last, (long long)st->wr.seq);
    return (store *)(void *)st;
fail:
    free_store(st);
    return NULL;
}

static void pg_close(store *s)
{
    pg_store *st = PG(s);
    store__writer_stop(&st->wr);
    stop_follower(st);
    trim_run(st);
    store__writer_log_totals(&st->wr);
    free_store(st);
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
    l->st = st;
    if (store__pg_connect(&l->conn, st->url, store__pg_reader_sql, store__pg_reader_count, err,
                          errlen) != 0 ||
        store__loop_start(&l->lb, &store__pg_backend, &st->wr, loop, err, errlen) != 0) {
        store__pg_disconnect(&l->conn);
        oms_free(l);
        return NULL;
    }
    return (store_loop *)(void *)l;
}

static void pg_loop_close(store_loop *sl)
{
    pg_loop *l = (pg_loop *)(void *)sl;
    store__pg_disconnect(&l->conn);
    store__loop_dispose(&l->lb);
}

const store__backend store__pg_backend = {
    .name = "postgres",
    .close = pg_close,
    .next_order_id = pg_next_order_id,
    .pending_sweeps = pg_pending_sweeps,
    .sweep_done = pg_sweep_done,
    .release_orphans = pg_release_orphans,
    .loop_open = pg_loop_open,
    .loop_close = pg_loop_close,
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
