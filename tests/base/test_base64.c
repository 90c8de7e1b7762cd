/* base/base64.c: RFC 4648 vectors in both alphabets, padding rules, and the
 * inputs each caller must refuse (JWT strictness, mixed alphabets). */
#include <criterion/criterion.h>
#include <string.h>

#include "base/base64.h"

static long dec(const char *s, unsigned flags, char *out)
{
    long n = oms_base64_decode(s, strlen(s), (uint8_t *)out, flags);
    if (n >= 0)
        out[n] = '\0';
    return n;
}

static const char *enc(const char *s, unsigned flags, char *out)
{
    size_t n = oms_base64_encode((const uint8_t *)s, strlen(s), out, flags);
    cr_assert_eq(n, oms_base64_encoded_len(strlen(s), flags));
    out[n] = '\0';
    return out;
}

Test(base64, rfc4648_vectors)
{
    static const char *const v[][3] = {
        {"", "", ""},
        {"f", "Zg==", "Zg"},
        {"fo", "Zm8=", "Zm8"},
        {"foo", "Zm9v", "Zm9v"},
        {"foob", "Zm9vYg==", "Zm9vYg"},
        {"fooba", "Zm9vYmE=", "Zm9vYmE"},
        {"foobar", "Zm9vYmFy", "Zm9vYmFy"},
    };
    char buf[64];
    for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) {
        cr_expect_str_eq(enc(v[i][0], 0, buf), v[i][1]);
        cr_expect_str_eq(enc(v[i][0], OMS_B64_NOPAD, buf), v[i][2]);
        cr_expect_eq(dec(v[i][1], 0, buf), (long)strlen(v[i][0]));
        cr_expect_str_eq(buf, v[i][0]);
        cr_expect_eq(dec(v[i][2], 0, buf), (long)strlen(v[i][0]), "unpadded %s", v[i][2]);
        cr_expect_str_eq(buf, v[i][0]);
    }
}

Test(base64, alphabets)
{
    static const uint8_t bytes[] = {0xfb, 0xff, 0xbf};
    char out[8];
    uint8_t back[8];
    out[oms_base64_encode(bytes, 3, out, 0)] = '\0';
    cr_assert_str_eq(out, "+/+/");
    out[oms_base64_encode(bytes, 3, out, OMS_B64_URL)] = '\0';
    cr_assert_str_eq(out, "-_-_");
    cr_expect_eq(oms_base64_decode("+/+/", 4, back, 0), 3);
    cr_expect_eq(oms_base64_decode("-_-_", 4, back, 0), -1, "URL characters in standard");
    cr_expect_eq(oms_base64_decode("+/+/", 4, back, OMS_B64_URL), -1, "standard in URL");
    cr_expect_eq(oms_base64_decode("-_-_", 4, back, OMS_B64_ANY), 3);
    cr_expect_eq(memcmp(back, bytes, 3), 0);
    cr_expect_eq(oms_base64_decode("+/+/", 4, back, OMS_B64_ANY), 3);
    cr_expect_eq(oms_base64_decode("+_+/", 4, back, OMS_B64_ANY), -1, "alphabets mixed");
}

Test(base64, malformed)
{
    char buf[64];
    static const char *const bad[] = {
        "Z",          /* 6 bits cannot end a byte */
        "Zm9vY",      /* 4k+1 characters */
        "Zg=",        /* padding that does not end a group */
        "Z===",       /* three '=' */
        "Zg==Zg==",   /* '=' inside the text */
        "Zm 9v",      /* whitespace */
        "Zm9v\n",     /* a newline */
        "Zm9*",       /* outside the alphabet */
        "Zm\xc3\xa9", /* non-ASCII */
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        cr_expect_eq(dec(bad[i], OMS_B64_ANY, buf), -1, "accepted \"%s\"", bad[i]);
    cr_expect_eq(dec("Zg==", OMS_B64_NOPAD, buf), -1, "padding where refused");
    cr_expect_eq(oms_base64_decode("Zm\0v", 4, (uint8_t *)buf, 0), -1, "a NUL inside");
}

Test(base64, strict_unused_bits)
{
    char buf[8];
    /* "Zh" carries the same byte as "Zg" with a non-zero unused bit */
    cr_expect_eq(dec("Zh", 0, buf), 1, "lenient: as Go's default decoder");
    cr_expect_str_eq(buf, "f");
    cr_expect_eq(dec("Zh", OMS_B64_STRICT, buf), -1);
    cr_expect_eq(dec("Zg", OMS_B64_STRICT, buf), 1);
    cr_expect_eq(dec("Zm8", OMS_B64_STRICT, buf), 2, "two unused bits zero");
    cr_expect_eq(dec("Zm9", OMS_B64_STRICT, buf), -1, "\x27fo\x27 with an unused bit set");
    cr_expect_eq(dec("Zm-", OMS_B64_STRICT | OMS_B64_URL, buf), -1, "'-' leaves bits set");
}

Test(base64, every_length_round_trips)
{
    uint8_t in[70], back[80];
    char text[100];
    for (size_t i = 0; i < sizeof in; i++)
        in[i] = (uint8_t)(i * 37 + 11);
    for (unsigned flags = 0; flags < 4; flags++) {
        for (size_t n = 0; n <= sizeof in; n++) {
            size_t len = oms_base64_encode(in, n, text, flags);
            cr_assert_leq(oms_base64_decoded_max(len), sizeof back);
            long got = oms_base64_decode(text, len, back, flags | OMS_B64_STRICT);
            cr_assert_eq(got, (long)n, "flags %u length %zu", flags, n);
            cr_assert_eq(memcmp(in, back, n), 0);
        }
    }
}
