/* W3C trace context: traceparent parsing (strict), tracestate checks, ids
 * generated and formatted, children. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "rpc/trace.h"

#define TP "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"

static int parse(const char *s, rpc_trace *t)
{
    return rpc_traceparent_parse(s, strlen(s), t);
}

Test(rpc_trace, parses_the_spec_example)
{
    rpc_trace t;
    memset(&t, 0, sizeof t);
    cr_assert_eq(parse(TP, &t), 0);
    char hex[33];
    rpc_trace_hex(t.trace_id, 16, hex);
    cr_expect_str_eq(hex, "4bf92f3577b34da6a3ce929d0e0e4736");
    rpc_trace_hex(t.parent_id, 8, hex);
    cr_expect_str_eq(hex, "00f067aa0ba902b7");
    cr_expect_eq(t.flags, 1);
}

Test(rpc_trace, rejects_what_the_spec_rejects)
{
    static const char *const bad[] = {
        "",
        "00",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0",   /* short */
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-", /* 00 + extra */
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-011", /* 00 + extra */
        "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",  /* uppercase */
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00F067AA0BA902B7-01",  /* uppercase */
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0A",  /* uppercase */
        "00-00000000000000000000000000000000-00f067aa0ba902b7-01",  /* zero trace id */
        "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",  /* zero span id */
        "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",  /* version ff */
        "0g-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",  /* version not hex */
        "00_4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",  /* separator */
        "00-4bf92f3577b34da6a3ce929d0e0e4736_00f067aa0ba902b7-01",  /* separator */
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7_01",  /* separator */
        "00-4bf92f3577b34da6a3ce929d0e0e473g-00f067aa0ba902b7-01",  /* not hex */
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902bz-01",  /* not hex */
        " 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", /* leading space */
        "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01x", /* later version: no '-' */
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        rpc_trace t;
        memset(&t, 0x5a, sizeof t);
        cr_expect_eq(parse(bad[i], &t), -1, "accepted '%s'", bad[i]);
        cr_expect_eq(t.flags, 0x5a, "changed the output on '%s'", bad[i]);
    }
    /* NUL inside */
    char nul[] = TP;
    nul[10] = '\0';
    rpc_trace t;
    cr_expect_eq(rpc_traceparent_parse(nul, sizeof nul - 1, &t), -1);
}

Test(rpc_trace, later_versions_parse_their_00_prefix)
{
    rpc_trace t;
    cr_expect_eq(parse("01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", &t), 0);
    cr_expect_eq(parse("cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-09-what-ever", &t), 0);
    cr_expect_eq(t.flags, 9);
}

Test(rpc_trace, from_headers_accepts_keeps_state_or_generates)
{
    rpc_trace t;
    rpc_trace_from_headers(&t, TP, strlen(TP), 1, "congo=t61rcWkgMzE,rojo=00f067aa0ba902b7", 39);
    cr_expect(t.accepted);
    cr_expect_str_eq(t.state, "congo=t61rcWkgMzE,rojo=00f067aa0ba902b7");
    char hex[33];
    rpc_trace_hex(t.trace_id, 16, hex);
    cr_expect_str_eq(hex, "4bf92f3577b34da6a3ce929d0e0e4736");
    cr_expect_neq(memcmp(t.span_id, t.parent_id, 8), 0, "a span of its own");

    /* two traceparent headers: invalid, so the tracestate goes too */
    rpc_trace_from_headers(&t, TP, strlen(TP), 2, "a=b", 3);
    cr_expect(!t.accepted);
    cr_expect_str_eq(t.state, "");
    rpc_trace_hex(t.trace_id, 16, hex);
    cr_expect_str_neq(hex, "4bf92f3577b34da6a3ce929d0e0e4736");
    static const uint8_t zero[16];
    cr_expect_neq(memcmp(t.trace_id, zero, 16), 0);
    cr_expect_eq(memcmp(t.parent_id, zero, 8), 0, "no parent when generated");

    /* version 00 with unknown flag bits: only 'sampled' is kept */
    rpc_trace_from_headers(&t, "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-ff", 55, 1,
                           NULL, 0);
    cr_expect(t.accepted);
    cr_expect_eq(t.flags, 1);
    /* a bad tracestate is dropped, the traceparent kept */
    rpc_trace_from_headers(&t, TP, strlen(TP), 1, "a=b\x01", 4);
    cr_expect(t.accepted);
    cr_expect_str_eq(t.state, "");
}

Test(rpc_trace, generated_ids_differ)
{
    rpc_trace a, b;
    rpc_trace_from_headers(&a, NULL, 0, 0, NULL, 0);
    rpc_trace_from_headers(&b, NULL, 0, 0, NULL, 0);
    cr_expect_neq(memcmp(a.trace_id, b.trace_id, 16), 0);
    cr_expect_neq(memcmp(a.span_id, b.span_id, 8), 0);
    /* many draws through the pool refill */
    uint8_t buf[1000];
    cr_expect_eq(rpc_random_bytes(buf, sizeof buf), 0);
}

Test(rpc_trace, child_keeps_trace_and_state_new_span_formats)
{
    rpc_trace p, c;
    rpc_trace_from_headers(&p, TP, strlen(TP), 1, "k=v", 3);
    rpc_trace_child(&c, &p);
    cr_expect_eq(memcmp(c.trace_id, p.trace_id, 16), 0);
    cr_expect_eq(memcmp(c.parent_id, p.span_id, 8), 0);
    cr_expect_neq(memcmp(c.span_id, p.span_id, 8), 0);
    cr_expect_str_eq(c.state, "k=v");
    char tp[RPC_TRACEPARENT_LEN + 1];
    rpc_trace_format(&c, tp);
    cr_expect_eq(strlen(tp), 55);
    cr_expect_eq(strncmp(tp, "00-4bf92f3577b34da6a3ce929d0e0e4736-", 36), 0, "%s", tp);
    cr_expect_str_eq(tp + 52, "-01");
    rpc_trace back;
    cr_expect_eq(parse(tp, &back), 0, "our own output parses: %s", tp);
    cr_expect_eq(memcmp(back.parent_id, c.span_id, 8), 0);
    /* no parent: a new trace */
    rpc_trace_child(&c, NULL);
    cr_expect_neq(memcmp(c.trace_id, p.trace_id, 16), 0);
}

Test(rpc_trace, tracestate_rules)
{
    static const char *const ok[] = {
        "",
        "a=b",
        "congo=t61rcWkgMzE",
        "a=1,b=2",
        " a=1 , b=2 ",
        "a=1,,b=2",
        "tenant@vendor=x",
        "a*b/c_d-e=v v",
    };
    static const char *const bad[] = {
        "a", "=b", "a=", "A=b", "a=b=c", "a=b\x7f", "a=b\tc\x01", "a\xc3\xa9=b",
    };
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++)
        cr_expect(rpc_tracestate_valid(ok[i], strlen(ok[i])), "refused '%s'", ok[i]);
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        cr_expect(!rpc_tracestate_valid(bad[i], strlen(bad[i])), "accepted '%s'", bad[i]);
    char many[400] = "";
    for (int i = 0; i < 33; i++)
        snprintf(many + strlen(many), sizeof many - strlen(many), "%sk%d=v", i ? "," : "", i);
    cr_expect(!rpc_tracestate_valid(many, strlen(many)), "33 members");
    *strrchr(many, ',') = '\0';
    cr_expect(rpc_tracestate_valid(many, strlen(many)), "32 members");
    char big[RPC_TRACESTATE_MAX + 2];
    memset(big, 'v', sizeof big);
    big[0] = 'k';
    big[1] = '=';
    cr_expect(rpc_tracestate_valid(big, RPC_TRACESTATE_MAX));
    cr_expect(!rpc_tracestate_valid(big, RPC_TRACESTATE_MAX + 1));
}
