/* drive_client_stream.c - client streaming: TestService.StreamingInputCall;
 * an operation is a stream of --messages requests of --payload bytes and its
 * one response, throughput counts requests. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench/bench_int.h"
#include "grpc/testing/messages.pb-c.h"

typedef struct input_req {
    Grpc__Testing__StreamingInputCallRequest req;
    Grpc__Testing__Payload payload;
    uint8_t *body;
} input_req;

static size_t size_with_body(void *arg, size_t len)
{
    input_req *in = arg;
    in->payload.body.len = len;
    return protobuf_c_message_get_packed_size(&in->req.base);
}

static int input_init(bench_engine *r, char *err, size_t errlen)
{
    input_req *in = calloc(1, sizeof *in);
    if (!in)
        goto fail;
    r->drv_data = in;
    grpc__testing__streaming_input_call_request__init(&in->req);
    grpc__testing__payload__init(&in->payload);
    in->req.payload = &in->payload;
    size_t payload = r->cfg->payload;
    if (!(in->body = calloc(1, payload ? payload : 1)))
        goto fail;
    in->payload.body.data = in->body;
    /* The body grows until the whole message packs to about --payload. */
    in->payload.body.len = bench__fit_length(payload, 0, size_with_body, in);
    r->res->request_bytes = protobuf_c_message_get_packed_size(&in->req.base);
    return 0;
fail:
    snprintf(err, errlen, "out of memory");
    return -1;
}

static void input_dispose(bench_engine *r)
{
    input_req *in = r->drv_data;
    if (in)
        free(in->body);
    free(in);
    r->drv_data = NULL;
}

/* Sends until the stream is full (on_ready resumes) or the batch is out, then
 * half-closes. Each request counts when the call accepts it: the stream holds
 * only a bounded amount, so accepted tracks what the server takes. */
static void send_more(bench_slot *s)
{
    input_req *in = s->run->drv_data;
    unsigned n = s->run->cfg->messages;
    while (s->sent < n) {
        int rv = rpc_client_call_send(s->call, &in->req.base);
        if (rv < 0) {
            if (rv != RPC_ECANCELLED) /* the call is over otherwise: on_status follows */
                rpc_client_call_cancel(s->call);
            return;
        }
        s->sent++;
        bench__messages(s->run, 1);
        if (rv == RPC_AGAIN)
            return;
    }
    rpc_client_call_close_send(s->call);
}

static void on_ready(rpc_client_call *c)
{
    bench_slot *s = rpc_client_call_data(c);
    if (s->sent < s->run->cfg->messages && !s->cancelled)
        send_more(s);
}

static void on_message(rpc_client_call *c, const ProtobufCMessage *resp)
{
    bench_slot *s = rpc_client_call_data(c);
    (void)resp;
    s->received++;
}

static void on_status(rpc_client_call *c, rpc_status code, const char *message,
                      const rpc_metadata *trailers)
{
    bench_slot *s = rpc_client_call_data(c);
    (void)trailers;
    if (code == RPC_OK && s->received != 1) {
        code = RPC_INTERNAL;
        message = "client-streaming call ended OK without exactly one response";
    }
    if (code == RPC_OK)
        bench__op_done(s, false);
    bench__call_ended(s, code, message);
}

static const rpc_client_ops ops = {
    .flags = RPC_CLIENT_STREAMING,
    .on_message = on_message,
    .on_ready = on_ready,
    .on_status = on_status,
};

static void input_start(bench_slot *s)
{
    if (!bench__start_call(s, bench_call_info_of(BENCH_CLIENT_STREAM)->path,
                           &grpc__testing__streaming_input_call_response__descriptor, &ops))
        return;
    send_more(s);
}

static void input_stop(bench_slot *s)
{
    if (!s->cancelled) {
        s->cancelled = true;
        rpc_client_call_cancel(s->call);
    }
}

const bench_driver bench_client_stream_driver = {
    .init = input_init,
    .dispose = input_dispose,
    .start = input_start,
    .stop = input_stop,
};
