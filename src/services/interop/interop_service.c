/* interop_service.c - grpc.testing.TestService and UnimplementedService, the
 * server side of the gRPC interop suite (grpc/grpc
 * doc/interop-test-descriptions.md, "Server").
 *
 * Behaviour, for every method unless noted:
 *  - Metadata echo: request "x-grpc-test-echo-initial" comes back as initial
 *    metadata, "x-grpc-test-echo-trailing-bin" as trailing metadata.
 *  - Payloads are response_size zero bytes of type COMPRESSABLE; any other
 *    response_type, a negative size or interval is INVALID_ARGUMENT, a size
 *    above INTEROP_MAX_PAYLOAD is RESOURCE_EXHAUSTED.
 *  - response_status with a non-zero code ends the call with that code and
 *    message after the responses of the same request (none for unary calls);
 *    with code 0 its message rides on the final OK. Codes outside 0..16 are
 *    sent as UNKNOWN.
 *  - expect_compressed.value true on a request that arrived uncompressed is
 *    INVALID_ARGUMENT.
 *  - Streaming responses each wait interval_us (rounded up to whole ms, the
 *    timer's unit) after the previous one, and honour per-response
 *    compressed; they are pulled: sending stops on RPC_AGAIN and resumes in
 *    on_ready.
 *  - CacheableUnaryCall behaves as UnaryCall (no caching proxy in our tests).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "services/services.h"
#include "services/svc_int.h"
#include "grpc/testing/empty.pb-c.h"
#include "grpc/testing/messages.pb-c.h"
#include "grpc/testing/test.omsrpc.h"

#define ECHO_INITIAL_KEY  "x-grpc-test-echo-initial"
#define ECHO_TRAILING_KEY "x-grpc-test-echo-trailing-bin"

/* Largest payload we build (bytes): rpc's default receive limit, and a bound
 * on the shared zero buffer (calloc'ed, so untouched pages cost nothing). */
#define INTEROP_MAX_PAYLOAD ((int32_t)4 << 20)
/* Responses a streaming call may have pending (12 bytes each): bounds what a
 * client can make us hold by sending requests with long intervals or, for
 * HalfDuplexCall, by never half-closing. */
#define INTEROP_MAX_PENDING 4096

struct interop_service {
    uint8_t *zeros; /* INTEROP_MAX_PAYLOAD zero bytes, read-only once made */
    /* SimpleResponse.hostname and .server_id when fill_server_id is set (the
     * interop pick_first_unary case: every answer names the same server) */
    char hostname[UV_MAXHOSTNAMESIZE];
    char server_id[UV_MAXHOSTNAMESIZE + 32];
    const rpc_method_ops *test_ops[GRPC__TESTING__TEST_SERVICE__N_METHODS];
    rpc_service_impl test;
};

/* One response still to send: a copy of a ResponseParameters. */
typedef struct pending_resp {
    int32_t size;
    int32_t interval_us;
    int8_t compress; /* -1: call default, 0: off, 1: on */
} pending_resp;

/* Per-call state of the streaming methods, from the call's arena (zeroed);
 * the queue is malloc'ed and freed in on_free. */
typedef struct interop_call {
    pending_resp *q; /* responses [head, tail) wait to be sent */
    size_t head, tail, cap;
    uint64_t input_size; /* StreamingInputCall: sum of payload bytes */
    rpc_status final_code;
    const char *final_msg; /* arena copy, or NULL */
    bool hold;             /* HalfDuplexCall: send nothing before half-close */
    bool half_closed;      /* no more requests will come */
    bool closing;          /* final status decided; later requests ignored */
    bool blocked;          /* RPC_AGAIN: wait for on_ready */
    bool timer_armed;      /* waiting for the head's interval */
    bool waited;           /* the head's interval has elapsed */
    bool in_pump;
} interop_call;

/* --- helpers ------------------------------------------------------------ */

static void echo_metadata(rpc_call *c)
{
    const rpc_metadata *md = rpc_call_metadata(c);
    const uint8_t *v;
    size_t len;
    if (!md)
        return;
    /* errors (RPC_EINVAL: too late) cannot happen before the first send;
     * a failed echo shows as missing metadata in the client's check */
    if ((v = rpc_metadata_get(md, ECHO_INITIAL_KEY, &len)))
        (void)rpc_call_add_initial_md(c, ECHO_INITIAL_KEY, v, len);
    if ((v = rpc_metadata_get(md, ECHO_TRAILING_KEY, &len)))
        (void)rpc_call_add_trailing_md(c, ECHO_TRAILING_KEY, v, len);
}

/* The peer picks the code; keep what rpc_call_finish gets inside the enum. */
static rpc_status echo_code(int32_t code)
{
    return code >= RPC_OK && code <= RPC_UNAUTHENTICATED ? (rpc_status)code : RPC_UNKNOWN;
}

static const char *nonempty(const char *s)
{
    return s && s[0] ? s : NULL;
}

/* RPC_OK, or the status for a payload we will not build. */
static rpc_status check_payload(Grpc__Testing__PayloadType type, int32_t size, const char **why)
{
    if (type != GRPC__TESTING__PAYLOAD_TYPE__COMPRESSABLE) {
        *why = "unsupported response_type";
        return RPC_INVALID_ARGUMENT;
    }
    if (size < 0) {
        *why = "negative response size";
        return RPC_INVALID_ARGUMENT;
    }
    if (size > INTEROP_MAX_PAYLOAD) {
        *why = "response size above 4 MiB";
        return RPC_RESOURCE_EXHAUSTED;
    }
    return RPC_OK;
}

static bool compression_unmet(rpc_call *c, const Grpc__Testing__BoolValue *expect)
{
    return expect && expect->value && !rpc_call_last_compressed(c);
}

static void set_payload(Grpc__Testing__Payload *p, const interop_service *svc, int32_t size)
{
    p->type = GRPC__TESTING__PAYLOAD_TYPE__COMPRESSABLE;
    p->body.len = (size_t)size;
    p->body.data = size ? svc->zeros : NULL; /* only read by the packer */
}

/* Typed sends; compress: -1 keeps the call's default (off), else forces it.
 * UnaryCall and CacheableUnaryCall answer SimpleResponse, the three streaming
 * output methods StreamingOutputCallResponse: one helper each. */
static int send_simple(rpc_call *c, const Grpc__Testing__SimpleResponse *m, int compress)
{
    return compress < 0 ? grpc__testing__test_service__unary_call__send(c, m)
                        : grpc__testing__test_service__unary_call__send_ex(c, m, compress != 0);
}

static int send_stream(rpc_call *c, const Grpc__Testing__StreamingOutputCallResponse *m,
                       int compress)
{
    return compress < 0
               ? grpc__testing__test_service__streaming_output_call__send(c, m)
               : grpc__testing__test_service__streaming_output_call__send_ex(c, m, compress != 0);
}

/* --- EmptyCall, UnaryCall, CacheableUnaryCall ---------------------------- */

static void on_empty_call(rpc_call *c, const Grpc__Testing__Empty *req)
{
    (void)req;
    Grpc__Testing__Empty resp = GRPC__TESTING__EMPTY__INIT;
    echo_metadata(c);
    int rc = grpc__testing__test_service__empty_call__send(c, &resp);
    if (rc < 0) {
        svc__send_failed(c, rc);
        return;
    }
    rpc_call_finish(c, RPC_OK, NULL);
}

static void on_unary_call(rpc_call *c, const Grpc__Testing__SimpleRequest *req)
{
    const interop_service *svc = rpc_call_service_data(c);
    const Grpc__Testing__EchoStatus *status = req->response_status;
    const char *why = NULL;

    echo_metadata(c);
    if (compression_unmet(c, req->expect_compressed)) {
        rpc_call_finish(c, RPC_INVALID_ARGUMENT, "expected a compressed request");
        return;
    }
    if (status && status->code != 0) {
        rpc_call_finish(c, echo_code(status->code), nonempty(status->message));
        return;
    }
    rpc_status st = check_payload(req->response_type, req->response_size, &why);
    if (st != RPC_OK) {
        rpc_call_finish(c, st, why);
        return;
    }
    Grpc__Testing__Payload payload = GRPC__TESTING__PAYLOAD__INIT;
    Grpc__Testing__SimpleResponse resp = GRPC__TESTING__SIMPLE_RESPONSE__INIT;
    set_payload(&payload, svc, req->response_size);
    resp.payload = &payload;
    if (req->fill_server_id) {
        resp.server_id = (char *)svc->server_id;
        resp.hostname = (char *)svc->hostname;
    }
    int compress = req->response_compressed ? req->response_compressed->value != 0 : -1;
    int rc = send_simple(c, &resp, compress);
    if (rc < 0) {
        svc__send_failed(c, rc);
        return;
    }
    /* the request (and so status->message) lives until the call is freed */
    rpc_call_finish(c, RPC_OK, status ? nonempty(status->message) : NULL);
}

/* --- streaming: per-call state and the response pump --------------------- */

/* The call's state, made on first use; the metadata echo goes with it, so it
 * happens once, before anything is sent. NULL if the call was failed. */
static interop_call *call_state(rpc_call *c)
{
    interop_call *st = rpc_call_data(c);
    if (st)
        return st;
    if (!(st = rpc_call_alloc(c, sizeof *st))) {
        rpc_call_finish(c, RPC_RESOURCE_EXHAUSTED, "out of memory");
        return NULL;
    }
    st->final_code = RPC_OK;
    rpc_call_set_data(c, st);
    echo_metadata(c);
    return st;
}

static const char *copy_str(rpc_call *c, const char *s)
{
    if (!s || !s[0])
        return NULL;
    size_t n = strlen(s) + 1;
    char *p = rpc_call_alloc(c, n);
    if (p)
        memcpy(p, s, n);
    return p;
}

/* Decides the final status; requests after it are ignored, responses
 * already queued still go out first. */
static void close_with(interop_call *st, rpc_status code, const char *msg)
{
    st->closing = true;
    st->final_code = code;
    st->final_msg = msg;
}

/* Validates one StreamingOutputCallRequest and queues copies of its response
 * parameters (the request may be gone when they are sent), then its status. */
static void enqueue_request(rpc_call *c, interop_call *st,
                            const Grpc__Testing__StreamingOutputCallRequest *req)
{
    const char *why = NULL;
    size_t n = req->n_response_parameters;

    rpc_status code = check_payload(req->response_type, 0, &why);
    for (size_t i = 0; code == RPC_OK && i < n; i++) {
        const Grpc__Testing__ResponseParameters *p = req->response_parameters[i];
        code = check_payload(req->response_type, p->size, &why);
        if (code == RPC_OK && p->interval_us < 0) {
            why = "negative interval_us";
            code = RPC_INVALID_ARGUMENT;
        }
    }
    if (code == RPC_OK && n > INTEROP_MAX_PENDING - (st->tail - st->head)) {
        why = "too many pending responses";
        code = RPC_RESOURCE_EXHAUSTED;
    }
    if (code != RPC_OK) {
        close_with(st, code, why);
        return;
    }
    if (st->head == st->tail)
        st->head = st->tail = 0;
    if (st->tail + n > st->cap) {
        if (st->head) { /* slide the live part to the front first */
            memmove(st->q, st->q + st->head, (st->tail - st->head) * sizeof *st->q);
            st->tail -= st->head;
            st->head = 0;
        }
        size_t cap = st->cap ? st->cap : 8;
        while (cap < st->tail + n)
            cap *= 2;
        pending_resp *q = realloc(st->q, cap * sizeof *q);
        if (!q) {
            close_with(st, RPC_RESOURCE_EXHAUSTED, "out of memory");
            return;
        }
        st->q = q;
        st->cap = cap;
    }
    for (size_t i = 0; i < n; i++) {
        const Grpc__Testing__ResponseParameters *p = req->response_parameters[i];
        pending_resp *r = &st->q[st->tail++];
        r->size = p->size;
        r->interval_us = p->interval_us;
        r->compress = p->compressed ? (p->compressed->value ? 1 : 0) : -1;
    }
    const Grpc__Testing__EchoStatus *status = req->response_status;
    if (status && status->code != 0)
        close_with(st, echo_code(status->code), copy_str(c, status->message));
    else if (status && nonempty(status->message))
        st->final_msg = copy_str(c, status->message);
}

static void on_interval(rpc_call *c);

/* Sends queued responses in order until the queue is empty, flow control
 * pushes back (resumed by on_ready) or an interval must pass (resumed by
 * on_interval); finishes once nothing is left and no request can add more.
 * Every entry point lands here, so this is the one place that sends. */
static void pump(rpc_call *c, interop_call *st)
{
    const interop_service *svc = rpc_call_service_data(c);
    if (st->in_pump || st->blocked || st->timer_armed || rpc_call_done(c))
        return;
    if (st->hold && !st->half_closed && !st->closing)
        return;
    st->in_pump = true;
    while (st->head < st->tail) {
        const pending_resp *r = &st->q[st->head];
        if (r->interval_us > 0 && !st->waited) {
            uint64_t ms = ((uint64_t)r->interval_us + 999) / 1000;
            if (rpc_call_set_timer(c, ms, on_interval) < 0) {
                rpc_call_finish(c, RPC_INTERNAL, "cannot arm timer");
                goto out;
            }
            st->timer_armed = true;
            goto out;
        }
        st->waited = false;
        st->head++;
        Grpc__Testing__Payload payload = GRPC__TESTING__PAYLOAD__INIT;
        Grpc__Testing__StreamingOutputCallResponse resp =
            GRPC__TESTING__STREAMING_OUTPUT_CALL_RESPONSE__INIT;
        set_payload(&payload, svc, r->size);
        resp.payload = &payload;
        int rc = send_stream(c, &resp, r->compress);
        if (rc < 0) {
            svc__send_failed(c, rc);
            goto out;
        }
        if (rc == RPC_AGAIN) {
            st->blocked = true;
            break;
        }
    }
    /* the final status goes out after whatever rpc still has queued */
    if (st->head == st->tail && (st->closing || st->half_closed))
        rpc_call_finish(c, st->final_code, st->final_msg);
out:
    st->in_pump = false;
}

static void on_interval(rpc_call *c)
{
    interop_call *st = rpc_call_data(c);
    if (!st)
        return;
    st->timer_armed = false;
    st->waited = true;
    pump(c, st);
}

static void on_stream_ready(rpc_call *c)
{
    interop_call *st = rpc_call_data(c);
    if (!st)
        return;
    st->blocked = false;
    pump(c, st);
}

/* rpc stops our timer; pump() sees rpc_call_done() and sends nothing more. */
static void on_stream_cancel(rpc_call *c, rpc_status code)
{
    (void)code;
    interop_call *st = rpc_call_data(c);
    if (st)
        st->closing = true;
}

static void on_stream_free(rpc_call *c)
{
    interop_call *st = rpc_call_data(c);
    if (st)
        free(st->q);
}

/* --- StreamingOutputCall (server streaming) ----------------------------- */

static void on_streaming_output(rpc_call *c, const Grpc__Testing__StreamingOutputCallRequest *req)
{
    interop_call *st = call_state(c);
    if (!st)
        return;
    st->half_closed = true; /* implied: one request */
    enqueue_request(c, st, req);
    pump(c, st);
}

/* --- FullDuplexCall, HalfDuplexCall (bidi) ------------------------------ */

static void on_duplex_message(rpc_call *c, const Grpc__Testing__StreamingOutputCallRequest *req)
{
    interop_call *st = call_state(c);
    if (!st || st->closing || rpc_call_done(c))
        return;
    enqueue_request(c, st, req);
    pump(c, st);
}

static void on_duplex_half_close(rpc_call *c)
{
    interop_call *st = call_state(c);
    if (!st)
        return;
    st->half_closed = true;
    pump(c, st);
}

static void on_half_duplex_message(rpc_call *c,
                                   const Grpc__Testing__StreamingOutputCallRequest *req)
{
    interop_call *st = call_state(c);
    if (!st)
        return;
    st->hold = true;
    on_duplex_message(c, req);
}

static void on_half_duplex_half_close(rpc_call *c)
{
    interop_call *st = call_state(c);
    if (!st)
        return;
    st->hold = true;
    on_duplex_half_close(c);
}

/* --- StreamingInputCall (client streaming) ------------------------------ */

static void on_streaming_input(rpc_call *c, const Grpc__Testing__StreamingInputCallRequest *req)
{
    interop_call *st = call_state(c);
    if (!st || st->closing || rpc_call_done(c))
        return;
    if (compression_unmet(c, req->expect_compressed)) {
        close_with(st, RPC_INVALID_ARGUMENT, "expected a compressed request");
        rpc_call_finish(c, st->final_code, st->final_msg);
        return;
    }
    if (req->payload)
        st->input_size += req->payload->body.len;
    if (st->input_size > INT32_MAX) {
        close_with(st, RPC_OUT_OF_RANGE, "aggregated payload size exceeds int32");
        rpc_call_finish(c, st->final_code, st->final_msg);
    }
}

static void on_streaming_input_half_close(rpc_call *c)
{
    interop_call *st = call_state(c);
    if (!st || st->closing || rpc_call_done(c))
        return;
    Grpc__Testing__StreamingInputCallResponse resp =
        GRPC__TESTING__STREAMING_INPUT_CALL_RESPONSE__INIT;
    resp.aggregated_payload_size = (int32_t)st->input_size;
    int rc = grpc__testing__test_service__streaming_input_call__send(c, &resp);
    if (rc < 0) {
        svc__send_failed(c, rc);
        return;
    }
    rpc_call_finish(c, RPC_OK, NULL);
}

/* --- the service table ------------------------------------------------- */

/* UnimplementedCall is left out: UNIMPLEMENTED, as the suite expects. */
static const Grpc__Testing__TestService_Server test_handlers = {
    .empty_call = {.on_request = on_empty_call},
    .unary_call = {.on_request = on_unary_call},
    .cacheable_unary_call = {.on_request = on_unary_call},
    .streaming_output_call =
        {
            .on_request = on_streaming_output,
            .on_ready = on_stream_ready,
            .on_cancel = on_stream_cancel,
            .on_free = on_stream_free,
        },
    .streaming_input_call =
        {
            .on_request = on_streaming_input,
            .on_half_close = on_streaming_input_half_close,
            .on_cancel = on_stream_cancel,
            .on_free = on_stream_free,
        },
    .full_duplex_call =
        {
            .on_request = on_duplex_message,
            .on_half_close = on_duplex_half_close,
            .on_ready = on_stream_ready,
            .on_cancel = on_stream_cancel,
            .on_free = on_stream_free,
        },
    .half_duplex_call =
        {
            .on_request = on_half_duplex_message,
            .on_half_close = on_half_duplex_half_close,
            .on_ready = on_stream_ready,
            .on_cancel = on_stream_cancel,
            .on_free = on_stream_free,
        },
};

interop_service *interop_service_new(void)
{
    interop_service *s = calloc(1, sizeof *s);
    if (!s)
        goto fail_alloc;
    if (!(s->zeros = calloc(1, (size_t)INTEROP_MAX_PAYLOAD)))
        goto fail_zeros;
    size_t hl = sizeof s->hostname;
    if (uv_os_gethostname(s->hostname, &hl) != 0)
        snprintf(s->hostname, sizeof s->hostname, "localhost");
    /* one id per process: the workers share this service */
    snprintf(s->server_id, sizeof s->server_id, "omsd-%s-%d", s->hostname, (int)uv_os_getpid());
    if (grpc__testing__test_service__server_impl(&s->test, s->test_ops, &test_handlers, s) != 0)
        goto fail_test;
    return s;

fail_test:
    free(s->zeros);
fail_zeros:
    free(s);
fail_alloc:
    return NULL;
}

void interop_service_free(interop_service *s)
{
    if (!s)
        return;
    free(s->zeros);
    free(s);
}

const rpc_service_impl *interop_test_service(const interop_service *s)
{
    return &s->test;
}
