/* Unit tests for metadata key rules and base64 (src/rpc/metadata.c). */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "rpc_int.h"

static bool key_valid(const char *k)
{
    return rpc__md_key_valid(k, strlen(k));
}

static bool reserved(const char *k)
{
    return rpc__md_key_reserved(k, strlen(k));
}

Test(rpc_metadata, key_validity)
{
    static const char *const good[] = {
        "a", "0", "x-custom", "my.key_1", "trace-bin", "idempotency-key", "-", "_._",
    };
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++)
        cr_assert(key_valid(good[i]), "\"%s\" should be valid", good[i]);
    static const char *const bad[] = {
        "", "A", "X-Custom", "a b", "a:b", ":path", "key/", "key=", "k\xc3\xa9", "tab\t", "a,b",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        cr_assert_not(key_valid(bad[i]), "\"%s\" should be invalid", bad[i]);
    cr_assert_not(rpc__md_key_valid("a\0b", 3), "embedded NUL");
    cr_assert(rpc__md_key_valid("ab:", 2), "only len bytes are checked");
}

Test(rpc_metadata, bin_suffix)
{
    cr_assert(rpc__md_key_is_bin("trace-bin", 9));
    cr_assert(rpc__md_key_is_bin("-bin", 4));
    cr_assert_not(rpc__md_key_is_bin("bin", 3));
    cr_assert_not(rpc__md_key_is_bin("trace-bin2", 10));
    cr_assert_not(rpc__md_key_is_bin("trace-bi", 8));
    cr_assert_not(rpc__md_key_is_bin("tracebin", 8));
    cr_assert_not(rpc__md_key_is_bin("", 0));
    cr_assert(rpc__md_key_is_bin("x-bin-and-more", 5), "only len bytes are checked");
}

Test(rpc_metadata, value_validity)
{
    char all[95];
    for (int c = 0x20; c <= 0x7E; c++)
        all[c - 0x20] = (char)c;
    cr_assert(rpc__md_value_valid((const uint8_t *)all, sizeof all));
    cr_assert(rpc__md_value_valid((const uint8_t *)"", 0));
    static const uint8_t bad[] = {0x00, '\t', '\n', '\r', 0x1F, 0x7F, 0x80, 0xFF};
    for (size_t i = 0; i < sizeof bad; i++) {
        uint8_t v[] = {'o', 'k', bad[i], 'x'};
        cr_assert_not(rpc__md_value_valid(v, sizeof v), "byte 0x%02x", bad[i]);
    }
}

Test(rpc_metadata, reserved_keys)
{
    static const char *const yes[] = {
        ":path",
        ":authority",
        ":status",
        ":",
        "content-type",
        "te",
        "grpc-timeout",
        "grpc-encoding",
        "grpc-accept-encoding",
        "grpc-message",
        "grpc-status",
        "grpc-status-details-bin",
        "grpc-message-type",
        "grpc-previous-rpc-attempts",
        "grpc-future-key",
        "grpc-",
        "connection",
        "keep-alive",
        "proxy-connection",
        "transfer-encoding",
        "upgrade",
        "content-length",
        "Content-Type",
        "GRPC-Status",
        "TE",
    };
    for (size_t i = 0; i < sizeof yes / sizeof yes[0]; i++)
        cr_assert(reserved(yes[i]), "\"%s\" should be reserved", yes[i]);
    static const char *const no[] = {
        "user-agent",  "authorization",
        "x-grpc-foo",  "grpc",
        "grp",         "t",
        "tea",         "content-type-x",
        "contenttype", "x-te",
        "host",        "idempotency-key",
        "trace-bin",   "",
    };
    for (size_t i = 0; i < sizeof no / sizeof no[0]; i++)
        cr_assert_not(reserved(no[i]), "\"%s\" should not be reserved", no[i]);
    cr_assert(rpc__md_key_reserved("tea", 2), "only len bytes are compared");
}

/* RFC 4648 section 10. */
static const struct {
    const char *plain;
    const char *b64;
} VECTORS[] = {
    {"", ""},
    {"f", "Zg=="},
    {"fo", "Zm8="},
    {"foo", "Zm9v"},
    {"foob", "Zm9vYg=="},
    {"fooba", "Zm9vYmE="},
    {"foobar", "Zm9vYmFy"},
};

/* Decodes into a buffer of exactly the documented size, so ASan catches any
 * write past it. */
static long decode(const char *in, size_t len, uint8_t **out)
{
    *out = malloc(len * 3 / 4 + 3);
    return rpc__base64_decode(in, len, *out);
}

Test(rpc_metadata, base64_encode_rfc4648_vectors)
{
    for (size_t i = 0; i < sizeof VECTORS / sizeof VECTORS[0]; i++) {
        size_t n = strlen(VECTORS[i].plain);
        size_t want = strlen(VECTORS[i].b64);
        cr_assert_eq(rpc__base64_encoded_len(n), want);
        char *out = malloc(want + 1);
        cr_assert_eq(rpc__base64_encode((const uint8_t *)VECTORS[i].plain, n, out), want);
        cr_assert_arr_eq(out, VECTORS[i].b64, want);
        free(out);
    }
}

Test(rpc_metadata, base64_decode_with_padding)
{
    for (size_t i = 0; i < sizeof VECTORS / sizeof VECTORS[0]; i++) {
        uint8_t *out;
        long n = decode(VECTORS[i].b64, strlen(VECTORS[i].b64), &out);
        cr_assert_eq(n, (long)strlen(VECTORS[i].plain), "\"%s\"", VECTORS[i].b64);
        cr_assert_arr_eq(out, VECTORS[i].plain, (size_t)n);
        free(out);
    }
}

Test(rpc_metadata, base64_decode_without_padding)
{
    for (size_t i = 0; i < sizeof VECTORS / sizeof VECTORS[0]; i++) {
        size_t len = strlen(VECTORS[i].b64);
        while (len > 0 && VECTORS[i].b64[len - 1] == '=')
            len--;
        uint8_t *out;
        long n = decode(VECTORS[i].b64, len, &out);
        cr_assert_eq(n, (long)strlen(VECTORS[i].plain), "\"%.*s\"", (int)len, VECTORS[i].b64);
        cr_assert_arr_eq(out, VECTORS[i].plain, (size_t)n);
        free(out);
    }
}

Test(rpc_metadata, base64_round_trip_all_bytes_and_lengths)
{
    uint8_t in[300];
    for (size_t i = 0; i < sizeof in; i++)
        in[i] = (uint8_t)(255 - i * 13);
    for (size_t len = 0; len <= sizeof in; len++) {
        char *enc = malloc(rpc__base64_encoded_len(len));
        size_t e = rpc__base64_encode(in, len, enc);
        cr_assert_eq(e, rpc__base64_encoded_len(len));
        uint8_t *out;
        long n = decode(enc, e, &out);
        cr_assert_eq(n, (long)len);
        cr_assert_arr_eq(out, in, len);
        free(out);
        free(enc);
    }
}

Test(rpc_metadata, base64_uses_the_standard_alphabet)
{
    static const uint8_t in[] = {0xFB, 0xFF, 0xBF};
    char out[4];
    cr_assert_eq(rpc__base64_encode(in, 3, out), 4);
    cr_assert_arr_eq(out, "+/+/", 4);
    uint8_t *dec;
    cr_assert_eq(decode("+/+/", 4, &dec), 3);
    cr_assert_arr_eq(dec, in, 3);
    free(dec);
    cr_assert_eq(decode("-_-_", 4, &dec), -1, "URL-safe alphabet is not gRPC's");
    free(dec);
}

Test(rpc_metadata, base64_invalid)
{
    static const char *const bad[] = {
        /* a dangling character */
        "Z",
        "Zm9vY",
        /* padding that does not end a 4-character group, or too much of it */
        "Zg=",
        "Zg===",
        "=",
        "==",
        "====",
        "Zm9v====",
        /* padding inside */
        "Zg==Zg==",
        "Zm=9",
        /* characters outside the alphabet, whitespace included */
        "Zm9v!",
        "Zm 9v",
        "Zm9v\n",
        "Zm9v\r\n",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        uint8_t *out;
        cr_assert_eq(decode(bad[i], strlen(bad[i]), &out), -1, "\"%s\" should fail", bad[i]);
        free(out);
    }
    uint8_t *out;
    cr_assert_eq(decode("Zm\0v", 4, &out), -1, "embedded NUL");
    free(out);
}

Test(rpc_metadata, base64_ignores_nonzero_trailing_bits)
{
    /* "Zh==" differs from "Zg==" only in bits that carry no data; Go's
     * default decoder accepts it and so do we. */
    uint8_t *out;
    cr_assert_eq(decode("Zh==", 4, &out), 1);
    cr_assert_eq(out[0], 'f');
    free(out);
}
