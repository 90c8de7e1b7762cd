/* json.c - JSON objects for log lines (json.h). */
#include "base/json.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

/* The sequence length a UTF-8 lead byte announces (0: not a lead byte) and
 * the bounds of its second byte (Unicode table 3-7: no overlong forms, no
 * surrogates, nothing past U+10FFFF). */
static size_t lead(uint8_t c, uint8_t *lo, uint8_t *hi)
{
    *lo = 0x80;
    *hi = 0xbf;
    if (c >= 0xc2 && c <= 0xdf)
        return 2;
    if (c >= 0xe0 && c <= 0xef) {
        if (c == 0xe0)
            *lo = 0xa0;
        else if (c == 0xed)
            *hi = 0x9f;
        return 3;
    }
    if (c >= 0xf0 && c <= 0xf4) {
        if (c == 0xf0)
            *lo = 0x90;
        else if (c == 0xf4)
            *hi = 0x8f;
        return 4;
    }
    return 0;
}

/* How many bytes at s (n >= 1 left, s[0] >= 0x80) make one well-formed
 * character (*ok) or, when they do not, the maximal subpart of a bad one:
 * the lead byte and the continuation bytes that could still have belonged
 * to it, so that "\xe2\x82" gives one U+FFFD, not two. */
static size_t utf8_seq(const uint8_t *s, size_t n, bool *ok)
{
    uint8_t lo, hi;
    size_t want = lead(s[0], &lo, &hi), k = 1;
    *ok = false;
    if (!want)
        return 1;
    while (k < want && k < n && s[k] >= (k == 1 ? lo : 0x80) && s[k] <= (k == 1 ? hi : 0xbf))
        k++;
    *ok = k == want;
    return k;
}

size_t oms_json_escape(char *out, size_t cap, const void *src, size_t n, bool *cut)
{
    const uint8_t *s = src;
    size_t o = 0, i = 0;
    if (cut)
        *cut = false;
    if (!cap)
        return 0;
    while (i < n) {
        char esc[8];
        const char *piece;
        size_t plen, used;
        uint8_t c = s[i];
        bool ok = true;
        size_t ul = c >= 0x80 ? utf8_seq(s + i, n - i, &ok) : 1;
        if (!ok) {
            piece = "\\ufffd";
            plen = 6;
            used = ul;
        } else if (ul > 1) {
            piece = (const char *)s + i;
            plen = used = ul;
        } else if (c == '"' || c == '\\') {
            esc[0] = '\\';
            esc[1] = (char)c;
            piece = esc;
            plen = 2;
            used = 1;
        } else if (c < 0x20 || c == 0x7f) {
            const char *short_esc = c == '\n'   ? "\\n"
                                    : c == '\t' ? "\\t"
                                    : c == '\r' ? "\\r"
                                    : c == '\b' ? "\\b"
                                    : c == '\f' ? "\\f"
                                                : NULL;
            if (short_esc) {
                piece = short_esc;
                plen = 2;
            } else {
                snprintf(esc, sizeof esc, "\\u%04x", c);
                piece = esc;
                plen = 6;
            }
            used = 1;
        } else {
            piece = (const char *)s + i;
            plen = used = 1;
        }
        if (o + plen > cap - 1) {
            if (cut)
                *cut = true;
            break;
        }
        memcpy(out + o, piece, plen);
        o += plen;
        i += used;
    }
    out[o] = '\0';
    return o;
}

/* Room kept for "}\n" and the NUL. */
#define TAIL 3

static void put(oms_json *j, const char *s, size_t n)
{
    if (j->full || j->len + n + TAIL > j->cap) {
        j->full = true;
        return;
    }
    memcpy(j->buf + j->len, s, n);
    j->len += n;
}

static void key(oms_json *j, const char *k)
{
    if (!j->first)
        put(j, ",", 1);
    j->first = false;
    put(j, "\"", 1);
    put(j, k, strlen(k)); /* keys are ours: plain ASCII */
    put(j, "\":", 2);
}

void oms_json_begin(oms_json *j, char *buf, size_t cap)
{
    *j = (oms_json){.buf = buf, .cap = cap, .first = true};
    if (cap >= TAIL + 1)
        put(j, "{", 1);
    else
        j->full = true;
}

static void str(oms_json *j, const char *k, const void *v, size_t n, bool keep_cut)
{
    size_t mark = j->len;
    bool first = j->first;
    key(j, k);
    if (!v) {
        put(j, "null", 4);
    } else {
        put(j, "\"", 1);
        if (!j->full) {
            bool cut;
            /* leave room for the closing quote and TAIL */
            size_t room = j->cap - j->len - TAIL;
            j->len += oms_json_escape(j->buf + j->len, room, v, n, &cut);
            if (cut && !keep_cut)
                j->full = true;
        }
        put(j, "\"", 1); /* room was kept for it */
    }
    if (j->full) { /* drop the partial member, keep the object valid */
        j->len = mark;
        j->first = first;
    }
}

void oms_json_str(oms_json *j, const char *k, const void *v, size_t n)
{
    str(j, k, v, n, false);
}

void oms_json_str_cut(oms_json *j, const char *k, const void *v, size_t n)
{
    str(j, k, v, n, true);
}

void oms_json_cstr(oms_json *j, const char *k, const char *v)
{
    oms_json_str(j, k, v, v ? strlen(v) : 0);
}

void oms_json_u64(oms_json *j, const char *k, uint64_t v)
{
    char num[24];
    int n = snprintf(num, sizeof num, "%" PRIu64, v);
    size_t mark = j->len;
    bool first = j->first;
    key(j, k);
    put(j, num, (size_t)n);
    if (j->full) {
        j->len = mark;
        j->first = first;
    }
}

size_t oms_json_end(oms_json *j)
{
    if (j->cap < TAIL + 1)
        return 0;
    memcpy(j->buf + j->len, "}\n", 3);
    j->len += 2;
    return j->len;
}

void oms_json_time(char *out, size_t cap, int64_t sec, long nsec)
{
    struct tm tm;
    time_t t = (time_t)sec;
    gmtime_r(&t, &tm);
    snprintf(out, cap, "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ", tm.tm_year + 1900, tm.tm_mon + 1,
             tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, nsec / 1000000);
}
