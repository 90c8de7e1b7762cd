/* End to end: the generated Echo server table on a real rpc_server behind an
 * h2c listener, called through the generated client stubs over loopback, both
 * on one loop. Every call type, an error status, UNIMPLEMENTED for a method
 * without handler, and the blocking variant. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "cg/echo.omsrpc.h"
#include "rpc/rpc_client.h"

typedef Oms__Codegen__Deep__V1__Ping ping;
typedef Oms__Codegen__Deep__V1__Pong pong;
typedef Oms__Codegen__Deep__V1__Outer__Inner inner;
typedef Oms__Codegen__Types__V1__Blob blob;

/* --- server ------------------------------------------------------------- */

static void send_or_fail(rpc_call *c, int rc)
{
    if (rc < 0)
        rpc_call_finish(c, RPC_INTERNAL, "send failed");
}

/* Pong{text, seq = count}; text "fail" ends with NOT_FOUND instead. */
static void on_unary(rpc_call *c, const ping *req)
{
    if (strcmp(req->text, "fail") == 0) {
        rpc_call_finish(c, RPC_NOT_FOUND, "asked to fail");
        return;
    }
    pong p = OMS__CODEGEN__DEEP__V1__PONG__INIT;
    p.text = req->text;
    p.seq = req->count;
    send_or_fail(c, oms__codegen__deep__v1__echo__unary__send(c, &p));
    rpc_call_finish(c, RPC_OK, NULL);
}

/* count Pongs, seq 1..count (few: rpc queues them even past RPC_AGAIN). */
static void on_server_stream(rpc_call *c, const ping *req)
{
    pong p = OMS__CODEGEN__DEEP__V1__PONG__INIT;
    p.text = req->text;
    for (int32_t i = 1; i <= req->count; i++) {
        p.seq = i;
        int rc = oms__codegen__deep__v1__echo__server_stream__send(c, &p);
        if (rc < 0) {
            send_or_fail(c, rc);
            return;
        }
    }
    rpc_call_finish(c, RPC_OK, NULL);
}

/* One Pong with seq = number of requests, after the half-close. */
static void on_client_stream(rpc_call *c, const ping *req)
{
    (void)req;
    int32_t *n = rpc_call_data(c);
    if (!n) {
        n = rpc_call_alloc(c, sizeof *n);
        rpc_call_set_data(c, n);
    }
    ++*n;
}

static void on_client_stream_end(rpc_call *c)
{
    int32_t *n = rpc_call_data(c);
    pong p = OMS__CODEGEN__DEEP__V1__PONG__INIT;
    p.seq = n ? *n : 0;
    send_or_fail(c, oms__codegen__deep__v1__echo__client_stream__send(c, &p));
    rpc_call_finish(c, RPC_OK, NULL);
}

/* One Blob per Inner, holding its text. */
static void on_bidi(rpc_call *c, const inner *req)
{
    blob b = OMS__CODEGEN__TYPES__V1__BLOB__INIT;
    b.data.data = (uint8_t *)req->text;
    b.data.len = strlen(req->text);
    send_or_fail(c, oms__codegen__deep__v1__echo__bidi__send(c, &b));
}

static void on_bidi_end(rpc_call *c)
{
    rpc_call_finish(c, RPC_OK, NULL);
}

/* GetHTTPStatus has no handler: UNIMPLEMENTED. */
static const Oms__Codegen__Deep__V1__Echo_Server echo = {
    .unary = {.on_request = on_unary},
    .server_stream = {.on_request = on_server_stream},
    .client_stream = {.on_request = on_client_stream, .on_half_close = on_client_stream_end},
    .bidi = {.on_request = on_bidi, .on_half_close = on_bidi_end},
};

/* --- harness ------------------------------------------------------------ */

typedef struct env {
    uv_loop_t loop;
    uv_timer_t watchdog;
    rpc_server *rpc;
    http2_server *h2;
    rpc_channel *ch;
    int pending; /* calls not yet ended; at 0 everything shuts down */
} env;

static env E;

static void on_watchdog(uv_timer_t *t)
{
    (void)t;
    cr_assert_fail("calls did not finish in time (%d pending)", E.pending);
}

static void on_server_down(http2_server *srv, void *arg)
{
    (void)srv;
    (void)arg;
}

/* One call ended: the last one takes everything down so uv_run returns. */
static void call_ended(void)
{
    if (--E.pending > 0)
        return;
    uv_timer_stop(&E.watchdog);
    uv_close((uv_handle_t *)&E.watchdog, NULL);
    rpc_channel_free(E.ch, NULL, NULL);
    E.ch = NULL;
    http2_server_shutdown(E.h2, 2000, on_server_down, NULL);
}

static void setup(void)
{
    char err[256];
    memset(&E, 0, sizeof E);
    cr_assert_eq(uv_loop_init(&E.loop), 0);
    rpc_server_config rcfg;
    rpc_server_config_init(&rcfg);
    E.rpc = rpc_server_new(&rcfg);
    cr_assert_not_null(E.rpc);
    cr_assert_eq(oms__codegen__deep__v1__echo__register_server(E.rpc, &echo, NULL), 0);

    http2_server_config hcfg;
    http2_server_config_init(&hcfg);
    hcfg.host = "127.0.0.1";
    hcfg.port = 0;
    hcfg.tls = 0;
    hcfg.handler = rpc_server_stream_handler();
    hcfg.handler_data = E.rpc;
    cr_assert_eq(http2_server_new(&E.loop, &hcfg, &E.h2, err, sizeof err), 0, "%s", err);
    cr_assert_eq(http2_server_start(E.h2), 0);

    char target[64];
    snprintf(target, sizeof target, "127.0.0.1:%d", http2_server_port(E.h2));
    rpc_channel_config ccfg;
    rpc_channel_config_init(&ccfg);
    ccfg.target = target;
    ccfg.tls = false;
    E.ch = rpc_channel_new(&E.loop, &ccfg, err, sizeof err);
    cr_assert_not_null(E.ch, "%s", err);

    uv_timer_init(&E.loop, &E.watchdog);
    uv_timer_start(&E.watchdog, on_watchdog, 10000, 0);
}

static void teardown(void)
{
    if (E.ch) {
        rpc_channel_free(E.ch, NULL, NULL);
        uv_run(&E.loop, UV_RUN_DEFAULT);
    }
    http2_server_free(E.h2);
    uv_run(&E.loop, UV_RUN_DEFAULT);
    rpc_server_free(E.rpc);
    cr_assert_eq(uv_loop_close(&E.loop), 0, "every handle closed");
}

/* --- client side -------------------------------------------------------- */

static struct {
    rpc_status unary_code, fail_code, unimpl_code, server_code, client_code, bidi_code;
    char unary_text[16];
    int32_t unary_seq, client_seq;
    int server_msgs, bidi_msgs;
    int32_t server_last;
    char bidi_bytes[16];
} got;

static void on_unary_done(void *data, rpc_status code, const char *message, const pong *resp)
{
    (void)message;
    cr_assert_eq(data, &got);
    got.unary_code = code;
    cr_assert_not_null(resp);
    snprintf(got.unary_text, sizeof got.unary_text, "%s", resp->text);
    got.unary_seq = resp->seq;
    call_ended();
}

static void on_fail_done(void *data, rpc_status code, const char *message, const pong *resp)
{
    (void)data;
    cr_assert_str_eq(message, "asked to fail");
    cr_assert_null(resp);
    got.fail_code = code;
    call_ended();
}

static void on_unimpl_done(void *data, rpc_status code, const char *message, const pong *resp)
{
    (void)data;
    (void)message;
    cr_assert_null(resp);
    got.unimpl_code = code;
    call_ended();
}

static void on_server_msg(rpc_client_call *c, void *data, const pong *m)
{
    (void)c;
    (void)data;
    got.server_msgs++;
    got.server_last = m->seq;
}

static void on_server_status(rpc_client_call *c, void *data, rpc_status code, const char *message,
                             const rpc_metadata *trailers)
{
    (void)c;
    (void)data;
    (void)message;
    (void)trailers;
    got.server_code = code;
    call_ended();
}

static void on_client_msg(rpc_client_call *c, void *data, const pong *m)
{
    (void)c;
    (void)data;
    got.client_seq = m->seq;
}

static void on_client_status(rpc_client_call *c, void *data, rpc_status code, const char *message,
                             const rpc_metadata *trailers)
{
    (void)c;
    (void)data;
    (void)message;
    (void)trailers;
    got.client_code = code;
    call_ended();
}

static void on_bidi_msg(rpc_client_call *c, void *data, const blob *m)
{
    (void)c;
    (void)data;
    size_t at = strlen(got.bidi_bytes);
    snprintf(got.bidi_bytes + at, sizeof got.bidi_bytes - at, "%.*s", (int)m->data.len,
             (const char *)m->data.data);
    got.bidi_msgs++;
}

static void on_bidi_status(rpc_client_call *c, void *data, rpc_status code, const char *message,
                           const rpc_metadata *trailers)
{
    (void)c;
    (void)data;
    (void)message;
    (void)trailers;
    got.bidi_code = code;
    call_ended();
}

Test(codegen_e2e, every_call_type_over_loopback, .init = setup, .fini = teardown)
{
    static const Oms__Codegen__Deep__V1__Echo_ServerStream_Callbacks server_cb = {
        .on_message = on_server_msg, .on_status = on_server_status};
    static const Oms__Codegen__Deep__V1__Echo_ClientStream_Callbacks client_cb = {
        .on_message = on_client_msg, .on_status = on_client_status};
    static const Oms__Codegen__Deep__V1__Echo_Bidi_Callbacks bidi_cb = {
        .on_message = on_bidi_msg, .on_status = on_bidi_status};
    memset(&got, 0, sizeof got);

    /* blocking first: it runs the loop itself, which must not be running */
    ping req = OMS__CODEGEN__DEEP__V1__PING__INIT;
    req.text = (char *)"block";
    req.count = 9;
    pong *resp = NULL;
    char msg[64];
    cr_assert_eq(
        oms__codegen__deep__v1__echo__unary__blocking(E.ch, &req, &resp, NULL, msg, sizeof msg),
        RPC_OK, "%s", msg);
    cr_assert_str_eq(resp->text, "block");
    cr_assert_eq(resp->seq, 9);
    oms__codegen__deep__v1__pong__free_unpacked(resp, NULL);

    req.text = (char *)"hello";
    req.count = 42;
    cr_assert_not_null(
        oms__codegen__deep__v1__echo__unary__call(E.ch, &req, NULL, on_unary_done, &got));
    ping fail = OMS__CODEGEN__DEEP__V1__PING__INIT;
    fail.text = (char *)"fail";
    cr_assert_not_null(
        oms__codegen__deep__v1__echo__unary__call(E.ch, &fail, NULL, on_fail_done, NULL));
    cr_assert_not_null(
        oms__codegen__deep__v1__echo__get_httpstatus__call(E.ch, &req, NULL, on_unimpl_done, NULL));

    ping three = OMS__CODEGEN__DEEP__V1__PING__INIT;
    three.count = 3;
    cr_assert_not_null(
        oms__codegen__deep__v1__echo__server_stream__call(E.ch, &three, NULL, &server_cb, NULL));

    rpc_client_call *cs =
        oms__codegen__deep__v1__echo__client_stream__call(E.ch, NULL, &client_cb, NULL);
    cr_assert_not_null(cs);
    for (int i = 0; i < 4; i++)
        cr_assert_geq(oms__codegen__deep__v1__echo__client_stream__client_send(cs, &req), 0);
    cr_assert_eq(rpc_client_call_close_send(cs), 0);

    rpc_client_call *bi = oms__codegen__deep__v1__echo__bidi__call(E.ch, NULL, &bidi_cb, NULL);
    cr_assert_not_null(bi);
    inner a = OMS__CODEGEN__DEEP__V1__OUTER__INNER__INIT, b = a;
    a.text = (char *)"ab";
    b.text = (char *)"cd";
    cr_assert_geq(oms__codegen__deep__v1__echo__bidi__client_send(bi, &a), 0);
    cr_assert_geq(oms__codegen__deep__v1__echo__bidi__client_send(bi, &b), 0);
    cr_assert_eq(rpc_client_call_close_send(bi), 0);

    E.pending = 6;
    uv_run(&E.loop, UV_RUN_DEFAULT);

    cr_assert_eq(got.unary_code, RPC_OK);
    cr_assert_str_eq(got.unary_text, "hello");
    cr_assert_eq(got.unary_seq, 42);
    cr_assert_eq(got.fail_code, RPC_NOT_FOUND);
    cr_assert_eq(got.unimpl_code, RPC_UNIMPLEMENTED);
    cr_assert_eq(got.server_code, RPC_OK);
    cr_assert_eq(got.server_msgs, 3);
    cr_assert_eq(got.server_last, 3);
    cr_assert_eq(got.client_code, RPC_OK);
    cr_assert_eq(got.client_seq, 4);
    cr_assert_eq(got.bidi_code, RPC_OK);
    cr_assert_eq(got.bidi_msgs, 2);
    cr_assert_str_eq(got.bidi_bytes, "abcd");
}
