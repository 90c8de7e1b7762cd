/* Unit tests for the server (src/http2/server.c, tls.c): configuration,
 * creation errors, graceful shutdown with its grace period, and TLS with
 * ALPN h2. */
#include "h2harness.h"

TestSuite(http2_server, .timeout = 30);

/* connect() to the server's port: 0, or the errno. */
static int try_connect(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    cr_assert_geq(fd, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int rv = connect(fd, (struct sockaddr *)&a, sizeof a) == 0 ? 0 : errno;
    close(fd);
    return rv;
}

Test(http2_server, config_defaults)
{
    http2_server_config cfg;
    memset(&cfg, 0xa5, sizeof cfg);
    http2_server_config_init(&cfg);
    cr_expect_str_eq(cfg.host, "127.0.0.1");
    cr_expect_eq(cfg.port, 50051);
    cr_expect_eq(cfg.tls, 1);
    cr_expect_eq(cfg.max_concurrent_streams, 1000);
    cr_expect_eq(cfg.stream_window, 1u << 20);
    cr_expect_eq(cfg.conn_window, 16u << 20);
    cr_expect_eq(cfg.max_header_list, 16u << 10);
    cr_expect_eq(cfg.stream_send_buffer, 256u << 10);
    cr_expect_null(cfg.handler);
    cr_expect_null(cfg.handler_data);
}

Test(http2_server, new_rejects_a_host_that_is_not_an_address)
{
    h2t t;
    h2t_init(&t);
    t.cfg.host = "localhost";
    char err[256] = "";
    http2_server *srv = (http2_server *)&t; /* must be reset to NULL */
    int rv = http2_server_new(&t.loop, &t.cfg, &srv, err, sizeof err);
    cr_expect_lt(rv, 0);
    cr_expect_null(srv);
    cr_expect_neq(strstr(err, "localhost"), NULL, "error text: %s", err);
    h2t_finish(&t);
}

Test(http2_server, new_rejects_missing_certificate)
{
    h2t t;
    h2t_init(&t);
    t.cfg.tls = 1;
    t.cfg.cert_file = "/nonexistent/oms-test.pem";
    t.cfg.key_file = "/nonexistent/oms-test.key";
    char err[256] = "";
    http2_server *srv = NULL;
    int rv = http2_server_new(&t.loop, &t.cfg, &srv, err, sizeof err);
    cr_expect_lt(rv, 0);
    cr_expect_null(srv);
    cr_expect_neq(strstr(err, "/nonexistent/oms-test.pem"), NULL, "error text: %s", err);
    h2t_finish(&t);
}

Test(http2_server, new_reports_a_port_in_use)
{
    h2t t;
    h2t_init(&t);
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = {.sin_family = AF_INET};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    cr_assert_eq(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
    cr_assert_eq(listen(fd, 1), 0);
    socklen_t alen = sizeof a;
    getsockname(fd, (struct sockaddr *)&a, &alen);
    t.cfg.port = ntohs(a.sin_port);
    char err[256] = "";
    http2_server *srv = NULL;
    int rv = http2_server_new(&t.loop, &t.cfg, &srv, err, sizeof err);
    cr_expect_eq(rv, UV_EADDRINUSE, "rv %d (%s)", rv, err);
    cr_expect_null(srv);
    cr_expect_neq(strstr(err, "cannot listen"), NULL, "error text: %s", err);
    close(fd);
    h2t_finish(&t);
}

/* The workaround for a server that never started: shut it down anyway. */
Test(http2_server, shutdown_of_a_server_that_never_started)
{
    h2t t;
    h2t_init(&t);
    char err[256];
    cr_assert_eq(http2_server_new(&t.loop, &t.cfg, &t.srv, err, sizeof err), 0);
    h2t_shutdown(&t, 1000);
    PUMP_UNTIL(&t, NULL, t.done, 1000);
    cr_expect(t.done);
    h2t_finish(&t);
}

/* http2.h: free() takes a server "whose shutdown completed (or that never
 * started)". A never-started server must hold no libuv handle (the loop
 * would keep pointers into freed memory: omsd frees the server after a
 * failed http2_server_start()) and must give its bound port back. */
Test(http2_server, free_of_a_server_that_never_started_releases_everything)
{
    h2t t;
    h2t_init(&t);
    char err[256];
    cr_assert_eq(http2_server_new(&t.loop, &t.cfg, &t.srv, err, sizeof err), 0);
    int port = http2_server_port(t.srv);
    http2_server_free(t.srv);
    t.srv = NULL;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int rv = bind(fd, (struct sockaddr *)&a, sizeof a);
    int e = errno;
    close(fd);
    /* Stop here if it is still bound: uv_loop_close() would read freed handles. */
    cr_assert_eq(rv, 0, "port %d still taken after http2_server_free: %s", port, strerror(e));
    h2t_finish(&t);
}

Test(http2_server, shutdown_without_connections_completes_at_once)
{
    h2t t;
    h2t_init(&t);
    h2t_start(&t);
    int port = http2_server_port(t.srv);
    cr_expect_eq(try_connect(port), 0);
    PUMP_UNTIL(&t, NULL, http2_server_conn_count(t.srv) == 0, 500);
    uint64_t t0 = h2t_now_ms();
    h2t_shutdown(&t, 5000);
    PUMP_UNTIL(&t, NULL, t.done, 2000);
    cr_expect(t.done);
    cr_expect_lt(h2t_now_ms() - t0, 1000, "waited for the grace period with nothing to drain");
    cr_expect_eq(try_connect(port), ECONNREFUSED);
    /* A second shutdown is a no-op. */
    h2t_shutdown(&t, 5000);
    h2t_finish(&t);
}

Test(http2_server, shutdown_sends_goaway_and_closes_idle_connection)
{
    h2t t;
    h2t_init(&t);
    h2t_start(&t);
    h2c c;
    h2c_connect(&c, &t);
    raw_handshake(&t, &c);
    h2t_shutdown(&t, 5000);
    /* First the notice (GOAWAY 2^31-1) and a PING; the real GOAWAY once the
     * PING comes back. */
    PUMP_UNTIL(&t, &c, raw_goaway(&c, NULL, NULL) && raw_server_pings(&c) > 0, 2000);
    int32_t last = -1;
    uint32_t code = 1;
    cr_assert(raw_goaway(&c, &last, &code), "no GOAWAY");
    cr_expect_eq(code, HTTP2_NO_ERROR);
    cr_expect_eq(last, 0x7fffffff);
    cr_expect(!raw_goaway_nth(&c, 1, NULL, NULL), "the real GOAWAY before the PING ACK");
    int answered = 0;
    raw_ack_pings(&c, &answered);
    PUMP_UNTIL(&t, &c, c.eof && t.done, 2000);
    cr_assert(raw_goaway_nth(&c, 1, &last, &code), "no second GOAWAY");
    cr_expect_eq(code, HTTP2_NO_ERROR);
    cr_expect_eq(last, 0);
    cr_expect(c.eof, "the idle connection stayed open");
    cr_expect(t.done);
    h2c_close(&c);
    h2t_finish(&t);
}

/* GOAWAY(NO_ERROR, last stream) goes out at once; the stream in flight
 * finishes; new connections are refused; done fires when the connection
 * closes, long before the grace period. */
Test(http2_server, graceful_shutdown_lets_the_stream_in_flight_finish)
{
    h2t t;
    h2t_init(&t);
    h2t_start(&t);
    int port = http2_server_port(t.srv);
    h2c c;
    h2c_connect(&c, &t);
    h2c_session(&c, NULL, 0, 0);
    static const uint8_t body[] = "first half;";
    cli_stream *cs = h2c_request(&c, NULL, 0, body, sizeof body - 1, 0, 1);
    PUMP_UNTIL(&t, &c, t.nst == 1 && t.st[0].body.len == sizeof body - 1, 2000);
    cr_assert_eq(t.nst, 1);

    uint64_t t0 = h2t_now_ms();
    h2t_shutdown(&t, 5000);
    /* The notice, then (the client session answers the PING) the real one. */
    PUMP_UNTIL(&t, &c, c.ngoaway > 1, 2000);
    cr_assert_eq(c.ngoaway, 2, "no second GOAWAY");
    cr_expect_eq(c.goaway_code, HTTP2_NO_ERROR);
    cr_expect_eq(c.goaway_last, cs->id);
    cr_expect_eq(try_connect(port), ECONNREFUSED, "a new connection was accepted while draining");
    cr_expect(!t.done);
    cr_expect(!cs->closed);

    h2c_release(&c, cs);
    PUMP_UNTIL(&t, &c, cs->closed && t.done, 3000);
    cr_assert(cs->closed);
    cr_expect_eq(cs->close_code, HTTP2_NO_ERROR);
    cr_expect_eq(cs->status, 200);
    cr_expect_eq(cs->body.len, sizeof body - 1);
    cr_expect(h2t_has_field(&cs->trailers, "x-trailer", "done"));
    cr_expect(t.st[0].closed);
    cr_expect_eq(t.st[0].close_code, HTTP2_NO_ERROR);
    PUMP_UNTIL(&t, &c, c.eof, 1000);
    cr_expect(c.eof, "the drained connection stayed open");
    cr_expect(t.done, "done never fired");
    cr_expect_lt(h2t_now_ms() - t0, 4000, "done waited for the grace period");
    cr_expect_eq(http2_server_conn_count(t.srv), 0);
    h2c_close(&c);
    h2t_finish(&t);
}

/* Streams the client opens after the GOAWAY are not processed; the one below
 * last-stream-id still is. */
Test(http2_server, streams_after_shutdown_goaway_are_ignored)
{
    h2t t;
    h2t_init(&t);
    h2t_start(&t);
    h2c c;
    h2c_connect(&c, &t);
    raw_handshake(&t, &c);
    raw_headers(&c, 1, 0);
    raw_sync(&t, &c, 1);
    cr_assert_eq(t.nst, 1);
    h2t_shutdown(&t, 5000);
    int32_t last = -1;
    uint32_t code = 1;
    int answered = 0;
    PUMP_UNTIL(&t, &c, raw_ack_pings(&c, &answered) > 0 && raw_goaway_nth(&c, 1, NULL, NULL), 2000);
    cr_assert(raw_goaway_nth(&c, 1, &last, &code));
    cr_expect_eq(last, 1);
    cr_expect_eq(code, HTTP2_NO_ERROR);
    raw_headers(&c, 3, FL_END_STREAM);
    raw_frame(&c, FT_DATA, FL_END_STREAM, 1, "tail", 4);
    PUMP_UNTIL(&t, &c, c.eof, 2000);
    cr_expect(c.eof);
    cr_expect_eq(t.nst, 1, "stream 3 was opened after GOAWAY(last=1)");
    cr_expect(t.st[0].ended);
    cr_expect_eq(t.st[0].close_code, HTTP2_NO_ERROR);
    h2_frame f;
    int es = 0;
    for (int i = 0; raw_find_nth(&c, FT_HEADERS, 1, i, &f); i++)
        es |= f.flags & FL_END_STREAM;
    cr_expect(es, "stream 1 never finished");
    cr_expect_eq(raw_count(&c, FT_HEADERS, 3), 0);
    PUMP_UNTIL(&t, &c, t.done, 1000);
    cr_expect(t.done);
    h2c_close(&c);
    h2t_finish(&t);
}

/* A request already on its way when the drain starts (sent before the
 * client saw the notice) is served; the real GOAWAY, one PING round trip
 * later, names it; a stream opened after that is not. */
Test(http2_server, drain_serves_the_request_sent_during_the_notice)
{
    h2t t;
    h2t_init(&t);
    t.mode = H2T_TRAILERS_ONLY;
    h2t_start(&t);
    h2c c;
    h2c_connect(&c, &t);
    raw_handshake(&t, &c);
    h2t_shutdown(&t, 5000);
    PUMP_UNTIL(&t, &c, raw_goaway(&c, NULL, NULL) && raw_server_pings(&c) > 0, 2000);
    int32_t last = -1;
    cr_assert(raw_goaway(&c, &last, NULL));
    cr_expect_eq(last, 0x7fffffff);
    raw_headers(&c, 1, FL_END_STREAM); /* in flight when the notice left */
    raw_headers(&c, 3, FL_END_STREAM);
    int answered = 0;
    PUMP_UNTIL(&t, &c, t.nst == 2, 2000);
    raw_ack_pings(&c, &answered);
    PUMP_UNTIL(&t, &c, raw_goaway_nth(&c, 1, NULL, NULL), 2000);
    uint32_t code = 1;
    cr_assert(raw_goaway_nth(&c, 1, &last, &code), "no second GOAWAY");
    cr_expect_eq(last, 3);
    cr_expect_eq(code, HTTP2_NO_ERROR);
    raw_headers(&c, 5, FL_END_STREAM);
    PUMP_UNTIL(&t, &c, c.eof && t.done, 2000);
    cr_expect_eq(t.nst, 2, "stream 5 was served after GOAWAY(last=3)");
    cr_expect_eq(raw_count(&c, FT_HEADERS, 1), 1);
    cr_expect_eq(raw_count(&c, FT_HEADERS, 3), 1);
    cr_expect_eq(raw_count(&c, FT_HEADERS, 5), 0);
    cr_expect(c.eof && t.done);
    h2c_close(&c);
    h2t_finish(&t);
}

/* A client that never answers the PING is closed when the grace period
 * ends, like any other. */
Test(http2_server, drain_without_ping_ack_ends_at_the_grace_period)
{
    h2t t;
    h2t_init(&t);
    h2t_start(&t);
    h2c c;
    h2c_connect(&c, &t);
    raw_handshake(&t, &c);
    uint64_t t0 = h2t_now_ms();
    h2t_shutdown(&t, 200);
    PUMP_UNTIL(&t, &c, c.eof && t.done, 2000);
    cr_expect(c.eof && t.done);
    cr_expect_geq(h2t_now_ms() - t0, 200);
    cr_expect(!raw_goaway_nth(&c, 1, NULL, NULL));
    h2c_close(&c);
    h2t_finish(&t);
}

/* Some clients ignore every frame after a GOAWAY (python-h2) and never
 * answer the drain's PING: the real GOAWAY goes one second later anyway. */
Test(http2_server, drain_notice_unanswered_gets_the_real_goaway_after_a_second)
{
    h2t t;
    h2t_init(&t);
    t.mode = H2T_HOLD;
    h2t_start(&t);
    h2c c;
    h2c_connect(&c, &t);
    raw_handshake(&t, &c);
    raw_headers(&c, 1, 0);
    raw_sync(&t, &c, 7);
    uint64_t t0 = h2t_now_ms();
    h2t_shutdown(&t, 5000);
    PUMP_UNTIL(&t, &c, raw_goaway_nth(&c, 1, NULL, NULL), 3000);
    uint64_t dt = h2t_now_ms() - t0;
    int32_t last = -1;
    cr_assert(raw_goaway_nth(&c, 1, &last, NULL), "no real GOAWAY without the PING ACK");
    cr_expect_eq(last, 1);
    cr_expect_geq(dt, HTTP2_DRAIN_ACK_WAIT_MS - 50);
    cr_expect_lt(dt, 2500);
    cr_expect(!t.st[0].closed, "the call in flight was dropped");
    h2c_close(&c);
    h2t_finish(&t);
}

/* A stream that never finishes: at the end of the grace period the
 * connection is closed and the handler hears HTTP2_CANCEL. */
Test(http2_server, grace_expiry_closes_connections)
{
    h2t t;
    h2t_init(&t);
    t.mode = H2T_HOLD;
    h2t_start(&t);
    h2c c;
    h2c_connect(&c, &t);
    h2c_session(&c, NULL, 0, 0);
    h2c_request(&c, NULL, 0, NULL, 0, 0, 1);
    PUMP_UNTIL(&t, &c, t.nst == 1, 2000);
    cr_assert_eq(t.nst, 1);
    uint64_t t0 = h2t_now_ms();
    h2t_shutdown(&t, 100);
    h2t_pump_for(&t, &c, 50);
    cr_expect(!t.done, "done before the grace period ended");
    cr_expect(!c.eof);
    cr_expect_eq(c.ngoaway, 2); /* the notice and the real one */
    PUMP_UNTIL(&t, &c, t.done && c.eof, 2000);
    uint64_t elapsed = h2t_now_ms() - t0;
    cr_expect(t.done, "done never fired");
    cr_expect(c.eof, "the connection outlived the grace period");
    cr_expect_geq(elapsed, 100);
    cr_expect_lt(elapsed, 1500);
    cr_expect(t.st[0].closed);
    cr_expect_eq(t.st[0].close_code, HTTP2_CANCEL);
    cr_expect_eq(t.st[0].nclose, 1);
    cr_expect_eq(http2_server_conn_count(t.srv), 0);
    h2c_close(&c);
    h2t_finish(&t);
}

/* --- TLS ----------------------------------------------------------------------- */

static const unsigned char alpn_h2[] = {2, 'h', '2'};
static const unsigned char alpn_http11[] = {8, 'h', 't', 't', 'p', '/', '1', '.', '1'};

Test(http2_server, tls_alpn_h2_request_roundtrip)
{
    h2t t;
    h2t_init(&t);
    h2t_make_certs(&t);
    h2t_start(&t);
    h2c c;
    h2c_connect_tls(&c, &t, alpn_h2, sizeof alpn_h2);
    h2c_session(&c, NULL, 0, 0);
    static uint8_t body[50000];
    h2t_fill(body, 0, sizeof body);
    cli_stream *cs = h2c_request(&c, NULL, 0, body, sizeof body, 0, 0);
    PUMP_UNTIL(&t, &c, cs->closed || c.eof, 3000);
    cr_assert(c.handshake_done, "TLS handshake failed");
    const unsigned char *proto;
    unsigned plen;
    SSL_get0_alpn_selected(c.ssl, &proto, &plen);
    cr_expect(plen == 2 && memcmp(proto, "h2", 2) == 0, "ALPN not h2");
    cr_assert(cs->closed);
    cr_expect_eq(cs->status, 200);
    cr_assert_eq(cs->body.len, sizeof body);
    cr_expect_eq(h2t_check_pattern(cs->body.p, cs->body.len), cs->body.len);
    cr_expect(h2t_has_field(&cs->trailers, "x-trailer", "done"));
    h2c_close(&c);
    h2t_finish(&t);
}

Test(http2_server, tls_client_without_h2_is_refused)
{
    h2t t;
    h2t_init(&t);
    h2t_make_certs(&t);
    h2t_start(&t);
    h2c c;
    h2c_connect_tls(&c, &t, alpn_http11, sizeof alpn_http11);
    PUMP_UNTIL(&t, &c, c.eof, 2000);
    cr_expect(c.tls_failed, "the handshake succeeded without h2");
    PUMP_UNTIL(&t, &c, http2_server_conn_count(t.srv) == 0, 2000);
    cr_expect_eq(http2_server_conn_count(t.srv), 0);
    h2c_close(&c);
    h2t_finish(&t);
}

Test(http2_server, tls_client_without_alpn_is_closed)
{
    h2t t;
    h2t_init(&t);
    h2t_make_certs(&t);
    h2t_start(&t);
    h2c c;
    h2c_connect_tls(&c, &t, NULL, 0);
    raw_preface(&c);
    PUMP_UNTIL(&t, &c, c.eof, 2000);
    cr_expect(c.eof, "a client without ALPN kept its connection");
    cr_expect_eq(c.in.len, 0, "the server spoke HTTP/2 without ALPN h2");
    PUMP_UNTIL(&t, &c, http2_server_conn_count(t.srv) == 0, 2000);
    cr_expect_eq(http2_server_conn_count(t.srv), 0);
    h2c_close(&c);
    h2t_finish(&t);
}

/* Counts the TLS records carrying application data that the client reads
 * (TLS 1.3: every encrypted record's outer type is application_data; the
 * inner type tells a response's records from handshake messages). */
static void count_app_records(int write_p, int version, int content_type, const void *buf,
                              size_t len, SSL *ssl, void *arg)
{
    (void)version;
    (void)ssl;
    if (!write_p && content_type == SSL3_RT_INNER_CONTENT_TYPE && len == 1 &&
        *(const uint8_t *)buf == SSL3_RT_APPLICATION_DATA)
        (*(int *)arg)++;
}

/* A unary-sized exchange over TLS: the response's HEADERS, DATA and trailers
 * (and whatever else the server says in that turn) are gathered and
 * encrypted together, so they reach the client as one TLS record rather
 * than one record per frame. */
Test(http2_server, tls_unary_response_is_one_record)
{
    h2t t;
    h2t_init(&t);
    h2t_make_certs(&t);
    h2t_start(&t);
    h2c c;
    h2c_connect_tls(&c, &t, alpn_h2, sizeof alpn_h2);
    int records = 0;
    SSL_set_msg_callback(c.ssl, count_app_records);
    SSL_set_msg_callback_arg(c.ssl, &records);
    h2c_session(&c, NULL, 0, 0);
    h2c_handshake(&t, &c);
    static uint8_t body[64];
    h2t_fill(body, 0, sizeof body);
    for (int i = 0; i < 3; i++) {
        records = 0;
        cli_stream *cs = h2c_request(&c, NULL, 0, body, sizeof body, 0, 0);
        PUMP_UNTIL(&t, &c, cs->closed || c.eof, 3000);
        cr_assert(cs->closed, "call %d did not complete", i);
        cr_expect_eq(cs->status, 200);
        cr_expect_eq(cs->body.len, sizeof body);
        cr_expect(h2t_has_field(&cs->trailers, "x-trailer", "done"));
        cr_expect_eq(records, 1, "call %d: the response took %d TLS records", i, records);
    }
    /* Ten calls that arrive together are answered in one turn: one record. */
    records = 0;
    cli_stream *cs[10];
    for (int i = 0; i < 10; i++)
        cs[i] = h2c_request(&c, NULL, 0, body, sizeof body, 0, 0);
    PUMP_UNTIL(&t, &c, cs[9]->closed || c.eof, 3000);
    for (int i = 0; i < 10; i++)
        cr_assert(cs[i]->closed && cs[i]->status == 200, "call %d did not complete", i);
    cr_expect_eq(records, 1, "10 responses took %d TLS records", records);
    h2c_close(&c);
    h2t_finish(&t);
}

/* A response larger than a record is cut into full 16 KiB records, not one
 * record per DATA frame. */
Test(http2_server, tls_large_response_fills_records)
{
    h2t t;
    h2t_init(&t);
    h2t_make_certs(&t);
    t.cfg.stream_window = 1 << 20;
    h2t_start(&t);
    h2c c;
    h2c_connect_tls(&c, &t, alpn_h2, sizeof alpn_h2);
    int records = 0;
    SSL_set_msg_callback(c.ssl, count_app_records);
    SSL_set_msg_callback_arg(c.ssl, &records);
    nghttp2_settings_entry iv[] = {{NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, 1 << 20}};
    h2c_session(&c, iv, 1, 0);
    cr_assert_eq(nghttp2_session_set_local_window_size(c.ng, NGHTTP2_FLAG_NONE, 0, 1 << 20), 0);
    h2c_handshake(&t, &c);
    static uint8_t body[48000]; /* echoed back: 48,000 bytes of DATA, 3 frames */
    h2t_fill(body, 0, sizeof body);
    records = 0;
    cli_stream *cs = h2c_request(&c, NULL, 0, body, sizeof body, 0, 0);
    PUMP_UNTIL(&t, &c, cs->closed || c.eof, 3000);
    cr_assert(cs->closed);
    cr_assert_eq(cs->body.len, sizeof body);
    cr_expect_eq(h2t_check_pattern(cs->body.p, cs->body.len), cs->body.len);
    /* 48,000 bytes of body plus frame headers fit in 3 full records and a
     * bit; the echo may answer in more than one turn as the request's DATA
     * arrives, each turn's output ending in a partial record. */
    cr_expect_leq(records, 6, "a 48,000-byte response took %d TLS records", records);
    h2c_close(&c);
    h2t_finish(&t);
}

/* A response written at once fills a flush past HTTP2_SEAL_CHUNK, which is
 * then encrypted in pieces: the bytes still arrive whole and in order. */
Test(http2_server, tls_big_flush_is_sealed_in_pieces)
{
    h2t t;
    h2t_init(&t);
    h2t_make_certs(&t);
    t.cfg.stream_window = 1 << 20;
    t.cfg.stream_send_buffer = 1 << 20;
    t.mode = H2T_BIG;
    t.big_total = 600000;
    t.big_chunk = 16384;
    h2t_start(&t);
    h2c c;
    h2c_connect_tls(&c, &t, alpn_h2, sizeof alpn_h2);
    nghttp2_settings_entry iv[] = {{NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, 1 << 20}};
    h2c_session(&c, iv, 1, 0);
    cr_assert_eq(nghttp2_session_set_local_window_size(c.ng, NGHTTP2_FLAG_NONE, 0, 1 << 20), 0);
    h2c_handshake(&t, &c);
    cli_stream *cs = h2c_request(&c, NULL, 0, NULL, 0, 0, 0);
    PUMP_UNTIL(&t, &c, cs->closed || c.eof, 5000);
    cr_assert(cs->closed);
    cr_expect_eq(cs->status, 200);
    cr_assert_eq(cs->body.len, t.big_total);
    cr_expect_eq(h2t_check_pattern(cs->body.p, cs->body.len), cs->body.len);
    cr_expect(h2t_has_field(&cs->trailers, "x-trailer", "big"));
    h2c_close(&c);
    h2t_finish(&t);
}

/* After a bad preface over TLS the rest of the input is ignored: one GOAWAY,
 * then close, however many TLS records the garbage spans. */
Test(http2_server, tls_garbage_preface_gets_one_goaway)
{
    h2t t;
    h2t_init(&t);
    h2t_make_certs(&t);
    h2t_start(&t);
    h2c c;
    h2c_connect_tls(&c, &t, alpn_h2, sizeof alpn_h2);
    static uint8_t junk[60000];
    memset(junk, 'G', sizeof junk);
    h2c_send(&c, junk, sizeof junk);
    PUMP_UNTIL(&t, &c, c.eof, 3000);
    cr_assert(c.handshake_done);
    cr_expect(c.eof, "the server kept the connection");
    int32_t last;
    uint32_t code;
    cr_assert(raw_goaway(&c, &last, &code), "no GOAWAY");
    cr_expect_eq(code, HTTP2_PROTOCOL_ERROR);
    cr_expect_eq(raw_count(&c, FT_GOAWAY, 0), 1);
    h2c_close(&c);
    h2t_finish(&t);
}
