/* server.c - the method registry and the http2 stream handler that turns a
 * request stream into a call: routing by :path, request validation, header
 * parsing (deadline, encodings, custom metadata). */
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/alloc.h"
#include "base/log.h"
#include "rpc/rpc_int.h"

struct rpc_server {
    rpc_server_config cfg;
    rpc_method *methods; /* open-addressing table keyed by path */
    size_t nmethods;
    size_t cap; /* power of two */
    char **services;
    size_t nservices;
    rpc__icept *ics; /* the interceptor chain, in order */
    rpc_cors cors;
    rpc_http_handler http; /* GET/HEAD of paths that are no method; NULL: none */
    void *http_data;
    uint32_t nics;
    atomic_size_t active_calls;
};

void rpc_server_config_init(rpc_server_config *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    cfg->max_recv_msg = 4u << 20;
    cfg->max_send_msg = 0x7fffffff;
}

rpc_server *rpc_server_new(const rpc_server_config *cfg)
{
    rpc_server *srv = oms_calloc(1, sizeof *srv);
    if (!srv)
        return NULL;
    srv->cfg = *cfg;
    srv->cfg.cors_origins = NULL; /* the copy is srv->cors */
    srv->cap = 64;
    srv->methods = oms_calloc(srv->cap, sizeof *srv->methods);
    if (!srv->methods || rpc__cors_init(&srv->cors, cfg->cors_origins) != 0) {
        oms_free(srv->methods);
        oms_free(srv);
        return NULL;
    }
    atomic_init(&srv->active_calls, 0);
    return srv;
}

void rpc_server_free(rpc_server *srv)
{
    if (!srv)
        return;
    for (size_t i = 0; i < srv->cap; i++)
        oms_free((char *)srv->methods[i].path);
    oms_free(srv->methods);
    for (size_t i = 0; i < srv->nservices; i++)
        oms_free(srv->services[i]);
    oms_free(srv->services);
    oms_free(srv->ics);
    rpc__cors_dispose(&srv->cors);
    oms_free(srv);
}

int rpc_server_add_interceptor(rpc_server *srv, const rpc_interceptor *ic, void *data)
{
    if (!ic || !ic->on_start || srv->nics == UINT32_MAX)
        return RPC_EINVAL;
    rpc__icept *a = oms_realloc(srv->ics, (srv->nics + 1) * sizeof *a);
    if (!a)
        return RPC_ENOMEM;
    a[srv->nics++] = (rpc__icept){*ic, data};
    srv->ics = a;
    return 0;
}

const rpc__icept *rpc__server_interceptors(const rpc_server *srv, uint32_t *n)
{
    *n = srv->nics;
    return srv->ics;
}

const rpc_server_config *rpc__server_config(const rpc_server *srv)
{
    return &srv->cfg;
}

/* FNV-1a: paths are short and few; this only has to spread them. */
static size_t hash_path(const char *p, size_t n)
{
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < n; i++) {
        h ^= (uint8_t)p[i];
        h *= 1099511628211ull;
    }
    return (size_t)h;
}

static rpc_method *find_slot(rpc_method *table, size_t cap, const char *path, size_t n)
{
    for (size_t i = hash_path(path, n) & (cap - 1);; i = (i + 1) & (cap - 1)) {
        rpc_method *m = &table[i];
        if (!m->path || (m->pathlen == n && memcmp(m->path, path, n) == 0))
            return m;
    }
}

static int grow(rpc_server *srv)
{
    size_t cap = srv->cap * 2;
    rpc_method *t = oms_calloc(cap, sizeof *t);
    if (!t)
        return RPC_ENOMEM;
    for (size_t i = 0; i < srv->cap; i++)
        if (srv->methods[i].path)
            *find_slot(t, cap, srv->methods[i].path, srv->methods[i].pathlen) = srv->methods[i];
    oms_free(srv->methods);
    srv->methods = t;
    srv->cap = cap;
    return 0;
}

int rpc_server_add_service(rpc_server *srv, const rpc_service_impl *impl)
{
    const ProtobufCServiceDescriptor *d = impl->desc;
    char **names = oms_realloc(srv->services, (srv->nservices + 1) * sizeof *names);
    if (!names)
        return RPC_ENOMEM;
    srv->services = names;
    for (size_t i = 0; i < srv->nservices; i++)
        if (strcmp(srv->services[i], d->name) == 0)
            return RPC_EINVAL;
    if (!(names[srv->nservices] = oms_strdup(d->name)))
        return RPC_ENOMEM;
    srv->nservices++;
    for (unsigned i = 0; i < d->n_methods; i++) {
        if ((srv->nmethods + 1) * 2 > srv->cap && grow(srv) != 0)
            return RPC_ENOMEM;
        char *path;
        if (asprintf(&path, "/%s/%s", d->name, d->methods[i].name) < 0)
            return RPC_ENOMEM;
        size_t n = strlen(path);
        rpc_method *m = find_slot(srv->methods, srv->cap, path, n);
        if (m->path) {
            oms_free(path);
            return RPC_EINVAL;
        }
        m->path = path;
        m->pathlen = n;
        m->service = names[srv->nservices - 1];
        m->name = path + 1 + strlen(d->name) + 1;
        m->input = d->methods[i].input;
        m->check_strings = rpc__desc_has_strings(m->input);
        m->output = d->methods[i].output;
        m->ops = impl->ops ? impl->ops[i] : NULL;
        m->service_data = impl->data;
        m->typed = impl->typed;
        srv->nmethods++;
    }
    return 0;
}

size_t rpc_server_service_count(const rpc_server *srv)
{
    return srv->nservices;
}

const char *rpc_server_service_name(const rpc_server *srv, size_t i)
{
    return i < srv->nservices ? srv->services[i] : NULL;
}

void rpc_server_each_method(const rpc_server *srv, void (*cb)(const char *path, void *arg),
                            void *arg)
{
    for (size_t i = 0; i < srv->cap; i++)
        if (srv->methods[i].path)
            cb(srv->methods[i].path, arg);
}

rpc_call_type rpc_server_method_type(const rpc_server *srv, const char *path)
{
    if (!path || !srv->cap)
        return RPC_CALL_UNKNOWN;
    const rpc_method *m = find_slot(srv->methods, srv->cap, path, strlen(path));
    if (!m->path || !m->ops)
        return RPC_CALL_UNKNOWN;
    return (rpc_call_type)(m->ops->flags & (RPC_CLIENT_STREAMING | RPC_SERVER_STREAMING));
}

size_t rpc_server_active_calls(const rpc_server *srv)
{
    return atomic_load(&srv->active_calls);
}

void rpc__server_call_started(rpc_server *srv)
{
    atomic_fetch_add(&srv->active_calls, 1);
}

void rpc__server_call_freed(rpc_server *srv)
{
    atomic_fetch_sub(&srv->active_calls, 1);
}

/* --- request admission ------------------------------------------------------ */

/* lit: a string literal (its length known at compile time). */
#define hdr_is(h, lit)                                                                             \
    ((h)->namelen == sizeof(lit) - 1 && memcmp((h)->name, lit, sizeof(lit) - 1) == 0)

/* A well-formed HTTP answer for requests that are not gRPC at all. */
static void respond_http(http2_stream *s, const char *status, const char *body)
{
    char len[24];
    snprintf(len, sizeof len, "%zu", strlen(body));
    http2_header h[] = {
        {":status", 7, status, strlen(status)},
        {"content-type", 12, "text/plain; charset=utf-8", 25},
        {"content-length", 14, len, strlen(len)},
    };
    if (http2_stream_respond(s, h, 3) == 0) {
        http2_stream_write(s, (const uint8_t *)body, strlen(body));
        http2_stream_end(s, NULL, 0);
    }
}

void rpc_server_set_http_handler(rpc_server *srv, rpc_http_handler h, void *data)
{
    srv->http = h;
    srv->http_data = data;
}

/* A GET or HEAD that names no method, answered by the server's HTTP handler
 * (see rpc.h). path/pathlen: the path without its query. */
static void respond_page(rpc_server *srv, http2_stream *s, const http2_header *h, size_t n,
                         bool head, const http2_header *path, size_t pathlen)
{
    char inm[256];
    rpc_http_request req = {.method = head ? "HEAD" : "GET",
                            .path = path ? path->value : "/",
                            .path_len = path ? pathlen : 1};
    if (path && pathlen < path->valuelen) {
        req.query = path->value + pathlen + 1;
        req.query_len = path->valuelen - pathlen - 1;
    }
    for (size_t i = 0; i < n; i++) {
        if (hdr_is(&h[i], "if-none-match") && h[i].valuelen < sizeof inm &&
            !memchr(h[i].value, '\0', h[i].valuelen)) {
            memcpy(inm, h[i].value, h[i].valuelen);
            inm[h[i].valuelen] = '\0';
            req.if_none_match = inm;
        }
    }
    rpc_http_response resp = {0};
    srv->http(srv->http_data, &req, &resp);
    int status = resp.status >= 100 && resp.status <= 999 ? resp.status : 500;
    char code[4];
    snprintf(code, sizeof code, "%d", status);
    http2_header stackh[16];
    size_t nh = 1 + resp.nheaders;
    http2_header *hh = nh <= 16 ? stackh : oms_malloc(nh * sizeof *hh);
    if (!hh) {
        http2_stream_reset(s, HTTP2_INTERNAL_ERROR);
    } else {
        hh[0] = (http2_header){":status", 7, code, 3};
        for (size_t i = 0; i < resp.nheaders; i++)
            hh[1 + i] = (http2_header){resp.headers[i].name, strlen(resp.headers[i].name),
                                       resp.headers[i].value, strlen(resp.headers[i].value)};
        if (resp.body && resp.len && !head) {
            if (http2_stream_respond(s, hh, nh) == 0) {
                http2_stream_write(s, resp.body, resp.len); /* queued whole: AGAIN is a hint */
                http2_stream_end(s, NULL, 0);
            }
        } else {
            http2_stream_end(s, hh, nh); /* one header block: HEAD, 304, no body */
        }
        if (hh != stackh)
            oms_free(hh);
    }
    if (resp.release)
        resp.release(resp.release_arg);
}

/* Records a custom metadata entry, decoding -bin values. Returns false if a
 * -bin value is not base64. */
static bool add_md(rpc_call *c, rpc_md *items, size_t *count, const http2_header *h)
{
    rpc_md *md = &items[(*count)++];
    md->key = rpc__arena_strndup(&c->arena, h->name, h->namelen);
    if (!md->key)
        return false;
    if (rpc__md_key_is_bin(h->name, h->namelen)) {
        uint8_t *v = rpc__arena_alloc(&c->arena, h->valuelen * 3 / 4 + 3);
        long n = v ? rpc__base64_decode(h->value, h->valuelen, v) : -1;
        if (n < 0)
            return false;
        md->value = v;
        md->len = (size_t)n;
    } else {
        md->value = (const uint8_t *)rpc__arena_strndup(&c->arena, h->value, h->valuelen);
        md->len = h->valuelen;
        if (!md->value)
            return false;
    }
    return true;
}

/* Looks path[0..len) up; NULL if no service registered it. */
static const rpc_method *find_method(const rpc_server *srv, const char *path, size_t len)
{
    for (size_t i = srv->cap ? hash_path(path, len) & (srv->cap - 1) : 0;;
         i = (i + 1) & (srv->cap - 1)) {
        const rpc_method *x = &srv->methods[i];
        if (!x->path)
            return NULL;
        if (x->pathlen == len && memcmp(x->path, path, len) == 0)
            return x;
    }
}

/* The request headers on_open reads, by protocol where they differ. */
typedef struct req_headers {
    const http2_header *method, *path, *ctype, *origin;
    const http2_header *grpc_timeout, *grpc_encoding, *grpc_accept;
    const http2_header *connect_timeout, *connect_version;
    const http2_header *content_encoding, *accept_encoding; /* Connect unary */
    const http2_header *cc_encoding, *cc_accept;            /* Connect streams */
    size_t ncustom;
} req_headers;

/* The slot in r for a header on_open reads, or NULL. By length first: this
 * runs for every header of every call. */
static const http2_header **known_slot(req_headers *r, const http2_header *x)
{
#define IS(lit) (memcmp(x->name, lit, sizeof(lit) - 1) == 0)
    switch (x->namelen) {
    case 6:
        return IS("origin") ? &r->origin : NULL;
    case 12:
        return IS("content-type") ? &r->ctype : IS("grpc-timeout") ? &r->grpc_timeout : NULL;
    case 13:
        return IS("grpc-encoding") ? &r->grpc_encoding : NULL;
    case 15:
        return IS("accept-encoding") ? &r->accept_encoding : NULL;
    case 16:
        return IS("content-encoding") ? &r->content_encoding : NULL;
    case 18:
        return IS("connect-timeout-ms") ? &r->connect_timeout : NULL;
    case 20:
        return IS("grpc-accept-encoding") ? &r->grpc_accept : NULL;
    case 23:
        return IS("connect-accept-encoding") ? &r->cc_accept : NULL;
    case 24:
        return IS("connect-protocol-version")   ? &r->connect_version
               : IS("connect-content-encoding") ? &r->cc_encoding
                                                : NULL;
    default:
        return NULL;
    }
#undef IS
}

static void scan_headers(req_headers *r, const http2_header *h, size_t n)
{
    memset(r, 0, sizeof *r);
    for (size_t i = 0; i < n; i++) {
        const http2_header *x = &h[i];
        if (x->namelen && x->name[0] == ':') {
            if (hdr_is(x, ":method"))
                r->method = x;
            else if (hdr_is(x, ":path"))
                r->path = x;
            continue;
        }
        const http2_header **slot = known_slot(r, x);
        if (slot)
            *slot = x;
        else if (!rpc__md_key_reserved(x->name, x->namelen))
            r->ncustom++;
    }
}

/* Applies the request's encodings, deadline and metadata to c. Returns false
 * if it finished c (a header it cannot take). */
static bool apply_headers(rpc_call *c, const req_headers *r, const http2_header *h, size_t n)
{
    const http2_header *encoding = r->grpc_encoding, *accept = r->grpc_accept;
    if (c->proto == RPC_PROTO_CONNECT)
        encoding = r->content_encoding, accept = r->accept_encoding;
    else if (c->proto == RPC_PROTO_CONNECT_STREAM)
        encoding = r->cc_encoding, accept = r->cc_accept;
    if (accept && rpc__encoding_accepted(accept->value, accept->valuelen, RPC_ENC_GZIP))
        c->resp_enc = RPC_ENC_GZIP;
    else if (accept && c->proto < RPC_PROTO_CONNECT &&
             rpc__encoding_accepted(accept->value, accept->valuelen, RPC_ENC_DEFLATE))
        c->resp_enc = RPC_ENC_DEFLATE;
    if (encoding) {
        c->req_enc = rpc__encoding_parse(encoding->value, encoding->valuelen);
        if (c->req_enc == RPC_ENC_UNKNOWN ||
            (c->proto >= RPC_PROTO_CONNECT && c->req_enc == RPC_ENC_DEFLATE)) {
            char msg[300];
            snprintf(msg, sizeof msg, "%.*s %s is not supported", (int)encoding->namelen,
                     encoding->name, RPC_QUOTE(encoding->value, encoding->valuelen));
            rpc_call_finish(c, RPC_UNIMPLEMENTED, msg);
            return false;
        }
    }
    if (r->connect_version && c->proto >= RPC_PROTO_CONNECT &&
        !(r->connect_version->valuelen == 1 && r->connect_version->value[0] == '1')) {
        rpc_call_finish(c, RPC_INVALID_ARGUMENT, "connect-protocol-version must be 1");
        return false;
    }
    if (r->ncustom) {
        rpc_md *items = rpc__arena_alloc(&c->arena, r->ncustom * sizeof *items);
        size_t count = 0;
        for (size_t i = 0; items && i < n; i++) {
            const http2_header *x = &h[i];
            if (x->namelen && x->name[0] == ':')
                continue;
            if (rpc__md_key_reserved(x->name, x->namelen) ||
                (c->proto != RPC_PROTO_GRPC && rpc__web_header_reserved(x->name, x->namelen)))
                continue;
            if (!add_md(c, items, &count, x)) {
                rpc_call_finish(c, RPC_INTERNAL, "malformed binary metadata");
                return false;
            }
        }
        c->md.items = items;
        c->md.count = count;
    }
    uint64_t ms;
    if (c->proto >= RPC_PROTO_CONNECT ? r->connect_timeout != NULL : r->grpc_timeout != NULL) {
        const http2_header *t =
            c->proto >= RPC_PROTO_CONNECT ? r->connect_timeout : r->grpc_timeout;
        int rv = c->proto >= RPC_PROTO_CONNECT
                     ? rpc__connect_timeout_parse(t->value, t->valuelen, &ms)
                     : rpc__timeout_parse(t->value, t->valuelen, &ms);
        if (rv != 0) {
            rpc_call_finish(c, c->proto >= RPC_PROTO_CONNECT ? RPC_INVALID_ARGUMENT : RPC_INTERNAL,
                            c->proto >= RPC_PROTO_CONNECT ? "malformed connect-timeout-ms"
                                                          : "malformed grpc-timeout");
            return false;
        }
        rpc__call_set_deadline(c, ms);
    }
    return true;
}

static const char *unimplemented(char msg[300], const rpc_method *m, const http2_header *path,
                                 size_t pathlen)
{
    snprintf(msg, 300, "%s: %s", m ? "method not implemented" : "unknown method",
             path ? RPC_QUOTE(path->value, pathlen) : "");
    return msg;
}

static void on_open(http2_stream *s, const http2_header *h, size_t n)
{
    rpc_server *srv = http2_stream_server_data(s);
    req_headers r;
    scan_headers(&r, h, n);
    const http2_header *method = r.method, *path = r.path;
    bool get = method && method->valuelen == 3 && memcmp(method->value, "GET", 3) == 0;
    bool head = method && method->valuelen == 4 && memcmp(method->value, "HEAD", 4) == 0;
    if ((get || head) && srv->http) {
        /* A page, unless the path (without its query) names a method: a
         * Connect GET. */
        size_t plen = path ? path->valuelen : 0;
        const char *q = path ? memchr(path->value, '?', plen) : NULL;
        if (q)
            plen = (size_t)(q - path->value);
        if (head || !path || !find_method(srv, path->value, plen)) {
            respond_page(srv, s, h, n, head, path, plen);
            return;
        }
    }
    if (method && method->valuelen == 7 && memcmp(method->value, "OPTIONS", 7) == 0) {
        rpc__cors_preflight(&srv->cors, s, h, n);
        return;
    }
    if (!get && (!method || method->valuelen != 4 || memcmp(method->value, "POST", 4) != 0)) {
        respond_http(s, "405",
                     "oms: this is a gRPC server; send gRPC requests (POST, "
                     "content-type application/grpc)\n");
        return;
    }
    bool json = false;
    rpc_proto proto = get       ? RPC_PROTO_CONNECT
                      : r.ctype ? rpc__wire_detect(r.ctype->value, r.ctype->valuelen, &json)
                                : RPC_PROTO_NONE;
    /* gRPC proper is HTTP/2 only (trailers, full duplex): over the
     * transport's HTTP/1.1 side it gets a clear answer, not a broken call. */
    if (proto == RPC_PROTO_GRPC && http2_stream_http_version(s) == 1) {
        respond_http(s, "505",
                     "oms: gRPC (application/grpc) needs HTTP/2; over HTTP/1.1 use gRPC-Web or "
                     "Connect\n");
        return;
    }
    if (proto == RPC_PROTO_NONE) {
        respond_http(s, "415",
                     "oms: content-type must be application/grpc[+proto], "
                     "application/grpc-web[-text][+proto], application/proto, application/json "
                     "or application/connect+proto|json\n");
        return;
    }
    /* A Connect GET's query is not part of the method's path. */
    size_t pathlen = path ? path->valuelen : 0;
    const char *query = NULL;
    if (get && path) {
        const char *q = memchr(path->value, '?', pathlen);
        if (q) {
            query = q + 1;
            pathlen = (size_t)(q - path->value);
        }
    }
    if (get && !query) {
        respond_http(s, "405", "oms: GET needs a Connect query (?encoding=...&message=...)\n");
        return;
    }
    const rpc_method *m = path ? find_method(srv, path->value, pathlen) : NULL;
    /* With interceptors, calls to unknown methods become calls too (access
     * logs, metrics, authentication first): the chain answers UNIMPLEMENTED
     * after its last interceptor. The web protocols always make a call: it
     * answers in their form. */
    char msg[300];
    if ((!m || !m->ops) && !srv->nics && proto == RPC_PROTO_GRPC) {
        rpc__respond_error(s, RPC_UNIMPLEMENTED, unimplemented(msg, m, path, pathlen));
        return;
    }

    rpc_call *c = m ? rpc__call_new(srv, s, m)
                    : rpc__call_new_unknown(srv, s, path ? path->value : "", pathlen);
    if (!c) {
        rpc__respond_error(s, RPC_RESOURCE_EXHAUSTED, "out of memory");
        return;
    }
    if (proto != RPC_PROTO_GRPC) {
        bool cors = r.origin && rpc__cors_allowed(&srv->cors, r.origin->value, r.origin->valuelen);
        int rv = rpc__web_open(c, proto, json, cors ? r.origin->value : NULL,
                               cors ? r.origin->valuelen : 0, query,
                               query ? (size_t)(path->value + path->valuelen - query) : 0);
        if (rv == RPC_ENOMEM)
            rpc_call_finish(c, RPC_RESOURCE_EXHAUSTED, "out of memory");
        if (rv != 0)
            return;
    }
    if (!apply_headers(c, &r, h, n))
        return;
    if (c->ics)
        rpc__call_intercept(c);
    else if (!c->method->ops)
        rpc_call_finish(c, RPC_UNIMPLEMENTED, unimplemented(msg, m, path, pathlen));
}

static void on_data(http2_stream *s, const uint8_t *p, size_t n)
{
    rpc_call *c = http2_stream_data(s);
    if (c)
        rpc__call_on_data(c, p, n);
    else
        http2_stream_consume(s, n);
}

static void on_end(http2_stream *s)
{
    rpc_call *c = http2_stream_data(s);
    if (c)
        rpc__call_on_end(c);
}

static void on_writable(http2_stream *s)
{
    rpc_call *c = http2_stream_data(s);
    if (c)
        rpc__call_on_writable(c);
}

static void on_close(http2_stream *s, uint32_t h2_error)
{
    rpc_call *c = http2_stream_data(s);
    if (c)
        rpc__call_on_close(c, h2_error);
}

/* A request whose header block is too large never becomes a call; a gRPC
 * client still gets a status it can report (not a bare HTTP 431, which it
 * would map to UNKNOWN). */
static void on_too_large(http2_stream *s, uint32_t limit)
{
    char m[96];
    snprintf(m, sizeof m, "request header list larger than %u bytes", limit);
    rpc__respond_error(s, RPC_RESOURCE_EXHAUSTED, m);
}

static const http2_stream_handler stream_handler = {
    .on_open = on_open,
    .on_data = on_data,
    .on_end = on_end,
    .on_writable = on_writable,
    .on_close = on_close,
    .on_too_large = on_too_large,
};

const http2_stream_handler *rpc_server_stream_handler(void)
{
    return &stream_handler;
}

const uint8_t *rpc_metadata_get(const rpc_metadata *md, const char *key, size_t *len)
{
    for (size_t i = 0; i < md->count; i++) {
        if (strcmp(md->items[i].key, key) == 0) {
            if (len)
                *len = md->items[i].len;
            return md->items[i].value;
        }
    }
    return NULL;
}
