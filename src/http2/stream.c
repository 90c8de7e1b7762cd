/* stream.c - request streams: header gathering, the response data provider
 * (pull model) and the http2_stream_* API. */
#include <stdlib.h>
#include <string.h>

#include "base/log.h"
#include "http2/http2_int.h"

http2_stream *http2__stream_new(http2_conn *c, int32_t id, const http2_stream_handler *h)
{
    http2_stream *s = calloc(1, sizeof *s);
    if (!s)
        return NULL;
    s->conn = c;
    s->handler = h;
    s->id = id;
    s->next = c->streams;
    if (c->streams)
        c->streams->prev = s;
    c->streams = s;
    c->nstreams++;
    return s;
}

void http2__stream_free(http2_stream *s)
{
    http2_conn *c = s->conn;
    if (s->prev)
        s->prev->next = s->next;
    else
        c->streams = s->next;
    if (s->next)
        s->next->prev = s->prev;
    if (s->on_writable) {
        http2_stream **pp = &c->writable;
        while (*pp && *pp != s)
            pp = &(*pp)->writable_next;
        if (*pp)
            *pp = s->writable_next;
    }
    c->nstreams--;
    http2__bytes_dispose(&s->hbuf);
    http2__bytes_dispose(&s->outq);
    free(s->trailers);
    free(s);
}

/* Header fields are packed into hbuf as [u32 namelen][name][u32 valuelen]
 * [value]; pointers are made only once the block is complete, since hbuf may
 * move while it grows. */
int http2__stream_add_header(http2_stream *s, const uint8_t *name, size_t namelen,
                             const uint8_t *value, size_t valuelen)
{
    if (s->too_large)
        return 0;
    /* RFC 9113 section 6.5.2 counts 32 bytes of overhead per field. */
    s->hlist += namelen + valuelen + 32;
    if (s->hlist > s->conn->ep->max_header_list) {
        s->too_large = 1;
        return 0;
    }
    uint32_t nl = (uint32_t)namelen, vl = (uint32_t)valuelen;
    if (http2__bytes_append(&s->hbuf, &nl, sizeof nl) != 0 ||
        http2__bytes_append(&s->hbuf, name, namelen) != 0 ||
        http2__bytes_append(&s->hbuf, &vl, sizeof vl) != 0 ||
        http2__bytes_append(&s->hbuf, value, valuelen) != 0)
        return -1;
    s->nhdr++;
    return 0;
}

/* Rebuilds the gathered header block as an array and hands it to cb; the
 * block is dropped afterwards (a trailer block may follow). */
static void deliver_headers(http2_stream *s,
                            void (*cb)(http2_stream *, const http2_header *, size_t))
{
    http2_header stackh[32];
    http2_header *h = s->nhdr <= 32 ? stackh : malloc(s->nhdr * sizeof *h);
    if (!h) {
        http2_stream_reset(s, HTTP2_INTERNAL_ERROR);
        return;
    }
    memset(h, 0, sizeof *h); /* quiets -Wmaybe-uninitialized when nhdr == 0 */
    /* An empty block (every field dropped) has no buffer: NULL + 0 is UB. */
    const uint8_t *p = s->hbuf.data ? s->hbuf.data + s->hbuf.off : NULL;
    for (size_t i = 0; i < s->nhdr; i++) {
        uint32_t len;
        memcpy(&len, p, sizeof len);
        h[i].name = (const char *)p + sizeof len;
        h[i].namelen = len;
        p += sizeof len + len;
        memcpy(&len, p, sizeof len);
        h[i].value = (const char *)p + sizeof len;
        h[i].valuelen = len;
        p += sizeof len + len;
    }
    size_t n = s->nhdr;
    if (cb)
        cb(s, h, n);
    if (h != stackh)
        free(h);
    /* The stream may have closed inside cb (a reset); hbuf is ours until
     * http2__stream_free either way. */
    http2__bytes_dispose(&s->hbuf);
    s->nhdr = 0;
    s->hlist = 0;
}

void http2__stream_open(http2_stream *s)
{
    if (s->opened)
        return;
    if (s->too_large) {
        http2__bytes_dispose(&s->hbuf);
        if (s->conn->ep->client) {
            OMS_INFO("conn %s: stream %d: response header list over %u bytes", s->conn->peer, s->id,
                     s->conn->ep->max_header_list);
            http2_stream_reset(s, HTTP2_PROTOCOL_ERROR);
            return;
        }
        /* The handler never sees this stream. */
        OMS_INFO("conn %s: stream %d: request header list over %u bytes; answering 431",
                 s->conn->peer, s->id, s->conn->ep->max_header_list);
        http2_header h = {":status", 7, "431", 3};
        http2_stream_end(s, &h, 1);
        return;
    }
    s->opened = 1;
    deliver_headers(s, s->handler->on_open);
}

void http2__stream_trailers(http2_stream *s)
{
    if (s->too_large) {
        http2__bytes_dispose(&s->hbuf);
        http2_stream_reset(s, HTTP2_PROTOCOL_ERROR);
        return;
    }
    deliver_headers(s, s->handler->on_trailers);
}

/* Marks the data provider's end: END_STREAM, or trailers after the body. */
static void finish_body(http2_stream *s, nghttp2_session *session, uint32_t *flags)
{
    *flags |= NGHTTP2_DATA_FLAG_EOF;
    if (s->ntrailers) {
        if (nghttp2_submit_trailer(session, s->id, s->trailers, s->ntrailers) == 0)
            *flags |= NGHTTP2_DATA_FLAG_NO_END_STREAM;
        free(s->trailers);
        s->trailers = NULL;
        s->ntrailers = 0;
    }
}

ssize_t http2__stream_read(nghttp2_session *session, int32_t stream_id, uint8_t *buf, size_t length,
                           uint32_t *data_flags, nghttp2_data_source *source, void *user_data)
{
    (void)stream_id;
    (void)user_data;
    http2_stream *s = source->ptr;
    size_t avail = http2__bytes_size(&s->outq);
    if (avail == 0) {
        if (s->ended) {
            finish_body(s, session, data_flags);
            return 0;
        }
        s->deferred = 1;
        return NGHTTP2_ERR_DEFERRED;
    }
    size_t n = avail < length ? avail : length;
    memcpy(buf, s->outq.data + s->outq.off, n);
    s->outq.off += n;
    avail -= n;
    if (avail == 0 && s->ended)
        finish_body(s, session, data_flags);
    /* Below a quarter of the send buffer: ask the handler for more, from
     * outside this callback (conn.c's notify_writable). */
    if (s->want_write && !s->on_writable && avail < s->conn->ep->stream_send_buffer / 4) {
        s->want_write = 0;
        s->on_writable = 1;
        s->writable_next = s->conn->writable;
        s->conn->writable = s;
    }
    return (ssize_t)n;
}

/* Builds an nghttp2_nv array over h (no copy: nghttp2 copies on submit). */
static nghttp2_nv *make_nv(const http2_header *h, size_t n, nghttp2_nv *stack, size_t stackn)
{
    nghttp2_nv *nv = n <= stackn ? stack : malloc(n * sizeof *nv);
    if (!nv)
        return NULL;
    for (size_t i = 0; i < n; i++) {
        nv[i].name = (uint8_t *)h[i].name;
        nv[i].namelen = h[i].namelen;
        nv[i].value = (uint8_t *)h[i].value;
        nv[i].valuelen = h[i].valuelen;
        nv[i].flags = NGHTTP2_NV_FLAG_NONE;
    }
    return nv;
}

int http2_stream_respond(http2_stream *s, const http2_header *h, size_t n)
{
    if (s->closed || s->responded)
        return UV_EINVAL;
    nghttp2_nv stack[16];
    nghttp2_nv *nv = make_nv(h, n, stack, 16);
    if (!nv)
        return UV_ENOMEM;
    nghttp2_data_provider prd = {.source.ptr = s, .read_callback = http2__stream_read};
    int rv = nghttp2_submit_response(s->conn->session, s->id, nv, n, &prd);
    if (nv != stack)
        free(nv);
    if (rv != 0)
        return UV_EINVAL;
    s->responded = 1;
    http2__conn_mark_dirty(s->conn);
    return 0;
}

static void resume(http2_stream *s)
{
    if (s->deferred) {
        s->deferred = 0;
        nghttp2_session_resume_data(s->conn->session, s->id);
    }
    http2__conn_mark_dirty(s->conn);
}

int http2_stream_write(http2_stream *s, const uint8_t *p, size_t n)
{
    if (s->closed || !s->responded || s->ended)
        return UV_EINVAL;
    if (http2__bytes_append(&s->outq, p, n) != 0)
        return UV_ENOMEM;
    resume(s);
    if (http2__bytes_size(&s->outq) >= s->conn->ep->stream_send_buffer) {
        s->want_write = 1;
        return HTTP2_AGAIN;
    }
    return 0;
}

int http2_stream_end(http2_stream *s, const http2_header *h, size_t n)
{
    if (s->closed || s->ended)
        return UV_EINVAL;
    if (!s->responded && !s->conn->ep->client) {
        /* Headers with END_STREAM: the whole response is one header block. */
        nghttp2_nv stack[16];
        nghttp2_nv *nv = make_nv(h, n, stack, 16);
        if (!nv)
            return UV_ENOMEM;
        int rv = nghttp2_submit_response(s->conn->session, s->id, nv, n, NULL);
        if (nv != stack)
            free(nv);
        if (rv != 0)
            return UV_EINVAL;
        s->responded = 1;
        s->ended = 1;
        http2__conn_mark_dirty(s->conn);
        return 0;
    }
    if (n > 0) {
        /* One block: the nv array, then the strings it points to. */
        size_t bytes = n * sizeof(nghttp2_nv);
        for (size_t i = 0; i < n; i++)
            bytes += h[i].namelen + h[i].valuelen;
        nghttp2_nv *nv = malloc(bytes);
        if (!nv)
            return UV_ENOMEM;
        uint8_t *p = (uint8_t *)(nv + n);
        for (size_t i = 0; i < n; i++) {
            nv[i].name = p;
            memcpy(p, h[i].name, h[i].namelen);
            p += h[i].namelen;
            nv[i].namelen = h[i].namelen;
            nv[i].value = p;
            memcpy(p, h[i].value, h[i].valuelen);
            p += h[i].valuelen;
            nv[i].valuelen = h[i].valuelen;
            nv[i].flags = NGHTTP2_NV_FLAG_NONE;
        }
        s->trailers = nv;
        s->ntrailers = n;
    }
    s->ended = 1;
    resume(s);
    return 0;
}

int http2_stream_reset(http2_stream *s, uint32_t h2_error)
{
    if (s->closed)
        return UV_EINVAL;
    int rv = nghttp2_submit_rst_stream(s->conn->session, NGHTTP2_FLAG_NONE, s->id, h2_error);
    http2__conn_mark_dirty(s->conn);
    return rv == 0 ? 0 : UV_EINVAL;
}

void http2_stream_consume(http2_stream *s, size_t n)
{
    if (n > s->unconsumed)
        n = s->unconsumed;
    if (n == 0 || s->closed)
        return;
    s->unconsumed -= n;
    nghttp2_session_consume(s->conn->session, s->id, n);
    http2__conn_mark_dirty(s->conn);
}

size_t http2_stream_pending(const http2_stream *s)
{
    return http2__bytes_size(&s->outq);
}

void http2_stream_set_data(http2_stream *s, void *data)
{
    s->data = data;
}

void *http2_stream_data(const http2_stream *s)
{
    return s->data;
}

void *http2_stream_server_data(const http2_stream *s)
{
    return s->conn->ep->handler_data;
}

http2_conn *http2_stream_conn(const http2_stream *s)
{
    return s->conn;
}

uv_loop_t *http2_stream_loop(const http2_stream *s)
{
    return s->conn->ep->loop;
}

int32_t http2_stream_id(const http2_stream *s)
{
    return s->id;
}

const char *http2_stream_peer(const http2_stream *s)
{
    return s->conn->peer;
}
