/* drive_bidi.c - bidi streaming: OrderBench.Track; each slot keeps a stream
 * open and an operation is one request->response round trip on it. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench/bench_int.h"
#include "oms/bench/v1/bench.pb-c.h"

typedef struct track_req {
    Oms__Bench__V1__TrackRequest req;
    char *order_id; /* padding, when --payload asks for more than the minimum */
} track_req;

static size_t size_with_id(void *arg, size_t len)
{
    track_req *t = arg;
    char saved = t->order_id[len];
    t->order_id[len] = '\0';
    t->req.order_id = t->order_id;
    size_t n = protobuf_c_message_get_packed_size(&t->req.base);
    t->order_id[len] = saved;
    return n;
}

static int track_init(bench_engine *r, char *err, size_t errlen)
{
    track_req *t = calloc(1, sizeof *t);
    if (!t)
        goto fail;
    r->drv_data = t;
    oms__bench__v1__track_request__init(&t->req);
    t->req.order_id = "o-1";
    size_t payload = r->cfg->payload;
    if (payload > protobuf_c_message_get_packed_size(&t->req.base)) {
        if (!(t->order_id = malloc(payload + 1)))
            goto fail;
        memset(t->order_id, 'x', payload);
        memcpy(t->order_id, "o-", 2);
        size_t len = bench__fit_length(payload, 3, size_with_id, t);
        t->order_id[len] = '\0';
        t->req.order_id = t->order_id;
    }
    r->res->request_bytes = protobuf_c_message_get_packed_size(&t->req.base);
    return 0;
fail:
    snprintf(err, errlen, "out of memory");
    return -1;
}

static void track_dispose(bench_engine *r)
{
    track_req *t = r->drv_data;
    if (t)
        free(t->order_id);
    free(t);
    r->drv_data = NULL;
}

static void on_message(rpc_client_call *c, const ProtobufCMessage *resp)
{
    bench_slot *s = rpc_client_call_data(c);
    (void)resp;
    s->received++;
    if (!s->busy)
        return; /* no request outstanding: not a round trip of ours */
    bench__messages(s->run, 1);
    unsigned limit = s->run->cfg->messages;
    if (limit && s->received >= limit && !s->closing) {
        /* this stream's last round trip: the slot waits for its status */
        s->closing = true;
        rpc_client_call_close_send(c);
        bench__op_done(s, false);
        return;
    }
    bench__op_done(s, true); /* may send the next request from here */
}

static void on_status(rpc_client_call *c, rpc_status code, const char *message,
                      const rpc_metadata *trailers)
{
    (void)trailers;
    bench__call_ended(rpc_client_call_data(c), code, message);
}

static const rpc_client_ops ops = {
    .flags = RPC_CLIENT_STREAMING | RPC_SERVER_STREAMING,
    .on_message = on_message,
    .on_status = on_status,
};

static void track_start(bench_slot *s)
{
    track_req *t = s->run->drv_data;
    if (!s->call && !bench__start_call(s, bench_call_info_of(BENCH_BIDI)->path,
                                       &oms__bench__v1__order_event__descriptor, &ops))
        return;
    /* RPC_AGAIN: queued all the same; one request in flight per stream never
     * fills it. */
    if (rpc_client_call_send(s->call, &t->req.base) < 0) {
        rpc_client_call_cancel(s->call);
        return;
    }
    s->sent++;
}

/* Half-close: the server answers what is outstanding and ends with OK, which
 * counts as the stream's end even though the window is over. */
static void track_stop(bench_slot *s)
{
    s->count_end = true;
    if (s->closing)
        return;
    s->closing = true;
    rpc_client_call_close_send(s->call);
}

const bench_driver bench_bidi_driver = {
    .init = track_init,
    .dispose = track_dispose,
    .start = track_start,
    .stop = track_stop,
};
