/* sqlite_int.h - the SQLite backend's private types, shared by src/store only.
 *
 *   sqlite.c         open/close, the writer's ops (writer.c runs the group
 *                    commit), store_loops
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

#include "store_int.h"

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
    store__loop_base lb; /* first: dispatch and completions */
    store *st;
    sqlite3 *db; /* this loop's read connection */
    sqlite3_stmt *rs[RS__COUNT];
    sqlite3_stmt *list_orders[RS_LIST_ORDERS_SHAPES];
};

struct store {
    store__base base; /* first: store.c dispatches through it */
    char path[1024];
    char name[1040]; /* "sqlite:PATH", for messages */
    store__writer wr;

    sqlite3 *db; /* the writer's connection: store_open, then the writer thread only */
    sqlite3_stmt *ws[WS__COUNT];

    /* Writer-thread state (the batch's events are in wr). */
    int64_t hwm_persisted;    /* order-id high-water mark in meta */
    int64_t batch_hwm;        /* highest order number written in this batch */
    int64_t batch_noted;      /* the same, from the requests only (not the mark) */
    int64_t max_noted;        /* highest order number committed (or the mark found at open) */
    int64_t new_mark;         /* the mark this batch raises (0: none) */
    int64_t now;              /* wall ms at the batch's start */
    bool forget;              /* the batch forgets old keys */
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

/* The backend's table (sqlite.c) and its calls (store.h's contracts). */
extern const store__backend store__sqlite_backend;
void store__sqlite_close(store *st);
store_rc store__sqlite_next_order_id(store *st, char out[STORE_ID_MAX + 1]);
size_t store__sqlite_pending_sweeps(store *st, store_id_range *out, size_t cap);
store_rc store__sqlite_sweep_done(store *st, const store_id_range *r);
long store__sqlite_release_orphans(store *st);
store_loop *store__sqlite_loop_open(store *st, uv_loop_t *loop, char *err, size_t errlen);
void store__sqlite_loop_close(store_loop *sl);
long store__sqlite_list_unused_order_ids(store_loop *sl, int64_t first, int64_t last, int64_t *out,
                                         size_t limit);
store_rc store__sqlite_get_customer(store_loop *sl, const char *id, store_customer *out);
store_rc store__sqlite_get_product(store_loop *sl, const char *sku, store_product *out);
long store__sqlite_list_customers(store_loop *sl, const char *after_id, store_customer *out,
                                  size_t limit);
long store__sqlite_list_products(store_loop *sl, const char *after_sku, store_product *out,
                                 size_t limit);
store_rc store__sqlite_get_order(store_loop *sl, const char *id, store_order **out);
store_rc store__sqlite_find_order_by_key(store_loop *sl, const char *customer_id,
                                         const char *idempotency_key, store_order **out);
long store__sqlite_list_orders(store_loop *sl, const store_order_filter *f, const char *after_id,
                               store_order **out, size_t limit);
long store__sqlite_read_events(store_loop *sl, int64_t from_seq, const char *order_id,
                               store_event *out, size_t limit);

/* record.c (sqlite helpers; the shared ones are in store_int.h) */
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
