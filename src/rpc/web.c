/* web.c - gRPC-Web and the Connect protocol on a call: where they differ
 * from gRPC. call.c asks here, at one point each, for the response headers,
 * how a frame goes out, how the call's status goes out, and how request
 * bytes come in; everything else (deframing, limits, decompression,
 * decoding, interceptors, deadlines) is the same call.
 *
 *   gRPC-Web       gRPC's frames; the status is a last frame flagged 0x80
 *                  holding "name: value\r\n" lines (no HTTP trailers);
 *                  -text: the body base64 both ways, piece by piece.
 *   Connect unary  the body is the bare message (no prefix); compression is
 *                  Content-Encoding; the status is the HTTP status with a JSON
 *                  error body; response trailers are "trailer-" headers. The
 *                  response goes out whole at the end: its headers depend on
 *                  the status.
 *   Connect stream gRPC's frames as envelopes; the status is an envelope
 *                  flagged 0x02 holding {"error":...,"metadata":...}.
 */
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "base/alloc.h"
#include "google/rpc/status.pb-c.h"
#include "pbjson/pbjson.h"
#include "rpc/rpc_int.h"

#define HDR(n, v)                                                                                  \
    {                                                                                              \
        n, sizeof(n) - 1, v, sizeof(v) - 1                                                         \
    }

/* Connect's compression: gzip, as connect-go and connect-es offer. */
#define CONNECT_ACCEPT_ENCODING "gzip"

bool rpc__web_header_reserved(const char *name, size_t len)
{
    return (len > 8 && strncasecmp(name, "connect-", 8) == 0) ||
           (len == 16 && strncasecmp(name, "content-encoding", 16) == 0) ||
           (len == 15 && strncasecmp(name, "accept-encoding", 15) == 0) ||
           (len == 6 && strncasecmp(name, "origin", 6) == 0);
}

int rpc__web_open(rpc_call *c, rpc_proto proto, bool json, const char *origin, size_t originlen,
                  const char *query, size_t querylen)
{
    c->proto = (int8_t)proto;
    c->json = json;
    c->credit_early = proto == RPC_PROTO_GRPC_WEB_TEXT || proto == RPC_PROTO_CONNECT;
    if (origin && !(c->origin = rpc__arena_strndup(&c->arena, origin, originlen)))
        return RPC_ENOMEM;
    const rpc_method_ops *ops = c->method->ops;
    unsigned shape = ops ? ops->flags & (RPC_CLIENT_STREAMING | RPC_SERVER_STREAMING) : 0;
    char msg[200];
    if ((proto == RPC_PROTO_GRPC_WEB || proto == RPC_PROTO_GRPC_WEB_TEXT) &&
        (shape & RPC_CLIENT_STREAMING)) {
        snprintf(msg, sizeof msg, "%s: gRPC-Web carries unary and server-streaming calls only",
                 c->method->path);
        rpc_call_finish(c, RPC_UNIMPLEMENTED, msg);
        return RPC_ECANCELLED;
    }
    if (proto == RPC_PROTO_CONNECT && shape) {
        snprintf(msg, sizeof msg,
                 "%s is a streaming method: use application/connect+proto or +json",
                 c->method->path);
        rpc_call_finish(c, RPC_UNIMPLEMENTED, msg);
        return RPC_ECANCELLED;
    }
    if (query) { /* a Connect GET */
        if (ops && !(ops->flags & RPC_NO_SIDE_EFFECTS)) {
            snprintf(msg, sizeof msg, "%s has side effects: call it with POST", c->method->path);
            rpc_call_finish(c, RPC_UNIMPLEMENTED, msg);
            return RPC_ECANCELLED;
        }
        rpc_connect_get q;
        const char *why = NULL;
        if (rpc__connect_get_parse(query, querylen, &q, &c->web_in, &why) != 0) {
            rpc_call_finish(c, RPC_INVALID_ARGUMENT, why);
            return RPC_ECANCELLED;
        }
        c->json = q.json;
        c->req_enc = q.compression;
    }
    return 0;
}

/* "grpc-status,grpc-message,..." and the custom response metadata keys (for
 * Connect unary its trailers too, as "trailer-" headers), for
 * Access-Control-Expose-Headers. In the arena; NULL on ENOMEM. */
static char *expose_list(rpc_call *c, size_t *len)
{
    rpc_buf b;
    rpc__buf_init(&b);
    static const char base[] = "grpc-status,grpc-message,grpc-status-details-bin";
    bool ok = rpc__buf_append(&b, base, sizeof base - 1) == 0;
    const rpc_buf *mds[2] = {&c->initial_md,
                             c->proto == RPC_PROTO_CONNECT ? &c->trailing_md : NULL};
    for (int k = 0; k < 2 && ok; k++) {
        size_t cnt = mds[k] ? rpc__call_md_count(mds[k]) : 0;
        for (size_t off = 0, i = 0; ok && i < cnt; i++) {
            uint32_t kl, vl;
            memcpy(&kl, mds[k]->data + off, 4);
            memcpy(&vl, mds[k]->data + off + 4 + kl, 4);
            ok = rpc__buf_append(&b, ",", 1) == 0 &&
                 (k == 0 || rpc__buf_append(&b, "trailer-", 8) == 0) &&
                 rpc__buf_append(&b, mds[k]->data + off + 4, kl) == 0;
            off += 8 + (size_t)kl + vl;
        }
    }
    char *s = ok ? rpc__arena_strndup(&c->arena, (const char *)b.data, b.len) : NULL;
    *len = b.len;
    rpc__buf_dispose(&b);
    return s;
}

size_t rpc__web_base_headers(rpc_call *c, http2_header *h, const char *status)
{
    static const char *const ctypes[2][5] = {
        {"application/grpc", "application/grpc-web+proto", "application/grpc-web-text+proto",
         "application/proto", "application/connect+proto"},
        {"application/grpc", "application/grpc-web+proto", "application/grpc-web-text+proto",
         "application/json", "application/connect+json"},
    };
    size_t n = 0;
    h[n++] = (http2_header){":status", 7, status, strlen(status)};
    const char *ct = ctypes[c->json][c->proto];
    if (status[0] != '2')
        ct = "application/json"; /* Connect unary's error body */
    h[n++] = (http2_header){"content-type", 12, ct, strlen(ct)};
    const char *enc = rpc__encoding_name(c->resp_enc);
    if (c->proto == RPC_PROTO_CONNECT) {
        h[n++] = (http2_header)HDR("accept-encoding", CONNECT_ACCEPT_ENCODING);
        if (c->web_compressed)
            h[n++] = (http2_header){"content-encoding", 16, enc, strlen(enc)};
    } else if (c->proto == RPC_PROTO_CONNECT_STREAM) {
        h[n++] = (http2_header)HDR("connect-accept-encoding", CONNECT_ACCEPT_ENCODING);
        if (c->resp_enc != RPC_ENC_IDENTITY)
            h[n++] = (http2_header){"connect-content-encoding", 24, enc, strlen(enc)};
    } else {
        h[n++] = (http2_header)HDR("grpc-accept-encoding", RPC_ACCEPT_ENCODING);
        if (c->resp_enc != RPC_ENC_IDENTITY)
            h[n++] = (http2_header){"grpc-encoding", 13, enc, strlen(enc)};
    }
    size_t el;
    char *expose = c->origin ? expose_list(c, &el) : NULL;
    if (expose) {
        h[n++] = (http2_header){"access-control-allow-origin", 27, c->origin, strlen(c->origin)};
        h[n++] = (http2_header)HDR("vary", "Origin");
        h[n++] = (http2_header){"access-control-expose-headers", 29, expose, el};
    }
    return n;
}

int rpc__web_write(rpc_call *c, const uint8_t *frame, size_t flen)
{
    if (c->proto == RPC_PROTO_CONNECT) { /* held for the end: the bare message */
        c->web_out.len = 0;
        c->web_compressed = frame[0] & 1;
        return rpc__buf_append(&c->web_out, frame + RPC_FRAME_HEADER, flen - RPC_FRAME_HEADER) == 0
                   ? 0
                   : UV_ENOMEM;
    }
    if (c->proto != RPC_PROTO_GRPC_WEB_TEXT)
        return http2_stream_write(c->stream, frame, flen);
    /* Each piece base64 on its own, padded: the spec lets a reader take them
     * as they come. */
    char stackbuf[1024];
    size_t el = rpc__base64_encoded_len(flen);
    char *text = el <= sizeof stackbuf ? stackbuf : oms_malloc(el);
    if (!text)
        return UV_ENOMEM;
    rpc__base64_encode(frame, flen, text);
    int rv = http2_stream_write(c->stream, (const uint8_t *)text, el);
    if (text != stackbuf)
        oms_free(text);
    return rv;
}

/* --- status ------------------------------------------------------------------- */

/* Connect metadata as JSON: {"key":["v1","v2"],...} from headers h[0..n). */
static int metadata_json(rpc_buf *b, const http2_header *h, size_t n)
{
    if (rpc__buf_append(b, "{", 1) != 0)
        return RPC_ENOMEM;
    bool first = true;
    for (size_t i = 0; i < n; i++) {
        bool seen = false;
        for (size_t j = 0; j < i && !seen; j++)
            seen = h[j].namelen == h[i].namelen && memcmp(h[j].name, h[i].name, h[i].namelen) == 0;
        if (seen)
            continue;
        if ((!first && rpc__buf_append(b, ",", 1) != 0) ||
            rpc__json_string(b, h[i].name, h[i].namelen) != 0 || rpc__buf_append(b, ":[", 2) != 0)
            return RPC_ENOMEM;
        first = false;
        for (size_t j = i, k = 0; j < n; j++) {
            if (h[j].namelen != h[i].namelen || memcmp(h[j].name, h[i].name, h[i].namelen) != 0)
                continue;
            if ((k++ && rpc__buf_append(b, ",", 1) != 0) ||
                rpc__json_string(b, h[j].value, h[j].valuelen) != 0)
                return RPC_ENOMEM;
        }
        if (rpc__buf_append(b, "]", 1) != 0)
            return RPC_ENOMEM;
    }
    return rpc__buf_append(b, "}", 1) == 0 ? 0 : RPC_ENOMEM;
}

#define DETAILS_KEY "grpc-status-details-bin"

/* The headers of md (packed) as an array in the arena; NULL on ENOMEM.
 * Connect carries rich error details in its error JSON, not as metadata. */
static http2_header *md_headers(rpc_call *c, const rpc_buf *md, size_t *n)
{
    *n = 0;
    http2_header *h = rpc__arena_alloc(&c->arena, (rpc__call_md_count(md) + 1) * sizeof *h);
    if (!h || !rpc__call_md_headers(c, md, h, n))
        return NULL;
    if (c->proto >= RPC_PROTO_CONNECT)
        for (size_t i = 0; i < *n; i++)
            if (h[i].namelen == sizeof DETAILS_KEY - 1 &&
                memcmp(h[i].name, DETAILS_KEY, h[i].namelen) == 0)
                h[i--] = h[--*n];
    return h;
}

/* Appends ,"details":[{"type":"google.rpc.BadRequest","value":"<base64>"}]
 * from the google.rpc.Status rpc_call_finish_details() put in the trailing
 * metadata (Connect's form of the same details); nothing without one. */
static int details_json(const rpc_call *c, rpc_buf *b)
{
    const rpc_buf *md = &c->trailing_md;
    for (size_t off = 0; off < md->len;) {
        uint32_t kl, vl;
        memcpy(&kl, md->data + off, 4);
        memcpy(&vl, md->data + off + 4 + kl, 4);
        const uint8_t *key = md->data + off + 4, *v = md->data + off + 8 + kl;
        off += 8 + (size_t)kl + vl;
        if (kl != sizeof DETAILS_KEY - 1 || memcmp(key, DETAILS_KEY, kl) != 0)
            continue;
        Google__Rpc__Status *st = google__rpc__status__unpack(NULL, vl, v);
        if (!st)
            return RPC_ENOMEM; /* packed by us: only ENOMEM fails */
        int rv = rpc__buf_append(b, ",\"details\":[", 12);
        for (size_t i = 0; rv == 0 && i < st->n_details; i++) {
            const Google__Protobuf__Any *a = st->details[i];
            const char *type = strrchr(a->type_url, '/');
            type = type ? type + 1 : a->type_url;
            char *enc = oms_malloc(rpc__base64_encoded_len(a->value.len) + 1);
            size_t el = enc ? rpc__base64_encode(a->value.data, a->value.len, enc) : 0;
            rv = enc && (!i || rpc__buf_append(b, ",", 1) == 0) &&
                         rpc__buf_append(b, "{\"type\":", 8) == 0 &&
                         rpc__json_string(b, type, strlen(type)) == 0 &&
                         rpc__buf_append(b, ",\"value\":", 9) == 0 &&
                         rpc__json_string(b, enc, el) == 0 && rpc__buf_append(b, "}", 1) == 0
                     ? 0
                     : RPC_ENOMEM;
            oms_free(enc);
        }
        if (rv == 0)
            rv = rpc__buf_append(b, "]", 1);
        google__rpc__status__free_unpacked(st, NULL);
        return rv;
    }
    return 0;
}

/* The Connect error object, with details when the call has some. */
static int error_json(const rpc_call *c, rpc_buf *b, rpc_status code, const char *message)
{
    if (rpc__connect_error_json(b, code, message) != 0)
        return RPC_ENOMEM;
    b->len--; /* reopen the object */
    if (details_json(c, b) != 0 || rpc__buf_append(b, "}", 1) != 0)
        return RPC_ENOMEM;
    return 0;
}

/* The status body of gRPC-Web and Connect streams, into b: the trailer
 * frame, or the end-of-stream envelope. */
static int status_frame(rpc_call *c, rpc_status code, const char *message, rpc_buf *b)
{
    size_t nt;
    http2_header *t = md_headers(c, &c->trailing_md, &nt);
    if (!t)
        return RPC_ENOMEM;
    if (c->proto == RPC_PROTO_CONNECT_STREAM) {
        uint8_t prefix[RPC_FRAME_HEADER] = {0};
        if (rpc__buf_append(b, prefix, sizeof prefix) != 0 || rpc__buf_append(b, "{", 1) != 0 ||
            (code != RPC_OK &&
             (rpc__buf_append(b, "\"error\":", 8) != 0 || error_json(c, b, code, message) != 0 ||
              rpc__buf_append(b, ",", 1) != 0)) ||
            rpc__buf_append(b, "\"metadata\":", 11) != 0 || metadata_json(b, t, nt) != 0 ||
            rpc__buf_append(b, "}", 1) != 0)
            return RPC_ENOMEM;
        rpc__frame_header(b->data, false, (uint32_t)(b->len - RPC_FRAME_HEADER));
        b->data[0] = 0x02;
        return 0;
    }
    char codebuf[12];
    snprintf(codebuf, sizeof codebuf, "%d", (int)code);
    char *enc = message && *message ? rpc__percent_encode(message, strlen(message)) : NULL;
    http2_header *all = rpc__arena_alloc(&c->arena, (nt + 2) * sizeof *all);
    int rv = RPC_ENOMEM;
    if (all && (enc || !message || !*message)) {
        size_t n = 0;
        all[n++] = (http2_header){"grpc-status", 11, codebuf, strlen(codebuf)};
        if (enc)
            all[n++] = (http2_header){"grpc-message", 12, enc, strlen(enc)};
        memcpy(all + n, t, nt * sizeof *t);
        rv = rpc__grpcweb_trailer_frame(b, all, n + nt);
    }
    oms_free(enc);
    return rv;
}

/* Connect unary: the whole response, now that the status is known. */
static void connect_unary_end(rpc_call *c, rpc_status code, const char *message)
{
    char status[8];
    snprintf(status, sizeof status, "%d", rpc__connect_http_status(code));
    rpc_buf err;
    rpc__buf_init(&err);
    const rpc_buf *body = &c->web_out;
    if (code != RPC_OK) {
        c->web_compressed = false;
        if (error_json(c, &err, code, message) != 0)
            goto fail;
        body = &err;
    } else if (c->json && !c->web_out.len && rpc__buf_append(&c->web_out, "{}", 2) != 0) {
        goto fail; /* a handler that sent nothing: the empty message */
    }
    size_t ni, nt;
    http2_header *mi = md_headers(c, &c->initial_md, &ni);
    http2_header *mt = md_headers(c, &c->trailing_md, &nt);
    http2_header *h = rpc__arena_alloc(&c->arena, (RPC_WEB_HEADERS_MAX + 1 + ni + nt) * sizeof *h);
    if (!mi || !mt || !h)
        goto fail;
    size_t n = rpc__web_base_headers(c, h, status);
    char len[24];
    snprintf(len, sizeof len, "%zu", body->len);
    h[n++] = (http2_header){"content-length", 14, len, strlen(len)};
    memcpy(h + n, mi, ni * sizeof *h);
    n += ni;
    for (size_t i = 0; i < nt; i++) {
        char *k = rpc__arena_alloc(&c->arena, 8 + mt[i].namelen + 1);
        if (!k)
            goto fail;
        memcpy(k, "trailer-", 8);
        memcpy(k + 8, mt[i].name, mt[i].namelen);
        h[n++] = (http2_header){k, 8 + mt[i].namelen, mt[i].value, mt[i].valuelen};
    }
    c->headers_sent = true;
    if (http2_stream_respond(c->stream, h, n) == 0) {
        if (body->len)
            http2_stream_write(c->stream, body->data, body->len);
        http2_stream_end(c->stream, NULL, 0);
    }
    rpc__buf_dispose(&err);
    return;
fail:
    rpc__buf_dispose(&err);
    http2_stream_reset(c->stream, HTTP2_INTERNAL_ERROR);
}

void rpc__web_status(rpc_call *c, rpc_status code, const char *message)
{
    if (c->proto == RPC_PROTO_CONNECT) {
        connect_unary_end(c, code, message);
        return;
    }
    rpc_buf b;
    rpc__buf_init(&b);
    int rv = rpc__call_send_headers(c);
    if (rv == 0)
        rv = status_frame(c, code, message, &b);
    if (rv == 0 && (rv = rpc__web_write(c, b.data, b.len)) == HTTP2_AGAIN)
        rv = 0; /* queued all the same */
    if (rv != 0) {
        rpc__buf_dispose(&b);
        http2_stream_reset(c->stream, HTTP2_INTERNAL_ERROR);
        return;
    }
    rpc__buf_dispose(&b);
    http2_stream_end(c->stream, NULL, 0);
}

/* --- requests ------------------------------------------------------------------ */

void rpc__web_on_data(rpc_call *c, const uint8_t *p, size_t n)
{
    /* Both forms hold a single request (or decode as they go): their bytes
     * are credited at once, the limits below bound what is kept. */
    http2_stream_consume(c->stream, n);
    if (c->done)
        return;
    if (c->proto == RPC_PROTO_CONNECT) {
        if (c->web_in.len + n > rpc__server_config(c->srv)->max_recv_msg) {
            char m[96];
            snprintf(m, sizeof m, "request message larger than max (%zu bytes)",
                     rpc__server_config(c->srv)->max_recv_msg);
            rpc_call_finish(c, RPC_RESOURCE_EXHAUSTED, m);
        } else if (rpc__buf_append(&c->web_in, p, n) != 0) {
            rpc_call_finish(c, RPC_RESOURCE_EXHAUSTED, "out of memory");
        }
        return;
    }
    rpc_buf plain;
    rpc__buf_init(&plain);
    int rv = rpc__b64_stream_feed(&c->b64, (const char *)p, n, &plain);
    if (rv == 0)
        rpc__call_feed(c, plain.data, plain.len);
    else
        rpc_call_finish(c, rv == -2 ? RPC_RESOURCE_EXHAUSTED : RPC_INVALID_ARGUMENT,
                        rv == -2 ? "out of memory" : "grpc-web-text request body is not base64");
    rpc__buf_dispose(&plain);
}

void rpc__web_on_end(rpc_call *c)
{
    if (c->done)
        return;
    rpc_buf tail;
    rpc__buf_init(&tail);
    int rv = 0;
    if (c->proto == RPC_PROTO_CONNECT) {
        /* The body is one message: framed as gRPC's, it takes gRPC's path
         * (decompression, limits, decoding). */
        uint8_t prefix[RPC_FRAME_HEADER];
        rpc__frame_header(prefix, c->req_enc != RPC_ENC_IDENTITY, (uint32_t)c->web_in.len);
        if (rpc__buf_append(&tail, prefix, sizeof prefix) != 0 ||
            rpc__buf_append(&tail, c->web_in.data, c->web_in.len) != 0)
            rv = -2;
        rpc__buf_dispose(&c->web_in);
    } else {
        rv = rpc__b64_stream_end(&c->b64, &tail);
    }
    if (rv == 0) {
        if (tail.len)
            rpc__call_feed(c, tail.data, tail.len);
        rpc__buf_dispose(&tail);
        rpc__call_end_input(c);
        return;
    }
    rpc__buf_dispose(&tail);
    rpc_call_finish(c, rv == -2 ? RPC_RESOURCE_EXHAUSTED : RPC_INVALID_ARGUMENT,
                    rv == -2 ? "out of memory" : "grpc-web-text request body is not base64");
}

ProtobufCMessage *rpc__web_decode_json(rpc_call *c, const uint8_t *p, size_t len,
                                       ProtobufCAllocator *alloc, bool *nomem)
{
    char err[200];
    ProtobufCMessage *m =
        pbjson_decode(c->method->input, (const char *)p, len, alloc, 0, err, sizeof err);
    if (!m) {
        *nomem = strcmp(err, "out of memory") == 0;
        if (!*nomem)
            rpc_call_finish(c, RPC_INVALID_ARGUMENT, err);
    }
    return m;
}

char *rpc__web_encode_json(rpc_call *c, const ProtobufCMessage *m, size_t *len)
{
    char err[160];
    char *s = pbjson_encode(m, 0, len, err, sizeof err);
    if (!s) {
        char msg[200];
        snprintf(msg, sizeof msg, "cannot encode the response as JSON: %s", err);
        rpc_call_finish(c, RPC_INTERNAL, msg);
    }
    return s;
}
