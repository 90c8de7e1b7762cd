/* metadata.c - custom metadata rules (PROTOCOL-HTTP2.md, "Custom-Metadata"):
 * key syntax, which keys belong to gRPC or HTTP/2 itself, and the base64 that
 * carries "-bin" values.
 */
#include "rpc_int.h"

#include <string.h>
#include <strings.h>

bool rpc__md_key_valid(const char *key, size_t len)
{
    if (len == 0)
        return false;
    for (size_t i = 0; i < len; i++) {
        char c = key[i];
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || c == '_' || c == '-' || c == '.'))
            return false;
    }
    return true;
}

bool rpc__md_key_is_bin(const char *key, size_t len)
{
    return len >= 4 && memcmp(key + len - 4, "-bin", 4) == 0;
}

bool rpc__md_value_valid(const uint8_t *v, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        if (v[i] < 0x20 || v[i] > 0x7E)
            return false;
    }
    return true;
}

static bool key_is(const char *key, size_t len, const char *name)
{
    return strlen(name) == len && strncasecmp(key, name, len) == 0;
}

/* Keys are compared without regard to case: HTTP/2 peers send them in lower
 * case, but a handler adding "Content-Type" must still be refused. */
bool rpc__md_key_reserved(const char *key, size_t len)
{
    /* Every "grpc-" key is reserved, including ones not defined yet (the spec
     * keeps the prefix for future use); grpc-status-details-bin travels as
     * part of the status, not as metadata. */
    if (len >= 1 && key[0] == ':')
        return true;
    if (len >= 5 && strncasecmp(key, "grpc-", 5) == 0)
        return true;
    /* user-agent is deliberately absent: applications may read it. The rest
     * are HTTP/2 connection-specific fields (RFC 9113 section 8.2.2) and
     * content-length, which would contradict gRPC's own framing. */
    static const char *const names[] = {
        "content-type",      "te",      "connection",     "keep-alive", "proxy-connection",
        "transfer-encoding", "upgrade", "content-length",
    };
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        if (key_is(key, len, names[i]))
            return true;
    }
    return false;
}

