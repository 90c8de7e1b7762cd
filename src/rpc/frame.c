/* frame.c - rpc_frame: a response message encoded once (gRPC length prefix
 * and protobuf bytes) and sent on many calls (rpc.h), for fan-out. */
#include <string.h>

#include "base/alloc.h"
#include "rpc/rpc_int.h"

struct rpc_frame {
    size_t refs;
    const ProtobufCMessageDescriptor *desc;
    size_t len; /* RPC_FRAME_HEADER + the message */
    uint8_t data[];
};

rpc_frame *rpc_frame_new(const ProtobufCMessage *m)
{
    size_t size = protobuf_c_message_get_packed_size(m);
    if (size > UINT32_MAX)
        return NULL;
    rpc_frame *f = oms_malloc(sizeof *f + RPC_FRAME_HEADER + size);
    if (!f)
        return NULL;
    f->refs = 1;
    f->desc = m->descriptor;
    f->len = RPC_FRAME_HEADER + size;
    protobuf_c_message_pack(m, f->data + RPC_FRAME_HEADER);
    rpc__frame_header(f->data, false, (uint32_t)size);
    return f;
}

rpc_frame *rpc_frame_ref(rpc_frame *f)
{
    f->refs++;
    return f;
}

void rpc_frame_unref(rpc_frame *f)
{
    if (f && --f->refs == 0)
        oms_free(f);
}

size_t rpc_frame_size(const rpc_frame *f)
{
    return f->len - RPC_FRAME_HEADER;
}

const uint8_t *rpc__frame_bytes(const rpc_frame *f, size_t *len)
{
    *len = f->len;
    return f->data;
}

const ProtobufCMessageDescriptor *rpc__frame_desc(const rpc_frame *f)
{
    return f->desc;
}
