/* jwks.c - a JWK Set (RFC 7517) of public keys: RSA, EC P-256, OKP Ed25519.
 *
 * Strict on purpose: an entry we cannot use (another curve, a symmetric or
 * private key, "use":"enc") fails the whole load, so an operator learns at
 * start-up, not from a rejected token, that a key is not in effect.
 */
#include <jansson.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/param_build.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth/auth_int.h"

#define MAX_JWK_BYTES 2048 /* decoded bytes of one member (RSA-16384's modulus) */

/* Decodes the base64url member name of o into buf; its length, or -1. */
static long b64_member(json_t *o, const char *name, uint8_t *buf, char *why, size_t whylen)
{
    json_t *v = json_object_get(o, name);
    const char *s = json_string_value(v);
    size_t len = s ? json_string_length(v) : 0;
    if (!s || len == 0) {
        snprintf(why, whylen, "\"%s\" missing or not a string", name);
        return -1;
    }
    if (len > MAX_JWK_BYTES * 4 / 3 + 2) {
        snprintf(why, whylen, "\"%s\" too long", name);
        return -1;
    }
    long n = auth__b64url_decode(s, len, buf);
    if (n <= 0)
        snprintf(why, whylen, "\"%s\" is not base64url", name);
    return n <= 0 ? -1 : n;
}

/* Builds a public key of type kname ("RSA", "EC") from params. */
static EVP_PKEY *from_params(const char *kname, OSSL_PARAM_BLD *bld)
{
    EVP_PKEY *pkey = NULL;
    OSSL_PARAM *params = OSSL_PARAM_BLD_to_param(bld);
    EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_name(NULL, kname, NULL);
    if (params && ctx && EVP_PKEY_fromdata_init(ctx) == 1)
        (void)EVP_PKEY_fromdata(ctx, &pkey, EVP_PKEY_PUBLIC_KEY, params);
    EVP_PKEY_CTX_free(ctx);
    OSSL_PARAM_free(params);
    return pkey;
}

static EVP_PKEY *rsa_key(json_t *o, uint8_t *buf, char *why, size_t whylen)
{
    EVP_PKEY *pkey = NULL;
    BIGNUM *n = NULL, *e = NULL;
    long len = b64_member(o, "n", buf, why, whylen);
    if (len < 0 || !(n = BN_bin2bn(buf, (int)len, NULL)))
        goto out;
    len = b64_member(o, "e", buf, why, whylen);
    if (len < 0 || !(e = BN_bin2bn(buf, (int)len, NULL)))
        goto out;
    OSSL_PARAM_BLD *bld = OSSL_PARAM_BLD_new();
    if (bld && OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_N, n) &&
        OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_E, e))
        pkey = from_params("RSA", bld);
    OSSL_PARAM_BLD_free(bld);
    if (!pkey)
        snprintf(why, whylen, "not a valid RSA public key");
out:
    BN_free(n);
    BN_free(e);
    return pkey;
}

/* b64_member for a member that must decode to exactly 32 bytes (a P-256
 * coordinate, an Ed25519 key). Returns 0 or -1 with why. */
static int b64_member32(json_t *o, const char *name, uint8_t *buf, char *why, size_t whylen)
{
    long n = b64_member(o, name, buf, why, whylen);
    if (n < 0)
        return -1;
    if (n != 32) {
        snprintf(why, whylen, "\"%s\" is not 32 bytes", name);
        return -1;
    }
    return 0;
}

static EVP_PKEY *ec_key(json_t *o, uint8_t *buf, char *why, size_t whylen)
{
    const char *crv = json_string_value(json_object_get(o, "crv"));
    if (!crv || strcmp(crv, "P-256") != 0) {
        snprintf(why, whylen, "EC curve %s not supported (only P-256)", crv ? crv : "missing");
        return NULL;
    }
    uint8_t pub[65];
    pub[0] = 0x04; /* uncompressed point: 04 || x || y */
    if (b64_member32(o, "x", buf, why, whylen) != 0)
        return NULL;
    memcpy(pub + 1, buf, 32);
    if (b64_member32(o, "y", buf, why, whylen) != 0)
        return NULL;
    memcpy(pub + 33, buf, 32);
    EVP_PKEY *pkey = NULL;
    OSSL_PARAM_BLD *bld = OSSL_PARAM_BLD_new();
    if (bld && OSSL_PARAM_BLD_push_utf8_string(bld, OSSL_PKEY_PARAM_GROUP_NAME, "prime256v1", 0) &&
        OSSL_PARAM_BLD_push_octet_string(bld, OSSL_PKEY_PARAM_PUB_KEY, pub, sizeof pub))
        pkey = from_params("EC", bld);
    OSSL_PARAM_BLD_free(bld);
    if (!pkey)
        snprintf(why, whylen, "not a valid P-256 public key");
    return pkey;
}

static EVP_PKEY *okp_key(json_t *o, uint8_t *buf, char *why, size_t whylen)
{
    const char *crv = json_string_value(json_object_get(o, "crv"));
    if (!crv || strcmp(crv, "Ed25519") != 0) {
        snprintf(why, whylen, "OKP curve %s not supported (only Ed25519)", crv ? crv : "missing");
        return NULL;
    }
    if (b64_member32(o, "x", buf, why, whylen) != 0)
        return NULL;
    EVP_PKEY *pkey = EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, NULL, buf, 32);
    if (!pkey)
        snprintf(why, whylen, "not a valid Ed25519 public key");
    return pkey;
}

/* One JWK to a key added to k. Returns 0 or -1 with why. */
static int jwk_load(auth_keys *k, json_t *o, uint8_t *buf, char *why, size_t whylen)
{
    if (!json_is_object(o)) {
        snprintf(why, whylen, "not a JSON object");
        return -1;
    }
    const char *kty = json_string_value(json_object_get(o, "kty"));
    json_t *kidv = json_object_get(o, "kid");
    json_t *use = json_object_get(o, "use");
    json_t *alg = json_object_get(o, "alg");
    if (!kty) {
        snprintf(why, whylen, "\"kty\" missing or not a string");
        return -1;
    }
    if (kidv && !json_is_string(kidv)) {
        snprintf(why, whylen, "\"kid\" is not a string");
        return -1;
    }
    if (json_object_get(o, "d")) {
        snprintf(why, whylen, "holds a private key (\"d\"): publish only public keys");
        return -1;
    }
    if (use && (!json_is_string(use) || strcmp(json_string_value(use), "sig") != 0)) {
        snprintf(why, whylen, "\"use\" is not \"sig\"");
        return -1;
    }
    EVP_PKEY *pkey;
    if (strcmp(kty, "RSA") == 0) {
        pkey = rsa_key(o, buf, why, whylen);
    } else if (strcmp(kty, "EC") == 0) {
        pkey = ec_key(o, buf, why, whylen);
    } else if (strcmp(kty, "OKP") == 0) {
        pkey = okp_key(o, buf, why, whylen);
    } else if (strcmp(kty, "oct") == 0) {
        snprintf(why, whylen, "symmetric key: an HS256 secret goes in the secret file");
        return -1;
    } else {
        snprintf(why, whylen, "unknown \"kty\" %.32s", kty);
        return -1;
    }
    if (!pkey)
        return -1;
    auth_kty t = auth__pkey_kty(pkey, why, whylen);
    if (!t) {
        EVP_PKEY_free(pkey);
        return -1;
    }
    const char *want = auth_alg_name(auth__kty_alg(t));
    if (alg && (!json_is_string(alg) || strcmp(json_string_value(alg), want) != 0)) {
        snprintf(why, whylen, "\"alg\" does not match the key type (%s expected)", want);
        EVP_PKEY_free(pkey);
        return -1;
    }
    return auth__keys_add(k, pkey, t, json_string_value(kidv), why, whylen);
}

int auth__jwks_load(auth_keys *k, const char *path, const uint8_t *doc, size_t len, char *err,
                    size_t errlen)
{
    json_error_t jerr;
    json_t *root = json_loadb((const char *)doc, len, JSON_REJECT_DUPLICATES, &jerr);
    if (!root) {
        snprintf(err, errlen, "%s: bad JSON at line %d: %s", path, jerr.line, jerr.text);
        return -1;
    }
    json_t *keys = json_object_get(root, "keys");
    size_t n = json_array_size(keys);
    if (!json_is_array(keys) || n == 0) {
        snprintf(err, errlen, "%s: JWKS has no \"keys\" array or it is empty", path);
        json_decref(root);
        return -1;
    }
    uint8_t *buf = malloc(MAX_JWK_BYTES + 4);
    int rv = 0;
    char why[AUTH_ERRLEN];
    if (!buf) {
        snprintf(err, errlen, "%s: out of memory", path);
        rv = -1;
    }
    for (size_t i = 0; rv == 0 && i < n; i++) {
        if (jwk_load(k, json_array_get(keys, i), buf, why, sizeof why) != 0) {
            snprintf(err, errlen, "%s: keys[%zu]: %s", path, i, why);
            rv = -1;
        }
    }
    free(buf);
    json_decref(root);
    return rv;
}
