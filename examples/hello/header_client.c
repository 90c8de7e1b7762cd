/* hello_header_client [--target HOST:PORT] [--h2c | --ca PEM] [--no-id] [NAME]: SayHello
 * through a client interceptor (rpc_client.h, "client interceptors") that adds an x-request-id
 * header to every call (unless --no-id) and prints, when the call ends, its status, duration
 * and the messages and bytes each way. Exits 0 if the call ended with OK. */
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "hello.omsrpc.h"

static bool add_id = true;

/* Before the call's first attempt: metadata added here goes out on every attempt. */
static void tag_start(rpc_client_call *c, void *data)
{
    unsigned *next_id = data;
    char id[32];
    snprintf(id, sizeof id, "hello-%u", ++*next_id);
    if (add_id && rpc_client_call_add_md(c, "x-request-id", (const uint8_t *)id, strlen(id)) != 0)
        rpc_client_call_fail(c, RPC_RESOURCE_EXHAUSTED, "cannot add x-request-id");
}

/* Right before the call's on_status. */
static void tag_end(rpc_client_call *c, void *data, const rpc_call_stats *st)
{
    (void)data;
    fprintf(stderr, "%s: %s in %.3f ms, sent %llu msg/%llu B, received %llu msg/%llu B\n",
            rpc_client_call_path(c), rpc_status_name(st->code), (double)st->duration_ns / 1e6,
            (unsigned long long)st->msgs_sent, (unsigned long long)st->bytes_sent,
            (unsigned long long)st->msgs_received, (unsigned long long)st->bytes_received);
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {{"target", required_argument, NULL, 't'},
                                         {"h2c", no_argument, NULL, 'p'},
                                         {"ca", required_argument, NULL, 'a'},
                                         {"no-id", no_argument, NULL, 'n'},
                                         {NULL, 0, NULL, 0}};
    rpc_channel_config cfg;
    rpc_channel_config_init(&cfg);
    cfg.target = "127.0.0.1:50051";
    for (int opt; (opt = getopt_long(argc, argv, "", opts, NULL)) != -1;) {
        if (opt == 't')
            cfg.target = optarg;
        else if (opt == 'p')
            cfg.tls = false;
        else if (opt == 'a')
            cfg.ca_file = optarg;
        else if (opt == 'n')
            add_id = false;
        else {
            fprintf(stderr, "usage: %s [--target HOST:PORT] [--h2c | --ca PEM] [--no-id] [NAME]\n",
                    argv[0]);
            return 2;
        }
    }
    Hello__V1__HelloRequest req = HELLO__V1__HELLO_REQUEST__INIT;
    req.name = optind < argc ? argv[optind] : "world";

    char err[256];
    uv_loop_t *loop = uv_default_loop();
    rpc_channel *ch = rpc_channel_new(loop, &cfg, err, sizeof err);
    static unsigned next_id;
    static const rpc_client_interceptor tagger = {
        .name = "request-id", .on_start = tag_start, .on_end = tag_end};
    if (!ch || rpc_channel_add_interceptor(ch, &tagger, &next_id) != 0) {
        fprintf(stderr, "hello_header_client: %s\n", ch ? "out of memory" : err);
        return 1;
    }
    rpc_call_opts call = {.timeout_ms = 5000};
    Hello__V1__HelloReply *reply = NULL;
    rpc_status code =
        hello__v1__greeter__say_hello__blocking(ch, &req, &reply, &call, err, sizeof err);
    if (code == RPC_OK) {
        printf("%s\n", reply->message);
        hello__v1__hello_reply__free_unpacked(reply, NULL);
    } else {
        fprintf(stderr, "hello_header_client: SayHello: status %d: %s\n", code, err);
    }
    rpc_channel_free(ch, NULL, NULL);
    uv_run(loop, UV_RUN_DEFAULT);
    return uv_loop_close(loop) == 0 && code == RPC_OK ? 0 : 1;
}
