/* conn.c - one HTTP/2 connection: socket I/O, the nghttp2 server session,
 * coalesced output and read backpressure.
 *
 * Output never leaves from a callback: streams only mark the connection dirty,
 * and the loop's prepare hook (server.c) calls http2__conn_flush(), which runs
 * nghttp2_session_mem_send() into one buffer and hands it to one uv_write.
 * Only one write is in flight per connection; while it is and nghttp2 still
 * has output, the connection stops reading, so a peer that does not read
 * cannot make us buffer without bound.
 */
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/log.h"
#include "http2/http2_int.h"

/* --- byte buffers ------------------------------------------------------- */

int http2__bytes_append(http2_bytes *b, const void *p, size_t n)
{
    if (b->off == b->len)
        b->off = b->len = 0;
    if (b->len + n > b->cap) {
        if (b->off > 0) { /* slide unread bytes down before growing */
            memmove(b->data, b->data + b->off, b->len - b->off);
            b->len -= b->off;
            b->off = 0;
        }
        if (b->len + n > b->cap) {
            size_t cap = b->cap ? b->cap : 1024;
            while (cap < b->len + n)
                cap *= 2;
            uint8_t *d = realloc(b->data, cap);
            if (!d)
                return -1;
            b->data = d;
            b->cap = cap;
        }
    }
    memcpy(b->data + b->len, p, n);
    b->len += n;
    return 0;
}

void http2__bytes_dispose(http2_bytes *b)
{
    free(b->data);
    memset(b, 0, sizeof *b);
}

/* --- lifecycle ------------------------------------------------------------ */

static void on_read(uv_stream_t *tcp, ssize_t nread, const uv_buf_t *buf);

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    (void)suggested;
    http2_conn *c = h->data;
    buf->base = (char *)c->srv->readbuf;
    buf->len = sizeof c->srv->readbuf;
}

int http2__conn_accept(http2_server *srv)
{
    http2_conn *c = calloc(1, sizeof *c);
    if (!c)
        return UV_ENOMEM;
    c->srv = srv;
    uv_tcp_init(srv->loop, &c->tcp);
    c->tcp.data = c;
    int rv = uv_accept((uv_stream_t *)&srv->listener, (uv_stream_t *)&c->tcp);
    /* Link first: from here on the connection is torn down by http2__conn_close. */
    c->next = srv->conns;
    if (srv->conns)
        srv->conns->prev = c;
    srv->conns = c;
    srv->nconns++;
    if (rv != 0) {
        http2__conn_close(c);
        return rv;
    }
    uv_tcp_nodelay(&c->tcp, 1);

    struct sockaddr_storage ss;
    int len = sizeof ss;
    snprintf(c->peer, sizeof c->peer, "?");
    if (uv_tcp_getpeername(&c->tcp, (struct sockaddr *)&ss, &len) == 0) {
        char ip[INET6_ADDRSTRLEN];
        if (ss.ss_family == AF_INET6) {
            uv_ip6_name((struct sockaddr_in6 *)&ss, ip, sizeof ip);
            snprintf(c->peer, sizeof c->peer, "[%s]:%d", ip,
                     ntohs(((struct sockaddr_in6 *)&ss)->sin6_port));
        } else {
            uv_ip4_name((struct sockaddr_in *)&ss, ip, sizeof ip);
            snprintf(c->peer, sizeof c->peer, "%s:%d", ip,
                     ntohs(((struct sockaddr_in *)&ss)->sin_port));
        }
    }

    if (srv->ssl_ctx)
        rv = http2__tls_conn_init(c);
    else
        rv = http2__conn_start_session(c);
    if (rv == 0)
        rv = uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
    if (rv != 0) {
        http2__conn_close(c);
        return rv;
    }
    OMS_DEBUG("conn %s: accepted (%s)", c->peer, srv->ssl_ctx ? "tls" : "h2c");
    return 0;
}

static void on_closed(uv_handle_t *h)
{
    http2_conn *c = h->data;
    http2_server *srv = c->srv;
    /* nghttp2_session_del() does not report open streams: tell their handlers
     * the connection is gone before the session goes. */
    while (c->streams) {
        http2_stream *s = c->streams;
        s->closed = 1;
        if (s->opened && srv->cfg.handler->on_close)
            srv->cfg.handler->on_close(s, HTTP2_CANCEL);
        http2__stream_free(s);
    }
    if (c->session)
        nghttp2_session_del(c->session);
    if (c->ssl)
        SSL_free(c->ssl);
    http2__bytes_dispose(&c->out);
    free(c->wbuf.base);
    if (c->prev)
        c->prev->next = c->next;
    else
        srv->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    srv->nconns--;
    OMS_DEBUG("conn %s: closed", c->peer);
    free(c);
    http2__server_conn_gone(srv);
}

void http2__conn_close(http2_conn *c)
{
    if (c->closing)
        return;
    c->closing = 1;
    if (c->dirty) { /* unlink from the server's dirty list */
        http2_conn **pp = &c->srv->dirty;
        while (*pp && *pp != c)
            pp = &(*pp)->dirty_next;
        if (*pp)
            *pp = c->dirty_next;
        c->dirty = 0;
    }
    uv_close((uv_handle_t *)&c->tcp, on_closed);
}

/* Queues a raw GOAWAY for fatal errors after which nghttp2 itself can no
 * longer be asked to produce frames (bad preface, flood, callback failure),
 * then closes once it is written. */
static void fatal_goaway(http2_conn *c, uint32_t code)
{
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
        while (c->out.len - c->out.off < HTTP2_WRITE_CHUNK &&
               (n = nghttp2_session_mem_send(c->session, &data)) > 0) {
            if (c->ssl ? http2__tls_write(c, data, (size_t)n) != 0
                       : http2__bytes_append(&c->out, data, (size_t)n) != 0)
                break;
        }
    }
    int rv = c->ssl ? http2__tls_write(c, f, sizeof f) : http2__bytes_append(&c->out, f, sizeof f);
    if (rv != 0) {
        http2__conn_close(c);
        return;
    }
    c->close_after_write = 1;
    c->goaway_sent = 1;
    uv_read_stop((uv_stream_t *)&c->tcp);
    http2__conn_mark_dirty(c);
}

void http2__conn_drain(http2_conn *c)
{
    if (c->closing || c->goaway_sent)
        return;
    if (!c->session) { /* still in the TLS handshake: nothing to drain */
        http2__conn_close(c);
        return;
    }
    nghttp2_submit_goaway(c->session, NGHTTP2_FLAG_NONE,
                          nghttp2_session_get_last_proc_stream_id(c->session), NGHTTP2_NO_ERROR,
                          NULL, 0);
    c->goaway_sent = 1;
    http2__conn_mark_dirty(c);
}

/* --- input ---------------------------------------------------------------- */

int http2__conn_recv(http2_conn *c, const uint8_t *p, size_t n)
{
    if (c->close_after_write)
        return 0; /* a fatal error already ended the session */
    ssize_t rv = nghttp2_session_mem_recv(c->session, p, n);
    if (rv < 0) {
        uint32_t code = HTTP2_PROTOCOL_ERROR;
        if (rv == NGHTTP2_ERR_FLOODED)
            code = HTTP2_ENHANCE_YOUR_CALM;
        else if (rv == NGHTTP2_ERR_CALLBACK_FAILURE || rv == NGHTTP2_ERR_NOMEM)
            code = HTTP2_INTERNAL_ERROR;
        OMS_INFO("conn %s: %s; sending GOAWAY", c->peer, nghttp2_strerror((int)rv));
        fatal_goaway(c, code);
        return 0;
    }
    http2__conn_mark_dirty(c);
    return 0;
}

static void on_read(uv_stream_t *tcp, ssize_t nread, const uv_buf_t *buf)
{
    http2_conn *c = tcp->data;
    if (nread == 0 || c->closing)
        return;
    if (nread < 0) {
        if (nread != UV_EOF)
            OMS_DEBUG("conn %s: read: %s", c->peer, uv_strerror((int)nread));
        http2__conn_close(c);
        return;
    }
    int rv = c->ssl ? http2__tls_feed(c, (const uint8_t *)buf->base, (size_t)nread)
                    : http2__conn_recv(c, (const uint8_t *)buf->base, (size_t)nread);
    if (rv != 0) {
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
    c->dirty_next = c->srv->dirty;
    c->srv->dirty = c;
}

static void on_written(uv_write_t *req, int status)
{
    http2_conn *c = container_of(req, http2_conn, wreq);
    c->writing = 0;
    if (c->closing)
        return;
    if (status < 0) {
        OMS_DEBUG("conn %s: write: %s", c->peer, uv_strerror(status));
        http2__conn_close(c);
        return;
    }
    if (c->read_paused && !c->close_after_write) {
        c->read_paused = 0;
        uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
    }
    http2__conn_flush(c);
}

/* Tells every stream that drained below its low-water mark that it may write
 * again. Runs outside nghttp2 calls, so handlers may submit freely. */
static void notify_writable(http2_conn *c)
{
    const http2_stream_handler *h = c->srv->cfg.handler;
    while (c->writable) {
        http2_stream *s = c->writable;
        c->writable = s->writable_next;
        s->writable_next = NULL;
        s->on_writable = 0;
        if (!s->closed && h->on_writable)
            h->on_writable(s);
    }
}

void http2__conn_flush(http2_conn *c)
{
    if (c->closing || c->writing)
        return;
    if (c->session && !c->close_after_write) {
        for (;;) {
            notify_writable(c);
            while (c->out.len - c->out.off < HTTP2_WRITE_CHUNK) {
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
                int rv = c->ssl ? http2__tls_write(c, data, (size_t)n)
                                : http2__bytes_append(&c->out, data, (size_t)n);
                if (rv != 0) {
                    http2__conn_close(c);
                    return;
                }
            }
            if (!c->writable || c->out.len - c->out.off >= HTTP2_WRITE_CHUNK)
                break;
        }
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
        c->writing = 1;
        return;
    }
    if (c->close_after_write ||
        (c->session && !nghttp2_session_want_read(c->session) &&
         !nghttp2_session_want_write(c->session)))
        http2__conn_close(c);
}

/* --- nghttp2 session -------------------------------------------------------- */

static http2_stream *stream_of(nghttp2_session *session, int32_t id)
{
    return nghttp2_session_get_stream_user_data(session, id);
}

static int on_begin_headers(nghttp2_session *session, const nghttp2_frame *frame, void *user_data)
{
    http2_conn *c = user_data;
    if (frame->hd.type != NGHTTP2_HEADERS || frame->headers.cat != NGHTTP2_HCAT_REQUEST)
        return 0;
    if (c->refusing)
        return 0; /* past a reset flood: nghttp2 keeps parsing, we stop serving */
    http2_stream *s = http2__stream_new(c, frame->hd.stream_id);
    if (!s)
        return NGHTTP2_ERR_CALLBACK_FAILURE;
    nghttp2_session_set_stream_user_data(session, frame->hd.stream_id, s);
    return 0;
}

static int on_header(nghttp2_session *session, const nghttp2_frame *frame, const uint8_t *name,
                     size_t namelen, const uint8_t *value, size_t valuelen, uint8_t flags,
                     void *user_data)
{
    (void)flags;
    (void)user_data;
    if (frame->hd.type != NGHTTP2_HEADERS || frame->headers.cat != NGHTTP2_HCAT_REQUEST)
        return 0; /* trailers from a client carry nothing gRPC uses */
    http2_stream *s = stream_of(session, frame->hd.stream_id);
    if (!s)
        return 0;
    if (http2__stream_add_header(s, name, namelen, value, valuelen) != 0)
        return NGHTTP2_ERR_CALLBACK_FAILURE;
    return 0;
}

/* Rapid reset (CVE-2023-44487). nghttp2's limiter queues a GOAWAY once its
 * bucket (1000 resets, 33 more per second) is empty, but it goes on opening
 * the streams that follow in the same read until that GOAWAY is sent. This
 * bucket has the same shape: once it is empty no new stream reaches the
 * handler, and the session is terminated in case nghttp2's limiter (absent
 * from an old library) did not fire. */
#define RESET_BURST 1000
#define RESET_RATE 33

static void count_reset(http2_conn *c)
{
    uint64_t now = uv_now(c->srv->loop) / 1000;
    if (c->rst_stamp == 0) {
        c->rst_tokens = RESET_BURST;
    } else if (now > c->rst_stamp) {
        c->rst_tokens += (double)(now - c->rst_stamp) * RESET_RATE;
        if (c->rst_tokens > RESET_BURST)
            c->rst_tokens = RESET_BURST;
    }
    c->rst_stamp = now ? now : 1;
    if (c->rst_tokens >= 1) {
        c->rst_tokens -= 1;
        return;
    }
    if (!c->refusing) {
        c->refusing = 1;
        OMS_WARN("conn %s: stream reset flood; closing with GOAWAY", c->peer);
        nghttp2_session_terminate_session(c->session, NGHTTP2_ENHANCE_YOUR_CALM);
    }
}

static int on_frame_recv(nghttp2_session *session, const nghttp2_frame *frame, void *user_data)
{
    http2_conn *c = user_data;
    const http2_stream_handler *h = c->srv->cfg.handler;
    http2_stream *s;
    switch (frame->hd.type) {
    case NGHTTP2_HEADERS:
        s = stream_of(session, frame->hd.stream_id);
        if (!s)
            return 0;
        if (frame->headers.cat == NGHTTP2_HCAT_REQUEST)
            http2__stream_open(s);
        if ((frame->hd.flags & NGHTTP2_FLAG_END_STREAM) && s->opened && !s->closed && h->on_end)
            h->on_end(s);
        break;
    case NGHTTP2_DATA:
        s = stream_of(session, frame->hd.stream_id);
        if (s && (frame->hd.flags & NGHTTP2_FLAG_END_STREAM) && s->opened && !s->closed &&
            h->on_end)
            h->on_end(s);
        break;
    case NGHTTP2_GOAWAY:
        OMS_DEBUG("conn %s: GOAWAY from peer, code %u", c->peer, frame->goaway.error_code);
        break;
    case NGHTTP2_RST_STREAM:
        count_reset(c);
        break;
    default:
        break;
    }
    return 0;
}

static int on_data_chunk(nghttp2_session *session, uint8_t flags, int32_t stream_id,
                         const uint8_t *data, size_t len, void *user_data)
{
    (void)flags;
    http2_conn *c = user_data;
    http2_stream *s = stream_of(session, stream_id);
    if (!s || !s->opened || s->closed) {
        nghttp2_session_consume_connection(session, len);
        return 0;
    }
    s->unconsumed += len;
    if (c->srv->cfg.handler->on_data)
        c->srv->cfg.handler->on_data(s, data, len);
    else
        http2_stream_consume(s, len);
    return 0;
}

static int on_stream_close(nghttp2_session *session, int32_t stream_id, uint32_t error_code,
                           void *user_data)
{
    http2_conn *c = user_data;
    http2_stream *s = stream_of(session, stream_id);
    if (!s)
        return 0;
    s->closed = 1;
    /* Flow-control credit for bytes the handler never consumed would be lost
     * with the stream: give it back to the connection window. */
    if (s->unconsumed)
        nghttp2_session_consume_connection(session, s->unconsumed);
    s->unconsumed = 0;
    if (s->opened && c->srv->cfg.handler->on_close)
        c->srv->cfg.handler->on_close(s, error_code);
    nghttp2_session_set_stream_user_data(session, stream_id, NULL);
    http2__stream_free(s);
    return 0;
}

/* RFC 9113 section 8.1: once the response is complete, a server may ask a
 * client that is still sending to stop, without error. */
static int on_frame_send(nghttp2_session *session, const nghttp2_frame *frame, void *user_data)
{
    (void)user_data;
    if ((frame->hd.type == NGHTTP2_HEADERS || frame->hd.type == NGHTTP2_DATA) &&
        (frame->hd.flags & NGHTTP2_FLAG_END_STREAM) && frame->hd.stream_id > 0 &&
        nghttp2_session_get_stream_remote_close(session, frame->hd.stream_id) == 0)
        nghttp2_submit_rst_stream(session, NGHTTP2_FLAG_NONE, frame->hd.stream_id,
                                  NGHTTP2_NO_ERROR);
    return 0;
}

static int on_invalid_frame(nghttp2_session *session, const nghttp2_frame *frame, int err,
                            void *user_data)
{
    (void)session;
    http2_conn *c = user_data;
    OMS_DEBUG("conn %s: invalid frame type %u on stream %d: %s", c->peer, frame->hd.type,
              frame->hd.stream_id, nghttp2_strerror(err));
    return 0;
}

int http2__session_callbacks_new(nghttp2_session_callbacks **out)
{
    nghttp2_session_callbacks *cbs;
    if (nghttp2_session_callbacks_new(&cbs) != 0)
        return UV_ENOMEM;
    nghttp2_session_callbacks_set_on_begin_headers_callback(cbs, on_begin_headers);
    nghttp2_session_callbacks_set_on_header_callback(cbs, on_header);
    nghttp2_session_callbacks_set_on_frame_recv_callback(cbs, on_frame_recv);
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cbs, on_data_chunk);
    nghttp2_session_callbacks_set_on_stream_close_callback(cbs, on_stream_close);
    nghttp2_session_callbacks_set_on_invalid_frame_recv_callback(cbs, on_invalid_frame);
    nghttp2_session_callbacks_set_on_frame_send_callback(cbs, on_frame_send);
    *out = cbs;
    return 0;
}

nghttp2_option *http2__session_option_new(const http2_server_config *cfg)
{
    (void)cfg;
    nghttp2_option *opt;
    if (nghttp2_option_new(&opt) != 0)
        return NULL;
    /* Window credit is returned only as rpc consumes messages (pull model). */
    nghttp2_option_set_no_auto_window_update(opt, 1);
    /* DoS limits (REFERENCE.md section 3). Debian backported these into 1.52;
     * CMake detects them by symbol. */
#ifdef OMS_HAVE_NGHTTP2_OPTION_SET_MAX_OUTBOUND_ACK
    nghttp2_option_set_max_outbound_ack(opt, 1000); /* ping/settings floods */
#endif
#ifdef OMS_HAVE_NGHTTP2_OPTION_SET_MAX_SETTINGS
    nghttp2_option_set_max_settings(opt, 32); /* CVE-2020-11080 */
#endif
#ifdef OMS_HAVE_NGHTTP2_OPTION_SET_STREAM_RESET_RATE_LIMIT
    nghttp2_option_set_stream_reset_rate_limit(opt, 1000, 33); /* rapid reset */
#endif
#ifdef OMS_HAVE_NGHTTP2_OPTION_SET_MAX_CONTINUATIONS
    nghttp2_option_set_max_continuations(opt, 8); /* CONTINUATION flood */
#endif
    return opt;
}

int http2__conn_start_session(http2_conn *c)
{
    const http2_server_config *cfg = &c->srv->cfg;
    if (nghttp2_session_server_new2(&c->session, c->srv->callbacks, c, c->srv->option) != 0)
        return UV_ENOMEM;
    nghttp2_settings_entry iv[] = {
        {NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, cfg->max_concurrent_streams},
        {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, cfg->stream_window},
        {NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE, cfg->max_header_list},
    };
    if (nghttp2_submit_settings(c->session, NGHTTP2_FLAG_NONE, iv, sizeof iv / sizeof iv[0]) != 0)
        return UV_ENOMEM;
    if (cfg->conn_window > NGHTTP2_INITIAL_CONNECTION_WINDOW_SIZE &&
        nghttp2_session_set_local_window_size(c->session, NGHTTP2_FLAG_NONE, 0,
                                              (int32_t)cfg->conn_window) != 0)
        return UV_ENOMEM;
    http2__conn_mark_dirty(c);
    return 0;
}
