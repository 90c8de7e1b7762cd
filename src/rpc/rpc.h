/* rpc.h - gRPC calls over http2 streams, in protobuf-c messages.
 *
 * The server side maps each HTTP/2 request stream onto a registered method
 * (routing by :path), deframes length-prefixed messages, decodes them with
 * protobuf-c and hands them to the method's rpc_method_ops. It knows nothing
 * of frames or sockets: it sits on http2.h's stream seam.
 *
 * One API covers all four call types, and it is pull-based both ways:
 *  - Inbound, on_message fires once per request message. For methods whose
 *    client sends a single message (unary, server streaming) it fires after
 *    the client half-closed, so a second message is caught as a protocol error.
 *  - Outbound, rpc_call_send() queues a message and says whether the stream
 *    can take more now (0) or the handler must wait for on_ready (RPC_AGAIN).
 *    While a call's send queue is full, rpc also stops delivering inbound
 *    messages and stops returning flow-control credit to the peer, so a slow
 *    reader slows the writer end to end and nothing queues without bound.
 *
 * Lifetime: a call lives until its stream closed and every reference taken
 * with rpc_call_ref() was dropped. A handler that finishes later (a store
 * commit, a call to another service) takes a ref, and after on_cancel every
 * send/finish is a harmless no-op returning RPC_ECANCELLED.
 *
 * Threading: a call belongs to its connection's loop. The server object is
 * read-only once started and may be shared by several loops.
 */
#ifndef OMS_RPC_H
#define OMS_RPC_H

#include <protobuf-c/protobuf-c.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "http2/http2.h"
#include "base/export.h"

typedef struct rpc_server rpc_server;
typedef struct rpc_call rpc_call;

/* gRPC status codes (grpc/grpc doc/statuscodes.md). */
typedef enum rpc_status {
    RPC_OK = 0,
    RPC_CANCELLED = 1,
    RPC_UNKNOWN = 2,
    RPC_INVALID_ARGUMENT = 3,
    RPC_DEADLINE_EXCEEDED = 4,
    RPC_NOT_FOUND = 5,
    RPC_ALREADY_EXISTS = 6,
    RPC_PERMISSION_DENIED = 7,
    RPC_RESOURCE_EXHAUSTED = 8,
    RPC_FAILED_PRECONDITION = 9,
    RPC_ABORTED = 10,
    RPC_OUT_OF_RANGE = 11,
    RPC_UNIMPLEMENTED = 12,
    RPC_INTERNAL = 13,
    RPC_UNAVAILABLE = 14,
    RPC_DATA_LOSS = 15,
    RPC_UNAUTHENTICATED = 16,
} rpc_status;

/* "OK", "CANCELLED", ... "UNAUTHENTICATED"; "UNKNOWN_CODE" out of range. */
OMS_EXTERN const char *rpc_status_name(int code);

/* Return codes of rpc_call_* functions. */
enum {
    RPC_AGAIN = 1,       /* accepted; wait for on_ready before sending more */
    RPC_ECANCELLED = -1, /* the call already ended (cancelled or finished) */
    RPC_EINVAL = -2,     /* misuse: e.g. metadata after headers went out */
    RPC_ENOMEM = -3,     /* allocation failed; the call is being failed */
    RPC_ETOOBIG = -4,    /* message could not be encoded/sent */
};

/* Method shape, from the .proto (protobuf-c descriptors do not carry it). */
enum {
    RPC_CLIENT_STREAMING = 1u << 0,
    RPC_SERVER_STREAMING = 1u << 1,
    /* The method only reads (the .proto's `option idempotency_level =
     * NO_SIDE_EFFECTS;`, which protoc-gen-omsrpc copies here; protobuf-c's
     * descriptors do not carry options): Connect may call it with GET. */
    RPC_NO_SIDE_EFFECTS = 1u << 2,
};

/* A method's handler table. Every callback is optional except on_message.
 * All fire on the call's loop; none may block. */
typedef struct rpc_method_ops {
    unsigned flags; /* RPC_CLIENT_STREAMING | RPC_SERVER_STREAMING | RPC_NO_SIDE_EFFECTS */
    /* A request message. It is borrowed: for client-streaming methods until
     * the callback returns; otherwise (one request) until the call is freed. */
    void (*on_message)(rpc_call *c, const ProtobufCMessage *req);
    /* The client sent its last message (client- and bidi-streaming only; for
     * the others it is implied before on_message). */
    void (*on_half_close)(rpc_call *c);
    /* rpc_call_send() may be called again after it returned RPC_AGAIN. */
    void (*on_ready)(rpc_call *c);
    /* The call ended before the handler finished it: deadline
     * (RPC_DEADLINE_EXCEEDED), client reset (RPC_CANCELLED), connection loss or
     * shutdown (RPC_UNAVAILABLE/RPC_CANCELLED). Fires at most once; the handler
     * must stop its work (its timers set with rpc_call_set_timer are stopped). */
    void (*on_cancel)(rpc_call *c, rpc_status code);
    /* The call object is about to be freed: release handler state. Fires
     * only for calls that reached the handler: a call an interceptor rejected
     * (or that was cancelled while an interceptor was deciding) gets no
     * handler callback at all. */
    void (*on_free)(rpc_call *c);
} rpc_method_ops;

/* One registration per protobuf-c service. ops[i] serves desc->methods[i];
 * a NULL entry answers UNIMPLEMENTED. */
typedef struct rpc_service_impl {
    const ProtobufCServiceDescriptor *desc;
    const rpc_method_ops *const *ops;
    void *data;        /* returned by rpc_call_service_data() */
    const void *typed; /* returned by rpc_call_typed(): generated code's typed
                          handler table, reached from its trampolines */
} rpc_service_impl;

typedef struct rpc_server_config {
    size_t max_recv_msg; /* bytes after decompression; default 4 MiB */
    size_t max_send_msg; /* default 0x7fffffff */
    /* Browser origins that may call (gRPC-Web, Connect) across origins:
     * "https://a.example,https://b.example", "*" for any (development);
     * NULL or "": none (no CORS headers, preflights answered 403). Copied
     * by rpc_server_new. */
    const char *cors_origins;
    /* How much a call may queue before rpc_call_send() says RPC_AGAIN is the
     * transport's: http2_server_config.stream_send_buffer. */
} rpc_server_config;

OMS_EXTERN void rpc_server_config_init(rpc_server_config *cfg);

/* --- plain HTTP beside the RPCs ----------------------------------------------
 *
 * A GET or HEAD request for a path that names no method (a browser loading a
 * page) goes to the server's HTTP handler, if one is set; without one it gets
 * 405 like any other request that is not an RPC. The handler runs on the
 * connection's loop and answers at once: it fills *resp before returning.
 * Everything in the request is borrowed for the call. */

typedef struct rpc_http_header {
    const char *name; /* lower case */
    const char *value;
} rpc_http_header;

typedef struct rpc_http_request {
    const char *method; /* "GET" or "HEAD" */
    const char *path;   /* without the query; not NUL-terminated */
    size_t path_len;
    const char *query; /* after '?' (not NUL-terminated), or NULL */
    size_t query_len;
    const char *if_none_match; /* the header, NUL-terminated, or NULL */
} rpc_http_request;

/* Zeroed before the call. The headers and the body are copied (queued on the
 * stream) after the handler returns; then release(release_arg) runs, if
 * set. status 0 answers 500. body NULL: none (a HEAD answer keeps its
 * content-length header). */
typedef struct rpc_http_response {
    int status;
    const rpc_http_header *headers;
    size_t nheaders;
    const void *body;
    size_t len;
    void (*release)(void *arg);
    void *release_arg;
} rpc_http_response;

typedef void (*rpc_http_handler)(void *data, const rpc_http_request *req, rpc_http_response *resp);

/* Sets (or, with NULL, clears) srv's HTTP handler; before serving. */
OMS_EXTERN void rpc_server_set_http_handler(rpc_server *srv, rpc_http_handler h, void *data);

/* Creates an empty server (no global state). Returns NULL on ENOMEM. */
OMS_EXTERN rpc_server *rpc_server_new(const rpc_server_config *cfg);
OMS_EXTERN void rpc_server_free(rpc_server *srv);

/* Registers a service. impl and its ops array are copied; the rpc_method_ops
 * tables, impl->typed and impl->data they point to must outlive the server.
 * Returns 0, RPC_EINVAL if a method path is already registered, RPC_ENOMEM. */
OMS_EXTERN int rpc_server_add_service(rpc_server *srv, const rpc_service_impl *impl);

/* Number and names of registered services (full names like
 * "grpc.health.v1.Health"), for reflection and health. */
OMS_EXTERN size_t rpc_server_service_count(const rpc_server *srv);
OMS_EXTERN const char *rpc_server_service_name(const rpc_server *srv, size_t i);
/* Calls cb(path, arg) for each registered method ("/package.Service/Method"),
 * in no particular order (e.g. to check a policy covers them). */
OMS_EXTERN void rpc_server_each_method(const rpc_server *srv,
                                       void (*cb)(const char *path, void *arg), void *arg);

/* The http2 stream handler that feeds this server: pass it with the server as
 * handler_data in http2_server_config. */
OMS_EXTERN const http2_stream_handler *rpc_server_stream_handler(void);

/* Calls that have started and not yet been freed on srv, over every loop and
 * thread using it (one atomic counter per server, not per thread: callable
 * from any thread). A drain waits for this to reach zero. */
OMS_EXTERN size_t rpc_server_active_calls(const rpc_server *srv);

/* --- metadata ----------------------------------------------------------- */

/* A key/value pair. Keys are lower-case. Values of "-bin" keys are raw bytes
 * (base64 is handled by rpc); others are printable ASCII. */
typedef struct rpc_md {
    const char *key;
    const uint8_t *value;
    size_t len;
} rpc_md;

typedef struct rpc_metadata {
    const rpc_md *items;
    size_t count;
} rpc_metadata;

/* First value of key, or NULL; *len gets its length. */
OMS_EXTERN const uint8_t *rpc_metadata_get(const rpc_metadata *md, const char *key, size_t *len);

/* --- calls -------------------------------------------------------------- */

/* Custom request metadata (reserved keys such as :path, te, grpc-timeout,
 * content-type, grpc-encoding are left out). Valid for the call's life. */
OMS_EXTERN const rpc_metadata *rpc_call_metadata(const rpc_call *c);

/* "/package.Service/Method". */
OMS_EXTERN const char *rpc_call_path(const rpc_call *c);
OMS_EXTERN const char *rpc_call_peer(const rpc_call *c);

/* The loop the call runs on (its connection's), for the whole call's life. */
OMS_EXTERN uv_loop_t *rpc_call_loop(const rpc_call *c);

/* Milliseconds left before the call's deadline (grpc-timeout), at least 1
 * while it runs; 0 if the call has no deadline. For propagating the deadline
 * to calls made on the call's behalf. */
OMS_EXTERN uint64_t rpc_call_remaining_ms(const rpc_call *c);

/* Whether the last request message delivered arrived compressed. */
OMS_EXTERN bool rpc_call_last_compressed(const rpc_call *c);

/* impl->data of the service. */
OMS_EXTERN void *rpc_call_service_data(const rpc_call *c);
/* impl->typed of the service. */
OMS_EXTERN const void *rpc_call_typed(const rpc_call *c);

/* --- who is calling ---------------------------------------------------------
 *
 * Authentication (an interceptor) attaches the caller's principal to the call
 * before its handler runs; handlers and later interceptors read it with
 * rpc_call_principal(). */
typedef enum rpc_principal_source {
    RPC_PRINCIPAL_TOKEN = 1, /* a verified bearer token */
    RPC_PRINCIPAL_CERT = 2,  /* a verified TLS client certificate */
} rpc_principal_source;

typedef struct rpc_principal {
    rpc_principal_source source;
    const char *subject;       /* token "sub", or the certificate's identity */
    const char *customer_id;   /* acts for this customer only; NULL: any */
    const char *const *scopes; /* granted scopes (OAuth 2.0 scope tokens) */
    size_t n_scopes;
    bool all_scopes; /* every scope: an mTLS principal the policy does not narrow */
} rpc_principal;

/* Attaches a deep copy of p (strings included; allocated from the call's
 * arena, freed with the call) as the call's principal, replacing any earlier
 * one. Returns 0, RPC_ENOMEM or RPC_EINVAL (p->subject NULL). */
OMS_EXTERN int rpc_call_set_principal(rpc_call *c, const rpc_principal *p);
/* The principal attached by authentication, or NULL when none was (auth is
 * off, or the method is public). Valid until the call is freed. */
OMS_EXTERN const rpc_principal *rpc_call_principal(const rpc_call *c);
/* Whether p was granted scope (always, when p->all_scopes). */
OMS_EXTERN bool rpc_principal_has_scope(const rpc_principal *p, const char *scope);
/* The verified TLS client certificate identity of the call's connection
 * (http2_stream_tls_identity()), or NULL. */
OMS_EXTERN const char *rpc_call_tls_identity(const rpc_call *c);

/* The call's W3C trace context (rpc/trace.h): the caller's valid traceparent
 * and tracestate, or a new trace when it sent none or an invalid one. Made on
 * first use (in the call's arena), the same for every later caller: handlers
 * and interceptors all see one trace id. NULL only on ENOMEM. */
struct rpc_trace;
OMS_EXTERN const struct rpc_trace *rpc_call_trace(rpc_call *c);

/* --- interceptors -----------------------------------------------------------
 *
 * A server's interceptors form a chain that every call goes through before
 * its handler sees anything: authentication, authorization, access logs and
 * metrics are interceptors. Each one is two callbacks:
 *
 *  - on_start(c, data, state) runs once the request headers are in, in the
 *    order the interceptors were registered, before the handler gets any
 *    callback. It can read everything known about the call: rpc_call_path(),
 *    rpc_call_service(), rpc_call_method(), rpc_call_get_type(),
 *    rpc_call_metadata(), rpc_call_peer(), rpc_call_tls_identity(),
 *    rpc_call_principal() (attached by an earlier interceptor),
 *    rpc_call_remaining_ms(). Then it
 *      - returns RPC_INTERCEPT_CONTINUE: the next interceptor starts, and after
 *        the last one the handler (on_message/on_half_close as usual);
 *      - or attaches values first: rpc_call_set_principal(), response metadata
 *        (rpc_call_add_initial_md/add_trailing_md), its own per-call *state;
 *      - or ends the call: rpc_call_reject(c, code, message) (then the return
 *        value is ignored). The client gets a Trailers-Only answer; later
 *        interceptors and the handler never see the call (no on_message, no
 *        on_cancel, no on_free);
 *      - or decides later: returns RPC_INTERCEPT_PENDING and calls
 *        rpc_call_proceed(c) or rpc_call_reject(c, ...) from the loop when it
 *        knows (e.g. after fetching keys). Request messages that arrive
 *        meanwhile are held unread (the peer's flow-control window closes
 *        behind them), and the call's deadline keeps running.
 *  - on_end(c, data, state, stats) fires exactly once for every interceptor
 *    whose on_start ran, when the call's status is decided: finished by the
 *    handler, rejected by this or a later interceptor, refused by rpc (e.g. an
 *    undecodable request), cancelled by the client, its deadline or the
 *    connection, including while an interceptor is pending. Interceptors end
 *    in the reverse order of their start (the last started ends first).
 *    on_end may read the call (accessors, principal) and drop a reference it
 *    took; the call is over, so rpc_call_proceed/reject and sends are no-ops.
 *    It fires from inside rpc_call_finish()/rpc_call_reject() when the
 *    handler or an interceptor ends the call (but never from inside the
 *    rejecting interceptor's own on_start: it then follows once that
 *    on_start returned), or from the loop on cancellation.
 *
 * Methods no service implements (unknown paths, and registered methods with
 * a NULL ops entry) go through the chain too, with rpc_call_get_type()
 * RPC_CALL_UNKNOWN, and are answered UNIMPLEMENTED after the last
 * interceptor continues (an interceptor may reject them first, e.g. with
 * UNAUTHENTICATED, so that unauthenticated callers cannot probe the method
 * table). Requests rpc refuses while parsing headers (not POST, wrong
 * content-type, malformed grpc-timeout or -bin metadata, unsupported
 * grpc-encoding) never reach the chain.
 *
 * Lifetime: an interceptor that keeps c past on_start (PENDING) and may act on
 * it after on_end (a late completion) takes rpc_call_ref() and drops it once
 * done; rpc_call_proceed()/rpc_call_reject() on a call that ended meanwhile
 * are harmless no-ops. Threading: callbacks fire on the call's loop; data is
 * shared by every loop that serves the server, so it must be thread-safe or
 * read-only when the server runs on several loops.
 *
 * Cost: a server without interceptors allocates nothing for them and reads
 * no clock; what remains is a few flag tests and the message/byte counters
 * (about 50 instructions of some 33,000 per unary call, by callgrind). */

/* What on_start decides (rpc_call_reject() ends the call instead). */
typedef enum rpc_intercept_action {
    RPC_INTERCEPT_CONTINUE = 0, /* on to the next interceptor, then the handler */
    RPC_INTERCEPT_PENDING = 1,  /* decided later: rpc_call_proceed/rpc_call_reject */
} rpc_intercept_action;

/* The call's shape (RPC_CLIENT_STREAMING | RPC_SERVER_STREAMING of its
 * method), or RPC_CALL_UNKNOWN when no handler serves it (UNIMPLEMENTED). */
typedef enum rpc_call_type {
    RPC_CALL_UNARY = 0,
    RPC_CALL_CLIENT_STREAMING = RPC_CLIENT_STREAMING,
    RPC_CALL_SERVER_STREAMING = RPC_SERVER_STREAMING,
    RPC_CALL_BIDI_STREAMING = RPC_CLIENT_STREAMING | RPC_SERVER_STREAMING,
    RPC_CALL_UNKNOWN = -1,
} rpc_call_type;

/* How a call went, for on_end (server and client side). Bytes are the gRPC
 * messages as they crossed the wire: 5-byte prefix plus payload, compressed
 * if it was (HTTP/2 framing and headers are not counted). */
typedef struct rpc_call_stats {
    rpc_status code;         /* the final status (a cancellation's code too) */
    const char *message;     /* its message, or NULL; valid during on_end */
    uint64_t duration_ns;    /* request headers (server) or rpc_channel_call
                                (client) to the end, uv_hrtime() clock */
    uint64_t msgs_received;  /* whole messages: requests (server side) */
    uint64_t bytes_received; /* or responses (client side) */
    uint64_t msgs_sent;      /* responses queued (server) / requests (client) */
    uint64_t bytes_sent;
    const rpc_principal *principal; /* server: attached principal or NULL */
} rpc_call_stats;

/* "package.Service" and "Method" of the path (for a malformed path of an
 * unknown method, "" where a part is missing). Valid for the call's life. */
OMS_EXTERN const char *rpc_call_service(const rpc_call *c);
OMS_EXTERN const char *rpc_call_method(const rpc_call *c);
/* The method's shape, RPC_CALL_UNKNOWN when no handler serves it. */
OMS_EXTERN rpc_call_type rpc_call_get_type(const rpc_call *c);
/* The shape of a registered method ("/package.Service/Method"), as
 * rpc_call_get_type() reports it for its calls: RPC_CALL_UNKNOWN if the path
 * is not registered or no handler serves it. For tables built before any
 * call (metrics with zero-valued series); not thread-safe against
 * rpc_server_add_service. */
OMS_EXTERN rpc_call_type rpc_server_method_type(const rpc_server *srv, const char *path);
/* Messages and bytes each way so far, the status once the call ended
 * (RPC_UNKNOWN before; its message only on servers with interceptors),
 * duration so far (0 on a server without interceptors: the clock is read
 * only for them). principal as rpc_call_principal. */
OMS_EXTERN void rpc_call_get_stats(const rpc_call *c, rpc_call_stats *out);

typedef struct rpc_interceptor {
    const char *name; /* for logs; may be NULL */
    /* Required. *state is this interceptor's per-call slot (NULL at first),
     * passed again to on_end: e.g. a context for a PENDING decision. */
    rpc_intercept_action (*on_start)(rpc_call *c, void *data, void **state);
    /* Optional. stats is borrowed for the callback. */
    void (*on_end)(rpc_call *c, void *data, void *state, const rpc_call_stats *stats);
} rpc_interceptor;

/* Appends an interceptor to srv's chain (order of registration = order of
 * on_start). *ic is copied; data is passed to its callbacks and must outlive
 * the server. Register before the server serves its first call. Returns 0,
 * RPC_EINVAL (no on_start) or RPC_ENOMEM. */
OMS_EXTERN int rpc_server_add_interceptor(rpc_server *srv, const rpc_interceptor *ic, void *data);

/* A PENDING interceptor's decision to go on: the next interceptor starts (or
 * the handler, which then gets the requests held meanwhile). May be called
 * from inside on_start too (then the same as returning CONTINUE). Returns 0,
 * RPC_ECANCELLED if the call ended meanwhile (a harmless no-op), RPC_EINVAL if
 * no interceptor is deciding. */
OMS_EXTERN int rpc_call_proceed(rpc_call *c);

/* Ends a call that has not reached its handler with code (not RPC_OK) and
 * message (copied; NULL for none), as a Trailers-Only answer. From on_start,
 * or later by a PENDING interceptor. Returns 0, RPC_ECANCELLED if the call
 * ended meanwhile (a no-op), RPC_EINVAL if code is RPC_OK or the handler
 * already runs (it ends calls with rpc_call_finish). */
OMS_EXTERN int rpc_call_reject(rpc_call *c, rpc_status code, const char *message);

/* Handler state. */
OMS_EXTERN void rpc_call_set_data(rpc_call *c, void *data);
OMS_EXTERN void *rpc_call_data(const rpc_call *c);

/* Zeroed memory freed with the call. NULL on ENOMEM. */
OMS_EXTERN void *rpc_call_alloc(rpc_call *c, size_t n);

/* The call's protobuf-c allocator (arena): messages unpacked through it live
 * as long as the call. */
OMS_EXTERN ProtobufCAllocator *rpc_call_allocator(rpc_call *c);

/* A protobuf-c allocator over base/alloc.h for messages that outlive a call:
 * unpack and free_unpacked with this same allocator. */
OMS_EXTERN ProtobufCAllocator *rpc_system_allocator(void);

/* Adds response metadata. Initial metadata must be added before the first
 * send or finish; trailing metadata before finish. key must be lower-case;
 * "-bin" values are base64-encoded on the wire. Both are copied.
 * Returns 0, RPC_EINVAL (bad key or too late) or RPC_ECANCELLED. */
OMS_EXTERN int rpc_call_add_initial_md(rpc_call *c, const char *key, const uint8_t *v, size_t len);
OMS_EXTERN int rpc_call_add_trailing_md(rpc_call *c, const char *key, const uint8_t *v, size_t len);

/* Whether later messages are compressed with the encoding the client accepts
 * (gzip when offered). Default: off. */
OMS_EXTERN void rpc_call_set_compress(rpc_call *c, bool on);

/* Sends the response headers (with the initial metadata added so far) now
 * rather than with the first message: for a stream whose first message may
 * be long in coming, so that the client learns at once that the call was
 * accepted (a browser's fetch() resolves only then). A no-op once they went
 * out, and for Connect unary calls, whose headers go with the status.
 * Returns 0, RPC_ECANCELLED (the call is over) or RPC_ENOMEM (the call was
 * just finished with INTERNAL). */
OMS_EXTERN int rpc_call_send_headers(rpc_call *c);

/* Serializes and queues m (response headers go first, implicitly); m is only
 * read during the call. Returns 0 if more may be sent now, RPC_AGAIN if queued
 * but the handler must wait for on_ready, or a negative code: RPC_ECANCELLED
 * (the call is over), RPC_ETOOBIG / RPC_ENOMEM (the call was just finished
 * with RESOURCE_EXHAUSTED or INTERNAL). No handler callback fires from inside
 * this function. */
OMS_EXTERN int rpc_call_send(rpc_call *c, const ProtobufCMessage *m);

/* As rpc_call_send, overriding rpc_call_set_compress for this message. */
OMS_EXTERN int rpc_call_send_ex(rpc_call *c, const ProtobufCMessage *m, bool compress);

/* --- one message, many calls (fan-out) ---------------------------------- */

/* A response message encoded once (its gRPC length prefix and protobuf
 * bytes) for sending on many calls, so that an event delivered to N
 * subscribers is packed once instead of N times. Reference-counted, not
 * thread-safe: a frame belongs to one loop's thread, like its calls. */
typedef struct rpc_frame rpc_frame;

/* Packs m (only read during the call) into a new frame holding one
 * reference (the caller's). NULL on ENOMEM or when m is larger than a gRPC
 * message can be (4 GiB). */
OMS_EXTERN rpc_frame *rpc_frame_new(const ProtobufCMessage *m);
/* Takes another reference; returns f. */
OMS_EXTERN rpc_frame *rpc_frame_ref(rpc_frame *f);
/* Drops one reference; the last one frees f. NULL is fine. */
OMS_EXTERN void rpc_frame_unref(rpc_frame *f);
/* The encoded message's size (without the 5-byte prefix). */
OMS_EXTERN size_t rpc_frame_size(const rpc_frame *f);

/* As rpc_call_send(c, m) for the m that f was made from: same return codes,
 * same flow control, same limits (max_send_msg), and compression when the
 * call has it on (then the message is compressed for this call alone).
 * f is borrowed: the bytes are queued on the call's stream before this
 * returns, so the caller may drop its reference at once, and a call that is
 * cancelled or whose connection closes later never touches f again. f must
 * hold the method's response type: another type answers RPC_EINVAL (nothing
 * sent, the call goes on). No handler callback fires from inside. */
OMS_EXTERN int rpc_call_send_frame(rpc_call *c, rpc_frame *f);

/* Holds request messages back, for a client-streaming handler that cannot
 * take more for now (e.g. it has as many requests in progress as it allows):
 * until rpc_call_resume_input(), neither on_message nor on_half_close fires,
 * and bytes that arrive stay unconsumed, so the peer's flow-control window
 * closes and the client is slowed end to end (as while a send is blocked).
 * Cancellation still fires. resume delivers what was held: it may call
 * on_message and on_half_close before it returns, except from inside
 * on_message (delivery then goes on after that callback returns). */
OMS_EXTERN void rpc_call_pause_input(rpc_call *c);
OMS_EXTERN void rpc_call_resume_input(rpc_call *c);

/* Ends the call with status code and message (UTF-8, percent-encoded on the
 * wire; NULL for none; copied) after the queued messages. Without any message
 * sent, this is a Trailers-Only response. Later calls are no-ops, and no
 * callback but on_free follows (an on_message already being delivered
 * returns first). The interceptors' on_end fire from inside this function. */
OMS_EXTERN void rpc_call_finish(rpc_call *c, rpc_status code, const char *message);

/* As rpc_call_finish, with rich error details (grpc's "richer error model"):
 * a google.rpc.Status {code, message, details} goes in the
 * grpc-status-details-bin trailer (base64 without padding; in the
 * Trailers-Only response when nothing was sent), which grpc-go's
 * status.FromError(...).Details(), grpcio's rpc_status.from_call() and grpcurl
 * decode. Each of details[0..n) (e.g. a Google__Rpc__ErrorInfo, BadRequest or
 * PreconditionFailure from google/rpc/error_details.pb-c.h) is packed into a
 * google.protobuf.Any with type_url "type.googleapis.com/<full message name>".
 * The messages are only read during the call (the caller keeps ownership).
 * If the details cannot be packed (ENOMEM) the call still ends with code and
 * message, without them. A no-op on a call that is over, like
 * rpc_call_finish. */
OMS_EXTERN void rpc_call_finish_details(rpc_call *c, rpc_status code, const char *message,
                                        const ProtobufCMessage *const *details, size_t n);

/* Ends the call after a send returned rc < 0: RESOURCE_EXHAUSTED for
 * RPC_ETOOBIG, INTERNAL otherwise; a call that is already over
 * (RPC_ECANCELLED) is left alone. */
OMS_EXTERN void rpc_call_finish_send_error(rpc_call *c, int rc);

/* Client bytes quoted for a status message, which must never echo raw
 * input: printable ASCII other than the backslash is kept; every other byte
 * (controls, backslash, anything >= 0x80, so UTF-8 letters too) becomes \xNN;
 * past RPC_QUOTE_MAX bytes of input the rest becomes "...". Writes a
 * NUL-terminated string of at most RPC_QUOTE_SIZE bytes into out and returns
 * out. RPC_QUOTE(s, len) does it into a temporary that lives until the end of
 * the enclosing block, for printf arguments. Every status message in orders
 * and rpc that quotes a request field, a header or a path goes through this. */
#define RPC_QUOTE_MAX  64
#define RPC_QUOTE_SIZE (RPC_QUOTE_MAX * 4 + 4)
OMS_EXTERN char *rpc_quote(char out[RPC_QUOTE_SIZE], const void *s, size_t len);
#define RPC_QUOTE(s, len) rpc_quote((char[RPC_QUOTE_SIZE]){0}, (s), (len))

/* Whether n bytes make a proto3 string as rpc checks them on the wire (every
 * request a server decodes, every response a client decodes): well-formed
 * UTF-8 without NUL. For clients that refuse bad input before sending it. */
OMS_EXTERN bool rpc_string_ok(const void *s, size_t n);

/* Whether the call has ended (finished or cancelled). */
OMS_EXTERN bool rpc_call_done(const rpc_call *c);

/* --- send state for humans and tests (call_debug.c) ---------------------- */

/* Writes one line about c's send side into buf (size n, always terminated):
 * blocked by RPC_AGAIN, done, and the stream's flow-control state
 * (http2_stream_describe). Returns the length written. */
OMS_EXTERN int rpc_call_describe(const rpc_call *c, char *buf, size_t n);
/* Whether on_ready will come: a send returned RPC_AGAIN and the stream will
 * call on_writable, or the call is over (on_cancel/on_free follow). */
OMS_EXTERN bool rpc_call_ready_armed(const rpc_call *c);
/* The send path's wake-up invariants (a blocked call's stream will call
 * on_writable; http2_stream_check). Returns 0, or -1 with why[]. */
OMS_EXTERN int rpc_call_check(const rpc_call *c, char *why, size_t n);

/* Fires cb(c) once after ms milliseconds, on the call's loop. One timer per
 * call: setting it again re-arms it. It is stopped when the call ends. */
OMS_EXTERN int rpc_call_set_timer(rpc_call *c, uint64_t ms, void (*cb)(rpc_call *c));

/* References for handlers that finish asynchronously. */
OMS_EXTERN void rpc_call_ref(rpc_call *c);
OMS_EXTERN void rpc_call_unref(rpc_call *c);

#endif
