/* test_mem.c - nghttp2's allocator (mem.c): big blocks on pages of their own,
 * given back by an idle connection and taken again when it works. */
#include <sys/mman.h>

#include "base/alloc.h"
#include "h2harness.h"

TestSuite(http2_mem, .timeout = 30);

static size_t round_pages(size_t n)
{
    return (n + HTTP2_PAGE - 1) & ~(size_t)(HTTP2_PAGE - 1);
}

/* Pages of [p, p + n) resident in memory. */
static size_t resident_pages(const void *p, size_t n)
{
    size_t np = round_pages(n) / HTTP2_PAGE, r = 0;
    unsigned char vec[64];
    cr_assert_leq(np, sizeof vec);
    cr_assert_eq(mincore((void *)p, round_pages(n), vec), 0, "mincore: %s", strerror(errno));
    for (size_t i = 0; i < np; i++)
        r += vec[i] & 1;
    return r;
}

static http2_conn *only_conn(h2t *t)
{
    http2_conn *c = t->srv->ep.conns;
    cr_assert_not_null(c);
    cr_assert_null(c->next);
    return c;
}

static const http2_paged *scratch_block(const http2_conn *c)
{
    for (int i = 0; i < HTTP2_PAGED_BLOCKS; i++)
        if (c->paged[i].p && c->paged[i].scratch)
            return &c->paged[i];
    return NULL;
}

static void echo_roundtrip(h2t *t, h2c *c, size_t len)
{
    static uint8_t body[40000];
    cr_assert_leq(len, sizeof body);
    h2t_fill(body, 0, len);
    cli_stream *cs = h2c_request(c, NULL, 0, body, len, 0, 0);
    PUMP_UNTIL(t, c, cs->closed || c->eof, 3000);
    cr_assert(cs->closed);
    cr_expect_eq(cs->status, 200);
    cr_assert_eq(cs->body.len, len);
    cr_expect_eq(h2t_check_pattern(cs->body.p, cs->body.len), len);
    cr_expect(h2t_has_field(&cs->trailers, "x-trailer", "done"));
}

/* The session's frame buffer (16,394 bytes) and stream map (4 KiB) live on
 * pages of their own; HTTP2_IDLE_TRIM_MS after its last stream the
 * connection gives them back, and the next requests are served as before
 * (the frame buffer written again from zero pages). */
Test(http2_mem, idle_connection_gives_its_pages_back_and_serves_again)
{
    h2t t;
    h2t_init(&t);
    h2t_start(&t);
    h2c c;
    h2c_connect(&c, &t);
    h2c_session(&c, NULL, 0, 0);
    h2c_handshake(&t, &c);
    http2_conn *sc = only_conn(&t);
    const http2_paged *fb = scratch_block(sc);
    cr_assert_not_null(fb, "no frame buffer among the paged blocks");
    cr_expect_eq(fb->n, 16394);
    echo_roundtrip(&t, &c, 30000); /* two full DATA frames: every page written */
    cr_expect_gt(resident_pages(fb->p, fb->n), 3);
    uint64_t t0 = h2t_now_ms();
    PUMP_UNTIL(&t, &c, sc->trimmed, 2000);
    cr_assert(sc->trimmed, "idle connection not trimmed");
    cr_expect_geq(h2t_now_ms() - t0, HTTP2_IDLE_TRIM_MS - 20);
    cr_expect_eq(resident_pages(fb->p, fb->n), 0);
    for (int i = 0; i < HTTP2_PAGED_BLOCKS; i++) /* the empty stream map too */
        if (sc->paged[i].p)
            cr_expect_eq(resident_pages(sc->paged[i].p, sc->paged[i].n), 0, "block %d", i);
    echo_roundtrip(&t, &c, 30000);
    cr_expect_not(sc->trimmed);
    cr_expect_gt(resident_pages(fb->p, fb->n), 0);
    PUMP_UNTIL(&t, &c, sc->trimmed, 2000); /* and again */
    cr_expect(sc->trimmed);
    echo_roundtrip(&t, &c, 100);
    h2c_close(&c);
    h2t_finish(&t);
}

/* A connection with a stream open keeps its pages however long it waits. */
Test(http2_mem, connection_with_an_open_stream_is_not_trimmed)
{
    h2t t;
    h2t_init(&t);
    t.mode = H2T_HOLD;
    h2t_start(&t);
    h2c c;
    h2c_connect(&c, &t);
    h2c_session(&c, NULL, 0, 0);
    h2c_handshake(&t, &c);
    http2_conn *sc = only_conn(&t);
    h2c_request(&c, NULL, 0, NULL, 0, 0, 1);
    PUMP_UNTIL(&t, &c, t.nst == 1, 2000);
    cr_assert_eq(t.nst, 1);
    h2t_pump_for(&t, &c, 3 * HTTP2_IDLE_TRIM_MS);
    cr_expect_not(sc->trimmed);
    cr_expect_not(sc->on_idle);
    h2c_close(&c);
    h2t_finish(&t);
}

/* The allocator alone, on a connection object of its own. */
Test(http2_mem, zero_pages_go_back_written_pages_stay)
{
    http2_conn *c = calloc(1, sizeof *c);
    nghttp2_mem m;
    http2__mem_init(&m, c);
    /* calloc: three zero pages; one byte written in the middle one */
    uint8_t *a = m.calloc(3, HTTP2_PAGE, m.mem_user_data);
    cr_assert_not_null(a);
    cr_expect_eq((uintptr_t)a % HTTP2_PAGE, 0);
    a[HTTP2_PAGE + 7] = 42;
    a[0] = 1;
    a[0] = 0; /* written, but zero again */
    cr_expect_eq(http2__mem_trim(c), 2 * HTTP2_PAGE);
    cr_expect_eq(a[HTTP2_PAGE + 7], 42);
    cr_expect_eq(resident_pages(a, HTTP2_PAGE), 0);
    cr_expect_eq(resident_pages(a + 2 * HTTP2_PAGE, HTTP2_PAGE), 0);
    cr_expect_eq(resident_pages(a + HTTP2_PAGE, HTTP2_PAGE), 1);
    for (size_t i = 0; i < 3 * HTTP2_PAGE; i++)
        if (i != HTTP2_PAGE + 7)
            cr_assert_eq(a[i], 0, "byte %zu", i);
    /* the frame buffer: whole pages go, whatever they hold */
    uint8_t *fb = m.realloc(NULL, 16394, m.mem_user_data);
    cr_assert_not_null(fb);
    memset(fb, 0xab, 16394);
    cr_expect_eq(http2__mem_trim(c), 2 * HTTP2_PAGE + round_pages(16394));
    cr_expect_eq(resident_pages(fb, 16394), 0);
    /* growing a paged block keeps its bytes */
    a = m.realloc(a, 5 * HTTP2_PAGE, m.mem_user_data);
    cr_assert_not_null(a);
    cr_expect_eq(a[HTTP2_PAGE + 7], 42);
    m.free(a, m.mem_user_data);
    m.free(fb, m.mem_user_data);
    for (int i = 0; i < HTTP2_PAGED_BLOCKS; i++)
        cr_expect_null(c->paged[i].p);
    free(c);
}

/* Small blocks, and big ones past the slots, come from the heap; a paged
 * allocation fails like any other when the failing allocator says so. */
Test(http2_mem, slots_small_blocks_and_failures)
{
    http2_conn *c = calloc(1, sizeof *c);
    nghttp2_mem m;
    http2__mem_init(&m, c);
    void *small = m.malloc(100, c);
    cr_assert_not_null(small);
    void *big[HTTP2_PAGED_BLOCKS + 1];
    for (int i = 0; i <= HTTP2_PAGED_BLOCKS; i++) {
        big[i] = m.malloc(HTTP2_PAGE, c);
        cr_assert_not_null(big[i]);
        memset(big[i], i + 1, HTTP2_PAGE);
    }
    int paged = 0;
    for (int i = 0; i < HTTP2_PAGED_BLOCKS; i++)
        paged += c->paged[i].p != NULL;
    cr_expect_eq(paged, HTTP2_PAGED_BLOCKS);
    for (int i = 0; i <= HTTP2_PAGED_BLOCKS; i++)
        m.free(big[i], c);
    m.free(small, c);
    oms_alloc_fail_nth(1);
    cr_expect_null(m.malloc(2 * HTTP2_PAGE, c));
    cr_expect(oms_alloc_failed());
    oms_alloc_fail_nth(1);
    cr_expect_null(m.calloc(2, HTTP2_PAGE, c));
    oms_alloc_fail_nth(0);
    for (int i = 0; i < HTTP2_PAGED_BLOCKS; i++)
        cr_expect_null(c->paged[i].p);
    free(c);
}

/* Heap blocks: small ones from the free lists, plain ones beyond; realloc
 * keeps the bytes across every kind (small, plain, paged). */
Test(http2_mem, heap_blocks_keep_their_bytes_through_realloc)
{
    http2_conn *c = calloc(1, sizeof *c);
    nghttp2_mem m;
    http2__mem_init(&m, c);
    uint8_t *b[40];
    for (int i = 0; i < 40; i++) { /* every class, and past them */
        size_t n = (size_t)i * 20 + 1;
        b[i] = m.malloc(n, c);
        cr_assert_not_null(b[i]);
        cr_expect_eq((uintptr_t)b[i] % 16, 0);
        memset(b[i], i + 1, n);
    }
    for (int i = 0; i < 40; i++) {
        size_t n = (size_t)i * 20 + 1;
        for (size_t k = 0; k < n; k++)
            cr_assert_eq(b[i][k], i + 1, "block %d byte %zu", i, k);
        m.free(b[i], c);
    }
    uint8_t *p = m.calloc(3, 10, c);
    cr_assert_not_null(p);
    for (int k = 0; k < 30; k++)
        cr_assert_eq(p[k], 0);
    memset(p, 7, 30);
    p = m.realloc(p, 200, c); /* small to small */
    cr_assert_not_null(p);
    p = m.realloc(p, 1000, c); /* small to plain */
    cr_assert_not_null(p);
    p = m.realloc(p, 3000, c); /* plain to plain */
    cr_assert_not_null(p);
    p = m.realloc(p, 9000, c); /* plain stays plain */
    cr_assert_not_null(p);
    for (int k = 0; k < 30; k++)
        cr_assert_eq(p[k], 7, "byte %d", k);
    m.free(p, c);
    uint8_t *q = m.malloc(64, c);
    memset(q, 9, 64);
    q = m.realloc(q, 2 * HTTP2_PAGE, c); /* small to paged */
    cr_assert_not_null(q);
    cr_expect_eq((uintptr_t)q % HTTP2_PAGE, 0);
    for (int k = 0; k < 64; k++)
        cr_assert_eq(q[k], 9);
    m.free(q, c);
    m.free(NULL, c);
    oms_alloc_fail_nth(1); /* small blocks fail like any allocation */
    cr_expect_null(m.malloc(48, c));
    oms_alloc_fail_nth(0);
    free(c);
}

static int trimmed_count(h2t *t)
{
    int n = 0;
    for (http2_conn *c = t->srv->ep.conns; c; c = c->next)
        n += c->trimmed;
    return n;
}

/* More idle connections than one timer run trims (256): the rest follow
 * in the next runs, and all of them end up trimmed. */
Test(http2_mem, many_idle_connections_are_trimmed_in_batches)
{
    enum { N = 300 };
    h2t t;
    h2t_init(&t);
    h2t_start(&t);
    h2c *c = calloc(N, sizeof *c);
    cr_assert_not_null(c);
    for (int i = 0; i < N; i++) {
        h2c_connect(&c[i], &t);
        raw_handshake(&t, &c[i]);
    }
    cr_assert_eq(http2_server_conn_count(t.srv), N);
    PUMP_UNTIL(&t, NULL, trimmed_count(&t) == N, 5000);
    cr_expect_eq(trimmed_count(&t), N);
    for (int i = 0; i < N; i++)
        h2c_close(&c[i]);
    PUMP_UNTIL(&t, NULL, http2_server_conn_count(t.srv) == 0, 5000);
    free(c);
    h2t_finish(&t);
}
