/* sqlite_int.h - the SQLite backend's private types, shared by src/store only.
 *
 *   sqlite.c         open/close, the writer thread (group commit), store_loops
 *   sqlite_schema.c  pragmas and versioned migrations
 *   sqlite_write.c   the store_op implementations (run on the writer)
 *   sqlite_read.c    synchronous reads on a store_loop's connection
 *   record.c         records, ids ("c-<n>", "o-<n>"), the lines blob
 */
#ifndef OMS_STORE_SQLITE_INT_H
#define OMS_STORE_SQLITE_INT_H

#include <pthread.h>
#include <sqlite3.h>
#include <stdatomic.h>

#include "store/store.h"

/* Internal ops, never submitted by callers: they run on the writer with
 * sl == NULL and their done() is called on the writer thread. */
#define STORE__OP_RELEASE_ORPHANS ((store_op)100)
/* in: delta = a previous run's range's first id: deletes that range. */
#define STORE__OP_SWEEP_DONE ((store_op)101)

/* The writer's prepared statements. */
enum {
    WS_BEGIN,
    WS_COMMIT,
    WS_ROLLBACK,
    WS_SAVEPOINT,
    WS_RELEASE_SP,
    WS_ROLLBACK_SP,
    WS_CUSTOMER_INSERT,
    WS_CUSTOMER_SET_STATUS,
    WS_PRODUCT_UPSERT,
    WS_PRODUCT_GET,
    WS_PRODUCT_SET_ON_HAND,
    WS_PRODUCT_RESERVE,
    WS_PRODUCT_UNRESERVE,
    WS_RESERVATION_GET,
    WS_RESERVATION_INSERT,
    WS_RESERVATION_RELEASE,
    WS_ORDER_INSERT,
    WS_ORDER_GET,
    WS_ORDER_GET_BY_KEY,
    WS_ORDER_UPDATE_STATUS,
    WS_EVENT_INSERT,
    WS_META_SET_HWM,
    WS_LIVE_RESERVATIONS,
    WS_ORDER_EXISTS,
    WS_PRODUCT_AVAILABLE,
    WS_PRODUCT_ADD_RESERVED,
    WS_KEYS_FORGET,
    WS__COUNT
};

/* A store_loop's read statements; list_orders has one per filter shape. */
enum {
    RS_CUSTOMER_GET,
    RS_CUSTOMER_LIST,
    RS_PRODUCT_GET,
    RS_PRODUCT_LIST,
    RS_ORDER_GET,
    RS_ORDER_GET_BY_KEY,
    RS_EVENTS_RANGE,
    RS_EVENTS_BY_ORDER,
    RS_ORDERS_FIRST_CREATED,
    RS__COUNT
};
#define RS_LIST_ORDERS_SHAPES 16 /* customer, status, from, to: one bit each */

struct store_loop {
    store *st;
    uv_loop_t *loop;
    uv_async_t async; /* runs completions on loop; freed in its close callback */
    sqlite3 *db;      /* this loop's read connection */
    sqlite3_stmt *rs[RS__COUNT];
    sqlite3_stmt *list_orders[RS_LIST_ORDERS_SHAPES];

    pthread_mutex_t mu; /* guards the completion list, filled by the writer */
    store_write *done_head, *done_tail;
};

struct store {
    char path[1024];
    size_t max_batch;
    store_events_cb on_events;
    void *events_arg;

    sqlite3 *db; /* the writer's connection: store_open, then the writer thread only */
    sqlite3_stmt *ws[WS__COUNT];

    pthread_t writer;
    pthread_mutex_t mu; /* guards the queue and the flags below */
    pthread_cond_t cv;
    store_write *head, *tail;
    bool closing; /* store_close began: new writes complete with STORE_CLOSED */
    bool stopped; /* the writer exited */

    /* Writer-thread state. */
    int64_t seq;           /* last event seq taken (rolled back with failures) */
    int64_t hwm_persisted; /* order-id high-water mark in meta */
    int64_t batch_hwm;     /* highest order number written in this batch */
    int64_t batch_noted;   /* the same, from the requests only (not the mark) */
    int64_t max_noted;     /* highest order number committed (or the mark found at open) */
    store_event *evs;      /* this transaction's events */
    size_t nevs, evs_cap;
    uint8_t *blob;            /* lines encoding scratch */
    int64_t key_retention_ms; /* 0: idempotency keys are kept forever */
    int64_t next_forget_ms;   /* wall clock ms of the next look for keys to forget */

    /* Order ids (sqlite.c, "sweep ranges" in store.h). */
    int64_t id_block;        /* ids per raise of the mark */
    int64_t run_first;       /* first id of this run: its sweep range's key */
    store_id_range *pending; /* previous runs' ranges found at open */
    size_t npending;
    _Atomic int64_t id_mark;    /* durable mark: no id above it is handed out */
    _Atomic bool mark_wanted;   /* the writer should raise the mark */
    _Atomic int64_t next_order; /* last order number handed out */
    _Atomic int64_t last_seq;
    _Atomic uint64_t commits, writes, max_batch_seen, commit_us;
    /* metrics (store_stats): written by the writer thread; queued under mu */
    _Atomic uint64_t commit_hist[STORE_COMMIT_BUCKETS], batch_hist[STORE_BATCH_BUCKETS];
    _Atomic uint64_t batches, batch_requests, failed, queued;
    _Atomic bool last_failed;
    _Atomic int64_t last_failure_ms;
};

/* sqlite_schema.c: pragmas and migrations on the writer connection. */
int store__schema_migrate(store *st, char *err, size_t errlen);
/* The code's schema version (the newest migration). */
int store__schema_version(void);
int store__prepare_writer(store *st, char *err, size_t errlen);

/* sqlite_write.c: runs one request inside the current savepoint; returns
 * w->rc. An SQL failure sets STORE_ERROR and a message. */
store_rc store__apply(store *st, store_write *w);
/* Loads an order by rowid with stmt (bound and reset here). */
store_rc store__order_from_row(sqlite3_stmt *s, store_order **out);

/* sqlite_read.c */
int store__prepare_reader(store_loop *sl, char *err, size_t errlen);
void store__finalize_reader(store_loop *sl);

/* record.c */
/* "c-12" / "o-12" -> 12; returns false unless the id is prefix, '-', 1..18
 * digits without a leading zero. */
bool store__parse_id(const char *id, char prefix, int64_t *n);
void store__format_id(char out[STORE_ID_MAX + 1], char prefix, int64_t n);
/* Copies at most cap-1 bytes and NUL-terminates. */
void store__copy(char *dst, size_t cap, const char *src);
/* Bounded length of a fixed char array field: cap if it lacks a NUL. */
#define STORE__LINES_BLOB_MAX (STORE_MAX_LINES * (1 + STORE_SKU_MAX + 16))
/* Encodes lines into buf (at least STORE__LINES_BLOB_MAX bytes); returns the
 * size. */
size_t store__lines_encode(const store_line *lines, size_t n, uint8_t *buf);
/* Counts the lines of a blob; -1 if malformed. */
long store__lines_count(const uint8_t *p, size_t len);
/* Decodes n lines (as counted) into out. */
void store__lines_decode(const uint8_t *p, size_t len, store_line *out, size_t n);

/* Copies a text column into a fixed buffer. */
void store__col_text(sqlite3_stmt *s, int col, char *dst, size_t cap);

/* Binds as sqlite3_bind_*; a failed bind (SQLITE_RANGE, _TOOBIG, _NOMEM)
 * is kept for the statement on this thread, and the next store__step on it
 * returns that code without running it. Use store__step after store__bind_*. */
void store__bind_int(sqlite3_stmt *s, int i, int v);
void store__bind_int64(sqlite3_stmt *s, int i, int64_t v);
void store__bind_text(sqlite3_stmt *s, int i, const char *v, int n, void (*d)(void *));
void store__bind_blob(sqlite3_stmt *s, int i, const void *v, int n, void (*d)(void *));
/* sqlite3_step, or the failure of a bind on s since its last step. */
int store__step(sqlite3_stmt *s);

#endif
