/* pg_int.h - the PostgreSQL backend's private types, shared by src/store only.
 *
 *   pg.c         open/close, the writer's ops (writer.c runs the group
 *                commit), reconnects, order-id blocks, the follower, store_loops
 *   pg_schema.c  versioned migrations under an advisory lock; the writer's SQL
 *   pg_write.c   the store_op implementations (run on the writer)
 *   pg_read.c    synchronous reads on a store_loop's connection
 *   pg_conn.c    libpq helpers: connecting, parameters, binary results,
 *                SQLSTATE -> store_rc, the URL without its password
 *
 * Threads and libpq. libpq stays on the threads that own a connection: the
 * writer thread has one (blocking libpq: it is the thread's whole job), and
 * each store_loop has one of its own for the synchronous reads of store.h.
 * A read is one round trip on the loop's thread: the read API is synchronous,
 * so it waits for the database (not for the writer: READ COMMITTED reads see
 * the last commit and take no locks a writer holds). A read connection that
 * broke is reconnected and the read tried once more; after a failed
 * reconnect the loop's reads fail at once (STORE_UNAVAILABLE, -1 for lists)
 * until a backoff passed, so a database that is down costs a loop one connect
 * attempt per backoff period, bounded by connect_timeout. (An asynchronous read API driven by
 * uv_poll on PQsocket would remove the round trip from the loop; store.h would change for it.)
 *
 * Many instances, one database. Every write transaction first locks the
 * event counter row (meta 'event_seq', SELECT ... FOR UPDATE) and holds it to
 * COMMIT: writers of all instances take turns, one batch at a time, so
 *  - seqs are gap-free and in commit order (the batch numbers its events from
 *    the counter it read under the lock and writes the counter back);
 *  - checks then writes (ORDER_PLACE's stock check, the idempotency key's
 *    lookup) see every other instance's committed state and nobody writes in
 *    between: no oversell, one order per key, and no deadlocks between
 *    instances (the counter is always the first lock);
 *  - group commit keeps the turns large: one lock, one COMMIT per batch.
 * Order ids come in blocks of id_block from meta 'order_hwm' (one UPDATE ...
 * RETURNING per block, riding along a batch): instances never hand out the
 * same id and never coordinate per order. Each block is a sweep range owned by
 * this run, whose liveness is a session advisory lock (OMS_PG_LOCK_CLASS,
 * run id) held by the writer's connection: ranges of runs whose lock is free
 * are the pending sweeps.
 */
#ifndef OMS_STORE_PG_INT_H
#define OMS_STORE_PG_INT_H

#include <libpq-fe.h>
#include <pthread.h>
#include <stdatomic.h>

#include "store_int.h"

/* Advisory lock class of oms ('oms'); key 0 guards migrations, key n > 0 is
 * run n's liveness. */
#define OMS_PG_LOCK_CLASS 7302515

/* The writer's prepared statements (pg_schema.c holds their SQL). */
enum {
    PW_SEQ_LOCK,
    PW_SEQ_SET,
    PW_ID_BLOCK,
    PW_RANGE_INSERT,
    PW_CUSTOMER_INSERT,
    PW_CUSTOMER_SET_STATUS,
    PW_PRODUCT_UPSERT,
    PW_PRODUCT_GET,
    PW_PRODUCT_SET_ON_HAND,
    PW_PRODUCT_RESERVE,
    PW_PRODUCT_UNRESERVE,
    PW_RESERVATION_GET,
    PW_RESERVATION_INSERT,
    PW_RESERVATION_RELEASE,
    PW_ORDER_INSERT,
    PW_ORDER_GET,
    PW_ORDER_GET_BY_KEY,
    PW_ORDER_UPDATE_STATUS,
    PW_EVENT_INSERT,
    PW_LIVE_RESERVATIONS,
    PW_DEAD_HOLDS,
    PW_ORDER_EXISTS,
    PW_PRODUCT_AVAILABLE,
    PW_PRODUCT_ADD_RESERVED,
    PW_KEYS_FORGET,
    PW_PLACE_WRITES,
    PW__COUNT
};
extern const char *const store__pg_writer_sql[PW__COUNT];

/* Query parameters: text, except bytea (binary). */
#define PG_MAX_PARAMS 12
typedef struct pg_params {
    int n;
    const char *v[PG_MAX_PARAMS];
    int len[PG_MAX_PARAMS];
    int fmt[PG_MAX_PARAMS];
    char num[PG_MAX_PARAMS][24];
} pg_params;

/* A connection and its reconnect state. */
typedef struct pg_conn {
    PGconn *c;
    unsigned prepared;   /* bit per list_orders shape prepared (readers) */
    int64_t retry_at_ms; /* no reconnect before this (monotonic ms) */
    int64_t backoff_ms;  /* next delay after a failed reconnect */
} pg_conn;

typedef struct pg_store pg_store;

/* A run whose lock the orphan sweep found free, and since when (wall ms). */
typedef struct pg_suspect {
    int64_t run;
    int64_t since_ms;
} pg_suspect;
#define PG_MAX_SUSPECTS 64

typedef struct pg_loop {
    store__loop_base lb; /* first: dispatch and completions */
    pg_store *st;
    pg_conn conn;     /* this loop's read connection */
    store_rc read_rc; /* what the last failed read means (UNAVAILABLE: down) */
} pg_loop;

struct pg_store {
    store__base base; /* first */
    char url[1024];   /* as given (may hold a password: never logged) */
    char name[256];   /* the URL without password and query, for messages */
    store__writer wr; /* the queue and group commit; seq: the counter in this transaction */

    pg_conn w; /* the writer's connection: store_open, then the writer thread */

    /* Writer-thread state. */
    int64_t seq0;                    /* the counter as this transaction found it */
    int64_t now;                     /* wall ms at the batch's start */
    bool forget, want_block;         /* background work riding along this batch */
    int64_t block_first, block_last; /* the block it took */
    uint8_t *blob;
    int64_t key_retention_ms;
    int64_t next_forget_ms;
    int run;                     /* this run's id (runs sequence); its advisory lock key */
    char err[STORE_MSG_MAX + 1]; /* the last SQL error on the writer */
    char sqlstate[6];

    /* Order ids: the current block (next handed out <= last) and the next. */
    int64_t id_block;
    pthread_mutex_t id_mu;
    int64_t id_next, id_last;    /* last id handed out, end of the block */
    int64_t id_first;            /* first id of the current block */
    int64_t nxt_first, nxt_last; /* the next block, 0 if none yet */
    _Atomic bool mark_wanted;
    store_id_range *pending;
    size_t npending;

    /* The periodic orphan sweep (store_config.orphan_sweep_ms; writer
     * thread): runs seen gone, since when. */
    int64_t sweep_ms;      /* 0: off */
    int64_t next_sweep_ms; /* wall ms of the next look */
    bool sweep;            /* this batch looks */
    pg_suspect suspects[PG_MAX_SUSPECTS];
    size_t nsuspects;

    /* The follower (pg.c): other instances' events for on_events. */
    int64_t event_poll_ms;
    bool following; /* the follower thread runs */
    pthread_t follower;
    int stop_pipe[2];      /* store_close writes a byte: the follower exits */
    store_event *fevs;     /* its page */
    pthread_mutex_t ev_mu; /* serialises on_events calls of writer and follower */
    int64_t published;     /* highest seq handed to on_events (under ev_mu) */
};

/* pg_conn.c */
int64_t store__pg_mono_ms(void);
int64_t store__pg_wall_ms(void);
/* The URL without password and query ("postgres://u@h:5432/db"). */
void store__pg_redact(const char *url, char *out, size_t cap);
/* Connects (blocking, bounded by connect_timeout, default 5 s) and prepares
 * stmts[0..n) as "s0".."s<n-1>" (n may be 0). err gets a reason on failure
 * (never the password). */
int store__pg_connect(pg_conn *pc, const char *url, const char *const *stmts, int n, char *err,
                      size_t errlen);
/* Makes sure pc is connected: reconnects when it broke, at most once per
 * backoff (100 ms doubling to 2 s). 0 if usable. */
int store__pg_ensure(pg_conn *pc, const char *url, const char *const *stmts, int n);
void store__pg_disconnect(pg_conn *pc);

void store__pg_p_i64(pg_params *p, int64_t v);
void store__pg_p_text(pg_params *p, const char *s);
void store__pg_p_bytea(pg_params *p, const void *b, size_t n);
/* Runs prepared statement "s<i>" (p may be NULL) with binary results; the
 * result may be NULL (out of memory): check it with store__pg_ok, free it
 * with PQclear. */
PGresult *store__pg_run(PGconn *c, int i, const pg_params *p);
/* True if r is COMMAND_OK or TUPLES_OK. */
bool store__pg_ok(const PGresult *r);
/* Binary result columns: bigint/int/bool as int64, text into a buffer. */
int64_t store__pg_i64(const PGresult *r, int row, int col);
void store__pg_text(const PGresult *r, int row, int col, char *dst, size_t cap);
/* What a client is told of a database failure with SQLSTATE state: a
 * short text that names the condition ("database is read-only") but never
 * the server's own message, which goes to the log only. */
const char *store__pg_describe(const char *state, bool conn_bad);

/* What an SQLSTATE means to callers: 53100 disk full -> FULL; connection
 * faults, shutdown, read-only, too many connections, serialization and
 * deadlock failures -> UNAVAILABLE (they clear; every batch tries afresh);
 * anything else -> ERROR. state NULL or "" with a broken connection ->
 * UNAVAILABLE. */
store_rc store__pg_classify(const char *state, bool conn_bad);

/* pg_schema.c: runs the migrations (under advisory lock key 0). */
int store__pg_migrate(pg_store *st, char *err, size_t errlen);

/* pg_write.c: runs one request; returns w->rc. An SQL failure sets
 * STORE_ERROR, w->msg and st->err/sqlstate. */
store_rc store__pg_apply(pg_store *st, store_write *w);
/* The periodic orphan sweep, inside the writer's open transaction: the live
 * public holds of runs whose lock has been free at every look for grace_ms
 * (now: this look) are released, as store_release_orphans would (an order's
 * own reservation never is). *released: how many. STORE_ERROR with st->err
 * on an SQL error (the caller rolls back to its savepoint). */
store_rc store__pg_sweep_dead_runs(pg_store *st, int64_t now, int64_t grace_ms, long *released);
/* An order from a row of ORDER_COLS (see pg_read.c) at col 0. */
store_rc store__pg_order_from_row(const PGresult *r, int row, store_order **out);

#define PG_ORDER_COLS                                                                              \
    "id, customer_id, idempotency_key, cancel_reason, status, version, total, created_at, "        \
    "updated_at, lines"

/* pg_read.c: the backend's read calls (store.h). */
extern const char *const store__pg_reader_sql[];
extern const int store__pg_reader_count;
store_rc store__pg_get_customer(store_loop *sl, const char *id, store_customer *out);
store_rc store__pg_get_product(store_loop *sl, const char *sku, store_product *out);
long store__pg_list_customers(store_loop *sl, const char *after_id, store_customer *out,
                              size_t limit);
long store__pg_list_products(store_loop *sl, const char *after_sku, store_product *out,
                             size_t limit);
store_rc store__pg_get_order(store_loop *sl, const char *id, store_order **out);
store_rc store__pg_find_order_by_key(store_loop *sl, const char *customer_id,
                                     const char *idempotency_key, store_order **out);
long store__pg_list_orders(store_loop *sl, const store_order_filter *f, const char *after_id,
                           store_order **out, size_t limit);
long store__pg_read_events(store_loop *sl, int64_t from_seq, const char *order_id, store_event *out,
                           size_t limit);
long store__pg_list_unused_order_ids(store_loop *sl, int64_t first, int64_t last, int64_t *out,
                                     size_t limit);

#endif
