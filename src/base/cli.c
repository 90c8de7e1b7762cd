/* cli.c - unknown options with a suggestion (cli.h). */
#include "base/cli.h"

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
