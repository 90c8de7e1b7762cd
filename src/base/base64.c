/* base64.c - see base64.h. Written out rather than OpenSSL's EVP_*Block: those
 * know one alphabet, always pad and skip whitespace, and base sits below the
 * layers that may use OpenSSL. */
#include "base/base64.h"

static const char STD[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
static const char URL[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

size_t oms_base64_encoded_len(size_t n, unsigned flags)
{
    if (flags & OMS_B64_NOPAD)
        return n / 3 * 4 + (n % 3 ? n % 3 + 1 : 0);
    return (n + 2) / 3 * 4;
}

size_t oms_base64_encode(const uint8_t *in, size_t n, char *out, unsigned flags)
{
    const char *a = flags & OMS_B64_URL ? URL : STD;
    char *o = out;
    size_t i = 0;
    for (; n - i >= 3; i += 3) {
        uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8 | in[i + 2];
        *o++ = a[v >> 18];
        *o++ = a[v >> 12 & 63];
        *o++ = a[v >> 6 & 63];
        *o++ = a[v & 63];
    }
    if (n - i > 0) {
        uint32_t v = (uint32_t)in[i] << 16 | (n - i == 2 ? (uint32_t)in[i + 1] << 8 : 0);
        *o++ = a[v >> 18];
        *o++ = a[v >> 12 & 63];
        if (n - i == 2)
            *o++ = a[v >> 6 & 63];
        if (!(flags & OMS_B64_NOPAD)) {
            if (n - i == 1)
                *o++ = '=';
            *o++ = '=';
        }
    }
    return (size_t)(o - out);
}

size_t oms_base64_decoded_max(size_t len)
{
    return len / 4 * 3 + 3;
}

/* 0..63; -1 outside both alphabets. *alpha: 1 standard-only character,
 * 2 URL-only, 0 common to both. */
static int value(unsigned char c, int *alpha)
{
    *alpha = 0;
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '+' || c == '/')
        return *alpha = 1, c == '+' ? 62 : 63;
    if (c == '-' || c == '_')
        return *alpha = 2, c == '-' ? 62 : 63;
    return -1;
}

long oms_base64_decode(const char *in, size_t len, uint8_t *out, unsigned flags)
{
    size_t pad = 0;
    while (pad < 2 && len > pad && in[len - 1 - pad] == '=')
        pad++;
    if (pad > 0 && ((flags & OMS_B64_NOPAD) || len % 4 != 0))
        return -1;
    size_t n = len - pad;
    if (n % 4 == 1)
        return -1; /* 6 bits cannot end a byte */
    int want = flags & OMS_B64_ANY ? 0 : flags & OMS_B64_URL ? 2 : 1, seen = 0;
    uint8_t *o = out;
    uint32_t acc = 0;
    int bits = 0;
    for (size_t i = 0; i < n; i++) {
        int alpha, v = value((unsigned char)in[i], &alpha);
        if (v < 0)
            return -1;
        if (alpha) {
            if ((want && alpha != want) || (seen && alpha != seen))
                return -1; /* the other alphabet, or both mixed */
            seen = alpha;
        }
        acc = (acc << 6 | (uint32_t)v) & 0xFFFFFF;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            *o++ = (uint8_t)(acc >> bits);
        }
    }
    if ((flags & OMS_B64_STRICT) && bits > 0 && (acc & ((1u << bits) - 1)) != 0)
        return -1;
    return (long)(o - out);
}
