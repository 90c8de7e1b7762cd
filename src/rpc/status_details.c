/* status_details.c - rich error details: a google.rpc.Status in the
 * grpc-status-details-bin trailer (the convention of grpc-go's
 * status.WithDetails, grpcio's rpc_status and grpc-java's StatusProto).
 *
 * The Status repeats the call's code and message, and carries each detail
 * message as a google.protobuf.Any whose type_url is
 * "type.googleapis.com/<full message name>".
 */
#include <stdlib.h>
#include <string.h>

#include "google/protobuf/any.pb-c.h"
#include "google/rpc/status.pb-c.h"
#include "rpc/rpc_int.h"

#define TYPE_URL_PREFIX "type.googleapis.com/"

int rpc__status_details_pack(rpc_arena *a, rpc_status code, const char *message,
                             const ProtobufCMessage *const *details, size_t n, uint8_t **out,
                             size_t *outlen)
{
    Google__Rpc__Status st = GOOGLE__RPC__STATUS__INIT;
    st.code = (int32_t)code;
    st.message = (char *)(message ? message : "");
    Google__Protobuf__Any *anys = n ? rpc__arena_alloc(a, n * sizeof *anys) : NULL;
    Google__Protobuf__Any **ptrs = n ? rpc__arena_alloc(a, n * sizeof *ptrs) : NULL;
    if (n && (!anys || !ptrs))
        return RPC_ENOMEM;
    for (size_t i = 0; i < n; i++) {
        const char *name = details[i]->descriptor->name;
        size_t nl = strlen(name), pl = sizeof TYPE_URL_PREFIX - 1;
        char *url = rpc__arena_alloc(a, pl + nl + 1);
        size_t len = protobuf_c_message_get_packed_size(details[i]);
        uint8_t *v = rpc__arena_alloc(a, len ? len : 1);
        if (!url || !v)
            return RPC_ENOMEM;
        memcpy(url, TYPE_URL_PREFIX, pl);
        memcpy(url + pl, name, nl + 1);
        protobuf_c_message_pack(details[i], v);
        google__protobuf__any__init(&anys[i]);
        anys[i].type_url = url;
        anys[i].value.data = v;
        anys[i].value.len = len;
        ptrs[i] = &anys[i];
    }
    st.n_details = n;
    st.details = ptrs;
    size_t len = google__rpc__status__get_packed_size(&st);
    uint8_t *buf = rpc__arena_alloc(a, len ? len : 1);
    if (!buf)
        return RPC_ENOMEM;
    google__rpc__status__pack(&st, buf);
    *out = buf;
    *outlen = len;
    return 0;
}
