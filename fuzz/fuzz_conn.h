/* fuzz_conn.h - one http2 connection driven in memory, for the fuzz targets.
 *
 * The connection is made the way server.c/client.c make theirs
 * (http2__conn_new() on a server's or client's endpoint), but its TCP handle
 * is opened on one end of a socketpair instead of an accepted socket, and the
 * fuzz input is handed to http2__conn_on_read() directly, exactly as libuv
 * would after a read. What the connection writes lands on the other end of
 * the socketpair, where fz_step() drains it (and keeps it when asked, for the
 * TLS target's client). No port is connected, nothing blocks, and every input
 * starts from a fresh connection.
 *
 * Each target includes this header once; everything is static.
 */
#ifndef OMS_FUZZ_CONN_H
#define OMS_FUZZ_CONN_H

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "http2/http2_int.h"

#define FZ_API static __attribute__((unused))

typedef struct fz_conn {
    uv_loop_t *loop;
    http2_ep *ep;
    http2_conn *c; /* valid while fz_alive() */
    int peer;      /* our end of the socketpair */
    int keep;      /* keep what the connection writes in out */
    uint8_t *out;
    size_t outlen, outcap;
} fz_conn;

/* Whether the connection still exists (each endpoint holds only this one). */
FZ_API int fz_alive(const fz_conn *f)
{
    return f->c != NULL && f->ep->nconns > 0;
}

static void fz_drain(fz_conn *f)
{
    uint8_t buf[65536];
    while (f->peer >= 0) {
        ssize_t n = read(f->peer, buf, sizeof buf);
        if (n <= 0)
            return;
        if (!f->keep)
            continue;
        if (f->outlen + (size_t)n > f->outcap) {
            size_t cap = f->outcap ? f->outcap : 65536;
            while (cap < f->outlen + (size_t)n)
                cap *= 2;
            uint8_t *p = realloc(f->out, cap);
            if (!p)
                abort();
            f->out = p;
            f->outcap = cap;
        }
        memcpy(f->out + f->outlen, buf, (size_t)n);
        f->outlen += (size_t)n;
    }
}

/* Turns the loop a few times (flusher, write callbacks, deferred work) and
 * takes what the connection wrote. */
FZ_API void fz_step(fz_conn *f)
{
    for (int i = 0; i < 3; i++) {
        uv_run(f->loop, UV_RUN_NOWAIT);
        fz_drain(f);
    }
    if (!fz_alive(f))
        f->c = NULL;
}

static void fz_on_idle(uv_idle_t *h)
{
    (void)h;
}

/* The http2 flusher is a prepare handle that does not keep the loop alive,
 * and our connection's TCP handle is not reading: an idle handle keeps the
 * loop alive, so that UV_RUN_NOWAIT runs a whole turn (prepare included)
 * without blocking in poll. */
static void fz_keep_loop(uv_loop_t *loop)
{
    static uv_idle_t idle;
    static uv_loop_t *on;
    if (on == loop)
        return;
    on = loop;
    uv_idle_init(loop, &idle);
    uv_idle_start(&idle, fz_on_idle);
}

/* A connection on ep over a fresh socketpair; a server's starts its h2c
 * session or TLS handshake, a client's (h2c) its session, as after accept or
 * connect. Returns 0 or -1. */
FZ_API int fz_open(fz_conn *f, http2_ep *ep, const http2_conn_handler *h, void *data)
{
    memset(f, 0, sizeof *f);
    f->loop = ep->loop;
    fz_keep_loop(ep->loop);
    f->ep = ep;
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0)
        return -1;
    fcntl(sv[1], F_SETFL, fcntl(sv[1], F_GETFL) | O_NONBLOCK);
    f->peer = sv[1];
    http2_conn *c = http2__conn_new(ep);
    if (!c) {
        close(sv[0]);
        close(sv[1]);
        return -1;
    }
    f->c = c;
    c->handler = h;
    c->data = data;
    snprintf(c->peer, sizeof c->peer, "fuzz");
    int rv = uv_tcp_open(&c->tcp, sv[0]);
    if (rv == 0)
        rv = ep->tls || ep->ssl_ctx ? http2__tls_conn_init(c) : http2__conn_start_session(c);
    if (rv != 0) {
        if (!c->closing)
            http2__conn_close(c);
        fz_step(f);
        return -1;
    }
    return 0;
}

/* Hands n bytes to the connection as one read, after waiting (a bounded
 * number of loop turns) for it to read again if it paused. */
FZ_API void fz_feed(fz_conn *f, const uint8_t *p, size_t n)
{
    for (int i = 0; i < 20 && fz_alive(f) && f->c->read_paused; i++)
        fz_step(f);
    if (!fz_alive(f) || f->c->closing || f->c->read_paused || f->c->close_after_write || n == 0)
        return;
    uv_buf_t b = uv_buf_init((char *)(uintptr_t)p, (unsigned)n);
    http2__conn_on_read((uv_stream_t *)&f->c->tcp, (ssize_t)n, &b);
    fz_step(f);
}

/* Closes the connection (if it is still there) and turns the loop until it
 * is freed; a connection that never goes away is a bug. */
FZ_API void fz_close(fz_conn *f)
{
    if (fz_alive(f) && !f->c->closing)
        http2__conn_close(f->c);
    for (int i = 0; i < 100 && fz_alive(f); i++)
        fz_step(f);
    if (fz_alive(f)) {
        fprintf(stderr, "fuzz: the connection was not freed after close\n");
        abort();
    }
    close(f->peer);
    f->peer = -1;
    free(f->out);
    f->out = NULL;
    f->outlen = f->outcap = 0;
}

/* The HTTP/2 client connection preface (RFC 9113 section 3.4). */
static const uint8_t fz_preface[] = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
#define FZ_PREFACE_LEN 24

#endif
