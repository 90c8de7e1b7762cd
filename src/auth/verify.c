/* verify.c - auth_jwt_verify: a compact JWS token checked against the
 * configured keys, then its claims; auth_bearer_parse.
 *
 * Order matters: the token's shape and header are checked first, the
 * signature next, and only a signed payload has its claims read. Every
 * reason written to `why` is a fixed string: nothing of the token (nor
 * jansson's error text, which quotes its input) ever reaches it.
 */
#include <jansson.h>
#include <math.h>
#include <openssl/crypto.h>
#include <openssl/bn.h>
#include <openssl/ecdsa.h>
#include <openssl/err.h>
#include <openssl/hmac.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "auth/auth_int.h"

/* Largest decoded size of all three parts of a token of AUTH_MAX_TOKEN bytes. */
#define DECODED_MAX (AUTH_MAX_TOKEN / 4 * 3 + 4)

const char *auth_strerror(int code)
{
    switch (code) {
    case AUTH_OK:
        return "ok";
    case AUTH_EMALFORMED:
        return "malformed token";
    case AUTH_EALG:
        return "algorithm not allowed";
    case AUTH_ESIG:
        return "bad signature";
    case AUTH_EKID:
        return "unknown key id";
    case AUTH_EEXPIRED:
        return "token expired";
    case AUTH_ENOTYET:
        return "token not yet valid";
    case AUTH_EISS:
        return "wrong issuer";
    case AUTH_EAUD:
        return "wrong audience";
    case AUTH_ETOOBIG:
        return "token too long";
    case AUTH_ENOMEM:
        return "out of memory";
    case AUTH_EINVAL:
        return "invalid argument";
    }
    return "unknown error";
}

static int fail(int code, const char *reason, char *why, size_t whylen)
{
    if (why && whylen)
        snprintf(why, whylen, "%s", reason ? reason : auth_strerror(code));
    return code;
}

/* Whether JSON text nests arrays/objects deeper than AUTH_MAX_JSON_DEPTH
 * (checked before jansson's recursive parser sees it). */
static bool too_deep(const uint8_t *p, size_t n)
{
    int depth = 0;
    bool in_str = false;
    for (size_t i = 0; i < n; i++) {
        uint8_t c = p[i];
        if (in_str) {
            if (c == '\\')
                i++;
            else if (c == '"')
                in_str = false;
        } else if (c == '"') {
            in_str = true;
        } else if (c == '[' || c == '{') {
            if (++depth > AUTH_MAX_JSON_DEPTH)
                return true;
        } else if (c == ']' || c == '}') {
            depth--;
        }
    }
    return false;
}

/* Parses decoded JSON that must be an object. NULL if it is anything else. */
static json_t *load_object(const uint8_t *p, size_t n)
{
    if (too_deep(p, n))
        return NULL;
    json_t *o = json_loadb((const char *)p, n, JSON_REJECT_DUPLICATES, NULL);
    if (o && !json_is_object(o)) {
        json_decref(o);
        return NULL;
    }
    return o;
}

/* The one algorithm each key type is for; HS256 only with the secret. */
static auth_alg parse_alg(const char *s)
{
    if (strcmp(s, "RS256") == 0)
        return AUTH_ALG_RS256;
    if (strcmp(s, "ES256") == 0)
        return AUTH_ALG_ES256;
    if (strcmp(s, "EdDSA") == 0)
        return AUTH_ALG_EDDSA;
    if (strcmp(s, "HS256") == 0)
        return AUTH_ALG_HS256;
    return AUTH_ALG_DEFAULT;
}

static auth_kty alg_kty(auth_alg alg)
{
    switch (alg) {
    case AUTH_ALG_RS256:
        return AUTH_KTY_RSA;
    case AUTH_ALG_ES256:
        return AUTH_KTY_EC;
    case AUTH_ALG_EDDSA:
        return AUTH_KTY_ED25519;
    default:
        return 0;
    }
}

/* JOSE's ES256 signature is r || s, 32 bytes each; EVP wants DER. */
static uint8_t *es256_der(const uint8_t *sig, size_t len, int *derlen)
{
    if (len != 64)
        return NULL;
    ECDSA_SIG *es = ECDSA_SIG_new();
    BIGNUM *r = BN_bin2bn(sig, 32, NULL), *s = BN_bin2bn(sig + 32, 32, NULL);
    uint8_t *der = NULL;
    if (es && r && s && ECDSA_SIG_set0(es, r, s)) {
        r = s = NULL; /* owned by es now */
        *derlen = i2d_ECDSA_SIG(es, &der);
        if (*derlen <= 0)
            der = NULL;
    }
    BN_free(r);
    BN_free(s);
    ECDSA_SIG_free(es);
    return der;
}

/* 1 if sig verifies msg under key, 0 otherwise (including errors). */
static int verify_with(const auth_key *key, const uint8_t *msg, size_t mlen, const uint8_t *sig,
                       size_t slen)
{
    uint8_t *der = NULL;
    int derlen = 0;
    if (key->kty == AUTH_KTY_EC) {
        if (!(der = es256_der(sig, slen, &derlen)))
            return 0;
        sig = der;
        slen = (size_t)derlen;
    } else if (key->kty == AUTH_KTY_ED25519 && slen != 64) {
        return 0;
    } else if (key->kty == AUTH_KTY_RSA && slen != (size_t)EVP_PKEY_get_size(key->pkey)) {
        return 0;
    }
    const EVP_MD *md = key->kty == AUTH_KTY_ED25519 ? NULL : EVP_sha256();
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    int ok = ctx && EVP_DigestVerifyInit(ctx, NULL, md, NULL, key->pkey) == 1 &&
             EVP_DigestVerify(ctx, sig, slen, msg, mlen) == 1;
    EVP_MD_CTX_free(ctx);
    OPENSSL_free(der);
    ERR_clear_error();
    return ok;
}

/* Checks the signature; on success *used is the key (NULL: the secret). */
static int check_signature(const auth_keys *k, auth_alg alg, const char *kid, const uint8_t *msg,
                           size_t mlen, const uint8_t *sig, size_t slen, const auth_key **used,
                           char *why, size_t whylen)
{
    *used = NULL;
    if (alg == AUTH_ALG_HS256) {
        /* Never a public key as the HMAC key: that is the algorithm
         * confusion attack. A kid, if any, is ignored (one secret). */
        if (!k->secret)
            return fail(AUTH_EALG, "HS256 not enabled (no secret configured)", why, whylen);
        uint8_t mac[EVP_MAX_MD_SIZE];
        unsigned maclen = 0;
        if (!HMAC(EVP_sha256(), k->secret, (int)k->secret_len, msg, mlen, mac, &maclen) ||
            maclen != 32)
            return fail(AUTH_ENOMEM, "cannot compute HMAC", why, whylen);
        if (slen != 32 || CRYPTO_memcmp(mac, sig, 32) != 0)
            return fail(AUTH_ESIG, "bad signature", why, whylen);
        return 0;
    }
    auth_kty want = alg_kty(alg);
    if (kid) {
        for (size_t i = 0; i < k->nkeys; i++) {
            const auth_key *key = &k->keys[i];
            if (strcmp(key->kid, kid) != 0)
                continue;
            if (key->kty != want)
                return fail(AUTH_EALG, "algorithm does not match the key", why, whylen);
            if (!verify_with(key, msg, mlen, sig, slen))
                return fail(AUTH_ESIG, "bad signature", why, whylen);
            *used = key;
            return 0;
        }
        return fail(AUTH_EKID, "unknown key id", why, whylen);
    }
    bool any = false;
    for (size_t i = 0; i < k->nkeys; i++) {
        const auth_key *key = &k->keys[i];
        if (key->kty != want)
            continue;
        any = true;
        if (verify_with(key, msg, mlen, sig, slen)) {
            *used = key;
            return 0;
        }
    }
    if (!any)
        return fail(AUTH_EALG, "no key configured for this algorithm", why, whylen);
    return fail(AUTH_ESIG, "bad signature", why, whylen);
}

/* A NumericDate claim: 0 absent, 1 present in *v, -1 not a number. */
static int num_claim(json_t *o, const char *name, int64_t *v)
{
    json_t *j = json_object_get(o, name);
    if (!j)
        return 0;
    if (json_is_integer(j)) {
        *v = (int64_t)json_integer_value(j);
        return 1;
    }
    if (json_is_real(j)) {
        double d = json_real_value(j);
        if (!isfinite(d) || d > 4e18 || d < -4e18)
            return -1;
        *v = (int64_t)floor(d);
        return 1;
    }
    return -1;
}

/* A string claim: 0 absent, 1 present in *s, -1 not a string. */
static int str_claim(json_t *o, const char *name, const char **s)
{
    json_t *j = json_object_get(o, name);
    *s = NULL;
    if (!j)
        return 0;
    if (!json_is_string(j))
        return -1;
    *s = json_string_value(j);
    return 1;
}

static bool aud_contains(json_t *aud, const char *want)
{
    if (json_is_string(aud))
        return strcmp(json_string_value(aud), want) == 0;
    size_t i;
    json_t *v;
    json_array_foreach(aud, i, v)
    {
        if (strcmp(json_string_value(v), want) == 0)
            return true;
    }
    return false;
}

/* Scope tokens: "scope" split on spaces, or the strings of "scp". Fills
 * toks (borrowed from the JSON) and returns their count, or -1. */
static int collect_scopes(json_t *pl, const char **toks, size_t *lens)
{
    json_t *scope = json_object_get(pl, "scope");
    json_t *scp = json_object_get(pl, "scp");
    int n = 0;
    if (scope) {
        if (!json_is_string(scope))
            return -1;
        const char *s = json_string_value(scope);
        while (*s) {
            while (*s == ' ')
                s++;
            if (!*s)
                break;
            const char *e = strchr(s, ' ');
            size_t len = e ? (size_t)(e - s) : strlen(s);
            if (n == AUTH_MAX_SCOPES)
                return -1;
            toks[n] = s;
            lens[n++] = len;
            s += len;
        }
    } else if (scp) {
        if (!json_is_array(scp))
            return -1;
        size_t i;
        json_t *v;
        json_array_foreach(scp, i, v)
        {
            if (!json_is_string(v) || json_string_length(v) == 0 || n == AUTH_MAX_SCOPES)
                return -1;
            toks[n] = json_string_value(v);
            lens[n++] = json_string_length(v);
        }
    }
    return n;
}

/* Copies s (NULL stays NULL) to *pos. */
static const char *put(char **pos, const char *s, size_t len)
{
    if (!s)
        return NULL;
    char *d = *pos;
    memcpy(d, s, len);
    d[len] = '\0';
    *pos += len + 1;
    return d;
}

static int check_claims(const auth_keys *k, json_t *pl, int64_t now, const auth_key *used,
                        auth_alg alg, auth_claims *out, char *why, size_t whylen)
{
    int64_t exp = 0, nbf = 0, iat = 0;
    int has_exp = num_claim(pl, "exp", &exp);
    int has_nbf = num_claim(pl, "nbf", &nbf);
    int has_iat = num_claim(pl, "iat", &iat);
    if (has_exp < 0 || has_nbf < 0 || has_iat < 0)
        return fail(AUTH_EMALFORMED, "a time claim is not a number", why, whylen);
    if (!has_exp)
        return fail(AUTH_EMALFORMED, "token has no exp claim", why, whylen);
    if (now - k->leeway > exp)
        return fail(AUTH_EEXPIRED, "token expired", why, whylen);
    if (has_nbf && nbf > now + k->leeway)
        return fail(AUTH_ENOTYET, "token not yet valid", why, whylen);
    if (has_iat && iat > now + k->leeway)
        return fail(AUTH_ENOTYET, "token issued in the future", why, whylen);

    const char *sub, *iss, *cust;
    if (str_claim(pl, "sub", &sub) < 0 || str_claim(pl, "iss", &iss) < 0 ||
        str_claim(pl, "customer_id", &cust) < 0)
        return fail(AUTH_EMALFORMED, "a claim has the wrong type", why, whylen);
    /* An empty customer_id must not read as "no customer" (every customer). */
    if (cust && !*cust)
        return fail(AUTH_EMALFORMED, "empty customer_id claim", why, whylen);
    if (k->issuer && (!iss || strcmp(iss, k->issuer) != 0))
        return fail(AUTH_EISS, "wrong issuer", why, whylen);

    json_t *aud = json_object_get(pl, "aud");
    if (aud && !json_is_string(aud)) {
        size_t i;
        json_t *v;
        if (!json_is_array(aud))
            return fail(AUTH_EMALFORMED, "aud claim has the wrong type", why, whylen);
        json_array_foreach(aud, i, v)
        {
            if (!json_is_string(v))
                return fail(AUTH_EMALFORMED, "aud claim has the wrong type", why, whylen);
        }
    }
    if (k->audience && (!aud || !aud_contains(aud, k->audience)))
        return fail(AUTH_EAUD, "wrong audience", why, whylen);

    const char *toks[AUTH_MAX_SCOPES];
    size_t lens[AUTH_MAX_SCOPES];
    int ns = collect_scopes(pl, toks, lens);
    if (ns < 0)
        return fail(AUTH_EMALFORMED, "bad scope claim", why, whylen);

    /* One allocation: the scope pointer array, then the strings. */
    size_t sublen = sub ? strlen(sub) : 0, isslen = iss ? strlen(iss) : 0;
    size_t custlen = cust ? strlen(cust) : 0, kidlen = used ? strlen(used->kid) : 0;
    size_t size = (size_t)ns * sizeof(char *) + sublen + isslen + custlen + kidlen + 4;
    for (int i = 0; i < ns; i++)
        size += lens[i] + 1;
    char *mem = malloc(size);
    if (!mem)
        return fail(AUTH_ENOMEM, "out of memory", why, whylen);
    const char **scopes = (const char **)(void *)mem;
    char *pos = mem + (size_t)ns * sizeof(char *);
    for (int i = 0; i < ns; i++)
        scopes[i] = put(&pos, toks[i], lens[i]);
    out->sub = put(&pos, sub, sublen);
    out->iss = put(&pos, iss, isslen);
    out->customer_id = put(&pos, cust, custlen);
    out->kid = used ? put(&pos, used->kid, kidlen) : NULL;
    out->scopes = ns ? scopes : NULL;
    out->nscopes = (size_t)ns;
    out->exp = exp;
    out->iat = has_iat ? iat : 0;
    out->alg = auth_alg_name(alg);
    out->mem_ = mem;
    return 0;
}

int auth_jwt_verify(const auth_keys *k, const char *token, size_t len, int64_t now_s,
                    auth_claims *out, char *why, size_t whylen)
{
    if (out)
        memset(out, 0, sizeof *out);
    if (!k || !token || !out)
        return fail(AUTH_EINVAL, "invalid argument", why, whylen);
    if (len > AUTH_MAX_TOKEN)
        return fail(AUTH_ETOOBIG, "token too long", why, whylen);
    const char *d1 = memchr(token, '.', len);
    const char *d2 = d1 ? memchr(d1 + 1, '.', len - (size_t)(d1 + 1 - token)) : NULL;
    if (!d2 || memchr(d2 + 1, '.', len - (size_t)(d2 + 1 - token)))
        return fail(AUTH_EMALFORMED, "malformed token (not three parts)", why, whylen);
    size_t hlen = (size_t)(d1 - token), plen = (size_t)(d2 - d1 - 1);
    size_t slen = len - (size_t)(d2 + 1 - token);
    if (hlen == 0 || plen == 0)
        return fail(AUTH_EMALFORMED, "malformed token (empty part)", why, whylen);

    uint8_t buf[DECODED_MAX];
    uint8_t *hdr = buf;
    long hn = auth__b64url_decode(token, hlen, hdr);
    uint8_t *pay = hn >= 0 ? hdr + hn : NULL;
    long pn = pay ? auth__b64url_decode(d1 + 1, plen, pay) : -1;
    uint8_t *sig = pn >= 0 ? pay + pn : NULL;
    long sn = sig ? auth__b64url_decode(d2 + 1, slen, sig) : -1;
    if (sn < 0)
        return fail(AUTH_EMALFORMED, "malformed token (bad base64url)", why, whylen);

    json_t *h = load_object(hdr, (size_t)hn);
    if (!h)
        return fail(AUTH_EMALFORMED, "malformed token (bad header)", why, whylen);
    int rv;
    json_t *pl = NULL;
    const char *alg_s = json_string_value(json_object_get(h, "alg"));
    json_t *kidv = json_object_get(h, "kid");
    auth_alg alg;
    const auth_key *used;
    if (!alg_s) {
        rv = fail(AUTH_EMALFORMED, "malformed token (no alg)", why, whylen);
    } else if (strcasecmp(alg_s, "none") == 0) {
        rv = fail(AUTH_EALG, "algorithm none not allowed", why, whylen);
    } else if ((alg = parse_alg(alg_s)) == AUTH_ALG_DEFAULT) {
        rv = fail(AUTH_EALG, "unsupported algorithm", why, whylen);
    } else if (json_object_get(h, "crit")) {
        rv = fail(AUTH_EALG, "critical header extensions not supported", why, whylen);
    } else if (kidv && !json_is_string(kidv)) {
        rv = fail(AUTH_EMALFORMED, "malformed token (kid not a string)", why, whylen);
    } else if (slen == 0) {
        /* after the alg checks: "alg":"none" tokens come this way */
        rv = fail(AUTH_EMALFORMED, "malformed token (empty signature)", why, whylen);
    } else if ((rv = check_signature(k, alg, json_string_value(kidv), (const uint8_t *)token,
                                     hlen + 1 + plen, sig, (size_t)sn, &used, why, whylen)) == 0) {
        if (!(pl = load_object(pay, (size_t)pn)))
            rv = fail(AUTH_EMALFORMED, "malformed token (bad payload)", why, whylen);
        else
            rv = check_claims(k, pl, now_s, used, alg, out, why, whylen);
    }
    json_decref(pl);
    json_decref(h);
    OPENSSL_cleanse(buf, sizeof buf);
    return rv;
}

void auth_claims_dispose(auth_claims *c)
{
    if (!c)
        return;
    free(c->mem_);
    memset(c, 0, sizeof *c);
}

bool auth_claims_has_scope(const auth_claims *c, const char *scope)
{
    for (size_t i = 0; c && i < c->nscopes; i++)
        if (strcmp(c->scopes[i], scope) == 0)
            return true;
    return false;
}

static bool token68_char(uint8_t c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
           c == '.' || c == '_' || c == '~' || c == '+' || c == '/';
}

int auth_bearer_parse(const uint8_t *value, size_t len, const char **tok, size_t *toklen)
{
    static const char scheme[] = "Bearer ";
    size_t sl = sizeof scheme - 1;
    if (!value || len <= sl || strncasecmp((const char *)value, scheme, sl - 1) != 0 ||
        value[sl - 1] != ' ')
        return AUTH_EMALFORMED;
    size_t i = sl;
    while (i < len && token68_char(value[i]))
        i++;
    if (i == sl)
        return AUTH_EMALFORMED;
    while (i < len && value[i] == '=')
        i++;
    if (i != len)
        return AUTH_EMALFORMED;
    *tok = (const char *)value + sl;
    *toklen = len - sl;
    return 0;
}
