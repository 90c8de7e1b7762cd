/* http1 server: accept, parse with libhttp-parser, answer in order, enforce
 * the limits documented in http1.h. */
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "base/alloc.h"
#include "http1/http1.h"
#include "http1/parse.h"

#define MAX_HEADERS                     64
#define container_of(ptr, type, member) ((type *)((char *)(ptr)-offsetof(type, member)))
#define LINGER_MS                       2000 /* reading and discarding after a final answer, at most */

typedef struct conn conn;

struct http1_server {
    uv_loop_t *loop;
    uv_tcp_t listener;
    http1_server_config cfg;
    char host[64];
    int port;
    conn *conns; /* doubly linked */
    size_t nconns;
    size_t handles; /* handles not yet closed: listener + 2 per connection */
    bool closing;
    void (*closed_cb)(void *arg);
    void *closed_arg;
    char slab[16384]; /* read buffer: parsed in place, one loop per server */
};

struct conn {
    uv_tcp_t tcp;
    uv_timer_t timer;
    uv_shutdown_t shutdown;
    http1_server *srv;
    conn *prev, *next;
    http1_parser *parser;
    char peer[64];
    uint8_t *body;
    size_t body_len;
    unsigned requests; /* answered on this connection */
    size_t writes;     /* uv_write requests in flight */
    bool in_request;   /* a request's first byte came, its end not yet */
    bool finishing;    /* final answer queued: no more parsing */
    bool lingering;    /* shut down, discarding input until EOF */
    bool reading;
    bool closed; /* uv_close called */
    int nclosed; /* close callbacks run */
};

typedef struct wreq {
    uv_write_t req;
    conn *c;
    char data[];
} wreq;

static void conn_close(conn *c);
static void on_read_linger(uv_stream_t *st, ssize_t nread, const uv_buf_t *buf);

void http1_server_config_init(http1_server_config *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    cfg->host = "127.0.0.1";
    cfg->max_header_bytes = 8192;
    cfg->max_body_bytes = 65536;
    cfg->request_timeout_ms = 10000;
    cfg->idle_timeout_ms = 30000;
    cfg->max_requests = 100;
    cfg->max_connections = 64;
    cfg->max_pending_write = 1u << 20;
}

static void server_maybe_free(http1_server *s)
{
    if (s->closing && s->handles == 0) {
        void (*cb)(void *) = s->closed_cb;
        void *arg = s->closed_arg;
        oms_free(s);
        if (cb)
            cb(arg);
    }
}

static void on_handle_closed(uv_handle_t *h)
{
    conn *c = h->data;
    http1_server *s = c->srv;
    /* free the connection once both its handles closed (in either order) */
    if (++c->nclosed == 2) {
        http1_parser_free(c->parser);
        oms_free(c->body);
        oms_free(c);
    }
    s->handles--;
    server_maybe_free(s);
}

static void conn_close(conn *c)
{
    if (c->closed)
        return;
    c->closed = true;
    http1_server *s = c->srv;
    if (c->prev)
        c->prev->next = c->next;
    else
        s->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    s->nconns--;
    uv_close((uv_handle_t *)&c->tcp, on_handle_closed);
    uv_close((uv_handle_t *)&c->timer, on_handle_closed);
}

static void on_timeout(uv_timer_t *t)
{
    conn *c = t->data;
    if (c->in_request && !c->finishing && c->writes == 0) {
        /* slowloris: the request did not arrive in time */
        static const char msg[] = "HTTP/1.1 408 Request Timeout\r\nContent-Length: 0\r\n"
                                  "Connection: close\r\n\r\n";
        uv_buf_t b = uv_buf_init((char *)msg, sizeof msg - 1);
        uv_try_write((uv_stream_t *)&c->tcp, &b, 1);
    }
    conn_close(c);
}

static void timer_set(conn *c, uint64_t ms)
{
    if (ms)
        uv_timer_start(&c->timer, on_timeout, ms, 0);
    else
        uv_timer_stop(&c->timer);
}

static void on_shutdown(uv_shutdown_t *req, int status)
{
    conn *c = req->data;
    if (status != 0) {
        conn_close(c);
        return;
    }
    /* Read (and drop) what the client still sends, so that closing does not
     * reset the connection under the answer it has not read yet. */
    c->lingering = true;
    timer_set(c, LINGER_MS);
}

/* The final answer is queued: stop parsing, close the write side once it is
 * out, then linger. */
static void conn_finish(conn *c)
{
    if (c->finishing || c->closed)
        return;
    c->finishing = true;
    c->shutdown.data = c;
    if (uv_shutdown(&c->shutdown, (uv_stream_t *)&c->tcp, on_shutdown) != 0)
        conn_close(c);
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    (void)suggested;
    conn *c = h->data;
    buf->base = c->srv->slab;
    buf->len = sizeof c->srv->slab;
}

static void on_written(uv_write_t *req, int status)
{
    wreq *w = container_of(req, wreq, req);
    conn *c = w->c;
    oms_free(w);
    c->writes--;
    if (status != 0) {
        conn_close(c);
        return;
    }
    if (!c->reading && !c->finishing && !c->closed &&
        uv_stream_get_write_queue_size((uv_stream_t *)&c->tcp) <
            c->srv->cfg.max_pending_write / 2) {
        c->reading = true;
        if (uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read_linger) != 0)
            conn_close(c);
    }
}

/* Queues one answer. close: says "Connection: close" and finishes. */
static void send_answer(conn *c, int status, const char *ctype, const char *allow, const void *body,
                        size_t len, bool close)
{
    char head[512];
    int n =
        snprintf(head, sizeof head, "HTTP/1.1 %d %s\r\n%s%s%s%s%s%sContent-Length: %zu\r\n%s\r\n",
                 status, http1_reason(status), ctype ? "Content-Type: " : "", ctype ? ctype : "",
                 ctype ? "\r\n" : "", allow ? "Allow: " : "", allow ? allow : "",
                 allow ? "\r\n" : "", len, close ? "Connection: close\r\n" : "");
    if (n < 0 || (size_t)n >= sizeof head) {
        conn_close(c);
        return;
    }
    wreq *w = oms_malloc(sizeof *w + (size_t)n + len);
    if (!w) {
        conn_close(c);
        return;
    }
    w->c = c;
    memcpy(w->data, head, (size_t)n);
    if (len)
        memcpy(w->data + n, body, len);
    uv_buf_t b = uv_buf_init(w->data, (unsigned)((size_t)n + len));
    if (uv_write(&w->req, (uv_stream_t *)&c->tcp, &b, 1, on_written) != 0) {
        oms_free(w);
        conn_close(c);
        return;
    }
    c->writes++;
    if (close)
        conn_finish(c);
    else if (c->reading && uv_stream_get_write_queue_size((uv_stream_t *)&c->tcp) >
                               c->srv->cfg.max_pending_write) {
        c->reading = false; /* a client that does not read its answers */
        uv_read_stop((uv_stream_t *)&c->tcp);
    }
}

static void fail(conn *c, int status)
{
    send_answer(c, status, "text/plain; charset=utf-8", NULL, http1_reason(status),
                strlen(http1_reason(status)), true);
}

/* --- requests (parse.h does the parsing and its checks) ----------------------- */

static int on_head(void *data, const http1_head *h)
{
    conn *c = data;
    oms_free(c->body);
    c->body = NULL;
    c->body_len = 0;
    if (h->content_length != HTTP1_NO_LENGTH && h->content_length > c->srv->cfg.max_body_bytes)
        return 413;
    return 0;
}

static int on_body(void *data, const uint8_t *at, size_t len)
{
    conn *c = data;
    if (c->body_len + len > c->srv->cfg.max_body_bytes)
        return 413;
    uint8_t *b = oms_realloc(c->body, c->body_len + len);
    if (!b)
        return 500;
    memcpy(b + c->body_len, at, len);
    c->body = b;
    c->body_len += len;
    return 0;
}

static int on_end(void *data)
{
    conn *c = data;
    http1_server *s = c->srv;
    const http1_head *h = http1_parser_head(c->parser);
    /* path and query: split a copy of the target at '?' */
    char *path = oms_malloc(h->target_len + 1);
    if (!path)
        return 500;
    memcpy(path, h->target, h->target_len + 1);
    char *query = strchr(path, '?');
    if (query)
        *query++ = '\0';
    http1_request req = {
        .method = h->method,
        .target = h->target,
        .path = path,
        .query = query,
        .headers = h->headers,
        .n_headers = h->n_headers,
        .body = c->body,
        .body_len = c->body_len,
        .http_minor = h->http_minor,
        .peer = c->peer,
    };
    http1_response resp;
    memset(&resp, 0, sizeof resp);
    s->cfg.handler(&req, &resp, s->cfg.data);
    oms_free(path);
    c->requests++;
    c->in_request = false;
    bool close = !h->keep_alive || c->requests >= s->cfg.max_requests;
    send_answer(c, resp.status ? resp.status : 500, resp.content_type, resp.allow, resp.body,
                resp.body_len, close);
    if (resp.free_body)
        resp.free_body((void *)resp.body);
    if (close)
        return 1; /* no more parsing: the connection finishes */
    timer_set(c, s->cfg.idle_timeout_ms);
    return 0;
}

static const http1_parse_ops parse_ops = {
    .on_head = on_head,
    .on_body = on_body,
    .on_end = on_end,
};

static void on_read(uv_stream_t *st, ssize_t nread, const uv_buf_t *buf)
{
    conn *c = st->data;
    if (nread < 0) {
        /* EOF or error; a half-received request gets no answer */
        conn_close(c);
        return;
    }
    if (nread == 0 || c->closed)
        return;
    if (c->finishing) /* lingering (or about to): drop input */
        return;
    if (!c->in_request) { /* a request's first bytes: it must arrive whole in time */
        c->in_request = true;
        timer_set(c, c->srv->cfg.request_timeout_ms);
    }
    long n = http1_parser_feed(c->parser, buf->base, (size_t)nread);
    if (c->finishing || c->closed)
        return;
    if (n < 0) {
        fail(c, (int)-n);
        return;
    }
    if (n != (long)nread) {
        fail(c, 400); /* Upgrade/CONNECT: not spoken here */
        return;
    }
    if (!c->in_request && http1_parser_busy(c->parser)) { /* the next one started */
        c->in_request = true;
        timer_set(c, c->srv->cfg.request_timeout_ms);
    }
}

static void on_read_linger(uv_stream_t *st, ssize_t nread, const uv_buf_t *buf)
{
    conn *c = st->data;
    if (c->lingering && nread < 0) {
        conn_close(c);
        return;
    }
    on_read(st, nread, buf);
}

static void on_connection(uv_stream_t *ls, int status)
{
    http1_server *s = ls->data;
    if (status != 0 || s->closing)
        return;
    conn *c = oms_calloc(1, sizeof *c);
    http1_parse_limits lim = {s->cfg.max_header_bytes, MAX_HEADERS};
    if (c)
        c->parser = http1_parser_new(&lim, &parse_ops, c);
    if (!c || !c->parser) {
        /* accept and drop, so the backlog does not keep waking us */
        uv_tcp_t *t = oms_malloc(sizeof *t);
        if (t && uv_tcp_init(s->loop, t) == 0) {
            uv_accept(ls, (uv_stream_t *)t);
            uv_close((uv_handle_t *)t, (uv_close_cb)oms_free);
        } else {
            oms_free(t);
        }
        if (c)
            oms_free(c);
        return;
    }
    c->srv = s;
    uv_tcp_init(s->loop, &c->tcp);
    uv_timer_init(s->loop, &c->timer);
    c->tcp.data = c->timer.data = c;
    s->handles += 2;
    c->next = s->conns;
    if (s->conns)
        s->conns->prev = c;
    s->conns = c;
    s->nconns++;
    if (uv_accept(ls, (uv_stream_t *)&c->tcp) != 0 || s->nconns > s->cfg.max_connections) {
        conn_close(c);
        return;
    }
    struct sockaddr_storage ss;
    int len = sizeof ss;
    char ip[INET6_ADDRSTRLEN] = "?";
    int port = 0;
    if (uv_tcp_getpeername(&c->tcp, (struct sockaddr *)&ss, &len) == 0) {
        if (ss.ss_family == AF_INET6) {
            uv_ip6_name((struct sockaddr_in6 *)&ss, ip, sizeof ip);
            port = ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
        } else {
            uv_ip4_name((struct sockaddr_in *)&ss, ip, sizeof ip);
            port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
        }
    }
    snprintf(c->peer, sizeof c->peer, "%s:%d", ip, port);
    timer_set(c, s->cfg.idle_timeout_ms ? s->cfg.idle_timeout_ms : s->cfg.request_timeout_ms);
    c->reading = true;
    if (uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read_linger) != 0)
        conn_close(c);
}

static void on_listener_closed(uv_handle_t *h)
{
    http1_server *s = h->data;
    s->handles--;
    server_maybe_free(s);
}

int http1_server_new(uv_loop_t *loop, const http1_server_config *cfg, http1_server **out, char *err,
                     size_t errlen)
{
    http1_server *s = oms_calloc(1, sizeof *s);
    if (!s) {
        snprintf(err, errlen, "out of memory");
        return UV_ENOMEM;
    }
    s->loop = loop;
    s->cfg = *cfg;
    snprintf(s->host, sizeof s->host, "%s", cfg->host ? cfg->host : "127.0.0.1");
    s->cfg.host = s->host;
    if (!s->cfg.max_requests)
        s->cfg.max_requests = 1;
    if (!s->cfg.max_connections)
        s->cfg.max_connections = 1;
    if (s->cfg.max_header_bytes < 64)
        s->cfg.max_header_bytes = 64;
    struct sockaddr_storage ss;
    int rv = strchr(s->host, ':') ? uv_ip6_addr(s->host, cfg->port, (struct sockaddr_in6 *)&ss)
                                  : uv_ip4_addr(s->host, cfg->port, (struct sockaddr_in *)&ss);
    if (rv == 0)
        rv = uv_tcp_init(loop, &s->listener);
    if (rv != 0) {
        snprintf(err, errlen, "http1: bad address %s: %s", s->host, uv_strerror(rv));
        oms_free(s);
        return rv;
    }
    s->listener.data = s;
    s->handles = 1;
    if ((rv = uv_tcp_bind(&s->listener, (struct sockaddr *)&ss, 0)) != 0 ||
        (rv = uv_listen((uv_stream_t *)&s->listener, 128, on_connection)) != 0) {
        snprintf(err, errlen, "http1: cannot listen on %s:%d: %s", s->host, cfg->port,
                 uv_strerror(rv));
        s->closing = true;
        uv_close((uv_handle_t *)&s->listener, on_listener_closed);
        return rv;
    }
    struct sockaddr_storage bound;
    int blen = sizeof bound;
    uv_tcp_getsockname(&s->listener, (struct sockaddr *)&bound, &blen);
    s->port = ntohs(bound.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&bound)->sin6_port
                                                : ((struct sockaddr_in *)&bound)->sin_port);
    *out = s;
    return 0;
}

int http1_server_port(const http1_server *s)
{
    return s->port;
}

size_t http1_server_conn_count(const http1_server *s)
{
    return s->nconns;
}

void http1_server_close(http1_server *s, void (*cb)(void *arg), void *arg)
{
    s->closing = true;
    s->closed_cb = cb;
    s->closed_arg = arg;
    while (s->conns)
        conn_close(s->conns);
    uv_close((uv_handle_t *)&s->listener, on_listener_closed);
}
