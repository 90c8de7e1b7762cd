/* tls_ctx.c - the server's TLS context: policy (TLS 1.2+, AEAD only, no
 * renegotiation or compression), client certificates (mTLS), reload without
 * dropping connections, and the identity of a verified client certificate.
 *
 * An http2_tls holds the current SSL_CTX behind a mutex. A connection takes a
 * reference to it at accept (SSL_new holds the SSL_CTX for the life of the
 * SSL), so a reload only changes what new connections get: open ones keep
 * the context they were accepted with until they close. Several servers on
 * several loops may share one http2_tls; the mutex is taken once per accept.
 */
#include <openssl/err.h>
#include <openssl/x509v3.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "base/alloc.h"
#include "base/log.h"
#include "http2/http2_int.h"

struct http2_tls {
    pthread_mutex_t mu;
    SSL_CTX *ctx; /* the current one (one reference held here) */
    atomic_int refs;
    char *cert_file, *key_file, *client_ca_file;
    http2_client_auth client_auth;
    int min_version; /* 12 or 13 */
};

static const unsigned char alpn_h2[] = {2, 'h', '2'};
/* With HTTP/1.1 on (h1.c): both, h2 first, so h2 wins when a client offers
 * both (SSL_select_next_proto goes by the server's order). */
static const unsigned char alpn_h2_h1[] = {2, 'h', '2', 8, 'h', 't', 't', 'p', '/', '1', '.', '1'};

/* Picks "h2" (or, with HTTP/1.1 on, "http/1.1") from the client's ALPN list.
 * A client that offers neither gets a fatal no_application_protocol alert:
 * gRPC over anything else is not gRPC. The context may be shared by servers
 * with and without HTTP/1.1: the connection's server decides. */
static int on_alpn_select(SSL *ssl, const unsigned char **out, unsigned char *outlen,
                          const unsigned char *in, unsigned int inlen, void *arg)
{
    (void)arg;
    http2_conn *c = SSL_get_app_data(ssl);
    bool h1 = c && c->ep->http1;
    unsigned char *sel;
    if (SSL_select_next_proto(&sel, outlen, h1 ? alpn_h2_h1 : alpn_h2,
                              h1 ? sizeof alpn_h2_h1 : sizeof alpn_h2, in,
                              inlen) == OPENSSL_NPN_NEGOTIATED) {
        *out = sel;
        return SSL_TLSEXT_ERR_OK;
    }
    OMS_WARN("tls: client %s did not offer ALPN h2%s; refusing the connection", c ? c->peer : "?",
             h1 ? " or http/1.1" : "");
    return SSL_TLSEXT_ERR_ALERT_FATAL;
}

void http2__tls_error(char *err, size_t errlen, const char *what, const char *file)
{
    unsigned long e = ERR_get_error();
    char buf[256] = "";
    if (e)
        ERR_error_string_n(e, buf, sizeof buf);
    snprintf(err, errlen, "%s %s: %s", what, file, e ? buf : "unknown error");
    ERR_clear_error();
}

void http2__tls_policy(SSL_CTX *ctx, int min_version)
{
    SSL_CTX_set_min_proto_version(ctx, min_version == 13 ? TLS1_3_VERSION : TLS1_2_VERSION);
    /* RFC 9113 section 9.2: TLS 1.2 with HTTP/2 needs an AEAD cipher with
     * ephemeral key exchange; every TLS 1.3 suite is AEAD. */
    SSL_CTX_set_cipher_list(ctx, "ECDHE+AESGCM:ECDHE+CHACHA20");
    SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION);
    SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
}

/* A fresh context from t's files; NULL with err[] on failure. */
static SSL_CTX *ctx_new(const http2_tls *t, char *err, size_t errlen)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    if (!ctx) {
        http2__tls_error(err, errlen, "tls", "context");
        return NULL;
    }
    http2__tls_policy(ctx, t->min_version);
    SSL_CTX_set_options(ctx, SSL_OP_CIPHER_SERVER_PREFERENCE);
    if (SSL_CTX_use_certificate_chain_file(ctx, t->cert_file) != 1) {
        http2__tls_error(err, errlen, "cannot load certificate", t->cert_file);
        goto fail;
    }
    if (SSL_CTX_use_PrivateKey_file(ctx, t->key_file, SSL_FILETYPE_PEM) != 1) {
        http2__tls_error(err, errlen, "cannot load private key", t->key_file);
        goto fail;
    }
    if (SSL_CTX_check_private_key(ctx) != 1) {
        http2__tls_error(err, errlen, "private key does not match certificate", t->cert_file);
        goto fail;
    }
    if (t->client_auth != HTTP2_CLIENT_AUTH_OFF) {
        if (SSL_CTX_load_verify_locations(ctx, t->client_ca_file, NULL) != 1) {
            http2__tls_error(err, errlen, "cannot load client CA", t->client_ca_file);
            goto fail;
        }
        /* The CertificateRequest names the acceptable CAs, so a client with
         * several certificates picks the right one. */
        STACK_OF(X509_NAME) *names = SSL_load_client_CA_file(t->client_ca_file);
        if (!names) {
            http2__tls_error(err, errlen, "no CA certificate in", t->client_ca_file);
            goto fail;
        }
        SSL_CTX_set_client_CA_list(ctx, names);
        int mode = SSL_VERIFY_PEER;
        if (t->client_auth == HTTP2_CLIENT_AUTH_REQUIRE)
            mode |= SSL_VERIFY_FAIL_IF_NO_PEER_CERT;
        SSL_CTX_set_verify(ctx, mode, NULL);
        SSL_CTX_set_verify_depth(ctx, 5); /* leaf + up to 4 intermediates */
        /* Resumed sessions keep the client's certificate; OpenSSL refuses to
         * resume a verified session without a context id. */
        static const unsigned char sid_ctx[] = "oms-mtls";
        SSL_CTX_set_session_id_context(ctx, sid_ctx, sizeof sid_ctx - 1);
    }
    SSL_CTX_set_alpn_select_cb(ctx, on_alpn_select, NULL);
    return ctx;
fail:
    SSL_CTX_free(ctx);
    return NULL;
}

/* A key others can read is a leak waiting to happen, but not ours to fix. */
static void check_key_mode(const char *file)
{
    struct stat st;
    if (stat(file, &st) == 0 && (st.st_mode & (S_IRGRP | S_IROTH)))
        OMS_WARN("tls: private key %s is readable by group or others (mode %03o); "
                 "chmod 600 it",
                 file, (unsigned)(st.st_mode & 0777));
}

http2_tls *http2_tls_new(const http2_server_config *cfg, char *err, size_t errlen)
{
    if (cfg->client_auth != HTTP2_CLIENT_AUTH_OFF && !cfg->client_ca_file) {
        snprintf(err, errlen, "client certificate authentication needs a client CA file");
        return NULL;
    }
    if (cfg->tls_min_version != 0 && cfg->tls_min_version != 12 && cfg->tls_min_version != 13) {
        snprintf(err, errlen, "TLS minimum version must be 1.2 or 1.3");
        return NULL;
    }
    http2_tls *t = oms_calloc(1, sizeof *t);
    if (!t) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    atomic_init(&t->refs, 1);
    t->client_auth = cfg->client_auth;
    t->min_version = cfg->tls_min_version == 13 ? 13 : 12;
    t->cert_file = oms_strdup(cfg->cert_file ? cfg->cert_file : "");
    t->key_file = oms_strdup(cfg->key_file ? cfg->key_file : "");
    t->client_ca_file = cfg->client_ca_file ? oms_strdup(cfg->client_ca_file) : NULL;
    if (!t->cert_file || !t->key_file || (cfg->client_ca_file && !t->client_ca_file) ||
        pthread_mutex_init(&t->mu, NULL) != 0) {
        snprintf(err, errlen, "out of memory");
        goto fail;
    }
    if (!(t->ctx = ctx_new(t, err, errlen))) {
        pthread_mutex_destroy(&t->mu);
        goto fail;
    }
    check_key_mode(t->key_file);
    return t;
fail:
    oms_free(t->cert_file);
    oms_free(t->key_file);
    oms_free(t->client_ca_file);
    oms_free(t);
    return NULL;
}

int http2_tls_reload(http2_tls *t, char *err, size_t errlen)
{
    SSL_CTX *ctx = ctx_new(t, err, errlen);
    if (!ctx)
        return UV_EINVAL;
    pthread_mutex_lock(&t->mu);
    SSL_CTX *old = t->ctx;
    t->ctx = ctx;
    pthread_mutex_unlock(&t->mu);
    SSL_CTX_free(old); /* connections accepted with it hold their own reference */
    return 0;
}

http2_tls *http2__tls_ref(http2_tls *t)
{
    atomic_fetch_add(&t->refs, 1);
    return t;
}

void http2_tls_free(http2_tls *t)
{
    if (!t || atomic_fetch_sub(&t->refs, 1) != 1)
        return;
    SSL_CTX_free(t->ctx);
    pthread_mutex_destroy(&t->mu);
    oms_free(t->cert_file);
    oms_free(t->key_file);
    oms_free(t->client_ca_file);
    oms_free(t);
}

SSL *http2__tls_ssl_new(http2_tls *t)
{
    pthread_mutex_lock(&t->mu);
    SSL *ssl = SSL_new(t->ctx); /* takes its own reference to the context */
    pthread_mutex_unlock(&t->mu);
    return ssl;
}

/* --- identity ---------------------------------------------------------- */

/* Accepts a name of 1..HTTP2_TLS_IDENTITY_MAX bytes of valid UTF-8 (ASCII
 * only if ascii) without control characters, NUL included. */
static bool name_ok(const unsigned char *p, size_t n, bool ascii)
{
    if (n == 0 || n > HTTP2_TLS_IDENTITY_MAX)
        return false;
    for (size_t i = 0; i < n;) {
        unsigned char b = p[i];
        if (b < 0x20 || b == 0x7f)
            return false;
        if (b < 0x80) {
            i++;
            continue;
        }
        if (ascii)
            return false;
        size_t len = (b & 0xe0) == 0xc0 ? 2 : (b & 0xf0) == 0xe0 ? 3 : (b & 0xf8) == 0xf0 ? 4 : 0;
        if (len == 0 || i + len > n)
            return false;
        uint32_t cp = b & (0x7f >> len);
        for (size_t k = 1; k < len; k++) {
            if ((p[i + k] & 0xc0) != 0x80)
                return false;
            cp = cp << 6 | (p[i + k] & 0x3f);
        }
        static const uint32_t min[] = {0, 0, 0x80, 0x800, 0x10000};
        if (cp < min[len] || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff) ||
            (cp >= 0x80 && cp < 0xa0)) /* C1 controls */
            return false;
        i += len;
    }
    return true;
}

static int take_name(const unsigned char *p, int n, bool ascii, char **out)
{
    if (n < 0 || !name_ok(p, (size_t)n, ascii))
        return -1;
    *out = oms_strndup((const char *)p, (size_t)n);
    return *out ? 0 : -2;
}

int http2__tls_cert_identity(X509 *x, char **out)
{
    *out = NULL;
    GENERAL_NAMES *gens = X509_get_ext_d2i(x, NID_subject_alt_name, NULL, NULL);
    const ASN1_IA5STRING *uri = NULL, *dns = NULL;
    for (int i = 0; gens && i < sk_GENERAL_NAME_num(gens); i++) {
        const GENERAL_NAME *g = sk_GENERAL_NAME_value(gens, i);
        if (g->type == GEN_URI && !uri)
            uri = g->d.uniformResourceIdentifier;
        else if (g->type == GEN_DNS && !dns)
            dns = g->d.dNSName;
    }
    int rv;
    if (uri || dns) {
        const ASN1_IA5STRING *s = uri ? uri : dns;
        rv = take_name(ASN1_STRING_get0_data(s), ASN1_STRING_length(s), true, out);
        GENERAL_NAMES_free(gens);
        return rv;
    }
    GENERAL_NAMES_free(gens);
    const X509_NAME *subj = X509_get_subject_name(x);
    int idx = subj ? X509_NAME_get_index_by_NID(subj, NID_commonName, -1) : -1;
    if (idx < 0)
        return -1;
    unsigned char *utf8 = NULL;
    int n = ASN1_STRING_to_UTF8(&utf8, X509_NAME_ENTRY_get_data(X509_NAME_get_entry(subj, idx)));
    if (n < 0)
        return -1;
    rv = take_name(utf8, n, false, out);
    OPENSSL_free(utf8);
    return rv;
}

int http2__tls_take_identity(http2_conn *c)
{
    X509 *x = SSL_get0_peer_certificate(c->ssl);
    if (!x)
        return 0; /* optional mode, no certificate: anonymous */
    if (SSL_get_verify_result(c->ssl) != X509_V_OK) {
        snprintf(c->reason, sizeof c->reason, "tls: client certificate not verified");
        return -1;
    }
    int rv = http2__tls_cert_identity(x, &c->tls_identity);
    if (rv != 0) {
        snprintf(c->reason, sizeof c->reason, "tls: %s",
                 rv == -2 ? "out of memory"
                          : "client certificate has no usable identity (URI/DNS SAN or CN)");
        OMS_WARN("conn %s: %s; closing", c->peer, c->reason + 5);
        return -1;
    }
    OMS_DEBUG("conn %s: client certificate identity %s", c->peer, c->tls_identity);
    return 0;
}
