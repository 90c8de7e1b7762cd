/* drive_server_stream.c - server streaming: OrderBench.WatchOrders; an
 * operation is a whole stream of --messages events, throughput counts
 * events. */
#include <stdio.h>
#include <stdlib.h>

#include "bench/bench_int.h"
#include "oms/bench/v1/bench.pb-c.h"

typedef struct watch_req {
    Oms__Bench__V1__WatchRequest req;
} watch_req;

static int watch_init(bench_engine *r, char *err, size_t errlen)
{
    watch_req *w = calloc(1, sizeof *w);
    if (!w) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    oms__bench__v1__watch_request__init(&w->req);
    w->req.count = (int32_t)r->cfg->messages;
    r->drv_data = w;
    r->res->request_bytes = protobuf_c_message_get_packed_size(&w->req.base);
    return 0;
}

static void watch_dispose(bench_engine *r)
{
    free(r->drv_data);
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
    char m[96];
    if (code == RPC_OK && s->received != s->run->cfg->messages) {
        /* The contract: exactly `count` events, then OK. */
        snprintf(m, sizeof m, "stream ended OK after %u of %u messages", s->received,
                 s->run->cfg->messages);
        code = RPC_INTERNAL;
        message = m;
    }
    if (code == RPC_OK)
        bench__op_done(s, false);
    bench__call_ended(s, code, message);
}

static const rpc_client_ops ops = {
    .flags = RPC_SERVER_STREAMING,
    .on_message = on_message,
    .on_status = on_status,
};

static void watch_start(bench_slot *s)
{
    watch_req *w = s->run->drv_data;
    rpc_client_call *c = bench__start_call(s, bench_call_info_of(BENCH_SERVER_STREAM)->path,
                                           &oms__bench__v1__order_event__descriptor, &ops);
    if (!c)
        return;
    bench__send_last(c, &w->req.base);
}

/* A stream may have far to go: cancel it (not counted as an error). */
static void watch_stop(bench_slot *s)
{
    if (!s->cancelled) {
        s->cancelled = true;
        rpc_client_call_cancel(s->call);
    }
}

const bench_driver bench_server_stream_driver = {
    .init = watch_init,
    .dispose = watch_dispose,
    .start = watch_start,
    .stop = watch_stop,
};
