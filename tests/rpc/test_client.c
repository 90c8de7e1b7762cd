/* The client channel and calls (src/rpc/channel.c, client_call.c, blocking.c)
 * against real oms servers with scripted handlers: rpc_server + http2_server
 * on 127.0.0.1:0 (h2c), up to three of them, on the same loop as the client.
 *
 * Covers what the interop suite cannot script: retries (gRFC A6: retryable
 * and non-retryable codes, the deadline across attempts), round-robin over
 * several addresses, a server going away mid-run, and GOAWAY with a call in
 * flight. The servers implement grpc.testing.TestService's UnaryCall and
 * StreamingOutputCall; every call they see is counted per server.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "grpc/testing/messages.pb-c.h"
#include "grpc/testing/test.pb-c.h"
#include "rpc/rpc_client.h"

#define UNARY  "/grpc.testing.TestService/UnaryCall"
#define STREAM "/grpc.testing.TestService/StreamingOutputCall"
#define MAXSRV 3

/* --- scripted servers ------------------------------------------------------- */

typedef struct tsrv {
    char name[12]; /* "s0".."s2", returned in SimpleResponse.server_id */
    rpc_server *rpc;
    http2_server *h2;
    int port;
    int calls;             /* UnaryCall requests seen */
    int streams;           /* StreamingOutputCall requests seen */
    rpc_status fail_code;  /* scripted failure */
    int fail_first;        /* fail this many calls, then answer OK; -1: fail all */
    uint64_t delay_ms;     /* answer unary calls after this long */
    const char *server_id; /* answered instead of name when set (bad bytes) */
    bool shut;             /* http2_server_shutdown called */
    bool down;             /* ... and done */
    uint64_t down_ms;      /* loop time when done fired */
} tsrv;

typedef struct unary_state {
    int n;         /* which call this was on the server (1-based) */
    int32_t rsize; /* SimpleRequest.response_size */
} unary_state;

/* A StreamingOutputCall in progress: left responses, every interval_ms. */
typedef struct stream_state {
    int left;
    int32_t size;
    uint64_t interval_ms;
} stream_state;

static void unary_answer(rpc_call *c)
{
    tsrv *s = rpc_call_service_data(c);
    unary_state *st = rpc_call_data(c);
    if (s->fail_first < 0 || st->n <= s->fail_first) {
        rpc_call_finish(c, s->fail_code, "scripted failure");
        return;
    }
    Grpc__Testing__SimpleResponse resp = GRPC__TESTING__SIMPLE_RESPONSE__INIT;
    Grpc__Testing__Payload p = GRPC__TESTING__PAYLOAD__INIT;
    resp.server_id = s->server_id ? (char *)s->server_id : s->name;
    if (st->rsize > 0) {
        p.body.len = (size_t)st->rsize;
        p.body.data = rpc_call_alloc(c, p.body.len);
        if (!p.body.data) {
            rpc_call_finish(c, RPC_RESOURCE_EXHAUSTED, "out of memory");
            return;
        }
        resp.payload = &p;
    }
    if (rpc_call_send(c, &resp.base) < 0)
        return;
    rpc_call_finish(c, RPC_OK, NULL);
}

static void on_unary(rpc_call *c, const ProtobufCMessage *req)
{
    tsrv *s = rpc_call_service_data(c);
    unary_state *st = rpc_call_alloc(c, sizeof *st);
    if (!st) {
        rpc_call_finish(c, RPC_RESOURCE_EXHAUSTED, "out of memory");
        return;
    }
    st->n = ++s->calls;
    st->rsize = ((const Grpc__Testing__SimpleRequest *)req)->response_size;
    rpc_call_set_data(c, st);
    if (s->delay_ms)
        rpc_call_set_timer(c, s->delay_ms, unary_answer);
    else
        unary_answer(c);
}

static void stream_next(rpc_call *c)
{
    stream_state *st = rpc_call_data(c);
    if (st->left == 0) {
        rpc_call_finish(c, RPC_OK, NULL);
        return;
    }
    Grpc__Testing__Payload p = GRPC__TESTING__PAYLOAD__INIT;
    uint8_t body[64] = {0};
    p.body.data = body;
    p.body.len = (size_t)st->size < sizeof body ? (size_t)st->size : sizeof body;
    Grpc__Testing__StreamingOutputCallResponse resp =
        GRPC__TESTING__STREAMING_OUTPUT_CALL_RESPONSE__INIT;
    resp.payload = &p;
    if (rpc_call_send(c, &resp.base) < 0)
        return;
    st->left--;
    rpc_call_set_timer(c, st->left ? st->interval_ms : 0, stream_next);
}

/* One response per ResponseParameters, the first right away, then one every
 * interval_us of the first parameter. */
static void on_stream(rpc_call *c, const ProtobufCMessage *m)
{
    const Grpc__Testing__StreamingOutputCallRequest *req =
        (const Grpc__Testing__StreamingOutputCallRequest *)m;
    tsrv *s = rpc_call_service_data(c);
    s->streams++;
    stream_state *st = rpc_call_alloc(c, sizeof *st);
    if (!st) {
        rpc_call_finish(c, RPC_RESOURCE_EXHAUSTED, "out of memory");
        return;
    }
    st->left = (int)req->n_response_parameters;
    st->size = st->left ? req->response_parameters[0]->size : 0;
    st->interval_ms = st->left ? (uint64_t)req->response_parameters[0]->interval_us / 1000 : 0;
    rpc_call_set_data(c, st);
    stream_next(c);
}

static const rpc_method_ops unary_ops = {.flags = 0, .on_message = on_unary};
static const rpc_method_ops stream_ops = {.flags = RPC_SERVER_STREAMING, .on_message = on_stream};

/* --- harness ------------------------------------------------------------------ */

static uv_loop_t loop;
static uv_timer_t watchdog;
static tsrv srv[MAXSRV];
static int nsrv;
static rpc_channel *chan;

static void on_watchdog(uv_timer_t *t)
{
    (void)t;
    cr_assert_fail("the test did not finish in time");
}

static int method_index(const char *name)
{
    const ProtobufCServiceDescriptor *d = &grpc__testing__test_service__descriptor;
    const ProtobufCMethodDescriptor *m = protobuf_c_service_descriptor_get_method_by_name(d, name);
    cr_assert_not_null(m, "%s", name);
    return (int)(m - d->methods);
}

/* Server i on 127.0.0.1:port (0: any). */
static void start_server(tsrv *s, int i, int port)
{
    char err[256];
    memset(s, 0, sizeof *s);
    snprintf(s->name, sizeof s->name, "s%d", i);
    rpc_server_config rcfg;
    rpc_server_config_init(&rcfg);
    s->rpc = rpc_server_new(&rcfg);
    cr_assert_not_null(s->rpc);
    const rpc_method_ops *ops[16] = {0};
    cr_assert(grpc__testing__test_service__descriptor.n_methods <= 16);
    ops[method_index("UnaryCall")] = &unary_ops;
    ops[method_index("StreamingOutputCall")] = &stream_ops;
    rpc_service_impl impl = {
        .desc = &grpc__testing__test_service__descriptor, .ops = ops, .data = s};
    cr_assert_eq(rpc_server_add_service(s->rpc, &impl), 0);

    http2_server_config hcfg;
    http2_server_config_init(&hcfg);
    hcfg.host = "127.0.0.1";
    hcfg.port = port;
    hcfg.tls = 0;
    hcfg.handler = rpc_server_stream_handler();
    hcfg.handler_data = s->rpc;
    cr_assert_eq(http2_server_new(&loop, &hcfg, &s->h2, err, sizeof err), 0, "%s", err);
    cr_assert_eq(http2_server_start(s->h2), 0);
    s->port = http2_server_port(s->h2);
}

static void setup_servers(int n)
{
    cr_assert_eq(uv_loop_init(&loop), 0);
    nsrv = n;
    for (int i = 0; i < n; i++)
        start_server(&srv[i], i, 0);
    uv_timer_init(&loop, &watchdog);
    uv_timer_start(&watchdog, on_watchdog, 20000, 0);
}

/* h2c channel settings for quick tests: retries back off 0-10 ms, then up
 * to 50 ms; reconnects after 50 ms, then x1.6. */
static void channel_config(rpc_channel_config *cfg, const char *target, int max_attempts)
{
    rpc_channel_config_init(cfg);
    cfg->target = target;
    cfg->tls = false;
    cfg->retry.max_attempts = max_attempts;
    cfg->retry.initial_backoff_ms = 10;
    cfg->retry.max_backoff_ms = 50;
    cfg->backoff_initial_ms = 50;
}

static rpc_channel *channel_new(const rpc_channel_config *cfg)
{
    char err[256];
    rpc_channel *ch = rpc_channel_new(&loop, cfg, err, sizeof err);
    cr_assert_not_null(ch, "%s", err);
    return ch;
}

/* "127.0.0.1:P0,...": servers [0, n). */
static void target_of(char *target, size_t len, int n)
{
    size_t off = 0;
    target[0] = '\0';
    for (int i = 0; i < n; i++)
        off +=
            (size_t)snprintf(target + off, len - off, "%s127.0.0.1:%d", i ? "," : "", srv[i].port);
}

/* A channel over servers [0, n). */
static rpc_channel *channel_to(int n, int max_attempts)
{
    char target[200];
    target_of(target, sizeof target, n);
    rpc_channel_config cfg;
    channel_config(&cfg, target, max_attempts);
    return channel_new(&cfg);
}

static void on_server_down(http2_server *h2, void *arg)
{
    (void)h2;
    tsrv *s = arg;
    s->down = true;
    s->down_ms = uv_now(&loop);
}

static void shutdown_server(tsrv *s, uint64_t grace_ms)
{
    s->shut = true;
    http2_server_shutdown(s->h2, grace_ms, on_server_down, s);
}

static void run_until(const bool *flag)
{
    while (!*flag)
        uv_run(&loop, UV_RUN_ONCE); /* the watchdog keeps the loop alive */
}

static void on_sleep_over(uv_timer_t *t)
{
    *(bool *)t->data = true;
    uv_close((uv_handle_t *)t, NULL);
}

/* Runs the loop for ms milliseconds. */
static void run_for(uint64_t ms)
{
    static uv_timer_t t;
    bool over = false;
    uv_timer_init(&loop, &t);
    t.data = &over;
    uv_timer_start(&t, on_sleep_over, ms, 0);
    run_until(&over);
    uv_run(&loop, UV_RUN_NOWAIT); /* the close callback */
}

/* Frees a server whose shutdown completed and starts it again, same name and
 * port, counters at zero. */
static void restart_server(tsrv *s, int i)
{
    cr_assert(s->down);
    int port = s->port;
    http2_server_free(s->h2);
    cr_assert_eq(rpc_server_active_calls(s->rpc), 0);
    rpc_server_free(s->rpc);
    start_server(s, i, port);
}

static void on_channel_freed(void *arg)
{
    *(bool *)arg = true;
}

/* Channel first (its calls end), then the servers, then every handle. */
static void teardown_all(void)
{
    if (chan) {
        bool freed = false;
        rpc_channel_free(chan, on_channel_freed, &freed);
        run_until(&freed);
        chan = NULL;
    }
    for (int i = 0; i < nsrv; i++) {
        if (!srv[i].shut)
            shutdown_server(&srv[i], 0);
        run_until(&srv[i].down);
    }
    uv_timer_stop(&watchdog);
    uv_close((uv_handle_t *)&watchdog, NULL);
    uv_run(&loop, UV_RUN_DEFAULT);
    for (int i = 0; i < nsrv; i++) {
        http2_server_free(srv[i].h2);
        cr_assert_eq(rpc_server_active_calls(srv[i].rpc), 0);
        rpc_server_free(srv[i].rpc);
    }
    cr_assert_eq(uv_loop_close(&loop), 0, "every handle closed");
}

/* --- client calls ---------------------------------------------------------------- */

typedef struct ccall ccall;
struct ccall {
    bool done;
    rpc_status code;
    char msg[256];
    int attempts;
    char server_id[8]; /* of the SimpleResponse */
    int nmsgs;
    int32_t rsize;       /* request: response_size */
    bool wait_for_ready; /* request: rpc_call_opts.wait_for_ready */
    uint64_t start_ms, end_ms;
    void (*then)(ccall *cc); /* runs from on_status */
    void (*on_msg)(ccall *cc);
};

static void cc_on_message(rpc_client_call *c, const ProtobufCMessage *m)
{
    ccall *cc = rpc_client_call_data(c);
    cc->nmsgs++;
    if (m->descriptor == &grpc__testing__simple_response__descriptor) {
        const Grpc__Testing__SimpleResponse *r = (const Grpc__Testing__SimpleResponse *)m;
        snprintf(cc->server_id, sizeof cc->server_id, "%s", r->server_id);
    }
    if (cc->on_msg)
        cc->on_msg(cc);
}

static void cc_on_status(rpc_client_call *c, rpc_status code, const char *message,
                         const rpc_metadata *trailers)
{
    (void)trailers;
    ccall *cc = rpc_client_call_data(c);
    cc->code = code;
    snprintf(cc->msg, sizeof cc->msg, "%s", message);
    cc->attempts = rpc_client_call_attempts(c);
    cc->end_ms = uv_now(&loop);
    cc->done = true;
    if (cc->then)
        cc->then(cc);
}

static const rpc_client_ops unary_client = {
    .flags = 0, .on_message = cc_on_message, .on_status = cc_on_status};
static const rpc_client_ops stream_client = {
    .flags = RPC_SERVER_STREAMING, .on_message = cc_on_message, .on_status = cc_on_status};

/* Starts a UnaryCall (SimpleRequest with a body of body_len zeros). */
static void start_unary(ccall *cc, uint64_t timeout_ms, size_t body_len)
{
    cc->done = false;
    cc->nmsgs = 0;
    cc->server_id[0] = '\0';
    cc->start_ms = uv_now(&loop);
    rpc_call_opts o = {.timeout_ms = timeout_ms, .wait_for_ready = cc->wait_for_ready};
    rpc_client_call *c = rpc_channel_call(chan, UNARY, &grpc__testing__simple_response__descriptor,
                                          &unary_client, cc, &o);
    cr_assert_not_null(c);
    Grpc__Testing__Payload p = GRPC__TESTING__PAYLOAD__INIT;
    uint8_t *body = calloc(1, body_len ? body_len : 1);
    cr_assert_not_null(body);
    p.body.data = body;
    p.body.len = body_len;
    Grpc__Testing__SimpleRequest req = GRPC__TESTING__SIMPLE_REQUEST__INIT;
    req.payload = &p;
    req.response_size = cc->rsize;
    int rv = rpc_client_call_send(c, &req.base);
    cr_assert(rv == 0 || rv == RPC_AGAIN, "send: %d", rv);
    free(body);
    cr_assert_eq(rpc_client_call_close_send(c), 0);
}

static void unary_sync(ccall *cc, uint64_t timeout_ms)
{
    memset(cc, 0, sizeof *cc);
    start_unary(cc, timeout_ms, 0);
    run_until(&cc->done);
}

/* --- retries -------------------------------------------------------------------- */

Test(rpc_client, retry_unavailable_then_ok)
{
    setup_servers(1);
    srv[0].fail_code = RPC_UNAVAILABLE;
    srv[0].fail_first = 2;
    chan = channel_to(1, 3);
    ccall cc;
    unary_sync(&cc, 5000);
    cr_expect_eq(cc.code, RPC_OK, "status %d: %s", cc.code, cc.msg);
    cr_expect_eq(cc.attempts, 3);
    cr_expect_eq(srv[0].calls, 3, "the server saw every attempt");
    cr_expect_str_eq(cc.server_id, "s0");
    teardown_all();
}

Test(rpc_client, retries_stop_at_max_attempts)
{
    setup_servers(1);
    srv[0].fail_code = RPC_UNAVAILABLE;
    srv[0].fail_first = -1;
    chan = channel_to(1, 3);
    ccall cc;
    unary_sync(&cc, 5000);
    cr_expect_eq(cc.code, RPC_UNAVAILABLE, "status %d: %s", cc.code, cc.msg);
    cr_expect_str_eq(cc.msg, "scripted failure", "the last attempt's message");
    cr_expect_eq(cc.attempts, 3);
    cr_expect_eq(srv[0].calls, 3);
    teardown_all();
}

Test(rpc_client, non_retryable_code_is_not_retried)
{
    setup_servers(1);
    srv[0].fail_code = RPC_INVALID_ARGUMENT;
    srv[0].fail_first = -1;
    chan = channel_to(1, 5);
    ccall cc;
    unary_sync(&cc, 5000);
    cr_expect_eq(cc.code, RPC_INVALID_ARGUMENT, "status %d: %s", cc.code, cc.msg);
    cr_expect_eq(cc.attempts, 1);
    cr_expect_eq(srv[0].calls, 1);
    teardown_all();
}

/* Each attempt takes 150 ms to fail; five attempts would take 750+ ms. The
 * 300 ms deadline covers all of them: the call ends by then, not later (the
 * slack is for loaded sanitizer runs; a per-attempt deadline would overshoot
 * by 450 ms). */
Test(rpc_client, deadline_covers_every_attempt)
{
    setup_servers(1);
    srv[0].fail_code = RPC_UNAVAILABLE;
    srv[0].fail_first = -1;
    srv[0].delay_ms = 150;
    chan = channel_to(1, 5);
    ccall cc;
    unary_sync(&cc, 300);
    uint64_t took = cc.end_ms - cc.start_ms;
    cr_expect(cc.code == RPC_DEADLINE_EXCEEDED || cc.code == RPC_UNAVAILABLE, "status %d: %s",
              cc.code, cc.msg);
    cr_expect_leq(took, 300 + 200, "ended after %llu ms, deadline 300 ms",
                  (unsigned long long)took);
    cr_expect_geq(cc.attempts, 2, "retried within the deadline");
    cr_expect_lt(cc.attempts, 5, "no attempt past the deadline");
    teardown_all();
}

/* Always UNAVAILABLE, at once: the retries back off and stop at the deadline
 * or at max_attempts, never after the deadline. */
Test(rpc_client, deadline_with_fast_failures)
{
    setup_servers(1);
    srv[0].fail_code = RPC_UNAVAILABLE;
    srv[0].fail_first = -1;
    chan = channel_to(1, 5);
    ccall cc;
    unary_sync(&cc, 100);
    uint64_t took = cc.end_ms - cc.start_ms;
    cr_expect(cc.code == RPC_DEADLINE_EXCEEDED || cc.code == RPC_UNAVAILABLE, "status %d: %s",
              cc.code, cc.msg);
    cr_expect_leq(took, 100 + 200, "ended after %llu ms, deadline 100 ms",
                  (unsigned long long)took);
    teardown_all();
}

/* A request larger than the stream's send buffer (256 KiB) fills it at once;
 * the half-close must still reach the server. */
Test(rpc_client, blocking_unary_large_request)
{
    setup_servers(1);
    chan = channel_to(1, 1);
    Grpc__Testing__Payload p = GRPC__TESTING__PAYLOAD__INIT;
    p.body.len = 300000;
    p.body.data = calloc(1, p.body.len);
    Grpc__Testing__SimpleRequest req = GRPC__TESTING__SIMPLE_REQUEST__INIT;
    req.payload = &p;
    ProtobufCMessage *resp = NULL;
    char msg[256];
    rpc_call_opts o = {.timeout_ms = 3000};
    rpc_status code =
        rpc_blocking_unary(chan, UNARY, &req.base, &grpc__testing__simple_response__descriptor,
                           &resp, &o, msg, sizeof msg);
    free(p.body.data);
    cr_expect_eq(code, RPC_OK, "status %d: %s", code, msg);
    cr_expect_not_null(resp);
    if (resp)
        protobuf_c_message_free_unpacked(resp, NULL);
    teardown_all();
}

/* The same through the streaming API: send (RPC_AGAIN), then close_send
 * without waiting for on_ready. */
Test(rpc_client, close_send_after_full_send_buffer)
{
    setup_servers(1);
    chan = channel_to(1, 1);
    ccall cc;
    memset(&cc, 0, sizeof cc);
    start_unary(&cc, 3000, 300000);
    run_until(&cc.done);
    cr_expect_eq(cc.code, RPC_OK, "status %d: %s", cc.code, cc.msg);
    cr_expect_eq(srv[0].calls, 1);
    teardown_all();
}

/* --- load balancing ------------------------------------------------------------- */

/* Runs `total` unary calls one after another; after `shut_after` of them
 * completed, server `victim` shuts down with grace 0. */
static struct lb_run {
    ccall cc;
    int total, started, ok, shut_after, victim;
    int victim_calls_at_shutdown;
    bool done;
    char failures[512];
} lb;

static void lb_next(ccall *cc)
{
    if (cc->code == RPC_OK) {
        lb.ok++;
    } else {
        size_t n = strlen(lb.failures);
        snprintf(lb.failures + n, sizeof lb.failures - n, "[call %d: %d %s] ", lb.started, cc->code,
                 cc->msg);
    }
    if (lb.started == lb.shut_after && lb.victim >= 0) {
        lb.victim_calls_at_shutdown = srv[lb.victim].calls;
        shutdown_server(&srv[lb.victim], 0);
    }
    if (lb.started == lb.total) {
        lb.done = true;
        return;
    }
    lb.started++;
    start_unary(cc, 5000, 0);
}

static void lb_run(int total, int shut_after, int victim)
{
    memset(&lb, 0, sizeof lb);
    lb.total = total;
    lb.shut_after = shut_after;
    lb.victim = victim;
    lb.cc.then = lb_next;
    lb.started = 1;
    start_unary(&lb.cc, 5000, 0);
    run_until(&lb.done);
}

Test(rpc_client, round_robin_over_three_servers)
{
    setup_servers(3);
    chan = channel_to(3, 3);
    lb_run(30, -1, -1);
    cr_expect_eq(lb.ok, 30, "failures: %s", lb.failures);
    cr_expect_eq(srv[0].calls + srv[1].calls + srv[2].calls, 30);
    for (int i = 0; i < 3; i++)
        cr_expect_geq(srv[i].calls, 5, "server %d got %d of 30 calls (%d/%d/%d)", i, srv[i].calls,
                      srv[0].calls, srv[1].calls, srv[2].calls);
    teardown_all();
}

Test(rpc_client, server_shutdown_mid_run)
{
    setup_servers(3);
    chan = channel_to(3, 3);
    lb_run(60, 15, 1);
    cr_expect_eq(lb.ok, 60, "failures: %s", lb.failures);
    cr_expect_gt(lb.victim_calls_at_shutdown, 0, "the victim served calls before");
    cr_expect_eq(srv[1].calls, lb.victim_calls_at_shutdown, "no call reached it after shutdown");
    cr_expect(srv[1].down, "its shutdown completed");
    cr_expect_eq(srv[0].calls + srv[1].calls + srv[2].calls, 60, "%d/%d/%d", srv[0].calls,
                 srv[1].calls, srv[2].calls);
    cr_expect_geq(srv[0].calls, 15, "the others took over: %d/%d/%d", srv[0].calls, srv[1].calls,
                  srv[2].calls);
    cr_expect_geq(srv[2].calls, 15, "the others took over: %d/%d/%d", srv[0].calls, srv[1].calls,
                  srv[2].calls);
    teardown_all();
}

/* --- GOAWAY ------------------------------------------------------------------------ */

/* A 10-response stream (one every 30 ms) in flight; at its first response,
 * the server that carries it drains (grace 5 s). The stream completes OK on
 * the draining connection, and 5 new unary calls all go to the other server. */
static struct goaway_run {
    ccall stream, unary;
    int carrier; /* server of the stream */
    int unary_left;
    bool unary_done;
    uint64_t shut_ms;
    char failures[512];
} ga;

static void ga_unary_next(ccall *cc)
{
    if (cc->code != RPC_OK || strcmp(cc->server_id, srv[1 - ga.carrier].name) != 0) {
        size_t n = strlen(ga.failures);
        snprintf(ga.failures + n, sizeof ga.failures - n, "[%d %s from '%s'] ", cc->code, cc->msg,
                 cc->server_id);
    }
    if (--ga.unary_left == 0) {
        ga.unary_done = true;
        return;
    }
    start_unary(cc, 5000, 0);
}

static void ga_on_stream_msg(ccall *cc)
{
    if (cc->nmsgs != 1)
        return;
    ga.carrier = srv[0].streams ? 0 : 1;
    ga.shut_ms = uv_now(&loop);
    shutdown_server(&srv[ga.carrier], 5000);
    ga.unary_left = 5;
    ga.unary.then = ga_unary_next;
    start_unary(&ga.unary, 5000, 0);
}

Test(rpc_client, goaway_lets_call_finish_and_moves_new_calls)
{
    setup_servers(2);
    chan = channel_to(2, 3);
    memset(&ga, 0, sizeof ga);
    /* both connections up first, so that the stream may land on either */
    ccall warm;
    unary_sync(&warm, 5000);
    unary_sync(&warm, 5000);
    cr_assert_eq(warm.code, RPC_OK, "%s", warm.msg);
    cr_assert_eq(srv[0].calls, 1, "round robin warm-up");
    cr_assert_eq(srv[1].calls, 1, "round robin warm-up");

    Grpc__Testing__ResponseParameters rp[10];
    Grpc__Testing__ResponseParameters *rpp[10];
    for (int i = 0; i < 10; i++) {
        grpc__testing__response_parameters__init(&rp[i]);
        rp[i].size = 10;
        rp[i].interval_us = 30000;
        rpp[i] = &rp[i];
    }
    Grpc__Testing__StreamingOutputCallRequest req =
        GRPC__TESTING__STREAMING_OUTPUT_CALL_REQUEST__INIT;
    req.n_response_parameters = 10;
    req.response_parameters = rpp;
    ga.stream.on_msg = ga_on_stream_msg;
    ga.stream.start_ms = uv_now(&loop);
    rpc_call_opts o = {.timeout_ms = 10000};
    rpc_client_call *c =
        rpc_channel_call(chan, STREAM, &grpc__testing__streaming_output_call_response__descriptor,
                         &stream_client, &ga.stream, &o);
    cr_assert_not_null(c);
    cr_assert_geq(rpc_client_call_send(c, &req.base), 0);
    cr_assert_eq(rpc_client_call_close_send(c), 0);

    run_until(&ga.stream.done);
    run_until(&ga.unary_done);
    tsrv *carrier = &srv[ga.carrier], *other = &srv[1 - ga.carrier];
    cr_expect_eq(ga.stream.code, RPC_OK, "the in-flight stream: %d %s", ga.stream.code,
                 ga.stream.msg);
    cr_expect_eq(ga.stream.nmsgs, 10, "every response of the in-flight stream");
    cr_expect_eq(ga.stream.attempts, 1);
    cr_expect_str_empty(ga.failures, "new calls: %s", ga.failures);
    cr_expect_eq(carrier->calls, 1, "no new call reached the draining server");
    cr_expect_eq(other->calls, 1 + 5);
    run_until(&carrier->down);
    cr_expect_lt(carrier->down_ms - ga.shut_ms, 5000,
                 "the drain ended with the last stream, not at the grace period");
    teardown_all();
}

/* --- connections ---------------------------------------------------------------- */

/* A port nothing listens on: a server's, after it is gone. */
static int dead_port(void)
{
    tsrv tmp;
    start_server(&tmp, 9, 0);
    int port = tmp.port;
    shutdown_server(&tmp, 0);
    run_until(&tmp.down);
    http2_server_free(tmp.h2);
    rpc_server_free(tmp.rpc);
    return port;
}

Test(rpc_client, dead_address_in_target_is_skipped)
{
    setup_servers(2);
    char target[200];
    int off = snprintf(target, sizeof target, "127.0.0.1:%d,", dead_port());
    target_of(target + off, sizeof target - (size_t)off, 2);
    rpc_channel_config cfg;
    channel_config(&cfg, target, 3);
    chan = channel_new(&cfg);
    lb_run(20, -1, -1);
    cr_expect_eq(lb.ok, 20, "failures: %s", lb.failures);
    cr_expect_eq(srv[0].calls + srv[1].calls, 20);
    cr_expect_geq(srv[0].calls, 5, "%d/%d", srv[0].calls, srv[1].calls);
    cr_expect_geq(srv[1].calls, 5, "%d/%d", srv[0].calls, srv[1].calls);
    teardown_all();
}

/* Two calls while the only server is down: the fail-fast one ends at once
 * with UNAVAILABLE and the connect error; the wait_for_ready one waits
 * through the reconnect backoff and succeeds once the server is back. */
static ccall wfr_call, ff_call;
static bool restart_due;

static void on_restart_timer(uv_timer_t *t)
{
    restart_due = true;
    uv_close((uv_handle_t *)t, NULL);
}

Test(rpc_client, wait_for_ready_outlives_connection_failures)
{
    setup_servers(1);
    shutdown_server(&srv[0], 0);
    run_until(&srv[0].down);
    chan = channel_to(1, 1);
    memset(&wfr_call, 0, sizeof wfr_call);
    memset(&ff_call, 0, sizeof ff_call);
    wfr_call.wait_for_ready = true;
    start_unary(&wfr_call, 5000, 0);
    start_unary(&ff_call, 5000, 0);
    static uv_timer_t t;
    uv_timer_init(&loop, &t);
    restart_due = false;
    uv_timer_start(&t, on_restart_timer, 300, 0);
    run_until(&restart_due);
    cr_expect(ff_call.done, "the fail-fast call ended while the server was down");
    cr_expect_eq(ff_call.code, RPC_UNAVAILABLE, "%d %s", ff_call.code, ff_call.msg);
    cr_expect(strstr(ff_call.msg, "refused") != NULL, "the reason: %s", ff_call.msg);
    cr_expect(!wfr_call.done, "the wait_for_ready call still waits (%d %s)", wfr_call.code,
              wfr_call.msg);
    restart_server(&srv[0], 0);
    run_until(&wfr_call.done);
    cr_expect_eq(wfr_call.code, RPC_OK, "%d %s", wfr_call.code, wfr_call.msg);
    cr_expect_eq(srv[0].calls, 1);
    teardown_all();
}

/* After a server restart, round robin must use its address again. Here
 * server 0 goes away and comes back on the same port while server 1 keeps
 * serving; calls after the restart should reach both. */
Test(rpc_client, restarted_server_gets_traffic_again)
{
    setup_servers(2);
    chan = channel_to(2, 3);
    lb_run(4, -1, -1);
    cr_assert_eq(lb.ok, 4, "failures: %s", lb.failures);
    cr_assert_eq(srv[0].calls, 2);
    shutdown_server(&srv[0], 0);
    run_until(&srv[0].down);
    lb_run(4, -1, -1);
    cr_expect_eq(lb.ok, 4, "failures: %s", lb.failures);
    restart_server(&srv[0], 0);
    run_for(500); /* a few reconnect backoffs (50 ms, x1.6) */
    int before = srv[1].calls;
    lb_run(20, -1, -1);
    cr_expect_eq(lb.ok, 20, "failures: %s", lb.failures);
    cr_expect_geq(srv[0].calls, 5, "the restarted server got %d of 20 calls (the other %d)",
                  srv[0].calls, srv[1].calls - before);
    teardown_all();
}

/* rpc_channel_free with a stream in flight: the call ends CANCELLED, then
 * the channel's done fires. */
static ccall free_stream;
static bool free_done;

static void on_free_done(void *arg)
{
    (void)arg;
    cr_expect(free_stream.done, "the call's status came before the channel's done");
    free_done = true;
}

static void free_on_first(ccall *cc)
{
    if (cc->nmsgs == 1) {
        rpc_channel_free(chan, on_free_done, NULL);
        chan = NULL;
    }
}

Test(rpc_client, channel_free_cancels_calls)
{
    setup_servers(1);
    chan = channel_to(1, 1);
    memset(&free_stream, 0, sizeof free_stream);
    free_done = false;
    free_stream.on_msg = free_on_first;
    Grpc__Testing__ResponseParameters rp = GRPC__TESTING__RESPONSE_PARAMETERS__INIT;
    Grpc__Testing__ResponseParameters *rpp[5] = {&rp, &rp, &rp, &rp, &rp};
    rp.size = 10;
    rp.interval_us = 50000;
    Grpc__Testing__StreamingOutputCallRequest req =
        GRPC__TESTING__STREAMING_OUTPUT_CALL_REQUEST__INIT;
    req.n_response_parameters = 5;
    req.response_parameters = rpp;
    rpc_client_call *c =
        rpc_channel_call(chan, STREAM, &grpc__testing__streaming_output_call_response__descriptor,
                         &stream_client, &free_stream, NULL);
    cr_assert_not_null(c);
    rpc_client_call_send(c, &req.base);
    rpc_client_call_close_send(c);
    run_until(&free_done);
    cr_expect_eq(free_stream.code, RPC_CANCELLED, "%d %s", free_stream.code, free_stream.msg);
    cr_expect_eq(free_stream.nmsgs, 1);
    teardown_all();
}

Test(rpc_client, response_larger_than_max_recv_msg)
{
    setup_servers(1);
    char target[64];
    target_of(target, sizeof target, 1);
    rpc_channel_config cfg;
    channel_config(&cfg, target, 3);
    cfg.max_recv_msg = 1000;
    chan = channel_new(&cfg);
    ccall cc;
    memset(&cc, 0, sizeof cc);
    cc.rsize = 900;
    start_unary(&cc, 5000, 0);
    run_until(&cc.done);
    cr_expect_eq(cc.code, RPC_OK, "%d %s", cc.code, cc.msg);
    memset(&cc, 0, sizeof cc);
    cc.rsize = 2000;
    start_unary(&cc, 5000, 0);
    run_until(&cc.done);
    cr_expect_eq(cc.code, RPC_RESOURCE_EXHAUSTED, "%d %s", cc.code, cc.msg);
    cr_expect_eq(cc.attempts, 1, "a committed call is not retried");
    cr_expect_eq(cc.nmsgs, 0);
    teardown_all();
}

/* Responses are held to proto3's string rules as requests are: a server
 * answering invalid UTF-8 fails the call INTERNAL naming the field, and the
 * handler never sees the message. */
Test(rpc_client, response_string_not_utf8)
{
    setup_servers(1);
    char target[64];
    target_of(target, sizeof target, 1);
    rpc_channel_config cfg;
    channel_config(&cfg, target, 3);
    chan = channel_new(&cfg);
    ccall cc;
    memset(&cc, 0, sizeof cc);
    srv[0].server_id = "s\xc0\x80";
    start_unary(&cc, 5000, 0);
    run_until(&cc.done);
    cr_expect_eq(cc.code, RPC_INTERNAL, "%d %s", cc.code, cc.msg);
    cr_expect_str_eq(cc.msg, "response field server_id: invalid UTF-8");
    cr_expect_eq(cc.nmsgs, 0);
    cr_expect_eq(cc.attempts, 1, "a committed call is not retried");
    srv[0].server_id = NULL;
    memset(&cc, 0, sizeof cc);
    start_unary(&cc, 5000, 0);
    run_until(&cc.done);
    cr_expect_eq(cc.code, RPC_OK, "the channel is fine: %d %s", cc.code, cc.msg);
    teardown_all();
}

/* GOAWAY race: calls started right after the server drained, before the
 * client read its GOAWAY, go out on the old connection and come back
 * REFUSED_STREAM (the server never saw them). gRFC A6 retries such calls
 * transparently, even with retries disabled (max_attempts 1). */
static struct race_run {
    ccall stream;
    ccall calls[10];
    int carrier;
    int ended;
    bool all_ended;
} race;

static void race_call_ended(ccall *cc)
{
    (void)cc;
    if (++race.ended == 10)
        race.all_ended = true;
}

static void race_on_stream_msg(ccall *cc)
{
    if (cc->nmsgs != 1)
        return;
    race.carrier = srv[0].streams ? 0 : 1;
    shutdown_server(&srv[race.carrier], 5000);
    for (int i = 0; i < 10; i++) {
        race.calls[i].then = race_call_ended;
        start_unary(&race.calls[i], 5000, 0);
    }
}

Test(rpc_client, refused_after_goaway_retried_transparently)
{
    setup_servers(2);
    chan = channel_to(2, 1);
    memset(&race, 0, sizeof race);
    ccall warm;
    unary_sync(&warm, 5000);
    unary_sync(&warm, 5000);
    cr_assert_eq(srv[0].calls + srv[1].calls, 2);

    Grpc__Testing__ResponseParameters rp = GRPC__TESTING__RESPONSE_PARAMETERS__INIT;
    Grpc__Testing__ResponseParameters *rpp[3] = {&rp, &rp, &rp};
    rp.size = 10;
    rp.interval_us = 30000;
    Grpc__Testing__StreamingOutputCallRequest req =
        GRPC__TESTING__STREAMING_OUTPUT_CALL_REQUEST__INIT;
    req.n_response_parameters = 3;
    req.response_parameters = rpp;
    race.stream.on_msg = race_on_stream_msg;
    rpc_client_call *c =
        rpc_channel_call(chan, STREAM, &grpc__testing__streaming_output_call_response__descriptor,
                         &stream_client, &race.stream, NULL);
    cr_assert_not_null(c);
    rpc_client_call_send(c, &req.base);
    rpc_client_call_close_send(c);
    run_until(&race.stream.done);
    run_until(&race.all_ended);
    cr_expect_eq(race.stream.code, RPC_OK, "%d %s", race.stream.code, race.stream.msg);
    int ok = 0;
    char failures[600] = "";
    for (int i = 0; i < 10; i++) {
        ccall *cc = &race.calls[i];
        if (cc->code == RPC_OK) {
            ok++;
            continue;
        }
        size_t n = strlen(failures);
        snprintf(failures + n, sizeof failures - n, "[%d: %d %s, %d attempt(s)] ", i, cc->code,
                 cc->msg, cc->attempts);
    }
    cr_expect_eq(ok, 10, "calls lost to the GOAWAY race: %s", failures);
    cr_expect_eq(srv[race.carrier].calls, 1, "the draining server saw no new call");
    teardown_all();
}
