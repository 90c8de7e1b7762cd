/* hello_client [--target HOST:PORT] [--h2c | --ca PEM] [--count N] [NAME]: calls
 * hello.v1.Greeter.SayHello on the server at --target (default 127.0.0.1:50051, TLS checked
 * against the system's roots or --ca) and prints the reply; with --count N, then LotsOfReplies
 * and its N replies. Exits 0 if every call ended with OK. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>

#include "hello.omsrpc.h"

static rpc_channel *ch;
static int failed;

static void on_reply(rpc_client_call *c, void *data, const Hello__V1__HelloReply *m)
{
    (void)c;
    (void)data;
    printf("%s\n", m->message);
}

/* The stream ended; freeing the channel closes its connection, so uv_run returns. */
static void on_status(rpc_client_call *c, void *data, rpc_status code, const char *message,
                      const rpc_metadata *trailers)
{
    (void)c;
    (void)data;
    (void)trailers;
    if (code != RPC_OK) {
        fprintf(stderr, "hello_client: LotsOfReplies: status %d: %s\n", code, message);
        failed = 1;
    }
    rpc_channel_free(ch, NULL, NULL);
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {{"target", required_argument, NULL, 't'},
                                         {"h2c", no_argument, NULL, 'p'},
                                         {"ca", required_argument, NULL, 'a'},
                                         {"count", required_argument, NULL, 'n'},
                                         {NULL, 0, NULL, 0}};
    static const Hello__V1__Greeter_LotsOfReplies_Callbacks replies = {.on_message = on_reply,
                                                                       .on_status = on_status};
    rpc_channel_config cfg; /* TLS, connection backoff, retries: the defaults */
    rpc_channel_config_init(&cfg);
    cfg.target = "127.0.0.1:50051";
    Hello__V1__HelloRequest req = HELLO__V1__HELLO_REQUEST__INIT;
    for (int opt; (opt = getopt_long(argc, argv, "", opts, NULL)) != -1;) {
        if (opt == 't')
            cfg.target = optarg;
        else if (opt == 'p')
            cfg.tls = false;
        else if (opt == 'a')
            cfg.ca_file = optarg;
        else if (opt != 'n' || (req.count = atoi(optarg)) < 1 || req.count > 10) {
            fprintf(stderr,
                    "usage: %s [--target HOST:PORT] [--h2c | --ca PEM] [--count 1..10] "
                    "[NAME]\n",
                    argv[0]);
            return 2;
        }
    }
    req.name = optind < argc ? argv[optind] : "world";

    char err[256];
    uv_loop_t *loop = uv_default_loop();
    if (!(ch = rpc_channel_new(loop, &cfg, err, sizeof err))) {
        fprintf(stderr, "hello_client: %s\n", err);
        return 1;
    }
    rpc_call_opts call = {.timeout_ms = 5000}; /* a deadline: fail rather than wait forever */
    Hello__V1__HelloReply *reply = NULL;
    rpc_status code =
        hello__v1__greeter__say_hello__blocking(ch, &req, &reply, &call, err, sizeof err);
    if (code == RPC_OK) {
        printf("%s\n", reply->message);
        hello__v1__hello_reply__free_unpacked(reply, NULL);
    } else {
        fprintf(stderr, "hello_client: SayHello: status %d: %s\n", code, err);
        failed = 1;
    }
    rpc_client_call *stream = NULL;
    if (!failed && req.count > 0 &&
        !(stream = hello__v1__greeter__lots_of_replies__call(ch, &req, &call, &replies, NULL)))
        failed = 1; /* out of memory */
    if (!stream)
        rpc_channel_free(ch, NULL, NULL); /* else on_status frees it */
    uv_run(loop, UV_RUN_DEFAULT);         /* the stream's callbacks, then the channel's close */
    return uv_loop_close(loop) == 0 && !failed ? 0 : 1;
}
