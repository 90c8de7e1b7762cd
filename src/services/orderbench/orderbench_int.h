/* orderbench_int.h - OrderBench internals: the order map and the order logic of
 * proto/oms/bench/v1/bench.proto, kept free of calls so tests/services can drive
 * them directly (not installed).
 */
#ifndef OMS_APP_ORDERBENCH_INT_H
#define OMS_APP_ORDERBENCH_INT_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "oms/bench/v1/bench.pb-c.h"
#include "rpc/rpc.h"

/* --- the order map (orderbench_store.c) -------------------------------------- */

/* The contract: the map is cleared when it holds this many orders. */
#define BENCH_STORE_MAX_ORDERS 1000000
/* Our own guard against orders far larger than the benchmark's (a few items):
 * the map is also cleared before it would hold more than this many bytes, so
 * 1,000,000 huge orders cannot exhaust memory. Never reached by ordinary
 * orders (1,000,000 x ~100 B). */
#define BENCH_STORE_MAX_BYTES ((size_t)1 << 30)

enum {
    BENCH_ENOMEM = -1,
    BENCH_EINVAL = -2, /* key or value longer than 4 GiB */
};

typedef struct orderbench_entry orderbench_entry;
typedef struct orderbench_chunk orderbench_chunk;

typedef struct orderbench_slot {
    uint64_t hash;       /* of the entry's key */
    orderbench_entry *e; /* NULL: empty slot */
} orderbench_slot;

/* A mutex-protected hash map id -> (status, bytes), process-wide: any thread
 * may call any function. Open addressing with linear probing (no deletes, so
 * no tombstones); entries are bump-allocated from 1 MiB chunks, so an insert
 * does no malloc of its own and a clear frees a few chunks, not 1,000,000
 * entries. Embedded: init/dispose. */
typedef struct orderbench_store {
    pthread_mutex_t mu;
    orderbench_slot *slots; /* mask + 1 slots, a power of two */
    size_t mask;
    size_t count;             /* entries stored */
    size_t bytes;             /* chunk bytes used by entries since the last clear */
    size_t max_orders;        /* clear before an insert when count reaches it */
    size_t max_bytes;         /* clear before an insert that would pass it */
    orderbench_chunk *chunks; /* newest first; the head takes new entries */
    uint64_t clears;          /* times the map was cleared (for tests, metrics) */
    _Atomic uint64_t next;    /* the order id counter: last id handed out */
} orderbench_store;

/* Initializes an empty map; limits of 0 mean the defaults above. Returns 0 or
 * BENCH_ENOMEM. */
int orderbench_store_init(orderbench_store *s, size_t max_orders, size_t max_bytes);
/* Frees every entry. No other thread may use s any more. */
void orderbench_store_dispose(orderbench_store *s);

/* Stores a copy of key -> (status, value[0..len)), replacing an entry with the
 * same key. When the map holds max_orders entries (or would pass max_bytes) it
 * is cleared first. Returns 0, BENCH_ENOMEM (the map is unchanged, unless it
 * was cleared) or BENCH_EINVAL. */
int orderbench_store_put(orderbench_store *s, const char *key, size_t klen, int32_t status,
                         const void *value, size_t len);

/* Looks key up. When found, returns true and sets *status and *len (the value's
 * length) and, if buf is non-NULL and *len <= cap, copies the value into buf;
 * otherwise the caller retries with a buffer of *len bytes (the entry may have
 * changed or gone in between). Returns false if absent. */
bool orderbench_store_get(orderbench_store *s, const char *key, size_t klen, int32_t *status,
                          void *buf, size_t cap, size_t *len);

/* Entries currently stored. */
size_t orderbench_store_count(orderbench_store *s);

/* --- order logic (orderbench_order.c) ---------------------------------------- */

/* "o-" + up to 20 digits + NUL. */
#define BENCH_ID_MAX 24

/* Validates a CreateOrderRequest per the contract (customer_id non-empty, every
 * item quantity > 0) and computes total_cents = sum(quantity * unit_price_cents)
 * with checked arithmetic. Returns RPC_OK, or RPC_INVALID_ARGUMENT with *why set
 * to a static message (int64 overflow of the total is INVALID_ARGUMENT too). */
rpc_status orderbench_order_check(const Oms__Bench__V1__CreateOrderRequest *req, int64_t *total,
                                  const char **why);

/* Writes "o-<n>" NUL-terminated into id; returns its length. */
size_t orderbench_order_id(char id[BENCH_ID_MAX], uint64_t n);

/* CreateOrder without the call: validates req, takes the next id from s's
 * counter, fills *order (status PENDING, created_at_unix_ms = now_ms) and stores
 * its serialized copy in s. *order borrows id and req's strings and items: it is
 * valid while both are. Returns RPC_OK, RPC_INVALID_ARGUMENT or
 * RPC_RESOURCE_EXHAUSTED (out of memory), with *why set (static) on error. */
rpc_status orderbench_order_create(orderbench_store *s,
                                   const Oms__Bench__V1__CreateOrderRequest *req, int64_t now_ms,
                                   Oms__Bench__V1__Order *order, char id[BENCH_ID_MAX],
                                   const char **why);

/* Status of WatchOrders event k (k >= 1): 1 + (k - 1) % 5. */
Oms__Bench__V1__OrderStatus orderbench_watch_status(int64_t k);

#endif
