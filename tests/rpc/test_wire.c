/* Unit tests for the web protocols' pure pieces (src/rpc/wire.c, cors.c):
 * content-type detection, grpc-web-text's base64 in pieces, the grpc-web
 * trailer frame, Connect's code table, error JSON, timeout and GET query. */
#include <criterion/criterion.h>
#include <string.h>

#include "rpc_int.h"

/* --- protocol detection ------------------------------------------------------- */

Test(rpc_wire, content_types_pick_protocol_and_codec)
{
    static const struct {
        const char *ct;
        rpc_proto proto;
        bool json;
    } cases[] = {
        {"application/grpc", RPC_PROTO_GRPC, false},
        {"application/grpc+proto", RPC_PROTO_GRPC, false},
        {"application/grpc-web", RPC_PROTO_GRPC_WEB, false},
        {"application/grpc-web+proto", RPC_PROTO_GRPC_WEB, false},
        {"Application/GRPC-Web-Text", RPC_PROTO_GRPC_WEB_TEXT, false},
        {"application/grpc-web-text+proto", RPC_PROTO_GRPC_WEB_TEXT, false},
        {"application/proto", RPC_PROTO_CONNECT, false},
        {"application/json", RPC_PROTO_CONNECT, true},
        {"application/json; charset=utf-8", RPC_PROTO_CONNECT, true},
        {"application/connect+proto", RPC_PROTO_CONNECT_STREAM, false},
        {"application/connect+json", RPC_PROTO_CONNECT_STREAM, true},
        {"application/grpc-web+json", RPC_PROTO_NONE, false},
        {"application/jsonx", RPC_PROTO_NONE, false},
        {"text/plain", RPC_PROTO_NONE, false},
        {"", RPC_PROTO_NONE, false},
        {"application/grpc-webby", RPC_PROTO_NONE, false},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        bool json = !cases[i].json;
        rpc_proto p = rpc__wire_detect(cases[i].ct, strlen(cases[i].ct), &json);
        cr_expect_eq(p, cases[i].proto, "%s: %d, want %d", cases[i].ct, p, cases[i].proto);
        cr_expect_eq(json, cases[i].json, "%s: json %d", cases[i].ct, json);
    }
}

/* --- grpc-web-text ---------------------------------------------------------- */

static void feed_all(const char *const *pieces, size_t n, int want_rv, const char *want,
                     size_t want_len)
{
    rpc_b64_stream st = {0};
    rpc_buf out;
    rpc__buf_init(&out);
    int rv = 0;
    for (size_t i = 0; i < n && rv == 0; i++)
        rv = rpc__b64_stream_feed(&st, pieces[i], strlen(pieces[i]), &out);
    if (rv == 0)
        rv = rpc__b64_stream_end(&st, &out);
    cr_assert_eq(rv, want_rv, "rv %d, want %d", rv, want_rv);
    if (want_rv == 0) {
        cr_assert_eq(out.len, want_len, "decoded %zu bytes, want %zu", out.len, want_len);
        cr_assert_arr_eq(out.data, want, want_len);
    }
    rpc__buf_dispose(&out);
}

Test(rpc_wire, base64_split_at_every_point)
{
    const char text[] = "aGVsbG8gd29ybGQ="; /* "hello world" */
    for (size_t cut = 0; cut <= strlen(text); cut++) {
        char a[32] = {0}, b[32] = {0};
        memcpy(a, text, cut);
        strcpy(b, text + cut);
        const char *pieces[] = {a, b};
        feed_all(pieces, 2, 0, "hello world", 11);
    }
}

Test(rpc_wire, base64_one_byte_at_a_time)
{
    const char *text = "AAAAAAUKA2MtMQ==";
    const char *pieces[16];
    char one[16][2];
    for (size_t i = 0; i < 16; i++) {
        one[i][0] = text[i];
        one[i][1] = 0;
        pieces[i] = one[i];
    }
    feed_all(pieces, 16, 0, "\0\0\0\0\5\n\3c-1", 10);
}

Test(rpc_wire, base64_pieces_padded_on_their_own)
{
    /* "ab" and "c" encoded separately, then concatenated, as a client that
     * encodes each write may send them. */
    const char *pieces[] = {"YWI=Yw==", "ZA"};
    feed_all(pieces, 2, 0, "abcd", 4);
}

Test(rpc_wire, base64_trailing_newline_is_ignored)
{
    const char *pieces[] = {"aGk=\n", "\r\n"};
    feed_all(pieces, 2, 0, "hi", 2);
}

Test(rpc_wire, base64_hostile)
{
    const char *bad1[] = {"aGk*"};
    feed_all(bad1, 1, -1, NULL, 0);
    const char *bad2[] = {"a=Gk"}; /* padding inside a group */
    feed_all(bad2, 1, -1, NULL, 0);
    const char *bad3[] = {"aGk=a"}; /* a lone character at the end */
    feed_all(bad3, 1, -1, NULL, 0);
    const char *bad4[] = {"\xff\xfe\xfd\xfc"};
    feed_all(bad4, 1, -1, NULL, 0);
}

/* --- grpc-web trailer frame ------------------------------------------------- */

Test(rpc_wire, trailer_frame_layout)
{
    http2_header h[] = {
        {"grpc-status", 11, "0", 1},
        {"grpc-message", 12, "a%20b", 5},
        {"x-k", 3, "v", 1},
    };
    rpc_buf b;
    rpc__buf_init(&b);
    cr_assert_eq(rpc__grpcweb_trailer_frame(&b, h, 3), 0);
    const char body[] = "grpc-status: 0\r\ngrpc-message: a%20b\r\nx-k: v\r\n";
    size_t bl = sizeof body - 1;
    cr_assert_eq(b.len, 5 + bl);
    cr_assert_eq(b.data[0], 0x80);
    cr_assert_eq(
        (size_t)b.data[1] << 24 | (size_t)b.data[2] << 16 | (size_t)b.data[3] << 8 | b.data[4], bl);
    cr_assert_arr_eq(b.data + 5, body, bl);
    rpc__buf_dispose(&b);
}

/* --- Connect -------------------------------------------------------------------- */

Test(rpc_wire, connect_code_table)
{
    static const struct {
        rpc_status code;
        const char *name;
        int http;
    } t[] = {
        {RPC_CANCELLED, "canceled", 499},
        {RPC_UNKNOWN, "unknown", 500},
        {RPC_INVALID_ARGUMENT, "invalid_argument", 400},
        {RPC_DEADLINE_EXCEEDED, "deadline_exceeded", 504},
        {RPC_NOT_FOUND, "not_found", 404},
        {RPC_ALREADY_EXISTS, "already_exists", 409},
        {RPC_PERMISSION_DENIED, "permission_denied", 403},
        {RPC_RESOURCE_EXHAUSTED, "resource_exhausted", 429},
        {RPC_FAILED_PRECONDITION, "failed_precondition", 400},
        {RPC_ABORTED, "aborted", 409},
        {RPC_OUT_OF_RANGE, "out_of_range", 400},
        {RPC_UNIMPLEMENTED, "unimplemented", 501},
        {RPC_INTERNAL, "internal", 500},
        {RPC_UNAVAILABLE, "unavailable", 503},
        {RPC_DATA_LOSS, "data_loss", 500},
        {RPC_UNAUTHENTICATED, "unauthenticated", 401},
    };
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
        cr_expect_str_eq(rpc__connect_code_name(t[i].code), t[i].name);
        cr_expect_eq(rpc__connect_http_status(t[i].code), t[i].http, "%s", t[i].name);
    }
    cr_expect_str_eq(rpc__connect_code_name((rpc_status)99), "unknown");
    cr_expect_eq(rpc__connect_http_status((rpc_status)-1), 500);
}

static void check_error_json(rpc_status code, const char *msg, const char *want)
{
    rpc_buf b;
    rpc__buf_init(&b);
    cr_assert_eq(rpc__connect_error_json(&b, code, msg), 0);
    cr_assert_eq(b.len, strlen(want), "got %.*s, want %s", (int)b.len, (char *)b.data, want);
    cr_assert_arr_eq(b.data, want, b.len);
    rpc__buf_dispose(&b);
}

Test(rpc_wire, connect_error_json_escapes)
{
    check_error_json(RPC_NOT_FOUND, "order o-1 not found",
                     "{\"code\":\"not_found\",\"message\":\"order o-1 not found\"}");
    check_error_json(RPC_INTERNAL, NULL, "{\"code\":\"internal\"}");
    check_error_json(RPC_INTERNAL, "", "{\"code\":\"internal\"}");
    check_error_json(RPC_INVALID_ARGUMENT, "a\"b\\c\nd\x01",
                     "{\"code\":\"invalid_argument\",\"message\":\"a\\\"b\\\\c\\nd\\u0001\"}");
    /* UTF-8 is kept; bytes that are not UTF-8 become U+FFFD. */
    check_error_json(RPC_ABORTED, "caf\xc3\xa9 \xff\xc3",
                     "{\"code\":\"aborted\",\"message\":\"caf\xc3\xa9 \xef\xbf\xbd\xef\xbf\xbd\"}");
}

Test(rpc_wire, connect_timeout)
{
    uint64_t ms = 0;
    cr_assert_eq(rpc__connect_timeout_parse("1500", 4, &ms), 0);
    cr_assert_eq(ms, 1500);
    cr_assert_eq(rpc__connect_timeout_parse("9999999999", 10, &ms), 0);
    cr_assert_eq(ms, 9999999999ull);
    cr_assert_eq(rpc__connect_timeout_parse("12345678901", 11, &ms), -1);
    cr_assert_eq(rpc__connect_timeout_parse("", 0, &ms), -1);
    cr_assert_eq(rpc__connect_timeout_parse("1s", 2, &ms), -1);
    cr_assert_eq(rpc__connect_timeout_parse("-1", 2, &ms), -1);
}

static int get_parse(const char *q, rpc_connect_get *out, rpc_buf *msg, const char **why)
{
    rpc__buf_init(msg);
    *why = NULL;
    return rpc__connect_get_parse(q, strlen(q), out, msg, why);
}

Test(rpc_wire, connect_get_query)
{
    rpc_connect_get q;
    rpc_buf m;
    const char *why;
    cr_assert_eq(
        get_parse("connect=v1&encoding=json&message=%7B%22id%22%3A%22a+b%22%7D", &q, &m, &why), 0);
    cr_assert(q.json);
    cr_assert_eq(q.compression, RPC_ENC_IDENTITY);
    cr_assert_eq(m.len, 12);
    cr_assert_arr_eq(m.data, "{\"id\":\"a b\"}", 12);
    rpc__buf_dispose(&m);

    /* base64url without padding, proto, gzip */
    cr_assert_eq(
        get_parse("encoding=proto&base64=1&compression=gzip&message=CgNjLTE", &q, &m, &why), 0);
    cr_assert(!q.json);
    cr_assert_eq(q.compression, RPC_ENC_GZIP);
    cr_assert_eq(m.len, 5);
    cr_assert_arr_eq(m.data, "\n\3c-1", 5);
    rpc__buf_dispose(&m);

    /* an empty message is the empty message */
    cr_assert_eq(get_parse("encoding=proto&message=", &q, &m, &why), 0);
    cr_assert_eq(m.len, 0);
    rpc__buf_dispose(&m);
}

Test(rpc_wire, connect_get_query_hostile)
{
    static const char *bad[] = {
        "encoding=json",                           /* no message */
        "message=%7B%7D",                          /* no encoding */
        "encoding=xml&message=x",                  /* unknown encoding */
        "connect=v2&encoding=json&message=%7B%7D", /* another version */
        "encoding=proto&base64=1&message=***",     /* not base64 */
        "encoding=json&message=%7",                /* truncated escape */
        "encoding=json&message=%zz",               /* not an escape */
        "encoding=json&compression=br&message=x",  /* unknown compression */
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        rpc_connect_get q;
        rpc_buf m;
        const char *why;
        cr_expect_eq(get_parse(bad[i], &q, &m, &why), -1, "%s", bad[i]);
        cr_expect_not_null(why, "%s", bad[i]);
        rpc__buf_dispose(&m);
    }
}

/* --- CORS ----------------------------------------------------------------------- */

Test(rpc_wire, cors_origin_list)
{
    rpc_cors c;
    cr_assert_eq(rpc__cors_init(&c, "https://a.example, https://b.example"), 0);
    cr_assert(rpc__cors_allowed(&c, "https://a.example", 17));
    cr_assert(rpc__cors_allowed(&c, "https://b.example", 17));
    cr_assert(!rpc__cors_allowed(&c, "https://c.example", 17));
    cr_assert(!rpc__cors_allowed(&c, "https://a.example.evil", 22));
    cr_assert(!rpc__cors_allowed(&c, NULL, 0));
    rpc__cors_dispose(&c);

    cr_assert_eq(rpc__cors_init(&c, "*"), 0);
    cr_assert(rpc__cors_allowed(&c, "http://anything", 15));
    rpc__cors_dispose(&c);

    cr_assert_eq(rpc__cors_init(&c, NULL), 0);
    cr_assert(!rpc__cors_allowed(&c, "http://x", 8));
    rpc__cors_dispose(&c);

    cr_assert_eq(rpc__cors_init(&c, "a,,b"), RPC_EINVAL);
}
