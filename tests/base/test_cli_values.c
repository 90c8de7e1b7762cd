/* The value parsers every program's flags go through (src/base/cli.c):
 * numbers, sizes, durations, HOST:PORT and target lists, good and hostile. */
#include <criterion/criterion.h>
#include <stdint.h>
#include <string.h>

#include "base/cli.h"

Test(base_cli_values, u64_good)
{
    uint64_t v = 7;
    cr_expect_eq(oms_cli_u64("0", 0, 10, &v), 0);
    cr_expect_eq(v, 0);
    cr_expect_eq(oms_cli_u64("10", 0, 10, &v), 0);
    cr_expect_eq(v, 10);
    cr_expect_eq(oms_cli_u64("0042", 0, 100, &v), 0, "leading zeros are decimal, not octal");
    cr_expect_eq(v, 42);
    cr_expect_eq(oms_cli_u64("18446744073709551615", 0, UINT64_MAX, &v), 0);
    cr_expect_eq(v, UINT64_MAX);
}

Test(base_cli_values, u64_hostile)
{
    uint64_t v = 7;
    const char *bad[] = {"",
                         "-1",
                         "+1",
                         " 1",
                         "1 ",
                         "1x",
                         "0x10",
                         "1e3",
                         "1.0",
                         "11",
                         "18446744073709551616",
                         "99999999999999999999999",
                         "\t5",
                         "five"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        cr_expect_eq(oms_cli_u64(bad[i], 0, 10, &v), -1, "'%s' was taken", bad[i]);
    cr_expect_eq(oms_cli_u64("18446744073709551616", 0, UINT64_MAX, &v), -1, "overflow");
    cr_expect_eq(oms_cli_u64("0", 1, 10, &v), -1, "below min");
    cr_expect_eq(v, 7, "left alone on error");
}

Test(base_cli_values, double_good)
{
    double v = -1;
    cr_expect_eq(oms_cli_double("0", 0, 10, &v), 0);
    cr_expect_float_eq(v, 0, 1e-12);
    cr_expect_eq(oms_cli_double("0.5", 0, 10, &v), 0);
    cr_expect_float_eq(v, 0.5, 1e-12);
    cr_expect_eq(oms_cli_double(".25", 0, 10, &v), 0);
    cr_expect_float_eq(v, 0.25, 1e-12);
    cr_expect_eq(oms_cli_double("1e8", 0, 1e8, &v), 0);
    cr_expect_float_eq(v, 1e8, 1);
    cr_expect_eq(oms_cli_double("2.5E-1", 0, 1, &v), 0);
    cr_expect_float_eq(v, 0.25, 1e-12);
}

Test(base_cli_values, double_hostile)
{
    double v = -1;
    const char *bad[] = {"",    "-1", "+1",  " 1", "1 ",   "1s",    "nan", "inf", "NaN",
                         "0x1", "1e", "1e+", ".",  "1..2", "1e999", "11",  "1,5", "e5"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        cr_expect_eq(oms_cli_double(bad[i], 0, 10, &v), -1, "'%s' was taken", bad[i]);
    cr_expect_eq(oms_cli_double("0", 0.001, 10, &v), -1, "below min");
    cr_expect_float_eq(v, -1, 1e-12, "left alone on error");
}

Test(base_cli_values, size_suffixes)
{
    uint64_t v = 0;
    cr_expect_eq(oms_cli_size("4096", 0, UINT64_MAX, &v), 0);
    cr_expect_eq(v, 4096);
    cr_expect_eq(oms_cli_size("8K", 0, UINT64_MAX, &v), 0);
    cr_expect_eq(v, 8192);
    cr_expect_eq(oms_cli_size("4m", 0, UINT64_MAX, &v), 0);
    cr_expect_eq(v, 4u << 20);
    cr_expect_eq(oms_cli_size("1G", 0, UINT64_MAX, &v), 0);
    cr_expect_eq(v, 1u << 30);
    cr_expect_eq(oms_cli_size("0G", 0, UINT64_MAX, &v), 0);
    cr_expect_eq(v, 0);
    cr_expect_eq(oms_cli_size("17179869183G", 0, UINT64_MAX, &v), 0, "the largest that fits");
    cr_expect_eq(v, 17179869183ull << 30);
}

Test(base_cli_values, size_hostile)
{
    uint64_t v = 3;
    const char *bad[] = {"",
                         "K",
                         "-1K",
                         "+1K",
                         " 1K",
                         "1K ",
                         "1KB",
                         "1KK",
                         "1T",
                         "1.5M",
                         "1 K",
                         "0x1K",
                         "1k2",
                         "17179869184G",
                         "18014398509481984M",
                         "99999999999999999999K"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        cr_expect_eq(oms_cli_size(bad[i], 0, UINT64_MAX, &v), -1, "'%s' was taken", bad[i]);
    cr_expect_eq(oms_cli_size("2G", 0, 1u << 30, &v), -1, "over max after the suffix");
    cr_expect_eq(oms_cli_size("1K", 8192, 1u << 30, &v), -1, "under min after the suffix");
    cr_expect_eq(v, 3);
}

Test(base_cli_values, duration_units)
{
    uint64_t v = 0;
    cr_expect_eq(oms_cli_duration_ms("5", 1000, 0, UINT64_MAX, &v), 0, "bare: unit_ms");
    cr_expect_eq(v, 5000);
    cr_expect_eq(oms_cli_duration_ms("5", 1, 0, UINT64_MAX, &v), 0);
    cr_expect_eq(v, 5);
    cr_expect_eq(oms_cli_duration_ms("250ms", 1000, 0, UINT64_MAX, &v), 0);
    cr_expect_eq(v, 250);
    cr_expect_eq(oms_cli_duration_ms("1.5s", 1000, 0, UINT64_MAX, &v), 0);
    cr_expect_eq(v, 1500);
    cr_expect_eq(oms_cli_duration_ms("2m", 1000, 0, UINT64_MAX, &v), 0);
    cr_expect_eq(v, 120000);
    cr_expect_eq(oms_cli_duration_ms("24h", 1000, 0, UINT64_MAX, &v), 0);
    cr_expect_eq(v, 86400000);
    cr_expect_eq(oms_cli_duration_ms("3650d", 1000, 0, 3650 * 86400000ull, &v), 0);
    cr_expect_eq(v, 3650 * 86400000ull);
    cr_expect_eq(oms_cli_duration_ms("0", 1000, 0, 10, &v), 0);
    cr_expect_eq(v, 0);
}

Test(base_cli_values, duration_hostile)
{
    uint64_t v = 9;
    const char *bad[] = {"",   "s",   "-1s",  "+1s",    " 1s",    "1s ",   "1S",     "1sec", "1ms5",
                         "1y", "nan", "infs", "1e999s", "1e300d", "3651d", "1.2.3s", "5 m"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        cr_expect_eq(oms_cli_duration_ms(bad[i], 1000, 0, 3650 * 86400000ull, &v), -1,
                     "'%s' was taken", bad[i]);
    cr_expect_eq(oms_cli_duration_ms("99999999999999999999d", 1000, 0, UINT64_MAX, &v), -1,
                 "beyond uint64 milliseconds");
    cr_expect_eq(oms_cli_duration_ms("0", 1000, 1, 10, &v), -1, "under min");
    cr_expect_eq(v, 9);
}

Test(base_cli_values, hostport_good)
{
    char host[64];
    int port = -1;
    cr_expect_eq(oms_cli_hostport("127.0.0.1:50051", 0, host, sizeof host, &port), 0);
    cr_expect_str_eq(host, "127.0.0.1");
    cr_expect_eq(port, 50051);
    cr_expect_eq(oms_cli_hostport("localhost:1", 0, host, sizeof host, &port), 0);
    cr_expect_str_eq(host, "localhost");
    cr_expect_eq(port, 1);
    cr_expect_eq(oms_cli_hostport("[::1]:65535", 0, host, sizeof host, &port), 0);
    cr_expect_str_eq(host, "::1", "brackets stripped");
    cr_expect_eq(port, 65535);
    cr_expect_eq(oms_cli_hostport("[fe80::1%eth0]:8080", 0, host, sizeof host, &port), 0);
    cr_expect_str_eq(host, "fe80::1%eth0");
    cr_expect_eq(oms_cli_hostport("0.0.0.0:0", OMS_CLI_PORT0, host, sizeof host, &port), 0);
    cr_expect_eq(port, 0);
}

Test(base_cli_values, hostport_hostile)
{
    char host[16] = "untouched";
    int port = -1;
    const char *bad[] = {
        "",          "host",       "host:",       ":50051",
        "host:0",    "host:65536", "host:-1",     "host:+80",
        "host:80x",  "host: 80",   "host:0x50",   "host:99999999999999999999",
        "::1:50051", "[::1]",      "[::1]50051",  "[::1]:",
        "[]:80",     "[::1:80",    "::1]:80",     "[[::1]]:80",
        "ho st:80",  "a,b:80",     "dns:///h:80", "a-very-long-host-name.example:80"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        cr_expect_eq(oms_cli_hostport(bad[i], 0, host, sizeof host, &port), -1, "'%s' was taken",
                     bad[i]);
    cr_expect_eq(oms_cli_hostport("h:65536", OMS_CLI_PORT0, host, sizeof host, &port), -1);
    cr_expect_str_eq(host, "untouched");
    cr_expect_eq(port, -1);
}

Test(base_cli_values, targets)
{
    cr_expect_eq(oms_cli_targets("a:1"), 1);
    cr_expect_eq(oms_cli_targets("a:1,[::1]:2,127.0.0.1:3"), 3);
    const char *bad[] = {"",      ",",   "a:1,",     ",a:1",   "a:1,,b:2",
                         "a:1,b", "a:0", "a:1, b:2", "a:1;b:2"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        cr_expect_eq(oms_cli_targets(bad[i]), -1, "'%s' was taken", bad[i]);
    char huge[400];
    memset(huge, 'h', sizeof huge);
    memcpy(huge + sizeof huge - 4, ":80", 4);
    cr_expect_eq(oms_cli_targets(huge), -1, "an element too long");
}
