/* store_int.h - what the store's backends share, private to src/store.
 *
 *   store.c          store_open picks the backend by URL; the public calls
 *                    dispatch through its table
 *   sqlite*.c        the SQLite backend ("sqlite:PATH")
 *   pg*.c            the PostgreSQL backend ("postgres://...", "postgresql://...")
 *   writer.c         the writer thread both backends share: the queue, group
 *                    commit (one transaction per batch, savepoints where a
 *                    request can fail half-way), completions on the loops
 *   record.c         records, ids ("c-<n>", "o-<n>"), the lines blob
 *
 * Each backend's store begins with a store__base and each store_loop with a
 * store__loop_base (which begins with one), whose table the public functions
 * in store.c call through: a store or store_loop pointer converts to a
 * pointer to its first member.
 */
#ifndef OMS_STORE_STORE_INT_H
#define OMS_STORE_STORE_INT_H

#include <pthread.h>
#include <stdatomic.h>

#include "store/store.h"

/* A backend: the public calls, same contracts as in store.h. */
typedef struct store__backend {
    const char *name; /* "sqlite", "postgres" */
    void (*close)(store *st);
    store_rc (*next_order_id)(store *st, char out[STORE_ID_MAX + 1]);
    size_t (*pending_sweeps)(store *st, store_id_range *out, size_t cap);
    store_rc (*sweep_done)(store *st, const store_id_range *r);
    long (*release_orphans)(store *st);
    store_loop *(*loop_open)(store *st, uv_loop_t *loop, char *err, size_t errlen);
    void (*loop_close)(store_loop *sl);
    long (*list_unused_order_ids)(store_loop *sl, int64_t first, int64_t last, int64_t *out,
                                  size_t limit);
    store_rc (*get_customer)(store_loop *sl, const char *id, store_customer *out);
    store_rc (*get_product)(store_loop *sl, const char *sku, store_product *out);
    long (*list_customers)(store_loop *sl, const char *after_id, store_customer *out, size_t limit);
    long (*list_products)(store_loop *sl, const char *after_sku, store_product *out, size_t limit);
    store_rc (*get_order)(store_loop *sl, const char *id, store_order **out);
    store_rc (*find_order_by_key)(store_loop *sl, const char *customer_id,
                                  const char *idempotency_key, store_order **out);
    long (*list_orders)(store_loop *sl, const store_order_filter *f, const char *after_id,
                        store_order **out, size_t limit);
    long (*read_events)(store_loop *sl, int64_t from_seq, const char *order_id, store_event *out,
                        size_t limit);
} store__backend;

typedef struct store__writer store__writer;

/* The first member of every backend's store (and, inside store__loop_base,
 * of every store_loop). */
typedef struct store__base {
    const store__backend *be;
    store__writer *wr; /* the store's writer (writer.c) */
} store__base;

/* Internal ops, never submitted by callers: they run on the writer with
 * sl == NULL and their done() is called on the writer thread. */
#define STORE__OP_RELEASE_ORPHANS ((store_op)100)
/* in: delta = a previous run's range's first id: deletes that range. */
#define STORE__OP_SWEEP_DONE ((store_op)101)

/* --- the writer (writer.c) ---------------------------------------------------
 *
 * store_submit() appends to one mutex+condvar queue. The writer thread takes
 * all that is queued (up to max_batch) and runs it as one transaction
 * through the backend's ops:
 *
 *   begin; per request: [savepoint] apply [release | rollback to]; finish;
 *   commit; committed (the events handed to on_events)
 *
 * A failing request rolls back alone (and gives back the event seq it took:
 * seqs stay gap-free) where it has a savepoint; an SQL error outside one, a
 * lost transaction or a failed step fails the whole batch (abort). While a
 * COMMIT runs, new requests queue up and form the next batch: the busier
 * the store, the bigger its transactions. After the commit (or the failure)
 * each request goes to its store_loop's completion list and the loop is woken
 * with uv_async_send(); it runs done() in submission order.
 *
 * Each op runs on the writer thread and gets the backend's store as be. */
typedef enum store__sp_step {
    STORE__SP_BEGIN,
    STORE__SP_RELEASE,
    STORE__SP_ROLLBACK
} store__sp_step;

typedef struct store__writer_ops {
    /* With nothing queued: when background work (an order-id block, old
     * keys to forget, a sweep) is next due, as a wall-clock ms; <= now: due
     * now, INT64_MAX: nothing planned (the writer sleeps until woken). Runs
     * under the queue's lock. */
    int64_t (*due_at)(void *be, int64_t now);
    /* Opens the batch's transaction (any: some request is to run; else only
     * background work). 1: open; 0: nothing to do, no transaction; -1:
     * failed (abort says why). */
    int (*begin)(void *be, bool any);
    /* Runs one request (store_op); returns w->rc. An SQL failure is
     * STORE_ERROR with w->msg set. */
    store_rc (*apply)(void *be, store_write *w);
    /* A request's savepoint: SAVEPOINT, RELEASE, or ROLLBACK TO + RELEASE.
     * false: the statement failed. */
    bool (*savepoint)(void *be, store__sp_step step);
    /* No transaction is open any more (the database rolled it back, or the
     * connection is gone): nothing can be rolled back to a savepoint. */
    bool (*lost)(void *be);
    /* The SQL error just seen: its store_rc, its text into why. */
    store_rc (*error)(void *be, char *why, size_t cap);
    /* After the requests, before COMMIT: background work riding along,
     * bookkeeping writes. false: failed. */
    bool (*finish)(void *be);
    /* COMMIT. false: not committed. */
    bool (*commit)(void *be);
    /* After a durable COMMIT, before the requests complete: the backend's
     * state, last_seq, and the events to on_events. */
    void (*committed)(void *be);
    /* The batch fails: rolls back what is open and returns the store_rc every
     * request fails with, the reason into why. w: the request whose failure
     * fails the batch (its msg), or NULL: the SQL error just seen. */
    store_rc (*abort)(void *be, const store_write *w, char *why, size_t cap);
    /* An SQL error aborts the whole transaction, not just the statement
     * (PostgreSQL): a failed SAVEPOINT fails the batch instead of its
     * request alone. */
    bool error_aborts;
} store__writer_ops;

struct store__writer {
    const store__writer_ops *ops;
    void *be;
    const char *name; /* the store, for messages ("sqlite:/x/oms.db"); borrowed */
    size_t max_batch;
    store_events_cb on_events;
    void *events_arg;

    pthread_t thread;
    bool started;
    pthread_mutex_t mu; /* guards the queue and the flags below */
    pthread_cond_t cv;
    store_write *head, *tail;
    bool closing; /* store_close began: new writes complete with STORE_CLOSED */
    bool stopped; /* the writer exited */

    /* The transaction's events (writer thread): the backend's ops number
     * them from seq and record them with store__writer_event. */
    int64_t seq; /* last event seq taken (rolled back with failures) */
    store_event *evs;
    size_t nevs, evs_cap;

    _Atomic int64_t last_seq; /* only grows (store__writer_raise_seq) */
    _Atomic uint64_t commits, writes, max_batch_seen, commit_us;
    /* metrics (store_stats): written by the writer thread; queued under mu */
    _Atomic uint64_t commit_hist[STORE_COMMIT_BUCKETS], batch_hist[STORE_BATCH_BUCKETS];
    _Atomic uint64_t batches, batch_requests, failed, queued;
    _Atomic bool last_failed;
    _Atomic int64_t last_failure_ms;
};

/* Sets up wr (not started): max_batch capped at 65536 (0: 1024), room for
 * one event per request. -1 out of memory. name is borrowed. */
int store__writer_init(store__writer *wr, const store__writer_ops *ops, void *be, const char *name,
                       const store_config *cfg);
/* Starts the writer thread ("oms-store"), wr->seq and last_seq set. -1 if
 * it cannot. */
int store__writer_start(store__writer *wr);
/* Stops accepting writes, lets the writer run what is queued, joins it. */
void store__writer_stop(store__writer *wr);
/* Frees what init allocated (after stop, or if never started). */
void store__writer_dispose(store__writer *wr);
/* Wakes the writer: background work became due (due_at changed). */
void store__writer_wake(store__writer *wr);
/* store_submit: sl begins with a store__loop_base. */
void store__writer_submit(store_loop *sl, store_write *w);
/* Runs an internal op on the writer and waits for its commit; *delta gets
 * w.delta (in and out). STORE_CLOSED if the store is closing. */
store_rc store__writer_run_sync(store__writer *wr, store_op op, int64_t *delta);
/* Records the event numbered wr->seq + 1 (already written) for on_events:
 * takes the seq and sets w->event_seq. STORE_ERROR (w->msg) if the
 * transaction holds max_batch events already. */
store_rc store__writer_event(store__writer *wr, store_write *w, const char *order_id,
                             const char *customer_id, int status, int previous, int64_t version,
                             int64_t at);
/* Raises last_seq to seq (never lowers it). */
void store__writer_raise_seq(store__writer *wr, int64_t seq);
void store__writer_get_stats(store__writer *wr, store_stats *out);
/* The closing line in the log: writes, commits, time per commit. */
void store__writer_log_totals(store__writer *wr);
/* Unix ms. */
int64_t store__wall_ms(void);

/* Every backend's store_loop begins with this: dispatch, and the completions
 * the writer hands back to the loop. */
typedef struct store__loop_base {
    store__base base; /* first: store.c dispatches through it */
    uv_loop_t *loop;
    uv_async_t async;   /* runs completions on loop; freed in its close callback */
    pthread_mutex_t mu; /* guards the completion list, filled by the writer */
    pthread_cond_t cv;  /* a completion arrived (store_loop_flush waits on it) */
    store_write *done_head, *done_tail;
    size_t pending; /* submitted through this loop, done not yet taken (under mu) */
} store__loop_base;

/* Attaches lb to loop (its async handle; the last step of a loop_open):
 * -1 with err on failure, lb untouched then. */
int store__loop_start(store__loop_base *lb, const store__backend *be, store__writer *wr,
                      uv_loop_t *loop, char *err, size_t errlen);
/* Closes the async handle (store_loop_close flushed the loop's writes
 * first); the object (allocated with oms_calloc, lb at its start) is freed
 * once the handle closed. */
void store__loop_dispose(store__loop_base *lb);

/* The backends' openers (store_open's contract; the URL's prefix chose). */
store *store__sqlite_open(const store_config *cfg, char *err, size_t errlen);
store *store__pg_open(const store_config *cfg, char *err, size_t errlen);

/* record.c */
/* "c-12" / "o-12" -> 12; returns false unless the id is prefix, '-', 1..18
 * digits without a leading zero. */
bool store__parse_id(const char *id, char prefix, int64_t *n);
void store__format_id(char out[STORE_ID_MAX + 1], char prefix, int64_t n);
/* Copies at most cap-1 bytes and NUL-terminates. */
void store__copy(char *dst, size_t cap, const char *src);
#define STORE__LINES_BLOB_MAX (STORE_MAX_LINES * (1 + STORE_SKU_MAX + 16))
/* Encodes lines into buf (at least STORE__LINES_BLOB_MAX bytes); returns the
 * size. */
size_t store__lines_encode(const store_line *lines, size_t n, uint8_t *buf);
/* Counts the lines of a blob; -1 if malformed. */
long store__lines_count(const uint8_t *p, size_t len);
/* Decodes n lines (as counted) into out. */
void store__lines_decode(const uint8_t *p, size_t len, store_line *out, size_t n);

#endif
