/* Unit tests for ping enforcement (src/http2/policy.c, grpc-go's policy):
 * PINGs too close together are strikes unless the server sent HEADERS or
 * DATA in between; the third strike gets GOAWAY(ENHANCE_YOUR_CALM,
 * "too_many_pings") and the connection closes. */
#include "h2harness.h"

TestSuite(http2_pings, .timeout = 30);

/* The server closed with GOAWAY(ENHANCE_YOUR_CALM, "too_many_pings"). */
static void expect_too_many_pings(h2t *t, h2c *c)
{
    PUMP_UNTIL(t, c, c->eof, 3000);
    cr_assert(c->eof, "the connection survived the PINGs");
    h2_frame f;
    cr_assert(raw_find(c, FT_GOAWAY, 0, &f), "closed without GOAWAY");
    cr_assert_geq(f.len, 8);
    cr_expect_eq(h2t_get32(f.p + 4), HTTP2_ENHANCE_YOUR_CALM);
    cr_expect(f.len == 8 + 14 && memcmp(f.p + 8, "too_many_pings", 14) == 0,
              "GOAWAY debug data %.*s", (int)(f.len - 8), (const char *)f.p + 8);
}

static void start(h2t *t, h2c *c)
{
    h2t_start(t);
    h2c_connect(c, t);
    raw_handshake(t, c); /* one PING: the first never strikes */
}

/* No call open and no permission: the 2nd, 3rd and 4th PINGs are strikes. */
Test(http2_pings, pings_without_calls_get_goaway_too_many_pings)
{
    h2t t;
    h2t_init(&t);
    h2c c;
    start(&t, &c);
    raw_sync(&t, &c, 2);
    raw_sync(&t, &c, 3);
    cr_expect(!raw_goaway(&c, NULL, NULL), "GOAWAY after two strikes");
    raw_ping(&c, 4);
    expect_too_many_pings(&t, &c);
    h2c_close(&c);
    h2t_finish(&t);
}

/* With calls open, PINGs closer than the minimum interval are strikes too. */
Test(http2_pings, pings_faster_than_min_time_with_a_call_open)
{
    h2t t;
    h2t_init(&t);
    t.mode = H2T_HOLD;
    h2c c;
    start(&t, &c);
    raw_headers(&c, 1, 0);
    raw_sync(&t, &c, 2);
    raw_sync(&t, &c, 3);
    raw_ping(&c, 4);
    expect_too_many_pings(&t, &c);
    cr_expect(t.st[0].closed);
    h2c_close(&c);
    h2t_finish(&t);
}

/* A PING after the server sent DATA is no strike (grpc-go resets the count:
 * BDP pings follow data). */
Test(http2_pings, pings_after_server_data_are_fine)
{
    h2t t;
    h2t_init(&t);
    h2c c;
    start(&t, &c);
    raw_headers(&c, 1, 0); /* echo: 200 at once, each DATA echoed */
    raw_sync(&t, &c, 1);
    for (int i = 0; i < 20; i++) {
        raw_frame(&c, FT_DATA, 0, 1, "x", 1);
        raw_sync(&t, &c, 100 + (uint64_t)i);
    }
    cr_expect(!raw_goaway(&c, NULL, NULL), "GOAWAY for PINGs that followed DATA");
    cr_expect(!c.eof);
    h2c_close(&c);
    h2t_finish(&t);
}

/* ping_without_calls: PINGs spaced by the minimum interval are fine with no
 * call open; faster ones still strike. */
Test(http2_pings, permit_without_calls_honours_the_min_interval)
{
    h2t t;
    h2t_init(&t);
    t.cfg.ping_without_calls = true;
    t.cfg.ping_min_interval_ms = 100;
    h2c c;
    start(&t, &c);
    for (int i = 0; i < 5; i++) {
        h2t_pump_for(&t, &c, 120);
        raw_sync(&t, &c, 10 + (uint64_t)i);
    }
    cr_expect(!raw_goaway(&c, NULL, NULL), "GOAWAY for PINGs 120 ms apart (min 100 ms)");
    for (int i = 0; i < 3; i++)
        raw_ping(&c, 20 + (uint64_t)i);
    expect_too_many_pings(&t, &c);
    h2c_close(&c);
    h2t_finish(&t);
}

Test(http2_pings, enforcement_off_allows_any_rate)
{
    h2t t;
    h2t_init(&t);
    t.cfg.ping_min_interval_ms = 0;
    h2c c;
    start(&t, &c);
    for (int i = 0; i < 50; i++)
        raw_sync(&t, &c, 30 + (uint64_t)i);
    cr_expect(!raw_goaway(&c, NULL, NULL));
    h2c_close(&c);
    h2t_finish(&t);
}
