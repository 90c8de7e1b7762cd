/* Unit tests for src/http2/check.c and the response hold of stream.c: what
 * h2spec checks that nghttp2 skips without the RFC 7540 priority tree
 * (frames on streams the peer ended, PRIORITY frames), the linger of a
 * stream answered before its request ended, a response held until a
 * content-length is checked, and the HPACK bomb. Hand-built frames go in;
 * the server's frames are parsed back. */
#include <sys/resource.h>

#include "h2harness.h"

TestSuite(http2_check, .timeout = 60);

/* Reads until the server closes; it must have sent GOAWAY(code) last. */
static void expect_goaway(h2t *t, h2c *c, uint32_t code)
{
    PUMP_UNTIL(t, c, c->eof, 3000);
    cr_assert(c->eof, "the server did not close the connection");
    uint32_t got = 0;
    cr_assert(raw_goaway(c, NULL, &got), "closed without GOAWAY");
    cr_expect_eq(got, code, "GOAWAY code %u, want %u", got, code);
}

/* The connection is alive and has sent no GOAWAY. */
static void expect_alive(h2t *t, h2c *c, uint64_t opaque)
{
    raw_sync(t, c, opaque);
    cr_expect(!c->eof);
    cr_expect(!raw_goaway(c, NULL, NULL), "unexpected GOAWAY");
}

/* HEADERS that ended our response on stream sid (END_STREAM), if any. */
static int response_ended(const h2c *c, int32_t sid)
{
    h2_frame f;
    size_t off = 0;
    while (raw_next(c, &off, &f) == 0)
        if ((f.type == FT_HEADERS || f.type == FT_DATA) && f.sid == sid &&
            (f.flags & FL_END_STREAM))
            return 1;
    return 0;
}

static void start(h2t *t, h2c *c, h2t_mode mode)
{
    h2t_init(t);
    t->mode = mode;
    h2t_start(t);
    h2c_connect(c, t);
    raw_handshake(t, c);
}

static void finish(h2t *t, h2c *c)
{
    h2c_close(c);
    h2t_finish(t);
}

/* --- frames on streams the peer ended (h2spec http2/5.1/5, 6, 8, 9, 11, 12) */

/* The request ended with END_STREAM and was answered: a DATA frame on it is
 * a connection error STREAM_CLOSED. */
Test(http2_check, data_after_peer_end_stream_is_stream_closed)
{
    h2t t;
    h2c c;
    start(&t, &c, H2T_TRAILERS_ONLY);
    raw_headers(&c, 1, FL_END_STREAM);
    PUMP_UNTIL(&t, &c, response_ended(&c, 1), 2000);
    cr_assert(response_ended(&c, 1));
    raw_frame(&c, FT_DATA, FL_END_STREAM, 1, "test", 4);
    expect_goaway(&t, &c, HTTP2_STREAM_CLOSED);
    finish(&t, &c);
}

/* The same before the answer (half-closed remote): nghttp2's own check. */
Test(http2_check, data_on_half_closed_remote_is_stream_closed)
{
    h2t t;
    h2c c;
    start(&t, &c, H2T_HOLD);
    raw_headers(&c, 1, FL_END_STREAM);
    raw_frame(&c, FT_DATA, FL_END_STREAM, 1, "test", 4);
    expect_goaway(&t, &c, HTTP2_STREAM_CLOSED);
    finish(&t, &c);
}

Test(http2_check, headers_after_peer_end_stream_is_stream_closed)
{
    h2t t;
    h2c c;
    start(&t, &c, H2T_TRAILERS_ONLY);
    raw_headers(&c, 1, FL_END_STREAM);
    PUMP_UNTIL(&t, &c, response_ended(&c, 1), 2000);
    raw_headers(&c, 1, FL_END_STREAM);
    expect_goaway(&t, &c, HTTP2_STREAM_CLOSED);
    finish(&t, &c);
}

/* HEADERS, RST_STREAM and DATA in one write: the scan sees the DATA after
 * the peer's own reset, whatever nghttp2 has done with the stream. */
Test(http2_check, data_after_peer_rst_stream_is_stream_closed)
{
    h2t t;
    h2c c;
    start(&t, &c, H2T_TRAILERS_ONLY);
    raw_headers(&c, 1, 0);
    raw_rst(&c, 1, HTTP2_CANCEL);
    raw_frame(&c, FT_DATA, FL_END_STREAM, 1, "test", 4);
    expect_goaway(&t, &c, HTTP2_STREAM_CLOSED);
    finish(&t, &c);
}

/* A stream only we reset: the peer may have frames for it in flight, which
 * are ignored (RFC 9113 section 5.1). */
Test(http2_check, data_after_our_reset_is_ignored)
{
    h2t t;
    h2t_init(&t);
    t.mode = H2T_RESET;
    t.reset_code = HTTP2_CANCEL;
    h2t_start(&t);
    h2c c;
    h2c_connect(&c, &t);
    raw_handshake(&t, &c);
    raw_headers(&c, 1, 0);
    PUMP_UNTIL(&t, &c, raw_has_rst(&c, 1, NULL), 2000);
    cr_assert(raw_has_rst(&c, 1, NULL));
    raw_frame(&c, FT_DATA, 0, 1, "late", 4);
    raw_frame(&c, FT_DATA, FL_END_STREAM, 1, "late", 4);
    expect_alive(&t, &c, 0x11);
    finish(&t, &c);
}

/* --- PRIORITY frames (h2spec http2/5.3.1/2, 6.3/1) ---------------------------- */

static void raw_priority(h2c *c, int32_t sid, uint32_t dep)
{
    uint8_t p[5];
    h2t_put32(p, dep);
    p[4] = 255;
    raw_frame(c, FT_PRIORITY, 0, sid, p, 5);
}

Test(http2_check, priority_on_stream_zero_is_protocol_error)
{
    h2t t;
    h2c c;
    start(&t, &c, H2T_ECHO);
    raw_priority(&c, 0, 0);
    expect_goaway(&t, &c, HTTP2_PROTOCOL_ERROR);
    finish(&t, &c);
}

Test(http2_check, priority_on_itself_is_protocol_error)
{
    h2t t;
    h2c c;
    start(&t, &c, H2T_ECHO);
    raw_priority(&c, 1, 1);
    expect_goaway(&t, &c, HTTP2_PROTOCOL_ERROR);
    finish(&t, &c);
}

/* A valid PRIORITY frame is ignored, on an idle or an open stream. */
Test(http2_check, valid_priority_is_ignored)
{
    h2t t;
    h2c c;
    start(&t, &c, H2T_TRAILERS_ONLY);
    raw_priority(&c, 3, 0);
    raw_priority(&c, 5, 0x80000003u); /* exclusive bit, another stream */
    expect_alive(&t, &c, 0x12);
    raw_headers(&c, 7, FL_END_STREAM);
    PUMP_UNTIL(&t, &c, response_ended(&c, 7), 2000);
    cr_expect(response_ended(&c, 7));
    expect_alive(&t, &c, 0x13);
    finish(&t, &c);
}

/* The scan follows frames across reads of any size: the same bytes fed one
 * at a time and in one piece find the same bad frame. */
Test(http2_check, scan_follows_frames_split_anywhere)
{
    uint8_t in[200];
    size_t n = 0;
    memcpy(in, NGHTTP2_CLIENT_MAGIC, NGHTTP2_CLIENT_MAGIC_LEN);
    n += NGHTTP2_CLIENT_MAGIC_LEN;
    h2t_frame_header(in + n, 0, FT_SETTINGS, 0, 0);
    n += 9;
    h2t_frame_header(in + n, 20, FT_DATA, 0, 3); /* payload that looks like a frame */
    n += 9;
    h2t_frame_header(in + n, 5, FT_PRIORITY, 0, 9);
    h2t_put32(in + n + 9, 9);
    n += 20;
    h2t_frame_header(in + n, 5, FT_PRIORITY, 0, 11); /* valid */
    h2t_put32(in + n + 9, 1);
    in[n + 13] = 16;
    n += 14;
    h2t_frame_header(in + n, 5, FT_PRIORITY, 0, 13); /* self */
    h2t_put32(in + n + 9, 13);
    n += 14;
    http2_ep ep = {0};
    for (size_t step = 1; step <= n; step = step == 1 ? n : n + 1) {
        http2_conn c = {.ep = &ep, .scan_skip = NGHTTP2_CLIENT_MAGIC_LEN};
        for (size_t i = 0; i < n; i += step)
            http2__check_scan(&c, in + i, i + step <= n ? step : n - i);
        cr_expect_eq(c.bad_frame != 0, 1, "step %zu: no bad frame found", step);
        cr_expect_eq(c.bad_sid, 13, "step %zu: bad frame on stream %d", step, c.bad_sid);
        cr_expect_eq(c.scan_skip, 0);
        cr_expect_eq(c.scan_len, 0);
    }
}

/* --- the linger (h2spec http2/8.1/1, 6.1/2, 6.9.1/3 over TLS) ---------------- */

/* A response complete before the request: no RST_STREAM(NO_ERROR) until the
 * server's PING comes back, so a malformed rest of the request (trailers
 * without END_STREAM) still gets its stream error. */
Test(http2_check, lingering_stream_still_checks_the_request)
{
    h2t t;
    h2c c;
    start(&t, &c, H2T_TRAILERS_ONLY);
    raw_headers(&c, 1, 0);
    PUMP_UNTIL(&t, &c, response_ended(&c, 1) && raw_server_pings(&c) > 0, 2000);
    cr_assert(response_ended(&c, 1));
    cr_expect(!raw_has_rst(&c, 1, NULL), "RST_STREAM before the PING round trip");
    static const uint8_t trailer[] = {0x00, 0x01, 'x', 0x01, 'y'};
    raw_frame(&c, FT_HEADERS, FL_END_HEADERS, 1, trailer, sizeof trailer);
    raw_sync(&t, &c, 0x21);
    uint32_t code = 0;
    cr_assert(raw_has_rst(&c, 1, &code), "no stream error for trailers without END_STREAM");
    cr_expect_eq(code, HTTP2_PROTOCOL_ERROR);
    finish(&t, &c);
}

/* Once the server's PING is answered the lingering stream is reset with
 * NO_ERROR; DATA the client still sends then is ignored. */
Test(http2_check, linger_ends_with_rst_no_error_after_ping_ack)
{
    h2t t;
    h2c c;
    start(&t, &c, H2T_TRAILERS_ONLY);
    raw_headers(&c, 1, 0);
    raw_headers(&c, 3, 0);
    PUMP_UNTIL(&t, &c, response_ended(&c, 1) && response_ended(&c, 3), 2000);
    h2t_pump_for(&t, &c, 50);
    cr_expect(!raw_has_rst(&c, 1, NULL), "RST_STREAM before the PING round trip");
    int answered = 0;
    /* The PING ACK from raw_handshake's sync does not count: the server's
     * PING is one without ACK. */
    PUMP_UNTIL(&t, &c, raw_ack_pings(&c, &answered) > 0, 2000);
    cr_assert_gt(answered, 0, "no PING from the server");
    PUMP_UNTIL(&t, &c,
               (raw_ack_pings(&c, &answered), raw_has_rst(&c, 1, NULL) && raw_has_rst(&c, 3, NULL)),
               2000);
    uint32_t code = 1;
    cr_assert(raw_has_rst(&c, 1, &code));
    cr_expect_eq(code, HTTP2_NO_ERROR);
    cr_assert(raw_has_rst(&c, 3, &code));
    cr_expect_eq(code, HTTP2_NO_ERROR);
    raw_frame(&c, FT_DATA, FL_END_STREAM, 1, "late", 4);
    expect_alive(&t, &c, 0x22);
    cr_expect_eq(t.nst, 2);
    cr_expect(t.st[0].closed && t.st[1].closed);
    finish(&t, &c);
}

/* --- content-length (h2spec http2/8.1.2.6/1, 2) -------------------------------- */

/* h2t_req_block plus content-length: V (static name index 28). */
static void raw_headers_clen(h2c *c, int32_t sid, char v)
{
    uint8_t b[sizeof h2t_req_block + 4];
    memcpy(b, h2t_req_block, sizeof h2t_req_block);
    memcpy(b + sizeof h2t_req_block, (uint8_t[]){0x0f, 0x0d, 0x01, (uint8_t)v}, 4);
    raw_frame(c, FT_HEADERS, FL_END_HEADERS, sid, b, sizeof b);
}

/* The handler answers at once, but a response to a request whose body does
 * not match its content-length never leaves: RST_STREAM(PROTOCOL_ERROR). */
Test(http2_check, content_length_mismatch_gets_rst_and_no_response)
{
    h2t t;
    h2c c;
    start(&t, &c, H2T_TRAILERS_ONLY);
    raw_headers_clen(&c, 1, '1');
    raw_sync(&t, &c, 0x31); /* the handler has answered by now */
    cr_assert_eq(t.nst, 1);
    cr_expect_eq(raw_count(&c, FT_HEADERS, 1), 0, "response sent before the body was checked");
    raw_frame(&c, FT_DATA, FL_END_STREAM, 1, "test", 4);
    raw_sync(&t, &c, 0x32);
    uint32_t code = 0;
    cr_assert(raw_has_rst(&c, 1, &code));
    cr_expect_eq(code, HTTP2_PROTOCOL_ERROR);
    cr_expect_eq(raw_count(&c, FT_HEADERS, 1), 0, "a malformed request was answered");
    /* Too short a body over two frames: the same. */
    raw_headers_clen(&c, 3, '9');
    raw_frame(&c, FT_DATA, 0, 3, "te", 2);
    raw_frame(&c, FT_DATA, FL_END_STREAM, 3, "st", 2);
    raw_sync(&t, &c, 0x33);
    cr_assert(raw_has_rst(&c, 3, &code));
    cr_expect_eq(code, HTTP2_PROTOCOL_ERROR);
    cr_expect_eq(raw_count(&c, FT_HEADERS, 3), 0);
    finish(&t, &c);
}

/* A matching content-length: the held response goes out at END_STREAM, body
 * and trailers intact. */
Test(http2_check, content_length_match_gets_the_held_response)
{
    h2t t;
    h2c c;
    start(&t, &c, H2T_ECHO);
    raw_headers_clen(&c, 1, '4');
    raw_frame(&c, FT_DATA, 0, 1, "te", 2);
    raw_sync(&t, &c, 0x41);
    cr_expect_eq(raw_count(&c, FT_HEADERS, 1), 0);
    raw_frame(&c, FT_DATA, FL_END_STREAM, 1, "st", 2);
    PUMP_UNTIL(&t, &c, response_ended(&c, 1), 2000);
    cr_assert(response_ended(&c, 1));
    cr_expect_eq(raw_count(&c, FT_HEADERS, 1), 2, "response headers and trailers");
    size_t body = 0;
    h2_frame f;
    size_t off = 0;
    while (raw_next(&c, &off, &f) == 0)
        if (f.type == FT_DATA && f.sid == 1)
            body += f.len;
    cr_expect_eq(body, 4);
    cr_expect(!raw_has_rst(&c, 1, NULL));
    finish(&t, &c);
}

/* --- HPACK bomb ----------------------------------------------------------------- */

enum { BOMB_VALUE = 4000, BOMB_FRAMES = 8, FRAME_MAX = 16384 };

/* One stream's header block: the request, one 4000-byte field added to the
 * dynamic table (first stream only), then 1-byte references to it (index
 * 62) filling a HEADERS frame and 7 CONTINUATION frames: ~130 KB on the
 * wire, ~500 MB of header list. */
static size_t send_bomb(h2c *c, int32_t sid, int first)
{
    static uint8_t buf[FRAME_MAX];
    size_t n = 0, total = 0;
    memcpy(buf, h2t_req_block, sizeof h2t_req_block);
    n = sizeof h2t_req_block;
    if (first) {
        static const uint8_t lit[] = {0x40, 0x06, 'x', '-', 'b', 'o', 'm', 'b', 0x7f, 0xa1, 0x1e};
        memcpy(buf + n, lit, sizeof lit);
        n += sizeof lit;
        memset(buf + n, 'v', BOMB_VALUE);
        n += BOMB_VALUE;
    }
    memset(buf + n, 0xbe, FRAME_MAX - n);
    raw_frame(c, FT_HEADERS, 0, sid, buf, FRAME_MAX);
    total += 9 + FRAME_MAX;
    memset(buf, 0xbe, FRAME_MAX);
    for (int i = 1; i < BOMB_FRAMES; i++) {
        raw_frame(c, FT_CONTINUATION, i == BOMB_FRAMES - 1 ? FL_END_HEADERS : 0, sid, buf,
                  FRAME_MAX);
        total += 9 + FRAME_MAX;
    }
    return total;
}

static double cpu_seconds(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
           (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}

/* Before the fix nghttp2 validated every decoded value: 1.16 s of CPU per MB
 * received, the loop stalled ~0.5 s per stream. Now each bomb stream is reset
 * (ENHANCE_YOUR_CALM) once its list passes the limit plus 128 KiB, the handler
 * never sees it, and a call on another connection completes meanwhile. */
Test(http2_check, hpack_bomb_costs_bounded_cpu_and_does_not_stall_the_loop)
{
    h2t t;
    h2c c, c2;
    start(&t, &c, H2T_TRAILERS_ONLY);
    h2c_connect(&c2, &t);
    raw_handshake(&t, &c2);
    enum { STREAMS = 16 };
    size_t sent = 0;
    double cpu0 = cpu_seconds();
    uint64_t t0 = h2t_now_ms();
    for (int i = 0; i < STREAMS; i++)
        sent += send_bomb(&c, 1 + 2 * i, i == 0);
    raw_ping(&c, 0xb0b);
    /* The other connection's call, while the bomb is being read. */
    raw_headers(&c2, 1, FL_END_STREAM);
    uint64_t call_ms = 0;
    while (h2t_now_ms() - t0 < 20000 && (!raw_has_ping_ack(&c, 0xb0b) || !call_ms)) {
        h2t_step(&t, &c);
        h2c_io(&c2);
        if (!call_ms && response_ended(&c2, 1))
            call_ms = h2t_now_ms() - t0;
    }
    double cpu = cpu_seconds() - cpu0;
    double mb = (double)sent / (1 << 20);
    cr_assert(raw_has_ping_ack(&c, 0xb0b), "the bomb was not read within 20 s");
    cr_assert_gt(call_ms, 0, "the other connection's call did not complete");
    cr_log_info("HPACK bomb: %.2f MB in, %.3f s CPU (%.3f s/MB), other call %llu ms", mb, cpu,
                cpu / mb, (unsigned long long)call_ms);
    /* Generous for sanitizer builds and a loaded machine: 0.25 s/MB is a
     * fifth of the old cost; an unsanitized build needs ~0.01 s/MB. */
    cr_expect_lt(cpu / mb, 0.25, "%.3f s of CPU per MB of HPACK bomb", cpu / mb);
    cr_expect_lt(call_ms, 1000, "a call on another connection took %llu ms",
                 (unsigned long long)call_ms);
    for (int i = 0; i < STREAMS; i++) {
        uint32_t code = 0;
        cr_expect(raw_has_rst(&c, 1 + 2 * i, &code), "stream %d not reset", 1 + 2 * i);
        cr_expect_eq(code, HTTP2_ENHANCE_YOUR_CALM);
    }
    cr_expect_eq(t.nst, 1, "a bomb stream reached the handler");
    cr_expect(!raw_goaway(&c, NULL, NULL));
    h2c_close(&c2);
    finish(&t, &c);
}

/* Just over the limit (not far over) still gets its 431. */
Test(http2_check, header_list_just_over_the_limit_still_gets_431)
{
    h2t t;
    h2c c;
    h2t_init(&t);
    t.cfg.max_header_list = 4096;
    h2t_start(&t);
    h2c_connect(&c, &t);
    raw_handshake(&t, &c);
    static uint8_t b[sizeof h2t_req_block + 8 + 5000];
    size_t n = sizeof h2t_req_block;
    memcpy(b, h2t_req_block, n);
    /* x: 5000 bytes, literal without indexing, new name */
    memcpy(b + n, (uint8_t[]){0x00, 0x01, 'x', 0x7f, 0x89, 0x26}, 6);
    n += 6;
    memset(b + n, 'v', 5000);
    n += 5000;
    raw_frame(&c, FT_HEADERS, FL_END_HEADERS | FL_END_STREAM, 1, b, n);
    PUMP_UNTIL(&t, &c, response_ended(&c, 1), 2000);
    cr_assert(response_ended(&c, 1), "no response to a header list 1.2x over the limit");
    cr_expect(!raw_has_rst(&c, 1, NULL));
    cr_expect_eq(t.nst, 0);
    finish(&t, &c);
}
