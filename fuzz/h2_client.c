/* h2_client.c - fuzz target: the http2 client connection fed arbitrary
 * server bytes.
 *
 * Each input gets a fresh h2c client connection (fuzz_conn.h) that has
 * opened two request streams, as the rpc client would: stream 1 sent its
 * whole body and half-closed, stream 3 is still sending. The input is what
 * the server sends (its SETTINGS first, if it is well-behaved), cut into
 * reads of at most 1024 bytes with a loop turn between them. Besides the
 * sanitizers, the stream contract is checked: each stream's on_close fires
 * exactly once, and nothing fires after it.
 */
#include "fuzz_conn.h"

#include "base/log.h"

#define FZ_READ 1024

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static uv_loop_t loop;
static http2_client *cl;

typedef struct rec {
    http2_stream *s;
    int closed;
    int after_close;
} rec;

static rec recs[2];

static void on_open(http2_stream *s, const http2_header *h, size_t n)
{
    rec *r = http2_stream_data(s);
    r->after_close += r->closed;
    for (size_t i = 0; i < n; i++) /* touch every byte, as a handler would */
        if (h[i].namelen && h[i].name[h[i].namelen - 1] == 0x7f && h[i].valuelen &&
            h[i].value[h[i].valuelen - 1] == 0x7f)
            r->after_close += 0;
}

static void on_trailers(http2_stream *s, const http2_header *h, size_t n)
{
    on_open(s, h, n);
}

static void on_data(http2_stream *s, const uint8_t *p, size_t n)
{
    rec *r = http2_stream_data(s);
    r->after_close += r->closed;
    if (n && p[n - 1] == 0x7f)
        r->after_close += 0;
    http2_stream_consume(s, n);
}

static void on_end(http2_stream *s)
{
    rec *r = http2_stream_data(s);
    r->after_close += r->closed;
}

static void on_writable(http2_stream *s)
{
    rec *r = http2_stream_data(s);
    r->after_close += r->closed;
}

static void on_close(http2_stream *s, uint32_t code)
{
    (void)code;
    rec *r = http2_stream_data(s);
    r->closed++;
    r->s = NULL;
}

static const http2_stream_handler handler = {
    .on_open = on_open,
    .on_trailers = on_trailers,
    .on_data = on_data,
    .on_end = on_end,
    .on_writable = on_writable,
    .on_close = on_close,
};

static void on_conn_close(http2_conn *c, const char *reason)
{
    (void)c;
    (void)reason;
}

static const http2_conn_handler conn_handler = {.on_close = on_conn_close};

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    oms_log_set_level(getenv("FUZZ_LOG") ? OMS_LOG_DEBUG : OMS_LOG_OFF);
    if (uv_loop_init(&loop) != 0)
        abort();
    http2_client_config cfg;
    http2_client_config_init(&cfg);
    cfg.tls = 0;
    cfg.stream_window = 65535;
    cfg.conn_window = 1 << 20;
    cfg.max_header_list = 16 << 10;
    cfg.stream_send_buffer = 64 << 10;
    char err[256];
    if (http2_client_new(&loop, &cfg, &cl, err, sizeof err) != 0)
        abort();
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fz_conn f;
    if (fz_open(&f, &cl->ep, &conn_handler, NULL) != 0)
        abort();
    memset(recs, 0, sizeof recs);
    static const http2_header req[] = {
        {":method", 7, "POST", 4},
        {":scheme", 7, "http", 4},
        {":path", 5, "/grpc.testing.TestService/FullDuplexCall", 40},
        {":authority", 10, "fuzz", 4},
        {"content-type", 12, "application/grpc", 16},
        {"te", 2, "trailers", 8},
    };
    static const uint8_t body[] = {0, 0, 0, 0, 2, 0x08, 0x01};
    for (int i = 0; i < 2; i++) {
        recs[i].s = http2_conn_request(f.c, req, 6, &handler, &recs[i]);
        if (!recs[i].s)
            abort();
        http2_stream_write(recs[i].s, body, sizeof body);
    }
    http2_stream_end(recs[0].s, NULL, 0);
    fz_step(&f);
    for (size_t off = 0; off < size && fz_alive(&f);) {
        size_t n = size - off < FZ_READ ? size - off : FZ_READ;
        fz_feed(&f, data + off, n);
        off += n;
    }
    fz_close(&f);
    for (int i = 0; i < 2; i++) {
        if (recs[i].closed != 1 || recs[i].after_close) {
            fprintf(stderr, "fuzz: stream %d: on_close %d times, %d callbacks after it\n", i,
                    recs[i].closed, recs[i].after_close);
            abort();
        }
    }
    return 0;
}
