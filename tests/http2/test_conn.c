/* Unit tests for one HTTP/2 connection (src/http2/conn.c): the server's
 * SETTINGS and connection window, the preface, RFC 9113 connection errors and
 * the DoS limits of REFERENCE.md section 3. Hand-built frames go in; the
 * server's frames are parsed back by hand. */
#include "h2harness.h"

TestSuite(http2_conn, .timeout = 30);

static uint32_t settings_value(const h2_frame *f, uint16_t id, int *found)
{
    *found = 0;
    for (uint32_t i = 0; i + 6 <= f->len; i += 6) {
        if ((uint16_t)(f->p[i] << 8 | f->p[i + 1]) == id) {
            *found = 1;
            return h2t_get32(f->p + i + 2);
        }
    }
    return 0;
}

/* Sends the preface and bytes, then reads until the server closes. */
static void expect_goaway_and_close(h2t *t, h2c *c, uint32_t want_code)
{
    PUMP_UNTIL(t, c, c->eof, 3000);
    cr_assert(c->eof, "the server did not close the connection");
    int32_t last = -1;
    uint32_t code = 0;
    cr_assert(raw_goaway(c, &last, &code), "no GOAWAY before close");
    cr_expect_eq(code, want_code, "GOAWAY code %u, want %u", code, want_code);
    cr_expect(raw_whole(c), "trailing garbage after the last frame");
    /* GOAWAY is the last frame the server sends. */
    h2_frame f, lastf = {0};
    size_t off = 0;
    while (raw_next(c, &off, &f) == 0)
        lastf = f;
    cr_expect_eq(lastf.type, FT_GOAWAY, "last frame type %u", lastf.type);
}

Test(http2_conn, server_settings_follow_config)
{
    h2t t;
    h2t_init(&t);
    t.cfg.max_concurrent_streams = 7;
    t.cfg.stream_window = 100000;
    t.cfg.conn_window = 1 << 20;
    t.cfg.max_header_list = 8192;
    h2t_start(&t);
    h2c c;
    h2c_connect(&c, &t);
    raw_preface(&c);
    h2_frame f;
    PUMP_UNTIL(&t, &c, raw_find(&c, FT_WINDOW_UPDATE, 0, &f) && raw_count(&c, FT_SETTINGS, 0) >= 2,
               2000);

    /* The first frame is the server's SETTINGS (RFC 9113 section 3.4). */
    size_t off = 0;
    cr_assert_eq(raw_next(&c, &off, &f), 0);
    cr_assert_eq(f.type, FT_SETTINGS);
    cr_assert_eq(f.flags & FL_ACK, 0);
    cr_assert_eq(f.sid, 0);
    int found;
    cr_expect_eq(settings_value(&f, NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, &found), 7);
    cr_expect(found, "no SETTINGS_MAX_CONCURRENT_STREAMS");
    cr_expect_eq(settings_value(&f, NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, &found), 100000);
    cr_expect(found, "no SETTINGS_INITIAL_WINDOW_SIZE");
    cr_expect_eq(settings_value(&f, NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE, &found), 8192);
    cr_expect(found, "no SETTINGS_MAX_HEADER_LIST_SIZE");

    /* The connection window is raised to conn_window at once. */
    cr_assert(raw_find(&c, FT_WINDOW_UPDATE, 0, &f));
    cr_assert_eq(f.len, 4);
    cr_expect_eq(h2t_get32(f.p), (1u << 20) - 65535u);
    cr_expect_eq(raw_count(&c, FT_WINDOW_UPDATE, -1), 1);

    /* Our empty SETTINGS is acknowledged. */
    cr_assert(raw_find_nth(&c, FT_SETTINGS, 0, 1, &f));
    cr_expect_eq(f.flags, FL_ACK);
    cr_expect_eq(f.len, 0);
    cr_expect_eq(http2_server_conn_count(t.srv), 1);
    h2c_close(&c);
    h2t_finish(&t);
}

Test(http2_conn, no_connection_window_update_at_rfc_default)
{
    h2t t;
    h2t_init(&t);
    t.cfg.conn_window = 65535;
    h2t_start(&t);
    h2c c;
    h2c_connect(&c, &t);
    raw_handshake(&t, &c);
    cr_expect_eq(raw_count(&c, FT_WINDOW_UPDATE, -1), 0);
    h2c_close(&c);
    h2t_finish(&t);
}

Test(http2_conn, garbage_preface_gets_goaway_protocol_error_then_close)
{
    h2t t;
    h2t_init(&t);
    h2t_start(&t);
    h2c c;
    h2c_connect(&c, &t);
    static const char req[] = "GET / HTTP/1.1\r\nHost: localhost\r\n\r\n";
    h2c_send(&c, req, sizeof req - 1);
    expect_goaway_and_close(&t, &c, HTTP2_PROTOCOL_ERROR);
    int32_t last;
    raw_goaway(&c, &last, NULL);
    cr_expect_eq(last, 0);
    cr_expect_eq(t.nst, 0);
    h2c_close(&c);
    h2t_finish(&t);
}

Test(http2_conn, data_on_stream_zero_is_protocol_error)
{
    h2t t;
    h2t_init(&t);
    h2t_start(&t);
    h2c c;
    h2c_connect(&c, &t);
    raw_preface(&c);
    raw_frame(&c, FT_DATA, 0, 0, "abcd", 4);
    expect_goaway_and_close(&t, &c, HTTP2_PROTOCOL_ERROR);
    h2c_close(&c);
    h2t_finish(&t);
}

Test(http2_conn, headers_on_even_stream_is_protocol_error)
{
    h2t t;
    h2t_init(&t);
    h2t_start(&t);
    h2c c;
    h2c_connect(&c, &t);
    raw_preface(&c);
    raw_headers(&c, 2, FL_END_STREAM);
    expect_goaway_and_close(&t, &c, HTTP2_PROTOCOL_ERROR);
    cr_expect_eq(t.nst, 0, "the handler saw a stream the client may not open");
    h2c_close(&c);
    h2t_finish(&t);
}

Test(http2_conn, zero_window_update_on_connection_is_protocol_error)
{
    h2t t;
    h2t_init(&t);
    h2t_start(&t);
    h2c c;
    h2c_connect(&c, &t);
    raw_preface(&c);
    raw_window_update(&c, 0, 0);
    expect_goaway_and_close(&t, &c, HTTP2_PROTOCOL_ERROR);
    h2c_close(&c);
    h2t_finish(&t);
}

Test(http2_conn, settings_length_not_multiple_of_six_is_frame_size_error)
{
    h2t t;
    h2t_init(&t);
    h2t_start(&t);
    h2c c;
    h2c_connect(&c, &t);
    raw_preface(&c);
    static const uint8_t bad[5] = {0, 4, 0, 0, 1};
    raw_frame(&c, FT_SETTINGS, 0, 0, bad, sizeof bad);
    expect_goaway_and_close(&t, &c, HTTP2_FRAME_SIZE_ERROR);
    h2c_close(&c);
    h2t_finish(&t);
}

Test(http2_conn, settings_ack_with_payload_is_frame_size_error)
{
    h2t t;
    h2t_init(&t);
    h2t_start(&t);
    h2c c;
    h2c_connect(&c, &t);
    raw_preface(&c);
    static const uint8_t entry[6] = {0, 4, 0, 0, 1, 0};
    raw_frame(&c, FT_SETTINGS, FL_ACK, 0, entry, sizeof entry);
    expect_goaway_and_close(&t, &c, HTTP2_FRAME_SIZE_ERROR);
    h2c_close(&c);
    h2t_finish(&t);
}

/* RFC 9113 section 6.9 makes this a stream error, which section 5.4.1 lets an
 * endpoint escalate; nghttp2 does, so either scope passes, with
 * PROTOCOL_ERROR, and the handler hears of the stream's end. */
Test(http2_conn, zero_window_update_on_stream_is_protocol_error)
{
    h2t t;
    h2t_init(&t);
    t.mode = H2T_HOLD;
    h2t_start(&t);
    h2c c;
    h2c_connect(&c, &t);
    raw_handshake(&t, &c);
    raw_headers(&c, 1, 0);
    raw_window_update(&c, 1, 0);
    PUMP_UNTIL(&t, &c, raw_has_rst(&c, 1, NULL) || c.eof, 2000);
    uint32_t code = 0;
    if (raw_has_rst(&c, 1, &code)) {
        cr_expect_eq(code, HTTP2_PROTOCOL_ERROR);
        cr_expect(!raw_goaway(&c, NULL, NULL));
    } else {
        cr_assert(raw_goaway(&c, NULL, &code), "neither RST_STREAM nor GOAWAY");
        cr_expect_eq(code, HTTP2_PROTOCOL_ERROR);
    }
    PUMP_UNTIL(&t, &c, t.nst == 1 && t.st[0].closed, 2000);
    cr_assert_eq(t.nst, 1);
    cr_expect(t.st[0].closed);
    cr_expect(t.st[0].close_code == HTTP2_PROTOCOL_ERROR || t.st[0].close_code == HTTP2_CANCEL,
              "on_close code %u", t.st[0].close_code);
    cr_expect_eq(t.st[0].nclose, 1);
    h2c_close(&c);
    h2t_finish(&t);
}

Test(http2_conn, unknown_frame_types_are_ignored)
{
    h2t t;
    h2t_init(&t);
    h2t_start(&t);
    h2c c;
    h2c_connect(&c, &t);
    raw_handshake(&t, &c);
    raw_frame(&c, 0xfa, 0xff, 0, "xyz", 3);
    raw_frame(&c, 0xfb, 0, 5, NULL, 0);
    raw_sync(&t, &c, 7);
    cr_expect(!raw_goaway(&c, NULL, NULL));
    cr_expect(!c.eof);
    h2c_close(&c);
    h2t_finish(&t);
}

Test(http2_conn, client_goaway_closes_idle_connection)
{
    h2t t;
    h2t_init(&t);
    h2t_start(&t);
    h2c c;
    h2c_connect(&c, &t);
    raw_handshake(&t, &c);
    uint8_t p[8] = {0};
    raw_frame(&c, FT_GOAWAY, 0, 0, p, sizeof p);
    PUMP_UNTIL(&t, &c, c.eof && http2_server_conn_count(t.srv) == 0, 2000);
    cr_expect(c.eof);
    cr_expect_eq(http2_server_conn_count(t.srv), 0);
    h2c_close(&c);
    h2t_finish(&t);
}

Test(http2_conn, peer_close_frees_connection)
{
    h2t t;
    h2t_init(&t);
    h2t_start(&t);
    h2c a, b;
    h2c_connect(&a, &t);
    h2c_connect(&b, &t);
    raw_handshake(&t, &a);
    raw_handshake(&t, &b);
    cr_expect_eq(http2_server_conn_count(t.srv), 2);
    h2c_close(&a);
    PUMP_UNTIL(&t, &b, http2_server_conn_count(t.srv) == 1, 2000);
    cr_expect_eq(http2_server_conn_count(t.srv), 1);
    h2c_close(&b);
    PUMP_UNTIL(&t, NULL, http2_server_conn_count(t.srv) == 0, 2000);
    cr_expect_eq(http2_server_conn_count(t.srv), 0);
    h2t_finish(&t);
}

/* --- concurrency ------------------------------------------------------------ */

/* Once the client has acknowledged SETTINGS_MAX_CONCURRENT_STREAMS, a stream
 * past it is a connection error (RFC 9113 section 5.1.2: PROTOCOL_ERROR or
 * REFUSED_STREAM; nghttp2 chooses PROTOCOL_ERROR). */
Test(http2_conn, streams_over_acked_limit_are_protocol_error)
{
    h2t t;
    h2t_init(&t);
    t.mode = H2T_HOLD;
    t.cfg.max_concurrent_streams = 2;
    h2t_start(&t);
    h2c c;
    h2c_connect(&c, &t);
    raw_handshake(&t, &c);
    raw_headers(&c, 1, 0);
    raw_headers(&c, 3, 0);
    raw_headers(&c, 5, 0);
    PUMP_UNTIL(&t, &c, c.eof || raw_has_rst(&c, 5, NULL), 2000);
    uint32_t code = 0;
    int32_t last = 0;
    if (raw_has_rst(&c, 5, &code)) {
        cr_expect_eq(code, HTTP2_REFUSED_STREAM);
    } else {
        cr_assert(raw_goaway(&c, &last, &code), "neither RST_STREAM nor GOAWAY");
        cr_expect_eq(code, HTTP2_PROTOCOL_ERROR);
        cr_expect_eq(last, 3);
    }
    cr_expect_eq(t.nst, 2, "the handler saw %d streams", t.nst);
    h2c_close(&c);
    h2t_finish(&t);
}

/* Before the ACK the limit is pending: the extra stream is refused alone. */
Test(http2_conn, streams_over_pending_limit_are_refused)
{
    h2t t;
    h2t_init(&t);
    t.mode = H2T_HOLD;
    t.cfg.max_concurrent_streams = 2;
    h2t_start(&t);
    h2c c;
    h2c_connect(&c, &t);
    raw_preface(&c);
    raw_headers(&c, 1, 0);
    raw_headers(&c, 3, 0);
    raw_headers(&c, 5, 0);
    raw_sync(&t, &c, 3);
    uint32_t code = 0;
    cr_assert(raw_has_rst(&c, 5, &code), "stream 5 not refused");
    cr_expect_eq(code, HTTP2_REFUSED_STREAM);
    cr_expect(!raw_goaway(&c, NULL, NULL));
    cr_expect_eq(t.nst, 2);
    /* Closing one makes room for another. */
    raw_rst(&c, 1, HTTP2_CANCEL);
    raw_headers(&c, 7, 0);
    raw_sync(&t, &c, 4);
    cr_expect(!raw_has_rst(&c, 7, NULL));
    cr_expect_eq(t.nst, 3);
    cr_expect(t.st[0].closed);
    cr_expect_eq(t.st[0].close_code, HTTP2_CANCEL);
    h2c_close(&c);
    h2t_finish(&t);
}

/* --- floods (REFERENCE.md section 3) ---------------------------------------- */

/* Queues count frames of type with an 8-byte payload (PING-sized). */
static void queue_pings(h2c *c, int count, uint8_t flags)
{
    for (int i = 0; i < count; i++)
        raw_ping(c, (uint64_t)i | (uint64_t)flags << 56);
}

/* Writes everything queued before the server runs: the server then reads it
 * all in one poll phase, with no flush in between, whatever TCP does. */
static void write_all_now(h2c *c)
{
    for (int i = 0; i < 1000 && c->out.len; i++) {
        h2c_flush(c);
        if (c->out.len)
            usleep(1000);
    }
    cr_assert_eq(c->out.len, 0, "could not queue the flood in the socket");
}

/* CVE-2019-9512: more unanswered PINGs than max_outbound_ack (1000) ends the
 * connection with ENHANCE_YOUR_CALM, after at most that many ACKs. */
Test(http2_conn, ping_flood_gets_goaway_enhance_your_calm)
{
    h2t t;
    h2t_init(&t);
    h2t_start(&t);
    h2c c;
    h2c_connect(&c, &t);
    raw_preface(&c);
    queue_pings(&c, 1500, 0);
    write_all_now(&c);
    expect_goaway_and_close(&t, &c, HTTP2_ENHANCE_YOUR_CALM);
    int acks = raw_count(&c, FT_PING, 0);
    cr_expect_leq(acks, 1001, "%d PING ACKs queued past the flood limit", acks);
    h2c_close(&c);
    h2t_finish(&t);
}

/* CVE-2019-9515: the same for SETTINGS, whose ACKs count the same way. */
Test(http2_conn, settings_flood_gets_goaway_enhance_your_calm)
{
    h2t t;
    h2t_init(&t);
    h2t_start(&t);
    h2c c;
    h2c_connect(&c, &t);
    raw_preface(&c);
    for (int i = 0; i < 1500; i++)
        raw_frame(&c, FT_SETTINGS, 0, 0, NULL, 0);
    write_all_now(&c);
    expect_goaway_and_close(&t, &c, HTTP2_ENHANCE_YOUR_CALM);
    h2c_close(&c);
    h2t_finish(&t);
}

/* A client that sends PINGs in moderate batches (each under the flood limit)
 * but never reads: once the server's writes back up it must stop reading
 * (read_paused), so its outbound queue stays bounded, and resume when the
 * client reads again (or, if a resumed read brings a whole flood at once,
 * answer ENHANCE_YOUR_CALM). */
Test(http2_conn, ping_flood_without_reading_stops_the_server_reading)
{
    h2t t;
    h2t_init(&t);
    h2t_start(&t);
    h2c c;
    h2c_connect(&c, &t);
    c.no_read = 1;
    raw_preface(&c);
    write_all_now(&c);
    size_t sent = 0, max_queue = 0;
    int paused = 0, stalled = 0;
    uint64_t deadline = h2t_now_ms() + 5000;
    while (h2t_now_ms() < deadline && !c.werr && stalled < 50) {
        if (c.out.len == 0) {
            queue_pings(&c, 200, 0);
            sent += 200 * 17;
        }
        h2t_step(&t, &c);
        http2_conn *sc = t.srv->ep.conns;
        if (!sc)
            break; /* closed after a GOAWAY */
        size_t q = nghttp2_session_get_outbound_queue_size(sc->session);
        if (q > max_queue)
            max_queue = q;
        paused |= sc->read_paused;
        /* Our writes back up behind a server that stopped reading. */
        stalled = sc->read_paused && c.out.len > 0 ? stalled + 1 : 0;
    }
    cr_expect_leq(max_queue, 1001, "outbound queue grew to %zu frames", max_queue);
    cr_assert(paused || t.srv->ep.conns == NULL,
              "the server kept reading %zu bytes of PINGs from a peer that never reads", sent);
    if (t.srv->ep.conns) {
        c.no_read = 0;
        c.out.len = c.outoff = 0;
        PUMP_UNTIL(&t, &c, c.eof || !t.srv->ep.conns->read_paused, 5000);
        cr_expect(c.eof || !t.srv->ep.conns->read_paused, "the server never resumed reading");
    }
    if (c.eof) {
        uint32_t code = 0;
        h2_frame f;
        int n = 0;
        while (raw_find_nth(&c, FT_GOAWAY, 0, n, &f))
            n++;
        cr_assert_gt(n, 0, "closed without GOAWAY");
        raw_find_nth(&c, FT_GOAWAY, 0, n - 1, &f);
        code = h2t_get32(f.p + 4);
        cr_expect_eq(code, HTTP2_ENHANCE_YOUR_CALM);
    }
    h2c_close(&c);
    h2t_finish(&t);
}

/* CVE-2023-44487: HEADERS + RST_STREAM pairs past the reset rate limit
 * (burst 1000) make the server send GOAWAY and close the connection. */
Test(http2_conn, rapid_reset_gets_goaway)
{
    h2t t;
    h2t_init(&t);
    h2t_start(&t);
    h2c c;
    h2c_connect(&c, &t);
    raw_preface(&c);
    const int pairs = 1200;
    for (int i = 0; i < pairs; i++) {
        raw_headers(&c, 1 + 2 * i, 0);
        raw_rst(&c, 1 + 2 * i, HTTP2_CANCEL);
    }
    write_all_now(&c);
    PUMP_UNTIL(&t, &c, c.eof, 5000);
    int32_t last = 0;
    uint32_t code = 0;
    cr_assert(raw_goaway(&c, &last, &code), "no GOAWAY after %d resets", pairs);
    /* session.c's own bucket ends the session first (nghttp2's limiter
     * alone would say INTERNAL_ERROR). */
    cr_expect_eq(code, HTTP2_ENHANCE_YOUR_CALM, "GOAWAY code %u", code);
    cr_expect_lt(last, 2 * pairs - 1, "GOAWAY came only after all %d streams", pairs);
    cr_expect_geq(last, 2 * 1000 - 1, "GOAWAY before the burst of 1000 resets was spent");
    cr_expect(c.eof, "the connection stayed open");
    for (int i = 0; i < t.nst; i++)
        cr_expect(t.st[i].closed, "stream %d never closed", t.st[i].id);
    h2c_close(&c);
    h2t_finish(&t);
}

/* The GOAWAY that nghttp2's reset limiter queues is only sent at the next
 * flush, and nghttp2 keeps opening streams from the rest of the same read
 * meanwhile. Unless session.c ends the session itself (count_reset), the
 * handler runs streams numbered above the GOAWAY's last-stream-id - the ones
 * RFC 9113 section 6.8 tells the client were not processed and may be
 * retried elsewhere - and a 64 KiB read of HEADERS+RST pairs (about 1800)
 * gets past the limit. */
Test(http2_conn, rapid_reset_streams_past_goaway_never_reach_handler)
{
    h2t t;
    h2t_init(&t);
    h2t_start(&t);
    h2c c;
    h2c_connect(&c, &t);
    raw_preface(&c);
    const int pairs = 1001; /* one past the burst */
    for (int i = 0; i < pairs; i++) {
        raw_headers(&c, 1 + 2 * i, 0);
        raw_rst(&c, 1 + 2 * i, HTTP2_CANCEL);
    }
    /* In the same read: more rapid resets, and one plain request. */
    for (int i = pairs; i < pairs + 100; i++) {
        raw_headers(&c, 1 + 2 * i, 0);
        raw_rst(&c, 1 + 2 * i, HTTP2_CANCEL);
    }
    int32_t plain = 1 + 2 * (pairs + 100);
    raw_headers(&c, plain, FL_END_STREAM);
    write_all_now(&c);
    PUMP_UNTIL(&t, &c, c.eof, 5000);
    int32_t last = 0;
    cr_assert(raw_goaway(&c, &last, NULL), "no GOAWAY");
    int past = 0;
    int32_t highest = 0;
    for (int i = 0; i < t.nst; i++) {
        past += t.st[i].id > last;
        if (t.st[i].id > highest)
            highest = t.st[i].id;
    }
    cr_expect_eq(past, 0,
                 "GOAWAY last-stream-id %d, yet the handler ran %d streams above it (up to %d)",
                 last, past, highest);
    cr_expect_null(h2t_stream_by_id(&t, plain), "stream %d above last-stream-id %d was processed",
                   plain, last);
    h2c_close(&c);
    h2t_finish(&t);
}

/* CVE-2024-28182: more than 8 CONTINUATION frames after a HEADERS frame end
 * the connection, with ENHANCE_YOUR_CALM where nghttp2 says it was a flood
 * (NGHTTP2_ERR_TOO_MANY_CONTINUATIONS, found by CMake). */
Test(http2_conn, continuation_flood_ends_connection)
{
    h2t t;
    h2t_init(&t);
    h2t_start(&t);
    h2c c;
    h2c_connect(&c, &t);
    raw_preface(&c);
    raw_frame(&c, FT_HEADERS, 0, 1, h2t_req_block, sizeof h2t_req_block);
    static const uint8_t field[] = {0x00, 0x01, 'x', 0x01, 'y'}; /* x: y, new name */
    for (int i = 0; i < 100; i++)
        raw_frame(&c, FT_CONTINUATION, 0, 1, field, sizeof field);
    write_all_now(&c);
    PUMP_UNTIL(&t, &c, c.eof, 3000);
    cr_assert(c.eof, "the connection survived 100 CONTINUATION frames");
    uint32_t code = 0;
    cr_expect(raw_goaway(&c, NULL, &code), "closed without GOAWAY");
#ifdef OMS_HAVE_NGHTTP2_ERR_TOO_MANY_CONTINUATIONS
    cr_expect_eq(code, HTTP2_ENHANCE_YOUR_CALM);
#else
    cr_expect_neq(code, HTTP2_NO_ERROR);
#endif
    cr_expect_eq(t.nst, 0);
    h2c_close(&c);
    h2t_finish(&t);
}

/* CVE-2020-11080: a SETTINGS frame with more than 32 entries. */
Test(http2_conn, oversized_settings_frame_ends_connection)
{
    h2t t;
    h2t_init(&t);
    h2t_start(&t);
    h2c c;
    h2c_connect(&c, &t);
    h2c_send(&c, NGHTTP2_CLIENT_MAGIC, NGHTTP2_CLIENT_MAGIC_LEN);
    uint8_t p[40 * 6];
    for (int i = 0; i < 40; i++) {
        p[i * 6] = 0;
        p[i * 6 + 1] = NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS;
        h2t_put32(p + i * 6 + 2, 100);
    }
    raw_frame(&c, FT_SETTINGS, 0, 0, p, sizeof p);
    expect_goaway_and_close(&t, &c, HTTP2_ENHANCE_YOUR_CALM);
    h2c_close(&c);
    h2t_finish(&t);
}
