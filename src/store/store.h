/* store.h - the order system's durable state, behind one interface.
 *
 * The services in src/orders keep customers, products, stock reservations,
 * orders and order events here. This header knows no database: the backend is
 * picked by URL ("sqlite:PATH" today; "postgres:..." later) and nothing of it
 * leaks through. Records are plain C structs, not protobuf messages.
 *
 * Threads and loops:
 *  - One store per process, opened before the loops start. Writes run on the
 *    store's own writer thread, which commits them in groups: every request
 *    queued while the previous commit ran goes into one transaction and one
 *    fsync (each request in a savepoint of its own, so one failing request
 *    fails alone).
 *  - Each loop that uses the store attaches a store_loop (on that loop's
 *    thread). Writes are submitted through it and their completion callback
 *    runs on that loop, only after the commit is durable (or failed). Reads
 *    are synchronous calls on the store_loop's own read connection: they never
 *    wait for the writer (SQLite WAL readers see the last commit).
 *  - Every state change of an order appends an order event in the same
 *    transaction, with a global, gap-free sequence number starting at 1. After
 *    each durable commit, the writer hands that commit's events, in seq
 *    order, to the on_events hook (on the writer thread). On PostgreSQL a
 *    follower thread also hands it the events other instances committed
 *    (store_config.event_poll_ms).
 *
 * Errors: functions return STORE_OK or a store_rc; requests carry a short
 * human-readable reason in their msg field for the failing cases (e.g.
 * "sku ABC-1: 3 available, 5 requested"), fit for a gRPC status message.
 */
#ifndef OMS_STORE_H
#define OMS_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

typedef struct store store;
typedef struct store_loop store_loop;

typedef enum store_rc {
    STORE_OK = 0,
    STORE_NOT_FOUND,    /* no such customer / product / order */
    STORE_EXISTS,       /* unique key taken (email; the customer's idempotency key: see
                           ORDER_CREATE) */
    STORE_CONFLICT,     /* expected_version does not match */
    STORE_PRECONDITION, /* insufficient stock, illegal transition, on_hand below reserved */
    STORE_INVALID,      /* a request the store cannot represent (overflowing stock, ...) */
    STORE_ERROR,        /* I/O error, full disk, corrupt database: see msg and the log */
    STORE_CLOSED,       /* the store is shutting down */
    STORE_UNAVAILABLE,  /* briefly unable to serve (no durable order id ready yet; the database
                           cannot be written now: read-only, I/O errors): retry */
    STORE_FULL,         /* the disk is full: nothing was written; retry once space is freed */
} store_rc;

/* "OK", "NOT_FOUND", ... */
const char *store_rc_name(store_rc rc);

/* The calls that return a count (lists, store_read_events,
 * store_list_unused_order_ids) return a failure as a negative store_rc:
 * -STORE_UNAVAILABLE while the database is down, -STORE_INVALID for a
 * malformed cursor, -STORE_ERROR otherwise. This gives the store_rc of such a
 * result: STORE_OK for a count (>= 0). */
store_rc store_count_rc(long n);

/* Field limits, in bytes without the terminating NUL; the services validate
 * input against them before it reaches the store. */
#define STORE_ID_MAX     31  /* "c-123", "o-123" */
#define STORE_NAME_MAX   200 /* customer and product names */
#define STORE_EMAIL_MAX  254
#define STORE_SKU_MAX    64
#define STORE_KEY_MAX    128 /* idempotency keys */
#define STORE_REASON_MAX 200
#define STORE_MSG_MAX    160
#define STORE_MAX_LINES  100 /* lines per order / reservation */

/* Customer status, same numbers as oms.v1.CustomerStatus. */
enum { STORE_CUSTOMER_ACTIVE = 1, STORE_CUSTOMER_SUSPENDED = 2 };

/* Order status, same numbers as oms.v1.OrderStatus. */
enum {
    STORE_ORDER_PENDING = 1,
    STORE_ORDER_CONFIRMED = 2,
    STORE_ORDER_SHIPPED = 3,
    STORE_ORDER_DELIVERED = 4,
    STORE_ORDER_CANCELLED = 5,
};

/* --- records -------------------------------------------------------------- */

typedef struct store_customer {
    char id[STORE_ID_MAX + 1]; /* "c-<n>", assigned by the store */
    char name[STORE_NAME_MAX + 1];
    char email[STORE_EMAIL_MAX + 1];
    int status;         /* STORE_CUSTOMER_* */
    int64_t created_at; /* unix ms */
} store_customer;

typedef struct store_product {
    char sku[STORE_SKU_MAX + 1];
    char name[STORE_NAME_MAX + 1];
    int64_t unit_price_cents;
    int64_t on_hand;  /* reserved units included */
    int64_t reserved; /* units held by live reservations */
    int64_t updated_at;
} store_product;

typedef struct store_line {
    char sku[STORE_SKU_MAX + 1];
    int64_t quantity;
    int64_t unit_price_cents; /* input to ORDER_CREATE; output of RESERVE */
} store_line;

typedef struct store_order {
    char id[STORE_ID_MAX + 1]; /* "o-<n>", from store_next_order_id() */
    char customer_id[STORE_ID_MAX + 1];
    char idempotency_key[STORE_KEY_MAX + 1]; /* "" for none */
    char cancel_reason[STORE_REASON_MAX + 1];
    int status;      /* STORE_ORDER_* */
    int64_t version; /* 1 on creation, +1 per change */
    int64_t total_cents;
    int64_t created_at;
    int64_t updated_at;
    size_t nlines;
    store_line lines[]; /* nlines entries */
} store_order;

/* Allocates an order with room for nlines lines (zeroed, nlines set). NULL on
 * ENOMEM. Records the store returns are freed with store_order_free(). */
store_order *store_order_new(size_t nlines);
void store_order_free(store_order *o);

typedef struct store_event {
    int64_t seq; /* global, gap-free, from 1 */
    char order_id[STORE_ID_MAX + 1];
    char customer_id[STORE_ID_MAX + 1];
    int status;
    int previous_status; /* 0 for a new order */
    int64_t version;
    int64_t at; /* unix ms of the change */
} store_event;

/* --- opening and closing ---------------------------------------------------- */

/* Called on the writer thread after each durable commit with that commit's
 * events in seq order (n >= 1), before the commit's requests complete. evs is
 * borrowed for the call. Must not block for long and must not call back into
 * the store. */
typedef void (*store_events_cb)(void *arg, const store_event *evs, size_t n);

typedef struct store_config {
    const char *url;           /* "sqlite:PATH" (":memory:" is refused: readers need a file) */
    size_t max_batch;          /* requests per transaction; default 1024 */
    store_events_cb on_events; /* may be NULL */
    void *events_arg;
    int64_t id_block; /* order ids reserved durably ahead of use; default 16384 */
    /* Idempotency keys of orders created longer ago than this are forgotten
     * by the writer in the background (as KEYS_FORGET does, a bounded page
     * per transaction, riding along a batch when there is one; it looks a
     * quarter of the retention apart, between 100 ms and 1 min). 0: kept
     * forever (the default here; omsd's is 24 h). */
    int64_t key_retention_ms;
    /* PostgreSQL, with on_events set: how other instances' events reach this
     * one. 0 (default): LISTEN/NOTIFY wakes a follower thread, which reads
     * them from the event table (and looks once a second regardless); N > 0:
     * no LISTEN/NOTIFY, the follower reads every N ms (for engines without
     * it). The follower calls on_events (from its own thread) with every
     * event committed by any instance, in seq order, its own included (the
     * hub drops what it has seen). Ignored by SQLite. */
    int64_t event_poll_ms;
    /* PostgreSQL, where reservations and orders share the store (all-in-one
     * mode): every N ms the writer looks for the live Reserve holds of runs
     * (instances) that are gone, i.e. whose run lock (a session advisory lock
     * of their writer) is free, and releases those of runs found gone at
     * every look for 2N ms + 2 s (time for a live instance whose connection
     * broke to reconnect and take its lock again), in one write transaction
     * riding along a batch (a failure rolls back only the sweep). An order's
     * own reservation is never such a hold. 0 (default): off. An instance
     * with it off does not look, and while idle does not notice that its own
     * connection broke: run every instance with the same value. Ignored by
     * SQLite (one instance per database). */
    int64_t orphan_sweep_ms;
} store_config;

void store_config_init(store_config *cfg);

/* Opens (creating if needed) the database, brings its schema to the current
 * version (migrations run in order, each in one transaction; a database from
 * a newer oms is refused), and starts the writer thread. On failure returns
 * NULL with a reason in err ("sqlite:/x/oms.db: unable to open database file"). */
store *store_open(const store_config *cfg, char *err, size_t errlen);

/* Stops accepting writes, lets the writer commit what was queued (their
 * callbacks still run on their loops while those loops run), joins the writer
 * thread and closes the database. Every store_loop must have been closed
 * first. */
void store_close(store *st);

/* Allocates a new order id ("o-<n>", never reused, also across restarts).
 * Thread-safe. An id is allocated before stock is reserved for it; ids of
 * orders that were never created leave gaps (see the sweep ranges below).
 *
 * Ids come from a block reserved durably ahead of use: meta.order_hwm (the
 * mark) is never below an id handed out. store_open raises it by id_block;
 * the writer raises it by another block, in whatever transaction runs next
 * (or one of its own), once the counter is within half a block of it. Should
 * the counter reach the mark before the raise is durable (more than half a
 * block of ids taken during one commit, or the raise failed), the call
 * returns STORE_UNAVAILABLE (out = "") and the caller answers UNAVAILABLE;
 * STORE_OK otherwise. */
store_rc store_next_order_id(store *st, char out[STORE_ID_MAX + 1]);

/* --- sweep ranges: order ids a run may have handed out -------------------------
 *
 * store_open records [first id of this run, mark] (the last raised with each
 * new block) as a pending range, kept for the NEXT start: in split mode a
 * reservation made under one of its ids at the inventory's store outlives a
 * crash before the order's commit, and only the ids are known. store_close
 * trims the range to the ids actually handed out (deletes it if none were):
 * a clean stop may still leave a compensating release unfinished. */
typedef struct store_id_range {
    int64_t first, last; /* order numbers, inclusive */
} store_id_range;

/* The previous runs' pending ranges, as found at open, oldest first: copies
 * up to cap into out, returns how many there are. Thread-safe. */
size_t store_pending_sweeps(store *st, store_id_range *out, size_t cap);

/* Up to limit order numbers n with first <= n <= last that have no order in
 * this store, ascending, into out. Keyset-paged: the next page starts after
 * the last number returned; fewer than limit: the last page. A negative
 * store_rc on failure (store_count_rc). A page costs one indexed range query (bounded memory). */
long store_list_unused_order_ids(store_loop *sl, int64_t first, int64_t last, int64_t *out,
                                 size_t limit);

/* "o-<n>" for an order number. */
void store_format_order_id(char out[STORE_ID_MAX + 1], int64_t n);

/* Forgets a previous run's range once every id of it without an order was
 * released (the run's own range is never deleted). Synchronous: waits for
 * one commit on the writer. STORE_OK (also if it was gone), STORE_ERROR,
 * STORE_CLOSED. Thread-safe. store_release_orphans deletes every previous
 * range too (all-in-one mode: it covers them). */
store_rc store_sweep_done(store *st, const store_id_range *r);

/* The seq of the last committed event (0 if none). Thread-safe. */
int64_t store_last_seq(store *st);

/* Releases every live reservation whose order this store does not have. Only
 * meaningful where inventory and orders share one store (all-in-one mode),
 * at start-up before serving: a crash between a Reserve's commit and its
 * order's commit leaves such a reservation behind (ORDER_PLACE, which commits
 * both at once, leaves none). Returns how many were
 * released, or -1 on a store error. Thread-safe (runs on the writer). */
long store_release_orphans(store *st);

/* Histogram bounds of store_stats (upper bounds, inclusive). */
#define STORE_COMMIT_BUCKETS 12
#define STORE_BATCH_BUCKETS  12
extern const uint64_t store_commit_bounds_us[STORE_COMMIT_BUCKETS];
extern const uint64_t store_batch_bounds[STORE_BATCH_BUCKETS];

/* Writer counters since store_open, for logs, metrics and tests. Each field
 * is read atomically (relaxed); together they are not one snapshot. */
typedef struct store_stats {
    uint64_t commits;   /* transactions committed (each one fsync) */
    uint64_t writes;    /* requests completed */
    uint64_t max_batch; /* most requests in one transaction */
    uint64_t commit_us; /* total time in COMMIT, microseconds */
    /* commits whose COMMIT took <= store_commit_bounds_us[i] (and more than
     * the bound before); above the last bound: commits - their sum */
    uint64_t commit_hist[STORE_COMMIT_BUCKETS];
    /* transactions (committed or not) of <= store_batch_bounds[i] requests */
    uint64_t batch_hist[STORE_BATCH_BUCKETS];
    uint64_t batches;        /* transactions run (committed or failed) */
    uint64_t batch_requests; /* requests in them */
    uint64_t failed;         /* transactions that failed (rolled back) */
    bool last_failed;        /* the latest transaction failed: writes fail now */
    int64_t last_failure_ms; /* when a transaction last failed (Unix ms), 0: never */
    uint64_t queued;         /* requests waiting for the writer */
} store_stats;

void store_get_stats(store *st, store_stats *out);

/* Attaches the calling thread's loop: a read connection and a uv_async_t that
 * runs write completions on loop. Returns NULL with err on failure. */
store_loop *store_loop_open(store *st, uv_loop_t *loop, char *err, size_t errlen);

/* Closes the loop's read connection and handles (on the loop's thread); the
 * object is freed once the handles closed, so keep the loop running until
 * uv_run() returns. Writes still in flight are waited for first, as
 * store_loop_flush() does. */
void store_loop_close(store_loop *sl);

/* On the loop's thread: waits until every write submitted through sl has
 * completed, running their done callbacks here (and those of the writes
 * they submit), instead of from the loop. For teardown: a loop that goes
 * away must not leave a completion behind. */
void store_loop_flush(store_loop *sl);

/* --- writes ------------------------------------------------------------------ */

typedef enum store_op {
    STORE_CUSTOMER_CREATE,     /* in: customer.name, customer.email, at
                                  out: customer (id, status ACTIVE, created_at = at);
                                  EXISTS if the email is taken */
    STORE_CUSTOMER_SET_STATUS, /* in: customer.id, customer.status, at; out: customer */
    STORE_PRODUCT_UPSERT,      /* in: product.sku, product.name, product.unit_price_cents, at
                                  out: product (stock kept on update, 0 on insert) */
    STORE_STOCK_ADJUST,        /* in: product.sku, delta, at; out: product. PRECONDITION if
                                  on_hand + delta < reserved; INVALID on overflow */
    STORE_RESERVE,             /* in: order_id, lines[].sku/quantity, nlines, at
                                  out: lines[].unit_price_cents, existed, result.
                                  All or nothing: PRECONDITION naming the first short SKU,
                                  NOT_FOUND naming an unknown one. Idempotent per order_id: a
                                  live reservation for it is returned unchanged and nothing
                                  more is reserved: existed = true and result holds the first
                                  reservation (a store_order with only id = order_id and its
                                  lines, prices included, as first reserved), whatever lines
                                  the repeat asked for; lines[] of the request get the first
                                  one's prices where their SKU matches. result is NULL unless
                                  existed.
                                  orders_local (the OrderService keeps its orders in this
                                  store): an id of its form ("o-<n>", canonical) is never
                                  reserved here, as its order's reservation is made by
                                  ORDER_PLACE: a live one is returned as above, anything else
                                  is PRECONDITION (no such order, or the order's reservation
                                  was released). So a public Reserve cannot take an id the
                                  next order would get. */
    STORE_RELEASE,             /* in: order_id, at; out: existed (a live reservation was
                                  released). Releasing again or an unknown id is OK.
                                  orders_local: the id of an order that is not CANCELLED is
                                  PRECONDITION (its stock goes back with its cancel, never
                                  under it). */
    STORE_ORDER_CREATE,        /* in: order (id, customer_id, idempotency_key, lines with
                                  prices, total_cents, created_at; status and version are set
                                  to PENDING and 1)
                                  out: event_seq. EXISTS if the customer's idempotency key is
                                  taken (keys are per customer): then result holds the first
                                  order with that key; the caller compares the requests. */
    STORE_ORDER_SET_STATUS,    /* in: order_id, to_status, allowed_from, expected_version,
                                  reason (kept as cancel_reason when to_status is CANCELLED),
                                  with_stock, at
                                  out: result (the updated order), previous_status, event_seq,
                                  existed.
                                  NOT_FOUND; CONFLICT if expected_version != 0 and differs;
                                  PRECONDITION if the status is not in allowed_from.
                                  with_stock (only where the inventory lives in this store):
                                  moving to CANCELLED also releases the order's live
                                  reservation, as RELEASE would, in the same transaction as
                                  the status change and its event (existed = one was
                                  released); no separate RELEASE is needed. */
    STORE_ORDER_PLACE,         /* ORDER_CREATE with its RESERVE, in one transaction; only where
                                  the inventory lives in this store (all-in-one mode).
                                  in: order (id, customer_id, idempotency_key, lines[].sku and
                                  quantity (1..STORE_MAX_LINES, each > 0), created_at; prices,
                                  total, status and version are ignored), at
                                  out: result (the order as stored: unit prices from the
                                  products, total_cents, PENDING, version 1), event_seq.
                                  Reserves the lines all or nothing under the order id (the
                                  reservation RESERVE would make, so RELEASE, a with_stock
                                  cancel and store_release_orphans() treat it alike), totals
                                  them and creates the order and its event. On any failure
                                  nothing is written, no event and no seq is taken:
                                  PRECONDITION naming the first short SKU, NOT_FOUND naming an
                                  unknown one, INVALID if the total overflows int64 (or a SKU
                                  comes twice). EXISTS if the idempotency key is taken (before
                                  any of those: a repeat is answered even once the stock ran
                                  out): result holds the customer's first order with that key
                                  and nothing is reserved; EXISTS too if the order id is taken
                                  (result: that order) or already names a reservation (result
                                  NULL): the caller takes a fresh id.
                                  Cost: one read per line, then the writes of RESERVE and
                                  ORDER_CREATE, without a savepoint. */
    STORE_KEYS_FORGET,         /* in: delta = a unix ms cutoff. Forgets the idempotency keys
                                  of up to STORE_KEYS_FORGET_MAX orders created before it (the
                                  orders stay; the key may then be used again).
                                  out: delta = how many were forgotten (fewer than the
                                  maximum: none older is left). */
} store_op;

/* Keys one KEYS_FORGET request forgets at most (bounds its transaction). */
#define STORE_KEYS_FORGET_MAX 4096

typedef struct store_write store_write;
typedef void (*store_write_cb)(store_write *w);

/* One write request. The caller owns it (it must live until done fires: heap
 * or a call's arena, never the stack) and fills the op's inputs, zeroing the
 * rest (e.g. with *w = (store_write){0});
 * the store fills rc, msg and the outputs, then calls done on the submitting
 * store_loop's loop. */
struct store_write {
    store_op op;
    store_write_cb done;
    void *data; /* the caller's */
    int64_t at; /* unix ms of the change, set by the caller */

    /* inputs and outputs, by op (see store_op) */
    store_customer customer;
    store_product product;
    int64_t delta;
    char order_id[STORE_ID_MAX + 1];
    store_line *lines; /* borrowed, nlines entries; RESERVE writes prices into them */
    size_t nlines;
    const store_order *order; /* ORDER_CREATE / ORDER_PLACE input, borrowed */
    int to_status;
    unsigned allowed_from; /* bit (1u << status) per allowed current status */
    int64_t expected_version;
    char reason[STORE_REASON_MAX + 1];
    bool with_stock;   /* ORDER_SET_STATUS: CANCELLED releases the reservation too */
    bool orders_local; /* RESERVE/RELEASE: the OrderService's orders live in this store */

    /* outputs */
    store_rc rc;
    char msg[STORE_MSG_MAX + 1];
    bool existed;
    int previous_status;
    int64_t event_seq;
    store_order *result; /* owned by the caller once done fires (store_order_free) */
    /* Why a write failed, in structured form (rich error details; msg says
     * the same in words):
     *  - STORE_PRECONDITION for stock (RESERVE, ORDER_PLACE): the first SKU
     *    short, how many units it has available and how many were asked for;
     *  - ORDER_SET_STATUS: the order's status when the move was refused
     *    (STORE_PRECONDITION) and its version on a mismatch (STORE_CONFLICT).
     * fail_sku is "" otherwise. */
    char fail_sku[STORE_SKU_MAX + 1];
    int64_t fail_available, fail_requested;
    int fail_status;
    int64_t fail_version;

    store_write *next; /* the store's queue link */
    store_loop *sl;    /* the store's */
};

/* Queues w (thread: sl's loop). done fires later on sl's loop, never from
 * inside this call, with rc set; STORE_CLOSED if the store is closing. */
void store_submit(store_loop *sl, store_write *w);

/* --- reads (synchronous, on sl's loop thread) ------------------------------------ */

store_rc store_get_customer(store_loop *sl, const char *id, store_customer *out);
store_rc store_get_product(store_loop *sl, const char *sku, store_product *out);

/* Up to limit customers with id after after_id ("" from the start), in id
 * order (numeric: c-2 before c-10). Returns how many were written to out
 * (< limit: the last page), or a negative store_rc (store_count_rc). */
long store_list_customers(store_loop *sl, const char *after_id, store_customer *out, size_t limit);

/* Up to limit products with sku > after_sku ("" from the start), in sku order;
 * the count or a negative store_rc. */
long store_list_products(store_loop *sl, const char *after_sku, store_product *out, size_t limit);

/* *out: the order (free with store_order_free), or NULL with NOT_FOUND. */
store_rc store_get_order(store_loop *sl, const char *id, store_order **out);
/* The customer's order with that idempotency key (keys are per customer;
 * forgotten keys are not found). */
store_rc store_find_order_by_key(store_loop *sl, const char *customer_id,
                                 const char *idempotency_key, store_order **out);

typedef struct store_order_filter {
    const char *customer_id; /* NULL or "": any */
    int status;              /* 0: any */
    int64_t created_from;    /* inclusive; 0: no bound */
    int64_t created_to;      /* exclusive; 0: no bound */
} store_order_filter;

/* Up to limit orders matching f, created after the order after_id ("" from
 * the start), oldest first (in id order). out[i] are owned by the caller.
 * Returns the count or a negative store_rc. A page costs one indexed query: callers page
 * through any number of orders with bounded memory. */
long store_list_orders(store_loop *sl, const store_order_filter *f, const char *after_id,
                       store_order **out, size_t limit);

/* Up to limit events with seq >= from_seq, in seq order. If order_id is not
 * NULL only that order's events (an indexed query). Returns the count or a
 * negative store_rc. */
long store_read_events(store_loop *sl, int64_t from_seq, const char *order_id, store_event *out,
                       size_t limit);

#endif
