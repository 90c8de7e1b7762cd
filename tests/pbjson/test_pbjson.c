/* pbjson: the canonical proto3 JSON mapping both ways, on a proto with every
 * field shape (tests/pbjson/proto/jsontest.proto), and the inputs a careless
 * or hostile client sends: each must fail with the field path in the reason. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "base/alloc.h"
#include "jsontest.pb-c.h"
#include "pbjson/pbjson.h"

#define ALL (&jsontest__all__descriptor)

static char err[256];

static char *enc(const ProtobufCMessage *m, unsigned flags)
{
    char *s = pbjson_encode(m, flags, NULL, err, sizeof err);
    cr_assert(s, "encode failed: %s", err);
    return s;
}

static Jsontest__All *dec(const char *json)
{
    return (Jsontest__All *)pbjson_decode(ALL, json, strlen(json), NULL, 0, err, sizeof err);
}

static void expect_error(const char *json, const char *want)
{
    err[0] = '\0';
    Jsontest__All *m = dec(json);
    cr_expect_null(m, "accepted %s", json);
    if (m)
        protobuf_c_message_free_unpacked(&m->base, NULL);
    cr_expect(strstr(err, want) != NULL, "%s: error \"%s\" lacks \"%s\"", json, err, want);
}

Test(pbjson, empty_message_is_empty_object)
{
    Jsontest__All m = JSONTEST__ALL__INIT;
    char *s = enc(&m.base, 0);
    cr_expect_str_eq(s, "{}");
    oms_free(s);
}

Test(pbjson, encodes_every_shape)
{
    Jsontest__All m = JSONTEST__ALL__INIT;
    Jsontest__Inner in = JSONTEST__INNER__INIT, in2 = JSONTEST__INNER__INIT;
    in.name = "a\"b\n";
    in.count = -3;
    in2.count = 7;
    Jsontest__Inner *inners[] = {&in, &in2};
    int64_t many[] = {INT64_MIN, 0, INT64_MAX};
    char *names[] = {"x", "\xc3\xa9t\xc3\xa9"};
    Jsontest__Color colors[] = {JSONTEST__COLOR__COLOR_GREEN, 42};
    Jsontest__All__CountsEntry ce = JSONTEST__ALL__COUNTS_ENTRY__INIT;
    ce.key = "k";
    ce.value = 5;
    Jsontest__All__CountsEntry *counts[] = {&ce};
    Jsontest__All__ByIdEntry be = JSONTEST__ALL__BY_ID_ENTRY__INIT;
    be.key = -9;
    be.value = &in2;
    Jsontest__All__ByIdEntry *by_id[] = {&be};
    uint8_t raw[] = {0xfb, 0xff, 0x00};
    m.i32 = -1;
    m.u32 = 4000000000u;
    m.i64 = -5;
    m.u64 = UINT64_MAX;
    m.fl = 0.1f;
    m.db = 1e300;
    m.flag = 1;
    m.text = "hi";
    m.data = (ProtobufCBinaryData){3, raw};
    m.color = JSONTEST__COLOR__COLOR_RED;
    m.inner = &in;
    m.n_many_i64 = 3;
    m.many_i64 = many;
    m.n_names = 2;
    m.names = names;
    m.n_inners = 2;
    m.inners = inners;
    m.n_colors = 2;
    m.colors = colors;
    m.n_counts = 1;
    m.counts = counts;
    m.n_by_id = 1;
    m.by_id = by_id;
    m.choice_case = JSONTEST__ALL__CHOICE_CHOICE_NUM;
    m.choice_num = 0; /* a oneof member at its default is still written */
    char *s = enc(&m.base, 0);
    cr_expect_str_eq(
        s, "{\"i32\":-1,\"u32\":4000000000,\"i64\":\"-5\",\"u64\":\"18446744073709551615\","
           "\"fl\":0.1,\"db\":1e+300,\"flag\":true,\"text\":\"hi\",\"data\":\"+/8A\","
           "\"color\":\"COLOR_RED\",\"inner\":{\"name\":\"a\\\"b\\n\",\"count\":-3},"
           "\"manyI64\":[\"-9223372036854775808\",\"0\",\"9223372036854775807\"],"
           "\"names\":[\"x\",\"\xc3\xa9t\xc3\xa9\"],\"inners\":[{\"name\":\"a\\\"b\\n\","
           "\"count\":-3},{\"count\":7}],\"colors\":[\"COLOR_GREEN\",42],\"counts\":{\"k\":5},"
           "\"byId\":{\"-9\":{\"count\":7}},\"choiceNum\":0}");
    oms_free(s);
    s = enc(&m.base, PBJSON_PROTO_NAMES);
    cr_expect(strstr(s, "\"many_i64\":[") && strstr(s, "\"by_id\":{"), "%s", s);
    oms_free(s);
}

Test(pbjson, floats_shortest_and_special)
{
    Jsontest__All m = JSONTEST__ALL__INIT;
    double dbl[] = {NAN, INFINITY, -INFINITY, 0.1, 1.0 / 3, -0.0, 5e-324};
    m.n_doubles = sizeof dbl / sizeof dbl[0];
    m.doubles = dbl;
    char *s = enc(&m.base, 0);
    cr_expect_str_eq(s, "{\"doubles\":[\"NaN\",\"Infinity\",\"-Infinity\",0.1,"
                        "0.3333333333333333,-0,4.94065645841247e-324]}");
    Jsontest__All *back = dec(s);
    cr_assert(back, "%s", err);
    cr_expect(isnan(back->doubles[0]) && isinf(back->doubles[1]) && back->doubles[2] < 0);
    for (size_t i = 3; i < m.n_doubles; i++)
        cr_expect_eq(back->doubles[i], dbl[i], "doubles[%zu]", i);
    /* (-0 reads back as 0: jansson takes "-0" for the integer 0) */
    protobuf_c_message_free_unpacked(&back->base, NULL);
    oms_free(s);
}

/* encode -> decode -> the same wire bytes. */
Test(pbjson, round_trip)
{
    const char *json =
        "{\"i32\":-7,\"s32\":-8,\"sf32\":9,\"u32\":10,\"f32\":11,\"i64\":\"-12\","
        "\"s64\":\"13\",\"sf64\":\"-14\",\"u64\":\"15\",\"f64\":\"16\",\"fl\":1.5,\"db\":-2.25,"
        "\"flag\":true,\"text\":\"\xe2\x82\xac\",\"data\":\"AAEC\",\"color\":\"COLOR_GREEN\","
        "\"inner\":{\"name\":\"n\"},\"names\":[\"a\",\"\"],\"counts\":{\"a\":1,\"b\":2},"
        "\"byFlag\":{\"true\":\"t\",\"false\":\"f\"},\"choiceInner\":{\"count\":1},"
        "\"next\":{\"next\":{\"i32\":1}},\"blobs\":[\"\",\"/w==\"]}";
    Jsontest__All *m = dec(json);
    cr_assert(m, "%s", err);
    char *s = enc(&m->base, 0);
    Jsontest__All *m2 = dec(s);
    cr_assert(m2, "%s: %s", s, err);
    size_t n1 = protobuf_c_message_get_packed_size(&m->base);
    size_t n2 = protobuf_c_message_get_packed_size(&m2->base);
    uint8_t b1[1024], b2[1024];
    cr_assert(n1 < sizeof b1 && n1 == n2);
    protobuf_c_message_pack(&m->base, b1);
    protobuf_c_message_pack(&m2->base, b2);
    cr_expect_eq(memcmp(b1, b2, n1), 0);
    cr_expect_eq(m->n_blobs, 2);
    cr_expect_eq(m->blobs[1].len, 1);
    cr_expect_eq(m->blobs[1].data[0], 0xff);
    cr_expect_eq(m->choice_case, JSONTEST__ALL__CHOICE_CHOICE_INNER);
    protobuf_c_message_free_unpacked(&m->base, NULL);
    protobuf_c_message_free_unpacked(&m2->base, NULL);
    oms_free(s);
}

Test(pbjson, lenient_inputs_the_mapping_allows)
{
    Jsontest__All *m = dec("{\"many_i64\":[1,\"2\",3e2,\"-4\"],\"u64\":\"18446744073709551615\","
                           "\"i32\":\"-5\",\"u32\":1.0,\"color\":2,\"colors\":[\"COLOR_RED\",7],"
                           "\"data\":\"-_8\",\"fl\":\"2.5\",\"db\":\"-Infinity\",\"text\":null,"
                           "\"inner\":null,\"by_id\":{\"-1\":{}}}");
    cr_assert(m, "%s", err);
    cr_expect_eq(m->n_many_i64, 4);
    cr_expect_eq(m->many_i64[2], 300);
    cr_expect_eq(m->many_i64[3], -4);
    cr_expect_eq(m->u64, UINT64_MAX);
    cr_expect_eq(m->i32, -5);
    cr_expect_eq(m->u32, 1);
    cr_expect_eq(m->color, JSONTEST__COLOR__COLOR_GREEN);
    cr_expect_eq(m->colors[1], 7, "proto3 enums are open");
    cr_expect_eq(m->data.len, 2);
    cr_expect_eq(m->data.data[0], 0xfb);
    cr_expect_eq(m->fl, 2.5f);
    cr_expect(isinf(m->db) && m->db < 0);
    cr_expect_str_eq(m->text, "");
    cr_expect_null(m->inner);
    cr_expect_eq(m->by_id[0]->key, -1);
    protobuf_c_message_free_unpacked(&m->base, NULL);
    m = dec("{\"unknown\":1,\"i32\":2}");
    cr_expect_null(m);
    m = (Jsontest__All *)pbjson_decode(ALL, "{\"unknown\":{\"deep\":[1]},\"i32\":2}", 32, NULL,
                                       PBJSON_IGNORE_UNKNOWN, err, sizeof err);
    cr_assert(m, "%s", err);
    cr_expect_eq(m->i32, 2);
    protobuf_c_message_free_unpacked(&m->base, NULL);
}

Test(pbjson, hostile_and_careless_inputs)
{
    expect_error("", "malformed JSON");
    expect_error("{\"i32\":1", "malformed JSON");
    expect_error("[]", "want an object");
    expect_error("null", "'[' or '{' expected");
    expect_error("{\"i32\":1,\"i32\":2}", "malformed JSON"); /* duplicate key */
    expect_error("{\"many_i64\":[1],\"manyI64\":[2]}", "manyI64: field given twice");
    expect_error("{\"bogus\":1}", "bogus: unknown field of jsontest.All");
    expect_error("{\"inner\":{\"nmae\":\"x\"}}", "inner.nmae: unknown field of jsontest.Inner");
    expect_error("{\"i32\":2147483648}", "i32: 2147483648 is out of range");
    expect_error("{\"i32\":-2147483649}", "i32: -2147483649 is out of range");
    expect_error("{\"u32\":-1}", "u32: -1 is out of range");
    expect_error("{\"u64\":\"18446744073709551616\"}", "u64:");
    expect_error("{\"i64\":\"9223372036854775808\"}", "i64:");
    expect_error("{\"i64\":9.3e18}", "i64: 9.3e+18 is out of range");
    expect_error("{\"i32\":1.5}", "i32: 1.5 is not an integer");
    expect_error("{\"i32\":\"1.5\"}", "i32: 1.5 is not an integer");
    expect_error("{\"i32\":\" 1\"}", "is not an integer");
    expect_error("{\"i32\":\"0x10\"}", "is not an integer");
    expect_error("{\"i32\":\"\"}", "is not an integer");
    expect_error("{\"i32\":true}", "i32: want an integer, got a boolean");
    expect_error("{\"i32\":{}}", "i32: want an integer, got an object");
    expect_error("{\"fl\":1e39}", "fl: 1e+39 is out of range for a float");
    expect_error("{\"db\":\"nan\"}", "db: \"nan\" is not a number");
    expect_error("{\"db\":\"1e999\"}", "is not a number");
    expect_error("{\"flag\":\"true\"}", "flag: want true or false, got a string");
    expect_error("{\"flag\":1}", "flag: want true or false, got a number");
    expect_error("{\"text\":5}", "text: want a string, got a number");
    expect_error("{\"text\":\"a\\u0000b\"}", "malformed JSON"); /* NUL: not in a C string */
    expect_error("{\"text\":\"\xff\"}", "malformed JSON");      /* not UTF-8 */
    expect_error("{\"text\":\"\\ud800\"}", "malformed JSON");   /* a lone surrogate */
    expect_error("{\"data\":\"***\"}", "data: not base64");
    expect_error("{\"data\":\"+_8=\"}", "data: not base64"); /* alphabets mixed */
    expect_error("{\"data\":[1,2]}", "data: want base64 bytes in a string, got an array");
    expect_error("{\"color\":\"COLOR_BLUE\"}",
                 "color: \"COLOR_BLUE\" is not a value of jsontest.Color");
    expect_error("{\"color\":\"color_red\"}", "is not a value");
    expect_error("{\"color\":[]}", "color: want an enum name or number");
    expect_error("{\"names\":\"x\"}", "names: want an array, got a string");
    expect_error("{\"names\":[\"a\",null]}", "names[1]: null in a repeated field");
    expect_error("{\"inners\":[{},{\"count\":\"x\"}]}", "inners[1].count: \"x\" is not an integer");
    expect_error("{\"counts\":[1]}", "counts: want an object (map), got an array");
    expect_error("{\"counts\":{\"a\":\"b\"}}", "counts[\"a\"]: \"b\" is not an integer");
    expect_error("{\"by_id\":{\"x\":{}}}", "by_id[\"x\"]: \"x\" is not an integer");
    expect_error("{\"byFlag\":{\"yes\":\"\"}}", "map key \"yes\" is not true or false");
    expect_error("{\"by_id\":{\"1\":null}}", "null map value");
    expect_error("{\"choiceText\":\"a\",\"choiceNum\":1}",
                 "choiceNum: a second member of the same oneof");
    expect_error("{\"choice_inner\":{},\"choice_text\":\"a\"}", "a second member");
    expect_error("{\"inner\":[]}", "inner: want an object (jsontest.Inner), got an array");
}

Test(pbjson, nesting_is_bounded)
{
    char json[4096];
    size_t n = 0;
    for (int i = 0; i < 70; i++)
        n += (size_t)snprintf(json + n, sizeof json - n, "{\"next\":");
    n += (size_t)snprintf(json + n, sizeof json - n, "{}");
    for (int i = 0; i < 70; i++)
        json[n++] = '}';
    json[n] = '\0';
    expect_error(json, "nested deeper than 64");
}

Test(pbjson, encode_refuses_strings_that_are_not_utf8)
{
    Jsontest__All m = JSONTEST__ALL__INIT;
    Jsontest__Inner in = JSONTEST__INNER__INIT;
    in.name = "ok\xc0\xafno"; /* an overlong '/' */
    Jsontest__Inner *inners[] = {&in};
    m.n_inners = 1;
    m.inners = inners;
    cr_expect_null(pbjson_encode(&m.base, 0, NULL, err, sizeof err));
    cr_expect_str_eq(err, "inners[0].name: string is not valid UTF-8");
    static const char *const bad[] = {"\xed\xa0\x80", "\xf4\x90\x80\x80", "\xe0\x80\xaf", "\xc3",
                                      "\x80"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        in.name = (char *)bad[i];
        cr_expect_null(pbjson_encode(&m.base, 0, NULL, err, sizeof err), "bad[%zu]", i);
    }
    in.name = "\xf0\x9f\x98\x80 \xe2\x80\xa8 \x01";
    char *s = enc(&m.base, 0);
    cr_expect_str_eq(s, "{\"inners\":[{\"name\":\"\xf0\x9f\x98\x80 \xe2\x80\xa8 \\u0001\"}]}");
    oms_free(s);
}

/* An allocator that fails its nth call: every failure point of a decode
 * returns NULL with "out of memory" and leaks nothing (ASan's leak check). */
static int fail_at, calls;
static void *fail_alloc(void *d, size_t n)
{
    (void)d;
    return ++calls == fail_at ? NULL : malloc(n);
}
static void fail_free(void *d, void *p)
{
    (void)d;
    free(p);
}

Test(pbjson, out_of_memory_at_every_allocation)
{
    const char *json = "{\"text\":\"t\",\"names\":[\"a\",\"b\"],\"inners\":[{\"name\":\"x\"}],"
                       "\"counts\":{\"a\":1},\"byId\":{\"1\":{\"name\":\"y\"}},\"data\":\"AA==\","
                       "\"choiceText\":\"c\",\"next\":{\"text\":\"z\"}}";
    ProtobufCAllocator a = {fail_alloc, fail_free, NULL};
    int n;
    for (n = 1; n < 100; n++) {
        fail_at = n, calls = 0;
        ProtobufCMessage *m = pbjson_decode(ALL, json, strlen(json), &a, 0, err, sizeof err);
        if (m) {
            protobuf_c_message_free_unpacked(m, &a);
            break;
        }
        cr_expect(strstr(err, "out of memory"), "allocation %d: %s", n, err);
    }
    cr_expect(n > 10 && n < 100, "decoded once allocations stopped failing (n = %d)", n);
}
