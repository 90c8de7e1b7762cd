/* JSON strings for log lines (base/json.h) and the log's components. */
#include <criterion/criterion.h>
#include <string.h>

#include "base/json.h"
#include "base/log.h"

static const char *esc(const char *s, size_t n)
{
    static char out[512];
    oms_json_escape(out, sizeof out, s, n, NULL);
    return out;
}
#define ESC(lit) esc(lit, sizeof(lit) - 1)

Test(base_json, escapes_quotes_backslash_and_controls)
{
    cr_expect_str_eq(ESC("plain /path"), "plain /path");
    cr_expect_str_eq(ESC("a\"b\\c"), "a\\\"b\\\\c");
    cr_expect_str_eq(ESC("\n\t\r\b\f"), "\\n\\t\\r\\b\\f");
    cr_expect_str_eq(ESC("\x01\x1f\x7f"), "\\u0001\\u001f\\u007f");
    cr_expect_str_eq(ESC("a\0b"), "a\\u0000b");
}

Test(base_json, keeps_valid_utf8_and_replaces_invalid)
{
    cr_expect_str_eq(ESC("caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80"),
                     "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80");
    cr_expect_str_eq(ESC("\xff"), "\\ufffd");
    cr_expect_str_eq(ESC("\xc0\xaf"), "\\ufffd\\ufffd");            /* overlong: 2 bad bytes */
    cr_expect_str_eq(ESC("\xe0\x80\xaf"), "\\ufffd\\ufffd\\ufffd"); /* overlong */
    cr_expect_str_eq(ESC("\xed\xa0\x80"), "\\ufffd\\ufffd\\ufffd"); /* surrogate */
    cr_expect_str_eq(ESC("\xf4\x90\x80\x80"), "\\ufffd\\ufffd\\ufffd\\ufffd"); /* > U+10FFFF */
    cr_expect_str_eq(ESC("\xe2\x82x"), "\\ufffdx"); /* truncated: one replacement */
    cr_expect_str_eq(ESC("x\xe2\x82"), "x\\ufffd"); /* truncated at the end */
    cr_expect_str_eq(ESC("\x80"), "\\ufffd");       /* lone continuation */
}

Test(base_json, never_cuts_an_escape)
{
    char out[8];
    bool cut;
    size_t n = oms_json_escape(out, sizeof out, "ab\x01", 3, &cut);
    cr_expect(cut);
    cr_expect_str_eq(out, "ab"); /* \u0001 does not fit in the 5 left */
    cr_expect_eq(n, 2);
    n = oms_json_escape(out, sizeof out, "abc\xe2\x82\xac", 6, &cut);
    cr_expect(!cut);
    cr_expect_str_eq(out, "abc\xe2\x82\xac");
    n = oms_json_escape(out, sizeof out, "abcde\xe2\x82\xac", 8, &cut);
    cr_expect(cut);
    cr_expect_str_eq(out, "abcde"); /* a character is never split */
}

Test(base_json, objects_stay_valid_when_full)
{
    char buf[64];
    oms_json j;
    oms_json_begin(&j, buf, sizeof buf);
    oms_json_cstr(&j, "a", "x");
    oms_json_u64(&j, "n", 42);
    oms_json_cstr(&j, "nul", NULL);
    size_t n = oms_json_end(&j);
    cr_expect_str_eq(buf, "{\"a\":\"x\",\"n\":42,\"nul\":null}\n");
    cr_expect_eq(n, strlen(buf));

    oms_json_begin(&j, buf, sizeof buf);
    oms_json_cstr(&j, "a", "x");
    char big[200];
    memset(big, 'z', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    oms_json_cstr(&j, "big", big);
    oms_json_end(&j);
    cr_expect_str_eq(buf, "{\"a\":\"x\"}\n", "a member that does not fit is left out");
}

Test(base_json, last_member_cut_short_stays_valid)
{
    char buf[32];
    oms_json j;
    oms_json_begin(&j, buf, sizeof buf);
    oms_json_cstr(&j, "a", "x");
    oms_json_str_cut(&j, "msg", "0123456789abcdef\xc3\xa9\xc3\xa9\xc3\xa9", 22);
    size_t n = oms_json_end(&j);
    cr_expect_eq(n, strlen(buf));
    cr_expect_lt(n, sizeof buf);
    cr_expect_eq(strncmp(buf, "{\"a\":\"x\",\"msg\":\"0123456789", 25), 0, "%s", buf);
    cr_expect_str_eq(buf + n - 3, "\"}\n", "%s", buf);
}

Test(base_json, time_is_rfc3339_utc_with_ms)
{
    char t[32];
    oms_json_time(t, sizeof t, 1796661289, 123456789);
    cr_expect_str_eq(t, "2026-12-07T16:34:49.123Z");
}

Test(base_log, component_from_prefix_or_layer)
{
    char c[24];
    cr_expect_eq(oms_log_component("orders: release of o-1", c, sizeof c), 8);
    cr_expect_str_eq(c, "orders");
    cr_expect_eq(oms_log_component("store: sqlite:x: y", c, sizeof c), 7);
    cr_expect_str_eq(c, "store");
    cr_expect_eq(oms_log_component("conn 127.0.0.1:5: closed", c, sizeof c), 0);
    cr_expect_str_eq(c, "http2");
    cr_expect_eq(oms_log_component("call /a/b from x: y", c, sizeof c), 0);
    cr_expect_str_eq(c, "rpc");
    cr_expect_eq(oms_log_component("drained; exiting", c, sizeof c), 0);
    cr_expect_str_eq(c, "main");
    cr_expect_eq(oms_log_component("state dump: worker 0", c, sizeof c), 0);
    cr_expect_str_eq(c, "main");
    cr_expect_eq(oms_log_component("", c, sizeof c), 0);
    cr_expect_str_eq(c, "main");
    oms_log_format f;
    cr_expect_eq(oms_log_parse_format("json", &f), 0);
    cr_expect_eq(f, OMS_LOG_JSON);
    cr_expect_eq(oms_log_parse_format("JSON", &f), -1);
}
