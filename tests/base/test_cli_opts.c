/* The table-driven option parser and its generated help (src/base/cli.c). */
#include <criterion/criterion.h>
#include <criterion/redirect.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "base/cli.h"

typedef struct conf {
    bool h2c;
    const char *ca;
    uint64_t workers, buf;
    double grace;
    char host[64];
    int port;
    int calls;
} conf;

static int on_listen(const oms_cli_opt *o, const char *arg, void *ctx)
{
    (void)o;
    conf *c = ctx;
    c->calls++;
    return oms_cli_hostport(arg, OMS_CLI_PORT0, c->host, sizeof c->host, &c->port);
}

static int on_loud(const oms_cli_opt *o, const char *arg, void *ctx)
{
    (void)o;
    (void)arg;
    (void)ctx;
    fprintf(stderr, "prog: my own words\n");
    return -2;
}

static conf C;
static const oms_cli_opt OPTS[] = {
    {.name = "listen",
     .type = OMS_CLI_CALL,
     .arg = "HOST:PORT",
     .fn = on_listen,
     .want = "HOST:PORT or [IPV6]:PORT",
     .help = "address to listen on\n(port 0: any)"},
    {.name = "h2c", .type = OMS_CLI_FLAG, .dest = &C.h2c, .help = "cleartext"},
    {.name = "ca",
     .short_name = 'c',
     .type = OMS_CLI_STRING,
     .arg = "FILE",
     .dest = &C.ca,
     .help = "roots"},
    {.type = OMS_CLI_SECTION, .help = "\nTuning:"},
    {.name = "workers",
     .type = OMS_CLI_U64,
     .arg = "N",
     .dest = &C.workers,
     .min = 1,
     .max = 64,
     .help = "loops"},
    {.name = "buffer",
     .type = OMS_CLI_SIZE,
     .arg = "BYTES",
     .dest = &C.buf,
     .min = 8192,
     .max = 1u << 30,
     .help = "a buffer"},
    {.name = "grace",
     .type = OMS_CLI_DOUBLE,
     .arg = "SECONDS",
     .dest = &C.grace,
     .fmax = 86400,
     .want = "0..86400 seconds",
     .help = "drain time"},
    {.name = "a-rather-long-option", .type = OMS_CLI_FLAG, .help = "long"},
    {.name = "hidden", .type = OMS_CLI_FLAG},
    {.name = "loud", .type = OMS_CLI_CALL, .arg = "X", .fn = on_loud, .help = "complains"},
};
static const oms_cli_spec SPEC = {
    .prog = "prog",
    .usage = "usage: prog [options]\n\n",
    .epilog = "\nThe end.\n",
    .opts = OPTS,
    .nopts = sizeof OPTS / sizeof OPTS[0],
};

static int parse(const oms_cli_spec *spec, char **argv, int *first)
{
    int argc = 0;
    while (argv[argc])
        argc++;
    return oms_cli_parse(spec, argc, argv, &C, first);
}

#define ARGV(...) ((char *[]){"prog", __VA_ARGS__, NULL})

Test(base_cli_opts, stores_through_the_table)
{
    memset(&C, 0, sizeof C);
    int first = -1;
    cr_assert_eq(parse(&SPEC,
                       ARGV("--listen", "[::1]:0", "--h2c", "-c", "ca.pem", "--workers=4",
                            "--buffer", "64K", "--grace", "2.5"),
                       &first),
                 0);
    cr_expect_str_eq(C.host, "::1");
    cr_expect_eq(C.port, 0);
    cr_expect(C.h2c);
    cr_expect_str_eq(C.ca, "ca.pem");
    cr_expect_eq(C.workers, 4);
    cr_expect_eq(C.buf, 65536);
    cr_expect_float_eq(C.grace, 2.5, 1e-9);
    cr_expect_eq(C.calls, 1);
    cr_expect_eq(first, 11, "argc: no operands");
}

Test(base_cli_opts, a_unique_prefix_still_works)
{
    memset(&C, 0, sizeof C);
    cr_assert_eq(parse(&SPEC, ARGV("--work", "2"), NULL), 0);
    cr_expect_eq(C.workers, 2);
}

Test(base_cli_opts, bad_value_names_flag_want_and_input, .init = cr_redirect_stderr)
{
    memset(&C, 0, sizeof C);
    cr_assert_eq(parse(&SPEC, ARGV("--workers", "65"), NULL), -1);
    fflush(stderr);
    cr_assert_stderr_eq_str("prog: --workers wants 1..64, got '65'\n");
}

Test(base_cli_opts, bad_size_default_want, .init = cr_redirect_stderr)
{
    cr_assert_eq(parse(&SPEC, ARGV("--buffer=1K"), NULL), -1);
    fflush(stderr);
    cr_assert_stderr_eq_str("prog: --buffer wants 8192..1073741824 bytes, got '1K'\n");
}

Test(base_cli_opts, handler_failure_uses_want, .init = cr_redirect_stderr)
{
    cr_assert_eq(parse(&SPEC, ARGV("--listen", "::1:80"), NULL), -1);
    fflush(stderr);
    cr_assert_stderr_eq_str("prog: --listen wants HOST:PORT or [IPV6]:PORT, got '::1:80'\n");
}

Test(base_cli_opts, handler_may_speak_for_itself, .init = cr_redirect_stderr)
{
    cr_assert_eq(parse(&SPEC, ARGV("--loud", "x"), NULL), -1);
    fflush(stderr);
    cr_assert_stderr_eq_str("prog: my own words\n");
}

Test(base_cli_opts, missing_value, .init = cr_redirect_stderr)
{
    cr_assert_eq(parse(&SPEC, ARGV("--grace"), NULL), -1);
    fflush(stderr);
    cr_assert_stderr_eq_str("prog: --grace needs a value (see --help)\n");
}

Test(base_cli_opts, unknown_option_suggests, .init = cr_redirect_stderr)
{
    cr_assert_eq(parse(&SPEC, ARGV("--gracee", "1"), NULL), -1);
    fflush(stderr);
    cr_assert_stderr_eq_str("prog: unknown option --gracee; did you mean --grace?\n"
                            "Try 'prog --help' for more.\n");
}

Test(base_cli_opts, operand_refused_unless_allowed, .init = cr_redirect_stderr)
{
    cr_assert_eq(parse(&SPEC, ARGV("--h2c", "extra"), NULL), -1);
    fflush(stderr);
    cr_assert_stderr_eq_str("prog: unexpected argument 'extra' (see --help)\n");
}

Test(base_cli_opts, operands_stop_the_parse)
{
    oms_cli_spec s = SPEC;
    s.operands = true;
    memset(&C, 0, sizeof C);
    int first = -1;
    cr_assert_eq(parse(&s, ARGV("--h2c", "cmd", "--workers", "3"), &first), 0);
    cr_expect_eq(first, 2);
    cr_expect_eq(C.workers, 0, "flags after the operand are the command's");
}

Test(base_cli_opts, a_second_parse_starts_over)
{
    memset(&C, 0, sizeof C);
    cr_assert_eq(parse(&SPEC, ARGV("--workers", "5"), NULL), 0);
    cr_assert_eq(parse(&SPEC, ARGV("--workers", "6"), NULL), 0);
    cr_expect_eq(C.workers, 6);
}

Test(base_cli_opts, help_and_version_print_and_say_exit, .init = cr_redirect_stdout)
{
    cr_assert_eq(parse(&SPEC, ARGV("--h2c", "--help"), NULL), 1);
    cr_assert_eq(parse(&SPEC, ARGV("--version"), NULL), 1);
}

Test(base_cli_opts, help_is_generated_from_the_table)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    cr_assert_not_null(f);
    oms_cli_help(&SPEC, f);
    fclose(f);
    cr_expect_str_eq(buf, "usage: prog [options]\n"
                          "\n"
                          "  --listen HOST:PORT     address to listen on\n"
                          "                         (port 0: any)\n"
                          "  --h2c                  cleartext\n"
                          "  -c, --ca FILE          roots\n"
                          "\n"
                          "Tuning:\n"
                          "  --workers N            loops\n"
                          "  --buffer BYTES         a buffer\n"
                          "  --grace SECONDS        drain time\n"
                          "  --a-rather-long-option  long\n"
                          "  --loud X               complains\n"
                          "  -h, --help             show this help\n"
                          "  --version              print the version and git commit\n"
                          "\n"
                          "The end.\n");
    free(buf);
}

/* oms_cli_match: flags anywhere (omsctl's global flags), exact names only. */
Test(base_cli_opts, match_one_argument_at_a_time)
{
    memset(&C, 0, sizeof C);
    char *argv[] = {"prog",   "cmd", "--workers", "3",    "--grace=1.5", "--h2c",
                    "--work", "1",   "--h2c=yes", "--ca", NULL};
    int argc = 10, i = 1;
    char msg[128];
    cr_expect_eq(
        oms_cli_match(OPTS, sizeof OPTS / sizeof OPTS[0], argc, argv, &i, &C, msg, sizeof msg), 0,
        "an operand");
    i = 2;
    cr_expect_eq(oms_cli_match(OPTS, 10, argc, argv, &i, &C, msg, sizeof msg), 1);
    cr_expect_eq(i, 3, "at the value used");
    cr_expect_eq(C.workers, 3);
    i = 4;
    cr_expect_eq(oms_cli_match(OPTS, 10, argc, argv, &i, &C, msg, sizeof msg), 1);
    cr_expect_float_eq(C.grace, 1.5, 1e-9);
    i = 5;
    cr_expect_eq(oms_cli_match(OPTS, 10, argc, argv, &i, &C, msg, sizeof msg), 1);
    cr_expect(C.h2c);
    i = 6;
    cr_expect_eq(oms_cli_match(OPTS, 10, argc, argv, &i, &C, msg, sizeof msg), 0,
                 "no prefixes here: a command's flag may start the same way");
    i = 8;
    cr_expect_eq(oms_cli_match(OPTS, 10, argc, argv, &i, &C, msg, sizeof msg), -1);
    cr_expect_str_eq(msg, "--h2c takes no value");
    i = 9;
    cr_expect_eq(oms_cli_match(OPTS, 10, argc, argv, &i, &C, msg, sizeof msg), -1);
    cr_expect_str_eq(msg, "--ca needs a value");
}

Test(base_cli_opts, match_bad_value_message)
{
    char *argv[] = {"prog", "--workers", "0x5", "--loud", "x", NULL};
    int i = 1;
    char msg[128];
    cr_expect_eq(oms_cli_match(OPTS, 10, 5, argv, &i, &C, msg, sizeof msg), -1);
    cr_expect_str_eq(msg, "--workers wants 1..64, got '0x5'");
    i = 3;
    cr_redirect_stderr();
    cr_expect_eq(oms_cli_match(OPTS, 10, 5, argv, &i, &C, msg, sizeof msg), -1);
    cr_expect_str_eq(msg, "", "the handler spoke for itself");
}
