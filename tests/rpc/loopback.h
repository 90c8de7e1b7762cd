/* loopback.h - a test's rpc server and client channel on one loop over
 * 127.0.0.1 (h2c), for tests that serve one grpc.testing.TestService method
 * of their own: lb_setup(&lb, "StreamingOutputCall", &ops), drive the loop
 * with lb_run_until(&lb, &flag), lb_teardown(&lb) checks that every call
 * ended and the loop closes. A 20 s watchdog fails a test that hangs.
 * Header-only (static functions): each test binary is one file. */
#ifndef OMS_TESTS_RPC_LOOPBACK_H
#define OMS_TESTS_RPC_LOOPBACK_H

#include <criterion/criterion.h>
#include <stdio.h>

#include "grpc/testing/test.pb-c.h"
#include "rpc/rpc_client.h"

typedef struct loopback {
    uv_loop_t loop;
    uv_timer_t watchdog;
    rpc_server *rsrv;
    http2_server *h2;
    rpc_channel *chan; /* NULL once a test freed it itself */
} loopback;

static void lb_on_watchdog(uv_timer_t *t)
{
    (void)t;
    cr_assert_fail("the test did not finish in time");
}

static void lb_run_until(loopback *lb, const bool *flag)
{
    while (!*flag)
        uv_run(&lb->loop, UV_RUN_ONCE);
}

/* Serves grpc.testing.TestService's method with ops, and connects. */
static void lb_setup(loopback *lb, const char *method, const rpc_method_ops *method_ops)
{
    char err[256];
    cr_assert_eq(uv_loop_init(&lb->loop), 0);
    rpc_server_config rcfg;
    rpc_server_config_init(&rcfg);
    lb->rsrv = rpc_server_new(&rcfg);
    cr_assert_not_null(lb->rsrv);
    const ProtobufCServiceDescriptor *d = &grpc__testing__test_service__descriptor;
    const rpc_method_ops *ops[16] = {0};
    cr_assert(d->n_methods <= 16);
    const ProtobufCMethodDescriptor *md =
        protobuf_c_service_descriptor_get_method_by_name(d, method);
    cr_assert_not_null(md, "no method %s", method);
    ops[md - d->methods] = method_ops;
    rpc_service_impl impl = {.desc = d, .ops = ops};
    cr_assert_eq(rpc_server_add_service(lb->rsrv, &impl), 0);

    http2_server_config hcfg;
    http2_server_config_init(&hcfg);
    hcfg.host = "127.0.0.1";
    hcfg.port = 0;
    hcfg.tls = 0;
    hcfg.handler = rpc_server_stream_handler();
    hcfg.handler_data = lb->rsrv;
    cr_assert_eq(http2_server_new(&lb->loop, &hcfg, &lb->h2, err, sizeof err), 0, "%s", err);
    cr_assert_eq(http2_server_start(lb->h2), 0);

    char target[64];
    snprintf(target, sizeof target, "127.0.0.1:%d", http2_server_port(lb->h2));
    rpc_channel_config ccfg;
    rpc_channel_config_init(&ccfg);
    ccfg.target = target;
    ccfg.tls = false;
    lb->chan = rpc_channel_new(&lb->loop, &ccfg, err, sizeof err);
    cr_assert_not_null(lb->chan, "%s", err);
    uv_timer_init(&lb->loop, &lb->watchdog);
    uv_timer_start(&lb->watchdog, lb_on_watchdog, 20000, 0);
}

static void lb_on_flag(void *arg)
{
    *(bool *)arg = true;
}

static void lb_on_down(http2_server *s, void *arg)
{
    (void)s;
    *(bool *)arg = true;
}

static void lb_teardown(loopback *lb)
{
    bool freed = false, down = false;
    if (lb->chan) {
        rpc_channel_free(lb->chan, lb_on_flag, &freed);
        lb_run_until(lb, &freed);
    }
    http2_server_shutdown(lb->h2, 0, lb_on_down, &down);
    lb_run_until(lb, &down);
    uv_timer_stop(&lb->watchdog);
    uv_close((uv_handle_t *)&lb->watchdog, NULL);
    uv_run(&lb->loop, UV_RUN_DEFAULT);
    http2_server_free(lb->h2);
    cr_expect_eq(rpc_server_active_calls(lb->rsrv), 0);
    rpc_server_free(lb->rsrv);
    cr_expect_eq(uv_loop_close(&lb->loop), 0);
}

#endif
