/* http2_int.h - internals of the http2 layer (not installed). */
#ifndef OMS_HTTP2_INT_H
#define OMS_HTTP2_INT_H

#include <nghttp2/nghttp2.h>
#include <openssl/ssl.h>
#include <stdatomic.h>
#include <stdbool.h>

#include "http2/http2.h"

#define container_of(ptr, type, member) ((type *)((char *)(ptr)-offsetof(type, member)))

/* Stream ids of the last streams the peer ended, for STREAM_CLOSED checks. */
#define HTTP2_CLOSED_RING 16

/* Output is gathered up to this many bytes per uv_write. */
#define HTTP2_WRITE_CHUNK (256 * 1024)

/* TLS: plaintext gathered is encrypted once it reaches this many bytes
 * (four full records), and at the end of each flush. */
#define HTTP2_SEAL_CHUNK (64 * 1024)

/* Header bytes past max_header_list still decoded so that the request can
 * be answered (stream.c); a header list longer than that resets its stream
 * (an HPACK bomb decodes no further). */
#define HTTP2_HLIST_SLACK (128u << 10)

/* A closing connection that once queued this much for its peer trims the
 * heap (malloc_trim), so the memory of an attack goes back. */
#define HTTP2_TRIM_AFTER (8u << 20)

/* nghttp2 allocations of at least this many bytes (its 16 KiB frame buffer,
 * its stream map's table) get pages of their own (mem.c), which an idle
 * connection gives back to the system; at most HTTP2_PAGED_BLOCKS per
 * connection, more go to the heap as usual. */
#define HTTP2_PAGE         4096
#define HTTP2_PAGED_MIN    HTTP2_PAGE
#define HTTP2_PAGED_BLOCKS 4

/* A server connection without a stream for this long gives those pages
 * back (mem.c): long enough that a busy connection never pays the page
 * faults of taking them again, short next to the life of an idle one. */
#define HTTP2_IDLE_TRIM_MS 200

/* A block of nghttp2's on pages of its own (mem.c). */
typedef struct http2_paged {
    void *p;      /* page-aligned, or NULL: slot free */
    size_t n;     /* bytes asked for */
    bool scratch; /* a frame buffer: its bytes mean nothing between frames */
} http2_paged;

/* A growable byte buffer with a read offset. */
typedef struct http2_bytes {
    uint8_t *data;
    size_t off; /* first unread byte */
    size_t len; /* end of valid bytes */
    size_t cap;
} http2_bytes;

int http2__bytes_append(http2_bytes *b, const void *p, size_t n);
/* Makes room for n (> 0) more bytes and counts them in: returns where they
 * go (the caller writes them), NULL on ENOMEM. */
uint8_t *http2__bytes_extend(http2_bytes *b, size_t n);
void http2__bytes_dispose(http2_bytes *b);
static inline size_t http2__bytes_size(const http2_bytes *b)
{
    return b->len - b->off;
}

/* What a connection needs from its owner, a server or a client: the loop,
 * the TLS context, the nghttp2 callbacks and settings, and the per-loop
 * flusher with its list of dirty connections. */
/* Counters of an endpoint (http2_server_stats): written on its loop only,
 * read from any thread (relaxed atomics; http2__count is a plain add). */
typedef struct http2_counters {
    _Atomic uint64_t accepted, refused, closed, streams_opened, streams_closed;
    _Atomic uint64_t goaway_sent[HTTP2_GOAWAY_CODES];
    _Atomic uint64_t tls_handshakes, tls_failures, bytes_in, bytes_out;
    _Atomic uint64_t closed_by[HTTP2_CLOSE_REASONS];
    _Atomic uint64_t h1_conns, h1_requests, h1_errors; /* http2_server_http1_stats */
} http2_counters;

static inline void http2__count(_Atomic uint64_t *c, uint64_t n)
{
    atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed) + n,
                          memory_order_relaxed);
}

static inline void http2__count_goaway(http2_counters *k, uint32_t code)
{
    if (code < HTTP2_GOAWAY_CODES)
        http2__count(&k->goaway_sent[code], 1);
}

typedef struct http2_h1 http2_h1;

typedef struct http2_ep {
    uv_loop_t *loop;
    http2_counters ctr;
    bool client;
    SSL_CTX *ssl_ctx; /* client: NULL for h2c */
    http2_tls *tls;   /* server: NULL for h2c (one reference held) */
    nghttp2_session_callbacks *callbacks;
    nghttp2_option *option;
    uv_prepare_t flusher; /* flushes dirty connections before the loop blocks */
    bool flusher_on;
    http2_conn *conns; /* every live connection (doubly linked) */
    http2_conn *dirty; /* connections with output to flush (singly linked) */
    size_t nconns;
    uint32_t max_concurrent_streams;
    uint32_t stream_window;
    uint32_t conn_window;
    uint32_t max_header_list;
    size_t stream_send_buffer;
    uint64_t keepalive_ms; /* PING after this long without a read; 0 = off */
    uint64_t keepalive_timeout_ms;
    uint64_t ping_min_ms;          /* server: ping enforcement (policy.c); 0 = off */
    bool ping_without_calls;       /* server: PINGs allowed with no call open */
    uint64_t handshake_timeout_ms; /* server: TLS handshake + preface */
    uint64_t idle_timeout_ms;      /* server: GOAWAY after this long without a stream */
    uint64_t max_age_ms;           /* server: GOAWAY this long after accept */
    uint64_t age_grace_ms;         /* server: then close this much later; 0 = never */
    http2_conn_limit *limit;       /* server: the process's connection cap, or NULL */
    size_t conn_budget;            /* server: response bytes a connection may queue; 0 = no limit */
    http2_send_budget *budget;     /* server: the process's sum of those, or NULL */
    bool http1;                    /* server: HTTP/1.1 beside HTTP/2 (h1.c) */
    size_t h1_max_head;            /* server: HTTP/1.1 limits (http2_server_config) */
    size_t h1_max_headers;
    size_t h1_max_body;
    uint64_t h1_header_timeout_ms;
    uint64_t h1_idle_timeout_ms;
    const http2_stream_handler *handler; /* server: for every request stream */
    void *handler_data;
    void (*conn_gone)(struct http2_ep *ep); /* a connection was freed */
    /* server: connections without a stream, oldest first, whose pages mem.c
     * gives back HTTP2_IDLE_TRIM_MS after they joined (idle_timer). */
    struct http2_conn *idle_head, *idle_tail;
    uv_timer_t idle_timer;  /* initialized by http2_server_start */
    uint8_t readbuf[65536]; /* shared by this loop's reads: each is consumed at once */
} http2_ep;

void http2__ep_init(http2_ep *ep, uv_loop_t *loop);
/* Makes the nghttp2 callbacks and options (the TLS context is the owner's). */
int http2__ep_setup(http2_ep *ep, bool client);
/* Frees what setup made and the TLS context; safe on a partial setup. */
void http2__ep_dispose(http2_ep *ep);
/* Starts the flusher on first use. */
void http2__ep_start(http2_ep *ep);

struct http2_server {
    http2_ep ep;
    uv_tcp_t listener;
    int fd; /* the bound socket until start() hands it to listener */
    http2_server_config cfg;
    uv_timer_t grace_timer;
    uv_timer_t accept_timer; /* resumes accepting after running out of fds */
    uv_async_t budget_async; /* the process's send budget has room again */
    int spare_fd;            /* a dup of the listening socket: the listener handle
                                can be closed (to stop accepting) and reopened */
    int accept_state;        /* LISTEN_* in server.c */
    int listening;
    int draining;
    int open_handles;        /* listener, flusher, grace and accept timers (and reject
                                while it closes) not yet closed */
    uv_tcp_t reject;         /* takes a socket off the listener when there is no
                                memory for its connection, to close it */
    int rejecting;           /* reject is closing */
    uint64_t refused;        /* connections over the cap since the last log line */
    uint64_t refused_logged; /* loop time of that line */
    void (*done_cb)(http2_server *, void *);
    void *done_arg;
    int port;
};

struct http2_client {
    http2_ep ep;
    http2_client_config cfg;
    bool freeing;
    void (*done_cb)(void *);
    void *done_arg;
};

struct http2_conn {
    http2_ep *ep;
    uv_tcp_t tcp;
    uv_timer_t timer;                  /* client keepalive; server policy (policy.c) */
    uv_connect_t creq;                 /* client connect */
    int handles;                       /* libuv handles not yet closed */
    const http2_conn_handler *handler; /* client connections */
    void *data;
    char *server_name;   /* client: SNI and hostname check */
    uint64_t last_ping;  /* loop time the unanswered keepalive PING went out, or 0 */
    uint64_t ping_sent;  /* loop time the last keepalive PING went out */
    uint64_t born;       /* server: loop time of accept */
    uint64_t last_read;  /* server: loop time of the last bytes from the peer */
    uint64_t idle_since; /* server: loop time the last stream closed */
    uint64_t goaway_at;  /* server: loop time of the max-age GOAWAY */
    uint64_t drain_at;   /* server: loop time of the drain notice */
    uint64_t ping_at;    /* server: loop time of the client's last PING, 0: none yet */
    uint8_t ping_strikes;
    uint8_t why;      /* http2_close_reason, 0 (other) until one is decided */
    char reason[200]; /* why the connection closed */
    nghttp2_session *session;
    SSL *ssl;              /* NULL for h2c */
    const uint8_t *tls_in; /* ciphertext being fed to OpenSSL (borrowed, tls.c) */
    size_t tls_in_n;
    http2_conn *prev, *next;
    http2_conn *dirty_next;
    uv_write_t wreq;
    uv_buf_t wbuf;            /* bytes of the write in flight */
    http2_bytes out;          /* bytes gathered for the next write */
    http2_bytes plain;        /* TLS: one flush's frames, encrypted together into out */
    http2_stream *streams;    /* open streams (doubly linked) */
    http2_stream *writable;   /* streams waiting for on_writable (singly linked) */
    http2_stream *hdr_stream; /* server: the stream whose request headers arrive, or NULL */
    size_t nstreams;
    size_t queued;           /* response bytes queued in the streams' outq */
    size_t queued_peak;      /* the most queued at once */
    http2_stream *pend_head; /* streams whose on_open waits for the budget (FIFO) */
    http2_stream *pend_tail;
    unsigned wake_all : 1;     /* queued fell below the budget's low-water mark */
    unsigned proc_blocked : 1; /* waits on the process budget (budget.c) */
    unsigned dirty : 1;
    unsigned writing : 1;
    unsigned read_paused : 1;
    unsigned handshake_done : 1;
    unsigned closing : 1;           /* uv_close issued */
    unsigned goaway_sent : 1;       /* a terminating GOAWAY is queued */
    unsigned drain_notice : 1;      /* GOAWAY(2^31-1) sent, the real one awaits a PING ACK */
    unsigned close_after_write : 1; /* fatal error: close once output is out */
    unsigned refusing : 1;          /* reset flood: new streams never reach the handler */
    unsigned connected : 1;         /* client: the session is up, on_connected fired */
    unsigned goaway_recv : 1;       /* the peer sent GOAWAY */
    unsigned greeted : 1;           /* server: the client's first frame arrived */
    unsigned age_goaway : 1;        /* server: max connection age reached, GOAWAY sent */
    unsigned counted : 1;           /* server: holds one of the connection cap's places */
    unsigned check_failed : 1;      /* check.c ended the session */
    unsigned ping_reset : 1;        /* we sent HEADERS or DATA since the client's last PING */
    unsigned close_on_goaway : 1;   /* close once the GOAWAY queued is sent */
    unsigned linger_ping_out : 1;   /* check.c's PING is in flight */
    unsigned linger_ping_wire : 1;  /* ... and nghttp2 has sent it */
    unsigned linger_again : 1;      /* another one is needed after it */
    uint8_t bad_frame;              /* what the scan met (check.c's BAD_*), 0: nothing */
    int32_t bad_sid;
    uint32_t linger_sent, linger_acked; /* check.c's PINGs */
    uint32_t scan_skip;                 /* payload bytes the frame scan skips */
    uint8_t scan_buf[14];               /* frame header (+ PRIORITY payload) */
    uint8_t scan_len;
    uint8_t closed_pos;
    int32_t closed_ids[HTTP2_CLOSED_RING];    /* streams the peer ended (ring) */
    double rst_tokens;                        /* mirror of nghttp2's stream reset limiter */
    uint64_t rst_stamp;                       /* its last refill, in seconds */
    char *tls_identity;                       /* verified client certificate's identity, or NULL */
    http2_paged paged[HTTP2_PAGED_BLOCKS];    /* nghttp2's big blocks (mem.c) */
    struct http2_conn *idle_prev, *idle_next; /* ep->idle_head list */
    uint64_t idle_mark;                       /* loop time it joined that list */
    unsigned on_idle : 1;                     /* on ep->idle_head's list */
    unsigned trimmed : 1;                     /* pages given back, nothing sent since */
    char peer[80];
    struct http2_h1 *h1;   /* an HTTP/1.1 connection (h1.c), or NULL */
    unsigned sniffing : 1; /* h2c server: the first bytes decide HTTP/2 or HTTP/1.1 */
    http2_bytes sniff;     /* those bytes, until they do (conn.c's classify) */
};

struct http2_stream {
    http2_conn *conn;
    const http2_stream_handler *handler;
    int32_t id;
    void *data;
    /* request header block, gathered until END_HEADERS */
    http2_bytes hbuf;
    size_t nhdr;
    /* response body queued for the data provider */
    http2_bytes outq;
    nghttp2_nv *trailers;
    size_t ntrailers;
    size_t unconsumed;         /* received DATA bytes not yet returned to the windows */
    size_t hlist;              /* header list size as RFC 9113 section 6.5.2 counts it */
    http2_stream *prev, *next; /* conn->streams */
    http2_stream *writable_next;
    http2_stream *pend_next;  /* conn->pend_head list */
    http2_bytes inq;          /* request DATA held while on_open waits for the budget */
    unsigned opened : 1;      /* on_open delivered */
    unsigned responded : 1;   /* response HEADERS submitted */
    unsigned ended : 1;       /* http2_stream_end() called */
    unsigned deferred : 1;    /* the data provider returned DEFERRED */
    unsigned want_write : 1;  /* a write returned HTTP2_AGAIN */
    unsigned on_writable : 1; /* queued on conn->writable */
    unsigned closed : 1;
    unsigned too_large : 1;    /* header block over max_header_list */
    unsigned remote_ended : 1; /* the peer's END_STREAM arrived (and passed nghttp2's checks) */
    unsigned linger : 1;       /* response complete, request open: check.c resets it later */
    unsigned has_clen : 1;     /* the request carries content-length */
    unsigned held : 1;         /* response headers wait for the request's end (stream.c) */
    uint32_t linger_need;      /* linger PINGs acked after which it is reset */
    nghttp2_nv *held_nv;       /* those headers (one block with their strings) */
    size_t nheld;
    unsigned pending : 1;  /* on conn->pend_head: on_open waits for the budget */
    unsigned end_held : 1; /* the request ended while pending */
};

/* conn.c */
int http2__conn_accept(http2_server *srv);
/* A connection object for ep, linked and with its TCP handle initialized. */
http2_conn *http2__conn_new(http2_ep *ep);
/* Records why the connection is closing (first reason wins) and closes it. */
void http2__conn_fail(http2_conn *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void http2__conn_on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf);
void http2__conn_set_peer(http2_conn *c, const struct sockaddr *sa);
void http2__conn_on_read(uv_stream_t *tcp, ssize_t nread, const uv_buf_t *buf);
void http2__conn_mark_dirty(http2_conn *c);
void http2__conn_flush(http2_conn *c);
/* Starts a graceful drain (server: GOAWAY 2^31-1 and a PING, then the real
 * GOAWAY on its ACK; client: the real GOAWAY at once). */
void http2__conn_drain(http2_conn *c);
/* A PING ACK arrived: true if it was the drain's (the real GOAWAY is queued). */
bool http2__conn_drain_ack(http2_conn *c, const uint8_t *opaque);
/* The drain's PING went unanswered: the real GOAWAY now. */
void http2__conn_drain_finish(http2_conn *c);
#define HTTP2_DRAIN_ACK_WAIT_MS 1000
void http2__conn_close(http2_conn *c);
/* Records why the connection closes (first cause wins; counted at close). */
static inline void http2__conn_why(http2_conn *c, http2_close_reason why)
{
    if (!c->why && !c->closing)
        c->why = (uint8_t)why;
}

int http2__session_callbacks_new(nghttp2_session_callbacks **out);
nghttp2_option *http2__session_option_new(bool client);

/* check.c: checks nghttp2 skips without the RFC 7540 priority tree, and the
 * linger of streams answered before their request ended. */
/* Scans bytes about to be fed to nghttp2 (server side). */
void http2__check_scan(http2_conn *c, const uint8_t *p, size_t n);
/* After nghttp2 took them: acts on what the scan found. */
void http2__check_after_recv(http2_conn *c);
/* Our END_STREAM went out while the request is open. */
void http2__check_linger(http2_conn *c, http2_stream *s);
/* nghttp2 sent a PING (not an ACK). */
void http2__check_ping_sent(http2_conn *c, const uint8_t *opaque);
/* A PING ACK arrived; true if it was check.c's. */
bool http2__check_ping_ack(http2_conn *c, const uint8_t *opaque);
/* policy.c: server connection timers and the connection cap */
/* At accept: timestamps, and the timer if any policy is on. */
void http2__policy_start(http2_conn *c);
/* Re-arms the timer for the earliest deadline (after the greeting). */
void http2__policy_arm(http2_conn *c);
/* Takes a place under the cap (true), or none is left (false). NULL: no cap. */
bool http2__limit_take(http2_conn_limit *l);
void http2__limit_give(http2_conn_limit *l);
/* A client PING (not an ACK) arrived: counts strikes (grpc-go's policy) and
 * after too many queues GOAWAY(ENHANCE_YOUR_CALM, "too_many_pings"). */
void http2__policy_ping(http2_conn *c);
/* Counts a refusal; logs at most once a second. */
void http2__limit_refused(http2_server *srv);

/* budget.c: the process's send budget (NULL b: no budget) */
void http2__budget_add(http2_send_budget *b, size_t n);
/* Subtracts; wakes every registered server when the sum is below max while
 * a connection waits. */
void http2__budget_sub(http2_send_budget *b, size_t n);
/* Whether a connection holding conn_queued bytes must wait (and notes that
 * one does). */
bool http2__budget_over(http2_send_budget *b, size_t conn_queued, size_t floor);
int http2__budget_register(http2_send_budget *b, uv_async_t *a);
void http2__budget_unregister(http2_send_budget *b, uv_async_t *a);

/* tls_ctx.c */
#define HTTP2_TLS_IDENTITY_MAX 256 /* bytes */
/* TLS 1.2 (12) or 1.3 (13) minimum, AEAD suites, no renegotiation or
 * compression: for server and client contexts. */
void http2__tls_policy(SSL_CTX *ctx, int min_version);
/* "WHAT FILE: <OpenSSL's first queued error>" into err; clears the queue. */
void http2__tls_error(char *err, size_t errlen, const char *what, const char *file);
/* An SSL on t's current context (which the SSL keeps alive); NULL: ENOMEM. */
SSL *http2__tls_ssl_new(http2_tls *t);
http2_tls *http2__tls_ref(http2_tls *t);
/* The identity of certificate x (URI SAN, else DNS SAN, else CN) into *out
 * (oms_strndup'ed): 0, -1 if it has no acceptable name, -2 out of memory. */
int http2__tls_cert_identity(X509 *x, char **out);
/* Server, after the handshake: the verified client certificate's identity
 * into c->tls_identity. 0, or -1 (c->reason says why) to close. */
int http2__tls_take_identity(http2_conn *c);

/* tls.c */
SSL_CTX *http2__tls_client_ctx_new(const http2_client_config *cfg, char *err, size_t errlen);
int http2__tls_conn_init(http2_conn *c);
/* Client: sends the ClientHello. */
int http2__tls_connect(http2_conn *c);
/* Feeds ciphertext in; decrypted bytes go to http2__conn_recv(). Returns 0 or
 * -1 when the connection must close. */
int http2__tls_feed(http2_conn *c, const uint8_t *p, size_t n);
/* Encrypts plaintext into c->out, in records of up to 16 KiB: one call per
 * flush keeps the records few and full. */
int http2__tls_write(http2_conn *c, const uint8_t *p, size_t n);

/* conn.c: output gathering, for h1.c as for nghttp2's frames */
int http2__conn_gather(http2_conn *c, const void *p, size_t n);
size_t http2__conn_gathered(const http2_conn *c);
/* Runs the on_writable of the streams queued on c->writable. */
void http2__conn_notify_writable(http2_conn *c);

/* h1.c: HTTP/1.1 connections on a server's port */
/* The connection speaks HTTP/1.1 from now on (ALPN http/1.1, or the sniff). */
int http2__h1_start(http2_conn *c);
void http2__h1_free(http2_conn *c);
/* Plaintext from the peer: 0, or -1 to close. */
int http2__h1_recv(http2_conn *c, const uint8_t *p, size_t n);
/* The flush: moves the current answer's bytes into the connection's output. */
void http2__h1_fill(http2_conn *c);
/* Output written and the connection must close: shut the write side down and
 * read until the peer closes (or a short deadline). */
void http2__h1_linger(http2_conn *c);
/* Server drain: no request after the current one. */
void http2__h1_drain(http2_conn *c);
/* policy.c: the HTTP/1.1 deadline (header timeout, keep-alive idle, linger),
 * 0 for none; on_timer acts on it and says whether it did. */
uint64_t http2__h1_deadline(const http2_conn *c);
bool http2__h1_on_timer(http2_conn *c, uint64_t now);
int http2__h1_respond(http2_stream *s, const http2_header *h, size_t n);
int http2__h1_write(http2_stream *s, const uint8_t *p, size_t n);
int http2__h1_end(http2_stream *s, const http2_header *h, size_t n);
int http2__h1_reset(http2_stream *s, uint32_t h2_error);
void http2__h1_consume(http2_stream *s, size_t n);

/* conn.c, called by tls.c with plaintext. */
int http2__conn_recv(http2_conn *c, const uint8_t *p, size_t n);
/* Starts the HTTP/2 session once the transport is ready (after the TLS
 * handshake, or at once for h2c). */
int http2__conn_start_session(http2_conn *c);

/* mem.c: nghttp2's allocator (mem_user_data is the connection); blocks of
 * HTTP2_PAGED_MIN bytes or more go on pages of their own. */
void http2__mem_init(nghttp2_mem *mem, http2_conn *c);
/* Gives the pages of c's idle blocks back: a frame buffer's whole pages
 * (between frames their bytes mean nothing), and every other block's pages
 * that hold only zeros (the zero page the system maps back reads the same).
 * c must be between frames: nothing queued in nghttp2, no stream. Returns
 * the bytes given back. */
size_t http2__mem_trim(http2_conn *c);
/* The idle list (server connections): c has no stream and has written all
 * it had; idle_leave takes it off (a stream opened, or it closes). The
 * ep's idle_timer trims those idle for HTTP2_IDLE_TRIM_MS. */
void http2__idle_enter(http2_conn *c);
void http2__idle_leave(http2_conn *c);
void http2__idle_on_timer(uv_timer_t *t);

/* stream.c */
/* Runs the on_open (then the held DATA and end) of streams that waited for
 * the connection's budget, oldest first, while the budget allows. Outside
 * nghttp2 calls. */
void http2__stream_open_pending(http2_conn *c);
/* Below the budget's low-water mark again: every stream that was told AGAIN
 * gets on_writable (queued on conn->writable). */
void http2__stream_wake_all(http2_conn *c);
/* Request DATA for a stream whose on_open waits: held (flow control bounds
 * it: it is not consumed until the handler takes it). */
int http2__stream_hold_data(http2_stream *s, const uint8_t *p, size_t n);
http2_stream *http2__stream_new(http2_conn *c, int32_t id, const http2_stream_handler *h);
void http2__stream_free(http2_stream *s);
ssize_t http2__stream_read(nghttp2_session *session, int32_t stream_id, uint8_t *buf, size_t length,
                           uint32_t *data_flags, nghttp2_data_source *source, void *user_data);
/* Gathers one header field: 0, -1 out of memory, or 1 when the list is so
 * far over max_header_list that the stream must be reset at once. */
int http2__stream_add_header(http2_stream *s, const uint8_t *name, size_t namelen,
                             const uint8_t *value, size_t valuelen);
/* Hands the gathered header block to on_open (the request on a server, the
 * response on a client). */
void http2__stream_open(http2_stream *s);
/* Client: hands a trailer block to on_trailers. */
void http2__stream_trailers(http2_stream *s);
/* Queues answer bytes on s->outq, counted against the budgets: 0 or -1. */
int http2__stream_queue(http2_stream *s, const void *p, size_t n);
/* Whether s's queue is at its limit (or the budget's): then a writer waits
 * for on_writable (want_write is set). */
bool http2__stream_full(http2_stream *s);
/* n bytes left s->outq for the socket: budgets, and on_writable once low. */
void http2__stream_take(http2_stream *s, size_t n);
/* The peer's END_STREAM passed nghttp2's checks: a held response goes out. */
void http2__stream_remote_end(http2_stream *s);

#endif
