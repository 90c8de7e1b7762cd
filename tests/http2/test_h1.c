/* HTTP/1.1 on the HTTP/2 server's port (h1.c): raw bytes over loopback to a
 * server with http1 on, the stream handler of h2harness.h on the other side
 * (ECHO: 200 at once, the body echoed, trailers at the end). */
#include <inttypes.h>

#include "h2harness.h"

static const unsigned char alpn_h2_h1[] = {2, 'h', '2', 8, 'h', 't', 't', 'p', '/', '1', '.', '1'};
static const unsigned char alpn_http11[] = {8, 'h', 't', 't', 'p', '/', '1', '.', '1'};

static void h1_init(h2t *t)
{
    h2t_init(t);
    t->cfg.http1 = 1;
}

/* An HTTP/1.1 server in mode and a raw cleartext client connected to it. */
static void h1_start(h2t *t, h2c *c, h2t_mode mode)
{
    h1_init(t);
    t->mode = mode;
    h2t_start(t);
    h2c_connect(c, t);
}

static void send_str(h2c *c, const char *s)
{
    h2c_send(c, s, strlen(s));
}

/* Occurrences of needle in what the server sent. */
static int count_in(const h2c *c, const char *needle)
{
    size_t n = strlen(needle);
    int k = 0;
    for (size_t i = 0; i + n <= c->in.len; i++)
        if (memcmp(c->in.p + i, needle, n) == 0)
            k++;
    return k;
}

/* Whether what the server sent so far ends with s (cheap on a big answer). */
static bool ends_with(const h2c *c, const char *s)
{
    size_t n = strlen(s);
    return c->in.len >= n && memcmp(c->in.p + c->in.len - n, s, n) == 0;
}

/* Waits until the server has no connection; then n closed for reason. */
static void expect_closed_by(h2t *t, h2c *c, int reason, uint64_t n)
{
    PUMP_UNTIL(t, c, http2_server_conn_count(t->srv) == 0, 3000);
    uint64_t by[HTTP2_CLOSE_REASONS];
    http2_server_get_closed_by(t->srv, by);
    cr_expect_eq(by[reason], n, "closed for %s: %" PRIu64, http2_close_reason_name(reason),
                 by[reason]);
}

#define WAIT_FOR(t, c, needle, times)                                                              \
    PUMP_UNTIL((t), (c), count_in((c), (needle)) >= (times) || (c)->eof, 3000)

/* The server's bytes as a C string (for messages and strstr). */
static const char *in_str(h2c *c)
{
    h2t_buf_add(&c->in, "", 1);
    c->in.len--;
    return (const char *)c->in.p;
}

/* Decodes the chunked body that starts after the first blank line of
 * c->in into out; returns the offset just past it (trailers included), or 0
 * if it is not complete or malformed. */
static size_t dechunk(h2c *c, h2t_buf *out)
{
    const char *s = in_str(c);
    const char *p = strstr(s, "\r\n\r\n");
    if (!p)
        return 0;
    p += 4;
    const char *end = s + c->in.len;
    for (;;) {
        char *e;
        unsigned long n = strtoul(p, &e, 16);
        if (e == p || e + 2 > end || e[0] != '\r' || e[1] != '\n')
            return 0;
        p = e + 2;
        if (n == 0) {
            const char *t = strstr(p, "\r\n\r\n");
            if (p + 2 <= end && p[0] == '\r' && p[1] == '\n')
                return (size_t)(p + 2 - s);
            return t ? (size_t)(t + 4 - s) : 0;
        }
        if (p + n + 2 > end)
            return 0;
        h2t_buf_add(out, p, n);
        p += n + 2;
    }
}

Test(http2_h1, get_keepalive_headers_as_http2)
{
    h2t t;
    h2c c;
    h1_start(&t, &c, H2T_ECHO);
    send_str(&c, "GET /a/b?x=1 HTTP/1.1\r\nHost: example.test:8080\r\nX-Custom: Value\r\n"
                 "Connection: keep-alive , X-Hop\r\nKeep-Alive: timeout=5\r\nTE: trailers\r\n"
                 "Upgrade: foo\r\nX-Hop: dropped\r\nConnection: x-other\r\n"
                 "X-Other: dropped\r\nX-Hopper: kept\r\n\r\n");
    WAIT_FOR(&t, &c, "\r\n0\r\n", 1);
    WAIT_FOR(&t, &c, "x-bytes: 0\r\n\r\n", 1);
    const char *in = in_str(&c);
    cr_assert(strncmp(in, "HTTP/1.1 200 OK\r\n", 17) == 0, "%s", in);
    cr_expect(strstr(in, "transfer-encoding: chunked\r\n"), "%s", in);
    cr_expect(strstr(in, "x-mode: echo\r\n"), "%s", in);
    cr_expect(strstr(in, "x-trailer: done\r\n"), "trailers: %s", in);
    cr_expect(!strstr(in, "connection: close"), "%s", in);
    cr_assert_eq(t.nst, 1);
    srv_stream *r = &t.st[0];
    cr_expect(h2t_has_field(&r->hdr, ":method", "GET"));
    cr_expect(h2t_has_field(&r->hdr, ":scheme", "http"));
    cr_expect(h2t_has_field(&r->hdr, ":authority", "example.test:8080"));
    cr_expect(h2t_has_field(&r->hdr, ":path", "/a/b?x=1"));
    cr_expect(h2t_has_field(&r->hdr, "x-custom", "Value"), "%.*s", (int)r->hdr.len, r->hdr.p);
    /* fields a Connection header names are hop-by-hop too; a longer name
     * that starts like one is not */
    cr_expect(h2t_has_field(&r->hdr, "x-hopper", "kept"), "%.*s", (int)r->hdr.len, r->hdr.p);
    cr_expect(!h2t_has_field(&r->hdr, "x-hop", "dropped") &&
                  !h2t_has_field(&r->hdr, "x-other", "dropped"),
              "fields named by Connection passed on: %.*s", (int)r->hdr.len, r->hdr.p);
    const char *hdr = (const char *)r->hdr.p;
    cr_expect(!memmem(hdr, r->hdr.len, "connection", 10) &&
                  !memmem(hdr, r->hdr.len, "keep-alive", 10) &&
                  !memmem(hdr, r->hdr.len, "\nte:", 4) && !memmem(hdr, r->hdr.len, "upgrade", 7) &&
                  !memmem(hdr, r->hdr.len, "host:", 5),
              "hop-by-hop fields passed on: %.*s", (int)r->hdr.len, hdr);
    cr_expect(r->ended && r->closed && r->close_code == HTTP2_NO_ERROR);
    /* the same connection serves a second request */
    c.in.len = 0;
    send_str(&c, "GET /second HTTP/1.1\r\nHost: h\r\n\r\n");
    WAIT_FOR(&t, &c, "x-bytes: 0\r\n\r\n", 1);
    cr_assert_eq(t.nst, 2);
    cr_expect(h2t_has_field(&t.st[1].hdr, ":path", "/second"));
    cr_expect_eq(t.st[1].id, 3, "HTTP/2-style stream ids");
    cr_expect(!c.eof);
    http2_http1_stats hs;
    http2_server_get_http1_stats(t.srv, &hs);
    cr_expect_eq(hs.connections, 1);
    cr_expect_eq(hs.requests, 2);
    h2c_close(&c);
    h2t_finish(&t);
}

Test(http2_h1, post_content_length_and_chunked_bodies_echoed)
{
    h2t t;
    h2c c;
    h1_start(&t, &c, H2T_ECHO);
    send_str(&c, "POST /e HTTP/1.1\r\nHost: h\r\nContent-Length: 11\r\n\r\nhello world");
    WAIT_FOR(&t, &c, "x-bytes: 11\r\n\r\n", 1);
    h2t_buf body = {0};
    cr_assert_gt(dechunk(&c, &body), 0, "%s", in_str(&c));
    cr_expect(body.len == 11 && memcmp(body.p, "hello world", 11) == 0);
    h2t_buf_free(&body);
    c.in.len = 0;
    send_str(&c, "POST /e HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
                 "5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\nX-Req-Trailer: t\r\n\r\n");
    WAIT_FOR(&t, &c, "x-bytes: 11\r\n\r\n", 1);
    cr_assert_gt(dechunk(&c, &body), 0, "%s", in_str(&c));
    cr_expect(body.len == 11 && memcmp(body.p, "hello world", 11) == 0);
    cr_assert_eq(t.nst, 2);
    cr_expect(t.st[1].body.len == 11 && memcmp(t.st[1].body.p, "hello world", 11) == 0,
              "de-chunked request body");
    cr_expect(t.st[1].ended);
    h2t_buf_free(&body);
    h2c_close(&c);
    h2t_finish(&t);
}

Test(http2_h1, pipelined_requests_answered_in_order_one_at_a_time)
{
    h2t t;
    h2c c;
    h1_start(&t, &c, H2T_HOLD);
    send_str(&c, "GET /1 HTTP/1.1\r\nHost: h\r\n\r\nPOST /2 HTTP/1.1\r\nHost: h\r\n"
                 "Content-Length: 3\r\n\r\nabcGET /3 HTTP/1.1\r\nHost: h\r\n\r\n");
    PUMP_UNTIL(&t, &c, t.nst >= 1, 2000);
    h2t_pump_for(&t, &c, 50);
    cr_assert_eq(t.nst, 1, "a request opened before the one ahead was answered");
    for (int i = 0; i < 3; i++) {
        PUMP_UNTIL(&t, &c, t.nst > i && t.st[i].ended, 2000);
        cr_assert_eq(t.nst, i + 1);
        srv_stream *r = &t.st[i];
        cr_expect_eq(http2_stream_http_version(r->s), 1);
        char body[8];
        int n = snprintf(body, sizeof body, "r%d", i + 1);
        char len[8];
        snprintf(len, sizeof len, "%d", n);
        http2_header h[] = {{":status", 7, "200", 3}, {"content-length", 14, len, strlen(len)}};
        cr_assert_eq(http2_stream_respond(r->s, h, 2), 0);
        cr_assert_eq(http2_stream_write(r->s, (const uint8_t *)body, (size_t)n), 0);
        cr_assert_eq(http2_stream_end(r->s, NULL, 0), 0);
        PUMP_UNTIL(&t, &c, r->closed, 2000);
        cr_expect_eq(r->close_code, HTTP2_NO_ERROR);
    }
    WAIT_FOR(&t, &c, "r3", 1);
    const char *in = in_str(&c);
    const char *a = strstr(in, "r1"), *b = strstr(in, "r2"), *d = strstr(in, "r3");
    cr_expect(a && b && d && a < b && b < d, "out of order: %s", in);
    cr_expect(!strstr(in, "chunked"), "content-length answers are not chunked: %s", in);
    cr_expect(t.st[1].body.len == 3 && memcmp(t.st[1].body.p, "abc", 3) == 0);
    h2c_close(&c);
    h2t_finish(&t);
}

Test(http2_h1, trailers_only_answer_is_headers_with_empty_body)
{
    h2t t;
    h2c c;
    h1_start(&t, &c, H2T_TRAILERS_ONLY);
    send_str(&c, "GET / HTTP/1.1\r\nHost: h\r\n\r\nHEAD / HTTP/1.1\r\nHost: h\r\n\r\n");
    WAIT_FOR(&t, &c, "x-only: yes\r\n", 2);
    PUMP_UNTIL(&t, &c, t.nst == 2 && t.st[1].closed, 2000);
    const char *in = in_str(&c);
    cr_expect_eq(count_in(&c, "content-length: 0\r\n"), 1, "%s", in);
    cr_expect_eq(count_in(&c, "HTTP/1.1 200 OK\r\n"), 2, "%s", in);
    cr_expect(!strstr(in, "chunked"), "%s", in);
    h2c_close(&c);
    h2t_finish(&t);
}

Test(http2_h1, http10_and_connection_close_end_the_connection)
{
    h2t t;
    h2c c;
    h1_start(&t, &c, H2T_ECHO);
    send_str(&c, "GET / HTTP/1.0\r\n\r\n");
    PUMP_UNTIL(&t, &c, c.eof, 3000);
    cr_assert(c.eof);
    const char *in = in_str(&c);
    cr_expect(strstr(in, "connection: close\r\n") && !strstr(in, "chunked"), "%s", in);
    cr_expect(strstr(in, "\r\n\r\n"));
    h2c_close(&c);
    h2c_connect(&c, &t);
    send_str(&c, "GET / HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\nGET /never HTTP/1.1\r\n"
                 "Host: h\r\n\r\n");
    PUMP_UNTIL(&t, &c, c.eof, 3000);
    cr_assert(c.eof);
    cr_expect_eq(count_in(&c, "HTTP/1.1 200"), 1, "%s", in_str(&c));
    cr_expect_eq(t.nst, 2, "the request after Connection: close was served");
    expect_closed_by(&t, &c, HTTP2_CLOSE_PEER, 2); /* as the client asked */
    h2c_close(&c);
    h2t_finish(&t);
}

/* Sends req on a fresh connection and expects "HTTP/1.1 <status>" and the
 * connection closed; the handler never sees a request unless seen. */
static void expect_refused(const char *req, size_t len, const char *status, int seen)
{
    h2t t;
    h1_init(&t);
    t.cfg.h1_max_head = 1024;
    t.cfg.h1_max_headers = 16;
    t.cfg.h1_max_body = 1000;
    h2t_start(&t);
    h2c c;
    h2c_connect(&c, &t);
    h2c_send(&c, req, len);
    PUMP_UNTIL(&t, &c, c.eof, 3000);
    cr_assert(c.eof, "not closed after %s", req);
    char want[32];
    snprintf(want, sizeof want, "HTTP/1.1 %s ", status);
    const char *in = in_str(&c);
    cr_expect(strncmp(in, want, strlen(want)) == 0, "%s: got %s", req, in);
    cr_expect(strstr(in, "connection: close\r\n"), "%s", in);
    cr_expect_eq(t.nst, seen, "the handler saw %d requests", t.nst);
    expect_closed_by(&t, &c, HTTP2_CLOSE_PROTOCOL_ERROR, 1);
    http2_http1_stats hs;
    http2_server_get_http1_stats(t.srv, &hs);
    cr_expect_eq(hs.refused, 1);
    h2c_close(&c);
    h2t_finish(&t);
}

#define REFUSED(req, status, seen) expect_refused(req, sizeof(req) - 1, status, seen)

Test(http2_h1, smuggling_and_malformed_requests_get_400_and_close)
{
    /* both framings */
    REFUSED("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n"
            "0\r\n\r\n",
            "400", 0);
    REFUSED("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n"
            "0\r\n\r\n",
            "400", 0);
    /* an encoding we cannot undo, or chunked not alone */
    REFUSED("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n",
            "400", 0);
    REFUSED("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n"
            "Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
            "400", 0);
    /* two lengths */
    REFUSED("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab", "400",
            0);
    /* obs-fold, NUL and CR in a value, a space in a name */
    REFUSED("GET / HTTP/1.1\r\nHost: h\r\nX-A: one\r\n two\r\n\r\n", "400", 0);
    REFUSED("GET / HTTP/1.1\r\nHost: h\r\nX-A: o\0ne\r\n\r\n", "400", 0);
    REFUSED("GET / HTTP/1.1\r\nHost: h\r\nX-A: o\rne\r\n\r\n", "400", 0);
    REFUSED("GET / HTTP/1.1\r\nHost: h\r\nX A: one\r\n\r\n", "400", 0);
    /* no Host, two Hosts, a target that is not a path */
    REFUSED("GET / HTTP/1.1\r\n\r\n", "400", 0);
    REFUSED("GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", "400", 0);
    REFUSED("GET x HTTP/1.1\r\nHost: a\r\n\r\n", "400", 0);
    /* HTTP/2.0 and 3.0 request lines, CONNECT */
    REFUSED("GET / HTTP/3.0\r\nHost: a\r\n\r\n", "400", 0);
    REFUSED("CONNECT h:443 HTTP/1.1\r\nHost: h:443\r\n\r\n", "405", 0);
    /* a request line, then a control byte in a field name */
    REFUSED("GET / HTTP/1.1\r\nHost: h\r\nBad\x01Name: x\r\n\r\n", "400", 0);
}

Test(http2_h1, bad_chunks_mid_body_get_400_after_the_handler_saw_the_request)
{
    REFUSED("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n",
            "400", 1);
    /* a chunk size that overflows 64 bits */
    REFUSED("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
            "fffffffffffffffffffff\r\nx\r\n",
            "400", 1);
    /* chunk data longer than its size */
    REFUSED("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nabc\r\n", "400",
            1);
}

Test(http2_h1, limits_413_and_431)
{
    /* a declared body over h1_max_body (1000) */
    REFUSED("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 1001\r\n\r\n", "413", 0);
    /* a head over h1_max_head (1024) */
    char big[2048];
    int n = snprintf(big, sizeof big, "GET / HTTP/1.1\r\nHost: h\r\nX-Big: %01200d\r\n\r\n", 7);
    expect_refused(big, (size_t)n, "431", 0);
    /* more than h1_max_headers (16) fields */
    char many[2048];
    size_t k = (size_t)snprintf(many, sizeof many, "GET / HTTP/1.1\r\nHost: h\r\n");
    for (int i = 0; i < 20; i++)
        k += (size_t)snprintf(many + k, sizeof many - k, "X-%d: v\r\n", i);
    k += (size_t)snprintf(many + k, sizeof many - k, "\r\n");
    expect_refused(many, k, "431", 0);
}

Test(http2_h1, chunked_body_not_consumed_over_the_limit_gets_413)
{
    h2t t;
    h1_init(&t);
    t.cfg.h1_max_body = 1000;
    t.cfg.stream_window = 1 << 20; /* above the limit: the limit speaks first */
    t.consume = 0;
    h2t_start(&t);
    h2c c;
    h2c_connect(&c, &t);
    t.mode = H2T_HOLD; /* no answer: the handler sits on the body */
    send_str(&c, "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n");
    char chunk[600];
    memset(chunk, 'a', sizeof chunk);
    for (int i = 0; i < 2; i++) {
        send_str(&c, "258\r\n");
        h2c_send(&c, chunk, sizeof chunk);
        send_str(&c, "\r\n");
    }
    PUMP_UNTIL(&t, &c, c.eof, 3000);
    cr_assert(c.eof);
    cr_expect(strncmp(in_str(&c), "HTTP/1.1 413 ", 13) == 0, "%s", in_str(&c));
    cr_assert_eq(t.nst, 1);
    cr_expect(t.st[0].closed && t.st[0].close_code == HTTP2_PROTOCOL_ERROR);
    h2c_close(&c);
    h2t_finish(&t);
}

Test(http2_h1, slow_head_gets_408_and_close)
{
    h2t t;
    h1_init(&t);
    t.cfg.h1_header_timeout_ms = 200;
    h2t_start(&t);
    h2c c;
    h2c_connect(&c, &t);
    send_str(&c, "GET / HTTP/1.1\r\nHost: h\r\nX-Slow: ");
    uint64_t t0 = h2t_now_ms();
    PUMP_UNTIL(&t, &c, c.eof, 3000);
    cr_assert(c.eof);
    cr_expect_geq(h2t_now_ms() - t0, 150);
    cr_expect(strncmp(in_str(&c), "HTTP/1.1 408 ", 13) == 0, "%s", in_str(&c));
    cr_expect_eq(t.nst, 0);
    expect_closed_by(&t, &c, HTTP2_CLOSE_KEEPALIVE_TIMEOUT, 1);
    h2c_close(&c);
    h2t_finish(&t);
}

Test(http2_h1, idle_keepalive_connection_closes)
{
    h2t t;
    h1_init(&t);
    t.cfg.h1_idle_timeout_ms = 150;
    h2t_start(&t);
    h2c c;
    h2c_connect(&c, &t);
    send_str(&c, "GET / HTTP/1.1\r\nHost: h\r\n\r\n");
    WAIT_FOR(&t, &c, "x-bytes: 0\r\n\r\n", 1);
    PUMP_UNTIL(&t, &c, c.eof, 3000);
    cr_assert(c.eof, "an idle keep-alive connection stayed open");
    expect_closed_by(&t, &c, HTTP2_CLOSE_IDLE, 1);
    h2c_close(&c);
    h2t_finish(&t);
}

Test(http2_h1, request_split_byte_by_byte)
{
    h2t t;
    h2c c;
    h1_start(&t, &c, H2T_ECHO);
    /* a prefix of the HTTP/2 preface first ("P"), then an HTTP/1.1 request */
    static const char req[] =
        "POST /split HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
        "3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n";
    for (size_t i = 0; i < sizeof req - 1; i++) {
        h2c_send(&c, req + i, 1);
        h2c_flush(&c);
        h2t_step(&t, &c);
    }
    WAIT_FOR(&t, &c, "x-bytes: 5\r\n\r\n", 1);
    h2t_buf body = {0};
    cr_assert_gt(dechunk(&c, &body), 0, "%s", in_str(&c));
    cr_expect(body.len == 5 && memcmp(body.p, "abcde", 5) == 0);
    cr_expect(h2t_has_field(&t.st[0].hdr, ":path", "/split"));
    h2t_buf_free(&body);
    h2c_close(&c);
    h2t_finish(&t);
}

Test(http2_h1, peer_that_never_reads_is_paced_then_gets_everything)
{
    h2t t;
    h1_init(&t);
    t.mode = H2T_BIG;
    t.big_total = 16u << 20;
    t.big_chunk = 16384;
    h2t_start(&t);
    h2c c;
    h2c_connect(&c, &t);
    int sz = 65536;
    setsockopt(c.fd, SOL_SOCKET, SO_RCVBUF, &sz, sizeof sz);
    c.no_read = 1;
    send_str(&c, "GET /big HTTP/1.1\r\nHost: h\r\n\r\n");
    PUMP_UNTIL(&t, &c, t.nst == 1 && t.st[0].nagain > 0, 3000);
    h2t_pump_for(&t, &c, 200);
    cr_assert_eq(t.nst, 1);
    srv_stream *r = &t.st[0];
    cr_expect_gt(r->nagain, 0, "the writer was never told to wait");
    cr_expect_lt(r->sent, t.big_total, "16 MiB queued for a peer that reads nothing");
    cr_expect_leq(r->max_pending, t.cfg.stream_send_buffer + 3 * t.big_chunk);
    c.no_read = 0;
    PUMP_UNTIL(&t, &c, r->closed || c.eof, 10000);
    char dbg[512] = "";
    if (r->s)
        http2_stream_describe(r->s, dbg, sizeof dbg);
    cr_assert(r->closed && r->close_code == HTTP2_NO_ERROR,
              "sent %zu read %zu eof %d again %d writable %d: %s", r->sent, c.nread, c.eof,
              r->nagain, r->nwritable, dbg);
    PUMP_UNTIL(&t, &c, ends_with(&c, "x-trailer: big\r\n\r\n") || c.eof, 5000);
    h2t_buf body = {0};
    cr_assert_gt(dechunk(&c, &body), 0);
    cr_expect_eq(body.len, t.big_total);
    cr_expect_eq(h2t_check_pattern(body.p, body.len), body.len);
    h2t_buf_free(&body);
    h2c_close(&c);
    h2t_finish(&t);
}

Test(http2_h1, unconsumed_body_stops_reading_until_consumed)
{
    h2t t;
    h1_init(&t);
    t.mode = H2T_HOLD;
    t.consume = 0;
    t.cfg.stream_window = 65535;
    h2t_start(&t);
    h2c c;
    h2c_connect(&c, &t);
    size_t total = 4u << 20;
    char head[128];
    snprintf(head, sizeof head, "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: %zu\r\n\r\n", total);
    send_str(&c, head);
    uint8_t *body = malloc(total);
    cr_assert_not_null(body);
    h2t_fill(body, 0, total);
    h2c_send(&c, body, total);
    PUMP_UNTIL(&t, &c, t.nst == 1, 2000);
    h2t_pump_for(&t, &c, 200);
    srv_stream *r = &t.st[0];
    cr_expect_lt(r->body.len, (size_t)256 << 10, "read %zu bytes the handler did not consume",
                 r->body.len);
    for (uint64_t end = h2t_now_ms() + 10000; !r->ended && h2t_now_ms() < end;) {
        http2_stream_consume(r->s, r->body.len);
        h2t_step(&t, &c);
    }
    cr_assert(r->ended);
    cr_expect_eq(r->body.len, total);
    cr_expect_eq(h2t_check_pattern(r->body.p, r->body.len), total);
    http2_header h[] = {{":status", 7, "204", 3}};
    cr_assert_eq(http2_stream_end(r->s, h, 1), 0);
    WAIT_FOR(&t, &c, "HTTP/1.1 204", 1);
    free(body);
    h2c_close(&c);
    h2t_finish(&t);
}

Test(http2_h1, client_closing_mid_body_cancels_the_stream)
{
    h2t t;
    h2c c;
    h1_start(&t, &c, H2T_HOLD);
    send_str(&c, "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 100\r\n\r\nonly ten..");
    PUMP_UNTIL(&t, &c, t.nst == 1 && t.st[0].body.len == 10, 2000);
    cr_assert_eq(t.nst, 1);
    close(c.fd);
    c.fd = -1;
    PUMP_UNTIL(&t, NULL, t.st[0].closed, 3000);
    cr_expect(t.st[0].closed && t.st[0].close_code == HTTP2_CANCEL);
    cr_expect(!t.st[0].ended);
    PUMP_UNTIL(&t, NULL, http2_server_conn_count(t.srv) == 0, 3000);
    http2_server_stats st;
    http2_server_get_stats(t.srv, &st);
    cr_expect(st.streams_opened == 1 && st.streams_closed == 1, "streams %" PRIu64 "/%" PRIu64,
              st.streams_opened, st.streams_closed);
    h2c_close(&c);
    h2t_finish(&t);
}

Test(http2_h1, client_closing_during_a_streamed_answer_cancels_it)
{
    h2t t;
    h2c c;
    h1_start(&t, &c, H2T_HOLD);
    send_str(&c, "GET /watch HTTP/1.1\r\nHost: h\r\n\r\n");
    PUMP_UNTIL(&t, &c, t.nst == 1 && t.st[0].ended, 2000);
    http2_header h[] = {{":status", 7, "200", 3}};
    cr_assert_eq(http2_stream_respond(t.st[0].s, h, 1), 0);
    cr_assert_eq(http2_stream_write(t.st[0].s, (const uint8_t *)"event", 5), 0);
    WAIT_FOR(&t, &c, "event", 1);
    close(c.fd);
    c.fd = -1;
    PUMP_UNTIL(&t, NULL, t.st[0].closed, 3000);
    cr_expect(t.st[0].closed && t.st[0].close_code == HTTP2_CANCEL);
    h2c_close(&c);
    h2t_finish(&t);
}

Test(http2_h1, reset_closes_the_connection)
{
    h2t t;
    h1_init(&t);
    t.mode = H2T_RESET;
    t.reset_code = HTTP2_INTERNAL_ERROR;
    h2t_start(&t);
    h2c c;
    h2c_connect(&c, &t);
    send_str(&c, "GET / HTTP/1.1\r\nHost: h\r\n\r\n");
    PUMP_UNTIL(&t, &c, c.eof, 3000);
    cr_assert(c.eof);
    cr_expect_eq(c.in.len, 0, "an answer after reset: %s", in_str(&c));
    PUMP_UNTIL(&t, &c, t.st[0].closed, 3000);
    cr_expect_eq(t.st[0].nclose, 1);
    h2c_close(&c);
    h2t_finish(&t);
}

Test(http2_h1, upgrade_h2c_is_answered_as_http11)
{
    h2t t;
    h2c c;
    h1_start(&t, &c, H2T_ECHO);
    send_str(&c, "GET / HTTP/1.1\r\nHost: h\r\nConnection: Upgrade, HTTP2-Settings\r\n"
                 "Upgrade: h2c\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n\r\n");
    PUMP_UNTIL(&t, &c, c.eof, 3000);
    const char *in = in_str(&c);
    cr_expect(strncmp(in, "HTTP/1.1 200 OK\r\n", 17) == 0, "%s", in);
    cr_expect(!strstr(in, "101"), "%s", in);
    cr_expect(strstr(in, "connection: close\r\n"), "%s", in);
    cr_assert_eq(t.nst, 1);
    cr_expect(!memmem(t.st[0].hdr.p, t.st[0].hdr.len, "http2-settings", 14));
    h2c_close(&c);
    h2t_finish(&t);
}

Test(http2_h1, http2_prior_knowledge_still_works_beside_it)
{
    h2t t;
    h2c c;
    h1_start(&t, &c, H2T_ECHO);
    h2c_session(&c, NULL, 0, 0);
    h2c_handshake(&t, &c);
    uint8_t body[1000];
    h2t_fill(body, 0, sizeof body);
    cli_stream *cs = h2c_request(&c, NULL, 0, body, sizeof body, 0, 1);
    PUMP_UNTIL(&t, &c, t.nst == 1 && t.st[0].body.len == sizeof body, 3000);
    cr_assert_eq(t.nst, 1);
    cr_expect_eq(http2_stream_http_version(t.st[0].s), 2);
    h2c_release(&c, cs);
    PUMP_UNTIL(&t, &c, cs->closed || c.eof, 3000);
    cr_assert(cs->closed);
    cr_expect_eq(cs->status, 200);
    cr_expect_eq(cs->body.len, sizeof body);
    h2c_close(&c);
    h2t_finish(&t);
}

Test(http2_h1, cleartext_garbage_is_refused_as_http2_was)
{
    h2t t;
    h2c c;
    h1_start(&t, &c, H2T_ECHO);
    h2c_send(&c, "\x16\x03\x01\x02\x00garbage", 12);
    PUMP_UNTIL(&t, &c, c.eof, 3000);
    cr_assert(c.eof);
    int32_t last;
    uint32_t code;
    cr_expect(raw_goaway(&c, &last, &code), "no GOAWAY for a byte stream that is neither");
    h2c_close(&c);
    /* h2spec 3.5/2: words, but no request line */
    h2c_connect(&c, &t);
    send_str(&c, "INVALID CONNECTION PREFACE\r\n\r\n");
    PUMP_UNTIL(&t, &c, c.eof, 3000);
    cr_assert(c.eof);
    cr_expect(raw_goaway(&c, &last, &code), "no GOAWAY for an invalid preface");
    cr_expect_eq(code, HTTP2_PROTOCOL_ERROR);
    cr_expect_eq(t.nst, 0);
    h2c_close(&c);
    h2t_finish(&t);
}

Test(http2_h1, tls_alpn_http11_and_h2_preferred)
{
    h2t t;
    h1_init(&t);
    h2t_make_certs(&t);
    h2t_start(&t);
    h2c c;
    h2c_connect_tls(&c, &t, alpn_http11, sizeof alpn_http11);
    send_str(&c, "GET /tls HTTP/1.1\r\nHost: localhost\r\n\r\n");
    WAIT_FOR(&t, &c, "x-bytes: 0\r\n\r\n", 1);
    cr_assert(c.handshake_done);
    cr_expect(strncmp(in_str(&c), "HTTP/1.1 200 OK\r\n", 17) == 0, "%s", in_str(&c));
    cr_assert_eq(t.nst, 1);
    cr_expect(h2t_has_field(&t.st[0].hdr, ":scheme", "https"));
    cr_expect(h2t_has_field(&t.st[0].hdr, ":authority", "localhost"));
    h2c_close(&c);
    /* HTTP/1.0: the body ends with the connection, which TLS close_notify
     * tells from a cut */
    h2c_connect_tls(&c, &t, alpn_http11, sizeof alpn_http11);
    send_str(&c, "GET /ten HTTP/1.0\r\n\r\n");
    PUMP_UNTIL(&t, &c, c.eof, 3000);
    cr_assert(c.eof);
    cr_expect(strncmp(in_str(&c), "HTTP/1.1 200 OK\r\n", 17) == 0, "%s", in_str(&c));
    cr_expect(SSL_get_shutdown(c.ssl) & SSL_RECEIVED_SHUTDOWN, "closed without close_notify");
    h2c_close(&c);
    /* offered both: h2 */
    h2c_connect_tls(&c, &t, alpn_h2_h1, sizeof alpn_h2_h1);
    PUMP_UNTIL(&t, &c, c.handshake_done || c.eof, 3000);
    cr_assert(c.handshake_done);
    const unsigned char *proto;
    unsigned plen;
    SSL_get0_alpn_selected(c.ssl, &proto, &plen);
    cr_expect(plen == 2 && memcmp(proto, "h2", 2) == 0, "ALPN not h2");
    h2c_close(&c);
    /* no ALPN at all (node's https, Python's http.client): the first bytes
     * tell, as in cleartext; an HTTP/1.1 request is served */
    h2c_connect_tls(&c, &t, NULL, 0);
    send_str(&c, "GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
    PUMP_UNTIL(&t, &c, c.eof, 3000);
    cr_expect(strncmp(in_str(&c), "HTTP/1.1 200 OK\r\n", 17) == 0, "%s", in_str(&c));
    cr_expect_eq(t.nst, 3, "the request without ALPN was served");
    h2c_close(&c);
    /* without ALPN, bytes that are neither HTTP/1.1 nor the HTTP/2 preface
     * go to HTTP/2, which answers GOAWAY and closes */
    h2c_connect_tls(&c, &t, NULL, 0);
    send_str(&c, "\x16\x03\x01 not a request\r\n\r\n");
    PUMP_UNTIL(&t, &c, c.eof, 3000);
    cr_expect(c.eof, "garbage without ALPN: connection still open");
    cr_expect_eq(t.nst, 3, "garbage was served");
    h2c_close(&c);
    h2t_finish(&t);
}

Test(http2_h1, drain_closes_after_the_current_answer)
{
    h2t t;
    h2c c;
    h1_start(&t, &c, H2T_HOLD);
    send_str(&c, "GET / HTTP/1.1\r\nHost: h\r\n\r\n");
    PUMP_UNTIL(&t, &c, t.nst == 1 && t.st[0].ended, 2000);
    h2t_shutdown(&t, 5000);
    h2t_pump_for(&t, &c, 50);
    cr_expect(!c.eof, "closed under an answer in progress");
    http2_header h[] = {{":status", 7, "200", 3}};
    cr_assert_eq(http2_stream_end(t.st[0].s, h, 1), 0);
    PUMP_UNTIL(&t, &c, c.eof, 3000);
    cr_expect(strstr(in_str(&c), "connection: close\r\n"), "%s", in_str(&c));
    h2c_close(&c);
    h2t_finish(&t);
}
