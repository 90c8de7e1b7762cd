/* percent.c - the percent-encoding of grpc-message (PROTOCOL-HTTP2.md,
 * "Responses": Status-Message is percent-encoded UTF-8).
 */
#include "base/alloc.h"
#include "rpc_int.h"

#include <stdlib.h>

static const char HEX[] = "0123456789ABCDEF";

/* Everything but printable ASCII needs escaping, and '%' itself so that the
 * decoder can tell an escape from a literal. */
static bool needs_escape(unsigned char c)
{
    return c < 0x20 || c > 0x7E || c == '%';
}

static int hex_value(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

char *rpc__percent_encode(const char *s, size_t len)
{
    /* The output is at most 3 * len + 1 bytes; refuse lengths where that
     * would wrap. */
    if (len > (SIZE_MAX - 1) / 3)
        return NULL;
    size_t out_len = 0;
    for (size_t i = 0; i < len; i++)
        out_len += needs_escape((unsigned char)s[i]) ? 3 : 1;
    char *out = oms_malloc(out_len + 1);
    if (out == NULL)
        return NULL;
    char *o = out;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (needs_escape(c)) {
            *o++ = '%';
            *o++ = HEX[c >> 4];
            *o++ = HEX[c & 0xF];
        } else {
            *o++ = (char)c;
        }
    }
    *o = '\0';
    return out;
}

char *rpc__percent_decode(const char *s, size_t len, size_t *out_len)
{
    if (len == SIZE_MAX)
        return NULL;
    /* Decoding never grows the text. */
    char *out = oms_malloc(len + 1);
    if (out == NULL)
        return NULL;
    size_t o = 0;
    for (size_t i = 0; i < len; i++) {
        int hi, lo;
        /* The spec asks decoders never to fail on a bad escape, so a '%'
         * without two hex digits after it is kept as it is. */
        if (s[i] == '%' && len - i >= 3 && (hi = hex_value(s[i + 1])) >= 0 &&
            (lo = hex_value(s[i + 2])) >= 0) {
            out[o++] = (char)(hi << 4 | lo);
            i += 2;
        } else {
            out[o++] = s[i];
        }
    }
    out[o] = '\0';
    if (out_len != NULL)
        *out_len = o;
    return out;
}
