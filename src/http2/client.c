/* client.c - the client side: outgoing connections (TCP connect, TLS with
 * verification, or h2c), keepalive PINGs, and request streams. Connections
 * share conn.c's read, flush and backpressure paths with the server. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/alloc.h"
#include "base/log.h"
#include "http2/http2_int.h"

void http2_client_config_init(http2_client_config *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    cfg->tls = 1;
    /* The same reasoning as the server's windows (server.c). */
    cfg->stream_window = 1 << 20;
    cfg->conn_window = 16 << 20;
    cfg->max_header_list = 16 << 10;
    cfg->stream_send_buffer = 256 << 10;
    cfg->keepalive_timeout_ms = 20000;
}

static void on_conn_gone(http2_ep *ep);

int http2_client_new(uv_loop_t *loop, const http2_client_config *cfg, http2_client **out, char *err,
                     size_t errlen)
{
    int rv = UV_ENOMEM;
    http2_client *cl = oms_calloc(1, sizeof *cl);
    if (!cl) {
        snprintf(err, errlen, "out of memory");
        return UV_ENOMEM;
    }
    cl->cfg = *cfg;
    cl->cfg.ca_file = cl->cfg.cert_file = cl->cfg.key_file = NULL; /* only read here */
    http2_ep *ep = &cl->ep;
    http2__ep_init(ep, loop);
    ep->client = true;
    ep->stream_window = cfg->stream_window;
    ep->conn_window = cfg->conn_window;
    ep->max_header_list = cfg->max_header_list;
    ep->stream_send_buffer = cfg->stream_send_buffer;
    ep->keepalive_ms = cfg->keepalive_ms;
    ep->keepalive_timeout_ms = cfg->keepalive_timeout_ms ? cfg->keepalive_timeout_ms : 20000;
    ep->conn_gone = on_conn_gone;
    if (cfg->tls && !(ep->ssl_ctx = http2__tls_client_ctx_new(cfg, err, errlen))) {
        rv = UV_EINVAL;
        goto fail;
    }
    if ((rv = http2__ep_setup(ep, true)) != 0) {
        snprintf(err, errlen, "out of memory");
        goto fail;
    }
    *out = cl;
    return 0;

fail:
    http2__ep_dispose(ep);
    oms_free(cl);
    *out = NULL;
    return rv;
}

static void release(http2_client *cl)
{
    http2__ep_dispose(&cl->ep);
    void (*done)(void *) = cl->done_cb;
    void *arg = cl->done_arg;
    oms_free(cl);
    if (done)
        done(arg);
}

static void on_flusher_closed(uv_handle_t *h)
{
    release(h->data);
}

/* Once freeing and the last connection is gone, the flusher goes, then the
 * client. */
static void maybe_release(http2_client *cl)
{
    if (!cl->freeing || cl->ep.nconns)
        return;
    if (cl->ep.flusher_on) {
        cl->ep.flusher_on = false;
        cl->ep.flusher.data = cl;
        uv_close((uv_handle_t *)&cl->ep.flusher, on_flusher_closed);
        return;
    }
    release(cl);
}

static void on_conn_gone(http2_ep *ep)
{
    maybe_release(container_of(ep, http2_client, ep));
}

/* Deferred so that done() never runs inside http2_client_free(). */
static void on_idle_release(uv_handle_t *h)
{
    http2_client *cl = h->data;
    oms_free(h);
    maybe_release(cl);
}

void http2_client_free(http2_client *cl, void (*done)(void *), void *arg)
{
    if (!cl || cl->freeing)
        return;
    cl->freeing = true;
    cl->done_cb = done;
    cl->done_arg = arg;
    if (cl->ep.nconns) {
        for (http2_conn *c = cl->ep.conns, *next; c; c = next) {
            next = c->next;
            http2__conn_fail(c, "client closed");
        }
        return;
    }
    if (cl->ep.flusher_on) {
        maybe_release(cl);
        return;
    }
    /* Nothing on the loop: still answer from the loop, not from here. */
    uv_idle_t *idle = oms_malloc(sizeof *idle);
    if (!idle) {
        release(cl);
        return;
    }
    uv_idle_init(cl->ep.loop, idle);
    idle->data = cl;
    uv_close((uv_handle_t *)idle, on_idle_release);
}

/* --- keepalive -------------------------------------------------------------- */

/* Sends a PING every keepalive_ms; a PING unanswered for keepalive_timeout_ms
 * means the peer or the path is gone. */
static void on_keepalive(uv_timer_t *t)
{
    http2_conn *c = t->data;
    const http2_ep *ep = c->ep;
    if (c->closing)
        return;
    if (!c->session) { /* still in the TLS handshake */
        uv_timer_start(t, on_keepalive, ep->keepalive_ms, 0);
        return;
    }
    uint64_t now = uv_now(ep->loop);
    if (c->last_ping) { /* waiting for the ACK */
        uint64_t waited = now - c->last_ping;
        if (waited >= ep->keepalive_timeout_ms) {
            http2__conn_fail(c, "keepalive: no PING ACK within %llu ms",
                             (unsigned long long)ep->keepalive_timeout_ms);
            return;
        }
        uv_timer_start(t, on_keepalive, ep->keepalive_timeout_ms - waited, 0);
        return;
    }
    if (c->ping_sent && now - c->ping_sent < ep->keepalive_ms) { /* answered early */
        uv_timer_start(t, on_keepalive, ep->keepalive_ms - (now - c->ping_sent), 0);
        return;
    }
    int rv = nghttp2_submit_ping(c->session, NGHTTP2_FLAG_NONE, NULL);
    if (rv != 0) {
        http2__conn_fail(c, "keepalive: PING: %s", nghttp2_strerror(rv));
        return;
    }
    c->last_ping = c->ping_sent = now ? now : 1;
    http2__conn_mark_dirty(c);
    uint64_t next =
        ep->keepalive_timeout_ms < ep->keepalive_ms ? ep->keepalive_timeout_ms : ep->keepalive_ms;
    uv_timer_start(t, on_keepalive, next, 0);
}

/* --- connecting ---------------------------------------------------------------- */

static void on_connect(uv_connect_t *req, int status)
{
    http2_conn *c = container_of(req, http2_conn, creq);
    if (c->closing)
        return;
    if (status < 0) {
        http2__conn_fail(c, "connect %s: %s", c->peer, uv_strerror(status));
        return;
    }
    uv_tcp_nodelay(&c->tcp, 1);
    int rv = c->ep->ssl_ctx ? http2__tls_connect(c) : http2__conn_start_session(c);
    if (rv == 0)
        rv = uv_read_start((uv_stream_t *)&c->tcp, http2__conn_on_alloc, http2__conn_on_read);
    if (rv != 0) {
        http2__conn_fail(c, "connect %s: %s", c->peer, uv_strerror(rv));
        return;
    }
    if (c->ep->keepalive_ms) {
        uv_timer_init(c->ep->loop, &c->timer);
        c->timer.data = c;
        c->handles++;
        uv_timer_start(&c->timer, on_keepalive, c->ep->keepalive_ms, 0);
    }
    http2__conn_mark_dirty(c);
}

int http2_client_connect(http2_client *cl, const struct sockaddr *addr, const char *server_name,
                         const http2_conn_handler *h, void *data, http2_conn **out)
{
    if (cl->freeing)
        return UV_ECANCELED;
    http2_conn *c = http2__conn_new(&cl->ep);
    if (!c)
        return UV_ENOMEM;
    c->handler = h;
    c->data = data;
    http2__conn_set_peer(c, addr);
    if (server_name && !(c->server_name = oms_strdup(server_name))) {
        c->handler = NULL; /* nothing follows a failed connect */
        http2__conn_close(c);
        return UV_ENOMEM;
    }
    int rv = uv_tcp_connect(&c->creq, &c->tcp, addr, on_connect);
    if (rv != 0) {
        c->handler = NULL;
        http2__conn_close(c);
        return rv;
    }
    *out = c;
    return 0;
}

/* --- connections and requests --------------------------------------------------- */

void *http2_conn_data(const http2_conn *c)
{
    return c->data;
}

const char *http2_conn_peer(const http2_conn *c)
{
    return c->peer;
}

const char *http2_conn_error(const http2_conn *c)
{
    if (!c->closing && !c->close_after_write)
        return NULL;
    return c->reason[0] ? c->reason : "connection closed";
}

size_t http2_conn_stream_count(const http2_conn *c)
{
    return c->nstreams;
}

void http2_conn_close(http2_conn *c, const char *reason)
{
    http2__conn_fail(c, "%s", reason ? reason : "closed");
}

http2_stream *http2_conn_request(http2_conn *c, const http2_header *h, size_t n,
                                 const http2_stream_handler *sh, void *data)
{
    return http2_conn_request_ex(c, h, n, NULL, sh, data);
}

http2_stream *http2_conn_request_ex(http2_conn *c, const http2_header *h, size_t n,
                                    const uint8_t *flags, const http2_stream_handler *sh,
                                    void *data)
{
    if (!c->connected || c->closing || c->goaway_recv || c->close_after_write)
        return NULL;
    http2_stream *s = http2__stream_new(c, -1, sh);
    if (!s)
        return NULL;
    s->data = data;
    nghttp2_nv stack[24];
    nghttp2_nv *nv = n <= 24 ? stack : oms_malloc(n * sizeof *nv);
    if (!nv) {
        http2__stream_free(s);
        return NULL;
    }
    /* nghttp2 copies (and lower-cases) what it is not told to keep. */
    for (size_t i = 0; i < n; i++) {
        uint8_t f = NGHTTP2_NV_FLAG_NONE;
        if (flags && (flags[i] & HTTP2_KEEP_NAME))
            f |= NGHTTP2_NV_FLAG_NO_COPY_NAME;
        if (flags && (flags[i] & HTTP2_KEEP_VALUE))
            f |= NGHTTP2_NV_FLAG_NO_COPY_VALUE;
        nv[i] = (nghttp2_nv){(uint8_t *)h[i].name, (uint8_t *)h[i].value, h[i].namelen,
                             h[i].valuelen, f};
    }
    nghttp2_data_provider prd = {.source.ptr = s, .read_callback = http2__stream_read};
    int32_t id = nghttp2_submit_request(c->session, NULL, nv, n, &prd, s);
    if (nv != stack)
        oms_free(nv);
    if (id < 0) {
        http2__stream_free(s);
        return NULL;
    }
    s->id = id;
    s->responded = 1; /* the request headers are out; the body follows */
    http2__conn_mark_dirty(c);
    return s;
}
