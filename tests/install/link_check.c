/* Built by run_install.py against an installed libomsrpc, through pkg-config
 * (shared and static) and through find_package(omsrpc) (omsrpc::omsrpc_static):
 * one call into each layer, no traffic. Prints "omsrpc ok: N services" and
 * exits 0, or names the step that failed and exits 1. */
#include <stdio.h>

#include "base/log.h"
#include "http2/http2.h"
#include "rpc/health.h"
#include "rpc/reflection.h"
#include "rpc/rpc.h"
#include "rpc/rpc_client.h"

static int fail(const char *what)
{
    fprintf(stderr, "link_check: %s failed\n", what);
    return 1;
}

int main(void)
{
    static const uint8_t empty_set[1]; /* a FileDescriptorSet with no files */
    char err[256];
    uv_loop_t loop;
    oms_log_set_level(OMS_LOG_WARN);
    if (uv_loop_init(&loop) != 0)
        return fail("uv_loop_init");

    rpc_server_config rcfg;
    rpc_server_config_init(&rcfg);
    rpc_server *srv = rpc_server_new(&rcfg);
    rpc_health *health = rpc_health_new();
    rpc_reflection *refl = rpc_reflection_new(empty_set, 0);
    if (!srv || !health || !refl)
        return fail("rpc_server_new/rpc_health_new/rpc_reflection_new");
    if (rpc_server_add_service(srv, rpc_health_impl(health)) != 0 ||
        rpc_reflection_register(srv, refl) != 0)
        return fail("registering health and reflection");

    http2_server_config hcfg;
    http2_server_config_init(&hcfg);
    hcfg.port = 0;
    hcfg.tls = 0;
    hcfg.handler = rpc_server_stream_handler();
    hcfg.handler_data = srv;
    http2_server *h2;
    if (http2_server_new(&loop, &hcfg, &h2, err, sizeof err) != 0)
        return fail(err);
    if (http2_server_port(h2) <= 0)
        return fail("http2_server_port");

    rpc_channel_config ccfg;
    rpc_channel_config_init(&ccfg);
    ccfg.target = "127.0.0.1:1";
    ccfg.tls = false;
    rpc_channel *ch = rpc_channel_new(&loop, &ccfg, err, sizeof err);
    if (!ch)
        return fail(err);

    printf("omsrpc ok: %zu services\n", rpc_server_service_count(srv));
    rpc_channel_free(ch, NULL, NULL);
    http2_server_free(h2);
    uv_run(&loop, UV_RUN_DEFAULT);
    rpc_server_free(srv);
    rpc_reflection_free(refl);
    rpc_health_free(health);
    return uv_loop_close(&loop) == 0 ? 0 : fail("uv_loop_close");
}
