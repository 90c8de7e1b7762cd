/* keys.c - loading verification keys (PEM, or JWKS via jwks.c) and the
 * HS256 secret; reference counting and the swappable slot.
 */
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth/auth_int.h"

int auth__keys_add(auth_keys *k, EVP_PKEY *pkey, auth_kty kty, const char *kid, char *err,
                   size_t errlen)
{
    if (kty == AUTH_KTY_EC) {
        /* The point must be on the curve (an invalid-curve key is no key). */
        EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_pkey(NULL, pkey, NULL);
        int ok = ctx && EVP_PKEY_public_check(ctx) == 1;
        EVP_PKEY_CTX_free(ctx);
        if (!ok) {
            snprintf(err, errlen, "EC public key is not a valid P-256 point");
            goto fail;
        }
    }
    char tp[44];
    if (!kid) {
        if (auth__thumbprint(pkey, kty, tp) != 0) {
            snprintf(err, errlen, "cannot compute the key's thumbprint");
            goto fail;
        }
        kid = tp;
    }
    if (strlen(kid) > AUTH_KID_MAX || kid[0] == '\0') {
        snprintf(err, errlen, "key id empty or longer than %d bytes", AUTH_KID_MAX);
        goto fail;
    }
    for (size_t i = 0; i < k->nkeys; i++) {
        if (strcmp(k->keys[i].kid, kid) == 0) {
            snprintf(err, errlen, "duplicate key id \"%s\"", kid);
            goto fail;
        }
    }
    if (k->nkeys == k->cap) {
        size_t cap = k->cap ? k->cap * 2 : 4;
        auth_key *keys = realloc(k->keys, cap * sizeof *keys);
        if (!keys) {
            snprintf(err, errlen, "out of memory");
            goto fail;
        }
        k->keys = keys;
        k->cap = cap;
    }
    auth_key *key = &k->keys[k->nkeys++];
    key->kty = kty;
    key->pkey = pkey;
    snprintf(key->kid, sizeof key->kid, "%s", kid);
    return 0;
fail:
    EVP_PKEY_free(pkey);
    return -1;
}

/* One PEM block to a public key: SPKI "PUBLIC KEY", PKCS#1 "RSA PUBLIC KEY"
 * or a certificate's key. */
static EVP_PKEY *pem_block_key(const char *name, const uint8_t *data, long len, char *err,
                               size_t errlen)
{
    const unsigned char *p = data;
    EVP_PKEY *pkey = NULL;
    if (strcmp(name, "PUBLIC KEY") == 0) {
        pkey = d2i_PUBKEY(NULL, &p, len);
    } else if (strcmp(name, "RSA PUBLIC KEY") == 0) {
        pkey = d2i_PublicKey(EVP_PKEY_RSA, NULL, &p, len);
    } else if (strcmp(name, "CERTIFICATE") == 0) {
        X509 *x = d2i_X509(NULL, &p, len);
        if (x)
            pkey = X509_get_pubkey(x);
        X509_free(x);
    } else if (strstr(name, "PRIVATE KEY")) {
        snprintf(err, errlen,
                 "holds a private key (%s): give the public key (openssl pkey -pubout)", name);
        return NULL;
    } else {
        snprintf(err, errlen, "unsupported PEM block \"%s\"", name);
        return NULL;
    }
    if (!pkey || p != data + len) {
        snprintf(err, errlen, "bad %s PEM block", name);
        EVP_PKEY_free(pkey);
        return NULL;
    }
    return pkey;
}

/* Every PEM block of doc; at least one. */
static int pem_load(auth_keys *k, const char *path, const uint8_t *doc, size_t len, char *err,
                    size_t errlen)
{
    BIO *bio = BIO_new_mem_buf(doc, (int)len);
    if (!bio) {
        snprintf(err, errlen, "%s: out of memory", path);
        return -1;
    }
    int rv = 0;
    size_t n = 0;
    char why[AUTH_ERRLEN];
    for (;;) {
        char *name = NULL, *header = NULL;
        unsigned char *data = NULL;
        long dlen = 0;
        ERR_clear_error();
        if (!PEM_read_bio(bio, &name, &header, &data, &dlen)) {
            unsigned long e = ERR_peek_last_error();
            if (ERR_GET_LIB(e) == ERR_LIB_PEM && ERR_GET_REASON(e) == PEM_R_NO_START_LINE) {
                if (n == 0) {
                    snprintf(err, errlen, "%s: no PEM public key found", path);
                    rv = -1;
                }
            } else {
                snprintf(err, errlen, "%s: bad PEM block after %zu key(s)", path, n);
                rv = -1;
            }
            break;
        }
        n++;
        EVP_PKEY *pkey = pem_block_key(name, data, dlen, why, sizeof why);
        OPENSSL_free(name);
        OPENSSL_free(header);
        OPENSSL_free(data);
        auth_kty kty = pkey ? auth__pkey_kty(pkey, why, sizeof why) : 0;
        if (!kty)
            EVP_PKEY_free(pkey);
        if (!kty || auth__keys_add(k, pkey, kty, NULL, why, sizeof why) != 0) {
            snprintf(err, errlen, "%s: key %zu: %s", path, n, why);
            rv = -1;
            break;
        }
    }
    ERR_clear_error();
    BIO_free(bio);
    return rv;
}

static int load_public(auth_keys *k, const char *path, char *err, size_t errlen)
{
    size_t len;
    uint8_t *doc = auth__read_file(path, AUTH_MAX_KEYS_FILE, &len, err, errlen);
    if (!doc)
        return -1;
    size_t i = 0;
    while (i < len && (doc[i] == ' ' || doc[i] == '\t' || doc[i] == '\r' || doc[i] == '\n'))
        i++;
    int rv = i < len && doc[i] == '{' ? auth__jwks_load(k, path, doc, len, err, errlen)
                                      : pem_load(k, path, doc, len, err, errlen);
    free(doc);
    return rv;
}

static void keys_free(auth_keys *k)
{
    for (size_t i = 0; i < k->nkeys; i++)
        EVP_PKEY_free(k->keys[i].pkey);
    free(k->keys);
    if (k->secret) {
        OPENSSL_cleanse(k->secret, k->secret_len);
        free(k->secret);
    }
    free(k->issuer);
    free(k->audience);
    free(k);
}

auth_keys *auth_keys_load(const auth_keys_config *cfg, char *err, size_t errlen)
{
    if (!cfg || (!cfg->jwt_keys_file && !cfg->secret_file)) {
        snprintf(err, errlen, "no JWT keys file and no secret file given");
        return NULL;
    }
    auth_keys *k = calloc(1, sizeof *k);
    if (!k) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    atomic_init(&k->refs, 1);
    k->leeway = cfg->leeway_s < 0 ? AUTH_DEFAULT_LEEWAY : cfg->leeway_s;
    if ((cfg->issuer && !(k->issuer = strdup(cfg->issuer))) ||
        (cfg->audience && !(k->audience = strdup(cfg->audience)))) {
        snprintf(err, errlen, "out of memory");
        goto fail;
    }
    if (cfg->jwt_keys_file && load_public(k, cfg->jwt_keys_file, err, errlen) != 0)
        goto fail;
    if (cfg->secret_file &&
        !(k->secret = auth__read_secret(cfg->secret_file, &k->secret_len, err, errlen)))
        goto fail;
    return k;
fail:
    keys_free(k);
    return NULL;
}

auth_keys *auth_keys_ref(auth_keys *k)
{
    if (k)
        atomic_fetch_add_explicit(&k->refs, 1, memory_order_relaxed);
    return k;
}

void auth_keys_unref(auth_keys *k)
{
    if (k && atomic_fetch_sub_explicit(&k->refs, 1, memory_order_acq_rel) == 1)
        keys_free(k);
}

size_t auth_keys_count(const auth_keys *k)
{
    return k ? k->nkeys : 0;
}

bool auth_keys_has_secret(const auth_keys *k)
{
    return k && k->secret;
}

int auth_keys_slot_init(auth_keys_slot *s, auth_keys *keys)
{
    if (pthread_mutex_init(&s->lock, NULL) != 0)
        return AUTH_ENOMEM;
    s->keys = keys;
    return 0;
}

void auth_keys_slot_dispose(auth_keys_slot *s)
{
    auth_keys_unref(s->keys);
    s->keys = NULL;
    pthread_mutex_destroy(&s->lock);
}

auth_keys *auth_keys_slot_get(auth_keys_slot *s)
{
    pthread_mutex_lock(&s->lock);
    auth_keys *k = auth_keys_ref(s->keys);
    pthread_mutex_unlock(&s->lock);
    return k;
}

void auth_keys_slot_set(auth_keys_slot *s, auth_keys *keys)
{
    pthread_mutex_lock(&s->lock);
    auth_keys *old = s->keys;
    s->keys = keys;
    pthread_mutex_unlock(&s->lock);
    auth_keys_unref(old); /* outside the lock: freeing keys takes a while */
}
