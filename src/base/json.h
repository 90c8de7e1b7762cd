/* json.h - building one JSON object into a caller's buffer, for log lines.
 *
 * Strings may hold any bytes (method paths and peers come from the wire):
 * '"' and '\\' are escaped, control characters become \n, \t, \r, \b, \f or
 * \u00XX, DEL becomes \u007f, and bytes that are not well-formed UTF-8
 * (overlong forms, surrogates, code points past U+10FFFF, truncated
 * sequences) become \ufffd, one per maximal bad subpart. The output is always
 * valid JSON and valid UTF-8. Nothing is allocated.
 */
#ifndef OMS_BASE_JSON_H
#define OMS_BASE_JSON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct oms_json {
    char *buf;
    size_t cap; /* bytes of buf */
    size_t len; /* bytes written, without the NUL */
    bool full;  /* something did not fit: the object was cut short */
    bool first; /* no member yet */
} oms_json;

/* Escapes n bytes of s (no quotes added) into out, at most cap - 1 bytes and
 * a NUL, never cutting an escape in two. Returns the bytes written; *cut (if
 * not NULL) says whether the input did not fit. */
size_t oms_json_escape(char *out, size_t cap, const void *s, size_t n, bool *cut);

/* Starts an object "{" in buf (cap bytes, at least 2). */
void oms_json_begin(oms_json *j, char *buf, size_t cap);
/* "key":"value" with n bytes of v escaped; v NULL: null. */
void oms_json_str(oms_json *j, const char *key, const void *v, size_t n);
/* As oms_json_str, but a value too long for the buffer is kept cut short
 * (at a character boundary) instead of left out: for the last member. */
void oms_json_str_cut(oms_json *j, const char *key, const void *v, size_t n);
/* The same for a NUL-terminated v (NULL: null). */
void oms_json_cstr(oms_json *j, const char *key, const char *v);
void oms_json_u64(oms_json *j, const char *key, uint64_t v);
/* Ends the object with "}" and a newline (room for them is kept from the
 * start, so an object cut short still closes). Returns its length. */
size_t oms_json_end(oms_json *j);

/* RFC 3339 UTC time with milliseconds ("2026-12-07T16:34:49.123Z") of a
 * CLOCK_REALTIME reading into out (at least 25 bytes). */
void oms_json_time(char *out, size_t cap, int64_t sec, long nsec);

#endif
