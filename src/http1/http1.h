/* http1 - a small HTTP/1.1 server on libuv, parsed by libhttp-parser.
 *
 * For admin endpoints (metrics, health) now, gRPC-Web over HTTP/1.1 later.
 * One server runs on one loop; every callback fires on that loop.
 *
 *     http1_server_config cfg;
 *     http1_server_config_init(&cfg);
 *     cfg.host = "127.0.0.1"; cfg.port = 9464;
 *     cfg.handler = on_request; cfg.data = me;
 *     http1_server *s;
 *     if (http1_server_new(loop, &cfg, &s, err, sizeof err) != 0) ...
 *     ... uv_run(loop) ...
 *     http1_server_close(s, on_closed, arg);   // frees s once every handle closed
 *
 * Requests are answered one at a time, in order, from inside the handler
 * (synchronous: the handler fills *resp before it returns). Pipelined requests
 * are parsed and answered in order; a client that does not read its answers
 * stops being read once max_pending_write bytes wait.
 *
 * Limits (each one a config field; defaults in brackets):
 *  - request target + header names and values: max_header_bytes [8192],
 *    at most 64 header fields; past either 431 and close (libhttp-parser's
 *    own limit on the raw head, 80 KiB, answers 400);
 *  - body: max_body_bytes [65536]; past it 413 and close;
 *  - a request must arrive whole within request_timeout_ms [10000] of its
 *    first byte (slowloris): else 408 and close;
 *  - keep-alive: idle_timeout_ms [30000] between requests, then close;
 *    max_requests [100] per connection, the last answer says
 *    "Connection: close";
 *  - max_connections [64] open at once: a connection over it is closed at
 *    once, unread;
 *  - malformed requests (the parser's verdict: bad bytes, bad framing,
 *    HTTP/2 prefaces; and here: header names that are not tokens, control
 *    bytes in values) get 400 and close;
 *  - Upgrade and CONNECT requests are answered like any other, then the
 *    connection closes: no protocol switch.
 * A listen failure in http1_server_new releases its memory once the loop
 * runs (the listener's close callback).
 */
#ifndef OMS_HTTP1_H
#define OMS_HTTP1_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

typedef struct http1_server http1_server;

typedef struct http1_header {
    const char *name; /* as sent (compare case-insensitively) */
    const char *value;
} http1_header;

/* A parsed request, borrowed for the handler call only. */
typedef struct http1_request {
    const char *method; /* "GET", "POST", ... */
    const char *target; /* the request target as sent: "/metrics?x=1" */
    const char *path;   /* its path part: "/metrics" */
    const char *query;  /* after '?', or NULL */
    const http1_header *headers;
    size_t n_headers;
    const uint8_t *body; /* NULL when empty */
    size_t body_len;
    int http_minor;   /* 0 or 1 */
    const char *peer; /* "ip:port" */
} http1_request;

/* What the handler answers. Zeroed before the call: status 0 means 500. body
 * is copied after the handler returns, so the handler may point it at
 * memory it frees afterwards (see free_body). */
typedef struct http1_response {
    int status;
    const char *content_type; /* NULL: none sent */
    const void *body;
    size_t body_len;
    void (*free_body)(void *body); /* called with body once copied, if set */
    const char *allow;             /* "Allow" header (for 405), or NULL */
} http1_response;

typedef void (*http1_handler_cb)(const http1_request *req, http1_response *resp, void *data);

typedef struct http1_server_config {
    const char *host; /* IPv4 or IPv6 literal; default "127.0.0.1" */
    int port;         /* 0 picks a free port (http1_server_port) */
    http1_handler_cb handler;
    void *data;
    size_t max_header_bytes;
    size_t max_body_bytes;
    uint64_t request_timeout_ms;
    uint64_t idle_timeout_ms;
    unsigned max_requests;
    unsigned max_connections;
    size_t max_pending_write; /* answers queued for a slow reader; default 1 MiB */
} http1_server_config;

void http1_server_config_init(http1_server_config *cfg);

/* Binds and listens on loop. cfg is copied (host too). Returns 0 with *out,
 * or a negative UV error with a message in err. */
int http1_server_new(uv_loop_t *loop, const http1_server_config *cfg, http1_server **out, char *err,
                     size_t errlen);

/* The bound port. */
int http1_server_port(const http1_server *s);

/* Connections open now. */
size_t http1_server_conn_count(const http1_server *s);

/* Stops listening, closes every connection and frees s once all handles
 * closed; then cb(arg) fires (cb may be NULL). From the server's loop. */
void http1_server_close(http1_server *s, void (*cb)(void *arg), void *arg);

/* The reason phrase of status ("Not Found"), "" when unknown. */
const char *http1_reason(int status);

#endif
