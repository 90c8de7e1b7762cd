/* cli_token.c - --token, --token-file, $OMS_TOKEN (cli_token.h). */
#include "base/cli_token.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TOKEN_MAX (64u << 10)

static bool printable(const char *s)
{
    for (; *s; s++)
        if (*s < 0x20 || *s > 0x7e)
            return false;
    return true;
}

/* The file's contents, whitespace trimmed at both ends; NULL with err set. */
static char *read_token_file(const char *file, char *err, size_t errlen)
{
    FILE *f = fopen(file, "r");
    if (!f) {
        snprintf(err, errlen, "--token-file %s: %s", file, strerror(errno));
        return NULL;
    }
    char *buf = malloc(TOKEN_MAX + 1);
    size_t n = buf ? fread(buf, 1, TOKEN_MAX + 1, f) : 0;
    bool bad = !buf || ferror(f);
    fclose(f);
    if (bad || n > TOKEN_MAX) {
        snprintf(err, errlen, "--token-file %s: %s", file,
                 !buf  ? "out of memory"
                 : bad ? "read error"
                       : "larger than 64 KiB");
        free(buf);
        return NULL;
    }
    buf[n] = '\0';
    size_t start = 0;
    while (n > 0 && strchr(" \t\r\n", buf[n - 1]))
        buf[--n] = '\0';
    while (start < n && strchr(" \t\r\n", buf[start]))
        start++;
    memmove(buf, buf + start, n - start + 1);
    if (!*buf) {
        snprintf(err, errlen, "--token-file %s: empty", file);
        free(buf);
        return NULL;
    }
    return buf;
}

int oms_cli_token(const char *token, const char *file, char **out, char *err, size_t errlen)
{
    *out = NULL;
    if (token && file) {
        snprintf(err, errlen, "give --token or --token-file, not both");
        return -1;
    }
    const char *what = token ? "--token" : file ? "--token-file" : "$OMS_TOKEN";
    char *t = NULL;
    if (file) {
        if (!(t = read_token_file(file, err, errlen)))
            return -1;
    } else {
        const char *env = getenv("OMS_TOKEN");
        const char *v = token ? token : env && *env ? env : NULL;
        if (!v)
            return 0;
        if (!(t = strdup(v))) {
            snprintf(err, errlen, "out of memory");
            return -1;
        }
    }
    if (!*t || !printable(t)) {
        snprintf(err, errlen, "%s: %s", what,
                 *t ? "the token must be printable ASCII (a header value)" : "empty token");
        free(t);
        return -1;
    }
    *out = t;
    return 0;
}
