/* rpc_call_pause_input / rpc_call_resume_input (src/rpc/call.c) over
 * loopback: a client-streaming handler (grpc.testing.TestService's
 * StreamingInputCall) that pauses after each request gets nothing while
 * paused (no message, no half-close), then every request in order and the
 * half-close last; the client, meanwhile, is held back by flow control.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "grpc/testing/messages.pb-c.h"
#include "grpc/testing/test.pb-c.h"
#include "loopback.h"
#include "rpc/rpc_client.h"

#define PATH "/grpc.testing.TestService/StreamingInputCall"

typedef enum mode {
    RESUME_LATER,  /* resume from a timer, 1 ms after each request */
    RESUME_INSIDE, /* pause and resume inside on_message */
} mode;

typedef struct srv_state {
    mode mode;
    int got;           /* requests seen */
    int32_t total;     /* their payload bytes */
    bool paused;       /* we paused and did not resume yet */
    bool out_of_order; /* a request arrived out of order or while paused */
    bool half_closed;
} srv_state;

static loopback lb;
static srv_state st;

static void on_resume_timer(rpc_call *c)
{
    st.paused = false;
    rpc_call_resume_input(c);
}

static void on_request(rpc_call *c, const ProtobufCMessage *m)
{
    const Grpc__Testing__StreamingInputCallRequest *req =
        (const Grpc__Testing__StreamingInputCallRequest *)m;
    size_t len = req->payload ? req->payload->body.len : 0;
    if (st.paused || len != (size_t)st.got + 1)
        st.out_of_order = true;
    st.got++;
    st.total += (int32_t)len;
    rpc_call_pause_input(c);
    if (st.mode == RESUME_INSIDE) {
        rpc_call_resume_input(c);
        return;
    }
    st.paused = true;
    rpc_call_set_timer(c, 1, on_resume_timer);
}

static void on_half_close(rpc_call *c)
{
    if (st.paused)
        st.out_of_order = true;
    st.half_closed = true;
    Grpc__Testing__StreamingInputCallResponse resp =
        GRPC__TESTING__STREAMING_INPUT_CALL_RESPONSE__INIT;
    resp.aggregated_payload_size = st.total;
    if (rpc_call_send(c, &resp.base) >= 0)
        rpc_call_finish(c, RPC_OK, NULL);
}

static const rpc_method_ops input_ops = {
    .flags = RPC_CLIENT_STREAMING, .on_message = on_request, .on_half_close = on_half_close};

static void setup(void)
{
    memset(&st, 0, sizeof st);
    lb_setup(&lb, "StreamingInputCall", &input_ops);
}

static void teardown(void)
{
    lb_teardown(&lb);
}

/* --- client ------------------------------------------------------------------- */

typedef struct cli {
    rpc_client_call *call;
    int n, sent;
    bool closed, done;
    rpc_status code;
    int32_t agg;
} cli;

/* Sends requests 1..n with 1..n payload bytes, as fast as flow control lets. */
static void cli_pump(cli *k)
{
    uint8_t body[4096] = {0};
    while (k->sent < k->n) {
        Grpc__Testing__Payload p = GRPC__TESTING__PAYLOAD__INIT;
        p.body.data = body;
        p.body.len = (size_t)k->sent + 1;
        Grpc__Testing__StreamingInputCallRequest req =
            GRPC__TESTING__STREAMING_INPUT_CALL_REQUEST__INIT;
        req.payload = &p;
        int rv = rpc_client_call_send(k->call, &req.base);
        cr_assert(rv >= 0, "send: %d", rv);
        k->sent++;
        if (rv == RPC_AGAIN)
            return;
    }
    if (!k->closed) {
        k->closed = true;
        rpc_client_call_close_send(k->call);
    }
}

static void cli_on_ready(rpc_client_call *c)
{
    cli_pump(rpc_client_call_data(c));
}

static void cli_on_message(rpc_client_call *c, const ProtobufCMessage *m)
{
    cli *k = rpc_client_call_data(c);
    k->agg = ((const Grpc__Testing__StreamingInputCallResponse *)m)->aggregated_payload_size;
}

static void cli_on_status(rpc_client_call *c, rpc_status code, const char *message,
                          const rpc_metadata *trailers)
{
    (void)message;
    (void)trailers;
    cli *k = rpc_client_call_data(c);
    k->code = code;
    k->done = true;
}

static const rpc_client_ops cli_ops = {.flags = RPC_CLIENT_STREAMING,
                                       .on_message = cli_on_message,
                                       .on_ready = cli_on_ready,
                                       .on_status = cli_on_status};

static void run_stream(int n)
{
    cli k = {.n = n};
    k.call =
        rpc_channel_call(lb.chan, PATH, &grpc__testing__streaming_input_call_response__descriptor,
                         &cli_ops, &k, NULL);
    cr_assert_not_null(k.call);
    cli_pump(&k);
    lb_run_until(&lb, &k.done);
    cr_expect_eq(k.code, RPC_OK);
    cr_expect_eq(st.got, n);
    cr_expect_not(st.out_of_order, "a request came while paused or out of order");
    cr_expect(st.half_closed);
    cr_expect_eq(k.agg, n * (n + 1) / 2);
}

TestSuite(rpc_pause, .init = setup, .fini = teardown, .timeout = 30);

Test(rpc_pause, resumed_later_delivers_in_order_then_half_close)
{
    st.mode = RESUME_LATER;
    run_stream(200);
}

Test(rpc_pause, resumed_inside_on_message_goes_on)
{
    st.mode = RESUME_INSIDE;
    run_stream(300);
}
