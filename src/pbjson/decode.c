/* decode.c - canonical proto3 JSON to a protobuf-c message (pbjson.h), on
 * jansson's parser. The message is built in place, the way protobuf-c's own
 * unpacker leaves it (strings, bytes, arrays and sub-messages from the
 * caller's allocator), so protobuf_c_message_free_unpacked frees it, also
 * when decoding stops half-way. */
#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

#include "base/alloc.h"
#include "base/base64.h"
#include "pbjson/pbjson_int.h"

typedef struct dec {
    ProtobufCAllocator *a;
    unsigned flags;
    bool failed;
    char path[256]; /* as the caller spelled it: "items[1].quantity" */
    size_t plen;
    char *err;
    size_t errlen;
} dec;

static void fail(dec *d, const char *fmt, ...)
{
    if (d->failed)
        return;
    d->failed = true;
    /* A deep path keeps its end: the field that failed, and the reason. */
    size_t cut = d->plen > 120 ? d->plen - 120 : 0;
    int n = snprintf(d->err, d->errlen, "%s%s%s", cut ? "..." : "", d->path + cut,
                     d->plen ? ": " : "");
    va_list ap;
    va_start(ap, fmt);
    if (n >= 0 && (size_t)n < d->errlen)
        vsnprintf(d->err + n, d->errlen - (size_t)n, fmt, ap);
    va_end(ap);
}

static size_t path_push(dec *d, const char *fmt, ...)
{
    size_t old = d->plen;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(d->path + d->plen, sizeof d->path - d->plen, fmt, ap);
    va_end(ap);
    if (n > 0)
        d->plen = d->plen + (size_t)n < sizeof d->path ? d->plen + (size_t)n : sizeof d->path - 1;
    return old;
}

static void path_pop(dec *d, size_t old)
{
    d->plen = old;
    d->path[old] = '\0';
}

static void *alloc(dec *d, size_t n)
{
    void *p = d->a->alloc(d->a->allocator_data, n ? n : 1);
    if (!p)
        fail(d, "out of memory");
    else
        memset(p, 0, n ? n : 1);
    return p;
}

/* base/alloc.h as a protobuf-c allocator, for alloc == NULL: libc's
 * malloc underneath, so protobuf-c's default free() frees it too. */
static void *oms_alloc_cb(void *data, size_t n)
{
    (void)data;
    return oms_malloc(n);
}

static void oms_free_cb(void *data, void *p)
{
    (void)data;
    oms_free(p);
}

static const char *type_name(const json_t *v)
{
    switch (json_typeof(v)) {
    case JSON_OBJECT:
        return "an object";
    case JSON_ARRAY:
        return "an array";
    case JSON_STRING:
        return "a string";
    case JSON_INTEGER:
    case JSON_REAL:
        return "a number";
    case JSON_TRUE:
    case JSON_FALSE:
        return "a boolean";
    case JSON_NULL:
        return "null";
    }
    return "a value";
}

/* A JSON number or numeric string as an integer in [lo, hi] (signed) or
 * [0, uhi] (unsigned). Integral reals ("1e3", 5.0) are integers too. */
static bool get_int(dec *d, const json_t *v, bool is_signed, int64_t lo, int64_t hi, uint64_t uhi,
                    int64_t *s, uint64_t *u)
{
    if (json_is_integer(v)) {
        json_int_t x = json_integer_value(v);
        if (is_signed ? (x < lo || x > hi) : (x < 0 || (uint64_t)x > uhi)) {
            fail(d, "%" PRId64 " is out of range", (int64_t)x);
            return false;
        }
        *s = x, *u = (uint64_t)x;
        return true;
    }
    double r;
    if (json_is_real(v)) {
        r = json_real_value(v);
    } else if (json_is_string(v)) {
        const char *t = json_string_value(v);
        size_t n = json_string_length(v);
        char *end;
        /* Decimal digits, sign, point and exponent only: strtod would also
         * take hex, "inf" and leading blanks. */
        if (n == 0 || n > 40 || strspn(t, "0123456789-.eE+") != n || t[0] == '+') {
            fail(d, "\"%.40s\" is not an integer", t);
            return false;
        }
        errno = 0;
        if (is_signed) {
            long long x = strtoll(t, &end, 10);
            if (*end == '\0' && errno == 0) {
                if (x < lo || x > hi) {
                    fail(d, "%s is out of range", t);
                    return false;
                }
                *s = x, *u = (uint64_t)x;
                return true;
            }
        } else if (t[0] != '-') {
            unsigned long long x = strtoull(t, &end, 10);
            if (*end == '\0' && errno == 0) {
                if (x > uhi) {
                    fail(d, "%s is out of range", t);
                    return false;
                }
                *s = (int64_t)x, *u = x;
                return true;
            }
        }
        errno = 0;
        r = strtod(t, &end);
        if (*end != '\0' || errno != 0 || !isfinite(r)) {
            fail(d, "\"%.40s\" is not an integer", t);
            return false;
        }
    } else {
        fail(d, "want an integer, got %s", type_name(v));
        return false;
    }
    if (!isfinite(r) || r != floor(r)) {
        fail(d, "%g is not an integer", r);
        return false;
    }
    /* 2^63 and 2^64 are exact doubles; anything at or past them is out. */
    if (is_signed ? (r < (double)lo || r >= 9223372036854775808.0 || (int64_t)r > hi)
                  : (r < 0 || r >= 18446744073709551616.0 || (uint64_t)r > uhi)) {
        fail(d, "%g is out of range", r);
        return false;
    }
    if (is_signed)
        *s = (int64_t)r, *u = (uint64_t)*s;
    else
        *u = (uint64_t)r, *s = (int64_t)*u;
    return true;
}

static bool get_double(dec *d, const json_t *v, bool is_float, double *out)
{
    if (json_is_number(v)) {
        *out = json_number_value(v);
    } else if (json_is_string(v)) {
        const char *t = json_string_value(v);
        char *end;
        if (strcmp(t, "NaN") == 0) {
            *out = NAN;
            return true;
        }
        if (strcmp(t, "Infinity") == 0 || strcmp(t, "-Infinity") == 0) {
            *out = t[0] == '-' ? -INFINITY : INFINITY;
            return true;
        }
        errno = 0;
        *out = strtod(t, &end);
        size_t n = json_string_length(v);
        if (n == 0 || strspn(t, "0123456789-.eE+") != n || *end || errno == ERANGE ||
            !isfinite(*out)) {
            fail(d, "\"%.40s\" is not a number", t);
            return false;
        }
    } else {
        fail(d, "want a number, got %s", type_name(v));
        return false;
    }
    if (is_float && isfinite(*out) && fabs(*out) > 3.4028234663852886e38) {
        fail(d, "%g is out of range for a float", *out);
        return false;
    }
    return true;
}

static ProtobufCMessage *get_message(dec *d, const ProtobufCMessageDescriptor *desc,
                                     const json_t *v, int depth);

/* One value of field f's type from v into p. key: v came from a map key
 * (a string however the type is spelled). */
static void get_value(dec *d, const ProtobufCFieldDescriptor *f, const json_t *v, void *p,
                      int depth)
{
    int64_t s;
    uint64_t u;
    double r;
    switch (f->type) {
    case PROTOBUF_C_TYPE_INT32:
    case PROTOBUF_C_TYPE_SINT32:
    case PROTOBUF_C_TYPE_SFIXED32:
        if (get_int(d, v, true, INT32_MIN, INT32_MAX, 0, &s, &u))
            *(int32_t *)p = (int32_t)s;
        return;
    case PROTOBUF_C_TYPE_UINT32:
    case PROTOBUF_C_TYPE_FIXED32:
        if (get_int(d, v, false, 0, 0, UINT32_MAX, &s, &u))
            *(uint32_t *)p = (uint32_t)u;
        return;
    case PROTOBUF_C_TYPE_INT64:
    case PROTOBUF_C_TYPE_SINT64:
    case PROTOBUF_C_TYPE_SFIXED64:
        if (get_int(d, v, true, INT64_MIN, INT64_MAX, 0, &s, &u))
            *(int64_t *)p = s;
        return;
    case PROTOBUF_C_TYPE_UINT64:
    case PROTOBUF_C_TYPE_FIXED64:
        if (get_int(d, v, false, 0, 0, UINT64_MAX, &s, &u))
            *(uint64_t *)p = u;
        return;
    case PROTOBUF_C_TYPE_FLOAT:
        if (get_double(d, v, true, &r))
            *(float *)p = (float)r;
        return;
    case PROTOBUF_C_TYPE_DOUBLE:
        if (get_double(d, v, false, &r))
            *(double *)p = r;
        return;
    case PROTOBUF_C_TYPE_BOOL:
        if (json_is_boolean(v))
            *(protobuf_c_boolean *)p = json_is_true(v);
        else
            fail(d, "want true or false, got %s", type_name(v));
        return;
    case PROTOBUF_C_TYPE_ENUM:
        if (json_is_string(v)) {
            const ProtobufCEnumValue *ev =
                protobuf_c_enum_descriptor_get_value_by_name(f->descriptor, json_string_value(v));
            if (ev && strlen(json_string_value(v)) == json_string_length(v))
                *(int *)p = ev->value;
            else
                fail(d, "\"%.60s\" is not a value of %s", json_string_value(v),
                     ((const ProtobufCEnumDescriptor *)f->descriptor)->name);
        } else if (json_is_number(v)) {
            if (get_int(d, v, true, INT32_MIN, INT32_MAX, 0, &s, &u))
                *(int *)p = (int)s; /* proto3 enums are open */
        } else {
            fail(d, "want an enum name or number, got %s", type_name(v));
        }
        return;
    case PROTOBUF_C_TYPE_STRING: {
        if (!json_is_string(v)) {
            fail(d, "want a string, got %s", type_name(v));
            return;
        }
        size_t n = json_string_length(v);
        if (strlen(json_string_value(v)) != n) {
            fail(d, "string holds a NUL character"); /* a C string cannot */
            return;
        }
        char *c = alloc(d, n + 1);
        if (c) {
            memcpy(c, json_string_value(v), n + 1);
            *(char **)p = c;
        }
        return;
    }
    case PROTOBUF_C_TYPE_BYTES: {
        if (!json_is_string(v)) {
            fail(d, "want base64 bytes in a string, got %s", type_name(v));
            return;
        }
        size_t n = json_string_length(v);
        uint8_t *b = alloc(d, oms_base64_decoded_max(n));
        if (!b)
            return;
        long got = oms_base64_decode(json_string_value(v), n, b, OMS_B64_ANY);
        if (got < 0) {
            d->a->free(d->a->allocator_data, b);
            fail(d, "not base64");
            return;
        }
        ProtobufCBinaryData *bd = p;
        bd->data = b;
        bd->len = (size_t)got;
        return;
    }
    case PROTOBUF_C_TYPE_MESSAGE:
        *(ProtobufCMessage **)p = get_message(d, f->descriptor, v, depth + 1);
        return;
    }
}

/* A map key (always a JSON string) as the key field's type. */
static void get_key(dec *d, const ProtobufCFieldDescriptor *kf, const char *key, void *p)
{
    json_t *v;
    if (kf->type == PROTOBUF_C_TYPE_STRING) {
        v = json_string(key);
    } else if (kf->type == PROTOBUF_C_TYPE_BOOL) {
        if (strcmp(key, "true") != 0 && strcmp(key, "false") != 0) {
            fail(d, "map key \"%.40s\" is not true or false", key);
            return;
        }
        v = json_boolean(key[0] == 't');
    } else {
        v = json_string(key); /* integer keys: get_int reads numeric strings */
    }
    if (!v) {
        fail(d, "out of memory");
        return;
    }
    get_value(d, kf, v, p, 0);
    json_decref(v);
}

static void get_repeated(dec *d, ProtobufCMessage *m, const ProtobufCFieldDescriptor *f,
                         const json_t *v, int depth)
{
    bool map = pbjson__is_map(f);
    if (map ? !json_is_object(v) : !json_is_array(v)) {
        fail(d, "want %s, got %s", map ? "an object (map)" : "an array", type_name(v));
        return;
    }
    size_t n = map ? json_object_size(v) : json_array_size(v);
    size_t sz = pbjson__elem_size(f->type);
    char *arr = alloc(d, n * sz);
    if (!arr)
        return;
    /* Counted in full at once: zeroed elements free as "nothing". */
    *(char **)pbjson__member(m, f->offset) = arr;
    *(size_t *)pbjson__member(m, f->quantifier_offset) = n;
    if (map) {
        const ProtobufCMessageDescriptor *ed = f->descriptor;
        const ProtobufCFieldDescriptor *kf = &ed->fields[0], *vf = &ed->fields[1];
        const char *key;
        json_t *val;
        size_t i = 0;
        json_object_foreach((json_t *)v, key, val)
        {
            size_t old = path_push(d, "[\"%.40s\"]", key);
            ProtobufCMessage *entry = alloc(d, ed->sizeof_message);
            if (entry) {
                ed->message_init(entry);
                ((ProtobufCMessage **)arr)[i] = entry;
                get_key(d, kf, key, pbjson__member(entry, kf->offset));
                if (!json_is_null(val))
                    get_value(d, vf, val, pbjson__member(entry, vf->offset), depth);
                else if (vf->type == PROTOBUF_C_TYPE_MESSAGE)
                    fail(d, "null map value");
            }
            path_pop(d, old);
            if (d->failed)
                return;
            i++;
        }
        return;
    }
    for (size_t i = 0; i < n && !d->failed; i++) {
        size_t old = path_push(d, "[%zu]", i);
        const json_t *e = json_array_get(v, i);
        if (json_is_null(e))
            fail(d, "null in a repeated field");
        else
            get_value(d, f, e, arr + i * sz, depth);
        path_pop(d, old);
    }
}

static const ProtobufCFieldDescriptor *find_field(const ProtobufCMessageDescriptor *desc,
                                                  const char *key)
{
    char jn[PBJSON_NAME_MAX];
    for (unsigned i = 0; i < desc->n_fields; i++) {
        const ProtobufCFieldDescriptor *f = &desc->fields[i];
        if (strcmp(f->name, key) == 0)
            return f;
        pbjson_json_name(f->name, jn, sizeof jn);
        if (strcmp(jn, key) == 0)
            return f;
    }
    return NULL;
}

static void set_field(dec *d, ProtobufCMessage *m, const ProtobufCFieldDescriptor *f,
                      const json_t *v, int depth)
{
    if (f->label == PROTOBUF_C_LABEL_REPEATED) {
        if (!json_is_null(v))
            get_repeated(d, m, f, v, depth);
        return;
    }
    void *p = pbjson__member(m, f->offset);
    if (f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) {
        uint32_t *c = pbjson__member(m, f->quantifier_offset);
        if (*c != 0 && *c != f->id) {
            fail(d, "a second member of the same oneof");
            return;
        }
        if (json_is_null(v))
            return;
        /* The case first: free_unpacked then frees what get_value stored. */
        *c = f->id;
    } else if (json_is_null(v)) {
        return; /* the default */
    } else if (f->label == PROTOBUF_C_LABEL_OPTIONAL && f->type != PROTOBUF_C_TYPE_STRING &&
               f->type != PROTOBUF_C_TYPE_MESSAGE) {
        *(protobuf_c_boolean *)pbjson__member(m, f->quantifier_offset) = 1;
    }
    if (f->type == PROTOBUF_C_TYPE_STRING && *(char **)p == f->default_value)
        *(char **)p = NULL; /* replaced: never hand the default to free */
    get_value(d, f, v, p, depth);
    if (f->type == PROTOBUF_C_TYPE_STRING && !*(char **)p)
        *(char **)p = (char *)f->default_value; /* failed: back to the default */
}

static ProtobufCMessage *get_message(dec *d, const ProtobufCMessageDescriptor *desc,
                                     const json_t *v, int depth)
{
    if (depth > PBJSON_MAX_DEPTH) {
        fail(d, "messages nested deeper than %d", PBJSON_MAX_DEPTH);
        return NULL;
    }
    if (!json_is_object(v)) {
        fail(d, "want an object (%s), got %s", desc->name, type_name(v));
        return NULL;
    }
    ProtobufCMessage *m = alloc(d, desc->sizeof_message);
    if (!m)
        return NULL;
    desc->message_init(m);
    /* Which fields were set, by index: "orderId" and "order_id" together
     * are one field given twice. */
    uint8_t seen[(desc->n_fields + 7) / 8 + 1];
    memset(seen, 0, sizeof seen);
    const char *key;
    json_t *val;
    json_object_foreach((json_t *)v, key, val)
    {
        size_t old = path_push(d, "%s%s", d->plen ? "." : "", key);
        const ProtobufCFieldDescriptor *f = find_field(desc, key);
        if (!f) {
            if (!(d->flags & PBJSON_IGNORE_UNKNOWN))
                fail(d, "unknown field of %s", desc->name);
        } else {
            size_t i = (size_t)(f - desc->fields);
            if (seen[i / 8] & (1u << (i % 8)))
                fail(d, "field given twice (as \"%s\" and its other name)", key);
            seen[i / 8] |= (uint8_t)(1u << (i % 8));
            if (!d->failed)
                set_field(d, m, f, val, depth);
        }
        path_pop(d, old);
        if (d->failed)
            break;
    }
    return m; /* also when failed: the caller frees the whole tree */
}

ProtobufCMessage *pbjson_decode(const ProtobufCMessageDescriptor *desc, const char *text,
                                size_t len, ProtobufCAllocator *a, unsigned flags, char *err,
                                size_t errlen)
{
    static ProtobufCAllocator system = {oms_alloc_cb, oms_free_cb, NULL};
    dec d = {.a = a ? a : &system, .flags = flags, .err = err, .errlen = errlen};
    json_error_t je;
    json_t *root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &je);
    if (!root) {
        snprintf(err, errlen, "malformed JSON at line %d column %d: %s", je.line, je.column,
                 je.text);
        return NULL;
    }
    ProtobufCMessage *m = get_message(&d, desc, root, 0);
    json_decref(root);
    if (d.failed) {
        if (m)
            protobuf_c_message_free_unpacked(m, d.a);
        return NULL;
    }
    return m;
}
