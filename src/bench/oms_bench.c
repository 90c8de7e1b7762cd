/* oms-bench - a load generator for gRPC servers of bench.proto, on oms's own
 * client library: flags, target resolution, the run, the reports.
 *
 * Single-threaded: the whole load runs on one libuv loop.
 */
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <netdb.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <uv.h>

#include "base/cli.h"
#include "base/cli_token.h"
#include "base/log.h"
#include "bench/bench.h"

#define MAX_PAYLOAD (16u << 20)

static const char usage[] =
    "usage: oms-bench --target HOST:PORT [options]\n"
    "\n"
    "Drives load at a gRPC server implementing oms.bench.v1.OrderBench\n"
    "(bench.proto), and grpc.testing.TestService for client streaming, and reports\n"
    "throughput and latency percentiles. Everything runs on one thread.\n"
    "\n";

static const char epilog[] =
    "\n"
    "While running, a progress line goes to stderr every second when it is a\n"
    "terminal; the summary goes to stdout. Errors are counted by status code.\n"
    "Exit status: 0 when the run completed (RPC errors are reported, not fatal),\n"
    "1 if the target could not be reached or no operation succeeded (or, for\n"
    "order-watch, an event was missing or duplicated), 2 on bad usage.\n";

/* UNSET: a count flag not given (its default depends on --call). */
#define UNSET UINT64_MAX

typedef struct options {
    bench_config cfg;
    const char *json;
    /* the integer flags as read, copied into cfg by check() */
    uint64_t connections, concurrency, payload, messages, quantity, stock;
    char host[256];
    char port[8];
    char producer_host[256]; /* --producer-target, or "" */
    char producer_port[8];
    const char *token, *token_file; /* --token, --token-file */
} options;

/* HOST:PORT into host[256] and port[8]; -1 on a malformed one. */
static int split_target(const char *arg, char host[256], char port[8])
{
    int p;
    if (oms_cli_hostport(arg, 0, host, 256, &p) != 0)
        return -1;
    snprintf(port, 8, "%d", p);
    return 0;
}

static int on_target(const oms_cli_opt *opt, const char *arg, void *ctx)
{
    (void)opt;
    options *o = ctx;
    o->cfg.target = arg;
    return split_target(arg, o->host, o->port);
}

static int on_producer_target(const oms_cli_opt *opt, const char *arg, void *ctx)
{
    (void)opt;
    options *o = ctx;
    return split_target(arg, o->producer_host, o->producer_port);
}

static int on_call(const oms_cli_opt *opt, const char *arg, void *ctx)
{
    (void)opt;
    return bench_call_parse(arg, &((options *)ctx)->cfg.call) == 0 ? 0 : -1;
}

/* --server-name, --customer, --sku: any text but the empty string. */
static int nonempty(const oms_cli_opt *opt, const char *arg, void *ctx)
{
    (void)opt;
    (void)ctx;
    return *arg ? 0 : -1;
}

/* The checks across flags and the defaults that depend on --call. */
static int check(options *o)
{
    bench_config *c = &o->cfg;
    if (!c->target) {
        fprintf(stderr, "oms-bench: --target HOST:PORT is required (see --help)\n");
        return -1;
    }
    if (c->h2c && (c->ca_file || c->cert_file || c->key_file)) {
        fprintf(stderr, "oms-bench: --ca, --cert and --key are for TLS; they make no sense with "
                        "--h2c\n");
        return -1;
    }
    if (!c->cert_file != !c->key_file) {
        fprintf(stderr, "oms-bench: --cert and --key go together\n");
        return -1;
    }
    c->connections = (unsigned)o->connections;
    c->payload = (size_t)o->payload;
    c->quantity = (int64_t)o->quantity;
    if (o->stock != UNSET)
        c->stock = o->stock ? (int64_t)o->stock : -1; /* 0: leave it alone */
    if (o->concurrency != UNSET)
        c->concurrency = (unsigned)o->concurrency;
    if (c->count && (c->rate > 0 || c->call == BENCH_ORDER_WATCH)) {
        fprintf(stderr, "oms-bench: --count is for closed-loop runs (no --rate, not "
                        "order-watch)\n");
        return -1;
    }
    if (o->producer_host[0] && c->call != BENCH_ORDER_WATCH) {
        fprintf(stderr, "oms-bench: --producer-target is for --call order-watch\n");
        return -1;
    }
    if (c->call == BENCH_ORDER_WATCH) {
        if (c->rate < 0)
            c->rate = 200;
        if (o->concurrency == UNSET)
            c->concurrency = 100;
        unsigned per = (c->concurrency + c->connections - 1) / c->connections;
        if (per > 1000)
            fprintf(stderr,
                    "oms-bench: warning: %u subscribers per connection; omsd allows 1000 "
                    "streams per connection by default (--max-streams)\n",
                    per);
    }
    if (c->rate < 0)
        c->rate = 0; /* closed loop */
    c->messages = o->messages != UNSET ? (unsigned)o->messages : c->call == BENCH_BIDI ? 0 : 1000;
    if (c->call == BENCH_SERVER_STREAM && c->messages == 0) {
        fprintf(stderr, "oms-bench: --messages must be at least 1 for server-stream\n");
        return -1;
    }
    if (c->call == BENCH_CLIENT_STREAM && c->messages == 0) {
        fprintf(stderr, "oms-bench: --messages must be at least 1 for client-stream\n");
        return -1;
    }
    return 0;
}

/* 0, 1 after --help/--version (exit 0), -1 on bad usage (exit 2). */
static int parse_args(int argc, char **argv, options *o)
{
    bench_config *c = &o->cfg;
    const oms_cli_opt opts[] = {
        {.name = "target",
         .type = OMS_CLI_CALL,
         .arg = "HOST:PORT",
         .fn = on_target,
         .want = "HOST:PORT or [IPV6]:PORT",
         .help = "the server (IPv6 as [::1]:50051); required"},
        {.name = "h2c",
         .type = OMS_CLI_FLAG,
         .dest = &c->h2c,
         .help = "cleartext HTTP/2 (prior knowledge) instead of TLS"},
        {.name = "ca",
         .type = OMS_CLI_STRING,
         .arg = "FILE",
         .dest = &c->ca_file,
         .help = "PEM roots to verify the server with (default: the\n"
                 "system's); not with --h2c"},
        {.name = "cert",
         .type = OMS_CLI_STRING,
         .arg = "FILE",
         .dest = &c->cert_file,
         .help = "client certificate (PEM) for servers that ask for one"},
        {.name = "key",
         .type = OMS_CLI_STRING,
         .arg = "FILE",
         .dest = &c->key_file,
         .help = "its private key (both or neither)"},
        {.name = "server-name",
         .type = OMS_CLI_STRING,
         .arg = "NAME",
         .dest = &c->server_name,
         .fn = nonempty,
         .want = "a name",
         .help = "name for SNI, the certificate check and :authority\n"
                 "(default: HOST)"},
        {.name = "token",
         .type = OMS_CLI_STRING,
         .arg = "TOKEN",
         .dest = &o->token,
         .help = "bearer token, sent as 'authorization: Bearer TOKEN' on\n"
                 "every call (default $OMS_TOKEN; visible in ps: prefer\n"
                 "--token-file)"},
        {.name = "token-file",
         .type = OMS_CLI_STRING,
         .arg = "FILE",
         .dest = &o->token_file,
         .help = "read the token from FILE (surrounding whitespace\n"
                 "ignored)"},
        {.name = "call",
         .type = OMS_CLI_CALL,
         .arg = "TYPE",
         .fn = on_call,
         .want = "unary, server-stream, client-stream, bidi, order-create or order-watch",
         .help = "what to drive (default unary):\n"
                 "  unary          CreateOrder; one latency sample per call\n"
                 "  server-stream  WatchOrders of --messages events; counts\n"
                 "                 events/s, latency per whole stream\n"
                 "  client-stream  TestService.StreamingInputCall: streams of\n"
                 "                 --messages requests, then half-close;\n"
                 "                 counts requests/s, latency per stream\n"
                 "  bidi           Track: each slot keeps a stream open and\n"
                 "                 does request->response round trips;\n"
                 "                 counts round trips/s, latency per round trip\n"
                 "  order-create   oms.v1.OrderService/CreateOrder, the order\n"
                 "                 system's durable path (validation,\n"
                 "                 reservation, commit); latency per call\n"
                 "  order-watch    event fan-out: --concurrency WatchOrders\n"
                 "                 subscribers (every order, live) over\n"
                 "                 --connections connections, and CreateOrder\n"
                 "                 at --rate (default 200/s) on a connection\n"
                 "                 of its own; latency per delivered event,\n"
                 "                 from its CreateOrder's send time; checks\n"
                 "                 every subscriber gets every order once"},
        {.name = "connections",
         .type = OMS_CLI_U64,
         .arg = "N",
         .dest = &o->connections,
         .min = 1,
         .max = 10000,
         .help = "connections, one rpc_channel each (default 1)"},
        {.name = "concurrency",
         .type = OMS_CLI_U64,
         .arg = "M",
         .dest = &o->concurrency,
         .min = 1,
         .max = 1000000,
         .help = "operations in flight over all connections; slot i uses\n"
                 "connection i mod N (default 10); order-watch: the\n"
                 "subscribers (default 100)"},
        {.name = "duration",
         .type = OMS_CLI_DOUBLE,
         .arg = "SECONDS",
         .dest = &c->duration_s,
         .fmin = 0.001,
         .fmax = 86400 * 7,
         .want = "seconds, more than 0",
         .help = "measured time (default 10)"},
        {.name = "warmup",
         .type = OMS_CLI_DOUBLE,
         .arg = "SECONDS",
         .dest = &c->warmup_s,
         .fmax = 86400,
         .want = "seconds, 0 or more",
         .help = "load before it, left out of every figure (default 2)"},
        {.name = "count",
         .type = OMS_CLI_U64,
         .arg = "N",
         .dest = &c->count,
         .min = 1,
         .max = UINT64_MAX / 2,
         .help = "end the window after N operations instead of after\n"
                 "--duration (closed loop only): a fixed amount of work,\n"
                 "like h2load -n, e.g. to count instructions per call"},
        {.name = "rate",
         .type = OMS_CLI_DOUBLE,
         .arg = "R",
         .dest = &c->rate,
         .fmin = 0.001,
         .fmax = 1e8,
         .want = "operations per second, 0.001..1e8",
         .help = "open loop: R operations per second (calls, streams or\n"
                 "round trips), due at fixed intervals; latency runs from\n"
                 "when each was due, and operations finding all M slots\n"
                 "busy wait in a queue (counted). Default: closed loop,\n"
                 "each slot starts its next operation when one ends\n"
                 "(order-watch: the producer's CreateOrders per second,\n"
                 "default 200)"},
        {.name = "payload",
         .type = OMS_CLI_SIZE,
         .arg = "BYTES",
         .dest = &o->payload,
         .max = MAX_PAYLOAD,
         .help = "request message size: pads CreateOrder's sku,\n"
                 "StreamingInputCall's payload, Track's order_id to about\n"
                 "BYTES serialized (K, M suffixes; default 0: minimal\n"
                 "messages)"},
        {.name = "messages",
         .type = OMS_CLI_U64,
         .arg = "N",
         .dest = &o->messages,
         .max = INT32_MAX,
         .help = "per stream: events asked of WatchOrders, requests per\n"
                 "client stream (default 1000 for both), round trips per\n"
                 "Track stream (default 0: one stream for the whole run)"},
        {.type = OMS_CLI_SECTION, .help = "\nOrder system (order-create, order-watch):"},
        {.name = "customer",
         .type = OMS_CLI_STRING,
         .arg = "ID",
         .dest = &c->customer,
         .fn = nonempty,
         .want = "a customer id",
         .help = "the orders' customer (default c-1; when c-1 does not\n"
                 "exist, one is created)"},
        {.name = "sku",
         .type = OMS_CLI_STRING,
         .arg = "SKU",
         .dest = &c->sku,
         .fn = nonempty,
         .want = "a SKU",
         .help = "the one line's product (default SKU-001; created if\n"
                 "missing)"},
        {.name = "quantity",
         .type = OMS_CLI_U64,
         .arg = "N",
         .dest = &o->quantity,
         .min = 1,
         .max = 1000000000,
         .help = "units per order (default 1)"},
        {.name = "no-key",
         .type = OMS_CLI_FLAG,
         .dest = &c->no_key,
         .help = "send no idempotency key (default: a unique one per call)"},
        {.name = "stock",
         .type = OMS_CLI_U64,
         .arg = "N",
         .dest = &o->stock,
         .max = INT64_MAX / 2,
         .want = "units, 0..4611686018427387903",
         .help = "before the run, top the SKU's available stock up to N\n"
                 "with AdjustStock (default 100000000; 0 leaves it alone)"},
        {.name = "drain",
         .type = OMS_CLI_DOUBLE,
         .arg = "SECONDS",
         .dest = &c->drain_s,
         .fmax = 3600,
         .want = "seconds, 0..3600",
         .help = "order-watch: how long to wait after the window for\n"
                 "the last events (default 5)"},
        {.name = "open-timeout",
         .type = OMS_CLI_DOUBLE,
         .arg = "SECONDS",
         .dest = &c->open_timeout_s,
         .fmin = 0.1,
         .fmax = 3600,
         .want = "seconds, 0.1..3600",
         .help = "order-watch: how long the subscribers may take to be\n"
                 "live (default 60). omsd allows --max-streams (1000)\n"
                 "streams per connection: use enough --connections"},
        {.name = "producer-target",
         .type = OMS_CLI_CALL,
         .arg = "HOST:PORT",
         .fn = on_producer_target,
         .want = "HOST:PORT or [IPV6]:PORT",
         .help = "order-watch: send the CreateOrders to this server\n"
                 "instead (another instance on the same database: the\n"
                 "latency is then committed on one, delivered on the other)"},
        {.type = OMS_CLI_SECTION, .help = ""},
        {.name = "json",
         .type = OMS_CLI_STRING,
         .arg = "FILE",
         .dest = &o->json,
         .help = "also write every figure as JSON to FILE ('-': stdout,\n"
                 "the table then going to stderr); latencies in\n"
                 "microseconds"},
    };
    const oms_cli_spec spec = {
        .prog = "oms-bench",
        .usage = usage,
        .epilog = epilog,
        .opts = opts,
        .nopts = sizeof opts / sizeof opts[0],
    };
    int rc = oms_cli_parse(&spec, argc, argv, o, NULL);
    return rc != 0 ? rc : check(o);
}

/* Resolves the target once, here, to one address: a channel given a name with
 * several addresses would spread its calls over one connection per address,
 * and --connections N is meant as N connections. */
static int resolve(const char *host, const char *port, char *addr, size_t addrlen)
{
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
    struct addrinfo *res = NULL;
    int rv = getaddrinfo(host, port, &hints, &res);
    if (rv != 0) {
        fprintf(stderr, "oms-bench: cannot resolve '%s': %s\n", host, gai_strerror(rv));
        return -1;
    }
    char ip[INET6_ADDRSTRLEN] = "";
    int family = 0;
    for (struct addrinfo *ai = res; ai && !family; ai = ai->ai_next) {
        if (ai->ai_family == AF_INET)
            uv_ip4_name((const struct sockaddr_in *)ai->ai_addr, ip, sizeof ip);
        else if (ai->ai_family == AF_INET6)
            uv_ip6_name((const struct sockaddr_in6 *)ai->ai_addr, ip, sizeof ip);
        else
            continue;
        family = ai->ai_family;
    }
    freeaddrinfo(res);
    if (!family) {
        fprintf(stderr, "oms-bench: '%s' has no IPv4 or IPv6 address\n", host);
        return -1;
    }
    snprintf(addr, addrlen, family == AF_INET6 ? "[%s]:%s" : "%s:%s", ip, port);
    return 0;
}

int main(int argc, char **argv)
{
    options o = {
        .cfg =
            {
                .call = BENCH_UNARY,
                .concurrency = 10,
                .duration_s = 10,
                .warmup_s = 2,
                .rate = -1, /* not given: 0 (closed loop), order-watch 200 */
                .drain_s = 5,
                .open_timeout_s = 60,
            },
        .connections = 1,
        .concurrency = UNSET,
        .quantity = 1,
        .messages = UNSET,
        .stock = UNSET,
    };
    int prc = parse_args(argc, argv, &o);
    if (prc != 0)
        return prc > 0 ? 0 : 2;
    char *token = NULL, terr[256];
    if (oms_cli_token(o.token, o.token_file, &token, terr, sizeof terr) != 0) {
        fprintf(stderr, "oms-bench: %s\n", terr);
        return 2;
    }
    o.cfg.token = token;
    char addr[INET6_ADDRSTRLEN + 16];
    char paddr[INET6_ADDRSTRLEN + 16];
    if (resolve(o.host, o.port, addr, sizeof addr) != 0 ||
        (o.producer_host[0] && resolve(o.producer_host, o.producer_port, paddr, sizeof paddr) != 0))
        return 1;
    o.cfg.address = addr;
    o.cfg.producer_address = o.producer_host[0] ? paddr : NULL;
    /* Certificates and :authority go by the name the user gave. */
    if (!o.cfg.server_name)
        o.cfg.server_name = o.host;
    o.cfg.progress = isatty(STDERR_FILENO);
    /* The client library's connection messages are debug-level; failures show
     * up in the figures. */
    oms_log_set_level(OMS_LOG_WARN);
    signal(SIGPIPE, SIG_IGN);

    uv_loop_t *loop = uv_default_loop();
    bench_results res;
    char err[512];
    int rc = 0;
    if (bench_run(loop, &o.cfg, &res, err, sizeof err) != 0) {
        fprintf(stderr, "oms-bench: %s\n", err);
        rc = 1;
        goto out;
    }
    /* With --json -, stdout carries the JSON alone and the table goes to
     * stderr. */
    FILE *table = o.json && strcmp(o.json, "-") == 0 ? stderr : stdout;
    bench_report_text(table, &o.cfg, &res);
    fflush(table);
    if (o.json && bench_report_json(o.json, &o.cfg, &res) != 0) {
        fprintf(stderr, "oms-bench: cannot write %s: %s\n", o.json, strerror(errno));
        rc = 1;
    }
    if (res.watch && (res.watch->missing || res.watch->duplicates)) {
        fprintf(stderr, "oms-bench: %" PRIu64 " deliveries missing, %" PRIu64 " duplicated%s\n",
                res.watch->missing, res.watch->duplicates,
                res.watch->drain_timed_out ? " (--drain ran out: maybe late, see seq gaps)" : "");
        rc = 1;
    }
    if (res.counts.ops == 0) {
        fprintf(stderr, "oms-bench: no %s succeeded in the window\n",
                bench_call_info_of(o.cfg.call)->op_unit);
        rc = 1;
    }
out:
    free(token);
    bench_results_dispose(&res);
    uv_loop_close(loop);
    return rc;
}
