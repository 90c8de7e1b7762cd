/* test_utf8.c - the UTF-8 check and the descriptor-driven string walker. */
#include <criterion/criterion.h>
#include <string.h>

#include "rpc/rpc_int.h"
#include "utf8test.pb-c.h"

#define U(lit) rpc__utf8_check((const uint8_t *)(lit), sizeof(lit) - 1)

Test(rpc_utf8, well_formed)
{
    cr_assert_eq(U(""), RPC_UTF8_OK);
    cr_assert_eq(U("c-1"), RPC_UTF8_OK);
    cr_assert_eq(U("a long ascii string that crosses several 8-byte words!"), RPC_UTF8_OK);
    cr_assert_eq(U("\x7f"), RPC_UTF8_OK);
    cr_assert_eq(U("caf\xc3\xa9"), RPC_UTF8_OK);                      /* U+00E9 */
    cr_assert_eq(U("\xc2\x80\xdf\xbf"), RPC_UTF8_OK);                 /* U+0080, U+07FF */
    cr_assert_eq(U("\xe0\xa0\x80\xef\xbf\xbf"), RPC_UTF8_OK);         /* U+0800, U+FFFF */
    cr_assert_eq(U("\xed\x9f\xbf\xee\x80\x80"), RPC_UTF8_OK);         /* U+D7FF, U+E000 */
    cr_assert_eq(U("\xf0\x90\x80\x80\xf4\x8f\xbf\xbf"), RPC_UTF8_OK); /* U+10000, U+10FFFF */
    cr_assert_eq(U("\xf0\x9f\x98\x80 emoji after eight bytes"), RPC_UTF8_OK);
}

Test(rpc_utf8, overlongs)
{
    cr_assert_eq(U("\xc0\x80"), RPC_UTF8_INVALID); /* the classic overlong NUL */
    cr_assert_eq(U("\xc1\xbf"), RPC_UTF8_INVALID);
    cr_assert_eq(U("\xe0\x80\x80"), RPC_UTF8_INVALID);
    cr_assert_eq(U("\xe0\x9f\xbf"), RPC_UTF8_INVALID);
    cr_assert_eq(U("\xf0\x80\x80\x80"), RPC_UTF8_INVALID);
    cr_assert_eq(U("\xf0\x8f\xbf\xbf"), RPC_UTF8_INVALID);
    cr_assert_eq(U("ascii..\xc0\xaf"), RPC_UTF8_INVALID); /* overlong '/' */
}

Test(rpc_utf8, surrogates)
{
    cr_assert_eq(U("\xed\xa0\x80"), RPC_UTF8_INVALID);             /* U+D800 */
    cr_assert_eq(U("\xed\xbf\xbf"), RPC_UTF8_INVALID);             /* U+DFFF */
    cr_assert_eq(U("\xed\xa0\xbd\xed\xb8\x80"), RPC_UTF8_INVALID); /* CESU-8 pair */
}

Test(rpc_utf8, past_max_code_point)
{
    cr_assert_eq(U("\xf4\x90\x80\x80"), RPC_UTF8_INVALID); /* U+110000 */
    cr_assert_eq(U("\xf5\x80\x80\x80"), RPC_UTF8_INVALID);
    cr_assert_eq(U("\xf7\xbf\xbf\xbf"), RPC_UTF8_INVALID);
    cr_assert_eq(U("\xf8\x88\x80\x80\x80"), RPC_UTF8_INVALID); /* 5-byte form */
    cr_assert_eq(U("\xfe"), RPC_UTF8_INVALID);
    cr_assert_eq(U("\xff"), RPC_UTF8_INVALID);
}

Test(rpc_utf8, truncated_and_stray)
{
    cr_assert_eq(U("\xc3"), RPC_UTF8_INVALID);
    cr_assert_eq(U("\xe2\x82"), RPC_UTF8_INVALID);
    cr_assert_eq(U("\xf0\x9f\x98"), RPC_UTF8_INVALID);
    cr_assert_eq(U("\xe2\x82"
                   "A"),
                 RPC_UTF8_INVALID); /* cut short inside the string */
    cr_assert_eq(U("\xf0\x9f"
                   "AB"),
                 RPC_UTF8_INVALID);
    cr_assert_eq(U("\x80"), RPC_UTF8_INVALID);
    cr_assert_eq(U("abc\xbf"), RPC_UTF8_INVALID);
    cr_assert_eq(U("\xc3\xa9\xa9"), RPC_UTF8_INVALID); /* one continuation too many */
    /* a lead byte followed by a non-continuation at the fast path's word edge */
    cr_assert_eq(U("12345678\xc3"
                   "12345678"),
                 RPC_UTF8_INVALID);
}

Test(rpc_utf8, nul_anywhere)
{
    cr_assert_eq(U("\0"), RPC_UTF8_NUL);
    cr_assert_eq(U("c-1\0evil"), RPC_UTF8_NUL);
    cr_assert_eq(U("1234567\0"), RPC_UTF8_NUL);  /* last of a word */
    cr_assert_eq(U("12345678\0"), RPC_UTF8_NUL); /* after a word */
    cr_assert_eq(U("123456781234567\0"
                   "abcdefgh"),
                 RPC_UTF8_NUL);
    cr_assert_eq(U("caf\xc3\xa9\0"), RPC_UTF8_NUL);
    /* the first problem wins */
    cr_assert_eq(U("a\0\xff"), RPC_UTF8_NUL);
    cr_assert_eq(U("a\xff\0"), RPC_UTF8_INVALID);
}

Test(rpc_utf8, every_byte_pair_matches_a_reference)
{
    /* Reference decoder: a sequence is valid iff it decodes to a scalar value
     * in its shortest form. Run over every 1- and 2-byte input and a sample of
     * 3- and 4-byte ones. */
    for (unsigned a = 0; a < 256; a++) {
        uint8_t s1[1] = {(uint8_t)a};
        rpc_utf8_result want1 = a == 0 ? RPC_UTF8_NUL : a < 0x80 ? RPC_UTF8_OK : RPC_UTF8_INVALID;
        cr_assert_eq(rpc__utf8_check(s1, 1), want1, "byte %02x", a);
        for (unsigned b = 0; b < 256; b++) {
            uint8_t s2[2] = {(uint8_t)a, (uint8_t)b};
            rpc_utf8_result want;
            if (a < 0x80) {
                want = a == 0 || b == 0 ? RPC_UTF8_NUL : b < 0x80 ? RPC_UTF8_OK : RPC_UTF8_INVALID;
            } else {
                unsigned cp = ((a & 0x1Fu) << 6) | (b & 0x3Fu);
                bool ok = (a & 0xE0) == 0xC0 && (b & 0xC0) == 0x80 && cp >= 0x80;
                want = ok ? RPC_UTF8_OK : RPC_UTF8_INVALID;
            }
            cr_assert_eq(rpc__utf8_check(s2, 2), want, "bytes %02x %02x", a, b);
        }
    }
    for (unsigned cp = 0x800; cp <= 0x10FFFF; cp += 0x7F) {
        uint8_t s[4];
        size_t n;
        if (cp < 0x10000) {
            s[0] = (uint8_t)(0xE0 | (cp >> 12));
            s[1] = (uint8_t)(0x80 | ((cp >> 6) & 0x3F));
            s[2] = (uint8_t)(0x80 | (cp & 0x3F));
            n = 3;
        } else {
            s[0] = (uint8_t)(0xF0 | (cp >> 18));
            s[1] = (uint8_t)(0x80 | ((cp >> 12) & 0x3F));
            s[2] = (uint8_t)(0x80 | ((cp >> 6) & 0x3F));
            s[3] = (uint8_t)(0x80 | (cp & 0x3F));
            n = 4;
        }
        bool surrogate = cp >= 0xD800 && cp <= 0xDFFF;
        cr_assert_eq(rpc__utf8_check(s, n), surrogate ? RPC_UTF8_INVALID : RPC_UTF8_OK, "U+%04X",
                     cp);
    }
}

Test(rpc_utf8, public_string_ok)
{
    cr_assert(rpc_string_ok("caf\xc3\xa9", 5));
    cr_assert(rpc_string_ok("", 0));
    cr_assert_not(rpc_string_ok("c-1\0evil", 8));
    cr_assert_not(rpc_string_ok("\xc0\x80", 2));
}

/* --- wire-format builders ----------------------------------------------- */

typedef struct wbuf {
    uint8_t b[4096];
    size_t n;
} wbuf;

static void put_varint(wbuf *w, uint64_t v)
{
    do {
        uint8_t byte = v & 0x7F;
        v >>= 7;
        w->b[w->n++] = (uint8_t)(byte | (v ? 0x80 : 0));
    } while (v);
}

static void put_bytes(wbuf *w, unsigned field, const void *p, size_t n)
{
    put_varint(w, (uint64_t)field << 3 | 2);
    put_varint(w, n);
    memcpy(w->b + w->n, p, n);
    w->n += n;
}

#define PUT_STR(w, field, lit) put_bytes((w), (field), (lit), sizeof(lit) - 1)

static void put_msg(wbuf *w, unsigned field, const wbuf *m)
{
    put_bytes(w, field, m->b, m->n);
}

static void put_int(wbuf *w, unsigned field, uint64_t v)
{
    put_varint(w, (uint64_t)field << 3);
    put_varint(w, v);
}

static int check(const ProtobufCMessageDescriptor *d, const wbuf *w, char *why, size_t n)
{
    return rpc__check_strings(d, w->b, w->n, why, n);
}

static const ProtobufCMessageDescriptor *REQ = &oms__test__utf8__req__descriptor;

Test(rpc_strings, descriptor_has_strings)
{
    cr_assert(rpc__desc_has_strings(REQ));
    cr_assert(rpc__desc_has_strings(&oms__test__utf8__line__descriptor));
    /* recursive through a repeated field and a oneof, and terminates */
    cr_assert_not(rpc__desc_has_strings(&oms__test__utf8__no_strings__descriptor));
}

Test(rpc_strings, valid_message_passes)
{
    wbuf line = {0}, w = {0};
    PUT_STR(&line, 1, "SKU-1");
    put_int(&line, 2, 3);
    put_bytes(&line, 3, "\xff\0\xfe", 3); /* bytes: anything goes */
    PUT_STR(&w, 1, "c-1");
    put_msg(&w, 2, &line);
    put_msg(&w, 2, &line);
    PUT_STR(&w, 3, "caf\xc3\xa9");
    put_bytes(&w, 10, "\0\0\xc0\x80", 4);
    put_bytes(&w, 11, "\x01\x02\x03", 3); /* packed repeated int32 */
    char why[128];
    cr_assert_eq(check(REQ, &w, why, sizeof why), 0, "%s", why);
    cr_assert_str_empty(why);
    /* and protobuf-c agrees it is a message */
    ProtobufCMessage *m = protobuf_c_message_unpack(REQ, NULL, w.n, w.b);
    cr_assert_not_null(m);
    protobuf_c_message_free_unpacked(m, NULL);
}

Test(rpc_strings, top_level_invalid_and_nul)
{
    char why[128];
    wbuf w = {0};
    PUT_STR(&w, 1, "c-\xff");
    cr_assert_eq(check(REQ, &w, why, sizeof why), RPC_STRINGS_BAD);
    cr_assert_str_eq(why, "customer_id: invalid UTF-8");

    wbuf z = {0};
    PUT_STR(&z, 1, "c-1\0evil");
    cr_assert_eq(check(REQ, &z, why, sizeof why), RPC_STRINGS_BAD);
    cr_assert_str_eq(why, "customer_id: contains NUL");
    /* what the check is for: protobuf-c would hand over "c-1" */
    Oms__Test__Utf8__Req *m =
        (Oms__Test__Utf8__Req *)protobuf_c_message_unpack(REQ, NULL, z.n, z.b);
    cr_assert_not_null(m);
    cr_assert_str_eq(m->customer_id, "c-1");
    protobuf_c_message_free_unpacked(&m->base, NULL);
}

Test(rpc_strings, repeated_nested_names_the_index)
{
    wbuf good = {0}, bad = {0}, w = {0};
    PUT_STR(&good, 1, "A");
    PUT_STR(&bad, 1, "B\xed\xa0\x80"); /* surrogate */
    PUT_STR(&w, 1, "c-1");
    put_msg(&w, 2, &good);
    PUT_STR(&w, 3, "tag"); /* other fields between the lines do not count */
    put_msg(&w, 2, &good);
    put_msg(&w, 2, &bad);
    char why[128];
    cr_assert_eq(check(REQ, &w, why, sizeof why), RPC_STRINGS_BAD);
    cr_assert_str_eq(why, "lines[2].sku: invalid UTF-8");
}

Test(rpc_strings, repeated_string)
{
    wbuf w = {0};
    PUT_STR(&w, 3, "a");
    PUT_STR(&w, 3, "b\0");
    char why[128];
    cr_assert_eq(check(REQ, &w, why, sizeof why), RPC_STRINGS_BAD);
    cr_assert_str_eq(why, "tags[1]: contains NUL");
}

Test(rpc_strings, oneof_members)
{
    char why[128];
    wbuf w = {0};
    PUT_STR(&w, 4, "\xf4\x90\x80\x80");
    cr_assert_eq(check(REQ, &w, why, sizeof why), RPC_STRINGS_BAD);
    cr_assert_str_eq(why, "note: invalid UTF-8");

    wbuf line = {0}, w2 = {0};
    PUT_STR(&line, 1, "\xc0\xaf");
    put_msg(&w2, 5, &line);
    cr_assert_eq(check(REQ, &w2, why, sizeof why), RPC_STRINGS_BAD);
    cr_assert_str_eq(why, "line.sku: invalid UTF-8");
}

Test(rpc_strings, map_entries)
{
    char why[128];
    wbuf e0 = {0}, e1 = {0}, w = {0};
    PUT_STR(&e0, 1, "k");
    PUT_STR(&e0, 2, "v");
    PUT_STR(&e1, 1, "k2");
    PUT_STR(&e1, 2, "v\xe2\x82");
    put_msg(&w, 7, &e0);
    put_msg(&w, 7, &e1);
    cr_assert_eq(check(REQ, &w, why, sizeof why), RPC_STRINGS_BAD);
    cr_assert_str_eq(why, "labels[1].value: invalid UTF-8");

    wbuf k = {0}, w2 = {0};
    PUT_STR(&k, 1, "\0");
    put_msg(&w2, 7, &k);
    cr_assert_eq(check(REQ, &w2, why, sizeof why), RPC_STRINGS_BAD);
    cr_assert_str_eq(why, "labels[0].key: contains NUL");

    wbuf line = {0}, e = {0}, w3 = {0};
    PUT_STR(&line, 1, "\xff");
    put_int(&e, 1, 7);
    put_msg(&e, 2, &line);
    put_msg(&w3, 8, &e);
    cr_assert_eq(check(REQ, &w3, why, sizeof why), RPC_STRINGS_BAD);
    cr_assert_str_eq(why, "by_id[0].value.sku: invalid UTF-8");
}

Test(rpc_strings, recursion)
{
    char why[128];
    wbuf inner = {0}, mid = {0}, w = {0};
    PUT_STR(&inner, 1, "x\0");
    put_msg(&mid, 9, &inner);
    put_msg(&w, 9, &mid);
    cr_assert_eq(check(REQ, &w, why, sizeof why), RPC_STRINGS_BAD);
    cr_assert_str_eq(why, "child.child.customer_id: contains NUL");
}

Test(rpc_strings, unknown_fields_and_bytes_are_skipped)
{
    char why[128];
    wbuf w = {0};
    put_bytes(&w, 99, "\xff\0", 2);        /* unknown length-delimited */
    put_int(&w, 98, 12345);                /* unknown varint */
    put_varint(&w, (uint64_t)97 << 3 | 1); /* unknown fixed64 */
    memcpy(w.b + w.n, "\xff\xff\xff\xff\xff\xff\xff\xff", 8);
    w.n += 8;
    put_varint(&w, (uint64_t)96 << 3 | 5); /* unknown fixed32 */
    memcpy(w.b + w.n, "\0\0\0\0", 4);
    w.n += 4;
    put_bytes(&w, 10, "\xc0\x80", 2);
    PUT_STR(&w, 1, "ok");
    cr_assert_eq(check(REQ, &w, why, sizeof why), 0, "%s", why);
}

Test(rpc_strings, malformed)
{
    char why[128];
    wbuf w = {0};
    put_varint(&w, 1 << 3 | 2);
    put_varint(&w, 50); /* length past the end */
    w.b[w.n++] = 'a';
    cr_assert_eq(check(REQ, &w, why, sizeof why), RPC_STRINGS_MALFORMED);

    wbuf g = {0};
    put_varint(&g, 20 << 3 | 3); /* start group */
    cr_assert_eq(check(REQ, &g, why, sizeof why), RPC_STRINGS_MALFORMED);

    wbuf v = {0};
    for (int i = 0; i < 11; i++)
        v.b[v.n++] = 0x80; /* varint tag that never ends */
    cr_assert_eq(check(REQ, &v, why, sizeof why), RPC_STRINGS_MALFORMED);

    /* nested a length field inside a sub-message that runs past it */
    wbuf bad = {0}, w2 = {0};
    put_varint(&bad, 1 << 3 | 2);
    put_varint(&bad, 9);
    put_msg(&w2, 2, &bad);
    cr_assert_eq(check(REQ, &w2, why, sizeof why), RPC_STRINGS_MALFORMED);
}

Test(rpc_strings, nesting_depth_is_bounded)
{
    /* child { child { ... } } 150 deep: built inside out */
    static uint8_t a[1024], b[1024];
    size_t n = 0;
    for (int d = 0; d < 150; d++) {
        b[0] = 9 << 3 | 2;
        b[1] = (uint8_t)n; /* n < 128 until the varint needs 2 bytes */
        size_t hdr = 2;
        if (n >= 128) {
            b[1] = (uint8_t)(0x80 | (n & 0x7F));
            b[2] = (uint8_t)(n >> 7);
            hdr = 3;
        }
        memcpy(b + hdr, a, n);
        n += hdr;
        memcpy(a, b, n);
    }
    char why[128];
    cr_assert_eq(rpc__check_strings(REQ, a, n, why, sizeof why), RPC_STRINGS_MALFORMED);
    cr_assert(strstr(why, "nested") != NULL, "%s", why);
}

Test(rpc_strings, path_is_cut_to_the_buffer)
{
    wbuf inner = {0}, w = {0};
    PUT_STR(&inner, 1, "\xff");
    put_msg(&w, 9, &inner);
    char why[12];
    cr_assert_eq(check(REQ, &w, why, sizeof why), RPC_STRINGS_BAD);
    cr_assert_eq(strlen(why), sizeof why - 1);
    cr_assert_str_eq(why, "child.custo");
}

Test(rpc_strings, long_strings)
{
    static uint8_t big[3000];
    memset(big, 'a', sizeof big);
    wbuf w = {0};
    put_bytes(&w, 1, big, 2000);
    char why[64];
    cr_assert_eq(check(REQ, &w, why, sizeof why), 0);
    w.n = 0;
    big[1999] = 0;
    put_bytes(&w, 1, big, 2000);
    cr_assert_eq(check(REQ, &w, why, sizeof why), RPC_STRINGS_BAD);
    cr_assert_str_eq(why, "customer_id: contains NUL");
}
