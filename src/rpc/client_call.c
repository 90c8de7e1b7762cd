/* client_call.c - one client call: request framing and replay, attempts and
 * retries (gRFC A6), deadlines, response deframing, status. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/alloc.h"
#include "base/log.h"
#include "rpc/client_int.h"
#include "rpc/trace.h"

#define HDR(n, v)                                                                                  \
    {                                                                                              \
        n, sizeof(n) - 1, v, sizeof(v) - 1                                                         \
    }

void rpc__channel_call_gone(rpc_channel *ch);

static void *arena_alloc(void *ad, size_t n)
{
    return rpc__arena_alloc(ad, n);
}

static void arena_free(void *ad, void *p)
{
    (void)ad;
    (void)p;
}

static const http2_stream_handler stream_handler;

/* --- lifetime ------------------------------------------------------------ */

/* The call's memory goes back to the heap, or is kept as one of the
 * channel's spare calls (with its request buffer, if small) for the next
 * rpc_channel_call. */
static void call_release(rpc_channel *ch, rpc_client_call *c)
{
    rpc__call_mem *m = &c->mem;
    rpc__arena_dispose(&m->call_arena);
    rpc__arena_dispose(&m->arena);
    rpc__arena_dispose(&m->msg_arena);
    if (ch->freeing || ch->nspare + 1 > RPC_CALL_SPARE) {
        rpc__buf_dispose(&m->out);
        oms_free(c);
        return;
    }
    if (m->out.cap > RPC_CALL_SPARE_BUF)
        rpc__buf_dispose(&m->out);
    m->out.len = 0;
    m->spare_next = ch->spare;
    ch->spare = c;
    ch->nspare++;
}

void rpc__channel_drop_spares(rpc_channel *ch)
{
    while (ch->spare) {
        rpc_client_call *c = ch->spare;
        ch->spare = c->mem.spare_next;
        rpc__buf_dispose(&c->mem.out);
        oms_free(c);
    }
    ch->nspare = 0;
}

/* A spare call, or a new one: zeroed up to its kept part, arenas empty. */
static rpc_client_call *call_alloc(rpc_channel *ch)
{
    rpc_client_call *c = ch->spare;
    if (c) {
        ch->spare = c->mem.spare_next;
        ch->nspare--;
    } else {
        if (!(c = oms_malloc(sizeof *c)))
            return NULL;
        rpc__buf_init(&c->mem.out);
    }
    memset(c, 0, offsetof(rpc_client_call, mem));
    rpc__call_mem *m = &c->mem;
    m->spare_next = NULL;
    rpc__arena_init(&m->call_arena, m->call_inline, sizeof m->call_inline);
    rpc__arena_init(&m->arena, m->inline_arena, sizeof m->inline_arena);
    rpc__arena_init(&m->msg_arena, m->msg_inline, sizeof m->msg_inline);
    m->msg_alloc = (ProtobufCAllocator){arena_alloc, arena_free, &m->msg_arena};
    return c;
}

static void call_free(rpc_client_call *c)
{
    rpc_channel *ch = c->ch;
    if (c->prev)
        c->prev->next = c->next;
    else
        ch->calls = c->next;
    if (c->next)
        c->next->prev = c->prev;
    rpc__deframer_dispose(&c->deframer);
    oms_free(c->att_message);
    oms_free(c->final_message);
    call_release(ch, c);
    rpc__channel_call_gone(ch);
}

static void on_handle_closed(uv_handle_t *h)
{
    rpc_client_call *c = h->data;
    if (--c->handles == 0)
        call_free(c);
}

/* Delivers the final status once, then frees the call (after closing the
 * timers it used, if any). Runs from the channel's deferred queue. */
void rpc__client_call_deliver(rpc_client_call *c)
{
    const rpc_metadata trailers = {c->trailers, c->ntrailers};
    if (c->ic_started) {
        rpc_call_stats st = {
            .code = c->final_code,
            .message = c->final_message,
            .duration_ns = uv_hrtime() - c->start_ns,
            .msgs_received = c->msgs_in,
            .bytes_received = c->bytes_in,
            .msgs_sent = c->msgs_out,
            .bytes_sent = c->bytes_out,
        };
        for (uint32_t i = c->ic_started; i-- > 0;) {
            const rpc__client_icept *x = &c->ch->ics[i];
            if (x->ic.on_end)
                x->ic.on_end(c, x->data, &st);
        }
    }
    if (c->ops->on_status)
        c->ops->on_status(c, c->final_code, c->final_message ? c->final_message : "", &trailers);
    if (c->deadline_on)
        uv_close((uv_handle_t *)&c->mem.deadline_timer, on_handle_closed);
    if (c->timer_on)
        uv_close((uv_handle_t *)&c->mem.timer, on_handle_closed);
    if (c->handles == 0)
        call_free(c);
}

/* Ends the call: the status goes out from the loop, never from inside an
 * API call or an http2 callback. */
static void finish(rpc_client_call *c, rpc_status code, const char *message)
{
    if (c->done)
        return;
    c->done = true;
    c->final_code = code;
    oms_free(c->final_message);
    c->final_message = message && *message ? oms_strdup(message) : NULL;
    rpc__channel_unwait(c->ch, c);
    if (c->deadline_on)
        uv_timer_stop(&c->mem.deadline_timer);
    if (c->timer_on)
        uv_timer_stop(&c->mem.timer);
    if (c->stream) {
        http2_stream_set_data(c->stream, NULL);
        http2_stream_reset(c->stream, HTTP2_CANCEL);
        c->stream = NULL;
    }
    rpc__channel_defer(c->ch, c, RPC_DEFER_STATUS);
}

const uint8_t *rpc_client_call_status_details(const rpc_client_call *c, size_t *len)
{
    /* Only a status that came from the server has details: a local one
     * (deadline, cancel, connection loss) replaces them. */
    bool server = c->done && c->server_status;
    *len = server && c->details ? c->details_len : 0;
    return server ? c->details : NULL;
}

void rpc__client_call_fail(rpc_client_call *c, rpc_status code, const char *message)
{
    finish(c, code, message);
}

static void on_deadline(uv_timer_t *t)
{
    finish(t->data, RPC_DEADLINE_EXCEEDED, "deadline exceeded");
}

/* --- starting attempts ------------------------------------------------------ */

static void start_attempt(rpc_client_call *c);

static void on_retry_timer(uv_timer_t *t)
{
    start_attempt(t->data);
}

/* Runs the interceptors' on_start once, before the first attempt. */
static void run_chain(rpc_client_call *c)
{
    c->ic_ran = true;
    for (uint32_t i = 0; i < c->nics && !c->done; i++) {
        const rpc__client_icept *x = &c->ch->ics[i];
        c->ic_started = i + 1;
        if (x->ic.on_start)
            x->ic.on_start(c, x->data);
    }
}

void rpc__client_call_start(rpc_client_call *c)
{
    if (!c->ic_ran && c->nics && !c->done)
        run_chain(c);
    start_attempt(c);
}

static void reset_attempt(rpc_client_call *c)
{
    rpc__deframer_dispose(&c->deframer);
    rpc__deframer_init(&c->deframer, c->ch->cfg.max_recv_msg);
    c->resp_enc = RPC_ENC_IDENTITY;
    c->headers_seen = false;
    c->status_seen = false;
    oms_free(c->att_message);
    c->att_message = NULL;
    c->trailers = NULL;
    c->ntrailers = 0;
    c->details = NULL;
    c->details_len = 0;
    c->server_status = false;
    rpc__arena_dispose(&c->mem.arena);
    rpc__arena_init(&c->mem.arena, c->mem.inline_arena, sizeof c->mem.inline_arena);
    c->out_written = 0;
}

/* Writes queued request bytes to the stream, and END_STREAM after a
 * half-close. Once committed, written bytes are dropped. Returns false when
 * the stream's buffer is full (on_writable follows). */
static bool flush_out(rpc_client_call *c)
{
    if (!c->stream)
        return false;
    if (c->mem.out.len > c->out_written) {
        int rv = http2_stream_write(c->stream, c->mem.out.data + c->out_written,
                                    c->mem.out.len - c->out_written);
        if (rv < 0 && rv != HTTP2_AGAIN)
            return false; /* the stream is closing; on_close follows */
        c->out_written = c->mem.out.len;
        /* Once half-closed nothing more is sent: END_STREAM queues behind. */
        if (rv == HTTP2_AGAIN && !c->half_close) {
            c->blocked = true;
            return false;
        }
    }
    if (c->committed && c->out_written) {
        c->mem.out.len = 0;
        c->out_written = 0;
    }
    if (c->half_close)
        http2_stream_end(c->stream, NULL, 0);
    return true;
}

/* What rpc__client_call_dispatch borrows of each of ch->req_h: everything
 * but :path's value. */
static const uint8_t req_keep[RPC_REQ_FIXED] = {
    HTTP2_KEEP_NAME | HTTP2_KEEP_VALUE,
    HTTP2_KEEP_NAME | HTTP2_KEEP_VALUE,
    HTTP2_KEEP_NAME,
    HTTP2_KEEP_NAME | HTTP2_KEEP_VALUE,
    HTTP2_KEEP_NAME | HTTP2_KEEP_VALUE,
    HTTP2_KEEP_NAME | HTTP2_KEEP_VALUE,
    HTTP2_KEEP_NAME | HTTP2_KEEP_VALUE,
    HTTP2_KEEP_NAME | HTTP2_KEEP_VALUE,
};

static void build_request_headers(rpc_channel *ch)
{
    const char *ua = ch->cfg.user_agent ? ch->cfg.user_agent : "oms-c/0.1";
    http2_header *h = ch->req_h;
    h[0] = (http2_header)HDR(":method", "POST");
    h[1] = ch->tls ? (http2_header)HDR(":scheme", "https") : (http2_header)HDR(":scheme", "http");
    h[2] = (http2_header){":path", 5, "", 0}; /* the call's */
    h[3] = (http2_header){":authority", 10, ch->authority, strlen(ch->authority)};
    h[4] = (http2_header)HDR("content-type", "application/grpc");
    h[5] = (http2_header)HDR("te", "trailers");
    h[6] = (http2_header){"user-agent", 10, ua, strlen(ua)};
    h[7] = (http2_header)HDR("grpc-accept-encoding", RPC_ACCEPT_ENCODING);
}

void rpc__client_call_dispatch(rpc_client_call *c, http2_conn *conn, const char *error)
{
    if (c->done)
        return;
    if (!conn) {
        finish(c, RPC_UNAVAILABLE, error ? error : "no connection");
        return;
    }
    rpc_channel *ch = c->ch;
    if (!ch->req_h[0].name)
        build_request_headers(ch);
    http2_header h[40];
    uint8_t keep[40];
    /* The fixed headers are borrowed from the channel, which outlives its
     * connections; the rest is copied by http2 (the call may end, and go,
     * before its HEADERS frame is written). */
    memcpy(h, ch->req_h, sizeof ch->req_h);
    memcpy(keep, req_keep, sizeof req_keep);
    size_t n = RPC_REQ_FIXED;
    h[2].value = c->path;
    h[2].valuelen = c->pathlen;
    if (c->compress) {
        keep[n] = HTTP2_KEEP_NAME | HTTP2_KEEP_VALUE;
        h[n++] = (http2_header)HDR("grpc-encoding", "gzip");
    }
    char tbuf[10];
    if (c->deadline) {
        uint64_t now = uv_now(ch->loop);
        uint64_t left = c->deadline > now ? c->deadline - now : 1;
        keep[n] = HTTP2_KEEP_NAME;
        h[n++] = (http2_header){"grpc-timeout", 12, tbuf, rpc__timeout_format(left, tbuf)};
    }
    /* Custom metadata; -bin values go out base64 (the arena holds them). */
    for (size_t i = 0; i < c->nmd && n < sizeof h / sizeof h[0]; i++) {
        const rpc_md *m = &c->md[i];
        size_t kl = strlen(m->key);
        keep[n] = 0;
        http2_header *x = &h[n++];
        x->name = m->key;
        x->namelen = kl;
        if (rpc__md_key_is_bin(m->key, kl)) {
            char *enc = rpc__arena_alloc(&c->mem.arena, rpc__base64_encoded_len(m->len) + 1);
            if (!enc) {
                finish(c, RPC_RESOURCE_EXHAUSTED, "out of memory");
                return;
            }
            x->value = enc;
            x->valuelen = rpc__base64_encode(m->value, m->len, enc);
        } else {
            x->value = (const char *)m->value;
            x->valuelen = m->len;
        }
    }
    c->stream = http2_conn_request_ex(conn, h, n, keep, &stream_handler, c);
    if (!c->stream) {
        /* The connection went away between pick and request: try again. */
        char why[64];
        http2_conn *next;
        if (!rpc__channel_pick(ch, c, &next, why, sizeof why)) {
            finish(c, RPC_UNAVAILABLE, why);
            return;
        }
        if (next && next != conn)
            rpc__client_call_dispatch(c, next, NULL);
        else if (next)
            finish(c, RPC_UNAVAILABLE, "cannot open a stream");
        return;
    }
    /* A sender told to wait while there was no stream may go on now. */
    if (flush_out(c) && c->blocked) {
        c->blocked = false;
        if (c->ops->on_ready)
            c->ops->on_ready(c);
    }
}

static void start_attempt(rpc_client_call *c)
{
    if (c->done)
        return;
    c->attempts++;
    reset_attempt(c);
    char why[200] = "no connection";
    http2_conn *conn;
    if (!rpc__channel_pick(c->ch, c, &conn, why, sizeof why)) {
        finish(c, RPC_UNAVAILABLE, why);
        return;
    }
    if (conn)
        rpc__client_call_dispatch(c, conn, NULL);
}

/* The attempt ended with code: retry it if the policy allows, else finish. */
static void end_attempt(rpc_client_call *c, rpc_status code, const char *message)
{
    if (c->done)
        return;
    c->stream = NULL;
    /* gRFC A6: a stream the server refused unprocessed (GOAWAY race, stream
     * limit) is retried at once whatever the policy, without counting as an
     * attempt, a few times at most. */
    if (c->refused && !c->committed && c->transparent < 5 &&
        (!c->deadline || uv_now(c->ch->loop) < c->deadline)) {
        c->refused = false;
        c->transparent++;
        c->attempts--;
        rpc__channel_defer(c->ch, c, RPC_DEFER_START);
        return;
    }
    c->refused = false;
    /* The attempt's status (and details) is the call's only if it ends here:
     * a deadline during a retry's backoff is a local status. */
    bool from_server = c->server_status;
    c->server_status = false;
    const rpc_retry_policy *p = &c->ch->cfg.retry;
    bool retryable = !c->committed && !c->headers_seen && c->attempts < p->max_attempts &&
                     code < 32 && (p->retryable_codes & (1u << code));
    if (!retryable) {
        c->server_status = from_server;
        finish(c, code, message);
        return;
    }
    /* gRFC A6: random wait in [0, min(initial * mult^(n-1), max)). */
    double b = (double)p->initial_backoff_ms;
    for (int i = 1; i < c->attempts; i++)
        b *= p->backoff_multiplier;
    if (b > (double)p->max_backoff_ms)
        b = (double)p->max_backoff_ms;
    uint64_t wait = (uint64_t)(b * rpc__channel_random(c->ch));
    if (c->deadline && uv_now(c->ch->loop) + wait >= c->deadline) {
        c->server_status = from_server;
        finish(c, code, message); /* no time left for another attempt */
        return;
    }
    OMS_DEBUG("call %s: attempt %d: %s; retrying in %llu ms", c->path, c->attempts,
              rpc__status_name(code), (unsigned long long)wait);
    if (!c->timer_on) {
        uv_timer_init(c->ch->loop, &c->mem.timer);
        c->mem.timer.data = c;
        c->timer_on = true;
        c->handles++;
    }
    uv_timer_start(&c->mem.timer, on_retry_timer, wait, 0);
}

/* --- responses ------------------------------------------------------------ */

/* Turns a header block into metadata in the call's arena (reserved keys
 * dropped, -bin values decoded). */
static bool collect_md(rpc_client_call *c, const http2_header *h, size_t n, rpc_md **out,
                       size_t *count)
{
    rpc_md *items = rpc__arena_alloc(&c->mem.arena, (n ? n : 1) * sizeof *items);
    if (!items)
        return false;
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        if (rpc__md_key_reserved(h[i].name, h[i].namelen))
            continue;
        rpc_md *m = &items[k];
        m->key = rpc__arena_strndup(&c->mem.arena, h[i].name, h[i].namelen);
        if (!m->key)
            return false;
        if (rpc__md_key_is_bin(h[i].name, h[i].namelen)) {
            uint8_t *v = rpc__arena_alloc(&c->mem.arena, h[i].valuelen * 3 / 4 + 3);
            long len = v ? rpc__base64_decode(h[i].value, h[i].valuelen, v) : -1;
            if (len < 0)
                continue; /* drop what cannot be decoded */
            m->value = v;
            m->len = (size_t)len;
        } else {
            m->value =
                (const uint8_t *)rpc__arena_strndup(&c->mem.arena, h[i].value, h[i].valuelen);
            m->len = h[i].valuelen;
        }
        k++;
    }
    *out = items;
    *count = k;
    return true;
}

/* The fields of a response header or trailer block rpc reads, found in
 * one pass (the first of each), and how many fields are metadata. */
typedef struct resp_fields {
    const http2_header *status, *grpc_status, *grpc_message, *encoding, *ctype, *details;
    size_t custom; /* fields that are not reserved: metadata for the application */
} resp_fields;

/* Sets *slot to x if it is still empty and x is named lit (a literal). */
#define FIELD(slot, x, lit)                                                                        \
    do {                                                                                           \
        if (!(slot) && memcmp((x)->name, lit, sizeof lit - 1) == 0)                                \
            (slot) = (x);                                                                          \
    } while (0)

/* Names arrive lower case (nghttp2 refuses others), so the length picks the
 * one name to compare. */
static void classify(const http2_header *h, size_t n, resp_fields *f)
{
    memset(f, 0, sizeof *f);
    for (size_t i = 0; i < n; i++) {
        const http2_header *x = &h[i];
        switch (x->namelen) {
        case 7:
            FIELD(f->status, x, ":status");
            break;
        case 11:
            FIELD(f->grpc_status, x, "grpc-status");
            break;
        case 12:
            FIELD(f->grpc_message, x, "grpc-message");
            FIELD(f->ctype, x, "content-type");
            break;
        case 13:
            FIELD(f->encoding, x, "grpc-encoding");
            break;
        case 23:
            FIELD(f->details, x, "grpc-status-details-bin");
            break;
        default:
            break;
        }
        if (x->namelen && x->name[0] != ':' && x != f->ctype &&
            !(x->namelen >= 5 && memcmp(x->name, "grpc-", 5) == 0) &&
            !rpc__md_key_reserved(x->name, x->namelen))
            f->custom++;
    }
}

/* Reads grpc-status and grpc-message from a trailer (or Trailers-Only) block. */
static void read_status(rpc_client_call *c, const http2_header *h, size_t n, const resp_fields *f)
{
    const http2_header *st = f->grpc_status;
    if (!st)
        return;
    int code = 0;
    bool ok = st->valuelen > 0 && st->valuelen <= 3;
    for (size_t i = 0; ok && i < st->valuelen; i++) {
        if (st->value[i] < '0' || st->value[i] > '9')
            ok = false;
        else
            code = code * 10 + (st->value[i] - '0');
    }
    c->status_seen = true;
    c->att_code = ok && code <= 16 ? (rpc_status)code : RPC_UNKNOWN;
    const http2_header *msg = f->grpc_message;
    oms_free(c->att_message);
    c->att_message = msg ? rpc__percent_decode(msg->value, msg->valuelen, NULL) : NULL;
    c->trailers = NULL;
    c->ntrailers = 0;
    if (f->custom)
        collect_md(c, h, n, &c->trailers, &c->ntrailers);
    const http2_header *det = f->details;
    c->details = NULL;
    c->details_len = 0;
    if (det) { /* undecodable base64 is dropped, like other -bin metadata */
        uint8_t *v = rpc__arena_alloc(&c->mem.arena, det->valuelen * 3 / 4 + 3);
        long len = v ? rpc__base64_decode(det->value, det->valuelen, v) : -1;
        if (len >= 0) {
            c->details = v;
            c->details_len = (size_t)len;
        }
    }
}

static void on_response(http2_stream *s, const http2_header *h, size_t n)
{
    rpc_client_call *c = http2_stream_data(s);
    if (!c)
        return;
    resp_fields f;
    classify(h, n, &f);
    const http2_header *status = f.status;
    int http = 0;
    for (size_t i = 0; status && i < status->valuelen && i < 3; i++)
        http = http * 10 + (status->value[i] - '0');
    if (http != 200) {
        char m[64];
        snprintf(m, sizeof m, "HTTP status %d", http);
        http2_stream_reset(s, HTTP2_CANCEL);
        c->stream = NULL;
        http2_stream_set_data(s, NULL);
        c->committed = true; /* the server answered: not a transport failure */
        finish(c, rpc__status_from_http(http), m);
        return;
    }
    if (f.grpc_status) {
        /* Trailers-Only: the call is not committed (gRFC A6), so an
         * UNAVAILABLE answered this way may still be retried. */
        read_status(c, h, n, &f);
        return;
    }
    c->headers_seen = true;
    c->committed = true;
    if (c->out_written) { /* no replay any more: drop what went out */
        rpc__buf_consume(&c->mem.out, c->out_written);
        c->out_written = 0;
    }
    const http2_header *enc = f.encoding;
    if (enc)
        c->resp_enc = rpc__encoding_parse(enc->value, enc->valuelen);
    const http2_header *ct = f.ctype;
    if (!ct || ct->valuelen < 16 || strncmp(ct->value, "application/grpc", 16) != 0) {
        http2_stream_reset(s, HTTP2_CANCEL);
        c->stream = NULL;
        http2_stream_set_data(s, NULL);
        finish(c, RPC_UNKNOWN, "response is not gRPC (content-type)");
        return;
    }
    if (c->ops->on_headers) {
        rpc_metadata md = {NULL, 0};
        rpc_md *items;
        if (f.custom && collect_md(c, h, n, &items, &md.count))
            md.items = items;
        c->ops->on_headers(c, &md);
    }
}

static void on_trailers(http2_stream *s, const http2_header *h, size_t n)
{
    rpc_client_call *c = http2_stream_data(s);
    if (!c)
        return;
    resp_fields f;
    classify(h, n, &f);
    read_status(c, h, n, &f);
}

static void protocol_error(rpc_client_call *c, http2_stream *s, rpc_status code, const char *m)
{
    http2_stream_reset(s, HTTP2_CANCEL);
    http2_stream_set_data(s, NULL);
    c->stream = NULL;
    finish(c, code, m);
}

static void on_data(http2_stream *s, const uint8_t *p, size_t n)
{
    rpc_client_call *c = http2_stream_data(s);
    http2_stream_consume(s, n);
    if (!c || c->done)
        return;
    while (n > 0) {
        const uint8_t *msg;
        size_t len;
        bool compressed;
        rpc_deframe_result r = rpc__deframer_next(&c->deframer, &p, &n, &msg, &len, &compressed);
        if (r == RPC_DEFRAME_MORE)
            break;
        if (r == RPC_DEFRAME_TOO_BIG) {
            char m[96];
            snprintf(m, sizeof m, "response message larger than max (%zu vs. %zu)", len,
                     c->ch->cfg.max_recv_msg);
            protocol_error(c, s, RPC_RESOURCE_EXHAUSTED, m);
            return;
        }
        if (r < 0) {
            protocol_error(c, s, RPC_INTERNAL, "bad message framing");
            return;
        }
        c->msgs_in++;
        c->bytes_in += RPC_FRAME_HEADER + len;
        rpc_buf plain;
        rpc__buf_init(&plain);
        if (compressed) {
            int rv = c->resp_enc == RPC_ENC_IDENTITY || c->resp_enc == RPC_ENC_UNKNOWN
                         ? -1
                         : rpc__decompress(c->resp_enc, msg, len, c->ch->cfg.max_recv_msg, &plain);
            if (rv != 0) {
                rpc__buf_dispose(&plain);
                protocol_error(c, s, rv == -2 ? RPC_RESOURCE_EXHAUSTED : RPC_INTERNAL,
                               "cannot decompress response message");
                return;
            }
            msg = plain.data;
            len = plain.len;
        }
        /* Strings are checked as the server checks requests (call.c). */
        if (c->check_strings) {
            char why[160], m[180];
            int rv = rpc__check_strings(c->resp_desc, msg, len, why, sizeof why);
            if (rv != 0) {
                rpc__buf_dispose(&plain);
                snprintf(m, sizeof m, "response field %s", why);
                protocol_error(c, s, RPC_INTERNAL,
                               rv == RPC_STRINGS_BAD ? m : "cannot decode response message");
                return;
            }
        }
        /* Decoded into the call's message arena: a small response costs no
         * malloc at all. A stream's messages are borrowed for the callback
         * and the arena is emptied after it; a unary call's (first) message
         * stays until on_status (rpc_client.h), any further one gets an
         * arena of its own for its callback. */
        bool keep = c->keep_resp && !c->resp_kept;
        rpc_arena extra;
        ProtobufCAllocator extra_alloc = {arena_alloc, arena_free, &extra};
        rpc__arena_init(&extra, NULL, 0);
        ProtobufCMessage *m = protobuf_c_message_unpack(
            c->resp_desc, c->keep_resp && !keep ? &extra_alloc : &c->mem.msg_alloc, len, msg);
        rpc__buf_dispose(&plain);
        if (!m) {
            rpc__arena_dispose(&extra);
            protocol_error(c, s, RPC_INTERNAL, "cannot decode response message");
            return;
        }
        c->last_compressed = compressed;
        c->resp_kept = c->resp_kept || keep;
        if (c->ops->on_message)
            c->ops->on_message(c, m);
        rpc__arena_dispose(&extra);
        if (!c->keep_resp) {
            rpc__arena_dispose(&c->mem.msg_arena);
            rpc__arena_init(&c->mem.msg_arena, c->mem.msg_inline, sizeof c->mem.msg_inline);
        }
        if (c->done)
            return;
    }
}

static void on_end(http2_stream *s)
{
    rpc_client_call *c = http2_stream_data(s);
    if (!c || c->done)
        return;
    http2_stream_set_data(s, NULL);
    c->stream = NULL;
    if (!c->status_seen) {
        finish(c, RPC_INTERNAL, "server closed the stream without grpc-status");
        return;
    }
    if (rpc__deframer_partial(&c->deframer) && c->att_code == RPC_OK) {
        finish(c, RPC_INTERNAL, "response ended inside a message");
        return;
    }
    c->server_status = true;
    end_attempt(c, c->att_code, c->att_message);
}

static void on_writable(http2_stream *s)
{
    rpc_client_call *c = http2_stream_data(s);
    if (!c || c->done || !c->blocked)
        return;
    c->blocked = false;
    if (c->ops->on_ready)
        c->ops->on_ready(c);
}

static void on_close(http2_stream *s, uint32_t h2_error)
{
    rpc_client_call *c = http2_stream_data(s);
    if (!c || c->done)
        return;
    c->stream = NULL;
    const char *conn_error = http2_conn_error(http2_stream_conn(s));
    char m[240];
    rpc_status code;
    if (h2_error == HTTP2_REFUSED_STREAM) {
        /* The server did not process it (GOAWAY, stream limit): safe to retry
         * even when it would not count as retryable otherwise. */
        code = RPC_UNAVAILABLE;
        snprintf(m, sizeof m, "stream refused by the server");
        c->headers_seen = false;
        c->refused = true;
    } else if (conn_error) {
        code = RPC_UNAVAILABLE;
        snprintf(m, sizeof m, "%s", conn_error);
    } else {
        code = rpc__status_from_h2(h2_error);
        snprintf(m, sizeof m, "stream reset by the server (HTTP/2 error %u)", h2_error);
    }
    end_attempt(c, code, m);
}

static const http2_stream_handler stream_handler = {
    .on_open = on_response,
    .on_trailers = on_trailers,
    .on_data = on_data,
    .on_end = on_end,
    .on_writable = on_writable,
    .on_close = on_close,
};

/* --- API -------------------------------------------------------------------- */

/* Copies request metadata into the call's arena. */
static int copy_md(rpc_client_call *c, const rpc_md *md, size_t n)
{
    if (!n)
        return 0;
    rpc_md *out = rpc__arena_alloc(&c->mem.call_arena, n * sizeof *out);
    if (!out)
        return -1;
    for (size_t i = 0; i < n; i++) {
        char *k = rpc__arena_strndup(&c->mem.call_arena, md[i].key, strlen(md[i].key));
        char *v = rpc__arena_strndup(&c->mem.call_arena, (const char *)md[i].value, md[i].len);
        if (!k || !v)
            return -1;
        out[i] = (rpc_md){k, (const uint8_t *)v, md[i].len};
    }
    c->md = out;
    c->nmd = n;
    return 0;
}

rpc_client_call *rpc_channel_call(rpc_channel *ch, const char *path,
                                  const ProtobufCMessageDescriptor *resp, const rpc_client_ops *ops,
                                  void *data, const rpc_call_opts *opts)
{
    rpc_client_call *c = call_alloc(ch);
    if (!c)
        return NULL;
    c->ch = ch;
    c->ops = ops;
    c->resp_desc = resp;
    if (ch->strings_desc != resp) { /* a channel usually calls one method or a few */
        ch->strings_desc = resp;
        ch->strings_has = rpc__desc_has_strings(resp);
    }
    c->check_strings = ch->strings_has;
    c->keep_resp = !(ops->flags & RPC_SERVER_STREAMING);
    c->data = data;
    c->pathlen = strlen(path);
    if (!(c->path = rpc__arena_strndup(&c->mem.call_arena, path, c->pathlen)) ||
        (opts && copy_md(c, opts->md, opts->nmd) != 0) ||
        (opts && opts->trace &&
         !(c->trace = rpc__arena_alloc(&c->mem.call_arena, sizeof *c->trace)))) {
        call_release(ch, c);
        return NULL;
    }
    if (c->trace)
        *c->trace = *opts->trace;
    if (opts) {
        c->compress = opts->compress;
        c->wait_for_ready = opts->wait_for_ready;
        if (opts->timeout_ms)
            c->deadline = uv_now(ch->loop) + opts->timeout_ms;
    }
    c->nics = ch->nics;
    if (c->nics)
        c->start_ns = uv_hrtime();
    rpc__deframer_init(&c->deframer, ch->cfg.max_recv_msg);
    c->next = ch->calls;
    if (ch->calls)
        ch->calls->prev = c;
    ch->calls = c;
    if (ch->freeing) {
        finish(c, RPC_CANCELLED, "channel closed");
        return c;
    }
    if (c->deadline) {
        uv_timer_init(ch->loop, &c->mem.deadline_timer);
        c->mem.deadline_timer.data = c;
        c->deadline_on = true;
        c->handles++;
        uv_timer_start(&c->mem.deadline_timer, on_deadline, opts->timeout_ms, 0);
    }
    /* The first attempt starts from the loop, so that the caller can send
     * its first message before anything is written and no callback fires
     * from inside this function. */
    rpc__channel_defer(ch, c, RPC_DEFER_START);
    return c;
}

int rpc_client_call_send(rpc_client_call *c, const ProtobufCMessage *m)
{
    return rpc_client_call_send_ex(c, m, c->compress);
}

bool rpc_client_call_last_compressed(const rpc_client_call *c)
{
    return c->last_compressed;
}

int rpc_client_call_send_ex(rpc_client_call *c, const ProtobufCMessage *m, bool compress)
{
    if (c->done || c->half_close)
        return RPC_ECANCELLED;
    size_t size = protobuf_c_message_get_packed_size(m);
    if (rpc__buf_reserve(&c->mem.out, RPC_FRAME_HEADER + size) != 0)
        return RPC_ENOMEM;
    uint8_t *frame = c->mem.out.data + c->mem.out.len;
    protobuf_c_message_pack(m, frame + RPC_FRAME_HEADER);
    bool compressed = false;
    if (compress && c->compress) { /* only under grpc-encoding: gzip */
        rpc_buf z;
        rpc__buf_init(&z);
        if (rpc__compress(RPC_ENC_GZIP, frame + RPC_FRAME_HEADER, size, &z) == 0) {
            if (rpc__buf_reserve(&c->mem.out, RPC_FRAME_HEADER + z.len) == 0) {
                frame = c->mem.out.data + c->mem.out.len;
                memcpy(frame + RPC_FRAME_HEADER, z.data, z.len);
                size = z.len;
                compressed = true;
            }
        }
        rpc__buf_dispose(&z);
        if (!compressed) { /* repack: the buffer may have moved */
            frame = c->mem.out.data + c->mem.out.len;
            protobuf_c_message_pack(m, frame + RPC_FRAME_HEADER);
        }
    }
    rpc__frame_header(frame, compressed, (uint32_t)size);
    c->mem.out.len += RPC_FRAME_HEADER + size;
    c->msgs_out++;
    c->bytes_out += RPC_FRAME_HEADER + size;
    if (!c->committed && c->mem.out.len > c->ch->cfg.retry.buffer_limit) {
        /* Too much to replay: this attempt is the last. */
        c->committed = true;
    }
    flush_out(c);
    if (c->blocked ||
        (!c->stream && c->mem.out.len - c->out_written >= c->ch->cfg.retry.buffer_limit)) {
        c->blocked = true;
        return RPC_AGAIN;
    }
    return 0;
}

int rpc_client_call_close_send(rpc_client_call *c)
{
    if (c->done || c->half_close)
        return RPC_ECANCELLED;
    c->half_close = true;
    flush_out(c);
    return 0;
}

void rpc_client_call_cancel(rpc_client_call *c)
{
    finish(c, RPC_CANCELLED, "cancelled by the client");
}

void *rpc_client_call_alloc(rpc_client_call *c, size_t n)
{
    return rpc__arena_alloc(&c->mem.call_arena, n);
}

void *rpc_client_call_data(const rpc_client_call *c)
{
    return c->data;
}

void rpc_client_call_set_data(rpc_client_call *c, void *data)
{
    c->data = data;
}

int rpc_client_call_attempts(const rpc_client_call *c)
{
    return c->attempts;
}

void rpc_client_call_fail(rpc_client_call *c, rpc_status code, const char *message)
{
    finish(c, code, message);
}

const char *rpc_client_call_path(const rpc_client_call *c)
{
    return c->path;
}

rpc_call_type rpc_client_call_type(const rpc_client_call *c)
{
    return (rpc_call_type)(c->ops->flags & (RPC_CLIENT_STREAMING | RPC_SERVER_STREAMING));
}

rpc_metadata rpc_client_call_metadata(const rpc_client_call *c)
{
    return (rpc_metadata){c->md, c->nmd};
}

int rpc_client_call_add_md(rpc_client_call *c, const char *key, const uint8_t *v, size_t len)
{
    size_t kl = strlen(key);
    if (c->done || c->attempts > 0 || !rpc__md_key_valid(key, kl) ||
        rpc__md_key_reserved(key, kl) ||
        (!rpc__md_key_is_bin(key, kl) && !rpc__md_value_valid(v, len)))
        return RPC_EINVAL;
    /* The metadata is rebuilt one larger in the call's arena (the old array
     * stays there until the call ends: a few entries, before the first
     * attempt only). */
    rpc_md *all = rpc__arena_alloc(&c->mem.call_arena, (c->nmd + 1) * sizeof *all);
    char *k = rpc__arena_strndup(&c->mem.call_arena, key, kl);
    char *val = rpc__arena_strndup(&c->mem.call_arena, (const char *)v, len);
    if (!all || !k || !val)
        return RPC_ENOMEM;
    if (c->nmd)
        memcpy(all, c->md, c->nmd * sizeof *all);
    all[c->nmd] = (rpc_md){k, (const uint8_t *)val, len};
    c->md = all;
    c->nmd++;
    return 0;
}

/* --- call credentials ---------------------------------------------------------- */

/* rpc_channel_config.token / token_provider: "authorization: Bearer <token>"
 * on every call, added before the first attempt so that retries carry it. */
static void token_on_start(rpc_client_call *c, void *data)
{
    rpc_channel *ch = data;
    const char *tok = ch->cfg.token_provider ? ch->cfg.token_provider(ch->cfg.token_data, c->path)
                                             : ch->cfg.token;
    if (!tok || !*tok) {
        rpc_client_call_fail(c, RPC_UNAUTHENTICATED, "no token for the call");
        return;
    }
    size_t tl = strlen(tok);
    char stackbuf[1024];
    char *v = tl + 7 <= sizeof stackbuf ? stackbuf : oms_malloc(tl + 7);
    if (!v) {
        rpc_client_call_fail(c, RPC_RESOURCE_EXHAUSTED, "out of memory");
        return;
    }
    memcpy(v, "Bearer ", 7);
    memcpy(v + 7, tok, tl);
    int rv = rpc_client_call_add_md(c, "authorization", (const uint8_t *)v, tl + 7);
    if (v != stackbuf)
        oms_free(v);
    /* Never the token itself in the message: it may end up in logs. */
    if (rv == RPC_EINVAL)
        rpc_client_call_fail(c, RPC_UNAUTHENTICATED, "the token is not a valid header value");
    else if (rv != 0)
        rpc_client_call_fail(c, RPC_RESOURCE_EXHAUSTED, "out of memory");
}

const rpc_client_interceptor rpc__token_interceptor = {
    .name = "call-credentials",
    .on_start = token_on_start,
};
