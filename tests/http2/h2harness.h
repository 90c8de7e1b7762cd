/* h2harness.h - drives the http2 server from a unit test.
 *
 * Server side: a libuv loop, an h2c (or TLS) http2_server on 127.0.0.1:0 and a
 * recording http2_stream_handler whose behaviour the test picks (echo,
 * Trailers-Only, big response, hold, reset). Client side: a socket connected
 * to the server and either an in-memory nghttp2 client session
 * (nghttp2_session_mem_send/mem_recv) or hand-built frames, whose replies are
 * kept as raw bytes and parsed frame by frame.
 *
 * h2t_step() turns the server loop once (UV_RUN_NOWAIT) and moves the client's
 * bytes both ways; PUMP_UNTIL() repeats it until a condition holds or a time
 * bound passes, so no test can hang and every test reads as a sequence of
 * "do this, then wait for that".
 *
 * For the http2 client's tests the roles swap: raw_listen()/raw_accept()
 * give the test a socket to play the server on, with the same raw frames.
 *
 * Each tests/http2/test_*.c is its own binary that includes this header once:
 * everything here is static and may go unused in a given file.
 */
#ifndef OMS_TESTS_HTTP2_HARNESS_H
#define OMS_TESTS_HTTP2_HARNESS_H

#include <criterion/criterion.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

#include "base/log.h"
#include "http2/http2_int.h"

#define H2T_API static __attribute__((unused))

#define H2T_MAX_STREAMS     64   /* client-side streams per connection */
#define H2T_MAX_SRV_STREAMS 4096 /* server-side streams per test */

/* --- small helpers ---------------------------------------------------------- */

H2T_API uint64_t h2t_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* A growable byte buffer for recorded bytes. */
typedef struct h2t_buf {
    uint8_t *p;
    size_t len, cap;
} h2t_buf;

H2T_API void h2t_buf_add(h2t_buf *b, const void *p, size_t n)
{
    if (b->len + n > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->len + n)
            cap *= 2;
        b->p = realloc(b->p, cap);
        cr_assert_not_null(b->p);
        b->cap = cap;
    }
    if (n)
        memcpy(b->p + b->len, p, n);
    b->len += n;
}

H2T_API void h2t_buf_free(h2t_buf *b)
{
    free(b->p);
    memset(b, 0, sizeof *b);
}

/* Appends "name: value\n" (header lines are kept as text to search easily). */
H2T_API void h2t_buf_add_field(h2t_buf *b, const void *name, size_t namelen, const void *value,
                               size_t valuelen)
{
    h2t_buf_add(b, name, namelen);
    h2t_buf_add(b, ": ", 2);
    h2t_buf_add(b, value, valuelen);
    h2t_buf_add(b, "\n", 1);
}

/* Whether the recorded header lines hold exactly "name: value". */
H2T_API int h2t_has_field(const h2t_buf *b, const char *name, const char *value)
{
    char line[512];
    int n = snprintf(line, sizeof line, "%s: %s\n", name, value);
    if (n <= 0 || (size_t)n > b->len)
        return 0;
    for (size_t i = 0; i + (size_t)n <= b->len; i++)
        if ((i == 0 || b->p[i - 1] == '\n') && memcmp(b->p + i, line, (size_t)n) == 0)
            return 1;
    return 0;
}

/* The byte at offset i of every generated body: not periodic at any power of
 * two, so a dropped, repeated or reordered chunk shows. */
H2T_API uint8_t h2t_pattern(size_t i)
{
    return (uint8_t)((i * 131u) ^ (i >> 9) ^ (i >> 17));
}

H2T_API void h2t_fill(uint8_t *p, size_t off, size_t n)
{
    for (size_t i = 0; i < n; i++)
        p[i] = h2t_pattern(off + i);
}

/* Index of the first byte that breaks the pattern, or n. */
H2T_API size_t h2t_check_pattern(const uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (p[i] != h2t_pattern(i))
            return i;
    return n;
}

/* --- server side -------------------------------------------------------------- */

/* What the server-side handler does with each stream. */
typedef enum h2t_mode {
    H2T_ECHO,          /* 200 on open, echo each DATA, trailers on end */
    H2T_TRAILERS_ONLY, /* end() without respond(): one HEADERS with END_STREAM */
    H2T_BIG,           /* 200 on open, then big_total bytes through AGAIN/on_writable */
    H2T_HOLD,          /* record only; the test drives the stream itself */
    H2T_RESET,         /* http2_stream_reset(reset_code) on open */
} h2t_mode;

typedef struct h2t h2t;

/* One request stream as the handler saw it. */
typedef struct srv_stream {
    h2t *t;
    http2_stream *s; /* NULL once on_close fired */
    int32_t id;
    h2t_buf hdr; /* request header block, "name: value\n" lines */
    size_t nhdr;
    h2t_buf body; /* DATA bytes in on_data order */
    int ndata;    /* on_data calls */
    int ended;    /* on_end fired */
    int closed;   /* on_close fired */
    int nclose;   /* on_close calls (must stay 1) */
    uint32_t close_code;
    int events_after_close; /* any callback after on_close */
    /* H2T_BIG */
    size_t sent; /* body bytes handed to http2_stream_write */
    int nagain;  /* writes that returned HTTP2_AGAIN */
    int nwritable;
    int writable_without_again; /* on_writable with no AGAIN outstanding */
    int waiting;                /* an AGAIN is outstanding */
    size_t max_pending;         /* largest http2_stream_pending() seen */
    int finished;               /* http2_stream_end() called */
} srv_stream;

struct h2t {
    uv_loop_t loop;
    http2_server *srv;
    http2_server_config cfg;
    http2_stream_handler handler;
    h2t_mode mode;
    int consume;         /* on_data returns the credit at once */
    size_t big_total;    /* H2T_BIG response size */
    size_t big_chunk;    /* H2T_BIG bytes per write */
    uint32_t reset_code; /* H2T_RESET */
    srv_stream *st;      /* H2T_MAX_SRV_STREAMS records, in on_open order */
    int nst;
    int shutdown_called;
    int done; /* the shutdown done callback fired */
    int ndone;
    char certdir[64]; /* temporary certificate directory, if any */
};

H2T_API srv_stream *h2t_stream_by_id(h2t *t, int32_t id)
{
    for (int i = 0; i < t->nst; i++)
        if (t->st[i].id == id)
            return &t->st[i];
    return NULL;
}

static void h2t_big_write(srv_stream *r)
{
    h2t *t = r->t;
    uint8_t chunk[16384];
    while (r->sent < t->big_total) {
        size_t n = t->big_total - r->sent;
        if (n > t->big_chunk)
            n = t->big_chunk;
        if (n > sizeof chunk)
            n = sizeof chunk;
        h2t_fill(chunk, r->sent, n);
        int rv = http2_stream_write(r->s, chunk, n);
        cr_assert(rv == 0 || rv == HTTP2_AGAIN, "http2_stream_write: %d", rv);
        r->sent += n;
        size_t pending = http2_stream_pending(r->s);
        if (pending > r->max_pending)
            r->max_pending = pending;
        if (rv == HTTP2_AGAIN) {
            r->nagain++;
            r->waiting = 1;
            if (r->sent < t->big_total)
                return;
        }
    }
    if (!r->finished) {
        http2_header tr[] = {{"x-trailer", 9, "big", 3}};
        cr_assert_eq(http2_stream_end(r->s, tr, 1), 0);
        r->finished = 1;
    }
}

static void h2t_on_open(http2_stream *s, const http2_header *h, size_t n)
{
    h2t *t = http2_stream_server_data(s);
    cr_assert_lt(t->nst, H2T_MAX_SRV_STREAMS);
    srv_stream *r = &t->st[t->nst++];
    r->t = t;
    r->s = s;
    r->id = http2_stream_id(s);
    for (size_t i = 0; i < n; i++)
        h2t_buf_add_field(&r->hdr, h[i].name, h[i].namelen, h[i].value, h[i].valuelen);
    r->nhdr = n;
    http2_stream_set_data(s, r);
    switch (t->mode) {
    case H2T_ECHO: {
        http2_header rh[] = {{":status", 7, "200", 3}, {"x-mode", 6, "echo", 4}};
        cr_assert_eq(http2_stream_respond(s, rh, 2), 0);
        break;
    }
    case H2T_TRAILERS_ONLY: {
        http2_header rh[] = {{":status", 7, "200", 3}, {"x-only", 6, "yes", 3}};
        cr_assert_eq(http2_stream_end(s, rh, 2), 0);
        r->finished = 1;
        break;
    }
    case H2T_BIG: {
        http2_header rh[] = {{":status", 7, "200", 3}};
        cr_assert_eq(http2_stream_respond(s, rh, 1), 0);
        h2t_big_write(r);
        break;
    }
    case H2T_HOLD:
        break;
    case H2T_RESET:
        cr_assert_eq(http2_stream_reset(s, t->reset_code), 0);
        break;
    }
}

static void h2t_on_data(http2_stream *s, const uint8_t *p, size_t n)
{
    srv_stream *r = http2_stream_data(s);
    if (r->closed)
        r->events_after_close++;
    h2t_buf_add(&r->body, p, n);
    r->ndata++;
    if (r->t->mode == H2T_ECHO && !r->finished)
        cr_assert_geq(http2_stream_write(s, p, n), HTTP2_AGAIN);
    if (r->t->consume)
        http2_stream_consume(s, n);
}

static void h2t_on_end(http2_stream *s)
{
    srv_stream *r = http2_stream_data(s);
    if (r->closed)
        r->events_after_close++;
    r->ended = 1;
    if (r->t->mode == H2T_ECHO && !r->finished) {
        char len[32];
        int l = snprintf(len, sizeof len, "%zu", r->body.len);
        http2_header tr[] = {{"x-trailer", 9, "done", 4}, {"x-bytes", 7, len, (size_t)l}};
        cr_assert_eq(http2_stream_end(s, tr, 2), 0);
        r->finished = 1;
    }
}

static void h2t_on_writable(http2_stream *s)
{
    srv_stream *r = http2_stream_data(s);
    if (r->closed)
        r->events_after_close++;
    r->nwritable++;
    if (!r->waiting)
        r->writable_without_again++;
    r->waiting = 0;
    if (r->t->mode == H2T_BIG)
        h2t_big_write(r);
}

static void h2t_on_close(http2_stream *s, uint32_t code)
{
    srv_stream *r = http2_stream_data(s);
    r->nclose++;
    r->closed = 1;
    r->close_code = code;
    r->s = NULL;
}

/* Sets up the loop and a config for an h2c server on 127.0.0.1:0 with small
 * limits; the test may adjust t->cfg and t->mode before h2t_start(). */
H2T_API void h2t_init(h2t *t)
{
    memset(t, 0, sizeof *t);
    signal(SIGPIPE, SIG_IGN);
    oms_log_set_level(getenv("H2T_LOG") ? OMS_LOG_DEBUG : OMS_LOG_OFF);
    cr_assert_eq(uv_loop_init(&t->loop), 0);
    t->st = calloc(H2T_MAX_SRV_STREAMS, sizeof *t->st);
    cr_assert_not_null(t->st);
    http2_server_config_init(&t->cfg);
    t->cfg.host = "127.0.0.1";
    t->cfg.port = 0;
    t->cfg.tls = 0;
    t->cfg.max_concurrent_streams = 100;
    t->cfg.stream_window = 65535;
    t->cfg.conn_window = 1 << 20;
    t->cfg.max_header_list = 16 << 10;
    t->cfg.stream_send_buffer = 64 << 10;
    /* HTTP/2 alone, so that these tests see what an HTTP/2 peer sees from
     * its first byte (the SETTINGS at once, a GOAWAY for a bad preface, ALPN
     * h2 only); tests/http2/test_h1.c turns HTTP/1.1 on. */
    t->cfg.http1 = 0;
    t->handler.on_open = h2t_on_open;
    t->handler.on_data = h2t_on_data;
    t->handler.on_end = h2t_on_end;
    t->handler.on_writable = h2t_on_writable;
    t->handler.on_close = h2t_on_close;
    t->cfg.handler = &t->handler;
    t->cfg.handler_data = t;
    t->mode = H2T_ECHO;
    t->consume = 1;
    t->big_chunk = 4096;
}

H2T_API void h2t_start(h2t *t)
{
    char err[256] = "";
    int rv = http2_server_new(&t->loop, &t->cfg, &t->srv, err, sizeof err);
    cr_assert_eq(rv, 0, "http2_server_new: %d %s", rv, err);
    cr_assert_gt(http2_server_port(t->srv), 0);
    cr_assert_eq(http2_server_start(t->srv), 0);
}

static void h2t_on_done(http2_server *srv, void *arg)
{
    h2t *t = arg;
    cr_assert_eq(srv, t->srv);
    t->done = 1;
    t->ndone++;
}

H2T_API void h2t_shutdown(h2t *t, uint64_t grace_ms)
{
    t->shutdown_called = 1;
    http2_server_shutdown(t->srv, grace_ms, h2t_on_done, t);
}

/* --- client side --------------------------------------------------------------- */

/* One request stream as the nghttp2 client saw it. */
typedef struct cli_stream {
    int32_t id;
    int status;       /* :status of the response, 0 until seen */
    h2t_buf hdr;      /* response header lines */
    h2t_buf trailers; /* trailer lines */
    h2t_buf body;     /* response DATA */
    int ndata_frames; /* DATA frames received */
    int headers_es;   /* the response HEADERS carried END_STREAM */
    int ntrailers;    /* trailer HEADERS frames */
    int trailers_es;  /* the trailers carried END_STREAM */
    int closed;       /* on_stream_close fired */
    uint32_t close_code;
    int rst; /* RST_STREAM received */
    uint32_t rst_code;
    /* request body, pulled by the data provider */
    const uint8_t *req;
    size_t reqlen, reqoff;
    size_t chunk; /* bytes per DATA frame */
    int hold;     /* defer END_STREAM (and further data) until released */
} cli_stream;

typedef struct h2c {
    h2t *t;
    int fd;
    SSL_CTX *sslctx;
    SSL *ssl;
    int handshake_done;
    int tls_failed;
    nghttp2_session *ng; /* NULL: raw frames */
    h2t_buf in;          /* raw mode: every byte the server sent */
    h2t_buf out;         /* bytes not yet written to the socket */
    size_t outoff;
    int eof;      /* the server closed (FIN or RST) */
    int werr;     /* a write failed (errno) */
    int no_read;  /* leave the server's output in the socket */
    int ng_err;   /* nghttp2_session_mem_recv/mem_send error */
    size_t nread; /* bytes received */
    cli_stream cs[H2T_MAX_STREAMS];
    int ncs;
    /* connection-level frames seen by the nghttp2 client */
    int ngoaway;
    uint32_t goaway_code;
    int32_t goaway_last;
    int nsettings;
    int nping_acks;
} h2c;

H2T_API void h2c_connect(h2c *c, h2t *t)
{
    memset(c, 0, sizeof *c);
    c->t = t;
    c->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    cr_assert_geq(c->fd, 0);
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_port = htons((uint16_t)http2_server_port(t->srv))};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    /* Loopback connects complete in the kernel, before the server accepts. */
    cr_assert_eq(connect(c->fd, (struct sockaddr *)&a, sizeof a), 0, "connect: %s",
                 strerror(errno));
    int one = 1;
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    fcntl(c->fd, F_SETFL, fcntl(c->fd, F_GETFL) | O_NONBLOCK);
}

H2T_API void h2c_close(h2c *c)
{
    if (c->ng)
        nghttp2_session_del(c->ng);
    c->ng = NULL;
    if (c->ssl)
        SSL_free(c->ssl);
    c->ssl = NULL;
    if (c->sslctx)
        SSL_CTX_free(c->sslctx);
    c->sslctx = NULL;
    if (c->fd >= 0)
        close(c->fd);
    c->fd = -1;
    h2t_buf_free(&c->in);
    h2t_buf_free(&c->out);
    for (int i = 0; i < c->ncs; i++) {
        h2t_buf_free(&c->cs[i].hdr);
        h2t_buf_free(&c->cs[i].trailers);
        h2t_buf_free(&c->cs[i].body);
    }
    c->ncs = 0;
}

/* Queues bytes for the socket (hand-built frames, or the session's output). */
H2T_API void h2c_send(h2c *c, const void *p, size_t n)
{
    h2t_buf_add(&c->out, p, n);
}

static ssize_t h2c_sock_write(h2c *c, const uint8_t *p, size_t n)
{
    if (c->ssl) {
        int r = SSL_write(c->ssl, p, n > INT32_MAX ? INT32_MAX : (int)n);
        if (r > 0)
            return r;
        int e = SSL_get_error(c->ssl, r);
        ERR_clear_error();
        if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE)
            return -EAGAIN;
        return -EPIPE;
    }
    ssize_t r = send(c->fd, p, n, MSG_NOSIGNAL);
    if (r >= 0)
        return r;
    return errno == EAGAIN || errno == EWOULDBLOCK ? -EAGAIN : -errno;
}

/* Returns bytes read, 0 at EOF, -EAGAIN, or another negative errno. */
static ssize_t h2c_sock_read(h2c *c, uint8_t *p, size_t n)
{
    if (c->ssl) {
        int r = SSL_read(c->ssl, p, (int)n);
        if (r > 0)
            return r;
        int e = SSL_get_error(c->ssl, r);
        ERR_clear_error();
        if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE)
            return -EAGAIN;
        if (e == SSL_ERROR_ZERO_RETURN)
            return 0;
        return -ECONNRESET;
    }
    ssize_t r = recv(c->fd, p, n, 0);
    if (r >= 0)
        return r;
    return errno == EAGAIN || errno == EWOULDBLOCK ? -EAGAIN : -errno;
}

/* Writes what is queued without blocking. Returns 1 if bytes moved. */
H2T_API int h2c_flush(h2c *c)
{
    int progress = 0;
    while (c->outoff < c->out.len && !c->werr) {
        ssize_t n = h2c_sock_write(c, c->out.p + c->outoff, c->out.len - c->outoff);
        if (n == -EAGAIN)
            break;
        if (n < 0) {
            c->werr = (int)-n;
            break;
        }
        c->outoff += (size_t)n;
        progress = 1;
    }
    if (c->outoff == c->out.len)
        c->outoff = c->out.len = 0;
    return progress;
}

/* Moves the client's bytes: session output out, socket input in. Returns 1
 * if anything moved. */
H2T_API int h2c_io(h2c *c)
{
    if (c->fd < 0)
        return 0;
    int progress = 0;
    if (c->ssl && !c->handshake_done) {
        int r = SSL_connect(c->ssl);
        if (r == 1) {
            c->handshake_done = 1;
            progress = 1;
        } else {
            int e = SSL_get_error(c->ssl, r);
            ERR_clear_error();
            if (e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE) {
                c->tls_failed = 1;
                c->eof = 1;
            }
            return 0;
        }
    }
    if (c->ng && !c->ng_err) {
        while (c->out.len - c->outoff < (1u << 20)) {
            const uint8_t *data;
            ssize_t n = nghttp2_session_mem_send(c->ng, &data);
            if (n < 0)
                c->ng_err = (int)n;
            if (n <= 0)
                break;
            h2t_buf_add(&c->out, data, (size_t)n);
        }
    }
    progress |= h2c_flush(c);
    while (!c->no_read && !c->eof) {
        uint8_t buf[65536];
        ssize_t n = h2c_sock_read(c, buf, sizeof buf);
        if (n == -EAGAIN)
            break;
        if (n <= 0) {
            c->eof = 1;
            break;
        }
        progress = 1;
        c->nread += (size_t)n;
        if (!c->ng) {
            h2t_buf_add(&c->in, buf, (size_t)n);
        } else if (!c->ng_err) {
            ssize_t rv = nghttp2_session_mem_recv(c->ng, buf, (size_t)n);
            if (rv < 0)
                c->ng_err = (int)rv;
        }
    }
    return progress;
}

/* One turn: the server loop once, the client's I/O once, and a short wait if
 * nothing moved. c may be NULL. */
H2T_API void h2t_step(h2t *t, h2c *c)
{
    uv_run(&t->loop, UV_RUN_NOWAIT);
    int progress = c ? h2c_io(c) : 0;
    if (!progress) {
        struct pollfd p[2] = {{.fd = uv_backend_fd(&t->loop), .events = POLLIN}};
        nfds_t n = 1;
        if (c && c->fd >= 0 && !c->no_read && !c->eof)
            p[n++] = (struct pollfd){.fd = c->fd, .events = POLLIN};
        poll(p, n, 1);
    }
}

/* Steps until cond holds or ms milliseconds pass; cond is re-evaluated. */
#define PUMP_UNTIL(t, c, cond, ms)                                                                 \
    do {                                                                                           \
        uint64_t h2t_deadline_ = h2t_now_ms() + (ms);                                              \
        while (!(cond) && h2t_now_ms() < h2t_deadline_)                                            \
            h2t_step((t), (c));                                                                    \
    } while (0)

/* Steps for ms milliseconds, to show that something does not happen. */
H2T_API void h2t_pump_for(h2t *t, h2c *c, uint64_t ms)
{
    uint64_t deadline = h2t_now_ms() + ms;
    while (h2t_now_ms() < deadline)
        h2t_step(t, c);
}

/* Tears everything down and checks that nothing is left on the loop: the
 * server drains (shutdown unless the test did), is freed, and the loop closes
 * with no handle open. Clients must be closed first. */
H2T_API void h2t_finish(h2t *t)
{
    if (t->srv) {
        if (!t->shutdown_called)
            h2t_shutdown(t, 1000);
        PUMP_UNTIL(t, NULL, t->done, 3000);
        cr_assert(t->done, "server shutdown did not complete");
        cr_assert_eq(t->ndone, 1);
        cr_assert_eq(http2_server_conn_count(t->srv), 0);
        http2_server_free(t->srv);
        t->srv = NULL;
    }
    for (int i = 0; i < 10; i++)
        uv_run(&t->loop, UV_RUN_NOWAIT);
    cr_assert_eq(uv_loop_close(&t->loop), 0, "a libuv handle is still open");
    for (int i = 0; i < t->nst; i++) {
        h2t_buf_free(&t->st[i].hdr);
        h2t_buf_free(&t->st[i].body);
    }
    free(t->st);
    t->st = NULL;
    if (t->certdir[0]) {
        char cmd[128];
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", t->certdir);
        cr_expect_eq(system(cmd), 0);
    }
}

/* A plain listening socket on 127.0.0.1:0 for tests that play the server
 * by hand (the http2 client's peer). Returns the fd; *port gets the port. */
H2T_API int raw_listen(int *port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    cr_assert_geq(fd, 0);
    struct sockaddr_in a = {.sin_family = AF_INET};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    cr_assert_eq(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
    cr_assert_eq(listen(fd, 8), 0);
    socklen_t alen = sizeof a;
    getsockname(fd, (struct sockaddr *)&a, &alen);
    *port = ntohs(a.sin_port);
    return fd;
}

/* Accepts one connection on lfd into c (raw mode), turning the loop while
 * the client connects. */
H2T_API void raw_accept(h2t *t, int lfd, h2c *c)
{
    memset(c, 0, sizeof *c);
    c->t = t;
    c->fd = -1;
    uint64_t deadline = h2t_now_ms() + 2000;
    while (c->fd < 0 && h2t_now_ms() < deadline) {
        c->fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
        if (c->fd < 0)
            h2t_step(t, NULL);
    }
    cr_assert_geq(c->fd, 0, "no connection to accept");
}

/* --- nghttp2 client session --------------------------------------------------- */

static cli_stream *cli_of(h2c *c, int32_t id)
{
    return id > 0 ? nghttp2_session_get_stream_user_data(c->ng, id) : NULL;
}

static int cli_on_header(nghttp2_session *session, const nghttp2_frame *frame, const uint8_t *name,
                         size_t namelen, const uint8_t *value, size_t valuelen, uint8_t flags,
                         void *user_data)
{
    (void)session;
    (void)flags;
    h2c *c = user_data;
    cli_stream *cs = cli_of(c, frame->hd.stream_id);
    if (!cs || frame->hd.type != NGHTTP2_HEADERS)
        return 0;
    if (frame->headers.cat == NGHTTP2_HCAT_RESPONSE) {
        h2t_buf_add_field(&cs->hdr, name, namelen, value, valuelen);
        if (namelen == 7 && memcmp(name, ":status", 7) == 0) {
            char v[8] = "";
            memcpy(v, value, valuelen < 7 ? valuelen : 7);
            cs->status = atoi(v);
        }
    } else if (frame->headers.cat == NGHTTP2_HCAT_HEADERS) {
        h2t_buf_add_field(&cs->trailers, name, namelen, value, valuelen);
    }
    return 0;
}

static int cli_on_frame_recv(nghttp2_session *session, const nghttp2_frame *frame, void *user_data)
{
    (void)session;
    h2c *c = user_data;
    cli_stream *cs = cli_of(c, frame->hd.stream_id);
    int es = (frame->hd.flags & NGHTTP2_FLAG_END_STREAM) != 0;
    switch (frame->hd.type) {
    case NGHTTP2_HEADERS:
        if (!cs)
            break;
        if (frame->headers.cat == NGHTTP2_HCAT_RESPONSE)
            cs->headers_es = es;
        else if (frame->headers.cat == NGHTTP2_HCAT_HEADERS) {
            cs->ntrailers++;
            cs->trailers_es = es;
        }
        break;
    case NGHTTP2_DATA:
        if (cs)
            cs->ndata_frames++;
        break;
    case NGHTTP2_RST_STREAM:
        if (cs) {
            cs->rst = 1;
            cs->rst_code = frame->rst_stream.error_code;
        }
        break;
    case NGHTTP2_GOAWAY:
        c->ngoaway++;
        c->goaway_code = frame->goaway.error_code;
        c->goaway_last = frame->goaway.last_stream_id;
        break;
    case NGHTTP2_SETTINGS:
        if (!(frame->hd.flags & NGHTTP2_FLAG_ACK))
            c->nsettings++;
        break;
    case NGHTTP2_PING:
        if (frame->hd.flags & NGHTTP2_FLAG_ACK)
            c->nping_acks++;
        break;
    default:
        break;
    }
    return 0;
}

static int cli_on_data_chunk(nghttp2_session *session, uint8_t flags, int32_t stream_id,
                             const uint8_t *data, size_t len, void *user_data)
{
    (void)session;
    (void)flags;
    cli_stream *cs = cli_of(user_data, stream_id);
    if (cs)
        h2t_buf_add(&cs->body, data, len);
    return 0;
}

static int cli_on_stream_close(nghttp2_session *session, int32_t stream_id, uint32_t error_code,
                               void *user_data)
{
    (void)session;
    cli_stream *cs = cli_of(user_data, stream_id);
    if (cs) {
        cs->closed = 1;
        cs->close_code = error_code;
    }
    return 0;
}

/* Starts an nghttp2 client session on c with the given SETTINGS. With
 * manual_window, received DATA is returned to the windows only by
 * nghttp2_session_consume() from the test. */
H2T_API void h2c_session(h2c *c, const nghttp2_settings_entry *iv, size_t niv, int manual_window)
{
    nghttp2_session_callbacks *cbs;
    cr_assert_eq(nghttp2_session_callbacks_new(&cbs), 0);
    nghttp2_session_callbacks_set_on_header_callback(cbs, cli_on_header);
    nghttp2_session_callbacks_set_on_frame_recv_callback(cbs, cli_on_frame_recv);
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cbs, cli_on_data_chunk);
    nghttp2_session_callbacks_set_on_stream_close_callback(cbs, cli_on_stream_close);
    nghttp2_option *opt;
    cr_assert_eq(nghttp2_option_new(&opt), 0);
    if (manual_window)
        nghttp2_option_set_no_auto_window_update(opt, 1);
    cr_assert_eq(nghttp2_session_client_new2(&c->ng, cbs, c, opt), 0);
    nghttp2_option_del(opt);
    nghttp2_session_callbacks_del(cbs);
    cr_assert_eq(nghttp2_submit_settings(c->ng, NGHTTP2_FLAG_NONE, iv, niv), 0);
}

/* Waits until the client has the server's SETTINGS and the server has the
 * client's ACK (a PING round trip after it), so both sides use the
 * configured windows. */
H2T_API void h2c_handshake(h2t *t, h2c *c)
{
    PUMP_UNTIL(t, c, c->nsettings > 0 || c->eof, 2000);
    cr_assert_gt(c->nsettings, 0, "no SETTINGS from the server");
    int acks = c->nping_acks;
    cr_assert_eq(nghttp2_submit_ping(c->ng, NGHTTP2_FLAG_NONE, NULL), 0);
    PUMP_UNTIL(t, c, c->nping_acks > acks || c->eof, 2000);
    cr_assert_gt(c->nping_acks, acks, "no PING ACK from the server");
}

static ssize_t cli_read_body(nghttp2_session *session, int32_t stream_id, uint8_t *buf,
                             size_t length, uint32_t *data_flags, nghttp2_data_source *source,
                             void *user_data)
{
    (void)session;
    (void)stream_id;
    (void)user_data;
    cli_stream *cs = source->ptr;
    size_t left = cs->reqlen - cs->reqoff;
    size_t n = left < length ? left : length;
    if (cs->chunk && n > cs->chunk)
        n = cs->chunk;
    if (n)
        memcpy(buf, cs->req + cs->reqoff, n);
    cs->reqoff += n;
    if (cs->reqoff == cs->reqlen) {
        if (cs->hold)
            return n ? (ssize_t)n : NGHTTP2_ERR_DEFERRED;
        *data_flags |= NGHTTP2_DATA_FLAG_EOF;
    }
    return (ssize_t)n;
}

#define H2T_NV(n, v)                                                                               \
    {                                                                                              \
        (uint8_t *)(n), (uint8_t *)(v), sizeof(n) - 1, sizeof(v) - 1, NGHTTP2_NV_FLAG_NONE         \
    }

/* Submits a POST with the standard pseudo-headers plus extra. The body (not
 * copied: it must outlive the stream) goes out chunk bytes per DATA frame (0:
 * as large as allowed). With hold, the request stays open after the body
 * until h2c_release(); without body and hold, HEADERS carries END_STREAM. */
H2T_API cli_stream *h2c_request(h2c *c, const nghttp2_nv *extra, size_t nextra, const uint8_t *body,
                                size_t len, size_t chunk, int hold)
{
    cr_assert_lt(c->ncs, H2T_MAX_STREAMS);
    cli_stream *cs = &c->cs[c->ncs++];
    cs->req = body;
    cs->reqlen = len;
    cs->chunk = chunk;
    cs->hold = hold;
    nghttp2_nv nv[64] = {
        H2T_NV(":method", "POST"),
        H2T_NV(":scheme", "http"),
        H2T_NV(":path", "/test/echo"),
        H2T_NV(":authority", "localhost"),
    };
    size_t n = 4;
    cr_assert_leq(nextra, 60u);
    for (size_t i = 0; i < nextra; i++)
        nv[n++] = extra[i];
    nghttp2_data_provider prd = {.source.ptr = cs, .read_callback = cli_read_body};
    cs->id = nghttp2_submit_request(c->ng, NULL, nv, n, (body || hold) ? &prd : NULL, cs);
    cr_assert_gt(cs->id, 0, "nghttp2_submit_request: %s", nghttp2_strerror(cs->id));
    return cs;
}

/* Lets a held request finish (END_STREAM after its body). */
H2T_API void h2c_release(h2c *c, cli_stream *cs)
{
    cs->hold = 0;
    nghttp2_session_resume_data(c->ng, cs->id);
}

/* --- raw frames -------------------------------------------------------------- */

enum {
    FT_DATA,
    FT_HEADERS,
    FT_PRIORITY,
    FT_RST_STREAM,
    FT_SETTINGS,
    FT_PUSH_PROMISE,
    FT_PING,
    FT_GOAWAY,
    FT_WINDOW_UPDATE,
    FT_CONTINUATION
};
enum { FL_END_STREAM = 0x1, FL_ACK = 0x1, FL_END_HEADERS = 0x4 };

typedef struct h2_frame {
    uint32_t len;
    uint8_t type, flags;
    int32_t sid;
    const uint8_t *p;
} h2_frame;

H2T_API uint32_t h2t_get32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

H2T_API void h2t_put32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

/* Writes a 9-byte frame header at p. */
H2T_API void h2t_frame_header(uint8_t *p, uint32_t len, uint8_t type, uint8_t flags, int32_t sid)
{
    p[0] = (uint8_t)(len >> 16);
    p[1] = (uint8_t)(len >> 8);
    p[2] = (uint8_t)len;
    p[3] = type;
    p[4] = flags;
    h2t_put32(p + 5, (uint32_t)sid);
}

H2T_API void raw_frame(h2c *c, uint8_t type, uint8_t flags, int32_t sid, const void *payload,
                       size_t len)
{
    uint8_t hd[9];
    h2t_frame_header(hd, (uint32_t)len, type, flags, sid);
    h2c_send(c, hd, sizeof hd);
    if (len)
        h2c_send(c, payload, len);
}

/* The client connection preface: magic and an empty SETTINGS frame. */
H2T_API void raw_preface(h2c *c)
{
    h2c_send(c, NGHTTP2_CLIENT_MAGIC, NGHTTP2_CLIENT_MAGIC_LEN);
    raw_frame(c, FT_SETTINGS, 0, 0, NULL, 0);
}

/* A minimal valid request header block in HPACK without the dynamic table:
 * :method POST, :scheme http, :path / (static indexes 3, 6, 4) and
 * :authority "localhost" as a literal without indexing (name index 1). */
static const uint8_t h2t_req_block[] = {0x83, 0x86, 0x84, 0x01, 0x09, 'l', 'o',
                                        'c',  'a',  'l',  'h',  'o',  's', 't'};

H2T_API void raw_headers(h2c *c, int32_t sid, uint8_t flags)
{
    raw_frame(c, FT_HEADERS, (uint8_t)(flags | FL_END_HEADERS), sid, h2t_req_block,
              sizeof h2t_req_block);
}

H2T_API void raw_rst(h2c *c, int32_t sid, uint32_t code)
{
    uint8_t p[4];
    h2t_put32(p, code);
    raw_frame(c, FT_RST_STREAM, 0, sid, p, 4);
}

H2T_API void raw_ping(h2c *c, uint64_t opaque)
{
    uint8_t p[8];
    h2t_put32(p, (uint32_t)(opaque >> 32));
    h2t_put32(p + 4, (uint32_t)opaque);
    raw_frame(c, FT_PING, 0, 0, p, 8);
}

H2T_API void raw_window_update(h2c *c, int32_t sid, uint32_t inc)
{
    uint8_t p[4];
    h2t_put32(p, inc);
    raw_frame(c, FT_WINDOW_UPDATE, 0, sid, p, 4);
}

/* Parses the frame at *off of the received bytes; 0 if a whole frame was
 * there (and advances *off), -1 otherwise. */
H2T_API int raw_next(const h2c *c, size_t *off, h2_frame *f)
{
    if (c->in.len - *off < 9)
        return -1;
    const uint8_t *p = c->in.p + *off;
    uint32_t len = (uint32_t)p[0] << 16 | (uint32_t)p[1] << 8 | p[2];
    if (c->in.len - *off - 9 < len)
        return -1;
    f->len = len;
    f->type = p[3];
    f->flags = p[4];
    f->sid = (int32_t)(h2t_get32(p + 5) & 0x7fffffffu);
    f->p = p + 9;
    *off += 9 + len;
    return 0;
}

/* The nth (0-based) received frame of type on stream sid (-1: any stream). */
H2T_API int raw_find_nth(const h2c *c, uint8_t type, int32_t sid, int nth, h2_frame *f)
{
    size_t off = 0;
    while (raw_next(c, &off, f) == 0)
        if (f->type == type && (sid < 0 || f->sid == sid) && nth-- == 0)
            return 1;
    return 0;
}

H2T_API int raw_find(const h2c *c, uint8_t type, int32_t sid, h2_frame *f)
{
    return raw_find_nth(c, type, sid, 0, f);
}

H2T_API int raw_count(const h2c *c, uint8_t type, int32_t sid)
{
    h2_frame f;
    int n = 0;
    size_t off = 0;
    while (raw_next(c, &off, &f) == 0)
        if (f.type == type && (sid < 0 || f.sid == sid))
            n++;
    return n;
}

/* Whether the received bytes end exactly on a frame boundary. */
H2T_API int raw_whole(const h2c *c)
{
    h2_frame f;
    size_t off = 0;
    while (raw_next(c, &off, &f) == 0)
        ;
    return off == c->in.len;
}

H2T_API int raw_goaway(const h2c *c, int32_t *last, uint32_t *code)
{
    h2_frame f;
    if (!raw_find(c, FT_GOAWAY, 0, &f) || f.len < 8)
        return 0;
    if (last)
        *last = (int32_t)(h2t_get32(f.p) & 0x7fffffffu);
    if (code)
        *code = h2t_get32(f.p + 4);
    return 1;
}

H2T_API int raw_has_rst(const h2c *c, int32_t sid, uint32_t *code)
{
    h2_frame f;
    if (!raw_find(c, FT_RST_STREAM, sid, &f) || f.len != 4)
        return 0;
    if (code)
        *code = h2t_get32(f.p);
    return 1;
}

H2T_API int raw_has_ping_ack(const h2c *c, uint64_t opaque)
{
    h2_frame f;
    size_t off = 0;
    while (raw_next(c, &off, &f) == 0)
        if (f.type == FT_PING && (f.flags & FL_ACK) && f.len == 8 &&
            ((uint64_t)h2t_get32(f.p) << 32 | h2t_get32(f.p + 4)) == opaque)
            return 1;
    return 0;
}

/* The nth (0-based) GOAWAY received: 1 if there was one. */
H2T_API int raw_goaway_nth(const h2c *c, int nth, int32_t *last, uint32_t *code)
{
    h2_frame f;
    if (!raw_find_nth(c, FT_GOAWAY, 0, nth, &f) || f.len < 8)
        return 0;
    if (last)
        *last = (int32_t)(h2t_get32(f.p) & 0x7fffffffu);
    if (code)
        *code = h2t_get32(f.p + 4);
    return 1;
}

/* PING frames the server sent (not ACKs). */
H2T_API int raw_server_pings(const h2c *c)
{
    h2_frame f;
    int n = 0;
    size_t off = 0;
    while (raw_next(c, &off, &f) == 0)
        n += f.type == FT_PING && !(f.flags & FL_ACK);
    return n;
}

/* Answers the server's PINGs received since the last call (*answered counts
 * those already answered). Returns how many the server sent in all. */
H2T_API int raw_ack_pings(h2c *c, int *answered)
{
    h2_frame f;
    int n = 0;
    size_t off = 0;
    while (raw_next(c, &off, &f) == 0) {
        if (f.type != FT_PING || (f.flags & FL_ACK))
            continue;
        if (n++ < *answered)
            continue;
        raw_frame(c, FT_PING, FL_ACK, 0, f.p, f.len);
        (*answered)++;
    }
    return n;
}

/* Prints the received frames to stderr (debugging aid, with H2T_LOG=1). */
H2T_API void raw_dump(const h2c *c)
{
    h2_frame f;
    size_t off = 0;
    while (raw_next(c, &off, &f) == 0) {
        fprintf(stderr, "frame type %u flags 0x%x stream %d len %u", f.type, f.flags, f.sid, f.len);
        if ((f.type == FT_GOAWAY && f.len >= 8) || (f.type == FT_RST_STREAM && f.len == 4))
            fprintf(stderr, " code %u", h2t_get32(f.p + (f.type == FT_GOAWAY ? 4 : 0)));
        fprintf(stderr, "\n");
    }
    if (off != c->in.len)
        fprintf(stderr, "%zu trailing bytes\n", c->in.len - off);
}

/* Round trip: a PING the server answers only after everything sent before it
 * was processed. */
H2T_API void raw_sync(h2t *t, h2c *c, uint64_t opaque)
{
    raw_ping(c, opaque);
    PUMP_UNTIL(t, c, raw_has_ping_ack(c, opaque) || c->eof, 2000);
    if (!raw_has_ping_ack(c, opaque) && getenv("H2T_LOG"))
        raw_dump(c);
    cr_assert(raw_has_ping_ack(c, opaque), "no PING ACK for %llx", (unsigned long long)opaque);
}

/* Sends the preface, then ACKs the server's SETTINGS and waits until the
 * server has processed the ACK (its settings are then in force). */
H2T_API void raw_handshake(h2t *t, h2c *c)
{
    raw_preface(c);
    h2_frame f;
    PUMP_UNTIL(t, c, raw_find(c, FT_SETTINGS, 0, &f) && !(f.flags & FL_ACK), 2000);
    cr_assert(raw_find(c, FT_SETTINGS, 0, &f) && !(f.flags & FL_ACK), "no server SETTINGS");
    raw_frame(c, FT_SETTINGS, FL_ACK, 0, NULL, 0);
    raw_sync(t, c, 0x5e771265);
}

/* --- TLS --------------------------------------------------------------------- */

/* Makes a CA and a server certificate with scripts/certs.sh in a fresh
 * temporary directory and points the config at them. Skips the test if the
 * openssl tool is missing. */
H2T_API void h2t_make_certs(h2t *t)
{
    if (system("command -v openssl >/dev/null 2>&1") != 0)
        cr_skip_test("openssl command not found");
    snprintf(t->certdir, sizeof t->certdir, "/tmp/oms-h2test-XXXXXX");
    cr_assert_not_null(mkdtemp(t->certdir));
    /* __FILE__ is tests/http2/h2harness.h under the source root. */
    char root[1024];
    snprintf(root, sizeof root, "%s", __FILE__);
    for (int i = 0; i < 3; i++) {
        char *slash = strrchr(root, '/');
        cr_assert_not_null(slash, "cannot find the source root from %s", __FILE__);
        *slash = 0;
    }
    char cmd[2048];
    snprintf(cmd, sizeof cmd, "bash '%s/scripts/certs.sh' '%s' 2>/dev/null", root, t->certdir);
    cr_assert_eq(system(cmd), 0, "%s failed", cmd);
    static char cert[128], key[128];
    snprintf(cert, sizeof cert, "%s/server.pem", t->certdir);
    snprintf(key, sizeof key, "%s/server.key", t->certdir);
    t->cfg.tls = 1;
    t->cfg.cert_file = cert;
    t->cfg.key_file = key;
}

/* Connects and starts a TLS handshake offering the ALPN list alpn (wire
 * format, may be NULL) and verifying the server against the test CA. */
H2T_API void h2c_connect_tls(h2c *c, h2t *t, const unsigned char *alpn, unsigned alpnlen)
{
    h2c_connect(c, t);
    c->sslctx = SSL_CTX_new(TLS_client_method());
    cr_assert_not_null(c->sslctx);
    char ca[128];
    snprintf(ca, sizeof ca, "%s/ca.pem", t->certdir);
    cr_assert_eq(SSL_CTX_load_verify_locations(c->sslctx, ca, NULL), 1);
    SSL_CTX_set_verify(c->sslctx, SSL_VERIFY_PEER, NULL);
    /* h2c_flush() retries from a buffer that may have moved or grown. */
    SSL_CTX_set_mode(c->sslctx,
                     SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    if (alpn)
        cr_assert_eq(SSL_CTX_set_alpn_protos(c->sslctx, alpn, alpnlen), 0);
    c->ssl = SSL_new(c->sslctx);
    cr_assert_not_null(c->ssl);
    SSL_set_fd(c->ssl, c->fd);
    SSL_set_tlsext_host_name(c->ssl, "localhost");
    cr_assert_eq(SSL_set1_host(c->ssl, "localhost"), 1);
}

#endif
