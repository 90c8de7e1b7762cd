/* http1/parse.c on its own: requests fed in pieces of every size, the
 * refusals parse.h lists, pipelining with pause and resume. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "http1/parse.h"

typedef struct rec {
    int heads, ends;
    char target[64];
    char body[256];
    size_t body_len;
    size_t n_headers;
    bool chunked, keep_alive, upgrade;
    int pause; /* on_end's answer */
} rec;

static int on_head(void *data, const http1_head *h)
{
    rec *r = data;
    r->heads++;
    snprintf(r->target, sizeof r->target, "%s", h->target);
    r->n_headers = h->n_headers;
    r->chunked = h->chunked;
    r->keep_alive = h->keep_alive;
    r->upgrade = h->upgrade;
    return 0;
}

static int on_body(void *data, const uint8_t *p, size_t n)
{
    rec *r = data;
    cr_assert_leq(r->body_len + n, sizeof r->body);
    memcpy(r->body + r->body_len, p, n);
    r->body_len += n;
    return 0;
}

static int on_end(void *data)
{
    rec *r = data;
    r->ends++;
    return r->pause;
}

static const http1_parse_ops ops = {on_head, on_body, on_end};

/* Feeds s in pieces of step bytes (0: whole); returns the first negative
 * result, or 0. */
static long feed(rec *r, const char *s, size_t len, size_t step)
{
    http1_parse_limits lim = {256, 8};
    http1_parser *p = http1_parser_new(&lim, &ops, r);
    cr_assert_not_null(p);
    long rv = 0;
    for (size_t off = 0; off < len;) {
        size_t n = step && len - off > step ? step : len - off;
        long used = http1_parser_feed(p, s + off, n);
        if (used < 0) {
            rv = used;
            break;
        }
        cr_assert_eq((size_t)used, n, "stopped at %zu", off);
        off += n;
    }
    http1_parser_free(p);
    return rv;
}

#define FEED(r, lit, step) feed((r), (lit), sizeof(lit) - 1, (step))

Test(http1_parse, chunked_request_in_pieces_of_every_size)
{
    static const char req[] =
        "POST /p?q=1 HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
        "3\r\nabc\r\n4;x=y\r\ndefg\r\n0\r\nT: v\r\n\r\n";
    for (size_t step = 0; step < 12; step++) {
        rec r = {0};
        cr_assert_eq(FEED(&r, req, step), 0, "step %zu", step);
        cr_expect_eq(r.heads, 1);
        cr_expect_eq(r.ends, 1);
        cr_expect_str_eq(r.target, "/p?q=1");
        cr_expect(r.chunked && r.keep_alive && !r.upgrade);
        cr_expect(r.body_len == 7 && memcmp(r.body, "abcdefg", 7) == 0, "step %zu", step);
    }
}

Test(http1_parse, obs_fold_refused_however_it_is_split)
{
    static const char req[] = "GET / HTTP/1.1\r\nHost: h\r\nX-A: one\r\n\t two\r\n\r\n";
    for (size_t step = 0; step < 8; step++) {
        rec r = {0};
        cr_expect_eq(FEED(&r, req, step), -400, "step %zu", step);
        cr_expect_eq(r.heads, 0);
    }
    /* a value split across reads is not a fold */
    rec r = {0};
    cr_expect_eq(FEED(&r, "GET / HTTP/1.1\r\nHost: h\r\nX-A: o n e\r\n\r\n", 1), 0);
    cr_expect_eq(r.heads, 1);
}

Test(http1_parse, smuggling_and_bad_bytes_refused)
{
    rec r = {0};
    cr_expect_eq(FEED(&r,
                      "POST / HTTP/1.1\r\nContent-Length: 1\r\nTransfer-Encoding: chunked"
                      "\r\n\r\n0\r\n\r\n",
                      0),
                 -400);
    cr_expect_eq(FEED(&r, "POST / HTTP/1.1\r\nTransfer-Encoding: identity\r\n\r\n", 0), -400);
    cr_expect_eq(FEED(&r, "POST / HTTP/1.1\r\nTransfer-Encoding: chunked, chunked\r\n\r\n", 0),
                 -400);
    cr_expect_eq(FEED(&r, "GET / HTTP/1.1\r\nX-A: a\x01z\r\n\r\n", 0), -400);
    cr_expect_eq(FEED(&r, "GET / HTTP/1.1\r\nX(A: a\r\n\r\n", 0), -400);
    cr_expect_eq(FEED(&r, "GET / HTTP/2.0\r\n\r\n", 0), -400);
    cr_expect_eq(FEED(&r,
                      "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
                      "ffffffffffffffffff\r\n",
                      0),
                 -400);
    cr_expect_eq(r.heads, 1, "only the bad chunk's head was whole");
}

Test(http1_parse, head_limits_give_431)
{
    rec r = {0};
    char big[600];
    int n = snprintf(big, sizeof big, "GET / HTTP/1.1\r\nX-Big: %0300d\r\n\r\n", 1);
    cr_expect_eq(feed(&r, big, (size_t)n, 7), -431);
    char many[600];
    size_t k = (size_t)snprintf(many, sizeof many, "GET / HTTP/1.1\r\n");
    for (int i = 0; i < 9; i++)
        k += (size_t)snprintf(many + k, sizeof many - k, "X-%d: v\r\n", i);
    k += (size_t)snprintf(many + k, sizeof many - k, "\r\n");
    cr_expect_eq(feed(&r, many, k, 0), -431);
    cr_expect_eq(r.heads, 0);
}

Test(http1_parse, pause_at_the_end_and_resume_for_the_pipelined_one)
{
    static const char two[] = "GET /1 HTTP/1.1\r\nHost: h\r\n\r\nGET /2 HTTP/1.1\r\nHost: h\r\n"
                              "Connection: close\r\n\r\n";
    rec r = {.pause = 1};
    http1_parse_limits lim = {256, 8};
    http1_parser *p = http1_parser_new(&lim, &ops, &r);
    long used = http1_parser_feed(p, two, sizeof two - 1);
    cr_assert_gt(used, 0);
    cr_assert_lt((size_t)used, sizeof two - 1, "did not pause after the first request");
    cr_expect_eq(r.ends, 1);
    cr_expect_str_eq(r.target, "/1");
    cr_expect(!http1_parser_busy(p));
    http1_parser_resume(p);
    long rest = http1_parser_feed(p, two + used, sizeof two - 1 - (size_t)used);
    cr_expect_eq((size_t)rest, sizeof two - 1 - (size_t)used);
    cr_expect_eq(r.ends, 2);
    cr_expect_str_eq(r.target, "/2");
    cr_expect(!r.keep_alive);
    http1_parser_free(p);
}

Test(http1_parse, upgrade_is_flagged_and_not_kept_alive)
{
    rec r = {0};
    cr_expect_eq(
        FEED(&r, "GET / HTTP/1.1\r\nHost: h\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n", 0), 0);
    cr_expect_eq(r.ends, 1);
    cr_expect(r.upgrade && !r.keep_alive);
}
