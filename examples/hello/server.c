/* hello_server [--listen HOST:PORT] [--h2c | --cert PEM --key PEM]: hello.v1.Greeter on libomsrpc.
 * TLS on 127.0.0.1:50051 with certs/server.{pem,key} by default; port 0 picks a free port. Prints
 * "listening on HOST:PORT (tls|h2c)" once ready; Ctrl-C (SIGINT) stops it gracefully. */
#include <getopt.h>
#include <stdio.h>

#include "hello.omsrpc.h"

static void on_say_hello(rpc_call *c, const Hello__V1__HelloRequest *req)
{
    char text[128];
    snprintf(text, sizeof text, "Hello, %s!", req->name[0] ? req->name : "world");
    Hello__V1__HelloReply reply = HELLO__V1__HELLO_REPLY__INIT;
    reply.message = text;
    if (hello__v1__greeter__say_hello__send(c, &reply) >= 0) /* < 0: the call is over */
        rpc_call_finish(c, RPC_OK, NULL);
}

/* At most 10 replies, queued at once; a long stream would wait for on_ready after RPC_AGAIN. */
static void on_lots_of_replies(rpc_call *c, const Hello__V1__HelloRequest *req)
{
    char text[128];
    Hello__V1__HelloReply reply = HELLO__V1__HELLO_REPLY__INIT;
    reply.message = text;
    for (int i = 1; i <= req->count && i <= 10; i++) {
        snprintf(text, sizeof text, "Hello #%d, %s!", i, req->name[0] ? req->name : "world");
        if (hello__v1__greeter__lots_of_replies__send(c, &reply) < 0)
            return;
    }
    rpc_call_finish(c, RPC_OK, NULL);
}

static const Hello__V1__Greeter_Server greeter = {
    .say_hello = {.on_request = on_say_hello},
    .lots_of_replies = {.on_request = on_lots_of_replies},
};

static http2_server *h2;
static uv_signal_t sigint;

/* GOAWAY to every client, in-flight calls get a second; uv_run returns once all is closed. */
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
    if (!rpc || hello__v1__greeter__register_server(rpc, &greeter, NULL) != 0) {
        fprintf(stderr, "hello_server: out of memory\n");
        return 1;
    }
    cfg.host = host;
    cfg.handler = rpc_server_stream_handler(); /* rpc serves the streams http2 accepts */
    cfg.handler_data = rpc;
    uv_loop_t *loop = uv_default_loop();
    int rv = http2_server_new(loop, &cfg, &h2, err, sizeof err); /* binds host:port */
    if (rv != 0 || (rv = http2_server_start(h2)) != 0) {
        fprintf(stderr, "hello_server: %s\n", h2 ? uv_strerror(rv) : err);
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
