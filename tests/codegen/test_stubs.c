/* Tests of protoc-gen-omsrpc's trampolines and client stubs, linked against
 * fakes of the rpc.h and rpc_client.h functions the generated code calls
 * (defined below; this binary does not link oms_rpc). The server side is
 * driven as rpc would drive it, through the untyped rpc_method_ops the
 * registration hands to rpc_server_add_service(); the client side through
 * the rpc_client_ops the stubs hand to rpc_channel_call(). */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "bare.omsrpc.h"
#include "cg/echo.omsrpc.h"

typedef Oms__Codegen__Deep__V1__Ping ping;
typedef Oms__Codegen__Deep__V1__Pong pong;
typedef Oms__Codegen__Deep__V1__Outer__Inner inner;
typedef Oms__Codegen__Types__V1__Blob blob;

/* --- fakes: server side ------------------------------------------------- */

struct rpc_server {
    int added;
    rpc_service_impl impl;         /* the last impl added */
    const rpc_method_ops *ops[32]; /* its ops[i], copied as server.c does */
};

struct rpc_call {
    const void *typed;
    void *service_data;
    const ProtobufCMessage *sent; /* last message passed to rpc_call_send* */
    int compress;                 /* -1: rpc_call_send, else send_ex's flag */
};

int rpc_server_add_service(rpc_server *srv, const rpc_service_impl *impl)
{
    srv->added++;
    srv->impl = *impl;
    for (size_t i = 0; i < impl->desc->n_methods && i < 32; i++)
        srv->ops[i] = impl->ops[i];
    return 0;
}

const void *rpc_call_typed(const rpc_call *c)
{
    return c->typed;
}

void *rpc_call_service_data(const rpc_call *c)
{
    return c->service_data;
}

int rpc_call_send(rpc_call *c, const ProtobufCMessage *m)
{
    c->sent = m;
    c->compress = -1;
    return 0;
}

int rpc_call_send_ex(rpc_call *c, const ProtobufCMessage *m, bool compress)
{
    c->sent = m;
    c->compress = compress;
    return RPC_AGAIN;
}

/* --- fakes: client side ------------------------------------------------- */

struct rpc_channel {
    bool fail;             /* rpc_channel_call returns NULL (ENOMEM) */
    bool alloc_fail;       /* its calls' rpc_client_call_alloc returns NULL */
    rpc_client_call *last; /* the last call started */
    const char *blocking_path;
    rpc_status blocking_code; /* what rpc_blocking_unary answers */
};

struct rpc_client_call {
    const char *path;
    const ProtobufCMessageDescriptor *resp;
    const rpc_client_ops *ops;
    void *data;
    const rpc_call_opts *opts;
    uint8_t sent[4][64]; /* packed requests */
    size_t sent_len[4];
    int nsent;
    bool closed, cancelled;
    _Alignas(16) uint8_t mem[128]; /* rpc_client_call_alloc's */
    size_t mem_used;
    bool alloc_fail; /* rpc_client_call_alloc returns NULL */
};

rpc_client_call *rpc_channel_call(rpc_channel *ch, const char *path,
                                  const ProtobufCMessageDescriptor *resp, const rpc_client_ops *ops,
                                  void *data, const rpc_call_opts *opts)
{
    if (ch->fail)
        return NULL;
    rpc_client_call *c = calloc(1, sizeof *c);
    cr_assert_not_null(c);
    *c = (rpc_client_call){.path = path, .resp = resp, .ops = ops, .data = data, .opts = opts};
    c->alloc_fail = ch->alloc_fail;
    ch->last = c;
    return c;
}

int rpc_client_call_send(rpc_client_call *c, const ProtobufCMessage *m)
{
    cr_assert_lt(c->nsent, 4);
    cr_assert_leq(protobuf_c_message_get_packed_size(m), 64u);
    c->sent_len[c->nsent] = protobuf_c_message_pack(m, c->sent[c->nsent]);
    c->nsent++;
    return c->closed ? RPC_ECANCELLED : 0;
}

int rpc_client_call_close_send(rpc_client_call *c)
{
    c->closed = true;
    return 0;
}

void rpc_client_call_cancel(rpc_client_call *c)
{
    c->cancelled = true;
}

void *rpc_client_call_data(const rpc_client_call *c)
{
    return c->data;
}

void rpc_client_call_set_data(rpc_client_call *c, void *data)
{
    c->data = data;
}

/* The call's memory, freed with it (bump allocation, 16-aligned). */
void *rpc_client_call_alloc(rpc_client_call *c, size_t n)
{
    size_t at = (c->mem_used + 15) & ~(size_t)15;
    if (c->alloc_fail || at + n > sizeof c->mem)
        return NULL;
    c->mem_used = at + n;
    return memset(c->mem + at, 0, n);
}

rpc_status rpc_blocking_unary(rpc_channel *ch, const char *path, const ProtobufCMessage *req,
                              const ProtobufCMessageDescriptor *resp_desc, ProtobufCMessage **resp,
                              const rpc_call_opts *opts, char *msg, size_t msglen)
{
    (void)req;
    (void)opts;
    ch->blocking_path = path;
    snprintf(msg, msglen, "fake");
    if (ch->blocking_code != RPC_OK)
        return ch->blocking_code;
    pong p = OMS__CODEGEN__DEEP__V1__PONG__INIT;
    p.text = (char *)"blocking";
    uint8_t buf[64];
    size_t n = protobuf_c_message_pack(&p.base, buf);
    *resp = protobuf_c_message_unpack(resp_desc, NULL, n, buf);
    return RPC_OK;
}

/* Ends a fake client call the way rpc_client.h promises: one on_status,
 * then the call is gone. */
static void finish(rpc_client_call *c, rpc_status code, const char *message)
{
    c->ops->on_status(c, code, message, NULL);
    free(c);
}

/* --- server: trampolines ------------------------------------------------ */

/* What the typed handlers saw. */
static struct {
    rpc_call *call;
    const void *req;
    int requests, half_closes, readies, cancels, frees;
    rpc_status code;
} seen;

static void on_ping(rpc_call *c, const ping *req)
{
    seen.call = c;
    seen.req = req;
    seen.requests++;
}

static void on_inner(rpc_call *c, const inner *req)
{
    seen.call = c;
    seen.req = req;
    seen.requests++;
}

static void on_half_close(rpc_call *c)
{
    seen.call = c;
    seen.half_closes++;
}

static void on_ready(rpc_call *c)
{
    seen.call = c;
    seen.readies++;
}

static void on_cancel(rpc_call *c, rpc_status code)
{
    seen.call = c;
    seen.code = code;
    seen.cancels++;
}

static void on_free(rpc_call *c)
{
    seen.call = c;
    seen.frees++;
}

static const Oms__Codegen__Deep__V1__Echo_Server echo = {
    .unary = {.on_request = on_ping, .on_free = on_free},
    .server_stream = {.on_request = on_ping, .on_ready = on_ready, .on_cancel = on_cancel},
    .client_stream = {.on_request = on_ping, .on_half_close = on_half_close},
    .bidi =
        {
            .on_request = on_inner,
            .on_half_close = on_half_close,
            .on_ready = on_ready,
            .on_cancel = on_cancel,
            .on_free = on_free,
        },
};

static void reset_seen(void)
{
    memset(&seen, 0, sizeof seen);
}

Test(codegen_server, trampolines_reach_the_typed_handlers)
{
    rpc_server srv = {0};
    int data;
    reset_seen();
    cr_assert_eq(oms__codegen__deep__v1__echo__register_server(&srv, &echo, &data), 0);
    cr_assert_eq(srv.added, 1);
    cr_assert_eq(srv.impl.typed, &echo);
    cr_assert_eq(srv.impl.data, &data);
    cr_assert_null(srv.ops[4], "GetHTTPStatus: UNIMPLEMENTED");

    /* a call of the Echo service, as rpc sets it up from the registration */
    rpc_call c = {.typed = srv.impl.typed, .service_data = srv.impl.data};
    ping p = OMS__CODEGEN__DEEP__V1__PING__INIT;
    inner in = OMS__CODEGEN__DEEP__V1__OUTER__INNER__INIT;

    srv.ops[0]->on_message(&c, &p.base);
    cr_assert_eq(seen.call, &c);
    cr_assert_eq(seen.req, &p, "the message itself, typed");
    srv.ops[0]->on_ready(&c); /* not set for Unary: nothing happens */
    srv.ops[0]->on_cancel(&c, RPC_CANCELLED);
    srv.ops[0]->on_free(&c);
    cr_assert_eq(seen.readies + seen.cancels, 0);
    cr_assert_eq(seen.frees, 1);

    srv.ops[1]->on_ready(&c);
    srv.ops[1]->on_cancel(&c, RPC_DEADLINE_EXCEEDED);
    cr_assert_eq(seen.readies, 1);
    cr_assert_eq(seen.cancels, 1);
    cr_assert_eq(seen.code, RPC_DEADLINE_EXCEEDED, "the code is passed through");

    srv.ops[2]->on_message(&c, &p.base);
    srv.ops[2]->on_half_close(&c);
    cr_assert_eq(seen.half_closes, 1);

    srv.ops[3]->on_message(&c, &in.base);
    cr_assert_eq(seen.req, &in);
    srv.ops[3]->on_half_close(&c);
    srv.ops[3]->on_ready(&c);
    srv.ops[3]->on_cancel(&c, RPC_UNAVAILABLE);
    srv.ops[3]->on_free(&c);
    cr_assert_eq(seen.requests, 3);
    cr_assert_eq(seen.half_closes, 2);
    cr_assert_eq(seen.readies, 2);
    cr_assert_eq(seen.cancels, 2);
    cr_assert_eq(seen.frees, 2);
    cr_assert_eq(seen.code, RPC_UNAVAILABLE);
}

Test(codegen_server, typed_send_helpers)
{
    rpc_call c = {0};
    pong p = OMS__CODEGEN__DEEP__V1__PONG__INIT;
    blob b = OMS__CODEGEN__TYPES__V1__BLOB__INIT;
    cr_assert_eq(oms__codegen__deep__v1__echo__unary__send(&c, &p), 0);
    cr_assert_eq(c.sent, &p.base);
    cr_assert_eq(c.compress, -1);
    cr_assert_eq(oms__codegen__deep__v1__echo__bidi__send_ex(&c, &b, true), RPC_AGAIN);
    cr_assert_eq(c.sent, &b.base);
    cr_assert_eq(c.compress, 1);
}

/* --- client: unary ------------------------------------------------------ */

static struct {
    int calls;
    void *data;
    rpc_status code;
    char message[64];
    bool had_resp;
    char text[32];
    int32_t seq;
} done_seen;

static void on_done(void *data, rpc_status code, const char *message, const pong *resp)
{
    done_seen.calls++;
    done_seen.data = data;
    done_seen.code = code;
    snprintf(done_seen.message, sizeof done_seen.message, "%s", message);
    done_seen.had_resp = resp != NULL;
    if (resp) {
        snprintf(done_seen.text, sizeof done_seen.text, "%s", resp->text);
        done_seen.seq = resp->seq;
    }
}

/* Starts Unary with text "hi" and checks what went on the wire. */
static rpc_client_call *start_unary(rpc_channel *ch, int *data)
{
    ping p = OMS__CODEGEN__DEEP__V1__PING__INIT;
    p.text = (char *)"hi";
    memset(&done_seen, 0, sizeof done_seen);
    rpc_client_call *c = oms__codegen__deep__v1__echo__unary__call(ch, &p, NULL, on_done, data);
    cr_assert_not_null(c);
    cr_assert_eq(c, ch->last);
    cr_assert_str_eq(c->path, "/oms.codegen.deep.v1.Echo/Unary");
    cr_assert_eq(c->resp, &oms__codegen__deep__v1__pong__descriptor);
    cr_assert_eq(c->ops->flags, 0u);
    cr_assert_eq(c->nsent, 1, "the request");
    cr_assert(c->closed, "and half-closed");
    cr_assert_not(c->cancelled);
    ping *sent = oms__codegen__deep__v1__ping__unpack(NULL, c->sent_len[0], c->sent[0]);
    cr_assert_str_eq(sent->text, "hi");
    oms__codegen__deep__v1__ping__free_unpacked(sent, NULL);
    return c;
}

Test(codegen_client, unary_done_gets_the_response_after_the_status)
{
    rpc_channel ch = {0};
    int data;
    rpc_client_call *c = start_unary(&ch, &data);

    /* a unary response stays valid until on_status: the stub keeps it by
     * pointer and hands it to done from there */
    pong p = OMS__CODEGEN__DEEP__V1__PONG__INIT;
    p.text = (char *)"pong";
    p.seq = 7;
    c->ops->on_message(c, &p.base);
    cr_assert_eq(done_seen.calls, 0, "not before the status");
    finish(c, RPC_OK, "");
    cr_assert_eq(done_seen.calls, 1);
    cr_assert_eq(done_seen.data, &data);
    cr_assert_eq(done_seen.code, RPC_OK);
    cr_assert(done_seen.had_resp);
    cr_assert_str_eq(done_seen.text, "pong");
    cr_assert_eq(done_seen.seq, 7);
}

Test(codegen_client, unary_errors_carry_no_response)
{
    rpc_channel ch = {0};
    int data;
    pong p = OMS__CODEGEN__DEEP__V1__PONG__INIT;

    /* a status after a message: the message is dropped */
    rpc_client_call *c = start_unary(&ch, &data);
    c->ops->on_message(c, &p.base);
    finish(c, RPC_NOT_FOUND, "nope");
    cr_assert_eq(done_seen.code, RPC_NOT_FOUND);
    cr_assert_str_eq(done_seen.message, "nope");
    cr_assert_not(done_seen.had_resp);

    /* OK without a message is not OK */
    c = start_unary(&ch, &data);
    finish(c, RPC_OK, "");
    cr_assert_eq(done_seen.code, RPC_INTERNAL);
    cr_assert_not(done_seen.had_resp);

    /* no done: the outcome is dropped (and nothing leaks) */
    ping q = OMS__CODEGEN__DEEP__V1__PING__INIT;
    c = oms__codegen__deep__v1__echo__unary__call(&ch, &q, NULL, NULL, NULL);
    c->ops->on_message(c, &p.base);
    finish(c, RPC_OK, "");

    /* ENOMEM at the start: NULL, no callback */
    ch.fail = true;
    memset(&done_seen, 0, sizeof done_seen);
    cr_assert_null(oms__codegen__deep__v1__echo__unary__call(&ch, &q, NULL, on_done, NULL));
    cr_assert_eq(done_seen.calls, 0);

    /* ENOMEM for the stub's state: NULL, the call cancelled, and its
     * on_status (which still comes) calls nothing */
    ch.fail = false;
    ch.alloc_fail = true;
    cr_assert_null(oms__codegen__deep__v1__echo__unary__call(&ch, &q, NULL, on_done, NULL));
    c = ch.last;
    cr_assert(c->cancelled);
    cr_assert_eq(c->nsent, 0, "nothing sent");
    finish(c, RPC_CANCELLED, "cancelled");
    cr_assert_eq(done_seen.calls, 0);
}

Test(codegen_client, unary_blocking_is_typed)
{
    rpc_channel ch = {0};
    ping q = OMS__CODEGEN__DEEP__V1__PING__INIT;
    pong *resp = (pong *)&q; /* overwritten either way */
    char msg[16];
    cr_assert_eq(oms__codegen__deep__v1__echo__get_httpstatus__blocking(&ch, &q, &resp, NULL, msg,
                                                                        sizeof msg),
                 RPC_OK);
    cr_assert_str_eq(ch.blocking_path, "/oms.codegen.deep.v1.Echo/GetHTTPStatus");
    cr_assert_str_eq(resp->text, "blocking");
    oms__codegen__deep__v1__pong__free_unpacked(resp, NULL);

    ch.blocking_code = RPC_UNAVAILABLE;
    cr_assert_eq(
        oms__codegen__deep__v1__echo__unary__blocking(&ch, &q, &resp, NULL, msg, sizeof msg),
        RPC_UNAVAILABLE);
    cr_assert_null(resp);
    cr_assert_str_eq(msg, "fake");
}

/* --- client: streaming ---------------------------------------------------- */

static struct {
    int headers, messages, readies, statuses;
    void *data;
    rpc_status code;
    int32_t last_seq;
    size_t last_len;
} cb_seen;

static void cb_headers(rpc_client_call *c, void *data, const rpc_metadata *md)
{
    (void)c;
    (void)md;
    cb_seen.data = data;
    cb_seen.headers++;
}

static void cb_pong(rpc_client_call *c, void *data, const pong *m)
{
    (void)c;
    cb_seen.data = data;
    cb_seen.last_seq = m->seq;
    cb_seen.messages++;
}

static void cb_blob(rpc_client_call *c, void *data, const blob *m)
{
    (void)c;
    cb_seen.data = data;
    cb_seen.last_len = m->data.len;
    cb_seen.messages++;
}

static void cb_ready(rpc_client_call *c, void *data)
{
    (void)c;
    cb_seen.data = data;
    cb_seen.readies++;
}

static void cb_status(rpc_client_call *c, void *data, rpc_status code, const char *message,
                      const rpc_metadata *trailers)
{
    (void)c;
    (void)message;
    (void)trailers;
    cb_seen.data = data;
    cb_seen.code = code;
    cb_seen.statuses++;
}

Test(codegen_client, server_streaming)
{
    static const Oms__Codegen__Deep__V1__Echo_ServerStream_Callbacks cb = {
        .on_headers = cb_headers, .on_message = cb_pong, .on_status = cb_status};
    rpc_channel ch = {0};
    int data;
    ping q = OMS__CODEGEN__DEEP__V1__PING__INIT;
    memset(&cb_seen, 0, sizeof cb_seen);
    rpc_client_call *c =
        oms__codegen__deep__v1__echo__server_stream__call(&ch, &q, NULL, &cb, &data);
    cr_assert_not_null(c);
    cr_assert_str_eq(c->path, "/oms.codegen.deep.v1.Echo/ServerStream");
    cr_assert_eq(c->ops->flags, (unsigned)RPC_SERVER_STREAMING);
    cr_assert_null(c->ops->on_ready, "one request, sent at the start");
    cr_assert_eq(c->nsent, 1);
    cr_assert(c->closed);

    pong p = OMS__CODEGEN__DEEP__V1__PONG__INIT;
    c->ops->on_headers(c, NULL);
    for (int i = 1; i <= 3; i++) {
        p.seq = i;
        c->ops->on_message(c, &p.base);
    }
    finish(c, RPC_OK, "");
    cr_assert_eq(cb_seen.headers, 1);
    cr_assert_eq(cb_seen.messages, 3);
    cr_assert_eq(cb_seen.last_seq, 3);
    cr_assert_eq(cb_seen.statuses, 1);
    cr_assert_eq(cb_seen.data, &data);
}

Test(codegen_client, client_streaming_sends_until_close)
{
    /* only on_status: the other callbacks are optional */
    static const Oms__Codegen__Deep__V1__Echo_ClientStream_Callbacks cb = {.on_status = cb_status};
    rpc_channel ch = {0};
    memset(&cb_seen, 0, sizeof cb_seen);
    rpc_client_call *c = oms__codegen__deep__v1__echo__client_stream__call(&ch, NULL, &cb, NULL);
    cr_assert_not_null(c);
    cr_assert_eq(c->ops->flags, (unsigned)RPC_CLIENT_STREAMING);
    cr_assert_eq(c->nsent, 0, "nothing sent at the start");
    cr_assert_not(c->closed);

    ping q = OMS__CODEGEN__DEEP__V1__PING__INIT;
    q.count = 5;
    cr_assert_eq(oms__codegen__deep__v1__echo__client_stream__client_send(c, &q), 0);
    cr_assert_eq(oms__codegen__deep__v1__echo__client_stream__client_send(c, &q), 0);
    cr_assert_eq(rpc_client_call_close_send(c), 0);
    cr_assert_eq(c->nsent, 2);
    ping *sent = oms__codegen__deep__v1__ping__unpack(NULL, c->sent_len[1], c->sent[1]);
    cr_assert_eq(sent->count, 5);
    oms__codegen__deep__v1__ping__free_unpacked(sent, NULL);

    pong p = OMS__CODEGEN__DEEP__V1__PONG__INIT;
    c->ops->on_headers(c, NULL);
    c->ops->on_message(c, &p.base);
    c->ops->on_ready(c);
    finish(c, RPC_ABORTED, "x");
    cr_assert_eq(cb_seen.statuses, 1);
    cr_assert_eq(cb_seen.code, RPC_ABORTED);
    cr_assert_eq(cb_seen.messages + cb_seen.headers + cb_seen.readies, 0);
}

Test(codegen_client, bidi_nested_and_imported_types)
{
    static const Oms__Codegen__Deep__V1__Echo_Bidi_Callbacks cb = {
        .on_message = cb_blob, .on_ready = cb_ready, .on_status = cb_status};
    rpc_channel ch = {0};
    int data;
    memset(&cb_seen, 0, sizeof cb_seen);
    rpc_client_call *c = oms__codegen__deep__v1__echo__bidi__call(&ch, NULL, &cb, &data);
    cr_assert_not_null(c);
    cr_assert_str_eq(c->path, "/oms.codegen.deep.v1.Echo/Bidi");
    cr_assert_eq(c->resp, &oms__codegen__types__v1__blob__descriptor);
    cr_assert_eq(c->ops->flags, (unsigned)(RPC_CLIENT_STREAMING | RPC_SERVER_STREAMING));

    inner in = OMS__CODEGEN__DEEP__V1__OUTER__INNER__INIT;
    in.text = (char *)"abc";
    cr_assert_eq(oms__codegen__deep__v1__echo__bidi__client_send(c, &in), 0);
    c->ops->on_ready(c);
    uint8_t bytes[3] = {1, 2, 3};
    blob b = OMS__CODEGEN__TYPES__V1__BLOB__INIT;
    b.data.data = bytes;
    b.data.len = sizeof bytes;
    c->ops->on_message(c, &b.base);
    finish(c, RPC_OK, "");
    cr_assert_eq(cb_seen.readies, 1);
    cr_assert_eq(cb_seen.messages, 1);
    cr_assert_eq(cb_seen.last_len, 3);
    cr_assert_eq(cb_seen.statuses, 1);
    cr_assert_eq(cb_seen.data, &data);
}

Test(codegen_client, no_package_and_shared_method_names)
{
    rpc_channel ch = {0};
    Msg m = MSG__INIT;
    rpc_client_call *c = bare__say__call(&ch, &m, NULL, NULL, NULL);
    cr_assert_str_eq(c->path, "/Bare/Say");
    finish(c, RPC_CANCELLED, "");

    ping q = OMS__CODEGEN__DEEP__V1__PING__INIT;
    c = oms__codegen__deep__v1__other__unary__call(&ch, &q, NULL, NULL, NULL);
    cr_assert_str_eq(c->path, "/oms.codegen.deep.v1.Other/Unary");
    finish(c, RPC_CANCELLED, "");
}
