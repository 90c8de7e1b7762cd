/* omsd - the oms server: flags, wiring of the layers, signals.
 *
 * Default: TLS on 127.0.0.1:50051 with certs/server.pem and certs/server.key,
 * one worker loop per core, serving the order system (oms.v1 Customer,
 * Inventory and Order services over SQLite at ./oms.db, with a demo catalog
 * on first run), grpc.testing.TestService, oms.bench.v1.OrderBench, health
 * and reflection. SIGINT/SIGTERM drain: GOAWAY, order-event subscribers end
 * with UNAVAILABLE (they resume with since_seq), other in-flight calls get
 * --grace seconds, then exit 0. SIGUSR1 logs (at info, lines "state dump:")
 * every connection's streams (send windows, queued bytes, data provider and
 * on_writable state) and every order-event subscriber (cursor, ring head,
 * blocked/scheduled, its call's send state), with broken wake-up invariants
 * marked VIOLATION. SIGHUP re-reads the TLS certificate, key and client CA
 * (reload_credentials()) for new connections; open ones keep theirs; and
 * reopens the --access-log file. Under systemd (Type=notify) READY=1 goes out
 * with the "listening on" line, STOPPING=1 when a drain starts.
 */
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <systemd/sd-daemon.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

#include "base/cli.h"
#include "base/cli_token.h"
#include "omsd/omsd_access.h"
#include "omsd/omsd_admin.h"
#include "omsd/omsd_auth.h"
#include "omsd/omsd_flags.h"
#include "omsd/omsd_metrics.h"
#include "omsd/omsd_web.h"
#include "services/services.h"
#include "base/log.h"
#include "http2/http2.h"
#include "metrics/metrics.h"
#include "oms/v1/customer.pb-c.h"
#include "oms/v1/inventory.pb-c.h"
#include "omsd/omsd_authz.h"
#include "orders/orders.h"
#include "rpc/health.h"
#include "rpc/reflection.h"
#include "rpc/rpc.h"

extern const unsigned char oms_descriptor_set[];
extern const size_t oms_descriptor_set_len;

/* The connection cap: --max-connections, or what the descriptor limit
 * allows once its soft value is raised to the hard one (as Go's runtime
 * does), less a reserve for the store, logs and peers. */
static size_t connection_cap(uint64_t flag)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rlim_t soft = rl.rlim_cur;
        rl.rlim_cur = rl.rlim_max;
        if (setrlimit(RLIMIT_NOFILE, &rl) != 0)
            rl.rlim_cur = soft;
    }
    if (flag)
        return (size_t)flag;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur == RLIM_INFINITY)
        return 1000000;
    return rl.rlim_cur > 512 ? (size_t)(rl.rlim_cur - 256) : (size_t)rl.rlim_cur / 2;
}

/* One event loop on its own thread, with its own listener (SO_REUSEPORT
 * when there are several), rpc server, health and reflection; the
 * interop and bench services are shared (read-only tables, a mutex-guarded
 * order map). A connection lives on one worker for its whole life. */
/* orders_loop_stats is all uint64_t: copied as that many words. */
#define HUB_STATS ((int)(sizeof(orders_loop_stats) / sizeof(uint64_t)))
_Static_assert(sizeof(orders_loop_stats) % sizeof(uint64_t) == 0,
               "orders_loop_stats: uint64_t only");

typedef struct worker {
    struct app *app;
    uv_loop_t loop;
    uv_thread_t thread;
    uv_async_t stop;       /* main -> worker: drain */
    uv_async_t dump;       /* main -> worker: log the state of streams and subscribers */
    uv_timer_t calls_wait; /* drained: polls for calls still waiting on the store */
    rpc_server *rpc;
    rpc_health *health;
    rpc_reflection *refl;
    http2_server *h2;
    bool loop_on, thread_on;
    bool attached; /* orders_loop_attach done, orders_loop_detach not yet */
    int index;
    rpc_channel *peer_ch[2]; /* orders' peer channels on this loop (metrics) */
    int npeer_ch;
    /* With metrics: the loop's event-hub statistics, copied each second by
     * stats_timer (they are the loop's own, not safe to read from another
     * thread) into atomics the scrape reads. */
    uv_timer_t stats_timer;
    bool stats_on;
    _Atomic uint64_t hub[HUB_STATS]; /* orders_loop_stats' fields, in order */
} worker;

typedef struct app {
    uv_loop_t *loop; /* the main thread's: signals only */
    uv_signal_t sigint, sigterm, sigusr1, sighup;
    uv_async_t drained; /* worker -> main: one more worker is done */
    worker *workers;
    int nworkers;
    atomic_int ndrained;
    atomic_bool failed; /* a worker could not start: stop all, exit 1 */
    orders *orders;     /* NULL with --bench-only */
    omsd_auth auth;
    omsd_access *access; /* --access-log, or NULL */
    http2_conn_limit *conn_limit;
    http2_send_budget *send_budget;
    http2_tls *tls; /* the workers' shared TLS context, NULL with --h2c */
    bool test_services;
    double grace;
    int signals;
    oms_metrics *metrics; /* NULL without --metrics-listen */
    omsd_admin *admin;
} app;

static void on_closed_noop(uv_handle_t *h)
{
    (void)h;
}

/* Worker side. */
static void worker_detach(worker *w)
{
    if (w->attached) {
        orders_loop_detach(w->app->orders, &w->loop);
        w->attached = false;
    }
    atomic_fetch_add(&w->app->ndrained, 1);
    uv_async_send(&w->app->drained);
}

static void on_calls_check(uv_timer_t *t)
{
    worker *w = t->data;
    if (rpc_server_active_calls(w->rpc) > 0)
        return;
    uv_close((uv_handle_t *)t, on_closed_noop);
    worker_detach(w);
}

/* Every connection is gone, but a call whose connection went while its store
 * write was in flight lives until that write completes (the write holds it),
 * and the loop's store side may close only after that (store_loop_close):
 * wait for the last call. */
static void on_worker_drained(http2_server *srv, void *arg)
{
    (void)srv;
    worker *w = arg;
    if (w->stats_on) {
        uv_close((uv_handle_t *)&w->stats_timer, on_closed_noop);
        w->stats_on = false;
    }
    uv_close((uv_handle_t *)&w->stop, on_closed_noop);
    uv_close((uv_handle_t *)&w->dump, on_closed_noop);
    if (rpc_server_active_calls(w->rpc) == 0) {
        worker_detach(w);
        return;
    }
    uv_timer_init(&w->loop, &w->calls_wait);
    w->calls_wait.data = w;
    uv_timer_start(&w->calls_wait, on_calls_check, 5, 5);
}

static void on_worker_stop(uv_async_t *h)
{
    worker *w = h->data;
    rpc_health_shutdown(w->health);
    if (w->app->orders)
        orders_loop_drain(w->app->orders, &w->loop);
    http2_server_shutdown(w->h2, (uint64_t)(w->app->grace * 1000), on_worker_drained, w);
}

/* SIGUSR1: every connection's streams, then the order-event subscribers. */
static void on_worker_dump(uv_async_t *h)
{
    worker *w = h->data;
    OMS_INFO("state dump: worker %d begin", w->index);
    http2_server_dump(w->h2);
    if (w->app->orders)
        orders_loop_dump(w->app->orders, &w->loop);
    OMS_INFO("state dump: worker %d end", w->index);
}

/* Copies the loop's event-hub statistics where a scrape can read them. */
static void on_stats_timer(uv_timer_t *t)
{
    worker *w = t->data;
    orders_loop_stats st;
    orders_loop_get_stats(w->app->orders, &w->loop, &st);
    uint64_t v[HUB_STATS];
    memcpy(v, &st, sizeof v);
    for (int i = 0; i < HUB_STATS; i++)
        atomic_store_explicit(&w->hub[i], v[i], memory_order_relaxed);
}

static void worker_main(void *arg)
{
    worker *w = arg;
    if (w->stats_on) {
        uv_timer_start(&w->stats_timer, on_stats_timer, 0, 1000);
        uv_unref((uv_handle_t *)&w->stats_timer);
    }
    int rv = http2_server_start(w->h2);
    if (rv != 0) { /* not exit() here: the main loop stops every worker */
        OMS_ERROR("worker %d: cannot start listening: %s", w->index, uv_strerror(rv));
        atomic_store(&w->app->failed, true);
        uv_async_send(&w->app->drained);
    }
    uv_run(&w->loop, UV_RUN_DEFAULT); /* runs the stop that follows a failure */
}

/* Main side. */
static void on_all_drained(uv_async_t *h)
{
    app *a = h->data;
    if (atomic_load(&a->failed) && a->signals == 0) {
        a->signals++; /* as a first signal: a later one exits at once */
        OMS_ERROR("a worker failed to start; stopping");
        for (int i = 0; i < a->nworkers; i++)
            uv_async_send(&a->workers[i].stop);
    }
    if (atomic_load(&a->ndrained) < a->nworkers)
        return;
    OMS_INFO("drained; exiting");
    uv_close((uv_handle_t *)&a->sigint, on_closed_noop);
    uv_close((uv_handle_t *)&a->sigterm, on_closed_noop);
    uv_close((uv_handle_t *)&a->sigusr1, on_closed_noop);
    uv_close((uv_handle_t *)&a->sighup, on_closed_noop);
    uv_close((uv_handle_t *)&a->drained, on_closed_noop);
    omsd_admin_close(a->admin);
    a->admin = NULL;
    /* Closing the handles restored the default actions: a late signal must
     * not turn the clean exit into a kill. */
    signal(SIGINT, SIG_IGN);
    signal(SIGTERM, SIG_IGN);
    signal(SIGUSR1, SIG_IGN);
    signal(SIGHUP, SIG_IGN);
}

/* SIGHUP: re-reads credentials from their files. Each part keeps what it
 * had when its files are bad, and says why. New connections get the new TLS
 * context; open ones keep theirs. Add further reloadable credentials here. */
static void reload_credentials(app *a)
{
    char err[512];
    if (a->tls) {
        if (http2_tls_reload(a->tls, err, sizeof err) == 0)
            OMS_INFO("reload: TLS certificate, key and client CA re-read");
        else
            OMS_ERROR("reload: keeping the previous TLS context: %s", err);
    }
    omsd_auth_reload(&a->auth);
}

static void on_sighup(uv_signal_t *h, int signum)
{
    (void)signum;
    OMS_INFO("SIGHUP: reloading credentials");
    app *a = h->data;
    reload_credentials(a);
    if (a->access)
        omsd_access_reopen(a->access);
}

static void on_sigusr1(uv_signal_t *h, int signum)
{
    (void)signum;
    app *a = h->data;
    for (int i = 0; i < a->nworkers; i++)
        uv_async_send(&a->workers[i].dump);
}

static void on_signal(uv_signal_t *h, int signum)
{
    app *a = h->data;
    if (a->signals++ > 0) {
        OMS_WARN("second signal: exiting now");
        exit(1);
    }
    OMS_INFO("%s: draining (grace %.1fs)", strsignal(signum), a->grace);
    sd_notify(0, "STOPPING=1"); /* systemd (Type=notify); a no-op without NOTIFY_SOCKET */
    for (int i = 0; i < a->nworkers; i++)
        uv_async_send(&a->workers[i].stop);
}

/* Builds worker w's rpc server and listener: the certificate, key and port
 * are checked here, before anything touches the store, so that a start that
 * fails on them leaves nothing behind. Returns 0, or -1 with a message
 * printed. */
static int worker_listen(worker *w, const omsd_options *o, http2_server_config *hcfg)
{
    if (uv_loop_init(&w->loop) != 0)
        return -1;
    w->loop_on = true;
    rpc_server_config rcfg;
    rpc_server_config_init(&rcfg);
    rcfg.max_recv_msg = o->max_recv_msg;
    rcfg.cors_origins = o->cors_origin;
    w->rpc = rpc_server_new(&rcfg);
    w->health = rpc_health_new();
    w->refl = rpc_reflection_new(oms_descriptor_set, oms_descriptor_set_len);
    if (!w->rpc || !w->health || !w->refl) {
        fprintf(stderr, "omsd: cannot set up services (out of memory or bad descriptor set)\n");
        return -1;
    }
    if (o->web)
        omsd_web_attach(w->rpc, o->web_root);
    char err[512];
    hcfg->handler_data = w->rpc;
    if (http2_server_new(&w->loop, hcfg, &w->h2, err, sizeof err) != 0) {
        fprintf(stderr, "omsd: %s\n", err);
        return -1;
    }
    int rv = uv_async_init(&w->loop, &w->stop, on_worker_stop);
    if (rv == 0)
        rv = uv_async_init(&w->loop, &w->dump, on_worker_dump);
    if (rv != 0) {
        fprintf(stderr, "omsd: uv_async_init: %s\n", uv_strerror(rv));
        return -1;
    }
    w->stop.data = w;
    w->dump.data = w;
    return 0;
}

/* Registers the services on worker w's rpc server (after the store opened).
 * Returns 0, or -1 with a message printed. */
static int worker_serve(worker *w, interop_service *interop, orderbench_service *bench)
{
    if ((w->app->test_services &&
         (rpc_server_add_service(w->rpc, interop_test_service(interop)) != 0 ||
          rpc_server_add_service(w->rpc, orderbench_service_impl(bench)) != 0)) ||
        rpc_server_add_service(w->rpc, rpc_health_impl(w->health)) != 0 ||
        rpc_reflection_register(w->rpc, w->refl) != 0 ||
        (w->app->orders && orders_register(w->app->orders, w->rpc) != 0)) {
        fprintf(stderr, "omsd: cannot register services\n");
        return -1;
    }
    char err[512];
    if (w->app->orders && orders_loop_attach(w->app->orders, &w->loop, err, sizeof err) != 0) {
        fprintf(stderr, "omsd: %s\n", err);
        return -1;
    }
    w->attached = w->app->orders != NULL;
    for (size_t i = 0; i < rpc_server_service_count(w->rpc); i++)
        rpc_health_set(w->health, rpc_server_service_name(w->rpc, i), RPC_HEALTH_SERVING);
    return 0;
}

static void worker_dispose(worker *w)
{
    if (w->thread_on)
        uv_thread_join(&w->thread);
    if (w->stats_on) /* never ran: start-up failed */
        uv_close((uv_handle_t *)&w->stats_timer, on_closed_noop);
    /* Never ran (start-up failed, e.g. the store unreachable): nothing closed
     * the wake-ups on_worker_drained closes, and the loop would not close. */
    if (!w->thread_on && w->stop.loop)
        uv_close((uv_handle_t *)&w->stop, on_closed_noop);
    if (!w->thread_on && w->dump.loop)
        uv_close((uv_handle_t *)&w->dump, on_closed_noop);
    http2_server_free(w->h2);
    if (w->attached) /* never ran: start-up failed */
        orders_loop_detach(w->app->orders, &w->loop);
    if (w->loop_on) {
        uv_run(&w->loop, UV_RUN_NOWAIT); /* let close callbacks run */
        uv_loop_close(&w->loop);
    }
    rpc_reflection_free(w->refl);
    rpc_health_free(w->health);
    rpc_server_free(w->rpc);
}

/* orders' on_peer_channel: keeps the channel, whose metrics interceptor is
 * added once the metrics tables are fixed (before any call). */
static void on_peer_channel(void *arg, uv_loop_t *loop, rpc_channel *ch)
{
    app *a = arg;
    for (int i = 0; i < a->nworkers; i++) {
        worker *w = &a->workers[i];
        if (&w->loop == loop && w->npeer_ch < 2)
            w->peer_ch[w->npeer_ch++] = ch;
    }
}

typedef struct method_adder {
    oms_metrics *m;
    const rpc_server *srv;
} method_adder;

/* Every method served, with its type: zero-valued series from the start. */
static void add_server_method(const char *path, void *arg)
{
    method_adder *x = arg;
    oms_metrics_add_server_method(x->m, path, (int)rpc_server_method_type(x->srv, path));
}

static int add_client_service(oms_metrics *m, const ProtobufCServiceDescriptor *d)
{
    char path[256];
    for (unsigned i = 0; i < d->n_methods; i++) {
        snprintf(path, sizeof path, "/%s/%s", d->name, d->methods[i].name);
        if (oms_metrics_add_client_method(m, path) != 0)
            return -1;
    }
    return 0;
}

/* The metrics tables (every method served, every peer method), then each
 * worker's counting interceptors: the server's first in its chain, so that
 * calls rejected by authentication are counted too. */
static int metrics_setup(app *a)
{
    method_adder adder = {a->metrics, a->workers[0].rpc};
    rpc_server_each_method(a->workers[0].rpc, add_server_method, &adder);
    bool peers = false; /* split mode: the grpc_client_* family too */
    for (int i = 0; i < a->nworkers; i++)
        peers = peers || a->workers[i].npeer_ch > 0;
    if (peers && (add_client_service(a->metrics, &oms__v1__customer_service__descriptor) != 0 ||
                  add_client_service(a->metrics, &oms__v1__inventory_service__descriptor) != 0))
        return -1;
    if (oms_metrics_start(a->metrics) != 0)
        return -1;
    for (int i = 0; i < a->nworkers; i++) {
        worker *w = &a->workers[i];
        if (oms_metrics_attach_server(a->metrics, (size_t)i, w->rpc) != 0)
            return -1;
        for (int k = 0; k < w->npeer_ch; k++)
            if (oms_metrics_attach_channel(a->metrics, (size_t)i, w->peer_ch[k]) != 0)
                return -1;
    }
    return 0;
}

/* /readyz: serving until a drain starts, and unless the store's latest
 * transaction failed within the last 30 s. The window keeps a store that
 * failed once and then saw no more writes (a balancer that took the process
 * out sends none) from staying unready for ever. The main loop runs the admin
 * listener, so a->signals is read on its own thread. */
static bool admin_ready(void *arg, char *why, size_t n)
{
    app *a = arg;
    if (a->signals > 0) {
        snprintf(why, n, "draining");
        return false;
    }
    if (a->orders) {
        store_stats st;
        orders_store_stats(a->orders, &st);
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        int64_t now_ms = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
        if (st.last_failed && now_ms - st.last_failure_ms < 30000) {
            snprintf(why, n, "store unavailable (its latest transaction failed)");
            return false;
        }
    }
    return true;
}

/* A scrape's families beyond the gRPC ones (on the main thread: reads the
 * workers' counters with relaxed atomic loads). */
static void admin_collect(void *arg, oms_mtext *t)
{
    app *a = arg;
    http2_server_stats hs[64];
    uint64_t closed_by[64][HTTP2_CLOSE_REASONS];
    http2_http1_stats h1[64];
    orders_loop_stats os[64];
    size_t n = (size_t)a->nworkers;
    for (size_t i = 0; i < n; i++) {
        http2_server_get_stats(a->workers[i].h2, &hs[i]);
        http2_server_get_closed_by(a->workers[i].h2, closed_by[i]);
        http2_server_get_http1_stats(a->workers[i].h2, &h1[i]);
        uint64_t v[HUB_STATS];
        for (int k = 0; k < HUB_STATS; k++)
            v[k] = atomic_load_explicit(&a->workers[i].hub[k], memory_order_relaxed);
        memcpy(&os[i], v, sizeof v);
    }
    omsd_metrics_transport(t, hs, (const uint64_t(*)[HTTP2_CLOSE_REASONS])closed_by, h1, n);
    if (a->orders) {
        store_stats st;
        orders_store_stats(a->orders, &st);
        omsd_metrics_store(t, &st);
        omsd_metrics_events(t, os, n);
    }
}

int main(int argc, char **argv)
{
    omsd_options o;
    omsd_options_init(&o);
    int prc = omsd_parse_args(argc, argv, &o);
    if (prc != 0)
        return prc > 0 ? 0 : 2;
    oms_log_set_level(o.log_level);
    oms_log_set_format(o.log_format);
    if (omsd_authz_load(&o.authz) != 0)
        return 2;
    signal(SIGPIPE, SIG_IGN);

    int rc = 1;
    if (o.bench_only && !o.test_services) {
        fprintf(stderr, "omsd: --bench-only serves OrderBench: not with --test-services off\n");
        return 2;
    }
    app a = {.loop = uv_default_loop(),
             .grace = o.grace,
             .nworkers = (int)o.workers,
             .test_services = o.test_services};
    atomic_init(&a.ndrained, 0);
    atomic_init(&a.failed, false);
    interop_service *interop = interop_service_new();
    orderbench_service *bench = orderbench_service_new();
    a.workers = calloc((size_t)a.nworkers, sizeof *a.workers);
    if (!interop || !bench || !a.workers) {
        fprintf(stderr, "omsd: cannot set up services (out of memory)\n");
        goto out;
    }
    o.auth.policy = o.authz.policy;
    o.auth.client_certs = o.client_ca != NULL;
    if (omsd_auth_open(&a.auth, &o.auth) != 0)
        goto out;
    http2_server_config hcfg;
    http2_server_config_init(&hcfg);
    hcfg.host = o.host;
    hcfg.port = o.port;
    hcfg.tls = !o.h2c;
    hcfg.cert_file = o.cert;
    hcfg.key_file = o.key;
    hcfg.client_ca_file = o.client_ca;
    hcfg.client_auth = o.client_ca ? (http2_client_auth)o.client_auth : HTTP2_CLIENT_AUTH_OFF;
    hcfg.tls_min_version = o.tls_min_version;
    if (!o.h2c) { /* one context for every worker, so that SIGHUP swaps it once */
        char err[512];
        if (!(a.tls = http2_tls_new(&hcfg, err, sizeof err))) {
            fprintf(stderr, "omsd: %s\n", err);
            if (strstr(err, "certificate") || strstr(err, "key"))
                fprintf(stderr, "omsd: create dev certificates with 'make certs' "
                                "(scripts/certs.sh), or pass --tls-cert/--tls-key, or --h2c\n");
            goto out;
        }
        hcfg.tls_ctx = a.tls;
    }
    hcfg.max_concurrent_streams = (uint32_t)o.max_streams;
    hcfg.max_header_list = (uint32_t)o.max_header_list;
    hcfg.handshake_timeout_ms = (uint64_t)(o.handshake_timeout * 1000);
    hcfg.idle_timeout_ms = (uint64_t)(o.conn_idle * 1000);
    hcfg.conn_send_budget = (size_t)o.conn_send_budget;
    hcfg.max_age_ms = (uint64_t)(o.conn_age * 1000);
    hcfg.age_grace_ms = (uint64_t)(o.conn_age_grace * 1000);
    hcfg.keepalive_ms = (uint64_t)(o.keepalive_time * 1000);
    hcfg.keepalive_timeout_ms =
        o.keepalive_timeout > 0 ? (uint64_t)(o.keepalive_timeout * 1000) : 1;
    hcfg.ping_min_interval_ms = (uint64_t)(o.keepalive_min_time * 1000);
    hcfg.ping_without_calls = o.ping_without_calls;
    hcfg.http1 = o.http1;
    hcfg.h1_max_head = (size_t)o.http1_max_head;
    hcfg.h1_max_headers = (size_t)o.http1_max_headers;
    hcfg.h1_max_body = (size_t)o.http1_max_body;
    hcfg.h1_header_timeout_ms = (uint64_t)(o.http1_header_timeout * 1000);
    hcfg.h1_idle_timeout_ms = (uint64_t)(o.http1_idle_timeout * 1000);
    if (!(a.conn_limit = http2_conn_limit_new(connection_cap(o.max_connections)))) {
        fprintf(stderr, "omsd: out of memory\n");
        goto out;
    }
    hcfg.conn_limit = a.conn_limit;
    if (o.send_budget && !(a.send_budget = http2_send_budget_new((size_t)o.send_budget))) {
        fprintf(stderr, "omsd: out of memory\n");
        goto out;
    }
    hcfg.send_budget = a.send_budget;
    hcfg.handler = rpc_server_stream_handler();
    hcfg.reuseport = a.nworkers > 1;
    hcfg.exclusive_port = 1; /* the first worker's listener: nobody else may hold the port */
    for (int i = 0; i < a.nworkers; i++) {
        a.workers[i].app = &a;
        a.workers[i].index = i;
        if (worker_listen(&a.workers[i], &o, &hcfg) != 0)
            goto out;
        hcfg.port = http2_server_port(a.workers[0].h2); /* port 0: the others join it */
        hcfg.exclusive_port = 0;
    }
    /* Only now the store: created or migrated once the listener is sure. */
    if (o.metrics_host[0]) {
        if (!(a.metrics = oms_metrics_new((size_t)a.nworkers))) {
            fprintf(stderr, "omsd: out of memory\n");
            goto out;
        }
        o.orders.on_peer_channel = on_peer_channel;
        o.orders.peer_channel_arg = &a;
    }
    if (!o.bench_only) {
        char err[512];
        if (!(a.orders = orders_open(&o.orders, err, sizeof err))) {
            fprintf(stderr, "omsd: %s\n", err);
            goto out;
        }
    }
    if (o.access_log) {
        char err[512];
        if (!(a.access =
                  omsd_access_open(o.access_log, (size_t)o.access_log_buffer, err, sizeof err))) {
            fprintf(stderr, "omsd: --access-log: %s\n", err);
            goto out;
        }
    }
    for (int i = 0; i < a.nworkers; i++)
        if (worker_serve(&a.workers[i], interop, bench) != 0 ||
            (a.access && omsd_access_attach(a.access, a.workers[i].rpc) != 0))
            goto out;
    if (a.metrics && metrics_setup(&a) != 0) {
        fprintf(stderr, "omsd: cannot set up metrics (out of memory)\n");
        goto out;
    }
    for (int i = 0; a.metrics && a.orders && i < a.nworkers; i++) {
        worker *w = &a.workers[i];
        uv_timer_init(&w->loop, &w->stats_timer);
        w->stats_timer.data = w;
        w->stats_on = true;
    }
    for (int i = 0; i < a.nworkers; i++)
        if (omsd_auth_attach(&a.auth, &o.authz, a.workers[i].rpc) != 0)
            goto out;
    if (a.metrics) {
        char err[512];
        omsd_admin_config ac = {.host = o.metrics_host,
                                .port = o.metrics_port,
                                .metrics = a.metrics,
                                .ready = admin_ready,
                                .collect = admin_collect,
                                .arg = &a};
        if (omsd_admin_open(a.loop, &ac, &a.admin, err, sizeof err) != 0) {
            fprintf(stderr, "omsd: --metrics-listen: %s\n", err);
            goto out;
        }
        /* before the listening line: tests find the port here */
        OMS_INFO("admin: /metrics, /healthz, /readyz on port %d", omsd_admin_port(a.admin));
    }
    omsd_authz_log_uncovered(&o.authz, a.workers[0].rpc);

    int sv = uv_signal_init(a.loop, &a.sigint);
    if (sv == 0)
        sv = uv_signal_init(a.loop, &a.sigterm);
    if (sv == 0)
        sv = uv_signal_init(a.loop, &a.sigusr1);
    if (sv == 0)
        sv = uv_signal_init(a.loop, &a.sighup);
    if (sv == 0)
        sv = uv_async_init(a.loop, &a.drained, on_all_drained);
    a.sigint.data = a.sigterm.data = a.sigusr1.data = a.sighup.data = a.drained.data = &a;
    if (sv == 0)
        sv = uv_signal_start(&a.sigint, on_signal, SIGINT);
    if (sv == 0)
        sv = uv_signal_start(&a.sigterm, on_signal, SIGTERM);
    if (sv == 0)
        sv = uv_signal_start(&a.sigusr1, on_sigusr1, SIGUSR1);
    if (sv == 0)
        sv = uv_signal_start(&a.sighup, on_sighup, SIGHUP);
    if (sv != 0) {
        fprintf(stderr, "omsd: signal handling: %s\n", uv_strerror(sv));
        goto out;
    }

    for (int i = 0; i < a.nworkers; i++) {
        worker *w = &a.workers[i];
        if (uv_thread_create(&w->thread, worker_main, w) != 0) {
            fprintf(stderr, "omsd: cannot start worker threads\n");
            exit(1);
        }
        w->thread_on = true;
    }

    int port = http2_server_port(a.workers[0].h2);
    if (strchr(o.host, ':'))
        printf("listening on [%s]:%d (%s)\n", o.host, port, o.h2c ? "h2c" : "tls");
    else
        printf("listening on %s:%d (%s)\n", o.host, port, o.h2c ? "h2c" : "tls");
    fflush(stdout);
    if (a.admin) {
        if (strchr(o.metrics_host, ':'))
            printf("metrics on [%s]:%d\n", o.metrics_host, omsd_admin_port(a.admin));
        else
            printf("metrics on %s:%d\n", o.metrics_host, omsd_admin_port(a.admin));
        fflush(stdout);
    }
    sd_notify(0, "READY=1"); /* every listener is up: systemd (Type=notify) may go on */
    if (a.nworkers > 1)
        OMS_INFO("%d workers", a.nworkers);

    uv_run(a.loop, UV_RUN_DEFAULT);
    rc = atomic_load(&a.failed) ? 1 : 0;

out:
    for (int i = 0; a.workers && i < a.nworkers; i++)
        worker_dispose(&a.workers[i]);
    free(a.workers);
    omsd_access_close(a.access); /* the servers are gone: write what is left */
    if (a.admin) {               /* start-up failed after the admin listener opened */
        omsd_admin_close(a.admin);
        uv_run(a.loop, UV_RUN_NOWAIT);
    }
    oms_metrics_free(a.metrics);
    http2_conn_limit_free(a.conn_limit);
    http2_send_budget_free(a.send_budget);
    http2_tls_free(a.tls);
    orders_close(a.orders);
    omsd_auth_close(&a.auth);
    free((char *)o.orders.peer_token);
    uv_loop_close(a.loop);
    orderbench_service_free(bench);
    interop_service_free(interop);
    omsd_authz_dispose(&o.authz);
    return rc;
}
