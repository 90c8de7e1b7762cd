/* utf8.c - proto3 string checks on the wire bytes of a message.
 *
 * protobuf-c accepts any bytes in a `string` field and hands them over as a
 * NUL-terminated char *, so a string with an embedded NUL arrives cut short
 * and invalid UTF-8 arrives as it is. proto3 says strings are UTF-8 (grpc-go's
 * codec refuses the message otherwise), and a cut string lets "c-1\0evil"
 * pass for "c-1". So the rpc layer walks each decoded message's wire bytes
 * once, driven by its descriptor, and checks every string field there, before
 * any handler sees the message.
 */
#include <stdio.h>
#include <string.h>

#include "rpc/rpc_int.h"

/* Deeper nesting is refused (grpc's default recursion limit is 100). */
#define MAX_DEPTH 100

/* Descriptors remembered while looking for strings; past this the answer is
 * a conservative "yes". */
#define MAX_SEEN 64

rpc_utf8_result rpc__utf8_check(const uint8_t *s, size_t n)
{
    size_t i = 0;
    while (i < n) {
        /* ASCII without NUL, 8 bytes at a time: no high bit, no zero byte. */
        while (n - i >= 8) {
            uint64_t w;
            memcpy(&w, s + i, 8);
            const uint64_t hi = 0x8080808080808080ull, lo = 0x0101010101010101ull;
            if ((w & hi) || ((w - lo) & ~w & hi))
                break;
            i += 8;
        }
        if (i >= n)
            break;
        uint8_t c = s[i];
        if (c < 0x80) {
            if (c == 0)
                return RPC_UTF8_NUL;
            i++;
            continue;
        }
        /* Unicode 15, table 3-7: the well-formed byte sequences. The second
         * byte's range excludes overlongs (E0 80..9F, F0 80..8F), surrogates
         * (ED A0..BF) and code points past U+10FFFF (F4 90..). */
        size_t more;
        uint8_t lo2 = 0x80, hi2 = 0xBF;
        if (c >= 0xC2 && c <= 0xDF) {
            more = 1;
        } else if (c >= 0xE0 && c <= 0xEF) {
            more = 2;
            if (c == 0xE0)
                lo2 = 0xA0;
            else if (c == 0xED)
                hi2 = 0x9F;
        } else if (c >= 0xF0 && c <= 0xF4) {
            more = 3;
            if (c == 0xF0)
                lo2 = 0x90;
            else if (c == 0xF4)
                hi2 = 0x8F;
        } else {
            return RPC_UTF8_INVALID; /* 80..C1 (continuation, overlong lead), F5..FF */
        }
        if (n - i - 1 < more)
            return RPC_UTF8_INVALID; /* truncated */
        if (s[i + 1] < lo2 || s[i + 1] > hi2)
            return RPC_UTF8_INVALID;
        for (size_t k = 2; k <= more; k++)
            if ((s[i + k] & 0xC0) != 0x80)
                return RPC_UTF8_INVALID;
        i += more + 1;
    }
    return RPC_UTF8_OK;
}

bool rpc_string_ok(const void *s, size_t n)
{
    return rpc__utf8_check(s, n) == RPC_UTF8_OK;
}

/* Depth-first over message fields, each descriptor once. */
static bool has_strings(const ProtobufCMessageDescriptor *d,
                        const ProtobufCMessageDescriptor **seen, size_t *nseen)
{
    for (size_t k = 0; k < *nseen; k++)
        if (seen[k] == d)
            return false; /* being (or already) looked at: answered there */
    if (*nseen == MAX_SEEN)
        return true;
    seen[(*nseen)++] = d;
    for (unsigned i = 0; i < d->n_fields; i++)
        if (d->fields[i].type == PROTOBUF_C_TYPE_STRING)
            return true;
    for (unsigned i = 0; i < d->n_fields; i++)
        if (d->fields[i].type == PROTOBUF_C_TYPE_MESSAGE &&
            has_strings(d->fields[i].descriptor, seen, nseen))
            return true;
    return false;
}

bool rpc__desc_has_strings(const ProtobufCMessageDescriptor *d)
{
    const ProtobufCMessageDescriptor *seen[MAX_SEEN];
    size_t nseen = 0;
    return d && has_strings(d, seen, &nseen);
}

static bool read_varint(const uint8_t *p, size_t n, size_t *i, uint64_t *v)
{
    if (*i < n && p[*i] < 0x80) { /* tags and short lengths: one byte */
        *v = p[(*i)++];
        return true;
    }
    uint64_t x = 0;
    for (unsigned shift = 0; shift < 64 && *i < n; shift += 7) {
        uint8_t b = p[(*i)++];
        x |= (uint64_t)(b & 0x7F) << shift;
        if (!(b & 0x80)) {
            *v = x;
            return true;
        }
    }
    return false;
}

/* Skips one field's value of wire type wt; for length-delimited values *len
 * and *at get the value's length and offset. */
static bool skip_value(const uint8_t *p, size_t n, size_t *i, unsigned wt, size_t *at, size_t *len)
{
    uint64_t v;
    switch (wt) {
    case 0: /* varint */
        return read_varint(p, n, i, &v);
    case 1: /* 64-bit */
        if (n - *i < 8)
            return false;
        *i += 8;
        return true;
    case 5: /* 32-bit */
        if (n - *i < 4)
            return false;
        *i += 4;
        return true;
    case 2: /* length-delimited */
        if (!read_varint(p, n, i, &v) || v > n - *i)
            return false;
        *at = *i;
        *len = (size_t)v;
        *i += (size_t)v;
        return true;
    default: /* groups (3, 4) are not proto3, and protobuf-c refuses them */
        return false;
    }
}

/* How many occurrences of field number num end before offset end: the
 * index to name in a path ("lines[2]"). Only run once a string was refused. */
static size_t occurrences_before(const uint8_t *p, size_t end, uint32_t num)
{
    size_t i = 0, count = 0, at, len;
    uint64_t tag;
    while (i < end && read_varint(p, end, &i, &tag) &&
           skip_value(p, end, &i, (unsigned)(tag & 7), &at, &len))
        if ((tag >> 3) == num)
            count++;
    return count;
}

/* Puts "name" or "name[k]" in front of the path already in why (built from
 * the innermost field outwards). */
static void prepend(char *why, size_t whylen, const ProtobufCFieldDescriptor *f, size_t index,
                    bool nested)
{
    char head[128];
    int hn;
    if (f->label == PROTOBUF_C_LABEL_REPEATED)
        hn = snprintf(head, sizeof head, "%s[%zu]%s", f->name, index, nested ? "." : "");
    else
        hn = snprintf(head, sizeof head, "%s%s", f->name, nested ? "." : "");
    if (hn < 0 || whylen == 0)
        return;
    size_t h = (size_t)hn < sizeof head ? (size_t)hn : sizeof head - 1;
    size_t cur = strnlen(why, whylen - 1);
    if (h >= whylen - 1)
        h = whylen - 1;
    size_t keep = cur + h < whylen - 1 ? cur : whylen - 1 - h;
    memmove(why + h, why, keep);
    memcpy(why, head, h);
    why[h + keep] = '\0';
}

/* The field numbered num. Fields usually arrive in the order of d->fields
 * (number order), a repeated one several times in a row, so the one after the
 * last found (*hint) and the last found itself are tried before protobuf-c's
 * search. */
static const ProtobufCFieldDescriptor *find_field(const ProtobufCMessageDescriptor *d, uint32_t num,
                                                  unsigned *hint)
{
    unsigned h = *hint;
    if (h < d->n_fields && d->fields[h].id == num) {
        *hint = h + 1;
        return &d->fields[h];
    }
    if (h > 0 && d->fields[h - 1].id == num)
        return &d->fields[h - 1];
    const ProtobufCFieldDescriptor *f = protobuf_c_message_descriptor_get_field(d, num);
    if (f)
        *hint = (unsigned)(f - d->fields) + 1;
    return f;
}

/* A varint at *p (before end) into *v, *p moved past it; false if it runs
 * past end or past 10 bytes. Inline: walk reads two per field. */
static inline bool next_varint(const uint8_t **p, const uint8_t *end, uint64_t *v)
{
    const uint8_t *q = *p;
    if (q < end && *q < 0x80) { /* tags and short lengths: one byte */
        *v = *q;
        *p = q + 1;
        return true;
    }
    uint64_t x = 0;
    for (unsigned shift = 0; shift < 64 && q < end; shift += 7) {
        uint8_t b = *q++;
        x |= (uint64_t)(b & 0x7F) << shift;
        if (!(b & 0x80)) {
            *v = x;
            *p = q;
            return true;
        }
    }
    return false;
}

static int walk(const ProtobufCMessageDescriptor *d, const uint8_t *p, size_t n, int depth,
                char *why, size_t whylen)
{
    if (depth > MAX_DEPTH) {
        snprintf(why, whylen, "message nested more than %d deep", MAX_DEPTH);
        return RPC_STRINGS_MALFORMED;
    }
    const uint8_t *q = p, *end = p + n;
    unsigned hint = 0;
    while (q < end) {
        uint64_t tag, v;
        const uint8_t *field_start = q;
        if (!next_varint(&q, end, &tag))
            goto malformed;
        switch (tag & 7) {
        case 0: /* varint */
            if (!next_varint(&q, end, &v))
                goto malformed;
            continue;
        case 1: /* 64-bit */
            if (end - q < 8)
                goto malformed;
            q += 8;
            continue;
        case 5: /* 32-bit */
            if (end - q < 4)
                goto malformed;
            q += 4;
            continue;
        case 2: /* length-delimited: below */
            break;
        default: /* groups (3, 4) are not proto3, and protobuf-c refuses them */
            goto malformed;
        }
        if (!next_varint(&q, end, &v) || v > (uint64_t)(end - q))
            goto malformed;
        const uint8_t *at = q;
        size_t len = (size_t)v;
        q += len;
        uint32_t num = (uint32_t)(tag >> 3);
        const ProtobufCFieldDescriptor *f = find_field(d, num, &hint);
        if (!f)
            continue; /* unknown field: kept as bytes, never a string to us */
        if (f->type == PROTOBUF_C_TYPE_STRING) {
            rpc_utf8_result r = rpc__utf8_check(at, len);
            if (r == RPC_UTF8_OK)
                continue;
            snprintf(why, whylen, "%s", r == RPC_UTF8_NUL ? ": contains NUL" : ": invalid UTF-8");
            prepend(why, whylen, f, occurrences_before(p, (size_t)(field_start - p), num), false);
            return RPC_STRINGS_BAD;
        }
        if (f->type == PROTOBUF_C_TYPE_MESSAGE) {
            int rv = walk(f->descriptor, at, len, depth + 1, why, whylen);
            if (rv == RPC_STRINGS_BAD)
                prepend(why, whylen, f, occurrences_before(p, (size_t)(field_start - p), num),
                        true);
            if (rv != 0)
                return rv;
        }
    }
    return 0;
malformed:
    snprintf(why, whylen, "malformed message");
    return RPC_STRINGS_MALFORMED;
}

int rpc__check_strings(const ProtobufCMessageDescriptor *d, const uint8_t *p, size_t n, char *why,
                       size_t whylen)
{
    if (whylen)
        why[0] = '\0';
    return walk(d, p, n, 0, why, whylen);
}
