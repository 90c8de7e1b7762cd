/* base64.h - base64 (RFC 4648) in its two alphabets, for every layer that
 * needs it: gRPC's -bin metadata (standard, padded; peers send it unpadded
 * too), JWTs (URL-safe, unpadded, strict) and protobuf's JSON bytes (either
 * alphabet, padded or not).
 *
 * Nothing is allocated: the caller sizes out with the _len functions.
 */
#ifndef OMS_BASE_BASE64_H
#define OMS_BASE_BASE64_H

#include <stddef.h>
#include <stdint.h>

enum {
    OMS_B64_URL = 1u << 0,    /* encode/decode: '-' '_' instead of '+' '/' */
    OMS_B64_NOPAD = 1u << 1,  /* encode: no '='; decode: refuse '=' */
    OMS_B64_ANY = 1u << 2,    /* decode: accept both alphabets (not mixed) */
    OMS_B64_STRICT = 1u << 3, /* decode: the unused bits of the last character
                               * must be zero, so one text per byte string */
};

/* The length of the encoding of n bytes (no NUL counted). */
size_t oms_base64_encoded_len(size_t n, unsigned flags);
/* Encodes n bytes of in into out (oms_base64_encoded_len bytes; no NUL
 * written). Returns the length written. */
size_t oms_base64_encode(const uint8_t *in, size_t n, char *out, unsigned flags);
/* The most bytes len characters decode to: the size out needs. */
size_t oms_base64_decoded_max(size_t len);
/* Decodes len characters of in into out. Padding is optional unless
 * OMS_B64_NOPAD refuses it; where present it must complete a 4-character
 * group. Returns the decoded length, or -1 if in is not base64 of the
 * alphabet(s) flags allow (a character outside it, '=' inside the text, a
 * lone trailing character, non-zero unused bits with OMS_B64_STRICT). */
long oms_base64_decode(const char *in, size_t len, uint8_t *out, unsigned flags);

#endif
