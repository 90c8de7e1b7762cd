/* Unknown-option suggestions and the baked-in version (src/base/cli.c). */
#include <criterion/criterion.h>
#include <string.h>

#include "base/cli.h"

static const char *const opts[] = {"--target",  "--ca",  "--h2c",  "--json",
                                   "--timeout", "--key", "--since"};
#define N (sizeof opts / sizeof opts[0])

Test(base_cli, suggests_the_nearest_option)
{
    cr_expect_str_eq(oms_cli_suggest("--traget", opts, N), "--target");
    cr_expect_str_eq(oms_cli_suggest("--taget", opts, N), "--target");
    cr_expect_str_eq(oms_cli_suggest("--kye", opts, N), "--key", "a swap is one edit");
    cr_expect_str_eq(oms_cli_suggest("--jsn", opts, N), "--json");
    cr_expect_str_eq(oms_cli_suggest("--timout=5", opts, N), "--timeout", "the value is ignored");
    cr_expect_str_eq(oms_cli_suggest("--sinc", opts, N), "--since");
}

Test(base_cli, suggests_nothing_far_or_exact)
{
    cr_expect_null(oms_cli_suggest("--zzzzzzzz", opts, N));
    cr_expect_null(oms_cli_suggest("--x", opts, N), "too short to guess");
    cr_expect_null(oms_cli_suggest("--target", opts, N), "an exact match is no typo");
    cr_expect_null(oms_cli_suggest("", opts, N));
    cr_expect_null(oms_cli_suggest("--traget", opts, 0));
    char longword[200];
    memset(longword, 'a', sizeof longword - 1);
    longword[sizeof longword - 1] = '\0';
    cr_expect_null(oms_cli_suggest(longword, opts, N), "long input is not compared");
}

Test(base_cli, version_and_commit_are_set)
{
    cr_expect_gt(strlen(oms_version()), 0);
    cr_expect_gt(strlen(oms_commit()), 0);
}
