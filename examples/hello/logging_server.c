/* hello_logging_server [--listen HOST:PORT] [--h2c | --cert PEM --key PEM]: hello.v1.Greeter
 * behind two server interceptors (rpc.h, "interceptors"):
 *  - require_id rejects calls without an x-request-id header (INVALID_ARGUMENT): the handler
 *    never sees them;
 *  - access_log prints one line per call when it ends, rejected ones included: method, request
 *    id, status, duration, messages and bytes each way.
 * Prints "listening on HOST:PORT (tls|h2c)" once ready, then the log lines; Ctrl-C stops it. */
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "hello.omsrpc.h"

/* on_start runs before the handler: say yes (CONTINUE) or end the call (rpc_call_reject). */
static rpc_intercept_action require_id(rpc_call *c, void *data, void **state)
{
    (void)data;
    (void)state;
    if (!rpc_metadata_get(rpc_call_metadata(c), "x-request-id", NULL))
        rpc_call_reject(c, RPC_INVALID_ARGUMENT, "x-request-id header required");
    return RPC_INTERCEPT_CONTINUE;
}

/* Registered first, so it starts first and ends last: it sees every call, whatever a later
 * interceptor or the handler decided. */
static rpc_intercept_action log_start(rpc_call *c, void *data, void **state)
{
    (void)c;
    (void)data;
    (void)state;
    return RPC_INTERCEPT_CONTINUE;
}

static void log_end(rpc_call *c, void *data, void *state, const rpc_call_stats *st)
{
    (void)data;
    (void)state;
    size_t idlen = 0;
    const uint8_t *id = rpc_metadata_get(rpc_call_metadata(c), "x-request-id", &idlen);
    printf("%s/%s id=%.*s peer=%s code=%s %.3f ms in=%llu msg/%llu B out=%llu msg/%llu B\n",
           rpc_call_service(c), rpc_call_method(c), id ? (int)idlen : 1,
           id ? (const char *)id : "-", rpc_call_peer(c), rpc_status_name(st->code),
           (double)st->duration_ns / 1e6, (unsigned long long)st->msgs_received,
           (unsigned long long)st->bytes_received, (unsigned long long)st->msgs_sent,
           (unsigned long long)st->bytes_sent);
    fflush(stdout);
}

static const rpc_interceptor access_log = {
    .name = "access-log", .on_start = log_start, .on_end = log_end};
static const rpc_interceptor id_check = {.name = "require-id", .on_start = require_id};

static void on_say_hello(rpc_call *c, const Hello__V1__HelloRequest *req)
{
    char text[128];
    snprintf(text, sizeof text, "Hello, %s!", req->name[0] ? req->name : "world");
    Hello__V1__HelloReply reply = HELLO__V1__HELLO_REPLY__INIT;
    reply.message = text;
    if (hello__v1__greeter__say_hello__send(c, &reply) >= 0)
        rpc_call_finish(c, RPC_OK, NULL);
}

static const Hello__V1__Greeter_Server greeter = {.say_hello = {.on_request = on_say_hello}};

static http2_server *h2;
static uv_signal_t sigint;

static void on_sigint(uv_signal_t *s, int signum)
{
    (void)signum;
    uv_close((uv_handle_t *)s, NULL);
    http2_server_shutdown(h2, 1000, NULL, NULL);
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {{"listen", required_argument, NULL, 'l'},
                                         {"h2c", no_argument, NULL, 'p'},
                                         {"cert", required_argument, NULL, 'c'},
                                         {"key", required_argument, NULL, 'k'},
                                         {NULL, 0, NULL, 0}};
    char host[64] = "127.0.0.1", err[256];
    http2_server_config cfg;
    http2_server_config_init(&cfg);
    for (int ch; (ch = getopt_long(argc, argv, "", opts, NULL)) != -1;) {
        if (ch == 'p')
            cfg.tls = 0;
        else if (ch == 'c')
            cfg.cert_file = optarg;
        else if (ch == 'k')
            cfg.key_file = optarg;
        else if (ch != 'l' ||
                 (sscanf(optarg, "[%63[^]]]:%d", host, &cfg.port) != 2 &&
                  sscanf(optarg, "%63[^:]:%d", host, &cfg.port) != 2) ||
                 cfg.port < 0 || cfg.port > 65535) {
            fprintf(stderr, "usage: %s [--listen HOST:PORT] [--h2c | --cert PEM --key PEM]\n",
                    argv[0]);
            return 2;
        }
    }
    rpc_server_config rcfg;
    rpc_server_config_init(&rcfg);
    rpc_server *rpc = rpc_server_new(&rcfg);
    /* Interceptors run in the order they are added, before the server serves. */
    if (!rpc || hello__v1__greeter__register_server(rpc, &greeter, NULL) != 0 ||
        rpc_server_add_interceptor(rpc, &access_log, NULL) != 0 ||
        rpc_server_add_interceptor(rpc, &id_check, NULL) != 0) {
        fprintf(stderr, "hello_logging_server: out of memory\n");
        return 1;
    }
    cfg.host = host;
    cfg.handler = rpc_server_stream_handler();
    cfg.handler_data = rpc;
    uv_loop_t *loop = uv_default_loop();
    int rv = http2_server_new(loop, &cfg, &h2, err, sizeof err);
    if (rv != 0 || (rv = http2_server_start(h2)) != 0) {
        fprintf(stderr, "hello_logging_server: %s\n", h2 ? uv_strerror(rv) : err);
        return 1;
    }
    printf("listening on %s:%d (%s)\n", host, http2_server_port(h2), cfg.tls ? "tls" : "h2c");
    fflush(stdout);
    uv_signal_init(loop, &sigint);
    uv_signal_start(&sigint, on_sigint, SIGINT);
    uv_run(loop, UV_RUN_DEFAULT);
    http2_server_free(h2);
    rpc_server_free(rpc);
    return uv_loop_close(loop) == 0 ? 0 : 1;
}
