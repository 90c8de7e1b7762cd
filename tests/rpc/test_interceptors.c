/* Server and client interceptors (src/rpc/intercept.c, call.c, client_call.c)
 * over loopback: an rpc_server with grpc.testing.TestService's four call
 * types (UnaryCall, StreamingInputCall, StreamingOutputCall, FullDuplexCall;
 * EmptyCall registered without a handler) and a channel on the same loop.
 *
 * Scripted server interceptors record what they see (path, names, type,
 * metadata, principal) and what on_end reports (status, counts), and continue,
 * reject, or decide later; the event log checks the order of on_start,
 * handler and on_end. The handler counts its callbacks, so that "the handler
 * sees nothing of a rejected call" is checked, on_free included. Client
 * interceptors and call credentials run against the same server;
 * allocation_failures fails every allocation of a scenario in turn.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "grpc/testing/messages.pb-c.h"
#include "grpc/testing/test.pb-c.h"
#include "base/alloc.h"
#include "rpc/rpc_client.h"

#define SVC     "grpc.testing.TestService"
#define UNARY   "/" SVC "/UnaryCall"
#define SSTREAM "/" SVC "/StreamingOutputCall"
#define CSTREAM "/" SVC "/StreamingInputCall"
#define BIDI    "/" SVC "/FullDuplexCall"
#define EMPTY   "/" SVC "/EmptyCall"
#define MAXIC   4

static uv_loop_t loop;
static uv_timer_t watchdog;
static rpc_server *rsrv;
static http2_server *h2;
static rpc_channel *chan;
static char target[64];
static char evlog[512]; /* "s0 s1 H e1 e0 ..." */

static void logev(const char *fmt, int id)
{
    size_t n = strlen(evlog);
    snprintf(evlog + n, sizeof evlog - n, fmt, id);
}

/* --- handlers ------------------------------------------------------------------ */

static struct {
    int calls;   /* first callback of a call */
    int msgs;    /* on_message */
    int frees;   /* on_free */
    int cancels; /* on_cancel */
    char principal[64];
} h;

static bool first_callback(rpc_call *c)
{
    if (rpc_call_data(c))
        return false;
    rpc_call_set_data(c, &h);
    h.calls++;
    logev("H ", 0);
    const rpc_principal *p = rpc_call_principal(c);
    snprintf(h.principal, sizeof h.principal, "%s", p ? p->subject : "");
    return true;
}

static void on_unary(rpc_call *c, const ProtobufCMessage *m)
{
    first_callback(c);
    h.msgs++;
    const Grpc__Testing__SimpleRequest *req = (const Grpc__Testing__SimpleRequest *)m;
    Grpc__Testing__SimpleResponse resp = GRPC__TESTING__SIMPLE_RESPONSE__INIT;
    Grpc__Testing__Payload p = GRPC__TESTING__PAYLOAD__INIT;
    p.body.len = (size_t)req->response_size;
    p.body.data = rpc_call_alloc(c, p.body.len + 1);
    if (!p.body.data) {
        rpc_call_finish(c, RPC_RESOURCE_EXHAUSTED, "out of memory");
        return;
    }
    resp.payload = &p;
    resp.username = h.principal;
    if (rpc_call_send(c, &resp.base) >= 0)
        rpc_call_finish(c, RPC_OK, NULL);
}

static void send_stream_resp(rpc_call *c, int32_t size)
{
    Grpc__Testing__StreamingOutputCallResponse resp =
        GRPC__TESTING__STREAMING_OUTPUT_CALL_RESPONSE__INIT;
    Grpc__Testing__Payload p = GRPC__TESTING__PAYLOAD__INIT;
    uint8_t body[256] = {0};
    p.body.data = body;
    p.body.len = (size_t)size < sizeof body ? (size_t)size : sizeof body;
    resp.payload = &p;
    cr_assert_geq(rpc_call_send(c, &resp.base), 0);
}

/* One response per ResponseParameters, all at once, then OK. */
static void on_sstream(rpc_call *c, const ProtobufCMessage *m)
{
    first_callback(c);
    h.msgs++;
    const Grpc__Testing__StreamingOutputCallRequest *req =
        (const Grpc__Testing__StreamingOutputCallRequest *)m;
    for (size_t i = 0; i < req->n_response_parameters; i++)
        send_stream_resp(c, req->response_parameters[i]->size);
    rpc_call_finish(c, RPC_OK, NULL);
}

static int32_t aggregated;

static void on_cstream(rpc_call *c, const ProtobufCMessage *m)
{
    first_callback(c);
    h.msgs++;
    const Grpc__Testing__StreamingInputCallRequest *req =
        (const Grpc__Testing__StreamingInputCallRequest *)m;
    aggregated += req->payload ? (int32_t)req->payload->body.len : 0;
}

static void on_cstream_end(rpc_call *c)
{
    first_callback(c);
    Grpc__Testing__StreamingInputCallResponse resp =
        GRPC__TESTING__STREAMING_INPUT_CALL_RESPONSE__INIT;
    resp.aggregated_payload_size = aggregated;
    if (rpc_call_send(c, &resp.base) >= 0)
        rpc_call_finish(c, RPC_OK, NULL);
}

/* Echoes one response per request. */
static void on_bidi(rpc_call *c, const ProtobufCMessage *m)
{
    first_callback(c);
    h.msgs++;
    const Grpc__Testing__StreamingOutputCallRequest *req =
        (const Grpc__Testing__StreamingOutputCallRequest *)m;
    send_stream_resp(c, req->n_response_parameters ? req->response_parameters[0]->size : 0);
}

static void on_bidi_end(rpc_call *c)
{
    first_callback(c);
    rpc_call_finish(c, RPC_OK, NULL);
}

static void on_free(rpc_call *c)
{
    (void)c;
    h.frees++;
}

static void on_cancel(rpc_call *c, rpc_status code)
{
    (void)c;
    (void)code;
    h.cancels++;
}

static const rpc_method_ops unary_ops = {
    .on_message = on_unary, .on_free = on_free, .on_cancel = on_cancel};
static const rpc_method_ops sstream_ops = {.flags = RPC_SERVER_STREAMING,
                                           .on_message = on_sstream,
                                           .on_free = on_free,
                                           .on_cancel = on_cancel};
static const rpc_method_ops cstream_ops = {.flags = RPC_CLIENT_STREAMING,
                                           .on_message = on_cstream,
                                           .on_half_close = on_cstream_end,
                                           .on_free = on_free,
                                           .on_cancel = on_cancel};
static const rpc_method_ops bidi_ops = {.flags = RPC_CLIENT_STREAMING | RPC_SERVER_STREAMING,
                                        .on_message = on_bidi,
                                        .on_half_close = on_bidi_end,
                                        .on_free = on_free,
                                        .on_cancel = on_cancel};

/* --- scripted server interceptors ------------------------------------------------ */

typedef enum act {
    ACT_CONTINUE,
    ACT_REJECT,         /* rpc_call_reject(code) in on_start, message from the stack */
    ACT_REJECT_FIRST,   /* reject the first reject_n calls, continue after */
    ACT_PENDING,        /* ref the call, keep it in pending, return PENDING */
    ACT_PROCEED_INSIDE, /* rpc_call_proceed() inside on_start, then return PENDING */
} act;

typedef struct tic {
    int id;
    act act;
    rpc_status code; /* for rejects */
    int reject_n;
    bool set_principal;
    int starts, ends;
    rpc_call *pending; /* ACT_PENDING: referenced */
    bool pending_set;
    bool ended;
    /* seen in the last on_start */
    char path[128], service[64], method[64], peer[64], x_test[64], principal[64];
    rpc_call_type type;
    int remaining_ms_set;
    char auth[4][64]; /* authorization of each call (retries) */
    int nauth;
    /* from the last on_end */
    rpc_call_stats st;
    char end_msg[128];
    char end_principal[64];
} tic;

static tic tics[MAXIC];

static void copy_md(const rpc_call *c, const char *key, char *out, size_t n)
{
    size_t len;
    const uint8_t *v = rpc_metadata_get(rpc_call_metadata(c), key, &len);
    snprintf(out, n, "%.*s", v ? (int)len : 0, v ? (const char *)v : "");
}

static rpc_intercept_action tic_start(rpc_call *c, void *data, void **state)
{
    tic *t = data;
    cr_assert_null(*state, "the slot starts empty");
    *state = t;
    t->starts++;
    logev("s%d ", t->id);
    snprintf(t->path, sizeof t->path, "%s", rpc_call_path(c));
    snprintf(t->service, sizeof t->service, "%s", rpc_call_service(c));
    snprintf(t->method, sizeof t->method, "%s", rpc_call_method(c));
    snprintf(t->peer, sizeof t->peer, "%s", rpc_call_peer(c));
    t->type = rpc_call_get_type(c);
    t->remaining_ms_set = rpc_call_remaining_ms(c) > 0;
    copy_md(c, "x-test", t->x_test, sizeof t->x_test);
    if (t->nauth < 4)
        copy_md(c, "authorization", t->auth[t->nauth++], sizeof t->auth[0]);
    const rpc_principal *p = rpc_call_principal(c);
    snprintf(t->principal, sizeof t->principal, "%s", p ? p->subject : "");
    if (t->set_principal) {
        const char *scopes[] = {"orders:read"};
        rpc_principal np = {
            .source = RPC_PRINCIPAL_TOKEN, .subject = "alice", .scopes = scopes, .n_scopes = 1};
        int rv = rpc_call_set_principal(c, &np);
        if (rv == RPC_ENOMEM) { /* allocation_failures */
            rpc_call_reject(c, RPC_RESOURCE_EXHAUSTED, "out of memory");
            return RPC_INTERCEPT_CONTINUE;
        }
        cr_assert_eq(rv, 0);
    }
    switch (t->act) {
    case ACT_CONTINUE:
        return RPC_INTERCEPT_CONTINUE;
    case ACT_REJECT_FIRST:
        if (t->starts > t->reject_n)
            return RPC_INTERCEPT_CONTINUE;
        /* fall through */
    case ACT_REJECT: {
        char msg[64]; /* gone when on_end runs: rpc copies it */
        snprintf(msg, sizeof msg, "rejected by %d", t->id);
        int ends = t->ends;
        cr_assert_eq(rpc_call_reject(c, t->code, msg), 0);
        cr_assert_eq(t->ends, ends, "on_end waits for on_start to return");
        memset(msg, 'X', sizeof msg - 1);
        return RPC_INTERCEPT_CONTINUE; /* ignored */
    }
    case ACT_PENDING:
        rpc_call_ref(c);
        t->pending = c;
        t->pending_set = true;
        return RPC_INTERCEPT_PENDING;
    case ACT_PROCEED_INSIDE:
        cr_assert_eq(rpc_call_proceed(c), 0);
        return RPC_INTERCEPT_PENDING;
    }
    return RPC_INTERCEPT_CONTINUE;
}

static void tic_end(rpc_call *c, void *data, void *state, const rpc_call_stats *st)
{
    tic *t = data;
    cr_assert_eq(state, t, "the slot comes back");
    cr_assert(rpc_call_done(c));
    t->ends++;
    t->ended = true;
    logev("e%d ", t->id);
    t->st = *st;
    snprintf(t->end_msg, sizeof t->end_msg, "%s", st->message ? st->message : "");
    snprintf(t->end_principal, sizeof t->end_principal, "%s",
             st->principal ? st->principal->subject : "");
    t->st.message = NULL;
    t->st.principal = NULL;
    /* Decisions after the end are no-ops. */
    cr_assert_eq(rpc_call_proceed(c), RPC_ECANCELLED);
    cr_assert_eq(rpc_call_reject(c, RPC_INTERNAL, "late"), RPC_ECANCELLED);
}

static const rpc_interceptor tic_ops = {.name = "test", .on_start = tic_start, .on_end = tic_end};

/* --- scripted client interceptors -------------------------------------------------- */

typedef struct cic {
    int id;
    bool add_md; /* x-client-ic: c<id> (joined by later ones' values) */
    bool fail;   /* rpc_client_call_fail(FAILED_PRECONDITION) */
    int starts, ends;
    size_t nmd_seen; /* request metadata count at on_start */
    char path[128];
    rpc_call_stats st;
    char end_msg[128];
} cic;

static cic cics[MAXIC];

static void cic_start(rpc_client_call *c, void *data)
{
    cic *t = data;
    t->starts++;
    logev("cs%d ", t->id);
    t->nmd_seen = rpc_client_call_metadata(c).count;
    snprintf(t->path, sizeof t->path, "%s", rpc_client_call_path(c));
    if (t->add_md) {
        char v[8];
        snprintf(v, sizeof v, "c%d", t->id);
        cr_assert_eq(rpc_client_call_add_md(c, "x-client-ic", (const uint8_t *)v, strlen(v)), 0);
        cr_assert_eq(rpc_client_call_add_md(c, "Bad Key", (const uint8_t *)v, 1), RPC_EINVAL);
        cr_assert_eq(rpc_client_call_add_md(c, "grpc-timeout", (const uint8_t *)"1S", 2),
                     RPC_EINVAL);
        cr_assert_eq(rpc_client_call_add_md(c, "x-nl", (const uint8_t *)"a\nb", 3), RPC_EINVAL);
    }
    if (t->fail)
        rpc_client_call_fail(c, RPC_FAILED_PRECONDITION, "failed locally");
}

static void cic_end(rpc_client_call *c, void *data, const rpc_call_stats *st)
{
    (void)c;
    cic *t = data;
    t->ends++;
    logev("ce%d ", t->id);
    t->st = *st;
    snprintf(t->end_msg, sizeof t->end_msg, "%s", st->message ? st->message : "");
    t->st.message = NULL;
    cr_assert_null(st->principal);
}

static const rpc_client_interceptor cic_ops = {
    .name = "ctest", .on_start = cic_start, .on_end = cic_end};

/* --- harness ------------------------------------------------------------------------ */

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

static int method_index(const char *name)
{
    const ProtobufCServiceDescriptor *d = &grpc__testing__test_service__descriptor;
    const ProtobufCMethodDescriptor *m = protobuf_c_service_descriptor_get_method_by_name(d, name);
    cr_assert_not_null(m, "%s", name);
    return (int)(m - d->methods);
}

/* A server with n scripted interceptors tics[0..n). */
static void setup_server(int n)
{
    char err[256];
    memset(&h, 0, sizeof h);
    memset(tics, 0, sizeof tics);
    memset(cics, 0, sizeof cics);
    evlog[0] = '\0';
    aggregated = 0;
    cr_assert_eq(uv_loop_init(&loop), 0);
    rpc_server_config rcfg;
    rpc_server_config_init(&rcfg);
    rsrv = rpc_server_new(&rcfg);
    cr_assert_not_null(rsrv);
    const rpc_method_ops *ops[16] = {0};
    ops[method_index("UnaryCall")] = &unary_ops;
    ops[method_index("StreamingOutputCall")] = &sstream_ops;
    ops[method_index("StreamingInputCall")] = &cstream_ops;
    ops[method_index("FullDuplexCall")] = &bidi_ops;
    rpc_service_impl impl = {.desc = &grpc__testing__test_service__descriptor, .ops = ops};
    cr_assert_eq(rpc_server_add_service(rsrv, &impl), 0);
    for (int i = 0; i < n; i++) {
        tics[i].id = i;
        cr_assert_eq(rpc_server_add_interceptor(rsrv, &tic_ops, &tics[i]), 0);
    }
    rpc_interceptor bad = {.name = "no on_start"};
    cr_assert_eq(rpc_server_add_interceptor(rsrv, &bad, NULL), RPC_EINVAL);

    http2_server_config hcfg;
    http2_server_config_init(&hcfg);
    hcfg.host = "127.0.0.1";
    hcfg.port = 0;
    hcfg.tls = 0;
    hcfg.handler = rpc_server_stream_handler();
    hcfg.handler_data = rsrv;
    cr_assert_eq(http2_server_new(&loop, &hcfg, &h2, err, sizeof err), 0, "%s", err);
    cr_assert_eq(http2_server_start(h2), 0);
    snprintf(target, sizeof target, "127.0.0.1:%d", http2_server_port(h2));
    uv_timer_init(&loop, &watchdog);
    uv_timer_start(&watchdog, on_watchdog, 20000, 0);
}

static void channel_config(rpc_channel_config *cfg)
{
    rpc_channel_config_init(cfg);
    cfg->target = target;
    cfg->tls = false;
    cfg->retry.initial_backoff_ms = 10;
    cfg->retry.max_backoff_ms = 20;
}

/* A channel with n scripted client interceptors cics[0..n). */
static void open_channel(int n)
{
    char err[256];
    rpc_channel_config cfg;
    channel_config(&cfg);
    chan = rpc_channel_new(&loop, &cfg, err, sizeof err);
    cr_assert_not_null(chan, "%s", err);
    for (int i = 0; i < n; i++) {
        cics[i].id = i;
        cr_assert_eq(rpc_channel_add_interceptor(chan, &cic_ops, &cics[i]), 0);
    }
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

static void teardown_all(void)
{
    if (chan) {
        bool freed = false;
        rpc_channel_free(chan, on_flag, &freed);
        run_until(&freed);
        chan = NULL;
    }
    bool down = false;
    http2_server_shutdown(h2, 0, on_down, &down);
    run_until(&down);
    uv_timer_stop(&watchdog);
    uv_close((uv_handle_t *)&watchdog, NULL);
    uv_run(&loop, UV_RUN_DEFAULT);
    http2_server_free(h2);
    cr_assert_eq(rpc_server_active_calls(rsrv), 0, "every call freed");
    rpc_server_free(rsrv);
    cr_assert_eq(uv_loop_close(&loop), 0, "every handle closed");
}

/* --- client calls ----------------------------------------------------------------------- */

typedef struct ccall {
    rpc_client_call *c;
    bool done;
    rpc_status code;
    char msg[256];
    int nmsgs;
    int attempts;
    char username[64];
    int32_t aggregated;
} ccall;

static void cc_on_message(rpc_client_call *c, const ProtobufCMessage *m)
{
    ccall *cc = rpc_client_call_data(c);
    cc->nmsgs++;
    if (m->descriptor == &grpc__testing__simple_response__descriptor)
        snprintf(cc->username, sizeof cc->username, "%s",
                 ((const Grpc__Testing__SimpleResponse *)m)->username);
    if (m->descriptor == &grpc__testing__streaming_input_call_response__descriptor)
        cc->aggregated =
            ((const Grpc__Testing__StreamingInputCallResponse *)m)->aggregated_payload_size;
}

static void cc_on_status(rpc_client_call *c, rpc_status code, const char *message,
                         const rpc_metadata *trailers)
{
    (void)trailers;
    ccall *cc = rpc_client_call_data(c);
    cc->code = code;
    cc->attempts = rpc_client_call_attempts(c);
    snprintf(cc->msg, sizeof cc->msg, "%s", message);
    cc->done = true;
    cc->c = NULL;
}

static const rpc_client_ops cc_ops = {.on_message = cc_on_message, .on_status = cc_on_status};

static void start(ccall *cc, const char *path, const ProtobufCMessageDescriptor *resp,
                  uint64_t timeout_ms, const rpc_md *md, size_t nmd)
{
    memset(cc, 0, sizeof *cc);
    rpc_call_opts o = {.timeout_ms = timeout_ms, .md = md, .nmd = nmd};
    cc->c = rpc_channel_call(chan, path, resp, &cc_ops, cc, &o);
    cr_assert_not_null(cc->c);
}

static Grpc__Testing__SimpleRequest unary_req(Grpc__Testing__Payload *p, uint8_t *body, size_t n)
{
    *p = (Grpc__Testing__Payload)GRPC__TESTING__PAYLOAD__INIT;
    p->body.data = body;
    p->body.len = n;
    Grpc__Testing__SimpleRequest req = GRPC__TESTING__SIMPLE_REQUEST__INIT;
    req.payload = p;
    req.response_size = 10;
    return req;
}

/* A UnaryCall with metadata x-test: hello; returns the request's packed size. */
static size_t start_unary(ccall *cc, uint64_t timeout_ms)
{
    rpc_md md[] = {{"x-test", (const uint8_t *)"hello", 5}};
    start(cc, UNARY, &grpc__testing__simple_response__descriptor, timeout_ms, md, 1);
    uint8_t body[20] = {0};
    Grpc__Testing__Payload p;
    Grpc__Testing__SimpleRequest req = unary_req(&p, body, sizeof body);
    cr_assert_geq(rpc_client_call_send(cc->c, &req.base), 0);
    cr_assert_eq(rpc_client_call_close_send(cc->c), 0);
    return protobuf_c_message_get_packed_size(&req.base);
}

/* The wire size of the unary response to start_unary's request (10 zero
 * bytes of payload; username as the handler sets it). */
static size_t unary_resp_size(const char *username)
{
    uint8_t body[10] = {0};
    Grpc__Testing__Payload p = GRPC__TESTING__PAYLOAD__INIT;
    p.body.data = body;
    p.body.len = sizeof body;
    Grpc__Testing__SimpleResponse resp = GRPC__TESTING__SIMPLE_RESPONSE__INIT;
    resp.payload = &p;
    resp.username = (char *)username;
    return protobuf_c_message_get_packed_size(&resp.base);
}

static size_t stream_resp_size(int32_t size)
{
    uint8_t body[256] = {0};
    Grpc__Testing__Payload p = GRPC__TESTING__PAYLOAD__INIT;
    p.body.data = body;
    p.body.len = (size_t)size;
    Grpc__Testing__StreamingOutputCallResponse resp =
        GRPC__TESTING__STREAMING_OUTPUT_CALL_RESPONSE__INIT;
    resp.payload = &p;
    return protobuf_c_message_get_packed_size(&resp.base);
}

/* Sends n StreamingOutputCallRequests asking for one response of size
 * 10*(i+1) each (bidi) or one request asking for n responses (server
 * streaming); returns the request bytes on the wire. */
static uint64_t send_output_reqs(ccall *cc, int n, bool one_request)
{
    uint64_t bytes = 0;
    Grpc__Testing__ResponseParameters rp[8];
    Grpc__Testing__ResponseParameters *rpp[8];
    for (int i = 0; i < n; i++) {
        rp[i] = (Grpc__Testing__ResponseParameters)GRPC__TESTING__RESPONSE_PARAMETERS__INIT;
        rp[i].size = 10 * (i + 1);
        rpp[i] = &rp[i];
    }
    for (int i = 0; i < (one_request ? 1 : n); i++) {
        Grpc__Testing__StreamingOutputCallRequest req =
            GRPC__TESTING__STREAMING_OUTPUT_CALL_REQUEST__INIT;
        req.n_response_parameters = one_request ? (size_t)n : 1;
        req.response_parameters = one_request ? rpp : &rpp[i];
        cr_assert_geq(rpc_client_call_send(cc->c, &req.base), 0);
        bytes += 5 + protobuf_c_message_get_packed_size(&req.base);
    }
    cr_assert_eq(rpc_client_call_close_send(cc->c), 0);
    return bytes;
}

/* Sends n StreamingInputCallRequests with payloads of i+1 bytes. */
static uint64_t send_input_reqs(ccall *cc, int n, bool close)
{
    uint64_t bytes = 0;
    for (int i = 0; i < n; i++) {
        uint8_t body[16] = {0};
        Grpc__Testing__Payload p = GRPC__TESTING__PAYLOAD__INIT;
        p.body.data = body;
        p.body.len = (size_t)i + 1;
        Grpc__Testing__StreamingInputCallRequest req =
            GRPC__TESTING__STREAMING_INPUT_CALL_REQUEST__INIT;
        req.payload = &p;
        cr_assert_geq(rpc_client_call_send(cc->c, &req.base), 0);
        bytes += 5 + protobuf_c_message_get_packed_size(&req.base);
    }
    if (close)
        cr_assert_eq(rpc_client_call_close_send(cc->c), 0);
    return bytes;
}

/* --- order, metadata, what interceptors see ------------------------------------------- */

Test(rpc_interceptors, order_metadata_and_unary_counts)
{
    setup_server(3);
    open_channel(0);
    ccall cc;
    size_t reqlen = start_unary(&cc, 5000);
    run_until(&cc.done);
    cr_expect_eq(cc.code, RPC_OK, "%d %s", cc.code, cc.msg);
    cr_expect_str_eq(evlog, "s0 s1 s2 H e2 e1 e0 ");
    for (int i = 0; i < 3; i++) {
        tic *t = &tics[i];
        cr_expect_eq(t->starts, 1);
        cr_expect_eq(t->ends, 1);
        cr_expect_str_eq(t->path, UNARY);
        cr_expect_str_eq(t->service, SVC);
        cr_expect_str_eq(t->method, "UnaryCall");
        cr_expect_eq(t->type, RPC_CALL_UNARY);
        cr_expect_str_eq(t->x_test, "hello");
        cr_expect_eq(strncmp(t->peer, "127.0.0.1:", 10), 0, "peer %s", t->peer);
        cr_expect(t->remaining_ms_set, "the deadline is known before the handler");
        cr_expect_eq(t->st.code, RPC_OK);
        cr_expect_eq(t->st.msgs_received, 1);
        cr_expect_eq(t->st.bytes_received, 5 + reqlen);
        cr_expect_eq(t->st.msgs_sent, 1);
        cr_expect_eq(t->st.bytes_sent, 5 + unary_resp_size(""));
        cr_expect_gt(t->st.duration_ns, 0);
    }
    cr_expect_eq(h.calls, 1);
    cr_expect_eq(h.frees, 1);
    teardown_all();
}

Test(rpc_interceptors, principal_attached_and_read_by_handler)
{
    setup_server(2);
    tics[0].set_principal = true;
    open_channel(0);
    ccall cc;
    start_unary(&cc, 0);
    run_until(&cc.done);
    cr_expect_eq(cc.code, RPC_OK, "%d %s", cc.code, cc.msg);
    cr_expect_str_eq(tics[0].principal, "", "nothing attached before it");
    cr_expect_str_eq(tics[1].principal, "alice", "a later interceptor reads it");
    cr_expect_str_eq(h.principal, "alice", "and the handler");
    cr_expect_str_eq(cc.username, "alice");
    cr_expect_str_eq(tics[0].end_principal, "alice", "on_end reports it");
    cr_expect_eq(tics[0].st.bytes_sent, 5 + unary_resp_size("alice"));
    cr_expect(!tics[1].remaining_ms_set, "no deadline");
    teardown_all();
}

/* --- rejections ------------------------------------------------------------------------- */

Test(rpc_interceptors, early_reject_skips_later_ones_and_handler)
{
    setup_server(3);
    tics[1].act = ACT_REJECT;
    tics[1].code = RPC_PERMISSION_DENIED;
    open_channel(0);
    ccall cc;
    start_unary(&cc, 0);
    run_until(&cc.done);
    cr_expect_eq(cc.code, RPC_PERMISSION_DENIED);
    cr_expect_str_eq(cc.msg, "rejected by 1");
    cr_expect_str_eq(evlog, "s0 s1 e1 e0 ");
    cr_expect_eq(tics[2].starts, 0);
    cr_expect_eq(tics[2].ends, 0);
    for (int i = 0; i < 2; i++) {
        cr_expect_eq(tics[i].ends, 1);
        cr_expect_eq(tics[i].st.code, RPC_PERMISSION_DENIED);
        cr_expect_str_eq(tics[i].end_msg, "rejected by 1", "copied before on_start returned");
        cr_expect_eq(tics[i].st.msgs_sent, 0);
    }
    cr_expect_eq(h.calls, 0, "the handler never ran");
    cr_expect_eq(h.frees, 0, "nor was its on_free called");
    cr_expect_eq(h.cancels, 0);
    teardown_all();
}

Test(rpc_interceptors, reject_streaming_call_drops_requests)
{
    setup_server(1);
    tics[0].act = ACT_REJECT;
    tics[0].code = RPC_UNAUTHENTICATED;
    open_channel(0);
    ccall cc;
    start(&cc, CSTREAM, &grpc__testing__streaming_input_call_response__descriptor, 0, NULL, 0);
    send_input_reqs(&cc, 5, true);
    run_until(&cc.done);
    cr_expect_eq(cc.code, RPC_UNAUTHENTICATED);
    cr_expect_eq(h.calls + h.msgs + h.frees, 0);
    cr_expect_eq(tics[0].ends, 1);
    teardown_all();
}

/* --- every call type ---------------------------------------------------------------------- */

Test(rpc_interceptors, client_streaming_counts)
{
    setup_server(1);
    open_channel(1);
    ccall cc;
    start(&cc, CSTREAM, &grpc__testing__streaming_input_call_response__descriptor, 0, NULL, 0);
    uint64_t sent = send_input_reqs(&cc, 3, true);
    run_until(&cc.done);
    cr_expect_eq(cc.code, RPC_OK, "%d %s", cc.code, cc.msg);
    cr_expect_eq(cc.aggregated, 6);
    tic *t = &tics[0];
    cr_expect_eq(t->type, RPC_CALL_CLIENT_STREAMING);
    cr_expect_eq(t->st.msgs_received, 3);
    cr_expect_eq(t->st.bytes_received, sent);
    cr_expect_eq(t->st.msgs_sent, 1);
    Grpc__Testing__StreamingInputCallResponse r =
        GRPC__TESTING__STREAMING_INPUT_CALL_RESPONSE__INIT;
    r.aggregated_payload_size = 6;
    cr_expect_eq(t->st.bytes_sent, 5 + protobuf_c_message_get_packed_size(&r.base));
    /* The client's view matches. */
    cr_expect_eq(cics[0].st.msgs_sent, 3);
    cr_expect_eq(cics[0].st.bytes_sent, sent);
    cr_expect_eq(cics[0].st.msgs_received, 1);
    cr_expect_eq(cics[0].st.bytes_received, t->st.bytes_sent);
    cr_expect_eq(cics[0].st.code, RPC_OK);
    cr_expect_eq(h.frees, 1);
    teardown_all();
}

Test(rpc_interceptors, server_streaming_counts)
{
    setup_server(1);
    open_channel(1);
    ccall cc;
    start(&cc, SSTREAM, &grpc__testing__streaming_output_call_response__descriptor, 0, NULL, 0);
    uint64_t sent = send_output_reqs(&cc, 4, true);
    run_until(&cc.done);
    cr_expect_eq(cc.code, RPC_OK, "%d %s", cc.code, cc.msg);
    cr_expect_eq(cc.nmsgs, 4);
    tic *t = &tics[0];
    cr_expect_eq(t->type, RPC_CALL_SERVER_STREAMING);
    cr_expect_eq(t->st.msgs_received, 1);
    cr_expect_eq(t->st.bytes_received, sent);
    cr_expect_eq(t->st.msgs_sent, 4);
    uint64_t want = 0;
    for (int i = 0; i < 4; i++)
        want += 5 + stream_resp_size(10 * (i + 1));
    cr_expect_eq(t->st.bytes_sent, want);
    cr_expect_eq(cics[0].st.msgs_received, 4);
    cr_expect_eq(cics[0].st.bytes_received, want);
    cr_expect_eq(cics[0].st.msgs_sent, 1);
    teardown_all();
}

Test(rpc_interceptors, bidi_streaming_counts)
{
    setup_server(2);
    open_channel(1);
    ccall cc;
    start(&cc, BIDI, &grpc__testing__streaming_output_call_response__descriptor, 0, NULL, 0);
    uint64_t sent = send_output_reqs(&cc, 3, false);
    run_until(&cc.done);
    cr_expect_eq(cc.code, RPC_OK, "%d %s", cc.code, cc.msg);
    cr_expect_eq(cc.nmsgs, 3);
    for (int i = 0; i < 2; i++) {
        tic *t = &tics[i];
        cr_expect_eq(t->type, RPC_CALL_BIDI_STREAMING);
        cr_expect_eq(t->st.msgs_received, 3);
        cr_expect_eq(t->st.bytes_received, sent);
        cr_expect_eq(t->st.msgs_sent, 3);
        cr_expect_eq(t->st.code, RPC_OK);
    }
    cr_expect_eq(cics[0].st.msgs_sent, 3);
    cr_expect_eq(cics[0].st.bytes_sent, sent);
    cr_expect_eq(cics[0].st.bytes_received, tics[0].st.bytes_sent);
    cr_expect_str_eq(evlog, "cs0 s0 s1 H e1 e0 ce0 ");
    teardown_all();
}

/* --- unknown and unimplemented methods ------------------------------------------------------ */

Test(rpc_interceptors, unknown_method_goes_through_the_chain)
{
    setup_server(2);
    open_channel(0);
    ccall cc;
    start(&cc, "/nope.Svc/Nothing", &grpc__testing__empty__descriptor, 0, NULL, 0);
    Grpc__Testing__Empty e = GRPC__TESTING__EMPTY__INIT;
    rpc_client_call_send(cc.c, &e.base);
    rpc_client_call_close_send(cc.c);
    run_until(&cc.done);
    cr_expect_eq(cc.code, RPC_UNIMPLEMENTED);
    cr_expect_str_eq(cc.msg, "unknown method: /nope.Svc/Nothing");
    cr_expect_str_eq(evlog, "s0 s1 e1 e0 ");
    cr_expect_str_eq(tics[0].service, "nope.Svc");
    cr_expect_str_eq(tics[0].method, "Nothing");
    cr_expect_eq(tics[0].type, RPC_CALL_UNKNOWN);
    cr_expect_eq(tics[1].st.code, RPC_UNIMPLEMENTED);
    cr_expect_eq(tics[1].st.msgs_received, 0, "held, never read");

    /* A registered method without a handler, and a malformed path. */
    start(&cc, EMPTY, &grpc__testing__empty__descriptor, 0, NULL, 0);
    rpc_client_call_send(cc.c, &e.base);
    rpc_client_call_close_send(cc.c);
    run_until(&cc.done);
    cr_expect_eq(cc.code, RPC_UNIMPLEMENTED);
    cr_expect_str_eq(cc.msg, "method not implemented: " EMPTY);
    cr_expect_str_eq(tics[0].service, SVC);
    cr_expect_str_eq(tics[0].method, "EmptyCall");
    cr_expect_eq(tics[0].type, RPC_CALL_UNKNOWN);

    start(&cc, "/nonsense", &grpc__testing__empty__descriptor, 0, NULL, 0);
    rpc_client_call_close_send(cc.c);
    run_until(&cc.done);
    cr_expect_eq(cc.code, RPC_UNIMPLEMENTED);
    cr_expect_str_eq(tics[0].service, "");
    cr_expect_str_eq(tics[0].method, "");
    cr_expect_eq(tics[0].ends, 3);
    cr_expect_eq(h.calls + h.frees, 0);
    teardown_all();
}

Test(rpc_interceptors, unknown_method_rejected_first)
{
    setup_server(1);
    tics[0].act = ACT_REJECT;
    tics[0].code = RPC_UNAUTHENTICATED;
    open_channel(0);
    ccall cc;
    start(&cc, "/nope.Svc/Nothing", &grpc__testing__empty__descriptor, 0, NULL, 0);
    rpc_client_call_close_send(cc.c);
    run_until(&cc.done);
    cr_expect_eq(cc.code, RPC_UNAUTHENTICATED, "no probing of the method table");
    teardown_all();
}

/* --- asynchronous decisions --------------------------------------------------------------------
 */

Test(rpc_interceptors, pending_then_proceed_delivers_held_requests)
{
    setup_server(2);
    tics[0].act = ACT_PENDING;
    open_channel(0);
    ccall cc;
    start(&cc, CSTREAM, &grpc__testing__streaming_input_call_response__descriptor, 0, NULL, 0);
    uint64_t sent = send_input_reqs(&cc, 4, true);
    run_until(&tics[0].pending_set);
    /* Let the requests and the half-close arrive while the decision waits. */
    for (int i = 0; i < 20; i++)
        uv_run(&loop, UV_RUN_NOWAIT);
    cr_expect_eq(tics[1].starts, 0, "the next interceptor waits");
    cr_expect_eq(h.calls + h.msgs, 0, "the handler sees nothing yet");
    cr_expect(!cc.done);
    rpc_call *c = tics[0].pending;
    cr_expect_eq(rpc_call_proceed(c), 0);
    cr_expect_neq(rpc_call_proceed(c), 0, "decided already");
    rpc_call_unref(c);
    run_until(&cc.done);
    cr_expect_eq(cc.code, RPC_OK, "%d %s", cc.code, cc.msg);
    cr_expect_eq(cc.aggregated, 1 + 2 + 3 + 4, "every held request, once");
    cr_expect_eq(h.msgs, 4);
    cr_expect_eq(tics[0].st.msgs_received, 4);
    cr_expect_eq(tics[0].st.bytes_received, sent);
    cr_expect_str_eq(evlog, "s0 s1 H e1 e0 ");
    teardown_all();
}

Test(rpc_interceptors, pending_then_reject)
{
    setup_server(2);
    tics[1].act = ACT_PENDING;
    open_channel(0);
    ccall cc;
    start_unary(&cc, 0);
    run_until(&tics[1].pending_set);
    rpc_call *c = tics[1].pending;
    cr_expect_eq(rpc_call_reject(c, RPC_OK, "no"), RPC_EINVAL, "a reject needs an error code");
    cr_expect_eq(rpc_call_reject(c, RPC_UNAUTHENTICATED, "token expired"), 0);
    cr_expect_eq(rpc_call_proceed(c), RPC_ECANCELLED, "a late proceed is a no-op");
    rpc_call_unref(c);
    run_until(&cc.done);
    cr_expect_eq(cc.code, RPC_UNAUTHENTICATED);
    cr_expect_str_eq(cc.msg, "token expired");
    cr_expect_str_eq(evlog, "s0 s1 e1 e0 ");
    cr_expect_eq(h.calls + h.frees, 0);
    teardown_all();
}

Test(rpc_interceptors, proceed_inside_on_start)
{
    setup_server(2);
    tics[0].act = ACT_PROCEED_INSIDE;
    open_channel(0);
    ccall cc;
    start_unary(&cc, 0);
    run_until(&cc.done);
    cr_expect_eq(cc.code, RPC_OK, "%d %s", cc.code, cc.msg);
    cr_expect_str_eq(evlog, "s0 s1 H e1 e0 ");
    teardown_all();
}

Test(rpc_interceptors, client_cancel_while_pending)
{
    setup_server(2);
    tics[0].act = ACT_PENDING;
    open_channel(0);
    ccall cc;
    start(&cc, BIDI, &grpc__testing__streaming_output_call_response__descriptor, 0, NULL, 0);
    send_output_reqs(&cc, 2, false);
    run_until(&tics[0].pending_set);
    rpc_client_call_cancel(cc.c);
    run_until(&tics[0].ended);
    cr_expect_eq(tics[0].ends, 1);
    cr_expect_eq(tics[0].st.code, RPC_CANCELLED);
    cr_expect_eq(tics[1].starts + tics[1].ends, 0);
    rpc_call *c = tics[0].pending;
    cr_expect_eq(rpc_call_proceed(c), RPC_ECANCELLED, "late proceed: harmless");
    cr_expect_eq(rpc_call_reject(c, RPC_INTERNAL, "late"), RPC_ECANCELLED);
    rpc_call_unref(c); /* frees it */
    run_until(&cc.done);
    cr_expect_eq(cc.code, RPC_CANCELLED);
    cr_expect_eq(h.calls + h.msgs + h.frees + h.cancels, 0, "the handler saw nothing");
    cr_expect_eq(tics[0].ends, 1, "once");
    teardown_all();
}

/* A raw HTTP/2 request with grpc-timeout whose client never cancels (the rpc
 * client's own deadline timer would race the server's): only the server's
 * deadline can end it. */
typedef struct raw_call {
    http2_client *cl;
    http2_stream *s;
    char status[8]; /* grpc-status of the answer */
    bool closed, freed;
} raw_call;

static void raw_on_response(http2_stream *s, const http2_header *hd, size_t n)
{
    raw_call *r = http2_stream_data(s);
    for (size_t i = 0; i < n; i++)
        if (hd[i].namelen == 11 && memcmp(hd[i].name, "grpc-status", 11) == 0)
            snprintf(r->status, sizeof r->status, "%.*s", (int)hd[i].valuelen, hd[i].value);
}

static void raw_on_data(http2_stream *s, const uint8_t *p, size_t n)
{
    (void)p;
    http2_stream_consume(s, n);
}

static void raw_on_close(http2_stream *s, uint32_t err)
{
    (void)err;
    raw_call *r = http2_stream_data(s);
    r->closed = true;
}

static const http2_stream_handler raw_stream = {
    .on_open = raw_on_response, .on_data = raw_on_data, .on_close = raw_on_close};

#define RAW_HDR(n, v)                                                                              \
    {                                                                                              \
        n, sizeof(n) - 1, v, sizeof(v) - 1                                                         \
    }

static void raw_on_connected(http2_conn *conn)
{
    raw_call *r = http2_conn_data(conn);
    http2_header hd[] = {
        RAW_HDR(":method", "POST"),
        RAW_HDR(":scheme", "http"),
        RAW_HDR(":path", UNARY),
        RAW_HDR(":authority", "localhost"),
        RAW_HDR("content-type", "application/grpc"),
        RAW_HDR("te", "trailers"),
        RAW_HDR("grpc-timeout", "50m"),
    };
    r->s = http2_conn_request(conn, hd, sizeof hd / sizeof hd[0], &raw_stream, r);
    cr_assert_not_null(r->s);
}

static void raw_on_conn_close(http2_conn *conn, const char *reason)
{
    (void)conn;
    (void)reason;
}

static const http2_conn_handler raw_conn = {.on_connected = raw_on_connected,
                                            .on_close = raw_on_conn_close};

static void raw_freed(void *arg)
{
    ((raw_call *)arg)->freed = true;
}

Test(rpc_interceptors, deadline_while_pending)
{
    setup_server(1);
    tics[0].act = ACT_PENDING;
    raw_call r = {0};
    char err[256];
    http2_client_config hc;
    http2_client_config_init(&hc);
    hc.tls = 0;
    cr_assert_eq(http2_client_new(&loop, &hc, &r.cl, err, sizeof err), 0, "%s", err);
    struct sockaddr_in sa;
    uv_ip4_addr("127.0.0.1", http2_server_port(h2), &sa);
    http2_conn *conn;
    cr_assert_eq(
        http2_client_connect(r.cl, (const struct sockaddr *)&sa, NULL, &raw_conn, &r, &conn), 0);
    run_until(&tics[0].ended);
    cr_expect_eq(tics[0].st.code, RPC_DEADLINE_EXCEEDED);
    cr_expect_str_eq(tics[0].end_msg, "deadline exceeded");
    cr_expect_geq(tics[0].st.duration_ns, 40000000ull);
    cr_expect_eq(tics[0].ends, 1);
    run_until(&r.closed);
    cr_expect_str_eq(r.status, "4", "DEADLINE_EXCEEDED, as a Trailers-Only answer");
    rpc_call *c = tics[0].pending;
    cr_expect_eq(rpc_call_proceed(c), RPC_ECANCELLED, "late proceed: harmless");
    rpc_call_unref(c);
    cr_expect_eq(h.calls + h.frees + h.cancels, 0);
    cr_expect_eq(tics[0].ends, 1);
    http2_client_free(r.cl, raw_freed, &r);
    run_until(&r.freed);
    teardown_all();
}

/* The server side of a call being cancelled after its handler started: the
 * handler gets on_cancel and on_free, interceptors one on_end. */
Test(rpc_interceptors, cancel_after_handler_started)
{
    setup_server(1);
    open_channel(0);
    ccall cc;
    start(&cc, CSTREAM, &grpc__testing__streaming_input_call_response__descriptor, 0, NULL, 0);
    send_input_reqs(&cc, 2, false);
    while (h.msgs < 2)
        uv_run(&loop, UV_RUN_ONCE);
    rpc_client_call_cancel(cc.c);
    run_until(&tics[0].ended);
    run_until(&cc.done);
    cr_expect_eq(tics[0].st.code, RPC_CANCELLED);
    cr_expect_eq(tics[0].st.msgs_received, 2);
    cr_expect_eq(h.cancels, 1);
    teardown_all();
    cr_expect_eq(h.frees, 1);
}

/* --- client interceptors ------------------------------------------------------------------------
 */

Test(rpc_interceptors, client_interceptor_adds_metadata)
{
    setup_server(1);
    open_channel(2);
    cics[0].add_md = true;
    cics[1].add_md = true;
    ccall cc;
    start_unary(&cc, 0);
    run_until(&cc.done);
    cr_expect_eq(cc.code, RPC_OK, "%d %s", cc.code, cc.msg);
    cr_expect_str_eq(cics[0].path, UNARY);
    cr_expect_eq(cics[0].nmd_seen, 1, "the call's own x-test");
    cr_expect_eq(cics[1].nmd_seen, 2, "and what the first interceptor added");
    cr_expect_str_eq(tics[0].x_test, "hello");
    cr_expect_str_eq(evlog, "cs0 cs1 s0 H e0 ce1 ce0 ");
    cr_expect_eq(cics[0].ends, 1);
    cr_expect_eq(cics[0].st.code, RPC_OK);
    cr_expect_eq(cics[0].st.msgs_sent, 1);
    cr_expect_eq(cics[0].st.msgs_received, 1);
    cr_expect_eq(cics[0].st.bytes_received, tics[0].st.bytes_sent);
    cr_expect_gt(cics[0].st.duration_ns, 0);
    teardown_all();
}

static char seen_client_ic[64];

static rpc_intercept_action read_client_ic(rpc_call *c, void *data, void **state)
{
    (void)data;
    (void)state;
    size_t n = rpc_call_metadata(c)->count;
    seen_client_ic[0] = '\0';
    for (size_t i = 0; i < n; i++) {
        const rpc_md *m = &rpc_call_metadata(c)->items[i];
        if (strcmp(m->key, "x-client-ic") == 0) {
            size_t k = strlen(seen_client_ic);
            snprintf(seen_client_ic + k, sizeof seen_client_ic - k, "%.*s,", (int)m->len,
                     (const char *)m->value);
        }
    }
    return RPC_INTERCEPT_CONTINUE;
}

Test(rpc_interceptors, server_sees_client_added_metadata)
{
    setup_server(0);
    rpc_interceptor ic = {.on_start = read_client_ic};
    cr_assert_eq(rpc_server_add_interceptor(rsrv, &ic, NULL), 0);
    open_channel(2);
    cics[0].add_md = true;
    cics[1].add_md = true;
    ccall cc;
    start_unary(&cc, 0);
    run_until(&cc.done);
    cr_expect_eq(cc.code, RPC_OK, "%d %s", cc.code, cc.msg);
    cr_expect_str_eq(seen_client_ic, "c0,c1,");
    teardown_all();
}

Test(rpc_interceptors, client_interceptor_fails_call_locally)
{
    setup_server(1);
    open_channel(3);
    cics[1].fail = true;
    ccall cc;
    start_unary(&cc, 0);
    run_until(&cc.done);
    cr_expect_eq(cc.code, RPC_FAILED_PRECONDITION);
    cr_expect_str_eq(cc.msg, "failed locally");
    cr_expect_eq(cc.attempts, 0, "nothing was sent");
    cr_expect_eq(tics[0].starts, 0, "the server never saw it");
    cr_expect_eq(cics[2].starts + cics[2].ends, 0, "later interceptors do not start");
    cr_expect_str_eq(evlog, "cs0 cs1 ce1 ce0 ");
    cr_expect_eq(cics[0].st.code, RPC_FAILED_PRECONDITION);
    cr_expect_str_eq(cics[0].end_msg, "failed locally");
    cr_expect_eq(cics[0].st.msgs_sent, 1, "queued by the caller");
    cr_expect_eq(cics[0].st.msgs_received, 0);
    teardown_all();
}

/* --- call credentials --------------------------------------------------------------------------
 */

static int provider_calls;

static const char *provide_token(void *data, const char *path)
{
    cr_assert_str_eq(data, "provider data");
    cr_assert_str_eq(path, UNARY);
    static char tok[32];
    snprintf(tok, sizeof tok, "tok-%d", ++provider_calls);
    return tok;
}

static const char *no_token(void *data, const char *path)
{
    (void)data;
    (void)path;
    return NULL;
}

static void open_token_channel(const char *token, const char *(*provider)(void *, const char *),
                               int max_attempts)
{
    char err[256];
    rpc_channel_config cfg;
    channel_config(&cfg);
    cfg.retry.max_attempts = max_attempts;
    cfg.token = token;
    cfg.token_provider = provider;
    cfg.token_data = "provider data";
    chan = rpc_channel_new(&loop, &cfg, err, sizeof err);
    cr_assert_not_null(chan, "%s", err);
}

Test(rpc_interceptors, token_provider_authorization_on_every_retry)
{
    setup_server(1);
    tics[0].act = ACT_REJECT_FIRST; /* UNAVAILABLE twice: retried */
    tics[0].code = RPC_UNAVAILABLE;
    tics[0].reject_n = 2;
    provider_calls = 0;
    open_token_channel(NULL, provide_token, 3);
    ccall cc;
    start_unary(&cc, 5000);
    run_until(&cc.done);
    cr_expect_eq(cc.code, RPC_OK, "%d %s", cc.code, cc.msg);
    cr_expect_eq(cc.attempts, 3);
    cr_expect_eq(provider_calls, 1, "asked once per call");
    cr_expect_eq(tics[0].nauth, 3);
    for (int i = 0; i < 3; i++)
        cr_expect_str_eq(tics[0].auth[i], "Bearer tok-1", "attempt %d", i + 1);
    cr_expect_str_eq(tics[0].x_test, "hello", "the call's own metadata stays");
    teardown_all();
}

Test(rpc_interceptors, static_token)
{
    setup_server(1);
    open_token_channel("s3cret", NULL, 1);
    ccall cc;
    start_unary(&cc, 0);
    run_until(&cc.done);
    cr_expect_eq(cc.code, RPC_OK);
    cr_expect_str_eq(tics[0].auth[0], "Bearer s3cret");
    teardown_all();
}

Test(rpc_interceptors, token_missing_or_malformed_fails_locally)
{
    setup_server(1);
    open_token_channel(NULL, no_token, 1);
    ccall cc;
    start_unary(&cc, 0);
    run_until(&cc.done);
    cr_expect_eq(cc.code, RPC_UNAUTHENTICATED);
    cr_expect_eq(tics[0].starts, 0);
    bool freed = false;
    rpc_channel_free(chan, on_flag, &freed);
    run_until(&freed);

    open_token_channel("bad\ntoken-XYZ", NULL, 1);
    start_unary(&cc, 0);
    run_until(&cc.done);
    cr_expect_eq(cc.code, RPC_UNAUTHENTICATED);
    cr_expect_null(strstr(cc.msg, "XYZ"), "the token is not echoed: %s", cc.msg);
    cr_expect_eq(tics[0].starts, 0);
    teardown_all();
}

/* --- API misuse ------------------------------------------------------------------------------- */

static rpc_call *handler_call;

static void on_unary_misuse(rpc_call *c, const ProtobufCMessage *m)
{
    (void)m;
    cr_expect_eq(rpc_call_proceed(c), RPC_EINVAL, "no interceptor is deciding");
    cr_expect_eq(rpc_call_reject(c, RPC_INTERNAL, "x"), RPC_EINVAL, "the handler runs");
    rpc_call_stats st;
    rpc_call_get_stats(c, &st);
    cr_expect_eq(st.msgs_received, 1);
    cr_expect_eq(st.code, RPC_UNKNOWN, "not over yet");
    cr_expect_eq(st.duration_ns, 0, "no clock without interceptors");
    cr_expect_eq(rpc_call_get_type(c), RPC_CALL_UNARY);
    cr_expect_str_eq(rpc_call_method(c), "UnaryCall");
    handler_call = c;
    rpc_call_finish(c, RPC_ABORTED, "handler");
    rpc_call_get_stats(c, &st);
    cr_expect_eq(st.code, RPC_ABORTED);
}

Test(rpc_interceptors, proceed_and_reject_from_a_handler)
{
    cr_assert_eq(uv_loop_init(&loop), 0);
    rpc_server_config rcfg;
    rpc_server_config_init(&rcfg);
    rsrv = rpc_server_new(&rcfg);
    static const rpc_method_ops misuse_ops = {.on_message = on_unary_misuse};
    const rpc_method_ops *ops[16] = {0};
    ops[method_index("UnaryCall")] = &misuse_ops;
    rpc_service_impl impl = {.desc = &grpc__testing__test_service__descriptor, .ops = ops};
    cr_assert_eq(rpc_server_add_service(rsrv, &impl), 0);
    char err[256];
    http2_server_config hcfg;
    http2_server_config_init(&hcfg);
    hcfg.host = "127.0.0.1";
    hcfg.tls = 0;
    hcfg.handler = rpc_server_stream_handler();
    hcfg.handler_data = rsrv;
    cr_assert_eq(http2_server_new(&loop, &hcfg, &h2, err, sizeof err), 0, "%s", err);
    cr_assert_eq(http2_server_start(h2), 0);
    snprintf(target, sizeof target, "127.0.0.1:%d", http2_server_port(h2));
    uv_timer_init(&loop, &watchdog);
    uv_timer_start(&watchdog, on_watchdog, 20000, 0);
    open_channel(0);
    ccall cc;
    start_unary(&cc, 0);
    run_until(&cc.done);
    cr_expect_eq(cc.code, RPC_ABORTED);
    cr_expect_not_null(handler_call);
    teardown_all();
}

/* --- out of memory ------------------------------------------------------------------------- */

/* One unary call through server interceptors (a principal attached), a client
 * interceptor and call credentials, and one to an unknown method, with the
 * nth allocation of the process failing (client and server share this
 * thread), for every n the scenario makes (49): each call still ends with one
 * status, every started interceptor ends once, and ASan/LSan see no error or
 * leak.
 *
 * nghttp2's own reallocs are never failed (src/http2/session.c mem_realloc:
 * nghttp2 1.52 frees a DATA item twice when growing its queue fails); every
 * other allocation of the scenario is. */
static void oom_start(ccall *cc, const char *path, const ProtobufCMessageDescriptor *d,
                      const ProtobufCMessage *req)
{
    memset(cc, 0, sizeof *cc);
    rpc_call_opts o = {.timeout_ms = 3000};
    cc->c = rpc_channel_call(chan, path, d, &cc_ops, cc, &o);
    if (!cc->c) { /* ENOMEM: no callback follows */
        cc->done = true;
        return;
    }
    if (rpc_client_call_send(cc->c, req) < 0)
        rpc_client_call_cancel(cc->c);
    rpc_client_call_close_send(cc->c);
}

static void oom_scenario(void)
{
    ccall a, b;
    uint8_t body[20] = {0};
    Grpc__Testing__Payload p;
    Grpc__Testing__SimpleRequest req = unary_req(&p, body, sizeof body);
    Grpc__Testing__Empty e = GRPC__TESTING__EMPTY__INIT;
    oom_start(&a, UNARY, &grpc__testing__simple_response__descriptor, &req.base);
    oom_start(&b, "/nope.Svc/Nothing", &grpc__testing__empty__descriptor, &e.base);
    run_until(&a.done);
    run_until(&b.done);
}

Test(rpc_interceptors, allocation_failures)
{
    setup_server(2);
    tics[0].set_principal = true;
    char err[256];
    rpc_channel_config cfg;
    channel_config(&cfg);
    cfg.token = "oom-token";
    cfg.retry.max_attempts = 1;
    chan = rpc_channel_new(&loop, &cfg, err, sizeof err);
    cr_assert_not_null(chan, "%s", err);
    cr_assert_eq(rpc_channel_add_interceptor(chan, &cic_ops, &cics[0]), 0);
    oom_scenario(); /* connects */
    oms_alloc_count_on();
    oom_scenario();
    uint64_t n = oms_alloc_counted();
    oms_alloc_fail_nth(0);
    cr_assert_gt(n, 10);
    for (uint64_t i = 1; i <= n; i++) {
        int starts = tics[0].starts, ends = tics[0].ends;
        oms_alloc_fail_nth(i);
        oom_scenario();
        oms_alloc_fail_nth(0);
        /* The connection may have died of it: every call still ended. */
        for (int k = 0; k < 2; k++)
            cr_expect_eq(tics[k].starts - tics[k].ends, 0,
                         "n=%llu: interceptor %d: %d starts, %d ends", (unsigned long long)i, k,
                         tics[k].starts, tics[k].ends);
        (void)starts;
        (void)ends;
    }
    ccall cc;
    start_unary(&cc, 3000);
    run_until(&cc.done);
    cr_expect_eq(cc.code, RPC_OK, "the server still serves: %d %s", cc.code, cc.msg);
    teardown_all();
}
