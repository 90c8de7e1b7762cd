/* session.c - the nghttp2 session of a connection: callbacks that turn
 * frames into stream events, the DoS options, and session start-up for both
 * sides. */
#include <stdlib.h>
#include <string.h>

#include "base/alloc.h"
#include "base/log.h"
#include "http2/http2_int.h"

static http2_stream *stream_of(nghttp2_session *session, int32_t id)
{
    return nghttp2_session_get_stream_user_data(session, id);
}

static int on_begin_headers(nghttp2_session *session, const nghttp2_frame *frame, void *user_data)
{
    http2_conn *c = user_data;
    if (frame->hd.type != NGHTTP2_HEADERS || frame->headers.cat != NGHTTP2_HCAT_REQUEST) {
        /* Client streams exist from http2_conn_request() on: a response or
         * trailer block's stream is looked up once, here, for on_header (its
         * hdr_stream serves a client's blocks too). */
        if (c->ep->client && frame->hd.type == NGHTTP2_HEADERS)
            c->hdr_stream = stream_of(session, frame->hd.stream_id);
        return 0;
    }
    if (c->refusing)
        return 0; /* past a reset flood: nghttp2 keeps parsing, we stop serving */
    http2_stream *s = http2__stream_new(c, frame->hd.stream_id, c->ep->handler);
    if (!s)
        return NGHTTP2_ERR_CALLBACK_FAILURE;
    http2__count(&c->ep->ctr.streams_opened, 1);
    nghttp2_session_set_stream_user_data(session, frame->hd.stream_id, s);
    c->hdr_stream = s; /* on_header's, for this block: no map lookup per field */
    return 0;
}

static int on_header(nghttp2_session *session, const nghttp2_frame *frame, const uint8_t *name,
                     size_t namelen, const uint8_t *value, size_t valuelen, uint8_t flags,
                     void *user_data)
{
    (void)flags;
    http2_conn *c = user_data;
    if (frame->hd.type != NGHTTP2_HEADERS)
        return 0;
    /* A server reads request headers (a client's trailers carry nothing
     * gRPC uses); a client reads response headers and trailers. */
    if (!c->ep->client && frame->headers.cat != NGHTTP2_HCAT_REQUEST)
        return 0;
    http2_stream *s = c->hdr_stream && c->hdr_stream->id == frame->hd.stream_id
                          ? c->hdr_stream
                          : stream_of(session, frame->hd.stream_id);
    if (!s)
        return 0;
    int rv = http2__stream_add_header(s, name, namelen, value, valuelen);
    if (rv < 0)
        return NGHTTP2_ERR_CALLBACK_FAILURE;
    if (rv > 0) {
        /* Far over the limit (an HPACK bomb repeats one big indexed field):
         * nghttp2 would go on validating every value it decodes. Reset the
         * stream now; nghttp2 then only keeps its HPACK table in step for
         * the rest of the block, without copying or checking values. A
         * client resets an oversized response as it would at the limit. */
        OMS_INFO("conn %s: stream %d: header list far over %u bytes; resetting", c->peer,
                 frame->hd.stream_id, c->ep->max_header_list);
        nghttp2_submit_rst_stream(session, NGHTTP2_FLAG_NONE, frame->hd.stream_id,
                                  c->ep->client ? NGHTTP2_PROTOCOL_ERROR
                                                : NGHTTP2_ENHANCE_YOUR_CALM);
        return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
    }
    return 0;
}

/* Rapid reset (CVE-2023-44487). nghttp2's limiter queues a GOAWAY once its
 * bucket (1000 resets, 33 more per second) is empty, but it goes on opening
 * the streams that follow in the same read until that GOAWAY is sent. This
 * bucket has the same shape: once it is empty no new stream reaches the
 * handler, and the session is terminated in case nghttp2's limiter (absent
 * from an old library) did not fire. */
#define RESET_BURST 1000
#define RESET_RATE  33

static void count_reset(http2_conn *c)
{
    uint64_t now = uv_now(c->ep->loop) / 1000;
    if (c->rst_stamp == 0) {
        c->rst_tokens = RESET_BURST;
    } else if (now > c->rst_stamp) {
        c->rst_tokens += (double)(now - c->rst_stamp) * RESET_RATE;
        if (c->rst_tokens > RESET_BURST)
            c->rst_tokens = RESET_BURST;
    }
    c->rst_stamp = now ? now : 1;
    if (c->rst_tokens >= 1) {
        c->rst_tokens -= 1;
        return;
    }
    if (!c->refusing) {
        c->refusing = 1;
        OMS_WARN("conn %s: stream reset flood; closing with GOAWAY", c->peer);
        nghttp2_session_terminate_session(c->session, NGHTTP2_ENHANCE_YOUR_CALM);
    }
}

static int on_frame_recv(nghttp2_session *session, const nghttp2_frame *frame, void *user_data)
{
    http2_conn *c = user_data;
    http2_stream *s;
    if (!c->greeted) {
        c->greeted = 1;
        if (!c->ep->client)
            http2__policy_arm(c); /* the handshake deadline is met */
    }
    switch (frame->hd.type) {
    case NGHTTP2_HEADERS:
        s = stream_of(session, frame->hd.stream_id);
        if (!s)
            return 0;
        if (frame->headers.cat == NGHTTP2_HCAT_REQUEST ||
            frame->headers.cat == NGHTTP2_HCAT_RESPONSE)
            http2__stream_open(s);
        else if (c->ep->client && frame->headers.cat == NGHTTP2_HCAT_HEADERS)
            http2__stream_trailers(s);
        if (frame->hd.flags & NGHTTP2_FLAG_END_STREAM)
            http2__stream_remote_end(s);
        if ((frame->hd.flags & NGHTTP2_FLAG_END_STREAM) && s->pending)
            s->end_held = 1;
        if ((frame->hd.flags & NGHTTP2_FLAG_END_STREAM) && s->opened && !s->closed &&
            s->handler->on_end)
            s->handler->on_end(s);
        break;
    case NGHTTP2_DATA:
        s = stream_of(session, frame->hd.stream_id);
        if (s && (frame->hd.flags & NGHTTP2_FLAG_END_STREAM))
            http2__stream_remote_end(s);
        if (s && (frame->hd.flags & NGHTTP2_FLAG_END_STREAM) && s->pending)
            s->end_held = 1;
        if (s && (frame->hd.flags & NGHTTP2_FLAG_END_STREAM) && s->opened && !s->closed &&
            s->handler->on_end)
            s->handler->on_end(s);
        break;
    case NGHTTP2_GOAWAY:
        OMS_DEBUG("conn %s: GOAWAY from peer, code %u", c->peer, frame->goaway.error_code);
        c->goaway_recv = 1;
        /* The peer is going away: unless a reason was decided first, the
         * close that follows is the peer's (not "other"). */
        if (!c->ep->client)
            http2__conn_why(c, HTTP2_CLOSE_PEER);
        if (c->handler && c->handler->on_goaway)
            c->handler->on_goaway(c, frame->goaway.error_code);
        break;
    case NGHTTP2_PING:
        if (!(frame->hd.flags & NGHTTP2_FLAG_ACK) && !c->ep->client)
            http2__policy_ping(c);
        if ((frame->hd.flags & NGHTTP2_FLAG_ACK) &&
            !http2__check_ping_ack(c, frame->ping.opaque_data) &&
            !http2__conn_drain_ack(c, frame->ping.opaque_data))
            c->last_ping = 0; /* keepalive answered */
        break;
    case NGHTTP2_RST_STREAM:
        if (!c->ep->client)
            count_reset(c);
        break;
    default:
        break;
    }
    return 0;
}

static int on_data_chunk(nghttp2_session *session, uint8_t flags, int32_t stream_id,
                         const uint8_t *data, size_t len, void *user_data)
{
    (void)flags;
    http2_conn *c = user_data;
    http2_stream *s = stream_of(session, stream_id);
    if (s && s->pending && !s->closed) {
        if (http2__stream_hold_data(s, data, len) != 0)
            http2_stream_reset(s, HTTP2_INTERNAL_ERROR);
        return 0;
    }
    if (!s || !s->opened || s->closed) {
        nghttp2_session_consume_connection(session, len);
        return 0;
    }
    (void)c;
    s->unconsumed += len;
    if (s->handler->on_data)
        s->handler->on_data(s, data, len);
    else
        http2_stream_consume(s, len);
    return 0;
}

static int on_stream_close(nghttp2_session *session, int32_t stream_id, uint32_t error_code,
                           void *user_data)
{
    http2_conn *c = user_data;
    http2_stream *s = stream_of(session, stream_id);
    if (!s)
        return 0;
    s->closed = 1;
    if (!c->ep->client)
        http2__count(&c->ep->ctr.streams_closed, 1);
    /* Flow-control credit for bytes the handler never consumed would be lost
     * with the stream: give it back to the connection window. */
    if (s->unconsumed)
        nghttp2_session_consume_connection(session, s->unconsumed);
    s->unconsumed = 0;
    (void)c;
    /* A client stream's handler hears of its close even before a response. */
    if ((s->opened || c->ep->client) && s->handler->on_close)
        s->handler->on_close(s, error_code);
    nghttp2_session_set_stream_user_data(session, stream_id, NULL);
    http2__stream_free(s);
    return 0;
}

/* RFC 9113 section 8.1: once the response is complete, a server may ask a
 * client that is still sending to stop, without error. It does so one PING
 * round trip later (check.c), so that what the client sent meanwhile is
 * still checked. */
static int on_frame_send(nghttp2_session *session, const nghttp2_frame *frame, void *user_data)
{
    http2_conn *c = user_data;
    http2_stream *s;
    if (frame->hd.type == NGHTTP2_PING && !(frame->hd.flags & NGHTTP2_FLAG_ACK))
        http2__check_ping_sent(c, frame->ping.opaque_data);
    if (frame->hd.type == NGHTTP2_HEADERS || frame->hd.type == NGHTTP2_DATA)
        c->ping_reset = 1; /* ping enforcement (policy.c) */
    if (frame->hd.type == NGHTTP2_GOAWAY && frame->goaway.error_code != NGHTTP2_NO_ERROR)
        http2__conn_why(c, frame->goaway.error_code == NGHTTP2_ENHANCE_YOUR_CALM
                               ? HTTP2_CLOSE_FLOOD
                               : HTTP2_CLOSE_PROTOCOL_ERROR);
    if (frame->hd.type == NGHTTP2_GOAWAY && c->close_on_goaway && !c->close_after_write) {
        c->close_after_write = 1; /* flush closes once this is written */
        uv_read_stop((uv_stream_t *)&c->tcp);
    }
    if (!c->ep->client && (frame->hd.type == NGHTTP2_HEADERS || frame->hd.type == NGHTTP2_DATA) &&
        (frame->hd.flags & NGHTTP2_FLAG_END_STREAM) && frame->hd.stream_id > 0 &&
        nghttp2_session_get_stream_remote_close(session, frame->hd.stream_id) == 0) {
        if ((s = stream_of(session, frame->hd.stream_id)))
            http2__check_linger(c, s);
        else
            nghttp2_submit_rst_stream(session, NGHTTP2_FLAG_NONE, frame->hd.stream_id,
                                      NGHTTP2_NO_ERROR);
    }
    return 0;
}

static int on_invalid_frame(nghttp2_session *session, const nghttp2_frame *frame, int err,
                            void *user_data)
{
    (void)session;
    http2_conn *c = user_data;
    OMS_DEBUG("conn %s: invalid frame type %u on stream %d: %s", c->peer, frame->hd.type,
              frame->hd.stream_id, nghttp2_strerror(err));
    return 0;
}

int http2__session_callbacks_new(nghttp2_session_callbacks **out)
{
    nghttp2_session_callbacks *cbs;
    if (nghttp2_session_callbacks_new(&cbs) != 0)
        return UV_ENOMEM;
    nghttp2_session_callbacks_set_on_begin_headers_callback(cbs, on_begin_headers);
    nghttp2_session_callbacks_set_on_header_callback(cbs, on_header);
    nghttp2_session_callbacks_set_on_frame_recv_callback(cbs, on_frame_recv);
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cbs, on_data_chunk);
    nghttp2_session_callbacks_set_on_stream_close_callback(cbs, on_stream_close);
    nghttp2_session_callbacks_set_on_invalid_frame_recv_callback(cbs, on_invalid_frame);
    nghttp2_session_callbacks_set_on_frame_send_callback(cbs, on_frame_send);
    *out = cbs;
    return 0;
}

nghttp2_option *http2__session_option_new(bool client)
{
    nghttp2_option *opt;
    if (nghttp2_option_new(&opt) != 0)
        return NULL;
    /* Window credit is returned only as rpc consumes messages (pull model). */
    nghttp2_option_set_no_auto_window_update(opt, 1);
    /* DoS limits (REFERENCE.md section 3). Debian backported these into 1.52;
     * CMake detects them by symbol. */
#ifdef OMS_HAVE_NGHTTP2_OPTION_SET_MAX_OUTBOUND_ACK
    nghttp2_option_set_max_outbound_ack(opt, 1000); /* ping/settings floods */
#endif
#ifdef OMS_HAVE_NGHTTP2_OPTION_SET_MAX_SETTINGS
    nghttp2_option_set_max_settings(opt, 32); /* CVE-2020-11080 */
#endif
#ifdef OMS_HAVE_NGHTTP2_OPTION_SET_STREAM_RESET_RATE_LIMIT
    if (!client)
        nghttp2_option_set_stream_reset_rate_limit(opt, 1000, 33); /* rapid reset */
#endif
#ifdef OMS_HAVE_NGHTTP2_OPTION_SET_MAX_CONTINUATIONS
    nghttp2_option_set_max_continuations(opt, 8); /* CONTINUATION flood */
#endif
    return opt;
}

int http2__conn_start_session(http2_conn *c)
{
    const http2_ep *ep = c->ep;
    /* nghttp2's own allocations go through mem.c (base/alloc.h underneath),
     * so a failing allocator reaches its out-of-memory paths as well as
     * ours; the session keeps a copy of mem. */
    nghttp2_mem mem;
    http2__mem_init(&mem, c);
    int rv = ep->client
                 ? nghttp2_session_client_new3(&c->session, ep->callbacks, c, ep->option, &mem)
                 : nghttp2_session_server_new3(&c->session, ep->callbacks, c, ep->option, &mem);
    if (rv != 0)
        return UV_ENOMEM;
    if (!ep->client)
        c->scan_skip = NGHTTP2_CLIENT_MAGIC_LEN; /* check.c's frame scan starts after it */
    nghttp2_settings_entry iv[4];
    size_t n = 0;
    /* RFC 9218: no RFC 7540 priority tree. nghttp2 then schedules streams
     * round robin without the tree's bookkeeping and keeps no closed streams
     * for it: about a fifth less CPU per message when one event fans out to
     * thousands of streams. gRPC peers send no PRIORITY frames anyway. */
    iv[n++] = (nghttp2_settings_entry){NGHTTP2_SETTINGS_NO_RFC7540_PRIORITIES, 1};
    if (ep->client) {
        iv[n++] = (nghttp2_settings_entry){NGHTTP2_SETTINGS_ENABLE_PUSH, 0};
    } else {
        iv[n++] = (nghttp2_settings_entry){NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS,
                                           ep->max_concurrent_streams};
    }
    iv[n++] = (nghttp2_settings_entry){NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, ep->stream_window};
    iv[n++] = (nghttp2_settings_entry){NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE, ep->max_header_list};
    if (nghttp2_submit_settings(c->session, NGHTTP2_FLAG_NONE, iv, n) != 0)
        return UV_ENOMEM;
    if (ep->conn_window > NGHTTP2_INITIAL_CONNECTION_WINDOW_SIZE &&
        nghttp2_session_set_local_window_size(c->session, NGHTTP2_FLAG_NONE, 0,
                                              (int32_t)ep->conn_window) != 0)
        return UV_ENOMEM;
    http2__conn_mark_dirty(c);
    if (ep->client) {
        c->connected = 1;
        if (c->handler && c->handler->on_connected)
            c->handler->on_connected(c);
    }
    return 0;
}
