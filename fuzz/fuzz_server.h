/* fuzz_server.h - the server the connection targets talk to: an http2 server
 * (h2c or TLS) whose streams go to a real rpc_server with the services omsd
 * serves without a store (grpc.health.v1, both reflection versions and the
 * interop TestService), so that fuzz input reaches past HTTP/2 into gRPC
 * framing, metadata, deadlines, compression and the handlers.
 *
 * The server is made once per process (LLVMFuzzerInitialize); each input then
 * gets a fresh connection (fuzz_conn.h). After the connection is gone every
 * call it started must be freed too: a call left behind is reported as a bug.
 */
#ifndef OMS_FUZZ_SERVER_H
#define OMS_FUZZ_SERVER_H

#include "fuzz_conn.h"

#include "services/services.h"
#include "base/log.h"
#include "rpc/health.h"
#include "rpc/reflection.h"
#include "rpc/rpc.h"

extern const unsigned char oms_descriptor_set[];
extern const size_t oms_descriptor_set_len;

typedef struct fz_server {
    uv_loop_t loop;
    rpc_server *rpc;
    rpc_health *health;
    rpc_reflection *refl;
    interop_service *interop;
    http2_server *srv;
} fz_server;

/* Makes the server; tls: cert and key files (NULL: h2c). Aborts on failure. */
FZ_API fz_server *fz_server_new(const char *cert, const char *key)
{
    static fz_server s;
    oms_log_set_level(getenv("FUZZ_LOG") ? OMS_LOG_DEBUG : OMS_LOG_OFF);
    if (uv_loop_init(&s.loop) != 0)
        abort();
    rpc_server_config rcfg;
    rpc_server_config_init(&rcfg);
    rcfg.max_recv_msg = 64 << 10; /* small, so that the limit is reachable */
    s.rpc = rpc_server_new(&rcfg);
    s.health = rpc_health_new();
    s.refl = rpc_reflection_new(oms_descriptor_set, oms_descriptor_set_len);
    s.interop = interop_service_new();
    if (!s.rpc || !s.health || !s.refl || !s.interop)
        abort();
    if (rpc_server_add_service(s.rpc, rpc_health_impl(s.health)) != 0 ||
        rpc_reflection_register(s.rpc, s.refl) != 0 ||
        rpc_server_add_service(s.rpc, interop_test_service(s.interop)) != 0)
        abort();
    http2_server_config cfg;
    http2_server_config_init(&cfg);
    cfg.host = "127.0.0.1";
    cfg.port = 0; /* bound, never listened on: connections come from fz_open() */
    cfg.tls = cert != NULL;
    cfg.cert_file = cert;
    cfg.key_file = key;
    cfg.max_concurrent_streams = 100;
    cfg.stream_window = 65535;
    cfg.conn_window = 1 << 20;
    cfg.max_header_list = 16 << 10;
    cfg.stream_send_buffer = 64 << 10;
    cfg.handshake_timeout_ms = 0;
    cfg.handler = rpc_server_stream_handler();
    cfg.handler_data = s.rpc;
    char err[256] = "";
    if (http2_server_new(&s.loop, &cfg, &s.srv, err, sizeof err) != 0) {
        fprintf(stderr, "fuzz: http2_server_new: %s\n", err);
        abort();
    }
    return &s;
}

/* After fz_close(): every call of the connection must be gone. */
FZ_API void fz_server_check(fz_server *s, fz_conn *f)
{
    for (int i = 0; i < 20 && rpc_server_active_calls(s->rpc) > 0; i++)
        fz_step(f);
    if (rpc_server_active_calls(s->rpc) > 0) {
        fprintf(stderr, "fuzz: %zu calls outlived their connection\n",
                rpc_server_active_calls(s->rpc));
        abort();
    }
}

#endif
