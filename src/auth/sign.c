/* sign.c - minting tokens (omsctl token, tests): a PEM private key or an
 * HS256 secret, a header and a payload built with jansson, a JWS signature.
 */
#include <jansson.h>
#include <openssl/bn.h>
#include <openssl/crypto.h>
#include <openssl/ecdsa.h>
#include <openssl/err.h>
#include <openssl/hmac.h>
#include <openssl/pem.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "auth/auth_int.h"

struct auth_signer {
    auth_alg alg;
    EVP_PKEY *pkey;  /* NULL: HS256 with secret */
    uint8_t *secret; /* NULL: a key */
    size_t secret_len;
    char thumbprint[44]; /* "" for the secret */
};

static const char *const alg_names[] = {NULL, "RS256", "ES256", "EdDSA", "HS256"};

const char *auth_alg_name(auth_alg alg)
{
    return alg > AUTH_ALG_DEFAULT && alg <= AUTH_ALG_HS256 ? alg_names[alg] : NULL;
}

int auth_alg_parse(const char *s, auth_alg *out)
{
    for (int a = AUTH_ALG_RS256; a <= AUTH_ALG_HS256; a++) {
        if (strcasecmp(s, alg_names[a]) == 0) {
            *out = (auth_alg)a;
            return 0;
        }
    }
    return -1;
}

/* Never prompts for a passphrase: an encrypted key just fails to load. */
static int no_passphrase(char *buf, int size, int rwflag, void *u)
{
    (void)buf;
    (void)size;
    (void)rwflag;
    (void)u;
    return -1;
}

static int load_pem(auth_signer *s, const char *path, const uint8_t *doc, size_t len, auth_alg alg,
                    char *err, size_t errlen)
{
    BIO *bio = BIO_new_mem_buf(doc, (int)len);
    s->pkey = bio ? PEM_read_bio_PrivateKey(bio, NULL, no_passphrase, NULL) : NULL;
    BIO_free(bio);
    ERR_clear_error();
    if (!s->pkey) {
        snprintf(err, errlen,
                 "%s: no unencrypted PEM private key in it (a public key cannot sign, "
                 "and HS256 takes a secret file, not a PEM file)",
                 path);
        return -1;
    }
    char why[AUTH_ERRLEN];
    auth_kty kty = auth__pkey_kty(s->pkey, why, sizeof why);
    if (!kty) {
        snprintf(err, errlen, "%s: %s", path, why);
        return -1;
    }
    auth_alg key_alg = auth__kty_alg(kty);
    if (alg != AUTH_ALG_DEFAULT && alg != key_alg) {
        snprintf(err, errlen, "%s: the key is for %s, not %s", path, auth_alg_name(key_alg),
                 auth_alg_name(alg));
        return -1;
    }
    s->alg = key_alg;
    if (auth__thumbprint(s->pkey, kty, s->thumbprint) != 0) {
        snprintf(err, errlen, "%s: cannot compute the key's thumbprint", path);
        return -1;
    }
    return 0;
}

auth_signer *auth_signer_load(const char *key_file, auth_alg alg, char *err, size_t errlen)
{
    auth_signer *s = calloc(1, sizeof *s);
    if (!s) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    size_t len;
    uint8_t *doc = auth__read_file(key_file, AUTH_MAX_KEYS_FILE, &len, err, errlen);
    if (!doc)
        goto fail;
    bool pem = strstr((const char *)doc, "-----BEGIN") != NULL;
    int rv;
    if (pem) {
        rv = load_pem(s, key_file, doc, len, alg, err, errlen);
    } else if (alg != AUTH_ALG_DEFAULT && alg != AUTH_ALG_HS256) {
        snprintf(err, errlen, "%s: not a PEM private key (%s needs one)", key_file,
                 auth_alg_name(alg));
        rv = -1;
    } else {
        s->alg = AUTH_ALG_HS256;
        s->secret = auth__read_secret(key_file, &s->secret_len, err, errlen);
        rv = s->secret ? 0 : -1;
    }
    OPENSSL_cleanse(doc, len);
    free(doc);
    if (rv == 0)
        return s;
fail:
    auth_signer_free(s);
    return NULL;
}

void auth_signer_free(auth_signer *s)
{
    if (!s)
        return;
    EVP_PKEY_free(s->pkey);
    if (s->secret) {
        OPENSSL_cleanse(s->secret, s->secret_len);
        free(s->secret);
    }
    free(s);
}

auth_alg auth_signer_alg(const auth_signer *s)
{
    return s->alg;
}

const char *auth_signer_thumbprint(const auth_signer *s)
{
    return s->thumbprint;
}

/* Signs msg; the JOSE signature goes to sig (at least 1024 bytes: RSA up to
 * 8192 bits), its length to *slen. */
static int sign_bytes(const auth_signer *s, const uint8_t *msg, size_t mlen, uint8_t *sig,
                      size_t *slen)
{
    if (s->alg == AUTH_ALG_HS256) {
        unsigned n = 0;
        if (!HMAC(EVP_sha256(), s->secret, (int)s->secret_len, msg, mlen, sig, &n))
            return -1;
        *slen = n;
        return 0;
    }
    const EVP_MD *md = s->alg == AUTH_ALG_EDDSA ? NULL : EVP_sha256();
    size_t need = 0;
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    uint8_t *der = NULL;
    int rv = -1;
    if (!ctx || EVP_DigestSignInit(ctx, NULL, md, NULL, s->pkey) != 1 ||
        EVP_DigestSign(ctx, NULL, &need, msg, mlen) != 1 || need > 1024 || !(der = malloc(need)) ||
        EVP_DigestSign(ctx, der, &need, msg, mlen) != 1)
        goto out;
    if (s->alg != AUTH_ALG_ES256) {
        memcpy(sig, der, need);
        *slen = need;
        rv = 0;
        goto out;
    }
    /* DER ECDSA-Sig-Value to JOSE's fixed-size r || s. */
    const unsigned char *p = der;
    ECDSA_SIG *es = d2i_ECDSA_SIG(NULL, &p, (long)need);
    if (es && BN_bn2binpad(ECDSA_SIG_get0_r(es), sig, 32) == 32 &&
        BN_bn2binpad(ECDSA_SIG_get0_s(es), sig + 32, 32) == 32) {
        *slen = 64;
        rv = 0;
    }
    ECDSA_SIG_free(es);
out:
    free(der);
    EVP_MD_CTX_free(ctx);
    ERR_clear_error();
    return rv;
}

static int set_str(json_t *o, const char *name, const char *v)
{
    return v ? json_object_set_new(o, name, json_string(v)) : 0;
}

int auth_jwt_sign(const auth_signer *s, const auth_token_params *p, char **out, char *err,
                  size_t errlen)
{
    *out = NULL;
    if (!s || !p || p->exp <= 0) {
        snprintf(err, errlen, "an expiry (exp) is required");
        return AUTH_EINVAL;
    }
    json_t *h = json_object(), *pl = json_object();
    char *hs = NULL, *ps = NULL, *tok = NULL;
    int rv = AUTH_ENOMEM;
    const char *kid = p->kid ? p->kid : s->alg != AUTH_ALG_HS256 ? s->thumbprint : NULL;
    /* json_string() returns NULL for invalid UTF-8, which set_new refuses. */
    if (!h || !pl || set_str(h, "alg", auth_alg_name(s->alg)) || set_str(h, "typ", "JWT") ||
        set_str(h, "kid", kid) || set_str(pl, "iss", p->iss) || set_str(pl, "sub", p->sub) ||
        set_str(pl, "aud", p->aud) || set_str(pl, "scope", p->scope) ||
        set_str(pl, "customer_id", p->customer_id) ||
        (p->iat && (json_object_set_new(pl, "iat", json_integer(p->iat)) ||
                    json_object_set_new(pl, "nbf", json_integer(p->iat)))) ||
        json_object_set_new(pl, "exp", json_integer(p->exp))) {
        snprintf(err, errlen, "cannot build the token (claims must be UTF-8)");
        rv = AUTH_EINVAL;
        goto out;
    }
    hs = json_dumps(h, JSON_COMPACT | JSON_PRESERVE_ORDER);
    ps = json_dumps(pl, JSON_COMPACT | JSON_PRESERVE_ORDER);
    if (!hs || !ps) {
        snprintf(err, errlen, "out of memory");
        goto out;
    }
    size_t hl = auth__b64url_len(strlen(hs)), pll = auth__b64url_len(strlen(ps));
    size_t cap = hl + 1 + pll + 1 + auth__b64url_len(1024) + 1;
    if (!(tok = malloc(cap))) {
        snprintf(err, errlen, "out of memory");
        goto out;
    }
    auth__b64url_encode((const uint8_t *)hs, strlen(hs), tok);
    tok[hl] = '.';
    auth__b64url_encode((const uint8_t *)ps, strlen(ps), tok + hl + 1);
    uint8_t sig[1024];
    size_t slen = 0;
    if (sign_bytes(s, (const uint8_t *)tok, hl + 1 + pll, sig, &slen) != 0) {
        snprintf(err, errlen, "signing failed");
        rv = AUTH_ESIG;
        goto out;
    }
    tok[hl + 1 + pll] = '.';
    auth__b64url_encode(sig, slen, tok + hl + 1 + pll + 1);
    *out = tok;
    tok = NULL;
    rv = 0;
out:
    free(tok);
    free(hs);
    free(ps);
    json_decref(h);
    json_decref(pl);
    return rv;
}
