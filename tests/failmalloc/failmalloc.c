/* failmalloc - the whole server stack under a failing allocator.
 *
 * One process runs what omsd runs (http2 over TLS and h2c, rpc, the orders
 * services, health, the SQLite store in a temporary directory) on a server
 * thread, and a client on the main thread (the project's own rpc_channel),
 * exempt from fault injection (oms_alloc_exempt_thread()). Each scenario is
 * first run with counting on to learn K, the server-side allocations it
 * makes; then for n = 1..K (with a stride when K is above the run budget)
 * the nth allocation is made to fail, the scenario runs with every call
 * under a deadline, and the test checks that:
 *  - nothing crashed, aborted or hung: every call ended (a lost answer would
 *    end in DEADLINE_EXCEEDED, which fails the test), and the server went
 *    back to no connection and no call;
 *  - the failure fired (oms_alloc_failed());
 *  - the same server then runs the scenario again, disarmed, successfully.
 * At the end the server is shut down cleanly, so that LeakSanitizer (the
 * sanitizer build) reports whatever a failure path leaked.
 *
 * The idea is nghttp2's tests/failmalloc_test.c, over whole scenarios
 * (connect, unary, each stream type, WatchOrders catch-up, CreateOrder with
 * its commit, drain, HTTP/1.1 requests) instead of library calls. SQLite's allocations are
 * routed too (src/store/sqlite.c, SQLITE_CONFIG_MALLOC); not routed: OpenSSL
 * and libuv's own allocations. A store write that fails for want of memory
 * is answered INTERNAL (STORE_ERROR) today: accepted here, though
 * UNAVAILABLE or RESOURCE_EXHAUSTED would say more.
 *
 * One exception, on purpose: nghttp2's realloc() calls (growth of its
 * priority queues and buffers) are not failed (src/http2/mem.c,
 * mem_realloc). nghttp2 1.52 double-frees a DATA item when growing the
 * server's ob_data queue fails under SETTINGS_NO_RFC7540_PRIORITIES
 * (session_attach_stream_item leaves the freed item attached to the stream;
 * nghttp2_session_del frees it again), which no caller can repair.
 *
 * Usage: failmalloc CERTS_SH [SCENARIO...]
 * Environment: OMS_FAILMALLOC_MAX_RUNS (default 1500: failing runs per
 * scenario, a stride is used above it), OMS_FAILMALLOC_TIMEOUT_MS (default
 * 15000: each call's deadline, well above the store's 5 s SQLite busy
 * timeout, so that only a lost answer reaches it; runs slower than 3 s are
 * counted as "slow").
 */
#include <arpa/inet.h>
#include <execinfo.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

#include "base/alloc.h"
#include "base/log.h"
#include "grpc/health/v1/health.pb-c.h"
#include "http2/http2.h"
#include "oms/v1/customer.omsrpc.h"
#include "oms/v1/inventory.omsrpc.h"
#include "oms/v1/order.omsrpc.h"
#include "orders/orders.h"
#include "rpc/health.h"
#include "rpc/rpc.h"
#include "rpc/rpc_client.h"

/* The run in progress, for messages. */
static const char *cur_scenario = "setup";
static uint64_t cur_n;
static void print_fail_site(void);

#define DIE(...)                                                                                   \
    do {                                                                                           \
        fprintf(stderr, "failmalloc: %s n=%llu: ", cur_scenario, (unsigned long long)cur_n);       \
        fprintf(stderr, __VA_ARGS__);                                                              \
        fprintf(stderr, "\n");                                                                     \
        print_fail_site();                                                                         \
        exit(1);                                                                                   \
    } while (0)

/* The call stack of the allocation that failed last (set on the failing
 * thread, read once the run is over), printed with a problem. */
static void *fail_stack[24];
static atomic_int fail_depth;

static void on_alloc_failed(void)
{
    atomic_store(&fail_depth, backtrace(fail_stack, 24));
}

static void print_fail_site(void)
{
    int n = atomic_load(&fail_depth);
    if (n <= 0)
        return;
    fprintf(stderr, "  the allocation that failed (addr2line -f -e failmalloc_test for the "
                    "static functions):\n");
    backtrace_symbols_fd(fail_stack + 1, n - 1, 2);
}

/* --- the server -------------------------------------------------------------------- */

/* A loop on its own thread serving the orders services: the main server
 * (TLS and h2c listeners, health) for the whole test, or a worker made for
 * one drain scenario (h2c only). */
typedef struct server {
    uv_loop_t loop;
    uv_thread_t thread;
    rpc_server *rpc;
    rpc_health *health;
    http2_server *h2[2]; /* h2c, TLS (main server only) */
    int nh2, ndown;
    int port[2];
    uv_async_t stop, probe, dump;
    uv_timer_t calls_wait; /* after the drain: calls still waiting for the store */
    uint64_t grace_ms;
    atomic_bool down; /* every listener shut down and the loop detached */
} server;

static struct {
    char dir[64], certdir[64];
    char ca[128], cert[128], key[128];
    orders *o;
    server main;
    uv_loop_t cl; /* the client's loop (main thread) */
    uv_async_t answer;
    uv_timer_t tick;
    atomic_size_t busy; /* the last probe's connections + calls */
    atomic_bool answered;
    uint64_t timeout_ms;
    char cust[32], cust_w[32], order0[32];
    int64_t watch_since;
} T;

/* The loop's calls are over: its orders side may go. */
static void server_detach(server *s)
{
    orders_loop_detach(T.o, &s->loop);
    uv_close((uv_handle_t *)&s->stop, NULL);
    uv_close((uv_handle_t *)&s->probe, NULL);
    uv_close((uv_handle_t *)&s->dump, NULL);
    atomic_store(&s->down, true);
    uv_async_send(&T.answer);
}

static void on_calls_check(uv_timer_t *t)
{
    server *s = t->data;
    if (rpc_server_active_calls(s->rpc) > 0)
        return;
    uv_close((uv_handle_t *)t, NULL);
    server_detach(s);
}

/* Every connection is gone; as omsd does, wait for calls that outlive their
 * stream (a store write in flight) before detaching the loop. */
static void on_server_down(http2_server *h2, void *arg)
{
    (void)h2;
    server *s = arg;
    if (++s->ndown < s->nh2)
        return;
    if (rpc_server_active_calls(s->rpc) == 0) {
        server_detach(s);
        return;
    }
    uv_timer_init(&s->loop, &s->calls_wait);
    s->calls_wait.data = s;
    uv_timer_start(&s->calls_wait, on_calls_check, 5, 5);
}

/* As omsd's on_worker_stop: health NOT_SERVING, order-event subscribers
 * ended, GOAWAY and a grace for the other calls. */
static void on_server_stop(uv_async_t *a)
{
    server *s = a->data;
    if (s->health)
        rpc_health_shutdown(s->health);
    orders_loop_drain(T.o, &s->loop);
    for (int i = 0; i < s->nh2; i++)
        http2_server_shutdown(s->h2[i], s->grace_ms, on_server_down, s);
}

static void on_server_probe(uv_async_t *a)
{
    server *s = a->data;
    size_t n = rpc_server_active_calls(s->rpc);
    for (int i = 0; i < s->nh2; i++)
        n += http2_server_conn_count(s->h2[i]);
    atomic_store(&T.busy, n);
    atomic_store(&T.answered, true);
    uv_async_send(&T.answer);
}

/* The state of the loop's streams and order-event subscribers, logged (as
 * omsd's SIGUSR1 does) when a stream seems stuck. */
static void on_server_dump(uv_async_t *a)
{
    server *s = a->data;
    for (int i = 0; i < s->nh2; i++)
        http2_server_dump(s->h2[i]);
    orders_loop_dump(T.o, &s->loop);
}

static void server_thread(void *arg)
{
    server *s = arg;
    uv_run(&s->loop, UV_RUN_DEFAULT);
}

static void listener(server *s, bool tls)
{
    http2_server_config hcfg;
    http2_server_config_init(&hcfg);
    hcfg.host = "127.0.0.1";
    hcfg.port = 0;
    hcfg.tls = tls;
    hcfg.cert_file = T.cert;
    hcfg.key_file = T.key;
    hcfg.handler = rpc_server_stream_handler();
    hcfg.handler_data = s->rpc;
    char err[256];
    int i = s->nh2++;
    if (http2_server_new(&s->loop, &hcfg, &s->h2[i], err, sizeof err) != 0)
        DIE("http2_server_new: %s", err);
    if (http2_server_start(s->h2[i]) != 0)
        DIE("http2_server_start failed");
    s->port[i] = http2_server_port(s->h2[i]);
}

/* Builds and starts a server on its own thread, as omsd's worker_listen and
 * worker_serve do (with_tls: the main server, with health too). */
static void server_start(server *s, bool main_server)
{
    memset(s, 0, sizeof *s);
    if (uv_loop_init(&s->loop) != 0)
        DIE("uv_loop_init");
    rpc_server_config rcfg;
    rpc_server_config_init(&rcfg);
    if (!(s->rpc = rpc_server_new(&rcfg)))
        DIE("rpc_server_new");
    if (orders_register(T.o, s->rpc) != 0)
        DIE("orders_register");
    if (main_server) {
        if (!(s->health = rpc_health_new()) ||
            rpc_server_add_service(s->rpc, rpc_health_impl(s->health)) != 0)
            DIE("health");
        for (size_t i = 0; i < rpc_server_service_count(s->rpc); i++)
            rpc_health_set(s->health, rpc_server_service_name(s->rpc, i), RPC_HEALTH_SERVING);
    }
    char err[256];
    if (orders_loop_attach(T.o, &s->loop, err, sizeof err) != 0)
        DIE("orders_loop_attach: %s", err);
    listener(s, false);
    if (main_server)
        listener(s, true);
    uv_async_init(&s->loop, &s->stop, on_server_stop);
    uv_async_init(&s->loop, &s->probe, on_server_probe);
    uv_async_init(&s->loop, &s->dump, on_server_dump);
    s->stop.data = s->probe.data = s->dump.data = s;
    s->grace_ms = main_server ? 0 : T.timeout_ms;
    if (uv_thread_create(&s->thread, server_thread, s) != 0)
        DIE("uv_thread_create");
}

static bool client_run_until(const atomic_bool *flag, uint64_t ms);
static server drain_worker;

/* Frees s once it went down (s->down) and its thread ended. */
static void server_reap(server *s)
{
    uv_thread_join(&s->thread);
    for (int i = 0; i < s->nh2; i++)
        http2_server_free(s->h2[i]);
    if (rpc_server_active_calls(s->rpc) != 0)
        DIE("%zu calls left after the server went down", rpc_server_active_calls(s->rpc));
    rpc_server_free(s->rpc);
    rpc_health_free(s->health);
    uv_run(&s->loop, UV_RUN_NOWAIT);
    if (uv_loop_close(&s->loop) != 0)
        DIE("a handle of the server's loop was left open");
}

/* --- the client loop --------------------------------------------------------------- */

static void on_answer(uv_async_t *a)
{
    (void)a;
}

static void on_tick(uv_timer_t *t)
{
    *(bool *)t->data = true;
}

static uint64_t now_ms(void)
{
    return uv_hrtime() / 1000000;
}

/* Runs the client loop until *flag or ms pass (polled every millisecond
 * while the loop has nothing to do). */
static bool client_run_until(const atomic_bool *flag, uint64_t ms)
{
    uint64_t end = now_ms() + ms;
    while (!atomic_load(flag)) {
        if (now_ms() > end)
            return false;
        bool ticked = false;
        T.tick.data = &ticked;
        /* Repeating: a one-shot tick that expired before the loop polls
         * (a loaded machine) would leave the poll without a timeout. */
        uv_timer_start(&T.tick, on_tick, 1, 1);
        uv_run(&T.cl, UV_RUN_ONCE);
        uv_timer_stop(&T.tick);
    }
    return true;
}

/* Waits until the main server has no connection and no call. */
static bool server_idle(void)
{
    uint64_t end = now_ms() + 4 * T.timeout_ms;
    for (;;) {
        atomic_store(&T.answered, false);
        uv_async_send(&T.main.probe);
        if (!client_run_until(&T.answered, 4 * T.timeout_ms))
            return false;
        if (atomic_load(&T.busy) == 0)
            return true;
        if (now_ms() > end)
            return false;
        atomic_bool never = false;
        client_run_until(&never, 1);
    }
}

static void on_channel_freed(void *arg)
{
    atomic_store((atomic_bool *)arg, true);
}

static rpc_channel *channel(bool tls, int port)
{
    char target[64], err[256];
    snprintf(target, sizeof target, "127.0.0.1:%d", port);
    rpc_channel_config cfg;
    rpc_channel_config_init(&cfg);
    cfg.target = target;
    cfg.tls = tls;
    cfg.ca_file = T.ca;
    cfg.server_name = "localhost";
    cfg.retry.max_attempts = 1;
    cfg.connect_timeout_ms = T.timeout_ms;
    rpc_channel *ch = rpc_channel_new(&T.cl, &cfg, err, sizeof err);
    if (!ch)
        DIE("rpc_channel_new: %s", err);
    return ch;
}

static void channel_free(rpc_channel *ch)
{
    atomic_bool freed = false;
    rpc_channel_free(ch, on_channel_freed, &freed);
    if (!client_run_until(&freed, 4 * T.timeout_ms))
        DIE("the client channel was not freed in time");
}

/* --- calls ---------------------------------------------------------------------------- */

typedef struct call {
    rpc_client_call *c;
    atomic_bool done;
    rpc_status code;
    char msg[200];
    int nmsg;
    char order_id[32];       /* Order response */
    int64_t created, failed; /* ImportOrdersSummary */
    int32_t health;          /* HealthCheckResponse status */
    int64_t last_seq;        /* OrderEvent */
    char seen[16][32];       /* order ids of the last OrderEvents */
} call;

static void on_message(rpc_client_call *c, const ProtobufCMessage *m)
{
    call *k = rpc_client_call_data(c);
    k->nmsg++;
    if (m->descriptor == &oms__v1__order__descriptor) {
        snprintf(k->order_id, sizeof k->order_id, "%s", ((const Oms__V1__Order *)m)->id);
    } else if (m->descriptor == &oms__v1__import_orders_summary__descriptor) {
        const Oms__V1__ImportOrdersSummary *s = (const void *)m;
        k->created = s->created;
        k->failed = s->failed;
    } else if (m->descriptor == &grpc__health__v1__health_check_response__descriptor) {
        k->health = ((const Grpc__Health__V1__HealthCheckResponse *)m)->status;
    } else if (m->descriptor == &oms__v1__order_event__descriptor) {
        const Oms__V1__OrderEvent *e = (const void *)m;
        k->last_seq = e->seq;
        snprintf(k->seen[k->nmsg % 16], sizeof k->seen[0], "%s", e->order_id);
    }
}

static void on_status(rpc_client_call *c, rpc_status code, const char *message,
                      const rpc_metadata *trailers)
{
    (void)trailers;
    call *k = rpc_client_call_data(c);
    k->code = code;
    snprintf(k->msg, sizeof k->msg, "%s", message);
    k->c = NULL;
    atomic_store(&k->done, true);
}

static const rpc_client_ops ops[4] = {
    {.flags = 0, .on_message = on_message, .on_status = on_status},
    {.flags = RPC_CLIENT_STREAMING, .on_message = on_message, .on_status = on_status},
    {.flags = RPC_SERVER_STREAMING, .on_message = on_message, .on_status = on_status},
    {.flags = RPC_CLIENT_STREAMING | RPC_SERVER_STREAMING,
     .on_message = on_message,
     .on_status = on_status},
};

/* Starts a call with the test's deadline; req (may be NULL) is sent, and
 * for a call without client streaming the sending side is closed. */
static void call_start(call *k, rpc_channel *ch, const char *path,
                       const ProtobufCMessageDescriptor *resp, unsigned flags,
                       const ProtobufCMessage *req)
{
    memset(k, 0, sizeof *k);
    rpc_call_opts opts = {.timeout_ms = T.timeout_ms};
    k->c = rpc_channel_call(ch, path, resp, &ops[flags], k, &opts);
    if (!k->c)
        DIE("rpc_channel_call: out of memory on the exempt client thread");
    if (req)
        rpc_client_call_send(k->c, req);
    if (!(flags & RPC_CLIENT_STREAMING))
        rpc_client_call_close_send(k->c);
}

/* Runs the loop until the call ended; a call always ends, at the latest at
 * its deadline. */
static void call_wait(call *k)
{
    if (!client_run_until(&k->done, 3 * T.timeout_ms))
        DIE("a call did not end after its deadline");
}

/* The call went on (not ended) and got at least n messages, or ended. */
static void call_wait_msgs(call *k, int n)
{
    uint64_t end = now_ms() + 3 * T.timeout_ms;
    while (!atomic_load(&k->done) && k->nmsg < n) {
        if (now_ms() > end)
            DIE("a streaming call neither answered nor ended after its deadline");
        atomic_bool never = false;
        client_run_until(&never, 1);
    }
}

static void call_cancel(call *k)
{
    if (!atomic_load(&k->done))
        rpc_client_call_cancel(k->c);
    call_wait(k);
}

/* Outcome of one scenario: "ok" or which step ended how. */
static char outcome[128];

static const char *fail_at(const char *step, const call *k)
{
    snprintf(outcome, sizeof outcome, "%s:%s", step, rpc_status_name(k->code));
    return outcome;
}

/* --- scenarios ----------------------------------------------------------------------- */

static rpc_status create_order(rpc_channel *ch, const char *customer, char *id, size_t idlen)
{
    Oms__V1__CreateOrderLine line = OMS__V1__CREATE_ORDER_LINE__INIT;
    Oms__V1__CreateOrderLine *lines[1] = {&line};
    Oms__V1__CreateOrderRequest req = OMS__V1__CREATE_ORDER_REQUEST__INIT;
    line.sku = "FM-1";
    line.quantity = 1;
    req.customer_id = (char *)customer;
    req.n_lines = 1;
    req.lines = lines;
    call k;
    call_start(&k, ch, "/oms.v1.OrderService/CreateOrder", &oms__v1__order__descriptor, 0,
               &req.base);
    call_wait(&k);
    if (k.code == RPC_OK)
        snprintf(id, idlen, "%s", k.order_id);
    return k.code;
}

/* TLS handshake, then a unary Health/Check. */
static const char *scen_tls_unary(void)
{
    rpc_channel *ch = channel(true, T.main.port[1]);
    Grpc__Health__V1__HealthCheckRequest req = GRPC__HEALTH__V1__HEALTH_CHECK_REQUEST__INIT;
    req.service = "";
    call k;
    call_start(&k, ch, "/grpc.health.v1.Health/Check",
               &grpc__health__v1__health_check_response__descriptor, 0, &req.base);
    call_wait(&k);
    channel_free(ch);
    if (k.code != RPC_OK)
        return fail_at("Check", &k);
    return k.health == GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__SERVING
               ? "ok"
               : "Check:not-serving";
}

/* h2c, a unary GetProduct (a store read). */
static const char *scen_h2c_unary(void)
{
    rpc_channel *ch = channel(false, T.main.port[0]);
    Oms__V1__GetProductRequest req = OMS__V1__GET_PRODUCT_REQUEST__INIT;
    req.sku = "FM-1";
    call k;
    call_start(&k, ch, "/oms.v1.InventoryService/GetProduct", &oms__v1__product__descriptor, 0,
               &req.base);
    call_wait(&k);
    channel_free(ch);
    return k.code == RPC_OK ? "ok" : fail_at("GetProduct", &k);
}

/* HTTP/1.1 on the h2c port (http2/h1.c): pipelined requests, a chunked
 * body, rpc's answers (505 for gRPC over HTTP/1.1, 405 for a GET), then
 * "Connection: close". Read until the server closes, within the deadline. */
static const char *scen_h1(void)
{
    static const char req[] = "POST /oms.v1.InventoryService/GetProduct HTTP/1.1\r\nHost: h\r\n"
                              "content-type: application/grpc\r\nTransfer-Encoding: chunked\r\n"
                              "\r\n5\r\n\0\0\0\0\0\r\n0\r\n\r\n"
                              "GET / HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n";
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)T.main.port[0])};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof a) != 0 ||
        send(fd, req, sizeof req - 1, MSG_NOSIGNAL) != (ssize_t)(sizeof req - 1)) {
        if (fd >= 0)
            close(fd);
        return "h1:UNAVAILABLE";
    }
    char in[4096];
    size_t n = 0;
    bool eof = false;
    uint64_t end = now_ms() + T.timeout_ms;
    while (!eof && now_ms() < end) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        if (poll(&p, 1, 100) <= 0)
            continue;
        ssize_t r = recv(fd, in + n, sizeof in - 1 - n, 0);
        if (r <= 0)
            eof = true;
        else
            n += (size_t)r;
        if (n == sizeof in - 1)
            break;
    }
    close(fd);
    in[n] = '\0';
    if (!eof)
        return "h1:DEADLINE_EXCEEDED";
    if (strstr(in, "HTTP/1.1 505 ") && strstr(in, "HTTP/1.1 405 "))
        return "ok";
    return strstr(in, "HTTP/1.1 500 ") ? "h1:INTERNAL" : "h1:UNAVAILABLE";
}

/* Server streaming: ListProducts, five products in pages of two. */
static const char *scen_server_stream(void)
{
    rpc_channel *ch = channel(false, T.main.port[0]);
    Oms__V1__ListProductsRequest req = OMS__V1__LIST_PRODUCTS_REQUEST__INIT;
    req.page_size = 2;
    call k;
    call_start(&k, ch, "/oms.v1.InventoryService/ListProducts", &oms__v1__product__descriptor,
               RPC_SERVER_STREAMING, &req.base);
    call_wait(&k);
    channel_free(ch);
    if (k.code != RPC_OK)
        return fail_at("ListProducts", &k);
    return k.nmsg == 5 ? "ok" : "ListProducts:short";
}

/* Client streaming: ImportOrders, three rows (three orders committed). */
static const char *scen_client_stream(void)
{
    rpc_channel *ch = channel(false, T.main.port[0]);
    call k;
    call_start(&k, ch, "/oms.v1.OrderService/ImportOrders",
               &oms__v1__import_orders_summary__descriptor, RPC_CLIENT_STREAMING, NULL);
    for (int i = 0; i < 3; i++) {
        Oms__V1__CreateOrderLine line = OMS__V1__CREATE_ORDER_LINE__INIT;
        Oms__V1__CreateOrderLine *lines[1] = {&line};
        Oms__V1__CreateOrderRequest o = OMS__V1__CREATE_ORDER_REQUEST__INIT;
        Oms__V1__ImportOrderRow row = OMS__V1__IMPORT_ORDER_ROW__INIT;
        char rid[16];
        snprintf(rid, sizeof rid, "r%d", i);
        line.sku = "FM-1";
        line.quantity = 1;
        o.customer_id = T.cust;
        o.n_lines = 1;
        o.lines = lines;
        row.row_id = rid;
        row.order = &o;
        rpc_client_call_send(k.c, &row.base);
    }
    rpc_client_call_close_send(k.c);
    call_wait(&k);
    channel_free(ch);
    if (k.code != RPC_OK)
        return fail_at("ImportOrders", &k);
    return k.created == 3 ? "ok" : "ImportOrders:rows-failed";
}

/* Bidi: TrackOrders subscribes to order0 from seq 1 (its events replayed),
 * then half-closes: the server ends the call OK. */
static const char *scen_bidi(void)
{
    rpc_channel *ch = channel(false, T.main.port[0]);
    call k;
    call_start(&k, ch, "/oms.v1.OrderService/TrackOrders", &oms__v1__order_event__descriptor,
               RPC_CLIENT_STREAMING | RPC_SERVER_STREAMING, NULL);
    Oms__V1__TrackSubscribe sub = OMS__V1__TRACK_SUBSCRIBE__INIT;
    char *ids[1] = {T.order0};
    sub.n_order_ids = 1;
    sub.order_ids = ids;
    sub.since_seq = 1;
    Oms__V1__TrackRequest req = OMS__V1__TRACK_REQUEST__INIT;
    req.action_case = OMS__V1__TRACK_REQUEST__ACTION_SUBSCRIBE;
    req.subscribe = &sub;
    rpc_client_call_send(k.c, &req.base);
    call_wait_msgs(&k, 1);
    if (!atomic_load(&k.done))
        rpc_client_call_close_send(k.c);
    call_wait(&k);
    channel_free(ch);
    if (k.code != RPC_OK)
        return fail_at("TrackOrders", &k);
    return k.nmsg >= 1 ? "ok" : "TrackOrders:no-event";
}

static bool seen(const call *k, const char *id)
{
    for (int i = 0; i < 16; i++)
        if (strcmp(k->seen[i], id) == 0)
            return true;
    return false;
}

/* WatchOrders of cust_w from the seq of its first order's event, which is
 * older than the loop's event ring (16 events: caught up from the store),
 * then a live event: an order created meanwhile on the same connection. */
static const char *scen_watch(void)
{
    rpc_channel *ch = channel(false, T.main.port[0]);
    Oms__V1__WatchOrdersRequest req = OMS__V1__WATCH_ORDERS_REQUEST__INIT;
    req.customer_id = T.cust_w;
    req.since_seq = T.watch_since;
    call w;
    call_start(&w, ch, "/oms.v1.OrderService/WatchOrders", &oms__v1__order_event__descriptor,
               RPC_SERVER_STREAMING, &req.base);
    call_wait_msgs(&w, 1);
    const char *r = "ok";
    char id[32];
    rpc_status st;
    if (atomic_load(&w.done)) {
        r = fail_at("WatchOrders(catch-up)", &w);
    } else if ((st = create_order(ch, T.cust_w, id, sizeof id)) != RPC_OK) {
        snprintf(outcome, sizeof outcome, "CreateOrder:%s", rpc_status_name((int)st));
        r = outcome;
    } else {
        uint64_t end = now_ms() + 3 * T.timeout_ms, dump_at = now_ms() + 5000;
        while (!atomic_load(&w.done) && !seen(&w, id)) {
            if (now_ms() > end)
                DIE("WatchOrders: the live event never came, nor did the call end");
            if (dump_at && now_ms() > dump_at) {
                fprintf(stderr,
                        "WatchOrders: no live event for %s 5 s after its commit: "
                        "state dump follows\n",
                        id);
                uv_async_send(&T.main.dump);
                dump_at = 0;
            }
            atomic_bool never = false;
            client_run_until(&never, 1);
        }
        if (!seen(&w, id))
            r = fail_at("WatchOrders(live)", &w);
    }
    call_cancel(&w);
    channel_free(ch);
    return r;
}

/* CreateOrder (answered once its commit is durable), then GetOrder of it. */
static const char *scen_create(void)
{
    rpc_channel *ch = channel(false, T.main.port[0]);
    char id[32];
    rpc_status st = create_order(ch, T.cust, id, sizeof id);
    const char *r = "ok";
    if (st != RPC_OK) {
        snprintf(outcome, sizeof outcome, "CreateOrder:%s", rpc_status_name((int)st));
        r = outcome;
    } else {
        Oms__V1__GetOrderRequest req = OMS__V1__GET_ORDER_REQUEST__INIT;
        req.id = id;
        call k;
        call_start(&k, ch, "/oms.v1.OrderService/GetOrder", &oms__v1__order__descriptor, 0,
                   &req.base);
        call_wait(&k);
        if (k.code != RPC_OK)
            r = fail_at("GetOrder", &k);
        else if (strcmp(k.order_id, id) != 0)
            r = "GetOrder:wrong-order";
    }
    channel_free(ch);
    return r;
}

/* Drain, as omsd does it on SIGTERM, of a worker made for the run: with an
 * ImportOrders call in flight (one row sent) and a WatchOrders subscriber,
 * the worker drains: the subscriber ends with UNAVAILABLE, the import gets
 * its second row and half-close after the GOAWAY and must still complete,
 * then the worker goes down and is freed. */
static const char *scen_drain(void)
{
    server *s = &drain_worker; /* made before the run was armed (drain_prepare) */
    rpc_channel *ch = channel(false, s->port[0]);
    call im, w;
    call_start(&im, ch, "/oms.v1.OrderService/ImportOrders",
               &oms__v1__import_orders_summary__descriptor, RPC_CLIENT_STREAMING, NULL);
    Oms__V1__CreateOrderLine line = OMS__V1__CREATE_ORDER_LINE__INIT;
    Oms__V1__CreateOrderLine *lines[1] = {&line};
    Oms__V1__CreateOrderRequest o = OMS__V1__CREATE_ORDER_REQUEST__INIT;
    Oms__V1__ImportOrderRow row = OMS__V1__IMPORT_ORDER_ROW__INIT;
    line.sku = "FM-1";
    line.quantity = 1;
    o.customer_id = T.cust;
    o.n_lines = 1;
    o.lines = lines;
    row.row_id = "d1";
    row.order = &o;
    rpc_client_call_send(im.c, &row.base);
    /* Frames go out in order: once the watch is answered, the server has the
     * import's first row too. */
    Oms__V1__WatchOrdersRequest wr = OMS__V1__WATCH_ORDERS_REQUEST__INIT;
    wr.customer_id = T.cust_w;
    wr.since_seq = T.watch_since;
    call_start(&w, ch, "/oms.v1.OrderService/WatchOrders", &oms__v1__order_event__descriptor,
               RPC_SERVER_STREAMING, &wr.base);
    call_wait_msgs(&w, 1);
    bool watching = !atomic_load(&w.done);
    uv_async_send(&s->stop);
    call_wait(&w);
    if (!atomic_load(&im.done)) {
        row.row_id = "d2";
        rpc_client_call_send(im.c, &row.base);
        rpc_client_call_close_send(im.c);
    }
    call_wait(&im);
    channel_free(ch);
    if (!client_run_until(&s->down, s->grace_ms + 4 * T.timeout_ms))
        DIE("drain: the worker did not go down");
    if (!watching)
        return fail_at("WatchOrders(before drain)", &w);
    if (w.code != RPC_UNAVAILABLE)
        return fail_at("WatchOrders(drained)", &w);
    if (im.code != RPC_OK)
        return fail_at("ImportOrders(in flight)", &im);
    return im.created == 2 ? "ok" : "ImportOrders:rows-failed";
}

static void drain_prepare(void)
{
    server_start(&drain_worker, false);
}

static void drain_finish(void)
{
    server_reap(&drain_worker);
}

/* --- the runner ---------------------------------------------------------------------- */

typedef struct scenario {
    const char *name;
    const char *(*run)(void);
    void (*prepare)(void); /* before each run, unarmed */
    void (*finish)(void);  /* after each run, disarmed */
} scenario;

static const scenario scenarios[] = {
    {"tls_unary", scen_tls_unary, NULL, NULL},
    {"h2c_unary", scen_h2c_unary, NULL, NULL},
    {"http1", scen_h1, NULL, NULL},
    {"server_stream", scen_server_stream, NULL, NULL},
    {"client_stream", scen_client_stream, NULL, NULL},
    {"bidi", scen_bidi, NULL, NULL},
    {"watch_catchup", scen_watch, NULL, NULL},
    {"create_order", scen_create, NULL, NULL},
    {"drain", scen_drain, drain_prepare, drain_finish},
};

typedef struct tally {
    char what[128];
    unsigned n;
} tally;

static void tally_add(tally *t, size_t cap, const char *what)
{
    size_t i;
    for (i = 0; i < cap && t[i].n; i++)
        if (strcmp(t[i].what, what) == 0)
            break;
    if (i == cap)
        i = cap - 1; /* the last slot collects the rest */
    if (!t[i].n)
        snprintf(t[i].what, sizeof t[i].what, "%s", what);
    t[i].n++;
}

/* One run of sc (armed or not), its server side gone quiet afterwards
 * (no connection, no call). Returns the outcome, copied into out. */
static bool run_once(const scenario *sc, uint64_t fail_nth, bool count, char *out, size_t outlen,
                     uint64_t *counted, bool *fired)
{
    cur_scenario = sc->name;
    cur_n = fail_nth;
    if (sc->prepare)
        sc->prepare();
    if (count)
        oms_alloc_count_on();
    else
        oms_alloc_fail_nth(fail_nth);
    atomic_store(&fail_depth, 0);
    snprintf(out, outlen, "%s", sc->run());
    bool idle = server_idle();
    *counted = oms_alloc_counted();
    *fired = oms_alloc_failed();
    oms_alloc_fail_nth(0);
    if (sc->finish)
        sc->finish();
    return idle;
}

/* Whether an outcome is a fair answer to a failed allocation: the requests
 * are valid, so a status blaming them (INVALID_ARGUMENT, NOT_FOUND, ...) is
 * a wrong one. */
static bool failure_ok(const char *out)
{
    static const char *const fair[] = {":UNAVAILABLE", ":RESOURCE_EXHAUSTED",
                                       ":INTERNAL",    ":CANCELLED",
                                       ":UNKNOWN",     ":rows-failed"};
    if (strcmp(out, "ok") == 0)
        return true;
    const char *colon = strrchr(out, ':');
    for (size_t i = 0; colon && i < sizeof fair / sizeof fair[0]; i++)
        if (strcmp(colon, fair[i]) == 0)
            return true;
    return false;
}

static double secs_since(uint64_t t0)
{
    return (double)(uv_hrtime() - t0) / 1e9;
}

static uint64_t env_u64(const char *name, uint64_t def)
{
    const char *v = getenv(name);
    return v && *v ? strtoull(v, NULL, 10) : def;
}

/* Runs scenario sc through every (or every stride-th) failing allocation.
 * Returns the number of problems found (0: passed). */
static int run_scenario(const scenario *sc, uint64_t max_runs)
{
    uint64_t t0 = uv_hrtime();
    char out[128];
    uint64_t k, counted;
    bool fired;
    int problems = 0;
    if (!run_once(sc, 0, true, out, sizeof out, &k, &fired))
        DIE("%s: the server did not go idle after a plain run", sc->name);
    if (strcmp(out, "ok") != 0)
        DIE("%s: a plain run failed: %s", sc->name, out);
    uint64_t stride = k > max_runs && max_runs ? (k + max_runs - 1) / max_runs : 1;
    if (!max_runs) /* OMS_FAILMALLOC_MAX_RUNS=0: only count */
        k = 0;
    uint64_t runs = 0, not_fired = 0, slow = 0;
    tally t[24];
    memset(t, 0, sizeof t);
    uint64_t from = env_u64("OMS_FAILMALLOC_FROM", 1);
    for (uint64_t n = from; n <= k; n += stride) {
        runs++;
        uint64_t r0 = now_ms();
        if (!run_once(sc, n, false, out, sizeof out, &counted, &fired)) {
            fprintf(stderr,
                    "FAIL %s n=%" PRIu64 ": server still busy (a connection or call "
                    "left behind) after the run (%s)\n",
                    sc->name, n, out);
            problems++;
            print_fail_site();
            if (!server_idle())
                DIE("%s n=%" PRIu64 ": the server stays busy", sc->name, n);
        }
        if (!fired)
            not_fired++;
        tally_add(t, 24, fired ? out : "not-fired");
        if (strstr(out, "DEADLINE_EXCEEDED")) {
            fprintf(stderr, "FAIL %s n=%" PRIu64 ": a call lost its answer (%s)\n", sc->name, n,
                    out);
            problems++;
            print_fail_site();
        } else if (!failure_ok(out)) {
            fprintf(stderr, "FAIL %s n=%" PRIu64 ": out of memory answered as %s\n", sc->name, n,
                    out);
            problems++;
            print_fail_site();
        }
        char again[128];
        bool again_idle = run_once(sc, 0, false, again, sizeof again, &counted, &fired);
        if (now_ms() - r0 > 3000)
            slow++;
        if (!again_idle || strcmp(again, "ok") != 0) {
            fprintf(stderr, "FAIL %s n=%" PRIu64 ": the disarmed run after the failure: %s\n",
                    sc->name, n, again);
            problems++;
        }
        if (problems > 20)
            DIE("%s: too many problems, stopping", sc->name);
    }
    /* The count may vary a little from run to run (timers, how reads are
     * split); a failure armed past the run's last allocation does not fire.
     * More than a few such runs means the scenario is not what was counted. */
    if (not_fired > runs / 20 + 2) {
        fprintf(stderr, "FAIL %s: the failure did not fire in %" PRIu64 " of %" PRIu64 " runs\n",
                sc->name, not_fired, runs);
        problems++;
    }
    printf("# %s: K=%" PRIu64 " runs=%" PRIu64 " stride=%" PRIu64 " fired=%" PRIu64 " slow=%" PRIu64
           " %.1fs; outcomes:",
           sc->name, k, runs, stride, runs - not_fired, slow, secs_since(t0));
    for (int i = 0; i < 24 && t[i].n; i++)
        printf(" %s=%u", t[i].what, t[i].n);
    printf("\n%s %s\n", problems ? "FAIL" : "PASS", sc->name);
    fflush(stdout);
    return problems;
}

/* Customers, products with stock, and one order, through the blocking
 * stubs (unarmed). */
static void setup_data(void)
{
    rpc_channel *ch = channel(false, T.main.port[0]);
    rpc_call_opts opts = {.timeout_ms = T.timeout_ms};
    char msg[256];
    for (int i = 0; i < 2; i++) {
        Oms__V1__CreateCustomerRequest req = OMS__V1__CREATE_CUSTOMER_REQUEST__INIT;
        req.name = i ? "Watched" : "Buyer";
        req.email = i ? "w@example.com" : "b@example.com";
        Oms__V1__Customer *c = NULL;
        if (oms__v1__customer_service__create_customer__blocking(ch, &req, &c, &opts, msg,
                                                                 sizeof msg) != RPC_OK)
            DIE("CreateCustomer: %s", msg);
        snprintf(i ? T.cust_w : T.cust, sizeof T.cust, "%s", c->id);
        oms__v1__customer__free_unpacked(c, NULL);
    }
    for (int i = 1; i <= 5; i++) {
        char sku[16];
        snprintf(sku, sizeof sku, "FM-%d", i);
        Oms__V1__UpsertProductRequest req = OMS__V1__UPSERT_PRODUCT_REQUEST__INIT;
        req.sku = sku;
        req.name = "Failing allocation";
        req.unit_price_cents = 100 * i;
        Oms__V1__Product *p = NULL;
        if (oms__v1__inventory_service__upsert_product__blocking(ch, &req, &p, &opts, msg,
                                                                 sizeof msg) != RPC_OK)
            DIE("UpsertProduct: %s", msg);
        oms__v1__product__free_unpacked(p, NULL);
    }
    Oms__V1__AdjustStockRequest adj = OMS__V1__ADJUST_STOCK_REQUEST__INIT;
    adj.sku = "FM-1";
    adj.delta = 1000000000;
    Oms__V1__Product *p = NULL;
    if (oms__v1__inventory_service__adjust_stock__blocking(ch, &adj, &p, &opts, msg, sizeof msg) !=
        RPC_OK)
        DIE("AdjustStock: %s", msg);
    oms__v1__product__free_unpacked(p, NULL);
    if (create_order(ch, T.cust, T.order0, sizeof T.order0) != RPC_OK)
        DIE("CreateOrder in the setup failed");
    char id[32];
    if (create_order(ch, T.cust_w, id, sizeof id) != RPC_OK)
        DIE("CreateOrder in the setup failed");
    /* More events than the ring holds after cust_w's first one. */
    for (int i = 0; i < 40; i++)
        if (create_order(ch, T.cust, id, sizeof id) != RPC_OK)
            DIE("CreateOrder in the setup failed");
    Oms__V1__WatchOrdersRequest wr = OMS__V1__WATCH_ORDERS_REQUEST__INIT;
    wr.customer_id = T.cust_w;
    wr.since_seq = 1;
    call w;
    call_start(&w, ch, "/oms.v1.OrderService/WatchOrders", &oms__v1__order_event__descriptor,
               RPC_SERVER_STREAMING, &wr.base);
    call_wait_msgs(&w, 1);
    if (w.nmsg < 1)
        DIE("WatchOrders in the setup: %s", w.msg);
    T.watch_since = w.last_seq;
    call_cancel(&w);
    channel_free(ch);
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: failmalloc CERTS_SH [SCENARIO...]\n");
        return 2;
    }
    setvbuf(stdout, NULL, _IOLBF, 0);
    oms_alloc_exempt_thread();
    oms_log_level lvl;
    if (getenv("OMS_FAILMALLOC_LOG") &&
        oms_log_parse_level(getenv("OMS_FAILMALLOC_LOG"), &lvl) == 0)
        oms_log_set_level(lvl);
    oms_alloc_set_fail_hook(on_alloc_failed);
    backtrace(fail_stack, 1); /* loads libgcc now, not inside a failing allocation */
    signal(SIGPIPE, SIG_IGN);
    uint64_t max_runs = env_u64("OMS_FAILMALLOC_MAX_RUNS", 1500);
    T.timeout_ms = env_u64("OMS_FAILMALLOC_TIMEOUT_MS", 15000);

    snprintf(T.certdir, sizeof T.certdir, "/tmp/oms-failmalloc-certs-XXXXXX");
    snprintf(T.dir, sizeof T.dir, "/tmp/oms-failmalloc-XXXXXX");
    if (!mkdtemp(T.certdir) || !mkdtemp(T.dir))
        DIE("mkdtemp");
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "bash '%s' '%s' 2>/dev/null", argv[1], T.certdir);
    if (system(cmd) != 0)
        DIE("%s failed", cmd);
    snprintf(T.ca, sizeof T.ca, "%s/ca.pem", T.certdir);
    snprintf(T.cert, sizeof T.cert, "%s/server.pem", T.certdir);
    snprintf(T.key, sizeof T.key, "%s/server.key", T.certdir);

    char url[128], err[256];
    snprintf(url, sizeof url, "sqlite:%s/oms.db", T.dir);
    orders_config cfg;
    orders_config_init(&cfg);
    cfg.store_url = url;
    cfg.demo_data = false;
    cfg.event_ring = 16; /* WatchOrders catch-up reads the store */
    if (!(T.o = orders_open(&cfg, err, sizeof err)))
        DIE("orders_open: %s", err);

    uv_loop_init(&T.cl);
    uv_async_init(&T.cl, &T.answer, on_answer);
    uv_timer_init(&T.cl, &T.tick);
    server_start(&T.main, true);
    setup_data();

    uint64_t t0 = uv_hrtime();
    int failed = 0, passed = 0;
    for (size_t i = 0; i < sizeof scenarios / sizeof scenarios[0]; i++) {
        bool pick = argc == 2;
        for (int a = 2; a < argc; a++)
            pick |= strcmp(argv[a], scenarios[i].name) == 0;
        if (!pick)
            continue;
        if (run_scenario(&scenarios[i], max_runs))
            failed++;
        else
            passed++;
    }

    uv_async_send(&T.main.stop);
    if (!client_run_until(&T.main.down, 4 * T.timeout_ms))
        DIE("the server did not shut down");
    server_reap(&T.main);
    orders_close(T.o);
    uv_close((uv_handle_t *)&T.answer, NULL);
    uv_close((uv_handle_t *)&T.tick, NULL);
    uv_run(&T.cl, UV_RUN_DEFAULT);
    if (uv_loop_close(&T.cl) != 0)
        DIE("a client handle was left open");
    snprintf(cmd, sizeof cmd, "rm -rf '%s' '%s'", T.dir, T.certdir);
    if (system(cmd) != 0)
        DIE("%s failed", cmd);
    printf("%d passed, %d failed (%.1fs)\n", passed, failed, secs_since(t0));
    return failed ? 1 : 0;
}
