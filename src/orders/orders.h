/* orders.h - the order system: CustomerService, InventoryService and
 * OrderService (proto/oms/v1) over the store, with live order events.
 *
 * One orders object per process hosts any subset of the three services. The
 * order service reaches the other two through the same port interface either
 * way: in process when this process hosts them, over gRPC (TLS, the incoming
 * call's deadline, retries on UNAVAILABLE, round robin) when it is given
 * their targets instead.
 *
 * Lifecycle, as omsd wires it:
 *
 *     orders_config cfg;
 *     orders_config_init(&cfg);                   // then set fields
 *     orders *o = orders_open(&cfg, err, sizeof err);
 *     for each worker:                            // before its loop runs
 *         orders_register(o, worker_rpc_server);
 *         orders_loop_attach(o, worker_loop, err, sizeof err);
 *     ... serve ...
 *     on drain, on each worker's thread: orders_loop_drain(o, loop);
 *     after the worker's calls ended, on its thread: orders_loop_detach(o, loop);
 *     after every loop stopped: orders_close(o);
 *
 * Threading: everything a call touches lives on its loop (store reads, the
 * loop's event queue, peer channels); the store writer and the event hub are
 * shared by every loop. orders_open/close run on the main thread.
 */
#ifndef OMS_ORDERS_H
#define OMS_ORDERS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "rpc/rpc.h"
#include "rpc/rpc_client.h"
#include "store/store.h"

typedef struct orders orders;

/* Services to host (orders_config.services). */
enum {
    ORDERS_SVC_CUSTOMERS = 1u << 0,
    ORDERS_SVC_INVENTORY = 1u << 1,
    ORDERS_SVC_ORDERS = 1u << 2,
    ORDERS_SVC_ALL = 7u,
};

typedef struct orders_config {
    unsigned services;     /* ORDERS_SVC_*; default ALL */
    const char *store_url; /* default "sqlite:./oms.db" */
    bool demo_data;        /* seed a few customers and products into an empty store; default true */

    /* Where the order service calls the services this process does not host
     * ("host:port[,host:port...]"). Required for each one missing. */
    const char *inventory_target;
    const char *customers_target;
    bool peer_tls;                /* default true */
    const char *peer_ca_file;     /* PEM roots for the peers; NULL: system default */
    const char *peer_server_name; /* TLS name to check; default: the target host */
    const char *peer_cert_file;   /* client certificate for the peers (mTLS), PEM; NULL: none */
    const char *peer_key_file;    /* its private key (both or neither) */
    const char *peer_token;       /* bearer token sent to the peers; NULL: none */
    uint64_t peer_timeout_ms;     /* deadline of a peer call when the incoming call has
                                     none (or a longer one); default 5000 */

    size_t event_ring;      /* recent events kept per loop for live subscribers; a
                               subscriber further behind catches up from the store.
                               Default 65536 */
    size_t page_size;       /* default and maximum page of List* reads; default 100, max 1000 */
    size_t max_import_rows; /* rows per ImportOrders call; default 100000 */
    /* How long a customer's idempotency key answers a repeat with its first
     * order; older keys are forgotten in the background (the key may then
     * make a new order). Default 24 h; 0 keeps keys forever. */
    int64_t idempotency_retention_ms;
    /* PostgreSQL store: 0 = other instances' events wake this one through
     * LISTEN/NOTIFY; N = read them every N ms instead (store_config). */
    int64_t event_poll_ms;
    /* PostgreSQL store, all-in-one mode: every N ms the store releases the
     * Reserve holds of instances that are gone (store_config.orphan_sweep_ms).
     * Default 5000; 0: off (they wait for the next start's sweep). */
    int64_t orphan_sweep_ms;
    /* Called by orders_loop_attach for each peer channel it creates on loop
     * (split mode), on the attaching thread, before any call is made: e.g.
     * to add client interceptors (metrics). NULL: none. */
    void (*on_peer_channel)(void *arg, uv_loop_t *loop, rpc_channel *ch);
    void *peer_channel_arg;
} orders_config;

void orders_config_init(orders_config *cfg);

/* Opens the store (migrating its schema), seeds demo data if asked and the
 * store is empty, and checks the configuration (a missing target for a
 * service the order service needs is an error). cfg is copied, strings too.
 * Returns NULL with a reason in err. */
orders *orders_open(const orders_config *cfg, char *err, size_t errlen);

/* Adds the hosted services to srv (one call per rpc_server; the tables are
 * shared). Returns 0 or an rpc error code (RPC_EINVAL: already added). */
int orders_register(orders *o, rpc_server *srv);

/* Readies loop for serving: its store connection, its event queue and, in
 * split mode, its channels to the peers. Call before the loop runs (from any
 * thread) or on its thread. Returns 0, or -1 with a reason in err. */
int orders_loop_attach(orders *o, uv_loop_t *loop, char *err, size_t errlen);

/* Start of a drain, on loop's thread: ends every WatchOrders and TrackOrders
 * call on the loop with UNAVAILABLE (subscribers resume with since_seq
 * elsewhere), so they do not hold the drain until its grace runs out. Other
 * calls go on. */
void orders_loop_drain(orders *o, uv_loop_t *loop);

/* Logs the state of loop's order-event subscribers: the ring, and per
 * subscriber its cursor, blocked/scheduled state and its call's flow control
 * (omsd does it on SIGUSR1). On loop's thread. */
void orders_loop_dump(orders *o, uv_loop_t *loop);

/* On loop's thread, once no call of the loop is left: closes the loop's
 * handles (freed as the loop runs its close callbacks) and connections. */
void orders_loop_detach(orders *o, uv_loop_t *loop);

/* The store writer's counters (store_get_stats), from any thread: for
 * metrics and readiness (last_failed). */
void orders_store_stats(orders *o, store_stats *out);

/* Delivery lag histogram bounds (upper, inclusive), ms: from the event's
 * store transaction timestamp (store_event.at, wall clock, ms) to the moment
 * the hub hands it to a stream, so the commit itself is included. */
#define ORDERS_LAG_BUCKETS 14
extern const uint64_t orders_lag_bounds_ms[ORDERS_LAG_BUCKETS];

/* What loop's order-event hub holds now (on loop's thread): subscribers,
 * of which live, events handed to streams, store catch-up reads, ring
 * restarts, and the delivery lag of the events sent (lag_hist[i]: events
 * with lag <= orders_lag_bounds_ms[i] and above the previous bound; lag_count
 * all of them, lag_sum_ms their sum). Zeros when the loop is not attached. */
typedef struct orders_loop_stats {
    uint64_t subscribers, live, sent, store_reads, ring_restarts;
    uint64_t lag_hist[ORDERS_LAG_BUCKETS];
    uint64_t lag_count, lag_sum_ms;
} orders_loop_stats;
void orders_loop_get_stats(orders *o, uv_loop_t *loop, orders_loop_stats *out);

/* Flushes the store (queued writes commit) and frees everything. Every loop
 * must have been detached and have stopped. NULL is fine. */
void orders_close(orders *o);

#endif
