/* auth_int.h - internals of src/auth shared between its files. */
#ifndef OMS_AUTH_INT_H
#define OMS_AUTH_INT_H

#include <openssl/evp.h>
#include <stdatomic.h>

#include "auth/jwt.h"
#include "base/base64.h"

#define AUTH_MAX_KEYS_FILE (1u << 20) /* bytes of a keys file */
#define AUTH_MAX_SECRET    65536      /* bytes of a secret file */
#define AUTH_KID_MAX       128        /* bytes of a key id */

typedef enum auth_kty { AUTH_KTY_RSA = 1, AUTH_KTY_EC, AUTH_KTY_ED25519 } auth_kty;

typedef struct auth_key {
    auth_kty kty;
    EVP_PKEY *pkey;
    char kid[AUTH_KID_MAX + 1];
} auth_key;

struct auth_keys {
    atomic_int refs;
    auth_key *keys;
    size_t nkeys, cap;
    uint8_t *secret; /* NULL: none */
    size_t secret_len;
    char *issuer;   /* NULL: not checked */
    char *audience; /* NULL: not checked */
    int64_t leeway;
};

/* --- base64url (base/base64.h) --- */
#define AUTH_B64URL (OMS_B64_URL | OMS_B64_NOPAD)
/* Encoded length (no padding) of n bytes. */
static inline size_t auth__b64url_len(size_t n)
{
    return oms_base64_encoded_len(n, AUTH_B64URL);
}
/* Encodes n bytes into out (auth__b64url_len(n) + 1 bytes, NUL-terminated). */
static inline void auth__b64url_encode(const uint8_t *p, size_t n, char *out)
{
    out[oms_base64_encode(p, n, out, AUTH_B64URL)] = '\0';
}
/* Strict decoding: alphabet A-Z a-z 0-9 - _, no padding, no length of 4k+1,
 * unused trailing bits zero (one text per byte string). out needs
 * len * 3 / 4 + 1 bytes. Returns the decoded length or -1. */
static inline long auth__b64url_decode(const char *s, size_t len, uint8_t *out)
{
    return oms_base64_decode(s, len, out, AUTH_B64URL | OMS_B64_STRICT);
}

/* --- keyutil.c --- */
/* The key's type if it is one we verify with (RSA >= 2048 bits, EC P-256,
 * Ed25519); otherwise 0 with a reason in err. */
auth_kty auth__pkey_kty(EVP_PKEY *pkey, char *err, size_t errlen);
/* RFC 7638 thumbprint of the public key, base64url (43 chars + NUL). */
int auth__thumbprint(EVP_PKEY *pkey, auth_kty kty, char out[44]);
/* Reads a whole file of at most max bytes (NUL appended, not counted). */
uint8_t *auth__read_file(const char *path, size_t max, size_t *len, char *err, size_t errlen);
/* Reads a secret file: raw bytes, trailing CR/LF stripped, at least
 * AUTH_MIN_SECRET of them (OPENSSL_cleanse *len bytes, then free). NULL with
 * err on failure. */
uint8_t *auth__read_secret(const char *path, size_t *len, char *err, size_t errlen);
/* The JOSE algorithm of a key type. */
auth_alg auth__kty_alg(auth_kty kty);

/* --- jwks.c --- */
/* Adds the keys of a JWKS document to k. Returns 0 or -1 with err. */
int auth__jwks_load(auth_keys *k, const char *path, const uint8_t *doc, size_t len, char *err,
                    size_t errlen);
/* Appends one key to k (takes pkey). Returns 0 or -1 with err (duplicate kid, ENOMEM). */
int auth__keys_add(auth_keys *k, EVP_PKEY *pkey, auth_kty kty, const char *kid, char *err,
                   size_t errlen);

#endif
