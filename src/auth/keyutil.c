/* keyutil.c - what loading keys and signing share: which key types we take,
 * RFC 7638 thumbprints, reading key and secret files.
 */
#include <errno.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth/auth_int.h"

auth_alg auth__kty_alg(auth_kty kty)
{
    switch (kty) {
    case AUTH_KTY_RSA:
        return AUTH_ALG_RS256;
    case AUTH_KTY_EC:
        return AUTH_ALG_ES256;
    case AUTH_KTY_ED25519:
        return AUTH_ALG_EDDSA;
    }
    return AUTH_ALG_DEFAULT;
}

auth_kty auth__pkey_kty(EVP_PKEY *pkey, char *err, size_t errlen)
{
    switch (EVP_PKEY_get_base_id(pkey)) {
    case EVP_PKEY_RSA:
        if (EVP_PKEY_get_bits(pkey) < 2048) {
            snprintf(err, errlen, "RSA key of %d bits (at least 2048 needed)",
                     EVP_PKEY_get_bits(pkey));
            return 0;
        }
        return AUTH_KTY_RSA;
    case EVP_PKEY_EC: {
        char group[64] = "";
        if (!EVP_PKEY_get_utf8_string_param(pkey, OSSL_PKEY_PARAM_GROUP_NAME, group, sizeof group,
                                            NULL) ||
            strcmp(group, "prime256v1") != 0) {
            snprintf(err, errlen, "EC key on curve %s (only P-256 is supported)",
                     group[0] ? group : "(unknown)");
            return 0;
        }
        return AUTH_KTY_EC;
    }
    case EVP_PKEY_ED25519:
        return AUTH_KTY_ED25519;
    default:
        snprintf(err, errlen, "unsupported key type %s (RSA, EC P-256 or Ed25519)",
                 EVP_PKEY_get0_type_name(pkey) ? EVP_PKEY_get0_type_name(pkey) : "?");
        return 0;
    }
}

/* base64url of a big number's minimal big-endian bytes (len bytes if len > 0)
 * appended at *pos. */
static int put_bn(EVP_PKEY *pkey, const char *param, int len, char *out, size_t *pos)
{
    BIGNUM *bn = NULL;
    if (!EVP_PKEY_get_bn_param(pkey, param, &bn))
        return -1;
    int n = len > 0 ? len : BN_num_bytes(bn);
    uint8_t *buf = malloc((size_t)n + 1);
    if (!buf || (len > 0 ? BN_bn2binpad(bn, buf, len) : BN_bn2bin(bn, buf)) != n) {
        free(buf);
        BN_free(bn);
        return -1;
    }
    auth__b64url_encode(buf, (size_t)n, out + *pos);
    *pos += strlen(out + *pos);
    free(buf);
    BN_free(bn);
    return 0;
}

static void put_str(const char *s, char *out, size_t *pos)
{
    size_t n = strlen(s);
    memcpy(out + *pos, s, n + 1);
    *pos += n;
}

int auth__thumbprint(EVP_PKEY *pkey, auth_kty kty, char out[44])
{
    /* The members in lexicographic order, no whitespace (RFC 7638 3.2).
     * RSA moduli up to 16384 bits fit. */
    size_t cap = 4096, pos = 0;
    char *json = malloc(cap);
    if (!json)
        return -1;
    json[0] = '\0';
    int rv = 0;
    switch (kty) {
    case AUTH_KTY_RSA:
        if (EVP_PKEY_get_bits(pkey) > 16384) {
            rv = -1;
            break;
        }
        put_str("{\"e\":\"", json, &pos);
        rv |= put_bn(pkey, OSSL_PKEY_PARAM_RSA_E, 0, json, &pos);
        put_str("\",\"kty\":\"RSA\",\"n\":\"", json, &pos);
        rv |= put_bn(pkey, OSSL_PKEY_PARAM_RSA_N, 0, json, &pos);
        put_str("\"}", json, &pos);
        break;
    case AUTH_KTY_EC:
        put_str("{\"crv\":\"P-256\",\"kty\":\"EC\",\"x\":\"", json, &pos);
        rv |= put_bn(pkey, OSSL_PKEY_PARAM_EC_PUB_X, 32, json, &pos);
        put_str("\",\"y\":\"", json, &pos);
        rv |= put_bn(pkey, OSSL_PKEY_PARAM_EC_PUB_Y, 32, json, &pos);
        put_str("\"}", json, &pos);
        break;
    case AUTH_KTY_ED25519: {
        uint8_t raw[32];
        size_t rawlen = sizeof raw;
        if (!EVP_PKEY_get_raw_public_key(pkey, raw, &rawlen) || rawlen != 32) {
            rv = -1;
            break;
        }
        put_str("{\"crv\":\"Ed25519\",\"kty\":\"OKP\",\"x\":\"", json, &pos);
        auth__b64url_encode(raw, 32, json + pos);
        pos += strlen(json + pos);
        put_str("\"}", json, &pos);
        break;
    }
    default:
        rv = -1;
    }
    uint8_t md[32];
    unsigned mdlen = 0;
    if (rv == 0 && EVP_Digest(json, pos, md, &mdlen, EVP_sha256(), NULL) && mdlen == 32)
        auth__b64url_encode(md, 32, out);
    else
        rv = -1;
    free(json);
    return rv;
}

uint8_t *auth__read_file(const char *path, size_t max, size_t *len, char *err, size_t errlen)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        return NULL;
    }
    uint8_t *buf = malloc(max + 2);
    if (!buf) {
        fclose(f);
        snprintf(err, errlen, "%s: out of memory", path);
        return NULL;
    }
    size_t n = fread(buf, 1, max + 1, f);
    int bad = ferror(f);
    fclose(f);
    if (bad) {
        snprintf(err, errlen, "%s: read error", path);
        free(buf);
        return NULL;
    }
    if (n > max) {
        snprintf(err, errlen, "%s: larger than %zu bytes", path, max);
        free(buf);
        return NULL;
    }
    buf[n] = '\0';
    *len = n;
    return buf;
}

uint8_t *auth__read_secret(const char *path, size_t *len, char *err, size_t errlen)
{
    size_t n;
    uint8_t *buf = auth__read_file(path, AUTH_MAX_SECRET, &n, err, errlen);
    if (!buf)
        return NULL;
    while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r'))
        n--;
    if (n < AUTH_MIN_SECRET) {
        snprintf(err, errlen, "%s: secret of %zu bytes (at least %d needed)", path, n,
                 AUTH_MIN_SECRET);
        OPENSSL_cleanse(buf, n);
        free(buf);
        return NULL;
    }
    *len = n;
    return buf;
}
