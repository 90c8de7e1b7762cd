/* hello_client [--target HOST:PORT] [--h2c | --ca PEM] [--count N] [--metrics] [NAME]: calls
 * hello.v1.Greeter.SayHello on the server at --target (default 127.0.0.1:50051, TLS checked
 * against the system's roots or --ca) and prints the reply; with --count N, then LotsOfReplies
 * and its N replies. With --metrics, the calls are counted (metrics/metrics.h) and the
 * grpc_client_* families printed to stderr at the end, in Prometheus text format. Exits 0 if
 * every call ended with OK. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>

#include "hello.omsrpc.h"
#include "metrics/metrics.h"

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
    static const struct option opts[] = {
        {"target", required_argument, NULL, 't'}, {"h2c", no_argument, NULL, 'p'},
        {"ca", required_argument, NULL, 'a'},     {"count", required_argument, NULL, 'n'},
        {"metrics", no_argument, NULL, 'm'},      {NULL, 0, NULL, 0}};
    static const Hello__V1__Greeter_LotsOfReplies_Callbacks replies = {.on_message = on_reply,
                                                                       .on_status = on_status};
    rpc_channel_config cfg; /* TLS, connection backoff, retries: the defaults */
    rpc_channel_config_init(&cfg);
    cfg.target = "127.0.0.1:50051";
    Hello__V1__HelloRequest req = HELLO__V1__HELLO_REQUEST__INIT;
    oms_metrics *metrics = NULL;
    int want_metrics = 0;
    for (int opt; (opt = getopt_long(argc, argv, "", opts, NULL)) != -1;) {
        if (opt == 't')
            cfg.target = optarg;
        else if (opt == 'p')
            cfg.tls = false;
        else if (opt == 'a')
            cfg.ca_file = optarg;
        else if (opt == 'm')
            want_metrics = 1;
        else if (opt != 'n' || (req.count = atoi(optarg)) < 1 || req.count > 10) {
            fprintf(stderr,
                    "usage: %s [--target HOST:PORT] [--h2c | --ca PEM] [--count 1..10] "
                    "[--metrics] [NAME]\n",
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
    /* The methods called are known up front, so their series are named from
     * the first call; oms_metrics_start fixes the table. */
    if (want_metrics &&
        (!(metrics = oms_metrics_new(1)) /* one loop: one block */ ||
         oms_metrics_add_client_method(metrics, "/hello.v1.Greeter/SayHello") != 0 ||
         oms_metrics_add_client_method(metrics, "/hello.v1.Greeter/LotsOfReplies") != 0 ||
         oms_metrics_start(metrics) != 0 || oms_metrics_attach_channel(metrics, 0, ch) != 0)) {
        fprintf(stderr, "hello_client: metrics: out of memory\n");
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
    if (metrics) {
        oms_mtext text = {0};
        oms_metrics_render(metrics, &text);
        fwrite(text.buf, 1, text.len, stderr);
        oms_mtext_dispose(&text);
        oms_metrics_free(metrics);
    }
    return uv_loop_close(loop) == 0 && !failed ? 0 : 1;
}
