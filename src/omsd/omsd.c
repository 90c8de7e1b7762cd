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
#include <getopt.h>
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
#include "omsd/omsd_metrics.h"
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

typedef struct options {
    char host[64];
    int port;
    int h2c;
    const char *cert;
    const char *key;
    const char *client_ca;       /* --client-ca */
    const char *peer_token_file; /* --peer-token-file */
    int client_auth;             /* --client-auth: -1 unset, else http2_client_auth */
    int tls_min_version;         /* 12 or 13 */
    bool test_services;          /* --test-services on|off */
    uint64_t max_recv_msg;
    uint64_t max_streams;
    uint64_t max_header_list;
    double grace;
    double handshake_timeout;
    double conn_idle, conn_age, conn_age_grace, keepalive_time, keepalive_timeout; /* seconds */
    double keepalive_min_time; /* seconds; 0: no ping enforcement */
    bool ping_without_calls;
    uint64_t max_connections; /* 0: from the descriptor limit */
    uint64_t conn_send_budget;
    uint64_t send_budget; /* all connections together */
    uint64_t workers;
    oms_log_level log_level;
    oms_log_format log_format;  /* --log-format */
    const char *access_log;     /* --access-log PATH|-; NULL: off */
    uint64_t access_log_buffer; /* --access-log-buffer BYTES; 0: the default */
    bool bench_only;
    orders_config orders;
    omsd_authz authz; /* --authz-policy, --reflection-auth */
    omsd_auth_opts auth;
    char metrics_host[64]; /* --metrics-listen; "" = off */
    int metrics_port;
} options;

static void usage(FILE *f)
{
    fprintf(f,
            "usage: omsd [options]\n"
            "\n"
            "The oms gRPC server: the order system (oms.v1.CustomerService,\n"
            "InventoryService, OrderService), grpc.testing.TestService,\n"
            "oms.bench.v1.OrderBench, grpc.health.v1.Health and server reflection.\n"
            "\n"
            "  --listen HOST:PORT     address to listen on (default 127.0.0.1:50051;\n"
            "                         IPv6 as [::1]:50051; port 0 picks a free port)\n"
            "  --h2c                  serve cleartext HTTP/2 (prior knowledge) instead of TLS\n"
            "  --tls-cert FILE        server certificate chain, PEM (default certs/server.pem)\n"
            "  --tls-key FILE         server private key, PEM (default certs/server.key)\n"
            "  --client-ca FILE       CA (PEM) for client certificates (mTLS); alone it\n"
            "                         means --client-auth require\n"
            "  --client-auth MODE     require or optional: whether a client without a\n"
            "                         certificate fails the handshake (needs --client-ca)\n"
            "  --tls-min-version V    1.2 (default) or 1.3\n"
            "                         SIGHUP re-reads the certificate, key and client CA\n"
            "                         for new connections (open ones are kept)\n"
            "  --test-services on|off  serve grpc.testing.TestService and\n"
            "                         oms.bench.v1.OrderBench (default on; turn off in\n"
            "                         production)\n"
            "  --max-recv-msg BYTES   largest request message accepted, after\n"
            "                         decompression (default 4194304); larger ones get\n"
            "                         RESOURCE_EXHAUSTED\n"
            "  --max-streams N        SETTINGS_MAX_CONCURRENT_STREAMS per connection\n"
            "                         (default 1000)\n"
            "  --max-header-list BYTES  largest request header block (default 16384);\n"
            "                         larger ones get RESOURCE_EXHAUSTED\n"
            "  --handshake-timeout SECONDS  close connections that have not finished the\n"
            "                         TLS handshake and sent the HTTP/2 preface by then\n"
            "                         (default 10; 0 = never)\n"
            "  --conn-send-budget BYTES  response bytes one connection may have queued for\n"
            "                         a peer that does not read; past it, handlers are\n"
            "                         paused and new calls wait (default 16777216; 0 = no\n"
            "                         limit)\n"
            "  --send-budget BYTES    response bytes all connections together may have\n"
            "                         queued; past it, connections holding more than one\n"
            "                         stream's buffer wait as if over their own budget\n"
            "                         (default 268435456; 0 = no limit)\n"
            "  --max-connections N    connections open at once, all workers together;\n"
            "                         over it a new one is closed at once (default: the\n"
            "                         descriptor limit, raised to its hard maximum, less 256)\n"
            "  --max-connection-idle SECONDS  GOAWAY to a connection without a call for\n"
            "                         that long (default 300; 0 = never)\n"
            "  --max-connection-age SECONDS  GOAWAY to a connection that old; its calls\n"
            "                         finish (default 0 = never)\n"
            "  --max-connection-age-grace SECONDS  then close it that much later (default\n"
            "                         0 = never)\n"
            "  --keepalive-time SECONDS  PING a peer silent that long (default 7200)\n"
            "  --keepalive-timeout SECONDS  close it if the PING is not answered within\n"
            "                         (default 20)\n"
            "  --keepalive-min-time SECONDS  client PINGs closer than this while calls\n"
            "                         are open are strikes (with none open, any PING\n"
            "                         within 2 h), unless the server sent data in\n"
            "                         between; the third closes the connection with\n"
            "                         GOAWAY ENHANCE_YOUR_CALM \"too_many_pings\" (grpc-go's\n"
            "                         policy; default 300; 0 = no limit)\n"
            "  --keepalive-permit-without-calls  let clients PING (every\n"
            "                         --keepalive-min-time) with no call open\n"
            "  --grace SECONDS        on SIGINT/SIGTERM, how long in-flight calls may run\n"
            "                         before connections are closed (default 10);\n"
            "                         SIGUSR1 logs every stream's and order-event\n"
            "                         subscriber's flow-control state (\"state dump:\")\n"
            "  --workers N            event loops, one thread and one SO_REUSEPORT listener\n"
            "                         each (default: the number of cores)\n"
            "\n"
            "Order system:\n"
            "  --store URL            sqlite:PATH (default sqlite:./oms.db)\n"
            "  --services LIST        which of customers,inventory,orders to host, comma-\n"
            "                         separated, or all (default all)\n"
            "  --inventory-target ADDR  where the order service calls InventoryService when\n"
            "                         this process does not host it (host:port[,host:port])\n"
            "  --customers-target ADDR  the same for CustomerService\n"
            "  --peer-ca FILE         CA for those peers (default certs/ca.pem if present)\n"
            "  --peer-cert FILE       client certificate for calls to those peers (mTLS)\n"
            "  --peer-key FILE        its private key (both or neither)\n"
            "  --peer-token-file FILE  bearer token the order service sends those peers\n"
            "                         (a service token; read at start)\n"
            "  --peer-server-name NAME  TLS name the peers' certificates must carry\n"
            "                         (default: the target's host)\n"
            "  --peer-h2c             call the peers over cleartext HTTP/2\n"
            "  --peer-timeout SECONDS  deadline of a peer call when the incoming call has\n"
            "                         none or a longer one (default 5)\n"
            "  --event-ring N         order events each loop keeps for live subscribers;\n"
            "                         slower ones catch up from the store (default 65536)\n"
            "  --import-max-rows N    rows one ImportOrders call processes; later rows are\n"
            "                         counted as skipped in its summary (default 100000)\n"
            "  --idempotency-retention DURATION  how long an idempotency key answers a\n"
            "                         repeat with its first order (N[s|m|h|d]; default\n"
            "                         24h; 0 = forever); older keys are forgotten\n"
            "  --no-demo-data         do not seed an empty store with the demo catalog\n"
            "  --bench-only           serve OrderBench (and health, reflection) only\n"
            "Authentication and authorization (on with --jwt-keys, --jwt-secret-file or\n"
            "--client-ca; otherwise every call is allowed, with a warning at start):\n"
            "  --jwt-keys FILE        bearer tokens signed with these public keys (PEM\n"
            "                         keys or certificates, or a JWKS file; RS256, ES256,\n"
            "                         EdDSA)\n"
            "  --jwt-secret-file FILE  bearer tokens signed HS256 with this secret (>= 32\n"
            "                         bytes)\n"
            "  --jwt-issuer ISS       tokens must carry this \"iss\"\n"
            "  --jwt-audience AUD     tokens' \"aud\" must contain this\n"
            "  --jwt-leeway SECONDS   clock skew allowed on exp/nbf/iat (default 30)\n"
            "  SIGHUP reloads the keys and certificates; a bad file keeps the old ones.\n"
            "  --authz-policy FILE    the authorization policy (method scopes, mTLS principals'\n"
            "                         scopes) replacing the built-in one; format in\n"
            "                         docs/AUTHZ-POLICY.md: 'method /pkg.Svc/Method SCOPE...',\n"
            "                         'method /pkg.Svc/* SCOPE...', 'public /pkg.Svc/*',\n"
            "                         'principal NAME SCOPE...', 'imply SCOPE SCOPE...', #\n"
            "                         comments. Checked at start (an error exits 2 naming\n"
            "                         FILE:LINE); enforced while authentication is on\n"
            "  --reflection-auth      server reflection needs the scope 'reflection' (default:\n"
            "                         public, like grpc.health.v1)\n"
            "  --metrics-listen HOST:PORT  serve GET /metrics (Prometheus), /healthz and\n"
            "                         /readyz (503 while draining) over HTTP/1.1 there\n"
            "                         (default off)\n"
            "  --log-level LEVEL      debug, info, warn, error or off (default info)\n"
            "  --log-format FORMAT    text (default) or json: the server log on stderr,\n"
            "                         one line each with time, level and component\n"
            "  --access-log PATH|-    one JSON line per finished call (peer, principal,\n"
            "                         method, status, duration, messages and bytes, trace\n"
            "                         id) appended to PATH, or stdout for -; SIGHUP reopens\n"
            "                         it (logrotate); lines are dropped, never waited for,\n"
            "                         when the disk falls behind\n"
            "  --access-log-buffer BYTES  access-log lines held for the writer (default\n"
            "                         4194304; past it lines are dropped and counted)\n"
            "  -h, --help             show this help\n"
            "  --version              print the version and git commit\n"
            "\n"
            "When ready, omsd prints one line to stdout: listening on HOST:PORT (tls|h2c)\n");
}

/* Parses "N", "Ns", "Nm", "Nh" or "Nd" (N a decimal, seconds by default)
 * into milliseconds, up to ten years; "0" is 0. */
static int parse_duration_ms(const char *s, int64_t *out)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    double unit = 1000;
    if (end != s && *end && !end[1]) {
        switch (*end++) {
        case 's':
            break;
        case 'm':
            unit = 60e3;
            break;
        case 'h':
            unit = 3600e3;
            break;
        case 'd':
            unit = 86400e3;
            break;
        default:
            return -1;
        }
    }
    if (errno || end == s || *end || !(v >= 0) || v * unit > 3650 * 86400e3)
        return -1;
    *out = (int64_t)(v * unit);
    return 0;
}

/* Parses a decimal in [min, max]. */
static int parse_u64(const char *s, uint64_t min, uint64_t max, uint64_t *out)
{
    char *end;
    errno = 0;
    if (!*s || *s == '-')
        return -1;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || *end || v < min || v > max)
        return -1;
    *out = v;
    return 0;
}

/* HOST:PORT or [V6]:PORT into host (size hsz) and *port_out. */
static int parse_hostport(const char *s, char *host_out, size_t hsz, int *port_out)
{
    const char *colon;
    const char *host = s;
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
        if (!colon)
            return -1;
        hl = (size_t)(colon - s);
    }
    uint64_t port;
    if (hl == 0 || hl >= hsz || parse_u64(colon + 1, 0, 65535, &port) != 0)
        return -1;
    memcpy(host_out, host, hl);
    host_out[hl] = '\0';
    if (strcmp(host_out, "localhost") == 0)
        strcpy(host_out, "127.0.0.1");
    *port_out = (int)port;
    return 0;
}

static int parse_listen(const char *s, options *o)
{
    return parse_hostport(s, o->host, sizeof o->host, &o->port);
}

/* "all" or a comma-separated subset of customers,inventory,orders. */
static int parse_services(const char *s, unsigned *out)
{
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
    *out = mask;
    return 0;
}

static int parse_args(int argc, char **argv, options *o)
{
    enum {
        OPT_LISTEN = 256,
        OPT_H2C,
        OPT_CERT,
        OPT_KEY,
        OPT_MAXRECV,
        OPT_STREAMS,
        OPT_HDRS,
        OPT_GRACE,
        OPT_HANDSHAKE,
        OPT_WORKERS,
        OPT_LOG,
        OPT_STORE,
        OPT_SERVICES,
        OPT_INV,
        OPT_CUST,
        OPT_PEER_CA,
        OPT_PEER_NAME,
        OPT_PEER_H2C,
        OPT_PEER_TIMEOUT,
        OPT_RING,
        OPT_IMPORT_MAX,
        OPT_NO_DEMO,
        OPT_BENCH_ONLY,
        OPT_KEY_RETENTION,
        OPT_MAX_CONNS,
        OPT_CONN_IDLE,
        OPT_CONN_AGE,
        OPT_CONN_AGE_GRACE,
        OPT_KA_TIME,
        OPT_KA_TIMEOUT,
        OPT_KA_MIN_TIME,
        OPT_KA_PERMIT,
        OPT_SEND_BUDGET,
        OPT_PROC_BUDGET,
        OPT_JWT_KEYS,
        OPT_JWT_SECRET,
        OPT_JWT_ISSUER,
        OPT_JWT_AUDIENCE,
        OPT_JWT_LEEWAY,
        OPT_AUTHZ_POLICY,
        OPT_REFLECTION_AUTH,
        OPT_CLIENT_CA,
        OPT_CLIENT_AUTH,
        OPT_TLS_MIN,
        OPT_TEST_SERVICES,
        OPT_PEER_CERT,
        OPT_PEER_KEY,
        OPT_PEER_TOKEN,
        OPT_LOG_FORMAT,
        OPT_ACCESS_LOG,
        OPT_ACCESS_LOG_BUFFER,
        OPT_METRICS_LISTEN
    };
    static const struct option longopts[] = {
        {"listen", required_argument, NULL, OPT_LISTEN},
        {"h2c", no_argument, NULL, OPT_H2C},
        {"tls-cert", required_argument, NULL, OPT_CERT},
        {"tls-key", required_argument, NULL, OPT_KEY},
        {"client-ca", required_argument, NULL, OPT_CLIENT_CA},
        {"client-auth", required_argument, NULL, OPT_CLIENT_AUTH},
        {"tls-min-version", required_argument, NULL, OPT_TLS_MIN},
        {"test-services", required_argument, NULL, OPT_TEST_SERVICES},
        {"peer-cert", required_argument, NULL, OPT_PEER_CERT},
        {"peer-key", required_argument, NULL, OPT_PEER_KEY},
        {"peer-token-file", required_argument, NULL, OPT_PEER_TOKEN},
        {"max-recv-msg", required_argument, NULL, OPT_MAXRECV},
        {"max-streams", required_argument, NULL, OPT_STREAMS},
        {"max-header-list", required_argument, NULL, OPT_HDRS},
        {"grace", required_argument, NULL, OPT_GRACE},
        {"max-connections", required_argument, NULL, OPT_MAX_CONNS},
        {"conn-send-budget", required_argument, NULL, OPT_SEND_BUDGET},
        {"send-budget", required_argument, NULL, OPT_PROC_BUDGET},
        {"jwt-keys", required_argument, NULL, OPT_JWT_KEYS},
        {"jwt-secret-file", required_argument, NULL, OPT_JWT_SECRET},
        {"jwt-issuer", required_argument, NULL, OPT_JWT_ISSUER},
        {"jwt-audience", required_argument, NULL, OPT_JWT_AUDIENCE},
        {"jwt-leeway", required_argument, NULL, OPT_JWT_LEEWAY},

        {"max-connection-idle", required_argument, NULL, OPT_CONN_IDLE},
        {"max-connection-age", required_argument, NULL, OPT_CONN_AGE},
        {"max-connection-age-grace", required_argument, NULL, OPT_CONN_AGE_GRACE},
        {"keepalive-time", required_argument, NULL, OPT_KA_TIME},
        {"keepalive-timeout", required_argument, NULL, OPT_KA_TIMEOUT},
        {"keepalive-min-time", required_argument, NULL, OPT_KA_MIN_TIME},
        {"keepalive-permit-without-calls", no_argument, NULL, OPT_KA_PERMIT},
        {"handshake-timeout", required_argument, NULL, OPT_HANDSHAKE},
        {"workers", required_argument, NULL, OPT_WORKERS},
        {"log-level", required_argument, NULL, OPT_LOG},
        {"log-format", required_argument, NULL, OPT_LOG_FORMAT},
        {"access-log", required_argument, NULL, OPT_ACCESS_LOG},
        {"access-log-buffer", required_argument, NULL, OPT_ACCESS_LOG_BUFFER},
        {"metrics-listen", required_argument, NULL, OPT_METRICS_LISTEN},
        {"store", required_argument, NULL, OPT_STORE},
        {"services", required_argument, NULL, OPT_SERVICES},
        {"inventory-target", required_argument, NULL, OPT_INV},
        {"customers-target", required_argument, NULL, OPT_CUST},
        {"peer-ca", required_argument, NULL, OPT_PEER_CA},
        {"peer-server-name", required_argument, NULL, OPT_PEER_NAME},
        {"peer-h2c", no_argument, NULL, OPT_PEER_H2C},
        {"peer-timeout", required_argument, NULL, OPT_PEER_TIMEOUT},
        {"event-ring", required_argument, NULL, OPT_RING},
        {"import-max-rows", required_argument, NULL, OPT_IMPORT_MAX},
        {"no-demo-data", no_argument, NULL, OPT_NO_DEMO},
        {"idempotency-retention", required_argument, NULL, OPT_KEY_RETENTION},
        {"bench-only", no_argument, NULL, OPT_BENCH_ONLY},
        {"authz-policy", required_argument, NULL, OPT_AUTHZ_POLICY},
        {"reflection-auth", no_argument, NULL, OPT_REFLECTION_AUTH},
        {"version", no_argument, NULL, 'V'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    int ch;
    opterr = 0;
    while ((ch = getopt_long(argc, argv, ":h", longopts, NULL)) != -1) {
        switch (ch) {
        case OPT_LISTEN:
            if (parse_listen(optarg, o) != 0) {
                fprintf(stderr, "omsd: --listen wants HOST:PORT or [IPV6]:PORT, got '%s'\n",
                        optarg);
                return -1;
            }
            break;
        case OPT_METRICS_LISTEN:
            if (parse_hostport(optarg, o->metrics_host, sizeof o->metrics_host, &o->metrics_port) !=
                0) {
                fprintf(stderr, "omsd: --metrics-listen wants HOST:PORT or [IPV6]:PORT, got '%s'\n",
                        optarg);
                return -1;
            }
            break;
        case OPT_H2C:
            o->h2c = 1;
            break;
        case OPT_CERT:
            o->cert = optarg;
            break;
        case OPT_KEY:
            o->key = optarg;
            break;
        case OPT_CLIENT_CA:
            o->client_ca = optarg;
            break;
        case OPT_CLIENT_AUTH:
            if (strcmp(optarg, "require") != 0 && strcmp(optarg, "optional") != 0) {
                fprintf(stderr, "omsd: --client-auth wants require or optional, got '%s'\n",
                        optarg);
                return -1;
            }
            o->client_auth =
                optarg[0] == 'r' ? HTTP2_CLIENT_AUTH_REQUIRE : HTTP2_CLIENT_AUTH_OPTIONAL;
            break;
        case OPT_TLS_MIN:
            if (strcmp(optarg, "1.2") != 0 && strcmp(optarg, "1.3") != 0) {
                fprintf(stderr, "omsd: --tls-min-version wants 1.2 or 1.3, got '%s'\n", optarg);
                return -1;
            }
            o->tls_min_version = optarg[2] == '3' ? 13 : 12;
            break;
        case OPT_TEST_SERVICES:
            if (strcmp(optarg, "on") != 0 && strcmp(optarg, "off") != 0) {
                fprintf(stderr, "omsd: --test-services wants on or off, got '%s'\n", optarg);
                return -1;
            }
            o->test_services = strcmp(optarg, "on") == 0;
            break;
        case OPT_PEER_CERT:
            o->orders.peer_cert_file = optarg;
            break;
        case OPT_PEER_KEY:
            o->orders.peer_key_file = optarg;
            break;
        case OPT_PEER_TOKEN:
            o->peer_token_file = optarg;
            break;
        case OPT_MAXRECV:
            if (parse_u64(optarg, 1, INT32_MAX, &o->max_recv_msg) != 0) {
                fprintf(stderr, "omsd: --max-recv-msg wants 1..%d bytes, got '%s'\n", INT32_MAX,
                        optarg);
                return -1;
            }
            break;
        case OPT_STREAMS:
            if (parse_u64(optarg, 1, INT32_MAX, &o->max_streams) != 0) {
                fprintf(stderr, "omsd: --max-streams wants 1..%d, got '%s'\n", INT32_MAX, optarg);
                return -1;
            }
            break;
        case OPT_HDRS:
            if (parse_u64(optarg, 1024, 16u << 20, &o->max_header_list) != 0) {
                fprintf(stderr, "omsd: --max-header-list wants 1024..16777216 bytes, got '%s'\n",
                        optarg);
                return -1;
            }
            break;
        case OPT_SEND_BUDGET:
            if (parse_u64(optarg, 0, 1ull << 40, &o->conn_send_budget) != 0) {
                fprintf(stderr, "omsd: --conn-send-budget wants 0..%llu bytes, got '%s'\n",
                        1ull << 40, optarg);
                return -1;
            }
            break;
        case OPT_JWT_KEYS:
            o->auth.jwt_keys = optarg;
            break;
        case OPT_JWT_SECRET:
            o->auth.jwt_secret_file = optarg;
            break;
        case OPT_JWT_ISSUER:
            o->auth.jwt_issuer = optarg;
            break;
        case OPT_JWT_AUDIENCE:
            o->auth.jwt_audience = optarg;
            break;
        case OPT_JWT_LEEWAY: {
            uint64_t v;
            if (parse_u64(optarg, 0, 86400, &v) != 0) {
                fprintf(stderr, "omsd: --jwt-leeway wants 0..86400 seconds, got '%s'\n", optarg);
                return -1;
            }
            o->auth.jwt_leeway = (int)v;
            break;
        }
        case OPT_PROC_BUDGET:
            if (parse_u64(optarg, 0, 1ull << 44, &o->send_budget) != 0) {
                fprintf(stderr, "omsd: --send-budget wants 0..%llu bytes, got '%s'\n", 1ull << 44,
                        optarg);
                return -1;
            }
            break;
        case OPT_MAX_CONNS:
            if (parse_u64(optarg, 1, 10000000, &o->max_connections) != 0) {
                fprintf(stderr, "omsd: --max-connections wants 1..10000000, got '%s'\n", optarg);
                return -1;
            }
            break;
        case OPT_GRACE:
        case OPT_HANDSHAKE:
        case OPT_CONN_IDLE:
        case OPT_CONN_AGE:
        case OPT_CONN_AGE_GRACE:
        case OPT_KA_TIME:
        case OPT_KA_TIMEOUT:
        case OPT_KA_MIN_TIME:
        case OPT_PEER_TIMEOUT: {
            char *end;
            errno = 0;
            double g = strtod(optarg, &end);
            if (errno || *end || !(g >= 0 && g <= 86400)) {
                fprintf(stderr, "omsd: %s wants 0..86400 seconds, got '%s'\n", argv[optind - 1],
                        optarg);
                return -1;
            }
            if (ch == OPT_PEER_TIMEOUT)
                o->orders.peer_timeout_ms = g > 0 ? (uint64_t)(g * 1000) : 1;
            else
                *(ch == OPT_GRACE            ? &o->grace
                  : ch == OPT_HANDSHAKE      ? &o->handshake_timeout
                  : ch == OPT_CONN_IDLE      ? &o->conn_idle
                  : ch == OPT_CONN_AGE       ? &o->conn_age
                  : ch == OPT_CONN_AGE_GRACE ? &o->conn_age_grace
                  : ch == OPT_KA_TIME        ? &o->keepalive_time
                  : ch == OPT_KA_MIN_TIME    ? &o->keepalive_min_time
                                             : &o->keepalive_timeout) = g;
            break;
        }
        case OPT_STORE:
            if (strncmp(optarg, "sqlite:", 7) != 0 || !optarg[7]) {
                fprintf(stderr, "omsd: --store wants sqlite:PATH, got '%s'\n", optarg);
                return -1;
            }
            o->orders.store_url = optarg;
            break;
        case OPT_SERVICES:
            if (parse_services(optarg, &o->orders.services) != 0) {
                fprintf(stderr,
                        "omsd: --services wants all or a list of customers,inventory,orders, "
                        "got '%s'\n",
                        optarg);
                return -1;
            }
            break;
        case OPT_INV:
            o->orders.inventory_target = optarg;
            break;
        case OPT_CUST:
            o->orders.customers_target = optarg;
            break;
        case OPT_PEER_CA:
            o->orders.peer_ca_file = optarg;
            break;
        case OPT_PEER_NAME:
            o->orders.peer_server_name = optarg;
            break;
        case OPT_KA_PERMIT:
            o->ping_without_calls = true;
            break;
        case OPT_PEER_H2C:
            o->orders.peer_tls = false;
            break;
        case OPT_RING: {
            uint64_t n;
            if (parse_u64(optarg, 16, 1u << 24, &n) != 0) {
                fprintf(stderr, "omsd: --event-ring wants 16..16777216, got '%s'\n", optarg);
                return -1;
            }
            o->orders.event_ring = (size_t)n;
            break;
        }
        case OPT_IMPORT_MAX: {
            uint64_t n;
            if (parse_u64(optarg, 1, 100000000, &n) != 0) {
                fprintf(stderr, "omsd: --import-max-rows wants 1..100000000, got '%s'\n", optarg);
                return -1;
            }
            o->orders.max_import_rows = (size_t)n;
            break;
        }
        case OPT_NO_DEMO:
            o->orders.demo_data = false;
            break;
        case OPT_KEY_RETENTION:
            if (parse_duration_ms(optarg, &o->orders.idempotency_retention_ms) != 0) {
                fprintf(stderr,
                        "omsd: --idempotency-retention wants N[s|m|h|d] up to 3650d, got '%s'\n",
                        optarg);
                return -1;
            }
            break;
        case OPT_BENCH_ONLY:
            o->bench_only = true;
            break;
        case OPT_AUTHZ_POLICY:
            o->authz.policy_file = optarg;
            break;
        case OPT_REFLECTION_AUTH:
            o->authz.reflection_auth = true;
            break;
        case OPT_WORKERS:
            if (parse_u64(optarg, 1, 64, &o->workers) != 0) {
                fprintf(stderr, "omsd: --workers wants 1..64, got '%s'\n", optarg);
                return -1;
            }
            break;
        case OPT_LOG:
            if (oms_log_parse_level(optarg, &o->log_level) != 0) {
                fprintf(stderr,
                        "omsd: --log-level wants debug, info, warn, error or off, got '%s'\n",
                        optarg);
                return -1;
            }
            break;
        case OPT_LOG_FORMAT:
            if (oms_log_parse_format(optarg, &o->log_format) != 0) {
                fprintf(stderr, "omsd: --log-format wants text or json, got '%s'\n", optarg);
                return -1;
            }
            break;
        case OPT_ACCESS_LOG:
            if (!*optarg) {
                fprintf(stderr, "omsd: --access-log wants a file or -\n");
                return -1;
            }
            o->access_log = optarg;
            break;
        case OPT_ACCESS_LOG_BUFFER:
            if (parse_u64(optarg, 8192, 1ull << 30, &o->access_log_buffer) != 0) {
                fprintf(stderr, "omsd: --access-log-buffer wants 8192..%llu bytes, got '%s'\n",
                        1ull << 30, optarg);
                return -1;
            }
            break;
        case 'h':
            usage(stdout);
            exit(0);
        case 'V':
            oms_cli_print_version(stdout, "omsd");
            exit(0);
        case ':':
            fprintf(stderr, "omsd: %s needs a value (see --help)\n", argv[optind - 1]);
            return -1;
        default:
            oms_cli_unknown_getopt("omsd", argv[optind - 1], longopts);
            return -1;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "omsd: unexpected argument '%s' (see --help)\n", argv[optind]);
        return -1;
    }
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
static int worker_listen(worker *w, const options *o, http2_server_config *hcfg)
{
    if (uv_loop_init(&w->loop) != 0)
        return -1;
    w->loop_on = true;
    rpc_server_config rcfg;
    rpc_server_config_init(&rcfg);
    rcfg.max_recv_msg = o->max_recv_msg;
    w->rpc = rpc_server_new(&rcfg);
    w->health = rpc_health_new();
    w->refl = rpc_reflection_new(oms_descriptor_set, oms_descriptor_set_len);
    if (!w->rpc || !w->health || !w->refl) {
        fprintf(stderr, "omsd: cannot set up services (out of memory or bad descriptor set)\n");
        return -1;
    }
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
static int worker_serve(worker *w, interop_service *interop, bench_service *bench)
{
    if ((w->app->test_services &&
         (rpc_server_add_service(w->rpc, interop_test_service(interop)) != 0 ||
          rpc_server_add_service(w->rpc, bench_service_impl(bench)) != 0)) ||
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
    orders_loop_stats os[64];
    size_t n = (size_t)a->nworkers;
    for (size_t i = 0; i < n; i++) {
        http2_server_get_stats(a->workers[i].h2, &hs[i]);
        http2_server_get_closed_by(a->workers[i].h2, closed_by[i]);
        uint64_t v[HUB_STATS];
        for (int k = 0; k < HUB_STATS; k++)
            v[k] = atomic_load_explicit(&a->workers[i].hub[k], memory_order_relaxed);
        memcpy(&os[i], v, sizeof v);
    }
    omsd_metrics_transport(t, hs, (const uint64_t(*)[HTTP2_CLOSE_REASONS])closed_by, n);
    if (a->orders) {
        store_stats st;
        orders_store_stats(a->orders, &st);
        omsd_metrics_store(t, &st);
        omsd_metrics_events(t, os, n);
    }
}

int main(int argc, char **argv)
{
    options o = {
        .host = "127.0.0.1",
        .port = 50051,
        .cert = "certs/server.pem",
        .key = "certs/server.key",
        .client_auth = -1,
        .tls_min_version = 12,
        .test_services = true,
        .max_recv_msg = 4u << 20,
        .max_streams = 1000,
        .max_header_list = 16u << 10,
        .grace = 10,
        .handshake_timeout = 10,
        .conn_idle = 300,
        .conn_send_budget = 16u << 20,
        .send_budget = 256u << 20,
        .keepalive_time = 7200,
        .keepalive_timeout = 20,
        .keepalive_min_time = 300,
        .log_level = OMS_LOG_INFO,
        .auth = {.jwt_leeway = -1},
    };
    unsigned cores = uv_available_parallelism();
    o.workers = cores < 1 ? 1 : cores > 64 ? 64 : cores;
    orders_config_init(&o.orders);
    if (access("certs/ca.pem", R_OK) == 0)
        o.orders.peer_ca_file = "certs/ca.pem";
    if (parse_args(argc, argv, &o) != 0)
        return 2;
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
    bench_service *bench = bench_service_new();
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
    bench_service_free(bench);
    interop_service_free(interop);
    omsd_authz_dispose(&o.authz);
    return rc;
}
