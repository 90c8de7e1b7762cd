/* Shared scaffolding of the tests/orders binaries: an orders object on a
 * temporary SQLite store served by rpc_server + http2_server (h2c,
 * 127.0.0.1:0), and the client side that calls it.
 *
 * Two shapes, one per test file:
 *  - default: "nodes", each serving on a loop of its own thread, called from
 *    the test thread's client loop cloop (test_services.c, test_sweep.c);
 *  - with ORDERS_HARNESS_FIXTURE defined before the include: one node and
 *    one channel on the test thread's single loop, set up and torn down per
 *    test by fixture_setup/teardown (test_order_flow.c, test_watch.c).
 *
 * Every helper is static inline: each test file is its own binary and uses
 * only some of them. */
#ifndef OMS_TESTS_ORDERS_HARNESS_H
#define OMS_TESTS_ORDERS_HARNESS_H

#include <criterion/criterion.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "orders/orders_int.h"

static inline void on_flag(void *arg)
{
    *(bool *)arg = true;
}

#ifndef ORDERS_HARNESS_FIXTURE

/* --- nodes ------------------------------------------------------------------------ */

typedef struct node {
    char dir[64]; /* the store's directory (removed by node_free) */
    orders *o;
    uv_loop_t loop;
    rpc_server *rpc;
    http2_server *h2;
    int port;
    uv_async_t stop;
    uv_thread_t thread;
    bool running;
} node;

static inline void node_thread(void *arg)
{
    node *n = arg;
    uv_run(&n->loop, UV_RUN_DEFAULT);
}

static inline void on_node_down(http2_server *h2, void *arg)
{
    (void)h2;
    node *n = arg;
    orders_loop_detach(n->o, &n->loop);
    uv_close((uv_handle_t *)&n->stop, NULL);
}

static inline void on_node_stop(uv_async_t *a)
{
    node *n = a->data;
    orders_loop_drain(n->o, &n->loop);
    http2_server_shutdown(n->h2, 0, on_node_down, n);
}

/* Zeroes n and makes its store directory from the mkdtemp template. */
static inline void node_mkdir(node *n, const char *dir_template)
{
    memset(n, 0, sizeof *n);
    snprintf(n->dir, sizeof n->dir, "%s", dir_template);
    cr_assert_not_null(mkdtemp(n->dir));
}

static inline void node_config(orders_config *cfg, node *n, char *url, size_t len)
{
    orders_config_init(cfg);
    snprintf(url, len, "sqlite:%s/oms.db", n->dir);
    cfg->store_url = url;
    cfg->demo_data = false;
    cfg->peer_tls = false;
}

/* Serves cfg (its store_url is n's, from node_config) on 127.0.0.1:port. */
static inline void node_serve(node *n, const orders_config *cfg, int port)
{
    char err[256];
    n->o = orders_open(cfg, err, sizeof err);
    cr_assert_not_null(n->o, "orders_open: %s", err);
    cr_assert_eq(uv_loop_init(&n->loop), 0);
    rpc_server_config rcfg;
    rpc_server_config_init(&rcfg);
    n->rpc = rpc_server_new(&rcfg);
    cr_assert_not_null(n->rpc);
    cr_assert_eq(orders_register(n->o, n->rpc), 0);

    http2_server_config hcfg;
    http2_server_config_init(&hcfg);
    hcfg.host = "127.0.0.1";
    hcfg.port = port;
    hcfg.tls = 0;
    hcfg.handler = rpc_server_stream_handler();
    hcfg.handler_data = n->rpc;
    cr_assert_eq(http2_server_new(&n->loop, &hcfg, &n->h2, err, sizeof err), 0, "%s", err);
    cr_assert_eq(http2_server_start(n->h2), 0);
    n->port = http2_server_port(n->h2);
    cr_assert_eq(orders_loop_attach(n->o, &n->loop, err, sizeof err), 0, "%s", err);
    cr_assert_eq(uv_async_init(&n->loop, &n->stop, on_node_stop), 0);
    n->stop.data = n;
    cr_assert_eq(uv_thread_create(&n->thread, node_thread, n), 0);
    n->running = true;
}

/* Stops serving and closes the orders object; the store files stay. With
 * idle_check, asserts that the server has no call left. */
static inline void node_stop_ex(node *n, bool idle_check)
{
    if (!n->running)
        return;
    uv_async_send(&n->stop);
    uv_thread_join(&n->thread);
    http2_server_free(n->h2);
    if (idle_check)
        cr_assert_eq(rpc_server_active_calls(n->rpc), 0);
    rpc_server_free(n->rpc);
    cr_assert_eq(uv_loop_close(&n->loop), 0, "every handle of the node closed");
    orders_close(n->o);
    n->o = NULL;
    n->running = false;
}

static inline void node_stop(node *n)
{
    node_stop_ex(n, true);
}

/* node_stop_ex, then removes the store's directory. */
static inline void node_free_ex(node *n, bool idle_check)
{
    char cmd[128];
    node_stop_ex(n, idle_check);
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", n->dir);
    cr_assert_eq(system(cmd), 0);
}

static inline void node_free(node *n)
{
    node_free_ex(n, true);
}

/* --- the client side ----------------------------------------------------------------- */

static uv_loop_t cloop;

static inline void client_init(void)
{
    cr_assert_eq(uv_loop_init(&cloop), 0);
}

static inline rpc_channel *channel_to(int port)
{
    char target[64], err[256];
    snprintf(target, sizeof target, "127.0.0.1:%d", port);
    rpc_channel_config cfg;
    rpc_channel_config_init(&cfg);
    cfg.target = target;
    cfg.tls = false;
    rpc_channel *ch = rpc_channel_new(&cloop, &cfg, err, sizeof err);
    cr_assert_not_null(ch, "%s", err);
    return ch;
}

static inline void run_until(const bool *flag)
{
    while (!*flag)
        uv_run(&cloop, UV_RUN_ONCE);
}

static inline void channel_free(rpc_channel *ch)
{
    bool freed = false;
    rpc_channel_free(ch, on_flag, &freed);
    run_until(&freed);
}

static inline void client_fini(void)
{
    uv_run(&cloop, UV_RUN_DEFAULT);
    cr_assert_eq(uv_loop_close(&cloop), 0, "every client handle closed");
}

/* An orders object hosting only the order service on a store in dir,
 * calling target for the other two, attached to the client loop (its order
 * service unserved). */
static inline orders *orders_split_open(const char *dir, const char *target)
{
    char url[128], err[256];
    orders_config cfg;
    orders_config_init(&cfg);
    snprintf(url, sizeof url, "sqlite:%s/orders.db", dir);
    cfg.store_url = url;
    cfg.services = ORDERS_SVC_ORDERS;
    cfg.inventory_target = target;
    cfg.customers_target = target;
    cfg.peer_tls = false;
    cfg.peer_timeout_ms = 2000;
    orders *o = orders_open(&cfg, err, sizeof err);
    cr_assert_not_null(o, "%s", err);
    cr_assert_eq(orders_loop_attach(o, &cloop, err, sizeof err), 0, "%s", err);
    return o;
}

/* Runs the client loop for about ms milliseconds. */
static inline void spin_ms(int ms)
{
    for (int k = 0; k < ms / 10; k++) {
        uv_run(&cloop, UV_RUN_NOWAIT);
        usleep(10000);
    }
}

#else /* ORDERS_HARNESS_FIXTURE */

/* --- one node and its channel on the test thread's loop ---------------------------- */

static uv_loop_t loop;
static uv_timer_t watchdog;
static char dir[64];
static orders *oms;
static orders_loop *ol;
static rpc_server *rsrv;
static http2_server *h2;
static rpc_channel *chan;

static inline void on_watchdog(uv_timer_t *t)
{
    (void)t;
    cr_assert_fail("the test did not finish in time");
}

static inline void run_until(const bool *flag)
{
    while (!*flag)
        uv_run(&loop, UV_RUN_ONCE); /* the watchdog keeps the loop alive */
}

static inline void on_sleep_over(uv_timer_t *t)
{
    *(bool *)t->data = true;
    uv_close((uv_handle_t *)t, NULL);
}

static inline void run_for(uint64_t ms)
{
    static uv_timer_t t;
    bool over = false;
    uv_timer_init(&loop, &t);
    t.data = &over;
    uv_timer_start(&t, on_sleep_over, ms, 0);
    run_until(&over);
    uv_run(&loop, UV_RUN_NOWAIT);
}

/* Opens the orders object on a fresh store (dir from the mkdtemp template;
 * event_ring 0 keeps the default), attaches it to loop, serves it with
 * streams of stream_send_buffer bytes, connects chan and arms the watchdog.
 * With check_hub, asserts the loop has its event hub. */
static inline void fixture_setup(const char *dir_template, size_t event_ring, bool check_hub,
                                 size_t stream_send_buffer)
{
    char err[256];
    snprintf(dir, sizeof dir, "%s", dir_template);
    cr_assert_not_null(mkdtemp(dir));
    cr_assert_eq(uv_loop_init(&loop), 0);

    char url[128];
    snprintf(url, sizeof url, "sqlite:%s/oms.db", dir);
    orders_config cfg;
    orders_config_init(&cfg);
    cfg.store_url = url;
    cfg.demo_data = false;
    if (event_ring)
        cfg.event_ring = event_ring;
    oms = orders_open(&cfg, err, sizeof err);
    cr_assert_not_null(oms, "%s", err);

    rpc_server_config rcfg;
    rpc_server_config_init(&rcfg);
    rsrv = rpc_server_new(&rcfg);
    cr_assert_not_null(rsrv);
    cr_assert_eq(orders_register(oms, rsrv), 0);
    cr_assert_eq(orders_loop_attach(oms, &loop, err, sizeof err), 0, "%s", err);
    ol = orders__loop(oms, &loop);
    cr_assert_not_null(ol);
    if (check_hub)
        cr_assert_not_null(ol->hl);

    http2_server_config hcfg;
    http2_server_config_init(&hcfg);
    hcfg.host = "127.0.0.1";
    hcfg.port = 0;
    hcfg.tls = 0;
    hcfg.stream_send_buffer = stream_send_buffer;
    hcfg.handler = rpc_server_stream_handler();
    hcfg.handler_data = rsrv;
    cr_assert_eq(http2_server_new(&loop, &hcfg, &h2, err, sizeof err), 0, "%s", err);
    cr_assert_eq(http2_server_start(h2), 0);

    char target[64];
    snprintf(target, sizeof target, "127.0.0.1:%d", http2_server_port(h2));
    rpc_channel_config ccfg;
    rpc_channel_config_init(&ccfg);
    ccfg.target = target;
    ccfg.tls = false;
    ccfg.retry.max_attempts = 1;
    chan = rpc_channel_new(&loop, &ccfg, err, sizeof err);
    cr_assert_not_null(chan, "%s", err);

    uv_timer_init(&loop, &watchdog);
    uv_timer_start(&watchdog, on_watchdog, 30000, 0);
}

static inline void on_h2_down(http2_server *s, void *arg)
{
    (void)s;
    *(bool *)arg = true;
}

static inline void teardown(void)
{
    bool freed = false, down = false;
    rpc_channel_free(chan, on_flag, &freed);
    run_until(&freed);
    http2_server_shutdown(h2, 0, on_h2_down, &down);
    run_until(&down);
    orders_loop_detach(oms, &loop);
    uv_timer_stop(&watchdog);
    uv_close((uv_handle_t *)&watchdog, NULL);
    uv_run(&loop, UV_RUN_DEFAULT);
    http2_server_free(h2);
    cr_expect_eq(rpc_server_active_calls(rsrv), 0);
    rpc_server_free(rsrv);
    orders_close(oms);
    cr_expect_eq(uv_loop_close(&loop), 0, "every handle closed");
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    cr_expect_eq(system(cmd), 0);
}

#endif /* ORDERS_HARNESS_FIXTURE */

#endif /* OMS_TESTS_ORDERS_HARNESS_H */
