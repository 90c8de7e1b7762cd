/* cli.h - what every oms program's command line shares: the answer to an
 * unknown option (which one, the nearest known one, where to read more),
 * --version, the value parsers (numbers, sizes, durations, HOST:PORT and
 * target lists, with one wording for their errors), and a table-driven
 * option parser whose table also writes --help.
 */
#ifndef OMS_CLI_H
#define OMS_CLI_H

#include <getopt.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
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

/* --- values ---------------------------------------------------------------
 *
 * Each parser returns 0 with *out set, or -1 leaving *out untouched. None
 * accepts an empty string, leading or trailing blanks, a sign, or anything
 * after the number; overflow and values outside [min, max] are -1 too. */

/* A decimal integer in [min, max] ("0", "65535"; not "0x10", "1e3", "-1"). */
int oms_cli_u64(const char *s, uint64_t min, uint64_t max, uint64_t *out);

/* A decimal number, fraction and exponent allowed ("0.5", "1e8"), in
 * [min, max]; not "nan", "inf" or hex. */
int oms_cli_double(const char *s, double min, double max, double *out);

/* A byte count: a decimal integer with an optional suffix K, M or G (1024,
 * 1024^2, 1024^3; upper or lower case), in [min, max]: "4M" = 4194304. */
int oms_cli_size(const char *s, uint64_t min, uint64_t max, uint64_t *out);

/* A duration in milliseconds: a decimal number (fraction allowed) with an
 * optional unit ms, s, m, h or d; a bare number is in unit_ms milliseconds
 * (1000: seconds). The result, rounded down, must lie in [min_ms, max_ms]. */
int oms_cli_duration_ms(const char *s, uint64_t unit_ms, uint64_t min_ms, uint64_t max_ms,
                        uint64_t *out);

/* oms_cli_hostport's flags. */
enum {
    OMS_CLI_PORT0 = 1, /* port 0 is allowed (a listener: "pick a free port") */
};

/* HOST:PORT or [IPV6]:PORT. The host (brackets stripped; no blanks, control
 * bytes, commas or slashes) goes to host, of
 * size hostsz, which it must fit with its NUL; the port to *port, 1..65535
 * (0..65535 with OMS_CLI_PORT0). An IPv6 address without brackets, an empty
 * host, a missing or non-decimal port are -1. */
int oms_cli_hostport(const char *s, unsigned flags, char *host, size_t hostsz, int *port);

/* A target list: one or more HOST:PORT (as oms_cli_hostport, port 1..65535)
 * separated by commas, no empty element. Returns the number of targets, or
 * -1. */
int oms_cli_targets(const char *s);

/* What a value parser wants, for the one error wording every program uses:
 * prints "PROG: FLAG wants WANT, got 'ARG'" to stderr and returns -1. */
int oms_cli_bad_value(const char *prog, const char *flag, const char *want, const char *arg);

/* --- option tables --------------------------------------------------------
 *
 * A program describes its options as an array of oms_cli_opt; oms_cli_parse()
 * reads argv with getopt_long (so --name=value, --name value and unique
 * prefixes work as before) and oms_cli_help() prints the table. -h/--help
 * and --version are built in. */

typedef enum oms_cli_type {
    OMS_CLI_SECTION, /* not an option: help prints help verbatim on its own line(s) */
    OMS_CLI_FLAG,    /* no value: *(bool *)dest = true */
    OMS_CLI_STRING,  /* *(const char **)dest = arg (borrowed from argv) */
    OMS_CLI_U64,     /* *(uint64_t *)dest = oms_cli_u64(arg, min, max) */
    OMS_CLI_SIZE,    /* *(uint64_t *)dest = oms_cli_size(arg, min, max) */
    OMS_CLI_DOUBLE,  /* *(double *)dest = oms_cli_double(arg, fmin, fmax) */
    OMS_CLI_CALL,    /* fn(opt, arg, ctx): the option's own code */
} oms_cli_type;

typedef struct oms_cli_opt oms_cli_opt;

/* An OMS_CLI_CALL handler (also run after a typed option stored its value,
 * when set). arg is NULL for an option without a value. Returns 0, -1 for a
 * bad value (the parser prints "PROG: --NAME wants WANT, got 'ARG'"), or -2
 * when it printed its own message. */
typedef int (*oms_cli_fn)(const oms_cli_opt *opt, const char *arg, void *ctx);

struct oms_cli_opt {
    const char *name; /* "listen" for --listen; NULL only for a SECTION */
    char short_name;  /* 'c' for -c, or 0 */
    oms_cli_type type;
    const char *arg;   /* the value's name in the help ("HOST:PORT"); NULL: no value */
    void *dest;        /* where a typed option stores its value */
    uint64_t min, max; /* OMS_CLI_U64, OMS_CLI_SIZE */
    double fmin, fmax; /* OMS_CLI_DOUBLE */
    oms_cli_fn fn;
    const char *want; /* error text after "wants"; NULL: "MIN..MAX" (+ " bytes"/" seconds") */
    const char *help; /* lines separated by '\n'; NULL: not shown in the help */
};

typedef struct oms_cli_spec {
    const char *prog;      /* "omsd": the prefix of every message */
    const char *usage;     /* printed before the options (ends with "\n") */
    const char *epilog;    /* printed after them, or NULL */
    void (*more)(FILE *f); /* printed after the epilog, or NULL */
    const oms_cli_opt *opts;
    size_t nopts;
    int help_col;          /* column the help text starts in (0: 25) */
    bool operands;         /* non-option arguments are allowed */
    const char *help_text; /* the --help line (NULL: "show this help") */
} oms_cli_spec;

/* Parses argv[1..] against spec, storing through the table. ctx goes to the
 * handlers. Returns
 *   0   parsed; *first (if not NULL) = index of the first operand (argc
 *       when none; operands only when spec->operands)
 *   1   --help or --version was given and printed to stdout: exit 0
 *  -1   a usage error, already printed to stderr as "PROG: ..." (unknown
 *       option with a suggestion, a missing or bad value, an operand)
 * Uses getopt_long and resets its state (optind) first. */
int oms_cli_parse(const oms_cli_spec *spec, int argc, char **argv, void *ctx, int *first);

/* For programs whose flags may come anywhere (omsctl: before or after the
 * command): matches argv[*i] against opts' long names exactly, as "--name",
 * "--name=VALUE" or "--name VALUE", and applies it. Returns 1 when it
 * matched (*i then at the last argument used), 0 when argv[*i] is none of
 * them, -1 on a missing or bad value with the message ("--name needs a
 * value", "--name wants WANT, got 'ARG'"; a handler's -2: "") in msg. */
int oms_cli_match(const oms_cli_opt *opts, size_t n, int argc, char **argv, int *i, void *ctx,
                  char *msg, size_t msgsz);

/* Writes the entries of opts alone (as oms_cli_help does), help at col. */
void oms_cli_help_opts(FILE *f, const oms_cli_opt *opts, size_t n, int col);

/* Writes spec's usage, one entry per option ("  -h, --name ARG" then the
 * help at help_col, or two spaces after a longer left column; continuation
 * lines at help_col), -h/--help and --version, the epilog and more(). */
void oms_cli_help(const oms_cli_spec *spec, FILE *f);

#endif
