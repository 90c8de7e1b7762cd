/* rpc_frame / rpc_call_send_frame (src/rpc/frame.c, call.c) over loopback:
 * one message packed once and sent on many server-streaming calls
 * (grpc.testing.TestService's StreamingOutputCall), as the order event hub
 * does. The publisher drops its reference right after the sends, so what a
 * call queued must not depend on the frame; calls cancelled, and a
 * connection closed, while those bytes are queued must neither touch the
 * frame nor leak (run under ASan/LSan in the sanitizer build).
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "grpc/testing/messages.pb-c.h"
#include "grpc/testing/test.pb-c.h"
#include "rpc/rpc_client.h"

#define PATH  "/grpc.testing.TestService/StreamingOutputCall"
#define MAXC  8
#define BIG   16384 /* payload bytes of the messages that fill the queues */
#define NBIG  64    /* 1 MiB a call: far more than the 64 KiB stream window */
#define SMALL 50

/* --- server: calls register, a "publisher" sends frames to all of them ---- */

typedef struct srv_state {
    rpc_call *calls[MAXC];
    int ncalls;
    int cancelled, freed;
    bool compress; /* rpc_call_set_compress on new calls */
} srv_state;

static uv_loop_t loop;
static uv_timer_t watchdog;
static rpc_server *rsrv;
static http2_server *h2;
static rpc_channel *chan;
static srv_state st;

static int slot_of(rpc_call *c)
{
    for (int i = 0; i < st.ncalls; i++)
        if (st.calls[i] == c)
            return i;
    return -1;
}

static void on_request(rpc_call *c, const ProtobufCMessage *m)
{
    (void)m;
    cr_assert(st.ncalls < MAXC);
    if (st.compress)
        rpc_call_set_compress(c, true);
    st.calls[st.ncalls++] = c;
}

static void on_cancel(rpc_call *c, rpc_status code)
{
    (void)code;
    int i = slot_of(c);
    cr_assert(i >= 0);
    st.calls[i] = NULL; /* the publisher forgets it, as the hub does */
    st.cancelled++;
}

static void on_free(rpc_call *c)
{
    int i = slot_of(c);
    if (i >= 0)
        st.calls[i] = NULL;
    st.freed++;
}

static const rpc_method_ops output_ops = {.flags = RPC_SERVER_STREAMING,
                                          .on_message = on_request,
                                          .on_cancel = on_cancel,
                                          .on_free = on_free};

/* A StreamingOutputCallResponse of len bytes, all of them (uint8_t)tag. */
static rpc_frame *make_frame(size_t len, int tag)
{
    uint8_t *body = malloc(len ? len : 1);
    memset(body, tag, len);
    Grpc__Testing__Payload p = GRPC__TESTING__PAYLOAD__INIT;
    p.body.data = body;
    p.body.len = len;
    Grpc__Testing__StreamingOutputCallResponse r =
        GRPC__TESTING__STREAMING_OUTPUT_CALL_RESPONSE__INIT;
    r.payload = &p;
    rpc_frame *f = rpc_frame_new(&r.base);
    cr_assert_not_null(f);
    free(body); /* the frame has its own bytes */
    return f;
}

/* Sends one new frame to every live call, then drops it. Returns how many
 * sends answered RPC_AGAIN. */
static int publish(size_t len, int tag)
{
    rpc_frame *f = make_frame(len, tag);
    cr_assert_gt(rpc_frame_size(f), len);
    int again = 0;
    for (int i = 0; i < st.ncalls; i++) {
        if (!st.calls[i])
            continue;
        int rv = rpc_call_send_frame(st.calls[i], f);
        cr_assert(rv == 0 || rv == RPC_AGAIN, "send_frame: %d", rv);
        again += rv == RPC_AGAIN;
    }
    rpc_frame_unref(f);
    return again;
}

static void finish_all(void)
{
    for (int i = 0; i < st.ncalls; i++)
        if (st.calls[i])
            rpc_call_finish(st.calls[i], RPC_OK, NULL);
}

static void on_watchdog(uv_timer_t *t)
{
    (void)t;
    cr_assert_fail("the test did not finish in time");
}

static void run_until(const bool *flag)
{
    while (!*flag)
        uv_run(&loop, UV_RUN_ONCE);
}

static void setup(void)
{
    char err[256];
    memset(&st, 0, sizeof st);
    cr_assert_eq(uv_loop_init(&loop), 0);
    rpc_server_config rcfg;
    rpc_server_config_init(&rcfg);
    rsrv = rpc_server_new(&rcfg);
    cr_assert_not_null(rsrv);
    const ProtobufCServiceDescriptor *d = &grpc__testing__test_service__descriptor;
    const rpc_method_ops *ops[16] = {0};
    cr_assert(d->n_methods <= 16);
    const ProtobufCMethodDescriptor *md =
        protobuf_c_service_descriptor_get_method_by_name(d, "StreamingOutputCall");
    cr_assert_not_null(md);
    ops[md - d->methods] = &output_ops;
    rpc_service_impl impl = {.desc = d, .ops = ops};
    cr_assert_eq(rpc_server_add_service(rsrv, &impl), 0);

    http2_server_config hcfg;
    http2_server_config_init(&hcfg);
    hcfg.host = "127.0.0.1";
    hcfg.port = 0;
    hcfg.tls = 0;
    hcfg.handler = rpc_server_stream_handler();
    hcfg.handler_data = rsrv;
    cr_assert_eq(http2_server_new(&loop, &hcfg, &h2, err, sizeof err), 0, "%s", err);
    cr_assert_eq(http2_server_start(h2), 0);

    char target[64];
    snprintf(target, sizeof target, "127.0.0.1:%d", http2_server_port(h2));
    rpc_channel_config ccfg;
    rpc_channel_config_init(&ccfg);
    ccfg.target = target;
    ccfg.tls = false;
    chan = rpc_channel_new(&loop, &ccfg, err, sizeof err);
    cr_assert_not_null(chan, "%s", err);
    uv_timer_init(&loop, &watchdog);
    uv_timer_start(&watchdog, on_watchdog, 20000, 0);
}

static void on_flag(void *arg)
{
    *(bool *)arg = true;
}

static void on_down(http2_server *s, void *arg)
{
    (void)s;
    *(bool *)arg = true;
}

static void teardown(void)
{
    bool freed = false, down = false;
    if (chan) {
        rpc_channel_free(chan, on_flag, &freed);
        run_until(&freed);
    }
    http2_server_shutdown(h2, 0, on_down, &down);
    run_until(&down);
    uv_timer_stop(&watchdog);
    uv_close((uv_handle_t *)&watchdog, NULL);
    uv_run(&loop, UV_RUN_DEFAULT);
    http2_server_free(h2);
    cr_expect_eq(rpc_server_active_calls(rsrv), 0);
    rpc_server_free(rsrv);
    cr_expect_eq(uv_loop_close(&loop), 0);
}

/* --- client: one subscriber per call, checking every message ------------- */

typedef struct cli {
    rpc_client_call *call;
    int got;        /* messages */
    int want_tag;   /* the tag of the next message expected */
    bool bad;       /* a message out of order or with the wrong bytes */
    int compressed; /* messages that arrived compressed */
    bool done;
    rpc_status code;
} cli;

static void cli_on_message(rpc_client_call *c, const ProtobufCMessage *m)
{
    cli *k = rpc_client_call_data(c);
    const Grpc__Testing__StreamingOutputCallResponse *r =
        (const Grpc__Testing__StreamingOutputCallResponse *)m;
    size_t len = r->payload ? r->payload->body.len : 0;
    for (size_t i = 0; i < len; i++)
        if (r->payload->body.data[i] != (uint8_t)k->want_tag) {
            k->bad = true;
            break;
        }
    k->compressed += rpc_client_call_last_compressed(c);
    k->want_tag++;
    k->got++;
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

static const rpc_client_ops cli_ops = {
    .flags = RPC_SERVER_STREAMING, .on_message = cli_on_message, .on_status = cli_on_status};

/* Opens n calls (first message tag 1) and waits until the server has them. */
static void open_calls(cli *k, int n)
{
    for (int i = 0; i < n; i++) {
        k[i] = (cli){.want_tag = 1};
        k[i].call =
            rpc_channel_call(chan, PATH, &grpc__testing__streaming_output_call_response__descriptor,
                             &cli_ops, &k[i], NULL);
        cr_assert_not_null(k[i].call);
        Grpc__Testing__StreamingOutputCallRequest req =
            GRPC__TESTING__STREAMING_OUTPUT_CALL_REQUEST__INIT;
        cr_assert_geq(rpc_client_call_send(k[i].call, &req.base), 0);
        rpc_client_call_close_send(k[i].call);
    }
    while (st.ncalls < n)
        uv_run(&loop, UV_RUN_ONCE);
}

static void wait_done(cli *k, int n)
{
    for (int i = 0; i < n; i++)
        run_until(&k[i].done);
}

TestSuite(rpc_frame, .init = setup, .fini = teardown, .timeout = 30);

Test(rpc_frame, one_frame_reaches_every_call_in_order)
{
    cli k[3];
    open_calls(k, 3);
    for (int t = 1; t <= SMALL; t++)
        publish((size_t)t, t);
    finish_all();
    wait_done(k, 3);
    for (int i = 0; i < 3; i++) {
        cr_expect_eq(k[i].code, RPC_OK);
        cr_expect_eq(k[i].got, SMALL, "call %d got %d", i, k[i].got);
        cr_expect_not(k[i].bad, "call %d: wrong bytes or order", i);
    }
}

Test(rpc_frame, a_frame_of_another_type_is_refused)
{
    cli k[1];
    open_calls(k, 1);
    Grpc__Testing__SimpleResponse other = GRPC__TESTING__SIMPLE_RESPONSE__INIT;
    rpc_frame *f = rpc_frame_new(&other.base);
    cr_assert_not_null(f);
    cr_expect_eq(rpc_call_send_frame(st.calls[0], f), RPC_EINVAL);
    rpc_frame_unref(f);
    publish(10, 1); /* the call goes on */
    finish_all();
    wait_done(k, 1);
    cr_expect_eq(k[0].code, RPC_OK);
    cr_expect_eq(k[0].got, 1);
    cr_expect_not(k[0].bad);
}

/* Two calls with a MiB queued each (the frames already dropped by the
 * publisher); one is cancelled by its client in the middle of it. The other
 * still gets every byte; the cancelled one's queue goes with its stream. */
Test(rpc_frame, call_cancelled_while_its_sends_are_queued)
{
    cli k[2];
    open_calls(k, 2);
    int again = 0;
    for (int t = 1; t <= NBIG; t++)
        again += publish(BIG, t);
    cr_assert_gt(again, 0, "the queues filled (RPC_AGAIN)");
    /* the client has read part of it at most */
    uv_run(&loop, UV_RUN_NOWAIT);
    rpc_client_call_cancel(k[0].call);
    run_until(&k[0].done);
    cr_expect_eq(k[0].code, RPC_CANCELLED);
    while (st.cancelled < 1)
        uv_run(&loop, UV_RUN_ONCE);
    cr_expect_null(st.calls[0]);
    for (int t = NBIG + 1; t <= NBIG + 3; t++) /* sent to the other one only */
        publish(BIG, t);
    finish_all();
    wait_done(k, 2);
    cr_expect_eq(k[1].code, RPC_OK);
    cr_expect_eq(k[1].got, NBIG + 3);
    cr_expect_not(k[1].bad);
    cr_expect_lt(k[0].got, NBIG, "cancelled before all was read");
    cr_expect_not(k[0].bad);
}

/* The connection goes while a MiB of frames is queued on each of its
 * calls, the last frame still referenced by the publisher: nothing is sent
 * from it afterwards, and it outlives the calls with its bytes intact. */
Test(rpc_frame, connection_closed_while_frames_are_queued)
{
    cli k[3];
    open_calls(k, 3);
    for (int t = 1; t < NBIG; t++)
        publish(BIG, t);
    rpc_frame *kept = make_frame(BIG, NBIG);
    for (int i = 0; i < st.ncalls; i++)
        cr_assert_geq(rpc_call_send_frame(st.calls[i], kept), 0);
    bool freed = false;
    rpc_channel_free(chan, on_flag, &freed);
    chan = NULL;
    run_until(&freed);
    while (st.cancelled < 3)
        uv_run(&loop, UV_RUN_ONCE);
    for (int i = 0; i < 3; i++) {
        cr_expect(k[i].done);
        cr_expect_neq(k[i].code, RPC_OK);
        cr_expect_not(k[i].bad);
        cr_expect_lt(k[i].got, NBIG);
    }
    /* the publisher's frame is still whole, and still sendable elsewhere */
    cr_expect_gt(rpc_frame_size(kept), BIG);
    rpc_frame_unref(kept);
}

/* A call that compresses gets its own compressed copy; the others the
 * shared bytes as they are. */
Test(rpc_frame, compressing_call_gets_its_own_copy)
{
    cli k[2];
    open_calls(k, 1);
    st.compress = true;
    k[1] = (cli){.want_tag = 1};
    rpc_call_opts opts = {.compress = true};
    k[1].call =
        rpc_channel_call(chan, PATH, &grpc__testing__streaming_output_call_response__descriptor,
                         &cli_ops, &k[1], &opts);
    Grpc__Testing__StreamingOutputCallRequest req =
        GRPC__TESTING__STREAMING_OUTPUT_CALL_REQUEST__INIT;
    cr_assert_geq(rpc_client_call_send(k[1].call, &req.base), 0);
    rpc_client_call_close_send(k[1].call);
    while (st.ncalls < 2)
        uv_run(&loop, UV_RUN_ONCE);
    for (int t = 1; t <= 5; t++)
        publish(2000, t);
    finish_all();
    wait_done(k, 2);
    for (int i = 0; i < 2; i++) {
        cr_expect_eq(k[i].code, RPC_OK);
        cr_expect_eq(k[i].got, 5);
        cr_expect_not(k[i].bad);
    }
    cr_expect_eq(k[0].compressed, 0);
    cr_expect_eq(k[1].compressed, 5, "the compressing call: %d of 5", k[1].compressed);
}
