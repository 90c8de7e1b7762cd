/* call.c - one server call: deframing and decoding requests, the pull-model
 * send path, status and metadata, deadlines, cancellation and lifetime. */
#include <stdlib.h>
#include <string.h>

#include "base/alloc.h"
#include "base/log.h"
#include "rpc/rpc_int.h"

/* Messages up to this size are packed on the stack. */
#define STACK_PACK 4096

static void *arena_alloc(void *ad, size_t n)
{
    return rpc__arena_alloc(ad, n);
}

static void arena_free(void *ad, void *p)
{
    (void)ad;
    (void)p;
}

/* protobuf-c's unpack returns NULL both for bytes that are not a message and
 * when an allocation fails: requests are decoded through this wrapper, which
 * notes a failed allocation, so that the client is told which it was. */
typedef struct decode_alloc {
    ProtobufCAllocator *inner;
    bool failed;
} decode_alloc;

static void *decode_alloc_fn(void *ud, size_t n)
{
    decode_alloc *d = ud;
    void *p = d->inner->alloc(d->inner->allocator_data, n);
    if (!p)
        d->failed = true;
    return p;
}

static void decode_free_fn(void *ud, void *p)
{
    decode_alloc *d = ud;
    d->inner->free(d->inner->allocator_data, p);
}

/* Calls (1.7 KiB with the inline arena, past glibc's tcache) come from a
 * free list per thread (base/alloc.h). */
static _Thread_local oms_freelist call_fl = OMS_FREELIST_INIT(sizeof(rpc_call));

/* Sets up a call for method m (NULL: the caller fills it in before anything
 * reads it). */
static rpc_call *call_new(rpc_server *srv, http2_stream *s, const rpc_method *m)
{
    rpc_call *c = oms_freelist_get(&call_fl);
    if (!c)
        return NULL;
    memset(c, 0, offsetof(rpc_call, inline_arena));
    c->srv = srv;
    c->stream = s;
    c->loop = http2_stream_loop(s);
    c->method = m;
    c->refs = 1; /* the stream's */
    rpc__arena_init(&c->arena, c->inline_arena, sizeof c->inline_arena);
    c->allocator.alloc = arena_alloc;
    c->allocator.free = arena_free;
    c->allocator.allocator_data = &c->arena;
    c->req_enc = RPC_ENC_IDENTITY;
    c->resp_enc = RPC_ENC_IDENTITY;
    c->end_code = RPC_UNKNOWN;
    const char *id = http2_stream_tls_identity(s);
    if (id && !(c->tls_identity = rpc__arena_strndup(&c->arena, id, strlen(id))))
        goto fail;
    c->ics = rpc__server_interceptors(srv, &c->nics);
    if (c->nics) {
        /* Only servers with interceptors pay for this: the clock, a copy of
         * the peer for on_end, a slot per interceptor (all in the arena). */
        const char *peer = http2_stream_peer(s);
        peer = peer ? peer : "?";
        c->ic_state = rpc__arena_alloc(&c->arena, c->nics * sizeof *c->ic_state);
        c->peer = rpc__arena_strndup(&c->arena, peer, strlen(peer));
        if (!c->ic_state || !c->peer)
            goto fail;
        c->gate = true;
        c->start_ns = uv_hrtime();
    } else {
        c->ics = NULL;
        c->started = true;
    }
    rpc__deframer_init(&c->deframer, rpc__server_config(srv)->max_recv_msg);
    rpc__buf_init(&c->inbox);
    rpc__buf_init(&c->scratch);
    rpc__buf_init(&c->initial_md);
    rpc__buf_init(&c->trailing_md);
    return c;
fail:
    rpc__arena_dispose(&c->arena);
    oms_freelist_put(&call_fl, c);
    return NULL;
}

static void call_attach(rpc_call *c)
{
    http2_stream_set_data(c->stream, c);
    rpc__server_call_started(c->srv);
}

rpc_call *rpc__call_new(rpc_server *srv, http2_stream *s, const rpc_method *m)
{
    rpc_call *c = call_new(srv, s, m);
    if (c)
        call_attach(c);
    return c;
}

rpc_call *rpc__call_new_unknown(rpc_server *srv, http2_stream *s, const char *path, size_t len)
{
    rpc_call *c = call_new(srv, s, NULL);
    if (!c)
        return NULL;
    rpc_method *m = rpc__arena_alloc(&c->arena, sizeof *m);
    char *p = m ? rpc__arena_strndup(&c->arena, path, len) : NULL;
    if (!p) {
        rpc__deframer_dispose(&c->deframer);
        rpc__arena_dispose(&c->arena);
        oms_freelist_put(&call_fl, c);
        return NULL;
    }
    m->path = p;
    m->pathlen = len;
    /* "/pkg.Service/Method"; whatever is missing stays "". */
    const char *slash = len > 1 && p[0] == '/' ? memchr(p + 1, '/', len - 1) : NULL;
    m->service = slash ? rpc__arena_strndup(&c->arena, p + 1, (size_t)(slash - p - 1)) : "";
    m->name = slash ? slash + 1 : "";
    if (!m->service) {
        rpc__deframer_dispose(&c->deframer);
        rpc__arena_dispose(&c->arena);
        oms_freelist_put(&call_fl, c);
        return NULL;
    }
    c->method = m;
    call_attach(c);
    return c;
}

static void call_free(rpc_call *c)
{
    if (c->started && c->method->ops && c->method->ops->on_free)
        c->method->ops->on_free(c);
    rpc__deframer_dispose(&c->deframer);
    rpc__buf_dispose(&c->inbox);
    rpc__buf_dispose(&c->scratch);
    rpc__buf_dispose(&c->initial_md);
    rpc__buf_dispose(&c->trailing_md);
    rpc__buf_dispose(&c->web_in);
    rpc__buf_dispose(&c->web_out);
    rpc__arena_dispose(&c->arena);
    rpc__server_call_freed(c->srv);
    oms_freelist_put(&call_fl, c);
}

void rpc_call_ref(rpc_call *c)
{
    c->refs++;
}

void rpc_call_unref(rpc_call *c)
{
    if (--c->refs == 0)
        call_free(c);
}

static void on_timer_closed(uv_handle_t *h)
{
    rpc_call_unref(h->data);
}

/* The call is over for the handler: stop its timers. code and message are
 * its final status, for the interceptors' on_end. */
static void end_call(rpc_call *c, rpc_status code, const char *message)
{
    c->done = true;
    c->end_code = code;
    if (c->stream && c->inbox.len) {
        /* Input held back (paused, blocked, or interceptors deciding) will
         * never be read: give the peer its flow-control credit back now. */
        http2_stream_consume(c->stream, c->inbox.len);
        c->inbox.len = 0;
    }
    if (c->ics) { /* copied: on_end may come after the caller's buffer is gone */
        c->end_message = message ? rpc__arena_strndup(&c->arena, message, strlen(message)) : NULL;
        c->end_ns = uv_hrtime();
    }
    if (c->deadline_on) {
        c->deadline_on = false;
        uv_close((uv_handle_t *)&c->deadline, on_timer_closed);
    }
    if (c->timer_on) {
        c->timer_on = false;
        uv_close((uv_handle_t *)&c->timer, on_timer_closed);
    }
}

/* --- metadata ------------------------------------------------------------ */

static int pack_md(rpc_buf *b, const char *key, const uint8_t *v, size_t len)
{
    uint32_t kl = (uint32_t)strlen(key), vl = (uint32_t)len;
    if (rpc__buf_append(b, &kl, 4) || rpc__buf_append(b, key, kl) || rpc__buf_append(b, &vl, 4) ||
        rpc__buf_append(b, v, len))
        return RPC_ENOMEM;
    return 0;
}

static int add_md(rpc_call *c, rpc_buf *b, const char *key, const uint8_t *v, size_t len)
{
    if (c->done)
        return RPC_ECANCELLED;
    size_t kl = strlen(key);
    if (!rpc__md_key_valid(key, kl) || rpc__md_key_reserved(key, kl))
        return RPC_EINVAL;
    if (!rpc__md_key_is_bin(key, kl) && !rpc__md_value_valid(v, len))
        return RPC_EINVAL;
    return pack_md(b, key, v, len);
}

int rpc_call_add_initial_md(rpc_call *c, const char *key, const uint8_t *v, size_t len)
{
    if (c->headers_sent)
        return RPC_EINVAL;
    return add_md(c, &c->initial_md, key, v, len);
}

int rpc_call_add_trailing_md(rpc_call *c, const char *key, const uint8_t *v, size_t len)
{
    return add_md(c, &c->trailing_md, key, v, len);
}

/* Appends the packed metadata in b to h[] (from *n), base64-encoding -bin
 * values into the arena. Returns false on ENOMEM. */
bool rpc__call_md_headers(rpc_call *c, const rpc_buf *b, http2_header *h, size_t *n)
{
    for (size_t off = 0; off < b->len;) {
        uint32_t kl, vl;
        memcpy(&kl, b->data + off, 4);
        const char *key = (const char *)b->data + off + 4;
        memcpy(&vl, b->data + off + 4 + kl, 4);
        const uint8_t *v = b->data + off + 8 + kl;
        off += 8 + (size_t)kl + vl;
        http2_header *x = &h[(*n)++];
        x->name = key;
        x->namelen = kl;
        if (rpc__md_key_is_bin(key, kl)) {
            char *enc = rpc__arena_alloc(&c->arena, rpc__base64_encoded_len(vl) + 1);
            if (!enc)
                return false;
            /* PROTOCOL-HTTP2.md: peers accept both, and should emit values
             * without padding. */
            size_t el = rpc__base64_encode(v, vl, enc);
            while (el > 0 && enc[el - 1] == '=')
                el--;
            x->value = enc;
            x->valuelen = el;
        } else {
            x->value = (const char *)v;
            x->valuelen = vl;
        }
    }
    return true;
}

size_t rpc__call_md_count(const rpc_buf *b)
{
    size_t n = 0;
    for (size_t off = 0; off < b->len; n++) {
        uint32_t kl, vl;
        memcpy(&kl, b->data + off, 4);
        memcpy(&vl, b->data + off + 4 + kl, 4);
        off += 8 + (size_t)kl + vl;
    }
    return n;
}

/* --- responses ----------------------------------------------------------- */

#define HDR(n, v)                                                                                  \
    {                                                                                              \
        n, sizeof(n) - 1, v, sizeof(v) - 1                                                         \
    }

/* :status and the rest before the metadata: at most RPC_WEB_HEADERS_MAX. */
static size_t base_headers(rpc_call *c, http2_header *h)
{
    if (c->proto != RPC_PROTO_GRPC)
        return rpc__web_base_headers(c, h, "200");
    size_t n = 0;
    h[n++] = (http2_header)HDR(":status", "200");
    h[n++] = (http2_header)HDR("content-type", "application/grpc");
    h[n++] = (http2_header)HDR("grpc-accept-encoding", RPC_ACCEPT_ENCODING);
    if (c->resp_enc != RPC_ENC_IDENTITY) {
        const char *e = rpc__encoding_name(c->resp_enc);
        h[n++] = (http2_header){"grpc-encoding", 13, e, strlen(e)};
    }
    return n;
}

int rpc__call_send_headers(rpc_call *c)
{
    /* Connect unary's headers depend on the status: they go with it. */
    if (c->headers_sent || c->proto == RPC_PROTO_CONNECT)
        return 0;
    c->headers_sent = true;
    size_t nmd = rpc__call_md_count(&c->initial_md);
    http2_header stackh[16];
    size_t cap = RPC_WEB_HEADERS_MAX + nmd;
    http2_header *h = cap <= 16 ? stackh : rpc__arena_alloc(&c->arena, cap * sizeof *h);
    if (!h)
        return RPC_ENOMEM;
    size_t n = base_headers(c, h);
    int rv = rpc__call_md_headers(c, &c->initial_md, h, &n) ? http2_stream_respond(c->stream, h, n)
                                                            : UV_ENOMEM;
    if (rv == UV_ENOMEM) {
        /* Nothing went out: the status that follows must carry the headers. */
        c->headers_sent = false;
        return RPC_ENOMEM;
    }
    return rv == 0 ? 0 : RPC_ECANCELLED;
}

/* "%d" of a status code into buf[12]; without printf for the usual codes
 * (every call ends here). */
static size_t format_code(rpc_status code, char *buf)
{
    int v = (int)code;
    if (v >= 0 && v < 100) {
        size_t n = 0;
        if (v >= 10)
            buf[n++] = (char)('0' + v / 10);
        buf[n++] = (char)('0' + v % 10);
        buf[n] = '\0';
        return n;
    }
    return (size_t)snprintf(buf, 12, "%d", v);
}

/* Writes status trailers (or a Trailers-Only response). */
static void send_status(rpc_call *c, rpc_status code, const char *message)
{
    if (c->proto != RPC_PROTO_GRPC) {
        rpc__web_status(c, code, message);
        return;
    }
    char codebuf[12];
    size_t cl = format_code(code, codebuf);
    char *enc = message && *message ? rpc__percent_encode(message, strlen(message)) : NULL;
    size_t nmd = rpc__call_md_count(&c->trailing_md) +
                 (c->headers_sent ? 0 : rpc__call_md_count(&c->initial_md));
    http2_header stackh[24];
    size_t cap = RPC_WEB_HEADERS_MAX + 2 + nmd;
    http2_header *h = cap <= 24 ? stackh : rpc__arena_alloc(&c->arena, cap * sizeof *h);
    if (!h) {
        oms_free(enc);
        http2_stream_reset(c->stream, HTTP2_INTERNAL_ERROR);
        return;
    }
    size_t n = 0;
    bool trailers_only = !c->headers_sent;
    if (trailers_only) {
        n = base_headers(c, h);
        if (!rpc__call_md_headers(c, &c->initial_md, h, &n)) {
            oms_free(enc);
            http2_stream_reset(c->stream, HTTP2_INTERNAL_ERROR);
            return;
        }
        c->headers_sent = true;
    }
    h[n++] = (http2_header){"grpc-status", 11, codebuf, cl};
    if (enc)
        h[n++] = (http2_header){"grpc-message", 12, enc, strlen(enc)};
    if (!rpc__call_md_headers(c, &c->trailing_md, h, &n)) {
        oms_free(enc);
        http2_stream_reset(c->stream, HTTP2_INTERNAL_ERROR);
        return;
    }
    http2_stream_end(c->stream, h, n);
    oms_free(enc);
}

/* Ends the call with a status, without telling the interceptors yet. */
static void finish_status(rpc_call *c, rpc_status code, const char *message)
{
    end_call(c, code, message);
    if (c->stream)
        send_status(c, code, message);
    if (code != RPC_OK)
        OMS_DEBUG("call %s from %s: %s%s%s", c->method->path, rpc_call_peer(c),
                  rpc__status_name(code), message ? ": " : "", message ? message : "");
}

void rpc_call_finish(rpc_call *c, rpc_status code, const char *message)
{
    if (c->done)
        return;
    finish_status(c, code, message);
    if (c->ics)
        rpc__call_ic_end(c);
}

void rpc_call_finish_details(rpc_call *c, rpc_status code, const char *message,
                             const ProtobufCMessage *const *details, size_t n)
{
    if (c->done)
        return;
    uint8_t *bin;
    size_t len;
    /* grpc-* keys are refused from handlers (add_md): this one is ours. */
    if (rpc__status_details_pack(&c->arena, code, message, details, n, &bin, &len) != 0 ||
        pack_md(&c->trailing_md, "grpc-status-details-bin", bin, len) != 0)
        OMS_WARN("call %s: cannot attach status details: out of memory", c->method->path);
    rpc_call_finish(c, code, message);
}

void rpc__respond_error(http2_stream *s, rpc_status code, const char *message)
{
    char codebuf[12];
    size_t cl = format_code(code, codebuf);
    char *enc = message ? rpc__percent_encode(message, strlen(message)) : NULL;
    http2_header h[] = {
        HDR(":status", "200"),
        HDR("content-type", "application/grpc"),
        HDR("grpc-accept-encoding", RPC_ACCEPT_ENCODING),
        {"grpc-status", 11, codebuf, cl},
        {"grpc-message", 12, enc ? enc : "", enc ? strlen(enc) : 0},
    };
    http2_stream_end(s, h, enc ? 5 : 4);
    oms_free(enc);
}

/* Queues one whole gRPC message (prefix included) on c's stream. */
static int queue_frame(rpc_call *c, const uint8_t *frame, size_t flen)
{
    int rv = c->proto == RPC_PROTO_GRPC ? http2_stream_write(c->stream, frame, flen)
                                        : rpc__web_write(c, frame, flen);
    if (rv >= 0 || rv == HTTP2_AGAIN) {
        c->msgs_out++;
        c->bytes_out += flen;
    }
    if (rv == HTTP2_AGAIN) {
        c->blocked = true;
        RPC_ASSERT_SEND_OK(c);
        return RPC_AGAIN;
    }
    if (rv < 0) {
        rpc_call_finish(c, RPC_INTERNAL, "cannot queue response");
        return RPC_ECANCELLED;
    }
    return 0;
}

int rpc_call_send_headers(rpc_call *c)
{
    if (c->done || !c->stream)
        return RPC_ECANCELLED;
    int rv = rpc__call_send_headers(c);
    if (rv != 0)
        rpc_call_finish(c, RPC_INTERNAL, "cannot send response headers");
    return rv;
}

int rpc_call_send_ex(rpc_call *c, const ProtobufCMessage *m, bool compress)
{
    if (c->done || !c->stream)
        return RPC_ECANCELLED;
    int rv = rpc__call_send_headers(c);
    if (rv != 0) {
        rpc_call_finish(c, RPC_INTERNAL, "cannot send response headers");
        return rv;
    }
    char *json = NULL;
    size_t size;
    if (c->json && !(json = rpc__web_encode_json(c, m, &size)))
        return RPC_ECANCELLED;
    if (!json)
        size = protobuf_c_message_get_packed_size(m);
    if (size > rpc__server_config(c->srv)->max_send_msg) {
        oms_free(json);
        rpc_call_finish(c, RPC_RESOURCE_EXHAUSTED, "response message larger than max send size");
        return RPC_ETOOBIG;
    }
    uint8_t stackbuf[STACK_PACK];
    uint8_t *frame = stackbuf;
    size_t flen = RPC_FRAME_HEADER + size;
    bool compressed = compress && c->resp_enc != RPC_ENC_IDENTITY;
    c->scratch.len = 0;
    if (flen > sizeof stackbuf) {
        if (rpc__buf_reserve(&c->scratch, flen) != 0) {
            oms_free(json);
            rpc_call_finish(c, RPC_RESOURCE_EXHAUSTED, "out of memory");
            return RPC_ENOMEM;
        }
        frame = c->scratch.data;
    }
    if (json) {
        memcpy(frame + RPC_FRAME_HEADER, json, size);
        oms_free(json);
    } else {
        protobuf_c_message_pack(m, frame + RPC_FRAME_HEADER);
    }
    rpc_buf zbuf;
    rpc__buf_init(&zbuf);
    if (compressed) {
        uint8_t hdr[RPC_FRAME_HEADER] = {0};
        if (rpc__buf_append(&zbuf, hdr, sizeof hdr) != 0 ||
            rpc__compress(c->resp_enc, frame + RPC_FRAME_HEADER, size, &zbuf) != 0) {
            rpc__buf_dispose(&zbuf);
            rpc_call_finish(c, RPC_INTERNAL, "compression failed");
            return RPC_ENOMEM;
        }
        frame = zbuf.data;
        size = zbuf.len - RPC_FRAME_HEADER;
        flen = zbuf.len;
    }
    rpc__frame_header(frame, compressed, (uint32_t)size);
    rv = queue_frame(c, frame, flen);
    rpc__buf_dispose(&zbuf);
    if (c->scratch.cap > 1u << 20) /* do not keep a huge buffer per call */
        rpc__buf_dispose(&c->scratch);
    return rv;
}

int rpc_call_send_frame(rpc_call *c, rpc_frame *f)
{
    if (c->done || !c->stream)
        return RPC_ECANCELLED;
    if (c->method->output && rpc__frame_desc(f) != c->method->output)
        return RPC_EINVAL;
    if (c->json) { /* JSON is made per call, from the message */
        size_t fl;
        const uint8_t *fb = rpc__frame_bytes(f, &fl);
        ProtobufCMessage *m =
            protobuf_c_message_unpack(rpc__frame_desc(f), rpc_system_allocator(),
                                      fl - RPC_FRAME_HEADER, fb + RPC_FRAME_HEADER);
        if (!m) {
            rpc_call_finish(c, RPC_RESOURCE_EXHAUSTED, "out of memory");
            return RPC_ENOMEM;
        }
        int rv = rpc_call_send_ex(c, m, c->compress);
        protobuf_c_message_free_unpacked(m, rpc_system_allocator());
        return rv;
    }
    int rv = rpc__call_send_headers(c);
    if (rv != 0) {
        rpc_call_finish(c, RPC_INTERNAL, "cannot send response headers");
        return rv;
    }
    size_t flen;
    const uint8_t *frame = rpc__frame_bytes(f, &flen);
    size_t size = flen - RPC_FRAME_HEADER;
    if (size > rpc__server_config(c->srv)->max_send_msg) {
        rpc_call_finish(c, RPC_RESOURCE_EXHAUSTED, "response message larger than max send size");
        return RPC_ETOOBIG;
    }
    if (!c->compress || c->resp_enc == RPC_ENC_IDENTITY)
        return queue_frame(c, frame, flen); /* the shared bytes, as they are */
    /* This call compresses: its own copy. */
    rpc_buf zbuf;
    rpc__buf_init(&zbuf);
    uint8_t hdr[RPC_FRAME_HEADER] = {0};
    if (rpc__buf_append(&zbuf, hdr, sizeof hdr) != 0 ||
        rpc__compress(c->resp_enc, frame + RPC_FRAME_HEADER, size, &zbuf) != 0) {
        rpc__buf_dispose(&zbuf);
        rpc_call_finish(c, RPC_INTERNAL, "compression failed");
        return RPC_ENOMEM;
    }
    rpc__frame_header(zbuf.data, true, (uint32_t)(zbuf.len - RPC_FRAME_HEADER));
    rv = queue_frame(c, zbuf.data, zbuf.len);
    rpc__buf_dispose(&zbuf);
    return rv;
}

int rpc_call_send(rpc_call *c, const ProtobufCMessage *m)
{
    return rpc_call_send_ex(c, m, c->compress);
}

void rpc_call_set_compress(rpc_call *c, bool on)
{
    c->compress = on;
}

/* --- requests ------------------------------------------------------------- */

/* Decodes one deframed message and hands it on. */
static void handle_message(rpc_call *c, const uint8_t *p, size_t len, bool compressed)
{
    const rpc_server_config *cfg = rpc__server_config(c->srv);
    rpc_buf plain;
    rpc__buf_init(&plain);
    if (compressed) {
        if (c->req_enc == RPC_ENC_IDENTITY) {
            rpc_call_finish(c, RPC_INTERNAL,
                            "compressed message without grpc-encoding on the request");
            return;
        }
        int rv = rpc__decompress(c->req_enc, p, len, cfg->max_recv_msg, &plain);
        if (rv != 0) {
            rpc__buf_dispose(&plain);
            rpc_call_finish(c, rv == -2 ? RPC_RESOURCE_EXHAUSTED : RPC_INTERNAL,
                            rv == -2 ? "decompressed message larger than max receive size"
                                     : "cannot decompress message");
            return;
        }
        p = plain.data;
        len = plain.len;
    }
    const rpc_method *m = c->method;
    bool streaming = m->ops->flags & RPC_CLIENT_STREAMING;
    if (!streaming && c->nreq > 0) {
        rpc__buf_dispose(&plain);
        rpc_call_finish(c, RPC_INTERNAL, "more than one request message for a unary request");
        return;
    }
    /* proto3 strings are UTF-8 without NUL: checked on the wire bytes, since
     * protobuf-c would cut a string at a NUL. Once here, for every method
     * (JSON's are checked by its parser). */
    if (m->check_strings && !c->json) {
        char why[160];
        int rv = rpc__check_strings(m->input, p, len, why, sizeof why);
        if (rv != 0) {
            rpc__buf_dispose(&plain);
            rpc_call_finish(c, RPC_INVALID_ARGUMENT,
                            rv == RPC_STRINGS_BAD ? why : "cannot decode request message");
            return;
        }
    }
    /* A single request lives as long as the call, so it is decoded into the
     * call's arena; streamed requests are freed after their callback. */
    decode_alloc da = {.inner = streaming ? rpc_system_allocator() : &c->allocator};
    ProtobufCAllocator alloc = {decode_alloc_fn, decode_free_fn, &da};
    bool nomem = false;
    ProtobufCMessage *req = c->json ? rpc__web_decode_json(c, p, len, &alloc, &nomem)
                                    : protobuf_c_message_unpack(m->input, &alloc, len, p);
    rpc__buf_dispose(&plain);
    if (!req && c->json && !nomem)
        return; /* finished, naming the field */
    if (!req) {
        if (da.failed || nomem)
            rpc_call_finish(c, RPC_RESOURCE_EXHAUSTED, "out of memory decoding the request");
        else
            rpc_call_finish(c, RPC_INVALID_ARGUMENT, "cannot decode request message");
        return;
    }
    c->nreq++;
    c->last_compressed = compressed;
    if (streaming) {
        m->ops->on_message(c, req);
        protobuf_c_message_free_unpacked(req, rpc_system_allocator());
    } else {
        c->req = req; /* delivered once the client half-closes */
    }
}

/* The client's side is over: unary requests are delivered now, streams get
 * on_half_close. */
static void handle_end(rpc_call *c)
{
    c->half_closed = true;
    if (rpc__deframer_partial(&c->deframer)) {
        rpc_call_finish(c, RPC_INTERNAL, "request stream ended inside a message");
        return;
    }
    const rpc_method_ops *ops = c->method->ops;
    if (ops->flags & RPC_CLIENT_STREAMING) {
        if (ops->on_half_close)
            ops->on_half_close(c);
        return;
    }
    if (!c->req) {
        rpc_call_finish(c, RPC_INTERNAL, "missing request message");
        return;
    }
    ops->on_message(c, c->req);
}

/* Deframes and delivers as much input as the handler may take now. Bytes that
 * must wait (sending is blocked, or the handler paused input) stay in the inbox, unconsumed, so the
 * peer's flow-control window closes behind them. */
static void process_input(rpc_call *c, const uint8_t *p, size_t n)
{
    rpc_call_ref(c);
    c->in_input = true;
    size_t taken = 0;
    while (n > 0 && !c->done && !c->blocked && !c->paused && !c->gate) {
        const uint8_t *msg;
        size_t len;
        bool compressed;
        size_t before = n;
        rpc_deframe_result r = rpc__deframer_next(&c->deframer, &p, &n, &msg, &len, &compressed);
        taken += before - n;
        if (r == RPC_DEFRAME_MORE)
            continue;
        if (r == RPC_DEFRAME_TOO_BIG) {
            char m[96];
            snprintf(m, sizeof m, "request message larger than max (%zu vs. %zu)", len,
                     rpc__server_config(c->srv)->max_recv_msg);
            rpc_call_finish(c, RPC_RESOURCE_EXHAUSTED, m);
            break;
        }
        if (r == RPC_DEFRAME_NOMEM) {
            rpc_call_finish(c, RPC_RESOURCE_EXHAUSTED, "out of memory");
            break;
        }
        if (r < 0) {
            rpc_call_finish(c, RPC_INTERNAL, "invalid message compression flag");
            break;
        }
        c->msgs_in++;
        c->bytes_in += RPC_FRAME_HEADER + len;
        handle_message(c, msg, len, compressed);
    }
    if (c->stream) {
        if (c->done) {
            taken += n; /* the call is over: drop the rest */
            n = 0;
        } else if (n > 0 && rpc__buf_append(&c->inbox, p, n) != 0) {
            rpc_call_finish(c, RPC_RESOURCE_EXHAUSTED, "out of memory");
        }
        if (!c->credit_early)
            http2_stream_consume(c->stream, taken);
    }
    c->in_input = false;
    rpc_call_unref(c);
}

/* Delivers held-back input, then the end of the request if it came. */
static void drain_inbox(rpc_call *c)
{
    if (c->in_input)
        return;
    rpc_call_ref(c);
    if (c->inbox.len && !c->blocked && !c->paused && !c->gate && !c->done) {
        rpc_buf held = c->inbox;
        rpc__buf_init(&c->inbox);
        process_input(c, held.data, held.len);
        /* process_input consumed what it took and re-queued the rest. */
        rpc__buf_dispose(&held);
    }
    if (c->end_seen && !c->half_closed && !c->inbox.len && !c->blocked && !c->paused && !c->gate &&
        !c->done)
        handle_end(c);
    rpc_call_unref(c);
}

void rpc__call_on_data(rpc_call *c, const uint8_t *p, size_t n)
{
    if (c->credit_early)
        rpc__web_on_data(c, p, n); /* transforms, then rpc__call_feed */
    else
        rpc__call_feed(c, p, n);
}

void rpc__call_feed(rpc_call *c, const uint8_t *p, size_t n)
{
    if (c->done) {
        if (!c->credit_early)
            http2_stream_consume(c->stream, n);
        return;
    }
    if (c->inbox.len || c->blocked || c->paused || c->gate) {
        if (rpc__buf_append(&c->inbox, p, n) != 0)
            rpc_call_finish(c, RPC_RESOURCE_EXHAUSTED, "out of memory");
        return;
    }
    process_input(c, p, n);
}

void rpc_call_pause_input(rpc_call *c)
{
    c->paused = true;
}

void rpc_call_resume_input(rpc_call *c)
{
    if (!c->paused)
        return;
    c->paused = false;
    /* Inside on_message (in_input) this returns at once and process_input's
     * loop goes on with the next message after the callback. */
    if (!c->done)
        drain_inbox(c);
}

void rpc__call_start_handler(rpc_call *c)
{
    c->gate = false;
    c->started = true;
    drain_inbox(c);
}

void rpc__call_on_end(rpc_call *c)
{
    if (c->credit_early)
        rpc__web_on_end(c); /* the last bytes, then rpc__call_end_input */
    else
        rpc__call_end_input(c);
}

void rpc__call_end_input(rpc_call *c)
{
    c->end_seen = true;
    drain_inbox(c);
}

void rpc__call_on_writable(rpc_call *c)
{
    if (!c->blocked)
        return;
    c->blocked = false;
    rpc_call_ref(c);
    const rpc_method_ops *ops = c->method->ops;
    if (!c->done && c->started && ops->on_ready)
        ops->on_ready(c);
    if (!c->blocked)
        drain_inbox(c);
    rpc_call_unref(c);
}

void rpc__call_on_close(rpc_call *c, uint32_t h2_error)
{
    c->stream = NULL;
    if (!c->done) {
        rpc_status code = rpc__status_from_h2(h2_error);
        char why[64];
        if (h2_error == HTTP2_NO_ERROR || h2_error == HTTP2_CANCEL) {
            code = RPC_CANCELLED;
            snprintf(why, sizeof why, "cancelled");
        } else {
            snprintf(why, sizeof why, "stream closed (HTTP/2 error %u)", h2_error);
        }
        end_call(c, code, why);
        if (c->started && c->method->ops->on_cancel)
            c->method->ops->on_cancel(c, code);
        if (c->ics)
            rpc__call_ic_end(c);
    }
    rpc_call_unref(c);
}

/* --- deadlines and timers ------------------------------------------------- */

static void on_deadline(uv_timer_t *t)
{
    rpc_call *c = t->data;
    if (c->done)
        return;
    rpc_call_ref(c);
    finish_status(c, RPC_DEADLINE_EXCEEDED, "deadline exceeded");
    if (c->started && c->method->ops->on_cancel)
        c->method->ops->on_cancel(c, RPC_DEADLINE_EXCEEDED);
    if (c->ics)
        rpc__call_ic_end(c);
    rpc_call_unref(c);
}

void rpc__call_set_deadline(rpc_call *c, uint64_t ms)
{
    if (c->done || !c->stream)
        return;
    uv_timer_init(http2_stream_loop(c->stream), &c->deadline);
    c->deadline.data = c;
    c->deadline_on = true;
    rpc_call_ref(c); /* dropped in on_timer_closed */
    uv_timer_start(&c->deadline, on_deadline, ms, 0);
}

static void on_handler_timer(uv_timer_t *t)
{
    rpc_call *c = t->data;
    if (c->done || !c->timer_cb)
        return;
    rpc_call_ref(c);
    c->timer_cb(c);
    rpc_call_unref(c);
}

int rpc_call_set_timer(rpc_call *c, uint64_t ms, void (*cb)(rpc_call *c))
{
    if (c->done || !c->stream)
        return RPC_ECANCELLED;
    if (!c->timer_on) {
        uv_timer_init(http2_stream_loop(c->stream), &c->timer);
        c->timer.data = c;
        c->timer_on = true;
        rpc_call_ref(c);
    }
    c->timer_cb = cb;
    uv_timer_start(&c->timer, on_handler_timer, ms, 0);
    return 0;
}

/* --- accessors ------------------------------------------------------------ */

const rpc_metadata *rpc_call_metadata(const rpc_call *c)
{
    return &c->md;
}

const char *rpc_call_path(const rpc_call *c)
{
    return c->method->path;
}

const char *rpc_call_peer(const rpc_call *c)
{
    if (c->peer)
        return c->peer;
    return c->stream ? http2_stream_peer(c->stream) : "?";
}

void rpc_call_finish_send_error(rpc_call *c, int rc)
{
    if (rc == RPC_ECANCELLED)
        return;
    if (rc == RPC_ETOOBIG)
        rpc_call_finish(c, RPC_RESOURCE_EXHAUSTED, "response message too large");
    else
        rpc_call_finish(c, RPC_INTERNAL, "failed to send response");
}

uv_loop_t *rpc_call_loop(const rpc_call *c)
{
    return c->loop;
}

uint64_t rpc_call_remaining_ms(const rpc_call *c)
{
    if (!c->deadline_on)
        return 0;
    uint64_t ms = uv_timer_get_due_in(&c->deadline);
    return ms ? ms : 1;
}

bool rpc_call_last_compressed(const rpc_call *c)
{
    return c->last_compressed;
}

void *rpc_call_service_data(const rpc_call *c)
{
    return c->method->service_data;
}

const void *rpc_call_typed(const rpc_call *c)
{
    return c->method->typed;
}

void rpc_call_set_data(rpc_call *c, void *data)
{
    c->data = data;
}

void *rpc_call_data(const rpc_call *c)
{
    return c->data;
}

void *rpc_call_alloc(rpc_call *c, size_t n)
{
    return rpc__arena_alloc(&c->arena, n);
}

static void *system_alloc(void *ud, size_t n)
{
    (void)ud;
    return oms_malloc(n);
}

static void system_free(void *ud, void *p)
{
    (void)ud;
    oms_free(p);
}

ProtobufCAllocator *rpc_system_allocator(void)
{
    static ProtobufCAllocator a = {system_alloc, system_free, NULL};
    return &a;
}

ProtobufCAllocator *rpc_call_allocator(rpc_call *c)
{
    return &c->allocator;
}

bool rpc_call_done(const rpc_call *c)
{
    return c->done;
}
