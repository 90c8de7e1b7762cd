/* oms-bench - a load generator for gRPC servers of bench.proto, on oms's own
 * client library: flags, target resolution, the run, the reports.
 *
 * Single-threaded: the whole load runs on one libuv loop.
 */
#include <errno.h>
#include <getopt.h>
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

static void usage(FILE *f)
{
    fprintf(
        f,
        "usage: oms-bench --target HOST:PORT [options]\n"
        "\n"
        "Drives load at a gRPC server implementing oms.bench.v1.OrderBench\n"
        "(bench.proto), and grpc.testing.TestService for client streaming, and reports\n"
        "throughput and latency percentiles. Everything runs on one thread.\n"
        "\n"
        "  --target HOST:PORT     the server (IPv6 as [::1]:50051); required\n"
        "  --h2c                  cleartext HTTP/2 (prior knowledge) instead of TLS\n"
        "  --ca FILE              PEM roots to verify the server with (default: the\n"
        "                         system's); not with --h2c\n"
        "  --cert FILE            client certificate (PEM) for servers that ask for one\n"
        "  --key FILE             its private key (both or neither)\n"
        "  --server-name NAME     name for SNI, the certificate check and :authority\n"
        "                         (default: HOST)\n"
        "  --token TOKEN          bearer token, sent as 'authorization: Bearer TOKEN' on\n"
        "                         every call (default $OMS_TOKEN; visible in ps: prefer\n"
        "                         --token-file)\n"
        "  --token-file FILE      read the token from FILE (surrounding whitespace\n"
        "                         ignored)\n"
        "  --call TYPE            what to drive (default unary):\n"
        "                           unary          CreateOrder; one latency sample per call\n"
        "                           server-stream  WatchOrders of --messages events; counts\n"
        "                                          events/s, latency per whole stream\n"
        "                           client-stream  TestService.StreamingInputCall: streams of\n"
        "                                          --messages requests, then half-close;\n"
        "                                          counts requests/s, latency per stream\n"
        "                           bidi           Track: each slot keeps a stream open and\n"
        "                                          does request->response round trips;\n"
        "                                          counts round trips/s, latency per round trip\n"
        "                           order-create   oms.v1.OrderService/CreateOrder, the order\n"
        "                                          system's durable path (validation,\n"
        "                                          reservation, commit); latency per call\n"
        "                           order-watch    event fan-out: --concurrency WatchOrders\n"
        "                                          subscribers (every order, live) over\n"
        "                                          --connections connections, and CreateOrder\n"
        "                                          at --rate (default 200/s) on a connection\n"
        "                                          of its own; latency per delivered event,\n"
        "                                          from its CreateOrder's send time; checks\n"
        "                                          every subscriber gets every order once\n"
        "  --connections N        connections, one rpc_channel each (default 1)\n"
        "  --concurrency M        operations in flight over all connections; slot i uses\n"
        "                         connection i mod N (default 10); order-watch: the\n"
        "                         subscribers (default 100)\n"
        "  --duration SECONDS     measured time (default 10)\n"
        "  --warmup SECONDS       load before it, left out of every figure (default 2)\n"
        "  --count N              end the window after N operations instead of after\n"
        "                         --duration (closed loop only): a fixed amount of work,\n"
        "                         like h2load -n, e.g. to count instructions per call\n"
        "  --rate R               open loop: R operations per second (calls, streams or\n"
        "                         round trips), due at fixed intervals; latency runs from\n"
        "                         when each was due, and operations finding all M slots\n"
        "                         busy wait in a queue (counted). Default: closed loop,\n"
        "                         each slot starts its next operation when one ends\n"
        "                         (order-watch: the producer's CreateOrders per second,\n"
        "                         default 200)\n"
        "  --payload BYTES        request message size: pads CreateOrder's sku,\n"
        "                         StreamingInputCall's payload, Track's order_id to about\n"
        "                         BYTES serialized (default 0: minimal messages)\n"
        "  --messages N           per stream: events asked of WatchOrders, requests per\n"
        "                         client stream (default 1000 for both), round trips per\n"
        "                         Track stream (default 0: one stream for the whole run)\n"
        "\n"
        "Order system (order-create, order-watch):\n"
        "  --customer ID          the orders' customer (default c-1; when c-1 does not\n"
        "                         exist, one is created)\n"
        "  --sku SKU              the one line's product (default SKU-001; created if\n"
        "                         missing)\n"
        "  --quantity N           units per order (default 1)\n"
        "  --no-key               send no idempotency key (default: a unique one per call)\n"
        "  --stock N              before the run, top the SKU's available stock up to N\n"
        "                         with AdjustStock (default 100000000; 0 leaves it alone)\n"
        "  --drain SECONDS        order-watch: how long to wait after the window for\n"
        "                         the last events (default 5)\n"
        "  --open-timeout SECONDS  order-watch: how long the subscribers may take to be\n"
        "                         live (default 60). omsd allows --max-streams (1000)\n"
        "                         streams per connection: use enough --connections\n"
        "\n"
        "  --json FILE            also write every figure as JSON to FILE ('-': stdout,\n"
        "                         the table then going to stderr); latencies in\n"
        "                         microseconds\n"
        "  -h, --help             show this help\n"
        "  --version              print the version and git commit\n"
        "\n"
        "While running, a progress line goes to stderr every second when it is a\n"
        "terminal; the summary goes to stdout. Errors are counted by status code.\n"
        "Exit status: 0 when the run completed (RPC errors are reported, not fatal),\n"
        "1 if the target could not be reached or no operation succeeded (or, for\n"
        "order-watch, an event was missing or duplicated), 2 on bad usage.\n");
}

typedef struct options {
    bench_config cfg;
    const char *json;
    bool messages_set;
    bool conc_set, rate_set;
    char host[256];
    char port[8];
    const char *token, *token_file; /* --token, --token-file */
} options;

static int bad(const char *flag, const char *want, const char *got)
{
    fprintf(stderr, "oms-bench: %s wants %s, got '%s'\n", flag, want, got);
    return -1;
}

/* A decimal integer in [min, max]. */
static int parse_uint(const char *s, unsigned long long min, unsigned long long max,
                      unsigned long long *out)
{
    char *end;
    errno = 0;
    if (!*s || *s == '-' || *s == '+')
        return -1;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || *end || v < min || v > max)
        return -1;
    *out = v;
    return 0;
}

/* A number of seconds (decimals allowed) in [min, max]. */
static int parse_seconds(const char *s, double min, double max, double *out)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (!*s || errno || *end || !(v >= min && v <= max))
        return -1;
    *out = v;
    return 0;
}

/* HOST:PORT or [V6]:PORT into o->host and o->port. */
static int parse_target(const char *s, options *o)
{
    const char *host = s;
    const char *colon;
    size_t hl;
    if (s[0] == '[') {
        const char *close = strchr(s, ']');
        if (!close || close[1] != ':')
            return -1;
        host = s + 1;
        hl = (size_t)(close - host);
        colon = close + 1;
    } else {
        colon = strrchr(s, ':');
        if (!colon || memchr(s, ':', (size_t)(colon - s)))
            return -1; /* no port, or an IPv6 address without brackets */
        hl = (size_t)(colon - s);
    }
    unsigned long long port;
    if (hl == 0 || hl >= sizeof o->host || parse_uint(colon + 1, 1, 65535, &port) != 0)
        return -1;
    memcpy(o->host, host, hl);
    o->host[hl] = '\0';
    snprintf(o->port, sizeof o->port, "%llu", port);
    return 0;
}

static int parse_args(int argc, char **argv, options *o)
{
    enum {
        OPT_TARGET = 256,
        OPT_CA,
        OPT_H2C,
        OPT_NAME,
        OPT_CALL,
        OPT_CONNS,
        OPT_CONC,
        OPT_DURATION,
        OPT_COUNT,
        OPT_WARMUP,
        OPT_RATE,
        OPT_PAYLOAD,
        OPT_MESSAGES,
        OPT_JSON,
        OPT_CUSTOMER,
        OPT_SKU,
        OPT_QUANTITY,
        OPT_NO_KEY,
        OPT_STOCK,
        OPT_DRAIN,
        OPT_OPEN_TIMEOUT,
        OPT_TOKEN,
        OPT_TOKEN_FILE,
        OPT_CERT,
        OPT_KEY
    };
    static const struct option longopts[] = {
        {"target", required_argument, NULL, OPT_TARGET},
        {"ca", required_argument, NULL, OPT_CA},
        {"cert", required_argument, NULL, OPT_CERT},
        {"key", required_argument, NULL, OPT_KEY},
        {"h2c", no_argument, NULL, OPT_H2C},
        {"server-name", required_argument, NULL, OPT_NAME},
        {"call", required_argument, NULL, OPT_CALL},
        {"connections", required_argument, NULL, OPT_CONNS},
        {"concurrency", required_argument, NULL, OPT_CONC},
        {"duration", required_argument, NULL, OPT_DURATION},
        {"count", required_argument, NULL, OPT_COUNT},
        {"warmup", required_argument, NULL, OPT_WARMUP},
        {"rate", required_argument, NULL, OPT_RATE},
        {"payload", required_argument, NULL, OPT_PAYLOAD},
        {"messages", required_argument, NULL, OPT_MESSAGES},
        {"json", required_argument, NULL, OPT_JSON},
        {"customer", required_argument, NULL, OPT_CUSTOMER},
        {"sku", required_argument, NULL, OPT_SKU},
        {"quantity", required_argument, NULL, OPT_QUANTITY},
        {"no-key", no_argument, NULL, OPT_NO_KEY},
        {"stock", required_argument, NULL, OPT_STOCK},
        {"drain", required_argument, NULL, OPT_DRAIN},
        {"open-timeout", required_argument, NULL, OPT_OPEN_TIMEOUT},
        {"token", required_argument, NULL, OPT_TOKEN},
        {"token-file", required_argument, NULL, OPT_TOKEN_FILE},
        {"version", no_argument, NULL, 'V'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    bench_config *c = &o->cfg;
    unsigned long long v;
    int ch;
    opterr = 0;
    while ((ch = getopt_long(argc, argv, ":h", longopts, NULL)) != -1) {
        switch (ch) {
        case OPT_TARGET:
            if (parse_target(optarg, o) != 0)
                return bad("--target", "HOST:PORT or [IPV6]:PORT", optarg);
            c->target = optarg;
            break;
        case OPT_CA:
            c->ca_file = optarg;
            break;
        case OPT_CERT:
            c->cert_file = optarg;
            break;
        case OPT_KEY:
            c->key_file = optarg;
            break;
        case OPT_H2C:
            c->h2c = true;
            break;
        case OPT_NAME:
            if (!*optarg)
                return bad("--server-name", "a name", optarg);
            c->server_name = optarg;
            break;
        case OPT_CALL:
            if (bench_call_parse(optarg, &c->call) != 0)
                return bad("--call",
                           "unary, server-stream, client-stream, bidi, order-create or "
                           "order-watch",
                           optarg);
            break;
        case OPT_CONNS:
            if (parse_uint(optarg, 1, 10000, &v) != 0)
                return bad("--connections", "1..10000", optarg);
            c->connections = (unsigned)v;
            break;
        case OPT_CONC:
            if (parse_uint(optarg, 1, 1000000, &v) != 0)
                return bad("--concurrency", "1..1000000", optarg);
            c->concurrency = (unsigned)v;
            o->conc_set = true;
            break;
        case OPT_DURATION:
            if (parse_seconds(optarg, 0.001, 86400 * 7, &c->duration_s) != 0)
                return bad("--duration", "seconds, more than 0", optarg);
            break;
        case OPT_COUNT:
            if (parse_uint(optarg, 1, UINT64_MAX / 2, &v) != 0)
                return bad("--count", "operations, 1 or more", optarg);
            c->count = v;
            break;
        case OPT_WARMUP:
            if (parse_seconds(optarg, 0, 86400, &c->warmup_s) != 0)
                return bad("--warmup", "seconds, 0 or more", optarg);
            break;
        case OPT_RATE:
            if (parse_seconds(optarg, 0.001, 1e8, &c->rate) != 0)
                return bad("--rate", "operations per second, 0.001..1e8", optarg);
            o->rate_set = true;
            break;
        case OPT_PAYLOAD:
            if (parse_uint(optarg, 0, MAX_PAYLOAD, &v) != 0)
                return bad("--payload", "0..16777216 bytes", optarg);
            c->payload = (size_t)v;
            break;
        case OPT_MESSAGES:
            if (parse_uint(optarg, 0, INT32_MAX, &v) != 0)
                return bad("--messages", "0..2147483647", optarg);
            c->messages = (unsigned)v;
            o->messages_set = true;
            break;
        case OPT_JSON:
            o->json = optarg;
            break;
        case OPT_CUSTOMER:
            if (!*optarg)
                return bad("--customer", "a customer id", optarg);
            c->customer = optarg;
            break;
        case OPT_SKU:
            if (!*optarg)
                return bad("--sku", "a SKU", optarg);
            c->sku = optarg;
            break;
        case OPT_QUANTITY:
            if (parse_uint(optarg, 1, 1000000000, &v) != 0)
                return bad("--quantity", "1..1000000000", optarg);
            c->quantity = (int64_t)v;
            break;
        case OPT_NO_KEY:
            c->no_key = true;
            break;
        case OPT_STOCK:
            if (parse_uint(optarg, 0, INT64_MAX / 2, &v) != 0)
                return bad("--stock", "units, 0..4611686018427387903", optarg);
            c->stock = v ? (int64_t)v : -1;
            break;
        case OPT_DRAIN:
            if (parse_seconds(optarg, 0, 3600, &c->drain_s) != 0)
                return bad("--drain", "seconds, 0..3600", optarg);
            break;
        case OPT_OPEN_TIMEOUT:
            if (parse_seconds(optarg, 0.1, 3600, &c->open_timeout_s) != 0)
                return bad("--open-timeout", "seconds, 0.1..3600", optarg);
            break;
        case OPT_TOKEN:
            o->token = optarg;
            break;
        case OPT_TOKEN_FILE:
            o->token_file = optarg;
            break;
        case 'h':
            usage(stdout);
            exit(0);
        case 'V':
            oms_cli_print_version(stdout, "oms-bench");
            exit(0);
        case ':':
            fprintf(stderr, "oms-bench: %s needs a value (see --help)\n", argv[optind - 1]);
            return -1;
        default:
            oms_cli_unknown_getopt("oms-bench", argv[optind - 1], longopts);
            return -1;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "oms-bench: unexpected argument '%s' (see --help)\n", argv[optind]);
        return -1;
    }
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
    if (c->count && (c->rate > 0 || c->call == BENCH_ORDER_WATCH)) {
        fprintf(stderr, "oms-bench: --count is for closed-loop runs (no --rate, not "
                        "order-watch)\n");
        return -1;
    }
    if (c->call == BENCH_ORDER_WATCH) {
        if (!o->rate_set)
            c->rate = 200;
        if (!o->conc_set)
            c->concurrency = 100;
        unsigned per = (c->concurrency + c->connections - 1) / c->connections;
        if (per > 1000)
            fprintf(stderr,
                    "oms-bench: warning: %u subscribers per connection; omsd allows 1000 "
                    "streams per connection by default (--max-streams)\n",
                    per);
    }
    if (!o->messages_set)
        c->messages = c->call == BENCH_BIDI ? 0 : 1000;
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

/* Resolves the target once, here, to one address: a channel given a name with
 * several addresses would spread its calls over one connection per address,
 * and --connections N is meant as N connections. */
static int resolve(options *o, char *addr, size_t addrlen)
{
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
    struct addrinfo *res = NULL;
    int rv = getaddrinfo(o->host, o->port, &hints, &res);
    if (rv != 0) {
        fprintf(stderr, "oms-bench: cannot resolve '%s': %s\n", o->host, gai_strerror(rv));
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
        fprintf(stderr, "oms-bench: '%s' has no IPv4 or IPv6 address\n", o->host);
        return -1;
    }
    snprintf(addr, addrlen, family == AF_INET6 ? "[%s]:%s" : "%s:%s", ip, o->port);
    /* Certificates and :authority go by the name the user gave. */
    if (!o->cfg.server_name)
        o->cfg.server_name = o->host;
    return 0;
}

int main(int argc, char **argv)
{
    options o = {
        .cfg =
            {
                .call = BENCH_UNARY,
                .connections = 1,
                .concurrency = 10,
                .duration_s = 10,
                .warmup_s = 2,
                .quantity = 1,
                .drain_s = 5,
                .open_timeout_s = 60,
            },
    };
    if (parse_args(argc, argv, &o) != 0)
        return 2;
    char *token = NULL, terr[256];
    if (oms_cli_token(o.token, o.token_file, &token, terr, sizeof terr) != 0) {
        fprintf(stderr, "oms-bench: %s\n", terr);
        return 2;
    }
    o.cfg.token = token;
    char addr[INET6_ADDRSTRLEN + 16];
    if (resolve(&o, addr, sizeof addr) != 0)
        return 1;
    o.cfg.address = addr;
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
