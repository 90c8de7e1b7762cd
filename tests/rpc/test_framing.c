/* Unit tests for the deframer and rpc__frame_header (src/rpc/framing.c). */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "rpc_int.h"

#define MAX_MSGS 512

/* Messages collected from a deframer run, copied out since the deframer only
 * lends them until its next call. */
struct collected {
    size_t count;
    uint8_t *data[MAX_MSGS];
    size_t len[MAX_MSGS];
    bool compressed[MAX_MSGS];
};

static void collected_free(struct collected *c)
{
    for (size_t i = 0; i < c->count; i++)
        free(c->data[i]);
    memset(c, 0, sizeof *c);
}

/* Appends one wire message (prefix + body) to w. */
static void put_msg(rpc_buf *w, bool compressed, const void *body, uint32_t len)
{
    uint8_t h[RPC_FRAME_HEADER];
    rpc__frame_header(h, compressed, len);
    cr_assert_eq(rpc__buf_append(w, h, sizeof h), 0);
    cr_assert_eq(rpc__buf_append(w, body, len), 0);
}

/* Feeds one chunk and drains every message it completes. */
static void feed(rpc_deframer *d, const uint8_t *p, size_t n, struct collected *c)
{
    const uint8_t *end = p + n;
    for (;;) {
        const uint8_t *msg;
        size_t len;
        bool comp;
        rpc_deframe_result r = rpc__deframer_next(d, &p, &n, &msg, &len, &comp);
        cr_assert_eq(p + n, end, "input pointer and length must move together");
        if (r == RPC_DEFRAME_MORE) {
            cr_assert_eq(n, 0, "MORE must consume the whole input");
            return;
        }
        cr_assert_eq(r, RPC_DEFRAME_MESSAGE, "unexpected result %d", r);
        cr_assert_lt(c->count, MAX_MSGS);
        c->data[c->count] = malloc(len ? len : 1);
        memcpy(c->data[c->count], msg, len);
        c->len[c->count] = len;
        c->compressed[c->count] = comp;
        c->count++;
    }
}

/* Feeds w to a fresh deframer in chunks of the given sizes (cycled). */
static void run_chunked(const rpc_buf *w, const size_t *chunks, size_t nchunks, struct collected *c)
{
    rpc_deframer d;
    rpc__deframer_init(&d, 1 << 20);
    size_t off = 0;
    for (size_t i = 0; off < w->len; i++) {
        size_t k = chunks[i % nchunks];
        if (k > w->len - off)
            k = w->len - off;
        feed(&d, w->data + off, k, c);
        off += k;
    }
    cr_assert_not(rpc__deframer_partial(&d));
    rpc__deframer_dispose(&d);
}

/* A stream mixing sizes, an empty message and compressed flags. */
static void sample_stream(rpc_buf *w)
{
    static const char a[] = "hello";
    static uint8_t big[3000];
    for (size_t i = 0; i < sizeof big; i++)
        big[i] = (uint8_t)(i * 7);
    put_msg(w, false, a, 5);
    put_msg(w, false, "", 0);
    put_msg(w, true, big, sizeof big);
    put_msg(w, false, "x", 1);
    put_msg(w, true, "", 0);
}

static void check_sample(const struct collected *c)
{
    cr_assert_eq(c->count, 5);
    cr_assert_eq(c->len[0], 5);
    cr_assert_arr_eq(c->data[0], "hello", 5);
    cr_assert_not(c->compressed[0]);
    cr_assert_eq(c->len[1], 0);
    cr_assert_not(c->compressed[1]);
    cr_assert_eq(c->len[2], 3000);
    cr_assert(c->compressed[2]);
    for (size_t i = 0; i < 3000; i++)
        cr_assert_eq(c->data[2][i], (uint8_t)(i * 7));
    cr_assert_eq(c->len[3], 1);
    cr_assert_eq(c->data[3][0], 'x');
    cr_assert_eq(c->len[4], 0);
    cr_assert(c->compressed[4]);
}

Test(rpc_framing, frame_header_is_flag_then_big_endian_length)
{
    uint8_t h[RPC_FRAME_HEADER];
    rpc__frame_header(h, false, 0x01020304);
    cr_assert_arr_eq(h, ((uint8_t[]){0, 1, 2, 3, 4}), 5);
    rpc__frame_header(h, true, 0xFFFFFFFF);
    cr_assert_arr_eq(h, ((uint8_t[]){1, 0xFF, 0xFF, 0xFF, 0xFF}), 5);
    rpc__frame_header(h, false, 0);
    cr_assert_arr_eq(h, ((uint8_t[]){0, 0, 0, 0, 0}), 5);
}

Test(rpc_framing, message_in_one_feed_is_returned_in_place)
{
    rpc_buf w;
    rpc__buf_init(&w);
    put_msg(&w, false, "abc", 3);
    rpc_deframer d;
    rpc__deframer_init(&d, 100);
    const uint8_t *p = w.data, *msg = NULL;
    size_t n = w.len, len = 0;
    bool comp = true;
    cr_assert_eq(rpc__deframer_next(&d, &p, &n, &msg, &len, &comp), RPC_DEFRAME_MESSAGE);
    cr_assert_eq(msg, w.data + RPC_FRAME_HEADER, "must point into the input");
    cr_assert_eq(len, 3);
    cr_assert_not(comp);
    cr_assert_eq(n, 0);
    cr_assert_eq(p, w.data + w.len);
    cr_assert_eq(d.buf.cap, 0, "nothing may be buffered");
    cr_assert_eq(rpc__deframer_next(&d, &p, &n, &msg, &len, &comp), RPC_DEFRAME_MORE);
    cr_assert_not(rpc__deframer_partial(&d));
    rpc__deframer_dispose(&d);
    rpc__buf_dispose(&w);
}

Test(rpc_framing, message_split_across_data_frames)
{
    rpc_buf w;
    rpc__buf_init(&w);
    put_msg(&w, false, "0123456789", 10);
    rpc_deframer d;
    rpc__deframer_init(&d, 100);
    const uint8_t *p, *msg;
    size_t n, len;
    bool comp;

    p = w.data, n = 3; /* part of the prefix */
    cr_assert_eq(rpc__deframer_next(&d, &p, &n, &msg, &len, &comp), RPC_DEFRAME_MORE);
    cr_assert(rpc__deframer_partial(&d));
    p = w.data + 3, n = 6; /* rest of the prefix and 4 body bytes */
    cr_assert_eq(rpc__deframer_next(&d, &p, &n, &msg, &len, &comp), RPC_DEFRAME_MORE);
    cr_assert(rpc__deframer_partial(&d));
    p = w.data + 9, n = 6;
    cr_assert_eq(rpc__deframer_next(&d, &p, &n, &msg, &len, &comp), RPC_DEFRAME_MESSAGE);
    cr_assert_eq(len, 10);
    cr_assert_arr_eq(msg, "0123456789", 10);
    cr_assert_eq(n, 0);
    cr_assert_not(rpc__deframer_partial(&d), "a returned message is not partial");
    n = 0;
    cr_assert_eq(rpc__deframer_next(&d, &p, &n, &msg, &len, &comp), RPC_DEFRAME_MORE);
    cr_assert_not(rpc__deframer_partial(&d));
    rpc__deframer_dispose(&d);
    rpc__buf_dispose(&w);
}

Test(rpc_framing, byte_by_byte)
{
    rpc_buf w;
    rpc__buf_init(&w);
    sample_stream(&w);
    struct collected c = {0};
    run_chunked(&w, (size_t[]){1}, 1, &c);
    check_sample(&c);
    collected_free(&c);
    rpc__buf_dispose(&w);
}

Test(rpc_framing, every_split_point_of_two_feeds)
{
    rpc_buf w;
    rpc__buf_init(&w);
    sample_stream(&w);
    for (size_t cut = 0; cut <= w.len; cut++) {
        rpc_deframer d;
        rpc__deframer_init(&d, 1 << 20);
        struct collected c = {0};
        feed(&d, w.data, cut, &c);
        feed(&d, w.data + cut, w.len - cut, &c);
        check_sample(&c);
        cr_assert_not(rpc__deframer_partial(&d));
        collected_free(&c);
        rpc__deframer_dispose(&d);
    }
    rpc__buf_dispose(&w);
}

Test(rpc_framing, irregular_chunks)
{
    rpc_buf w;
    rpc__buf_init(&w);
    for (int i = 0; i < 20; i++)
        sample_stream(&w);
    static const size_t chunks[] = {7, 1, 4096, 2, 5, 333, 3, 16384, 6, 1000};
    struct collected c = {0};
    run_chunked(&w, chunks, sizeof chunks / sizeof chunks[0], &c);
    cr_assert_eq(c.count, 100);
    for (int i = 0; i < 20; i++) {
        struct collected part = c;
        memmove(part.data, c.data + 5 * i, 5 * sizeof part.data[0]);
        memmove(part.len, c.len + 5 * i, 5 * sizeof part.len[0]);
        memmove(part.compressed, c.compressed + 5 * i, 5 * sizeof part.compressed[0]);
        part.count = 5;
        check_sample(&part);
    }
    collected_free(&c);
    rpc__buf_dispose(&w);
}

Test(rpc_framing, many_messages_in_one_feed_without_copying)
{
    rpc_buf w;
    rpc__buf_init(&w);
    for (uint32_t i = 0; i < 300; i++) {
        uint8_t body[64];
        memset(body, (int)i, sizeof body);
        put_msg(&w, i % 3 == 0, body, i % 64);
    }
    rpc_deframer d;
    rpc__deframer_init(&d, 64);
    const uint8_t *p = w.data, *msg;
    size_t n = w.len, len;
    bool comp;
    for (uint32_t i = 0; i < 300; i++) {
        cr_assert_eq(rpc__deframer_next(&d, &p, &n, &msg, &len, &comp), RPC_DEFRAME_MESSAGE);
        cr_assert_eq(len, i % 64);
        cr_assert_eq(comp, i % 3 == 0);
        cr_assert(msg >= w.data && msg + len <= w.data + w.len, "message %u was copied", i);
        for (size_t k = 0; k < len; k++)
            cr_assert_eq(msg[k], (uint8_t)i);
    }
    cr_assert_eq(n, 0);
    cr_assert_eq(rpc__deframer_next(&d, &p, &n, &msg, &len, &comp), RPC_DEFRAME_MORE);
    cr_assert_eq(d.buf.cap, 0);
    rpc__deframer_dispose(&d);
    rpc__buf_dispose(&w);
}

Test(rpc_framing, zero_length_messages)
{
    rpc_buf w;
    rpc__buf_init(&w);
    for (int i = 0; i < 4; i++)
        put_msg(&w, i == 2, "", 0);
    rpc_deframer d;
    rpc__deframer_init(&d, 0); /* max 0 still admits empty messages */
    struct collected c = {0};
    feed(&d, w.data, w.len, &c);
    cr_assert_eq(c.count, 4);
    for (int i = 0; i < 4; i++) {
        cr_assert_eq(c.len[i], 0);
        cr_assert_eq(c.compressed[i], i == 2);
    }
    collected_free(&c);
    /* And with the prefix split. */
    feed(&d, w.data, 2, &c);
    cr_assert_eq(c.count, 0);
    cr_assert(rpc__deframer_partial(&d));
    feed(&d, w.data + 2, 3, &c);
    cr_assert_eq(c.count, 1);
    cr_assert_eq(c.len[0], 0);
    cr_assert_not(rpc__deframer_partial(&d));
    collected_free(&c);
    rpc__deframer_dispose(&d);
    rpc__buf_dispose(&w);
}

Test(rpc_framing, compressed_flag)
{
    rpc_buf w;
    rpc__buf_init(&w);
    put_msg(&w, true, "zz", 2);
    put_msg(&w, false, "yy", 2);
    struct collected c = {0};
    run_chunked(&w, (size_t[]){3}, 1, &c);
    cr_assert_eq(c.count, 2);
    cr_assert(c.compressed[0]);
    cr_assert_not(c.compressed[1]);
    collected_free(&c);
    rpc__buf_dispose(&w);
}

Test(rpc_framing, bad_flag_byte)
{
    static const uint8_t flags[] = {2, 0x80, 0xFF};
    for (size_t i = 0; i < sizeof flags; i++) {
        uint8_t wire[] = {flags[i], 0, 0, 0, 1, 'a'};
        rpc_deframer d;
        rpc__deframer_init(&d, 100);
        const uint8_t *p = wire, *msg;
        size_t n = sizeof wire, len = 99;
        bool comp;
        cr_assert_eq(rpc__deframer_next(&d, &p, &n, &msg, &len, &comp), RPC_DEFRAME_BAD_FLAG);
        cr_assert_eq(len, 0);
        cr_assert(rpc__deframer_partial(&d));
        /* Sticky: the same error, nothing consumed. */
        size_t before = n;
        cr_assert_eq(rpc__deframer_next(&d, &p, &n, &msg, &len, &comp), RPC_DEFRAME_BAD_FLAG);
        cr_assert_eq(n, before);
        rpc__deframer_dispose(&d);
    }
}

Test(rpc_framing, bad_flag_after_good_message)
{
    uint8_t wire[] = {0, 0, 0, 0, 1, 'a', 7};
    rpc_deframer d;
    rpc__deframer_init(&d, 100);
    const uint8_t *p = wire, *msg;
    size_t n = sizeof wire, len;
    bool comp;
    cr_assert_eq(rpc__deframer_next(&d, &p, &n, &msg, &len, &comp), RPC_DEFRAME_MESSAGE);
    cr_assert_eq(rpc__deframer_next(&d, &p, &n, &msg, &len, &comp), RPC_DEFRAME_BAD_FLAG);
    rpc__deframer_dispose(&d);
}

Test(rpc_framing, too_big_reported_at_the_prefix)
{
    /* Only the prefix is sent: the error must not wait for the body. */
    uint8_t wire[RPC_FRAME_HEADER];
    rpc__frame_header(wire, false, 101);
    rpc_deframer d;
    rpc__deframer_init(&d, 100);
    const uint8_t *p = wire, *msg;
    size_t n = sizeof wire, len = 0;
    bool comp;
    cr_assert_eq(rpc__deframer_next(&d, &p, &n, &msg, &len, &comp), RPC_DEFRAME_TOO_BIG);
    cr_assert_eq(len, 101);
    cr_assert_eq(n, 0);
    cr_assert(rpc__deframer_partial(&d));
    /* Sticky, and the body is never buffered. */
    uint8_t body[200] = {0};
    p = body, n = sizeof body;
    cr_assert_eq(rpc__deframer_next(&d, &p, &n, &msg, &len, &comp), RPC_DEFRAME_TOO_BIG);
    cr_assert_eq(len, 101);
    cr_assert_eq(n, sizeof body);
    cr_assert_leq(d.buf.len, RPC_FRAME_HEADER);
    rpc__deframer_dispose(&d);
}

Test(rpc_framing, too_big_with_split_prefix_and_huge_length)
{
    uint8_t wire[RPC_FRAME_HEADER];
    rpc__frame_header(wire, true, 0xFFFFFFFF);
    rpc_deframer d;
    rpc__deframer_init(&d, 4 << 20);
    const uint8_t *p = wire, *msg;
    size_t n = 2, len = 0;
    bool comp;
    cr_assert_eq(rpc__deframer_next(&d, &p, &n, &msg, &len, &comp), RPC_DEFRAME_MORE);
    n = 3;
    cr_assert_eq(rpc__deframer_next(&d, &p, &n, &msg, &len, &comp), RPC_DEFRAME_TOO_BIG);
    cr_assert_eq(len, 0xFFFFFFFF);
    cr_assert_lt(d.buf.cap, 4096, "no allocation by declared size");
    rpc__deframer_dispose(&d);
}

Test(rpc_framing, max_len_is_the_wire_length)
{
    rpc_buf w;
    rpc__buf_init(&w);
    uint8_t body[100] = {0};
    put_msg(&w, true, body, 100);
    rpc_deframer d;
    rpc__deframer_init(&d, 100);
    const uint8_t *p = w.data, *msg;
    size_t n = w.len, len;
    bool comp;
    cr_assert_eq(rpc__deframer_next(&d, &p, &n, &msg, &len, &comp), RPC_DEFRAME_MESSAGE);
    cr_assert_eq(len, 100);
    rpc__deframer_dispose(&d);
    rpc__buf_dispose(&w);
}

Test(rpc_framing, allocation_follows_received_bytes)
{
    /* A peer declaring 1 MiB and sending 10 bytes costs little memory. */
    uint8_t wire[RPC_FRAME_HEADER + 10] = {0};
    rpc__frame_header(wire, false, 1 << 20);
    rpc_deframer d;
    rpc__deframer_init(&d, 4 << 20);
    const uint8_t *p = wire, *msg;
    size_t n = sizeof wire, len;
    bool comp;
    cr_assert_eq(rpc__deframer_next(&d, &p, &n, &msg, &len, &comp), RPC_DEFRAME_MORE);
    cr_assert(rpc__deframer_partial(&d));
    cr_assert_lt(d.buf.cap, 4096);
    rpc__deframer_dispose(&d);
}

Test(rpc_framing, large_gathered_message_releases_its_buffer)
{
    size_t size = 1 << 20;
    uint8_t *body = malloc(size);
    for (size_t i = 0; i < size; i++)
        body[i] = (uint8_t)(i >> 3);
    rpc_buf w;
    rpc__buf_init(&w);
    put_msg(&w, false, body, (uint32_t)size);
    rpc_deframer d;
    rpc__deframer_init(&d, size);
    const uint8_t *p = w.data, *msg;
    size_t n, len;
    bool comp;
    rpc_deframe_result r = RPC_DEFRAME_MORE;
    size_t off = 0;
    while (r == RPC_DEFRAME_MORE && off < w.len) {
        size_t k = w.len - off < 16384 ? w.len - off : 16384;
        p = w.data + off, n = k;
        r = rpc__deframer_next(&d, &p, &n, &msg, &len, &comp);
        off += k - n;
    }
    cr_assert_eq(r, RPC_DEFRAME_MESSAGE);
    cr_assert_eq(len, size);
    cr_assert_arr_eq(msg, body, size);
    cr_assert_leq(d.buf.cap, size + RPC_FRAME_HEADER, "capacity clamped to the message");
    n = 0;
    cr_assert_eq(rpc__deframer_next(&d, &p, &n, &msg, &len, &comp), RPC_DEFRAME_MORE);
    cr_assert_eq(d.buf.cap, 0, "a large buffer is released after use");
    rpc__deframer_dispose(&d);
    rpc__buf_dispose(&w);
    free(body);
}

Test(rpc_framing, partial_detection)
{
    rpc_deframer d;
    rpc__deframer_init(&d, 100);
    cr_assert_not(rpc__deframer_partial(&d));
    uint8_t wire[] = {0, 0, 0, 0, 2, 'o', 'k'};
    const uint8_t *p, *msg;
    size_t n, len;
    bool comp;
    for (size_t cut = 1; cut < sizeof wire; cut++) {
        p = wire, n = cut;
        cr_assert_eq(rpc__deframer_next(&d, &p, &n, &msg, &len, &comp), RPC_DEFRAME_MORE);
        cr_assert(rpc__deframer_partial(&d), "cut %zu", cut);
        p = wire + cut, n = sizeof wire - cut;
        cr_assert_eq(rpc__deframer_next(&d, &p, &n, &msg, &len, &comp), RPC_DEFRAME_MESSAGE);
        cr_assert_arr_eq(msg, "ok", 2);
        cr_assert_not(rpc__deframer_partial(&d));
    }
    rpc__deframer_dispose(&d);
}
