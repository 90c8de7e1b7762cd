/* Unit tests for grpc-message percent-encoding (src/rpc/percent.c). */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "rpc_int.h"

/* The interop suite's special_status_message. */
static const char SPECIAL[] = "\t\ntest with whitespace\r\nand Unicode BMP ☺ and non-BMP 😈\t\n";

static void check_decode(const char *in, const char *want, size_t want_len)
{
    size_t n = 12345;
    char *out = rpc__percent_decode(in, strlen(in), &n);
    cr_assert_not_null(out);
    cr_assert_eq(n, want_len, "decode(\"%s\"): length %zu, want %zu", in, n, want_len);
    cr_assert_arr_eq(out, want, want_len, "decode(\"%s\")", in);
    cr_assert_eq(out[n], '\0');
    free(out);
}

Test(rpc_percent, interop_special_message)
{
    char *enc = rpc__percent_encode(SPECIAL, strlen(SPECIAL));
    cr_assert_not_null(enc);
    cr_assert_str_eq(enc, "%09%0Atest with whitespace%0D%0Aand Unicode BMP %E2%98%BA and "
                          "non-BMP %F0%9F%98%88%09%0A");
    size_t n;
    char *dec = rpc__percent_decode(enc, strlen(enc), &n);
    cr_assert_not_null(dec);
    cr_assert_eq(n, strlen(SPECIAL));
    cr_assert_str_eq(dec, SPECIAL);
    free(dec);
    free(enc);
}

Test(rpc_percent, percent_sign_itself)
{
    char *enc = rpc__percent_encode("100%", 4);
    cr_assert_str_eq(enc, "100%25");
    free(enc);
    check_decode("100%25", "100%", 4);
    check_decode("%2525", "%25", 3); /* decoded once, not twice */
}

Test(rpc_percent, printable_ascii_passes_through)
{
    char in[95];
    size_t n = 0;
    for (int c = 0x20; c <= 0x7E; c++) {
        if (c != '%')
            in[n++] = (char)c;
    }
    char *enc = rpc__percent_encode(in, n);
    cr_assert_eq(strlen(enc), n);
    cr_assert_arr_eq(enc, in, n);
    free(enc);
}

Test(rpc_percent, every_byte_round_trips)
{
    char in[256];
    for (int i = 0; i < 256; i++)
        in[i] = (char)i;
    char *enc = rpc__percent_encode(in, sizeof in);
    cr_assert_not_null(enc);
    for (const char *p = enc; *p; p++)
        cr_assert(*p >= 0x20 && *p <= 0x7E, "unencoded byte 0x%02x", (unsigned char)*p);
    cr_assert_eq(strlen(enc), 95 - 1 + (256 - 95 + 1) * 3);
    size_t n;
    char *dec = rpc__percent_decode(enc, strlen(enc), &n);
    cr_assert_eq(n, sizeof in);
    cr_assert_arr_eq(dec, in, sizeof in);
    free(dec);
    free(enc);
}

Test(rpc_percent, empty)
{
    char *enc = rpc__percent_encode("", 0);
    cr_assert_str_eq(enc, "");
    free(enc);
    check_decode("", "", 0);
}

Test(rpc_percent, decode_accepts_lower_case_hex)
{
    check_decode("%e2%98%ba", "\xe2\x98\xba", 3);
    check_decode("a%2fb%2Fc", "a/b/c", 5);
    check_decode("%00x", "\0x", 2);
}

Test(rpc_percent, malformed_sequences_are_kept)
{
    check_decode("%", "%", 1);
    check_decode("abc%", "abc%", 4);
    check_decode("%4", "%4", 2);
    check_decode("x%4", "x%4", 3);
    check_decode("%zz", "%zz", 3);
    check_decode("%4g", "%4g", 3);
    check_decode("%g4", "%g4", 3);
    check_decode("%%41", "%A", 2);
    check_decode("% 41", "% 41", 4);
    check_decode("50% off, %41", "50% off, A", 10);
}

Test(rpc_percent, decode_uses_the_given_length)
{
    size_t n;
    char *dec = rpc__percent_decode("%41%42", 3, &n);
    cr_assert_eq(n, 1);
    cr_assert_str_eq(dec, "A");
    free(dec);
    dec = rpc__percent_decode("%41%42", 4, &n);
    cr_assert_eq(n, 2);
    cr_assert_str_eq(dec, "A%");
    free(dec);
}
