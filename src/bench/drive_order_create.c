/* drive_order_create.c - order-create: oms.v1.OrderService/CreateOrder through
 * the order system's whole path (validation, customer check, reservation,
 * durable commit), one operation per call, on the generated client stub. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench/bench_int.h"
#include "oms/v1/order.omsrpc.h"

typedef struct create_req {
    Oms__V1__CreateOrderRequest req;
    Oms__V1__CreateOrderLine line;
    Oms__V1__CreateOrderLine *lines[1];
    char prefix[48]; /* of the idempotency keys */
    uint64_t next_key;
} create_req;

/* The packed size of a request, with a key as long as most will be. */
static void request_size(bench_engine *r)
{
    create_req *u = r->drv_data;
    char key[80];
    snprintf(key, sizeof key, "%s%llu", u->prefix, 1000000ull);
    if (!r->cfg->no_key)
        u->req.idempotency_key = key;
    r->res->request_bytes = protobuf_c_message_get_packed_size(&u->req.base);
    u->req.idempotency_key = "";
}

static int oc_init(bench_engine *r, char *err, size_t errlen)
{
    create_req *u = calloc(1, sizeof *u);
    if (!u) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    r->drv_data = u;
    oms__v1__create_order_request__init(&u->req);
    oms__v1__create_order_line__init(&u->line);
    u->req.customer_id = "c-1"; /* replaced by the setup's customer */
    u->line.sku = (char *)bench__order_sku(r->cfg);
    u->line.quantity = r->cfg->quantity;
    u->lines[0] = &u->line;
    u->req.n_lines = 1;
    u->req.lines = u->lines;
    bench__key_prefix(u->prefix, sizeof u->prefix);
    request_size(r);
    return 0;
}

static void oc_dispose(bench_engine *r)
{
    free(r->drv_data);
    r->drv_data = NULL;
}

static int oc_setup(bench_engine *r, char *err, size_t errlen)
{
    create_req *u = r->drv_data;
    if (bench__order_setup(r->channels[0], r->cfg, r->res, err, errlen) != 0)
        return -1;
    u->req.customer_id = (char *)r->res->customer;
    request_size(r);
    return 0;
}

static void on_done(void *data, rpc_status code, const char *message, const Oms__V1__Order *o)
{
    bench_slot *s = data;
    if (code == RPC_OK) {
        bench__messages(s->run, 1);
        if (!o->id || !*o->id || o->n_lines != 1 ||
            o->status != OMS__V1__ORDER_STATUS__ORDER_STATUS_PENDING) {
            code = RPC_INTERNAL;
            message = "CreateOrder answered OK with an order that is not a new PENDING one";
        }
    }
    if (code == RPC_OK)
        bench__op_done(s, false);
    bench__call_ended(s, code, message);
}

static void oc_start(bench_slot *s)
{
    create_req *u = s->run->drv_data;
    char key[80];
    if (!s->run->cfg->no_key) {
        snprintf(key, sizeof key, "%s%llu", u->prefix, (unsigned long long)u->next_key++);
        u->req.idempotency_key = key;
    }
    /* The stub packs req during the call: key may go out of scope after. */
    rpc_client_call *c =
        oms__v1__order_service__create_order__call(s->ch, &u->req, NULL, on_done, s);
    u->req.idempotency_key = "";
    bench__adopt_call(s, c);
}

/* Calls in flight at the end finish (uncounted): they are short. */
static void oc_stop(bench_slot *s)
{
    (void)s;
}

const bench_driver bench_order_create_driver = {
    .init = oc_init,
    .dispose = oc_dispose,
    .start = oc_start,
    .stop = oc_stop,
    .setup = oc_setup,
};
