/* jwt.h - JWT bearer tokens (RFC 7519): verification for servers, minting
 * for tools.
 *
 * Verification is driven by the keys the server was configured with, never by
 * what a token says about itself: a token's "alg" must be the one algorithm
 * the chosen key is for (RS256 for RSA keys, ES256 for P-256 keys, EdDSA for
 * Ed25519 keys, HS256 for the shared secret). "alg":"none", unknown
 * algorithms, "crit" extensions and HS256 without a configured secret are
 * refused, so a token signed with HMAC over an RSA public key (algorithm
 * confusion) cannot pass. Signatures are checked with OpenSSL's EVP API; the
 * HMAC is compared in constant time (CRYPTO_memcmp).
 *
 * This library knows nothing of rpc or HTTP: the caller extracts the token
 * (auth_bearer_parse), verifies it and maps a failure to its own status
 * (gRPC: UNAUTHENTICATED with the `why` text, which never contains any part
 * of the token).
 *
 * Threading: an auth_keys is immutable once loaded and may be used by any
 * number of threads at once (auth_jwt_verify only reads it). Its refcount is
 * atomic. To swap keys at run time (SIGHUP), keep them in an auth_keys_slot:
 * readers take a reference with auth_keys_slot_get() for each verification,
 * the reloader installs new keys with auth_keys_slot_set(); keys still used
 * by a reader are freed when its reference goes.
 */
#ifndef OMS_AUTH_JWT_H
#define OMS_AUTH_JWT_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Bounds on hostile input. */
#define AUTH_MAX_TOKEN      8192 /* bytes of the compact token */
#define AUTH_MAX_JSON_DEPTH 8    /* nesting of the header and payload JSON */
#define AUTH_DEFAULT_LEEWAY 30   /* seconds of clock skew allowed */
#define AUTH_MIN_SECRET     32   /* bytes of an HS256 secret */
#define AUTH_MAX_SCOPES     64   /* scopes kept from one token */
#define AUTH_ERRLEN         256  /* a comfortable size for err/why buffers */

/* Return codes of auth_jwt_verify (and, for AUTH_ENOMEM/AUTH_EINVAL, of the
 * other functions). auth_strerror() names them. */
enum {
    AUTH_OK = 0,
    AUTH_EMALFORMED = -1, /* not a well-formed JWS compact token, bad JSON, bad claim type */
    AUTH_EALG = -2,       /* alg none/unknown, or not the key's algorithm, or crit */
    AUTH_ESIG = -3,       /* signature does not verify */
    AUTH_EKID = -4,       /* kid names no configured key / no key of the alg's type */
    AUTH_EEXPIRED = -5,   /* exp (plus leeway) is past */
    AUTH_ENOTYET = -6,    /* nbf or iat is in the future (beyond leeway) */
    AUTH_EISS = -7,       /* iss missing or not the configured issuer */
    AUTH_EAUD = -8,       /* aud missing or does not contain the configured audience */
    AUTH_ETOOBIG = -9,    /* token longer than AUTH_MAX_TOKEN */
    AUTH_ENOMEM = -10,    /* allocation failed */
    AUTH_EINVAL = -11,    /* misuse: NULL keys or token */
};

/* "malformed token", "bad signature", ... for a code above; "unknown error" otherwise. */
const char *auth_strerror(int code);

/* --- keys ---------------------------------------------------------------------- */

typedef struct auth_keys auth_keys;

typedef struct auth_keys_config {
    /* PEM public keys ("PUBLIC KEY" blocks or certificates; RSA >= 2048
     * bits, EC P-256, Ed25519), or a JWKS document ({"keys":[...]} with
     * kty RSA, EC/P-256, OKP/Ed25519), told apart by content (a '{' first).
     * NULL: no public keys. */
    const char *jwt_keys_file;
    /* HS256 shared secret: the file's raw bytes, trailing CR/LF stripped; at
     * least AUTH_MIN_SECRET bytes. NULL: HS256 tokens are refused. */
    const char *secret_file;
    const char *issuer;   /* required "iss"; NULL: not checked */
    const char *audience; /* required in "aud"; NULL: not checked */
    int leeway_s;         /* clock skew allowed on exp/nbf/iat; < 0: AUTH_DEFAULT_LEEWAY */
} auth_keys_config;

/* Loads keys and policy. At least one of jwt_keys_file and secret_file must
 * be given. The config's strings are copied (borrowed for the call only).
 *
 * A key's id ("kid") is its JWKS "kid" member, else its RFC 7638 JWK
 * thumbprint (base64url SHA-256), which is also the id of every PEM key; the
 * secret has no id. JWKS members "use" (must be "sig") and "alg" (must be
 * the key type's algorithm) are checked when present.
 *
 * Returns a new auth_keys with one reference, or NULL with a message in
 * err (a missing file, no key at all, a bad PEM block, a private key where a
 * public one belongs, an RSA key under 2048 bits, a bad or unsupported JWKS
 * entry, a duplicate kid, a short secret). Never logs. */
auth_keys *auth_keys_load(const auth_keys_config *cfg, char *err, size_t errlen);

/* Reference counting (atomic; any thread). unref of NULL is a no-op. */
auth_keys *auth_keys_ref(auth_keys *k);
void auth_keys_unref(auth_keys *k);

/* How many public keys and whether a secret is loaded (for start-up logs). */
size_t auth_keys_count(const auth_keys *k);
bool auth_keys_has_secret(const auth_keys *k);

/* A shared, swappable pointer to the current keys (omsd: one per process,
 * read by every worker loop, replaced on SIGHUP). The lock is held only to
 * copy the pointer and take a reference, never during verification. */
typedef struct auth_keys_slot {
    pthread_mutex_t lock;
    auth_keys *keys; /* owned reference; NULL: none */
} auth_keys_slot;

/* init takes ownership of keys (may be NULL); dispose drops the reference. */
int auth_keys_slot_init(auth_keys_slot *s, auth_keys *keys);
void auth_keys_slot_dispose(auth_keys_slot *s);
/* A new reference to the current keys (release with auth_keys_unref), or NULL. */
auth_keys *auth_keys_slot_get(auth_keys_slot *s);
/* Installs keys (takes ownership of the caller's reference) and drops the
 * slot's reference to the previous ones. */
void auth_keys_slot_set(auth_keys_slot *s, auth_keys *keys);

/* --- verification ---------------------------------------------------------------- */

/* What a verified token says. Strings are NUL-terminated and valid UTF-8
 * (JSON strings cannot carry NUL here: jansson refuses \u0000). All of it
 * lives in one allocation owned by the struct: auth_claims_dispose() frees it. */
typedef struct auth_claims {
    const char *sub;         /* "sub"; NULL if absent */
    const char *iss;         /* "iss"; NULL if absent */
    const char *customer_id; /* custom "customer_id" (string); NULL if absent */
    const char *kid;         /* id of the key that verified it; NULL: the secret */
    const char **scopes;     /* from "scope" (space-separated) or "scp" (array) */
    size_t nscopes;          /* at most AUTH_MAX_SCOPES; duplicates kept */
    int64_t exp;             /* unix seconds */
    int64_t iat;             /* unix seconds; 0 if absent */
    const char *alg;         /* "RS256", "ES256", "EdDSA" or "HS256" (static) */
    void *mem_;              /* private: the allocation */
} auth_claims;

/* Frees what auth_jwt_verify put in c and zeroes it; safe on a zeroed or
 * already disposed struct. */
void auth_claims_dispose(auth_claims *c);
/* Whether c holds scope exactly (case-sensitive, as OAuth scopes are). */
bool auth_claims_has_scope(const auth_claims *c, const char *scope);

/* Verifies the compact JWS token[0..len) (no NUL needed) at time now_s (unix
 * seconds) against k:
 *  - at most AUTH_MAX_TOKEN bytes, three non-empty base64url parts (no
 *    padding, no stray characters), header and payload JSON objects (valid
 *    UTF-8, no duplicate member names, nesting <= AUTH_MAX_JSON_DEPTH);
 *  - header "alg" one of RS256, ES256, EdDSA, HS256, no "crit"; with a "kid"
 *    only the key of that id is tried (unknown -> AUTH_EKID), without one
 *    every key of the alg's type; HS256 only with the secret (a kid is then
 *    ignored: there is one secret, and a public key is never an HMAC key);
 *    an empty signature part fails after these checks (AUTH_EMALFORMED);
 *  - "exp" required (number; missing: AUTH_EMALFORMED), now <= exp + leeway; "nbf" and "iat", when
 *    present (numbers), not after now + leeway; "iss" equal to the issuer and
 *    "aud" (string, or array of strings) containing the audience when those
 *    are configured; "sub", "iss", "customer_id", "scope" strings and "scp"
 *    an array of non-empty strings when present; "customer_id" not empty
 *    (an empty one must not read as "every customer"); at most
 *    AUTH_MAX_SCOPES scopes. A wrong type is AUTH_EMALFORMED.
 * On success returns 0 and fills *out (dispose it). On failure returns a
 * negative AUTH_E* code, leaves *out zeroed and writes a short reason to
 * why (e.g. "token expired", "unknown key id") that never contains any part
 * of the token. why may be NULL. Never logs; thread-safe. */
int auth_jwt_verify(const auth_keys *k, const char *token, size_t len, int64_t now_s,
                    auth_claims *out, char *why, size_t whylen);

/* Finds the token in an HTTP Authorization value: "Bearer" (any case), one
 * space, then a non-empty token of RFC 6750 token68 characters
 * (A-Z a-z 0-9 - . _ ~ + / and trailing '='). *tok points into value
 * (borrowed). Returns 0, or AUTH_EMALFORMED for anything else (another
 * scheme, extra spaces, empty token, bad characters). */
int auth_bearer_parse(const uint8_t *value, size_t len, const char **tok, size_t *toklen);

/* --- minting (omsctl token, tests) --------------------------------------------- */

typedef enum auth_alg {
    AUTH_ALG_DEFAULT = 0, /* auth_signer_load: from the key's type */
    AUTH_ALG_RS256,
    AUTH_ALG_ES256,
    AUTH_ALG_EDDSA,
    AUTH_ALG_HS256,
} auth_alg;

/* "RS256", "ES256", "EdDSA", "HS256"; NULL for AUTH_ALG_DEFAULT. */
const char *auth_alg_name(auth_alg alg);
/* Parses those names (case-insensitive). Returns 0 or -1. */
int auth_alg_parse(const char *s, auth_alg *out);

typedef struct auth_signer auth_signer;

/* Loads a signing key: a PEM private key (RSA >= 2048 bits, EC P-256 or
 * Ed25519), or, when the file holds no PEM block, an HS256 secret (raw bytes,
 * trailing CR/LF stripped, >= AUTH_MIN_SECRET bytes). alg must match the key
 * (HS256 only with a secret); AUTH_ALG_DEFAULT picks the key's. Returns NULL
 * with a message in err. */
auth_signer *auth_signer_load(const char *key_file, auth_alg alg, char *err, size_t errlen);
void auth_signer_free(auth_signer *s);
auth_alg auth_signer_alg(const auth_signer *s);
/* The key's RFC 7638 thumbprint (what auth_keys_load uses as the kid of the
 * matching public key); "" for a secret. Owned by s. */
const char *auth_signer_thumbprint(const auth_signer *s);

/* What a minted token carries. NULL/0 members are left out of the token. */
typedef struct auth_token_params {
    const char *sub;
    const char *scope; /* space-separated */
    const char *customer_id;
    const char *iss;
    const char *aud;
    const char *kid; /* header kid; NULL: the thumbprint (asymmetric keys), none for HS256 */
    int64_t iat;     /* unix seconds; also nbf */
    int64_t exp;     /* unix seconds; required (> 0) */
} auth_token_params;

/* Mints a compact JWS. *out is malloc'ed (caller frees). Returns 0, or
 * AUTH_EINVAL (exp missing) / AUTH_ENOMEM / AUTH_ESIG (signing failed) with
 * a message in err. Thread-safe for distinct signers. */
int auth_jwt_sign(const auth_signer *s, const auth_token_params *p, char **out, char *err,
                  size_t errlen);

#endif
