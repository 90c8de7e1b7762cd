/* encode.c - a protobuf-c message to canonical proto3 JSON (pbjson.h). The
 * text is written by hand rather than through jansson: floats need the
 * shortest round-trip form and 64-bit integers strings, which a generic JSON
 * writer does not give. */
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

#include "base/alloc.h"
#include "base/base64.h"
#include "base/json.h"
#include "pbjson/pbjson_int.h"

typedef struct enc {
    char *buf;
    size_t len, cap;
    unsigned flags;
    bool failed;
    char path[256]; /* of the field being written, for errors */
    size_t plen;
    char *err;
    size_t errlen;
} enc;

static void fail(enc *e, const char *fmt, ...)
{
    if (e->failed)
        return;
    e->failed = true;
    /* A deep path keeps its end: the field that failed, and the reason. */
    size_t cut = e->plen > 120 ? e->plen - 120 : 0;
    int n = snprintf(e->err, e->errlen, "%s%s%s", cut ? "..." : "", e->path + cut,
                     e->plen ? ": " : "");
    va_list ap;
    va_start(ap, fmt);
    if (n >= 0 && (size_t)n < e->errlen)
        vsnprintf(e->err + n, e->errlen - (size_t)n, fmt, ap);
    va_end(ap);
}

static bool reserve(enc *e, size_t more)
{
    if (e->failed)
        return false;
    if (e->cap - e->len > more)
        return true;
    size_t cap = e->cap ? e->cap : 256;
    while (cap - e->len <= more) {
        if (cap > SIZE_MAX / 2) {
            fail(e, "out of memory");
            return false;
        }
        cap *= 2;
    }
    char *p = oms_realloc(e->buf, cap);
    if (!p) {
        fail(e, "out of memory");
        return false;
    }
    e->buf = p;
    e->cap = cap;
    return true;
}

static void put(enc *e, const char *s, size_t n)
{
    if (reserve(e, n)) {
        memcpy(e->buf + e->len, s, n);
        e->len += n;
        e->buf[e->len] = '\0';
    }
}

static void puts_(enc *e, const char *s)
{
    put(e, s, strlen(s));
}

static size_t path_push(enc *e, const char *fmt, ...)
{
    size_t old = e->plen;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(e->path + e->plen, sizeof e->path - e->plen, fmt, ap);
    va_end(ap);
    if (n > 0)
        e->plen = e->plen + (size_t)n < sizeof e->path ? e->plen + (size_t)n : sizeof e->path - 1;
    return old;
}

static void path_pop(enc *e, size_t old)
{
    e->plen = old;
    e->path[old] = '\0';
}

/* Well-formed UTF-8 (no overlongs, surrogates or code points past U+10FFFF). */
static bool utf8_ok(const uint8_t *s, size_t n)
{
    for (size_t i = 0; i < n;) {
        uint8_t c = s[i];
        size_t k;
        uint32_t cp;
        if (c < 0x80) {
            i++;
            continue;
        } else if (c >= 0xC2 && c <= 0xDF) {
            k = 1, cp = c & 0x1F;
        } else if (c >= 0xE0 && c <= 0xEF) {
            k = 2, cp = c & 0x0F;
        } else if (c >= 0xF0 && c <= 0xF4) {
            k = 3, cp = c & 0x07;
        } else {
            return false;
        }
        if (n - i <= k)
            return false;
        for (size_t j = 1; j <= k; j++) {
            if ((s[i + j] & 0xC0) != 0x80)
                return false;
            cp = cp << 6 | (s[i + j] & 0x3F);
        }
        if ((k == 2 && cp < 0x800) || (k == 3 && (cp < 0x10000 || cp > 0x10FFFF)) ||
            (cp >= 0xD800 && cp <= 0xDFFF))
            return false;
        i += k + 1;
    }
    return true;
}

static void put_string(enc *e, const char *s, size_t n)
{
    if (!utf8_ok((const uint8_t *)s, n)) {
        fail(e, "string is not valid UTF-8");
        return;
    }
    if (n > (SIZE_MAX - 3) / 6 || !reserve(e, n * 6 + 3)) {
        fail(e, "out of memory");
        return;
    }
    e->buf[e->len++] = '"';
    e->len += oms_json_escape(e->buf + e->len, e->cap - e->len, s, n, NULL);
    e->buf[e->len++] = '"';
    e->buf[e->len] = '\0';
}

static void put_double(enc *e, double v, bool is_float)
{
    char b[40];
    if (isnan(v)) {
        puts_(e, "\"NaN\"");
        return;
    }
    if (isinf(v)) {
        puts_(e, v > 0 ? "\"Infinity\"" : "\"-Infinity\"");
        return;
    }
    /* The shortest %g precision that reads back to the same value. */
    for (int prec = is_float ? 6 : 15; prec <= 17; prec++) {
        snprintf(b, sizeof b, "%.*g", prec, v);
        if (is_float ? strtof(b, NULL) == (float)v : strtod(b, NULL) == v)
            break;
    }
    puts_(e, b);
}

static void put_bytes(enc *e, const ProtobufCBinaryData *d)
{
    size_t n = oms_base64_encoded_len(d->len, 0);
    if (!reserve(e, n + 2))
        return;
    e->buf[e->len++] = '"';
    e->len += oms_base64_encode(d->data, d->len, e->buf + e->len, 0);
    e->buf[e->len++] = '"';
    e->buf[e->len] = '\0';
}

static void put_message(enc *e, const ProtobufCMessage *m, int depth);

/* One value of field f's type at p (an element of a repeated field, or a
 * singular field's storage). as_key: written as a JSON object key (map). */
static void put_value(enc *e, const ProtobufCFieldDescriptor *f, const void *p, bool as_key,
                      int depth)
{
    char b[32];
    const char *q = as_key ? "\"" : "";
    switch (f->type) {
    case PROTOBUF_C_TYPE_INT32:
    case PROTOBUF_C_TYPE_SINT32:
    case PROTOBUF_C_TYPE_SFIXED32:
        snprintf(b, sizeof b, "%s%" PRId32 "%s", q, *(const int32_t *)p, q);
        break;
    case PROTOBUF_C_TYPE_UINT32:
    case PROTOBUF_C_TYPE_FIXED32:
        snprintf(b, sizeof b, "%s%" PRIu32 "%s", q, *(const uint32_t *)p, q);
        break;
    case PROTOBUF_C_TYPE_INT64:
    case PROTOBUF_C_TYPE_SINT64:
    case PROTOBUF_C_TYPE_SFIXED64:
        snprintf(b, sizeof b, "\"%" PRId64 "\"", *(const int64_t *)p);
        break;
    case PROTOBUF_C_TYPE_UINT64:
    case PROTOBUF_C_TYPE_FIXED64:
        snprintf(b, sizeof b, "\"%" PRIu64 "\"", *(const uint64_t *)p);
        break;
    case PROTOBUF_C_TYPE_BOOL:
        snprintf(b, sizeof b, "%s%s%s", q, *(const protobuf_c_boolean *)p ? "true" : "false", q);
        break;
    case PROTOBUF_C_TYPE_FLOAT:
        put_double(e, *(const float *)p, true);
        return;
    case PROTOBUF_C_TYPE_DOUBLE:
        put_double(e, *(const double *)p, false);
        return;
    case PROTOBUF_C_TYPE_ENUM: {
        int v = *(const int *)p;
        const ProtobufCEnumValue *ev = protobuf_c_enum_descriptor_get_value(f->descriptor, v);
        if (ev) {
            put_string(e, ev->name, strlen(ev->name));
            return;
        }
        snprintf(b, sizeof b, "%d", v);
        break;
    }
    case PROTOBUF_C_TYPE_STRING: {
        const char *s = *(char *const *)p;
        put_string(e, s ? s : "", s ? strlen(s) : 0);
        return;
    }
    case PROTOBUF_C_TYPE_BYTES:
        put_bytes(e, p);
        return;
    case PROTOBUF_C_TYPE_MESSAGE: {
        const ProtobufCMessage *sub = *(ProtobufCMessage *const *)p;
        if (sub)
            put_message(e, sub, depth + 1);
        else
            puts_(e, "{}");
        return;
    }
    }
    puts_(e, b);
}

/* Whether a field without presence holds its default (and is left out). */
static bool is_default(const ProtobufCFieldDescriptor *f, const void *p)
{
    switch (f->type) {
    case PROTOBUF_C_TYPE_INT32:
    case PROTOBUF_C_TYPE_SINT32:
    case PROTOBUF_C_TYPE_SFIXED32:
    case PROTOBUF_C_TYPE_UINT32:
    case PROTOBUF_C_TYPE_FIXED32:
    case PROTOBUF_C_TYPE_ENUM:
        return *(const uint32_t *)p == 0;
    case PROTOBUF_C_TYPE_INT64:
    case PROTOBUF_C_TYPE_SINT64:
    case PROTOBUF_C_TYPE_SFIXED64:
    case PROTOBUF_C_TYPE_UINT64:
    case PROTOBUF_C_TYPE_FIXED64:
        return *(const uint64_t *)p == 0;
    case PROTOBUF_C_TYPE_FLOAT:
        return *(const float *)p == 0 && !signbit(*(const float *)p);
    case PROTOBUF_C_TYPE_DOUBLE:
        return *(const double *)p == 0 && !signbit(*(const double *)p);
    case PROTOBUF_C_TYPE_BOOL:
        return !*(const protobuf_c_boolean *)p;
    case PROTOBUF_C_TYPE_STRING:
        return !*(char *const *)p || !**(char *const *)p;
    case PROTOBUF_C_TYPE_BYTES:
        return ((const ProtobufCBinaryData *)p)->len == 0;
    case PROTOBUF_C_TYPE_MESSAGE:
        return !*(ProtobufCMessage *const *)p;
    }
    return true;
}

/* Whether singular field f of m is present (written). */
static bool present(const ProtobufCMessage *m, const ProtobufCFieldDescriptor *f, const void *p)
{
    if (f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF)
        return *(const uint32_t *)pbjson__member(m, f->quantifier_offset) == f->id;
    if (f->type == PROTOBUF_C_TYPE_MESSAGE)
        return *(ProtobufCMessage *const *)p != NULL;
    if (f->label == PROTOBUF_C_LABEL_OPTIONAL && f->type == PROTOBUF_C_TYPE_STRING)
        return *(char *const *)p != NULL && *(char *const *)p != f->default_value;
    if (f->label == PROTOBUF_C_LABEL_OPTIONAL || f->label == PROTOBUF_C_LABEL_REQUIRED)
        return f->label == PROTOBUF_C_LABEL_REQUIRED ||
               *(const protobuf_c_boolean *)pbjson__member(m, f->quantifier_offset);
    return !is_default(f, p);
}

static void put_field_name(enc *e, const ProtobufCFieldDescriptor *f, bool *first)
{
    char name[PBJSON_NAME_MAX];
    if (e->flags & PBJSON_PROTO_NAMES)
        snprintf(name, sizeof name, "%s", f->name);
    else
        pbjson_json_name(f->name, name, sizeof name);
    puts_(e, *first ? "\"" : ",\"");
    puts_(e, name);
    puts_(e, "\":");
    *first = false;
}

static void put_repeated(enc *e, const ProtobufCMessage *m, const ProtobufCFieldDescriptor *f,
                         int depth)
{
    size_t n = *(const size_t *)pbjson__member(m, f->quantifier_offset);
    const char *arr = *(char *const *)pbjson__member(m, f->offset);
    bool map = pbjson__is_map(f);
    size_t sz = pbjson__elem_size(f->type);
    puts_(e, map ? "{" : "[");
    for (size_t i = 0; i < n && !e->failed; i++) {
        size_t old = path_push(e, "[%zu]", i);
        if (i)
            puts_(e, ",");
        if (map) {
            const ProtobufCMessage *entry = *(ProtobufCMessage *const *)(arr + i * sz);
            const ProtobufCMessageDescriptor *d = f->descriptor;
            const ProtobufCFieldDescriptor *kf = &d->fields[0], *vf = &d->fields[1];
            put_value(e, kf, pbjson__member(entry, kf->offset), true, depth);
            puts_(e, ":");
            put_value(e, vf, pbjson__member(entry, vf->offset), false, depth);
        } else {
            put_value(e, f, arr + i * sz, false, depth);
        }
        path_pop(e, old);
    }
    puts_(e, map ? "}" : "]");
}

static void put_message(enc *e, const ProtobufCMessage *m, int depth)
{
    if (depth > PBJSON_MAX_DEPTH) {
        fail(e, "messages nested deeper than %d", PBJSON_MAX_DEPTH);
        return;
    }
    const ProtobufCMessageDescriptor *d = m->descriptor;
    bool first = true;
    puts_(e, "{");
    for (unsigned i = 0; i < d->n_fields && !e->failed; i++) {
        const ProtobufCFieldDescriptor *f = &d->fields[i];
        const void *p = pbjson__member(m, f->offset);
        if (f->label == PROTOBUF_C_LABEL_REPEATED) {
            if (*(const size_t *)pbjson__member(m, f->quantifier_offset) == 0)
                continue;
        } else if (!present(m, f, p)) {
            continue;
        }
        size_t old = path_push(e, "%s%s", e->plen ? "." : "", f->name);
        put_field_name(e, f, &first);
        if (f->label == PROTOBUF_C_LABEL_REPEATED)
            put_repeated(e, m, f, depth);
        else
            put_value(e, f, p, false, depth);
        path_pop(e, old);
    }
    puts_(e, "}");
}

char *pbjson_encode(const ProtobufCMessage *msg, unsigned flags, size_t *len, char *err,
                    size_t errlen)
{
    enc e = {.flags = flags, .err = err, .errlen = errlen};
    put_message(&e, msg, 0);
    if (e.failed) {
        oms_free(e.buf);
        return NULL;
    }
    if (len)
        *len = e.len;
    return e.buf;
}
