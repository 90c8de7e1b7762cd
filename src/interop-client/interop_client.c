/* oms-interop-client - gRPC's interop test client on the oms C client.
 *
 * Runs the non-auth cases of grpc/grpc doc/interop-test-descriptions.md
 * against any TestService (omsd, a grpcio server, ...), with the assertions
 * the document lists. Takes grpc's flags:
 *
 *   --server_host HOST --server_port PORT --use_tls true|false --ca_file PEM
 *   --server_host_override NAME --test_case NAME|all
 *
 * and prints one "PASS name" / "FAIL name: why" line per case, then
 * "N passed, M failed"; the exit status is 0 only if every case passed.
 *
 * Everything runs on one uv loop driven from here: most unary cases go through
 * rpc_blocking_unary(); streaming ones, and unary ones that look at a response
 * message's compressed flag (server_compressed_unary), start a call and run the
 * loop until its on_status. The per-case logic that must react to the server
 * (ping_pong's turns, cancel_after_first_response) lives in small state
 * machines in the call callbacks.
 *
 * Compression: the compressed flag of every response message is recorded
 * (rpc_client_call_last_compressed) and asserted by server_compressed_*;
 * client_compressed_streaming chooses compression per request message
 * (rpc_client_call_send_ex) inside a call started with opts.compress. The
 * channel always advertises gzip in grpc-accept-encoding, without which a
 * server would not compress responses.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "base/cli.h"
#include "base/cli_token.h"
#include "base/log.h"
#include "grpc/testing/empty.pb-c.h"
#include "grpc/testing/messages.pb-c.h"
#include "grpc/testing/test.pb-c.h"
#include "rpc/rpc_client.h"

#define SVC          "/grpc.testing.TestService/"
#define MAX_RESPONSE 8

typedef struct options {
    const char *host;
    int port;
    bool tls;
    const char *ca_file;
    const char *cert_file, *key_file; /* --cert/--key: client certificate (mTLS) */
    const char *host_override;
    const char *test_case;
    uint64_t rpc_timeout_ms;
    const char *token, *token_file; /* call credentials (cli_token.h) */
} options;

static uv_loop_t loop;
static rpc_channel *chan;
static options opt;
static char why[1024]; /* the failing case's reason */

#define FAIL_IF(cond, ...)                                                                         \
    do {                                                                                           \
        if (cond) {                                                                                \
            snprintf(why, sizeof why, __VA_ARGS__);                                                \
            return false;                                                                          \
        }                                                                                          \
    } while (0)

static const char *code_name(rpc_status code)
{
    return rpc_status_name((int)code);
}

/* Runs the loop until *flag is set. Returns false if the loop ran dry first
 * (a call that never ended: a bug in the client, reported as a failure). */
static bool run_until(const bool *flag)
{
    while (!*flag) {
        if (uv_run(&loop, UV_RUN_ONCE) == 0 && !*flag)
            return false;
    }
    return true;
}

static bool all_zero(const uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (p[i])
            return false;
    return true;
}

/* --- request building ---------------------------------------------------- */

/* A Payload of n zero bytes; body freed with payload_free(). */
static Grpc__Testing__Payload *payload_new(size_t n)
{
    Grpc__Testing__Payload *p = malloc(sizeof *p);
    if (!p)
        return NULL;
    grpc__testing__payload__init(p);
    p->type = GRPC__TESTING__PAYLOAD_TYPE__COMPRESSABLE;
    p->body.len = n;
    p->body.data = calloc(1, n ? n : 1);
    if (!p->body.data) {
        free(p);
        return NULL;
    }
    return p;
}

static void payload_free(Grpc__Testing__Payload *p)
{
    if (p) {
        free(p->body.data);
        free(p);
    }
}

static rpc_call_opts call_opts(void)
{
    rpc_call_opts o = {.timeout_ms = opt.rpc_timeout_ms};
    return o;
}

/* --- streaming calls ------------------------------------------------------ */

typedef struct icall icall;

/* One call and what came back. */
struct icall {
    rpc_client_call *c;
    bool done;
    rpc_status code;
    char msg[512];
    /* responses: payload body sizes (Streaming*Response, SimpleResponse) */
    int nmsgs;
    int32_t sizes[MAX_RESPONSE];
    bool compressed[MAX_RESPONSE]; /* the message's compressed flag */
    bool nonzero_body;
    int32_t aggregated; /* StreamingInputCallResponse */
    /* echoed metadata */
    bool got_initial;
    char initial[64];
    bool got_trailing;
    uint8_t trailing[16];
    size_t trailing_len;
    /* pull model: a send returned RPC_AGAIN and on_ready has not come yet */
    bool blocked;
    /* per-case state machine, run after each response message */
    void (*on_response)(icall *ic);
    int step;
    Grpc__Testing__StreamingOutputCallRequest *const *script; /* ping_pong */
    int nscript;
    bool send_pending; /* ping_pong: the next request waits for on_ready */
};

static void on_headers(rpc_client_call *c, const rpc_metadata *md)
{
    icall *ic = rpc_client_call_data(c);
    size_t len;
    const uint8_t *v = rpc_metadata_get(md, "x-grpc-test-echo-initial", &len);
    if (v && len < sizeof ic->initial) {
        ic->got_initial = true;
        memcpy(ic->initial, v, len);
        ic->initial[len] = '\0';
    }
}

static void on_message(rpc_client_call *c, const ProtobufCMessage *m)
{
    icall *ic = rpc_client_call_data(c);
    const Grpc__Testing__Payload *p = NULL;
    if (m->descriptor == &grpc__testing__streaming_output_call_response__descriptor)
        p = ((const Grpc__Testing__StreamingOutputCallResponse *)m)->payload;
    else if (m->descriptor == &grpc__testing__simple_response__descriptor)
        p = ((const Grpc__Testing__SimpleResponse *)m)->payload;
    else if (m->descriptor == &grpc__testing__streaming_input_call_response__descriptor)
        ic->aggregated =
            ((const Grpc__Testing__StreamingInputCallResponse *)m)->aggregated_payload_size;
    if (ic->nmsgs < MAX_RESPONSE) {
        ic->sizes[ic->nmsgs] = p ? (int32_t)p->body.len : -1;
        ic->compressed[ic->nmsgs] = rpc_client_call_last_compressed(c);
    }
    if (p && !all_zero(p->body.data, p->body.len))
        ic->nonzero_body = true;
    ic->nmsgs++;
    if (ic->on_response)
        ic->on_response(ic);
}

static void on_ready(rpc_client_call *c)
{
    icall *ic = rpc_client_call_data(c);
    ic->blocked = false;
    if (ic->send_pending && ic->on_response) {
        ic->send_pending = false;
        ic->on_response(ic);
    }
}

static void on_status(rpc_client_call *c, rpc_status code, const char *message,
                      const rpc_metadata *trailers)
{
    icall *ic = rpc_client_call_data(c);
    ic->code = code;
    snprintf(ic->msg, sizeof ic->msg, "%s", message);
    size_t len;
    const uint8_t *v = rpc_metadata_get(trailers, "x-grpc-test-echo-trailing-bin", &len);
    if (v && len <= sizeof ic->trailing) {
        ic->got_trailing = true;
        memcpy(ic->trailing, v, len);
        ic->trailing_len = len;
    }
    ic->c = NULL; /* freed once this returns */
    ic->done = true;
}

static const rpc_client_ops ops_client_streaming = {
    .flags = RPC_CLIENT_STREAMING,
    .on_headers = on_headers,
    .on_message = on_message,
    .on_ready = on_ready,
    .on_status = on_status,
};
static const rpc_client_ops ops_server_streaming = {
    .flags = RPC_SERVER_STREAMING,
    .on_headers = on_headers,
    .on_message = on_message,
    .on_ready = on_ready,
    .on_status = on_status,
};
static const rpc_client_ops ops_bidi = {
    .flags = RPC_CLIENT_STREAMING | RPC_SERVER_STREAMING,
    .on_headers = on_headers,
    .on_message = on_message,
    .on_ready = on_ready,
    .on_status = on_status,
};
static const rpc_client_ops ops_unary = {
    .flags = 0,
    .on_headers = on_headers,
    .on_message = on_message,
    .on_ready = on_ready,
    .on_status = on_status,
};

static bool icall_start(icall *ic, const char *path, const ProtobufCMessageDescriptor *resp,
                        const rpc_client_ops *ops, const rpc_call_opts *o)
{
    memset(ic, 0, sizeof *ic);
    ic->code = RPC_UNKNOWN;
    ic->c = rpc_channel_call(chan, path, resp, ops, ic, o);
    FAIL_IF(!ic->c, "rpc_channel_call: out of memory");
    return true;
}

/* Sends m, waiting for on_ready when the stream is full (the pull model).
 * compress < 0 keeps the call's choice (opts.compress); 0 or 1 chooses for
 * this message (compressed only in a call started with opts.compress).
 * A call that already ended is not an error here: its status tells. */
static void icall_send_ex(icall *ic, const ProtobufCMessage *m, int compress)
{
    if (!ic->c)
        return;
    int rc = compress < 0 ? rpc_client_call_send(ic->c, m)
                          : rpc_client_call_send_ex(ic->c, m, compress != 0);
    if (rc == RPC_AGAIN) {
        ic->blocked = true;
        while (ic->blocked && !ic->done)
            if (uv_run(&loop, UV_RUN_ONCE) == 0)
                break;
    }
}

static void icall_send(icall *ic, const ProtobufCMessage *m)
{
    icall_send_ex(ic, m, -1);
}

static void icall_close_send(icall *ic)
{
    if (ic->c)
        rpc_client_call_close_send(ic->c);
}

static bool icall_wait(icall *ic)
{
    FAIL_IF(!run_until(&ic->done), "the call never ended (no on_status)");
    return true;
}

static bool expect_ok(const icall *ic, const char *what)
{
    FAIL_IF(ic->code != RPC_OK, "%s: status %s (%d): %s", what, code_name(ic->code), ic->code,
            ic->msg);
    return true;
}

static bool expect_sizes(const icall *ic, const int32_t *want, int n, const char *what)
{
    FAIL_IF(ic->nmsgs != n, "%s: %d responses, expected %d", what, ic->nmsgs, n);
    for (int i = 0; i < n; i++)
        FAIL_IF(ic->sizes[i] != want[i], "%s: response %d has a %d-byte body, expected %d", what,
                i + 1, ic->sizes[i], want[i]);
    FAIL_IF(ic->nonzero_body, "%s: a response body is not all zeros", what);
    return true;
}

/* The compressed flag of each of the n responses (checked by expect_sizes to
 * be exactly n, at most MAX_RESPONSE) is want[i]. */
static bool expect_compressed_flags(const icall *ic, const bool *want, int n, const char *what)
{
    for (int i = 0; i < n && i < ic->nmsgs; i++)
        FAIL_IF(ic->compressed[i] != want[i],
                "%s: response %d arrived %s, expected it %s (compressed message flag)", what, i + 1,
                ic->compressed[i] ? "compressed" : "uncompressed",
                want[i] ? "compressed" : "uncompressed");
    return true;
}

/* --- unary helpers --------------------------------------------------------- */

/* A UnaryCall through rpc_blocking_unary: status, message, and the response's
 * payload size (-1 without a response). */
typedef struct unary_result {
    rpc_status code;
    char msg[512];
    long size;
    bool nonzero_body;
} unary_result;

static void unary_call(const Grpc__Testing__SimpleRequest *req, const rpc_call_opts *o,
                       unary_result *r)
{
    ProtobufCMessage *resp = NULL;
    r->code = rpc_blocking_unary(chan, SVC "UnaryCall", &req->base,
                                 &grpc__testing__simple_response__descriptor, &resp, o, r->msg,
                                 sizeof r->msg);
    r->size = -1;
    r->nonzero_body = false;
    if (resp) {
        const Grpc__Testing__SimpleResponse *sr = (const Grpc__Testing__SimpleResponse *)resp;
        r->size = sr->payload ? (long)sr->payload->body.len : 0;
        r->nonzero_body = sr->payload && !all_zero(sr->payload->body.data, sr->payload->body.len);
        protobuf_c_message_free_unpacked(resp, NULL);
    }
}

static bool expect_unary_ok(const unary_result *r, long size, const char *what)
{
    FAIL_IF(r->code != RPC_OK, "%s: status %s (%d): %s", what, code_name(r->code), r->code, r->msg);
    FAIL_IF(r->size != size, "%s: response body is %ld bytes, expected %ld", what, r->size, size);
    FAIL_IF(r->nonzero_body, "%s: response body is not all zeros", what);
    return true;
}

/* Calls path with an Empty request and expects code. */
static bool empty_call_expect(const char *path, rpc_status want, const char *what)
{
    Grpc__Testing__Empty req = GRPC__TESTING__EMPTY__INIT;
    ProtobufCMessage *resp = NULL;
    char msg[512];
    rpc_call_opts o = call_opts();
    rpc_status code = rpc_blocking_unary(chan, path, &req.base, &grpc__testing__empty__descriptor,
                                         &resp, &o, msg, sizeof msg);
    bool got_resp = resp != NULL;
    if (resp)
        protobuf_c_message_free_unpacked(resp, NULL);
    FAIL_IF(code != want, "%s: status %s (%d): %s, expected %s", what, code_name(code), code, msg,
            code_name(want));
    FAIL_IF(want == RPC_OK && !got_resp, "%s: no response message", what);
    return true;
}

/* --- the cases ------------------------------------------------------------ */

static bool empty_unary(void)
{
    return empty_call_expect(SVC "EmptyCall", RPC_OK, "EmptyCall");
}

static bool large_unary(void)
{
    Grpc__Testing__SimpleRequest req = GRPC__TESTING__SIMPLE_REQUEST__INIT;
    req.response_size = 314159;
    req.payload = payload_new(271828);
    FAIL_IF(!req.payload, "out of memory");
    unary_result r;
    rpc_call_opts o = call_opts();
    unary_call(&req, &o, &r);
    payload_free(req.payload);
    return expect_unary_ok(&r, 314159, "UnaryCall");
}

static bool client_compressed_unary(void)
{
    Grpc__Testing__BoolValue yes = GRPC__TESTING__BOOL_VALUE__INIT;
    Grpc__Testing__BoolValue no = GRPC__TESTING__BOOL_VALUE__INIT;
    yes.value = true;
    Grpc__Testing__SimpleRequest req = GRPC__TESTING__SIMPLE_REQUEST__INIT;
    req.response_size = 314159;
    req.payload = payload_new(271828);
    FAIL_IF(!req.payload, "out of memory");
    unary_result probe, comp, plain;
    rpc_call_opts o = call_opts();
    /* 1. the feature probe: uncompressed, expect_compressed true */
    req.expect_compressed = &yes;
    unary_call(&req, &o, &probe);
    /* 2. compressed, expect_compressed true */
    o.compress = true;
    unary_call(&req, &o, &comp);
    /* 3. uncompressed, expect_compressed false */
    o.compress = false;
    req.expect_compressed = &no;
    unary_call(&req, &o, &plain);
    payload_free(req.payload);
    FAIL_IF(probe.code != RPC_INVALID_ARGUMENT,
            "probe (uncompressed, expect_compressed): status %s (%d): %s, expected "
            "INVALID_ARGUMENT",
            code_name(probe.code), probe.code, probe.msg);
    return expect_unary_ok(&comp, 314159, "compressed call") &&
           expect_unary_ok(&plain, 314159, "uncompressed call");
}

/* Two UnaryCalls, response_compressed true then false; each response's
 * compressed message flag must match. These go through on_message (not
 * rpc_blocking_unary) to see the flag. */
static bool server_compressed_unary(void)
{
    static const bool want[] = {true, false};
    static const char *const what[] = {"response_compressed true", "response_compressed false"};
    Grpc__Testing__BoolValue flag = GRPC__TESTING__BOOL_VALUE__INIT;
    Grpc__Testing__SimpleRequest req = GRPC__TESTING__SIMPLE_REQUEST__INIT;
    req.response_size = 314159;
    req.payload = payload_new(271828);
    FAIL_IF(!req.payload, "out of memory");
    req.response_compressed = &flag;
    rpc_call_opts o = call_opts();
    bool ok = true;
    for (int i = 0; ok && i < 2; i++) {
        icall ic;
        flag.value = want[i];
        ok = icall_start(&ic, SVC "UnaryCall", &grpc__testing__simple_response__descriptor,
                         &ops_unary, &o);
        if (!ok)
            break;
        icall_send(&ic, &req.base);
        icall_close_send(&ic);
        int32_t size = 314159;
        ok = icall_wait(&ic) && expect_ok(&ic, what[i]) && expect_sizes(&ic, &size, 1, what[i]) &&
             expect_compressed_flags(&ic, &want[i], 1, what[i]);
    }
    payload_free(req.payload);
    return ok;
}

/* Sends StreamingInputCallRequests with bodies of sizes[i] bytes (expect[i]
 * >= 0 sets expect_compressed), half-closes and waits. compress NULL: an
 * uncompressed call; else the call is started with opts.compress and message
 * i goes out compressed iff compress[i]. */
static bool streaming_input(icall *ic, const int32_t *sizes, const int *expect,
                            const bool *compress, int n)
{
    rpc_call_opts o = call_opts();
    o.compress = compress != NULL;
    if (!icall_start(ic, SVC "StreamingInputCall",
                     &grpc__testing__streaming_input_call_response__descriptor,
                     &ops_client_streaming, &o))
        return false;
    for (int i = 0; i < n; i++) {
        Grpc__Testing__StreamingInputCallRequest req =
            GRPC__TESTING__STREAMING_INPUT_CALL_REQUEST__INIT;
        Grpc__Testing__BoolValue bv = GRPC__TESTING__BOOL_VALUE__INIT;
        req.payload = payload_new((size_t)sizes[i]);
        FAIL_IF(!req.payload, "out of memory");
        if (expect && expect[i] >= 0) {
            bv.value = expect[i] != 0;
            req.expect_compressed = &bv;
        }
        icall_send_ex(ic, &req.base, compress ? compress[i] : -1);
        payload_free(req.payload);
    }
    icall_close_send(ic);
    return icall_wait(ic);
}

static bool client_streaming(void)
{
    static const int32_t sizes[] = {27182, 8, 1828, 45904};
    icall ic;
    if (!streaming_input(&ic, sizes, NULL, NULL, 4) || !expect_ok(&ic, "StreamingInputCall"))
        return false;
    FAIL_IF(ic.nmsgs != 1, "%d responses, expected 1", ic.nmsgs);
    FAIL_IF(ic.aggregated != 74922, "aggregated_payload_size %d, expected 74922", ic.aggregated);
    return true;
}

/* The probe goes out in an uncompressed call; then one call started with
 * opts.compress sends the first message compressed (expect_compressed true)
 * and the second uncompressed (expect_compressed false). */
static bool client_compressed_streaming(void)
{
    static const int32_t probe_sizes[] = {27182};
    static const int probe_expect[] = {1};
    static const int32_t sizes[] = {27182, 45904};
    static const int expect[] = {1, 0};
    static const bool compress[] = {true, false};
    icall ic;
    if (!streaming_input(&ic, probe_sizes, probe_expect, NULL, 1))
        return false;
    FAIL_IF(ic.code != RPC_INVALID_ARGUMENT,
            "probe (uncompressed, expect_compressed): status %s (%d): %s, expected "
            "INVALID_ARGUMENT",
            code_name(ic.code), ic.code, ic.msg);
    if (!streaming_input(&ic, sizes, expect, compress, 2) || !expect_ok(&ic, "compressed call"))
        return false;
    FAIL_IF(ic.aggregated != 73086, "aggregated_payload_size %d, expected 73086", ic.aggregated);
    return true;
}

/* StreamingOutputCall with one ResponseParameters per size (compressed[i] >=
 * 0 sets ResponseParameters.compressed). */
static bool streaming_output(icall *ic, const int32_t *sizes, const int *compressed, int n)
{
    Grpc__Testing__ResponseParameters rp[MAX_RESPONSE];
    Grpc__Testing__ResponseParameters *rpp[MAX_RESPONSE];
    Grpc__Testing__BoolValue bv[MAX_RESPONSE];
    Grpc__Testing__StreamingOutputCallRequest req =
        GRPC__TESTING__STREAMING_OUTPUT_CALL_REQUEST__INIT;
    for (int i = 0; i < n; i++) {
        grpc__testing__response_parameters__init(&rp[i]);
        rp[i].size = sizes[i];
        if (compressed && compressed[i] >= 0) {
            grpc__testing__bool_value__init(&bv[i]);
            bv[i].value = compressed[i] != 0;
            rp[i].compressed = &bv[i];
        }
        rpp[i] = &rp[i];
    }
    req.n_response_parameters = (size_t)n;
    req.response_parameters = rpp;
    rpc_call_opts o = call_opts();
    if (!icall_start(ic, SVC "StreamingOutputCall",
                     &grpc__testing__streaming_output_call_response__descriptor,
                     &ops_server_streaming, &o))
        return false;
    icall_send(ic, &req.base);
    icall_close_send(ic);
    return icall_wait(ic);
}

static bool server_streaming(void)
{
    static const int32_t sizes[] = {31415, 9, 2653, 58979};
    icall ic;
    return streaming_output(&ic, sizes, NULL, 4) && expect_ok(&ic, "StreamingOutputCall") &&
           expect_sizes(&ic, sizes, 4, "StreamingOutputCall");
}

/* The first response must arrive compressed, the second not. */
static bool server_compressed_streaming(void)
{
    static const int32_t sizes[] = {31415, 92653};
    static const int compressed[] = {1, 0};
    static const bool want[] = {true, false};
    icall ic;
    return streaming_output(&ic, sizes, compressed, 2) && expect_ok(&ic, "StreamingOutputCall") &&
           expect_sizes(&ic, sizes, 2, "StreamingOutputCall") &&
           expect_compressed_flags(&ic, want, 2, "StreamingOutputCall");
}

/* ping_pong: request k+1 goes out once response k arrived (and the stream
 * can take it); after the last response, the client half-closes. */
static void ping_pong_next(icall *ic)
{
    if (!ic->c)
        return;
    if (ic->blocked) { /* wait for on_ready */
        ic->send_pending = true;
        return;
    }
    if (ic->step >= ic->nscript) {
        rpc_client_call_close_send(ic->c);
        return;
    }
    if (rpc_client_call_send(ic->c, &ic->script[ic->step]->base) == RPC_AGAIN)
        ic->blocked = true;
    ic->step++;
}

/* Builds FullDuplexCall requests: one ResponseParameters of resp[i] bytes
 * and a body of body[i] zeros. Freed with script_free(). */
typedef struct script {
    Grpc__Testing__StreamingOutputCallRequest req[4];
    Grpc__Testing__StreamingOutputCallRequest *reqs[4];
    Grpc__Testing__ResponseParameters rp[4];
    Grpc__Testing__ResponseParameters *rpp[4];
} script;

static bool script_init(script *s, const int32_t *resp, const int32_t *body, int n)
{
    for (int i = 0; i < n; i++) {
        grpc__testing__streaming_output_call_request__init(&s->req[i]);
        grpc__testing__response_parameters__init(&s->rp[i]);
        s->rp[i].size = resp[i];
        s->rpp[i] = &s->rp[i];
        s->req[i].n_response_parameters = 1;
        s->req[i].response_parameters = &s->rpp[i];
        s->req[i].payload = payload_new((size_t)body[i]);
        s->reqs[i] = &s->req[i];
        FAIL_IF(!s->req[i].payload, "out of memory");
    }
    return true;
}

static void script_free(script *s, int n)
{
    for (int i = 0; i < n; i++)
        payload_free(s->req[i].payload);
}

static bool ping_pong(void)
{
    static const int32_t resp[] = {31415, 9, 2653, 58979};
    static const int32_t body[] = {27182, 8, 1828, 45904};
    script s;
    memset(&s, 0, sizeof s);
    icall ic;
    bool ok = script_init(&s, resp, body, 4);
    rpc_call_opts o = call_opts();
    if (ok)
        ok = icall_start(&ic, SVC "FullDuplexCall",
                         &grpc__testing__streaming_output_call_response__descriptor, &ops_bidi, &o);
    if (ok) {
        ic.script = s.reqs;
        ic.nscript = 4;
        ic.on_response = ping_pong_next;
        ping_pong_next(&ic); /* the first request */
        ok = icall_wait(&ic) && expect_ok(&ic, "FullDuplexCall") &&
             expect_sizes(&ic, resp, 4, "FullDuplexCall");
    }
    script_free(&s, 4);
    return ok;
}

static bool empty_stream(void)
{
    icall ic;
    rpc_call_opts o = call_opts();
    if (!icall_start(&ic, SVC "FullDuplexCall",
                     &grpc__testing__streaming_output_call_response__descriptor, &ops_bidi, &o))
        return false;
    icall_close_send(&ic);
    return icall_wait(&ic) && expect_ok(&ic, "FullDuplexCall") &&
           expect_sizes(&ic, NULL, 0, "FullDuplexCall");
}

static const char echo_initial[] = "test_initial_metadata_value";
static const uint8_t echo_trailing[] = {0xab, 0xab, 0xab};

static bool expect_echo(const icall *ic, const char *what)
{
    FAIL_IF(!ic->got_initial, "%s: no x-grpc-test-echo-initial in the initial metadata", what);
    FAIL_IF(strcmp(ic->initial, echo_initial) != 0,
            "%s: x-grpc-test-echo-initial is '%s', expected '%s'", what, ic->initial, echo_initial);
    FAIL_IF(!ic->got_trailing, "%s: no x-grpc-test-echo-trailing-bin in the trailers", what);
    FAIL_IF(ic->trailing_len != sizeof echo_trailing ||
                memcmp(ic->trailing, echo_trailing, sizeof echo_trailing) != 0,
            "%s: x-grpc-test-echo-trailing-bin is %zu bytes, not 0xababab", what, ic->trailing_len);
    return true;
}

static bool custom_metadata(void)
{
    const rpc_md md[] = {
        {"x-grpc-test-echo-initial", (const uint8_t *)echo_initial, sizeof echo_initial - 1},
        {"x-grpc-test-echo-trailing-bin", echo_trailing, sizeof echo_trailing},
    };
    rpc_call_opts o = call_opts();
    o.md = md;
    o.nmd = 2;
    icall ic;

    /* 1. UnaryCall */
    Grpc__Testing__SimpleRequest req = GRPC__TESTING__SIMPLE_REQUEST__INIT;
    req.response_size = 314159;
    req.payload = payload_new(271828);
    FAIL_IF(!req.payload, "out of memory");
    bool ok = icall_start(&ic, SVC "UnaryCall", &grpc__testing__simple_response__descriptor,
                          &ops_unary, &o);
    if (ok) {
        icall_send(&ic, &req.base);
        icall_close_send(&ic);
        int32_t size = 314159;
        ok = icall_wait(&ic) && expect_ok(&ic, "UnaryCall") &&
             expect_sizes(&ic, &size, 1, "UnaryCall") && expect_echo(&ic, "UnaryCall");
    }
    payload_free(req.payload);
    if (!ok)
        return false;

    /* 2. FullDuplexCall, then half-close */
    static const int32_t resp[] = {314159};
    static const int32_t body[] = {271828};
    script s;
    memset(&s, 0, sizeof s);
    ok = script_init(&s, resp, body, 1) &&
         icall_start(&ic, SVC "FullDuplexCall",
                     &grpc__testing__streaming_output_call_response__descriptor, &ops_bidi, &o);
    if (ok) {
        icall_send(&ic, &s.req[0].base);
        icall_close_send(&ic);
        ok = icall_wait(&ic) && expect_ok(&ic, "FullDuplexCall") &&
             expect_sizes(&ic, resp, 1, "FullDuplexCall") && expect_echo(&ic, "FullDuplexCall");
    }
    script_free(&s, 1);
    return ok;
}

/* UnaryCall and FullDuplexCall asking for status {code, message}. */
static bool echo_status(int32_t code, const char *message, bool bidi)
{
    Grpc__Testing__EchoStatus st = GRPC__TESTING__ECHO_STATUS__INIT;
    st.code = code;
    st.message = (char *)message;
    Grpc__Testing__SimpleRequest req = GRPC__TESTING__SIMPLE_REQUEST__INIT;
    req.response_status = &st;
    unary_result r;
    rpc_call_opts o = call_opts();
    unary_call(&req, &o, &r);
    FAIL_IF((int32_t)r.code != code, "UnaryCall: status %s (%d): %s, expected %d",
            code_name(r.code), r.code, r.msg, code);
    FAIL_IF(strcmp(r.msg, message) != 0, "UnaryCall: status message \"%s\", expected \"%s\"", r.msg,
            message);
    if (!bidi)
        return true;
    Grpc__Testing__StreamingOutputCallRequest sreq =
        GRPC__TESTING__STREAMING_OUTPUT_CALL_REQUEST__INIT;
    sreq.response_status = &st;
    icall ic;
    if (!icall_start(&ic, SVC "FullDuplexCall",
                     &grpc__testing__streaming_output_call_response__descriptor, &ops_bidi, &o))
        return false;
    icall_send(&ic, &sreq.base);
    icall_close_send(&ic);
    if (!icall_wait(&ic))
        return false;
    FAIL_IF((int32_t)ic.code != code, "FullDuplexCall: status %s (%d): %s, expected %d",
            code_name(ic.code), ic.code, ic.msg, code);
    FAIL_IF(strcmp(ic.msg, message) != 0, "FullDuplexCall: status message \"%s\", expected \"%s\"",
            ic.msg, message);
    return true;
}

static bool status_code_and_message(void)
{
    return echo_status(2, "test status message", true);
}

static bool special_status_message(void)
{
    return echo_status(2,
                       "\t\ntest with whitespace\r\nand Unicode BMP \xe2\x98\xba and non-BMP "
                       "\xf0\x9f\x98\x88\t\n",
                       false);
}

static bool unimplemented_method(void)
{
    return empty_call_expect(SVC "UnimplementedCall", RPC_UNIMPLEMENTED,
                             "TestService/UnimplementedCall");
}

static bool unimplemented_service(void)
{
    return empty_call_expect("/grpc.testing.UnimplementedService/UnimplementedCall",
                             RPC_UNIMPLEMENTED, "UnimplementedService/UnimplementedCall");
}

static void on_cancel_timer(uv_timer_t *t)
{
    icall *ic = t->data;
    if (ic->c)
        rpc_client_call_cancel(ic->c);
}

static void on_timer_closed(uv_handle_t *h)
{
    (void)h;
}

/* "after metadata has been sent but before payloads are sent": the call
 * starts from the loop, so the cancel waits for one loop turn plus a few ms
 * (the request headers are on the wire by then when the connection is up)
 * and then goes out as RST_STREAM. */
static bool cancel_after_begin(void)
{
    icall ic;
    rpc_call_opts o = call_opts();
    if (!icall_start(&ic, SVC "StreamingInputCall",
                     &grpc__testing__streaming_input_call_response__descriptor,
                     &ops_client_streaming, &o))
        return false;
    uv_timer_t t;
    uv_timer_init(&loop, &t);
    t.data = &ic;
    uv_timer_start(&t, on_cancel_timer, 20, 0);
    bool ok = icall_wait(&ic);
    uv_close((uv_handle_t *)&t, on_timer_closed);
    uv_run(&loop, UV_RUN_NOWAIT);
    if (!ok)
        return false;
    FAIL_IF(ic.code != RPC_CANCELLED, "status %s (%d): %s, expected CANCELLED", code_name(ic.code),
            ic.code, ic.msg);
    FAIL_IF(ic.nmsgs != 0, "%d responses after cancel, expected none", ic.nmsgs);
    return true;
}

static void cancel_on_first(icall *ic)
{
    if (ic->nmsgs == 1 && ic->c)
        rpc_client_call_cancel(ic->c);
}

static bool cancel_after_first_response(void)
{
    static const int32_t resp[] = {31415};
    static const int32_t body[] = {27182};
    script s;
    memset(&s, 0, sizeof s);
    icall ic;
    rpc_call_opts o = call_opts();
    bool ok =
        script_init(&s, resp, body, 1) &&
        icall_start(&ic, SVC "FullDuplexCall",
                    &grpc__testing__streaming_output_call_response__descriptor, &ops_bidi, &o);
    if (ok) {
        ic.on_response = cancel_on_first;
        icall_send(&ic, &s.req[0].base);
        ok = icall_wait(&ic);
    }
    script_free(&s, 1);
    if (!ok)
        return false;
    FAIL_IF(ic.code != RPC_CANCELLED, "status %s (%d): %s, expected CANCELLED", code_name(ic.code),
            ic.code, ic.msg);
    FAIL_IF(ic.nmsgs != 1, "%d responses, expected exactly 1 before the cancel", ic.nmsgs);
    FAIL_IF(ic.sizes[0] != 31415, "first response has a %d-byte body, expected 31415", ic.sizes[0]);
    return true;
}

static bool timeout_on_sleeping_server(void)
{
    Grpc__Testing__StreamingOutputCallRequest req =
        GRPC__TESTING__STREAMING_OUTPUT_CALL_REQUEST__INIT;
    req.payload = payload_new(27182);
    FAIL_IF(!req.payload, "out of memory");
    rpc_call_opts o = {.timeout_ms = 1};
    icall ic;
    bool ok =
        icall_start(&ic, SVC "FullDuplexCall",
                    &grpc__testing__streaming_output_call_response__descriptor, &ops_bidi, &o);
    if (ok) {
        icall_send(&ic, &req.base);
        ok = icall_wait(&ic); /* no half-close: the server waits for more */
    }
    payload_free(req.payload);
    if (!ok)
        return false;
    FAIL_IF(ic.code != RPC_DEADLINE_EXCEEDED, "status %s (%d): %s, expected DEADLINE_EXCEEDED",
            code_name(ic.code), ic.code, ic.msg);
    return true;
}

/* --- main ----------------------------------------------------------------- */

typedef struct test_case {
    const char *name;
    bool (*run)(void);
} test_case;

static const test_case cases[] = {
    {"empty_unary", empty_unary},
    {"large_unary", large_unary},
    {"client_streaming", client_streaming},
    {"server_streaming", server_streaming},
    {"ping_pong", ping_pong},
    {"empty_stream", empty_stream},
    {"custom_metadata", custom_metadata},
    {"status_code_and_message", status_code_and_message},
    {"special_status_message", special_status_message},
    {"unimplemented_method", unimplemented_method},
    {"unimplemented_service", unimplemented_service},
    {"cancel_after_begin", cancel_after_begin},
    {"cancel_after_first_response", cancel_after_first_response},
    {"timeout_on_sleeping_server", timeout_on_sleeping_server},
    {"client_compressed_unary", client_compressed_unary},
    {"client_compressed_streaming", client_compressed_streaming},
    {"server_compressed_unary", server_compressed_unary},
    {"server_compressed_streaming", server_compressed_streaming},
};
#define NCASES (sizeof cases / sizeof cases[0])

static void list_cases(FILE *f)
{
    fprintf(f, "\ncases:");
    for (size_t i = 0; i < NCASES; i++)
        fprintf(f, "%s %s", i % 3 ? "" : "\n ", cases[i].name);
    fprintf(f, "\n\nPrints PASS/FAIL per case and \"N passed, M failed\"; exits 1 on failure.\n");
}

/* true|1 or false|0 */
static int parse_bool(const char *s, bool *out)
{
    if (!strcmp(s, "true") || !strcmp(s, "1")) {
        *out = true;
        return 0;
    }
    if (!strcmp(s, "false") || !strcmp(s, "0")) {
        *out = false;
        return 0;
    }
    return -1;
}

static int on_port(const oms_cli_opt *o, const char *arg, void *ctx)
{
    (void)o;
    (void)ctx;
    uint64_t v;
    if (oms_cli_u64(arg, 1, 65535, &v) != 0)
        return -1;
    opt.port = (int)v;
    return 0;
}

static int on_tls(const oms_cli_opt *o, const char *arg, void *ctx)
{
    (void)o;
    (void)ctx;
    return parse_bool(arg, &opt.tls);
}

/* grpc's bundled test CA: use --ca_file instead */
static int on_test_ca(const oms_cli_opt *o, const char *arg, void *ctx)
{
    (void)o;
    (void)ctx;
    bool b;
    if (parse_bool(arg, &b) != 0)
        return -1;
    if (b && !opt.ca_file)
        fprintf(stderr, "oms-interop-client: --use_test_ca: give the CA with --ca_file\n");
    return 0;
}

static const oms_cli_opt opts[] = {
    {.name = "server_host",
     .type = OMS_CLI_STRING,
     .arg = "HOST",
     .dest = &opt.host,
     .help = "server name or address (default localhost)"},
    {.name = "server_port",
     .type = OMS_CLI_CALL,
     .arg = "PORT",
     .fn = on_port,
     .want = "1..65535",
     .help = "(default 50051)"},
    {.name = "use_tls",
     .type = OMS_CLI_CALL,
     .arg = "true|false",
     .fn = on_tls,
     .want = "true or false",
     .help = "TLS with ALPN h2, or h2c (default true)"},
    {.name = "ca_file",
     .type = OMS_CLI_STRING,
     .arg = "FILE",
     .dest = &opt.ca_file,
     .help = "PEM roots for TLS (default: the system's)"},
    {.name = "cert",
     .type = OMS_CLI_STRING,
     .arg = "FILE",
     .dest = &opt.cert_file,
     .help = "client certificate (PEM), for servers that\n"
             "ask for one"},
    {.name = "key",
     .type = OMS_CLI_STRING,
     .arg = "FILE",
     .dest = &opt.key_file,
     .help = "its private key (PEM; both or neither)"},
    {.name = "server_host_override",
     .type = OMS_CLI_STRING,
     .arg = "NAME",
     .dest = &opt.host_override,
     .help = "name for the certificate check, SNI and\n"
             ":authority (default: --server_host)"},
    {.name = "test_case",
     .type = OMS_CLI_STRING,
     .arg = "NAME|all",
     .dest = &opt.test_case,
     .help = "(default all)"},
    {.name = "rpc_timeout_ms",
     .type = OMS_CLI_U64,
     .arg = "MS",
     .dest = &opt.rpc_timeout_ms,
     .min = 1,
     .max = UINT64_MAX,
     .want = "a positive number",
     .help = "deadline of every call but\n"
             "timeout_on_sleeping_server (default 20000)"},
    {.name = "use_test_ca",
     .type = OMS_CLI_CALL,
     .arg = "BOOL",
     .fn = on_test_ca,
     .want = "true or false"},
    {.name = "token",
     .type = OMS_CLI_STRING,
     .arg = "TOKEN",
     .dest = &opt.token,
     .help = "bearer token on every call (default\n"
             "$OMS_TOKEN; visible in ps)"},
    {.name = "token-file",
     .type = OMS_CLI_STRING,
     .arg = "FILE",
     .dest = &opt.token_file,
     .help = "read the token from FILE"},
};

static const oms_cli_spec spec = {
    .prog = "oms-interop-client",
    .usage = "usage: oms-interop-client [options]\n"
             "\n"
             "gRPC interop test client (grpc/grpc doc/interop-test-descriptions.md,\n"
             "non-auth cases) on the oms C client.\n"
             "\n",
    .more = list_cases,
    .opts = opts,
    .nopts = sizeof opts / sizeof opts[0],
    .help_col = 31,
};

/* 0, 1 after --help/--version (exit 0), -1 on bad usage (exit 2). */
static int parse_options(int argc, char **argv)
{
    opt = (options){.host = "localhost",
                    .port = 50051,
                    .tls = true,
                    .test_case = "all",
                    .rpc_timeout_ms = 20000};
    int rc = oms_cli_parse(&spec, argc, argv, NULL, NULL);
    if (rc != 0)
        return rc;
    if (!opt.cert_file != !opt.key_file) {
        fprintf(stderr, "oms-interop-client: --cert and --key go together\n");
        return -1;
    }
    if (strcmp(opt.test_case, "all") != 0) {
        size_t i = 0;
        while (i < NCASES && strcmp(cases[i].name, opt.test_case) != 0)
            i++;
        if (i == NCASES) {
            fprintf(stderr, "oms-interop-client: unknown test case '%s' (see --help)\n",
                    opt.test_case);
            return -1;
        }
    }
    return 0;
}

static void on_channel_freed(void *arg)
{
    *(bool *)arg = true;
}

int main(int argc, char **argv)
{
    int prc = parse_options(argc, argv);
    if (prc != 0)
        return prc > 0 ? 0 : 2;
    /* A client reports through its own lines: the libraries' info logs
     * (connections, TLS handshakes) stay out, as in oms-bench. */
    oms_log_set_level(OMS_LOG_WARN);
    if (uv_loop_init(&loop) != 0) {
        fprintf(stderr, "oms-interop-client: cannot create the loop\n");
        return 2;
    }
    char target[300], err[256];
    snprintf(target, sizeof target, strchr(opt.host, ':') ? "[%s]:%d" : "%s:%d", opt.host,
             opt.port);
    rpc_channel_config cfg;
    rpc_channel_config_init(&cfg);
    cfg.target = target;
    cfg.tls = opt.tls;
    cfg.ca_file = opt.ca_file;
    cfg.cert_file = opt.cert_file;
    cfg.key_file = opt.key_file;
    cfg.server_name = opt.host_override;
    cfg.user_agent = "oms-interop-client";
    char *token;
    if (oms_cli_token(opt.token, opt.token_file, &token, err, sizeof err) != 0) {
        fprintf(stderr, "oms-interop-client: %s\n", err);
        return 2;
    }
    cfg.token = token;
    chan = rpc_channel_new(&loop, &cfg, err, sizeof err);
    free(token);
    if (!chan) {
        fprintf(stderr, "oms-interop-client: %s\n", err);
        return 2;
    }
    int passed = 0, failed = 0;
    for (size_t i = 0; i < NCASES; i++) {
        if (strcmp(opt.test_case, "all") != 0 && strcmp(opt.test_case, cases[i].name) != 0)
            continue;
        why[0] = '\0';
        uint64_t t0 = uv_hrtime();
        bool ok = cases[i].run();
        double secs = (double)(uv_hrtime() - t0) / 1e9;
        if (ok) {
            printf("PASS %s (%.2fs)\n", cases[i].name, secs);
            passed++;
        } else {
            printf("FAIL %s (%.2fs): %s\n", cases[i].name, secs, why);
            failed++;
        }
        fflush(stdout);
    }
    printf("%d passed, %d failed\n", passed, failed);
    fflush(stdout);
    bool freed = false;
    rpc_channel_free(chan, on_channel_freed, &freed);
    run_until(&freed);
    uv_run(&loop, UV_RUN_DEFAULT);
    if (uv_loop_close(&loop) != 0)
        fprintf(stderr, "oms-interop-client: handles left on the loop\n");
    return failed ? 1 : 0;
}
