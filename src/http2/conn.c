/* conn.c - one HTTP/2 connection: socket I/O, the nghttp2 server session,
 * coalesced output and read backpressure.
 *
 * Output never leaves from a callback: streams only mark the connection dirty,
 * and the loop's prepare hook (server.c) calls http2__conn_flush(), which runs
 * nghttp2_session_mem_send() into one buffer and hands it to one uv_write.
 * Over TLS the frames of a flush are gathered as plaintext first and
 * encrypted by one SSL_write, so they leave as few full records (up to
 * 16 KiB) rather than one record per frame. Only one write is in flight per
 * connection; while it is and nghttp2 still has output, the connection stops
 * reading, so a peer that does not read cannot make us buffer without bound.
 * A connection with nothing to send and no stream gives its buffers back,
 * and nghttp2's big blocks a little later (mem.c).
 */
#include <malloc.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/alloc.h"
#include "base/log.h"
#include "http2/http2_int.h"

/* --- byte buffers ------------------------------------------------------- */

/* A buffer's first size. Buffers of it come and go with every stream (a
 * request's header block, a response message, a connection's flush):
 * they are kept on a per-thread free list (base/alloc.h) rather than going
 * through malloc and free each time. */
#define BYTES_FIRST 1024
static _Thread_local oms_freelist bytes_fl = OMS_FREELIST_INIT(BYTES_FIRST);

static void bytes_release(void *p, size_t cap)
{
    if (p && cap == BYTES_FIRST)
        oms_freelist_put(&bytes_fl, p);
    else
        oms_free(p);
}

uint8_t *http2__bytes_extend(http2_bytes *b, size_t n)
{
    if (n == 0 && !b->data)
        return NULL; /* nothing to point at; callers ask for n > 0 */
    if (b->off == b->len)
        b->off = b->len = 0;
    if (b->len + n > b->cap) {
        if (b->off > 0) { /* slide unread bytes down before growing */
            memmove(b->data, b->data + b->off, b->len - b->off);
            b->len -= b->off;
            b->off = 0;
        }
        if (b->len + n > b->cap) {
            size_t cap = b->cap ? b->cap : BYTES_FIRST;
            while (cap < b->len + n)
                cap *= 2;
            uint8_t *d = !b->data && cap == BYTES_FIRST ? oms_freelist_get(&bytes_fl)
                                                        : oms_realloc(b->data, cap);
            if (!d)
                return NULL;
            b->data = d;
            b->cap = cap;
        }
    }
    uint8_t *at = b->data + b->len;
    b->len += n;
    return at;
}

int http2__bytes_append(http2_bytes *b, const void *p, size_t n)
{
    if (n == 0)
        return 0;
    uint8_t *at = http2__bytes_extend(b, n);
    if (!at)
        return -1;
    memcpy(at, p, n);
    return 0;
}

void http2__bytes_dispose(http2_bytes *b)
{
    bytes_release(b->data, b->cap);
    memset(b, 0, sizeof *b);
}

/* --- output gathering ------------------------------------------------------ */

/* One chunk of nghttp2's output: for h2c straight into the next write, for
 * TLS into the plaintext buffer that seal() encrypts as a whole, so a flush
 * leaves in as few TLS records as its size allows rather than one record
 * per frame. */
static int seal(http2_conn *c);

static int gather(http2_conn *c, const uint8_t *p, size_t n)
{
    if (!c->ssl)
        return http2__bytes_append(&c->out, p, n);
    if (http2__bytes_append(&c->plain, p, n) != 0)
        return -1;
    /* A big flush is encrypted as it goes: the plaintext buffer stays small
     * and the records full. */
    return http2__bytes_size(&c->plain) >= HTTP2_SEAL_CHUNK ? seal(c) : 0;
}

/* Bytes gathered for the next write, plaintext not yet encrypted included. */
static size_t gathered(const http2_conn *c)
{
    return http2__bytes_size(&c->out) + http2__bytes_size(&c->plain);
}

/* Encrypts what gather() collected into c->out (TLS; nothing to do for h2c). */
static int seal(http2_conn *c)
{
    size_t n = http2__bytes_size(&c->plain);
    if (n == 0)
        return 0;
    int rv = http2__tls_write(c, c->plain.data + c->plain.off, n);
    c->plain.off = c->plain.len = 0; /* the buffer is kept for the next flush */
    return rv;
}

int http2__conn_gather(http2_conn *c, const void *p, size_t n)
{
    return gather(c, p, n);
}

size_t http2__conn_gathered(const http2_conn *c)
{
    return gathered(c);
}

/* --- lifecycle ------------------------------------------------------------ */

void http2__conn_on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    (void)suggested;
    http2_conn *c = h->data;
    buf->base = (char *)c->ep->readbuf;
    buf->len = sizeof c->ep->readbuf;
}

http2_conn *http2__conn_new(http2_ep *ep)
{
    http2_conn *c = oms_calloc(1, sizeof *c);
    if (!c)
        return NULL;
    c->ep = ep;
    uv_tcp_init(ep->loop, &c->tcp);
    c->tcp.data = c;
    c->handles = 1;
    c->next = ep->conns;
    if (ep->conns)
        ep->conns->prev = c;
    ep->conns = c;
    ep->nconns++;
    snprintf(c->peer, sizeof c->peer, "?");
    http2__ep_start(ep);
    return c;
}

/* Formats a socket address as "ip:port" or "[ip6]:port". */
static void format_addr(const struct sockaddr_storage *ss, char *out, size_t n)
{
    char ip[INET6_ADDRSTRLEN];
    if (ss->ss_family == AF_INET6) {
        uv_ip6_name((const struct sockaddr_in6 *)ss, ip, sizeof ip);
        snprintf(out, n, "[%s]:%d", ip, ntohs(((const struct sockaddr_in6 *)ss)->sin6_port));
    } else {
        uv_ip4_name((const struct sockaddr_in *)ss, ip, sizeof ip);
        snprintf(out, n, "%s:%d", ip, ntohs(((const struct sockaddr_in *)ss)->sin_port));
    }
}

void http2__conn_set_peer(http2_conn *c, const struct sockaddr *sa)
{
    struct sockaddr_storage ss;
    memcpy(&ss, sa,
           sa->sa_family == AF_INET6 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in));
    format_addr(&ss, c->peer, sizeof c->peer);
}

int http2__conn_accept(http2_server *srv)
{
    http2_conn *c = http2__conn_new(&srv->ep);
    if (!c)
        return UV_ENOMEM;
    int rv = uv_accept((uv_stream_t *)&srv->listener, (uv_stream_t *)&c->tcp);
    if (rv != 0) {
        http2__conn_close(c);
        return rv;
    }
    if (!http2__limit_take(srv->ep.limit)) { /* over the cap: closed at once */
        http2__count(&srv->ep.ctr.refused, 1);
        http2__limit_refused(srv);
        http2__conn_why(c, HTTP2_CLOSE_LIMIT);
        http2__conn_fail(c, "over the connection limit");
        return 0;
    }
    c->counted = srv->ep.limit != NULL;
    http2__count(&srv->ep.ctr.accepted, 1);
    uv_tcp_nodelay(&c->tcp, 1);
    if (srv->cfg.tcp_keepalive_s)
        uv_tcp_keepalive(&c->tcp, 1, srv->cfg.tcp_keepalive_s);
    struct sockaddr_storage ss;
    int len = sizeof ss;
    if (uv_tcp_getpeername(&c->tcp, (struct sockaddr *)&ss, &len) == 0)
        format_addr(&ss, c->peer, sizeof c->peer);

    if (srv->ep.tls)
        rv = http2__tls_conn_init(c);
    else if (srv->ep.http1)
        c->sniffing = 1; /* HTTP/2 or HTTP/1.1: the first bytes tell */
    else
        rv = http2__conn_start_session(c);
    if (rv == 0)
        rv = uv_read_start((uv_stream_t *)&c->tcp, http2__conn_on_alloc, http2__conn_on_read);
    if (rv != 0) {
        http2__conn_close(c);
        return rv;
    }
    http2__policy_start(c);
    OMS_DEBUG("conn %s: accepted (%s)", c->peer, srv->ep.tls ? "tls" : "cleartext");
    return 0;
}

/* Runs once per closed libuv handle; the last one frees the connection. */
static void on_closed(uv_handle_t *h)
{
    http2_conn *c = h->data;
    if (--c->handles > 0)
        return;
    http2_ep *ep = c->ep;
    /* nghttp2_session_del() does not report open streams: tell their handlers
     * the connection is gone before the session goes. */
    while (c->streams) {
        http2_stream *s = c->streams;
        if (!ep->client && !s->closed) /* counted open: closed with the connection */
            http2__count(&ep->ctr.streams_closed, 1);
        s->closed = 1;
        if ((s->opened || c->ep->client) && s->handler->on_close)
            s->handler->on_close(s, HTTP2_CANCEL);
        http2__stream_free(s);
    }
    if (c->handler && c->handler->on_close)
        c->handler->on_close(c, c->reason[0] ? c->reason : "connection closed");
    http2__idle_leave(c);
    http2__h1_free(c);
    http2__bytes_dispose(&c->sniff);
    if (c->session)
        nghttp2_session_del(c->session);
    if (c->ssl)
        SSL_free(c->ssl);
    http2__bytes_dispose(&c->out);
    http2__bytes_dispose(&c->plain);
    bytes_release(c->wbuf.base, c->wbuf.len);
    oms_free(c->server_name);
    if (c->prev)
        c->prev->next = c->next;
    else
        ep->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    ep->nconns--;
    if (c->counted)
        http2__limit_give(ep->limit);
    /* A connection that queued much for a slow peer leaves freed chunks
     * that glibc keeps: give them back to the system. */
    if (c->queued_peak >= HTTP2_TRIM_AFTER)
        malloc_trim(0);
    OMS_DEBUG("conn %s: closed", c->peer);
    oms_free(c->tls_identity);
    oms_free(c);
    if (ep->conn_gone)
        ep->conn_gone(ep);
}

void http2__conn_fail(http2_conn *c, const char *fmt, ...)
{
    if (!c->reason[0]) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(c->reason, sizeof c->reason, fmt, ap);
        va_end(ap);
    }
    http2__conn_close(c);
}

void http2__conn_close(http2_conn *c)
{
    if (c->closing)
        return;
    c->closing = 1;
    http2__count(&c->ep->ctr.closed, 1);
    http2__count(&c->ep->ctr.closed_by[c->why < HTTP2_CLOSE_REASONS ? c->why : 0], 1);
    if (c->dirty) { /* unlink from the dirty list */
        http2_conn **pp = &c->ep->dirty;
        while (*pp && *pp != c)
            pp = &(*pp)->dirty_next;
        if (*pp)
            *pp = c->dirty_next;
        c->dirty = 0;
    }
    if (c->timer.loop) { /* initialized: client keepalive, server policy */
        c->timer.data = c;
        uv_close((uv_handle_t *)&c->timer, on_closed);
    }
    uv_close((uv_handle_t *)&c->tcp, on_closed);
}

/* Queues a raw GOAWAY for fatal errors after which nghttp2 itself can no
 * longer be asked to produce frames (bad preface, flood, callback failure),
 * then closes once it is written. */
static void fatal_goaway(http2_conn *c, uint32_t code)
{
    http2__conn_why(c, code == HTTP2_ENHANCE_YOUR_CALM ? HTTP2_CLOSE_FLOOD
                       : code == HTTP2_PROTOCOL_ERROR  ? HTTP2_CLOSE_PROTOCOL_ERROR
                                                       : HTTP2_CLOSE_OTHER);
    int32_t last = c->session ? nghttp2_session_get_last_proc_stream_id(c->session) : 0;
    uint8_t f[17] = {0, 0, 8, NGHTTP2_GOAWAY, 0, 0, 0, 0, 0};
    f[9] = (uint8_t)((last >> 24) & 0x7f);
    f[10] = (uint8_t)(last >> 16);
    f[11] = (uint8_t)(last >> 8);
    f[12] = (uint8_t)last;
    f[13] = (uint8_t)(code >> 24);
    f[14] = (uint8_t)(code >> 16);
    f[15] = (uint8_t)(code >> 8);
    f[16] = (uint8_t)code;
    /* Whatever nghttp2 already queued (our SETTINGS) goes first. */
    if (c->session) {
        const uint8_t *data;
        ssize_t n;
        while (gathered(c) < HTTP2_WRITE_CHUNK &&
               (n = nghttp2_session_mem_send(c->session, &data)) > 0) {
            if (gather(c, data, (size_t)n) != 0)
                break;
        }
    }
    if (gather(c, f, sizeof f) != 0 || seal(c) != 0) {
        http2__conn_close(c);
        return;
    }
    c->close_after_write = 1;
    c->goaway_sent = 1;
    http2__count_goaway(&c->ep->ctr, code);
    uv_read_stop((uv_stream_t *)&c->tcp);
    http2__conn_mark_dirty(c);
}

/* The GOAWAY that ends a drain: streams up to the last one we processed are
 * served, later ones were never started (the client may retry them). */
static void final_goaway(http2_conn *c)
{
    int rv = nghttp2_submit_goaway(c->session, NGHTTP2_FLAG_NONE,
                                   nghttp2_session_get_last_proc_stream_id(c->session),
                                   NGHTTP2_NO_ERROR, NULL, 0);
    if (rv != 0) { /* cannot say goodbye: close without it */
        http2__conn_fail(c, "GOAWAY: %s", nghttp2_strerror(rv));
        return;
    }
    c->goaway_sent = 1;
    http2__count_goaway(&c->ep->ctr, NGHTTP2_NO_ERROR);
    http2__conn_mark_dirty(c);
}

static const uint8_t drain_opaque[8] = {'o', 'm', 's', '-', 'd', 'r', 'a', 'i'};

/* A server drains in two steps, as h2o and grpc-go do: first a GOAWAY with
 * the largest stream id (nghttp2_submit_shutdown_notice) and a PING, so the
 * client stops opening streams while those already on their way to us are
 * still served; then, when the PING comes back (every stream the client
 * opened before it saw the notice has arrived), the GOAWAY with the real last
 * stream id. Some clients stop answering after any GOAWAY (python-h2): after
 * HTTP2_DRAIN_ACK_WAIT_MS the real GOAWAY goes anyway (policy.c's timer, as
 * h2o's one-second resend). */
void http2__conn_drain(http2_conn *c)
{
    if (c->closing || c->goaway_sent || c->drain_notice)
        return;
    http2__conn_why(c, HTTP2_CLOSE_DRAIN); /* unless idle/age decided it first */
    if (c->h1) { /* the current answer (if any) goes out, then the connection closes */
        http2__h1_drain(c);
        return;
    }
    if (!c->session) { /* still in the TLS handshake: nothing to drain */
        http2__conn_close(c);
        return;
    }
    if (c->ep->client || nghttp2_submit_shutdown_notice(c->session) != 0 ||
        nghttp2_submit_ping(c->session, NGHTTP2_FLAG_NONE, drain_opaque) != 0) {
        final_goaway(c);
        return;
    }
    c->drain_notice = 1;
    c->drain_at = uv_now(c->ep->loop);
    http2__policy_arm(c);
    http2__conn_mark_dirty(c);
}

void http2__conn_drain_finish(http2_conn *c)
{
    if (c->drain_notice && !c->goaway_sent && !c->closing)
        final_goaway(c);
}

bool http2__conn_drain_ack(http2_conn *c, const uint8_t *opaque)
{
    if (!c->drain_notice || c->goaway_sent || memcmp(opaque, drain_opaque, 8) != 0)
        return false;
    final_goaway(c);
    return true;
}

/* --- input ---------------------------------------------------------------- */

/* The HTTP/2 client preface (RFC 9113 section 3.4). */
static const char preface[] = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
#define PREFACE_LEN (sizeof preface - 1)

/* Cleartext with HTTP/1.1 on: what do the first bytes start? 0: cannot
 * tell yet; 1: an HTTP request line ("METHOD SP target SP HTTP/"), or
 * one too long to tell (the HTTP/1.1 parser answers it: 431); 2: the HTTP/2
 * preface, or neither, which nghttp2 answers as it always did (GOAWAY
 * PROTOCOL_ERROR: h2spec 3.5/2 sends "INVALID CONNECTION PREFACE"). */
static int classify(const uint8_t *p, size_t n, size_t max)
{
    size_t k = n < PREFACE_LEN ? n : PREFACE_LEN;
    if (memcmp(p, preface, k) == 0)
        return n >= PREFACE_LEN ? 2 : 0;
    size_t i = 0;
    while (i < n && i <= 32 && p[i] > ' ' && p[i] < 0x7f && !strchr("\"(),/:;<=>?@[\\]{}", p[i]))
        i++; /* the method, a token */
    if (i == n)
        return i <= 32 ? 0 : 2;
    if (i == 0 || p[i] != ' ')
        return 2;
    size_t t = ++i;
    while (i < n && p[i] > ' ' && p[i] != 0x7f)
        i++; /* the target */
    if (i == n)
        return n > max ? 1 : 0;
    if (i == t || p[i] != ' ')
        return 2;
    i++;
    static const char v[] = "HTTP/"; /* another version is HTTP/1.1's parser's 400 */
    for (size_t j = 0; j < sizeof v - 1; j++, i++) {
        if (i == n)
            return 0;
        if (p[i] != (uint8_t)v[j])
            return 2;
    }
    return 1;
}

/* Holds the first bytes until classify() can tell, then starts the
 * protocol they belong to and feeds it everything held. */
static int sniff(http2_conn *c, const uint8_t *p, size_t n)
{
    if (http2__bytes_append(&c->sniff, p, n) != 0)
        return -1;
    const uint8_t *q = c->sniff.data + c->sniff.off;
    size_t len = http2__bytes_size(&c->sniff);
    int kind = classify(q, len, c->ep->h1_max_head + 64);
    if (kind == 0)
        return 0;
    c->sniffing = 0;
    if ((kind == 1 ? http2__h1_start(c) : http2__conn_start_session(c)) != 0)
        return -1;
    http2_bytes held = c->sniff;
    memset(&c->sniff, 0, sizeof c->sniff);
    int rv = http2__conn_recv(c, held.data + held.off, http2__bytes_size(&held));
    http2__bytes_dispose(&held);
    return rv;
}

int http2__conn_recv(http2_conn *c, const uint8_t *p, size_t n)
{
    if (c->sniffing)
        return sniff(c, p, n);
    if (c->h1)
        return http2__h1_recv(c, p, n);
    if (c->close_after_write)
        return 0; /* a fatal error already ended the session */
    if (!c->ep->client)
        http2__check_scan(c, p, n);
    ssize_t rv = nghttp2_session_mem_recv(c->session, p, n);
    if (rv >= 0 && !c->ep->client)
        http2__check_after_recv(c);
    if (rv < 0) {
        uint32_t code = HTTP2_PROTOCOL_ERROR;
        if (rv == NGHTTP2_ERR_FLOODED)
            code = HTTP2_ENHANCE_YOUR_CALM;
#ifdef OMS_HAVE_NGHTTP2_ERR_TOO_MANY_CONTINUATIONS
        else if (rv == NGHTTP2_ERR_TOO_MANY_CONTINUATIONS)
            code = HTTP2_ENHANCE_YOUR_CALM; /* CONTINUATION flood */
#endif
        else if (rv == NGHTTP2_ERR_CALLBACK_FAILURE || rv == NGHTTP2_ERR_NOMEM)
            code = HTTP2_INTERNAL_ERROR;
        OMS_INFO("conn %s: %s; sending GOAWAY", c->peer, nghttp2_strerror((int)rv));
        fatal_goaway(c, code);
        return 0;
    }
    http2__conn_mark_dirty(c);
    return 0;
}

void http2__conn_on_read(uv_stream_t *tcp, ssize_t nread, const uv_buf_t *buf)
{
    http2_conn *c = tcp->data;
    if (nread == 0 || c->closing)
        return;
    if (nread < 0) {
        if (nread != UV_EOF)
            OMS_DEBUG("conn %s: read: %s", c->peer, uv_strerror((int)nread));
        http2__conn_why(c, nread == UV_EOF || nread == UV_ECONNRESET ? HTTP2_CLOSE_PEER
                                                                     : HTTP2_CLOSE_OTHER);
        http2__conn_fail(c, "%s",
                         nread == UV_EOF ? "connection closed by peer" : uv_strerror((int)nread));
        return;
    }
    c->last_read = uv_now(c->ep->loop);
    http2__count(&c->ep->ctr.bytes_in, (uint64_t)nread);
    int rv = c->ssl ? http2__tls_feed(c, (const uint8_t *)buf->base, (size_t)nread)
                    : http2__conn_recv(c, (const uint8_t *)buf->base, (size_t)nread);
    if (rv != 0) {
        if (c->ssl && (!c->handshake_done || strncmp(c->reason, "tls:", 4) == 0))
            http2__conn_why(c, HTTP2_CLOSE_TLS_ERROR);
        /* A failed TLS handshake may still have an alert to send. */
        if (c->out.len > c->out.off && !c->closing) {
            c->close_after_write = 1;
            uv_read_stop(tcp);
            http2__conn_mark_dirty(c);
        } else {
            http2__conn_close(c);
        }
        return;
    }
    /* Backpressure: the peer has not taken our last write and we have more to
     * say; stop reading until it does. */
    if (c->writing && c->session && nghttp2_session_want_write(c->session) && !c->read_paused &&
        !c->closing) {
        c->read_paused = 1;
        uv_read_stop(tcp);
    }
}

/* --- output --------------------------------------------------------------- */

void http2__conn_mark_dirty(http2_conn *c)
{
    if (c->dirty || c->closing)
        return;
    c->dirty = 1;
    c->dirty_next = c->ep->dirty;
    c->ep->dirty = c;
}

static void on_written(uv_write_t *req, int status)
{
    http2_conn *c = container_of(req, http2_conn, wreq);
    c->writing = 0;
    if (c->closing)
        return;
    if (status < 0) {
        OMS_DEBUG("conn %s: write: %s", c->peer, uv_strerror(status));
        http2__conn_why(c, status == UV_EPIPE || status == UV_ECONNRESET ? HTTP2_CLOSE_PEER
                                                                         : HTTP2_CLOSE_OTHER);
        http2__conn_fail(c, "write: %s", uv_strerror(status));
        return;
    }
    if (c->read_paused && !c->close_after_write) {
        c->read_paused = 0;
        int rv = uv_read_start((uv_stream_t *)&c->tcp, http2__conn_on_alloc, http2__conn_on_read);
        if (rv != 0) {
            http2__conn_fail(c, "read resume: %s", uv_strerror(rv));
            return;
        }
    }
    http2__conn_flush(c);
}

/* Tells every stream that drained below its low-water mark that it may write
 * again. Runs outside nghttp2 calls, so handlers may submit freely. */
void http2__conn_notify_writable(http2_conn *c)
{
    if (c->wake_all)
        http2__stream_wake_all(c);
    if (c->pend_head)
        http2__stream_open_pending(c);
    while (c->writable) {
        http2_stream *s = c->writable;
        c->writable = s->writable_next;
        s->writable_next = NULL;
        s->on_writable = 0;
        if (!s->closed && s->handler->on_writable)
            s->handler->on_writable(s);
    }
}

/* Nothing to send, nothing in flight and no stream open: the connection
 * gives its buffers back (the next flush allocates them again), and OpenSSL
 * its record buffers (SSL_free_buffers keeps them while a partial record
 * waits for its end). An idle connection then holds only its state. */
static void release_idle(http2_conn *c)
{
    http2__bytes_dispose(&c->out);
    http2__bytes_dispose(&c->plain);
    bytes_release(c->wbuf.base, c->wbuf.len);
    c->wbuf = uv_buf_init(NULL, 0);
    if (c->ssl)
        (void)SSL_free_buffers(c->ssl);
    http2__idle_enter(c); /* and nghttp2's pages a little later (mem.c) */
}

void http2__conn_flush(http2_conn *c)
{
    if (c->closing || c->writing)
        return;
    if (c->h1) {
        if (!c->close_after_write)
            http2__h1_fill(c);
    } else if (c->session && !c->close_after_write) {
        for (;;) {
            http2__conn_notify_writable(c);
            while (gathered(c) < HTTP2_WRITE_CHUNK) {
                const uint8_t *data;
                ssize_t n = nghttp2_session_mem_send(c->session, &data);
                if (n < 0) {
                    OMS_INFO("conn %s: %s; closing", c->peer, nghttp2_strerror((int)n));
                    fatal_goaway(c, n == NGHTTP2_ERR_FLOODED ? HTTP2_ENHANCE_YOUR_CALM
                                                             : HTTP2_INTERNAL_ERROR);
                    break;
                }
                if (n == 0)
                    break;
                if (gather(c, data, (size_t)n) != 0) {
                    http2__conn_close(c);
                    return;
                }
            }
            if (!c->writable || gathered(c) >= HTTP2_WRITE_CHUNK)
                break;
        }
    }
    if (c->closing) /* fatal_goaway() could not queue its frame */
        return;
    if (seal(c) != 0) {
        http2__conn_close(c);
        return;
    }
    size_t n = c->out.len - c->out.off;
    if (n > 0) {
        /* Hand the gathered bytes to libuv and keep the old in-flight buffer
         * as the next gathering buffer. */
        uv_buf_t spare = c->wbuf;
        c->wbuf = uv_buf_init((char *)c->out.data, (unsigned)c->out.cap);
        uv_buf_t b = uv_buf_init((char *)c->out.data + c->out.off, (unsigned)n);
        c->out.data = (uint8_t *)spare.base;
        c->out.cap = spare.len;
        c->out.off = c->out.len = 0;
        int rv = uv_write(&c->wreq, (uv_stream_t *)&c->tcp, &b, 1, on_written);
        if (rv != 0) {
            http2__conn_close(c);
            return;
        }
        http2__count(&c->ep->ctr.bytes_out, n);
        c->writing = 1;
        c->trimmed = 0; /* nghttp2's frame buffer is in use again */
        return;
    }
    if (c->close_after_write && c->h1)
        http2__h1_linger(c);
    else if (c->close_after_write || (c->session && !nghttp2_session_want_read(c->session) &&
                                      !nghttp2_session_want_write(c->session)))
        http2__conn_close(c);
    else if (c->nstreams == 0)
        release_idle(c);
}
