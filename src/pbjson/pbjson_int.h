/* pbjson_int.h - what encode.c and decode.c share: reaching a field's
 * storage in a protobuf-c message, and telling map entries apart. */
#ifndef OMS_PBJSON_INT_H
#define OMS_PBJSON_INT_H

#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "pbjson/pbjson.h"

#define PBJSON_NAME_MAX 128

static inline void *pbjson__member(const void *msg, unsigned offset)
{
    return (char *)msg + offset;
}

/* The size of one value of a field's type in a repeated array. */
size_t pbjson__elem_size(ProtobufCType type);

/* Whether f is a map field: repeated, of a message type protoc generated for
 * map<K, V> (named ...Entry, exactly key = 1 and value = 2). protobuf-c 1.4
 * keeps no map_entry option, so the shape is what tells. */
bool pbjson__is_map(const ProtobufCFieldDescriptor *f);

/* Whether f has explicit presence (a has_ flag, a oneof case, or a pointer
 * that may be NULL) rather than proto3's "default means absent". */
static inline bool pbjson__has_presence(const ProtobufCFieldDescriptor *f)
{
    return f->label == PROTOBUF_C_LABEL_OPTIONAL || f->label == PROTOBUF_C_LABEL_REQUIRED ||
           (f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) || f->type == PROTOBUF_C_TYPE_MESSAGE;
}

#endif
