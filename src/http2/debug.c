/* debug.c - state of streams and connections for humans and tests: one line
 * per stream (flow-control windows, queued bytes, the data provider's and
 * the writable wake-up's state), a dump of a server's connections to the log
 * (omsd does it on SIGUSR1), and the wake-up invariant of the pull model. */
#include <stdarg.h>
#include <stdio.h>

#include "base/log.h"
#include "http2/http2_int.h"

/* Appends to buf[0..n) at *len, never past its end. */
static void add(char *buf, size_t n, size_t *len, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void add(char *buf, size_t n, size_t *len, const char *fmt, ...)
{
    if (*len >= n)
        return;
    va_list ap;
    va_start(ap, fmt);
    int k = vsnprintf(buf + *len, n - *len, fmt, ap);
    va_end(ap);
    if (k > 0)
        *len = *len + (size_t)k < n ? *len + (size_t)k : n;
}

static void describe_conn(const http2_conn *c, char *buf, size_t n, size_t *len)
{
    nghttp2_session *ss = c->session;
    add(buf, n, len,
        "conn %s %s: send window %d, out %zu B, writing %d, dirty %d, read paused %d, "
        "nghttp2 wants write %d read %d, streams %zu",
        c->peer, c->ssl ? "tls" : "h2c", ss ? nghttp2_session_get_remote_window_size(ss) : -1,
        c->out.len - c->out.off, c->writing, c->dirty, c->read_paused,
        ss ? nghttp2_session_want_write(ss) : 0, ss ? nghttp2_session_want_read(ss) : 0,
        c->nstreams);
}

int http2_stream_describe(const http2_stream *s, char *buf, size_t n)
{
    size_t len = 0;
    const http2_conn *c = s->conn;
    int32_t win = c->session && !s->closed
                      ? nghttp2_session_get_stream_remote_window_size(c->session, s->id)
                      : -1;
    add(buf, n, &len,
        "stream %d: send window %d, queued %zu B (AGAIN at %zu), provider %s, want_write %d, "
        "on_writable queued %d, responded %d, ended %d, closed %d; ",
        s->id, win, http2__bytes_size(&s->outq), c->ep->stream_send_buffer,
        s->deferred ? "deferred" : "active", s->want_write, s->on_writable, s->responded, s->ended,
        s->closed);
    describe_conn(c, buf, n, &len);
    return (int)len;
}

int http2_stream_check(const http2_stream *s, char *why, size_t n)
{
    if (s->closed)
        return 0;
    if (s->deferred && http2__bytes_size(&s->outq) > 0) {
        snprintf(why, n,
                 "stream %d: %zu bytes queued but the data provider is deferred "
                 "(a resume was lost)",
                 s->id, http2__bytes_size(&s->outq));
        return -1;
    }
    if (s->want_write && !s->on_writable && http2__bytes_size(&s->outq) == 0 && !s->ended) {
        snprintf(why, n,
                 "stream %d: a writer waits for on_writable but nothing is queued to "
                 "drain (it can never come)",
                 s->id);
        return -1;
    }
    return 0;
}

bool http2_stream_writable_armed(const http2_stream *s)
{
    return s->closed || s->on_writable || s->want_write;
}

void http2_server_dump(const http2_server *srv)
{
    const http2_ep *ep = &srv->ep;
    OMS_INFO("state dump: http2 server port %d: %zu connections", srv->port, ep->nconns);
    char line[512];
    for (const http2_conn *c = ep->conns; c; c = c->next) {
        size_t len = 0;
        describe_conn(c, line, sizeof line, &len);
        OMS_INFO("state dump:   %s", line);
        for (const http2_stream *s = c->streams; s; s = s->next) {
            http2_stream_describe(s, line, sizeof line);
            char why[200];
            bool bad = http2_stream_check(s, why, sizeof why) != 0;
            OMS_INFO("state dump:     %.*s%s%s", (int)sizeof line, line, bad ? "; VIOLATION: " : "",
                     bad ? why : "");
        }
    }
}
