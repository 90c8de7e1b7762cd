/* pbjson - protobuf's canonical JSON mapping (proto3 JSON), written once on
 * protobuf-c descriptors, for the Connect protocol's application/json and
 * for any program that prints messages as JSON.
 *
 * Encoding (https://protobuf.dev/programming-guides/proto3/#json):
 *   - field names in lowerCamelCase (the name protoc gives json_name);
 *   - fields without presence that hold their default are left out; fields
 *     with presence (proto2/proto3 optional, oneof members, messages) appear
 *     when set, even at the default;
 *   - int64, uint64 and their sint/fixed forms as decimal strings, 32-bit
 *     integers as numbers; float and double as the shortest text that reads
 *     back to the same value, "NaN", "Infinity", "-Infinity";
 *   - enums by value name (a number the enum does not name as a number);
 *   - bytes as standard base64 with padding;
 *   - repeated fields as arrays, map fields as objects (keys as strings).
 * A string field holding bytes that are not UTF-8 cannot be encoded (error).
 *
 * Decoding accepts what the mapping allows: both the lowerCamelCase and the
 * proto field name; integers as numbers or strings (an integral number in
 * exponent form too); floats as numbers, numeric strings or the three names;
 * enums by name or number; bytes in either base64 alphabet, padded or not;
 * null for "the default". It refuses, with INVALID_ARGUMENT-worthy text that
 * names the field path ("items[1].quantity: ..."): malformed JSON, duplicate
 * keys, unknown fields (unless PBJSON_IGNORE_UNKNOWN), a wrong JSON type,
 * an out-of-range or fractional integer, an unknown enum name, bad base64,
 * two members of one oneof, nesting deeper than PBJSON_MAX_DEPTH.
 *
 * Not covered: the well-known types' special forms (Timestamp, Duration,
 * wrappers, Struct, Any, FieldMask are treated as ordinary messages): the oms
 * APIs use none of them.
 */
#ifndef OMS_PBJSON_H
#define OMS_PBJSON_H

#include <protobuf-c/protobuf-c.h>
#include <stddef.h>

#define PBJSON_MAX_DEPTH 64

enum {
    PBJSON_IGNORE_UNKNOWN = 1u << 0, /* decode: skip fields the message lacks */
    PBJSON_PROTO_NAMES = 1u << 1,    /* encode: proto field names, not lowerCamelCase */
};

/* Encodes msg as one line of JSON. Returns a NUL-terminated string the
 * caller frees with oms_free (base/alloc.h), its length in *len if len is
 * not NULL; or NULL with the reason in err (out of memory, a string field
 * that is not UTF-8). */
char *pbjson_encode(const ProtobufCMessage *msg, unsigned flags, size_t *len, char *err,
                    size_t errlen);

/* Decodes len bytes of JSON text into a new message of type desc, allocated
 * with alloc (NULL: base/alloc.h's, which is libc's malloc underneath); free
 * it with protobuf_c_message_free_unpacked(msg, alloc). Returns NULL with the reason
 * in err (field path first) on any error listed above, or on ENOMEM ("out
 * of memory"). */
ProtobufCMessage *pbjson_decode(const ProtobufCMessageDescriptor *desc, const char *text,
                                size_t len, ProtobufCAllocator *alloc, unsigned flags, char *err,
                                size_t errlen);

/* The lowerCamelCase JSON name of a proto field name, as protoc derives
 * json_name ("order_id" -> "orderId"), into out (cap bytes, NUL-terminated,
 * cut if too small). */
void pbjson_json_name(const char *proto_name, char *out, size_t cap);

#endif
