/* cli.c - unknown options with a suggestion, value parsers and the
 * table-driven option parser (cli.h). */
#include "base/cli.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* Edit distance of a[0..al) and b[0..bl), counting a swap of neighbours as
 * one edit (optimal string alignment: "--kye" is one from "--key"). The
 * inputs are option names, so three short rows on the stack do. */
static size_t distance(const char *a, size_t al, const char *b, size_t bl)
{
    enum { MAX = 64 };
    if (al > MAX || bl > MAX)
        return (size_t)-1;
    size_t pp[MAX + 1], prev[MAX + 1], cur[MAX + 1];
    for (size_t j = 0; j <= bl; j++)
        prev[j] = j;
    for (size_t i = 1; i <= al; i++) {
        cur[0] = i;
        for (size_t j = 1; j <= bl; j++) {
            size_t best = prev[j - 1] + (a[i - 1] != b[j - 1]);
            if (prev[j] + 1 < best)
                best = prev[j] + 1;
            if (cur[j - 1] + 1 < best)
                best = cur[j - 1] + 1;
            if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] &&
                pp[j - 2] + 1 < best)
                best = pp[j - 2] + 1;
            cur[j] = best;
        }
        memcpy(pp, prev, (bl + 1) * sizeof *pp);
        memcpy(prev, cur, (bl + 1) * sizeof *prev);
    }
    return prev[bl];
}

const char *oms_cli_suggest(const char *word, const char *const *cands, size_t n)
{
    size_t wl = strcspn(word, "=");
    const char *best = NULL;
    size_t bestd = (size_t)-1;
    for (size_t i = 0; i < n; i++) {
        size_t d = distance(word, wl, cands[i], strlen(cands[i]));
        if (d < bestd) {
            bestd = d;
            best = cands[i];
        }
    }
    /* "--" prefixes count in the length, not in the distance */
    size_t core = wl > 2 && word[0] == '-' && word[1] == '-' ? wl - 2 : wl;
    return best && bestd > 0 && bestd <= 2 && bestd * 2 < core ? best : NULL;
}

void oms_cli_unknown(const char *prog, const char *arg, const char *const *cands, size_t n,
                     const char *help_cmd)
{
    const char *s = oms_cli_suggest(arg, cands, n);
    int al = (int)strcspn(arg, "=");
    if (s)
        fprintf(stderr, "%s: unknown option %.*s; did you mean %s?\n", prog, al, arg, s);
    else
        fprintf(stderr, "%s: unknown option %.*s\n", prog, al, arg);
    if (help_cmd)
        fprintf(stderr, "Try '%s' for more.\n", help_cmd);
    else
        fprintf(stderr, "Try '%s --help' for more.\n", prog);
}

void oms_cli_unknown_getopt(const char *prog, const char *arg, const struct option *longopts)
{
    size_t n = 0;
    while (longopts[n].name)
        n++;
    char **cands = calloc(n ? n : 1, sizeof *cands);
    size_t k = 0;
    for (size_t i = 0; cands && i < n; i++) {
        size_t l = strlen(longopts[i].name);
        if ((cands[k] = malloc(l + 3)) == NULL)
            break;
        memcpy(cands[k], "--", 2);
        memcpy(cands[k] + 2, longopts[i].name, l + 1);
        k++;
    }
    oms_cli_unknown(prog, arg, (const char *const *)cands, k, NULL);
    for (size_t i = 0; i < k; i++)
        free(cands[i]);
    free(cands);
}

void oms_cli_print_version(FILE *f, const char *prog)
{
    fprintf(f, "%s %s (commit %s)\n", prog, oms_version(), oms_commit());
}

/* --- values --------------------------------------------------------------- */

static bool is_digit(char c)
{
    return c >= '0' && c <= '9';
}

/* The decimal digits at s[0..) into *v (no sign, no blanks: strtoull would
 * take both); *end after them. -1 on no digits or overflow. */
static int digits(const char *s, uint64_t *v, const char **end)
{
    if (!is_digit(*s))
        return -1;
    uint64_t n = 0;
    for (; is_digit(*s); s++) {
        unsigned d = (unsigned)(*s - '0');
        if (n > (UINT64_MAX - d) / 10)
            return -1;
        n = n * 10 + d;
    }
    *v = n;
    *end = s;
    return 0;
}

int oms_cli_u64(const char *s, uint64_t min, uint64_t max, uint64_t *out)
{
    uint64_t v;
    const char *end;
    if (digits(s, &v, &end) != 0 || *end || v < min || v > max)
        return -1;
    *out = v;
    return 0;
}

/* A decimal number (digits, one '.', an exponent) at s[0..): strtod alone
 * would also take blanks, signs, hex, "inf" and "nan". *end after it. */
static int number(const char *s, double *v, const char **end)
{
    if (!is_digit(s[0]) && !(s[0] == '.' && is_digit(s[1])))
        return -1;
    size_t n = strspn(s, "0123456789.");
    if ((s[n] == 'e' || s[n] == 'E') &&
        (is_digit(s[n + 1]) || ((s[n + 1] == '-' || s[n + 1] == '+') && is_digit(s[n + 2]))))
        n += 2 + strspn(s + n + 2, "0123456789");
    char *e;
    errno = 0;
    double d = strtod(s, &e);
    if (errno || e != s + n || !isfinite(d))
        return -1;
    *v = d;
    *end = e;
    return 0;
}

int oms_cli_double(const char *s, double min, double max, double *out)
{
    double v;
    const char *end;
    if (number(s, &v, &end) != 0 || *end || !(v >= min && v <= max))
        return -1;
    *out = v;
    return 0;
}

int oms_cli_size(const char *s, uint64_t min, uint64_t max, uint64_t *out)
{
    uint64_t v;
    const char *end;
    if (digits(s, &v, &end) != 0)
        return -1;
    unsigned shift = 0;
    switch (*end) {
    case '\0':
        break;
    case 'k':
    case 'K':
        shift = 10;
        break;
    case 'm':
    case 'M':
        shift = 20;
        break;
    case 'g':
    case 'G':
        shift = 30;
        break;
    default:
        return -1;
    }
    if (shift && *++end)
        return -1;
    if (v > (UINT64_MAX >> shift))
        return -1;
    v <<= shift;
    if (v < min || v > max)
        return -1;
    *out = v;
    return 0;
}

int oms_cli_duration_ms(const char *s, uint64_t unit_ms, uint64_t min_ms, uint64_t max_ms,
                        uint64_t *out)
{
    static const struct {
        const char *name;
        double ms;
    } units[] = {{"ms", 1}, {"s", 1e3}, {"m", 60e3}, {"h", 3600e3}, {"d", 86400e3}};
    double v;
    const char *end;
    if (number(s, &v, &end) != 0)
        return -1;
    double unit = (double)unit_ms;
    if (*end) {
        size_t i = 0;
        while (i < sizeof units / sizeof units[0] && strcmp(end, units[i].name) != 0)
            i++;
        if (i == sizeof units / sizeof units[0])
            return -1;
        unit = units[i].ms;
    }
    double ms = v * unit;
    /* compared as doubles first: a huge value must not wrap in the cast */
    if (!(ms >= (double)min_ms && ms <= (double)max_ms))
        return -1;
    uint64_t r = (uint64_t)ms;
    if (r < min_ms || r > max_ms)
        return -1;
    *out = r;
    return 0;
}

int oms_cli_hostport(const char *s, unsigned flags, char *host, size_t hostsz, int *port)
{
    const char *h = s;
    const char *colon;
    size_t hl;
    if (s[0] == '[') {
        const char *close = strchr(s, ']');
        if (!close || close[1] != ':')
            return -1;
        h = s + 1;
        hl = (size_t)(close - h);
        colon = close + 1;
        if (memchr(h, '[', hl))
            return -1;
    } else {
        colon = strrchr(s, ':');
        if (!colon || memchr(s, ':', (size_t)(colon - s)) || memchr(s, ']', (size_t)(colon - s)))
            return -1; /* no port, or an IPv6 address without brackets */
        hl = (size_t)(colon - s);
    }
    for (size_t i = 0; i < hl; i++)
        if ((unsigned char)h[i] <= ' ' || (unsigned char)h[i] >= 0x7f || h[i] == ',' || h[i] == '/')
            return -1; /* blanks, control bytes, a list or a URL are no host */
    uint64_t p;
    if (hl == 0 || hl >= hostsz ||
        oms_cli_u64(colon + 1, flags & OMS_CLI_PORT0 ? 0 : 1, 65535, &p) != 0)
        return -1;
    memcpy(host, h, hl);
    host[hl] = '\0';
    *port = (int)p;
    return 0;
}

int oms_cli_targets(const char *s)
{
    int n = 0;
    for (;;) {
        size_t len = strcspn(s, ",");
        char one[300], host[256];
        int port;
        if (len == 0 || len >= sizeof one)
            return -1;
        memcpy(one, s, len);
        one[len] = '\0';
        if (oms_cli_hostport(one, 0, host, sizeof host, &port) != 0)
            return -1;
        n++;
        if (!s[len])
            return n;
        s += len + 1;
    }
}

int oms_cli_bad_value(const char *prog, const char *flag, const char *want, const char *arg)
{
    fprintf(stderr, "%s: %s wants %s, got '%s'\n", prog, flag, want, arg);
    return -1;
}

/* --- option tables -------------------------------------------------------- */

enum { OPT_BASE = 256, OPT_HELP = 'h', OPT_VERSION = 1 };

/* "MIN..MAX[ unit]" for an option without its own want text. */
static void default_want(const oms_cli_opt *o, char *buf, size_t n)
{
    switch (o->type) {
    case OMS_CLI_U64:
        snprintf(buf, n, "%llu..%llu", (unsigned long long)o->min, (unsigned long long)o->max);
        break;
    case OMS_CLI_SIZE:
        snprintf(buf, n, "%llu..%llu bytes", (unsigned long long)o->min,
                 (unsigned long long)o->max);
        break;
    case OMS_CLI_DOUBLE:
        snprintf(buf, n, "%g..%g", o->fmin, o->fmax);
        break;
    default:
        snprintf(buf, n, "a value");
        break;
    }
}

/* Stores arg through o's type; 0, -1 bad value, -2 already reported. */
static int apply(const oms_cli_opt *o, const char *arg, void *ctx)
{
    int rc = 0;
    switch (o->type) {
    case OMS_CLI_FLAG:
        if (o->dest)
            *(bool *)o->dest = true;
        break;
    case OMS_CLI_STRING:
        if (o->dest)
            *(const char **)o->dest = arg;
        break;
    case OMS_CLI_U64:
        rc = oms_cli_u64(arg, o->min, o->max, (uint64_t *)o->dest);
        break;
    case OMS_CLI_SIZE:
        rc = oms_cli_size(arg, o->min, o->max, (uint64_t *)o->dest);
        break;
    case OMS_CLI_DOUBLE:
        rc = oms_cli_double(arg, o->fmin, o->fmax, (double *)o->dest);
        break;
    case OMS_CLI_CALL:
    case OMS_CLI_SECTION:
        break;
    }
    if (rc == 0 && o->fn)
        rc = o->fn(o, arg, ctx);
    return rc;
}

/* The message of a bad value: "--name wants WANT, got 'ARG'". */
static void bad_value_msg(const oms_cli_opt *o, const char *flag, const char *arg, char *msg,
                          size_t n)
{
    char want[96];
    if (!o->want)
        default_want(o, want, sizeof want);
    snprintf(msg, n, "%s wants %s, got '%s'", flag, o->want ? o->want : want, arg ? arg : "");
}

int oms_cli_match(const oms_cli_opt *opts, size_t n, int argc, char **argv, int *i, void *ctx,
                  char *msg, size_t msgsz)
{
    const char *a = argv[*i];
    if (msgsz)
        msg[0] = '\0';
    if (a[0] != '-' || a[1] != '-')
        return 0;
    for (size_t k = 0; k < n; k++) {
        const oms_cli_opt *o = &opts[k];
        if (o->type == OMS_CLI_SECTION || !o->name)
            continue;
        size_t l = strlen(o->name);
        if (strncmp(a + 2, o->name, l) != 0 || (a[2 + l] != '\0' && a[2 + l] != '='))
            continue;
        const char *v = NULL;
        if (!o->arg) {
            if (a[2 + l] == '=') {
                snprintf(msg, msgsz, "--%s takes no value", o->name);
                return -1;
            }
        } else if (a[2 + l] == '=') {
            v = a + 3 + l;
        } else if (*i + 1 < argc) {
            v = argv[++*i];
        } else {
            snprintf(msg, msgsz, "--%s needs a value", o->name);
            return -1;
        }
        int r = apply(o, v, ctx);
        if (r == -1) {
            char flag[80];
            snprintf(flag, sizeof flag, "--%s", o->name);
            bad_value_msg(o, flag, v, msg, msgsz);
        }
        return r == 0 ? 1 : -1;
    }
    return 0;
}

int oms_cli_parse(const oms_cli_spec *spec, int argc, char **argv, void *ctx, int *first)
{
    size_t n = spec->nopts;
    struct option *longopts = calloc(n + 3, sizeof *longopts);
    char *shorts = malloc(2 * n + 5);
    if (!longopts || !shorts) {
        free(longopts);
        free(shorts);
        fprintf(stderr, "%s: out of memory\n", spec->prog);
        return -1;
    }
    size_t k = 0, sk = 0;
    if (spec->operands)
        shorts[sk++] = '+'; /* stop at the first operand (a command and its own flags) */
    shorts[sk++] = ':';     /* report a missing value as ':', and print nothing */
    shorts[sk++] = 'h';
    for (size_t i = 0; i < n; i++) {
        const oms_cli_opt *o = &spec->opts[i];
        if (o->type == OMS_CLI_SECTION || !o->name)
            continue;
        longopts[k++] = (struct option){o->name, o->arg ? required_argument : no_argument, NULL,
                                        OPT_BASE + (int)i};
        if (o->short_name) {
            shorts[sk++] = o->short_name;
            if (o->arg)
                shorts[sk++] = ':';
        }
    }
    shorts[sk] = '\0';
    longopts[k++] = (struct option){"version", no_argument, NULL, OPT_VERSION};
    longopts[k++] = (struct option){"help", no_argument, NULL, OPT_HELP};

    int rc = 0, ch;
    opterr = 0;
    optind = 0; /* glibc: start over (a second parse, the tests) */
    while (rc == 0 && (ch = getopt_long(argc, argv, shorts, longopts, NULL)) != -1) {
        const oms_cli_opt *o = NULL;
        if (ch >= OPT_BASE && ch < OPT_BASE + (int)n) {
            o = &spec->opts[ch - OPT_BASE];
        } else if (ch != OPT_HELP && ch != OPT_VERSION && ch != ':' && ch != '?') {
            for (size_t i = 0; i < n && !o; i++)
                if (spec->opts[i].type != OMS_CLI_SECTION && spec->opts[i].short_name == ch)
                    o = &spec->opts[i];
        }
        if (o) {
            int r = apply(o, o->arg ? optarg : NULL, ctx);
            if (r == -1) {
                char flag[80], msg[512];
                if (argv[optind - 1][0] == '-' && argv[optind - 1][1] != '-' && o->short_name)
                    snprintf(flag, sizeof flag, "-%c", o->short_name);
                else
                    snprintf(flag, sizeof flag, "--%s", o->name);
                bad_value_msg(o, flag, optarg, msg, sizeof msg);
                fprintf(stderr, "%s: %s\n", spec->prog, msg);
            }
            if (r != 0)
                rc = -1;
            continue;
        }
        switch (ch) {
        case OPT_HELP:
            oms_cli_help(spec, stdout);
            rc = 1;
            break;
        case OPT_VERSION:
            oms_cli_print_version(stdout, spec->prog);
            rc = 1;
            break;
        case ':':
            fprintf(stderr, "%s: %s needs a value (see --help)\n", spec->prog, argv[optind - 1]);
            rc = -1;
            break;
        default:
            oms_cli_unknown_getopt(spec->prog, argv[optind - 1], longopts);
            rc = -1;
            break;
        }
    }
    free(longopts);
    free(shorts);
    if (rc != 0)
        return rc;
    if (optind < argc && !spec->operands) {
        fprintf(stderr, "%s: unexpected argument '%s' (see --help)\n", spec->prog, argv[optind]);
        return -1;
    }
    if (first)
        *first = optind;
    return 0;
}

/* One entry: the left column, then the help's lines at col. */
static void help_entry(FILE *f, int col, const char *left, const char *help)
{
    int w = fprintf(f, "%s", left);
    if (w > col - 2)
        w += fprintf(f, "  ");
    for (bool firstline = true; *help || firstline; firstline = false) {
        size_t len = strcspn(help, "\n");
        if (!firstline)
            w = 0;
        fprintf(f, "%*s%.*s\n", w < col ? col - w : 0, "", (int)len, help);
        help += len;
        if (*help == '\n')
            help++;
    }
}

void oms_cli_help_opts(FILE *f, const oms_cli_opt *opts, size_t n, int col)
{
    for (size_t i = 0; i < n; i++) {
        const oms_cli_opt *o = &opts[i];
        if (!o->help)
            continue;
        if (o->type == OMS_CLI_SECTION || !o->name) {
            fprintf(f, "%s\n", o->help);
            continue;
        }
        char left[128], sh[8] = "";
        if (o->short_name)
            snprintf(sh, sizeof sh, "-%c, ", o->short_name);
        snprintf(left, sizeof left, "  %s--%s%s%s", sh, o->name, o->arg ? " " : "",
                 o->arg ? o->arg : "");
        help_entry(f, col, left, o->help);
    }
}

void oms_cli_help(const oms_cli_spec *spec, FILE *f)
{
    int col = spec->help_col > 0 ? spec->help_col : 25;
    fputs(spec->usage, f);
    oms_cli_help_opts(f, spec->opts, spec->nopts, col);
    help_entry(f, col, "  -h, --help", spec->help_text ? spec->help_text : "show this help");
    help_entry(f, col, "  --version", "print the version and git commit");
    if (spec->epilog)
        fputs(spec->epilog, f);
    if (spec->more)
        spec->more(f);
}
