/* reflection.c - fuzz target: the server reflection handler
 * (src/rpc/reflection.c) behind a real call.
 *
 * Input: byte 0 picks grpc.reflection.v1 or v1alpha (bit 0) and whether the
 * client half-closes (bit 1); the rest is the request body as the client's
 * DATA frames carry it: length-prefixed ServerReflectionRequest messages.
 * The frames around it (preface, SETTINGS, HEADERS, DATA) are built here, so
 * every input reaches the handler through the rpc server's deframing and
 * decoding, over an in-memory h2c connection (fuzz_conn.h).
 */
#include "fuzz_server.h"

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

typedef struct out {
    uint8_t *p;
    size_t len, cap;
} out;

static void put(out *o, const void *p, size_t n)
{
    if (n == 0)
        return;
    if (o->len + n > o->cap) {
        size_t cap = o->cap ? o->cap : 1024;
        while (cap < o->len + n)
            cap *= 2;
        o->p = realloc(o->p, cap);
        if (!o->p)
            abort();
        o->cap = cap;
    }
    memcpy(o->p + o->len, p, n);
    o->len += n;
}

static void frame(out *o, uint8_t type, uint8_t flags, uint32_t id, const void *p, size_t n)
{
    uint8_t h[9] = {(uint8_t)(n >> 16),  (uint8_t)(n >> 8),   (uint8_t)n,         type,       flags,
                    (uint8_t)(id >> 24), (uint8_t)(id >> 16), (uint8_t)(id >> 8), (uint8_t)id};
    put(o, h, sizeof h);
    put(o, p, n);
}

/* An HPACK "literal header field without indexing, new name" (names and
 * values here are shorter than 127 bytes). */
static void hpack(out *o, const char *name, const char *value)
{
    uint8_t b = 0;
    put(o, &b, 1);
    b = (uint8_t)strlen(name);
    put(o, &b, 1);
    put(o, name, strlen(name));
    b = (uint8_t)strlen(value);
    put(o, &b, 1);
    put(o, value, strlen(value));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1 || size > 60000)
        return 0;
    int alpha = data[0] & 1, half_close = !(data[0] & 2);
    out hb = {0}, o = {0};
    hpack(&hb, ":method", "POST");
    hpack(&hb, ":scheme", "http");
    hpack(&hb, ":path",
          alpha ? "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo"
                : "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo");
    hpack(&hb, ":authority", "fuzz");
    hpack(&hb, "content-type", "application/grpc");
    hpack(&hb, "te", "trailers");
    frame(&o, 0x4, 0, 0, NULL, 0); /* SETTINGS */
    frame(&o, 0x1, 0x4, 1, hb.p, hb.len);
    const uint8_t *p = data + 1;
    size_t left = size - 1;
    do {
        size_t n = left < 16384 ? left : 16384;
        frame(&o, 0x0, (n == left && half_close) ? 0x1 : 0, 1, p, n);
        p += n;
        left -= n;
    } while (left > 0);

    fz_conn f;
    if (fz_open(&f, &srv->srv->ep, NULL, NULL) != 0)
        abort();
    fz_feed(&f, fz_preface, FZ_PREFACE_LEN);
    fz_feed(&f, o.p, o.len);
    /* Let the answers go out (a stream of them may wait for on_ready). */
    for (int i = 0; i < 5 && fz_alive(&f); i++)
        fz_step(&f);
    fz_close(&f);
    fz_server_check(srv, &f);
    free(hb.p);
    free(o.p);
    return 0;
}
