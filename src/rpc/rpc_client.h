/* rpc_client.h - calling gRPC services: channels and client calls.
 *
 * A channel targets one or more addresses ("host:port[,host:port...]"; a
 * name resolving to several addresses counts as several) over TLS (CA
 * verification, hostname check, SNI, ALPN h2, optional client certificate)
 * or h2c. It connects lazily, reconnects with gRPC's connection-backoff rules,
 * spreads calls round-robin over ready connections, honours GOAWAY (new calls
 * go to a fresh connection while in-flight ones finish) and retries calls per
 * its retry policy while they have not received response headers.
 *
 * Calls use the same pull model as the server side (rpc.h): on_message per
 * response message, rpc_client_call_send() returns RPC_AGAIN when the stream
 * is full and on_ready says when to go on. A call always ends with exactly
 * one on_status; the call object is freed right after it returns.
 *
 * Threading: a channel and its calls belong to the loop they were created on.
 */
#ifndef OMS_RPC_CLIENT_H
#define OMS_RPC_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "rpc/rpc.h"
#include "base/export.h"

typedef struct rpc_channel rpc_channel;
typedef struct rpc_client_call rpc_client_call;

/* gRPC retry policy (gRFC A6). A call is retried only while it has received
 * no response headers, and the deadline covers every attempt. A stream the
 * server refused unprocessed (REFUSED_STREAM, e.g. after GOAWAY) is retried
 * transparently, whatever the policy. */
typedef struct rpc_retry_policy {
    int max_attempts;            /* 1 disables retries; default 3 (capped at 5) */
    uint64_t initial_backoff_ms; /* default 100 */
    uint64_t max_backoff_ms;     /* default 2000 */
    double backoff_multiplier;   /* default 2.0; each wait is random in [0, backoff] */
    uint32_t retryable_codes;    /* bit (1u << code); default UNAVAILABLE */
    size_t buffer_limit;         /* bytes of sent messages kept for replay; past
                                    it the call commits (no retry). Default 256 KiB */
} rpc_retry_policy;

typedef struct rpc_channel_config {
    const char *target;      /* "host:port[,host:port...]"; IPv6 as [::1]:port */
    bool tls;                /* default true */
    const char *ca_file;     /* PEM roots; NULL: the system's default paths */
    const char *server_name; /* SNI and hostname check; default: the target host */
    const char *cert_file;   /* optional client certificate (mTLS) */
    const char *key_file;
    /* connection backoff (gRPC doc/connection-backoff.md), milliseconds */
    uint64_t backoff_initial_ms;   /* default 1000 */
    double backoff_multiplier;     /* default 1.6 */
    double backoff_jitter;         /* default 0.2 */
    uint64_t backoff_max_ms;       /* default 120000 */
    uint64_t connect_timeout_ms;   /* default 20000 (MIN_CONNECT_TIMEOUT) */
    uint64_t keepalive_ms;         /* PING interval; 0 = off (default) */
    uint64_t keepalive_timeout_ms; /* default 20000 */
    size_t max_recv_msg;           /* default 4 MiB */
    rpc_retry_policy retry;
    const char *user_agent; /* default "oms-c/VERSION" */
    /* Call credentials: every call carries "authorization: Bearer <token>",
     * on every attempt. token is a static token (copied). token_provider, if
     * set, is asked instead for each call (before its first attempt, on the
     * loop) with token_data and the call's path; it returns a token that is
     * copied at once, or NULL to fail the call locally with UNAUTHENTICATED.
     * A token that is not a printable-ASCII header value fails the call with
     * UNAUTHENTICATED too. Tokens are never logged. They are installed as the
     * channel's first client interceptor (rpc_channel_add_interceptor). Sent
     * over h2c too: use TLS wherever the token matters. */
    const char *token;
    const char *(*token_provider)(void *token_data, const char *path);
    void *token_data;
} rpc_channel_config;

OMS_EXTERN void rpc_channel_config_init(rpc_channel_config *cfg);

/* Creates a channel (no connection is made until the first call). cfg is
 * copied (strings too). Returns NULL with a reason in err on a malformed
 * target or unreadable TLS files. */
OMS_EXTERN rpc_channel *rpc_channel_new(uv_loop_t *loop, const rpc_channel_config *cfg, char *err,
                                        size_t errlen);

/* Cancels every call (each gets on_status CANCELLED), closes connections and
 * frees the channel once its handles are closed; done(arg) then fires. */
OMS_EXTERN void rpc_channel_free(rpc_channel *ch, void (*done)(void *arg), void *arg);

/* --- calls -------------------------------------------------------------- */

typedef struct rpc_client_ops {
    unsigned flags; /* RPC_CLIENT_STREAMING | RPC_SERVER_STREAMING, as in rpc.h */
    /* Response headers arrived (initial metadata; -bin values decoded). */
    void (*on_headers)(rpc_client_call *c, const rpc_metadata *md);
    /* A response message. With RPC_SERVER_STREAMING it is borrowed for the
     * callback only. Without (a unary response), the first message stays
     * valid until on_status returns, so it may be kept by pointer and used
     * there (further messages, a protocol violation, are borrowed). Copy
     * what must outlive on_status. */
    void (*on_message)(rpc_client_call *c, const ProtobufCMessage *resp);
    /* rpc_client_call_send() may be called again after RPC_AGAIN. */
    void (*on_ready)(rpc_client_call *c);
    /* The call ended: the server's status, or a local one (DEADLINE_EXCEEDED,
     * CANCELLED, UNAVAILABLE with the connection error as message). message is
     * never NULL; trailers hold the trailing metadata. Required. */
    void (*on_status)(rpc_client_call *c, rpc_status code, const char *message,
                      const rpc_metadata *trailers);
} rpc_client_ops;

typedef struct rpc_call_opts {
    uint64_t timeout_ms; /* 0: no deadline */
    const rpc_md *md;    /* request metadata, copied */
    size_t nmd;
    bool compress;       /* gzip the request messages */
    bool wait_for_ready; /* queue while no connection is ready instead of failing fast */
    /* The trace context (rpc/trace.h) this call is made on behalf of, e.g. a
     * server call's rpc_call_trace(); copied. Client interceptors read it with
     * rpc_client_call_trace() (rpc_trace_client_interceptor sends it on). */
    const struct rpc_trace *trace;
    /* rpc_blocking_unary() only (ignored elsewhere): if details is not NULL,
     * *details receives a malloc'ed copy of the status details of a failed
     * call (see rpc_client_call_status_details()) and *details_len their
     * length, or NULL and 0 if there are none. The caller frees *details. */
    uint8_t **details;
    size_t *details_len;
} rpc_call_opts;

/* Starts a call to path ("/pkg.Service/Method") whose responses are decoded
 * as resp. opts may be NULL. ops must outlive the call. Returns NULL on ENOMEM
 * (no callback fires then). Never fails otherwise: errors arrive through
 * on_status, never from inside this function. */
OMS_EXTERN rpc_client_call *rpc_channel_call(rpc_channel *ch, const char *path,
                                             const ProtobufCMessageDescriptor *resp,
                                             const rpc_client_ops *ops, void *data,
                                             const rpc_call_opts *opts);

/* Queues one request message (copied). Returns 0 if more may be sent now,
 * RPC_AGAIN if the caller should wait for on_ready, RPC_ECANCELLED if the call
 * is over or already half-closed. */
OMS_EXTERN int rpc_client_call_send(rpc_client_call *c, const ProtobufCMessage *m);

/* As rpc_client_call_send, choosing compression for this message. A message
 * is compressed only in a call started with opts->compress (which sends
 * grpc-encoding: gzip); there, compress=false sends it uncompressed. */
OMS_EXTERN int rpc_client_call_send_ex(rpc_client_call *c, const ProtobufCMessage *m,
                                       bool compress);

/* Inside on_message: whether that response message arrived compressed. */
OMS_EXTERN bool rpc_client_call_last_compressed(const rpc_client_call *c);

/* Half-closes: no more request messages (END_STREAM follows the messages
 * already queued). Returns 0, or RPC_ECANCELLED if the call is over or was
 * half-closed before (a harmless no-op then). Never calls back from inside. */
OMS_EXTERN int rpc_client_call_close_send(rpc_client_call *c);

/* Cancels: RST_STREAM(CANCEL) to the server, on_status(CANCELLED) follows
 * (later, from the loop; never from inside this function). */
OMS_EXTERN void rpc_client_call_cancel(rpc_client_call *c);

/* Inside on_status: the rich error details the server sent with its status
 * (the grpc-status-details-bin trailer, base64-decoded: a serialized
 * google.rpc.Status: protoc-c's google__rpc__status__unpack() for
 * google/rpc/status.proto reads it; see rpc_call_finish_details() in rpc.h). NULL
 * with *len = 0 when there are none, the trailer was not valid base64, or the
 * status is a local one (deadline, cancellation, connection loss). The bytes
 * belong to the call: valid until on_status returns, copy what you keep. */
OMS_EXTERN const uint8_t *rpc_client_call_status_details(const rpc_client_call *c, size_t *len);

/* Memory that belongs to the call: zeroed, aligned for any type, valid until
 * on_status returns (it goes with the call). E.g. a stub's per-call state:
 * rpc_channel_call(..., NULL, ...), then rpc_client_call_alloc() and
 * rpc_client_call_set_data(). NULL on ENOMEM. */
OMS_EXTERN void *rpc_client_call_alloc(rpc_client_call *c, size_t n);

OMS_EXTERN void *rpc_client_call_data(const rpc_client_call *c);
OMS_EXTERN void rpc_client_call_set_data(rpc_client_call *c, void *data);
/* Attempts made so far (1 + retries). */
OMS_EXTERN int rpc_client_call_attempts(const rpc_client_call *c);

/* Ends the call with a local status (code, message copied; NULL for none):
 * the stream, if any, is reset and on_status(code, message) follows from the
 * loop, never from inside this function. A no-op on a call that is over. */
OMS_EXTERN void rpc_client_call_fail(rpc_client_call *c, rpc_status code, const char *message);

/* "/pkg.Service/Method" of the call. */
OMS_EXTERN const char *rpc_client_call_path(const rpc_client_call *c);
/* The call's shape, from its rpc_client_ops.flags (never RPC_CALL_UNKNOWN). */
OMS_EXTERN rpc_call_type rpc_client_call_type(const rpc_client_call *c);

/* The call's request metadata (opts->md and what interceptors added), valid
 * until the call is freed or metadata is added. */
OMS_EXTERN rpc_metadata rpc_client_call_metadata(const rpc_client_call *c);

/* Adds request metadata (key and value copied), sent with every attempt,
 * retries included. Only before the call's first attempt: from a client
 * interceptor's on_start (or right after rpc_channel_call returns). key must
 * be a legal, non-reserved lower-case key; values of "-bin" keys are raw
 * bytes, others printable ASCII. Returns 0, RPC_EINVAL (bad key or value, or
 * too late) or RPC_ENOMEM. */
OMS_EXTERN int rpc_client_call_add_md(rpc_client_call *c, const char *key, const uint8_t *v,
                                      size_t len);

/* The call's opts->trace (a copy), or NULL when it was made without one. */
OMS_EXTERN const struct rpc_trace *rpc_client_call_trace(const rpc_client_call *c);

/* --- client interceptors -------------------------------------------------------
 *
 * A channel's chain of interceptors sees every call made on it:
 *  - on_start(c, data) runs once per call, before its first attempt (from the
 *    loop, never from inside rpc_channel_call), in registration order. It may
 *    read the call (rpc_client_call_path, rpc_client_call_metadata), add
 *    request metadata (rpc_client_call_add_md: e.g. authorization), or fail
 *    the call locally (rpc_client_call_fail: later interceptors do not start,
 *    nothing is sent, on_status gets that status).
 *  - on_end(c, data, stats) fires once for every interceptor whose on_start
 *    ran, in reverse order, right before the call's on_status: final status,
 *    duration from rpc_channel_call, request messages and bytes queued (each
 *    once, however many attempts replayed them), response messages and bytes
 *    received (of every attempt). stats->principal is NULL. It may read the
 *    call; it must not start, fail or cancel it.
 * A call cancelled or failed before its first attempt started (e.g. its
 * channel was freed) skips on_start and so on_end. Callbacks fire on the
 * channel's loop. */
typedef struct rpc_client_interceptor {
    const char *name;                                 /* for logs; may be NULL */
    void (*on_start)(rpc_client_call *c, void *data); /* optional */
    void (*on_end)(rpc_client_call *c, void *data, const rpc_call_stats *stats); /* optional */
} rpc_client_interceptor;

/* Appends an interceptor to ch's chain (*ic copied; data must outlive the
 * channel). Calls started before it was added do not see it. Returns 0 or
 * RPC_ENOMEM. */
OMS_EXTERN int rpc_channel_add_interceptor(rpc_channel *ch, const rpc_client_interceptor *ic,
                                           void *data);

/* A client interceptor that sends W3C trace context on every call: a
 * traceparent with the trace id of rpc_client_call_trace() (a new trace when
 * the call has none) and a new span id, and its tracestate. data: NULL. */
OMS_EXTERN const rpc_client_interceptor *rpc_trace_client_interceptor(void);

/* --- blocking helper, for command-line programs ---------------------------- */

/* Runs one unary call to completion on the channel's loop (which must not be
 * running). On RPC_OK, *resp holds the decoded response (free it with
 * protobuf_c_message_free_unpacked(*resp, NULL)). msg receives the status
 * message (may be NULL). */
OMS_EXTERN rpc_status rpc_blocking_unary(rpc_channel *ch, const char *path,
                                         const ProtobufCMessage *req,
                                         const ProtobufCMessageDescriptor *resp_desc,
                                         ProtobufCMessage **resp, const rpc_call_opts *opts,
                                         char *msg, size_t msglen);

#endif
