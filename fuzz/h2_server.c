/* h2_server.c - fuzz target: the h2c server connection (http2 + rpc layers)
 * fed arbitrary bytes after the client preface.
 *
 * Input: the bytes a client sends after "PRI * HTTP/2.0...", cut into reads
 * of at most FZ_READ bytes with a loop turn between them (so responses,
 * window updates and deferred work interleave with the input).
 */
#include "fuzz_server.h"

#define FZ_READ 1024

static fz_server *srv;

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    srv = fz_server_new(NULL, NULL);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fz_conn f;
    if (fz_open(&f, &srv->srv->ep, NULL, NULL) != 0)
        abort();
    if (getenv("FUZZ_KEEP"))
        f.keep = 1;
    fz_feed(&f, fz_preface, FZ_PREFACE_LEN);
    for (size_t off = 0; off < size && fz_alive(&f);) {
        size_t n = size - off < FZ_READ ? size - off : FZ_READ;
        fz_feed(&f, data + off, n);
        off += n;
    }
    if (f.keep)
        fprintf(stderr, "fuzz: the server wrote %zu bytes, alive %d\n", f.outlen, fz_alive(&f));
    fz_close(&f);
    fz_server_check(srv, &f);
    return 0;
}
