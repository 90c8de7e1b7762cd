/* Unit tests for grpc-timeout parsing and formatting (src/rpc/timeout.c). */
#include <criterion/criterion.h>
#include <string.h>

#include "rpc_int.h"

static uint64_t parse_ok(const char *s)
{
    uint64_t ms = 0xDEADBEEF;
    cr_assert_eq(rpc__timeout_parse(s, strlen(s), &ms), 0, "\"%s\" should parse", s);
    return ms;
}

static void parse_bad(const char *s, size_t len)
{
    uint64_t ms = 42;
    cr_assert_eq(rpc__timeout_parse(s, len, &ms), -1, "\"%.*s\" should be rejected", (int)len, s);
    cr_assert_eq(ms, 42, "output written on failure");
}

Test(rpc_timeout, every_unit)
{
    cr_assert_eq(parse_ok("1H"), 3600000);
    cr_assert_eq(parse_ok("2M"), 120000);
    cr_assert_eq(parse_ok("3S"), 3000);
    cr_assert_eq(parse_ok("4m"), 4);
    cr_assert_eq(parse_ok("5000u"), 5);
    cr_assert_eq(parse_ok("7000000n"), 7);
    cr_assert_eq(parse_ok("0m"), 0);
    cr_assert_eq(parse_ok("0S"), 0);
}

Test(rpc_timeout, sub_millisecond_units_round_up)
{
    cr_assert_eq(parse_ok("1n"), 1, "1n must not become 0 ms");
    cr_assert_eq(parse_ok("1u"), 1);
    cr_assert_eq(parse_ok("999u"), 1);
    cr_assert_eq(parse_ok("1000u"), 1);
    cr_assert_eq(parse_ok("1001u"), 2);
    cr_assert_eq(parse_ok("999999n"), 1);
    cr_assert_eq(parse_ok("1000000n"), 1);
    cr_assert_eq(parse_ok("1000001n"), 2);
    cr_assert_eq(parse_ok("99999999n"), 100);
    cr_assert_eq(parse_ok("99999999u"), 100000);
    cr_assert_eq(parse_ok("0n"), 0);
    cr_assert_eq(parse_ok("0u"), 0);
}

Test(rpc_timeout, eight_digits_accepted_nine_rejected)
{
    cr_assert_eq(parse_ok("99999999m"), 99999999);
    cr_assert_eq(parse_ok("12345678S"), 12345678000);
    cr_assert_eq(parse_ok("00000001S"), 1000);
    parse_bad("123456789m", 10);
    parse_bad("100000000S", 10);
    parse_bad("000000001m", 10);
}

Test(rpc_timeout, huge_hours_do_not_overflow)
{
    uint64_t ms = parse_ok("99999999H");
    cr_assert_eq(ms, UINT64_C(99999999) * 3600000);
    cr_assert_leq(ms, UINT64_MAX / 2, "saturation bound");
    /* Adding the largest timeout to a monotonic clock must not wrap. */
    cr_assert_gt(ms + (UINT64_C(1) << 62), ms);
}

Test(rpc_timeout, malformed_rejected)
{
    static const char *const bad[] = {
        "",   "m",  "S",  "1",    "12",   "-1S", "+1S", " 1S", "1S ",  "1 S", "1x", "1s",
        "1h", "1N", "1U", "1.5S", "1e3m", "abS", "1SS", "S1",  "0x1S", "-0m", "١S", "99999999",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        parse_bad(bad[i], strlen(bad[i]));
    /* Embedded NULs, which strlen() would hide. */
    parse_bad("1\0S", 3);
    parse_bad("\0001S", 3);
    parse_bad("1m\0", 3);
    parse_bad("", 0);
}

Test(rpc_timeout, parse_uses_the_given_length)
{
    uint64_t ms;
    cr_assert_eq(rpc__timeout_parse("10S and more", 3, &ms), 0);
    cr_assert_eq(ms, 10000);
    cr_assert_eq(rpc__timeout_parse("10S", 2, &ms), -1);
}

static void format_is(uint64_t ms, const char *want)
{
    char out[10];
    memset(out, 'X', sizeof out);
    size_t n = rpc__timeout_format(ms, out);
    cr_assert_str_eq(out, want, "format(%llu)", (unsigned long long)ms);
    cr_assert_eq(n, strlen(want));
}

Test(rpc_timeout, format_picks_the_finest_unit_that_fits)
{
    format_is(0, "1n");
    format_is(1, "1m");
    format_is(1000, "1000m");
    format_is(99999999, "99999999m");
    format_is(100000000, "100000S");
    format_is(100000001, "100001S"); /* rounded up */
    format_is(UINT64_C(99999999000), "99999999S");
    format_is(UINT64_C(99999999001), "1666667M");
    format_is(UINT64_C(99999999) * 60000, "99999999M");
    format_is(UINT64_C(99999999) * 60000 + 1, "1666667H");
    format_is(UINT64_C(99999999) * 3600000, "99999999H");
    format_is(UINT64_MAX, "99999999H"); /* clamped */
    format_is(UINT64_MAX / 2, "99999999H");
}

Test(rpc_timeout, format_round_trips)
{
    static const uint64_t samples[] = {
        1,
        2,
        999,
        1000,
        1001,
        59999,
        60000,
        3599999,
        3600000,
        86400000,
        99999998,
        99999999,
        100000000,
        123456789,
        987654321012,
        UINT64_C(1) << 40,
        UINT64_C(1) << 45,
        UINT64_C(99999999) * 3600000,
    };
    for (size_t i = 0; i < sizeof samples / sizeof samples[0]; i++) {
        uint64_t ms = samples[i];
        char out[10];
        size_t n = rpc__timeout_format(ms, out);
        cr_assert_leq(n, 9);
        cr_assert_eq(out[n], '\0');
        uint64_t back;
        cr_assert_eq(rpc__timeout_parse(out, n, &back), 0, "\"%s\" does not parse", out);
        if (ms <= 99999999)
            cr_assert_eq(back, ms, "%llu -> %s -> %llu", (unsigned long long)ms, out,
                         (unsigned long long)back);
        /* Never shorter, and longer by less than one unit of the chosen size. */
        cr_assert_geq(back, ms, "%s", out);
        cr_assert_lt(back - ms, 3600000, "%s", out);
        cr_assert_leq((back - ms) * 100000, back, "%s: rounding error over 1e-5", out);
    }
    /* Every millisecond value up to 10 s, exactly. */
    for (uint64_t ms = 1; ms <= 10000; ms++) {
        char out[10];
        size_t n = rpc__timeout_format(ms, out);
        uint64_t back;
        cr_assert_eq(rpc__timeout_parse(out, n, &back), 0);
        cr_assert_eq(back, ms);
    }
}
