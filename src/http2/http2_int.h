/* http2_int.h - internals of the http2 layer (not installed). */
#ifndef OMS_HTTP2_INT_H
#define OMS_HTTP2_INT_H

#include <nghttp2/nghttp2.h>
#include <openssl/ssl.h>
#include <stdbool.h>

#include "http2/http2.h"

#define container_of(ptr, type, member) ((type *)((char *)(ptr)-offsetof(type, member)))

/* Output is gathered up to this many bytes per uv_write. */
#define HTTP2_WRITE_CHUNK (256 * 1024)
/* Most request header bytes (names + values) we buffer for one stream before
 * nghttp2's own SETTINGS_MAX_HEADER_LIST_SIZE check fires. */
#define HTTP2_READ_BUF 65536

/* A growable byte buffer with a read offset. */
typedef struct http2_bytes {
    uint8_t *data;
    size_t off; /* first unread byte */
    size_t len; /* end of valid bytes */
    size_t cap;
} http2_bytes;

int http2__bytes_append(http2_bytes *b, const void *p, size_t n);
void http2__bytes_dispose(http2_bytes *b);
static inline size_t http2__bytes_size(const http2_bytes *b)
{
    return b->len - b->off;
}

struct http2_server {
    uv_loop_t *loop;
    uv_tcp_t listener;
    int fd; /* the bound socket until start() hands it to listener */
    http2_server_config cfg;
    SSL_CTX *ssl_ctx; /* NULL for h2c */
    nghttp2_session_callbacks *callbacks;
    nghttp2_option *option;
    uv_prepare_t flusher; /* flushes dirty connections before the loop blocks */
    uv_timer_t grace_timer;
    http2_conn *conns;    /* every live connection (doubly linked) */
    http2_conn *dirty;    /* connections with output to flush (singly linked) */
    size_t nconns;
    int listening;
    int draining;
    int open_handles; /* listener, flusher, grace timer not yet closed */
    void (*done_cb)(http2_server *, void *);
    void *done_arg;
    char bound[80];
    int port;
    uint8_t readbuf[65536]; /* shared by this loop's reads: each is consumed at once */
};

struct http2_conn {
    http2_server *srv;
    uv_tcp_t tcp;
    nghttp2_session *session;
    SSL *ssl; /* NULL for h2c */
    BIO *rbio, *wbio;
    http2_conn *prev, *next;
    http2_conn *dirty_next;
    uv_write_t wreq;
    uv_buf_t wbuf;   /* bytes of the write in flight */
    http2_bytes out; /* bytes gathered for the next write */
    http2_stream *streams;  /* open streams (doubly linked) */
    http2_stream *writable; /* streams waiting for on_writable (singly linked) */
    size_t nstreams;
    unsigned dirty : 1;
    unsigned writing : 1;
    unsigned read_paused : 1;
    unsigned handshake_done : 1;
    unsigned closing : 1;     /* uv_close issued */
    unsigned goaway_sent : 1; /* a terminating GOAWAY is queued */
    unsigned close_after_write : 1; /* fatal error: close once output is out */
    unsigned refusing : 1;          /* reset flood: new streams never reach the handler */
    double rst_tokens;              /* mirror of nghttp2's stream reset limiter */
    uint64_t rst_stamp;             /* its last refill, in seconds */
    char peer[80];
};

struct http2_stream {
    http2_conn *conn;
    int32_t id;
    void *data;
    /* request header block, gathered until END_HEADERS */
    http2_bytes hbuf;
    size_t nhdr;
    /* response body queued for the data provider */
    http2_bytes outq;
    nghttp2_nv *trailers;
    size_t ntrailers;
    size_t unconsumed; /* received DATA bytes not yet returned to the windows */
    size_t hlist;      /* header list size as RFC 9113 section 6.5.2 counts it */
    http2_stream *prev, *next; /* conn->streams */
    http2_stream *writable_next;
    unsigned opened : 1;      /* on_open delivered */
    unsigned responded : 1;   /* response HEADERS submitted */
    unsigned ended : 1;       /* http2_stream_end() called */
    unsigned deferred : 1;    /* the data provider returned DEFERRED */
    unsigned want_write : 1;  /* a write returned HTTP2_AGAIN */
    unsigned on_writable : 1; /* queued on conn->writable */
    unsigned closed : 1;
    unsigned too_large : 1; /* header block over max_header_list */
};

/* conn.c */
int http2__conn_accept(http2_server *srv);
void http2__conn_mark_dirty(http2_conn *c);
void http2__conn_flush(http2_conn *c);
void http2__conn_drain(http2_conn *c);
void http2__conn_close(http2_conn *c);
/* server.c: a connection was freed. */
void http2__server_conn_gone(http2_server *srv);
int http2__session_callbacks_new(nghttp2_session_callbacks **out);
nghttp2_option *http2__session_option_new(const http2_server_config *cfg);

/* tls.c */
SSL_CTX *http2__tls_ctx_new(const char *cert, const char *key, char *err, size_t errlen);
int http2__tls_conn_init(http2_conn *c);
/* Feeds ciphertext in; decrypted bytes go to http2__conn_recv(). Returns 0 or
 * -1 when the connection must close. */
int http2__tls_feed(http2_conn *c, const uint8_t *p, size_t n);
/* Encrypts plaintext into c->out. */
int http2__tls_write(http2_conn *c, const uint8_t *p, size_t n);

/* conn.c, called by tls.c with plaintext. */
int http2__conn_recv(http2_conn *c, const uint8_t *p, size_t n);
/* Starts the HTTP/2 session once the transport is ready (after the TLS
 * handshake, or at once for h2c). */
int http2__conn_start_session(http2_conn *c);

/* stream.c */
http2_stream *http2__stream_new(http2_conn *c, int32_t id);
void http2__stream_free(http2_stream *s);
ssize_t http2__stream_read(nghttp2_session *session, int32_t stream_id, uint8_t *buf,
                           size_t length, uint32_t *data_flags, nghttp2_data_source *source,
                           void *user_data);
int http2__stream_add_header(http2_stream *s, const uint8_t *name, size_t namelen,
                             const uint8_t *value, size_t valuelen);
/* Hands the gathered header block to on_open. */
void http2__stream_open(http2_stream *s);

#endif
