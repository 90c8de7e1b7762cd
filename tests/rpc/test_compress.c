/* Unit tests for message compression (src/rpc/compress.c). */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "rpc_int.h"

/* `printf hello | gzip -n` and Python's zlib.compress(b"hello"): output of
 * other implementations, so the round trips below are not only with
 * ourselves. */
static const uint8_t HELLO_GZIP[] = {0x1f, 0x8b, 0x08, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
                                     0x03, 0xcb, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00, 0x86,
                                     0xa6, 0x10, 0x36, 0x05, 0x00, 0x00, 0x00};
static const uint8_t HELLO_ZLIB[] = {0x78, 0x9c, 0xcb, 0x48, 0xcd, 0xc9, 0xc9,
                                     0x07, 0x00, 0x06, 0x2c, 0x02, 0x15};

/* Text-like bytes that compress, with some noise so they do not compress to
 * nothing. */
static uint8_t *sample(size_t n)
{
    uint8_t *p = malloc(n ? n : 1);
    uint32_t x = 12345;
    for (size_t i = 0; i < n; i++) {
        x = x * 1103515245 + 12345;
        p[i] = (x >> 16) % 7 == 0 ? (uint8_t)(x >> 8) : (uint8_t)("order-status "[i % 13]);
    }
    return p;
}

static void round_trip(rpc_encoding e, size_t n)
{
    uint8_t *in = sample(n);
    rpc_buf z, out;
    rpc__buf_init(&z);
    rpc__buf_init(&out);
    cr_assert_eq(rpc__compress(e, in, n, &z), 0, "%s, %zu bytes", rpc__encoding_name(e), n);
    cr_assert_eq(rpc__decompress(e, z.data, z.len, n, &out), 0, "%s, %zu bytes",
                 rpc__encoding_name(e), n);
    cr_assert_eq(out.len, n);
    if (n > 0)
        cr_assert_arr_eq(out.data, in, n);
    rpc__buf_dispose(&z);
    rpc__buf_dispose(&out);
    free(in);
}

Test(rpc_compress, gzip_round_trip)
{
    static const size_t sizes[] = {0, 1, 5, 1000, 65535, 65536, 100000, 1 << 20};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++)
        round_trip(RPC_ENC_GZIP, sizes[i]);
}

Test(rpc_compress, deflate_round_trip)
{
    static const size_t sizes[] = {0, 1, 5, 1000, 65535, 65536, 100000, 1 << 20};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++)
        round_trip(RPC_ENC_DEFLATE, sizes[i]);
}

Test(rpc_compress, identity_copies)
{
    rpc_buf out;
    rpc__buf_init(&out);
    cr_assert_eq(rpc__compress(RPC_ENC_IDENTITY, (const uint8_t *)"abc", 3, &out), 0);
    cr_assert_eq(rpc__decompress(RPC_ENC_IDENTITY, (const uint8_t *)"def", 3, 3, &out), 0);
    cr_assert_eq(out.len, 6);
    cr_assert_arr_eq(out.data, "abcdef", 6);
    cr_assert_eq(rpc__decompress(RPC_ENC_IDENTITY, (const uint8_t *)"def", 3, 2, &out), -2);
    cr_assert_eq(out.len, 6);
    rpc__buf_dispose(&out);
}

Test(rpc_compress, wire_formats)
{
    uint8_t *in = sample(100);
    rpc_buf z;
    rpc__buf_init(&z);
    cr_assert_eq(rpc__compress(RPC_ENC_GZIP, in, 100, &z), 0);
    cr_assert_geq(z.len, 18);
    cr_assert_eq(z.data[0], 0x1f, "gzip magic");
    cr_assert_eq(z.data[1], 0x8b, "gzip magic");
    z.len = 0;
    cr_assert_eq(rpc__compress(RPC_ENC_DEFLATE, in, 100, &z), 0);
    cr_assert_eq(z.data[0] & 0x0f, 8, "zlib header: CM = deflate");
    cr_assert_eq((z.data[0] << 8 | z.data[1]) % 31, 0, "zlib header check bits");
    rpc__buf_dispose(&z);
    free(in);
}

Test(rpc_compress, decodes_other_implementations)
{
    rpc_buf out;
    rpc__buf_init(&out);
    cr_assert_eq(rpc__decompress(RPC_ENC_GZIP, HELLO_GZIP, sizeof HELLO_GZIP, 100, &out), 0);
    cr_assert_eq(out.len, 5);
    cr_assert_arr_eq(out.data, "hello", 5);
    out.len = 0;
    cr_assert_eq(rpc__decompress(RPC_ENC_DEFLATE, HELLO_ZLIB, sizeof HELLO_ZLIB, 100, &out), 0);
    cr_assert_eq(out.len, 5);
    cr_assert_arr_eq(out.data, "hello", 5);
    rpc__buf_dispose(&out);
}

Test(rpc_compress, appends_to_existing_output)
{
    rpc_buf z, out;
    rpc__buf_init(&z);
    rpc__buf_init(&out);
    cr_assert_eq(rpc__buf_append(&z, "pre", 3), 0);
    cr_assert_eq(rpc__compress(RPC_ENC_GZIP, (const uint8_t *)"hello", 5, &z), 0);
    cr_assert_arr_eq(z.data, "pre", 3);
    cr_assert_eq(rpc__buf_append(&out, "xy", 2), 0);
    /* max counts decompressed bytes only, not what out already held. */
    cr_assert_eq(rpc__decompress(RPC_ENC_GZIP, z.data + 3, z.len - 3, 5, &out), 0);
    cr_assert_eq(out.len, 7);
    cr_assert_arr_eq(out.data, "xyhello", 7);
    rpc__buf_dispose(&z);
    rpc__buf_dispose(&out);
}

/* Runs a decompression expected to fail and checks out was left alone. */
static void decompress_fails(rpc_encoding e, const uint8_t *in, size_t len, size_t max, int want,
                             const char *what)
{
    rpc_buf out;
    rpc__buf_init(&out);
    cr_assert_eq(rpc__buf_append(&out, "keep", 4), 0);
    cr_assert_eq(rpc__decompress(e, in, len, max, &out), want, "%s", what);
    cr_assert_eq(out.len, 4, "%s: output must be left as it was", what);
    cr_assert_arr_eq(out.data, "keep", 4);
    rpc__buf_dispose(&out);
}

Test(rpc_compress, corrupt_input)
{
    uint8_t *in = sample(5000);
    rpc_buf gz, zl;
    rpc__buf_init(&gz);
    rpc__buf_init(&zl);
    cr_assert_eq(rpc__compress(RPC_ENC_GZIP, in, 5000, &gz), 0);
    cr_assert_eq(rpc__compress(RPC_ENC_DEFLATE, in, 5000, &zl), 0);

    decompress_fails(RPC_ENC_GZIP, in, 5000, 1 << 20, -1, "not compressed at all");
    decompress_fails(RPC_ENC_DEFLATE, in, 5000, 1 << 20, -1, "not compressed at all");
    decompress_fails(RPC_ENC_GZIP, gz.data, 0, 1 << 20, -1, "empty gzip");
    decompress_fails(RPC_ENC_DEFLATE, zl.data, 0, 1 << 20, -1, "empty deflate");
    decompress_fails(RPC_ENC_GZIP, gz.data, gz.len - 1, 1 << 20, -1, "truncated gzip");
    decompress_fails(RPC_ENC_GZIP, gz.data, gz.len / 2, 1 << 20, -1, "half a gzip stream");
    decompress_fails(RPC_ENC_DEFLATE, zl.data, zl.len - 1, 1 << 20, -1, "truncated deflate");
    decompress_fails(RPC_ENC_DEFLATE, gz.data, gz.len, 1 << 20, -1, "gzip sent as deflate");
    decompress_fails(RPC_ENC_GZIP, zl.data, zl.len, 1 << 20, -1, "deflate sent as gzip");
    decompress_fails(RPC_ENC_UNKNOWN, zl.data, zl.len, 1 << 20, -1, "unknown encoding");

    /* A flipped byte in the body: the CRC (gzip) or Adler-32 (zlib) catches
     * what the deflate decoder does not. */
    gz.data[gz.len / 2] ^= 0x55;
    decompress_fails(RPC_ENC_GZIP, gz.data, gz.len, 1 << 20, -1, "flipped byte, gzip");
    gz.data[gz.len / 2] ^= 0x55;
    zl.data[zl.len / 2] ^= 0x55;
    decompress_fails(RPC_ENC_DEFLATE, zl.data, zl.len, 1 << 20, -1, "flipped byte, deflate");
    zl.data[zl.len / 2] ^= 0x55;

    /* Bytes after the end of the stream. */
    cr_assert_eq(rpc__buf_append(&gz, "x", 1), 0);
    decompress_fails(RPC_ENC_GZIP, gz.data, gz.len, 1 << 20, -1, "trailing garbage");
    rpc__buf_dispose(&gz);
    rpc__buf_dispose(&zl);
    free(in);
}

static void bomb(rpc_encoding e)
{
    size_t size = 10 << 20;
    uint8_t *zeros = calloc(1, size);
    rpc_buf z, out;
    rpc__buf_init(&z);
    rpc__buf_init(&out);
    cr_assert_eq(rpc__compress(e, zeros, size, &z), 0);
    free(zeros);
    cr_assert_lt(z.len, 64 * 1024, "10 MB of zeros compress well");

    cr_assert_eq(rpc__decompress(e, z.data, z.len, 1 << 20, &out), -2);
    cr_assert_eq(out.len, 0);
    cr_assert_leq(out.cap, (1 << 20) + 1, "stopped at max + 1 bytes");

    /* The bound is inclusive. */
    cr_assert_eq(rpc__decompress(e, z.data, z.len, size - 1, &out), -2);
    cr_assert_eq(rpc__decompress(e, z.data, z.len, size, &out), 0);
    cr_assert_eq(out.len, size);
    rpc__buf_dispose(&z);
    rpc__buf_dispose(&out);
}

Test(rpc_compress, gzip_bomb_stops_early)
{
    bomb(RPC_ENC_GZIP);
}

Test(rpc_compress, deflate_bomb_stops_early)
{
    bomb(RPC_ENC_DEFLATE);
}

Test(rpc_compress, max_zero)
{
    rpc_buf z, out;
    rpc__buf_init(&z);
    rpc__buf_init(&out);
    cr_assert_eq(rpc__compress(RPC_ENC_GZIP, NULL, 0, &z), 0);
    cr_assert_eq(rpc__decompress(RPC_ENC_GZIP, z.data, z.len, 0, &out), 0);
    cr_assert_eq(out.len, 0);
    cr_assert_eq(rpc__decompress(RPC_ENC_GZIP, HELLO_GZIP, sizeof HELLO_GZIP, 0, &out), -2);
    cr_assert_eq(rpc__decompress(RPC_ENC_GZIP, HELLO_GZIP, sizeof HELLO_GZIP, 4, &out), -2);
    cr_assert_eq(rpc__decompress(RPC_ENC_GZIP, HELLO_GZIP, sizeof HELLO_GZIP, 5, &out), 0);
    rpc__buf_dispose(&z);
    rpc__buf_dispose(&out);
}

Test(rpc_compress, unknown_encoding_does_not_compress)
{
    rpc_buf z;
    rpc__buf_init(&z);
    cr_assert_eq(rpc__compress(RPC_ENC_UNKNOWN, (const uint8_t *)"a", 1, &z), -1);
    cr_assert_eq(rpc__compress((rpc_encoding)7, (const uint8_t *)"a", 1, &z), -1);
    cr_assert_eq(z.len, 0);
    rpc__buf_dispose(&z);
}

static rpc_encoding parse(const char *s)
{
    return rpc__encoding_parse(s, strlen(s));
}

Test(rpc_compress, encoding_names)
{
    cr_assert_eq(parse("identity"), RPC_ENC_IDENTITY);
    cr_assert_eq(parse("gzip"), RPC_ENC_GZIP);
    cr_assert_eq(parse("deflate"), RPC_ENC_DEFLATE);
    cr_assert_eq(parse("GZip"), RPC_ENC_GZIP);
    static const char *const unknown[] = {"", "snappy", "gzip ", " gzip", "gzi", "gzipp", "br"};
    for (size_t i = 0; i < sizeof unknown / sizeof unknown[0]; i++)
        cr_assert_eq(parse(unknown[i]), RPC_ENC_UNKNOWN, "\"%s\"", unknown[i]);
    cr_assert_eq(rpc__encoding_parse("gzipped", 4), RPC_ENC_GZIP);

    cr_assert_str_eq(rpc__encoding_name(RPC_ENC_IDENTITY), "identity");
    cr_assert_str_eq(rpc__encoding_name(RPC_ENC_GZIP), "gzip");
    cr_assert_str_eq(rpc__encoding_name(RPC_ENC_DEFLATE), "deflate");
    cr_assert_str_eq(rpc__encoding_name(RPC_ENC_UNKNOWN), "unknown");
    cr_assert_str_eq(rpc__encoding_name((rpc_encoding)3), "unknown");
}

static bool accepted(const char *list, rpc_encoding e)
{
    return rpc__encoding_accepted(list, strlen(list), e);
}

Test(rpc_compress, accept_encoding_lists)
{
    cr_assert(accepted("gzip, identity", RPC_ENC_GZIP));
    cr_assert_not(accepted("gzip, identity", RPC_ENC_DEFLATE));
    cr_assert(accepted("identity,deflate,gzip", RPC_ENC_DEFLATE));
    cr_assert(accepted("identity,deflate,gzip", RPC_ENC_GZIP));
    cr_assert(accepted(" deflate ,\tgzip\t", RPC_ENC_GZIP));
    cr_assert(accepted("deflate;q=0.5, gzip;q=1", RPC_ENC_GZIP));
    cr_assert(accepted("GZIP", RPC_ENC_GZIP));
    cr_assert(accepted(",,gzip,", RPC_ENC_GZIP));
    cr_assert_not(accepted("", RPC_ENC_GZIP));
    cr_assert_not(accepted("gzipx, xgzip, gz, g zip", RPC_ENC_GZIP));
    cr_assert_not(accepted("identity", RPC_ENC_DEFLATE));
    cr_assert_not(accepted("gzip", RPC_ENC_UNKNOWN));
    cr_assert(accepted("", RPC_ENC_IDENTITY), "identity needs no negotiation");
    cr_assert(accepted("gzip", RPC_ENC_IDENTITY));
    cr_assert_not(rpc__encoding_accepted("gzip", 3, RPC_ENC_GZIP), "only len bytes are read");

    static const rpc_encoding ours[] = {RPC_ENC_IDENTITY, RPC_ENC_GZIP, RPC_ENC_DEFLATE};
    for (size_t i = 0; i < 3; i++)
        cr_assert(accepted(RPC_ACCEPT_ENCODING, ours[i]));
}
