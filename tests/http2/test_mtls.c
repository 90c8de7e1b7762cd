/* test_mtls.c - client certificates (mTLS), the identity taken from them, the
 * TLS policy and reloading the server's context with connections open.
 *
 * Certificates come from scripts/certs.sh run into fresh temporary
 * directories (h2t_make_certs(), and certs.sh into another directory for a foreign
 * CA); names for the identity rules are built in memory with OpenSSL's X509
 * API, hostile bytes included. */
#include "h2harness.h"

#include "base/alloc.h"

#include <openssl/pem.h>
#include <openssl/x509v3.h>

static const unsigned char alpn_h2[] = {2, 'h', '2'};

/* --- identity ------------------------------------------------------------------- */

/* A bare certificate (unsigned: the identity rules do not look at the
 * signature) with subject CN cn (cnlen bytes, may hold NUL; NULL: none) and
 * SANs: uri/dns (len bytes each; NULL: none). */
static X509 *cert_with(const char *cn, int cnlen, const char *uri, int urilen, const char *dns,
                       int dnslen)
{
    X509 *x = X509_new();
    cr_assert_not_null(x);
    X509_NAME *name = X509_get_subject_name(x);
    X509_NAME_add_entry_by_txt(name, "O", MBSTRING_ASC, (const unsigned char *)"oms", -1, -1, 0);
    if (cn)
        cr_assert_eq(X509_NAME_add_entry_by_NID(name, NID_commonName, MBSTRING_UTF8,
                                                (const unsigned char *)cn, cnlen, -1, 0),
                     1);
    if (uri || dns) {
        GENERAL_NAMES *gens = sk_GENERAL_NAME_new_null();
        /* DNS first on purpose: the URI SAN wins wherever it is. */
        const char *vals[2] = {dns, uri};
        int lens[2] = {dnslen, urilen}, types[2] = {GEN_DNS, GEN_URI};
        for (int i = 0; i < 2; i++) {
            if (!vals[i])
                continue;
            GENERAL_NAME *g = GENERAL_NAME_new();
            ASN1_IA5STRING *s = ASN1_IA5STRING_new();
            cr_assert_eq(ASN1_STRING_set(s, vals[i], lens[i]), 1);
            GENERAL_NAME_set0_value(g, types[i], s);
            sk_GENERAL_NAME_push(gens, g);
        }
        cr_assert_eq(X509_add1_ext_i2d(x, NID_subject_alt_name, gens, 0, 0), 1);
        GENERAL_NAMES_free(gens);
    }
    return x;
}

static int identity_of(X509 *x, char **out)
{
    int rv = http2__tls_cert_identity(x, out);
    X509_free(x);
    return rv;
}

#define S(lit) lit, (int)(sizeof lit - 1)

Test(http2_mtls, identity_prefers_uri_san)
{
    char *id;
    cr_assert_eq(
        identity_of(cert_with(S("cn"), S("spiffe://oms.local/client/dev"), S("dev.oms.local")),
                    &id),
        0);
    cr_expect_str_eq(id, "spiffe://oms.local/client/dev");
    oms_free(id);
}

Test(http2_mtls, identity_dns_san_without_uri)
{
    char *id;
    cr_assert_eq(identity_of(cert_with(S("cn"), NULL, 0, S("dev.oms.local")), &id), 0);
    cr_expect_str_eq(id, "dev.oms.local");
    oms_free(id);
}

Test(http2_mtls, identity_cn_only_utf8)
{
    char *id;
    cr_assert_eq(identity_of(cert_with(S("J\xc3\xa9r\xc3\xb4me"), NULL, 0, NULL, 0), &id), 0);
    cr_expect_str_eq(id, "J\xc3\xa9r\xc3\xb4me");
    oms_free(id);
}

Test(http2_mtls, identity_longest_allowed)
{
    char name[HTTP2_TLS_IDENTITY_MAX];
    memset(name, 'a', sizeof name);
    char *id;
    cr_assert_eq(identity_of(cert_with(NULL, 0, NULL, 0, name, (int)sizeof name), &id), 0);
    cr_expect_eq(strlen(id), HTTP2_TLS_IDENTITY_MAX);
    oms_free(id);
}

/* Each of these has no acceptable identity: -1 and nothing allocated. */
static void hostile(X509 *x, const char *what)
{
    char *id = (char *)"untouched";
    cr_expect_eq(identity_of(x, &id), -1, "%s: accepted", what);
    cr_expect_null(id, "%s: identity set", what);
}

Test(http2_mtls, identity_hostile_names_are_refused)
{
    hostile(cert_with(S("cn"), S("spiffe://evil\0.oms.local/x"), NULL, 0), "NUL in URI SAN");
    hostile(cert_with(S("cn"), NULL, 0, S("a.oms.local\0.evil.com")), "NUL in DNS SAN");
    hostile(cert_with(S("admin\0x"), NULL, 0, NULL, 0), "NUL in CN");
    hostile(cert_with(S("cn"), S("spiffe://x/\n[fake log line]"), NULL, 0), "LF in URI SAN");
    hostile(cert_with(S("a\x1b[31m"), NULL, 0, NULL, 0), "ESC in CN");
    hostile(cert_with(S("a\x7f"), NULL, 0, NULL, 0), "DEL in CN");
    hostile(cert_with(S("a\xc2\x85"), NULL, 0, NULL, 0), "C1 control in CN");
    hostile(cert_with(S("cn"), NULL, 0, S("caf\xc3\xa9.example")), "non-ASCII in DNS SAN");
    hostile(cert_with(S("cn"), S(""), NULL, 0), "empty URI SAN");
    hostile(cert_with(NULL, 0, NULL, 0, NULL, 0), "no name at all");
    char big[HTTP2_TLS_IDENTITY_MAX + 1];
    memset(big, 'a', sizeof big);
    hostile(cert_with(S("cn"), NULL, 0, big, (int)sizeof big), "257-byte DNS SAN");
    static char huge[60000];
    memset(huge, 'u', sizeof huge);
    hostile(cert_with(S("cn"), huge, (int)sizeof huge, NULL, 0), "60000-byte URI SAN");
    /* A hostile URI does not fall back to a tamer DNS name or CN. */
    hostile(cert_with(S("cn"), S("spiffe://a\0b"), S("ok.oms.local")), "bad URI, good DNS");
}

/* --- handshakes ----------------------------------------------------------------- */

/* A second certs.sh run: another CA, its server and client certificates. */
static void foreign_certs(char *dir, size_t n)
{
    snprintf(dir, n, "/tmp/oms-h2test-XXXXXX");
    cr_assert_not_null(mkdtemp(dir));
    char root[1024], cmd[2048];
    snprintf(root, sizeof root, "%s", __FILE__);
    for (int i = 0; i < 3; i++)
        *strrchr(root, '/') = 0;
    snprintf(cmd, sizeof cmd, "bash '%s/scripts/certs.sh' '%s' 2>/dev/null", root, dir);
    cr_assert_eq(system(cmd), 0, "%s failed", cmd);
}

static void rm_dir(const char *dir)
{
    char cmd[256];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    cr_expect_eq(system(cmd), 0);
}

/* Connects over TLS verifying the server with cadir/ca.pem, presenting
 * certdir/client.pem if certdir is not NULL; max_version 0 or e.g.
 * TLS1_2_VERSION; ciphers NULL or a TLS 1.2 cipher list. */
static void mt_connect(h2c *c, h2t *t, const char *cadir, const char *certdir, int max_version,
                       const char *ciphers)
{
    h2c_connect(c, t);
    c->sslctx = SSL_CTX_new(TLS_client_method());
    cr_assert_not_null(c->sslctx);
    char path[256];
    snprintf(path, sizeof path, "%s/ca.pem", cadir);
    cr_assert_eq(SSL_CTX_load_verify_locations(c->sslctx, path, NULL), 1);
    SSL_CTX_set_verify(c->sslctx, SSL_VERIFY_PEER, NULL);
    SSL_CTX_set_mode(c->sslctx,
                     SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    if (max_version)
        SSL_CTX_set_max_proto_version(c->sslctx, max_version);
    if (ciphers)
        cr_assert_eq(SSL_CTX_set_cipher_list(c->sslctx, ciphers), 1);
    cr_assert_eq(SSL_CTX_set_alpn_protos(c->sslctx, alpn_h2, sizeof alpn_h2), 0);
    if (certdir) {
        snprintf(path, sizeof path, "%s/client.pem", certdir);
        cr_assert_eq(SSL_CTX_use_certificate_chain_file(c->sslctx, path), 1);
        snprintf(path, sizeof path, "%s/client.key", certdir);
        cr_assert_eq(SSL_CTX_use_PrivateKey_file(c->sslctx, path, SSL_FILETYPE_PEM), 1);
    }
    c->ssl = SSL_new(c->sslctx);
    cr_assert_not_null(c->ssl);
    SSL_set_fd(c->ssl, c->fd);
    SSL_set_tlsext_host_name(c->ssl, "localhost");
    cr_assert_eq(SSL_set1_host(c->ssl, "localhost"), 1);
    h2c_session(c, NULL, 0, 0);
}

/* One request on c: 1 if it got a 200, 0 if the connection died first. */
static int mt_request(h2t *t, h2c *c)
{
    static const uint8_t body[] = "hello";
    cli_stream *cs = h2c_request(c, NULL, 0, body, sizeof body - 1, 0, 0);
    PUMP_UNTIL(t, c, cs->closed || c->eof, 3000);
    return cs->closed && cs->status == 200;
}

/* The server's only connection's identity (NULL if none or anonymous). */
static const char *server_identity(h2t *t)
{
    cr_assert_eq(http2_server_conn_count(t->srv), 1);
    return t->srv->ep.conns->tls_identity;
}

static void mt_server(h2t *t, http2_client_auth mode)
{
    h2t_init(t);
    h2t_make_certs(t);
    static char ca[128];
    snprintf(ca, sizeof ca, "%s/ca.pem", t->certdir);
    t->cfg.client_ca_file = mode == HTTP2_CLIENT_AUTH_OFF ? NULL : ca;
    t->cfg.client_auth = mode;
    h2t_start(t);
}

/* Expects the connection to fail: the handshake (TLS 1.2: the client sees
 * the alert), or right after it (TLS 1.3: the server checks the client's
 * certificate after the client finished), with no response. */
static void expect_refused(h2t *t, h2c *c, const char *what)
{
    cr_expect_eq(mt_request(t, c), 0, "%s: the request was served", what);
    cr_expect(c->eof, "%s: the connection stayed open", what);
    PUMP_UNTIL(t, c, http2_server_conn_count(t->srv) == 0, 2000);
    cr_expect_eq(http2_server_conn_count(t->srv), 0, "%s: the server kept it", what);
}

Test(http2_mtls, require_with_certificate_has_identity)
{
    h2t t;
    mt_server(&t, HTTP2_CLIENT_AUTH_REQUIRE);
    h2c c;
    mt_connect(&c, &t, t.certdir, t.certdir, 0, NULL);
    cr_assert(mt_request(&t, &c), "request failed");
    cr_expect_str_eq(server_identity(&t), "spiffe://oms.local/client/dev");
    /* The client was told which CA to use. */
    STACK_OF(X509_NAME) *names = SSL_get_client_CA_list(c.ssl);
    cr_assert_eq(sk_X509_NAME_num(names), 1);
    char buf[128];
    X509_NAME_oneline(sk_X509_NAME_value(names, 0), buf, sizeof buf);
    cr_expect_str_eq(buf, "/CN=oms dev CA");
    h2c_close(&c);
    h2t_finish(&t);
}

Test(http2_mtls, require_without_certificate_is_refused)
{
    h2t t;
    mt_server(&t, HTTP2_CLIENT_AUTH_REQUIRE);
    h2c c;
    mt_connect(&c, &t, t.certdir, NULL, 0, NULL);
    expect_refused(&t, &c, "TLS 1.3, no certificate");
    h2c_close(&c);
    mt_connect(&c, &t, t.certdir, NULL, TLS1_2_VERSION, NULL);
    expect_refused(&t, &c, "TLS 1.2, no certificate");
    cr_expect(c.tls_failed, "TLS 1.2: the client's handshake did not fail");
    h2c_close(&c);
    h2t_finish(&t);
}

Test(http2_mtls, foreign_ca_is_refused_in_both_modes)
{
    char other[64];
    foreign_certs(other, sizeof other);
    for (int mode = HTTP2_CLIENT_AUTH_OPTIONAL; mode <= HTTP2_CLIENT_AUTH_REQUIRE; mode++) {
        h2t t;
        mt_server(&t, (http2_client_auth)mode);
        h2c c;
        mt_connect(&c, &t, t.certdir, other, 0, NULL);
        expect_refused(&t, &c, mode == HTTP2_CLIENT_AUTH_REQUIRE ? "require" : "optional");
        h2c_close(&c);
        h2t_finish(&t);
    }
    rm_dir(other);
}

Test(http2_mtls, optional_without_certificate_is_anonymous)
{
    h2t t;
    mt_server(&t, HTTP2_CLIENT_AUTH_OPTIONAL);
    h2c c;
    mt_connect(&c, &t, t.certdir, NULL, 0, NULL);
    cr_assert(mt_request(&t, &c), "request failed");
    cr_expect_null(server_identity(&t));
    h2c_close(&c);
    PUMP_UNTIL(&t, NULL, http2_server_conn_count(t.srv) == 0, 2000);
    mt_connect(&c, &t, t.certdir, t.certdir, 0, NULL);
    cr_assert(mt_request(&t, &c), "request with a certificate failed");
    cr_expect_str_eq(server_identity(&t), "spiffe://oms.local/client/dev");
    h2c_close(&c);
    h2t_finish(&t);
}

Test(http2_mtls, off_asks_for_nothing)
{
    h2t t;
    mt_server(&t, HTTP2_CLIENT_AUTH_OFF);
    h2c c;
    mt_connect(&c, &t, t.certdir, t.certdir, 0, NULL);
    cr_assert(mt_request(&t, &c), "request failed");
    cr_expect_null(server_identity(&t), "identity without a request for a certificate");
    h2c_close(&c);
    h2t_finish(&t);
}

Test(http2_mtls, client_auth_without_ca_is_a_config_error)
{
    h2t t;
    h2t_init(&t);
    h2t_make_certs(&t);
    t.cfg.client_auth = HTTP2_CLIENT_AUTH_REQUIRE;
    char err[256] = "";
    cr_expect_neq(http2_server_new(&t.loop, &t.cfg, &t.srv, err, sizeof err), 0);
    cr_expect_neq(strstr(err, "client CA"), NULL, "err: %s", err);
    t.srv = NULL;
    h2t_finish(&t);
}

/* Writes dir/client.pem and client.key: a fresh key and a certificate signed
 * by the CA in cadir whose only name is a URI SAN of urilen bytes (hostile
 * ones included), valid now. */
static void hostile_client_cert(const char *cadir, const char *dir, const char *uri, int urilen)
{
    char path[256];
    snprintf(path, sizeof path, "%s/ca.pem", cadir);
    FILE *f = fopen(path, "r");
    cr_assert_not_null(f);
    X509 *ca = PEM_read_X509(f, NULL, NULL, NULL);
    fclose(f);
    snprintf(path, sizeof path, "%s/ca.key", cadir);
    f = fopen(path, "r");
    cr_assert_not_null(f);
    EVP_PKEY *cakey = PEM_read_PrivateKey(f, NULL, NULL, NULL);
    fclose(f);
    cr_assert(ca && cakey);
    EVP_PKEY *key = EVP_EC_gen("P-256");
    cr_assert_not_null(key);
    X509 *x = cert_with(NULL, 0, uri, urilen, NULL, 0);
    X509_set_version(x, 2);
    ASN1_INTEGER_set(X509_get_serialNumber(x), 4242);
    X509_set_issuer_name(x, X509_get_subject_name(ca));
    X509_gmtime_adj(X509_getm_notBefore(x), -3600);
    X509_gmtime_adj(X509_getm_notAfter(x), 3600);
    X509_set_pubkey(x, key);
    cr_assert_gt(X509_sign(x, cakey, EVP_sha256()), 0);
    snprintf(path, sizeof path, "%s/client.pem", dir);
    f = fopen(path, "w");
    cr_assert_not_null(f);
    PEM_write_X509(f, x);
    fclose(f);
    snprintf(path, sizeof path, "%s/client.key", dir);
    f = fopen(path, "w");
    cr_assert_not_null(f);
    PEM_write_PrivateKey(f, key, NULL, NULL, 0, NULL, NULL);
    fclose(f);
    X509_free(x);
    X509_free(ca);
    EVP_PKEY_free(key);
    EVP_PKEY_free(cakey);
}

/* A certificate the CA signed is still refused when its name is hostile:
 * the identity would be ambiguous in logs and policies. */
Test(http2_mtls, verified_certificate_with_hostile_name_is_refused)
{
    h2t t;
    mt_server(&t, HTTP2_CLIENT_AUTH_OPTIONAL);
    char dir[64];
    snprintf(dir, sizeof dir, "/tmp/oms-h2test-XXXXXX");
    cr_assert_not_null(mkdtemp(dir));
    hostile_client_cert(t.certdir, dir, S("spiffe://oms.local/admin\0.evil"));
    h2c c;
    mt_connect(&c, &t, t.certdir, dir, 0, NULL);
    expect_refused(&t, &c, "NUL in a signed certificate's URI SAN");
    h2c_close(&c);
    /* The same CA and a clean name: accepted (the refusal was the name). */
    hostile_client_cert(t.certdir, dir, S("spiffe://oms.local/ok"));
    mt_connect(&c, &t, t.certdir, dir, 0, NULL);
    cr_expect(mt_request(&t, &c), "a clean name from the same CA was refused");
    cr_expect_str_eq(server_identity(&t), "spiffe://oms.local/ok");
    h2c_close(&c);
    h2t_finish(&t);
    rm_dir(dir);
}

/* --- policy --------------------------------------------------------------------- */

Test(http2_mtls, non_aead_tls12_suite_is_refused)
{
    h2t t;
    mt_server(&t, HTTP2_CLIENT_AUTH_OFF);
    h2c c;
    mt_connect(&c, &t, t.certdir, NULL, TLS1_2_VERSION, "ECDHE-ECDSA-AES128-SHA:AES128-SHA");
    expect_refused(&t, &c, "CBC suite");
    cr_expect(c.tls_failed);
    h2c_close(&c);
    mt_connect(&c, &t, t.certdir, NULL, TLS1_2_VERSION, NULL);
    cr_expect(mt_request(&t, &c), "TLS 1.2 with an AEAD suite failed");
    cr_expect_eq(SSL_version(c.ssl), TLS1_2_VERSION);
    h2c_close(&c);
    h2t_finish(&t);
}

Test(http2_mtls, min_version_13_refuses_tls12)
{
    h2t t;
    h2t_init(&t);
    h2t_make_certs(&t);
    t.cfg.tls_min_version = 13;
    h2t_start(&t);
    h2c c;
    mt_connect(&c, &t, t.certdir, NULL, TLS1_2_VERSION, NULL);
    expect_refused(&t, &c, "TLS 1.2 against a 1.3 minimum");
    cr_expect(c.tls_failed);
    h2c_close(&c);
    mt_connect(&c, &t, t.certdir, NULL, 0, NULL);
    cr_expect(mt_request(&t, &c), "TLS 1.3 failed");
    cr_expect_eq(SSL_version(c.ssl), TLS1_3_VERSION);
    h2c_close(&c);
    h2t_finish(&t);
}

/* --- reload --------------------------------------------------------------------- */

static void copy_file(const char *from, const char *to)
{
    char cmd[512];
    snprintf(cmd, sizeof cmd, "cp '%s' '%s'", from, to);
    cr_assert_eq(system(cmd), 0);
}

/* Whether the server certificate c saw is the one in file. */
static int peer_cert_is(h2c *c, const char *file)
{
    FILE *f = fopen(file, "r");
    cr_assert_not_null(f);
    X509 *want = PEM_read_X509(f, NULL, NULL, NULL);
    fclose(f);
    X509 *got = SSL_get1_peer_certificate(c->ssl);
    int same = want && got && X509_cmp(want, got) == 0;
    X509_free(want);
    X509_free(got);
    return same;
}

Test(http2_mtls, reload_keeps_open_connections_and_serves_the_new_certificate)
{
    char other[64], path[128];
    foreign_certs(other, sizeof other);
    h2t t;
    mt_server(&t, HTTP2_CLIENT_AUTH_REQUIRE);
    char old_cert[128];
    snprintf(old_cert, sizeof old_cert, "%s/old.pem", t.certdir);
    copy_file(t.cfg.cert_file, old_cert);

    h2c c1;
    mt_connect(&c1, &t, t.certdir, t.certdir, 0, NULL);
    cr_assert(mt_request(&t, &c1));
    cr_expect(peer_cert_is(&c1, old_cert));

    /* The other CA's server certificate and key, and that CA for clients. */
    snprintf(path, sizeof path, "%s/server.pem", other);
    copy_file(path, t.cfg.cert_file);
    snprintf(path, sizeof path, "%s/server.key", other);
    copy_file(path, t.cfg.key_file);
    snprintf(path, sizeof path, "%s/ca.pem", other);
    copy_file(path, t.cfg.client_ca_file);
    char err[256] = "";
    cr_assert_eq(http2_server_reload_tls(t.srv, err, sizeof err), 0, "reload: %s", err);

    /* The open connection keeps its context: more requests work. */
    cr_expect(mt_request(&t, &c1), "the open connection broke on reload");
    cr_expect_str_eq(t.srv->ep.conns->tls_identity, "spiffe://oms.local/client/dev");
    /* A new one gets the new certificate and the new client CA. */
    h2c c2;
    mt_connect(&c2, &t, other, other, 0, NULL);
    cr_expect(mt_request(&t, &c2), "new connection after reload failed");
    snprintf(path, sizeof path, "%s/server.pem", other);
    cr_expect(peer_cert_is(&c2, path), "new connection did not see the new certificate");
    h2c_close(&c2);
    /* A client of the old CA is now a foreign one. */
    h2c c3;
    mt_connect(&c3, &t, other, t.certdir, 0, NULL);
    cr_expect_eq(mt_request(&t, &c3), 0, "old client CA still accepted");
    h2c_close(&c3);

    /* A bad reload keeps the context that works. */
    FILE *f = fopen(t.cfg.cert_file, "w");
    cr_assert_not_null(f);
    fputs("-----BEGIN CERTIFICATE-----\ngarbage\n-----END CERTIFICATE-----\n", f);
    fclose(f);
    err[0] = 0;
    cr_expect_neq(http2_server_reload_tls(t.srv, err, sizeof err), 0);
    cr_expect_neq(strstr(err, "certificate"), NULL, "err: %s", err);
    h2c c4;
    mt_connect(&c4, &t, other, other, 0, NULL);
    cr_expect(mt_request(&t, &c4), "a bad reload broke new connections");
    cr_expect(peer_cert_is(&c4, path));
    h2c_close(&c4);
    cr_expect(mt_request(&t, &c1), "a bad reload broke the first connection");
    h2c_close(&c1);
    h2t_finish(&t);
    rm_dir(other);
}

/* Several servers (loops of one process) share one context: one reload
 * changes what all of them serve. */
Test(http2_mtls, shared_context_reload_reaches_every_server)
{
    char other[64], path[128];
    foreign_certs(other, sizeof other);
    h2t a, b;
    h2t_init(&a);
    h2t_make_certs(&a);
    char err[256] = "";
    http2_tls *tls = http2_tls_new(&a.cfg, err, sizeof err);
    cr_assert_not_null(tls, "%s", err);
    a.cfg.tls_ctx = tls;
    h2t_start(&a);
    h2t_init(&b);
    b.cfg.tls = 1;
    b.cfg.tls_ctx = tls;
    h2t_start(&b);
    http2_tls_free(tls); /* the servers hold theirs */

    snprintf(path, sizeof path, "%s/server.pem", other);
    copy_file(path, a.cfg.cert_file);
    snprintf(path, sizeof path, "%s/server.key", other);
    copy_file(path, a.cfg.key_file);
    cr_assert_eq(http2_server_reload_tls(a.srv, err, sizeof err), 0, "%s", err);
    h2c c;
    mt_connect(&c, &b, other, NULL, 0, NULL);
    cr_expect(mt_request(&b, &c), "server b does not serve the reloaded certificate");
    snprintf(path, sizeof path, "%s/server.pem", other);
    cr_expect(peer_cert_is(&c, path));
    h2c_close(&c);
    h2t_finish(&b);
    h2t_finish(&a);
    rm_dir(other);
}
