/* test_quote.c - rpc_quote: client bytes in status messages. */
#include <criterion/criterion.h>
#include <string.h>

#include "rpc/rpc.h"

#define Q(lit) RPC_QUOTE((lit), sizeof(lit) - 1)

Test(rpc_quote, printable_ascii_is_kept)
{
    cr_assert_str_eq(Q("c-1"), "c-1");
    cr_assert_str_eq(Q(""), "");
    cr_assert_str_eq(Q(" ~!\"'{}"), " ~!\"'{}");
}

Test(rpc_quote, other_bytes_are_escaped)
{
    cr_assert_str_eq(Q("c-1\0evil"), "c-1\\x00evil");
    cr_assert_str_eq(Q("a\nb\r\x1b[31m"), "a\\x0ab\\x0d\\x1b[31m");
    cr_assert_str_eq(Q("\xff\xc3\xa9\x7f"), "\\xff\\xc3\\xa9\\x7f");
    cr_assert_str_eq(Q("back\\slash"), "back\\x5cslash"); /* no ambiguity with \xNN */
}

Test(rpc_quote, length_is_bounded)
{
    char in[1000];
    memset(in, 'a', sizeof in);
    char out[RPC_QUOTE_SIZE];
    rpc_quote(out, in, sizeof in);
    cr_assert_eq(strlen(out), RPC_QUOTE_MAX + 3);
    cr_assert_str_eq(out + RPC_QUOTE_MAX, "...");
    /* exactly the maximum: no ellipsis */
    rpc_quote(out, in, RPC_QUOTE_MAX);
    cr_assert_eq(strlen(out), RPC_QUOTE_MAX);
    /* the worst case fills but never overflows the buffer */
    memset(in, 0xff, sizeof in);
    rpc_quote(out, in, sizeof in);
    cr_assert_eq(strlen(out), RPC_QUOTE_MAX * 4 + 3);
    cr_assert_lt(strlen(out), (size_t)RPC_QUOTE_SIZE);
}
