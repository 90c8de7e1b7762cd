/* cors.c - Cross-Origin Resource Sharing for the web protocols: which
 * origins may call (rpc_server_config.cors_origins), and the preflight
 * OPTIONS answer. The headers on actual responses are web.c's. */
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "base/alloc.h"
#include "rpc/rpc_int.h"

/* Request headers a browser client of ours sends: gRPC-Web's, Connect's,
 * and authentication. Custom metadata a preflight asks for is added. */
#define ALLOWED_HEADERS                                                                            \
    "content-type,x-grpc-web,x-user-agent,grpc-timeout,authorization,connect-protocol-version,"    \
    "connect-timeout-ms,connect-content-encoding,connect-accept-encoding,grpc-encoding,"           \
    "grpc-accept-encoding"

int rpc__cors_init(rpc_cors *c, const char *list)
{
    memset(c, 0, sizeof *c);
    if (!list || !*list)
        return 0;
    size_t cap = 1;
    for (const char *p = list; *p; p++)
        cap += *p == ',';
    c->origins = oms_calloc(cap, sizeof *c->origins);
    if (!c->origins)
        return RPC_ENOMEM;
    for (const char *p = list;;) {
        const char *comma = strchr(p, ',');
        size_t n = comma ? (size_t)(comma - p) : strlen(p);
        while (n && (*p == ' ' || *p == '\t'))
            p++, n--;
        while (n && (p[n - 1] == ' ' || p[n - 1] == '\t'))
            n--;
        if (n == 0) {
            rpc__cors_dispose(c);
            return RPC_EINVAL;
        }
        if (n == 1 && *p == '*')
            c->any = true;
        if (!(c->origins[c->n++] = oms_strndup(p, n))) {
            rpc__cors_dispose(c);
            return RPC_ENOMEM;
        }
        if (!comma)
            break;
        p = comma + 1;
    }
    return 0;
}

void rpc__cors_dispose(rpc_cors *c)
{
    for (size_t i = 0; i < c->n; i++)
        oms_free(c->origins[i]);
    oms_free(c->origins);
    memset(c, 0, sizeof *c);
}

bool rpc__cors_allowed(const rpc_cors *c, const char *origin, size_t len)
{
    if (!origin || !c->n)
        return false;
    if (c->any)
        return true;
    for (size_t i = 0; i < c->n; i++)
        if (strlen(c->origins[i]) == len && strncasecmp(c->origins[i], origin, len) == 0)
            return true;
    return false;
}

/* Whether a requested header list is made of header names (tokens, commas,
 * spaces), so it can be echoed without letting anything else through. */
static bool header_list_ok(const char *v, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        char ch = v[i];
        if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
              ch == '-' || ch == '_' || ch == '.' || ch == ',' || ch == ' '))
            return false;
    }
    return true;
}

void rpc__cors_preflight(const rpc_cors *c, http2_stream *s, const http2_header *h, size_t n)
{
    const http2_header *origin = NULL, *req_headers = NULL;
    for (size_t i = 0; i < n; i++) {
        if (h[i].namelen == 6 && memcmp(h[i].name, "origin", 6) == 0)
            origin = &h[i];
        else if (h[i].namelen == 30 && memcmp(h[i].name, "access-control-request-headers", 30) == 0)
            req_headers = &h[i];
    }
    if (!origin || !rpc__cors_allowed(c, origin->value, origin->valuelen)) {
        static const char body[] = "oms: origin not allowed\n";
        http2_header r[] = {
            {":status", 7, "403", 3},
            {"content-type", 12, "text/plain; charset=utf-8", 25},
            {"content-length", 14, "24", 2},
        };
        if (http2_stream_respond(s, r, 3) == 0) {
            http2_stream_write(s, (const uint8_t *)body, sizeof body - 1);
            http2_stream_end(s, NULL, 0);
        }
        return;
    }
    char allow[2048];
    int al = snprintf(allow, sizeof allow, "%s", ALLOWED_HEADERS);
    if (req_headers && req_headers->valuelen &&
        header_list_ok(req_headers->value, req_headers->valuelen) &&
        (size_t)al + 1 + req_headers->valuelen < sizeof allow)
        al += snprintf(allow + al, sizeof allow - (size_t)al, ",%.*s", (int)req_headers->valuelen,
                       req_headers->value);
    http2_header r[] = {
        {":status", 7, "204", 3},
        {"access-control-allow-origin", 27, origin->value, origin->valuelen},
        {"vary", 4, "Origin", 6},
        {"access-control-allow-methods", 28, "POST, GET", 9},
        {"access-control-allow-headers", 28, allow, (size_t)al},
        {"access-control-max-age", 22, "7200", 4},
    };
    http2_stream_end(s, r, sizeof r / sizeof r[0]);
}
