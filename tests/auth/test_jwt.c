/* test_jwt.c - src/auth/jwt.h: loading keys (PEM, JWKS, secret), verifying
 * tokens (each algorithm, every way a token can be wrong), minting, the
 * bearer parser and the key slot.
 *
 * Tokens are mostly built here by hand with OpenSSL's EVP API (mk_token), so
 * the verifier is not only ever fed by its own signer. The keys are small
 * committed test keys (tests/auth/keys/, generated with openssl genpkey).
 */
#include <criterion/criterion.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/ecdsa.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/pem.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "auth/jwt.h"

#define NOW    1800000000LL
#define SECRET "0123456789abcdef0123456789abcdef-test-secret"

/* --- CRYPTO_memcmp is what compares MACs (linked with --wrap) ----------------- */

static int memcmp_calls;
int __real_CRYPTO_memcmp(const void *a, const void *b, size_t n);
int __wrap_CRYPTO_memcmp(const void *a, const void *b, size_t n);
int __wrap_CRYPTO_memcmp(const void *a, const void *b, size_t n)
{
    memcmp_calls++;
    return __real_CRYPTO_memcmp(a, b, n);
}

/* --- helpers ------------------------------------------------------------------ */

static const char *key_path(const char *name)
{
    static char buf[4][512];
    static int k;
    char *p = buf[k++ % 4];
    snprintf(p, 512, "%s/%s", AUTH_TEST_KEYS, name);
    return p;
}

static EVP_PKEY *load_priv(const char *name)
{
    FILE *f = fopen(key_path(name), "r");
    cr_assert_not_null(f, "%s", name);
    EVP_PKEY *k = PEM_read_PrivateKey(f, NULL, NULL, NULL);
    fclose(f);
    cr_assert_not_null(k);
    return k;
}

/* Temporary files of the running test, removed by its fini. */
static char tmp_paths[128][64];
static int ntmp;

static void remove_tmp_files(void)
{
    for (int i = 0; i < ntmp; i++)
        unlink(tmp_paths[i]);
    ntmp = 0;
}

TestSuite(auth_jwt, .fini = remove_tmp_files);

/* A temporary file holding s; the path lives until the test ends. */
static const char *tmp_file(const void *s, size_t n)
{
    cr_assert_lt(ntmp, 128);
    char *p = tmp_paths[ntmp++];
    snprintf(p, 64, "/tmp/oms-auth-test-XXXXXX");
    int fd = mkstemp(p);
    cr_assert(fd >= 0);
    cr_assert_eq(write(fd, s, n), (ssize_t)n);
    close(fd);
    return p;
}

static const char *tmp_str(const char *s)
{
    return tmp_file(s, strlen(s));
}

/* An independent base64url encoder (not the library's). */
static void b64u(const uint8_t *p, size_t n, char *out)
{
    static const char t[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    size_t o = 0;
    for (size_t i = 0; i < n; i += 3) {
        uint32_t v = (uint32_t)p[i] << 16;
        if (i + 1 < n)
            v |= (uint32_t)p[i + 1] << 8;
        if (i + 2 < n)
            v |= p[i + 2];
        out[o++] = t[v >> 18 & 63];
        out[o++] = t[v >> 12 & 63];
        if (i + 1 < n)
            out[o++] = t[v >> 6 & 63];
        if (i + 2 < n)
            out[o++] = t[v & 63];
    }
    out[o] = '\0';
}

typedef enum { SIG_KEY, SIG_HMAC, SIG_NONE } sig_kind;

/* header.payload.signature from raw JSON texts. SIG_KEY: signs with key by
 * its type (RS256/ES256/EdDSA, ES256 converted to r||s); SIG_HMAC: HMAC-SHA256
 * with the secret bytes; SIG_NONE: an empty signature part. Returns a
 * static buffer. */
static char *mk_token_raw(const char *hdr, size_t hlen, const char *pl, size_t plen, sig_kind kind,
                          EVP_PKEY *key, const void *secret, size_t secret_len)
{
    static char tok[16384];
    b64u((const uint8_t *)hdr, hlen, tok);
    strcat(tok, ".");
    b64u((const uint8_t *)pl, plen, tok + strlen(tok));
    size_t mlen = strlen(tok);
    uint8_t sig[1024];
    size_t slen = 0;
    if (kind == SIG_HMAC) {
        unsigned n = 0;
        cr_assert_not_null(
            HMAC(EVP_sha256(), secret, (int)secret_len, (uint8_t *)tok, mlen, sig, &n));
        slen = n;
    } else if (kind == SIG_KEY) {
        int id = EVP_PKEY_get_base_id(key);
        EVP_MD_CTX *ctx = EVP_MD_CTX_new();
        cr_assert_eq(
            EVP_DigestSignInit(ctx, NULL, id == EVP_PKEY_ED25519 ? NULL : EVP_sha256(), NULL, key),
            1);
        slen = sizeof sig;
        cr_assert_eq(EVP_DigestSign(ctx, sig, &slen, (uint8_t *)tok, mlen), 1);
        EVP_MD_CTX_free(ctx);
        if (id == EVP_PKEY_EC) {
            const uint8_t *p = sig;
            ECDSA_SIG *es = d2i_ECDSA_SIG(NULL, &p, (long)slen);
            cr_assert_not_null(es);
            BN_bn2binpad(ECDSA_SIG_get0_r(es), sig, 32);
            BN_bn2binpad(ECDSA_SIG_get0_s(es), sig + 32, 32);
            ECDSA_SIG_free(es);
            slen = 64;
        }
    }
    strcat(tok, ".");
    b64u(sig, slen, tok + strlen(tok));
    return tok;
}

static char *mk_token(const char *hdr, const char *pl, sig_kind kind, EVP_PKEY *key)
{
    return mk_token_raw(hdr, strlen(hdr), pl, strlen(pl), kind, key, SECRET, strlen(SECRET));
}

/* A payload valid at NOW, with extra members appended (",..." or ""). */
static const char *payload(const char *extra)
{
    static char buf[4096];
    snprintf(
        buf, sizeof buf,
        "{\"sub\":\"alice\",\"exp\":%lld,\"iat\":%lld,\"scope\":\"orders:read orders:write\"%s}",
        NOW + 600, NOW - 10, extra);
    return buf;
}

static auth_keys *keys_load(const char *pubs, const char *secret, const char *iss, const char *aud)
{
    auth_keys_config cfg = {.jwt_keys_file = pubs,
                            .secret_file = secret,
                            .issuer = iss,
                            .audience = aud,
                            .leeway_s = -1};
    char err[AUTH_ERRLEN] = "";
    auth_keys *k = auth_keys_load(&cfg, err, sizeof err);
    cr_assert_not_null(k, "load failed: %s", err);
    return k;
}

/* The load error message for cfg, or NULL when it loaded (then freed). */
static const char *load_err(const char *pubs, const char *secret)
{
    static char err[AUTH_ERRLEN];
    err[0] = '\0';
    auth_keys_config cfg = {.jwt_keys_file = pubs, .secret_file = secret, .leeway_s = -1};
    auth_keys *k = auth_keys_load(&cfg, err, sizeof err);
    if (k) {
        auth_keys_unref(k);
        return NULL;
    }
    cr_assert(err[0] != '\0');
    return err;
}

static char why[AUTH_ERRLEN];

static int verify_at(auth_keys *k, const char *tok, int64_t now)
{
    auth_claims c;
    why[0] = '\0';
    int rv = auth_jwt_verify(k, tok, strlen(tok), now, &c, why, sizeof why);
    if (rv == 0)
        auth_claims_dispose(&c);
    else
        cr_assert_null(c.mem_);
    return rv;
}

static int verify(auth_keys *k, const char *tok)
{
    return verify_at(k, tok, NOW);
}

/* The file text of the given public keys concatenated. */
static const char *pem_bundle(const char *a, const char *b, const char *c)
{
    static char buf[8192];
    buf[0] = '\0';
    const char *names[] = {a, b, c};
    for (int i = 0; i < 3; i++) {
        if (!names[i])
            continue;
        FILE *f = fopen(key_path(names[i]), "r");
        cr_assert_not_null(f);
        size_t n = strlen(buf);
        n += fread(buf + n, 1, sizeof buf - n - 1, f);
        buf[n] = '\0';
        fclose(f);
    }
    return tmp_str(buf);
}

/* --- JWK members, computed here from the keys with EVP ------------------------ */

static void bn_b64(EVP_PKEY *k, const char *param, int pad, char *out)
{
    BIGNUM *bn = NULL;
    cr_assert(EVP_PKEY_get_bn_param(k, param, &bn));
    uint8_t buf[1024];
    int n = pad ? BN_bn2binpad(bn, buf, pad) : BN_bn2bin(bn, buf);
    b64u(buf, (size_t)n, out);
    BN_free(bn);
}

static void jwk_rsa(const char *name, const char *kid, char *out, size_t len)
{
    EVP_PKEY *k = load_priv(name);
    char n[1024], e[16];
    bn_b64(k, OSSL_PKEY_PARAM_RSA_N, 0, n);
    bn_b64(k, OSSL_PKEY_PARAM_RSA_E, 0, e);
    snprintf(out, len,
             "{\"kty\":\"RSA\",\"kid\":\"%s\",\"use\":\"sig\",\"alg\":\"RS256\","
             "\"n\":\"%s\",\"e\":\"%s\"}",
             kid, n, e);
    EVP_PKEY_free(k);
}

static void jwk_ec(const char *kid, char *out, size_t len)
{
    EVP_PKEY *k = load_priv("ec.key");
    char x[64], y[64];
    bn_b64(k, OSSL_PKEY_PARAM_EC_PUB_X, 32, x);
    bn_b64(k, OSSL_PKEY_PARAM_EC_PUB_Y, 32, y);
    snprintf(out, len,
             "{\"kty\":\"EC\",\"crv\":\"P-256\",\"kid\":\"%s\",\"x\":\"%s\",\"y\":\"%s\"}", kid, x,
             y);
    EVP_PKEY_free(k);
}

static void jwk_ed(const char *kid, char *out, size_t len)
{
    EVP_PKEY *k = load_priv("ed25519.key");
    uint8_t raw[32];
    size_t rl = 32;
    cr_assert(EVP_PKEY_get_raw_public_key(k, raw, &rl));
    char x[64];
    b64u(raw, 32, x);
    snprintf(out, len, "{\"kty\":\"OKP\",\"crv\":\"Ed25519\",\"kid\":\"%s\",\"x\":\"%s\"}", kid, x);
    EVP_PKEY_free(k);
}

static const char *jwks_all(void)
{
    static char doc[8192];
    char r[2048], e[512], d[512];
    jwk_rsa("rsa.key", "r1", r, sizeof r);
    jwk_ec("e1", e, sizeof e);
    jwk_ed("d1", d, sizeof d);
    snprintf(doc, sizeof doc, "{\"keys\":[%s,%s,%s]}", r, e, d);
    return tmp_str(doc);
}

/* --- each algorithm, hand-built tokens --------------------------------------- */

Test(auth_jwt, rs256_hand_built)
{
    auth_keys *k = keys_load(key_path("rsa.pub"), NULL, NULL, NULL);
    EVP_PKEY *pk = load_priv("rsa.key");
    const char *tok = mk_token("{\"alg\":\"RS256\",\"typ\":\"JWT\"}",
                               payload(",\"customer_id\":\"c-7\""), SIG_KEY, pk);
    auth_claims c;
    cr_assert_eq(auth_jwt_verify(k, tok, strlen(tok), NOW, &c, why, sizeof why), 0, "%s", why);
    cr_assert_str_eq(c.sub, "alice");
    cr_assert_str_eq(c.customer_id, "c-7");
    cr_assert_str_eq(c.alg, "RS256");
    cr_assert_eq(c.nscopes, 2);
    cr_assert_str_eq(c.scopes[0], "orders:read");
    cr_assert_str_eq(c.scopes[1], "orders:write");
    cr_assert(auth_claims_has_scope(&c, "orders:write"));
    cr_assert_not(auth_claims_has_scope(&c, "orders"));
    cr_assert_eq(c.exp, NOW + 600);
    cr_assert_eq(c.iat, NOW - 10);
    cr_assert_not_null(c.kid); /* the PEM key's thumbprint */
    cr_assert_eq(strlen(c.kid), 43);
    auth_claims_dispose(&c);
    auth_claims_dispose(&c); /* twice is harmless */
    EVP_PKEY_free(pk);
    auth_keys_unref(k);
}

Test(auth_jwt, es256_hand_built)
{
    auth_keys *k = keys_load(key_path("ec.pub"), NULL, NULL, NULL);
    EVP_PKEY *pk = load_priv("ec.key");
    cr_assert_eq(verify(k, mk_token("{\"alg\":\"ES256\"}", payload(""), SIG_KEY, pk)), 0, "%s",
                 why);
    EVP_PKEY_free(pk);
    auth_keys_unref(k);
}

Test(auth_jwt, eddsa_hand_built)
{
    auth_keys *k = keys_load(key_path("ed25519.pub"), NULL, NULL, NULL);
    EVP_PKEY *pk = load_priv("ed25519.key");
    cr_assert_eq(verify(k, mk_token("{\"alg\":\"EdDSA\"}", payload(""), SIG_KEY, pk)), 0, "%s",
                 why);
    EVP_PKEY_free(pk);
    auth_keys_unref(k);
}

Test(auth_jwt, hs256_hand_built_uses_crypto_memcmp)
{
    auth_keys *k = keys_load(NULL, tmp_str(SECRET "\n"), NULL, NULL);
    cr_assert(auth_keys_has_secret(k));
    cr_assert_eq(auth_keys_count(k), 0);
    memcmp_calls = 0;
    /* the trailing newline of the file is not part of the secret */
    cr_assert_eq(verify(k, mk_token("{\"alg\":\"HS256\"}", payload(""), SIG_HMAC, NULL)), 0, "%s",
                 why);
    cr_assert_eq(memcmp_calls, 1);
    const char *bad = mk_token_raw("{\"alg\":\"HS256\"}", 15, payload(""), strlen(payload("")),
                                   SIG_HMAC, NULL, SECRET "x", strlen(SECRET) + 1);
    cr_assert_eq(verify(k, bad), AUTH_ESIG);
    cr_assert_eq(memcmp_calls, 2);
    cr_assert_str_eq(why, "bad signature");
    auth_keys_unref(k);
}

/* --- the signer, verified ------------------------------------------------------- */

static void sign_and_verify(const char *priv, const char *pubs, const char *secret, auth_alg want)
{
    char err[AUTH_ERRLEN] = "";
    auth_signer *s = auth_signer_load(priv, AUTH_ALG_DEFAULT, err, sizeof err);
    cr_assert_not_null(s, "%s", err);
    cr_assert_eq(auth_signer_alg(s), want);
    auth_token_params p = {.sub = "svc-orders",
                           .scope = "orders:read  inventory:write",
                           .customer_id = "c-1",
                           .iss = "oms-dev",
                           .aud = "oms",
                           .iat = NOW,
                           .exp = NOW + 3600};
    char *tok = NULL;
    cr_assert_eq(auth_jwt_sign(s, &p, &tok, err, sizeof err), 0, "%s", err);
    auth_keys *k = keys_load(pubs, secret, "oms-dev", "oms");
    auth_claims c;
    cr_assert_eq(auth_jwt_verify(k, tok, strlen(tok), NOW + 5, &c, why, sizeof why), 0, "%s", why);
    cr_assert_str_eq(c.sub, "svc-orders");
    cr_assert_str_eq(c.iss, "oms-dev");
    cr_assert_str_eq(c.customer_id, "c-1");
    cr_assert_eq(c.nscopes, 2);
    cr_assert_str_eq(c.scopes[1], "inventory:write");
    cr_assert_str_eq(c.alg, auth_alg_name(want));
    if (want == AUTH_ALG_HS256)
        cr_assert_null(c.kid);
    else
        cr_assert_str_eq(c.kid, auth_signer_thumbprint(s));
    auth_claims_dispose(&c);
    /* one flipped signature character fails */
    size_t n = strlen(tok);
    tok[n - 2] = tok[n - 2] == 'A' ? 'B' : 'A';
    cr_assert_neq(verify_at(k, tok, NOW), 0);
    free(tok);
    auth_keys_unref(k);
    auth_signer_free(s);
}

Test(auth_jwt, signer_rs256)
{
    sign_and_verify(key_path("rsa.key"), key_path("rsa.pub"), NULL, AUTH_ALG_RS256);
}

Test(auth_jwt, signer_es256)
{
    sign_and_verify(key_path("ec.key"), key_path("ec.pub"), NULL, AUTH_ALG_ES256);
}

Test(auth_jwt, signer_eddsa)
{
    sign_and_verify(key_path("ed25519.key"), key_path("ed25519.pub"), NULL, AUTH_ALG_EDDSA);
}

Test(auth_jwt, signer_hs256)
{
    const char *sec = tmp_str(SECRET "\r\n");
    sign_and_verify(sec, NULL, sec, AUTH_ALG_HS256);
}

Test(auth_jwt, signer_tokens_verify_against_jwks_by_thumbprint_kid)
{
    /* The signer's default kid is the RFC 7638 thumbprint; a JWKS entry
     * without "kid" gets the same one. */
    EVP_PKEY *k = load_priv("ec.key");
    char x[64], y[64], doc[512];
    bn_b64(k, OSSL_PKEY_PARAM_EC_PUB_X, 32, x);
    bn_b64(k, OSSL_PKEY_PARAM_EC_PUB_Y, 32, y);
    EVP_PKEY_free(k);
    snprintf(doc, sizeof doc,
             "{\"keys\":[{\"kty\":\"EC\",\"crv\":\"P-256\",\"x\":\"%s\",\"y\":\"%s\"}]}", x, y);
    sign_and_verify(key_path("ec.key"), tmp_str(doc), NULL, AUTH_ALG_ES256);
}

Test(auth_jwt, signer_refuses_bad_keys)
{
    char err[AUTH_ERRLEN];
    cr_assert_null(auth_signer_load(key_path("ec.key"), AUTH_ALG_RS256, err, sizeof err));
    cr_assert(strstr(err, "ES256"), "%s", err);
    cr_assert_null(auth_signer_load(key_path("rsa.key"), AUTH_ALG_HS256, err, sizeof err));
    cr_assert_null(auth_signer_load(key_path("rsa.pub"), AUTH_ALG_DEFAULT, err, sizeof err));
    cr_assert_null(auth_signer_load(key_path("rsa.pub"), AUTH_ALG_HS256, err, sizeof err));
    cr_assert_null(auth_signer_load(key_path("rsa1024.key"), AUTH_ALG_DEFAULT, err, sizeof err));
    cr_assert_null(auth_signer_load(key_path("p384.key"), AUTH_ALG_DEFAULT, err, sizeof err));
    cr_assert_null(auth_signer_load(tmp_str("short\n"), AUTH_ALG_DEFAULT, err, sizeof err));
    cr_assert_null(auth_signer_load(tmp_str(SECRET), AUTH_ALG_ES256, err, sizeof err));
    cr_assert_null(auth_signer_load("/nonexistent/key", AUTH_ALG_DEFAULT, err, sizeof err));
    auth_signer *s = auth_signer_load(tmp_str(SECRET), AUTH_ALG_HS256, err, sizeof err);
    cr_assert_not_null(s);
    char *tok = (char *)1;
    auth_token_params p = {.sub = "x"}; /* no exp */
    cr_assert_eq(auth_jwt_sign(s, &p, &tok, err, sizeof err), AUTH_EINVAL);
    cr_assert_null(tok);
    p.exp = NOW;
    p.sub = "\xff\xfe"; /* not UTF-8 */
    cr_assert_eq(auth_jwt_sign(s, &p, &tok, err, sizeof err), AUTH_EINVAL);
    auth_signer_free(s);
}

Test(auth_jwt, alg_names)
{
    auth_alg a;
    cr_assert_eq(auth_alg_parse("eddsa", &a), 0);
    cr_assert_eq(a, AUTH_ALG_EDDSA);
    cr_assert_eq(auth_alg_parse("none", &a), -1);
    cr_assert_null(auth_alg_name(AUTH_ALG_DEFAULT));
    cr_assert_str_eq(auth_strerror(AUTH_EKID), "unknown key id");
}

/* --- loading -------------------------------------------------------------------- */

Test(auth_jwt, pem_bundle_of_three_types)
{
    auth_keys *k = keys_load(pem_bundle("rsa.pub", "ec.pub", "ed25519.pub"), NULL, NULL, NULL);
    cr_assert_eq(auth_keys_count(k), 3);
    cr_assert_not(auth_keys_has_secret(k));
    const char *names[] = {"rsa.key", "ec.key", "ed25519.key"};
    const char *hdrs[] = {"{\"alg\":\"RS256\"}", "{\"alg\":\"ES256\"}", "{\"alg\":\"EdDSA\"}"};
    for (int i = 0; i < 3; i++) {
        EVP_PKEY *pk = load_priv(names[i]);
        cr_assert_eq(verify(k, mk_token(hdrs[i], payload(""), SIG_KEY, pk)), 0, "%s: %s", names[i],
                     why);
        EVP_PKEY_free(pk);
    }
    /* a key not in the bundle */
    EVP_PKEY *other = load_priv("rsa2.key");
    cr_assert_eq(verify(k, mk_token(hdrs[0], payload(""), SIG_KEY, other)), AUTH_ESIG);
    EVP_PKEY_free(other);
    auth_keys_unref(k);
}

Test(auth_jwt, pem_certificate_accepted)
{
    /* a self-signed certificate of the EC key: its public key is used */
    EVP_PKEY *pk = load_priv("ec.key");
    X509 *x = X509_new();
    X509_set_version(x, 2);
    ASN1_INTEGER_set(X509_get_serialNumber(x), 1);
    X509_gmtime_adj(X509_getm_notBefore(x), 0);
    X509_gmtime_adj(X509_getm_notAfter(x), 3600);
    X509_set_pubkey(x, pk);
    X509_NAME_add_entry_by_txt(X509_get_subject_name(x), "CN", MBSTRING_ASC,
                               (const unsigned char *)"jwt", -1, -1, 0);
    X509_set_issuer_name(x, X509_get_subject_name(x));
    cr_assert(X509_sign(x, pk, EVP_sha256()) > 0);
    BIO *b = BIO_new(BIO_s_mem());
    PEM_write_bio_X509(b, x);
    char *data;
    long n = BIO_get_mem_data(b, &data);
    auth_keys *k = keys_load(tmp_file(data, (size_t)n), NULL, NULL, NULL);
    BIO_free(b);
    X509_free(x);
    cr_assert_eq(verify(k, mk_token("{\"alg\":\"ES256\"}", payload(""), SIG_KEY, pk)), 0);
    EVP_PKEY_free(pk);
    auth_keys_unref(k);
}

Test(auth_jwt, bad_key_files_refused_with_a_reason)
{
    const char *e;
    cr_assert_not_null(e = load_err(NULL, NULL));
    cr_assert_not_null(e = load_err("/nonexistent/keys.pem", NULL));
    cr_assert(strstr(e, "No such file"), "%s", e);
    cr_assert_not_null(e = load_err(tmp_str(""), NULL));
    cr_assert(strstr(e, "no PEM public key"), "%s", e);
    cr_assert_not_null(e = load_err(tmp_str("hello world\n"), NULL));
    cr_assert_not_null(e = load_err(key_path("rsa.key"), NULL));
    cr_assert(strstr(e, "private key"), "%s", e);
    cr_assert_not_null(e = load_err(key_path("rsa1024.pub"), NULL));
    cr_assert(strstr(e, "2048"), "%s", e);
    cr_assert_not_null(e = load_err(key_path("p384.pub"), NULL));
    cr_assert(strstr(e, "P-256"), "%s", e);
    /* a good key then a broken block */
    cr_assert_not_null(e = load_err(tmp_str("-----BEGIN PUBLIC KEY-----\nAAAA!!!!\n"
                                            "-----END PUBLIC KEY-----\n"),
                                    NULL));
    cr_assert_not_null(
        e = load_err(tmp_str("-----BEGIN FOO-----\nAAAA\n-----END FOO-----\n"), NULL));
    cr_assert(strstr(e, "FOO"), "%s", e);
    /* the same key twice: same thumbprint */
    cr_assert_not_null(e = load_err(pem_bundle("ec.pub", "ec.pub", NULL), NULL));
    cr_assert(strstr(e, "duplicate"), "%s", e);
    /* secrets */
    cr_assert_not_null(e = load_err(NULL, tmp_str("0123456789abcdef0123456789abcde\n")));
    cr_assert(strstr(e, "31 bytes"), "%s", e);
    cr_assert_not_null(e = load_err(NULL, "/nonexistent/secret"));
    cr_assert_null(load_err(NULL, tmp_str("0123456789abcdef0123456789abcdef")));
}

Test(auth_jwt, jwks_each_type_by_kid)
{
    auth_keys *k = keys_load(jwks_all(), NULL, NULL, NULL);
    cr_assert_eq(auth_keys_count(k), 3);
    EVP_PKEY *rsa = load_priv("rsa.key"), *ec = load_priv("ec.key"), *ed = load_priv("ed25519.key");
    auth_claims c;
    const char *tok = mk_token("{\"alg\":\"RS256\",\"kid\":\"r1\"}", payload(""), SIG_KEY, rsa);
    cr_assert_eq(auth_jwt_verify(k, tok, strlen(tok), NOW, &c, why, sizeof why), 0, "%s", why);
    cr_assert_str_eq(c.kid, "r1");
    auth_claims_dispose(&c);
    cr_assert_eq(
        verify(k, mk_token("{\"alg\":\"ES256\",\"kid\":\"e1\"}", payload(""), SIG_KEY, ec)), 0,
        "%s", why);
    cr_assert_eq(
        verify(k, mk_token("{\"alg\":\"EdDSA\",\"kid\":\"d1\"}", payload(""), SIG_KEY, ed)), 0);
    /* no kid: the keys of the alg's type are tried */
    cr_assert_eq(verify(k, mk_token("{\"alg\":\"EdDSA\"}", payload(""), SIG_KEY, ed)), 0);
    /* unknown kid fails even though a key of that type would verify */
    cr_assert_eq(
        verify(k, mk_token("{\"alg\":\"ES256\",\"kid\":\"e2\"}", payload(""), SIG_KEY, ec)),
        AUTH_EKID);
    cr_assert_str_eq(why, "unknown key id");
    /* a kid of the wrong key type */
    cr_assert_eq(
        verify(k, mk_token("{\"alg\":\"RS256\",\"kid\":\"e1\"}", payload(""), SIG_KEY, rsa)),
        AUTH_EALG);
    /* right kid, wrong signer */
    EVP_PKEY *rsa2 = load_priv("rsa2.key");
    cr_assert_eq(
        verify(k, mk_token("{\"alg\":\"RS256\",\"kid\":\"r1\"}", payload(""), SIG_KEY, rsa2)),
        AUTH_ESIG);
    /* kid not a string */
    cr_assert_eq(verify(k, mk_token("{\"alg\":\"RS256\",\"kid\":7}", payload(""), SIG_KEY, rsa)),
                 AUTH_EMALFORMED);
    EVP_PKEY_free(rsa2);
    EVP_PKEY_free(rsa);
    EVP_PKEY_free(ec);
    EVP_PKEY_free(ed);
    auth_keys_unref(k);
}

Test(auth_jwt, pem_keys_unknown_kid)
{
    auth_keys *k = keys_load(key_path("ec.pub"), NULL, NULL, NULL);
    EVP_PKEY *ec = load_priv("ec.key");
    cr_assert_eq(verify(k, mk_token("{\"alg\":\"ES256\",\"kid\":\"k\"}", payload(""), SIG_KEY, ec)),
                 AUTH_EKID);
    EVP_PKEY_free(ec);
    auth_keys_unref(k);
}

static const char *jwks_one(const char *entry)
{
    static char doc[8192];
    snprintf(doc, sizeof doc, "{\"keys\":[%s]}", entry);
    return tmp_str(doc);
}

Test(auth_jwt, jwks_bad_entries_refused)
{
    char ec[512], rsa[2048], ed[512], buf[4096];
    jwk_ec("e1", ec, sizeof ec);
    jwk_rsa("rsa.key", "r1", rsa, sizeof rsa);
    jwk_ed("d1", ed, sizeof ed);
    const char *e;
    cr_assert_null(load_err(jwks_one(ec), NULL));
    cr_assert_not_null(e = load_err(tmp_str("{\"keys\":[]}"), NULL));
    cr_assert(strstr(e, "empty"), "%s", e);
    cr_assert_not_null(load_err(tmp_str("{\"keys\":{}}"), NULL));
    cr_assert_not_null(load_err(tmp_str("{\"keys\":[1]}"), NULL));
    cr_assert_not_null(load_err(tmp_str("{\"keys\": [ "), NULL));
    cr_assert_not_null(e = load_err(jwks_one("{\"kty\":\"XYZ\",\"kid\":\"a\"}"), NULL));
    cr_assert(strstr(e, "kty"), "%s", e);
    cr_assert_not_null(e = load_err(jwks_one("{\"kty\":\"oct\",\"k\":\"AAAA\"}"), NULL));
    cr_assert_not_null(load_err(jwks_one("{\"kid\":\"a\"}"), NULL));
    /* EC on another curve, x of the wrong size, bad base64url, not on the curve */
    snprintf(buf, sizeof buf, "%s", ec);
    memcpy(strstr(buf, "P-256"), "P-384", 5);
    cr_assert_not_null(e = load_err(jwks_one(buf), NULL));
    cr_assert(strstr(e, "P-384"), "%s", e);
    cr_assert_not_null(load_err(
        jwks_one("{\"kty\":\"EC\",\"crv\":\"P-256\",\"x\":\"AAAA\",\"y\":\"AAAA\"}"), NULL));
    snprintf(buf, sizeof buf, "%s", ec);
    *strstr(buf, "\"x\":\"") = '\0';
    strcat(buf, "\"x\":\"A+AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\",\"y\":\"");
    strcat(buf, strstr(ec, "\"y\":\"") + 5);
    cr_assert_not_null(e = load_err(jwks_one(buf), NULL));
    cr_assert(strstr(e, "base64url"), "%s", e);
    snprintf(buf, sizeof buf, "%s", ec);
    char *y = strstr(buf, "\"y\":\"") + 5;
    y[0] = y[0] == 'A' ? 'B' : 'A'; /* (x, y') is not on the curve */
    cr_assert_not_null(load_err(jwks_one(buf), NULL));
    /* OKP: X25519 is not a signing key */
    snprintf(buf, sizeof buf, "%s", ed);
    memcpy(strstr(buf, "Ed25519"), "X25519\"", 7);
    cr_assert_not_null(load_err(jwks_one(buf), NULL));
    /* a private key, "use":"enc", "alg" of another type */
    snprintf(buf, sizeof buf, "%.*s,\"d\":\"AAAA\"}", (int)strlen(ed) - 1, ed);
    cr_assert_not_null(e = load_err(jwks_one(buf), NULL));
    cr_assert(strstr(e, "private"), "%s", e);
    snprintf(buf, sizeof buf, "%.*s,\"use\":\"enc\"}", (int)strlen(ed) - 1, ed);
    cr_assert_not_null(load_err(jwks_one(buf), NULL));
    snprintf(buf, sizeof buf, "%.*s,\"alg\":\"RS256\"}", (int)strlen(ed) - 1, ed);
    cr_assert_not_null(e = load_err(jwks_one(buf), NULL));
    cr_assert(strstr(e, "alg"), "%s", e);
    /* duplicate kid, duplicate member */
    snprintf(buf, sizeof buf, "{\"keys\":[%s,%s]}", ec, ec);
    cr_assert_not_null(e = load_err(tmp_str(buf), NULL));
    cr_assert(strstr(e, "duplicate"), "%s", e);
    snprintf(buf, sizeof buf, "%.*s,\"kid\":\"again\"}", (int)strlen(ed) - 1, ed);
    cr_assert_not_null(load_err(jwks_one(buf), NULL));
    /* a small RSA key */
    jwk_rsa("rsa1024.key", "small", rsa, sizeof rsa);
    cr_assert_not_null(e = load_err(jwks_one(rsa), NULL));
    cr_assert(strstr(e, "2048"), "%s", e);
}

/* --- algorithms the keys do not allow ------------------------------------------- */

Test(auth_jwt, alg_none_refused_in_any_case)
{
    auth_keys *k = keys_load(key_path("rsa.pub"), tmp_str(SECRET), NULL, NULL);
    const char *hdrs[] = {"{\"alg\":\"none\"}", "{\"alg\":\"NONE\"}", "{\"alg\":\"nOnE\"}"};
    for (int i = 0; i < 3; i++) {
        cr_assert_eq(verify(k, mk_token(hdrs[i], payload(""), SIG_NONE, NULL)), AUTH_EALG);
        cr_assert_str_eq(why, "algorithm none not allowed");
        /* with some signature too */
        cr_assert_eq(verify(k, mk_token(hdrs[i], payload(""), SIG_HMAC, NULL)), AUTH_EALG);
    }
    /* an empty signature of a real algorithm */
    cr_assert_eq(verify(k, mk_token("{\"alg\":\"HS256\"}", payload(""), SIG_NONE, NULL)),
                 AUTH_EMALFORMED);
    auth_keys_unref(k);
}

Test(auth_jwt, unknown_and_miscased_algs_refused)
{
    auth_keys *k = keys_load(key_path("rsa.pub"), tmp_str(SECRET), NULL, NULL);
    EVP_PKEY *rsa = load_priv("rsa.key");
    const char *hdrs[] = {"{\"alg\":\"rs256\"}", "{\"alg\":\"PS256\"}", "{\"alg\":\"RS512\"}",
                          "{\"alg\":\"HS512\"}", "{\"alg\":\"\"}"};
    for (int i = 0; i < 5; i++)
        cr_assert_eq(verify(k, mk_token(hdrs[i], payload(""), SIG_KEY, rsa)), AUTH_EALG, "%s",
                     hdrs[i]);
    cr_assert_eq(verify(k, mk_token("{\"alg\":5}", payload(""), SIG_KEY, rsa)), AUTH_EMALFORMED);
    cr_assert_eq(verify(k, mk_token("{\"typ\":\"JWT\"}", payload(""), SIG_KEY, rsa)),
                 AUTH_EMALFORMED);
    cr_assert_eq(
        verify(k, mk_token("{\"alg\":\"RS256\",\"crit\":[\"exp\"]}", payload(""), SIG_KEY, rsa)),
        AUTH_EALG);
    EVP_PKEY_free(rsa);
    auth_keys_unref(k);
}

Test(auth_jwt, alg_must_match_key_type)
{
    auth_keys *k = keys_load(key_path("rsa.pub"), NULL, NULL, NULL);
    EVP_PKEY *ec = load_priv("ec.key"), *rsa = load_priv("rsa.key");
    /* an ES256 token where only RSA keys are configured */
    cr_assert_eq(verify(k, mk_token("{\"alg\":\"ES256\"}", payload(""), SIG_KEY, ec)), AUTH_EALG);
    /* an RSA signature labelled ES256 / EdDSA */
    cr_assert_eq(verify(k, mk_token("{\"alg\":\"ES256\"}", payload(""), SIG_KEY, rsa)), AUTH_EALG);
    cr_assert_eq(verify(k, mk_token("{\"alg\":\"EdDSA\"}", payload(""), SIG_KEY, rsa)), AUTH_EALG);
    EVP_PKEY_free(ec);
    EVP_PKEY_free(rsa);
    auth_keys_unref(k);
}

/* The classic: HS256 signed with the server's RSA public key (its PEM bytes,
 * which anyone can read) as the HMAC secret. */
Test(auth_jwt, hs256_with_rsa_public_key_as_secret_refused)
{
    FILE *f = fopen(key_path("rsa.pub"), "r");
    char pem[2048];
    size_t n = fread(pem, 1, sizeof pem, f);
    fclose(f);
    const char *pl = payload("");
    const char *h = "{\"alg\":\"HS256\"}";
    const char *forged = mk_token_raw(h, strlen(h), pl, strlen(pl), SIG_HMAC, NULL, pem, n);
    char copy[16384];
    snprintf(copy, sizeof copy, "%s", forged);

    auth_keys *k = keys_load(key_path("rsa.pub"), NULL, NULL, NULL);
    cr_assert_eq(verify(k, copy), AUTH_EALG);
    cr_assert_str_eq(why, "HS256 not enabled (no secret configured)");
    /* also with the kid of the RSA key: never used as an HMAC key */
    auth_keys_unref(k);

    /* with a secret configured (a different one) it is just a bad signature */
    k = keys_load(key_path("rsa.pub"), tmp_str(SECRET), NULL, NULL);
    cr_assert_eq(verify(k, copy), AUTH_ESIG);
    auth_keys_unref(k);

    /* and the same without the trailing newline of the PEM file */
    forged = mk_token_raw(h, strlen(h), pl, strlen(pl), SIG_HMAC, NULL, pem, n - 1);
    k = keys_load(key_path("rsa.pub"), NULL, NULL, NULL);
    cr_assert_eq(verify(k, forged), AUTH_EALG);
    auth_keys_unref(k);
}

Test(auth_jwt, hs256_without_secret_refused)
{
    auth_keys *k = keys_load(jwks_all(), NULL, NULL, NULL);
    cr_assert_eq(
        verify(k, mk_token("{\"alg\":\"HS256\",\"kid\":\"r1\"}", payload(""), SIG_HMAC, NULL)),
        AUTH_EALG);
    cr_assert_eq(verify(k, mk_token("{\"alg\":\"HS256\"}", payload(""), SIG_HMAC, NULL)),
                 AUTH_EALG);
    auth_keys_unref(k);
}

/* --- time claims ----------------------------------------------------------------- */

static const char *timed(const char *fmt, long long a)
{
    static char buf[256];
    snprintf(buf, sizeof buf, fmt, a);
    return buf;
}

Test(auth_jwt, exp_with_leeway_edges)
{
    auth_keys *k = keys_load(NULL, tmp_str(SECRET), NULL, NULL); /* leeway 30 */
    const char *h = "{\"alg\":\"HS256\"}";
    cr_assert_eq(verify(k, mk_token(h, timed("{\"exp\":%lld}", NOW - 30), SIG_HMAC, NULL)), 0);
    cr_assert_eq(verify(k, mk_token(h, timed("{\"exp\":%lld}", NOW - 31), SIG_HMAC, NULL)),
                 AUTH_EEXPIRED);
    cr_assert_str_eq(why, "token expired");
    cr_assert_eq(verify(k, mk_token(h, timed("{\"exp\":%lld.9}", NOW - 31), SIG_HMAC, NULL)),
                 AUTH_EEXPIRED);
    cr_assert_eq(verify(k, mk_token(h, timed("{\"exp\":%lld.5}", NOW), SIG_HMAC, NULL)), 0);
    /* exp is required and must be a number */
    cr_assert_eq(verify(k, mk_token(h, "{\"sub\":\"a\"}", SIG_HMAC, NULL)), AUTH_EMALFORMED);
    cr_assert_eq(verify(k, mk_token(h, timed("{\"exp\":\"%lld\"}", NOW + 60), SIG_HMAC, NULL)),
                 AUTH_EMALFORMED);
    cr_assert_eq(verify(k, mk_token(h, "{\"exp\":null}", SIG_HMAC, NULL)), AUTH_EMALFORMED);
    cr_assert_eq(verify(k, mk_token(h, "{\"exp\":1e400}", SIG_HMAC, NULL)), AUTH_EMALFORMED);
    cr_assert_eq(verify(k, mk_token(h, "{\"exp\":9223372036854775807}", SIG_HMAC, NULL)), 0);
    auth_keys_unref(k);
}

Test(auth_jwt, nbf_iat_with_leeway_edges)
{
    auth_keys *k = keys_load(NULL, tmp_str(SECRET), NULL, NULL);
    const char *h = "{\"alg\":\"HS256\"}";
    char pl[256];
    snprintf(pl, sizeof pl, "{\"exp\":%lld,\"nbf\":%lld}", NOW + 600, NOW + 30);
    cr_assert_eq(verify(k, mk_token(h, pl, SIG_HMAC, NULL)), 0);
    snprintf(pl, sizeof pl, "{\"exp\":%lld,\"nbf\":%lld}", NOW + 600, NOW + 31);
    cr_assert_eq(verify(k, mk_token(h, pl, SIG_HMAC, NULL)), AUTH_ENOTYET);
    cr_assert_str_eq(why, "token not yet valid");
    snprintf(pl, sizeof pl, "{\"exp\":%lld,\"iat\":%lld}", NOW + 600, NOW + 31);
    cr_assert_eq(verify(k, mk_token(h, pl, SIG_HMAC, NULL)), AUTH_ENOTYET);
    snprintf(pl, sizeof pl, "{\"exp\":%lld,\"iat\":%lld}", NOW + 600, NOW + 30);
    cr_assert_eq(verify(k, mk_token(h, pl, SIG_HMAC, NULL)), 0);
    snprintf(pl, sizeof pl, "{\"exp\":%lld,\"nbf\":\"soon\"}", NOW + 600);
    cr_assert_eq(verify(k, mk_token(h, pl, SIG_HMAC, NULL)), AUTH_EMALFORMED);
    snprintf(pl, sizeof pl, "{\"exp\":%lld,\"iat\":true}", NOW + 600);
    cr_assert_eq(verify(k, mk_token(h, pl, SIG_HMAC, NULL)), AUTH_EMALFORMED);
    auth_keys_unref(k);
}

Test(auth_jwt, zero_and_custom_leeway)
{
    auth_keys_config cfg = {.secret_file = tmp_str(SECRET), .leeway_s = 0};
    char err[AUTH_ERRLEN];
    auth_keys *k = auth_keys_load(&cfg, err, sizeof err);
    cr_assert_not_null(k);
    const char *h = "{\"alg\":\"HS256\"}";
    cr_assert_eq(verify(k, mk_token(h, timed("{\"exp\":%lld}", NOW), SIG_HMAC, NULL)), 0);
    cr_assert_eq(verify(k, mk_token(h, timed("{\"exp\":%lld}", NOW - 1), SIG_HMAC, NULL)),
                 AUTH_EEXPIRED);
    auth_keys_unref(k);
    cfg.leeway_s = 300;
    k = auth_keys_load(&cfg, err, sizeof err);
    cr_assert_eq(verify(k, mk_token(h, timed("{\"exp\":%lld}", NOW - 300), SIG_HMAC, NULL)), 0);
    auth_keys_unref(k);
}

/* --- issuer and audience ------------------------------------------------------- */

Test(auth_jwt, issuer_and_audience)
{
    auth_keys *k = keys_load(NULL, tmp_str(SECRET), "https://idp.example", "oms");
    const char *h = "{\"alg\":\"HS256\"}";
    const char *ok[] = {",\"iss\":\"https://idp.example\",\"aud\":\"oms\"",
                        ",\"iss\":\"https://idp.example\",\"aud\":[\"x\",\"oms\"]"};
    for (int i = 0; i < 2; i++)
        cr_assert_eq(verify(k, mk_token(h, payload(ok[i]), SIG_HMAC, NULL)), 0, "%s", why);
    struct {
        const char *extra;
        int rv;
        const char *why;
    } bad[] = {
        {",\"aud\":\"oms\"", AUTH_EISS, "wrong issuer"},
        {",\"iss\":\"https://idp.example/\",\"aud\":\"oms\"", AUTH_EISS, "wrong issuer"},
        {",\"iss\":\"https://idp.example\"", AUTH_EAUD, "wrong audience"},
        {",\"iss\":\"https://idp.example\",\"aud\":\"OMS\"", AUTH_EAUD, "wrong audience"},
        {",\"iss\":\"https://idp.example\",\"aud\":[]", AUTH_EAUD, "wrong audience"},
        {",\"iss\":\"https://idp.example\",\"aud\":[\"a\",\"b\"]", AUTH_EAUD, "wrong audience"},
        {",\"iss\":\"https://idp.example\",\"aud\":[\"oms\",1]", AUTH_EMALFORMED, NULL},
        {",\"iss\":\"https://idp.example\",\"aud\":{\"oms\":1}", AUTH_EMALFORMED, NULL},
        {",\"iss\":7,\"aud\":\"oms\"", AUTH_EMALFORMED, NULL},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        cr_assert_eq(verify(k, mk_token(h, payload(bad[i].extra), SIG_HMAC, NULL)), bad[i].rv, "%s",
                     bad[i].extra);
        if (bad[i].why)
            cr_assert_str_eq(why, bad[i].why);
    }
    auth_keys_unref(k);
    /* not configured: not checked (but still type-checked) */
    k = keys_load(NULL, tmp_str(SECRET), NULL, NULL);
    cr_assert_eq(
        verify(k, mk_token(h, payload(",\"iss\":\"any\",\"aud\":[\"x\"]"), SIG_HMAC, NULL)), 0);
    cr_assert_eq(verify(k, mk_token(h, payload(",\"aud\":5"), SIG_HMAC, NULL)), AUTH_EMALFORMED);
    auth_keys_unref(k);
}

/* --- claims ------------------------------------------------------------------------ */

Test(auth_jwt, scope_forms_and_claim_types)
{
    auth_keys *k = keys_load(NULL, tmp_str(SECRET), NULL, NULL);
    const char *h = "{\"alg\":\"HS256\"}";
    char pl[512];
    auth_claims c;
    snprintf(pl, sizeof pl, "{\"exp\":%lld,\"scp\":[\"a:b\",\"c\"]}", NOW + 60);
    const char *tok = mk_token(h, pl, SIG_HMAC, NULL);
    cr_assert_eq(auth_jwt_verify(k, tok, strlen(tok), NOW, &c, why, sizeof why), 0);
    cr_assert_eq(c.nscopes, 2);
    cr_assert_str_eq(c.scopes[0], "a:b");
    cr_assert_null(c.sub);
    cr_assert_null(c.customer_id);
    auth_claims_dispose(&c);
    snprintf(pl, sizeof pl, "{\"exp\":%lld,\"scope\":\"  x   y \"}", NOW + 60);
    tok = mk_token(h, pl, SIG_HMAC, NULL);
    cr_assert_eq(auth_jwt_verify(k, tok, strlen(tok), NOW, &c, why, sizeof why), 0);
    cr_assert_eq(c.nscopes, 2);
    cr_assert_str_eq(c.scopes[1], "y");
    auth_claims_dispose(&c);
    snprintf(pl, sizeof pl, "{\"exp\":%lld,\"scope\":\"\"}", NOW + 60);
    tok = mk_token(h, pl, SIG_HMAC, NULL);
    cr_assert_eq(auth_jwt_verify(k, tok, strlen(tok), NOW, &c, why, sizeof why), 0);
    cr_assert_eq(c.nscopes, 0);
    cr_assert_null(c.scopes);
    auth_claims_dispose(&c);

    const char *bad[] = {
        ",\"scope\":[\"a\"]", ",\"scp\":\"a\"", ",\"scp\":[1]",        ",\"scp\":[\"\"]",
        ",\"sub\":5",         ",\"sub\":null",  ",\"customer_id\":42", ",\"customer_id\":\"\"",
        ",\"iss\":[\"x\"]"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        snprintf(pl, sizeof pl, "{\"exp\":%lld%s}", NOW + 60, bad[i]);
        cr_assert_eq(verify(k, mk_token(h, pl, SIG_HMAC, NULL)), AUTH_EMALFORMED, "%s", bad[i]);
    }
    /* more than AUTH_MAX_SCOPES */
    char many[256] = ",\"scope\":\"";
    for (int i = 0; i <= AUTH_MAX_SCOPES; i++)
        strcat(many, "s ");
    strcat(many, "\"");
    snprintf(pl, sizeof pl, "{\"exp\":%lld%s}", NOW + 60, many);
    cr_assert_eq(verify(k, mk_token(h, pl, SIG_HMAC, NULL)), AUTH_EMALFORMED);
    auth_keys_unref(k);
}

/* --- malformed tokens ------------------------------------------------------------- */

Test(auth_jwt, malformed_shapes)
{
    auth_keys *k = keys_load(NULL, tmp_str(SECRET), NULL, NULL);
    char good[4096];
    snprintf(good, sizeof good, "%s", mk_token("{\"alg\":\"HS256\"}", payload(""), SIG_HMAC, NULL));
    cr_assert_eq(verify(k, good), 0);
    char *d1 = strchr(good, '.'), *d2 = strchr(d1 + 1, '.');
    char t[8192];
    const char *cases[] = {"", ".", "..", "...", "a.b", "a.b.c.d", "abc"};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        cr_assert_eq(verify(k, cases[i]), AUTH_EMALFORMED, "'%s'", cases[i]);
    /* two and four segments from a good token */
    snprintf(t, sizeof t, "%.*s", (int)(d2 - good), good);
    cr_assert_eq(verify(k, t), AUTH_EMALFORMED);
    snprintf(t, sizeof t, "%s.%s", good, d2 + 1);
    cr_assert_eq(verify(k, t), AUTH_EMALFORMED);
    /* empty header / payload */
    snprintf(t, sizeof t, "%s", d1);
    cr_assert_eq(verify(k, t), AUTH_EMALFORMED);
    snprintf(t, sizeof t, "%.*s.%s", (int)(d1 - good), good, d2);
    cr_assert_eq(verify(k, t), AUTH_EMALFORMED);
    /* padding, the other alphabet, whitespace, a bad last character */
    const char *inserts[] = {"=", "+", "/", " ", "\n", "%"};
    for (size_t i = 0; i < sizeof inserts / sizeof inserts[0]; i++) {
        snprintf(t, sizeof t, "%.*s%s%s", (int)(d1 - good), good, inserts[i], d1);
        cr_assert_eq(verify(k, t), AUTH_EMALFORMED, "insert '%s'", inserts[i]);
    }
    snprintf(t, sizeof t, "%s=", good); /* padded signature */
    cr_assert_eq(verify(k, t), AUTH_EMALFORMED);
    /* a signature of 4k+1 characters, and one whose unused bits are set */
    snprintf(t, sizeof t, "%sAA", good); /* 43 + 2 characters */
    cr_assert_eq(verify(k, t), AUTH_EMALFORMED);
    snprintf(t, sizeof t, "%sA", good); /* 44: decodes, 33 bytes */
    cr_assert_eq(verify(k, t), AUTH_ESIG);
    snprintf(t, sizeof t, "%s", good);
    char *last = t + strlen(t) - 1; /* 43 chars: the last holds 2 unused bits */
    *last = *last == 'B' ? 'C' : *last + 1;
    int rv = verify(k, t);
    cr_assert(rv == AUTH_EMALFORMED || rv == AUTH_ESIG);
    /* truncated signature */
    snprintf(t, sizeof t, "%.*s", (int)strlen(good) - 3, good); /* 40 chars, 30 bytes */
    cr_assert_eq(verify(k, t), AUTH_ESIG);
    snprintf(t, sizeof t, "%.*s", (int)strlen(good) - 4, good);
    rv = verify(k, t);
    cr_assert(rv == AUTH_EMALFORMED || rv == AUTH_ESIG);
    snprintf(t, sizeof t, "%.*s", (int)(d2 - good + 1), good);
    cr_assert_eq(verify(k, t), AUTH_EMALFORMED); /* empty signature */
    /* a NUL inside */
    auth_claims c;
    cr_assert_eq(auth_jwt_verify(k, good, strlen(good) + 1, NOW, &c, why, sizeof why),
                 AUTH_EMALFORMED);
    cr_assert_eq(auth_jwt_verify(NULL, good, strlen(good), NOW, &c, why, sizeof why), AUTH_EINVAL);
    cr_assert_eq(auth_jwt_verify(k, good, strlen(good), NOW, &c, NULL, 0), 0);
    auth_claims_dispose(&c);
    auth_keys_unref(k);
}

Test(auth_jwt, huge_token_refused)
{
    auth_keys *k = keys_load(NULL, tmp_str(SECRET), NULL, NULL);
    char pad[8192];
    memset(pad, 'a', sizeof pad - 1);
    pad[sizeof pad - 1] = '\0';
    char pl[9000];
    snprintf(pl, sizeof pl, "{\"exp\":%lld,\"x\":\"%.6100s\"}", NOW + 60, pad);
    const char *tok = mk_token("{\"alg\":\"HS256\"}", pl, SIG_HMAC, NULL);
    cr_assert_gt(strlen(tok), AUTH_MAX_TOKEN);
    cr_assert_eq(verify(k, tok), AUTH_ETOOBIG);
    /* just under the limit is fine */
    snprintf(pl, sizeof pl, "{\"exp\":%lld,\"x\":\"%.5900s\"}", NOW + 60, pad);
    tok = mk_token("{\"alg\":\"HS256\"}", pl, SIG_HMAC, NULL);
    cr_assert_leq(strlen(tok), AUTH_MAX_TOKEN);
    cr_assert_eq(verify(k, tok), 0, "%s", why);
    auth_keys_unref(k);
}

Test(auth_jwt, bad_json)
{
    auth_keys *k = keys_load(NULL, tmp_str(SECRET), NULL, NULL);
    const char *h = "{\"alg\":\"HS256\"}";
    /* header: not an object, duplicate alg, trailing garbage, bad UTF-8 */
    const char *hdrs[] = {"[\"HS256\"]",
                          "\"HS256\"",
                          "1",
                          "null",
                          "{\"alg\":\"none\",\"alg\":\"HS256\"}",
                          "{\"alg\":\"HS256\"} x",
                          "{\"alg\":\"HS256\",\"kid\":\"\xff\"}",
                          "{\"alg\":\"HS256\""};
    for (size_t i = 0; i < sizeof hdrs / sizeof hdrs[0]; i++)
        cr_assert_eq(verify(k, mk_token(hdrs[i], payload(""), SIG_HMAC, NULL)), AUTH_EMALFORMED,
                     "%s", hdrs[i]);
    /* payload (signed, so only the JSON is wrong) */
    char pl[512];
    const char *pls[] = {"[1]",
                         "\"x\"",
                         "42",
                         "",
                         "{\"exp\":1,\"exp\":2}",
                         "{\"exp\":1} {}",
                         "{\"exp\":1,\"sub\":\"a\xc3\"}",
                         "{\"exp\":1,\"sub\":\"\xed\xa0\x80\"}",
                         "{\"exp\":1,\"sub\":\"a\\u0000b\"}"};
    for (size_t i = 0; i < sizeof pls / sizeof pls[0]; i++) {
        int rv = verify(k, mk_token_raw(h, strlen(h), pls[i], strlen(pls[i]), SIG_HMAC, NULL,
                                        SECRET, strlen(SECRET)));
        cr_assert_eq(rv, AUTH_EMALFORMED, "%s: %d", pls[i], rv);
    }
    /* the duplicate exp the other way round is also refused, with good times */
    snprintf(pl, sizeof pl, "{\"exp\":%lld,\"exp\":%lld}", NOW - 1000, NOW + 1000);
    cr_assert_eq(verify(k, mk_token(h, pl, SIG_HMAC, NULL)), AUTH_EMALFORMED);
    /* nesting: 8 levels are fine, 9 are not */
    snprintf(pl, sizeof pl, "{\"exp\":%lld,\"x\":[[[[[[[1]]]]]]]}", NOW + 60);
    cr_assert_eq(verify(k, mk_token(h, pl, SIG_HMAC, NULL)), 0, "%s", why);
    snprintf(pl, sizeof pl, "{\"exp\":%lld,\"x\":[[[[[[[[1]]]]]]]]}", NOW + 60);
    cr_assert_eq(verify(k, mk_token(h, pl, SIG_HMAC, NULL)), AUTH_EMALFORMED);
    /* brackets inside strings do not count */
    snprintf(pl, sizeof pl, "{\"exp\":%lld,\"x\":\"[[[[[[[[[[\\\"[[[\"}", NOW + 60);
    cr_assert_eq(verify(k, mk_token(h, pl, SIG_HMAC, NULL)), 0, "%s", why);
    auth_keys_unref(k);
}

/* --- why never echoes the token ------------------------------------------------- */

Test(auth_jwt, why_never_contains_the_token)
{
    auth_keys *k = keys_load(jwks_all(), tmp_str(SECRET), "iss-MARKER", "aud-MARKER");
    EVP_PKEY *rsa = load_priv("rsa.key");
    char toks[12][8192];
    int n = 0;
    const char *m = ",\"sub\":\"SUBMARKER\",\"iss\":\"ISSMARKER\",\"aud\":\"AUDMARKER\"";
    snprintf(toks[n++], 8192, "%s",
             mk_token("{\"alg\":\"RS256\",\"kid\":\"KIDMARKER\"}", payload(m), SIG_KEY, rsa));
    snprintf(toks[n++], 8192, "%s", mk_token("{\"alg\":\"RS256\"}", payload(m), SIG_KEY, rsa));
    snprintf(toks[n++], 8192, "%s", mk_token("{\"alg\":\"NONEMARKER\"}", payload(m), SIG_KEY, rsa));
    snprintf(toks[n++], 8192, "%s", mk_token("{\"alg\":\"none\"}", payload(m), SIG_NONE, rsa));
    snprintf(toks[n++], 8192, "%s",
             mk_token("{\"alg\":\"HS256\"}", timed("{\"exp\":%lld}", NOW - 999), SIG_HMAC, NULL));
    snprintf(toks[n++], 8192, "%s",
             mk_token("{\"alg\":\"HS256\"}", "{\"exp\":\"EXPMARKER\"}", SIG_HMAC, NULL));
    snprintf(toks[n++], 8192, "%s",
             mk_token("{\"alg\":\"HS256\"}", "{\"exp\":1,\"x\":BADJSON}", SIG_HMAC, NULL));
    snprintf(toks[n++], 8192, "eyJhbGciOiJIUzI1NiJ9.not!base64.sig");
    snprintf(toks[n++], 8192, "MARKER.MARKER");
    for (int i = 0; i < n; i++) {
        cr_assert_neq(verify(k, toks[i]), 0, "token %d", i);
        cr_assert(why[0] != '\0');
        cr_assert_null(strstr(why, "MARKER"), "token %d: %s", i, why);
        /* no part of the token, not even 8 characters of it */
        size_t len = strlen(toks[i]);
        for (size_t off = 0; off + 8 <= len; off++) {
            char win[9];
            memcpy(win, toks[i] + off, 8);
            win[8] = '\0';
            cr_assert_null(strstr(why, win), "token %d: '%s' in '%s'", i, win, why);
        }
    }
    EVP_PKEY_free(rsa);
    auth_keys_unref(k);
}

/* --- Authorization header ---------------------------------------------------------- */

static int bearer(const char *v, const char **tok, size_t *len)
{
    return auth_bearer_parse((const uint8_t *)v, strlen(v), tok, len);
}

Test(auth_jwt, bearer_parse)
{
    const char *tok;
    size_t len;
    cr_assert_eq(bearer("Bearer abc.def-_.g", &tok, &len), 0);
    cr_assert_eq(len, 11);
    cr_assert_eq(strncmp(tok, "abc.def-_.g", len), 0);
    cr_assert_eq(bearer("bearer x", &tok, &len), 0);
    cr_assert_eq(bearer("BEARER x", &tok, &len), 0);
    cr_assert_eq(bearer("Bearer a+b/c~d==", &tok, &len), 0);
    const char *bad[] = {"",          "Bearer",     "Bearer ",    "Bearer  abc", "Bearer\tabc",
                         "Bearerabc", "Basic abc",  "Bearer a b", "Bearer abc ", " Bearer abc",
                         "Bearer =a", "Bearer a=b", "Bearer a\"", "Bearer a,b",  "Token abc"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        cr_assert_eq(bearer(bad[i], &tok, &len), AUTH_EMALFORMED, "'%s'", bad[i]);
    cr_assert_eq(auth_bearer_parse((const uint8_t *)"Bearer a\0b", 10, &tok, &len),
                 AUTH_EMALFORMED);
}

/* --- references and the slot --------------------------------------------------------- */

Test(auth_jwt, slot_swap_keeps_readers_keys_alive)
{
    auth_keys *a = keys_load(NULL, tmp_str(SECRET), NULL, NULL);
    auth_keys *b = keys_load(key_path("ec.pub"), NULL, NULL, NULL);
    auth_keys_slot slot;
    cr_assert_eq(auth_keys_slot_init(&slot, a), 0);
    auth_keys *r = auth_keys_slot_get(&slot); /* a reader's reference */
    cr_assert_eq(r, a);
    auth_keys_slot_set(&slot, b); /* a reload */
    const char *tok = mk_token("{\"alg\":\"HS256\"}", payload(""), SIG_HMAC, NULL);
    cr_assert_eq(verify(r, tok), 0); /* the old keys still work for the reader */
    auth_keys_unref(r);              /* and are freed now (ASan would see a leak) */
    auth_keys *r2 = auth_keys_slot_get(&slot);
    cr_assert_eq(r2, b);
    cr_assert_eq(verify(r2, tok), AUTH_EALG);
    auth_keys_unref(r2);
    auth_keys_slot_dispose(&slot);
    auth_keys_unref(NULL);
}

typedef struct reader {
    auth_keys_slot *slot;
    const char *tok;
    atomic_bool *stop;
    long ok, bad;
} reader;

static void *read_loop(void *arg)
{
    reader *r = arg;
    do {
        auth_keys *k = auth_keys_slot_get(r->slot);
        auth_claims c;
        char w[AUTH_ERRLEN];
        if (auth_jwt_verify(k, r->tok, strlen(r->tok), NOW, &c, w, sizeof w) == 0)
            r->ok++;
        else
            r->bad++;
        auth_claims_dispose(&c);
        auth_keys_unref(k);
    } while (!atomic_load(r->stop));
    return NULL;
}

/* Readers verifying on four threads while the keys are swapped 200 times
 * (a SIGHUP storm): every verification sees whole keys (ASan: no use after
 * free; no leak of any swapped-out set). */
Test(auth_jwt, slot_swap_under_concurrent_readers)
{
    const char *sec = tmp_str(SECRET);
    auth_keys_slot slot;
    cr_assert_eq(auth_keys_slot_init(&slot, keys_load(NULL, sec, NULL, NULL)), 0);
    char tok[1024];
    snprintf(tok, sizeof tok, "%s", mk_token("{\"alg\":\"HS256\"}", payload(""), SIG_HMAC, NULL));
    atomic_bool stop = false;
    reader rs[4];
    pthread_t th[4];
    for (int i = 0; i < 4; i++) {
        rs[i] = (reader){.slot = &slot, .tok = tok, .stop = &stop};
        cr_assert_eq(pthread_create(&th[i], NULL, read_loop, &rs[i]), 0);
    }
    for (int i = 0; i < 200; i++)
        auth_keys_slot_set(&slot, keys_load(NULL, sec, NULL, NULL));
    atomic_store(&stop, true);
    for (int i = 0; i < 4; i++) {
        pthread_join(th[i], NULL);
        cr_assert_gt(rs[i].ok, 0);
        cr_assert_eq(rs[i].bad, 0);
    }
    auth_keys_slot_dispose(&slot);
}
