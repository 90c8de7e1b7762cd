/* blocking.c - a blocking unary call for command-line programs. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/alloc.h"
#include "rpc/client_int.h"

typedef struct blocking {
    bool done;
    rpc_status code;
    char *msg;
    size_t msglen;
    ProtobufCMessage *resp;
    const ProtobufCMessageDescriptor *desc;
    uint8_t **details; /* opts->details */
    size_t *details_len;
} blocking;

static void on_message(rpc_client_call *c, const ProtobufCMessage *m)
{
    blocking *b = rpc_client_call_data(c);
    if (b->resp)
        return;
    /* The message is borrowed: keep a copy by repacking it. */
    size_t n = protobuf_c_message_get_packed_size(m);
    uint8_t stackbuf[4096];
    uint8_t *buf = n <= sizeof stackbuf ? stackbuf : oms_malloc(n);
    if (!buf)
        return;
    protobuf_c_message_pack(m, buf);
    b->resp = protobuf_c_message_unpack(b->desc, NULL, n, buf);
    if (buf != stackbuf)
        oms_free(buf);
}

static void on_status(rpc_client_call *c, rpc_status code, const char *message,
                      const rpc_metadata *trailers)
{
    (void)trailers;
    blocking *b = rpc_client_call_data(c);
    b->done = true;
    size_t dl;
    const uint8_t *d = rpc_client_call_status_details(c, &dl);
    if (b->details && d && code != RPC_OK) {
        *b->details = oms_malloc(dl ? dl : 1);
        if (*b->details) {
            memcpy(*b->details, d, dl);
            *b->details_len = dl;
        }
    }
    b->code = code;
    if (b->msg && b->msglen)
        snprintf(b->msg, b->msglen, "%s", message);
}

static const rpc_client_ops blocking_ops = {
    .flags = 0,
    .on_message = on_message,
    .on_status = on_status,
};

rpc_status rpc_blocking_unary(rpc_channel *ch, const char *path, const ProtobufCMessage *req,
                              const ProtobufCMessageDescriptor *resp_desc, ProtobufCMessage **resp,
                              const rpc_call_opts *opts, char *msg, size_t msglen)
{
    blocking b = {.code = RPC_UNKNOWN, .msg = msg, .msglen = msglen, .desc = resp_desc};
    if (opts && opts->details && opts->details_len) {
        b.details = opts->details;
        b.details_len = opts->details_len;
        *b.details = NULL;
        *b.details_len = 0;
    }
    if (msg && msglen)
        msg[0] = '\0';
    *resp = NULL;
    rpc_client_call *c = rpc_channel_call(ch, path, resp_desc, &blocking_ops, &b, opts);
    if (!c) {
        if (msg && msglen)
            snprintf(msg, msglen, "out of memory");
        return RPC_RESOURCE_EXHAUSTED;
    }
    rpc_client_call_send(c, req);
    rpc_client_call_close_send(c);
    while (!b.done)
        uv_run(ch->loop, UV_RUN_ONCE);
    if (b.code == RPC_OK && !b.resp) {
        if (msg && msglen)
            snprintf(msg, msglen, "no response message");
        return RPC_INTERNAL;
    }
    if (b.code != RPC_OK && b.resp) {
        protobuf_c_message_free_unpacked(b.resp, NULL);
        b.resp = NULL;
    }
    *resp = b.resp;
    return b.code;
}
