/* tls.c - TLS 1.2/1.3 over the connection's own buffers, ALPN "h2" (and
 * "http/1.1" on a server with HTTP/1.1 on: h1.c).
 *
 * The socket is libuv's; OpenSSL only sees two BIOs of our own (conn_bio):
 * the read BIO serves the ciphertext libuv just read, straight from the
 * loop's read buffer (no copy into a memory BIO), and the write BIO appends
 * whatever OpenSSL emits (records, alerts, handshake messages) to the
 * connection's output buffer, so TLS records ride the same
 * single-write-in-flight path as plaintext frames do for h2c, and a flush's
 * records leave in one uv_write.
 */
#include <openssl/err.h>
#include <openssl/x509v3.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "base/log.h"
#include "http2/http2_int.h"

static const unsigned char alpn_h2[] = {2, 'h', '2'};

/* --- the connection's BIOs ------------------------------------------------ */

/* Write side: OpenSSL's output is appended to c->out (whoever made OpenSSL
 * write marks the connection dirty). */
static int on_bio_write(BIO *b, const char *p, int n)
{
    http2_conn *c = BIO_get_data(b);
    BIO_clear_retry_flags(b);
    if (n <= 0)
        return 0;
    if (!c || http2__bytes_append(&c->out, p, (size_t)n) != 0)
        return -1;
    return n;
}

/* Read side: hands out the bytes http2__tls_feed() is feeding (borrowed from
 * the read callback's buffer); none left means "retry when more arrives". */
static int on_bio_read(BIO *b, char *p, int n)
{
    http2_conn *c = BIO_get_data(b);
    BIO_clear_retry_flags(b);
    if (n <= 0)
        return 0;
    if (!c || c->tls_in_n == 0) {
        BIO_set_retry_read(b);
        return -1;
    }
    size_t k = c->tls_in_n < (size_t)n ? c->tls_in_n : (size_t)n;
    memcpy(p, c->tls_in, k);
    c->tls_in += k;
    c->tls_in_n -= k;
    return (int)k;
}

static long on_bio_ctrl(BIO *b, int cmd, long num, void *ptr)
{
    (void)num;
    (void)ptr;
    http2_conn *c = BIO_get_data(b);
    switch (cmd) {
    case BIO_CTRL_FLUSH: /* handshake flights: c->out is flushed by the loop */
        return 1;
    case BIO_CTRL_PENDING: /* input not yet handed to OpenSSL */
        return c ? (long)c->tls_in_n : 0;
    default:
        return 0;
    }
}

static BIO_METHOD *bio_method;
static pthread_once_t bio_once = PTHREAD_ONCE_INIT;

/* One method for every loop; it lives as long as the process. */
static void make_bio_method(void)
{
    BIO_METHOD *m = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "oms-conn");
    if (!m)
        return;
    if (BIO_meth_set_write(m, on_bio_write) != 1 || BIO_meth_set_read(m, on_bio_read) != 1 ||
        BIO_meth_set_ctrl(m, on_bio_ctrl) != 1) {
        BIO_meth_free(m);
        return;
    }
    bio_method = m;
}

static BIO *conn_bio(http2_conn *c)
{
    pthread_once(&bio_once, make_bio_method);
    if (!bio_method)
        return NULL;
    BIO *b = BIO_new(bio_method);
    if (!b)
        return NULL;
    BIO_set_data(b, c);
    BIO_set_init(b, 1);
    return b;
}

/* OpenSSL wrote (handshake, alert, session ticket): have the loop send it. */
static void note_output(http2_conn *c)
{
    if (c->out.len > c->out.off)
        http2__conn_mark_dirty(c);
}

int http2__tls_conn_init(http2_conn *c)
{
    c->ssl = c->ep->tls ? http2__tls_ssl_new(c->ep->tls) : SSL_new(c->ep->ssl_ctx);
    if (!c->ssl)
        return UV_ENOMEM;
    BIO *rbio = conn_bio(c), *wbio = conn_bio(c);
    if (!rbio || !wbio) {
        BIO_free(rbio);
        BIO_free(wbio);
        SSL_free(c->ssl);
        c->ssl = NULL;
        return UV_ENOMEM;
    }
    SSL_set_bio(c->ssl, rbio, wbio); /* the SSL owns both BIOs now */
    SSL_set_app_data(c->ssl, c);
    if (c->ep->client)
        SSL_set_connect_state(c->ssl);
    else
        SSL_set_accept_state(c->ssl);
    return 0;
}

SSL_CTX *http2__tls_client_ctx_new(const http2_client_config *cfg, char *err, size_t errlen)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    if (!ctx) {
        http2__tls_error(err, errlen, "tls", "context");
        return NULL;
    }
    http2__tls_policy(ctx, 12);
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
    if (cfg->ca_file ? SSL_CTX_load_verify_locations(ctx, cfg->ca_file, NULL) != 1
                     : SSL_CTX_set_default_verify_paths(ctx) != 1) {
        http2__tls_error(err, errlen, "cannot load CA certificates",
                         cfg->ca_file ? cfg->ca_file : "");
        goto fail;
    }
    if (!cfg->cert_file != !cfg->key_file) {
        snprintf(err, errlen, "a client certificate needs its key and a key its certificate");
        goto fail;
    }
    if (cfg->cert_file && SSL_CTX_use_certificate_chain_file(ctx, cfg->cert_file) != 1) {
        http2__tls_error(err, errlen, "cannot load client certificate", cfg->cert_file);
        goto fail;
    }
    if (cfg->key_file && SSL_CTX_use_PrivateKey_file(ctx, cfg->key_file, SSL_FILETYPE_PEM) != 1) {
        http2__tls_error(err, errlen, "cannot load client key", cfg->key_file);
        goto fail;
    }
    if (cfg->cert_file && SSL_CTX_check_private_key(ctx) != 1) {
        http2__tls_error(err, errlen, "client key does not match certificate", cfg->cert_file);
        goto fail;
    }
    if (SSL_CTX_set_alpn_protos(ctx, alpn_h2, sizeof alpn_h2) != 0) {
        http2__tls_error(err, errlen, "tls", "alpn");
        goto fail;
    }
    return ctx;
fail:
    SSL_CTX_free(ctx);
    return NULL;
}

int http2__tls_connect(http2_conn *c)
{
    int rv = http2__tls_conn_init(c);
    if (rv != 0)
        return rv;
    if (c->server_name) {
        /* An IP literal is checked against the certificate's IP SANs; a name
         * gets SNI and a hostname check. */
        X509_VERIFY_PARAM *vp = SSL_get0_param(c->ssl);
        if (X509_VERIFY_PARAM_set1_ip_asc(vp, c->server_name) != 1) {
            SSL_set_tlsext_host_name(c->ssl, c->server_name);
            if (SSL_set1_host(c->ssl, c->server_name) != 1)
                return UV_ENOMEM;
        }
    }
    SSL_do_handshake(c->ssl);
    ERR_clear_error();
    note_output(c);
    return c->out.len > c->out.off ? 0 : -1; /* no ClientHello: out of memory */
}

/* Runs the handshake and SSL_read over the bytes in c->tls_in. */
static int feed(http2_conn *c)
{
    if (!c->handshake_done) {
        int rv = SSL_do_handshake(c->ssl);
        note_output(c);
        if (rv != 1) {
            int e = SSL_get_error(c->ssl, rv);
            if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE)
                return 0;
            unsigned long code = ERR_peek_error();
            long vr = SSL_get_verify_result(c->ssl);
            if (vr != X509_V_OK)
                snprintf(c->reason, sizeof c->reason, "tls: %scertificate verify failed: %s",
                         c->ep->client ? "" : "client ", X509_verify_cert_error_string(vr));
            else
                snprintf(c->reason, sizeof c->reason, "tls: handshake failed: %s",
                         code ? ERR_reason_error_string(code) : "connection reset");
            OMS_INFO("tls: handshake with %s failed: %s", c->peer, c->reason + 5);
            ERR_clear_error();
            http2__count(&c->ep->ctr.tls_failures, 1);
            return -1;
        }
        const unsigned char *proto = NULL;
        unsigned int plen = 0;
        SSL_get0_alpn_selected(c->ssl, &proto, &plen);
        bool h1 = !c->ep->client && c->ep->http1 && plen == 8 && memcmp(proto, "http/1.1", 8) == 0;
        /* No protocol agreed (a client without ALPN, as node's https module
         * or Python's http.client): with HTTP/1.1 on, the first bytes tell,
         * as in cleartext; HTTP/1.1 is what such clients speak. */
        bool sniff = !c->ep->client && c->ep->http1 && plen == 0;
        if (!h1 && !sniff && (plen != 2 || memcmp(proto, "h2", 2) != 0)) {
            /* A client that sent no ALPN extension at all gets here, and so
             * does a client whose server did not pick h2. */
            snprintf(c->reason, sizeof c->reason, "tls: peer did not negotiate ALPN h2");
            OMS_WARN("tls: %s %s did not negotiate ALPN h2; closing",
                     c->ep->client ? "server" : "client", c->peer);
            http2__count(&c->ep->ctr.tls_failures, 1);
            return -1;
        }
        if (!c->ep->client && http2__tls_take_identity(c) != 0)
            return -1;
        c->handshake_done = 1;
        http2__count(&c->ep->ctr.tls_handshakes, 1);
        if (sniff)
            c->sniffing = 1;
        else if ((h1 ? http2__h1_start(c) : http2__conn_start_session(c)) != 0)
            return -1;
    }
    uint8_t buf[16384];
    for (;;) {
        int r = SSL_read(c->ssl, buf, sizeof buf);
        if (r > 0) {
            if (http2__conn_recv(c, buf, (size_t)r) != 0)
                return -1;
            if (c->closing)
                return -1;
            continue;
        }
        int e = SSL_get_error(c->ssl, r);
        note_output(c);
        if (e == SSL_ERROR_WANT_READ)
            return 0;
        if (e == SSL_ERROR_ZERO_RETURN) {
            http2__conn_why(c, HTTP2_CLOSE_PEER);
            return -1; /* close_notify */
        }
        unsigned long code = ERR_peek_error();
        if (e == SSL_ERROR_SSL && code && !c->reason[0]) {
            /* e.g. a TLS 1.3 server refusing our certificate (or its
             * absence) after our side of the handshake was done */
            snprintf(c->reason, sizeof c->reason, "tls: %s", ERR_reason_error_string(code));
            OMS_INFO("tls: %s %s: %s", c->ep->client ? "server" : "client", c->peer, c->reason + 5);
        }
        ERR_clear_error();
        return -1;
    }
}

int http2__tls_feed(http2_conn *c, const uint8_t *p, size_t n)
{
    /* OpenSSL reads until its BIO runs dry (WANT_READ), keeping a partial
     * record in its own buffer, so nothing of p is left when feed() returns
     * 0; on an error the rest does not matter. */
    c->tls_in = p;
    c->tls_in_n = n;
    int rv = feed(c);
    c->tls_in = NULL;
    c->tls_in_n = 0;
    return rv;
}

int http2__tls_write(http2_conn *c, const uint8_t *p, size_t n)
{
    /* The write BIO never blocks, so SSL_write takes everything at once and
     * cuts it into records of up to 16 KiB (max_send_fragment). */
    while (n > 0) {
        size_t w = 0;
        if (SSL_write_ex(c->ssl, p, n, &w) != 1 || w == 0) {
            ERR_clear_error();
            return -1;
        }
        p += w;
        n -= w;
    }
    return 0;
}
