/* wire.c - the pure pieces of the web protocols (gRPC-Web, Connect): which
 * protocol a content-type names, grpc-web-text's base64 in pieces, the
 * grpc-web trailer frame, Connect's code names, HTTP statuses, error JSON,
 * timeout and GET query. No call, no stream: each is tested alone
 * (tests/rpc/test_wire.c); web.c puts them on calls. */
#include <string.h>
#include <strings.h>

#include "base/alloc.h"
#include "rpc/rpc_int.h"

/* Whether v[0..n) is name, alone or followed by parameters. */
static bool media_is(const char *v, size_t n, const char *name)
{
    size_t l = strlen(name);
    if (n < l || strncasecmp(v, name, l) != 0)
        return false;
    while (l < n && (v[l] == ' ' || v[l] == '\t'))
        l++;
    return l == n || v[l] == ';';
}

rpc_proto rpc__wire_detect(const char *ctype, size_t len, bool *json)
{
    static const struct {
        const char *name;
        rpc_proto proto;
        bool json;
    } types[] = {
        {"application/grpc", RPC_PROTO_GRPC, false},
        {"application/grpc+proto", RPC_PROTO_GRPC, false},
        {"application/grpc-web", RPC_PROTO_GRPC_WEB, false},
        {"application/grpc-web+proto", RPC_PROTO_GRPC_WEB, false},
        {"application/grpc-web-text", RPC_PROTO_GRPC_WEB_TEXT, false},
        {"application/grpc-web-text+proto", RPC_PROTO_GRPC_WEB_TEXT, false},
        {"application/proto", RPC_PROTO_CONNECT, false},
        {"application/json", RPC_PROTO_CONNECT, true},
        {"application/connect+proto", RPC_PROTO_CONNECT_STREAM, false},
        {"application/connect+json", RPC_PROTO_CONNECT_STREAM, true},
    };
    *json = false;
    for (size_t i = 0; ctype && i < sizeof types / sizeof types[0]; i++) {
        if (media_is(ctype, len, types[i].name)) {
            *json = types[i].json;
            return types[i].proto;
        }
    }
    return RPC_PROTO_NONE;
}

/* --- grpc-web-text ---------------------------------------------------------- */

/* Decodes groups[0..n) (n a multiple of 4) into out. */
static int decode_groups(const char *g, size_t n, rpc_buf *out)
{
    while (n > 0) {
        /* Up to and including the first group that carries padding: one
         * decode call per base64 text the peer encoded on its own. */
        size_t run = 0;
        while (run < n && memchr(g + run, '=', 4) == NULL)
            run += 4;
        if (run < n)
            run += 4;
        if (rpc__buf_reserve(out, run / 4 * 3 + 3) != 0)
            return -2;
        long d = oms_base64_decode(g, run, out->data + out->len, 0);
        if (d < 0)
            return -1;
        out->len += (size_t)d;
        g += run;
        n -= run;
    }
    return 0;
}

/* Line breaks and spaces are not base64 but a text tool may add them (a
 * trailing newline from `base64`): they are dropped. */
static bool is_space(char ch)
{
    return ch == '\n' || ch == '\r' || ch == ' ' || ch == '\t';
}

static int feed_text(rpc_b64_stream *st, const char *in, size_t n, rpc_buf *out);

int rpc__b64_stream_feed(rpc_b64_stream *st, const char *in, size_t n, rpc_buf *out)
{
    size_t i = 0;
    while (i < n && !is_space(in[i]))
        i++;
    if (i == n)
        return feed_text(st, in, n, out);
    char *clean = oms_malloc(n);
    if (!clean)
        return -2;
    size_t m = 0;
    for (i = 0; i < n; i++)
        if (!is_space(in[i]))
            clean[m++] = in[i];
    int rv = feed_text(st, clean, m, out);
    oms_free(clean);
    return rv;
}

static int feed_text(rpc_b64_stream *st, const char *in, size_t n, rpc_buf *out)
{
    if (st->ncarry) { /* complete the group the last piece left open */
        size_t take = 4u - st->ncarry < n ? 4u - st->ncarry : n;
        memcpy(st->carry + st->ncarry, in, take);
        st->ncarry = (uint8_t)(st->ncarry + take);
        in += take;
        n -= take;
        if (st->ncarry < 4)
            return 0;
        st->ncarry = 0;
        int rv = decode_groups(st->carry, 4, out);
        if (rv != 0)
            return rv;
    }
    size_t whole = n / 4 * 4;
    int rv = decode_groups(in, whole, out);
    if (rv != 0)
        return rv;
    memcpy(st->carry, in + whole, n - whole);
    st->ncarry = (uint8_t)(n - whole);
    return 0;
}

int rpc__b64_stream_end(rpc_b64_stream *st, rpc_buf *out)
{
    if (st->ncarry == 0)
        return 0;
    uint8_t tmp[3];
    long d = st->ncarry > 1 ? oms_base64_decode(st->carry, st->ncarry, tmp, 0) : -1;
    st->ncarry = 0;
    if (d < 0)
        return -1;
    return rpc__buf_append(out, tmp, (size_t)d) == 0 ? 0 : -2;
}

int rpc__grpcweb_trailer_frame(rpc_buf *out, const http2_header *h, size_t n)
{
    size_t start = out->len;
    uint8_t prefix[RPC_FRAME_HEADER] = {0x80};
    if (rpc__buf_append(out, prefix, sizeof prefix) != 0)
        return RPC_ENOMEM;
    for (size_t i = 0; i < n; i++) {
        if (rpc__buf_append(out, h[i].name, h[i].namelen) != 0 ||
            rpc__buf_append(out, ": ", 2) != 0 ||
            rpc__buf_append(out, h[i].value, h[i].valuelen) != 0 ||
            rpc__buf_append(out, "\r\n", 2) != 0) {
            out->len = start;
            return RPC_ENOMEM;
        }
    }
    rpc__frame_header(out->data + start, false, (uint32_t)(out->len - start - RPC_FRAME_HEADER));
    out->data[start] = 0x80;
    return 0;
}

/* --- Connect ------------------------------------------------------------------ */

static const struct {
    const char *name;
    int http;
} connect_codes[] = {
    [RPC_OK] = {"ok", 200},
    [RPC_CANCELLED] = {"canceled", 499},
    [RPC_UNKNOWN] = {"unknown", 500},
    [RPC_INVALID_ARGUMENT] = {"invalid_argument", 400},
    [RPC_DEADLINE_EXCEEDED] = {"deadline_exceeded", 504},
    [RPC_NOT_FOUND] = {"not_found", 404},
    [RPC_ALREADY_EXISTS] = {"already_exists", 409},
    [RPC_PERMISSION_DENIED] = {"permission_denied", 403},
    [RPC_RESOURCE_EXHAUSTED] = {"resource_exhausted", 429},
    [RPC_FAILED_PRECONDITION] = {"failed_precondition", 400},
    [RPC_ABORTED] = {"aborted", 409},
    [RPC_OUT_OF_RANGE] = {"out_of_range", 400},
    [RPC_UNIMPLEMENTED] = {"unimplemented", 501},
    [RPC_INTERNAL] = {"internal", 500},
    [RPC_UNAVAILABLE] = {"unavailable", 503},
    [RPC_DATA_LOSS] = {"data_loss", 500},
    [RPC_UNAUTHENTICATED] = {"unauthenticated", 401},
};

const char *rpc__connect_code_name(rpc_status code)
{
    unsigned i = (unsigned)code;
    return i < sizeof connect_codes / sizeof connect_codes[0] ? connect_codes[i].name : "unknown";
}

int rpc__connect_http_status(rpc_status code)
{
    unsigned i = (unsigned)code;
    return i < sizeof connect_codes / sizeof connect_codes[0] ? connect_codes[i].http : 500;
}

int rpc__json_string(rpc_buf *out, const char *s, size_t len)
{
    static const char hex[] = "0123456789abcdef";
    size_t start = out->len;
    if (rpc__buf_append(out, "\"", 1) != 0)
        goto nomem;
    for (size_t i = 0; i < len;) {
        uint8_t ch = (uint8_t)s[i];
        if (ch >= 0x80) {
            /* The length of the well-formed sequence starting here, if any. */
            size_t k = 2;
            while (k <= 4 && i + k <= len && rpc__utf8_check((const uint8_t *)s + i, k) != 0)
                k++;
            if (k <= 4 && i + k <= len) {
                if (rpc__buf_append(out, s + i, k) != 0)
                    goto nomem;
                i += k;
            } else {
                if (rpc__buf_append(out, "\xef\xbf\xbd", 3) != 0)
                    goto nomem;
                i++;
            }
            continue;
        }
        char esc[6] = {'\\', (char)ch};
        size_t el = 2;
        if (ch == '"' || ch == '\\') {
        } else if (ch == '\n') {
            esc[1] = 'n';
        } else if (ch < 0x20 || ch == 0x7f) {
            memcpy(esc, "\\u00", 4);
            esc[4] = hex[ch >> 4];
            esc[5] = hex[ch & 15];
            el = 6;
        } else {
            esc[0] = (char)ch;
            el = 1;
        }
        if (rpc__buf_append(out, esc, el) != 0)
            goto nomem;
        i++;
    }
    if (rpc__buf_append(out, "\"", 1) == 0)
        return 0;
nomem:
    out->len = start;
    return RPC_ENOMEM;
}

int rpc__connect_error_json(rpc_buf *out, rpc_status code, const char *message)
{
    size_t start = out->len;
    const char *name = rpc__connect_code_name(code);
    if (rpc__buf_append(out, "{\"code\":\"", 9) != 0 ||
        rpc__buf_append(out, name, strlen(name)) != 0 || rpc__buf_append(out, "\"", 1) != 0)
        goto nomem;
    if (message && *message &&
        (rpc__buf_append(out, ",\"message\":", 11) != 0 ||
         rpc__json_string(out, message, strlen(message)) != 0))
        goto nomem;
    if (rpc__buf_append(out, "}", 1) == 0)
        return 0;
nomem:
    out->len = start;
    return RPC_ENOMEM;
}

int rpc__connect_timeout_parse(const char *s, size_t len, uint64_t *ms)
{
    if (len == 0 || len > 10)
        return -1;
    uint64_t v = 0;
    for (size_t i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        v = v * 10 + (uint64_t)(s[i] - '0');
    }
    *ms = v;
    return 0;
}

static int hexval(char c)
{
    return c >= '0' && c <= '9'   ? c - '0'
           : c >= 'a' && c <= 'f' ? c - 'a' + 10
           : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                  : -1;
}

/* Decodes a query component (%XX escapes, '+' for a space) into out. A '%'
 * without two hex digits is refused (-1). */
static int query_decode(const char *s, size_t len, rpc_buf *out)
{
    if (rpc__buf_reserve(out, len) != 0)
        return -2;
    for (size_t i = 0; i < len; i++) {
        char ch = s[i];
        if (ch == '+') {
            ch = ' ';
        } else if (ch == '%') {
            int hi = i + 2 < len ? hexval(s[i + 1]) : -1, lo = hi >= 0 ? hexval(s[i + 2]) : -1;
            if (lo < 0)
                return -1;
            ch = (char)(hi << 4 | lo);
            i += 2;
        }
        out->data[out->len++] = (uint8_t)ch;
    }
    return 0;
}

int rpc__connect_get_parse(const char *query, size_t len, rpc_connect_get *q, rpc_buf *out,
                           const char **why)
{
    const char *msg = NULL, *enc = NULL, *comp = NULL;
    size_t msglen = 0, enclen = 0, complen = 0;
    bool b64 = false, seen_msg = false;
    q->json = false;
    q->compression = RPC_ENC_IDENTITY;
    for (const char *p = query, *end = query + len; p < end;) {
        const char *amp = memchr(p, '&', (size_t)(end - p));
        const char *pe = amp ? amp : end;
        const char *eq = memchr(p, '=', (size_t)(pe - p));
        const char *v = eq ? eq + 1 : pe;
        size_t kl = (size_t)((eq ? eq : pe) - p), vl = (size_t)(pe - v);
        if (kl == 7 && memcmp(p, "message", 7) == 0) {
            msg = v, msglen = vl, seen_msg = true;
        } else if (kl == 8 && memcmp(p, "encoding", 8) == 0) {
            enc = v, enclen = vl;
        } else if (kl == 11 && memcmp(p, "compression", 11) == 0) {
            comp = v, complen = vl;
        } else if (kl == 6 && memcmp(p, "base64", 6) == 0) {
            b64 = vl == 1 && v[0] == '1';
        } else if (kl == 7 && memcmp(p, "connect", 7) == 0) {
            if (vl != 2 || memcmp(v, "v1", 2) != 0) {
                *why = "connect query parameter must be v1";
                return -1;
            }
        }
        p = pe + 1;
    }
    if (enc && enclen == 4 && memcmp(enc, "json", 4) == 0) {
        q->json = true;
    } else if (!enc || enclen != 5 || memcmp(enc, "proto", 5) != 0) {
        *why = "encoding query parameter must be json or proto";
        return -1;
    }
    if (comp && complen) {
        q->compression = rpc__encoding_parse(comp, complen);
        if (q->compression == RPC_ENC_UNKNOWN || q->compression == RPC_ENC_DEFLATE) {
            *why = "compression query parameter must be identity or gzip";
            return -1;
        }
    }
    if (!seen_msg) {
        *why = "message query parameter missing";
        return -1;
    }
    rpc_buf text;
    rpc__buf_init(&text);
    int rv = query_decode(msg, msglen, b64 ? &text : out);
    if (rv != 0) {
        *why = rv == -2 ? "out of memory" : "message query parameter: bad percent-encoding";
    } else if (b64) {
        if (rpc__buf_reserve(out, oms_base64_decoded_max(text.len)) != 0) {
            rv = -1, *why = "out of memory";
        } else {
            long n = oms_base64_decode((const char *)text.data, text.len, out->data + out->len,
                                       OMS_B64_ANY);
            if (n < 0)
                rv = -1, *why = "message query parameter is not base64";
            else
                out->len += (size_t)n;
        }
    }
    rpc__buf_dispose(&text);
    rv = rv ? -1 : 0;
    return rv;
}
