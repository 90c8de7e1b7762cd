/* omsd_flags.c - omsd's option table, its handlers and the checks across
 * options (omsd_flags.h). */
#include "omsd/omsd_flags.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <uv.h>

#include "base/cli.h"
#include "base/cli_token.h"
#include "http2/http2.h"

void omsd_options_init(omsd_options *o)
{
    *o = (omsd_options){
        .host = "127.0.0.1",
        .port = 50051,
        .cert = "certs/server.pem",
        .key = "certs/server.key",
        .client_auth = -1,
        .tls_min_version = 12,
        .test_services = true,
        .web = true,
        .max_recv_msg = 4u << 20,
        .max_streams = 1000,
        .max_header_list = 16u << 10,
        .grace = 10,
        .handshake_timeout = 10,
        .conn_idle = 300,
        .conn_send_budget = 16u << 20,
        .send_budget = 256u << 20,
        .http1 = true,
        .http1_max_head = 16u << 10,
        .http1_max_headers = 100,
        .http1_max_body = 8u << 20,
        .http1_header_timeout = 10,
        .http1_idle_timeout = 60,
        .keepalive_time = 7200,
        .keepalive_timeout = 20,
        .keepalive_min_time = 300,
        .log_level = OMS_LOG_INFO,
        .auth = {.jwt_leeway = -1},
    };
    unsigned cores = uv_available_parallelism();
    o->workers = cores < 1 ? 1 : cores > 64 ? 64 : cores;
    orders_config_init(&o->orders);
    o->orphan_sweep_ms = (uint64_t)o->orders.orphan_sweep_ms;
    if (access("certs/ca.pem", R_OK) == 0)
        o->orders.peer_ca_file = "certs/ca.pem";
}

/* HOST:PORT or [V6]:PORT, port 0 allowed; "localhost" listens on
 * 127.0.0.1. */
static int listen_addr(const char *s, char *host, size_t hsz, int *port)
{
    if (oms_cli_hostport(s, OMS_CLI_PORT0, host, hsz, port) != 0)
        return -1;
    if (strcmp(host, "localhost") == 0)
        snprintf(host, hsz, "127.0.0.1");
    return 0;
}

static int on_listen(const oms_cli_opt *opt, const char *arg, void *ctx)
{
    (void)opt;
    omsd_options *o = ctx;
    return listen_addr(arg, o->host, sizeof o->host, &o->port);
}

static int on_metrics_listen(const oms_cli_opt *opt, const char *arg, void *ctx)
{
    (void)opt;
    omsd_options *o = ctx;
    return listen_addr(arg, o->metrics_host, sizeof o->metrics_host, &o->metrics_port);
}

/* One of two words: 0 for the first, 1 for the second, -1 otherwise. */
static int which(const char *arg, const char *a, const char *b)
{
    return strcmp(arg, a) == 0 ? 0 : strcmp(arg, b) == 0 ? 1 : -1;
}

static int on_client_auth(const oms_cli_opt *opt, const char *arg, void *ctx)
{
    (void)opt;
    omsd_options *o = ctx;
    int w = which(arg, "require", "optional");
    if (w < 0)
        return -1;
    o->client_auth = w == 0 ? HTTP2_CLIENT_AUTH_REQUIRE : HTTP2_CLIENT_AUTH_OPTIONAL;
    return 0;
}

static int on_tls_min(const oms_cli_opt *opt, const char *arg, void *ctx)
{
    (void)opt;
    omsd_options *o = ctx;
    int w = which(arg, "1.2", "1.3");
    if (w < 0)
        return -1;
    o->tls_min_version = w == 0 ? 12 : 13;
    return 0;
}

/* "on" or "off" into *dest. */
static int on_off(const char *arg, bool *dest)
{
    int w = which(arg, "on", "off");
    if (w < 0)
        return -1;
    *dest = w == 0;
    return 0;
}

static int on_test_services(const oms_cli_opt *opt, const char *arg, void *ctx)
{
    (void)opt;
    return on_off(arg, &((omsd_options *)ctx)->test_services);
}

static int on_http1(const oms_cli_opt *opt, const char *arg, void *ctx)
{
    (void)opt;
    return on_off(arg, &((omsd_options *)ctx)->http1);
}

static int on_web(const oms_cli_opt *opt, const char *arg, void *ctx)
{
    (void)opt;
    return on_off(arg, &((omsd_options *)ctx)->web);
}

static int on_jwt_leeway(const oms_cli_opt *opt, const char *arg, void *ctx)
{
    (void)opt;
    uint64_t v;
    if (oms_cli_u64(arg, 0, 86400, &v) != 0)
        return -1;
    ((omsd_options *)ctx)->auth.jwt_leeway = (int)v;
    return 0;
}

static int on_peer_timeout(const oms_cli_opt *opt, const char *arg, void *ctx)
{
    (void)opt;
    double g;
    if (oms_cli_double(arg, 0, 86400, &g) != 0)
        return -1;
    ((omsd_options *)ctx)->orders.peer_timeout_ms = g > 0 ? (uint64_t)(g * 1000) : 1;
    return 0;
}

/* sqlite:PATH, or a PostgreSQL URL (any libpq URL; its password is never
 * echoed: a valid URL is not printed, only a rejected value is). */
static int on_store(const oms_cli_opt *opt, const char *arg, void *ctx)
{
    (void)opt;
    bool pg = strncmp(arg, "postgres://", 11) == 0 || strncmp(arg, "postgresql://", 13) == 0;
    if (!pg && (strncmp(arg, "sqlite:", 7) != 0 || !arg[7]))
        return -1;
    ((omsd_options *)ctx)->orders.store_url = arg;
    return 0;
}

/* "all" or a comma-separated subset of customers,inventory,orders. */
static int on_services(const oms_cli_opt *opt, const char *s, void *ctx)
{
    (void)opt;
    static const struct {
        const char *name;
        unsigned bit;
    } names[] = {{"all", ORDERS_SVC_ALL},
                 {"customers", ORDERS_SVC_CUSTOMERS},
                 {"inventory", ORDERS_SVC_INVENTORY},
                 {"orders", ORDERS_SVC_ORDERS}};
    unsigned mask = 0;
    while (*s) {
        size_t n = strcspn(s, ",");
        size_t i;
        for (i = 0; i < sizeof names / sizeof names[0]; i++)
            if (strlen(names[i].name) == n && strncmp(s, names[i].name, n) == 0)
                break;
        if (i == sizeof names / sizeof names[0])
            return -1;
        mask |= names[i].bit;
        s += n;
        if (*s == ',' && *++s == '\0')
            return -1;
    }
    if (!mask)
        return -1;
    ((omsd_options *)ctx)->orders.services = mask;
    return 0;
}

/* --inventory-target, --customers-target: checked at start, used by the
 * order service's channels. */
static int targets_ok(const oms_cli_opt *opt, const char *arg, void *ctx)
{
    (void)opt;
    (void)ctx;
    return oms_cli_targets(arg) < 0 ? -1 : 0;
}

static int on_retention(const oms_cli_opt *opt, const char *arg, void *ctx)
{
    (void)opt;
    uint64_t ms;
    /* a bare number is seconds; 0 keeps keys forever */
    if (oms_cli_duration_ms(arg, 1000, 0, 3650 * 86400000ull, &ms) != 0)
        return -1;
    ((omsd_options *)ctx)->orders.idempotency_retention_ms = (int64_t)ms;
    return 0;
}

static int on_log_level(const oms_cli_opt *opt, const char *arg, void *ctx)
{
    (void)opt;
    return oms_log_parse_level(arg, &((omsd_options *)ctx)->log_level) == 0 ? 0 : -1;
}

static int on_log_format(const oms_cli_opt *opt, const char *arg, void *ctx)
{
    (void)opt;
    return oms_log_parse_format(arg, &((omsd_options *)ctx)->log_format) == 0 ? 0 : -1;
}

static int on_access_log(const oms_cli_opt *opt, const char *arg, void *ctx)
{
    (void)opt;
    if (!*arg) {
        fprintf(stderr, "omsd: --access-log wants a file or -\n");
        return -2;
    }
    ((omsd_options *)ctx)->access_log = arg;
    return 0;
}

static const char usage[] =
    "usage: omsd [options]\n"
    "\n"
    "The oms gRPC server: the order system (oms.v1.CustomerService,\n"
    "InventoryService, OrderService), grpc.testing.TestService,\n"
    "oms.bench.v1.OrderBench, grpc.health.v1.Health and server reflection.\n"
    "Sizes (BYTES) take a K, M or G suffix (1024-based: 4M = 4194304).\n"
    "\n";

static const char epilog[] =
    "\n"
    "When ready, omsd prints one line to stdout: listening on HOST:PORT (tls|h2c)\n";

#define SECONDS(flag, field, text)                                                                 \
    {                                                                                              \
        .name = flag, .type = OMS_CLI_DOUBLE, .arg = "SECONDS", .dest = &o->field, .fmax = 86400,  \
        .want = "0..86400 seconds", .help = text                                                   \
    }

/* Checks across options, once all are read. */
static int check(omsd_options *o)
{
    if (o->peer_h2c)
        o->orders.peer_tls = false;
    if (o->no_demo_data)
        o->orders.demo_data = false;
    if (o->event_ring)
        o->orders.event_ring = (size_t)o->event_ring;
    if (o->import_max_rows)
        o->orders.max_import_rows = (size_t)o->import_max_rows;
    o->orders.event_poll_ms = (int64_t)o->event_poll_ms;
    o->orders.orphan_sweep_ms = (int64_t)o->orphan_sweep_ms;
    if (o->client_auth >= 0 && !o->client_ca) {
        fprintf(stderr, "omsd: --client-auth needs --client-ca FILE (the CA that signs the "
                        "client certificates)\n");
        return -1;
    }
    if (o->client_ca && o->client_auth < 0)
        o->client_auth = HTTP2_CLIENT_AUTH_REQUIRE;
    if (o->client_ca && o->h2c) {
        fprintf(stderr, "omsd: --client-ca needs TLS (not --h2c)\n");
        return -1;
    }
    if (!o->orders.peer_cert_file != !o->orders.peer_key_file) {
        fprintf(stderr, "omsd: --peer-cert and --peer-key go together\n");
        return -1;
    }
    if (o->peer_token_file) {
        char *tok, err[256];
        if (oms_cli_token(NULL, o->peer_token_file, &tok, err, sizeof err) != 0) {
            fprintf(stderr, "omsd: --peer-token-file: %s\n", err);
            return -1;
        }
        o->orders.peer_token = tok; /* freed at the end of main */
    }
    return 0;
}

int omsd_parse_args(int argc, char **argv, omsd_options *o)
{
    const oms_cli_opt opts[] = {
        {.name = "listen",
         .type = OMS_CLI_CALL,
         .arg = "HOST:PORT",
         .fn = on_listen,
         .want = "HOST:PORT or [IPV6]:PORT",
         .help = "address to listen on (default 127.0.0.1:50051;\n"
                 "IPv6 as [::1]:50051; port 0 picks a free port)"},
        {.name = "h2c",
         .type = OMS_CLI_FLAG,
         .dest = &o->h2c,
         .help = "serve cleartext HTTP/2 (prior knowledge) instead of TLS"},
        {.name = "tls-cert",
         .type = OMS_CLI_STRING,
         .arg = "FILE",
         .dest = &o->cert,
         .help = "server certificate chain, PEM (default certs/server.pem)"},
        {.name = "tls-key",
         .type = OMS_CLI_STRING,
         .arg = "FILE",
         .dest = &o->key,
         .help = "server private key, PEM (default certs/server.key)"},
        {.name = "client-ca",
         .type = OMS_CLI_STRING,
         .arg = "FILE",
         .dest = &o->client_ca,
         .help = "CA (PEM) for client certificates (mTLS); alone it\n"
                 "means --client-auth require"},
        {.name = "client-auth",
         .type = OMS_CLI_CALL,
         .arg = "MODE",
         .fn = on_client_auth,
         .want = "require or optional",
         .help = "require or optional: whether a client without a\n"
                 "certificate fails the handshake (needs --client-ca)"},
        {.name = "tls-min-version",
         .type = OMS_CLI_CALL,
         .arg = "V",
         .fn = on_tls_min,
         .want = "1.2 or 1.3",
         .help = "1.2 (default) or 1.3\n"
                 "SIGHUP re-reads the certificate, key and client CA\n"
                 "for new connections (open ones are kept)"},
        {.name = "test-services",
         .type = OMS_CLI_CALL,
         .arg = "on|off",
         .fn = on_test_services,
         .want = "on or off",
         .help = "serve grpc.testing.TestService and\n"
                 "oms.bench.v1.OrderBench (default on; turn off in\n"
                 "production)"},
        {.name = "cors-origin",
         .type = OMS_CLI_STRING,
         .arg = "LIST",
         .dest = &o->cors_origin,
         .help = "browser origins that may call gRPC-Web and\n"
                 "Connect across origins, comma separated\n"
                 "(\"https://app.example\"; \"*\" for any, in\n"
                 "development; default none)"},
        {.name = "web",
         .type = OMS_CLI_CALL,
         .arg = "on|off",
         .fn = on_web,
         .want = "on or off",
         .help = "serve the live order page at / (GET and HEAD of\n"
                 "paths that are no method; default on)"},
        {.name = "web-root",
         .type = OMS_CLI_STRING,
         .arg = "DIR",
         .dest = &o->web_root,
         .help = "read the page's files from DIR on every request\n"
                 "(developing the page) instead of the copy built in"},
        {.name = "max-recv-msg",
         .type = OMS_CLI_SIZE,
         .arg = "BYTES",
         .dest = &o->max_recv_msg,
         .min = 1,
         .max = INT32_MAX,
         .help = "largest request message accepted, after\n"
                 "decompression (default 4194304 = 4M); larger ones get\n"
                 "RESOURCE_EXHAUSTED"},
        {.name = "max-streams",
         .type = OMS_CLI_U64,
         .arg = "N",
         .dest = &o->max_streams,
         .min = 1,
         .max = INT32_MAX,
         .help = "SETTINGS_MAX_CONCURRENT_STREAMS per connection\n"
                 "(default 1000)"},
        {.name = "max-header-list",
         .type = OMS_CLI_SIZE,
         .arg = "BYTES",
         .dest = &o->max_header_list,
         .min = 1024,
         .max = 16u << 20,
         .help = "largest request header block (default 16K);\n"
                 "larger ones get RESOURCE_EXHAUSTED"},
        SECONDS("handshake-timeout", handshake_timeout,
                "close connections that have not finished the\n"
                "TLS handshake and sent the HTTP/2 preface by then\n"
                "(default 10; 0 = never)"),
        {.name = "http1",
         .type = OMS_CLI_CALL,
         .arg = "on|off",
         .fn = on_http1,
         .want = "on or off",
         .help = "HTTP/1.1 beside HTTP/2 on the same port (default on):\n"
                 "TLS offers ALPN h2 and http/1.1, cleartext tells the\n"
                 "HTTP/2 preface from a request line; gRPC proper still\n"
                 "needs HTTP/2 (HTTP 505 over HTTP/1.1)"},
        {.name = "http1-max-head",
         .type = OMS_CLI_SIZE,
         .arg = "BYTES",
         .dest = &o->http1_max_head,
         .min = 256,
         .max = 1u << 20,
         .help = "HTTP/1.1 request target and header fields, at most\n"
                 "(default 16K); larger heads get 431"},
        {.name = "http1-max-headers",
         .type = OMS_CLI_U64,
         .arg = "N",
         .dest = &o->http1_max_headers,
         .min = 1,
         .max = 10000,
         .help = "HTTP/1.1 header fields per request (default 100);\n"
                 "more get 431"},
        {.name = "http1-max-body",
         .type = OMS_CLI_SIZE,
         .arg = "BYTES",
         .dest = &o->http1_max_body,
         .max = 1ull << 40,
         .help = "HTTP/1.1 request body: a Content-Length over it gets\n"
                 "413; a chunked body is paced by flow control instead\n"
                 "(default 8M; 0 = no limit)"},
        SECONDS("http1-header-timeout", http1_header_timeout,
                "an HTTP/1.1 request head must arrive whole within\n"
                "this of its first byte, else 408 and close (slowloris;\n"
                "default 10; 0 = never)"),
        SECONDS("http1-idle-timeout", http1_idle_timeout,
                "close an HTTP/1.1 keep-alive connection idle that\n"
                "long between requests (default 60; 0 = never)"),
        {.name = "conn-send-budget",
         .type = OMS_CLI_SIZE,
         .arg = "BYTES",
         .dest = &o->conn_send_budget,
         .max = 1ull << 40,
         .help = "response bytes one connection may have queued for\n"
                 "a peer that does not read; past it, handlers are\n"
                 "paused and new calls wait (default 16M; 0 = no\n"
                 "limit)"},
        {.name = "send-budget",
         .type = OMS_CLI_SIZE,
         .arg = "BYTES",
         .dest = &o->send_budget,
         .max = 1ull << 44,
         .help = "response bytes all connections together may have\n"
                 "queued; past it, connections holding more than one\n"
                 "stream's buffer wait as if over their own budget\n"
                 "(default 256M; 0 = no limit)"},
        {.name = "max-connections",
         .type = OMS_CLI_U64,
         .arg = "N",
         .dest = &o->max_connections,
         .min = 1,
         .max = 10000000,
         .help = "connections open at once, all workers together;\n"
                 "over it a new one is closed at once (default: the\n"
                 "descriptor limit, raised to its hard maximum, less 256)"},
        SECONDS("max-connection-idle", conn_idle,
                "GOAWAY to a connection without a call for\n"
                "that long (default 300; 0 = never)"),
        SECONDS("max-connection-age", conn_age,
                "GOAWAY to a connection that old; its calls\n"
                "finish (default 0 = never)"),
        SECONDS("max-connection-age-grace", conn_age_grace,
                "then close it that much later (default\n"
                "0 = never)"),
        SECONDS("keepalive-time", keepalive_time, "PING a peer silent that long (default 7200)"),
        SECONDS("keepalive-timeout", keepalive_timeout,
                "close it if the PING is not answered within\n"
                "(default 20)"),
        SECONDS("keepalive-min-time", keepalive_min_time,
                "client PINGs closer than this while calls\n"
                "are open are strikes (with none open, any PING\n"
                "within 2 h), unless the server sent data in\n"
                "between; the third closes the connection with\n"
                "GOAWAY ENHANCE_YOUR_CALM \"too_many_pings\" (grpc-go's\n"
                "policy; default 300; 0 = no limit)"),
        {.name = "keepalive-permit-without-calls",
         .type = OMS_CLI_FLAG,
         .dest = &o->ping_without_calls,
         .help = "let clients PING (every\n"
                 "--keepalive-min-time) with no call open"},
        SECONDS("grace", grace,
                "on SIGINT/SIGTERM, how long in-flight calls may run\n"
                "before connections are closed (default 10);\n"
                "SIGUSR1 logs every stream's and order-event\n"
                "subscriber's flow-control state (\"state dump:\")"),
        {.name = "workers",
         .type = OMS_CLI_U64,
         .arg = "N",
         .dest = &o->workers,
         .min = 1,
         .max = 64,
         .help = "event loops, one thread and one SO_REUSEPORT listener\n"
                 "each (default: the number of cores)"},
        {.type = OMS_CLI_SECTION, .help = "\nOrder system:"},
        {.name = "store",
         .type = OMS_CLI_CALL,
         .arg = "URL",
         .fn = on_store,
         .want = "sqlite:PATH or postgres://...",
         .help = "sqlite:PATH (default sqlite:./oms.db), or a PostgreSQL\n"
                 "URL postgres://USER@HOST:PORT/DB?... (libpq; password\n"
                 "from the URL, PGPASSWORD or PGPASSFILE)"},
        {.name = "services",
         .type = OMS_CLI_CALL,
         .arg = "LIST",
         .fn = on_services,
         .want = "all or a list of customers,inventory,orders",
         .help = "which of customers,inventory,orders to host, comma-\n"
                 "separated, or all (default all)"},
        {.name = "inventory-target",
         .type = OMS_CLI_STRING,
         .arg = "ADDR",
         .dest = &o->orders.inventory_target,
         .fn = targets_ok,
         .want = "HOST:PORT[,HOST:PORT...]",
         .help = "where the order service calls InventoryService when\n"
                 "this process does not host it (host:port[,host:port])"},
        {.name = "customers-target",
         .type = OMS_CLI_STRING,
         .arg = "ADDR",
         .dest = &o->orders.customers_target,
         .fn = targets_ok,
         .want = "HOST:PORT[,HOST:PORT...]",
         .help = "the same for CustomerService"},
        {.name = "peer-ca",
         .type = OMS_CLI_STRING,
         .arg = "FILE",
         .dest = &o->orders.peer_ca_file,
         .help = "CA for those peers (default certs/ca.pem if present)"},
        {.name = "peer-cert",
         .type = OMS_CLI_STRING,
         .arg = "FILE",
         .dest = &o->orders.peer_cert_file,
         .help = "client certificate for calls to those peers (mTLS)"},
        {.name = "peer-key",
         .type = OMS_CLI_STRING,
         .arg = "FILE",
         .dest = &o->orders.peer_key_file,
         .help = "its private key (both or neither)"},
        {.name = "peer-token-file",
         .type = OMS_CLI_STRING,
         .arg = "FILE",
         .dest = &o->peer_token_file,
         .help = "bearer token the order service sends those peers\n"
                 "(a service token; read at start)"},
        {.name = "peer-server-name",
         .type = OMS_CLI_STRING,
         .arg = "NAME",
         .dest = &o->orders.peer_server_name,
         .help = "TLS name the peers' certificates must carry\n"
                 "(default: the target's host)"},
        {.name = "peer-h2c",
         .type = OMS_CLI_FLAG,
         .dest = &o->peer_h2c,
         .help = "call the peers over cleartext HTTP/2"},
        {.name = "peer-timeout",
         .type = OMS_CLI_CALL,
         .arg = "SECONDS",
         .fn = on_peer_timeout,
         .want = "0..86400 seconds",
         .help = "deadline of a peer call when the incoming call has\n"
                 "none or a longer one (default 5)"},
        {.name = "event-ring",
         .type = OMS_CLI_U64,
         .arg = "N",
         .dest = &o->event_ring,
         .min = 16,
         .max = 1u << 24,
         .help = "order events each loop keeps for live subscribers;\n"
                 "slower ones catch up from the store (default 65536)"},
        {.name = "event-poll-ms",
         .type = OMS_CLI_U64,
         .arg = "N",
         .dest = &o->event_poll_ms,
         .min = 1,
         .max = 3600000,
         .help = "PostgreSQL: read other instances' events every N ms\n"
                 "instead of LISTEN/NOTIFY wake-ups (for engines\n"
                 "without NOTIFY; default: LISTEN/NOTIFY)"},
        {.name = "orphan-sweep-ms",
         .type = OMS_CLI_U64,
         .arg = "N",
         .dest = &o->orphan_sweep_ms,
         .max = 3600000,
         .help = "PostgreSQL: every N ms release the Reserve holds of\n"
                 "instances that are gone (their run lock is free);\n"
                 "0 = only at start (default 5000; the same on every\n"
                 "instance)"},
        {.name = "import-max-rows",
         .type = OMS_CLI_U64,
         .arg = "N",
         .dest = &o->import_max_rows,
         .min = 1,
         .max = 100000000,
         .help = "rows one ImportOrders call processes; later rows are\n"
                 "counted as skipped in its summary (default 100000)"},
        {.name = "idempotency-retention",
         .type = OMS_CLI_CALL,
         .arg = "DURATION",
         .fn = on_retention,
         .want = "N[s|m|h|d] up to 3650d",
         .help = "how long an idempotency key answers a\n"
                 "repeat with its first order (N[s|m|h|d]; default\n"
                 "24h; 0 = forever); older keys are forgotten"},
        {.name = "no-demo-data",
         .type = OMS_CLI_FLAG,
         .dest = &o->no_demo_data,
         .help = "do not seed an empty store with the demo catalog"},
        {.name = "bench-only",
         .type = OMS_CLI_FLAG,
         .dest = &o->bench_only,
         .help = "serve OrderBench (and health, reflection) only"},
        {.type = OMS_CLI_SECTION,
         .help = "Authentication and authorization (on with --jwt-keys, --jwt-secret-file or\n"
                 "--client-ca; otherwise every call is allowed, with a warning at start):"},
        {.name = "jwt-keys",
         .type = OMS_CLI_STRING,
         .arg = "FILE",
         .dest = &o->auth.jwt_keys,
         .help = "bearer tokens signed with these public keys (PEM\n"
                 "keys or certificates, or a JWKS file; RS256, ES256,\n"
                 "EdDSA)"},
        {.name = "jwt-secret-file",
         .type = OMS_CLI_STRING,
         .arg = "FILE",
         .dest = &o->auth.jwt_secret_file,
         .help = "bearer tokens signed HS256 with this secret (>= 32\n"
                 "bytes)"},
        {.name = "jwt-issuer",
         .type = OMS_CLI_STRING,
         .arg = "ISS",
         .dest = &o->auth.jwt_issuer,
         .help = "tokens must carry this \"iss\""},
        {.name = "jwt-audience",
         .type = OMS_CLI_STRING,
         .arg = "AUD",
         .dest = &o->auth.jwt_audience,
         .help = "tokens' \"aud\" must contain this"},
        {.name = "jwt-leeway",
         .type = OMS_CLI_CALL,
         .arg = "SECONDS",
         .fn = on_jwt_leeway,
         .want = "0..86400 seconds",
         .help = "clock skew allowed on exp/nbf/iat (default 30)"},
        {.type = OMS_CLI_SECTION,
         .help = "  SIGHUP reloads the keys and certificates; a bad file keeps the old ones."},
        {.name = "authz-policy",
         .type = OMS_CLI_STRING,
         .arg = "FILE",
         .dest = &o->authz.policy_file,
         .help = "the authorization policy (method scopes, mTLS principals'\n"
                 "scopes) replacing the built-in one; format in\n"
                 "docs/AUTHZ-POLICY.md: 'method /pkg.Svc/Method SCOPE...',\n"
                 "'method /pkg.Svc/* SCOPE...', 'public /pkg.Svc/*',\n"
                 "'principal NAME SCOPE...', 'imply SCOPE SCOPE...', #\n"
                 "comments. Checked at start (an error exits 2 naming\n"
                 "FILE:LINE); enforced while authentication is on"},
        {.name = "reflection-auth",
         .type = OMS_CLI_FLAG,
         .dest = &o->authz.reflection_auth,
         .help = "server reflection needs the scope 'reflection' (default:\n"
                 "public, like grpc.health.v1)"},
        {.name = "metrics-listen",
         .type = OMS_CLI_CALL,
         .arg = "HOST:PORT",
         .fn = on_metrics_listen,
         .want = "HOST:PORT or [IPV6]:PORT",
         .help = "serve GET /metrics (Prometheus), /healthz and\n"
                 "/readyz (503 while draining) over HTTP/1.1 there\n"
                 "(default off)"},
        {.name = "log-level",
         .type = OMS_CLI_CALL,
         .arg = "LEVEL",
         .fn = on_log_level,
         .want = "debug, info, warn, error or off",
         .help = "debug, info, warn, error or off (default info)"},
        {.name = "log-format",
         .type = OMS_CLI_CALL,
         .arg = "FORMAT",
         .fn = on_log_format,
         .want = "text or json",
         .help = "text (default) or json: the server log on stderr,\n"
                 "one line each with time, level and component"},
        {.name = "access-log",
         .type = OMS_CLI_CALL,
         .arg = "PATH|-",
         .fn = on_access_log,
         .help = "one JSON line per finished call (peer, principal,\n"
                 "method, status, duration, messages and bytes, trace\n"
                 "id) appended to PATH, or stdout for -; SIGHUP reopens\n"
                 "it (logrotate); lines are dropped, never waited for,\n"
                 "when the disk falls behind"},
        {.name = "access-log-buffer",
         .type = OMS_CLI_SIZE,
         .arg = "BYTES",
         .dest = &o->access_log_buffer,
         .min = 8192,
         .max = 1ull << 30,
         .help = "access-log lines held for the writer (default\n"
                 "4M; past it lines are dropped and counted)"},
    };
    const oms_cli_spec spec = {
        .prog = "omsd",
        .usage = usage,
        .epilog = epilog,
        .opts = opts,
        .nopts = sizeof opts / sizeof opts[0],
    };
    int rc = oms_cli_parse(&spec, argc, argv, o, NULL);
    if (rc != 0)
        return rc;
    return check(o);
}
