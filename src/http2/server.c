/* server.c - the listening socket, the per-loop flusher and graceful drain. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include "base/alloc.h"
#include "base/log.h"
#include "http2/http2_int.h"

void http2_server_config_init(http2_server_config *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    cfg->host = "127.0.0.1";
    cfg->port = 50051;
    cfg->tls = 1;
    cfg->cert_file = "certs/server.pem";
    cfg->key_file = "certs/server.key";
    cfg->max_concurrent_streams = 1000;
    /* 1 MiB per stream and 16 MiB per connection: a single stream can keep a
     * loopback or LAN pipe full without waiting for WINDOW_UPDATE round trips
     * (64 KiB, the RFC default, stalls bulk streams), while the connection
     * window still caps what one peer can make us buffer. */
    cfg->stream_window = 1 << 20;
    cfg->conn_window = 16 << 20;
    cfg->max_header_list = 16 << 10;
    cfg->stream_send_buffer = 256 << 10;
    cfg->handshake_timeout_ms = 10000;
    cfg->idle_timeout_ms = 300000;
    cfg->keepalive_ms = 2 * 3600 * 1000;
    cfg->keepalive_timeout_ms = 20000;
    cfg->tcp_keepalive_s = 60;
    cfg->ping_min_interval_ms = 300000;
    cfg->conn_send_budget = 16 << 20;
    cfg->http1 = 1;
    cfg->h1_max_head = 16 << 10;
    cfg->h1_max_headers = 100;
    cfg->h1_max_body = 8 << 20;
    cfg->h1_header_timeout_ms = 10000;
    cfg->h1_idle_timeout_ms = 60000;
}

/* Runs once per loop turn, just before the loop blocks for I/O: every stream
 * that wrote during this turn shares one nghttp2_session_mem_send() pass and
 * one uv_write per connection. */
static void on_prepare(uv_prepare_t *h)
{
    http2_ep *ep = container_of(h, http2_ep, flusher);
    while (ep->dirty) {
        http2_conn *c = ep->dirty;
        ep->dirty = c->dirty_next;
        c->dirty_next = NULL;
        c->dirty = 0;
        http2__conn_flush(c);
    }
}

void http2__ep_init(http2_ep *ep, uv_loop_t *loop)
{
    ep->loop = loop;
}

int http2__ep_setup(http2_ep *ep, bool client)
{
    if (http2__session_callbacks_new(&ep->callbacks) != 0)
        return UV_ENOMEM;
    if (!(ep->option = http2__session_option_new(client)))
        return UV_ENOMEM;
    return 0;
}

void http2__ep_dispose(http2_ep *ep)
{
    if (ep->option)
        nghttp2_option_del(ep->option);
    if (ep->callbacks)
        nghttp2_session_callbacks_del(ep->callbacks);
    if (ep->ssl_ctx)
        SSL_CTX_free(ep->ssl_ctx);
    http2_tls_free(ep->tls);
    ep->option = NULL;
    ep->callbacks = NULL;
    ep->ssl_ctx = NULL;
    ep->tls = NULL;
}

void http2__ep_start(http2_ep *ep)
{
    if (ep->flusher_on)
        return;
    ep->flusher_on = true;
    uv_prepare_init(ep->loop, &ep->flusher);
    uv_prepare_start(&ep->flusher, on_prepare);
    uv_unref((uv_handle_t *)&ep->flusher);
}

static void on_conn_gone(http2_ep *ep);

/* The listener's state. libuv calls the connection callback again and again,
 * without returning to the loop, while accept() fails with EMFILE and its
 * reserved-fd trick cannot drain the backlog (with several loops in one
 * process, another loop may take the fd it frees). The only way out of that
 * spin is closing the listener handle, so when fds run out we close it (the
 * socket stays open through spare_fd and the kernel queues new connections in
 * its backlog) and reopen it from a timer. */
enum { LISTEN_ACTIVE, LISTEN_CLOSING, LISTEN_PAUSED };
#define ACCEPT_RETRY_MS 100

static void on_handle_closed(uv_handle_t *h);
static void on_connection(uv_stream_t *listener, int status);
static void maybe_done(http2_server *srv);

static void on_accept_retry(uv_timer_t *t)
{
    http2_server *srv = container_of(t, http2_server, accept_timer);
    if (srv->draining || srv->accept_state != LISTEN_PAUSED)
        return;
    int fd = fcntl(srv->spare_fd, F_DUPFD_CLOEXEC, 0);
    if (fd < 0) { /* still no fd to spare */
        uv_timer_start(&srv->accept_timer, on_accept_retry, ACCEPT_RETRY_MS, 0);
        return;
    }
    uv_tcp_init(srv->ep.loop, &srv->listener);
    int rv = uv_tcp_open(&srv->listener, fd);
    if (rv == 0)
        rv = uv_listen((uv_stream_t *)&srv->listener, 1024, on_connection);
    srv->accept_state = LISTEN_ACTIVE;
    if (rv != 0) {
        OMS_ERROR("cannot listen again: %s", uv_strerror(rv));
        srv->accept_state = LISTEN_CLOSING;
        srv->listener.data = srv;
        uv_close((uv_handle_t *)&srv->listener, on_handle_closed);
        return;
    }
    OMS_INFO("accepting connections again");
}

static void on_listener_paused(uv_handle_t *h)
{
    http2_server *srv = h->data;
    if (srv->draining) { /* the shutdown came while it closed: it is gone for good */
        on_handle_closed(h);
        return;
    }
    srv->accept_state = LISTEN_PAUSED;
    uv_timer_start(&srv->accept_timer, on_accept_retry, ACCEPT_RETRY_MS, 0);
}

static void on_rejected(uv_handle_t *h)
{
    http2_server *srv = h->data;
    srv->rejecting = 0;
    srv->open_handles--;
    /* Another socket may have been left waiting meanwhile (see below). */
    if (!srv->draining && srv->accept_state == LISTEN_ACTIVE)
        on_connection((uv_stream_t *)&srv->listener, 0);
    maybe_done(srv);
}

/* No memory for a connection object. libuv has already accept()ed the
 * socket and stops watching the listener until someone takes it with
 * uv_accept(): left alone, the server would never accept again. Take it
 * with the server's own spare handle and close it (the peer sees the
 * connection closed). While that handle is closing, a second such socket
 * waits for on_rejected. */
static void reject_pending(http2_server *srv)
{
    if (srv->rejecting)
        return;
    uv_tcp_init(srv->ep.loop, &srv->reject);
    uv_accept((uv_stream_t *)&srv->listener, (uv_stream_t *)&srv->reject);
    srv->rejecting = 1;
    srv->open_handles++;
    srv->reject.data = srv;
    uv_close((uv_handle_t *)&srv->reject, on_rejected);
}

static void on_connection(uv_stream_t *listener, int status)
{
    http2_server *srv = container_of(listener, http2_server, listener);
    if (status < 0) {
        if ((status == UV_EMFILE || status == UV_ENFILE) && srv->spare_fd >= 0 &&
            srv->accept_state == LISTEN_ACTIVE && !srv->draining) {
            OMS_WARN("accept: %s: not accepting for %d ms", uv_strerror(status), ACCEPT_RETRY_MS);
            srv->accept_state = LISTEN_CLOSING;
            srv->listener.data = srv;
            uv_close((uv_handle_t *)&srv->listener, on_listener_paused);
            return;
        }
        if (srv->accept_state == LISTEN_ACTIVE)
            OMS_WARN("accept: %s", uv_strerror(status));
        return;
    }
    if (srv->draining)
        return;
    int rv = http2__conn_accept(srv);
    if (rv == UV_ENOMEM)
        reject_pending(srv);
    if (rv < 0 && rv != UV_EAGAIN)
        OMS_WARN("accept: %s", uv_strerror(rv));
}

/* SO_REUSEPORT lets any socket of the same user that also sets it share a
 * port, so a second server would silently join a running one. Binding a
 * plain socket first (SO_REUSEADDR only, so TIME_WAIT leftovers do not count)
 * fails if anything holds the port. Returns 0 or -errno. */
static int probe_port(const struct sockaddr_storage *addr, socklen_t alen)
{
    int fd = socket(addr->ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    int one = 1, rv = 0;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (addr->ss_family == AF_INET6)
        setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
    if (bind(fd, (const struct sockaddr *)addr, alen) != 0)
        rv = -errno;
    close(fd);
    return rv;
}

int http2_server_new(uv_loop_t *loop, const http2_server_config *cfg, http2_server **out, char *err,
                     size_t errlen)
{
    int rv;
    http2_server *srv = oms_calloc(1, sizeof *srv);
    if (!srv) {
        snprintf(err, errlen, "out of memory");
        return UV_ENOMEM;
    }
    http2__ep_init(&srv->ep, loop);
    srv->cfg = *cfg;
    srv->fd = -1;
    srv->spare_fd = -1;
    http2_ep *ep = &srv->ep;
    ep->max_concurrent_streams = cfg->max_concurrent_streams;
    ep->stream_window = cfg->stream_window;
    ep->conn_window = cfg->conn_window;
    ep->max_header_list = cfg->max_header_list;
    ep->stream_send_buffer = cfg->stream_send_buffer;
    ep->handshake_timeout_ms = cfg->handshake_timeout_ms;
    ep->idle_timeout_ms = cfg->idle_timeout_ms;
    ep->max_age_ms = cfg->max_age_ms;
    ep->age_grace_ms = cfg->age_grace_ms;
    ep->keepalive_ms = cfg->keepalive_ms;
    ep->keepalive_timeout_ms = cfg->keepalive_timeout_ms ? cfg->keepalive_timeout_ms : 20000;
    ep->limit = cfg->conn_limit;
    ep->ping_min_ms = cfg->ping_min_interval_ms;
    ep->ping_without_calls = cfg->ping_without_calls;
    ep->conn_budget = cfg->conn_send_budget;
    ep->budget = cfg->send_budget;
    ep->handler = cfg->handler;
    ep->handler_data = cfg->handler_data;
    ep->conn_gone = on_conn_gone;
    ep->http1 = cfg->http1 != 0;
    ep->h1_max_head = cfg->h1_max_head;
    ep->h1_max_headers = cfg->h1_max_headers;
    ep->h1_max_body = cfg->h1_max_body ? cfg->h1_max_body : SIZE_MAX;
    ep->h1_header_timeout_ms = cfg->h1_header_timeout_ms;
    ep->h1_idle_timeout_ms = cfg->h1_idle_timeout_ms;

    if (cfg->tls && cfg->tls_ctx) {
        ep->tls = http2__tls_ref(cfg->tls_ctx);
    } else if (cfg->tls && !(ep->tls = http2_tls_new(cfg, err, errlen))) {
        rv = UV_EINVAL;
        goto fail;
    }
    srv->cfg.tls_ctx = NULL; /* ep->tls holds it */
    if ((rv = http2__ep_setup(ep, false)) != 0) {
        snprintf(err, errlen, "out of memory");
        goto fail;
    }

    struct sockaddr_storage addr;
    if (uv_ip4_addr(cfg->host, cfg->port, (struct sockaddr_in *)&addr) != 0 &&
        uv_ip6_addr(cfg->host, cfg->port, (struct sockaddr_in6 *)&addr) != 0) {
        snprintf(err, errlen, "invalid listen address '%s' (want an IPv4 or IPv6 literal)",
                 cfg->host);
        rv = UV_EINVAL;
        goto fail;
    }
    socklen_t alen =
        addr.ss_family == AF_INET6 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in);
    int one = 1;
    if (cfg->reuseport && cfg->exclusive_port && cfg->port != 0 &&
        (rv = probe_port(&addr, alen)) != 0) {
        snprintf(err, errlen, "cannot listen on %s:%d: %s", cfg->host, cfg->port, strerror(-rv));
        goto fail;
    }
    /* The socket is made by hand so that a bind failure unwinds at once (no
     * libuv handle to close yet), and so that SO_REUSEPORT can be set for a
     * listener per loop later. */
    int fd = socket(addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        rv = -errno;
        snprintf(err, errlen, "socket: %s", strerror(errno));
        goto fail;
    }
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (cfg->reuseport && setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) != 0) {
        rv = -errno;
        snprintf(err, errlen, "SO_REUSEPORT: %s", strerror(errno));
        close(fd);
        goto fail;
    }
    if (addr.ss_family == AF_INET6)
        setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
    if (bind(fd, (const struct sockaddr *)&addr, alen) != 0 || listen(fd, 1024) != 0) {
        rv = -errno;
        snprintf(err, errlen, "cannot listen on %s:%d: %s", cfg->host, cfg->port, strerror(errno));
        close(fd);
        goto fail;
    }
    srv->fd = fd;

    struct sockaddr_storage name;
    socklen_t namelen = sizeof name;
    getsockname(fd, (struct sockaddr *)&name, &namelen);
    srv->port = ntohs(name.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&name)->sin6_port
                                                 : ((struct sockaddr_in *)&name)->sin_port);
    *out = srv;
    return 0;

fail:
    http2__ep_dispose(ep);
    oms_free(srv);
    *out = NULL;
    return rv;
}

int http2_server_port(const http2_server *srv)
{
    return srv->port;
}

/* The process's send budget fell below its low-water mark (budget.c): offer
 * writing again to the connections that waited on it. */
static void on_budget_wake(uv_async_t *a)
{
    http2_server *srv = container_of(a, http2_server, budget_async);
    for (http2_conn *c = srv->ep.conns; c; c = c->next) {
        if (c->proc_blocked) {
            c->proc_blocked = 0;
            c->wake_all = 1;
            http2__conn_mark_dirty(c);
        }
    }
}

/* Handles go on the loop only here, so that a server that never started is
 * freed synchronously. */
int http2_server_start(http2_server *srv)
{
    if (srv->listening || srv->draining)
        return srv->listening ? 0 : UV_EINVAL;
    uv_tcp_init(srv->ep.loop, &srv->listener);
    uv_timer_init(srv->ep.loop, &srv->grace_timer);
    uv_timer_init(srv->ep.loop, &srv->accept_timer);
    uv_timer_init(srv->ep.loop, &srv->ep.idle_timer);
    http2__ep_start(&srv->ep);
    srv->open_handles = 5;
    int rv = 0;
    if (srv->ep.budget) {
        rv = uv_async_init(srv->ep.loop, &srv->budget_async, on_budget_wake);
        if (rv == 0) {
            srv->open_handles++;
            if (http2__budget_register(srv->ep.budget, &srv->budget_async) != 0)
                OMS_WARN("send budget: too many servers; this one is not woken early");
        } else {
            OMS_ERROR("send budget: uv_async_init: %s", uv_strerror(rv));
        }
    }
    srv->listening = 1;
    srv->accept_state = LISTEN_ACTIVE;
    srv->spare_fd = fcntl(srv->fd, F_DUPFD_CLOEXEC, 0); /* -1: no pause on EMFILE */
    if (rv == 0)
        rv = uv_tcp_open(&srv->listener, srv->fd);
    if (rv != 0)
        close(srv->fd);
    srv->fd = -1; /* the listener owns it now (or it is gone) */
    if (rv == 0)
        rv = uv_listen((uv_stream_t *)&srv->listener, 1024, on_connection);
    return rv;
}

int http2_server_reload_tls(http2_server *srv, char *err, size_t errlen)
{
    if (!srv->ep.tls) {
        snprintf(err, errlen, "not a TLS server");
        return UV_EINVAL;
    }
    return http2_tls_reload(srv->ep.tls, err, errlen);
}

size_t http2_server_conn_count(const http2_server *srv)
{
    return srv->ep.nconns;
}

static uint64_t rd(const _Atomic uint64_t *c)
{
    return atomic_load_explicit((_Atomic uint64_t *)c, memory_order_relaxed);
}

void http2_server_get_stats(const http2_server *srv, http2_server_stats *out)
{
    const http2_counters *k = &srv->ep.ctr;
    out->accepted = rd(&k->accepted);
    out->refused = rd(&k->refused);
    out->closed = rd(&k->closed);
    out->streams_opened = rd(&k->streams_opened);
    out->streams_closed = rd(&k->streams_closed);
    for (size_t i = 0; i < HTTP2_GOAWAY_CODES; i++)
        out->goaway_sent[i] = rd(&k->goaway_sent[i]);
    out->tls_handshakes = rd(&k->tls_handshakes);
    out->tls_failures = rd(&k->tls_failures);
    out->bytes_in = rd(&k->bytes_in);
    out->bytes_out = rd(&k->bytes_out);
}

void http2_server_get_http1_stats(const http2_server *srv, http2_http1_stats *out)
{
    const http2_counters *k = &srv->ep.ctr;
    out->connections = rd(&k->h1_conns);
    out->requests = rd(&k->h1_requests);
    out->refused = rd(&k->h1_errors);
}

void http2_server_get_closed_by(const http2_server *srv, uint64_t out[HTTP2_CLOSE_REASONS])
{
    for (size_t i = 0; i < HTTP2_CLOSE_REASONS; i++)
        out[i] = rd(&srv->ep.ctr.closed_by[i]);
}

const char *http2_close_reason_name(int reason)
{
    static const char *const names[HTTP2_CLOSE_REASONS] = {
        [HTTP2_CLOSE_OTHER] = "other",
        [HTTP2_CLOSE_PEER] = "peer",
        [HTTP2_CLOSE_IDLE] = "idle",
        [HTTP2_CLOSE_AGE] = "age",
        [HTTP2_CLOSE_LIMIT] = "limit",
        [HTTP2_CLOSE_FLOOD] = "flood",
        [HTTP2_CLOSE_PROTOCOL_ERROR] = "protocol_error",
        [HTTP2_CLOSE_KEEPALIVE_TIMEOUT] = "keepalive_timeout",
        [HTTP2_CLOSE_DRAIN] = "drain",
        [HTTP2_CLOSE_TLS_ERROR] = "tls_error",
    };
    return reason >= 0 && reason < HTTP2_CLOSE_REASONS ? names[reason] : "other";
}

const char *http2_error_name(uint32_t code)
{
    static const char *const names[HTTP2_GOAWAY_CODES] = {"NO_ERROR",
                                                          "PROTOCOL_ERROR",
                                                          "INTERNAL_ERROR",
                                                          "FLOW_CONTROL_ERROR",
                                                          "SETTINGS_TIMEOUT",
                                                          "STREAM_CLOSED",
                                                          "FRAME_SIZE_ERROR",
                                                          "REFUSED_STREAM",
                                                          "CANCEL",
                                                          "COMPRESSION_ERROR",
                                                          "CONNECT_ERROR",
                                                          "ENHANCE_YOUR_CALM",
                                                          "INADEQUATE_SECURITY",
                                                          "HTTP_1_1_REQUIRED"};
    return code < HTTP2_GOAWAY_CODES ? names[code] : "UNKNOWN";
}

static void maybe_done(http2_server *srv)
{
    if (srv->draining && srv->ep.nconns == 0 && srv->open_handles == 0 && srv->done_cb) {
        void (*cb)(http2_server *, void *) = srv->done_cb;
        srv->done_cb = NULL;
        cb(srv, srv->done_arg);
    }
}

static void on_handle_closed(uv_handle_t *h)
{
    http2_server *srv = h->data;
    srv->open_handles--;
    maybe_done(srv);
}

/* The drain is over once the last connection is gone: close our handles. */
static void close_handles(http2_server *srv)
{
    if (uv_is_closing((uv_handle_t *)&srv->grace_timer))
        return;
    srv->grace_timer.data = srv;
    uv_close((uv_handle_t *)&srv->grace_timer, on_handle_closed);
    srv->ep.flusher.data = srv;
    uv_close((uv_handle_t *)&srv->ep.flusher, on_handle_closed);
    srv->accept_timer.data = srv;
    uv_close((uv_handle_t *)&srv->accept_timer, on_handle_closed);
    srv->ep.idle_timer.data = srv;
    uv_close((uv_handle_t *)&srv->ep.idle_timer, on_handle_closed);
    if (srv->ep.budget && srv->budget_async.loop) { /* NULL: its init failed */
        http2__budget_unregister(srv->ep.budget, &srv->budget_async);
        srv->budget_async.data = srv;
        uv_close((uv_handle_t *)&srv->budget_async, on_handle_closed);
    }
}

static void on_conn_gone(http2_ep *ep)
{
    http2_server *srv = container_of(ep, http2_server, ep);
    if (srv->draining && ep->nconns == 0)
        close_handles(srv);
    maybe_done(srv);
}

static void on_grace_expired(uv_timer_t *t)
{
    http2_server *srv = container_of(t, http2_server, grace_timer);
    size_t busy = 0;
    for (http2_conn *c = srv->ep.conns; c; c = c->next)
        busy += c->nstreams > 0;
    if (busy)
        OMS_WARN("grace period over: closing %zu connection(s) with calls in flight", busy);
    for (http2_conn *c = srv->ep.conns, *next; c; c = next) {
        next = c->next;
        http2__conn_why(c, HTTP2_CLOSE_DRAIN);
        http2__conn_fail(c, "grace period over");
    }
}

void http2_server_shutdown(http2_server *srv, uint64_t grace_ms,
                           void (*done)(http2_server *, void *), void *arg)
{
    if (srv->draining)
        return;
    srv->draining = 1;
    srv->done_cb = done;
    srv->done_arg = arg;
    if (!srv->listening) { /* never started: nothing is on the loop */
        maybe_done(srv);
        return;
    }
    if (srv->accept_state == LISTEN_ACTIVE) {
        srv->listener.data = srv;
        uv_close((uv_handle_t *)&srv->listener, on_handle_closed);
    } else if (srv->accept_state == LISTEN_PAUSED) { /* already closed: count it */
        uv_timer_stop(&srv->accept_timer);
        srv->open_handles--;
    } /* LISTEN_CLOSING: on_listener_paused counts it */
    if (srv->spare_fd >= 0) {
        close(srv->spare_fd);
        srv->spare_fd = -1;
    }
    for (http2_conn *c = srv->ep.conns, *next; c; c = next) {
        next = c->next;
        http2__conn_drain(c);
    }
    if (srv->ep.nconns) {
        uv_timer_start(&srv->grace_timer, on_grace_expired, grace_ms, 0);
    } else {
        close_handles(srv);
    }
}

void http2_server_free(http2_server *srv)
{
    if (!srv)
        return;
    if (srv->fd >= 0)
        close(srv->fd);
    if (srv->spare_fd >= 0)
        close(srv->spare_fd);
    http2__ep_dispose(&srv->ep);
    oms_free(srv);
}
