/* rpc_parsers.c - fuzz target: the parsers of gRPC's header values
 * (src/rpc/timeout.c, percent.c, metadata.c, compress.c's list parsing).
 *
 * Input: byte 0 picks the parser, the rest is the header value. Besides not
 * crashing, each parser is checked against its own encoder where it has one:
 * decode(encode(x)) == x for percent-encoding and base64, and a formatted
 * timeout parses back to at least the milliseconds it came from.
 */
#include <stdlib.h>
#include <string.h>

#include "fuzz_check.h"
#include "rpc/rpc_int.h"

static void fuzz_timeout(const char *s, size_t n)
{
    uint64_t ms = 0;
    if (rpc__timeout_parse(s, n, &ms) == 0) {
        char out[10];
        size_t len = rpc__timeout_format(ms, out);
        CHECK(len >= 2 && len <= 9);
        uint64_t back = 0;
        CHECK(rpc__timeout_parse(out, len, &back) == 0);
        CHECK(back >= ms || ms == 0);
    }
    /* Any 8 bytes as a millisecond count must format to a parsable value. */
    if (n >= 8) {
        uint64_t v;
        memcpy(&v, s, 8);
        char out[10];
        size_t len = rpc__timeout_format(v, out);
        uint64_t back = 0;
        CHECK(len <= 9 && rpc__timeout_parse(out, len, &back) == 0);
    }
}

static void fuzz_percent(const char *s, size_t n)
{
    size_t len = 0;
    char *d = rpc__percent_decode(s, n, &len);
    CHECK(d != NULL && len <= n && d[len] == '\0');
    free(d);
    char *e = rpc__percent_encode(s, n);
    CHECK(e != NULL);
    for (const char *p = e; *p; p++)
        CHECK(*p >= 0x20 && *p <= 0x7e);
    d = rpc__percent_decode(e, strlen(e), &len);
    CHECK(d != NULL && len == n && memcmp(d, s, n) == 0);
    free(d);
    free(e);
}

static void fuzz_base64(const char *s, size_t n)
{
    uint8_t *out = malloc(n * 3 / 4 + 3);
    CHECK(out != NULL);
    long len = rpc__base64_decode(s, n, out);
    CHECK(len >= -1 && len <= (long)(n * 3 / 4 + 3));
    free(out);
    char *enc = malloc(rpc__base64_encoded_len(n) + 1);
    CHECK(enc != NULL);
    size_t elen = rpc__base64_encode((const uint8_t *)s, n, enc);
    CHECK(elen == rpc__base64_encoded_len(n));
    out = malloc(elen * 3 / 4 + 3);
    CHECK(out != NULL);
    len = rpc__base64_decode(enc, elen, out);
    CHECK(len == (long)n && memcmp(out, s, n) == 0);
    free(out);
    free(enc);
}

static void fuzz_metadata(const char *s, size_t n)
{
    /* key NUL value, as a header field would carry them */
    const char *nul = memchr(s, 0, n);
    size_t klen = nul ? (size_t)(nul - s) : n;
    const char *v = nul ? nul + 1 : s + n;
    size_t vlen = nul ? n - klen - 1 : 0;
    bool valid = rpc__md_key_valid(s, klen);
    bool bin = rpc__md_key_is_bin(s, klen);
    bool reserved = rpc__md_key_reserved(s, klen);
    (void)valid;
    (void)bin;
    (void)reserved;
    (void)rpc__md_value_valid((const uint8_t *)v, vlen);
}

static void fuzz_encoding(const char *s, size_t n)
{
    rpc_encoding e = rpc__encoding_parse(s, n);
    CHECK(e == RPC_ENC_UNKNOWN || strcmp(rpc__encoding_name(e), "unknown") != 0);
    for (int k = RPC_ENC_UNKNOWN; k <= RPC_ENC_DEFLATE; k++)
        (void)rpc__encoding_accepted(s, n, (rpc_encoding)k);
    CHECK(rpc__encoding_accepted(s, n, RPC_ENC_IDENTITY));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    /* A copy of exactly the value's size, so ASan sees any over-read. */
    size_t n = size - 1;
    char *s = malloc(n ? n : 1);
    if (!s)
        return 0;
    memcpy(s, data + 1, n);
    switch (data[0] % 5) {
    case 0:
        fuzz_timeout(s, n);
        break;
    case 1:
        fuzz_percent(s, n);
        break;
    case 2:
        fuzz_base64(s, n);
        break;
    case 3:
        fuzz_metadata(s, n);
        break;
    case 4:
        fuzz_encoding(s, n);
        break;
    }
    free(s);
    return 0;
}
