/* orders_int.h - what the files of src/orders share (not installed).
 *
 *   orders.c        lifecycle (orders.h), loop lookup, store_rc -> status, demo data
 *   customers.c     CustomerService
 *   inventory.c     InventoryService, and the in-process inventory/customers ports
 *   port_remote.c   the same ports over gRPC (split deployment)
 *   order_rules.c   status machine, totals, request validation (pure)
 *   errors.c        rich error details (google.rpc) for every service
 *   order_create.c  the CreateOrder flow (CreateOrder and ImportOrders rows)
 *   order_service.c OrderService's unary calls, ListOrders, ImportOrders
 *   hub.c           event fan-out: store writer -> per-loop queues
 *   watch.c         WatchOrders and TrackOrders (replay, then live)
 *   sweep.c         split mode's start-up release of dead runs' reservations
 *   defer.c         completions delivered from the loop (never from inside a call)
 *   keygate.c       one CreateOrder flow at a time per idempotency key (split mode)
 */
#ifndef OMS_ORDERS_INT_H
#define OMS_ORDERS_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "oms/v1/customer.omsrpc.h"
#include "oms/v1/inventory.omsrpc.h"
#include "oms/v1/order.omsrpc.h"
#include "orders/orders.h"
#include "rpc/rpc.h"
#include "rpc/rpc_client.h"
#include "rpc/trace.h"
#include "store/store.h"

#define ORDERS_MAX_LOOPS 64

#ifndef container_of
#define container_of(p, type, member) ((type *)((char *)(p)-offsetof(type, member)))
#endif

typedef struct orders_loop orders_loop;
typedef struct orders_hub orders_hub;
typedef struct orders_hub_loop orders_hub_loop;

/* --- errors.c: rich error details ---------------------------------------------
 *
 * One rule for every service: a failure is finished with orders__fail(), which
 * sends google.rpc details in grpc-status-details-bin (rpc_call_finish_details):
 *  - with a reason: ErrorInfo{reason, domain "oms.v1", metadata}, and for
 *    INSUFFICIENT_STOCK also PreconditionFailure{type "STOCK", subject SKU,
 *    description "3 available, 5 requested"};
 *  - INVALID_ARGUMENT without a reason, whose message is "field: description"
 *    (the form every validation message takes): BadRequest with that
 *    FieldViolation;
 *  - anything else: no details. */

typedef enum orders_reason {
    ORDERS_REASON_NONE = 0,
    ORDERS_REASON_INSUFFICIENT_STOCK,     /* sku, available, requested */
    ORDERS_REASON_ILLEGAL_TRANSITION,     /* id (order), from, to (statuses) */
    ORDERS_REASON_VERSION_MISMATCH,       /* id, version (current), expected */
    ORDERS_REASON_CUSTOMER_SUSPENDED,     /* id (customer) */
    ORDERS_REASON_IDEMPOTENCY_KEY_REUSED, /* id (customer) */
} orders_reason;

/* The structured part of a failure; the status message says it in words. */
typedef struct orders_err {
    orders_reason reason;
    char id[STORE_ID_MAX + 1];
    char sku[STORE_SKU_MAX + 1];
    int64_t available, requested; /* INSUFFICIENT_STOCK */
    int64_t version, expected;    /* VERSION_MISMATCH */
    int from, to;                 /* ILLEGAL_TRANSITION: store order statuses */
} orders_err;

/* "INSUFFICIENT_STOCK", ...; NULL for NONE. */
const char *orders__reason_name(orders_reason r);

/* Ends c with code and msg, and the details for e (NULL: none but the
 * INVALID_ARGUMENT rule above). e is only read. */
void orders__fail(rpc_call *c, rpc_status code, const char *msg, const orders_err *e);

/* Fills e from a failed store write's structured fields (stock, status,
 * version; see store_write) for order or SKU id. Returns e if it names a
 * reason, else NULL, so the result can go straight to orders__fail(). */
const orders_err *orders__err_from_write(orders_err *e, const store_write *w);

/* Reads the reason and metadata back from a peer's details (a serialized
 * google.rpc.Status: the split deployment's InventoryService). Returns e if
 * an ErrorInfo of domain oms.v1 with a known reason was found, else NULL. */
const orders_err *orders__err_from_details(orders_err *e, const uint8_t *details, size_t len);

/* --- defer.c: completions from the loop ---------------------------------------
 *
 * The rule every callback of this layer keeps (ports, orders__create_order):
 * it never runs inside the call that started it, as uv_write()'s callback
 * never does. A result known at once (a synchronous store read, a request
 * refused up front) is queued here and delivered from ol's loop: in the same
 * loop iteration when queued from an I/O callback (a handler), else in the
 * next one; no timer is involved. */

typedef struct orders_deferred orders_deferred;
typedef void (*orders_deferred_cb)(orders_deferred *d);
/* Embedded in the object it completes (recover it with container_of). */
struct orders_deferred {
    orders_deferred *next;
    orders_deferred_cb cb;
};

/* At attach (before the loop runs, or on its thread): ol->defer. 0, or -1
 * (out of memory). */
int orders__defer_open(orders_loop *ol);
/* On ol's thread: cb(d) runs later from the loop, once, in queue order. d
 * stays the caller's: it must live until cb ran (cb may free it). */
void orders__defer(orders_loop *ol, orders_deferred *d, orders_deferred_cb cb);
/* From any thread (ol attached): cb(d) runs later from ol's loop, once, in
 * post order. */
void orders__defer_post(orders_loop *ol, orders_deferred *d, orders_deferred_cb cb);
/* At detach, on ol's thread: runs what is queued or posted now (and what
 * that queues). */
void orders__defer_flush(orders_loop *ol);
/* At detach, last: flushes, then closes the handles (freed from their close
 * callbacks as the loop runs on). */
void orders__defer_close(orders_loop *ol);

/* --- keygate.c: one flow at a time per idempotency key -------------------------
 *
 * With the inventory in another process, a CreateOrder flow reserves stock
 * before its order (and with it the key) is stored. Two flows with one
 * customer's key would both miss the key and race for the stock, and the one
 * that lost would answer FAILED_PRECONDITION where the key's first order (or
 * INVALID_ARGUMENT, for other lines) is the answer. So such flows pass a gate
 * per (customer, key), process-wide: one at a time, in arrival order, each
 * after the one before reported (its order stored or not), so its key lookup
 * sees the outcome. Other processes running the order service on the same
 * store are not covered (see docs/SCALING.md). */

#define ORDERS_KEY_BUCKETS 256

typedef struct orders_key_wait orders_key_wait;
struct orders_key_wait {
    orders_deferred d; /* the turn: d.cb runs on ol's loop */
    orders_loop *ol;
    const char *customer_id, *key; /* borrowed while waiting or holding */
    uint32_t hash;
    bool refused;                 /* the turn never came: the loop detached */
    orders_key_wait *next;        /* holders in one bucket */
    orders_key_wait *queue;       /* the waiters behind a holder, first first */
    orders_key_wait **queue_tail; /* a holder's: the last waiter's queue field */
};

/* On ol's thread. True: w holds the key now. False: w waits, and on_turn(&w->d)
 * runs later from ol's loop, holding the key, or with w->refused set (not
 * holding it) when ol detaches first. w must live until it left. */
bool orders__key_enter(orders_key_wait *w, orders_loop *ol, const char *customer_id,
                       const char *key, orders_deferred_cb on_turn);
/* On w->ol's thread, holding: gives the key to the next waiter. */
void orders__key_leave(orders_key_wait *w);
/* At detach, on ol's thread: ol's waiters get their turn refused. */
void orders__key_detach(orders_loop *ol);

/* --- ports: how the order service reaches customers and inventory ------------
 *
 * A port function returns RPC_OK once it started: its callback then fires
 * exactly once, on the loop's thread, from the loop (defer.c), never before
 * the port function returned, whatever the outcome (an in-process lookup, a
 * request refused at once, a missing peer target). Any other return
 * (RPC_RESOURCE_EXHAUSTED: out of memory) means nothing started and the
 * callback never fires. msg is never NULL; it and the records are borrowed
 * for the callback. timeout_ms 0 means the port's default
 * (orders_config.peer_timeout_ms). trace (borrowed for the port call; NULL:
 * none) is the trace context of the call the port works for: a remote port's
 * peer call carries it on (a child span). */

typedef void (*orders_customer_cb)(void *arg, rpc_status code, const char *msg,
                                   const store_customer *c);
/* lines: the reserved lines with their unit prices, in request order. err:
 * the failure's details (e.g. INSUFFICIENT_STOCK), or NULL. */
typedef void (*orders_reserve_cb)(void *arg, rpc_status code, const char *msg,
                                  const store_line *lines, size_t n, const orders_err *err);
typedef void (*orders_release_cb)(void *arg, rpc_status code, const char *msg);

typedef struct orders_customers_port {
    rpc_status (*get_customer)(orders_loop *ol, const char *id, uint64_t timeout_ms,
                               const rpc_trace *trace, orders_customer_cb cb, void *arg);
} orders_customers_port;

typedef struct orders_inventory_port {
    /* All or nothing, idempotent per order_id (InventoryService.Reserve). */
    rpc_status (*reserve)(orders_loop *ol, const char *order_id, const store_line *lines, size_t n,
                          uint64_t timeout_ms, const rpc_trace *trace, orders_reserve_cb cb,
                          void *arg);
    /* A compensating release: the port keeps retrying it on UNAVAILABLE or
     * DEADLINE_EXCEEDED (with backoff, while the process runs) after reporting
     * the first failure to cb, so a reservation is not left behind while the
     * inventory service is briefly away. cb may be NULL. */
    rpc_status (*release)(orders_loop *ol, const char *order_id, uint64_t timeout_ms,
                          const rpc_trace *trace, orders_release_cb cb, void *arg);
} orders_inventory_port;

/* inventory.c: the in-process ports, over the loop's store connection. */
extern const orders_customers_port orders__local_customers;
extern const orders_inventory_port orders__local_inventory;

/* port_remote.c: the ports over gRPC, on the loop's channels
 * (orders_loop.customers_ch / inventory_ch). */
extern const orders_customers_port orders__remote_customers;
extern const orders_inventory_port orders__remote_inventory;

/* port_remote.c: stops the release retries of ol (before its channels are
 * freed); releases still pending are logged as left behind. */
void orders__remote_loop_stop(orders_loop *ol);

/* sweep.c: in a process hosting the order service but not inventory, on
 * the first loop attached (before it runs or on its thread): releases, on
 * the loop, every id of the previous runs' sweep ranges (store.h) that has no
 * order, through ol->inventory, and marks each range swept once all its
 * releases succeeded. Nothing to do: nothing started. */
void orders__sweep_start(orders_loop *ol);
/* On ol's thread, at detach (before the channels go): stops issuing
 * releases; what is left stays for the next start. */
void orders__sweep_stop(orders_loop *ol);
/* On ol's thread: true when ol runs no sweep, or its sweep checked every
 * range and has no release in flight (tests wait on it). */
bool orders__sweep_idle(const orders_loop *ol);

/* --- the process-wide object and its loops --------------------------------- */

struct orders {
    orders_config cfg; /* strings point into the copies below */
    char *store_url, *inventory_target, *customers_target, *peer_ca_file, *peer_server_name,
        *peer_cert_file, *peer_key_file, *peer_token;
    store *st;
    orders_hub *hub; /* NULL when the order service is not hosted */

    uv_mutex_t lock; /* guards loops[] (attach/detach); lookups read it lock-free
                        after attach, see orders__loop() */
    orders_loop *loops[ORDERS_MAX_LOOPS];
    uv_loop_t *loop_keys[ORDERS_MAX_LOOPS];
    size_t nloops;
    bool sweep_started;                               /* under lock */
    orders_key_wait *key_holders[ORDERS_KEY_BUCKETS]; /* keygate.c, under lock */
};

struct orders_loop {
    orders *o;
    uv_loop_t *loop;
    store_loop *sl;
    orders_hub_loop *hl; /* NULL when the order service is not hosted */
    const orders_customers_port *customers;
    const orders_inventory_port *inventory;
    rpc_channel *customers_ch; /* split mode only */
    rpc_channel *inventory_ch;
    void *remote;               /* port_remote.c's per-loop state (release retries) */
    struct orders_defer *defer; /* defer.c's queue */
    struct orders_sweep *sweep; /* sweep.c's, on the first loop in split mode */
};

/* The orders_loop of the loop a call runs on (attached beforehand). */
orders_loop *orders__loop(orders *o, uv_loop_t *loop);
orders_loop *orders__call_loop(rpc_call *c);

/* Order ownership (issue 12): the customer the call's principal acts for,
 * or NULL when it may see every customer's orders (no principal: auth is
 * off; or a principal without customer_id: admins, services, mTLS). A bound
 * principal acts for that customer only: CreateOrder for another one is
 * PERMISSION_DENIED; another customer's order or customer record answers
 * NOT_FOUND exactly as a missing one; lists and event streams leave other
 * customers out whatever the request's filter says. */
const char *orders__call_owner(const rpc_call *c);
/* Whether the call may see customer_id's data (always when it has no owner). */
bool orders__owner_ok(const rpc_call *c, const char *customer_id);

/* Unix time in milliseconds. */
int64_t orders__now_ms(void);

/* The gRPC status for a store result: NOT_FOUND, ALREADY_EXISTS, ABORTED
 * (CONFLICT), FAILED_PRECONDITION, INVALID_ARGUMENT, INTERNAL (ERROR),
 * UNAVAILABLE (CLOSED, UNAVAILABLE), RESOURCE_EXHAUSTED (FULL). */
rpc_status orders__status(store_rc rc);

/* Timeout for a peer call made for c: its remaining deadline, capped by
 * cfg.peer_timeout_ms. */
uint64_t orders__peer_timeout(const orders *o, const rpc_call *c);

/* Sends m on c and finishes it OK, or finishes it with the send error. */
void orders__reply(rpc_call *c, const ProtobufCMessage *m);

/* orders.c: whether s is a usable name: 1..max bytes of valid UTF-8 without
 * control characters (CustomerService and InventoryService names). */
bool orders__name_ok(const char *s, size_t max);

/* Record <-> message conversions; strings of the message borrow from the
 * record (keep it alive while the message is used). */
void orders__customer_msg(const store_customer *r, Oms__V1__Customer *m);
void orders__product_msg(const store_product *r, Oms__V1__Product *m);
/* lines: room for r->nlines message lines, and pointers to them. */
void orders__order_msg(const store_order *r, Oms__V1__Order *m, Oms__V1__OrderLine *lines,
                       Oms__V1__OrderLine **linep);
void orders__event_msg(const store_event *r, Oms__V1__OrderEvent *m);

/* The generated handler tables (service data: the orders object). */
extern const Oms__V1__CustomerService_Server orders__customer_handlers;
extern const Oms__V1__InventoryService_Server orders__inventory_handlers;
extern const Oms__V1__OrderService_Server orders__order_handlers;

/* --- order_rules.c: pure rules ---------------------------------------------- */

/* Bitmask (1u << status) of the statuses an order may move to `to` from:
 * CONFIRMED <- PENDING; SHIPPED <- CONFIRMED; DELIVERED <- SHIPPED;
 * CANCELLED <- PENDING|CONFIRMED; 0 for anything else (PENDING, unknown). */
unsigned orders__allowed_from(int to);
bool orders__transition_ok(int from, int to);
const char *orders__status_name(int status); /* "PENDING", ... */

/* total = sum(quantity * unit price). false on int64 overflow (or a negative
 * factor), total untouched. */
bool orders__line_total(int64_t quantity, int64_t unit_price, int64_t *total);
bool orders__order_total(const store_line *lines, size_t n, int64_t *total);

/* Request limits, one function per rule so that the same rule reads the same
 * in every service (the proto comments document the limits). Each returns
 * true if the value passes, else writes why (n bytes) and returns false.
 *   orders__check_len    "<field>: required" (empty when min > 0),
 *                        "<field>: at most <max> bytes, <len> given"
 *   orders__check_count  "<field>: <min>..<max> allowed, <count> given"
 *   orders__check_token  check_len, then "<field>: only [A-Za-z0-9._-]
 *                        allowed, '<byte>' at byte <i>" (the first bad byte,
 *                        through RPC_QUOTE)
 * field is the request field's path ("lines[2].sku"). Strings reaching a
 * handler are valid UTF-8 without NUL already (rpc checks them at decode). */
bool orders__check_len(const char *field, const char *s, size_t min, size_t max, char *why,
                       size_t n);
/* orders__check_len for bytes that are not a C string (metadata values). */
bool orders__check_size(const char *field, size_t len, size_t min, size_t max, char *why, size_t n);
bool orders__check_count(const char *field, size_t count, size_t min, size_t max, char *why,
                         size_t n);
bool orders__check_token(const char *field, const char *s, size_t min, size_t max, char *why,
                         size_t n);
/* A name (customers, products): check_len 1..max, then "<field>: control
 * characters not allowed". */
bool orders__check_name(const char *field, const char *s, size_t max, char *why, size_t n);
/* "<field>: <value> already in <field0>" for a repeated key (value quoted). */
void orders__dup_text(const char *field, const char *value, const char *first, char *why, size_t n);

/* Limits without a store column behind them. */
#define ORDERS_ROW_ID_MAX     64  /* ImportOrderRow.row_id */
#define ORDERS_RESULT_MSG_MAX 200 /* ImportRowResult.message, server-made */

/* Validates a CreateOrderRequest (customer id given; 1..STORE_MAX_LINES lines;
 * each SKU valid and at most once; quantity > 0; key at most STORE_KEY_MAX).
 * Returns RPC_OK or INVALID_ARGUMENT with why[] naming the field and reason
 * ("lines[2].quantity: must be > 0"). */
rpc_status orders__validate_create(const Oms__V1__CreateOrderRequest *req, char *why, size_t n);

/* Whether req asks for what first was created from: the same customer and
 * the same lines (SKU and quantity, in the same order). An idempotency key
 * answers a repeat with its first order only then; a key reused with a
 * different request is refused (ORDERS_KEY_REUSED_MSG). */
bool orders__same_request(const store_order *first, const store_order *req);
#define ORDERS_KEY_REUSED_MSG "idempotency key reused with a different request"

/* Whether s is a valid SKU: 1..STORE_SKU_MAX of [A-Za-z0-9._-]. */
bool orders__sku_ok(const char *s);

/* --- order_create.c: the CreateOrder flow -------------------------------------- */

/* Result of one order creation: fires once on the loop, from the loop (never
 * before orders__create_order returned); order is borrowed for the callback
 * and set only on RPC_OK; err (borrowed too) details a failure, or is NULL. */
typedef void (*orders_create_cb)(void *arg, rpc_status code, const char *msg,
                                 const store_order *order, const orders_err *err);

/* Validates req, answers an idempotency key seen before with the first order,
 * checks the customer is ACTIVE, reserves stock (prices from inventory),
 * totals, stores the order and its event, and releases the reservation again
 * if anything after it fails. key overrides req->idempotency_key when req's
 * is empty (the idempotency-key metadata). timeout_ms bounds the peer calls;
 * trace (copied; NULL: none) is the calling RPC's trace context, which they
 * carry on. req and key are only read during the call. Returns RPC_OK once
 * started (cb fires later), or RPC_RESOURCE_EXHAUSTED when nothing started
 * (out of memory; cb never fires). */
rpc_status orders__create_order(orders_loop *ol, const Oms__V1__CreateOrderRequest *req,
                                const char *key, uint64_t timeout_ms, const rpc_trace *trace,
                                orders_create_cb cb, void *arg);

/* --- watch.c: the streaming handlers of orders__order_handlers ---------------- */

void orders__watch_on_request(rpc_call *c, const Oms__V1__WatchOrdersRequest *req);
void orders__watch_on_ready(rpc_call *c);
void orders__watch_on_cancel(rpc_call *c, rpc_status code);
void orders__watch_on_free(rpc_call *c);
void orders__track_on_request(rpc_call *c, const Oms__V1__TrackRequest *req);
void orders__track_on_half_close(rpc_call *c);
void orders__track_on_ready(rpc_call *c);
void orders__track_on_cancel(rpc_call *c, rpc_status code);
void orders__track_on_free(rpc_call *c);

/* --- hub.c: events from the store writer to every loop ------------------------ */

/* Creates the hub; ring: events each loop keeps for its live subscribers. */
orders_hub *orders__hub_new(size_t ring);
void orders__hub_free(orders_hub *h);
/* The store's on_events hook (writer thread): queues evs for every loop and
 * wakes them. Never blocks for long (a mutex per loop). */
void orders__hub_publish(void *hub, const store_event *evs, size_t n);
/* Attaches ol's loop (before it runs, or on its thread). NULL on ENOMEM. */
orders_hub_loop *orders__hub_loop_open(orders_hub *h, orders_loop *ol);
/* watch.c: ends the loop's subscriptions with UNAVAILABLE (drain). */
void orders__hub_loop_drain(orders_hub_loop *hl);
/* Logs the loop's subscribers' state (hub.h). */
void orders__hub_loop_dump(orders_hub_loop *hl);
/* Closes the loop's handles (on its thread); freed from their close callback. */
void orders__hub_loop_close(orders_hub_loop *hl);

#endif
