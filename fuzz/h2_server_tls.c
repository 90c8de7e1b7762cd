/* h2_server_tls.c - fuzz target: the server connection through its TLS
 * record path (src/http2/tls.c: memory BIOs, ALPN h2) into http2 and rpc.
 *
 * Input byte 0, bit 0:
 *  0: a real TLS handshake is done in memory first with a fixed key and
 *     certificate (fuzz/tls/, test-only) and an OpenSSL client offering ALPN
 *     h2; the client then sends the HTTP/2 preface and the rest of the input
 *     as application data, encrypted into records of at most 1024 bytes of
 *     plaintext, one read each. So the fuzzer works on HTTP/2 and gRPC as in
 *     the h2c target, through decryption and our record handling.
 *  1: the rest of the input goes to the server as raw bytes from the first
 *     byte on (ClientHello parsing, alerts, garbage, h2c on a TLS port).
 * Each input is a fresh connection, so every mode-0 input pays a full
 * handshake (about 3 ms): this target runs ~100x slower than h2_server.
 */
#include <openssl/err.h>
#include <openssl/ssl.h>

#include "fuzz_server.h"

#define FZ_READ 1024

static fz_server *srv;
static SSL_CTX *client_ctx;

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    srv = fz_server_new(OMS_FUZZ_DIR "/tls/server.pem", OMS_FUZZ_DIR "/tls/server.key");
    client_ctx = SSL_CTX_new(TLS_client_method());
    if (!client_ctx)
        abort();
    SSL_CTX_set_verify(client_ctx, SSL_VERIFY_NONE, NULL);
    static const unsigned char alpn[] = {2, 'h', '2'};
    if (SSL_CTX_set_alpn_protos(client_ctx, alpn, sizeof alpn) != 0)
        abort();
    return 0;
}

/* Moves the client's ciphertext to the server, as one read. */
static void client_to_server(fz_conn *f, BIO *wbio)
{
    char *p;
    long n = BIO_get_mem_data(wbio, &p);
    if (n > 0)
        fz_feed(f, (const uint8_t *)p, (size_t)n);
    (void)BIO_reset(wbio);
}

static void server_to_client(fz_conn *f, BIO *rbio)
{
    if (f->outlen > 0 && BIO_write(rbio, f->out, (int)f->outlen) != (int)f->outlen)
        abort();
    f->outlen = 0;
}

static void run_tls(fz_conn *f, const uint8_t *data, size_t size)
{
    SSL *ssl = SSL_new(client_ctx);
    BIO *rbio = BIO_new(BIO_s_mem()), *wbio = BIO_new(BIO_s_mem());
    if (!ssl || !rbio || !wbio)
        abort();
    BIO_set_mem_eof_return(rbio, -1);
    SSL_set_bio(ssl, rbio, wbio);
    SSL_set_connect_state(ssl);
    SSL_set_tlsext_host_name(ssl, "localhost");
    f->keep = 1;
    int done = 0;
    for (int i = 0; i < 10 && fz_alive(f) && !done; i++) {
        done = SSL_do_handshake(ssl) == 1;
        client_to_server(f, wbio);
        server_to_client(f, rbio);
    }
    if (!done || !fz_alive(f)) {
        fprintf(stderr, "fuzz: the in-memory TLS handshake failed\n");
        abort();
    }
    f->keep = 0;
    f->outlen = 0;
    if (SSL_write(ssl, fz_preface, FZ_PREFACE_LEN) != FZ_PREFACE_LEN)
        abort();
    client_to_server(f, wbio);
    for (size_t off = 0; off < size && fz_alive(f);) {
        size_t n = size - off < FZ_READ ? size - off : FZ_READ;
        if (SSL_write(ssl, data + off, (int)n) != (int)n)
            abort();
        client_to_server(f, wbio);
        off += n;
    }
    SSL_free(ssl);
    ERR_clear_error();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    fz_conn f;
    if (fz_open(&f, &srv->srv->ep, NULL, NULL) != 0)
        abort();
    if (data[0] & 1) {
        for (size_t off = 1; off < size && fz_alive(&f);) {
            size_t n = size - off < FZ_READ ? size - off : FZ_READ;
            fz_feed(&f, data + off, n);
            off += n;
        }
    } else {
        run_tls(&f, data + 1, size - 1);
    }
    fz_close(&f);
    fz_server_check(srv, &f);
    ERR_clear_error();
    return 0;
}
