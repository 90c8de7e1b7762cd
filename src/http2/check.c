/* check.c - the protocol checks nghttp2 skips once the RFC 7540 priority tree
 * is off (SETTINGS_NO_RFC7540_PRIORITIES), and the linger of a stream whose
 * response is complete while its request is still open.
 *
 * Without the tree nghttp2 keeps no closed streams, so a DATA or HEADERS
 * frame on a stream the peer had already ended is silently dropped instead
 * of being a STREAM_CLOSED error, and it no longer parses PRIORITY frames
 * (stream 0, self-dependency). Keeping the tree costs about a fifth of the
 * CPU per message in event fan-out (commit 4b0c52a), so these few checks are
 * done here instead:
 *
 A small scanner follows frame boundaries over the bytes fed to nghttp2 (a
 * few instructions per frame, not per byte) and checks:
 * - closed streams: the ids of the last HTTP2_CLOSED_RING streams the peer
 *   itself ended (END_STREAM or RST_STREAM from it) are remembered; a DATA or
 *   HEADERS frame on one of them is a connection error STREAM_CLOSED, whatever
 *   our side did. A stream only we reset is not remembered: the peer may
 *   still have frames for it in flight, which RFC 9113 section 5.1 says to
 *   ignore. Forgetting an old id only means ignoring a bad frame, never
 *   failing a good peer.
 * - PRIORITY frames: nghttp2 checks their length but skips their payload;
 *   the scan reads the five payload bytes (stream 0, self-dependency).
 * - linger: once our response is complete the request side may still be
 *   open. Resetting it at once (RFC 9113 section 8.1 allows RST_STREAM
 *   NO_ERROR) would make a malformed remainder (a content-length that does
 *   not match, trailers without END_STREAM, frames after the peer's own
 *   RST_STREAM) go unnoticed, depending on timing. The stream stays
 *   half-closed (local) until one PING round trip after the response went
 *   out: by then every frame the peer sent before it saw our answer has been
 *   through nghttp2's checks. gRPC clients end such streams themselves when
 *   the status arrives, usually before the PING ACK.
 */
#include <string.h>

#include "base/log.h"
#include "http2/http2_int.h"

static bool recently_ended(const http2_conn *c, int32_t id)
{
    for (int i = 0; i < HTTP2_CLOSED_RING; i++)
        if (c->closed_ids[i] == id)
            return true;
    return false;
}

static void remember_ended(http2_conn *c, int32_t id)
{
    if (recently_ended(c, id))
        return;
    c->closed_ids[c->closed_pos] = id;
    c->closed_pos = (uint8_t)((c->closed_pos + 1) % HTTP2_CLOSED_RING);
}

static void conn_error(http2_conn *c, uint32_t code, const char *what, int32_t id)
{
    if (c->check_failed)
        return;
    c->check_failed = 1;
    OMS_INFO("conn %s: %s (stream %d); sending GOAWAY", c->peer, what, id);
    nghttp2_session_terminate_session(c->session, code);
}

/* --- the frame scan ------------------------------------------------------- */

enum { BAD_NONE, BAD_DATA, BAD_HEADERS, BAD_PRIORITY_0, BAD_PRIORITY_SELF };

static uint32_t h2get32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* Follows frame boundaries over n received bytes (server side, after the
 * 24-byte preface), remembers the streams the peer ends and notes the first
 * bad frame. */
void http2__check_scan(http2_conn *c, const uint8_t *p, size_t n)
{
    while (n > 0 && !c->check_failed) {
        if (c->scan_skip) {
            size_t k = n < c->scan_skip ? n : c->scan_skip;
            c->scan_skip -= (uint32_t)k;
            p += k;
            n -= k;
            continue;
        }
        /* Gather the 9-byte header, and for PRIORITY its 5 payload bytes. */
        uint8_t *b = c->scan_buf;
        size_t want = c->scan_len < 9 ? 9 : 14;
        if (c->scan_len < want) {
            size_t k = want - c->scan_len < n ? want - c->scan_len : n;
            memcpy(b + c->scan_len, p, k);
            c->scan_len = (uint8_t)(c->scan_len + k);
            p += k;
            n -= k;
            if (c->scan_len < want)
                continue;
        }
        uint32_t len = (uint32_t)b[0] << 16 | (uint32_t)b[1] << 8 | b[2];
        if (c->scan_len == 9 && b[3] == NGHTTP2_PRIORITY && len == 5)
            continue; /* now its payload */
        int32_t sid = (int32_t)(h2get32(b + 5) & 0x7fffffffu);
        if ((b[3] == NGHTTP2_DATA || b[3] == NGHTTP2_HEADERS) && sid && !c->bad_frame &&
            recently_ended(c, sid)) {
            c->bad_frame = b[3] == NGHTTP2_DATA ? BAD_DATA : BAD_HEADERS;
            c->bad_sid = sid;
        }
        if (((b[3] == NGHTTP2_DATA || b[3] == NGHTTP2_HEADERS) &&
             (b[4] & NGHTTP2_FLAG_END_STREAM)) ||
            b[3] == NGHTTP2_RST_STREAM)
            remember_ended(c, sid);
        if (b[3] == NGHTTP2_PRIORITY && !c->bad_frame) {
            /* A length other than 5 is nghttp2's FRAME_SIZE_ERROR already. */
            if (sid == 0) {
                c->bad_frame = BAD_PRIORITY_0;
                c->bad_sid = 0;
            } else if (c->scan_len == 14 && (int32_t)(h2get32(b + 9) & 0x7fffffffu) == sid) {
                c->bad_frame = BAD_PRIORITY_SELF;
                c->bad_sid = sid;
            }
        }
        c->scan_skip = len - (uint32_t)(c->scan_len - 9);
        c->scan_len = 0;
    }
}

/* Called after nghttp2 took the bytes the scan saw, so that the frames
 * before the bad one were handled first. RFC 9113 section 5.3.1 makes a
 * self-dependency a stream error; we end the connection (section 5.4.1
 * allows it), as gRPC peers never send PRIORITY frames anyway. */
void http2__check_after_recv(http2_conn *c)
{
    static const char *const what[] = {
        [BAD_DATA] = "DATA on a stream the peer had ended",
        [BAD_HEADERS] = "HEADERS on a stream the peer had ended",
        [BAD_PRIORITY_0] = "PRIORITY frame on stream 0",
        [BAD_PRIORITY_SELF] = "PRIORITY frame depends on its own stream",
    };
    if (!c->bad_frame || c->check_failed)
        return;
    conn_error(c, c->bad_frame <= BAD_HEADERS ? NGHTTP2_STREAM_CLOSED : NGHTTP2_PROTOCOL_ERROR,
               what[c->bad_frame], c->bad_sid);
}

/* --- linger ---------------------------------------------------------------- */

static const uint8_t linger_opaque[8] = {'o', 'm', 's', '-', 'l', 'n', 'g', 'r'};

static void send_linger_ping(http2_conn *c)
{
    if (nghttp2_submit_ping(c->session, NGHTTP2_FLAG_NONE, linger_opaque) == 0) {
        c->linger_sent++;
        c->linger_ping_out = 1;
    }
}

/* Our END_STREAM went out on a stream whose request is still open. */
void http2__check_linger(http2_conn *c, http2_stream *s)
{
    if (s->linger)
        return;
    s->linger = 1;
    if (!c->linger_ping_out) {
        send_linger_ping(c);
        s->linger_need = c->linger_sent;
    } else if (!c->linger_ping_wire) { /* queued: it leaves after this response */
        s->linger_need = c->linger_sent;
    } else { /* the PING in flight left before this response: wait for the next */
        c->linger_again = 1;
        s->linger_need = c->linger_sent + 1;
    }
}

void http2__check_ping_sent(http2_conn *c, const uint8_t *opaque)
{
    if (c->linger_ping_out && memcmp(opaque, linger_opaque, 8) == 0)
        c->linger_ping_wire = 1;
}

/* A PING ACK: reset the lingering streams the round trip covers. Returns
 * true if the ACK was ours. */
bool http2__check_ping_ack(http2_conn *c, const uint8_t *opaque)
{
    if (!c->linger_ping_out || memcmp(opaque, linger_opaque, 8) != 0)
        return false;
    c->linger_acked++;
    c->linger_ping_out = 0;
    c->linger_ping_wire = 0;
    for (http2_stream *s = c->streams; s; s = s->next)
        if (s->linger && !s->closed && (int32_t)(c->linger_acked - s->linger_need) >= 0)
            nghttp2_submit_rst_stream(c->session, NGHTTP2_FLAG_NONE, s->id, NGHTTP2_NO_ERROR);
    if (c->linger_again) {
        c->linger_again = 0;
        send_linger_ping(c);
    }
    return true;
}
