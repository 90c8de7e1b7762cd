/* Unit tests for status mapping and names (src/rpc/status.c). */
#include <criterion/criterion.h>
#include <limits.h>
#include <string.h>

#include "rpc_int.h"

Test(rpc_status, from_h2_follows_protocol_http2_errors)
{
    static const struct {
        uint32_t h2;
        rpc_status want;
    } table[] = {
        {HTTP2_NO_ERROR, RPC_INTERNAL},
        {HTTP2_PROTOCOL_ERROR, RPC_INTERNAL},
        {HTTP2_INTERNAL_ERROR, RPC_INTERNAL},
        {HTTP2_FLOW_CONTROL_ERROR, RPC_INTERNAL},
        {HTTP2_SETTINGS_TIMEOUT, RPC_INTERNAL},
        {HTTP2_STREAM_CLOSED, RPC_INTERNAL},
        {HTTP2_FRAME_SIZE_ERROR, RPC_INTERNAL},
        {HTTP2_REFUSED_STREAM, RPC_UNAVAILABLE},
        {HTTP2_CANCEL, RPC_CANCELLED},
        {HTTP2_COMPRESSION_ERROR, RPC_INTERNAL},
        {HTTP2_CONNECT_ERROR, RPC_INTERNAL},
        {HTTP2_ENHANCE_YOUR_CALM, RPC_RESOURCE_EXHAUSTED},
        {HTTP2_INADEQUATE_SECURITY, RPC_PERMISSION_DENIED},
        {HTTP2_HTTP_1_1_REQUIRED, RPC_INTERNAL},
        {0xe, RPC_INTERNAL},
        {0xFFFFFFFF, RPC_INTERNAL},
    };
    for (size_t i = 0; i < sizeof table / sizeof table[0]; i++)
        cr_assert_eq(rpc__status_from_h2(table[i].h2), table[i].want, "h2 error 0x%x", table[i].h2);
}

Test(rpc_status, from_http_follows_http_grpc_status_mapping)
{
    static const struct {
        int http;
        rpc_status want;
    } table[] = {
        {400, RPC_INTERNAL},      {401, RPC_UNAUTHENTICATED}, {403, RPC_PERMISSION_DENIED},
        {404, RPC_UNIMPLEMENTED}, {429, RPC_UNAVAILABLE},     {502, RPC_UNAVAILABLE},
        {503, RPC_UNAVAILABLE},   {504, RPC_UNAVAILABLE},     {200, RPC_UNKNOWN},
        {204, RPC_UNKNOWN},       {302, RPC_UNKNOWN},         {405, RPC_UNKNOWN},
        {415, RPC_UNKNOWN},       {500, RPC_UNKNOWN},         {501, RPC_UNKNOWN},
        {0, RPC_UNKNOWN},         {-1, RPC_UNKNOWN},          {INT_MAX, RPC_UNKNOWN},
    };
    for (size_t i = 0; i < sizeof table / sizeof table[0]; i++)
        cr_assert_eq(rpc__status_from_http(table[i].http), table[i].want, "HTTP %d", table[i].http);
}

Test(rpc_status, names)
{
    static const char *const want[] = {
        "OK",
        "CANCELLED",
        "UNKNOWN",
        "INVALID_ARGUMENT",
        "DEADLINE_EXCEEDED",
        "NOT_FOUND",
        "ALREADY_EXISTS",
        "PERMISSION_DENIED",
        "RESOURCE_EXHAUSTED",
        "FAILED_PRECONDITION",
        "ABORTED",
        "OUT_OF_RANGE",
        "UNIMPLEMENTED",
        "INTERNAL",
        "UNAVAILABLE",
        "DATA_LOSS",
        "UNAUTHENTICATED",
    };
    for (int i = 0; i <= RPC_UNAUTHENTICATED; i++)
        cr_assert_str_eq(rpc__status_name(i), want[i]);
}

Test(rpc_status, out_of_range_names)
{
    static const int bad[] = {-1, 17, 100, INT_MAX, INT_MIN};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        cr_assert_str_eq(rpc__status_name(bad[i]), "UNKNOWN_CODE", "code %d", bad[i]);
}
