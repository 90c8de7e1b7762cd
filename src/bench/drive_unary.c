/* drive_unary.c - unary: OrderBench.CreateOrder, one operation per call. */
#include <stdlib.h>
#include <string.h>

#include "bench/bench_int.h"
#include "oms/bench/v1/bench.pb-c.h"

/* The request, built once and sent by every call (packing only reads it). */
typedef struct unary_req {
    Oms__Bench__V1__CreateOrderRequest req;
    Oms__Bench__V1__LineItem item;
    Oms__Bench__V1__LineItem *items[1];
    char *sku; /* padding, when --payload asks for more than the minimum */
} unary_req;

static size_t size_with_sku(void *arg, size_t len)
{
    unary_req *u = arg;
    char saved = u->sku[len];
    u->sku[len] = '\0';
    u->item.sku = u->sku;
    size_t n = protobuf_c_message_get_packed_size(&u->req.base);
    u->sku[len] = saved;
    return n;
}

static int unary_init(bench_engine *r, char *err, size_t errlen)
{
    unary_req *u = calloc(1, sizeof *u);
    if (!u)
        goto fail;
    r->drv_data = u;
    oms__bench__v1__create_order_request__init(&u->req);
    oms__bench__v1__line_item__init(&u->item);
    u->req.customer_id = "bench-customer";
    u->item.sku = "sku-1";
    u->item.quantity = 1;
    u->item.unit_price_cents = 1999;
    u->items[0] = &u->item;
    u->req.n_items = 1;
    u->req.items = u->items;
    size_t payload = r->cfg->payload;
    if (payload > protobuf_c_message_get_packed_size(&u->req.base)) {
        /* One item whose sku grows until the request packs to the size asked
         * for: the server copies it into the stored order and the response. */
        if (!(u->sku = malloc(payload + 1)))
            goto fail;
        memset(u->sku, 'x', payload);
        memcpy(u->sku, "sku-", 4);
        size_t len = bench__fit_length(payload, 5, size_with_sku, u);
        u->sku[len] = '\0';
        u->item.sku = u->sku;
    }
    r->res->request_bytes = protobuf_c_message_get_packed_size(&u->req.base);
    return 0;
fail:
    snprintf(err, errlen, "out of memory");
    return -1;
}

static void unary_dispose(bench_engine *r)
{
    unary_req *u = r->drv_data;
    if (u)
        free(u->sku);
    free(u);
    r->drv_data = NULL;
}

static void on_message(rpc_client_call *c, const ProtobufCMessage *resp)
{
    bench_slot *s = rpc_client_call_data(c);
    (void)resp;
    s->received++;
    bench__messages(s->run, 1);
}

static void on_status(rpc_client_call *c, rpc_status code, const char *message,
                      const rpc_metadata *trailers)
{
    bench_slot *s = rpc_client_call_data(c);
    (void)trailers;
    if (code == RPC_OK && s->received != 1) {
        code = RPC_INTERNAL;
        message = s->received ? "unary call answered with several messages"
                              : "unary call ended OK without a response";
    }
    if (code == RPC_OK)
        bench__op_done(s, false);
    bench__call_ended(s, code, message);
}

static const rpc_client_ops ops = {
    .flags = 0,
    .on_message = on_message,
    .on_status = on_status,
};

static void unary_start(bench_slot *s)
{
    unary_req *u = s->run->drv_data;
    rpc_client_call *c = bench__start_call(s, bench_call_info_of(BENCH_UNARY)->path,
                                           &oms__bench__v1__order__descriptor, &ops);
    if (!c)
        return;
    bench__send_last(c, &u->req.base);
}

/* Calls in flight at the end finish (uncounted): they are short. */
static void unary_stop(bench_slot *s)
{
    (void)s;
}

const bench_driver bench_unary_driver = {
    .init = unary_init,
    .dispose = unary_dispose,
    .start = unary_start,
    .stop = unary_stop,
};
