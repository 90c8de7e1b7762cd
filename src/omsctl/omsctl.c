/* omsctl - the command-line client of oms.
 *
 *   omsctl [--target ADDR] [--ca FILE] [--h2c] [--server-name NAME] [--timeout SEC] [--json]
 *          [--token TOKEN | --token-file FILE]
 *          COMMAND ...
 *
 * Global flags, defaults (OMS_TARGET / OMS_CA, certs/ca.pem), the channel and
 * the exit-code policy live here; each command is in omsctl_*.c.
 */
#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "omsctl/omsctl.h"
#include "base/cli.h"
#include "base/cli_token.h"
#include "base/log.h"

#ifndef OMS_DEFAULT_CA_FILE
#define OMS_DEFAULT_CA_FILE "/etc/oms/ca.pem"
#endif

typedef struct command {
    const char *name;
    omsctl_cmd_fn fn;
    const char *synopsis; /* lines after "omsctl [flags] " */
    const char *help;
} command;

static const command commands[] = {
    {"customers", omsctl_cmd_customers,
     "customers [list]\n"
     "customers create NAME EMAIL\n"
     "customers get ID\n"
     "customers suspend ID\n"
     "customers activate ID",
     "List, create, show, suspend or re-activate customers."},
    {"products", omsctl_cmd_products,
     "products [list]\n"
     "products get SKU\n"
     "products upsert SKU NAME PRICE_CENTS",
     "List, show, or create/update products (price in integer cents)."},
    {"stock", omsctl_cmd_stock,
     "stock\n"
     "stock SKU DELTA",
     "Without arguments: on-hand, reserved and available units per product.\n"
     "With SKU DELTA: add DELTA (may be negative) to the SKU's on-hand stock."},
    {"orders", omsctl_cmd_orders,
     "orders [list] [--customer ID] [--status S] [--from MS] [--to MS] [--page-size N]\n"
     "orders get ID",
     "List orders, oldest first (filters: customer, status, creation time in unix\n"
     "milliseconds, FROM inclusive, TO exclusive), or show one order."},
    {"create", omsctl_cmd_create, "create CUSTOMER_ID SKU:QTY [SKU:QTY...] [--key IDEMPOTENCY_KEY]",
     "Create an order. With --key, a retry returns the first order, never a second one."},
    {"cancel", omsctl_cmd_cancel, "cancel ORDER_ID [--reason TEXT] [--expected-version N]",
     "Cancel a pending or confirmed order (its stock is released)."},
    {"status", omsctl_cmd_status, "status ORDER_ID STATUS [--expected-version N]",
     "Move an order to STATUS: confirmed, shipped, delivered or cancelled\n"
     "(case-insensitive). --expected-version: ABORTED (exit 4) if the order changed."},
    {"import", omsctl_cmd_import, "import FILE.csv",
     "Create orders from a CSV file over one client stream (ImportOrders).\n"
     "Columns: row_id,customer_id,sku,quantity[,idempotency_key]; a first line\n"
     "starting with \"row_id\" is a header; no quoting (fields cannot hold commas).\n"
     "Consecutive lines with the same row_id form one order. \"-\" reads standard\n"
     "input. The file is streamed, never loaded whole. A malformed line fails its\n"
     "row locally (reported with its line number, code INVALID_ARGUMENT, never\n"
     "sent); other rows go on. Prints one line per row (local failures as they are\n"
     "read, then the server's results in order) and a summary.\n"
     "Exit 0 if every row created an order, 4 if any row failed."},
    {"watch", omsctl_cmd_watch, "watch [--customer ID] [--order ID]... [--since N]",
     "Print order events as they happen, one line each (--json: one object per\n"
     "line), until interrupted (Ctrl-C, exit 0) or the server ends the stream.\n"
     "--since N first replays every matching event with seq >= N. On connection\n"
     "loss or UNAVAILABLE it reconnects with backoff and resumes after the last\n"
     "event seen, so nothing is lost or repeated (a watch that has seen no event\n"
     "yet and started without --since resumes live only)."},
    {"track", omsctl_cmd_track, "track [--since N] ORDER_ID...",
     "Follow the given orders interactively (TrackOrders). Standard input takes\n"
     "commands, one per line: \"+ID\" or \"sub ID...\" subscribes, \"-ID\" or\n"
     "\"unsub ID...\" unsubscribes; end of input half-closes the stream. Events are\n"
     "printed as they arrive until the server ends the stream or Ctrl-C (exit 0).\n"
     "--since N replays each subscribed order's events from seq N first. No\n"
     "automatic reconnection (use watch for that): connection loss exits 2."},
    {"health", omsctl_cmd_health, "health [SERVICE]",
     "grpc.health.v1 Check of SERVICE (default: the whole server). Prints SERVING,\n"
     "NOT_SERVING, ...; exits 0 only when SERVING, 2 otherwise (3: unknown service)."},
    {"token", omsctl_cmd_token,
     "token --key FILE --sub NAME [--scope \"A B\"] [--customer ID] [--ttl 1h]\n"
     "token ... [--alg RS256|ES256|EdDSA|HS256] [--iss X] [--aud Y] [--kid K]",
     "Mint a development JWT locally (no server) and print it, for --token,\n"
     "OMS_TOKEN or grpcurl -H \"authorization: Bearer TOKEN\". --key: a PEM private\n"
     "key (RS256, ES256 or EdDSA, from the key type; certs/jwt-signing.pem from\n"
     "scripts/certs.sh) or an HS256 secret file (not PEM, at least 32 bytes).\n"
     "--ttl: seconds, or with s/m/h/d (default 1h). --customer: the customer_id\n"
     "claim (the token acts for that customer only). The kid is the key's RFC 7638\n"
     "thumbprint unless --kid is given (HS256: none). --json: {\"token\":...}."},
};
#define NCOMMANDS (sizeof commands / sizeof commands[0])

static const char global_help_tail[] =
    "\n"
    "Output: aligned columns, money in dollars (12.34), times in UTC. Errors go to\n"
    "stderr as \"omsctl: CODE: message\", with the server's error details indented\n"
    "below; with --json as {\"code\":\"CODE\",\"message\":...,\"details\":[...]}.\n"
    "\n"
    "Exit codes:\n"
    "  0  success\n"
    "  1  usage error (bad flags or arguments, unreadable file)\n"
    "  2  cannot reach the server: connection failure, UNAVAILABLE, DEADLINE_EXCEEDED\n"
    "  3  NOT_FOUND\n"
    "  4  request rejected: INVALID_ARGUMENT, FAILED_PRECONDITION, ALREADY_EXISTS,\n"
    "     ABORTED, OUT_OF_RANGE (and import rows that failed)\n"
    "  5  any other server error (INTERNAL, UNIMPLEMENTED, PERMISSION_DENIED, ...)\n";

/* The global flags: a table (base/cli.h) that matches them and writes their
 * help. The client key comes first: before the command only (after it,
 * create's --key is the idempotency key). */
static int on_target(const oms_cli_opt *o, const char *arg, void *ctx)
{
    (void)o;
    if (oms_cli_targets(arg) < 0)
        return -1;
    ((omsctl *)ctx)->target = arg;
    return 0;
}

static int on_timeout(const oms_cli_opt *o, const char *arg, void *ctx)
{
    (void)o;
    (void)arg;
    ((omsctl *)ctx)->timeout_set = true;
    return 0;
}

#define NGLOBAL_OPTS 11

/* Fills t with the global flags storing into ctl; returns their number. */
static size_t global_opts(omsctl *ctl, oms_cli_opt t[NGLOBAL_OPTS])
{
    const oms_cli_opt opts[NGLOBAL_OPTS] = {
        {.name = "key",
         .type = OMS_CLI_STRING,
         .arg = "FILE",
         .dest = &ctl->key_file,
         .help = "its private key (both or neither); before the command\n"
                 "only (after it, create's --key is the idempotency key)"},
        {.name = "target",
         .type = OMS_CLI_CALL,
         .arg = "ADDR",
         .fn = on_target,
         .want = "host:port[,host:port...] (IPv6 as [::1]:port)",
         .help =
             "server, host:port[,host:port...] (default $OMS_TARGET or " OMSCTL_DEFAULT_TARGET ")"},
        {.name = "ca",
         .type = OMS_CLI_STRING,
         .arg = "FILE",
         .dest = &ctl->ca_file,
         .help = "PEM CA roots for TLS (default $OMS_CA, else " OMSCTL_DEFAULT_CA " in the\n"
                 "working directory, else ../" OMSCTL_DEFAULT_CA " next to the\n"
                 "omsctl binary, else " OMS_DEFAULT_CA_FILE " if it exists,\n"
                 "else the system's roots)"},
        {.name = "cert",
         .type = OMS_CLI_STRING,
         .arg = "FILE",
         .dest = &ctl->cert_file,
         .help = "client certificate (PEM) for servers that ask for one"},
        {.name = "h2c",
         .type = OMS_CLI_FLAG,
         .dest = &ctl->h2c,
         .help = "plaintext HTTP/2 instead of TLS"},
        {.name = "server-name",
         .type = OMS_CLI_STRING,
         .arg = "NAME",
         .dest = &ctl->server_name,
         .help = "TLS server name (SNI and certificate check; default: the host)"},
        {.name = "token",
         .type = OMS_CLI_STRING,
         .arg = "TOKEN",
         .dest = &ctl->token,
         .help = "bearer token: every call carries 'authorization: Bearer\n"
                 "TOKEN' (default $OMS_TOKEN; visible in ps: prefer\n"
                 "--token-file or $OMS_TOKEN)"},
        {.name = "token-file",
         .type = OMS_CLI_STRING,
         .arg = "FILE",
         .dest = &ctl->token_file,
         .help = "read the token from FILE (surrounding whitespace ignored)"},
        {.name = "timeout",
         .type = OMS_CLI_DOUBLE,
         .arg = "SEC",
         .dest = &ctl->timeout_s,
         .fmax = 1e6,
         .fn = on_timeout,
         .want = "seconds >= 0",
         .help = "deadline per call, default 10 (0: none); import has none\n"
                 "unless it is given; for watch and track it is how long to\n"
                 "run before exiting 0"},
        {.name = "json",
         .type = OMS_CLI_FLAG,
         .dest = &ctl->json,
         .help = "JSON output, one object per line; customers, products, orders and\n"
                 "events in protobuf's JSON mapping (camelCase, int64 as strings)"},
        {.name = "version", .type = OMS_CLI_FLAG, .help = "print the version and git commit"},
    };
    memcpy(t, opts, sizeof opts);
    return NGLOBAL_OPTS;
}

static void print_global_help(FILE *f)
{
    omsctl dummy;
    oms_cli_opt t[NGLOBAL_OPTS];
    size_t n = global_opts(&dummy, t);
    fprintf(f, "Global flags (before or after the command):\n");
    oms_cli_help_opts(f, t + 1, 3, 22); /* --target, --ca, --cert */
    oms_cli_help_opts(f, t, 1, 22);     /* --key */
    oms_cli_help_opts(f, t + 4, n - 5, 22);
    fprintf(f, "  -h, --help          this help; COMMAND --help: that command's\n");
    oms_cli_help_opts(f, t + n - 1, 1, 22);
    fputs(global_help_tail, f);
}

static const command *find_command(const char *name)
{
    for (size_t i = 0; i < NCOMMANDS; i++)
        if (strcmp(commands[i].name, name) == 0)
            return &commands[i];
    return NULL;
}

/* Prints a synopsis block, each line prefixed with "  omsctl [flags] ". */
static void print_synopsis(FILE *f, const char *syn)
{
    while (*syn) {
        const char *nl = strchr(syn, '\n');
        size_t n = nl ? (size_t)(nl - syn) : strlen(syn);
        fprintf(f, "  omsctl [flags] %.*s\n", (int)n, syn);
        syn += n + (nl ? 1 : 0);
    }
}

void omsctl_usage(FILE *f, const char *cmd)
{
    const command *c = cmd ? find_command(cmd) : NULL;
    if (c) {
        fprintf(f, "Usage:\n");
        print_synopsis(f, c->synopsis);
        fprintf(f, "\n%s\n\n", c->help);
        print_global_help(f);
        return;
    }
    fprintf(f, "omsctl - command-line client of the oms order-management system\n\nUsage:\n");
    for (size_t i = 0; i < NCOMMANDS; i++)
        print_synopsis(f, commands[i].synopsis);
    fprintf(f, "\nCommands:\n");
    for (size_t i = 0; i < NCOMMANDS; i++) {
        const char *h = commands[i].help;
        fprintf(f, "  %-10s", commands[i].name);
        while (*h) {
            const char *nl = strchr(h, '\n');
            size_t n = nl ? (size_t)(nl - h) : strlen(h);
            fprintf(f, "%s%.*s\n", h == commands[i].help ? "" : "            ", (int)n, h);
            h += n + (nl ? 1 : 0);
        }
    }
    fprintf(f, "\n");
    print_global_help(f);
}

int omsctl_usage_error(const char *cmd, const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "omsctl: ");
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    const command *c = cmd ? find_command(cmd) : NULL;
    fprintf(stderr, "\nUsage:\n");
    if (c) {
        print_synopsis(stderr, c->synopsis);
    } else {
        for (size_t i = 0; i < NCOMMANDS; i++)
            print_synopsis(stderr, commands[i].synopsis);
    }
    fprintf(stderr, "Try 'omsctl %s%s--help' for more.\n", c ? c->name : "", c ? " " : "");
    return OMSCTL_EXIT_USAGE;
}

int omsctl_exit_code(rpc_status code)
{
    switch (code) {
    case RPC_OK:
        return OMSCTL_EXIT_OK;
    case RPC_UNAVAILABLE:
    case RPC_DEADLINE_EXCEEDED:
        return OMSCTL_EXIT_UNAVAILABLE;
    case RPC_NOT_FOUND:
        return OMSCTL_EXIT_NOT_FOUND;
    case RPC_INVALID_ARGUMENT:
    case RPC_FAILED_PRECONDITION:
    case RPC_ALREADY_EXISTS:
    case RPC_ABORTED:
    case RPC_OUT_OF_RANGE:
        return OMSCTL_EXIT_REJECTED;
    default:
        return OMSCTL_EXIT_SERVER;
    }
}

int omsctl_parse_i64(const char *s, int64_t *out)
{
    if (!s || !*s)
        return -1;
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno != 0 || *end != '\0' || end == s)
        return -1;
    *out = (int64_t)v;
    return 0;
}

int omsctl_parse_order_status(const char *s, Oms__V1__OrderStatus *out)
{
    static const struct {
        const char *name;
        Oms__V1__OrderStatus v;
    } t[] = {
        {"pending", OMS__V1__ORDER_STATUS__ORDER_STATUS_PENDING},
        {"confirmed", OMS__V1__ORDER_STATUS__ORDER_STATUS_CONFIRMED},
        {"shipped", OMS__V1__ORDER_STATUS__ORDER_STATUS_SHIPPED},
        {"delivered", OMS__V1__ORDER_STATUS__ORDER_STATUS_DELIVERED},
        {"cancelled", OMS__V1__ORDER_STATUS__ORDER_STATUS_CANCELLED},
        {"canceled", OMS__V1__ORDER_STATUS__ORDER_STATUS_CANCELLED},
    };
    if (strncasecmp(s, "ORDER_STATUS_", 13) == 0)
        s += 13;
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
        if (strcasecmp(s, t[i].name) == 0) {
            *out = t[i].v;
            return 0;
        }
    }
    return -1;
}

bool omsctl_opt(int argc, char **argv, int *i, const char *name, const char **val, bool *missing)
{
    const char *a = argv[*i];
    size_t n = strlen(name);
    *missing = false;
    if (strncmp(a, name, n) != 0)
        return false;
    if (a[n] == '=') {
        *val = a + n + 1;
        return true;
    }
    if (a[n] != '\0')
        return false;
    if (*i + 1 >= argc) {
        *missing = true;
        return true;
    }
    *val = argv[++*i];
    return true;
}

int omsctl_parse_args(const char *cmd, int argc, char **argv, int first, const char *const *names,
                      const char **vals, size_t nnames, int *npos)
{
    bool positional_only = false;
    int n = 0;
    for (int i = first; i < argc; i++) {
        const char *a = argv[i];
        if (positional_only || a[0] != '-' || a[1] != '-') {
            argv[first + n++] = argv[i];
            continue;
        }
        if (a[2] == '\0') { /* "--": the rest is positional */
            positional_only = true;
            continue;
        }
        size_t k;
        for (k = 0; k < nnames; k++) {
            bool missing;
            if (omsctl_opt(argc, argv, &i, names[k], &vals[k], &missing)) {
                if (missing)
                    return omsctl_usage_error(cmd, "%s needs a value", names[k]);
                break;
            }
        }
        if (k == nnames)
            return omsctl_unknown_option(cmd, a, names, nnames);
    }
    *npos = n;
    return 0;
}

int omsctl_unknown_option(const char *cmd, const char *arg, const char *const *names, size_t n)
{
    const char *cands[64];
    char globals[NGLOBAL_OPTS + 1][24];
    size_t k = 0;
    for (size_t i = 0; i < n && k < 64; i++)
        cands[k++] = names[i];
    omsctl dummy;
    oms_cli_opt t[NGLOBAL_OPTS];
    size_t ng = global_opts(&dummy, t);
    for (size_t i = 0; i < ng && k < 64; i++) {
        snprintf(globals[i], sizeof globals[i], "--%s", t[i].name);
        cands[k++] = globals[i];
    }
    snprintf(globals[ng], sizeof globals[ng], "--help");
    if (k < 64)
        cands[k++] = globals[ng];
    char help[64];
    snprintf(help, sizeof help, "omsctl %s%s--help", cmd ? cmd : "", cmd ? " " : "");
    oms_cli_unknown("omsctl", arg, cands, k, help);
    return OMSCTL_EXIT_USAGE;
}

bool omsctl_global_flag(omsctl *ctl, int argc, char **argv, int *i, bool before_command, int *rc)
{
    oms_cli_opt t[NGLOBAL_OPTS];
    size_t n = global_opts(ctl, t) - 1; /* --version: main's */
    char msg[512];
    /* the client key only before the command */
    int m = before_command ? oms_cli_match(t, n, argc, argv, i, ctl, msg, sizeof msg)
                           : oms_cli_match(t + 1, n - 1, argc, argv, i, ctl, msg, sizeof msg);
    *rc = m < 0 ? omsctl_usage_error(NULL, "%s", msg) : 0;
    return m != 0;
}

int omsctl_connect(omsctl *ctl)
{
    rpc_channel_config cfg;
    char err[256];
    rpc_channel_config_init(&cfg);
    cfg.target = ctl->target;
    cfg.tls = !ctl->h2c;
    cfg.ca_file = ctl->h2c ? NULL : ctl->ca_file;
    cfg.server_name = ctl->server_name;
    if (!ctl->cert_file != !ctl->key_file)
        return omsctl_usage_error(NULL, "--cert and --key go together");
    cfg.cert_file = ctl->h2c ? NULL : ctl->cert_file;
    cfg.key_file = ctl->h2c ? NULL : ctl->key_file;
    cfg.user_agent = "omsctl";
    if (ctl->fast_backoff) {
        /* watch resumes a stream after a server restart: retry the
         * connection often rather than after gRPC's 1 s, 1.6 s, ... */
        cfg.backoff_initial_ms = 200;
        cfg.backoff_multiplier = 1.6;
        cfg.backoff_max_ms = 5000;
        cfg.connect_timeout_ms = 5000;
    }
    if (ctl->timeout_set && ctl->timeout_s > 0 && ctl->timeout_s * 1000 < 20000)
        cfg.connect_timeout_ms = (uint64_t)(ctl->timeout_s * 1000);
    char *token; /* call credentials: the channel keeps a copy */
    if (oms_cli_token(ctl->token, ctl->token_file, &token, err, sizeof err) != 0) {
        fprintf(stderr, "omsctl: %s\n", err);
        return OMSCTL_EXIT_USAGE;
    }
    cfg.token = token;
    ctl->chan = rpc_channel_new(&ctl->loop, &cfg, err, sizeof err);
    free(token);
    if (!ctl->chan) {
        fprintf(stderr, "omsctl: %s\n", err);
        return OMSCTL_EXIT_USAGE;
    }
    return 0;
}

rpc_call_opts omsctl_call_opts(omsctl *ctl)
{
    rpc_call_opts o;
    memset(&o, 0, sizeof o);
    o.timeout_ms = (uint64_t)(ctl->timeout_s * 1000.0 + 0.5);
    free(ctl->details);
    ctl->details = NULL;
    ctl->details_len = 0;
    o.details = &ctl->details;
    o.details_len = &ctl->details_len;
    return o;
}

bool omsctl_stdout_failed(omsctl *ctl)
{
    if (!ferror(stdout))
        return false;
    if (!ctl->stdout_errno)
        ctl->stdout_errno = errno ? errno : EIO; /* right after the failed write */
    return true;
}

void omsctl_run_until(omsctl *ctl, const bool *flag)
{
    while (!*flag)
        if (uv_run(&ctl->loop, UV_RUN_ONCE) == 0 && !*flag)
            break;
}

/* The CA used when neither --ca nor OMS_CA says: certs/ca.pem in the working
 * directory (a source checkout), else next to the binary's directory
 * (<dir>/../certs/ca.pem: build/omsctl in a checkout, or bin/omsctl under an
 * install prefix holding certs/), else OMS_DEFAULT_CA_FILE if the build set
 * one (the build's sysconfdir/oms/ca.pem). NULL: the system's roots. */
static const char *default_ca(char *buf, size_t len)
{
    if (access(OMSCTL_DEFAULT_CA, R_OK) == 0)
        return OMSCTL_DEFAULT_CA;
    size_t n = len;
    if (uv_exepath(buf, &n) == 0) {
        char *slash = strrchr(buf, '/');
        if (slash && (size_t)(slash - buf) + sizeof "/../" OMSCTL_DEFAULT_CA <= len) {
            strcpy(slash, "/../" OMSCTL_DEFAULT_CA);
            if (access(buf, R_OK) == 0)
                return buf;
        }
    }
    if (access(OMS_DEFAULT_CA_FILE, R_OK) == 0)
        return OMS_DEFAULT_CA_FILE;
    return NULL;
}

static void on_channel_freed(void *arg)
{
    *(bool *)arg = true;
}

int main(int argc, char **argv)
{
    omsctl ctl;
    memset(&ctl, 0, sizeof ctl);
    signal(SIGPIPE, SIG_IGN); /* a closed stdout or socket is an error return */
    const char *env = getenv("OMS_TARGET");
    ctl.target = env && *env ? env : OMSCTL_DEFAULT_TARGET;
    env = getenv("OMS_CA");
    char ca_buf[PATH_MAX];
    if (env && *env)
        ctl.ca_file = env;
    else
        ctl.ca_file = default_ca(ca_buf, sizeof ca_buf);
    /* The libraries' log lines are for servers: a CLI reports through its
     * own messages (OMS_LOG_LEVEL=debug shows them when hunting a bug). */
    oms_log_level level = OMS_LOG_OFF;
    env = getenv("OMS_LOG_LEVEL");
    if (env && oms_log_parse_level(env, &level) != 0)
        level = OMS_LOG_OFF;
    oms_log_set_level(level);
    ctl.timeout_s = OMSCTL_DEFAULT_TIMEOUT;

    /* Global flags may come before or after the command: gather everything
     * that is not one into cargv (the command and its own arguments). */
    char **cargv = calloc((size_t)argc + 1, sizeof *cargv);
    if (!cargv)
        return OMSCTL_EXIT_SERVER;
    int cargc = 0;
    bool help = false, rest = false;
    for (int i = 1; i < argc; i++) {
        int rc;
        if (rest) {
            cargv[cargc++] = argv[i];
        } else if (strcmp(argv[i], "--") == 0) {
            rest = true;
            cargv[cargc++] = argv[i];
        } else if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            help = true;
        } else if (strcmp(argv[i], "--version") == 0) {
            free(cargv);
            oms_cli_print_version(stdout, "omsctl");
            return OMSCTL_EXIT_OK;
        } else if (omsctl_global_flag(&ctl, argc, argv, &i, cargc == 0, &rc)) {
            if (rc) {
                free(cargv);
                return rc;
            }
        } else if (cargc == 0 && argv[i][0] == '-' && argv[i][1] != '\0') {
            /* before the command, only global flags are options */
            free(cargv);
            return omsctl_unknown_option(NULL, argv[i], NULL, 0);
        } else {
            cargv[cargc++] = argv[i];
        }
    }
    int off = 0; /* "help COMMAND" is "COMMAND --help" */
    if (cargc > 0 && strcmp(cargv[0], "help") == 0) {
        help = true;
        off = 1;
    }
    const char *name = cargc > off ? cargv[off] : NULL;
    const command *c = name ? find_command(name) : NULL;
    if (name && !c) {
        free(cargv);
        return omsctl_usage_error(NULL, "unknown command '%s'", name);
    }
    if (help || !c) {
        free(cargv);
        omsctl_usage(help ? stdout : stderr, name);
        return help ? OMSCTL_EXIT_OK : OMSCTL_EXIT_USAGE;
    }
    if (uv_loop_init(&ctl.loop) != 0) {
        free(cargv);
        fprintf(stderr, "omsctl: cannot create the event loop\n");
        return OMSCTL_EXIT_SERVER;
    }
    omsctl_err_init(ctl.json, ctl.h2c ? NULL : ctl.ca_file);
    int rc = c->fn(&ctl, cargc, cargv);
    free(cargv);
    free(ctl.details);
    errno = 0;
    if (fflush(stdout) != 0)
        (void)omsctl_stdout_failed(&ctl);
    if (ferror(stdout) && rc == 0 && ctl.stdout_errno != EPIPE) {
        /* a reader that went away (omsctl ... | head) is not an error */
        fprintf(stderr, "omsctl: error writing to standard output: %s\n",
                strerror(ctl.stdout_errno ? ctl.stdout_errno : EIO));
        rc = OMSCTL_EXIT_SERVER;
    }
    if (ctl.chan) {
        bool freed = false;
        rpc_channel_free(ctl.chan, on_channel_freed, &freed);
        omsctl_run_until(&ctl, &freed);
    }
    uv_run(&ctl.loop, UV_RUN_DEFAULT);
    (void)uv_loop_close(&ctl.loop);
    return rc;
}
