/* stream.c - request streams: header gathering, the response data provider
 * (pull model) and the http2_stream_* API. */
#include <stdlib.h>
#include <string.h>

#include "base/alloc.h"
#include "base/log.h"
#include "http2/http2_int.h"

/* Streams come and go by the thousand per second: a free list per thread
 * (base/alloc.h) keeps them out of malloc's slow paths. */
static _Thread_local oms_freelist stream_fl = OMS_FREELIST_INIT(sizeof(http2_stream));

http2_stream *http2__stream_new(http2_conn *c, int32_t id, const http2_stream_handler *h)
{
    http2_stream *s = oms_freelist_get(&stream_fl);
    if (!s)
        return NULL;
    memset(s, 0, sizeof *s);
    s->conn = c;
    s->handler = h;
    s->id = id;
    s->next = c->streams;
    if (c->streams)
        c->streams->prev = s;
    c->streams = s;
    c->nstreams++;
    http2__idle_leave(c);
    return s;
}

/* The connection's budget (ep->conn_budget): responses queued over it make
 * http2_stream_write answer AGAIN and new streams wait before on_open; below
 * half of it both go on. The process's budget (budget.c) does the same to a
 * heavy connection while the process is over it; that connection is woken by
 * http2__server_budget_wake(). */
static bool over_budget(http2_conn *c)
{
    if (c->ep->conn_budget && c->queued >= c->ep->conn_budget)
        return true;
    if (!http2__budget_over(c->ep->budget, c->queued, c->ep->stream_send_buffer))
        return false;
    c->proc_blocked = 1;
    return true;
}

static void unqueue(http2_conn *c, size_t n)
{
    size_t low = c->ep->conn_budget / 2;
    bool above = c->queued >= low;
    http2__budget_sub(c->ep->budget, n);
    c->queued -= n;
    if (c->ep->conn_budget && above && c->queued < low) {
        c->wake_all = 1;
        http2__conn_mark_dirty(c);
    }
}

int http2__stream_queue(http2_stream *s, const void *p, size_t n)
{
    if (http2__bytes_append(&s->outq, p, n) != 0)
        return -1;
    http2_conn *c = s->conn;
    c->queued += n;
    http2__budget_add(c->ep->budget, n);
    if (c->queued > c->queued_peak)
        c->queued_peak = c->queued;
    return 0;
}

bool http2__stream_full(http2_stream *s)
{
    if (http2__bytes_size(&s->outq) >= s->conn->ep->stream_send_buffer || over_budget(s->conn)) {
        s->want_write = 1;
        return true;
    }
    return false;
}

void http2__stream_take(http2_stream *s, size_t n)
{
    unqueue(s->conn, n);
    /* Below a quarter of the send buffer: ask the handler for more, from
     * outside this call (conn.c's notify_writable). */
    if (s->want_write && !s->on_writable &&
        http2__bytes_size(&s->outq) < s->conn->ep->stream_send_buffer / 4 &&
        !over_budget(s->conn)) {
        s->want_write = 0;
        s->on_writable = 1;
        s->writable_next = s->conn->writable;
        s->conn->writable = s;
    }
}

void http2__stream_free(http2_stream *s)
{
    http2_conn *c = s->conn;
    if (c->hdr_stream == s)
        c->hdr_stream = NULL;
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
    if (--c->nstreams == 0)
        c->idle_since = uv_now(c->ep->loop);
    if (s->pending) {
        http2_stream **pp = &c->pend_head;
        while (*pp && *pp != s)
            pp = &(*pp)->pend_next;
        if (*pp)
            *pp = s->pend_next;
        if (c->pend_tail == s) {
            c->pend_tail = NULL;
            for (http2_stream *p = c->pend_head; p; p = p->pend_next)
                c->pend_tail = p;
        }
    }
    unqueue(c, http2__bytes_size(&s->outq));
    http2__bytes_dispose(&s->inq);
    http2__bytes_dispose(&s->hbuf);
    http2__bytes_dispose(&s->outq);
    oms_free(s->trailers);
    oms_free(s->held_nv);
    oms_freelist_put(&stream_fl, s);
}

/* Header fields are packed into hbuf as [u32 namelen][name][u32 valuelen]
 * [value]; pointers are made only once the block is complete, since hbuf may
 * move while it grows. */
int http2__stream_add_header(http2_stream *s, const uint8_t *name, size_t namelen,
                             const uint8_t *value, size_t valuelen)
{
    /* RFC 9113 section 6.5.2 counts 32 bytes of overhead per field. */
    s->hlist += namelen + valuelen + 32;
    if (s->hlist > s->conn->ep->max_header_list) {
        s->too_large = 1;
        /* Up to the limit plus HTTP2_HLIST_SLACK the block is read to its
         * end for an answer (rpc's RESOURCE_EXHAUSTED, or 431): one big
         * value from a careless client gets a status it can report. Beyond,
         * the caller resets the stream: decoding stops costing CPU. */
        return s->hlist > (size_t)s->conn->ep->max_header_list + HTTP2_HLIST_SLACK ? 1 : 0;
    }
    if (s->too_large)
        return 0;
    if (namelen == 14 && memcmp(name, "content-length", 14) == 0)
        s->has_clen = 1;
    uint32_t nl = (uint32_t)namelen, vl = (uint32_t)valuelen;
    uint8_t *p = http2__bytes_extend(&s->hbuf, 2 * sizeof nl + namelen + valuelen);
    if (!p)
        return -1;
    memcpy(p, &nl, sizeof nl);
    memcpy(p + sizeof nl, name, namelen);
    memcpy(p + sizeof nl + namelen, &vl, sizeof vl);
    memcpy(p + 2 * sizeof nl + namelen, value, valuelen);
    s->nhdr++;
    return 0;
}

/* Rebuilds the gathered header block as an array and hands it to cb; the
 * block is dropped afterwards (a trailer block may follow). */
static void deliver_headers(http2_stream *s,
                            void (*cb)(http2_stream *, const http2_header *, size_t))
{
    http2_header stackh[32];
    http2_header *h = s->nhdr <= 32 ? stackh : oms_malloc(s->nhdr * sizeof *h);
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
        oms_free(h);
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
        /* The handler never sees this stream, but may answer it. */
        OMS_INFO("conn %s: stream %d: request header list over %u bytes", s->conn->peer, s->id,
                 s->conn->ep->max_header_list);
        if (s->handler->on_too_large) {
            s->handler->on_too_large(s, s->conn->ep->max_header_list);
            return;
        }
        http2_header h = {":status", 7, "431", 3};
        http2_stream_end(s, &h, 1);
        return;
    }
    if (!s->conn->ep->client && (over_budget(s->conn) || s->conn->pend_head)) {
        /* Responses already queued on this connection are over its budget:
         * this request waits (its headers stay in hbuf, its DATA in inq). */
        http2_conn *c = s->conn;
        s->pending = 1;
        if (c->pend_tail)
            c->pend_tail->pend_next = s;
        else
            c->pend_head = s;
        c->pend_tail = s;
        return;
    }
    s->opened = 1;
    deliver_headers(s, s->handler->on_open);
}

int http2__stream_hold_data(http2_stream *s, const uint8_t *p, size_t n)
{
    s->unconsumed += n;
    return http2__bytes_append(&s->inq, p, n);
}

void http2__stream_open_pending(http2_conn *c)
{
    while (c->pend_head && !over_budget(c) && !c->closing) {
        http2_stream *s = c->pend_head;
        c->pend_head = s->pend_next;
        if (!c->pend_head)
            c->pend_tail = NULL;
        s->pend_next = NULL;
        s->pending = 0;
        s->opened = 1;
        deliver_headers(s, s->handler->on_open);
        size_t n = http2__bytes_size(&s->inq);
        if (n && !s->closed) {
            if (s->handler->on_data)
                s->handler->on_data(s, s->inq.data + s->inq.off, n);
            else
                http2_stream_consume(s, n);
        }
        http2__bytes_dispose(&s->inq);
        if (s->end_held && !s->closed && s->handler->on_end)
            s->handler->on_end(s);
    }
}

void http2__stream_wake_all(http2_conn *c)
{
    c->wake_all = 0;
    for (http2_stream *s = c->streams; s; s = s->next) {
        if (s->want_write && !s->on_writable && !s->closed) {
            s->want_write = 0;
            s->on_writable = 1;
            s->writable_next = c->writable;
            c->writable = s;
        }
    }
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
        oms_free(s->trailers);
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
    http2__stream_take(s, n);
    if (avail == 0 && s->ended)
        finish_body(s, session, data_flags);
    return (ssize_t)n;
}

/* Copies h into one block: the nv array, then the strings it points to. */
static nghttp2_nv *copy_nv(const http2_header *h, size_t n)
{
    size_t bytes = n * sizeof(nghttp2_nv);
    for (size_t i = 0; i < n; i++)
        bytes += h[i].namelen + h[i].valuelen;
    nghttp2_nv *nv = oms_malloc(bytes ? bytes : 1);
    if (!nv)
        return NULL;
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
    return nv;
}

/* A request with a content-length is malformed if its body does not match
 * (RFC 9113 section 8.1.1), which nghttp2 knows only at its END_STREAM: until
 * then the response waits here, so that a malformed request gets
 * RST_STREAM(PROTOCOL_ERROR) and no answer. gRPC clients send no
 * content-length; their responses never wait. */
static bool hold_response(const http2_stream *s)
{
    return s->has_clen && !s->remote_ended && !s->conn->ep->client;
}

static int hold(http2_stream *s, const http2_header *h, size_t n)
{
    if (!(s->held_nv = copy_nv(h, n)))
        return UV_ENOMEM;
    s->nheld = n;
    s->held = 1;
    s->responded = 1;
    return 0;
}

void http2__stream_remote_end(http2_stream *s)
{
    s->remote_ended = 1;
    if (!s->held || s->closed)
        return;
    s->held = 0;
    nghttp2_data_provider prd = {.source.ptr = s, .read_callback = http2__stream_read};
    /* Headers alone with END_STREAM when the body is empty and ended. */
    bool whole = s->ended && http2__bytes_size(&s->outq) == 0 && s->ntrailers == 0;
    if (nghttp2_submit_response(s->conn->session, s->id, s->held_nv, s->nheld,
                                whole ? NULL : &prd) != 0)
        nghttp2_submit_rst_stream(s->conn->session, NGHTTP2_FLAG_NONE, s->id,
                                  NGHTTP2_INTERNAL_ERROR);
    oms_free(s->held_nv);
    s->held_nv = NULL;
    s->nheld = 0;
    http2__conn_mark_dirty(s->conn);
}

/* Builds an nghttp2_nv array over h (no copy: nghttp2 copies on submit). */
static nghttp2_nv *make_nv(const http2_header *h, size_t n, nghttp2_nv *stack, size_t stackn)
{
    nghttp2_nv *nv = n <= stackn ? stack : oms_malloc(n * sizeof *nv);
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
    if (s->conn->h1)
        return http2__h1_respond(s, h, n);
    if (s->closed || s->responded)
        return UV_EINVAL;
    if (hold_response(s))
        return hold(s, h, n);
    nghttp2_nv stack[16];
    nghttp2_nv *nv = make_nv(h, n, stack, 16);
    if (!nv)
        return UV_ENOMEM;
    nghttp2_data_provider prd = {.source.ptr = s, .read_callback = http2__stream_read};
    int rv = nghttp2_submit_response(s->conn->session, s->id, nv, n, &prd);
    if (nv != stack)
        oms_free(nv);
    if (rv != 0)
        return rv == NGHTTP2_ERR_NOMEM ? UV_ENOMEM : UV_EINVAL;
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
    if (s->conn->h1)
        return http2__h1_write(s, p, n);
    if (s->closed || !s->responded || s->ended)
        return UV_EINVAL;
    if (http2__stream_queue(s, p, n) != 0)
        return UV_ENOMEM;
    resume(s);
    return http2__stream_full(s) ? HTTP2_AGAIN : 0;
}

/* The end of a stream could not be queued for want of memory: the stream is
 * reset instead, so that the peer is not left waiting for it. */
static int end_failed(http2_stream *s)
{
    http2_stream_reset(s, NGHTTP2_INTERNAL_ERROR);
    return UV_ENOMEM;
}

int http2_stream_end(http2_stream *s, const http2_header *h, size_t n)
{
    if (s->conn->h1)
        return http2__h1_end(s, h, n);
    if (s->closed || s->ended)
        return UV_EINVAL;
    if (!s->responded && !s->conn->ep->client) {
        if (hold_response(s)) {
            int rv = hold(s, h, n);
            if (rv != 0)
                return end_failed(s);
            s->ended = 1;
            return 0;
        }
        /* Headers with END_STREAM: the whole response is one header block. */
        nghttp2_nv stack[16];
        nghttp2_nv *nv = make_nv(h, n, stack, 16);
        if (!nv)
            return end_failed(s);
        int rv = nghttp2_submit_response(s->conn->session, s->id, nv, n, NULL);
        if (nv != stack)
            oms_free(nv);
        if (rv == NGHTTP2_ERR_NOMEM)
            return end_failed(s);
        if (rv != 0)
            return UV_EINVAL;
        s->responded = 1;
        s->ended = 1;
        http2__conn_mark_dirty(s->conn);
        return 0;
    }
    if (n > 0) {
        nghttp2_nv *nv = copy_nv(h, n);
        if (!nv)
            return end_failed(s);
        s->trailers = nv;
        s->ntrailers = n;
    }
    s->ended = 1;
    resume(s);
    return 0;
}

int http2_stream_reset(http2_stream *s, uint32_t h2_error)
{
    if (s->conn->h1)
        return http2__h1_reset(s, h2_error);
    if (s->closed)
        return UV_EINVAL;
    int rv = nghttp2_submit_rst_stream(s->conn->session, NGHTTP2_FLAG_NONE, s->id, h2_error);
    if (rv == NGHTTP2_ERR_NOMEM) {
        /* Not even the RST_STREAM: the connection goes, with all its streams. */
        http2__conn_fail(s->conn, "out of memory resetting stream %d", s->id);
        return UV_ENOMEM;
    }
    http2__conn_mark_dirty(s->conn);
    return rv == 0 ? 0 : UV_EINVAL;
}

void http2_stream_consume(http2_stream *s, size_t n)
{
    if (s->conn->h1) {
        http2__h1_consume(s, n);
        return;
    }
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

int http2_stream_http_version(const http2_stream *s)
{
    return s->conn->h1 ? 1 : 2;
}

const char *http2_stream_tls_identity(const http2_stream *s)
{
    return s->conn->tls_identity;
}
