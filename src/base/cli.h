/* cli.h - what every oms program's command line shares: the answer to an
 * unknown option (which one, the nearest known one, where to read more) and
 * --version.
 */
#ifndef OMS_CLI_H
#define OMS_CLI_H

#include <getopt.h>
#include <stddef.h>
#include <stdio.h>

/* The candidate nearest to word (edit distance over the part before any
 * '='), or NULL if none is close enough to be a plausible typo (distance at
 * most 2, and less than half of the word's length). */
const char *oms_cli_suggest(const char *word, const char *const *cands, size_t n);

/* Prints to stderr
 *   "PROG: unknown option --traget; did you mean --target?"
 *   "Try 'PROG --help' for more."
 * (without the suggestion when nothing is near). cands are full option
 * spellings ("--target"). help_cmd names what to run for help
 * ("omsctl create --help"); NULL: "PROG --help". */
void oms_cli_unknown(const char *prog, const char *arg, const char *const *cands, size_t n,
                     const char *help_cmd);

/* The same, for getopt_long's table (terminated by a zero entry): arg is
 * argv[optind - 1] as getopt_long left it. */
void oms_cli_unknown_getopt(const char *prog, const char *arg, const struct option *longopts);

/* "0.1.0", and the git commit the build came from ("a1b2c3d", "a1b2c3d-dirty",
 * or "unknown" outside a git checkout); both baked in at build time. */
const char *oms_version(void);
const char *oms_commit(void);

/* Prints "PROG VERSION (commit COMMIT)\n" to f. */
void oms_cli_print_version(FILE *f, const char *prog);

#endif
