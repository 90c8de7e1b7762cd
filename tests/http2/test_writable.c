/* The pull model's wake-up (stream.c's data provider, conn.c's
 * notify_writable) when the peer's window opens a little at a time: a
 * handler that got HTTP2_AGAIN must get on_writable once its queue drains
 * below the low-water mark, however the WINDOW_UPDATEs are cut, while the
 * queue is above the mark when they arrive and with many small writes (as a
 * WatchOrders stream makes them). A regression guard for slow WatchOrders
 * subscribers that stalled with data still queued. After every step the
 * stream's own invariant check (http2_stream_check, debug.c) must pass and a
 * handler waiting for on_writable must find the stream armed. */
#include "h2harness.h"

TestSuite(http2_writable, .timeout = 60);

/* Serves total bytes in chunk-byte writes through a send buffer of sendbuf
 * to a client with a window of window bytes that hands credit back in random
 * pieces of 1..max_credit bytes. Fails if nothing moves for 3 s. */
static void trickle(size_t total, size_t chunk, size_t sendbuf, int32_t window, size_t max_credit,
                    unsigned seed)
{
    h2t t;
    h2t_init(&t);
    t.mode = H2T_BIG;
    t.cfg.stream_send_buffer = sendbuf;
    t.big_total = total;
    t.big_chunk = chunk;
    h2t_start(&t);
    h2c c;
    nghttp2_settings_entry iv[] = {{NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, (uint32_t)window}};
    h2c_connect(&c, &t);
    h2c_session(&c, iv, 1, 1);
    cli_stream *cs = h2c_request(&c, NULL, 0, NULL, 0, 0, 0);
    srand(seed);
    size_t consumed = 0, seen = 0;
    uint64_t moved = h2t_now_ms();
    while (!cs->closed) {
        if (cs->body.len > consumed) {
            size_t n = cs->body.len - consumed, k = 1 + (size_t)rand() % max_credit;
            nghttp2_session_consume(c.ng, cs->id, k < n ? k : n);
            consumed += k < n ? k : n;
        }
        h2t_step(&t, &c);
        srv_stream *w = t.nst ? &t.st[0] : NULL;
        if (w && w->s && !w->closed) {
            char why[200];
            cr_assert_eq(http2_stream_check(w->s, why, sizeof why), 0, "%s", why);
            cr_assert(!w->waiting || http2_stream_writable_armed(w->s),
                      "the handler waits for on_writable but the stream will not call it");
        }
        if (cs->body.len != seen || consumed < cs->body.len) {
            seen = cs->body.len;
            moved = h2t_now_ms();
        }
        if (h2t_now_ms() - moved > 3000) {
            srv_stream *r = t.nst ? &t.st[0] : NULL;
            cr_assert_fail("stalled at %zu of %zu bytes: handler wrote %zu, %zu queued, "
                           "waiting for on_writable %d, on_writable %d times",
                           cs->body.len, total, r ? r->sent : 0,
                           r && r->s ? http2_stream_pending(r->s) : 0, r ? r->waiting : -1,
                           r ? r->nwritable : -1);
        }
    }
    cr_assert_eq(cs->body.len, total);
    cr_expect_eq(h2t_check_pattern(cs->body.p, cs->body.len), cs->body.len, "body corrupted");
    srv_stream *r = &t.st[0];
    cr_expect_gt(r->nagain, 0);
    cr_expect_eq(r->writable_without_again, 0);
    h2c_close(&c);
    h2t_finish(&t);
}

/* The runner's shape: 64 KiB window, the default 256 KiB send buffer, 35-byte
 * messages. */
Test(http2_writable, small_writes_through_a_trickling_window)
{
    for (unsigned seed = 1; seed <= 2; seed++)
        trickle(1 << 20, 35, 256 << 10, 65535, 4096, seed);
}

/* Credit a few bytes at a time: every WINDOW_UPDATE finds the queue above
 * the low-water mark. */
Test(http2_writable, window_updates_of_a_few_bytes)
{
    trickle(64 << 10, 35, 16 << 10, 4096, 64, 7);
}

/* A window smaller than the low-water mark, and one larger than the send
 * buffer. */
Test(http2_writable, window_below_the_mark_and_above_the_buffer)
{
    trickle(256 << 10, 100, 16 << 10, 1000, 700, 11);
    trickle(2 << 20, 4000, 64 << 10, 1 << 20, 1 << 16, 13);
}
