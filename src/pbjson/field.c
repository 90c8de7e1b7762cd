/* field.c - field helpers shared by the encoder and the decoder. */
#include <stdarg.h>
#include <stdio.h>

#include "pbjson/pbjson_int.h"

void pbjson__fail(pbjson__where *w, const char *fmt, ...)
{
    if (w->failed)
        return;
    w->failed = true;
    /* A deep path keeps its end: the field that failed, and the reason. */
    size_t cut = w->plen > 120 ? w->plen - 120 : 0;
    int n =
        snprintf(w->err, w->errlen, "%s%s%s", cut ? "..." : "", w->path + cut, w->plen ? ": " : "");
    va_list ap;
    va_start(ap, fmt);
    if (n >= 0 && (size_t)n < w->errlen)
        vsnprintf(w->err + n, w->errlen - (size_t)n, fmt, ap);
    va_end(ap);
}

size_t pbjson__path_push(pbjson__where *w, const char *fmt, ...)
{
    size_t old = w->plen;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(w->path + w->plen, sizeof w->path - w->plen, fmt, ap);
    va_end(ap);
    if (n > 0)
        w->plen = w->plen + (size_t)n < sizeof w->path ? w->plen + (size_t)n : sizeof w->path - 1;
    return old;
}

void pbjson__path_pop(pbjson__where *w, size_t old)
{
    w->plen = old;
    w->path[old] = '\0';
}

size_t pbjson__elem_size(ProtobufCType type)
{
    switch (type) {
    case PROTOBUF_C_TYPE_INT32:
    case PROTOBUF_C_TYPE_SINT32:
    case PROTOBUF_C_TYPE_SFIXED32:
    case PROTOBUF_C_TYPE_UINT32:
    case PROTOBUF_C_TYPE_FIXED32:
    case PROTOBUF_C_TYPE_FLOAT:
    case PROTOBUF_C_TYPE_ENUM:
        return 4;
    case PROTOBUF_C_TYPE_INT64:
    case PROTOBUF_C_TYPE_SINT64:
    case PROTOBUF_C_TYPE_SFIXED64:
    case PROTOBUF_C_TYPE_UINT64:
    case PROTOBUF_C_TYPE_FIXED64:
    case PROTOBUF_C_TYPE_DOUBLE:
        return 8;
    case PROTOBUF_C_TYPE_BOOL:
        return sizeof(protobuf_c_boolean);
    case PROTOBUF_C_TYPE_STRING:
        return sizeof(char *);
    case PROTOBUF_C_TYPE_BYTES:
        return sizeof(ProtobufCBinaryData);
    case PROTOBUF_C_TYPE_MESSAGE:
        return sizeof(ProtobufCMessage *);
    }
    return 0;
}

bool pbjson__is_map(const ProtobufCFieldDescriptor *f)
{
    if (f->label != PROTOBUF_C_LABEL_REPEATED || f->type != PROTOBUF_C_TYPE_MESSAGE)
        return false;
    const ProtobufCMessageDescriptor *d = f->descriptor;
    size_t n = strlen(d->name);
    return n > 5 && strcmp(d->name + n - 5, "Entry") == 0 && d->n_fields == 2 &&
           d->fields[0].id == 1 && strcmp(d->fields[0].name, "key") == 0 && d->fields[1].id == 2 &&
           strcmp(d->fields[1].name, "value") == 0;
}

void pbjson_json_name(const char *name, char *out, size_t cap)
{
    size_t o = 0;
    bool upper = false;
    for (; *name && o + 1 < cap; name++) {
        if (*name == '_') {
            upper = true;
            continue;
        }
        out[o++] = upper && *name >= 'a' && *name <= 'z' ? (char)(*name - 'a' + 'A') : *name;
        upper = false;
    }
    if (cap)
        out[o] = '\0';
}
