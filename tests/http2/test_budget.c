/* The connection's send budget (http2_server_config.conn_send_budget): what
 * a peer that does not read can make the server queue. Over the budget new
 * requests wait before on_open (their DATA held, flow control bounding it),
 * writes answer HTTP2_AGAIN, and both go on once the peer reads: every
 * waiting stream opens in order and every stream told AGAIN hears
 * on_writable. */
#include "h2harness.h"

TestSuite(http2_budget, .timeout = 60);

#define BUDGET (64u << 10)

/* Hands all received DATA of every stream back to the windows. */
static void consume_all(h2c *c, size_t *consumed)
{
    for (int i = 0; i < c->ncs; i++) {
        cli_stream *cs = &c->cs[i];
        if (cs->body.len > consumed[i]) {
            nghttp2_session_consume(c->ng, cs->id, cs->body.len - consumed[i]);
            consumed[i] = cs->body.len;
        }
    }
}

Test(http2_budget, requests_wait_while_responses_are_over_the_budget)
{
    h2t t;
    h2t_init(&t);
    t.mode = H2T_BIG;
    t.cfg.conn_send_budget = BUDGET;
    t.cfg.stream_send_buffer = 1 << 20; /* only the connection's budget says AGAIN */
    t.big_total = 256 << 10;
    t.big_chunk = 16 << 10;
    h2t_start(&t);
    h2c c;
    nghttp2_settings_entry iv[] = {{NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, 65535}};
    h2c_connect(&c, &t);
    h2c_session(&c, iv, 1, 1); /* the client gives credit back only when told */
    static const uint8_t body[3000] = {1, 2, 3};
    cli_stream *a = h2c_request(&c, NULL, 0, NULL, 0, 0, 0);
    cli_stream *b = h2c_request(&c, NULL, 0, body, sizeof body, 1000, 0);
    cli_stream *d = h2c_request(&c, NULL, 0, NULL, 0, 0, 0);
    /* The client reads nothing: what the handlers may hand over is the
     * connection window the client granted (65535) plus the budget, give or
     * take the writes that cross it; the last request waits before on_open
     * (768 KiB would be asked without the budget). */
    PUMP_UNTIL(&t, &c, 0, 300);
    size_t sent = 0;
    for (int i = 0; i < t.nst; i++)
        sent += t.st[i].sent;
    cr_assert_leq(sent, 65535 + BUDGET + 2 * t.big_chunk, "handlers wrote %zu bytes, %d opened",
                  sent, t.nst);
    cr_assert_lt(t.nst, 3, "every request opened although the responses were over the budget");
    cr_assert_gt(t.st[0].nagain, 0);

    size_t consumed[H2T_MAX_STREAMS] = {0};
    uint64_t until = h2t_now_ms() + 10000;
    while (!(a->closed && b->closed && d->closed) && h2t_now_ms() < until) {
        consume_all(&c, consumed);
        h2t_step(&t, &c);
    }
    cr_assert(a->closed && b->closed && d->closed, "streams left: %d %d %d, %d opened", a->closed,
              b->closed, d->closed, t.nst);
    cr_assert_eq(t.nst, 3);
    cr_expect_eq(t.st[0].id, a->id);
    cr_expect_eq(t.st[1].id, b->id, "waiting requests open in arrival order");
    cr_expect_eq(t.st[2].id, d->id);
    /* the held request's body and its end reached the handler once it opened */
    cr_expect_eq(t.st[1].body.len, sizeof body);
    cr_expect_eq(memcmp(t.st[1].body.p, body, sizeof body), 0);
    cr_expect(t.st[1].ended);
    for (int i = 0; i < 3; i++) {
        cli_stream *cs = &c.cs[i];
        cr_expect_eq(cs->body.len, t.big_total, "stream %d", cs->id);
        cr_expect_eq(h2t_check_pattern(cs->body.p, cs->body.len), cs->body.len);
        cr_expect_eq(t.st[i].writable_without_again, 0);
    }
    h2c_close(&c);
    h2t_finish(&t);
}

/* Streams opened before the budget filled and written to later (live event
 * streams): each write over the budget answers AGAIN, whatever the stream's
 * own queue, and each such stream gets on_writable once the peer reads. */
Test(http2_budget, every_stream_told_again_hears_on_writable)
{
    h2t t;
    h2t_init(&t);
    t.mode = H2T_HOLD;
    t.cfg.conn_send_budget = BUDGET;
    t.cfg.stream_send_buffer = 1 << 20;
    h2t_start(&t);
    h2c c;
    nghttp2_settings_entry iv[] = {{NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, 16384}};
    h2c_connect(&c, &t);
    h2c_session(&c, iv, 1, 1);
    enum { N = 8 };
    for (int i = 0; i < N; i++)
        h2c_request(&c, NULL, 0, NULL, 0, 0, 1);
    PUMP_UNTIL(&t, &c, t.nst == N, 3000);
    cr_assert_eq(t.nst, N);
    uint8_t chunk[12000];
    h2t_fill(chunk, 0, sizeof chunk);
    int again = 0;
    for (int i = 0; i < N; i++) {
        srv_stream *r = &t.st[i];
        http2_header rh[] = {{":status", 7, "200", 3}};
        cr_assert_eq(http2_stream_respond(r->s, rh, 1), 0);
        for (int k = 0; k < 2; k++) {
            int rv = http2_stream_write(r->s, chunk, sizeof chunk);
            cr_assert(rv == 0 || rv == HTTP2_AGAIN);
            if (rv == HTTP2_AGAIN) {
                r->nagain++;
                r->waiting = 1;
                again++;
                break;
            }
        }
    }
    cr_assert_gt(again, 2, "writes over the budget answered AGAIN on %d streams", again);
    size_t consumed[H2T_MAX_STREAMS] = {0};
    int woken = 0;
    uint64_t until = h2t_now_ms() + 5000;
    while (h2t_now_ms() < until) {
        consume_all(&c, consumed);
        h2t_step(&t, &c);
        woken = 0;
        for (int i = 0; i < N; i++)
            woken += t.st[i].nagain && !t.st[i].waiting;
        if (woken == again)
            break;
    }
    cr_assert_eq(woken, again, "streams told AGAIN that never heard on_writable");
    for (int i = 0; i < N; i++)
        cr_expect_eq(t.st[i].writable_without_again, 0);
    h2c_close(&c);
    h2t_finish(&t);
}

/* The process's budget (http2_server_config.send_budget), shared by every
 * connection: one peer that reads nothing fills it and then waits, while a
 * peer that reads keeps getting its responses (it holds less than one
 * stream's buffer at a time); once the heavy peer reads, the sum falls, the
 * servers are woken and its streams finish too. */
Test(http2_budget, process_budget_stops_the_heavy_connection_only)
{
    enum { PROC = 128 << 10, SSB = 64 << 10, N = 8 };
    h2t t;
    h2t_init(&t);
    t.mode = H2T_BIG;
    t.cfg.conn_send_budget = 16 << 20; /* only the process's budget binds */
    t.cfg.stream_send_buffer = SSB;
    t.cfg.send_budget = http2_send_budget_new(PROC);
    cr_assert_not_null(t.cfg.send_budget);
    t.big_total = 512 << 10;
    t.big_chunk = 16 << 10;
    h2t_start(&t);
    h2c heavy, light;
    nghttp2_settings_entry iv[] = {{NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, 16384}};
    h2c_connect(&heavy, &t);
    h2c_session(&heavy, iv, 1, 1); /* reads nothing: no credit back */
    for (int i = 0; i < N; i++)
        h2c_request(&heavy, NULL, 0, NULL, 0, 0, 0);
    /* Without the process budget the handlers would queue N * SSB = 512 KiB;
     * the sum stops near PROC, and the requests after that wait to open. */
    PUMP_UNTIL(&t, &heavy, http2_send_budget_queued(t.cfg.send_budget) >= PROC, 3000);
    h2t_pump_for(&t, &heavy, 200);
    cr_assert_lt(t.nst, N, "every request opened although the process was over its budget");
    size_t held = http2_send_budget_queued(t.cfg.send_budget);
    cr_assert_geq(held, PROC, "the heavy peer held only %zu bytes", held);
    /* A single write is never refused: each waiting stream may add one
     * chunk past the budget when woken. */
    cr_assert_leq(held, PROC + SSB + N * t.big_chunk, "the process held %zu bytes (budget %d)",
                  held, PROC);

    h2c_connect(&light, &t);
    h2c_session(&light, NULL, 0, 0); /* hands credit back as it reads */
    cli_stream *l = h2c_request(&light, NULL, 0, NULL, 0, 0, 0);
    uint64_t until = h2t_now_ms() + 10000;
    while (!l->closed && h2t_now_ms() < until) {
        h2t_step(&t, &light);
        h2t_step(&t, &heavy);
    }
    cr_assert(l->closed, "the reading peer's response stalled behind the process budget");
    cr_expect_eq(l->body.len, t.big_total);
    cr_expect_eq(h2t_check_pattern(l->body.p, l->body.len), l->body.len);
    int heavy_done = 0;
    for (int i = 0; i < heavy.ncs; i++)
        heavy_done += heavy.cs[i].closed;
    cr_assert_eq(heavy_done, 0, "the heavy peer finished %d streams without reading", heavy_done);
    cr_assert_leq(http2_send_budget_queued(t.cfg.send_budget), PROC + SSB + N * t.big_chunk);

    /* The heavy peer reads now: everything it asked for arrives. */
    size_t consumed[H2T_MAX_STREAMS] = {0};
    until = h2t_now_ms() + 20000;
    while (heavy_done < N && h2t_now_ms() < until) {
        consume_all(&heavy, consumed);
        h2t_step(&t, &heavy);
        heavy_done = 0;
        for (int i = 0; i < heavy.ncs; i++)
            heavy_done += heavy.cs[i].closed;
    }
    cr_assert_eq(heavy_done, N, "heavy streams finished: %d of %d", heavy_done, N);
    for (int i = 0; i < N; i++) {
        cr_expect_eq(heavy.cs[i].body.len, t.big_total, "stream %d", heavy.cs[i].id);
        cr_expect_eq(h2t_check_pattern(heavy.cs[i].body.p, heavy.cs[i].body.len),
                     heavy.cs[i].body.len);
    }
    cr_expect_eq(http2_send_budget_queued(t.cfg.send_budget), 0);
    h2c_close(&light);
    h2c_close(&heavy);
    h2t_finish(&t);
    http2_send_budget_free(t.cfg.send_budget);
}

/* A connection that waits on bytes another connection holds has nothing of
 * its own that drains: when the other's bytes leave, the server is woken
 * (budget.c's uv_async) and tells the waiting stream it may write. */
Test(http2_budget, waiting_connection_is_woken_when_another_drains)
{
    enum { PROC = 128 << 10, SSB = 64 << 10, N = 4 };
    h2t t;
    h2t_init(&t);
    t.mode = H2T_BIG;
    t.cfg.conn_send_budget = 16 << 20;
    t.cfg.stream_send_buffer = SSB;
    t.cfg.send_budget = http2_send_budget_new(PROC);
    cr_assert_not_null(t.cfg.send_budget);
    t.big_total = 256 << 10;
    t.big_chunk = 16 << 10;
    h2t_start(&t);
    h2c a, b;
    nghttp2_settings_entry iv[] = {{NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, 16384}};
    h2c_connect(&a, &t);
    h2c_session(&a, iv, 1, 1);
    for (int i = 0; i < N; i++)
        h2c_request(&a, NULL, 0, NULL, 0, 0, 0);
    PUMP_UNTIL(&t, &a, http2_send_budget_queued(t.cfg.send_budget) >= PROC, 3000);
    cr_assert_geq(http2_send_budget_queued(t.cfg.send_budget), PROC);

    /* b's streams each stay under their own send buffer; together they hold
     * more than one buffer's worth, so b waits on the process budget. */
    int first_b = t.nst;
    h2c_connect(&b, &t);
    h2c_session(&b, iv, 1, 1);
    for (int i = 0; i < N; i++)
        h2c_request(&b, NULL, 0, NULL, 0, 0, 0);
    srv_stream *rb = NULL;
    uint64_t until = h2t_now_ms() + 3000;
    while (!rb && h2t_now_ms() < until) {
        h2t_step(&t, &b);
        for (int i = first_b; i < t.nst && !rb; i++)
            if (t.st[i].waiting && t.st[i].s && http2_stream_pending(t.st[i].s) < SSB)
                rb = &t.st[i];
    }
    cr_assert_not_null(rb, "none of b's streams waits on the process budget");
    int writable_before = rb->nwritable;

    /* Only a's peer reads from here on; b's socket is left alone. */
    size_t consumed[H2T_MAX_STREAMS] = {0};
    until = h2t_now_ms() + 10000;
    while (rb->nwritable == writable_before && h2t_now_ms() < until) {
        consume_all(&a, consumed);
        h2t_step(&t, &a);
    }
    cr_assert_gt(rb->nwritable, writable_before,
                 "b's stream was never told it may write after a drained");
    h2c_close(&a);
    h2c_close(&b);
    h2t_finish(&t);
    http2_send_budget_free(t.cfg.send_budget);
}
