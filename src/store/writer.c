/* writer.c - the writer thread both backends share: the queue, group commit,
 * the completions handed back to the loops, stopping (store_int.h has the
 * picture and the backend's ops).
 *
 * Everything here is backend-neutral: what a transaction, a savepoint or a
 * failure means in SQL is the backend's (sqlite.c, pg.c).
 */
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "base/alloc.h"
#include "base/log.h"
#include "store_int.h"

void store_config_init(store_config *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    cfg->max_batch = 1024;
}

const uint64_t store_commit_bounds_us[STORE_COMMIT_BUCKETS] = {
    100, 250, 500, 1000, 2500, 5000, 10000, 25000, 50000, 100000, 250000, 1000000};
const uint64_t store_batch_bounds[STORE_BATCH_BUCKETS] = {1,  2,   4,   8,    16,   32,
                                                          64, 128, 256, 1024, 4096, 65536};

static uint64_t now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

int64_t store__wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

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

/* --- completions ------------------------------------------------------------- */

static void deliver(store_write *w)
{
    store__loop_base *lb = (store__loop_base *)(void *)w->sl;
    if (!lb) { /* an internal request: completes on the writer */
        w->done(w);
        return;
    }
    w->next = NULL;
    pthread_mutex_lock(&lb->mu);
    if (lb->done_tail)
        lb->done_tail->next = w;
    else
        lb->done_head = w;
    lb->done_tail = w;
    /* Under the lock: once store_loop_flush saw nothing pending, no send can
     * still be on its way to a handle about to close. */
    uv_async_send(&lb->async);
    pthread_cond_broadcast(&lb->cv);
    pthread_mutex_unlock(&lb->mu);
}

/* Takes the completion list (lb->mu held) and counts it off pending. */
static store_write *take_done(store__loop_base *lb)
{
    store_write *w = lb->done_head;
    lb->done_head = lb->done_tail = NULL;
    for (store_write *x = w; x; x = x->next)
        lb->pending--;
    return w;
}

static void run_done(store_write *w)
{
    while (w) {
        store_write *next = w->next;
        w->next = NULL;
        w->done(w); /* may free w, or submit more */
        w = next;
    }
}

static void on_async(uv_async_t *a)
{
    store__loop_base *lb = a->data;
    pthread_mutex_lock(&lb->mu);
    store_write *w = take_done(lb);
    pthread_mutex_unlock(&lb->mu);
    run_done(w);
}

void store_loop_flush(store_loop *sl)
{
    store__loop_base *lb = (store__loop_base *)(void *)sl;
    pthread_mutex_lock(&lb->mu);
    while (lb->pending > 0) {
        while (!lb->done_head)
            pthread_cond_wait(&lb->cv, &lb->mu);
        store_write *w = take_done(lb);
        pthread_mutex_unlock(&lb->mu);
        run_done(w);
        pthread_mutex_lock(&lb->mu);
    }
    pthread_mutex_unlock(&lb->mu);
}

int store__loop_start(store__loop_base *lb, const store__backend *be, store__writer *wr,
                      uv_loop_t *loop, char *err, size_t errlen)
{
    lb->base.be = be;
    lb->base.wr = wr;
    lb->loop = loop;
    int rc = uv_async_init(loop, &lb->async, on_async);
    if (rc != 0) {
        snprintf(err, errlen, "uv_async_init: %s", uv_strerror(rc));
        return -1;
    }
    pthread_mutex_init(&lb->mu, NULL);
    pthread_cond_init(&lb->cv, NULL);
    lb->async.data = lb;
    return 0;
}

static void on_async_close(uv_handle_t *h)
{
    store__loop_base *lb = h->data;
    pthread_cond_destroy(&lb->cv);
    pthread_mutex_destroy(&lb->mu);
    oms_free(lb);
}

void store__loop_dispose(store__loop_base *lb)
{
    uv_close((uv_handle_t *)&lb->async, on_async_close);
}

/* --- the batch ------------------------------------------------------------------ */

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

/* The one way a batch fails: the backend rolls back what is open and says
 * why; every request fails with that, and the batch's events and seqs are
 * forgotten. failed: the request that fails the batch, or NULL. */
static void abort_batch(store__writer *wr, store_write *batch, int64_t seq0,
                        const store_write *failed)
{
    char why[STORE_MSG_MAX + 1];
    store_rc rc = wr->ops->abort(wr->be, failed, why, sizeof why);
    bump(&wr->failed, 1);
    atomic_store_explicit(&wr->last_failed, true, memory_order_relaxed);
    atomic_store_explicit(&wr->last_failure_ms, store__wall_ms(), memory_order_relaxed);
    char msg[STORE_MSG_MAX + 1];
    snprintf(msg, sizeof msg, "%s%.150s", strncmp(why, "store: ", 7) == 0 ? "" : "store: ", why);
    OMS_ERROR("store: %s: transaction failed: %s", wr->name, why);
    for (store_write *w = batch; w; w = w->next)
        if (w->rc != STORE_CLOSED)
            fail_request(w, rc, msg);
    wr->seq = seq0;
    wr->nevs = 0;
}

/* Whether a request needs a savepoint of its own. The ops below fail (with
 * anything but STORE_ERROR) before their first write, or their only write is
 * one statement, which the database makes atomic: they skip the two extra
 * statements; so does ORDER_PLACE, whose checks all come before its first
 * write. A multi-line RESERVE can fail after reserving earlier lines,
 * RELEASE, a with-stock cancel and the orphan sweep write several rows: they
 * get one. An SQL error in a request without a savepoint fails its whole
 * batch (run_batch). */
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

/* Runs the requests of an open transaction. false: the batch failed (and was
 * aborted). */
static bool run_requests(store__writer *wr, store_write *batch, int64_t seq0)
{
    const store__writer_ops *ops = wr->ops;
    for (store_write *w = batch; w; w = w->next) {
        if (w->rc == STORE_CLOSED) /* submitted while closing: not run */
            continue;
        int64_t seq = wr->seq;
        size_t nevs = wr->nevs;
        bool sp = needs_savepoint(w);
        if (sp && !ops->savepoint(wr->be, STORE__SP_BEGIN)) {
            if (ops->error_aborts || ops->lost(wr->be)) {
                abort_batch(wr, batch, seq0, NULL);
                return false;
            }
            char why[STORE_MSG_MAX + 1];
            ops->error(wr->be, why, sizeof why);
            fail_request(w, STORE_ERROR, why);
            continue;
        }
        store_rc rc = ops->apply(wr->be, w);
        if (rc == STORE_OK) {
            if (sp && !ops->savepoint(wr->be, STORE__SP_RELEASE)) {
                abort_batch(wr, batch, seq0, NULL); /* the savepoint is still open */
                return false;
            }
            continue;
        }
        wr->seq = seq;
        wr->nevs = nevs;
        if (ops->lost(wr->be) || (!sp && rc == STORE_ERROR)) {
            /* The database rolled the whole transaction back (I/O error,
             * full disk, a lost connection), or an SQL error hit a request
             * without a savepoint midway: the batch cannot be trusted, fail
             * all of it. */
            abort_batch(wr, batch, seq0, w);
            return false;
        }
        /* Before the rollback replaces the error. */
        store_rc alone = rc == STORE_ERROR ? ops->error(wr->be, NULL, 0) : rc;
        if (sp && !ops->savepoint(wr->be, STORE__SP_ROLLBACK)) {
            abort_batch(wr, batch, seq0, NULL); /* the savepoint is still open */
            return false;
        }
        w->rc = alone; /* an SQL error failed this request alone: what it means */
    }
    return true;
}

static void run_batch(store__writer *wr, store_write *batch, size_t n)
{
    const store__writer_ops *ops = wr->ops;
    wr->nevs = 0;
    int64_t seq0 = wr->seq;
    bool any = false;
    for (store_write *w = batch; w && !any; w = w->next)
        any = w->rc != STORE_CLOSED;
    int open = ops->begin(wr->be, any);
    if (open == 0) /* only writes refused while closing, no background work */
        goto complete;
    if (open < 0) {
        abort_batch(wr, batch, seq0, NULL);
        goto complete;
    }
    seq0 = wr->seq; /* begin may read the counter */
    if (!run_requests(wr, batch, seq0))
        goto complete;
    if (!ops->finish(wr->be)) {
        abort_batch(wr, batch, seq0, NULL);
        goto complete;
    }
    uint64_t t0 = now_us();
    if (!ops->commit(wr->be)) {
        abort_batch(wr, batch, seq0, NULL);
        goto complete;
    }
    uint64_t took = now_us() - t0;
    atomic_fetch_add(&wr->commit_us, took);
    atomic_fetch_add(&wr->commits, 1);
    observe(wr->commit_hist, store_commit_bounds_us, STORE_COMMIT_BUCKETS, took);
    atomic_store_explicit(&wr->last_failed, false, memory_order_relaxed);
    ops->committed(wr->be);
complete:
    wr->nevs = 0;
    atomic_fetch_add(&wr->writes, n);
    if (n) {
        bump(&wr->batches, 1);
        bump(&wr->batch_requests, n);
        observe(wr->batch_hist, store_batch_bounds, STORE_BATCH_BUCKETS, n);
    }
    if (n > atomic_load(&wr->max_batch_seen))
        atomic_store(&wr->max_batch_seen, n);
    while (batch) {
        store_write *next = batch->next;
        deliver(batch);
        batch = next;
    }
}

/* Sleeps (under mu) until a request is queued, the store closes, or the
 * backend's background work is due. true if it slept. */
static bool wait_for_work(store__writer *wr)
{
    bool waited = false;
    for (;;) {
        if (wr->head || wr->closing)
            return waited;
        int64_t now = store__wall_ms(), at = wr->ops->due_at(wr->be, now);
        if (at <= now)
            return waited;
        if (at == INT64_MAX) {
            pthread_cond_wait(&wr->cv, &wr->mu);
        } else {
            struct timespec ts = {.tv_sec = at / 1000, .tv_nsec = (long)(at % 1000) * 1000000};
            pthread_cond_timedwait(&wr->cv, &wr->mu, &ts);
        }
        waited = true;
    }
}

static void *writer_main(void *arg)
{
    store__writer *wr = arg;
    pthread_mutex_lock(&wr->mu);
    for (;;) {
        bool waited = wait_for_work(wr);
        if (waited && wr->head) {
            /* Woken by a loop's first submit: where the loop shares this
             * thread's core, let it queue the rest of its iteration's writes
             * first, or the batch is that one write and its own commit. With
             * a core to itself the yield returns at once. */
            pthread_mutex_unlock(&wr->mu);
            sched_yield();
            pthread_mutex_lock(&wr->mu);
        }
        if (!wr->head && wr->closing)
            break;       /* closing and drained */
        if (!wr->head) { /* only background work */
            pthread_mutex_unlock(&wr->mu);
            run_batch(wr, NULL, 0);
            pthread_mutex_lock(&wr->mu);
            continue;
        }
        store_write *batch = wr->head, *last = batch;
        size_t n = 1;
        while (last->next && n < wr->max_batch) {
            last = last->next;
            n++;
        }
        wr->head = last->next;
        if (!wr->head)
            wr->tail = NULL;
        atomic_fetch_sub(&wr->queued, n);
        last->next = NULL;
        pthread_mutex_unlock(&wr->mu);
        run_batch(wr, batch, n);
        pthread_mutex_lock(&wr->mu);
    }
    wr->stopped = true;
    pthread_mutex_unlock(&wr->mu);
    return NULL;
}

/* --- the queue -------------------------------------------------------------------- */

static void enqueue(store__writer *wr, store_write *w)
{
    if (wr->tail)
        wr->tail->next = w;
    else
        wr->head = w;
    wr->tail = w;
    atomic_fetch_add(&wr->queued, 1);
    pthread_cond_signal(&wr->cv);
}

void store__writer_submit(store_loop *sl, store_write *w)
{
    store__writer *wr = ((store__base *)(void *)sl)->wr;
    w->sl = sl;
    w->next = NULL;
    w->msg[0] = '\0';
    w->existed = false;
    w->event_seq = 0;
    w->previous_status = 0;
    w->result = NULL;
    store__loop_base *lb = (store__loop_base *)(void *)sl;
    pthread_mutex_lock(&lb->mu);
    lb->pending++;
    pthread_mutex_unlock(&lb->mu);
    pthread_mutex_lock(&wr->mu);
    if (wr->stopped) {
        pthread_mutex_unlock(&wr->mu);
        fail_request(w, STORE_CLOSED, "store is closed");
        deliver(w);
        return;
    }
    /* While closing, a request still goes through the queue (so completions
     * keep submission order) but is not run. */
    w->rc = wr->closing ? STORE_CLOSED : STORE_OK;
    if (w->rc == STORE_CLOSED)
        store__copy(w->msg, sizeof w->msg, "store is closing");
    enqueue(wr, w);
    pthread_mutex_unlock(&wr->mu);
}

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

store_rc store__writer_run_sync(store__writer *wr, store_op op, int64_t *delta)
{
    sync_write *s = oms_calloc(1, sizeof *s);
    if (!s)
        return STORE_ERROR;
    pthread_mutex_init(&s->mu, NULL);
    pthread_cond_init(&s->cv, NULL);
    s->w.op = op;
    s->w.delta = *delta;
    s->w.done = on_sync_done;
    s->w.at = store__wall_ms();
    store_rc r = STORE_CLOSED;
    pthread_mutex_lock(&wr->mu);
    bool queued = !wr->closing && !wr->stopped;
    if (queued)
        enqueue(wr, &s->w);
    pthread_mutex_unlock(&wr->mu);
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

void store__writer_wake(store__writer *wr)
{
    pthread_mutex_lock(&wr->mu);
    pthread_cond_signal(&wr->cv);
    pthread_mutex_unlock(&wr->mu);
}

/* --- events, stats ------------------------------------------------------------------- */

store_rc store__writer_event(store__writer *wr, store_write *w, const char *order_id,
                             const char *customer_id, int status, int previous, int64_t version,
                             int64_t at)
{
    if (wr->nevs == wr->evs_cap) {
        store__copy(w->msg, sizeof w->msg, "store: too many events in one transaction");
        return w->rc = STORE_ERROR;
    }
    int64_t seq = ++wr->seq;
    store_event *e = &wr->evs[wr->nevs++];
    e->seq = seq;
    store__copy(e->order_id, sizeof e->order_id, order_id); /* as parsed: "o-<n>" */
    store__copy(e->customer_id, sizeof e->customer_id, customer_id);
    e->status = status;
    e->previous_status = previous;
    e->version = version;
    e->at = at;
    w->event_seq = seq;
    return STORE_OK;
}

void store__writer_raise_seq(store__writer *wr, int64_t seq)
{
    int64_t cur = atomic_load(&wr->last_seq);
    while (cur < seq && !atomic_compare_exchange_weak(&wr->last_seq, &cur, seq))
        ;
}

void store__writer_get_stats(store__writer *wr, store_stats *out)
{
    out->commits = atomic_load(&wr->commits);
    out->writes = atomic_load(&wr->writes);
    out->max_batch = atomic_load(&wr->max_batch_seen);
    out->commit_us = atomic_load(&wr->commit_us);
    for (size_t i = 0; i < STORE_COMMIT_BUCKETS; i++)
        out->commit_hist[i] = atomic_load_explicit(&wr->commit_hist[i], memory_order_relaxed);
    for (size_t i = 0; i < STORE_BATCH_BUCKETS; i++)
        out->batch_hist[i] = atomic_load_explicit(&wr->batch_hist[i], memory_order_relaxed);
    out->batches = atomic_load_explicit(&wr->batches, memory_order_relaxed);
    out->batch_requests = atomic_load_explicit(&wr->batch_requests, memory_order_relaxed);
    out->failed = atomic_load_explicit(&wr->failed, memory_order_relaxed);
    out->last_failed = atomic_load_explicit(&wr->last_failed, memory_order_relaxed);
    out->last_failure_ms = atomic_load_explicit(&wr->last_failure_ms, memory_order_relaxed);
    out->queued = atomic_load_explicit(&wr->queued, memory_order_relaxed);
}

void store__writer_log_totals(store__writer *wr)
{
    store_stats s;
    store__writer_get_stats(wr, &s);
    if (s.commits) /* the commit time is the write path's floor */
        OMS_INFO("store: %s: %llu writes in %llu commits (%.1f per commit, max %llu), "
                 "%.0f us per commit",
                 wr->name, (unsigned long long)s.writes, (unsigned long long)s.commits,
                 (double)s.writes / (double)s.commits, (unsigned long long)s.max_batch,
                 (double)s.commit_us / (double)s.commits);
}

/* --- life cycle ---------------------------------------------------------------------- */

int store__writer_init(store__writer *wr, const store__writer_ops *ops, void *be, const char *name,
                       const store_config *cfg)
{
    memset(wr, 0, sizeof *wr);
    wr->ops = ops;
    wr->be = be;
    wr->name = name;
    wr->max_batch = cfg->max_batch ? cfg->max_batch : 1024;
    if (wr->max_batch > 65536) /* bigger batches only add latency */
        wr->max_batch = 65536;
    wr->on_events = cfg->on_events;
    wr->events_arg = cfg->events_arg;
    pthread_mutex_init(&wr->mu, NULL);
    pthread_cond_init(&wr->cv, NULL);
    /* One event per request at most. */
    wr->evs_cap = wr->max_batch;
    wr->evs = oms_malloc(wr->evs_cap * sizeof *wr->evs);
    return wr->evs ? 0 : -1;
}

int store__writer_start(store__writer *wr)
{
    if (pthread_create(&wr->thread, NULL, writer_main, wr) != 0)
        return -1;
    pthread_setname_np(wr->thread, "oms-store"); /* for top -H, perf, the benchmark */
    wr->started = true;
    return 0;
}

void store__writer_stop(store__writer *wr)
{
    pthread_mutex_lock(&wr->mu);
    wr->closing = true;
    pthread_cond_signal(&wr->cv);
    pthread_mutex_unlock(&wr->mu);
    if (wr->started)
        pthread_join(wr->thread, NULL);
    wr->started = false;
}

void store__writer_dispose(store__writer *wr)
{
    pthread_cond_destroy(&wr->cv);
    pthread_mutex_destroy(&wr->mu);
    oms_free(wr->evs);
    wr->evs = NULL;
}
