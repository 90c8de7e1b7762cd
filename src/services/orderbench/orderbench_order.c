/* orderbench_order.c - the OrderBench business logic the contract fixes
 * (proto/oms/bench/v1/bench.proto), without calls, so it is tested alone.
 */
#include <stdlib.h>
#include <string.h>

#include "services/orderbench/orderbench_int.h"

/* Most orders serialize into this much stack; larger ones take one malloc. */
#define PACK_STACK 512

rpc_status orderbench_order_check(const Oms__Bench__V1__CreateOrderRequest *req, int64_t *total,
                                  const char **why)
{
    if (!req->customer_id || req->customer_id[0] == '\0') {
        *why = "customer_id must not be empty";
        return RPC_INVALID_ARGUMENT;
    }
    int64_t sum = 0;
    for (size_t i = 0; i < req->n_items; i++) {
        const Oms__Bench__V1__LineItem *it = req->items[i];
        if (it->quantity <= 0) {
            *why = "item quantity must be > 0";
            return RPC_INVALID_ARGUMENT;
        }
        /* The contract leaves overflow open; a total that does not fit
         * total_cents is the client's error, like a bad quantity. */
        int64_t line;
        if (__builtin_mul_overflow((int64_t)it->quantity, it->unit_price_cents, &line) ||
            __builtin_add_overflow(sum, line, &sum)) {
            *why = "total_cents overflows int64";
            return RPC_INVALID_ARGUMENT;
        }
    }
    *total = sum;
    return RPC_OK;
}

size_t orderbench_order_id(char id[BENCH_ID_MAX], uint64_t n)
{
    char digits[20];
    size_t k = 0;
    do {
        digits[k++] = (char)('0' + n % 10);
        n /= 10;
    } while (n);
    id[0] = 'o';
    id[1] = '-';
    for (size_t i = 0; i < k; i++)
        id[2 + i] = digits[k - 1 - i];
    id[2 + k] = '\0';
    return 2 + k;
}

rpc_status orderbench_order_create(orderbench_store *s,
                                   const Oms__Bench__V1__CreateOrderRequest *req, int64_t now_ms,
                                   Oms__Bench__V1__Order *order, char id[BENCH_ID_MAX],
                                   const char **why)
{
    int64_t total;
    rpc_status st = orderbench_order_check(req, &total, why);
    if (st != RPC_OK)
        return st;

    /* ids are taken outside the map's mutex; two racing creates may insert
     * "o-6" before "o-5", which nothing observes */
    uint64_t n = atomic_fetch_add_explicit(&s->next, 1, memory_order_relaxed) + 1;
    size_t idlen = orderbench_order_id(id, n);

    oms__bench__v1__order__init(order);
    order->id = id;
    order->customer_id = req->customer_id;
    order->n_items = req->n_items;
    order->items = req->items;
    order->total_cents = total;
    order->status = OMS__BENCH__V1__ORDER_STATUS__ORDER_STATUS_PENDING;
    order->created_at_unix_ms = now_ms;

    /* serialize outside the mutex; the map only copies bytes */
    uint8_t stack[PACK_STACK];
    size_t len = oms__bench__v1__order__get_packed_size(order);
    uint8_t *buf = len <= sizeof stack ? stack : malloc(len);
    if (!buf)
        goto nomem;
    oms__bench__v1__order__pack(order, buf);
    int rv = orderbench_store_put(s, id, idlen, (int32_t)order->status, buf, len);
    if (buf != stack)
        free(buf);
    if (rv == 0)
        return RPC_OK;
    if (rv == BENCH_EINVAL) {
        *why = "order too large";
        return RPC_INVALID_ARGUMENT;
    }
nomem:
    *why = "out of memory";
    return RPC_RESOURCE_EXHAUSTED;
}

Oms__Bench__V1__OrderStatus orderbench_watch_status(int64_t k)
{
    return (Oms__Bench__V1__OrderStatus)(1 + (k - 1) % 5);
}
