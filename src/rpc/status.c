/* status.c - gRPC status codes: names, and the mappings from HTTP/2 error
 * codes (PROTOCOL-HTTP2.md, "Errors") and HTTP statuses
 * (doc/http-grpc-status-mapping.md).
 */
#include "rpc_int.h"

rpc_status rpc__status_from_h2(uint32_t h2_error)
{
    switch (h2_error) {
    case HTTP2_REFUSED_STREAM:
        /* The server did no work on the stream: safe to retry. */
        return RPC_UNAVAILABLE;
    case HTTP2_CANCEL:
        return RPC_CANCELLED;
    case HTTP2_ENHANCE_YOUR_CALM:
        return RPC_RESOURCE_EXHAUSTED;
    case HTTP2_INADEQUATE_SECURITY:
        return RPC_PERMISSION_DENIED;
    default:
        /* NO_ERROR, PROTOCOL_ERROR, INTERNAL_ERROR, FLOW_CONTROL_ERROR,
         * SETTINGS_TIMEOUT, FRAME_SIZE_ERROR, COMPRESSION_ERROR, CONNECT_ERROR
         * and anything the spec leaves unmapped. */
        return RPC_INTERNAL;
    }
}

rpc_status rpc__status_from_http(int http_status)
{
    switch (http_status) {
    case 400:
        return RPC_INTERNAL;
    case 401:
        return RPC_UNAUTHENTICATED;
    case 403:
        return RPC_PERMISSION_DENIED;
    case 404:
        return RPC_UNIMPLEMENTED;
    case 429:
    case 502:
    case 503:
    case 504:
        return RPC_UNAVAILABLE;
    default:
        return RPC_UNKNOWN;
    }
}

const char *rpc__status_name(int code)
{
    static const char *const names[] = {
        [RPC_OK] = "OK",
        [RPC_CANCELLED] = "CANCELLED",
        [RPC_UNKNOWN] = "UNKNOWN",
        [RPC_INVALID_ARGUMENT] = "INVALID_ARGUMENT",
        [RPC_DEADLINE_EXCEEDED] = "DEADLINE_EXCEEDED",
        [RPC_NOT_FOUND] = "NOT_FOUND",
        [RPC_ALREADY_EXISTS] = "ALREADY_EXISTS",
        [RPC_PERMISSION_DENIED] = "PERMISSION_DENIED",
        [RPC_RESOURCE_EXHAUSTED] = "RESOURCE_EXHAUSTED",
        [RPC_FAILED_PRECONDITION] = "FAILED_PRECONDITION",
        [RPC_ABORTED] = "ABORTED",
        [RPC_OUT_OF_RANGE] = "OUT_OF_RANGE",
        [RPC_UNIMPLEMENTED] = "UNIMPLEMENTED",
        [RPC_INTERNAL] = "INTERNAL",
        [RPC_UNAVAILABLE] = "UNAVAILABLE",
        [RPC_DATA_LOSS] = "DATA_LOSS",
        [RPC_UNAUTHENTICATED] = "UNAUTHENTICATED",
    };
    if (code < 0 || (unsigned)code >= sizeof names / sizeof names[0])
        return "UNKNOWN_CODE";
    return names[code];
}

const char *rpc_status_name(int code)
{
    return rpc__status_name(code);
}
