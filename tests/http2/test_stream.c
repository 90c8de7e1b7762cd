/* Unit tests for request streams (src/http2/stream.c and the stream side of
 * conn.c): headers to on_open, DATA to on_data, responses with trailers,
 * Trailers-Only, resets, the pull model (HTTP2_AGAIN/on_writable), flow
 * control both ways and the header-list limit. An in-memory nghttp2 client
 * session talks to the server over loopback. */
#include "h2harness.h"

TestSuite(http2_stream, .timeout = 30);

static void start_client(h2t *t, h2c *c)
{
    h2c_connect(c, t);
    h2c_session(c, NULL, 0, 0);
}

Test(http2_stream, request_headers_reach_on_open)
{
    h2t t;
    h2t_init(&t);
    h2t_start(&t);
    h2c c;
    start_client(&t, &c);
    nghttp2_nv extra[] = {H2T_NV("content-type", "application/octet-stream"),
                          H2T_NV("x-custom", "abc def"), H2T_NV("te", "trailers")};
    cli_stream *cs = h2c_request(&c, extra, 3, NULL, 0, 0, 0);
    PUMP_UNTIL(&t, &c, cs->closed, 2000);
    cr_assert_eq(t.nst, 1);
    srv_stream *r = &t.st[0];
    cr_expect_eq(r->id, cs->id);
    cr_expect_eq(r->nhdr, 7);
    cr_expect(h2t_has_field(&r->hdr, ":method", "POST"));
    cr_expect(h2t_has_field(&r->hdr, ":scheme", "http"));
    cr_expect(h2t_has_field(&r->hdr, ":path", "/test/echo"));
    cr_expect(h2t_has_field(&r->hdr, ":authority", "localhost"));
    cr_expect(h2t_has_field(&r->hdr, "content-type", "application/octet-stream"));
    cr_expect(h2t_has_field(&r->hdr, "x-custom", "abc def"));
    cr_expect(h2t_has_field(&r->hdr, "te", "trailers"));
    cr_expect(r->ended, "END_STREAM on HEADERS did not reach on_end");
    cr_expect_eq(r->ndata, 0);
    cr_expect(r->closed);
    cr_expect_eq(r->close_code, HTTP2_NO_ERROR);
    cr_expect_eq(cs->status, 200);
    h2c_close(&c);
    h2t_finish(&t);
}

/* The accessors, checked from inside on_open through a HOLD stream. */
Test(http2_stream, accessors)
{
    h2t t;
    h2t_init(&t);
    t.mode = H2T_HOLD;
    h2t_start(&t);
    h2c c;
    start_client(&t, &c);
    cli_stream *cs = h2c_request(&c, NULL, 0, NULL, 0, 0, 1);
    PUMP_UNTIL(&t, &c, t.nst == 1, 2000);
    cr_assert_eq(t.nst, 1);
    http2_stream *s = t.st[0].s;
    cr_expect_eq(http2_stream_id(s), cs->id);
    cr_expect_eq(http2_stream_loop(s), &t.loop);
    cr_expect_eq(http2_stream_server_data(s), &t);
    cr_expect_eq(http2_stream_data(s), &t.st[0]);
    struct sockaddr_in a;
    socklen_t alen = sizeof a;
    getsockname(c.fd, (struct sockaddr *)&a, &alen);
    char want[64];
    snprintf(want, sizeof want, "127.0.0.1:%d", ntohs(a.sin_port));
    cr_expect_str_eq(http2_stream_peer(s), want);
    cr_expect_eq(http2_stream_pending(s), 0);
    h2c_close(&c);
    h2t_finish(&t);
}

Test(http2_stream, body_split_across_many_data_frames_arrives_in_order)
{
    h2t t;
    h2t_init(&t);
    h2t_start(&t);
    h2c c;
    start_client(&t, &c);
    enum { FRAMES = 300, CHUNK = 97 };
    static uint8_t body[FRAMES * CHUNK];
    h2t_fill(body, 0, sizeof body);
    cli_stream *cs = h2c_request(&c, NULL, 0, body, sizeof body, CHUNK, 0);
    PUMP_UNTIL(&t, &c, cs->closed, 3000);
    cr_assert(cs->closed);
    cr_assert_eq(t.nst, 1);
    srv_stream *r = &t.st[0];
    cr_expect_geq(r->ndata, FRAMES, "%d on_data calls for %d DATA frames", r->ndata, FRAMES);
    cr_assert_eq(r->body.len, sizeof body);
    cr_expect_eq(h2t_check_pattern(r->body.p, r->body.len), r->body.len, "request body corrupted");
    cr_expect(r->ended);
    /* The echo comes back whole, then the trailers. */
    cr_expect_eq(cs->status, 200);
    cr_assert_eq(cs->body.len, sizeof body);
    cr_expect_eq(h2t_check_pattern(cs->body.p, cs->body.len), cs->body.len, "echo corrupted");
    char n[32];
    snprintf(n, sizeof n, "%zu", sizeof body);
    cr_expect(h2t_has_field(&cs->trailers, "x-bytes", n));
    h2c_close(&c);
    h2t_finish(&t);
}

Test(http2_stream, response_with_body_and_trailers)
{
    h2t t;
    h2t_init(&t);
    h2t_start(&t);
    h2c c;
    start_client(&t, &c);
    static const uint8_t body[] = "hello, stream";
    cli_stream *cs = h2c_request(&c, NULL, 0, body, sizeof body - 1, 0, 0);
    PUMP_UNTIL(&t, &c, cs->closed && t.nst == 1 && t.st[0].closed, 2000);
    cr_assert(cs->closed);
    cr_expect_eq(cs->close_code, HTTP2_NO_ERROR);
    cr_expect_eq(cs->status, 200);
    cr_expect(h2t_has_field(&cs->hdr, "x-mode", "echo"));
    cr_expect_eq(cs->headers_es, 0);
    cr_assert_eq(cs->body.len, sizeof body - 1);
    cr_expect_eq(memcmp(cs->body.p, body, sizeof body - 1), 0);
    cr_expect_eq(cs->ntrailers, 1);
    cr_expect(cs->trailers_es, "trailers without END_STREAM");
    cr_expect(h2t_has_field(&cs->trailers, "x-trailer", "done"));
    cr_expect(h2t_has_field(&cs->trailers, "x-bytes", "13"));
    cr_expect_eq(cs->rst, 0);
    cr_assert_eq(t.nst, 1);
    cr_expect(t.st[0].closed);
    cr_expect_eq(t.st[0].close_code, HTTP2_NO_ERROR);
    cr_expect_eq(t.st[0].nclose, 1);
    h2c_close(&c);
    h2t_finish(&t);
}

Test(http2_stream, trailers_only_response_is_one_headers_frame_with_end_stream)
{
    h2t t;
    h2t_init(&t);
    t.mode = H2T_TRAILERS_ONLY;
    h2t_start(&t);
    h2c c;
    start_client(&t, &c);
    cli_stream *cs = h2c_request(&c, NULL, 0, NULL, 0, 0, 0);
    PUMP_UNTIL(&t, &c, cs->closed && t.nst == 1 && t.st[0].closed, 2000);
    cr_assert(cs->closed);
    cr_expect_eq(cs->status, 200);
    cr_expect(cs->headers_es, "the only HEADERS frame lacks END_STREAM");
    cr_expect(h2t_has_field(&cs->hdr, "x-only", "yes"));
    cr_expect_eq(cs->ndata_frames, 0);
    cr_expect_eq(cs->body.len, 0);
    cr_expect_eq(cs->ntrailers, 0);
    cr_expect_eq(cs->close_code, HTTP2_NO_ERROR);
    cr_expect_eq(t.st[0].close_code, HTTP2_NO_ERROR);
    h2c_close(&c);
    h2t_finish(&t);
}

/* RFC 9113 section 8.1: a complete response to a request still being sent
 * is followed by RST_STREAM(NO_ERROR). */
Test(http2_stream, complete_response_to_open_request_resets_with_no_error)
{
    h2t t;
    h2t_init(&t);
    t.mode = H2T_TRAILERS_ONLY;
    h2t_start(&t);
    h2c c;
    start_client(&t, &c);
    cli_stream *cs = h2c_request(&c, NULL, 0, NULL, 0, 0, 1);
    PUMP_UNTIL(&t, &c, cs->closed, 2000);
    cr_assert(cs->closed);
    cr_expect_eq(cs->status, 200);
    cr_expect(cs->headers_es);
    cr_expect(cs->rst, "no RST_STREAM after the response");
    cr_expect_eq(cs->rst_code, HTTP2_NO_ERROR);
    PUMP_UNTIL(&t, &c, t.nst == 1 && t.st[0].closed, 2000);
    cr_expect(t.st[0].closed);
    cr_expect_eq(t.st[0].nclose, 1);
    h2c_close(&c);
    h2t_finish(&t);
}

Test(http2_stream, client_trailers_end_the_request)
{
    h2t t;
    h2t_init(&t);
    t.mode = H2T_HOLD;
    h2t_start(&t);
    h2c c;
    h2c_connect(&c, &t);
    raw_handshake(&t, &c);
    raw_headers(&c, 1, 0);
    raw_frame(&c, FT_DATA, 0, 1, "abc", 3);
    static const uint8_t trailer[] = {0x00, 0x01, 'x', 0x01, 'y'};
    raw_frame(&c, FT_HEADERS, FL_END_HEADERS | FL_END_STREAM, 1, trailer, sizeof trailer);
    raw_sync(&t, &c, 1);
    cr_assert_eq(t.nst, 1);
    cr_expect_eq(t.st[0].body.len, 3);
    cr_expect(t.st[0].ended, "request trailers with END_STREAM did not reach on_end");
    cr_expect_eq(t.st[0].nhdr, 4, "trailers leaked into the request header block");
    h2c_close(&c);
    h2t_finish(&t);
}

Test(http2_stream, client_cancel_reaches_on_close)
{
    h2t t;
    h2t_init(&t);
    t.mode = H2T_HOLD;
    h2t_start(&t);
    h2c c;
    start_client(&t, &c);
    static const uint8_t body[100] = {1};
    cli_stream *cs = h2c_request(&c, NULL, 0, body, sizeof body, 0, 1);
    PUMP_UNTIL(&t, &c, t.nst == 1 && t.st[0].body.len == sizeof body, 2000);
    cr_assert_eq(t.nst, 1);
    cr_assert_eq(nghttp2_submit_rst_stream(c.ng, NGHTTP2_FLAG_NONE, cs->id, NGHTTP2_CANCEL), 0);
    PUMP_UNTIL(&t, &c, t.st[0].closed, 2000);
    srv_stream *r = &t.st[0];
    cr_assert(r->closed, "on_close never fired");
    cr_expect_eq(r->close_code, HTTP2_CANCEL);
    cr_expect_eq(r->nclose, 1);
    cr_expect_eq(r->ended, 0);
    /* The connection carries on. */
    t.mode = H2T_ECHO;
    cli_stream *cs2 = h2c_request(&c, NULL, 0, NULL, 0, 0, 0);
    PUMP_UNTIL(&t, &c, cs2->closed, 2000);
    cr_expect_eq(cs2->status, 200);
    cr_expect_eq(r->events_after_close, 0);
    h2c_close(&c);
    h2t_finish(&t);
}

Test(http2_stream, dropped_connection_closes_streams_with_cancel)
{
    h2t t;
    h2t_init(&t);
    t.mode = H2T_HOLD;
    h2t_start(&t);
    h2c c;
    start_client(&t, &c);
    h2c_request(&c, NULL, 0, NULL, 0, 0, 1);
    h2c_request(&c, NULL, 0, NULL, 0, 0, 1);
    PUMP_UNTIL(&t, &c, t.nst == 2, 2000);
    cr_assert_eq(t.nst, 2);
    h2c_close(&c);
    PUMP_UNTIL(&t, NULL, t.st[0].closed && t.st[1].closed, 2000);
    for (int i = 0; i < 2; i++) {
        cr_expect(t.st[i].closed);
        cr_expect_eq(t.st[i].close_code, HTTP2_CANCEL);
        cr_expect_eq(t.st[i].nclose, 1);
    }
    cr_expect_eq(http2_server_conn_count(t.srv), 0);
    h2t_finish(&t);
}

Test(http2_stream, server_reset_reaches_client_and_on_close)
{
    h2t t;
    h2t_init(&t);
    t.mode = H2T_RESET;
    t.reset_code = HTTP2_ENHANCE_YOUR_CALM;
    h2t_start(&t);
    h2c c;
    start_client(&t, &c);
    cli_stream *cs = h2c_request(&c, NULL, 0, NULL, 0, 0, 1);
    PUMP_UNTIL(&t, &c, cs->closed && t.nst == 1 && t.st[0].closed, 2000);
    cr_assert(cs->closed);
    cr_expect(cs->rst);
    cr_expect_eq(cs->rst_code, HTTP2_ENHANCE_YOUR_CALM);
    cr_expect_eq(cs->status, 0);
    cr_assert_eq(t.nst, 1);
    cr_expect_eq(t.st[0].close_code, HTTP2_ENHANCE_YOUR_CALM);
    cr_expect_eq(t.st[0].nclose, 1);
    h2c_close(&c);
    h2t_finish(&t);
}

/* The calls a handler may get wrong fail cleanly instead of corrupting the
 * stream. */
Test(http2_stream, api_misuse_is_rejected)
{
    h2t t;
    h2t_init(&t);
    t.mode = H2T_HOLD;
    h2t_start(&t);
    h2c c;
    start_client(&t, &c);
    cli_stream *cs = h2c_request(&c, NULL, 0, NULL, 0, 0, 0);
    PUMP_UNTIL(&t, &c, t.nst == 1 && t.st[0].ended, 2000);
    cr_assert_eq(t.nst, 1);
    http2_stream *s = t.st[0].s;
    http2_header h = {":status", 7, "200", 3};
    cr_expect_lt(http2_stream_write(s, (const uint8_t *)"x", 1), 0, "write before respond");
    cr_expect_eq(http2_stream_respond(s, &h, 1), 0);
    cr_expect_lt(http2_stream_respond(s, &h, 1), 0, "second respond");
    cr_expect_eq(http2_stream_write(s, (const uint8_t *)"abc", 3), 0);
    cr_expect_eq(http2_stream_pending(s), 3);
    cr_expect_eq(http2_stream_end(s, NULL, 0), 0);
    cr_expect_lt(http2_stream_end(s, NULL, 0), 0, "second end");
    cr_expect_lt(http2_stream_write(s, (const uint8_t *)"x", 1), 0, "write after end");
    http2_stream_consume(s, 1 << 30); /* nothing unconsumed: a no-op */
    PUMP_UNTIL(&t, &c, cs->closed, 2000);
    cr_expect_eq(cs->status, 200);
    cr_expect_eq(cs->body.len, 3);
    cr_expect(!cs->rst);
    cr_expect_eq(cs->close_code, HTTP2_NO_ERROR);
    h2c_close(&c);
    h2t_finish(&t);
}

static int count_closed(cli_stream *const *cs, int n)
{
    int closed = 0;
    for (int i = 0; i < n; i++)
        closed += cs[i]->closed;
    return closed;
}

Test(http2_stream, concurrent_streams_are_kept_apart)
{
    h2t t;
    h2t_init(&t);
    h2t_start(&t);
    h2c c;
    start_client(&t, &c);
    enum { N = 20 };
    static uint8_t bodies[N][3000];
    cli_stream *cs[N];
    for (int i = 0; i < N; i++) {
        memset(bodies[i], 'a' + i, sizeof bodies[i]);
        cs[i] = h2c_request(&c, NULL, 0, bodies[i], 100u * (unsigned)(i + 1), 211, 0);
    }
    PUMP_UNTIL(&t, &c, count_closed(cs, N) == N, 3000);
    for (int i = 0; i < N; i++) {
        cr_assert(cs[i]->closed, "stream %d never closed", cs[i]->id);
        cr_expect_eq(cs[i]->status, 200);
        cr_assert_eq(cs[i]->body.len, 100u * (unsigned)(i + 1), "stream %d", cs[i]->id);
        cr_expect_eq(memcmp(cs[i]->body.p, bodies[i], cs[i]->body.len), 0, "stream %d mixed up",
                     cs[i]->id);
    }
    cr_expect_eq(t.nst, N);
    h2c_close(&c);
    h2t_finish(&t);
}

/* --- the pull model ------------------------------------------------------------- */

Test(http2_stream, big_response_uses_again_and_on_writable)
{
    h2t t;
    h2t_init(&t);
    t.mode = H2T_BIG;
    t.cfg.stream_send_buffer = 16 << 10;
    t.big_total = 1 << 20;
    t.big_chunk = 4096;
    h2t_start(&t);
    h2c c;
    start_client(&t, &c);
    cli_stream *cs = h2c_request(&c, NULL, 0, NULL, 0, 0, 0);
    PUMP_UNTIL(&t, &c, cs->closed, 5000);
    cr_assert(cs->closed, "got %zu of %zu bytes", cs->body.len, t.big_total);
    cr_assert_eq(t.nst, 1);
    srv_stream *r = &t.st[0];
    cr_expect_gt(r->nagain, 0, "no write returned HTTP2_AGAIN");
    cr_expect_gt(r->nwritable, 0, "on_writable never fired");
    cr_expect_eq(r->writable_without_again, 0, "on_writable without an AGAIN outstanding");
    cr_expect_leq(r->max_pending, t.cfg.stream_send_buffer + t.big_chunk,
                  "%zu bytes queued with a %zu-byte send buffer", r->max_pending,
                  t.cfg.stream_send_buffer);
    cr_expect_eq(cs->status, 200);
    cr_assert_eq(cs->body.len, t.big_total);
    cr_expect_eq(h2t_check_pattern(cs->body.p, cs->body.len), cs->body.len, "body corrupted");
    cr_expect(h2t_has_field(&cs->trailers, "x-trailer", "big"));
    cr_expect(cs->trailers_es);
    cr_expect_eq(cs->close_code, HTTP2_NO_ERROR);
    PUMP_UNTIL(&t, &c, r->closed, 2000);
    cr_expect_eq(r->close_code, HTTP2_NO_ERROR);
    h2c_close(&c);
    h2t_finish(&t);
}

/* A client that stops reading, with flow control out of the way: TCP
 * backpressure alone must stop the handler (HTTP2_AGAIN and no on_writable),
 * and on_writable resumes it once the client reads again. Small socket
 * buffers on both ends keep what the kernel holds well under the body. */
Test(http2_stream, big_response_waits_for_slow_reader)
{
    h2t t;
    h2t_init(&t);
    t.mode = H2T_BIG;
    t.cfg.stream_send_buffer = 16 << 10;
    t.big_total = 8 << 20;
    t.big_chunk = 8192;
    h2t_start(&t);
    h2c c;
    static const nghttp2_settings_entry iv[] = {
        {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, INT32_MAX},
    };
    h2c_connect(&c, &t);
    int sz = 64 << 10;
    setsockopt(c.fd, SOL_SOCKET, SO_RCVBUF, &sz, sizeof sz);
    h2c_session(&c, iv, 1, 0);
    nghttp2_session_set_local_window_size(c.ng, NGHTTP2_FLAG_NONE, 0, INT32_MAX);
    PUMP_UNTIL(&t, &c, t.srv->ep.conns != NULL, 2000);
    cr_assert_not_null(t.srv->ep.conns);
    uv_os_fd_t sfd;
    cr_assert_eq(uv_fileno((uv_handle_t *)&t.srv->ep.conns->tcp, &sfd), 0);
    setsockopt(sfd, SOL_SOCKET, SO_SNDBUF, &sz, sizeof sz);
    cli_stream *cs = h2c_request(&c, NULL, 0, NULL, 0, 0, 0);
    PUMP_UNTIL(&t, &c, t.nst == 1 && cs->body.len > 0, 2000);
    cr_assert_eq(t.nst, 1);
    c.no_read = 1;
    srv_stream *r = &t.st[0];
    size_t sent;
    do { /* until the handler is stuck */
        sent = r->sent;
        h2t_pump_for(&t, &c, 50);
    } while (r->sent != sent && r->sent < t.big_total);
    cr_expect_lt(r->sent, t.big_total, "the handler wrote everything to a client that stalled");
    cr_expect(r->waiting, "the stuck handler is not waiting for on_writable");
    cr_expect_leq(r->max_pending, t.cfg.stream_send_buffer + t.big_chunk);
    cr_assert(!r->closed);
    int writable = r->nwritable;
    h2t_pump_for(&t, &c, 50);
    cr_expect_eq(r->nwritable, writable, "on_writable fired while nothing drained");
    c.no_read = 0;
    PUMP_UNTIL(&t, &c, cs->closed, 10000);
    cr_assert(cs->closed, "got %zu of %zu bytes", cs->body.len, t.big_total);
    cr_assert_eq(cs->body.len, t.big_total);
    cr_expect_eq(h2t_check_pattern(cs->body.p, cs->body.len), cs->body.len, "body corrupted");
    cr_expect_gt(r->nwritable, writable);
    h2c_close(&c);
    h2t_finish(&t);
}

/* --- flow control ------------------------------------------------------------- */

/* The client's stream window bounds what the server sends: no DATA past it
 * until the client returns credit. */
Test(http2_stream, server_respects_client_stream_window)
{
    h2t t;
    h2t_init(&t);
    t.mode = H2T_BIG;
    t.big_total = 10000;
    h2t_start(&t);
    h2c c;
    static const nghttp2_settings_entry iv[] = {{NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, 1000}};
    h2c_connect(&c, &t);
    h2c_session(&c, iv, 1, 1);
    cli_stream *cs = h2c_request(&c, NULL, 0, NULL, 0, 0, 0);
    PUMP_UNTIL(&t, &c, cs->body.len >= 1000, 2000);
    h2t_pump_for(&t, &c, 100);
    cr_expect_eq(cs->body.len, 1000, "server sent %zu bytes into a 1000-byte window", cs->body.len);
    cr_expect(!cs->closed);
    size_t consumed = 0;
    uint64_t deadline = h2t_now_ms() + 3000;
    while (!cs->closed && h2t_now_ms() < deadline) {
        cr_assert_leq(cs->body.len, consumed + 1000, "DATA past the window: %zu > %zu + 1000",
                      cs->body.len, consumed);
        if (cs->body.len > consumed) {
            nghttp2_session_consume(c.ng, cs->id, cs->body.len - consumed);
            consumed = cs->body.len;
        }
        h2t_step(&t, &c);
    }
    cr_assert(cs->closed);
    cr_assert_eq(cs->body.len, 10000);
    cr_expect_eq(h2t_check_pattern(cs->body.p, cs->body.len), cs->body.len);
    h2c_close(&c);
    h2t_finish(&t);
}

/* The server's stream window (stream_window) bounds what the client may send,
 * and only http2_stream_consume() gives credit back. */
Test(http2_stream, consume_is_what_lets_the_client_send_past_the_window)
{
    h2t t;
    h2t_init(&t);
    t.mode = H2T_HOLD;
    t.consume = 0;
    t.cfg.stream_window = 16384;
    t.cfg.conn_window = 65535;
    h2t_start(&t);
    h2c c;
    start_client(&t, &c);
    /* Until it has our SETTINGS the client may assume the RFC's 65535. */
    h2c_handshake(&t, &c);
    static uint8_t body[65536];
    h2t_fill(body, 0, sizeof body);
    h2c_request(&c, NULL, 0, body, sizeof body, 0, 0);
    PUMP_UNTIL(&t, &c, t.nst == 1 && t.st[0].body.len >= 16384, 2000);
    h2t_pump_for(&t, &c, 150);
    cr_assert_eq(t.nst, 1);
    srv_stream *r = &t.st[0];
    cr_expect_eq(r->body.len, 16384, "the client sent %zu bytes into a 16384-byte window",
                 r->body.len);
    cr_expect(!r->ended);
    size_t consumed = 0;
    uint64_t deadline = h2t_now_ms() + 3000;
    while (!r->ended && h2t_now_ms() < deadline) {
        if (r->body.len > consumed) {
            http2_stream_consume(r->s, r->body.len - consumed);
            consumed = r->body.len;
        }
        h2t_step(&t, &c);
    }
    cr_assert(r->ended, "got %zu of %zu bytes", r->body.len, sizeof body);
    cr_assert_eq(r->body.len, sizeof body);
    cr_expect_eq(h2t_check_pattern(r->body.p, r->body.len), r->body.len);
    h2c_close(&c);
    h2t_finish(&t);
}

/* Bytes a stream received but never consumed go back to the connection
 * window when it closes; otherwise cancelled streams would starve the
 * connection. */
Test(http2_stream, unconsumed_bytes_return_to_connection_window_on_close)
{
    h2t t;
    h2t_init(&t);
    t.mode = H2T_HOLD;
    t.consume = 0;
    t.cfg.stream_window = 16384;
    t.cfg.conn_window = 65535;
    h2t_start(&t);
    h2c c;
    start_client(&t, &c);
    h2c_handshake(&t, &c);
    static uint8_t body[16384];
    h2t_fill(body, 0, sizeof body);
    for (int i = 0; i < 8; i++) { /* 8 x 16 KiB = twice the connection window */
        cli_stream *cs = h2c_request(&c, NULL, 0, body, sizeof body, 0, 1);
        PUMP_UNTIL(&t, &c, t.nst == i + 1 && t.st[i].body.len == sizeof body, 2000);
        cr_assert_eq(t.nst, i + 1);
        cr_assert_eq(t.st[i].body.len, sizeof body, "stream %d stalled at %zu bytes", cs->id,
                     t.st[i].body.len);
        nghttp2_submit_rst_stream(c.ng, NGHTTP2_FLAG_NONE, cs->id, NGHTTP2_CANCEL);
        PUMP_UNTIL(&t, &c, t.st[i].closed, 2000);
        cr_assert(t.st[i].closed);
    }
    h2c_close(&c);
    h2t_finish(&t);
}

/* --- header list limit ------------------------------------------------------- */

Test(http2_stream, header_list_over_limit_gets_431)
{
    h2t t;
    h2t_init(&t);
    t.cfg.max_header_list = 4096;
    h2t_start(&t);
    h2c c;
    start_client(&t, &c);
    static char big[5000];
    memset(big, 'v', sizeof big);
    nghttp2_nv extra[] = {{(uint8_t *)"x-big", (uint8_t *)big, 5, sizeof big, 0}};
    cli_stream *cs = h2c_request(&c, extra, 1, NULL, 0, 0, 0);
    PUMP_UNTIL(&t, &c, cs->closed, 2000);
    cr_assert(cs->closed);
    cr_expect_eq(cs->status, 431);
    cr_expect(cs->headers_es);
    cr_expect_eq(t.nst, 0, "the handler saw an oversized header block");
    /* The connection is still good for a normal request. */
    cli_stream *cs2 = h2c_request(&c, NULL, 0, NULL, 0, 0, 0);
    PUMP_UNTIL(&t, &c, cs2->closed, 2000);
    cr_expect_eq(cs2->status, 200);
    cr_expect_eq(t.nst, 1);
    h2c_close(&c);
    h2t_finish(&t);
}

/* A handler with on_too_large answers the oversized request itself (rpc
 * sends a gRPC status there); no other callback follows for that stream. */
static int too_large_calls;
static uint32_t too_large_limit;

static void on_too_large_answer(http2_stream *s, uint32_t limit)
{
    too_large_calls++;
    too_large_limit = limit;
    http2_header h[] = {{":status", 7, "200", 3}, {"x-answer", 8, "mine", 4}};
    cr_assert_eq(http2_stream_end(s, h, 2), 0);
}

Test(http2_stream, header_list_over_limit_goes_to_on_too_large)
{
    h2t t;
    h2t_init(&t);
    t.cfg.max_header_list = 4096;
    t.handler.on_too_large = on_too_large_answer;
    too_large_calls = 0;
    h2t_start(&t);
    h2c c;
    start_client(&t, &c);
    static char big[5000];
    memset(big, 'v', sizeof big);
    nghttp2_nv extra[] = {{(uint8_t *)"x-big", (uint8_t *)big, 5, sizeof big, 0}};
    /* with a body still coming, which must be discarded */
    cli_stream *cs = h2c_request(&c, extra, 1, (const uint8_t *)"body", 4, 0, 0);
    PUMP_UNTIL(&t, &c, cs->closed, 2000);
    cr_assert(cs->closed);
    cr_expect_eq(cs->status, 200);
    cr_expect(memmem(cs->hdr.p, cs->hdr.len, "x-answer: mine", 14) != NULL, "%.*s",
              (int)cs->hdr.len, (const char *)cs->hdr.p);
    cr_expect_eq(too_large_calls, 1);
    cr_expect_eq(too_large_limit, 4096);
    cr_expect_eq(t.nst, 0, "on_open/on_data/on_close for an oversized header block");
    cli_stream *cs2 = h2c_request(&c, NULL, 0, NULL, 0, 0, 0);
    PUMP_UNTIL(&t, &c, cs2->closed, 2000);
    cr_expect_eq(cs2->status, 200);
    cr_expect_eq(t.nst, 1);
    h2c_close(&c);
    h2t_finish(&t);
}

/* A 431 to a request whose body is still coming: the body is discarded and
 * its bytes do not eat the connection window. */
Test(http2_stream, header_list_over_limit_with_body)
{
    h2t t;
    h2t_init(&t);
    t.cfg.max_header_list = 4096;
    t.cfg.conn_window = 65535;
    h2t_start(&t);
    h2c c;
    start_client(&t, &c);
    static char big[5000];
    memset(big, 'v', sizeof big);
    static uint8_t body[40000];
    nghttp2_nv extra[] = {{(uint8_t *)"x-big", (uint8_t *)big, 5, sizeof big, 0}};
    for (int i = 0; i < 3; i++) {
        cli_stream *cs = h2c_request(&c, extra, 1, body, sizeof body, 0, 0);
        PUMP_UNTIL(&t, &c, cs->closed, 2000);
        cr_assert(cs->closed);
        cr_expect_eq(cs->status, 431);
    }
    cli_stream *ok = h2c_request(&c, NULL, 0, body, sizeof body, 0, 0);
    PUMP_UNTIL(&t, &c, ok->closed, 2000);
    cr_expect_eq(ok->status, 200);
    cr_expect_eq(ok->body.len, sizeof body);
    h2c_close(&c);
    h2t_finish(&t);
}

/* RFC 9113 section 6.5.2: the field section size counts name + value + 32
 * octets per field. A list of many small fields that is over the limit by
 * that measure must be refused like one big field. */
Test(http2_stream, header_list_limit_counts_32_octets_per_field)
{
    h2t t;
    h2t_init(&t);
    t.cfg.max_header_list = 4096;
    h2t_start(&t);
    h2c c;
    start_client(&t, &c);
    enum { N = 56 };
    static char names[N][8];
    nghttp2_nv extra[N];
    /* 4 pseudo-headers (:method POST, :scheme http, :path /test/echo,
     * :authority localhost = 11+11+15+19 + 4*32 = 184 octets) plus 56 fields
     * of 6 + 1 + 32 = 39 octets: 2368 + 184 = 2552 octets, well under. */
    for (int i = 0; i < N; i++) {
        snprintf(names[i], sizeof names[i], "x-h%03d", i);
        extra[i] = (nghttp2_nv){(uint8_t *)names[i], (uint8_t *)"v", 6, 1, 0};
    }
    cli_stream *ok = h2c_request(&c, extra, N, NULL, 0, 0, 0);
    PUMP_UNTIL(&t, &c, ok->closed, 2000);
    cr_assert_eq(ok->status, 200, "a %d-field list under the limit was refused", N + 4);

    /* Now raise the count until the RFC size passes 4096: 4 pseudo (184) +
     * 100 fields x 39 = 4084 + ... use 100 fields of 6+2+32 = 40: 4184. */
    t.cfg.max_header_list = 4096;
    static char names2[100][8];
    nghttp2_nv extra2[100];
    size_t rfc = 184;
    for (int i = 0; i < 100; i++) {
        snprintf(names2[i], sizeof names2[i], "y-h%03d", i);
        extra2[i] = (nghttp2_nv){(uint8_t *)names2[i], (uint8_t *)"vv", 6, 2, 0};
        rfc += 6 + 2 + 32;
    }
    cr_assert_gt(rfc, 4096);
    /* h2c_request allows 60 extra fields; submit this one directly. */
    nghttp2_nv nv[104] = {
        H2T_NV(":method", "POST"),
        H2T_NV(":scheme", "http"),
        H2T_NV(":path", "/test/echo"),
        H2T_NV(":authority", "localhost"),
    };
    memcpy(nv + 4, extra2, sizeof extra2);
    cli_stream *cs = &c.cs[c.ncs++];
    cs->id = nghttp2_submit_request(c.ng, NULL, nv, 104, NULL, cs);
    cr_assert_gt(cs->id, 0);
    PUMP_UNTIL(&t, &c, cs->closed, 2000);
    cr_assert(cs->closed);
    /* Counting the gathered bytes (8 bytes of length prefix per field, not
     * 32) would let this 4184-octet list slip under the 4096 limit. */
    cr_expect_eq(cs->status, 431, "a header list of %zu octets (limit 4096) got :status %d", rfc,
                 cs->status);
    cr_expect_eq(t.nst, 1, "the handler saw the oversized header list");
    h2c_close(&c);
    h2t_finish(&t);
}
