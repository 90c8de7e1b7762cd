/* orderbench_service.c - oms.bench.v1.OrderBench: the benchmark contract of
 * proto/oms/bench/v1/bench.proto on rpc's call API. The logic lives in
 * orderbench_order.c and orderbench_store.c; this file only moves messages.
 */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "services/orderbench/orderbench_int.h"
#include "services/services.h"
#include "services/svc_int.h"
#include "oms/bench/v1/bench.omsrpc.h"

/* GetOrder copies stored bytes here first; larger orders go to the arena. */
#define GET_STACK 1024

struct orderbench_service {
    orderbench_store store;
    const rpc_method_ops *ops[OMS__BENCH__V1__ORDER_BENCH__N_METHODS]; /* impl's */
    rpc_service_impl impl;
};

static int64_t now_unix_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* --- CreateOrder / GetOrder (unary) ------------------------------------- */

/* The hot path: no allocation of ours beyond the map's amortized chunks; the
 * response borrows the request's strings and items. */
static void on_create_order(rpc_call *c, const Oms__Bench__V1__CreateOrderRequest *req)
{
    orderbench_service *b = rpc_call_service_data(c);
    Oms__Bench__V1__Order order;
    char id[BENCH_ID_MAX];
    const char *why = NULL;

    rpc_status st = orderbench_order_create(&b->store, req, now_unix_ms(), &order, id, &why);
    if (st != RPC_OK) {
        rpc_call_finish(c, st, why);
        return;
    }
    int rc = oms__bench__v1__order_bench__create_order__send(c, &order);
    if (rc < 0) {
        svc__send_failed(c, rc);
        return;
    }
    rpc_call_finish(c, RPC_OK, NULL);
}

static void on_get_order(rpc_call *c, const Oms__Bench__V1__GetOrderRequest *req)
{
    orderbench_service *b = rpc_call_service_data(c);
    size_t idlen = strlen(req->id);
    uint8_t stack[GET_STACK];
    uint8_t *buf = stack;
    size_t cap = sizeof stack, len;
    int32_t status;

    for (;;) {
        if (!orderbench_store_get(&b->store, req->id, idlen, &status, buf, cap, &len)) {
            rpc_call_finish(c, RPC_NOT_FOUND, "order not found");
            return;
        }
        if (len <= cap)
            break;
        /* stored order larger than the stack buffer: the arena frees it */
        if (!(buf = rpc_call_alloc(c, len))) {
            rpc_call_finish(c, RPC_RESOURCE_EXHAUSTED, "out of memory");
            return;
        }
        cap = len;
    }
    Oms__Bench__V1__Order *order = oms__bench__v1__order__unpack(rpc_call_allocator(c), len, buf);
    if (!order) {
        rpc_call_finish(c, RPC_INTERNAL, "stored order is corrupt");
        return;
    }
    int rc = oms__bench__v1__order_bench__get_order__send(c, order);
    if (rc < 0) {
        svc__send_failed(c, rc);
        return;
    }
    rpc_call_finish(c, RPC_OK, NULL);
}

/* --- WatchOrders (server streaming) ------------------------------------- */

typedef struct watch_state {
    int64_t next;  /* seq of the next event */
    int64_t count; /* events to send */
} watch_state;

/* Sends events until flow control pushes back (RPC_AGAIN: resumed from
 * on_ready) or the last one is queued, then finishes; the trailers follow the
 * queued events. */
static void pump_watch(rpc_call *c, watch_state *w)
{
    Oms__Bench__V1__OrderEvent ev = OMS__BENCH__V1__ORDER_EVENT__INIT;
    ev.order_id = (char *)"watch";
    while (w->next <= w->count) {
        ev.status = orderbench_watch_status(w->next);
        ev.seq = w->next++;
        int rc = oms__bench__v1__order_bench__watch_orders__send(c, &ev);
        if (rc < 0) {
            svc__send_failed(c, rc);
            return;
        }
        if (rc == RPC_AGAIN && w->next <= w->count)
            return;
    }
    rpc_call_finish(c, RPC_OK, NULL);
}

static void on_watch_message(rpc_call *c, const Oms__Bench__V1__WatchRequest *req)
{
    if (req->count < 0) {
        rpc_call_finish(c, RPC_INVALID_ARGUMENT, "count must be >= 0");
        return;
    }
    watch_state *w = rpc_call_alloc(c, sizeof *w);
    if (!w) {
        rpc_call_finish(c, RPC_RESOURCE_EXHAUSTED, "out of memory");
        return;
    }
    w->next = 1;
    w->count = req->count;
    rpc_call_set_data(c, w);
    pump_watch(c, w);
}

static void on_watch_ready(rpc_call *c)
{
    watch_state *w = rpc_call_data(c);
    if (w && !rpc_call_done(c))
        pump_watch(c, w);
}

/* --- Track (bidi) ------------------------------------------------------- */

/* One event per request, sent from on_message. No queue of our own: while
 * rpc's send queue is full it stops delivering requests, so RPC_AGAIN needs
 * no action here. */
static void on_track_message(rpc_call *c, const Oms__Bench__V1__TrackRequest *req)
{
    orderbench_service *b = rpc_call_service_data(c);
    if (rpc_call_done(c))
        return;

    int64_t *seq = rpc_call_data(c);
    if (!seq) {
        if (!(seq = rpc_call_alloc(c, sizeof *seq))) {
            rpc_call_finish(c, RPC_RESOURCE_EXHAUSTED, "out of memory");
            return;
        }
        rpc_call_set_data(c, seq);
    }
    int32_t status;
    size_t len;
    if (!orderbench_store_get(&b->store, req->order_id, strlen(req->order_id), &status, NULL, 0,
                              &len))
        status = OMS__BENCH__V1__ORDER_STATUS__ORDER_STATUS_UNSPECIFIED;

    Oms__Bench__V1__OrderEvent ev = OMS__BENCH__V1__ORDER_EVENT__INIT;
    ev.order_id = req->order_id; /* borrowed: rpc_call_send serializes now */
    ev.status = (Oms__Bench__V1__OrderStatus)status;
    ev.seq = ++*seq;
    int rc = oms__bench__v1__order_bench__track__send(c, &ev);
    if (rc < 0)
        svc__send_failed(c, rc);
}

static void on_track_half_close(rpc_call *c)
{
    rpc_call_finish(c, RPC_OK, NULL); /* after the queued events */
}

/* --- the service table -------------------------------------------------- */

static const Oms__Bench__V1__OrderBench_Server orderbench_handlers = {
    .create_order = {.on_request = on_create_order},
    .get_order = {.on_request = on_get_order},
    .watch_orders = {.on_request = on_watch_message, .on_ready = on_watch_ready},
    .track = {.on_request = on_track_message, .on_half_close = on_track_half_close},
};

orderbench_service *orderbench_service_new(void)
{
    orderbench_service *b = calloc(1, sizeof *b);
    if (!b)
        goto fail_alloc;
    if (orderbench_store_init(&b->store, 0, 0) != 0)
        goto fail_store;
    if (oms__bench__v1__order_bench__server_impl(&b->impl, b->ops, &orderbench_handlers, b) != 0)
        goto fail_ops;
    return b;

fail_ops:
    orderbench_store_dispose(&b->store);
fail_store:
    free(b);
fail_alloc:
    return NULL;
}

void orderbench_service_free(orderbench_service *b)
{
    if (!b)
        return;
    orderbench_store_dispose(&b->store);
    free(b);
}

const rpc_service_impl *orderbench_service_impl(const orderbench_service *b)
{
    return &b->impl;
}
