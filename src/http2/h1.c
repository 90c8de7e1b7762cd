/* h1.c - HTTP/1.1 on the server's port, presented to the stream handler as
 * HTTP/2 streams.
 *
 * A connection turns HTTP/1.1 when TLS negotiates ALPN "http/1.1", or, in
 * cleartext, when its first bytes are not the HTTP/2 client preface but look
 * like a request line (http2__conn_recv's sniff). From then on every request,
 * parsed by http1's parser (http1/parse.h: limits, smuggling checks), becomes
 * one http2_stream with the same handler as an HTTP/2 request:
 *   on_open   request line and headers as an HTTP/2 header block: :method,
 *             :scheme, :authority (from Host or an absolute target), :path,
 *             then the fields with lower-case names, hop-by-hop ones (and
 *             those a Connection field names) dropped;
 *   on_data   body bytes, de-chunked; reading stops while the handler holds
 *             stream_window bytes it has not consumed (flow control);
 *   on_end    the body ended;
 *   on_close  NO_ERROR once the answer is out and the request read, else
 *             CANCEL (the peer went away, or closed mid-body) or
 *             PROTOCOL_ERROR (the rest of the request was malformed).
 * Answers: respond() writes the status line and headers, with
 * "transfer-encoding: chunked" unless the handler gave a content-length (or
 * the answer has no body: HEAD, 204, 304); write() is one chunk; end() the
 * last chunk with the trailers; an end() without respond() is a whole
 * answer of headers only ("content-length: 0"). reset() closes the
 * connection: a begun HTTP/1.1 answer cannot be aborted otherwise.
 *
 * One request at a time: a pipelined request waits, unparsed, until the
 * answer before it is out. The connection keeps reading while an answer
 * streams, so that a client that goes away ends a long answer (a watch),
 * holding at most HELD_MAX pipelined bytes (a client that half-closes after
 * its request is taken as gone, as a cancelled call). An answer may start
 * before its request's body ended; the exchange ends when both did. The
 * answer to an HTTP/1.0 request, to "Connection: close", to an upgrade, and
 * while the server drains says "connection: close", and the connection
 * closes after it: TLS close_notify, the write side shut down, then input
 * read and dropped until the peer closes (at most LINGER_MS), so that the
 * answer is not lost to a reset. The header timeout bounds a request's
 * head; its body is paced by the handler (rpc's deadlines), as on HTTP/2.
 */
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include <openssl/err.h>

#include "base/alloc.h"
#include "base/log.h"
#include "http1/parse.h"
#include "http2/http2_int.h"

#define HELD_MAX  (64u << 10) /* pipelined bytes read ahead, past the head limit */
#define LINGER_MS 2000

struct http2_h1 {
    http1_parser *parser;
    http2_stream *cur;        /* the request being served, or NULL */
    http2_bytes held;         /* bytes read and not parsed yet (pipelined requests) */
    int32_t next_id;          /* stream ids as HTTP/2 numbers them: 1, 3, 5, ... */
    uint64_t head_at;         /* loop time a request's first byte came, 0: none pending */
    uint64_t linger_at;       /* loop time the write side was shut down */
    uv_shutdown_t shutdown;   /* the linger's */
    unsigned paused : 1;      /* the parser waits at a request's end for its answer */
    unsigned req_ended : 1;   /* cur's body ended (on_end given) */
    unsigned no_body : 1;     /* cur's request has no body (known from its head) */
    unsigned resp_done : 1;   /* cur's answer is out (handed to the socket) */
    unsigned head_out : 1;    /* cur's answer began leaving: no error answer any more */
    unsigned chunked : 1;     /* cur's answer body is chunked */
    unsigned bodyless : 1;    /* cur's answer has no body (HEAD, 204, 304) */
    unsigned is_head : 1;     /* cur is a HEAD request */
    unsigned minor0 : 1;      /* cur is HTTP/1.0 */
    unsigned keep : 1;        /* cur allows another request after it */
    unsigned close_after : 1; /* the connection closes after cur's answer */
    unsigned draining : 1;    /* the server drains: no request after the current one */
    unsigned read_off : 1;    /* reading stopped (flow control or HELD_MAX) */
    unsigned lingering : 1;   /* shut down, discarding input */
    unsigned notified : 1;    /* TLS close_notify queued */
};

/* --- small helpers --------------------------------------------------------- */

static bool name_is(const char *name, size_t n, const char *lit)
{
    return strlen(lit) == n && strncasecmp(name, lit, n) == 0;
}

/* Hop-by-hop fields (RFC 9110 section 7.6.1) and those HTTP/2 has no place
 * for: never passed on, in either direction. */
static bool hop_by_hop(const char *name, size_t n)
{
    return name_is(name, n, "connection") || name_is(name, n, "keep-alive") ||
           name_is(name, n, "proxy-connection") || name_is(name, n, "transfer-encoding") ||
           name_is(name, n, "te") || name_is(name, n, "upgrade") ||
           name_is(name, n, "http2-settings");
}

/* Whether a Connection field of the request names name (n bytes) as one of
 * its comma-separated options: such a field is hop-by-hop too (RFC 9110
 * section 7.6.1) and is not passed on. */
static bool named_by_connection(const http1_head *hd, const char *name, size_t n)
{
    for (size_t i = 0; i < hd->n_headers; i++) {
        if (strcasecmp(hd->headers[i].name, "connection") != 0)
            continue;
        for (const char *p = hd->headers[i].value;;) {
            while (*p == ' ' || *p == '\t' || *p == ',')
                p++;
            if (!*p)
                break;
            const char *t = p;
            while (*p && *p != ',' && *p != ' ' && *p != '\t')
                p++;
            if ((size_t)(p - t) == n && strncasecmp(t, name, n) == 0)
                return true;
        }
    }
    return false;
}

/* Bytes that must not reach a header line we write (a handler's value may
 * come from a request). */
static bool safe_field(const char *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (p[i] == '\r' || p[i] == '\n' || p[i] == '\0')
            return false;
    return true;
}

static void update_read(http2_conn *c)
{
    http2_h1 *h = c->h1;
    if (c->closing)
        return;
    bool want =
        h->lingering || (http2__bytes_size(&h->held) < HELD_MAX &&
                         !(h->cur && !h->req_ended && h->cur->unconsumed >= c->ep->stream_window));
    if (want && h->read_off) {
        h->read_off = 0;
        int rv = uv_read_start((uv_stream_t *)&c->tcp, http2__conn_on_alloc, http2__conn_on_read);
        if (rv != 0)
            http2__conn_fail(c, "read resume: %s", uv_strerror(rv));
    } else if (!want && !h->read_off) {
        h->read_off = 1;
        uv_read_stop((uv_stream_t *)&c->tcp);
    }
}

/* Closes the connection once what is gathered is written (conn.c's flush
 * then calls http2__h1_linger). */
static void close_after_output(http2_conn *c)
{
    c->close_after_write = 1;
    http2__conn_mark_dirty(c);
}

/* Ends cur without its answer: on_close(h2_error), the stream freed (its
 * queued answer with it). */
static void drop_current(http2_conn *c, uint32_t h2_error)
{
    http2_h1 *h = c->h1;
    http2_stream *s = h->cur;
    if (!s)
        return;
    h->cur = NULL;
    s->closed = 1;
    http2__count(&c->ep->ctr.streams_closed, 1);
    if (s->opened && s->handler->on_close)
        s->handler->on_close(s, h2_error);
    http2__stream_free(s);
}

/* Answers status itself and closes: a request refused by the parser or by
 * the checks here, before or during its body. */
static void fail(http2_conn *c, int status)
{
    http2_h1 *h = c->h1;
    if (c->closing || c->close_after_write)
        return;
    http2__count(&c->ep->ctr.h1_errors, 1);
    http2__conn_why(c, status == 408 ? HTTP2_CLOSE_KEEPALIVE_TIMEOUT : HTTP2_CLOSE_PROTOCOL_ERROR);
    if (!c->reason[0])
        snprintf(c->reason, sizeof c->reason, "http/1.1: %d %s", status, http1_reason(status));
    bool answer = !h->cur || !h->head_out;
    drop_current(c, HTTP2_PROTOCOL_ERROR);
    OMS_DEBUG("conn %s: http/1.1 request refused: %d", c->peer, status);
    if (answer) {
        char msg[256];
        const char *why = http1_reason(status);
        int n = snprintf(msg, sizeof msg,
                         "HTTP/1.1 %d %s\r\ncontent-type: text/plain; charset=utf-8\r\n"
                         "content-length: %zu\r\nconnection: close\r\n\r\n%s\n",
                         status, why, strlen(why) + 1, why);
        if (n > 0 && (size_t)n < sizeof msg && http2__conn_gather(c, msg, (size_t)n) != 0) {
            http2__conn_close(c);
            return;
        }
    }
    h->paused = 1; /* nothing more is parsed */
    close_after_output(c);
}

/* --- requests ------------------------------------------------------------ */

/* The request's :authority and :path from an absolute-form target
 * ("http://host:port/p?q"); false if the target is neither that nor
 * origin-form ("/p?q") nor "*". */
static bool split_target(const char *t, size_t n, const char **auth, size_t *alen,
                         const char **path, size_t *plen)
{
    *auth = NULL;
    *alen = 0;
    if (n && (t[0] == '/' || (n == 1 && t[0] == '*'))) {
        *path = t;
        *plen = n;
        return true;
    }
    const char *sep = memmem(t, n, "://", 3);
    if (!sep)
        return false;
    const char *a = sep + 3, *end = t + n;
    const char *slash = memchr(a, '/', (size_t)(end - a));
    const char *q = memchr(a, '?', (size_t)(end - a));
    const char *p = slash && (!q || slash < q) ? slash : q;
    *auth = a;
    *alen = (size_t)((p ? p : end) - a);
    *path = p && *p == '/' ? p : "/";
    *plen = p && *p == '/' ? (size_t)(end - p) : 1;
    return *alen > 0;
}

static int on_head(void *data, const http1_head *hd)
{
    http2_conn *c = data;
    http2_h1 *h = c->h1;
    http2_ep *ep = c->ep;
    h->head_at = 0;
    if (c->closing)
        return 400; /* a request behind one that closed the connection: parse no further */
    if (strcmp(hd->method, "CONNECT") == 0)
        return 405;
    const char *auth, *path;
    size_t alen, plen;
    if (!split_target(hd->target, hd->target_len, &auth, &alen, &path, &plen))
        return 400;
    const http1_header *host = NULL;
    size_t names = 0;
    for (size_t i = 0; i < hd->n_headers; i++) {
        if (strcasecmp(hd->headers[i].name, "host") == 0) {
            if (host)
                return 400; /* RFC 9112 section 3.2: exactly one */
            host = &hd->headers[i];
        }
        names += strlen(hd->headers[i].name);
    }
    if (!host && hd->http_minor == 1)
        return 400;
    if (!auth && host) {
        auth = host->value;
        alen = strlen(host->value);
    }
    if (hd->content_length != HTTP1_NO_LENGTH && hd->content_length > ep->h1_max_body)
        return 413;
    /* The header block, names in lower case (one buffer for all of them). */
    http2_header *hs = oms_malloc((hd->n_headers + 4) * sizeof *hs + names + 1);
    if (!hs)
        return 500;
    char *lower = (char *)(hs + hd->n_headers + 4);
    size_t n = 0;
    hs[n++] = (http2_header){":method", 7, hd->method, strlen(hd->method)};
    hs[n++] =
        c->ssl ? (http2_header){":scheme", 7, "https", 5} : (http2_header){":scheme", 7, "http", 4};
    if (auth)
        hs[n++] = (http2_header){":authority", 10, auth, alen};
    hs[n++] = (http2_header){":path", 5, path, plen};
    bool expect_continue = false;
    for (size_t i = 0; i < hd->n_headers; i++) {
        const char *nm = hd->headers[i].name;
        size_t nl = strlen(nm);
        if (hop_by_hop(nm, nl) || name_is(nm, nl, "host") || named_by_connection(hd, nm, nl))
            continue;
        if (name_is(nm, nl, "expect")) {
            expect_continue = strcasecmp(hd->headers[i].value, "100-continue") == 0;
            continue;
        }
        for (size_t k = 0; k < nl; k++)
            lower[k] = (char)((nm[k] >= 'A' && nm[k] <= 'Z') ? nm[k] + 32 : nm[k]);
        hs[n++] = (http2_header){lower, nl, hd->headers[i].value, strlen(hd->headers[i].value)};
        lower += nl;
    }
    http2_stream *s = http2__stream_new(c, h->next_id, ep->handler);
    if (!s) {
        oms_free(hs);
        return 500;
    }
    h->next_id += 2;
    http2__count(&ep->ctr.streams_opened, 1);
    http2__count(&ep->ctr.h1_requests, 1);
    h->cur = s;
    h->req_ended = h->resp_done = h->head_out = h->chunked = h->bodyless = 0;
    h->no_body = !hd->chunked && (hd->content_length == HTTP1_NO_LENGTH || hd->content_length == 0);
    h->is_head = strcmp(hd->method, "HEAD") == 0;
    h->minor0 = hd->http_minor == 0;
    h->keep = hd->keep_alive && !hd->upgrade;
    if (expect_continue && !h->no_body && !h->minor0) {
        static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
        if (http2__conn_gather(c, cont, sizeof cont - 1) != 0) {
            oms_free(hs);
            return 500;
        }
        http2__conn_mark_dirty(c);
    }
    s->opened = 1;
    if (s->handler->on_open)
        s->handler->on_open(s, hs, n);
    oms_free(hs);
    return 0;
}

static int on_body(void *data, const uint8_t *p, size_t n)
{
    http2_conn *c = data;
    http2_stream *s = c->h1->cur;
    if (!s || c->closing)
        return 0;
    /* The transport holds nothing: the handler has the bytes until it
     * consumes them, and over h1_max_body of them the request is refused. */
    s->unconsumed += n;
    if (s->unconsumed > c->ep->h1_max_body)
        return 413;
    if (s->handler->on_data)
        s->handler->on_data(s, p, n);
    else
        http2_stream_consume(s, n);
    return 0;
}

static int on_end(void *data)
{
    http2_conn *c = data;
    http2_h1 *h = c->h1;
    http2_stream *s = h->cur;
    h->paused = 1; /* the next request waits for this one's answer */
    if (!s || c->closing)
        return 1;
    h->req_ended = 1;
    if (s->handler->on_end)
        s->handler->on_end(s);
    return 1;
}

static const http1_parse_ops parse_ops = {
    .on_head = on_head,
    .on_body = on_body,
    .on_end = on_end,
};

static void maybe_finish(http2_conn *c);

/* Parses held bytes, then p[0..n), while the parser is not waiting for an
 * answer; what is left is held. */
static void parse_more(http2_conn *c, const uint8_t *p, size_t n)
{
    http2_h1 *h = c->h1;
    while (!h->paused && !c->closing && !c->close_after_write) {
        bool from_held = http2__bytes_size(&h->held) > 0;
        const uint8_t *buf = from_held ? h->held.data + h->held.off : p;
        size_t len = from_held ? http2__bytes_size(&h->held) : n;
        if (len == 0)
            break;
        long used = http1_parser_feed(h->parser, (const char *)buf, len);
        if (c->closing)
            return;
        if (used < 0) {
            fail(c, (int)-used);
            return;
        }
        if (from_held) {
            h->held.off += (size_t)used;
        } else {
            p += used;
            n -= (size_t)used;
        }
        if ((size_t)used < len && !h->paused) {
            /* an upgrade: the rest is no request of ours */
            h->close_after = 1;
            h->paused = 1;
            n = 0;
            h->held.off = h->held.len;
        }
        if (http1_parser_busy(h->parser) && !h->cur && !h->head_at) {
            h->head_at = uv_now(c->ep->loop); /* a head began: the header timeout runs */
            http2__policy_arm(c);
        }
    }
    if (n > 0 && !c->closing && !c->close_after_write && http2__bytes_append(&h->held, p, n) != 0) {
        http2__conn_fail(c, "out of memory");
        return;
    }
    if (h->paused && !c->closing)
        maybe_finish(c); /* an answer that went out before its request ended */
    if (!c->closing)
        update_read(c);
}

/* cur's answer is out and its request read: the exchange is over. */
static void finish_exchange(http2_conn *c)
{
    http2_h1 *h = c->h1;
    http2_stream *s = h->cur;
    h->cur = NULL;
    s->closed = 1;
    http2__count(&c->ep->ctr.streams_closed, 1);
    if (s->handler->on_close)
        s->handler->on_close(s, HTTP2_NO_ERROR);
    http2__stream_free(s);
    if (c->closing)
        return;
    if (h->close_after) {
        h->paused = 1;
        http2__conn_why(c, h->draining ? HTTP2_CLOSE_DRAIN : HTTP2_CLOSE_PEER);
        close_after_output(c);
        return;
    }
    h->paused = 0;
    http1_parser_resume(h->parser);
    http2__policy_arm(c); /* idle from now, or the next head's timeout */
    parse_more(c, NULL, 0);
}

static void maybe_finish(http2_conn *c)
{
    http2_h1 *h = c->h1;
    if (h->cur && h->resp_done && h->req_ended)
        finish_exchange(c);
}

/* --- the connection ------------------------------------------------------- */

int http2__h1_start(http2_conn *c)
{
    http2_h1 *h = oms_calloc(1, sizeof *h);
    if (!h)
        return UV_ENOMEM;
    http1_parse_limits lim = {c->ep->h1_max_head, c->ep->h1_max_headers};
    h->parser = http1_parser_new(&lim, &parse_ops, c);
    if (!h->parser) {
        oms_free(h);
        return UV_ENOMEM;
    }
    h->next_id = 1;
    c->h1 = h;
    c->greeted = 1; /* the handshake deadline is met; the header timeout takes over */
    c->idle_since = uv_now(c->ep->loop);
    http2__count(&c->ep->ctr.h1_conns, 1);
    http2__policy_arm(c);
    OMS_DEBUG("conn %s: http/1.1", c->peer);
    return 0;
}

void http2__h1_free(http2_conn *c)
{
    http2_h1 *h = c->h1;
    if (!h)
        return;
    http1_parser_free(h->parser);
    http2__bytes_dispose(&h->held);
    oms_free(h);
    c->h1 = NULL;
}

int http2__h1_recv(http2_conn *c, const uint8_t *p, size_t n)
{
    http2_h1 *h = c->h1;
    if (h->lingering || c->close_after_write)
        return 0; /* discarded */
    if (h->paused || http2__bytes_size(&h->held) > 0) {
        if (http2__bytes_append(&h->held, p, n) != 0)
            return -1;
        p = NULL;
        n = 0;
    }
    parse_more(c, p, n);
    return 0;
}

void http2__h1_fill(http2_conn *c)
{
    http2_h1 *h = c->h1;
    for (;;) {
        http2__conn_notify_writable(c);
        http2_stream *s = h->cur;
        if (!s || c->closing)
            return;
        size_t n = http2__bytes_size(&s->outq);
        size_t room = HTTP2_WRITE_CHUNK > http2__conn_gathered(c)
                          ? HTTP2_WRITE_CHUNK - http2__conn_gathered(c)
                          : 0;
        if (n > room)
            n = room;
        if (n > 0) {
            if (http2__conn_gather(c, s->outq.data + s->outq.off, n) != 0) {
                http2__conn_close(c);
                return;
            }
            h->head_out = 1;
            s->outq.off += n;
            http2__stream_take(s, n);
        }
        if (s->ended && !h->resp_done && http2__bytes_size(&s->outq) == 0) {
            h->resp_done = 1;
            maybe_finish(c); /* may start the next request: loop for its answer */
            continue;
        }
        if (!c->writable || http2__conn_gathered(c) >= HTTP2_WRITE_CHUNK)
            return;
    }
}

static void on_shutdown(uv_shutdown_t *req, int status)
{
    http2_conn *c = req->data;
    if (c->closing)
        return;
    if (status != 0) {
        http2__conn_close(c);
        return;
    }
    c->h1->linger_at = uv_now(c->ep->loop);
    update_read(c);
    http2__policy_arm(c);
}

void http2__h1_linger(http2_conn *c)
{
    http2_h1 *h = c->h1;
    if (h->lingering || c->closing)
        return;
    if (c->ssl && !h->notified) {
        /* close_notify first (a body that ends with the connection is only
         * known whole with it); the flush writes it and calls back here. */
        h->notified = 1;
        (void)SSL_shutdown(c->ssl);
        ERR_clear_error();
        if (c->out.len > c->out.off) {
            http2__conn_mark_dirty(c);
            return;
        }
    }
    h->lingering = 1;
    h->shutdown.data = c;
    if (uv_shutdown(&h->shutdown, (uv_stream_t *)&c->tcp, on_shutdown) != 0)
        http2__conn_close(c);
}

void http2__h1_drain(http2_conn *c)
{
    http2_h1 *h = c->h1;
    h->draining = 1;
    h->close_after = 1;
    if (!h->cur && !http1_parser_busy(h->parser)) {
        h->paused = 1;
        close_after_output(c);
    }
}

uint64_t http2__h1_deadline(const http2_conn *c)
{
    const http2_h1 *h = c->h1;
    const http2_ep *ep = c->ep;
    if (h->lingering)
        return h->linger_at ? h->linger_at + LINGER_MS : 0;
    if (c->close_after_write)
        return 0;
    if (h->head_at && ep->h1_header_timeout_ms)
        return h->head_at + ep->h1_header_timeout_ms;
    if (!h->cur && ep->h1_idle_timeout_ms)
        return c->idle_since + ep->h1_idle_timeout_ms;
    return 0;
}

bool http2__h1_on_timer(http2_conn *c, uint64_t now)
{
    uint64_t t = http2__h1_deadline(c);
    if (!t || now < t)
        return false;
    http2_h1 *h = c->h1;
    if (h->lingering) {
        http2__conn_close(c);
    } else if (h->head_at) {
        OMS_INFO("conn %s: http/1.1 request head not complete within %llu ms; closing", c->peer,
                 (unsigned long long)c->ep->h1_header_timeout_ms);
        fail(c, 408);
    } else {
        http2__conn_why(c, HTTP2_CLOSE_IDLE);
        http2__conn_fail(c, "idle");
    }
    return true;
}

/* --- answers (the http2_stream_* calls on an HTTP/1.1 stream) -------------- */

/* Writes hv as "name: value" lines into buf (room for each field's bytes
 * and 4 more), leaving out pseudo-headers, hop-by-hop fields, fields with
 * bytes that would break the line, and content-length with no_clen.
 * Returns the bytes written. */
static size_t put_fields(char *buf, const http2_header *hv, size_t n, bool no_clen)
{
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        const http2_header *x = &hv[i];
        if (!x->namelen || x->name[0] == ':' || hop_by_hop(x->name, x->namelen) ||
            !safe_field(x->name, x->namelen) || !safe_field(x->value, x->valuelen) ||
            (no_clen && name_is(x->name, x->namelen, "content-length")))
            continue;
        memcpy(buf + k, x->name, x->namelen);
        k += x->namelen;
        buf[k++] = ':';
        buf[k++] = ' ';
        memcpy(buf + k, x->value, x->valuelen);
        k += x->valuelen;
        buf[k++] = '\r';
        buf[k++] = '\n';
    }
    return k;
}

/* Queues the status line and headers; whole: the answer is these headers
 * alone (end() without respond()). */
static int head(http2_stream *s, const http2_header *hv, size_t n, bool whole)
{
    http2_conn *c = s->conn;
    http2_h1 *h = c->h1;
    const char *status = "200";
    size_t slen = 3;
    bool clen = false;
    size_t bytes = 64;
    for (size_t i = 0; i < n; i++) {
        if (name_is(hv[i].name, hv[i].namelen, ":status")) {
            status = hv[i].value;
            slen = hv[i].valuelen;
        } else if (name_is(hv[i].name, hv[i].namelen, "content-length")) {
            clen = true;
        }
        bytes += hv[i].namelen + hv[i].valuelen + 4;
    }
    int code = 0;
    for (size_t i = 0; i < slen && i < 3; i++)
        code = code * 10 + (status[i] >= '0' && status[i] <= '9' ? status[i] - '0' : 0);
    if (slen != 3 || code < 200)
        return UV_EINVAL;
    h->bodyless = h->is_head || code == 204 || code == 304;
    /* An answer may begin before its request's body ended (an early
     * error): the exchange still ends only with the body, read and handed
     * to the handler, so the next request starts where it should. */
    if (!h->keep || h->draining || h->minor0)
        h->close_after = 1;
    h->chunked = !whole && !clen && !h->bodyless && !h->minor0;
    if (!whole && !clen && !h->bodyless && h->minor0)
        h->close_after = 1; /* HTTP/1.0: the body ends with the connection */
    char *buf = oms_malloc(bytes + 128);
    if (!buf)
        return UV_ENOMEM;
    int len = snprintf(buf, 128, "HTTP/1.1 %.3s %s\r\n", status, http1_reason(code));
    size_t k = (size_t)len;
    k += put_fields(buf + k, hv, n, whole && h->bodyless);
    const char *extra = h->chunked                       ? "transfer-encoding: chunked\r\n"
                        : whole && !clen && !h->bodyless ? "content-length: 0\r\n"
                                                         : "";
    k +=
        (size_t)snprintf(buf + k, 64, "%s%s\r\n", extra, h->close_after ? "connection: close" : "");
    /* the blank line: "connection: close\r\n" + "\r\n", or just "\r\n" */
    if (h->close_after) {
        memcpy(buf + k, "\r\n", 2);
        k += 2;
    }
    int rv = http2__stream_queue(s, buf, k);
    oms_free(buf);
    if (rv != 0)
        return UV_ENOMEM;
    s->responded = 1;
    return 0;
}

/* Out of memory in an answer: HTTP/1.1 can neither take back what went
 * out nor answer later out of order, and a handler that gives up on the
 * stream would leave the client waiting: the connection closes (the
 * stream's on_close(CANCEL) follows from the loop). */
static int nomem(http2_stream *s)
{
    http2__conn_fail(s->conn, "out of memory answering request %d", s->id);
    return UV_ENOMEM;
}

int http2__h1_respond(http2_stream *s, const http2_header *h, size_t n)
{
    if (s->closed || s->responded)
        return UV_EINVAL;
    int rv = head(s, h, n, false);
    if (rv == UV_ENOMEM)
        return nomem(s);
    if (rv == 0)
        http2__conn_mark_dirty(s->conn);
    return rv;
}

int http2__h1_write(http2_stream *s, const uint8_t *p, size_t n)
{
    if (s->closed || !s->responded || s->ended)
        return UV_EINVAL;
    http2_h1 *h = s->conn->h1;
    if (n > 0 && !h->bodyless) {
        char pre[24];
        int k = h->chunked ? snprintf(pre, sizeof pre, "%zx\r\n", n) : 0;
        if ((k && http2__stream_queue(s, pre, (size_t)k) != 0) ||
            http2__stream_queue(s, p, n) != 0 ||
            (h->chunked && http2__stream_queue(s, "\r\n", 2) != 0))
            return nomem(s);
    }
    http2__conn_mark_dirty(s->conn);
    return http2__stream_full(s) ? HTTP2_AGAIN : 0;
}

int http2__h1_end(http2_stream *s, const http2_header *hv, size_t n)
{
    if (s->closed || s->ended)
        return UV_EINVAL;
    http2_h1 *h = s->conn->h1;
    int rv = 0;
    if (!s->responded) {
        rv = head(s, hv, n, true);
    } else if (h->chunked) {
        /* the last chunk, then the trailers (as header lines) */
        size_t bytes = 8;
        for (size_t i = 0; i < n; i++)
            bytes += hv[i].namelen + hv[i].valuelen + 4;
        char *buf = oms_malloc(bytes);
        if (!buf)
            return nomem(s);
        memcpy(buf, "0\r\n", 3);
        size_t k = 3 + put_fields(buf + 3, hv, n, false);
        buf[k++] = '\r';
        buf[k++] = '\n';
        rv = http2__stream_queue(s, buf, k) == 0 ? 0 : UV_ENOMEM;
        oms_free(buf);
    }
    if (rv == UV_ENOMEM)
        return nomem(s);
    if (rv != 0)
        return rv;
    s->ended = 1;
    http2__conn_mark_dirty(s->conn);
    return 0;
}

int http2__h1_reset(http2_stream *s, uint32_t h2_error)
{
    if (s->closed)
        return UV_EINVAL;
    http2_conn *c = s->conn;
    OMS_DEBUG("conn %s: http/1.1 answer reset (%s); closing", c->peer, http2_error_name(h2_error));
    http2__conn_fail(c, "stream reset: %s", http2_error_name(h2_error));
    return 0;
}

void http2__h1_consume(http2_stream *s, size_t n)
{
    if (n > s->unconsumed)
        n = s->unconsumed;
    s->unconsumed -= n;
    if (!s->closed && !s->conn->closing)
        update_read(s->conn);
}
