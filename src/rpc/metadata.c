/* metadata.c - custom metadata rules (PROTOCOL-HTTP2.md, "Custom-Metadata"):
 * key syntax, which keys belong to gRPC or HTTP/2 itself, and the base64 that
 * carries "-bin" values.
 */
#include "rpc_int.h"

#include <string.h>

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

/* key[0..n) equals lit (lower case) in any case; ASCII only, as keys are. */
static bool eq_fold(const char *key, const char *lit, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)key[i];
        if (c >= 'A' && c <= 'Z')
            c = (unsigned char)(c + 32);
        if (c != (unsigned char)lit[i])
            return false;
    }
    return true;
}

/* The usual case first: a lower-case key (HTTP/2 sends no other), compared
 * by an inlined memcmp; a mismatch mostly ends at the first byte. */
static inline bool eq_lower(const char *key, const char *lit, size_t n)
{
    return memcmp(key, lit, n) == 0 || eq_fold(key, lit, n);
}

/* Keys are compared without regard to case: HTTP/2 peers send them in lower
 * case, but a handler adding "Content-Type" must still be refused. Every
 * request header goes through here (server.c's on_open), so the names are
 * told apart by length first: one comparison at most, no strlen. */
bool rpc__md_key_reserved(const char *key, size_t len)
{
    /* Every "grpc-" key is reserved, including ones not defined yet (the spec
     * keeps the prefix for future use); grpc-status-details-bin travels as
     * part of the status, not as metadata. */
    if (len >= 1 && key[0] == ':')
        return true;
    if (len >= 5 && eq_lower(key, "grpc-", 5))
        return true;
    /* user-agent is deliberately absent: applications may read it. The rest
     * are HTTP/2 connection-specific fields (RFC 9113 section 8.2.2) and
     * content-length, which would contradict gRPC's own framing. */
    switch (len) {
    case 2:
        return eq_lower(key, "te", 2);
    case 7:
        return eq_lower(key, "upgrade", 7);
    case 10:
        return eq_lower(key, "connection", 10) || eq_lower(key, "keep-alive", 10);
    case 12:
        return eq_lower(key, "content-type", 12);
    case 14:
        return eq_lower(key, "content-length", 14);
    case 16:
        return eq_lower(key, "proxy-connection", 16);
    case 17:
        return eq_lower(key, "transfer-encoding", 17);
    default:
        return false;
    }
}
