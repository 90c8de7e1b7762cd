/* http2.h - byte streams over HTTP/2 (TLS with ALPN "h2", or h2c), and
 * HTTP/1.1 requests on the same port presented as the same streams.
 *
 * This layer owns sockets, TLS and the nghttp2 sessions; it knows nothing of
 * gRPC. A server accepts connections on one libuv loop; each request stream
 * is handed to the http2_stream_handler given at creation, which answers with
 * http2_stream_respond()/write()/end()/reset().
 *
 * Threading: every object here belongs to the loop it was created on and must
 * only be touched from that loop's thread. There is no global mutable state,
 * so several servers on several loops may run side by side.
 *
 * Errors: functions returning int give 0 on success and a negative errno or
 * UV_* code on failure.
 */
#ifndef OMS_HTTP2_H
#define OMS_HTTP2_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>
#include "base/export.h"

typedef struct http2_server http2_server;
typedef struct http2_conn_limit http2_conn_limit;
typedef struct http2_send_budget http2_send_budget;
typedef struct http2_client http2_client;
typedef struct http2_conn http2_conn;
typedef struct http2_stream http2_stream;
typedef struct http2_tls http2_tls;

/* Whether a TLS server asks clients for a certificate (mTLS). */
typedef enum http2_client_auth {
    HTTP2_CLIENT_AUTH_OFF = 0,  /* no certificate asked */
    HTTP2_CLIENT_AUTH_OPTIONAL, /* asked; a client without one is accepted (no identity) */
    HTTP2_CLIENT_AUTH_REQUIRE,  /* a client without one fails the handshake */
} http2_client_auth;

/* HTTP/2 error codes (RFC 9113 section 7) used across the seam. */
enum {
    HTTP2_NO_ERROR = 0x0,
    HTTP2_PROTOCOL_ERROR = 0x1,
    HTTP2_INTERNAL_ERROR = 0x2,
    HTTP2_FLOW_CONTROL_ERROR = 0x3,
    HTTP2_SETTINGS_TIMEOUT = 0x4,
    HTTP2_STREAM_CLOSED = 0x5,
    HTTP2_FRAME_SIZE_ERROR = 0x6,
    HTTP2_REFUSED_STREAM = 0x7,
    HTTP2_CANCEL = 0x8,
    HTTP2_COMPRESSION_ERROR = 0x9,
    HTTP2_CONNECT_ERROR = 0xa,
    HTTP2_ENHANCE_YOUR_CALM = 0xb,
    HTTP2_INADEQUATE_SECURITY = 0xc,
    HTTP2_HTTP_1_1_REQUIRED = 0xd,
};

/* http2_stream_write() result when the stream's send buffer is full. */
#define HTTP2_AGAIN (-11) /* == -EAGAIN */

/* A header field. Strings are not NUL-terminated. Header blocks handed to a
 * callback are borrowed for that call only. */
typedef struct http2_header {
    const char *name;
    size_t namelen;
    const char *value;
    size_t valuelen;
} http2_header;

/* Stream callbacks, for request streams on a server and for the streams a
 * client opens. All fire on the connection's loop. After on_close the stream
 * is gone: no http2_stream_* call may follow. */
typedef struct http2_stream_handler {
    /* The peer's header block is complete (pseudo-headers included, already
     * validated by nghttp2 per RFC 9113 section 8): the request on a server,
     * the response on a client. */
    void (*on_open)(http2_stream *s, const http2_header *h, size_t n);
    /* Client streams: the trailer block (before on_end). */
    void (*on_trailers)(http2_stream *s, const http2_header *h, size_t n);
    /* DATA payload, borrowed. The bytes count against flow control until the
     * handler calls http2_stream_consume(). */
    void (*on_data)(http2_stream *s, const uint8_t *p, size_t n);
    /* The peer half-closed (END_STREAM received). */
    void (*on_end)(http2_stream *s);
    /* The send buffer drained below its low-water mark after a write that
     * returned HTTP2_AGAIN: write more (the pull model). */
    void (*on_writable)(http2_stream *s);
    /* The stream closed; h2_error is HTTP2_NO_ERROR after a clean end, else
     * the RST_STREAM/GOAWAY code or HTTP2_CANCEL when the connection died. */
    void (*on_close)(http2_stream *s, uint32_t h2_error);
    /* Server streams: the request's header block passed max_header_list
     * bytes (limit). Its headers were dropped, and no other callback follows
     * for this stream (no on_open, on_data, on_end or on_close). The handler
     * answers now, with http2_stream_end() (its own protocol's error: a
     * response header block ending the stream) or http2_stream_reset().
     * Optional: without it, http2 answers HTTP 431 itself. */
    void (*on_too_large)(http2_stream *s, uint32_t limit);
} http2_stream_handler;

typedef struct http2_server_config {
    const char *host; /* listen address, e.g. "127.0.0.1" or "::1" */
    int port;         /* 0 picks a free port (see http2_server_port()) */
    int tls;          /* 1: TLS with ALPN h2; 0: h2c with prior knowledge */
    const char *cert_file;
    const char *key_file;
    /* mTLS: client certificates must chain to a CA in client_ca_file (PEM),
     * whose names are sent in the CertificateRequest. A certificate from
     * another CA fails the handshake in both modes. Needs client_ca_file
     * unless client_auth is OFF. */
    const char *client_ca_file;
    http2_client_auth client_auth; /* default OFF */
    int tls_min_version;           /* 12 (default; 0 means 12) or 13 */
    /* A TLS context shared by several servers (see http2_tls_new()); the
     * server holds a reference. NULL: the server makes its own from the
     * fields above. */
    http2_tls *tls_ctx;
    uint32_t max_concurrent_streams; /* SETTINGS_MAX_CONCURRENT_STREAMS */
    uint32_t stream_window;          /* SETTINGS_INITIAL_WINDOW_SIZE */
    uint32_t conn_window;            /* connection receive window */
    uint32_t max_header_list;        /* SETTINGS_MAX_HEADER_LIST_SIZE */
    size_t stream_send_buffer;       /* bytes a stream may queue before AGAIN */
    uint64_t handshake_timeout_ms;   /* TLS handshake + client preface; 0 = none */
    /* Connection policy (0 turns each off; see also http2_conn_limit):
     * a connection without a stream for idle_timeout_ms gets GOAWAY(NO_ERROR)
     * and closes; one older than max_age_ms gets GOAWAY, its calls finish,
     * and age_grace_ms later (0: never) it is closed; after keepalive_ms
     * without a byte from the peer the server PINGs it and closes it if no
     * ACK comes within keepalive_timeout_ms; accepted sockets get TCP
     * keepalive probes after tcp_keepalive_s idle seconds. */
    /* Response bytes one connection may have queued (written by handlers,
     * not yet taken by the peer's flow control): over it, writes answer
     * HTTP2_AGAIN and new requests wait before on_open, until half of it is
     * left. Bounds what a peer that reads nothing costs. Default 16 MiB;
     * 0: no limit. A single write is never refused, so one message may go
     * past it. */
    size_t conn_send_budget;
    uint64_t idle_timeout_ms;      /* default 300000 (5 min) */
    uint64_t max_age_ms;           /* default 0 */
    uint64_t age_grace_ms;         /* default 0 */
    uint64_t keepalive_ms;         /* default 7200000 (2 h, as grpc-go) */
    uint64_t keepalive_timeout_ms; /* default 20000 */
    unsigned tcp_keepalive_s;      /* default 60 */
    /* Ping enforcement, as grpc-go's: a client PING less than
     * ping_min_interval_ms after the previous one (while calls are open; with
     * none open, any second PING unless ping_without_calls) is a strike,
     * unless the server sent HEADERS or DATA in between; the third strike
     * closes the connection with GOAWAY(ENHANCE_YOUR_CALM, "too_many_pings").
     * 0 turns it off. */
    uint64_t ping_min_interval_ms; /* default 300000 (5 min) */
    bool ping_without_calls;       /* default false */
    /* Shared by every server of the process (borrowed; NULL: no cap): over it,
     * a new connection is accepted and closed at once. */
    http2_conn_limit *conn_limit;
    /* Shared by every server of the process (borrowed; NULL: none): caps the
     * sum of the connections' queued response bytes (http2_send_budget_new). */
    http2_send_budget *send_budget;
    int reuseport;      /* SO_REUSEPORT: one listener per loop on one port */
    int exclusive_port; /* with reuseport: refuse a port another socket is
                           bound to (set on a group's first listener, so a
                           second server cannot join the group) */
    const http2_stream_handler *handler;
    void *handler_data; /* returned by http2_stream_server_data() */
    /* HTTP/1.1 beside HTTP/2 on the same port (default 1; 0: HTTP/2 only).
     * TLS offers ALPN "h2" and "http/1.1" (h2 preferred; with no protocol
     * agreed, as for clients that send no ALPN, the first bytes tell, as in
     * cleartext); cleartext tells the
     * HTTP/2 client preface from an HTTP/1.1 request line by the first bytes
     * ("Upgrade: h2c" is not honoured: answered as plain HTTP/1.1). Each
     * request reaches the same handler as an HTTP/2 stream (see
     * http2_stream_http_version()); one at a time per connection, pipelined
     * ones answered in order. Limits, each answered and then closed: */
    int http1;
    size_t h1_max_head;    /* target + header names and values, bytes: 431.
                              Default 16384 */
    size_t h1_max_headers; /* header fields per request: 431. Default 100 */
    /* Request bodies: a Content-Length over it is answered 413 before the
     * handler sees the request. A chunked body has no total limit here: as
     * on an HTTP/2 stream, reading stops while the handler holds
     * stream_window bytes it has not consumed (http2_stream_consume), so a
     * handler that consumes as it goes (gRPC-Web's stream of messages; rpc
     * applies its own message size limit) is never cut off, and one that
     * does not consume stalls its sender rather than our memory. Delivered
     * and unconsumed bytes over h1_max_body (possible only when it is below
     * stream_window plus one read) are answered 413 too. Default 8 MiB;
     * 0: no limit. */
    size_t h1_max_body;
    uint64_t h1_header_timeout_ms; /* a request head must arrive whole within this of its first
                                      byte, or 408 (slowloris). Default 10000; 0: none */
    uint64_t h1_idle_timeout_ms;   /* keep-alive: closed after this long between requests.
                                      Default 60000; 0: none (idle_timeout_ms does not apply) */
} http2_server_config;

/* Fills *cfg with the defaults (127.0.0.1:50051, TLS, 1000 streams, windows
 * sized for throughput). */
OMS_EXTERN void http2_server_config_init(http2_server_config *cfg);

/* Creates a server on loop and binds its listening socket. cfg is copied;
 * its strings must outlive the server. On failure returns a negative code and
 * writes a human-readable reason into err (size errlen). */
OMS_EXTERN int http2_server_new(uv_loop_t *loop, const http2_server_config *cfg, http2_server **out,
                                char *err, size_t errlen);

/* The port actually bound (useful with port 0). */
OMS_EXTERN int http2_server_port(const http2_server *srv);

/* Starts accepting connections. */
OMS_EXTERN int http2_server_start(http2_server *srv);

/* Graceful shutdown: stops accepting, sends GOAWAY to every connection and
 * lets in-flight streams finish. After grace_ms, remaining connections are
 * closed hard. done(srv, arg) fires once every connection is gone; the server
 * may then be freed. */
OMS_EXTERN void http2_server_shutdown(http2_server *srv, uint64_t grace_ms,
                                      void (*done)(http2_server *, void *), void *arg);

/* Frees a server whose shutdown completed (or that never started). */
OMS_EXTERN void http2_server_free(http2_server *srv);

/* Number of live connections. */
OMS_EXTERN size_t http2_server_conn_count(const http2_server *srv);

/* Counters of one server since it was created (metrics). Each field is read
 * with a relaxed atomic load: callable from any thread, while the server's
 * loop keeps counting (the fields are not one snapshot). */
#define HTTP2_GOAWAY_CODES 14 /* NO_ERROR (0) .. HTTP_1_1_REQUIRED (13) */
/* Why a server connection closed (http2_server_stats.closed_by): the first
 * cause decided wins (an idle GOAWAY the peer then answers by closing counts
 * as idle). Names: http2_close_reason_name(). */
typedef enum http2_close_reason {
    HTTP2_CLOSE_OTHER = 0,         /* anything else (out of memory, write error) */
    HTTP2_CLOSE_PEER,              /* the peer closed the connection (EOF, close_notify) */
    HTTP2_CLOSE_IDLE,              /* max connection idle: GOAWAY, then closed */
    HTTP2_CLOSE_AGE,               /* max connection age (and its grace) */
    HTTP2_CLOSE_LIMIT,             /* over the connection cap, closed at once */
    HTTP2_CLOSE_FLOOD,             /* ENHANCE_YOUR_CALM: frame/reset/ping floods */
    HTTP2_CLOSE_PROTOCOL_ERROR,    /* a GOAWAY with another error code (bad frames) */
    HTTP2_CLOSE_KEEPALIVE_TIMEOUT, /* keepalive PING unanswered, handshake timeout */
    HTTP2_CLOSE_DRAIN,             /* server shutdown drain (and its grace period) */
    HTTP2_CLOSE_TLS_ERROR,         /* TLS handshake or record failure */
    HTTP2_CLOSE_REASONS
} http2_close_reason;
typedef struct http2_server_stats {
    uint64_t accepted; /* connections taken in (within the cap) */
    uint64_t refused;  /* connections closed at once, over the cap */
    uint64_t closed;   /* connections closed (accepted or refused) */
    uint64_t streams_opened;
    uint64_t streams_closed;
    uint64_t goaway_sent[HTTP2_GOAWAY_CODES]; /* GOAWAYs we sent, by error code */
    uint64_t tls_handshakes;                  /* completed (ALPN h2) */
    uint64_t tls_failures;                    /* handshakes that failed */
    uint64_t bytes_in, bytes_out;             /* on the socket (TLS records included) */
} http2_server_stats;
OMS_EXTERN void http2_server_get_stats(const http2_server *srv, http2_server_stats *out);
/* The closed connections of one server by reason (out[HTTP2_CLOSE_REASONS],
 * indexed by http2_close_reason; they sum to http2_server_stats.closed).
 * Relaxed atomic loads, like http2_server_get_stats: any thread. A separate
 * call so that http2_server_stats keeps its size (docs/ABI.md). */
OMS_EXTERN void http2_server_get_closed_by(const http2_server *srv,
                                           uint64_t out[HTTP2_CLOSE_REASONS]);
/* HTTP/1.1 on a server (http2_server_config.http1): connections that chose
 * it, requests they carried, and requests the transport refused itself
 * (400, 405, 408, 413, 431). Their connections count in
 * http2_server_stats and the close reasons like HTTP/2 ones: "peer" after
 * the client's EOF or its "Connection: close", "idle" for keep-alive,
 * "protocol_error" after a refused request, "keepalive_timeout" after the
 * header timeout (408), "drain" on shutdown. Relaxed loads: any thread. */
typedef struct http2_http1_stats {
    uint64_t connections;
    uint64_t requests;
    uint64_t refused;
} http2_http1_stats;
OMS_EXTERN void http2_server_get_http1_stats(const http2_server *srv, http2_http1_stats *out);
/* The HTTP/2 name of a GOAWAY/RST error code ("NO_ERROR"), "UNKNOWN" past 13. */
OMS_EXTERN const char *http2_error_name(uint32_t code);
/* The metric label of a close reason ("peer", "idle", ..., "other"); "other"
 * for values out of range. */
OMS_EXTERN const char *http2_close_reason_name(int reason);

/* A cap on the connections open at once, shared by the servers of a process
 * (http2_server_config.conn_limit): thread-safe. It must outlive the servers
 * that use it. NULL on ENOMEM. */
OMS_EXTERN http2_conn_limit *http2_conn_limit_new(size_t max);
OMS_EXTERN void http2_conn_limit_free(http2_conn_limit *l);
/* Connections holding a place now. */
OMS_EXTERN size_t http2_conn_limit_open(const http2_conn_limit *l);

/* The response bytes all connections of the process may hold for their peers
 * (http2_server_config.send_budget; budget.c explains the rule): over max, a
 * connection holding at least one stream's send buffer waits as if over its
 * own budget, until the sum is below max again. Thread-safe; it must outlive
 * the servers that use it. max 0: no limit. NULL on ENOMEM. */
OMS_EXTERN http2_send_budget *http2_send_budget_new(size_t max);
OMS_EXTERN void http2_send_budget_free(http2_send_budget *b);
/* Bytes queued now, summed over the process. */
OMS_EXTERN size_t http2_send_budget_queued(const http2_send_budget *b);

/* --- server TLS context (certificate, key, client CA; reload) ------------ *
 *
 * Policy for every server context: TLS 1.2 minimum (tls_min_version 13
 * raises it), TLS 1.2 suites ECDHE with AES-GCM or CHACHA20-POLY1305 only
 * (TLS 1.3 suites are all AEAD), no renegotiation, no compression, ALPN h2.
 * The identity of a verified client certificate is its first URI SAN, else
 * its first DNS SAN, else its subject CN, and must be 1..256 bytes of UTF-8
 * without control characters (NUL included): a verified certificate without
 * such a name is refused (the connection closes after the handshake). See
 * http2_stream_tls_identity(). */

/* Loads cfg->cert_file, key_file and (with client_auth) client_ca_file into
 * a new context; the file names are copied, to be read again by reload.
 * Warns (once, here) if the key file is readable by group or others.
 * Returns NULL with a reason in err on failure. Thread-safe object. */
OMS_EXTERN http2_tls *http2_tls_new(const http2_server_config *cfg, char *err, size_t errlen);

/* Re-reads the certificate, key and client CA files into a NEW context that
 * new connections get from now on; open connections keep the one they were
 * accepted with until they close (nothing is dropped). On failure (err says
 * why) the current context stays. Any thread. */
OMS_EXTERN int http2_tls_reload(http2_tls *t, char *err, size_t errlen);

/* Drops the caller's reference (servers using it hold their own). NULL ok. */
OMS_EXTERN void http2_tls_free(http2_tls *t);

/* http2_tls_reload() on the server's context (shared or its own): with a
 * shared context, every server sharing it sees the change. UV_EINVAL for an
 * h2c server. Any thread. */
OMS_EXTERN int http2_server_reload_tls(http2_server *srv, char *err, size_t errlen);

/* Logs (at info) one line per connection and per stream: flow-control
 * windows, queued bytes, data provider and on_writable state (debug.c; omsd
 * calls it on SIGUSR1). Loop thread only. */
OMS_EXTERN void http2_server_dump(const http2_server *srv);

/* --- client ------------------------------------------------------------- */

typedef struct http2_client_config {
    int tls;               /* 1: TLS, ALPN h2, peer verified; 0: h2c */
    const char *ca_file;   /* PEM roots; NULL: OpenSSL's default paths */
    const char *cert_file; /* optional client certificate (mTLS) */
    const char *key_file;
    uint32_t stream_window; /* as for the server */
    uint32_t conn_window;
    uint32_t max_header_list;
    size_t stream_send_buffer;
    uint64_t keepalive_ms;         /* PING this often while connected; 0 = off */
    uint64_t keepalive_timeout_ms; /* close when the PING ACK is this late */
} http2_client_config;

OMS_EXTERN void http2_client_config_init(http2_client_config *cfg);

/* Creates the client side for one loop: TLS context and nghttp2 setup shared
 * by its connections. cfg is copied; its strings are only read here. */
OMS_EXTERN int http2_client_new(uv_loop_t *loop, const http2_client_config *cfg, http2_client **out,
                                char *err, size_t errlen);

/* Closes every connection (their streams get on_close, then the connection
 * handlers' on_close) and frees the client once libuv is done with it;
 * done(arg) then fires (never from inside this call). */
OMS_EXTERN void http2_client_free(http2_client *cl, void (*done)(void *), void *arg);

/* Connection events for client connections. */
typedef struct http2_conn_handler {
    /* TCP up, TLS verified with ALPN h2 (or h2c): streams may be opened. */
    void (*on_connected)(http2_conn *c);
    /* The peer sent GOAWAY: open no new streams here. Streams it did not
     * process close with HTTP2_REFUSED_STREAM (safe to retry elsewhere). */
    void (*on_goaway)(http2_conn *c, uint32_t h2_error);
    /* The connection is gone (after every stream's on_close); reason says
     * why, e.g. "connect: connection refused" or a certificate error. */
    void (*on_close)(http2_conn *c, const char *reason);
} http2_conn_handler;

/* Starts connecting to addr. server_name is used for SNI and the
 * certificate's hostname/IP check (copied; NULL: no check, h2c). Returns 0
 * with *out set (events follow on h) or a negative code (nothing follows). */
OMS_EXTERN int http2_client_connect(http2_client *cl, const struct sockaddr *addr,
                                    const char *server_name, const http2_conn_handler *h,
                                    void *data, http2_conn **out);

OMS_EXTERN void *http2_conn_data(const http2_conn *c);
/* Closes at once: open streams get on_close(HTTP2_CANCEL), then on_close. */
OMS_EXTERN void http2_conn_close(http2_conn *c, const char *reason);
/* Why the connection is closing or closed, or NULL while it is fine. The
 * string belongs to c: it does not change once returned and stays valid until
 * c is freed, right after its handler's on_close returns (copy it to keep it
 * longer). */
OMS_EXTERN const char *http2_conn_error(const http2_conn *c);
/* Open streams on the connection. */
OMS_EXTERN size_t http2_conn_stream_count(const http2_conn *c);
/* Peer address "ip:port" ("[ip6]:port"; "?" until the socket is connected).
 * The string belongs to c and stays valid until c is freed, right after its
 * handler's on_close returns; copy it to keep it longer. */
OMS_EXTERN const char *http2_conn_peer(const http2_conn *c);

/* Opens a client stream with request headers h (copied; pseudo-headers
 * first). The body follows with http2_stream_write() and ends with
 * http2_stream_end(s, NULL, 0). Returns NULL if the connection cannot take
 * a stream (not connected, GOAWAY, closing, ENOMEM). */
OMS_EXTERN http2_stream *http2_conn_request(http2_conn *c, const http2_header *h, size_t n,
                                            const http2_stream_handler *sh, void *data);

/* Flags for http2_conn_request_ex: this header's name / value is borrowed
 * rather than copied. */
#define HTTP2_KEEP_NAME  1u
#define HTTP2_KEEP_VALUE 2u

/* As http2_conn_request, with flags[i] (HTTP2_KEEP_*) for h[i] (flags may be
 * NULL: everything copied). A kept name or value is not copied: it must stay
 * valid and unchanged until the connection is gone (after its on_close),
 * e.g. a string literal or a string the connection's owner keeps, and a
 * kept name must be lower case. For the headers every request repeats. */
OMS_EXTERN http2_stream *http2_conn_request_ex(http2_conn *c, const http2_header *h, size_t n,
                                               const uint8_t *flags, const http2_stream_handler *sh,
                                               void *data);

/* --- streams ------------------------------------------------------------ */

/* Per-stream pointer for the handler's state. */
OMS_EXTERN void http2_stream_set_data(http2_stream *s, void *data);
OMS_EXTERN void *http2_stream_data(const http2_stream *s);
/* cfg->handler_data of the server that accepted the stream (NULL for
 * client streams). */
OMS_EXTERN void *http2_stream_server_data(const http2_stream *s);
/* The stream's connection. */
OMS_EXTERN http2_conn *http2_stream_conn(const http2_stream *s);
OMS_EXTERN uv_loop_t *http2_stream_loop(const http2_stream *s);
OMS_EXTERN int32_t http2_stream_id(const http2_stream *s);

/* Submits response headers (":status" first). The header strings are copied.
 * Returns 0, UV_ENOMEM (nothing was queued: the stream is still unanswered),
 * or another negative code if the stream is closed or headers went out. */
OMS_EXTERN int http2_stream_respond(http2_stream *s, const http2_header *h, size_t n);

/* Queues body bytes (copied) behind the response (or request) headers. Returns 0 while the
 * stream's send buffer is below its limit, HTTP2_AGAIN once it is at or above
 * it (the bytes were still queued: wait for on_writable before writing more),
 * or another negative code if the stream is closed. */
OMS_EXTERN int http2_stream_write(http2_stream *s, const uint8_t *p, size_t n);

/* Ends the response (or request) after queued bytes: with trailers (n > 0)
 * or with an empty END_STREAM. On a server, if respond() was never called, h
 * is sent as the only header block (a "Trailers-Only" response; it must then
 * hold ":status"). Out of memory (UV_ENOMEM), the stream is reset instead
 * (RST_STREAM INTERNAL_ERROR, see http2_stream_reset()): a stream the
 * handler ended never waits for an end that cannot come. */
OMS_EXTERN int http2_stream_end(http2_stream *s, const http2_header *h, size_t n);

/* Sends RST_STREAM with h2_error; on_close follows. If nghttp2 cannot queue
 * it (out of memory), the whole connection is closed instead (every stream
 * gets on_close(HTTP2_CANCEL)), so no peer waits for a lost answer. */
OMS_EXTERN int http2_stream_reset(http2_stream *s, uint32_t h2_error);

/* Returns n bytes of received DATA to the flow-control windows (stream and
 * connection), letting the peer send more. */
OMS_EXTERN void http2_stream_consume(http2_stream *s, size_t n);

/* Bytes queued by write() not yet handed to nghttp2. */
OMS_EXTERN size_t http2_stream_pending(const http2_stream *s);

/* The HTTP version a server stream arrived over: 2, or 1 for a request on
 * an HTTP/1.1 connection (http2_server_config.http1). Every call above works
 * on both; over HTTP/1.1, respond() is the status line and headers (chunked
 * unless they hold content-length), write() one chunk, end() the last chunk
 * with the trailers as a chunked trailer section (dropped when the body is
 * not chunked), reset() closes the connection, and on_writable/consume
 * pace the socket as the HTTP/2 windows do. Out of memory (UV_ENOMEM) in
 * respond(), write() or end() closes the connection too (on_close follows):
 * an HTTP/1.1 answer cannot be retried later or in part. */
OMS_EXTERN int http2_stream_http_version(const http2_stream *s);

/* Peer address of the stream's connection as "ip:port" (for logs). */
OMS_EXTERN const char *http2_stream_peer(const http2_stream *s);

/* The identity of the verified TLS client certificate of the stream's
 * connection (URI SAN, else DNS SAN, else subject CN), or NULL: no TLS, no
 * client certificate, or not verified. Lives as long as the connection. */
OMS_EXTERN const char *http2_stream_tls_identity(const http2_stream *s);

/* --- state for humans and tests (debug.c) ------------------------------- */

/* Writes one line about s into buf (size n, always terminated): send windows
 * (stream and connection), queued bytes, whether the data provider is
 * deferred, whether a writer waits for on_writable, the connection's output
 * state. Returns the length written. */
OMS_EXTERN int http2_stream_describe(const http2_stream *s, char *buf, size_t n);
/* The wake-up invariant of the pull model: bytes queued are never left
 * behind a deferred data provider, and a writer waiting for on_writable has
 * bytes queued whose draining will call it. Returns 0, or -1 with why[]. */
OMS_EXTERN int http2_stream_check(const http2_stream *s, char *why, size_t n);
/* Whether on_writable will come (or the stream is closed, so on_close
 * will): a write returned HTTP2_AGAIN and has not been answered yet, or the
 * call is queued. */
OMS_EXTERN bool http2_stream_writable_armed(const http2_stream *s);

#endif
